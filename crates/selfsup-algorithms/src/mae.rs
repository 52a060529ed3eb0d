//! Port of `mmselfsup.models.algorithms.MAE` (mmselfsup 1.0.0).
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_backbones::{MaeVit, MaeVitConfig, VitFeatures};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs};
use selfsup_heads::{MaePretrainHead, MaePretrainHeadConfig};
use selfsup_necks::{MaePretrainDecoder, MaePretrainDecoderConfig};
use serde::{Deserialize, Serialize};

use selfsup_layers::init::InitRng;

use crate::{AlgorithmSpec, ConfigIssue, InitCfg};

/// `model = dict(type='MAE', ...)`: MMSelfSup's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaeConfig {
    /// The data preprocessor (mean/std, channel order).
    pub data_preprocessor: DataPreprocessorConfig,
    /// `dict(type='MAEViT', ...)`.
    pub backbone: MaeBackboneConfig,
    /// `dict(type='MAEPretrainDecoder', ...)`.
    pub neck: MaeNeckConfig,
    /// `dict(type='MAEPretrainHead', ...)`.
    pub head: MaeHeadConfig,
    /// MMEngine `init_cfg` (Xavier Linear, constant LayerNorm in MMSelfSup's
    /// configs); that initialisation is what the components build anyway.
    pub init_cfg: InitCfg,
}

selfsup_config::registry! {
    /// MAE's backbone: `MAEViT`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum MaeBackboneConfig {
        /// MMSelfSup's `MAEViT`.
        "MAEViT" => MaeVit(MaeVitConfig),
    }
}

selfsup_config::registry! {
    /// MAE's neck: `MAEPretrainDecoder`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum MaeNeckConfig {
        /// MMSelfSup's `MAEPretrainDecoder`.
        "MAEPretrainDecoder" => MaePretrainDecoder(MaePretrainDecoderConfig),
    }
}

selfsup_config::registry! {
    /// MAE's head: `MAEPretrainHead`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum MaeHeadConfig {
        /// MMSelfSup's `MAEPretrainHead`.
        "MAEPretrainHead" => MaePretrainHead(MaePretrainHeadConfig),
    }
}

impl MaeBackboneConfig {
    /// The inner config.
    pub fn get(&self) -> &MaeVitConfig {
        let Self::MaeVit(c) = self;
        c
    }
}
impl MaeNeckConfig {
    /// The inner config.
    pub fn get(&self) -> &MaePretrainDecoderConfig {
        let Self::MaePretrainDecoder(c) = self;
        c
    }
}
impl MaeHeadConfig {
    /// The inner config.
    pub fn get(&self) -> &MaePretrainHeadConfig {
        let Self::MaePretrainHead(c) = self;
        c
    }
}

impl Default for MaeConfig {
    fn default() -> Self {
        Self {
            data_preprocessor: DataPreprocessorConfig::default(),
            backbone: MaeBackboneConfig::MaeVit(MaeVitConfig::default()),
            neck: MaeNeckConfig::MaePretrainDecoder(MaePretrainDecoderConfig::default()),
            head: MaeHeadConfig::MaePretrainHead(MaePretrainHeadConfig::default()),
            init_cfg: None,
        }
    }
}

impl AlgorithmSpec for MaeConfig {
    type Model<B: Backend> = Mae<B>;

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

    /// Checks every part and the dimensions that depend on each other
    /// (`neck.embed_dim == backbone.embed_dims`, patch sizes, patch counts).
    /// Errors carry the key path below `model`.
    fn validate(&self) -> Result<(), ConfigIssue> {
        let issue = |prefix: &str, (key, msg): (&str, String)| ConfigIssue::new(format!("{prefix}.{key}"), msg);
        self.data_preprocessor.validate().map_err(|e| issue("data_preprocessor", e))?;
        let backbone = self.backbone.get();
        let neck = self.neck.get();
        let head = self.head.get();
        let spec = backbone.validate().map_err(|e| issue("backbone", e))?;
        neck.validate().map_err(|e| issue("neck", e))?;
        if neck.embed_dim != spec.embed_dims {
            return Err(ConfigIssue::new(
                "neck.embed_dim",
                format!("{} does not match the backbone's embed_dims {}", neck.embed_dim, spec.embed_dims),
            ));
        }
        let patches = backbone.grid() * backbone.grid();
        if neck.num_patches != patches {
            return Err(ConfigIssue::new(
                "neck.num_patches",
                format!(
                    "{} does not match the backbone's {} patches (img_size {} / patch_size {})",
                    neck.num_patches, patches, backbone.img_size, backbone.patch_size
                ),
            ));
        }
        for (key, p) in [("neck.patch_size", neck.patch_size), ("head.patch_size", head.patch_size)] {
            if p != backbone.patch_size {
                return Err(ConfigIssue::new(key, format!("{p} does not match backbone.patch_size {}", backbone.patch_size)));
            }
        }
        if neck.in_chans != backbone.in_channels {
            return Err(ConfigIssue::new(
                "neck.in_chans",
                format!("{} does not match backbone.in_channels {}", neck.in_chans, backbone.in_channels),
            ));
        }
        if neck.predict_feature_dim.is_some_and(|d| d != neck.output_dim()) {
            return Err(ConfigIssue::new("neck.predict_feature_dim", "MAE reconstructs pixels; leave predict_feature_dim unset"));
        }
        Ok(())
    }

    /// Builds the algorithm with weights drawn from `rng`. Call
    /// [`AlgorithmSpec::validate`] first.
    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> Mae<B> {
        Mae {
            backbone: self.backbone.get().init(device, rng),
            neck: self.neck.get().init(device, rng),
            head: self.head.get().init(),
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }
}

/// Masked autoencoder: `MAEViT` + `MAEPretrainDecoder` + `MAEPretrainHead`.
/// Keys `backbone.*` and `neck.*`, as MMSelfSup's `state_dict`.
#[derive(Module, Debug)]
pub struct Mae<B: Backend> {
    /// The ViT encoder.
    pub backbone: MaeVit<B>,
    /// The decoder.
    pub neck: MaePretrainDecoder<B>,
    /// The head and its loss (no parameters).
    #[module(skip)]
    pub head: MaePretrainHead,
    /// The data preprocessor (no parameters).
    #[module(skip)]
    pub data_preprocessor: DataPreprocessorConfig,
}

/// MAE's `predict` output, per sample.
#[derive(Debug, Clone)]
pub struct MaePrediction<B: Backend> {
    /// The decoder's prediction for every patch, `[batch, L, p·p·3]`,
    /// in the target's space (normalised per patch when `norm_pix`).
    pub pred: Tensor<B, 3>,
    /// `[batch, L]`, 1 for removed patches.
    pub mask: Tensor<B, 2>,
    /// The prediction as images, `[batch, 3, H, W]`, de-normalised per patch
    /// with the input's own patch statistics when `norm_pix` (as MMSelfSup's
    /// visualisation does), in the preprocessed input's space.
    pub reconstruction: Tensor<B, 4>,
}

impl<B: Backend> Mae<B> {
    /// The head.
    pub fn head(&self) -> &MaePretrainHead {
        &self.head
    }

    fn one_view<'a>(&self, inputs: &'a SelfSupInputs<B>) -> Result<&'a Tensor<B, 4>, ModelError> {
        Ok(&inputs.expect_views("MAE", 1)?[0])
    }

    /// The decoder's prediction and the mask for a batch.
    pub fn reconstruct(&self, imgs: Tensor<B, 4>, draws: &mut Draws) -> Result<(Tensor<B, 3>, Tensor<B, 2>), ModelError> {
        let enc = self.backbone.forward_masked(imgs, draws)?;
        let pred = self.neck.forward(enc.latent, enc.ids_restore);
        Ok((pred, enc.mask))
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for Mae<B> {
    type Features = VitFeatures<B>;
    type Prediction = MaePrediction<B>;
    type StepState = ();

    fn name(&self) -> &'static str {
        "MAE"
    }

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    /// The cls token after the final norm, without masking.
    fn global_features(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        Ok(self.extract_feat(inputs)?.cls_token)
    }

    /// The backbone's features without masking (as mmpretrain's
    /// `MAE.extract_feat`; MMSelfSup 1.0.0 returned the decoder's pixels).
    fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<VitFeatures<B>, ModelError> {
        self.backbone.forward(self.one_view(inputs)?.clone())
    }

    fn loss(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<(LossOutput<B>, ()), ModelError> {
        let imgs = self.one_view(inputs)?.clone();
        let (pred, mask) = self.reconstruct(imgs.clone(), draws)?;
        let loss = self.head.forward(pred, imgs, mask);
        Ok((LossOutput::new().with("loss", loss), ()))
    }

    fn predict(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<MaePrediction<B>, ModelError> {
        let imgs = self.one_view(inputs)?.clone();
        let (pred, mask) = self.reconstruct(imgs.clone(), draws)?;
        Ok(mae_prediction(&self.head, imgs, pred, mask))
    }
}

/// The prediction of an MAE-style head as images: `pred` de-normalised per
/// patch with the statistics of `target`'s patches when `norm_pix` (as
/// MMSelfSup's visualisation does), then unpatchified.
pub fn mae_prediction<B: Backend>(head: &MaePretrainHead, target: Tensor<B, 4>, pred: Tensor<B, 3>, mask: Tensor<B, 2>) -> MaePrediction<B> {
    let patches = if head.norm_pix {
        let (var, mean) = head.patchify(target).var_mean(2);
        pred.clone() * (var + 1e-6).sqrt() + mean
    } else {
        pred.clone()
    };
    MaePrediction { reconstruction: head.unpatchify(patches), pred, mask }
}
