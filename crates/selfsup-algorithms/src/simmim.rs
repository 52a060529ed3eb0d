//! Port of `mmselfsup.models.algorithms.SimMIM` (mmselfsup 1.0.0):
//! `SimMIMSwinTransformer` on the image with the pipeline's mask
//! (`SimMIMMaskGenerator`), `SimMIMNeck` back to pixels, and `SimMIMHead`'s
//! masked L1 against the (normalised) image.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_backbones::{SimMimSwinTransformer, SimMimSwinTransformerConfig};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs};
use selfsup_heads::{SimMimHead, SimMimHeadConfig};
use selfsup_layers::init::InitRng;
use selfsup_necks::{SimMimNeck, SimMimNeckConfig};
use serde::{Deserialize, Serialize};

use crate::{common::pipeline_mask, AlgorithmSpec, ConfigIssue, InitCfg};

/// `model = dict(type='SimMIM', ...)`: MMSelfSup's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimMimConfig {
    /// The data preprocessor.
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// `dict(type='SimMIMSwinTransformer', ...)`.
    pub backbone: SimMimBackboneConfig,
    /// `dict(type='SimMIMNeck', ...)`.
    pub neck: SimMimNeckRegistry,
    /// `dict(type='SimMIMHead', ...)`.
    pub head: SimMimHeadRegistry,
    /// MMEngine `init_cfg` (accepted, not interpreted).
    #[serde(default)]
    pub init_cfg: InitCfg,
}

selfsup_config::registry! {
    /// SimMIM's backbone.
    #[derive(Debug, Clone, PartialEq)]
    pub enum SimMimBackboneConfig {
        /// MMSelfSup's `SimMIMSwinTransformer`.
        "SimMIMSwinTransformer" => SimMimSwinTransformer(SimMimSwinTransformerConfig),
    }
}

selfsup_config::registry! {
    /// SimMIM's neck.
    #[derive(Debug, Clone, PartialEq)]
    pub enum SimMimNeckRegistry {
        /// MMSelfSup's `SimMIMNeck`.
        "SimMIMNeck" => SimMimNeck(SimMimNeckConfig),
    }
}

selfsup_config::registry! {
    /// SimMIM's head.
    #[derive(Debug, Clone, PartialEq)]
    pub enum SimMimHeadRegistry {
        /// MMSelfSup's `SimMIMHead`.
        "SimMIMHead" => SimMimHead(SimMimHeadConfig),
    }
}

impl SimMimConfig {
    fn parts(&self) -> (&SimMimSwinTransformerConfig, &SimMimNeckConfig, &SimMimHeadConfig) {
        let SimMimBackboneConfig::SimMimSwinTransformer(b) = &self.backbone;
        let SimMimNeckRegistry::SimMimNeck(n) = &self.neck;
        let SimMimHeadRegistry::SimMimHead(h) = &self.head;
        (b, n, h)
    }
}

impl AlgorithmSpec for SimMimConfig {
    type Model<B: Backend> = SimMim<B>;

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
        false
    }

    /// Checks every part and how they fit: the neck reads the last stage's
    /// channels and undoes the encoder's stride, the head's patch is the
    /// backbone's, and the image has the encoder's input channels.
    fn validate(&self) -> Result<(), ConfigIssue> {
        let issue = |prefix: &str, (key, msg): (&str, String)| ConfigIssue::new(format!("{prefix}.{key}"), msg);
        self.data_preprocessor.validate().map_err(|e| issue("data_preprocessor", e))?;
        let (backbone, neck, head) = self.parts();
        backbone.validate().map_err(|e| issue("backbone", e))?;
        let (channels, stride) = backbone.out_channels_and_stride().expect("a validated arch");
        if neck.in_channels != channels {
            return Err(ConfigIssue::new("neck.in_channels", format!("{} does not match the last stage's {channels} channels", neck.in_channels)));
        }
        if neck.encoder_stride != stride {
            return Err(ConfigIssue::new("neck.encoder_stride", format!("{} does not match the encoder's stride {stride}", neck.encoder_stride)));
        }
        if head.patch_size != 4 {
            return Err(ConfigIssue::new("head.patch_size", format!("{} does not match the backbone's patch size 4", head.patch_size)));
        }
        let selfsup_heads::SimMimLossConfig::SimMimReconstructionLoss(loss) = &head.loss;
        if loss.encoder_in_channels != backbone.in_channels || backbone.in_channels != 3 {
            return Err(ConfigIssue::new(
                "head.loss.encoder_in_channels",
                format!("SimMIM reconstructs 3-channel images; got {} (backbone.in_channels {})", loss.encoder_in_channels, backbone.in_channels),
            ));
        }
        Ok(())
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> SimMim<B> {
        let (backbone, neck, head) = self.parts();
        SimMim {
            backbone: backbone.init(device, rng),
            neck: neck.init(device, rng),
            head: head.init(),
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }
}

/// SimMIM. Keys `backbone.*` and `neck.decoder.0.*`, as MMSelfSup's
/// `state_dict`.
#[derive(Module, Debug)]
pub struct SimMim<B: Backend> {
    /// The Swin encoder with a mask token.
    pub backbone: SimMimSwinTransformer<B>,
    /// 1×1 convolution and pixel shuffle.
    pub neck: SimMimNeck<B>,
    /// The head and its loss (no parameters).
    #[module(skip)]
    pub head: SimMimHead,
    /// The data preprocessor (no parameters).
    #[module(skip)]
    pub data_preprocessor: DataPreprocessorConfig,
}

/// SimMIM's `predict` output.
#[derive(Debug, Clone)]
pub struct SimMimPrediction<B: Backend> {
    /// The reconstruction `[batch, 3, H, W]` in the preprocessed input's space.
    pub reconstruction: Tensor<B, 4>,
    /// `[batch, 1, H, W]`, 1 for masked pixels.
    pub pixel_mask: Tensor<B, 4>,
}

impl<B: Backend> SimMim<B> {
    fn image_and_mask(&self, inputs: &SelfSupInputs<B>) -> Result<(Tensor<B, 4>, Tensor<B, 3>), ModelError> {
        let img = inputs.expect_views("SimMIM", 1)?[0].clone();
        let g = self.backbone.grid();
        Ok((img, pipeline_mask(inputs, "SimMIM", [g, g], "SimMIMMaskGenerator")?))
    }

    /// The reconstruction of a masked batch, `[batch, 3, H, W]`.
    pub fn reconstruct(&self, img: Tensor<B, 4>, mask: Tensor<B, 3>, draws: Option<&mut Draws>) -> Result<Tensor<B, 4>, ModelError> {
        Ok(self.neck.forward(self.backbone.forward(img, Some(mask), draws)?))
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for SimMim<B> {
    type Features = Tensor<B, 4>;
    type Prediction = SimMimPrediction<B>;
    type StepState = ();

    fn name(&self) -> &'static str {
        "SimMIM"
    }

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    /// The backbone's last normalised map without masking (mmpretrain's
    /// `extract_feat`; MMSelfSup 1.0.0 returned the reconstruction).
    fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 4>, ModelError> {
        self.backbone.forward(inputs.first_view("SimMIM")?.clone(), None, None)
    }

    /// The average over the last map, as Swin's classifier pools it.
    fn global_features(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        let map = self.extract_feat(inputs)?;
        let [n, c, _, _] = map.dims();
        Ok(map.mean_dim(3).mean_dim(2).reshape([n, c]))
    }

    fn loss(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<(LossOutput<B>, ()), ModelError> {
        let (img, mask) = self.image_and_mask(inputs)?;
        let rec = self.reconstruct(img.clone(), mask.clone(), Some(draws))?;
        Ok((LossOutput::new().with("loss", self.head.forward(rec, img, mask)), ()))
    }

    fn predict(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<SimMimPrediction<B>, ModelError> {
        let (img, mask) = self.image_and_mask(inputs)?;
        let reconstruction = self.reconstruct(img, mask.clone(), None)?;
        Ok(SimMimPrediction { reconstruction, pixel_mask: self.head.pixel_mask(mask) })
    }
}
