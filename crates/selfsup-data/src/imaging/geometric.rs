//! Geometric image operations. Counterpart of `mmcv/image/geometric.py`
//! (`imresize`, `imcrop`, `imflip`, `impad`).

use serde::{Deserialize, Serialize};

use super::cv2::{self, Cv2Interpolation};
use super::pillow::{self, PillowFilter};
use super::Image;
use crate::DataError;

/// Interpolation names accepted by mmcv's `imresize` (`interpolation=` in transform configs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    /// `'nearest'`.
    Nearest,
    /// `'bilinear'` (mmcv's default).
    #[default]
    Bilinear,
    /// `'bicubic'`.
    Bicubic,
    /// `'area'` (OpenCV `INTER_AREA`; Pillow has no such filter).
    Area,
    /// `'lanczos'`.
    Lanczos,
    /// `'box'` (Pillow only).
    Box,
    /// `'hamming'` (Pillow only).
    Hamming,
}

/// Resize back-end names accepted by mmcv (`backend=` in transform configs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeBackend {
    /// `'cv2'`: OpenCV semantics (no antialiasing), mmcv's default.
    #[default]
    Cv2,
    /// `'pillow'`: Pillow semantics (antialiased), what most MMSelfSup configs select.
    Pillow,
}

/// Checks that `interpolation` is implemented for `backend` (done when a transform is built,
/// so a bad config fails before any data is read).
///
/// # Errors
/// [`DataError::InvalidConfig`] naming `component` for unsupported combinations:
/// `area`/`lanczos`/`box`/`hamming` with `cv2`, and `area` with `pillow` (as in mmcv).
pub fn check_interpolation(component: &str, interpolation: Interpolation, backend: ResizeBackend) -> Result<(), DataError> {
    let ok = match backend {
        ResizeBackend::Pillow => interpolation != Interpolation::Area,
        ResizeBackend::Cv2 => matches!(interpolation, Interpolation::Nearest | Interpolation::Bilinear | Interpolation::Bicubic),
    };
    if ok {
        Ok(())
    } else {
        Err(DataError::config(
            component,
            format!(
                "interpolation {interpolation:?} is not available with backend {backend:?} \
                 (cv2: nearest|bilinear|bicubic; pillow: nearest|bilinear|bicubic|lanczos|box|hamming)"
            ),
        ))
    }
}

/// `mmcv.imresize(img, (out_w, out_h), interpolation, backend=backend)`.
///
/// # Errors
/// [`DataError::InvalidConfig`] for combinations rejected by [`check_interpolation`].
pub fn imresize(img: &Image, out_w: usize, out_h: usize, interpolation: Interpolation, backend: ResizeBackend) -> Result<Image, DataError> {
    check_interpolation("imresize", interpolation, backend)?;
    Ok(match backend {
        ResizeBackend::Pillow => pillow::resize(img, out_w, out_h, pillow_filter(interpolation)),
        ResizeBackend::Cv2 => {
            let interp = match interpolation {
                Interpolation::Nearest => Cv2Interpolation::Nearest,
                Interpolation::Bicubic => Cv2Interpolation::Bicubic,
                _ => Cv2Interpolation::Bilinear,
            };
            cv2::resize(img, out_w, out_h, interp)
        }
    })
}

/// `imresize(&crop_window(img, left, top, width, height), out_w, out_h, interpolation,
/// backend)`; the Pillow back-end resamples the window in place, without copying it first.
///
/// # Errors
/// As [`imresize`].
#[allow(clippy::too_many_arguments)]
pub fn imresize_window(
    img: &Image,
    left: usize,
    top: usize,
    width: usize,
    height: usize,
    out_w: usize,
    out_h: usize,
    interpolation: Interpolation,
    backend: ResizeBackend,
) -> Result<Image, DataError> {
    match backend {
        ResizeBackend::Pillow => {
            check_interpolation("imresize", interpolation, backend)?;
            Ok(pillow::resize_crop(img, left, top, width, height, out_w, out_h, pillow_filter(interpolation)))
        }
        ResizeBackend::Cv2 => imresize(&crop_window(img, left, top, width, height), out_w, out_h, interpolation, backend),
    }
}

/// The Pillow filter of an interpolation (`Area` is rejected by [`check_interpolation`]
/// before this is reached).
fn pillow_filter(interpolation: Interpolation) -> PillowFilter {
    match interpolation {
        Interpolation::Nearest => PillowFilter::Nearest,
        Interpolation::Bilinear => PillowFilter::Bilinear,
        Interpolation::Bicubic => PillowFilter::Bicubic,
        Interpolation::Lanczos => PillowFilter::Lanczos,
        Interpolation::Hamming => PillowFilter::Hamming,
        Interpolation::Box | Interpolation::Area => PillowFilter::Box,
    }
}

/// `mmcv.imcrop(img, [x1, y1, x2, y2])` for one box: the **inclusive** box is clipped to the
/// image, so the result is `img[y1..=y2, x1..=x2]` ∩ image.
pub fn imcrop(img: &Image, x1: usize, y1: usize, x2: usize, y2: usize) -> Image {
    let (w, h, c) = (img.width(), img.height(), img.channels());
    if w == 0 || h == 0 {
        return img.clone();
    }
    let x1 = x1.min(w - 1);
    let y1 = y1.min(h - 1);
    let x2 = x2.min(w - 1).max(x1);
    let y2 = y2.min(h - 1).max(y1);
    crop(img, x1, y1, x2 - x1 + 1, y2 - y1 + 1, c)
}

/// Crops the `width × height` window at `(left, top)` (clipped to the image).
pub fn crop_window(img: &Image, left: usize, top: usize, width: usize, height: usize) -> Image {
    let left = left.min(img.width());
    let top = top.min(img.height());
    let width = width.min(img.width() - left);
    let height = height.min(img.height() - top);
    crop(img, left, top, width, height, img.channels())
}

fn crop(img: &Image, left: usize, top: usize, width: usize, height: usize, c: usize) -> Image {
    if left == 0 && top == 0 && width == img.width() && height == img.height() {
        return img.clone();
    }
    let src = img.data();
    let row = img.width() * c;
    let mut data = Vec::with_capacity(width * height * c);
    for y in top..top + height {
        let start = y * row + left * c;
        data.extend_from_slice(&src[start..start + width * c]);
    }
    Image::from_raw(width, height, c, data).unwrap_or_else(|| Image::filled(width, height, &vec![0; c]))
}

/// Flip directions of `mmcv.imflip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlipDirection {
    /// Mirror left ↔ right.
    Horizontal,
    /// Mirror top ↔ bottom.
    Vertical,
    /// Both (a 180° rotation).
    Diagonal,
}

/// `mmcv.imflip(img, direction)`.
pub fn imflip(img: &Image, direction: FlipDirection) -> Image {
    let mut out = img.clone();
    imflip_in_place(&mut out, direction);
    out
}

/// [`imflip`], in place.
pub fn imflip_in_place(img: &mut Image, direction: FlipDirection) {
    let (h, c) = (img.height(), img.channels());
    let row_len = img.width() * c;
    if row_len == 0 || h == 0 {
        return;
    }
    let data = img.data_mut();
    if matches!(direction, FlipDirection::Vertical | FlipDirection::Diagonal) {
        // Swap row y with row h - 1 - y.
        let (top, bottom) = data.split_at_mut(h / 2 * row_len);
        let bottom = &mut bottom[(h % 2) * row_len..];
        for (a, b) in top.chunks_exact_mut(row_len).zip(bottom.chunks_exact_mut(row_len).rev()) {
            a.swap_with_slice(b);
        }
    }
    if matches!(direction, FlipDirection::Horizontal | FlipDirection::Diagonal) {
        for row in data.chunks_exact_mut(row_len) {
            reverse_pixels(row, c);
        }
    }
}

/// Reverses the order of the `c`-byte pixels of `row`.
fn reverse_pixels(row: &mut [u8], c: usize) {
    match c {
        1 => row.reverse(),
        3 => row.as_chunks_mut::<3>().0.reverse(),
        4 => row.as_chunks_mut::<4>().0.reverse(),
        _ => {
            let w = row.len() / c;
            for i in 0..w / 2 {
                let (a, b) = row.split_at_mut((w - 1 - i) * c);
                a[i * c..(i + 1) * c].swap_with_slice(&mut b[..c]);
            }
        }
    }
}

/// `mmcv.impad(img, shape=(height, width), pad_val)`: pads at the bottom and right with a
/// constant; never crops.
pub fn impad(img: &Image, width: usize, height: usize, pad_val: u8) -> Image {
    let (w, h, c) = (img.width(), img.height(), img.channels());
    let (nw, nh) = (width.max(w), height.max(h));
    if (nw, nh) == (w, h) {
        return img.clone();
    }
    let mut data = vec![pad_val; nw * nh * c];
    for y in 0..h {
        data[y * nw * c..(y * nw + w) * c].copy_from_slice(&img.data()[y * w * c..(y + 1) * w * c]);
    }
    Image::from_raw(nw, nh, c, data).unwrap_or_else(|| img.clone())
}

/// `padding_mode` of `mmcv.impad` (OpenCV border types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaddingMode {
    /// `'constant'` (`BORDER_CONSTANT`): a fixed value.
    #[default]
    Constant,
    /// `'edge'` (`BORDER_REPLICATE`): the edge pixel repeated, `aaa|abcd|ddd`.
    Edge,
    /// `'reflect'` (`BORDER_REFLECT_101`): mirrored without the edge, `dcb|abcd|cba`.
    Reflect,
    /// `'symmetric'` (`BORDER_REFLECT`): mirrored with the edge, `cba|abcd|dcb`.
    Symmetric,
}

/// OpenCV's `borderInterpolate(p, len, borderType)`: the source index of the out-of-range
/// index `p`, or `None` for [`PaddingMode::Constant`]. Reflections repeat as often as needed,
/// so the padding may exceed the image size.
pub fn border_interpolate(p: i64, len: usize, mode: PaddingMode) -> Option<usize> {
    let n = len as i64;
    if (0..n).contains(&p) {
        return Some(p as usize);
    }
    match mode {
        PaddingMode::Constant => None,
        PaddingMode::Edge => Some(if p < 0 { 0 } else { len - 1 }),
        PaddingMode::Reflect | PaddingMode::Symmetric => {
            if len == 1 {
                return Some(0);
            }
            let delta = i64::from(mode == PaddingMode::Reflect);
            let mut p = p;
            while !(0..n).contains(&p) {
                p = if p < 0 { -p - 1 + delta } else { n - 1 - (p - n) - delta };
            }
            Some(p as usize)
        }
    }
}

/// `mmcv.impad(img, padding=(left, top, right, bottom), padding_mode=mode)`, i.e. OpenCV's
/// `copyMakeBorder`. `fill` holds the constant per channel (this image's channel order) and
/// is only used by [`PaddingMode::Constant`].
///
/// # Panics
/// When `mode` is `Constant` and `fill` has fewer values than the image has channels.
pub fn impad_border(img: &Image, [left, top, right, bottom]: [usize; 4], mode: PaddingMode, fill: &[u8]) -> Image {
    let (w, h, c) = (img.width(), img.height(), img.channels());
    if left + top + right + bottom == 0 {
        return img.clone();
    }
    let (nw, nh) = (w + left + right, h + top + bottom);
    // An empty image has nothing to replicate: only a constant border makes sense.
    let mode = if img.is_empty() { PaddingMode::Constant } else { mode };
    let src = img.data();
    let mut data = Vec::with_capacity(nw * nh * c);
    for y in 0..nh {
        let sy = border_interpolate(y as i64 - top as i64, h, mode);
        for x in 0..nw {
            let sx = border_interpolate(x as i64 - left as i64, w, mode);
            match (sx, sy) {
                (Some(sx), Some(sy)) => {
                    let i = (sy * w + sx) * c;
                    data.extend_from_slice(&src[i..i + c]);
                }
                _ => data.extend_from_slice(&fill[..c]),
            }
        }
    }
    Image::from_raw(nw, nh, c, data).unwrap_or_else(|| img.clone())
}

/// The source index of every position of NumPy's `np.pad(np.arange(len), (before, after),
/// mode)`, or `None` where [`PaddingMode::Constant`] fills in a constant.
///
/// `edge` repeats the end values. `reflect` and `symmetric` follow NumPy 1.26's
/// `_set_reflect_both` step by step: when a pad is longer than the values available,
/// NumPy reflects in rounds, alternating sides, each round mirroring what the previous
/// rounds wrote. That equals OpenCV's periodic reflection ([`border_interpolate`]) except
/// when one side's pad exceeds the length and the other side is padded too. A length-1 axis
/// is padded with its value (NumPy's legacy rule for `reflect` and `symmetric`). An empty
/// axis has no value to repeat: every position is `None`.
pub fn np_pad_indices(len: usize, before: usize, after: usize, mode: PaddingMode) -> Vec<Option<usize>> {
    let total = before + len + after;
    let mut idx: Vec<Option<usize>> = (0..total).map(|p| p.checked_sub(before).filter(|&i| i < len)).collect();
    if len == 0 || mode == PaddingMode::Constant {
        return idx;
    }
    if mode == PaddingMode::Edge || len == 1 {
        for (p, v) in idx.iter_mut().enumerate() {
            *v = Some(p.saturating_sub(before).min(len - 1));
        }
        return idx;
    }
    // `include_edge` (symmetric) mirrors the edge value too; reflect mirrors about it.
    let edge_offset = usize::from(mode == PaddingMode::Symmetric);
    let (mut left, mut right) = (before, after);
    while left > 0 || right > 0 {
        // The values available this round: the original ones and everything padded so far.
        let old_length = total - left - right - (1 - edge_offset);
        if left > 0 {
            let chunk = old_length.min(left);
            // `padded[start:stop:-1]` with `stop = left - edge_offset`, into
            // `padded[left - chunk:left]`.
            let stop = left - edge_offset;
            for k in 0..chunk {
                idx[left - chunk + k] = idx[stop + chunk - k];
            }
            left -= chunk;
        }
        if right > 0 {
            let chunk = old_length.min(right);
            // `padded[start:start - chunk:-1]` with `start = -right + edge_offset - 2`, into
            // `padded[total - right:total - right + chunk]`.
            let start = total - right + edge_offset - 2;
            for k in 0..chunk {
                idx[total - right + k] = idx[start - k];
            }
            right -= chunk;
        }
    }
    idx
}

/// torchvision's `pad` of a PIL image (`torchvision.transforms.functional_pil.pad`) by
/// `[left, top, right, bottom]`: `ImageOps.expand` with `fill` (one value per channel, this
/// image's channel order) for [`PaddingMode::Constant`], `np.pad` with `mode` otherwise
/// (see [`np_pad_indices`]; padding is separable, so each output pixel is the input pixel at
/// the padded row's and column's source indices).
///
/// # Panics
/// When a constant is needed and `fill` has fewer values than the image has channels.
pub fn np_pad(img: &Image, [left, top, right, bottom]: [usize; 4], mode: PaddingMode, fill: &[u8]) -> Image {
    let (w, h, c) = (img.width(), img.height(), img.channels());
    if left + top + right + bottom == 0 {
        return img.clone();
    }
    let rows = np_pad_indices(h, top, bottom, mode);
    let cols = np_pad_indices(w, left, right, mode);
    let src = img.data();
    let mut data = Vec::with_capacity(rows.len() * cols.len() * c);
    for sy in &rows {
        for sx in &cols {
            match (sx, sy) {
                (Some(sx), Some(sy)) => {
                    let i = (sy * w + sx) * c;
                    data.extend_from_slice(&src[i..i + c]);
                }
                _ => data.extend_from_slice(&fill[..c]),
            }
        }
    }
    Image::from_raw(cols.len(), rows.len(), c, data).unwrap_or_else(|| img.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Image {
        Image::from_fn(w, h, |x, y| [(y * w + x) as u8, x as u8, y as u8])
    }

    /// In-place flips against the definition, for every channel count and odd and even
    /// sizes.
    #[test]
    fn in_place_flips_match_the_definition() {
        for c in 1..=5 {
            for (w, h) in [(1, 1), (1, 4), (5, 1), (4, 3), (7, 6)] {
                let data: Vec<u8> = (0..w * h * c).map(|i| (i * 37 % 256) as u8).collect();
                let img = Image::from_raw(w, h, c, data).expect("valid");
                for d in [FlipDirection::Horizontal, FlipDirection::Vertical, FlipDirection::Diagonal] {
                    let mut got = img.clone();
                    imflip_in_place(&mut got, d);
                    for y in 0..h {
                        for x in 0..w {
                            let (sx, sy) = match d {
                                FlipDirection::Horizontal => (w - 1 - x, y),
                                FlipDirection::Vertical => (x, h - 1 - y),
                                FlipDirection::Diagonal => (w - 1 - x, h - 1 - y),
                            };
                            assert_eq!(got.pixel(x, y), img.pixel(sx, sy), "{w}x{h}x{c} {d:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn flips_are_exact() {
        let img = ramp(3, 2);
        let hf = imflip(&img, FlipDirection::Horizontal);
        let vf = imflip(&img, FlipDirection::Vertical);
        let df = imflip(&img, FlipDirection::Diagonal);
        for y in 0..2 {
            for x in 0..3 {
                assert_eq!(hf.pixel(x, y), img.pixel(2 - x, y));
                assert_eq!(vf.pixel(x, y), img.pixel(x, 1 - y));
                assert_eq!(df.pixel(x, y), img.pixel(2 - x, 1 - y));
            }
        }
        assert_eq!(imflip(&hf, FlipDirection::Horizontal), img);
    }

    #[test]
    fn imcrop_is_inclusive_and_clipped() {
        let img = ramp(5, 4);
        let c = imcrop(&img, 1, 1, 3, 2);
        assert_eq!((c.width(), c.height()), (3, 2));
        assert_eq!(c.pixel(0, 0), img.pixel(1, 1));
        assert_eq!(c.pixel(2, 1), img.pixel(3, 2));
        let c = imcrop(&img, 3, 2, 10, 10);
        assert_eq!((c.width(), c.height()), (2, 2));
    }

    #[test]
    fn impad_bottom_right() {
        let img = ramp(2, 2);
        let p = impad(&img, 3, 4, 7);
        assert_eq!((p.width(), p.height()), (3, 4));
        assert_eq!(p.pixel(1, 1), img.pixel(1, 1));
        assert_eq!(p.pixel(2, 0), &[7, 7, 7]);
        assert_eq!(p.pixel(0, 3), &[7, 7, 7]);
    }

    /// Pillow and OpenCV outputs recorded by `scripts/gen_resize_golden.py`: Pillow must match
    /// exactly, OpenCV within one intensity level.
    #[test]
    fn resize_matches_pillow_and_opencv_golden_outputs() {
        #[derive(serde::Deserialize)]
        struct Img {
            w: usize,
            h: usize,
            data: Vec<u8>,
        }
        #[derive(serde::Deserialize)]
        struct Case {
            input: usize,
            backend: ResizeBackend,
            interpolation: Interpolation,
            w: usize,
            h: usize,
            data: Vec<u8>,
        }
        #[derive(serde::Deserialize)]
        struct Golden {
            inputs: Vec<Img>,
            cases: Vec<Case>,
        }
        let golden: Golden = serde_json::from_str(include_str!("testdata/resize_golden.json")).expect("golden file parses");
        let inputs: Vec<Image> = golden.inputs.into_iter().map(|i| Image::from_raw(i.w, i.h, 3, i.data).expect("valid input")).collect();
        let mut worst_cv2 = 0;
        for c in &golden.cases {
            let out = imresize(&inputs[c.input], c.w, c.h, c.interpolation, c.backend).expect("supported");
            let max_diff = out.data().iter().zip(&c.data).map(|(&a, &b)| a.abs_diff(b)).max().unwrap_or(0);
            let what = format!("input {} → {}x{} {:?} {:?}", c.input, c.w, c.h, c.backend, c.interpolation);
            assert_eq!(out.data().len(), c.data.len(), "{what}");
            match c.backend {
                ResizeBackend::Pillow => assert_eq!(max_diff, 0, "{what}"),
                ResizeBackend::Cv2 => {
                    assert!(max_diff <= 1, "{what}: max diff {max_diff}");
                    worst_cv2 = worst_cv2.max(max_diff);
                }
            }
        }
        eprintln!("worst OpenCV difference: {worst_cv2}");
        assert!(golden.cases.len() >= 50);
    }

    #[test]
    fn border_modes_follow_opencv() {
        // [1, 2, 3, 4] padded by 2 on both sides, as in mmcv's docstring.
        let row = Image::from_fn(4, 1, |x, _| [x as u8 + 1]);
        let pad = |mode| impad_border(&row, [2, 0, 2, 0], mode, &[9]).into_raw();
        assert_eq!(pad(PaddingMode::Reflect), [3, 2, 1, 2, 3, 4, 3, 2]);
        assert_eq!(pad(PaddingMode::Symmetric), [2, 1, 1, 2, 3, 4, 4, 3]);
        assert_eq!(pad(PaddingMode::Edge), [1, 1, 1, 2, 3, 4, 4, 4]);
        assert_eq!(pad(PaddingMode::Constant), [9, 9, 1, 2, 3, 4, 9, 9]);
        // Padding wider than the image reflects back and forth.
        let wide = impad_border(&row, [7, 0, 0, 0], PaddingMode::Reflect, &[0]).into_raw();
        assert_eq!(wide, [2, 1, 2, 3, 4, 3, 2, 1, 2, 3, 4]);
        assert_eq!(border_interpolate(-5, 1, PaddingMode::Symmetric), Some(0));
    }

    #[test]
    fn numpy_padding_reflects_in_rounds() {
        let ix = |n, b, a, mode| np_pad_indices(n, b, a, mode).into_iter().map(|i| i.map_or(-1, |i| i as i64)).collect::<Vec<_>>();
        // np.pad(np.arange(n), (before, after), mode), from NumPy 1.26.
        assert_eq!(ix(3, 7, 2, PaddingMode::Reflect), [1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0]);
        assert_eq!(ix(2, 6, 3, PaddingMode::Symmetric), [1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0]);
        // One long side and a short one: not a periodic reflection (OpenCV ends with 1).
        assert_eq!(ix(2, 1, 8, PaddingMode::Symmetric), [0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0]);
        assert_eq!(ix(1, 2, 3, PaddingMode::Reflect), [0; 6]);
        assert_eq!(ix(3, 2, 1, PaddingMode::Edge), [0, 0, 0, 1, 2, 2]);
        assert_eq!(ix(2, 1, 1, PaddingMode::Constant), [-1, 0, 1, -1]);
        let row = Image::from_fn(4, 1, |x, _| [x as u8 + 1]);
        assert_eq!(np_pad(&row, [2, 1, 2, 0], PaddingMode::Constant, &[9]).into_raw(), [9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 1, 2, 3, 4, 9, 9]);
        assert_eq!(np_pad(&row, [2, 0, 2, 0], PaddingMode::Reflect, &[]).into_raw(), [3, 2, 1, 2, 3, 4, 3, 2]);
    }

    #[test]
    fn unsupported_backend_combination_is_an_error() {
        assert!(check_interpolation("X", Interpolation::Area, ResizeBackend::Cv2).is_err());
        assert!(check_interpolation("X", Interpolation::Lanczos, ResizeBackend::Pillow).is_ok());
    }
}
