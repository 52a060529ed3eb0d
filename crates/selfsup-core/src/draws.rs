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

    /// One value from `Beta(a, b)` (numpy's `np.random.beta`, Mixup's and
    /// CutMix's mixing ratio), or the next replayed value called `name`.
    /// Drawn as `X / (X + Y)` with `X ~ Gamma(a)`, `Y ~ Gamma(b)`
    /// (Marsaglia and Tsang's method).
    ///
    /// # Panics
    /// When `a` or `b` is not positive, or a replayed draw is not one value.
    pub fn beta(&mut self, name: &str, a: f64, b: f64) -> f64 {
        assert!(a > 0.0 && b > 0.0, "Beta({a}, {b}): both parameters must be positive");
        if let Some(queue) = self.replay.get_mut(name) {
            if !queue.is_empty() {
                let values = queue.remove(0);
                assert_eq!(values.len(), 1, "replayed draw `{name}` has the wrong length");
                return f64::from(values[0]);
            }
        }
        let x = self.gamma(a);
        let y = self.gamma(b);
        if x + y > 0.0 {
            x / (x + y)
        } else {
            // Both underflowed (tiny shapes): the limit is a fair coin.
            f64::from(u8::from(self.rng.random::<bool>()))
        }
    }

    /// `Gamma(shape, 1)`: Marsaglia and Tsang for `shape ≥ 1`, boosted by
    /// `U^(1/shape)` below.
    fn gamma(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            let u: f64 = 1.0 - self.rng.random::<f64>();
            return self.gamma(shape + 1.0) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            // A standard normal (Box–Muller).
            let (u1, u2): (f64, f64) = (1.0 - self.rng.random::<f64>(), self.rng.random());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            let v = (1.0 + c * z).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u: f64 = 1.0 - self.rng.random::<f64>();
            if u.ln() < 0.5 * z * z + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    /// A random order of `l` items per row, drawn without replacement with
    /// probabilities proportional to `weights` (`rows × l`, row-major): as
    /// `torch.multinomial(weights, l, replacement=False)`, which MILAN's
    /// attention masking calls. Or the next replayed draw called `name`:
    /// the reference's indices themselves (exact in `f32` below 2²⁴).
    ///
    /// Sampled exactly by exponential races: each item gets `E / w` with
    /// `E ~ Exp(1)` from the ChaCha generator, and the row's order is that
    /// of the keys, smallest first; the first item is `i` with probability
    /// `w_i / Σw`, and by memorylessness each later one likewise among the
    /// items left. Items whose weight is not positive (zero, negative, NaN)
    /// come after all the others, in a uniformly random order (torch would
    /// refuse such a row).
    ///
    /// # Panics
    /// When `weights.len() != rows · l`, or a replayed draw has another
    /// length or a row that is not a permutation of `0..l`.
    pub fn weighted_permutation(&mut self, name: &str, weights: &[f32], rows: usize) -> Vec<i64> {
        assert!(rows > 0 || weights.is_empty(), "weighted_permutation: weights for zero rows");
        let l = weights.len().checked_div(rows).unwrap_or(0);
        assert_eq!(l * rows, weights.len(), "weighted_permutation: {} weights do not make {rows} rows", weights.len());
        if let Some(queue) = self.replay.get_mut(name) {
            if !queue.is_empty() {
                let values = queue.remove(0);
                assert_eq!(values.len(), rows * l, "replayed draw `{name}` has the wrong length");
                let out: Vec<i64> = values.into_iter().map(|v| v as i64).collect();
                for row in out.chunks(l.max(1)) {
                    let mut seen = vec![false; l];
                    for &i in row {
                        assert!(i >= 0 && (i as usize) < l && !seen[i as usize], "replayed draw `{name}` is not a permutation of 0..{l}");
                        seen[i as usize] = true;
                    }
                }
                return out;
            }
        }
        let mut out = Vec::with_capacity(rows * l);
        for row in weights.chunks(l.max(1)).take(rows) {
            // (key, tie-break): E / w for positive weights, +inf otherwise;
            // the exponential itself orders the +inf keys at random.
            let mut keys: Vec<(f64, f64, usize)> = row
                .iter()
                .enumerate()
                .map(|(i, &w)| {
                    let e = -(1.0 - self.rng.random::<f64>()).ln();
                    let key = if w > 0.0 { e / w as f64 } else { f64::INFINITY };
                    (key, e, i)
                })
                .collect();
            keys.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
            out.extend(keys.into_iter().map(|(_, _, i)| i as i64));
        }
        out
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

#[cfg(test)]
mod tests {
    use super::Draws;

    fn is_permutation(row: &[i64], l: usize) -> bool {
        let mut sorted = row.to_vec();
        sorted.sort();
        sorted == (0..l as i64).collect::<Vec<_>>()
    }

    #[test]
    fn beta_has_the_right_moments_and_replays() {
        // Mean a/(a+b), variance ab/((a+b)²(a+b+1)): Mixup's 0.8 and CutMix's 1.0, and a skewed one.
        for (a, b) in [(0.8, 0.8), (1.0, 1.0), (2.0, 5.0)] {
            let mut d = Draws::seeded(7);
            let n = 40_000;
            let xs: Vec<f64> = (0..n).map(|_| d.beta("lam", a, b)).collect();
            assert!(xs.iter().all(|x| (0.0..=1.0).contains(x)));
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            let (m, v) = (a / (a + b), a * b / ((a + b).powi(2) * (a + b + 1.0)));
            assert!((mean - m).abs() < 0.01 && (var - v).abs() < 0.01 * v.max(0.01) * 10.0, "Beta({a}, {b}): {mean} {var}");
        }
        let mut d = Draws::seeded(0).replay("lam", vec![0.25]);
        assert_eq!(d.beta("lam", 0.8, 0.8), 0.25);
    }

    #[test]
    fn weighted_permutation_replays_the_recorded_indices() {
        let recorded = vec![2.0, 0.0, 1.0, 1.0, 2.0, 0.0];
        let mut draws = Draws::seeded(3).replay("ids_shuffle", recorded);
        let w = [0.1f32, 0.5, 0.4, 0.3, 0.3, 0.4];
        assert_eq!(draws.weighted_permutation("ids_shuffle", &w, 2), vec![2, 0, 1, 1, 2, 0]);
        // the queue is spent: the next draw samples
        let sampled = draws.weighted_permutation("ids_shuffle", &w, 2);
        assert!(is_permutation(&sampled[..3], 3) && is_permutation(&sampled[3..], 3));
    }

    #[test]
    #[should_panic(expected = "not a permutation")]
    fn weighted_permutation_refuses_a_replay_that_is_not_a_permutation() {
        let mut draws = Draws::seeded(0).replay("p", vec![0.0, 0.0, 1.0]);
        draws.weighted_permutation("p", &[1.0, 1.0, 1.0], 1);
    }

    #[test]
    #[should_panic(expected = "wrong length")]
    fn weighted_permutation_refuses_a_replay_of_the_wrong_length() {
        let mut draws = Draws::seeded(0).replay("p", vec![0.0, 1.0]);
        draws.weighted_permutation("p", &[1.0, 1.0, 1.0], 1);
    }

    #[test]
    fn weighted_permutation_is_seeded_and_a_permutation_per_row() {
        let w: Vec<f32> = (0..3 * 50).map(|i| 0.01 + (i % 7) as f32).collect();
        let a = Draws::seeded(11).weighted_permutation("p", &w, 3);
        let b = Draws::seeded(11).weighted_permutation("p", &w, 3);
        let c = Draws::seeded(12).weighted_permutation("p", &w, 3);
        assert_eq!(a, b);
        assert_ne!(a, c);
        for row in a.chunks(50) {
            assert!(is_permutation(row, 50));
        }
    }

    /// Successive sampling without replacement: the probability of each
    /// whole order of three items is `w_a/Σ · w_b/(Σ − w_a)`.
    #[test]
    fn weighted_permutation_samples_orders_with_multinomial_probabilities() {
        let w = [1.0f32, 2.0, 7.0];
        let trials = 60_000;
        let mut draws = Draws::seeded(5);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..trials {
            *counts.entry(draws.weighted_permutation("p", &w, 1)).or_insert(0usize) += 1;
        }
        let total: f64 = w.iter().map(|&v| v as f64).sum();
        for (order, n) in counts {
            let (a, b) = (order[0] as usize, order[1] as usize);
            let p = w[a] as f64 / total * (w[b] as f64 / (total - w[a] as f64));
            let freq = n as f64 / trials as f64;
            let sd = (p * (1.0 - p) / trials as f64).sqrt();
            assert!((freq - p).abs() < 5.0 * sd, "order {order:?}: {freq} vs {p}");
        }
    }

    #[test]
    fn weighted_permutation_puts_non_positive_weights_last() {
        let w = [0.0f32, 3.0, f32::NAN, 1.0, -1.0, 2.0];
        let mut draws = Draws::seeded(9);
        let mut tails = std::collections::HashSet::new();
        for _ in 0..200 {
            let p = draws.weighted_permutation("p", &w, 1);
            let mut head = p[..3].to_vec();
            head.sort();
            assert_eq!(head, vec![1, 3, 5]);
            tails.insert(p[3..].to_vec());
        }
        assert_eq!(tails.len(), 6, "the weightless items come in every order");
    }
}
