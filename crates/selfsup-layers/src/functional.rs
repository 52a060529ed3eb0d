//! Small tensor functions PyTorch has and burn lacks.
use burn::{
    nn::{conv::Conv2d, PaddingConfig2d},
    tensor::{backend::Backend, ops::{ConvOptions, PadMode}, Tensor},
};

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
/// ResNet gradient below the last stage on wgpu. Other convolutions go
/// straight to `Conv2d::forward`.
pub fn conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let unpadded = matches!(conv.padding, PaddingConfig2d::Valid) || matches!(conv.padding, PaddingConfig2d::Explicit(0, 0, 0, 0));
    if conv.kernel_size != [1, 1] || conv.stride == [1, 1] || !unpadded {
        return conv.forward(x);
    }
    let x = subsample(x, conv.stride);
    let options = ConvOptions::new([1, 1], [0, 0], conv.dilation, conv.groups);
    burn::tensor::module::conv2d(x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()), options)
}

/// `x[:, :, ::sh, ::sw]` of a `[n, c, h, w]` map, with reshapes and range
/// slices only (no stepped slice: its gradient needs a stepped
/// `slice_assign`, which burn backends do not all have).
pub fn subsample<B: Backend>(x: Tensor<B, 4>, [sh, sw]: [usize; 2]) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let (oh, ow) = (h.div_ceil(sh), w.div_ceil(sw));
    let x = if oh * sh != h || ow * sw != w { x.pad([(0, 0), (0, 0), (0, oh * sh - h), (0, ow * sw - w)], PadMode::Constant(0.0)) } else { x };
    x.reshape([n * c * oh, sh, ow, sw]).slice([0..n * c * oh, 0..1, 0..ow, 0..1]).reshape([n, c, oh, ow])
}
