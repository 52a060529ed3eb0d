//! Momentum encoders: MMEngine's `ExponentialMovingAverage` (MoCo, DenseCL)
//! and MMSelfSup's `CosineEMA` (BYOL, MoCo v3), with their exact update
//! rules and MMEngine's `update_buffers=False` semantics.
//!
//! MMSelfSup runs `update_parameters` at the start of `loss()`, before the
//! keys are computed; the first call copies the online network. Here the
//! copy happens in [`MomentumEncoder::prepare`] (before training, and after
//! loading a checkpoint whose `steps` is 0) and every later update in the
//! algorithm's `after_step`, with the online weights after the optimiser
//! step: the same values MMSelfSup's next `loss()` would average, so every
//! forward sees the same target network. BatchNorm buffers are copied from
//! the online network at each update, as MMEngine does.
use burn::{
    module::{Module, ModuleMapper, ModuleVisitor, Param},
    tensor::{backend::Backend, ElementConversion, Tensor, TensorPrimitive},
};
use selfsup_layers::init::fixed;

/// How the target follows the online network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EmaKind {
    /// MMEngine's `ExponentialMovingAverage(momentum=w)`:
    /// `t ← t + w·(o − t)` (`lerp_`); MoCo passes `w = 1 − 0.999`.
    Lerp {
        /// Weight of the online network (MMEngine's convention).
        weight: f64,
    },
    /// MMSelfSup's `CosineEMA(momentum=m₀, end_momentum=m₁)`:
    /// `m = m₁ − (m₁ − m₀)·(cos(π·steps/max_iters) + 1)/2`, `t ← m·t + (1 − m)·o`.
    Cosine {
        /// Starting momentum (`base_momentum`).
        base: f64,
        /// Final momentum.
        end: f64,
    },
}

impl EmaKind {
    /// The momentum `m` (weight of the target) at update number `steps`.
    pub fn momentum(&self, steps: usize, max_iters: usize) -> f64 {
        match *self {
            EmaKind::Lerp { weight } => 1.0 - weight,
            EmaKind::Cosine { base, end } => {
                end - (end - base) * ((std::f64::consts::PI * steps as f64 / max_iters.max(1) as f64).cos() + 1.0) / 2.0
            }
        }
    }
}

/// A momentum copy of a module. Keys `module.*` and `steps`, as MMEngine's
/// averaged models (`encoder_k`, `target_net`, `momentum_encoder`).
///
/// The target never trains: its parameters do not require gradients, so
/// optimisers leave it out, and its outputs are detached by the algorithms.
#[derive(Module, Debug)]
pub struct MomentumEncoder<B: Backend, M> {
    /// The averaged module.
    pub module: M,
    /// Number of updates so far, MMEngine's `steps` buffer (a float here,
    /// int64 in checkpoints).
    pub steps: Param<Tensor<B, 1>>,
    #[module(skip)]
    kind: EmaKind,
}

/// Names of the buffers MMEngine copies instead of averaging.
const BUFFERS: &[&str] = &["running_mean", "running_var", "num_batches_tracked"];

/// The online network's tensors in visiting order, collected from one or
/// more modules (MMSelfSup's `nn.Sequential(backbone, neck)`).
pub struct OnlineWeights<B: Backend> {
    out: Vec<TensorPrimitive<B>>,
}

impl<B: Backend> Default for OnlineWeights<B> {
    fn default() -> Self {
        Self { out: Vec::new() }
    }
}

impl<B: Backend> OnlineWeights<B> {
    /// Appends `module`'s tensors; add the parts in the target's order.
    pub fn add<M: Module<B>>(mut self, module: &M) -> Self {
        module.visit(&mut self);
        self
    }
}

impl<B: Backend> ModuleVisitor<B> for OnlineWeights<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.out.push(param.val().detach().set_require_grad(false).into_primitive());
    }
}

struct Average<B: Backend> {
    online: std::vec::IntoIter<TensorPrimitive<B>>,
    path: Vec<String>,
    kind: Option<EmaKind>,
    momentum: f64,
}

impl<B: Backend> ModuleMapper<B> for Average<B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, target, mapper) = param.consume();
        let online = Tensor::<B, D>::from_primitive(self.online.next().expect("online and target have the same structure"));
        let is_buffer = self.path.last().is_some_and(|n| BUFFERS.contains(&n.as_str()));
        let target = target.detach().set_require_grad(false);
        let value = match (self.kind, is_buffer) {
            (None, _) | (_, true) => online,
            (Some(EmaKind::Lerp { weight }), false) => target.clone() + (online - target).mul_scalar(weight),
            (Some(EmaKind::Cosine { .. }), false) => target.mul_scalar(self.momentum) + online.mul_scalar(1.0 - self.momentum),
        };
        Param::from_mapped_value(id, value.set_require_grad(false), mapper)
    }
}

impl<B: Backend, M: Module<B>> MomentumEncoder<B, M> {
    /// A target built from its own config (any weights: [`MomentumEncoder::prepare`]
    /// copies the online network before the first step), `steps = 0`.
    pub fn new(module: M, kind: EmaKind, device: &B::Device) -> Self {
        Self { module: module.no_grad(), steps: fixed(Tensor::zeros([1], device)), kind }
    }

    /// The update rule.
    pub fn kind(&self) -> EmaKind {
        self.kind
    }

    /// Updates so far.
    pub fn steps(&self) -> usize {
        self.steps.val().into_scalar().elem::<f64>() as usize
    }

    fn apply(mut self, online: OnlineWeights<B>, kind: Option<EmaKind>, momentum: f64) -> Self {
        let mut avg = Average { online: online.out.into_iter(), path: Vec::new(), kind, momentum };
        self.module = self.module.map(&mut avg);
        let steps = self.steps() + 1;
        let (id, s, mapper) = self.steps.consume();
        self.steps = Param::from_mapped_value(id, s.detach().set_require_grad(false).zeros_like().add_scalar(steps as f64), mapper);
        self
    }

    /// MMEngine's first `update_parameters` call: a copy of `online` (the
    /// tensors of the modules the target mirrors, in order) when
    /// no update happened yet (`steps == 0`); otherwise unchanged.
    pub fn prepare(self, online: OnlineWeights<B>) -> Self {
        if self.steps() == 0 {
            self.apply(online, None, 0.0)
        } else {
            self
        }
    }

    /// One update towards `online` (MMEngine's `update_parameters` when
    /// `steps > 0`), then `steps += 1`. `max_iters` drives `CosineEMA`.
    pub fn update(self, online: OnlineWeights<B>, max_iters: usize) -> Self {
        if self.steps() == 0 {
            return self.prepare(online);
        }
        let momentum = self.kind.momentum(self.steps(), max_iters);
        let kind = self.kind;
        self.apply(online, Some(kind), momentum)
    }
}
