//! `torch.optim.SGD`: its arguments and its update rule, whose momentum
//! LARS shares.
use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

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
    /// `LearningRateDecayOptimWrapperConstructor` (see [`LayerDecay`](super::LayerDecay)).
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

/// SGD's update: `d = g + wd·p`, `buf = m·buf + (1 − dampening)·d` (the
/// first buffer is `d`), Nesterov optional, `p ← p − lr·d`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct SgdRule {
    pub(super) momentum: f64,
    pub(super) dampening: f64,
    pub(super) nesterov: bool,
}

impl SgdRule {
    /// Updates the flattened parameter `p` with its gradient `g`; `prior`
    /// is the state (`momentum_buffer`, when there is momentum). Returns
    /// the new parameter and state.
    pub(super) fn update<BI: Backend>(
        &self,
        p: Tensor<BI, 1>,
        g: Tensor<BI, 1>,
        prior: Option<Vec<Tensor<BI, 1>>>,
        lr: f64,
        wd: f64,
    ) -> (Tensor<BI, 1>, Vec<Tensor<BI, 1>>) {
        let SgdRule { momentum: mom, dampening, nesterov } = *self;
        let d = if wd != 0.0 { g + p.clone().mul_scalar(wd) } else { g };
        let (d, state) = momentum(prior, d, mom, dampening, nesterov);
        (p - d.mul_scalar(lr), state)
    }
}

/// The momentum of `torch.optim.SGD` (which MMSelfSup's LARS applies too):
/// the update `d` and the new state (`momentum_buffer`, none without momentum).
pub(super) fn momentum<BI: Backend>(
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
