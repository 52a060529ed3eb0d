//! Feature extraction (`selfsup extract`): a folder of images through the
//! config's test pipeline and the model's `extract_feat`.
use std::{collections::BTreeMap, path::Path, sync::Arc};

use burn::{
    module::AutodiffModule,
    tensor::{
        backend::{AutodiffBackend, Backend},
        TensorData,
    },
};
use selfsup_algorithms::{key_map, Algorithm};
use selfsup_core::SelfSupAlgorithm;
use selfsup_data::{CustomDatasetConfig, DataLoader, DataLoaderOptions, DataPrefix, Dataset, DatasetConfig, Pipeline, TransformConfig};
use selfsup_weights::{load_into, write_safetensors, LoadOptions};

use crate::{checkpoint, config::LoadedConfig, runner::batch_to_inputs, TrainError};

/// The test pipeline: the config's `test_dataloader.dataset.pipeline` (or
/// `val_dataloader`'s), or mmcls's default (resize the short edge to
/// `size·256/224`, center crop `size`) when the config has neither.
pub fn test_pipeline(cfg: &LoadedConfig) -> Result<Vec<TransformConfig>, TrainError> {
    if let Some(t) = cfg.run.test_dataloader.as_ref().or(cfg.run.val_dataloader.as_ref()) {
        return Ok(t.dataset.pipeline().to_vec());
    }
    let size = cfg.run.model.input_size().unwrap_or(224);
    let json = format!(
        r#"[{{"type": "LoadImageFromFile"}},
            {{"type": "ResizeEdge", "scale": {}, "edge": "short", "backend": "pillow", "interpolation": "bicubic"}},
            {{"type": "CenterCrop", "crop_size": {size}}},
            {{"type": "PackSelfSupInputs"}}]"#,
        size * 256 / 224
    );
    Ok(TransformConfig::parse_list(&json)?)
}

/// The config's model for inference: with the weights of `checkpoint`
/// (an MMSelfSup `.pth` or a selfsup checkpoint, loaded strictly), or as
/// initialised when `None`.
///
/// # Errors
/// An unreadable checkpoint or one that does not fit the model.
pub fn load_model<B: AutodiffBackend>(
    cfg: &LoadedConfig,
    checkpoint: Option<&Path>,
    device: &B::Device,
) -> Result<Algorithm<B::InnerBackend>, TrainError> {
    let model: Algorithm<B> = cfg.run.model.init(device);
    let model = match checkpoint {
        Some(path) => load_into(model, &checkpoint::model_weights(path)?, &key_map(), &LoadOptions::default())?.0,
        None => model,
    };
    Ok(model.valid())
}

/// Global features of a dataset, in dataset order.
#[derive(Debug, Clone)]
pub struct Features {
    /// `[n, dim]`, row-major.
    pub feats: Vec<f32>,
    /// Per-sample labels (`None` for unlabelled samples).
    pub labels: Vec<Option<usize>>,
    /// Per-sample names.
    pub names: Vec<String>,
    /// Per-sample dataset indices.
    pub indices: Vec<usize>,
    /// Feature width.
    pub dim: usize,
}

/// Runs every readable sample of `dataset` through `pipeline` and the
/// model's global features (`extract_feat` pooled, the cls token for ViTs).
/// Unreadable files are skipped (the loader warns and counts them).
///
/// # Errors
/// A pipeline or model error.
pub fn features<B: Backend>(
    model: &Algorithm<B>,
    dataset: Arc<dyn Dataset>,
    pipeline: &[TransformConfig],
    batch_size: usize,
    device: &B::Device,
) -> Result<Features, TrainError> {
    features_with(model, dataset, pipeline, batch_size, device, |m, x| m.global_features(x).map_err(TrainError::from))
}

/// [`features`] with the features `f` computes from a batch's inputs (DeepCluster
/// clusters its neck's output).
///
/// # Errors
/// A pipeline error, or `f`'s.
pub fn features_with<B: Backend>(
    model: &Algorithm<B>,
    dataset: Arc<dyn Dataset>,
    pipeline: &[TransformConfig],
    batch_size: usize,
    device: &B::Device,
    f: impl Fn(&Algorithm<B>, &selfsup_core::SelfSupInputs<B>) -> Result<burn::tensor::Tensor<B, 2>, TrainError>,
) -> Result<Features, TrainError> {
    let pipeline = Pipeline::new(pipeline)?;
    // One row per readable image: unreadable ones are dropped, counted and
    // named by the loader's warning, not replaced.
    let opts = DataLoaderOptions {
        batch_size: batch_size.max(1),
        shuffle: false,
        drop_last: false,
        num_workers: 2,
        skip_unreadable: true,
        ..Default::default()
    };
    let loader = DataLoader::new(dataset, pipeline, opts)?;
    let mut out = Features { feats: Vec::new(), labels: Vec::new(), names: Vec::new(), indices: Vec::new(), dim: 0 };
    let mut seen = std::collections::HashSet::new();
    for batch in loader.iter_epoch(0) {
        let batch = batch?;
        // Each sample once (a batch of only unreadable files is empty).
        let keep: Vec<usize> = (0..batch.indices.len()).filter(|&i| seen.insert(batch.indices[i])).collect();
        if keep.is_empty() {
            continue;
        }
        let inputs = batch_to_inputs(&batch, model.data_preprocessor(), device);
        let f = f(model, &inputs)?;
        let dim = f.dims()[1];
        out.dim = dim;
        let values = f.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| TrainError::Other(format!("{e:?}")))?;
        for &i in &keep {
            out.feats.extend_from_slice(&values[i * dim..(i + 1) * dim]);
            out.labels.push(batch.labels[i]);
            out.names.push(batch.names[i].clone());
            out.indices.push(batch.indices[i]);
        }
    }
    Ok(out)
}

/// Extracts global features (the cls token for ViTs) of every image under
/// `images` (recursive) and writes `feats` `[N, D]` to a safetensors file,
/// with the image paths (relative to `images`) as JSON in the metadata key
/// `names`; or, when `out` ends in `.csv`, a CSV table of the names and
/// features ([`write_csv`]). Returns N.
pub fn extract<B: AutodiffBackend>(
    cfg: &LoadedConfig,
    checkpoint_path: &Path,
    images: &Path,
    out: &Path,
    batch_size: usize,
    device: &B::Device,
) -> Result<Extracted, TrainError> {
    let model = load_model::<B>(cfg, Some(checkpoint_path), device)?;

    let dataset = DatasetConfig::CustomDataset(CustomDatasetConfig {
        data_root: String::new(),
        data_prefix: DataPrefix::Path(images.display().to_string()),
        ann_file: String::new(),
        with_label: false,
        ..Default::default()
    })
    .build(None)?;
    let listed = dataset.len();
    let Features { feats, names, dim, .. } = features(&model, dataset, &test_pipeline(cfg)?, batch_size, device)?;
    let n = names.len();
    if out.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
        write_csv(out, &names, &feats, dim)?;
        return Ok(Extracted { written: n, skipped: listed - n });
    }
    let mut tensors = BTreeMap::new();
    tensors.insert("feats".to_string(), TensorData::new(feats, [n, dim]));
    let mut meta = BTreeMap::new();
    meta.insert("names".to_string(), serde_json::to_string(&names).unwrap_or_default());
    meta.insert("algorithm".to_string(), cfg.run.model.name().to_string());
    write_safetensors(out, &tensors, &meta)?;
    Ok(Extracted { written: n, skipped: listed - n })
}

/// Writes features as CSV (RFC 4180): a header `name,feat_0,…,feat_{dim-1}`,
/// then one row per image, its name quoted when it holds a comma, a quote
/// or a line break, and each value in Rust's shortest round-trip form.
/// Written to a temporary file and renamed, so a reader never sees half a file.
///
/// # Errors
/// The file cannot be written.
pub fn write_csv(out: &Path, names: &[String], feats: &[f32], dim: usize) -> Result<(), TrainError> {
    use std::fmt::Write as _;
    let mut text = String::from("name");
    for j in 0..dim {
        let _ = write!(text, ",feat_{j}");
    }
    text.push('\n');
    for (name, row) in names.iter().zip(feats.chunks(dim.max(1))) {
        if name.contains([',', '"', '\n', '\r']) {
            let _ = write!(text, "\"{}\"", name.replace('"', "\"\""));
        } else {
            text.push_str(name);
        }
        for v in row {
            let _ = write!(text, ",{v}");
        }
        text.push('\n');
    }
    let tmp = out.with_extension("csv.partial");
    std::fs::write(&tmp, text).map_err(|e| TrainError::Io(tmp.clone(), e))?;
    std::fs::rename(&tmp, out).map_err(|e| TrainError::Io(out.to_path_buf(), e))
}

/// What [`extract`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extracted {
    /// Rows written (readable images).
    pub written: usize,
    /// Images listed but unreadable (warned about, no row).
    pub skipped: usize,
}
