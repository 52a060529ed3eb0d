//! Port of `mmselfsup.models.necks.SwAVNeck` (`swav_neck.py`), with its
//! BatchNorm's second name ([`NECK_KEY_ALIASES`]).
//!
//! Linear layers keep PyTorch's default initialisation and the BatchNorm
//! starts at weight 1, bias 0, as MMSelfSup's `init_cfg` leaves them.
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
    l2_normalize,
};
use serde::{Deserialize, Serialize};

use crate::common::{pool_flatten, sync_bn, yes};

/// `SwAVNeck` registers its BatchNorm twice (`neck.bn` and
/// `neck.projection_neck.1`): `(alias pattern, source template)` rows for
/// the weights crate, which writes and accepts both names for one tensor.
pub const NECK_KEY_ALIASES: &[(&str, &str)] = &[(r"^(.*\.)?projection_neck\.1\.(.*)$", "${1}bn.${2}")];

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
            return Err((
                "hid_channels",
                "the identity and single-Linear SwAV necks are not supported; set hid_channels and out_channels > 0".into(),
            ));
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
