//! The pretext-task and clustering algorithms against golden fixtures from
//! MMSelfSup 1.0.0 (`tools/gen_fixtures_clustering.py`): key inventories,
//! the data preprocessor's stacking, train- and eval-mode features, and two
//! SGD iterations (the configs' `paramwise_cfg` included) with every loss,
//! gradient, weight and buffer after each.
//!
//! Tolerances come from the fixture's own float32-vs-float64 error
//! (`float32_error2.json`): each tensor within eight times that (eighty on
//! wgpu), at least 1e-4 relative to its largest value. Tensors the
//! reference itself gets wrong by more than 1e-3 in float32 carry no
//! information and are counted, not compared; losses and BatchNorm buffers
//! are always compared.
use std::collections::BTreeMap;

use burn::{module::AutodiffModule, optim::GradientsParams, tensor::Tensor};
use selfsup::{
    algorithms::{key_map, Algorithm, AlgorithmConfig},
    core::{DataSamples, Draws, SelfSupAlgorithm, SelfSupInputs, StepContext},
    train::optim::{OptimWrapperConfig, Optimizer},
    weights::{load_into, model_keys, read_checkpoint, LoadOptions},
};
use selfsup_tests::{device, gradient_values, state_values, values, Case, B, BACKEND};

/// One module per case, one `#[test]` per check.
macro_rules! parity_cases {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[test]
            fn key_inventory() {
                super::check_key_inventory(stringify!($case));
            }

            #[test]
            fn preprocessor_and_features() {
                super::check_preprocessor_and_features(stringify!($case));
            }

            #[test]
            fn two_iterations_with_buffers() {
                super::check_two_iterations(stringify!($case));
            }
        }
    )+};
}

parity_cases!(rotationpred_tiny, relativeloc_tiny, npid_tiny, deepcluster_tiny, odc_tiny);

const EXTRA_KEYS: &[&str] = &["batch_size", "seeds", "optimizer", "optim_wrapper", "fixture", "float32_error"];

fn model_config(case: &Case) -> AlgorithmConfig {
    let mut v = case.config.clone();
    let obj = v.as_object_mut().expect("config.json is an object");
    for k in EXTRA_KEYS {
        obj.remove(*k);
    }
    let cfg: AlgorithmConfig = serde_json::from_value(v).unwrap_or_else(|e| panic!("the reference model config decodes: {e}"));
    cfg.validate().unwrap_or_else(|e| panic!("the reference model config is valid: {e}"));
    cfg
}

fn load_model<BB: burn::tensor::backend::Backend>(case: &Case) -> Algorithm<BB> {
    load_model_with(case, read_checkpoint(case.dir.join("model.pth")).expect("read model.pth"))
}

/// The model as the iterations start: `model.pth` with what the clustering hook changed
/// (`hook.state.*`: the re-drawn classifier) put in.
fn load_model_after_hook<BB: burn::tensor::backend::Backend>(case: &Case) -> Algorithm<BB> {
    let mut state = read_checkpoint(case.dir.join("model.pth")).expect("read model.pth");
    for (key, t) in &case.io.tensors {
        if let Some(key) = key.strip_prefix("hook.state.") {
            assert!(state.tensors.insert(key.to_string(), t.clone()).is_some(), "hook.state.{key} is a model key");
        }
    }
    load_model_with(case, state)
}

fn load_model_with<BB: burn::tensor::backend::Backend>(case: &Case, state: selfsup::weights::StateDict) -> Algorithm<BB> {
    let model = model_config(case).init::<BB>(&Default::default());
    let (model, report) = load_into(model, &state, &key_map(), &LoadOptions::default())
        .unwrap_or_else(|e| panic!("[{BACKEND}] strict load of model.pth failed: {e}"));
    assert!(report.is_exact(), "{report}");
    model.prepare()
}

/// The pseudo-labels and indices of batch `prefix` (`data` or `data2`).
fn data_samples(case: &Case, prefix: &str) -> DataSamples<B> {
    let mut samples = DataSamples::default();
    for key in ["rot_label", "patch_label", "clustering_label"] {
        if let Some(t) = case.io.get(&format!("{prefix}.{key}")) {
            samples.pseudo_label.insert(key.to_string(), t.clone());
        }
    }
    if let Some(t) = case.io.get(&format!("{prefix}.sample_idx")) {
        samples.sample_idx = t.clone().convert::<i64>().to_vec::<i64>().unwrap().into_iter().map(|i| i as usize).collect();
    }
    samples
}

/// The views `loss()` receives in iteration `step` (0 or 1), with their data samples.
fn inputs(case: &Case, step: usize) -> SelfSupInputs<B> {
    let prefix = if step == 0 { "inputs" } else { "inputs2" };
    let views = (0..)
        .map_while(|i| case.io.get(&format!("{prefix}.{i}")).map(|_| case.tensor::<4, B>(&format!("{prefix}.{i}"))))
        .collect::<Vec<_>>();
    SelfSupInputs::new(views).with_data_samples(data_samples(case, if step == 0 { "data" } else { "data2" }))
}

/// The random draws of iteration `step`, replayed.
fn draws(case: &Case, step: usize) -> Draws {
    let prefix = if step == 0 { "draw" } else { "draw2" };
    let mut draws = Draws::seeded(0);
    if let Some(mask) = case.io.get(&format!("{prefix}.dropout_mask")) {
        let mask = mask.clone().convert::<f32>().to_vec::<f32>().expect("f32 mask");
        draws = draws
            .replay(selfsup::necks::relative_loc_neck::DROPOUT_DRAW, mask.clone())
            .replay(selfsup::necks::odc_neck::DROPOUT_DRAW, mask);
    }
    if let Some(neg) = case.io.get(&format!("{prefix}.neg_idx")) {
        draws = draws.replay(selfsup::memories::simple_memory::NEGATIVES_DRAW, neg.clone().convert::<f32>().to_vec::<f32>().unwrap());
    }
    draws
}

fn rel_err(ours: &[f32], reference: &[f32]) -> (f32, f32) {
    let scale = reference.iter().fold(0f32, |a, v| a.max(v.abs()));
    let diff = ours.iter().zip(reference).fold(0f32, |a, (x, y)| a.max((x - y).abs()));
    (if scale == 0.0 { diff } else { diff / scale }, scale)
}

fn check_key_inventory(name: &str) {
    let case = Case::load(name);
    let model = model_config(&case).init::<B>(&device());
    let ours = model_keys(&model, &key_map());
    let reference: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(case.dir.join("keys.json")).unwrap()).unwrap();
    let reference: BTreeMap<String, Vec<usize>> = reference
        .iter()
        .map(|e| {
            let shape = e["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
            (e["key"].as_str().unwrap().to_string(), shape)
        })
        .collect();
    assert_eq!(ours, reference, "[{BACKEND}] {name}: key inventory");
}

/// The data preprocessor turns the packed uint8 views (BGR, as mmcv decodes) into
/// exactly the stacked inputs; the backbone's train- and eval-mode features match.
fn check_preprocessor_and_features(name: &str) {
    let case = Case::load(name);
    let model = load_model::<B>(&case);
    let raw: Vec<Tensor<B, 4>> = (0..)
        .map_while(|i| case.io.get(&format!("data.packed.{i}")).map(|_| case.tensor::<4, B>(&format!("data.packed.{i}"))))
        .map(|bgr| bgr.flip([1]))
        .collect();
    let x = inputs(&case, 0);
    // Cases whose pipeline matters record the packed views (the others feed `loss()` directly).
    if !raw.is_empty() {
        let ours = model.data_preprocessor().apply_views(raw);
        assert_eq!(ours.len(), x.views.len(), "[{BACKEND}] {name}: preprocessed views");
        for (i, (a, b)) in ours.into_iter().zip(&x.views).enumerate() {
            let (err, _) = rel_err(&values(a), &values(b.clone()));
            assert!(err < 1e-6, "[{BACKEND}] {name}: preprocessed view {i}: {err:e}");
        }
    }
    let tol = 1e-4;
    // The maps are 1×1, so the pooled global features are their values.
    let train = values(model.global_features(&x).unwrap());
    let (err, _) = rel_err(&train, &case.f32("feat.0").0);
    assert!(err < tol, "[{BACKEND}] {name}: train-mode features {err:e}");
    // Without autodiff, BatchNorm uses its running statistics.
    let eval = load_model::<selfsup_tests::Inner>(&case);
    let view = case.tensor::<4, selfsup_tests::Inner>("inputs.0");
    let feats = values(eval.global_features(&SelfSupInputs::single(view)).unwrap());
    let (err, _) = rel_err(&feats, &case.f32("feat_eval.0").0);
    assert!(err < tol, "[{BACKEND}] {name}: eval-mode features {err:e}");
}

fn check_two_iterations(name: &str) {
    let case = Case::load(name);
    let mut model = load_model_after_hook::<B>(&case);
    if let Algorithm::Odc(m) = model {
        model = Algorithm::Odc(odc_init_memory(&case, m));
    }
    let ow: OptimWrapperConfig = serde_json::from_value(case.config["optim_wrapper"].clone()).expect("optim_wrapper");
    let mut optim = Optimizer::<B>::new(&ow, &model, &key_map());
    let lrs: Vec<f64> = optim.group_lr_mults().iter().map(|m| ow.lr() * m).collect();
    let measured: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case.dir.join("float32_error2.json")).expect("float32_error2.json")).unwrap();
    let (mut compared, mut uninformative, mut failures) = (0usize, 0usize, Vec::new());
    let mut check = |group: &str, key: &str, ours: &[f32], reference: &[f32]| {
        let rel = measured[group][key][0].as_f64().unwrap_or(0.0) as f32;
        let always = group.starts_with("loss") || key.contains("running_") || key.contains("num_batches");
        if !always && rel > 1e-3 {
            uninformative += 1;
            return;
        }
        let margin = if BACKEND == "wgpu" { 80.0 } else { 8.0 };
        let tol = (margin * rel).max(1e-4);
        let (err, scale) = rel_err(ours, reference);
        let ok = if scale < 1e-5 { ours.iter().zip(reference).all(|(a, b)| (a - b).abs() < 1e-5) } else { err <= tol };
        compared += 1;
        if ours.len() != reference.len() || !ok || ours.iter().any(|v| !v.is_finite()) {
            failures.push(format!("{group}.{key}: relative error {err:.3e} > {tol:e} (scale {scale:.3e})"));
        }
    };
    for step in 0..2 {
        let (loss_group, grad_group, state_group) = if step == 0 { ("loss", "grad", "iter1") } else { ("loss2", "grad2", "iter2") };
        let (out, state) = model.loss(&inputs(&case, step), &mut draws(&case, step)).unwrap();
        for (part, value) in out.parts() {
            check(loss_group, part, &values(value.clone()), &case.f32(&format!("{loss_group}.{part}")).0);
        }
        let grads = GradientsParams::from_grads(out.total().unwrap().backward(), &model);
        let ours = gradient_values(&model, &grads);
        for (key, g) in &ours {
            match case.io.get(&format!("{grad_group}.{key}")) {
                Some(r) => check(grad_group, key, g, &r.clone().convert::<f32>().to_vec::<f32>().unwrap()),
                None => assert!(g.iter().all(|v| *v == 0.0), "[{BACKEND}] {name}: {key} has a gradient the reference lacks"),
            }
        }
        let (stepped, _) = optim.step(&lrs, model, grads);
        model = stepped.after_step(state, &StepContext { iter: step, max_iters: 2, epoch: 0 });
        for (key, ours) in &state_values(&model.valid()) {
            check(state_group, key, ours, &case.f32(&format!("{state_group}.{key}")).0);
        }
        if let Algorithm::Odc(m) = model {
            // The memory after the step, then the ODCHook of this iteration.
            odc_check_memory(&case, &m, &format!("memory.{state_group}"));
            let m = odc_hook(&case, m, step);
            odc_check_memory(&case, &m, &format!("memory.after_hook{}", step + 1));
            model = Algorithm::Odc(m);
            let group = format!("after_hook{}", step + 1);
            for (key, ours) in &state_values(&model.valid()) {
                check(&group, key, ours, &case.f32(&format!("{group}.{key}")).0);
            }
        }
    }
    assert!(failures.is_empty(), "[{BACKEND}] {name}: {} of {compared} tensors off:\n{}", failures.len(), failures.join("\n"));
    assert!(compared > 100, "{name}: only {compared} tensors compared ({uninformative} uninformative)");
}

/// The demos train through their own pipelines: `RotationWithLabels` and
/// `RandomPatchWithLabels` make the pseudo-labels, the collate stacks them,
/// the data preprocessor stacks the views, and the losses start near
/// chance (ln 4 and ln 8).
#[test]
fn pretext_demos_train_from_their_pipelines() {
    for (path, chance) in [
        ("configs/rotation_pred/rotation-pred_resnet18-tiny_demo_synthetic.toml", 4f64.ln()),
        ("configs/relative_loc/relative-loc_resnet18-tiny_demo_synthetic.toml", 8f64.ln()),
    ] {
        for loss in &selfsup_tests::demo_losses(path, 4) {
            assert!((loss - chance).abs() < 0.5, "[{BACKEND}] {path}: loss {loss} far from chance {chance}");
        }
    }
}

/// `DeepClusterHook.deepcluster` on the fixture's 16 images: the eval-mode
/// features `neck([backbone(x)])`, faiss's PCA (mean, eigenvalues, the
/// whitened rows up to sign), the L2-normalised output, and faiss's k-means
/// from the recorded initial rows: the final centroids, the objective at
/// every iteration faiss records, and the labels. The uniform order takes `N/k + 1` of every cluster.
#[test]
fn deepcluster_hook_clustering() {
    use selfsup::memories::clustering::{kmeans, preprocess_features, train_pca};
    type I = selfsup_tests::Inner;
    let case = Case::load("deepcluster_tiny");
    let model = load_model::<I>(&case);
    let Algorithm::DeepCluster(dc) = &model else { panic!("a DeepCluster model") };
    let images = case.tensor::<4, I>("dataset.images");
    let feats = dc.cluster_features(&SelfSupInputs::single(images)).unwrap();
    let (reference, _) = case.f32("hook.features");
    let (err, _) = rel_err(&values(feats.clone()), &reference);
    assert!(err < 1e-4, "[{BACKEND}] eval-mode features {err:e}");

    // PCA on the reference's features: faiss's PCAMatrix(16, 8, eigen_power=-0.5).
    let x = case.tensor::<2, I>("hook.features");
    let pca = train_pca(&x, 8, -0.5).unwrap();
    for (what, ours, key) in [("mean", &pca.mean, "hook.pca.mean"), ("eigenvalues", &pca.eigenvalues, "hook.pca.eigenvalues")] {
        let (reference, _) = case.f32(key);
        let (err, _) = rel_err(&ours[..8.min(ours.len())], &reference[..8]);
        assert!(err < 1e-3, "[{BACKEND}] PCA {what}: {err:e}\n{ours:?}\n{reference:?}");
    }
    // Each whitened row, and the output column, up to its sign.
    let (a_ref, _) = case.f32("hook.pca.A");
    let (out_ref, _) = case.f32("hook.xb");
    let (xb, _) = preprocess_features(x.clone(), Some(8)).unwrap();
    let xb = values(xb);
    for r in 0..8 {
        let ours = &pca.a[r * 16..(r + 1) * 16];
        let theirs = &a_ref[r * 16..(r + 1) * 16];
        let sign = if ours.iter().zip(theirs).map(|(a, b)| a * b).sum::<f32>() < 0.0 { -1.0 } else { 1.0 };
        let flipped: Vec<f32> = ours.iter().map(|v| v * sign).collect();
        let (err, _) = rel_err(&flipped, theirs);
        assert!(err < 2e-3, "[{BACKEND}] PCA row {r}: {err:e}");
        let col = |m: &[f32]| (0..16).map(|i| m[i * 8 + r]).collect::<Vec<f32>>();
        let ours: Vec<f32> = col(&xb).iter().map(|v| v * sign).collect();
        let (err, _) = rel_err(&ours, &col(&out_ref));
        assert!(err < 2e-3, "[{BACKEND}] preprocessed column {r}: {err:e}");
    }

    // k-means from the recorded initial rows, on the reference's preprocessed features.
    let init: Vec<usize> = case
        .io
        .get("hook.kmeans.init_idx")
        .unwrap()
        .clone()
        .convert::<i64>()
        .to_vec::<i64>()
        .unwrap()
        .into_iter()
        .map(|i| i as usize)
        .collect();
    let xb_ref = case.tensor::<2, I>("hook.xb");
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let result = kmeans(&xb_ref, 4, 20, &init, &mut rng).unwrap();
    assert_eq!(result.splits, 0, "no empty cluster in the fixture");
    let (traj, _) = case.f32("hook.kmeans.centroids_per_iter");
    let (err, _) = rel_err(&values(result.centroids.clone()), &traj[20 * 32..]);
    assert!(err < 1e-4, "[{BACKEND}] centroids after 20 iterations: {err:e}");
    // The objective (within-cluster sum of squares at each assignment) as faiss's
    // `iteration_stats` records it, until it converges.
    let (obj, _) = case.f32("hook.kmeans.obj");
    for (i, r) in obj.iter().enumerate() {
        let ours = result.objective[i] as f32;
        assert!((ours - r).abs() <= 1e-4 * r.abs().max(1.0), "[{BACKEND}] k-means objective at iteration {i}: {ours} vs faiss {r}");
    }
    let last = *result.objective.last().unwrap() as f32;
    assert!((last - obj[obj.len() - 1]).abs() <= 1e-4 * last.abs().max(1.0), "[{BACKEND}] final objective {last}");
    let labels: Vec<i64> = result.labels.iter().map(|&l| l as i64).collect();
    let reference = case.io.get("hook.labels").unwrap().clone().convert::<i64>().to_vec::<i64>().unwrap();
    assert_eq!(labels, reference, "[{BACKEND}] cluster labels");
    // On our own preprocessed features (a sign flip per column keeps every distance).
    let ours = kmeans(&Tensor::<I, 2>::from_data(burn::tensor::TensorData::new(xb, [16, 8]), &Default::default()), 4, 20, &init, &mut rng)
        .unwrap();
    assert_eq!(ours.labels, result.labels, "[{BACKEND}] labels from our own PCA");
}

/// ODC's `init_memory` from the hook's features and labels: the bank holds the
/// normalised features (`memory.init.*`) and the centroids their cluster means
/// (`hook.state.memory_bank.centroids`).
fn odc_init_memory(case: &Case, m: selfsup::algorithms::odc::Odc<B>) -> selfsup::algorithms::odc::Odc<B> {
    let labels = ints(case, "hook.labels");
    let memory = m.memory_bank.clone().init_memory(case.tensor::<2, B>("hook.features"), labels).expect("init_memory");
    let m = m.map_memory(|_| memory);
    odc_check_memory(case, &m, "memory.init");
    let (err, _) = rel_err(&values(m.memory_bank.centroids.val()), &case.f32("hook.state.memory_bank.centroids").0);
    assert!(err < 1e-5, "[{BACKEND}] initial centroids {err:e}");
    m
}

fn ints(case: &Case, key: &str) -> Vec<i64> {
    case.io.get(key).unwrap_or_else(|| panic!("fixture tensor `{key}` missing")).clone().convert::<i64>().to_vec::<i64>().unwrap()
}

/// The memory's banks against `{prefix}.*`: labels exactly, features within eight times
/// the reference's own float32 error (`float32_error2.json`; eighty on wgpu), at least 1e-5.
fn odc_check_memory(case: &Case, m: &selfsup::algorithms::odc::Odc<B>, prefix: &str) {
    assert_eq!(m.memory_bank.labels(), ints(case, &format!("{prefix}.label_bank")).as_slice(), "[{BACKEND}] {prefix}.label_bank");
    let measured: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case.dir.join("float32_error2.json")).unwrap()).unwrap();
    let rel = measured[prefix]["feature_bank"][0].as_f64().unwrap_or(0.0) as f32;
    let tol = (if BACKEND == "wgpu" { 80.0 } else { 8.0 } * rel).max(1e-5);
    let (err, _) = rel_err(&values(m.memory_bank.feature_bank.get()), &case.f32(&format!("{prefix}.feature_bank")).0);
    assert!(err <= tol, "[{BACKEND}] {prefix}.feature_bank: {err:e} > {tol:e}");
}

/// `ODCHook.after_train_iter` after iteration `step` (0-based; the fixture's interval 2
/// for the centroids, 1 for small clusters): the recorded 2-means splits replayed, then
/// the re-weighting `(1/(hist + 1e-10))^0.5`, normalised, handed to the loss.
fn odc_hook(case: &Case, mut m: selfsup::algorithms::odc::Odc<B>, step: usize) -> selfsup::algorithms::odc::Odc<B> {
    let iter = step + 1;
    let hook = &case.config["fixture"]["odc_hook"];
    let every = |k: &str| iter.is_multiple_of(hook[k].as_u64().unwrap() as usize);
    if every("centroids_update_interval") {
        m = m.map_memory(|mem| mem.update_centroids(None));
    }
    if every("deal_with_small_clusters_interval") {
        let prefix = if step == 0 { "draw" } else { "draw2" };
        let mut j = 0;
        let memory = m.memory_bank.clone();
        let (memory, redirects) = memory.deal_with_small_clusters(|max_cluster, members, _| {
            let key = format!("{prefix}.redirect{j}");
            j += 1;
            assert_eq!(max_cluster as i64, ints(case, &format!("{key}.max_cluster"))[0], "[{BACKEND}] {key}: the largest cluster");
            let side = |s: &str| ints(case, &format!("{key}.{s}")).into_iter().map(|i| i as usize).collect::<Vec<_>>();
            let (a, b) = (side("sub1"), side("sub2"));
            assert_eq!(a.len() + b.len(), members.len(), "[{BACKEND}] {key}: members");
            (a, b)
        });
        let expected = case.config["fixture"]["odc_hook_redirects"][step].as_u64().unwrap() as usize;
        assert_eq!(redirects.len(), expected, "[{BACKEND}] refills after iteration {iter}");
        m = m.map_memory(|_| memory);
    }
    let hist = m.memory_bank.histogram();
    let inv: Vec<f32> = hist.iter().map(|&h| (1.0f32 / (h as f32 + 1e-10)).powf(0.5)).collect();
    let total: f32 = inv.iter().sum();
    m.set_loss_weight(inv.iter().map(|v| v / total).collect()).with_class_weighted(true)
}
