//! The algorithm registry: `model.type` names to configs and modules.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs, StepContext};

use crate::{
    contrastive::{
        moco::check_queue_batch, BackboneOut, BarlowTwins, BarlowTwinsConfig, Byol, ByolConfig, DenseCl, DenseClConfig, MoCo,
        MoCoConfig, MoCoV3, MoCoV3Config, SimClr, SimClrConfig, SimSiam, SimSiamConfig, SwAV, SwAVConfig,
    },
    Mae, MaeConfig,
};

/// A config field that cannot be honoured, with its key path below `model`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("model.{key}: {message}")]
pub struct ConfigIssue {
    /// Key path below `model` (`"neck.embed_dim"`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigIssue {
    /// A new issue.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

selfsup_config::registry! {
    /// `model = dict(type=..., ...)`: every algorithm selfsup implements.
    #[derive(Debug, Clone, PartialEq)]
    pub enum AlgorithmConfig {
        /// Masked autoencoder.
        "MAE" => Mae(MaeConfig),
        /// SimCLR.
        "SimCLR" => SimClr(SimClrConfig),
        /// MoCo v1 and v2.
        "MoCo" => MoCo(MoCoConfig),
        /// MoCo v3.
        "MoCoV3" => MoCoV3(MoCoV3Config),
        /// BYOL.
        "BYOL" => Byol(ByolConfig),
        /// SimSiam.
        "SimSiam" => SimSiam(SimSiamConfig),
        /// Barlow Twins.
        "BarlowTwins" => BarlowTwins(BarlowTwinsConfig),
        /// DenseCL.
        "DenseCL" => DenseCl(DenseClConfig),
        /// SwAV.
        "SwAV" => SwAV(SwAVConfig),
    }
}

/// Runs `$body` with `$c` bound to the inner config of any variant.
macro_rules! each_config {
    ($self:expr, $c:ident => $body:expr) => {
        match $self {
            AlgorithmConfig::Mae($c) => $body,
            AlgorithmConfig::SimClr($c) => $body,
            AlgorithmConfig::MoCo($c) => $body,
            AlgorithmConfig::MoCoV3($c) => $body,
            AlgorithmConfig::Byol($c) => $body,
            AlgorithmConfig::SimSiam($c) => $body,
            AlgorithmConfig::BarlowTwins($c) => $body,
            AlgorithmConfig::DenseCl($c) => $body,
            AlgorithmConfig::SwAV($c) => $body,
        }
    };
}

/// Runs `$body` with `$m` bound to the inner module of any variant.
macro_rules! each_model {
    ($self:expr, $m:ident => $body:expr) => {
        match $self {
            Algorithm::Mae($m) => $body,
            Algorithm::SimClr($m) => $body,
            Algorithm::MoCo($m) => $body,
            Algorithm::MoCoV3($m) => $body,
            Algorithm::Byol($m) => $body,
            Algorithm::SimSiam($m) => $body,
            Algorithm::BarlowTwins($m) => $body,
            Algorithm::DenseCl($m) => $body,
            Algorithm::SwAV($m) => $body,
        }
    };
}

impl AlgorithmConfig {
    /// MMSelfSup's name of the algorithm (`"MAE"`).
    pub fn name(&self) -> &'static str {
        self.type_name()
    }

    /// Checks the config, including dimensions that depend on each other.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        each_config!(self, c => c.validate())
    }

    /// Checks the training batch size against the model (MoCo's and
    /// DenseCL's queues take whole batches).
    pub fn check_batch_size(&self, batch_size: usize) -> Result<(), String> {
        match self {
            AlgorithmConfig::MoCo(c) => check_queue_batch(c.queue_len, batch_size),
            AlgorithmConfig::DenseCl(c) => check_queue_batch(c.queue_len, batch_size),
            _ => Ok(()),
        }
    }

    /// Builds the algorithm with seed 0; call [`AlgorithmConfig::validate`] first.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Algorithm<B> {
        self.init_seeded(device, 0)
    }

    /// Builds the algorithm with initial weights drawn from `seed`
    /// (independent of the backend and of anything else running).
    pub fn init_seeded<B: Backend>(&self, device: &B::Device, seed: u64) -> Algorithm<B> {
        let mut rng = selfsup_layers::init::InitRng::new(seed);
        let model = match self {
            AlgorithmConfig::Mae(c) => Algorithm::Mae(c.init(device, &mut rng)),
            AlgorithmConfig::SimClr(c) => Algorithm::SimClr(c.init(device, &mut rng)),
            AlgorithmConfig::MoCo(c) => Algorithm::MoCo(c.init(device, &mut rng)),
            AlgorithmConfig::MoCoV3(c) => Algorithm::MoCoV3(c.init(device, &mut rng)),
            AlgorithmConfig::Byol(c) => Algorithm::Byol(c.init(device, &mut rng)),
            AlgorithmConfig::SimSiam(c) => Algorithm::SimSiam(c.init(device, &mut rng)),
            AlgorithmConfig::BarlowTwins(c) => Algorithm::BarlowTwins(c.init(device, &mut rng)),
            AlgorithmConfig::DenseCl(c) => Algorithm::DenseCl(c.init(device, &mut rng)),
            AlgorithmConfig::SwAV(c) => Algorithm::SwAV(c.init(device, &mut rng)),
        };
        model.prepare()
    }

    /// The data preprocessor config.
    pub fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        each_config!(self, c => &c.data_preprocessor)
    }

    /// Number of views a batch must have.
    pub fn num_views(&self) -> usize {
        match self {
            AlgorithmConfig::Mae(_) => 1,
            AlgorithmConfig::SwAV(c) => c.num_views(),
            _ => 2,
        }
    }

    /// The size of each view for synthetic inputs (benchmarks) when the
    /// first view is `size` pixels: SwAV's later crop groups are
    /// `size·96/224`, as its 224 + 96 multi-crop.
    pub fn view_sizes(&self, size: usize) -> Vec<usize> {
        match self {
            AlgorithmConfig::SwAV(c) => c
                .loss_config()
                .num_crops
                .iter()
                .enumerate()
                .flat_map(|(g, &n)| std::iter::repeat_n(if g == 0 { size } else { (size * 96 / 224).max(1) }, n))
                .collect(),
            other => vec![size; other.num_views()],
        }
    }

    /// The square input size the model expects, when it fixes one.
    pub fn input_size(&self) -> Option<usize> {
        match self {
            AlgorithmConfig::Mae(c) => Some(c.backbone.get().img_size),
            AlgorithmConfig::SimClr(c) => c.backbone.input_size(),
            AlgorithmConfig::MoCo(c) => c.backbone.input_size(),
            AlgorithmConfig::MoCoV3(c) => c.backbone.input_size(),
            AlgorithmConfig::Byol(c) => c.backbone.input_size(),
            AlgorithmConfig::SimSiam(c) => c.backbone.input_size(),
            AlgorithmConfig::BarlowTwins(c) => c.backbone.input_size(),
            AlgorithmConfig::DenseCl(c) => c.backbone.input_size(),
            AlgorithmConfig::SwAV(c) => c.backbone.input_size(),
        }
    }

    /// Whether the backbone is a ViT (its global feature is the cls token).
    pub fn has_vit_backbone(&self) -> bool {
        match self {
            AlgorithmConfig::Mae(_) => true,
            AlgorithmConfig::SimClr(c) => c.backbone.is_vit(),
            AlgorithmConfig::MoCo(c) => c.backbone.is_vit(),
            AlgorithmConfig::MoCoV3(c) => c.backbone.is_vit(),
            AlgorithmConfig::Byol(c) => c.backbone.is_vit(),
            AlgorithmConfig::SimSiam(c) => c.backbone.is_vit(),
            AlgorithmConfig::BarlowTwins(c) => c.backbone.is_vit(),
            AlgorithmConfig::DenseCl(c) => c.backbone.is_vit(),
            AlgorithmConfig::SwAV(c) => c.backbone.is_vit(),
        }
    }
}

/// Any algorithm, chosen from a config. Checkpoint keys are the inner
/// algorithm's (`backbone.*`, `neck.*`): the variant name never appears.
#[derive(Module, Debug)]
pub enum Algorithm<B: Backend> {
    /// Masked autoencoder.
    Mae(Mae<B>),
    /// SimCLR.
    SimClr(SimClr<B>),
    /// MoCo v1/v2.
    MoCo(MoCo<B>),
    /// MoCo v3.
    MoCoV3(MoCoV3<B>),
    /// BYOL.
    Byol(Byol<B>),
    /// SimSiam.
    SimSiam(SimSiam<B>),
    /// Barlow Twins.
    BarlowTwins(BarlowTwins<B>),
    /// DenseCL.
    DenseCl(DenseCl<B>),
    /// SwAV.
    SwAV(SwAV<B>),
}

/// Global per-image features for downstream tools (extraction, kNN).
#[derive(Debug, Clone)]
pub struct Features<B: Backend> {
    /// `[batch, dims]`: the cls token for ViTs.
    pub global: Tensor<B, 2>,
}

/// The `predict` output of any algorithm.
#[derive(Debug, Clone)]
pub enum AnyPrediction<B: Backend> {
    /// MAE's reconstruction and mask.
    Mae(crate::MaePrediction<B>),
    /// The backbone's output (the contrastive family predicts nothing else).
    Backbone(BackboneOut<B>),
}

/// The step state of any algorithm.
#[derive(Debug)]
pub enum AnyStepState<B: Backend> {
    /// Nothing to carry.
    None,
    /// Keys to enqueue (MoCo).
    Keys(Tensor<B, 2>),
    /// Global and dense keys to enqueue (DenseCL).
    Keys2(Tensor<B, 2>, Tensor<B, 2>),
    /// SwAV's feature queue after the batch.
    SwAVQueue(Option<selfsup_losses::SwAVQueue<B>>),
}

impl<B: Backend> Algorithm<B> {
    /// The data preprocessor config.
    pub fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        each_model!(self, m => m.data_preprocessor())
    }

    /// Global features: the cls token after the final norm for ViTs, the
    /// average-pooled last feature map for ResNets.
    pub fn global_features(&self, inputs: &SelfSupInputs<B>) -> Result<Features<B>, ModelError> {
        match self {
            Algorithm::Mae(m) => Ok(Features { global: m.extract_feat(inputs)?.cls_token }),
            other => each_model!(other, m => Ok(Features { global: backbone_global(m.extract_feat(inputs))? })),
        }
    }

    /// `DenseCLHook`: the dense loss on (configured weight) or off (0).
    /// No effect on other algorithms.
    pub fn with_dense_loss(self, active: bool) -> Self {
        match self {
            Algorithm::DenseCl(m) => Algorithm::DenseCl(m.with_dense_loss(active)),
            other => other,
        }
    }

    /// `SwAVHook`'s frozen prototypes. No effect on other algorithms.
    pub fn with_frozen_prototypes(self, frozen: bool) -> Self {
        match self {
            Algorithm::SwAV(m) => Algorithm::SwAV(m.with_frozen_prototypes(frozen)),
            other => other,
        }
    }

    /// SwAV's feature queue (`None` for other algorithms or before it starts).
    pub fn swav_queue(&self) -> Option<&crate::contrastive::SwAVQueueState> {
        match self {
            Algorithm::SwAV(m) => m.queue(),
            _ => None,
        }
    }

    /// Sets SwAV's feature queue. No effect on other algorithms.
    pub fn with_swav_queue(self, queue: Option<crate::contrastive::SwAVQueueState>) -> Self {
        match self {
            Algorithm::SwAV(m) => Algorithm::SwAV(m.with_queue(queue)),
            other => other,
        }
    }

    /// Makes the model ready to train after it was built or loaded: momentum
    /// encoders that were never updated copy the online network (MMEngine's
    /// first `update_parameters`), and SwAV's prototypes are normalised (what
    /// MMSelfSup's forward does in place before the first step). Idempotent.
    pub fn prepare(self) -> Self {
        match self {
            Algorithm::MoCo(m) => Algorithm::MoCo(m.prepare()),
            Algorithm::DenseCl(m) => Algorithm::DenseCl(m.prepare()),
            Algorithm::Byol(m) => Algorithm::Byol(m.prepare()),
            Algorithm::MoCoV3(m) => Algorithm::MoCoV3(m.prepare()),
            Algorithm::SwAV(m) => Algorithm::SwAV(m.prepare()),
            other => other,
        }
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for Algorithm<B> {
    type Features = Features<B>;
    type Prediction = AnyPrediction<B>;
    type StepState = AnyStepState<B>;

    fn name(&self) -> &'static str {
        each_model!(self, m => m.name())
    }

    fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<Features<B>, ModelError> {
        self.global_features(inputs)
    }

    fn loss(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<(LossOutput<B>, AnyStepState<B>), ModelError> {
        match self {
            Algorithm::MoCo(m) => m.loss(inputs, draws).map(|(l, k)| (l, AnyStepState::Keys(k))),
            Algorithm::DenseCl(m) => m.loss(inputs, draws).map(|(l, (k, k2))| (l, AnyStepState::Keys2(k, k2))),
            Algorithm::SwAV(m) => m.loss(inputs, draws).map(|(l, q)| (l, AnyStepState::SwAVQueue(q))),
            other => each_model!(other, m => m.loss(inputs, draws).map(|(l, _)| (l, AnyStepState::None))),
        }
    }

    fn predict(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<AnyPrediction<B>, ModelError> {
        match self {
            Algorithm::Mae(m) => m.predict(inputs, draws).map(AnyPrediction::Mae),
            other => each_model!(other, m => m.extract_feat(inputs).map(|f| AnyPrediction::Backbone(into_backbone_out(f)))),
        }
    }

    fn after_step(self, state: AnyStepState<B>, ctx: &StepContext) -> Self {
        match (self, state) {
            (Algorithm::Mae(m), _) => Algorithm::Mae(m.after_step((), ctx)),
            (Algorithm::SimClr(m), _) => Algorithm::SimClr(m.after_step((), ctx)),
            (Algorithm::MoCo(m), AnyStepState::Keys(k)) => Algorithm::MoCo(m.after_step(k, ctx)),
            (Algorithm::DenseCl(m), AnyStepState::Keys2(k, k2)) => Algorithm::DenseCl(m.after_step((k, k2), ctx)),
            (Algorithm::MoCoV3(m), _) => Algorithm::MoCoV3(m.after_step((), ctx)),
            (Algorithm::Byol(m), _) => Algorithm::Byol(m.after_step((), ctx)),
            (Algorithm::SimSiam(m), _) => Algorithm::SimSiam(m.after_step((), ctx)),
            (Algorithm::BarlowTwins(m), _) => Algorithm::BarlowTwins(m.after_step((), ctx)),
            (Algorithm::SwAV(m), AnyStepState::SwAVQueue(q)) => Algorithm::SwAV(m.after_step(q, ctx)),
            (Algorithm::SwAV(m), _) => Algorithm::SwAV(m.after_step(None, ctx)),
            (m, _) => panic!("{}: step state from another algorithm", m.name()),
        }
    }
}

/// Features of any backbone as a global vector.
trait IntoGlobal<B: Backend> {
    fn global(self) -> Tensor<B, 2>;
}

impl<B: Backend> IntoGlobal<B> for BackboneOut<B> {
    fn global(self) -> Tensor<B, 2> {
        BackboneOut::global(self)
    }
}

impl<B: Backend> IntoGlobal<B> for selfsup_backbones::VitFeatures<B> {
    fn global(self) -> Tensor<B, 2> {
        self.cls_token
    }
}

fn backbone_global<B: Backend, F: IntoGlobal<B>>(f: Result<F, ModelError>) -> Result<Tensor<B, 2>, ModelError> {
    f.map(IntoGlobal::global)
}

/// Backbone features of any algorithm as [`BackboneOut`].
trait IntoBackboneOut<B: Backend> {
    fn into_out(self) -> BackboneOut<B>;
}

impl<B: Backend> IntoBackboneOut<B> for BackboneOut<B> {
    fn into_out(self) -> BackboneOut<B> {
        self
    }
}

impl<B: Backend> IntoBackboneOut<B> for selfsup_backbones::VitFeatures<B> {
    fn into_out(self) -> BackboneOut<B> {
        BackboneOut::Vit(self)
    }
}

fn into_backbone_out<B: Backend, F: IntoBackboneOut<B>>(f: F) -> BackboneOut<B> {
    f.into_out()
}
