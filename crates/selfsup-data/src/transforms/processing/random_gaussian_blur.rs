//! `RandomGaussianBlur`. Port of `mmselfsup.datasets.transforms.RandomGaussianBlur`
//! (mmselfsup 1.0.0, `datasets/transforms/processing.py`): SimCLR's blur, PIL's
//! `ImageFilter.GaussianBlur(radius=σ)` with `σ ~ U(sigma_min, sigma_max)`.

use serde::{Deserialize, Serialize};

use crate::imaging::pillow_filter::gaussian_blur;
use crate::imaging::Image;
use crate::transforms::{ImageTransform, RandomSource};
use crate::DataError;

/// Configuration of [`RandomGaussianBlur`]. Field names and defaults are MMSelfSup's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomGaussianBlurConfig {
    /// Smallest standard deviation. Required.
    pub sigma_min: f64,
    /// Largest standard deviation. Required.
    pub sigma_max: f64,
    /// Probability of blurring. Default 0.5.
    #[serde(default = "default_prob")]
    pub prob: f64,
}

fn default_prob() -> f64 {
    0.5
}

impl RandomGaussianBlurConfig {
    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] when `prob` is outside `[0, 1]` or not
    /// `0 ≤ sigma_min ≤ sigma_max`.
    pub fn init(&self) -> Result<RandomGaussianBlur, DataError> {
        const NAME: &str = "RandomGaussianBlur";
        if !(0.0..=1.0).contains(&self.prob) {
            return Err(DataError::config(NAME, format!("`prob` must be in [0, 1], got {}", self.prob)));
        }
        if !(0.0 <= self.sigma_min && self.sigma_min <= self.sigma_max && self.sigma_max.is_finite()) {
            return Err(DataError::config(
                NAME,
                format!("need 0 <= sigma_min <= sigma_max, got {} and {}", self.sigma_min, self.sigma_max),
            ));
        }
        Ok(RandomGaussianBlur { sigma: [self.sigma_min, self.sigma_max], prob: self.prob })
    }
}

/// Blurs an image with a random Gaussian (Pillow's three-pass extended box approximation),
/// with a given probability.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomGaussianBlur {
    sigma: [f64; 2],
    prob: f64,
}

impl RandomGaussianBlur {
    /// Draws as MMSelfSup: `rand() > prob` skips (`None`); otherwise
    /// `σ = uniform(sigma_min, sigma_max)`.
    pub fn sample_sigma<R: RandomSource + ?Sized>(&self, rng: &mut R) -> Option<f64> {
        if rng.rand() > self.prob {
            return None;
        }
        Some(rng.uniform(self.sigma[0], self.sigma[1]))
    }

    /// Blurs `img` with standard deviation `sigma` (`None`: unchanged). Deterministic and
    /// bit-exact with Pillow's `GaussianBlur` (see
    /// [`pillow_filter`](crate::imaging::pillow_filter)); works on any number of channels.
    pub fn apply_with(img: Image, sigma: Option<f64>) -> Image {
        match sigma {
            Some(s) => gaussian_blur(&img, s),
            None => img,
        }
    }
}

impl ImageTransform for RandomGaussianBlur {
    const NAME: &'static str = "RandomGaussianBlur";

    fn apply<R: RandomSource + ?Sized>(&self, img: Image, rng: &mut R) -> Result<Image, DataError> {
        let sigma = self.sample_sigma(rng);
        Ok(Self::apply_with(img, sigma))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::random::{Draw, ReplayDraws};

    #[test]
    fn skips_only_when_the_draw_exceeds_prob() {
        let t = RandomGaussianBlurConfig { sigma_min: 0.1, sigma_max: 2.0, prob: 0.5 }.init().expect("valid");
        let mut d = ReplayDraws::new([Draw::Uniform(0.5), Draw::Uniform(1.3), Draw::Uniform(0.51)]);
        assert_eq!(t.sample_sigma(&mut d), Some(1.3));
        assert_eq!(t.sample_sigma(&mut d), None);
        assert_eq!(d.remaining(), 0);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        for (lo, hi, p) in [(2.0, 0.1, 0.5), (-1.0, 1.0, 0.5), (0.1, 2.0, 1.5)] {
            let cfg = RandomGaussianBlurConfig { sigma_min: lo, sigma_max: hi, prob: p };
            assert!(cfg.init().is_err(), "{cfg:?}");
        }
    }
}
