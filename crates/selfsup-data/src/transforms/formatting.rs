//! `PackSelfSupInputs`. Counterpart of `mmselfsup.datasets.transforms.PackSelfSupInputs`
//! (mmselfsup 1.0.0, `datasets/transforms/formatting.py`).
//!
//! In MMSelfSup it turns the HWC image(s) into CHW tensors and builds a `SelfSupDataSample`.
//! Here the conversion to CHW `f32` happens in the loader's collate step, and the pipeline
//! always yields a [`Sample`](crate::Sample) with the label, index and name; this transform
//! marks the end of the pipeline and records which keys the algorithm asked for.

use serde::{Deserialize, Serialize};

use crate::DataError;

/// The `algorithm_keys` MMSelfSup knows.
pub const ALGORITHM_KEYS: [&str; 4] = ["sample_idx", "mask", "gt_label", "pred_label"];

/// Configuration of [`PackSelfSupInputs`]. Field names and defaults are MMSelfSup's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PackSelfSupInputsConfig {
    /// The key holding the image(s). Must be `'img'` (the default).
    pub key: String,
    /// Per-sample fields handed to the algorithm (`sample_idx`, `mask`, `gt_label`,
    /// `pred_label`). Default empty.
    pub algorithm_keys: Vec<String>,
    /// Pseudo-label fields (e.g. `rot_label`, `patch_label`). Default empty.
    pub pseudo_label_keys: Vec<String>,
    /// Meta-information fields. Default empty.
    pub meta_keys: Vec<String>,
}

impl Default for PackSelfSupInputsConfig {
    fn default() -> Self {
        Self {
            key: "img".into(),
            algorithm_keys: Vec::new(),
            pseudo_label_keys: Vec::new(),
            meta_keys: Vec::new(),
        }
    }
}

impl PackSelfSupInputsConfig {
    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for a `key` other than `'img'` or an unknown algorithm key.
    pub fn init(&self) -> Result<PackSelfSupInputs, DataError> {
        if self.key != "img" {
            return Err(DataError::config(
                "PackSelfSupInputs",
                format!("only key='img' is supported, got '{}'", self.key),
            ));
        }
        if let Some(k) = self
            .algorithm_keys
            .iter()
            .find(|k| !ALGORITHM_KEYS.contains(&k.as_str()))
        {
            return Err(DataError::config(
                "PackSelfSupInputs",
                format!("unknown algorithm key '{k}' (expected one of {ALGORITHM_KEYS:?})"),
            ));
        }
        Ok(PackSelfSupInputs { cfg: self.clone() })
    }
}

/// End-of-pipeline marker; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackSelfSupInputs {
    cfg: PackSelfSupInputsConfig,
}

impl PackSelfSupInputs {
    /// The `algorithm_keys` the config asked for.
    pub fn algorithm_keys(&self) -> &[String] {
        &self.cfg.algorithm_keys
    }

    /// The `pseudo_label_keys` the config asked for.
    pub fn pseudo_label_keys(&self) -> &[String] {
        &self.cfg.pseudo_label_keys
    }

    /// The `meta_keys` the config asked for.
    pub fn meta_keys(&self) -> &[String] {
        &self.cfg.meta_keys
    }
}
