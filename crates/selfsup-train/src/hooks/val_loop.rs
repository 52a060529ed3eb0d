//! MMEngine's `ValLoop` (`mmengine/runner/loops.py`) with mmcls's
//! `Accuracy`: when a config has `val_dataloader` and `val_evaluator`,
//! every `train_cfg.val_interval` epochs (default 1) the model in eval
//! mode classifies the evaluation data and `accuracy/top{k}` go to
//! `scalars.json` (drawn by `selfsup plot` as `accuracy.png`) and stderr.
//! Only the lead replica evaluates; the hook keeps no state.
use burn::{module::AutodiffModule, tensor::backend::AutodiffBackend};
use selfsup_data::DataLoaderConfig;

use super::Hook;
use crate::{
    finetune::{evaluate, log_accuracy},
    runner::Runner,
    TrainError,
};

/// The hook; see the module documentation.
#[derive(Debug)]
pub struct ValLoop {
    dl: DataLoaderConfig,
    topk: Vec<usize>,
    interval: usize,
}

impl ValLoop {
    /// Evaluates on `dl` every `interval` epochs.
    pub fn new(dl: DataLoaderConfig, topk: Vec<usize>, interval: usize) -> Self {
        Self { dl, topk, interval: interval.max(1) }
    }
}

impl ValLoop {
    /// Evaluates after `epochs` finished epochs when the interval says so.
    fn validate<B: AutodiffBackend>(&self, runner: &Runner<B>, epochs: usize) -> Result<(), TrainError> {
        if !runner.is_lead() || !epochs.is_multiple_of(self.interval) {
            return Ok(());
        }
        let model = runner.model.valid();
        let acc = evaluate(&runner.cfg, &model, &self.dl, &self.topk, runner.device())?;
        log_accuracy(&runner.work_dir, runner.iter, epochs as f64, &acc)?;
        let list: Vec<String> = acc.topk.iter().map(|(k, a)| format!("top-{k} {a:.2} %")).collect();
        eprintln!("Epoch(val) [{epochs}]: {} ({} images)", list.join(", "), acc.num_samples);
        Ok(())
    }
}

impl<B: AutodiffBackend> Hook<B> for ValLoop {
    fn after_train_epoch(&mut self, runner: &mut Runner<B>) -> Result<(), TrainError> {
        // `runner.epoch` counts the finished epochs here.
        self.validate(runner, runner.epoch)
    }

    fn after_train(&mut self, runner: &mut Runner<B>) -> Result<(), TrainError> {
        // The loop stops before `after_train_epoch` of a completed last epoch.
        if runner.batch_in_epoch >= runner.epoch_length {
            self.validate(runner, runner.epoch + 1)?;
        }
        Ok(())
    }
}
