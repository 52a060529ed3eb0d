//! Port of `mmselfsup.models.necks.MoCoV2Neck` (`mocov2_neck.py`), and its
//! two-layer [`Mlp`], which `DenseCLNeck` reuses.
//!
//! Linear layers keep PyTorch's default initialisation, as MMSelfSup's
//! `init_cfg` leaves them.
use burn::{
    module::Module,
    nn::Linear,
    tensor::{backend::Backend, Tensor},
};
use selfsup_layers::fused::relu;
use selfsup_layers::{functional::linear, init::InitRng};
use serde::{Deserialize, Serialize};

use crate::common::{pool_flatten, yes};

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
