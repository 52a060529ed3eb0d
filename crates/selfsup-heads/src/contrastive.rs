//! Ports of the heads of MMSelfSup's contrastive and siamese algorithms:
//! `ContrastiveHead`, `LatentPredictHead`, `LatentCrossCorrelationHead`
//! (`latent_heads.py`), `MoCoV3Head` and `SwAVHead`.
use burn::{
    module::Module,
    tensor::{backend::Backend, Int, Tensor},
};
use selfsup_layers::{batch_norm::TorchBatchNorm, dist, init::InitRng};
use selfsup_losses::{
    l2_normalize, CosineSimilarityLoss, CrossCorrelationLoss, CrossEntropyLossConfig, SwAVLoss, SwAVLossConfig, SwAVQueue,
};
use selfsup_necks::{NonLinearNeck, NonLinearNeckConfig};
use serde::{Deserialize, Serialize};

selfsup_config::registry! {
    /// A cross-entropy `loss` dict.
    #[derive(Debug, Clone, PartialEq)]
    pub enum CeLossConfig {
        /// mmcls's CrossEntropyLoss, as MMSelfSup's configs name it.
        "mmcls.CrossEntropyLoss" => Mmcls(CrossEntropyLossConfig),
        /// The same without the scope prefix.
        "CrossEntropyLoss" => Plain(CrossEntropyLossConfig),
    }
}

impl Default for CeLossConfig {
    fn default() -> Self {
        CeLossConfig::Mmcls(CrossEntropyLossConfig::default())
    }
}

impl CeLossConfig {
    /// The inner config.
    pub fn get(&self) -> &CrossEntropyLossConfig {
        match self {
            CeLossConfig::Mmcls(c) | CeLossConfig::Plain(c) => c,
        }
    }
}

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

selfsup_config::registry! {
    /// `dict(type='SwAVLoss', ...)`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum SwAVLossRegistry {
        /// SwAV's swapped prediction.
        "SwAVLoss" => SwAV(SwAVLossConfig),
    }
}

impl SwAVLossRegistry {
    /// The inner config.
    pub fn get(&self) -> &SwAVLossConfig {
        let SwAVLossRegistry::SwAV(c) = self;
        c
    }
}

/// `dict(type='ContrastiveHead', loss=..., temperature=0.1)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContrastiveHeadConfig {
    /// The cross entropy.
    #[serde(default)]
    pub loss: CeLossConfig,
    /// Softmax temperature.
    #[serde(default = "t01")]
    pub temperature: f64,
}

fn t01() -> f64 {
    0.1
}
fn t1() -> f64 {
    1.0
}

impl ContrastiveHeadConfig {
    /// Builds the head.
    pub fn init(&self) -> ContrastiveHead {
        ContrastiveHead { loss: self.loss.get().clone(), temperature: self.temperature }
    }
}

/// InfoNCE: `CE(cat(pos, neg)/T, 0)`.
#[derive(Debug, Clone)]
pub struct ContrastiveHead {
    loss: CrossEntropyLossConfig,
    temperature: f64,
}

impl ContrastiveHead {
    /// # Shapes
    /// - `pos`: `[n, 1]`, `neg`: `[n, k]` -> `[1]`
    pub fn forward<B: Backend>(&self, pos: Tensor<B, 2>, neg: Tensor<B, 2>) -> Tensor<B, 1> {
        self.loss.forward_first(Tensor::cat(vec![pos, neg], 1).div_scalar(self.temperature))
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

/// `dict(type='SwAVHead', loss=dict(type='SwAVLoss', ...))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwAVHeadConfig {
    /// The loss (holds the prototypes).
    pub loss: SwAVLossRegistry,
}

impl SwAVHeadConfig {
    /// Builds the head with normalised prototypes.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> SwAVHead<B> {
        SwAVHead { loss: self.loss.get().init(device, rng) }
    }
}

/// SwAV's head: passes to [`SwAVLoss`]. Key `loss.prototypes.weight`.
#[derive(Module, Debug)]
pub struct SwAVHead<B: Backend> {
    /// The loss and its prototypes.
    pub loss: SwAVLoss<B>,
}

impl<B: Backend> SwAVHead<B> {
    /// See [`SwAVLoss::forward`].
    pub fn forward(&self, z: Tensor<B, 2>, queue: Option<&SwAVQueue<B>>) -> (Tensor<B, 1>, Option<SwAVQueue<B>>) {
        self.loss.forward(z, queue)
    }
}
