//! Port of mmpretrain's `models/utils/sparse_modules.py` (SparK's sparse
//! convolution on dense tensors): an operation sees the whole map, and
//! every position outside the active (unmasked) set is zero after it.
//!
//! mmpretrain keeps the active map in a global (`SparseHelper._cur_active`,
//! `[batch, 1, f, f]`, True where kept) that every sparse layer reads; here
//! it is an argument, the float map `active` (1 kept, 0 masked) at the
//! coarsest resolution `f`. A layer at resolution `h` sees it repeated
//! `h / f` times along each axis ([`active_at`]).
//!
//! - `SparseConv2d`, `SparseMaxPooling`, `SparseAvgPooling`: the dense
//!   operation, then the output times the active map ([`mask_inactive`]).
//! - `SparseBatchNorm2d` / `SparseSyncBatchNorm2d` (a `BatchNorm1d` over the
//!   active positions' channel vectors): [`sparse_batch_norm`], with the
//!   statistics over active positions only (and the running variance
//!   unbiased over their count), zeros elsewhere. One device's
//!   `SparseSyncBatchNorm2d` is `SparseBatchNorm2d`, as `SyncBN` is `BN`.
//! - `SparseLN2d`: a LayerNorm over channels at each active position, zeros
//!   elsewhere ([`sparse_layer_norm`]).
//!
//! Gradients equal the reference's: inactive positions feed nothing to the
//! statistics and receive no gradient through the layer.
use crate::norm::LayerNorm;
use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

use crate::batch_norm::{per_sample, TorchBatchNorm};

/// `SparseHelper._get_active_map_or_index(H)`: the active map `[batch, 1,
/// f, f]` repeated to `[batch, 1, h, h]` (nearest, `h / f` times per axis).
///
/// # Panics
/// When `h` is not a whole multiple of `f`: the reference's
/// `repeat_interleave` would not fit the map either.
pub fn active_at<B: Backend>(active: &Tensor<B, 4>, h: usize) -> Tensor<B, 4> {
    let [b, one, f, fw] = active.dims();
    assert_eq!(one, 1, "the active map is [batch, 1, f, f]");
    assert!(h.is_multiple_of(f) && f == fw, "a {h}×{h} map does not divide into the {f}×{fw} active map");
    let r = h / f;
    if r == 1 {
        return active.clone();
    }
    active.clone().reshape([b, f, 1, f, 1]).expand([b, f, r, f, r]).reshape([b, 1, h, h])
}

/// `sp_conv_forward`'s mask: `x` (a convolution's or pooling's output,
/// `[batch, C, h, h]`) times the active map at its resolution.
pub fn mask_inactive<B: Backend>(x: Tensor<B, 4>, active: &Tensor<B, 4>) -> Tensor<B, 4> {
    let [_, c, h, _] = x.dims();
    x * active_at(active, h).repeat_dim(1, c)
}

/// `sp_bn_forward`: `bn` (a `BatchNorm1d`'s state) over the channel vectors
/// of the active positions of `x` (`[batch, C, h, h]`), zeros at the others.
/// In training the statistics are those of the active positions (`n` of
/// them: biased variance to normalise, `n / (n − 1)` times it for the
/// running variance); in eval mode the running statistics.
pub fn sparse_batch_norm<B: Backend>(bn: &TorchBatchNorm<B>, x: Tensor<B, 4>, active: &Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, c, h, w] = x.dims();
    let on = active_at(active, h); // [b, 1, h, w]
    let m = on.clone().repeat_dim(1, c); // [b, c, h, w]
    let (mean, var) = if bn.is_training(&x.device()) {
        // The count of active positions, on the device (no host sync).
        let n = on.sum(); // [1]
        let per_channel = |t: Tensor<B, 4>| t.reshape([b, c, h * w]).sum_dim(2).sum_dim(0).reshape([c]);
        let mean = per_channel(x.clone() * m.clone()) / n.clone();
        let centred = (x.clone() - per_sample(mean.clone().reshape([1, c, 1, 1]), b)) * m.clone();
        let var = per_channel(centred.powi_scalar(2)) / n.clone(); // biased
        let n = n.detach();
        bn.update_running(mean.clone(), var.clone().detach() * n.clone() / (n - 1.0).clamp_min(1.0));
        (mean, var)
    } else {
        bn.running_stats()
    };
    let (scale, shift) = bn.scale_shift(mean, var);
    let per_channel = |v: Tensor<B, 1>| per_sample(v.reshape([1, c, 1, 1]), b);
    (x * per_channel(scale) + per_channel(shift)) * m
}

/// `dict(type='SparseLN2d', eps=...)`: mmpretrain's `SparseLayerNorm2D`,
/// an `nn.LayerNorm` over channels (keys `weight`, `bias`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseLayerNormCfg {
    /// Epsilon added to the variance (`nn.LayerNorm`'s 1e-5 by default).
    #[serde(default = "ln_eps")]
    pub eps: f64,
}

fn ln_eps() -> f64 {
    1e-5
}

impl SparseLayerNormCfg {
    /// A layer over `channels` with weight 1 and bias 0.
    pub fn init<B: Backend>(&self, channels: usize, device: &B::Device) -> LayerNorm<B> {
        LayerNorm::new(channels, self.eps, device)
    }
}

/// `SparseLayerNorm2D.forward` on channel-first maps (`[batch, C, h, h]`):
/// each active position's channel vector normalised by `ln`, zeros at the
/// others.
pub fn sparse_layer_norm<B: Backend>(ln: &LayerNorm<B>, x: Tensor<B, 4>, active: &Tensor<B, 4>) -> Tensor<B, 4> {
    mask_inactive(ln.forward(x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2]), active)
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::tensor::TensorData;
    use burn_flex::Flex;

    use super::*;
    use crate::init::InitRng;

    type A = burn_autodiff::Autodiff<Flex>;

    /// Sparse BatchNorm equals a BatchNorm over the gathered active
    /// positions, computed directly in f64, and zeros elsewhere; the running
    /// variance is unbiased over the active count.
    #[test]
    fn sparse_batch_norm_normalises_active_positions_only() {
        let device = Default::default();
        let (b, c, h) = (2, 3, 4);
        let x: Vec<f32> = (0..b * c * h * h).map(|i| ((i * 37 % 23) as f32 - 11.0) / 5.0).collect();
        // active map 2×2 per sample: sample 0 keeps (0,0),(1,1); sample 1 keeps (0,1).
        let act = vec![1.0f32, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0];
        let active = Tensor::<A, 4>::from_data(TensorData::new(act.clone(), [b, 1, 2, 2]), &device);
        let bn = TorchBatchNorm::<A>::new(c, true, 1e-5, 0.1, &device, &mut InitRng::new(0));
        let xt = Tensor::<A, 4>::from_data(TensorData::new(x.clone(), [b, c, h, h]), &device);
        let y = sparse_batch_norm(&bn, xt, &active).into_data().to_vec::<f32>().unwrap();
        let on = |n: usize, i: usize, j: usize| act[n * 4 + (i / 2) * 2 + j / 2] == 1.0;
        for ch in 0..c {
            let mut vals = vec![];
            for n in 0..b {
                for i in 0..h {
                    for j in 0..h {
                        if on(n, i, j) {
                            vals.push(f64::from(x[((n * c + ch) * h + i) * h + j]));
                        }
                    }
                }
            }
            let cnt = vals.len() as f64;
            let mean = vals.iter().sum::<f64>() / cnt;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / cnt;
            for n in 0..b {
                for i in 0..h {
                    for j in 0..h {
                        let k = ((n * c + ch) * h + i) * h + j;
                        let want = if on(n, i, j) { (f64::from(x[k]) - mean) / (var + 1e-5).sqrt() } else { 0.0 };
                        assert!((f64::from(y[k]) - want).abs() < 1e-5, "{k}: {} vs {want}", y[k]);
                    }
                }
            }
            let rv = bn.running_var.value().into_data().to_vec::<f32>().unwrap()[ch];
            let want = 0.9 + 0.1 * var * cnt / (cnt - 1.0);
            assert!((f64::from(rv) - want).abs() < 1e-5, "running_var {rv} vs {want}");
        }
    }

    #[test]
    fn active_map_repeats_each_cell() {
        let device = Default::default();
        let a = Tensor::<Flex, 4>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0], [1, 1, 2, 2]), &device);
        let up = active_at(&a, 4).into_data().to_vec::<f32>().unwrap();
        let want = [1., 1., 0., 0., 1., 1., 0., 0., 0., 0., 1., 1., 0., 0., 1., 1.];
        assert_eq!(up, want);
    }
}
