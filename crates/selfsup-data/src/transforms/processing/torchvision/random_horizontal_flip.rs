//! `torchvision/RandomHorizontalFlip`: `torchvision.transforms.RandomHorizontalFlip`
//! (torchvision 0.24) on a PIL image, under mmcls's wrapper (see the
//! [module documentation](super)).
//!
//! `if torch.rand(1) < p: F.hflip(img)`: one draw per image, always taken. torch compares its
//! float32 sample with `p` in float32, so the flip happens when the draw is below `p`
//! rounded to float32 (exact for replayed torch draws, the same probability otherwise).
//! torchvision does not check `p`: below 0 never flips, 1 and above always flips.

use serde::{Deserialize, Serialize};

use crate::imaging::geometric::{imflip_in_place, FlipDirection};
use crate::imaging::Image;
use crate::transforms::{ImageTransform, RandomSource};
use crate::DataError;

fn default_p() -> f64 {
    0.5
}

/// Configuration of [`TorchvisionRandomHorizontalFlip`]. Field name and default are
/// torchvision's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TorchvisionRandomHorizontalFlipConfig {
    /// Flip probability. Default 0.5.
    #[serde(default = "default_p")]
    pub p: f64,
}

impl Default for TorchvisionRandomHorizontalFlipConfig {
    fn default() -> Self {
        Self { p: default_p() }
    }
}

impl TorchvisionRandomHorizontalFlipConfig {
    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for a non-finite `p`.
    pub fn init(&self) -> Result<TorchvisionRandomHorizontalFlip, DataError> {
        if !self.p.is_finite() {
            return Err(DataError::config(TorchvisionRandomHorizontalFlip::NAME, format!("`p` must be finite, got {}", self.p)));
        }
        Ok(TorchvisionRandomHorizontalFlip { p: self.p })
    }
}

/// Mirrors a PIL image left ↔ right with probability `p`.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchvisionRandomHorizontalFlip {
    p: f64,
}

impl TorchvisionRandomHorizontalFlip {
    /// The flip probability.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// Draws whether to flip: one uniform draw `u`, flip when `u < float32(p)`.
    pub fn sample_flip<R: RandomSource + ?Sized>(&self, rng: &mut R) -> bool {
        rng.rand() < f64::from(self.p as f32)
    }
}

impl ImageTransform for TorchvisionRandomHorizontalFlip {
    const NAME: &'static str = "torchvision/RandomHorizontalFlip";

    fn apply<R: RandomSource + ?Sized>(&self, img: Image, rng: &mut R) -> Result<Image, DataError> {
        let mut img = img;
        if self.sample_flip(rng) {
            imflip_in_place(&mut img, FlipDirection::Horizontal);
        }
        Ok(img)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::random::{Draw, ReplayDraws};

    fn flip(p: f64) -> TorchvisionRandomHorizontalFlip {
        TorchvisionRandomHorizontalFlipConfig { p }.init().expect("valid")
    }

    #[test]
    fn flips_when_the_draw_is_below_p_in_float32() {
        let img = Image::from_fn(3, 1, |x, _| [x as u8]);
        let run = |p: f64, u: f64| flip(p).apply(img.clone(), &mut ReplayDraws::new([Draw::Uniform(u)])).expect("applies").into_raw();
        assert_eq!(run(0.5, 0.3), [2, 1, 0]);
        assert_eq!(run(0.5, 0.5), [0, 1, 2]);
        assert_eq!(run(1.0, 0.999_999_940_395_355_2), [2, 1, 0]);
        assert_eq!(run(0.0, 0.0), [0, 1, 2]);
        // A torch draw of float32(0.7) = 0.699999988… does not flip with p = 0.7 (compared in
        // float32), although it is below 0.7 in float64.
        assert_eq!(run(0.7, f64::from(0.7f32)), [0, 1, 2]);
        assert!(TorchvisionRandomHorizontalFlipConfig { p: f64::NAN }.init().is_err());
        assert_eq!(serde_json::from_str::<TorchvisionRandomHorizontalFlipConfig>("{}").expect("parses").p, 0.5);
    }

    #[test]
    fn flip_frequency_is_p() {
        use rand::SeedableRng;
        let t = flip(0.3);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let n = (0..10_000).filter(|_| t.sample_flip(&mut rng)).count();
        assert!((2800..3200).contains(&n), "{n}");
    }
}
