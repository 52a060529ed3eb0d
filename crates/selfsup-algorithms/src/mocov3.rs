//! Port of `mmselfsup.models.algorithms.MoCoV3`: a base and a cosine-EMA
//! momentum encoder, a predictor, and InfoNCE across the two views.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs, StepContext};
use selfsup_heads::MoCoV3Head;
use selfsup_layers::init::InitRng;
use selfsup_memories::{EmaKind, MomentumEncoder, OnlineWeights};
use selfsup_necks::NonLinearNeck;
use serde::{Deserialize, Serialize};

use crate::{
    common::{
        backbone_modes, backbone_spec, check_predictor, check_projection, expect_pair, gather, project, Backbone, BackboneOut,
        ContrastiveBackboneConfig, MoCoV3HeadRegistry, NonLinearNeckRegistry,
    },
    AlgorithmSpec, ConfigIssue, InitCfg,
};

fn base_099() -> f64 {
    0.99
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

impl AlgorithmSpec for MoCoV3Config {
    type Model<B: Backend> = MoCoV3<B>;

    backbone_spec!();

    fn num_views(&self) -> usize {
        2
    }

    /// Checks the parts and their widths.
    fn validate(&self) -> Result<(), ConfigIssue> {
        check_projection(&self.data_preprocessor, &self.backbone, &self.neck)?;
        let MoCoV3HeadRegistry::MoCoV3(h) = &self.head;
        check_predictor(h.predictor.get(), self.neck.get().out_features(), "head.predictor")?;
        h.loss.get().validate().map_err(|(k, m)| ConfigIssue::new(format!("head.loss.{k}"), m))?;
        if !(0.0..=1.0).contains(&self.base_momentum) {
            return Err(ConfigIssue::new("base_momentum", "must be in [0, 1]"));
        }
        Ok(())
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> MoCoV3<B> {
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
    fn online(&self) -> OnlineWeights<B> {
        OnlineWeights::default().with(&self.backbone).with(&self.neck)
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

    backbone_modes!("MoCoV3");

    fn loss(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<(LossOutput<B>, ()), ModelError> {
        let v = expect_pair(inputs, "MoCoV3")?;
        let q1 = project(&self.neck, self.backbone.forward(v[0].clone())?);
        let q2 = project(&self.neck, self.backbone.forward(v[1].clone())?);
        // MMSelfSup's `momentum_encoder.update_parameters` runs here: the
        // buffers follow the base encoder's after both of its passes.
        self.momentum_encoder.copy_buffers(self.online());
        let k1 = self.momentum(v[0].clone())?;
        let k2 = self.momentum(v[1].clone())?;
        let loss = self.head.forward(q1, k2) + self.head.forward(q2, k1);
        Ok((LossOutput::new().with("loss", loss), ()))
    }

    /// Copies the base encoder into a never-updated momentum encoder.
    fn prepare(mut self) -> Self {
        let online = self.online();
        self.momentum_encoder = self.momentum_encoder.prepare(online);
        self
    }

    fn after_step(mut self, _: (), ctx: &StepContext) -> Self {
        let online = self.online();
        self.momentum_encoder = self.momentum_encoder.update(online, ctx.max_iters);
        self
    }
}
