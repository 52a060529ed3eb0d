//! Port of `mmselfsup.models.memories.ODCMemory` (`odc_memory.py`): ODC's
//! samples memory (one feature and one cluster label per sample of the
//! dataset) and centroids memory.
//!
//! - `centroids` is MMSelfSup's only state-dict buffer (`memory_bank.centroids`).
//! - The feature bank is one `[length, feat_dim]` tensor on the device
//!   (a [`NonPersistent`]: MMSelfSup keeps it as a plain attribute, outside
//!   the state dict); the label bank is one host vector (MMSelfSup keeps it
//!   on the CPU), shared copy-on-write between model copies. ODC's hook
//!   saves both in selfsup checkpoints so that a resumed run continues
//!   exactly.
//! - A step updates the rows of its samples: `normalize((1 − m)·old +
//!   m·normalize(feature))`, relabelled to the most similar centroid
//!   ([`ODCMemory::prepare_update`] in `loss()`, [`ODCMemory::apply_update`]
//!   after the optimiser step; nothing reads the memory in between).
//! - Small clusters (fewer than `min_cluster` samples) are dissolved into
//!   the most similar other centroids, then refilled by splitting the
//!   largest cluster in two ([`ODCMemory::deal_with_small_clusters`]; the
//!   2-means is the caller's, so tests replay the reference's splits).
use std::sync::Arc;

use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, IndexingUpdateOp, Int, Tensor, TensorData},
};
use selfsup_layers::{buffer::NonPersistent, init::fixed};
use serde::{Deserialize, Serialize};

use crate::simple_memory::assign_rows;

/// `dict(type='ODCMemory', length, feat_dim, momentum, num_classes, min_cluster, debug=False)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ODCMemoryConfig {
    /// Samples stored: the dataset's length.
    pub length: usize,
    /// Width of a feature (the neck's output).
    pub feat_dim: usize,
    /// Weight of the new feature in the running average.
    pub momentum: f64,
    /// Clusters.
    pub num_classes: usize,
    /// Clusters with fewer samples are dissolved and refilled.
    pub min_cluster: usize,
    /// Print the smallest cluster and the number of small ones at every check.
    #[serde(default)]
    pub debug: bool,
}

impl ODCMemoryConfig {
    /// Checks the sizes; `(key, message)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.length == 0 || self.feat_dim == 0 {
            return Err(("length", "length and feat_dim must be at least 1".into()));
        }
        if self.num_classes < 2 || self.num_classes > self.length {
            return Err(("num_classes", format!("must be in 2..={} (the memory's length), got {}", self.length, self.num_classes)));
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(("momentum", format!("must be in [0, 1], got {}", self.momentum)));
        }
        Ok(())
    }

    /// Zero banks and centroids, not yet initialised (the `DeepClusterHook` with
    /// `init_memory=True` fills them before training).
    pub fn init<B: Backend>(&self, device: &B::Device) -> ODCMemory<B> {
        ODCMemory {
            centroids: fixed(Tensor::zeros([self.num_classes, self.feat_dim], device)),
            feature_bank: NonPersistent::new(Tensor::zeros([self.length, self.feat_dim], device)),
            label_bank: Arc::new(vec![0; self.length]),
            initialized: false,
            momentum: self.momentum,
            min_cluster: self.min_cluster,
            debug: self.debug,
        }
    }
}

/// Key `centroids`; the banks are outside the state dict.
#[derive(Module, Debug)]
pub struct ODCMemory<B: Backend> {
    /// `[num_classes, feat_dim]`.
    pub centroids: Param<Tensor<B, 2>>,
    /// `[length, feat_dim]`, L2-normalised rows.
    pub feature_bank: NonPersistent<B>,
    label_bank: Arc<Vec<i64>>,
    initialized: bool,
    momentum: f64,
    min_cluster: usize,
    debug: bool,
}

/// What a step writes into the memory (computed in `loss()`, applied after the step).
#[derive(Debug, Clone)]
pub struct OdcUpdate<B: Backend> {
    /// Rows of the banks, in batch order (repeats allowed; the last wins).
    pub idx: Vec<usize>,
    /// The new rows, `[idx.len(), feat_dim]`, detached.
    pub rows: Tensor<B, 2>,
    /// The new labels.
    pub labels: Vec<i64>,
}

/// One refill of an emptied cluster: the largest cluster's members split in two,
/// the second half relabelled `empty`.
#[derive(Debug, Clone, PartialEq)]
pub struct Redirect {
    /// The emptied cluster.
    pub empty: usize,
    /// The cluster that was split.
    pub max_cluster: usize,
    /// Members kept.
    pub sub1: Vec<usize>,
    /// Members moved to `empty`.
    pub sub2: Vec<usize>,
}

fn int_tensor<B: Backend>(v: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    Tensor::from_data(TensorData::new(v.iter().map(|&i| i as i64).collect::<Vec<_>>(), [v.len()]), device)
}

fn normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().add_scalar(1e-10);
    x / norm
}

impl<B: Backend> ODCMemory<B> {
    /// Samples stored.
    pub fn len(&self) -> usize {
        self.label_bank.len()
    }

    /// Whether the memory stores nothing (never: configs are validated).
    pub fn is_empty(&self) -> bool {
        self.label_bank.is_empty()
    }

    /// Clusters.
    pub fn num_classes(&self) -> usize {
        self.centroids.dims()[0]
    }

    /// Whether `init_memory` ran.
    pub fn is_initialized(&self) -> bool {
        self.initialized
    }

    /// Every sample's cluster.
    pub fn labels(&self) -> &[i64] {
        &self.label_bank
    }

    /// The labels of `idx`.
    pub fn labels_of(&self, idx: &[usize]) -> Vec<i64> {
        idx.iter().map(|&i| self.label_bank[i]).collect()
    }

    /// Samples per cluster (`np.bincount(label_bank, minlength=num_classes)`).
    pub fn histogram(&self) -> Vec<usize> {
        let mut h = vec![0usize; self.num_classes()];
        for &l in self.label_bank.iter() {
            h[l as usize] += 1;
        }
        h
    }

    /// `init_memory(feature, label)`: the bank holds the L2-normalised features, the labels
    /// are the clustering's, and the centroids the means of their clusters.
    ///
    /// # Errors
    /// A shape mismatch, a label out of range, or an empty cluster (MMSelfSup asserts none).
    pub fn init_memory(mut self, features: Tensor<B, 2>, labels: Vec<i64>) -> Result<Self, String> {
        let [n, d] = features.dims();
        let [len, dim] = self.feature_bank.value.dims();
        if n != len || d != dim || labels.len() != len {
            return Err(format!("init_memory: {n} x {d} features and {} labels for a memory of {len} x {dim}", labels.len()));
        }
        let k = self.num_classes() as i64;
        if let Some(l) = labels.iter().find(|&&l| l < 0 || l >= k) {
            return Err(format!("init_memory: label {l} outside 0..{k}"));
        }
        self.label_bank = Arc::new(labels);
        let empty = self.histogram().iter().filter(|&&c| c == 0).count();
        if empty > 0 {
            return Err(format!("init_memory: {empty} of {k} clusters are empty"));
        }
        self.feature_bank = NonPersistent::new(normalize(features.detach()));
        self.initialized = true;
        Ok(self.update_centroids(None))
    }

    /// Restores the banks of a checkpoint (the memory counts as initialised).
    ///
    /// # Errors
    /// Shapes that do not fit the memory.
    pub fn restore(mut self, features: Tensor<B, 2>, labels: Vec<i64>) -> Result<Self, String> {
        if features.dims() != self.feature_bank.value.dims() || labels.len() != self.len() {
            return Err(format!(
                "a saved ODC memory of {:?} and {} labels does not fit {:?}",
                features.dims(),
                labels.len(),
                self.feature_bank.value.dims()
            ));
        }
        self.feature_bank = NonPersistent::new(features);
        self.label_bank = Arc::new(labels);
        self.initialized = true;
        Ok(self)
    }

    /// `update_samples_memory`, without writing: the step's rows and labels, and the
    /// share of samples whose label changes (`change_ratio`).
    ///
    /// # Shapes
    /// `features`: `[idx.len(), feat_dim]`
    pub fn prepare_update(&self, idx: &[usize], features: Tensor<B, 2>) -> (OdcUpdate<B>, f32) {
        let device = features.device();
        let feature_norm = normalize(features.detach());
        let old = self.feature_bank.get().select(0, int_tensor::<B>(idx, &device));
        let new = normalize(old.mul_scalar(1.0 - self.momentum) + feature_norm.mul_scalar(self.momentum));
        let similarity = new.clone().matmul(self.centroids.val().detach().transpose());
        let labels: Vec<i64> = similarity.argmax(1).into_data().convert::<i64>().to_vec::<i64>().unwrap_or_default();
        let changed = labels.iter().zip(idx).filter(|&(l, &i)| *l != self.label_bank[i]).count();
        let ratio = changed as f32 / idx.len().max(1) as f32;
        (OdcUpdate { idx: idx.to_vec(), rows: new, labels }, ratio)
    }

    /// Writes a step's rows and labels (in order: the last of repeated indices wins).
    pub fn apply_update(mut self, update: OdcUpdate<B>) -> Self {
        let labels = Arc::make_mut(&mut self.label_bank);
        for (&i, &l) in update.idx.iter().zip(&update.labels) {
            labels[i] = l;
        }
        let value = assign_rows(self.feature_bank.value, &update.idx, update.rows);
        self.feature_bank = NonPersistent { value };
        self
    }

    /// `update_centroids_memory(cinds)`: the mean feature of each cluster in `cinds`
    /// (all when `None`); a cluster without samples keeps its centroid.
    pub fn update_centroids(mut self, cinds: Option<&[usize]>) -> Self {
        let k = self.num_classes();
        let device = self.centroids.device();
        let bank = self.feature_bank.get();
        let d = bank.dims()[1];
        let labels: Vec<usize> = self.label_bank.iter().map(|&l| l as usize).collect();
        let sums = Tensor::<B, 2>::zeros([k, d], &device).select_assign(0, int_tensor::<B>(&labels, &device), bank, IndexingUpdateOp::Add);
        let counts = self.histogram();
        let chosen: Vec<bool> = match cinds {
            Some(c) => (0..k).map(|i| c.contains(&i)).collect(),
            None => vec![true; k],
        };
        // new = sums / count where chosen and non-empty, else the old centroid.
        let take: Vec<f32> = (0..k).map(|c| if chosen[c] && counts[c] > 0 { 1.0 } else { 0.0 }).collect();
        let inv: Vec<f32> = (0..k).map(|c| if counts[c] > 0 { 1.0 / counts[c] as f32 } else { 0.0 }).collect();
        let take = Tensor::<B, 1>::from_data(TensorData::new(take, [k]), &device).unsqueeze_dim::<2>(1);
        let inv = Tensor::<B, 1>::from_data(TensorData::new(inv, [k]), &device).unsqueeze_dim::<2>(1);
        let old = self.centroids.val().detach();
        let new = sums * inv * take.clone() + old * take.neg().add_scalar(1.0);
        self.centroids = fixed(new);
        self
    }

    /// `deal_with_small_clusters`: every sample of a cluster smaller than
    /// `min_cluster` moves to the most similar centroid among the other clusters;
    /// then each emptied cluster takes half of the largest cluster, split by
    /// `split(max_cluster, members, their features)` into (kept, moved), and both
    /// centroids are recomputed. Returns the refills, in order.
    pub fn deal_with_small_clusters(
        mut self,
        mut split: impl FnMut(usize, &[usize], Tensor<B, 2>) -> (Vec<usize>, Vec<usize>),
    ) -> (Self, Vec<Redirect>) {
        let k = self.num_classes();
        let device = self.centroids.device();
        let histogram = self.histogram();
        let small: Vec<usize> = (0..k).filter(|&c| histogram[c] < self.min_cluster).collect();
        if self.debug {
            eprintln!("mincluster: {}, num of small class: {}", histogram.iter().min().unwrap_or(&0), small.len());
        }
        if small.is_empty() {
            return (self, Vec::new());
        }
        let inclusion: Vec<usize> = (0..k).filter(|c| !small.contains(c)).collect();
        if !inclusion.is_empty() {
            let centroids = self.centroids.val().detach().select(0, int_tensor::<B>(&inclusion, &device));
            for &s in &small {
                let idx: Vec<usize> = (0..self.len()).filter(|&i| self.label_bank[i] == s as i64).collect();
                if idx.is_empty() {
                    continue;
                }
                let rows = self.feature_bank.get().select(0, int_tensor::<B>(&idx, &device));
                let target: Vec<i64> =
                    rows.matmul(centroids.clone().transpose()).argmax(1).into_data().convert::<i64>().to_vec::<i64>().unwrap_or_default();
                let labels = Arc::make_mut(&mut self.label_bank);
                for (&i, &t) in idx.iter().zip(&target) {
                    labels[i] = inclusion[t as usize] as i64;
                }
            }
        }
        let mut redirects = Vec::new();
        for &e in &small {
            let histogram = self.histogram();
            // np.argmax: the first of equal maxima.
            let max_cluster = (0..k).fold(0, |best, c| if histogram[c] > histogram[best] { c } else { best });
            let members: Vec<usize> = (0..self.len()).filter(|&i| self.label_bank[i] == max_cluster as i64).collect();
            if members.len() < 2 {
                continue;
            }
            let rows = self.feature_bank.get().select(0, int_tensor::<B>(&members, &device));
            let (sub1, sub2) = split(max_cluster, &members, rows);
            let labels = Arc::make_mut(&mut self.label_bank);
            for &i in &sub2 {
                labels[i] = e as i64;
            }
            self = self.update_centroids(Some(&[max_cluster, e]));
            redirects.push(Redirect { empty: e, max_cluster, sub1, sub2 });
        }
        (self, redirects)
    }
}
