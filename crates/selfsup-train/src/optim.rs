//! Optimisers with PyTorch semantics and MMEngine's `paramwise_cfg`.
//!
//! burn's optimisers apply one learning rate and one weight decay to every
//! parameter; MMSelfSup's configs need per-parameter multipliers by name
//! (`custom_keys`, `bias_decay_mult`, `norm_decay_mult`). This optimiser walks
//! the module with the parameters' PyTorch names, so `custom_keys` match
//! exactly what they match in MMEngine.
use std::collections::{BTreeMap, HashMap};

use burn::{
    module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param, ParamId},
    optim::GradientsParams,
    tensor::{
        backend::{AutodiffBackend, Backend},
        Tensor, TensorData,
    },
};
use serde::{Deserialize, Serialize};
use selfsup_weights::KeyMap;

/// `optim_wrapper` of an MMEngine config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimWrapperConfig {
    /// `OptimWrapper`, or `AmpOptimWrapper` (see [`OptimWrapperConfig::validate`]).
    #[serde(rename = "type", default = "optim_wrapper_type")]
    pub kind: String,
    /// The optimiser.
    pub optimizer: OptimizerConfig,
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

/// `clip_grad = dict(max_norm=..., norm_type=2)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipGradConfig {
    /// Largest global gradient norm.
    pub max_norm: f64,
    /// Norm order; only 2 is supported.
    #[serde(default = "two")]
    pub norm_type: f64,
}

fn two() -> f64 {
    2.0
}

/// `torch.optim.AdamW`'s arguments and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWConfig {
    /// Learning rate.
    pub lr: f64,
    /// `(beta1, beta2)`.
    pub betas: (f64, f64),
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// AMSGrad is not supported (must be false).
    pub amsgrad: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { lr: 1e-3, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 1e-2, amsgrad: false }
    }
}

selfsup_config::registry! {
    /// `optimizer = dict(type='AdamW', lr=..., betas=..., weight_decay=...)`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum OptimizerConfig {
        /// `torch.optim.AdamW`.
        "AdamW" => AdamW(AdamWConfig),
    }
}

/// One `custom_keys` entry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomKey {
    /// Learning-rate multiplier.
    #[serde(default)]
    pub lr_mult: Option<f64>,
    /// Weight-decay multiplier.
    #[serde(default)]
    pub decay_mult: Option<f64>,
}

/// MMEngine's `paramwise_cfg` (DefaultOptimWrapperConstructor).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamwiseCfg {
    /// Multipliers by substring of the parameter name; the longest key that
    /// matches wins (ties broken alphabetically), as in MMEngine.
    #[serde(default)]
    pub custom_keys: BTreeMap<String, CustomKey>,
    /// Weight-decay multiplier of biases (not applied to norm biases).
    #[serde(default)]
    pub bias_decay_mult: Option<f64>,
    /// Weight-decay multiplier of normalisation layers' weights and biases.
    #[serde(default)]
    pub norm_decay_mult: Option<f64>,
    /// Learning-rate multiplier of biases.
    #[serde(default)]
    pub bias_lr_mult: Option<f64>,
}

impl OptimWrapperConfig {
    /// Checks what this engine can honour; `(key, message)` on failure.
    pub fn validate(&self) -> Result<(), (String, String)> {
        match self.kind.as_str() {
            "OptimWrapper" | "AmpOptimWrapper" => {}
            other => return Err(("optim_wrapper.type".into(), format!("unknown optim wrapper `{other}`; known: OptimWrapper"))),
        }
        if self.accumulative_counts != 1 {
            return Err(("optim_wrapper.accumulative_counts".into(), "gradient accumulation is not supported yet; set 1".into()));
        }
        if let Some(c) = &self.clip_grad {
            if c.norm_type != 2.0 {
                return Err(("optim_wrapper.clip_grad.norm_type".into(), "only norm_type = 2 is supported".into()));
            }
        }
        let OptimizerConfig::AdamW(AdamWConfig { amsgrad, lr, .. }) = &self.optimizer;
        if *amsgrad {
            return Err(("optim_wrapper.optimizer.amsgrad".into(), "AMSGrad is not supported".into()));
        }
        if !(*lr >= 0.0) {
            return Err(("optim_wrapper.optimizer.lr".into(), format!("lr must be >= 0, got {lr}")));
        }
        Ok(())
    }

    /// What the engine does differently from MMEngine for this config, to
    /// print at the start of a run.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = vec![];
        if self.kind == "AmpOptimWrapper" {
            w.push(
                "optim_wrapper.type = AmpOptimWrapper: mixed precision is not implemented yet; this run trains in float32 (numerically the reference, slower on GPUs)"
                    .to_string(),
            );
        }
        w
    }

    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        let OptimizerConfig::AdamW(c) = &self.optimizer;
        c.lr
    }
}

/// What `paramwise_cfg` assigns to one parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamSetting {
    /// Learning-rate multiplier.
    pub lr_mult: f64,
    /// Weight-decay multiplier.
    pub decay_mult: f64,
}

impl ParamwiseCfg {
    /// The multipliers of the parameter called `name` (PyTorch naming),
    /// `is_norm` when it belongs to a normalisation layer.
    pub fn setting(&self, name: &str, is_norm: bool) -> ParamSetting {
        let mut keys: Vec<&String> = self.custom_keys.keys().collect();
        keys.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        for k in keys {
            if name.contains(k.as_str()) {
                let c = &self.custom_keys[k];
                return ParamSetting { lr_mult: c.lr_mult.unwrap_or(1.0), decay_mult: c.decay_mult.unwrap_or(1.0) };
            }
        }
        let is_bias = name.ends_with(".bias") || name == "bias";
        let mut s = ParamSetting { lr_mult: 1.0, decay_mult: 1.0 };
        if is_bias && !is_norm {
            if let Some(m) = self.bias_lr_mult {
                s.lr_mult = m;
            }
            if let Some(m) = self.bias_decay_mult {
                s.decay_mult = m;
            }
        }
        if is_norm {
            if let Some(m) = self.norm_decay_mult {
                s.decay_mult = m;
            }
        }
        s
    }
}

/// A trainable parameter as the optimiser sees it.
#[derive(Debug, Clone)]
pub struct ParamInfo {
    /// PyTorch name (`backbone.layers.0.ln1.weight`).
    pub name: String,
    /// Its multipliers.
    pub setting: ParamSetting,
    /// Index of its learning-rate group (one per distinct `lr_mult`).
    pub group: usize,
}

/// Collects each float parameter's id and PyTorch name.
struct NameCollector<'a> {
    path: Vec<String>,
    types: Vec<String>,
    keymap: &'a KeyMap,
    out: Vec<(ParamId, String, bool, bool)>,
}

impl<B: Backend> ModuleVisitor<B> for NameCollector<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.types.push(container_type.to_string());
        if !container_type.starts_with("Enum:") {
            self.path.push(name.to_string());
        }
    }
    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.types.pop();
        if !container_type.starts_with("Enum:") {
            self.path.pop();
        }
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let is_norm = self
            .types
            .iter()
            .rev()
            .find(|t| t.starts_with("Struct:"))
            .is_some_and(|t| matches!(t.as_str(), "Struct:LayerNorm" | "Struct:BatchNorm" | "Struct:GroupNorm"));
        let mut path = self.path.clone();
        if is_norm {
            if let Some(last) = path.last_mut() {
                if last == "gamma" {
                    *last = "weight".into();
                } else if last == "beta" {
                    *last = "bias".into();
                }
            }
        }
        let name = self.keymap.to_pytorch(&path.join("."));
        self.out.push((param.id, name, is_norm, param.is_require_grad()));
    }
}

/// Every float parameter of a module: `(id, PyTorch name, is_norm, trainable)`.
pub fn named_params<B: Backend, M: burn::module::Module<B>>(module: &M, keymap: &KeyMap) -> Vec<(ParamId, String, bool, bool)> {
    let mut c = NameCollector { path: vec![], types: vec![], keymap, out: vec![] };
    module.visit(&mut c);
    c.out
}

#[derive(Debug, Clone)]
struct Moments<B: Backend> {
    exp_avg: Tensor<B, 1>,
    exp_avg_sq: Tensor<B, 1>,
}

/// AdamW with PyTorch's semantics (decoupled decay `p ← p·(1 − lr·wd)`,
/// bias-corrected moments, `eps` added to `√v̂`), per-parameter multipliers,
/// and optional clipping by the global gradient norm (torch's
/// `clip_grad_norm_`).
#[derive(Debug, Clone)]
pub struct AdamW<B: AutodiffBackend> {
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    clip: Option<f64>,
    params: HashMap<ParamId, ParamInfo>,
    state: HashMap<ParamId, Moments<B::InnerBackend>>,
    step: usize,
    group_mults: Vec<f64>,
}

impl<B: AutodiffBackend> AdamW<B> {
    /// Builds the optimiser for `module`, resolving `paramwise_cfg` against
    /// the parameters' PyTorch names. Frozen parameters (`require_grad =
    /// false`) are left out, as MMEngine leaves them out of its groups.
    pub fn new<M: AutodiffModule<B>>(cfg: &OptimWrapperConfig, module: &M, keymap: &KeyMap) -> Self {
        let OptimizerConfig::AdamW(AdamWConfig { betas, eps, weight_decay, .. }) = cfg.optimizer.clone();
        let mut group_mults: Vec<f64> = Vec::new();
        let mut params = HashMap::new();
        for (id, name, is_norm, trainable) in named_params(module, keymap) {
            if !trainable {
                continue;
            }
            let setting = cfg.paramwise_cfg.setting(&name, is_norm);
            let group = match group_mults.iter().position(|m| *m == setting.lr_mult) {
                Some(g) => g,
                None => {
                    group_mults.push(setting.lr_mult);
                    group_mults.len() - 1
                }
            };
            params.insert(id, ParamInfo { name, setting, group });
        }
        if group_mults.is_empty() {
            group_mults.push(1.0);
        }
        Self {
            betas,
            eps,
            weight_decay,
            clip: cfg.clip_grad.as_ref().map(|c| c.max_norm),
            params,
            state: HashMap::new(),
            step: 0,
            group_mults,
        }
    }

    /// The lr multiplier of every learning-rate group.
    pub fn group_lr_mults(&self) -> &[f64] {
        &self.group_mults
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
        let norm = global_grad_norm::<B, M>(&module, &grads);
        // torch.nn.utils.clip_grad_norm_: scale by max/(norm+1e-6) when below 1.
        let scale = match self.clip {
            Some(max) if max / (norm + 1e-6) < 1.0 => max / (norm + 1e-6),
            _ => 1.0,
        };
        self.step += 1;
        let mut mapper = AdamWMapper { opt: self, grads: &mut grads, group_lrs, scale };
        (module.map(&mut mapper), norm)
    }

    /// The moments by PyTorch name, for checkpoints:
    /// `(name, exp_avg, exp_avg_sq)` flattened.
    pub fn state_tensors(&self) -> Vec<(String, TensorData, TensorData)> {
        let mut out: Vec<_> = self
            .state
            .iter()
            .filter_map(|(id, m)| {
                let info = self.params.get(id)?;
                Some((info.name.clone(), m.exp_avg.to_data(), m.exp_avg_sq.to_data()))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Restores moments saved by [`AdamW::state_tensors`] and the step count.
    /// Returns the names that matched no parameter.
    pub fn load_state(&mut self, step: usize, tensors: Vec<(String, TensorData, TensorData)>, device: &burn::tensor::Device<B::InnerBackend>) -> Vec<String> {
        let by_name: HashMap<String, ParamId> = self.params.iter().map(|(id, i)| (i.name.clone(), *id)).collect();
        let mut unknown = vec![];
        for (name, m, v) in tensors {
            match by_name.get(&name) {
                Some(id) => {
                    self.state.insert(*id, Moments { exp_avg: Tensor::from_data(m, device), exp_avg_sq: Tensor::from_data(v, device) });
                }
                None => unknown.push(name),
            }
        }
        self.step = step;
        unknown
    }
}

struct AdamWMapper<'a, B: AutodiffBackend> {
    opt: &'a mut AdamW<B>,
    grads: &'a mut GradientsParams,
    group_lrs: &'a [f64],
    scale: f64,
}

impl<B: AutodiffBackend> ModuleMapper<B> for AdamWMapper<'_, B> {
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
        let (b1, b2) = self.opt.betas;
        let lr = self.group_lrs.get(info.group).copied().unwrap_or(0.0);
        let wd = self.opt.weight_decay * info.setting.decay_mult;
        let t = self.opt.step as i32;
        let moments = match self.opt.state.remove(&id) {
            Some(m) => Moments {
                exp_avg: m.exp_avg.mul_scalar(b1).add(g.clone().mul_scalar(1.0 - b1)),
                exp_avg_sq: m.exp_avg_sq.mul_scalar(b2).add(g.clone().powi_scalar(2).mul_scalar(1.0 - b2)),
            },
            None => Moments { exp_avg: g.clone().mul_scalar(1.0 - b1), exp_avg_sq: g.powi_scalar(2).mul_scalar(1.0 - b2) },
        };
        let bias1 = 1.0 - b1.powi(t);
        let bias2 = 1.0 - b2.powi(t);
        let p = if wd != 0.0 { p.mul_scalar(1.0 - lr * wd) } else { p };
        let denom = moments.exp_avg_sq.clone().sqrt().div_scalar(bias2.sqrt()).add_scalar(self.opt.eps);
        let p = p - moments.exp_avg.clone().div(denom).mul_scalar(lr / bias1);
        self.opt.state.insert(id, moments);
        let mut out = Tensor::<B, D>::from_inner(p.reshape(shape));
        if require_grad {
            out = out.require_grad();
        }
        Param::from_mapped_value(id, out, mapper)
    }
}

struct NormVisitor<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for NormVisitor<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let s = g.powi_scalar(2).sum();
            self.sum = Some(match self.sum.take() {
                Some(acc) => acc + s,
                None => s,
            });
        }
    }
}

/// The global L2 norm of every gradient (one host read).
pub fn global_grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(module: &M, grads: &GradientsParams) -> f64 {
    let mut v = NormVisitor::<B> { grads, sum: None };
    module.visit(&mut v);
    v.sum.map(|s| s.into_scalar().elem::<f64>().sqrt()).unwrap_or(0.0)
}

use burn::tensor::ElementConversion;
