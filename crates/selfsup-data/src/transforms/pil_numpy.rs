//! `ToPIL` and `ToNumpy`: the conversions around mmcls's `torchvision/<Name>` transforms.
//!
//! MMSelfSup 1.0.0's PixMIM config runs torchvision transforms on a PIL image between
//! `mmcls.ToPIL(to_rgb=True)` and `mmcls.ToNumpy(to_rgb=True)`. Those arguments are those of
//! mmcls dev-1.x PR #1265 (open-mmlab/mmpretrain commit c431cbc0), not of the released mmcls
//! 1.0.0rc6, whose `ToPIL` takes no argument and whose `ToNumpy` requires `keys`; the
//! reference here is that PR's code, registered as `('NumpyToPIL', 'ToPIL')` and
//! `('PILToNumpy', 'ToNumpy')`:
//! - `ToPIL(to_rgb=False)`: `Image.fromarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if to_rgb
//!   else img)`;
//! - `ToNumpy(to_rgb=False, dtype=None)`: `img = np.array(img, dtype)`, then
//!   `cv2.cvtColor(img, cv2.COLOR_BGR2RGB)` if `to_rgb`. On an array that holds RGB this
//!   swap makes it BGR again; mmpretrain 1.x later renamed the argument `to_bgr`
//!   (`COLOR_RGB2BGR`, the same swap).
//!
//! # Channel order
//! The reference's arrays are BGR (mmcv's `imread`), this crate's images RGB: while the
//! reference holds an array, our image is that array with its channels reversed. While it
//! holds a PIL image (between `ToPIL` and `ToNumpy`), our image is the PIL image's pixels in
//! **its** channel order, so torchvision transforms that read channels (`fill`) see what the
//! reference's see. Hence:
//!
//! | transform | reference | this crate |
//! |---|---|---|
//! | `ToPIL(to_rgb=True)` | BGR array → RGB PIL image | unchanged |
//! | `ToPIL(to_rgb=False)` | BGR array → PIL image holding BGR | channels reversed |
//! | `ToNumpy(to_rgb=True)` | PIL image → array with its channels swapped | unchanged |
//! | `ToNumpy(to_rgb=False)` | PIL image → array as is | channels reversed |
//!
//! A pair with equal flags (`True`/`True` as in PixMIM, or `False`/`False`) leaves the image
//! as it was; a mixed pair swaps its channels, as in the reference (whose data preprocessor
//! then sees RGB where it expects BGR). The swap needs three channels, as `cv2.cvtColor` does;
//! a one-channel image passes unchanged where no swap is asked, and other channel counts are
//! refused (Pillow would make an RGBA image of four).
//!
//! # PIL images and arrays in a pipeline
//! [`Pipeline::new`](crate::Pipeline::new) follows which of the two the reference holds
//! ([`ImageKind`]) and refuses, when the pipeline is built, what the reference cannot run:
//! a `torchvision/` transform on an array (torchvision raises a `TypeError`), any other
//! transform of this crate (they work on arrays; `BEiTMaskGenerator` and
//! `SimMIMMaskGenerator`, which do not read the image, excepted) or `PackSelfSupInputs` on a
//! PIL image, a `ToPIL` on a PIL image, a `ToNumpy` on an array, and a pipeline that ends
//! with a PIL image.

use serde::{Deserialize, Serialize};

use crate::imaging::Image;
use crate::transforms::{ImageTransform, RandomSource, Transform};
use crate::DataError;

/// What the reference holds in `results['img']` at a point of a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// A NumPy array (after `LoadImageFromFile` and `ToNumpy`).
    Array,
    /// A PIL image (after `ToPIL`).
    Pil,
}

/// Both conversions on this crate's image: with `to_rgb` the reference swaps the channels
/// (`cv2.cvtColor`, three channels only) and our image stays as it is; without, the reference
/// keeps its channels and our image has its three channels reversed (a one-channel image
/// passes). Other channel counts are an error of `transform`.
fn convert(transform: &'static str, mut img: Image, to_rgb: bool) -> Result<Image, DataError> {
    let message = match (img.channels(), to_rgb) {
        (3, true) | (1, false) => return Ok(img),
        (3, false) => {
            for px in img.data_mut().chunks_exact_mut(3) {
                px.swap(0, 2);
            }
            return Ok(img);
        }
        (c, true) => format!("`to_rgb` swaps the channels with cv2.cvtColor, which needs a 3-channel image, got {c} channels"),
        (c, false) => format!("only 1- and 3-channel images are supported, got {c} channels"),
    };
    Err(DataError::Transform { transform, name: String::new(), message })
}

/// Configuration of [`ToPil`]. Field name and default are those of mmcls PR #1265.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToPilConfig {
    /// Convert the BGR array to an RGB PIL image. Default `false`.
    #[serde(default)]
    pub to_rgb: bool,
}

impl ToPilConfig {
    /// Builds the transform (every config is valid).
    ///
    /// # Errors
    /// None; `Result` for uniformity with the other transforms.
    pub fn init(&self) -> Result<ToPil, DataError> {
        Ok(ToPil { to_rgb: self.to_rgb })
    }
}

/// mmcls's `ToPIL`: the array becomes a PIL image (see the module documentation for what this
/// does to this crate's RGB image: nothing with `to_rgb`, a channel reversal without).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToPil {
    to_rgb: bool,
}

impl ToPil {
    /// The `to_rgb` flag.
    pub fn to_rgb(&self) -> bool {
        self.to_rgb
    }
}

impl ImageTransform for ToPil {
    const NAME: &'static str = "ToPIL";

    fn apply<R: RandomSource + ?Sized>(&self, img: Image, _rng: &mut R) -> Result<Image, DataError> {
        convert(Self::NAME, img, self.to_rgb)
    }
}

/// Configuration of [`ToNumpy`]. Field names and defaults are those of mmcls PR #1265.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToNumpyConfig {
    /// Swap the channels of the PIL image's array (`cv2.COLOR_BGR2RGB`): RGB back to BGR.
    /// Default `false`.
    #[serde(default)]
    pub to_rgb: bool,
    /// The array's dtype: only `uint8` (or none, the image's own) is supported, as this
    /// crate's images are 8-bit. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
}

impl ToNumpyConfig {
    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for a `dtype` other than `uint8`.
    pub fn init(&self) -> Result<ToNumpy, DataError> {
        if let Some(d) = self.dtype.as_deref().filter(|d| *d != "uint8") {
            return Err(DataError::config(ToNumpy::NAME, format!("`dtype` '{d}' is not supported: images are 8-bit (`uint8` or none)")));
        }
        Ok(ToNumpy { to_rgb: self.to_rgb })
    }
}

/// mmcls's `ToNumpy`: the PIL image becomes an array again (see the module documentation for
/// what this does to this crate's RGB image: nothing with `to_rgb`, a channel reversal
/// without).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToNumpy {
    to_rgb: bool,
}

impl ToNumpy {
    /// The `to_rgb` flag.
    pub fn to_rgb(&self) -> bool {
        self.to_rgb
    }
}

impl ImageTransform for ToNumpy {
    const NAME: &'static str = "ToNumpy";

    fn apply<R: RandomSource + ?Sized>(&self, img: Image, _rng: &mut R) -> Result<Image, DataError> {
        convert(Self::NAME, img, self.to_rgb)
    }
}

/// What the reference needs in `results['img']` before `t` (`None`: either) and holds after
/// it (`None`: unchanged). The wrappers are followed by [`check_image_kinds`].
pub(crate) fn image_kinds(t: &Transform) -> (Option<ImageKind>, Option<ImageKind>) {
    match t {
        Transform::LoadImageFromFile(_) => (None, Some(ImageKind::Array)),
        Transform::ToPIL(_) => (Some(ImageKind::Array), Some(ImageKind::Pil)),
        Transform::ToNumpy(_) => (Some(ImageKind::Pil), Some(ImageKind::Array)),
        Transform::TorchvisionResize(_) | Transform::TorchvisionRandomCrop(_) | Transform::TorchvisionRandomHorizontalFlip(_) => {
            (Some(ImageKind::Pil), None)
        }
        // Mask generators do not read the image; wrappers are checked through.
        Transform::BEiTMaskGenerator(_) | Transform::SimMIMMaskGenerator(_) | Transform::RandomApply(_) | Transform::MultiView(_) => {
            (None, None)
        }
        _ => (Some(ImageKind::Array), None),
    }
}

/// Follows the kind of image the reference holds through `transforms`, from `start`, and
/// returns the kind at the end. `path` names the transforms in errors (`pipeline`,
/// `pipeline[1] MultiView.transforms[0]`, ...).
///
/// # Errors
/// [`DataError::InvalidConfig`] for a transform that gets the wrong kind, a `RandomApply`
/// whose transforms change the kind (whether they run is random), or a `MultiView` pipeline
/// that ends with a PIL image.
pub(crate) fn check_image_kinds(transforms: &[Transform], start: ImageKind, path: &str) -> Result<ImageKind, DataError> {
    let mut kind = start;
    for (i, t) in transforms.iter().enumerate() {
        let here = format!("{path}[{i}] {}", t.name());
        let (needs, gives) = image_kinds(t);
        match needs {
            Some(ImageKind::Pil) if kind == ImageKind::Array => {
                let message = if matches!(t, Transform::ToNumpy(_)) {
                    "`ToNumpy` converts the PIL image of a `ToPIL` before it, but the image is an array here".to_string()
                } else {
                    format!(
                        "`{}` is a torchvision transform, which needs a PIL image, but the image is an array here: put \
                         `ToPIL` before it and `ToNumpy` after the torchvision transforms (the reference raises a TypeError)",
                        t.name()
                    )
                };
                return Err(DataError::config(here, message));
            }
            Some(ImageKind::Array) if kind == ImageKind::Pil => {
                return Err(DataError::config(
                    here,
                    format!("`{}` works on an array, but the image is a PIL image here (after `ToPIL`): put `ToNumpy` before it", t.name()),
                ));
            }
            _ => {}
        }
        match t {
            Transform::RandomApply(r) => {
                if check_image_kinds(r.pipeline().transforms(), kind, &format!("{here}.transforms"))? != kind {
                    return Err(DataError::config(
                        here,
                        "its transforms must give back the kind of image they get (array or PIL image), since whether they \
                         run is random",
                    ));
                }
            }
            Transform::MultiView(m) => {
                for (j, p) in m.pipelines().iter().enumerate() {
                    let sub = format!("{here}.transforms[{j}]");
                    if check_image_kinds(p.transforms(), kind, &sub)? == ImageKind::Pil {
                        return Err(DataError::config(
                            sub,
                            "it ends with a PIL image: add `ToNumpy` at its end (the reference's views are arrays)",
                        ));
                    }
                }
                if !m.pipelines().is_empty() {
                    kind = ImageKind::Array;
                }
            }
            _ => kind = gives.unwrap_or(kind),
        }
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgb() -> Image {
        Image::from_fn(2, 1, |x, _| [10 + x as u8, 20, 30])
    }

    #[test]
    fn equal_flags_keep_the_image_and_mixed_ones_swap_it() {
        let mut rng = rand::rng();
        for (a, b) in [(true, true), (false, false), (true, false), (false, true)] {
            let pil = ToPilConfig { to_rgb: a }.init().expect("valid").apply(rgb(), &mut rng).expect("converts");
            let out = ToNumpyConfig { to_rgb: b, dtype: None }.init().expect("valid").apply(pil, &mut rng).expect("converts");
            let want = if a == b { [10, 20, 30] } else { [30, 20, 10] };
            assert_eq!(out.pixel(0, 0), &want, "ToPIL({a}) + ToNumpy({b})");
        }
        // The PIL image holds BGR after ToPIL(to_rgb=False).
        let pil = ToPilConfig { to_rgb: false }.init().expect("valid").apply(rgb(), &mut rng).expect("converts");
        assert_eq!(pil.pixel(1, 0), &[30, 20, 11]);
    }

    #[test]
    fn channel_counts() {
        let mut rng = rand::rng();
        let gray = Image::from_fn(2, 2, |x, _| [x as u8]);
        assert_eq!(ToPilConfig { to_rgb: false }.init().expect("valid").apply(gray.clone(), &mut rng).expect("passes"), gray);
        let err = ToPilConfig { to_rgb: true }.init().expect("valid").apply(gray, &mut rng).expect_err("cvtColor needs 3 channels");
        assert!(err.is_sample_error(), "{err}");
        let rgba = Image::from_fn(1, 1, |_, _| [1, 2, 3, 4]);
        assert!(ToPilConfig { to_rgb: false }.init().expect("valid").apply(rgba, &mut rng).is_err());
        assert!(ToNumpyConfig { to_rgb: false, dtype: Some("float32".into()) }.init().is_err());
        assert!(ToNumpyConfig { to_rgb: true, dtype: Some("uint8".into()) }.init().is_ok());
        assert!(serde_json::from_str::<ToNumpyConfig>(r#"{"keys": ["img"]}"#).is_err());
    }
}
