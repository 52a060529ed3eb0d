//! `selfsup visualize-mae`: one image through an MAE model, drawn as
//! MMSelfSup's `tools/analysis_tools/visualize_mae.py` shows it: original,
//! masked, reconstruction, and reconstruction with the visible patches
//! pasted back.
use std::path::Path;

use burn::tensor::{backend::AutodiffBackend, Tensor, TensorData};
use rand::SeedableRng;
use selfsup_algorithms::{Algorithm, AlgorithmConfig};
use selfsup_core::{Draws, SelfSupAlgorithm, SelfSupInputs};
use selfsup_data::{imaging::io::imread, Pipeline, RawSample};
use selfsup_viz::{save_image, ImageF32, MaeVisualization, StripOptions};

use crate::{
    config::LoadedConfig,
    extract::{load_model, test_pipeline},
    TrainError,
};

/// Options of [`visualize_mae`].
#[derive(Debug, Clone)]
pub struct VisualizeOptions {
    /// Seed of the masking noise (MMSelfSup's `--seed`).
    pub seed: u64,
    /// Each panel is drawn this many times larger.
    pub scale: u32,
}

impl Default for VisualizeOptions {
    fn default() -> Self {
        Self { seed: 0, scale: 2 }
    }
}

/// Runs `image` through the config's test pipeline and the MAE model of
/// `checkpoint`, and writes the four-panel strip to `out` (PNG).
///
/// # Errors
/// A config whose model is not MAE, an unreadable image or checkpoint, a
/// checkpoint that does not fit the model, or an unwritable `out`.
pub fn visualize_mae<B: AutodiffBackend>(
    cfg: &LoadedConfig,
    checkpoint_path: &Path,
    image: &Path,
    out: &Path,
    opts: &VisualizeOptions,
    device: &B::Device,
) -> Result<(), TrainError> {
    if !matches!(cfg.run.model, AlgorithmConfig::Mae(_)) {
        return Err(TrainError::Other(format!("visualize-mae needs an MAE config; this one is {}", cfg.run.model.name())));
    }
    let Algorithm::Mae(mae) = load_model::<B>(cfg, Some(checkpoint_path), device)? else { unreachable!("checked above") };

    let raw = RawSample { img: imread(image)?, label: None, name: image.display().to_string(), index: 0, clustering_label: None };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
    let sample = Pipeline::new(&test_pipeline(cfg)?)?.run(raw, &mut rng)?;
    let view = sample.views.first().ok_or_else(|| TrainError::Other("the test pipeline produced no image".into()))?;
    let (c, h, w) = (view.channels(), view.height(), view.width());
    let mut pixels = vec![0f32; c * h * w];
    view.write_chw_f32(&mut pixels);
    let preprocessor = mae.data_preprocessor().clone();
    let x = preprocessor.apply(Tensor::<B::InnerBackend, 4>::from_data(TensorData::new(pixels, [1, c, h, w]), device));

    let prediction = mae.predict(&SelfSupInputs::single(x.clone()), &mut Draws::seeded(opts.seed))?;
    let host = |t: TensorData| t.convert::<f32>().to_vec::<f32>().map_err(|e| TrainError::Other(format!("{e:?}")));
    let original = ImageF32::new(c, h, w, host(x.into_data())?).map_err(viz)?;
    let head = mae.head();
    let vis = MaeVisualization::new(
        original,
        &host(prediction.pred.into_data())?,
        &host(prediction.mask.into_data())?,
        head.patch_size,
        head.norm_pix,
    )
    .map_err(viz)?;
    let to_f32 =
        |v: &Option<Vec<f64>>, default: f32| v.as_ref().map(|v| v.iter().map(|x| *x as f32).collect()).unwrap_or_else(|| vec![default; c]);
    let (mean, std) = (to_f32(&preprocessor.mean, 0.0), to_f32(&preprocessor.std, 1.0));
    let strip = vis
        .denormalized(&mean, &std, 255.0)
        .map_err(viz)?
        .strip(&StripOptions { scale: opts.scale.max(1), ..Default::default() })
        .map_err(viz)?;
    save_image(&strip, out).map_err(viz)
}

fn viz(e: selfsup_viz::VizError) -> TrainError {
    TrainError::Other(e.to_string())
}
