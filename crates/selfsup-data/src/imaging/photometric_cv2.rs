//! The OpenCV and NumPy paths of `mmcv/image/photometric.py` (mmcv 2.0.1) that mmcls's
//! `RandAugment` operations call: `iminvert`, `posterize`, `auto_contrast`, `imequalize`, and
//! the default `backend='cv2'` paths of `adjust_color`, `adjust_brightness`,
//! `adjust_contrast`, plus `adjust_sharpness` (cv2 only). These differ from the Pillow paths
//! in [`photometric`](super::photometric) (which MMSelfSup's `ColorJitter` uses).
//!
//! OpenCV arithmetic, checked against `cv2` 4.10 byte for byte
//! (`tools/gen_rand_augment_fixture.py`):
//! - `cvtColor(BGR2GRAY)` on 8-bit images: `(3735·B + 19235·G + 9798·R + 2¹⁴) >> 15`;
//! - `addWeighted` of two 8-bit images: `a·α + b·β + γ` with `α, β, γ` as `f32`, the products
//!   exact and summed in `f64`, rounded to `f32`, then to the nearest integer (ties to even)
//!   and saturated;
//! - `addWeighted` of two `float32` images (mmcv's brightness, contrast and sharpness): the
//!   same sum with the `f64` scalars, rounded to `f32`; mmcv then clips to `[0, 255]` and
//!   `astype(uint8)` truncates;
//! - `filter2D` with PIL's `SMOOTH` kernel (`[[1,1,1],[1,5,1],[1,1,1]] / 13`), border
//!   `BORDER_REFLECT_101` everywhere (unlike Pillow, which keeps the border pixels): the
//!   weighted sum `n / 13` of integers is never within float error of a half, so it rounds
//!   exactly.
//!
//! Images are RGB here, BGR in mmcv: the grey weights are applied to the right channels and
//! the per-channel operations are order-free.

use super::Image;

fn require_rgb(img: &Image, op: &str) {
    assert_eq!(img.channels(), 3, "{op} needs a 3-channel image (callers check)");
}

/// `cv2.cvtColor(img, COLOR_BGR2GRAY)` of this RGB image, one value per pixel.
pub fn gray_cv2(img: &Image) -> Vec<u8> {
    require_rgb(img, "gray_cv2");
    img.data()
        .chunks_exact(3)
        .map(|p| ((u32::from(p[2]) * 3735 + u32::from(p[1]) * 19235 + u32::from(p[0]) * 9798 + (1 << 14)) >> 15) as u8)
        .collect()
}

/// `mmcv.iminvert`: `255 − v`.
pub fn iminvert(img: &Image) -> Image {
    let mut out = img.clone();
    out.data_mut().iter_mut().for_each(|v| *v = 255 - *v);
    out
}

/// `mmcv.posterize(img, bits)`: keeps the `bits` high bits (`(v >> s) << s`, `s = 8 − bits`);
/// 0 bits gives black, as NumPy's shifts by the full width do.
pub fn posterize(img: &Image, bits: u32) -> Image {
    let shift = 8u32.saturating_sub(bits);
    let mut out = img.clone();
    out.data_mut().iter_mut().for_each(|v| *v = if shift >= 8 { 0 } else { (*v >> shift) << shift });
    out
}

fn channel_histogram(img: &Image, c: usize) -> [u64; 256] {
    let mut h = [0u64; 256];
    for p in img.data().chunks_exact(img.channels()) {
        h[usize::from(p[c])] += 1;
    }
    h
}

fn map_channels(img: &Image, luts: &[[u8; 256]]) -> Image {
    let mut out = img.clone();
    let ch = img.channels();
    for p in out.data_mut().chunks_exact_mut(ch) {
        for (c, v) in p.iter_mut().enumerate() {
            *v = luts[c][usize::from(*v)];
        }
    }
    out
}

/// `mmcv.auto_contrast(img, cutoff=0)`: each channel stretched linearly so that its lowest
/// value maps to 0 and its highest to 255 (`lut = clip(i·s − low·s)`, `s = 255 / (high −
/// low)`, in `f64`, truncated); a constant channel is unchanged.
pub fn auto_contrast(img: &Image) -> Image {
    require_rgb(img, "auto_contrast");
    let luts: Vec<[u8; 256]> = (0..3)
        .map(|c| {
            let h = channel_histogram(img, c);
            let low = h.iter().position(|&n| n > 0).unwrap_or(0);
            let high = h.iter().rposition(|&n| n > 0).unwrap_or(0);
            let mut lut = [0u8; 256];
            for (i, l) in lut.iter_mut().enumerate() {
                *l = if low >= high {
                    i as u8
                } else {
                    let scale = 255.0 / (high - low) as f64;
                    let offset = -(low as f64) * scale;
                    (i as f64 * scale + offset).clamp(0.0, 255.0) as u8
                };
            }
            lut
        })
        .collect();
    map_channels(img, &luts)
}

/// `mmcv.imequalize(img)`: per-channel histogram equalisation, Pillow's `ImageOps.equalize`
/// algorithm in mmcv's NumPy form (`step = (n − count of the last non-empty bin) // 255`,
/// `lut = (cumsum + step // 2) // step` shifted by one); a channel with `step == 0` is
/// unchanged.
pub fn imequalize(img: &Image) -> Image {
    require_rgb(img, "imequalize");
    let luts: Vec<[u8; 256]> = (0..3)
        .map(|c| {
            let h = channel_histogram(img, c);
            let last = h.iter().rev().copied().find(|&n| n > 0).unwrap_or(0);
            let step = (h.iter().sum::<u64>() - last) / 255;
            let mut lut = [0u8; 256];
            let mut cum = 0u64;
            for (i, l) in lut.iter_mut().enumerate() {
                // lut[i] = (cumsum[i - 1] + step // 2) // step, lut[0] = 0; identity at step 0.
                *l = match (step, i) {
                    (0, _) => i as u8,
                    (_, 0) => 0,
                    _ => ((cum + step / 2) / step).min(255) as u8,
                };
                cum += h[i];
            }
            lut
        })
        .collect();
    map_channels(img, &luts)
}

/// `cv2.addWeighted` of two 8-bit images (see the module documentation).
fn add_weighted_u8(a: u8, alpha: f32, b: u8, beta: f32) -> u8 {
    let t = f32::from(a).mul_add(alpha, f32::from(b).mul_add(beta, 0.0));
    t.round_ties_even().clamp(0.0, 255.0) as u8
}

/// `cv2.addWeighted` of two `float32` images, then mmcv's `clip(0, 255).astype(uint8)`.
fn add_weighted_f32_trunc(a: u8, alpha: f64, b: u8, beta: f64) -> u8 {
    let t = (f64::from(a) * alpha + f64::from(b) * beta) as f32;
    t.clamp(0.0, 255.0) as u8
}

/// Blends `img` with a degenerate image `deg` (one value per pixel, or per sample) in
/// mmcv's float path: `img·factor + deg·(1 − factor)`.
fn blend_f32(img: &Image, factor: f64, deg: impl Fn(usize) -> u8) -> Image {
    let mut out = img.clone();
    let beta = 1.0 - factor;
    for (i, v) in out.data_mut().iter_mut().enumerate() {
        *v = add_weighted_f32_trunc(*v, factor, deg(i), beta);
    }
    out
}

/// `mmcv.adjust_color(img, alpha)` with the cv2 backend: `addWeighted(img, α, grey, 1 − α, 0)`
/// on 8-bit images, the grey from `cvtColor`.
pub fn adjust_color_cv2(img: &Image, alpha: f64) -> Image {
    let gray = gray_cv2(img);
    let (a, b) = (alpha as f32, (1.0 - alpha) as f32);
    let mut out = img.clone();
    for (p, g) in out.data_mut().chunks_exact_mut(3).zip(gray) {
        p.iter_mut().for_each(|v| *v = add_weighted_u8(*v, a, g, b));
    }
    out
}

/// `mmcv.adjust_brightness(img, factor)` with the cv2 backend: `img·factor` in `float32`,
/// clipped and truncated.
pub fn adjust_brightness_cv2(img: &Image, factor: f64) -> Image {
    blend_f32(img, factor, |_| 0)
}

/// `mmcv.adjust_contrast(img, factor)` with the cv2 backend: a blend with the uniform grey of
/// the mean grey level, `round(sum(grey) / n)` (ties to even).
pub fn adjust_contrast_cv2(img: &Image, factor: f64) -> Image {
    let gray = gray_cv2(img);
    let sum: u64 = gray.iter().map(|&g| u64::from(g)).sum();
    let mean = (sum as f64 / gray.len().max(1) as f64).round_ties_even() as u8;
    blend_f32(img, factor, |_| mean)
}

/// `mmcv.adjust_sharpness(img, factor)`: a blend with `cv2.filter2D(img, SMOOTH)`; factors
/// above 1 sharpen, below 1 blur.
pub fn adjust_sharpness(img: &Image, factor: f64) -> Image {
    let (w, h, ch) = (img.width(), img.height(), img.channels());
    // BORDER_REFLECT_101 (`gfedcb|abcdefgh|gfedcba`); a 1-pixel side reflects onto itself.
    let reflect = |p: isize, n: usize| -> usize {
        if n == 1 {
            0
        } else if p < 0 {
            (-p) as usize
        } else if p as usize >= n {
            2 * (n - 1) - p as usize
        } else {
            p as usize
        }
    };
    let src = img.data();
    let mut smooth = vec![0u8; src.len()];
    for y in 0..h {
        for x in 0..w {
            for c in 0..ch {
                let mut n = 4 * u32::from(src[(y * w + x) * ch + c]);
                for dy in -1..=1isize {
                    for dx in -1..=1isize {
                        let (yy, xx) = (reflect(y as isize + dy, h), reflect(x as isize + dx, w));
                        n += u32::from(src[(yy * w + xx) * ch + c]);
                    }
                }
                smooth[(y * w + x) * ch + c] = (f64::from(n) / 13.0).round_ties_even() as u8;
            }
        }
    }
    blend_f32(img, factor, |i| smooth[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray_uses_opencv_fixed_point_weights() {
        let img = Image::from_fn(3, 1, |x, _| [[255u8, 0, 0], [0, 255, 0], [0, 0, 255]][x]);
        // R, G, B alone: round(255 · w / 2¹⁵) for w = 9798, 19235, 3735.
        assert_eq!(gray_cv2(&img), vec![76, 150, 29]);
    }

    #[test]
    fn posterize_and_invert() {
        let img = Image::from_fn(3, 1, |x, _| [[0u8, 130, 255][x]]);
        assert_eq!(posterize(&img, 3).data(), &[0, 128, 224]);
        assert_eq!(posterize(&img, 0).data(), &[0, 0, 0]);
        assert_eq!(posterize(&img, 8).data(), img.data());
        assert_eq!(iminvert(&img).data(), &[255, 125, 0]);
    }

    #[test]
    fn auto_contrast_stretches_and_keeps_constant_channels() {
        let img = Image::from_fn(3, 1, |x, _| [[50u8, 9, 7], [100, 9, 7], [150, 9, 7]][x]);
        let out = auto_contrast(&img);
        assert_eq!(out.data(), &[0, 9, 7, 127, 9, 7, 255, 9, 7]);
    }

    #[test]
    fn unit_factors_are_identities() {
        let img = Image::from_fn(5, 4, |x, y| [(x * 50) as u8, (y * 60) as u8, ((x + y) * 25) as u8]);
        for f in [adjust_color_cv2, adjust_brightness_cv2, adjust_contrast_cv2, adjust_sharpness] {
            assert_eq!(f(&img, 1.0).data(), img.data());
        }
        assert!(adjust_brightness_cv2(&img, 0.0).data().iter().all(|&v| v == 0));
    }
}
