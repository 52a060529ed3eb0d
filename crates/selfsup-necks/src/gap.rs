//! Port of mmcls's `GlobalAveragePooling` (`mmcls/models/necks/gap.py`):
//! the mean over the spatial positions, flattened to one feature per
//! sample, the ResNet classifier's neck. It has no weights.
use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

/// `dict(type='GlobalAveragePooling', dim=2)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalAveragePoolingConfig {
    /// Pooled dimensions: 2 (`[n, c, h, w]`), the only one supported.
    #[serde(default = "two")]
    pub dim: usize,
}

fn two() -> usize {
    2
}

impl GlobalAveragePoolingConfig {
    /// Checks the dimension.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.dim != 2 {
            return Err(("dim".into(), format!("only 2 (feature maps) is supported, got {}", self.dim)));
        }
        Ok(())
    }

    /// The neck.
    pub fn init(&self) -> GlobalAveragePooling {
        GlobalAveragePooling
    }
}

/// `AdaptiveAvgPool2d((1, 1))`, then `view(n, -1)`.
#[derive(Debug, Clone, Copy)]
pub struct GlobalAveragePooling;

impl GlobalAveragePooling {
    /// `[n, c, h, w] -> [n, c]`.
    pub fn forward<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let [n, c, h, w] = x.dims();
        x.reshape([n, c, h * w]).mean_dim(2).reshape([n, c])
    }
}
