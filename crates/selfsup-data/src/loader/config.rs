//! MMEngine's dataloader config (`train_dataloader = dict(...)`), with MMEngine's names.

use serde::{Deserialize, Serialize};

use super::sampler::SamplerKind;
use super::DataLoaderOptions;
use crate::datasets::DatasetConfig;
use crate::DataError;

/// `sampler = dict(type='DefaultSampler', shuffle=True)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DefaultSamplerConfig {
    /// Shuffle every epoch. Default `true`.
    pub shuffle: bool,
    /// Seed of the shuffle; `None` uses the loader's (runner's) seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Pad to a multiple of the world size: no effect on one process. Default `true`.
    pub round_up: bool,
}

impl Default for DefaultSamplerConfig {
    fn default() -> Self {
        Self { shuffle: true, seed: None, round_up: true }
    }
}

/// `sampler = dict(type='InfiniteSampler', shuffle=True)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InfiniteSamplerConfig {
    /// Shuffle every pass. Default `true`.
    pub shuffle: bool,
    /// Seed of the shuffle; `None` uses the loader's (runner's) seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl Default for InfiniteSamplerConfig {
    fn default() -> Self {
        Self { shuffle: true, seed: None }
    }
}

/// `sampler = dict(type='DeepClusterSampler', shuffle=True, replace=False)` (mmselfsup):
/// MMEngine's `DefaultSampler`, optionally drawing with replacement, whose order the
/// DeepCluster hook replaces by uniform-over-clusters indices after each clustering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeepClusterSamplerConfig {
    /// Shuffle every epoch. Default `true` (uniform sampling needs it).
    pub shuffle: bool,
    /// Seed of the shuffle; `None` uses the loader's (runner's) seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Draw the epoch's indices with replacement. Default `false`.
    pub replace: bool,
    /// Pad to a multiple of the world size: no effect on one process. Default `true`.
    pub round_up: bool,
}

impl Default for DeepClusterSamplerConfig {
    fn default() -> Self {
        Self { shuffle: true, seed: None, replace: false, round_up: true }
    }
}

selfsup_config::registry! {
    /// The sampler registry.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum SamplerConfig {
        /// MMEngine's `DefaultSampler`.
        "DefaultSampler" => DefaultSampler(DefaultSamplerConfig),
        /// MMEngine's `InfiniteSampler`.
        "InfiniteSampler" => InfiniteSampler(InfiniteSamplerConfig),
        /// MMSelfSup's `DeepClusterSampler`.
        "DeepClusterSampler" => DeepClusterSampler(DeepClusterSamplerConfig),
    }
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig::DefaultSampler(DefaultSamplerConfig::default())
    }
}

/// `collate_fn = dict(type='default_collate')` (no other key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultCollateConfig {}

/// `collate_fn = dict(type='pseudo_collate')` (no other key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PseudoCollateConfig {}

selfsup_config::registry! {
    /// The collate-function registry.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum CollateFnConfig {
        /// Stack every view into an NCHW batch (what MMSelfSup configs use). The default here
        /// (MMEngine's default is `pseudo_collate`, which this loader does not implement).
        "default_collate" => DefaultCollate(DefaultCollateConfig),
        /// MMEngine's list-keeping collate: rejected by [`DataLoaderConfig::options`].
        "pseudo_collate" => PseudoCollate(PseudoCollateConfig),
    }
}

impl Default for CollateFnConfig {
    fn default() -> Self {
        CollateFnConfig::DefaultCollate(DefaultCollateConfig {})
    }
}

fn one() -> usize {
    1
}

/// MMEngine's dataloader dict: `batch_size`, `num_workers`, `persistent_workers`, `sampler`,
/// `collate_fn`, `drop_last`, `dataset` (+ `pin_memory`, `prefetch_factor`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataLoaderConfig {
    /// Samples per batch. Default 1 (PyTorch's).
    #[serde(default = "one")]
    pub batch_size: usize,
    /// Worker threads (0: load in the iterating thread). Default 0.
    #[serde(default)]
    pub num_workers: usize,
    /// Accepted, no effect: workers live as long as the iterator. Default `false`.
    #[serde(default)]
    pub persistent_workers: bool,
    /// Sampler. Default `DefaultSampler(shuffle=True)`.
    #[serde(default)]
    pub sampler: SamplerConfig,
    /// Collate function. Default `default_collate`.
    #[serde(default)]
    pub collate_fn: CollateFnConfig,
    /// Drop the last incomplete batch of each epoch. Default `false`.
    #[serde(default)]
    pub drop_last: bool,
    /// Accepted, no effect. Default `false`.
    #[serde(default)]
    pub pin_memory: bool,
    /// Batches buffered per worker. Default 2 (PyTorch's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefetch_factor: Option<usize>,
    /// The dataset, with its `pipeline`. Required.
    pub dataset: DatasetConfig,
}

impl DataLoaderConfig {
    /// Parses a JSON dataloader dict.
    ///
    /// # Errors
    /// [`DataError::ConfigParse`], naming an unknown `type` or key.
    pub fn from_json(json: &str) -> Result<Self, DataError> {
        serde_json::from_str(json).map_err(|e| DataError::parse("dataloader config", &e))
    }

    /// The loader options this config describes; `default_seed` is used when the sampler
    /// has no `seed` (MMEngine would use the runner's `randomness.seed`).
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for `pseudo_collate` or `batch_size == 0`.
    pub fn options(&self, default_seed: u64) -> Result<DataLoaderOptions, DataError> {
        if matches!(self.collate_fn, CollateFnConfig::PseudoCollate(_)) {
            return Err(DataError::config("DataLoader", "collate_fn 'pseudo_collate' is not supported: use dict(type='default_collate')"));
        }
        if self.batch_size == 0 {
            return Err(DataError::config("DataLoader", "`batch_size` must be positive"));
        }
        let (sampler, shuffle, seed, replace) = match &self.sampler {
            SamplerConfig::DefaultSampler(s) => (SamplerKind::Default, s.shuffle, s.seed, false),
            SamplerConfig::InfiniteSampler(s) => (SamplerKind::Infinite, s.shuffle, s.seed, false),
            SamplerConfig::DeepClusterSampler(s) => (SamplerKind::Default, s.shuffle, s.seed, s.replace),
        };
        Ok(DataLoaderOptions {
            batch_size: self.batch_size,
            num_workers: self.num_workers,
            shuffle,
            drop_last: self.drop_last,
            seed: seed.unwrap_or(default_seed),
            prefetch: self.prefetch_factor.unwrap_or(2),
            sampler,
            replace,
            skip_unreadable: false,
        })
    }
}
