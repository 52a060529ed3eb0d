//! The non-finite guard: a run whose loss turns NaN or infinite stops at
//! that iteration, before any hook logs it or saves it as good, and names
//! the newest checkpoint written before it.
use burn::tensor::backend::AutodiffBackend;

use super::Hook;
use crate::{
    runner::{IterOutput, Runner},
    TrainError,
};

/// Stops the run on a non-finite loss (MMEngine raises in `parse_losses`
/// only under `detect_anomalous_params`; a NaN run of days is worth
/// stopping). Runs first among the hooks.
#[derive(Debug, Default)]
pub struct NonFiniteGuard;

impl<B: AutodiffBackend> Hook<B> for NonFiniteGuard {
    fn after_train_iter(&mut self, runner: &mut Runner<B>, out: &IterOutput) -> Result<(), TrainError> {
        if out.loss.is_finite() {
            return Ok(());
        }
        // The replicas' losses are averaged, so every rank stops here.
        Err(TrainError::NonFinite { iter: runner.iter - 1, parts: out.parts.clone(), last_checkpoint: runner.last_checkpoint.clone() })
    }
}
