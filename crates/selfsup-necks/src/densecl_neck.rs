//! Port of `mmselfsup.models.necks.DenseCLNeck` (`densecl_neck.py`).
//!
//! The Linears and the 1×1 convolutions keep PyTorch's default
//! initialisation, as MMSelfSup's `init_cfg` leaves them.
use burn::{
    module::Module,
    nn::conv::Conv2d,
    tensor::{backend::Backend, module::adaptive_avg_pool2d, Tensor},
};
use selfsup_layers::fused::relu;
use selfsup_layers::{
    functional::conv2d,
    init::{Dist, InitRng},
};
use serde::{Deserialize, Serialize};

use crate::{common::pool_flatten, mocov2_neck::Mlp};

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
