//! The shipped configs: they load, resolve like MMSelfSup's, and build
//! models whose keys are the reference `state_dict`'s.
use std::{collections::BTreeMap, path::PathBuf};

use selfsup::{algorithms::key_map, config::Config, train::LoadedConfig, weights::model_keys};
use selfsup_tests::{device, fixtures, workspace, B, BACKEND};

fn config_files() -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![workspace().join("configs")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "_base_") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "toml" || x == "yaml" || x == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_shipped_config_loads_and_validates() {
    let files = config_files();
    assert!(files.len() >= 10, "expected the MAE configs, found {files:?}");
    for f in files {
        LoadedConfig::load(&f, &[]).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}

#[test]
fn vit_b_l_h_configs_have_the_reference_keys() {
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("mae_vit_b_keys.json")).unwrap()).unwrap();
    let keymap = key_map();
    for (arch, file) in [
        ("b", "mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.toml"),
        ("l", "mae_vit-large-p16_8xb512-amp-coslr-400e_in1k.toml"),
        ("h", "mae_vit-huge-p16_8xb512-amp-coslr-1600e_in1k.toml"),
    ] {
        let cfg = LoadedConfig::load(&workspace().join("configs/mae").join(file), &[]).unwrap();
        let model = cfg.run.model.init::<B>(&device());
        let ours = model_keys(&model, &keymap);
        let want: BTreeMap<String, Vec<usize>> = reference[arch]["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let shape = e[1].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
                (e[0].as_str().unwrap().to_string(), shape)
            })
            .collect();
        assert_eq!(ours, want, "[{BACKEND}] ViT-{arch} key inventory ({file})");
    }
}

#[test]
fn resolved_vit_b_config_matches_mmselfsup() {
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("mae_config_reference.json")).unwrap()).unwrap();
    let ours = Config::from_file(workspace().join("configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.toml")).unwrap();
    for path in [
        "model.type",
        "model.backbone",
        "model.neck",
        "model.head",
        "model.data_preprocessor",
        "optim_wrapper.type",
        "optim_wrapper.loss_scale",
        "optim_wrapper.optimizer.lr",
        "optim_wrapper.optimizer.weight_decay",
        "optim_wrapper.paramwise_cfg",
        "param_scheduler",
        "train_cfg",
        "train_dataloader.batch_size",
        "train_dataloader.dataset.pipeline",
        "train_dataloader.dataset.ann_file",
        "default_hooks.checkpoint",
        "randomness",
    ] {
        let r = path.split('.').fold(&reference, |v, k| &v[k]);
        let o = ours.get(path).unwrap_or_else(|| panic!("{path} missing from our config"));
        assert_eq!(normalise(o), normalise(r), "{path}");
    }
}

/// JSON numbers compared as f64, so `40` equals `40.0`.
fn normalise(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Number(n) => serde_json::json!(n.as_f64()),
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(normalise).collect()),
        serde_json::Value::Object(o) => serde_json::Value::Object(o.iter().map(|(k, v)| (k.clone(), normalise(v))).collect()),
        other => other.clone(),
    }
}

#[test]
fn bad_configs_name_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = workspace().join("configs/mae/mae_vit-tiny-p4_demo_synthetic.toml");
    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("_base_ = \"{}\"\n{body}", base.display())).unwrap();
        p
    };
    let cases = [
        ("typo.toml", "[model.backbone]\nmask_ratioo = 0.5\n", vec!["typo.toml", "model.backbone.mask_ratioo"]),
        ("type.toml", "[model.backbone]\ntype = \"MAEVit\"\n", vec!["type.toml", "model.backbone.type", "MAEVit"]),
        ("wrong.toml", "[model.backbone]\nmask_ratio = \"high\"\n", vec!["wrong.toml", "model.backbone.mask_ratio"]),
        ("dims.toml", "[model.neck]\nembed_dim = 128\n", vec!["model.neck.embed_dim", "96"]),
        ("sched.toml", "[[param_scheduler]]\ntype = \"LinearLR\"\nbegin = 5\nend = 2\n", vec!["param_scheduler.0"]),
        ("opt.toml", "[optim_wrapper.optimizer]\ntype = \"SGDX\"\n", vec!["optim_wrapper.optimizer.type", "SGDX"]),
    ];
    for (name, body, needles) in cases {
        let err = LoadedConfig::load(&write(name, body), &[]).unwrap_err().to_string();
        for n in needles {
            assert!(err.contains(n), "{name}: error `{err}` should mention `{n}`");
        }
    }
    let err = LoadedConfig::load(&base, &["model.backbone.arch=zz".to_string()]).unwrap_err().to_string();
    assert!(err.contains("model.backbone.arch") && err.contains("zz"), "{err}");
}

#[test]
fn cfg_options_override_any_key() {
    let base = workspace().join("configs/mae/mae_vit-tiny-p4_demo_synthetic.toml");
    let cfg = LoadedConfig::load(
        &base,
        &["train_cfg.max_iters=20".into(), "model.backbone.mask_ratio=0.5".into(), "train_dataloader.batch_size=4".into()],
    )
    .unwrap();
    assert_eq!(cfg.run.train_cfg.max_iters, Some(20));
    assert_eq!(cfg.run.train_dataloader.batch_size, 4);
    let selfsup::algorithms::AlgorithmConfig::Mae(m) = &cfg.run.model else { panic!("an MAE config") };
    assert_eq!(m.backbone.get().mask_ratio, 0.5);
}

#[test]
fn contrastive_configs_refuse_what_cannot_run() {
    let moco = workspace().join("configs/mocov2/mocov2_resnet18-tiny_demo_synthetic.toml");
    // MoCo's queue takes whole batches: refused when the config loads.
    let err = LoadedConfig::load(&moco, &["train_dataloader.batch_size=7".into()]).unwrap_err().to_string();
    assert!(err.contains("train_dataloader.batch_size") && err.contains("queue_len"), "{err}");
    // Widths that do not chain.
    let err = LoadedConfig::load(&moco, &["model.neck.in_channels=65".into()]).unwrap_err().to_string();
    assert!(err.contains("model.neck.in_channels"), "{err}");
    // A hook for another algorithm.
    let swav = workspace().join("configs/swav/swav_resnet18-tiny_demo_synthetic.toml");
    let err = LoadedConfig::load(&swav, &["model.head.loss.feat_dim=7".into()]).unwrap_err().to_string();
    assert!(err.contains("feat_dim"), "{err}");
    // Unknown hooks are errors, not silently ignored.
    let err = LoadedConfig::load(&moco, &[r#"custom_hooks=[{"type": "NoSuchHook"}]"#.into()]).unwrap_err().to_string();
    assert!(err.contains("NoSuchHook"), "{err}");
}
