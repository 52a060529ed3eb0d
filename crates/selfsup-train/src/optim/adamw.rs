//! `torch.optim.AdamW`: its arguments and its update rule (fused where
//! [`crate::fused`] has a kernel for the backend).
use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

use crate::fused;

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
    /// `LearningRateDecayOptimWrapperConstructor` (see [`LayerDecay`](super::LayerDecay)).
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

/// AdamW's update: decoupled decay `p ← p·(1 − lr·wd)`, bias-corrected
/// moments, `eps` added to `√v̂`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct AdamWRule {
    pub(super) betas: (f64, f64),
    pub(super) eps: f64,
}

impl AdamWRule {
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
        let AdamWRule { betas: (b1, b2), eps } = *self;
        let t = step as i32;
        let bias1 = 1.0 - b1.powi(t);
        let bias2 = 1.0 - b2.powi(t);
        let h = fused::AdamWStep { decay: 1.0 - lr * wd, b1, b2, eps, step_size: lr / bias1, bias2_sqrt: bias2.sqrt() };
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
}
