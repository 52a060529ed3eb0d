//! CAE against golden fixtures from MMSelfSup 1.0.0
//! (`tools/gen_fixtures_cae.py`): the key inventories of the tiny and the
//! full-size configs (teacher and DALL-E included, and the backbone alone),
//! two AdamW iterations with every loss entry (`loss`, `main`, `align`),
//! gradient and state tensor (the teacher's momentum copy included), the
//! forward's pieces, and the demo's training from its pipeline.
use burn::{
    module::{Module, Param},
    tensor::{Tensor, TensorData},
};
use selfsup::{
    algorithms::{key_map, Algorithm},
    core::{DataSamples, SelfSupAlgorithm, SelfSupInputs, StepContext},
    layers::{
        functional::linear,
        init::InitRng,
        transformer_blocks::{CaeTransformerRegressorLayerConfig, CrossMultiheadAttention, MultiheadAttention},
        NormCfg,
    },
    weights::load_into,
};
use selfsup_tests::{
    device,
    mim::{self, close, load_model},
    values, Case, Inner, B, BACKEND,
};

mod cae_tiny {
    #[test]
    fn key_inventory() {
        super::check_key_inventory("cae_tiny");
    }

    #[test]
    fn two_iterations() {
        selfsup_tests::mim::check_two_iterations("cae_tiny", super::inputs::<selfsup_tests::B>, |_, _| selfsup::core::Draws::seeded(0));
    }
}

fn check_key_inventory(name: &str) {
    mim::check_key_inventory(name, |model, state, opts| match model {
        Algorithm::Cae(m) => load_into(m.backbone, state, &key_map(), opts).map(|r| r.1),
        other => panic!("unexpected {}", other.name()),
    });
}

/// Both views of iteration `step` through the model's own
/// `CAEDataPreprocessor` (the raw views are BGR, as mmcv loads them), and
/// the pipeline's masks.
fn inputs<BB: burn::tensor::backend::Backend>(case: &Case, model: &Algorithm<BB>, step: usize) -> SelfSupInputs<BB> {
    let sfx = if step == 0 { "" } else { "2" };
    let raw = [format!("raw{sfx}"), format!("raw{sfx}_b")].map(|k| case.tensor::<4, BB>(&k).flip([1]));
    let views = model.data_preprocessor().apply_views(raw.to_vec());
    let samples = DataSamples { mask: Some(case.tensor::<3, BB>(&format!("mask{sfx}"))), ..Default::default() };
    SelfSupInputs { views, data_samples: samples }
}

fn cae(model: &Algorithm<B>) -> &selfsup::algorithms::cae::Cae<B> {
    match model {
        Algorithm::Cae(m) => m,
        other => panic!("unexpected {}", other.name()),
    }
}

/// The preprocessed views; the backbone on the visible patches, the
/// teacher on the masked ones; the regressor's latent prediction, the
/// decoder's output and the logits; the DALL-E logits of both iterations.
#[test]
fn forward_intermediates_match_reference() {
    use selfsup::backbones::cae_vit::MaskIds;
    let case = Case::load("cae_tiny");
    let model = load_model::<B>(&case);
    let x = inputs(&case, &model, 0);
    close("inputs", x.views[0].clone(), case.f32("inputs"));
    close("inputs_b", x.views[1].clone(), case.f32("inputs_b"));
    let m = cae(&model);
    let mask = x.data_samples.mask.clone().unwrap();
    let [n, h, w] = mask.dims();
    let flat = mask.reshape([n, h * w]);
    let ids = MaskIds::from_mask(&flat).unwrap();
    let (visible, masked) = (ids.visible.unwrap(), ids.masked.unwrap());
    let unmasked = m.backbone.forward(x.views[0].clone(), flat).unwrap();
    close("unmasked", unmasked.clone(), case.f32("unmasked"));
    let teacher_out = m.teacher.forward_visible(x.views[0].clone(), Some(&masked), "teacher", None).unwrap();
    close("teacher_out", teacher_out, case.f32("teacher_out"));
    let [_, u1, d] = unmasked.dims();
    let out =
        m.neck.forward(unmasked.slice([0..n, 1..u1, 0..d]), m.backbone.pos_embed_of(&masked), m.backbone.pos_embed_of(&visible), None);
    close("latent_pred", out.latent_pred, case.f32("latent_pred"));
    close("decoder", out.decoded, case.f32("decoder"));
    close("logits", out.logits, case.f32("logits"));
    close("target_logits", m.target_generator.forward(x.views[1].clone()), case.f32("target_logits"));
    let x2 = inputs(&case, &model, 1);
    close("inputs2_b", x2.views[1].clone(), case.f32("inputs2_b"));
    close("target_logits2", m.target_generator.forward(x2.views[1].clone()), case.f32("target_logits2"));
}

/// A freshly built CAE's teacher holds the backbone's initial weights
/// (MMSelfSup's `_init_teacher` copy) and trains nothing; `after_step`
/// applies `t·m + b·(1 − m)` with the backbone `loss` saw.
#[test]
fn teacher_starts_as_the_backbone_and_follows_it_by_momentum() {
    let case = Case::load("cae_tiny");
    let mut cfg = case.config.clone();
    let obj = cfg.as_object_mut().unwrap();
    obj.retain(|k, _| ["type", "data_preprocessor", "backbone", "neck", "head", "target_generator"].contains(&k.as_str()));
    obj.insert("base_momentum".into(), serde_json::json!(0.25));
    let cfg: selfsup::algorithms::AlgorithmConfig = serde_json::from_value(cfg).unwrap();
    cfg.validate().unwrap();
    let model = cfg.init::<B>(&device()).prepare();
    let Algorithm::Cae(m) = &model else { panic!("CAE") };
    let state = |module: &selfsup::backbones::CaeVit<B>| selfsup_tests::state_values(&burn::module::AutodiffModule::valid(module));
    let (backbone0, teacher0) = (state(&m.backbone), state(&m.teacher));
    assert_eq!(backbone0, teacher0, "the teacher starts as the backbone");
    assert!(m.teacher.num_params() > 0);
    let mut trainable = 0;
    m.teacher.visit(&mut CountTrainable(&mut trainable));
    assert_eq!(trainable, 0, "the teacher has no trainable parameter");

    // One loss() on the fixture's batch, a backbone changed by hand (the
    // optimiser's step), then after_step: t = 0.25·t + 0.75·b_seen.
    let x = inputs(&case, &model, 0);
    let (_, step_state) = model.loss(&x, &mut selfsup::core::Draws::seeded(0)).unwrap();
    let Algorithm::Cae(mut m) = model else { panic!("CAE") };
    m.backbone = m.backbone.map(&mut AddOne);
    let m = selfsup::core::SelfSupAlgorithm::after_step(m, unwrap_state(step_state), &StepContext { iter: 0, max_iters: 1, epoch: 0 });
    let teacher1 = state(&m.teacher);
    for (k, t0) in &teacher0 {
        let b = &backbone0[k];
        let want: Vec<f32> = t0.iter().zip(b).map(|(t, b)| t * 0.25 + b * 0.75).collect();
        assert_eq!(teacher1[k], want, "[{BACKEND}] teacher {k}");
    }
}

fn unwrap_state(s: selfsup::algorithms::AnyStepState<B>) -> selfsup::algorithms::cae::CaeStepState<B> {
    match s {
        selfsup::algorithms::AnyStepState::Cae(s) => s,
        other => panic!("unexpected {other:?}"),
    }
}

struct CountTrainable<'a>(&'a mut usize);

impl burn::module::ModuleVisitor<B> for CountTrainable<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        *self.0 += param.val().is_require_grad() as usize;
    }
}

struct AddOne;

impl burn::module::ModuleMapper<B> for AddOne {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        param.map(|t| t.add_scalar(1.0))
    }
}

/// MMSelfSup's `MultiheadAttention` without `qkv_bias` adds
/// `cat(q_bias, 0, v_bias)` to the fused projection: the same as a fused
/// bias with zero keys.
#[test]
fn qv_biases_equal_a_fused_bias_with_zero_keys() {
    let dev = Default::default();
    let t = |v: Vec<f32>, s: Vec<usize>| Tensor::<Inner, 1>::from_data(TensorData::new(v, s), &dev);
    let mut rng = InitRng::new(3);
    let mut a = MultiheadAttention::<Inner>::new(8, 2, false, &dev, &mut rng);
    let q: Vec<f32> = (0..8).map(|i| i as f32 * 0.1).collect();
    let v: Vec<f32> = (0..8).map(|i| -(i as f32) * 0.2).collect();
    a.q_bias = Some(Param::from_tensor(t(q.clone(), vec![8])));
    a.v_bias = Some(Param::from_tensor(t(v.clone(), vec![8])));
    let mut fused = MultiheadAttention::<Inner>::new(8, 2, true, &dev, &mut rng);
    fused.qkv.weight = Param::from_tensor(a.qkv.weight.val());
    fused.proj = a.proj.clone();
    fused.qkv.bias = Some(Param::from_tensor(t([q, vec![0.0; 8], v].concat(), vec![24])));
    let x = Tensor::<Inner, 3>::from_data(TensorData::new((0..40).map(|i| ((i * 7) % 11) as f32 / 11.0).collect(), [1, 5, 8]), &dev);
    let diff = values((a.forward(x.clone()) - fused.forward(x)).abs().max())[0];
    assert!(diff < 1e-6, "[{BACKEND}] {diff}");
}

/// With a single key every attention weight is 1: the cross attention
/// returns the projected value for every query.
#[test]
fn cross_attention_with_one_key_returns_its_value() {
    let dev = Default::default();
    let a = CrossMultiheadAttention::<Inner>::new(4, 2, true, None, &dev, &mut InitRng::new(5));
    let q = Tensor::<Inner, 3>::from_data(TensorData::new((0..12).map(|i| i as f32).collect(), [1, 3, 4]), &dev);
    let kv = Tensor::<Inner, 3>::from_data(TensorData::new(vec![0.5, -1.0, 2.0, 0.25], [1, 1, 4]), &dev);
    let out = a.forward(q, kv.clone(), kv.clone());
    let expected = linear(&a.proj, linear(&a.v, kv)).repeat_dim(1, 3);
    let diff = values((out - expected).abs().max())[0];
    assert!(diff < 1e-6, "[{BACKEND}] {diff}");
}

/// Without `init_values` the regressor's scales are frozen ones, with them
/// trained parameters: MMSelfSup's keys exist either way.
#[test]
fn regressor_gammas_are_frozen_ones_without_init_values() {
    let dev = Default::default();
    let mut cfg = CaeTransformerRegressorLayerConfig {
        embed_dims: 4,
        num_heads: 2,
        feedforward_channels: 8,
        qkv_bias: true,
        qk_scale: None,
        drop_path_rate: 0.0,
        norm_cfg: NormCfg::layer_norm(1e-6),
        init_values: 0.0,
    };
    let layer = cfg.init::<B>(&dev, &mut InitRng::new(1));
    assert!(!layer.gamma_1_cross.val().is_require_grad());
    assert_eq!(values(layer.gamma_2_cross.val()), vec![1.0; 4]);
    cfg.init_values = 0.1;
    let layer = cfg.init::<B>(&dev, &mut InitRng::new(1));
    assert!(layer.gamma_1_cross.val().is_require_grad());
}

/// The full-size config under `configs/cae/` builds MMSelfSup's state-dict
/// keys and shapes: backbone, teacher, neck and the DALL-E encoder.
#[test]
fn full_size_key_inventory_matches_reference() {
    assert_eq!(mim::check_full_size_key_inventories("cae_keys.json"), 1);
}

/// The demo trains from its pipeline (two views of one crop, the BEiT
/// masks, a randomly initialised tiny DALL-E) with finite losses.
#[test]
fn cae_demo_trains_from_its_pipeline() {
    let path = "configs/cae/cae_vit-tiny_demo_synthetic.toml";
    let losses = selfsup_tests::demo_losses(path, 2);
    assert!(losses.iter().all(|l| l.is_finite() && *l > 0.0), "[{BACKEND}] {path}: {losses:?}");
}

/// The three CAE configs under `configs/cae/` resolve (`_base_` merged) to
/// what MMEngine makes of MMSelfSup's: model, optimiser, schedule, data,
/// hooks and seed.
#[test]
fn resolved_configs_match_mmselfsup() {
    let reference: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(selfsup_tests::fixtures().join("cae_config_reference.json")).unwrap()).unwrap();
    assert_eq!(reference.len(), 3);
    for (rel, r) in &reference {
        let file = selfsup_tests::workspace().join("configs").join(rel.replace(".py", ".toml"));
        let ours = selfsup::config::Config::from_file(&file).unwrap_or_else(|e| panic!("{rel}: {e}"));
        for path in [
            "model",
            "optimizer",
            "optim_wrapper",
            "param_scheduler",
            "train_cfg",
            "train_dataloader.batch_size",
            "train_dataloader.num_workers",
            "train_dataloader.dataset",
            "default_hooks",
            "randomness",
            "find_unused_parameters",
        ] {
            let want = path.split('.').fold(r, |v, k| &v[k]);
            let got = ours.get(path).unwrap_or_else(|| panic!("{rel}: {path} missing from our config"));
            assert_eq!(numbers_as_f64(got), numbers_as_f64(want), "{rel}: {path}");
        }
    }
}

/// JSON numbers compared as f64, so `2` equals `2.0`; `None` entries left
/// out (TOML has no null: an absent key is the default `None`).
fn numbers_as_f64(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Number(n) => serde_json::json!(n.as_f64()),
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(numbers_as_f64).collect()),
        serde_json::Value::Object(o) => {
            serde_json::Value::Object(o.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), numbers_as_f64(v))).collect())
        }
        other => other.clone(),
    }
}
