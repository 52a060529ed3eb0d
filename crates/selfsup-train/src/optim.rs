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
        FloatDType, Tensor, TensorData,
    },
};
use serde::{Deserialize, Serialize};
use selfsup_weights::KeyMap;
use crate::fused;

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

/// `clip_grad = dict(max_norm=..., norm_type=2)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipGradConfig {
    /// Largest global gradient norm.
    pub max_norm: f64,
    /// Norm order; only 2 is supported.
    #[serde(default = "two")]
    pub norm_type: f64,
    /// Stop the run when the gradient norm is not finite (torch's flag).
    #[serde(default)]
    pub error_if_nonfinite: bool,
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
    /// Layer-wise lr decay factor, read only by
    /// `LearningRateDecayOptimWrapperConstructor` (see [`LayerDecay`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_decay_rate: Option<f64>,
    /// Layer-wise lr decay model type (`"vit"`), read only by
    /// `LearningRateDecayOptimWrapperConstructor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { lr: 1e-3, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 1e-2, amsgrad: false, layer_decay_rate: None, model_type: None }
    }
}

/// `torch.optim.SGD`'s arguments and defaults (note `dampening = 0`,
/// where burn's SGD defaults to 0.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor.
    pub momentum: f64,
    /// Dampening of the momentum.
    pub dampening: f64,
    /// L2 weight decay (added to the gradient).
    pub weight_decay: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Layer-wise lr decay factor, read only by
    /// `LearningRateDecayOptimWrapperConstructor` (see [`LayerDecay`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_decay_rate: Option<f64>,
    /// Layer-wise lr decay model type (`"vit"`), read only by
    /// `LearningRateDecayOptimWrapperConstructor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self { lr: 0.1, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false, layer_decay_rate: None, model_type: None }
    }
}

/// MMSelfSup's `LARS(lr, momentum=0, weight_decay=0, dampening=0,
/// eta=0.001, nesterov=False, eps=1e-8)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LarsConfig {
    /// Base learning rate.
    pub lr: f64,
    /// Momentum factor.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Dampening of the momentum.
    pub dampening: f64,
    /// Trust coefficient.
    pub eta: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Added to the trust-ratio denominator.
    pub eps: f64,
    /// Layer-wise lr decay factor, read only by
    /// `LearningRateDecayOptimWrapperConstructor` (see [`LayerDecay`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_decay_rate: Option<f64>,
    /// Layer-wise lr decay model type (`"vit"`), read only by
    /// `LearningRateDecayOptimWrapperConstructor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
}

impl Default for LarsConfig {
    fn default() -> Self {
        Self { lr: 0.1, momentum: 0.0, weight_decay: 0.0, dampening: 0.0, eta: 0.001, nesterov: false, eps: 1e-8, layer_decay_rate: None, model_type: None }
    }
}

/// mmcls's `Lamb` (timm's, used by SparK): `lr=1e-3, bias_correction=True,
/// betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01, grad_averaging=True,
/// max_grad_norm=1.0, trust_clip=False, always_adapt=False`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LambConfig {
    /// Learning rate.
    pub lr: f64,
    /// Bias-correct the moments.
    pub bias_correction: bool,
    /// `(beta1, beta2)`.
    pub betas: (f64, f64),
    /// Denominator epsilon.
    pub eps: f64,
    /// Weight decay, added to the update before the trust ratio.
    pub weight_decay: f64,
    /// The first moment averages `(1 − beta1)·g` (else sums `g`).
    pub grad_averaging: bool,
    /// The optimiser's own global-norm clipping (after the wrapper's
    /// `clip_grad`); `null` turns it off.
    pub max_grad_norm: Option<f64>,
    /// Cap the trust ratio at 1.
    pub trust_clip: bool,
    /// Apply the trust ratio to parameters without weight decay too.
    pub always_adapt: bool,
    /// Layer-wise lr decay factor, read only by
    /// `LearningRateDecayOptimWrapperConstructor` (see [`LayerDecay`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_decay_rate: Option<f64>,
    /// Layer-wise lr decay model type (`"vit"`), read only by
    /// `LearningRateDecayOptimWrapperConstructor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
}

impl Default for LambConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            bias_correction: true,
            betas: (0.9, 0.999),
            eps: 1e-6,
            weight_decay: 0.01,
            grad_averaging: true,
            max_grad_norm: Some(1.0),
            trust_clip: false,
            always_adapt: false,
            layer_decay_rate: None,
            model_type: None,
        }
    }
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
    /// LARS: no trust ratio for these parameters (MMSelfSup's group flag).
    #[serde(default)]
    pub lars_exclude: Option<bool>,
    /// Keep the learning rate of these parameters constant (SimSiam's
    /// predictor, with `SimSiamHook`'s `fix_pred_lr`).
    #[serde(default)]
    pub fix_lr: Option<bool>,
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
                        "`layer_decay_rate` and `model_type` are read only by constructor = \"LearningRateDecayOptimWrapperConstructor\"".into(),
                    ));
                }
            }
            Some("LearningRateDecayOptimWrapperConstructor") => match model_type {
                Some("vit") => {
                    if rate.is_some_and(|r| !(r > 0.0)) {
                        return Err(("optim_wrapper.optimizer.layer_decay_rate".into(), "must be > 0".into()));
                    }
                }
                Some(other) => {
                    return Err(("optim_wrapper.optimizer.model_type".into(), format!("layer-wise lr decay for `{other}` is not supported; known: vit")))
                }
                None => return Err(("optim_wrapper.optimizer.model_type".into(), "layer-wise lr decay needs `model_type` (\"vit\")".into())),
            },
            Some(other) => {
                return Err((
                    "optim_wrapper.constructor".into(),
                    format!("unknown constructor `{other}`; known: DefaultOptimWrapperConstructor, LearningRateDecayOptimWrapperConstructor"),
                ))
            }
        }
        self.amp()?;
        let lr = &self.lr();
        if !(*lr >= 0.0) {
            return Err(("optim_wrapper.optimizer.lr".into(), format!("lr must be >= 0, got {lr}")));
        }
        Ok(())
    }

    /// What the engine does differently from MMEngine for this config, to
    /// print at the start of a run.
    pub fn warnings(&self) -> Vec<String> {
        vec![]
    }

    /// `AmpOptimWrapper`'s precision and loss scaler (`None` for
    /// `OptimWrapper`): `dtype` `"float16"` (the default, as on CUDA) or
    /// `"bfloat16"`, and `loss_scale` `"dynamic"` (the default: torch's
    /// `GradScaler()`), a number (a fixed scale) or a dict of `GradScaler`
    /// arguments.
    ///
    /// # Errors
    /// `(key, message)` for an unknown dtype or loss scale, or either
    /// given to a plain `OptimWrapper`.
    pub fn amp(&self) -> Result<Option<Amp>, (String, String)> {
        if self.kind != "AmpOptimWrapper" {
            if self.dtype.is_some() || self.loss_scale.is_some() {
                return Err(("optim_wrapper.type".into(), "`dtype` and `loss_scale` need type = \"AmpOptimWrapper\"".into()));
            }
            return Ok(None);
        }
        let dtype = match self.dtype.as_deref() {
            None | Some("float16" | "fp16" | "half") => FloatDType::F16,
            Some("bfloat16" | "bf16") => FloatDType::BF16,
            Some(other) => return Err(("optim_wrapper.dtype".into(), format!("unknown dtype `{other}`; known: float16, bfloat16"))),
        };
        let bad = |m: String| ("optim_wrapper.loss_scale".to_string(), m);
        let scaler = match &self.loss_scale {
            None => LossScaler::dynamic(),
            Some(serde_json::Value::String(s)) if s == "dynamic" => LossScaler::dynamic(),
            Some(serde_json::Value::Number(n)) => {
                let v = n.as_f64().filter(|v| *v > 0.0).ok_or_else(|| bad(format!("{n} is not a positive scale")))?;
                LossScaler::fixed(v)
            }
            Some(serde_json::Value::Object(m)) => {
                let mut sc = LossScaler::dynamic();
                for (k, v) in m {
                    let x = v.as_f64().ok_or_else(|| bad(format!("`{k}` must be a number")))?;
                    match k.as_str() {
                        "init_scale" => sc.scale = x,
                        "growth_factor" => sc.growth_factor = x,
                        "backoff_factor" => sc.backoff_factor = x,
                        "growth_interval" => sc.growth_interval = x as usize,
                        "enabled" => {}
                        other => return Err(bad(format!("unknown GradScaler argument `{other}`"))),
                    }
                }
                if !(sc.scale > 0.0 && sc.growth_factor >= 1.0 && sc.backoff_factor > 0.0 && sc.backoff_factor <= 1.0 && sc.growth_interval > 0) {
                    return Err(bad("needs init_scale > 0, growth_factor ≥ 1, 0 < backoff_factor ≤ 1, growth_interval ≥ 1".into()));
                }
                sc
            }
            Some(other) => return Err(bad(format!("`{other}`: expected \"dynamic\", a number or a dict"))),
        };
        Ok(Some(Amp { dtype, scaler }))
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

/// MMEngine's `AmpOptimWrapper`: the dtype the forward pass's products run
/// in (`selfsup_layers::amp::autocast`) and the loss scaler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Amp {
    /// `float16` or `bfloat16`.
    pub dtype: FloatDType,
    /// Scales the loss before the backward pass.
    pub scaler: LossScaler,
}

/// torch's `GradScaler`: the loss is multiplied by `scale` before the
/// backward pass and the gradients divided by it before the step; a step
/// whose gradients overflowed is skipped and the scale multiplied by
/// `backoff_factor`, and after `growth_interval` good steps in a row it is
/// multiplied by `growth_factor`. A fixed scale (`loss_scale = 512.0`)
/// has both factors 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossScaler {
    /// Current scale.
    pub scale: f64,
    /// Growth after `growth_interval` finite steps (2).
    pub growth_factor: f64,
    /// Shrink after an overflow (0.5).
    pub backoff_factor: f64,
    /// Finite steps between growths (2000).
    pub growth_interval: usize,
    /// Finite steps since the last growth or overflow.
    pub growth_tracker: usize,
}

impl LossScaler {
    /// `GradScaler()`: scale 2¹⁶, ×2 every 2000 good steps, ×0.5 on overflow.
    pub fn dynamic() -> Self {
        Self { scale: 65536.0, growth_factor: 2.0, backoff_factor: 0.5, growth_interval: 2000, growth_tracker: 0 }
    }

    /// A constant scale (MMEngine's numeric `loss_scale`).
    pub fn fixed(scale: f64) -> Self {
        Self { scale, growth_factor: 1.0, backoff_factor: 1.0, growth_interval: 1, growth_tracker: 0 }
    }

    /// `GradScaler.update` after a step that found (`found_inf`) or did not
    /// find non-finite gradients.
    pub fn update(&mut self, found_inf: bool) {
        if found_inf {
            self.scale *= self.backoff_factor;
            self.growth_tracker = 0;
        } else {
            self.growth_tracker += 1;
            if self.growth_tracker == self.growth_interval {
                self.scale *= self.growth_factor;
                self.growth_tracker = 0;
            }
        }
    }
}

/// What `paramwise_cfg` assigns to one parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamSetting {
    /// Learning-rate multiplier.
    pub lr_mult: f64,
    /// Weight-decay multiplier.
    pub decay_mult: f64,
    /// LARS without trust ratio.
    pub lars_exclude: bool,
    /// Constant learning rate.
    pub fix_lr: bool,
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
                return ParamSetting {
                    lr_mult: c.lr_mult.unwrap_or(1.0),
                    decay_mult: c.decay_mult.unwrap_or(1.0),
                    lars_exclude: c.lars_exclude.unwrap_or(false),
                    fix_lr: c.fix_lr.unwrap_or(false),
                };
            }
        }
        let is_bias = name.ends_with(".bias") || name == "bias";
        let mut s = ParamSetting { lr_mult: 1.0, decay_mult: 1.0, lars_exclude: false, fix_lr: false };
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

/// MMSelfSup's `LearningRateDecayOptimWrapperConstructor` for ViTs
/// (`model_type = "vit"`), as fine-tuning configs use it:
///
/// - layer ids: `backbone.cls_token`, `backbone.mask_token`,
///   `backbone.pos_embed` and `backbone.patch_embed.*` are 0,
///   `backbone.layers.i.*` is `i + 1`, everything else (final norm, neck,
///   head) is `num_layers − 1`, where `num_layers = len(backbone.layers) + 2`;
/// - the lr multiplier is `rate^(num_layers − layer_id − 1)`;
/// - of `paramwise_cfg` only `custom_keys`' `decay_mult` counts, and the
///   *last* matching key in MMSelfSup's order (longest first, then
///   alphabetical) wins, i.e. the shortest;
/// - parameters are grouped per layer into decayed and not decayed, and a
///   group keeps the weight decay of the first parameter that opened it
///   (in module order), as the reference does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerDecay {
    /// `layer_decay_rate` (1 when absent: no decay).
    pub rate: f64,
}

impl LayerDecay {
    /// The ViT layer id of the parameter `name` (MMSelfSup's
    /// `get_layer_id_for_vit`).
    pub fn layer_id(name: &str, num_layers: usize) -> usize {
        if matches!(name, "backbone.cls_token" | "backbone.mask_token" | "backbone.pos_embed") || name.starts_with("backbone.patch_embed") {
            return 0;
        }
        if let Some(rest) = name.strip_prefix("backbone.layers.") {
            if let Some(Ok(i)) = rest.split('.').next().map(str::parse::<usize>) {
                return i + 1;
            }
        }
        num_layers.saturating_sub(1)
    }

    /// `(lr_mult, decay_mult)` of every name, in the given (module) order.
    pub fn settings(&self, names: &[String], custom_keys: &BTreeMap<String, CustomKey>) -> Vec<(f64, f64)> {
        let blocks = names
            .iter()
            .filter_map(|n| n.strip_prefix("backbone.layers.")?.split('.').next()?.parse::<usize>().ok())
            .max()
            .map_or(0, |m| m + 1);
        let num_layers = blocks + 2;
        let mut keys: Vec<&String> = custom_keys.keys().collect();
        keys.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        let mut groups: HashMap<(usize, bool), f64> = HashMap::new();
        names
            .iter()
            .map(|name| {
                let decay = keys.iter().filter(|k| name.contains(k.as_str())).last().map_or(1.0, |k| custom_keys[*k].decay_mult.unwrap_or(1.0));
                let id = Self::layer_id(name, num_layers);
                let decay = *groups.entry((id, decay != 0.0)).or_insert(decay);
                (self.rate.powi((num_layers - id - 1) as i32), decay)
            })
            .collect()
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
            .is_some_and(|t| matches!(t.as_str(), "Struct:LayerNorm" | "Struct:BatchNorm" | "Struct:GroupNorm" | "Struct:TorchBatchNorm"));
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

/// The update rule of an [`Optimizer`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    AdamW { betas: (f64, f64), eps: f64 },
    Sgd { momentum: f64, dampening: f64, nesterov: bool },
    Lars { momentum: f64, dampening: f64, nesterov: bool, eta: f64, eps: f64 },
    Lamb { betas: (f64, f64), eps: f64, bias_correction: bool, grad_averaging: bool, max_grad_norm: Option<f64>, trust_clip: bool, always_adapt: bool },
}

impl Rule {
    /// Names of the per-parameter state tensors, as PyTorch's `state` keys.
    fn slots(&self) -> &'static [&'static str] {
        match self {
            Rule::AdamW { .. } | Rule::Lamb { .. } => &["exp_avg", "exp_avg_sq"],
            Rule::Sgd { momentum, .. } | Rule::Lars { momentum, .. } if *momentum != 0.0 => &["momentum_buffer"],
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
    weight_decay: f64,
    clip: Option<f64>,
    params: HashMap<ParamId, ParamInfo>,
    state: HashMap<ParamId, Vec<Tensor<B::InnerBackend, 1>>>,
    step: usize,
    group_mults: Vec<(f64, bool)>,
}

/// The name the MAE tests and tools used first.
pub type AdamW<B> = Optimizer<B>;

impl<B: AutodiffBackend> Optimizer<B> {
    /// Builds the optimiser for `module`, resolving `paramwise_cfg` against
    /// the parameters' PyTorch names. Frozen parameters (`require_grad =
    /// false`) are left out, as MMEngine leaves them out of its groups.
    pub fn new<M: AutodiffModule<B>>(cfg: &OptimWrapperConfig, module: &M, keymap: &KeyMap) -> Self {
        let (rule, weight_decay) = match cfg.optimizer.clone() {
            OptimizerConfig::AdamW(c) => (Rule::AdamW { betas: c.betas, eps: c.eps }, c.weight_decay),
            OptimizerConfig::Sgd(c) => (Rule::Sgd { momentum: c.momentum, dampening: c.dampening, nesterov: c.nesterov }, c.weight_decay),
            OptimizerConfig::Lars(c) => {
                (Rule::Lars { momentum: c.momentum, dampening: c.dampening, nesterov: c.nesterov, eta: c.eta, eps: c.eps }, c.weight_decay)
            }
            OptimizerConfig::Lamb(c) => (
                Rule::Lamb {
                    betas: c.betas,
                    eps: c.eps,
                    bias_correction: c.bias_correction,
                    grad_averaging: c.grad_averaging,
                    max_grad_norm: c.max_grad_norm,
                    trust_clip: c.trust_clip,
                    always_adapt: c.always_adapt,
                },
                c.weight_decay,
            ),
        };
        let mut group_mults: Vec<(f64, bool)> = Vec::new();
        let mut params = HashMap::new();
        let trainable: Vec<_> = named_params(module, keymap).into_iter().filter(|p| p.3).collect();
        let layer_decay = cfg.layer_decay().map(|ld| {
            let names: Vec<String> = trainable.iter().map(|p| p.1.clone()).collect();
            ld.settings(&names, &cfg.paramwise_cfg.custom_keys)
        });
        for (i, (id, name, is_norm, _)) in trainable.into_iter().enumerate() {
            let setting = match &layer_decay {
                Some(s) => ParamSetting { lr_mult: s[i].0, decay_mult: s[i].1, lars_exclude: false, fix_lr: false },
                None => cfg.paramwise_cfg.setting(&name, is_norm),
            };
            let key = (setting.lr_mult, setting.fix_lr);
            let group = match group_mults.iter().position(|m| *m == key) {
                Some(g) => g,
                None => {
                    group_mults.push(key);
                    group_mults.len() - 1
                }
            };
            params.insert(id, ParamInfo { name, setting, group });
        }
        if group_mults.is_empty() {
            group_mults.push((1.0, false));
        }
        Self {
            rule,
            weight_decay,
            clip: cfg.clip_grad.as_ref().map(|c| c.max_norm),
            params,
            state: HashMap::new(),
            step: 0,
            group_mults,
        }
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
    pub fn step_scaled<M: AutodiffModule<B>>(&mut self, group_lrs: &[f64], module: M, mut grads: GradientsParams, loss_scale: f64) -> (M, f64, bool) {
        let norm = compact_grad_norm::<B, M>(&module, &mut grads) / loss_scale;
        if !norm.is_finite() {
            return (module, norm, false);
        }
        let (module, norm) = self.step_with_norm(group_lrs, module, grads, norm, 1.0 / loss_scale);
        (module, norm, true)
    }

    /// `norm` is the global norm of `grads · unscale`.
    fn step_with_norm<M: AutodiffModule<B>>(&mut self, group_lrs: &[f64], module: M, mut grads: GradientsParams, norm: f64, unscale: f64) -> (M, f64) {
        // torch.nn.utils.clip_grad_norm_: scale by max/(norm+1e-6) when below 1.
        let mut scale = match self.clip {
            Some(max) if max / (norm + 1e-6) < 1.0 => max / (norm + 1e-6),
            _ => 1.0,
        };
        // Lamb clips again, by its own `max_grad_norm`, the norm of the
        // gradients it is given (the wrapper's clipped ones).
        if let Rule::Lamb { max_grad_norm: Some(max), .. } = self.rule {
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
            .flat_map(|(info, tensors)| {
                slots.iter().zip(tensors).map(move |(slot, t)| (slot.to_string(), info.name.clone(), t.to_data()))
            })
            .collect();
        out.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        out
    }

    /// Restores state saved by [`Optimizer::state_tensors`] and the step
    /// count. Returns the entries that matched no parameter or slot.
    pub fn load_state(&mut self, step: usize, tensors: Vec<(String, String, TensorData)>, device: &burn::tensor::Device<B::InnerBackend>) -> Vec<String> {
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

fn momentum<BI: Backend>(
    state: Option<Vec<Tensor<BI, 1>>>,
    d: Tensor<BI, 1>,
    momentum: f64,
    dampening: f64,
    nesterov: bool,
) -> (Tensor<BI, 1>, Vec<Tensor<BI, 1>>) {
    if momentum == 0.0 {
        return (d, vec![]);
    }
    let buf = match state.and_then(|mut v| v.pop()) {
        Some(buf) => buf.mul_scalar(momentum) + d.clone().mul_scalar(1.0 - dampening),
        None => d.clone(),
    };
    let d = if nesterov { d + buf.clone().mul_scalar(momentum) } else { buf.clone() };
    (d, vec![buf])
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
        let wd = self.opt.weight_decay * info.setting.decay_mult;
        let prior = self.opt.state.remove(&id);
        let (p, state) = match self.opt.rule {
            Rule::AdamW { betas: (b1, b2), eps } => {
                let t = self.opt.step as i32;
                let bias1 = 1.0 - b1.powi(t);
                let bias2 = 1.0 - b2.powi(t);
                let h = fused::AdamWStep {
                    decay: 1.0 - lr * wd,
                    b1,
                    b2,
                    eps,
                    step_size: lr / bias1,
                    bias2_sqrt: bias2.sqrt(),
                };
                let moments = match prior {
                    Some(s) if s.len() == 2 => {
                        let mut it = s.into_iter();
                        Some((it.next().expect("two slots"), it.next().expect("two slots")))
                    }
                    _ => None,
                };
                match fused::adamw(p, g, moments, &h) {
                    Ok((p, m, v)) => (p, vec![m, v]),
                    Err((p, g, moments)) => {
                        let (m, v) = match moments {
                            Some((m, v)) => (
                                m.mul_scalar(h.b1).add(g.clone().mul_scalar(1.0 - h.b1)),
                                v.mul_scalar(h.b2).add(g.powi_scalar(2).mul_scalar(1.0 - h.b2)),
                            ),
                            None => (g.clone().mul_scalar(1.0 - h.b1), g.powi_scalar(2).mul_scalar(1.0 - h.b2)),
                        };
                        let p = if wd != 0.0 { p.mul_scalar(h.decay) } else { p };
                        let denom = v.clone().sqrt().div_scalar(h.bias2_sqrt).add_scalar(h.eps);
                        let p = p - m.clone().div(denom).mul_scalar(h.step_size);
                        (p, vec![m, v])
                    }
                }
            }
            Rule::Sgd { momentum: mom, dampening, nesterov } => {
                let d = if wd != 0.0 { g + p.clone().mul_scalar(wd) } else { g };
                let (d, state) = momentum(prior, d, mom, dampening, nesterov);
                (p - d.mul_scalar(lr), state)
            }
            Rule::Lars { momentum: mom, dampening, nesterov, eta, eps } => {
                let d = if info.setting.lars_exclude {
                    (g + p.clone().mul_scalar(wd)).mul_scalar(lr)
                } else {
                    let w_norm = fused::sum_of_squares(&p).sqrt();
                    let g_norm = fused::sum_of_squares(&g).sqrt();
                    let trust = w_norm.clone().mul_scalar(eta) / (g_norm.clone() + w_norm.clone().mul_scalar(wd)).add_scalar(eps);
                    // Trust ratio 1 when either norm is zero.
                    let zero = w_norm.equal_elem(0.0).bool_or(g_norm.equal_elem(0.0));
                    let local = trust.mask_fill(zero, 1.0);
                    (g + p.clone().mul_scalar(wd)).mul_scalar(lr) * local
                };
                let (d, state) = momentum(prior, d, mom, dampening, nesterov);
                (p - d, state)
            }
            Rule::Lamb { betas: (b1, b2), eps, bias_correction, grad_averaging, trust_clip, always_adapt, .. } => {
                let t = self.opt.step as i32;
                let b3 = if grad_averaging { 1.0 - b1 } else { 1.0 };
                let (m, v) = match prior {
                    Some(s) if s.len() == 2 => {
                        let mut it = s.into_iter();
                        let (m, v) = (it.next().expect("two slots"), it.next().expect("two slots"));
                        (m.mul_scalar(b1).add(g.clone().mul_scalar(b3)), v.mul_scalar(b2).add(g.powi_scalar(2).mul_scalar(1.0 - b2)))
                    }
                    _ => (g.clone().mul_scalar(b3), g.powi_scalar(2).mul_scalar(1.0 - b2)),
                };
                let (bias1, bias2) = if bias_correction { (1.0 - b1.powi(t), 1.0 - b2.powi(t)) } else { (1.0, 1.0) };
                let denom = v.clone().sqrt().div_scalar(bias2.sqrt()).add_scalar(eps);
                let mut update = m.clone().div_scalar(bias1).div(denom);
                if wd != 0.0 {
                    update = update + p.clone().mul_scalar(wd);
                }
                if wd != 0.0 || always_adapt {
                    let w_norm = fused::sum_of_squares(&p).sqrt();
                    let u_norm = fused::sum_of_squares(&update).sqrt();
                    let zero = w_norm.clone().equal_elem(0.0).bool_or(u_norm.clone().equal_elem(0.0));
                    let ratio = (w_norm / u_norm).mask_fill(zero, 1.0);
                    let ratio = if trust_clip { ratio.clamp_max(1.0) } else { ratio };
                    update = update * ratio;
                }
                (p - update.mul_scalar(lr), vec![m, v])
            }
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

struct NormVisitor<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for NormVisitor<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let n = g.shape().num_elements();
            let s = fused::sum_of_squares(&g.reshape([n]));
            self.sum = Some(match self.sum.take() {
                Some(acc) => acc + s,
                None => s,
            });
        }
    }
}

/// As [`global_grad_norm`], storing each gradient back contiguous: burn's
/// convolution weight gradients come out permuted, and on burn-flex every
/// element-wise pass over a permuted tensor walks it element by element,
/// so the norm and the update would each pay that walk. Reshaping through
/// one dimension makes the copy once.
fn compact_grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(module: &M, grads: &mut GradientsParams) -> f64 {
    struct Compact<'a, B: AutodiffBackend> {
        grads: &'a mut GradientsParams,
        sum: Option<Tensor<B::InnerBackend, 1>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Compact<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
                let shape = g.shape();
                let flat = g.reshape([shape.num_elements()]);
                let s = fused::sum_of_squares(&flat);
                self.sum = Some(match self.sum.take() {
                    Some(acc) => acc + s,
                    None => s,
                });
                self.grads.register::<B::InnerBackend, D>(param.id, flat.reshape(shape));
            }
        }
    }
    let mut v = Compact::<B> { grads, sum: None };
    module.visit(&mut v);
    v.sum.map(|s| s.into_scalar().elem::<f64>().sqrt()).unwrap_or(0.0)
}

/// The global L2 norm of every gradient (one host read).
pub fn global_grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(module: &M, grads: &GradientsParams) -> f64 {
    let mut v = NormVisitor::<B> { grads, sum: None };
    module.visit(&mut v);
    v.sum.map(|s| s.into_scalar().elem::<f64>().sqrt()).unwrap_or(0.0)
}

use burn::tensor::ElementConversion;
