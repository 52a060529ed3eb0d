//! Sampling order and per-sample random streams. Counterpart of MMEngine's `DefaultSampler`
//! and `InfiniteSampler` (`mmengine/dataset/sampler.py`) at world size 1.
//!
//! Every random stream is a ChaCha8 generator whose 256-bit key is built directly (not
//! hashed) from the loader seed, the pass over the data, the position in that pass and a
//! domain tag, so streams never collide and depend on nothing else: not on the number of
//! workers, not on timing, not on what was loaded before.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How batches are laid out over passes (epochs) of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SamplerKind {
    /// MMEngine's `DefaultSampler`: each epoch is one permutation; batches never straddle
    /// epochs; the last partial batch is kept or dropped (`drop_last`).
    #[default]
    Default,
    /// MMEngine's `InfiniteSampler`: an endless stream of permutations, cut into batches
    /// regardless of pass boundaries (`drop_last` has no effect).
    Infinite,
}

fn key(seed: u64, pass: u64, pos: u64, tag: &[u8; 8]) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&seed.to_le_bytes());
    k[8..16].copy_from_slice(&pass.to_le_bytes());
    k[16..24].copy_from_slice(&pos.to_le_bytes());
    k[24..].copy_from_slice(tag);
    k
}

/// The random stream of the sample at position `pos` of pass (epoch) `pass`.
pub fn sample_rng(seed: u64, pass: u64, pos: u64) -> ChaCha8Rng {
    ChaCha8Rng::from_seed(key(seed, pass, pos, b"sample\0\0"))
}

/// The order of pass (epoch) `pass`: a Fisher–Yates permutation of `0..len` from the
/// stream keyed by `(seed, pass)`, or the identity when `shuffle` is false.
pub fn permutation(seed: u64, pass: u64, len: usize, shuffle: bool) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..len).collect();
    if shuffle {
        let mut rng = ChaCha8Rng::from_seed(key(seed, pass, 0, b"perm\0\0\0\0"));
        for i in (1..len).rev() {
            // Sample as u64 so the order does not depend on the platform's usize width.
            let j = rng.random_range(0..=i as u64) as usize;
            perm.swap(i, j);
        }
    }
    perm
}

/// The order of pass `pass` drawn with replacement: `len` indices uniform in `0..len`
/// (`DeepClusterSampler(replace=True)`'s `torch.randint`), from the same stream as
/// [`permutation`] would use.
pub fn with_replacement(seed: u64, pass: u64, len: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::from_seed(key(seed, pass, 0, b"perm\0\0\0\0"));
    (0..len).map(|_| rng.random_range(0..len as u64) as usize).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_deterministic_and_differ_by_epoch() {
        let a = permutation(3, 0, 50, true);
        assert_eq!(a, permutation(3, 0, 50, true));
        assert_ne!(a, permutation(3, 1, 50, true));
        assert_ne!(a, permutation(4, 0, 50, true));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_eq!(permutation(3, 0, 5, false), vec![0, 1, 2, 3, 4]);
    }
}
