//! A progress bar on a terminal (rank 0): position, ETA, loss, lr,
//! throughput and the share of time spent waiting for data.
use burn::tensor::backend::AutodiffBackend;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Hook;
use crate::{
    runner::{IterOutput, Runner},
    TrainError,
};

/// The progress bar; the runner adds it only when stderr is a terminal.
#[derive(Debug)]
pub struct ProgressHook {
    bar: ProgressBar,
}

impl ProgressHook {
    /// A bar prefixed with the algorithm's name.
    pub fn new(name: &str) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} eta {eta} | {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(name.to_string());
        Self { bar }
    }
}

impl<B: AutodiffBackend> Hook<B> for ProgressHook {
    fn before_train(&mut self, runner: &mut Runner<B>) -> Result<(), TrainError> {
        self.bar.set_length(runner.max_iters as u64);
        self.bar.set_position(runner.iter as u64);
        Ok(())
    }

    fn after_train_iter(&mut self, runner: &mut Runner<B>, out: &IterOutput) -> Result<(), TrainError> {
        if out.stepped {
            // Message first: moving the bar may draw it, and the frame must pair this
            // iteration's position with this iteration's loss.
            self.bar.set_message(format!(
                "loss {:.4} lr {:.3e} {:.1} img/s data {:.0}%",
                out.loss,
                out.lr,
                out.images_per_sec,
                100.0 * out.data_share
            ));
            self.bar.set_position(runner.iter as u64);
        }
        Ok(())
    }

    fn after_train(&mut self, _runner: &mut Runner<B>) -> Result<(), TrainError> {
        self.bar.finish_and_clear();
        Ok(())
    }
}
