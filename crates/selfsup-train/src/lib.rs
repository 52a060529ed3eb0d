//! The selfsup training engine: MMEngine's runner, for one device.
//!
//! - [`config`]: the run config in MMSelfSup's layout (`model`,
//!   `train_dataloader`, `optim_wrapper`, `param_scheduler`, `train_cfg`,
//!   `default_hooks`, ...), validated at load time.
//! - [`optim`]: AdamW, SGD, LARS and Lamb with PyTorch semantics (one file
//!   per update rule under `optim/`), MMEngine's `paramwise_cfg`, gradient
//!   clipping and `AmpOptimWrapper`'s loss scaler.
//! - [`schedule`]: MMEngine's parameter schedulers in their chainable form.
//! - [`runner`]: the loop (MMEngine's `Runner`), resume, data-parallel
//!   training.
//! - [`hooks`]: what runs around the loop, one hook per file: checkpoints,
//!   the log (`scalars.json`), the progress bar, the non-finite guard, and
//!   MMSelfSup's `SwAVHook`, `DenseCLHook` and `SimSiamHook`.
//! - [`checkpoint`]: atomic safetensors checkpoints with PyTorch keys.
//! - [`bench`] and [`extract`]: throughput measurement and feature extraction.
//!
//! It is generic over burn's `AutodiffBackend`; the CLI picks the backend.
#![warn(missing_docs)]

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod extract;
pub mod finetune;
mod fused;
pub mod hooks;
pub mod knn;
pub mod linear_probe;
pub mod optim;
pub mod representation;
pub mod runner;
pub mod schedule;
pub mod visualize;

use std::path::PathBuf;

pub use config::{LoadedConfig, RunConfig, RunConfigError};
pub use runner::{train, train_data_parallel, Resume, TrainOptions, TrainSummary};

/// Errors that stop a run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] RunConfigError),
    /// Reading or writing weights failed.
    #[error(transparent)]
    Weights(#[from] selfsup_weights::WeightsError),
    /// The data pipeline failed.
    #[error(transparent)]
    Data(#[from] selfsup_data::DataError),
    /// The model rejected a batch.
    #[error(transparent)]
    Model(#[from] selfsup_core::ModelError),
    /// A file could not be written.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The loss, the gradient norm or the weights became NaN or infinite;
    /// nothing of that iteration was saved, and `last_checkpoint` is the
    /// newest checkpoint written before it (every checkpoint written is
    /// finite).
    #[error("non-finite {what} at iteration {iter}: {}; last good checkpoint: {}",
        parts.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(", "),
        last_checkpoint.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "none (no checkpoint written yet)".into()))]
    NonFinite {
        /// The iteration, numbered from 1 as the log numbers them.
        iter: usize,
        /// What was not finite: `loss`, `gradient norm` or `weights`.
        what: &'static str,
        /// The loss parts of that iteration.
        parts: Vec<(String, f64)>,
        /// The newest checkpoint, untouched.
        last_checkpoint: Option<PathBuf>,
    },
    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}
