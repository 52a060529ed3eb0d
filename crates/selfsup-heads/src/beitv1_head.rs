//! Port of `mmselfsup.models.heads.BEiTV1Head` (`beitv1_head.py`): a
//! Linear classifier over the tokenizer's vocabulary on the masked patch
//! tokens, against the codes the DALL-E tokenizer assigns (the argmax of
//! its logits).
use burn::{
    module::Module,
    nn::Linear,
    tensor::{backend::Backend, Int, Tensor, TensorData},
};
use selfsup_layers::{
    functional::linear,
    init::{trunc_normal_init, Dist, InitRng},
};
use selfsup_losses::BeitLoss;
use serde::{Deserialize, Serialize};

selfsup_config::registry! {
    /// The `loss` dict of the BEiT heads.
    #[derive(Debug, Clone, PartialEq)]
    pub enum BeitLossConfig {
        /// Cross entropy over the vocabulary.
        "BEiTLoss" => BeitLoss(BeitLoss),
    }
}

impl BeitLossConfig {
    /// The loss.
    pub fn get(&self) -> &BeitLoss {
        let Self::BeitLoss(l) = self;
        l
    }
}

/// `dict(type='BEiTV1Head', embed_dims, num_embed, loss)`; also the
/// arguments of `BEiTV2Head`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeitHeadConfig {
    /// Token width.
    pub embed_dims: usize,
    /// Vocabulary size of the tokenizer.
    pub num_embed: usize,
    /// The loss.
    pub loss: BeitLossConfig,
    /// MMEngine `init_cfg`: the default `TruncNormal(std=0.02, bias=0)` on
    /// the Linear; another `TruncNormal` std is honoured.
    #[serde(default)]
    pub init_cfg: Option<serde_json::Value>,
}

impl BeitHeadConfig {
    /// Checks the config; `(key, message)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.embed_dims == 0 || self.num_embed == 0 {
            return Err(("num_embed", "embed_dims and num_embed must be positive".into()));
        }
        Ok(())
    }

    /// The shared classifier `cls_head`.
    fn cls_head<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> Linear<B> {
        let (std, bias) = trunc_normal_init(self.init_cfg.as_ref()).unwrap_or((0.02, 0.0));
        rng.linear(self.embed_dims, self.num_embed, Dist::TruncNormal(0.0, std), Some(Dist::Constant(bias)), device)
    }

    /// Builds BEiT v1's head.
    pub fn init_v1<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> BeitV1Head<B> {
        BeitV1Head { cls_head: self.cls_head(device, rng), loss: self.loss.get().clone() }
    }

    /// Builds BEiT v2's head.
    pub fn init_v2<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> crate::BeitV2Head<B> {
        crate::BeitV2Head { cls_head: self.cls_head(device, rng), loss: self.loss.get().clone() }
    }
}

/// The row-major indices `b·L + l` of the masked patches of a `[batch, h,
/// w]` mask (PyTorch's `x[mask]` order).
pub fn masked_indices<B: Backend>(mask: &Tensor<B, 3>) -> Vec<i64> {
    let values = mask.clone().into_data().convert::<f32>().to_vec::<f32>().expect("f32 mask");
    values.iter().enumerate().filter(|(_, v)| **v > 0.0).map(|(i, _)| i as i64).collect()
}

/// Selects rows `idx` of `x` flattened to `[batch·L, c]`.
pub fn select_tokens<B: Backend>(x: Tensor<B, 3>, idx: &[i64]) -> Tensor<B, 2> {
    let [n, l, c] = x.dims();
    let device = x.device();
    x.reshape([n * l, c]).select(0, Tensor::<B, 1, Int>::from_data(TensorData::new(idx.to_vec(), [idx.len()]), &device))
}

/// BEiT v1's head. Key `cls_head.*`.
#[derive(Module, Debug)]
pub struct BeitV1Head<B: Backend> {
    /// `[embed_dims] -> [num_embed]`.
    pub cls_head: Linear<B>,
    /// The loss.
    #[module(skip)]
    pub loss: BeitLoss,
}

impl<B: Backend> BeitV1Head<B> {
    /// # Shapes
    /// - `feats`: `[batch, 1 + L, d]`, cls first
    /// - `target`: the tokenizer's logits `[batch, vocabulary, h, w]`
    /// - `mask`: `[batch, h, w]`, 1 for masked patches
    pub fn forward(&self, feats: Tensor<B, 3>, target: Tensor<B, 4>, mask: Tensor<B, 3>) -> Tensor<B, 1> {
        let [n, _, h, w] = target.dims();
        self.forward_codes(feats, target.argmax(1).reshape([n, h * w]), mask)
    }

    /// [`Self::forward`] from the codes (the argmax of the logits),
    /// `[batch, L]`.
    pub fn forward_codes(&self, feats: Tensor<B, 3>, codes: Tensor<B, 2, Int>, mask: Tensor<B, 3>) -> Tensor<B, 1> {
        let [n, l1, d] = feats.dims();
        let idx = masked_indices(&mask);
        let device = codes.device();
        let codes =
            codes.reshape([n * (l1 - 1)]).select(0, Tensor::<B, 1, Int>::from_data(TensorData::new(idx.clone(), [idx.len()]), &device));
        let logits = linear(&self.cls_head, select_tokens(feats.slice([0..n, 1..l1, 0..d]), &idx));
        self.loss.forward(logits, codes)
    }
}
