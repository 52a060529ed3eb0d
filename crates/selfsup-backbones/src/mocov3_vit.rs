//! Port of `mmselfsup.models.backbones.MoCoV3ViT`: an mmcls ViT with a
//! fixed 2-D sin-cos position embedding and, with `stop_grad_conv1`, a frozen
//! random patch projection. The blocks are MAE's ([`MaeVit`]) unmasked.
use burn::tensor::backend::Backend;
use selfsup_layers::{
    init::{Dist, InitRng},
    NormCfg,
};
use serde::{Deserialize, Serialize};

use crate::{MaeVit, MaeVitConfig, VitArch, VitArchSpec};

/// `dict(type='MoCoV3ViT', arch='mocov3-small', img_size=224, patch_size=16,
/// stop_grad_conv1=True, ...)`: MMSelfSup's and mmcls's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MoCoV3VitConfig {
    /// `"mocov3-small"`, `"b"`, `"l"`, another mmcls arch, or custom dimensions.
    pub arch: VitArch,
    /// Input size (square).
    pub img_size: usize,
    /// Patch size.
    pub patch_size: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output layers; only the last (-1).
    pub out_indices: serde_json::Value,
    /// Must be 0.
    pub drop_rate: f64,
    /// Must be 0.
    pub drop_path_rate: f64,
    /// Bias on the fused qkv projections.
    pub qkv_bias: bool,
    /// LayerNorm config.
    pub norm_cfg: NormCfg,
    /// Final LayerNorm.
    pub final_norm: bool,
    /// Return the cls token.
    pub output_cls_token: bool,
    /// Position-embedding resize mode on checkpoint load.
    pub interpolate_mode: String,
    /// Freeze the random patch projection (MoCo v3's trick).
    pub stop_grad_conv1: bool,
    /// Frozen stages; only -1.
    pub frozen_stages: i64,
    /// No effect on a ViT (LayerNorm only); accepted.
    pub norm_eval: bool,
    /// Extra PatchEmbed arguments; must be empty.
    pub patch_cfg: serde_json::Map<String, serde_json::Value>,
    /// Extra layer arguments; must be empty.
    pub layer_cfgs: serde_json::Map<String, serde_json::Value>,
    /// MMEngine `init_cfg`; must be null.
    pub init_cfg: Option<serde_json::Value>,
}

impl Default for MoCoV3VitConfig {
    fn default() -> Self {
        let m = MaeVitConfig::default();
        Self {
            arch: m.arch,
            img_size: 224,
            patch_size: 16,
            in_channels: 3,
            out_indices: serde_json::Value::from(-1),
            drop_rate: 0.0,
            drop_path_rate: 0.0,
            qkv_bias: true,
            norm_cfg: m.norm_cfg,
            final_norm: true,
            output_cls_token: true,
            interpolate_mode: "bicubic".into(),
            stop_grad_conv1: false,
            frozen_stages: -1,
            norm_eval: false,
            patch_cfg: Default::default(),
            layer_cfgs: Default::default(),
            init_cfg: None,
        }
    }
}

impl MoCoV3VitConfig {
    fn as_mae(&self) -> MaeVitConfig {
        MaeVitConfig {
            arch: self.arch.clone(),
            img_size: self.img_size,
            patch_size: self.patch_size,
            in_channels: self.in_channels,
            out_indices: self.out_indices.clone(),
            drop_rate: self.drop_rate,
            drop_path_rate: self.drop_path_rate,
            qkv_bias: self.qkv_bias,
            norm_cfg: self.norm_cfg.clone(),
            final_norm: self.final_norm,
            output_cls_token: self.output_cls_token,
            interpolate_mode: self.interpolate_mode.clone(),
            patch_cfg: self.patch_cfg.clone(),
            layer_cfgs: self.layer_cfgs.clone(),
            mask_ratio: 0.0,
            init_cfg: self.init_cfg.clone(),
        }
    }

    /// Checks the config; `(key, message)`.
    pub fn validate(&self) -> Result<VitArchSpec, (&'static str, String)> {
        if self.frozen_stages != -1 {
            return Err(("frozen_stages", "frozen ViT stages are not supported; set -1".into()));
        }
        if !self.output_cls_token {
            return Err(("output_cls_token", "MoCo v3's neck reads the cls token; set true".into()));
        }
        self.as_mae().validate()
    }

    /// Token width.
    pub fn embed_dims(&self) -> usize {
        self.arch.spec().map(|s| s.embed_dims).unwrap_or(0)
    }

    /// Builds the ViT with MoCo v3's initialisation: fixed sin-cos
    /// positions, patch projection `U(±√(6/(3p²+D)))` with zero bias, q/k/v
    /// each Xavier-uniform, other Linears Xavier with zero bias, cls token
    /// `N(0, 1e-6)`; the patch projection frozen with `stop_grad_conv1`.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> MaeVit<B> {
        let mut vit = self.as_mae().init::<B>(device, rng);
        let d = vit.embed_dims();
        let p = self.patch_size;
        let c = self.in_channels;
        let val = (6.0 / (3 * p * p + d) as f64).sqrt();
        vit.patch_embed.projection.weight = rng.param([d, c, p, p], Dist::Uniform(-val, val), device);
        vit.patch_embed.projection.bias = Some(rng.param([d], Dist::Constant(0.0), device));
        for layer in vit.layers.iter_mut() {
            let val = (6.0 / (d + d) as f64).sqrt();
            layer.attn.qkv.weight = rng.param([d, 3 * d], Dist::Uniform(-val, val), device);
        }
        vit.cls_token = rng.param([1, 1, d], Dist::Normal(0.0, 1e-6), device);
        if self.stop_grad_conv1 {
            use burn::module::Module;
            vit.patch_embed = vit.patch_embed.no_grad();
        }
        vit
    }
}
