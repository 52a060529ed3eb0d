//! `selfsup finetune`: MMSelfSup's classification benchmarks
//! (`tools/benchmarks/classification/mim_dist_train.sh CFG PRETRAIN`,
//! which runs mmcls's training with `model.backbone.init_cfg=dict(
//! type='Pretrained', checkpoint=PRETRAIN, prefix='backbone.')`): the
//! config's `ImageClassifier` trained from the pre-trained backbone, then
//! its top-`k` accuracy on the labelled evaluation data (mmcls's
//! `Accuracy`, `val_evaluator`'s `topk`, default `(1, 5)`).
use std::{path::Path, sync::Arc};

use burn::tensor::backend::{AutodiffBackend, Backend};
use selfsup_algorithms::Algorithm;
use selfsup_config::{Config, ConfigError};
use selfsup_core::SelfSupAlgorithm;
use selfsup_data::{DataLoaderConfig, Dataset};
use serde::{Deserialize, Serialize};

use crate::{
    config::LoadedConfig,
    extract::{features_with, load_model, test_pipeline},
    runner::{train, TrainOptions, TrainSummary},
    TrainError,
};

/// `dict(type='Accuracy', topk=(1, ))` (mmcls's evaluator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluatorConfig {
    /// `Accuracy` (scope prefix accepted).
    #[serde(rename = "type")]
    pub kind: String,
    /// The top-`k` accuracies reported: an int or a list. Default `(1,)`.
    #[serde(default)]
    pub topk: Option<serde_json::Value>,
    /// mmcls's `thrs`: accepted when absent or null.
    #[serde(default)]
    pub thrs: Option<serde_json::Value>,
    /// MMEngine's registry scope, accepted.
    #[serde(default, rename = "_scope_")]
    pub scope: Option<String>,
}

impl EvaluatorConfig {
    /// The `k`s, in order.
    pub fn topk(&self) -> Vec<usize> {
        match &self.topk {
            None => vec![1],
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_u64()).map(|v| v as usize).collect(),
            Some(v) => v.as_u64().map(|k| vec![k as usize]).unwrap_or_default(),
        }
    }

    /// Checks the type and the `k`s.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.kind.rsplit('.').next() != Some("Accuracy") {
            return Err(("type", format!("only Accuracy is supported, got {}", self.kind)));
        }
        let k = self.topk();
        if k.is_empty() || k.contains(&0) {
            return Err(("topk", "positive integers".into()));
        }
        if self.thrs.as_ref().is_some_and(|t| !t.is_null()) {
            return Err(("thrs", "score thresholds are not supported".into()));
        }
        Ok(())
    }
}

/// Top-`k` accuracies of a classifier on a labelled set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassAccuracy {
    /// `(k, accuracy in percent)`, in the evaluator's order.
    pub topk: Vec<(usize, f64)>,
    /// Images evaluated.
    pub num_samples: usize,
}

impl ClassAccuracy {
    /// The accuracy for `k`, when evaluated.
    pub fn top(&self, k: usize) -> Option<f64> {
        self.topk.iter().find(|(kk, _)| *kk == k).map(|(_, a)| *a)
    }
}

/// The evaluation data of a fine-tuning config: `val_dataloader`, else
/// `test_dataloader`.
pub fn eval_loader(cfg: &LoadedConfig) -> Option<&DataLoaderConfig> {
    cfg.run.val_dataloader.as_ref().or(cfg.run.test_dataloader.as_ref())
}

/// The `k`s of the config's `val_evaluator` (default `(1, 5)`).
pub fn eval_topk(cfg: &LoadedConfig) -> Vec<usize> {
    cfg.run.val_evaluator.as_ref().map(|e| e.topk()).unwrap_or_else(|| vec![1, 5])
}

/// mmcls's `Accuracy`: the share of images whose class is among the `k`
/// highest scores, in percent, for each `k` (`k` beyond the classes
/// counts every image). Ties rank the lower class first.
pub fn topk_accuracy(scores: &[f32], labels: &[usize], classes: usize, topk: &[usize]) -> Vec<(usize, f64)> {
    let n = labels.len().max(1);
    let ranks: Vec<usize> = scores
        .chunks(classes.max(1))
        .zip(labels)
        .map(|(row, &c)| row.iter().enumerate().filter(|&(j, &v)| v > row[c] || (v == row[c] && j < c)).count())
        .collect();
    topk.iter().map(|&k| (k, 100.0 * ranks.iter().filter(|&&r| r < k).count() as f64 / n as f64)).collect()
}

/// Classifies every readable image of `dl` (its pipeline, or the config's
/// test pipeline when it has none) with `model`, an `ImageClassifier`.
///
/// # Errors
/// Another model type, an image without a label, an empty set, or a
/// pipeline or model error.
pub fn evaluate<B: Backend>(
    cfg: &LoadedConfig,
    model: &Algorithm<B>,
    dl: &DataLoaderConfig,
    topk: &[usize],
    device: &B::Device,
) -> Result<ClassAccuracy, TrainError> {
    let dataset: Arc<dyn Dataset> = dl.dataset.build(None)?;
    let pipeline = if dl.dataset.pipeline().is_empty() { test_pipeline(cfg)? } else { dl.dataset.pipeline().to_vec() };
    let scores = features_with(model, dataset, &pipeline, dl.batch_size, device, |m, x| match m {
        Algorithm::ImageClassifier(c) => Ok(c.predict(x, &mut selfsup_core::Draws::seeded(0))?),
        other => Err(TrainError::Other(format!("fine-tuning evaluates an ImageClassifier, not {}", other.name()))),
    })?;
    if scores.names.is_empty() {
        return Err(TrainError::Other("the evaluation set has no readable image".into()));
    }
    let labels: Vec<usize> = scores
        .labels
        .iter()
        .zip(&scores.names)
        .map(|(l, n)| l.ok_or_else(|| TrainError::Other(format!("{n} in the evaluation set has no label (use class sub-folders)"))))
        .collect::<Result<_, _>>()?;
    Ok(ClassAccuracy { topk: topk_accuracy(&scores.feats, &labels, scores.dim, topk), num_samples: labels.len() })
}

/// Appends one line to `work_dir/scalars.json`: `accuracy/top{k}` for each
/// `k`, with the iteration and the epochs completed.
pub fn log_accuracy(work_dir: &Path, iter: usize, epoch: f64, acc: &ClassAccuracy) -> Result<(), TrainError> {
    let mut line = serde_json::json!({ "iter": iter, "epoch": epoch });
    for (k, a) in &acc.topk {
        line[format!("accuracy/top{k}")] = serde_json::json!(a);
    }
    crate::hooks::append_scalars(work_dir, &line)
}

/// Loads a fine-tuning config: the backbone's `init_cfg` set to
/// `Pretrained(checkpoint, prefix='backbone.')` when a checkpoint is given
/// (what `mim_dist_train.sh` passes), the training and evaluation datasets
/// replaced by labelled class folders when given (their pipelines kept),
/// then `options` (`--cfg-options`).
///
/// # Errors
/// An unreadable or invalid config, or a path that is not UTF-8.
pub fn load_finetune_config(
    path: &Path,
    checkpoint: Option<&Path>,
    train: Option<&Path>,
    val: Option<&Path>,
    options: &[String],
) -> Result<LoadedConfig, crate::RunConfigError> {
    let mut tree = Config::from_file(path)?;
    let utf8 = |p: &Path, key: &str| {
        p.to_str().map(String::from).ok_or_else(|| ConfigError::InvalidValue {
            file: "selfsup finetune".into(),
            key_path: key.into(),
            message: format!("{}: the path must be valid UTF-8", p.display()),
        })
    };
    if let Some(ckpt) = checkpoint {
        let ckpt = utf8(ckpt, "model.backbone.init_cfg.checkpoint")?;
        tree.set("model.backbone.init_cfg", serde_json::json!({"type": "Pretrained", "checkpoint": ckpt, "prefix": "backbone."}))?;
    }
    for (dir, loader) in [(train, "train_dataloader"), (val, "val_dataloader")] {
        let Some(dir) = dir else { continue };
        let root = utf8(dir, &format!("{loader}.dataset.data_root"))?;
        // A config without a val_dataloader evaluates with its test_dataloader's settings.
        let source = if tree.get(loader).is_some() { loader } else { "test_dataloader" };
        let pipeline = tree.get(&format!("{source}.dataset.pipeline")).cloned().unwrap_or_else(|| serde_json::json!([]));
        let dataset = serde_json::json!({ "type": "CustomDataset", "data_root": root, "with_label": true, "pipeline": pipeline });
        if tree.get(loader).is_none() {
            let batch_size = tree.get("test_dataloader.batch_size").cloned().unwrap_or_else(|| serde_json::json!(64));
            tree.set(loader, serde_json::json!({ "batch_size": batch_size, "num_workers": 2, "dataset": dataset }))?;
        } else {
            tree.set(&format!("{loader}.dataset"), dataset)?;
        }
    }
    tree.merge_options(options)?;
    LoadedConfig::from_tree(tree)
}

/// Trains the config's `ImageClassifier` (its backbone's Pretrained
/// `init_cfg` loading the pre-trained weights), then evaluates the final
/// model on `val_dataloader` (else `test_dataloader`). The result goes to
/// `scalars.json` and `eval.json` in the work dir.
///
/// # Errors
/// A config that is not an `ImageClassifier` or has no evaluation data,
/// or a training or evaluation error.
pub fn finetune<B: AutodiffBackend>(
    cfg: &LoadedConfig,
    opts: &TrainOptions,
    device: &B::Device,
) -> Result<(TrainSummary, ClassAccuracy), TrainError> {
    if cfg.run.model.name() != "ImageClassifier" {
        return Err(TrainError::Other(format!(
            "selfsup finetune trains an ImageClassifier config (configs/benchmarks/classification/), not {}",
            cfg.run.model.name()
        )));
    }
    let dl =
        eval_loader(cfg).ok_or_else(|| TrainError::Other("the config has no val_dataloader (or test_dataloader) to evaluate on".into()))?;
    let summary = train::<B>(cfg, opts, device)?;
    let model = load_model::<B>(cfg, Some(&summary.checkpoint), device)?;
    let acc = evaluate(cfg, &model, dl, &eval_topk(cfg), device)?;
    log_accuracy(&opts.work_dir, summary.iters, cfg.run.train_cfg.max_epochs.unwrap_or(0) as f64, &acc)?;
    let path = opts.work_dir.join("eval.json");
    let json = serde_json::json!({ "checkpoint": summary.checkpoint, "accuracy": acc });
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap_or_default()).map_err(|e| TrainError::Io(path, e))?;
    Ok((summary, acc))
}

#[cfg(test)]
mod tests {
    use super::topk_accuracy;

    #[test]
    fn topk_counts_ranks_and_breaks_ties_to_the_lower_class() {
        // Three images, three classes.
        let scores = [0.1, 0.7, 0.2, /**/ 0.5, 0.3, 0.2, /**/ 0.4, 0.4, 0.2];
        // Image 0 (class 2): rank 1; image 1 (class 0): rank 0; image 2 (class 1): tie with class 0, rank 1.
        let acc = topk_accuracy(&scores, &[2, 0, 1], 3, &[1, 2, 5]);
        assert_eq!(acc, [(1, 100.0 / 3.0), (2, 100.0), (5, 100.0)]);
    }
}
