//! Small tensor functions PyTorch has and burn lacks, and the matrix
//! products of every layer, which honour [`crate::amp::autocast`].
use burn::{
    nn::{conv::Conv2d, Linear, PaddingConfig2d},
    tensor::{
        backend::Backend,
        ops::{ConvOptions, PadMode, PaddedConvOptions},
        Tensor,
    },
};

use crate::{amp::cast_op, fused::Conv2dGeometry};

/// `linear(x)` for a burn `Linear` (`x·W + b`), in the autocast dtype when
/// autocast is on.
///
/// Inputs of rank above 2 (`[n, tokens, c]`) run as one `[n·tokens, c]`
/// product, as PyTorch's `F.linear` does: burn's default linear makes a
/// batched product against the broadcast weight, whose weight gradient is
/// a `[n, c_in, c_out]` stack summed afterwards; one large product is both
/// less memory and a better shape for the CPU GEMMs.
pub fn linear<B: Backend, const D: usize>(layer: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    if D > 2 {
        let dims = x.dims();
        let rows = dims[..D - 1].iter().product::<usize>();
        let y = linear(layer, x.reshape([rows, dims[D - 1]]));
        let mut out = dims;
        out[D - 1] = y.dims()[1];
        return y.reshape(out);
    }
    let operands = (x.clone(), layer.weight.val(), layer.bias.as_ref().map(|b| b.val()));
    cast_op(
        &x,
        operands,
        |(x, w, b), dt| (x.cast(dt), w.cast(dt), b.map(|b| b.cast(dt))),
        |(x, w, b)| {
            let dims = x.dims();
            if D != 2 {
                return burn::tensor::module::linear(x, w, b);
            }
            match crate::fused::linear(x.reshape([dims[0], dims[1]]), w, b) {
                Ok(y) => {
                    let mut out = dims;
                    out[1] = y.dims()[1];
                    y.reshape(out)
                }
                Err((x, w, b)) => burn::tensor::module::linear(x.reshape(dims), w, b),
            }
        },
    )
}

/// `a.matmul(b)`, in the autocast dtype when autocast is on.
pub fn matmul<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> Tensor<B, D> {
    let like = a.clone();
    cast_op(&like, (a, b), |(a, b), dt| (a.cast(dt), b.cast(dt)), |(a, b)| a.matmul(b))
}

/// `F.normalize(x, dim=dim)`: `x / max(‖x‖₂, 1e-12)` along `dim`.
pub fn l2_normalize<B: Backend, const D: usize>(x: Tensor<B, D>, dim: usize) -> Tensor<B, D> {
    let norm = x.clone().powi_scalar(2).sum_dim(dim).sqrt().clamp_min(1e-12);
    x / norm
}

/// `conv(x)` for a burn `Conv2d`, with strided 1×1 convolutions (ResNet's
/// projection shortcuts) run as a subsampling followed by a stride-1 1×1
/// convolution.
///
/// The two are the same function (a 1×1 kernel only ever reads the
/// pixels on the stride grid) and cost the same, but burn-wgpu 0.21
/// computes the input gradient of a strided 1×1 convolution wrongly
/// (`conv2d_gradients_match_a_direct_computation`), which corrupted every
/// ResNet gradient below the last stage on wgpu. On burn-flex and
/// burn-tch, ungrouped convolutions are one fused operation
/// ([`crate::fused::conv2d`]); elsewhere ungrouped 1×1 convolutions run as
/// matrix products (`pointwise`) and other convolutions go straight to
/// burn's `conv2d`.
/// Runs in the autocast dtype when autocast is on.
pub fn conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let like = x.clone();
    let operands = (x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()));
    cast_op(&like, operands, |(x, w, b), dt| (x.cast(dt), w.cast(dt), b.map(|b| b.cast(dt))), |(x, w, b)| conv2d_raw(conv, x, w, b))
}

fn conv2d_raw<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>, weight: Tensor<B, 4>, bias: Option<Tensor<B, 1>>) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    let same = |k: usize, s: usize, n: usize| {
        let total = ((n.div_ceil(s) - 1) * s + k).saturating_sub(n);
        (total / 2, total - total / 2)
    };
    let ((top, bottom), (left, right)) = match conv.padding {
        PaddingConfig2d::Valid => ((0, 0), (0, 0)),
        PaddingConfig2d::Explicit(top, left, bottom, right) => ((top, bottom), (left, right)),
        PaddingConfig2d::Same => (same(conv.kernel_size[0], conv.stride[0], h), same(conv.kernel_size[1], conv.stride[1], w)),
    };
    let (x, weight) = if conv.groups == 1 {
        let geometry = Conv2dGeometry { stride: conv.stride, padding: [top, left, bottom, right], dilation: conv.dilation };
        match crate::fused::conv2d(x, weight, geometry) {
            Ok(y) => {
                let co = y.dims()[1];
                return match bias {
                    Some(b) => y + b.reshape([1, co, 1, 1]),
                    None => y,
                };
            }
            Err(operands) => operands,
        }
    } else {
        (x, weight)
    };
    let unpadded = top + bottom + left + right == 0;
    if conv.kernel_size == [1, 1] && unpadded && conv.groups == 1 {
        let x = if conv.stride == [1, 1] { x } else { subsample(x, conv.stride) };
        return pointwise(x, weight, bias);
    }
    if conv.kernel_size != [1, 1] || conv.stride == [1, 1] || !unpadded {
        let options = PaddedConvOptions::asymmetric(conv.stride, [top, left], [bottom, right], conv.dilation, conv.groups);
        return burn::tensor::module::conv2d(x, weight, bias, options);
    }
    let x = subsample(x, conv.stride);
    let options = ConvOptions::new([1, 1], [0, 0], conv.dilation, conv.groups);
    burn::tensor::module::conv2d(x, weight, bias, options)
}

/// A 1×1, stride-1, unpadded, ungrouped convolution as the product
/// `W[c_out, c_in] · x[n][c_in, h·w]`, with no layout change: the forward
/// and both gradients are then batched GEMMs. burn-flex's convolution
/// gradients go through permuted copies and thin GEMMs instead, which made
/// them most of a ResNet-50 backward pass (2 of the 3 convolutions of a
/// bottleneck are 1×1).
fn pointwise<B: Backend>(x: Tensor<B, 4>, weight: Tensor<B, 4>, bias: Option<Tensor<B, 1>>) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let c_out = weight.dims()[0];
    let y = weight.reshape([1, c_out, c]).matmul(x.reshape([n, c, h * w]));
    let y = match bias {
        Some(b) => y + b.reshape([1, c_out, 1]),
        None => y,
    };
    y.reshape([n, c_out, h, w])
}

/// `x[:, :, ::sh, ::sw]` of a `[n, c, h, w]` map, with reshapes and range
/// slices only (no stepped slice: its gradient needs a stepped
/// `slice_assign`, which burn backends do not all have).
pub fn subsample<B: Backend>(x: Tensor<B, 4>, [sh, sw]: [usize; 2]) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let (oh, ow) = (h.div_ceil(sh), w.div_ceil(sw));
    let x =
        if oh * sh != h || ow * sw != w { x.pad([(0, 0), (0, 0), (0, oh * sh - h), (0, ow * sw - w)], PadMode::Constant(0.0)) } else { x };
    x.reshape([n * c * oh, sh, ow, sw]).slice([0..n * c * oh, 0..1, 0..ow, 0..1]).reshape([n, c, oh, ow])
}

/// MMCV's `DropPath(p)` (stochastic depth) in training: each sample's
/// residual branch is kept with probability `1 − p` and scaled by
/// `1/(1 − p)` (`floor(1 − p + u)` for a uniform `u` per sample, from the
/// draw `key`). The identity when `p` is 0, without autodiff (evaluation)
/// or without draws.
pub fn drop_path<B: Backend>(x: Tensor<B, 3>, p: f64, key: &str, draws: Option<&mut selfsup_core::Draws>) -> Tensor<B, 3> {
    let device = x.device();
    let Some(draws) = draws else { return x };
    if p == 0.0 || !B::ad_enabled(&device) {
        return x;
    }
    let n = x.dims()[0];
    let keep = 1.0 - p;
    let scale: Vec<f32> = draws.uniform(key, n).into_iter().map(|u| ((keep + f64::from(u)).floor() / keep) as f32).collect();
    x * Tensor::<B, 1>::from_data(burn::tensor::TensorData::new(scale, [n]), &device).reshape([n, 1, 1])
}
