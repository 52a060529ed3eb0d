//! Port of `mmselfsup.models.backbones.MAEViT` (mmselfsup 1.0.0): an mmcls
//! VisionTransformer with a fixed 2-D sin-cos position embedding and MAE's
//! random masking. The arch table and the unmasked forward's output
//! ([`VitFeatures`]) are mmcls's, in `vision_transformer.rs`.
use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, Int, Tensor, TensorData},
};
use selfsup_core::{Draws, ModelError};
use selfsup_layers::norm::LayerNorm;
use selfsup_layers::{
    build_2d_sincos_position_embedding,
    init::{fixed, Dist, InitRng},
    NormCfg, PatchEmbed, TransformerEncoderLayer, TransformerEncoderLayerConfig,
};
use serde::{Deserialize, Serialize};

use crate::vision_transformer::{VitArch, VitArchSpec, VitFeatures};

/// Configuration of [`MaeVit`], MMSelfSup's `MAEViT`. Field names and
/// defaults are MMSelfSup 1.0.0's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaeVitConfig {
    /// `"b"`, `"l"`, `"h"`, another mmcls arch name, or custom dimensions.
    pub arch: VitArch,
    /// Input image size (square).
    pub img_size: usize,
    /// Patch size.
    pub patch_size: usize,
    /// Input channels (mmcls `in_channels`).
    pub in_channels: usize,
    /// Output layer indices; only the last layer (`-1`) is supported.
    pub out_indices: serde_json::Value,
    /// Dropout after the position embedding; must be 0 (MAE pre-training).
    pub drop_rate: f64,
    /// Stochastic depth; must be 0 (MAE pre-training).
    pub drop_path_rate: f64,
    /// Bias on the fused qkv projections.
    pub qkv_bias: bool,
    /// LayerNorm config, `dict(type='LN', eps=1e-6)`.
    pub norm_cfg: NormCfg,
    /// Apply the final LayerNorm (`ln1`).
    pub final_norm: bool,
    /// Return the cls token with the patch tokens.
    pub output_cls_token: bool,
    /// Position-embedding resize mode on checkpoint load (`"bicubic"`).
    pub interpolate_mode: String,
    /// Extra PatchEmbed arguments; must be empty.
    pub patch_cfg: serde_json::Map<String, serde_json::Value>,
    /// Extra layer arguments; must be empty.
    pub layer_cfgs: serde_json::Map<String, serde_json::Value>,
    /// Fraction of patches removed.
    pub mask_ratio: f64,
    /// MMEngine `init_cfg`: null, or MAE's Xavier/Constant entries (MILAN's
    /// and EVA's configs), which `MAEViT.init_weights` overrides with the
    /// same initialisation (use `load_from` or `selfsup convert` for weights).
    pub init_cfg: Option<serde_json::Value>,
}

impl Default for MaeVitConfig {
    fn default() -> Self {
        Self {
            arch: VitArch::default(),
            img_size: 224,
            patch_size: 16,
            in_channels: 3,
            out_indices: serde_json::Value::from(-1),
            drop_rate: 0.0,
            drop_path_rate: 0.0,
            qkv_bias: true,
            norm_cfg: NormCfg::layer_norm(1e-6),
            final_norm: true,
            output_cls_token: true,
            interpolate_mode: "bicubic".into(),
            patch_cfg: Default::default(),
            layer_cfgs: Default::default(),
            mask_ratio: 0.75,
            init_cfg: None,
        }
    }
}

impl MaeVitConfig {
    /// Checks the config and returns `(key, message)` for the first field that
    /// cannot be honoured.
    pub fn validate(&self) -> Result<VitArchSpec, (&'static str, String)> {
        let spec = self.arch.spec().map_err(|e| ("arch", e))?;
        if spec.embed_dims % spec.num_heads != 0 {
            return Err(("arch", format!("embed_dims {} is not divisible by num_heads {}", spec.embed_dims, spec.num_heads)));
        }
        if spec.embed_dims % 4 != 0 {
            return Err(("arch", format!("embed_dims {} must be a multiple of 4 for the sin-cos embedding", spec.embed_dims)));
        }
        if self.patch_size == 0 || !self.img_size.is_multiple_of(self.patch_size) {
            return Err(("img_size", format!("img_size {} is not a multiple of patch_size {}", self.img_size, self.patch_size)));
        }
        if !(0.0..1.0).contains(&self.mask_ratio) {
            return Err(("mask_ratio", format!("mask_ratio must be in [0, 1), got {}", self.mask_ratio)));
        }
        let last = spec.num_layers as i64 - 1;
        let ok = match &self.out_indices {
            serde_json::Value::Number(n) => matches!(n.as_i64(), Some(i) if i == -1 || i == last),
            serde_json::Value::Array(a) => a.len() == 1 && matches!(a[0].as_i64(), Some(i) if i == -1 || i == last),
            _ => false,
        };
        if !ok {
            return Err(("out_indices", "only the last layer (-1) is supported".into()));
        }
        if self.drop_rate != 0.0 {
            return Err(("drop_rate", "dropout is not supported in MAE pre-training; set 0".into()));
        }
        if self.drop_path_rate != 0.0 {
            return Err(("drop_path_rate", "stochastic depth is not supported in MAE pre-training yet; set 0".into()));
        }
        self.norm_cfg.validate_layer_norm().map_err(|e| ("norm_cfg.type", e))?;
        if !self.patch_cfg.is_empty() {
            return Err(("patch_cfg", "custom patch_cfg is not supported; leave it empty".into()));
        }
        if !self.layer_cfgs.is_empty() {
            return Err(("layer_cfgs", "custom layer_cfgs are not supported; leave them empty".into()));
        }
        selfsup_layers::init::check_mae_init_cfg(self.init_cfg.as_ref()).map_err(|e| ("init_cfg", e))?;
        Ok(spec)
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.img_size / self.patch_size
    }

    /// Builds the backbone with MMSelfSup's initialisation. Call
    /// [`MaeVitConfig::validate`] first; this panics on a config it rejects.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> MaeVit<B> {
        let spec = match self.validate() {
            Ok(spec) => spec,
            Err((key, msg)) => panic!("invalid MAEViT config at `{key}`: {msg}"),
        };
        let grid = self.grid();
        let d = spec.embed_dims;
        let pos = build_2d_sincos_position_embedding((grid, grid), d, 10000.0, true);
        let layer = TransformerEncoderLayerConfig {
            embed_dims: d,
            num_heads: spec.num_heads,
            feedforward_channels: spec.feedforward_channels,
            qkv_bias: self.qkv_bias,
            norm_cfg: self.norm_cfg.clone(),
            ffn_bias_std: 0.0,
        };
        MaeVit {
            patch_embed: PatchEmbed::new(self.in_channels, d, self.patch_size, device, rng),
            cls_token: rng.param([1, 1, d], Dist::Normal(0.0, 0.02), device),
            pos_embed: fixed(Tensor::from_data(TensorData::new(pos, [1, grid * grid + 1, d]), device)),
            layers: (0..spec.num_layers).map(|_| layer.init(device, rng)).collect(),
            ln1: self.final_norm.then(|| self.norm_cfg.build_layer_norm(d, device)),
            mask_ratio: self.mask_ratio,
            img_size: self.img_size,
            patch_size: self.patch_size,
        }
    }
}

/// MAE's ViT encoder. Keys as MMSelfSup: `cls_token`, `pos_embed`,
/// `patch_embed.projection.*`, `layers.{i}.*`, `ln1.*`.
#[derive(Module, Debug)]
pub struct MaeVit<B: Backend> {
    /// Patch embedding.
    pub patch_embed: PatchEmbed<B>,
    /// `[1, 1, embed_dims]`.
    pub cls_token: Param<Tensor<B, 3>>,
    /// Fixed sin-cos embedding `[1, 1 + L, embed_dims]`, zero cls row; not trained.
    pub pos_embed: Param<Tensor<B, 3>>,
    /// Transformer layers.
    pub layers: Vec<TransformerEncoderLayer<B>>,
    /// Final norm (mmcls names it `ln1`), present when `final_norm`.
    pub ln1: Option<LayerNorm<B>>,
    mask_ratio: f64,
    img_size: usize,
    patch_size: usize,
}

/// The masked encoder's output.
#[derive(Debug, Clone)]
pub struct MaeEncoderOutput<B: Backend> {
    /// `[batch, 1 + kept, embed_dims]`, cls token first.
    pub latent: Tensor<B, 3>,
    /// `[batch, L]`, 1 for removed patches.
    pub mask: Tensor<B, 2>,
    /// `[batch, L]`, the permutation that restores patch order.
    pub ids_restore: Tensor<B, 2, Int>,
}

/// Host-side random masking: MMSelfSup's `random_masking` index arithmetic.
/// Returns `(ids_keep, ids_restore, mask)`, each row-major `[n, l]` /
/// `[n, len_keep]`.
pub fn random_masking_indices(noise: &[f32], n: usize, l: usize, mask_ratio: f64) -> (Vec<i64>, Vec<i64>, Vec<f32>) {
    let len_keep = (l as f64 * (1.0 - mask_ratio)) as usize;
    let mut keep = Vec::with_capacity(n * len_keep);
    let mut restore = vec![0i64; n * l];
    let mut mask = vec![0f32; n * l];
    for row in 0..n {
        let noise = &noise[row * l..(row + 1) * l];
        let mut shuffle: Vec<usize> = (0..l).collect();
        // argsort(noise): small noise is kept.
        shuffle.sort_by(|&a, &b| noise[a].total_cmp(&noise[b]));
        for (rank, &patch) in shuffle.iter().enumerate() {
            restore[row * l + patch] = rank as i64;
            mask[row * l + patch] = if rank < len_keep { 0.0 } else { 1.0 };
        }
        keep.extend(shuffle[..len_keep].iter().map(|&p| p as i64));
    }
    (keep, restore, mask)
}

impl<B: Backend> MaeVit<B> {
    /// Number of patches `L`.
    pub fn num_patches(&self) -> usize {
        let g = self.img_size / self.patch_size;
        g * g
    }

    /// Token width.
    pub fn embed_dims(&self) -> usize {
        self.cls_token.dims()[2]
    }

    /// The configured mask ratio.
    pub fn mask_ratio(&self) -> f64 {
        self.mask_ratio
    }

    pub(crate) fn check_input(&self, x: &Tensor<B, 4>) -> Result<(), ModelError> {
        let [_, c, h, w] = x.dims();
        let expected_c = self.patch_embed.projection.weight.dims()[1];
        if c != expected_c || h != self.img_size || w != self.img_size {
            return Err(ModelError::Shape {
                algorithm: "MAEViT",
                expected: format!("[batch, {expected_c}, {0}, {0}]", self.img_size),
                got: x.dims().to_vec(),
            });
        }
        Ok(())
    }

    pub(crate) fn encode(&self, mut x: Tensor<B, 3>) -> Tensor<B, 3> {
        for layer in &self.layers {
            x = layer.forward(x);
        }
        match &self.ln1 {
            Some(norm) => norm.forward(x),
            None => x,
        }
    }

    /// MAE's masked forward (`MAEViT.forward` in MMSelfSup 1.0.0).
    /// The masking noise is the draw `"mask_noise"` of `[batch, L]` uniform
    /// values; patches with the smallest noise are kept.
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, img_size, img_size]`
    pub fn forward_masked(&self, x: Tensor<B, 4>, draws: &mut Draws) -> Result<MaeEncoderOutput<B>, ModelError> {
        self.check_input(&x)?;
        let device = x.device();
        let [n, _, _, _] = x.dims();
        let l = self.num_patches();
        let d = self.embed_dims();
        let pos = self.pos_embed.val();
        let x = self.patch_embed.forward(x) + pos.clone().slice([0..1, 1..l + 1]);

        let noise = draws.uniform("mask_noise", n * l);
        let (keep, restore, mask) = random_masking_indices(&noise, n, l, self.mask_ratio);
        let len_keep = keep.len() / n.max(1);
        let ids_keep = Tensor::<B, 2, Int>::from_data(TensorData::new(keep, [n, len_keep]), &device);
        let x = x.gather(1, ids_keep.unsqueeze_dim::<3>(2).expand([n, len_keep, d]));

        let cls = (self.cls_token.val() + pos.slice([0..1, 0..1])).expand([n, 1, d]);
        let latent = self.encode(Tensor::cat(vec![cls, x], 1));
        Ok(MaeEncoderOutput {
            latent,
            mask: Tensor::from_data(TensorData::new(mask, [n, l]), &device),
            ids_restore: Tensor::from_data(TensorData::new(restore, [n, l]), &device),
        })
    }

    /// The plain ViT forward without masking (mmcls `VisionTransformer.forward`,
    /// which MMSelfSup's successor mmpretrain calls with `mask=None`).
    pub fn forward(&self, x: Tensor<B, 4>) -> Result<VitFeatures<B>, ModelError> {
        self.check_input(&x)?;
        let [n, _, _, _] = x.dims();
        let d = self.embed_dims();
        let g = self.img_size / self.patch_size;
        let x = self.patch_embed.forward(x);
        let cls = self.cls_token.val().expand([n, 1, d]);
        let x = self.encode(Tensor::cat(vec![cls, x], 1) + self.pos_embed.val());
        let cls_token = x.clone().slice([0..n, 0..1]).reshape([n, d]);
        let patch_token = x.slice([0..n, 1..g * g + 1]).reshape([n, g, g, d]).permute([0, 3, 1, 2]);
        Ok(VitFeatures { patch_token, cls_token })
    }
}
