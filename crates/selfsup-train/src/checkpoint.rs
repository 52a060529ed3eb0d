//! Training checkpoints: one safetensors file per checkpoint.
//!
//! The model's tensors are stored under MMSelfSup's `state_dict` keys in
//! PyTorch layouts, so a checkpoint is also a PyTorch-loadable weights file;
//! the optimiser state sits under `optimizer.<slot>.<key>` (PyTorch's state
//! names: `exp_avg`, `exp_avg_sq`, `momentum_buffer`), and the loop state (iteration, epoch,
//! random generator, resolved config) in the safetensors metadata as JSON.
//! Writes are atomic (temporary file, then rename).
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use burn::tensor::TensorData;
use selfsup_weights::{read_checkpoint, write_safetensors, StateDict, WeightsError};
use serde::{Deserialize, Serialize};

/// SwAV's feature queue (`SwAVHook` state), saved with the model's tensors.
pub const SWAV_QUEUE: &str = "hooks.swav_queue";
/// Prefix of the optimiser's state tensors.
pub const OPTIMIZER: &str = "optimizer.";
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
    /// `AmpOptimWrapper`'s loss scaler: `(scale, growth_tracker)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scaler: Option<(f64, usize)>,
}

/// A checkpoint read back.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The model's state dict (no optimiser entries).
    pub model: StateDict,
    /// `(slot, key, tensor)`.
    pub optimizer: Vec<(String, String, TensorData)>,
    /// Loop state; `None` for a plain weights file.
    pub meta: Option<CheckpointMeta>,
}

/// Writes a checkpoint atomically.
pub fn save(
    path: &Path,
    model: BTreeMap<String, TensorData>,
    optimizer: Vec<(String, String, TensorData)>,
    meta: &CheckpointMeta,
) -> Result<(), WeightsError> {
    let mut tensors = model;
    for (slot, name, t) in optimizer {
        tensors.insert(format!("{OPTIMIZER}{slot}.{name}"), t);
    }
    let mut metadata = BTreeMap::new();
    metadata.insert(META_KEY.to_string(), serde_json::to_string(meta).unwrap_or_default());
    write_safetensors(path, &tensors, &metadata)
}

/// Reads a checkpoint (ours, or any weights file `read_checkpoint` reads).
pub fn load(path: &Path) -> Result<Checkpoint, WeightsError> {
    let state = read_checkpoint(path)?;
    let meta = match state.metadata.get(META_KEY) {
        Some(json) => Some(
            serde_json::from_str(json)
                .map_err(|e| WeightsError::Format { path: path.to_path_buf(), message: format!("bad selfsup metadata: {e}") })?,
        ),
        None => None,
    };
    let mut model = StateDict::default();
    let mut optimizer = Vec::new();
    for (k, v) in state.tensors {
        match k.strip_prefix(OPTIMIZER).and_then(|rest| rest.split_once('.')) {
            Some((slot, name)) => optimizer.push((slot.to_string(), name.to_string(), v)),
            None => {
                model.tensors.insert(k, v);
            }
        }
    }
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
