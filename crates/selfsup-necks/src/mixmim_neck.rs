//! Port of `mmselfsup.models.necks.MixMIMPretrainDecoder`
//! (`mixmim_neck.py`): MAE's decoder layout over every token of the mixed
//! batch, without a cls token. The latent is embedded, then unmixed into
//! two halves (`x1` keeps the image's own tokens and puts the mask token
//! where the partner's were; `x2` the opposite), concatenated along the
//! batch, given the fixed sin-cos embedding, decoded and projected to
//! `encoder_stride²·3` pixels per token.
use burn::{
    module::{Module, Param},
    nn::Linear,
    tensor::{backend::Backend, Tensor, TensorData},
};
use selfsup_layers::norm::LayerNorm;
use selfsup_layers::{
    build_2d_sincos_position_embedding,
    functional::linear,
    init::{fixed, Dist, InitRng},
    NormCfg, TransformerEncoderLayer, TransformerEncoderLayerConfig,
};
use serde::{Deserialize, Serialize};

/// `dict(type='MixMIMPretrainDecoder', ...)`: MMSelfSup's arguments and
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MixMimPretrainDecoderConfig {
    /// Tokens of the encoder's last stage (square).
    pub num_patches: usize,
    /// Accepted (MAE's argument; the output is `encoder_stride²·3`).
    pub patch_size: usize,
    /// Image channels.
    pub in_chans: usize,
    /// The encoder's output width.
    pub embed_dim: usize,
    /// The encoder's total stride.
    pub encoder_stride: usize,
    /// Decoder width.
    pub decoder_embed_dim: usize,
    /// Decoder layers.
    pub decoder_depth: usize,
    /// Decoder heads.
    pub decoder_num_heads: usize,
    /// FFN width over decoder width.
    pub mlp_ratio: f64,
    /// LayerNorm config.
    pub norm_cfg: NormCfg,
    /// MMEngine `init_cfg`; must be null.
    pub init_cfg: Option<serde_json::Value>,
}

impl Default for MixMimPretrainDecoderConfig {
    fn default() -> Self {
        Self {
            num_patches: 196,
            patch_size: 16,
            in_chans: 3,
            embed_dim: 1024,
            encoder_stride: 32,
            decoder_embed_dim: 512,
            decoder_depth: 8,
            decoder_num_heads: 16,
            mlp_ratio: 4.0,
            norm_cfg: NormCfg::layer_norm(1e-6),
            init_cfg: None,
        }
    }
}

impl MixMimPretrainDecoderConfig {
    /// Checks the fields; `(key, message)` on error.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let side = (self.num_patches as f64).sqrt() as usize;
        if side * side != self.num_patches {
            return Err(("num_patches", format!("{} is not a square", self.num_patches)));
        }
        if self.decoder_num_heads == 0 || !self.decoder_embed_dim.is_multiple_of(self.decoder_num_heads) {
            return Err((
                "decoder_num_heads",
                format!("{} does not divide decoder_embed_dim {}", self.decoder_num_heads, self.decoder_embed_dim),
            ));
        }
        if !self.decoder_embed_dim.is_multiple_of(4) {
            return Err(("decoder_embed_dim", "must be a multiple of 4 for the sin-cos embedding".into()));
        }
        self.norm_cfg.validate_layer_norm().map_err(|e| ("norm_cfg.type", e))?;
        if self.init_cfg.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(("init_cfg", "init_cfg is not supported".into()));
        }
        Ok(())
    }

    /// Builds the decoder: PyTorch's default Linear initialisation (MMSelfSup
    /// skips MAE's xavier init here), mmcls's layers, `N(0, 0.02)` mask token.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> MixMimPretrainDecoder<B> {
        let d = self.decoder_embed_dim;
        let side = (self.num_patches as f64).sqrt() as usize;
        let pos = build_2d_sincos_position_embedding((side, side), d, 10000.0, false);
        let layer = TransformerEncoderLayerConfig {
            embed_dims: d,
            num_heads: self.decoder_num_heads,
            feedforward_channels: (self.mlp_ratio * d as f64) as usize,
            qkv_bias: true,
            norm_cfg: self.norm_cfg.clone(),
            ffn_bias_std: 1e-6,
        };
        let out = self.encoder_stride * self.encoder_stride * self.in_chans;
        MixMimPretrainDecoder {
            decoder_embed: rng.linear_torch(self.embed_dim, d, true, device),
            mask_token: rng.param([1, 1, d], Dist::Normal(0.0, 0.02), device),
            decoder_pos_embed: fixed(Tensor::from_data(TensorData::new(pos, [1, self.num_patches, d]), device)),
            decoder_blocks: (0..self.decoder_depth).map(|_| layer.init(device, rng)).collect(),
            ln1: self.norm_cfg.build_layer_norm(d, device),
            decoder_pred: rng.linear_torch(d, out, true, device),
        }
    }
}

/// MixMIM's decoder. Keys as MMSelfSup: `decoder_embed`, `mask_token`,
/// `decoder_pos_embed`, `decoder_blocks.{i}`, `ln1`, `decoder_pred`.
#[derive(Module, Debug)]
pub struct MixMimPretrainDecoder<B: Backend> {
    /// Encoder width to decoder width.
    pub decoder_embed: Linear<B>,
    /// `[1, 1, decoder_embed_dim]`.
    pub mask_token: Param<Tensor<B, 3>>,
    /// Fixed sin-cos `[1, L, decoder_embed_dim]`; not trained.
    pub decoder_pos_embed: Param<Tensor<B, 3>>,
    /// Decoder layers.
    pub decoder_blocks: Vec<TransformerEncoderLayer<B>>,
    /// The decoder norm.
    pub ln1: LayerNorm<B>,
    /// Prediction layer.
    pub decoder_pred: Linear<B>,
}

impl<B: Backend> MixMimPretrainDecoder<B> {
    /// `[batch, L, embed_dim]` latent and the last-stage mixing mask
    /// `[1, L, 1]` → `[2·batch, L, stride²·3]`: the first half reconstructs
    /// each image where its partner's tokens were, the second half the
    /// partner's.
    pub fn forward(&self, latent: Tensor<B, 3>, mask: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = linear(&self.decoder_embed, latent);
        let keep = mask.clone().neg() + 1.0;
        let token = self.mask_token.val();
        let x1 = x.clone() * keep.clone() + token.clone() * mask.clone();
        let x2 = x * mask + token * keep;
        let mut x = Tensor::cat(vec![x1, x2], 0) + self.decoder_pos_embed.val();
        for block in &self.decoder_blocks {
            x = block.forward(x);
        }
        linear(&self.decoder_pred, self.ln1.forward(x))
    }
}
