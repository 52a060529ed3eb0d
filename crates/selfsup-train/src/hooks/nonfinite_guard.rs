//! The non-finite guard: a run whose loss or gradient norm turns NaN or
//! infinite stops at that iteration, before any hook logs it or saves it as
//! good, and names the newest checkpoint written before it. (Weights are
//! checked where they are saved: [`crate::runner::Runner::save_checkpoint`]
//! never writes a non-finite checkpoint.)
use burn::tensor::backend::AutodiffBackend;

use super::Hook;
use crate::{
    runner::{IterOutput, Runner},
    TrainError,
};

/// Stops the run on a non-finite loss, or a non-finite gradient norm
/// unless `AmpOptimWrapper`'s loss scaler skips that step (MMEngine raises
/// only under `detect_anomalous_params`; a NaN run of days is worth
/// stopping). Runs first among the hooks.
#[derive(Debug, Default)]
pub struct NonFiniteGuard;

impl<B: AutodiffBackend> Hook<B> for NonFiniteGuard {
    fn after_train_iter(&mut self, runner: &mut Runner<B>, out: &IterOutput) -> Result<(), TrainError> {
        // The replicas' losses and gradients are averaged, so every rank
        // stops here together.
        let what = if !out.loss.is_finite() {
            "loss"
        } else if out.stepped && out.loss_scale.is_none() && !out.grad_norm.is_finite() {
            "gradient norm"
        } else {
            return Ok(());
        };
        Err(TrainError::NonFinite { iter: runner.iter, what, parts: out.parts.clone(), last_checkpoint: runner.last_checkpoint.clone() })
    }
}
