//! `RandomSolarize`. Port of `mmselfsup.datasets.transforms.RandomSolarize` (mmselfsup 1.0.0,
//! `datasets/transforms/processing.py`): BYOL's solarization, `mmcv.solarize`.

use serde::{Deserialize, Serialize};

use crate::imaging::photometric::solarize;
use crate::imaging::Image;
use crate::transforms::{ImageTransform, RandomSource};
use crate::DataError;

/// Configuration of [`RandomSolarize`]. Field names and defaults are MMSelfSup's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomSolarizeConfig {
    /// Values `>= threshold` are inverted. Default 128.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Probability of solarizing. Default 0.5.
    #[serde(default = "default_prob")]
    pub prob: f64,
}

fn default_threshold() -> f64 {
    128.0
}

fn default_prob() -> f64 {
    0.5
}

impl Default for RandomSolarizeConfig {
    fn default() -> Self {
        Self { threshold: default_threshold(), prob: default_prob() }
    }
}

impl RandomSolarizeConfig {
    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] when `prob` is outside `[0, 1]` or the threshold is NaN.
    pub fn init(&self) -> Result<RandomSolarize, DataError> {
        const NAME: &str = "RandomSolarize";
        if !(0.0..=1.0).contains(&self.prob) {
            return Err(DataError::config(NAME, format!("`prob` must be in [0, 1], got {}", self.prob)));
        }
        if self.threshold.is_nan() {
            return Err(DataError::config(NAME, "`threshold` is NaN"));
        }
        Ok(RandomSolarize { threshold: self.threshold, prob: self.prob })
    }
}

/// Inverts the pixel values at or above a threshold, with a given probability.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomSolarize {
    threshold: f64,
    prob: f64,
}

impl RandomSolarize {
    /// Draws whether to solarize, as MMSelfSup: `rand() > prob` skips.
    pub fn sample_apply<R: RandomSource + ?Sized>(&self, rng: &mut R) -> bool {
        rng.rand() <= self.prob
    }

    /// Solarizes `img` when `apply` is `true` (deterministic; exact).
    pub fn apply_with(&self, img: Image, apply: bool) -> Image {
        if apply {
            solarize(&img, self.threshold)
        } else {
            img
        }
    }
}

impl ImageTransform for RandomSolarize {
    const NAME: &'static str = "RandomSolarize";

    fn apply<R: RandomSource + ?Sized>(&self, img: Image, rng: &mut R) -> Result<Image, DataError> {
        let apply = self.sample_apply(rng);
        Ok(self.apply_with(img, apply))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::random::{Draw, ReplayDraws};

    #[test]
    fn draw_and_threshold() {
        let t = RandomSolarizeConfig::default().init().expect("valid");
        let mut d = ReplayDraws::new([Draw::Uniform(0.5), Draw::Uniform(0.7)]);
        assert!(t.sample_apply(&mut d), "rand() == prob applies (only `>` skips)");
        assert!(!t.sample_apply(&mut d));
        let img = Image::from_fn(3, 1, |x, _| [[127u8, 128, 200][x]]);
        assert_eq!(t.apply_with(img, true).data(), &[127, 127, 55]);
        assert!(RandomSolarizeConfig { prob: -0.1, ..Default::default() }.init().is_err());
    }
}
