//! Port of `mmselfsup.models.algorithms.MoCo` (v1 and v2): a momentum key
//! encoder (`encoder_k`) and a queue of negative keys.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs, StepContext};
use selfsup_heads::ContrastiveHead;
use selfsup_layers::{init::InitRng, l2_normalize};
use selfsup_memories::{EmaKind, FeatureQueue, MomentumEncoder, OnlineWeights};
use selfsup_necks::{LinearNeck, LinearNeckConfig, MoCoV2Neck, MoCoV2NeckConfig};
use serde::{Deserialize, Serialize};

use crate::{
    common::{
        backbone_modes, backbone_spec, batch_shuffle, batch_unshuffle, check_common, expect_pair, gather, Backbone, BackboneOut,
        ContrastiveBackboneConfig, ContrastiveHeadRegistry,
    },
    AlgorithmSpec, ConfigIssue, InitCfg,
};

/// MMSelfSup's defaults, shared with DenseCL.
pub(crate) fn queue_len() -> usize {
    65536
}
pub(crate) fn feat_dim() -> usize {
    128
}
pub(crate) fn momentum() -> f64 {
    0.999
}

selfsup_config::registry! {
    /// MoCo's projection: `LinearNeck` (v1) or `MoCoV2Neck` (v2).
    #[derive(Debug, Clone, PartialEq)]
    pub enum MoCoNeckConfig {
        /// MoCo v1's linear projection.
        "LinearNeck" => Linear(LinearNeckConfig),
        /// MoCo v2's MLP.
        "MoCoV2Neck" => MoCoV2(MoCoV2NeckConfig),
    }
}

impl MoCoNeckConfig {
    fn dims(&self) -> (usize, usize) {
        match self {
            Self::Linear(c) => (c.in_channels, c.out_channels),
            Self::MoCoV2(c) => (c.in_channels, c.out_channels),
        }
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> MoCoNeck<B> {
        match self {
            Self::Linear(c) => MoCoNeck::Linear(c.init(device, rng)),
            Self::MoCoV2(c) => MoCoNeck::MoCoV2(c.init(device, rng)),
        }
    }
}

/// A built MoCo neck.
#[derive(Module, Debug)]
pub enum MoCoNeck<B: Backend> {
    /// `LinearNeck`.
    Linear(LinearNeck<B>),
    /// `MoCoV2Neck`.
    MoCoV2(MoCoV2Neck<B>),
}

impl<B: Backend> MoCoNeck<B> {
    /// `[n, c, h, w] -> [n, out]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        match self {
            MoCoNeck::Linear(n) => n.forward(x),
            MoCoNeck::MoCoV2(n) => n.forward(x),
        }
    }
}

pub(crate) fn check_queue(queue_len: usize, feat_dim: usize, out: usize, momentum: f64) -> Result<(), ConfigIssue> {
    if queue_len == 0 {
        return Err(ConfigIssue::new("queue_len", "must be > 0"));
    }
    if feat_dim != out {
        return Err(ConfigIssue::new("feat_dim", format!("{feat_dim} does not match the neck's out_channels {out}")));
    }
    if !(0.0..=1.0).contains(&momentum) {
        return Err(ConfigIssue::new("momentum", format!("must be in [0, 1], got {momentum}")));
    }
    Ok(())
}

/// `queue_len % batch_size == 0`, as MMSelfSup asserts at the first enqueue.
pub fn check_queue_batch(queue_len: usize, batch_size: usize) -> Result<(), String> {
    if batch_size == 0 || !queue_len.is_multiple_of(batch_size) {
        return Err(format!(
            "model.queue_len {queue_len} is not a multiple of the batch size {batch_size}: MoCo's queue needs whole batches"
        ));
    }
    Ok(())
}

/// `model = dict(type='MoCo', queue_len=65536, feat_dim=128, momentum=0.999, ...)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoCoConfig {
    /// The data preprocessor.
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// The backbone.
    pub backbone: ContrastiveBackboneConfig,
    /// The projection.
    pub neck: MoCoNeckConfig,
    /// InfoNCE head.
    pub head: ContrastiveHeadRegistry,
    /// Number of negative keys.
    #[serde(default = "queue_len")]
    pub queue_len: usize,
    /// Key width.
    #[serde(default = "feat_dim")]
    pub feat_dim: usize,
    /// Momentum of the key encoder (MMSelfSup 1.0's convention: weight of the target).
    #[serde(default = "momentum")]
    pub momentum: f64,
    /// MMEngine `init_cfg`.
    #[serde(default)]
    pub init_cfg: InitCfg,
}

impl AlgorithmSpec for MoCoConfig {
    type Model<B: Backend> = MoCo<B>;

    backbone_spec!();

    fn num_views(&self) -> usize {
        2
    }

    fn check_batch_size(&self, batch_size: usize) -> Result<(), String> {
        check_queue_batch(self.queue_len, batch_size)
    }

    /// Checks the parts and their widths.
    fn validate(&self) -> Result<(), ConfigIssue> {
        check_common(&self.data_preprocessor, &self.backbone)?;
        let (inc, out) = self.neck.dims();
        if inc != self.backbone.feat_dim() {
            return Err(ConfigIssue::new("neck.in_channels", format!("{inc} does not match the backbone's {}", self.backbone.feat_dim())));
        }
        if self.backbone.is_vit() {
            return Err(ConfigIssue::new("backbone.type", "MoCo v1/v2 take a ResNet"));
        }
        check_queue(self.queue_len, self.feat_dim, out, self.momentum)?;
        self.head.get().loss.get().validate().map_err(|(k, m)| ConfigIssue::new(format!("head.loss.{k}"), m))
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> MoCo<B> {
        let backbone = self.backbone.init(device, rng);
        let neck = self.neck.init(device, rng);
        let target = (self.backbone.init(device, rng), self.neck.init(device, rng));
        MoCo {
            backbone,
            neck,
            encoder_k: MomentumEncoder::new(target, EmaKind::Lerp { weight: 1.0 - self.momentum }, device),
            memory: FeatureQueue::new(self.feat_dim, self.queue_len, device, rng),
            head: self.head.get().init(),
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }
}

/// MoCo v1/v2. Keys `backbone.*`, `neck.*`, `encoder_k.module.{0,1}.*`,
/// `encoder_k.steps`, `queue`, `queue_ptr`.
#[derive(Module, Debug)]
pub struct MoCo<B: Backend> {
    /// Query encoder backbone.
    pub backbone: Backbone<B>,
    /// Query projection.
    pub neck: MoCoNeck<B>,
    /// Momentum key encoder: `(backbone, neck)`.
    pub encoder_k: MomentumEncoder<B, (Backbone<B>, MoCoNeck<B>)>,
    /// The queue of negative keys.
    pub memory: FeatureQueue<B>,
    #[module(skip)]
    head: ContrastiveHead,
    #[module(skip)]
    data_preprocessor: DataPreprocessorConfig,
}

fn map_of<B: Backend>(out: BackboneOut<B>) -> Tensor<B, 4> {
    out.map()
}

impl<B: Backend> MoCo<B> {
    fn online(&self) -> OnlineWeights<B> {
        OnlineWeights::default().with(&self.backbone).with(&self.neck)
    }

    /// Normalised keys of `x` from the momentum encoder, no gradient.
    pub fn keys(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 2>, ModelError> {
        let (b, n) = &self.encoder_k.module;
        Ok(l2_normalize(n.forward(map_of(b.forward(x)?)), 1).detach())
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for MoCo<B> {
    type Features = BackboneOut<B>;
    type Prediction = BackboneOut<B>;
    type StepState = Tensor<B, 2>;

    backbone_modes!("MoCo");

    fn loss(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<(LossOutput<B>, Tensor<B, 2>), ModelError> {
        let views = expect_pair(inputs, "MoCo")?;
        let q = l2_normalize(self.neck.forward(map_of(self.backbone.forward(views[0].clone())?)), 1);
        // MMSelfSup's `encoder_k.update_parameters` runs here: the key
        // encoder's buffers follow the query encoder's after its pass.
        self.encoder_k.copy_buffers(self.online());
        let (im_k, unshuffle) = batch_shuffle(views[1].clone(), draws);
        let k = batch_unshuffle(self.keys(im_k)?, &unshuffle);
        let l_pos = (q.clone() * k.clone()).sum_dim(1);
        let l_neg = q.matmul(self.memory.keys());
        let loss = self.head.forward(l_pos, l_neg);
        Ok((LossOutput::new().with("loss", loss), gather(k)))
    }

    /// Copies the query encoder into a never-updated key encoder.
    fn prepare(mut self) -> Self {
        let online = self.online();
        self.encoder_k = self.encoder_k.prepare(online);
        self
    }

    /// Enqueues the keys, then moves the key encoder (MMSelfSup's next
    /// `update_parameters`).
    fn after_step(mut self, keys: Tensor<B, 2>, ctx: &StepContext) -> Self {
        self.memory = self.memory.enqueue(keys);
        let online = self.online();
        self.encoder_k = self.encoder_k.update(online, ctx.max_iters);
        self
    }
}
