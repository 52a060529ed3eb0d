//! Port of `mmselfsup.models.heads.ContrastiveHead` (`contrastive_head.py`),
//! and the cross-entropy `loss` dict ([`CeLossConfig`]) that `MoCoV3Head`
//! also takes.
use burn::tensor::{backend::Backend, Tensor};
use selfsup_losses::CrossEntropyLossConfig;
use serde::{Deserialize, Serialize};

selfsup_config::registry! {
    /// A cross-entropy `loss` dict.
    #[derive(Debug, Clone, PartialEq)]
    pub enum CeLossConfig {
        /// mmcls's CrossEntropyLoss, as MMSelfSup's configs name it.
        "mmcls.CrossEntropyLoss" => Mmcls(CrossEntropyLossConfig),
        /// The same without the scope prefix.
        "CrossEntropyLoss" => Plain(CrossEntropyLossConfig),
    }
}

impl Default for CeLossConfig {
    fn default() -> Self {
        CeLossConfig::Mmcls(CrossEntropyLossConfig::default())
    }
}

impl CeLossConfig {
    /// The inner config.
    pub fn get(&self) -> &CrossEntropyLossConfig {
        match self {
            CeLossConfig::Mmcls(c) | CeLossConfig::Plain(c) => c,
        }
    }
}

/// `dict(type='ContrastiveHead', loss=..., temperature=0.1)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContrastiveHeadConfig {
    /// The cross entropy.
    #[serde(default)]
    pub loss: CeLossConfig,
    /// Softmax temperature.
    #[serde(default = "t01")]
    pub temperature: f64,
}

fn t01() -> f64 {
    0.1
}

impl ContrastiveHeadConfig {
    /// Builds the head.
    pub fn init(&self) -> ContrastiveHead {
        ContrastiveHead { loss: self.loss.get().clone(), temperature: self.temperature }
    }
}

/// InfoNCE: `CE(cat(pos, neg)/T, 0)`.
#[derive(Debug, Clone)]
pub struct ContrastiveHead {
    loss: CrossEntropyLossConfig,
    temperature: f64,
}

impl ContrastiveHead {
    /// # Shapes
    /// - `pos`: `[n, 1]`, `neg`: `[n, k]` -> `[1]`
    pub fn forward<B: Backend>(&self, pos: Tensor<B, 2>, neg: Tensor<B, 2>) -> Tensor<B, 1> {
        self.loss.forward_first(Tensor::cat(vec![pos, neg], 1).div_scalar(self.temperature))
    }
}
