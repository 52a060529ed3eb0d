//! Optimisers with PyTorch semantics and MMEngine's `paramwise_cfg`.
//!
//! burn's optimisers apply one learning rate and one weight decay to every
//! parameter; MMSelfSup's configs need per-parameter multipliers by name
//! (`custom_keys`, `bias_decay_mult`, `norm_decay_mult`). This optimiser walks
//! the module with the parameters' PyTorch names, so `custom_keys` match
//! exactly what they match in MMEngine.
//!
//! The files follow the classes they port: [`OptimWrapperConfig`] (MMEngine's
//! `optim_wrapper` dict) and the [`Optimizer`] that dispatches to the update
//! rules are here; `adamw.rs`, `sgd.rs`, `lars.rs` and `lamb.rs` hold each
//! optimiser's arguments and update; `default_constructor.rs` holds
//! `paramwise_cfg` and the parameters' names, and
//! `layer_decay_optim_wrapper_constructor.rs` the layer-wise lr decay;
//! `clip_grad.rs` the clipping by the global gradient norm, and
//! `amp_optim_wrapper.rs` `AmpOptimWrapper`'s dtype and loss scaler.
use std::collections::HashMap;

use burn::{
    module::{AutodiffModule, ModuleMapper, Param, ParamId},
    optim::GradientsParams,
    tensor::{backend::AutodiffBackend, Tensor, TensorData},
};
use selfsup_weights::KeyMap;
use serde::{Deserialize, Serialize};

mod adamw;
mod amp_optim_wrapper;
mod clip_grad;
mod default_constructor;
mod lamb;
mod lars;
mod layer_decay_optim_wrapper_constructor;
mod sgd;

pub use adamw::AdamWConfig;
pub use amp_optim_wrapper::{Amp, LossScaler};
pub use clip_grad::{global_grad_norm, ClipGradConfig};
pub use default_constructor::{named_params, CustomKey, ParamInfo, ParamSetting, ParamwiseCfg};
pub use lamb::LambConfig;
pub use lars::LarsConfig;
pub use layer_decay_optim_wrapper_constructor::LayerDecay;
pub use sgd::SgdConfig;

use adamw::AdamWRule;
use clip_grad::compact_grad_norm;
use lamb::LambRule;
use lars::LarsRule;
use sgd::SgdRule;

/// `optim_wrapper` of an MMEngine config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimWrapperConfig {
    /// `OptimWrapper`, or `AmpOptimWrapper` (see [`OptimWrapperConfig::validate`]).
    #[serde(rename = "type", default = "optim_wrapper_type")]
    pub kind: String,
    /// The optimiser.
    pub optimizer: OptimizerConfig,
    /// MMEngine's optimiser-wrapper constructor:
    /// `DefaultOptimWrapperConstructor` (when absent) or
    /// `LearningRateDecayOptimWrapperConstructor` (layer-wise lr decay,
    /// [`LayerDecay`]), with or without the `mmselfsup.` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constructor: Option<String>,
    /// Per-parameter multipliers.
    #[serde(default)]
    pub paramwise_cfg: ParamwiseCfg,
    /// Gradient clipping: `dict(max_norm=..., norm_type=2)`.
    #[serde(default)]
    pub clip_grad: Option<ClipGradConfig>,
    /// Gradient accumulation (`accumulative_counts`).
    #[serde(default = "one_usize")]
    pub accumulative_counts: usize,
    /// `AmpOptimWrapper`'s loss scale (`"dynamic"` or a number).
    #[serde(default)]
    pub loss_scale: Option<serde_json::Value>,
    /// `AmpOptimWrapper`'s dtype (`"float16"`, `"bfloat16"`).
    #[serde(default)]
    pub dtype: Option<String>,
}

fn optim_wrapper_type() -> String {
    "OptimWrapper".into()
}
fn one_usize() -> usize {
    1
}

selfsup_config::registry! {
    /// `optimizer = dict(type='AdamW' | 'SGD' | 'LARS' | 'Lamb', lr=..., ...)`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum OptimizerConfig {
        /// `torch.optim.AdamW`.
        "AdamW" => AdamW(AdamWConfig),
        /// `torch.optim.SGD`.
        "SGD" => Sgd(SgdConfig),
        /// MMSelfSup's LARS.
        "LARS" => Lars(LarsConfig),
        /// mmcls's LAMB.
        "Lamb" => Lamb(LambConfig),
    }
}

impl OptimWrapperConfig {
    /// Checks what this engine can honour; `(key, message)` on failure.
    pub fn validate(&self) -> Result<(), (String, String)> {
        match self.kind.as_str() {
            "OptimWrapper" | "AmpOptimWrapper" => {}
            other => return Err(("optim_wrapper.type".into(), format!("unknown optim wrapper `{other}`; known: OptimWrapper"))),
        }
        if self.accumulative_counts == 0 {
            return Err(("optim_wrapper.accumulative_counts".into(), "must be at least 1".into()));
        }
        if let Some(c) = &self.clip_grad {
            if c.norm_type != 2.0 {
                return Err(("optim_wrapper.clip_grad.norm_type".into(), "only norm_type = 2 is supported".into()));
            }
        }
        if let OptimizerConfig::AdamW(AdamWConfig { amsgrad: true, .. }) = &self.optimizer {
            return Err(("optim_wrapper.optimizer.amsgrad".into(), "AMSGrad is not supported".into()));
        }
        if let OptimizerConfig::Sgd(SgdConfig { nesterov: true, momentum, dampening, .. }) = &self.optimizer {
            if *momentum <= 0.0 || *dampening != 0.0 {
                return Err(("optim_wrapper.optimizer.nesterov".into(), "Nesterov momentum requires a momentum and zero dampening".into()));
            }
        }
        let (rate, model_type) = self.layer_decay_fields();
        match self.constructor.as_deref().map(|c| c.strip_prefix("mmselfsup.").or(c.strip_prefix("mmengine.")).unwrap_or(c)) {
            None | Some("DefaultOptimWrapperConstructor") => {
                if rate.is_some() || model_type.is_some() {
                    return Err((
                        "optim_wrapper.optimizer.layer_decay_rate".into(),
                        "`layer_decay_rate` and `model_type` are read only by constructor = \"LearningRateDecayOptimWrapperConstructor\""
                            .into(),
                    ));
                }
            }
            Some("LearningRateDecayOptimWrapperConstructor") => match model_type {
                Some("vit") => {
                    if rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
                        return Err(("optim_wrapper.optimizer.layer_decay_rate".into(), "must be > 0".into()));
                    }
                }
                Some(other) => {
                    return Err((
                        "optim_wrapper.optimizer.model_type".into(),
                        format!("layer-wise lr decay for `{other}` is not supported; known: vit"),
                    ))
                }
                None => {
                    return Err(("optim_wrapper.optimizer.model_type".into(), "layer-wise lr decay needs `model_type` (\"vit\")".into()))
                }
            },
            Some(other) => {
                return Err((
                    "optim_wrapper.constructor".into(),
                    format!(
                        "unknown constructor `{other}`; known: DefaultOptimWrapperConstructor, LearningRateDecayOptimWrapperConstructor"
                    ),
                ))
            }
        }
        self.amp()?;
        let lr = &self.lr();
        if lr.is_nan() || *lr < 0.0 {
            return Err(("optim_wrapper.optimizer.lr".into(), format!("lr must be >= 0, got {lr}")));
        }
        Ok(())
    }

    /// What the engine does differently from MMEngine for this config, to
    /// print at the start of a run.
    pub fn warnings(&self) -> Vec<String> {
        vec![]
    }

    /// `(layer_decay_rate, model_type)` of the optimiser dict.
    fn layer_decay_fields(&self) -> (Option<f64>, Option<&str>) {
        let (r, t) = match &self.optimizer {
            OptimizerConfig::AdamW(c) => (c.layer_decay_rate, &c.model_type),
            OptimizerConfig::Sgd(c) => (c.layer_decay_rate, &c.model_type),
            OptimizerConfig::Lars(c) => (c.layer_decay_rate, &c.model_type),
            OptimizerConfig::Lamb(c) => (c.layer_decay_rate, &c.model_type),
        };
        (r, t.as_deref())
    }

    /// The layer-wise lr decay this wrapper asks for, if its constructor is
    /// `LearningRateDecayOptimWrapperConstructor` (call
    /// [`OptimWrapperConfig::validate`] first).
    pub fn layer_decay(&self) -> Option<LayerDecay> {
        let c = self.constructor.as_deref()?;
        c.ends_with("LearningRateDecayOptimWrapperConstructor").then(|| LayerDecay { rate: self.layer_decay_fields().0.unwrap_or(1.0) })
    }

    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        match &self.optimizer {
            OptimizerConfig::AdamW(c) => c.lr,
            OptimizerConfig::Sgd(c) => c.lr,
            OptimizerConfig::Lars(c) => c.lr,
            OptimizerConfig::Lamb(c) => c.lr,
        }
    }
}

/// The update rule of an [`Optimizer`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    AdamW(AdamWRule),
    Sgd(SgdRule),
    Lars(LarsRule),
    Lamb(LambRule),
}

impl Rule {
    /// Names of the per-parameter state tensors, as PyTorch's `state` keys.
    fn slots(&self) -> &'static [&'static str] {
        match self {
            Rule::AdamW(_) | Rule::Lamb(_) => &["exp_avg", "exp_avg_sq"],
            Rule::Sgd(SgdRule { momentum, .. }) | Rule::Lars(LarsRule { momentum, .. }) if *momentum != 0.0 => &["momentum_buffer"],
            _ => &[],
        }
    }
}

/// The optimisers of MMSelfSup's configs with PyTorch's (and MMSelfSup's
/// LARS) semantics, per-parameter multipliers from `paramwise_cfg`, and
/// optional clipping by the global gradient norm (torch's `clip_grad_norm_`):
///
/// - AdamW: decoupled decay `p ← p·(1 − lr·wd)`, bias-corrected moments,
///   `eps` added to `√v̂`;
/// - SGD: `d = g + wd·p`, `buf = m·buf + (1 − dampening)·d` (the first
///   buffer is `d`), Nesterov optional, `p ← p − lr·d`;
/// - LARS: `d = (g + wd·p)·lr·η‖p‖/(‖g‖ + wd‖p‖ + ε)` (trust ratio 1 for
///   `lars_exclude` groups or zero norms), then momentum as SGD and
///   `p ← p − d`. The trust ratio stays on the device (no host sync);
/// - Lamb (mmcls/timm): gradients divided by `max(‖g‖/max_grad_norm, 1)`
///   over all parameters, Adam moments, `u = m̂/(√v̂ + eps) + wd·p`, then
///   `p ← p − lr·(‖p‖/‖u‖)·u` when `wd ≠ 0` or `always_adapt` (ratio 1
///   for zero norms, capped at 1 with `trust_clip`).
#[derive(Debug, Clone)]
pub struct Optimizer<B: AutodiffBackend> {
    rule: Rule,
    clip: Option<f64>,
    params: HashMap<ParamId, ParamInfo>,
    state: HashMap<ParamId, Vec<Tensor<B::InnerBackend, 1>>>,
    step: usize,
    group_mults: Vec<(f64, bool)>,
    /// Base (`weight_decay × decay_mult`) and current weight decay of each
    /// weight-decay group (one per distinct base).
    wd_bases: Vec<f64>,
    wds: Vec<f64>,
}

/// The name the MAE tests and tools used first.
pub type AdamW<B> = Optimizer<B>;

impl<B: AutodiffBackend> Optimizer<B> {
    /// Builds the optimiser for `module`, resolving `paramwise_cfg` against
    /// the parameters' PyTorch names. Frozen parameters (`require_grad =
    /// false`) are left out, as MMEngine leaves them out of its groups.
    pub fn new<M: AutodiffModule<B>>(cfg: &OptimWrapperConfig, module: &M, keymap: &KeyMap) -> Self {
        let (rule, weight_decay) = match cfg.optimizer.clone() {
            OptimizerConfig::AdamW(c) => (Rule::AdamW(AdamWRule { betas: c.betas, eps: c.eps }), c.weight_decay),
            OptimizerConfig::Sgd(c) => {
                (Rule::Sgd(SgdRule { momentum: c.momentum, dampening: c.dampening, nesterov: c.nesterov }), c.weight_decay)
            }
            OptimizerConfig::Lars(c) => (
                Rule::Lars(LarsRule { momentum: c.momentum, dampening: c.dampening, nesterov: c.nesterov, eta: c.eta, eps: c.eps }),
                c.weight_decay,
            ),
            OptimizerConfig::Lamb(c) => (
                Rule::Lamb(LambRule {
                    betas: c.betas,
                    eps: c.eps,
                    bias_correction: c.bias_correction,
                    grad_averaging: c.grad_averaging,
                    max_grad_norm: c.max_grad_norm,
                    trust_clip: c.trust_clip,
                    always_adapt: c.always_adapt,
                }),
                c.weight_decay,
            ),
        };
        let mut group_mults: Vec<(f64, bool)> = Vec::new();
        let mut wd_bases: Vec<f64> = Vec::new();
        let mut params = HashMap::new();
        let trainable: Vec<_> = named_params(module, keymap).into_iter().filter(|p| p.3).collect();
        let layer_decay = cfg.layer_decay().map(|ld| {
            let names: Vec<String> = trainable.iter().map(|p| p.1.clone()).collect();
            ld.settings(&names, &cfg.paramwise_cfg.custom_keys)
        });
        for (i, (id, name, is_norm, _, ndim)) in trainable.into_iter().enumerate() {
            let setting = match &layer_decay {
                Some(s) => ParamSetting { lr_mult: s[i].0, decay_mult: s[i].1, lars_exclude: false, fix_lr: false, momentum: None },
                None => cfg.paramwise_cfg.setting(&name, is_norm, ndim),
            };
            let key = (setting.lr_mult, setting.fix_lr);
            let group = match group_mults.iter().position(|m| *m == key) {
                Some(g) => g,
                None => {
                    group_mults.push(key);
                    group_mults.len() - 1
                }
            };
            let wd = weight_decay * setting.decay_mult;
            let wd_group = match wd_bases.iter().position(|b| *b == wd) {
                Some(g) => g,
                None => {
                    wd_bases.push(wd);
                    wd_bases.len() - 1
                }
            };
            params.insert(id, ParamInfo { name, setting, group, wd_group });
        }
        if group_mults.is_empty() {
            group_mults.push((1.0, false));
        }
        Self {
            rule,
            clip: cfg.clip_grad.as_ref().map(|c| c.max_norm),
            params,
            state: HashMap::new(),
            step: 0,
            group_mults,
            wds: wd_bases.clone(),
            wd_bases,
        }
    }

    /// The base weight decay (`weight_decay × decay_mult`) of every
    /// weight-decay group, as a weight-decay schedule starts from them.
    pub fn group_weight_decays(&self) -> &[f64] {
        &self.wd_bases
    }

    /// Sets the current weight decay of every weight-decay group (what a
    /// weight-decay schedule holds); until then each group has its base.
    ///
    /// # Panics
    /// When `wds` does not have one value per group.
    pub fn set_weight_decays(&mut self, wds: &[f64]) {
        assert_eq!(wds.len(), self.wd_bases.len(), "one weight decay per weight-decay group");
        self.wds.copy_from_slice(wds);
    }

    /// The lr multiplier of every learning-rate group.
    pub fn group_lr_mults(&self) -> Vec<f64> {
        self.group_mults.iter().map(|(m, _)| *m).collect()
    }

    /// Whether each group keeps a constant learning rate (`fix_lr`).
    pub fn group_fixed(&self) -> Vec<bool> {
        self.group_mults.iter().map(|(_, f)| *f).collect()
    }

    /// The parameters and their settings, by PyTorch name.
    pub fn param_infos(&self) -> Vec<&ParamInfo> {
        let mut v: Vec<_> = self.params.values().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Optimiser steps taken.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// One step. `group_lrs[g]` is the current lr of group `g` (already
    /// multiplied by its `lr_mult`, as MMEngine's schedulers hold it).
    /// Returns the global gradient norm before clipping.
    pub fn step<M: AutodiffModule<B>>(&mut self, group_lrs: &[f64], module: M, mut grads: GradientsParams) -> (M, f64) {
        let norm = compact_grad_norm::<B, M>(&module, &mut grads);
        self.step_with_norm(group_lrs, module, grads, norm, 1.0)
    }

    /// A step on gradients of a loss multiplied by `loss_scale`
    /// (`GradScaler`'s `unscale_` + `step`): the gradients are divided by
    /// it before clipping and the update. When their norm is not finite the
    /// step is skipped (parameters, state and step count untouched).
    /// Returns the unscaled global gradient norm and whether it stepped.
    pub fn step_scaled<M: AutodiffModule<B>>(
        &mut self,
        group_lrs: &[f64],
        module: M,
        mut grads: GradientsParams,
        loss_scale: f64,
    ) -> (M, f64, bool) {
        let norm = compact_grad_norm::<B, M>(&module, &mut grads) / loss_scale;
        if !norm.is_finite() {
            return (module, norm, false);
        }
        let (module, norm) = self.step_with_norm(group_lrs, module, grads, norm, 1.0 / loss_scale);
        (module, norm, true)
    }

    /// `norm` is the global norm of `grads · unscale`.
    fn step_with_norm<M: AutodiffModule<B>>(
        &mut self,
        group_lrs: &[f64],
        module: M,
        mut grads: GradientsParams,
        norm: f64,
        unscale: f64,
    ) -> (M, f64) {
        // torch.nn.utils.clip_grad_norm_: scale by max/(norm+1e-6) when below 1.
        let mut scale = match self.clip {
            Some(max) if max / (norm + 1e-6) < 1.0 => max / (norm + 1e-6),
            _ => 1.0,
        };
        // Lamb clips again, by its own `max_grad_norm`, the norm of the
        // gradients it is given (the wrapper's clipped ones).
        if let Rule::Lamb(LambRule { max_grad_norm: Some(max), .. }) = self.rule {
            if norm * scale > max {
                scale /= norm * scale / max;
            }
        }
        self.step += 1;
        let scale = scale * unscale;
        let mut mapper = StepMapper { opt: self, grads: &mut grads, group_lrs, scale };
        (module.map(&mut mapper), norm)
    }

    /// The per-parameter state by slot and PyTorch name, for checkpoints:
    /// `(slot, name, tensor)` flattened (`exp_avg`, `momentum_buffer`, ...).
    pub fn state_tensors(&self) -> Vec<(String, String, TensorData)> {
        let slots = self.rule.slots();
        let mut out: Vec<_> = self
            .state
            .iter()
            .filter_map(|(id, tensors)| Some((self.params.get(id)?, tensors)))
            .flat_map(|(info, tensors)| slots.iter().zip(tensors).map(move |(slot, t)| (slot.to_string(), info.name.clone(), t.to_data())))
            .collect();
        out.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        out
    }

    /// Restores state saved by [`Optimizer::state_tensors`] and the step
    /// count. Returns the entries that matched no parameter or slot.
    pub fn load_state(
        &mut self,
        step: usize,
        tensors: Vec<(String, String, TensorData)>,
        device: &burn::tensor::Device<B::InnerBackend>,
    ) -> Vec<String> {
        let by_name: HashMap<String, ParamId> = self.params.iter().map(|(id, i)| (i.name.clone(), *id)).collect();
        let slots = self.rule.slots();
        let mut found: HashMap<ParamId, Vec<Option<Tensor<B::InnerBackend, 1>>>> = HashMap::new();
        let mut unknown = vec![];
        for (slot, name, data) in tensors {
            match (by_name.get(&name), slots.iter().position(|s| *s == slot)) {
                (Some(id), Some(i)) => {
                    let entry = found.entry(*id).or_insert_with(|| vec![None; slots.len()]);
                    entry[i] = Some(Tensor::from_data(data, device));
                }
                _ => unknown.push(format!("{slot}.{name}")),
            }
        }
        for (id, entry) in found {
            if entry.iter().all(Option::is_some) {
                self.state.insert(id, entry.into_iter().flatten().collect());
            }
        }
        self.step = step;
        unknown
    }
}

struct StepMapper<'a, B: AutodiffBackend> {
    opt: &'a mut Optimizer<B>,
    grads: &'a mut GradientsParams,
    group_lrs: &'a [f64],
    scale: f64,
}

impl<B: AutodiffBackend> ModuleMapper<B> for StepMapper<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(info) = self.opt.params.get(&id).cloned() else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let Some(grad) = self.grads.remove::<B::InnerBackend, D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let shape = tensor.shape();
        let n = shape.num_elements();
        let require_grad = tensor.is_require_grad();
        let p = tensor.inner().reshape([n]);
        let g = grad.reshape([n]);
        let g = if self.scale != 1.0 { g.mul_scalar(self.scale) } else { g };
        let lr = self.group_lrs.get(info.group).copied().unwrap_or(0.0);
        let wd = self.opt.wds[info.wd_group];
        let prior = self.opt.state.remove(&id);
        let (p, state) = match self.opt.rule {
            Rule::AdamW(rule) => rule.update(p, g, prior, lr, wd, self.opt.step),
            Rule::Sgd(rule) => SgdRule { momentum: info.setting.momentum.unwrap_or(rule.momentum), ..rule }.update(p, g, prior, lr, wd),
            Rule::Lars(rule) => LarsRule { momentum: info.setting.momentum.unwrap_or(rule.momentum), ..rule }.update(
                p,
                g,
                prior,
                lr,
                wd,
                info.setting.lars_exclude,
            ),
            Rule::Lamb(rule) => rule.update(p, g, prior, lr, wd, self.opt.step),
        };
        if !state.is_empty() {
            self.opt.state.insert(id, state);
        }
        let mut out = Tensor::<B, D>::from_inner(p.reshape(shape));
        if require_grad {
            out = out.require_grad();
        }
        Param::from_mapped_value(id, out, mapper)
    }
}
