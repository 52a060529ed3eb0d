//! Port of `mmselfsup.models.necks.BEiTV2Neck` (`beitv2_neck.py`): BEiT
//! v2's patch aggregation. The last layer's cls token joins an early
//! layer's patch tokens, and `num_layers` more BEiT layers (using the
//! backbone's shared relative position bias) run on them; one LayerNorm
//! then normalises both this and the backbone's last output.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_core::Draws;
use selfsup_layers::norm::LayerNorm;
use selfsup_layers::{init::InitRng, BeitLayerConfig, BeitTransformerEncoderLayer, NormCfg, QkvBias};
use serde::{Deserialize, Serialize};

/// `backbone_arch`: `"base"`/`"b"`, `"large"`/`"l"`, or a custom table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BeitV2NeckArch {
    /// A name from the neck's `arch_zoo`.
    Name(String),
    /// Custom dimensions. MMSelfSup requires `num_layers` and reads `depth`
    /// (the backbone's depth, for the stochastic depth rule); a table
    /// without `depth` uses `num_layers`.
    Custom {
        /// Token width.
        embed_dims: usize,
        /// The backbone's layers.
        num_layers: usize,
        /// Attention heads.
        num_heads: usize,
        /// FFN hidden width.
        feedforward_channels: usize,
        /// The backbone's depth.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        depth: Option<usize>,
    },
}

impl BeitV2NeckArch {
    /// `(embed_dims, depth, num_heads, feedforward_channels)`.
    pub fn dims(&self) -> Result<(usize, usize, usize, usize), String> {
        match self {
            Self::Name(n) => match n.to_ascii_lowercase().as_str() {
                "b" | "base" => Ok((768, 12, 12, 3072)),
                "l" | "large" => Ok((1024, 24, 16, 4096)),
                other => Err(format!("unknown backbone_arch `{other}`; expected base, b, large or l")),
            },
            Self::Custom { embed_dims, num_layers, num_heads, feedforward_channels, depth } => {
                Ok((*embed_dims, depth.unwrap_or(*num_layers), *num_heads, *feedforward_channels))
            }
        }
    }
}

/// `dict(type='BEiTV2Neck', ...)`: MMSelfSup's arguments and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BeitV2NeckConfig {
    /// Patch-aggregation layers.
    pub num_layers: usize,
    /// The backbone layer (counted from 1) whose patch tokens are used.
    pub early_layers: usize,
    /// The backbone's arch.
    pub backbone_arch: BeitV2NeckArch,
    /// Dropout; must be 0.
    pub drop_rate: f64,
    /// Stochastic depth over `max(depth, early_layers + num_layers)` layers.
    pub drop_path_rate: f64,
    /// Initial layer scale; none when 0.
    pub layer_scale_init_value: f64,
    /// A relative position bias in each layer (MMSelfSup passes
    /// `window_size=None`, so this must stay false).
    pub use_rel_pos_bias: bool,
    /// LayerNorm config.
    pub norm_cfg: NormCfg,
    /// MMEngine `init_cfg` (`TruncNormal` on Linear, built in).
    pub init_cfg: Option<serde_json::Value>,
}

impl Default for BeitV2NeckConfig {
    fn default() -> Self {
        Self {
            num_layers: 2,
            early_layers: 9,
            backbone_arch: BeitV2NeckArch::Name("base".into()),
            drop_rate: 0.0,
            drop_path_rate: 0.0,
            layer_scale_init_value: 0.1,
            use_rel_pos_bias: false,
            norm_cfg: NormCfg::layer_norm(1e-6),
            init_cfg: None,
        }
    }
}

impl BeitV2NeckConfig {
    /// Checks the config; `(key, message)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let (d, _, heads, _) = self.backbone_arch.dims().map_err(|e| ("backbone_arch", e))?;
        if heads == 0 || !d.is_multiple_of(heads) {
            return Err(("backbone_arch", format!("embed_dims {d} is not divisible by num_heads {heads}")));
        }
        if self.num_layers == 0 {
            return Err(("num_layers", "at least one patch-aggregation layer".into()));
        }
        if self.drop_rate != 0.0 {
            return Err(("drop_rate", "dropout is not supported; set 0".into()));
        }
        if !(0.0..1.0).contains(&self.drop_path_rate) {
            return Err(("drop_path_rate", format!("must be in [0, 1), got {}", self.drop_path_rate)));
        }
        if self.use_rel_pos_bias {
            return Err(("use_rel_pos_bias", "MMSelfSup builds these layers without a window; the shared bias is used".into()));
        }
        self.norm_cfg.validate_layer_norm().map_err(|e| ("norm_cfg.type", e))
    }

    /// Token width.
    pub fn embed_dims(&self) -> usize {
        self.backbone_arch.dims().map(|d| d.0).unwrap_or(0)
    }

    /// Builds the neck as MMSelfSup initialises it: its `TruncNormal`
    /// `init_cfg` re-draws every Linear after the constructor's rescaling,
    /// so the layers keep none ([`BeitLayerConfig::init`]).
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> BeitV2Neck<B> {
        let (d, depth, heads, ff) = self.backbone_arch.dims().unwrap_or_else(|e| panic!("invalid BEiTV2Neck config: {e}"));
        let total = depth.max(self.early_layers + self.num_layers);
        let dpr = |i: usize| if total > 1 { self.drop_path_rate * i as f64 / (total - 1) as f64 } else { 0.0 };
        let patch_aggregation = (self.early_layers..self.early_layers + self.num_layers)
            .map(|i| {
                BeitLayerConfig {
                    embed_dims: d,
                    num_heads: heads,
                    feedforward_channels: ff,
                    layer_scale_init_value: self.layer_scale_init_value,
                    window_size: None,
                    bias: QkvBias::QvBias,
                    drop_path_rate: dpr(i),
                    norm_cfg: self.norm_cfg.clone(),
                }
                .init(None, device, rng)
            })
            .collect();
        BeitV2Neck { patch_aggregation, norm: self.norm_cfg.build_layer_norm(d, device) }
    }
}

/// BEiT v2's neck. Keys `patch_aggregation.{i}.*`, `norm.*`.
#[derive(Module, Debug)]
pub struct BeitV2Neck<B: Backend> {
    /// The patch-aggregation layers.
    pub patch_aggregation: Vec<BeitTransformerEncoderLayer<B>>,
    /// The LayerNorm shared by both outputs.
    pub norm: LayerNorm<B>,
}

impl<B: Backend> BeitV2Neck<B> {
    /// `early` and `last` are the backbone's `[batch, 1 + L, d]` outputs of
    /// the early and the last layer; `rel_pos_bias` its shared bias.
    /// Returns `(x, x_cls_pt)`, both `[batch, L, d]` without the cls token:
    /// the normalised last output, and the aggregation of `cat(last's cls,
    /// early's patches)`. `draws` (training) drive the stochastic depth
    /// under `neck.patch_aggregation.{i}`.
    pub fn forward(
        &self,
        early: Tensor<B, 3>,
        last: Tensor<B, 3>,
        rel_pos_bias: Option<Tensor<B, 3>>,
        mut draws: Option<&mut Draws>,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let [n, l1, d] = last.dims();
        let mut x_cls_pt = Tensor::cat(vec![last.clone().slice([0..n, 0..1]), early.slice([0..n, 1..l1])], 1);
        for (i, layer) in self.patch_aggregation.iter().enumerate() {
            x_cls_pt = layer.forward(x_cls_pt, rel_pos_bias.clone(), &format!("neck.patch_aggregation.{i}"), draws.as_deref_mut());
        }
        let x = self.norm.forward(last).slice([0..n, 1..l1, 0..d]);
        let x_cls_pt = self.norm.forward(x_cls_pt).slice([0..n, 1..l1, 0..d]);
        (x, x_cls_pt)
    }
}
