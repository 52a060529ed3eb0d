//! Port of `mmselfsup.models.losses.PixelReconstructionLoss`
//! (`reconstruction_loss.py`).
use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

/// The penalty of [`PixelReconstructionLoss`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Criterion {
    /// `nn.L1Loss(reduction='none')`.
    L1,
    /// `nn.MSELoss(reduction='none')`.
    L2,
}

/// `dict(type='PixelReconstructionLoss', criterion, channel=None)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PixelReconstructionLoss {
    /// `'L1'` or `'L2'`.
    pub criterion: Criterion,
    /// Divide the masked mean by this many channels (1 when unset).
    #[serde(default)]
    pub channel: Option<usize>,
}

impl PixelReconstructionLoss {
    /// The elementwise penalty averaged over the features, then over the
    /// tokens where `mask` is 1 (divided by `channel`), or over every token
    /// without a mask.
    ///
    /// # Shapes
    /// - `pred`, `target`: `[batch, L, features]`
    /// - `mask`: `[batch, L]`
    /// - returns `[1]`
    pub fn forward<B: Backend>(&self, pred: Tensor<B, 3>, target: Tensor<B, 3>, mask: Option<Tensor<B, 2>>) -> Tensor<B, 1> {
        let diff = pred - target;
        let penalty = match self.criterion {
            Criterion::L1 => diff.abs(),
            Criterion::L2 => diff.powi_scalar(2),
        };
        let loss = penalty.mean_dim(2).squeeze_dim::<2>(2);
        match mask {
            None => loss.mean(),
            Some(mask) => (loss * mask.clone()).sum() / mask.sum() / self.channel.unwrap_or(1) as f64,
        }
    }
}
