//! Training end to end through the engine: synthetic data, a folder of
//! images with a corrupt file, checkpoints, resume, non-finite losses,
//! feature extraction.
use std::path::{Path, PathBuf};

use selfsup::{
    train::{
        extract::extract,
        knn::{knn, KnnOptions, LabelledData},
        linear_probe::{linear_probe, LinearProbeOptions, ProbeOptimizer},
        train,
        visualize::{visualize_mae, visualize_reconstruction, VisualizeOptions},
        LoadedConfig, Resume, TrainError, TrainOptions,
    },
    viz::{plot_log, strip_layout, HogVisualization, MaeVisualization, PlotOptions},
};
use selfsup_tests::{demo_options, device, workspace, B, BACKEND};

fn demo() -> PathBuf {
    workspace().join("configs/mae/mae_vit-tiny-p4_demo_synthetic.toml")
}

/// A smaller version of the demo so the suite stays fast on every backend.
fn tiny_options(extra: &[&str]) -> Vec<String> {
    let mut o: Vec<String> = [
        "model.backbone.arch.embed_dims=32",
        "model.backbone.arch.num_layers=1",
        "model.backbone.arch.num_heads=2",
        "model.backbone.arch.feedforward_channels=64",
        "model.backbone.img_size=16",
        "model.neck.num_patches=16",
        "model.neck.embed_dim=32",
        "model.neck.decoder_embed_dim=16",
        "model.neck.decoder_depth=1",
        "model.neck.decoder_num_heads=2",
        "train_dataloader.batch_size=4",
        "train_dataloader.num_workers=2",
        "train_dataloader.dataset.num_samples=16",
        "train_dataloader.dataset.img_size=20",
        "train_dataloader.dataset.pipeline.1.size=16",
        "default_hooks.logger.interval=1",
        "test_dataloader.dataset.pipeline.1.scale=18",
        "test_dataloader.dataset.pipeline.2.crop_size=16",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    o.extend(extra.iter().map(|s| s.to_string()));
    o
}

fn run(cfg: &LoadedConfig, dir: &Path, resume: Resume) -> Result<selfsup::train::TrainSummary, TrainError> {
    let opts = TrainOptions { work_dir: dir.to_path_buf(), resume, progress: false, config_name: "config.toml".into() };
    train::<B>(cfg, &opts, &device())
}

#[test]
fn trains_checkpoints_and_resumes_to_the_same_losses() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LoadedConfig::load(&demo(), &tiny_options(&["train_cfg.max_iters=6", "default_hooks.checkpoint.interval=1"])).unwrap();
    let full = run(&cfg, &dir.path().join("full"), Resume::No).unwrap();
    assert_eq!(full.iters, 6);
    assert!(full.losses.iter().all(|l| l.is_finite()), "[{BACKEND}] {:?}", full.losses);
    assert!(full.checkpoint.exists());
    let work = dir.path().join("full");
    assert!(work.join("config.toml").exists(), "the resolved config is saved");
    let log = std::fs::read_to_string(work.join("scalars.json")).unwrap();
    assert_eq!(log.lines().count(), 6);
    assert!(log.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].is_number()));

    // Stop after 4 of 16/4 = 4 batches per epoch (an epoch checkpoint), resume to 6.
    let half = LoadedConfig::load(&demo(), &tiny_options(&["train_cfg.max_iters=4", "default_hooks.checkpoint.interval=1"])).unwrap();
    let part = dir.path().join("part");
    let first = run(&half, &part, Resume::No).unwrap();
    let rest = run(&cfg, &part, Resume::Auto).unwrap();
    assert_eq!(rest.iters, 6);
    assert_eq!(rest.iters_this_run, 2);
    let mut resumed = first.losses.clone();
    resumed.extend(&rest.losses);
    for (i, (a, b)) in full.losses.iter().zip(&resumed).enumerate() {
        assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "[{BACKEND}] iteration {i}: {a} vs {b}");
    }
}

#[test]
fn representation_monitor_logs_rankme_the_collapse_signal_and_knn() {
    let dir = tempfile::tempdir().unwrap();
    let synthetic = |n: usize, seed: u64| {
        format!("{{ batch_size = 8, dataset = {{ type = \"SyntheticDataset\", num_samples = {n}, img_size = 20, seed = {seed} }} }}")
    };
    let hook = |extra: &str| {
        let path = dir.path().join("monitor.toml");
        let text = format!(
            "_base_ = {:?}\n[[custom_hooks]]\ntype = \"RepresentationMonitorHook\"\nval_dataloader = {}\nknn_dataloader = {}\n{extra}",
            demo().display().to_string(),
            synthetic(12, 5),
            synthetic(16, 6)
        );
        std::fs::write(&path, text).unwrap();
        LoadedConfig::load(&path, &tiny_options(&["train_cfg.max_iters=6"]))
    };
    // Measured at the start, after epoch 1 (4 batches of 4) and after the last iteration.
    let work = dir.path().join("work");
    run(&hook("k = [3, 5]").unwrap(), &work, Resume::No).unwrap();
    let log = std::fs::read_to_string(work.join("scalars.json")).unwrap();
    let lines: Vec<serde_json::Value> =
        log.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).filter(|v| v.get("rankme").is_some()).collect();
    let iters: Vec<u64> = lines.iter().map(|v| v["iter"].as_u64().unwrap()).collect();
    assert_eq!(iters, [0, 4, 6], "[{BACKEND}] {log}");
    for v in &lines {
        // 12 held-out samples of a 32-wide cls token.
        let rank = v["rankme"].as_f64().unwrap();
        assert!(rank > 1.0 && rank <= 12.0, "[{BACKEND}] {v}");
        let std = v["embedding_std"].as_f64().unwrap();
        assert!(std > 0.0 && std < 1.0, "[{BACKEND}] {v}");
        for k in ["knn_top1_k3", "knn_top1_k5"] {
            let top1 = v[k].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&top1) && (top1 * 12.0 / 100.0 - (top1 * 12.0 / 100.0).round()).abs() < 1e-6, "[{BACKEND}] {v}");
        }
    }
    assert!((lines[1]["epoch"].as_f64().unwrap() - 1.0).abs() < 1e-12 && (lines[2]["epoch"].as_f64().unwrap() - 1.5).abs() < 1e-12);
    // `selfsup plot` draws them.
    let plots = plot_log(&work, &work.join("plots"), &PlotOptions::default()).unwrap();
    for name in ["rankme.png", "embedding_std.png", "knn.png"] {
        assert!(plots.iter().any(|p| p.ends_with(name)), "{plots:?}");
    }
    // Bad fields fail at load time with their key.
    let err = hook("interval = 0").unwrap_err().to_string();
    assert!(err.contains("custom_hooks.0.interval"), "{err}");
    let err = hook("k = [0]").unwrap_err().to_string();
    assert!(err.contains("custom_hooks.0.k"), "{err}");
}

#[test]
fn non_finite_loss_stops_with_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LoadedConfig::load(
        &demo(),
        &tiny_options(&[
            "train_cfg.max_iters=40",
            "optim_wrapper.optimizer.lr=1e30",
            "param_scheduler=[]",
            "default_hooks.checkpoint.by_epoch=false",
            "default_hooks.checkpoint.interval=1",
        ]),
    )
    .unwrap();
    match run(&cfg, dir.path(), Resume::No) {
        Err(TrainError::NonFinite { iter, last_checkpoint, parts, .. }) => {
            assert!(iter >= 1, "the first step is finite");
            let ckpt = last_checkpoint.expect("a checkpoint of a good state");
            assert!(ckpt.exists());
            assert!(parts.iter().any(|(n, v)| n == "loss" && !v.is_finite()));
        }
        other => panic!("[{BACKEND}] expected a non-finite loss, got {:?}", other.map(|s| s.losses)),
    }
}

#[test]
fn trains_on_a_folder_of_images_and_skips_corrupt_files() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = dir.path().join("imgs/nested");
    std::fs::create_dir_all(&imgs).unwrap();
    for i in 0..9u32 {
        let img = image_of(i);
        img.save(imgs.join(format!("{i}.png"))).unwrap();
    }
    std::fs::write(imgs.join("broken.jpg"), b"not a jpeg").unwrap();
    let root = dir.path().join("imgs");
    let root = root.to_string_lossy();
    let cfg = LoadedConfig::load(
        &demo(),
        &tiny_options(&[
            "train_cfg.max_iters=3",
            "train_dataloader.dataset={\"type\":\"CustomDataset\",\"data_root\":\"\",\"data_prefix\":\"IMGS\",\"ann_file\":\"\",\"pipeline\":[{\"type\":\"LoadImageFromFile\"},{\"type\":\"RandomResizedCrop\",\"size\":16,\"scale\":[0.2,1.0]},{\"type\":\"RandomFlip\",\"prob\":0.5},{\"type\":\"PackSelfSupInputs\"}]}",
        ])
        .into_iter()
        .map(|o| o.replace("IMGS", &root))
        .collect::<Vec<_>>(),
    )
    .unwrap();
    let summary = run(&cfg, &dir.path().join("work"), Resume::No).unwrap();
    assert_eq!(summary.iters, 3);
    assert!(summary.skipped_images >= 1, "the corrupt file is counted");

    // Features of the same folder with the test pipeline.
    let out = dir.path().join("feats.safetensors");
    let n = extract::<B>(&cfg, &summary.checkpoint, Path::new(&*root), &out, 4, &device()).unwrap();
    assert_eq!((n.written, n.skipped), (9, 1));
    let feats = selfsup::weights::read_checkpoint(&out).unwrap();
    assert_eq!(feats.get("feats").unwrap().shape.to_vec(), vec![9, 32]);
    let names: Vec<String> = serde_json::from_str(&feats.metadata["names"]).unwrap();
    assert_eq!(names.len(), 9);
    // One batch of every file, the corrupt one included: it is dropped and
    // counted (nothing is left to take its place), not an error.
    assert_eq!(extract::<B>(&cfg, &summary.checkpoint, Path::new(&*root), &out, 32, &device()).unwrap().written, 9);
    // The same rows as CSV: a header, then the name and the values of each image.
    let csv = dir.path().join("feats.csv");
    extract::<B>(&cfg, &summary.checkpoint, Path::new(&*root), &csv, 4, &device()).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 10);
    assert_eq!((rows[0][0], rows[0][1], rows[0][32], rows[0].len()), ("name", "feat_0", "feat_31", 33));
    let values = feats.get("feats").unwrap().clone().to_vec::<f32>().unwrap();
    for (i, row) in rows[1..].iter().enumerate() {
        assert_eq!(row[0], names[i]);
        let parsed: Vec<f32> = row[1..].iter().map(|v| v.parse().unwrap()).collect();
        assert_eq!(parsed, values[i * 32..(i + 1) * 32], "row {i} round-trips exactly");
    }

    // `selfsup visualize-mae`: four panels of the 16×16 test crop, drawn 2× larger.
    let png = dir.path().join("mae.png");
    let opts = VisualizeOptions { seed: 3, scale: 2 };
    visualize_mae::<B>(&cfg, &summary.checkpoint, &imgs.join("4.png"), &png, &opts, &device()).unwrap();
    let strip = image::open(&png).unwrap().to_rgb8();
    assert!(strip.width() >= 4 * 32 && strip.height() >= 32, "[{BACKEND}] strip {}x{}", strip.width(), strip.height());
    let err = visualize_mae::<B>(&cfg, &summary.checkpoint, &imgs.join("broken.jpg"), &png, &opts, &device()).unwrap_err();
    assert!(err.to_string().contains("broken.jpg"), "{err}");

    // `selfsup knn` on the synthetic dataset and on class sub-folders
    // (`imgs/nested` is one class: every neighbour votes for it).
    let opts = KnnOptions { ks: vec![3, 20], batch_size: 8, ..Default::default() };
    let synthetic = knn::<B>(&cfg, Some(&summary.checkpoint), &LabelledData::Synthetic { train: 24, val: 12 }, &opts, &device()).unwrap();
    assert_eq!(synthetic.iter().map(|r| (r.k, r.num_train, r.num_val)).collect::<Vec<_>>(), vec![(3, 24, 12), (20, 24, 12)]);
    // More neighbours than training images, or none, are refused.
    for ks in [vec![200], vec![0]] {
        let bad = KnnOptions { ks, ..opts.clone() };
        assert!(knn::<B>(&cfg, None, &LabelledData::Synthetic { train: 24, val: 12 }, &bad, &device()).is_err());
    }
    assert!(synthetic.iter().all(|r| (0.0..=100.0).contains(&r.top1) && r.top5 >= r.top1), "{synthetic:?}");
    let folders = LabelledData::Folders { train: dir.path().join("imgs"), val: dir.path().join("imgs") };
    let one_class = knn::<B>(&cfg, None, &folders, &KnnOptions { ks: vec![3, 9], ..opts.clone() }, &device()).unwrap();
    assert!(one_class.iter().all(|r| r.top1 == 100.0), "{one_class:?}");
    // A folder set with one class cannot train a classifier.
    let probe_opts = LinearProbeOptions { epochs: 3, batch_size: 8, feature_batch_size: 8, ..Default::default() };
    let err = linear_probe::<B>(&cfg, None, &folders, &probe_opts, &device()).unwrap_err();
    assert!(err.to_string().contains("two classes"), "{err}");

    // `selfsup linear-probe` on the synthetic dataset: the MAE protocol
    // (ClsBatchNormNeck, LARS with warm-up), every epoch reported.
    let probe = linear_probe::<B>(&cfg, Some(&summary.checkpoint), &LabelledData::Synthetic { train: 24, val: 16 }, &probe_opts, &device())
        .unwrap();
    assert!(probe.cls_batch_norm && probe.optimizer == ProbeOptimizer::Lars && probe.warmup_epochs == 0, "{probe:?}");
    assert_eq!((probe.num_train, probe.num_val, probe.dim, probe.epochs.len()), (24, 16, 32, 3));
    assert!((0.0..=100.0).contains(&probe.top1) && probe.top5 >= probe.top1, "{probe:?}");

    // `selfsup plot`: the loss and lr curves of the run.
    let plots = plot_log(&dir.path().join("work"), &dir.path().join("plots"), &PlotOptions::default()).unwrap();
    let names: Vec<String> = plots.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert!(names.contains(&"loss.png".to_string()) && names.contains(&"lr.png".to_string()), "{names:?}");
    assert!(plots.iter().all(|p| image::open(p).is_ok()));
}

fn image_of(i: u32) -> image::RgbImage {
    image::RgbImage::from_fn(24, 20, |x, y| image::Rgb([(x * 10 + i) as u8, (y * 12) as u8, (i * 25) as u8]))
}

/// `selfsup visualize-reconstruction` for every masked-image model, freshly
/// initialised, on its demo config: the strip has the documented size and
/// holds the panels the view returns, the panels differ from each other, and
/// the masked panel hides as many patches as the model's masking
/// (MAE's, PixMIM's and iTPN's 75 %, SparK's 10 of 16 cells, from the model's
/// draws) or the train
/// pipeline's mask generator (SimMIM's 10 of 16 blocks, MaskFeat's 78 of
/// 196 patches) says, which `--seed` chooses.
#[test]
fn visualize_reconstruction_draws_every_masked_image_model() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("stripes.png");
    image::RgbImage::from_fn(150, 130, |x, y| {
        image::Rgb([(x * 3 % 256) as u8, (y * 2 % 256) as u8, if (x + y) / 12 % 2 == 0 { 200 } else { 30 }])
    })
    .save(&img)
    .unwrap();
    let opts = VisualizeOptions { seed: 1, scale: 2 };
    // (config, model type, captions, image side, mask patch, masked patches of all)
    let cases = [
        ("configs/mae/mae_vit-tiny-p4_demo_synthetic.toml", "MAE", &MaeVisualization::CAPTIONS[..], 32, 4, (48, 64)),
        ("configs/pixmim/pixmim_vit-tiny-p4_demo_synthetic.toml", "PixMIM", &MaeVisualization::CAPTIONS[..], 32, 4, (48, 64)),
        ("configs/simmim/simmim_swin-tiny_demo_synthetic.toml", "SimMIM", &MaeVisualization::CAPTIONS[..], 64, 16, (10, 16)),
        ("configs/maskfeat/maskfeat_vit-tiny_demo_synthetic.toml", "MaskFeat", &HogVisualization::CAPTIONS[..], 112, 8, (78, 196)),
        ("configs/mixmim/mixmim_tiny_demo_synthetic.toml", "MixMIM", &MaeVisualization::CAPTIONS[..], 64, 32, (2, 4)),
        ("configs/spark/spark_sparse-resnet18_demo_synthetic.toml", "SparK", &MaeVisualization::CAPTIONS[..], 128, 32, (10, 16)),
        ("configs/itpn/itpn-pixel_hivit-tiny_demo_synthetic.toml", "iTPN", &MaeVisualization::CAPTIONS[..], 64, 8, (48, 64)),
    ];
    for (config, algorithm, captions, side, patch, (masked, all)) in cases {
        let cfg = LoadedConfig::load(&workspace().join(config), &[]).unwrap();
        let out = dir.path().join(format!("{algorithm}.png"));
        let drawn = visualize_reconstruction::<B>(&cfg, None, &img, &out, &opts, &device()).unwrap();
        assert_eq!((drawn.algorithm, drawn.panels.captions()), (algorithm, captions.to_vec()));
        let panels: Vec<image::RgbImage> = drawn.panels.to_rgb8().unwrap().into_iter().map(|(_, p)| p).collect();
        assert!(panels.iter().all(|p| p.dimensions() == (side, side)), "[{BACKEND}] {algorithm}: panels of {side} pixels");

        // The strip: its size, and each panel drawn 2x where the layout puts it.
        let strip = image::open(&out).unwrap().to_rgb8();
        let sizes: Vec<(&str, (u32, u32))> = captions.iter().map(|c| (*c, (side, side))).collect();
        let layout = strip_layout(&sizes, &drawn.strip);
        assert_eq!(strip.dimensions(), (layout.width, layout.height), "[{BACKEND}] {algorithm}");
        assert!(layout.width >= captions.len() as u32 * 2 * side && layout.height >= 2 * side);
        for (panel, &(px, py)) in panels.iter().zip(&layout.panels) {
            for (x, y, p) in panel.enumerate_pixels() {
                assert_eq!(strip.get_pixel(px + 2 * x + 1, py + 2 * y + 1), p, "[{BACKEND}] {algorithm} ({x}, {y})");
            }
        }

        // Every panel differs from every other.
        for i in 0..panels.len() {
            for j in i + 1..panels.len() {
                assert_ne!(panels[i], panels[j], "[{BACKEND}] {algorithm}: {} and {} are the same picture", captions[i], captions[j]);
            }
        }

        // The masked panel hides whole patches: as many as the masking says.
        let hidden = (0..side / patch)
            .flat_map(|i| (0..side / patch).map(move |j| (i, j)))
            .filter(|(i, j)| {
                let block = |p: &image::RgbImage| -> Vec<[u8; 3]> {
                    (0..patch).flat_map(|y| (0..patch).map(move |x| p.get_pixel(j * patch + x, i * patch + y).0)).collect()
                };
                block(&panels[0]) != block(&panels[1])
            })
            .count();
        assert_eq!((hidden, (side / patch).pow(2)), (masked, all), "[{BACKEND}] {algorithm}: masked patches");

        // The seed picks the mask; the same seed draws the same picture.
        let again = visualize_reconstruction::<B>(&cfg, None, &img, &out, &opts, &device()).unwrap();
        assert_eq!(again.panels, drawn.panels, "[{BACKEND}] {algorithm}: same seed");
        let other =
            visualize_reconstruction::<B>(&cfg, None, &img, &out, &VisualizeOptions { seed: 2, ..opts.clone() }, &device()).unwrap();
        assert_ne!(other.panels.panels[1], drawn.panels.panels[1], "[{BACKEND}] {algorithm}: another seed, another mask");
    }

    // Models without a reconstruction say so.
    let simclr = LoadedConfig::load(&workspace().join("configs/simclr/simclr_resnet18-tiny_demo_synthetic.toml"), &[]).unwrap();
    let err = visualize_reconstruction::<B>(&simclr, None, &img, &dir.path().join("x.png"), &opts, &device()).unwrap_err();
    assert!(err.to_string().contains("this config's model is SimCLR"), "{err}");
}

/// MoCo's queue and key encoder, NPID's memory bank, SwAV's hook queue
/// (started at epoch 1, prototypes frozen for the first iterations), and
/// DeepCluster's labels, sampling order and re-drawn classifier, and ODC's
/// feature and label banks (outside the state dict) and weighted loss survive
/// a kill and resume: the resumed run's losses equal the uninterrupted run's.
#[test]
fn contrastive_state_survives_kill_and_resume() {
    let cases: [(&str, &[&str]); 5] = [
        ("configs/mocov2/mocov2_resnet18-tiny_demo_synthetic.toml", &[]),
        ("configs/npid/npid_resnet18-tiny_demo_synthetic.toml", &["model.memory_bank.length=16", "model.neg_num=8"]),
        (
            "configs/swav/swav_resnet18-tiny_demo_synthetic.toml",
            &[
                "custom_hooks.0.batch_size=8",
                "custom_hooks.0.epoch_queue_starts=1",
                "custom_hooks.0.queue_length=16",
                "custom_hooks.0.frozen_layers_cfg.prototypes=3",
            ],
        ),
        (
            "configs/deepcluster/deepcluster_resnet18-tiny_demo_synthetic.toml",
            &[
                "custom_hooks.0.extract_dataloader.dataset.num_samples=16",
                "custom_hooks.0.clustering.k=4",
                "custom_hooks.0.clustering.pca_dim=8",
                "model.head.num_classes=4",
            ],
        ),
        (
            "configs/odc/odc_resnet18-tiny_demo_synthetic.toml",
            &[
                "custom_hooks.0.extract_dataloader.dataset.num_samples=16",
                "custom_hooks.0.clustering.k=4",
                "model.head.num_classes=4",
                "model.memory_bank.num_classes=4",
                "model.memory_bank.length=16",
                "model.memory_bank.min_cluster=3",
                "custom_hooks.1.centroids_update_interval=3",
            ],
        ),
    ];
    for (path, extra) in cases {
        let options = |epochs: usize| demo_options(8, epochs, extra);
        let dir = tempfile::tempdir().unwrap();
        let full_cfg = LoadedConfig::load(&workspace().join(path), &options(3)).unwrap();
        let full = run(&full_cfg, &dir.path().join("full"), Resume::No).unwrap();
        let part = dir.path().join("part");
        let first = run(&LoadedConfig::load(&workspace().join(path), &options(2)).unwrap(), &part, Resume::No).unwrap();
        if path.contains("swav") {
            let ckpt = selfsup::train::checkpoint::load(&first.checkpoint).unwrap();
            assert!(ckpt.model.get(selfsup::train::checkpoint::SWAV_QUEUE).is_some(), "the SwAV queue is checkpointed");
        }
        if path.contains("deepcluster") {
            // The clustering before the first epoch and after each of the first two.
            let written = (0..3).filter(|e| part.join(format!("cluster_epoch_{e}.npy")).is_file()).count();
            assert_eq!(written, 3, "{path}: cluster_epoch_*.npy");
        }
        let rest = run(&full_cfg, &part, Resume::Auto).unwrap();
        assert_eq!((full.iters, rest.iters_this_run), (6, 2), "{path}");
        let mut resumed = first.losses.clone();
        resumed.extend(&rest.losses);
        for (i, (a, b)) in full.losses.iter().zip(&resumed).enumerate() {
            assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "[{BACKEND}] {path}: iteration {i}: {a} vs {b}");
        }
    }
}

/// `selfsup bench` feeds the config's own pipeline: SimMIM gets its masks
/// and DINO its global and local crops (random tensors carry neither).
#[test]
fn bench_runs_the_configs_pipeline() {
    for file in ["configs/simmim/simmim_swin-tiny_demo_synthetic.toml", "configs/dino/dino_vit-tiny-p4_demo_synthetic.toml"] {
        let cfg = LoadedConfig::load(&workspace().join(file), &[]).unwrap();
        let r = selfsup::train::bench::bench::<B>(&cfg, 2, 0, 1, &device()).unwrap_or_else(|e| panic!("[{BACKEND}] {file}: {e}"));
        assert!(r.ms_per_step > 0.0 && r.batch_size == 2, "[{BACKEND}] {file}: {r:?}");
    }
}
