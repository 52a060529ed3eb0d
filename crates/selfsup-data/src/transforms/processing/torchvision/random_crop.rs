//! `torchvision/RandomCrop`: `torchvision.transforms.RandomCrop` (torchvision 0.24) on a
//! PIL image, under mmcls's wrapper (see the [module documentation](super)).
//!
//! `forward` in torchvision's order:
//! 1. with `padding`, `F.pad(img, padding, fill, padding_mode)`;
//! 2. with `pad_if_needed`, a width below the crop's is padded by the missing amount on the
//!    left **and** the right, then a height below it on the top and the bottom (same `fill`
//!    and `padding_mode`);
//! 3. `get_params`: an image smaller than the crop is an error; one of exactly the crop's
//!    size is returned whole without drawing; otherwise `i = randint(0, h − th + 1)` (top)
//!    then `j = randint(0, w − tw + 1)` (left), torch's `randint` with an exclusive end;
//! 4. `F.crop(img, i, j, th, tw)`.
//!
//! Padding of a PIL image ([`np_pad`]): `constant` is `ImageOps.expand` with `fill`; `edge`,
//! `reflect` and `symmetric` are `np.pad`, whose reflections differ from OpenCV's (and from
//! mmselfsup's [`RandomCrop`](crate::transforms::RandomCrop)) when a pad exceeds the image.
//! Unlike mmselfsup's `RandomCrop`, `padding_mode` also applies to the fixed `padding`, and a
//! number `fill` fills **every** channel.

use serde::{Deserialize, Serialize};

use super::{ParsedSize, TorchvisionSize};
use crate::imaging::geometric::{crop_window, np_pad, PaddingMode};
use crate::imaging::Image;
use crate::transforms::{ImageTransform, RandomSource};
use crate::DataError;

/// `padding` of [`TorchvisionRandomCropConfig`]: a number for every border, or a list of one
/// (the same), two (`[left/right, top/bottom]`) or four (`[left, top, right, bottom]`)
/// numbers. Negative padding (which torchvision turns into cropping) is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TorchvisionPadding {
    /// The same padding on the four borders.
    Int(usize),
    /// One, two or four values.
    List(Vec<usize>),
}

impl TorchvisionPadding {
    /// `[left, top, right, bottom]`; a message for a list of another length.
    pub fn borders(&self) -> Result<[usize; 4], String> {
        match self {
            TorchvisionPadding::Int(p) => Ok([*p; 4]),
            TorchvisionPadding::List(v) => match v.as_slice() {
                [p] => Ok([*p; 4]),
                [lr, tb] => Ok([*lr, *tb, *lr, *tb]),
                [l, t, r, b] => Ok([*l, *t, *r, *b]),
                _ => Err(format!("`padding` must be a number or a list of 1, 2 or 4 numbers, got {v:?}")),
            },
        }
    }
}

/// `fill` of [`TorchvisionRandomCropConfig`] (used by `padding_mode = 'constant'` only): a
/// number for every channel, or one value per channel of the PIL image, in **its** channel
/// order (RGB after `ToPIL(to_rgb=True)`, the loaded BGR after `ToPIL(to_rgb=False)`); a
/// one-value list is a number. Values are truncated toward zero (`int(x)`, torchvision's
/// `_parse_fill`), then clipped to 0..=255 (Pillow's colour).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TorchvisionFill {
    /// The same value in every channel.
    Number(f64),
    /// One value per channel.
    List(Vec<f64>),
}

impl Default for TorchvisionFill {
    fn default() -> Self {
        TorchvisionFill::Number(0.0)
    }
}

impl TorchvisionFill {
    fn values_f64(&self) -> &[f64] {
        match self {
            TorchvisionFill::Number(v) => std::slice::from_ref(v),
            TorchvisionFill::List(v) => v,
        }
    }

    /// The fill of each channel of a `channels`-channel image.
    ///
    /// # Errors
    /// A message when a list has neither one nor `channels` values (torchvision's
    /// `ValueError`).
    pub fn values(&self, channels: usize) -> Result<Vec<u8>, String> {
        let cast = |v: f64| v.trunc().clamp(0.0, 255.0) as u8;
        match self.values_f64() {
            [v] => Ok(vec![cast(*v); channels]),
            vs if vs.len() == channels => Ok(vs.iter().map(|&v| cast(v)).collect()),
            vs => Err(format!("`fill` has {} values for a {channels}-channel image", vs.len())),
        }
    }
}

/// Configuration of [`TorchvisionRandomCrop`]. Field names and defaults are torchvision's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TorchvisionRandomCropConfig {
    /// Crop size: an integer (or `[s]`) for a square, or `[h, w]`. Required.
    pub size: TorchvisionSize,
    /// Padding added first, with `padding_mode`. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub padding: Option<TorchvisionPadding>,
    /// Pad an image smaller than the crop by the missing amount on both sides. Default
    /// `false`.
    #[serde(default)]
    pub pad_if_needed: bool,
    /// Constant padding value(s). Default 0.
    #[serde(default)]
    pub fill: TorchvisionFill,
    /// `constant`, `edge`, `reflect` or `symmetric`. Default `constant`.
    #[serde(default)]
    pub padding_mode: PaddingMode,
}

impl TorchvisionRandomCropConfig {
    /// A crop of `size`, torchvision's defaults otherwise.
    pub fn new(size: impl Into<TorchvisionSize>) -> Self {
        Self {
            size: size.into(),
            padding: None,
            pad_if_needed: false,
            fill: TorchvisionFill::default(),
            padding_mode: PaddingMode::default(),
        }
    }

    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for a zero or a list of another length in `size`, a
    /// `padding` list of another length than 1, 2 or 4, or a non-finite `fill`.
    pub fn init(&self) -> Result<TorchvisionRandomCrop, DataError> {
        let err = |m: String| DataError::config(TorchvisionRandomCrop::NAME, m);
        let (height, width) = match self.size.parse().map_err(err)? {
            ParsedSize::One(s) => (s, s),
            ParsedSize::Pair(h, w) => (h, w),
        };
        let padding = self.padding.as_ref().map(TorchvisionPadding::borders).transpose().map_err(err)?;
        if self.fill.values_f64().iter().any(|v| !v.is_finite()) {
            return Err(err(format!("`fill` must be finite, got {:?}", self.fill)));
        }
        Ok(TorchvisionRandomCrop {
            height,
            width,
            padding,
            pad_if_needed: self.pad_if_needed,
            fill: self.fill.clone(),
            padding_mode: self.padding_mode,
        })
    }
}

/// Crops a fixed-size window at a random position of a PIL image, after optional padding.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchvisionRandomCrop {
    height: usize,
    width: usize,
    padding: Option<[usize; 4]>,
    pad_if_needed: bool,
    fill: TorchvisionFill,
    padding_mode: PaddingMode,
}

impl TorchvisionRandomCrop {
    /// Crop `(height, width)`.
    pub fn size(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    fn error(message: String) -> DataError {
        DataError::Transform { transform: Self::NAME, name: String::new(), message }
    }

    fn pad_borders(&self, img: Image, borders: [usize; 4]) -> Result<Image, DataError> {
        let fill =
            if self.padding_mode == PaddingMode::Constant { self.fill.values(img.channels()).map_err(Self::error)? } else { Vec::new() };
        if img.is_empty() && self.padding_mode != PaddingMode::Constant {
            return Err(Self::error(format!("cannot pad an empty image in `{:?}` mode", self.padding_mode)));
        }
        Ok(np_pad(&img, borders, self.padding_mode, &fill))
    }

    /// The padding steps of `forward` (deterministic): `padding`, then, with
    /// `pad_if_needed`, the missing columns on the left and right, then the missing rows on
    /// the top and bottom.
    ///
    /// # Errors
    /// [`DataError::Transform`] when a per-channel `fill` does not match the image (constant
    /// mode only, as torchvision), or an empty image would be reflected.
    pub fn pad(&self, img: Image) -> Result<Image, DataError> {
        let mut img = img;
        if let Some(borders) = self.padding {
            img = self.pad_borders(img, borders)?;
        }
        let height = img.height();
        if self.pad_if_needed && img.width() < self.width {
            let d = self.width - img.width();
            img = self.pad_borders(img, [d, 0, d, 0])?;
        }
        if self.pad_if_needed && height < self.height {
            let d = self.height - height;
            img = self.pad_borders(img, [0, d, 0, d])?;
        }
        Ok(img)
    }

    /// `get_params` on a padded `width × height` image: the crop's top-left corner
    /// `(top, left)`; no draw when the image has the crop's size, else `top` then `left`,
    /// each `randint(0, range + 1)`.
    ///
    /// # Errors
    /// [`DataError::Transform`] when the (padded) image is smaller than the crop.
    pub fn sample_offsets<R: RandomSource + ?Sized>(&self, width: usize, height: usize, rng: &mut R) -> Result<(usize, usize), DataError> {
        if height < self.height || width < self.width {
            return Err(Self::error(format!(
                "required crop size ({}, {}) is larger than input image size ({height}, {width}) (after padding); set \
                 `pad_if_needed = true` or a `padding`",
                self.height, self.width
            )));
        }
        if width == self.width && height == self.height {
            return Ok((0, 0));
        }
        let top = rng.randint(0, height - self.height + 1);
        let left = rng.randint(0, width - self.width + 1);
        Ok((top, left))
    }

    /// Pads `img` ([`TorchvisionRandomCrop::pad`]) and crops the window whose top-left corner
    /// is `(top, left)` in the padded image (deterministic; exact).
    ///
    /// # Errors
    /// [`DataError::Transform`] when padding fails or the window does not fit.
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

impl ImageTransform for TorchvisionRandomCrop {
    const NAME: &'static str = "torchvision/RandomCrop";

    fn apply<R: RandomSource + ?Sized>(&self, img: Image, rng: &mut R) -> Result<Image, DataError> {
        let img = self.pad(img)?;
        let (top, left) = self.sample_offsets(img.width(), img.height(), rng)?;
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

    fn crop(json: &str) -> TorchvisionRandomCrop {
        serde_json::from_str::<TorchvisionRandomCropConfig>(json).expect("parses").init().expect("valid")
    }

    #[test]
    fn draws_top_then_left_in_the_padded_image() {
        let t = crop(r#"{"size": [3, 2], "padding": 1, "padding_mode": "reflect"}"#);
        // 4x5 → 6x7: top in [0, 4], left in [0, 4].
        let mut d = ReplayDraws::new([Draw::Int(0), Draw::Int(4)]);
        let out = t.apply(ramp(4, 5), &mut d).expect("fits");
        assert_eq!((out.width(), out.height()), (2, 3));
        // Padded column 4 is x = 3, padded column 5 reflects x = 2; padded row 0 reflects y = 1.
        assert_eq!(out.pixel(0, 0), &[3, 1, 50]);
        assert_eq!(out.pixel(1, 0), &[2, 1, 50]);
        // Exactly the padded size: no draw.
        let t = crop(r#"{"size": [7, 6], "padding": 1}"#);
        let out = t.apply(ramp(4, 5), &mut ReplayDraws::new([])).expect("fits");
        assert_eq!(out.pixel(0, 0), &[0, 0, 0]);
    }

    #[test]
    fn fill_is_every_channel_or_one_value_each() {
        let out = crop(r#"{"size": 4, "padding": 1, "fill": 7.9}"#).apply_with(ramp(2, 2), 0, 0).expect("fits");
        assert_eq!(out.pixel(0, 0), &[7, 7, 7]);
        let out = crop(r#"{"size": 4, "padding": [1], "fill": [300, -2, 3]}"#).apply_with(ramp(2, 2), 0, 0).expect("fits");
        assert_eq!(out.pixel(3, 3), &[255, 0, 3]);
        assert_eq!(out.pixel(1, 1), &[0, 0, 50]);
        let bad = crop(r#"{"size": 4, "padding": 1, "fill": [1, 2]}"#);
        assert!(bad.apply_with(ramp(2, 2), 0, 0).is_err());
        // The fill is not used (nor checked) by the other modes.
        assert!(crop(r#"{"size": 4, "padding": 1, "fill": [1, 2], "padding_mode": "edge"}"#).apply_with(ramp(2, 2), 0, 0).is_ok());
    }

    #[test]
    fn pad_if_needed_pads_both_sides_by_the_deficit() {
        let t = crop(r#"{"size": [5, 4], "pad_if_needed": true, "padding_mode": "edge"}"#);
        let padded = t.pad(ramp(2, 3)).expect("pads");
        assert_eq!((padded.width(), padded.height()), (6, 7));
        assert_eq!(padded.pixel(0, 0), &[0, 0, 50]);
        assert_eq!(padded.pixel(5, 6), &[1, 2, 50]);
    }

    #[test]
    fn offsets_cover_the_range_uniformly() {
        use rand::SeedableRng;
        let t = crop(r#"{"size": 2}"#);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut counts = [[0usize; 3]; 2];
        for _ in 0..3000 {
            let (top, left) = t.sample_offsets(4, 3, &mut rng).expect("fits");
            counts[0][top] += 1;
            counts[1][left] += 1;
        }
        // top in [0, 1], left in [0, 2].
        assert_eq!(counts[0][2], 0);
        for &c in &counts[0][..2] {
            assert!((1350..1650).contains(&c), "{counts:?}");
        }
        for &c in &counts[1] {
            assert!((880..1120).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn bad_configs_and_small_images_are_errors() {
        let parse = |json: &str| {
            serde_json::from_str::<TorchvisionRandomCropConfig>(json)
                .map_err(|e| e.to_string())
                .and_then(|c| c.init().map_err(|e| e.to_string()))
        };
        assert!(parse(r#"{"size": [1, 2, 3]}"#).is_err());
        assert!(parse(r#"{"size": 2, "padding": [1, 2, 3]}"#).is_err());
        assert!(parse(r#"{"size": 2, "padding": -1}"#).is_err());
        assert!(parse(r#"{"size": 2, "padding_mode": "wrap"}"#).is_err());
        let err = crop(r#"{"size": 10}"#).apply(ramp(4, 4), &mut rand::rng()).expect_err("too small");
        assert!(err.is_sample_error(), "{err}");
    }
}
