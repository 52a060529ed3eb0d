//! Port of `mmselfsup.models.algorithms.BarlowTwins`: the
//! cross-correlation of two views' projections pushed to the identity.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs};
use selfsup_heads::LatentCrossCorrelationHead;
use selfsup_layers::init::InitRng;
use selfsup_necks::NonLinearNeck;
use serde::{Deserialize, Serialize};

use crate::{
    common::{
        backbone_modes, backbone_spec, check_projection, expect_pair, project, Backbone, BackboneOut, ContrastiveBackboneConfig,
        CrossCorrelationHeadRegistry, NonLinearNeckRegistry,
    },
    AlgorithmSpec, ConfigIssue, InitCfg,
};

/// `model = dict(type='BarlowTwins', backbone, neck, head)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BarlowTwinsConfig {
    /// The data preprocessor.
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// The backbone.
    pub backbone: ContrastiveBackboneConfig,
    /// Projection.
    pub neck: NonLinearNeckRegistry,
    /// Cross-correlation head.
    pub head: CrossCorrelationHeadRegistry,
    /// MMEngine `init_cfg`.
    #[serde(default)]
    pub init_cfg: InitCfg,
}

impl AlgorithmSpec for BarlowTwinsConfig {
    type Model<B: Backend> = BarlowTwins<B>;

    backbone_spec!();

    fn num_views(&self) -> usize {
        2
    }

    /// Checks the parts and their widths.
    fn validate(&self) -> Result<(), ConfigIssue> {
        check_projection(&self.data_preprocessor, &self.backbone, &self.neck)?;
        let CrossCorrelationHeadRegistry::LatentCrossCorrelation(h) = &self.head;
        if h.in_channels != self.neck.get().out_features() {
            return Err(ConfigIssue::new(
                "head.in_channels",
                format!("{} does not match the neck's output {}", h.in_channels, self.neck.get().out_features()),
            ));
        }
        Ok(())
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> BarlowTwins<B> {
        let CrossCorrelationHeadRegistry::LatentCrossCorrelation(h) = &self.head;
        BarlowTwins {
            backbone: self.backbone.init(device, rng),
            neck: self.neck.get().init(device, rng),
            head: h.init(device, rng),
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }
}

/// Barlow Twins. Keys `backbone.*`, `neck.*`, `head.bn.*`.
#[derive(Module, Debug)]
pub struct BarlowTwins<B: Backend> {
    /// Backbone.
    pub backbone: Backbone<B>,
    /// Projection.
    pub neck: NonLinearNeck<B>,
    /// Cross-correlation head.
    pub head: LatentCrossCorrelationHead<B>,
    #[module(skip)]
    data_preprocessor: DataPreprocessorConfig,
}

impl<B: Backend> BarlowTwins<B> {}

impl<B: Backend> SelfSupAlgorithm<B> for BarlowTwins<B> {
    type Features = BackboneOut<B>;
    type Prediction = BackboneOut<B>;
    type StepState = ();

    backbone_modes!("BarlowTwins");

    fn loss(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<(LossOutput<B>, ()), ModelError> {
        let v = expect_pair(inputs, "BarlowTwins")?;
        let z1 = project(&self.neck, self.backbone.forward(v[0].clone())?);
        let z2 = project(&self.neck, self.backbone.forward(v[1].clone())?);
        Ok((LossOutput::new().with("loss", self.head.forward(z1, z2)), ()))
    }
}
