//! Port of `mmselfsup.models.algorithms.RelativeLoc` (`relative_loc.py`):
//! predicting where one of the eight neighbouring patches sits relative to
//! the centre patch.
//!
//! The pipeline's `RandomPatchWithLabels` cuts each image into a 3×3 grid
//! of jittered patches with `patch_label = [0..8]`;
//! `RelativeLocDataPreprocessor` stacks the eight neighbours (`[8n, c, h,
//! w]`) and the centre repeated eight times. Each goes through the backbone
//! on its own (two BatchNorm passes per step, as in MMSelfSup); the
//! concatenated maps go through `RelativeLocNeck` and an 8-way `ClsHead`.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs};
use selfsup_heads::ClsHead;
use selfsup_layers::init::InitRng;
use selfsup_necks::{RelativeLocNeck, RelativeLocNeckConfig};
use serde::{Deserialize, Serialize};

use crate::{
    common::{backbone_spec, check_common, pseudo_labels, Backbone, BackboneOut, ContrastiveBackboneConfig},
    rotation_pred::{check_label_count, ClsHeadRegistry},
    AlgorithmSpec, ConfigIssue, InitCfg,
};

selfsup_config::registry! {
    /// A `RelativeLocNeck` dict.
    #[derive(Debug, Clone, PartialEq)]
    pub enum RelativeLocNeckRegistry {
        /// fc-bn-relu-dropout over a pair of patches.
        "RelativeLocNeck" => RelativeLocNeck(RelativeLocNeckConfig),
    }
}

/// `model = dict(type='RelativeLoc', backbone, neck, head)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelativeLocConfig {
    /// The data preprocessor (`RelativeLocDataPreprocessor`).
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// The backbone (a ResNet).
    pub backbone: ContrastiveBackboneConfig,
    /// The pair's projection.
    pub neck: RelativeLocNeckRegistry,
    /// The 8-way classifier.
    pub head: ClsHeadRegistry,
    /// MMEngine `init_cfg` (the components' own initialisation is built).
    #[serde(default)]
    pub init_cfg: InitCfg,
}

impl AlgorithmSpec for RelativeLocConfig {
    type Model<B: Backend> = RelativeLoc<B>;

    backbone_spec!();

    /// The centre patch and its eight neighbours.
    fn num_views(&self) -> usize {
        9
    }

    fn validate(&self) -> Result<(), ConfigIssue> {
        check_common(&self.data_preprocessor, &self.backbone)?;
        if self.backbone.is_vit() {
            return Err(ConfigIssue::new("backbone.type", "RelativeLoc takes a ResNet"));
        }
        let RelativeLocNeckRegistry::RelativeLocNeck(neck) = &self.neck;
        neck.validate().map_err(|(k, m)| ConfigIssue::new(format!("neck.{k}"), m))?;
        if neck.in_channels != self.backbone.feat_dim() {
            return Err(ConfigIssue::new(
                "neck.in_channels",
                format!("{} does not match the backbone's {} channels", neck.in_channels, self.backbone.feat_dim()),
            ));
        }
        self.head.validate("head")?;
        if self.head.get().in_channels != neck.out_channels {
            return Err(ConfigIssue::new("head.in_channels", format!("must be neck.out_channels ({})", neck.out_channels)));
        }
        Ok(())
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> RelativeLoc<B> {
        let RelativeLocNeckRegistry::RelativeLocNeck(neck) = &self.neck;
        RelativeLoc {
            backbone: self.backbone.init(device, rng),
            neck: neck.init(device, rng),
            head: self.head.get().init(device, rng),
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }
}

/// RelativeLoc: the backbone on neighbours and centres, the pair's neck,
/// the location classifier.
#[derive(Module, Debug)]
pub struct RelativeLoc<B: Backend> {
    /// Backbone.
    pub backbone: Backbone<B>,
    /// `RelativeLocNeck` (`fc`, `bn`).
    pub neck: RelativeLocNeck<B>,
    /// `ClsHead` (`fc_cls`).
    pub head: ClsHead<B>,
    #[module(skip)]
    data_preprocessor: DataPreprocessorConfig,
}

impl<B: Backend> RelativeLoc<B> {
    /// The neck's output for the stacked pairs: `[8n, out]`.
    fn pairs(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<Tensor<B, 2>, ModelError> {
        let [neighbours, centres] = inputs.views.as_slice() else {
            return Err(ModelError::Views { algorithm: "RelativeLoc", expected: 2, got: inputs.views.len() });
        };
        let x1 = self.backbone.forward(neighbours.clone())?.map();
        let x2 = self.backbone.forward(centres.clone())?.map();
        Ok(self.neck.forward(Tensor::cat(vec![x1, x2], 1), draws))
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for RelativeLoc<B> {
    type Features = BackboneOut<B>;
    /// The location scores of every pair, `[8n, 8]` (sample-major).
    type Prediction = Tensor<B, 2>;
    type StepState = ();

    fn name(&self) -> &'static str {
        "RelativeLoc"
    }

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<BackboneOut<B>, ModelError> {
        self.backbone.forward(inputs.first_view("RelativeLoc")?.clone())
    }

    fn global_features(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        Ok(self.extract_feat(inputs)?.global())
    }

    fn loss(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<(LossOutput<B>, ()), ModelError> {
        let x = self.pairs(inputs, draws)?;
        let labels = pseudo_labels(inputs, "patch_label", "RelativeLoc", "RandomPatchWithLabels", &x.device())?;
        check_label_count("RelativeLoc", "patch_label", labels.dims()[0], x.dims()[0])?;
        let [n, c] = x.dims();
        Ok((LossOutput::new().with("loss", self.head.forward(x.reshape([n, c, 1, 1]), labels)), ()))
    }

    fn predict(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<Tensor<B, 2>, ModelError> {
        let x = self.pairs(inputs, draws)?;
        let [n, c] = x.dims();
        Ok(self.head.logits(x.reshape([n, c, 1, 1])))
    }
}
