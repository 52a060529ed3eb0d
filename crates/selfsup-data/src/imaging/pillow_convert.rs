//! Pillow's colour conversions for 8-bit images, bit-exact: `RGB ↔ L` and `RGB ↔ HSV`.
//!
//! Port of `Pillow/src/libImaging/Convert.c` (`rgb2l`, `l2rgb`, `rgb2hsv_row`, `hsv2rgb`),
//! which mmcv's `adjust_hue` and `adjust_color` (`backend='pillow'`) reach. The C code mixes
//! `float` and `double` arithmetic; the port keeps each operation in the same precision (`f32`
//! for `float`, `f64` for `double`) so that the truncations land on the same side.
//!
//! Images are RGB (3 channels) or `L` (1 channel); [`rgb_to_hsv`] returns a 3-channel image
//! holding H, S, V.

use super::{kernels, Image};

/// `CLIP8`: clamps to `0..=255`.
pub(super) fn clip8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// `rgb2l`: ITU-R 601-2 luma in 16.16 fixed point.
#[inline]
pub(super) fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471 + 0x8000) >> 16) as u8
}

/// `convert('L')` of an RGB image: ITU-R 601-2 luma in 16.16 fixed point,
/// `(19595·R + 38470·G + 7471·B + 0x8000) >> 16`. An `L` image is returned unchanged.
pub fn rgb_to_l(img: &Image) -> Image {
    if img.channels() == 1 {
        return img.clone();
    }
    let data = img.data().chunks_exact(img.channels()).map(|p| luma(p[0], p[1], p[2])).collect();
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
                    hue[(m << 16) | (usize::from(dx) << 8) | usize::from(dy)] = rgb_to_hsv_px_direct(px[0], px[1], px[2])[0];
                }
            }
        }
        let mut sat = vec![0u8; 1 << 16];
        for maxc in 1..=255u8 {
            for cr in 1..=maxc {
                sat[(usize::from(maxc) << 8) | usize::from(cr)] = rgb_to_hsv_px_direct(maxc, maxc - cr, maxc - cr)[1];
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
fn hsv_to_rgb_block_impl(h: &[u8; HSV_BLOCK], s: &[u8; HSV_BLOCK], v: &[u8; HSV_BLOCK], out: &mut [[u8; 3]; HSV_BLOCK]) {
    // Indices into (v, t, p, q) for R, G, B, by sector (`hsv2rgb`'s switch).
    const ORDER: [[usize; 3]; 6] = [[0, 1, 2], [3, 0, 2], [2, 0, 1], [2, 3, 0], [1, 2, 0], [0, 2, 3]];
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

#[cfg(test)]
mod tests {
    use super::super::pillow_reference::{self as reference, random_image};
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Every 24-bit colour, in both directions, against the libm-based reference; HSV → RGB
    /// in both builds of the block kernel (AVX2 where available, and the baseline).
    #[test]
    fn hsv_pixels_match_the_reference_for_every_value() {
        let mut out = [[0u8; 3]; HSV_BLOCK];
        let mut out_baseline = [[0u8; 3]; HSV_BLOCK];
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for c in 0..=255u8 {
                    assert_eq!(rgb_to_hsv_px(a, b, c), reference::rgb_to_hsv_px(a, b, c), "rgb {a} {b} {c}");
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
    fn hsv_round_trip_of_primaries_and_greys() {
        for (rgb, hsv) in
            [([255u8, 0, 0], [0u8, 255, 255]), ([0, 255, 0], [85, 255, 255]), ([0, 0, 255], [170, 255, 255]), ([7, 7, 7], [0, 0, 7])]
        {
            assert_eq!(rgb_to_hsv_px(rgb[0], rgb[1], rgb[2]), hsv, "{rgb:?}");
            assert_eq!(hsv_to_rgb_px(hsv[0], hsv[1], hsv[2]), rgb, "{hsv:?}");
        }
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
