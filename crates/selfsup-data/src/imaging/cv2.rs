//! OpenCV's `cv2.resize` for 8-bit images (nearest, bilinear, bicubic).
//!
//! Port of the scalar path of `opencv/modules/imgproc/src/resize.cpp` (`hal::resize`,
//! `resizeNN`, `HResizeLinear`/`VResizeLinear`, `HResizeCubic`/`VResizeCubic`): half-pixel
//! centres, replicated borders, `f32` source coordinates, 11-bit fixed-point weights
//! (`INTER_RESIZE_COEF_BITS`), **no antialiasing** when downscaling (unlike Pillow).
//! OpenCV's SIMD kernels round the vertical pass slightly differently, so results can
//! differ from a real `cv2.resize` by one intensity level on some pixels.
//!
//! `INTER_AREA` is ported ([`Cv2Interpolation::Area`]: the area-weighted average when both
//! axes shrink, with the integer-factor fast path, and OpenCV's area-mode bilinear weights
//! otherwise) for `RandomResizedCropAndInterpolationWithTwoPic`; mmcv's `imresize` still
//! only offers nearest/bilinear/bicubic with `cv2` here. `INTER_LANCZOS4` is not ported.

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
    /// `INTER_AREA`: pixel-area averaging when shrinking both axes, otherwise bilinear with
    /// OpenCV's area-mode weights.
    Area,
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
        Cv2Interpolation::Bilinear | Cv2Interpolation::Area => 2,
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
        let (mut s, mut fx) = if interp == Cv2Interpolation::Area {
            // Area mode: `sx = floor(dx·scale)`, `fx = frac((dx+1) − (sx+1)/scale)` or 0.
            let s = (d as f64 * scale).floor() as i64;
            let f = ((d + 1) as f64 - (s + 1) as f64 * inv_scale) as f32;
            (s, if f <= 0.0 { 0.0 } else { f - f.floor() })
        } else {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let s = f.floor() as i64;
            (s, f - s as f32)
        };
        let coeffs: Vec<f32> = match interp {
            Cv2Interpolation::Bilinear | Cv2Interpolation::Area => {
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
    if interp == Cv2Interpolation::Area && out_w <= in_w && out_h <= in_h {
        return resize_area(img, out_w, out_h);
    }
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
        return Image::from_raw(out_w, out_h, c, data).unwrap_or_else(|| Image::filled(out_w, out_h, &vec![0; c]));
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
    Image::from_raw(out_w, out_h, c, data).unwrap_or_else(|| Image::filled(out_w, out_h, &vec![0; c]))
}

/// One term of OpenCV's `computeResizeAreaTab`: source index `si` contributes `alpha` to
/// destination index `di`.
struct AreaTerm {
    di: usize,
    si: usize,
    alpha: f32,
}

/// `computeResizeAreaTab`: the source pixels each destination pixel of an axis covers, with
/// their coverage fractions.
fn area_tab(ssize: usize, dsize: usize, scale: f64) -> Vec<AreaTerm> {
    let mut tab = Vec::with_capacity(ssize * 2);
    for dx in 0..dsize {
        let fsx1 = dx as f64 * scale;
        let fsx2 = fsx1 + scale;
        let cell_width = scale.min(ssize as f64 - fsx1);
        let mut sx2 = fsx2.floor() as i64;
        sx2 = sx2.min(ssize as i64 - 1);
        let sx1 = (fsx1.ceil() as i64).min(sx2);
        if sx1 as f64 - fsx1 > 1e-3 {
            tab.push(AreaTerm { di: dx, si: (sx1 - 1) as usize, alpha: ((sx1 as f64 - fsx1) / cell_width) as f32 });
        }
        for sx in sx1..sx2 {
            tab.push(AreaTerm { di: dx, si: sx as usize, alpha: (1.0 / cell_width) as f32 });
        }
        if fsx2 - sx2 as f64 > 1e-3 {
            tab.push(AreaTerm { di: dx, si: sx2 as usize, alpha: ((fsx2 - sx2 as f64).min(1.0).min(cell_width) / cell_width) as f32 });
        }
    }
    tab
}

/// OpenCV's `saturate_cast<uchar>(float)`: round half to even, then saturate.
fn f32_to_u8(v: f32) -> u8 {
    v.round_ties_even().clamp(0.0, 255.0) as u8
}

/// `INTER_AREA` when neither axis grows: OpenCV's integer-factor fast path
/// (`resizeAreaFast`: the mean of each `sx × sy` cell, `sum · (1/area)` rounded) or the
/// general area-weighted sum in `f32` (`ResizeArea_Invoker`), in OpenCV's order.
fn resize_area(img: &Image, out_w: usize, out_h: usize) -> Image {
    let (in_w, in_h, c) = (img.width(), img.height(), img.channels());
    let src = img.data();
    let scale_x = in_w as f64 / out_w as f64;
    let scale_y = in_h as f64 / out_h as f64;
    // OpenCV: `1. / inv_scale` with `inv_scale = dsize / ssize`.
    let scale_x = 1.0 / (1.0 / scale_x);
    let scale_y = 1.0 / (1.0 / scale_y);
    let (ix, iy) = (scale_x.round_ties_even(), scale_y.round_ties_even());
    let mut data = vec![0u8; out_w * out_h * c];
    if (scale_x - ix).abs() < f64::EPSILON && (scale_y - iy).abs() < f64::EPSILON {
        let (ix, iy) = (ix as usize, iy as usize);
        let inv_area = 1.0f32 / (ix * iy) as f32;
        for dy in 0..out_h {
            for dx in 0..out_w {
                for ch in 0..c {
                    let mut sum = 0i32;
                    for sy in dy * iy..(dy + 1) * iy {
                        let row = &src[sy * in_w * c..(sy + 1) * in_w * c];
                        for sx in dx * ix..(dx + 1) * ix {
                            sum += i32::from(row[sx * c + ch]);
                        }
                    }
                    data[(dy * out_w + dx) * c + ch] = f32_to_u8(sum as f32 * inv_area);
                }
            }
        }
    } else {
        let xtab = area_tab(in_w, out_w, scale_x);
        let ytab = area_tab(in_h, out_h, scale_y);
        let row_len = out_w * c;
        let mut buf = vec![0f32; row_len];
        let mut sum = vec![0f32; row_len];
        let mut prev_dy = ytab.first().map_or(0, |t| t.di);
        for t in &ytab {
            let s_row = &src[t.si * in_w * c..(t.si + 1) * in_w * c];
            buf.fill(0.0);
            for x in &xtab {
                for ch in 0..c {
                    buf[x.di * c + ch] += f32::from(s_row[x.si * c + ch]) * x.alpha;
                }
            }
            if t.di != prev_dy {
                let d = &mut data[prev_dy * row_len..(prev_dy + 1) * row_len];
                for ((o, s), b) in d.iter_mut().zip(sum.iter_mut()).zip(&buf) {
                    *o = f32_to_u8(*s);
                    *s = t.alpha * b;
                }
                prev_dy = t.di;
            } else {
                for (s, b) in sum.iter_mut().zip(&buf) {
                    *s += t.alpha * b;
                }
            }
        }
        let d = &mut data[prev_dy * row_len..(prev_dy + 1) * row_len];
        for (o, s) in d.iter_mut().zip(&sum) {
            *o = f32_to_u8(*s);
        }
    }
    Image::from_raw(out_w, out_h, c, data).unwrap_or_else(|| Image::filled(out_w, out_h, &vec![0; c]))
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
        for interp in [Cv2Interpolation::Nearest, Cv2Interpolation::Bilinear, Cv2Interpolation::Bicubic] {
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
        assert_eq!(resize(&img, 4, 1, Cv2Interpolation::Bilinear).data(), &[0, 25, 75, 100]);
    }

    #[test]
    fn bilinear_halving_is_pair_average() {
        // 4 → 2: src = 0.5, 2.5: no antialiasing, plain average of neighbours.
        let img = gray(4, 1, &[0, 70, 140, 210]);
        assert_eq!(resize(&img, 2, 1, Cv2Interpolation::Bilinear).data(), &[35, 175]);
    }
}
