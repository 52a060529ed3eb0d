//! The run config: MMSelfSup's top-level layout, typed.
use std::path::Path;

use selfsup_algorithms::AlgorithmConfig;
use selfsup_config::{Config, ConfigError};
use selfsup_data::DataLoaderConfig;
use serde::{Deserialize, Serialize};

pub use crate::finetune::EvaluatorConfig;
pub use crate::hooks::{
    ClusteringConfig, CustomHookConfig, DeepClusterHookConfig, DenseClHookConfig, OdcHookConfig, SimSiamHookConfig, SwAVHookConfig,
};
use crate::{optim::OptimWrapperConfig, schedule::SchedulerConfig};

/// `train_cfg`: MMEngine's loops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainCfg {
    /// `EpochBasedTrainLoop` (the default) or `IterBasedTrainLoop`.
    #[serde(rename = "type", default)]
    pub kind: TrainLoop,
    /// Epochs (epoch-based loops).
    #[serde(default)]
    pub max_epochs: Option<usize>,
    /// Iterations: the length of an iteration-based loop, or a cap on an
    /// epoch-based one (`--cfg-options train_cfg.max_iters=20`).
    #[serde(default)]
    pub max_iters: Option<usize>,
    /// Validation interval (no validation loop in pre-training; accepted).
    #[serde(default)]
    pub val_interval: Option<usize>,
}

/// MMEngine's training loops, by their `type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TrainLoop {
    /// `EpochBasedTrainLoop`: `max_epochs` passes over the data.
    #[default]
    #[serde(rename = "EpochBasedTrainLoop")]
    EpochBased,
    /// `IterBasedTrainLoop`: `max_iters` iterations.
    #[serde(rename = "IterBasedTrainLoop")]
    IterBased,
}

/// `default_hooks` that the engine honours; the other MMEngine hooks
/// (`runtime_info`, `timer`, `param_scheduler`, `sampler_seed`) are built in.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultHooks {
    /// `logger = dict(type='LoggerHook', interval=50)`.
    #[serde(default)]
    pub logger: Option<LoggerHook>,
    /// `checkpoint = dict(type='CheckpointHook', interval=10, max_keep_ckpts=3)`.
    #[serde(default)]
    pub checkpoint: Option<CheckpointHook>,
    /// Built in; accepted.
    #[serde(default)]
    pub runtime_info: Option<serde_json::Value>,
    /// Built in; accepted.
    #[serde(default)]
    pub timer: Option<serde_json::Value>,
    /// Built in; accepted.
    #[serde(default)]
    pub param_scheduler: Option<serde_json::Value>,
    /// Built in; accepted.
    #[serde(default)]
    pub sampler_seed: Option<serde_json::Value>,
    /// Visualisation hook; accepted.
    #[serde(default)]
    pub visualization: Option<serde_json::Value>,
}

/// `LoggerHook`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggerHook {
    /// Hook type.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Log every `interval` iterations.
    #[serde(default = "fifty")]
    pub interval: usize,
    /// Accepted: the last iteration is always logged.
    #[serde(default)]
    pub ignore_last: Option<bool>,
    /// Accepted, no effect.
    #[serde(default)]
    pub log_metric_by_epoch: Option<bool>,
    /// Accepted, no effect (no experiment-name prefix).
    #[serde(default)]
    pub interval_exp_name: Option<usize>,
}

fn fifty() -> usize {
    50
}

/// `CheckpointHook`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointHook {
    /// Hook type.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Save every `interval` epochs (or iterations when `by_epoch = false`).
    #[serde(default = "minus_one")]
    pub interval: i64,
    /// Count `interval` in epochs.
    #[serde(default = "yes")]
    pub by_epoch: bool,
    /// Keep only the newest K checkpoints (-1: all).
    #[serde(default = "minus_one")]
    pub max_keep_ckpts: i64,
    /// Accepted when true (the optimiser state is always saved).
    #[serde(default)]
    pub save_optimizer: Option<bool>,
    /// Accepted when true (schedules are replayed from the iteration).
    #[serde(default)]
    pub save_param_scheduler: Option<bool>,
    /// Accepted when true (the last checkpoint is always saved).
    #[serde(default)]
    pub save_last: Option<bool>,
}

fn minus_one() -> i64 {
    -1
}
fn yes() -> bool {
    true
}

/// `randomness = dict(seed=0, diff_rank_seed=True)`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Randomness {
    /// The run's seed (0 when absent).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Different seeds per rank (single-device runs: no effect).
    #[serde(default)]
    pub diff_rank_seed: bool,
    /// Deterministic kernels (the CPU backends always are).
    #[serde(default)]
    pub deterministic: bool,
}

/// A whole run config in MMSelfSup's layout.
///
/// Keys that only steer MMEngine's runtime (`env_cfg`, `visualizer`,
/// `log_processor`, ...) are accepted and have no effect here; the same
/// goes for the Python variables MMSelfSup's config files define at top
/// level (`dataset_type`, `data_root`, `train_pipeline`, `optimizer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// `model = dict(type=..., ...)`.
    pub model: AlgorithmConfig,
    /// The training data.
    pub train_dataloader: DataLoaderConfig,
    /// The feature-extraction data (resize, center crop); optional.
    #[serde(default)]
    pub test_dataloader: Option<DataLoaderConfig>,
    /// Labelled evaluation data (fine-tuning: top-1/top-5 every
    /// `train_cfg.val_interval` epochs and after training); optional.
    #[serde(default)]
    pub val_dataloader: Option<DataLoaderConfig>,
    /// `val_evaluator = dict(type='Accuracy', topk=(1, 5))`.
    #[serde(default)]
    pub val_evaluator: Option<EvaluatorConfig>,
    /// `test_evaluator`: accepted (evaluation uses `val_evaluator`).
    #[serde(default)]
    pub test_evaluator: Option<serde_json::Value>,
    /// `val_cfg = dict()`: accepted.
    #[serde(default)]
    pub val_cfg: Option<serde_json::Value>,
    /// `test_cfg = dict()`: accepted.
    #[serde(default)]
    pub test_cfg: Option<serde_json::Value>,
    /// mmcls's top-level `data_preprocessor` variable: when the model has
    /// none, it becomes `model.data_preprocessor` (as MMEngine's runner does).
    #[serde(default)]
    pub data_preprocessor: Option<serde_json::Value>,
    /// The optimiser.
    pub optim_wrapper: OptimWrapperConfig,
    /// The schedules.
    #[serde(default)]
    pub param_scheduler: Vec<SchedulerConfig>,
    /// The loop.
    pub train_cfg: TrainCfg,
    /// Logging and checkpoint hooks.
    #[serde(default)]
    pub default_hooks: DefaultHooks,
    /// Seeds.
    #[serde(default)]
    pub randomness: Randomness,
    /// Where outputs go (the CLI's `--work-dir` wins).
    #[serde(default)]
    pub work_dir: Option<String>,
    /// Weights to load before training (an MMSelfSup `.pth` or ours).
    #[serde(default)]
    pub load_from: Option<String>,
    /// Resume from the latest checkpoint in the work dir.
    #[serde(default)]
    pub resume: bool,
    /// `auto_scale_lr = dict(base_batch_size=..., enable=...)`; only
    /// `enable = false` is honoured.
    #[serde(default)]
    pub auto_scale_lr: Option<serde_json::Value>,
    /// MMEngine runtime keys, accepted without effect.
    #[serde(default)]
    pub default_scope: Option<String>,
    /// Accepted without effect.
    #[serde(default)]
    pub env_cfg: Option<serde_json::Value>,
    /// Accepted without effect.
    #[serde(default)]
    pub log_processor: Option<serde_json::Value>,
    /// Accepted without effect.
    #[serde(default)]
    pub vis_backends: Option<serde_json::Value>,
    /// Accepted without effect.
    #[serde(default)]
    pub visualizer: Option<serde_json::Value>,
    /// The pipeline MMSelfSup's `visualize_reconstruction.py
    /// --use-vis-pipeline` reads; accepted without effect.
    #[serde(default)]
    pub vis_pipeline: Option<serde_json::Value>,
    /// Accepted without effect.
    #[serde(default)]
    pub log_level: Option<String>,
    /// Accepted without effect.
    #[serde(default)]
    pub launcher: Option<String>,
    /// MMSelfSup's algorithm hooks (`SwAVHook`, `DenseCLHook`, `SimSiamHook`).
    #[serde(default)]
    pub custom_hooks: Vec<CustomHookConfig>,
    /// DDP's unused-parameter search: one device has none to search; accepted.
    #[serde(default)]
    pub find_unused_parameters: Option<bool>,
    /// Config-file variable, accepted without effect.
    #[serde(default)]
    pub dataset_type: Option<String>,
    /// Config-file variable, accepted without effect.
    #[serde(default)]
    pub data_root: Option<String>,
    /// Config-file variable, accepted without effect.
    #[serde(default)]
    pub train_pipeline: Option<serde_json::Value>,
    /// Config-file variable of mmcls's ImageNet bases, accepted without effect.
    #[serde(default)]
    pub bgr_mean: Option<serde_json::Value>,
    /// Config-file variable of mmcls's ImageNet bases, accepted without effect.
    #[serde(default)]
    pub bgr_std: Option<serde_json::Value>,
    /// Config-file variable, accepted without effect.
    #[serde(default)]
    pub test_pipeline: Option<serde_json::Value>,
    /// Config-file variable, accepted without effect.
    #[serde(default)]
    pub optimizer: Option<serde_json::Value>,
    /// Config-file variable, accepted without effect.
    #[serde(default)]
    pub file_client_args: Option<serde_json::Value>,
    /// Config-file variable (`num_classes` of the clustering datasets), accepted without effect.
    #[serde(default)]
    pub num_classes: Option<serde_json::Value>,
}

/// A loaded, decoded and validated run config, with the tree it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The resolved tree (bases merged, options applied).
    pub tree: Config,
    /// The typed config.
    pub run: RunConfig,
}

/// Errors of loading a run config.
#[derive(Debug, thiserror::Error)]
pub enum RunConfigError {
    /// Reading, merging or decoding failed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A field cannot be honoured.
    #[error("{file}: {key}: {message}")]
    Invalid {
        /// The config file.
        file: String,
        /// The key path.
        key: String,
        /// Why.
        message: String,
    },
}

/// Replaces `train_dataloader.dataset` by a `CustomDataset` reading every image under `dir`
/// (recursively, unlabelled: `with_label = false`), keeping the config's pipeline. The
/// whole block is replaced, so the previous dataset's own keys (`ann_file`, `num_samples`,
/// ...) do not linger; `--cfg-options` can still change the new block afterwards. A hook's
/// `extract_dataloader.dataset` (DeepCluster's extraction) reads the same folder.
pub fn use_image_folder(tree: &mut Config, dir: &Path) -> Result<(), ConfigError> {
    let pipeline = tree.get("train_dataloader.dataset.pipeline").cloned().unwrap_or_else(|| serde_json::json!([]));
    let root = dir.to_str().ok_or_else(|| ConfigError::InvalidValue {
        file: "--data".into(),
        key_path: "train_dataloader.dataset.data_root".into(),
        message: format!("{}: the folder's path must be valid UTF-8", dir.display()),
    })?;
    let dataset = serde_json::json!({ "type": "CustomDataset", "data_root": root, "with_label": false, "pipeline": pipeline });
    tree.set("train_dataloader.dataset", dataset)?;
    // Hooks that read the training images again (DeepCluster's extraction) read the folder too.
    let hooks = tree.get("custom_hooks").and_then(|h| h.as_array()).map_or(0, Vec::len);
    for i in 0..hooks {
        let key = format!("custom_hooks.{i}.extract_dataloader.dataset");
        if let Some(pipeline) = tree.get(&format!("{key}.pipeline")).cloned() {
            let dataset = serde_json::json!({ "type": "CustomDataset", "data_root": root, "with_label": false, "pipeline": pipeline });
            tree.set(&key, dataset)?;
        }
    }
    Ok(())
}

impl LoadedConfig {
    /// Loads `path` (TOML, JSON or YAML with `_base_`), applies
    /// `--cfg-options`, decodes and validates everything the engine must
    /// honour, so a bad field fails now and not at iteration 1000.
    pub fn load(path: &Path, options: &[String]) -> Result<Self, RunConfigError> {
        let mut tree = Config::from_file(path)?;
        tree.merge_options(options)?;
        Self::from_tree(tree)
    }

    /// [`LoadedConfig::load`] with the training data replaced by a folder of images first
    /// (`selfsup train --data DIR`, see [`use_image_folder`]); `options` apply after it.
    pub fn load_with_data(path: &Path, data: Option<&Path>, options: &[String]) -> Result<Self, RunConfigError> {
        let mut tree = Config::from_file(path)?;
        if let Some(dir) = data {
            use_image_folder(&mut tree, dir)?;
        }
        tree.merge_options(options)?;
        Self::from_tree(tree)
    }

    /// Decodes and validates an already resolved tree.
    pub fn from_tree(mut tree: Config) -> Result<Self, RunConfigError> {
        // MMEngine's runner: `model.setdefault('data_preprocessor', cfg.data_preprocessor)`.
        if let Some(dp) = tree.get("data_preprocessor").cloned() {
            if tree.get("model.data_preprocessor").is_none() && tree.get("model").is_some() {
                tree.set("model.data_preprocessor", dp)?;
            }
        }
        // MMEngine's `build_train_loop`: without a `type`, `by_epoch` picks the loop.
        if let Some(serde_json::Value::Object(mut train_cfg)) = tree.get("train_cfg").cloned() {
            if !train_cfg.contains_key("type") {
                if let Some(by_epoch) = train_cfg.remove("by_epoch") {
                    let kind = if by_epoch.as_bool() == Some(false) { "IterBasedTrainLoop" } else { "EpochBasedTrainLoop" };
                    train_cfg.insert("type".into(), kind.into());
                    tree.set("train_cfg", serde_json::Value::Object(train_cfg))?;
                }
            }
        }
        let run: RunConfig = tree.decode()?;
        let file = tree.file().to_string();
        let invalid = |key: String, message: String| RunConfigError::Invalid { file: file.clone(), key, message };
        run.model.validate().map_err(|i| invalid(format!("model.{}", i.key), i.message))?;
        run.optim_wrapper.validate().map_err(|(k, m)| invalid(k, m))?;
        if run.train_dataloader.batch_size == 0 {
            return Err(invalid("train_dataloader.batch_size".into(), "must be at least 1".into()));
        }
        if let selfsup_data::DatasetConfig::SyntheticDataset(d) = &run.train_dataloader.dataset {
            if d.num_samples == 0 {
                return Err(invalid("train_dataloader.dataset.num_samples".into(), "must be at least 1".into()));
            }
        }
        if run.train_cfg.max_epochs == Some(0) || run.train_cfg.max_iters == Some(0) {
            let key = if run.train_cfg.max_iters == Some(0) { "train_cfg.max_iters" } else { "train_cfg.max_epochs" };
            return Err(invalid(key.into(), "must be at least 1: a run of no iterations trains nothing".into()));
        }
        run.model.check_batch_size(run.train_dataloader.batch_size).map_err(|m| invalid("train_dataloader.batch_size".into(), m))?;
        if let Some(e) = &run.val_evaluator {
            e.validate().map_err(|(k, m)| invalid(format!("val_evaluator.{k}"), m))?;
        }
        if run.val_dataloader.as_ref().is_some_and(|v| v.batch_size == 0) {
            return Err(invalid("val_dataloader.batch_size".into(), "must be at least 1".into()));
        }
        for (i, hook) in run.custom_hooks.iter().enumerate() {
            let (needs, name): (&[&str], _) = match hook {
                CustomHookConfig::SwAV(_) => (&["SwAV"], "SwAVHook"),
                CustomHookConfig::DenseCl(_) => (&["DenseCL"], "DenseCLHook"),
                CustomHookConfig::SimSiam(_) => (&["SimSiam"], "SimSiamHook"),
                CustomHookConfig::DeepCluster(_) => (&["DeepCluster", "ODC"], "DeepClusterHook"),
                CustomHookConfig::Odc(_) => (&["ODC"], "ODCHook"),
                CustomHookConfig::DinoTeacherTempWarmup(h) => {
                    h.validate().map_err(|(k, m)| invalid(format!("custom_hooks.{i}.{k}"), m))?;
                    (&["DINO"], "DINOTeacherTempWarmupHook")
                }
                CustomHookConfig::RepresentationMonitor(h) => {
                    h.validate().map_err(|(k, m)| invalid(format!("custom_hooks.{i}.{k}"), m))?;
                    (&[], "RepresentationMonitorHook")
                }
            };
            if !needs.is_empty() && !needs.contains(&run.model.name()) {
                return Err(invalid(
                    format!("custom_hooks.{i}.type"),
                    format!("{name} drives {}, but model.type is {}", needs.join(" or "), run.model.name()),
                ));
            }
            if let CustomHookConfig::DeepCluster(h) = hook {
                let odc = run.model.name() == "ODC";
                if h.init_memory != odc {
                    return Err(invalid(
                        format!("custom_hooks.{i}.init_memory"),
                        format!("must be {odc} for {}: only ODC has a memory to initialise", run.model.name()),
                    ));
                }
            }
            if let (CustomHookConfig::SwAV(h), AlgorithmConfig::SwAV(m)) = (hook, &run.model) {
                let SwAVConfigView { feat_dim, crops_for_assign } = swav_view(m);
                if h.feat_dim != feat_dim {
                    return Err(invalid(
                        format!("custom_hooks.{i}.feat_dim"),
                        format!("{} does not match model.head.loss.feat_dim {feat_dim}", h.feat_dim),
                    ));
                }
                if h.crops_for_assign != crops_for_assign {
                    return Err(invalid(
                        format!("custom_hooks.{i}.crops_for_assign"),
                        "does not match model.head.loss.crops_for_assign".into(),
                    ));
                }
            }
        }
        for needed in run.model.required_hooks() {
            if !run.custom_hooks.iter().any(|h| h.type_name() == *needed) {
                return Err(invalid(
                    "custom_hooks".into(),
                    format!("{} trains only with a {needed}; add dict(type='{needed}', ...)", run.model.name()),
                ));
            }
        }
        for (i, s) in run.param_scheduler.iter().enumerate() {
            s.validate().map_err(|m| invalid(format!("param_scheduler.{i}"), m))?;
        }
        match run.train_cfg.kind {
            TrainLoop::EpochBased => {
                if run.train_cfg.max_epochs.is_none() && run.train_cfg.max_iters.is_none() {
                    return Err(invalid("train_cfg.max_epochs".into(), "an EpochBasedTrainLoop needs max_epochs".into()));
                }
            }
            TrainLoop::IterBased => {
                if run.train_cfg.max_iters.is_none() {
                    return Err(invalid("train_cfg.max_iters".into(), "an IterBasedTrainLoop needs max_iters".into()));
                }
            }
        }
        if let Some(c) = &run.default_hooks.checkpoint {
            for (key, v) in
                [("save_optimizer", c.save_optimizer), ("save_param_scheduler", c.save_param_scheduler), ("save_last", c.save_last)]
            {
                if v == Some(false) {
                    return Err(invalid(
                        format!("default_hooks.checkpoint.{key}"),
                        "only true is supported: checkpoints always hold everything needed to resume".into(),
                    ));
                }
            }
        }
        if let Some(v) = &run.auto_scale_lr {
            if v.get("enable").and_then(|e| e.as_bool()).unwrap_or(false) {
                return Err(invalid("auto_scale_lr.enable".into(), "automatic lr scaling is not supported; scale lr yourself".into()));
            }
        }
        Ok(Self { tree, run })
    }
}

struct SwAVConfigView {
    feat_dim: usize,
    crops_for_assign: Vec<usize>,
}

fn swav_view(m: &selfsup_algorithms::SwAVConfig) -> SwAVConfigView {
    let loss = m.loss_config();
    SwAVConfigView { feat_dim: loss.feat_dim, crops_for_assign: loss.crops_for_assign.clone() }
}
