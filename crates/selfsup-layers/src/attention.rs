//! Ports of `mmcls/models/utils/attention.py`: `MultiheadAttention` (one
//! fused `qkv` Linear, as MMSelfSup and timm checkpoints store it), and
//! Swin's `WindowMSA` and `ShiftWindowMSA`.
use burn::{
    module::{Module, Param},
    nn::Linear,
    tensor::{backend::Backend, ops::PadMode, Tensor, TensorData},
};

use crate::{
    functional::{linear, matmul},
    fused::softmax_last_dim,
    init::{fixed, Dist, InitRng},
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
        // mmcls computes softmax(q·kᵀ·scale)·v explicitly; one fused operation here.
        linear(&self.proj, crate::fused::qkv_attention(linear(&self.qkv, x), self.num_heads, self.scale))
    }
}

/// Port of `mmcls.models.utils.WindowMSA`: attention inside one window of
/// `w × w` tokens with a learned relative position bias
/// (`relative_position_bias_table`, `[(2w−1)², heads]`, indexed by the
/// `relative_position_index` buffer). Keys `qkv`, `proj`,
/// `relative_position_bias_table`, `relative_position_index`.
#[derive(Module, Debug)]
pub struct WindowMsa<B: Backend> {
    /// The fused q|k|v projection.
    pub qkv: Linear<B>,
    /// Output projection.
    pub proj: Linear<B>,
    /// `[(2w−1)², heads]`.
    pub relative_position_bias_table: Param<Tensor<B, 2>>,
    /// `[w², w²]` row indices into the table (an int64 buffer in PyTorch;
    /// a fixed float tensor here).
    pub relative_position_index: Param<Tensor<B, 2>>,
    num_heads: usize,
    window: usize,
    scale: f64,
}

/// mmcls's `relative_position_index` for a `w × w` window (`double_step_seq`
/// summed with its transpose, flipped along the columns).
pub fn relative_position_index(w: usize) -> Vec<f32> {
    let seq: Vec<usize> = (0..w).flat_map(|i| (0..w).map(move |j| i * (2 * w - 1) + j)).collect();
    let n = w * w;
    let mut out = vec![0f32; n * n];
    for r in 0..n {
        for c in 0..n {
            out[r * n + c] = (seq[r] + seq[n - 1 - c]) as f32;
        }
    }
    out
}

impl<B: Backend> WindowMsa<B> {
    /// mmcls/SimMIM initialisation: truncated-normal (std 0.02) weights and
    /// bias table, zero biases.
    pub fn new(embed_dims: usize, num_heads: usize, window: usize, qkv_bias: bool, device: &B::Device, rng: &mut InitRng) -> Self {
        let tn = Dist::TruncNormal(0.0, 0.02);
        let zero = Dist::Constant(0.0);
        let n = window * window;
        Self {
            qkv: rng.linear(embed_dims, 3 * embed_dims, tn, qkv_bias.then_some(zero), device),
            proj: rng.linear(embed_dims, embed_dims, tn, Some(zero), device),
            relative_position_bias_table: rng.param([(2 * window - 1) * (2 * window - 1), num_heads], tn, device),
            relative_position_index: fixed(Tensor::from_data(TensorData::new(relative_position_index(window), [n, n]), device)),
            num_heads,
            window,
            scale: ((embed_dims / num_heads) as f64).powf(-0.5),
        }
    }

    /// The window side.
    pub fn window(&self) -> usize {
        self.window
    }

    /// The bias `[heads, w², w²]`.
    pub fn relative_position_bias(&self) -> Tensor<B, 3> {
        let n = self.window * self.window;
        let index = self.relative_position_index.val().reshape([n * n]).int();
        self.relative_position_bias_table.val().select(0, index).reshape([n, n, self.num_heads]).permute([2, 0, 1])
    }

    /// # Shapes
    /// - `x`: `[windows·batch, w², c]`
    /// - `mask`: `[windows, w², w²]` (0 or −100), for shifted windows
    pub fn forward(&self, x: Tensor<B, 3>, mask: Option<Tensor<B, 3>>) -> Tensor<B, 3> {
        let [b, n, c] = x.dims();
        let h = self.num_heads;
        let qkv = linear(&self.qkv, x).reshape([b, n, 3, h, c / h]).permute([2, 0, 3, 1, 4]);
        let q = qkv.clone().slice([0..1]).squeeze_dim::<4>(0).mul_scalar(self.scale);
        let k = qkv.clone().slice([1..2]).squeeze_dim::<4>(0);
        let v = qkv.slice([2..3]).squeeze_dim::<4>(0);
        let mut attn = matmul(q, k.swap_dims(2, 3)) + self.relative_position_bias().unsqueeze_dim::<4>(0);
        if let Some(mask) = mask {
            // The constant mask is expanded to the scores' shape first, so
            // the autodiff graph holds a same-shape addition (burn-wgpu
            // mis-computed the broadcasting one's backward for 16 windows).
            let nw = mask.dims()[0];
            attn = attn + mask.unsqueeze_dim::<4>(1).unsqueeze_dim::<5>(0).expand([b / nw, nw, h, n, n]).reshape([b, h, n, n]);
        }
        let x = matmul(softmax_last_dim(attn), v).swap_dims(1, 2).reshape([b, n, c]);
        linear(&self.proj, x)
    }
}

/// Port of `mmcls.models.utils.ShiftWindowMSA`: [`WindowMsa`] over a
/// padded, optionally cyclically shifted map. Key `w_msa.*`.
///
/// As in mmcls, a map whose shorter side equals the window is not shifted
/// and a smaller map is an error, unless `pad_small_map`: then the map is
/// padded (bottom and right, zeros) to whole windows and keeps its shift.
#[derive(Module, Debug)]
pub struct ShiftWindowMsa<B: Backend> {
    /// The window attention.
    pub w_msa: WindowMsa<B>,
    shift_size: usize,
    pad_small_map: bool,
}

impl<B: Backend> ShiftWindowMsa<B> {
    /// Wraps `w_msa` with a shift of `shift_size` (0 or `w/2`).
    pub fn new(w_msa: WindowMsa<B>, shift_size: usize, pad_small_map: bool) -> Self {
        Self { w_msa, shift_size, pad_small_map }
    }

    /// The shift mmcls applies to an `[h, w]` map.
    pub fn effective_shift(&self, [h, w]: [usize; 2]) -> usize {
        if h.min(w) == self.w_msa.window && !self.pad_small_map {
            0
        } else {
            self.shift_size
        }
    }

    /// `[batch, h·w, c] -> [batch, h·w, c]`.
    pub fn forward(&self, x: Tensor<B, 3>, [h, w]: [usize; 2]) -> Tensor<B, 3> {
        let [b, _, c] = x.dims();
        let ws = self.w_msa.window;
        assert!(self.pad_small_map || h.min(w) >= ws, "a {h}x{w} map is smaller than the {ws}x{ws} window; set pad_small_map");
        let shift = self.effective_shift([h, w]);
        let (pad_b, pad_r) = ((ws - h % ws) % ws, (ws - w % ws) % ws);
        let mut x = x.reshape([b, h, w, c]);
        if pad_b + pad_r > 0 {
            x = x.pad([(0, 0), (0, pad_b), (0, pad_r), (0, 0)], PadMode::Constant(0.0));
        }
        let (hp, wp) = (h + pad_b, w + pad_r);
        // burn's `roll` moves the other way from torch's: this is
        // `torch.roll(x, (-shift, -shift))`.
        if shift > 0 {
            x = x.roll(&[shift as i64, shift as i64], &[1, 2]);
        }
        let mask = (shift > 0).then(|| shifted_window_mask::<B>([hp, wp], ws, shift, &x.device()));
        let windows =
            x.reshape([b, hp / ws, ws, wp / ws, ws, c]).permute([0, 1, 3, 2, 4, 5]).reshape([b * (hp / ws) * (wp / ws), ws * ws, c]);
        let out = self.w_msa.forward(windows, mask);
        let mut x = out.reshape([b, hp / ws, wp / ws, ws, ws, c]).permute([0, 1, 3, 2, 4, 5]).reshape([b, hp, wp, c]);
        if shift > 0 {
            x = x.roll(&[-(shift as i64), -(shift as i64)], &[1, 2]);
        }
        if pad_b + pad_r > 0 {
            x = x.slice([0..b, 0..h, 0..w, 0..c]);
        }
        x.reshape([b, h * w, c])
    }
}

/// mmcls's `get_attn_mask`: `[windows, w², w²]`, 0 between tokens of the
/// same region of the shifted map and −100 between regions.
pub fn shifted_window_mask<B: Backend>([h, w]: [usize; 2], ws: usize, shift: usize, device: &B::Device) -> Tensor<B, 3> {
    let region = |i: usize, n: usize| {
        if i < n - ws {
            0
        } else if i < n - shift {
            1
        } else {
            2
        }
    };
    let (nh, nw) = (h / ws, w / ws);
    let n = ws * ws;
    let mut out = vec![0f32; nh * nw * n * n];
    for wi in 0..nh {
        for wj in 0..nw {
            let ids: Vec<usize> = (0..n).map(|t| region(wi * ws + t / ws, h) * 3 + region(wj * ws + t % ws, w)).collect();
            let base = (wi * nw + wj) * n * n;
            for r in 0..n {
                for c in 0..n {
                    if ids[r] != ids[c] {
                        out[base + r * n + c] = -100.0;
                    }
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(out, [nh * nw, n, n]), device)
}

/// Port of `mmcls.models.utils.BEiTAttention`: multi-head attention with a
/// fused `qkv` projection whose bias is `cat(q_bias, 0, v_bias)` (mmcls's
/// `bias='qv_bias'`), the scale applied to q before the product, an
/// optional own relative position bias (`use_rel_pos_bias`: table and
/// index over the patch grid plus the cls token) and the shared bias of
/// the backbone added to the scores. Keys `qkv.weight`, `q_bias`, `v_bias`,
/// `proj.*`, `relative_position_bias_table`, `relative_position_index`.
#[derive(Module, Debug)]
pub struct BeitAttention<B: Backend> {
    /// `[embed_dims] -> [3·embed_dims]` (no bias with q/v biases).
    pub qkv: Linear<B>,
    /// `[embed_dims]`, with `'qv_bias'`.
    pub q_bias: Option<Param<Tensor<B, 1>>>,
    /// `[embed_dims]`, with `'qv_bias'`.
    pub v_bias: Option<Param<Tensor<B, 1>>>,
    /// Output projection.
    pub proj: Linear<B>,
    /// `[(2wh−1)(2ww−1) + 3, heads]`, with `use_rel_pos_bias`.
    pub relative_position_bias_table: Option<Param<Tensor<B, 2>>>,
    /// `[wh·ww + 1, wh·ww + 1]` (int64 in PyTorch), with `use_rel_pos_bias`.
    pub relative_position_index: Option<Param<Tensor<B, 2>>>,
    num_heads: usize,
    scale: f64,
}

impl<B: Backend> BeitAttention<B> {
    /// BEiT's initialisation under its configs' `init_cfg`: truncated-normal
    /// (std 0.02) weights and own bias table, zero biases.
    pub fn new(
        embed_dims: usize,
        num_heads: usize,
        bias: crate::beit::QkvBias,
        window_size: Option<[usize; 2]>,
        device: &B::Device,
        rng: &mut InitRng,
    ) -> Self {
        use crate::beit::QkvBias;
        let tn = Dist::TruncNormal(0.0, 0.02);
        let zero = Dist::Constant(0.0);
        let qv = bias == QkvBias::QvBias;
        let table = window_size.map(|[wh, ww]| rng.param([(2 * wh - 1) * (2 * ww - 1) + 3, num_heads], tn, device));
        let index = window_size.map(|w| {
            let n = w[0] * w[1] + 1;
            fixed(Tensor::from_data(TensorData::new(crate::beit::beit_relative_position_index(w), [n, n]), device))
        });
        Self {
            qkv: rng.linear(embed_dims, 3 * embed_dims, tn, (bias == QkvBias::Fused).then_some(zero), device),
            q_bias: qv.then(|| rng.param([embed_dims], zero, device)),
            v_bias: qv.then(|| rng.param([embed_dims], zero, device)),
            proj: rng.linear(embed_dims, embed_dims, tn, Some(zero), device),
            relative_position_bias_table: table,
            relative_position_index: index,
            num_heads,
            scale: ((embed_dims / num_heads) as f64).powf(-0.5),
        }
    }

    /// The fused projection's output, `[batch, N, 3·dims]`.
    fn qkv(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let qkv = linear(&self.qkv, x);
        match (&self.q_bias, &self.v_bias) {
            (Some(q), Some(v)) => {
                let q = q.val();
                let bias = Tensor::cat(vec![q.clone(), q.zeros_like(), v.val()], 0);
                qkv + bias.unsqueeze_dims::<3>(&[0, 1])
            }
            _ => qkv,
        }
    }

    /// # Shapes
    /// - `x`: `[batch, N, dims]`
    /// - `rel_pos_bias`: the shared `[heads, N, N]` bias, if any
    /// - returns `[batch, N, dims]`
    pub fn forward(&self, x: Tensor<B, 3>, rel_pos_bias: Option<Tensor<B, 3>>) -> Tensor<B, 3> {
        let [b, n, c] = x.dims();
        let h = self.num_heads;
        let qkv = self.qkv(x).reshape([b, n, 3, h, c / h]).permute([2, 0, 3, 1, 4]);
        let q = qkv.clone().slice([0..1]).squeeze_dim::<4>(0).mul_scalar(self.scale);
        let k = qkv.clone().slice([1..2]).squeeze_dim::<4>(0);
        let v = qkv.slice([2..3]).squeeze_dim::<4>(0);
        let mut attn = matmul(q, k.swap_dims(2, 3));
        if let (Some(table), Some(index)) = (&self.relative_position_bias_table, &self.relative_position_index) {
            let own = crate::beit::gather_relative_position_bias(table.val(), index.val());
            attn = attn + own.unsqueeze_dim::<4>(0).expand([b, h, n, n]);
        }
        if let Some(shared) = rel_pos_bias {
            attn = attn + shared.unsqueeze_dim::<4>(0).expand([b, h, n, n]);
        }
        let x = matmul(softmax_last_dim(attn), v).swap_dims(1, 2).reshape([b, n, c]);
        linear(&self.proj, x)
    }
}
