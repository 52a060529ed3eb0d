//! Fine-tuning (mmcls's `ImageClassifier`) against golden fixtures from
//! mmcls 1.0.0rc6 and MMSelfSup 1.0.0 (`tools/gen_fixtures_finetune.py`):
//! MMSelfSup's ViT fine-tuning model (the mean token through `ln2`,
//! stochastic depth, `LabelSmoothLoss`, Mixup and CutMix, AdamW with
//! layer-wise lr decay) and its ResNet fine-tuning model (global average
//! pooling, cross entropy, SGD, BatchNorm buffers): key inventories, the
//! mixed batches and scores, the head's input and logits, and two
//! optimiser iterations with every loss, gradient and state tensor from the
//! reference's draws.
use burn::tensor::{Int, Tensor, TensorData};
use selfsup::{
    algorithms::{batch_augments::RandomBatchAugmentConfig, Algorithm},
    core::{DataSamples, Draws, SelfSupInputs},
};
use selfsup_tests::{
    mim::{self, close, close_within, load_model},
    Case, B, BACKEND,
};

selfsup_tests::backbone_parity_cases!(ImageClassifier; finetune_vit_tiny, finetune_resnet_tiny);

/// Iteration `step`'s draws as the reference made them: the augment's
/// index, `λ`, the permutation, CutMix's centre, and each stochastic-depth
/// call (`[batch]` each).
fn draws(case: &Case, step: usize) -> Draws {
    let prefix = if step == 0 { "draws." } else { "draws2." };
    let batch = case.config["batch_size"].as_u64().unwrap() as usize;
    let names: Vec<String> = case.io.keys().filter_map(|k| k.strip_prefix(prefix)).map(str::to_string).collect();
    names.into_iter().fold(Draws::seeded(0), |d, n| {
        let values = case.f32(&format!("{prefix}{n}")).0;
        if n.starts_with("backbone.") {
            return values.chunks(batch).fold(d, |d, call| d.replay(n.clone(), call.to_vec()));
        }
        d.replay(n, values)
    })
}

/// The images (already the data preprocessor's output: it is the identity
/// here) and their labels.
fn inputs<BB: burn::tensor::backend::Backend>(case: &Case, _model: &Algorithm<BB>, step: usize) -> SelfSupInputs<BB> {
    let sfx = if step == 0 { "" } else { "2" };
    let labels = labels(case, sfx);
    SelfSupInputs::single(case.tensor::<4, BB>(&format!("inputs{sfx}")))
        .with_data_samples(DataSamples { gt_label: labels.into_iter().map(Some).collect(), ..Default::default() })
}

fn labels(case: &Case, sfx: &str) -> Vec<usize> {
    case.io.tensors[&format!("labels{sfx}")].clone().convert::<i64>().to_vec::<i64>().unwrap().into_iter().map(|v| v as usize).collect()
}

/// Mixup (iteration 1) and CutMix (iteration 2) mix the batch and the
/// one-hot scores as mmcls does, from the same draws; the head's input and
/// logits of iteration 1 follow.
#[test]
fn mixed_batches_features_and_logits_match_reference() {
    let case = Case::load("finetune_vit_tiny");
    let model = load_model::<B>(&case);
    let Algorithm::ImageClassifier(m) = &model else { panic!("ImageClassifier") };
    let augments: RandomBatchAugmentConfig = serde_json::from_value(case.config["train_cfg"].clone()).unwrap();
    for (step, sfx) in [(0, ""), (1, "2")] {
        let x = case.tensor::<4, B>(&format!("inputs{sfx}"));
        let labels = labels(&case, sfx);
        let n = labels.len();
        let labels = Tensor::<B, 1, Int>::from_data(TensorData::new(labels.iter().map(|&c| c as i64).collect(), [n]), &x.device());
        let mut d = draws(&case, step);
        let (mixed, scores) = augments.apply(x, labels.one_hot::<2>(5).float(), &mut d);
        close_within(&format!("mixed{sfx}"), mixed.clone(), case.f32(&format!("mixed{sfx}")), 1e-6);
        close_within(&format!("scores{sfx}"), scores, case.f32(&format!("scores{sfx}")), 1e-6);
        if step == 0 {
            let feature = m.feature(mixed, Some(&mut d)).unwrap();
            close("feature", feature.clone(), case.f32("feature"));
            close("logits", m.head.forward(feature), case.f32("logits"));
        }
    }
    let case = Case::load("finetune_resnet_tiny");
    let model = load_model::<B>(&case);
    let Algorithm::ImageClassifier(m) = &model else { panic!("ImageClassifier") };
    let feature = m.feature(case.tensor::<4, B>("inputs"), None).unwrap();
    close("resnet feature", feature.clone(), case.f32("feature"));
    close("resnet logits", m.head.forward(feature), case.f32("logits"));
}

/// A batch with an unlabelled image, or a class beyond the head's, is an error.
#[test]
fn unlabelled_or_out_of_range_labels_are_refused() {
    let case = Case::load("finetune_resnet_tiny");
    let model = load_model::<B>(&case);
    let mut x = inputs(&case, &model, 0);
    x.data_samples.gt_label[1] = None;
    let Err(err) = selfsup::core::SelfSupAlgorithm::loss(&model, &x, &mut Draws::seeded(0)) else {
        panic!("[{BACKEND}] an unlabelled image must be an error");
    };
    assert!(err.to_string().contains("unlabelled"), "{err}");
    x.data_samples.gt_label[1] = Some(5);
    let Err(err) = selfsup::core::SelfSupAlgorithm::loss(&model, &x, &mut Draws::seeded(0)) else {
        panic!("[{BACKEND}] class 5 of 5 must be an error");
    };
    assert!(err.to_string().contains("outside"), "{err}");
}

/// The full-size reference models (ViT-B with the mean token, ResNet-50
/// with its head) build the reference's keys and shapes from their model
/// dicts; the mirrored benchmark configs resolve to the reference's sections.
#[test]
fn full_size_key_inventories_match_reference() {
    use selfsup::{
        algorithms::{key_map, AlgorithmConfig},
        weights::model_keys,
    };
    let reference: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(selfsup_tests::fixtures().join("finetune_keys.json")).unwrap()).unwrap();
    for (name, entry) in reference.iter().filter(|(k, _)| *k != "note") {
        let cfg: AlgorithmConfig = serde_json::from_value(entry["model"].clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        cfg.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        let keys = mim::keys_of(entry["keys"].as_array().unwrap());
        assert_eq!(model_keys(&cfg.init::<selfsup_tests::Inner>(&Default::default()), &key_map()), keys, "{name}: key inventory");
        // The mirrored TOML: its resolved sections hold the reference's (pipelines with
        // RandAugment and RandomErasing, optimiser, schedulers, loops, hooks), it decodes and
        // validates, and it builds the same model.
        let mirrored = selfsup_tests::workspace().join("configs").join(entry["config"].as_str().unwrap().replace(".py", ".toml"));
        let tree = selfsup::config::Config::from_file(&mirrored).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (key, want) in entry["run"].as_object().unwrap() {
            assert_holds(want, tree.value().get(key).unwrap_or(&serde_json::Value::Null), &format!("{name}: {key}"));
        }
        let loaded = selfsup::train::LoadedConfig::load(&mirrored, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let pipeline = loaded.run.train_dataloader.dataset.pipeline();
        selfsup::data::transforms::Pipeline::new(pipeline).unwrap_or_else(|e| panic!("{name}: train pipeline: {e}"));
        if name.starts_with("resnet50") {
            let built = loaded.run.model.init::<selfsup_tests::Inner>(&Default::default());
            assert_eq!(model_keys(&built, &key_map()), keys, "{name}: mirrored config");
        } else {
            // SyncBN aside (ResNet), the model dicts agree; ViT-B is built once, above.
            assert_holds(&entry["model"], tree.value().get("model").unwrap(), &format!("{name}: model"));
        }
    }
}

/// `ours` holds everything `want` says: every key of an object (a `null` may be absent),
/// arrays element by element, numbers to 1e-12 relative.
fn assert_holds(want: &serde_json::Value, ours: &serde_json::Value, at: &str) {
    use serde_json::Value as V;
    match (want, ours) {
        (V::Object(w), V::Object(o)) => {
            for (k, v) in w {
                assert_holds(v, o.get(k).unwrap_or(&V::Null), &format!("{at}.{k}"));
            }
        }
        (V::Array(w), V::Array(o)) => {
            assert_eq!(w.len(), o.len(), "{at}: length");
            for (i, (a, b)) in w.iter().zip(o).enumerate() {
                assert_holds(a, b, &format!("{at}[{i}]"));
            }
        }
        (V::Number(a), V::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!((a - b).abs() <= 1e-12 * a.abs().max(b.abs()), "{at}: {a} vs {b}");
        }
        _ => assert_eq!(want, ours, "{at}"),
    }
}

/// Forty digits in scikit-learn's CSV layout: row `i` is digit `i % 10`,
/// a bar at a class-dependent column plus noise-free ramps.
fn write_digits(path: &std::path::Path) {
    let mut text = String::new();
    for i in 0..40usize {
        let c = i % 10;
        let px: Vec<String> =
            (0..64).map(|j| if j % 8 == c % 8 || (c >= 8 && j / 8 == c - 6) { "16".into() } else { ((i + j) % 5).to_string() }).collect();
        text.push_str(&format!("{},{c}\n", px.join(",")));
    }
    std::fs::write(path, text).unwrap();
}

/// `selfsup finetune` end to end: a tiny MAE checkpoint initialises the ViT
/// classifier's backbone (its position embedding resized from an 8×8 to a
/// 4×4 grid; MAE's final norm ignored), the digits config trains with
/// Mixup/CutMix and stochastic depth, the ValLoop and the final evaluation
/// log top-1/top-5 on the test split.
#[test]
fn finetune_from_a_pretrained_checkpoint_end_to_end() {
    use selfsup::{
        algorithms::key_map,
        train::{finetune::finetune, finetune::load_finetune_config, LoadedConfig, Resume, TrainOptions},
        weights::{export_state_dict, write_safetensors},
    };
    let dir = tempfile::tempdir().unwrap();
    let digits = dir.path().join("digits.csv");
    write_digits(&digits);
    // The pre-trained model: the MAE demo, shrunk, as initialised.
    let ws = selfsup_tests::workspace();
    let mae_opts: Vec<String> = [
        "model.backbone.arch.embed_dims=32",
        "model.backbone.arch.num_layers=1",
        "model.backbone.arch.num_heads=2",
        "model.backbone.arch.feedforward_channels=64",
        "model.neck.embed_dim=32",
    ]
    .map(String::from)
    .to_vec();
    let mae = LoadedConfig::load(&ws.join("configs/mae/mae_vit-tiny-p4_demo_synthetic.toml"), &mae_opts).unwrap();
    let mae_state = export_state_dict(&mae.run.model.init_seeded::<selfsup_tests::Inner>(&Default::default(), 7), &key_map()).unwrap();
    let ckpt = dir.path().join("mae.safetensors");
    write_safetensors(&ckpt, &mae_state, &Default::default()).unwrap();

    let data = digits.display().to_string();
    let opts: Vec<String> = vec![
        "model.backbone.arch.embed_dims=32".into(),
        "model.backbone.arch.num_layers=1".into(),
        "model.backbone.arch.num_heads=2".into(),
        "model.backbone.arch.feedforward_channels=64".into(),
        "model.backbone.img_size=16".into(),
        "model.head.in_channels=32".into(),
        "train_dataloader.batch_size=6".into(),
        format!("train_dataloader.dataset.data_file={data}"),
        format!("val_dataloader.dataset.data_file={data}"),
        "train_dataloader.dataset.pipeline.1.scale=16".into(),
        "val_dataloader.dataset.pipeline.1.scale=16".into(),
        "train_cfg.max_epochs=2".into(),
        "train_cfg.val_interval=1".into(),
        "param_scheduler=[]".into(),
    ];
    let config = ws.join("configs/benchmarks/classification/digits/vit-tiny-p4_ft_digits.toml");
    let cfg = load_finetune_config(&config, Some(&ckpt), None, None, &opts).unwrap();
    // The backbone starts from the checkpoint.
    let model = cfg.run.model.load_pretrained(cfg.run.model.init::<selfsup_tests::Inner>(&Default::default())).unwrap();
    let loaded = export_state_dict(&model, &key_map()).unwrap();
    let as_f32 = |t: &selfsup::weights::Tensor| t.clone().convert::<f32>().to_vec::<f32>().unwrap();
    for key in ["layers.0.attn.qkv.weight", "layers.0.ffn.layers.1.bias", "cls_token", "patch_embed.projection.weight"] {
        assert_eq!(as_f32(&loaded[&format!("backbone.{key}")]), as_f32(&mae_state[&format!("backbone.{key}")]), "[{BACKEND}] {key}");
    }
    assert_eq!(loaded["backbone.pos_embed"].shape.to_vec(), vec![1, 17, 32], "resized to the 4x4 grid");
    assert_eq!(as_f32(&loaded["backbone.pos_embed"])[..32], as_f32(&mae_state["backbone.pos_embed"])[..32], "the cls row is kept");

    let work = dir.path().join("work");
    let topts = TrainOptions { work_dir: work.clone(), resume: Resume::No, progress: false, config_name: "config.toml".into() };
    let (summary, acc) = finetune::<B>(&cfg, &topts, &selfsup_tests::device()).unwrap();
    // 30 training digits in batches of 6, two epochs; 10 test digits.
    assert_eq!((summary.iters, acc.num_samples), (10, 10), "[{BACKEND}]");
    let (top1, top5) = (acc.top(1).unwrap(), acc.top(5).unwrap());
    assert!((0.0..=100.0).contains(&top1) && top5 >= top1 && (top1 / 10.0).fract().abs() < 1e-9, "[{BACKEND}] {acc:?}");
    let log = std::fs::read_to_string(work.join("scalars.json")).unwrap();
    let evals = log.lines().filter(|l| l.contains("accuracy/top1")).count();
    assert_eq!(evals, 3, "[{BACKEND}] the ValLoop after each epoch, and the final evaluation of the saved model:\n{log}");
    assert!(work.join("eval.json").exists());
    // A checkpoint without the prefix's tensors is refused by name.
    let cfg = load_finetune_config(&config, Some(&digits), None, None, &opts);
    let err = match cfg {
        Ok(c) => c.run.model.load_pretrained(c.run.model.init::<selfsup_tests::Inner>(&Default::default())).err().map(|e| e.message),
        Err(e) => Some(e.to_string()),
    };
    assert!(err.is_some_and(|m| m.contains("digits.csv")), "[{BACKEND}] a CSV is not a checkpoint");
}
