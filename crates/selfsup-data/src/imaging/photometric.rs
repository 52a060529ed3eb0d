//! Photometric image operations. Counterpart of `mmcv/image/photometric.py` (mmcv 2.0.1):
//! `solarize` and the `backend='pillow'` paths of `adjust_brightness`, `adjust_contrast`,
//! `adjust_color` and `adjust_hue`, which MMSelfSup's `ColorJitter` calls.
//!
//! mmcv's Pillow paths reverse its BGR arrays into an RGB `PIL.Image`, enhance, and reverse
//! back; this crate's images are RGB already, so the Pillow operations
//! ([`pillow_enhance`](super::pillow_enhance)) apply directly and the results are the same
//! pixels in the other channel order. All are bit-exact.

use super::pillow_enhance::{enhance_brightness_in_place, enhance_color_in_place, enhance_contrast_in_place, shift_hue_in_place};
use super::Image;

/// `mmcv.solarize(img, thr)`: values `>= thr` become `255 − v` (`np.where(img < thr, img,
/// 255 - img)`).
pub fn solarize(img: &Image, thr: f64) -> Image {
    let mut out = img.clone();
    for v in out.data_mut() {
        if f64::from(*v) >= thr {
            *v = 255 - *v;
        }
    }
    out
}

/// `mmcv.adjust_brightness(img, factor, backend='pillow')`: `ImageEnhance.Brightness`.
pub fn adjust_brightness(img: &Image, factor: f64) -> Image {
    let mut out = img.clone();
    adjust_brightness_in_place(&mut out, factor);
    out
}

/// [`adjust_brightness`], in place.
pub fn adjust_brightness_in_place(img: &mut Image, factor: f64) {
    enhance_brightness_in_place(img, factor);
}

/// `mmcv.adjust_contrast(img, factor, backend='pillow')`: `ImageEnhance.Contrast`, i.e. a
/// blend with the uniform grey of the image's mean luma (`int(mean(L) + 0.5)`).
pub fn adjust_contrast(img: &Image, factor: f64) -> Image {
    let mut out = img.clone();
    adjust_contrast_in_place(&mut out, factor);
    out
}

/// [`adjust_contrast`], in place.
pub fn adjust_contrast_in_place(img: &mut Image, factor: f64) {
    enhance_contrast_in_place(img, factor);
}

/// `mmcv.adjust_color(img, alpha, backend='pillow')`: `ImageEnhance.Color` (saturation).
pub fn adjust_color(img: &Image, alpha: f64) -> Image {
    let mut out = img.clone();
    adjust_color_in_place(&mut out, alpha);
    out
}

/// [`adjust_color`], in place.
pub fn adjust_color_in_place(img: &mut Image, alpha: f64) {
    enhance_color_in_place(img, alpha);
}

/// The hue shift `np.uint8(hue_factor * 255)` of mmcv's `adjust_hue`: truncated toward zero
/// and wrapped modulo 256 (so `-0.1` shifts by `231`).
pub fn hue_shift(hue_factor: f64) -> u8 {
    ((hue_factor * 255.0).trunc() as i64).rem_euclid(256) as u8
}

/// `mmcv.adjust_hue(img, hue_factor, backend='pillow')` of an RGB image: Pillow's
/// `convert('HSV')`, `H += np.uint8(hue_factor · 255)` modulo 256, `convert('RGB')`.
/// The HSV round trip is lossy, so a zero shift may still change pixels, as in mmcv.
/// `hue_factor` must be in `[-0.5, 0.5]` (callers check it; mmcv raises).
pub fn adjust_hue(img: &Image, hue_factor: f64) -> Image {
    let mut out = img.clone();
    adjust_hue_in_place(&mut out, hue_factor);
    out
}

/// [`adjust_hue`], in place (one pass, pixel by pixel, no intermediate HSV image).
pub fn adjust_hue_in_place(img: &mut Image, hue_factor: f64) {
    shift_hue_in_place(img, hue_shift(hue_factor));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solarize_inverts_at_and_above_the_threshold() {
        let img = Image::from_fn(4, 1, |x, _| [[0u8, 127, 128, 255][x]]);
        assert_eq!(solarize(&img, 128.0).data(), &[0, 127, 127, 0]);
        assert_eq!(solarize(&img, 0.0).data(), &[255, 128, 127, 0]);
        assert_eq!(solarize(&img, 256.0).data(), img.data());
    }

    #[test]
    fn hue_shift_is_numpy_uint8_of_a_float() {
        assert_eq!(hue_shift(0.1), 25);
        assert_eq!(hue_shift(-0.1), 231);
        assert_eq!(hue_shift(-0.5), 129);
        assert_eq!(hue_shift(0.5), 127);
        assert_eq!(hue_shift(-0.0039), 0);
    }
}
