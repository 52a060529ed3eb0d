//! Test support for the Pillow colour ports ([`pillow_blend`](super::pillow_blend),
//! [`pillow_convert`](super::pillow_convert), [`pillow_enhance`](super::pillow_enhance)):
//! the straightforward ports these functions replaced (libm's `fmod`, `round` and `floor`,
//! Pillow's explicit clipping, and enhancers built from whole degenerate images), and random
//! test images.

use super::pillow_convert::{clip8, l_to_rgb, rgb_to_l};
use super::pillow_enhance::mean_l;
use super::Image;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

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
    let data = img.data().chunks_exact(3).flat_map(|p| f(p[0], p[1], p[2])).collect();
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
    let mean = if mean.is_finite() { (mean + 0.5) as u8 } else { 0 };
    let grey = Image::filled(img.width(), img.height(), &[mean]);
    blend(&in_mode_of(grey, img), img, factor as f32)
}

pub fn enhance_color(img: &Image, factor: f64) -> Image {
    if img.channels() == 1 {
        return blend(img, img, factor as f32);
    }
    blend(&l_to_rgb(&rgb_to_l(img)), img, factor as f32)
}

pub fn random_image(rng: &mut ChaCha8Rng, channels: usize) -> Image {
    let (w, h) = (rng.random_range(1..40), rng.random_range(1..30));
    // Half the images are low-contrast (values close together, many greys and ties).
    let (lo, hi) = if rng.random_bool(0.5) {
        (0u8, 255u8)
    } else {
        let lo = rng.random_range(0..=250u8);
        (lo, lo + 5)
    };
    let data = (0..w * h * channels).map(|_| rng.random_range(lo..=hi)).collect();
    Image::from_raw(w, h, channels, data).unwrap()
}
