//! Port of mmcls's `CrossEntropyLoss` (`mmcls/models/losses/cross_entropy_loss.py`),
//! as MMSelfSup's contrastive heads configure it.
use burn::tensor::{activation::log_softmax, backend::Backend, Int, Tensor};
use serde::{Deserialize, Serialize};

/// `dict(type='mmcls.CrossEntropyLoss', loss_weight=1.0)`: softmax cross
/// entropy with integer labels, mean over the batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrossEntropyLossConfig {
    /// Scale of the loss.
    pub loss_weight: f64,
    /// Sigmoid (binary) cross entropy; not supported.
    pub use_sigmoid: bool,
    /// Soft labels; not supported.
    pub use_soft: bool,
    /// `"mean"` only.
    pub reduction: String,
    /// Per-class weights; not supported.
    pub class_weight: Option<Vec<f64>>,
}

impl Default for CrossEntropyLossConfig {
    fn default() -> Self {
        Self { loss_weight: 1.0, use_sigmoid: false, use_soft: false, reduction: "mean".into(), class_weight: None }
    }
}

impl CrossEntropyLossConfig {
    /// Checks what is supported; `(key, message)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.use_sigmoid {
            return Err(("use_sigmoid", "sigmoid cross entropy is not supported".into()));
        }
        if self.use_soft {
            return Err(("use_soft", "soft-label cross entropy is not supported".into()));
        }
        if self.reduction != "mean" {
            return Err(("reduction", format!("only \"mean\" is supported, got {:?}", self.reduction)));
        }
        if self.class_weight.is_some() {
            return Err(("class_weight", "class weights are not supported".into()));
        }
        Ok(())
    }

    /// `loss_weight · mean_i(−log softmax(logits_i)[labels_i])`.
    ///
    /// # Shapes
    /// - `logits`: `[n, classes]`, `labels`: `[n]` -> `[1]`
    pub fn forward<B: Backend>(&self, logits: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
        let n = logits.dims()[0];
        let picked = log_softmax(logits, 1).gather(1, labels.reshape([n, 1]));
        picked.mean().neg().mul_scalar(self.loss_weight)
    }

    /// The loss when every label is 0 (the positive sits in column 0).
    pub fn forward_first<B: Backend>(&self, logits: Tensor<B, 2>) -> Tensor<B, 1> {
        let [n, _] = logits.dims();
        let first = log_softmax(logits, 1).slice([0..n, 0..1]);
        first.mean().neg().mul_scalar(self.loss_weight)
    }
}
