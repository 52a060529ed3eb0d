//! Port of `mmselfsup.models.necks.ODCNeck` (`odc_neck.py`): ODC's
//! non-linear projection, fc → BatchNorm (no affine, momentum 0.001) →
//! ReLU → dropout → fc → ReLU.
use burn::{
    module::Module,
    nn::Linear,
    tensor::{activation::relu, backend::Backend, Tensor},
};
use selfsup_core::Draws;
use selfsup_layers::{
    batch_norm::{BatchNormCfg, TorchBatchNorm},
    functional::linear,
    init::InitRng,
};
use serde::{Deserialize, Serialize};

use crate::common::{dropout, pool_flatten, sync_bn, yes};

/// `dict(type='ODCNeck', in_channels, hid_channels, out_channels,
/// with_avg_pool=True, norm_cfg=dict(type='SyncBN'))`. The Linears keep
/// PyTorch's default initialisation (the `init_cfg` only sets norms, and
/// `bn0` has no affine parameters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ODCNeckConfig {
    /// Input channels (the backbone's width).
    pub in_channels: usize,
    /// Hidden width.
    pub hid_channels: usize,
    /// Output width.
    pub out_channels: usize,
    /// Global average pooling first.
    #[serde(default = "yes")]
    pub with_avg_pool: bool,
    /// The norm's type; MMSelfSup always builds it with `momentum=0.001, affine=False`.
    #[serde(default = "sync_bn")]
    pub norm_cfg: BatchNormCfg,
    /// MMEngine `init_cfg` (a `Constant` for norms, which have nothing to set here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_cfg: Option<serde_json::Value>,
}

/// The dropout probability of `nn.Dropout()`.
pub const DROPOUT: f64 = 0.5;

/// The draw that replaces `nn.Dropout`'s Bernoulli mask (see `RelativeLocNeck`).
pub const DROPOUT_DRAW: &str = "odc_neck.dropout";

impl ODCNeckConfig {
    /// Checks the norm.
    pub fn validate(&self) -> Result<(), (String, String)> {
        self.norm_cfg.validate().map_err(|m| ("norm_cfg".to_string(), m))
    }

    /// Builds the neck.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> ODCNeck<B> {
        let fc0 = rng.linear_torch(self.in_channels, self.hid_channels, true, device);
        let bn0 = TorchBatchNorm::new(self.hid_channels, false, self.norm_cfg.eps, 0.001, device, rng);
        let fc1 = rng.linear_torch(self.hid_channels, self.out_channels, true, device);
        ODCNeck { fc: vec![fc0, fc1], bn: vec![bn0], with_avg_pool: self.with_avg_pool }
    }
}

/// Keys `fc0`, `bn0` (running statistics only), `fc1`: the fields `fc.{0,1}` and
/// `bn.0` under the `NonLinearNeck` key rows ([`crate::NONLINEAR_KEY_REMAP`]).
#[derive(Module, Debug)]
pub struct ODCNeck<B: Backend> {
    /// The two projections (`fc0`, `fc1`).
    pub fc: Vec<Linear<B>>,
    /// `bn0`: `BN1d(affine=False, momentum=0.001)`.
    pub bn: Vec<TorchBatchNorm<B>>,
    with_avg_pool: bool,
}

impl<B: Backend> ODCNeck<B> {
    /// `relu(fc1(dropout(relu(bn0(fc0(flatten(avgpool(x))))))))`; dropout only when training.
    ///
    /// # Shapes
    /// `[n, in, h, w] -> [n, out]`
    pub fn forward(&self, x: Tensor<B, 4>, draws: &mut Draws) -> Tensor<B, 2> {
        let x = relu(self.bn[0].forward(linear(&self.fc[0], pool_flatten(x, self.with_avg_pool))));
        relu(linear(&self.fc[1], dropout(x, DROPOUT, DROPOUT_DRAW, draws)))
    }
}
