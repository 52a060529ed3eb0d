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

use super::Image;

/// `CLIP8`: clamps to `0..=255`.
fn clip8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
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
    Image::from_raw(im1.width(), im1.height(), im1.channels(), data).unwrap_or_else(|| im1.clone())
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
        .map(|p| {
            ((u32::from(p[0]) * 19595 + u32::from(p[1]) * 38470 + u32::from(p[2]) * 7471 + 0x8000)
                >> 16) as u8
        })
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

/// `rgb2hsv_row`, following `colorsys.py`, with Pillow's float/double mix.
fn rgb_to_hsv_px(r: u8, g: u8, b: u8) -> [u8; 3] {
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
    // C's fmod, on doubles.
    let h = ((f64::from(h) / 6.0 + 1.0) % 1.0) as f32;
    let uh = clip8((f64::from(h) * 255.0) as i32);
    let us = clip8((f64::from(s) * 255.0) as i32);
    [uh, us, maxc]
}

/// `hsv2rgb`, following `colorsys.py`, with Pillow's float/double mix and C's `round`
/// (half away from zero).
fn hsv_to_rgb_px(h: u8, s: u8, v: u8) -> [u8; 3] {
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

/// `convert('HSV')` of an RGB image: a 3-channel image holding H, S, V (each `0..=255`).
pub fn rgb_to_hsv(img: &Image) -> Image {
    map_px(img, rgb_to_hsv_px)
}

/// `convert('RGB')` of an HSV image (as returned by [`rgb_to_hsv`]).
pub fn hsv_to_rgb(img: &Image) -> Image {
    map_px(img, hsv_to_rgb_px)
}

fn map_px(img: &Image, f: fn(u8, u8, u8) -> [u8; 3]) -> Image {
    debug_assert_eq!(img.channels(), 3);
    let data = img
        .data()
        .chunks_exact(3)
        .flat_map(|p| f(p[0], p[1], p[2]))
        .collect();
    Image::from_raw(img.width(), img.height(), 3, data).unwrap_or_else(|| img.clone())
}

/// The degenerate image of an enhancer converted to the mode of `like` (`L` or RGB).
fn in_mode_of(degenerate_l: Image, like: &Image) -> Image {
    if like.channels() == 1 {
        degenerate_l
    } else {
        l_to_rgb(&degenerate_l)
    }
}

/// `ImageEnhance.Brightness(img).enhance(factor)`: a blend with a black image.
pub fn enhance_brightness(img: &Image, factor: f64) -> Image {
    let black = Image::filled(img.width(), img.height(), &vec![0; img.channels()]);
    blend(&black, img, factor as f32)
}

/// `ImageEnhance.Contrast(img).enhance(factor)`: a blend with a uniform grey image whose
/// value is the mean of `img.convert('L')`, rounded as `int(mean + 0.5)`.
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

/// `ImageEnhance.Color(img).enhance(factor)`: a blend with `img.convert('L').convert('RGB')`
/// (an `L` image is its own degenerate: unchanged).
pub fn enhance_color(img: &Image, factor: f64) -> Image {
    if img.channels() == 1 {
        return blend(img, img, factor as f32);
    }
    blend(&l_to_rgb(&rgb_to_l(img)), img, factor as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

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
