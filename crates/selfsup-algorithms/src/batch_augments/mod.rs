//! mmcls's batch augmentations (`mmcls/models/utils/batch_augments/`,
//! 1.0.0rc6), one file per class: [`mixup`] (`Mixup`), [`cutmix`]
//! (`CutMix`), and here `RandomBatchAugment` (`wrapper.py`), which picks
//! one of them per batch. The classifier applies them in training to the
//! normalised batch and its one-hot scores, as mmcls's
//! `ClsDataPreprocessor` does.
pub mod cutmix;
pub mod mixup;

use burn::tensor::{backend::Backend, Tensor};
use selfsup_core::Draws;
use serde::{Deserialize, Serialize};

pub use cutmix::CutMixConfig;
pub use mixup::MixupConfig;

selfsup_config::registry! {
    /// One batch augmentation.
    #[derive(Debug, Clone, PartialEq)]
    pub enum BatchAugmentConfig {
        /// `Mixup`.
        "Mixup" => Mixup(MixupConfig),
        /// `CutMix`.
        "CutMix" => CutMix(CutMixConfig),
    }
}

/// One augmentation or a list, as mmcls accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A list.
    Many(Vec<BatchAugmentConfig>),
    /// A single dict.
    One(BatchAugmentConfig),
}

/// `train_cfg=dict(augments=[...], probs=None)` of mmcls's `ImageClassifier`
/// (`RandomBatchAugment`'s arguments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomBatchAugmentConfig {
    /// The augmentations.
    pub augments: OneOrMany,
    /// Each one's probability; the rest (`1 − Σ`) leaves the batch as it
    /// is. Without, one of them is picked uniformly for every batch.
    #[serde(default)]
    pub probs: Option<serde_json::Value>,
}

impl RandomBatchAugmentConfig {
    /// The augmentations in order.
    pub fn augments(&self) -> &[BatchAugmentConfig] {
        match &self.augments {
            OneOrMany::Many(v) => v,
            OneOrMany::One(a) => std::slice::from_ref(a),
        }
    }

    /// The probabilities (a number or a list), when given.
    pub fn probs(&self) -> Option<Vec<f64>> {
        match self.probs.as_ref()? {
            serde_json::Value::Array(a) => Some(a.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect()),
            v => Some(vec![v.as_f64().unwrap_or(f64::NAN)]),
        }
    }

    /// Checks the augmentations and probabilities; `(key, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let augments = self.augments();
        if augments.is_empty() {
            return Err(("augments".into(), "at least one augmentation".into()));
        }
        for (i, a) in augments.iter().enumerate() {
            match a {
                BatchAugmentConfig::Mixup(c) => c.validate(),
                BatchAugmentConfig::CutMix(c) => c.validate(),
            }
            .map_err(|(k, m)| (format!("augments.{i}.{k}"), m))?;
        }
        if let Some(p) = self.probs() {
            if p.len() != augments.len() || p.iter().any(|v| v.is_nan() || *v < 0.0) || p.iter().sum::<f64>() > 1.0 + 1e-9 {
                return Err(("probs".into(), format!("one probability per augmentation, summing to at most 1, got {p:?}")));
            }
        }
        Ok(())
    }

    /// Picks an augmentation (the draw `batch_augment`: its index, uniform
    /// without `probs`; with `probs`, the draw `batch_augment_u` in
    /// `[0, 1)` against their running sum) and applies it.
    pub fn apply<B: Backend>(&self, x: Tensor<B, 4>, scores: Tensor<B, 2>, draws: &mut Draws) -> (Tensor<B, 4>, Tensor<B, 2>) {
        let augments = self.augments();
        let pick = match self.probs() {
            None => Some(draws.integers("batch_augment", 1, augments.len())[0] as usize),
            Some(p) => {
                let u = f64::from(draws.uniform("batch_augment_u", 1)[0]);
                let mut acc = 0.0;
                p.iter().position(|v| {
                    acc += v;
                    u < acc
                })
            }
        };
        match pick.and_then(|i| augments.get(i)) {
            Some(BatchAugmentConfig::Mixup(c)) => c.mix(x, scores, draws),
            Some(BatchAugmentConfig::CutMix(c)) => c.mix(x, scores, draws),
            None => (x, scores),
        }
    }
}
