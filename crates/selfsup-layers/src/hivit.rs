//! The building blocks of mmpretrain's `backbones/hivit.py` (HiViT), which
//! the `HiViT` backbone and iTPN's feature-pyramid neck share: `Mlp`,
//! `Attention` (with an optional relative position bias), `BlockWithRPE`,
//! `PatchEmbed` and `PatchMerge`.
//!
//! HiViT's first stages run on a grid of `inner × inner` sub-patches inside
//! every patch (`[batch, L, inner, inner, C]` in PyTorch). Their blocks are
//! MLP-only and per token, so here those tokens travel flattened as
//! `[batch, L·inner·inner, C]`, in PyTorch's memory order; [`PatchMerge`]
//! and [`PatchEmbed`] take the inner side as an argument.
use crate::norm::LayerNorm;
use burn::{
    module::{Module, Param},
    nn::{conv::Conv2d, Linear},
    tensor::{backend::Backend, Tensor, TensorData},
};
use selfsup_core::Draws;

use crate::{
    attention::relative_position_index,
    functional::{conv2d, drop_path, linear, matmul},
    fused::softmax_last_dim,
    init::{fixed, Dist, InitRng},
    NormCfg,
};

/// Key rows between `Mlp`'s `fc1`/`fc2` and our `hidden`/`out` (the
/// projection necks' `mlp.fc1` already stands for their `mlp.0`). They come
/// before the neck rows, which is what `KeyMap` needs to keep the two apart.
pub const HIVIT_KEY_REMAP: &[(&str, &str, &str, &str)] = &[
    (r"(^|\.)mlp\.fc1\.", "${1}mlp.hidden.", r"(^|\.)mlp\.hidden\.", "${1}mlp.fc1."),
    (r"(^|\.)mlp\.fc2\.", "${1}mlp.out.", r"(^|\.)mlp\.out\.", "${1}mlp.fc2."),
];

/// How HiViT's Linear layers start: mmpretrain's `_init_weights`
/// (truncated normal, std 0.02, zero bias), or PyTorch's default
/// (`kaiming_uniform_(a=√5)`, the iTPN neck's without a model-level
/// `init_cfg`), or MAE's Xavier (iTPN's pixel config's `init_cfg`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinearInit {
    /// `trunc_normal_(std=0.02)`, zero bias.
    TruncNormal,
    /// PyTorch's `nn.Linear` default.
    Torch,
    /// `xavier_uniform_`, zero bias.
    Xavier,
}

impl LinearInit {
    /// A Linear `d_in → d_out` initialised this way.
    pub fn linear<B: Backend>(self, rng: &mut InitRng, d_in: usize, d_out: usize, bias: bool, device: &B::Device) -> Linear<B> {
        match self {
            LinearInit::TruncNormal => rng.linear(d_in, d_out, Dist::TruncNormal(0.0, 0.02), bias.then_some(Dist::Constant(0.0)), device),
            LinearInit::Torch => rng.linear_torch(d_in, d_out, bias, device),
            LinearInit::Xavier => rng.linear_xavier(d_in, d_out, bias, device),
        }
    }
}

/// HiViT's two-layer MLP with exact GELU. Keys `fc1`, `fc2`.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// Key `fc1`.
    pub hidden: Linear<B>,
    /// Key `fc2`.
    pub out: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    /// `[.., dim] -> [.., dim]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        linear(&self.out, crate::fused::gelu(linear(&self.hidden, x)))
    }
}

/// HiViT's `Attention`: fused `qkv`, scaled dot product, and with `rpe` a
/// relative position bias over the whole `input_size × input_size` grid
/// (`relative_position_bias_table` indexed by the `relative_position_index`
/// buffer, Swin's). Keys `qkv`, `proj` and, with `rpe`, the table and index.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// The fused q|k|v projection.
    pub qkv: Linear<B>,
    /// Output projection.
    pub proj: Linear<B>,
    /// `[(2s−1)², heads]`.
    pub relative_position_bias_table: Option<Param<Tensor<B, 2>>>,
    /// `[s², s²]` rows of the table (int64 in PyTorch, a fixed float here).
    pub relative_position_index: Option<Param<Tensor<B, 2>>>,
    num_heads: usize,
    scale: f64,
}

impl<B: Backend> Attention<B> {
    /// # Shapes
    /// `[batch, tokens, dim] -> [batch, tokens, dim]`; with `rpe` the tokens
    /// are the whole grid.
    pub fn forward(&self, x: Tensor<B, 3>, rpe: bool) -> Tensor<B, 3> {
        let [b, n, c] = x.dims();
        let h = self.num_heads;
        let qkv = linear(&self.qkv, x).reshape([b, n, 3, h, c / h]).permute([2, 0, 3, 1, 4]);
        let q = qkv.clone().slice([0..1]).squeeze_dim::<4>(0).mul_scalar(self.scale);
        let k = qkv.clone().slice([1..2]).squeeze_dim::<4>(0);
        let v = qkv.slice([2..3]).squeeze_dim::<4>(0);
        let mut attn = matmul(q, k.swap_dims(2, 3));
        if rpe {
            if let (Some(table), Some(index)) = (&self.relative_position_bias_table, &self.relative_position_index) {
                let index = index.val().reshape([n * n]).int();
                let bias = table.val().select(0, index).reshape([n, n, h]).permute([2, 0, 1]);
                attn = attn + bias.unsqueeze_dim::<4>(0);
            }
        }
        let x = matmul(softmax_last_dim(attn), v).swap_dims(1, 2).reshape([b, n, c]);
        linear(&self.proj, x)
    }
}

/// The settings of one [`BlockWithRpe`].
#[derive(Debug, Clone)]
pub struct BlockConfig {
    /// The grid side the relative position bias covers.
    pub input_size: usize,
    /// Token width.
    pub dim: usize,
    /// Attention heads; 0 builds an MLP-only block (HiViT's first stages).
    pub num_heads: usize,
    /// MLP width as a multiple of `dim`.
    pub mlp_ratio: f64,
    /// Bias on `qkv`.
    pub qkv_bias: bool,
    /// Stochastic depth of this block.
    pub drop_path: f64,
    /// A relative position bias in the attention.
    pub rpe: bool,
    /// Layer scale `gamma_1`/`gamma_2` when positive.
    pub layer_scale_init_value: f64,
    /// The LayerNorms.
    pub norm_cfg: NormCfg,
}

impl BlockConfig {
    /// Builds the block: Linear layers by `init`, unit LayerNorms, the bias
    /// table from `N(0, 0.02)` truncated.
    pub fn init<B: Backend>(&self, init: LinearInit, device: &B::Device, rng: &mut InitRng) -> BlockWithRpe<B> {
        let d = self.dim;
        let hidden = (d as f64 * self.mlp_ratio) as usize;
        let with_attn = self.num_heads > 0;
        let attn = with_attn.then(|| {
            let s = self.input_size;
            let rpe = self.rpe;
            Attention {
                relative_position_bias_table: rpe
                    .then(|| rng.param([(2 * s - 1) * (2 * s - 1), self.num_heads], Dist::TruncNormal(0.0, 0.02), device)),
                relative_position_index: rpe
                    .then(|| fixed(Tensor::from_data(TensorData::new(relative_position_index(s), [s * s, s * s]), device))),
                qkv: init.linear(rng, d, 3 * d, self.qkv_bias, device),
                proj: init.linear(rng, d, d, true, device),
                num_heads: self.num_heads,
                scale: ((d / self.num_heads) as f64).powf(-0.5),
            }
        });
        let gamma = |rng: &mut InitRng| rng.param([d], Dist::Constant(self.layer_scale_init_value), device);
        let layer_scale = self.layer_scale_init_value > 0.0;
        BlockWithRpe {
            norm1: with_attn.then(|| self.norm_cfg.build_layer_norm(d, device)),
            attn,
            gamma_1: (layer_scale && with_attn).then(|| gamma(rng)),
            gamma_2: layer_scale.then(|| gamma(rng)),
            norm2: self.norm_cfg.build_layer_norm(d, device),
            mlp: Mlp { hidden: init.linear(rng, d, hidden, true, device), out: init.linear(rng, hidden, d, true, device) },
            drop_path: self.drop_path,
        }
    }
}

/// HiViT's `BlockWithRPE`: `x + γ₁·attn(norm1(x))` (when it has heads),
/// then `x + γ₂·mlp(norm2(x))`, each branch under stochastic depth. Keys
/// `norm1`, `attn.*`, `gamma_1`, `gamma_2`, `norm2`, `mlp.fc1`, `mlp.fc2`.
#[derive(Module, Debug)]
pub struct BlockWithRpe<B: Backend> {
    /// Norm before attention (blocks with heads).
    pub norm1: Option<LayerNorm<B>>,
    /// Self-attention (blocks with heads).
    pub attn: Option<Attention<B>>,
    /// Attention branch's layer scale.
    pub gamma_1: Option<Param<Tensor<B, 1>>>,
    /// MLP branch's layer scale.
    pub gamma_2: Option<Param<Tensor<B, 1>>>,
    /// Norm before the MLP.
    pub norm2: LayerNorm<B>,
    /// The MLP.
    pub mlp: Mlp<B>,
    drop_path: f64,
}

impl<B: Backend> BlockWithRpe<B> {
    /// Whether the block attends (a main-stage block).
    pub fn has_attention(&self) -> bool {
        self.attn.is_some()
    }

    /// Rescales the output projections by `1/√(2·layer_id)` (iTPN's
    /// `rescale_init_weight`).
    pub fn rescale(mut self, layer_id: usize) -> Self {
        let f = 1.0 / (2.0 * layer_id as f64).sqrt();
        // A new trainable leaf: `Param::map` would leave a non-leaf behind.
        let scaled = |p: &Param<Tensor<B, 2>>| Param::initialized(p.id, p.val().mul_scalar(f).detach().require_grad());
        if let Some(attn) = &mut self.attn {
            attn.proj.weight = scaled(&attn.proj.weight);
        }
        self.mlp.out.weight = scaled(&self.mlp.out.weight);
        self
    }

    /// # Shapes
    /// `[batch, tokens, dim] -> [batch, tokens, dim]`. Stochastic depth
    /// draws `key` (`[batch]`, once per branch) in training.
    pub fn forward(&self, x: Tensor<B, 3>, rpe: bool, key: &str, mut draws: Option<&mut Draws>) -> Tensor<B, 3> {
        let scale = |g: &Option<Param<Tensor<B, 1>>>, y: Tensor<B, 3>| match g {
            Some(g) => y * g.val().unsqueeze_dim::<2>(0).unsqueeze_dim::<3>(0),
            None => y,
        };
        let mut x = x;
        if let (Some(norm1), Some(attn)) = (&self.norm1, &self.attn) {
            let y = scale(&self.gamma_1, attn.forward(norm1.forward(x.clone()), rpe));
            x = x + drop_path(y, self.drop_path, key, draws.as_deref_mut());
        }
        let y = scale(&self.gamma_2, self.mlp.forward(self.norm2.forward(x.clone())));
        x.clone() + drop_path(y, self.drop_path, key, draws)
    }
}

/// HiViT's `PatchEmbed`: a `patch/inner`-strided convolution, its output
/// regrouped patch by patch, then a LayerNorm. Keys `proj.*`, `norm.*`.
#[derive(Module, Debug)]
pub struct PatchEmbed<B: Backend> {
    /// `[C, in_chans, patch/inner, patch/inner]`.
    pub proj: Conv2d<B>,
    /// `patch_norm`'s LayerNorm.
    pub norm: Option<LayerNorm<B>>,
    inner: usize,
}

impl<B: Backend> PatchEmbed<B> {
    /// A patch embedding from `in_chans` to `dim` with `inner × inner`
    /// sub-patches per `patch × patch` patch. The convolution starts as
    /// PyTorch's default.
    pub fn new(
        in_chans: usize,
        dim: usize,
        patch: usize,
        inner: usize,
        norm: Option<&NormCfg>,
        device: &B::Device,
        rng: &mut InitRng,
    ) -> Self {
        let k = patch / inner;
        let bound = 1.0 / ((in_chans * k * k) as f64).sqrt();
        let u = Dist::Uniform(-bound, bound);
        Self { proj: rng.conv2d(in_chans, dim, k, k, 0, 1, u, Some(u), device), norm: norm.map(|n| n.build_layer_norm(dim, device)), inner }
    }

    /// The sub-patch grid's side inside each patch.
    pub fn inner(&self) -> usize {
        self.inner
    }

    /// # Shapes
    /// `[batch, in_chans, H, W] -> [batch, L·inner², dim]`, patch by patch
    /// (`L = (H/patch)·(W/patch)`), row-major inside each patch.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 3> {
        let x = conv2d(&self.proj, x);
        let [b, c, h, w] = x.dims();
        let i = self.inner;
        let (hp, wp) = (h / i, w / i);
        let x = x.reshape([b * c, hp, i, wp, i]).swap_dims(2, 3).reshape([b, c, hp * wp * i * i]).swap_dims(1, 2);
        match &self.norm {
            Some(norm) => norm.forward(x),
            None => x,
        }
    }

    /// Replaces the convolution's weight by a Xavier-uniform draw over its
    /// flattened `[C, in·k·k]` view (iTPN's pixel variant).
    pub fn xavier(mut self, rng: &mut InitRng) -> Self {
        let [c, i, k, _] = self.proj.weight.dims();
        let device = self.proj.weight.device();
        self.proj.weight = rng.param([c, i, k, k], Dist::xavier_uniform(i * k * k, c), &device);
        self
    }
}

/// HiViT's `PatchMerge`: each 2×2 group of sub-patches concatenated in
/// Swin's order (`x0 x1 x2 x3` = (0,0), (1,0), (0,1), (1,1)), normed and
/// reduced to twice the width. Keys `norm.*`, `reduction.weight`.
#[derive(Module, Debug)]
pub struct PatchMerge<B: Backend> {
    /// LayerNorm over `4·dim`.
    pub norm: LayerNorm<B>,
    /// `4·dim → 2·dim`, no bias.
    pub reduction: Linear<B>,
}

impl<B: Backend> PatchMerge<B> {
    /// A merge of `dim`-wide sub-patches; `Linear` by `init`.
    pub fn new(dim: usize, norm_cfg: &NormCfg, init: LinearInit, device: &B::Device, rng: &mut InitRng) -> Self {
        Self { norm: norm_cfg.build_layer_norm(4 * dim, device), reduction: init.linear(rng, 4 * dim, 2 * dim, false, device) }
    }

    /// # Shapes
    /// `[batch, L·inner², dim] -> [batch, L·(inner/2)², 2·dim]`
    pub fn forward(&self, x: Tensor<B, 3>, inner: usize) -> Tensor<B, 3> {
        linear(&self.reduction, self.norm.forward(merge_groups(x, inner)))
    }
}

/// Each 2×2 group of sub-patches side by side in Swin's order:
/// `[batch, L·inner², c] -> [batch, L·(inner/2)², 4c]`.
fn merge_groups<B: Backend>(x: Tensor<B, 3>, inner: usize) -> Tensor<B, 3> {
    let [b, t, c] = x.dims();
    let l = t / (inner * inner);
    let h = inner / 2;
    // [b·l, h, dh, w, dw, c] -> [b·l, h, w, dw, dh, c]: x0..x3 in order.
    x.reshape([b * l, h, 2, h, 2, c]).permute([0, 1, 3, 4, 2, 5]).reshape([b, l * h * h, 4 * c])
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;
    use burn_flex::Flex;

    use super::*;

    /// Sub-patch (r, c) of a 4×4 patch holds `10·r + c`: the merge must
    /// concatenate (0,0), (1,0), (0,1), (1,1) of each 2×2 group, groups in
    /// row-major order.
    #[test]
    fn merge_concatenates_in_swin_order() {
        let vals: Vec<f32> = (0..4).flat_map(|r| (0..4).map(move |c| (10 * r + c) as f32)).collect();
        let x = Tensor::<Flex, 3>::from_data(TensorData::new(vals, [1, 16, 1]), &Default::default());
        let got = merge_groups(x, 4).into_data().to_vec::<f32>().unwrap();
        let want = [0.0, 10.0, 1.0, 11.0, 2.0, 12.0, 3.0, 13.0, 20.0, 30.0, 21.0, 31.0, 22.0, 32.0, 23.0, 33.0];
        assert_eq!(got, want);
    }
}
