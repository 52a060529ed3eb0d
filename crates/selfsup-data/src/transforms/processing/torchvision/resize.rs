//! `torchvision/Resize`: `torchvision.transforms.Resize` (torchvision 0.24) on a PIL image,
//! under mmcls's wrapper (see the [module documentation](super)).
//!
//! The output size is `torchvision.transforms.functional._compute_resized_output_size`'s:
//! - `size = s` or `[s]`: the shorter edge becomes `s` and the longer one
//!   `int(s · long / short)` (truncated); a square image becomes `s × s`. With `max_size`,
//!   a longer edge above `max_size` becomes `max_size` and the shorter one
//!   `int(max_size · s / long')` (truncated), where `long'` is the longer edge computed first;
//! - `size = [h, w]`: exactly `w × h`.
//!
//! An image that already has the output size is returned unchanged (torchvision returns it
//! before calling Pillow); otherwise it is resampled by Pillow's `Image.resize` with the
//! interpolation's filter, bit-exact ([`pillow::resize`]; Pillow always antialiases, so
//! torchvision's `antialias` has no effect on PIL images and is accepted and ignored).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{ParsedSize, TorchvisionSize};
use crate::imaging::pillow::{self, PillowFilter};
use crate::imaging::Image;
use crate::transforms::{ImageTransform, RandomSource};
use crate::DataError;

/// `interpolation` of [`TorchvisionResizeConfig`]: torchvision's `InterpolationMode`, given as
/// mmcls's wrapper maps strings, or as a Pillow integer constant (which torchvision maps).
///
/// Names are case-insensitive: `nearest`, `bilinear`, `bicubic`, `box`, `lanczos`, and
/// `hammimg`, the spelling mmcls's `_interpolation_modes_from_str` maps to `HAMMING` (it
/// raises a `KeyError` on `hamming`, which is accepted here too). Integers are Pillow's:
/// 0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming. Serialises as the
/// lower-case name (`hamming`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TorchvisionInterpolation {
    /// `NEAREST`.
    Nearest,
    /// `BILINEAR` (the default).
    #[default]
    Bilinear,
    /// `BICUBIC`.
    Bicubic,
    /// `BOX`.
    Box,
    /// `HAMMING`.
    Hamming,
    /// `LANCZOS`.
    Lanczos,
}

impl TorchvisionInterpolation {
    /// The mode of a name (case-insensitive, `hammimg` or `hamming`).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_lowercase().as_str() {
            "nearest" => Self::Nearest,
            "bilinear" => Self::Bilinear,
            "bicubic" => Self::Bicubic,
            "box" => Self::Box,
            "hammimg" | "hamming" => Self::Hamming,
            "lanczos" => Self::Lanczos,
            _ => return None,
        })
    }

    /// The mode of a Pillow constant (`torchvision.transforms.functional._interpolation_modes_from_int`).
    pub fn from_pil(code: u64) -> Option<Self> {
        Some(match code {
            0 => Self::Nearest,
            1 => Self::Lanczos,
            2 => Self::Bilinear,
            3 => Self::Bicubic,
            4 => Self::Box,
            5 => Self::Hamming,
            _ => return None,
        })
    }

    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nearest => "nearest",
            Self::Bilinear => "bilinear",
            Self::Bicubic => "bicubic",
            Self::Box => "box",
            Self::Hamming => "hamming",
            Self::Lanczos => "lanczos",
        }
    }

    /// The Pillow filter torchvision passes to `Image.resize` (`pil_modes_mapping`).
    pub fn pillow_filter(self) -> PillowFilter {
        match self {
            Self::Nearest => PillowFilter::Nearest,
            Self::Bilinear => PillowFilter::Bilinear,
            Self::Bicubic => PillowFilter::Bicubic,
            Self::Box => PillowFilter::Box,
            Self::Hamming => PillowFilter::Hamming,
            Self::Lanczos => PillowFilter::Lanczos,
        }
    }
}

impl Serialize for TorchvisionInterpolation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for TorchvisionInterpolation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Code(u64),
        }
        let expected = "nearest|bilinear|bicubic|box|hammimg|lanczos or a Pillow constant 0..=5";
        match Raw::deserialize(d)? {
            Raw::Name(n) => {
                Self::from_name(&n).ok_or_else(|| serde::de::Error::custom(format!("unknown interpolation '{n}', expected {expected}")))
            }
            Raw::Code(c) => {
                Self::from_pil(c).ok_or_else(|| serde::de::Error::custom(format!("unknown interpolation {c}, expected {expected}")))
            }
        }
    }
}

fn default_antialias() -> Option<bool> {
    Some(true)
}

/// Configuration of [`TorchvisionResize`]. Field names and defaults are torchvision's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TorchvisionResizeConfig {
    /// The shorter edge (`s` or `[s]`) or the output size `[h, w]`. Required.
    pub size: TorchvisionSize,
    /// Resampling filter. Default `bilinear`.
    #[serde(default)]
    pub interpolation: TorchvisionInterpolation,
    /// Upper bound of the longer edge, with a shorter-edge `size` only. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<usize>,
    /// Accepted and ignored: Pillow always antialiases. Default `true`.
    #[serde(default = "default_antialias")]
    pub antialias: Option<bool>,
}

impl TorchvisionResizeConfig {
    /// Resize with `size` (see [`TorchvisionSize`]), torchvision's defaults otherwise.
    pub fn new(size: impl Into<TorchvisionSize>) -> Self {
        Self { size: size.into(), interpolation: TorchvisionInterpolation::default(), max_size: None, antialias: default_antialias() }
    }

    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for a zero or a list of another length than 1 or 2 in
    /// `size`, or a `max_size` given with `[h, w]` or not above the shorter edge (torchvision
    /// raises on the first image).
    pub fn init(&self) -> Result<TorchvisionResize, DataError> {
        let err = |m: String| DataError::config(TorchvisionResize::NAME, m);
        let size = self.size.parse().map_err(err)?;
        match (size, self.max_size) {
            (ParsedSize::Pair(..), Some(m)) => {
                return Err(err(format!("`max_size` ({m}) is only allowed with a shorter-edge `size` (an integer or a list of one)")));
            }
            (ParsedSize::One(s), Some(m)) if m <= s => {
                return Err(err(format!("`max_size` = {m} must be strictly greater than the shorter edge `size` = {s}")));
            }
            _ => {}
        }
        Ok(TorchvisionResize { size, max_size: self.max_size, filter: self.interpolation.pillow_filter() })
    }
}

/// Resizes a PIL image as torchvision's `Resize` does.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchvisionResize {
    size: ParsedSize,
    max_size: Option<usize>,
    filter: PillowFilter,
}

impl TorchvisionResize {
    /// The output `(width, height)` for a `width × height` input
    /// (`_compute_resized_output_size`, integer arithmetic as Python's).
    pub fn output_size(&self, width: usize, height: usize) -> (usize, usize) {
        match self.size {
            ParsedSize::Pair(h, w) => (w, h),
            ParsedSize::One(s) => {
                let (short, long) = if width <= height { (width, height) } else { (height, width) };
                // `int(s * long / short)`: Python's true division of exact integers.
                let mut new_short = s;
                let mut new_long = ((s * long) as f64 / short as f64) as usize;
                if let Some(m) = self.max_size {
                    if new_long > m {
                        new_short = ((m * new_short) as f64 / new_long as f64) as usize;
                        new_long = m;
                    }
                }
                if width <= height {
                    (new_short, new_long)
                } else {
                    (new_long, new_short)
                }
            }
        }
    }
}

impl ImageTransform for TorchvisionResize {
    const NAME: &'static str = "torchvision/Resize";

    fn apply<R: RandomSource + ?Sized>(&self, img: Image, _rng: &mut R) -> Result<Image, DataError> {
        let error = |message: String| DataError::Transform { transform: Self::NAME, name: String::new(), message };
        if img.is_empty() {
            return Err(error("empty input image".into()));
        }
        let (w, h) = self.output_size(img.width(), img.height());
        if (w, h) == (img.width(), img.height()) {
            return Ok(img);
        }
        if w == 0 || h == 0 {
            return Err(error(format!("a {}x{} image would become {w}x{h}", img.width(), img.height())));
        }
        Ok(pillow::resize(&img, w, h, self.filter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resize(json: &str) -> TorchvisionResize {
        serde_json::from_str::<TorchvisionResizeConfig>(json).expect("parses").init().expect("valid")
    }

    #[test]
    fn shorter_edge_output_size_truncates_the_longer_one() {
        let t = resize(r#"{"size": 224}"#);
        assert_eq!(t.output_size(37, 53), (224, 320)); // 224 · 53 / 37 = 320.86
        assert_eq!(t.output_size(300, 200), (336, 224));
        assert_eq!(t.output_size(500, 375), (298, 224));
        assert_eq!(t.output_size(50, 50), (224, 224));
        assert_eq!(resize(r#"{"size": [224]}"#).output_size(300, 200), (336, 224));
        assert_eq!(resize(r#"{"size": [30, 45]}"#).output_size(37, 53), (45, 30));
        // max_size: 30 × 42 → the longer edge 40, the shorter int(40 · 30 / 42) = 28.
        assert_eq!(resize(r#"{"size": 30, "max_size": 40}"#).output_size(37, 53), (28, 40));
    }

    #[test]
    fn config_is_checked_when_built() {
        let bad = |json: &str| {
            serde_json::from_str::<TorchvisionResizeConfig>(json)
                .map_err(|e| e.to_string())
                .and_then(|c| c.init().map(|_| ()).map_err(|e| e.to_string()))
        };
        assert!(bad(r#"{"size": [1, 2, 3]}"#).is_err());
        assert!(bad(r#"{"size": 0}"#).is_err());
        assert!(bad(r#"{"size": [20, 30], "max_size": 40}"#).is_err());
        assert!(bad(r#"{"size": 40, "max_size": 40}"#).is_err());
        assert!(bad(r#"{"size": 4, "interpolation": "area"}"#).is_err());
        assert!(bad(r#"{"size": 4, "interpolation": 7}"#).is_err());
        assert!(bad(r#"{"size": 4, "scale": 7}"#).is_err());
        let c: TorchvisionResizeConfig =
            serde_json::from_str(r#"{"size": 4, "interpolation": "HAMMIMG", "antialias": null}"#).expect("parses");
        assert_eq!((c.interpolation, c.antialias), (TorchvisionInterpolation::Hamming, None));
        let c: TorchvisionResizeConfig = serde_json::from_str(r#"{"size": 4, "interpolation": 3}"#).expect("parses");
        assert_eq!(c.interpolation, TorchvisionInterpolation::Bicubic);
        assert_eq!(serde_json::to_value(&c).expect("serialises")["interpolation"], "bicubic");
    }

    #[test]
    fn unchanged_size_returns_the_image() {
        let img = Image::from_fn(5, 7, |x, y| [x as u8, y as u8, 9]);
        let out = resize(r#"{"size": 5}"#).apply(img.clone(), &mut rand::rng()).expect("resizes");
        assert_eq!(out, img);
        let out = resize(r#"{"size": [3, 2]}"#).apply(img, &mut rand::rng()).expect("resizes");
        assert_eq!((out.width(), out.height()), (2, 3));
    }
}
