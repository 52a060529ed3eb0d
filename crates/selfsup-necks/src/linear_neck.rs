//! Port of `mmselfsup.models.necks.LinearNeck` (`linear_neck.py`).
//!
//! The Linear keeps PyTorch's default initialisation, as MMSelfSup's
//! `init_cfg` leaves it.
use burn::{
    module::Module,
    nn::Linear,
    tensor::{backend::Backend, Tensor},
};
use selfsup_layers::{functional::linear, init::InitRng};
use serde::{Deserialize, Serialize};

use crate::common::{pool_flatten, yes};

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
