//! Port of `mmselfsup.models.utils.SelfSupDataPreprocessor`: channel order
//! and mean/std normalisation, run on the training device.
use burn::tensor::{backend::Backend, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// MMSelfSup's `data_preprocessor` dict. Defaults are MMSelfSup's.
///
/// Channel order: MMSelfSup decodes images as BGR (mmcv) and its configs set
/// `bgr_to_rgb=True` so that the model sees RGB, with `mean` and `std` in
/// RGB order. selfsup decodes RGB, so `bgr_to_rgb = true` keeps RGB and
/// `bgr_to_rgb = false` (with `rgb_to_bgr = false`) hands the model BGR, as
/// MMSelfSup would. `rgb_to_bgr` is treated the same way as `bgr_to_rgb`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataPreprocessorConfig {
    /// `"SelfSupDataPreprocessor"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Per-channel mean, in the model's channel order.
    pub mean: Option<Vec<f64>>,
    /// Per-channel std, in the model's channel order.
    pub std: Option<Vec<f64>>,
    /// Swap BGR to RGB (MMSelfSup semantics; see the type's docs).
    pub bgr_to_rgb: bool,
    /// Swap RGB to BGR (MMSelfSup semantics; see the type's docs).
    pub rgb_to_bgr: bool,
    /// Accepted for compatibility; copies are always synchronous here.
    pub non_blocking: bool,
    /// Pad value (unused: every batch is resized to one size by the pipeline).
    pub pad_value: f64,
}

impl Default for DataPreprocessorConfig {
    fn default() -> Self {
        Self {
            kind: "SelfSupDataPreprocessor".into(),
            mean: None,
            std: None,
            bgr_to_rgb: false,
            rgb_to_bgr: false,
            non_blocking: false,
            pad_value: 0.0,
        }
    }
}

impl DataPreprocessorConfig {
    /// Checks the fields; returns `(key, message)` for the first bad one.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.kind != "SelfSupDataPreprocessor" {
            return Err(("type", format!("unknown data preprocessor `{}`; known: SelfSupDataPreprocessor", self.kind)));
        }
        match (&self.mean, &self.std) {
            (Some(m), Some(s)) if m.len() != s.len() => {
                Err(("std", format!("mean has {} channels but std has {}", m.len(), s.len())))
            }
            (Some(_), None) | (None, Some(_)) => Err(("mean", "mean and std must be given together".into())),
            (_, Some(s)) if s.iter().any(|v| *v == 0.0) => Err(("std", "std must not be zero".into())),
            _ => Ok(()),
        }
    }

    /// Whether the model sees RGB (true) or BGR (false), given RGB-decoded input.
    pub fn model_sees_rgb(&self) -> bool {
        self.bgr_to_rgb || self.rgb_to_bgr
    }

    /// Turns a raw RGB batch (values 0–255) into the model's input.
    ///
    /// # Shapes
    /// `[batch, channels, h, w] -> [batch, channels, h, w]`
    pub fn apply<B: Backend>(&self, raw_rgb: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, c, _, _] = raw_rgb.dims();
        let device = raw_rgb.device();
        let x = if !self.model_sees_rgb() && c == 3 { raw_rgb.flip([1]) } else { raw_rgb };
        match (&self.mean, &self.std) {
            (Some(mean), Some(std)) => {
                let n = mean.len();
                let mean = Tensor::<B, 4>::from_data(
                    TensorData::new(mean.iter().map(|v| *v as f32).collect::<Vec<_>>(), [1, n, 1, 1]),
                    &device,
                );
                let std = Tensor::<B, 4>::from_data(
                    TensorData::new(std.iter().map(|v| *v as f32).collect::<Vec<_>>(), [1, n, 1, 1]),
                    &device,
                );
                (x - mean) / std
            }
            _ => x,
        }
    }
}
