//! Port of `mmselfsup.models.losses.SimMIMReconstructionLoss`
//! (`simmim_loss.py`).
use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

/// `dict(type='SimMIMReconstructionLoss', encoder_in_channels)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimMimReconstructionLoss {
    /// Image channels (the loss is divided by them).
    pub encoder_in_channels: usize,
}

impl SimMimReconstructionLoss {
    /// `Σ |target − pred|·mask / (Σ mask + 1e-5) / channels`; the mask
    /// broadcasts over the channels.
    ///
    /// # Shapes
    /// - `pred`, `target`: `[batch, c, H, W]`
    /// - `mask`: `[batch, 1, H, W]`, 1 for masked pixels
    /// - returns `[1]`
    pub fn forward<B: Backend>(&self, pred: Tensor<B, 4>, target: Tensor<B, 4>, mask: Tensor<B, 4>) -> Tensor<B, 1> {
        let l1 = (target - pred).abs();
        let [n, c, h, w] = l1.dims();
        let masked = (l1 * mask.clone().expand([n, c, h, w])).sum();
        masked / (mask.sum() + 1e-5) / self.encoder_in_channels as f64
    }
}
