//! The algorithm registry: `model.type` names to configs and modules.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs, StepContext};

use crate::{Mae, MaeConfig};

/// A config field that cannot be honoured, with its key path below `model`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("model.{key}: {message}")]
pub struct ConfigIssue {
    /// Key path below `model` (`"neck.embed_dim"`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigIssue {
    /// A new issue.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

selfsup_config::registry! {
    /// `model = dict(type=..., ...)`: every algorithm selfsup implements.
    #[derive(Debug, Clone, PartialEq)]
    pub enum AlgorithmConfig {
        /// Masked autoencoder.
        "MAE" => Mae(MaeConfig),
    }
}

impl AlgorithmConfig {
    /// MMSelfSup's name of the algorithm (`"MAE"`).
    pub fn name(&self) -> &'static str {
        self.type_name()
    }

    /// Checks the config, including dimensions that depend on each other.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        match self {
            AlgorithmConfig::Mae(c) => c.validate(),
        }
    }

    /// Builds the algorithm with seed 0; call [`AlgorithmConfig::validate`] first.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Algorithm<B> {
        self.init_seeded(device, 0)
    }

    /// Builds the algorithm with initial weights drawn from `seed`
    /// (independent of the backend and of anything else running).
    pub fn init_seeded<B: Backend>(&self, device: &B::Device, seed: u64) -> Algorithm<B> {
        let mut rng = selfsup_layers::init::InitRng::new(seed);
        match self {
            AlgorithmConfig::Mae(c) => Algorithm::Mae(c.init(device, &mut rng)),
        }
    }

    /// The data preprocessor config.
    pub fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        match self {
            AlgorithmConfig::Mae(c) => &c.data_preprocessor,
        }
    }

    /// Number of views a batch must have.
    pub fn num_views(&self) -> usize {
        match self {
            AlgorithmConfig::Mae(_) => 1,
        }
    }

    /// The square input size the model expects, when it fixes one.
    pub fn input_size(&self) -> Option<usize> {
        match self {
            AlgorithmConfig::Mae(c) => Some(c.backbone.get().img_size),
        }
    }
}

/// Any algorithm, chosen from a config. Checkpoint keys are the inner
/// algorithm's (`backbone.*`, `neck.*`): the variant name never appears.
#[derive(Module, Debug)]
pub enum Algorithm<B: Backend> {
    /// Masked autoencoder.
    Mae(Mae<B>),
}

/// Global per-image features for downstream tools (extraction, kNN).
#[derive(Debug, Clone)]
pub struct Features<B: Backend> {
    /// `[batch, dims]`: the cls token for ViTs.
    pub global: Tensor<B, 2>,
}

/// The `predict` output of any algorithm.
#[derive(Debug, Clone)]
pub enum AnyPrediction<B: Backend> {
    /// MAE's reconstruction and mask.
    Mae(crate::MaePrediction<B>),
}

/// The step state of any algorithm.
#[derive(Debug)]
pub enum AnyStepState {
    /// MAE keeps none.
    Mae(()),
}

impl<B: Backend> Algorithm<B> {
    /// The data preprocessor config.
    pub fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        match self {
            Algorithm::Mae(m) => m.data_preprocessor(),
        }
    }

    /// Global features (the cls token after the final norm for ViTs).
    pub fn global_features(&self, inputs: &SelfSupInputs<B>) -> Result<Features<B>, ModelError> {
        match self {
            Algorithm::Mae(m) => Ok(Features { global: m.extract_feat(inputs)?.cls_token }),
        }
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for Algorithm<B> {
    type Features = Features<B>;
    type Prediction = AnyPrediction<B>;
    type StepState = AnyStepState;

    fn name(&self) -> &'static str {
        match self {
            Algorithm::Mae(m) => m.name(),
        }
    }

    fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<Features<B>, ModelError> {
        self.global_features(inputs)
    }

    fn loss(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<(LossOutput<B>, AnyStepState), ModelError> {
        match self {
            Algorithm::Mae(m) => m.loss(inputs, draws).map(|(l, s)| (l, AnyStepState::Mae(s))),
        }
    }

    fn predict(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<AnyPrediction<B>, ModelError> {
        match self {
            Algorithm::Mae(m) => m.predict(inputs, draws).map(AnyPrediction::Mae),
        }
    }

    fn after_step(self, state: AnyStepState, ctx: &StepContext) -> Self {
        match (self, state) {
            (Algorithm::Mae(m), AnyStepState::Mae(s)) => Algorithm::Mae(m.after_step(s, ctx)),
        }
    }
}
