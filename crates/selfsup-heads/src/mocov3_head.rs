//! Port of `mmselfsup.models.heads.MoCoV3Head` (`mocov3_head.py`).
use burn::{
    module::Module,
    tensor::{backend::Backend, Int, Tensor},
};
use selfsup_layers::{dist, init::InitRng};
use selfsup_losses::{l2_normalize, CrossEntropyLossConfig};
use selfsup_necks::NonLinearNeck;
use serde::{Deserialize, Serialize};

use crate::{contrastive_head::CeLossConfig, latent_heads::PredictorConfig};

/// `dict(type='MoCoV3Head', predictor=..., loss=..., temperature=1.0)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoCoV3HeadConfig {
    /// The predictor MLP.
    pub predictor: PredictorConfig,
    /// The cross entropy (MMSelfSup sets `loss_weight = 2T`).
    #[serde(default)]
    pub loss: CeLossConfig,
    /// Softmax temperature.
    #[serde(default = "t1")]
    pub temperature: f64,
}

fn t1() -> f64 {
    1.0
}

impl MoCoV3HeadConfig {
    /// Builds the head.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> MoCoV3Head<B> {
        MoCoV3Head { predictor: self.predictor.get().init(device, rng), loss: self.loss.get().clone(), temperature: self.temperature }
    }
}

/// MoCo v3's head: `CE(normalize(predictor(q))·normalize(k)ᵀ/T, arange(n))`.
/// Keys `predictor.*`.
///
/// `momentum_out` holds the keys of every replica (gathered by the
/// algorithm); the labels are offset by the rank, as MMSelfSup's.
#[derive(Module, Debug)]
pub struct MoCoV3Head<B: Backend> {
    /// The predictor.
    pub predictor: NonLinearNeck<B>,
    #[module(skip)]
    loss: CrossEntropyLossConfig,
    temperature: f64,
}

impl<B: Backend> MoCoV3Head<B> {
    /// # Shapes
    /// - `base_out`, `momentum_out`: `[n, d]` -> `[1]`
    pub fn forward(&self, base_out: Tensor<B, 2>, momentum_out: Tensor<B, 2>) -> Tensor<B, 1> {
        let pred = l2_normalize(self.predictor.forward(base_out), 1);
        let target = l2_normalize(momentum_out.detach(), 1);
        let logits = pred.matmul(target.transpose()).div_scalar(self.temperature);
        let n = logits.dims()[0] as i64;
        let first = n * dist::rank() as i64;
        let labels = Tensor::<B, 1, Int>::arange(first..first + n, &logits.device());
        self.loss.forward(logits, labels)
    }
}
