//! OpenCV's `cv2.resize` for 8-bit images (nearest, bilinear, bicubic).
//!
//! Port of the scalar path of `opencv/modules/imgproc/src/resize.cpp` (`hal::resize`,
//! `resizeNN`, `HResizeLinear`/`VResizeLinear`, `HResizeCubic`/`VResizeCubic`): half-pixel
//! centres, replicated borders, `f32` source coordinates, 11-bit fixed-point weights
//! (`INTER_RESIZE_COEF_BITS`), **no antialiasing** when downscaling (unlike Pillow).
//! OpenCV's SIMD kernels round the vertical pass slightly differently, so results can
//! differ from a real `cv2.resize` by one intensity level on some pixels.
//!
//! `INTER_AREA` and `INTER_LANCZOS4` are not ported: asking for them through the `cv2`
//! back-end is a config error (use `backend='pillow'`).

use super::Image;

/// The OpenCV interpolations this port implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cv2Interpolation {
    /// `INTER_NEAREST`: `src = floor(dst · scale)` (OpenCV's legacy, non-centred rule).
    Nearest,
    /// `INTER_LINEAR`.
    Bilinear,
    /// `INTER_CUBIC`: Keys cubic with `a = -0.75`.
    Bicubic,
}

const COEF_BITS: u32 = 11;
const COEF_SCALE: f32 = (1 << COEF_BITS) as f32;

/// OpenCV's `saturate_cast<short>(float)`: round half to even (`cvRound`), then saturate.
fn to_short(v: f32) -> i32 {
    (v.round_ties_even() as i32).clamp(i32::from(i16::MIN), i32::from(i16::MAX))
}

fn cubic_coeffs(x: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let c0 = ((A * (x + 1.0) - 5.0 * A) * (x + 1.0) + 8.0 * A) * (x + 1.0) - 4.0 * A;
    let c1 = ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let c2 = ((A + 2.0) * (1.0 - x) - (A + 3.0)) * (1.0 - x) * (1.0 - x) + 1.0;
    let c3 = 1.0 - c0 - c1 - c2;
    [c0, c1, c2, c3]
}

/// Taps along one axis: for each output index, `ksize` (clamped) source indices and weights.
struct Taps {
    ksize: usize,
    idx: Vec<usize>,
    w: Vec<i32>,
}

fn taps(in_size: usize, out_size: usize, interp: Cv2Interpolation, clamp_linear: bool) -> Taps {
    let inv_scale = out_size as f64 / in_size as f64;
    let scale = 1.0 / inv_scale;
    let ksize = match interp {
        Cv2Interpolation::Nearest => 1,
        Cv2Interpolation::Bilinear => 2,
        Cv2Interpolation::Bicubic => 4,
    };
    let last = in_size as i64 - 1;
    let mut idx = Vec::with_capacity(out_size * ksize);
    let mut w = Vec::with_capacity(out_size * ksize);
    for d in 0..out_size {
        if interp == Cv2Interpolation::Nearest {
            let s = ((d as f64 * scale).floor() as i64).clamp(0, last);
            idx.push(s as usize);
            w.push(1 << COEF_BITS);
            continue;
        }
        let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
        let mut s = f.floor() as i64;
        let mut fx = f - s as f32;
        let coeffs: Vec<f32> = match interp {
            Cv2Interpolation::Bilinear => {
                if clamp_linear {
                    if s < 0 {
                        fx = 0.0;
                        s = 0;
                    }
                    if s >= last {
                        fx = 0.0;
                        s = last;
                    }
                }
                vec![1.0 - fx, fx]
            }
            _ => cubic_coeffs(fx).to_vec(),
        };
        let first = s - (ksize as i64 / 2 - 1);
        for (k, c) in coeffs.iter().enumerate() {
            idx.push((first + k as i64).clamp(0, last) as usize);
            w.push(to_short(c * COEF_SCALE));
        }
    }
    Taps { ksize, idx, w }
}

/// Resizes `img` to `out_w × out_h` as `cv2.resize(img, (out_w, out_h), interpolation=...)`.
pub fn resize(img: &Image, out_w: usize, out_h: usize, interp: Cv2Interpolation) -> Image {
    let (in_w, in_h, c) = (img.width(), img.height(), img.channels());
    if in_w == out_w && in_h == out_h {
        return img.clone();
    }
    if img.is_empty() || out_w == 0 || out_h == 0 {
        return Image::filled(out_w, out_h, &vec![0; c]);
    }
    let src = img.data();
    if interp == Cv2Interpolation::Nearest {
        let xs = taps(in_w, out_w, interp, false).idx;
        let ys = taps(in_h, out_h, interp, false).idx;
        let mut data = Vec::with_capacity(out_w * out_h * c);
        for &y in &ys {
            for &x in &xs {
                let i = (y * in_w + x) * c;
                data.extend_from_slice(&src[i..i + c]);
            }
        }
        return Image::from_raw(out_w, out_h, c, data)
            .unwrap_or_else(|| Image::filled(out_w, out_h, &vec![0; c]));
    }
    // OpenCV clamps the horizontal linear coordinate at the borders but not the vertical one
    // (there only the row indices are clamped).
    let hx = taps(in_w, out_w, interp, true);
    let vy = taps(in_h, out_h, interp, false);

    // Horizontal pass on every source row, kept in fixed point (scale 2^11).
    let mut tmp = vec![0i32; in_h * out_w * c];
    for y in 0..in_h {
        let row = &src[y * in_w * c..(y + 1) * in_w * c];
        let out = &mut tmp[y * out_w * c..(y + 1) * out_w * c];
        for dx in 0..out_w {
            let ti = &hx.idx[dx * hx.ksize..(dx + 1) * hx.ksize];
            let tw = &hx.w[dx * hx.ksize..(dx + 1) * hx.ksize];
            for ch in 0..c {
                let mut v = 0i32;
                for (&sx, &wx) in ti.iter().zip(tw) {
                    v += i32::from(row[sx * c + ch]) * wx;
                }
                out[dx * c + ch] = v;
            }
        }
    }
    // Vertical pass: fixed point 2^22, rounded and saturated (`FixedPtCast<int, uchar, 22>`).
    let row_len = out_w * c;
    let mut data = vec![0u8; out_h * row_len];
    for dy in 0..out_h {
        let ti = &vy.idx[dy * vy.ksize..(dy + 1) * vy.ksize];
        let tw = &vy.w[dy * vy.ksize..(dy + 1) * vy.ksize];
        let dst = &mut data[dy * row_len..(dy + 1) * row_len];
        for (i, d) in dst.iter_mut().enumerate() {
            let mut v = 0i64;
            for (&sy, &wy) in ti.iter().zip(tw) {
                v += i64::from(tmp[sy * row_len + i]) * i64::from(wy);
            }
            let r = (v + (1 << (2 * COEF_BITS - 1))) >> (2 * COEF_BITS);
            *d = r.clamp(0, 255) as u8;
        }
    }
    Image::from_raw(out_w, out_h, c, data)
        .unwrap_or_else(|| Image::filled(out_w, out_h, &vec![0; c]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(w: usize, h: usize, v: &[u8]) -> Image {
        Image::from_raw(w, h, 1, v.to_vec()).expect("valid test image")
    }

    #[test]
    fn constant_stays_constant() {
        let img = Image::filled(9, 6, &[3, 128, 250]);
        for interp in [
            Cv2Interpolation::Nearest,
            Cv2Interpolation::Bilinear,
            Cv2Interpolation::Bicubic,
        ] {
            for (w, h) in [(4, 3), (20, 13), (1, 1)] {
                let out = resize(&img, w, h, interp);
                for px in out.data().chunks(3) {
                    assert_eq!(px, &[3, 128, 250], "{interp:?} {w}x{h}");
                }
            }
        }
    }

    #[test]
    fn bilinear_upscale_hand_computed() {
        // 2 → 4: src = (d + .5)/2 - .5 = -.25, .25, .75, 1.25 → clamped: 0, 25, 75, 100.
        let img = gray(2, 1, &[0, 100]);
        assert_eq!(
            resize(&img, 4, 1, Cv2Interpolation::Bilinear).data(),
            &[0, 25, 75, 100]
        );
    }

    #[test]
    fn bilinear_halving_is_pair_average() {
        // 4 → 2: src = 0.5, 2.5: no antialiasing, plain average of neighbours.
        let img = gray(4, 1, &[0, 70, 140, 210]);
        assert_eq!(
            resize(&img, 2, 1, Cv2Interpolation::Bilinear).data(),
            &[35, 175]
        );
    }
}
