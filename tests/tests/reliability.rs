//! Faults a user hits, each reproduced: a diverging run never leaves a
//! non-finite checkpoint named as good; a broken `last_checkpoint` pointer
//! or the temporary files of killed writes do not stop a resume; pruning
//! covers checkpoints from before a resume; configs that cannot train fail
//! when they load; `convert` takes our own training checkpoints.
use std::path::Path;

use selfsup::train::{
    checkpoint::{self, model_weights},
    train, LoadedConfig, Resume, RunConfigError, TrainError, TrainOptions,
};
use selfsup_tests::{device, workspace, B, BACKEND};

fn simclr_demo() -> std::path::PathBuf {
    workspace().join("configs/simclr/simclr_resnet18-tiny_demo_synthetic.toml")
}

fn options(extra: &[&str]) -> Vec<String> {
    let mut o: Vec<String> = [
        "train_dataloader.batch_size=4",
        "train_dataloader.num_workers=1",
        "train_dataloader.dataset.num_samples=16",
        "default_hooks.logger.interval=1",
        "default_hooks.checkpoint.by_epoch=false",
        "default_hooks.checkpoint.interval=1",
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

fn checkpoints(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    v.sort();
    v
}

/// SimCLR at lr 1e8: the weights blow up while the loss can stay finite
/// (uniform logits). The run stops, names the iteration as the log numbers
/// it, and the checkpoint it names is finite and still on disk.
#[test]
fn divergence_never_costs_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LoadedConfig::load(
        &simclr_demo(),
        &options(&[
            "train_cfg.max_epochs=10",
            "train_cfg.max_iters=40",
            "optim_wrapper.optimizer.lr=1e8",
            "param_scheduler=[]",
            "default_hooks.checkpoint.max_keep_ckpts=2",
        ]),
    )
    .unwrap();
    match run(&cfg, dir.path(), Resume::No) {
        Err(TrainError::NonFinite { iter, what, last_checkpoint, .. }) => {
            let log = std::fs::read_to_string(dir.path().join("scalars.json")).unwrap_or_default();
            let logged: Vec<usize> =
                log.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["iter"].as_u64().unwrap() as usize).collect();
            // A non-finite loss or gradient stops the iteration before it is
            // logged; weights are checked when they are saved, after the
            // step that broke them was logged with its finite loss.
            let last_logged = if what == "weights" { iter } else { iter - 1 };
            assert!(logged.iter().all(|i| *i <= last_logged), "[{BACKEND}] iteration {iter} ({what}): logged {logged:?}");
            if let Some(ckpt) = last_checkpoint {
                let state =
                    checkpoint::load(&ckpt).unwrap_or_else(|e| panic!("[{BACKEND}] the named checkpoint {} loads: {e}", ckpt.display()));
                let bad: Vec<&String> = state.model.tensors.iter().filter(|(_, t)| !checkpoint::is_finite(t)).map(|(k, _)| k).collect();
                assert!(bad.is_empty(), "[{BACKEND}] {} holds non-finite {bad:?}", ckpt.display());
                assert!(state.optimizer.iter().all(|(_, _, t)| checkpoint::is_finite(t)), "[{BACKEND}] its optimiser state is finite");
            }
        }
        other => panic!("[{BACKEND}] expected the run to stop on a non-finite value, got {:?}", other.map(|s| s.losses)),
    }
}

/// A kill mid-write leaves `last_checkpoint` empty or a `.tmp-PID` file:
/// `--resume auto` still finds the newest readable checkpoint, the
/// temporary files go, and `max_keep_ckpts` prunes across the resume.
#[test]
fn resume_survives_a_broken_pointer_and_prunes_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let first =
        LoadedConfig::load(&simclr_demo(), &options(&["train_cfg.max_iters=3", "default_hooks.checkpoint.max_keep_ckpts=2"])).unwrap();
    run(&first, dir.path(), Resume::No).unwrap();
    assert_eq!(checkpoints(dir.path()), vec!["iter_2.safetensors", "iter_3.safetensors"]);
    std::fs::write(checkpoint::last_checkpoint_file(dir.path()), "").unwrap();
    let orphan = dir.path().join(".iter_9.safetensors.tmp-4242424");
    std::fs::write(&orphan, b"half a checkpoint").unwrap();
    assert_eq!(checkpoint::find_latest(dir.path()), Some(dir.path().join("iter_3.safetensors")));

    let more =
        LoadedConfig::load(&simclr_demo(), &options(&["train_cfg.max_iters=5", "default_hooks.checkpoint.max_keep_ckpts=2"])).unwrap();
    let summary = run(&more, dir.path(), Resume::Auto).unwrap();
    assert_eq!((summary.iters, summary.iters_this_run), (5, 2), "[{BACKEND}] resumed at iteration 3");
    assert!(!orphan.exists(), "the temporary file of a killed write is removed");
    assert_eq!(checkpoints(dir.path()), vec!["iter_4.safetensors", "iter_5.safetensors"], "pruned across the resume");
    let pointer = std::fs::read_to_string(checkpoint::last_checkpoint_file(dir.path())).unwrap();
    assert_eq!(pointer, "iter_5.safetensors");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("config.toml")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "the resolved config is world-readable");
    }

    // `convert` keeps the model of our own checkpoint and drops the rest.
    let weights = model_weights(&dir.path().join("iter_5.safetensors")).unwrap();
    assert!(weights.tensors.keys().all(|k| !k.starts_with("optimizer.") && !k.starts_with("hooks.")));
    assert!(weights.tensors.contains_key("backbone.conv1.weight") && !weights.metadata.contains_key("selfsup"));
}

/// Configs that cannot train fail when they load, naming the key.
#[test]
fn configs_that_cannot_train_fail_at_load_time() {
    for (option, key) in [
        ("train_cfg.max_epochs=0", "train_cfg.max_epochs"),
        ("train_dataloader.batch_size=0", "train_dataloader.batch_size"),
        ("train_dataloader.dataset.num_samples=0", "train_dataloader.dataset.num_samples"),
    ] {
        match LoadedConfig::load(&simclr_demo(), &[option.to_string()]) {
            Err(RunConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{option}"),
            other => panic!("{option}: expected a load-time error at {key}, got {:?}", other.map(|_| ())),
        }
    }
}

/// A second, fresh run into a work dir keeps its own `scalars.json` (the
/// old one moves aside); resuming with another algorithm's config is
/// refused, naming both, before anything in the work dir is touched.
#[test]
fn a_fresh_run_keeps_its_own_log_and_another_algorithm_cannot_resume() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LoadedConfig::load(&simclr_demo(), &options(&["train_cfg.max_iters=2"])).unwrap();
    run(&cfg, dir.path(), Resume::No).unwrap();
    run(&cfg, dir.path(), Resume::No).unwrap();
    let lines = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count();
    assert_eq!(lines(&dir.path().join("scalars.json")), 2, "the new run's log holds only its own iterations");
    assert_eq!(lines(&dir.path().join("scalars.1.json")), 2, "the previous run's log is kept beside it");

    let config_before = std::fs::read(dir.path().join("config.toml")).unwrap();
    let mae = LoadedConfig::load(&workspace().join("configs/mae/mae_vit-tiny-p4_demo_synthetic.toml"), &[]).unwrap();
    let err = run(&mae, dir.path(), Resume::Auto).unwrap_err().to_string();
    assert!(err.contains("SimCLR") && err.contains("MAE") && err.contains("iter_2.safetensors"), "[{BACKEND}] {err}");
    assert_eq!(std::fs::read(dir.path().join("config.toml")).unwrap(), config_before, "the work dir is untouched");

    // The same algorithm with another optimiser: its state cannot carry over.
    let sgd = LoadedConfig::load(
        &simclr_demo(),
        &options(&["train_cfg.max_iters=3", "optim_wrapper.optimizer={\"type\": \"SGD\", \"lr\": 0.1, \"momentum\": 0.9}"]),
    )
    .unwrap();
    let err = run(&sgd, dir.path(), Resume::Auto).unwrap_err().to_string();
    assert!(err.contains("LARS") && err.contains("SGD") && err.contains("optimizer type changed"), "[{BACKEND}] {err}");
    assert_eq!(std::fs::read(dir.path().join("config.toml")).unwrap(), config_before, "the work dir is untouched");
}
