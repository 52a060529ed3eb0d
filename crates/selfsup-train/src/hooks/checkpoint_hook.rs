//! MMEngine's `CheckpointHook`: a checkpoint every `interval` epochs or
//! iterations, and only the newest `max_keep_ckpts` kept.
use std::{
    fs,
    path::{Path, PathBuf},
};

use burn::tensor::backend::AutodiffBackend;

use super::Hook;
use crate::{
    config::CheckpointHook as CheckpointHookConfig,
    runner::{IterOutput, Runner},
    TrainError,
};

/// `default_hooks.checkpoint = dict(type='CheckpointHook', interval, by_epoch, max_keep_ckpts)`.
///
/// It asks the runner for a checkpoint ([`Runner::save_request`]) after the
/// iteration or epoch that completes an interval, except at the very end,
/// where the runner writes the final one anyway; then it prunes. Saves
/// inside a gradient-accumulation group wait for its end.
#[derive(Debug, Clone)]
pub struct CheckpointHook {
    cfg: CheckpointHookConfig,
    lead: bool,
    written: Vec<PathBuf>,
}

impl CheckpointHook {
    /// The hook of `cfg`; only the `lead` replica deletes files.
    pub fn new(cfg: CheckpointHookConfig, lead: bool) -> Self {
        Self { cfg, lead, written: Vec::new() }
    }

    fn every(&self, n: usize) -> bool {
        self.cfg.interval > 0 && n.is_multiple_of(self.cfg.interval as usize)
    }
}

impl<B: AutodiffBackend> Hook<B> for CheckpointHook {
    /// Counts the work dir's checkpoints from before a resume, so that
    /// `max_keep_ckpts` prunes them too.
    fn before_train(&mut self, runner: &mut Runner<B>) -> Result<(), TrainError> {
        if runner.last_checkpoint.is_some() {
            self.written = crate::checkpoint::list(&runner.work_dir);
        }
        Ok(())
    }

    fn after_train_iter(&mut self, runner: &mut Runner<B>, out: &IterOutput) -> Result<(), TrainError> {
        if out.stepped && !self.cfg.by_epoch && self.every(runner.iter) && runner.iter < runner.max_iters {
            runner.save_request = Some(format!("iter_{}.safetensors", runner.iter));
        }
        Ok(())
    }

    fn after_train_epoch(&mut self, runner: &mut Runner<B>) -> Result<(), TrainError> {
        if self.cfg.by_epoch && self.every(runner.epoch) && runner.iter < runner.max_iters {
            runner.save_request = Some(format!("epoch_{}.safetensors", runner.epoch));
        }
        Ok(())
    }

    fn after_save_checkpoint(&mut self, _runner: &Runner<B>, path: &Path) -> Result<(), TrainError> {
        self.written.retain(|p| p != path);
        self.written.push(path.to_path_buf());
        if self.lead && self.cfg.max_keep_ckpts > 0 {
            while self.written.len() > self.cfg.max_keep_ckpts as usize {
                let old = self.written.remove(0);
                // A checkpoint that is already gone needs no pruning.
                let _ = fs::remove_file(old);
            }
        }
        Ok(())
    }
}
