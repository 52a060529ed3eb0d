//! Port of `mmselfsup.models.heads.SimMIMHead` (`simmim_head.py`).
use burn::tensor::{backend::Backend, Tensor};
use selfsup_losses::SimMimReconstructionLoss;
use serde::{Deserialize, Serialize};

selfsup_config::registry! {
    /// The `loss` dict of SimMIM's head.
    #[derive(Debug, Clone, PartialEq)]
    pub enum SimMimLossConfig {
        /// Masked L1.
        "SimMIMReconstructionLoss" => SimMimReconstructionLoss(SimMimReconstructionLoss),
    }
}

/// `dict(type='SimMIMHead', patch_size, loss=...)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimMimHeadConfig {
    /// Pixels per token side (the mask is upsampled by it).
    pub patch_size: usize,
    /// The loss.
    pub loss: SimMimLossConfig,
}

impl SimMimHeadConfig {
    /// Builds the head (no parameters).
    pub fn init(&self) -> SimMimHead {
        let SimMimLossConfig::SimMimReconstructionLoss(loss) = &self.loss;
        SimMimHead { patch_size: self.patch_size, loss: loss.clone() }
    }
}

/// SimMIM's head: the token mask upsampled to pixels
/// (`repeat_interleave` by `patch_size`), then the masked L1.
#[derive(Debug, Clone)]
pub struct SimMimHead {
    /// Pixels per token side.
    pub patch_size: usize,
    /// The loss.
    pub loss: SimMimReconstructionLoss,
}

impl SimMimHead {
    /// The token mask as a pixel mask: `[n, h, w] -> [n, 1, h·p, w·p]`.
    pub fn pixel_mask<B: Backend>(&self, mask: Tensor<B, 3>) -> Tensor<B, 4> {
        let [n, h, w] = mask.dims();
        let p = self.patch_size;
        mask.reshape([n, h, 1, w, 1]).expand([n, h, p, w, p]).reshape([n, 1, h * p, w * p])
    }

    /// # Shapes
    /// - `pred`, `target`: `[batch, c, H, W]`
    /// - `mask`: `[batch, H/p, W/p]`
    pub fn forward<B: Backend>(&self, pred: Tensor<B, 4>, target: Tensor<B, 4>, mask: Tensor<B, 3>) -> Tensor<B, 1> {
        self.loss.forward(pred, target, self.pixel_mask(mask))
    }
}
