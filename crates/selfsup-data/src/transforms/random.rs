//! Where transforms get their randomness from.
//!
//! Every random transform draws through [`RandomSource`], which any [`rand::Rng`] implements
//! with NumPy's semantics (`np.random.uniform(low, high)`, `np.random.randint(low, high)`).
//! Tests (and golden-number checks against the Python reference) can substitute
//! [`ReplayDraws`], which returns pre-recorded draws in order.

use rand::Rng;

/// The draws a transform needs. Implemented for every [`rand::Rng`].
pub trait RandomSource {
    /// A uniform sample in `[low, high)` (`np.random.uniform(low, high)`).
    fn uniform(&mut self, low: f64, high: f64) -> f64;

    /// A uniform integer in `[low, high)` (`np.random.randint(low, high)`); `low` when
    /// `high <= low`.
    fn randint(&mut self, low: usize, high: usize) -> usize;

    /// A uniform sample in `[0, 1)` (`np.random.rand()`).
    fn rand(&mut self) -> f64 {
        self.uniform(0.0, 1.0)
    }

    /// A normal sample `mean + std·z` (`np.random.normal(mean, std)`), `z`
    /// by Box–Muller from two uniform draws.
    fn normal(&mut self, mean: f64, std: f64) -> f64 {
        let (u1, u2) = (1.0 - self.rand(), self.rand());
        mean + std * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

impl<R: Rng + ?Sized> RandomSource for R {
    fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.random::<f64>()
    }

    fn randint(&mut self, low: usize, high: usize) -> usize {
        if high <= low {
            low
        } else {
            self.random_range(low..high)
        }
    }
}

/// One recorded draw for [`ReplayDraws`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Draw {
    /// The result of a `uniform(low, high)` call (already scaled to the range).
    Uniform(f64),
    /// The result of a `randint(low, high)` call.
    Int(usize),
    /// The result of a `normal(mean, std)` call (already scaled).
    Normal(f64),
}

/// Replays recorded draws in order (e.g. the values NumPy produced in the reference run).
///
/// # Panics
/// When the recording is exhausted or a draw of the wrong kind is requested: this type is
/// meant for tests, where a mismatch means the algorithm diverged from the reference.
#[derive(Debug, Clone, Default)]
pub struct ReplayDraws {
    draws: std::collections::VecDeque<Draw>,
}

impl ReplayDraws {
    /// A replay of `draws`.
    pub fn new(draws: impl IntoIterator<Item = Draw>) -> Self {
        Self { draws: draws.into_iter().collect() }
    }

    /// Draws not consumed yet.
    pub fn remaining(&self) -> usize {
        self.draws.len()
    }
}

impl RandomSource for ReplayDraws {
    fn uniform(&mut self, low: f64, high: f64) -> f64 {
        match self.draws.pop_front() {
            Some(Draw::Uniform(v)) => v,
            other => panic!("ReplayDraws: expected uniform({low}, {high}), next recorded draw is {other:?}"),
        }
    }

    fn randint(&mut self, low: usize, high: usize) -> usize {
        match self.draws.pop_front() {
            Some(Draw::Int(v)) => v,
            other => panic!("ReplayDraws: expected randint({low}, {high}), next recorded draw is {other:?}"),
        }
    }

    fn normal(&mut self, mean: f64, std: f64) -> f64 {
        match self.draws.pop_front() {
            Some(Draw::Normal(v)) => v,
            other => panic!("ReplayDraws: expected normal({mean}, {std}), next recorded draw is {other:?}"),
        }
    }
}
