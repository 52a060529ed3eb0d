//! MMSelfSup's `LARS` (`mmselfsup/engine/optimizers/lars.py`): its
//! arguments and its update rule.
use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

use super::sgd::momentum;
use crate::fused;

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
    /// `LearningRateDecayOptimWrapperConstructor` (see [`LayerDecay`](super::LayerDecay)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_decay_rate: Option<f64>,
    /// Layer-wise lr decay model type (`"vit"`), read only by
    /// `LearningRateDecayOptimWrapperConstructor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
}

impl Default for LarsConfig {
    fn default() -> Self {
        Self {
            lr: 0.1,
            momentum: 0.0,
            weight_decay: 0.0,
            dampening: 0.0,
            eta: 0.001,
            nesterov: false,
            eps: 1e-8,
            layer_decay_rate: None,
            model_type: None,
        }
    }
}

/// LARS's update: `d = (g + wd·p)·lr·η‖p‖/(‖g‖ + wd‖p‖ + ε)` (trust ratio
/// 1 for `lars_exclude` groups or zero norms), then momentum as SGD and
/// `p ← p − d`. The trust ratio stays on the device (no host sync).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct LarsRule {
    pub(super) momentum: f64,
    pub(super) dampening: f64,
    pub(super) nesterov: bool,
    pub(super) eta: f64,
    pub(super) eps: f64,
}

impl LarsRule {
    /// Updates the flattened parameter `p` with its gradient `g`, without
    /// trust ratio when `lars_exclude`; `prior` is the state
    /// (`momentum_buffer`, when there is momentum). Returns the new
    /// parameter and state.
    pub(super) fn update<BI: Backend>(
        &self,
        p: Tensor<BI, 1>,
        g: Tensor<BI, 1>,
        prior: Option<Vec<Tensor<BI, 1>>>,
        lr: f64,
        wd: f64,
        lars_exclude: bool,
    ) -> (Tensor<BI, 1>, Vec<Tensor<BI, 1>>) {
        let LarsRule { momentum: mom, dampening, nesterov, eta, eps } = *self;
        let d = if lars_exclude {
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
}
