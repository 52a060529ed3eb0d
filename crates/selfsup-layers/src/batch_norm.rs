//! PyTorch's `BatchNorm1d`/`BatchNorm2d` (and MMCV's `SyncBN` on one
//! device), with PyTorch's state and keys.
//!
//! burn's `BatchNorm` differs from PyTorch in three ways that matter for
//! MMSelfSup checkpoints and parity: its running variance uses the biased
//! batch variance, it has no `num_batches_tracked`, and it is always affine
//! (Barlow Twins, SimSiam and MoCo v3 use `affine=False`). This layer follows
//! PyTorch: normalise with the biased variance, update `running_var` with the
//! unbiased one, count batches, optional affine parameters.
//!
//! Mode: like burn's own layers, the layer runs in training mode (batch
//! statistics, running-stat updates) on an autodiff backend and in eval mode
//! (running statistics) otherwise, unless it is frozen ([`TorchBatchNorm::frozen`]),
//! which is MMCV's `norm_eval` / `frozen_stages`: eval mode always.
use burn::{
    module::{Module, Param, RunningState},
    tensor::{backend::Backend, Tensor},
};
use serde::{Deserialize, Serialize};

use crate::init::{fixed, Dist, InitRng};

/// MMCV's `norm_cfg` for batch normalisation: `dict(type='BN')`,
/// `dict(type='SyncBN')`, `dict(type='BN1d')`.
///
/// `SyncBN` computes statistics over every device's batch. On one device it
/// is exactly `BN`. In data-parallel training ([`crate::dist`]) it is `BN`
/// on each replica's batch: a synchronised BatchNorm needs the gradient of
/// the shared statistics all-reduced in the backward pass, an autodiff
/// operation burn 0.21 offers only on its CUDA backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNormCfg {
    /// `BN`, `BN1d`, `BN2d`, `SyncBN`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether the affine parameters train (MMCV's `requires_grad`).
    #[serde(default = "yes")]
    pub requires_grad: bool,
    /// Epsilon added to the variance.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Running-statistics momentum (PyTorch's convention: weight of the new batch).
    #[serde(default = "default_momentum")]
    pub momentum: f64,
}

fn yes() -> bool {
    true
}
fn default_eps() -> f64 {
    1e-5
}
fn default_momentum() -> f64 {
    0.1
}

impl Default for BatchNormCfg {
    fn default() -> Self {
        Self::new("BN")
    }
}

impl BatchNormCfg {
    /// `dict(type=kind)` with PyTorch's defaults.
    pub fn new(kind: &str) -> Self {
        Self { kind: kind.into(), requires_grad: true, eps: 1e-5, momentum: 0.1 }
    }

    /// Checks the type name.
    pub fn validate(&self) -> Result<(), String> {
        match self.kind.as_str() {
            "BN" | "BN1d" | "BN2d" | "SyncBN" | "BatchNorm1d" | "BatchNorm2d" | "SyncBatchNorm" => {}
            other => return Err(format!("norm type `{other}` is not supported here; expected BN, BN1d, BN2d or SyncBN")),
        }
        if self.eps.is_nan() || self.eps <= 0.0 {
            return Err(format!("eps must be > 0, got {}", self.eps));
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(format!("momentum must be in [0, 1], got {}", self.momentum));
        }
        Ok(())
    }

    /// An affine layer over `features` channels (weight 1, bias 0, as
    /// MMCV's `Constant` init of norms).
    pub fn init<B: Backend>(&self, features: usize, device: &B::Device, rng: &mut InitRng) -> TorchBatchNorm<B> {
        TorchBatchNorm::new(features, true, self.eps, self.momentum, device, rng).with_trainable(self.requires_grad)
    }
}

/// Batch normalisation with PyTorch's semantics and state dict
/// (`weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked`).
#[derive(Module, Debug)]
pub struct TorchBatchNorm<B: Backend> {
    /// Scale (absent when `affine=False`).
    pub weight: Option<Param<Tensor<B, 1>>>,
    /// Shift (absent when `affine=False`).
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// Running mean.
    pub running_mean: RunningState<Tensor<B, 1>>,
    /// Running (unbiased) variance.
    pub running_var: RunningState<Tensor<B, 1>>,
    /// Batches seen in training mode (an integer kept as a float; exact to 2²⁴).
    pub num_batches_tracked: RunningState<Tensor<B, 1>>,
    eps: f64,
    momentum: f64,
    frozen: bool,
}

impl<B: Backend> TorchBatchNorm<B> {
    /// A layer over `features` channels, `affine` with weight 1 and bias 0.
    pub fn new(features: usize, affine: bool, eps: f64, momentum: f64, device: &B::Device, rng: &mut InitRng) -> Self {
        Self {
            weight: affine.then(|| rng.param([features], Dist::Constant(1.0), device)),
            bias: affine.then(|| rng.param([features], Dist::Constant(0.0), device)),
            running_mean: RunningState::new(Tensor::zeros([features], device)),
            running_var: RunningState::new(Tensor::ones([features], device)),
            num_batches_tracked: RunningState::new(Tensor::zeros([1], device)),
            eps,
            momentum,
            frozen: false,
        }
    }

    /// Sets whether the affine parameters train.
    pub fn with_trainable(mut self, trainable: bool) -> Self {
        self.weight = self.weight.map(|p| p.set_require_grad(trainable));
        self.bias = self.bias.map(|p| p.set_require_grad(trainable));
        self
    }

    /// Eval mode whatever the backend, and frozen affine parameters
    /// (MMCV's `frozen_stages`), or only eval mode (`norm_eval`) when
    /// `freeze_params` is false.
    pub fn frozen(mut self, freeze_params: bool) -> Self {
        self.frozen = true;
        if freeze_params {
            self = self.with_trainable(false);
        }
        self
    }

    /// Initialises the scale to `value` (ResNet's `zero_init_residual`).
    pub fn with_weight(mut self, value: f64) -> Self {
        if let Some(w) = self.weight.take() {
            let trainable = w.is_require_grad();
            let t = w.val().detach().zeros_like().add_scalar(value);
            self.weight = Some(if trainable { Param::from_tensor(t) } else { fixed(t) });
        }
        self
    }

    /// Whether this layer normalises with batch statistics on `x`'s device.
    pub fn is_training(&self, device: &B::Device) -> bool {
        !self.frozen && B::ad_enabled(device)
    }

    /// Normalises over every dimension but the channel dimension 1.
    ///
    /// # Shapes
    /// `[batch, channels, ...] -> [batch, channels, ...]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        assert!(D >= 2, "batch norm needs [batch, channels, ...]");
        let dims = x.dims();
        let mut x = x;
        if let (true, Some(w), Some(b)) = (self.is_training(&x.device()), &self.weight, &self.bias) {
            // One fused operation where the backend has it (libtorch).
            match crate::fused::batch_norm_train(x, w.val(), b.val(), self.eps) {
                Ok((y, mean, var)) => {
                    self.update_running(mean, unbiased(var, dims[0] * dims[2..].iter().product::<usize>()));
                    return y;
                }
                Err(back) => x = back,
            }
        }
        let channels = dims[1];
        let mut bshape = [1usize; D];
        bshape[1] = channels;
        let (mean, var) = if self.is_training(&x.device()) {
            let (b, rest) = (dims[0], dims[2..].iter().product::<usize>());
            let n = b * rest;
            // Statistics over batch and space without `swap_dims` + `reshape`,
            // which gives wrong values on burn-tch for 1×1 maps.
            let x3 = x.clone().reshape([b, channels, rest]);
            let mean3 = x3.clone().mean_dim(2).mean_dim(0); // [1, C, 1]
            let var = (x3 - per_sample(mean3.clone(), b)).powi_scalar(2).mean_dim(2).mean_dim(0).reshape([channels]); // biased
            let mean = mean3.reshape([channels]);
            self.update_running(mean.clone(), unbiased(var.clone().detach(), n));
            (mean, var)
        } else {
            (self.running_mean.value(), self.running_var.value())
        };
        let (scale, shift) = self.scale_shift(mean, var);
        let n = dims[0];
        let per_channel = |v: Tensor<B, 1>| per_sample(v.reshape(bshape), n);
        x * per_channel(scale) + per_channel(shift)
    }

    /// Moves the running statistics towards a batch's `mean` and unbiased
    /// variance (PyTorch's momentum convention) and counts the batch.
    pub(crate) fn update_running(&self, mean: Tensor<B, 1>, unbiased_var: Tensor<B, 1>) {
        let m = self.momentum;
        let rm = self.running_mean.value_sync().detach().mul_scalar(1.0 - m) + mean.detach().mul_scalar(m);
        let rv = self.running_var.value_sync().detach().mul_scalar(1.0 - m) + unbiased_var.detach().mul_scalar(m);
        // `value_sync` right after `update` publishes the new value, so
        // visitors (checkpoints, momentum encoders) see it.
        // Plain leaves (burn's `detach` keeps `require_grad`).
        let (rm, rv) = (rm.set_require_grad(false), rv.set_require_grad(false));
        self.running_mean.update(rm);
        self.running_mean.value_sync();
        self.running_var.update(rv);
        self.running_var.value_sync();
        self.num_batches_tracked.update(self.num_batches_tracked.value_sync().detach().add_scalar(1.0).set_require_grad(false));
        self.num_batches_tracked.value_sync();
    }

    /// The running statistics `(mean, var)`, as eval mode normalises.
    pub(crate) fn running_stats(&self) -> (Tensor<B, 1>, Tensor<B, 1>) {
        (self.running_mean.value(), self.running_var.value())
    }

    /// `(x − mean)/√(var + eps)·w + b` as one scale and one shift per
    /// channel, `x·s + t`: two passes over the map instead of four, in the
    /// forward pass and again in the backward pass.
    pub(crate) fn scale_shift(&self, mean: Tensor<B, 1>, var: Tensor<B, 1>) -> (Tensor<B, 1>, Tensor<B, 1>) {
        let inv_std = var.add_scalar(self.eps).sqrt().recip();
        let scale = match &self.weight {
            Some(w) => inv_std * w.val(),
            None => inv_std,
        };
        let shift = mean.neg() * scale.clone();
        let shift = match &self.bias {
            Some(b) => shift + b.val(),
            None => shift,
        };
        (scale, shift)
    }
}

/// The unbiased variance from the biased one of `n` values (`n − 1` in the
/// denominator, as PyTorch's running variance; one value stays biased).
fn unbiased<B: Backend>(var: Tensor<B, 1>, n: usize) -> Tensor<B, 1> {
    var.mul_scalar(n as f64 / (n.max(2) - 1) as f64)
}

/// A per-channel tensor `[1, C, 1, ...]` repeated to `[n, C, 1, ...]` when
/// spatial dimensions follow. The same values broadcast; but burn-flex
/// runs `[n, C, H, W] ∘ [n, C, 1, 1]` (one scalar per row) on its SIMD
/// path, and a `[1, C, 1, 1]` operand on a per-element strided walk about
/// ten times slower, which made BatchNorm most of a ResNet step on flex.
/// The copy is `n·C` values.
pub(crate) fn per_sample<B: Backend, const D: usize>(v: Tensor<B, D>, n: usize) -> Tensor<B, D> {
    if D > 2 && n > 1 {
        v.repeat_dim(0, n)
    } else {
        v
    }
}
