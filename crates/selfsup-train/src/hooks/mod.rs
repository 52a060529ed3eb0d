//! MMEngine's hooks: code that runs at fixed points of the training loop.
//!
//! The loop ([`crate::runner`]) calls every hook, in order, at MMEngine's
//! points: before and after the run, each epoch and each iteration, and
//! around checkpoints. A hook that changes the model or the loop does it
//! through the [`Runner`] it is handed, as MMEngine's hooks change
//! `runner.model`; a hook with state of its own saves and restores it in
//! [`Hook::before_save_checkpoint`] and [`Hook::after_load_checkpoint`].
//!
//! The default hooks come from `default_hooks` (`CheckpointHook`,
//! `LoggerHook`), plus the progress bar and the non-finite guard; the
//! algorithm hooks from `custom_hooks`, by MMSelfSup's `type` names
//! ([`CustomHookConfig`]); MMEngine's `ValLoop` from `val_dataloader` and
//! `val_evaluator`. One hook, one file.
use std::path::Path;

use burn::tensor::backend::AutodiffBackend;
use selfsup_weights::StateDict;

use crate::{
    config::LoadedConfig,
    runner::{IterOutput, Runner, TrainOptions},
    TrainError,
};

mod checkpoint_hook;
mod configs;
mod deepcluster_hook;
mod densecl_hook;
mod dino_teacher_temp_warmup_hook;
mod logger_hook;
mod nonfinite_guard;
mod odc_hook;
mod progress_hook;
mod representation_monitor_hook;
mod simsiam_hook;
mod swav_hook;
mod val_loop;

pub use checkpoint_hook::CheckpointHook;
pub use configs::{
    ClusteringConfig, CustomHookConfig, DeepClusterHookConfig, DenseClHookConfig, OdcHookConfig, SimSiamHookConfig, SwAVHookConfig,
};
pub use deepcluster_hook::DeepClusterHook;
pub use densecl_hook::DenseCLHook;
pub use dino_teacher_temp_warmup_hook::{DinoTeacherTempWarmupHook, DinoTeacherTempWarmupHookConfig};
pub(crate) use logger_hook::append_scalars;
pub use logger_hook::LoggerHook;
pub use nonfinite_guard::NonFiniteGuard;
pub use odc_hook::OdcHook;
pub use progress_hook::ProgressHook;
pub use representation_monitor_hook::{Measurement, RepresentationMonitorHook, RepresentationMonitorHookConfig};
pub use simsiam_hook::SimSiamHook;
pub use swav_hook::SwAVHook;
pub use val_loop::ValLoop;

/// A hook's own generator, keyed by the run's seed, a counter (epoch or iteration) and the
/// hook's 16-byte tag: the same draws after a resume, whatever ran before.
pub(crate) fn keyed_rng(seed: u64, counter: usize, tag: &[u8; 16]) -> rand_chacha::ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(counter as u64).to_le_bytes());
    key[16..].copy_from_slice(tag);
    rand::SeedableRng::from_seed(key)
}

/// A hook: every method has a default that does nothing.
pub trait Hook<B: AutodiffBackend> {
    /// Once, before the first iteration (after a resume).
    fn before_train(&mut self, _runner: &mut Runner<B>) -> Result<(), TrainError> {
        Ok(())
    }

    /// At the start of every epoch, also of a resumed partial one.
    fn before_train_epoch(&mut self, _runner: &mut Runner<B>) -> Result<(), TrainError> {
        Ok(())
    }

    /// Before each iteration's forward pass.
    fn before_train_iter(&mut self, _runner: &mut Runner<B>) -> Result<(), TrainError> {
        Ok(())
    }

    /// After each iteration: `runner.iter` counts it already.
    fn after_train_iter(&mut self, _runner: &mut Runner<B>, _out: &IterOutput) -> Result<(), TrainError> {
        Ok(())
    }

    /// At the end of every epoch (the data ran out): `runner.epoch` counts it already.
    fn after_train_epoch(&mut self, _runner: &mut Runner<B>) -> Result<(), TrainError> {
        Ok(())
    }

    /// Once, after the last iteration, before the final checkpoint.
    fn after_train(&mut self, _runner: &mut Runner<B>) -> Result<(), TrainError> {
        Ok(())
    }

    /// Adds the hook's state to a checkpoint about to be written. Every
    /// rank calls it (a hook may gather across replicas); rank 0 writes.
    fn before_save_checkpoint(&mut self, _runner: &Runner<B>, _checkpoint: &mut StateDict) -> Result<(), TrainError> {
        Ok(())
    }

    /// After a checkpoint was written to `path`.
    fn after_save_checkpoint(&mut self, _runner: &Runner<B>, _path: &Path) -> Result<(), TrainError> {
        Ok(())
    }

    /// Takes the hook's state out of a checkpoint being resumed, before the
    /// model loads the rest.
    fn after_load_checkpoint(&mut self, _runner: &mut Runner<B>, _checkpoint: &mut StateDict) -> Result<(), TrainError> {
        Ok(())
    }
}

/// The hooks of a run, in the order they are called: the guard first (a
/// non-finite iteration is never logged or saved as good), the algorithm
/// hooks, then the progress bar, the logger and the checkpoints, as
/// MMEngine's priorities order them.
pub fn build<B: AutodiffBackend>(cfg: &LoadedConfig, opts: &TrainOptions, lead: bool) -> Vec<Box<dyn Hook<B>>> {
    let run = &cfg.run;
    let mut hooks: Vec<Box<dyn Hook<B>>> = vec![Box::new(NonFiniteGuard)];
    for hook in &run.custom_hooks {
        hooks.push(match hook {
            CustomHookConfig::SwAV(c) => Box::new(SwAVHook::new(c.clone())),
            CustomHookConfig::DenseCl(c) => Box::new(DenseCLHook::new(c.clone())),
            CustomHookConfig::SimSiam(c) => Box::new(SimSiamHook::new(c.clone())),
            CustomHookConfig::DeepCluster(c) => Box::new(DeepClusterHook::new(c.clone())),
            CustomHookConfig::Odc(c) => Box::new(OdcHook::new(c.clone())),
            CustomHookConfig::DinoTeacherTempWarmup(c) => Box::new(DinoTeacherTempWarmupHook::new(c)),
            CustomHookConfig::RepresentationMonitor(c) => Box::new(RepresentationMonitorHook::new(c.clone())),
        });
    }
    // MMEngine builds a ValLoop from val_dataloader and val_evaluator.
    if let (Some(dl), Some(e)) = (&run.val_dataloader, &run.val_evaluator) {
        hooks.push(Box::new(ValLoop::new(dl.clone(), e.topk(), run.train_cfg.val_interval.unwrap_or(1))));
    }
    let bar = lead && opts.progress && std::io::stderr().is_terminal();
    if bar {
        hooks.push(Box::new(ProgressHook::new(run.model.name())));
    }
    let interval = run.default_hooks.logger.as_ref().map(|l| l.interval.max(1)).unwrap_or(50);
    hooks.push(Box::new(LoggerHook::new(interval, lead, !bar)));
    if let Some(c) = &run.default_hooks.checkpoint {
        hooks.push(Box::new(CheckpointHook::new(c.clone(), lead)));
    }
    hooks
}

use std::io::IsTerminal;
