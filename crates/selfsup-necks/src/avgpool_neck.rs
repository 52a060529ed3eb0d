//! Port of `mmselfsup.models.necks.AvgPool2dNeck` (`avgpool_neck.py`):
//! global average pooling, DeepCluster's neck. It has no weights.
use burn::tensor::{backend::Backend, module::adaptive_avg_pool2d, Tensor};
use serde::{Deserialize, Serialize};

/// `dict(type='AvgPool2dNeck', output_size=1)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvgPool2dNeckConfig {
    /// Output side of the adaptive pooling.
    #[serde(default = "one")]
    pub output_size: usize,
}

fn one() -> usize {
    1
}

impl AvgPool2dNeckConfig {
    /// Checks the size.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.output_size == 0 {
            return Err(("output_size".into(), "must be at least 1".into()));
        }
        Ok(())
    }

    /// The neck.
    pub fn init(&self) -> AvgPool2dNeck {
        AvgPool2dNeck { output_size: self.output_size }
    }
}

/// `adaptive_avg_pool2d(x, output_size)`.
#[derive(Debug, Clone, Copy)]
pub struct AvgPool2dNeck {
    output_size: usize,
}

impl AvgPool2dNeck {
    /// `[n, c, h, w] -> [n, c, s, s]`.
    pub fn forward<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        adaptive_avg_pool2d(x, [self.output_size, self.output_size])
    }
}
