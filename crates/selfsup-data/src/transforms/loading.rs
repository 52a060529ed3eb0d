//! `LoadImageFromFile`. Counterpart of `mmcv.transforms.LoadImageFromFile` (mmcv 2.0,
//! `transforms/loading.py`).
//!
//! Here the [`Dataset`](crate::Dataset) decodes the image (see [`imread`](crate::imaging::io::imread)),
//! so this transform is a marker kept for config compatibility: MMSelfSup pipelines start
//! with it. Its options are validated; only the defaults are supported.

use serde::{Deserialize, Serialize};

use crate::DataError;

/// Configuration of [`LoadImageFromFile`]. Field names and defaults are mmcv's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadImageFromFileConfig {
    /// Convert to `float32`: accepted, no effect (batches are `f32` anyway). Default `false`.
    pub to_float32: bool,
    /// Must be `'color'` (the default): images are decoded to 3-channel colour.
    pub color_type: String,
    /// `'cv2'`, `'pillow'`, `'turbojpeg'`: accepted, all decode with the `image` crate.
    pub imdecode_backend: String,
    /// File back-end arguments (mmcv 2.0rc): accepted, only local files are read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_client_args: Option<serde_json::Value>,
    /// File back-end arguments (mmcv 2.0): accepted, only local files are read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_args: Option<serde_json::Value>,
    /// Return `None` instead of raising on unreadable files: accepted; the loader always
    /// skips unreadable files and counts them.
    pub ignore_empty: bool,
}

impl Default for LoadImageFromFileConfig {
    fn default() -> Self {
        Self {
            to_float32: false,
            color_type: "color".into(),
            imdecode_backend: "cv2".into(),
            file_client_args: None,
            backend_args: None,
            ignore_empty: false,
        }
    }
}

impl LoadImageFromFileConfig {
    /// Validates the config and builds the (no-op) transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for a `color_type` other than `'color'` or an unknown
    /// `imdecode_backend`.
    pub fn init(&self) -> Result<LoadImageFromFile, DataError> {
        if self.color_type != "color" {
            return Err(DataError::config("LoadImageFromFile", format!("only color_type='color' is supported, got '{}'", self.color_type)));
        }
        if !["cv2", "pillow", "turbojpeg", "tifffile"].contains(&self.imdecode_backend.as_str()) {
            return Err(DataError::config("LoadImageFromFile", format!("unknown imdecode_backend '{}'", self.imdecode_backend)));
        }
        Ok(LoadImageFromFile)
    }
}

/// Marker for "the image is loaded here"; the dataset already did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadImageFromFile;
