//! MMCV's `norm_cfg` for the normalisation layers selfsup builds, and the
//! [`LayerNorm`] they build.
use burn::{
    module::{Initializer, Module, Param},
    tensor::{backend::Backend, Tensor},
};
use serde::{Deserialize, Serialize};

/// MMCV's `norm_cfg` dict: `dict(type='LN', eps=1e-6)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormCfg {
    /// The layer type. Transformers use `"LN"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Epsilon added to the variance.
    #[serde(default = "NormCfg::default_eps")]
    pub eps: f64,
    /// Whether the affine parameters train (MMCV's `requires_grad`).
    #[serde(default = "NormCfg::default_requires_grad")]
    pub requires_grad: bool,
}

impl NormCfg {
    fn default_eps() -> f64 {
        1e-5
    }
    fn default_requires_grad() -> bool {
        true
    }

    /// `dict(type='LN', eps=eps)`.
    pub fn layer_norm(eps: f64) -> Self {
        Self { kind: "LN".into(), eps, requires_grad: true }
    }

    /// Checks that this is a LayerNorm config: the only kind the transformer
    /// blocks take.
    pub fn validate_layer_norm(&self) -> Result<(), String> {
        match self.kind.as_str() {
            "LN" | "LayerNorm" => Ok(()),
            other => Err(format!("norm type `{other}` is not supported here; expected `LN`")),
        }
    }

    /// Builds a LayerNorm over `dim` features (weight 1, bias 0).
    pub fn build_layer_norm<B: Backend>(&self, dim: usize, device: &B::Device) -> LayerNorm<B> {
        LayerNorm::new(dim, self.eps, device)
    }
}

/// `torch.nn.LayerNorm` over the last dimension: burn's `LayerNorm` (the
/// same fields, so the same keys and records) whose forward is one fused
/// autodiff operation on burn-flex and burn-tch
/// ([`fused::layer_norm`](crate::fused::layer_norm)).
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    /// The scale (`weight` in PyTorch).
    pub gamma: Param<Tensor<B, 1>>,
    /// The shift (`bias` in PyTorch), absent with `bias=False`.
    pub beta: Option<Param<Tensor<B, 1>>>,
    epsilon: f64,
}

impl<B: Backend> LayerNorm<B> {
    /// A LayerNorm over `dim` features with weight 1 and bias 0.
    pub fn new(dim: usize, eps: f64, device: &B::Device) -> Self {
        Self { gamma: Initializer::Ones.init([dim], device), beta: Some(Initializer::Zeros.init([dim], device)), epsilon: eps }
    }

    /// The epsilon added to the variance.
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// Normalises the last dimension of `x`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        crate::fused::layer_norm(x, self.gamma.val(), self.beta.as_ref().map(Param::val), self.epsilon)
    }
}
