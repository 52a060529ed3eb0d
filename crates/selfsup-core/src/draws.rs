//! Injectable randomness.
//!
//! Algorithms never call a backend's random generator: they ask a [`Draws`]
//! for each named draw (`"mask_noise"`, a permutation, ...). In training the
//! draws come from a seeded ChaCha generator on the host, so every backend sees
//! the same numbers; in tests they can be replayed from the reference
//! implementation's fixtures.
use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A source of named random draws, seeded or replayed.
#[derive(Debug, Clone)]
pub struct Draws {
    rng: ChaCha8Rng,
    replay: HashMap<String, Vec<Vec<f32>>>,
}

impl Draws {
    /// Draws from a ChaCha8 generator seeded with `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self { rng: ChaCha8Rng::seed_from_u64(seed), replay: HashMap::new() }
    }

    /// Queues `values` to be returned by the next draw called `name`, in
    /// place of a random one. Several values queue in order.
    pub fn replay(mut self, name: impl Into<String>, values: Vec<f32>) -> Self {
        self.replay.entry(name.into()).or_default().push(values);
        self
    }

    /// `len` values uniform in `[0, 1)`, or the next replayed values called
    /// `name`.
    ///
    /// # Panics
    /// When a replayed draw has a length other than `len`: a test fixture
    /// that does not fit the model is a bug in the test.
    pub fn uniform(&mut self, name: &str, len: usize) -> Vec<f32> {
        if let Some(queue) = self.replay.get_mut(name) {
            if !queue.is_empty() {
                let values = queue.remove(0);
                assert_eq!(values.len(), len, "replayed draw `{name}` has the wrong length");
                return values;
            }
        }
        (0..len).map(|_| self.rng.random::<f32>()).collect()
    }

    /// `len` integers uniform in `[0, upper)`, or the next replayed values called `name`
    /// (the integers themselves, exact in `f32` below 2²⁴).
    ///
    /// # Panics
    /// When `upper` is 0, or a replayed draw has a length other than `len`.
    pub fn integers(&mut self, name: &str, len: usize, upper: usize) -> Vec<i64> {
        assert!(upper > 0, "integers in an empty range");
        if let Some(queue) = self.replay.get_mut(name) {
            if !queue.is_empty() {
                let values = queue.remove(0);
                assert_eq!(values.len(), len, "replayed draw `{name}` has the wrong length");
                return values.into_iter().map(|v| v as i64).collect();
            }
        }
        (0..len).map(|_| self.rng.random_range(0..upper) as i64).collect()
    }

    /// The generator's state, to save in a checkpoint.
    pub fn state(&self) -> ([u8; 32], u128) {
        (self.rng.get_seed(), self.rng.get_word_pos())
    }

    /// Restores a state saved by [`Draws::state`].
    pub fn from_state(seed: [u8; 32], word_pos: u128) -> Self {
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_word_pos(word_pos);
        Self { rng, replay: HashMap::new() }
    }
}
