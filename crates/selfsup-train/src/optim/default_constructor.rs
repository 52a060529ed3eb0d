//! MMEngine's `DefaultOptimWrapperConstructor`
//! (`mmengine/optim/optimizer/default_constructor.py`): `paramwise_cfg`'s
//! per-parameter multipliers, resolved against the parameters' PyTorch
//! names, which [`named_params`] reads off a module.
use std::collections::BTreeMap;

use burn::{
    module::{ModuleVisitor, Param, ParamId},
    tensor::{backend::Backend, Tensor},
};
use selfsup_weights::KeyMap;
use serde::{Deserialize, Serialize};

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
    /// The optimiser's momentum for these parameters (MMEngine copies any other key of
    /// the entry into the parameter group; DeepCluster and ODC set `momentum=0.` on the
    /// head, which their clustering re-initialises).
    #[serde(default)]
    pub momentum: Option<f64>,
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
    /// Weight-decay multiplier of the other one-dimensional parameters
    /// (MMEngine's `flat_decay_mult`).
    #[serde(default)]
    pub flat_decay_mult: Option<f64>,
    /// Learning-rate multiplier of biases.
    #[serde(default)]
    pub bias_lr_mult: Option<f64>,
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
    /// The group's momentum, when it overrides the optimiser's (SGD and LARS).
    pub momentum: Option<f64>,
}

impl ParamwiseCfg {
    /// The multipliers of the parameter called `name` (PyTorch naming),
    /// `is_norm` when it belongs to a normalisation layer, with `ndim`
    /// dimensions. MMEngine's order: a custom key decides alone; otherwise
    /// the decay multiplier is the first that applies of `norm_decay_mult`
    /// (norm layers), `bias_decay_mult` (every `bias`, a norm's too when
    /// `norm_decay_mult` is absent) and `flat_decay_mult` (one-dimensional).
    pub fn setting(&self, name: &str, is_norm: bool, ndim: usize) -> ParamSetting {
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
                    momentum: c.momentum,
                };
            }
        }
        let is_bias = name.ends_with(".bias") || name == "bias";
        let mut s = ParamSetting { lr_mult: 1.0, decay_mult: 1.0, lars_exclude: false, fix_lr: false, momentum: None };
        if is_bias && !is_norm {
            if let Some(m) = self.bias_lr_mult {
                s.lr_mult = m;
            }
        }
        let decay = match (is_norm, self.norm_decay_mult, self.bias_decay_mult, self.flat_decay_mult) {
            (true, Some(m), _, _) => Some(m),
            (_, _, Some(m), _) if is_bias => Some(m),
            (_, _, _, Some(m)) if ndim == 1 => Some(m),
            _ => None,
        };
        if let Some(m) = decay {
            s.decay_mult = m;
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
    /// Index of its weight-decay group (one per distinct base weight decay).
    pub wd_group: usize,
}

/// Collects each float parameter's id and PyTorch name.
struct NameCollector<'a> {
    path: Vec<String>,
    types: Vec<String>,
    keymap: &'a KeyMap,
    out: Vec<(ParamId, String, bool, bool, usize)>,
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
        let is_norm =
            self.types.iter().rev().find(|t| t.starts_with("Struct:")).is_some_and(|t| {
                matches!(t.as_str(), "Struct:LayerNorm" | "Struct:BatchNorm" | "Struct:GroupNorm" | "Struct:TorchBatchNorm")
            });
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
        self.out.push((param.id, name, is_norm, param.is_require_grad(), D));
    }
}

/// Every float parameter of a module: `(id, PyTorch name, is_norm,
/// trainable, ndim)`.
pub fn named_params<B: Backend, M: burn::module::Module<B>>(module: &M, keymap: &KeyMap) -> Vec<(ParamId, String, bool, bool, usize)> {
    let mut c = NameCollector { path: vec![], types: vec![], keymap, out: vec![] };
    module.visit(&mut c);
    c.out
}
