//! The training loop: MMEngine's runner, on one device ([`train`]) or
//! data-parallel on several ([`train_data_parallel`]).
use std::{
    fs,
    io::{IsTerminal, Write},
    path::{Path, PathBuf},
    sync::{mpsc, Arc, Mutex, PoisonError},
    time::Instant,
};

use burn::{
    module::AutodiffModule,
    optim::{GradientsAccumulator, GradientsParams},
    tensor::{backend::AutodiffBackend, Tensor, TensorData},
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use selfsup_algorithms::{contrastive::SwAVQueueState, key_map, Algorithm};
use selfsup_core::{Draws, SelfSupAlgorithm, SelfSupInputs, StepContext};
use selfsup_data::{Batch, DataLoader};
use selfsup_layers::{
    amp::autocast,
    dist::{self, Rank, ReduceOperation},
};
use selfsup_weights::{export_state_dict, load_into, KeyMap, LoadOptions};

use crate::{
    checkpoint::{self, CheckpointMeta},
    config::{CustomHookConfig, LoadedConfig, RunConfig},
    optim::{LossScaler, Optimizer},
    schedule::{LrSchedule, StepUnit},
    TrainError,
};

/// How to resume.
#[derive(Debug, Clone, PartialEq)]
pub enum Resume {
    /// Start fresh (unless the config says `resume = true`).
    No,
    /// The newest checkpoint in the work dir, if any.
    Auto,
    /// This checkpoint.
    From(PathBuf),
}

/// Options that come from the command line rather than the config.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Output folder: checkpoints, logs, the resolved config.
    pub work_dir: PathBuf,
    /// Resume mode.
    pub resume: Resume,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Name of the config file written to the work dir.
    pub config_name: String,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Iterations run in total (including before a resume).
    pub iters: usize,
    /// Iterations run by this invocation.
    pub iters_this_run: usize,
    /// The losses of every iteration of this invocation (total).
    pub losses: Vec<f64>,
    /// Images per second over this invocation.
    pub images_per_sec: f64,
    /// Images skipped because they could not be read.
    pub skipped_images: usize,
    /// The final checkpoint.
    pub checkpoint: PathBuf,
}

/// Uploads a batch of RGB values (0–255) and applies the data preprocessor.
pub fn batch_to_inputs<B: burn::tensor::backend::Backend>(
    batch: &Batch,
    model: &Algorithm<B>,
    device: &B::Device,
) -> SelfSupInputs<B> {
    let raw = batch.views.iter().map(|v| Tensor::<B, 4>::from_data(TensorData::new(v.data.clone(), v.shape), device)).collect();
    SelfSupInputs { views: model.data_preprocessor().apply_views(raw) }
}

fn keymap() -> KeyMap {
    key_map()
}

struct Log {
    file: fs::File,
}

impl Log {
    fn open(path: &Path) -> Result<Self, TrainError> {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| TrainError::Io(path.to_path_buf(), e))?;
        Ok(Self { file })
    }

    fn write(&mut self, value: &serde_json::Value) {
        // A log line that cannot be written must not stop a run of days.
        let _ = writeln!(self.file, "{value}");
    }
}

/// Trains the config's algorithm on backend `B`. See the crate docs.
///
/// Called on a thread that is a rank of a data-parallel group
/// ([`selfsup_layers::dist::join`]), it trains that rank's replica: see
/// [`train_data_parallel`].
pub fn train<B: AutodiffBackend>(
    cfg: &LoadedConfig,
    opts: &TrainOptions,
    device: &B::Device,
) -> Result<TrainSummary, TrainError> {
    let run = &cfg.run;
    let work_dir = &opts.work_dir;
    let Rank { rank, world_size: world } = dist::current().unwrap_or(Rank { rank: 0, world_size: 1 });
    // Rank 0 writes the work dir, the log and the checkpoints.
    let lead = rank == 0;
    if lead {
        fs::create_dir_all(work_dir).map_err(|e| TrainError::Io(work_dir.clone(), e))?;
        cfg.tree
            .dump(work_dir.join(&opts.config_name))
            .map_err(|e| TrainError::Other(format!("writing the resolved config: {e}")))?;
        for w in run.optim_wrapper.warnings() {
            eprintln!("warning: {w}");
        }
    }
    let seed = run.randomness.seed.unwrap_or(0);
    // MMEngine's `diff_rank_seed`: rank r's draws are seeded with seed + r.
    let draws_seed = |r: usize| (seed + if run.randomness.diff_rank_seed { r as u64 } else { 0 }) ^ 0x5eed_5e1f;
    let keymap = keymap();
    let mut model: Algorithm<B> = run.model.init_seeded(device, seed);

    if let Some(path) = &run.load_from {
        let ckpt = checkpoint::load(Path::new(path))?;
        let (m, report) = load_into(model, &ckpt.model, &keymap, &LoadOptions::default())?;
        model = m.prepare();
        eprintln!("load_from {path}: {} tensors", report.loaded.len());
    }

    let loader = DataLoader::from_config_seeded(&run.train_dataloader, None, seed)?.sharded(rank, world)?;
    let epoch_length = loader.batches_per_epoch();
    if epoch_length == 0 {
        return Err(TrainError::Other("the training data gives no full batch (dataset smaller than batch_size with drop_last?)".into()));
    }
    let batch_size = run.train_dataloader.batch_size;
    let max_iters = match run.train_cfg.kind.as_str() {
        "IterBasedTrainLoop" => run.train_cfg.max_iters.unwrap_or(0),
        _ => {
            let by_epochs = run.train_cfg.max_epochs.map(|e| e * epoch_length).unwrap_or(usize::MAX);
            by_epochs.min(run.train_cfg.max_iters.unwrap_or(usize::MAX))
        }
    };

    let mut optim = Optimizer::<B>::new(&run.optim_wrapper, &model, &keymap);
    let base_lr = run.optim_wrapper.lr();
    let base: Vec<f64> = optim.group_lr_mults().iter().map(|m| base_lr * m).collect();
    // `fix_lr` groups keep their lr: SimSiamHook's `lr` when it fixes the
    // predictor's, else the base lr.
    let hook_lr = run.custom_hooks.iter().find_map(|h| match h {
        CustomHookConfig::SimSiam(s) if s.fix_pred_lr => Some(s.lr),
        _ => None,
    });
    let fixed: Vec<Option<f64>> =
        optim.group_fixed().iter().zip(&base).map(|(f, b)| f.then_some(hook_lr.unwrap_or(*b))).collect();
    let mut schedule = LrSchedule::new(&run.param_scheduler, base, epoch_length).map_err(TrainError::Other)?;

    // AmpOptimWrapper: products in float16/bfloat16 during the forward
    // pass, float32 masters, the loss scaled for the backward pass.
    let amp = run.optim_wrapper.amp().map_err(|(k, m)| TrainError::Other(format!("{k}: {m}")))?;
    let autocast_dtype = amp.map(|a| a.dtype);
    let mut scaler = amp.map(|a| a.scaler);
    let mut draws = Draws::seeded(draws_seed(rank));
    let (mut iter, mut epoch, mut batch_in_epoch) = (0usize, 0usize, 0usize);

    let resume_from = match &opts.resume {
        Resume::From(p) => Some(p.clone()),
        Resume::Auto => checkpoint::find_latest(work_dir),
        Resume::No if run.resume => checkpoint::find_latest(work_dir),
        Resume::No => None,
    };
    if let Some(path) = &resume_from {
        let mut ckpt = checkpoint::load(path)?;
        let meta = ckpt.meta.ok_or_else(|| TrainError::Other(format!("{}: not a selfsup training checkpoint", path.display())))?;
        let queue = ckpt.model.tensors.remove(checkpoint::SWAV_QUEUE);
        let (m, _) = load_into(model, &ckpt.model, &keymap, &LoadOptions::default())?;
        model = m.prepare();
        if let Some(q) = queue {
            let bad = || TrainError::Other("bad SwAV queue in checkpoint".into());
            let qshape = q.shape.to_vec();
            let all = q.convert::<f32>().to_vec::<f32>().map_err(|_| bad())?;
            // One replica's queue is `[crops, rows, dim]`; a data-parallel
            // run saves every replica's, `[world, crops, rows, dim]`.
            let (shape, data): ([usize; 3], Vec<f32>) = match qshape.len() {
                3 if world == 1 => (qshape.try_into().map_err(|_| bad())?, all),
                4 if qshape[0] == world => {
                    let per = all.len() / world;
                    (qshape[1..].to_vec().try_into().map_err(|_| bad())?, all[rank * per..(rank + 1) * per].to_vec())
                }
                _ => {
                    return Err(TrainError::Other(format!(
                        "the checkpoint's SwAV queue {qshape:?} was saved by a run on another number of devices than {world}"
                    )))
                }
            };
            // `use_queue` needs no saving: the loss turns it on whenever the
            // queue's last row is filled, and nothing empties a row again.
            model = model.with_swav_queue(Some(SwAVQueueState { data, shape, use_queue: false }));
        }
        let unknown = optim.load_state(meta.optimizer_steps, ckpt.optimizer, device);
        if !unknown.is_empty() {
            return Err(TrainError::Other(format!("optimizer state for unknown parameters: {}", unknown.join(", "))));
        }
        let seed_bytes: [u8; 32] = meta
            .draws_seed
            .clone()
            .try_into()
            .map_err(|_| TrainError::Other("bad generator state in checkpoint".into()))?;
        let word_pos: u128 = meta.draws_word_pos.parse().map_err(|_| TrainError::Other("bad generator state in checkpoint".into()))?;
        // Every rank makes the same number of draws, so rank 0's position
        // is every rank's; with `diff_rank_seed` the key is the rank's own.
        let key = if rank > 0 && run.randomness.diff_rank_seed { Draws::seeded(draws_seed(rank)).state().0 } else { seed_bytes };
        draws = Draws::from_state(key, word_pos);
        if let (Some(sc), Some((scale, tracker))) = (scaler.as_mut(), meta.loss_scaler) {
            sc.scale = scale;
            sc.growth_tracker = tracker;
        }
        iter = meta.iter;
        epoch = meta.epoch;
        batch_in_epoch = meta.batch_in_epoch;
        schedule.fast_forward(iter, epoch);
        if lead {
            eprintln!("resumed from {} at iteration {iter} (epoch {epoch})", path.display());
        }
    }

    let mut log = if lead { Some(Log::open(&work_dir.join("scalars.json"))?) } else { None };
    let log_interval = run.default_hooks.logger.as_ref().map(|l| l.interval.max(1)).unwrap_or(50);
    let ckpt_hook = run.default_hooks.checkpoint.clone();

    // A progress bar on a terminal; log lines every logger interval otherwise.
    let show_bar = lead && opts.progress && std::io::stderr().is_terminal();
    let bar = if show_bar {
        let bar = ProgressBar::with_draw_target(Some(max_iters as u64), ProgressDrawTarget::stderr_with_hz(4));
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} eta {eta} | {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(run.model.name());
        bar.set_position(iter as u64);
        bar
    } else {
        ProgressBar::hidden()
    };

    let mut ckpts: Vec<PathBuf> = Vec::new();
    let mut last_ckpt: Option<PathBuf> = resume_from.clone();
    let mut losses = Vec::new();
    let start_iter = iter;
    let t_start = Instant::now();
    let mut t_last = Instant::now();
    let mut data_time = 0.0f64;

    // Every rank calls `save` at the same iterations (SwAV's queues are
    // gathered there); rank 0 writes.
    let save = |model: &Algorithm<B>,
                optim: &Optimizer<B>,
                draws: &Draws,
                scaler: Option<LossScaler>,
                iter: usize,
                epoch: usize,
                batch_in_epoch: usize,
                name: String|
     -> Result<PathBuf, TrainError> {
        let path = work_dir.join(name);
        let queue = model.swav_queue().map(|q| {
            if world == 1 {
                return TensorData::new(q.data.clone(), q.shape);
            }
            let [c, r, d] = q.shape;
            let mine = Tensor::<B::InnerBackend, 4>::from_data(TensorData::new(q.data.clone(), [1, c, r, d]), device);
            dist::all_gather(mine).into_data()
        });
        if !lead {
            return Ok(path);
        }
        let (seed_bytes, word_pos) = draws.state();
        let meta = CheckpointMeta {
            iter,
            epoch,
            batch_in_epoch,
            optimizer_steps: optim.steps(),
            draws_seed: seed_bytes.to_vec(),
            draws_word_pos: word_pos.to_string(),
            algorithm: model.name().to_string(),
            config: cfg.tree.value().clone(),
            loss_scaler: scaler.map(|s| (s.scale, s.growth_tracker)),
        };
        let mut state = export_state_dict(&model.valid(), &keymap)?;
        if let Some(q) = queue {
            state.insert(checkpoint::SWAV_QUEUE.to_string(), q);
        }
        checkpoint::save(&path, state, optim.state_tensors(), &meta)?;
        let rel = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        fs::write(checkpoint::last_checkpoint_file(work_dir), rel).map_err(|e| TrainError::Io(work_dir.clone(), e))?;
        Ok(path)
    };

    let accumulate = run.optim_wrapper.accumulative_counts.max(1);
    let mut accumulated: Option<GradientsAccumulator<Algorithm<B>>> = None;
    let mut pending = 0usize;
    'epochs: while iter < max_iters {
        let mut batches = loader.iter_from(epoch, batch_in_epoch).take(epoch_length.saturating_sub(batch_in_epoch));
        // SwAVHook.before_train_epoch: start the queue, restart `use_queue`.
        for hook in &run.custom_hooks {
            if let CustomHookConfig::SwAV(h) = hook {
                // SwAVHook: the length rounded down to whole global batches,
                // each replica queueing its own share.
                let length = h.queue_length - h.queue_length % (h.batch_size.max(1) * world);
                if length > 0 && epoch >= h.epoch_queue_starts {
                    let queue = match model.swav_queue() {
                        Some(q) => Some(SwAVQueueState { use_queue: false, ..q.clone() }),
                        None => Some(SwAVQueueState::zeros(h.crops_for_assign.len(), length / world, h.feat_dim)),
                    };
                    model = model.with_swav_queue(queue);
                }
            }
        }
        loop {
            if iter >= max_iters {
                break 'epochs;
            }
            // Hooks' before_train_iter.
            for hook in &run.custom_hooks {
                match hook {
                    CustomHookConfig::DenseCl(h) => model = model.with_dense_loss(iter >= h.start_iters),
                    CustomHookConfig::SwAV(h) => {
                        let frozen = h.frozen_layers_cfg.iter().any(|(name, n)| name.contains("prototypes") && iter < *n);
                        model = model.with_frozen_prototypes(frozen);
                    }
                    CustomHookConfig::SimSiam(_) => {}
                }
            }
            let t_data = Instant::now();
            let Some(batch) = batches.next() else { break };
            let batch = batch?;
            data_time += t_data.elapsed().as_secs_f64();
            let inputs = batch_to_inputs(&batch, &model, device);
            let (output, state) = {
                let _autocast = autocast(autocast_dtype);
                model.loss(&inputs, &mut draws)?
            };
            let mut parts = output.to_f64();
            if world > 1 {
                // Logged and checked: the mean over the replicas, the same
                // on every rank, so that all stop together on a NaN.
                let values: Vec<f64> = parts.iter().map(|(_, v)| *v).collect();
                for ((_, v), m) in parts.iter_mut().zip(dist::mean_values::<B>(&values, device)) {
                    *v = m;
                }
            }
            let total = output.total().ok_or_else(|| TrainError::Other("the algorithm returned no loss".into()))?;
            let total_value: f64 = parts.iter().filter(|(n, _)| n.contains("loss")).map(|(_, v)| v).sum();
            if !total_value.is_finite() {
                return Err(TrainError::NonFinite { iter, parts, last_checkpoint: last_ckpt.clone() });
            }
            // Gradient accumulation (MMEngine's `accumulative_counts`): the
            // loss is divided by the group size (the last, shorter group of
            // the run by its own size) and the optimiser steps at the end of
            // each group; schedules and momentum encoders move every iteration.
            let group_start = iter - iter % accumulate;
            let group_len = accumulate.min(max_iters - group_start);
            let total = if group_len > 1 { total.div_scalar(group_len as f64) } else { total };
            let total = match &scaler {
                Some(sc) => total.mul_scalar(sc.scale),
                None => total,
            };
            let grads = GradientsParams::from_grads(total.backward(), &model);
            pending += 1;
            let grads = if group_len > 1 {
                let acc = accumulated.get_or_insert_with(GradientsAccumulator::new);
                acc.accumulate(&model, grads);
                if pending < group_len {
                    model = model.after_step(state, &StepContext { iter, max_iters, epoch });
                    schedule.step(StepUnit::Iter);
                    iter += 1;
                    batch_in_epoch += 1;
                    losses.push(total_value);
                    continue;
                }
                accumulated.take().map(|mut a| a.grads()).unwrap_or_else(GradientsParams::new)
            } else {
                grads
            };
            pending = 0;
            // DistributedDataParallel: the replicas' gradients averaged.
            let grads = dist::all_reduce_gradients(&model, grads, ReduceOperation::Mean);
            // `fix_lr` groups (SimSiam's predictor) keep their base lr.
            let lrs: Vec<f64> = schedule.lrs().iter().zip(&fixed).map(|(lr, f)| f.unwrap_or(*lr)).collect();
            let (m, grad_norm) = match scaler.as_mut() {
                // GradScaler: overflowing steps are skipped, not errors.
                Some(sc) => {
                    let (m, norm, stepped) = optim.step_scaled(&lrs, model, grads, sc.scale);
                    sc.update(!stepped);
                    (m, norm)
                }
                None => {
                    if let Some(norm) = grad_norm_check(run, &model, &grads) {
                        return Err(TrainError::Other(format!("iteration {iter}: gradient norm {norm} is not finite (clip_grad.error_if_nonfinite)")));
                    }
                    optim.step(&lrs, model, grads)
                }
            };
            model = m.after_step(state, &StepContext { iter, max_iters, epoch });
            schedule.step(StepUnit::Iter);
            iter += 1;
            batch_in_epoch += 1;
            losses.push(total_value);

            let lr = lrs.first().copied().unwrap_or(0.0);
            let elapsed = t_last.elapsed().as_secs_f64();
            let imgs_per_s = (iter - start_iter) as f64 * (batch_size * world) as f64 / t_start.elapsed().as_secs_f64().max(1e-9);
            bar.set_position(iter as u64);
            bar.set_message(format!(
                "loss {total_value:.4} lr {lr:.3e} {imgs_per_s:.1} img/s data {:.0}%",
                100.0 * data_time / t_start.elapsed().as_secs_f64().max(1e-9)
            ));
            if iter % log_interval == 0 || iter == max_iters {
                let mut line = serde_json::json!({
                    "iter": iter, "epoch": epoch + 1, "lr": lr, "loss": total_value,
                    "grad_norm": grad_norm, "time": elapsed, "data_time": data_time / (iter - start_iter) as f64,
                    "img_per_s": imgs_per_s,
                });
                for (name, v) in &parts {
                    line[name.as_str()] = serde_json::json!(v);
                }
                if let Some(sc) = &scaler {
                    line["loss_scale"] = serde_json::json!(sc.scale);
                }
                if let Some(log) = log.as_mut() {
                    log.write(&line);
                }
                if lead && !show_bar {
                    eprintln!("Iter(train) [{iter:>6}/{max_iters}] epoch {} lr {lr:.4e} loss {total_value:.4} {imgs_per_s:.1} img/s", epoch + 1);
                }
            }
            t_last = Instant::now();

            if let Some(hook) = &ckpt_hook {
                if !hook.by_epoch && hook.interval > 0 && iter % hook.interval as usize == 0 && iter < max_iters {
                    let p = save(&model, &optim, &draws, scaler, iter, epoch, batch_in_epoch, format!("iter_{iter}.safetensors"))?;
                    ckpts.push(p.clone());
                    last_ckpt = Some(p);
                    if lead {
                        prune(&mut ckpts, hook.max_keep_ckpts);
                    }
                }
            }
        }
        // End of an epoch (the data ran out).
        epoch += 1;
        batch_in_epoch = 0;
        schedule.step(StepUnit::Epoch);
        if let Some(hook) = &ckpt_hook {
            if hook.by_epoch && hook.interval > 0 && epoch % hook.interval as usize == 0 && iter < max_iters {
                let p = save(&model, &optim, &draws, scaler, iter, epoch, 0, format!("epoch_{epoch}.safetensors"))?;
                ckpts.push(p.clone());
                last_ckpt = Some(p);
                if lead {
                    prune(&mut ckpts, hook.max_keep_ckpts);
                }
            }
        }
    }
    bar.finish_and_clear();

    let (e, b) = if batch_in_epoch >= epoch_length { (epoch + 1, 0) } else { (epoch, batch_in_epoch) };
    let final_name = match &ckpt_hook {
        Some(h) if h.by_epoch && b == 0 => format!("epoch_{e}.safetensors"),
        _ => format!("iter_{iter}.safetensors"),
    };
    let final_ckpt = save(&model, &optim, &draws, scaler, iter, e, b, final_name)?;
    ckpts.push(final_ckpt.clone());
    if let (Some(h), true) = (&ckpt_hook, lead) {
        prune(&mut ckpts, h.max_keep_ckpts);
    }
    let secs = t_start.elapsed().as_secs_f64().max(1e-9);
    Ok(TrainSummary {
        iters: iter,
        iters_this_run: iter - start_iter,
        losses,
        images_per_sec: (iter - start_iter) as f64 * (batch_size * world) as f64 / secs,
        skipped_images: loader.skipped(),
        checkpoint: final_ckpt,
    })
}

/// One data-parallel run at a time per process: burn-collective's local
/// servers are per backend type, shared by the whole process.
static DATA_PARALLEL: Mutex<()> = Mutex::new(());

/// Data-parallel training (PyTorch's `DistributedDataParallel`, MMEngine's
/// `launcher`) on `devices` of one machine: one replica per device, each on
/// its own thread and rank ([`selfsup_layers::dist`]).
///
/// - Every replica starts from the same seeded weights and steps its own
///   optimiser with the gradients averaged over the replicas by
///   burn-collective's all-reduce, so the replicas stay identical.
/// - `batch_size` is per device, as in MMSelfSup: the global batch is
///   `batch_size × devices`. Each replica loads its shard of every epoch
///   ([`DataLoader::sharded`]), so an epoch has `1/devices` as many
///   iterations.
/// - The algorithms' distributed pieces (gathers, ShuffleBN, Barlow Twins'
///   all-reduce, SwAV's Sinkhorn) talk to the other replicas; BatchNorm
///   normalises each replica's own batch (burn has no SyncBN).
/// - Rank 0 writes the log and the checkpoints; the logged losses are the
///   means over the replicas. A checkpoint resumes on the same number of
///   devices, or any number for algorithms without per-replica state
///   (all but SwAV's queue).
///
/// One device is [`train`]. The same device may be listed more than once
/// (a CPU backend has one): the replicas then share it, which tests the
/// data-parallel path on any machine.
///
/// # Errors
/// The first error of any replica; a replica that fails while the others
/// wait in a collective leaves them blocked, so call this from a process
/// that ends on the error (as the CLI does).
pub fn train_data_parallel<B: AutodiffBackend>(
    cfg: &LoadedConfig,
    opts: &TrainOptions,
    devices: &[B::Device],
) -> Result<TrainSummary, TrainError> {
    match devices {
        [] => return Err(TrainError::Other("no device to train on".into())),
        [device] => return train::<B>(cfg, opts, device),
        _ => {}
    }
    let _one_at_a_time = DATA_PARALLEL.lock().unwrap_or_else(PoisonError::into_inner);
    dist::reset::<B>();
    dist::reset::<B::InnerBackend>();
    let world = devices.len();
    let (cfg, opts) = (Arc::new(cfg.clone()), Arc::new(opts.clone()));
    let (tx, rx) = mpsc::channel::<(usize, Result<TrainSummary, TrainError>)>();
    for (rank, device) in devices.iter().enumerate() {
        let (cfg, opts, tx, device) = (cfg.clone(), opts.clone(), tx.clone(), device.clone());
        std::thread::Builder::new()
            .name(format!("selfsup-rank-{rank}"))
            .spawn(move || {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let _group = dist::join(Rank { rank, world_size: world });
                    train::<B>(&cfg, &opts, &device)
                }))
                .unwrap_or_else(|panic| {
                    let msg = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panicked".into());
                    Err(TrainError::Other(format!("rank {rank}: {msg}")))
                });
                let _ = tx.send((rank, result));
            })
            .map_err(|e| TrainError::Other(format!("starting the thread of rank {rank}: {e}")))?;
    }
    drop(tx);
    // Rank 0's summary once every replica is done; the first error at once.
    let mut summary = None;
    for _ in 0..world {
        match rx.recv() {
            Ok((0, Ok(s))) => summary = Some(s),
            Ok((_, Ok(_))) => {}
            Ok((_, Err(e))) => return Err(e),
            Err(_) => break,
        }
    }
    summary.ok_or_else(|| TrainError::Other("rank 0 ended without a result".into()))
}

fn prune(ckpts: &mut Vec<PathBuf>, keep: i64) {
    if keep <= 0 {
        return;
    }
    while ckpts.len() > keep as usize {
        let old = ckpts.remove(0);
        let _ = fs::remove_file(old);
    }
}

/// With `clip_grad.error_if_nonfinite`, the global gradient norm when it is
/// not finite.
fn grad_norm_check<B: AutodiffBackend>(run: &RunConfig, model: &Algorithm<B>, grads: &GradientsParams) -> Option<f64> {
    let check = run.optim_wrapper.clip_grad.as_ref().is_some_and(|c| c.error_if_nonfinite);
    if !check {
        return None;
    }
    let norm = crate::optim::global_grad_norm::<B, Algorithm<B>>(model, grads);
    (!norm.is_finite()).then_some(norm)
}
