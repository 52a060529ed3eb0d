//! mmcls's and mmpretrain's general `VisionTransformer`
//! (`models/backbones/vision_transformer.py`): its `arch_zoo` (named
//! architectures or a custom dict), the features it returns, and the
//! backbone itself as mmpretrain 1.2.0 builds it ([`VisionTransformer`]:
//! learned position embedding, resized bicubically for inputs of another
//! size, DINO's backbone).
//!
//! MAE's encoder is [`MaeVit`](crate::MaeVit) (`mae_vit.rs`), whose
//! [`forward`](crate::MaeVit::forward) is mmcls's unmasked forward with a
//! fixed sin-cos embedding; MoCo v3's ViT
//! ([`MoCoV3VitConfig`](crate::MoCoV3VitConfig)) builds that module.
use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, Tensor},
};
use selfsup_core::{Draws, ModelError};
use selfsup_layers::norm::LayerNorm;
use selfsup_layers::{
    init::{Dist, InitRng},
    resize_pos_embed, NormCfg, PatchEmbed, TransformerEncoderLayer, TransformerEncoderLayerConfig,
};
use serde::{Deserialize, Serialize};

/// The four numbers that define a ViT's width and depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VitArchSpec {
    /// Token width.
    pub embed_dims: usize,
    /// Number of transformer layers.
    pub num_layers: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// FFN hidden width.
    pub feedforward_channels: usize,
}

/// `arch`: an mmcls arch name (`"b"`, `"base"`, `"deit-s"`, ...) or a
/// custom `{embed_dims, num_layers, num_heads, feedforward_channels}` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum VitArch {
    /// A name from mmcls's `arch_zoo`.
    Name(String),
    /// Custom dimensions.
    Custom(VitArchSpec),
}

impl Default for VitArch {
    fn default() -> Self {
        VitArch::Name("b".into())
    }
}

const fn spec(embed_dims: usize, num_layers: usize, num_heads: usize, feedforward_channels: usize) -> VitArchSpec {
    VitArchSpec { embed_dims, num_layers, num_heads, feedforward_channels }
}

impl VitArch {
    /// The arch names mmcls knows, for error messages.
    pub const NAMES: &'static [&'static str] = &[
        "s",
        "small",
        "b",
        "base",
        "l",
        "large",
        "h",
        "huge",
        "eva-g",
        "eva-giant",
        "deit-t",
        "deit-tiny",
        "deit-s",
        "deit-small",
        "deit-b",
        "deit-base",
        "mocov3-s",
        "mocov3-small",
        "dinov2-s",
        "dinov2-small",
        "dinov2-g",
        "dinov2-giant",
    ];

    /// Resolves the arch to its dimensions, as mmcls's `arch_zoo`.
    pub fn spec(&self) -> Result<VitArchSpec, String> {
        match self {
            VitArch::Custom(s) => Ok(*s),
            VitArch::Name(name) => Ok(match name.to_ascii_lowercase().as_str() {
                "s" | "small" => spec(768, 8, 8, 768 * 3),
                "b" | "base" => spec(768, 12, 12, 3072),
                "l" | "large" => spec(1024, 24, 16, 4096),
                "h" | "huge" => spec(1280, 32, 16, 5120),
                "eva-g" | "eva-giant" => spec(1408, 40, 16, 6144),
                "deit-t" | "deit-tiny" => spec(192, 12, 3, 192 * 4),
                "deit-s" | "deit-small" | "dinov2-s" | "dinov2-small" => spec(384, 12, 6, 384 * 4),
                "dinov2-g" | "dinov2-giant" => spec(1536, 40, 24, 6144),
                "deit-b" | "deit-base" => spec(768, 12, 12, 768 * 4),
                "mocov3-s" | "mocov3-small" => spec(384, 12, 12, 1536),
                other => return Err(format!("unknown ViT arch `{other}`; expected one of {}", Self::NAMES.join(", "))),
            }),
        }
    }
}

/// Features of the unmasked ViT, as mmcls returns them with
/// `output_cls_token=True`.
#[derive(Debug, Clone)]
pub struct VitFeatures<B: Backend> {
    /// `[batch, embed_dims, h, w]`.
    pub patch_token: Tensor<B, 4>,
    /// `[batch, embed_dims]`, after the final norm.
    pub cls_token: Tensor<B, 2>,
}

/// Configuration of [`VisionTransformer`], mmpretrain 1.2.0's
/// `VisionTransformer` (`type='mmpretrain.VisionTransformer'`): its
/// `__init__` arguments and defaults. Options that change the module beyond
/// a plain pre-norm ViT returning the cls token are refused by
/// [`VisionTransformerConfig::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VisionTransformerConfig {
    /// `"b"`, `"deit-s"`, another arch name, or custom dimensions.
    pub arch: VitArch,
    /// The size the position embedding is made for (square); other input
    /// sizes resize it.
    pub img_size: usize,
    /// Patch size.
    pub patch_size: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output layer indices; only the last layer (`-1`) is supported.
    pub out_indices: serde_json::Value,
    /// Dropout after the position embedding; must be 0.
    pub drop_rate: f64,
    /// Stochastic depth, rising linearly from 0 at the first layer to this
    /// at the last (`np.linspace`); each layer's attention and FFN branches
    /// drop per sample in training, from the draws `backbone.layers.{i}.attn`
    /// and `backbone.layers.{i}.ffn`.
    pub drop_path_rate: f64,
    /// Bias on the fused qkv projections.
    pub qkv_bias: bool,
    /// LayerNorm config, `dict(type='LN', eps=1e-6)`.
    pub norm_cfg: NormCfg,
    /// Apply the final LayerNorm (`ln1`).
    pub final_norm: bool,
    /// What the backbone returns (mmpretrain): `"cls_token"`, or
    /// `"avg_featmap"` (the mean patch token through `ln2`).
    pub out_type: String,
    /// mmcls 1.0.0rc6's name for `out_type="avg_featmap"`: the mean patch
    /// token through `ln2` (MMSelfSup's fine-tuning configs).
    pub avg_token: bool,
    /// mmcls 1.0.0rc6: also return the cls token; accepted either way (the
    /// classifier takes the mean token when `avg_token`, else the cls token).
    pub output_cls_token: bool,
    /// Prepend a cls token; must be true with `out_type="cls_token"`.
    pub with_cls_token: bool,
    /// Frozen stages; only `-1` (none) is supported.
    pub frozen_stages: i64,
    /// Position-embedding resize mode (`"bicubic"`, the only one supported).
    pub interpolate_mode: String,
    /// Layer scale; must be 0 (off).
    pub layer_scale_init_value: f64,
    /// Extra PatchEmbed arguments; must be empty.
    pub patch_cfg: serde_json::Map<String, serde_json::Value>,
    /// Extra layer arguments; must be empty.
    pub layer_cfgs: serde_json::Map<String, serde_json::Value>,
    /// A LayerNorm before the layers (CLIP); must be false.
    pub pre_norm: bool,
    /// MMEngine `init_cfg`; must be null (use `load_from` or `selfsup convert` for weights).
    pub init_cfg: Option<serde_json::Value>,
}

impl Default for VisionTransformerConfig {
    fn default() -> Self {
        Self {
            arch: VitArch::Name("base".into()),
            img_size: 224,
            patch_size: 16,
            in_channels: 3,
            out_indices: serde_json::Value::from(-1),
            drop_rate: 0.0,
            drop_path_rate: 0.0,
            qkv_bias: true,
            norm_cfg: NormCfg::layer_norm(1e-6),
            final_norm: true,
            out_type: "cls_token".into(),
            avg_token: false,
            output_cls_token: true,
            with_cls_token: true,
            frozen_stages: -1,
            interpolate_mode: "bicubic".into(),
            layer_scale_init_value: 0.0,
            patch_cfg: Default::default(),
            layer_cfgs: Default::default(),
            pre_norm: false,
            init_cfg: None,
        }
    }
}

impl VisionTransformerConfig {
    /// Checks the config; `(key, message)` for the first field that cannot
    /// be honoured.
    pub fn validate(&self) -> Result<VitArchSpec, (&'static str, String)> {
        let spec = self.arch.spec().map_err(|e| ("arch", e))?;
        if spec.num_heads == 0 || spec.embed_dims % spec.num_heads != 0 {
            return Err(("arch", format!("embed_dims {} is not divisible by num_heads {}", spec.embed_dims, spec.num_heads)));
        }
        if self.patch_size == 0 || !self.img_size.is_multiple_of(self.patch_size) {
            return Err(("img_size", format!("img_size {} is not a multiple of patch_size {}", self.img_size, self.patch_size)));
        }
        let last = spec.num_layers as i64 - 1;
        let ok = match &self.out_indices {
            serde_json::Value::Number(n) => matches!(n.as_i64(), Some(i) if i == -1 || i == last),
            serde_json::Value::Array(a) => a.len() == 1 && matches!(a[0].as_i64(), Some(i) if i == -1 || i == last),
            _ => false,
        };
        let unsupported = |key, msg: &str| Err((key, msg.to_string()));
        if !ok {
            return unsupported("out_indices", "only the last layer (-1) is supported");
        }
        if !matches!(self.out_type.as_str(), "cls_token" | "avg_featmap") {
            return unsupported("out_type", "\"cls_token\" or \"avg_featmap\" are supported");
        }
        if !self.with_cls_token {
            return unsupported("with_cls_token", "must be true (the position embedding has the cls row)");
        }
        if self.drop_rate != 0.0 {
            return unsupported("drop_rate", "dropout is not supported; set 0");
        }
        if !(0.0..1.0).contains(&self.drop_path_rate) {
            return Err(("drop_path_rate", format!("must be in [0, 1), got {}", self.drop_path_rate)));
        }
        if self.frozen_stages != -1 {
            return unsupported("frozen_stages", "freezing stages is not supported; set -1");
        }
        if self.interpolate_mode != "bicubic" {
            return unsupported("interpolate_mode", "only \"bicubic\" is supported");
        }
        if self.layer_scale_init_value != 0.0 {
            return unsupported("layer_scale_init_value", "layer scale is not supported; set 0");
        }
        if self.pre_norm {
            return unsupported("pre_norm", "the pre-norm (CLIP) variant is not supported");
        }
        self.norm_cfg.validate_layer_norm().map_err(|e| ("norm_cfg.type", e))?;
        if !self.patch_cfg.is_empty() || !self.layer_cfgs.is_empty() {
            return unsupported(
                if self.patch_cfg.is_empty() { "layer_cfgs" } else { "patch_cfg" },
                "custom patch_cfg and layer_cfgs are not supported; leave them empty",
            );
        }
        if self.init_cfg.is_some() {
            return unsupported(
                "init_cfg",
                "only the built-in initialisation is supported; load weights with `load_from` or `selfsup convert`",
            );
        }
        Ok(spec)
    }

    /// Builds the backbone with mmpretrain's initialisation: PyTorch's
    /// default for the patch projection and the attention, mmcv's FFN
    /// (xavier weights, `N(0, 1e-6)` biases), a zero cls token and a
    /// truncated-normal (std 0.02) position embedding. Call
    /// [`Self::validate`] first; this panics on a config it rejects.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> VisionTransformer<B> {
        let spec = self.validate().unwrap_or_else(|(key, msg)| panic!("invalid VisionTransformer config at `{key}`: {msg}"));
        let (d, p, grid) = (spec.embed_dims, self.patch_size, self.img_size / self.patch_size);
        let layer = TransformerEncoderLayerConfig {
            embed_dims: d,
            num_heads: spec.num_heads,
            feedforward_channels: spec.feedforward_channels,
            qkv_bias: self.qkv_bias,
            norm_cfg: self.norm_cfg.clone(),
            ffn_bias_std: 1e-6,
        };
        let mut patch_embed = PatchEmbed::new(self.in_channels, d, p, device, rng);
        let bound = 1.0 / ((self.in_channels * p * p) as f64).sqrt();
        patch_embed.projection.weight = rng.param([d, self.in_channels, p, p], Dist::Uniform(-bound, bound), device);
        VisionTransformer {
            patch_embed,
            cls_token: rng.param([1, 1, d], Dist::Constant(0.0), device),
            pos_embed: rng.param([1, grid * grid + 1, d], Dist::TruncNormal(0.0, 0.02), device),
            layers: (0..spec.num_layers).map(|_| layer.init(device, rng)).collect(),
            ln1: self.final_norm.then(|| self.norm_cfg.build_layer_norm(d, device)),
            ln2: self.avg_featmap().then(|| self.norm_cfg.build_layer_norm(d, device)),
            drop_path: (0..spec.num_layers)
                .map(|i| if spec.num_layers > 1 { self.drop_path_rate * i as f64 / (spec.num_layers - 1) as f64 } else { 0.0 })
                .collect(),
            grid,
            patch_size: p,
        }
    }

    /// Whether the backbone's feature is the mean patch token (`avg_token`
    /// or `out_type="avg_featmap"`).
    pub fn avg_featmap(&self) -> bool {
        self.avg_token || self.out_type == "avg_featmap"
    }
}

/// mmpretrain's `VisionTransformer`. Keys `cls_token`, `pos_embed`,
/// `patch_embed.projection.*`, `layers.{i}.*`, `ln1.*`, as mmpretrain's.
#[derive(Module, Debug)]
pub struct VisionTransformer<B: Backend> {
    /// Patch embedding.
    pub patch_embed: PatchEmbed<B>,
    /// `[1, 1, embed_dims]`.
    pub cls_token: Param<Tensor<B, 3>>,
    /// Learned `[1, 1 + grid², embed_dims]`, cls row first.
    pub pos_embed: Param<Tensor<B, 3>>,
    /// Transformer layers.
    pub layers: Vec<TransformerEncoderLayer<B>>,
    /// Final norm, present when `final_norm`.
    pub ln1: Option<LayerNorm<B>>,
    /// The mean token's norm, present with `avg_token` / `avg_featmap`.
    pub ln2: Option<LayerNorm<B>>,
    /// Each layer's stochastic-depth rate.
    drop_path: Vec<f64>,
    grid: usize,
    patch_size: usize,
}

impl<B: Backend> VisionTransformer<B> {
    /// Token width.
    pub fn embed_dims(&self) -> usize {
        self.cls_token.dims()[2]
    }

    /// The forward pass for any input whose sides are multiples of the
    /// patch size: the position embedding is resized bicubically from the
    /// configured grid to the input's (mmpretrain's `resize_pos_embed`).
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, h, w]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Result<VitFeatures<B>, ModelError> {
        let (x, [gh, gw]) = self.tokens(x, None)?;
        let [n, _, d] = x.dims();
        let cls_token = x.clone().slice([0..n, 0..1]).reshape([n, d]);
        let patch_token = x.slice([0..n, 1..gh * gw + 1]).reshape([n, gh, gw, d]).permute([0, 3, 1, 2]);
        Ok(VitFeatures { patch_token, cls_token })
    }

    /// The feature a classifier takes (mmcls's output with
    /// `output_cls_token=False`): the mean patch token through `ln2` when
    /// the backbone has it, else the cls token. With `draws` (training),
    /// the layers' stochastic depth applies.
    ///
    /// # Shapes
    /// `[batch, in_channels, h, w]` -> `[batch, embed_dims]`
    pub fn forward_feature(&self, x: Tensor<B, 4>, draws: Option<&mut Draws>) -> Result<Tensor<B, 2>, ModelError> {
        let (x, [gh, gw]) = self.tokens(x, draws)?;
        let [n, _, d] = x.dims();
        Ok(match &self.ln2 {
            Some(norm) => norm.forward(x.slice([0..n, 1..gh * gw + 1]).mean_dim(1).reshape([n, d])),
            None => x.slice([0..n, 0..1]).reshape([n, d]),
        })
    }

    /// The tokens after the last layer (and `ln1`), cls first, and the grid.
    fn tokens(&self, x: Tensor<B, 4>, mut draws: Option<&mut Draws>) -> Result<(Tensor<B, 3>, [usize; 2]), ModelError> {
        let [n, c, h, w] = x.dims();
        let p = self.patch_size;
        let expected_c = self.patch_embed.projection.weight.dims()[1];
        if c != expected_c || h % p != 0 || w % p != 0 || h == 0 || w == 0 {
            return Err(ModelError::Shape {
                algorithm: "VisionTransformer",
                expected: format!("[batch, {expected_c}, h, w] with h and w multiples of {p}"),
                got: x.dims().to_vec(),
            });
        }
        let (gh, gw, d) = (h / p, w / p, self.embed_dims());
        let tokens = self.patch_embed.forward(x);
        let cls = self.cls_token.val().expand([n, 1, d]);
        let pos = resize_pos_embed(self.pos_embed.val(), [self.grid, self.grid], [gh, gw], 1);
        let mut x = Tensor::cat(vec![cls, tokens], 1) + pos;
        for (i, layer) in self.layers.iter().enumerate() {
            let p = self.drop_path.get(i).copied().unwrap_or(0.0);
            x = match draws.as_deref_mut() {
                Some(draws) if p > 0.0 => layer.forward_drop_path(x, p, &format!("backbone.layers.{i}"), draws),
                _ => layer.forward(x),
            };
        }
        if let Some(norm) = &self.ln1 {
            x = norm.forward(x);
        }
        Ok((x, [gh, gw]))
    }
}
