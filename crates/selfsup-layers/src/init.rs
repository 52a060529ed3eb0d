//! MMSelfSup's weight initialisers, drawn on the host from a seeded
//! generator.
//!
//! burn's initialisers draw from the backend's global generator, so two
//! models built at the same time (two runs, two tests) would interleave
//! their draws. [`InitRng`] gives every parameter its own stream derived
//! from `(seed, parameter counter)`, and draws lazily: a parameter nobody
//! reads (listing the keys of ViT-H) costs nothing.
use burn::{
    module::{Param, ParamId},
    nn::{
        conv::{Conv2d, Conv2dConfig},
        Linear, LinearConfig, PaddingConfig2d,
    },
    tensor::{backend::Backend, Shape, Tensor, TensorData},
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A distribution to initialise a parameter from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    /// `U(low, high)`.
    Uniform(f64, f64),
    /// `N(mean, std)`.
    Normal(f64, f64),
    /// A constant.
    Constant(f64),
    /// `torch.nn.init.trunc_normal_(mean, std)`: `N(mean, std)` redrawn
    /// outside torch's default absolute bounds `[-2, 2]`.
    TruncNormal(f64, f64),
    /// `trunc_normal_(mean, std, a, b)`: `N(mean, std)` redrawn outside
    /// `[a, b]` (SparK's mask tokens: std 0.02 within ±0.02).
    TruncNormalWithin(f64, f64, f64, f64),
}

impl Dist {
    /// MMEngine's `Kaiming` init with its defaults (`mode='fan_out'`,
    /// `nonlinearity='relu'`, normal): `N(0, √(2/fan_out))`.
    pub fn kaiming_normal_fan_out(fan_out: usize) -> Self {
        Dist::Normal(0.0, (2.0 / fan_out as f64).sqrt())
    }
}

impl Dist {
    /// `torch.nn.init.xavier_uniform_` for a weight with the given fans.
    pub fn xavier_uniform(fan_in: usize, fan_out: usize) -> Self {
        let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
        Dist::Uniform(-a, a)
    }

    fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        match *self {
            Dist::Uniform(lo, hi) => (0..n).map(|_| (lo + (hi - lo) * rng.random::<f64>()) as f32).collect(),
            Dist::Normal(mean, std) => (0..n)
                .map(|_| {
                    // Box-Muller.
                    let u1: f64 = 1.0 - rng.random::<f64>();
                    let u2: f64 = rng.random::<f64>();
                    (mean + std * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
                })
                .collect(),
            Dist::Constant(v) => vec![v as f32; n],
            Dist::TruncNormal(mean, std) => Dist::TruncNormalWithin(mean, std, -2.0, 2.0).sample(n, rng),
            Dist::TruncNormalWithin(mean, std, a, b) => (0..n)
                .map(|_| loop {
                    let v = Dist::Normal(mean, std).sample(1, rng)[0];
                    if (a as f32..=b as f32).contains(&v) {
                        break v;
                    }
                })
                .collect(),
        }
    }
}

/// The seeded source of every initial weight of a model.
#[derive(Debug, Clone)]
pub struct InitRng {
    seed: u64,
    counter: u64,
}

impl InitRng {
    /// A generator for seed `seed` (MMEngine's `randomness.seed`).
    pub fn new(seed: u64) -> Self {
        Self { seed, counter: 0 }
    }

    /// A fixed (never trained) tensor of `shape` drawn from `dist` and then
    /// transformed by `post`, lazily: listing a model's keys does not draw
    /// MoCo's 65536-long queues.
    pub fn fixed_with<B: Backend, const D: usize>(
        &mut self,
        shape: [usize; D],
        dist: Dist,
        post: fn(Tensor<B, D>) -> Tensor<B, D>,
        device: &B::Device,
    ) -> Param<Tensor<B, D>> {
        self.counter += 1;
        let stream = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.counter;
        Param::uninitialized(
            ParamId::new(),
            move |device, _require_grad| {
                let n = shape.iter().product();
                let mut rng = ChaCha8Rng::seed_from_u64(stream);
                post(Tensor::<B, D>::from_data(TensorData::new(dist.sample(n, &mut rng), shape), device)).set_require_grad(false)
            },
            device.clone(),
            false,
            Shape::from(shape),
        )
    }

    /// `n` values drawn from `dist` now, from the next stream (re-initialising a layer in
    /// place, as DeepCluster does to its classifier after every clustering).
    pub fn values(&mut self, n: usize, dist: Dist) -> Vec<f32> {
        self.counter += 1;
        let stream = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.counter;
        dist.sample(n, &mut ChaCha8Rng::seed_from_u64(stream))
    }

    /// A parameter of `shape` drawn from `dist`, lazily, trainable.
    pub fn param<B: Backend, const D: usize>(&mut self, shape: [usize; D], dist: Dist, device: &B::Device) -> Param<Tensor<B, D>> {
        self.counter += 1;
        let stream = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.counter;
        let dims = shape;
        Param::uninitialized(
            ParamId::new(),
            move |device, require_grad| {
                let n = dims.iter().product();
                let mut rng = ChaCha8Rng::seed_from_u64(stream);
                let t = Tensor::<B, D>::from_data(TensorData::new(dist.sample(n, &mut rng), dims), device);
                if require_grad {
                    t.require_grad()
                } else {
                    t
                }
            },
            device.clone(),
            true,
            Shape::from(shape),
        )
    }

    /// A Linear with weight from `weight` and bias from `bias` (or none).
    /// burn stores the weight `[d_in, d_out]`; the fans are the same.
    pub fn linear<B: Backend>(&mut self, d_in: usize, d_out: usize, weight: Dist, bias: Option<Dist>, device: &B::Device) -> Linear<B> {
        let mut linear = LinearConfig::new(d_in, d_out).with_bias(bias.is_some()).init(device);
        linear.weight = self.param([d_in, d_out], weight, device);
        linear.bias = bias.map(|b| self.param([d_out], b, device));
        linear
    }

    /// A Linear with PyTorch's default initialisation (`kaiming_uniform_(a=√5)`:
    /// weight and bias `U(−1/√d_in, 1/√d_in)`), which MMSelfSup's necks keep.
    pub fn linear_torch<B: Backend>(&mut self, d_in: usize, d_out: usize, bias: bool, device: &B::Device) -> Linear<B> {
        let b = 1.0 / (d_in as f64).sqrt();
        self.linear(d_in, d_out, Dist::Uniform(-b, b), bias.then_some(Dist::Uniform(-b, b)), device)
    }

    /// A `k×k` convolution `[c_out, c_in, k, k]` with `stride`, padding
    /// `pad`, dilation `dilation`, weight from `weight`, bias from `bias`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d<B: Backend>(
        &mut self,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
        dilation: usize,
        weight: Dist,
        bias: Option<Dist>,
        device: &B::Device,
    ) -> Conv2d<B> {
        let mut conv = Conv2dConfig::new([c_in, c_out], [k, k])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_dilation([dilation, dilation])
            .with_bias(bias.is_some())
            .init(device);
        conv.weight = self.param([c_out, c_in, k, k], weight, device);
        conv.bias = bias.map(|b| self.param([c_out], b, device));
        conv
    }

    /// A Linear initialised as MAE does: xavier-uniform weight, zero bias.
    pub fn linear_xavier<B: Backend>(&mut self, d_in: usize, d_out: usize, bias: bool, device: &B::Device) -> Linear<B> {
        self.linear(d_in, d_out, Dist::xavier_uniform(d_in, d_out), bias.then_some(Dist::Constant(0.0)), device)
    }
}

/// A fixed tensor saved with the module but never trained (fixed position
/// embeddings, EMA counters): a `Param` with `require_grad = false`.
pub fn fixed<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Param<Tensor<B, D>> {
    Param::initialized(ParamId::new(), tensor.detach().set_require_grad(false))
}

/// The `std` of the `Normal` entry of an MMEngine `init_cfg` (a dict or a list of dicts),
/// if it has one (`dict(type='Normal', std=0.01, layer='Linear')`; torch's default std 1).
pub fn normal_init_std(init_cfg: Option<&serde_json::Value>) -> Option<f64> {
    init_entry(init_cfg, "Normal").map(|e| e["std"].as_f64().unwrap_or(1.0))
}

/// The `(std, bias)` of the `TruncNormal` entry of an MMEngine `init_cfg`
/// (`dict(type='TruncNormal', layer='Linear', std=0.02, bias=0)`; MMEngine's
/// defaults std 1, bias 0).
pub fn trunc_normal_init(init_cfg: Option<&serde_json::Value>) -> Option<(f64, f64)> {
    init_entry(init_cfg, "TruncNormal").map(|e| (e["std"].as_f64().unwrap_or(1.0), e["bias"].as_f64().unwrap_or(0.0)))
}

/// Accepts an MMEngine `init_cfg` made of MAE's two entries,
/// `dict(type='Xavier', distribution='uniform', layer='Linear')` and
/// `dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)` (MAE's
/// model and MILAN's and EVA's backbones and necks carry them), which is
/// the initialisation MAE's components build anyway; `None` passes too.
/// Anything else is refused with the reason.
pub fn check_mae_init_cfg(init_cfg: Option<&serde_json::Value>) -> Result<(), String> {
    let layer_is = |e: &serde_json::Value, name: &str| match &e["layer"] {
        serde_json::Value::String(s) => s == name,
        serde_json::Value::Array(a) => a.len() == 1 && a[0] == name,
        _ => false,
    };
    let num = |e: &serde_json::Value, key: &str, default: f64| match e.get(key) {
        None => Some(default),
        Some(v) => v.as_f64(),
    };
    check_builtin_init_cfg(init_cfg, |e| match e["type"].as_str() {
        Some("Xavier") => {
            if layer_is(e, "Linear")
                && e["distribution"] == "uniform"
                && num(e, "gain", 1.0) == Some(1.0)
                && num(e, "bias", 0.0) == Some(0.0)
            {
                Ok(())
            } else {
                Err(mae_only(e))
            }
        }
        Some("Constant") if layer_is(e, "LayerNorm") && num(e, "val", f64::NAN) == Some(1.0) && num(e, "bias", 0.0) == Some(0.0) => Ok(()),
        _ => Err(mae_only(e)),
    })
}

fn mae_only(e: &serde_json::Value) -> String {
    format!("only MAE's initialisation is built (Xavier uniform on Linear, Constant 1/0 on LayerNorm); got {e}")
}

/// Checks an MMEngine `init_cfg` (`None`, one entry or a list) whose
/// entries describe the initialisation a component builds anyway: each
/// entry must pass `accept`, and `Pretrained`, which would read a file, is
/// refused (weights load with `load_from` or `selfsup convert`).
pub fn check_builtin_init_cfg(
    init_cfg: Option<&serde_json::Value>,
    accept: impl Fn(&serde_json::Value) -> Result<(), String>,
) -> Result<(), String> {
    let entries = match init_cfg {
        None | Some(serde_json::Value::Null) => return Ok(()),
        Some(serde_json::Value::Array(a)) => a.as_slice(),
        Some(other) => std::slice::from_ref(other),
    };
    for e in entries {
        if e["type"] == "Pretrained" {
            return Err("a `Pretrained` init_cfg is not read here; load the weights with `load_from` or `selfsup convert`".into());
        }
        accept(e)?;
    }
    Ok(())
}

fn init_entry<'a>(init_cfg: Option<&'a serde_json::Value>, kind: &str) -> Option<&'a serde_json::Value> {
    let entries = match init_cfg? {
        serde_json::Value::Array(a) => a.as_slice(),
        other => std::slice::from_ref(other),
    };
    entries.iter().find(|e| e["type"] == kind)
}
