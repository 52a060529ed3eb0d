//! Port of `mmselfsup.models.losses.CAELoss` (`cae_loss.py`): PyTorch's
//! `CrossEntropyLoss` (mean) of the decoder's logits against the
//! tokenizer's codes of the masked patches (the main loss), and `lambd`
//! times PyTorch's `MSELoss` (mean) of the regressor's latent prediction
//! against the teacher's latent target (the align loss).
use burn::tensor::{activation::log_softmax, backend::Backend, Int, Tensor};
use serde::{Deserialize, Serialize};

/// `dict(type='CAELoss', lambd=...)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaeLoss {
    /// Weight of the align loss (required in MMSelfSup; CAE's config: 2).
    pub lambd: f64,
}

impl CaeLoss {
    /// Checks the weight; `(key, message)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !self.lambd.is_finite() {
            return Err(("lambd", format!("must be finite, got {}", self.lambd)));
        }
        Ok(())
    }

    /// `(loss_main, loss_align)`: `mean_i(−log softmax(logits_i)[target_i])`
    /// and `lambd · mean((latent_pred − latent_target)²)`, the target
    /// detached.
    ///
    /// # Shapes
    /// - `logits`: `[tokens, classes]`, `target`: `[tokens]`
    /// - `latent_pred`, `latent_target`: `[batch, masked, dims]`
    /// - returns two `[1]` tensors
    pub fn forward<B: Backend>(
        &self,
        logits: Tensor<B, 2>,
        target: Tensor<B, 1, Int>,
        latent_pred: Tensor<B, 3>,
        latent_target: Tensor<B, 3>,
    ) -> (Tensor<B, 1>, Tensor<B, 1>) {
        let n = logits.dims()[0];
        let main = log_softmax(logits, 1).gather(1, target.reshape([n, 1])).mean().neg();
        let align = (latent_pred - latent_target.detach()).powi_scalar(2).mean().mul_scalar(self.lambd);
        (main, align)
    }
}
