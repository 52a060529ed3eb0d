//! Port of `mmselfsup.engine.hooks.SimSiamHook`: the predictor's parameter
//! group (`fix_lr` in `paramwise_cfg`) keeps a fixed learning rate while the
//! schedule moves the others.
use burn::tensor::backend::AutodiffBackend;

use super::Hook;
use crate::{config::SimSiamHookConfig, runner::Runner, TrainError};

/// `dict(type='SimSiamHook', fix_pred_lr=True, lr=..., adjust_by_epoch=True)`.
///
/// MMSelfSup resets the fixed groups' lr at the start of each epoch (or
/// iteration); the schedule here never moves them, which is the same.
#[derive(Debug, Clone)]
pub struct SimSiamHook {
    cfg: SimSiamHookConfig,
}

impl SimSiamHook {
    /// The hook of `cfg`.
    pub fn new(cfg: SimSiamHookConfig) -> Self {
        Self { cfg }
    }
}

impl<B: AutodiffBackend> Hook<B> for SimSiamHook {
    fn before_train(&mut self, runner: &mut Runner<B>) -> Result<(), TrainError> {
        if self.cfg.fix_pred_lr {
            for lr in runner.fixed_lrs.iter_mut().flatten() {
                *lr = self.cfg.lr;
            }
        }
        Ok(())
    }
}
