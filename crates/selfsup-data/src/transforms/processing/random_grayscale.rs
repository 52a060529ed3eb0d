//! `RandomGrayscale`. Port of `mmcv.transforms.RandomGrayscale` (mmcv 2.0.1,
//! `transforms/processing.py`).
//!
//! # Channel order
//! mmcv weights the channels of its array in array order, and MMSelfSup's arrays are BGR
//! (mmcv decodes with OpenCV), so `channel_weights = (0.114, 0.587, 0.2989)` in MMSelfSup's
//! configs means B·0.114 + G·0.587 + R·0.2989. This crate's images are RGB: the weights are
//! applied reversed, which gives the same grey values. `color_format` does not change the
//! computation in mmcv either (it only converts `'hsv'` input, which cannot occur here).

use serde::{Deserialize, Serialize};

use crate::imaging::Image;
use crate::transforms::{ImageTransform, RandomSource};
use crate::DataError;

/// `color_format` of [`RandomGrayscaleConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorFormat {
    /// `'bgr'` (the default).
    #[default]
    Bgr,
    /// `'rgb'`.
    Rgb,
    /// `'hsv'`: rejected when the transform is built (images here are never HSV).
    Hsv,
}

/// Configuration of [`RandomGrayscale`]. Field names and defaults are mmcv's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomGrayscaleConfig {
    /// Probability of converting. Default 0.1.
    #[serde(default = "default_prob")]
    pub prob: f64,
    /// Keep the number of channels (the grey value repeated) instead of returning one
    /// channel. Default `false`.
    #[serde(default)]
    pub keep_channels: bool,
    /// Weight of each channel, in the reference's (BGR) channel order; normalised to sum 1.
    /// Default `[1, 1, 1]`.
    #[serde(default = "default_weights")]
    pub channel_weights: Vec<f64>,
    /// `'bgr'`, `'rgb'` or `'hsv'`; see the module documentation. Default `'bgr'`.
    #[serde(default)]
    pub color_format: ColorFormat,
}

fn default_prob() -> f64 {
    0.1
}

fn default_weights() -> Vec<f64> {
    vec![1.0, 1.0, 1.0]
}

impl Default for RandomGrayscaleConfig {
    fn default() -> Self {
        Self { prob: default_prob(), keep_channels: false, channel_weights: default_weights(), color_format: ColorFormat::default() }
    }
}

impl RandomGrayscaleConfig {
    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] when `prob` is outside `[0, 1]`, the weights sum to 0 or
    /// are not finite, or `color_format` is `'hsv'`.
    pub fn init(&self) -> Result<RandomGrayscale, DataError> {
        const NAME: &str = "RandomGrayscale";
        if !(0.0..=1.0).contains(&self.prob) {
            return Err(DataError::config(NAME, format!("`prob` must be in [0, 1], got {}", self.prob)));
        }
        if self.color_format == ColorFormat::Hsv {
            return Err(DataError::config(NAME, "`color_format = 'hsv'` is not supported: images are RGB here"));
        }
        // Python's `sum()`, left to right from 0.
        let sum: f64 = self.channel_weights.iter().fold(0.0, |a, &w| a + w);
        if self.channel_weights.is_empty() || sum == 0.0 || !sum.is_finite() || self.channel_weights.iter().any(|w| !w.is_finite()) {
            return Err(DataError::config(
                NAME,
                format!("`channel_weights` must be finite and not sum to 0, got {:?}", self.channel_weights),
            ));
        }
        Ok(RandomGrayscale {
            prob: self.prob,
            keep_channels: self.keep_channels,
            normalized_weights: self.channel_weights.iter().map(|w| w / sum).collect(),
        })
    }
}

/// Converts an image to grey with a given probability.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomGrayscale {
    prob: f64,
    keep_channels: bool,
    /// In the reference's channel order (BGR).
    normalized_weights: Vec<f64>,
}

impl RandomGrayscale {
    /// Draws whether to convert: `random.random() < prob`.
    pub fn sample_apply<R: RandomSource + ?Sized>(&self, rng: &mut R) -> bool {
        rng.rand() < self.prob
    }

    /// Converts `img` when `apply` is `true` (deterministic; exact).
    ///
    /// The grey value is mmcv's `(normalized_weights * img).sum(axis=2).astype('uint8')`:
    /// `f64` products summed in the reference's channel order (B, G, R), truncated.
    /// One-channel images are returned unchanged.
    ///
    /// # Errors
    /// [`DataError::Transform`] when the image's channel count differs from the number of
    /// weights (mmcv asserts).
    pub fn apply_with(&self, img: Image, apply: bool) -> Result<Image, DataError> {
        let c = img.channels();
        if !apply || c == 1 {
            return Ok(img);
        }
        if c != self.normalized_weights.len() {
            return Err(DataError::Transform {
                transform: Self::NAME,
                name: String::new(),
                message: format!("{} channel weights for a {c}-channel image", self.normalized_weights.len()),
            });
        }
        let out_c = if self.keep_channels { c } else { 1 };
        let mut data = Vec::with_capacity(img.width() * img.height() * out_c);
        for px in img.data().chunks_exact(c) {
            // Reference channel k is this image's channel 2 - k (BGR ↔ RGB).
            let g = self
                .normalized_weights
                .iter()
                .enumerate()
                .fold(0.0f64, |acc, (k, w)| acc + w * f64::from(px[if c == 3 { 2 - k } else { k }]));
            let g = g as u8;
            data.extend(std::iter::repeat_n(g, out_c));
        }
        Ok(Image::from_raw(img.width(), img.height(), out_c, data).unwrap_or(img))
    }
}

impl ImageTransform for RandomGrayscale {
    const NAME: &'static str = "RandomGrayscale";

    fn apply<R: RandomSource + ?Sized>(&self, img: Image, rng: &mut R) -> Result<Image, DataError> {
        let apply = self.sample_apply(rng);
        self.apply_with(img, apply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_in_bgr_order() {
        // Weight only the reference's first channel (B): the grey value is our blue channel.
        let t =
            RandomGrayscaleConfig { prob: 1.0, keep_channels: true, channel_weights: vec![1.0, 0.0, 0.0], color_format: ColorFormat::Bgr }
                .init()
                .expect("valid");
        let out = t.apply_with(Image::filled(2, 1, &[10, 20, 30]), true).expect("3 channels");
        assert_eq!(out.data(), &[30, 30, 30, 30, 30, 30]);
        let t = RandomGrayscaleConfig { prob: 1.0, ..Default::default() }.init().expect("valid");
        let out = t.apply_with(Image::filled(1, 1, &[10, 20, 31]), true).expect("3 channels");
        // (10 + 20 + 31) / 3 = 20.33 → 20, one channel.
        assert_eq!((out.channels(), out.data()), (1, &[20u8][..]));
    }

    #[test]
    fn probability_is_a_strict_comparison() {
        use crate::transforms::random::{Draw, ReplayDraws};
        let t = RandomGrayscaleConfig { prob: 0.2, ..Default::default() }.init().expect("valid");
        let mut d = ReplayDraws::new([Draw::Uniform(0.19), Draw::Uniform(0.2)]);
        assert!(t.sample_apply(&mut d));
        assert!(!t.sample_apply(&mut d));
    }

    #[test]
    fn invalid_configs_are_rejected() {
        for cfg in [
            RandomGrayscaleConfig { prob: 1.5, ..Default::default() },
            RandomGrayscaleConfig { channel_weights: vec![1.0, -1.0, 0.0], ..Default::default() },
            RandomGrayscaleConfig { color_format: ColorFormat::Hsv, ..Default::default() },
        ] {
            assert!(cfg.init().is_err(), "{cfg:?}");
        }
    }
}
