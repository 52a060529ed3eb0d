//! Port of `mmselfsup.models.algorithms.PixMIM` (mmselfsup 1.0.0): MAE
//! whose reconstruction target is the image's low-frequency part
//! (`LowFreqTargetGenerator`) instead of the image.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_backbones::{MaeVit, VitFeatures};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs};
use selfsup_heads::MaePretrainHead;
use selfsup_layers::init::InitRng;
use selfsup_necks::MaePretrainDecoder;
use selfsup_target_generators::{LowFreqTargetGenerator, LowFreqTargetGeneratorConfig};
use serde::{Deserialize, Serialize};

use crate::{
    mae::{mae_prediction, MaeBackboneConfig, MaeHeadConfig, MaeNeckConfig},
    AlgorithmSpec, ConfigIssue, InitCfg, MaeConfig, MaePrediction,
};

/// `model = dict(type='PixMIM', ...)`: MAE's fields plus the target
/// generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PixMimConfig {
    /// The data preprocessor.
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// `dict(type='MAEViT', ...)`.
    #[serde(default = "default_backbone")]
    pub backbone: MaeBackboneConfig,
    /// `dict(type='MAEPretrainDecoder', ...)`.
    #[serde(default = "default_neck")]
    pub neck: MaeNeckConfig,
    /// `dict(type='MAEPretrainHead', ...)`.
    #[serde(default = "default_head")]
    pub head: MaeHeadConfig,
    /// `dict(type='LowFreqTargetGenerator', radius, img_size)`.
    pub target_generator: PixMimTargetConfig,
    /// MMEngine `init_cfg` (accepted, not interpreted).
    #[serde(default)]
    pub init_cfg: InitCfg,
}

fn default_backbone() -> MaeBackboneConfig {
    MaeConfig::default().backbone
}
fn default_neck() -> MaeNeckConfig {
    MaeConfig::default().neck
}
fn default_head() -> MaeHeadConfig {
    MaeConfig::default().head
}

selfsup_config::registry! {
    /// PixMIM's target generator.
    #[derive(Debug, Clone, PartialEq)]
    pub enum PixMimTargetConfig {
        /// MMSelfSup's `LowFreqTargetGenerator`.
        "LowFreqTargetGenerator" => LowFreqTargetGenerator(LowFreqTargetGeneratorConfig),
    }
}

impl PixMimConfig {
    /// The MAE part of the config.
    pub fn mae(&self) -> MaeConfig {
        MaeConfig {
            data_preprocessor: self.data_preprocessor.clone(),
            backbone: self.backbone.clone(),
            neck: self.neck.clone(),
            head: self.head.clone(),
            init_cfg: self.init_cfg.clone(),
        }
    }

    fn target(&self) -> &LowFreqTargetGeneratorConfig {
        let PixMimTargetConfig::LowFreqTargetGenerator(t) = &self.target_generator;
        t
    }
}

impl AlgorithmSpec for PixMimConfig {
    type Model<B: Backend> = PixMim<B>;

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    fn num_views(&self) -> usize {
        1
    }

    fn input_size(&self) -> Option<usize> {
        Some(self.backbone.get().img_size)
    }

    fn has_vit_backbone(&self) -> bool {
        true
    }

    /// MAE's checks, and the filter's size against the backbone's input.
    fn validate(&self) -> Result<(), ConfigIssue> {
        self.mae().validate()?;
        let target = self.target();
        target.validate().map_err(|(key, msg)| ConfigIssue::new(format!("target_generator.{key}"), msg))?;
        let size = self.backbone.get().img_size;
        if target.img_size.hw() != [size, size] {
            return Err(ConfigIssue::new(
                "target_generator.img_size",
                format!("{:?} does not match the backbone's img_size {size}", target.img_size.hw()),
            ));
        }
        Ok(())
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> PixMim<B> {
        PixMim {
            backbone: self.backbone.get().init(device, rng),
            neck: self.neck.get().init(device, rng),
            target_generator: self.target().init(device),
            head: self.head.get().init(),
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }
}

/// PixMIM: MAE's encoder, decoder and head, with a low-frequency target.
/// Keys `backbone.*`, `neck.*`, `target_generator.low_pass_filter`.
#[derive(Module, Debug)]
pub struct PixMim<B: Backend> {
    /// The ViT encoder.
    pub backbone: MaeVit<B>,
    /// The decoder.
    pub neck: MaePretrainDecoder<B>,
    /// The frozen low-pass filter.
    pub target_generator: LowFreqTargetGenerator<B>,
    /// The head and its loss (no parameters).
    #[module(skip)]
    pub head: MaePretrainHead,
    /// The data preprocessor (no parameters).
    #[module(skip)]
    pub data_preprocessor: DataPreprocessorConfig,
}

impl<B: Backend> PixMim<B> {
    fn image(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 4>, ModelError> {
        Ok(inputs.expect_views("PixMIM", 1)?[0].clone())
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for PixMim<B> {
    type Features = VitFeatures<B>;
    type Prediction = MaePrediction<B>;
    type StepState = ();

    fn name(&self) -> &'static str {
        "PixMIM"
    }

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    /// The backbone's features without masking, as MAE's.
    fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<VitFeatures<B>, ModelError> {
        self.backbone.forward(self.image(inputs)?)
    }

    fn global_features(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        Ok(self.extract_feat(inputs)?.cls_token)
    }

    fn loss(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<(LossOutput<B>, ()), ModelError> {
        let img = self.image(inputs)?;
        let target = self.target_generator.forward(img.clone());
        let enc = self.backbone.forward_masked(img, draws)?;
        let pred = self.neck.forward(enc.latent, enc.ids_restore);
        Ok((LossOutput::new().with("loss", self.head.forward(pred, target, enc.mask)), ()))
    }

    /// The reconstruction of the low-frequency target, de-normalised per
    /// patch with the target's statistics when `norm_pix`.
    fn predict(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<MaePrediction<B>, ModelError> {
        let img = self.image(inputs)?;
        let target = self.target_generator.forward(img.clone());
        let enc = self.backbone.forward_masked(img, draws)?;
        let pred = self.neck.forward(enc.latent, enc.ids_restore);
        Ok(mae_prediction(&self.head, target, pred, enc.mask))
    }
}
