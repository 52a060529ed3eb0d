//! Port of `mmselfsup.models.algorithms.ODC` (`odc.py`): online deep
//! clustering, a classifier trained on cluster labels that a memory keeps
//! up to date at every step.
//!
//! `loss()` reads each sample's label from the memory, scores the neck's
//! features with the classifier, and prepares the memory update MMSelfSup
//! does at the end of `loss()` (running-average rows, labels of the nearest
//! centroid, logged as `change_ratio`); the update is written in
//! `after_step`, with nothing reading the memory in between. The cross
//! entropy is plain until the `ODCHook` first sets the class weights (after
//! the first iteration, as in MMSelfSup, where `ODCHook.set_reweight` hands
//! `loss_weight` to the loss); from then on it is weighted by `loss_weight`.
//! The memory is filled before training by the `DeepClusterHook` with
//! `init_memory=True`, and maintained by the `ODCHook`.
use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, Int, Tensor, TensorData},
};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs, StepContext};
use selfsup_heads::ClsHead;
use selfsup_layers::init::InitRng;
use selfsup_memories::{ODCMemory, ODCMemoryConfig, OdcUpdate};
use selfsup_necks::{ODCNeck, ODCNeckConfig};
use serde::{Deserialize, Serialize};

use crate::{
    common::{
        backbone_spec, check_common, class_weights, gather, gather_indices, sample_indices, Backbone, BackboneOut,
        ContrastiveBackboneConfig,
    },
    rotation_pred::ClsHeadRegistry,
    AlgorithmSpec, ConfigIssue, InitCfg,
};

selfsup_config::registry! {
    /// An `ODCNeck` dict.
    #[derive(Debug, Clone, PartialEq)]
    pub enum OdcNeckRegistry {
        /// fc-bn-relu-dropout-fc-relu.
        "ODCNeck" => ODCNeck(ODCNeckConfig),
    }
}

selfsup_config::registry! {
    /// An `ODCMemory` dict.
    #[derive(Debug, Clone, PartialEq)]
    pub enum OdcMemoryRegistry {
        /// Samples memory and centroids.
        "ODCMemory" => ODCMemory(ODCMemoryConfig),
    }
}

/// `model = dict(type='ODC', backbone, neck, head, memory_bank)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OdcConfig {
    /// The data preprocessor.
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// The backbone (a ResNet).
    pub backbone: ContrastiveBackboneConfig,
    /// The projection.
    pub neck: OdcNeckRegistry,
    /// The classifier over the clusters.
    pub head: ClsHeadRegistry,
    /// Samples memory and centroids.
    pub memory_bank: OdcMemoryRegistry,
    /// MMEngine `init_cfg` (the components' own initialisation is built).
    #[serde(default)]
    pub init_cfg: InitCfg,
}

impl OdcConfig {
    fn parts(&self) -> (&ODCNeckConfig, &ODCMemoryConfig) {
        let (OdcNeckRegistry::ODCNeck(neck), OdcMemoryRegistry::ODCMemory(memory)) = (&self.neck, &self.memory_bank);
        (neck, memory)
    }
}

impl AlgorithmSpec for OdcConfig {
    type Model<B: Backend> = Odc<B>;

    backbone_spec!();

    fn num_views(&self) -> usize {
        1
    }

    fn validate(&self) -> Result<(), ConfigIssue> {
        check_common(&self.data_preprocessor, &self.backbone)?;
        if self.backbone.is_vit() {
            return Err(ConfigIssue::new("backbone.type", "ODC takes a ResNet"));
        }
        let (neck, memory) = self.parts();
        neck.validate().map_err(|(k, m)| ConfigIssue::new(format!("neck.{k}"), m))?;
        memory.validate().map_err(|(k, m)| ConfigIssue::new(format!("memory_bank.{k}"), m))?;
        self.head.validate("head")?;
        let head = self.head.get();
        if neck.in_channels != self.backbone.feat_dim() {
            return Err(ConfigIssue::new(
                "neck.in_channels",
                format!("{} does not match the backbone's output width {}", neck.in_channels, self.backbone.feat_dim()),
            ));
        }
        if head.in_channels != neck.out_channels || memory.feat_dim != neck.out_channels {
            return Err(ConfigIssue::new(
                "head.in_channels",
                format!(
                    "the head ({}) and memory_bank.feat_dim ({}) take the neck's {} features",
                    head.in_channels, memory.feat_dim, neck.out_channels
                ),
            ));
        }
        if head.num_classes != memory.num_classes {
            return Err(ConfigIssue::new(
                "memory_bank.num_classes",
                format!("{} clusters in the memory, {} classes in the head", memory.num_classes, head.num_classes),
            ));
        }
        Ok(())
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> Odc<B> {
        let (neck, memory) = self.parts();
        let k = memory.num_classes;
        Odc {
            backbone: self.backbone.init(device, rng),
            neck: neck.init(device, rng),
            head: self.head.get().init(device, rng),
            memory_bank: memory.init(device),
            loss_weight: class_weights(vec![1.0 / k as f32; k], device),
            class_weighted: false,
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }

    fn required_hooks(&self) -> &'static [&'static str] {
        &["DeepClusterHook", "ODCHook"]
    }
}

/// ODC: backbone, `ODCNeck`, the cluster classifier, the memory.
#[derive(Module, Debug)]
pub struct Odc<B: Backend> {
    /// Backbone.
    pub backbone: Backbone<B>,
    /// Projection.
    pub neck: ODCNeck<B>,
    /// `ClsHead` (`fc_cls`).
    pub head: ClsHead<B>,
    /// Samples memory and centroids.
    pub memory_bank: ODCMemory<B>,
    /// The cross entropy's class weights, `[k]` (buffer `loss_weight`).
    pub loss_weight: Param<Tensor<B, 1>>,
    #[module(skip)]
    class_weighted: bool,
    #[module(skip)]
    data_preprocessor: DataPreprocessorConfig,
}

/// The memory update of a step (every replica's samples).
pub type OdcStepState<B> = Option<OdcUpdate<B>>;

impl<B: Backend> Odc<B> {
    /// `neck([backbone(x)])`, `[n, out]`: what the `DeepClusterHook` clusters and
    /// `init_memory` stores (no dropout outside training).
    pub fn cluster_features(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        let x = self.backbone.forward(inputs.first_view("ODC")?.clone())?.map();
        Ok(self.neck.forward(x, &mut Draws::seeded(0)))
    }

    /// Sets the class weights (`set_reweight`).
    pub fn set_loss_weight(mut self, weights: Vec<f32>) -> Self {
        self.loss_weight = class_weights(weights, &self.loss_weight.device());
        self
    }

    /// Whether the loss uses the class weights (`head.loss.class_weight` set).
    pub fn class_weighted(&self) -> bool {
        self.class_weighted
    }

    /// Hands `loss_weight` to the loss (the `ODCHook`'s `set_reweight`).
    pub fn with_class_weighted(mut self, on: bool) -> Self {
        self.class_weighted = on;
        self
    }

    /// Applies `f` to the memory.
    pub fn map_memory(mut self, f: impl FnOnce(ODCMemory<B>) -> ODCMemory<B>) -> Self {
        self.memory_bank = f(self.memory_bank);
        self
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for Odc<B> {
    type Features = BackboneOut<B>;
    /// The cluster scores, `[n, k]`.
    type Prediction = Tensor<B, 2>;
    type StepState = OdcStepState<B>;

    fn name(&self) -> &'static str {
        "ODC"
    }

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<BackboneOut<B>, ModelError> {
        self.backbone.forward(inputs.first_view("ODC")?.clone())
    }

    fn global_features(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        Ok(self.extract_feat(inputs)?.global())
    }

    fn loss(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<(LossOutput<B>, Self::StepState), ModelError> {
        if !self.memory_bank.is_initialized() {
            return Err(ModelError::DataSample {
                algorithm: "ODC",
                field: "memory_bank".into(),
                message: "the memory is empty: add the DeepClusterHook with init_memory=True to custom_hooks".into(),
            });
        }
        let idx = sample_indices(inputs, "ODC", self.memory_bank.len())?;
        let feature = self.neck.forward(self.extract_feat(inputs)?.map(), draws);
        let device = feature.device();
        let [n, d] = feature.dims();
        let labels = self.memory_bank.labels_of(&idx);
        let labels = Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [n]), &device);
        let x = feature.clone().reshape([n, d, 1, 1]);
        let loss = if self.class_weighted {
            self.head.forward_weighted(x, labels, self.loss_weight.val().detach())
        } else {
            self.head.forward(x, labels)
        };
        let (update, ratio) = self.memory_bank.prepare_update(&gather_indices::<B>(idx, &device), gather(feature.detach()));
        let ratio = Tensor::<B, 1>::from_data(TensorData::new(vec![ratio], [1]), &device);
        Ok((LossOutput::new().with("loss", loss).with("change_ratio", ratio), Some(update)))
    }

    /// Writes the step's rows and labels into the memory.
    fn after_step(mut self, update: Self::StepState, _ctx: &StepContext) -> Self {
        if let Some(u) = update {
            self.memory_bank = self.memory_bank.apply_update(u);
        }
        self
    }

    fn predict(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<Tensor<B, 2>, ModelError> {
        let f = self.neck.forward(self.extract_feat(inputs)?.map(), draws);
        let [n, d] = f.dims();
        Ok(self.head.logits(f.reshape([n, d, 1, 1])))
    }
}
