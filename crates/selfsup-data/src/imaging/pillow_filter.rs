//! Pillow's `ImageFilter.GaussianBlur` and `ImageFilter.BoxBlur` for 8-bit images, bit-exact.
//!
//! Port of `Pillow/src/libImaging/BoxBlur.c` (`ImagingGaussianBlur`, `_gaussian_blur_radius`,
//! `ImagingBoxBlur`, `ImagingHorizontalBoxBlur`, `ImagingLineBoxBlur8/32`). Pillow does not
//! convolve with a Gaussian kernel: it runs three passes of an *extended* box filter (a box
//! with fractional radius, Gwosdek et al. 2011) whose variance equals `σ²`, horizontally then
//! vertically, in 8.24 fixed point with the edge pixels repeated. The box radius is computed
//! in C `float`, as here.
//!
//! MMSelfSup's `RandomGaussianBlur` calls `img.filter(ImageFilter.GaussianBlur(radius=σ))`.

use super::{kernels, Image};

/// `ImageFilter.GaussianBlur(radius=sigma)` applied to `img` (any number of channels, each
/// blurred independently). `sigma == 0` returns a copy, as Pillow does.
pub fn gaussian_blur(img: &Image, sigma: f64) -> Image {
    if sigma == 0.0 {
        return img.clone();
    }
    // `PyArg_ParseTuple("(ff)")`: the radius becomes a C float.
    let r = gaussian_blur_radius(sigma as f32, 3);
    box_blur(img, r, r, 3)
}

/// `_gaussian_blur_radius`: the extended-box radius whose `passes`-fold repetition has the
/// variance of a Gaussian of standard deviation `radius`.
pub fn gaussian_blur_radius(radius: f32, passes: u32) -> f32 {
    let sigma2: f32 = radius * radius / passes as f32;
    // Box length, then its integer and fractional radius ([7], [11], [14] of the paper).
    let big_l = (12.0 * f64::from(sigma2) + 1.0).sqrt() as f32;
    let l = ((f64::from(big_l) - 1.0) / 2.0).floor() as f32;
    let mut a: f32 = (2.0 * l + 1.0) * (l * (l + 1.0) - 3.0 * sigma2);
    a /= 6.0 * (sigma2 - (l + 1.0) * (l + 1.0));
    l + a
}

/// `ImagingBoxBlur(xradius, yradius, n)`: `n` horizontal passes of the extended box of radius
/// `xradius`, then `n` vertical passes with `yradius` (a radius of 0 skips that direction).
/// Negative radii are treated as 0.
///
/// Pillow runs every pass along rows (transposing the image for the vertical ones). Here
/// every pass runs along columns instead ([`vertical_pass`]: all the columns of a row at
/// once, which vectorises), and the horizontal passes run on the transposed image. The
/// passes and their rounding are the same, in the same order, so the output is the same.
pub fn box_blur(img: &Image, xradius: f32, yradius: f32, n: usize) -> Image {
    if img.is_empty() || n == 0 {
        return img.clone();
    }
    let (w, h, c) = (img.width(), img.height(), img.channels());
    let mut cur = img.data().to_vec();
    let mut tmp = vec![0u8; cur.len()];
    if xradius > 0.0 {
        // `w` rows of `h` pixels; column passes on it are row passes on the image.
        kernels::transpose(&cur, w * c, w, h, c, &mut tmp);
        for _ in 0..n {
            vertical_pass(&tmp, &mut cur, h * c, xradius);
            std::mem::swap(&mut cur, &mut tmp);
        }
        kernels::transpose(&tmp, h * c, h, w, c, &mut cur);
    }
    if yradius > 0.0 {
        for _ in 0..n {
            vertical_pass(&cur, &mut tmp, w * c, yradius);
            std::mem::swap(&mut cur, &mut tmp);
        }
    }
    Image::from_raw(w, h, c, cur).unwrap_or_else(|| img.clone())
}

/// One pass of `ImagingLineBoxBlur8` down every column of `src` (rows of `row_len` bytes,
/// channels interleaved: each byte is its own column) into `dst`.
///
/// Pillow's line blur, for output `y` with integer radius `r`: the accumulator is the sum of
/// the inputs `y − r ..= y + r`, updated by adding input `y + r` and subtracting `y − r − 1`;
/// the output is `(acc · ww + (in[y − r − 1] + in[y + r + 1]) · fw + 2²³) >> 24` in wrapping
/// 8.24 fixed point, where `ww` weighs the whole box and `fw` its two fractional ends.
/// Indices outside the line read its first or last value: Pillow's three loops (left edge,
/// middle, right edge), and its start-up sum, are exactly this clamping.
#[inline(always)]
fn vertical_pass_impl(src: &[u8], dst: &mut [u8], row_len: usize, float_radius: f32) {
    let rows = src.len() / row_len;
    let last = rows - 1;
    let radius = float_radius as usize;
    // `(UINT32)(1 << 24) / (floatRadius * 2 + 1)`: a float division, truncated.
    let ww = (16_777_216.0_f32 / (float_radius * 2.0 + 1.0)) as u32;
    let fw = (1u32 << 24).wrapping_sub(((radius * 2 + 1) as u32).wrapping_mul(ww)) / 2;
    let row = |y: usize| &src[y * row_len..(y + 1) * row_len];

    // The accumulator of output -1, as Pillow starts it: the first value `radius + 1` times,
    // then values 0 .. radius - 1, the last value repeating past the end.
    let edge_a = (radius + 1).min(rows);
    let mut acc: Vec<u32> = row(0).iter().map(|&v| u32::from(v).wrapping_mul((radius + 1) as u32)).collect();
    for y in 0..edge_a - 1 {
        for (a, &v) in acc.iter_mut().zip(row(y)) {
            *a = a.wrapping_add(u32::from(v));
        }
    }
    let repeats = (radius + 1 - edge_a) as u32;
    if repeats > 0 {
        for (a, &v) in acc.iter_mut().zip(row(last)) {
            *a = a.wrapping_add(u32::from(v).wrapping_mul(repeats));
        }
    }

    for (y, out) in dst.chunks_exact_mut(row_len).enumerate() {
        let sub = row(y.saturating_sub(radius + 1));
        let add = row((y + radius).min(last));
        let right = row((y + radius + 1).min(last));
        for ((((a, o), &ad), &sb), &rt) in acc.iter_mut().zip(out).zip(add).zip(sub).zip(right) {
            *a = a.wrapping_add(u32::from(ad)).wrapping_sub(u32::from(sb));
            let bulk = a.wrapping_mul(ww).wrapping_add((u32::from(sb) + u32::from(rt)).wrapping_mul(fw));
            *o = (bulk.wrapping_add(1 << 23) >> 24) as u8;
        }
    }
}

kernels::avx2_dispatch! {
    fn vertical_pass(src: &[u8], dst: &mut [u8], row_len: usize, float_radius: f32)
        => vertical_pass_impl
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The straightforward port of `BoxBlur.c` this module replaced: row passes, one channel
    /// at a time, Pillow's three loops, the image transposed for the vertical passes.
    mod reference {
        use super::super::Image;

        pub fn box_blur(img: &Image, xradius: f32, yradius: f32, n: usize) -> Image {
            let mut out = img.clone();
            if xradius > 0.0 {
                for _ in 0..n {
                    out = horizontal_box_blur(&out, xradius);
                }
            }
            if yradius > 0.0 {
                let mut t = transpose(&out);
                for _ in 0..n {
                    t = horizontal_box_blur(&t, yradius);
                }
                out = transpose(&t);
            }
            out
        }

        fn transpose(img: &Image) -> Image {
            let (w, h, c) = (img.width(), img.height(), img.channels());
            let src = img.data();
            let mut data = vec![0u8; src.len()];
            for y in 0..h {
                for x in 0..w {
                    let s = (y * w + x) * c;
                    let d = (x * h + y) * c;
                    data[d..d + c].copy_from_slice(&src[s..s + c]);
                }
            }
            Image::from_raw(h, w, c, data).unwrap()
        }

        fn horizontal_box_blur(img: &Image, float_radius: f32) -> Image {
            let (w, c) = (img.width(), img.channels());
            let radius = float_radius as i64;
            let ww = (16_777_216.0_f32 / (float_radius * 2.0 + 1.0)) as u32;
            let fw = (1u32 << 24).wrapping_sub(((radius * 2 + 1) as u32).wrapping_mul(ww)) / 2;
            let edge_a = (radius + 1).min(w as i64);
            let edge_b = (w as i64 - radius - 1).max(0);
            let mut out = vec![0u8; img.data().len()];
            for (row_in, row_out) in img.data().chunks_exact(w * c).zip(out.chunks_exact_mut(w * c)) {
                for ch in 0..c {
                    let at = |x: i64| u32::from(row_in[x as usize * c + ch]);
                    let lastx = w as i64 - 1;
                    let mut acc = at(0).wrapping_mul((radius + 1) as u32);
                    for x in 0..edge_a - 1 {
                        acc = acc.wrapping_add(at(x));
                    }
                    acc = acc.wrapping_add(at(lastx).wrapping_mul((radius - edge_a + 1) as u32));
                    let mut step = |x: i64, sub: i64, add: i64, left: i64, right: i64| {
                        acc = acc.wrapping_add((at(add) as i32 - at(sub) as i32) as u32);
                        let bulk = acc.wrapping_mul(ww).wrapping_add((at(left) + at(right)).wrapping_mul(fw));
                        row_out[x as usize * c + ch] = (bulk.wrapping_add(1 << 23) >> 24) as u8;
                    };
                    if edge_a <= edge_b {
                        for x in 0..edge_a {
                            step(x, 0, x + radius, 0, x + radius + 1);
                        }
                        for x in edge_a..edge_b {
                            step(x, x - radius - 1, x + radius, x - radius - 1, x + radius + 1);
                        }
                        for x in edge_b..=lastx {
                            step(x, x - radius - 1, lastx, x - radius - 1, lastx);
                        }
                    } else {
                        for x in 0..edge_b {
                            step(x, 0, x + radius, 0, x + radius + 1);
                        }
                        for x in edge_b..edge_a {
                            step(x, 0, lastx, 0, lastx);
                        }
                        for x in edge_a..=lastx {
                            step(x, x - radius - 1, lastx, x - radius - 1, lastx);
                        }
                    }
                }
            }
            Image::from_raw(w, img.height(), c, out).unwrap()
        }
    }

    /// The dispatched kernel (AVX2 where available) and its baseline compilation agree.
    #[test]
    fn column_pass_is_the_same_with_and_without_avx2() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        for _ in 0..50 {
            let (row_len, rows) = (rng.random_range(1..200), rng.random_range(1..40));
            let src: Vec<u8> = (0..row_len * rows).map(|_| rng.random()).collect();
            let radius = rng.random_range(0.05..20.0f32);
            let (mut a, mut b) = (vec![0; src.len()], vec![0; src.len()]);
            vertical_pass(&src, &mut a, row_len, radius);
            vertical_pass_impl(&src, &mut b, row_len, radius);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn column_passes_match_the_row_by_row_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for i in 0..400 {
            let c = [1, 3, 4, 2][i % 4];
            // Mostly small images, so that radii often exceed a side.
            let (w, h) = if i % 5 == 0 {
                (rng.random_range(30..80), rng.random_range(30..80))
            } else {
                (rng.random_range(1..12), rng.random_range(1..12))
            };
            let data = (0..w * h * c).map(|_| rng.random()).collect();
            let img = Image::from_raw(w, h, c, data).unwrap();
            let sigma = match i % 3 {
                0 => rng.random_range(0.1..2.0),
                1 => rng.random_range(0.0..0.5),
                _ => rng.random_range(2.0..30.0),
            };
            let r = gaussian_blur_radius(sigma, 3);
            assert_eq!(box_blur(&img, r, r, 3), reference::box_blur(&img, r, r, 3), "{w}x{h}x{c}, sigma {sigma}");
            let (rx, ry) = (rng.random_range(0.0..5.0f32), rng.random_range(0.0..5.0f32));
            for (rx, ry, n) in [(rx, 0.0, 1), (0.0, ry, 2), (rx, ry, 1), (ry, rx, 4)] {
                assert_eq!(box_blur(&img, rx, ry, n), reference::box_blur(&img, rx, ry, n), "{w}x{h}x{c}, radii {rx} {ry}, {n} passes");
            }
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = Image::filled(9, 5, &[17, 200, 255]);
        for sigma in [0.1, 0.7, 2.0, 30.0] {
            assert_eq!(gaussian_blur(&img, sigma), img, "sigma {sigma}");
        }
    }

    #[test]
    fn radius_matches_the_box_variance() {
        // Three passes of a box of radius l + a have variance σ² (the paper's construction).
        for sigma in [0.5f32, 1.0, 2.0, 5.0] {
            let r = f64::from(gaussian_blur_radius(sigma, 3));
            let l = r.floor();
            let a = r - l;
            // Variance of the extended box: weight 1 on |k| ≤ l, a on |k| = l + 1.
            let len = 2.0 * l + 1.0 + 2.0 * a;
            let var = ((2.0 * l + 1.0) * l * (l + 1.0) / 3.0 + 2.0 * a * (l + 1.0) * (l + 1.0)) / len;
            assert!((3.0 * var - f64::from(sigma * sigma)).abs() < 1e-3, "σ {sigma}: 3·var {}", 3.0 * var);
        }
    }

    #[test]
    fn impulse_spreads_symmetrically_and_keeps_mass() {
        let mut img = Image::filled(21, 1, &[0]);
        img.data_mut()[10] = 255;
        let out = gaussian_blur(&img, 1.5);
        let d = out.data();
        for k in 1..10 {
            assert_eq!(d[10 - k], d[10 + k], "offset {k}");
        }
        let mass: i32 = d.iter().map(|&v| i32::from(v)).sum();
        assert!((mass - 255).abs() <= 21, "mass {mass}");
    }
}
