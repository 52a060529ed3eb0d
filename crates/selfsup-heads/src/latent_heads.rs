//! Ports of `mmselfsup.models.heads.LatentPredictHead` and
//! `LatentCrossCorrelationHead` (`latent_heads.py`), with their `loss` dicts
//! and the predictor dict ([`PredictorConfig`]) that `MoCoV3Head` also takes.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_layers::{batch_norm::TorchBatchNorm, dist, init::InitRng};
use selfsup_losses::{CosineSimilarityLoss, CrossCorrelationLoss};
use selfsup_necks::{NonLinearNeck, NonLinearNeckConfig};
use serde::{Deserialize, Serialize};

selfsup_config::registry! {
    /// `dict(type='CosineSimilarityLoss', ...)`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum CosineLossConfig {
        /// Negative cosine similarity.
        "CosineSimilarityLoss" => CosineSimilarity(CosineSimilarityLoss),
    }
}

selfsup_config::registry! {
    /// `dict(type='CrossCorrelationLoss', lambd=...)`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum CrossCorrelationLossConfig {
        /// Barlow Twins' loss.
        "CrossCorrelationLoss" => CrossCorrelation(CrossCorrelationLoss),
    }
}

selfsup_config::registry! {
    /// A predictor: `dict(type='NonLinearNeck', ...)`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum PredictorConfig {
        /// MMSelfSup's MLP neck used as a predictor.
        "NonLinearNeck" => NonLinearNeck(NonLinearNeckConfig),
    }
}

impl PredictorConfig {
    /// The inner config.
    pub fn get(&self) -> &NonLinearNeckConfig {
        let PredictorConfig::NonLinearNeck(c) = self;
        c
    }
}

/// `dict(type='LatentPredictHead', loss=..., predictor=...)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentPredictHeadConfig {
    /// The cosine loss.
    pub loss: CosineLossConfig,
    /// The predictor MLP.
    pub predictor: PredictorConfig,
}

impl LatentPredictHeadConfig {
    /// Builds the head.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> LatentPredictHead<B> {
        let CosineLossConfig::CosineSimilarity(loss) = &self.loss;
        LatentPredictHead { predictor: self.predictor.get().init(device, rng), loss: loss.clone() }
    }
}

/// `loss(predictor(input), target.detach())`. Keys `predictor.*`.
#[derive(Module, Debug)]
pub struct LatentPredictHead<B: Backend> {
    /// The predictor.
    pub predictor: NonLinearNeck<B>,
    #[module(skip)]
    loss: CosineSimilarityLoss,
}

impl<B: Backend> LatentPredictHead<B> {
    /// # Shapes
    /// - `input`, `target`: `[n, d]` -> `[1]`
    pub fn forward(&self, input: Tensor<B, 2>, target: Tensor<B, 2>) -> Tensor<B, 1> {
        self.loss.forward(self.predictor.forward(input), target.detach())
    }
}

/// `dict(type='LatentCrossCorrelationHead', in_channels, loss=...)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentCrossCorrelationHeadConfig {
    /// Feature width.
    pub in_channels: usize,
    /// The loss.
    pub loss: CrossCorrelationLossConfig,
}

impl LatentCrossCorrelationHeadConfig {
    /// Builds the head.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> LatentCrossCorrelationHead<B> {
        let CrossCorrelationLossConfig::CrossCorrelation(loss) = &self.loss;
        LatentCrossCorrelationHead { bn: TorchBatchNorm::new(self.in_channels, false, 1e-5, 0.1, device, rng), loss: loss.clone() }
    }
}

/// Barlow Twins' head: one affine-free `BatchNorm1d` (key `bn`) for both
/// embeddings, `c = bn(z1)ᵀ·bn(z2)/n`.
///
/// On several devices `c` is divided by the global batch and summed over
/// the replicas, the gradient reaching each replica's own term, as
/// MMSelfSup's in-place `all_reduce` does.
#[derive(Module, Debug)]
pub struct LatentCrossCorrelationHead<B: Backend> {
    /// Shared normalisation (running stats updated twice per step).
    pub bn: TorchBatchNorm<B>,
    #[module(skip)]
    loss: CrossCorrelationLoss,
}

impl<B: Backend> LatentCrossCorrelationHead<B> {
    /// # Shapes
    /// - `z1`, `z2`: `[n, d]` -> `[1]`
    pub fn forward(&self, z1: Tensor<B, 2>, z2: Tensor<B, 2>) -> Tensor<B, 1> {
        let n = z1.dims()[0] * dist::world_size();
        let c = self.bn.forward(z1).transpose().matmul(self.bn.forward(z2)).div_scalar(n as f64);
        self.loss.forward(dist::all_reduce_sum_with_grad(c))
    }
}
