//! Port of `mmselfsup.models.heads.CAEHead` (`cae_head.py`): the codes of
//! the masked patches (the argmax of the DALL-E tokenizer's logits over its
//! vocabulary, `target[mask]`) and [`CaeLoss`] on the decoder's logits and
//! the regressor's latent prediction. The head has no parameters.
use burn::tensor::{backend::Backend, Int, Tensor};
use selfsup_losses::CaeLoss;
use serde::{Deserialize, Serialize};

selfsup_config::registry! {
    /// The `loss` dict of `CAEHead`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum CaeLossConfig {
        /// Cross entropy plus the weighted latent MSE.
        "CAELoss" => CaeLoss(CaeLoss),
    }
}

impl CaeLossConfig {
    /// The loss.
    pub fn get(&self) -> &CaeLoss {
        let Self::CaeLoss(l) = self;
        l
    }
}

/// `dict(type='CAEHead', loss=dict(type='CAELoss', lambd=2))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaeHeadConfig {
    /// The loss.
    pub loss: CaeLossConfig,
    /// MMEngine `init_cfg` (the head has no parameters).
    #[serde(default)]
    pub init_cfg: Option<serde_json::Value>,
}

impl CaeHeadConfig {
    /// Checks the loss; `(key, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        self.loss.get().validate().map_err(|(k, m)| (format!("loss.{k}"), m))
    }

    /// Builds the head.
    pub fn init(&self) -> CaeHead {
        CaeHead { loss: self.loss.get().clone() }
    }
}

/// CAE's head (no parameters, no keys).
#[derive(Debug, Clone)]
pub struct CaeHead {
    /// The loss.
    pub loss: CaeLoss,
}

impl CaeHead {
    /// The codes of the masked patches, `argmax(logits_target, 1)
    /// .flatten(1)[mask]`, sample by sample in patch order: `[tokens]`.
    ///
    /// # Shapes
    /// - `logits_target`: `[batch, vocabulary, h, w]`
    /// - `masked`: the masked patches' indices `[batch, masked]`, in patch order
    pub fn target<B: Backend>(&self, logits_target: Tensor<B, 4>, masked: &Tensor<B, 2, Int>) -> Tensor<B, 1, Int> {
        let [n, _, h, w] = logits_target.dims();
        let [_, m] = masked.dims();
        logits_target.detach().argmax(1).reshape([n, h * w]).gather(1, masked.clone()).reshape([n * m])
    }

    /// `(loss_main, loss_align)`.
    ///
    /// # Shapes
    /// - `logits`: `[tokens, classes]`, the masked patches sample by sample
    /// - `logits_target`: the tokenizer's `[batch, vocabulary, h, w]`
    /// - `latent_pred`, `latent_target`: `[batch, masked, dims]`
    /// - `masked`: the masked patches' indices `[batch, masked]` (the mask's
    ///   nonzero entries, in patch order)
    pub fn forward<B: Backend>(
        &self,
        logits: Tensor<B, 2>,
        logits_target: Tensor<B, 4>,
        latent_pred: Tensor<B, 3>,
        latent_target: Tensor<B, 3>,
        masked: &Tensor<B, 2, Int>,
    ) -> (Tensor<B, 1>, Tensor<B, 1>) {
        let target = self.target(logits_target, masked);
        self.loss.forward(logits, target, latent_pred, latent_target)
    }
}
