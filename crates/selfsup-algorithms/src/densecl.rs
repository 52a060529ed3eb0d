//! Port of `mmselfsup.models.algorithms.DenseCL`: MoCo's momentum key
//! encoder and queue, plus a dense contrastive loss between matched
//! positions of the two views' feature maps.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs, StepContext};
use selfsup_heads::ContrastiveHead;
use selfsup_layers::{init::InitRng, l2_normalize};
use selfsup_memories::{EmaKind, FeatureQueue, MomentumEncoder, OnlineWeights};
use selfsup_necks::{DenseCLNeck, DenseCLNeckConfig};
use serde::{Deserialize, Serialize};

use crate::{
    common::{
        backbone_modes, backbone_spec, batch_shuffle, batch_unshuffle, check_common, expect_pair, gather, Backbone, BackboneOut,
        ContrastiveBackboneConfig, ContrastiveHeadRegistry,
    },
    moco::{check_queue, check_queue_batch, feat_dim, momentum, queue_len},
    AlgorithmSpec, ConfigIssue, InitCfg,
};

fn lambda() -> f64 {
    0.5
}

fn map_of<B: Backend>(out: BackboneOut<B>) -> Tensor<B, 4> {
    out.map()
}

selfsup_config::registry! {
    /// DenseCL's neck.
    #[derive(Debug, Clone, PartialEq)]
    pub enum DenseClNeckRegistry {
        /// Global and dense projections.
        "DenseCLNeck" => DenseCL(DenseCLNeckConfig),
    }
}

impl DenseClNeckRegistry {
    /// The inner config.
    pub fn get(&self) -> &DenseCLNeckConfig {
        let Self::DenseCL(c) = self;
        c
    }
}

/// `model = dict(type='DenseCL', queue_len, feat_dim, momentum, loss_lambda=0.5, ...)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseClConfig {
    /// The data preprocessor.
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// The backbone.
    pub backbone: ContrastiveBackboneConfig,
    /// Global and dense projections.
    pub neck: DenseClNeckRegistry,
    /// InfoNCE head (used for both losses).
    pub head: ContrastiveHeadRegistry,
    /// Number of negative keys in each queue.
    #[serde(default = "queue_len")]
    pub queue_len: usize,
    /// Key width.
    #[serde(default = "feat_dim")]
    pub feat_dim: usize,
    /// Momentum of the key encoder.
    #[serde(default = "momentum")]
    pub momentum: f64,
    /// Weight of the dense loss (`1 − λ` for the global one).
    #[serde(default = "lambda")]
    pub loss_lambda: f64,
    /// MMEngine `init_cfg`.
    #[serde(default)]
    pub init_cfg: InitCfg,
}

impl AlgorithmSpec for DenseClConfig {
    type Model<B: Backend> = DenseCl<B>;

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
        if self.backbone.is_vit() {
            return Err(ConfigIssue::new("backbone.type", "DenseCL takes a ResNet"));
        }
        let neck = self.neck.get();
        if neck.in_channels != self.backbone.feat_dim() {
            return Err(ConfigIssue::new(
                "neck.in_channels",
                format!("{} does not match the backbone's {}", neck.in_channels, self.backbone.feat_dim()),
            ));
        }
        check_queue(self.queue_len, self.feat_dim, neck.out_channels, self.momentum)?;
        if !(0.0..=1.0).contains(&self.loss_lambda) {
            return Err(ConfigIssue::new("loss_lambda", "must be in [0, 1]"));
        }
        self.head.get().loss.get().validate().map_err(|(k, m)| ConfigIssue::new(format!("head.loss.{k}"), m))
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> DenseCl<B> {
        let backbone = self.backbone.init(device, rng);
        let neck = self.neck.get().init(device, rng);
        let target = (self.backbone.init(device, rng), self.neck.get().init(device, rng));
        DenseCl {
            backbone,
            neck,
            encoder_k: MomentumEncoder::new(target, EmaKind::Lerp { weight: 1.0 - self.momentum }, device),
            memory: FeatureQueue::new(self.feat_dim, self.queue_len, device, rng),
            memory2: FeatureQueue::new(self.feat_dim, self.queue_len, device, rng),
            head: self.head.get().init(),
            loss_lambda: self.loss_lambda,
            configured_lambda: self.loss_lambda,
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }
}

/// DenseCL. Keys as MoCo plus `queue2`, `queue2_ptr`.
#[derive(Module, Debug)]
pub struct DenseCl<B: Backend> {
    /// Query backbone.
    pub backbone: Backbone<B>,
    /// Query projections.
    pub neck: DenseCLNeck<B>,
    /// Momentum key encoder.
    pub encoder_k: MomentumEncoder<B, (Backbone<B>, DenseCLNeck<B>)>,
    /// Global negatives.
    pub memory: FeatureQueue<B>,
    /// Dense negatives (averaged dense keys).
    pub memory2: FeatureQueue<B>,
    #[module(skip)]
    head: ContrastiveHead,
    loss_lambda: f64,
    configured_lambda: f64,
    #[module(skip)]
    data_preprocessor: DataPreprocessorConfig,
}

/// DenseCL's keys for the queues: `(k, k2)`.
pub type DenseClKeys<B> = (Tensor<B, 2>, Tensor<B, 2>);

impl<B: Backend> DenseCl<B> {
    fn online(&self) -> OnlineWeights<B> {
        OnlineWeights::default().with(&self.backbone).with(&self.neck)
    }

    /// The dense loss weight (MMSelfSup's `DenseCLHook` sets 0 for the first iterations).
    pub fn loss_lambda(&self) -> f64 {
        self.loss_lambda
    }

    /// Turns the dense loss on (the configured weight) or off (0), as
    /// `DenseCLHook` does before `start_iters`.
    pub fn set_dense_loss(&mut self, active: bool) {
        self.loss_lambda = if active { self.configured_lambda } else { 0.0 };
    }

    /// Sets the dense loss weight.
    pub fn with_loss_lambda(mut self, lambda: f64) -> Self {
        self.loss_lambda = lambda;
        self
    }

    /// The dense matching: for each query position, the key position of
    /// highest backbone-feature similarity. `[n, s²]`.
    pub fn match_positions(q_b: Tensor<B, 3>, k_b: Tensor<B, 3>) -> Tensor<B, 2, burn::tensor::Int> {
        let sim = q_b.swap_dims(1, 2).matmul(k_b); // [n, s², s²]
        sim.argmax(2).squeeze_dim::<2>(2)
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for DenseCl<B> {
    type Features = BackboneOut<B>;
    type Prediction = BackboneOut<B>;
    type StepState = DenseClKeys<B>;

    backbone_modes!("DenseCL");

    fn loss(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<(LossOutput<B>, DenseClKeys<B>), ModelError> {
        let views = expect_pair(inputs, "DenseCL")?;
        let q_b = map_of(self.backbone.forward(views[0].clone())?);
        let qo = self.neck.forward(q_b.clone());
        let [n, c, h, w] = q_b.dims();
        let q_b = l2_normalize(q_b.reshape([n, c, h * w]), 1);
        let q = l2_normalize(qo.global, 1);
        let q_grid = l2_normalize(qo.dense, 1); // [n, d, s²]
                                                // MMSelfSup's `encoder_k.update_parameters` runs here: the key
                                                // encoder's buffers follow the query encoder's after its pass.
        self.encoder_k.copy_buffers(self.online());

        let (kb_net, kn_net) = &self.encoder_k.module;
        let (im_k, unshuffle) = batch_shuffle(views[1].clone(), draws);
        let k_b = map_of(kb_net.forward(im_k)?).detach();
        let ko = kn_net.forward(k_b.clone());
        let k_b = batch_unshuffle(l2_normalize(k_b.reshape([n, c, h * w]), 1), &unshuffle);
        let k = batch_unshuffle(l2_normalize(ko.global, 1).detach(), &unshuffle);
        let k2 = batch_unshuffle(l2_normalize(ko.dense_avg, 1).detach(), &unshuffle);
        let k_grid = batch_unshuffle(l2_normalize(ko.dense, 1).detach(), &unshuffle);

        let l_pos = (q.clone() * k.clone()).sum_dim(1);
        let l_neg = q.matmul(self.memory.keys());

        let ind = Self::match_positions(q_b.detach(), k_b);
        let [_, d, s2] = k_grid.dims();
        let indexed = k_grid.gather(2, ind.unsqueeze_dim::<3>(1).expand([n, d, s2]));
        // Rows are (image, position) pairs. The positive is reduced over
        // `d` after the transpose, not reshaped to `[n·s², 1]` after it:
        // burn 0.21's reshape of a strided `[m, 1]` gradient (the head's
        // logits slice) computes wrong strides on burn-wgpu and burn-cuda.
        let q_grid = q_grid.swap_dims(1, 2).reshape([n * s2, d]);
        let indexed = indexed.swap_dims(1, 2).reshape([n * s2, d]);
        let l_pos_dense = (q_grid.clone() * indexed).sum_dim(1);
        let l_neg_dense = q_grid.matmul(self.memory2.keys());

        let loss_single = self.head.forward(l_pos, l_neg).mul_scalar(1.0 - self.loss_lambda);
        let loss_dense = self.head.forward(l_pos_dense, l_neg_dense).mul_scalar(self.loss_lambda);
        Ok((LossOutput::new().with("loss_single", loss_single).with("loss_dense", loss_dense), (gather(k), gather(k2))))
    }

    /// Copies the query encoder into a never-updated key encoder.
    fn prepare(mut self) -> Self {
        let online = self.online();
        self.encoder_k = self.encoder_k.prepare(online);
        self
    }

    fn after_step(mut self, (k, k2): DenseClKeys<B>, ctx: &StepContext) -> Self {
        self.memory = self.memory.enqueue(k);
        self.memory2 = self.memory2.enqueue(k2);
        let online = self.online();
        self.encoder_k = self.encoder_k.update(online, ctx.max_iters);
        self
    }
}
