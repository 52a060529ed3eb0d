//! `selfsup visualize-reconstruction` (`visualize-mae`): MAE's patch helpers
//! on plain buffers, the pixel-target picture, and labelled image strips.
//!
//! Ports the picture of MMSelfSup's `tools/analysis_tools/visualize_mae.py`:
//! four panels, "original", "masked" (`original * (1 - mask)`),
//! "reconstruction" and "reconstruction + visible"
//! (`original * (1 - mask) + reconstruction * mask`), computed in the
//! normalised input space and then de-normalised for display.
//!
//! Patches follow our `MaePretrainHead::patchify` (MMSelfSup's
//! `einsum('nchpwq->nhwpqc')`): patch `l = i·gw + j` is grid row `i`,
//! column `j`; its features are ordered `(row in patch, column in patch,
//! channel)`.

use image::{Rgb, RgbImage};

use crate::font::{self, LINE_HEIGHT};
use crate::VizError;

/// An `f32` image in CHW layout.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageF32 {
    /// Number of channels (1 or 3 to convert to RGB).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// `channels · height · width` values, channel-major.
    pub data: Vec<f32>,
}

impl ImageF32 {
    /// Wraps a CHW buffer, checking its length.
    pub fn new(channels: usize, height: usize, width: usize, data: Vec<f32>) -> Result<Self, VizError> {
        if data.len() != channels * height * width {
            return Err(VizError::Shape(format!(
                "a {channels}×{height}×{width} image needs {} values, got {}",
                channels * height * width,
                data.len()
            )));
        }
        Ok(Self { channels, height, width, data })
    }

    /// An 8-bit RGB image as values in `0..=1`.
    pub fn from_rgb8(img: &RgbImage) -> Self {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mut data = vec![0.0; 3 * h * w];
        for (x, y, p) in img.enumerate_pixels() {
            for c in 0..3 {
                data[(c * h + y as usize) * w + x as usize] = f32::from(p.0[c]) / 255.0;
            }
        }
        Self { channels: 3, height: h, width: w, data }
    }

    /// Value at channel `c`, row `y`, column `x`.
    pub fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.height + y) * self.width + x]
    }

    /// Undoes a per-channel normalisation: `(x · std + mean) / max_value`.
    /// Pass `max_value = 255` with our data preprocessor's mean and std
    /// (pixel units, e.g. `[123.675, 116.28, 103.53]`), or `1` with
    /// `visualize_mae.py`'s `imagenet_mean`/`imagenet_std` (0–1 units).
    pub fn denormalized(&self, mean: &[f32], std: &[f32], max_value: f32) -> Result<Self, VizError> {
        if mean.len() != self.channels || std.len() != self.channels {
            return Err(VizError::Shape(format!("mean and std need {} values, got {} and {}", self.channels, mean.len(), std.len())));
        }
        let plane = self.height * self.width;
        let data = self.data.iter().enumerate().map(|(i, v)| (v * std[i / plane] + mean[i / plane]) / max_value).collect();
        Ok(Self { data, ..self.clone() })
    }

    /// To 8-bit RGB: values in `0..=1` are clamped and rounded (as
    /// `visualize_mae.py`'s `clip(.., 0, 255)`); NaN becomes 0. One channel is
    /// drawn as grey.
    pub fn to_rgb8(&self) -> Result<RgbImage, VizError> {
        if self.channels != 1 && self.channels != 3 {
            return Err(VizError::Shape(format!("cannot show {} channels as RGB", self.channels)));
        }
        let to_u8 = |v: f32| if v.is_nan() { 0 } else { (v.clamp(0.0, 1.0) * 255.0).round() as u8 };
        Ok(RgbImage::from_fn(self.width as u32, self.height as u32, |x, y| {
            let c = |c: usize| to_u8(self.at(c.min(self.channels - 1), y as usize, x as usize));
            Rgb([c(0), c(1), c(2)])
        }))
    }

    /// The patch grid `(rows, columns)` for `patch`, if the image tiles exactly.
    fn grid(&self, patch: usize) -> Result<(usize, usize), VizError> {
        if patch == 0 || !self.height.is_multiple_of(patch) || !self.width.is_multiple_of(patch) {
            return Err(VizError::Shape(format!("a {}×{} image does not tile into {patch}-pixel patches", self.height, self.width)));
        }
        Ok((self.height / patch, self.width / patch))
    }
}

/// Images to patches: `[C, H, W] -> [L, p·p·C]` (row-major), with
/// `L = (H/p)·(W/p)`; see the module docs for the order.
pub fn patchify(img: &ImageF32, patch: usize) -> Result<Vec<f32>, VizError> {
    let (gh, gw) = img.grid(patch)?;
    let c = img.channels;
    let mut out = Vec::with_capacity(img.data.len());
    for i in 0..gh {
        for j in 0..gw {
            for r in 0..patch {
                for q in 0..patch {
                    for ch in 0..c {
                        out.push(img.at(ch, i * patch + r, j * patch + q));
                    }
                }
            }
        }
    }
    debug_assert_eq!(out.len(), gh * gw * patch * patch * c);
    Ok(out)
}

/// The inverse of [`patchify`]: `[L, p·p·C]` with `L = grid_h · grid_w` back
/// to a `[C, grid_h·p, grid_w·p]` image.
pub fn unpatchify(patches: &[f32], channels: usize, patch: usize, grid_h: usize, grid_w: usize) -> Result<ImageF32, VizError> {
    let feat = patch * patch * channels;
    if patches.len() != grid_h * grid_w * feat {
        return Err(VizError::Shape(format!(
            "{grid_h}×{grid_w} patches of {patch}×{patch}×{channels} need {} values, got {}",
            grid_h * grid_w * feat,
            patches.len()
        )));
    }
    let (h, w) = (grid_h * patch, grid_w * patch);
    let mut data = vec![0.0; channels * h * w];
    for (l, p) in patches.chunks_exact(feat).enumerate() {
        let (i, j) = (l / grid_w, l % grid_w);
        for (f, v) in p.iter().enumerate() {
            let (r, q, ch) = (f / (patch * channels), (f / channels) % patch, f % channels);
            data[(ch * h + i * patch + r) * w + j * patch + q] = *v;
        }
    }
    ImageF32::new(channels, h, w, data)
}

/// Undoes MAE's `norm_pix` target normalisation: each predicted patch becomes
/// `pred · √(var + 1e-6) + mean`, with the mean and the **unbiased** variance
/// of the same patch of `target` (the original image's patches), as
/// MMSelfSup's `MAE.predict` does for visualisation.
pub fn denormalize_norm_pix(pred: &[f32], target: &[f32], feat_dim: usize) -> Result<Vec<f32>, VizError> {
    if feat_dim < 2 || pred.len() != target.len() || !pred.len().is_multiple_of(feat_dim) {
        return Err(VizError::Shape(format!(
            "norm_pix needs equal-length patch buffers of {feat_dim}-value patches (feat_dim >= 2), got {} and {}",
            pred.len(),
            target.len()
        )));
    }
    let mut out = Vec::with_capacity(pred.len());
    for (p, t) in pred.chunks_exact(feat_dim).zip(target.chunks_exact(feat_dim)) {
        let n = feat_dim as f64;
        let mean = t.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = t.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let sd = (var + 1e-6).sqrt();
        out.extend(p.iter().map(|&v| (f64::from(v) * sd + mean) as f32));
    }
    Ok(out)
}

fn check_mask(img: &ImageF32, mask: &[f32], patch: usize) -> Result<(usize, usize), VizError> {
    let (gh, gw) = img.grid(patch)?;
    if mask.len() != gh * gw {
        return Err(VizError::Shape(format!("the mask has {} entries for a {gh}×{gw} patch grid", mask.len())));
    }
    Ok((gh, gw))
}

/// Whether the patch containing `(y, x)` is masked (mask value `> 0.5`; MAE's
/// mask is 1 for removed patches).
fn masked_at(mask: &[f32], gw: usize, patch: usize, y: usize, x: usize) -> bool {
    mask[(y / patch) * gw + x / patch] > 0.5
}

/// `img` with every masked patch (mask `> 0.5`) filled with `fill` (one value
/// per channel). MMSelfSup's picture is `fill = 0` in the normalised space,
/// which shows as the mean colour (grey) once de-normalised.
pub fn mask_patches(img: &ImageF32, mask: &[f32], patch: usize, fill: &[f32]) -> Result<ImageF32, VizError> {
    let (_, gw) = check_mask(img, mask, patch)?;
    if fill.len() != img.channels {
        return Err(VizError::Shape(format!("fill needs {} values, got {}", img.channels, fill.len())));
    }
    let mut out = img.clone();
    for (plane, &value) in out.data.chunks_exact_mut(img.height * img.width).zip(fill) {
        for (i, v) in plane.iter_mut().enumerate() {
            if masked_at(mask, gw, patch, i / img.width, i % img.width) {
                *v = value;
            }
        }
    }
    Ok(out)
}

/// The reconstruction with the visible patches of `original` pasted back:
/// visible patches (mask `<= 0.5`) are copied exactly from `original`, masked
/// ones from `reconstruction`.
pub fn paste_visible(original: &ImageF32, reconstruction: &ImageF32, mask: &[f32], patch: usize) -> Result<ImageF32, VizError> {
    let (_, gw) = check_mask(original, mask, patch)?;
    if (original.channels, original.height, original.width) != (reconstruction.channels, reconstruction.height, reconstruction.width) {
        return Err(VizError::Shape("the original and the reconstruction differ in shape".into()));
    }
    let mut out = reconstruction.clone();
    for c in 0..original.channels {
        for y in 0..original.height {
            for x in 0..original.width {
                if !masked_at(mask, gw, patch, y, x) {
                    let i = (c * original.height + y) * original.width + x;
                    out.data[i] = original.data[i];
                }
            }
        }
    }
    Ok(out)
}

/// The four panels of MMSelfSup's reconstruction view of a pixel target
/// (`visualize_reconstruction.py`, formerly `visualize_mae.py`), in one
/// space: MAE, PixMIM and SimMIM share it.
#[derive(Debug, Clone, PartialEq)]
pub struct MaeVisualization {
    /// The input image.
    pub original: ImageF32,
    /// The input with the masked patches set to 0.
    pub masked: ImageF32,
    /// The prediction for every patch, as an image.
    pub reconstruction: ImageF32,
    /// The reconstruction with the visible patches of the input pasted back.
    pub pasted: ImageF32,
}

impl MaeVisualization {
    /// The panel captions, as in `visualize_mae.py`.
    pub const CAPTIONS: [&'static str; 4] = ["original", "masked", "reconstruction", "reconstruction + visible"];

    /// Builds the panels from the model's input (`original`, normalised as
    /// the model saw it), its prediction `pred` (`[L, p·p·C]`, MAE's
    /// `decoder_pred` output) and `mask` (`[L]`, 1 = removed). With
    /// `norm_pix`, `pred` is de-normalised with the original's patch
    /// statistics first.
    pub fn new(original: ImageF32, pred: &[f32], mask: &[f32], patch: usize, norm_pix: bool) -> Result<Self, VizError> {
        let (gh, gw) = check_mask(&original, mask, patch)?;
        let pred = if norm_pix {
            denormalize_norm_pix(pred, &patchify(&original, patch)?, patch * patch * original.channels)?
        } else {
            pred.to_vec()
        };
        let reconstruction = unpatchify(&pred, original.channels, patch, gh, gw)?;
        Self::from_reconstruction(original, reconstruction, mask, patch)
    }

    /// Builds the panels from a reconstruction that is already an image in
    /// the input's space (SimMIM's neck output, PixMIM's and MAE's
    /// `predict`), and a mask on the grid of `patch`-pixel squares (1 =
    /// removed; `patch = 1` for a pixel mask).
    pub fn from_reconstruction(original: ImageF32, reconstruction: ImageF32, mask: &[f32], patch: usize) -> Result<Self, VizError> {
        check_mask(&original, mask, patch)?;
        let masked = mask_patches(&original, mask, patch, &vec![0.0; original.channels])?;
        let pasted = paste_visible(&original, &reconstruction, mask, patch)?;
        Ok(Self { original, masked, reconstruction, pasted })
    }

    /// All four panels de-normalised (see [`ImageF32::denormalized`]).
    pub fn denormalized(&self, mean: &[f32], std: &[f32], max_value: f32) -> Result<Self, VizError> {
        Ok(Self {
            original: self.original.denormalized(mean, std, max_value)?,
            masked: self.masked.denormalized(mean, std, max_value)?,
            reconstruction: self.reconstruction.denormalized(mean, std, max_value)?,
            pasted: self.pasted.denormalized(mean, std, max_value)?,
        })
    }

    /// The four captioned panels (values expected in `0..=1`).
    pub fn panels(&self) -> crate::Panels {
        let images = [&self.original, &self.masked, &self.reconstruction, &self.pasted];
        crate::Panels::new(Self::CAPTIONS.iter().zip(images).map(|(c, i)| (c.to_string(), i.clone())).collect())
    }

    /// The captioned strip of the four panels (values expected in `0..=1`).
    pub fn strip(&self, opts: &StripOptions) -> Result<RgbImage, VizError> {
        self.panels().strip(opts)
    }
}

/// Layout of [`compose_strip`].
#[derive(Debug, Clone, PartialEq)]
pub struct StripOptions {
    /// Whole-pixel (nearest-neighbour) upscaling of each panel, so small
    /// training images stay visible; at least 1.
    pub scale: u32,
    /// Space around and between panels, in pixels.
    pub padding: u32,
    /// Caption text scale (1 = 5×9-pixel glyphs).
    pub caption_scale: u32,
    /// Background colour.
    pub background: Rgb<u8>,
    /// Caption colour.
    pub text: Rgb<u8>,
}

impl Default for StripOptions {
    fn default() -> Self {
        Self { scale: 1, padding: 8, caption_scale: 2, background: Rgb([255, 255, 255]), text: Rgb([20, 20, 20]) }
    }
}

/// Panels side by side with a caption centred above each:
/// - all columns are as wide as the widest scaled panel or caption, and each
///   panel is centred in its column;
/// - width = `padding + n · (column + padding)`;
/// - height = `padding + caption line + padding/2 + tallest scaled panel + padding`,
///   where a caption line is `LINE_HEIGHT · caption_scale` pixels.
///
/// [`strip_layout`] gives the same geometry without drawing.
pub fn compose_strip(panels: &[(&str, &RgbImage)], opts: &StripOptions) -> RgbImage {
    let sizes: Vec<(&str, (u32, u32))> = panels.iter().map(|(c, img)| (*c, img.dimensions())).collect();
    let layout = strip_layout(&sizes, opts);
    let (s, pad, cs) = (opts.scale.max(1), opts.padding, opts.caption_scale.max(1));
    let mut out = RgbImage::from_pixel(layout.width, layout.height, opts.background);
    for ((caption, img), &(px, py)) in panels.iter().zip(&layout.panels) {
        let x0 = px - (layout.column - img.width() * s) / 2;
        let tw = font::text_width(caption, cs);
        font::draw_text(&mut out, i64::from(x0 + (layout.column - tw) / 2), i64::from(pad), caption, opts.text, cs);
        for (x, y, p) in img.enumerate_pixels() {
            for dy in 0..s {
                for dx in 0..s {
                    out.put_pixel(px + x * s + dx, py + y * s + dy, *p);
                }
            }
        }
    }
    out
}

/// Where [`compose_strip`] puts things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripLayout {
    /// Width of the strip.
    pub width: u32,
    /// Height of the strip.
    pub height: u32,
    /// Width of every column.
    pub column: u32,
    /// Top-left corner of each scaled panel.
    pub panels: Vec<(u32, u32)>,
}

/// The geometry of [`compose_strip`] for panels of the given captions and
/// (unscaled) `(width, height)`.
pub fn strip_layout(panels: &[(&str, (u32, u32))], opts: &StripOptions) -> StripLayout {
    let (s, pad, cs) = (opts.scale.max(1), opts.padding, opts.caption_scale.max(1));
    let column = panels.iter().map(|(cap, (w, _))| (w * s).max(font::text_width(cap, cs))).max().unwrap_or(0);
    let caption_h = if panels.iter().any(|(c, _)| !c.is_empty()) { LINE_HEIGHT * cs + pad / 2 } else { 0 };
    let panel_h = panels.iter().map(|(_, (_, h))| h * s).max().unwrap_or(0);
    let origins =
        (0..panels.len() as u32).zip(panels).map(|(i, (_, (w, _)))| (pad + i * (column + pad) + (column - w * s) / 2, pad + caption_h));
    StripLayout {
        width: pad + panels.len() as u32 * (column + pad),
        height: pad + caption_h + panel_h + pad,
        column,
        panels: origins.collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic, non-symmetric test image.
    fn ramp(c: usize, h: usize, w: usize) -> ImageF32 {
        let data = (0..c * h * w).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
        ImageF32::new(c, h, w, data).unwrap()
    }

    #[test]
    fn patchify_has_maes_order() {
        // 1×2×4 image, p = 2: two patches side by side, features (row, col, channel).
        let img = ImageF32::new(1, 2, 4, vec![0., 1., 2., 3., 4., 5., 6., 7.]).unwrap();
        assert_eq!(patchify(&img, 2).unwrap(), vec![0., 1., 4., 5., 2., 3., 6., 7.]);
        // Channels are innermost.
        let img = ImageF32::new(3, 1, 1, vec![1., 2., 3.]).unwrap();
        assert_eq!(patchify(&img, 1).unwrap(), vec![1., 2., 3.]);
    }

    #[test]
    fn unpatchify_inverts_patchify_exactly() {
        for (c, h, w, p) in [(3, 8, 8, 4), (3, 12, 8, 4), (1, 6, 9, 3), (3, 16, 16, 16)] {
            let img = ramp(c, h, w);
            let patches = patchify(&img, p).unwrap();
            assert_eq!(unpatchify(&patches, c, p, h / p, w / p).unwrap(), img);
            // And the other way round.
            let back = patchify(&unpatchify(&patches, c, p, h / p, w / p).unwrap(), p).unwrap();
            assert_eq!(back, patches);
        }
        assert!(unpatchify(&[0.0; 10], 3, 2, 1, 1).is_err());
        assert!(patchify(&ramp(3, 6, 6), 4).is_err());
    }

    #[test]
    fn norm_pix_inverse_restores_the_patches() {
        let img = ramp(3, 8, 8);
        let target = patchify(&img, 4).unwrap();
        let feat = 4 * 4 * 3;
        // The normalised target, as MAE's head builds it (unbiased variance).
        let mut normed = Vec::new();
        for t in target.chunks(feat) {
            let mean = t.iter().sum::<f32>() / feat as f32;
            let var = t.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / (feat - 1) as f32;
            normed.extend(t.iter().map(|v| (v - mean) / (var + 1e-6).sqrt()));
        }
        let back = denormalize_norm_pix(&normed, &target, feat).unwrap();
        for (a, b) in back.iter().zip(&target) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn masked_patches_are_filled_and_visible_ones_kept() {
        let img = ramp(3, 8, 8);
        let mask = [1.0, 0.0, 0.0, 1.0]; // 2×2 grid of 4-pixel patches: top-left and bottom-right removed
        let out = mask_patches(&img, &mask, 4, &[0.5, 0.25, 0.0]).unwrap();
        for c in 0..3 {
            for y in 0..8 {
                for x in 0..8 {
                    let removed = (y < 4) == (x < 4);
                    let want = if removed { [0.5, 0.25, 0.0][c] } else { img.at(c, y, x) };
                    assert_eq!(out.at(c, y, x), want, "({c}, {y}, {x})");
                }
            }
        }
        assert!(mask_patches(&img, &[1.0; 3], 4, &[0.0; 3]).is_err());
    }

    #[test]
    fn paste_back_restores_visible_patches_exactly() {
        let original = ramp(3, 8, 8);
        let recon = ImageF32::new(3, 8, 8, vec![-7.0; 3 * 64]).unwrap();
        let mask = [0.0, 1.0, 1.0, 0.0];
        let pasted = paste_visible(&original, &recon, &mask, 4).unwrap();
        for c in 0..3 {
            for y in 0..8 {
                for x in 0..8 {
                    let visible = (y < 4) == (x < 4);
                    assert_eq!(pasted.at(c, y, x), if visible { original.at(c, y, x) } else { -7.0 });
                }
            }
        }
    }

    #[test]
    fn mae_visualization_matches_mmselfsup_formulas() {
        let original = ramp(3, 8, 8);
        let mask = [1.0, 0.0, 1.0, 0.0];
        // A perfect prediction of the pixels reconstructs the original, and
        // then the pasted panel is the original too.
        let pred = patchify(&original, 4).unwrap();
        let v = MaeVisualization::new(original.clone(), &pred, &mask, 4, false).unwrap();
        assert_eq!(v.reconstruction, original);
        assert_eq!(v.pasted, original);
        // masked = original · (1 − mask).
        for (i, m) in v.masked.data.iter().enumerate() {
            let (y, x) = ((i / 8) % 8, i % 8);
            let removed = mask[(y / 4) * 2 + x / 4] == 1.0;
            assert_eq!(*m, if removed { 0.0 } else { original.data[i] });
        }
        // With norm_pix, a perfect prediction of the normalised target does too.
        let feat = 4 * 4 * 3;
        let normed: Vec<f32> = pred
            .chunks(feat)
            .flat_map(|t| {
                let mean = t.iter().sum::<f32>() / feat as f32;
                let sd = (t.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / (feat - 1) as f32 + 1e-6).sqrt();
                t.iter().map(move |v| (v - mean) / sd)
            })
            .collect();
        let n = MaeVisualization::new(original.clone(), &normed, &mask, 4, true).unwrap();
        assert!(n.reconstruction.data.iter().zip(&original.data).all(|(a, b)| (a - b).abs() < 1e-5));
        assert!(MaeVisualization::new(original.clone(), &normed[1..], &mask, 4, true).is_err());
        // De-normalised: 0 shows as the mean, i.e. grey.
        let shown = v.denormalized(&[127.5; 3], &[50.0; 3], 255.0).unwrap();
        assert_eq!(shown.masked.to_rgb8().unwrap().get_pixel(0, 0).0, [128, 128, 128]);
        let strip = shown.strip(&StripOptions::default()).unwrap();
        assert!(strip.width() > 4 * 8 && strip.height() > 8);
    }

    #[test]
    fn strip_layout_has_the_documented_size() {
        let a = RgbImage::from_pixel(10, 8, Rgb([255, 0, 0]));
        let b = RgbImage::from_pixel(10, 6, Rgb([0, 0, 255]));
        let opts = StripOptions { scale: 2, padding: 4, caption_scale: 1, ..Default::default() };
        let strip = compose_strip(&[("a", &a), ("b", &b)], &opts);
        // columns 20 + 20; caption line 10 + 2.
        assert_eq!(strip.dimensions(), (4 + 24 + 24, 4 + 12 + 16 + 4));
        // Panels are upscaled in place: first panel at (4, 16), second at (28, 16).
        assert_eq!(strip.get_pixel(4, 16).0, [255, 0, 0]);
        assert_eq!(strip.get_pixel(4 + 19, 16 + 15).0, [255, 0, 0]);
        assert_eq!(strip.get_pixel(4 + 20, 16).0, [255, 255, 255], "padding between panels");
        assert_eq!(strip.get_pixel(28, 16 + 11).0, [0, 0, 255]);
        assert_eq!(strip.get_pixel(28, 16 + 12).0, [255, 255, 255], "the shorter panel ends");
        // A caption wider than the panels widens every column.
        let cap = "reconstruction + visible";
        let wide = compose_strip(&[("a", &a), (cap, &a)], &opts);
        let col = font::text_width(cap, 1);
        assert_eq!(wide.width(), 4 + 2 * (col + 4));
        assert_eq!(wide.get_pixel(4 + (col - 20) / 2, 16).0, [255, 0, 0], "panels are centred");
        assert_eq!(wide.get_pixel(4 + (col - 20) / 2 - 1, 16).0, [255, 255, 255]);
        // The caption is drawn.
        assert!((0..strip.width()).any(|x| (4..14).any(|y| strip.get_pixel(x, y).0 == opts.text.0)));
    }

    #[test]
    fn conversion_roundtrip_and_clamping() {
        let rgb = RgbImage::from_fn(5, 3, |x, y| Rgb([(x * 50) as u8, (y * 100) as u8, 7]));
        assert_eq!(ImageF32::from_rgb8(&rgb).to_rgb8().unwrap(), rgb);
        let img = ImageF32::new(1, 1, 3, vec![-1.0, 2.0, f32::NAN]).unwrap();
        let out = img.to_rgb8().unwrap();
        assert_eq!([out.get_pixel(0, 0).0, out.get_pixel(1, 0).0, out.get_pixel(2, 0).0], [[0; 3], [255; 3], [0; 3]]);
        assert!(ImageF32::new(3, 2, 2, vec![0.0; 11]).is_err());
    }
}
