//! `PackSelfSupInputs`. Counterpart of `mmselfsup.datasets.transforms.PackSelfSupInputs`
//! (mmselfsup 1.0.0, `datasets/transforms/formatting.py`).
//!
//! In MMSelfSup it turns the HWC image(s) into CHW tensors and builds a `SelfSupDataSample`.
//! Here the conversion to CHW `f32` happens in the loader's collate step, and the pipeline
//! always yields a [`Sample`](crate::Sample) with the label, index and name; this transform
//! marks the end of the pipeline and records which keys the algorithm asked for.
//!
//! The non-image keys it packs are [`PackedArray`]s:
//! - `algorithm_keys = ["mask"]`: the mask of a mask generator (`BEiTMaskGenerator`,
//!   `SimMIMMaskGenerator`), MMSelfSup's `data_sample.mask.value`, lands in
//!   [`Sample::mask`](crate::Sample::mask) and, stacked, in
//!   [`Batch::mask`](crate::Batch::mask);
//! - `pseudo_label_keys` (`rot_label`, `patch_label`, `patch_box`, `unpatched_img`),
//!   MMSelfSup's `data_sample.pseudo_label.<key>`, land in
//!   [`Sample::pseudo_label`](crate::Sample::pseudo_label) and
//!   [`Batch::pseudo_label`](crate::Batch::pseudo_label).
//!
//! A pipeline whose `PackSelfSupInputs` asks for a key that none of its transforms produces
//! is rejected when it is built (MMSelfSup would raise a `KeyError` on the first sample).

use serde::{Deserialize, Serialize};

use crate::imaging::Image;
use crate::DataError;

/// The values of a [`PackedArray`]: 8-bit (images) or 64-bit integers (masks, labels, boxes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArrayData {
    /// Bytes, e.g. `unpatched_img`.
    U8(Vec<u8>),
    /// Integers, e.g. a mask (0/1), `rot_label`, `patch_box`.
    I64(Vec<i64>),
}

impl ArrayData {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            ArrayData::U8(v) => v.len(),
            ArrayData::I64(v) => v.len(),
        }
    }

    /// `true` when there is no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A row-major integer array packed with a sample: a mask or a pseudo-label (what
/// MMSelfSup's `to_tensor` makes of the NumPy arrays its transforms add to `results`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedArray {
    /// The shape, as in the reference (`mask`: `[h, w]`, `rot_label`: `[4]`,
    /// `patch_box`: `[1, 9, 4]`, ...).
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: ArrayData,
}

impl PackedArray {
    /// A 64-bit integer array. Returns `None` when `data` does not have the shape's size.
    pub fn from_i64(shape: Vec<usize>, data: Vec<i64>) -> Option<Self> {
        (shape.iter().product::<usize>() == data.len()).then_some(Self { shape, data: ArrayData::I64(data) })
    }

    /// An image as a `[1, h, w, c]` byte array (MMSelfSup's `np.expand_dims(img, 0)`, HWC).
    pub fn from_image(img: &Image) -> Self {
        Self { shape: vec![1, img.height(), img.width(), img.channels()], data: ArrayData::U8(img.data().to_vec()) }
    }

    /// The values as `i64`, whatever their storage.
    pub fn to_i64(&self) -> Vec<i64> {
        match &self.data {
            ArrayData::U8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            ArrayData::I64(v) => v.clone(),
        }
    }

    /// Stacks arrays of one shape along a new first axis (MMEngine's `default_collate`).
    /// Returns `None` when `arrays` is empty or the arrays differ in shape or storage.
    pub fn stack(arrays: &[&PackedArray]) -> Option<PackedArray> {
        let first = arrays.first()?;
        let mut shape = Vec::with_capacity(first.shape.len() + 1);
        shape.push(arrays.len());
        shape.extend_from_slice(&first.shape);
        let data = match &first.data {
            ArrayData::U8(_) => {
                let mut out = Vec::with_capacity(first.data.len() * arrays.len());
                for a in arrays {
                    match &a.data {
                        ArrayData::U8(v) if a.shape == first.shape => out.extend_from_slice(v),
                        _ => return None,
                    }
                }
                ArrayData::U8(out)
            }
            ArrayData::I64(_) => {
                let mut out = Vec::with_capacity(first.data.len() * arrays.len());
                for a in arrays {
                    match &a.data {
                        ArrayData::I64(v) if a.shape == first.shape => out.extend_from_slice(v),
                        _ => return None,
                    }
                }
                ArrayData::I64(out)
            }
        };
        Some(PackedArray { shape, data })
    }
}

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
    /// mmpretrain's `PackInputs`: a mask is packed whenever a transform
    /// made one, without `algorithm_keys` naming it.
    #[serde(skip)]
    pub mask_if_present: bool,
}

impl Default for PackSelfSupInputsConfig {
    fn default() -> Self {
        Self { key: "img".into(), algorithm_keys: Vec::new(), pseudo_label_keys: Vec::new(), meta_keys: Vec::new(), mask_if_present: false }
    }
}

impl PackSelfSupInputsConfig {
    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for a `key` other than `'img'` or an unknown algorithm key.
    pub fn init(&self) -> Result<PackSelfSupInputs, DataError> {
        if self.key != "img" {
            return Err(DataError::config("PackSelfSupInputs", format!("only key='img' is supported, got '{}'", self.key)));
        }
        if let Some(k) = self.algorithm_keys.iter().find(|k| !ALGORITHM_KEYS.contains(&k.as_str())) {
            return Err(DataError::config(
                "PackSelfSupInputs",
                format!("unknown algorithm key '{k}' (expected one of {ALGORITHM_KEYS:?})"),
            ));
        }
        Ok(PackSelfSupInputs { cfg: self.clone() })
    }
}

/// mmpretrain's `PackInputs` (`mmpretrain/datasets/transforms/formatting.py`,
/// the successor of `PackSelfSupInputs` that mmpretrain's configs end with):
/// `input_key`, `algorithm_keys`, `meta_keys`. It builds a
/// [`PackSelfSupInputs`] that also packs a mask whenever a transform made
/// one, as mmpretrain's does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PackInputsConfig {
    /// The key holding the image(s). Must be `'img'` (the default).
    pub input_key: String,
    /// Per-sample fields handed to the algorithm.
    pub algorithm_keys: Vec<String>,
    /// Meta-information fields.
    pub meta_keys: Vec<String>,
}

impl Default for PackInputsConfig {
    fn default() -> Self {
        let meta = ["sample_idx", "img_path", "ori_shape", "img_shape", "scale_factor", "flip", "flip_direction"];
        Self { input_key: "img".into(), algorithm_keys: Vec::new(), meta_keys: meta.map(String::from).to_vec() }
    }
}

impl PackInputsConfig {
    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// As [`PackSelfSupInputsConfig::init`].
    pub fn init(&self) -> Result<PackSelfSupInputs, DataError> {
        PackSelfSupInputsConfig {
            key: self.input_key.clone(),
            algorithm_keys: self.algorithm_keys.clone(),
            pseudo_label_keys: Vec::new(),
            meta_keys: self.meta_keys.clone(),
            mask_if_present: true,
        }
        .init()
    }
}

/// mmcls's `PackClsInputs(meta_keys=(...))` (1.0.0rc6), the classification
/// pipelines' tail: the image and its `gt_label` (every sample carries its
/// label here), a [`PackSelfSupInputs`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PackClsInputsConfig {
    /// Meta-information fields.
    pub meta_keys: Vec<String>,
}

impl Default for PackClsInputsConfig {
    fn default() -> Self {
        let meta = ["sample_idx", "img_path", "ori_shape", "img_shape", "scale_factor", "flip", "flip_direction"];
        Self { meta_keys: meta.map(String::from).to_vec() }
    }
}

impl PackClsInputsConfig {
    /// Builds the transform.
    ///
    /// # Errors
    /// As [`PackSelfSupInputsConfig::init`].
    pub fn init(&self) -> Result<PackSelfSupInputs, DataError> {
        PackSelfSupInputsConfig { meta_keys: self.meta_keys.clone(), ..Default::default() }.init()
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

    /// Whether a mask made by the pipeline is packed: `algorithm_keys`
    /// names it (MMSelfSup), or this is mmpretrain's `PackInputs`, which
    /// packs `mask` whenever it is there.
    pub fn packs_mask(&self) -> bool {
        self.cfg.mask_if_present || self.cfg.algorithm_keys.iter().any(|k| k == "mask")
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
