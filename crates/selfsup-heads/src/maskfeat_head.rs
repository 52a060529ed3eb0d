//! Port of `mmselfsup.models.heads.MaskFeatPretrainHead`
//! (`maskfeat_head.py`).
use burn::tensor::{backend::Backend, Tensor};
use selfsup_losses::PixelReconstructionLoss;
use serde::{Deserialize, Serialize};

selfsup_config::registry! {
    /// The `loss` dict of a pixel-target head.
    #[derive(Debug, Clone, PartialEq)]
    pub enum PixelLossConfig {
        /// L1 or L2 per token, masked mean.
        "PixelReconstructionLoss" => PixelReconstructionLoss(PixelReconstructionLoss),
    }
}

impl PixelLossConfig {
    /// The loss.
    pub fn get(&self) -> &PixelReconstructionLoss {
        let Self::PixelReconstructionLoss(l) = self;
        l
    }
}

/// `dict(type='MaskFeatPretrainHead', loss=...)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskFeatPretrainHeadConfig {
    /// The loss (`PixelReconstructionLoss`, L2 in MMSelfSup's config).
    pub loss: PixelLossConfig,
}

impl MaskFeatPretrainHeadConfig {
    /// Builds the head (no parameters).
    pub fn init(&self) -> MaskFeatPretrainHead {
        MaskFeatPretrainHead { loss: self.loss.get().clone() }
    }
}

/// MaskFeat's head: the loss on the patch tokens' predictions (the cls
/// token dropped) against the HOG target, over the masked patches.
#[derive(Debug, Clone)]
pub struct MaskFeatPretrainHead {
    /// The loss.
    pub loss: PixelReconstructionLoss,
}

impl MaskFeatPretrainHead {
    /// # Shapes
    /// - `pred`: `[batch, 1 + L, c]`, cls first
    /// - `target`: `[batch, L, c]`
    /// - `mask`: `[batch, h, w]` with `h·w = L`, 1 for masked patches
    pub fn forward<B: Backend>(&self, pred: Tensor<B, 3>, target: Tensor<B, 3>, mask: Tensor<B, 3>) -> Tensor<B, 1> {
        let [n, l1, c] = pred.dims();
        let [_, h, w] = mask.dims();
        let mask = mask.reshape([n, h * w]).greater_elem(0.0).float();
        self.loss.forward(pred.slice([0..n, 1..l1, 0..c]), target, Some(mask))
    }
}
