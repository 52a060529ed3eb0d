//! Port of mmcls's `LinearClsHead` (`mmcls/models/heads/linear_head.py`,
//! 1.0.0rc6, with `ClsHead`'s loss): one linear classifier on the last
//! feature, the head of MMSelfSup's fine-tuning benchmarks. Key `fc`.
//!
//! The loss takes integer labels or, after Mixup or CutMix, score rows
//! (`gt_label.score`): mmcls's `CrossEntropyLoss` (soft targets are the
//! soft cross entropy) or `LabelSmoothLoss`. The mean is over the batch
//! (`avg_factor = batch`).
use burn::{
    nn::Linear,
    tensor::{backend::Backend, Int, Tensor},
};
use selfsup_layers::{
    functional::linear,
    init::{normal_init_std, trunc_normal_init, Dist, InitRng},
};
use selfsup_losses::{CrossEntropyLossConfig, LabelSmoothLossConfig};
use serde::{Deserialize, Serialize};

selfsup_config::registry! {
    /// The loss of a [`LinearClsHead`].
    #[derive(Debug, Clone, PartialEq)]
    pub enum ClsLossConfig {
        /// mmcls's `CrossEntropyLoss`.
        "CrossEntropyLoss" => CrossEntropy(CrossEntropyLossConfig),
        /// mmcls's `LabelSmoothLoss`.
        "LabelSmoothLoss" => LabelSmooth(LabelSmoothLossConfig),
    }
}

impl Default for ClsLossConfig {
    fn default() -> Self {
        Self::CrossEntropy(CrossEntropyLossConfig::default())
    }
}

/// A classifier's targets: class indices, or a score row per sample
/// (one-hot rows mixed by Mixup or CutMix).
#[derive(Debug, Clone)]
pub enum ClsTargets<B: Backend> {
    /// `[n]` class indices.
    Labels(Tensor<B, 1, Int>),
    /// `[n, classes]` scores.
    Scores(Tensor<B, 2>),
}

/// `dict(type='LinearClsHead', num_classes, in_channels,
/// loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, ), cal_acc=False,
/// init_cfg=dict(type='Normal', layer='Linear', std=0.01))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearClsHeadConfig {
    /// Classes.
    pub num_classes: usize,
    /// Input features.
    pub in_channels: usize,
    /// The loss.
    #[serde(default)]
    pub loss: ClsLossConfig,
    /// The accuracies evaluation reports (top-`k` for each).
    #[serde(default = "top1")]
    pub topk: serde_json::Value,
    /// Training accuracy in the loss dict; accepted, not computed (with
    /// Mixup and CutMix it is meaningless, as mmcls says).
    #[serde(default)]
    pub cal_acc: bool,
    /// MMEngine `init_cfg`: a `Normal` (default std 0.01) or `TruncNormal`
    /// entry for the Linear; the bias from the entry (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_cfg: Option<serde_json::Value>,
}

fn top1() -> serde_json::Value {
    serde_json::json!([1])
}

impl LinearClsHeadConfig {
    /// The `topk` values (an int or a list).
    pub fn topk(&self) -> Vec<usize> {
        match &self.topk {
            serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_u64()).map(|v| v as usize).collect(),
            v => v.as_u64().map(|k| vec![k as usize]).unwrap_or_default(),
        }
    }

    /// Checks what is supported; `(key, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.in_channels == 0 || self.num_classes == 0 {
            return Err(("num_classes".into(), "in_channels and num_classes must be at least 1".into()));
        }
        let topk = self.topk();
        if topk.is_empty() || topk.contains(&0) {
            return Err(("topk".into(), format!("positive integers, got {}", self.topk)));
        }
        match &self.loss {
            ClsLossConfig::CrossEntropy(c) => {
                if c.class_weight.as_ref().is_some_and(|w| w.len() != self.num_classes) {
                    return Err(("loss.class_weight".into(), format!("{} classes expected", self.num_classes)));
                }
                c.validate()
            }
            ClsLossConfig::LabelSmooth(c) => {
                if c.num_classes.is_some_and(|n| n != self.num_classes) {
                    return Err(("loss.num_classes".into(), format!("does not match the head's {}", self.num_classes)));
                }
                c.validate()
            }
        }
        .map_err(|(k, m)| (format!("loss.{k}"), m))
    }

    /// Builds the head: `fc` from `N(0, 0.01)` or the `init_cfg` entry.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> LinearClsHead<B> {
        let (weight, bias) = match trunc_normal_init(self.init_cfg.as_ref()) {
            Some((std, bias)) => (Dist::TruncNormal(0.0, std), bias),
            None => (Dist::Normal(0.0, normal_init_std(self.init_cfg.as_ref()).unwrap_or(0.01)), 0.0),
        };
        LinearClsHead {
            fc: rng.linear(self.in_channels, self.num_classes, weight, Some(Dist::Constant(bias)), device),
            loss: self.loss.clone(),
        }
    }
}

/// `fc(x)` and its loss. Key `fc`.
#[derive(burn::module::Module, Debug)]
pub struct LinearClsHead<B: Backend> {
    /// The classifier.
    pub fc: Linear<B>,
    #[module(skip)]
    loss: ClsLossConfig,
}

impl<B: Backend> LinearClsHead<B> {
    /// The class scores.
    ///
    /// # Shapes
    /// `[n, in_channels]` -> `[n, num_classes]`
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        linear(&self.fc, x)
    }

    /// The loss of the class scores of `x` against `targets`.
    pub fn loss(&self, x: Tensor<B, 2>, targets: ClsTargets<B>) -> Tensor<B, 1> {
        let logits = self.forward(x);
        let classes = logits.dims()[1];
        let scores = |t: ClsTargets<B>| match t {
            ClsTargets::Scores(s) => s,
            ClsTargets::Labels(l) => l.one_hot::<2>(classes).float(),
        };
        match (&self.loss, targets) {
            (ClsLossConfig::CrossEntropy(c), ClsTargets::Labels(l)) if !c.use_soft => c.forward(logits, l),
            (ClsLossConfig::CrossEntropy(c), t) => c.forward_soft(logits, scores(t)),
            (ClsLossConfig::LabelSmooth(c), t) => c.forward(logits, scores(t)),
        }
    }
}
