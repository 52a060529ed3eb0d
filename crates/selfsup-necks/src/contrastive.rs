//! Ports of MMSelfSup's projection necks: `LinearNeck`, `NonLinearNeck`
//! (`nonlinear_neck.py`), `MoCoV2Neck`, `DenseCLNeck` and `SwAVNeck`.
//!
//! Linear layers keep PyTorch's default initialisation and BatchNorms start at
//! weight 1, bias 0, as MMSelfSup's `init_cfg` leaves them.
use burn::{
    module::Module,
    nn::{conv::Conv2d, Linear},
    tensor::{activation::relu, backend::Backend, module::adaptive_avg_pool2d, Tensor},
};
use selfsup_layers::{
    l2_normalize,
    batch_norm::{BatchNormCfg, TorchBatchNorm},
    functional::{conv2d, linear},
    init::{Dist, InitRng},
};
use serde::{Deserialize, Serialize};

/// Key rows between MMSelfSup's `nn.Sequential` indices and our field
/// names: `mlp.0/2` (MoCoV2Neck, DenseCLNeck), `mlp2.0/2` (DenseCLNeck),
/// `projection_neck.0/3` (SwAVNeck).
pub const NECK_KEY_REMAP: &[(&str, &str, &str, &str)] = &[
    (r"(^|\.)mlp\.0\.", "${1}mlp.fc1.", r"(^|\.)mlp\.fc1\.", "${1}mlp.0."),
    (r"(^|\.)mlp\.2\.", "${1}mlp.fc2.", r"(^|\.)mlp\.fc2\.", "${1}mlp.2."),
    (r"(^|\.)mlp2\.0\.", "${1}mlp2.conv1.", r"(^|\.)mlp2\.conv1\.", "${1}mlp2.0."),
    (r"(^|\.)mlp2\.2\.", "${1}mlp2.conv2.", r"(^|\.)mlp2\.conv2\.", "${1}mlp2.2."),
    (r"(^|\.)projection_neck\.0\.", "${1}projection_neck.fc1.", r"(^|\.)projection_neck\.fc1\.", "${1}projection_neck.0."),
    (r"(^|\.)projection_neck\.3\.", "${1}projection_neck.fc2.", r"(^|\.)projection_neck\.fc2\.", "${1}projection_neck.3."),
];

/// `SwAVNeck` registers its BatchNorm twice (`neck.bn` and
/// `neck.projection_neck.1`): `(alias pattern, source template)` rows for
/// the weights crate, which writes and accepts both names for one tensor.
pub const NECK_KEY_ALIASES: &[(&str, &str)] = &[(r"^(.*\.)?projection_neck\.1\.(.*)$", "${1}bn.${2}")];

fn pool_flatten<B: Backend>(x: Tensor<B, 4>, with_avg_pool: bool) -> Tensor<B, 2> {
    let x = if with_avg_pool { adaptive_avg_pool2d(x, [1, 1]) } else { x };
    x.flatten::<2>(1, 3)
}

/// `dict(type='LinearNeck', in_channels, out_channels, with_avg_pool=True)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearNeckConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output features.
    pub out_channels: usize,
    /// Global average pooling first.
    #[serde(default = "yes")]
    pub with_avg_pool: bool,
    /// MMEngine `init_cfg` (PyTorch's default Linear init is what is built).
    #[serde(default)]
    pub init_cfg: Option<serde_json::Value>,
}

fn yes() -> bool {
    true
}

impl LinearNeckConfig {
    /// Builds the neck.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> LinearNeck<B> {
        LinearNeck { fc: rng.linear_torch(self.in_channels, self.out_channels, true, device), with_avg_pool: self.with_avg_pool }
    }
}

/// `fc(flatten(avgpool(x)))`. Key `fc`.
#[derive(Module, Debug)]
pub struct LinearNeck<B: Backend> {
    /// The projection.
    pub fc: Linear<B>,
    with_avg_pool: bool,
}

impl<B: Backend> LinearNeck<B> {
    /// `[n, c, h, w] -> [n, out]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        linear(&self.fc, pool_flatten(x, self.with_avg_pool))
    }
}

/// `dict(type='MoCoV2Neck', in_channels, hid_channels, out_channels, with_avg_pool=True)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoCoV2NeckConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Hidden features.
    pub hid_channels: usize,
    /// Output features.
    pub out_channels: usize,
    /// Global average pooling first.
    #[serde(default = "yes")]
    pub with_avg_pool: bool,
    /// MMEngine `init_cfg` (PyTorch's default Linear init is what is built).
    #[serde(default)]
    pub init_cfg: Option<serde_json::Value>,
}

impl MoCoV2NeckConfig {
    /// Builds the neck.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> MoCoV2Neck<B> {
        MoCoV2Neck {
            mlp: Mlp {
                fc1: rng.linear_torch(self.in_channels, self.hid_channels, true, device),
                fc2: rng.linear_torch(self.hid_channels, self.out_channels, true, device),
            },
            with_avg_pool: self.with_avg_pool,
        }
    }
}

/// `Linear → ReLU → Linear` (keys `mlp.0`, `mlp.2`).
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// First layer.
    pub fc1: Linear<B>,
    /// Second layer.
    pub fc2: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    /// `[n, in] -> [n, out]`
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        linear(&self.fc2, relu(linear(&self.fc1, x)))
    }
}

/// MoCo v2's two-layer MLP head.
#[derive(Module, Debug)]
pub struct MoCoV2Neck<B: Backend> {
    /// The MLP.
    pub mlp: Mlp<B>,
    with_avg_pool: bool,
}

impl<B: Backend> MoCoV2Neck<B> {
    /// `[n, c, h, w] -> [n, out]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        self.mlp.forward(pool_flatten(x, self.with_avg_pool))
    }
}

/// `dict(type='NonLinearNeck', ...)` with every MMSelfSup option.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NonLinearNeckConfig {
    /// Input features.
    pub in_channels: usize,
    /// Hidden features.
    pub hid_channels: usize,
    /// Output features.
    pub out_channels: usize,
    /// Number of Linear layers.
    #[serde(default = "two")]
    pub num_layers: usize,
    /// Bias on the hidden Linears.
    #[serde(default)]
    pub with_bias: bool,
    /// BatchNorm after the last Linear.
    #[serde(default = "yes")]
    pub with_last_bn: bool,
    /// Affine parameters on that last BatchNorm.
    #[serde(default = "yes")]
    pub with_last_bn_affine: bool,
    /// Bias on the last Linear.
    #[serde(default)]
    pub with_last_bias: bool,
    /// Global average pooling first (for feature maps).
    #[serde(default = "yes")]
    pub with_avg_pool: bool,
    /// The input is a ViT's output: use its cls token.
    #[serde(default)]
    pub vit_backbone: bool,
    /// BatchNorm config (`SyncBN` is BN on one device).
    #[serde(default = "sync_bn")]
    pub norm_cfg: BatchNormCfg,
    /// MMEngine `init_cfg` (unit BatchNorms and PyTorch's default Linears are built).
    #[serde(default)]
    pub init_cfg: Option<serde_json::Value>,
}

fn two() -> usize {
    2
}
fn sync_bn() -> BatchNormCfg {
    BatchNormCfg::new("SyncBN")
}

impl NonLinearNeckConfig {
    /// Checks the config.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.num_layers == 0 {
            return Err(("num_layers", "must be at least 1".into()));
        }
        self.norm_cfg.validate().map_err(|e| ("norm_cfg", e))
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        if self.num_layers == 1 {
            self.hid_channels
        } else {
            self.out_channels
        }
    }

    /// Builds the neck.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> NonLinearNeck<B> {
        let mut fcs = vec![rng.linear_torch(self.in_channels, self.hid_channels, self.with_bias, device)];
        let mut bns = vec![Some(self.norm_cfg.init(self.hid_channels, device, rng))];
        for i in 1..self.num_layers {
            let last = i == self.num_layers - 1;
            let c = if last { self.out_channels } else { self.hid_channels };
            fcs.push(rng.linear_torch(self.hid_channels, c, if last { self.with_last_bias } else { self.with_bias }, device));
            bns.push(if !last {
                Some(self.norm_cfg.init(c, device, rng))
            } else if self.with_last_bn {
                Some(
                    TorchBatchNorm::new(c, self.with_last_bn_affine, self.norm_cfg.eps, self.norm_cfg.momentum, device, rng)
                        .with_trainable(self.norm_cfg.requires_grad),
                )
            } else {
                None
            });
        }
        NonLinearNeck { fc: fcs, bn: bns, with_avg_pool: self.with_avg_pool, vit_backbone: self.vit_backbone }
    }
}

/// `fc0 → bn0 → [ReLU → fc_i → bn_i]…`. Keys `fc{i}`, `bn{i}` (our `fc.{i}`,
/// `bn.{i}`; see [`NONLINEAR_KEY_REMAP`]).
#[derive(Module, Debug)]
pub struct NonLinearNeck<B: Backend> {
    /// The Linears.
    pub fc: Vec<Linear<B>>,
    /// The BatchNorms (the last one is optional).
    pub bn: Vec<Option<TorchBatchNorm<B>>>,
    with_avg_pool: bool,
    vit_backbone: bool,
}

/// `fc0` ↔ `fc.0`, `bn0` ↔ `bn.0` (MMSelfSup names the layers with
/// `add_module(f'fc{i}')`), for a NonLinearNeck under `neck.`, `predictor.`
/// or a momentum encoder's `module.1.` (its `(backbone, neck)` tuple).
pub const NONLINEAR_KEY_REMAP: &[(&str, &str, &str, &str)] = &[(
    r"(^|\.)(neck|predictor|module\.1)\.(fc|bn)(\d+)\.",
    "${1}${2}.${3}.${4}.",
    r"(^|\.)(neck|predictor|module\.1)\.(fc|bn)\.(\d+)\.",
    "${1}${2}.${3}${4}.",
)];

impl<B: Backend> NonLinearNeck<B> {
    /// Whether the input is a ViT's cls token.
    pub fn vit_backbone(&self) -> bool {
        self.vit_backbone
    }

    /// From a feature map (pooled when `with_avg_pool`, else flattened).
    /// `[n, c, h, w] -> [n, out]`
    pub fn forward_map(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward(pool_flatten(x, self.with_avg_pool))
    }

    /// From vectors (a cls token, or a predictor's input). `[n, in] -> [n, out]`
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let mut x = x;
        for (i, (fc, bn)) in self.fc.iter().zip(&self.bn).enumerate() {
            if i > 0 {
                x = relu(x);
            }
            x = linear(fc, x);
            if let Some(bn) = bn {
                x = bn.forward(x);
            }
        }
        x
    }
}

/// `dict(type='DenseCLNeck', in_channels, hid_channels, out_channels, num_grid=None)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseCLNeckConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Hidden features.
    pub hid_channels: usize,
    /// Output features.
    pub out_channels: usize,
    /// Pool the dense branch to `num_grid × num_grid` first.
    #[serde(default)]
    pub num_grid: Option<usize>,
    /// MMEngine `init_cfg` (PyTorch's default init is what is built).
    #[serde(default)]
    pub init_cfg: Option<serde_json::Value>,
}

impl DenseCLNeckConfig {
    /// Builds the neck.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> DenseCLNeck<B> {
        let conv = |rng: &mut InitRng, cin: usize, cout: usize| {
            let b = 1.0 / (cin as f64).sqrt();
            rng.conv2d(cin, cout, 1, 1, 0, 1, Dist::Uniform(-b, b), Some(Dist::Uniform(-b, b)), device)
        };
        DenseCLNeck {
            mlp: Mlp {
                fc1: rng.linear_torch(self.in_channels, self.hid_channels, true, device),
                fc2: rng.linear_torch(self.hid_channels, self.out_channels, true, device),
            },
            mlp2: ConvMlp { conv1: conv(rng, self.in_channels, self.hid_channels), conv2: conv(rng, self.hid_channels, self.out_channels) },
            num_grid: self.num_grid,
        }
    }
}

/// `Conv1x1 → ReLU → Conv1x1` (keys `mlp2.0`, `mlp2.2`).
#[derive(Module, Debug)]
pub struct ConvMlp<B: Backend> {
    /// First 1×1 convolution.
    pub conv1: Conv2d<B>,
    /// Second 1×1 convolution.
    pub conv2: Conv2d<B>,
}

/// DenseCL's global and dense projections.
#[derive(Module, Debug)]
pub struct DenseCLNeck<B: Backend> {
    /// Global MLP on the pooled map.
    pub mlp: Mlp<B>,
    /// Dense 1×1-conv MLP on every position.
    pub mlp2: ConvMlp<B>,
    num_grid: Option<usize>,
}

/// DenseCLNeck's three outputs.
#[derive(Debug, Clone)]
pub struct DenseCLNeckOutput<B: Backend> {
    /// `[n, out]`: the global projection.
    pub global: Tensor<B, 2>,
    /// `[n, out, s²]`: the dense projection per position.
    pub dense: Tensor<B, 3>,
    /// `[n, out]`: the dense projection averaged over positions.
    pub dense_avg: Tensor<B, 2>,
}

impl<B: Backend> DenseCLNeck<B> {
    /// `[n, c, h, w]` -> global, dense, dense average.
    pub fn forward(&self, x: Tensor<B, 4>) -> DenseCLNeckOutput<B> {
        let global = self.mlp.forward(pool_flatten(x.clone(), true));
        let x = match self.num_grid {
            Some(g) => adaptive_avg_pool2d(x, [g, g]),
            None => x,
        };
        let x = conv2d(&self.mlp2.conv2, relu(conv2d(&self.mlp2.conv1, x)));
        let dense_avg = pool_flatten(x.clone(), true);
        DenseCLNeckOutput { global, dense: x.flatten::<3>(2, 3), dense_avg }
    }
}

/// `dict(type='SwAVNeck', in_channels, hid_channels, out_channels, ...)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwAVNeckConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Hidden features (must be > 0).
    pub hid_channels: usize,
    /// Output features (must be > 0).
    pub out_channels: usize,
    /// Global average pooling first.
    #[serde(default = "yes")]
    pub with_avg_pool: bool,
    /// L2-normalise the output.
    #[serde(default = "yes")]
    pub with_l2norm: bool,
    /// BatchNorm config.
    #[serde(default = "sync_bn")]
    pub norm_cfg: BatchNormCfg,
    /// MMEngine `init_cfg`.
    #[serde(default)]
    pub init_cfg: Option<serde_json::Value>,
}

impl SwAVNeckConfig {
    /// Checks the config.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.hid_channels == 0 || self.out_channels == 0 {
            return Err(("hid_channels", "the identity and single-Linear SwAV necks are not supported; set hid_channels and out_channels > 0".into()));
        }
        if !self.with_avg_pool {
            return Err(("with_avg_pool", "SwAVNeck concatenates pooled features; only with_avg_pool = true is supported".into()));
        }
        self.norm_cfg.validate().map_err(|e| ("norm_cfg", e))
    }

    /// Builds the neck.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> SwAVNeck<B> {
        SwAVNeck {
            projection_neck: SwAVProjection {
                fc1: rng.linear_torch(self.in_channels, self.hid_channels, true, device),
                fc2: rng.linear_torch(self.hid_channels, self.out_channels, true, device),
            },
            bn: self.norm_cfg.init(self.hid_channels, device, rng),
            with_l2norm: self.with_l2norm,
        }
    }
}

/// `projection_neck = Sequential(Linear, bn, ReLU, Linear)` without the
/// shared BatchNorm, which lives in [`SwAVNeck::bn`].
#[derive(Module, Debug)]
pub struct SwAVProjection<B: Backend> {
    /// `projection_neck.0`.
    pub fc1: Linear<B>,
    /// `projection_neck.3`.
    pub fc2: Linear<B>,
}

/// SwAV's projection of every crop's pooled features, L2-normalised.
#[derive(Module, Debug)]
pub struct SwAVNeck<B: Backend> {
    /// The Linears.
    pub projection_neck: SwAVProjection<B>,
    /// The BatchNorm (also `projection_neck.1` in checkpoints).
    pub bn: TorchBatchNorm<B>,
    with_l2norm: bool,
}

impl<B: Backend> SwAVNeck<B> {
    /// One feature map per resolution group, `[n_g, c, h_g, w_g]`; returns
    /// `[Σ n_g, out]` in group order. The BatchNorm sees every crop at once.
    pub fn forward(&self, groups: Vec<Tensor<B, 4>>) -> Tensor<B, 2> {
        let pooled: Vec<Tensor<B, 2>> = groups.into_iter().map(|x| pool_flatten(x, true)).collect();
        let x = Tensor::cat(pooled, 0);
        let x = linear(&self.projection_neck.fc1, x);
        let x = linear(&self.projection_neck.fc2, relu(self.bn.forward(x)));
        if self.with_l2norm {
            l2_normalize(x, 1)
        } else {
            x
        }
    }
}

