//! Port of `mmselfsup.models.necks.NonLinearNeck` (`nonlinear_neck.py`),
//! with its key rows ([`NONLINEAR_KEY_REMAP`]).
//!
//! Linear layers keep PyTorch's default initialisation and BatchNorms start at
//! weight 1, bias 0, as MMSelfSup's `init_cfg` leaves them.
use burn::{
    module::Module,
    nn::Linear,
    tensor::{backend::Backend, Tensor},
};
use selfsup_layers::fused::relu;
use selfsup_layers::{
    batch_norm::{BatchNormCfg, TorchBatchNorm},
    functional::linear,
    init::InitRng,
};
use serde::{Deserialize, Serialize};

use crate::common::{pool_flatten, sync_bn, yes};

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
