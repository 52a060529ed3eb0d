//! What a run takes from the command line and what it reports at the end.
use std::path::PathBuf;

/// How to resume.
#[derive(Debug, Clone, PartialEq)]
pub enum Resume {
    /// Start fresh (unless the config says `resume = true`).
    No,
    /// The newest checkpoint in the work dir, if any.
    Auto,
    /// This checkpoint.
    From(PathBuf),
}

/// Options that come from the command line rather than the config.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Output folder: checkpoints, logs, the resolved config.
    pub work_dir: PathBuf,
    /// Resume mode.
    pub resume: Resume,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Name of the config file written to the work dir.
    pub config_name: String,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Iterations run in total (including before a resume).
    pub iters: usize,
    /// Iterations run by this invocation.
    pub iters_this_run: usize,
    /// The losses of every iteration of this invocation (total).
    pub losses: Vec<f64>,
    /// Images per second over this invocation.
    pub images_per_sec: f64,
    /// Images skipped because they could not be read.
    pub skipped_images: usize,
    /// The final checkpoint.
    pub checkpoint: PathBuf,
}
