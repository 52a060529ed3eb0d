//! Pictures for selfsup: training-log charts (`selfsup plot`) and
//! masked-image-modeling reconstruction strips (`selfsup
//! visualize-reconstruction`, alias `visualize-mae`), written as PNG.
//!
//! # What it is
//! - [`log`]: the JSON-lines training log (`WORK_DIR/scalars.json`, MMEngine's
//!   `vis_data/scalars.json` style), read robustly: cut-off lines are skipped,
//!   a resumed run replaces what it re-logs ([`TrainingLog`]).
//! - [`chart`]: line charts with "nice" ticks (1-2-5 × 10ᵏ), linear or log y
//!   axes, a legend and anti-aliased lines ([`Chart`]).
//! - [`plot_log`]: one chart per metric group (`loss.png` with the total and
//!   every loss part, `lr.png`, ...), with optional smoothing and log-scale loss.
//! - [`grid`]: MAE's `patchify`/`unpatchify` on plain `f32` buffers, the
//!   `norm_pix` inverse, masking and paste-back, and captioned image strips
//!   ([`MaeVisualization`]: the four panels of the pixel-target algorithms,
//!   MAE, PixMIM and SimMIM; [`compose_strip`], [`strip_layout`]).
//! - [`reconstruction`]: MaskFeat's HOG panels ([`HogVisualization`]) and
//!   [`Panels`], any captioned panels as one strip.
//! - [`font`]: the 5×9 bitmap font every label is drawn with, built into the
//!   binary.
//!
//! # What it is not
//! - Not tensor code: no burn. Callers copy model outputs to host `Vec<f32>`.
//! - Not a plotting library: no fonts from disk, no vector output, no
//!   interactive display; just legible PNGs.
//!
//! # Example
//! ```
//! use selfsup_viz::{plot_log, PlotOptions};
//! # fn main() -> Result<(), selfsup_viz::VizError> {
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("scalars.json"),
//!     "{\"iter\":10,\"lr\":0.1,\"loss\":2.0}\n{\"iter\":20,\"lr\":0.05,\"loss\":1.5}\n").unwrap();
//! let files = plot_log(dir.path(), &dir.path().join("plots"), &PlotOptions::default())?;
//! assert_eq!(files.len(), 2); // loss.png, lr.png
//! # Ok(()) }
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

pub mod chart;
pub mod font;
pub mod grid;
pub mod log;
mod plot;
pub mod reconstruction;

pub use chart::{nice_ticks, Chart, Scale, Series, Ticks};
pub use grid::{
    compose_strip, denormalize_norm_pix, mask_patches, paste_visible, patchify, strip_layout, unpatchify, ImageF32, MaeVisualization,
    StripLayout, StripOptions,
};
pub use log::{find_log, LogRecord, TrainingLog};
pub use plot::{group_chart, metric_groups, moving_average, plot_log, plot_training_log, MetricGroup, PlotOptions};
pub use reconstruction::{HogVisualization, Panels};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum VizError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Encoding the image failed.
    #[error("{path}: cannot encode the image: {source}")]
    Image {
        /// The file being written.
        path: PathBuf,
        /// The cause.
        source: image::ImageError,
    },
    /// A work directory holds no training log.
    #[error("{0}: no training log (scalars.json or */vis_data/scalars.json)")]
    NoLog(PathBuf),
    /// A log file holds no training records (lines with `iter`).
    #[error("{0}: no training records (JSON lines with an \"iter\")")]
    NoRecords(PathBuf),
    /// A parsed log holds no training records.
    #[error("the training log has no records")]
    EmptyLog,
    /// An output name whose extension is neither `.png` nor `.jpg`/`.jpeg`.
    #[error("{0}: write a .png or a .jpg")]
    Format(PathBuf),
    /// Buffer sizes do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
}

/// Writes `img` as a PNG at `path` atomically (a temporary file next to it,
/// then a rename), so a reader never sees half a picture.
pub fn save_png(img: &image::RgbImage, path: &Path) -> Result<(), VizError> {
    save_as(img, path, image::ImageFormat::Png)
}

/// Writes `img` at `path` atomically in the format its extension names:
/// PNG for `.png`, JPEG (quality 95) for `.jpg`/`.jpeg`; any other
/// extension is an error rather than PNG bytes under a misleading name.
pub fn save_image(img: &image::RgbImage, path: &Path) -> Result<(), VizError> {
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "png" => save_as(img, path, image::ImageFormat::Png),
        "jpg" | "jpeg" => save_as(img, path, image::ImageFormat::Jpeg),
        _ => Err(VizError::Format(path.to_path_buf())),
    }
}

fn save_as(img: &image::RgbImage, path: &Path, format: image::ImageFormat) -> Result<(), VizError> {
    let mut bytes = Vec::new();
    let encoded = match format {
        image::ImageFormat::Jpeg => {
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut std::io::Cursor::new(&mut bytes), 95).encode_image(img)
        }
        _ => img.write_to(&mut std::io::Cursor::new(&mut bytes), format),
    };
    encoded.map_err(|source| VizError::Image { path: path.to_path_buf(), source })?;
    let io = |source| VizError::Io { path: path.to_path_buf(), source };
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_png_roundtrips_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let img = image::RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8 * 30, y as u8 * 40, 9]));
        let path = dir.path().join("a.png");
        save_png(&img, &path).unwrap();
        assert_eq!(image::open(&path).unwrap().to_rgb8(), img);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(matches!(save_png(&img, &dir.path().join("missing/a.png")), Err(VizError::Io { .. })));
    }

    #[test]
    fn save_image_writes_the_format_its_extension_names() {
        let dir = tempfile::tempdir().unwrap();
        let img = image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([x as u8 * 10, y as u8 * 10, 90]));
        let jpg = dir.path().join("a.JPG");
        save_image(&img, &jpg).unwrap();
        assert_eq!(&std::fs::read(&jpg).unwrap()[..2], &[0xFF, 0xD8], "JPEG bytes under a .jpg name");
        save_image(&img, &dir.path().join("b.png")).unwrap();
        assert_eq!(image::open(dir.path().join("b.png")).unwrap().to_rgb8(), img);
        assert!(matches!(save_image(&img, &dir.path().join("c.bmp")), Err(VizError::Format(_))));
    }
}
