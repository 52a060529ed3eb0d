//! Ports of `mmcls.models.utils.PatchEmbed` (a strided convolution) and of
//! MMCV's `PatchEmbed` with a norm and `PatchMerging` (Swin, MixMIM).
use crate::norm::LayerNorm;
use burn::{
    module::Module,
    nn::{
        conv::{Conv2d, Conv2dConfig},
        Linear,
    },
    tensor::{backend::Backend, ops::PadMode, Tensor},
};

use crate::{
    functional::{conv2d, linear},
    init::{Dist, InitRng},
    NormCfg,
};

/// Image to patch tokens. Key `patch_embed.projection.*`, as in mmcls.
#[derive(Module, Debug)]
pub struct PatchEmbed<B: Backend> {
    /// The `[embed_dims, in_channels, p, p]` convolution with stride `p`.
    pub projection: Conv2d<B>,
}

impl<B: Backend> PatchEmbed<B> {
    /// A patch embedding initialised as MAE does: xavier-uniform on the
    /// weight viewed as `[embed_dims, in_channels·p·p]`; the bias keeps
    /// PyTorch's default `U(-1/√fan_in, 1/√fan_in)` (MAE's `_init_weights`
    /// does not touch convolutions).
    pub fn new(in_channels: usize, embed_dims: usize, patch_size: usize, device: &B::Device, rng: &mut InitRng) -> Self {
        let fan_in = in_channels * patch_size * patch_size;
        let mut projection =
            Conv2dConfig::new([in_channels, embed_dims], [patch_size, patch_size]).with_stride([patch_size, patch_size]).init(device);
        projection.weight = rng.param([embed_dims, in_channels, patch_size, patch_size], Dist::xavier_uniform(fan_in, embed_dims), device);
        let bound = 1.0 / (fan_in as f64).sqrt();
        projection.bias = Some(rng.param([embed_dims], Dist::Uniform(-bound, bound), device));
        Self { projection }
    }

    /// # Shapes
    /// - `x`: `[batch, in_channels, height, width]`
    /// - returns `[batch, (height/p)·(width/p), embed_dims]`, patches in row-major order
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 3> {
        let x = conv2d(&self.projection, x); // [b, d, h, w]
        x.flatten::<3>(2, 3).swap_dims(1, 2)
    }
}

/// Port of `mmcv.cnn.bricks.transformer.PatchEmbed` with a LayerNorm
/// (Swin's and MixMIM's stem): a `p × p` convolution with stride `p`, then
/// `norm`. Keys `projection.*`, `norm.*`. Both keep PyTorch's default
/// initialisation (the backbones' `_init_weights` touch only Linear and
/// LayerNorm).
#[derive(Module, Debug)]
pub struct NormedPatchEmbed<B: Backend> {
    /// The strided convolution.
    pub projection: Conv2d<B>,
    /// The norm over the embedding.
    pub norm: LayerNorm<B>,
}

impl<B: Backend> NormedPatchEmbed<B> {
    /// The stem, with PyTorch's default convolution initialisation.
    pub fn new(in_channels: usize, embed_dims: usize, patch_size: usize, norm: &NormCfg, device: &B::Device, rng: &mut InitRng) -> Self {
        let bound = 1.0 / ((in_channels * patch_size * patch_size) as f64).sqrt();
        let dist = Dist::Uniform(-bound, bound);
        let mut projection =
            Conv2dConfig::new([in_channels, embed_dims], [patch_size, patch_size]).with_stride([patch_size, patch_size]).init(device);
        projection.weight = rng.param([embed_dims, in_channels, patch_size, patch_size], dist, device);
        projection.bias = Some(rng.param([embed_dims], dist, device));
        Self { projection, norm: norm.build_layer_norm(embed_dims, device) }
    }

    /// `[batch, c, H, W] -> ([batch, h·w, embed_dims], [h, w])`.
    pub fn forward(&self, x: Tensor<B, 4>) -> (Tensor<B, 3>, [usize; 2]) {
        let x = conv2d(&self.projection, x);
        let [_, _, h, w] = x.dims();
        (self.norm.forward(x.flatten::<3>(2, 3).swap_dims(1, 2)), [h, w])
    }
}

/// Port of `mmcv.cnn.bricks.transformer.PatchMerging` with its defaults
/// (2 × 2 neighbours, no bias, norm before the reduction): each 2 × 2 block
/// concatenated in `nn.Unfold`'s order (channel, row, column), normalised,
/// and reduced to `out_channels`. Keys `norm.*`, `reduction.weight`.
#[derive(Module, Debug)]
pub struct PatchMerging<B: Backend> {
    /// LayerNorm over the `4·c` concatenation.
    pub norm: LayerNorm<B>,
    /// `4·c -> out`, no bias.
    pub reduction: Linear<B>,
}

impl<B: Backend> PatchMerging<B> {
    /// A merging layer with truncated-normal (std 0.02) reduction weights.
    pub fn new(in_channels: usize, out_channels: usize, norm: &NormCfg, device: &B::Device, rng: &mut InitRng) -> Self {
        Self {
            norm: norm.build_layer_norm(4 * in_channels, device),
            reduction: rng.linear(4 * in_channels, out_channels, Dist::TruncNormal(0.0, 0.02), None, device),
        }
    }

    /// The output width.
    pub fn out_channels(&self) -> usize {
        self.reduction.weight.dims()[1]
    }

    /// `[batch, h·w, c] -> ([batch, h/2·w/2, out], [h/2, w/2])`; an odd side
    /// is padded at the end first (MMCV's `corner` adaptive padding).
    pub fn forward(&self, x: Tensor<B, 3>, [h, w]: [usize; 2]) -> (Tensor<B, 3>, [usize; 2]) {
        let [b, _, c] = x.dims();
        let mut x = x.reshape([b, h, w, c]);
        let (hp, wp) = (h.div_ceil(2) * 2, w.div_ceil(2) * 2);
        if (hp, wp) != (h, w) {
            x = x.pad([(0, 0), (0, hp - h), (0, wp - w), (0, 0)], PadMode::Constant(0.0));
        }
        let (oh, ow) = (hp / 2, wp / 2);
        let x = x.reshape([b, oh, 2, ow, 2, c]).permute([0, 1, 3, 5, 2, 4]).reshape([b, oh * ow, 4 * c]);
        (linear(&self.reduction, self.norm.forward(x)), [oh, ow])
    }
}
