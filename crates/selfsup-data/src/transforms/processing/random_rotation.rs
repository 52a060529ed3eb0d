//! `RandomRotation` and `RotationWithLabels`. Ports of
//! `mmselfsup.datasets.transforms.RandomRotation` and `RotationWithLabels` (mmselfsup 1.0.0,
//! `datasets/transforms/processing.py`).
//!
//! `RandomRotation` has torchvision's parameters (`degrees`, `interpolation`, `expand`,
//! `center`, `fill`) and draws the angle as torchvision does (uniform in `degrees`), but,
//! like MMSelfSup, it rotates with `mmcv.imrotate`, i.e. OpenCV's `warpAffine`
//! ([`imrotate`]): a positive angle turns the image **clockwise** (torchvision turns it
//! counter-clockwise), `center` defaults to `((w−1)/2, (h−1)/2)`, and `expand` grows the
//! canvas to `round(h·|sin| + w·|cos|) × round(h·|cos| + w·|sin|)`. `fill` is a Python
//! `int` that OpenCV turns into the scalar `(fill, 0, 0, 0)`: it fills the reference's first
//! channel only, blue in its BGR arrays, i.e. channel 2 of this crate's RGB images (the only
//! channel of a grey image).
//!
//! `RotationWithLabels` turns one image into four: the image rotated by 0, 90, 180 and 270
//! degrees clockwise (`mmcv.imrotate` with its defaults: bilinear, same canvas, so a
//! non-square image loses its corners), with `rot_label = [0, 1, 2, 3]`.

use serde::{Deserialize, Serialize};

use crate::imaging::cv2_warp::{imrotate, WarpInterpolation};
use crate::imaging::{Image, Interpolation};
use crate::transforms::{single_image, ImageTransform, PackedArray, RandomSource, Results};
use crate::DataError;

/// `degrees` of [`RandomRotationConfig`]: `d` for `[-d, d]`, or `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Degrees {
    /// `[-d, d]`; `d` must be non-negative.
    Symmetric(f64),
    /// `[min, max]`.
    Range([f64; 2]),
}

/// Configuration of [`RandomRotation`]. Field names and defaults are MMSelfSup's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomRotationConfig {
    /// Range of angles in degrees. Required.
    pub degrees: Degrees,
    /// `nearest` (default), `bilinear`, `bicubic`, `area` (bilinear in OpenCV's warp) or
    /// `lanczos`.
    #[serde(default = "default_interpolation")]
    pub interpolation: Interpolation,
    /// Grow the output to hold the whole rotated image. Default `false`.
    #[serde(default)]
    pub expand: bool,
    /// Rotation centre `[x, y]` in the source image. Default `None`: the image centre.
    #[serde(default)]
    pub center: Option<[f64; 2]>,
    /// Fill value outside the rotated image (the blue channel; see the module docs).
    /// Default 0.
    #[serde(default)]
    pub fill: i64,
}

fn default_interpolation() -> Interpolation {
    Interpolation::Nearest
}

impl RandomRotationConfig {
    /// MMSelfSup's defaults with the given range.
    pub fn new(degrees: Degrees) -> Self {
        Self { degrees, interpolation: default_interpolation(), expand: false, center: None, fill: 0 }
    }

    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for a negative single `degrees`, an inverted range, an
    /// interpolation other than the five above, or `expand` with a `center` (as in the
    /// reference).
    pub fn init(&self) -> Result<RandomRotation, DataError> {
        let name = RandomRotation::NAME;
        let degrees = match self.degrees {
            Degrees::Symmetric(d) if d < 0.0 => {
                return Err(DataError::config(name, format!("a single `degrees` must be non-negative, got {d}")))
            }
            Degrees::Symmetric(d) => [-d, d],
            Degrees::Range(r) => r,
        };
        if degrees[0] > degrees[1] {
            return Err(DataError::config(name, format!("`degrees` must be [min, max], got {degrees:?}")));
        }
        if self.expand && self.center.is_some() {
            return Err(DataError::config(name, "`expand` conflicts with `center`"));
        }
        let interpolation = WarpInterpolation::from_mmcv(self.interpolation).ok_or_else(|| {
            DataError::config(
                name,
                format!("interpolation {:?} is not one of nearest, bilinear, bicubic, area, lanczos", self.interpolation),
            )
        })?;
        Ok(RandomRotation {
            degrees,
            interpolation,
            expand: self.expand,
            center: self.center.map(|[x, y]| (x, y)),
            fill: self.fill.clamp(0, 255) as u8,
        })
    }
}

/// Rotates by a random angle; see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomRotation {
    degrees: [f64; 2],
    interpolation: WarpInterpolation,
    expand: bool,
    center: Option<(f64, f64)>,
    fill: u8,
}

impl RandomRotation {
    /// Draws the angle (`uniform(min, max)`, degrees).
    pub fn sample_angle<R: RandomSource + ?Sized>(&self, rng: &mut R) -> f64 {
        rng.uniform(self.degrees[0], self.degrees[1])
    }

    /// Rotates `img` clockwise by `angle` degrees with this transform's settings.
    pub fn apply_with(&self, img: &Image, angle: f64) -> Image {
        let c = img.channels();
        // OpenCV's scalar `(fill, 0, 0, 0)` in BGR order: blue, the last of our RGB channels.
        let mut border = vec![0u8; c];
        if c == 3 {
            border[2] = self.fill;
        } else if let Some(b) = border.first_mut() {
            *b = self.fill;
        }
        imrotate(img, angle, self.center, &border, self.interpolation, self.expand)
    }
}

impl ImageTransform for RandomRotation {
    const NAME: &'static str = "RandomRotation";

    fn apply<R: RandomSource + ?Sized>(&self, img: Image, rng: &mut R) -> Result<Image, DataError> {
        let angle = self.sample_angle(rng);
        Ok(self.apply_with(&img, angle))
    }
}

/// Configuration of [`RotationWithLabels`] (no parameter).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationWithLabelsConfig {}

impl RotationWithLabelsConfig {
    /// Builds the transform.
    ///
    /// # Errors
    /// None; the signature matches the other transforms.
    pub fn init(&self) -> Result<RotationWithLabels, DataError> {
        Ok(RotationWithLabels)
    }
}

/// RotationPred's four rotations with their labels; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationWithLabels;

impl RotationWithLabels {
    /// The registry name.
    pub const NAME: &'static str = "RotationWithLabels";
    /// The pseudo-label key it adds.
    pub const LABEL_KEY: &'static str = "rot_label";

    /// The image rotated by 0, 90, 180 and 270 degrees clockwise (same canvas, bilinear).
    pub fn rotations(img: &Image) -> Vec<Image> {
        let border = vec![0u8; img.channels()];
        let mut out = vec![img.clone()];
        for angle in [90.0, 180.0, 270.0] {
            out.push(imrotate(img, angle, None, &border, WarpInterpolation::Bilinear, false));
        }
        out
    }

    /// Replaces the one image of `results` by its four rotations and adds `rot_label`.
    ///
    /// # Errors
    /// [`DataError::Transform`] when `results` does not hold exactly one image.
    pub fn transform(&self, mut results: Results) -> Result<Results, DataError> {
        let img = single_image(&mut results, Self::NAME)?;
        results.img = Self::rotations(&img);
        results
            .pseudo_label
            .insert(Self::LABEL_KEY.into(), PackedArray { shape: vec![4], data: crate::transforms::ArrayData::I64(vec![0, 1, 2, 3]) });
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::{Draw, ReplayDraws};

    #[test]
    fn config_defaults_and_validation() {
        let c: RandomRotationConfig = serde_json::from_str(r#"{"degrees": 30}"#).expect("parses");
        assert_eq!(c, RandomRotationConfig::new(Degrees::Symmetric(30.0)));
        let t = c.init().expect("valid");
        assert_eq!(t.degrees, [-30.0, 30.0]);
        assert_eq!(t.interpolation, WarpInterpolation::Nearest);
        assert!(RandomRotationConfig::new(Degrees::Symmetric(-1.0)).init().is_err());
        assert!(RandomRotationConfig::new(Degrees::Range([5.0, 1.0])).init().is_err());
        let mut c = RandomRotationConfig::new(Degrees::Range([-5.0, 5.0]));
        c.expand = true;
        c.center = Some([1.0, 1.0]);
        assert!(c.init().is_err());
        c.center = None;
        c.interpolation = Interpolation::Hamming;
        assert!(c.init().is_err());
    }

    #[test]
    fn fill_goes_to_the_blue_channel() {
        let mut c = RandomRotationConfig::new(Degrees::Range([45.0, 45.0]));
        c.fill = 200;
        let t = c.init().expect("valid");
        let img = Image::filled(9, 9, &[10, 20, 30]);
        let mut rng = ReplayDraws::new([Draw::Uniform(45.0)]);
        let out = t.apply(img.clone(), &mut rng).expect("rotates");
        assert_eq!(out.pixel(0, 0), &[0, 0, 200]);
        assert_eq!(out.pixel(4, 4), &[10, 20, 30]);
    }

    #[test]
    fn rotation_with_labels_makes_four_views_and_labels() {
        let img = Image::from_fn(4, 4, |x, y| [(x + 4 * y) as u8 * 10, 0, 0]);
        let r = RotationWithLabels.transform(Results { img: vec![img.clone()], ..Results::default() }).expect("one image");
        assert_eq!(r.img.len(), 4);
        assert_eq!(r.img[0], img);
        // 180°: the bottom-right pixel comes to the top-left.
        assert_eq!(r.img[2].pixel(0, 0), img.pixel(3, 3));
        assert_eq!(r.pseudo_label["rot_label"].to_i64(), vec![0, 1, 2, 3]);
    }
}
