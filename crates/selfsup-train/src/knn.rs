//! `selfsup knn`: MMSelfSup's weighted k-nearest-neighbour benchmark
//! (`tools/benchmarks/classification/knn_imagenet`, after DINO): global
//! features L2-normalised, cosine similarity to every training feature,
//! the `k` nearest vote for their class with weight `exp(sim / T)`, top-1
//! and top-5 accuracy in percent.
use std::path::PathBuf;

use burn::tensor::backend::{AutodiffBackend, Backend};
use selfsup_algorithms::Algorithm;
use selfsup_data::{CustomDatasetConfig, DataPrefix, DatasetConfig, SyntheticDatasetConfig};
use serde::Serialize;

use crate::{
    config::LoadedConfig,
    extract::{features, load_model, test_pipeline, Features},
    TrainError,
};

/// Where the labelled images of an evaluation (kNN, linear probe) come
/// from.
#[derive(Debug, Clone)]
pub enum LabelledData {
    /// Class sub-folders (`train/<class>/*.jpg`, `val/<class>/*.jpg`); the
    /// classes are the sorted folder names of the training folder.
    Folders {
        /// Training (memory) images.
        train: PathBuf,
        /// Evaluated images.
        val: PathBuf,
    },
    /// The built-in synthetic dataset: two disjoint draws (different
    /// seeds) of the same classes, at the config's synthetic image size
    /// when its training set is synthetic.
    Synthetic {
        /// Training samples.
        train: usize,
        /// Evaluated samples.
        val: usize,
    },
}

/// Options of [`knn`].
#[derive(Debug, Clone)]
pub struct KnnOptions {
    /// The numbers of neighbours (MMSelfSup: 10, 20, 100, 200).
    pub ks: Vec<usize>,
    /// Temperature of the vote weights (0.07).
    pub temperature: f32,
    /// Images per batch for the feature pass.
    pub batch_size: usize,
}

impl Default for KnnOptions {
    fn default() -> Self {
        Self { ks: vec![20, 200], temperature: 0.07, batch_size: 64 }
    }
}

/// The accuracy for one `k`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KnnResult {
    /// Neighbours voting.
    pub k: usize,
    /// Top-1 accuracy, percent.
    pub top1: f64,
    /// Training images (the neighbours' pool).
    pub num_train: usize,
    /// Evaluated images.
    pub num_val: usize,
    /// Top-5 accuracy, percent (top-`min(5, k)` as in MMSelfSup).
    pub top5: f64,
}

/// Extracts the features of both sets with `checkpoint` (or, with `None`,
/// the config's randomly initialised model) and classifies the evaluated
/// set, once per `k`.
///
/// # Errors
/// Unreadable weights, images without labels, an empty set, or a
/// pipeline or model error.
pub fn knn<B: AutodiffBackend>(
    cfg: &LoadedConfig,
    checkpoint_path: Option<&std::path::Path>,
    data: &LabelledData,
    opts: &KnnOptions,
    device: &B::Device,
) -> Result<Vec<KnnResult>, TrainError> {
    if let Some(k) = opts.ks.iter().find(|k| **k == 0) {
        return Err(TrainError::Other(format!("k = {k}: a kNN vote needs at least one neighbour")));
    }
    let model = load_model::<B>(cfg, checkpoint_path, device)?;
    let (train, val) = labelled_features(cfg, &model, data, opts.batch_size, device)?;
    let (num_train, num_val) = (train.labels.len(), val.labels.len());
    if let Some(k) = opts.ks.iter().find(|k| **k > num_train) {
        return Err(TrainError::Other(format!("k = {k} neighbours, but the training set has only {num_train} readable images")));
    }
    if num_val == 0 {
        return Err(TrainError::Other("the evaluated set has no readable image".into()));
    }
    let num_classes = train.labels.iter().chain(&val.labels).max().map_or(0, |m| m + 1);
    Ok(opts
        .ks
        .iter()
        .map(|&k| {
            let (top1, top5) =
                weighted_knn(&train.feats, &train.labels, &val.feats, &val.labels, train.dim, k, opts.temperature, num_classes);
            KnnResult { k, top1, top5, num_train, num_val }
        })
        .collect())
}

/// Global features of labelled samples: `[n, dim]` row-major and a class
/// per sample.
#[derive(Debug, Clone)]
pub struct LabelledFeatures {
    /// `[n, dim]`, row-major.
    pub feats: Vec<f32>,
    /// Class of each sample.
    pub labels: Vec<usize>,
    /// Feature width.
    pub dim: usize,
}

/// The training and evaluated sets of `data` through the config's test
/// pipeline and `model`'s global features.
///
/// # Errors
/// An empty set, a sample without a label, or a pipeline or model error.
pub fn labelled_features<B: Backend>(
    cfg: &LoadedConfig,
    model: &Algorithm<B>,
    data: &LabelledData,
    batch_size: usize,
    device: &B::Device,
) -> Result<(LabelledFeatures, LabelledFeatures), TrainError> {
    let (train, val) = match data {
        LabelledData::Folders { train, val } => {
            let folder = |p: &PathBuf| {
                DatasetConfig::CustomDataset(CustomDatasetConfig {
                    data_prefix: DataPrefix::Path(p.display().to_string()),
                    with_label: true,
                    ..Default::default()
                })
                .build(None)
            };
            (folder(train)?, folder(val)?)
        }
        LabelledData::Synthetic { train, val } => {
            let base = match &cfg.run.train_dataloader.dataset {
                DatasetConfig::SyntheticDataset(s) => SyntheticDatasetConfig { pipeline: Vec::new(), ..s.clone() },
                _ => SyntheticDatasetConfig::default(),
            };
            let draw = |n: usize, seed: u64| {
                DatasetConfig::SyntheticDataset(SyntheticDatasetConfig { num_samples: n, seed, ..base.clone() }).build(None)
            };
            (draw(*train, base.seed.wrapping_add(1_000_003))?, draw(*val, base.seed.wrapping_add(2_000_003))?)
        }
    };
    let pipeline = test_pipeline(cfg)?;
    let train = features(model, train, &pipeline, batch_size, device)?;
    let val = features(model, val, &pipeline, batch_size, device)?;
    let labelled = |f: Features, which: &str| -> Result<LabelledFeatures, TrainError> {
        let labels = labels_of(&f, which)?;
        Ok(LabelledFeatures { feats: f.feats, labels, dim: f.dim })
    };
    Ok((labelled(train, "training")?, labelled(val, "evaluated")?))
}

fn labels_of(f: &Features, which: &str) -> Result<Vec<usize>, TrainError> {
    if f.names.is_empty() {
        return Err(TrainError::Other(format!("the {which} set has no readable image")));
    }
    f.labels
        .iter()
        .zip(&f.names)
        .map(|(l, n)| l.ok_or_else(|| TrainError::Other(format!("{n} in the {which} set has no label (use class sub-folders)"))))
        .collect()
}

/// Weighted kNN accuracy (percent top-1, top-`min(5, k)`) of `test`
/// against `train`, both `[n, dim]` row-major; features are
/// L2-normalised here. Ties in the class scores go to the lower class.
#[allow(clippy::too_many_arguments)]
pub fn weighted_knn(
    train: &[f32],
    train_labels: &[usize],
    test: &[f32],
    test_labels: &[usize],
    dim: usize,
    k: usize,
    temperature: f32,
    num_classes: usize,
) -> (f64, f64) {
    let normalise = |x: &[f32]| -> Vec<f32> {
        x.chunks(dim)
            .flat_map(|r| {
                let n = r.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                r.iter().map(move |v| v / n)
            })
            .collect()
    };
    let (train, test) = (normalise(train), normalise(test));
    let k = k.min(train_labels.len()).max(1);
    let (mut top1, mut top5) = (0usize, 0usize);
    let mut sims: Vec<(f32, usize)> = Vec::with_capacity(train_labels.len());
    for (q, &label) in test.chunks(dim).zip(test_labels) {
        sims.clear();
        sims.extend(train.chunks(dim).enumerate().map(|(j, t)| (q.iter().zip(t).map(|(a, b)| a * b).sum::<f32>(), j)));
        sims.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        let mut scores = vec![0f64; num_classes];
        for &(s, j) in &sims[..k] {
            scores[train_labels[j]] += ((s / temperature) as f64).exp();
        }
        let mut order: Vec<usize> = (0..num_classes).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        top1 += usize::from(order[0] == label);
        top5 += usize::from(order.iter().take(5.min(k)).any(|&c| c == label));
    }
    let n = test_labels.len().max(1) as f64;
    (100.0 * top1 as f64 / n, 100.0 * top5 as f64 / n)
}

#[cfg(test)]
mod tests {
    use super::weighted_knn;

    #[test]
    fn neighbours_vote_with_exponential_weights() {
        // Two classes on two axes; the query leans to class 1 but has more
        // class-0 neighbours among its 3 nearest.
        let train = [1.0, 0.0, 0.9, 0.1, 0.95, 0.05, 0.0, 1.0, 0.1, 0.9];
        let labels = [0, 0, 0, 1, 1];
        let q = [0.2, 0.8];
        // k = 1: the nearest is class 1.
        assert_eq!(weighted_knn(&train, &labels, &q, &[1], 2, 1, 0.07, 2), (100.0, 100.0));
        // k = 5 with a hot temperature: three class-0 votes of similar weight win.
        assert_eq!(weighted_knn(&train, &labels, &q, &[1], 2, 5, 100.0, 2).0, 0.0);
        // k = 5 at T = 0.07: the two close class-1 neighbours outweigh them.
        assert_eq!(weighted_knn(&train, &labels, &q, &[1], 2, 5, 0.07, 2).0, 100.0);
    }

    #[test]
    fn top5_counts_the_label_among_the_best_five_classes() {
        // Seven classes, one sample each on its own axis; the query is
        // nearest to class 0, with class 6 sixth.
        let dim = 7;
        let mut train = vec![0f32; 7 * dim];
        for c in 0..7 {
            train[c * dim + c] = 1.0;
        }
        let q: Vec<f32> = (0..7).map(|c| 1.0 - 0.1 * c as f32).collect();
        let labels: Vec<usize> = (0..7).collect();
        assert_eq!(weighted_knn(&train, &labels, &q, &[4], dim, 7, 0.07, 7), (0.0, 100.0));
        assert_eq!(weighted_knn(&train, &labels, &q, &[6], dim, 7, 0.07, 7), (0.0, 0.0));
        // Top-5 is top-min(5, k): with k = 2 only the two best classes count.
        assert_eq!(weighted_knn(&train, &labels, &q, &[4], dim, 2, 0.07, 7), (0.0, 0.0));
    }
}
