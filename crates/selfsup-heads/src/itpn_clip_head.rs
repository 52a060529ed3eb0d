//! Port of mmpretrain's `iTPNClipHead` (`heads/itpn_clip_head.py`,
//! mmpretrain 1.2.0): a Linear from the neck's tokens to CLIP's feature
//! width, scored against CLIP's features on the masked patches.
use burn::{
    module::Module,
    nn::Linear,
    tensor::{backend::Backend, Tensor},
};
use selfsup_layers::{
    functional::linear,
    init::{Dist, InitRng},
};
use selfsup_losses::CosineSimilarityLoss;
use serde::{Deserialize, Serialize};

use crate::CosineLossConfig;

/// `dict(type='iTPNClipHead', embed_dims=..., num_embed=..., loss=...)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ITpnClipHeadConfig {
    /// Width of the neck's tokens.
    pub embed_dims: usize,
    /// Width of CLIP's features.
    pub num_embed: usize,
    /// `dict(type='CosineSimilarityLoss')` in mmpretrain's configs.
    pub loss: CosineLossConfig,
    /// MMEngine `init_cfg`: the head's default is the truncated normal
    /// built here (accepted, not interpreted).
    #[serde(default)]
    pub init_cfg: Option<serde_json::Value>,
}

impl ITpnClipHeadConfig {
    /// Builds the head with its default `init_cfg`: `TruncNormal(std=0.02)`
    /// weight, zero bias.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> ITpnClipHead<B> {
        let CosineLossConfig::CosineSimilarity(loss) = &self.loss;
        ITpnClipHead {
            cls_head: rng.linear(self.embed_dims, self.num_embed, Dist::TruncNormal(0.0, 0.02), Some(Dist::Constant(0.0)), device),
            loss: loss.clone(),
        }
    }
}

/// iTPN's CLIP head. Key `cls_head.*`.
#[derive(Module, Debug)]
pub struct ITpnClipHead<B: Backend> {
    /// Tokens to CLIP's width.
    pub cls_head: Linear<B>,
    /// The cosine loss.
    #[module(skip)]
    pub loss: CosineSimilarityLoss,
}

impl<B: Backend> ITpnClipHead<B> {
    /// The loss over the masked patches: mmpretrain selects them
    /// (`feats[mask]`) and averages; a mask weight does the same.
    ///
    /// # Shapes
    /// - `feats`: `[batch, L, embed_dims]`
    /// - `target`: `[batch, L, num_embed]` (CLIP's patch features)
    /// - `mask`: `[batch, L]`, 1 for masked patches
    /// - returns `[1]`
    pub fn forward(&self, feats: Tensor<B, 3>, target: Tensor<B, 3>, mask: Tensor<B, 2>) -> Tensor<B, 1> {
        self.loss.forward_tokens(linear(&self.cls_head, feats), target, Some(mask))
    }
}
