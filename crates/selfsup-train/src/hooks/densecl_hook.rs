//! Port of `mmselfsup.engine.hooks.DenseCLHook`: the dense loss weight is 0
//! before `start_iters`, then the configured `loss_lambda`.
use burn::tensor::backend::AutodiffBackend;
use selfsup_algorithms::Algorithm;

use super::Hook;
use crate::{config::DenseClHookConfig, runner::Runner, TrainError};

/// `dict(type='DenseCLHook', start_iters=1000)`.
#[derive(Debug, Clone)]
pub struct DenseCLHook {
    cfg: DenseClHookConfig,
}

impl DenseCLHook {
    /// The hook of `cfg` (the config checks that the model is DenseCL).
    pub fn new(cfg: DenseClHookConfig) -> Self {
        Self { cfg }
    }
}

impl<B: AutodiffBackend> Hook<B> for DenseCLHook {
    fn before_train_iter(&mut self, runner: &mut Runner<B>) -> Result<(), TrainError> {
        let active = runner.iter >= self.cfg.start_iters;
        match &mut runner.model {
            Algorithm::DenseCl(m) => m.set_dense_loss(active),
            other => {
                return Err(TrainError::Other(format!("DenseCLHook drives DenseCL, not {}", selfsup_core::SelfSupAlgorithm::name(other))))
            }
        }
        Ok(())
    }
}
