//! Port of `mmselfsup.models.algorithms.EVA` (mmselfsup 1.0.0), MAE-style:
//! MAE's encoder (`MAEViT`, random masking) and decoder
//! (`MAEPretrainDecoder` with `predict_feature_dim`) predict, for the
//! masked patches, the features of a frozen CLIP image tower
//! (`CLIPGenerator`), scored by `MILANPretrainHead` (`2 − 2·cos` averaged
//! over the masked patches).
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_backbones::{MaeVit, VitFeatures};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs};
use selfsup_heads::MilanPretrainHead;
use selfsup_layers::init::InitRng;
use selfsup_necks::MaePretrainDecoder;
use selfsup_target_generators::ClipGenerator;
use serde::{Deserialize, Serialize};

use crate::{
    mae::{MaeBackboneConfig, MaeNeckConfig},
    milan::{check_decoder_fits, ClipHeadConfig, ClipTargetConfig, ClipTargetPrediction},
    AlgorithmSpec, ConfigIssue, InitCfg, LoadPretrained,
};

/// `model = dict(type='EVA', ...)`: MMSelfSup's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaConfig {
    /// The data preprocessor (mean/std, channel order).
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// `dict(type='MAEViT', ...)`.
    pub backbone: MaeBackboneConfig,
    /// `dict(type='MAEPretrainDecoder', predict_feature_dim=..., ...)`.
    pub neck: MaeNeckConfig,
    /// `dict(type='MILANPretrainHead', loss=...)`.
    pub head: ClipHeadConfig,
    /// `dict(type='CLIPGenerator', tokenizer_path=...)`.
    pub target_generator: ClipTargetConfig,
    /// MMEngine `init_cfg` (accepted, not interpreted).
    #[serde(default)]
    pub init_cfg: InitCfg,
}

impl AlgorithmSpec for EvaConfig {
    type Model<B: Backend> = Eva<B>;

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

    /// Checks every part and how they fit: the decoder on the encoder (as
    /// MAE's), CLIP on the encoder's images and patches, and
    /// `neck.predict_feature_dim` (required) on CLIP's feature width.
    fn validate(&self) -> Result<(), ConfigIssue> {
        let issue = |prefix: &str, (key, msg): (&str, String)| ConfigIssue::new(format!("{prefix}.{key}"), msg);
        self.data_preprocessor.validate().map_err(|e| issue("data_preprocessor", e))?;
        let backbone = self.backbone.get();
        let neck = self.neck.get();
        let spec = backbone.validate().map_err(|e| issue("backbone", e))?;
        neck.validate().map_err(|e| issue("neck", e))?;
        check_decoder_fits(backbone, spec.embed_dims, (neck.embed_dim, neck.num_patches, neck.patch_size, neck.in_chans))?;
        let Some(dim) = neck.predict_feature_dim else {
            return Err(ConfigIssue::new("neck.predict_feature_dim", "EVA predicts CLIP features: set it to CLIP's feature width"));
        };
        self.target_generator.validate_for(backbone.img_size, backbone.patch_size, dim, "neck.predict_feature_dim")
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> Eva<B> {
        Eva {
            backbone: self.backbone.get().init(device, rng),
            neck: self.neck.get().init(device, rng),
            target_generator: self.target_generator.get().init(device, rng),
            head: self.head.get().init(),
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }

    /// Loads the CLIP checkpoint `tokenizer_path` names (OpenAI's layout).
    fn load_pretrained<B: Backend>(&self, mut model: Eva<B>) -> Result<Eva<B>, ConfigIssue> {
        model.target_generator = self.target_generator.get().load_pretrained(model.target_generator)?;
        Ok(model)
    }
}

/// EVA: `MAEViT` + `MAEPretrainDecoder` + `MILANPretrainHead`, with a
/// frozen CLIP. Keys `backbone.*`, `neck.*`, `target_generator.tokenizer.*`,
/// as MMSelfSup's `state_dict`.
#[derive(Module, Debug)]
pub struct Eva<B: Backend> {
    /// The ViT encoder.
    pub backbone: MaeVit<B>,
    /// The decoder, predicting CLIP features.
    pub neck: MaePretrainDecoder<B>,
    /// The frozen CLIP.
    pub target_generator: ClipGenerator<B>,
    /// The head and its loss (no parameters).
    #[module(skip)]
    pub head: MilanPretrainHead,
    /// The data preprocessor (no parameters).
    #[module(skip)]
    pub data_preprocessor: DataPreprocessorConfig,
}

impl<B: Backend> Eva<B> {
    fn image(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 4>, ModelError> {
        Ok(inputs.expect_views("EVA", 1)?[0].clone())
    }

    /// The prediction, CLIP's patch features and the mask, as `EVA.loss`
    /// computes them (masking noise: the draw `"mask_noise"`).
    pub fn forward_parts(&self, img: Tensor<B, 4>, draws: &mut Draws) -> Result<ClipTargetPrediction<B>, ModelError> {
        let clip_feature = self.target_generator.forward(img.clone()).features;
        let enc = self.backbone.forward_masked(img, draws)?;
        let pred = self.neck.forward(enc.latent, enc.ids_restore);
        let [n, l1, d] = clip_feature.dims();
        Ok(ClipTargetPrediction { pred, target: clip_feature.slice([0..n, 1..l1, 0..d]), mask: enc.mask })
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for Eva<B> {
    type Features = VitFeatures<B>;
    type Prediction = ClipTargetPrediction<B>;
    type StepState = ();

    fn name(&self) -> &'static str {
        "EVA"
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
        let p = self.forward_parts(self.image(inputs)?, draws)?;
        Ok((LossOutput::new().with("loss", self.head.forward(p.pred, p.target, Some(p.mask))), ()))
    }

    /// The masked patches' predicted and CLIP features (every patch's, with
    /// the mask).
    fn predict(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<ClipTargetPrediction<B>, ModelError> {
        self.forward_parts(self.image(inputs)?, draws)
    }
}
