//! Port of `mmselfsup.models.heads.MILANPretrainHead` (mmselfsup 1.0.0):
//! the cosine-similarity loss between predicted and CLIP features, which
//! MILAN and EVA share.
use burn::tensor::{backend::Backend, Tensor};
use selfsup_losses::CosineSimilarityLoss;
use serde::{Deserialize, Serialize};

use crate::CosineLossConfig;

/// `dict(type='MILANPretrainHead', loss=dict(type='CosineSimilarityLoss', ...))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MilanPretrainHeadConfig {
    /// The loss (MILAN's and EVA's configs: `shift_factor=2.0, scale_factor=2.0`).
    pub loss: CosineLossConfig,
}

impl MilanPretrainHeadConfig {
    /// Builds the head (it has no parameters).
    pub fn init(&self) -> MilanPretrainHead {
        let CosineLossConfig::CosineSimilarity(loss) = &self.loss;
        MilanPretrainHead { loss: loss.clone() }
    }
}

/// `loss(pred, target, mask)` over tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct MilanPretrainHead {
    /// The cosine-similarity loss.
    pub loss: CosineSimilarityLoss,
}

impl MilanPretrainHead {
    /// The loss between predicted and target features: the mean over every
    /// token without a mask (MILAN), over the masked ones with it (EVA).
    ///
    /// # Shapes
    /// - `pred`, `target`: `[batch, tokens, dims]`
    /// - `mask`: `[batch, tokens]`
    /// - returns `[1]`
    pub fn forward<B: Backend>(&self, pred: Tensor<B, 3>, target: Tensor<B, 3>, mask: Option<Tensor<B, 2>>) -> Tensor<B, 1> {
        self.loss.forward_tokens(pred, target, mask)
    }
}
