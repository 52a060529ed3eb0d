//! Port of `mmcls.models.backbones.vision_transformer.TransformerEncoderLayer`
//! (pre-norm, exact-erf GELU) and mmcv's `FFN`.
use crate::norm::LayerNorm;
use burn::{
    module::Module,
    nn::Linear,
    tensor::{backend::Backend, Tensor},
};

use crate::{
    functional::linear,
    init::{Dist, InitRng},
    MultiheadAttention, NormCfg,
};

/// Key remap rows between our FFN field names and mmcv's
/// `FFN.layers = Sequential(Sequential(Linear, GELU, Dropout), Linear, Dropout)`:
/// `(pytorch_pattern, ours_template, ours_pattern, pytorch_template)`,
/// regular expressions on the full key.
pub const FFN_KEY_REMAP: &[(&str, &str, &str, &str)] = &[
    (r"(^|\.)ffn\.layers\.0\.0\.", "${1}ffn.fc1.", r"(^|\.)ffn\.fc1\.", "${1}ffn.layers.0.0."),
    (r"(^|\.)ffn\.layers\.1\.", "${1}ffn.fc2.", r"(^|\.)ffn\.fc2\.", "${1}ffn.layers.1."),
];

/// mmcv's `FFN` with two fully connected layers and GELU.
#[derive(Module, Debug)]
pub struct Ffn<B: Backend> {
    /// Key `ffn.layers.0.0` in MMSelfSup checkpoints.
    pub fc1: Linear<B>,
    /// Key `ffn.layers.1` in MMSelfSup checkpoints.
    pub fc2: Linear<B>,
}

impl<B: Backend> Ffn<B> {
    /// # Shapes
    /// `[batch, tokens, dims] -> [batch, tokens, dims]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        linear(&self.fc2, crate::fused::gelu(linear(&self.fc1, x)))
    }
}

/// Configuration of a [`TransformerEncoderLayer`].
#[derive(Debug, Clone)]
pub struct TransformerEncoderLayerConfig {
    /// Token width.
    pub embed_dims: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Hidden width of the FFN.
    pub feedforward_channels: usize,
    /// Bias on the fused qkv projection.
    pub qkv_bias: bool,
    /// The LayerNorms' config.
    pub norm_cfg: NormCfg,
    /// Std of the FFN biases' initial values: mmcls's layer draws them from
    /// `N(0, 1e-6)`; MAE's encoder re-initialises them to 0.
    pub ffn_bias_std: f64,
}

impl TransformerEncoderLayerConfig {
    /// Builds the layer with MAE's initialisation (xavier Linear, unit LN).
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> TransformerEncoderLayer<B> {
        let (d, h) = (self.embed_dims, self.feedforward_channels);
        let bias = if self.ffn_bias_std > 0.0 { Dist::Normal(0.0, self.ffn_bias_std) } else { Dist::Constant(0.0) };
        TransformerEncoderLayer {
            ln1: self.norm_cfg.build_layer_norm(d, device),
            attn: MultiheadAttention::new(d, self.num_heads, self.qkv_bias, device, rng),
            ln2: self.norm_cfg.build_layer_norm(d, device),
            ffn: Ffn {
                fc1: rng.linear(d, h, Dist::xavier_uniform(d, h), Some(bias), device),
                fc2: rng.linear(h, d, Dist::xavier_uniform(h, d), Some(bias), device),
            },
        }
    }
}

impl TransformerEncoderLayerConfig {
    /// Builds the layer with every Linear weight from `N(0, std)` truncated
    /// and zero biases (the `_init_weights` of MaskFeat's, BEiT's and
    /// SimMIM's transformers).
    pub fn init_trunc_normal<B: Backend>(&self, std: f64, device: &B::Device, rng: &mut InitRng) -> TransformerEncoderLayer<B> {
        let (d, h) = (self.embed_dims, self.feedforward_channels);
        let w = Dist::TruncNormal(0.0, std);
        let zero = Some(Dist::Constant(0.0));
        let mut layer = self.init(device, rng);
        layer.attn.qkv = rng.linear(d, 3 * d, w, self.qkv_bias.then_some(Dist::Constant(0.0)), device);
        layer.attn.proj = rng.linear(d, d, w, zero, device);
        layer.ffn = Ffn { fc1: rng.linear(d, h, w, zero, device), fc2: rng.linear(h, d, w, zero, device) };
        layer
    }
}

/// A pre-norm transformer layer: `x + attn(ln1(x))`, then `x + ffn(ln2(x))`.
#[derive(Module, Debug)]
pub struct TransformerEncoderLayer<B: Backend> {
    /// Norm before attention.
    pub ln1: LayerNorm<B>,
    /// Self-attention.
    pub attn: MultiheadAttention<B>,
    /// Norm before the FFN.
    pub ln2: LayerNorm<B>,
    /// The FFN.
    pub ffn: Ffn<B>,
}

impl<B: Backend> TransformerEncoderLayer<B> {
    /// # Shapes
    /// `[batch, tokens, dims] -> [batch, tokens, dims]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = x.clone() + self.attn.forward(self.ln1.forward(x));
        x.clone() + self.ffn.forward(self.ln2.forward(x))
    }

    /// [`Self::forward`] in training with mmcv's `DropPath(p)` on both
    /// residual branches (mmcls's `dropout_layer`), from the draws
    /// `{key}.attn` and `{key}.ffn` ([`crate::functional::drop_path`]).
    pub fn forward_drop_path(&self, x: Tensor<B, 3>, p: f64, key: &str, draws: &mut selfsup_core::Draws) -> Tensor<B, 3> {
        let a = self.attn.forward(self.ln1.forward(x.clone()));
        let x = x + crate::functional::drop_path(a, p, &format!("{key}.attn"), Some(&mut *draws));
        let f = self.ffn.forward(self.ln2.forward(x.clone()));
        x + crate::functional::drop_path(f, p, &format!("{key}.ffn"), Some(draws))
    }
}
