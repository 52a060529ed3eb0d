//! Port of `mmselfsup.models.target_generators.HOGGenerator`
//! (`hog_generator.py`): MaskFeat's histogram-of-oriented-gradients target.
//!
//! Per colour channel: reflect padding, depthwise Sobel filters (`weight_x`
//! and its transpose `weight_y`), the gradient magnitude weighted by a
//! Gaussian window tiled over the image, `nbins` orientation bins from
//! `atan2(gx, gy)` (a Python-style modulo of the floor, so a phase of
//! exactly π lands in bin 0), a sum over `pool × pool` cells and an L2
//! normalisation over the bins. The histogram `[n, 3, nbins, h/pool,
//! w/pool]` is then cut into 14 × 14 tokens, as MMSelfSup hard-codes
//! (`unfold_size = cells // 14`), each token's features ordered
//! (channel, bin, row, column).
use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, module::conv2d, ops::ConvOptions, ops::PadMode, Tensor, TensorData},
};
use selfsup_layers::init::fixed;
use serde::{Deserialize, Serialize};

/// Tokens per side of MMSelfSup's `_reshape` (MaskFeat's ViT-B/16 at 224).
pub const TOKENS_PER_SIDE: usize = 14;

/// `dict(type='HOGGenerator', nbins=9, pool=8, gaussian_window=16)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HogGeneratorConfig {
    /// Orientation bins.
    pub nbins: usize,
    /// Cell size in pixels.
    pub pool: usize,
    /// Side of the Gaussian weighting window (0: none); σ is half of it.
    pub gaussian_window: usize,
    /// MMEngine `init_cfg` (the buffers are fixed; nothing to initialise).
    pub init_cfg: Option<serde_json::Value>,
}

impl Default for HogGeneratorConfig {
    fn default() -> Self {
        Self { nbins: 9, pool: 8, gaussian_window: 16, init_cfg: None }
    }
}

impl HogGeneratorConfig {
    /// Checks the fields; `(key, message)` on error.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.nbins == 0 {
            return Err(("nbins", "must be positive".into()));
        }
        if self.pool == 0 {
            return Err(("pool", "must be positive".into()));
        }
        Ok(())
    }

    /// Checks that an `[h, w]` image gives MMSelfSup's 14 × 14 tokens and
    /// that the Gaussian window tiles it; the token's feature count on
    /// success.
    pub fn check_image(&self, [h, w]: [usize; 2]) -> Result<usize, String> {
        if h % self.pool != 0 || w % self.pool != 0 {
            return Err(format!("a {h}x{w} image is not a whole number of {}-pixel cells", self.pool));
        }
        let (ch, cw) = (h / self.pool, w / self.pool);
        let unfold = cw / TOKENS_PER_SIDE;
        if unfold == 0 || ch % unfold != 0 || cw % unfold != 0 || ch / unfold != TOKENS_PER_SIDE || cw / unfold != TOKENS_PER_SIDE {
            return Err(format!(
                "MMSelfSup's HOGGenerator cuts its {ch}x{cw} cells into {TOKENS_PER_SIDE}x{TOKENS_PER_SIDE} tokens; \
                 the image must be {TOKENS_PER_SIDE}·k cells per side (k·{} pixels)",
                TOKENS_PER_SIDE * self.pool
            ));
        }
        let g = self.gaussian_window;
        if g != 0 && h != g && (h % g != 0 || w % g != 0) {
            return Err(format!("the {g}-pixel Gaussian window does not tile a {h}x{w} image"));
        }
        Ok(3 * self.nbins * unfold * unfold)
    }

    /// Builds the generator with its fixed buffers.
    pub fn init<B: Backend>(&self, device: &B::Device) -> HogGenerator<B> {
        #[rustfmt::skip]
        let sobel = [1.0f32, 0.0, -1.0, 2.0, 0.0, -2.0, 1.0, 0.0, -1.0];
        let weight_x: Vec<f32> = (0..3).flat_map(|_| sobel).collect();
        let weight_y: Vec<f32> = (0..3).flat_map(|_| (0..9).map(|i| sobel[(i % 3) * 3 + i / 3])).collect();
        let buffer = |v: Vec<f32>| fixed(Tensor::from_data(TensorData::new(v, [3, 1, 3, 3]), device));
        HogGenerator {
            weight_x: buffer(weight_x),
            weight_y: buffer(weight_y),
            gaussian_kernel: (self.gaussian_window > 0).then(|| {
                let g = self.gaussian_window;
                fixed(Tensor::from_data(TensorData::new(gaussian_kernel(g, g / 2), [g, g]), device))
            }),
            nbins: self.nbins,
            pool: self.pool,
        }
    }
}

/// `get_gaussian_kernel(kernlen, std)`: the outer product of a centred
/// Gaussian, normalised to sum 1 (float32 arithmetic, as torch).
fn gaussian_kernel(len: usize, std: usize) -> Vec<f32> {
    let mean = (len as f32 - 1.0) / 2.0;
    let w: Vec<f32> = (0..len).map(|i| (-0.5 * ((i as f32 - mean) / std as f32).powi(2)).exp()).collect();
    let outer: Vec<f32> = w.iter().flat_map(|a| w.iter().map(move |b| a * b)).collect();
    let sum: f32 = outer.iter().sum();
    outer.into_iter().map(|v| v / sum).collect()
}

/// The HOG target; keys `weight_x`, `weight_y`, `gaussian_kernel`.
#[derive(Module, Debug)]
pub struct HogGenerator<B: Backend> {
    /// `[3, 1, 3, 3]` depthwise Sobel, d/dx.
    pub weight_x: Param<Tensor<B, 4>>,
    /// `weight_x` transposed, d/dy.
    pub weight_y: Param<Tensor<B, 4>>,
    /// `[g, g]`, when `gaussian_window > 0`.
    pub gaussian_kernel: Option<Param<Tensor<B, 2>>>,
    nbins: usize,
    pool: usize,
}

impl<B: Backend> HogGenerator<B> {
    /// Orientation bins.
    pub fn nbins(&self) -> usize {
        self.nbins
    }

    /// Cell size in pixels.
    pub fn pool(&self) -> usize {
        self.pool
    }

    /// The L2-normalised histogram `[n, 3, nbins, h/pool, w/pool]`
    /// (MMSelfSup's `self.out`).
    pub fn histogram(&self, x: Tensor<B, 4>) -> Tensor<B, 5> {
        let x = x.detach();
        let [n, c, h, w] = x.dims();
        let device = x.device();
        let x = x.pad((1, 1, 1, 1), PadMode::Reflect);
        let depthwise = ConvOptions::new([1, 1], [0, 0], [1, 1], c);
        let gx = conv2d(x.clone(), self.weight_x.val(), None, depthwise.clone());
        let gy = conv2d(x, self.weight_y.val(), None, depthwise);
        let mut magnitude = (gx.clone().powi_scalar(2) + gy.clone().powi_scalar(2)).sqrt();
        if let Some(kernel) = &self.gaussian_kernel {
            let g = kernel.dims()[0];
            let tiled = if h == g { kernel.val() } else { kernel.val().repeat(&[h / g, w / g]) };
            magnitude = magnitude * tiled.reshape([1, 1, h, w]);
        }
        let nbins = self.nbins as f64;
        let bin = (gx.atan2(gy) / core::f64::consts::PI * nbins).floor();
        let bin = bin.clone() - (bin / nbins).floor() * nbins; // Python's `%`
        let bins = Tensor::<B, 1, burn::tensor::Int>::arange(0..self.nbins as i64, &device).float().reshape([1, 1, self.nbins, 1, 1]);
        let full = [n, c, self.nbins, h, w];
        let onehot = bin.unsqueeze_dim::<5>(2).expand(full).equal(bins.expand(full)).float();
        let weighted = onehot * magnitude.unsqueeze_dim::<5>(2);
        let (p, ch, cw) = (self.pool, h / self.pool, w / self.pool);
        let cells = weighted
            .slice([0..n, 0..c, 0..self.nbins, 0..ch * p, 0..cw * p])
            .reshape([n * c * self.nbins * ch, p, cw, p])
            .sum_dim(3)
            .sum_dim(1)
            .reshape([n, c, self.nbins, ch, cw]);
        selfsup_layers::l2_normalize(cells, 2)
    }

    /// `[n, 3, h, w] -> [n, 196, 3·nbins·u·u]` with `u = (w/pool) / 14`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 3> {
        tokens(self.histogram(x))
    }
}

/// MMSelfSup's `_reshape`: a histogram `[n, c, bins, ch, cw]` as 14 × 14
/// tokens of `c·bins·u·u` features, `u = cw / 14`.
pub fn tokens<B: Backend>(hist: Tensor<B, 5>) -> Tensor<B, 3> {
    let [n, c, bins, ch, cw] = hist.dims();
    let u = cw / TOKENS_PER_SIDE;
    assert!(u > 0, "HOG needs at least {TOKENS_PER_SIDE} cells per side, got {cw}");
    let (th, tw) = (ch / u, cw / u);
    hist.slice([0..n, 0..c, 0..bins, 0..th * u, 0..tw * u]).reshape([n, c * bins, th, u, tw, u]).permute([0, 2, 4, 1, 3, 5]).reshape([
        n,
        th * tw,
        c * bins * u * u,
    ])
}

/// The inverse of [`tokens`], MMSelfSup's `MaskFeat.reconstruct`: tokens
/// `[n, th·tw, c·bins·u·u]` on a `th × tw` grid back to the histogram
/// `[n, c, bins, th·u, tw·u]`, so a prediction of the tokens can be drawn
/// with [`generate_hog_image`]. `u` follows from the feature count.
///
/// # Panics
/// When the token count is not `th · tw` or the feature count not
/// `c · bins · u²` for a whole `u`.
pub fn histogram_from_tokens<B: Backend>(tokens: Tensor<B, 3>, channels: usize, bins: usize, [th, tw]: [usize; 2]) -> Tensor<B, 5> {
    let [n, l, f] = tokens.dims();
    assert_eq!(l, th * tw, "{l} tokens are not a {th}x{tw} grid");
    let cb = channels * bins;
    let u = (1..=f).find(|u| cb * u * u >= f).unwrap_or(0);
    assert!(u > 0 && cb * u * u == f, "{f} features per token are not {channels} channels x {bins} bins x u x u");
    tokens.reshape([n, th, tw, cb, u, u]).permute([0, 3, 1, 4, 2, 5]).reshape([n, channels, bins, th * u, tw * u])
}

/// MMSelfSup's `generate_hog_image`: the histogram of one image
/// `[1, 3, nbins, ch, cw]` (averaged over channels) drawn as one line per
/// bin and cell, length ∝ the bin's weight relative to the image's largest,
/// value `⌊255·√weight⌋`, on an `[h, w]` float64 canvas (`cv2.line`,
/// 8-connected, thickness 1; the last drawn line wins a pixel).
pub fn generate_hog_image(hist: &[f32], [c, bins, ch, cw]: [usize; 4], pool: usize, [h, w]: [usize; 2]) -> Vec<f64> {
    assert_eq!(hist.len(), c * bins * ch * cw, "histogram size");
    let mut cell = vec![0f32; bins * ch * cw];
    for (i, v) in cell.iter_mut().enumerate() {
        *v = (0..c).map(|k| hist[k * bins * ch * cw + i]).sum::<f32>() / c as f32;
    }
    let max_mag = cell.iter().copied().fold(f32::MIN, f32::max);
    let mut image = vec![0f64; h * w];
    let cell_width = pool as f64 / 2.0;
    let angle_gap = 360.0 / bins as f64;
    for x in 0..ch {
        for y in 0..cw {
            let mut angle = 0f64;
            for b in 0..bins {
                let magnitude = (cell[(b * ch + x) * cw + y] / max_mag) as f64;
                let (s, co) = angle.to_radians().sin_cos();
                let x1 = (x as f64 * pool as f64 + magnitude * cell_width * co) as i64;
                let y1 = (y as f64 * pool as f64 + magnitude * cell_width * s) as i64;
                let x2 = (x as f64 * pool as f64 - magnitude * cell_width * co) as i64;
                let y2 = (y as f64 * pool as f64 - magnitude * cell_width * s) as i64;
                let value = (255.0 * magnitude.max(0.0).sqrt()) as i64 as f64;
                draw_line(&mut image, [h, w], (y1, x1), (y2, x2), value);
                angle += angle_gap;
            }
        }
    }
    image
}

/// `cv2.line(img, (x0, y0), (x1, y1), value)`: an 8-connected line,
/// clipped to the image (OpenCV's `(x, y)` is (column, row)).
fn draw_line(image: &mut [f64], [h, w]: [usize; 2], (x0, y0): (i64, i64), (x1, y1): (i64, i64), value: f64) {
    let (dx, dy) = ((x1 - x0).abs(), (y1 - y0).abs());
    let steps = dx.max(dy);
    let (sx, sy) = ((x1 - x0).signum(), (y1 - y0).signum());
    let (mut x, mut y) = (x0, y0);
    let mut err = if dx >= dy { dx / 2 } else { dy / 2 };
    for _ in 0..=steps {
        if (0..w as i64).contains(&x) && (0..h as i64).contains(&y) {
            image[y as usize * w + x as usize] = value;
        }
        if dx >= dy {
            x += sx;
            err -= dy;
            if err < 0 {
                y += sy;
                err += dx;
            }
        } else {
            y += sy;
            err -= dx;
            if err < 0 {
                x += sx;
                err += dy;
            }
        }
    }
}
