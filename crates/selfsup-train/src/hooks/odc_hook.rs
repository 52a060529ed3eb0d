//! Port of `mmselfsup.engine.hooks.ODCHook`: ODC's online clustering
//! between iterations.
//!
//! After every iteration: all centroids recomputed every
//! `centroids_update_interval` iterations, small clusters dissolved and
//! refilled every `deal_with_small_clusters_interval`, the loss re-weighted
//! by `(1/(size + 1e-10))^0.5` (normalised; MMSelfSup's hook always
//! re-weights, with power 0.5, whatever `reweight` and `reweight_pow` say)
//! and handed to the loss, and the cluster sizes logged every
//! `evaluate_interval`. Every 10 epochs the labels go to
//! `cluster_epoch_{E}.npy` in the work dir.
//!
//! Differences from MMSelfSup, both deliberate:
//! - the 2-means that splits the largest cluster (sklearn's `KMeans(2,
//!   random_state=0, max_iter=20)` there) is `clustering::two_means`, with
//!   k-means++ seeding from a generator keyed by the seed and the
//!   iteration;
//! - the memory's feature and label banks, which MMSelfSup keeps outside
//!   the state dict and so loses on resume, go into every checkpoint
//!   (`hooks.odc.feature_bank`, `hooks.odc.label_bank`), and a resumed run
//!   continues with them.
use burn::tensor::{backend::AutodiffBackend, Tensor, TensorData};
use rand::Rng;
use selfsup_algorithms::Algorithm;
use selfsup_memories::clustering::{reweight, two_means};
use selfsup_weights::StateDict;

use super::{deepcluster_hook::write_npy, keyed_rng, Hook};
use crate::{
    config::OdcHookConfig,
    runner::{IterOutput, Runner},
    TrainError,
};

/// Checkpoint keys of the memory's banks.
const FEATURE_BANK: &str = "hooks.odc.feature_bank";
const LABEL_BANK: &str = "hooks.odc.label_bank";

/// The hook; see the module documentation.
#[derive(Debug, Clone)]
pub struct OdcHook {
    cfg: OdcHookConfig,
    /// Banks read from a resumed checkpoint, applied in `before_train`.
    restored: Option<(TensorData, Vec<i64>)>,
}

fn other(e: impl std::fmt::Display) -> TrainError {
    TrainError::Other(e.to_string())
}

impl OdcHook {
    /// The hook of `cfg`.
    pub fn new(cfg: OdcHookConfig) -> Self {
        Self { cfg, restored: None }
    }
}

fn every(iter: usize, n: usize) -> bool {
    n > 0 && iter.is_multiple_of(n)
}

impl<B: AutodiffBackend> Hook<B> for OdcHook {
    fn before_train(&mut self, runner: &mut Runner<B>) -> Result<(), TrainError> {
        if !self.cfg.dist_mode {
            return Err(other("ODCHook: dist_mode=False is not implemented (as in MMSelfSup); remove it"));
        }
        let resumed = runner.iter > 0;
        let restored = self.restored.take();
        let device = runner.device().clone();
        runner.model = match runner.model.clone() {
            Algorithm::Odc(mut m) => {
                if let Some((features, labels)) = restored {
                    let features = Tensor::<B, 2>::from_data(features, &device);
                    let memory = m.memory_bank.clone().restore(features, labels).map_err(other)?;
                    m = m.map_memory(|_| memory);
                }
                // MMSelfSup's loss is weighted from the first `set_reweight` on.
                Algorithm::Odc(m.with_class_weighted(resumed))
            }
            model => model,
        };
        Ok(())
    }

    fn after_train_iter(&mut self, runner: &mut Runner<B>, _out: &IterOutput) -> Result<(), TrainError> {
        let iter = runner.iter;
        let seed = runner.cfg.run.randomness.seed.unwrap_or(0);
        let Algorithm::Odc(mut m) = runner.model.clone() else { return Ok(()) };
        if every(iter, self.cfg.centroids_update_interval) {
            m = m.map_memory(|mem| mem.update_centroids(None));
        }
        if every(iter, self.cfg.deal_with_small_clusters_interval) {
            let mut rng = keyed_rng(self.cfg.seed.unwrap_or(seed), iter, b"odchook\0\0\0\0\0\0\0\0\0");
            let mut redirects = Vec::new();
            m = m.map_memory(|mem| {
                let (mem, r) = mem.deal_with_small_clusters(|_, members, rows| {
                    let sides = two_means(&rows, &mut rng);
                    let (mut a, mut b): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
                    for (&i, &s) in members.iter().zip(&sides) {
                        if s == 0 {
                            a.push(i)
                        } else {
                            b.push(i)
                        }
                    }
                    if a.is_empty() || b.is_empty() {
                        // "kmeans partition fails, resort to random partition".
                        let mut pool = members.to_vec();
                        for j in 0..pool.len() / 2 {
                            let r = rng.random_range(j as u64..pool.len() as u64) as usize;
                            pool.swap(j, r);
                        }
                        let half = pool.len() / 2;
                        let (x, y) = pool.split_at(half);
                        a = x.to_vec();
                        b = y.to_vec();
                        a.sort_unstable();
                        b.sort_unstable();
                    }
                    (a, b)
                });
                redirects = r;
                mem
            });
            if !redirects.is_empty() && runner.is_lead() && every(iter, self.cfg.evaluate_interval) {
                eprintln!("ODCHook: iteration {iter}: {} small clusters refilled", redirects.len());
            }
        }
        let histogram = m.memory_bank.histogram();
        // MMSelfSup's `ODCHook.set_reweight(runner)`: always, with its default power 0.5.
        m = m.set_loss_weight(reweight(&histogram, 0.5)).with_class_weighted(true);
        if every(iter, self.cfg.evaluate_interval) && runner.is_lead() {
            eprintln!(
                "ODCHook: empty_num: {}\tmin_cluster: {}\tmax_cluster: {}",
                histogram.iter().filter(|&&h| h == 0).count(),
                histogram.iter().min().unwrap_or(&0),
                histogram.iter().max().unwrap_or(&0)
            );
        }
        runner.model = Algorithm::Odc(m);
        Ok(())
    }

    fn after_train_epoch(&mut self, runner: &mut Runner<B>) -> Result<(), TrainError> {
        // `runner.epoch` counts the finished epoch: MMSelfSup's `runner.epoch + 1`.
        if let Algorithm::Odc(m) = &runner.model {
            if runner.epoch.is_multiple_of(10) && runner.is_lead() {
                write_npy(&runner.work_dir.join(format!("cluster_epoch_{}.npy", runner.epoch)), m.memory_bank.labels())?;
            }
        }
        Ok(())
    }

    fn before_save_checkpoint(&mut self, runner: &Runner<B>, checkpoint: &mut StateDict) -> Result<(), TrainError> {
        let Algorithm::Odc(m) = &runner.model else { return Ok(()) };
        if !m.memory_bank.is_initialized() {
            return Ok(());
        }
        checkpoint.tensors.insert(FEATURE_BANK.into(), m.memory_bank.feature_bank.get().into_data());
        let labels = m.memory_bank.labels().to_vec();
        let n = labels.len();
        checkpoint.tensors.insert(LABEL_BANK.into(), TensorData::new(labels, [n]));
        Ok(())
    }

    fn after_load_checkpoint(&mut self, _runner: &mut Runner<B>, checkpoint: &mut StateDict) -> Result<(), TrainError> {
        let (Some(features), Some(labels)) = (checkpoint.tensors.remove(FEATURE_BANK), checkpoint.tensors.remove(LABEL_BANK)) else {
            return Ok(());
        };
        let labels = labels.convert::<i64>().to_vec::<i64>().map_err(|e| other(format!("bad ODC label bank in checkpoint: {e:?}")))?;
        self.restored = Some((features.convert::<f32>(), labels));
        Ok(())
    }
}
