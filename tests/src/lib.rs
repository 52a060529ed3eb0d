//! Shared helpers of the selfsup test suite: the backend under test,
//! fixture loading and tolerance checks.
//!
//! The suite runs once per backend: `cargo test -p selfsup-tests` (flex),
//! `--no-default-features --features tch`, `... wgpu`. Failures name the
//! backend.
use std::path::PathBuf;

pub mod mim;

use std::collections::BTreeMap;

use burn::{
    module::{AutodiffModule, Module, ModuleMapper, Param},
    optim::GradientsParams,
    tensor::{
        backend::{AutodiffBackend, Backend},
        Tensor, TensorData,
    },
};
use selfsup::{
    algorithms::key_map,
    weights::{export_state_dict, read_checkpoint, StateDict},
};

#[cfg(feature = "flex")]
mod chosen {
    /// The inner backend under test.
    pub type Inner = selfsup::backend::Flex;
    /// Its name.
    pub const NAME: &str = "flex";
}
#[cfg(all(feature = "tch", not(feature = "flex")))]
mod chosen {
    /// The inner backend under test.
    pub type Inner = selfsup::backend::Tch;
    /// Its name.
    pub const NAME: &str = "tch";
}
#[cfg(all(feature = "wgpu", not(any(feature = "flex", feature = "tch"))))]
mod chosen {
    /// The inner backend under test.
    pub type Inner = selfsup::backend::Wgpu;
    /// Its name.
    pub const NAME: &str = "wgpu";
}
#[cfg(all(feature = "cuda", not(any(feature = "flex", feature = "tch", feature = "wgpu"))))]
mod chosen {
    /// The inner backend under test.
    pub type Inner = selfsup::backend::Cuda;
    /// Its name.
    pub const NAME: &str = "cuda";
}

pub use chosen::{Inner, NAME as BACKEND};

/// The autodiff backend under test.
pub type B = selfsup::backend::Autodiff<Inner>;

/// The device under test.
pub fn device() -> burn::tensor::Device<B> {
    Default::default()
}

/// `tests/fixtures` of the workspace.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fixture case folder, e.g. `mae_tiny_normpix`.
pub struct Case {
    /// Its folder.
    pub dir: PathBuf,
    /// `io.safetensors`.
    pub io: StateDict,
    /// `config.json`.
    pub config: serde_json::Value,
}

impl Case {
    /// Loads a case.
    pub fn load(name: &str) -> Self {
        let dir = fixtures().join(name);
        let io = read_checkpoint(dir.join("io.safetensors")).expect("fixture io.safetensors");
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).expect("fixture config.json"))
                .expect("fixture config.json is JSON");
        Self { dir, io, config }
    }

    /// A float fixture tensor as f32 values and shape.
    pub fn f32(&self, name: &str) -> (Vec<f32>, Vec<usize>) {
        let t = self.io.get(name).unwrap_or_else(|| panic!("fixture tensor `{name}` missing"));
        let t = t.clone().convert::<f32>();
        (t.to_vec::<f32>().expect("f32 data"), t.shape.to_vec())
    }

    /// A fixture tensor on the device under test.
    pub fn tensor<const D: usize, BB: Backend>(&self, name: &str) -> Tensor<BB, D> {
        let (v, s) = self.f32(name);
        Tensor::from_data(TensorData::new(v, s), &Default::default())
    }
}

/// Values of a tensor on the host.
pub fn values<BB: Backend, const D: usize>(t: Tensor<BB, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().expect("f32 data")
}

/// Asserts `|a − b| ≤ atol + rtol·|b|` elementwise, naming the backend,
/// the tensor and the worst element.
pub fn assert_close(what: &str, ours: &[f32], reference: &[f32], rtol: f32, atol: f32) {
    assert_eq!(ours.len(), reference.len(), "[{BACKEND}] {what}: length {} vs {}", ours.len(), reference.len());
    let mut worst = (0usize, 0f32);
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        let excess = (a - b).abs() - (atol + rtol * b.abs());
        if excess > worst.1 || !a.is_finite() {
            worst = (i, excess.max(f32::MIN_POSITIVE));
        }
    }
    if worst.1 > 0.0 {
        let i = worst.0;
        panic!("[{BACKEND}] {what}: element {i}: ours {} vs reference {} (rtol {rtol}, atol {atol})", ours[i], reference[i]);
    }
}

/// Asserts `‖a − b‖₂ ≤ rtol·‖b‖₂`: a tensor-wise relative error, the
/// measure that stays meaningful for gradients whose elements cancel
/// (summation order differs between backends).
pub fn assert_rel_l2(what: &str, ours: &[f32], reference: &[f32], rtol: f64) {
    assert_eq!(ours.len(), reference.len(), "[{BACKEND}] {what}: length {} vs {}", ours.len(), reference.len());
    let diff: f64 = ours.iter().zip(reference).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = reference.iter().map(|b| (*b as f64).powi(2)).sum::<f64>().sqrt();
    assert!(
        diff <= rtol * norm.max(f64::MIN_POSITIVE) && ours.iter().all(|v| v.is_finite()),
        "[{BACKEND}] {what}: relative L2 error {:.3e} > {rtol:e}",
        diff / norm.max(f64::MIN_POSITIVE)
    );
}

/// A module's state dict as f32 values under PyTorch names.
pub fn state_values(module: &impl Module<Inner>) -> BTreeMap<String, Vec<f32>> {
    export_state_dict(module, &key_map())
        .expect("export")
        .into_iter()
        .map(|(k, v)| (k, v.convert::<f32>().to_vec::<f32>().expect("f32 data")))
        .collect()
}

/// Replaces every parameter by its gradient (zeros where it has none).
struct GradsAsParams<'a, BB: AutodiffBackend> {
    grads: &'a GradientsParams,
    _b: std::marker::PhantomData<BB>,
}

impl<BB: AutodiffBackend> ModuleMapper<BB::InnerBackend> for GradsAsParams<'_, BB> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<BB::InnerBackend, D>>) -> Param<Tensor<BB::InnerBackend, D>> {
        let (id, tensor, mapper) = param.consume();
        let g = self.grads.get::<BB::InnerBackend, D>(id).unwrap_or_else(|| tensor.zeros_like());
        Param::from_mapped_value(id, g, mapper)
    }
}

/// The gradients of `model` as a state dict with the parameters' PyTorch
/// names and layouts (zeros for parameters without a gradient).
pub fn gradient_values<M: AutodiffModule<B, InnerModule = MI>, MI: Module<Inner>>(
    model: &M,
    grads: &GradientsParams,
) -> BTreeMap<String, Vec<f32>> {
    state_values(&model.valid().map(&mut GradsAsParams::<B> { grads, _b: Default::default() }))
}

/// `--cfg-options` for a short run of a `*_demo_synthetic` config: 16
/// samples, `batch_size` per device, one worker, a checkpoint every epoch
/// and a log line every iteration, `epochs` epochs, then `extra`.
pub fn demo_options(batch_size: usize, epochs: usize, extra: &[&str]) -> Vec<String> {
    let mut o: Vec<String> = vec![
        format!("train_dataloader.batch_size={batch_size}"),
        "train_dataloader.num_workers=1".into(),
        "train_dataloader.dataset.num_samples=16".into(),
        "default_hooks.checkpoint.interval=1".into(),
        "default_hooks.logger.interval=1".into(),
        format!("train_cfg.max_epochs={epochs}"),
    ];
    o.extend(extra.iter().map(|s| s.to_string()));
    o
}

/// The losses of two training iterations of a `*_demo_synthetic` config
/// at `batch_size` (its own pipeline, [`demo_options`]), in a temporary
/// work dir; panics, naming the backend and the config, when training fails
/// or stops early.
pub fn demo_losses(path: &str, batch_size: usize) -> Vec<f64> {
    use selfsup::train::{train, LoadedConfig, Resume, TrainOptions};
    let options = demo_options(batch_size, 1, &["train_cfg.max_iters=2"]);
    let cfg = LoadedConfig::load(&workspace().join(path), &options).unwrap_or_else(|e| panic!("{path}: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let opts = TrainOptions { work_dir: dir.path().to_path_buf(), resume: Resume::No, progress: false, config_name: "config.toml".into() };
    let summary = train::<B>(&cfg, &opts, &device()).unwrap_or_else(|e| panic!("[{BACKEND}] {path}: {e}"));
    assert_eq!(summary.iters, 2, "[{BACKEND}] {path}");
    summary.losses
}
