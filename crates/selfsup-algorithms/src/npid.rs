//! Port of `mmselfsup.models.algorithms.NPID` (`npid.py`): non-parametric
//! instance discrimination against a memory bank of every sample's feature.
//!
//! `loss()` normalises the projected features, reads the positives (each
//! sample's own bank row) and `neg_num` uniformly drawn negatives from the
//! bank as it was before this step, and scores them with the contrastive
//! head. The bank update MMSelfSup does at the end of `loss()` happens in
//! `after_step` with the same detached features and sample indices (the
//! `sample_idx` of the data samples): nothing reads the bank in between.
use burn::{
    module::Module,
    tensor::{backend::Backend, Int, Tensor, TensorData},
};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs, StepContext};
use selfsup_heads::ContrastiveHead;
use selfsup_layers::{init::InitRng, l2_normalize};
use selfsup_memories::{SimpleMemory, SimpleMemoryConfig};
use selfsup_necks::{LinearNeck, LinearNeckConfig};
use serde::{Deserialize, Serialize};

use crate::{
    common::{
        backbone_modes, backbone_spec, check_common, gather, gather_indices, sample_indices, Backbone, BackboneOut,
        ContrastiveBackboneConfig, ContrastiveHeadRegistry,
    },
    AlgorithmSpec, ConfigIssue, InitCfg,
};

selfsup_config::registry! {
    /// A `LinearNeck` dict.
    #[derive(Debug, Clone, PartialEq)]
    pub enum LinearNeckRegistry {
        /// One linear projection, after global pooling.
        "LinearNeck" => LinearNeck(LinearNeckConfig),
    }
}

selfsup_config::registry! {
    /// A `SimpleMemory` dict.
    #[derive(Debug, Clone, PartialEq)]
    pub enum SimpleMemoryRegistry {
        /// NPID's feature bank.
        "SimpleMemory" => SimpleMemory(SimpleMemoryConfig),
    }
}

fn neg_num_default() -> usize {
    65536
}

/// `model = dict(type='NPID', backbone, neck, head, memory_bank, neg_num=65536,
/// ensure_neg=False)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpidConfig {
    /// The data preprocessor.
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// The backbone (a ResNet).
    pub backbone: ContrastiveBackboneConfig,
    /// The projection.
    pub neck: LinearNeckRegistry,
    /// InfoNCE over the positive and the negatives.
    pub head: ContrastiveHeadRegistry,
    /// The bank: one row per sample of the dataset.
    pub memory_bank: SimpleMemoryRegistry,
    /// Negatives per sample.
    #[serde(default = "neg_num_default")]
    pub neg_num: usize,
    /// Draw again any negative that is the sample itself.
    #[serde(default)]
    pub ensure_neg: bool,
    /// MMEngine `init_cfg` (the components' own initialisation is built).
    #[serde(default)]
    pub init_cfg: InitCfg,
}

impl NpidConfig {
    fn parts(&self) -> (&LinearNeckConfig, &SimpleMemoryConfig) {
        let (LinearNeckRegistry::LinearNeck(neck), SimpleMemoryRegistry::SimpleMemory(memory)) = (&self.neck, &self.memory_bank);
        (neck, memory)
    }
}

impl AlgorithmSpec for NpidConfig {
    type Model<B: Backend> = Npid<B>;

    backbone_spec!();

    fn num_views(&self) -> usize {
        1
    }

    fn validate(&self) -> Result<(), ConfigIssue> {
        check_common(&self.data_preprocessor, &self.backbone)?;
        if self.backbone.is_vit() {
            return Err(ConfigIssue::new("backbone.type", "NPID takes a ResNet"));
        }
        let (neck, memory) = self.parts();
        if neck.in_channels != self.backbone.feat_dim() {
            return Err(ConfigIssue::new(
                "neck.in_channels",
                format!("{} does not match the backbone's {} channels", neck.in_channels, self.backbone.feat_dim()),
            ));
        }
        memory.validate().map_err(|(k, m)| ConfigIssue::new(format!("memory_bank.{k}"), m))?;
        if memory.feat_dim != neck.out_channels {
            return Err(ConfigIssue::new("memory_bank.feat_dim", format!("must be neck.out_channels ({})", neck.out_channels)));
        }
        if self.neg_num == 0 {
            return Err(ConfigIssue::new("neg_num", "must be at least 1"));
        }
        if self.ensure_neg && memory.length < 2 {
            return Err(ConfigIssue::new("ensure_neg", "needs a bank of at least 2 samples"));
        }
        self.head.get().loss.get().validate().map_err(|(k, m)| ConfigIssue::new(format!("head.loss.{k}"), m))
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> Npid<B> {
        let (neck, memory) = self.parts();
        Npid {
            backbone: self.backbone.init(device, rng),
            neck: neck.init(device, rng),
            memory_bank: memory.init(device, rng),
            head: self.head.get().init(),
            neg_num: self.neg_num,
            ensure_neg: self.ensure_neg,
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }
}

/// NPID: backbone, linear projection, the bank.
#[derive(Module, Debug)]
pub struct Npid<B: Backend> {
    /// Backbone.
    pub backbone: Backbone<B>,
    /// `LinearNeck` (`fc`).
    pub neck: LinearNeck<B>,
    /// The bank (`feature_bank`, `multinomial`).
    pub memory_bank: SimpleMemory<B>,
    #[module(skip)]
    head: ContrastiveHead,
    neg_num: usize,
    ensure_neg: bool,
    #[module(skip)]
    data_preprocessor: DataPreprocessorConfig,
}

/// What a step writes into the bank: the sample indices and their
/// normalised features (every replica's, in a data-parallel run).
#[derive(Debug, Clone)]
pub struct NpidBankUpdate<B: Backend> {
    /// Rows of the bank.
    pub idx: Vec<usize>,
    /// `[idx.len(), feat_dim]`, detached.
    pub features: Tensor<B, 2>,
}

impl<B: Backend> SelfSupAlgorithm<B> for Npid<B> {
    type Features = BackboneOut<B>;
    type Prediction = BackboneOut<B>;
    type StepState = Option<NpidBankUpdate<B>>;

    backbone_modes!("NPID");

    fn loss(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<(LossOutput<B>, Self::StepState), ModelError> {
        let idx = sample_indices(inputs, "NPID", self.memory_bank.len())?;
        let x = self.backbone.forward(inputs.first_view("NPID")?.clone())?.map();
        let feature = l2_normalize(self.neck.forward(x), 1);
        let [n, d] = feature.dims();
        let device = feature.device();
        let neg_idx = self.memory_bank.draw_negatives(&idx, self.neg_num, self.ensure_neg, draws);
        let to_int = |v: Vec<i64>| {
            let len = v.len();
            Tensor::<B, 1, Int>::from_data(TensorData::new(v, [len]), &device)
        };
        let pos_feat = self.memory_bank.rows(to_int(idx.iter().map(|&i| i as i64).collect()));
        let neg_feat = self.memory_bank.rows(to_int(neg_idx)).reshape([n, self.neg_num, d]);
        let pos_logits = (pos_feat * feature.clone()).sum_dim(1);
        let neg_logits = neg_feat.matmul(feature.clone().reshape([n, d, 1])).reshape([n, self.neg_num]);
        let loss = self.head.forward(pos_logits, neg_logits);
        let update = NpidBankUpdate { idx: gather_indices::<B>(idx, &device), features: gather(feature.detach()) };
        Ok((LossOutput::new().with("loss", loss), Some(update)))
    }

    /// Writes the step's features into the bank.
    fn after_step(mut self, update: Self::StepState, _ctx: &StepContext) -> Self {
        if let Some(u) = update {
            self.memory_bank = self.memory_bank.update(&u.idx, u.features);
        }
        self
    }
}
