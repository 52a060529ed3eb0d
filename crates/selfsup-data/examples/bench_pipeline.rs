//! JPEG pipeline throughput: decode + MMSelfSup's SimCLR (2 views) or MAE augmentation, or
//! the ViT fine-tuning recipe's (RandAugment, RandomErasing), through the [`DataLoader`], in
//! images per second per core.
//!
//! ```text
//! .venv-reference/bin/python tools/make_bench_jpegs.py /tmp/selfsup_bench_jpegs
//! cargo run --release -p selfsup-data --example bench_pipeline -- /tmp/selfsup_bench_jpegs \
//!     [--pipeline simclr|mae|finetune|both|decode] [--threads 1] [--epochs 3]
//! ```
//!
//! The pipelines are MMSelfSup 1.0.0's (`configs/selfsup/_base_/datasets/imagenet_simclr.py`
//! and `imagenet_mae.py`; `finetune` is mmcls's `imagenet_bs64_swin_224.py`, the train pipeline
//! of `vit-base-p16_ft-8xb128-coslr-100e_in1k`). With `--threads 1` everything runs in the calling thread (one
//! core); with more, `num_workers = threads`. An image is one dataset sample (for SimCLR,
//! two 224×224 views). `tools/bench_torchvision_pipeline.py` measures the same with
//! torchvision and PIL.

use std::sync::Arc;
use std::time::Instant;

use selfsup_data::{CustomDatasetConfig, DataLoader, DataLoaderOptions, Pipeline, TransformConfig};

const SIMCLR: &str = r#"[
    {"type": "LoadImageFromFile"},
    {"type": "MultiView", "num_views": 2, "transforms": [[
        {"type": "RandomResizedCrop", "size": 224, "backend": "pillow"},
        {"type": "RandomFlip", "prob": 0.5},
        {"type": "RandomApply", "prob": 0.8, "transforms": [
            {"type": "ColorJitter", "brightness": 0.8, "contrast": 0.8, "saturation": 0.8, "hue": 0.2}
        ]},
        {"type": "RandomGrayscale", "prob": 0.2, "keep_channels": true,
         "channel_weights": [0.114, 0.587, 0.2989]},
        {"type": "RandomGaussianBlur", "sigma_min": 0.1, "sigma_max": 2.0, "prob": 0.5}
    ]]},
    {"type": "PackSelfSupInputs", "meta_keys": ["img_path"]}
]"#;

const FINETUNE: &str = r#"[
    {"type": "LoadImageFromFile"},
    {"type": "RandomResizedCrop", "scale": 224, "backend": "pillow", "interpolation": "bicubic"},
    {"type": "RandomFlip", "prob": 0.5, "direction": "horizontal"},
    {"type": "RandAugment", "policies": "timm_increasing", "num_policies": 2, "total_level": 10,
     "magnitude_level": 9, "magnitude_std": 0.5,
     "hparams": {"pad_val": [104, 116, 124], "interpolation": "bicubic"}},
    {"type": "RandomErasing", "erase_prob": 0.25, "mode": "rand", "min_area_ratio": 0.02,
     "max_area_ratio": 0.3333333333333333, "fill_color": [103.53, 116.28, 123.675],
     "fill_std": [57.375, 57.12, 58.395]},
    {"type": "PackClsInputs"}
]"#;

const MAE: &str = r#"[
    {"type": "LoadImageFromFile"},
    {"type": "RandomResizedCrop", "size": 224, "scale": [0.2, 1.0], "backend": "pillow",
     "interpolation": "bicubic"},
    {"type": "RandomFlip", "prob": 0.5},
    {"type": "PackSelfSupInputs", "meta_keys": ["img_path"]}
]"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut folder = None;
    let (mut which, mut threads, mut epochs) = ("both".to_string(), 1usize, 3usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--pipeline" => which = args.next().ok_or("--pipeline needs a value")?,
            "--threads" => threads = args.next().ok_or("--threads needs a value")?.parse()?,
            "--epochs" => epochs = args.next().ok_or("--epochs needs a value")?.parse()?,
            "-h" | "--help" => {
                println!("bench_pipeline FOLDER [--pipeline simclr|mae|finetune|both|decode] [--threads N] [--epochs N]");
                return Ok(());
            }
            f => folder = Some(f.to_string()),
        }
    }
    let folder = folder.ok_or("usage: bench_pipeline FOLDER [--pipeline simclr|mae|finetune|both|decode] [--threads N] [--epochs N]")?;
    let dataset = Arc::new(CustomDatasetConfig::folder(&folder).build(None)?);
    if which == "decode" {
        // Decoding alone, in this thread.
        use selfsup_data::Dataset;
        let start = Instant::now();
        for _ in 0..epochs {
            for i in 0..dataset.len() {
                dataset.load(i)?;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!("decode: {:.1} img/s on one core", (epochs * dataset.len()) as f64 / secs);
        return Ok(());
    }
    let pipelines: Vec<(&str, &str)> = match which.as_str() {
        "simclr" => vec![("simclr", SIMCLR)],
        "mae" => vec![("mae", MAE)],
        "finetune" => vec![("finetune", FINETUNE)],
        "both" => vec![("simclr", SIMCLR), ("mae", MAE)],
        other => return Err(format!("unknown pipeline {other}").into()),
    };
    for (name, json) in pipelines {
        let pipeline = Pipeline::new(&TransformConfig::parse_list(json)?)?;
        let loader = DataLoader::new(
            dataset.clone(),
            pipeline,
            DataLoaderOptions { batch_size: 32, num_workers: if threads <= 1 { 0 } else { threads }, seed: 0, ..Default::default() },
        )?;
        // Warm-up epoch (page cache, allocator), then the timed epochs.
        for b in loader.iter_epoch(0) {
            b?;
        }
        let start = Instant::now();
        let mut images = 0usize;
        for epoch in 1..=epochs {
            for b in loader.iter_epoch(epoch) {
                images += b?.len();
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let per_s = images as f64 / secs;
        println!(
            "{name}: {images} images in {secs:.2} s = {per_s:.1} img/s with {threads} thread(s) \
             = {:.1} img/s per core (skipped {})",
            per_s / threads as f64,
            loader.skipped()
        );
    }
    Ok(())
}
