//! `CenterCrop`. Port of `mmcv.transforms.CenterCrop` (mmcv 2.0, `transforms/processing.py`).

use serde::{Deserialize, Serialize};

use super::{py_round, SizeSpec};
use crate::imaging::geometric::{imcrop, impad};
use crate::imaging::Image;
use crate::transforms::{ImageTransform, RandomSource};
use crate::DataError;

/// mmcv `Pad`'s `pad_val`: a number, or `{img = ..., seg = ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PadValue {
    /// One value for every channel.
    Number(f64),
    /// Per-target values; only `img` is used here.
    PerKey {
        /// Padding value of the image. Default 0.
        #[serde(default)]
        img: f64,
        /// Padding value of segmentation maps (unused). Default 255.
        #[serde(default = "seg_default")]
        seg: f64,
    },
}

fn seg_default() -> f64 {
    255.0
}

impl PadValue {
    fn img(&self) -> u8 {
        let v = match self {
            PadValue::Number(v) => *v,
            PadValue::PerKey { img, .. } => *img,
        };
        v.clamp(0.0, 255.0) as u8
    }
}

impl Default for PadValue {
    fn default() -> Self {
        PadValue::PerKey { img: 0.0, seg: 255.0 }
    }
}

/// The `pad_cfg` of [`CenterCropConfig`]: mmcv's `Pad` transform config (only the constant
/// mode is supported).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PadConfig {
    /// Must be `"Pad"`.
    #[serde(rename = "type", default = "pad_type")]
    pub kind: String,
    /// Padding value. Default `{img = 0, seg = 255}`.
    #[serde(default)]
    pub pad_val: PadValue,
    /// Must be `"constant"` (the default).
    #[serde(default = "constant")]
    pub padding_mode: String,
}

fn pad_type() -> String {
    "Pad".into()
}

fn constant() -> String {
    "constant".into()
}

impl Default for PadConfig {
    fn default() -> Self {
        Self { kind: pad_type(), pad_val: PadValue::default(), padding_mode: constant() }
    }
}

/// Configuration of [`CenterCrop`]. Field names and defaults are mmcv's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CenterCropConfig {
    /// Crop size: an integer (square) or `[w, h]`. Required.
    pub crop_size: SizeSpec,
    /// Pad (bottom/right, with `pad_cfg`) images smaller than the crop first. Default `false`:
    /// the crop is then clipped to the image, as in mmcv.
    #[serde(default)]
    pub auto_pad: bool,
    /// Padding used with `auto_pad`. Default `{type = "Pad"}`.
    #[serde(default)]
    pub pad_cfg: PadConfig,
    /// Box clipping flag: accepted, unused. Default `true`.
    #[serde(default = "yes")]
    pub clip_object_border: bool,
}

fn yes() -> bool {
    true
}

impl CenterCropConfig {
    /// A centre crop of `crop_size`, mmcv's defaults otherwise.
    pub fn new(crop_size: impl Into<SizeSpec>) -> Self {
        Self { crop_size: crop_size.into(), auto_pad: false, pad_cfg: PadConfig::default(), clip_object_border: true }
    }

    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for an empty crop size or an unsupported `pad_cfg`.
    pub fn init(&self) -> Result<CenterCrop, DataError> {
        let [w, h] = self.crop_size.pair();
        if w == 0 || h == 0 {
            return Err(DataError::config("CenterCrop", format!("`crop_size` must be positive, got {:?}", self.crop_size)));
        }
        if self.pad_cfg.kind != "Pad" || self.pad_cfg.padding_mode != "constant" {
            return Err(DataError::config(
                "CenterCrop",
                format!("only `pad_cfg = {{type = \"Pad\", padding_mode = \"constant\"}}` is supported, got {:?}", self.pad_cfg),
            ));
        }
        Ok(CenterCrop { crop_w: w, crop_h: h, pad: self.auto_pad.then(|| self.pad_cfg.pad_val.img()) })
    }
}

/// Crops the centre of an image.
#[derive(Debug, Clone, PartialEq)]
pub struct CenterCrop {
    crop_w: usize,
    crop_h: usize,
    pad: Option<u8>,
}

impl ImageTransform for CenterCrop {
    const NAME: &'static str = "CenterCrop";

    fn apply<R: RandomSource + ?Sized>(&self, img: Image, _rng: &mut R) -> Result<Image, DataError> {
        let img = match self.pad {
            Some(v) if self.crop_w > img.width() || self.crop_h > img.height() => {
                impad(&img, img.width().max(self.crop_w), img.height().max(self.crop_h), v)
            }
            _ => img,
        };
        if img.is_empty() {
            return Err(DataError::Transform { transform: Self::NAME, name: String::new(), message: "empty input image".into() });
        }
        let (w, h) = (img.width(), img.height());
        // mmcv: y1 = max(0, int(round((h - ch) / 2.))), Python's half-to-even round.
        let y1 = py_round(((h as f64 - self.crop_h as f64) / 2.0).max(0.0));
        let x1 = py_round(((w as f64 - self.crop_w as f64) / 2.0).max(0.0));
        let y2 = h.min(y1 + self.crop_h) - 1;
        let x2 = w.min(x1 + self.crop_w) - 1;
        Ok(imcrop(&img, x1, y1, x2, y2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Image {
        Image::from_fn(w, h, |x, y| [x as u8, y as u8, 0])
    }

    #[test]
    fn centre_crop_is_exact() {
        let t = CenterCropConfig::new(SizeSpec::Pair([3, 2])).init().expect("valid");
        let out = t.apply(ramp(7, 6), &mut rand::rng()).expect("apply");
        assert_eq!((out.width(), out.height()), (3, 2));
        // x1 = round(2.0) = 2, y1 = round(2.0) = 2.
        assert_eq!(out.pixel(0, 0), &[2, 2, 0]);
        assert_eq!(out.pixel(2, 1), &[4, 3, 0]);
        // (257 - 224) / 2 = 16.5 → Python rounds to 16 (half to even); (259 - 224)/2 = 17.5 → 18.
        let t = CenterCropConfig::new(224).init().expect("valid");
        let out = t.apply(ramp(257, 259), &mut rand::rng()).expect("apply");
        assert_eq!(out.pixel(0, 0), &[16, 18, 0]);
    }

    #[test]
    fn larger_crop_is_clipped_or_padded() {
        let t = CenterCropConfig::new(5).init().expect("valid");
        let out = t.apply(ramp(3, 8), &mut rand::rng()).expect("apply");
        assert_eq!((out.width(), out.height()), (3, 5));
        let mut cfg = CenterCropConfig::new(5);
        cfg.auto_pad = true;
        let out = cfg.init().expect("valid").apply(ramp(3, 8), &mut rand::rng()).expect("apply");
        assert_eq!((out.width(), out.height()), (5, 5));
        // Padded on the right with 0: column 3 and 4 are padding.
        assert_eq!(out.pixel(4, 0), &[0, 0, 0]);
    }
}
