//! Port of mmcls's `CrossEntropyLoss` (`mmcls/models/losses/cross_entropy_loss.py`),
//! as MMSelfSup's contrastive heads configure it.
use burn::tensor::{activation::log_softmax, backend::Backend, Int, Tensor, TensorData};
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
    /// Soft labels (`soft_cross_entropy`): the targets are per-class
    /// scores. Targets that Mixup or CutMix made are scores whatever this
    /// says, as in mmcls (PyTorch's `cross_entropy` takes probabilities).
    pub use_soft: bool,
    /// `"mean"` only.
    pub reduction: String,
    /// Per-class weights: sample `i` weighs `class_weight[labels_i]`, and the mean is
    /// still over the samples (mmcls does not divide by the weights' sum).
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
        if self.reduction != "mean" {
            return Err(("reduction", format!("only \"mean\" is supported, got {:?}", self.reduction)));
        }
        if self.class_weight.as_ref().is_some_and(|w| w.iter().any(|v| !v.is_finite())) {
            return Err(("class_weight", "class weights must be finite".into()));
        }
        Ok(())
    }

    /// `loss_weight · mean_i(−log softmax(logits_i)[labels_i])`.
    ///
    /// # Shapes
    /// - `logits`: `[n, classes]`, `labels`: `[n]` -> `[1]`
    pub fn forward<B: Backend>(&self, logits: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
        match &self.class_weight {
            Some(w) => {
                let device = logits.device();
                let w = Tensor::<B, 1>::from_data(TensorData::new(w.iter().map(|v| *v as f32).collect::<Vec<_>>(), [w.len()]), &device);
                self.forward_weighted(logits, labels, w)
            }
            None => {
                let n = logits.dims()[0];
                let picked = log_softmax(logits, 1).gather(1, labels.reshape([n, 1]));
                picked.mean().neg().mul_scalar(self.loss_weight)
            }
        }
    }

    /// `loss_weight · mean_i(w[labels_i] · −log softmax(logits_i)[labels_i])`, mmcls's
    /// cross entropy with `class_weight = w` (a tensor here: DeepCluster and ODC set it from
    /// their cluster sizes as training goes).
    ///
    /// # Shapes
    /// - `logits`: `[n, classes]`, `labels`: `[n]`, `class_weight`: `[classes]` -> `[1]`
    pub fn forward_weighted<B: Backend>(
        &self,
        logits: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        class_weight: Tensor<B, 1>,
    ) -> Tensor<B, 1> {
        let n = logits.dims()[0];
        let picked = log_softmax(logits, 1).gather(1, labels.clone().reshape([n, 1])).reshape([n]);
        let weights = class_weight.select(0, labels);
        (picked * weights).mean().neg().mul_scalar(self.loss_weight)
    }

    /// mmcls's `soft_cross_entropy`: `loss_weight · mean_i Σ_c −w_c ·
    /// targets_ic · log softmax(logits_i)_c`, with `w` the class weights
    /// (1 without).
    ///
    /// # Shapes
    /// - `logits`, `targets`: `[n, classes]` -> `[1]`
    pub fn forward_soft<B: Backend>(&self, logits: Tensor<B, 2>, targets: Tensor<B, 2>) -> Tensor<B, 1> {
        let [n, c] = logits.dims();
        let mut per = log_softmax(logits, 1) * targets;
        if let Some(w) = &self.class_weight {
            let w = Tensor::<B, 2>::from_data(TensorData::new(w.iter().map(|v| *v as f32).collect::<Vec<_>>(), [1, c]), &per.device());
            per = per * w;
        }
        per.sum().div_scalar(n as f64).neg().mul_scalar(self.loss_weight)
    }

    /// The loss when every label is 0 (the positive sits in column 0).
    pub fn forward_first<B: Backend>(&self, logits: Tensor<B, 2>) -> Tensor<B, 1> {
        let [n, _] = logits.dims();
        let first = log_softmax(logits, 1).slice([0..n, 0..1]);
        first.mean().neg().mul_scalar(self.loss_weight)
    }
}
