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
        Self::with_target(name, ProgressDrawTarget::stderr_with_hz(4))
    }

    fn with_target(name: &str, target: ProgressDrawTarget) -> Self {
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(ProgressStyle::with_template("{prefix} [{bar:30}] {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()));
        bar.set_prefix(name.to_string());
        Self { bar }
    }

    /// Shows iteration `iter` of `max_iters` with its output.
    fn show(&self, iter: usize, max_iters: usize, out: &IterOutput) {
        // The iteration and its loss are one message, so that no frame pairs one
        // iteration's count with another's loss (moving the bar and changing the
        // message are two updates, and either may draw).
        let eta = self.bar.eta().as_secs();
        self.bar.set_message(format!(
            "{}/{} eta {}:{:02}:{:02} | loss {:.4} lr {:.3e} {:.1} img/s data {:.0}%",
            iter,
            max_iters,
            eta / 3600,
            eta / 60 % 60,
            eta % 60,
            out.loss,
            out.lr,
            out.images_per_sec,
            100.0 * out.data_share
        ));
        self.bar.set_position(iter as u64);
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
            self.show(runner.iter, runner.max_iters, out);
        }
        Ok(())
    }

    fn after_train(&mut self, _runner: &mut Runner<B>) -> Result<(), TrainError> {
        self.bar.finish_and_clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use indicatif::TermLike;

    use super::*;

    /// A terminal that keeps every line drawn.
    #[derive(Debug, Default, Clone)]
    struct Screen(Arc<Mutex<Vec<String>>>);

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            200
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            if !s.trim().is_empty() {
                self.0.lock().unwrap().push(s.to_string());
            }
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Every frame shows an iteration with that iteration's loss.
    #[test]
    fn every_frame_pairs_an_iteration_with_its_own_loss() {
        let screen = Screen::default();
        let hook = ProgressHook::with_target("SimCLR", ProgressDrawTarget::term_like_with_hz(Box::new(screen.clone()), 200));
        hook.bar.set_length(300);
        for iter in 1..=300 {
            let out = IterOutput {
                parts: vec![],
                loss: iter as f64,
                stepped: true,
                grad_norm: 0.0,
                lr: 0.1,
                loss_scale: None,
                time: 0.0,
                data_time: 0.0,
                data_share: 0.0,
                images_per_sec: 1.0,
            };
            hook.show(iter, 300, &out);
            if iter % 7 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(6));
            }
        }
        let frames = screen.0.lock().unwrap().clone();
        assert!(frames.len() > 5, "{frames:?}");
        for f in &frames {
            let Some((_, rest)) = f.split_once("] ") else { continue };
            let Some((pos, _)) = rest.split_once('/') else { continue };
            let loss = rest.split("loss ").nth(1).and_then(|l| l.split_whitespace().next()).unwrap();
            assert_eq!(format!("{pos}.0000"), loss, "frame `{f}`");
        }
    }
}
