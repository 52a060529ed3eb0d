//! Momentum encoders: MMEngine's `ExponentialMovingAverage` (MoCo, DenseCL)
//! and MMSelfSup's `CosineEMA` (BYOL, MoCo v3), with their exact update
//! rules and MMEngine's `update_buffers=False` semantics.
//!
//! MMSelfSup runs `update_parameters` inside `loss()`, after the online
//! network's forward pass and before the target's; the first call copies
//! the online network. Here:
//! - parameters: the copy happens in [`MomentumEncoder::prepare`] (before
//!   training, and after loading a checkpoint whose `steps` is 0) and every
//!   later average in the algorithm's `after_step`, with the online weights
//!   after the optimiser step: the values MMSelfSup's next `loss()` would
//!   average, so every forward sees the same target network;
//! - BatchNorm buffers (`update_buffers=False`): copied from the online
//!   network at MMEngine's moment, inside `loss()` after the online forward
//!   pass ([`MomentumEncoder::copy_buffers`]), so that the target's own
//!   train-mode forward then moves them as PyTorch's does. The running
//!   statistics live in burn's `RunningState`, which a forward pass updates
//!   through `&self`, and so does this copy. `after_step` leaves them alone.
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
    pub fn with<M: Module<B>>(mut self, module: &M) -> Self {
        module.visit(&mut self);
        self
    }
}

impl<B: Backend> ModuleVisitor<B> for OnlineWeights<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.out.push(param.val().detach().set_require_grad(false).into_primitive());
    }
}

/// What an [`Average`] pass does to each tensor of the target.
#[derive(Debug, Clone, Copy)]
enum Pass {
    /// Copy every tensor (MMEngine's first update).
    Copy,
    /// Average the parameters with this rule and momentum, keep the buffers.
    Average(EmaKind, f64),
    /// Copy the buffers, keep the parameters.
    Buffers,
}

struct Average<B: Backend> {
    online: std::vec::IntoIter<TensorPrimitive<B>>,
    path: Vec<String>,
    pass: Pass,
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
        let value = match (self.pass, is_buffer) {
            (Pass::Copy, _) | (Pass::Buffers, true) => online,
            (Pass::Buffers, false) | (Pass::Average(..), true) => target,
            (Pass::Average(EmaKind::Lerp { weight }, _), false) => target.clone() + (online - target).mul_scalar(weight),
            (Pass::Average(EmaKind::Cosine { .. }, m), false) => target.mul_scalar(m) + online.mul_scalar(1.0 - m),
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

    fn apply(mut self, online: OnlineWeights<B>, pass: Pass) -> Self {
        let mut avg = Average { online: online.out.into_iter(), path: Vec::new(), pass };
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
            self.apply(online, Pass::Copy)
        } else {
            self
        }
    }

    /// One update of the parameters towards `online` (MMEngine's
    /// `update_parameters` when `steps > 0`), then `steps += 1`. The buffers
    /// stay: [`MomentumEncoder::copy_buffers`] set them during `loss()`.
    /// `max_iters` drives `CosineEMA`.
    pub fn update(self, online: OnlineWeights<B>, max_iters: usize) -> Self {
        if self.steps() == 0 {
            return self.prepare(online);
        }
        let momentum = self.kind.momentum(self.steps(), max_iters);
        let kind = self.kind;
        self.apply(online, Pass::Average(kind, momentum))
    }

    /// MMEngine's buffer copy (`update_buffers=False`) at the moment
    /// `update_parameters` runs inside `loss()`: the online network's
    /// BatchNorm buffers (`running_mean`, `running_var`,
    /// `num_batches_tracked`) into the target, through `&self`. Call it
    /// after the online forward pass and before the target's.
    pub fn copy_buffers(&self, online: OnlineWeights<B>) {
        // `RunningState` keeps its value behind a shared lock, so mapping a
        // clone writes the buffers of `self`; the clone's parameters are
        // dropped unchanged.
        let mut copy = Average { online: online.out.into_iter(), path: Vec::new(), pass: Pass::Buffers };
        let _ = self.module.clone().map(&mut copy);
    }
}
