//! Port of `mmselfsup.models.algorithms.MILAN` (mmselfsup 1.0.0): a frozen
//! CLIP image tower (`CLIPGenerator`) gives every token's feature and its
//! last layer's attention; `MILANViT` keeps the patches drawn in proportion
//! to the cls token's attention to them, `MILANPretrainDecoder`'s prompt
//! layers predict every token's CLIP feature (the cls token's included),
//! and `MILANPretrainHead` scores them with `2 − 2·cos` averaged over every
//! token.
//!
//! The parts MILAN and EVA share live here: the head and target-generator
//! registries, the CLIP checks and [`ClipTargetPrediction`].
use burn::{
    module::Module,
    tensor::{backend::Backend, Int, Tensor},
};
use selfsup_backbones::{MaeVit, MilanVitConfig, VitFeatures};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs};
use selfsup_heads::{MilanPretrainHead, MilanPretrainHeadConfig};
use selfsup_layers::init::InitRng;
use selfsup_necks::{MilanPretrainDecoder, MilanPretrainDecoderConfig};
use selfsup_target_generators::{ClipGenerator, ClipGeneratorConfig};
use serde::{Deserialize, Serialize};

use crate::{AlgorithmSpec, ConfigIssue, InitCfg, LoadPretrained};

/// `model = dict(type='MILAN', ...)`: MMSelfSup's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MilanConfig {
    /// The data preprocessor (mean/std, channel order).
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// `dict(type='MILANViT', ...)`.
    pub backbone: MilanBackboneConfig,
    /// `dict(type='MILANPretrainDecoder', ...)`.
    pub neck: MilanNeckConfig,
    /// `dict(type='MILANPretrainHead', loss=...)`.
    pub head: ClipHeadConfig,
    /// `dict(type='CLIPGenerator', tokenizer_path=...)`.
    pub target_generator: ClipTargetConfig,
    /// MMEngine `init_cfg` (accepted, not interpreted).
    #[serde(default)]
    pub init_cfg: InitCfg,
}

selfsup_config::registry! {
    /// MILAN's backbone.
    #[derive(Debug, Clone, PartialEq)]
    pub enum MilanBackboneConfig {
        /// MMSelfSup's `MILANViT` (MAEViT's arguments).
        "MILANViT" => MilanVit(MilanVitConfig),
    }
}

selfsup_config::registry! {
    /// MILAN's neck.
    #[derive(Debug, Clone, PartialEq)]
    pub enum MilanNeckConfig {
        /// MMSelfSup's `MILANPretrainDecoder`.
        "MILANPretrainDecoder" => MilanPretrainDecoder(MilanPretrainDecoderConfig),
    }
}

selfsup_config::registry! {
    /// MILAN's and EVA's head.
    #[derive(Debug, Clone, PartialEq)]
    pub enum ClipHeadConfig {
        /// MMSelfSup's `MILANPretrainHead`.
        "MILANPretrainHead" => MilanPretrainHead(MilanPretrainHeadConfig),
    }
}

selfsup_config::registry! {
    /// MILAN's and EVA's target generator.
    #[derive(Debug, Clone, PartialEq)]
    pub enum ClipTargetConfig {
        /// MMSelfSup's `CLIPGenerator`.
        "CLIPGenerator" => Clip(ClipGeneratorConfig),
    }
}

impl ClipHeadConfig {
    /// The inner config.
    pub fn get(&self) -> &MilanPretrainHeadConfig {
        let Self::MilanPretrainHead(c) = self;
        c
    }
}

impl ClipTargetConfig {
    /// The inner config.
    pub fn get(&self) -> &ClipGeneratorConfig {
        let Self::Clip(c) = self;
        c
    }

    /// Checks the CLIP config and that it reads the backbone's images on
    /// the backbone's patch grid (MILAN's importance and EVA's targets are
    /// per patch) and gives `feature_dim`-wide features.
    pub fn validate_for(&self, img_size: usize, patch_size: usize, feature_dim: usize, feature_key: &str) -> Result<(), ConfigIssue> {
        let clip = self.get();
        clip.validate().map_err(|(key, msg)| ConfigIssue::new(format!("target_generator.{key}"), msg))?;
        if clip.img_size() != img_size || clip.arch.vision_patch_size != patch_size {
            return Err(ConfigIssue::new(
                "target_generator.arch",
                format!(
                    "CLIP reads {}-pixel images in {}-pixel patches, the backbone {img_size}-pixel images in {patch_size}-pixel patches; they must agree",
                    clip.img_size(),
                    clip.arch.vision_patch_size
                ),
            ));
        }
        if clip.out_dim() != feature_dim {
            return Err(ConfigIssue::new(feature_key, format!("{feature_dim} does not match CLIP's feature width {}", clip.out_dim())));
        }
        Ok(())
    }
}

impl MilanConfig {
    fn backbone(&self) -> &MilanVitConfig {
        let MilanBackboneConfig::MilanVit(c) = &self.backbone;
        c
    }

    fn neck(&self) -> &MilanPretrainDecoderConfig {
        let MilanNeckConfig::MilanPretrainDecoder(c) = &self.neck;
        c
    }
}

/// The checks MAE makes between an MAE-style encoder and its decoder:
/// widths, patch counts, patch sizes and channels.
pub(crate) fn check_decoder_fits(
    backbone: &MilanVitConfig,
    embed_dims: usize,
    neck: (usize, usize, usize, usize),
) -> Result<(), ConfigIssue> {
    let (embed_dim, num_patches, patch_size, in_chans) = neck;
    if embed_dim != embed_dims {
        return Err(ConfigIssue::new("neck.embed_dim", format!("{embed_dim} does not match the backbone's embed_dims {embed_dims}")));
    }
    let patches = backbone.grid() * backbone.grid();
    if num_patches != patches {
        return Err(ConfigIssue::new(
            "neck.num_patches",
            format!(
                "{num_patches} does not match the backbone's {patches} patches (img_size {} / patch_size {})",
                backbone.img_size, backbone.patch_size
            ),
        ));
    }
    if patch_size != backbone.patch_size {
        return Err(ConfigIssue::new("neck.patch_size", format!("{patch_size} does not match backbone.patch_size {}", backbone.patch_size)));
    }
    if in_chans != backbone.in_channels {
        return Err(ConfigIssue::new("neck.in_chans", format!("{in_chans} does not match backbone.in_channels {}", backbone.in_channels)));
    }
    Ok(())
}

impl AlgorithmSpec for MilanConfig {
    type Model<B: Backend> = Milan<B>;

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    fn num_views(&self) -> usize {
        1
    }

    fn input_size(&self) -> Option<usize> {
        Some(self.backbone().img_size)
    }

    fn has_vit_backbone(&self) -> bool {
        true
    }

    /// Checks every part and how they fit: the decoder on the encoder (as
    /// MAE's), CLIP on the encoder's images and patches, the prediction's
    /// width on CLIP's features.
    fn validate(&self) -> Result<(), ConfigIssue> {
        let issue = |prefix: &str, (key, msg): (&str, String)| ConfigIssue::new(format!("{prefix}.{key}"), msg);
        self.data_preprocessor.validate().map_err(|e| issue("data_preprocessor", e))?;
        let backbone = self.backbone();
        let neck = self.neck();
        let spec = backbone.validate().map_err(|e| issue("backbone", e))?;
        neck.validate().map_err(|e| issue("neck", e))?;
        check_decoder_fits(backbone, spec.embed_dims, (neck.embed_dim, neck.num_patches, neck.patch_size, neck.in_chans))?;
        self.target_generator.validate_for(backbone.img_size, backbone.patch_size, neck.predict_feature_dim, "neck.predict_feature_dim")
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> Milan<B> {
        Milan {
            backbone: self.backbone().init(device, rng),
            neck: self.neck().init(device, rng),
            target_generator: self.target_generator.get().init(device, rng),
            head: self.head.get().init(),
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }

    /// Loads the CLIP checkpoint `tokenizer_path` names (OpenAI's layout).
    fn load_pretrained<B: Backend>(&self, mut model: Milan<B>) -> Result<Milan<B>, ConfigIssue> {
        model.target_generator = self.target_generator.get().load_pretrained(model.target_generator)?;
        Ok(model)
    }
}

/// MILAN: `MILANViT` + `MILANPretrainDecoder` + `MILANPretrainHead`, with
/// a frozen CLIP. Keys `backbone.*`, `neck.*`, `target_generator.tokenizer.*`,
/// as MMSelfSup's `state_dict`.
#[derive(Module, Debug)]
pub struct Milan<B: Backend> {
    /// The ViT encoder (MAEViT's module).
    pub backbone: MaeVit<B>,
    /// The prompt decoder.
    pub neck: MilanPretrainDecoder<B>,
    /// The frozen CLIP.
    pub target_generator: ClipGenerator<B>,
    /// The head and its loss (no parameters).
    #[module(skip)]
    pub head: MilanPretrainHead,
    /// The data preprocessor (no parameters).
    #[module(skip)]
    pub data_preprocessor: DataPreprocessorConfig,
}

/// MILAN's and EVA's `predict` output: the predicted and the CLIP features
/// of the tokens the loss compares, and the mask.
#[derive(Debug, Clone)]
pub struct ClipTargetPrediction<B: Backend> {
    /// The decoder's prediction: MILAN `[batch, 1 + L, d]` (cls first),
    /// EVA `[batch, L, d]`.
    pub pred: Tensor<B, 3>,
    /// CLIP's features of the same tokens.
    pub target: Tensor<B, 3>,
    /// `[batch, L]`, 1 for removed patches.
    pub mask: Tensor<B, 2>,
}

/// MILAN's forward up to the loss, for the tests and `predict`.
#[derive(Debug, Clone)]
pub struct MilanForward<B: Backend> {
    /// CLIP's features `[batch, 1 + L, d]`.
    pub clip_feature: Tensor<B, 3>,
    /// CLIP's last-layer attention of the cls token to each patch `[batch, L]`.
    pub importance: Tensor<B, 2>,
    /// The encoder's output `[batch, 1 + kept, embed_dims]`.
    pub latent: Tensor<B, 3>,
    /// `[batch, L]`, the rank of each patch in the sampled order.
    pub ids_restore: Tensor<B, 2, Int>,
    /// The decoder's prediction `[batch, 1 + L, d]`.
    pub pred: Tensor<B, 3>,
}

impl<B: Backend> Milan<B> {
    fn image(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 4>, ModelError> {
        Ok(inputs.expect_views("MILAN", 1)?[0].clone())
    }

    /// CLIP's targets and importance, the attention-masked encoder and the
    /// decoder, as `MILAN.loss` runs them. The sampled order of the patches
    /// is the draw `"mask_multinomial"`.
    pub fn forward_parts(&self, img: Tensor<B, 4>, draws: &mut Draws) -> Result<MilanForward<B>, ModelError> {
        let clip = self.target_generator.forward(img.clone());
        let (clip_feature, attention) = (clip.features, clip.attention);
        let [n, l1, _] = attention.dims();
        let importance = attention.slice([0..n, 0..1, 1..l1]).reshape([n, l1 - 1]);
        let enc = self.backbone.forward_attention_masked(img, importance.clone(), draws)?;
        let pred = self.neck.forward(enc.latent.clone(), enc.ids_restore.clone(), enc.ids_keep, enc.ids_dump);
        Ok(MilanForward { clip_feature, importance, latent: enc.latent, ids_restore: enc.ids_restore, pred })
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for Milan<B> {
    type Features = VitFeatures<B>;
    type Prediction = ClipTargetPrediction<B>;
    type StepState = ();

    fn name(&self) -> &'static str {
        "MILAN"
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
        let f = self.forward_parts(self.image(inputs)?, draws)?;
        Ok((LossOutput::new().with("loss", self.head.forward(f.pred, f.clip_feature, None)), ()))
    }

    /// Every token's predicted and CLIP feature, and which patches the
    /// encoder did not see.
    fn predict(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<ClipTargetPrediction<B>, ModelError> {
        let f = self.forward_parts(self.image(inputs)?, draws)?;
        let len_keep = f.latent.dims()[1] - 1;
        let mask = f.ids_restore.greater_equal_elem(len_keep as i64).float();
        Ok(ClipTargetPrediction { pred: f.pred, target: f.clip_feature, mask })
    }
}
