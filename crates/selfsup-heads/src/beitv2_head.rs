//! Port of `mmselfsup.models.heads.BEiTV2Head` (`beitv2_head.py`): one
//! Linear classifier over the VQ-KD vocabulary, applied to the masked
//! tokens of the last layer and of the patch aggregation, each against the
//! tokenizer's codes.
use burn::{
    module::Module,
    nn::Linear,
    tensor::{backend::Backend, Int, Tensor, TensorData},
};
use selfsup_layers::functional::linear;
use selfsup_losses::BeitLoss;

use crate::beitv1_head::{masked_indices, select_tokens};

/// BEiT v2's head (built by [`crate::BeitHeadConfig::init_v2`]). Key
/// `cls_head.*`.
#[derive(Module, Debug)]
pub struct BeitV2Head<B: Backend> {
    /// `[embed_dims] -> [num_embed]`, shared by both inputs.
    pub cls_head: Linear<B>,
    /// The loss.
    #[module(skip)]
    pub loss: BeitLoss,
}

impl<B: Backend> BeitV2Head<B> {
    /// `(loss_1, loss_2)`.
    ///
    /// # Shapes
    /// - `feats`, `feats_cls_pt`: `[batch, L, d]` (no cls token)
    /// - `target`: the codes `[batch, L]` (integers)
    /// - `mask`: `[batch, h, w]`, 1 for masked patches
    pub fn forward(
        &self,
        feats: Tensor<B, 3>,
        feats_cls_pt: Tensor<B, 3>,
        target: Tensor<B, 2, Int>,
        mask: Tensor<B, 3>,
    ) -> (Tensor<B, 1>, Tensor<B, 1>) {
        let [n, l] = target.dims();
        let idx = masked_indices(&mask);
        let device = target.device();
        let codes = target.reshape([n * l]).select(0, Tensor::<B, 1, Int>::from_data(TensorData::new(idx.clone(), [idx.len()]), &device));
        let logits = linear(&self.cls_head, select_tokens(feats, &idx));
        let logits_cls_pt = linear(&self.cls_head, select_tokens(feats_cls_pt, &idx));
        self.loss.forward_pair(logits, logits_cls_pt, codes)
    }
}
