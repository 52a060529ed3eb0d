//! Port of `mmcls.models.utils.PatchEmbed` (a strided convolution).
use burn::{
    module::Module,
    nn::conv::{Conv2d, Conv2dConfig},
    tensor::{backend::Backend, Tensor},
};

use crate::{
    functional::conv2d,
    init::{Dist, InitRng},
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
