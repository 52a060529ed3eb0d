//! Port of `mmcls.models.utils.MultiheadAttention`: one fused `qkv` Linear,
//! as MMSelfSup and timm checkpoints store it.
use burn::{
    module::Module,
    nn::Linear,
    tensor::{backend::Backend, Tensor},
};

use crate::{
    functional::{linear, matmul},
    fused::softmax_last_dim,
    init::InitRng,
};

/// Multi-head self-attention with a fused `qkv` projection.
/// Keys `attn.qkv.*` and `attn.proj.*`.
#[derive(Module, Debug)]
pub struct MultiheadAttention<B: Backend> {
    /// `[embed_dims] -> [3·embed_dims]`, q|k|v concatenated on the output.
    pub qkv: Linear<B>,
    /// Output projection.
    pub proj: Linear<B>,
    num_heads: usize,
    scale: f64,
}

impl<B: Backend> MultiheadAttention<B> {
    /// Xavier-initialised attention (MAE's `_init_weights`).
    pub fn new(embed_dims: usize, num_heads: usize, qkv_bias: bool, device: &B::Device, rng: &mut InitRng) -> Self {
        let head_dims = embed_dims / num_heads;
        Self {
            qkv: rng.linear_xavier(embed_dims, embed_dims * 3, qkv_bias, device),
            proj: rng.linear_xavier(embed_dims, embed_dims, true, device),
            num_heads,
            scale: (head_dims as f64).powf(-0.5),
        }
    }

    /// # Shapes
    /// - `x`: `[batch, tokens, embed_dims]`
    /// - returns `[batch, tokens, embed_dims]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, n, c] = x.dims();
        let h = self.num_heads;
        let qkv = linear(&self.qkv, x).reshape([b, n, 3, h, c / h]).permute([2, 0, 3, 1, 4]); // [3, b, h, n, hd]
        let q = qkv.clone().slice([0..1]).squeeze_dim::<4>(0);
        let k = qkv.clone().slice([1..2]).squeeze_dim::<4>(0);
        let v = qkv.slice([2..3]).squeeze_dim::<4>(0);
        // mmcls computes softmax(q·kᵀ·scale) explicitly.
        let attn = softmax_last_dim(matmul(q, k.swap_dims(2, 3)).mul_scalar(self.scale));
        let x = matmul(attn, v).swap_dims(1, 2).reshape([b, n, c]);
        linear(&self.proj, x)
    }
}
