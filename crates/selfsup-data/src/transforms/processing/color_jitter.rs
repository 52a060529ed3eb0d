//! `ColorJitter`. Port of `mmselfsup.datasets.transforms.ColorJitter` (mmselfsup 1.0.0,
//! `datasets/transforms/processing.py`): torchvision's semantics (the four operations in a
//! random order, factors drawn uniformly) implemented with mmcv's `adjust_brightness`,
//! `adjust_contrast`, `adjust_color` and `adjust_hue`.

use serde::{Deserialize, Serialize};

use crate::imaging::photometric::{adjust_brightness_in_place, adjust_color_in_place, adjust_contrast_in_place, adjust_hue_in_place};
use crate::imaging::Image;
use crate::transforms::{ImageTransform, RandomSource};
use crate::DataError;

/// A jitter strength: one number `x` (range `[max(0, 1 − x), 1 + x]`, or `[−x, x]` for the
/// hue) or an explicit `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JitterRange {
    /// A strength around the neutral value.
    Number(f64),
    /// An explicit `[min, max]` range of factors.
    Range([f64; 2]),
}

impl Default for JitterRange {
    fn default() -> Self {
        JitterRange::Number(0.0)
    }
}

/// The image-processing back-end of mmcv's `adjust_*` functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorBackend {
    /// `'pillow'` (the default, and what every MMSelfSup config uses).
    #[default]
    Pillow,
    /// `'cv2'`: accepted by the parser, rejected when the transform is built (not ported).
    Cv2,
}

/// Configuration of [`ColorJitter`]. Field names and defaults are MMSelfSup's.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColorJitterConfig {
    /// Brightness strength, `≥ 0`, or a `[min, max]` range within `[0, ∞)`. Default 0 (off).
    #[serde(default)]
    pub brightness: JitterRange,
    /// Contrast strength, as `brightness`. Default 0 (off).
    #[serde(default)]
    pub contrast: JitterRange,
    /// Saturation strength, as `brightness`. Default 0 (off).
    #[serde(default)]
    pub saturation: JitterRange,
    /// Hue strength in `[0, 0.5]`, or a `[min, max]` range within `[-0.5, 0.5]`. Default 0
    /// (off).
    #[serde(default)]
    pub hue: JitterRange,
    /// Back-end of the colour operations. Default `pillow` (the only one implemented).
    #[serde(default)]
    pub backend: ColorBackend,
}

/// MMSelfSup's `_check_input`: the range of factors, or `None` when the operation is off
/// (the range is the single neutral value).
fn check_input(
    value: JitterRange,
    name: &str,
    center: f64,
    bound: (f64, f64),
    clip_first_on_zero: bool,
) -> Result<Option<[f64; 2]>, DataError> {
    let range = match value {
        JitterRange::Number(v) => {
            if v.is_nan() || v < 0.0 {
                return Err(DataError::config(
                    ColorJitter::NAME,
                    format!("if `{name}` is a single number, it must be non negative, got {v}"),
                ));
            }
            let lo = center - v;
            [if clip_first_on_zero { lo.max(0.0) } else { lo }, center + v]
        }
        JitterRange::Range(r) => {
            if !(bound.0 <= r[0] && r[0] <= r[1] && r[1] <= bound.1) {
                return Err(DataError::config(ColorJitter::NAME, format!("`{name}` values should be between {bound:?}, got {r:?}")));
            }
            r
        }
    };
    // The hue's number form is not bounded by MMSelfSup's check, but `adjust_hue` raises for
    // factors outside [-0.5, 0.5]: reject such strengths here instead of on some sample.
    if range[0] < bound.0 || range[1] > bound.1 {
        return Err(DataError::config(ColorJitter::NAME, format!("`{name}` gives factors {range:?}, outside {bound:?}")));
    }
    Ok((range[0] != center || range[1] != center).then_some(range))
}

impl ColorJitterConfig {
    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for a negative strength, a range outside its bounds
    /// (`[0, ∞)`, or `[-0.5, 0.5]` for the hue) and for `backend = "cv2"`.
    pub fn init(&self) -> Result<ColorJitter, DataError> {
        if self.backend == ColorBackend::Cv2 {
            return Err(DataError::config(ColorJitter::NAME, "backend `cv2` is not implemented; use `pillow` (MMSelfSup's default)"));
        }
        let positive = (0.0, f64::INFINITY);
        Ok(ColorJitter {
            brightness: check_input(self.brightness, "brightness", 1.0, positive, true)?,
            contrast: check_input(self.contrast, "contrast", 1.0, positive, true)?,
            saturation: check_input(self.saturation, "saturation", 1.0, positive, true)?,
            hue: check_input(self.hue, "hue", 0.0, (-0.5, 0.5), false)?,
        })
    }
}

/// The random parameters of one [`ColorJitter`] application (MMSelfSup's `get_params`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColorJitterParams {
    /// The order of the operations: `0` brightness, `1` contrast, `2` saturation, `3` hue.
    pub order: [usize; 4],
    /// Brightness factor, `None` when brightness jitter is off.
    pub brightness: Option<f64>,
    /// Contrast factor, `None` when off.
    pub contrast: Option<f64>,
    /// Saturation factor, `None` when off.
    pub saturation: Option<f64>,
    /// Hue shift in `[-0.5, 0.5]`, `None` when off.
    pub hue: Option<f64>,
}

/// Randomly changes the brightness, contrast, saturation and hue of an RGB image.
#[derive(Debug, Clone, PartialEq)]
pub struct ColorJitter {
    brightness: Option<[f64; 2]>,
    contrast: Option<[f64; 2]>,
    saturation: Option<[f64; 2]>,
    hue: Option<[f64; 2]>,
}

impl ColorJitter {
    /// A random permutation of `0..4` by NumPy's algorithm (`np.random.permutation(4)`):
    /// for `i = 3, 2, 1`, swap element `i` with element `randint(0, i + 1)`.
    pub fn sample_order<R: RandomSource + ?Sized>(rng: &mut R) -> [usize; 4] {
        let mut order = [0, 1, 2, 3];
        for i in (1..4).rev() {
            let j = rng.randint(0, i + 1);
            order.swap(i, j);
        }
        order
    }

    /// Draws the parameters as MMSelfSup does: the order first, then one uniform factor per
    /// enabled operation (brightness, contrast, saturation, hue).
    pub fn sample_params<R: RandomSource + ?Sized>(&self, rng: &mut R) -> ColorJitterParams {
        let order = Self::sample_order(rng);
        let mut draw = |r: Option<[f64; 2]>| r.map(|[lo, hi]| rng.uniform(lo, hi));
        let brightness = draw(self.brightness);
        let contrast = draw(self.contrast);
        let saturation = draw(self.saturation);
        let hue = draw(self.hue);
        ColorJitterParams { order, brightness, contrast, saturation, hue }
    }

    /// Applies the operations of `params` in `params.order` (deterministic; the random path
    /// calls it with [`ColorJitter::sample_params`]). Operations whose factor is `None` are
    /// skipped.
    ///
    /// Bit-exact with MMSelfSup (`backend='pillow'`): see
    /// [`photometric`](crate::imaging::photometric).
    ///
    /// # Errors
    /// [`DataError::Transform`] when the image is not 3-channel (mmcv's Pillow path builds an
    /// RGB `PIL.Image`), or when the hue factor is outside `[-0.5, 0.5]`.
    pub fn apply_with(img: Image, params: &ColorJitterParams) -> Result<Image, DataError> {
        if img.channels() != 3 {
            return Err(DataError::Transform {
                transform: Self::NAME,
                name: String::new(),
                message: format!(
                    "needs a 3-channel image, got {} channel(s) (is a RandomGrayscale with \
                     `keep_channels = false` before it?)",
                    img.channels()
                ),
            });
        }
        let mut img = img;
        for &op in &params.order {
            match op {
                0 => {
                    if let Some(f) = params.brightness {
                        adjust_brightness_in_place(&mut img, f);
                    }
                }
                1 => {
                    if let Some(f) = params.contrast {
                        adjust_contrast_in_place(&mut img, f);
                    }
                }
                2 => {
                    if let Some(f) = params.saturation {
                        adjust_color_in_place(&mut img, f);
                    }
                }
                3 => match params.hue {
                    Some(h) if (-0.5..=0.5).contains(&h) => adjust_hue_in_place(&mut img, h),
                    Some(h) => {
                        return Err(DataError::Transform {
                            transform: Self::NAME,
                            name: String::new(),
                            message: format!("hue factor {h} is not in [-0.5, 0.5]"),
                        })
                    }
                    None => {}
                },
                _ => {}
            }
        }
        Ok(img)
    }
}

impl ImageTransform for ColorJitter {
    const NAME: &'static str = "ColorJitter";

    fn apply<R: RandomSource + ?Sized>(&self, img: Image, rng: &mut R) -> Result<Image, DataError> {
        let params = self.sample_params(rng);
        Self::apply_with(img, &params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::random::{Draw, ReplayDraws};

    #[test]
    fn ranges_follow_check_input() {
        let cfg = ColorJitterConfig {
            brightness: JitterRange::Number(0.8),
            contrast: JitterRange::Number(1.5),
            saturation: JitterRange::Range([1.0, 1.0]),
            hue: JitterRange::Number(0.2),
            backend: ColorBackend::Pillow,
        };
        let t = cfg.init().expect("valid");
        assert_eq!(t.brightness, Some([1.0 - 0.8, 1.8]));
        assert_eq!(t.contrast, Some([0.0, 2.5]), "clipped at 0");
        assert_eq!(t.saturation, None, "[1, 1] is off");
        assert_eq!(t.hue, Some([-0.2, 0.2]));
        assert_eq!(
            ColorJitterConfig::default().init().expect("valid"),
            ColorJitter { brightness: None, contrast: None, saturation: None, hue: None }
        );
    }

    #[test]
    fn bad_strengths_are_rejected() {
        let bad = [
            ColorJitterConfig { brightness: JitterRange::Number(-0.1), ..Default::default() },
            ColorJitterConfig { hue: JitterRange::Number(0.6), ..Default::default() },
            ColorJitterConfig { hue: JitterRange::Range([-0.6, 0.1]), ..Default::default() },
            ColorJitterConfig { contrast: JitterRange::Range([1.2, 0.8]), ..Default::default() },
            ColorJitterConfig { backend: ColorBackend::Cv2, ..Default::default() },
        ];
        for cfg in bad {
            assert!(cfg.init().is_err(), "{cfg:?}");
        }
    }

    #[test]
    fn draws_order_then_enabled_factors() {
        let t = ColorJitterConfig { brightness: JitterRange::Number(0.4), hue: JitterRange::Number(0.1), ..Default::default() }
            .init()
            .expect("valid");
        // Swaps (3↔1), (2↔2), (1↔0): [0,1,2,3] → [0,3,2,1] → [0,3,2,1] → [3,0,2,1].
        let mut d = ReplayDraws::new([Draw::Int(1), Draw::Int(2), Draw::Int(0), Draw::Uniform(1.2), Draw::Uniform(-0.05)]);
        let p = t.sample_params(&mut d);
        assert_eq!(d.remaining(), 0);
        assert_eq!(p, ColorJitterParams { order: [3, 0, 2, 1], brightness: Some(1.2), contrast: None, saturation: None, hue: Some(-0.05) });
    }

    #[test]
    fn one_channel_images_are_an_error() {
        let p = ColorJitterParams { order: [0, 1, 2, 3], brightness: Some(1.1), contrast: None, saturation: None, hue: None };
        let err = ColorJitter::apply_with(Image::filled(2, 2, &[9]), &p).expect_err("1 channel");
        assert!(err.is_sample_error(), "{err}");
        let out = ColorJitter::apply_with(Image::filled(2, 2, &[9, 9, 9]), &p).expect("3 channels");
        // 9 · 1.1 = 9.9 → 9 (truncated).
        assert_eq!(out.pixel(0, 0), &[9, 9, 9]);
    }
}
