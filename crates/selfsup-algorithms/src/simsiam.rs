//! Port of `mmselfsup.models.algorithms.SimSiam`: a siamese network with
//! a predictor and stop-gradient targets.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs};
use selfsup_heads::LatentPredictHead;
use selfsup_layers::init::InitRng;
use selfsup_necks::NonLinearNeck;
use serde::{Deserialize, Serialize};

use crate::{
    common::{
        backbone_modes, backbone_spec, check_predictor, check_projection, expect_pair, project, Backbone, BackboneOut,
        ContrastiveBackboneConfig, LatentPredictHeadRegistry, NonLinearNeckRegistry,
    },
    AlgorithmSpec, ConfigIssue, InitCfg,
};

/// `model = dict(type='SimSiam', backbone, neck, head)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimSiamConfig {
    /// The data preprocessor.
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// The backbone.
    pub backbone: ContrastiveBackboneConfig,
    /// Projection.
    pub neck: NonLinearNeckRegistry,
    /// Predictor and cosine loss.
    pub head: LatentPredictHeadRegistry,
    /// MMEngine `init_cfg`.
    #[serde(default)]
    pub init_cfg: InitCfg,
}

impl AlgorithmSpec for SimSiamConfig {
    type Model<B: Backend> = SimSiam<B>;

    backbone_spec!();

    fn num_views(&self) -> usize {
        2
    }

    /// Checks the parts and their widths.
    fn validate(&self) -> Result<(), ConfigIssue> {
        check_projection(&self.data_preprocessor, &self.backbone, &self.neck)?;
        let LatentPredictHeadRegistry::LatentPredict(h) = &self.head;
        check_predictor(h.predictor.get(), self.neck.get().out_features(), "head.predictor")
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> SimSiam<B> {
        let LatentPredictHeadRegistry::LatentPredict(h) = &self.head;
        SimSiam {
            backbone: self.backbone.init(device, rng),
            neck: self.neck.get().init(device, rng),
            head: h.init(device, rng),
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }
}

/// SimSiam: `0.5·(D(p1, z2) + D(p2, z1))` with stop-gradient targets.
#[derive(Module, Debug)]
pub struct SimSiam<B: Backend> {
    /// Backbone.
    pub backbone: Backbone<B>,
    /// Projection.
    pub neck: NonLinearNeck<B>,
    /// Predictor and loss.
    pub head: LatentPredictHead<B>,
    #[module(skip)]
    data_preprocessor: DataPreprocessorConfig,
}

impl<B: Backend> SimSiam<B> {}

impl<B: Backend> SelfSupAlgorithm<B> for SimSiam<B> {
    type Features = BackboneOut<B>;
    type Prediction = BackboneOut<B>;
    type StepState = ();

    backbone_modes!("SimSiam");

    fn loss(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<(LossOutput<B>, ()), ModelError> {
        let v = expect_pair(inputs, "SimSiam")?;
        let z1 = project(&self.neck, self.backbone.forward(v[0].clone())?);
        let z2 = project(&self.neck, self.backbone.forward(v[1].clone())?);
        let loss = (self.head.forward(z1.clone(), z2.clone()) + self.head.forward(z2, z1)).mul_scalar(0.5);
        Ok((LossOutput::new().with("loss", loss), ()))
    }
}
