//! Port of `mmselfsup.models.algorithms.MaskFeat` (mmselfsup 1.0.0):
//! `MaskFeatViT` on the image with the pipeline's mask, a `LinearNeck`
//! on every token, and `MaskFeatPretrainHead` against the
//! `HOGGenerator`'s histogram of the same (normalised) image.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_backbones::{MaskFeatVit, MaskFeatVitConfig, VitFeatures};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs};
use selfsup_heads::{MaskFeatPretrainHead, MaskFeatPretrainHeadConfig};
use selfsup_layers::init::InitRng;
use selfsup_necks::{LinearNeck, LinearNeckConfig};
use selfsup_target_generators::{HogGenerator, HogGeneratorConfig};
use serde::{Deserialize, Serialize};

use crate::{common::pipeline_mask, AlgorithmSpec, ConfigIssue, InitCfg};

/// `model = dict(type='MaskFeat', ...)`: MMSelfSup's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskFeatConfig {
    /// The data preprocessor.
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// `dict(type='MaskFeatViT', ...)`.
    pub backbone: MaskFeatBackboneConfig,
    /// `dict(type='LinearNeck', ..., with_avg_pool=False)`.
    pub neck: MaskFeatNeckConfig,
    /// `dict(type='MaskFeatPretrainHead', ...)`.
    pub head: MaskFeatHeadConfig,
    /// `dict(type='HOGGenerator', ...)`.
    pub target_generator: MaskFeatTargetConfig,
    /// MMEngine `init_cfg` (accepted, not interpreted).
    #[serde(default)]
    pub init_cfg: InitCfg,
}

selfsup_config::registry! {
    /// MaskFeat's backbone.
    #[derive(Debug, Clone, PartialEq)]
    pub enum MaskFeatBackboneConfig {
        /// MMSelfSup's `MaskFeatViT`.
        "MaskFeatViT" => MaskFeatVit(MaskFeatVitConfig),
    }
}

selfsup_config::registry! {
    /// MaskFeat's neck.
    #[derive(Debug, Clone, PartialEq)]
    pub enum MaskFeatNeckConfig {
        /// MMSelfSup's `LinearNeck` without pooling.
        "LinearNeck" => LinearNeck(LinearNeckConfig),
    }
}

selfsup_config::registry! {
    /// MaskFeat's head.
    #[derive(Debug, Clone, PartialEq)]
    pub enum MaskFeatHeadConfig {
        /// MMSelfSup's `MaskFeatPretrainHead`.
        "MaskFeatPretrainHead" => MaskFeatPretrainHead(MaskFeatPretrainHeadConfig),
    }
}

selfsup_config::registry! {
    /// MaskFeat's target generator.
    #[derive(Debug, Clone, PartialEq)]
    pub enum MaskFeatTargetConfig {
        /// MMSelfSup's `HOGGenerator`.
        "HOGGenerator" => HogGenerator(HogGeneratorConfig),
    }
}

impl MaskFeatConfig {
    fn parts(&self) -> (&MaskFeatVitConfig, &LinearNeckConfig, &MaskFeatPretrainHeadConfig, &HogGeneratorConfig) {
        let MaskFeatBackboneConfig::MaskFeatVit(b) = &self.backbone;
        let MaskFeatNeckConfig::LinearNeck(n) = &self.neck;
        let MaskFeatHeadConfig::MaskFeatPretrainHead(h) = &self.head;
        let MaskFeatTargetConfig::HogGenerator(t) = &self.target_generator;
        (b, n, h, t)
    }
}

impl AlgorithmSpec for MaskFeatConfig {
    type Model<B: Backend> = MaskFeat<B>;

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    fn num_views(&self) -> usize {
        1
    }

    fn input_size(&self) -> Option<usize> {
        Some(self.parts().0.img_size)
    }

    fn has_vit_backbone(&self) -> bool {
        true
    }

    /// Checks every part and how they fit: the HOG target's 14 × 14 tokens
    /// are the backbone's patches, and the neck maps the backbone's width to
    /// the HOG feature count.
    fn validate(&self) -> Result<(), ConfigIssue> {
        let issue = |prefix: &str, (key, msg): (&str, String)| ConfigIssue::new(format!("{prefix}.{key}"), msg);
        self.data_preprocessor.validate().map_err(|e| issue("data_preprocessor", e))?;
        let (backbone, neck, _, hog) = self.parts();
        let spec = backbone.validate().map_err(|e| issue("backbone", e))?;
        hog.validate().map_err(|e| issue("target_generator", e))?;
        let size = backbone.img_size;
        let features = hog.check_image([size, size]).map_err(|m| ConfigIssue::new("target_generator", m))?;
        if backbone.grid() != selfsup_target_generators::hog_generator::TOKENS_PER_SIDE {
            return Err(ConfigIssue::new(
                "backbone.patch_size",
                format!(
                    "the HOG target has 14x14 tokens but the backbone has {0}x{0} patches (img_size {size} / patch_size {1})",
                    backbone.grid(),
                    backbone.patch_size
                ),
            ));
        }
        if neck.with_avg_pool {
            return Err(ConfigIssue::new("neck.with_avg_pool", "MaskFeat projects every token; set False"));
        }
        if neck.in_channels != spec.embed_dims {
            return Err(ConfigIssue::new(
                "neck.in_channels",
                format!("{} does not match the backbone's embed_dims {}", neck.in_channels, spec.embed_dims),
            ));
        }
        if neck.out_channels != features {
            return Err(ConfigIssue::new(
                "neck.out_channels",
                format!("{} does not match the HOG target's {features} features per token", neck.out_channels),
            ));
        }
        Ok(())
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> MaskFeat<B> {
        let (backbone, neck, head, hog) = self.parts();
        MaskFeat {
            backbone: backbone.init(device, rng),
            neck: neck.init(device, rng),
            target_generator: hog.init(device),
            head: head.init(),
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }
}

/// MaskFeat. Keys `backbone.*`, `neck.fc.*`, `target_generator.*`, as
/// MMSelfSup's `state_dict`.
#[derive(Module, Debug)]
pub struct MaskFeat<B: Backend> {
    /// The ViT with a mask token.
    pub backbone: MaskFeatVit<B>,
    /// Per-token projection to the HOG features.
    pub neck: LinearNeck<B>,
    /// The frozen HOG generator.
    pub target_generator: HogGenerator<B>,
    /// The head and its loss (no parameters).
    #[module(skip)]
    pub head: MaskFeatPretrainHead,
    /// The data preprocessor (no parameters).
    #[module(skip)]
    pub data_preprocessor: DataPreprocessorConfig,
}

/// MaskFeat's `predict` output.
#[derive(Debug, Clone)]
pub struct MaskFeatPrediction<B: Backend> {
    /// The predicted HOG features of every patch, `[batch, L, c]`.
    pub pred: Tensor<B, 3>,
    /// The HOG target, `[batch, L, c]`.
    pub target: Tensor<B, 3>,
    /// The target's histogram `[batch, 3, nbins, cells, cells]`.
    pub histogram: Tensor<B, 5>,
    /// `[batch, g, g]`, 1 for masked patches.
    pub mask: Tensor<B, 3>,
}

impl<B: Backend> MaskFeat<B> {
    fn mask(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 3>, ModelError> {
        let g = self.backbone.grid();
        pipeline_mask(inputs, "MaskFeat", [g, g], "BEiTMaskGenerator")
    }

    /// The neck's prediction for every token, cls first: `[batch, 1 + L, c]`.
    pub fn predict_tokens(&self, img: Tensor<B, 4>, mask: Tensor<B, 3>) -> Result<Tensor<B, 3>, ModelError> {
        Ok(self.neck.forward_tokens(self.backbone.forward(img, mask)?))
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for MaskFeat<B> {
    type Features = VitFeatures<B>;
    type Prediction = MaskFeatPrediction<B>;
    type StepState = ();

    fn name(&self) -> &'static str {
        "MaskFeat"
    }

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    /// The backbone's features without masking (as mmpretrain's
    /// `extract_feat`; MMSelfSup 1.0.0 returned the neck's HOG prediction).
    fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<VitFeatures<B>, ModelError> {
        self.backbone.features(inputs.first_view("MaskFeat")?.clone())
    }

    fn global_features(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        Ok(self.extract_feat(inputs)?.cls_token)
    }

    fn loss(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<(LossOutput<B>, ()), ModelError> {
        let img = inputs.expect_views("MaskFeat", 1)?[0].clone();
        let mask = self.mask(inputs)?;
        let pred = self.predict_tokens(img.clone(), mask.clone())?;
        let hog = self.target_generator.forward(img);
        Ok((LossOutput::new().with("loss", self.head.forward(pred, hog, mask)), ()))
    }

    fn predict(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<MaskFeatPrediction<B>, ModelError> {
        let img = inputs.expect_views("MaskFeat", 1)?[0].clone();
        let mask = self.mask(inputs)?;
        let pred = self.predict_tokens(img.clone(), mask.clone())?;
        let [n, l1, c] = pred.dims();
        let histogram = self.target_generator.histogram(img);
        let target = selfsup_target_generators::hog_generator::tokens(histogram.clone());
        Ok(MaskFeatPrediction { pred: pred.slice([0..n, 1..l1, 0..c]), target, histogram, mask })
    }
}
