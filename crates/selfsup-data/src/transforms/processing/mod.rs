//! Image-processing transforms.
//!
//! MMSelfSup pipelines mix transforms from three packages, which all name their file
//! `processing.py`; here each transform has its own file under this module:
//!
//! | transform | reference |
//! |---|---|
//! | [`RandomResizedCrop`], [`RandomCrop`], [`ColorJitter`], [`RandomGaussianBlur`], [`RandomSolarize`] | `mmselfsup/datasets/transforms/processing.py` |
//! | [`BeitMaskGenerator`], [`SimMimMaskGenerator`], [`RandomResizedCropAndInterpolationWithTwoPic`], [`RandomRotation`], [`RotationWithLabels`], [`RandomPatchWithLabels`] | `mmselfsup/datasets/transforms/processing.py` |
//! | [`RandomFlip`], [`Resize`], [`CenterCrop`], [`RandomGrayscale`] | `mmcv/transforms/processing.py` |
//! | [`ResizeEdge`] | `mmcls/datasets/transforms/processing.py` |
//! | [`TorchvisionResize`], [`TorchvisionRandomCrop`], [`TorchvisionRandomHorizontalFlip`] (`torchvision/<Name>`) | mmcls's torchvision wrapper over `torchvision/transforms/transforms.py` (see [`torchvision`]) |

mod center_crop;
mod color_jitter;
mod dino_multi_crop;
mod mask_generators;
mod random_crop;
mod random_erasing;
mod random_flip;
mod random_gaussian_blur;
mod random_grayscale;
mod random_patch_with_labels;
mod random_resized_crop;
mod random_resized_crop_two_pic;
mod random_rotation;
mod random_solarize;
mod resize;
mod resize_edge;
pub mod torchvision;

pub use center_crop::{CenterCrop, CenterCropConfig, PadConfig, PadValue};
pub use color_jitter::{ColorBackend, ColorJitter, ColorJitterConfig, ColorJitterParams, JitterRange};
pub use dino_multi_crop::DinoMultiCropConfig;
pub use mask_generators::{
    BeitMask, BeitMaskGenerator, BeitMaskGeneratorConfig, MaskBlock, SimMimMaskGenerator, SimMimMaskGeneratorConfig,
};
pub use random_crop::{CropPadding, PadFill, RandomCrop, RandomCropConfig};
pub use random_erasing::{RandomErasing, RandomErasingConfig};
pub use random_flip::{FlipDirections, FlipProb, RandomFlip, RandomFlipConfig};
pub use random_gaussian_blur::{RandomGaussianBlur, RandomGaussianBlurConfig};
pub use random_grayscale::{ColorFormat, RandomGrayscale, RandomGrayscaleConfig};
pub use random_patch_with_labels::{Patches, RandomPatchWithLabels, RandomPatchWithLabelsConfig};
pub use random_resized_crop::{CropParams, RandomResizedCrop, RandomResizedCropConfig};
pub use random_resized_crop_two_pic::{
    RandomResizedCropAndInterpolationWithTwoPic, RandomResizedCropAndInterpolationWithTwoPicConfig, TwoPicInterpolation, TwoPicParams,
};
pub use random_rotation::{Degrees, RandomRotation, RandomRotationConfig, RotationWithLabels, RotationWithLabelsConfig};
pub use random_solarize::{RandomSolarize, RandomSolarizeConfig};
pub use resize::{Resize, ResizeConfig, ScaleFactor};
pub use resize_edge::{Edge, ResizeEdge, ResizeEdgeConfig};
pub use torchvision::{
    TorchvisionFill, TorchvisionInterpolation, TorchvisionPadding, TorchvisionRandomCrop, TorchvisionRandomCropConfig,
    TorchvisionRandomHorizontalFlip, TorchvisionRandomHorizontalFlipConfig, TorchvisionResize, TorchvisionResizeConfig, TorchvisionSize,
};

use serde::{Deserialize, Serialize};

/// An image size given either as one integer (a square) or as a pair.
///
/// Which element of the pair is the width depends on the transform, as in the reference:
/// `RandomResizedCrop.size` is `(h, w)`, mmcv's `Resize.scale` and `CenterCrop.crop_size` are
/// `(w, h)`. Each field's documentation says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SizeSpec {
    /// One integer: both sides.
    Int(usize),
    /// Two integers.
    Pair([usize; 2]),
}

impl SizeSpec {
    /// The pair, with an integer duplicated.
    pub fn pair(self) -> [usize; 2] {
        match self {
            SizeSpec::Int(s) => [s, s],
            SizeSpec::Pair(p) => p,
        }
    }
}

impl From<usize> for SizeSpec {
    fn from(s: usize) -> Self {
        SizeSpec::Int(s)
    }
}

/// Python's `int(round(x))` for a non-negative float: round half to **even**.
pub(crate) fn py_round(x: f64) -> usize {
    x.round_ties_even().max(0.0) as usize
}
