//! The in-pipeline image type and the image operations the transforms are built from.
//!
//! This mirrors `mmcv.image`: [`io`] is `mmcv/image/io.py` (`imread`), [`geometric`] is
//! `mmcv/image/geometric.py` (`imresize`, `imcrop`, `imflip`, `impad`), with the two resize
//! back-ends in [`pillow`] (Pillow's `Image.resize`, bit-exact for 8-bit images) and [`cv2`]
//! (OpenCV's `cv2.resize`, its scalar fixed-point path), and `imrotate` with OpenCV's
//! `warpAffine` in [`cv2_warp`]; [`photometric`] is
//! `mmcv/image/photometric.py` (`solarize`, `adjust_*`; the OpenCV/NumPy paths that mmcls's
//! `RandAugment` uses are in [`photometric_cv2`]), built on Pillow's colour primitives:
//! `ImageEnhance` and `ImageStat` in [`pillow_enhance`], `Image.blend` in [`pillow_blend`],
//! the `L` and `HSV` conversions in [`pillow_convert`]; [`pillow_filter`] is Pillow's
//! `GaussianBlur`. The Pillow ports are bit-exact for 8-bit images.

pub mod cv2;
pub mod cv2_warp;
pub mod geometric;
pub mod io;
mod kernels;
pub mod photometric;
pub mod photometric_cv2;
pub mod pillow;
pub mod pillow_blend;
pub mod pillow_convert;
pub mod pillow_enhance;
pub mod pillow_filter;
#[cfg(test)]
mod pillow_reference;

pub use geometric::{FlipDirection, Interpolation, PaddingMode, ResizeBackend};

/// An 8-bit image, row-major HWC (height, width, channels), channels in **RGB** order.
///
/// MMSelfSup's pipelines hold BGR arrays (mmcv decodes with OpenCV); this crate decodes RGB
/// directly and the channel order only matters at normalisation time: see
/// `selfsup_core::DataPreprocessorConfig`.
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    width: usize,
    height: usize,
    channels: usize,
    data: Vec<u8>,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl Image {
    /// Wraps an HWC buffer. Returns `None` when `data.len() != width * height * channels`
    /// or `channels == 0`.
    pub fn from_raw(width: usize, height: usize, channels: usize, data: Vec<u8>) -> Option<Self> {
        (channels > 0 && width.checked_mul(height)?.checked_mul(channels)? == data.len()).then_some(Self { width, height, channels, data })
    }

    /// An image filled with one value per channel (`value.len()` channels).
    pub fn filled(width: usize, height: usize, value: &[u8]) -> Self {
        let channels = value.len().max(1);
        let mut data = Vec::with_capacity(width * height * channels);
        for _ in 0..width * height {
            if value.is_empty() {
                data.push(0);
            } else {
                data.extend_from_slice(value);
            }
        }
        Self { width, height, channels, data }
    }

    /// Builds an image by calling `f(x, y)` for every pixel (`C` channels).
    pub fn from_fn<const C: usize>(width: usize, height: usize, mut f: impl FnMut(usize, usize) -> [u8; C]) -> Self {
        let mut data = Vec::with_capacity(width * height * C);
        for y in 0..height {
            for x in 0..width {
                data.extend_from_slice(&f(x, y));
            }
        }
        Self { width, height, channels: C, data }
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Number of channels (3 for RGB).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// `true` when the image has no pixel.
    pub fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }

    /// The HWC buffer.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The HWC buffer, mutable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Consumes the image and returns its HWC buffer.
    pub fn into_raw(self) -> Vec<u8> {
        self.data
    }

    /// The channel values of pixel `(x, y)`.
    ///
    /// # Panics
    /// When `(x, y)` is outside the image.
    pub fn pixel(&self, x: usize, y: usize) -> &[u8] {
        let i = (y * self.width + x) * self.channels;
        &self.data[i..i + self.channels]
    }

    /// Appends the image as CHW `f32` values (0..255) to `out`: the values
    /// [`write_chw_f32`](Self::write_chw_f32) writes, without a zero-filled buffer first.
    pub fn extend_chw_f32(&self, out: &mut Vec<f32>) {
        let c = self.channels;
        out.reserve(self.data.len());
        for k in 0..c {
            // `ChunksExact` and `Map` report their exact length: no per-value capacity check.
            out.extend(self.data.chunks_exact(c).map(|px| f32::from(px[k])));
        }
    }

    /// Writes the image as CHW `f32` values (0..255) into `out`, which must hold
    /// `channels * height * width` values.
    pub fn write_chw_f32(&self, out: &mut [f32]) {
        let plane = self.width * self.height;
        debug_assert_eq!(out.len(), plane * self.channels);
        if self.channels == 3 && out.len() == 3 * plane {
            // The common case: three planes, filled side by side.
            let (r, gb) = out.split_at_mut(plane);
            let (g, b) = gb.split_at_mut(plane);
            for (((px, r), g), b) in self.data.chunks_exact(3).zip(r).zip(g).zip(b) {
                *r = f32::from(px[0]);
                *g = f32::from(px[1]);
                *b = f32::from(px[2]);
            }
            return;
        }
        for (p, px) in self.data.chunks_exact(self.channels).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                out[c * plane + p] = f32::from(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chw_f32_is_the_transposed_hwc_buffer() {
        for c in 1..=4 {
            let img = Image::from_fn::<4>(7, 5, |x, y| [(x * 31 + y) as u8, (y * 17) as u8, (x ^ y) as u8, 200]);
            let data: Vec<u8> = img.data().chunks_exact(4).flat_map(|p| p[..c].to_vec()).collect();
            let img = Image::from_raw(7, 5, c, data).expect("valid");
            let mut out = vec![0f32; 7 * 5 * c];
            img.write_chw_f32(&mut out);
            let mut appended = vec![-1.0];
            img.extend_chw_f32(&mut appended);
            assert_eq!(appended[1..], out[..]);
            for y in 0..5 {
                for x in 0..7 {
                    for k in 0..c {
                        assert_eq!(out[(k * 5 + y) * 7 + x], f32::from(img.pixel(x, y)[k]));
                    }
                }
            }
        }
    }
}
