//! Training checkpoints: one safetensors file per checkpoint.
//!
//! The model's tensors are stored under MMSelfSup's `state_dict` keys in
//! PyTorch layouts, so a checkpoint is also a PyTorch-loadable weights file;
//! the optimiser moments sit under `optimizer.exp_avg.<key>` and
//! `optimizer.exp_avg_sq.<key>`, and the loop state (iteration, epoch,
//! random generator, resolved config) in the safetensors metadata as JSON.
//! Writes are atomic (temporary file, then rename).
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use burn::tensor::TensorData;
use serde::{Deserialize, Serialize};
use selfsup_weights::{read_checkpoint, write_safetensors, StateDict, WeightsError};

/// Prefix of the optimiser's first moments.
pub const EXP_AVG: &str = "optimizer.exp_avg.";
/// Prefix of the optimiser's second moments.
pub const EXP_AVG_SQ: &str = "optimizer.exp_avg_sq.";
const META_KEY: &str = "selfsup";

/// The loop state stored with a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Iterations finished.
    pub iter: usize,
    /// Epoch the next iteration belongs to.
    pub epoch: usize,
    /// Batches of that epoch already consumed.
    pub batch_in_epoch: usize,
    /// Optimiser steps taken.
    pub optimizer_steps: usize,
    /// The draws generator: seed bytes and word position.
    pub draws_seed: Vec<u8>,
    /// The draws generator's word position, as a decimal string.
    pub draws_word_pos: String,
    /// The algorithm (`model.type`).
    pub algorithm: String,
    /// The resolved config, as JSON.
    pub config: serde_json::Value,
}

/// A checkpoint read back.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The model's state dict (no optimiser entries).
    pub model: StateDict,
    /// `(key, exp_avg, exp_avg_sq)`.
    pub optimizer: Vec<(String, TensorData, TensorData)>,
    /// Loop state; `None` for a plain weights file.
    pub meta: Option<CheckpointMeta>,
}

/// Writes a checkpoint atomically.
pub fn save(
    path: &Path,
    model: BTreeMap<String, TensorData>,
    optimizer: Vec<(String, TensorData, TensorData)>,
    meta: &CheckpointMeta,
) -> Result<(), WeightsError> {
    let mut tensors = model;
    for (name, m, v) in optimizer {
        tensors.insert(format!("{EXP_AVG}{name}"), m);
        tensors.insert(format!("{EXP_AVG_SQ}{name}"), v);
    }
    let mut metadata = BTreeMap::new();
    metadata.insert(META_KEY.to_string(), serde_json::to_string(meta).unwrap_or_default());
    write_safetensors(path, &tensors, &metadata)
}

/// Reads a checkpoint (ours, or any weights file `read_checkpoint` reads).
pub fn load(path: &Path) -> Result<Checkpoint, WeightsError> {
    let state = read_checkpoint(path)?;
    let meta = match state.metadata.get(META_KEY) {
        Some(json) => Some(serde_json::from_str(json).map_err(|e| WeightsError::Format {
            path: path.to_path_buf(),
            message: format!("bad selfsup metadata: {e}"),
        })?),
        None => None,
    };
    let mut model = StateDict::default();
    let mut exp_avg = BTreeMap::new();
    let mut exp_avg_sq = BTreeMap::new();
    for (k, v) in state.tensors {
        if let Some(name) = k.strip_prefix(EXP_AVG) {
            exp_avg.insert(name.to_string(), v);
        } else if let Some(name) = k.strip_prefix(EXP_AVG_SQ) {
            exp_avg_sq.insert(name.to_string(), v);
        } else {
            model.tensors.insert(k, v);
        }
    }
    let optimizer = exp_avg
        .into_iter()
        .filter_map(|(k, m)| exp_avg_sq.remove(&k).map(|v| (k, m, v)))
        .collect();
    Ok(Checkpoint { model, optimizer, meta })
}

/// The file MMEngine uses to point at the newest checkpoint.
pub fn last_checkpoint_file(work_dir: &Path) -> PathBuf {
    work_dir.join("last_checkpoint")
}

/// The newest checkpoint of a work dir (`--resume auto`).
pub fn find_latest(work_dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(last_checkpoint_file(work_dir)).ok()?;
    let p = PathBuf::from(text.trim());
    let p = if p.is_absolute() { p } else { work_dir.join(p) };
    p.exists().then_some(p)
}
