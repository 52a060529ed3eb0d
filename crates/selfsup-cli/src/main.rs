//! `selfsup`: train, inspect, convert, extract and benchmark MMSelfSup
//! configs. Run `selfsup --help`.
mod convert;
mod finetune;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use clap::{Parser, Subcommand};
use selfsup::{
    config::Config,
    train::{
        bench::bench,
        extract::extract,
        knn::{knn, KnnOptions, LabelledData},
        linear_probe::{linear_probe, LinearProbeOptions, ProbeOptimizer},
        visualize::{visualize_reconstruction, VisualizeOptions},
        LoadedConfig, Resume, TrainOptions,
    },
    viz::{plot_log, PlotOptions},
    with_backend,
};

#[derive(Parser)]
#[command(name = "selfsup", version, about = "Self-supervised visual pre-training (MMSelfSup) in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Decompression-bomb limit, as Pillow's `MAX_IMAGE_PIXELS`: an image whose header
    /// declares more pixels is decoded with a warning, one with more than twice as many is
    /// skipped. `none` for no limit. Default 89478485 (Pillow's), or the
    /// `SELFSUP_MAX_IMAGE_PIXELS` environment variable.
    #[arg(long, global = true, value_parser = parse_pixel_limit)]
    max_image_pixels: Option<PixelLimit>,
}

/// `--max-image-pixels`: a count, or `none`.
#[derive(Clone, Copy, Debug)]
struct PixelLimit(Option<u64>);

fn parse_pixel_limit(s: &str) -> Result<PixelLimit, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "none" | "off" => Ok(PixelLimit(None)),
        n => n
            .parse::<u64>()
            .map(|n| PixelLimit(Some(n).filter(|&n| n > 0)))
            .map_err(|_| format!("expected a pixel count or `none`, got `{s}`")),
    }
}

/// The error and its causes, each said once: a cause whose text the message already
/// contains (`{path}: {source}` above its own `source`) is not repeated.
fn render_error(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// The model and labelled data of `knn` and `linear-probe`.
#[derive(clap::Args, Clone)]
struct EvalArgs {
    /// The config (its model and test pipeline).
    config: PathBuf,
    /// Weights; without, the randomly initialised model (a baseline).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Training images in class sub-folders (with `--val`).
    #[arg(long, requires = "val")]
    train: Option<PathBuf>,
    /// Evaluated images in class sub-folders (with `--train`).
    #[arg(long, requires = "train")]
    val: Option<PathBuf>,
    /// Synthetic training samples, when no folders are given.
    #[arg(long, default_value_t = 1024)]
    num_train: usize,
    /// Synthetic evaluated samples, when no folders are given.
    #[arg(long, default_value_t = 512)]
    num_val: usize,
    /// Override config keys.
    #[arg(long, num_args = 1..)]
    cfg_options: Vec<String>,
}

impl EvalArgs {
    /// The loaded config and where its labelled images come from.
    fn load(&self) -> Result<(LoadedConfig, LabelledData)> {
        let cfg = LoadedConfig::load(&self.config, &self.cfg_options)?;
        let data = match (&self.train, &self.val) {
            (Some(train), Some(val)) => LabelledData::Folders { train: train.clone(), val: val.clone() },
            _ => LabelledData::Synthetic { train: self.num_train, val: self.num_val },
        };
        Ok((cfg, data))
    }
}

#[derive(clap::Args, Clone)]
struct BackendArgs {
    /// Backend: flex (pure-Rust CPU), tch (libtorch), wgpu, cuda; compiled ones only.
    #[arg(long, value_enum, default_value_t = default_backend())]
    backend: BackendName,
    /// Device: `cpu`, `cuda:N` for tch and cuda, `discrete:N` for wgpu.
    /// `selfsup train` takes a comma-separated list for data-parallel
    /// training: `--device cuda:0,cuda:1`.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// The backends a build may have; `with_backend!` says when one is not compiled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendName {
    /// burn-flex, pure-Rust CPU.
    Flex,
    /// burn-tch, libtorch (CPU or CUDA).
    Tch,
    /// burn-wgpu (Vulkan, Metal, DX12).
    Wgpu,
    /// burn-cuda (CubeCL).
    Cuda,
}

impl BackendName {
    fn as_str(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Tch => "tch",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        }
    }
}

impl std::fmt::Display for BackendName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first compiled backend.
fn default_backend() -> BackendName {
    match selfsup::backend::available().first().copied() {
        Some("tch") => BackendName::Tch,
        Some("wgpu") => BackendName::Wgpu,
        Some("cuda") => BackendName::Cuda,
        _ => BackendName::Flex,
    }
}

/// `selfsup linear-probe --optimizer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ProbeOptimizerArg {
    /// SGD with momentum 0.9.
    Sgd,
    /// MMSelfSup's LARS with momentum 0.9.
    Lars,
}

/// `selfsup config --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ConfigFormat {
    /// TOML.
    Toml,
    /// JSON, indented.
    Json,
    /// YAML.
    Yaml,
}

#[derive(Subcommand)]
enum Command {
    /// Train a config (MMSelfSup's `tools/train.py`).
    Train(TrainArgs),
    /// Print the resolved config (bases merged, options applied).
    Config {
        /// The config file.
        config: PathBuf,
        /// Override config keys.
        #[arg(long, num_args = 1..)]
        cfg_options: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ConfigFormat::Toml)]
        format: ConfigFormat,
    },
    /// Convert a checkpoint (MMSelfSup `.pth` or ours) to safetensors with
    /// PyTorch key names; with `--config`, check it against the model first.
    Convert(convert::ConvertArgs),
    /// Extract features of a folder of images with the config's test pipeline.
    Extract {
        /// The config file.
        config: PathBuf,
        /// Weights: an MMSelfSup `.pth` or a selfsup checkpoint.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Folder of images (searched recursively).
        #[arg(long)]
        images: PathBuf,
        /// Output: `.safetensors` (`feats`, the file names in the metadata), or
        /// `.csv` (a `name` column, then `feat_0`, `feat_1`, ...).
        #[arg(long)]
        out: PathBuf,
        /// Override config keys.
        #[arg(long, num_args = 1..)]
        cfg_options: Vec<String>,
        /// Images per batch.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Weighted kNN accuracy of the backbone's features (MMSelfSup's kNN
    /// benchmark): on class sub-folders, or on the synthetic dataset.
    Knn {
        #[command(flatten)]
        eval: EvalArgs,
        /// Numbers of neighbours.
        #[arg(long, value_delimiter = ',', default_value = "20,200")]
        k: Vec<usize>,
        /// Vote temperature.
        #[arg(long, default_value_t = 0.07)]
        temperature: f32,
        /// Print one JSON line per k.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Linear-probe accuracy of the frozen backbone's features (MMSelfSup's
    /// linear evaluation; ClsBatchNormNeck + LARS for ViTs, SGD for
    /// ResNets): on class sub-folders, or on the synthetic dataset.
    LinearProbe(LinearProbeArgs),
    /// Draw a run's loss, learning-rate and momentum curves to PNG
    /// (MMEngine's `analyze_logs.py plot_curve`).
    Plot {
        /// The work dir (or its `scalars.json`, or an MMEngine `vis_data/scalars.json`).
        work_dir: PathBuf,
        /// Output folder; default `WORK_DIR/plots`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Logarithmic loss axis (falls back to linear for losses ≤ 0).
        #[arg(long)]
        log_scale: bool,
        /// Moving average over this many iterations (raw curves stay faded behind).
        #[arg(long, default_value_t = 0)]
        smooth: usize,
        /// Also draw data and step time.
        #[arg(long)]
        timing: bool,
    },
    /// Show what a masked-image model reconstructs of one image.
    ///
    /// The view follows the config's model type. MAE, PixMIM, SimMIM, MixMIM, SparK, iTPN: original, masked,
    /// reconstruction, and reconstruction with the visible patches pasted back.
    /// MaskFeat: original, masked, the HOG of the target and of the prediction,
    /// and the prediction with the target's visible patches pasted back.
    #[command(visible_alias = "visualize-mae")]
    VisualizeReconstruction {
        /// The config (model type MAE, PixMIM, SimMIM, MaskFeat, MixMIM, SparK or iTPN).
        config: PathBuf,
        /// Weights: an MMSelfSup `.pth` or a selfsup checkpoint; without it, the
        /// freshly initialised model.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// The image.
        #[arg(long)]
        image: PathBuf,
        /// Output image: `.png` or `.jpg` (the format follows the extension).
        #[arg(long)]
        out: PathBuf,
        /// Seed of the masking: the model's random masking (MAE, PixMIM), or the
        /// pipeline's mask generator (SimMIM, MaskFeat).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Draw each panel this many times larger.
        #[arg(long, default_value_t = 2)]
        scale: u32,
        /// Override config keys.
        #[arg(long, num_args = 1..)]
        cfg_options: Vec<String>,
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Training throughput (img/s, ms/step) of a config on synthetic input.
    Bench(BenchArgs),
    /// Fine-tune a pre-trained backbone with a classification config and
    /// report its top-1/top-5 accuracy (MMSelfSup's fine-tuning benchmark).
    Finetune(finetune::FinetuneArgs),
    /// Write scikit-learn's bundled handwritten digits (`digits.csv.gz`) as
    /// class folders, `OUT/train/<digit>/*.png` and `OUT/test/<digit>/*.png`
    /// (the `SklearnDigits` split), for `train --data`, `knn` and `linear-probe`.
    ExportDigits {
        /// scikit-learn's `sklearn/datasets/data/digits.csv.gz`.
        #[arg(long)]
        data_file: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct TrainArgs {
    /// The config file (TOML, JSON or YAML).
    config: PathBuf,
    /// Output folder; default `work_dirs/<config name>`.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Override config keys: `train_cfg.max_iters=20 model.backbone.arch=b`.
    #[arg(long, num_args = 1..)]
    cfg_options: Vec<String>,
    /// Resume: `auto` (newest checkpoint of the work dir) or a checkpoint path.
    #[arg(long, num_args = 0..=1, default_missing_value = "auto")]
    resume: Option<String>,
    /// No progress bar: print a log line every logger interval instead.
    #[arg(long)]
    no_progress: bool,
    /// Train on the images under this folder (recursively, unlabelled) with the config's
    /// pipeline: replaces the whole `train_dataloader.dataset` block by a `CustomDataset`
    /// before `--cfg-options` apply.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    #[command(flatten)]
    backend: BackendArgs,
}

#[derive(clap::Args)]
struct LinearProbeArgs {
    #[command(flatten)]
    eval: EvalArgs,
    /// Epochs of the linear head.
    #[arg(long, default_value_t = 100)]
    epochs: usize,
    /// Samples per step.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// The probe's optimiser (default: LARS for ViTs, SGD for ResNets).
    #[arg(long, value_enum, ignore_case = true)]
    optimizer: Option<ProbeOptimizerArg>,
    /// Peak learning rate (default: 6.4 with LARS, 0.3 × batch/256 with SGD).
    #[arg(long)]
    lr: Option<f64>,
    /// Weight decay (default: 0 (ViT) or 1e-6 (ResNet)).
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Linear warm-up epochs (default: a ninth of the epochs for ViTs, 0 for ResNets).
    #[arg(long)]
    warmup_epochs: Option<usize>,
    /// Seed of the head and the sample order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the result (every epoch included) as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArgs,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// The config file.
    config: PathBuf,
    /// Images per step.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Override config keys.
    #[arg(long, num_args = 1..)]
    cfg_options: Vec<String>,
    /// Print one JSON line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArgs,
}

/// `selfsup train`.
fn train_cmd(args: TrainArgs) -> Result<()> {
    let TrainArgs { config, work_dir, cfg_options, resume, no_progress, data, backend } = args;
    let cfg = LoadedConfig::load_with_data(&config, data.as_deref(), &cfg_options)?;
    let work_dir = work_dir
        .or_else(|| cfg.run.work_dir.as_ref().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("work_dirs").join(config.file_stem().map(|s| s.to_os_string()).unwrap_or_default()));
    let resume = match resume.as_deref() {
        None => Resume::No,
        Some("auto") => Resume::Auto,
        Some(p) => Resume::From(PathBuf::from(p)),
    };
    let opts = TrainOptions { work_dir: work_dir.clone(), resume, progress: !no_progress, config_name: config_name(&config) };
    // `--device cuda:0,cuda:1`: data-parallel on those devices.
    let summary = with_backend!(backend.backend.as_str(), &backend.device, |B, [devices]| {
        selfsup::train::train_data_parallel::<B>(&cfg, &opts, &devices)
    })
    .map_err(|e| anyhow!(e))??;
    let first = summary.losses.first().copied().unwrap_or(f64::NAN);
    let last = summary.losses.last().copied().unwrap_or(f64::NAN);
    println!(
        "done: {} iterations ({} this run), loss {first:.4} -> {last:.4}, {:.1} img/s, {} unreadable images skipped",
        summary.iters, summary.iters_this_run, summary.images_per_sec, summary.skipped_images
    );
    println!("checkpoint: {}", summary.checkpoint.display());
    println!("log: {}", work_dir.join("scalars.json").display());
    Ok(())
}

/// `selfsup linear-probe`.
fn linear_probe_cmd(args: LinearProbeArgs) -> Result<()> {
    let LinearProbeArgs { eval, epochs, batch_size, optimizer, lr, weight_decay, warmup_epochs, seed, json, backend } = args;
    let (cfg, data) = eval.load()?;
    let optimizer = optimizer.map(|o| match o {
        ProbeOptimizerArg::Sgd => ProbeOptimizer::Sgd,
        ProbeOptimizerArg::Lars => ProbeOptimizer::Lars,
    });
    let opts = LinearProbeOptions { epochs, batch_size, optimizer, lr, weight_decay, warmup_epochs, seed, ..Default::default() };
    let r = with_backend!(backend.backend.as_str(), &backend.device, |B, device| {
        linear_probe::<B>(&cfg, eval.checkpoint.as_deref(), &data, &opts, &device)
    })
    .map_err(|e| anyhow!(e))??;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        for e in r.epochs.iter().filter(|e| e.epoch == 1 || e.epoch % 10 == 0 || e.epoch == r.epochs.len()) {
            println!("epoch {:>4}: loss {:.4}, top-1 {:.2} %, top-5 {:.2} %", e.epoch, e.loss, e.top1, e.top5);
        }
        println!(
            "linear probe ({} train / {} val, {} features, {} classes; {}{:?} lr {} wd {} warm-up {} epochs): top-1 {:.2} %, top-5 {:.2} %",
            r.num_train,
            r.num_val,
            r.dim,
            r.num_classes,
            if r.cls_batch_norm { "ClsBatchNormNeck, " } else { "" },
            r.optimizer,
            r.lr,
            r.weight_decay,
            r.warmup_epochs,
            r.top1,
            r.top5
        );
    }
    Ok(())
}

/// `selfsup bench`.
fn bench_cmd(args: BenchArgs) -> Result<()> {
    let BenchArgs { config, batch_size, steps, warmup, cfg_options, json, backend } = args;
    let cfg = LoadedConfig::load(&config, &cfg_options)?;
    let r = with_backend!(backend.backend.as_str(), &backend.device, |B, device| { bench::<B>(&cfg, batch_size, warmup, steps, &device) })
        .map_err(|e| anyhow!(e))??;
    if json {
        let mut v = serde_json::to_value(&r)?;
        v["backend"] = serde_json::json!(backend.backend.as_str());
        println!("{v}");
    } else {
        println!(
            "{} on {}: batch {}, {:.1} ms/step, {:.2} img/s ({} steps after {} warm-up); forward {:.1} ms, backward {:.1} ms, optimiser {:.1} ms{}",
            r.algorithm,
            backend.backend,
            r.batch_size,
            r.ms_per_step,
            r.images_per_sec,
            r.steps,
            warmup,
            r.forward_ms,
            r.backward_ms,
            r.optimizer_ms,
            r.peak_rss_mib.map(|m| format!("; peak memory {m:.0} MiB")).unwrap_or_default()
        );
    }
    Ok(())
}

fn config_name(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "config".into());
    format!("{stem}.toml")
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let limit = match cli.max_image_pixels {
        Some(limit) => Ok(Some(limit)),
        None => std::env::var("SELFSUP_MAX_IMAGE_PIXELS")
            .ok()
            .map(|v| parse_pixel_limit(&v).map_err(|e| anyhow!("SELFSUP_MAX_IMAGE_PIXELS: {e}")))
            .transpose(),
    };
    let result = limit.and_then(|limit| {
        if let Some(PixelLimit(limit)) = limit {
            selfsup::data::imaging::io::set_max_image_pixels(limit);
        }
        run(cli.command)
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", render_error(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Train(args) => train_cmd(args)?,
        Command::Config { config, cfg_options, format } => {
            let mut tree = Config::from_file(&config)?;
            tree.merge_options(&cfg_options)?;
            // Decode too, so an unknown key or type is reported here.
            LoadedConfig::from_tree(tree.clone())?;
            let text = match format {
                ConfigFormat::Toml => tree.to_toml_string()?,
                ConfigFormat::Json => tree.to_json_string_pretty()?,
                ConfigFormat::Yaml => tree.to_yaml_string()?,
            };
            print!("{text}");
        }
        Command::Convert(args) => convert::convert(args)?,
        Command::Extract { config, checkpoint, images, out, cfg_options, batch_size, backend } => {
            let cfg = LoadedConfig::load(&config, &cfg_options)?;
            let n = with_backend!(backend.backend.as_str(), &backend.device, |B, device| {
                extract::<B>(&cfg, &checkpoint, &images, &out, batch_size, &device)
            })
            .map_err(|e| anyhow!(e))??;
            println!("wrote features of {} images to {}", n.written, out.display());
            if n.skipped > 0 {
                println!("{} unreadable images skipped (named above), no row for them", n.skipped);
            }
        }
        Command::Knn { eval, k, temperature, json, backend } => {
            let (cfg, data) = eval.load()?;
            let opts = KnnOptions { ks: k, temperature, ..Default::default() };
            let results = with_backend!(backend.backend.as_str(), &backend.device, |B, device| {
                knn::<B>(&cfg, eval.checkpoint.as_deref(), &data, &opts, &device)
            })
            .map_err(|e| anyhow!(e))??;
            for r in results {
                if json {
                    println!("{}", serde_json::to_string(&r)?);
                } else {
                    println!(
                        "k={}: top-1 {:.2} %, top-5 {:.2} % ({} training, {} evaluated images)",
                        r.k, r.top1, r.top5, r.num_train, r.num_val
                    );
                }
            }
        }
        Command::LinearProbe(args) => linear_probe_cmd(args)?,
        Command::Plot { work_dir, out, log_scale, smooth, timing } => {
            let base = if work_dir.is_file() { work_dir.parent().unwrap_or(Path::new(".")).to_path_buf() } else { work_dir.clone() };
            let out = out.unwrap_or_else(|| base.join("plots"));
            let opts = PlotOptions { log_loss: log_scale, smooth, timing, ..Default::default() };
            for path in plot_log(&work_dir, &out, &opts)? {
                println!("wrote {}", path.display());
            }
        }
        Command::VisualizeReconstruction { config, checkpoint, image, out, seed, scale, cfg_options, backend } => {
            let cfg = LoadedConfig::load(&config, &cfg_options)?;
            let opts = VisualizeOptions { seed, scale };
            let drawn = with_backend!(backend.backend.as_str(), &backend.device, |B, device| {
                visualize_reconstruction::<B>(&cfg, checkpoint.as_deref(), &image, &out, &opts, &device)
            })
            .map_err(|e| anyhow!(e))??;
            println!("wrote {} ({}: {})", out.display(), drawn.algorithm, drawn.panels.captions().join(" | "));
        }
        Command::Bench(args) => bench_cmd(args)?,
        Command::Finetune(args) => finetune::finetune_cmd(args)?,
        Command::ExportDigits { data_file, out } => {
            use selfsup::data::{write_class_folders, DigitsSplit, SklearnDigitsConfig};
            for split in [DigitsSplit::Train, DigitsSplit::Test] {
                let cfg = SklearnDigitsConfig { data_file: data_file.display().to_string(), split, pipeline: Vec::new(), test_mode: false };
                let dir = out.join(split.name());
                let n = write_class_folders(&cfg.build(None)?, &dir)?;
                println!("wrote {n} images to {}", dir.display());
            }
        }
    }
    Ok(())
}
