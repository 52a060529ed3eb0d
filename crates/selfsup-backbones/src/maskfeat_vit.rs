//! Port of `mmselfsup.models.backbones.MaskFeatViT` (mmselfsup 1.0.0): an
//! mmcls VisionTransformer whose masked patches are replaced by a learned
//! `mask_token` (`x·(1−m) + mask_token·m`), with a learned position
//! embedding added after the cls token is prepended, and the final norm
//! after the last layer. It returns every token, cls first.
use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, Tensor},
};
use selfsup_core::ModelError;
use selfsup_layers::norm::LayerNorm;
use selfsup_layers::{
    init::{Dist, InitRng},
    NormCfg, PatchEmbed, TransformerEncoderLayer, TransformerEncoderLayerConfig,
};
use serde::{Deserialize, Serialize};

use crate::{
    mae_vit::MaeVitConfig,
    vision_transformer::{VitArch, VitArchSpec, VitFeatures},
};

/// Configuration of [`MaskFeatVit`], MMSelfSup's `MaskFeatViT`; its
/// `__init__` arguments and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskFeatVitConfig {
    /// `"b"`, `"l"`, another mmcls arch name, or custom dimensions.
    pub arch: VitArch,
    /// Input image size (square).
    pub img_size: usize,
    /// Patch size.
    pub patch_size: usize,
    /// Output layer indices; only the last layer (`-1`) is supported.
    pub out_indices: serde_json::Value,
    /// Dropout after the position embedding; must be 0.
    pub drop_rate: f64,
    /// Stochastic depth; must be 0.
    pub drop_path_rate: f64,
    /// LayerNorm config, `dict(type='LN', eps=1e-6)`.
    pub norm_cfg: NormCfg,
    /// Apply the final LayerNorm (`ln1`).
    pub final_norm: bool,
    /// Return the cls token (always true here).
    pub output_cls_token: bool,
    /// Position-embedding resize mode on checkpoint load (`"bicubic"`).
    pub interpolate_mode: String,
    /// Extra PatchEmbed arguments; must be empty.
    pub patch_cfg: serde_json::Map<String, serde_json::Value>,
    /// Extra layer arguments; must be empty.
    pub layer_cfgs: serde_json::Map<String, serde_json::Value>,
    /// MMEngine `init_cfg`; must be null.
    pub init_cfg: Option<serde_json::Value>,
}

impl Default for MaskFeatVitConfig {
    fn default() -> Self {
        let mae = MaeVitConfig::default();
        Self {
            arch: mae.arch,
            img_size: 224,
            patch_size: 16,
            out_indices: serde_json::Value::from(-1),
            drop_rate: 0.0,
            drop_path_rate: 0.0,
            norm_cfg: NormCfg::layer_norm(1e-6),
            final_norm: true,
            output_cls_token: true,
            interpolate_mode: "bicubic".into(),
            patch_cfg: Default::default(),
            layer_cfgs: Default::default(),
            init_cfg: None,
        }
    }
}

impl MaskFeatVitConfig {
    /// The same ViT as an `MAEViT` config, whose checks (arch, sizes,
    /// unsupported options) apply unchanged.
    fn as_vit(&self) -> MaeVitConfig {
        MaeVitConfig {
            arch: self.arch.clone(),
            img_size: self.img_size,
            patch_size: self.patch_size,
            out_indices: self.out_indices.clone(),
            drop_rate: self.drop_rate,
            drop_path_rate: self.drop_path_rate,
            norm_cfg: self.norm_cfg.clone(),
            final_norm: self.final_norm,
            output_cls_token: self.output_cls_token,
            interpolate_mode: self.interpolate_mode.clone(),
            patch_cfg: self.patch_cfg.clone(),
            layer_cfgs: self.layer_cfgs.clone(),
            init_cfg: self.init_cfg.clone(),
            ..MaeVitConfig::default()
        }
    }

    /// Checks the config; `(key, message)` for the first field that cannot
    /// be honoured.
    pub fn validate(&self) -> Result<VitArchSpec, (&'static str, String)> {
        self.as_vit().validate()
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.img_size / self.patch_size
    }

    /// Builds the backbone with MaskFeat's initialisation (truncated
    /// normal, std 0.02, for the tokens, the position embedding and every
    /// Linear and the patch projection). Call [`Self::validate`] first.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> MaskFeatVit<B> {
        let spec = self.validate().unwrap_or_else(|(key, msg)| panic!("invalid MaskFeatViT config at `{key}`: {msg}"));
        let d = spec.embed_dims;
        let l = self.grid() * self.grid();
        let tn = Dist::TruncNormal(0.0, 0.02);
        let layer = TransformerEncoderLayerConfig {
            embed_dims: d,
            num_heads: spec.num_heads,
            feedforward_channels: spec.feedforward_channels,
            qkv_bias: true,
            norm_cfg: self.norm_cfg.clone(),
            ffn_bias_std: 0.0,
        };
        let mut patch_embed = PatchEmbed::new(3, d, self.patch_size, device, rng);
        patch_embed.projection.weight = rng.param([d, 3, self.patch_size, self.patch_size], tn, device);
        MaskFeatVit {
            patch_embed,
            cls_token: rng.param([1, 1, d], tn, device),
            mask_token: rng.param([1, 1, d], tn, device),
            pos_embed: rng.param([1, l + 1, d], tn, device),
            layers: (0..spec.num_layers).map(|_| layer.init_trunc_normal(0.02, device, rng)).collect(),
            ln1: self.final_norm.then(|| self.norm_cfg.build_layer_norm(d, device)),
            img_size: self.img_size,
            patch_size: self.patch_size,
        }
    }
}

/// MaskFeat's ViT. Keys as MMSelfSup: `cls_token`, `mask_token`,
/// `pos_embed`, `patch_embed.projection.*`, `layers.{i}.*`, `ln1.*`.
#[derive(Module, Debug)]
pub struct MaskFeatVit<B: Backend> {
    /// Patch embedding.
    pub patch_embed: PatchEmbed<B>,
    /// `[1, 1, embed_dims]`.
    pub cls_token: Param<Tensor<B, 3>>,
    /// `[1, 1, embed_dims]`, replaces masked patches.
    pub mask_token: Param<Tensor<B, 3>>,
    /// Learned `[1, 1 + L, embed_dims]`.
    pub pos_embed: Param<Tensor<B, 3>>,
    /// Transformer layers.
    pub layers: Vec<TransformerEncoderLayer<B>>,
    /// Final norm (mmcls's `ln1`), when `final_norm`.
    pub ln1: Option<LayerNorm<B>>,
    img_size: usize,
    patch_size: usize,
}

impl<B: Backend> MaskFeatVit<B> {
    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.img_size / self.patch_size
    }

    /// The input size.
    pub fn img_size(&self) -> usize {
        self.img_size
    }

    /// The patch size.
    pub fn patch_size(&self) -> usize {
        self.patch_size
    }

    /// `[batch, 3, s, s]` images and `[batch, g, g]` masks (1 = masked) →
    /// `[batch, 1 + g², embed_dims]`, cls first.
    pub fn forward(&self, x: Tensor<B, 4>, mask: Tensor<B, 3>) -> Result<Tensor<B, 3>, ModelError> {
        let [n, c, h, w] = x.dims();
        let g = self.grid();
        if c != 3 || h != self.img_size || w != self.img_size || mask.dims() != [n, g, g] {
            return Err(ModelError::Shape {
                algorithm: "MaskFeatViT",
                expected: format!("[batch, 3, {0}, {0}] images with [batch, {g}, {g}] masks", self.img_size),
                got: [x.dims().to_vec(), mask.dims().to_vec()].concat(),
            });
        }
        let d = self.mask_token.dims()[2];
        let x = self.patch_embed.forward(x);
        let m = mask.reshape([n, g * g, 1]);
        let x = x * (m.clone().neg() + 1.0) + self.mask_token.val() * m;
        let cls = self.cls_token.val().expand([n, 1, d]);
        let mut x = Tensor::cat(vec![cls, x], 1) + self.pos_embed.val();
        for layer in &self.layers {
            x = layer.forward(x);
        }
        Ok(match &self.ln1 {
            Some(norm) => norm.forward(x),
            None => x,
        })
    }

    /// The unmasked forward as features: the cls token and the patch map.
    pub fn features(&self, x: Tensor<B, 4>) -> Result<VitFeatures<B>, ModelError> {
        let [n, _, _, _] = x.dims();
        let g = self.grid();
        let mask = Tensor::zeros([n, g, g], &x.device());
        let x = self.forward(x, mask)?;
        let d = x.dims()[2];
        let cls_token = x.clone().slice([0..n, 0..1]).reshape([n, d]);
        let patch_token = x.slice([0..n, 1..g * g + 1]).reshape([n, g, g, d]).permute([0, 3, 1, 2]);
        Ok(VitFeatures { patch_token, cls_token })
    }
}
