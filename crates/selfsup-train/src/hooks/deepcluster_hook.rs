//! Port of `mmselfsup.engine.hooks.DeepClusterHook`: DeepCluster's
//! clustering before the first epoch and after every `interval` epochs.
//!
//! Each clustering: the model in eval mode extracts `neck(backbone(x))` of
//! every training sample through the hook's `extract_dataloader` (dataset
//! order, a test pipeline); PCA with whitening, L2 normalisation and
//! k-means (`selfsup_memories::clustering`, on the training backend) give
//! every sample a cluster; the data loader carries the labels as
//! `clustering_label`; with `unif_sampling` the next epoch's order takes
//! `N/k + 1` samples of every non-empty cluster (with replacement when the
//! cluster is smaller), shuffled, cut to `N` (`DeepClusterSampler`); with
//! `reweight` the loss weighs cluster `c` by `(1/(|c| + 1e-10))^pow`,
//! normalised; the classifier is drawn again; with `init_memory` (ODC) the
//! memory takes the raw features and the labels.
//!
//! Differences from MMSelfSup, all deliberate:
//! - every draw (k-means' initial rows and empty-cluster splits, the
//!   uniform order, the new classifier) comes from a generator keyed by
//!   the seed and the epoch, not from numpy's and torch's global state;
//! - the labels, the epoch's order and the previous assignment go into
//!   every checkpoint (`hooks.deepcluster.*`) and a resumed run continues
//!   with them instead of clustering again at start, so it reproduces the
//!   uninterrupted run;
//! - samples whose file cannot be read get no feature; they are labelled 0
//!   and left out of the uniform order (ODC's memory stores a zero row);
//! - each clustering prints the cluster sizes and the normalised mutual
//!   information with the previous assignment (the DeepCluster paper's
//!   stability measure), and writes `cluster_epoch_{E}.npy` (int64 labels)
//!   into the work dir, as MMSelfSup does.
use std::path::Path;

use burn::{
    module::AutodiffModule,
    tensor::{backend::AutodiffBackend, IndexingUpdateOp, Int, Tensor, TensorData},
};
use rand::Rng;
use selfsup_algorithms::Algorithm;
use selfsup_layers::init::InitRng;
use selfsup_memories::clustering::{histogram, kmeans, nmi, preprocess_features, random_init, reweight, KmeansConfig};
use selfsup_weights::StateDict;

use super::{keyed_rng, Hook};
use crate::{
    config::{ClusteringConfig, DeepClusterHookConfig},
    extract::features_with,
    runner::Runner,
    TrainError,
};

/// Checkpoint keys of the hook's state.
const LABELS: &str = "hooks.deepcluster.labels";
const ORDER: &str = "hooks.deepcluster.order";

/// k-means iterations (`run_kmeans` sets faiss's `niter = 20`).
const NITER: usize = 20;

/// The hook; see the module documentation.
#[derive(Debug, Clone)]
pub struct DeepClusterHook {
    cfg: DeepClusterHookConfig,
    /// The last assignment, by dataset index.
    labels: Option<Vec<i64>>,
    /// State read from a resumed checkpoint, applied in `before_train`.
    restored: Option<(Vec<i64>, Option<Vec<usize>>)>,
}

fn other(e: impl std::fmt::Display) -> TrainError {
    TrainError::Other(e.to_string())
}

impl DeepClusterHook {
    /// The hook of `cfg`.
    pub fn new(cfg: DeepClusterHookConfig) -> Self {
        Self { cfg, labels: None, restored: None }
    }

    fn kmeans_cfg(&self) -> &KmeansConfig {
        let ClusteringConfig::Kmeans(k) = &self.cfg.clustering;
        k
    }

    /// Clusters the training set with the current model and hands the result to the loader
    /// and the model. `epoch`: the epoch the result is for.
    fn cluster<B: AutodiffBackend>(&mut self, runner: &mut Runner<B>, epoch: usize) -> Result<(), TrainError> {
        let seed = runner.cfg.run.randomness.seed.unwrap_or(0);
        let mut rng = keyed_rng(self.cfg.seed.unwrap_or(seed), epoch, b"deepclusterhook\0");
        let k = self.kmeans_cfg().k;
        let pca_dim = usize::try_from(self.kmeans_cfg().pca_dim).ok();
        let dl = &self.cfg.extract_dataloader;
        let dataset = dl.dataset.build(None)?;
        let n = runner.loader().dataset().len();
        if dataset.len() != n {
            return Err(other(format!(
                "DeepClusterHook: extract_dataloader's dataset has {} samples, the training data {n}: they must be the same images",
                dataset.len()
            )));
        }
        // Step 1: features, the model in eval mode (the inner backend: running statistics).
        let inner = runner.model.valid();
        let device = runner.device().clone();
        let feats = features_with(&inner, dataset, dl.dataset.pipeline(), dl.batch_size, &device, |m, x| match m.cluster_features(x) {
            Some(f) => f.map_err(TrainError::from),
            None => Err(other(format!("DeepClusterHook drives DeepCluster and ODC, not {}", selfsup_core::SelfSupAlgorithm::name(m)))),
        })?;
        let rows = feats.indices.len();
        if rows < k {
            return Err(other(format!("DeepClusterHook: {rows} readable samples for k = {k} clusters")));
        }
        // Step 2: PCA, whitening, L2, k-means.
        let dim = feats.dim;
        let raw = Tensor::<B::InnerBackend, 2>::from_data(TensorData::new(feats.feats, [rows, dim]), &device);
        let (x, _) = preprocess_features(raw.clone(), pca_dim).map_err(other)?;
        let init = random_init(rows, k, &mut rng);
        let result = kmeans(&x, k, NITER, &init, &mut rng).map_err(other)?;
        let mut labels = vec![0i64; n];
        for (&i, &l) in feats.indices.iter().zip(&result.labels) {
            labels[i] = l as i64;
        }
        // Sizes and stability.
        let sizes = histogram(&result.labels, k);
        let empty = sizes.iter().filter(|&&s| s == 0).count();
        let stability = match &self.labels {
            Some(prev) => {
                let prev: Vec<usize> = feats.indices.iter().map(|&i| prev[i] as usize).collect();
                format!(", NMI with the previous assignment {:.4}", nmi(&prev, &result.labels))
            }
            None => String::new(),
        };
        if runner.is_lead() {
            eprintln!(
                "DeepClusterHook: epoch {epoch}: {rows} samples in {k} clusters (empty {empty}, smallest {}, largest {}; k-means objective {:.4}, {} splits){stability}",
                sizes.iter().min().unwrap_or(&0),
                sizes.iter().max().unwrap_or(&0),
                result.objective.last().copied().unwrap_or(0.0),
                result.splits,
            );
            write_npy(&runner.work_dir.join(format!("cluster_epoch_{epoch}.npy")), &labels)?;
        }
        // Steps 3 and 4: labels and the uniform order.
        let order = self.cfg.unif_sampling.then(|| uniform_order(&feats.indices, &result.labels, k, n, &mut rng));
        self.apply(runner, &labels, order.as_deref(), epoch)?;
        // Step 4 (b): loss weights.
        if self.cfg.reweight {
            runner.model = runner.model.clone().with_loss_weight(reweight(&sizes, self.cfg.reweight_pow));
        }
        // Step 5: a new classifier.
        let mut init_rng = InitRng::new(rng.random::<u64>());
        runner.model = runner.model.clone().with_new_classifier(&mut init_rng);
        // Step 6: ODC's memory, from the raw features (unreadable samples: zero rows).
        if let (true, Algorithm::Odc(m)) = (self.cfg.init_memory, runner.model.clone()) {
            let raw = Tensor::<B, 2>::from_inner(raw);
            let full = if rows == n {
                raw
            } else {
                let idx: Vec<i64> = feats.indices.iter().map(|&i| i as i64).collect();
                let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [rows]), &device);
                Tensor::<B, 2>::zeros([n, dim], &device).select_assign(0, idx, raw, IndexingUpdateOp::Add)
            };
            let memory = m.memory_bank.clone().init_memory(full, labels).map_err(|e| other(format!("DeepClusterHook: {e}")))?;
            runner.model = Algorithm::Odc(m.map_memory(|_| memory));
        }
        Ok(())
    }

    fn apply<B: AutodiffBackend>(
        &mut self,
        runner: &mut Runner<B>,
        labels: &[i64],
        order: Option<&[usize]>,
        epoch: usize,
    ) -> Result<(), TrainError> {
        runner.loader().assign_labels(labels.to_vec())?;
        if let Some(order) = order {
            runner.loader().set_epoch_order(epoch, order.to_vec())?;
        }
        self.labels = Some(labels.to_vec());
        Ok(())
    }
}

/// `DeepClusterSampler.set_uniform_indices`: `n/k + 1` samples of every non-empty cluster
/// (with replacement when the cluster has no more), shuffled, the first `n` kept, repeated
/// to `n` when fewer.
fn uniform_order(indices: &[usize], labels: &[usize], k: usize, n: usize, rng: &mut impl Rng) -> Vec<usize> {
    let size = n / k + 1;
    let mut members = vec![Vec::new(); k];
    for (&i, &l) in indices.iter().zip(labels) {
        members[l].push(i);
    }
    let mut order = Vec::with_capacity(size * k);
    for m in members.iter().filter(|m| !m.is_empty()) {
        if m.len() <= size {
            order.extend((0..size).map(|_| m[rng.random_range(0..m.len() as u64) as usize]));
        } else {
            let mut pool = m.clone();
            for j in 0..size {
                let r = rng.random_range(j as u64..pool.len() as u64) as usize;
                pool.swap(j, r);
            }
            order.extend_from_slice(&pool[..size]);
        }
    }
    for i in (1..order.len()).rev() {
        let j = rng.random_range(0..=i as u64) as usize;
        order.swap(i, j);
    }
    order.truncate(n);
    let filled = order.len();
    (0..n).map(|p| order[p % filled]).collect()
}

/// Writes int64 labels as a NumPy `.npy` file (`np.save`'s format, version 1.0).
pub(super) fn write_npy(path: &Path, values: &[i64]) -> Result<(), TrainError> {
    let mut header = format!("{{'descr': '<i8', 'fortran_order': False, 'shape': ({},), }}", values.len());
    // Magic (6) + version (2) + length (2) + header, padded with spaces to 64 bytes, ending in \n.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + values.len() * 8);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).map_err(|e| TrainError::Io(path.to_path_buf(), e))
}

impl<B: AutodiffBackend> Hook<B> for DeepClusterHook {
    fn before_train(&mut self, runner: &mut Runner<B>) -> Result<(), TrainError> {
        if let Some((labels, order)) = self.restored.take() {
            let epoch = runner.epoch;
            return self.apply(runner, &labels, order.as_deref(), epoch);
        }
        if self.cfg.initial {
            let epoch = runner.epoch;
            self.cluster(runner, epoch)?;
        }
        Ok(())
    }

    fn after_train_epoch(&mut self, runner: &mut Runner<B>) -> Result<(), TrainError> {
        // `runner.epoch` is the epoch about to start; MMEngine's `every_n_epochs`.
        if runner.epoch.is_multiple_of(self.cfg.interval.max(1)) {
            let epoch = runner.epoch;
            self.cluster(runner, epoch)?;
        }
        Ok(())
    }

    fn after_train(&mut self, runner: &mut Runner<B>) -> Result<(), TrainError> {
        // The loop stops before `after_train_epoch` of a completed last epoch; MMSelfSup clusters
        // after it too, and the final checkpoint carries the result, so that a run resumed with a
        // longer schedule continues as the uninterrupted one.
        let next = runner.epoch + 1;
        if runner.batch_in_epoch >= runner.epoch_length && next.is_multiple_of(self.cfg.interval.max(1)) {
            self.cluster(runner, next)?;
        }
        Ok(())
    }

    fn before_save_checkpoint(&mut self, runner: &Runner<B>, checkpoint: &mut StateDict) -> Result<(), TrainError> {
        let Some(labels) = &self.labels else { return Ok(()) };
        checkpoint.tensors.insert(LABELS.into(), TensorData::new(labels.clone(), [labels.len()]));
        if let Some(order) = runner.loader().epoch_order(runner.epoch) {
            let order: Vec<i64> = order.iter().map(|&i| i as i64).collect();
            checkpoint.tensors.insert(ORDER.into(), TensorData::new(order.clone(), [order.len()]));
        }
        Ok(())
    }

    fn after_load_checkpoint(&mut self, _runner: &mut Runner<B>, checkpoint: &mut StateDict) -> Result<(), TrainError> {
        let ints = |t: TensorData| t.convert::<i64>().to_vec::<i64>().map_err(|e| other(format!("{e:?}")));
        if let Some(labels) = checkpoint.tensors.remove(LABELS) {
            let order = checkpoint.tensors.remove(ORDER).map(ints).transpose()?.map(|o| o.into_iter().map(|i| i as usize).collect());
            self.restored = Some((ints(labels)?, order));
        }
        Ok(())
    }
}
