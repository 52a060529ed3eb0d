//! mmcls's `Lamb` (`mmcls/engine/optimizers/lamb.py`, timm's): its
//! arguments and its update rule.
use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

use crate::fused;

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
    /// `LearningRateDecayOptimWrapperConstructor` (see [`LayerDecay`](super::LayerDecay)).
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

/// Lamb's update: Adam moments, `u = m̂/(√v̂ + eps) + wd·p`, then
/// `p ← p − lr·(‖p‖/‖u‖)·u` when `wd ≠ 0` or `always_adapt` (ratio 1 for
/// zero norms, capped at 1 with `trust_clip`). Its own clipping by
/// `max_grad_norm` is applied to the gradients before (see
/// `Optimizer::step_with_norm`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct LambRule {
    pub(super) betas: (f64, f64),
    pub(super) eps: f64,
    pub(super) bias_correction: bool,
    pub(super) grad_averaging: bool,
    pub(super) max_grad_norm: Option<f64>,
    pub(super) trust_clip: bool,
    pub(super) always_adapt: bool,
}

impl LambRule {
    /// Updates the flattened parameter `p` with its gradient `g` at step
    /// `step` (1-based); `prior` is the state (`exp_avg`, `exp_avg_sq`).
    /// Returns the new parameter and state.
    pub(super) fn update<BI: Backend>(
        &self,
        p: Tensor<BI, 1>,
        g: Tensor<BI, 1>,
        prior: Option<Vec<Tensor<BI, 1>>>,
        lr: f64,
        wd: f64,
        step: usize,
    ) -> (Tensor<BI, 1>, Vec<Tensor<BI, 1>>) {
        let LambRule { betas: (b1, b2), eps, bias_correction, grad_averaging, trust_clip, always_adapt, .. } = *self;
        let t = step as i32;
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
}
