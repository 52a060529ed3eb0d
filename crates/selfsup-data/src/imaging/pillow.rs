//! Pillow's `Image.resize` for 8-bit images, bit-exact.
//!
//! Port of `Pillow/src/libImaging/Resample.c` (`precompute_coeffs`, `normalize_coeffs_8bpc`,
//! `ImagingResampleHorizontal_8bpc`, `ImagingResampleVertical_8bpc`, `ImagingResampleInner`)
//! and of the nearest-neighbour path of `_resize` (`ImagingScaleAffine`). This is what
//! mmcv's `imresize(..., backend='pillow')` and torchvision's PIL transforms call.
//!
//! The convolution filters are *antialiased*: when downscaling by a factor `s > 1` the
//! filter support is stretched to `support × s`, so every input pixel contributes.
//! Resampling is separable, horizontal pass first, with the intermediate image rounded to
//! 8 bits exactly as Pillow does, so the output matches Pillow bit for bit.

use super::Image;

/// Pillow's resampling filters (`PIL.Image.Resampling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PillowFilter {
    /// `NEAREST`: no convolution, `src = floor((dst + 0.5) · scale)`.
    Nearest,
    /// `BOX`: support 0.5.
    Box,
    /// `BILINEAR`: triangle filter, support 1.
    Bilinear,
    /// `HAMMING`: support 1.
    Hamming,
    /// `BICUBIC`: Keys cubic with `a = -0.5`, support 2.
    Bicubic,
    /// `LANCZOS`: 3-lobed Lanczos, support 3.
    Lanczos,
}

impl PillowFilter {
    fn support(self) -> f64 {
        match self {
            PillowFilter::Nearest | PillowFilter::Box => 0.5,
            PillowFilter::Bilinear | PillowFilter::Hamming => 1.0,
            PillowFilter::Bicubic => 2.0,
            PillowFilter::Lanczos => 3.0,
        }
    }

    fn eval(self, x: f64) -> f64 {
        match self {
            PillowFilter::Nearest | PillowFilter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            PillowFilter::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            PillowFilter::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    x.sin() / x * (0.54 + 0.46 * x.cos())
                }
            }
            PillowFilter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            PillowFilter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

/// `32 - 8 - 2`: fixed-point precision of Pillow's 8-bit coefficients.
const PRECISION_BITS: u32 = 22;

/// Per-output-pixel filter taps along one axis: first input index and integer weights.
struct Coeffs {
    ksize: usize,
    /// `(xmin, count)` per output pixel.
    bounds: Vec<(usize, usize)>,
    /// `ksize` fixed-point weights per output pixel.
    kk: Vec<i32>,
}

/// `precompute_coeffs` + `normalize_coeffs_8bpc` for the box `[in0, in1)` of an axis of
/// `in_size` pixels resampled to `out_size` pixels.
fn precompute_coeffs(
    in_size: usize,
    in0: f64,
    in1: f64,
    out_size: usize,
    filter: PillowFilter,
) -> Coeffs {
    let scale = (in1 - in0) / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut kk = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = in0 + (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C `(int)` casts truncate toward zero, as `as` does.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64).max(0) as usize;
        let count = xmax.saturating_sub(xmin).min(ksize);
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(count) {
            let w = filter.eval(((x + xmin) as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        let row = &mut kk[xx * ksize..(xx + 1) * ksize];
        for (x, out) in row.iter_mut().enumerate().take(count) {
            let w = if ww != 0.0 { k[x] / ww } else { k[x] };
            let scaled = w * f64::from(1u32 << PRECISION_BITS);
            *out = if w < 0.0 {
                (-0.5 + scaled) as i32
            } else {
                (0.5 + scaled) as i32
            };
        }
        bounds.push((xmin, count));
    }
    Coeffs { ksize, bounds, kk }
}

/// Pillow's `clip8`: the accumulator is a C `int`, as here (normalised weights keep
/// `255 · Σ|k|` below 2³¹).
#[inline]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One horizontal pass over a row of `c`-channel pixels (`ImagingResampleHorizontal_8bpc`).
fn resample_row(src_row: &[u8], dst_row: &mut [u8], horiz: &Coeffs, c: usize) {
    const HALF: i32 = 1 << (PRECISION_BITS - 1);
    if c == 3 {
        for (xx, d) in dst_row.chunks_exact_mut(3).enumerate() {
            let (xmin, cnt) = horiz.bounds[xx];
            let k = &horiz.kk[xx * horiz.ksize..xx * horiz.ksize + cnt];
            let px = &src_row[xmin * 3..(xmin + cnt) * 3];
            let (mut s0, mut s1, mut s2) = (HALF, HALF, HALF);
            for (p, &kx) in px.chunks_exact(3).zip(k) {
                s0 += i32::from(p[0]) * kx;
                s1 += i32::from(p[1]) * kx;
                s2 += i32::from(p[2]) * kx;
            }
            d[0] = clip8(s0);
            d[1] = clip8(s1);
            d[2] = clip8(s2);
        }
        return;
    }
    for xx in 0..dst_row.len() / c {
        let (xmin, cnt) = horiz.bounds[xx];
        let k = &horiz.kk[xx * horiz.ksize..xx * horiz.ksize + cnt];
        for ch in 0..c {
            let mut ss = HALF;
            for (x, &kx) in k.iter().enumerate() {
                ss += i32::from(src_row[(x + xmin) * c + ch]) * kx;
            }
            dst_row[xx * c + ch] = clip8(ss);
        }
    }
}

/// Resizes `img` to `out_w × out_h` as Pillow's `Image.resize((out_w, out_h), filter)` does
/// for an 8-bit image (mode `L` or `RGB`; any channel count is handled channel-wise).
///
/// Returns a copy when the size is unchanged, as Pillow does.
pub fn resize(img: &Image, out_w: usize, out_h: usize, filter: PillowFilter) -> Image {
    let (in_w, in_h, c) = (img.width(), img.height(), img.channels());
    if (in_w == out_w && in_h == out_h) || img.is_empty() || out_w == 0 || out_h == 0 {
        if in_w == out_w && in_h == out_h {
            return img.clone();
        }
        return Image::filled(out_w, out_h, &vec![0; c]);
    }
    if filter == PillowFilter::Nearest {
        return resize_nearest(img, out_w, out_h);
    }
    let need_h = out_w != in_w;
    let need_v = out_h != in_h;
    let horiz = precompute_coeffs(in_w, 0.0, in_w as f64, out_w, filter);
    let mut vert = precompute_coeffs(in_h, 0.0, in_h as f64, out_h, filter);

    let mut cur_w = in_w;
    let mut cur_h = in_h;
    let mut cur: std::borrow::Cow<'_, [u8]> = std::borrow::Cow::Borrowed(img.data());

    if need_h {
        // Only the rows the vertical pass will read are resampled horizontally.
        let ybox_first = vert.bounds[0].0;
        let (last_min, last_cnt) = vert.bounds[out_h - 1];
        let ybox_last = last_min + last_cnt;
        for b in vert.bounds.iter_mut() {
            b.0 -= ybox_first;
        }
        let rows = ybox_last - ybox_first;
        let src = img.data();
        let mut out = vec![0u8; rows * out_w * c];
        for yy in 0..rows {
            let src_row = &src[(yy + ybox_first) * in_w * c..(yy + ybox_first + 1) * in_w * c];
            let dst_row = &mut out[yy * out_w * c..(yy + 1) * out_w * c];
            resample_row(src_row, dst_row, &horiz, c);
        }
        cur = std::borrow::Cow::Owned(out);
        cur_w = out_w;
        cur_h = rows;
    }
    if need_v {
        let src = &cur[..];
        let row_len = cur_w * c;
        let mut out = vec![0u8; out_h * row_len];
        // One accumulator row, taps outer and pixels inner: the inner loop vectorises.
        let mut acc = vec![0i32; row_len];
        for yy in 0..out_h {
            let (ymin, cnt) = vert.bounds[yy];
            let k = &vert.kk[yy * vert.ksize..yy * vert.ksize + cnt];
            acc.fill(1 << (PRECISION_BITS - 1));
            for (y, &ky) in k.iter().enumerate() {
                let s_row = &src[(y + ymin) * row_len..(y + ymin + 1) * row_len];
                for (a, &v) in acc.iter_mut().zip(s_row) {
                    *a += i32::from(v) * ky;
                }
            }
            for (d, &a) in out[yy * row_len..(yy + 1) * row_len].iter_mut().zip(&acc) {
                *d = clip8(a);
            }
        }
        cur = std::borrow::Cow::Owned(out);
        cur_h = out_h;
    }
    debug_assert_eq!((cur_w, cur_h), (out_w, out_h));
    let data = cur.into_owned();
    Image::from_raw(out_w, out_h, c, data)
        .unwrap_or_else(|| Image::filled(out_w, out_h, &vec![0; c]))
}

/// Pillow's nearest-neighbour resize (`ImagingScaleAffine`): the source coordinate is
/// accumulated in steps of `scale` from `scale / 2`, then truncated.
fn resize_nearest(img: &Image, out_w: usize, out_h: usize) -> Image {
    let (in_w, in_h, c) = (img.width(), img.height(), img.channels());
    let table = |in_size: usize, out_size: usize| -> Vec<usize> {
        let a = in_size as f64 / out_size as f64;
        let mut o = a * 0.5;
        (0..out_size)
            .map(|_| {
                let i = (o.max(0.0) as usize).min(in_size - 1);
                o += a;
                i
            })
            .collect()
    };
    let xs = table(in_w, out_w);
    let ys = table(in_h, out_h);
    let src = img.data();
    let mut data = Vec::with_capacity(out_w * out_h * c);
    for &y in &ys {
        for &x in &xs {
            let i = (y * in_w + x) * c;
            data.extend_from_slice(&src[i..i + c]);
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
    fn constant_image_stays_constant() {
        for filter in [
            PillowFilter::Nearest,
            PillowFilter::Box,
            PillowFilter::Bilinear,
            PillowFilter::Hamming,
            PillowFilter::Bicubic,
            PillowFilter::Lanczos,
        ] {
            let img = Image::filled(13, 7, &[200, 17, 255]);
            for (w, h) in [(5, 3), (29, 11), (13, 20), (1, 1)] {
                let out = resize(&img, w, h, filter);
                assert_eq!((out.width(), out.height(), out.channels()), (w, h, 3));
                for px in out.data().chunks(3) {
                    assert_eq!(px, &[200, 17, 255], "{filter:?} {w}x{h}");
                }
            }
        }
    }

    #[test]
    fn bilinear_hand_computed_upscale() {
        // 1-D row [0, 100] upscaled to 4: scale 0.5, support 1 (no antialiasing).
        // centers 0.25, 0.75, 1.25, 1.75 → weights of pixels (0, 1) with x - center + 0.5:
        //   out0: xmin = (int)(0.25-1+0.5)=0 → xmax=(int)(1.75)=1: only pixel 0 → 0
        //   out1: center .75: xmin 0, xmax (int)2.25=2: w(0)=1-|0.5-.75|... normalised (0.75,0.25) → 25
        //   out2: (0.25, 0.75) → 75;  out3: only pixel 1 → 100
        let img = gray(2, 1, &[0, 100]);
        let out = resize(&img, 4, 1, PillowFilter::Bilinear);
        assert_eq!(out.data(), &[0, 25, 75, 100]);
    }

    #[test]
    fn bilinear_hand_computed_downscale_is_antialiased() {
        // 4 → 2, scale 2, support 2: out0 center 1.0, taps x=0..3 (clamped xmax=3):
        // weights tri((x+0.5-1)/2) = 0.75, 0.75, 0.25 → normalised 3/7, 3/7, 1/7.
        // values [0, 70, 140, 210] → 0·3/7 + 70·3/7 + 140/7 = 50.
        // out1 center 3.0, taps x=1..4: weights .25,.75,.75 → (70 + 3·140 + 3·210)/7 = 160.
        let img = gray(4, 1, &[0, 70, 140, 210]);
        let out = resize(&img, 2, 1, PillowFilter::Bilinear);
        assert_eq!(out.data(), &[50, 160]);
        // Vertical axis behaves the same.
        let img = gray(1, 4, &[0, 70, 140, 210]);
        let out = resize(&img, 1, 2, PillowFilter::Bilinear);
        assert_eq!(out.data(), &[50, 160]);
    }

    #[test]
    fn nearest_picks_pixel_centres() {
        let img = gray(4, 1, &[10, 20, 30, 40]);
        assert_eq!(resize(&img, 2, 1, PillowFilter::Nearest).data(), &[20, 40]);
        assert_eq!(
            resize(&img, 8, 1, PillowFilter::Nearest).data(),
            &[10, 10, 20, 20, 30, 30, 40, 40]
        );
    }

    #[test]
    fn bicubic_overshoot_is_clipped() {
        let img = gray(4, 1, &[0, 0, 255, 255]);
        let out = resize(&img, 16, 1, PillowFilter::Bicubic);
        // Monotone step: output starts at 0 and ends at 255, never wraps around.
        assert_eq!(out.data()[0], 0);
        assert_eq!(out.data()[15], 255);
    }
}
