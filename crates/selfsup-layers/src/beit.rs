//! Ports of the BEiT pieces of `mmcls/models/backbones/beit.py` (mmcls
//! 1.0.0rc6): `RelativePositionBias` (the bias table one BEiT shares across
//! its layers) and `BEiTTransformerEncoderLayer` (a pre-norm layer with
//! [`BeitAttention`] and learnable layer scales `gamma_1`, `gamma_2`).
//! BEiTViT, BEiTV2Neck and the VQ-KD tokenizer's encoder are built from
//! them.
use crate::norm::LayerNorm;
use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, Tensor, TensorData},
};
use selfsup_core::Draws;

use crate::{
    attention::BeitAttention,
    functional::drop_path,
    init::{fixed, Dist, InitRng},
    transformer::Ffn,
    NormCfg,
};

/// mmcls's relative position index of a `wh × ww` patch grid with a cls
/// token: `[(wh·ww + 1)²]` row-major indices into a bias table of
/// `(2wh − 1)(2ww − 1) + 3` rows, whose last three rows are cls→token,
/// token→cls and cls→cls.
pub fn beit_relative_position_index([wh, ww]: [usize; 2]) -> Vec<f32> {
    let n = wh * ww;
    let distances = (2 * wh - 1) * (2 * ww - 1) + 3;
    let mut out = vec![0f32; (n + 1) * (n + 1)];
    for r in 0..n {
        for c in 0..n {
            let dh = (r / ww) + wh - 1 - (c / ww);
            let dw = (r % ww) + ww - 1 - (c % ww);
            out[(r + 1) * (n + 1) + c + 1] = (dh * (2 * ww - 1) + dw) as f32;
        }
    }
    out[..=n].fill((distances - 3) as f32);
    for r in 0..=n {
        out[r * (n + 1)] = (distances - 2) as f32;
    }
    out[0] = (distances - 1) as f32;
    out
}

/// Looks the bias of every token pair up in `table` (`[distances, heads]`)
/// through `index` (`[N, N]`): `[heads, N, N]`.
pub fn gather_relative_position_bias<B: Backend>(table: Tensor<B, 2>, index: Tensor<B, 2>) -> Tensor<B, 3> {
    let [n, _] = index.dims();
    let heads = table.dims()[1];
    table.select(0, index.reshape([n * n]).int()).reshape([n, n, heads]).permute([2, 0, 1])
}

/// mmcls's `RelativePositionBias`: one learned table for every layer.
/// Keys `relative_position_bias_table` (`[(2wh−1)(2ww−1) + 3, heads]`,
/// zero-initialised) and the int64 buffer `relative_position_index`.
#[derive(Module, Debug)]
pub struct RelativePositionBias<B: Backend> {
    /// `[(2wh−1)(2ww−1) + 3, heads]`.
    pub relative_position_bias_table: Param<Tensor<B, 2>>,
    /// `[wh·ww + 1, wh·ww + 1]` (an int64 buffer in PyTorch).
    pub relative_position_index: Param<Tensor<B, 2>>,
}

impl<B: Backend> RelativePositionBias<B> {
    /// The zero-initialised shared bias of a `window` patch grid.
    pub fn new(window: [usize; 2], num_heads: usize, device: &B::Device) -> Self {
        let n = window[0] * window[1] + 1;
        let distances = (2 * window[0] - 1) * (2 * window[1] - 1) + 3;
        Self {
            relative_position_bias_table: Param::from_tensor(Tensor::zeros([distances, num_heads], device)),
            relative_position_index: fixed(Tensor::from_data(TensorData::new(beit_relative_position_index(window), [n, n]), device)),
        }
    }

    /// The bias of every token pair, `[heads, N, N]`.
    pub fn forward(&self) -> Tensor<B, 3> {
        gather_relative_position_bias(self.relative_position_bias_table.val(), self.relative_position_index.val())
    }
}

/// Bias of BEiT's fused q|k|v projection (`bias` in mmcls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QkvBias {
    /// `'qv_bias'`: learned `q_bias` and `v_bias`, no bias for k.
    QvBias,
    /// `True`: an ordinary bias on the fused Linear.
    Fused,
    /// `False`: no bias.
    None,
}

/// Configuration of a [`BeitTransformerEncoderLayer`].
#[derive(Debug, Clone)]
pub struct BeitLayerConfig {
    /// Token width.
    pub embed_dims: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Hidden width of the FFN.
    pub feedforward_channels: usize,
    /// Initial value of `gamma_1`, `gamma_2`; no layer scale when 0.
    pub layer_scale_init_value: f64,
    /// The patch grid, when the layer has its own relative position bias
    /// (`use_rel_pos_bias`).
    pub window_size: Option<[usize; 2]>,
    /// The qkv bias.
    pub bias: QkvBias,
    /// Stochastic depth of both branches.
    pub drop_path_rate: f64,
    /// The LayerNorms' config.
    pub norm_cfg: NormCfg,
}

impl BeitLayerConfig {
    /// Builds the layer as mmcls's `init_weights` leaves it under the
    /// BEiT configs' `init_cfg` (`TruncNormal(std=0.02)` on Linear, unit
    /// LayerNorms): attention weights from the truncated normal with zero
    /// biases, the FFN re-initialised by mmcls's `TransformerEncoderLayer`
    /// (xavier-uniform weights, `N(0, 1e-6)` biases), a truncated-normal
    /// relative position table, and, with `rescale_layer_id`, the output
    /// projections (`attn.proj`, the FFN's second Linear) divided by
    /// `√(2·layer_id)` (BEiT's `rescale_init_weight`, `layer_id` from 1;
    /// BEiTV2Neck rescales before `init_weights` re-draws, so its layers
    /// keep no rescaling).
    pub fn init<B: Backend>(
        &self,
        rescale_layer_id: Option<usize>,
        device: &B::Device,
        rng: &mut InitRng,
    ) -> BeitTransformerEncoderLayer<B> {
        let (d, h) = (self.embed_dims, self.feedforward_channels);
        let rescale = rescale_layer_id.map_or(1.0, |id| (2.0 * id as f64).sqrt());
        let bias = Some(Dist::Normal(0.0, 1e-6));
        let mut ffn = Ffn {
            fc1: rng.linear(d, h, Dist::xavier_uniform(d, h), bias, device),
            fc2: rng.linear(h, d, Dist::xavier_uniform(h, d), bias, device),
        };
        ffn.fc2.weight = ffn.fc2.weight.map(|w| w.div_scalar(rescale).detach().require_grad());
        let mut attn = BeitAttention::new(d, self.num_heads, self.bias, self.window_size, device, rng);
        attn.proj.weight = attn.proj.weight.map(|w| w.div_scalar(rescale).detach().require_grad());
        let gamma = |rng: &mut InitRng| {
            (self.layer_scale_init_value > 0.0).then(|| rng.param([d], Dist::Constant(self.layer_scale_init_value), device))
        };
        BeitTransformerEncoderLayer {
            ln1: self.norm_cfg.build_layer_norm(d, device),
            attn,
            ln2: self.norm_cfg.build_layer_norm(d, device),
            ffn,
            gamma_1: gamma(rng),
            gamma_2: gamma(rng),
            drop_path: self.drop_path_rate,
        }
    }
}

/// mmcls's `BEiTTransformerEncoderLayer`:
/// `x + γ₁·attn(ln1(x), bias)`, then `x + γ₂·ffn(ln2(x))`, each branch
/// under stochastic depth. Keys `ln1`, `attn.*`, `ln2`, `ffn.layers.*`,
/// `gamma_1`, `gamma_2`.
#[derive(Module, Debug)]
pub struct BeitTransformerEncoderLayer<B: Backend> {
    /// Norm before attention.
    pub ln1: LayerNorm<B>,
    /// Attention with q/v biases and an optional own relative position bias.
    pub attn: BeitAttention<B>,
    /// Norm before the FFN.
    pub ln2: LayerNorm<B>,
    /// The FFN.
    pub ffn: Ffn<B>,
    /// Layer scale of the attention branch, `[embed_dims]`.
    pub gamma_1: Option<Param<Tensor<B, 1>>>,
    /// Layer scale of the FFN branch, `[embed_dims]`.
    pub gamma_2: Option<Param<Tensor<B, 1>>>,
    drop_path: f64,
}

impl<B: Backend> BeitTransformerEncoderLayer<B> {
    /// `[batch, N, dims] -> [batch, N, dims]`. `rel_pos_bias` (`[heads, N,
    /// N]`) is the backbone's shared bias; `draws` (training) drive the
    /// stochastic depth under `key.attn` and `key.ffn`.
    pub fn forward(&self, x: Tensor<B, 3>, rel_pos_bias: Option<Tensor<B, 3>>, key: &str, mut draws: Option<&mut Draws>) -> Tensor<B, 3> {
        let scale = |gamma: &Option<Param<Tensor<B, 1>>>, y: Tensor<B, 3>| match gamma {
            Some(g) => y * g.val().unsqueeze_dims::<3>(&[0, 1]),
            None => y,
        };
        let a = scale(&self.gamma_1, self.attn.forward(self.ln1.forward(x.clone()), rel_pos_bias));
        let x = x + drop_path(a, self.drop_path, &format!("{key}.attn"), draws.as_deref_mut());
        let f = scale(&self.gamma_2, self.ffn.forward(self.ln2.forward(x.clone())));
        x + drop_path(f, self.drop_path, &format!("{key}.ffn"), draws)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mmcls's construction for a 2 × 3 grid, written out by hand: the
    /// index of `(r, c)` is `(Δh + wh − 1)(2ww − 1) + Δw + ww − 1`.
    #[test]
    fn relative_position_index_matches_mmcls_for_a_small_grid() {
        let idx = beit_relative_position_index([2, 3]);
        let n = 7;
        let d = 3 * 5 + 3;
        assert_eq!(idx[0], (d - 1) as f32);
        assert!((1..n).all(|c| idx[c] == (d - 3) as f32));
        assert!((1..n).all(|r| idx[r * n] == (d - 2) as f32));
        // Token 0 (0,0) to token 5 (1,2): Δh = -1, Δw = -2 -> (0)(5) + 0 = 0.
        assert_eq!(idx[n + 6], 0.0);
        // Token 5 to token 0: Δh = 1, Δw = 2 -> 2·5 + 4 = 14.
        assert_eq!(idx[6 * n + 1], 14.0);
        // The diagonal is the zero offset: (1)(5) + 2 = 7.
        assert!((1..n).all(|t| idx[t * n + t] == 7.0));
    }
}
