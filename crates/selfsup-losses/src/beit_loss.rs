//! Port of `mmselfsup.models.losses.BEiTLoss` (`beit_loss.py`): PyTorch's
//! `CrossEntropyLoss` (mean over tokens) between the predicted logits of
//! the masked patches and their tokenizer codes; BEiT v2 computes it twice,
//! for the last layer's tokens and for the patch-aggregation tokens.
use burn::tensor::{activation::log_softmax, backend::Backend, Int, Tensor};
use serde::{Deserialize, Serialize};

/// `dict(type='BEiTLoss')` (no arguments).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeitLoss {}

impl BeitLoss {
    /// `mean_i(−log softmax(logits_i)[target_i])`.
    ///
    /// # Shapes
    /// - `logits`: `[tokens, vocabulary]`, `target`: `[tokens]` -> `[1]`
    pub fn forward<B: Backend>(&self, logits: Tensor<B, 2>, target: Tensor<B, 1, Int>) -> Tensor<B, 1> {
        let n = logits.dims()[0];
        log_softmax(logits, 1).gather(1, target.reshape([n, 1])).mean().neg()
    }

    /// BEiT v2's pair: the loss of each logits tensor against the same codes.
    pub fn forward_pair<B: Backend>(
        &self,
        logits: Tensor<B, 2>,
        logits_cls_pt: Tensor<B, 2>,
        target: Tensor<B, 1, Int>,
    ) -> (Tensor<B, 1>, Tensor<B, 1>) {
        (self.forward(logits, target.clone()), self.forward(logits_cls_pt, target))
    }
}
