//! Position embeddings: `mmselfsup.models.utils.build_2d_sincos_position_embedding`
//! and `mmpretrain.models.utils.resize_pos_embed` (how mmpretrain's ViT
//! adds its learned embedding to inputs of another size: DINO's local crops).
use burn::tensor::{backend::Backend, Tensor, TensorData};

/// The fixed 2-D sin-cos position embedding of MAE and MoCo v3, as a
/// row-major `[(cls) + h·w, embed_dims]` buffer.
///
/// As in MMSelfSup, the grid is built with `meshgrid(arange(w), arange(h))`
/// ('ij' indexing), each axis gets `embed_dims / 4` frequencies
/// `1 / temperature^(k / (embed_dims/4))`, and the features are
/// `[sin(w·ω), cos(w·ω), sin(h·ω), cos(h·ω)]`. With `cls_token` a zero row is
/// prepended.
///
/// # Panics
/// When `embed_dims` is not a multiple of 4 (MMSelfSup asserts the same; the
/// backbone configs validate it first).
pub fn build_2d_sincos_position_embedding(
    patches_resolution: (usize, usize),
    embed_dims: usize,
    temperature: f64,
    cls_token: bool,
) -> Vec<f32> {
    assert!(embed_dims.is_multiple_of(4), "embed_dims must be a multiple of 4 for the 2-D sin-cos embedding");
    let (h, w) = patches_resolution;
    let pos_dim = embed_dims / 4;
    let omega: Vec<f32> = (0..pos_dim)
        .map(|k| {
            let e = k as f32 / pos_dim as f32;
            1.0 / (temperature as f32).powf(e)
        })
        .collect();
    let mut out = Vec::with_capacity((h * w + cls_token as usize) * embed_dims);
    if cls_token {
        out.extend(std::iter::repeat_n(0.0, embed_dims));
    }
    // meshgrid(grid_w, grid_h) with 'ij' indexing: the first axis is w.
    for i in 0..w {
        for j in 0..h {
            let (gw, gh) = (i as f32, j as f32);
            out.extend(omega.iter().map(|o| (gw * o).sin()));
            out.extend(omega.iter().map(|o| (gw * o).cos()));
            out.extend(omega.iter().map(|o| (gh * o).sin()));
            out.extend(omega.iter().map(|o| (gh * o).cos()));
        }
    }
    out
}

/// PyTorch's bicubic resampling (`F.interpolate(mode='bicubic',
/// align_corners=False)`, cubic coefficient `A = -0.75`, borders clamped) of
/// one axis from `src` to `dst` samples, as a row-major `[dst, src]` matrix.
pub fn bicubic_matrix(src: usize, dst: usize) -> Vec<f64> {
    bicubic_matrix_scaled(src, dst, src as f64 / dst as f64)
}

/// [`bicubic_matrix`] with the source step per output sample given, as
/// `F.interpolate` uses `1 / scale_factor` when called with a scale factor
/// (HiViT's `interpolate_pos_encoding` asks for `(g + 0.1) / g`, which
/// keeps `g` samples but shifts them).
pub fn bicubic_matrix_scaled(src: usize, dst: usize, scale: f64) -> Vec<f64> {
    const A: f64 = -0.75;
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let mut m = vec![0.0; dst * src];
    for o in 0..dst {
        let real = scale * (o as f64 + 0.5) - 0.5;
        let i = real.floor();
        let t = real - i;
        let coeffs = [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)];
        for (k, c) in coeffs.into_iter().enumerate() {
            let j = (i as i64 - 1 + k as i64).clamp(0, src as i64 - 1) as usize;
            m[o * src + j] += c;
        }
    }
    m
}

/// mmpretrain's `resize_pos_embed`: the grid part of a `[1, extra + h·w, c]`
/// embedding resampled bicubically from `src` to `dst` patches (`[h, w]`),
/// the `num_extra_tokens` leading rows (the cls token) kept. Returned
/// unchanged when the sizes agree. Written as two matrix products, so the
/// gradient reaches the learned embedding on every backend.
pub fn resize_pos_embed<B: Backend>(pos_embed: Tensor<B, 3>, src: [usize; 2], dst: [usize; 2], num_extra_tokens: usize) -> Tensor<B, 3> {
    if src == dst {
        return pos_embed;
    }
    let l = pos_embed.dims()[1];
    let ([sh, sw], [dh, dw]) = (src, dst);
    assert_eq!(l, sh * sw + num_extra_tokens, "pos_embed has {l} rows, not {sh}x{sw}+{num_extra_tokens}");
    let extra = pos_embed.clone().slice([0..1, 0..num_extra_tokens]);
    let grid = pos_embed.slice([0..1, num_extra_tokens..l]);
    let scales = [sh as f64 / dh as f64, sw as f64 / dw as f64];
    Tensor::cat(vec![extra, resample_grid(grid, src, dst, scales)], 1)
}

/// A `[1, h·w, c]` grid embedding resampled bicubically from `src` to `dst`
/// samples (`[h, w]`) with `scales` source steps per output sample (see
/// [`bicubic_matrix_scaled`]), as two matrix products.
pub fn resample_grid<B: Backend>(grid: Tensor<B, 3>, src: [usize; 2], dst: [usize; 2], scales: [f64; 2]) -> Tensor<B, 3> {
    let c = grid.dims()[2];
    let ([sh, sw], [dh, dw]) = (src, dst);
    let device = grid.device();
    let matrix = |s: usize, d: usize, scale: f64| {
        let m: Vec<f32> = bicubic_matrix_scaled(s, d, scale).into_iter().map(|v| v as f32).collect();
        Tensor::<B, 2>::from_data(TensorData::new(m, [d, s]), &device)
    };
    let rows = matrix(sh, dh, scales[0]).matmul(grid.reshape([sh, sw * c])).reshape([dh, sw, c]);
    let cols = matrix(sw, dw, scales[1]).unsqueeze_dim::<3>(0).expand([dh, dw, sw]).matmul(rows);
    cols.reshape([1, dh * dw, c])
}
