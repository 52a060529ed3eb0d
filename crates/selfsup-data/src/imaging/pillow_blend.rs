//! Pillow's `Image.blend` for 8-bit images, bit-exact: port of
//! `Pillow/src/libImaging/Blend.c` (`ImagingBlend`), which mmcv's
//! `adjust_brightness`, `adjust_contrast` and `adjust_color` reach through
//! `PIL.ImageEnhance` ([`pillow_enhance`](super::pillow_enhance)). The C code
//! computes in `float` (`f32` here), so that the truncations land on the same
//! side.

use super::{kernels, Image};

/// `Image.blend` for one byte: `a + alpha · (b − a)` in `f32`, truncated, and clipped to
/// `0..=255` (Pillow clips only when `alpha` is outside `[0, 1]`, where the value can leave
/// that range; inside, clipping is a no-op). See [`trunc_clip8`].
#[inline(always)]
pub(super) fn blend_px(a: u8, b: u8, alpha: f32) -> u8 {
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
pub(super) fn blend_uniform_impl(data: &mut [u8], a: u8, alpha: f32) {
    for v in data {
        *v = blend_px(a, *v, alpha);
    }
}

kernels::avx2_dispatch! {
    pub(super) fn blend_uniform(data: &mut [u8], a: u8, alpha: f32) => blend_uniform_impl
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
    let data = im1.data().iter().zip(im2.data()).map(|(&a, &b)| blend_px(a, b, alpha)).collect();
    Image::from_raw(im1.width(), im1.height(), im1.channels(), data).unwrap_or_else(|| im1.clone())
}

#[cfg(test)]
mod tests {
    use super::super::pillow_reference::{self as reference, random_image};
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn blend_matches_the_clipping_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for _ in 0..100 {
            let a = random_image(&mut rng, 3);
            let b = Image::from_raw(a.width(), a.height(), 3, (0..a.data().len()).map(|_| rng.random()).collect()).unwrap();
            for alpha in [0.0f32, 1.0, 0.5, -0.3, 1.7, 3.0, -2.0, f32::NAN, rng.random()] {
                assert_eq!(blend(&a, &b, alpha), reference::blend(&a, &b, alpha), "{alpha}");
            }
        }
    }

    /// Every byte pair, for alphas inside, outside and at the edges of [0, 1], against
    /// Pillow's explicit clip-then-truncate.
    #[test]
    fn blend_px_is_pillows_clip_and_truncate() {
        let alphas =
            [0.0f32, 1.0, 0.5, 0.2, 1.8, -0.3, 7.5, -1e30, 1e30, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1.0 / 3.0, 0.999_999_9];
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

    #[test]
    fn blend_truncates_and_clips() {
        let a = Image::filled(1, 1, &[10, 200, 0]);
        let b = Image::filled(1, 1, &[20, 100, 255]);
        // 10 + 0.25·10 = 12.5 → 12; 200 − 25 = 175; 63.75 → 63.
        assert_eq!(blend(&a, &b, 0.25).data(), &[12, 175, 63]);
        // Extrapolation: 10 + 3·10 = 40; 200 − 300 < 0 → 0; 765 → 255.
        assert_eq!(blend(&a, &b, 3.0).data(), &[40, 0, 255]);
    }
}
