//! `selfsup finetune`: MMSelfSup's classification benchmark of a
//! pre-trained backbone (`mim_dist_train.sh CFG PRETRAIN`), then its
//! top-`k` accuracy.
use std::path::PathBuf;

use anyhow::{anyhow, Result};
use selfsup::{
    train::{
        finetune::{finetune, load_finetune_config},
        Resume, TrainOptions,
    },
    with_backend,
};

use crate::{config_name, BackendArgs};

#[derive(clap::Args)]
pub struct FinetuneArgs {
    /// A fine-tuning config (`model.type = "ImageClassifier"`, e.g. under
    /// configs/benchmarks/classification/).
    pub config: PathBuf,
    /// The pre-trained weights (a selfsup checkpoint or an MMSelfSup
    /// `.pth`): their `backbone.` tensors initialise the backbone. Without
    /// it, the backbone trains from its random initialisation (the baseline).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Training images in class sub-folders (replaces the config's training dataset).
    #[arg(long)]
    pub train: Option<PathBuf>,
    /// Evaluated images in class sub-folders (replaces the config's val dataset).
    #[arg(long)]
    pub val: Option<PathBuf>,
    /// Output folder; default `work_dirs/<config name>`.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Override config keys.
    #[arg(long, num_args = 1..)]
    pub cfg_options: Vec<String>,
    /// No progress bar: print a log line every logger interval instead.
    #[arg(long)]
    pub no_progress: bool,
    /// Print the accuracies as one JSON line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// `selfsup finetune`.
pub fn finetune_cmd(args: FinetuneArgs) -> Result<()> {
    let FinetuneArgs { config, checkpoint, train, val, work_dir, cfg_options, no_progress, json, backend } = args;
    let cfg = load_finetune_config(&config, checkpoint.as_deref(), train.as_deref(), val.as_deref(), &cfg_options)?;
    let work_dir = work_dir
        .or_else(|| cfg.run.work_dir.as_ref().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("work_dirs").join(config.file_stem().map(|s| s.to_os_string()).unwrap_or_default()));
    let opts = TrainOptions { work_dir: work_dir.clone(), resume: Resume::No, progress: !no_progress, config_name: config_name(&config) };
    let (summary, acc) = with_backend!(backend.backend.as_str(), &backend.device, |B, device| { finetune::<B>(&cfg, &opts, &device) })
        .map_err(|e| anyhow!(e))??;
    if json {
        println!("{}", serde_json::to_string(&serde_json::json!({ "checkpoint": summary.checkpoint, "accuracy": acc }))?);
    } else {
        let list: Vec<String> = acc.topk.iter().map(|(k, a)| format!("top-{k} {a:.2} %")).collect();
        println!("fine-tuned {} iterations: {} ({} images)", summary.iters, list.join(", "), acc.num_samples);
        println!("checkpoint: {}", summary.checkpoint.display());
        println!("results: {}", work_dir.join("eval.json").display());
    }
    Ok(())
}
