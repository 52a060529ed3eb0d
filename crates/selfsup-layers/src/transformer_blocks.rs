//! Ports of `mmselfsup/models/utils/transformer_blocks.py` (mmselfsup
//! 1.0.0), the classes CAE builds:
//!
//! - [`MultiheadAttention`]: mmcls's attention with MMSelfSup's bias: with
//!   `qkv_bias=False` the fused `qkv` Linear has no bias and the layer owns
//!   `q_bias` and `v_bias`, added as `cat(q_bias, 0, v_bias)`; the scores
//!   are `(q·kᵀ)·scale`, as mmcls computes them.
//! - [`TransformerEncoderLayer`]: pre-norm, with the layer scales
//!   `gamma_1`, `gamma_2` when `init_values > 0`, and stochastic depth on
//!   both branches.
//! - [`CrossMultiheadAttention`]: queries from one token set, keys and
//!   values from another, separate `q`, `k`, `v` Linears without bias and
//!   optional `q_bias`/`v_bias`; q is scaled before the product.
//! - [`CaeTransformerRegressorLayer`]: CAE's regressor layer, cross
//!   attention of the mask queries on `[visible, masked]` keys and values,
//!   then a post-norm FFN, with `gamma_1_cross`, `gamma_2_cross` (frozen
//!   ones when `init_values` is 0).
//! - [`PromptMultiheadAttention`] and [`PromptTransformerEncoderLayer`]:
//!   MILAN's decoder layers, which update only the mask tokens: queries
//!   from the mask tokens (`q`), keys and values from the whole sequence
//!   (`kv`: the encoder's visible tokens, not normalised, and the
//!   normalised mask tokens, in image order, cls first).
//!
//! The initialisation is CAE's (`_init_weights` of `CAEViT` and
//! `CAENeck`): xavier-uniform Linear weights, zero biases, unit
//! LayerNorms, zero q/v biases. Keys are MMSelfSup's (`attn.qkv.weight`,
//! `attn.q_bias`, `ffn.layers.0.0.*` through
//! [`crate::transformer::FFN_KEY_REMAP`], `cross_attn.q.weight`, ...).
use crate::norm::LayerNorm;
use burn::{
    module::{Module, Param},
    nn::Linear,
    tensor::{backend::Backend, Int, Tensor},
};
use selfsup_core::Draws;

use crate::{
    functional::{drop_path, linear, matmul},
    fused::softmax_last_dim,
    init::{fixed, Dist, InitRng},
    transformer::Ffn,
    NormCfg,
};

/// `x · γ` for a `[dims]` layer scale, or `x` without one.
fn scale_by<B: Backend>(gamma: &Option<Param<Tensor<B, 1>>>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    match gamma {
        Some(g) => x * g.val().unsqueeze_dims::<3>(&[0, 1]),
        None => x,
    }
}

/// `[batch, n, heads·hd] -> [batch, heads, n, hd]`.
fn split_heads<B: Backend>(x: Tensor<B, 3>, heads: usize) -> Tensor<B, 4> {
    let [b, n, c] = x.dims();
    x.reshape([b, n, heads, c / heads]).swap_dims(1, 2)
}

/// A xavier-uniform Linear with a zero bias (or none).
fn xavier<B: Backend>(rng: &mut InitRng, d_in: usize, d_out: usize, bias: bool, device: &B::Device) -> Linear<B> {
    rng.linear(d_in, d_out, Dist::xavier_uniform(d_in, d_out), bias.then_some(Dist::Constant(0.0)), device)
}

/// MMSelfSup's `MultiheadAttention`. Keys `qkv.weight` (and `qkv.bias`
/// with `qkv_bias`), `q_bias`, `v_bias` (without), `proj.*`.
#[derive(Module, Debug)]
pub struct MultiheadAttention<B: Backend> {
    /// `[embed_dims] -> [3·embed_dims]`, q|k|v on the output.
    pub qkv: Linear<B>,
    /// `[embed_dims]`, when `qkv_bias` is false.
    pub q_bias: Option<Param<Tensor<B, 1>>>,
    /// `[embed_dims]`, when `qkv_bias` is false.
    pub v_bias: Option<Param<Tensor<B, 1>>>,
    /// Output projection.
    pub proj: Linear<B>,
    num_heads: usize,
    scale: f64,
}

impl<B: Backend> MultiheadAttention<B> {
    /// CAE's initialisation: xavier-uniform weights, zero biases.
    pub fn new(embed_dims: usize, num_heads: usize, qkv_bias: bool, device: &B::Device, rng: &mut InitRng) -> Self {
        let zero = Dist::Constant(0.0);
        Self {
            qkv: xavier(rng, embed_dims, 3 * embed_dims, qkv_bias, device),
            q_bias: (!qkv_bias).then(|| rng.param([embed_dims], zero, device)),
            v_bias: (!qkv_bias).then(|| rng.param([embed_dims], zero, device)),
            proj: xavier(rng, embed_dims, embed_dims, true, device),
            num_heads,
            scale: ((embed_dims / num_heads) as f64).powf(-0.5),
        }
    }

    /// # Shapes
    /// `[batch, N, dims] -> [batch, N, dims]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let mut qkv = linear(&self.qkv, x);
        if let (Some(q), Some(v)) = (&self.q_bias, &self.v_bias) {
            let q = q.val();
            qkv = qkv + Tensor::cat(vec![q.clone(), q.zeros_like(), v.val()], 0).unsqueeze_dims::<3>(&[0, 1]);
        }
        linear(&self.proj, crate::fused::qkv_attention(qkv, self.num_heads, self.scale))
    }
}

/// Configuration of MMSelfSup's [`TransformerEncoderLayer`] (without a
/// relative position bias: CAE's `window_size=None`).
#[derive(Debug, Clone)]
pub struct TransformerEncoderLayerConfig {
    /// Token width.
    pub embed_dims: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Hidden width of the FFN.
    pub feedforward_channels: usize,
    /// Stochastic depth of both branches.
    pub drop_path_rate: f64,
    /// A bias on the fused qkv Linear; otherwise `q_bias` and `v_bias`.
    pub qkv_bias: bool,
    /// The LayerNorms' config.
    pub norm_cfg: NormCfg,
    /// Initial value of `gamma_1`, `gamma_2`; no layer scale unless > 0.
    pub init_values: f64,
}

impl TransformerEncoderLayerConfig {
    /// Builds the layer with CAE's initialisation (xavier Linear, zero
    /// biases, unit LayerNorms, `gamma = init_values`).
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> TransformerEncoderLayer<B> {
        let (d, f) = (self.embed_dims, self.feedforward_channels);
        let gamma = |rng: &mut InitRng| (self.init_values > 0.0).then(|| rng.param([d], Dist::Constant(self.init_values), device));
        TransformerEncoderLayer {
            gamma_1: gamma(rng),
            gamma_2: gamma(rng),
            ln1: self.norm_cfg.build_layer_norm(d, device),
            attn: MultiheadAttention::new(d, self.num_heads, self.qkv_bias, device, rng),
            ln2: self.norm_cfg.build_layer_norm(d, device),
            ffn: Ffn { fc1: xavier(rng, d, f, true, device), fc2: xavier(rng, f, d, true, device) },
            drop_path: self.drop_path_rate,
        }
    }
}

/// MMSelfSup's `TransformerEncoderLayer`: `x + γ₁·attn(ln1(x))`, then
/// `x + γ₂·ffn(ln2(x))`, each branch under stochastic depth. Keys
/// `gamma_1`, `gamma_2`, `ln1`, `attn.*`, `ln2`, `ffn.layers.*`.
#[derive(Module, Debug)]
pub struct TransformerEncoderLayer<B: Backend> {
    /// Layer scale of the attention branch, `[embed_dims]`.
    pub gamma_1: Option<Param<Tensor<B, 1>>>,
    /// Layer scale of the FFN branch, `[embed_dims]`.
    pub gamma_2: Option<Param<Tensor<B, 1>>>,
    /// Norm before attention.
    pub ln1: LayerNorm<B>,
    /// Self-attention.
    pub attn: MultiheadAttention<B>,
    /// Norm before the FFN.
    pub ln2: LayerNorm<B>,
    /// The FFN.
    pub ffn: Ffn<B>,
    drop_path: f64,
}

impl<B: Backend> TransformerEncoderLayer<B> {
    /// `[batch, N, dims] -> [batch, N, dims]`. `draws` (training) drive the
    /// stochastic depth under `key.attn` and `key.ffn`.
    pub fn forward(&self, x: Tensor<B, 3>, key: &str, mut draws: Option<&mut Draws>) -> Tensor<B, 3> {
        let a = scale_by(&self.gamma_1, self.attn.forward(self.ln1.forward(x.clone())));
        let x = x + drop_path(a, self.drop_path, &format!("{key}.attn"), draws.as_deref_mut());
        let f = scale_by(&self.gamma_2, self.ffn.forward(self.ln2.forward(x.clone())));
        x + drop_path(f, self.drop_path, &format!("{key}.ffn"), draws)
    }
}

/// MMSelfSup's `CrossMultiheadAttention`. Keys `q.weight`, `k.weight`,
/// `v.weight`, `q_bias`, `v_bias` (with `qkv_bias`), `proj.*`.
#[derive(Module, Debug)]
pub struct CrossMultiheadAttention<B: Backend> {
    /// `[embed_dims]`, with `qkv_bias`.
    pub q_bias: Option<Param<Tensor<B, 1>>>,
    /// `[embed_dims]`, with `qkv_bias`.
    pub v_bias: Option<Param<Tensor<B, 1>>>,
    /// Query projection, no bias.
    pub q: Linear<B>,
    /// Key projection, no bias.
    pub k: Linear<B>,
    /// Value projection, no bias.
    pub v: Linear<B>,
    /// Output projection.
    pub proj: Linear<B>,
    num_heads: usize,
    scale: f64,
}

impl<B: Backend> CrossMultiheadAttention<B> {
    /// CAE's initialisation: xavier-uniform weights, zero biases. The scale
    /// is `qk_scale`, or `head_dim^-0.5` when it is `None` or 0 (Python's
    /// `qk_scale or ...`).
    pub fn new(embed_dims: usize, num_heads: usize, qkv_bias: bool, qk_scale: Option<f64>, device: &B::Device, rng: &mut InitRng) -> Self {
        let zero = Dist::Constant(0.0);
        let default_scale = ((embed_dims / num_heads) as f64).powf(-0.5);
        Self {
            q_bias: qkv_bias.then(|| rng.param([embed_dims], zero, device)),
            v_bias: qkv_bias.then(|| rng.param([embed_dims], zero, device)),
            q: xavier(rng, embed_dims, embed_dims, false, device),
            k: xavier(rng, embed_dims, embed_dims, false, device),
            v: xavier(rng, embed_dims, embed_dims, false, device),
            proj: xavier(rng, embed_dims, embed_dims, true, device),
            num_heads,
            scale: qk_scale.filter(|s| *s != 0.0).unwrap_or(default_scale),
        }
    }

    /// # Shapes
    /// - `x`: the queries' tokens `[batch, N, dims]`
    /// - `k`, `v`: `[batch, Nk, dims]`
    /// - returns `[batch, N, dims]`
    pub fn forward(&self, x: Tensor<B, 3>, k: Tensor<B, 3>, v: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, n, c] = x.dims();
        let h = self.num_heads;
        let bias = |b: &Option<Param<Tensor<B, 1>>>, y: Tensor<B, 3>| match b {
            Some(b) => y + b.val().unsqueeze_dims::<3>(&[0, 1]),
            None => y,
        };
        let q = split_heads(bias(&self.q_bias, linear(&self.q, x)), h).mul_scalar(self.scale);
        let k = split_heads(linear(&self.k, k), h);
        let v = split_heads(bias(&self.v_bias, linear(&self.v, v)), h);
        let attn = softmax_last_dim(matmul(q, k.swap_dims(2, 3)));
        linear(&self.proj, matmul(attn, v).swap_dims(1, 2).reshape([b, n, c]))
    }
}

/// Configuration of a [`CaeTransformerRegressorLayer`].
#[derive(Debug, Clone)]
pub struct CaeTransformerRegressorLayerConfig {
    /// Token width.
    pub embed_dims: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Hidden width of the FFN.
    pub feedforward_channels: usize,
    /// `q_bias` and `v_bias` in the cross attention.
    pub qkv_bias: bool,
    /// The attention scale; `head_dim^-0.5` when `None`.
    pub qk_scale: Option<f64>,
    /// Stochastic depth of both branches.
    pub drop_path_rate: f64,
    /// The LayerNorms' config.
    pub norm_cfg: NormCfg,
    /// Initial value of the trained `gamma_*_cross` when > 0; otherwise
    /// they are frozen ones.
    pub init_values: f64,
}

impl CaeTransformerRegressorLayerConfig {
    /// Builds the layer with CAE's initialisation.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> CaeTransformerRegressorLayer<B> {
        let (d, f) = (self.embed_dims, self.feedforward_channels);
        let gamma = |rng: &mut InitRng| {
            if self.init_values > 0.0 {
                rng.param([d], Dist::Constant(self.init_values), device)
            } else {
                fixed(Tensor::ones([d], device))
            }
        };
        let norm = || self.norm_cfg.build_layer_norm(d, device);
        CaeTransformerRegressorLayer {
            gamma_1_cross: gamma(rng),
            gamma_2_cross: gamma(rng),
            norm1_q_cross: norm(),
            norm1_k_cross: norm(),
            norm1_v_cross: norm(),
            norm2_cross: norm(),
            cross_attn: CrossMultiheadAttention::new(d, self.num_heads, self.qkv_bias, self.qk_scale, device, rng),
            ffn: Ffn { fc1: xavier(rng, d, f, true, device), fc2: xavier(rng, f, d, true, device) },
            drop_path: self.drop_path_rate,
        }
    }
}

/// MMSelfSup's `CAETransformerRegressorLayer`:
/// `x = x_q + γ₁·cross_attn(n_q(x_q + pos_q), n_k(x_kv + pos_k), n_v(x_kv))`,
/// `x = norm2_cross(x)`, `x + γ₂·ffn(x)`, each branch under stochastic
/// depth. Keys `gamma_1_cross`, `gamma_2_cross`, `norm1_{q,k,v}_cross`,
/// `norm2_cross`, `cross_attn.*`, `ffn.layers.*`.
#[derive(Module, Debug)]
pub struct CaeTransformerRegressorLayer<B: Backend> {
    /// Scale of the attention branch (frozen ones without `init_values`).
    pub gamma_1_cross: Param<Tensor<B, 1>>,
    /// Scale of the FFN branch (frozen ones without `init_values`).
    pub gamma_2_cross: Param<Tensor<B, 1>>,
    /// Norm of the queries (plus their position).
    pub norm1_q_cross: LayerNorm<B>,
    /// Norm of the keys (plus their position).
    pub norm1_k_cross: LayerNorm<B>,
    /// Norm of the values.
    pub norm1_v_cross: LayerNorm<B>,
    /// Norm after the attention's residual.
    pub norm2_cross: LayerNorm<B>,
    /// The cross attention.
    pub cross_attn: CrossMultiheadAttention<B>,
    /// The FFN.
    pub ffn: Ffn<B>,
    drop_path: f64,
}

impl<B: Backend> CaeTransformerRegressorLayer<B> {
    /// # Shapes
    /// - `x_q`: the masked tokens `[batch, Nm, dims]`, `pos_q` their positions
    /// - `x_kv`: `[visible, masked]` tokens `[batch, N, dims]`, `pos_k` theirs
    /// - returns `[batch, Nm, dims]`
    ///
    /// `draws` (training) drive the stochastic depth under `key.attn` and
    /// `key.ffn`.
    pub fn forward(
        &self,
        x_q: Tensor<B, 3>,
        x_kv: Tensor<B, 3>,
        pos_q: Tensor<B, 3>,
        pos_k: Tensor<B, 3>,
        key: &str,
        mut draws: Option<&mut Draws>,
    ) -> Tensor<B, 3> {
        let gamma = |g: &Param<Tensor<B, 1>>| g.val().unsqueeze_dims::<3>(&[0, 1]);
        let attn = self.cross_attn.forward(
            self.norm1_q_cross.forward(x_q.clone() + pos_q),
            self.norm1_k_cross.forward(x_kv.clone() + pos_k),
            self.norm1_v_cross.forward(x_kv),
        );
        let x = x_q + drop_path(attn * gamma(&self.gamma_1_cross), self.drop_path, &format!("{key}.attn"), draws.as_deref_mut());
        let x = self.norm2_cross.forward(x);
        let f = self.ffn.forward(x.clone()) * gamma(&self.gamma_2_cross);
        x + drop_path(f, self.drop_path, &format!("{key}.ffn"), draws)
    }
}

/// MMSelfSup's `PromptMultiheadAttention` (MILAN): attention of the mask
/// tokens on the whole sequence, which leaves the visible tokens as the
/// encoder gave them. Keys `q.*`, `kv.*` (k|v on the output), `proj.*`.
#[derive(Module, Debug)]
pub struct PromptMultiheadAttention<B: Backend> {
    /// Projects the mask tokens to queries.
    pub q: Linear<B>,
    /// Projects every token to keys and values, `[dims] -> [2·dims]`.
    pub kv: Linear<B>,
    /// Output projection.
    pub proj: Linear<B>,
    num_heads: usize,
    scale: f64,
}

impl<B: Backend> PromptMultiheadAttention<B> {
    /// MILAN's initialisation (its configs' `Xavier` `init_cfg`):
    /// xavier-uniform weights, zero biases.
    pub fn new(embed_dims: usize, num_heads: usize, qkv_bias: bool, device: &B::Device, rng: &mut InitRng) -> Self {
        Self {
            q: xavier(rng, embed_dims, embed_dims, qkv_bias, device),
            kv: xavier(rng, embed_dims, 2 * embed_dims, qkv_bias, device),
            proj: xavier(rng, embed_dims, embed_dims, true, device),
            num_heads,
            scale: ((embed_dims / num_heads) as f64).powf(-0.5),
        }
    }

    /// # Shapes
    /// - `x`: the mask tokens `[batch, Lm, dims]`
    /// - `visible_tokens`: the cls token and the visible tokens `[batch, 1 + Lv, dims]`
    /// - `ids_restore`: `[batch, L]` with `L = Lv + Lm`, the position in
    ///   `[visible, masked]` order of each patch in image order
    /// - returns `[batch, Lm, dims]`
    pub fn forward(&self, x: Tensor<B, 3>, visible_tokens: Tensor<B, 3>, ids_restore: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [b, m, c] = x.dims();
        let v1 = visible_tokens.dims()[1];
        let l = ids_restore.dims()[1];
        assert_eq!(v1 - 1 + m, l, "PromptMultiheadAttention: {} visible and {m} mask tokens for {l} patches", v1 - 1);
        let h = self.num_heads;
        let all = Tensor::cat(vec![visible_tokens.clone().slice([0..b, 1..v1]), x.clone()], 1)
            .gather(1, ids_restore.unsqueeze_dim::<3>(2).expand([b, l, c]));
        let all = Tensor::cat(vec![visible_tokens.slice([0..b, 0..1]), all], 1);
        let q = split_heads(linear(&self.q, x), h);
        let kv = linear(&self.kv, all).reshape([b, l + 1, 2, h, c / h]).permute([2, 0, 3, 1, 4]); // [2, b, h, 1 + L, hd]
        let k = kv.clone().slice([0..1]).squeeze_dim::<4>(0);
        let v = kv.slice([1..2]).squeeze_dim::<4>(0);
        let attn = softmax_last_dim(matmul(q, k.swap_dims(2, 3)).mul_scalar(self.scale));
        linear(&self.proj, matmul(attn, v).swap_dims(1, 2).reshape([b, m, c]))
    }
}

/// Configuration of a [`PromptTransformerEncoderLayer`].
#[derive(Debug, Clone)]
pub struct PromptTransformerEncoderLayerConfig {
    /// Token width.
    pub embed_dims: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Hidden width of the FFN.
    pub feedforward_channels: usize,
    /// Bias on `q` and `kv`.
    pub qkv_bias: bool,
    /// The LayerNorms' config.
    pub norm_cfg: NormCfg,
}

impl PromptTransformerEncoderLayerConfig {
    /// Builds the layer as MILAN's decoder initialises it: xavier-uniform
    /// Linear weights, zero attention biases, unit LayerNorms, and FFN
    /// biases from `N(0, 1e-6)` (mmcls's `TransformerEncoderLayer.init_weights`,
    /// which runs after the `Xavier` `init_cfg`).
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> PromptTransformerEncoderLayer<B> {
        let (d, f) = (self.embed_dims, self.feedforward_channels);
        let bias = Some(Dist::Normal(0.0, 1e-6));
        PromptTransformerEncoderLayer {
            ln1: self.norm_cfg.build_layer_norm(d, device),
            attn: PromptMultiheadAttention::new(d, self.num_heads, self.qkv_bias, device, rng),
            ln2: self.norm_cfg.build_layer_norm(d, device),
            ffn: Ffn {
                fc1: rng.linear(d, f, Dist::xavier_uniform(d, f), bias, device),
                fc2: rng.linear(f, d, Dist::xavier_uniform(f, d), bias, device),
            },
        }
    }
}

/// MMSelfSup's `PromptTransformerEncoderLayer` (MILAN's decoder):
/// `x + attn(ln1(x), visible_tokens, ids_restore)`, then `x + ffn(ln2(x))`,
/// on the mask tokens only. Keys `ln1`, `attn.{q,kv,proj}`, `ln2`,
/// `ffn.layers.*`.
#[derive(Module, Debug)]
pub struct PromptTransformerEncoderLayer<B: Backend> {
    /// Norm of the mask tokens before attention.
    pub ln1: LayerNorm<B>,
    /// The prompt attention.
    pub attn: PromptMultiheadAttention<B>,
    /// Norm before the FFN.
    pub ln2: LayerNorm<B>,
    /// The FFN.
    pub ffn: Ffn<B>,
}

impl<B: Backend> PromptTransformerEncoderLayer<B> {
    /// # Shapes
    /// - `x`: the mask tokens `[batch, Lm, dims]`
    /// - `visible_tokens`: `[batch, 1 + Lv, dims]`, cls first
    /// - `ids_restore`: `[batch, Lv + Lm]`
    /// - returns `[batch, Lm, dims]`
    pub fn forward(&self, x: Tensor<B, 3>, visible_tokens: Tensor<B, 3>, ids_restore: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let x = x.clone() + self.attn.forward(self.ln1.forward(x), visible_tokens, ids_restore);
        x.clone() + self.ffn.forward(self.ln2.forward(x))
    }
}
