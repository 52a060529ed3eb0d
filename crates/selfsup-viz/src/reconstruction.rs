//! `selfsup visualize-reconstruction`: captioned panels, and MaskFeat's
//! picture of its HOG target.
//!
//! The pixel-target algorithms (MAE, PixMIM, SimMIM) share
//! [`MaeVisualization`](crate::MaeVisualization)'s four panels. MaskFeat
//! predicts histograms of oriented gradients, which MMSelfSup's
//! `visualize_reconstruction.py` draws with `HOGGenerator.generate_hog_image`
//! (one line per orientation bin and cell, on black): [`HogVisualization`]
//! shows the input, the masked input, the HOG of the target, the HOG of the
//! prediction, and the prediction with the target's visible patches pasted
//! back (MMSelfSup's "reconstruction + visible" with `--target-generator`).

use image::RgbImage;

use crate::grid::{compose_strip, mask_patches, paste_visible, ImageF32, StripOptions};
use crate::VizError;

/// Captioned panels in display space (values in `0..=1`), drawn side by
/// side as one strip.
#[derive(Debug, Clone, PartialEq)]
pub struct Panels {
    /// `(caption, image)`, left to right.
    pub panels: Vec<(String, ImageF32)>,
}

impl Panels {
    /// Wraps `(caption, image)` pairs.
    pub fn new(panels: Vec<(String, ImageF32)>) -> Self {
        Self { panels }
    }

    /// The captions, left to right.
    pub fn captions(&self) -> Vec<&str> {
        self.panels.iter().map(|(c, _)| c.as_str()).collect()
    }

    /// Every panel as 8-bit RGB (see [`ImageF32::to_rgb8`]).
    pub fn to_rgb8(&self) -> Result<Vec<(String, RgbImage)>, VizError> {
        self.panels.iter().map(|(c, img)| Ok((c.clone(), img.to_rgb8()?))).collect()
    }

    /// The captioned strip (see [`compose_strip`]).
    pub fn strip(&self, opts: &StripOptions) -> Result<RgbImage, VizError> {
        let rgb = self.to_rgb8()?;
        let labelled: Vec<(&str, &RgbImage)> = rgb.iter().map(|(c, img)| (c.as_str(), img)).collect();
        Ok(compose_strip(&labelled, opts))
    }
}

/// MaskFeat's panels: the input and the masked input (in the model's
/// normalised space until [`HogVisualization::denormalized`]), and three
/// one-channel HOG pictures in `0..=1`.
#[derive(Debug, Clone, PartialEq)]
pub struct HogVisualization {
    /// The input image.
    pub original: ImageF32,
    /// The input with the masked patches set to 0.
    pub masked: ImageF32,
    /// The HOG picture of the target histogram.
    pub target: ImageF32,
    /// The HOG picture of the predicted histogram.
    pub prediction: ImageF32,
    /// The prediction's picture on the masked patches, the target's on the
    /// visible ones.
    pub pasted: ImageF32,
}

impl HogVisualization {
    /// The panel captions.
    pub const CAPTIONS: [&'static str; 5] = ["original", "masked", "HOG target", "HOG prediction", "HOG prediction + visible"];

    /// Builds the panels from the model's input (`original`, normalised as
    /// the model saw it), the mask on the grid of `patch`-pixel squares (1 =
    /// removed) and the two HOG pictures, each `height · width` values in
    /// `0..=255` as `generate_hog_image` draws them.
    pub fn new(original: ImageF32, mask: &[f32], patch: usize, target: &[f64], prediction: &[f64]) -> Result<Self, VizError> {
        let (h, w) = (original.height, original.width);
        let grey = |v: &[f64], what: &str| {
            if v.len() != h * w {
                return Err(VizError::Shape(format!("the {what} HOG picture has {} values for a {h}×{w} image", v.len())));
            }
            ImageF32::new(1, h, w, v.iter().map(|x| (x / 255.0) as f32).collect())
        };
        let (target, prediction) = (grey(target, "target")?, grey(prediction, "predicted")?);
        let masked = mask_patches(&original, mask, patch, &vec![0.0; original.channels])?;
        let pasted = paste_visible(&target, &prediction, mask, patch)?;
        Ok(Self { original, masked, target, prediction, pasted })
    }

    /// The input panels de-normalised (see [`ImageF32::denormalized`]); the
    /// HOG pictures are unchanged.
    pub fn denormalized(&self, mean: &[f32], std: &[f32], max_value: f32) -> Result<Self, VizError> {
        Ok(Self {
            original: self.original.denormalized(mean, std, max_value)?,
            masked: self.masked.denormalized(mean, std, max_value)?,
            ..self.clone()
        })
    }

    /// The five captioned panels.
    pub fn panels(&self) -> Panels {
        let images = [&self.original, &self.masked, &self.target, &self.prediction, &self.pasted];
        Panels::new(Self::CAPTIONS.iter().zip(images).map(|(c, i)| (c.to_string(), i.clone())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::strip_layout;

    #[test]
    fn hog_panels_mask_and_paste_on_the_patch_grid() {
        let original = ImageF32::new(3, 4, 4, (0..48).map(|i| i as f32 / 48.0).collect()).unwrap();
        let target: Vec<f64> = (0..16).map(|i| f64::from(i) * 10.0).collect();
        let prediction = vec![255.0; 16];
        let mask = [0.0, 1.0, 1.0, 0.0]; // 2×2 grid of 2-pixel patches
        let v = HogVisualization::new(original.clone(), &mask, 2, &target, &prediction).unwrap();
        assert_eq!((v.target.channels, v.target.at(0, 0, 1)), (1, 10.0 / 255.0));
        for y in 0..4 {
            for x in 0..4 {
                let removed = (y < 2) != (x < 2);
                let want = if removed { 1.0 } else { v.target.at(0, y, x) };
                assert_eq!(v.pasted.at(0, y, x), want, "({y}, {x})");
                assert_eq!(v.masked.at(1, y, x), if removed { 0.0 } else { original.at(1, y, x) });
            }
        }
        // De-normalising leaves the HOG pictures alone.
        let shown = v.denormalized(&[127.5; 3], &[50.0; 3], 255.0).unwrap();
        assert_eq!((shown.target.clone(), shown.pasted.clone()), (v.target.clone(), v.pasted.clone()));
        assert_ne!(shown.original, v.original);
        let panels = shown.panels();
        assert_eq!(panels.captions(), HogVisualization::CAPTIONS);
        let opts = StripOptions { scale: 3, ..Default::default() };
        let strip = panels.strip(&opts).unwrap();
        let sizes: Vec<(&str, (u32, u32))> = HogVisualization::CAPTIONS.iter().map(|c| (*c, (4, 4))).collect();
        let layout = strip_layout(&sizes, &opts);
        assert_eq!(strip.dimensions(), (layout.width, layout.height));
        // Each panel lies where the layout says: the prediction panel is white.
        let (px, py) = layout.panels[3];
        assert!((0..12).all(|d| strip.get_pixel(px + d, py + d).0 == [255; 3]));
        assert!(HogVisualization::new(original, &mask, 2, &target[1..], &prediction).is_err());
    }
}
