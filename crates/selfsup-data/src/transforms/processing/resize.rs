//! `Resize`. Port of `mmcv.transforms.Resize` (mmcv 2.0, `transforms/processing.py`) for
//! images, with `mmcv.imrescale`/`rescale_size` for `keep_ratio=True`.
//!
//! Note that an integer `scale` means a **square** `scale × scale` output, as in mmcv; the
//! torchvision `Resize(int)` behaviour (shorter side to `scale`, aspect kept) is
//! [`ResizeEdge`](super::ResizeEdge) with `edge='short'`, which is what MMSelfSup's
//! evaluation pipelines use.

use serde::{Deserialize, Serialize};

use super::SizeSpec;
use crate::imaging::geometric::{check_interpolation, imresize};
use crate::imaging::{Image, Interpolation, ResizeBackend};
use crate::transforms::{ImageTransform, RandomSource};
use crate::DataError;

/// A scale factor: one float for both axes or `[w_factor, h_factor]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScaleFactor {
    /// Same factor for both axes.
    Single(f64),
    /// `[w_factor, h_factor]`.
    Pair([f64; 2]),
}

/// Configuration of [`Resize`]. Field names and defaults are mmcv's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResizeConfig {
    /// Target size: an integer (square) or `[w, h]`. With `keep_ratio`, `[w, h]` bounds the
    /// long and short edges. Takes precedence over `scale_factor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<SizeSpec>,
    /// Factor(s) applied to the input size when `scale` is not given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_factor: Option<ScaleFactor>,
    /// Keep the aspect ratio (`mmcv.imrescale`). Default `false`.
    pub keep_ratio: bool,
    /// Box clipping flag: accepted, unused (no boxes here). Default `true`.
    pub clip_object_border: bool,
    /// Resize back-end. Default `cv2`.
    pub backend: ResizeBackend,
    /// Interpolation. Default `bilinear`.
    pub interpolation: Interpolation,
}

impl Default for ResizeConfig {
    /// mmcv's defaults; note that mmcv requires `scale` or `scale_factor`, so this default
    /// alone does not [`init`](ResizeConfig::init).
    fn default() -> Self {
        Self {
            scale: None,
            scale_factor: None,
            keep_ratio: false,
            clip_object_border: true,
            backend: ResizeBackend::default(),
            interpolation: Interpolation::default(),
        }
    }
}

impl ResizeConfig {
    /// Resize to a fixed `scale` (`[w, h]` or square), mmcv's defaults otherwise.
    pub fn new(scale: impl Into<SizeSpec>) -> Self {
        Self { scale: Some(scale.into()), ..Self::default() }
    }

    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] when neither `scale` nor `scale_factor` is given, a value is
    /// not positive, or the interpolation is unavailable for the back-end.
    pub fn init(&self) -> Result<Resize, DataError> {
        const NAME: &str = "Resize";
        check_interpolation(NAME, self.interpolation, self.backend)?;
        let target = match (self.scale, self.scale_factor) {
            (Some(s), _) => {
                let p = s.pair();
                if p[0] == 0 || p[1] == 0 {
                    return Err(DataError::config(NAME, format!("`scale` must be positive, got {s:?}")));
                }
                Target::Scale(p)
            }
            (None, Some(f)) => {
                let p = match f {
                    ScaleFactor::Single(v) => [v, v],
                    ScaleFactor::Pair(p) => p,
                };
                if !(p[0] > 0.0 && p[1] > 0.0) {
                    return Err(DataError::config(NAME, format!("`scale_factor` must be positive, got {f:?}")));
                }
                Target::Factor(p)
            }
            (None, None) => return Err(DataError::config(NAME, "`scale` and `scale_factor` can not both be `None`")),
        };
        Ok(Resize { target, keep_ratio: self.keep_ratio, backend: self.backend, interpolation: self.interpolation })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    /// `(w, h)`.
    Scale([usize; 2]),
    /// `(w_factor, h_factor)`.
    Factor([f64; 2]),
}

/// Resizes to a fixed size, by a factor, or within bounds keeping the aspect ratio.
#[derive(Debug, Clone, PartialEq)]
pub struct Resize {
    target: Target,
    keep_ratio: bool,
    backend: ResizeBackend,
    interpolation: Interpolation,
}

/// mmcv's `_scale_size((w, h), (fw, fh))`: `(int(w·fw + 0.5), int(h·fh + 0.5))`.
fn scale_size(w: usize, h: usize, f: [f64; 2]) -> (usize, usize) {
    ((w as f64 * f[0] + 0.5) as usize, (h as f64 * f[1] + 0.5) as usize)
}

impl Resize {
    /// The output `(width, height)` for a `width × height` input.
    pub fn output_size(&self, width: usize, height: usize) -> (usize, usize) {
        // `results['scale']`: the configured `(w, h)`, or the input scaled by the factor.
        let scale = match self.target {
            Target::Scale(s) => (s[0], s[1]),
            Target::Factor(f) => scale_size(width, height, f),
        };
        if !self.keep_ratio {
            return scale;
        }
        // `mmcv.rescale_size((w, h), scale)` with a tuple scale.
        let long = scale.0.max(scale.1) as f64;
        let short = scale.0.min(scale.1) as f64;
        let factor = (long / width.max(height) as f64).min(short / width.min(height) as f64);
        scale_size(width, height, [factor, factor])
    }
}

impl ImageTransform for Resize {
    const NAME: &'static str = "Resize";

    fn apply<R: RandomSource + ?Sized>(&self, img: Image, _rng: &mut R) -> Result<Image, DataError> {
        let (w, h) = self.output_size(img.width(), img.height());
        if w == 0 || h == 0 || img.is_empty() {
            return Err(DataError::Transform {
                transform: Self::NAME,
                name: String::new(),
                message: format!("a {}x{} image would become {w}x{h}", img.width(), img.height()),
            });
        }
        imresize(&img, w, h, self.interpolation, self.backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_follow_mmcv() {
        let fixed = ResizeConfig::new(SizeSpec::Pair([40, 20])).init().expect("valid");
        assert_eq!(fixed.output_size(100, 50), (40, 20));
        let square = ResizeConfig::new(32).init().expect("valid");
        assert_eq!(square.output_size(100, 50), (32, 32));
        let mut cfg = ResizeConfig::new(SizeSpec::Pair([1333, 800]));
        cfg.keep_ratio = true;
        // 500x375: factor = min(1333/500, 800/375) = 2.1333 → (1067, 800).
        assert_eq!(cfg.init().expect("valid").output_size(500, 375), (1067, 800));
        let cfg = ResizeConfig { scale_factor: Some(ScaleFactor::Single(0.5)), ..ResizeConfig::default() };
        assert_eq!(cfg.init().expect("valid").output_size(101, 50), (51, 25));
        assert!(ResizeConfig::default().init().is_err());
    }

    #[test]
    fn constant_image_stays_constant() {
        let mut rng = rand::rng();
        for backend in [ResizeBackend::Cv2, ResizeBackend::Pillow] {
            let mut cfg = ResizeConfig::new(SizeSpec::Pair([7, 19]));
            cfg.backend = backend;
            cfg.interpolation = Interpolation::Bicubic;
            let out = cfg.init().expect("valid").apply(Image::filled(30, 12, &[1, 2, 3]), &mut rng).expect("apply");
            assert_eq!((out.width(), out.height()), (7, 19));
            assert!(out.data().chunks(3).all(|p| p == [1, 2, 3]));
        }
    }
}
