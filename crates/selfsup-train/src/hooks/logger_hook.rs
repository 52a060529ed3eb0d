//! MMEngine's `LoggerHook`: every `interval` iterations (and the last), one
//! JSON line in `scalars.json` (iteration, epoch, lr, the loss and its
//! parts, gradient norm, timing, throughput, loss scale), and a text line
//! on stderr when no progress bar shows.
use std::{fs, io::Write};

use burn::tensor::backend::AutodiffBackend;

use super::Hook;
use crate::{
    runner::{IterOutput, Runner},
    TrainError,
};

/// The run's log, `work_dir/scalars.json`.
pub(crate) fn scalars_path(work_dir: &std::path::Path) -> std::path::PathBuf {
    work_dir.join("scalars.json")
}

/// Appends one JSON line to `work_dir/scalars.json` (the evaluation hooks'
/// measurements between the logger's lines).
pub(crate) fn append_scalars(work_dir: &std::path::Path, line: &serde_json::Value) -> Result<(), TrainError> {
    let path = scalars_path(work_dir);
    let mut file = fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| TrainError::Io(path.clone(), e))?;
    writeln!(file, "{line}").map_err(|e| TrainError::Io(path, e))
}

/// `default_hooks.logger = dict(type='LoggerHook', interval=50)`.
#[derive(Debug)]
pub struct LoggerHook {
    interval: usize,
    lead: bool,
    print: bool,
    file: Option<fs::File>,
}

impl LoggerHook {
    /// Logs every `interval` iterations; only the `lead` replica writes;
    /// `print` adds a line on stderr.
    pub fn new(interval: usize, lead: bool, print: bool) -> Self {
        Self { interval: interval.max(1), lead, print, file: None }
    }
}

impl<B: AutodiffBackend> Hook<B> for LoggerHook {
    fn before_train(&mut self, runner: &mut Runner<B>) -> Result<(), TrainError> {
        if self.lead {
            let path = scalars_path(&runner.work_dir);
            let file = fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| TrainError::Io(path, e))?;
            self.file = Some(file);
        }
        Ok(())
    }

    fn after_train_iter(&mut self, runner: &mut Runner<B>, out: &IterOutput) -> Result<(), TrainError> {
        let (iter, max_iters) = (runner.iter, runner.max_iters);
        if !out.stepped || !(iter % self.interval == 0 || iter == max_iters) {
            return Ok(());
        }
        let mut line = serde_json::json!({
            "iter": iter, "epoch": runner.epoch + 1, "lr": out.lr, "loss": out.loss,
            "grad_norm": out.grad_norm, "time": out.time, "data_time": out.data_time,
            "img_per_s": out.images_per_sec,
        });
        for (name, v) in &out.parts {
            line[name.as_str()] = serde_json::json!(v);
        }
        if let Some(scale) = out.loss_scale {
            line["loss_scale"] = serde_json::json!(scale);
        }
        if let Some(file) = self.file.as_mut() {
            // A log line that cannot be written must not stop a run of days.
            let _ = writeln!(file, "{line}");
        }
        if self.lead && self.print {
            eprintln!(
                "Iter(train) [{iter:>6}/{max_iters}] epoch {} lr {:.4e} loss {:.4} {:.1} img/s",
                runner.epoch + 1,
                out.lr,
                out.loss,
                out.images_per_sec
            );
        }
        Ok(())
    }
}
