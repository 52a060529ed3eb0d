//! Port of `mmselfsup.models.losses.CosineSimilarityLoss`
//! (`cosine_similarity_loss.py`).
use burn::tensor::{backend::Backend, Tensor};
use selfsup_layers::l2_normalize;
use serde::{Deserialize, Serialize};

/// `dict(type='CosineSimilarityLoss', shift_factor=0.0, scale_factor=1.0)`:
/// `shift − scale·⟨p̂, t̂⟩` over the last dimension (`p̂`, `t̂` L2-normalised
/// with PyTorch's `eps` 1e-12), averaged, or averaged over a mask's ones
/// (`Σ loss·mask / Σ mask`, MILAN's and EVA's masked tokens).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CosineSimilarityLoss {
    /// Added constant.
    pub shift_factor: f64,
    /// Scale of the cosine.
    pub scale_factor: f64,
}

impl Default for CosineSimilarityLoss {
    fn default() -> Self {
        Self { shift_factor: 0.0, scale_factor: 1.0 }
    }
}

impl CosineSimilarityLoss {
    /// # Shapes
    /// - `pred`, `target`: `[n, d]` -> `[1]`
    pub fn forward<B: Backend>(&self, pred: Tensor<B, 2>, target: Tensor<B, 2>) -> Tensor<B, 1> {
        let cos = (l2_normalize(pred, 1) * l2_normalize(target, 1)).sum_dim(1);
        cos.mul_scalar(-self.scale_factor).add_scalar(self.shift_factor).mean()
    }

    /// The loss over tokens, with MMSelfSup's optional mask (MILAN passes
    /// none and averages over every token, EVA averages over the masked
    /// patches).
    ///
    /// # Shapes
    /// - `pred`, `target`: `[n, l, d]`
    /// - `mask`: `[n, l]`, weights (1 for the tokens that count)
    /// - returns `[1]`
    pub fn forward_tokens<B: Backend>(&self, pred: Tensor<B, 3>, target: Tensor<B, 3>, mask: Option<Tensor<B, 2>>) -> Tensor<B, 1> {
        let [n, l, _] = pred.dims();
        let cos = (l2_normalize(pred, 2) * l2_normalize(target, 2)).sum_dim(2).reshape([n, l]);
        let loss = cos.mul_scalar(-self.scale_factor).add_scalar(self.shift_factor);
        match mask {
            None => loss.mean(),
            Some(mask) => (loss * mask.clone()).sum() / mask.sum(),
        }
    }
}
