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

use super::Image;

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
pub fn box_blur(img: &Image, xradius: f32, yradius: f32, n: usize) -> Image {
    if img.is_empty() || n == 0 {
        return img.clone();
    }
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
    Image::from_raw(h, w, c, data).unwrap_or_else(|| img.clone())
}

/// `ImagingHorizontalBoxBlur`: one pass along every row.
fn horizontal_box_blur(img: &Image, float_radius: f32) -> Image {
    let (w, c) = (img.width(), img.channels());
    let radius = float_radius as i64;
    // `(UINT32)(1 << 24) / (floatRadius * 2 + 1)`: a float division, truncated.
    let ww = (16_777_216.0_f32 / (float_radius * 2.0 + 1.0)) as u32;
    let fw = (1u32 << 24).wrapping_sub(((radius * 2 + 1) as u32).wrapping_mul(ww)) / 2;
    let edge_a = (radius + 1).min(w as i64);
    let edge_b = (w as i64 - radius - 1).max(0);
    let mut out = vec![0u8; img.data().len()];
    for (row_in, row_out) in img
        .data()
        .chunks_exact(w * c)
        .zip(out.chunks_exact_mut(w * c))
    {
        for ch in 0..c {
            line_box_blur(
                row_out,
                row_in,
                ch,
                c,
                w as i64 - 1,
                radius,
                edge_a,
                edge_b,
                ww,
                fw,
            );
        }
    }
    Image::from_raw(w, img.height(), c, out).unwrap_or_else(|| img.clone())
}

/// `ImagingLineBoxBlur8/32` for channel `ch` of one row (`c` interleaved channels).
#[allow(clippy::too_many_arguments)]
fn line_box_blur(
    out: &mut [u8],
    inp: &[u8],
    ch: usize,
    c: usize,
    lastx: i64,
    radius: i64,
    edge_a: i64,
    edge_b: i64,
    ww: u32,
    fw: u32,
) {
    let at = |x: i64| u32::from(inp[x as usize * c + ch]);
    let mut acc: u32;
    // Accumulator for the pixel at -1: the first pixel from -radius-1 to -1, then 0..radius-1,
    // with the last pixel repeated past the end (the radius may exceed the width).
    acc = at(0).wrapping_mul((radius + 1) as u32);
    for x in 0..edge_a - 1 {
        acc = acc.wrapping_add(at(x));
    }
    acc = acc.wrapping_add(at(lastx).wrapping_mul((radius - edge_a + 1) as u32));

    let mut step = |x: i64, sub: i64, add: i64, left: i64, right: i64| {
        acc = acc.wrapping_add((at(add) as i32 - at(sub) as i32) as u32);
        let bulk = acc
            .wrapping_mul(ww)
            .wrapping_add((at(left) + at(right)).wrapping_mul(fw));
        out[x as usize * c + ch] = (bulk.wrapping_add(1 << 23) >> 24) as u8;
    };
    if edge_a <= edge_b {
        for x in 0..edge_a {
            step(x, 0, x + radius, 0, x + radius + 1);
        }
        for x in edge_a..edge_b {
            step(
                x,
                x - radius - 1,
                x + radius,
                x - radius - 1,
                x + radius + 1,
            );
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

#[cfg(test)]
mod tests {
    use super::*;

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
            let var =
                ((2.0 * l + 1.0) * l * (l + 1.0) / 3.0 + 2.0 * a * (l + 1.0) * (l + 1.0)) / len;
            assert!(
                (3.0 * var - f64::from(sigma * sigma)).abs() < 1e-3,
                "σ {sigma}: 3·var {}",
                3.0 * var
            );
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
