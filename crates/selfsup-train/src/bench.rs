//! Training throughput of a config, on synthetic batches (no data loading).
use std::time::Instant;

use burn::{
    optim::GradientsParams,
    tensor::{backend::AutodiffBackend, Tensor, TensorData},
};
use selfsup_algorithms::{key_map, Algorithm};
use selfsup_core::{Draws, SelfSupAlgorithm, SelfSupInputs, StepContext};
use selfsup_data::{DataLoader, DataLoaderOptions, Pipeline, SyntheticDatasetConfig, TransformConfig};

use crate::{config::LoadedConfig, optim::Optimizer, runner::batch_to_inputs, TrainError};

/// One benchmark's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchResult {
    /// `model.type`.
    pub algorithm: String,
    /// Images per step.
    pub batch_size: usize,
    /// Timed steps.
    pub steps: usize,
    /// Mean milliseconds per training step (forward, backward, optimiser).
    pub ms_per_step: f64,
    /// Of which the forward pass (the loss).
    pub forward_ms: f64,
    /// Of which the backward pass.
    pub backward_ms: f64,
    /// Of which the optimiser step and the algorithm's after-step update.
    pub optimizer_ms: f64,
    /// Images per second.
    pub images_per_sec: f64,
    /// The process's peak resident memory in MiB after the timed steps
    /// (Linux's `VmHWM`; `None` elsewhere): host memory, so on a GPU it
    /// counts the host side only.
    pub peak_rss_mib: Option<f64>,
}

/// The process's peak resident set size so far, in MiB, from
/// `/proc/self/status` (`VmHWM`, in kB); `None` off Linux.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb / 1024.0)
}

/// One batch of synthetic images through the config's own pipeline, so the
/// views, crops, masks and pseudo-labels are the ones training sees (SimMIM's
/// and BEiT's masks, DINO's and SwAV's multi-crop views). The images are
/// square, a little larger than the model's input (`size` · 8/7, as ImageNet's
/// 256 is to 224).
fn pipeline_batch<B: AutodiffBackend>(
    pipeline: &[TransformConfig],
    batch_size: usize,
    size: usize,
    model: &Algorithm<B>,
    device: &B::Device,
) -> Result<SelfSupInputs<B>, TrainError> {
    let pipeline = Pipeline::new(pipeline)?;
    let dataset = SyntheticDatasetConfig { num_samples: batch_size, img_size: size * 8 / 7, ..Default::default() }.build()?;
    let opts = DataLoaderOptions { batch_size, shuffle: false, ..Default::default() };
    let loader = DataLoader::new(std::sync::Arc::new(dataset), pipeline, opts)?;
    // DeepCluster's and ODC's pipelines pack the clustering label.
    loader.assign_labels(vec![0; batch_size])?;
    let batch = loader.load_batch(0, 0)?;
    Ok(batch_to_inputs(&batch, model.data_preprocessor(), device))
}

/// Times `steps` full training steps (after `warmup` untimed ones) at
/// `batch_size`, on synthetic images through the config's pipeline (random
/// inputs of the model's input size when the config has no pipeline).
pub fn bench<B: AutodiffBackend>(
    cfg: &LoadedConfig,
    batch_size: usize,
    warmup: usize,
    steps: usize,
    device: &B::Device,
) -> Result<BenchResult, TrainError> {
    let run = &cfg.run;
    let size = run.model.input_size().unwrap_or(224);
    let mut model: Algorithm<B> = run.model.init(device);
    let keymap = key_map();
    let mut optim = Optimizer::<B>::new(&run.optim_wrapper, &model, &keymap);
    let lrs: Vec<f64> = optim.group_lr_mults().iter().map(|m| run.optim_wrapper.lr() * m).collect();
    let mut draws = Draws::seeded(0);
    let pipeline = run.train_dataloader.dataset.pipeline();
    let inputs = if pipeline.is_empty() {
        let views = run
            .model
            .view_sizes(size)
            .iter()
            .map(|&s| {
                let data: Vec<f32> = draws.uniform("bench_input", batch_size * 3 * s * s).into_iter().map(|v| v * 255.0).collect();
                model.data_preprocessor().apply(Tensor::<B, 4>::from_data(TensorData::new(data, [batch_size, 3, s, s]), device))
            })
            .collect();
        SelfSupInputs::new(views)
    } else {
        pipeline_batch(pipeline, batch_size, size, &model, device)?
    };
    // Seconds in the forward pass, the backward pass and the update; the
    // device is waited for after each, which costs an asynchronous device a
    // little overlap but makes the split honest.
    let mut phases = [0.0f64; 3];
    for i in 0..warmup + steps {
        let t = Instant::now();
        let (out, state) = model.loss(&inputs, &mut draws)?;
        let total = out.total().ok_or_else(|| TrainError::Other("no loss".into()))?;
        let _ = B::sync(device);
        let t_forward = t.elapsed().as_secs_f64();
        let grads = GradientsParams::from_grads(total.backward(), &model);
        let _ = B::sync(device);
        let t_backward = t.elapsed().as_secs_f64();
        let (m, _) = optim.step(&lrs, model, grads);
        model = m.after_step(state, &StepContext { iter: i, max_iters: warmup + steps, epoch: 0 });
        let _ = B::sync(device);
        let t_step = t.elapsed().as_secs_f64();
        if i >= warmup {
            phases[0] += t_forward;
            phases[1] += t_backward - t_forward;
            phases[2] += t_step - t_backward;
        }
    }
    let per = |s: f64| 1000.0 * s / steps.max(1) as f64;
    let ms = per(phases.iter().sum());
    Ok(BenchResult {
        algorithm: model.name().to_string(),
        batch_size,
        steps,
        ms_per_step: ms,
        forward_ms: per(phases[0]),
        backward_ms: per(phases[1]),
        optimizer_ms: per(phases[2]),
        images_per_sec: batch_size as f64 * 1000.0 / ms.max(1e-9),
        peak_rss_mib: peak_rss_mib(),
    })
}
