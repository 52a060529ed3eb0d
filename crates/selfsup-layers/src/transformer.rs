//! Port of `mmcls.models.backbones.vision_transformer.TransformerEncoderLayer`
//! (pre-norm, exact-erf GELU) and mmcv's `FFN`.
use burn::{
    module::Module,
    nn::{LayerNorm, Linear},
    tensor::{activation::gelu, backend::Backend, Tensor},
};

use crate::{init::linear_xavier, MultiheadAttention, NormCfg};

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
        self.fc2.forward(gelu(self.fc1.forward(x)))
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
}

impl TransformerEncoderLayerConfig {
    /// Builds the layer with MAE's initialisation (xavier Linear, unit LN).
    pub fn init<B: Backend>(&self, device: &B::Device) -> TransformerEncoderLayer<B> {
        TransformerEncoderLayer {
            ln1: self.norm_cfg.build_layer_norm(self.embed_dims, device),
            attn: MultiheadAttention::new(self.embed_dims, self.num_heads, self.qkv_bias, device),
            ln2: self.norm_cfg.build_layer_norm(self.embed_dims, device),
            ffn: Ffn {
                fc1: linear_xavier(self.embed_dims, self.feedforward_channels, true, device),
                fc2: linear_xavier(self.feedforward_channels, self.embed_dims, true, device),
            },
        }
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
}
