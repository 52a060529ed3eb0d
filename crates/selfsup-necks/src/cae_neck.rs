//! Port of `mmselfsup.models.necks.CAENeck` (mmselfsup 1.0.0): CAE's latent
//! regressor and decoder. `mask_tokens_num` learned mask tokens query the
//! visible tokens (and themselves) through [`CaeTransformerRegressorLayer`]s
//! and `norm_regressor`, giving the latent prediction of the masked
//! patches; the decoder (MMSelfSup's [`TransformerEncoderLayer`]s on the
//! prediction plus its positions, `norm_decoder`, the Linear `head`) turns
//! it into logits over the tokenizer's vocabulary.
use burn::{
    module::{Module, Param},
    nn::Linear,
    tensor::{backend::Backend, Tensor},
};
use selfsup_core::Draws;
use selfsup_layers::norm::LayerNorm;
use selfsup_layers::{
    functional::linear,
    init::{Dist, InitRng},
    transformer_blocks::{
        CaeTransformerRegressorLayer, CaeTransformerRegressorLayerConfig, TransformerEncoderLayer, TransformerEncoderLayerConfig,
    },
    NormCfg,
};
use serde::{Deserialize, Serialize};

/// Configuration of [`CaeNeck`]: MMSelfSup's `CAENeck.__init__` arguments
/// and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaeNeckConfig {
    /// Patch size (recorded; the neck works on tokens).
    pub patch_size: usize,
    /// Output classes: the tokenizer's vocabulary. MMSelfSup's 0 (an
    /// `nn.Identity` head) cannot feed CAE's loss and is an error.
    pub num_classes: usize,
    /// Token width.
    pub embed_dims: usize,
    /// Regressor layers.
    pub regressor_depth: usize,
    /// Decoder layers.
    pub decoder_depth: usize,
    /// Attention heads of both.
    pub num_heads: usize,
    /// FFN width as a multiple of `embed_dims` (an integer, as in MMSelfSup).
    pub mlp_ratio: usize,
    /// q/v biases in the regressor's cross attention; a bias on the
    /// decoder's fused qkv.
    pub qkv_bias: bool,
    /// The regressor's attention scale; `head_dim^-0.5` when `None`.
    pub qk_scale: Option<f64>,
    /// Dropout; must be 0.
    pub drop_rate: f64,
    /// Attention dropout; must be 0.
    pub attn_drop_rate: f64,
    /// Stochastic depth, linear from 0 over the regressor and over the
    /// decoder layers.
    pub drop_path_rate: f64,
    /// LayerNorm config, `dict(type='LN', eps=1e-6)`.
    pub norm_cfg: NormCfg,
    /// Initial layer scale of both stacks. The default `None` fails in
    /// MMSelfSup (compared with 0) and is an error here; CAE's config
    /// sets 0.1.
    pub init_values: Option<f64>,
    /// Masked patches per sample; the number of mask queries.
    pub mask_tokens_num: usize,
    /// MMEngine `init_cfg`; must be null.
    pub init_cfg: Option<serde_json::Value>,
}

impl Default for CaeNeckConfig {
    fn default() -> Self {
        Self {
            patch_size: 16,
            num_classes: 8192,
            embed_dims: 768,
            regressor_depth: 6,
            decoder_depth: 8,
            num_heads: 12,
            mlp_ratio: 4,
            qkv_bias: true,
            qk_scale: None,
            drop_rate: 0.0,
            attn_drop_rate: 0.0,
            drop_path_rate: 0.0,
            norm_cfg: NormCfg::layer_norm(1e-6),
            init_values: None,
            mask_tokens_num: 75,
            init_cfg: None,
        }
    }
}

/// `torch.linspace(0, rate, depth)[i]`.
fn linspace(rate: f64, depth: usize, i: usize) -> f64 {
    if depth > 1 {
        rate * i as f64 / (depth - 1) as f64
    } else {
        0.0
    }
}

impl CaeNeckConfig {
    /// Checks the config; `(key, message)` for the first bad field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.num_classes == 0 {
            return Err(("num_classes", "CAE's loss classifies into the tokenizer's vocabulary; 0 (nn.Identity) is not supported".into()));
        }
        if self.num_heads == 0 || !self.embed_dims.is_multiple_of(self.num_heads) {
            return Err(("num_heads", format!("embed_dims {} is not divisible by num_heads {}", self.embed_dims, self.num_heads)));
        }
        if self.mlp_ratio == 0 {
            return Err(("mlp_ratio", "must be positive".into()));
        }
        if self.mask_tokens_num == 0 {
            return Err(("mask_tokens_num", "must be positive".into()));
        }
        if self.drop_rate != 0.0 {
            return Err(("drop_rate", "dropout is not supported in CAE pre-training; set 0".into()));
        }
        if self.attn_drop_rate != 0.0 {
            return Err(("attn_drop_rate", "attention dropout is not supported in CAE pre-training; set 0".into()));
        }
        if !(0.0..1.0).contains(&self.drop_path_rate) {
            return Err(("drop_path_rate", format!("must be in [0, 1), got {}", self.drop_path_rate)));
        }
        if self.qk_scale.is_some_and(|s| !s.is_finite()) {
            return Err(("qk_scale", "must be finite".into()));
        }
        self.norm_cfg.validate_layer_norm().map_err(|e| ("norm_cfg.type", e))?;
        match self.init_values {
            None => {
                return Err((
                    "init_values",
                    "MMSelfSup's CAE layers compare init_values with 0, so None fails there; set a number (CAE: 0.1)".into(),
                ))
            }
            Some(v) if !v.is_finite() => return Err(("init_values", format!("must be finite, got {v}"))),
            Some(_) => {}
        }
        if self.init_cfg.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(("init_cfg", "init_cfg is not supported; load weights with `load_from`".into()));
        }
        Ok(())
    }

    /// Builds the neck with `CAENeck.init_weights`: xavier-uniform Linears
    /// with zero biases, unit LayerNorms, then a truncated-normal (std
    /// 0.02) `mask_token` and `head.weight`. Call [`Self::validate`] first.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> CaeNeck<B> {
        if let Err((key, msg)) = self.validate() {
            panic!("invalid CAENeck config at `{key}`: {msg}");
        }
        let d = self.embed_dims;
        let init_values = self.init_values.unwrap_or(0.0);
        let regressors = (0..self.regressor_depth)
            .map(|i| {
                CaeTransformerRegressorLayerConfig {
                    embed_dims: d,
                    num_heads: self.num_heads,
                    feedforward_channels: self.mlp_ratio * d,
                    qkv_bias: self.qkv_bias,
                    qk_scale: self.qk_scale,
                    drop_path_rate: linspace(self.drop_path_rate, self.regressor_depth, i),
                    norm_cfg: self.norm_cfg.clone(),
                    init_values,
                }
                .init(device, rng)
            })
            .collect();
        let decoders = (0..self.decoder_depth)
            .map(|i| {
                TransformerEncoderLayerConfig {
                    embed_dims: d,
                    num_heads: self.num_heads,
                    feedforward_channels: self.mlp_ratio * d,
                    drop_path_rate: linspace(self.drop_path_rate, self.decoder_depth, i),
                    qkv_bias: self.qkv_bias,
                    norm_cfg: self.norm_cfg.clone(),
                    init_values,
                }
                .init(device, rng)
            })
            .collect();
        let tn = Dist::TruncNormal(0.0, 0.02);
        CaeNeck {
            mask_token: rng.param([1, 1, d], tn, device),
            regressors,
            decoders,
            norm_regressor: self.norm_cfg.build_layer_norm(d, device),
            norm_decoder: self.norm_cfg.build_layer_norm(d, device),
            head: rng.linear(d, self.num_classes, tn, Some(Dist::Constant(0.0)), device),
            mask_tokens_num: self.mask_tokens_num,
        }
    }
}

/// CAE's neck. Keys `mask_token`, `regressors.{i}.*`, `decoders.{i}.*`,
/// `norm_regressor.*`, `norm_decoder.*`, `head.*`, as MMSelfSup's.
#[derive(Module, Debug)]
pub struct CaeNeck<B: Backend> {
    /// `[1, 1, embed_dims]`, the queries of the masked patches.
    pub mask_token: Param<Tensor<B, 3>>,
    /// The latent regressor.
    pub regressors: Vec<CaeTransformerRegressorLayer<B>>,
    /// The decoder.
    pub decoders: Vec<TransformerEncoderLayer<B>>,
    /// Norm after the regressor (its output is the latent prediction).
    pub norm_regressor: LayerNorm<B>,
    /// Norm after the decoder.
    pub norm_decoder: LayerNorm<B>,
    /// `[embed_dims] -> [num_classes]`.
    pub head: Linear<B>,
    mask_tokens_num: usize,
}

/// [`CaeNeck`]'s outputs.
#[derive(Debug, Clone)]
pub struct CaeNeckOutput<B: Backend> {
    /// `[batch, masked, num_classes]`.
    pub logits: Tensor<B, 3>,
    /// The latent prediction of the masked patches (after
    /// `norm_regressor`), `[batch, masked, dims]`.
    pub latent_pred: Tensor<B, 3>,
    /// The decoder's output after `norm_decoder`, the head's input,
    /// `[batch, masked, dims]`.
    pub decoded: Tensor<B, 3>,
}

impl<B: Backend> CaeNeck<B> {
    /// The number of mask queries.
    pub fn mask_tokens_num(&self) -> usize {
        self.mask_tokens_num
    }

    /// # Shapes
    /// - `x_unmasked`: the visible tokens without the cls token `[batch, Nv, d]`
    /// - `pos_embed_masked`: `[batch, mask_tokens_num, d]`
    /// - `pos_embed_unmasked`: `[batch, Nv, d]`
    ///
    /// `draws` (training) drive the stochastic depth under
    /// `neck.regressors.{i}` and `neck.decoders.{i}`.
    ///
    /// # Panics
    /// When `pos_embed_masked` does not have `mask_tokens_num` tokens (the
    /// algorithm checks the pipeline's masks first).
    pub fn forward(
        &self,
        x_unmasked: Tensor<B, 3>,
        pos_embed_masked: Tensor<B, 3>,
        pos_embed_unmasked: Tensor<B, 3>,
        mut draws: Option<&mut Draws>,
    ) -> CaeNeckOutput<B> {
        let [n, _, d] = x_unmasked.dims();
        assert_eq!(pos_embed_masked.dims()[1], self.mask_tokens_num, "CAENeck: one position per mask token");
        let pos_k = Tensor::cat(vec![pos_embed_unmasked, pos_embed_masked.clone()], 1);
        let mut x_masked = self.mask_token.val().expand([n, self.mask_tokens_num, d]);
        for (i, regressor) in self.regressors.iter().enumerate() {
            let x_kv = Tensor::cat(vec![x_unmasked.clone(), x_masked.clone()], 1);
            x_masked = regressor.forward(
                x_masked,
                x_kv,
                pos_embed_masked.clone(),
                pos_k.clone(),
                &format!("neck.regressors.{i}"),
                draws.as_deref_mut(),
            );
        }
        let latent_pred = self.norm_regressor.forward(x_masked);
        let mut x = latent_pred.clone() + pos_embed_masked;
        for (i, decoder) in self.decoders.iter().enumerate() {
            x = decoder.forward(x, &format!("neck.decoders.{i}"), draws.as_deref_mut());
        }
        let decoded = self.norm_decoder.forward(x);
        CaeNeckOutput { logits: linear(&self.head, decoded.clone()), latent_pred, decoded }
    }
}
