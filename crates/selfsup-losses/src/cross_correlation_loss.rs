//! Port of `mmselfsup.models.losses.CrossCorrelationLoss`
//! (`cross_correlation_loss.py`), Barlow Twins' loss.
use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

/// `dict(type='CrossCorrelationLoss', lambd=0.0051)`:
/// `Σ(diag(c) − 1)² + λ·Σ offdiag(c)²`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrossCorrelationLoss {
    /// Weight of the off-diagonal term.
    pub lambd: f64,
}

impl Default for CrossCorrelationLoss {
    fn default() -> Self {
        Self { lambd: 0.0051 }
    }
}

impl CrossCorrelationLoss {
    /// # Shapes
    /// - `c`: `[d, d]` -> `[1]`
    pub fn forward<B: Backend>(&self, c: Tensor<B, 2>) -> Tensor<B, 1> {
        let [d, _] = c.dims();
        let eye = Tensor::<B, 2>::eye(d, &c.device());
        let diag = (c.clone() * eye.clone()).sum_dim(1).reshape([d]);
        let on_diag = diag.sub_scalar(1.0).powi_scalar(2).sum();
        let off = c * (eye.neg().add_scalar(1.0));
        on_diag + off.powi_scalar(2).sum().mul_scalar(self.lambd)
    }
}
