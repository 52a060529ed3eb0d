//! `RandomFlip`. Port of `mmcv.transforms.RandomFlip` (mmcv 2.0, `transforms/processing.py`).

use serde::{Deserialize, Serialize};

use crate::imaging::geometric::{imflip_in_place, FlipDirection};
use crate::imaging::Image;
use crate::transforms::{ImageTransform, RandomSource};
use crate::DataError;

/// Flip probability: one value (shared by the directions), or one per direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FlipProb {
    /// Probability of flipping at all; split evenly among the directions.
    Single(f64),
    /// Probability of each direction (same length as `direction`); the rest is "no flip".
    PerDirection(Vec<f64>),
}

/// One flip direction or a list of candidates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FlipDirections {
    /// One direction.
    One(FlipDirection),
    /// Several candidate directions.
    Many(Vec<FlipDirection>),
}

impl Default for FlipDirections {
    fn default() -> Self {
        FlipDirections::One(FlipDirection::Horizontal)
    }
}

/// Configuration of [`RandomFlip`]. Field names and defaults are mmcv's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomFlipConfig {
    /// Flip probability. Required (mmcv raises without it).
    pub prob: FlipProb,
    /// `'horizontal'`, `'vertical'`, `'diagonal'` or a list of them. Default `'horizontal'`.
    #[serde(default)]
    pub direction: FlipDirections,
    /// Segmentation label pairs to swap: accepted for config compatibility, unused (no
    /// segmentation maps here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_seg_labels: Option<Vec<[usize; 2]>>,
}

impl RandomFlipConfig {
    /// A horizontal flip with probability `prob`.
    pub fn new(prob: f64) -> Self {
        Self { prob: FlipProb::Single(prob), direction: FlipDirections::default(), swap_seg_labels: None }
    }

    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] when a probability is outside `[0, 1]`, the per-direction
    /// probabilities sum above 1 or do not match the directions.
    pub fn init(&self) -> Result<RandomFlip, DataError> {
        const NAME: &str = "RandomFlip";
        let directions = match &self.direction {
            FlipDirections::One(d) => vec![*d],
            FlipDirections::Many(ds) => ds.clone(),
        };
        if directions.is_empty() {
            return Err(DataError::config(NAME, "`direction` is an empty list"));
        }
        let probs = match &self.prob {
            FlipProb::Single(p) => {
                if !(0.0..=1.0).contains(p) {
                    return Err(DataError::config(NAME, format!("`prob` must be in [0, 1], got {p}")));
                }
                vec![p / directions.len() as f64; directions.len()]
            }
            FlipProb::PerDirection(ps) => {
                if ps.len() != directions.len() {
                    return Err(DataError::config(NAME, format!("{} probabilities for {} directions", ps.len(), directions.len())));
                }
                let sum: f64 = ps.iter().sum();
                if ps.iter().any(|p| !(0.0..=1.0).contains(p)) || sum > 1.0 + 1e-12 {
                    return Err(DataError::config(NAME, format!("probabilities must be in [0, 1] and sum to at most 1, got {ps:?}")));
                }
                ps.clone()
            }
        };
        Ok(RandomFlip { directions, probs })
    }
}

/// Flips an image with a given probability.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomFlip {
    directions: Vec<FlipDirection>,
    probs: Vec<f64>,
}

impl RandomFlip {
    /// Draws the direction (`None` = no flip): one uniform draw `u`, the first direction whose
    /// cumulative probability exceeds `u` (`np.random.choice(directions + [None], p=...)`).
    pub fn sample_direction<R: RandomSource + ?Sized>(&self, rng: &mut R) -> Option<FlipDirection> {
        let u = rng.rand();
        let mut cum = 0.0;
        for (d, p) in self.directions.iter().zip(&self.probs) {
            cum += p;
            if u < cum {
                return Some(*d);
            }
        }
        None
    }
}

impl ImageTransform for RandomFlip {
    const NAME: &'static str = "RandomFlip";

    fn apply<R: RandomSource + ?Sized>(&self, img: Image, rng: &mut R) -> Result<Image, DataError> {
        let mut img = img;
        if let Some(d) = self.sample_direction(rng) {
            imflip_in_place(&mut img, d);
        }
        Ok(img)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::random::{Draw, ReplayDraws};

    #[test]
    fn prob_one_always_flips_prob_zero_never() {
        let img = Image::from_fn(3, 1, |x, _| [x as u8]);
        let always = RandomFlipConfig::new(1.0).init().expect("valid");
        let never = RandomFlipConfig::new(0.0).init().expect("valid");
        let mut rng = rand::rng();
        for _ in 0..20 {
            assert_eq!(always.apply(img.clone(), &mut rng).expect("apply").data(), &[2, 1, 0]);
            assert_eq!(never.apply(img.clone(), &mut rng).expect("apply").data(), &[0, 1, 2]);
        }
    }

    #[test]
    fn choice_follows_cumulative_probabilities() {
        let cfg = RandomFlipConfig {
            prob: FlipProb::PerDirection(vec![0.25, 0.5]),
            direction: FlipDirections::Many(vec![FlipDirection::Horizontal, FlipDirection::Vertical]),
            swap_seg_labels: None,
        };
        let t = cfg.init().expect("valid");
        let mut d = ReplayDraws::new([Draw::Uniform(0.1), Draw::Uniform(0.3), Draw::Uniform(0.8)]);
        assert_eq!(t.sample_direction(&mut d), Some(FlipDirection::Horizontal));
        assert_eq!(t.sample_direction(&mut d), Some(FlipDirection::Vertical));
        assert_eq!(t.sample_direction(&mut d), None);
    }

    #[test]
    fn bad_probabilities_are_rejected() {
        assert!(RandomFlipConfig::new(1.5).init().is_err());
        let cfg = RandomFlipConfig {
            prob: FlipProb::PerDirection(vec![0.7, 0.5]),
            direction: FlipDirections::Many(vec![FlipDirection::Horizontal, FlipDirection::Vertical]),
            swap_seg_labels: None,
        };
        assert!(cfg.init().is_err());
    }
}
