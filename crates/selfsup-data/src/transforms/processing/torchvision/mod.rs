//! torchvision transforms under mmcls's `torchvision/<Name>` registry names.
//!
//! MMSelfSup 1.0.0's PixMIM config uses `mmcls.torchvision/Resize`,
//! `mmcls.torchvision/RandomCrop` and `mmcls.torchvision/RandomHorizontalFlip` between
//! `mmcls.ToPIL` and `mmcls.ToNumpy` (see [`ToPil`](crate::transforms::ToPil)). The released
//! mmcls 1.0.0rc6 registers no `torchvision/` transform: these names come from mmcls dev-1.x
//! PR #1265 (merged into mmpretrain 1.0.0rc8 as `TorchVisonTransformWrapper`), which
//! registers every class of `torchvision.transforms` as `torchvision/<Name>`, builds it with
//! the config's arguments (an `interpolation` string mapped by `_interpolation_modes_from_str`)
//! and applies it to `results['img']`. So the semantics are torchvision's (0.24) on a PIL
//! image:
//!
//! | transform | reference |
//! |---|---|
//! | [`TorchvisionResize`] | `torchvision.transforms.Resize` → `PIL.Image.resize` (antialiased) |
//! | [`TorchvisionRandomCrop`] | `torchvision.transforms.RandomCrop` → `F_pil.pad` (`np.pad` / `ImageOps.expand`), `PIL.Image.crop` |
//! | [`TorchvisionRandomHorizontalFlip`] | `torchvision.transforms.RandomHorizontalFlip` → `PIL.Image.transpose` |
//!
//! torchvision draws from torch's generator (`torch.randint` for the crop offsets,
//! `torch.rand(1)` for the flip); these transforms draw the same quantities, in the same
//! order, from the pipeline's [`RandomSource`](crate::transforms::RandomSource): the same
//! distributions, not torch's stream. The parity tests replay torch's draws.
//!
//! They work on the image as the PIL image holds it (the channel order `ToPIL` gave it), so a
//! pipeline that uses them without a `ToPIL` before them is refused when it is built, as the
//! reference fails on the arrays the other transforms pass around.

mod random_crop;
mod random_horizontal_flip;
mod resize;

pub use random_crop::{TorchvisionFill, TorchvisionPadding, TorchvisionRandomCrop, TorchvisionRandomCropConfig};
pub use random_horizontal_flip::{TorchvisionRandomHorizontalFlip, TorchvisionRandomHorizontalFlipConfig};
pub use resize::{TorchvisionInterpolation, TorchvisionResize, TorchvisionResizeConfig};

use serde::{Deserialize, Serialize};

/// A torchvision `size`: an integer or a list of one or two integers.
///
/// `Resize` reads an integer or a one-element list as the **shorter edge** and `[h, w]` as
/// the output size; `RandomCrop` reads an integer or a one-element list as a square and
/// `[h, w]` as the crop size. Other lengths are refused when the transform is built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TorchvisionSize {
    /// One integer.
    Int(usize),
    /// A list (`[s]` or `[h, w]`).
    List(Vec<usize>),
}

/// A validated [`TorchvisionSize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParsedSize {
    /// `s` or `[s]`.
    One(usize),
    /// `[h, w]`.
    Pair(usize, usize),
}

impl TorchvisionSize {
    /// The validated size; a message for a list of another length or a zero.
    fn parse(&self) -> Result<ParsedSize, String> {
        let parsed = match self {
            TorchvisionSize::Int(s) => ParsedSize::One(*s),
            TorchvisionSize::List(v) => match v.as_slice() {
                [s] => ParsedSize::One(*s),
                [h, w] => ParsedSize::Pair(*h, *w),
                _ => return Err(format!("`size` must be an integer or a list of 1 or 2 integers, got {v:?}")),
            },
        };
        match parsed {
            ParsedSize::One(0) => Err("`size` must be positive, got 0".into()),
            ParsedSize::Pair(h, w) if h == 0 || w == 0 => Err(format!("`size` must be positive, got [{h}, {w}]")),
            p => Ok(p),
        }
    }
}

impl From<usize> for TorchvisionSize {
    fn from(s: usize) -> Self {
        TorchvisionSize::Int(s)
    }
}
