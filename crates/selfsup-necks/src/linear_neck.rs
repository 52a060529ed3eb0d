//! Port of `mmselfsup.models.necks.LinearNeck` (`linear_neck.py`).
//!
//! The Linear keeps PyTorch's default initialisation, as MMSelfSup's
//! `init_cfg` leaves it.
use burn::{
    module::Module,
    nn::Linear,
    tensor::{backend::Backend, Tensor},
};
use selfsup_layers::{
    functional::linear,
    init::{trunc_normal_init, Dist, InitRng},
};
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
    /// MMEngine `init_cfg`: a `TruncNormal` entry is honoured; otherwise
    /// PyTorch's default Linear init is what is built.
    #[serde(default)]
    pub init_cfg: Option<serde_json::Value>,
}

impl LinearNeckConfig {
    /// Builds the neck: PyTorch's default Linear, or a `TruncNormal`
    /// `init_cfg`'s (MaskFeat's).
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> LinearNeck<B> {
        let (d_in, d_out) = (self.in_channels, self.out_channels);
        let fc = match trunc_normal_init(self.init_cfg.as_ref()) {
            Some((std, bias)) => rng.linear(d_in, d_out, Dist::TruncNormal(0.0, std), Some(Dist::Constant(bias)), device),
            None => rng.linear_torch(d_in, d_out, true, device),
        };
        LinearNeck { fc, with_avg_pool: self.with_avg_pool }
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

    /// The projection of every token, as MaskFeat calls the neck on its
    /// `[n·tokens, c]` view (`with_avg_pool=False`).
    pub fn forward_tokens(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        assert!(!self.with_avg_pool, "LinearNeck on tokens needs with_avg_pool=False");
        linear(&self.fc, x)
    }

    /// Whether the neck pools first.
    pub fn with_avg_pool(&self) -> bool {
        self.with_avg_pool
    }
}
