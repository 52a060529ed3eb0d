//! Port of mmcls's `LabelSmoothLoss` (`mmcls/models/losses/label_smooth_loss.py`,
//! 1.0.0rc6): cross entropy against smoothed targets, the loss of
//! MMSelfSup's ViT fine-tuning benchmarks.
//!
//! Integer labels become one-hot rows; score rows (Mixup's and CutMix's)
//! stay as they are. Then, in mode `original`, `t·(1 − ε) + ε/classes`;
//! in mode `classy_vision` the same with `ε/(1 + ε)`. The loss is the soft
//! cross entropy `−Σ_c t_c log softmax(x)_c`, averaged over the batch and
//! scaled by `loss_weight`.
use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

use crate::CrossEntropyLossConfig;

/// `dict(type='LabelSmoothLoss', label_smooth_val, num_classes=None,
/// mode='original', reduction='mean', loss_weight=1.0)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSmoothLossConfig {
    /// `ε`, in `[0, 1)`.
    pub label_smooth_val: f64,
    /// Classes; when given it must match the logits'.
    #[serde(default)]
    pub num_classes: Option<usize>,
    /// Sigmoid (multi-label) targets; not supported.
    #[serde(default)]
    pub use_sigmoid: Option<bool>,
    /// `original` or `classy_vision` (`multi_label` is not supported).
    #[serde(default = "original")]
    pub mode: String,
    /// `mean` only.
    #[serde(default = "mean")]
    pub reduction: String,
    /// Scale of the loss.
    #[serde(default = "one")]
    pub loss_weight: f64,
}

fn original() -> String {
    "original".into()
}
fn mean() -> String {
    "mean".into()
}
fn one() -> f64 {
    1.0
}

impl LabelSmoothLossConfig {
    /// Checks what is supported; `(key, message)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(0.0..1.0).contains(&self.label_smooth_val) {
            return Err(("label_smooth_val", format!("must be in [0, 1), got {}", self.label_smooth_val)));
        }
        if !matches!(self.mode.as_str(), "original" | "classy_vision") {
            return Err(("mode", format!("\"original\" or \"classy_vision\" (multi_label is not supported), got {:?}", self.mode)));
        }
        if self.use_sigmoid == Some(true) {
            return Err(("use_sigmoid", "sigmoid (multi-label) targets are not supported".into()));
        }
        if self.reduction != "mean" {
            return Err(("reduction", format!("only \"mean\" is supported, got {:?}", self.reduction)));
        }
        if self.num_classes == Some(0) {
            return Err(("num_classes", "must be positive".into()));
        }
        Ok(())
    }

    /// The smoothing `ε` the mode applies.
    pub fn eps(&self) -> f64 {
        if self.mode == "classy_vision" {
            self.label_smooth_val / (1.0 + self.label_smooth_val)
        } else {
            self.label_smooth_val
        }
    }

    /// The loss of `logits` against one-hot or score `targets`.
    ///
    /// # Shapes
    /// - `logits`, `targets`: `[n, classes]` -> `[1]`
    pub fn forward<B: Backend>(&self, logits: Tensor<B, 2>, targets: Tensor<B, 2>) -> Tensor<B, 1> {
        let classes = logits.dims()[1];
        let eps = self.eps();
        let smoothed = targets.mul_scalar(1.0 - eps).add_scalar(eps / classes as f64);
        let ce = CrossEntropyLossConfig { use_soft: true, ..Default::default() };
        ce.forward_soft(logits, smoothed).mul_scalar(self.loss_weight)
    }
}
