//! The `custom_hooks` registry and the configs of MMSelfSup's algorithm
//! hooks (the config side of `hooks/`, kept apart from the run config).
use serde::{Deserialize, Serialize};

use selfsup_data::DataLoaderConfig;

selfsup_config::registry! {
    /// `custom_hooks = [dict(type=...)]`: the hooks MMSelfSup's configs use.
    #[derive(Debug, Clone, PartialEq)]
    pub enum CustomHookConfig {
        /// SwAV's feature queue and frozen prototypes.
        "SwAVHook" => SwAV(SwAVHookConfig),
        /// DenseCL's dense-loss warm-up.
        "DenseCLHook" => DenseCl(DenseClHookConfig),
        /// SimSiam's fixed predictor learning rate.
        "SimSiamHook" => SimSiam(SimSiamHookConfig),
        /// DeepCluster's clustering between epochs.
        "DeepClusterHook" => DeepCluster(DeepClusterHookConfig),
        /// ODC's centroid updates, small-cluster handling and re-weighting.
        "ODCHook" => Odc(OdcHookConfig),
        /// DINO's teacher temperature (mmpretrain's project).
        "DINOTeacherTempWarmupHook" => DinoTeacherTempWarmup(crate::hooks::DinoTeacherTempWarmupHookConfig),
        /// RankMe, the collapse signal and an online kNN on a held-out set (any algorithm).
        "RepresentationMonitorHook" => RepresentationMonitor(crate::hooks::RepresentationMonitorHookConfig),
    }
}

selfsup_config::registry! {
    /// `clustering=dict(type='Kmeans', k, pca_dim)`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum ClusteringConfig {
        /// PCA with whitening, L2 normalisation, k-means (faiss's semantics).
        "Kmeans" => Kmeans(selfsup_memories::clustering::KmeansConfig),
    }
}

/// `dict(type='DeepClusterHook', extract_dataloader, clustering, unif_sampling, reweight,
/// reweight_pow, init_memory=False, initial=True, interval=1, seed=None)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeepClusterHookConfig {
    /// The loader of the features to cluster: the training images through a test
    /// pipeline, in dataset order (its sampler is not used: every sample once, in order).
    pub extract_dataloader: DataLoaderConfig,
    /// The clustering.
    pub clustering: ClusteringConfig,
    /// Train on the same number of samples from every cluster (`DeepClusterSampler`).
    pub unif_sampling: bool,
    /// Weigh the loss by `1/size^reweight_pow` of each cluster.
    pub reweight: bool,
    /// The re-weighting power.
    #[serde(default = "half")]
    pub reweight_pow: f64,
    /// Fill ODC's memory with the features and labels (ODC only).
    #[serde(default)]
    pub init_memory: bool,
    /// Cluster before the first epoch.
    #[serde(default = "yes")]
    pub initial: bool,
    /// Cluster after every `interval` epochs.
    #[serde(default = "one")]
    pub interval: usize,
    /// Seed of the clustering's draws; default the run's.
    #[serde(default)]
    pub seed: Option<u64>,
    /// MMEngine's hook priority; accepted.
    #[serde(default)]
    pub priority: Option<serde_json::Value>,
}

fn half() -> f64 {
    0.5
}

/// `dict(type='ODCHook', centroids_update_interval, deal_with_small_clusters_interval,
/// evaluate_interval, reweight, reweight_pow, dist_mode=True)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OdcHookConfig {
    /// Recompute every centroid every this many iterations.
    pub centroids_update_interval: usize,
    /// Dissolve and refill small clusters every this many iterations.
    pub deal_with_small_clusters_interval: usize,
    /// Log the cluster sizes every this many iterations.
    pub evaluate_interval: usize,
    /// Accepted; MMSelfSup's hook re-weights after every iteration whatever it says.
    pub reweight: bool,
    /// Accepted; MMSelfSup's hook re-weights with power 0.5 whatever it says.
    #[serde(default = "half")]
    pub reweight_pow: f64,
    /// MMSelfSup refuses `False`; accepted when true.
    #[serde(default = "yes")]
    pub dist_mode: bool,
    /// Seed of the 2-means splits; default the run's.
    #[serde(default)]
    pub seed: Option<u64>,
    /// MMEngine's hook priority; accepted.
    #[serde(default)]
    pub priority: Option<serde_json::Value>,
}

/// `dict(type='SwAVHook', batch_size, epoch_queue_starts=15, crops_for_assign=[0, 1],
/// feat_dim=128, queue_length=0, interval=1, frozen_layers_cfg={})`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwAVHookConfig {
    /// Batch size per device (the queue length is rounded down to a multiple).
    pub batch_size: usize,
    /// First epoch with a queue.
    #[serde(default = "fifteen")]
    pub epoch_queue_starts: usize,
    /// Crops whose embeddings enter the queue.
    #[serde(default = "crops01")]
    pub crops_for_assign: Vec<usize>,
    /// Embedding width.
    #[serde(default = "d128")]
    pub feat_dim: usize,
    /// Queue length (0: no queue).
    #[serde(default)]
    pub queue_length: usize,
    /// MMSelfSup saves the queue every `interval` epochs; ours is in every checkpoint.
    #[serde(default = "one")]
    pub interval: usize,
    /// `{name: iters}`: parameters whose name contains `name` get no gradient
    /// for the first `iters` iterations (only `prototypes` exists in SwAV).
    #[serde(default)]
    pub frozen_layers_cfg: std::collections::BTreeMap<String, usize>,
    /// MMEngine's hook priority; accepted.
    #[serde(default)]
    pub priority: Option<serde_json::Value>,
}

/// `dict(type='DenseCLHook', start_iters=1000)`: the dense loss weight is 0
/// before `start_iters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseClHookConfig {
    /// First iteration with the dense loss.
    #[serde(default = "thousand")]
    pub start_iters: usize,
    /// MMEngine's hook priority; accepted.
    #[serde(default)]
    pub priority: Option<serde_json::Value>,
}

/// `dict(type='SimSiamHook', fix_pred_lr=True, lr=..., adjust_by_epoch=True)`:
/// parameter groups with `fix_lr` keep `lr`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimSiamHookConfig {
    /// Whether the predictor's lr is fixed.
    pub fix_pred_lr: bool,
    /// The fixed lr.
    pub lr: f64,
    /// MMSelfSup resets the lr each epoch; ours holds it every iteration.
    #[serde(default = "yes")]
    pub adjust_by_epoch: bool,
    /// MMEngine's hook priority; accepted.
    #[serde(default)]
    pub priority: Option<serde_json::Value>,
}

fn fifteen() -> usize {
    15
}
fn crops01() -> Vec<usize> {
    vec![0, 1]
}
fn d128() -> usize {
    128
}
fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn thousand() -> usize {
    1000
}
