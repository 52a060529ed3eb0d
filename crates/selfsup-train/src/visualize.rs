//! `selfsup visualize-reconstruction` (alias `visualize-mae`): one image
//! through a masked-image model, drawn as MMSelfSup's
//! `tools/analysis_tools/visualize_reconstruction.py` shows it.
//!
//! The view follows the config's model type ([`reconstruction_panels`] is
//! the one `match` on [`Algorithm`]; an algorithm with a reconstruction is
//! one arm there):
//! - the pixel targets (MAE, PixMIM, SimMIM, SparK, iTPN's pixel variant):
//!   original, masked, reconstruction, and reconstruction with the visible
//!   patches pasted back. PixMIM's reconstruction is of its low-frequency
//!   target;
//! - MaskFeat: original, masked, the HOG of the target, the HOG of the
//!   prediction (its tokens turned back into a histogram, MMSelfSup's
//!   `MaskFeat.reconstruct`), and the prediction with the target's visible
//!   patches pasted back, each HOG drawn by `generate_hog_image`.
//!
//! Masks: MAE, PixMIM, SparK and iTPN draw their own from `--seed` (the model's
//! [`Draws`]); SimMIM and MaskFeat read `data_samples.mask`, which the image
//! gets from the config's pipeline: the test pipeline, with the train
//! pipeline's mask generator (`SimMIMMaskGenerator`, `BEiTMaskGenerator`)
//! spliced in before its `PackSelfSupInputs` when it has none, seeded by
//! `--seed` (MMSelfSup's `--use-vis-pipeline`).
use std::path::Path;

use burn::tensor::{backend::AutodiffBackend, backend::Backend, Tensor, TensorData};
use rand::SeedableRng;
use selfsup_algorithms::{itpn::ITpnPrediction, Algorithm, MaskFeatPrediction};
use selfsup_core::{DataSamples, Draws, SelfSupAlgorithm, SelfSupInputs};
use selfsup_data::{imaging::io::imread, Pipeline, RawSample, TransformConfig};
use selfsup_target_generators::{hog_generator, HogGenerator};
use selfsup_viz::{save_image, HogVisualization, ImageF32, MaeVisualization, Panels, StripOptions};

use crate::{
    config::LoadedConfig,
    extract::{load_model, test_pipeline},
    TrainError,
};

/// Options of [`visualize_reconstruction`].
#[derive(Debug, Clone)]
pub struct VisualizeOptions {
    /// Seed of the masking (MMSelfSup's `--seed`): the model's noise for
    /// MAE and PixMIM, the pipeline's mask generator for SimMIM and MaskFeat.
    pub seed: u64,
    /// Each panel is drawn this many times larger.
    pub scale: u32,
}

impl Default for VisualizeOptions {
    fn default() -> Self {
        Self { seed: 0, scale: 2 }
    }
}

/// What [`visualize_reconstruction`] drew.
#[derive(Debug, Clone)]
pub struct Reconstruction {
    /// The model type (`MAE`, `SimMIM`, ...).
    pub algorithm: &'static str,
    /// The panels, left to right, in display space (values in `0..=1`).
    pub panels: Panels,
    /// The strip's options (its layout is [`selfsup_viz::strip_layout`]).
    pub strip: StripOptions,
}

/// Runs `image` through the config's test pipeline (and mask generator)
/// and the model of `checkpoint` (or the freshly initialised model), and
/// writes the captioned panels of the model type's view to `out` (PNG or
/// JPEG by extension).
///
/// # Errors
/// A model without a reconstruction view, an unreadable image or
/// checkpoint, a checkpoint that does not fit the model, a pipeline mask
/// that SimMIM or MaskFeat cannot use (none, or the wrong size), or an
/// unwritable `out`.
pub fn visualize_reconstruction<B: AutodiffBackend>(
    cfg: &LoadedConfig,
    checkpoint: Option<&Path>,
    image: &Path,
    out: &Path,
    opts: &VisualizeOptions,
    device: &B::Device,
) -> Result<Reconstruction, TrainError> {
    let model = load_model::<B>(cfg, checkpoint, device)?;
    let input = VisInput::load(cfg, &model, image, opts.seed, device)?;
    let panels = reconstruction_panels(&model, &input, opts.seed)?;
    let strip = StripOptions { scale: opts.scale.max(1), ..Default::default() };
    save_image(&panels.strip(&strip).map_err(viz)?, out).map_err(viz)?;
    Ok(Reconstruction { algorithm: model.name(), panels, strip })
}

/// The former name of [`visualize_reconstruction`] (`selfsup visualize-mae`),
/// with a checkpoint; it draws every algorithm the general view draws.
///
/// # Errors
/// See [`visualize_reconstruction`].
pub fn visualize_mae<B: AutodiffBackend>(
    cfg: &LoadedConfig,
    checkpoint_path: &Path,
    image: &Path,
    out: &Path,
    opts: &VisualizeOptions,
    device: &B::Device,
) -> Result<(), TrainError> {
    visualize_reconstruction::<B>(cfg, Some(checkpoint_path), image, out, opts, device).map(|_| ())
}

/// The view of each algorithm: the one place that knows which algorithms
/// have a reconstruction and how it is drawn. A new masked-image model is
/// one arm (a pixel target: `input.pixel_panels(reconstruction, mask,
/// mask_patch)`).
fn reconstruction_panels<B: Backend>(model: &Algorithm<B>, input: &VisInput<B>, seed: u64) -> Result<Panels, TrainError> {
    let draws = &mut Draws::seeded(seed);
    match model {
        Algorithm::Mae(m) => {
            let p = m.predict(&input.inputs(), draws)?;
            input.pixel_panels(p.reconstruction, host(p.mask.into_data())?, m.head().patch_size)
        }
        Algorithm::PixMim(m) => {
            let p = m.predict(&input.inputs(), draws)?;
            input.pixel_panels(p.reconstruction, host(p.mask.into_data())?, m.head.patch_size)
        }
        Algorithm::SimMim(m) => {
            let p = m.predict(&input.inputs(), draws)?;
            input.pixel_panels(p.reconstruction, host(p.pixel_mask.into_data())?, 1)
        }
        Algorithm::SparK(m) => {
            let p = m.predict(&input.inputs(), draws)?;
            input.pixel_panels(p.reconstruction, host(p.mask.into_data())?, m.head.patch_size())
        }
        // iTPN's pixel target; the CLIP target has no image to draw.
        Algorithm::ITpn(m) => match m.predict(&input.inputs(), draws)? {
            ITpnPrediction::Pixel(p) => input.pixel_panels(p.reconstruction, host(p.mask.into_data())?, m.backbone.patch_size()),
            ITpnPrediction::Clip(_) => Err(TrainError::Other(
                "visualize-reconstruction draws iTPN's pixel target; this config predicts CLIP features".into(),
            )),
        },
        Algorithm::MaskFeat(m) => input.hog_panels(m.predict(&input.inputs(), draws)?, &m.target_generator),
        // MixMIM hides an image's tokens behind its partner's in the batch:
        // the partner here is a blank image (the data preprocessor's mean),
        // so the hidden half reads as masked.
        Algorithm::MixMim(m) => {
            let blank = input.image.zeros_like();
            let pair = SelfSupInputs::single(Tensor::cat(vec![input.image.clone(), blank], 0));
            let p = m.predict(&pair, draws)?;
            let [_, c, h, w] = p.reconstruction.dims();
            let [_, l] = p.mask.dims();
            let mask = host(p.mask.slice([0..1, 0..l]).into_data())?;
            input.pixel_panels(p.reconstruction.slice([0..1, 0..c, 0..h, 0..w]), mask, m.head.target.patch_size)
        }
        other => Err(TrainError::Other(format!(
            "visualize-reconstruction draws MAE, PixMIM, SimMIM, MaskFeat, MixMIM, SparK and iTPN (pixel) models; this config's model is {}",
            other.name()
        ))),
    }
}

/// One image as the model sees it.
struct VisInput<B: Backend> {
    /// The preprocessed image, `[1, c, h, w]`.
    image: Tensor<B, 4>,
    /// Its host copy.
    original: ImageF32,
    /// The pipeline's mask, `[1, gh, gw]`, when it makes one.
    mask: Option<Tensor<B, 3>>,
    /// The data preprocessor's mean and std per channel (pixel units).
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl<B: Backend> VisInput<B> {
    fn load(cfg: &LoadedConfig, model: &Algorithm<B>, path: &Path, seed: u64, device: &B::Device) -> Result<Self, TrainError> {
        let raw = RawSample { img: imread(path)?, label: None, name: path.display().to_string(), index: 0, clustering_label: None };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let sample = Pipeline::new(&vis_pipeline(cfg)?)?.run(raw, &mut rng)?;
        let view = sample.views.first().ok_or_else(|| TrainError::Other("the test pipeline produced no image".into()))?;
        let (c, h, w) = (view.channels(), view.height(), view.width());
        let mut pixels = vec![0f32; c * h * w];
        view.write_chw_f32(&mut pixels);
        let preprocessor = model.data_preprocessor();
        let image = preprocessor.apply(Tensor::<B, 4>::from_data(TensorData::new(pixels, [1, c, h, w]), device));
        let original = ImageF32::new(c, h, w, host(image.clone().into_data())?).map_err(viz)?;
        let mask = sample.mask.map(|m| {
            let values: Vec<f32> = m.to_i64().iter().map(|v| *v as f32).collect();
            let shape: Vec<usize> = std::iter::once(1).chain(m.shape.iter().copied()).collect();
            Tensor::<B, 3>::from_data(TensorData::new(values, shape), device)
        });
        let per_channel = |v: &Option<Vec<f64>>, default: f32| {
            v.as_ref().map(|v| v.iter().map(|x| *x as f32).collect()).unwrap_or_else(|| vec![default; c])
        };
        let (mean, std) = (per_channel(&preprocessor.mean, 0.0), per_channel(&preprocessor.std, 1.0));
        Ok(Self { image, original, mask, mean, std })
    }

    /// The model's inputs: the image, and the pipeline's mask if any.
    fn inputs(&self) -> SelfSupInputs<B> {
        SelfSupInputs::single(self.image.clone()).with_data_samples(DataSamples { mask: self.mask.clone(), ..Default::default() })
    }

    /// The four panels of a pixel target: `reconstruction` `[1, c, h, w]`
    /// in the input's space, `mask` on the grid of `patch`-pixel squares.
    fn pixel_panels(&self, reconstruction: Tensor<B, 4>, mask: Vec<f32>, patch: usize) -> Result<Panels, TrainError> {
        let o = &self.original;
        let reconstruction = ImageF32::new(o.channels, o.height, o.width, host(reconstruction.into_data())?).map_err(viz)?;
        let vis = MaeVisualization::from_reconstruction(o.clone(), reconstruction, &mask, patch).map_err(viz)?;
        Ok(vis.denormalized(&self.mean, &self.std, 255.0).map_err(viz)?.panels())
    }

    /// MaskFeat's panels: both histograms drawn on the input's canvas.
    fn hog_panels(&self, p: MaskFeatPrediction<B>, hog: &HogGenerator<B>) -> Result<Panels, TrainError> {
        let [_, c, bins, ch, cw] = p.histogram.dims();
        let [_, gh, gw] = p.mask.dims();
        let predicted = hog_generator::histogram_from_tokens(p.pred, c, bins, [gh, gw]);
        if predicted.dims() != p.histogram.dims() {
            return Err(TrainError::Other(format!(
                "MaskFeat's {gh}x{gw} tokens make a {:?} histogram, not the target's {:?}",
                predicted.dims(),
                p.histogram.dims()
            )));
        }
        let (h, w) = (self.original.height, self.original.width);
        if gh == 0 || h % gh != 0 || w % gw != 0 {
            return Err(TrainError::Other(format!("a {gh}x{gw} mask does not tile a {h}x{w} image")));
        }
        let draw = |hist: Tensor<B, 5>| -> Result<Vec<f64>, TrainError> {
            Ok(hog_generator::generate_hog_image(&host(hist.into_data())?, [c, bins, ch, cw], hog.pool(), [h, w]))
        };
        let (target, prediction) = (draw(p.histogram)?, draw(predicted)?);
        let mask = host(p.mask.into_data())?;
        let vis = HogVisualization::new(self.original.clone(), &mask, h / gh, &target, &prediction).map_err(viz)?;
        Ok(vis.denormalized(&self.mean, &self.std, 255.0).map_err(viz)?.panels())
    }
}

/// The config's test pipeline, with the train pipeline's mask generator
/// spliced in before `PackSelfSupInputs` (which then packs `mask`) when the
/// test pipeline has none. Pipelines without a mask generator (MAE's,
/// PixMIM's) are the test pipeline unchanged.
fn vis_pipeline(cfg: &LoadedConfig) -> Result<Vec<TransformConfig>, TrainError> {
    let is_generator = |t: &TransformConfig| matches!(t, TransformConfig::BEiTMaskGenerator(_) | TransformConfig::SimMIMMaskGenerator(_));
    let mut pipeline = test_pipeline(cfg)?;
    if !pipeline.iter().any(is_generator) {
        let Some(generator) = cfg.run.train_dataloader.dataset.pipeline().iter().find(|t| is_generator(t)) else {
            return Ok(pipeline);
        };
        let at = pipeline.iter().position(|t| matches!(t, TransformConfig::PackSelfSupInputs(_))).unwrap_or(pipeline.len());
        pipeline.insert(at, generator.clone());
    }
    for t in &mut pipeline {
        if let TransformConfig::PackSelfSupInputs(pack) = t {
            if !pack.algorithm_keys.iter().any(|k| k == "mask") {
                pack.algorithm_keys.push("mask".into());
            }
        }
    }
    Ok(pipeline)
}

fn host(t: TensorData) -> Result<Vec<f32>, TrainError> {
    t.convert::<f32>().to_vec::<f32>().map_err(|e| TrainError::Other(format!("{e:?}")))
}

fn viz(e: selfsup_viz::VizError) -> TrainError {
    TrainError::Other(e.to_string())
}
