//! The fourteen operations of mmcls's `auto_augment.py` and their common base,
//! `BaseAugTransform`: `Shear`, `Translate`, `Rotate`, `AutoContrast`, `Invert`, `Equalize`,
//! `Solarize`, `SolarizeAdd`, `Posterize`, `Contrast`, `ColorTransform`, `Brightness`,
//! `Sharpness` and `Cutout`. Each is a thin shim over an mmcv image function
//! ([`photometric_cv2`], [`cv2_warp`], [`photometric::solarize`]), as in mmcls, so they share
//! one config ([`AugOpConfig`]) and one built type ([`AugOp`]).
//!
//! Every operation draws in mmcls's order: `rand() > prob` disables it; then its value is the
//! fixed argument (`magnitude`, `angle`, `thr`, `bits`, `shape`) or, with `magnitude_range`,
//! `level / total_level · (v2 − v1) + v1`, the level moved by `normal(level, magnitude_std)`
//! clipped to `[0, total_level]` (a positive std), or by `uniform(0, level)` (`'inf'`);
//! the signed operations then flip the sign when `rand() < random_negative_prob`.

use serde::{Deserialize, Serialize};

use crate::imaging::cv2_warp::{imshear, imtranslate, rotation_matrix, warp_affine, WarpDirection, WarpInterpolation};
use crate::imaging::{photometric, photometric_cv2 as cv, Image, Interpolation};
use crate::transforms::processing::SizeSpec;
use crate::transforms::RandomSource;
use crate::DataError;

/// `magnitude_std`: a number (`≤ 0` turns the noise off) or `"inf"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MagnitudeStd {
    /// A normal deviation of the level.
    Number(f64),
    /// `"inf"`: the level is drawn uniformly in `[0, magnitude_level)`.
    Word(String),
}

impl Default for MagnitudeStd {
    fn default() -> Self {
        MagnitudeStd::Number(0.0)
    }
}

/// `pad_val`: one value, or B, G, R.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PadVal {
    /// One number.
    One(u8),
    /// B, G, R (mmcls's channel order).
    Three([u8; 3]),
}

/// The config of one operation: every argument any of the fourteen takes, each optional; the
/// operation's `type` (from the registry) decides which are allowed and their defaults, as
/// the Python signatures do.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugOpConfig {
    /// `Shear`, `Translate`, `SolarizeAdd` and the four enhancements: the fixed magnitude
    /// (kept as written: `SolarizeAdd` adds an integer in `uint8`, which wraps, as NumPy does).
    pub magnitude: Option<serde_json::Number>,
    /// `Rotate`: the fixed angle in degrees (clockwise).
    pub angle: Option<f64>,
    /// `Solarize`: the fixed threshold; `SolarizeAdd`: the threshold (default 128).
    pub thr: Option<f64>,
    /// `Posterize`: the fixed number of bits kept (at most 8).
    pub bits: Option<f64>,
    /// `Cutout`: the fixed box size, `s` or `(h, w)`.
    pub shape: Option<SizeSpec>,
    /// `Rotate`: the centre `(x, y)`; default the image centre.
    pub center: Option<[f64; 2]>,
    /// `Rotate`: the isotropic scale. Default 1.
    pub scale: Option<f64>,
    /// `Shear`, `Translate`, `Rotate`, `Cutout`: the fill (BGR). Default 128.
    pub pad_val: Option<PadVal>,
    /// `Shear`, `Translate`: `horizontal` (default) or `vertical`.
    pub direction: Option<WarpDirection>,
    /// `Shear` (default `bicubic`), `Translate`, `Rotate` (default `nearest`).
    pub interpolation: Option<Interpolation>,
    /// Probability of applying. Default 0.5.
    pub prob: Option<f64>,
    /// Probability of negating the value (signed operations). Default 0.5.
    pub random_negative_prob: Option<f64>,
    /// `BaseAugTransform`: the magnitude level. Default 10.
    pub magnitude_level: Option<f64>,
    /// `BaseAugTransform`: the values at level 0 and at `total_level`.
    pub magnitude_range: Option<[f64; 2]>,
    /// `BaseAugTransform`: the level's noise. Default 0.
    pub magnitude_std: Option<MagnitudeStd>,
    /// `BaseAugTransform`: the level scale. Default 10.
    pub total_level: Option<f64>,
}

/// The operations, by mmcls name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AugOpKind {
    /// `Shear`: `mmcv.imshear`.
    Shear,
    /// `Translate`: `mmcv.imtranslate` by `magnitude × size`.
    Translate,
    /// `Rotate`: `mmcv.imrotate`.
    Rotate,
    /// `AutoContrast`: `mmcv.auto_contrast`.
    AutoContrast,
    /// `Invert`: `mmcv.iminvert`.
    Invert,
    /// `Equalize`: `mmcv.imequalize`.
    Equalize,
    /// `Solarize`: `mmcv.solarize`.
    Solarize,
    /// `SolarizeAdd`: adds `magnitude` to the values below `thr`.
    SolarizeAdd,
    /// `Posterize`: `mmcv.posterize` to `ceil(bits)`.
    Posterize,
    /// `Contrast`: `mmcv.adjust_contrast(1 + magnitude)`.
    Contrast,
    /// `ColorTransform`: `mmcv.adjust_color(1 + magnitude)`.
    ColorTransform,
    /// `Brightness`: `mmcv.adjust_brightness(1 + magnitude)`.
    Brightness,
    /// `Sharpness`: `mmcv.adjust_sharpness(1 + magnitude)`.
    Sharpness,
    /// `Cutout`: `mmcv.cutout`.
    Cutout,
}

use AugOpKind as K;

impl AugOpKind {
    /// Every operation, in mmcls's file order.
    pub const ALL: [AugOpKind; 14] = [
        K::Shear,
        K::Translate,
        K::Rotate,
        K::AutoContrast,
        K::Invert,
        K::Equalize,
        K::Solarize,
        K::SolarizeAdd,
        K::Posterize,
        K::Contrast,
        K::ColorTransform,
        K::Brightness,
        K::Sharpness,
        K::Cutout,
    ];

    /// The registry name.
    pub fn name(self) -> &'static str {
        match self {
            K::Shear => "Shear",
            K::Translate => "Translate",
            K::Rotate => "Rotate",
            K::AutoContrast => "AutoContrast",
            K::Invert => "Invert",
            K::Equalize => "Equalize",
            K::Solarize => "Solarize",
            K::SolarizeAdd => "SolarizeAdd",
            K::Posterize => "Posterize",
            K::Contrast => "Contrast",
            K::ColorTransform => "ColorTransform",
            K::Brightness => "Brightness",
            K::Sharpness => "Sharpness",
            K::Cutout => "Cutout",
        }
    }

    /// The operation named `name` (an `mmcls.` scope is accepted).
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.strip_prefix("mmcls.").unwrap_or(name);
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The named arguments of the Python `__init__` (what `merge_hparams` may fill in).
    pub fn args(self) -> &'static [&'static str] {
        match self {
            K::Shear | K::Translate => &["magnitude", "pad_val", "prob", "direction", "random_negative_prob", "interpolation"],
            K::Rotate => &["angle", "center", "scale", "pad_val", "prob", "random_negative_prob", "interpolation"],
            K::AutoContrast | K::Invert | K::Equalize => &["prob"],
            K::Solarize => &["thr", "prob"],
            K::SolarizeAdd => &["magnitude", "thr", "prob"],
            K::Posterize => &["bits", "prob"],
            K::Contrast | K::ColorTransform | K::Brightness | K::Sharpness => &["magnitude", "prob", "random_negative_prob"],
            K::Cutout => &["shape", "pad_val", "prob"],
        }
    }

    /// The argument holding the fixed value, for operations that have one.
    fn value_arg(self) -> Option<&'static str> {
        match self {
            K::AutoContrast | K::Invert | K::Equalize => None,
            K::Rotate => Some("angle"),
            K::Solarize => Some("thr"),
            K::Posterize => Some("bits"),
            K::Cutout => Some("shape"),
            _ => Some("magnitude"),
        }
    }

    /// Whether the value's sign is drawn (`random_negative`).
    fn signed(self) -> bool {
        matches!(self, K::Shear | K::Translate | K::Rotate | K::Contrast | K::ColorTransform | K::Brightness | K::Sharpness)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Noise {
    Off,
    Normal(f64),
    Uniform,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    None,
    Fixed(f64),
    Ranged { level: f64, range: [f64; 2], noise: Noise, total: f64 },
}

/// One built operation; see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct AugOp {
    kind: AugOpKind,
    prob: f64,
    negative_prob: f64,
    value: Value,
    /// `Cutout`'s fixed `(h, w)`.
    shape: Option<[usize; 2]>,
    /// The fill, RGB.
    border: [u8; 3],
    direction: WarpDirection,
    interp: WarpInterpolation,
    center: Option<(f64, f64)>,
    scale: f64,
    thr: f64,
    /// `SolarizeAdd` with an integer magnitude in `[0, 255]`: NumPy adds it in `uint8`.
    wrapping_add: Option<u8>,
}

impl AugOpConfig {
    fn given(&self) -> Vec<&'static str> {
        let c = self;
        let flags = [
            ("magnitude", c.magnitude.is_some()),
            ("angle", c.angle.is_some()),
            ("thr", c.thr.is_some()),
            ("bits", c.bits.is_some()),
            ("shape", c.shape.is_some()),
            ("center", c.center.is_some()),
            ("scale", c.scale.is_some()),
            ("pad_val", c.pad_val.is_some()),
            ("direction", c.direction.is_some()),
            ("interpolation", c.interpolation.is_some()),
            ("prob", c.prob.is_some()),
            ("random_negative_prob", c.random_negative_prob.is_some()),
        ];
        flags.into_iter().filter(|f| f.1).map(|f| f.0).collect()
    }

    /// Validates the config as operation `kind` and builds it.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for an argument `kind` does not take, both or neither of
    /// the fixed value and `magnitude_range`, a probability outside `[0, 1]`, `bits` above 8,
    /// an unknown `magnitude_std` word or an interpolation `warpAffine` lacks.
    pub fn init(&self, kind: AugOpKind) -> Result<AugOp, DataError> {
        let name = kind.name();
        let err = |m: String| DataError::config(name, m);
        // `random_negative_prob` is a keyword argument of the unsigned operations that do not
        // fix it to 0 (mmcls passes it on to `BaseAugTransform`, which ignores it).
        let fixed_zero = matches!(kind, K::Solarize | K::SolarizeAdd | K::Posterize | K::Cutout);
        for arg in self.given() {
            let kwarg = arg == "random_negative_prob" && !fixed_zero;
            if !kind.args().contains(&arg) && !kwarg {
                return Err(err(format!("takes no `{arg}` (its arguments: {})", kind.args().join(", "))));
            }
        }
        let fixed = match kind.value_arg() {
            Some("magnitude") => self.magnitude.as_ref().and_then(serde_json::Number::as_f64),
            Some("angle") => self.angle,
            Some("thr") => self.thr,
            Some("bits") => self.bits,
            Some(_) => self.shape.map(|s| s.pair()[0] as f64),
            None => None,
        };
        let value = match (kind.value_arg(), fixed, self.magnitude_range) {
            (None, _, _) => Value::None,
            (Some(_), Some(v), None) => Value::Fixed(v),
            (Some(_), None, Some(range)) => {
                let total = self.total_level.unwrap_or(10.0);
                let level = self.magnitude_level.unwrap_or(10.0);
                if !(total > 0.0 && level >= 0.0) {
                    return Err(err("`total_level` must be positive and `magnitude_level` non-negative".into()));
                }
                let noise = match &self.magnitude_std {
                    None => Noise::Off,
                    Some(MagnitudeStd::Number(s)) if *s > 0.0 => Noise::Normal(*s),
                    Some(MagnitudeStd::Number(_)) => Noise::Off,
                    Some(MagnitudeStd::Word(w)) if w == "inf" => Noise::Uniform,
                    Some(MagnitudeStd::Word(w)) => return Err(err(format!("`magnitude_std` must be a number or \"inf\", got {w:?}"))),
                };
                Value::Ranged { level, range, noise, total }
            }
            (Some(arg), _, _) => return Err(err(format!("give exactly one of `{arg}` and `magnitude_range`"))),
        };
        if kind == K::Posterize {
            let within = match &value {
                Value::Fixed(b) => *b <= 8.0,
                Value::Ranged { range, .. } => range.iter().all(|v| (0.0..=8.0).contains(v)),
                Value::None => true,
            };
            if !within {
                return Err(err("`bits` must not exceed 8".into()));
            }
        }
        let prob = self.prob.unwrap_or(0.5);
        let negative_prob = if fixed_zero { 0.0 } else { self.random_negative_prob.unwrap_or(0.5) };
        if !(0.0..=1.0).contains(&prob) || !(0.0..=1.0).contains(&negative_prob) {
            return Err(err("`prob` and `random_negative_prob` must be in [0, 1]".into()));
        }
        let default_interp = if kind == K::Shear { Interpolation::Bicubic } else { Interpolation::Nearest };
        let interp_name = self.interpolation.unwrap_or(default_interp);
        let interp = WarpInterpolation::from_mmcv(interp_name)
            .ok_or_else(|| err(format!("interpolation {interp_name:?} is not one of nearest, bilinear, bicubic, area, lanczos")))?;
        // mmcls's fill is BGR; `imrotate` hands a single number to OpenCV, which reads it as
        // the scalar `(v, 0, 0)`, i.e. blue only. The others repeat it on every channel.
        let border = match (self.pad_val.unwrap_or(PadVal::One(128)), kind) {
            (PadVal::One(v), K::Rotate) => [0, 0, v],
            (PadVal::One(v), _) => [v; 3],
            (PadVal::Three([b, g, r]), _) => [r, g, b],
        };
        Ok(AugOp {
            kind,
            prob,
            negative_prob,
            value,
            shape: self.shape.map(SizeSpec::pair),
            border,
            direction: self.direction.unwrap_or(WarpDirection::Horizontal),
            interp,
            center: self.center.map(|[x, y]| (x, y)),
            scale: self.scale.unwrap_or(1.0),
            thr: if kind == K::SolarizeAdd { self.thr.unwrap_or(128.0) } else { 0.0 },
            wrapping_add: self.magnitude.as_ref().and_then(serde_json::Number::as_u64).and_then(|m| u8::try_from(m).ok()),
        })
    }
}

impl AugOp {
    /// The operation.
    pub fn kind(&self) -> AugOpKind {
        self.kind
    }

    /// `BaseAugTransform.random_magnitude` (or the fixed value), then `random_negative`.
    fn sample_value<R: RandomSource + ?Sized>(&self, rng: &mut R) -> f64 {
        let v = match &self.value {
            Value::None => return 0.0,
            Value::Fixed(v) => *v,
            Value::Ranged { level, range, noise, total } => {
                let level = match noise {
                    Noise::Off => *level,
                    Noise::Normal(std) => rng.normal(*level, *std).clamp(0.0, *total),
                    Noise::Uniform => rng.uniform(0.0, *level),
                };
                level / total * (range[1] - range[0]) + range[0]
            }
        };
        if self.kind.signed() && rng.rand() < self.negative_prob {
            -v
        } else {
            v
        }
    }

    /// Applies the operation, drawing as mmcls does.
    ///
    /// # Errors
    /// [`DataError::Transform`] for an image without 3 channels.
    pub fn apply<R: RandomSource + ?Sized>(&self, img: Image, rng: &mut R) -> Result<Image, DataError> {
        if rng.rand() > self.prob {
            return Ok(img);
        }
        if img.channels() != 3 {
            return Err(DataError::Transform {
                transform: self.kind.name(),
                name: String::new(),
                message: format!("needs a 3-channel image, got {}", img.channels()),
            });
        }
        let m = self.sample_value(rng);
        let (w, h) = (img.width(), img.height());
        Ok(match self.kind {
            K::Shear => imshear(&img, m, self.direction, &self.border, self.interp),
            K::Translate => {
                let size = if self.direction == WarpDirection::Horizontal { w } else { h };
                imtranslate(&img, m * size as f64, self.direction, &self.border, self.interp)
            }
            K::Rotate => {
                let center = self.center.unwrap_or(((w as f64 - 1.0) * 0.5, (h as f64 - 1.0) * 0.5));
                warp_affine(&img, rotation_matrix(center, -m, self.scale), w, h, self.interp, &self.border)
            }
            K::AutoContrast => cv::auto_contrast(&img),
            K::Invert => cv::iminvert(&img),
            K::Equalize => cv::imequalize(&img),
            K::Solarize => photometric::solarize(&img, m),
            K::SolarizeAdd => {
                let mut out = img;
                for v in out.data_mut() {
                    if f64::from(*v) < self.thr {
                        *v = match self.wrapping_add {
                            // `img + 110` stays `uint8` (and wraps) for a Python int.
                            Some(add) if m >= 0.0 => v.wrapping_add(add),
                            _ => (f64::from(*v) + m).min(255.0) as u8,
                        };
                    }
                }
                out
            }
            K::Posterize => cv::posterize(&img, m.ceil().max(0.0) as u32),
            K::Contrast => cv::adjust_contrast_cv2(&img, 1.0 + m),
            K::ColorTransform => cv::adjust_color_cv2(&img, 1.0 + m),
            K::Brightness => cv::adjust_brightness_cv2(&img, 1.0 + m),
            K::Sharpness => cv::adjust_sharpness(&img, 1.0 + m),
            K::Cutout => {
                let [cut_h, cut_w] = self.shape.unwrap_or([m.max(0.0) as usize; 2]);
                // `np.random.uniform(img_h)`: low = img_h, high = 1.
                let y0 = rng.uniform(h as f64, 1.0);
                let x0 = rng.uniform(w as f64, 1.0);
                let y1 = (y0 - cut_h as f64 / 2.0).max(0.0) as usize;
                let x1 = (x0 - cut_w as f64 / 2.0).max(0.0) as usize;
                let (y2, x2) = (h.min(y1 + cut_h), w.min(x1 + cut_w));
                let mut out = img;
                let data = out.data_mut();
                for y in y1..y2 {
                    for x in x1..x2 {
                        data[(y * w + x) * 3..][..3].copy_from_slice(&self.border);
                    }
                }
                out
            }
        })
    }
}
