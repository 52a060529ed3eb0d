//! Port of `mmselfsup.models.backbones.BEiTViT` (mmselfsup 1.0.0) on mmcls's
//! `BEiT` (1.0.0rc6): a ViT of [`BeitTransformerEncoderLayer`]s (q/v biases,
//! layer scale, relative position bias shared by every layer or owned by
//! each) whose masked patches are replaced by a learned `mask_token`. It
//! returns every token, cls first, after each layer in `out_indices`; the
//! final norm `ln1` applies after the last layer.
use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, Tensor},
};
use selfsup_core::{Draws, ModelError};
use selfsup_layers::norm::LayerNorm;
use selfsup_layers::{
    init::{self, Dist, InitRng},
    BeitLayerConfig, BeitTransformerEncoderLayer, NormCfg, PatchEmbed, QkvBias, RelativePositionBias,
};
use serde::{Deserialize, Serialize};

use crate::vision_transformer::{VitArch, VitArchSpec, VitFeatures};

/// Configuration of [`BeitVit`], MMSelfSup's `BEiTViT`: its `__init__`
/// arguments and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BeitVitConfig {
    /// `"base"`, `"large"`, another mmcls arch name, or custom dimensions.
    pub arch: VitArch,
    /// Input image size (square).
    pub img_size: usize,
    /// Patch size.
    pub patch_size: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Layers whose output is returned (an index or a list; negative from
    /// the end).
    pub out_indices: serde_json::Value,
    /// Dropout after the position embedding; must be 0.
    pub drop_rate: f64,
    /// Stochastic depth, linear from 0 over the layers.
    pub drop_path_rate: f64,
    /// LayerNorm config, `dict(type='LN', eps=1e-6)`.
    pub norm_cfg: NormCfg,
    /// Apply the final LayerNorm (`ln1`) after the last layer.
    pub final_norm: bool,
    /// Average the patch tokens; must be false (pre-training).
    pub avg_token: bool,
    /// Frozen stages; must be -1.
    pub frozen_stages: i64,
    /// Return the cls token (always true here).
    pub output_cls_token: bool,
    /// A learned absolute position embedding (`pos_embed`).
    pub use_abs_pos_emb: bool,
    /// A relative position bias table in every layer.
    pub use_rel_pos_bias: bool,
    /// One relative position bias table for all layers (`rel_pos_bias`).
    pub use_shared_rel_pos_bias: bool,
    /// Initial layer scale; none when 0.
    pub layer_scale_init_value: f64,
    /// Position-embedding resize mode on checkpoint load (`"bicubic"`).
    pub interpolate_mode: String,
    /// PatchEmbed arguments: BEiT's `dict(padding=0)`.
    pub patch_cfg: serde_json::Map<String, serde_json::Value>,
    /// Extra layer arguments; must be empty.
    pub layer_cfgs: serde_json::Map<String, serde_json::Value>,
    /// MMEngine `init_cfg`: the configs' `TruncNormal`/`Constant` list,
    /// which is the built-in initialisation; `Pretrained` is not read here
    /// (use `load_from` or `selfsup convert`).
    pub init_cfg: Option<serde_json::Value>,
}

impl Default for BeitVitConfig {
    fn default() -> Self {
        let mut patch_cfg = serde_json::Map::new();
        patch_cfg.insert("padding".into(), 0.into());
        Self {
            arch: VitArch::Name("base".into()),
            img_size: 224,
            patch_size: 16,
            in_channels: 3,
            out_indices: serde_json::Value::from(-1),
            drop_rate: 0.0,
            drop_path_rate: 0.0,
            norm_cfg: NormCfg::layer_norm(1e-6),
            final_norm: true,
            avg_token: false,
            frozen_stages: -1,
            output_cls_token: true,
            use_abs_pos_emb: false,
            use_rel_pos_bias: false,
            use_shared_rel_pos_bias: true,
            layer_scale_init_value: 0.1,
            interpolate_mode: "bicubic".into(),
            patch_cfg,
            layer_cfgs: Default::default(),
            init_cfg: None,
        }
    }
}

/// `out_indices` resolved against `num_layers` (mmcls adds `num_layers` to
/// negative entries), in the given order.
pub fn resolve_out_indices(value: &serde_json::Value, num_layers: usize) -> Result<Vec<usize>, String> {
    let raw: Vec<i64> = match value {
        serde_json::Value::Number(n) => vec![n.as_i64().ok_or("out_indices must be integers")?],
        serde_json::Value::Array(a) => a.iter().map(|v| v.as_i64().ok_or("out_indices must be integers")).collect::<Result<_, _>>()?,
        _ => return Err("out_indices must be an integer or a list of integers".into()),
    };
    raw.into_iter()
        .map(|i| {
            let j = if i < 0 { i + num_layers as i64 } else { i };
            if (0..num_layers as i64).contains(&j) {
                Ok(j as usize)
            } else {
                Err(format!("out index {i} is outside the {num_layers} layers"))
            }
        })
        .collect()
}

impl BeitVitConfig {
    /// Checks the config; `(key, message)` for the first field that cannot
    /// be honoured.
    pub fn validate(&self) -> Result<(VitArchSpec, Vec<usize>), (&'static str, String)> {
        let spec = self.arch.spec().map_err(|e| ("arch", e))?;
        if !spec.embed_dims.is_multiple_of(spec.num_heads) {
            return Err(("arch", format!("embed_dims {} is not divisible by num_heads {}", spec.embed_dims, spec.num_heads)));
        }
        if self.patch_size == 0 || !self.img_size.is_multiple_of(self.patch_size) {
            return Err(("img_size", format!("img_size {} is not a multiple of patch_size {}", self.img_size, self.patch_size)));
        }
        if self.in_channels == 0 {
            return Err(("in_channels", "must be positive".into()));
        }
        let outs = resolve_out_indices(&self.out_indices, spec.num_layers).map_err(|e| ("out_indices", e))?;
        if self.drop_rate != 0.0 {
            return Err(("drop_rate", "dropout after the position embedding is not supported; set 0".into()));
        }
        if !(0.0..1.0).contains(&self.drop_path_rate) {
            return Err(("drop_path_rate", format!("must be in [0, 1), got {}", self.drop_path_rate)));
        }
        if self.avg_token {
            return Err(("avg_token", "BEiTViT returns every token in pre-training; set False".into()));
        }
        if self.frozen_stages != -1 {
            return Err(("frozen_stages", "freezing is not supported in pre-training; set -1".into()));
        }
        if !self.output_cls_token {
            return Err(("output_cls_token", "BEiTViT always returns the cls token; set True".into()));
        }
        if self.use_rel_pos_bias && self.use_shared_rel_pos_bias {
            return Err(("use_rel_pos_bias", "`use_rel_pos_bias` and `use_shared_rel_pos_bias` cannot both be True".into()));
        }
        self.norm_cfg.validate_layer_norm().map_err(|e| ("norm_cfg.type", e))?;
        if self.patch_cfg.iter().any(|(k, v)| k != "padding" || v.as_i64() != Some(0)) {
            return Err(("patch_cfg", "only BEiT's `dict(padding=0)` is supported".into()));
        }
        if !self.layer_cfgs.is_empty() {
            return Err(("layer_cfgs", "custom layer_cfgs are not supported; leave them empty".into()));
        }
        check_builtin_init_cfg(self.init_cfg.as_ref()).map_err(|e| ("init_cfg", e))?;
        Ok((spec, outs))
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.img_size / self.patch_size
    }

    /// Builds the backbone as MMSelfSup initialises it under the BEiT
    /// configs' `init_cfg`: truncated-normal (std 0.02) Linear and patch
    /// convolution weights with zero biases, unit LayerNorms, the layers'
    /// own re-initialisation and rescaling ([`BeitLayerConfig::init`]),
    /// truncated-normal `cls_token`, `mask_token` and `pos_embed`, and a
    /// zero shared bias table. Call [`Self::validate`] first.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> BeitVit<B> {
        let (spec, out_indices) = self.validate().unwrap_or_else(|(key, msg)| panic!("invalid BEiTViT config at `{key}`: {msg}"));
        let d = spec.embed_dims;
        let g = self.grid();
        let tn = Dist::TruncNormal(0.0, 0.02);
        let mut patch_embed = PatchEmbed::new(self.in_channels, d, self.patch_size, device, rng);
        patch_embed.projection.weight = rng.param([d, self.in_channels, self.patch_size, self.patch_size], tn, device);
        patch_embed.projection.bias = Some(rng.param([d], Dist::Constant(0.0), device));
        let n = spec.num_layers;
        let layers = (0..n)
            .map(|i| {
                BeitLayerConfig {
                    embed_dims: d,
                    num_heads: spec.num_heads,
                    feedforward_channels: spec.feedforward_channels,
                    layer_scale_init_value: self.layer_scale_init_value,
                    window_size: self.use_rel_pos_bias.then_some([g, g]),
                    bias: QkvBias::QvBias,
                    drop_path_rate: if n > 1 { self.drop_path_rate * i as f64 / (n - 1) as f64 } else { 0.0 },
                    norm_cfg: self.norm_cfg.clone(),
                }
                .init(Some(i + 1), device, rng)
            })
            .collect();
        BeitVit {
            patch_embed,
            cls_token: rng.param([1, 1, d], tn, device),
            mask_token: rng.param([1, 1, d], tn, device),
            pos_embed: self.use_abs_pos_emb.then(|| rng.param([1, g * g + 1, d], tn, device)),
            rel_pos_bias: self.use_shared_rel_pos_bias.then(|| RelativePositionBias::new([g, g], spec.num_heads, device)),
            layers,
            ln1: self.final_norm.then(|| self.norm_cfg.build_layer_norm(d, device)),
            out_indices,
            img_size: self.img_size,
            patch_size: self.patch_size,
        }
    }
}

/// Accepts the `init_cfg` entries of the BEiT/CAE configs (`TruncNormal`,
/// `Constant`, `Xavier`, `Normal`), which the built-in initialisation
/// implements, and refuses `Pretrained`, which would read a file.
pub fn check_builtin_init_cfg(init_cfg: Option<&serde_json::Value>) -> Result<(), String> {
    init::check_builtin_init_cfg(init_cfg, |e| match e.get("type").and_then(|t| t.as_str()) {
        Some("TruncNormal" | "Constant" | "Xavier" | "Normal") => Ok(()),
        other => Err(format!("unsupported init_cfg entry type {other:?}")),
    })
}

/// BEiT's ViT. Keys as MMSelfSup: `patch_embed.projection.*`, `cls_token`,
/// `mask_token`, `pos_embed` (with `use_abs_pos_emb`), `rel_pos_bias.*`
/// (with `use_shared_rel_pos_bias`), `layers.{i}.*`, `ln1.*`.
#[derive(Module, Debug)]
pub struct BeitVit<B: Backend> {
    /// Patch embedding.
    pub patch_embed: PatchEmbed<B>,
    /// `[1, 1, embed_dims]`.
    pub cls_token: Param<Tensor<B, 3>>,
    /// `[1, 1, embed_dims]`, replaces masked patches.
    pub mask_token: Param<Tensor<B, 3>>,
    /// Learned `[1, 1 + L, embed_dims]`, with `use_abs_pos_emb`.
    pub pos_embed: Option<Param<Tensor<B, 3>>>,
    /// The shared relative position bias.
    pub rel_pos_bias: Option<RelativePositionBias<B>>,
    /// Transformer layers.
    pub layers: Vec<BeitTransformerEncoderLayer<B>>,
    /// Final norm (mmcls's `ln1`), when `final_norm`.
    pub ln1: Option<LayerNorm<B>>,
    out_indices: Vec<usize>,
    img_size: usize,
    patch_size: usize,
}

impl<B: Backend> BeitVit<B> {
    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.img_size / self.patch_size
    }

    /// The input size.
    pub fn img_size(&self) -> usize {
        self.img_size
    }

    /// Token width.
    pub fn embed_dims(&self) -> usize {
        self.cls_token.dims()[2]
    }

    /// The layers whose outputs [`Self::forward`] returns.
    pub fn out_indices(&self) -> &[usize] {
        &self.out_indices
    }

    /// The shared relative position bias `[heads, 1 + L, 1 + L]`, which
    /// BEiT v2's neck also uses (MMSelfSup's `shared_rel_pos_bias`).
    pub fn shared_rel_pos_bias(&self) -> Option<Tensor<B, 3>> {
        self.rel_pos_bias.as_ref().map(RelativePositionBias::forward)
    }

    /// `[batch, 3, s, s]` images and `[batch, g, g]` masks (1 = masked) →
    /// one `[batch, 1 + g², embed_dims]` tensor per out index, cls first,
    /// in layer order (as mmcls appends them).
    /// `draws` (training) drive the stochastic depth under `layers.{i}`.
    pub fn forward(&self, x: Tensor<B, 4>, mask: Tensor<B, 3>, mut draws: Option<&mut Draws>) -> Result<Vec<Tensor<B, 3>>, ModelError> {
        let [n, c, h, w] = x.dims();
        let g = self.grid();
        let channels = self.patch_embed.projection.weight.dims()[1];
        if c != channels || h != self.img_size || w != self.img_size || mask.dims() != [n, g, g] {
            return Err(ModelError::Shape {
                algorithm: "BEiTViT",
                expected: format!("[batch, {channels}, {0}, {0}] images with [batch, {g}, {g}] masks", self.img_size),
                got: [x.dims().to_vec(), mask.dims().to_vec()].concat(),
            });
        }
        let d = self.embed_dims();
        let x = self.patch_embed.forward(x);
        let m = mask.reshape([n, g * g, 1]);
        let x = x * (m.clone().neg() + 1.0) + self.mask_token.val() * m;
        let cls = self.cls_token.val().expand([n, 1, d]);
        let mut x = Tensor::cat(vec![cls, x], 1);
        if let Some(pos) = &self.pos_embed {
            x = x + pos.val();
        }
        let bias = self.shared_rel_pos_bias();
        let last = self.layers.len() - 1;
        let mut outs = Vec::with_capacity(self.out_indices.len());
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, bias.clone(), &format!("layers.{i}"), draws.as_deref_mut());
            if i == last {
                if let Some(norm) = &self.ln1 {
                    x = norm.forward(x);
                }
            }
            if self.out_indices.contains(&i) {
                outs.push(x.clone());
            }
        }
        Ok(outs)
    }

    /// The unmasked forward's last output as features: the cls token and the
    /// patch map.
    pub fn features(&self, x: Tensor<B, 4>) -> Result<VitFeatures<B>, ModelError> {
        let [n, _, _, _] = x.dims();
        let g = self.grid();
        let mask = Tensor::zeros([n, g, g], &x.device());
        let x = self.forward(x, mask, None)?.pop().expect("at least one out index");
        let d = x.dims()[2];
        let cls_token = x.clone().slice([0..n, 0..1]).reshape([n, d]);
        let patch_token = x.slice([0..n, 1..g * g + 1]).reshape([n, g, g, d]).permute([0, 3, 1, 2]);
        Ok(VitFeatures { patch_token, cls_token })
    }
}
