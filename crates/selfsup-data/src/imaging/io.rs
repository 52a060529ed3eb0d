//! Image decoding. Counterpart of `mmcv.image.io.imread(path, flag='color')`.
//!
//! Differences from mmcv, all deliberate:
//! - the result is **RGB**, not BGR (see [`Image`]);
//! - only JPEG and PNG are decoded (the workspace builds `image` with those two codecs); the
//!   format is guessed from the file's content, not its extension;
//! - like `cv2.imread(..., IMREAD_COLOR)` the EXIF orientation is applied, grey, grey+alpha,
//!   RGBA and palette images become 3-channel RGB (alpha is dropped, not composited) and
//!   16-bit images are scaled to 8 bits (`image`'s rounding `v * 255 / 65535`, where OpenCV
//!   truncates `v >> 8`: at most one intensity level apart);
//! - a truncated JPEG (no end-of-image marker after its last scan) is an error, as in
//!   Pillow's default, where OpenCV would return a partly grey image with a warning; a
//!   truncated PNG is an error for every library;
//! - like Pillow's `Image.MAX_IMAGE_PIXELS`, the size an image declares in its header is
//!   checked before anything is decoded: above [`max_image_pixels`] a warning (once per
//!   file), above twice that the file is refused ([`DataError::TooLarge`], skipped and
//!   counted like an unreadable file). A 48 KB PNG can declare 20000×20000 pixels and would
//!   otherwise take gigabytes to decode (a decompression bomb).

use std::collections::HashSet;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use image::{DynamicImage, ImageDecoder, ImageReader};

use super::Image;
use crate::DataError;

/// Pillow's default `Image.MAX_IMAGE_PIXELS`: `1024 * 1024 * 1024 // 4 // 3`, about 89.5
/// million pixels (a quarter GiB of 24-bit pixels).
pub const DEFAULT_MAX_IMAGE_PIXELS: u64 = 1024 * 1024 * 1024 / 4 / 3;

/// The current limit; 0 means none.
static MAX_IMAGE_PIXELS: AtomicU64 = AtomicU64::new(DEFAULT_MAX_IMAGE_PIXELS);

/// Files already warned about (a file is read again every epoch).
static WARNED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// Sets the decompression-bomb limit for every later [`imread`] in this process (Pillow's
/// `Image.MAX_IMAGE_PIXELS = n`): an image declaring more than `limit` pixels is decoded with
/// a warning, one declaring more than twice `limit` is refused. `None` removes the limit.
pub fn set_max_image_pixels(limit: Option<u64>) {
    MAX_IMAGE_PIXELS.store(limit.unwrap_or(0), Ordering::Relaxed);
}

/// The decompression-bomb limit in pixels ([`DEFAULT_MAX_IMAGE_PIXELS`] unless
/// [`set_max_image_pixels`] changed it); `None` when there is none.
pub fn max_image_pixels() -> Option<u64> {
    Some(MAX_IMAGE_PIXELS.load(Ordering::Relaxed)).filter(|&l| l > 0)
}

/// Checks the size declared in the header of an encoded image against
/// [`max_image_pixels`], without decoding it. Bytes whose header cannot be read pass (the
/// decoder reports them).
fn check_declared_size(path: &Path, bytes: &[u8], limit: Option<u64>) -> Result<(), DataError> {
    let Some(limit) = limit else { return Ok(()) };
    let Ok(reader) = ImageReader::new(Cursor::new(bytes)).with_guessed_format() else { return Ok(()) };
    let Ok((width, height)) = reader.into_dimensions() else { return Ok(()) };
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limit.saturating_mul(2) {
        return Err(DataError::TooLarge { path: path.to_path_buf(), width, height, limit });
    }
    if pixels > limit {
        let mut warned = WARNED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if warned.get_or_insert_with(HashSet::new).insert(path.to_path_buf()) {
            eprintln!(
                "warning: `{}` declares {width}x{height} = {pixels} pixels, above the limit of {limit} \
                 (a possible decompression bomb); decoding it anyway, files above twice the limit are \
                 skipped (--max-image-pixels changes the limit)",
                path.display()
            );
        }
    }
    Ok(())
}

/// Reads and decodes an image file into 8-bit RGB.
///
/// # Errors
/// [`DataError::Io`] when the file cannot be read, [`DataError::TooLarge`] when its header
/// declares more than twice [`max_image_pixels`], [`DataError::Decode`] when it is not a
/// decodable (complete, uncorrupted) JPEG or PNG.
pub fn imread(path: &Path) -> Result<Image, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    check_declared_size(path, &bytes, max_image_pixels())?;
    imfrombytes(&bytes).map_err(|source| DataError::Decode { path: path.to_path_buf(), source })
}

/// Decodes an in-memory JPEG or PNG into 8-bit RGB (`mmcv.imfrombytes`, RGB order).
///
/// # Errors
/// The decoder's error when the bytes are not a decodable image.
pub fn imfrombytes(bytes: &[u8]) -> Result<Image, image::ImageError> {
    if bytes.starts_with(&[0xFF, 0xD8]) && !jpeg_is_complete(bytes) {
        return Err(image::ImageError::IoError(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "truncated JPEG: no end-of-image marker after the last scan",
        )));
    }
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
    let mut decoder = reader.into_decoder()?;
    let orientation = decoder.orientation()?;
    let mut img = DynamicImage::from_decoder(decoder)?;
    img.apply_orientation(orientation);
    Ok(from_dynamic(img))
}

/// `true` when an end-of-image marker (`FF D9`) follows the last start-of-scan marker
/// (`FF DA`). Neither can occur inside entropy-coded data (where `FF` is followed by `00` or a
/// restart marker), so a file cut anywhere before its end fails this test, while trailing
/// bytes after the end marker are tolerated.
///
/// The scan goes backwards over the `FF` bytes only, remembering whether one starts an
/// end-of-image marker, until the first start-of-scan marker; blocks without an `FF` byte
/// (most of the entropy-coded data) are passed over with one test each.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    const BLOCK: usize = 32;
    let mut eoi_after = false;
    let mut end = bytes.len();
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        // A reduction without early exit, so that it vectorises.
        if bytes[start..end].iter().fold(false, |any, &b| any | (b == 0xFF)) {
            for p in (start..end).rev() {
                if bytes[p] == 0xFF {
                    match bytes.get(p + 1) {
                        Some(0xD9) => eoi_after = true,
                        Some(0xDA) => return eoi_after,
                        _ => {}
                    }
                }
            }
        }
        end = start;
    }
    false
}

/// Converts any decoded image to 8-bit RGB.
pub fn from_dynamic(img: DynamicImage) -> Image {
    let rgb = match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    };
    let (w, h) = rgb.dimensions();
    let (w, h) = (w as usize, h as usize);
    // `RgbImage` is always `w * h * 3` bytes, so this cannot fail.
    Image::from_raw(w, h, 3, rgb.into_raw()).unwrap_or_else(|| Image::filled(w, h, &[0, 0, 0]))
}

/// Encodes an RGB or grey image as PNG (for tests, debugging and dumping samples).
///
/// # Errors
/// [`DataError::Io`] / [`DataError::Decode`] (the latter wraps encoder errors) with the path.
pub fn imwrite_png(img: &Image, path: &Path) -> Result<(), DataError> {
    let color = match img.channels() {
        1 => image::ExtendedColorType::L8,
        3 => image::ExtendedColorType::Rgb8,
        4 => image::ExtendedColorType::Rgba8,
        c => return Err(DataError::config("imwrite_png", format!("cannot write a {c}-channel image as PNG"))),
    };
    image::save_buffer_with_format(path, img.data(), img.width() as u32, img.height() as u32, color, image::ImageFormat::Png).map_err(
        |source| match source {
            image::ImageError::IoError(source) => DataError::Io { path: path.to_path_buf(), source },
            source => DataError::Decode { path: path.to_path_buf(), source },
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg_bytes(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 90]));
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(img).write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg).expect("encode");
        out
    }

    /// The declared size is checked from the header: at the limit silent, above it a warning,
    /// above twice the limit refused as a sample error; no limit, no check.
    #[test]
    fn declared_size_limit() {
        let path = Path::new("bomb.jpg");
        let bytes = jpeg_bytes(20, 10); // 200 pixels
        assert!(check_declared_size(path, &bytes, Some(200)).is_ok());
        assert!(check_declared_size(path, &bytes, Some(100)).is_ok(), "twice the limit is still decoded");
        let err = check_declared_size(path, &bytes, Some(99)).expect_err("above twice the limit");
        assert!(err.is_sample_error());
        assert!(err.to_string().contains("20x10 pixels"), "{err}");
        assert!(check_declared_size(path, &bytes, None).is_ok());
        assert!(check_declared_size(path, b"not an image", Some(1)).is_ok(), "left to the decoder");
        assert_eq!(max_image_pixels(), Some(89_478_485), "Pillow's default");
    }

    #[test]
    fn jpeg_round_trip_and_garbage() {
        let bytes = jpeg_bytes(24, 16);
        let img = imfrombytes(&bytes).expect("decodes");
        assert_eq!((img.width(), img.height(), img.channels()), (24, 16, 3));
        assert!(imfrombytes(b"\xFF\xD8\xFF garbage").is_err());
        assert!(imfrombytes(&[]).is_err());
    }

    #[test]
    fn truncated_jpeg_is_an_error_trailing_bytes_are_not() {
        let bytes = jpeg_bytes(64, 64);
        for cut in [40, bytes.len() / 2, bytes.len() - 1] {
            assert!(imfrombytes(&bytes[..cut]).is_err(), "cut at {cut} of {}", bytes.len());
        }
        let mut padded = bytes.clone();
        padded.extend_from_slice(b"trailing bytes after EOI");
        assert!(imfrombytes(&padded).is_ok());
    }

    /// The block scan agrees with the definition (an `FF D9` after the last `FF DA`) on
    /// random byte strings rich in marker bytes.
    #[test]
    fn completeness_scan_matches_the_definition() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let definition = |bytes: &[u8]| {
            let Some(sos) = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]) else {
                return false;
            };
            bytes[sos + 2..].windows(2).any(|w| w == [0xFF, 0xD9])
        };
        for _ in 0..3000 {
            let len = rng.random_range(0..200);
            let bytes: Vec<u8> = (0..len)
                .map(|_| match rng.random_range(0..8) {
                    0 | 1 => 0xFF,
                    2 => 0xDA,
                    3 => 0xD9,
                    _ => rng.random(),
                })
                .collect();
            assert_eq!(jpeg_is_complete(&bytes), definition(&bytes), "{bytes:02X?}");
        }
    }

    #[test]
    fn missing_file_error_names_the_path() {
        let err = imread(Path::new("/definitely/not/here.png")).expect_err("missing");
        assert!(err.is_sample_error());
        assert!(err.to_string().contains("/definitely/not/here.png"), "{err}");
    }
}
