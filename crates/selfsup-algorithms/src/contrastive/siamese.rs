//! Ports of MMSelfSup's siamese algorithms: `BYOL`, `SimSiam`,
//! `BarlowTwins` and `MoCoV3`.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs, StepContext};
use selfsup_heads::{
    LatentCrossCorrelationHead, LatentCrossCorrelationHeadConfig, LatentPredictHead, LatentPredictHeadConfig, MoCoV3Head,
    MoCoV3HeadConfig,
};
use selfsup_layers::init::InitRng;
use selfsup_memories::{EmaKind, MomentumEncoder, OnlineWeights};
use selfsup_necks::NonLinearNeck;
use serde::{Deserialize, Serialize};

use super::{
    common::{check_common, check_nonlinear, expect_pair, gather, project, Backbone, BackboneOut, ContrastiveBackboneConfig},
    simclr::NonLinearNeckRegistry,
};
use crate::{ConfigIssue, InitCfg};

selfsup_config::registry! {
    /// A `LatentPredictHead` dict.
    #[derive(Debug, Clone, PartialEq)]
    pub enum LatentPredictHeadRegistry {
        /// Predictor + cosine loss.
        "LatentPredictHead" => LatentPredict(LatentPredictHeadConfig),
    }
}

selfsup_config::registry! {
    /// A `LatentCrossCorrelationHead` dict.
    #[derive(Debug, Clone, PartialEq)]
    pub enum CrossCorrelationHeadRegistry {
        /// Barlow Twins' head.
        "LatentCrossCorrelationHead" => LatentCrossCorrelation(LatentCrossCorrelationHeadConfig),
    }
}

selfsup_config::registry! {
    /// A `MoCoV3Head` dict.
    #[derive(Debug, Clone, PartialEq)]
    pub enum MoCoV3HeadRegistry {
        /// MoCo v3's head.
        "MoCoV3Head" => MoCoV3(MoCoV3HeadConfig),
    }
}

fn base_099() -> f64 {
    0.99
}
fn byol_base() -> f64 {
    0.996
}

fn common_checks(
    dp: &DataPreprocessorConfig,
    backbone: &ContrastiveBackboneConfig,
    neck: &NonLinearNeckRegistry,
) -> Result<(), ConfigIssue> {
    check_common(dp, backbone)?;
    check_nonlinear(neck.get(), backbone, "neck")
}

fn check_predictor(pred: &selfsup_necks::NonLinearNeckConfig, width: usize, key: &str) -> Result<(), ConfigIssue> {
    pred.validate().map_err(|(k, m)| ConfigIssue::new(format!("{key}.{k}"), m))?;
    if pred.in_channels != width || pred.out_features() != width {
        return Err(ConfigIssue::new(
            format!("{key}.in_channels"),
            format!("the predictor maps {} -> {}; the projection is {width} wide", pred.in_channels, pred.out_features()),
        ));
    }
    if pred.vit_backbone {
        return Err(ConfigIssue::new(format!("{key}.vit_backbone"), "a predictor takes vectors; set false"));
    }
    Ok(())
}

fn first_view<'a, B: Backend>(inputs: &'a SelfSupInputs<B>, algorithm: &'static str) -> Result<&'a Tensor<B, 4>, ModelError> {
    inputs.views.first().ok_or(ModelError::Views { algorithm, expected: 1, got: 0 })
}

macro_rules! backbone_features {
    ($name:literal) => {
        fn name(&self) -> &'static str {
            $name
        }

        fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<BackboneOut<B>, ModelError> {
            self.backbone.forward(first_view(inputs, $name)?.clone())
        }

        fn predict(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<BackboneOut<B>, ModelError> {
            self.extract_feat(inputs)
        }
    };
}

/// `model = dict(type='BYOL', base_momentum=0.99, backbone, neck, head)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByolConfig {
    /// The data preprocessor.
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// The backbone.
    pub backbone: ContrastiveBackboneConfig,
    /// Projection.
    pub neck: NonLinearNeckRegistry,
    /// Predictor and cosine loss.
    pub head: LatentPredictHeadRegistry,
    /// Starting momentum of the target (cosine-increased to 1).
    #[serde(default = "byol_base")]
    pub base_momentum: f64,
    /// MMEngine `init_cfg`.
    #[serde(default)]
    pub init_cfg: InitCfg,
}

impl ByolConfig {
    /// Checks the parts and their widths.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        common_checks(&self.data_preprocessor, &self.backbone, &self.neck)?;
        let LatentPredictHeadRegistry::LatentPredict(h) = &self.head;
        check_predictor(h.predictor.get(), self.neck.get().out_features(), "head.predictor")?;
        if !(0.0..=1.0).contains(&self.base_momentum) {
            return Err(ConfigIssue::new("base_momentum", "must be in [0, 1]"));
        }
        Ok(())
    }

    /// Builds the algorithm (call `prepare` before training).
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> Byol<B> {
        let LatentPredictHeadRegistry::LatentPredict(h) = &self.head;
        let backbone = self.backbone.init(device, rng);
        let neck = self.neck.get().init(device, rng);
        let target = (self.backbone.init(device, rng), self.neck.get().init(device, rng));
        Byol {
            backbone,
            neck,
            target_net: MomentumEncoder::new(target, EmaKind::Cosine { base: self.base_momentum, end: 1.0 }, device),
            head: h.init(device, rng),
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }
}

/// BYOL. Keys `backbone.*`, `neck.*`, `head.predictor.*`,
/// `target_net.module.{0,1}.*`, `target_net.steps`.
#[derive(Module, Debug)]
pub struct Byol<B: Backend> {
    /// Online backbone.
    pub backbone: Backbone<B>,
    /// Online projection.
    pub neck: NonLinearNeck<B>,
    /// Cosine-EMA target network `(backbone, neck)`.
    pub target_net: MomentumEncoder<B, (Backbone<B>, NonLinearNeck<B>)>,
    /// Predictor and loss.
    pub head: LatentPredictHead<B>,
    #[module(skip)]
    data_preprocessor: DataPreprocessorConfig,
}

impl<B: Backend> Byol<B> {
    /// The data preprocessor.
    pub fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    /// Copies the online network into a never-updated target.
    pub fn prepare(mut self) -> Self {
        let online = OnlineWeights::default().add(&self.backbone).add(&self.neck);
        self.target_net = self.target_net.prepare(online);
        self
    }

    fn target(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 2>, ModelError> {
        let (b, n) = &self.target_net.module;
        Ok(project(n, b.forward(x)?).detach())
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for Byol<B> {
    type Features = BackboneOut<B>;
    type Prediction = BackboneOut<B>;
    type StepState = ();

    backbone_features!("BYOL");

    fn loss(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<(LossOutput<B>, ()), ModelError> {
        let v = expect_pair(inputs, "BYOL")?;
        let p1 = project(&self.neck, self.backbone.forward(v[0].clone())?);
        let p2 = project(&self.neck, self.backbone.forward(v[1].clone())?);
        let t1 = self.target(v[0].clone())?;
        let t2 = self.target(v[1].clone())?;
        let loss = (self.head.forward(p1, t2) + self.head.forward(p2, t1)).mul_scalar(2.0);
        Ok((LossOutput::new().with("loss", loss), ()))
    }

    fn after_step(mut self, _: (), ctx: &StepContext) -> Self {
        let online = OnlineWeights::default().add(&self.backbone).add(&self.neck);
        self.target_net = self.target_net.update(online, ctx.max_iters);
        self
    }
}

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

impl SimSiamConfig {
    /// Checks the parts and their widths.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        common_checks(&self.data_preprocessor, &self.backbone, &self.neck)?;
        let LatentPredictHeadRegistry::LatentPredict(h) = &self.head;
        check_predictor(h.predictor.get(), self.neck.get().out_features(), "head.predictor")
    }

    /// Builds the algorithm.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> SimSiam<B> {
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

impl<B: Backend> SimSiam<B> {
    /// The data preprocessor.
    pub fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for SimSiam<B> {
    type Features = BackboneOut<B>;
    type Prediction = BackboneOut<B>;
    type StepState = ();

    backbone_features!("SimSiam");

    fn loss(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<(LossOutput<B>, ()), ModelError> {
        let v = expect_pair(inputs, "SimSiam")?;
        let z1 = project(&self.neck, self.backbone.forward(v[0].clone())?);
        let z2 = project(&self.neck, self.backbone.forward(v[1].clone())?);
        let loss = (self.head.forward(z1.clone(), z2.clone()) + self.head.forward(z2, z1)).mul_scalar(0.5);
        Ok((LossOutput::new().with("loss", loss), ()))
    }
}

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

impl BarlowTwinsConfig {
    /// Checks the parts and their widths.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        common_checks(&self.data_preprocessor, &self.backbone, &self.neck)?;
        let CrossCorrelationHeadRegistry::LatentCrossCorrelation(h) = &self.head;
        if h.in_channels != self.neck.get().out_features() {
            return Err(ConfigIssue::new("head.in_channels", format!("{} does not match the neck's output {}", h.in_channels, self.neck.get().out_features())));
        }
        Ok(())
    }

    /// Builds the algorithm.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> BarlowTwins<B> {
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

impl<B: Backend> BarlowTwins<B> {
    /// The data preprocessor.
    pub fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for BarlowTwins<B> {
    type Features = BackboneOut<B>;
    type Prediction = BackboneOut<B>;
    type StepState = ();

    backbone_features!("BarlowTwins");

    fn loss(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<(LossOutput<B>, ()), ModelError> {
        let v = expect_pair(inputs, "BarlowTwins")?;
        let z1 = project(&self.neck, self.backbone.forward(v[0].clone())?);
        let z2 = project(&self.neck, self.backbone.forward(v[1].clone())?);
        Ok((LossOutput::new().with("loss", self.head.forward(z1, z2)), ()))
    }
}

/// `model = dict(type='MoCoV3', base_momentum=0.99, backbone, neck, head)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoCoV3Config {
    /// The data preprocessor.
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// ResNet or MoCoV3ViT.
    pub backbone: ContrastiveBackboneConfig,
    /// Projection.
    pub neck: NonLinearNeckRegistry,
    /// Predictor and InfoNCE.
    pub head: MoCoV3HeadRegistry,
    /// Starting momentum of the momentum encoder (cosine-increased to 1).
    #[serde(default = "base_099")]
    pub base_momentum: f64,
    /// MMEngine `init_cfg`.
    #[serde(default)]
    pub init_cfg: InitCfg,
}

impl MoCoV3Config {
    /// Checks the parts and their widths.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        common_checks(&self.data_preprocessor, &self.backbone, &self.neck)?;
        let MoCoV3HeadRegistry::MoCoV3(h) = &self.head;
        check_predictor(h.predictor.get(), self.neck.get().out_features(), "head.predictor")?;
        h.loss.get().validate().map_err(|(k, m)| ConfigIssue::new(format!("head.loss.{k}"), m))?;
        if !(0.0..=1.0).contains(&self.base_momentum) {
            return Err(ConfigIssue::new("base_momentum", "must be in [0, 1]"));
        }
        Ok(())
    }

    /// Builds the algorithm (call `prepare` before training).
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> MoCoV3<B> {
        let MoCoV3HeadRegistry::MoCoV3(h) = &self.head;
        let backbone = self.backbone.init(device, rng);
        let neck = self.neck.get().init(device, rng);
        let target = (self.backbone.init(device, rng), self.neck.get().init(device, rng));
        MoCoV3 {
            backbone,
            neck,
            momentum_encoder: MomentumEncoder::new(target, EmaKind::Cosine { base: self.base_momentum, end: 1.0 }, device),
            head: h.init(device, rng),
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }
}

/// MoCo v3. Keys `backbone.*`, `neck.*`, `head.predictor.*`,
/// `momentum_encoder.module.{0,1}.*`, `momentum_encoder.steps`.
#[derive(Module, Debug)]
pub struct MoCoV3<B: Backend> {
    /// Base backbone.
    pub backbone: Backbone<B>,
    /// Base projection.
    pub neck: NonLinearNeck<B>,
    /// Cosine-EMA momentum encoder `(backbone, neck)`.
    pub momentum_encoder: MomentumEncoder<B, (Backbone<B>, NonLinearNeck<B>)>,
    /// Predictor and loss.
    pub head: MoCoV3Head<B>,
    #[module(skip)]
    data_preprocessor: DataPreprocessorConfig,
}

impl<B: Backend> MoCoV3<B> {
    /// The data preprocessor.
    pub fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    /// Copies the base encoder into a never-updated momentum encoder.
    pub fn prepare(mut self) -> Self {
        let online = OnlineWeights::default().add(&self.backbone).add(&self.neck);
        self.momentum_encoder = self.momentum_encoder.prepare(online);
        self
    }

    fn momentum(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 2>, ModelError> {
        let (b, n) = &self.momentum_encoder.module;
        Ok(gather(project(n, b.forward(x)?).detach()))
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for MoCoV3<B> {
    type Features = BackboneOut<B>;
    type Prediction = BackboneOut<B>;
    type StepState = ();

    backbone_features!("MoCoV3");

    fn loss(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<(LossOutput<B>, ()), ModelError> {
        let v = expect_pair(inputs, "MoCoV3")?;
        let q1 = project(&self.neck, self.backbone.forward(v[0].clone())?);
        let q2 = project(&self.neck, self.backbone.forward(v[1].clone())?);
        let k1 = self.momentum(v[0].clone())?;
        let k2 = self.momentum(v[1].clone())?;
        let loss = self.head.forward(q1, k2) + self.head.forward(q2, k1);
        Ok((LossOutput::new().with("loss", loss), ()))
    }

    fn after_step(mut self, _: (), ctx: &StepContext) -> Self {
        let online = OnlineWeights::default().add(&self.backbone).add(&self.neck);
        self.momentum_encoder = self.momentum_encoder.update(online, ctx.max_iters);
        self
    }
}
