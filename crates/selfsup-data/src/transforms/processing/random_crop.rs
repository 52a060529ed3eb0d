//! `RandomCrop`. Port of `mmselfsup.datasets.transforms.RandomCrop` (mmselfsup 1.0.0,
//! `datasets/transforms/processing.py`), torchvision's `RandomCrop` on top of `mmcv.impad`
//! and `mmcv.imcrop`.
//!
//! Two behaviours of the reference are kept on purpose:
//! - the fixed `padding` is always constant padding with `pad_val` (MMSelfSup does not pass
//!   `padding_mode` to that `impad` call); `padding_mode` applies to `pad_if_needed` only;
//! - a scalar `pad_val` fills only the reference's **first** channel (OpenCV turns a number
//!   into the scalar `(v, 0, 0, 0)`), i.e. blue in MMSelfSup's BGR arrays, which is channel 2
//!   of this crate's RGB images. A per-channel `pad_val` is given in BGR order, as in the
//!   reference configs.

use serde::{Deserialize, Serialize};

use super::SizeSpec;
use crate::imaging::geometric::{crop_window, impad_border, PaddingMode};
use crate::imaging::Image;
use crate::transforms::{ImageTransform, RandomSource};
use crate::DataError;

/// `padding` of [`RandomCropConfig`]: one number for every border, `[left/right,
/// top/bottom]`, or `[left, top, right, bottom]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CropPadding {
    /// The same padding on the four borders.
    All(usize),
    /// `[left and right, top and bottom]`.
    Symmetric([usize; 2]),
    /// `[left, top, right, bottom]`.
    Borders([usize; 4]),
}

impl CropPadding {
    /// `[left, top, right, bottom]`.
    pub fn borders(self) -> [usize; 4] {
        match self {
            CropPadding::All(p) => [p; 4],
            CropPadding::Symmetric([lr, tb]) => [lr, tb, lr, tb],
            CropPadding::Borders(b) => b,
        }
    }
}

/// `pad_val` of [`RandomCropConfig`]: a number or one value per channel (BGR order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PadFill {
    /// OpenCV's scalar `(v, 0, 0, 0)`: `v` in the reference's first channel, 0 elsewhere.
    Number(f64),
    /// One value per channel, in the reference's channel order (BGR).
    PerChannel(Vec<f64>),
}

impl Default for PadFill {
    fn default() -> Self {
        PadFill::Number(0.0)
    }
}

impl PadFill {
    /// The padding value of each channel of a `channels`-channel image, in this crate's
    /// channel order (RGB for 3 channels), converted as OpenCV's `saturate_cast<uchar>`
    /// (round half to even, clamp).
    ///
    /// # Errors
    /// A message when a per-channel value list does not have `channels` entries.
    pub fn values(&self, channels: usize) -> Result<Vec<u8>, String> {
        let cast = |v: f64| v.round_ties_even().clamp(0.0, 255.0) as u8;
        let mut reference_order: Vec<u8> = match self {
            PadFill::Number(v) => {
                let mut out = vec![0; channels];
                if let Some(first) = out.first_mut() {
                    *first = cast(*v);
                }
                out
            }
            PadFill::PerChannel(vs) => {
                if vs.len() != channels {
                    return Err(format!("`pad_val` has {} values for a {channels}-channel image", vs.len()));
                }
                vs.iter().map(|&v| cast(v)).collect()
            }
        };
        if channels == 3 {
            reference_order.reverse(); // BGR → RGB
        }
        Ok(reference_order)
    }
}

/// Configuration of [`RandomCrop`]. Field names and defaults are MMSelfSup's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomCropConfig {
    /// Crop size: an integer for a square, or `[h, w]`. Required.
    pub size: SizeSpec,
    /// Constant padding added to every image first. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub padding: Option<CropPadding>,
    /// Pad images smaller than the crop (by the missing amount on **both** sides, as
    /// torchvision does) with `padding_mode`. Default `false`.
    #[serde(default)]
    pub pad_if_needed: bool,
    /// Constant padding value; see the module documentation. Default 0.
    #[serde(default)]
    pub pad_val: PadFill,
    /// Border mode of `pad_if_needed`: `constant`, `edge`, `reflect` or `symmetric`.
    /// Default `constant`.
    #[serde(default)]
    pub padding_mode: PaddingMode,
}

impl RandomCropConfig {
    /// A crop of `size` (an integer or `[h, w]`) with MMSelfSup's defaults.
    pub fn new(size: impl Into<SizeSpec>) -> Self {
        Self { size: size.into(), padding: None, pad_if_needed: false, pad_val: PadFill::default(), padding_mode: PaddingMode::default() }
    }

    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for an empty size or a non-finite `pad_val`.
    pub fn init(&self) -> Result<RandomCrop, DataError> {
        let [h, w] = self.size.pair();
        if h == 0 || w == 0 {
            return Err(DataError::config(RandomCrop::NAME, format!("`size` must be positive, got {:?}", self.size)));
        }
        let finite = match &self.pad_val {
            PadFill::Number(v) => v.is_finite(),
            PadFill::PerChannel(vs) => vs.iter().all(|v| v.is_finite()),
        };
        if !finite {
            return Err(DataError::config(RandomCrop::NAME, format!("`pad_val` must be finite, got {:?}", self.pad_val)));
        }
        Ok(RandomCrop {
            height: h,
            width: w,
            padding: self.padding.map(CropPadding::borders),
            pad_if_needed: self.pad_if_needed,
            pad_val: self.pad_val.clone(),
            padding_mode: self.padding_mode,
        })
    }
}

/// Crops a fixed-size window at a random position, after optional padding.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomCrop {
    height: usize,
    width: usize,
    padding: Option<[usize; 4]>,
    pad_if_needed: bool,
    pad_val: PadFill,
    padding_mode: PaddingMode,
}

impl RandomCrop {
    /// Crop `(height, width)`.
    pub fn size(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    fn error(message: String) -> DataError {
        DataError::Transform { transform: Self::NAME, name: String::new(), message }
    }

    /// The padding steps of the reference (deterministic): the constant `padding`, then, with
    /// `pad_if_needed`, the missing rows on the top and bottom and the missing columns on the
    /// left and right, with `padding_mode`.
    ///
    /// # Errors
    /// [`DataError::Transform`] when a per-channel `pad_val` does not match the image.
    pub fn pad(&self, img: Image) -> Result<Image, DataError> {
        let mut img = img;
        let needs_fill = self.padding.is_some() || (self.pad_if_needed && self.padding_mode == PaddingMode::Constant);
        let fill = if needs_fill { self.pad_val.values(img.channels()).map_err(Self::error)? } else { Vec::new() };
        if let Some(borders) = self.padding {
            img = impad_border(&img, borders, PaddingMode::Constant, &fill);
        }
        if self.pad_if_needed && img.height() < self.height {
            let d = self.height - img.height();
            img = impad_border(&img, [0, d, 0, d], self.padding_mode, &fill);
        }
        if self.pad_if_needed && img.width() < self.width {
            let d = self.width - img.width();
            img = impad_border(&img, [d, 0, d, 0], self.padding_mode, &fill);
        }
        Ok(img)
    }

    /// Draws the top-left corner `(top, left)` of the crop in a padded `width × height` image:
    /// no draw when the image already has the crop size, else `top = randint(0, height − h)`
    /// then `left = randint(0, width − w)` (inclusive, Python's `random.randint`).
    ///
    /// # Errors
    /// [`DataError::Transform`] when the (padded) image is smaller than the crop.
    pub fn sample_offsets<R: RandomSource + ?Sized>(&self, width: usize, height: usize, rng: &mut R) -> Result<(usize, usize), DataError> {
        if width == self.width && height == self.height {
            return Ok((0, 0));
        }
        if width < self.width || height < self.height {
            return Err(Self::error(format!(
                "the image is {width}x{height} (after padding) but the crop is {}x{}; \
                 set `pad_if_needed = true` or a `padding`",
                self.width, self.height
            )));
        }
        let top = rng.randint(0, height - self.height + 1);
        let left = rng.randint(0, width - self.width + 1);
        Ok((top, left))
    }

    /// Pads `img` ([`RandomCrop::pad`]) and crops the window whose top-left corner is
    /// `(top, left)` in the padded image (deterministic; exact).
    ///
    /// # Errors
    /// [`DataError::Transform`] when the window does not fit in the padded image.
    pub fn apply_with(&self, img: Image, top: usize, left: usize) -> Result<Image, DataError> {
        let img = self.pad(img)?;
        if top + self.height > img.height() || left + self.width > img.width() {
            return Err(Self::error(format!(
                "crop {}x{} at (left {left}, top {top}) does not fit in the {}x{} padded image",
                self.width,
                self.height,
                img.width(),
                img.height()
            )));
        }
        Ok(crop_window(&img, left, top, self.width, self.height))
    }
}

impl ImageTransform for RandomCrop {
    const NAME: &'static str = "RandomCrop";

    fn apply<R: RandomSource + ?Sized>(&self, img: Image, rng: &mut R) -> Result<Image, DataError> {
        let img = self.pad(img)?;
        let (top, left) = self.sample_offsets(img.width(), img.height(), rng)?;
        // Already padded: crop directly.
        Ok(crop_window(&img, left, top, self.width, self.height))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::random::{Draw, ReplayDraws};

    fn ramp(w: usize, h: usize) -> Image {
        Image::from_fn(w, h, |x, y| [x as u8, y as u8, 50])
    }

    #[test]
    fn crops_at_the_drawn_offsets() {
        let t = RandomCropConfig::new(SizeSpec::Pair([2, 3])).init().expect("valid");
        let mut d = ReplayDraws::new([Draw::Int(1), Draw::Int(4)]);
        let out = t.apply(ramp(8, 5), &mut d).expect("fits");
        assert_eq!((out.width(), out.height()), (3, 2));
        assert_eq!(out.pixel(0, 0), &[4, 1, 50]);
        // Same size: no draw at all.
        let mut none = ReplayDraws::new([]);
        let out = t.apply(ramp(3, 2), &mut none).expect("fits");
        assert_eq!(out, ramp(3, 2));
    }

    #[test]
    fn scalar_pad_value_fills_the_reference_first_channel() {
        let mut cfg = RandomCropConfig::new(4);
        cfg.padding = Some(CropPadding::All(1));
        cfg.pad_val = PadFill::Number(100.0);
        let t = cfg.init().expect("valid");
        let out = t.apply_with(ramp(2, 2), 0, 0).expect("fits");
        // BGR (100, 0, 0) is RGB (0, 0, 100).
        assert_eq!(out.pixel(0, 0), &[0, 0, 100]);
        assert_eq!(out.pixel(1, 1), &[0, 0, 50]);
        cfg.pad_val = PadFill::PerChannel(vec![1.0, 2.0, 3.0]);
        let out = cfg.init().expect("valid").apply_with(ramp(2, 2), 0, 0).expect("fits");
        assert_eq!(out.pixel(3, 3), &[3, 2, 1]);
        cfg.pad_val = PadFill::PerChannel(vec![1.0, 2.0]);
        assert!(cfg.init().expect("valid").apply_with(ramp(2, 2), 0, 0).is_err());
    }

    #[test]
    fn pad_if_needed_pads_both_sides_by_the_deficit() {
        let mut cfg = RandomCropConfig::new(SizeSpec::Pair([5, 4]));
        cfg.pad_if_needed = true;
        cfg.padding_mode = PaddingMode::Edge;
        let t = cfg.init().expect("valid");
        let padded = t.pad(ramp(2, 3)).expect("pads");
        // Height 3 → 3 + 2·2 = 7; width 2 → 2 + 2·2 = 6.
        assert_eq!((padded.width(), padded.height()), (6, 7));
        assert_eq!(padded.pixel(0, 0), &[0, 0, 50]);
        assert_eq!(padded.pixel(5, 6), &[1, 2, 50]);
    }

    #[test]
    fn too_small_without_padding_is_a_sample_error() {
        let t = RandomCropConfig::new(10).init().expect("valid");
        let err = t.apply(ramp(4, 4), &mut rand::rng()).expect_err("too small");
        assert!(err.is_sample_error(), "{err}");
        assert!(RandomCropConfig::new(0).init().is_err());
    }
}
