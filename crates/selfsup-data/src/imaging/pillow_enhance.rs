//! Pillow's `ImageStat.Stat(...).mean` and `ImageEnhance.Brightness`, `Contrast` and
//! `Color` for 8-bit images, bit-exact.
//!
//! Port of `PIL/ImageStat.py` and `PIL/ImageEnhance.py`. These, with `Image.blend`
//! ([`pillow_blend`](super::pillow_blend)) and the `L` and `HSV` conversions
//! ([`pillow_convert`](super::pillow_convert)), are what mmcv's `adjust_brightness`,
//! `adjust_contrast`, `adjust_color` and `adjust_hue` (`backend='pillow'`, the one
//! MMSelfSup's `ColorJitter` uses) call; the blend and the conversions are re-exported here
//! under their former paths.
//!
//! Images are RGB (3 channels) or `L` (1 channel).

pub use super::pillow_blend::blend;
pub use super::pillow_convert::{hsv_to_rgb, l_to_rgb, rgb_to_hsv, rgb_to_l, shift_hue_in_place};

use super::pillow_blend::{blend_px, blend_uniform};
use super::pillow_convert::luma;
use super::{kernels, Image};

/// `ImageStat.Stat(img).mean[0]` of an `L` image: the exact pixel sum over the pixel count.
pub fn mean_l(img: &Image) -> f64 {
    let n = img.data().len();
    if n == 0 {
        return f64::NAN;
    }
    let sum: u64 = img.data().iter().map(|&v| u64::from(v)).sum();
    sum as f64 / n as f64
}

/// `ImageStat.Stat(img.convert('L')).mean[0]`, without building the `L` image.
fn mean_of_luma(img: &Image) -> f64 {
    let c = img.channels();
    if c == 1 {
        return mean_l(img);
    }
    let n = img.width() * img.height();
    if n == 0 {
        return f64::NAN;
    }
    let sum = if c == 3 { luma_sum_rgb(img.data()) } else { img.data().chunks_exact(c).map(|p| u64::from(luma(p[0], p[1], p[2]))).sum() };
    sum as f64 / n as f64
}

/// The sum of the lumas of the RGB pixels of `data` (exact: 32-bit partial sums over blocks
/// small enough not to overflow).
#[inline(always)]
fn luma_sum_rgb_impl(data: &[u8]) -> u64 {
    data.chunks(3 * 4096)
        .map(|block| {
            let s: u32 = block.chunks_exact(3).map(|p| u32::from(luma(p[0], p[1], p[2]))).sum();
            u64::from(s)
        })
        .sum()
}

kernels::avx2_dispatch! {
    fn luma_sum_rgb(data: &[u8]) -> u64 => luma_sum_rgb_impl
}

/// `ImageEnhance.Brightness(img).enhance(factor)`, in place: a blend with a black image,
/// i.e. `blend(0, v)` for every byte `v`.
pub fn enhance_brightness_in_place(img: &mut Image, factor: f64) {
    let alpha = factor as f32;
    if alpha == 0.0 {
        img.data_mut().fill(0);
    } else if alpha != 1.0 {
        blend_uniform(img.data_mut(), 0, alpha);
    }
}

/// `ImageEnhance.Contrast(img).enhance(factor)`, in place (`L` or RGB): a blend with a
/// uniform grey image whose value is the mean of `img.convert('L')`, rounded as
/// `int(mean + 0.5)`, i.e. `blend(grey, v)` for every byte `v`.
pub fn enhance_contrast_in_place(img: &mut Image, factor: f64) {
    let mean = mean_of_luma(img);
    let mean = if mean.is_finite() { (mean + 0.5) as u8 } else { 0 };
    let alpha = factor as f32;
    if alpha == 0.0 {
        img.data_mut().fill(mean);
    } else if alpha != 1.0 {
        blend_uniform(img.data_mut(), mean, alpha);
    }
}

/// `ImageEnhance.Color(img).enhance(factor)`, in place: every channel blended with the
/// pixel's luma (`img.convert('L').convert('RGB')`). An `L` image is its own degenerate:
/// unchanged.
pub fn enhance_color_in_place(img: &mut Image, factor: f64) {
    let alpha = factor as f32;
    if img.channels() == 1 || alpha == 1.0 {
        return;
    }
    let c = img.channels();
    if c == 3 {
        blend_with_luma_rgb(img.data_mut(), alpha);
        return;
    }
    for p in img.data_mut().chunks_exact_mut(c) {
        let l = luma(p[0], p[1], p[2]);
        for v in &mut p[..3] {
            *v = blend_px(l, *v, alpha);
        }
    }
}

/// Pixels per block of [`blend_with_luma_rgb`].
const LUMA_BLOCK: usize = 64;

/// Every byte of the RGB pixels of `data` blended with its pixel's luma, a block of
/// [`LUMA_BLOCK`] pixels at a time: the lumas are spread to one per byte, then one flat loop
/// blends byte by byte, which vectorises.
#[inline(always)]
fn blend_with_luma_rgb_impl(data: &mut [u8], alpha: f32) {
    let mut l3 = [0u8; 3 * LUMA_BLOCK];
    for block in data.chunks_mut(3 * LUMA_BLOCK) {
        for (l, p) in l3.chunks_exact_mut(3).zip(block.chunks_exact(3)) {
            l.fill(luma(p[0], p[1], p[2]));
        }
        for (v, &l) in block.iter_mut().zip(&l3) {
            *v = blend_px(l, *v, alpha);
        }
    }
}

kernels::avx2_dispatch! {
    fn blend_with_luma_rgb(data: &mut [u8], alpha: f32) => blend_with_luma_rgb_impl
}

/// `ImageEnhance.Brightness(img).enhance(factor)`: a blend with a black image.
pub fn enhance_brightness(img: &Image, factor: f64) -> Image {
    let mut out = img.clone();
    enhance_brightness_in_place(&mut out, factor);
    out
}

/// `ImageEnhance.Contrast(img).enhance(factor)`: a blend with a uniform grey image whose
/// value is the mean of `img.convert('L')`, rounded as `int(mean + 0.5)`.
pub fn enhance_contrast(img: &Image, factor: f64) -> Image {
    let mut out = img.clone();
    enhance_contrast_in_place(&mut out, factor);
    out
}

/// `ImageEnhance.Color(img).enhance(factor)`: a blend with `img.convert('L').convert('RGB')`
/// (an `L` image is its own degenerate: unchanged).
pub fn enhance_color(img: &Image, factor: f64) -> Image {
    let mut out = img.clone();
    enhance_color_in_place(&mut out, factor);
    out
}

#[cfg(test)]
mod tests {
    use super::super::pillow_blend::blend_uniform_impl;
    use super::super::pillow_reference::{self as reference, random_image};
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The dispatched kernels (AVX2 where available) and their baseline builds agree.
    #[test]
    fn byte_kernels_are_the_same_with_and_without_avx2() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        for _ in 0..50 {
            let len = 3 * rng.random_range(0..500);
            let data: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let alpha = rng.random_range(-1.0..3.0f32);
            let a = rng.random();
            let (mut x, mut y) = (data.clone(), data.clone());
            blend_uniform(&mut x, a, alpha);
            blend_uniform_impl(&mut y, a, alpha);
            assert_eq!(x, y);
            let (mut x, mut y) = (data.clone(), data.clone());
            blend_with_luma_rgb(&mut x, alpha);
            blend_with_luma_rgb_impl(&mut y, alpha);
            assert_eq!(x, y);
            let want: u64 = data.chunks_exact(3).map(|p| u64::from(luma(p[0], p[1], p[2]))).sum();
            assert_eq!(luma_sum_rgb(&data), want);
            assert_eq!(luma_sum_rgb_impl(&data), want);
        }
    }

    #[test]
    fn in_place_enhancers_match_blends_with_degenerate_images() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for i in 0..300 {
            let img = random_image(&mut rng, if i % 4 == 0 { 1 } else { 3 });
            let factors = [0.0, 1.0, 0.2, 1.8, 2.5, -0.5, rng.random_range(0.0..2.0), rng.random_range(0.0..2.0)];
            for f in factors {
                assert_eq!(enhance_brightness(&img, f), reference::enhance_brightness(&img, f), "brightness {f}");
                assert_eq!(enhance_contrast(&img, f), reference::enhance_contrast(&img, f), "contrast {f}");
                assert_eq!(enhance_color(&img, f), reference::enhance_color(&img, f), "color {f}");
            }
        }
    }
}
