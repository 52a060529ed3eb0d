//! Port of `mmselfsup.models.utils.build_2d_sincos_position_embedding`.

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
