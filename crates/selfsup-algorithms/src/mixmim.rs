//! Port of `mmselfsup.models.algorithms.MixMIM` (mmselfsup 1.0.0):
//! `MixMIMTransformerPretrain` on the batch mixed with its flipped self,
//! `MixMIMPretrainDecoder` reconstructing both sources, and
//! `MixMIMPretrainHead` unmixing them against the image (patch size = the
//! neck's `encoder_stride`, as MixMIM overrides it).
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor, TensorData},
};
use selfsup_backbones::{MixMimTransformerPretrain, MixMimTransformerPretrainConfig};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs};
use selfsup_heads::{MixMimPretrainHead, MixMimPretrainHeadConfig};
use selfsup_layers::init::InitRng;
use selfsup_necks::{MixMimPretrainDecoder, MixMimPretrainDecoderConfig};
use serde::{Deserialize, Serialize};

use crate::{mae::mae_prediction, AlgorithmSpec, ConfigIssue, InitCfg, MaePrediction};

/// `model = dict(type='MixMIM', ...)`: MMSelfSup's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixMimConfig {
    /// The data preprocessor.
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// `dict(type='MixMIMTransformerPretrain', ...)`.
    pub backbone: MixMimBackboneConfig,
    /// `dict(type='MixMIMPretrainDecoder', ...)`.
    pub neck: MixMimNeckConfig,
    /// `dict(type='MixMIMPretrainHead', ...)`.
    pub head: MixMimHeadConfig,
    /// MMEngine `init_cfg` (accepted, not interpreted).
    #[serde(default)]
    pub init_cfg: InitCfg,
}

selfsup_config::registry! {
    /// MixMIM's backbone.
    #[derive(Debug, Clone, PartialEq)]
    pub enum MixMimBackboneConfig {
        /// MMSelfSup's `MixMIMTransformerPretrain`.
        "MixMIMTransformerPretrain" => MixMimTransformerPretrain(MixMimTransformerPretrainConfig),
    }
}

selfsup_config::registry! {
    /// MixMIM's neck.
    #[derive(Debug, Clone, PartialEq)]
    pub enum MixMimNeckConfig {
        /// MMSelfSup's `MixMIMPretrainDecoder`.
        "MixMIMPretrainDecoder" => MixMimPretrainDecoder(MixMimPretrainDecoderConfig),
    }
}

selfsup_config::registry! {
    /// MixMIM's head.
    #[derive(Debug, Clone, PartialEq)]
    pub enum MixMimHeadConfig {
        /// MMSelfSup's `MixMIMPretrainHead`.
        "MixMIMPretrainHead" => MixMimPretrainHead(MixMimPretrainHeadConfig),
    }
}

impl MixMimConfig {
    fn parts(&self) -> (&MixMimTransformerPretrainConfig, &MixMimPretrainDecoderConfig, &MixMimPretrainHeadConfig) {
        let MixMimBackboneConfig::MixMimTransformerPretrain(b) = &self.backbone;
        let MixMimNeckConfig::MixMimPretrainDecoder(n) = &self.neck;
        let MixMimHeadConfig::MixMimPretrainHead(h) = &self.head;
        (b, n, h)
    }
}

impl AlgorithmSpec for MixMimConfig {
    type Model<B: Backend> = MixMim<B>;

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

    /// Every part, and how they fit: the decoder reads the encoder's last
    /// width and token count, and undoes its stride of 32.
    fn validate(&self) -> Result<(), ConfigIssue> {
        let issue = |prefix: &str, (key, msg): (&str, String)| ConfigIssue::new(format!("{prefix}.{key}"), msg);
        self.data_preprocessor.validate().map_err(|e| issue("data_preprocessor", e))?;
        let (backbone, neck, _) = self.parts();
        let width = backbone.validate().map_err(|e| issue("backbone", e))?;
        neck.validate().map_err(|e| issue("neck", e))?;
        if neck.embed_dim != width {
            return Err(ConfigIssue::new("neck.embed_dim", format!("{} does not match the backbone's last width {width}", neck.embed_dim)));
        }
        let stride = selfsup_backbones::mixmim_backbone::ENCODER_STRIDE;
        if neck.encoder_stride != stride {
            return Err(ConfigIssue::new("neck.encoder_stride", format!("{} is not the backbone's stride {stride}", neck.encoder_stride)));
        }
        let tokens = (backbone.img_size / stride).pow(2);
        if neck.num_patches != tokens {
            return Err(ConfigIssue::new(
                "neck.num_patches",
                format!("{} does not match the backbone's {tokens} output tokens (img_size {} / 32, squared)", neck.num_patches, backbone.img_size),
            ));
        }
        if neck.in_chans != backbone.in_channels {
            return Err(ConfigIssue::new("neck.in_chans", format!("{} does not match backbone.in_channels {}", neck.in_chans, backbone.in_channels)));
        }
        Ok(())
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> MixMim<B> {
        let (backbone, neck, head) = self.parts();
        MixMim {
            backbone: backbone.init(device, rng),
            neck: neck.init(device, rng),
            head: head.init(neck.encoder_stride),
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }
}

/// MixMIM. Keys `backbone.*` and `neck.*`, as MMSelfSup's `state_dict`.
#[derive(Module, Debug)]
pub struct MixMim<B: Backend> {
    /// The mixing encoder.
    pub backbone: MixMimTransformerPretrain<B>,
    /// The two-source decoder.
    pub neck: MixMimPretrainDecoder<B>,
    /// The head and its loss (no parameters).
    #[module(skip)]
    pub head: MixMimPretrainHead,
    /// The data preprocessor (no parameters).
    #[module(skip)]
    pub data_preprocessor: DataPreprocessorConfig,
}

impl<B: Backend> MixMim<B> {
    /// The decoder's output for a batch and the last-stage mask.
    pub fn reconstruct(&self, img: Tensor<B, 4>, draws: &mut Draws, train: bool) -> Result<(Tensor<B, 3>, Tensor<B, 3>), ModelError> {
        let masks = self.backbone.random_masking(draws);
        let latent = self.backbone.forward_mixed(img.clone(), &masks, train.then_some(draws))?;
        let last = masks.stages[3].clone();
        let l = last.len();
        let mask = Tensor::<B, 1>::from_data(TensorData::new(last, [l]), &img.device()).reshape([1, l, 1]);
        Ok((self.neck.forward(latent, mask.clone()), mask))
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for MixMim<B> {
    type Features = Tensor<B, 3>;
    type Prediction = MaePrediction<B>;
    type StepState = ();

    fn name(&self) -> &'static str {
        "MixMIM"
    }

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    /// The unmixed encoder's normalised last-stage tokens (mmcls's
    /// `MixMIMTransformer`; MMSelfSup 1.0.0's tensor mode fails).
    fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 3>, ModelError> {
        self.backbone.forward(inputs.first_view("MixMIM")?.clone())
    }

    /// The average token, as mmcls's classifier pools it.
    fn global_features(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        let x = self.extract_feat(inputs)?;
        let [n, _, c] = x.dims();
        Ok(x.mean_dim(1).reshape([n, c]))
    }

    fn loss(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<(LossOutput<B>, ()), ModelError> {
        let img = inputs.expect_views("MixMIM", 1)?[0].clone();
        let (x_rec, mask) = self.reconstruct(img.clone(), draws, true)?;
        Ok((LossOutput::new().with("loss", self.head.forward(x_rec, img, mask)), ()))
    }

    /// The unmixed prediction as MAE's: the mask is 1 where the image was
    /// hidden (its partner's tokens in its place).
    fn predict(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<MaePrediction<B>, ModelError> {
        let img = inputs.expect_views("MixMIM", 1)?[0].clone();
        let (x_rec, mask) = self.reconstruct(img.clone(), draws, false)?;
        let pred = self.head.unmix(x_rec, mask.clone());
        let [n, l, _] = pred.dims();
        Ok(mae_prediction(&self.head.target, img, pred, mask.reshape([1, l]).expand([n, l])))
    }
}
