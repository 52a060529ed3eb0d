//! `ResizeEdge`. Port of `mmcls.datasets.transforms.ResizeEdge` (mmcls 1.0,
//! `datasets/transforms/processing.py`).
//!
//! `ResizeEdge(scale=256, edge='short')` is torchvision's `Resize(256)`: the shorter side
//! becomes 256 and the other `int(256 · long / short)` (truncated). MMSelfSup's evaluation
//! pipelines use it before `CenterCrop(crop_size=224)`.

use serde::{Deserialize, Serialize};

use crate::imaging::geometric::{check_interpolation, imresize};
use crate::imaging::{Image, Interpolation, ResizeBackend};
use crate::transforms::{ImageTransform, RandomSource};
use crate::DataError;

/// Which edge `scale` applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Edge {
    /// The shorter edge (default).
    #[default]
    Short,
    /// The longer edge.
    Long,
    /// The width.
    Width,
    /// The height.
    Height,
}

/// Configuration of [`ResizeEdge`]. Field names and defaults are mmcls's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResizeEdgeConfig {
    /// Target length of the chosen edge. Required.
    pub scale: usize,
    /// The edge to resize to `scale`. Default `short`.
    #[serde(default)]
    pub edge: Edge,
    /// Resize back-end. Default `cv2`.
    #[serde(default)]
    pub backend: ResizeBackend,
    /// Interpolation. Default `bilinear`.
    #[serde(default)]
    pub interpolation: Interpolation,
}

impl ResizeEdgeConfig {
    /// Resize the shorter edge to `scale`, mmcls's defaults otherwise.
    pub fn new(scale: usize) -> Self {
        Self { scale, edge: Edge::Short, backend: ResizeBackend::default(), interpolation: Interpolation::default() }
    }

    /// Validates the config and builds the transform.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for `scale == 0` or an interpolation unavailable for the
    /// back-end.
    pub fn init(&self) -> Result<ResizeEdge, DataError> {
        if self.scale == 0 {
            return Err(DataError::config("ResizeEdge", "`scale` must be positive"));
        }
        check_interpolation("ResizeEdge", self.interpolation, self.backend)?;
        Ok(ResizeEdge { cfg: self.clone() })
    }
}

/// Resizes so that one edge has a given length, keeping the aspect ratio.
#[derive(Debug, Clone, PartialEq)]
pub struct ResizeEdge {
    cfg: ResizeEdgeConfig,
}

impl ResizeEdge {
    /// The output `(width, height)` for a `width × height` input (mmcls's arithmetic:
    /// `int(scale · h / w)` truncates).
    pub fn output_size(&self, width: usize, height: usize) -> (usize, usize) {
        let s = self.cfg.scale;
        let resize_width = match self.cfg.edge {
            Edge::Short => width < height,
            Edge::Long => width > height,
            Edge::Width => true,
            Edge::Height => false,
        };
        if resize_width {
            (s, (s as f64 * height as f64 / width as f64) as usize)
        } else {
            ((s as f64 * width as f64 / height as f64) as usize, s)
        }
    }
}

impl ImageTransform for ResizeEdge {
    const NAME: &'static str = "ResizeEdge";

    fn apply<R: RandomSource + ?Sized>(&self, img: Image, _rng: &mut R) -> Result<Image, DataError> {
        if img.is_empty() {
            return Err(DataError::Transform { transform: Self::NAME, name: String::new(), message: "empty input image".into() });
        }
        let (w, h) = self.output_size(img.width(), img.height());
        if w == 0 || h == 0 {
            return Err(DataError::Transform {
                transform: Self::NAME,
                name: String::new(),
                message: format!("a {}x{} image would become {w}x{h}", img.width(), img.height()),
            });
        }
        imresize(&img, w, h, self.cfg.interpolation, self.cfg.backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_edge_matches_torchvision_resize_int() {
        let t = ResizeEdgeConfig::new(256).init().expect("valid");
        assert_eq!(t.output_size(500, 375), (341, 256));
        assert_eq!(t.output_size(375, 500), (256, 341));
        assert_eq!(t.output_size(300, 300), (256, 256));
        let mut cfg = ResizeEdgeConfig::new(100);
        cfg.edge = Edge::Long;
        assert_eq!(cfg.init().expect("valid").output_size(500, 375), (100, 75));
    }

    #[test]
    fn degenerate_output_is_a_sample_error() {
        let mut cfg = ResizeEdgeConfig::new(4);
        cfg.edge = Edge::Long;
        let err = cfg
            .init()
            .expect("valid")
            .apply(Image::filled(100, 1, &[0, 0, 0]), &mut rand::rng())
            .expect_err("long edge 100 → 4 makes the 1-pixel side 0");
        assert!(err.is_sample_error());
    }
}
