//! The parity checks every masked-image-modeling case shares: the tiny
//! case's key inventory (strict load, export with PyTorch's dtypes and
//! shapes, reload, backbone-only load) and two optimiser iterations with
//! every loss, gradient and state tensor compared against the reference,
//! with tolerances from the fixture's own float32-vs-float64 error
//! (`float32_error2.json`). Adam's normalised step (`≈ lr·g/|g|`) is not
//! determined where the reference gradient lies within the gradient
//! tolerance of zero (zero-initialised q biases and bias tables, patch
//! embeddings far from the loss): those elements of the weights may differ
//! by two steps of `lr` per iteration, which is what lavapipe's round-off
//! produced on wgpu; every other element, and every gradient, keeps the
//! tolerance.
//!
//! A family's test file supplies what differs: how `loss()`'s inputs are
//! built from the fixture, which draws are replayed, and how its backbone
//! loads alone.
use std::collections::BTreeMap;

use burn::{
    module::AutodiffModule,
    optim::GradientsParams,
    tensor::{backend::Backend, Tensor},
};
use selfsup::{
    algorithms::{key_map, Algorithm, AlgorithmConfig},
    core::{Draws, SelfSupAlgorithm, SelfSupInputs, StepContext},
    train::optim::{OptimWrapperConfig, Optimizer},
    weights::{export_state_dict, load_into, model_keys, read_checkpoint, LoadOptions, LoadReport, StateDict},
};

use crate::{device, gradient_values, state_values, values, Case, B, BACKEND};

/// Entries of `config.json` that describe the fixture, not the model.
const EXTRA_KEYS: &[&str] = &[
    "batch_size",
    "img_size",
    "seeds",
    "optim_wrapper",
    "optim_wrapper_real",
    "fixture",
    "float32_error",
    "teacher_temp",
    "max_iters",
    "schedule",
];

/// The case's model config (`config.json` less the fixture's own entries),
/// decoded and validated.
pub fn model_config(case: &Case) -> AlgorithmConfig {
    let mut v = case.config.clone();
    let obj = v.as_object_mut().expect("config.json is an object");
    for k in EXTRA_KEYS {
        obj.remove(*k);
    }
    let cfg: AlgorithmConfig = serde_json::from_value(v).unwrap_or_else(|e| panic!("the reference model config decodes: {e}"));
    cfg.validate().unwrap_or_else(|e| panic!("the reference model config is valid: {e}"));
    cfg
}

/// The case's model with `model.pth` loaded strictly.
pub fn load_model<BB: Backend>(case: &Case) -> Algorithm<BB> {
    let state = read_checkpoint(case.dir.join("model.pth")).expect("read model.pth");
    let model = model_config(case).init::<BB>(&Default::default());
    let (model, report) = load_into(model, &state, &key_map(), &LoadOptions::default())
        .unwrap_or_else(|e| panic!("[{BACKEND}] strict load of model.pth failed: {e}"));
    assert!(report.is_exact(), "{report}");
    model.prepare()
}

/// `keys.json` entries (`[key, shape]` pairs or `{key, shape}` objects) as a map.
pub fn keys_of(entries: &[serde_json::Value]) -> BTreeMap<String, Vec<usize>> {
    entries
        .iter()
        .map(|e| {
            let (key, shape) = match e {
                serde_json::Value::Array(a) => (&a[0], &a[1]),
                obj => (&obj["key"], &obj["shape"]),
            };
            (key.as_str().unwrap().to_string(), shape.as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect())
        })
        .collect()
}

/// The largest absolute difference relative to the reference's largest
/// magnitude, and that magnitude.
pub fn rel_err(ours: &[f32], reference: &[f32]) -> (f32, f32) {
    let scale = reference.iter().fold(0f32, |a, v| a.max(v.abs()));
    let diff = ours.iter().zip(reference).fold(0f32, |a, (x, y)| a.max((x - y).abs()));
    (if scale == 0.0 { diff } else { diff / scale }, scale)
}

/// Asserts a forward intermediate matches the reference's within 2e-4 of
/// its largest magnitude.
pub fn close<const D: usize>(what: &str, ours: Tensor<B, D>, reference: (Vec<f32>, Vec<usize>)) {
    close_within(what, ours, reference, 2e-4);
}

/// [`close`] with an explicit relative tolerance.
pub fn close_within<const D: usize>(what: &str, ours: Tensor<B, D>, reference: (Vec<f32>, Vec<usize>), tol: f32) {
    assert_eq!(ours.dims().to_vec(), reference.1, "[{BACKEND}] {what}: shape");
    let (err, _) = rel_err(&values(ours), &reference.0);
    assert!(err < tol, "[{BACKEND}] {what}: relative error {err:e}");
}

/// The tiny case's key inventory equals the reference `state_dict`'s;
/// loaded weights export back under the same keys with PyTorch's dtypes and
/// shapes and load again strictly; and `backbone_only` loads the backbone
/// alone from the whole checkpoint (prefix `backbone.`), as downstream use
/// does.
pub fn check_key_inventory<E: std::fmt::Display>(
    name: &str,
    backbone_only: impl Fn(Algorithm<B>, &StateDict, &LoadOptions) -> Result<LoadReport, E>,
) {
    let case = Case::load(name);
    let model = model_config(&case).init::<B>(&device());
    let reference: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(case.dir.join("keys.json")).unwrap()).unwrap();
    let inventory = model_keys(&model, &key_map());
    assert_eq!(inventory, keys_of(&reference), "[{BACKEND}] {name}: key inventory");

    let loaded = load_model::<B>(&case);
    let exported = export_state_dict(&loaded.valid(), &key_map()).unwrap();
    assert_eq!(exported.keys().cloned().collect::<Vec<_>>(), inventory.keys().cloned().collect::<Vec<_>>());
    let original = read_checkpoint(case.dir.join("model.pth")).unwrap();
    for (key, t) in &exported {
        let theirs = &original.tensors[key];
        assert_eq!((t.dtype, t.shape.to_vec()), (theirs.dtype, theirs.shape.to_vec()), "{name}: exported {key}");
    }
    let state = StateDict { tensors: exported, ..Default::default() };
    let (_, report) = load_into(model_config(&case).init::<B>(&device()), &state, &key_map(), &LoadOptions::default()).unwrap();
    assert!(report.is_exact(), "{report}");

    let opts = LoadOptions { strict: true, prefix: Some("backbone.".into()) };
    let report = backbone_only(model, &original, &opts).unwrap_or_else(|e| panic!("{name}: backbone-only load: {e}"));
    assert!(report.is_exact(), "{name}: backbone-only load: {report}");
}

/// The full-size configs a `*_keys.json` fixture lists (its `config`
/// entries, `.py` read as `.toml` under `configs/`) build the reference's
/// state-dict keys and shapes. Returns how many configs were checked.
pub fn check_full_size_key_inventories(file: &str) -> usize {
    let reference: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(crate::fixtures().join(file)).unwrap()).unwrap();
    let mut checked = 0;
    for (name, entry) in reference.iter().filter(|(k, _)| *k != "note") {
        let path = entry["config"].as_str().unwrap().replace(".py", ".toml");
        let cfg = selfsup::train::config::LoadedConfig::load(&crate::workspace().join("configs").join(&path), &[])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let model = cfg.run.model.init::<crate::Inner>(&Default::default());
        assert_eq!(model_keys(&model, &key_map()), keys_of(entry["keys"].as_array().unwrap()), "{name}: key inventory");
        checked += 1;
    }
    checked
}

/// Two AdamW iterations (the case's `optim_wrapper`: `paramwise_cfg`,
/// `clip_grad`) from the reference's weights, inputs and draws: every loss
/// entry, every gradient and the whole state after each iteration.
/// `inputs(case, model, step)` and `draws(case, step)` build what `loss()`
/// receives in iteration `step` (0 or 1).
pub fn check_two_iterations(
    name: &str,
    inputs: impl Fn(&Case, &Algorithm<B>, usize) -> SelfSupInputs<B>,
    draws: impl Fn(&Case, usize) -> Draws,
) {
    check_two_iterations_with(name, |_, m| m, inputs, draws);
}

/// [`check_two_iterations`] with `setup(case, model)` run on the loaded
/// model first (what a hook would set: DINO's teacher temperature). The
/// run's length for momentum schedules is the case's `max_iters` (default 2).
pub fn check_two_iterations_with(
    name: &str,
    setup: impl Fn(&Case, Algorithm<B>) -> Algorithm<B>,
    inputs: impl Fn(&Case, &Algorithm<B>, usize) -> SelfSupInputs<B>,
    draws: impl Fn(&Case, usize) -> Draws,
) {
    let case = Case::load(name);
    let mut model = setup(&case, load_model::<B>(&case));
    let max_iters = case.config.get("max_iters").and_then(|v| v.as_u64()).unwrap_or(2) as usize;
    let initial = read_checkpoint(case.dir.join("model.pth")).expect("read model.pth");
    let ow: OptimWrapperConfig = serde_json::from_value(case.config["optim_wrapper"].clone()).expect("optim_wrapper");
    let mut optim = Optimizer::<B>::new(&ow, &model, &key_map());
    let lrs: Vec<f64> = optim.group_lr_mults().iter().map(|m| ow.lr() * m).collect();
    let measured: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case.dir.join("float32_error2.json")).expect("float32_error2.json")).unwrap();
    let (mut compared, mut uninformative, mut failures) = (0usize, 0usize, Vec::new());
    // Adam's step is nearly `lr·g/|g|`, so where the reference gradient is
    // within the gradient tolerance of zero its sign, and the weight's
    // move, are not determined: those elements of the state may differ by
    // up to two steps of `lr` per iteration (`sign_free`, per key, from the
    // reference gradients so far). The gradients themselves are checked.
    let lr_max = lrs.iter().copied().fold(0.0, f64::max) as f32;
    let mut sign_free: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    // The key whose gradient decides a state key's moves: itself, or for a
    // teacher that copies or averages the student, the student's tensor.
    let grad_key = |key: &str, sign_free: &BTreeMap<String, Vec<bool>>| -> Option<Vec<bool>> {
        let student = [("teacher.module.0.", "backbone."), ("teacher.module.1.", "neck."), ("teacher.", "backbone.")]
            .iter()
            .find_map(|(t, s)| key.strip_prefix(t).map(|rest| format!("{s}{rest}")));
        sign_free.get(key).or_else(|| student.and_then(|k| sign_free.get(&k))).cloned()
    };
    let mut check = |group: &str, key: &str, ours: &[f32], reference: &[f32], slack: Option<(&[bool], f32)>| -> f32 {
        let rel = measured[group][key][0].as_f64().unwrap_or(0.0) as f32;
        let margin = if BACKEND == "wgpu" { 80.0 } else { 8.0 };
        // wgpu (lavapipe) is good to about 1e-3 here, as in the MAE test;
        // the second iteration's gradients are taken at weights that
        // already differ within the first step's tolerance (1e-2), and
        // small deep-block gradients (iTPN's, scale 4e-4) carry that.
        let floor = match (BACKEND == "wgpu", group) {
            (true, g) if g.starts_with("iter") || g == "grad2" => 1e-2,
            (true, _) => 2e-3,
            (false, g) if g.starts_with("iter") => 5e-4,
            (false, _) => 1e-4,
        };
        let tol = (margin * rel).max(floor);
        let (_, scale) = rel_err(ours, reference);
        if !group.starts_with("loss") && rel > 1e-3 {
            uninformative += 1;
            return tol * scale;
        }
        let allowed = |i: usize| {
            let base = if scale < 1e-5 { 1e-5 } else { tol * scale };
            base + slack.map_or(0.0, |(free, amount)| if free[i] { amount } else { 0.0 })
        };
        let worst = ours.iter().zip(reference).enumerate().map(|(i, (a, b))| (a - b).abs() / allowed(i)).fold(0f32, f32::max);
        compared += 1;
        if ours.len() != reference.len() || worst > 1.0 || ours.iter().any(|v| !v.is_finite()) {
            let (err, _) = rel_err(ours, reference);
            failures.push(format!("{group}.{key}: relative error {err:.3e} > {tol:e} (scale {scale:.3e}, {worst:.2}x the allowance)"));
        }
        tol * scale
    };
    for step in 0..2 {
        let (loss_group, grad_group, state_group) = if step == 0 { ("loss", "grad", "iter1") } else { ("loss2", "grad2", "iter2") };
        let (out, state) = model.loss(&inputs(&case, &model, step), &mut draws(&case, step)).unwrap();
        for (part, value) in out.parts() {
            check(loss_group, part, &values(value.clone()), &case.f32(&format!("{loss_group}.{part}")).0, None);
        }
        let grads = GradientsParams::from_grads(out.total().unwrap().backward(), &model);
        for (key, g) in &gradient_values(&model, &grads) {
            match case.io.get(&format!("{grad_group}.{key}")) {
                Some(r) => {
                    let reference = r.clone().convert::<f32>().to_vec::<f32>().unwrap();
                    let band = check(grad_group, key, g, &reference, None);
                    let free = sign_free.entry(key.clone()).or_insert_with(|| vec![false; reference.len()]);
                    for (f, r) in free.iter_mut().zip(&reference) {
                        *f |= r.abs() <= band;
                    }
                }
                None => assert!(g.iter().all(|v| *v == 0.0), "[{BACKEND}] {name}: {key} has a gradient the reference lacks"),
            }
        }
        let (stepped, _) = optim.step(&lrs, model, grads);
        model = stepped.after_step(state, &StepContext { iter: step, max_iters, epoch: 0 });
        let amount = 2.0 * lr_max * (step + 1) as f32;
        for (key, ours) in &state_values(&model.valid()) {
            let name = format!("{state_group}.{key}");
            // Frozen parts (a CLIP teacher) may be recorded once, in model.pth:
            // the generator asserts they never change.
            let reference = match case.io.get(&name) {
                Some(_) => case.f32(&name).0,
                None if key.starts_with("target_generator.") => initial.tensors[key].clone().convert::<f32>().to_vec::<f32>().unwrap(),
                None => panic!("fixture tensor `{name}` missing"),
            };
            let free = grad_key(key, &sign_free).filter(|f| f.len() == reference.len());
            check(state_group, key, ours, &reference, free.as_deref().map(|f| (f, amount)));
        }
    }
    assert!(failures.is_empty(), "[{BACKEND}] {name}: {} of {compared} tensors off:\n{}", failures.len(), failures.join("\n"));
    assert!(compared > 40, "{name}: only {compared} tensors compared ({uninformative} uninformative)");
}

/// One test module per fixture case: its key inventory (the backbone of
/// `Algorithm::$variant` loading alone) and two iterations, from the
/// calling file's `inputs::<B>` and `draws` functions.
#[macro_export]
macro_rules! backbone_parity_cases {
    ($variant:ident; $($case:ident),+ $(,)?) => {$(
        mod $case {
            #[test]
            fn key_inventory() {
                selfsup_tests::mim::check_key_inventory(stringify!($case), |model, state, opts| match model {
                    selfsup::algorithms::Algorithm::$variant(m) => {
                        selfsup::weights::load_into(m.backbone, state, &selfsup::algorithms::key_map(), opts).map(|r| r.1)
                    }
                    other => panic!("unexpected {}", selfsup::core::SelfSupAlgorithm::name(&other)),
                });
            }

            #[test]
            fn two_iterations() {
                selfsup_tests::mim::check_two_iterations(stringify!($case), super::inputs::<selfsup_tests::B>, super::draws);
            }
        }
    )+};
}
