//! Pillow's colour primitives for 8-bit images, bit-exact: `Image.blend`, the `RGB ↔ L` and
//! `RGB ↔ HSV` conversions, `ImageStat.Stat(...).mean` and `ImageEnhance.Brightness`,
//! `Contrast` and `Color`.
//!
//! Port of `Pillow/src/libImaging/Blend.c` (`ImagingBlend`), `Convert.c` (`rgb2l`, `l2rgb`,
//! `rgb2hsv_row`, `hsv2rgb`), `PIL/ImageStat.py` and `PIL/ImageEnhance.py`. These are what
//! mmcv's `adjust_brightness`, `adjust_contrast`, `adjust_color` and `adjust_hue`
//! (`backend='pillow'`, the one MMSelfSup's `ColorJitter` uses) call. The C code mixes
//! `float` and `double` arithmetic; the port keeps each operation in the same precision
//! (`f32` for `float`, `f64` for `double`) so that the truncations land on the same side.
//!
//! Images are RGB (3 channels) or `L` (1 channel); [`rgb_to_hsv`] returns a 3-channel image
//! holding H, S, V.

use super::{kernels, Image};

/// `CLIP8`: clamps to `0..=255`.
fn clip8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// `Image.blend` for one byte: `a + alpha · (b − a)` in `f32`, truncated, and clipped to
/// `0..=255` (Pillow clips only when `alpha` is outside `[0, 1]`, where the value can leave
/// that range; inside, clipping is a no-op). See [`trunc_clip8`].
#[inline(always)]
fn blend_px(a: u8, b: u8, alpha: f32) -> u8 {
    trunc_clip8(f32::from(a) + alpha * (i32::from(b) - i32::from(a)) as f32)
}

/// 2²³: adding it to a float in `[0, 2²²)` rounds it to an integer (to nearest, ties to
/// even), as the unit in the last place of the sum is 1.
const ROUNDING_F32: f32 = 8_388_608.0;

/// Pillow's `t <= 0 → 0, t >= 255 → 255, else (UINT8) t`, NaN giving 0 (it fails both
/// comparisons and casts to 0 in practice), as Rust's saturating `t as u8` does. Written as
/// a clamp, a floor by the 2²³ rounding trick and a read of the mantissa bits, so that loops
/// over it vectorise (a saturating cast does not).
#[inline(always)]
fn trunc_clip8(t: f32) -> u8 {
    // Not `clamp`, which keeps a NaN: `max` returns the other operand, 0.
    #[allow(clippy::manual_clamp)]
    let t = t.max(0.0).min(255.0);
    let n = (t + ROUNDING_F32) - ROUNDING_F32;
    let n = if n > t { n - 1.0 } else { n };
    (n + ROUNDING_F32).to_bits() as u8
}

/// `Image.blend` of a uniform image of value `a` with `data`, in place: every byte `b`
/// becomes `blend_px(a, b, alpha)`. Arithmetic rather than a 256-entry table, because the
/// arithmetic vectorises and the table lookups do not.
#[inline(always)]
fn blend_uniform_impl(data: &mut [u8], a: u8, alpha: f32) {
    for v in data {
        *v = blend_px(a, *v, alpha);
    }
}

kernels::avx2_dispatch! {
    fn blend_uniform(data: &mut [u8], a: u8, alpha: f32) => blend_uniform_impl
}

/// `Image.blend(im1, im2, alpha)`: `im1 + alpha · (im2 − im1)` per byte, computed in `f32`
/// (`alpha` is a C `float`) and truncated; outside `0 ≤ alpha ≤ 1` the result is clipped to
/// `0..=255` first. `alpha = 0` returns `im1`, `alpha = 1` returns `im2`.
///
/// # Panics
/// When the two images differ in size or channels.
pub fn blend(im1: &Image, im2: &Image, alpha: f32) -> Image {
    assert_eq!(
        (im1.width(), im1.height(), im1.channels()),
        (im2.width(), im2.height(), im2.channels()),
        "blend of images of different shapes"
    );
    if alpha == 0.0 {
        return im1.clone();
    }
    if alpha == 1.0 {
        return im2.clone();
    }
    let data = im1
        .data()
        .iter()
        .zip(im2.data())
        .map(|(&a, &b)| blend_px(a, b, alpha))
        .collect();
    Image::from_raw(im1.width(), im1.height(), im1.channels(), data).unwrap_or_else(|| im1.clone())
}

/// `rgb2l`: ITU-R 601-2 luma in 16.16 fixed point.
#[inline]
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471 + 0x8000) >> 16) as u8
}

/// `convert('L')` of an RGB image: ITU-R 601-2 luma in 16.16 fixed point,
/// `(19595·R + 38470·G + 7471·B + 0x8000) >> 16`. An `L` image is returned unchanged.
pub fn rgb_to_l(img: &Image) -> Image {
    if img.channels() == 1 {
        return img.clone();
    }
    let data = img
        .data()
        .chunks_exact(img.channels())
        .map(|p| luma(p[0], p[1], p[2]))
        .collect();
    Image::from_raw(img.width(), img.height(), 1, data).unwrap_or_else(|| img.clone())
}

/// `convert('RGB')` of an `L` image: the value in every channel.
pub fn l_to_rgb(img: &Image) -> Image {
    if img.channels() != 1 {
        return img.clone();
    }
    let data = img.data().iter().flat_map(|&v| [v, v, v]).collect();
    Image::from_raw(img.width(), img.height(), 3, data).unwrap_or_else(|| img.clone())
}

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
    let sum = if c == 3 {
        luma_sum_rgb(img.data())
    } else {
        img.data()
            .chunks_exact(c)
            .map(|p| u64::from(luma(p[0], p[1], p[2])))
            .sum()
    };
    sum as f64 / n as f64
}

/// The sum of the lumas of the RGB pixels of `data` (exact: 32-bit partial sums over blocks
/// small enough not to overflow).
#[inline(always)]
fn luma_sum_rgb_impl(data: &[u8]) -> u64 {
    data.chunks(3 * 4096)
        .map(|block| {
            let s: u32 = block
                .chunks_exact(3)
                .map(|p| u32::from(luma(p[0], p[1], p[2])))
                .sum();
            u64::from(s)
        })
        .sum()
}

kernels::avx2_dispatch! {
    fn luma_sum_rgb(data: &[u8]) -> u64 => luma_sum_rgb_impl
}

/// `x ≥ 1 ? x − 1 : x`: C's `fmod(x, 1.0)` for `0 ≤ x < 2` (both exact), without the libm
/// call.
#[inline]
fn frac_below_2(x: f64) -> f64 {
    if x >= 1.0 {
        x - 1.0
    } else {
        x
    }
}

/// 2⁵²: adding it to a double in `[0, 2⁵¹)` rounds it to an integer (to nearest, ties to
/// even), as the unit in the last place of the sum is 1.
const ROUNDING: f64 = 4_503_599_627_370_496.0;

/// A double holding an integer in `0..=255`, as a `u8`: the integer is the low bits of the
/// mantissa of `x + 2⁵²`. Unlike an `as` cast (saturating, so a few instructions per value),
/// this vectorises.
#[inline(always)]
fn small_int_to_u8(x: f64) -> u8 {
    (x + ROUNDING).to_bits() as u8
}

/// `floor(x)` for `0 ≤ x < 2⁵¹`, without libm's `floor` (a call, on the baseline target).
#[inline(always)]
fn floor_nonneg(x: f64) -> f64 {
    let n = (x + ROUNDING) - ROUNDING;
    if n > x {
        n - 1.0
    } else {
        n
    }
}

/// `CLIP8(round(x))`, with C's `round` (half away from zero), for any `x` that is not NaN:
/// clipping to the integer bounds first gives the same value. The sum with 2⁵² rounds to
/// nearest with ties to even, and an exact tie it rounded down is moved up. No libm call and
/// no `as` cast, so loops over it vectorise.
#[inline(always)]
fn round_clip8(x: f64) -> u8 {
    let x = x.clamp(0.0, 255.0);
    let n = (x + ROUNDING) - ROUNDING;
    let n = if x - n == 0.5 { n + 1.0 } else { n };
    small_int_to_u8(n)
}

/// `rgb2hsv_row`, following `colorsys.py`, with Pillow's float/double mix: the direct
/// formula, which builds the [`HsvTables`].
fn rgb_to_hsv_px_direct(r: u8, g: u8, b: u8) -> [u8; 3] {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    if minc == maxc {
        return [0, 0, maxc];
    }
    let cr = f32::from(maxc - minc);
    let s = cr / f32::from(maxc);
    let rc = f32::from(maxc - r) / cr;
    let gc = f32::from(maxc - g) / cr;
    let bc = f32::from(maxc - b) / cr;
    let h: f32 = if r == maxc {
        bc - gc
    } else if g == maxc {
        (2.0 + f64::from(rc) - f64::from(bc)) as f32
    } else {
        (4.0 + f64::from(gc) - f64::from(rc)) as f32
    };
    // `fmod(h / 6.0 + 1.0, 1.0)` on doubles: `-1 ≤ h < 5`, so the argument is in [5/6, 2).
    let h = frac_below_2(f64::from(h) / 6.0 + 1.0) as f32;
    let uh = clip8((f64::from(h) * 255.0) as i32);
    let us = clip8((f64::from(s) * 255.0) as i32);
    [uh, us, maxc]
}

/// Lookup tables for `rgb2hsv`, built once from the direct formula (so exact by
/// construction). Per pixel, Pillow's `rgb2hsv` costs four float divisions, a double one and
/// unpredictable branches; the tables leave a few loads.
///
/// - The hue depends only on which channel is the maximum (the first one, R before G before
///   B, on ties) and on the other two channels' distances to it: every quotient is
///   `(max − channel) / (max − min)`. So `hue[m][dx][dy]`, where `m` is the maximum's
///   position and `dx`, `dy` the distances of the other two channels in R, G, B order, holds
///   the hue byte of the pixel with maximum 255 and those distances.
/// - The saturation depends on `(max, max − min)`: `sat[max][max − min]`.
struct HsvTables {
    hue: Vec<u8>,
    sat: Vec<u8>,
}

impl HsvTables {
    fn get() -> &'static HsvTables {
        static TABLES: std::sync::OnceLock<HsvTables> = std::sync::OnceLock::new();
        TABLES.get_or_init(HsvTables::build)
    }

    fn build() -> HsvTables {
        let mut hue = vec![0u8; 3 << 16];
        for m in 0..3 {
            for dx in 0..=255u8 {
                for dy in 0..=255u8 {
                    // The channels other than the maximum, in R, G, B order.
                    let (x, y) = (255 - dx, 255 - dy);
                    let px = match m {
                        0 => [255, x, y],
                        1 => [x, 255, y],
                        _ => [x, y, 255],
                    };
                    hue[(m << 16) | (usize::from(dx) << 8) | usize::from(dy)] =
                        rgb_to_hsv_px_direct(px[0], px[1], px[2])[0];
                }
            }
        }
        let mut sat = vec![0u8; 1 << 16];
        for maxc in 1..=255u8 {
            for cr in 1..=maxc {
                sat[(usize::from(maxc) << 8) | usize::from(cr)] =
                    rgb_to_hsv_px_direct(maxc, maxc - cr, maxc - cr)[1];
            }
        }
        HsvTables { hue, sat }
    }

    /// `rgb2hsv` of one pixel, from the tables.
    #[inline]
    fn rgb_to_hsv(&self, r: u8, g: u8, b: u8) -> [u8; 3] {
        let maxc = r.max(g).max(b);
        let minc = r.min(g).min(b);
        if minc == maxc {
            return [0, 0, maxc];
        }
        let (m, x, y) = if r == maxc {
            (0, g, b)
        } else if g == maxc {
            (1, r, b)
        } else {
            (2, r, g)
        };
        let key = (m << 16) | (usize::from(maxc - x) << 8) | usize::from(maxc - y);
        let uh = self.hue[key];
        let us = self.sat[(usize::from(maxc) << 8) | usize::from(maxc - minc)];
        [uh, us, maxc]
    }
}

/// Pixels per block of [`hsv_to_rgb_block`].
const HSV_BLOCK: usize = 64;

/// `hsv2rgb` of [`HSV_BLOCK`] pixels given as separate H, S and V arrays: Pillow's
/// float/double mix and C's `round` (half away from zero), then the sector's permutation.
///
/// The arithmetic runs branch-free over the whole block, so that it vectorises; the sector
/// picks which of `v`, `t`, `p`, `q` go to R, G and B through a table rather than a jump
/// (which would mispredict wherever neighbouring hues fall in different sectors). Pillow's
/// `s == 0` case needs no branch either: then `fs = 0` and `p = q = t = v`.
#[inline(always)]
fn hsv_to_rgb_block_impl(
    h: &[u8; HSV_BLOCK],
    s: &[u8; HSV_BLOCK],
    v: &[u8; HSV_BLOCK],
    out: &mut [[u8; 3]; HSV_BLOCK],
) {
    // Indices into (v, t, p, q) for R, G, B, by sector (`hsv2rgb`'s switch).
    const ORDER: [[usize; 3]; 6] = [
        [0, 1, 2],
        [3, 0, 2],
        [2, 0, 1],
        [2, 3, 0],
        [1, 2, 0],
        [0, 2, 3],
    ];
    let mut sector = [0u8; HSV_BLOCK];
    let mut tpq = [[0u8; 3]; HSV_BLOCK];
    for k in 0..HSV_BLOCK {
        // `i = floor(h·6/255)`, a value in 0..=6.
        let hh = f64::from(h[k]) * 6.0 / 255.0;
        let i = floor_nonneg(hh);
        let f = (hh - i) as f32;
        let fs = (f64::from(s[k]) / 255.0) as f32;
        let vv = f64::from(v[k]);
        let p = round_clip8(vv * (1.0 - f64::from(fs)));
        let q = round_clip8(vv * (1.0 - f64::from(fs * f)));
        let t = round_clip8(vv * (1.0 - f64::from(fs) * (1.0 - f64::from(f))));
        tpq[k] = [t, p, q];
        // `i % 6`.
        let i = small_int_to_u8(i);
        sector[k] = if i == 6 { 0 } else { i };
    }
    for k in 0..HSV_BLOCK {
        let [t, p, q] = tpq[k];
        let vals = [v[k], t, p, q];
        let [a, b, c] = ORDER[usize::from(sector[k]).min(5)];
        out[k] = [vals[a], vals[b], vals[c]];
    }
}

kernels::avx2_dispatch! {
    fn hsv_to_rgb_block(
        h: &[u8; HSV_BLOCK],
        s: &[u8; HSV_BLOCK],
        v: &[u8; HSV_BLOCK],
        out: &mut [[u8; 3]; HSV_BLOCK],
    ) => hsv_to_rgb_block_impl
}

/// `rgb2hsv_row` of one pixel (see [`HsvTables`]).
#[cfg(test)]
fn rgb_to_hsv_px(r: u8, g: u8, b: u8) -> [u8; 3] {
    HsvTables::get().rgb_to_hsv(r, g, b)
}

/// `hsv2rgb` of one pixel (see [`hsv_to_rgb_block`]).
#[cfg(test)]
fn hsv_to_rgb_px(h: u8, s: u8, v: u8) -> [u8; 3] {
    let mut out = [[0; 3]; HSV_BLOCK];
    hsv_to_rgb_block(&[h; HSV_BLOCK], &[s; HSV_BLOCK], &[v; HSV_BLOCK], &mut out);
    out[0]
}

/// Converts the 3-byte pixels of `data` in place, [`HSV_BLOCK`] at a time: `to_hsv` gives
/// each pixel's H, S, V, then [`hsv_to_rgb_block`] converts the block back to RGB.
fn hsv_round_trip(data: &mut [u8], mut to_hsv: impl FnMut(&[u8]) -> [u8; 3]) {
    let (mut h, mut s, mut v) = ([0u8; HSV_BLOCK], [0u8; HSV_BLOCK], [0u8; HSV_BLOCK]);
    let mut rgb = [[0u8; 3]; HSV_BLOCK];
    for block in data.chunks_mut(3 * HSV_BLOCK) {
        // A short last block leaves stale values past its end: converted, never written.
        for (k, px) in block.chunks_exact(3).enumerate() {
            [h[k], s[k], v[k]] = to_hsv(px);
        }
        hsv_to_rgb_block(&h, &s, &v, &mut rgb);
        for (px, new) in block.chunks_exact_mut(3).zip(&rgb) {
            px.copy_from_slice(new);
        }
    }
}

/// `convert('HSV')` of an RGB image: a 3-channel image holding H, S, V (each `0..=255`).
pub fn rgb_to_hsv(img: &Image) -> Image {
    debug_assert_eq!(img.channels(), 3);
    let tables = HsvTables::get();
    let mut out = img.clone();
    for p in out.data_mut().chunks_exact_mut(3) {
        let hsv = tables.rgb_to_hsv(p[0], p[1], p[2]);
        p.copy_from_slice(&hsv);
    }
    out
}

/// `convert('RGB')` of an HSV image (as returned by [`rgb_to_hsv`]).
pub fn hsv_to_rgb(img: &Image) -> Image {
    debug_assert_eq!(img.channels(), 3);
    let mut out = img.clone();
    hsv_round_trip(out.data_mut(), |p| [p[0], p[1], p[2]]);
    out
}

/// `convert('HSV')`, `H += shift` (modulo 256), `convert('RGB')` of an RGB image, in place,
/// block by block (no intermediate HSV image): the same bytes as
/// `hsv_to_rgb(&shifted(rgb_to_hsv(img)))`.
pub fn shift_hue_in_place(img: &mut Image, shift: u8) {
    debug_assert_eq!(img.channels(), 3);
    let tables = HsvTables::get();
    hsv_round_trip(img.data_mut(), |p| {
        let [h, s, v] = tables.rgb_to_hsv(p[0], p[1], p[2]);
        [h.wrapping_add(shift), s, v]
    });
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
    let mean = if mean.is_finite() {
        (mean + 0.5) as u8
    } else {
        0
    };
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
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The straightforward ports these functions replaced: libm's `fmod`, `round` and `floor`,
    /// Pillow's explicit clipping, and enhancers built from whole degenerate images.
    mod reference {
        use super::super::{clip8, l_to_rgb, mean_l, rgb_to_l, Image};

        pub fn blend(im1: &Image, im2: &Image, alpha: f32) -> Image {
            if alpha == 0.0 {
                return im1.clone();
            }
            if alpha == 1.0 {
                return im2.clone();
            }
            let interpolate = (0.0..=1.0).contains(&alpha);
            let data = im1
                .data()
                .iter()
                .zip(im2.data())
                .map(|(&a, &b)| {
                    let t = f32::from(a) + alpha * (i32::from(b) - i32::from(a)) as f32;
                    if interpolate {
                        t as u8
                    } else if t <= 0.0 {
                        0
                    } else if t >= 255.0 {
                        255
                    } else {
                        t as u8
                    }
                })
                .collect();
            Image::from_raw(im1.width(), im1.height(), im1.channels(), data).unwrap()
        }

        pub fn rgb_to_hsv_px(r: u8, g: u8, b: u8) -> [u8; 3] {
            let maxc = r.max(g).max(b);
            let minc = r.min(g).min(b);
            if minc == maxc {
                return [0, 0, maxc];
            }
            let cr = f32::from(maxc - minc);
            let s = cr / f32::from(maxc);
            let rc = f32::from(maxc - r) / cr;
            let gc = f32::from(maxc - g) / cr;
            let bc = f32::from(maxc - b) / cr;
            let h: f32 = if r == maxc {
                bc - gc
            } else if g == maxc {
                (2.0 + f64::from(rc) - f64::from(bc)) as f32
            } else {
                (4.0 + f64::from(gc) - f64::from(rc)) as f32
            };
            let h = ((f64::from(h) / 6.0 + 1.0) % 1.0) as f32;
            let uh = clip8((f64::from(h) * 255.0) as i32);
            let us = clip8((f64::from(s) * 255.0) as i32);
            [uh, us, maxc]
        }

        pub fn hsv_to_rgb_px(h: u8, s: u8, v: u8) -> [u8; 3] {
            if s == 0 {
                return [v, v, v];
            }
            let hh = f64::from(h) * 6.0 / 255.0;
            let i = hh.floor() as i32;
            let f = (hh - f64::from(i as f32)) as f32;
            let fs = (f64::from(s) / 255.0) as f32;
            let vv = f64::from(v);
            let p = (vv * (1.0 - f64::from(fs))).round() as i32;
            let q = (vv * (1.0 - f64::from(fs * f))).round() as i32;
            let t = (vv * (1.0 - f64::from(fs) * (1.0 - f64::from(f)))).round() as i32;
            let (up, uq, ut) = (clip8(p), clip8(q), clip8(t));
            match i % 6 {
                0 => [v, ut, up],
                1 => [uq, v, up],
                2 => [up, v, ut],
                3 => [up, uq, v],
                4 => [ut, up, v],
                _ => [v, up, uq],
            }
        }

        fn map_px(img: &Image, f: fn(u8, u8, u8) -> [u8; 3]) -> Image {
            let data = img
                .data()
                .chunks_exact(3)
                .flat_map(|p| f(p[0], p[1], p[2]))
                .collect();
            Image::from_raw(img.width(), img.height(), 3, data).unwrap()
        }

        pub fn shift_hue(img: &Image, shift: u8) -> Image {
            let mut hsv = map_px(img, rgb_to_hsv_px);
            for px in hsv.data_mut().chunks_exact_mut(3) {
                px[0] = px[0].wrapping_add(shift);
            }
            map_px(&hsv, hsv_to_rgb_px)
        }

        fn in_mode_of(degenerate_l: Image, like: &Image) -> Image {
            if like.channels() == 1 {
                degenerate_l
            } else {
                l_to_rgb(&degenerate_l)
            }
        }

        pub fn enhance_brightness(img: &Image, factor: f64) -> Image {
            let black = Image::filled(img.width(), img.height(), &vec![0; img.channels()]);
            blend(&black, img, factor as f32)
        }

        pub fn enhance_contrast(img: &Image, factor: f64) -> Image {
            let mean = mean_l(&rgb_to_l(img));
            let mean = if mean.is_finite() {
                (mean + 0.5) as u8
            } else {
                0
            };
            let grey = Image::filled(img.width(), img.height(), &[mean]);
            blend(&in_mode_of(grey, img), img, factor as f32)
        }

        pub fn enhance_color(img: &Image, factor: f64) -> Image {
            if img.channels() == 1 {
                return blend(img, img, factor as f32);
            }
            blend(&l_to_rgb(&rgb_to_l(img)), img, factor as f32)
        }
    }

    fn random_image(rng: &mut ChaCha8Rng, channels: usize) -> Image {
        let (w, h) = (rng.random_range(1..40), rng.random_range(1..30));
        // Half the images are low-contrast (values close together, many greys and ties).
        let (lo, hi) = if rng.random_bool(0.5) {
            (0u8, 255u8)
        } else {
            let lo = rng.random_range(0..=250u8);
            (lo, lo + 5)
        };
        let data = (0..w * h * channels)
            .map(|_| rng.random_range(lo..=hi))
            .collect();
        Image::from_raw(w, h, channels, data).unwrap()
    }

    /// Every 24-bit colour, in both directions, against the libm-based reference; HSV → RGB
    /// in both builds of the block kernel (AVX2 where available, and the baseline).
    #[test]
    fn hsv_pixels_match_the_reference_for_every_value() {
        let mut out = [[0u8; 3]; HSV_BLOCK];
        let mut out_baseline = [[0u8; 3]; HSV_BLOCK];
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for c in 0..=255u8 {
                    assert_eq!(
                        rgb_to_hsv_px(a, b, c),
                        reference::rgb_to_hsv_px(a, b, c),
                        "rgb {a} {b} {c}"
                    );
                }
                for c0 in (0..256).step_by(HSV_BLOCK) {
                    let v: [u8; HSV_BLOCK] = std::array::from_fn(|k| (c0 + k) as u8);
                    hsv_to_rgb_block(&[a; HSV_BLOCK], &[b; HSV_BLOCK], &v, &mut out);
                    hsv_to_rgb_block_impl(&[a; HSV_BLOCK], &[b; HSV_BLOCK], &v, &mut out_baseline);
                    for k in 0..HSV_BLOCK {
                        let want = reference::hsv_to_rgb_px(a, b, v[k]);
                        assert_eq!(out[k], want, "hsv {a} {b} {}", v[k]);
                        assert_eq!(out_baseline[k], want, "hsv {a} {b} {} (baseline)", v[k]);
                    }
                }
            }
        }
    }

    #[test]
    fn fused_hue_shift_matches_the_hsv_round_trip() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..200 {
            let img = random_image(&mut rng, 3);
            for shift in [0u8, 1, 25, 127, 128, 129, 231, 255, rng.random()] {
                let mut got = img.clone();
                shift_hue_in_place(&mut got, shift);
                assert_eq!(got, reference::shift_hue(&img, shift), "shift {shift}");
            }
        }
    }

    #[test]
    fn blend_matches_the_clipping_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for _ in 0..100 {
            let a = random_image(&mut rng, 3);
            let b = Image::from_raw(
                a.width(),
                a.height(),
                3,
                (0..a.data().len()).map(|_| rng.random()).collect(),
            )
            .unwrap();
            for alpha in [
                0.0f32,
                1.0,
                0.5,
                -0.3,
                1.7,
                3.0,
                -2.0,
                f32::NAN,
                rng.random(),
            ] {
                assert_eq!(
                    blend(&a, &b, alpha),
                    reference::blend(&a, &b, alpha),
                    "{alpha}"
                );
            }
        }
    }

    /// Every byte pair, for alphas inside, outside and at the edges of [0, 1], against
    /// Pillow's explicit clip-then-truncate.
    #[test]
    fn blend_px_is_pillows_clip_and_truncate() {
        let alphas = [
            0.0f32,
            1.0,
            0.5,
            0.2,
            1.8,
            -0.3,
            7.5,
            -1e30,
            1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1.0 / 3.0,
            0.999_999_9,
        ];
        for alpha in alphas {
            for a in 0..=255u8 {
                for b in 0..=255u8 {
                    let t = f32::from(a) + alpha * (i32::from(b) - i32::from(a)) as f32;
                    let want = if t <= 0.0 {
                        0
                    } else if t >= 255.0 {
                        255
                    } else {
                        t as u8
                    };
                    assert_eq!(blend_px(a, b, alpha), want, "{a} {b} {alpha}");
                }
            }
        }
    }

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
            let want: u64 = data
                .chunks_exact(3)
                .map(|p| u64::from(luma(p[0], p[1], p[2])))
                .sum();
            assert_eq!(luma_sum_rgb(&data), want);
            assert_eq!(luma_sum_rgb_impl(&data), want);
        }
    }

    #[test]
    fn in_place_enhancers_match_blends_with_degenerate_images() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for i in 0..300 {
            let img = random_image(&mut rng, if i % 4 == 0 { 1 } else { 3 });
            let factors = [
                0.0,
                1.0,
                0.2,
                1.8,
                2.5,
                -0.5,
                rng.random_range(0.0..2.0),
                rng.random_range(0.0..2.0),
            ];
            for f in factors {
                assert_eq!(
                    enhance_brightness(&img, f),
                    reference::enhance_brightness(&img, f),
                    "brightness {f}"
                );
                assert_eq!(
                    enhance_contrast(&img, f),
                    reference::enhance_contrast(&img, f),
                    "contrast {f}"
                );
                assert_eq!(
                    enhance_color(&img, f),
                    reference::enhance_color(&img, f),
                    "color {f}"
                );
            }
        }
    }

    #[test]
    fn hsv_round_trip_of_primaries_and_greys() {
        for (rgb, hsv) in [
            ([255u8, 0, 0], [0u8, 255, 255]),
            ([0, 255, 0], [85, 255, 255]),
            ([0, 0, 255], [170, 255, 255]),
            ([7, 7, 7], [0, 0, 7]),
        ] {
            assert_eq!(rgb_to_hsv_px(rgb[0], rgb[1], rgb[2]), hsv, "{rgb:?}");
            assert_eq!(hsv_to_rgb_px(hsv[0], hsv[1], hsv[2]), rgb, "{hsv:?}");
        }
    }

    #[test]
    fn blend_truncates_and_clips() {
        let a = Image::filled(1, 1, &[10, 200, 0]);
        let b = Image::filled(1, 1, &[20, 100, 255]);
        // 10 + 0.25·10 = 12.5 → 12; 200 − 25 = 175; 63.75 → 63.
        assert_eq!(blend(&a, &b, 0.25).data(), &[12, 175, 63]);
        // Extrapolation: 10 + 3·10 = 40; 200 − 300 < 0 → 0; 765 → 255.
        assert_eq!(blend(&a, &b, 3.0).data(), &[40, 0, 255]);
    }

    #[test]
    fn luma_is_fixed_point() {
        let img = Image::filled(1, 1, &[255, 255, 255]);
        assert_eq!(rgb_to_l(&img).data(), &[255]);
        let img = Image::filled(1, 1, &[100, 50, 200]);
        // (1959500 + 1923500 + 1494200 + 32768) >> 16 = 82.
        assert_eq!(rgb_to_l(&img).data(), &[82]);
    }
}
