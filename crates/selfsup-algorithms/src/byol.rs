//! Port of `mmselfsup.models.algorithms.BYOL`: an online network with a
//! predictor regresses a cosine-EMA target network's projections.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs, StepContext};
use selfsup_heads::LatentPredictHead;
use selfsup_layers::init::InitRng;
use selfsup_memories::{EmaKind, MomentumEncoder, OnlineWeights};
use selfsup_necks::NonLinearNeck;
use serde::{Deserialize, Serialize};

use crate::{
    common::{
        backbone_modes, backbone_spec, check_predictor, check_projection, expect_pair, project, Backbone, BackboneOut,
        ContrastiveBackboneConfig, LatentPredictHeadRegistry, NonLinearNeckRegistry,
    },
    AlgorithmSpec, ConfigIssue, InitCfg,
};

fn byol_base() -> f64 {
    0.996
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

impl AlgorithmSpec for ByolConfig {
    type Model<B: Backend> = Byol<B>;

    backbone_spec!();

    fn num_views(&self) -> usize {
        2
    }

    /// Checks the parts and their widths.
    fn validate(&self) -> Result<(), ConfigIssue> {
        check_projection(&self.data_preprocessor, &self.backbone, &self.neck)?;
        let LatentPredictHeadRegistry::LatentPredict(h) = &self.head;
        check_predictor(h.predictor.get(), self.neck.get().out_features(), "head.predictor")?;
        if !(0.0..=1.0).contains(&self.base_momentum) {
            return Err(ConfigIssue::new("base_momentum", "must be in [0, 1]"));
        }
        Ok(())
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> Byol<B> {
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
    fn online(&self) -> OnlineWeights<B> {
        OnlineWeights::default().with(&self.backbone).with(&self.neck)
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

    backbone_modes!("BYOL");

    fn loss(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<(LossOutput<B>, ()), ModelError> {
        let v = expect_pair(inputs, "BYOL")?;
        let p1 = project(&self.neck, self.backbone.forward(v[0].clone())?);
        let p2 = project(&self.neck, self.backbone.forward(v[1].clone())?);
        // MMSelfSup's `target_net.update_parameters` runs here: the buffers
        // follow the online network's after both of its passes.
        self.target_net.copy_buffers(self.online());
        let t1 = self.target(v[0].clone())?;
        let t2 = self.target(v[1].clone())?;
        let loss = (self.head.forward(p1, t2) + self.head.forward(p2, t1)).mul_scalar(2.0);
        Ok((LossOutput::new().with("loss", loss), ()))
    }

    /// Copies the online network into a never-updated target.
    fn prepare(mut self) -> Self {
        let online = self.online();
        self.target_net = self.target_net.prepare(online);
        self
    }

    fn after_step(mut self, _: (), ctx: &StepContext) -> Self {
        let online = self.online();
        self.target_net = self.target_net.update(online, ctx.max_iters);
        self
    }
}
