//! `RepresentationMonitorHook` (ours; solo-learn's online kNN and lightly's
//! collapse signal): every `interval` epochs, the model in eval mode embeds
//! a held-out set with its global features (the ones `selfsup knn` uses)
//! and the hook writes, into `scalars.json` with the iteration and epoch:
//!
//! - `rankme`: the features' effective rank ([`crate::representation::rankme`]);
//! - `embedding_std`: the mean per-dimension standard deviation of the
//!   L2-normalised features ([`crate::representation::embedding_std`]),
//!   near `1/√dim` when healthy and 0 at collapse;
//! - with a labelled `knn_dataloader` (the neighbours) and a labelled
//!   `val_dataloader`: `knn_top1_k{k}` for each `k`, the weighted kNN vote
//!   of `selfsup knn`.
//!
//! `selfsup plot` draws them (`rankme.png`, `embedding_std.png`,
//! `knn.png`). Measured before the first iteration when `initial`, after
//! every `interval`-th epoch, and after the last iteration when that was
//! not measured yet. Only the lead replica measures; the hook keeps no
//! state, so a resumed run measures as the uninterrupted one.
use std::sync::Arc;

use burn::{module::AutodiffModule, tensor::backend::AutodiffBackend};
use selfsup_data::{DataLoaderConfig, Dataset};
use serde::{Deserialize, Serialize};

use super::Hook;
use crate::{
    extract::{features, test_pipeline, Features},
    knn::weighted_knn,
    representation::{embedding_std, rankme},
    runner::Runner,
    TrainError,
};

/// `dict(type='RepresentationMonitorHook', val_dataloader, knn_dataloader=None,
/// interval=1, k=[20], temperature=0.07, initial=True)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepresentationMonitorHookConfig {
    /// The held-out images measured (RankMe and the standard deviation need
    /// no labels; kNN needs them). An empty `pipeline` takes the config's
    /// test pipeline (`selfsup knn`'s). Keep it small: RankMe decomposes a
    /// `min(n, dim)`-square matrix on the host.
    pub val_dataloader: DataLoaderConfig,
    /// The kNN's neighbours, labelled; without it no kNN is measured.
    #[serde(default)]
    pub knn_dataloader: Option<DataLoaderConfig>,
    /// Epochs between measurements. Default 1.
    #[serde(default = "one")]
    pub interval: usize,
    /// The kNN's numbers of neighbours. Default `[20]`.
    #[serde(default = "k20")]
    pub k: Vec<usize>,
    /// The kNN vote's temperature. Default 0.07.
    #[serde(default = "t007")]
    pub temperature: f32,
    /// Also measure before the first iteration (the initialisation's
    /// baseline). Default `true`.
    #[serde(default = "yes")]
    pub initial: bool,
}

fn one() -> usize {
    1
}
fn k20() -> Vec<usize> {
    vec![20]
}
fn t007() -> f32 {
    0.07
}
fn yes() -> bool {
    true
}

impl RepresentationMonitorHookConfig {
    /// Checks the fields; `(key, message)` for the first bad one.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.interval == 0 {
            return Err(("interval", "must be at least 1".into()));
        }
        if self.k.contains(&0) {
            return Err(("k", "a kNN vote needs at least one neighbour".into()));
        }
        if self.temperature <= 0.0 {
            return Err(("temperature", "must be positive".into()));
        }
        Ok(())
    }
}

/// One measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// RankMe of the held-out features.
    pub rankme: f64,
    /// Their collapse signal.
    pub embedding_std: f64,
    /// `(k, top-1 %)` per `k`, when the kNN is measured.
    pub knn_top1: Vec<(usize, f64)>,
    /// Feature width.
    pub dim: usize,
    /// Held-out samples measured.
    pub num_val: usize,
}

/// The hook; see the module documentation.
#[derive(Debug)]
pub struct RepresentationMonitorHook {
    cfg: RepresentationMonitorHookConfig,
    /// The iteration last measured.
    last: Option<usize>,
}

impl RepresentationMonitorHook {
    /// The hook of `cfg`.
    pub fn new(cfg: RepresentationMonitorHookConfig) -> Self {
        Self { cfg, last: None }
    }

    /// Embeds the held-out set (and the kNN's neighbours) with the current
    /// model in eval mode and measures them.
    ///
    /// # Errors
    /// A dataset or pipeline error, an empty set, or a kNN whose samples
    /// lack labels or whose `k` exceeds the neighbours.
    pub fn measure<B: AutodiffBackend>(&self, runner: &Runner<B>) -> Result<Measurement, TrainError> {
        let model = runner.model.valid();
        let device = runner.device();
        let embed = |dl: &DataLoaderConfig| -> Result<Features, TrainError> {
            let dataset: Arc<dyn Dataset> = dl.dataset.build(None)?;
            let pipeline = if dl.dataset.pipeline().is_empty() { test_pipeline(&runner.cfg)? } else { dl.dataset.pipeline().to_vec() };
            features(&model, dataset, &pipeline, dl.batch_size, device)
        };
        let val = embed(&self.cfg.val_dataloader)?;
        let n = val.indices.len();
        if n < 2 {
            return Err(TrainError::Other(format!("RepresentationMonitorHook: {n} readable held-out samples; it needs at least 2")));
        }
        let mut m = Measurement {
            rankme: rankme(&val.feats, n, val.dim),
            embedding_std: embedding_std(&val.feats, n, val.dim),
            knn_top1: Vec::new(),
            dim: val.dim,
            num_val: n,
        };
        if let Some(dl) = &self.cfg.knn_dataloader {
            let train = embed(dl)?;
            let labels = |f: &Features, which: &str| -> Result<Vec<usize>, TrainError> {
                f.labels
                    .iter()
                    .zip(&f.names)
                    .map(|(l, name)| {
                        l.ok_or_else(|| TrainError::Other(format!("RepresentationMonitorHook: {name} in the {which} set has no label")))
                    })
                    .collect()
            };
            let (train_labels, val_labels) = (labels(&train, "kNN")?, labels(&val, "held-out")?);
            if let Some(k) = self.cfg.k.iter().find(|&&k| k > train_labels.len()) {
                return Err(TrainError::Other(format!(
                    "RepresentationMonitorHook: k = {k} neighbours, but knn_dataloader has {} readable samples",
                    train_labels.len()
                )));
            }
            let classes = train_labels.iter().chain(&val_labels).max().map_or(0, |c| c + 1);
            for &k in &self.cfg.k {
                let (top1, _) =
                    weighted_knn(&train.feats, &train_labels, &val.feats, &val_labels, val.dim, k, self.cfg.temperature, classes);
                m.knn_top1.push((k, top1));
            }
        }
        Ok(m)
    }

    fn record<B: AutodiffBackend>(&mut self, runner: &Runner<B>) -> Result<(), TrainError> {
        if self.last == Some(runner.iter) || !runner.is_lead() {
            return Ok(());
        }
        self.last = Some(runner.iter);
        let m = self.measure(runner)?;
        // Epochs completed, fractional inside an epoch.
        let epoch = runner.epoch as f64 + runner.batch_in_epoch as f64 / runner.epoch_length.max(1) as f64;
        let mut line = serde_json::json!({
            "iter": runner.iter, "epoch": epoch, "rankme": m.rankme, "embedding_std": m.embedding_std,
        });
        let mut knn = String::new();
        for (k, top1) in &m.knn_top1 {
            line[format!("knn_top1_k{k}")] = serde_json::json!(top1);
            knn.push_str(&format!(", kNN top-1 (k={k}) {top1:.2} %"));
        }
        super::logger_hook::append_scalars(&runner.work_dir, &line)?;
        eprintln!(
            "RepresentationMonitorHook: iter {} epoch {epoch:.2}: RankMe {:.2} of {} ({} samples), embedding std {:.4} (1/√dim = {:.4}){knn}",
            runner.iter,
            m.rankme,
            m.dim.min(m.num_val),
            m.num_val,
            m.embedding_std,
            1.0 / (m.dim as f64).sqrt(),
        );
        Ok(())
    }
}

impl<B: AutodiffBackend> Hook<B> for RepresentationMonitorHook {
    fn before_train(&mut self, runner: &mut Runner<B>) -> Result<(), TrainError> {
        if self.cfg.initial && runner.iter == 0 {
            self.record(runner)?;
        }
        Ok(())
    }

    fn after_train_epoch(&mut self, runner: &mut Runner<B>) -> Result<(), TrainError> {
        // `runner.epoch` counts the finished epochs here.
        if runner.epoch.is_multiple_of(self.cfg.interval) {
            self.record(runner)?;
        }
        Ok(())
    }

    fn after_train(&mut self, runner: &mut Runner<B>) -> Result<(), TrainError> {
        self.record(runner)
    }
}
