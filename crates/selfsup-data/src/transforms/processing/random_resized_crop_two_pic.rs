//! `RandomResizedCropAndInterpolationWithTwoPic`. Port of
//! `mmselfsup.datasets.transforms.RandomResizedCropAndInterpolationWithTwoPic` (mmselfsup
//! 1.0.0, `datasets/transforms/processing.py`), from BEiT: one random crop resized to
//! `size` (the model's input) and, with `second_size`, again to `second_size` (the target
//! tokenizer's input, e.g. DALL-E's 112 px).
//!
//! **The reference's interpolations are not what their names say.** MMSelfSup 1.0.0 maps the
//! names to Pillow constants (`bicubic` → 3, `lanczos` → 1, `hamming` → 5, anything else →
//! `BILINEAR` = 2) and hands them to `cv2.resize`, which reads them as OpenCV flags. So
//! `bicubic` resizes with OpenCV's `INTER_AREA`, `lanczos` with `INTER_LINEAR`, the default
//! `bilinear` with `INTER_CUBIC`, and `random` picks `INTER_CUBIC` or `INTER_AREA`. This port
//! reproduces what the reference computes (parity), not what the names suggest; `hamming`
//! (OpenCV's `INTER_LINEAR_EXACT`) is not ported and is rejected when the transform is built.
//!
//! Sizes go to `cv2.resize` as its `dsize`, i.e. a pair is `[width, height]`.
//!
//! The crop window is torchvision's `get_params` with 10 attempts, as in
//! [`RandomResizedCrop::get_params`], which also refuses empty windows (the reference would
//! fail in `cv2.resize` on one).

use serde::{Deserialize, Serialize};

use super::{CropParams, RandomResizedCrop, SizeSpec};
use crate::imaging::cv2::{self, Cv2Interpolation};
use crate::imaging::geometric::crop_window;
use crate::imaging::Image;
use crate::transforms::{single_image, RandomSource, Results};
use crate::DataError;

/// Interpolation names of [`RandomResizedCropAndInterpolationWithTwoPicConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TwoPicInterpolation {
    /// `'bilinear'`: OpenCV `INTER_CUBIC` in the reference (see the module docs).
    Bilinear,
    /// `'bicubic'`: OpenCV `INTER_AREA` in the reference.
    Bicubic,
    /// `'lanczos'`: OpenCV `INTER_LINEAR` in the reference.
    Lanczos,
    /// `'hamming'`: OpenCV `INTER_LINEAR_EXACT` in the reference; not supported.
    Hamming,
    /// `'random'` (first image only): `INTER_CUBIC` or `INTER_AREA`, drawn per sample.
    Random,
}

impl TwoPicInterpolation {
    /// The OpenCV interpolation the reference actually uses, `None` for `random`/`hamming`.
    fn cv2(self) -> Option<Cv2Interpolation> {
        match self {
            TwoPicInterpolation::Bilinear => Some(Cv2Interpolation::Bicubic),
            TwoPicInterpolation::Bicubic => Some(Cv2Interpolation::Area),
            TwoPicInterpolation::Lanczos => Some(Cv2Interpolation::Bilinear),
            TwoPicInterpolation::Hamming | TwoPicInterpolation::Random => None,
        }
    }
}

/// Configuration of [`RandomResizedCropAndInterpolationWithTwoPic`]. Field names and
/// defaults are MMSelfSup's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomResizedCropAndInterpolationWithTwoPicConfig {
    /// First output size: an integer for a square, or `[w, h]`. Required.
    pub size: SizeSpec,
    /// Second output size, or `None` (default) for one image only.
    #[serde(default)]
    pub second_size: Option<SizeSpec>,
    /// Range of the crop area as a fraction of the image area. Default `[0.08, 1.0]`.
    #[serde(default = "default_scale")]
    pub scale: [f64; 2],
    /// Range of the crop aspect ratio (width / height). Default `[3/4, 4/3]`.
    #[serde(default = "default_ratio")]
    pub ratio: [f64; 2],
    /// Interpolation of the first image. Default `bilinear`.
    #[serde(default = "default_interpolation")]
    pub interpolation: TwoPicInterpolation,
    /// Interpolation of the second image. Default `lanczos`.
    #[serde(default = "default_second_interpolation")]
    pub second_interpolation: TwoPicInterpolation,
}

fn default_scale() -> [f64; 2] {
    [0.08, 1.0]
}

fn default_ratio() -> [f64; 2] {
    [3.0 / 4.0, 4.0 / 3.0]
}

fn default_interpolation() -> TwoPicInterpolation {
    TwoPicInterpolation::Bilinear
}

fn default_second_interpolation() -> TwoPicInterpolation {
    TwoPicInterpolation::Lanczos
}

impl RandomResizedCropAndInterpolationWithTwoPicConfig {
    /// MMSelfSup's defaults with the given first size.
    pub fn new(size: impl Into<SizeSpec>) -> Self {
        Self {
            size: size.into(),
            second_size: None,
            scale: default_scale(),
            ratio: default_ratio(),
            interpolation: default_interpolation(),
            second_interpolation: default_second_interpolation(),
        }
    }

    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for an empty size, a bad range, `hamming`, or `random`
    /// as the second interpolation (the reference falls back to its default there; say
    /// `bilinear` instead).
    pub fn init(&self) -> Result<RandomResizedCropAndInterpolationWithTwoPic, DataError> {
        let name = RandomResizedCropAndInterpolationWithTwoPic::NAME;
        let sizes = std::iter::once(self.size).chain(self.second_size);
        if sizes.clone().any(|s| s.pair().contains(&0)) {
            return Err(DataError::config(name, "sizes must be positive"));
        }
        if self.scale[0] > self.scale[1] || self.ratio[0] > self.ratio[1] || self.ratio[0] <= 0.0 || self.scale[0] < 0.0 {
            return Err(DataError::config(
                name,
                format!(
                    "expected 0 <= scale min <= max and 0 < ratio min <= max, got scale {:?} \
                     and ratio {:?}",
                    self.scale, self.ratio
                ),
            ));
        }
        let first = match self.interpolation {
            TwoPicInterpolation::Random => None,
            TwoPicInterpolation::Hamming => {
                return Err(DataError::config(
                    name,
                    "interpolation 'hamming' (OpenCV INTER_LINEAR_EXACT in MMSelfSup) is not \
                     supported",
                ))
            }
            i => i.cv2(),
        };
        let second = self.second_interpolation.cv2().ok_or_else(|| {
            DataError::config(
                name,
                format!(
                    "second_interpolation {:?} is not supported (use bilinear, bicubic or \
                     lanczos)",
                    self.second_interpolation
                ),
            )
        })?;
        let [w, h] = self.size.pair();
        Ok(RandomResizedCropAndInterpolationWithTwoPic {
            size: (w, h),
            second_size: self.second_size.map(|s| {
                let [w, h] = s.pair();
                (w, h)
            }),
            scale: self.scale,
            ratio: self.ratio,
            interpolation: first,
            second_interpolation: second,
        })
    }
}

/// One random crop, resized to one or two sizes; see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomResizedCropAndInterpolationWithTwoPic {
    size: (usize, usize),
    second_size: Option<(usize, usize)>,
    scale: [f64; 2],
    ratio: [f64; 2],
    /// `None`: drawn per sample (`random`).
    interpolation: Option<Cv2Interpolation>,
    second_interpolation: Cv2Interpolation,
}

/// The random parameters of one [`RandomResizedCropAndInterpolationWithTwoPic`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwoPicParams {
    /// The crop window.
    pub crop: CropParams,
    /// The OpenCV interpolation of the first image.
    pub interpolation: Cv2Interpolation,
}

impl RandomResizedCropAndInterpolationWithTwoPic {
    /// The registry name.
    pub const NAME: &'static str = "RandomResizedCropAndInterpolationWithTwoPic";

    /// Draws the crop window, then (for `random`) the interpolation:
    /// `random.choice((INTER_CUBIC, INTER_AREA))` as `randint(0, 2)`.
    pub fn sample_params<R: RandomSource + ?Sized>(&self, width: usize, height: usize, rng: &mut R) -> TwoPicParams {
        let crop = RandomResizedCrop::get_params(width, height, self.scale, self.ratio, 10, rng);
        let interpolation =
            self.interpolation.unwrap_or_else(|| if rng.randint(0, 2) == 0 { Cv2Interpolation::Bicubic } else { Cv2Interpolation::Area });
        TwoPicParams { crop, interpolation }
    }

    /// Crops and resizes with given parameters: the first image, then the second if any.
    ///
    /// # Errors
    /// [`DataError::Transform`] when the window is empty.
    pub fn apply_params(&self, img: &Image, params: TwoPicParams) -> Result<Vec<Image>, DataError> {
        let c = params.crop;
        if c.width == 0 || c.height == 0 {
            return Err(DataError::Transform {
                transform: Self::NAME,
                name: String::new(),
                message: format!("empty crop window {c:?} for a {}x{} image", img.width(), img.height()),
            });
        }
        let cropped = crop_window(img, c.left, c.top, c.width, c.height);
        let mut out = vec![cv2::resize(&cropped, self.size.0, self.size.1, params.interpolation)];
        if let Some((w, h)) = self.second_size {
            out.push(cv2::resize(&cropped, w, h, self.second_interpolation));
        }
        Ok(out)
    }

    /// Replaces the one image of `results` by its one or two resized crops.
    ///
    /// # Errors
    /// [`DataError::Transform`] when `results` does not hold exactly one non-empty image.
    pub fn transform<R: RandomSource + ?Sized>(&self, mut results: Results, rng: &mut R) -> Result<Results, DataError> {
        let img = single_image(&mut results, Self::NAME)?;
        if img.is_empty() {
            return Err(DataError::Transform { transform: Self::NAME, name: String::new(), message: "empty input image".into() });
        }
        let params = self.sample_params(img.width(), img.height(), rng);
        results.img = self.apply_params(&img, params)?;
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::{Draw, ReplayDraws};

    #[test]
    fn one_crop_two_sizes() {
        let t = RandomResizedCropAndInterpolationWithTwoPicConfig {
            second_size: Some(SizeSpec::Int(6)),
            interpolation: TwoPicInterpolation::Bicubic,
            ..RandomResizedCropAndInterpolationWithTwoPicConfig::new(SizeSpec::Pair([12, 10]))
        }
        .init()
        .expect("valid");
        let img = Image::from_fn(40, 30, |x, y| [(x * 6) as u8, (y * 8) as u8, 9]);
        // Area 0.5 · 1200 = 600, ratio 1 → 24x24 (round(24.49)) at top 3, left 10.
        let mut rng = ReplayDraws::new([Draw::Uniform(0.5), Draw::Uniform(0.0), Draw::Int(3), Draw::Int(10)]);
        let r = t.transform(Results { img: vec![img.clone()], ..Results::default() }, &mut rng).expect("runs");
        assert_eq!(rng.remaining(), 0);
        assert_eq!(r.img.len(), 2);
        assert_eq!((r.img[0].width(), r.img[0].height()), (12, 10));
        assert_eq!((r.img[1].width(), r.img[1].height()), (6, 6));
        let crop = crop_window(&img, 10, 3, 24, 24);
        assert_eq!(r.img[0], cv2::resize(&crop, 12, 10, Cv2Interpolation::Area));
        assert_eq!(r.img[1], cv2::resize(&crop, 6, 6, Cv2Interpolation::Bilinear));
    }

    #[test]
    fn hamming_and_several_images_are_rejected() {
        let mut c = RandomResizedCropAndInterpolationWithTwoPicConfig::new(8);
        c.interpolation = TwoPicInterpolation::Hamming;
        assert!(c.init().is_err());
        c.interpolation = TwoPicInterpolation::Random;
        let t = c.init().expect("random is fine");
        let img = Image::filled(9, 9, &[1, 2, 3]);
        let err = t
            .transform(Results { img: vec![img.clone(), img], ..Results::default() }, &mut ReplayDraws::default())
            .expect_err("two images");
        assert!(err.to_string().contains("exactly one image"), "{err}");
    }
}
