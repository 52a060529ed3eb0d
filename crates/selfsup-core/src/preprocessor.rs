//! Ports of `mmselfsup.models.utils.data_preprocessor`: channel order and
//! mean/std normalisation, run on the training device, and the variants
//! that reshape or normalise views differently:
//!
//! - `SelfSupDataPreprocessor`: every view normalised by `mean`/`std`;
//! - `TwoNormDataPreprocessor`: view 0 by `mean`/`std`, view 1 (the
//!   target image) by `second_mean`/`second_std`;
//! - `CAEDataPreprocessor`: view 0 by `mean`/`std`, view 1 mapped from
//!   [0, 255] to [0.1, 0.9] (`x / 255 · 0.8 + 0.1`);
//! - `RelativeLocDataPreprocessor`: 9 normalised views (the centre patch,
//!   then its 8 neighbours) become two `[8·N, C, H, W]` inputs, the
//!   neighbours sample-major and the centre repeated 8 times;
//! - `RotationPredDataPreprocessor`: the normalised views (4 rotations)
//!   become one `[4·N, C, H, W]` input, sample-major;
//! - mmcls's `ClsDataPreprocessor` (`to_rgb`, `mean`, `std`, `num_classes`,
//!   `to_onehot`, `batch_augments`): normalised as `SelfSupDataPreprocessor`;
//!   its batch augments (Mixup, CutMix) are applied by the classifier
//!   (`ImageClassifier`), which owns the draws.
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
    /// `SelfSupDataPreprocessor`, or one of the variants of the module docs.
    #[serde(rename = "type")]
    pub kind: DataPreprocessorKind,
    /// Per-channel mean, in the model's channel order.
    pub mean: Option<Vec<f64>>,
    /// Per-channel std, in the model's channel order.
    pub std: Option<Vec<f64>>,
    /// Swap BGR to RGB (MMSelfSup semantics; see the type's docs).
    /// mmpretrain's name, `to_rgb`, is accepted too.
    #[serde(alias = "to_rgb")]
    pub bgr_to_rgb: bool,
    /// Swap RGB to BGR (MMSelfSup semantics; see the type's docs).
    pub rgb_to_bgr: bool,
    /// Accepted for compatibility; copies are always synchronous here.
    pub non_blocking: bool,
    /// Pad value (unused: every batch is resized to one size by the pipeline).
    pub pad_value: f64,
    /// `TwoNormDataPreprocessor`: mean of the second view.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second_mean: Option<Vec<f64>>,
    /// `TwoNormDataPreprocessor`: std of the second view.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second_std: Option<Vec<f64>>,
    /// Accepted for compatibility (must be 1: batches have one size).
    pub pad_size_divisor: usize,
    /// `ClsDataPreprocessor`: classes of the one-hot scores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_classes: Option<usize>,
    /// `ClsDataPreprocessor`: one-hot scores (implied by batch augments).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub to_onehot: bool,
    /// `ClsDataPreprocessor`: `dict(augments=[...], probs=None)`, read by
    /// the classifier (`ImageClassifier`'s `train_cfg` sets it in mmcls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_augments: Option<serde_json::Value>,
}

/// The `data_preprocessor` types this port knows, by MMSelfSup's names
/// (with or without the `mmselfsup.` scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DataPreprocessorKind {
    /// Every view normalised by `mean`/`std`.
    #[default]
    #[serde(rename = "SelfSupDataPreprocessor", alias = "mmselfsup.SelfSupDataPreprocessor")]
    SelfSup,
    /// View 1 by `second_mean`/`second_std`.
    #[serde(rename = "TwoNormDataPreprocessor", alias = "mmselfsup.TwoNormDataPreprocessor")]
    TwoNorm,
    /// View 1 mapped to [0.1, 0.9].
    #[serde(rename = "CAEDataPreprocessor", alias = "mmselfsup.CAEDataPreprocessor")]
    Cae,
    /// Nine patches into neighbours and repeated centres.
    #[serde(rename = "RelativeLocDataPreprocessor", alias = "mmselfsup.RelativeLocDataPreprocessor")]
    RelativeLoc,
    /// The rotations stacked sample-major.
    #[serde(rename = "RotationPredDataPreprocessor", alias = "mmselfsup.RotationPredDataPreprocessor")]
    RotationPred,
    /// mmcls's classifier preprocessor: every view normalised.
    #[serde(rename = "ClsDataPreprocessor", alias = "mmcls.ClsDataPreprocessor")]
    Cls,
}

impl Default for DataPreprocessorConfig {
    fn default() -> Self {
        Self {
            kind: DataPreprocessorKind::SelfSup,
            mean: None,
            std: None,
            bgr_to_rgb: false,
            rgb_to_bgr: false,
            non_blocking: false,
            pad_value: 0.0,
            second_mean: None,
            second_std: None,
            pad_size_divisor: 1,
            num_classes: None,
            to_onehot: false,
            batch_augments: None,
        }
    }
}

impl DataPreprocessorConfig {
    /// Checks the fields; returns `(key, message)` for the first bad one.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let kind = self.kind;
        if self.pad_size_divisor != 1 {
            return Err(("pad_size_divisor", "only 1 is supported (the pipeline gives every image of a batch one size)".into()));
        }
        if kind == DataPreprocessorKind::TwoNorm {
            match (&self.second_mean, &self.second_std) {
                (Some(m), Some(s)) if [1, 3].contains(&m.len()) && m.len() == s.len() && !s.contains(&0.0) => {}
                (Some(_), Some(_)) => {
                    return Err((
                        "second_std",
                        "second_mean and second_std need 1 or 3 values each, the same number, and no zero std".into(),
                    ))
                }
                _ => return Err(("second_mean", "TwoNormDataPreprocessor needs second_mean and second_std".into())),
            }
            if self.mean.is_none() {
                return Err(("mean", "TwoNormDataPreprocessor needs mean and std".into()));
            }
        } else if self.second_mean.is_some() || self.second_std.is_some() {
            return Err(("second_mean", format!("only TwoNormDataPreprocessor reads second_mean/second_std, not {kind:?}")));
        }
        if kind != DataPreprocessorKind::Cls && (self.num_classes.is_some() || self.to_onehot || self.batch_augments.is_some()) {
            return Err(("num_classes", format!("only ClsDataPreprocessor reads num_classes/to_onehot/batch_augments, not {kind:?}")));
        }
        match (&self.mean, &self.std) {
            (Some(m), Some(s)) if m.len() != s.len() => Err(("std", format!("mean has {} channels but std has {}", m.len(), s.len()))),
            (Some(_), None) | (None, Some(_)) => Err(("mean", "mean and std must be given together".into())),
            (_, Some(s)) if s.contains(&0.0) => Err(("std", "std must not be zero".into())),
            _ => Ok(()),
        }
    }

    /// Whether the model sees RGB (true) or BGR (false), given RGB-decoded input.
    pub fn model_sees_rgb(&self) -> bool {
        self.bgr_to_rgb || self.rgb_to_bgr
    }

    /// Turns a raw RGB batch (values 0–255) into the model's input with
    /// `mean`/`std` (the first view's normalisation in every variant).
    ///
    /// # Shapes
    /// `[batch, channels, h, w] -> [batch, channels, h, w]`
    pub fn apply<B: Backend>(&self, raw_rgb: Tensor<B, 4>) -> Tensor<B, 4> {
        normalise(self.channels(raw_rgb), self.mean.as_deref(), self.std.as_deref())
    }

    /// The model's channel order.
    fn channels<B: Backend>(&self, raw_rgb: Tensor<B, 4>) -> Tensor<B, 4> {
        let c = raw_rgb.dims()[1];
        if !self.model_sees_rgb() && c == 3 {
            raw_rgb.flip([1])
        } else {
            raw_rgb
        }
    }

    /// Turns the raw RGB views of a batch into the model's inputs, as the
    /// configured variant does (see the module docs). RelativeLoc needs 9
    /// views and RotationPred at least one; with fewer (a test pipeline
    /// with one view), the views are only normalised.
    ///
    /// # Shapes
    /// each view `[batch, channels, h, w]`; see the module docs for the
    /// outputs.
    pub fn apply_views<B: Backend>(&self, raw_rgb: Vec<Tensor<B, 4>>) -> Vec<Tensor<B, 4>> {
        use DataPreprocessorKind as K;
        let kind = self.kind;
        let views: Vec<Tensor<B, 4>> = raw_rgb.into_iter().map(|v| self.channels(v)).collect();
        let (mean, std) = (self.mean.as_deref(), self.std.as_deref());
        match kind {
            K::TwoNorm | K::Cae if views.len() >= 2 => views
                .into_iter()
                .enumerate()
                .map(|(i, v)| match (i, kind) {
                    (0, _) => normalise(v, mean, std),
                    (1, K::Cae) if mean.is_some() => v.div_scalar(255.0).mul_scalar(0.8).add_scalar(0.1),
                    (1, K::TwoNorm) => normalise(v, self.second_mean.as_deref(), self.second_std.as_deref()),
                    _ => v,
                })
                .collect(),
            K::RelativeLoc if views.len() == 9 => {
                let views: Vec<Tensor<B, 4>> = views.into_iter().map(|v| normalise(v, mean, std)).collect();
                let [n, c, h, w] = views[0].dims();
                let neighbours = Tensor::stack::<5>(views[1..].to_vec(), 1).reshape([n * 8, c, h, w]);
                let centre = views[0].clone().unsqueeze_dim::<5>(1).repeat_dim(1, 8).reshape([n * 8, c, h, w]);
                vec![neighbours, centre]
            }
            K::RotationPred if !views.is_empty() => {
                let k = views.len();
                let [n, c, h, w] = views[0].dims();
                let views: Vec<Tensor<B, 4>> = views.into_iter().map(|v| normalise(v, mean, std)).collect();
                vec![Tensor::stack::<5>(views, 1).reshape([n * k, c, h, w])]
            }
            _ => views.into_iter().map(|v| normalise(v, mean, std)).collect(),
        }
    }
}

/// `(x − mean) / std` per channel; `x` unchanged without statistics.
fn normalise<B: Backend>(x: Tensor<B, 4>, mean: Option<&[f64]>, std: Option<&[f64]>) -> Tensor<B, 4> {
    let (Some(mean), Some(std)) = (mean, std) else { return x };
    let device = x.device();
    let stat = |v: &[f64]| {
        Tensor::<B, 4>::from_data(TensorData::new(v.iter().map(|v| *v as f32).collect::<Vec<_>>(), [1, v.len(), 1, 1]), &device)
    };
    (x - stat(mean)) / stat(std)
}
