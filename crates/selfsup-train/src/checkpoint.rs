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
use selfsup_weights::{read_checkpoint, write_atomic, write_safetensors, StateDict, WeightsError};
use serde::{Deserialize, Serialize};

/// Prefix of the hooks' state saved with the model's tensors.
pub const HOOKS: &str = "hooks.";
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

/// The model's weights in any checkpoint: a selfsup training checkpoint
/// without its training state (optimiser state, hook state such as SwAV's
/// queue, loop metadata), or an MMSelfSup `.pth` or safetensors file as it
/// is.
pub fn model_weights(path: &Path) -> Result<StateDict, WeightsError> {
    let mut state = load(path)?.model;
    state.tensors.retain(|k, _| !k.starts_with(HOOKS));
    state.metadata.remove(META_KEY);
    Ok(state)
}

/// The file MMEngine uses to point at the newest checkpoint.
pub fn last_checkpoint_file(work_dir: &Path) -> PathBuf {
    work_dir.join("last_checkpoint")
}

/// Points `last_checkpoint` at `path` (a name relative to the work dir),
/// atomically: a kill never leaves it empty.
pub fn write_last_checkpoint(work_dir: &Path, path: &Path) -> Result<(), WeightsError> {
    let rel = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    write_atomic(&last_checkpoint_file(work_dir), rel.as_bytes())
}

/// Whether every value of a float tensor is finite (other dtypes are).
pub fn is_finite(t: &TensorData) -> bool {
    match t.dtype {
        burn::tensor::DType::F32 => t.as_slice::<f32>().map_or(true, |v| v.iter().all(|x| x.is_finite())),
        burn::tensor::DType::F64 => t.as_slice::<f64>().map_or(true, |v| v.iter().all(|x| x.is_finite())),
        d if d.is_float() => t.clone().convert::<f32>().to_vec::<f32>().map_or(true, |v| v.iter().all(|x| x.is_finite())),
        _ => true,
    }
}

/// The loop state of a checkpoint, read from the safetensors header only
/// (`None` when the file is not a readable selfsup training checkpoint).
pub fn read_meta(path: &Path) -> Option<CheckpointMeta> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).ok()?;
    let len = u64::from_le_bytes(len);
    let file_len = f.metadata().ok()?.len();
    if len > file_len.saturating_sub(8) || len > 100 << 20 {
        return None;
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).ok()?;
    let header: serde_json::Value = serde_json::from_slice(&header).ok()?;
    let json = header.get("__metadata__")?.get(META_KEY)?.as_str()?;
    serde_json::from_str(json).ok()
}

/// The newest checkpoint of a work dir (`--resume auto`): the one
/// `last_checkpoint` names, or, when that pointer is missing, empty or
/// names a file that is gone or unreadable, the readable checkpoint of the
/// work dir with the most iterations (said on stderr).
pub fn find_latest(work_dir: &Path) -> Option<PathBuf> {
    let pointer = std::fs::read_to_string(last_checkpoint_file(work_dir)).ok();
    let named = pointer.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(|t| {
        let p = PathBuf::from(t);
        if p.is_absolute() {
            p
        } else {
            work_dir.join(p)
        }
    });
    if let Some(p) = &named {
        if p.is_file() && read_meta(p).is_some() {
            return Some(p.clone());
        }
    }
    let newest = std::fs::read_dir(work_dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors") && p.is_file())
        .filter_map(|p| read_meta(&p).map(|m| (m.iter, p)))
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)))
        .map(|(_, p)| p);
    if let (Some(found), Some(pointer)) = (&newest, pointer) {
        eprintln!(
            "warning: last_checkpoint ({:?}) names no readable checkpoint; resuming from the newest readable one, {}",
            pointer.trim(),
            found.display()
        );
    }
    newest
}

/// The training checkpoints of a work dir, oldest first (by iteration).
pub fn list(work_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(work_dir) else { return Vec::new() };
    let mut found: Vec<(usize, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors") && p.is_file())
        .filter_map(|p| read_meta(&p).map(|m| (m.iter, p)))
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}
