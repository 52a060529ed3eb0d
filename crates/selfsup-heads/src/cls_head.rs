//! Port of `mmselfsup.models.heads.ClsHead` (`cls_head.py`): one linear
//! classifier and its cross entropy, the head of the pretext tasks
//! (RotationPred, RelativeLoc) and of the clustering methods (DeepCluster,
//! ODC), which set the loss's class weights as they go.
use burn::{
    module::{Module, Param},
    nn::Linear,
    tensor::{backend::Backend, module::adaptive_avg_pool2d, Int, Tensor, TensorData},
};
use selfsup_layers::{
    functional::linear,
    init::{normal_init_std, Dist, InitRng},
};
use selfsup_losses::CrossEntropyLossConfig;
use serde::{Deserialize, Serialize};

use crate::CeLossConfig;

/// `dict(type='ClsHead', loss, with_avg_pool=False, in_channels=2048, num_classes=1000,
/// vit_backbone=False, init_cfg=[Normal(std=0.01, layer='Linear'), Constant(1, norms)])`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClsHeadConfig {
    /// The cross entropy (`mmcls.CrossEntropyLoss`).
    #[serde(default)]
    pub loss: CeLossConfig,
    /// Global average pooling of a `[n, c, h, w]` input first.
    #[serde(default)]
    pub with_avg_pool: bool,
    /// Input features.
    #[serde(default = "c2048")]
    pub in_channels: usize,
    /// Classes.
    #[serde(default = "c1000")]
    pub num_classes: usize,
    /// Takes a ViT's output; not supported (no MMSelfSup config sets it).
    #[serde(default)]
    pub vit_backbone: bool,
    /// MMEngine `init_cfg`: the `Normal` entry's `std` for the Linear (default 0.01), bias 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_cfg: Option<serde_json::Value>,
}

fn c2048() -> usize {
    2048
}
fn c1000() -> usize {
    1000
}

impl ClsHeadConfig {
    /// Checks what is supported; `(key, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.vit_backbone {
            return Err(("vit_backbone".into(), "ClsHead on a ViT is not supported".into()));
        }
        if self.in_channels == 0 || self.num_classes == 0 {
            return Err(("num_classes".into(), "in_channels and num_classes must be at least 1".into()));
        }
        if let Some(w) = &self.loss.get().class_weight {
            if w.len() != self.num_classes {
                return Err(("loss.class_weight".into(), format!("{} weights for {} classes", w.len(), self.num_classes)));
            }
        }
        self.loss.get().validate().map_err(|(k, m)| (format!("loss.{k}"), m))
    }

    /// Builds the head: `fc_cls` from `N(0, std)` (0.01 unless `init_cfg` says), bias 0.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> ClsHead<B> {
        let std = normal_init_std(self.init_cfg.as_ref()).unwrap_or(0.01);
        ClsHead {
            fc_cls: rng.linear(self.in_channels, self.num_classes, Dist::Normal(0.0, std), Some(Dist::Constant(0.0)), device),
            with_avg_pool: self.with_avg_pool,
            loss: self.loss.get().clone(),
            init_std: std,
        }
    }
}

/// `fc_cls(flatten(avgpool?(x)))` and its cross entropy. Key `fc_cls`.
#[derive(Module, Debug)]
pub struct ClsHead<B: Backend> {
    /// The classifier.
    pub fc_cls: Linear<B>,
    with_avg_pool: bool,
    #[module(skip)]
    loss: CrossEntropyLossConfig,
    init_std: f64,
}

impl<B: Backend> ClsHead<B> {
    /// The class scores (`ClsHead.logits`).
    ///
    /// # Shapes
    /// `[n, c, h, w]` (`h = w = 1` without pooling) -> `[n, classes]`
    pub fn logits(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = if self.with_avg_pool { adaptive_avg_pool2d(x, [1, 1]) } else { x };
        linear(&self.fc_cls, x.flatten::<2>(1, 3))
    }

    /// The cross entropy of the class scores of `x` against `labels`, with the configured
    /// class weights.
    pub fn forward(&self, x: Tensor<B, 4>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
        self.loss.forward(self.logits(x), labels)
    }

    /// `head.init_weights()` again (DeepCluster after every clustering): the
    /// classifier from `N(0, std)` of its `init_cfg` and a zero bias, drawn
    /// from `rng`. The parameters keep their identity, so the optimiser
    /// keeps their state, as PyTorch's in-place initialisation does.
    pub fn reinit(self, rng: &mut InitRng) -> Self {
        let device = self.fc_cls.weight.device();
        let [d_in, d_out] = self.fc_cls.weight.dims();
        // PyTorch's `[out, in]` weight, drawn row by row, then laid out as burn's `[in, out]`.
        let w =
            Tensor::<B, 2>::from_data(TensorData::new(rng.values(d_in * d_out, Dist::Normal(0.0, self.init_std)), [d_out, d_in]), &device)
                .transpose();
        self.with_classifier(w, Tensor::zeros([d_out], &device))
    }

    /// Replaces the classifier's weight (`[in, out]`) and bias, keeping the parameters'
    /// identity.
    pub fn with_classifier(mut self, weight: Tensor<B, 2>, bias: Tensor<B, 1>) -> Self {
        fn replace<B: Backend, const D: usize>(p: Param<Tensor<B, D>>, value: Tensor<B, D>) -> Param<Tensor<B, D>> {
            let (id, old, mapper) = p.consume();
            let value = if old.is_require_grad() { value.detach().require_grad() } else { value.detach() };
            Param::from_mapped_value(id, value, mapper)
        }
        self.fc_cls.weight = replace(self.fc_cls.weight, weight);
        self.fc_cls.bias = self.fc_cls.bias.map(|b| replace(b, bias));
        self
    }

    /// The cross entropy with the class weights given here, which replace the configured
    /// ones (DeepCluster's and ODC's `loss_weight` buffer).
    pub fn forward_weighted(&self, x: Tensor<B, 4>, labels: Tensor<B, 1, Int>, class_weight: Tensor<B, 1>) -> Tensor<B, 1> {
        self.loss.forward_weighted(self.logits(x), labels, class_weight)
    }
}
