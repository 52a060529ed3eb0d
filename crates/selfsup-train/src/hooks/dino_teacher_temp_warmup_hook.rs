//! Port of `DINOTeacherTempWarmupHook` (mmpretrain 1.2.0,
//! `projects/dino/engine/hooks/dino_teacher_temp_warmup_hook.py`): before
//! each epoch, the teacher temperature of the epoch, rising linearly from
//! `warmup_teacher_temp` to `teacher_temp` over the first
//! `teacher_temp_warmup_epochs` epochs (`np.linspace`, both ends included)
//! and constant afterwards. It also freezes DINO's last layer for the
//! model's `freeze_last_layer` epochs.
use burn::tensor::backend::AutodiffBackend;
use selfsup_algorithms::Algorithm;
use serde::{Deserialize, Serialize};

use super::Hook;
use crate::{runner::Runner, TrainError};

/// `dict(type='DINOTeacherTempWarmupHook', warmup_teacher_temp,
/// teacher_temp, teacher_temp_warmup_epochs, max_epochs)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DinoTeacherTempWarmupHookConfig {
    /// The first epoch's temperature.
    pub warmup_teacher_temp: f64,
    /// The temperature after the warm-up.
    pub teacher_temp: f64,
    /// Epochs of the linear warm-up.
    pub teacher_temp_warmup_epochs: usize,
    /// Epochs of the schedule (the run's `max_epochs`).
    pub max_epochs: usize,
    /// MMEngine's hook priority; accepted.
    #[serde(default)]
    pub priority: Option<serde_json::Value>,
}

impl DinoTeacherTempWarmupHookConfig {
    /// The schedule: one temperature per epoch, `max_epochs` of them.
    pub fn teacher_temps(&self) -> Vec<f64> {
        let w = self.teacher_temp_warmup_epochs;
        let step = if w > 1 { (self.teacher_temp - self.warmup_teacher_temp) / (w - 1) as f64 } else { 0.0 };
        let mut temps: Vec<f64> =
            (0..w).map(|i| if i + 1 == w && w > 1 { self.teacher_temp } else { self.warmup_teacher_temp + step * i as f64 }).collect();
        temps.extend(std::iter::repeat_n(self.teacher_temp, self.max_epochs.saturating_sub(w)));
        temps
    }

    /// Checks the schedule; `(key, message)` for the first bad field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.warmup_teacher_temp <= 0.0 || self.teacher_temp <= 0.0 {
            return Err(("teacher_temp", "temperatures must be positive".into()));
        }
        if self.teacher_temp_warmup_epochs > self.max_epochs {
            return Err(("teacher_temp_warmup_epochs", format!("exceeds max_epochs {}", self.max_epochs)));
        }
        Ok(())
    }
}

/// The hook.
#[derive(Debug, Clone)]
pub struct DinoTeacherTempWarmupHook {
    temps: Vec<f64>,
}

impl DinoTeacherTempWarmupHook {
    /// The hook of `cfg`.
    pub fn new(cfg: &DinoTeacherTempWarmupHookConfig) -> Self {
        Self { temps: cfg.teacher_temps() }
    }
}

impl<B: AutodiffBackend> Hook<B> for DinoTeacherTempWarmupHook {
    /// Also at the start of a resumed partial epoch, so a resumed run uses
    /// the same temperature.
    fn before_train_epoch(&mut self, runner: &mut Runner<B>) -> Result<(), TrainError> {
        let epoch = runner.epoch;
        let Some(&temp) = self.temps.get(epoch) else {
            return Err(TrainError::Other(format!("DINOTeacherTempWarmupHook: epoch {epoch} is past its max_epochs {}", self.temps.len())));
        };
        match &mut runner.model {
            Algorithm::Dino(m) => {
                m.begin_epoch(epoch, temp);
                Ok(())
            }
            other => Err(TrainError::Other(format!(
                "DINOTeacherTempWarmupHook drives DINO, not {}",
                selfsup_core::SelfSupAlgorithm::name(other)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(w: f64, t: f64, epochs: usize, max: usize) -> DinoTeacherTempWarmupHookConfig {
        DinoTeacherTempWarmupHookConfig {
            warmup_teacher_temp: w,
            teacher_temp: t,
            teacher_temp_warmup_epochs: epochs,
            max_epochs: max,
            priority: None,
        }
    }

    /// `np.concatenate((np.linspace(w, t, e), np.ones(max - e) * t))`.
    #[test]
    fn schedule_is_numpys() {
        assert_eq!(cfg(0.04, 0.04, 0, 3).teacher_temps(), vec![0.04; 3]);
        let temps = cfg(0.04, 0.07, 4, 6).teacher_temps();
        let expected = [0.04, 0.05, 0.06, 0.07, 0.07, 0.07];
        assert_eq!(temps.len(), 6);
        for (a, b) in temps.iter().zip(expected) {
            assert!((a - b).abs() < 1e-15, "{temps:?}");
        }
        assert_eq!(cfg(0.04, 0.07, 1, 2).teacher_temps(), vec![0.04, 0.07]);
        assert!(cfg(0.04, 0.07, 5, 4).validate().is_err());
    }
}
