//! Port of `mmselfsup.models.algorithms.RotationPred` (`rotation_pred.py`):
//! predicting which of four rotations an image was given.
//!
//! The pipeline's `RotationWithLabels` turns each image into its four
//! rotations (0°, 90°, 180°, 270°, clockwise) with `rot_label = [0, 1, 2, 3]`;
//! `RotationPredDataPreprocessor` stacks them sample-major into one
//! `[4n, c, h, w]` view; a `ClsHead` with 4 classes scores the backbone's
//! last map.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs};
use selfsup_heads::{ClsHead, ClsHeadConfig};
use selfsup_layers::init::InitRng;
use serde::{Deserialize, Serialize};

use crate::{
    common::{backbone_spec, check_common, pseudo_labels, Backbone, BackboneOut, ContrastiveBackboneConfig},
    AlgorithmSpec, ConfigIssue, InitCfg,
};

selfsup_config::registry! {
    /// A `ClsHead` dict.
    #[derive(Debug, Clone, PartialEq)]
    pub enum ClsHeadRegistry {
        /// One linear classifier and its cross entropy.
        "ClsHead" => ClsHead(ClsHeadConfig),
    }
}

impl ClsHeadRegistry {
    /// The inner config.
    pub fn get(&self) -> &ClsHeadConfig {
        let Self::ClsHead(c) = self;
        c
    }

    /// Checks the head, with key paths under `key`.
    pub fn validate(&self, key: &str) -> Result<(), ConfigIssue> {
        self.get().validate().map_err(|(k, m)| ConfigIssue::new(format!("{key}.{k}"), m))
    }
}

/// `model = dict(type='RotationPred', backbone, head)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationPredConfig {
    /// The data preprocessor (`RotationPredDataPreprocessor`).
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// The backbone (a ResNet).
    pub backbone: ContrastiveBackboneConfig,
    /// The 4-way classifier.
    pub head: ClsHeadRegistry,
    /// MMEngine `init_cfg` (the components' own initialisation is built).
    #[serde(default)]
    pub init_cfg: InitCfg,
}

impl AlgorithmSpec for RotationPredConfig {
    type Model<B: Backend> = RotationPred<B>;

    backbone_spec!();

    /// The four rotations `RotationWithLabels` makes of each image.
    fn num_views(&self) -> usize {
        4
    }

    fn validate(&self) -> Result<(), ConfigIssue> {
        check_common(&self.data_preprocessor, &self.backbone)?;
        if self.backbone.is_vit() {
            return Err(ConfigIssue::new("backbone.type", "RotationPred takes a ResNet"));
        }
        self.head.validate("head")?;
        let head = self.head.get();
        if head.in_channels != self.backbone.feat_dim() {
            return Err(ConfigIssue::new(
                "head.in_channels",
                format!("{} does not match the backbone's {} channels", head.in_channels, self.backbone.feat_dim()),
            ));
        }
        Ok(())
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> RotationPred<B> {
        RotationPred {
            backbone: self.backbone.init(device, rng),
            head: self.head.get().init(device, rng),
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }
}

/// RotationPred: backbone, then the rotation classifier.
#[derive(Module, Debug)]
pub struct RotationPred<B: Backend> {
    /// Backbone.
    pub backbone: Backbone<B>,
    /// `ClsHead` (`fc_cls`).
    pub head: ClsHead<B>,
    #[module(skip)]
    data_preprocessor: DataPreprocessorConfig,
}

impl<B: Backend> SelfSupAlgorithm<B> for RotationPred<B> {
    type Features = BackboneOut<B>;
    /// The rotation scores of every view, `[4n, 4]` (sample-major).
    type Prediction = Tensor<B, 2>;
    type StepState = ();

    fn name(&self) -> &'static str {
        "RotationPred"
    }

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<BackboneOut<B>, ModelError> {
        self.backbone.forward(inputs.first_view("RotationPred")?.clone())
    }

    fn global_features(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        Ok(self.extract_feat(inputs)?.global())
    }

    fn loss(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<(LossOutput<B>, ()), ModelError> {
        let x = self.extract_feat(inputs)?.map();
        let labels = pseudo_labels(inputs, "rot_label", "RotationPred", "RotationWithLabels", &x.device())?;
        check_label_count("RotationPred", "rot_label", labels.dims()[0], x.dims()[0])?;
        Ok((LossOutput::new().with("loss", self.head.forward(x, labels)), ()))
    }

    fn predict(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<Tensor<B, 2>, ModelError> {
        Ok(self.head.logits(self.extract_feat(inputs)?.map()))
    }
}

/// One label per row of the stacked views.
pub(crate) fn check_label_count(algorithm: &'static str, field: &str, labels: usize, rows: usize) -> Result<(), ModelError> {
    if labels == rows {
        return Ok(());
    }
    Err(ModelError::DataSample {
        algorithm,
        field: field.to_string(),
        message: format!("{labels} labels for {rows} stacked views; the pipeline and the data preprocessor must agree"),
    })
}
