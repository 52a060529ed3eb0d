//! Port of `mmselfsup.models.necks.RelativeLocNeck` (`relative_loc_neck.py`):
//! fc, BatchNorm (momentum 0.003), ReLU and dropout over the concatenated
//! features of two patches.
use burn::{
    module::Module,
    nn::Linear,
    tensor::{backend::Backend, Tensor},
};
use selfsup_core::Draws;
use selfsup_layers::{
    batch_norm::{BatchNormCfg, TorchBatchNorm},
    functional::linear,
    init::{normal_init_std, Dist, InitRng},
};
use serde::{Deserialize, Serialize};

use crate::common::{dropout, pool_flatten, yes};

/// `dict(type='RelativeLocNeck', in_channels, out_channels, with_avg_pool=True,
/// norm_cfg=dict(type='BN1d'))`; the Linear from `N(0, 0.01)`, bias 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelativeLocNeckConfig {
    /// Channels of one patch's features (the fc takes twice as many).
    pub in_channels: usize,
    /// Output features.
    pub out_channels: usize,
    /// Global average pooling first.
    #[serde(default = "yes")]
    pub with_avg_pool: bool,
    /// The norm; its momentum is always 0.003, as MMSelfSup builds it.
    #[serde(default = "bn1d")]
    pub norm_cfg: BatchNormCfg,
    /// MMEngine `init_cfg`: the `Normal` entry's `std` for the Linear (default 0.01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_cfg: Option<serde_json::Value>,
}

fn bn1d() -> BatchNormCfg {
    BatchNormCfg::new("BN1d")
}

/// The dropout probability of `nn.Dropout()`.
pub const DROPOUT: f64 = 0.5;

/// The draw that replaces `nn.Dropout`'s Bernoulli mask: uniforms `u`, kept where
/// `u >= 0.5` (a replayed 0/1 mask reads the same way).
pub const DROPOUT_DRAW: &str = "relative_loc_neck.dropout";

impl RelativeLocNeckConfig {
    /// Checks the norm.
    pub fn validate(&self) -> Result<(), (String, String)> {
        self.norm_cfg.validate().map_err(|m| ("norm_cfg".to_string(), m))
    }

    /// Builds the neck.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> RelativeLocNeck<B> {
        let std = normal_init_std(self.init_cfg.as_ref()).unwrap_or(0.01);
        let bn = BatchNormCfg { momentum: 0.003, ..self.norm_cfg.clone() };
        RelativeLocNeck {
            fc: rng.linear(2 * self.in_channels, self.out_channels, Dist::Normal(0.0, std), Some(Dist::Constant(0.0)), device),
            bn: bn.init(self.out_channels, device, rng),
            with_avg_pool: self.with_avg_pool,
        }
    }
}

/// Keys `fc`, `bn`.
#[derive(Module, Debug)]
pub struct RelativeLocNeck<B: Backend> {
    /// The projection of the concatenated pair.
    pub fc: Linear<B>,
    /// `BN1d` with momentum 0.003.
    pub bn: TorchBatchNorm<B>,
    with_avg_pool: bool,
}

impl<B: Backend> RelativeLocNeck<B> {
    /// `dropout(relu(bn(fc(flatten(avgpool(x))))))`; dropout only when training.
    ///
    /// # Shapes
    /// `[n, 2·in, h, w] -> [n, out]`
    pub fn forward(&self, x: Tensor<B, 4>, draws: &mut Draws) -> Tensor<B, 2> {
        let x = linear(&self.fc, pool_flatten(x, self.with_avg_pool));
        let x = burn::tensor::activation::relu(self.bn.forward(x));
        dropout(x, DROPOUT, DROPOUT_DRAW, draws)
    }
}
