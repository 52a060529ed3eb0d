//! MMCV's `norm_cfg` for the normalisation layers selfsup builds.
use burn::{
    nn::{LayerNorm, LayerNormConfig},
    tensor::backend::Backend,
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
        LayerNormConfig::new(dim).with_epsilon(self.eps).init(device)
    }
}
