//! `RandomResizedCrop`. Port of `mmselfsup.datasets.transforms.RandomResizedCrop`
//! (mmselfsup 1.0.0, `datasets/transforms/processing.py`), itself torchvision's
//! `RandomResizedCrop.get_params` followed by `mmcv.imcrop` and `mmcv.imresize`.

use serde::{Deserialize, Serialize};

use super::{py_round, SizeSpec};
use crate::imaging::geometric::{check_interpolation, imresize_window};
use crate::imaging::{Image, Interpolation, ResizeBackend};
use crate::transforms::{ImageTransform, RandomSource};
use crate::DataError;

/// Configuration of [`RandomResizedCrop`]. Field names and defaults are MMSelfSup's.
///
/// mmcls 1.0.0rc6's form of the same transform (its classification
/// configs: `scale` is the output size, `crop_ratio_range` and
/// `aspect_ratio_range` the ranges) is read too, and means the same crop:
/// mmcls samples it with the same algorithm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RandomResizedCropDict")]
pub struct RandomResizedCropConfig {
    /// Output size: an integer for a square, or `[h, w]`. Required.
    pub size: SizeSpec,
    /// Range of the crop area as a fraction of the image area. Default `[0.08, 1.0]`.
    #[serde(default = "default_scale")]
    pub scale: [f64; 2],
    /// Range of the crop aspect ratio (width / height), sampled log-uniformly.
    /// Default `[3/4, 4/3]`.
    #[serde(default = "default_ratio")]
    pub ratio: [f64; 2],
    /// Tries before falling back to a centre crop. Default 10.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: usize,
    /// Resize interpolation. Default `bilinear`.
    #[serde(default)]
    pub interpolation: Interpolation,
    /// Resize back-end. Default `cv2` (MMSelfSup's default; its configs mostly say `pillow`).
    #[serde(default)]
    pub backend: ResizeBackend,
}

/// The dict as written, in MMSelfSup's or mmcls's form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RandomResizedCropDict {
    size: Option<SizeSpec>,
    scale: Option<serde_json::Value>,
    ratio: Option<[f64; 2]>,
    crop_ratio_range: Option<[f64; 2]>,
    aspect_ratio_range: Option<[f64; 2]>,
    #[serde(default = "default_max_attempts")]
    max_attempts: usize,
    #[serde(default)]
    interpolation: Interpolation,
    #[serde(default)]
    backend: ResizeBackend,
}

impl TryFrom<RandomResizedCropDict> for RandomResizedCropConfig {
    type Error = String;

    fn try_from(d: RandomResizedCropDict) -> Result<Self, String> {
        let (size, scale, ratio) = match d.size {
            // MMSelfSup: `size`, `scale` (area range), `ratio`.
            Some(size) => {
                if d.crop_ratio_range.is_some() || d.aspect_ratio_range.is_some() {
                    return Err("`crop_ratio_range`/`aspect_ratio_range` are mmcls's names: use them with `scale` as the output size, without `size`".into());
                }
                let scale = match d.scale {
                    None => default_scale(),
                    Some(v) => serde_json::from_value::<[f64; 2]>(v).map_err(|e| format!("scale: {e} (the crop's area range)"))?,
                };
                (size, scale, d.ratio.unwrap_or_else(default_ratio))
            }
            // mmcls: `scale` (output size), `crop_ratio_range`, `aspect_ratio_range`.
            None => {
                let Some(v) = d.scale else { return Err("missing field `size` (or mmcls's `scale`, the output size)".into()) };
                let size = serde_json::from_value::<SizeSpec>(v).map_err(|e| format!("scale: {e} (the output size, without `size`)"))?;
                if d.ratio.is_some() {
                    return Err("`ratio` is MMSelfSup's name: with mmcls's `scale` use `aspect_ratio_range`".into());
                }
                (size, d.crop_ratio_range.unwrap_or_else(default_scale), d.aspect_ratio_range.unwrap_or_else(default_ratio))
            }
        };
        Ok(Self { size, scale, ratio, max_attempts: d.max_attempts, interpolation: d.interpolation, backend: d.backend })
    }
}

fn default_scale() -> [f64; 2] {
    [0.08, 1.0]
}

fn default_ratio() -> [f64; 2] {
    [3.0 / 4.0, 4.0 / 3.0]
}

fn default_max_attempts() -> usize {
    10
}

impl RandomResizedCropConfig {
    /// MMSelfSup's defaults with the given output size.
    pub fn new(size: impl Into<SizeSpec>) -> Self {
        Self {
            size: size.into(),
            scale: default_scale(),
            ratio: default_ratio(),
            max_attempts: default_max_attempts(),
            interpolation: Interpolation::default(),
            backend: ResizeBackend::default(),
        }
    }

    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for an empty size, a range whose min exceeds its max, a
    /// non-positive ratio, or an interpolation the back-end lacks.
    pub fn init(&self) -> Result<RandomResizedCrop, DataError> {
        const NAME: &str = "RandomResizedCrop";
        let [h, w] = self.size.pair();
        if h == 0 || w == 0 {
            return Err(DataError::config(NAME, format!("`size` must be positive, got {:?}", self.size)));
        }
        if self.scale[0] > self.scale[1] || self.ratio[0] > self.ratio[1] {
            return Err(DataError::config(
                NAME,
                format!("range should be of kind (min, max), got scale {:?} and ratio {:?}", self.scale, self.ratio),
            ));
        }
        if self.ratio[0] <= 0.0 || self.scale[0] < 0.0 {
            return Err(DataError::config(
                NAME,
                format!("`ratio` must be > 0 and `scale` >= 0, got {:?} and {:?}", self.ratio, self.scale),
            ));
        }
        check_interpolation(NAME, self.interpolation, self.backend)?;
        Ok(RandomResizedCrop {
            out_h: h,
            out_w: w,
            scale: self.scale,
            ratio: self.ratio,
            max_attempts: self.max_attempts,
            interpolation: self.interpolation,
            backend: self.backend,
        })
    }
}

/// A crop window: the `height × width` rectangle whose top-left pixel is `(left, top)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropParams {
    /// First row (`offset_h` in MMSelfSup).
    pub top: usize,
    /// First column (`offset_w`).
    pub left: usize,
    /// Rows (`target_h`).
    pub height: usize,
    /// Columns (`target_w`).
    pub width: usize,
}

/// Crops a random area/aspect-ratio window and resizes it to a fixed size.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomResizedCrop {
    out_h: usize,
    out_w: usize,
    scale: [f64; 2],
    ratio: [f64; 2],
    max_attempts: usize,
    interpolation: Interpolation,
    backend: ResizeBackend,
}

impl RandomResizedCrop {
    /// Output `(height, width)`.
    pub fn output_size(&self) -> (usize, usize) {
        (self.out_h, self.out_w)
    }

    /// Draws the crop window for a `width × height` image with this transform's parameters.
    /// See [`RandomResizedCrop::get_params`].
    pub fn sample_params<R: RandomSource + ?Sized>(&self, width: usize, height: usize, rng: &mut R) -> CropParams {
        Self::get_params(width, height, self.scale, self.ratio, self.max_attempts, rng)
    }

    /// torchvision's / MMSelfSup's `get_params`, draw for draw:
    ///
    /// up to `max_attempts` times: `target_area = uniform(scale) · area`,
    /// `aspect = exp(uniform(ln ratio))`, `w = round(√(target_area·aspect))`,
    /// `h = round(√(target_area/aspect))` (Python's half-to-even `round`); if
    /// `0 < w ≤ width` and `0 < h ≤ height`, `top = randint(0, height − h + 1)`,
    /// `left = randint(0, width − w + 1)`. Otherwise fall back to the centred crop of the
    /// largest window whose aspect ratio is clamped to `ratio`.
    pub fn get_params<R: RandomSource + ?Sized>(
        width: usize,
        height: usize,
        scale: [f64; 2],
        ratio: [f64; 2],
        max_attempts: usize,
        rng: &mut R,
    ) -> CropParams {
        let area = (height * width) as f64;
        let log_ratio = [ratio[0].ln(), ratio[1].ln()];
        for _ in 0..max_attempts {
            let target_area = rng.uniform(scale[0], scale[1]) * area;
            let aspect_ratio = rng.uniform(log_ratio[0], log_ratio[1]).exp();
            let target_width = py_round((target_area * aspect_ratio).sqrt());
            let target_height = py_round((target_area / aspect_ratio).sqrt());
            if 0 < target_width && target_width <= width && 0 < target_height && target_height <= height {
                let top = rng.randint(0, height - target_height + 1);
                let left = rng.randint(0, width - target_width + 1);
                return CropParams { top, left, height: target_height, width: target_width };
            }
        }
        // Fallback to central crop.
        let in_ratio = width as f64 / height as f64;
        let min_ratio = ratio[0].min(ratio[1]);
        let max_ratio = ratio[0].max(ratio[1]);
        let (target_width, target_height) = if in_ratio < min_ratio {
            (width, py_round(width as f64 / min_ratio).min(height))
        } else if in_ratio > max_ratio {
            (py_round(height as f64 * max_ratio).min(width), height)
        } else {
            (width, height)
        };
        CropParams { top: (height - target_height) / 2, left: (width - target_width) / 2, height: target_height, width: target_width }
    }

    /// Crops `params` out of `img` and resizes it to the output size.
    ///
    /// # Errors
    /// [`DataError::Transform`] when the window is empty.
    pub fn apply_params(&self, img: &Image, params: CropParams) -> Result<Image, DataError> {
        if params.width == 0 || params.height == 0 {
            return Err(DataError::Transform {
                transform: "RandomResizedCrop",
                name: String::new(),
                message: format!("empty crop window {params:?} for a {}x{} image", img.width(), img.height()),
            });
        }
        imresize_window(img, params.left, params.top, params.width, params.height, self.out_w, self.out_h, self.interpolation, self.backend)
    }
}

impl ImageTransform for RandomResizedCrop {
    const NAME: &'static str = "RandomResizedCrop";

    fn apply<R: RandomSource + ?Sized>(&self, img: Image, rng: &mut R) -> Result<Image, DataError> {
        if img.is_empty() {
            return Err(DataError::Transform { transform: Self::NAME, name: String::new(), message: "empty input image".into() });
        }
        let params = self.sample_params(img.width(), img.height(), rng);
        self.apply_params(&img, params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::random::{Draw, ReplayDraws};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn params_respect_area_and_ratio_bounds() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let scale = [0.2, 0.9];
        let ratio = [3.0 / 4.0, 4.0 / 3.0];
        for &(w, h) in &[(64usize, 48usize), (100, 100), (37, 91), (500, 375)] {
            for _ in 0..500 {
                let p = RandomResizedCrop::get_params(w, h, scale, ratio, 10, &mut rng);
                assert!(p.width > 0 && p.height > 0);
                assert!(p.left + p.width <= w && p.top + p.height <= h, "{p:?} in {w}x{h}");
                let is_fallback = p.width == w || p.height == h;
                if !is_fallback {
                    // Rounding to integers moves area and ratio by at most half a pixel per side.
                    let area = (p.width * p.height) as f64 / (w * h) as f64;
                    let a_lo = (p.width as f64 - 0.5).max(0.0) * (p.height as f64 - 0.5) / (w * h) as f64;
                    let a_hi = (p.width as f64 + 0.5) * (p.height as f64 + 0.5) / (w * h) as f64;
                    assert!(a_hi >= scale[0] && a_lo <= scale[1], "area {area}");
                    let r_lo = (p.width as f64 - 0.5) / (p.height as f64 + 0.5);
                    let r_hi = (p.width as f64 + 0.5) / (p.height as f64 - 0.5);
                    assert!(r_hi >= ratio[0] && r_lo <= ratio[1], "ratio of {p:?}");
                }
            }
        }
    }

    #[test]
    fn params_follow_the_reference_draw_for_draw() {
        // 100x80 image, area 8000. Draw 1: scale 1.0 → area 8000, ratio e^0.7 ≈ 2.01:
        // w = round(√(16110)) = 127 > 100 → rejected. Draw 2: scale 0.5 → 4000, ratio e^0 = 1
        // → w = h = round(63.245) = 63 → top = randint(0, 18), left = randint(0, 38).
        let mut draws =
            ReplayDraws::new([Draw::Uniform(1.0), Draw::Uniform(0.7), Draw::Uniform(0.5), Draw::Uniform(0.0), Draw::Int(5), Draw::Int(11)]);
        let p = RandomResizedCrop::get_params(100, 80, [0.08, 1.0], [0.75, 4.0 / 3.0], 10, &mut draws);
        assert_eq!(p, CropParams { top: 5, left: 11, height: 63, width: 63 });
        assert_eq!(draws.remaining(), 0);
    }

    #[test]
    fn python_rounding_is_half_to_even() {
        // √(target_area·aspect) = 2.5 exactly → Python rounds to 2, not 3.
        let mut draws = ReplayDraws::new([Draw::Uniform(6.25 / 100.0), Draw::Uniform(0.0), Draw::Int(0), Draw::Int(0)]);
        let p = RandomResizedCrop::get_params(10, 10, [0.0, 1.0], [0.5, 2.0], 1, &mut draws);
        assert_eq!((p.width, p.height), (2, 2));
    }

    #[test]
    fn fallback_is_centre_crop_with_clamped_ratio() {
        // No attempt: straight to the fallback.
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        // Very wide image 200x50 (ratio 4 > 4/3): h = 50, w = round(50·4/3) = round(66.67) = 67.
        let p = RandomResizedCrop::get_params(200, 50, [0.08, 1.0], [0.75, 4.0 / 3.0], 0, &mut rng);
        assert_eq!(p, CropParams { top: 0, left: (200 - 67) / 2, height: 50, width: 67 });
        // Very tall image 30x100 (ratio 0.3 < 3/4): w = 30, h = round(30 / 0.75) = 40.
        let p = RandomResizedCrop::get_params(30, 100, [0.08, 1.0], [0.75, 4.0 / 3.0], 0, &mut rng);
        assert_eq!(p, CropParams { top: 30, left: 0, height: 40, width: 30 });
        // In-range ratio: whole image.
        let p = RandomResizedCrop::get_params(40, 40, [0.08, 1.0], [0.75, 4.0 / 3.0], 0, &mut rng);
        assert_eq!(p, CropParams { top: 0, left: 0, height: 40, width: 40 });
        // Impossible scale (> 1) forces the fallback after all 10 attempts.
        let p = RandomResizedCrop::get_params(200, 50, [2.0, 3.0], [0.75, 4.0 / 3.0], 10, &mut rng);
        assert_eq!((p.width, p.height), (67, 50));
    }

    #[test]
    fn output_has_configured_size_and_constant_stays_constant() {
        let mut cfg = RandomResizedCropConfig::new(SizeSpec::Pair([12, 20]));
        for backend in [ResizeBackend::Cv2, ResizeBackend::Pillow] {
            for interpolation in [Interpolation::Bilinear, Interpolation::Bicubic] {
                cfg.backend = backend;
                cfg.interpolation = interpolation;
                let t = cfg.init().expect("valid config");
                let mut rng = ChaCha8Rng::seed_from_u64(3);
                let out = t.apply(Image::filled(50, 33, &[9, 99, 199]), &mut rng).expect("apply");
                assert_eq!((out.height(), out.width()), (12, 20));
                assert!(out.data().chunks(3).all(|p| p == [9, 99, 199]));
            }
        }
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let mut cfg = RandomResizedCropConfig::new(8);
        cfg.scale = [0.9, 0.1];
        assert!(cfg.init().is_err());
        let mut cfg = RandomResizedCropConfig::new(8);
        cfg.interpolation = Interpolation::Area;
        assert!(cfg.init().is_err());
        cfg.backend = ResizeBackend::Pillow;
        cfg.interpolation = Interpolation::Lanczos;
        assert!(cfg.init().is_ok());
    }
}
