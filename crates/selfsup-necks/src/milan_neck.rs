//! Port of `mmselfsup.models.necks.MILANPretrainDecoder` (mmselfsup 1.0.0):
//! MAE's decoder with prompt layers
//! ([`selfsup_layers::transformer_blocks::PromptTransformerEncoderLayer`])
//! that update only the mask tokens, and a prediction layer to CLIP's
//! feature width. It predicts every token, the cls token included.
use burn::{
    module::{Module, Param},
    nn::Linear,
    tensor::{backend::Backend, Int, Tensor, TensorData},
};
use selfsup_layers::norm::LayerNorm;
use selfsup_layers::{
    build_2d_sincos_position_embedding,
    functional::linear,
    init::{fixed, Dist, InitRng},
    transformer_blocks::{PromptTransformerEncoderLayer, PromptTransformerEncoderLayerConfig},
    NormCfg,
};
use serde::{Deserialize, Serialize};

use crate::MaePretrainDecoderConfig;

/// Configuration of [`MilanPretrainDecoder`]. Field names and defaults are
/// MMSelfSup's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MilanPretrainDecoderConfig {
    /// Number of patches of the encoder grid (square).
    pub num_patches: usize,
    /// Patch size.
    pub patch_size: usize,
    /// Image channels.
    pub in_chans: usize,
    /// The encoder's width; must equal the backbone's `embed_dims`.
    pub embed_dim: usize,
    /// Decoder width.
    pub decoder_embed_dim: usize,
    /// Decoder layers.
    pub decoder_depth: usize,
    /// Decoder attention heads.
    pub decoder_num_heads: usize,
    /// Output width: the CLIP features' width.
    pub predict_feature_dim: usize,
    /// FFN width as a multiple of `decoder_embed_dim`.
    pub mlp_ratio: f64,
    /// LayerNorm config.
    pub norm_cfg: NormCfg,
    /// MMEngine `init_cfg`: null, or MAE's Xavier/Constant entries (the
    /// MILAN configs'), the initialisation built here.
    pub init_cfg: Option<serde_json::Value>,
}

impl Default for MilanPretrainDecoderConfig {
    fn default() -> Self {
        Self {
            num_patches: 196,
            patch_size: 16,
            in_chans: 3,
            embed_dim: 1024,
            decoder_embed_dim: 512,
            decoder_depth: 8,
            decoder_num_heads: 16,
            predict_feature_dim: 512,
            mlp_ratio: 4.0,
            norm_cfg: NormCfg::layer_norm(1e-6),
            init_cfg: None,
        }
    }
}

impl MilanPretrainDecoderConfig {
    /// The MAE decoder config with the same fields (what MILAN's decoder
    /// inherits).
    pub fn mae(&self) -> MaePretrainDecoderConfig {
        MaePretrainDecoderConfig {
            num_patches: self.num_patches,
            patch_size: self.patch_size,
            in_chans: self.in_chans,
            embed_dim: self.embed_dim,
            decoder_embed_dim: self.decoder_embed_dim,
            decoder_depth: self.decoder_depth,
            decoder_num_heads: self.decoder_num_heads,
            mlp_ratio: self.mlp_ratio,
            norm_cfg: self.norm_cfg.clone(),
            predict_feature_dim: Some(self.predict_feature_dim),
            init_cfg: self.init_cfg.clone(),
        }
    }

    /// Checks the config (MAE's decoder checks); returns `(key, message)`
    /// for the first bad field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.mae().validate()?;
        if self.predict_feature_dim == 0 {
            return Err(("predict_feature_dim", "must be positive".into()));
        }
        Ok(())
    }

    /// Builds the decoder with MILAN's initialisation (sin-cos decoder
    /// position embedding, `N(0, 0.02)` mask token, xavier Linear, unit LN,
    /// FFN biases `N(0, 1e-6)`).
    ///
    /// # Panics
    /// On a config that [`MilanPretrainDecoderConfig::validate`] rejects.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> MilanPretrainDecoder<B> {
        if let Err((key, msg)) = self.validate() {
            panic!("invalid MILANPretrainDecoder config at `{key}`: {msg}");
        }
        let d = self.decoder_embed_dim;
        let side = (self.num_patches as f64).sqrt() as usize;
        let pos = build_2d_sincos_position_embedding((side, side), d, 10000.0, true);
        let layer = PromptTransformerEncoderLayerConfig {
            embed_dims: d,
            num_heads: self.decoder_num_heads,
            feedforward_channels: (self.mlp_ratio * d as f64) as usize,
            qkv_bias: true,
            norm_cfg: self.norm_cfg.clone(),
        };
        MilanPretrainDecoder {
            decoder_embed: rng.linear_xavier(self.embed_dim, d, true, device),
            mask_token: rng.param([1, 1, d], Dist::Normal(0.0, 0.02), device),
            decoder_pos_embed: fixed(Tensor::from_data(TensorData::new(pos, [1, self.num_patches + 1, d]), device)),
            decoder_blocks: (0..self.decoder_depth).map(|_| layer.init(device, rng)).collect(),
            ln1: self.norm_cfg.build_layer_norm(d, device),
            decoder_pred: rng.linear_xavier(d, self.predict_feature_dim, true, device),
        }
    }
}

/// MILAN's prompt decoder. Keys as MMSelfSup: `decoder_embed`,
/// `mask_token`, `decoder_pos_embed`, `decoder_blocks.{i}` (`ln1`,
/// `attn.q`, `attn.kv`, `attn.proj`, `ln2`, `ffn`), `ln1` (the decoder
/// norm), `decoder_pred`.
#[derive(Module, Debug)]
pub struct MilanPretrainDecoder<B: Backend> {
    /// Encoder width to decoder width.
    pub decoder_embed: Linear<B>,
    /// `[1, 1, decoder_embed_dim]`.
    pub mask_token: Param<Tensor<B, 3>>,
    /// Fixed sin-cos embedding `[1, 1 + L, decoder_embed_dim]`; not trained.
    pub decoder_pos_embed: Param<Tensor<B, 3>>,
    /// Prompt layers.
    pub decoder_blocks: Vec<PromptTransformerEncoderLayer<B>>,
    /// The decoder norm (`build_norm_layer(..., postfix=1)` names it `ln1`).
    pub ln1: LayerNorm<B>,
    /// Prediction layer, to CLIP's feature width.
    pub decoder_pred: Linear<B>,
}

/// `x[:, index]` along dimension 1 for a `[batch, k]` index.
fn gather_tokens<B: Backend>(x: Tensor<B, 3>, index: Tensor<B, 2, Int>) -> Tensor<B, 3> {
    let [n, k] = index.dims();
    let d = x.dims()[2];
    x.gather(1, index.unsqueeze_dim::<3>(2).expand([n, k, d]))
}

impl<B: Backend> MilanPretrainDecoder<B> {
    /// Decodes the visible tokens back to every token; only the mask
    /// tokens pass through the prompt layers.
    ///
    /// # Shapes
    /// - `latent`: `[batch, 1 + kept, embed_dim]` (cls token first)
    /// - `ids_restore`: `[batch, L]`; `ids_keep`: `[batch, kept]`;
    ///   `ids_dump`: `[batch, L − kept]` (from `MILANViT`)
    /// - returns `[batch, 1 + L, predict_feature_dim]`, cls token first
    pub fn forward(
        &self,
        latent: Tensor<B, 3>,
        ids_restore: Tensor<B, 2, Int>,
        ids_keep: Tensor<B, 2, Int>,
        ids_dump: Tensor<B, 2, Int>,
    ) -> Tensor<B, 3> {
        let x = linear(&self.decoder_embed, latent);
        let [n, kept1, d] = x.dims();
        let l = ids_restore.dims()[1];
        let mask_tokens = self.mask_token.val().expand([n, l + 1 - kept1, d]);
        let x_ = gather_tokens(Tensor::cat(vec![x.clone().slice([0..n, 1..kept1]), mask_tokens], 1), ids_restore.clone());
        let x = Tensor::cat(vec![x.slice([0..n, 0..1]), x_], 1) + self.decoder_pos_embed.val();

        let cls = x.clone().slice([0..n, 0..1]);
        let patches = x.slice([0..n, 1..l + 1]);
        let visible_tokens = Tensor::cat(vec![cls, gather_tokens(patches.clone(), ids_keep)], 1);
        let mut x = gather_tokens(patches, ids_dump);
        for block in &self.decoder_blocks {
            x = block.forward(x, visible_tokens.clone(), ids_restore.clone());
        }

        let x_ = gather_tokens(Tensor::cat(vec![visible_tokens.clone().slice([0..n, 1..kept1]), x], 1), ids_restore);
        let x = Tensor::cat(vec![visible_tokens.slice([0..n, 0..1]), x_], 1);
        linear(&self.decoder_pred, self.ln1.forward(x))
    }
}
