//! Optimisers against MMSelfSup's and PyTorch's update rules (values from
//! `mmselfsup.engine.optimizers.LARS`, `torch.optim.SGD` and
//! `mmcls.engine.optimizers.Lamb`, 2 steps).
use burn::{
    module::{Module, Param},
    optim::GradientsParams,
    tensor::{backend::Backend, Tensor, TensorData},
};
use selfsup::{
    train::optim::{OptimWrapperConfig, Optimizer},
    weights::KeyMap,
};
use selfsup_tests::{assert_close, device, values, B as AB};

#[derive(Module, Debug)]
struct Two<B: Backend> {
    w: Param<Tensor<B, 1>>,
    q: Param<Tensor<B, 1>>,
}

fn run(optimizer: serde_json::Value, paramwise: serde_json::Value) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let dev = device();
    let t = |v: &[f32]| Param::from_tensor(Tensor::<AB, 1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &dev));
    let mut m = Two { w: t(&[0.5, -1.0, 2.0, 0.25]), q: t(&[1.0, 2.0]) };
    let cfg: OptimWrapperConfig =
        serde_json::from_value(serde_json::json!({ "optimizer": optimizer, "paramwise_cfg": paramwise })).unwrap();
    let mut opt = Optimizer::<AB>::new(&cfg, &m, &KeyMap::new());
    let lrs: Vec<f64> = opt.group_lr_mults().iter().map(|x| cfg.lr() * x).collect();
    let (mut ws, mut qs) = (vec![], vec![]);
    for _ in 0..2 {
        let gw = Tensor::<AB, 1>::from_data(TensorData::new(vec![0.1f32, 0.2, -0.3, 0.05], [4]), &dev);
        let gq = Tensor::<AB, 1>::from_data(TensorData::new(vec![0.5f32, -0.5], [2]), &dev);
        let loss = (m.w.val() * gw).sum() + (m.q.val() * gq).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        m = opt.step(&lrs, m, grads).0;
        ws.push(values(m.w.val()));
        qs.push(values(m.q.val()));
    }
    (ws, qs)
}

#[test]
fn lars_matches_mmselfsup_with_lars_exclude() {
    let (w, q) = run(
        serde_json::json!({"type": "LARS", "lr": 0.3, "momentum": 0.9, "weight_decay": 1e-4, "eta": 0.001}),
        serde_json::json!({"custom_keys": {"q": {"lars_exclude": true, "decay_mult": 0.0}}}),
    );
    assert_close("LARS step 1", &w[0], &[0.499816835, -1.00036597, 2.00054884, 0.249908417], 1e-6, 1e-7);
    assert_close("LARS step 2", &w[1], &[0.499468803, -1.00106132, 2.00159168, 0.249734402], 1e-6, 1e-7);
    assert_close("LARS excluded step 1", &q[0], &[0.850000024, 2.1500001], 1e-6, 1e-7);
    assert_close("LARS excluded step 2", &q[1], &[0.564999998, 2.43500018], 1e-6, 1e-7);
}

/// `torch.optim.AdamW` (betas 0.9/0.95, weight decay 0.05 on `w` only),
/// 2 steps. On flex and tch this is the fused step, elsewhere the generic one.
#[test]
fn adamw_matches_torch() {
    let (w, q) = run(
        serde_json::json!({"type": "AdamW", "lr": 0.1, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.05}),
        serde_json::json!({"custom_keys": {"q": {"decay_mult": 0.0}}}),
    );
    assert_close("AdamW step 1", &w[0], &[0.397500008, -1.09500003, 2.08999991, 0.148750007], 1e-6, 1e-7);
    assert_close("AdamW step 2", &w[1], &[0.295512527, -1.18952501, 2.17954993, 0.0480062738], 1e-6, 1e-7);
    assert_close("AdamW step 1 (q)", &q[0], &[0.900000036, 2.0999999], 1e-6, 1e-7);
    assert_close("AdamW step 2 (q)", &q[1], &[0.800000012, 2.19999981], 1e-6, 1e-7);
}

#[derive(Module, Debug)]
struct Long<B: Backend> {
    p: Param<Tensor<B, 1>>,
}

/// AdamW on a parameter long enough to be split over threads by the fused
/// flex step, with gradients that change sign and size between steps,
/// against the update computed here in f64.
#[test]
fn adamw_on_a_long_parameter_matches_a_direct_computation() {
    let dev = device();
    let n = 100_003;
    let (lr, b1, b2, eps, wd): (f64, f64, f64, f64, f64) = (0.01, 0.9, 0.999, 1e-8, 0.1);
    let init: Vec<f64> = (0..n).map(|i| ((i as f64) * 0.37).sin()).collect();
    let grad = |step: usize| -> Vec<f64> { (0..n).map(|i| ((i * (step + 2)) as f64 * 0.11).cos() * (1.0 + step as f64)).collect() };
    let f32s = |v: &[f64]| v.iter().map(|x| *x as f32).collect::<Vec<f32>>();
    let mut m = Long { p: Param::from_tensor(Tensor::<AB, 1>::from_data(TensorData::new(f32s(&init), [n]), &dev)) };
    let cfg: OptimWrapperConfig = serde_json::from_value(
        serde_json::json!({ "optimizer": {"type": "AdamW", "lr": lr, "betas": [b1, b2], "eps": eps, "weight_decay": wd} }),
    )
    .unwrap();
    let mut opt = Optimizer::<AB>::new(&cfg, &m, &KeyMap::new());
    let lrs: Vec<f64> = opt.group_lr_mults().iter().map(|x| lr * x).collect();
    let (mut p, mut mo, mut v) = (init.clone(), vec![0.0; n], vec![0.0; n]);
    for step in 0..3 {
        let g = grad(step);
        let c = Tensor::<AB, 1>::from_data(TensorData::new(f32s(&g), [n]), &dev);
        let grads = GradientsParams::from_grads((m.p.val() * c).sum().backward(), &m);
        m = opt.step(&lrs, m, grads).0;
        let t = (step + 1) as i32;
        let (bias1, bias2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        for i in 0..n {
            mo[i] = b1 * mo[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            p[i] = p[i] * (1.0 - lr * wd) - lr / bias1 * mo[i] / (v[i].sqrt() / bias2.sqrt() + eps);
        }
        assert_close(&format!("AdamW step {t}, {n} elements"), &values(m.p.val()), &f32s(&p), 1e-5, 1e-6);
    }
}

#[test]
fn sgd_nesterov_matches_torch() {
    let (w, q) =
        run(serde_json::json!({"type": "SGD", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "nesterov": true}), serde_json::json!({}));
    assert_close("SGD step 1", &w[0], &[0.480990499, -1.03798103, 2.05696201, 0.24049525], 1e-6, 1e-7);
    assert_close("SGD step 2", &w[1], &[0.4538773, -1.09215319, 2.13820672, 0.22693865], 1e-6, 1e-7);
    assert_close("SGD step 2 (q)", &q[1], &[0.769455731, 2.23040605], 1e-6, 1e-7);
}

/// mmcls's `Lamb` (values from `mmcls.engine.optimizers.Lamb`, 2 steps):
/// its own global-norm clipping is active (‖g‖ = 0.80 > 0.5), the trust
/// ratio applies to `w` and not to `q` (no weight decay there).
#[test]
fn lamb_matches_mmcls() {
    let (w, q) = run(
        serde_json::json!({"type": "Lamb", "lr": 0.01, "betas": [0.9, 0.95], "weight_decay": 0.04, "max_grad_norm": 0.5}),
        serde_json::json!({"custom_keys": {"q": {"decay_mult": 0.0}}}),
    );
    assert_close("Lamb step 1", &w[0], &[0.487984687, -1.01130867, 2.01083755, 0.23810266], 1e-6, 1e-7);
    assert_close("Lamb step 2", &w[1], &[0.475914598, -1.02266884, 2.02172446, 0.226151109], 1e-6, 1e-7);
    assert_close("Lamb no-decay step 1", &q[0], &[0.99000001, 2.00999999], 1e-6, 1e-7);
    assert_close("Lamb no-decay step 2", &q[1], &[0.980000019, 2.01999998], 1e-6, 1e-7);
}

/// Layer-wise lr decay against MMSelfSup's
/// `LearningRateDecayOptimWrapperConstructor` on the tiny MAE fixture
/// model: every trainable parameter's lr and weight decay, for the ViT
/// fine-tuning wrapper and for overlapping custom keys (the shortest
/// matching key wins; a group keeps its first parameter's decay).
#[test]
fn layer_decay_matches_mmselfsup() {
    use selfsup::algorithms::AlgorithmConfig;
    let groups: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(selfsup_tests::fixtures().join("layer_decay/groups.json")).unwrap()).unwrap();
    let mut model_cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(selfsup_tests::fixtures().join("mae_tiny_normpix/config.json")).unwrap()).unwrap();
    for extra in ["batch_size", "optim_wrapper", "optimizer_resolved", "seeds", "derived"] {
        model_cfg.as_object_mut().unwrap().remove(extra);
    }
    let model_cfg: AlgorithmConfig = serde_json::from_value(model_cfg).unwrap();
    let model = model_cfg.init::<AB>(&device());
    for case in ["vit_ft", "overlap"] {
        let cfg: OptimWrapperConfig = serde_json::from_value(groups[case]["optim_wrapper"].clone()).unwrap();
        cfg.validate().unwrap();
        let opt = Optimizer::<AB>::new(&cfg, &model, &selfsup::algorithms::key_map());
        let wd = match &cfg.optimizer {
            selfsup::train::optim::OptimizerConfig::AdamW(c) => c.weight_decay,
            _ => unreachable!(),
        };
        let expected = groups[case]["params"].as_object().unwrap();
        let infos = opt.param_infos();
        let ours: Vec<&str> = infos.iter().map(|i| i.name.as_str()).collect();
        let theirs: Vec<&str> = expected.keys().map(String::as_str).collect();
        assert_eq!(ours, theirs, "{case}: trainable parameters");
        for info in infos {
            let e = &expected[&info.name];
            let (lr, decay) = (cfg.lr() * info.setting.lr_mult, wd * info.setting.decay_mult);
            assert!((lr - e["lr"].as_f64().unwrap()).abs() < 1e-12, "{case} {}: lr {lr} vs {}", info.name, e["lr"]);
            assert!(
                (decay - e["weight_decay"].as_f64().unwrap()).abs() < 1e-12,
                "{case} {}: wd {decay} vs {}",
                info.name,
                e["weight_decay"]
            );
        }
    }
}

#[test]
fn layer_decay_fields_need_their_constructor() {
    let parse = |v: serde_json::Value| serde_json::from_value::<OptimWrapperConfig>(v).unwrap().validate().map_err(|e| e.0);
    let opt = serde_json::json!({"type": "AdamW", "lr": 1e-3, "layer_decay_rate": 0.65, "model_type": "vit"});
    assert_eq!(parse(serde_json::json!({ "optimizer": opt })), Err("optim_wrapper.optimizer.layer_decay_rate".to_string()));
    let with = |opt: serde_json::Value| serde_json::json!({ "optimizer": opt, "constructor": "mmselfsup.LearningRateDecayOptimWrapperConstructor" });
    assert_eq!(parse(with(opt)), Ok(()));
    let swin = serde_json::json!({"type": "AdamW", "layer_decay_rate": 0.9, "model_type": "swin"});
    assert_eq!(parse(with(swin)), Err("optim_wrapper.optimizer.model_type".to_string()));
    let unknown = serde_json::json!({ "optimizer": {"type": "SGD"}, "constructor": "MyConstructor" });
    assert_eq!(parse(unknown), Err("optim_wrapper.constructor".to_string()));
}

#[test]
fn loss_scaler_grows_backs_off_and_parses_mmengine_settings() {
    use selfsup::train::optim::LossScaler;
    let mut s = LossScaler::dynamic();
    assert_eq!(s.scale, 65536.0);
    s.update(true);
    assert_eq!((s.scale, s.growth_tracker), (32768.0, 0));
    for _ in 0..1999 {
        s.update(false);
    }
    assert_eq!(s.scale, 32768.0);
    s.update(false);
    assert_eq!((s.scale, s.growth_tracker), (65536.0, 0));
    let mut fixed = LossScaler::fixed(512.0);
    fixed.update(true);
    fixed.update(false);
    assert_eq!(fixed.scale, 512.0);

    let amp = |extra: serde_json::Value| {
        let mut v = serde_json::json!({"type": "AmpOptimWrapper", "optimizer": {"type": "AdamW"}});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value::<OptimWrapperConfig>(v).unwrap().amp()
    };
    let a = amp(serde_json::json!({"loss_scale": "dynamic"})).unwrap().unwrap();
    assert_eq!((a.dtype, a.scaler), (burn::tensor::FloatDType::F16, LossScaler::dynamic()));
    let a = amp(serde_json::json!({"dtype": "bfloat16", "loss_scale": 128.0})).unwrap().unwrap();
    assert_eq!((a.dtype, a.scaler.scale, a.scaler.growth_factor), (burn::tensor::FloatDType::BF16, 128.0, 1.0));
    let a = amp(serde_json::json!({"loss_scale": {"init_scale": 1024.0, "growth_interval": 10}})).unwrap().unwrap();
    assert_eq!((a.scaler.scale, a.scaler.growth_interval), (1024.0, 10));
    assert_eq!(amp(serde_json::json!({"dtype": "float8"})).unwrap_err().0, "optim_wrapper.dtype");
    assert_eq!(amp(serde_json::json!({"loss_scale": "static"})).unwrap_err().0, "optim_wrapper.loss_scale");
    let plain: OptimWrapperConfig = serde_json::from_value(serde_json::json!({"optimizer": {"type": "SGD"}, "dtype": "float16"})).unwrap();
    assert_eq!(plain.validate().unwrap_err().0, "optim_wrapper.type");
}

/// GradScaler's step: scaled gradients are unscaled before the update (the
/// same step as unscaled ones), and an overflowing step changes nothing.
#[test]
fn scaled_steps_unscale_and_overflowing_steps_are_skipped() {
    let dev = device();
    let cfg: OptimWrapperConfig = serde_json::from_value(
        serde_json::json!({"optimizer": {"type": "SGD", "lr": 0.1, "momentum": 0.9}, "clip_grad": {"max_norm": 0.5}}),
    )
    .unwrap();
    let t = |v: &[f32]| Param::from_tensor(Tensor::<AB, 1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &dev));
    let g = || Tensor::<AB, 1>::from_data(TensorData::new(vec![0.1f32, 0.2, -0.3, 0.05], [4]), &dev);
    let step = |scale: f64, factor: f32| {
        let m = Two { w: t(&[0.5, -1.0, 2.0, 0.25]), q: t(&[1.0, 2.0]) };
        let mut opt = Optimizer::<AB>::new(&cfg, &m, &KeyMap::new());
        let loss = (m.w.val() * g()).sum().mul_scalar(factor) + m.q.val().sum().mul_scalar(factor);
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        let (m, norm, stepped) = opt.step_scaled(&[0.1], m, grads, scale);
        (values(m.w.val()), norm, stepped, opt.steps())
    };
    let (plain, norm, stepped, steps) = step(1.0, 1.0);
    assert!(stepped && steps == 1);
    let (scaled, scaled_norm, stepped, _) = step(1024.0, 1024.0);
    assert!(stepped);
    assert!((scaled_norm - norm).abs() < 1e-6 * norm, "{scaled_norm} vs {norm}");
    assert_close("unscaled step", &scaled, &plain, 1e-6, 1e-7);
    let (skipped, norm, stepped, steps) = step(1.0, f32::INFINITY);
    assert!(!stepped && steps == 0 && !norm.is_finite());
    assert_eq!(skipped, vec![0.5, -1.0, 2.0, 0.25]);
}
