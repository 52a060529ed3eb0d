//! Port of `mmselfsup.models.losses.MAEReconstructionLoss`.
use burn::tensor::{backend::Backend, Tensor};

/// Mean squared error per patch, averaged over the **removed** patches only:
/// `Σ_mask mean_last((pred − target)²) / Σ mask`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MaeReconstructionLoss;

impl MaeReconstructionLoss {
    /// # Shapes
    /// - `pred`, `target`: `[batch, L, features]`
    /// - `mask`: `[batch, L]`, 1 for removed patches
    /// - returns `[1]`
    pub fn forward<B: Backend>(&self, pred: Tensor<B, 3>, target: Tensor<B, 3>, mask: Tensor<B, 2>) -> Tensor<B, 1> {
        let loss = (pred - target).powi_scalar(2).mean_dim(2).squeeze_dim::<2>(2);
        (loss * mask.clone()).sum() / mask.sum()
    }
}
