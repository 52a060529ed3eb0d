//! Port of `mmselfsup.models.target_generators.LowFreqTargetGenerator`
//! (`low_freq_generator.py`): PixMIM's low-frequency target.
//!
//! MMSelfSup un-normalises the images with ImageNet's mean and std (0–1
//! scale), takes `fft2`, `fftshift`s it, multiplies by an ideal circular
//! low-pass filter centred on `((h−1)/2, (w−1)/2)` (the `low_pass_filter`
//! buffer, `[3, h, w]`), takes `ifft2` (without `ifftshift`) and its
//! absolute value, and re-normalises.
//!
//! burn has no FFT, so the transforms here are matrix products with the
//! DFT's cosine and sine matrices (four real `[·, n] × [n, n]` products
//! each way), which every backend runs as GEMMs. The missing `ifftshift`
//! is a phase modulation of the result, which `abs` removes, so the filter
//! is applied to the unshifted spectrum, rolled by `⌊n/2⌋` back (the
//! `low_pass_filter` buffer itself keeps MMSelfSup's shifted layout).
use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, Tensor, TensorData},
};
use selfsup_layers::init::fixed;
use serde::{Deserialize, Serialize};

const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// `img_size`: one side or `(h, w)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ImgSize {
    /// A square image.
    Square(usize),
    /// `(h, w)`.
    Pair([usize; 2]),
}

impl ImgSize {
    /// `[h, w]`.
    pub fn hw(self) -> [usize; 2] {
        match self {
            ImgSize::Square(s) => [s, s],
            ImgSize::Pair(p) => p,
        }
    }
}

/// `dict(type='LowFreqTargetGenerator', radius, img_size)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LowFreqTargetGeneratorConfig {
    /// The filter's radius in frequency bins.
    pub radius: f64,
    /// The input size the filter is built for.
    pub img_size: ImgSize,
    /// MMEngine `init_cfg` (the buffer is fixed; nothing to initialise).
    #[serde(default)]
    pub init_cfg: Option<serde_json::Value>,
}

impl LowFreqTargetGeneratorConfig {
    /// Checks the fields; `(key, message)` on error.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let [h, w] = self.img_size.hw();
        if h == 0 || w == 0 {
            return Err(("img_size", "must be positive".into()));
        }
        if !(self.radius.is_finite() && self.radius >= 0.0) {
            return Err(("radius", format!("{} is not a non-negative number", self.radius)));
        }
        Ok(())
    }

    /// MMSelfSup's `_generate_low_pass_filter`: 1 inside the circle, 0
    /// outside, `[3, h, w]` in fftshift layout.
    pub fn low_pass_filter(&self) -> Vec<f32> {
        let [h, w] = self.img_size.hw();
        let (ci, cj) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
        let plane: Vec<f32> = (0..h)
            .flat_map(|i| {
                (0..w).map(move |j| ((i as f64 - ci).powi(2) + (j as f64 - cj).powi(2) <= self.radius * self.radius) as u8 as f32)
            })
            .collect();
        plane.repeat(3)
    }

    /// Builds the generator.
    pub fn init<B: Backend>(&self, device: &B::Device) -> LowFreqTargetGenerator<B> {
        let [h, w] = self.img_size.hw();
        let filter = Tensor::from_data(TensorData::new(self.low_pass_filter(), [3, h, w]), device);
        LowFreqTargetGenerator { low_pass_filter: fixed(filter) }
    }
}

/// The low-frequency target; key `low_pass_filter`.
#[derive(Module, Debug)]
pub struct LowFreqTargetGenerator<B: Backend> {
    /// `[3, h, w]`, 1 inside the pass band (fftshift layout).
    pub low_pass_filter: Param<Tensor<B, 3>>,
}

/// The DFT matrices `cos(2πkn/N)` and `sin(2πkn/N)`, `[n, n]` (symmetric),
/// from float64 angles reduced modulo `N`.
fn dft<B: Backend>(n: usize, device: &B::Device) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let angle = |k: usize, j: usize| 2.0 * core::f64::consts::PI * ((k * j) % n) as f64 / n as f64;
    let cos: Vec<f32> = (0..n * n).map(|i| angle(i / n, i % n).cos() as f32).collect();
    let sin: Vec<f32> = (0..n * n).map(|i| angle(i / n, i % n).sin() as f32).collect();
    (Tensor::from_data(TensorData::new(cos, [n, n]), device), Tensor::from_data(TensorData::new(sin, [n, n]), device))
}

/// `x · m` over the last dimension, `[n, c, h, w] × [w, w]`.
fn right<B: Backend>(x: Tensor<B, 4>, m: &Tensor<B, 2>) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n * c * h, w]).matmul(m.clone()).reshape([n, c, h, w])
}

/// `m · x` over the second-to-last dimension (`m` symmetric).
fn left<B: Backend>(x: Tensor<B, 4>, m: &Tensor<B, 2>) -> Tensor<B, 4> {
    right(x.swap_dims(2, 3), m).swap_dims(2, 3)
}

impl<B: Backend> LowFreqTargetGenerator<B> {
    /// `[n, 3, h, w]` normalised images → their low-frequency version,
    /// normalised the same way.
    pub fn forward(&self, imgs: Tensor<B, 4>) -> Tensor<B, 4> {
        let imgs = imgs.detach();
        let [_, c, h, w] = imgs.dims();
        let device = imgs.device();
        let [fc, fh, fw] = self.low_pass_filter.dims();
        assert_eq!([fc, fh, fw], [c, h, w], "LowFreqTargetGenerator was built for {fh}x{fw} images");
        let mean = Tensor::<B, 1>::from_floats(MEAN, &device).reshape([1, 3, 1, 1]);
        let std = Tensor::<B, 1>::from_floats(STD, &device).reshape([1, 3, 1, 1]);
        let x = imgs * std.clone() + mean.clone();
        let (ch, sh) = dft::<B>(h, &device);
        let (cw, sw) = dft::<B>(w, &device);
        // Z = F_h X F_w with F = C − iS.
        let (xc, xs) = (right(x.clone(), &cw), right(x, &sw));
        let zr = left(xc.clone(), &ch) - left(xs.clone(), &sh);
        let zi = -(left(xc, &sh) + left(xs, &ch));
        // The filter in the unshifted layout, `M[(j + ⌊n/2⌋) mod n]`
        // (burn's `roll(k)` is torch's `roll(−k)`).
        let filter = self.low_pass_filter.val().roll(&[(h / 2) as i64, (w / 2) as i64], &[1, 2]).unsqueeze_dim::<4>(0);
        let (ar, ai) = (zr * filter.clone(), zi * filter);
        // Y = conj(F_h) A conj(F_w) / (h·w), conj(F) = C + iS.
        let pr = left(ar.clone(), &ch) - left(ai.clone(), &sh);
        let pi = left(ai, &ch) + left(ar, &sh);
        let yr = right(pr.clone(), &cw) - right(pi.clone(), &sw);
        let yi = right(pr, &sw) + right(pi, &cw);
        let magnitude = (yr.powi_scalar(2) + yi.powi_scalar(2)).sqrt() / (h * w) as f64;
        (magnitude - mean) / std
    }
}
