//! Ports of `mmselfsup.models.necks.MAEPretrainDecoder` and `ClsBatchNormNeck` (mmselfsup 1.0.0).
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
    NormCfg, TransformerEncoderLayer, TransformerEncoderLayerConfig,
};
use serde::{Deserialize, Serialize};

/// Configuration of [`MaePretrainDecoder`]. Field names and defaults are
/// MMSelfSup's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaePretrainDecoderConfig {
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
    /// FFN width as a multiple of `decoder_embed_dim`.
    pub mlp_ratio: f64,
    /// LayerNorm config.
    pub norm_cfg: NormCfg,
    /// Output width; `None` means `patch_size² · in_chans` (pixels).
    pub predict_feature_dim: Option<usize>,
    /// MMEngine `init_cfg`: null, or MAE's Xavier/Constant entries (EVA's
    /// config), the initialisation built here.
    pub init_cfg: Option<serde_json::Value>,
}

impl Default for MaePretrainDecoderConfig {
    fn default() -> Self {
        Self {
            num_patches: 196,
            patch_size: 16,
            in_chans: 3,
            embed_dim: 1024,
            decoder_embed_dim: 512,
            decoder_depth: 8,
            decoder_num_heads: 16,
            mlp_ratio: 4.0,
            norm_cfg: NormCfg::layer_norm(1e-6),
            predict_feature_dim: None,
            init_cfg: None,
        }
    }
}

impl MaePretrainDecoderConfig {
    /// Checks the config; returns `(key, message)` for the first bad field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let side = (self.num_patches as f64).sqrt() as usize;
        if side * side != self.num_patches {
            return Err(("num_patches", format!("{} is not a square number of patches", self.num_patches)));
        }
        if self.decoder_num_heads == 0 || !self.decoder_embed_dim.is_multiple_of(self.decoder_num_heads) {
            return Err((
                "decoder_num_heads",
                format!("decoder_embed_dim {} is not divisible by {}", self.decoder_embed_dim, self.decoder_num_heads),
            ));
        }
        if !self.decoder_embed_dim.is_multiple_of(4) {
            return Err(("decoder_embed_dim", "must be a multiple of 4 for the sin-cos embedding".into()));
        }
        self.norm_cfg.validate_layer_norm().map_err(|e| ("norm_cfg.type", e))?;
        selfsup_layers::init::check_mae_init_cfg(self.init_cfg.as_ref()).map_err(|e| ("init_cfg", e))?;
        Ok(())
    }

    /// Output width of the prediction layer.
    pub fn output_dim(&self) -> usize {
        self.predict_feature_dim.unwrap_or(self.patch_size * self.patch_size * self.in_chans)
    }

    /// Builds the decoder with MMSelfSup's initialisation (sin-cos decoder
    /// position embedding, `N(0, 0.02)` mask token, xavier Linear, unit LN).
    ///
    /// # Panics
    /// On a config that [`MaePretrainDecoderConfig::validate`] rejects.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> MaePretrainDecoder<B> {
        if let Err((key, msg)) = self.validate() {
            panic!("invalid MAEPretrainDecoder config at `{key}`: {msg}");
        }
        let d = self.decoder_embed_dim;
        let side = (self.num_patches as f64).sqrt() as usize;
        let pos = build_2d_sincos_position_embedding((side, side), d, 10000.0, true);
        let layer = TransformerEncoderLayerConfig {
            embed_dims: d,
            num_heads: self.decoder_num_heads,
            feedforward_channels: (self.mlp_ratio * d as f64) as usize,
            qkv_bias: true,
            norm_cfg: self.norm_cfg.clone(),
            ffn_bias_std: 1e-6,
        };
        MaePretrainDecoder {
            decoder_embed: rng.linear_xavier(self.embed_dim, d, true, device),
            mask_token: rng.param([1, 1, d], Dist::Normal(0.0, 0.02), device),
            decoder_pos_embed: fixed(Tensor::from_data(TensorData::new(pos, [1, self.num_patches + 1, d]), device)),
            decoder_blocks: (0..self.decoder_depth).map(|_| layer.init(device, rng)).collect(),
            ln1: self.norm_cfg.build_layer_norm(d, device),
            decoder_pred: rng.linear_xavier(d, self.output_dim(), true, device),
        }
    }
}

/// MAE's lightweight decoder. Keys as MMSelfSup: `decoder_embed`,
/// `mask_token`, `decoder_pos_embed`, `decoder_blocks.{i}`, `ln1`
/// (the decoder norm), `decoder_pred`.
#[derive(Module, Debug)]
pub struct MaePretrainDecoder<B: Backend> {
    /// Encoder width to decoder width.
    pub decoder_embed: Linear<B>,
    /// `[1, 1, decoder_embed_dim]`.
    pub mask_token: Param<Tensor<B, 3>>,
    /// Fixed sin-cos embedding `[1, 1 + L, decoder_embed_dim]`; not trained.
    pub decoder_pos_embed: Param<Tensor<B, 3>>,
    /// Decoder layers.
    pub decoder_blocks: Vec<TransformerEncoderLayer<B>>,
    /// The decoder norm (`build_norm_layer(..., postfix=1)` names it `ln1`).
    pub ln1: LayerNorm<B>,
    /// Prediction layer.
    pub decoder_pred: Linear<B>,
}

impl<B: Backend> MaePretrainDecoder<B> {
    /// Decodes the visible tokens back to every patch.
    ///
    /// # Shapes
    /// - `latent`: `[batch, 1 + kept, embed_dim]` (cls token first)
    /// - `ids_restore`: `[batch, L]`
    /// - returns `[batch, L, patch_size² · in_chans]`
    pub fn forward(&self, latent: Tensor<B, 3>, ids_restore: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let x = linear(&self.decoder_embed, latent);
        let [n, kept1, d] = x.dims();
        let l = ids_restore.dims()[1];
        let mask_tokens = self.mask_token.val().expand([n, l + 1 - kept1, d]);
        let x_ = Tensor::cat(vec![x.clone().slice([0..n, 1..kept1]), mask_tokens], 1);
        let x_ = x_.gather(1, ids_restore.unsqueeze_dim::<3>(2).expand([n, l, d]));
        let mut x = Tensor::cat(vec![x.slice([0..n, 0..1]), x_], 1) + self.decoder_pos_embed.val();
        for block in &self.decoder_blocks {
            x = block.forward(x);
        }
        let x = linear(&self.decoder_pred, self.ln1.forward(x));
        x.slice([0..n, 1..l + 1])
    }
}

/// Configuration of [`ClsBatchNormNeck`], MAE's linear-probing neck.
/// Field names and defaults are MMSelfSup's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClsBatchNormNeckConfig {
    /// Width of the cls token.
    pub input_features: usize,
    /// Learnable scale and shift (MAE's protocol has none).
    pub affine: bool,
    /// Added to the variance.
    pub eps: f64,
}

impl Default for ClsBatchNormNeckConfig {
    fn default() -> Self {
        Self { input_features: 768, affine: false, eps: 1e-6 }
    }
}

impl ClsBatchNormNeckConfig {
    /// Builds the neck (`BatchNorm1d`, momentum 0.1, running statistics
    /// at 0 and 1).
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> ClsBatchNormNeck<B> {
        ClsBatchNormNeck { bn: selfsup_layers::TorchBatchNorm::new(self.input_features, self.affine, self.eps, 0.1, device, rng) }
    }
}

/// Port of `mmselfsup.models.necks.ClsBatchNormNeck`: a `BatchNorm1d`
/// over the cls token before the linear classifier, the MAE paper's
/// linear-probing protocol (features of a frozen ViT have very different
/// scales per channel; normalising them lets one lr fit all). Keys: `bn.*`.
#[derive(Module, Debug)]
pub struct ClsBatchNormNeck<B: Backend> {
    /// The normalisation (`running_mean`, `running_var`,
    /// `num_batches_tracked`, and `weight`/`bias` when affine).
    pub bn: selfsup_layers::TorchBatchNorm<B>,
}

impl<B: Backend> ClsBatchNormNeck<B> {
    /// Normalises the cls token: batch statistics when training (updating
    /// the running ones), running statistics otherwise.
    ///
    /// # Shapes
    /// `[batch, input_features] -> [batch, input_features]`
    pub fn forward(&self, cls_token: Tensor<B, 2>) -> Tensor<B, 2> {
        self.bn.forward(cls_token)
    }
}
