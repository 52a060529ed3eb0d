//! Small checks per component, on every backend: shapes, initialisation
//! statistics, key rows, and the update rules of the memories. The parity
//! modules compare whole algorithms with MMSelfSup; these name the
//! component when one breaks.
use burn::{
    module::Module,
    tensor::{Tensor, TensorData},
};
use selfsup::{
    backbones::{ResNetConfig, VitArch},
    heads::ContrastiveHeadConfig,
    layers::{
        init::{Dist, InitRng},
        TorchBatchNorm,
    },
    losses::{sinkhorn, CosineSimilarityLoss},
    memories::{EmaKind, FeatureQueue, MomentumEncoder, OnlineWeights},
    necks::{NonLinearNeckConfig, NONLINEAR_KEY_REMAP},
};
use selfsup_tests::{assert_close, device, values, B};

fn tensor<const D: usize>(data: Vec<f32>, shape: [usize; D]) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(data, shape), &device())
}

#[test]
fn resnet_gives_its_last_map_with_the_configured_width() {
    let cfg = ResNetConfig { depth: 18, base_channels: 4, stem_channels: 4, ..Default::default() };
    let r = cfg.init::<B>(&device(), &mut InitRng::new(0));
    let out = r.forward_last(Tensor::<B, 4>::ones([2, 3, 32, 32], &device())).unwrap();
    assert_eq!(out.dims(), [2, cfg.feat_dim(), 1, 1]);
    assert_eq!(cfg.feat_dim(), 4 * 8, "ResNet-18's last stage is 8 × base channels wide");
}

#[test]
fn kaiming_init_has_mmengines_statistics() {
    // MMEngine's Kaiming (fan_out, relu): N(0, √(2/fan_out)).
    let fan_out = 64 * 3 * 3;
    let w = InitRng::new(3).param::<B, 4>([64, 32, 3, 3], Dist::kaiming_normal_fan_out(fan_out), &device());
    let v = values(w.val());
    let mean = v.iter().map(|x| *x as f64).sum::<f64>() / v.len() as f64;
    let std = (v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    let want = (2.0 / fan_out as f64).sqrt();
    assert!(mean.abs() < 0.05 * want, "mean {mean}");
    assert!((std / want - 1.0).abs() < 0.05, "std {std} vs {want}");
}

#[test]
fn vit_arch_table_is_mmcls() {
    let b = VitArch::Name("b".into()).spec().unwrap();
    assert_eq!((b.embed_dims, b.num_layers, b.num_heads, b.feedforward_channels), (768, 12, 12, 3072));
    let l = VitArch::Name("large".into()).spec().unwrap();
    assert_eq!((l.embed_dims, l.num_layers, l.num_heads), (1024, 24, 16));
    assert!(VitArch::Name("xxl".into()).spec().is_err());
}

#[test]
fn nonlinear_neck_pools_projects_and_names_its_layers() {
    let cfg: NonLinearNeckConfig =
        serde_json::from_value(serde_json::json!({"in_channels": 8, "hid_channels": 16, "out_channels": 4, "num_layers": 3})).unwrap();
    cfg.validate().unwrap();
    let neck = cfg.init::<B>(&device(), &mut InitRng::new(0));
    assert_eq!(neck.forward_map(Tensor::<B, 4>::ones([5, 8, 2, 2], &device())).dims(), [5, 4]);
    // PyTorch's `neck.fc0`/`neck.bn0`, ... names come from the remap rows.
    #[derive(Module, Debug)]
    struct Model<B: burn::tensor::backend::Backend> {
        neck: selfsup::necks::NonLinearNeck<B>,
    }
    let keys = selfsup::weights::model_keys(&Model { neck }, &selfsup::weights::KeyMap::new().rows(NONLINEAR_KEY_REMAP));
    for key in ["neck.fc0.weight", "neck.fc2.weight", "neck.bn1.running_var", "neck.bn2.num_batches_tracked"] {
        assert!(keys.contains_key(key), "{key} not in {keys:?}");
    }
}

#[test]
fn contrastive_head_of_uniform_logits_is_log_of_the_classes() {
    let head: ContrastiveHeadConfig =
        serde_json::from_value(serde_json::json!({"loss": {"type": "CrossEntropyLoss"}, "temperature": 0.2})).unwrap();
    let loss = head.init().forward(Tensor::<B, 2>::zeros([3, 1], &device()), Tensor::<B, 2>::zeros([3, 7], &device()));
    assert_close("InfoNCE of equal logits", &values(loss), &[(8f32).ln()], 1e-6, 1e-6);
}

#[test]
fn cosine_similarity_loss_is_minus_the_mean_cosine() {
    let pred = tensor(vec![1.0, 0.0, 0.0, 2.0], [2, 2]);
    let target = tensor(vec![3.0, 0.0, 1.0, 1.0], [2, 2]);
    let loss = CosineSimilarityLoss::default().forward(pred, target);
    assert_close("cosine loss", &values(loss), &[-(1.0 + std::f32::consts::FRAC_1_SQRT_2) / 2.0], 1e-6, 1e-6);
}

#[test]
fn sinkhorn_assignments_are_distributions_over_prototypes() {
    let scores = tensor((0..12).map(|i| (i as f32 * 0.37).sin()).collect(), [4, 3]);
    let q = values(sinkhorn(scores, 3, 0.05));
    for row in q.chunks(3) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "each sample's assignment sums to 1: {row:?}");
    }
}

#[test]
fn feature_queue_replaces_the_oldest_keys_and_wraps() {
    let q = FeatureQueue::<B>::new(2, 4, &device(), &mut InitRng::new(0));
    assert_eq!((q.len(), q.ptr(), q.keys().dims()), (4, 0, [2, 4]));
    let q = q.enqueue(tensor(vec![1.0, 2.0, 3.0, 4.0], [2, 2]));
    assert_eq!(q.ptr(), 2);
    let q = q.enqueue(tensor(vec![5.0, 6.0, 7.0, 8.0], [2, 2]));
    assert_eq!(q.ptr(), 0, "the pointer wraps");
    assert_eq!(values(q.keys()), vec![1.0, 3.0, 5.0, 7.0, 2.0, 4.0, 6.0, 8.0], "keys are columns, in arrival order");
}

/// A one-layer network with a BatchNorm, the shape of a momentum target.
#[derive(Module, Debug)]
struct Net<B: burn::tensor::backend::Backend> {
    bn: TorchBatchNorm<B>,
}

fn net(seed: u64) -> Net<B> {
    Net { bn: TorchBatchNorm::new(2, true, 1e-5, 0.1, &device(), &mut InitRng::new(seed)) }
}

#[test]
fn momentum_encoder_copies_buffers_through_a_shared_reference_and_averages_parameters() {
    let online = net(0);
    let target = MomentumEncoder::new(net(1), EmaKind::Lerp { weight: 0.25 }, &device()).prepare(OnlineWeights::default().with(&online));
    assert_eq!(target.steps(), 1, "the first update copies");
    // A train-mode pass moves the online running statistics ...
    let _ = online.bn.forward(tensor(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], [2, 2, 2]));
    let online_mean = values(online.bn.running_mean.value());
    assert_ne!(values(target.module.bn.running_mean.value()), online_mean);
    // ... and `copy_buffers` (inside `loss`, through `&self`) brings them over.
    target.copy_buffers(OnlineWeights::default().with(&online));
    assert_eq!(values(target.module.bn.running_mean.value()), online_mean);
    assert_eq!(values(target.module.bn.num_batches_tracked.value()), vec![1.0]);
    // An update averages the parameters (t + w·(o − t)) and keeps the buffers.
    let moved = Net { bn: online.bn.clone().with_weight(3.0) };
    let _ = target.module.bn.forward(tensor(vec![0.0; 8], [2, 2, 2]));
    let target_mean = values(target.module.bn.running_mean.value());
    let target = target.update(OnlineWeights::default().with(&moved), 10);
    assert_eq!(target.steps(), 2);
    assert_close("averaged weight", &values(target.module.bn.weight.as_ref().unwrap().val()), &[1.5, 1.5], 1e-6, 0.0);
    assert_eq!(values(target.module.bn.running_mean.value()), target_mean, "the update leaves the buffers alone");
}

#[test]
fn cosine_ema_momentum_follows_mmselfsups_schedule() {
    let k = EmaKind::Cosine { base: 0.99, end: 1.0 };
    assert!((k.momentum(0, 10) - 0.99).abs() < 1e-12);
    assert!((k.momentum(1, 10) - 0.990_244_717_418_524_3).abs() < 1e-12, "{}", k.momentum(1, 10));
    assert!((k.momentum(10, 10) - 1.0).abs() < 1e-12);
}

/// `ResNetSobel`: the frozen gray + Sobel stem under MMSelfSup's keys, out of
/// the gradient, in front of a two-channel ResNet; on a horizontal ramp the
/// stem gives −(1+2+1)·2·slope along x and 0 along y inside the image.
#[test]
fn resnet_sobel_has_a_frozen_gray_sobel_stem() {
    use burn::module::AutodiffModule;
    let cfg = ResNetConfig { depth: 18, base_channels: 4, stem_channels: 4, ..Default::default() };
    let r = cfg.init_sobel::<B>(&device(), &mut InitRng::new(0));
    assert_eq!(r.conv1.weight.dims(), [4, 2, 7, 7], "two input channels");
    let sobel = r.sobel_layer.as_ref().expect("the Sobel stem");
    assert_eq!(sobel.sobel[0].weight.dims(), [1, 3, 1, 1]);
    assert_eq!(sobel.sobel[1].weight.dims(), [2, 1, 3, 3]);
    assert!(!sobel.sobel[1].weight.is_require_grad(), "frozen");
    let ramp: Vec<f32> = (0..3).flat_map(|_| (0..4).flat_map(|_| (0..5).map(|x| 3.0 * x as f32))).collect();
    let y = values(sobel.forward(tensor(ramp, [1, 3, 4, 5])));
    assert!((y[5 + 2] + 24.0).abs() < 1e-4, "d/dx {}", y[7]);
    assert!(y[20 + 5 + 2].abs() < 1e-4, "d/dy {}", y[27]);
    let out = r.forward_last(Tensor::<B, 4>::ones([2, 3, 32, 32], &device())).unwrap();
    assert_eq!(out.dims(), [2, 32, 1, 1]);
    let keys = selfsup::weights::model_keys(&r.valid(), &selfsup::algorithms::key_map());
    for k in ["sobel_layer.sobel.0.weight", "sobel_layer.sobel.0.bias", "sobel_layer.sobel.1.weight", "sobel_layer.sobel.1.bias"] {
        assert!(keys.contains_key(k), "{k} in {:?}", keys.keys().take(6).collect::<Vec<_>>());
    }
}

/// BatchNorm in training mode (one fused autodiff operation on tch and
/// flex, composed elsewhere) against a direct f64 computation: the output, the
/// gradients of input, scale and shift, and the running statistics, on a
/// `[N, C, H, W]` map and on `[N, C]` features.
#[test]
fn batch_norm_training_pass_and_gradients_match_a_direct_computation() {
    use burn::module::Param;
    fn check<const D: usize>(shape: [usize; D]) {
        let c = shape[1];
        let count: usize = shape.iter().product();
        let inner = count / (shape[0] * c);
        let n = count / c;
        let x: Vec<f32> = (0..count).map(|i| ((i * 29 % 53) as f32 - 26.0) * 0.13 + (i % c) as f32).collect();
        let g: Vec<f32> = (0..count).map(|i| ((i * 11 % 19) as f32 - 9.0) * 0.07).collect();
        let (w, b): (Vec<f32>, Vec<f32>) = ((0..c).map(|k| 0.5 + 0.3 * k as f32).collect(), (0..c).map(|k| 0.2 * k as f32 - 0.1).collect());
        let eps = 1e-5;
        let chan = |i: usize| (i / inner) % c;
        let (mut mean, mut var) = (vec![0f64; c], vec![0f64; c]);
        (0..count).for_each(|i| mean[chan(i)] += f64::from(x[i]) / n as f64);
        (0..count).for_each(|i| var[chan(i)] += (f64::from(x[i]) - mean[chan(i)]).powi(2) / n as f64);
        let xhat: Vec<f64> = (0..count).map(|i| (f64::from(x[i]) - mean[chan(i)]) / (var[chan(i)] + eps).sqrt()).collect();
        let y_ref: Vec<f32> = (0..count).map(|i| (xhat[i] * f64::from(w[chan(i)]) + f64::from(b[chan(i)])) as f32).collect();
        let (mut db, mut dw) = (vec![0f64; c], vec![0f64; c]);
        (0..count).for_each(|i| {
            db[chan(i)] += f64::from(g[i]);
            dw[chan(i)] += f64::from(g[i]) * xhat[i];
        });
        let dx_ref: Vec<f32> = (0..count)
            .map(|i| {
                let k = chan(i);
                let s = f64::from(w[k]) / (var[k] + eps).sqrt();
                (s * (f64::from(g[i]) - db[k] / n as f64 - xhat[i] * dw[k] / n as f64)) as f32
            })
            .collect();
        let mut bn = TorchBatchNorm::<B>::new(c, true, eps, 0.1, &device(), &mut InitRng::new(0));
        bn.weight = Some(Param::from_tensor(tensor(w.clone(), [c])));
        bn.bias = Some(Param::from_tensor(tensor(b.clone(), [c])));
        let xt = tensor(x, shape).require_grad();
        let y = bn.forward(xt.clone());
        let what = format!("{shape:?}");
        assert_close(&format!("batch norm {what}"), &values(y.clone()), &y_ref, 1e-5, 1e-5);
        let grads = (y * tensor(g, shape)).sum().backward();
        assert_close(&format!("input gradient {what}"), &values(xt.grad(&grads).expect("x has a gradient")), &dx_ref, 1e-4, 1e-5);
        let param_grad = |p: &Option<Param<Tensor<B, 1>>>| values(p.as_ref().unwrap().val().grad(&grads).expect("a gradient"));
        let as32 = |v: &[f64]| v.iter().map(|v| *v as f32).collect::<Vec<_>>();
        assert_close(&format!("scale gradient {what}"), &param_grad(&bn.weight), &as32(&dw), 1e-4, 1e-5);
        assert_close(&format!("shift gradient {what}"), &param_grad(&bn.bias), &as32(&db), 1e-4, 1e-5);
        let rm: Vec<f64> = mean.iter().map(|m| 0.1 * m).collect();
        let rv: Vec<f64> = var.iter().map(|v| 0.9 + 0.1 * v * n as f64 / (n - 1) as f64).collect();
        assert_close(&format!("running mean {what}"), &values(bn.running_mean.value()), &as32(&rm), 1e-5, 1e-6);
        assert_close(&format!("running var {what}"), &values(bn.running_var.value()), &as32(&rv), 1e-5, 1e-6);
        assert_eq!(values(bn.num_batches_tracked.value()), vec![1.0]);
    }
    check([3, 4, 5, 5]);
    check([6, 4]);
}

/// LayerNorm (one fused autodiff operation on flex and tch, burn's
/// composition elsewhere) against a direct f64 computation: the output and
/// the gradients of input, scale and shift, over rows of 8 (one 8-lane
/// block), 13 (a remainder) and 768 (ViT-B).
#[test]
fn layer_norm_pass_and_gradients_match_a_direct_computation() {
    use burn::module::Param;
    fn check(rows: usize, n: usize) {
        let count = rows * n;
        let x: Vec<f32> = (0..count).map(|i| ((i * 37 % 61) as f32 - 30.0) * 0.11 + (i / n) as f32 * 0.5).collect();
        let g: Vec<f32> = (0..count).map(|i| ((i * 13 % 23) as f32 - 11.0) * 0.05).collect();
        let (w, b): (Vec<f32>, Vec<f32>) =
            ((0..n).map(|k| 0.7 + 0.01 * k as f32).collect(), (0..n).map(|k| 0.02 * k as f32 - 0.1).collect());
        let eps = 1e-6;
        let (mut y_ref, mut dx_ref, mut dw, mut db) = (vec![0f32; count], vec![0f32; count], vec![0f64; n], vec![0f64; n]);
        for r in 0..rows {
            let row = |v: &[f32]| v[r * n..(r + 1) * n].iter().map(|&v| f64::from(v)).collect::<Vec<_>>();
            let (xr, gr) = (row(&x), row(&g));
            let mean = xr.iter().sum::<f64>() / n as f64;
            let var = xr.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
            let rstd = 1.0 / (var + eps).sqrt();
            let xhat: Vec<f64> = xr.iter().map(|v| (v - mean) * rstd).collect();
            let gw: Vec<f64> = (0..n).map(|j| gr[j] * f64::from(w[j])).collect();
            let (c1, c2) = (gw.iter().sum::<f64>() / n as f64, gw.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / n as f64);
            for j in 0..n {
                y_ref[r * n + j] = (xhat[j] * f64::from(w[j]) + f64::from(b[j])) as f32;
                dx_ref[r * n + j] = (rstd * (gw[j] - c1 - xhat[j] * c2)) as f32;
                dw[j] += gr[j] * xhat[j];
                db[j] += gr[j];
            }
        }
        let mut ln = selfsup::layers::LayerNorm::<B>::new(n, eps, &device());
        ln.gamma = Param::from_tensor(tensor(w, [n]));
        ln.beta = Some(Param::from_tensor(tensor(b, [n])));
        let xt = tensor(x, [2, rows / 2, n]).require_grad();
        let y = ln.forward(xt.clone());
        let what = format!("[{rows}, {n}]");
        assert_close(&format!("layer norm {what}"), &values(y.clone()), &y_ref, 1e-5, 1e-5);
        let grads = (y * tensor(g, [2, rows / 2, n])).sum().backward();
        assert_close(&format!("input gradient {what}"), &values(xt.grad(&grads).expect("x has a gradient")), &dx_ref, 1e-4, 1e-5);
        let as32 = |v: &[f64]| v.iter().map(|v| *v as f32).collect::<Vec<_>>();
        assert_close(&format!("scale gradient {what}"), &values(ln.gamma.val().grad(&grads).expect("a gradient")), &as32(&dw), 1e-4, 1e-5);
        let shift = ln.beta.as_ref().unwrap().val().grad(&grads).expect("a gradient");
        assert_close(&format!("shift gradient {what}"), &values(shift), &as32(&db), 1e-4, 1e-5);
    }
    check(6, 8);
    check(4, 13);
    check(10, 768);
}

/// Attention from a fused q|k|v projection (one autodiff operation on flex
/// and tch, burn's composition elsewhere) against a direct f64
/// computation: the output and the gradient of `qkv`.
#[test]
fn qkv_attention_and_its_gradient_match_a_direct_computation() {
    fn check(b: usize, n: usize, h: usize, d: usize) {
        let c = h * d;
        let count = b * n * 3 * c;
        let qkv: Vec<f32> = (0..count).map(|i| ((i * 31 % 47) as f32 - 23.0) * 0.04).collect();
        let g: Vec<f32> = (0..b * n * c).map(|i| ((i * 17 % 29) as f32 - 14.0) * 0.03).collect();
        let scale = (d as f64).powf(-0.5);
        let at = |bi: usize, t: usize, part: usize, hh: usize, j: usize| bi * n * 3 * c + t * 3 * c + part * c + hh * d + j;
        let (mut y_ref, mut dqkv) = (vec![0f32; b * n * c], vec![0f64; count]);
        for bi in 0..b {
            for hh in 0..h {
                let x = |t, part, j| f64::from(qkv[at(bi, t, part, hh, j)]);
                let gy = |t: usize, j: usize| f64::from(g[bi * n * c + t * c + hh * d + j]);
                for i in 0..n {
                    let s: Vec<f64> = (0..n).map(|t| (0..d).map(|j| x(i, 0, j) * x(t, 1, j)).sum::<f64>() * scale).collect();
                    let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|v| (v - max).exp()).collect();
                    let p: Vec<f64> = e.iter().map(|v| v / e.iter().sum::<f64>()).collect();
                    for j in 0..d {
                        y_ref[bi * n * c + i * c + hh * d + j] = (0..n).map(|t| p[t] * x(t, 2, j)).sum::<f64>() as f32;
                    }
                    // dp_t = gy_i·v_t; ds = p ⊙ (dp − Σ p·dp)
                    let dp: Vec<f64> = (0..n).map(|t| (0..d).map(|j| gy(i, j) * x(t, 2, j)).sum()).collect();
                    let dot: f64 = p.iter().zip(&dp).map(|(a, b)| a * b).sum();
                    for t in 0..n {
                        let ds = p[t] * (dp[t] - dot) * scale;
                        for j in 0..d {
                            dqkv[at(bi, t, 2, hh, j)] += p[t] * gy(i, j);
                            dqkv[at(bi, i, 0, hh, j)] += ds * x(t, 1, j);
                            dqkv[at(bi, t, 1, hh, j)] += ds * x(i, 0, j);
                        }
                    }
                }
            }
        }
        let x = tensor(qkv, [b, n, 3 * c]).require_grad();
        let y = selfsup::layers::fused::qkv_attention(x.clone(), h, scale);
        let what = format!("[{b}, {n}, {h}×{d}]");
        assert_close(&format!("attention {what}"), &values(y.clone()), &y_ref, 1e-5, 1e-6);
        let grads = (y * tensor(g, [b, n, c])).sum().backward();
        let d32: Vec<f32> = dqkv.iter().map(|v| *v as f32).collect();
        assert_close(&format!("qkv gradient {what}"), &values(x.grad(&grads).expect("a gradient")), &d32, 1e-4, 1e-6);
    }
    check(2, 5, 2, 3);
    check(3, 17, 4, 8);
}

/// ReLU (one autodiff operation on flex and tch): values, and a gradient
/// that is zero where the output is (burn's and PyTorch's convention at 0).
#[test]
fn relu_and_its_gradient() {
    let x = tensor(vec![-1.5, 0.0, 2.0, -0.0, 3.5, -7.0], [2, 3]).require_grad();
    let y = selfsup::layers::fused::relu(x.clone());
    assert_eq!(values(y.clone()), vec![0.0, 0.0, 2.0, 0.0, 3.5, 0.0]);
    let grads = (y * tensor(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])).sum().backward();
    assert_eq!(values(x.grad(&grads).expect("a gradient")), vec![0.0, 0.0, 3.0, 0.0, 5.0, 0.0]);
}

/// The linear layer (`functional::linear`, one autodiff operation on flex)
/// against a direct f64 computation: the output, and the gradients of the
/// input, weight and bias; with and without bias, on a 3-D input.
#[test]
fn linear_and_its_gradients_match_a_direct_computation() {
    use burn::nn::LinearConfig;
    fn check(rows: usize, tokens: usize, d_in: usize, d_out: usize, bias: bool) {
        let m = rows * tokens;
        let xs: Vec<f32> = (0..m * d_in).map(|i| ((i * 31 % 47) as f32 - 23.0) * 0.04).collect();
        let gs: Vec<f32> = (0..m * d_out).map(|i| ((i * 17 % 29) as f32 - 14.0) * 0.03).collect();
        let layer = LinearConfig::new(d_in, d_out).with_bias(bias).init::<B>(&device());
        let ws = values(layer.weight.val());
        let bs = layer.bias.as_ref().map_or_else(|| vec![0.0; d_out], |b| values(b.val()));
        let (mut y, mut dx, mut dw, mut db) = (vec![0f64; m * d_out], vec![0f64; m * d_in], vec![0f64; d_in * d_out], vec![0f64; d_out]);
        for r in 0..m {
            for o in 0..d_out {
                let g = f64::from(gs[r * d_out + o]);
                y[r * d_out + o] =
                    f64::from(bs[o]) + (0..d_in).map(|i| f64::from(xs[r * d_in + i]) * f64::from(ws[i * d_out + o])).sum::<f64>();
                db[o] += g;
                for i in 0..d_in {
                    dx[r * d_in + i] += g * f64::from(ws[i * d_out + o]);
                    dw[i * d_out + o] += g * f64::from(xs[r * d_in + i]);
                }
            }
        }
        let f32s = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect::<Vec<_>>();
        let x = tensor(xs, [rows, tokens, d_in]).require_grad();
        let out = selfsup::layers::functional::linear(&layer, x.clone());
        let what = format!("linear {rows}×{tokens}×{d_in} → {d_out}, bias {bias}");
        assert_eq!(out.dims(), [rows, tokens, d_out], "{what}");
        assert_close(&what, &values(out.clone()), &f32s(y), 1e-5, 1e-6);
        let grads = (out * tensor(gs, [rows, tokens, d_out])).sum().backward();
        assert_close(&format!("{what}: input gradient"), &values(x.grad(&grads).expect("a gradient")), &f32s(dx), 1e-4, 1e-6);
        assert_close(
            &format!("{what}: weight gradient"),
            &values(layer.weight.val().grad(&grads).expect("a gradient")),
            &f32s(dw),
            1e-4,
            1e-6,
        );
        if let Some(b) = &layer.bias {
            assert_close(&format!("{what}: bias gradient"), &values(b.val().grad(&grads).expect("a gradient")), &f32s(db), 1e-4, 1e-6);
        }
    }
    check(2, 5, 7, 3, true);
    check(3, 11, 16, 24, false);
    check(1, 70, 33, 65, true);
}

/// GELU (one multi-threaded autodiff operation on flex, with PyTorch's
/// vectorised `erf`) against a direct f64 computation, value and gradient.
#[test]
fn gelu_and_its_gradient_match_a_direct_computation() {
    let xs: Vec<f32> = (0..3000).map(|i| (i as f32 - 1500.0) * 0.003).collect();
    let n = xs.len();
    let x = tensor(xs.clone(), [3, n / 3]).require_grad();
    let y = selfsup::layers::fused::gelu(x.clone());
    let phi = |v: f64| 0.5 * (1.0 + libm_erf(v / std::f64::consts::SQRT_2));
    let reference: Vec<f32> = xs.iter().map(|&v| (f64::from(v) * phi(f64::from(v))) as f32).collect();
    assert_close("gelu", &values(y.clone()), &reference, 1e-5, 1e-6);
    let grads = y.sum().backward();
    let pdf = |v: f64| (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let d: Vec<f32> = xs.iter().map(|&v| (phi(f64::from(v)) + f64::from(v) * pdf(f64::from(v))) as f32).collect();
    assert_close("gelu gradient", &values(x.grad(&grads).expect("a gradient")), &d, 1e-5, 1e-6);
}

/// `erf` in f64: its Maclaurin series, accurate to about 10⁻¹² for the
/// |x| ≤ 4.5/√2 used here (its largest term is a few thousand).
fn libm_erf(x: f64) -> f64 {
    let (mut term, mut sum, mut k) = (x, x, 0.0);
    while term.abs() > 1e-17 * sum.abs().max(1e-300) {
        k += 1.0;
        term *= -x * x / k;
        sum += term / (2.0 * k + 1.0);
        if k > 400.0 {
            break;
        }
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}
