//! OpenCV's `cv2.warpAffine` for 8-bit images with a constant border, and mmcv's `imrotate`
//! on top of it.
//!
//! Port of `opencv/modules/imgproc/src/imgwarp.cpp` (`getRotationMatrix2D`, the inversion in
//! `warpAffine`, `WarpAffineInvoker`, `remapNearest`, `remapBilinear`, `remapBicubic`,
//! `remapLanczos4`, `initInterTab2D`): source coordinates in fixed point with
//! `INTER_BITS = 5` fractional bits (1/32 pixel), 2-D weight tables in 15-bit fixed point,
//! taps outside the image replaced by the border value. `INTER_AREA` is bilinear here, as in
//! OpenCV.

use super::Image;

/// The interpolations of `warpAffine` (mmcv's `cv2_interp_codes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarpInterpolation {
    /// `INTER_NEAREST`.
    Nearest,
    /// `INTER_LINEAR` (also what OpenCV uses for `INTER_AREA`).
    Bilinear,
    /// `INTER_CUBIC`.
    Bicubic,
    /// `INTER_LANCZOS4`.
    Lanczos4,
}

impl WarpInterpolation {
    /// mmcv's `cv2_interp_codes` for `warpAffine`: `area` is bilinear there (as in OpenCV);
    /// `None` for the Pillow-only `box` and `hamming`.
    pub fn from_mmcv(i: super::Interpolation) -> Option<Self> {
        use super::Interpolation as I;
        match i {
            I::Nearest => Some(Self::Nearest),
            I::Bilinear | I::Area => Some(Self::Bilinear),
            I::Bicubic => Some(Self::Bicubic),
            I::Lanczos => Some(Self::Lanczos4),
            I::Box | I::Hamming => None,
        }
    }

    fn ksize(self) -> usize {
        match self {
            WarpInterpolation::Nearest => 1,
            WarpInterpolation::Bilinear => 2,
            WarpInterpolation::Bicubic => 4,
            WarpInterpolation::Lanczos4 => 8,
        }
    }
}

const INTER_BITS: i32 = 5;
const INTER_TAB_SIZE: i32 = 1 << INTER_BITS;
const AB_BITS: i32 = 10;
const AB_SCALE: f64 = (1 << AB_BITS) as f64;
const REMAP_COEF_BITS: i32 = 15;
const REMAP_COEF_SCALE: i32 = 1 << REMAP_COEF_BITS;

/// OpenCV's `saturate_cast<int>(double)`: round half to even.
fn round_i32(v: f64) -> i32 {
    v.round_ties_even().clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
}

fn coeffs_1d(method: WarpInterpolation, x: f32) -> Vec<f32> {
    match method {
        WarpInterpolation::Nearest => vec![1.0],
        WarpInterpolation::Bilinear => vec![1.0 - x, x],
        WarpInterpolation::Bicubic => {
            const A: f32 = -0.75;
            let c0 = ((A * (x + 1.0) - 5.0 * A) * (x + 1.0) + 8.0 * A) * (x + 1.0) - 4.0 * A;
            let c1 = ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
            let c2 = ((A + 2.0) * (1.0 - x) - (A + 3.0)) * (1.0 - x) * (1.0 - x) + 1.0;
            vec![c0, c1, c2, 1.0 - c0 - c1 - c2]
        }
        WarpInterpolation::Lanczos4 => {
            if x < f32::EPSILON {
                let mut c = vec![0.0; 8];
                c[3] = 1.0;
                return c;
            }
            const S45: f64 = std::f64::consts::FRAC_1_SQRT_2;
            const CS: [[f64; 2]; 8] =
                [[1.0, 0.0], [-S45, -S45], [0.0, 1.0], [S45, -S45], [-1.0, 0.0], [S45, S45], [0.0, -1.0], [-S45, S45]];
            let pi = std::f64::consts::PI;
            let y0 = -(f64::from(x) + 3.0) * pi * 0.25;
            let (s0, c0) = (y0.sin(), y0.cos());
            let mut c = vec![0f32; 8];
            let mut sum = 0f32;
            for (i, ci) in c.iter_mut().enumerate() {
                let y = -(f64::from(x) + 3.0 - i as f64) * pi * 0.25;
                *ci = ((CS[i][0] * s0 + CS[i][1] * c0) / (y * y)) as f32;
                sum += *ci;
            }
            let inv = 1.0 / sum;
            for ci in &mut c {
                *ci *= inv;
            }
            c
        }
    }
}

/// `initInterTab2D(method, fixpt=true)`: for each of the 32×32 sub-pixel positions, the
/// `ksize × ksize` weights in 15-bit fixed point, corrected to sum to exactly 2¹⁵.
fn weight_table(method: WarpInterpolation) -> Vec<i32> {
    let ksize = method.ksize();
    let tab1: Vec<Vec<f32>> = (0..INTER_TAB_SIZE).map(|i| coeffs_1d(method, i as f32 * (1.0 / INTER_TAB_SIZE as f32))).collect();
    let n = (INTER_TAB_SIZE * INTER_TAB_SIZE) as usize;
    let mut itab = vec![0i32; n * ksize * ksize];
    for i in 0..INTER_TAB_SIZE as usize {
        for j in 0..INTER_TAB_SIZE as usize {
            let t = &mut itab[(i * INTER_TAB_SIZE as usize + j) * ksize * ksize..][..ksize * ksize];
            let mut isum = 0;
            for k1 in 0..ksize {
                let vy = tab1[i][k1];
                for k2 in 0..ksize {
                    let v = vy * tab1[j][k2];
                    let q = (v * REMAP_COEF_SCALE as f32).round_ties_even().clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i32;
                    t[k1 * ksize + k2] = q;
                    isum += q;
                }
            }
            // A weight of exactly 1 saturates to 2¹⁵ − 1; OpenCV then moves the difference
            // onto the smallest (or largest) of the four weights from `(ksize/2, ksize/2)`.
            // For bilinear that window runs past the 2×2 block into entries not computed
            // yet (zeros), which never win the comparison: only `(1, 1)` is a candidate.
            if isum != REMAP_COEF_SCALE {
                let diff = isum - REMAP_COEF_SCALE;
                let k0 = ksize / 2;
                let (mut mk, mut big) = ((k0, k0), (k0, k0));
                for k1 in k0..(k0 + 2).min(ksize) {
                    for k2 in k0..(k0 + 2).min(ksize) {
                        let v = t[k1 * ksize + k2];
                        if v < t[mk.0 * ksize + mk.1] {
                            mk = (k1, k2);
                        } else if v > t[big.0 * ksize + big.1] {
                            big = (k1, k2);
                        }
                    }
                }
                if diff < 0 {
                    t[big.0 * ksize + big.1] -= diff;
                } else {
                    t[mk.0 * ksize + mk.1] -= diff;
                }
            }
        }
    }
    itab
}

/// `cv2.getRotationMatrix2D(center, angle, scale)` (degrees, counter-clockwise positive).
pub fn rotation_matrix(center: (f64, f64), angle: f64, scale: f64) -> [f64; 6] {
    let a = angle.to_radians();
    let alpha = a.cos() * scale;
    let beta = a.sin() * scale;
    [alpha, beta, (1.0 - alpha) * center.0 - beta * center.1, -beta, alpha, beta * center.0 + (1.0 - alpha) * center.1]
}

/// `cv2.warpAffine(img, m, (out_w, out_h), flags=interp, borderMode=BORDER_CONSTANT,
/// borderValue=border)` for a forward matrix `m` (source → destination); `border` holds one
/// value per channel of `img`.
///
/// # Panics
/// When `border` has fewer values than the image has channels.
pub fn warp_affine(img: &Image, m: [f64; 6], out_w: usize, out_h: usize, interp: WarpInterpolation, border: &[u8]) -> Image {
    let (w, h, c) = (img.width(), img.height(), img.channels());
    let cval = &border[..c];
    // Invert the matrix, as `warpAffine` does without WARP_INVERSE_MAP.
    let mut mm = m;
    let d = mm[0] * mm[4] - mm[1] * mm[3];
    let d = if d != 0.0 { 1.0 / d } else { 0.0 };
    let (a11, a22) = (mm[4] * d, mm[0] * d);
    mm[0] = a11;
    mm[1] *= -d;
    mm[3] *= -d;
    mm[4] = a22;
    let b1 = -mm[0] * mm[2] - mm[1] * mm[5];
    let b2 = -mm[3] * mm[2] - mm[4] * mm[5];
    mm[2] = b1;
    mm[5] = b2;

    let adelta: Vec<i32> = (0..out_w).map(|x| round_i32(mm[0] * x as f64 * AB_SCALE)).collect();
    let bdelta: Vec<i32> = (0..out_w).map(|x| round_i32(mm[3] * x as f64 * AB_SCALE)).collect();
    let nearest = interp == WarpInterpolation::Nearest;
    let round_delta = if nearest { (1 << AB_BITS) / 2 } else { (1 << AB_BITS) / INTER_TAB_SIZE / 2 };
    let ksize = interp.ksize();
    let table = if nearest { Vec::new() } else { weight_table(interp) };
    let src = img.data();
    let mut out = vec![0u8; out_w * out_h * c];
    let half = (ksize / 2) as i64 - 1;
    let mut acc = vec![0i32; c];
    for y in 0..out_h {
        let x0 = round_i32((mm[1] * y as f64 + mm[2]) * AB_SCALE) + round_delta;
        let y0 = round_i32((mm[4] * y as f64 + mm[5]) * AB_SCALE) + round_delta;
        for x in 0..out_w {
            let dst = &mut out[(y * out_w + x) * c..(y * out_w + x + 1) * c];
            if nearest {
                let sx = i64::from((x0 + adelta[x]) >> AB_BITS).clamp(-32768, 32767);
                let sy = i64::from((y0 + bdelta[x]) >> AB_BITS).clamp(-32768, 32767);
                if (0..w as i64).contains(&sx) && (0..h as i64).contains(&sy) {
                    let i = (sy as usize * w + sx as usize) * c;
                    dst.copy_from_slice(&src[i..i + c]);
                } else {
                    dst.copy_from_slice(cval);
                }
                continue;
            }
            let xf = (x0 + adelta[x]) >> (AB_BITS - INTER_BITS);
            let yf = (y0 + bdelta[x]) >> (AB_BITS - INTER_BITS);
            let sx = i64::from(xf >> INTER_BITS).clamp(-32768, 32767) - half;
            let sy = i64::from(yf >> INTER_BITS).clamp(-32768, 32767) - half;
            let alpha = ((yf & (INTER_TAB_SIZE - 1)) * INTER_TAB_SIZE + (xf & (INTER_TAB_SIZE - 1))) as usize;
            let wt = &table[alpha * ksize * ksize..(alpha + 1) * ksize * ksize];
            let k = ksize as i64;
            // Bilinear: a window entirely outside gives the border value outright.
            if interp == WarpInterpolation::Bilinear && (sx >= w as i64 || sx + 1 < 0 || sy >= h as i64 || sy + 1 < 0) {
                dst.copy_from_slice(cval);
                continue;
            }
            // Bicubic/Lanczos: OpenCV also writes the border value outright when the whole
            // window misses the image.
            if interp != WarpInterpolation::Bilinear && (sx + k <= 0 || sx >= w as i64 || sy + k <= 0 || sy >= h as i64) {
                dst.copy_from_slice(cval);
                continue;
            }
            acc.fill(0);
            for ky in 0..ksize {
                let yy = sy + ky as i64;
                let row_in = (0..h as i64).contains(&yy);
                for kx in 0..ksize {
                    let xx = sx + kx as i64;
                    let wv = wt[ky * ksize + kx];
                    if row_in && (0..w as i64).contains(&xx) {
                        let i = (yy as usize * w + xx as usize) * c;
                        for (a, &v) in acc.iter_mut().zip(&src[i..i + c]) {
                            *a += i32::from(v) * wv;
                        }
                    } else {
                        for (a, &v) in acc.iter_mut().zip(cval) {
                            *a += i32::from(v) * wv;
                        }
                    }
                }
            }
            for (d, &a) in dst.iter_mut().zip(&acc) {
                *d = ((a + (1 << (REMAP_COEF_BITS - 1))) >> REMAP_COEF_BITS).clamp(0, 255) as u8;
            }
        }
    }
    Image::from_raw(out_w, out_h, c, out).unwrap_or_else(|| Image::filled(out_w, out_h, cval))
}

/// `mmcv.imrotate(img, angle, center, border_value, interpolation, auto_bound)`: rotates
/// **clockwise** by `angle` degrees about `center` (default the image centre
/// `((w−1)/2, (h−1)/2)`); the output keeps the input size unless `auto_bound`, which grows it
/// to hold the whole rotated image (`round(h·|sin| + w·|cos|)` wide).
pub fn imrotate(img: &Image, angle: f64, center: Option<(f64, f64)>, border: &[u8], interp: WarpInterpolation, auto_bound: bool) -> Image {
    let (w, h) = (img.width(), img.height());
    let center = center.unwrap_or(((w as f64 - 1.0) * 0.5, (h as f64 - 1.0) * 0.5));
    let mut m = rotation_matrix(center, -angle, 1.0);
    let (mut out_w, mut out_h) = (w, h);
    if auto_bound {
        let (cos, sin) = (m[0].abs(), m[1].abs());
        let new_w = h as f64 * sin + w as f64 * cos;
        let new_h = h as f64 * cos + w as f64 * sin;
        m[2] += (new_w - w as f64) * 0.5;
        m[5] += (new_h - h as f64) * 0.5;
        out_w = new_w.round_ties_even() as usize;
        out_h = new_h.round_ties_even() as usize;
    }
    warp_affine(img, m, out_w, out_h, interp, border)
}

/// The direction of [`imshear`] and [`imtranslate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarpDirection {
    /// Along x.
    Horizontal,
    /// Along y.
    Vertical,
}

/// `mmcv.imshear(img, magnitude, direction, border_value, interpolation)`: the affine map
/// `[[1, m, 0], [0, 1, 0]]` (horizontal) or `[[1, 0, 0], [m, 1, 0]]` (vertical), built in
/// `float32` as mmcv does, through `warpAffine` at the input size.
pub fn imshear(img: &Image, magnitude: f64, direction: WarpDirection, border: &[u8], interp: WarpInterpolation) -> Image {
    let m = f64::from(magnitude as f32);
    let matrix = match direction {
        WarpDirection::Horizontal => [1.0, m, 0.0, 0.0, 1.0, 0.0],
        WarpDirection::Vertical => [1.0, 0.0, 0.0, m, 1.0, 0.0],
    };
    warp_affine(img, matrix, img.width(), img.height(), interp, border)
}

/// `mmcv.imtranslate(img, offset, direction, border_value, interpolation)`: a shift by
/// `offset` pixels (rounded to `float32`, as mmcv's matrix is) through `warpAffine`.
pub fn imtranslate(img: &Image, offset: f64, direction: WarpDirection, border: &[u8], interp: WarpInterpolation) -> Image {
    let o = f64::from(offset as f32);
    let matrix = match direction {
        WarpDirection::Horizontal => [1.0, 0.0, o, 0.0, 1.0, 0.0],
        WarpDirection::Vertical => [1.0, 0.0, 0.0, 0.0, 1.0, o],
    };
    warp_affine(img, matrix, img.width(), img.height(), interp, border)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_tables_sum_to_one() {
        for m in [WarpInterpolation::Bilinear, WarpInterpolation::Bicubic, WarpInterpolation::Lanczos4] {
            let k = m.ksize() * m.ksize();
            for t in weight_table(m).chunks_exact(k) {
                assert_eq!(t.iter().sum::<i32>(), REMAP_COEF_SCALE, "{m:?}");
            }
        }
    }

    #[test]
    fn right_angles_permute_pixels() {
        let img = Image::from_fn(5, 5, |x, y| [(x * 10 + y) as u8]);
        for interp in [WarpInterpolation::Nearest, WarpInterpolation::Bilinear, WarpInterpolation::Bicubic, WarpInterpolation::Lanczos4] {
            let r = imrotate(&img, 90.0, None, &[0], interp, false);
            // Clockwise: the output's top row is the input's left column, bottom to top.
            for x in 0..5 {
                assert_eq!(r.pixel(x, 0)[0], img.pixel(0, 4 - x)[0], "{interp:?}");
            }
            let r = imrotate(&img, 180.0, None, &[0], interp, false);
            assert_eq!(r.pixel(0, 0), img.pixel(4, 4), "{interp:?}");
        }
    }

    #[test]
    fn expand_holds_the_whole_image_and_fills_the_border() {
        let img = Image::filled(10, 4, &[200, 100, 50]);
        let r = imrotate(&img, 90.0, None, &[1, 2, 3], WarpInterpolation::Nearest, true);
        assert_eq!((r.width(), r.height()), (4, 10));
        assert!(r.data().chunks(3).all(|p| p == [200, 100, 50]));
        let r = imrotate(&img, 45.0, None, &[1, 2, 3], WarpInterpolation::Bilinear, true);
        assert_eq!((r.width(), r.height()), (10, 10));
        assert_eq!(r.pixel(0, 0), &[1, 2, 3]);
    }
}
