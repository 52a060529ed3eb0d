//! Port of `mmselfsup.models.heads.MixMIMPretrainHead` (`mixmim_head.py`).
use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

use crate::{MaePretrainHeadConfig, PixelLossConfig};

/// `dict(type='MixMIMPretrainHead', loss, norm_pix=False, patch_size=16)`;
/// MixMIM overrides `patch_size` with its neck's `encoder_stride`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixMimPretrainHeadConfig {
    /// The loss (`PixelReconstructionLoss`, L2, no mask).
    pub loss: PixelLossConfig,
    /// Normalise each target patch by its mean and (unbiased) variance.
    #[serde(default)]
    pub norm_pix: bool,
    /// Patch size of the target.
    #[serde(default = "default_patch")]
    pub patch_size: usize,
}

fn default_patch() -> usize {
    16
}

impl MixMimPretrainHeadConfig {
    /// Builds the head (no parameters) with `patch_size`.
    pub fn init(&self, patch_size: usize) -> MixMimPretrainHead {
        let target = MaePretrainHeadConfig { norm_pix: self.norm_pix, patch_size, ..Default::default() };
        MixMimPretrainHead { target: target.init(), loss: self.loss.get().clone() }
    }
}

/// MixMIM's head: unmixes the decoder's two halves
/// (`x1·m + flip(x2)·(1−m)`, `m` = 1 where the partner's tokens were) and
/// applies the loss against the image's patches over every token.
#[derive(Debug, Clone)]
pub struct MixMimPretrainHead {
    /// MAE's target construction (patchify, `norm_pix`).
    pub target: crate::MaePretrainHead,
    /// The loss.
    pub loss: selfsup_losses::PixelReconstructionLoss,
}

impl MixMimPretrainHead {
    /// The unmixed reconstruction `[batch, L, c]` from the decoder's
    /// `[2·batch, L, c]` and the mask `[1, L, 1]`.
    pub fn unmix<B: Backend>(&self, x_rec: Tensor<B, 3>, mask: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b2, l, c] = x_rec.dims();
        let b = b2 / 2;
        let x1 = x_rec.clone().slice([0..b, 0..l, 0..c]);
        let x2 = x_rec.slice([b..b2, 0..l, 0..c]).flip([0]);
        x1 * mask.clone() + x2 * (mask.neg() + 1.0)
    }

    /// # Shapes
    /// - `x_rec`: `[2·batch, L, p²·3]`
    /// - `img`: `[batch, 3, H, W]`
    /// - `mask`: `[1, L, 1]`
    pub fn forward<B: Backend>(&self, x_rec: Tensor<B, 3>, img: Tensor<B, 4>, mask: Tensor<B, 3>) -> Tensor<B, 1> {
        let target = self.target.construct_target(img);
        self.loss.forward(self.unmix(x_rec, mask), target, None)
    }
}
