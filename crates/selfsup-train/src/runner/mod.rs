//! The training loop: MMEngine's runner, on one device ([`train`]) or
//! data-parallel on several ([`train_data_parallel`]).
//!
//! [`Runner`] holds the run's state (model, optimiser, schedule, counters,
//! random draws); [`Runner::run`] is the loop, and everything around the
//! optimisation itself (checkpoints, logs, the progress bar, the
//! non-finite guard, the algorithm hooks) is a [`crate::hooks::Hook`].
use std::{
    fs,
    path::{Path, PathBuf},
    time::Instant,
};

use burn::{
    module::AutodiffModule,
    optim::{GradientsAccumulator, GradientsParams},
    tensor::{backend::AutodiffBackend, FloatDType},
};
use selfsup_algorithms::{key_map, Algorithm};
use selfsup_core::{Draws, SelfSupAlgorithm, StepContext};
use selfsup_data::{Batch, DataLoader};
use selfsup_layers::{
    amp::autocast,
    dist::{self, Rank, ReduceOperation},
};
use selfsup_weights::{export_state_dict, load_into, KeyMap, LoadOptions};

use crate::{
    checkpoint::{self, CheckpointMeta},
    config::{LoadedConfig, RunConfig, TrainLoop},
    hooks::{self, Hook},
    optim::{LossScaler, Optimizer},
    schedule::{Schedule, StepUnit},
    TrainError,
};

mod data_parallel;
mod inputs;
mod options;

pub use data_parallel::train_data_parallel;
pub use inputs::batch_to_inputs;
pub use options::{Resume, TrainOptions, TrainSummary};

/// What one iteration reports to the hooks.
#[derive(Debug, Clone)]
pub struct IterOutput {
    /// The loss parts, averaged over the replicas.
    pub parts: Vec<(String, f64)>,
    /// Their total (the parts whose name contains "loss").
    pub loss: f64,
    /// Whether the optimiser stepped (false inside an accumulation group).
    pub stepped: bool,
    /// The global gradient norm before clipping, when the optimiser stepped.
    pub grad_norm: f64,
    /// The first parameter group's learning rate of this step.
    pub lr: f64,
    /// The loss scale, with `AmpOptimWrapper`.
    pub loss_scale: Option<f64>,
    /// Seconds since the previous iteration ended.
    pub time: f64,
    /// Seconds spent waiting for data, per iteration, over this invocation.
    pub data_time: f64,
    /// Share of this invocation's time spent waiting for data.
    pub data_share: f64,
    /// Images per second over this invocation (all replicas).
    pub images_per_sec: f64,
}

/// A training run's state: what MMEngine's `Runner` holds and its hooks
/// read and change.
pub struct Runner<B: AutodiffBackend> {
    /// The resolved config.
    pub cfg: LoadedConfig,
    /// The model.
    pub model: Algorithm<B>,
    /// The optimiser.
    pub optim: Optimizer<B>,
    /// The learning-rate and weight-decay schedule.
    pub schedule: Schedule,
    /// Per parameter group, a learning rate that the schedule does not move
    /// (`fix_lr` groups; `SimSiamHook` sets the predictor's).
    pub fixed_lrs: Vec<Option<f64>>,
    /// `AmpOptimWrapper`'s loss scaler.
    pub scaler: Option<LossScaler>,
    /// Every random draw of the model.
    pub draws: Draws,
    /// Iterations finished.
    pub iter: usize,
    /// The current epoch, from 0.
    pub epoch: usize,
    /// Batches of the current epoch already consumed.
    pub batch_in_epoch: usize,
    /// The run's length in iterations.
    pub max_iters: usize,
    /// Batches per epoch (of this replica's shard).
    pub epoch_length: usize,
    /// This replica's rank and the number of replicas.
    pub rank: Rank,
    /// Output folder.
    pub work_dir: PathBuf,
    /// The newest checkpoint written or resumed from (the last good one).
    pub last_checkpoint: Option<PathBuf>,
    /// A checkpoint file name a hook asked for; the loop writes it after
    /// the current round of hooks.
    pub save_request: Option<String>,
    device: B::Device,
    loader: DataLoader,
    keymap: KeyMap,
    autocast: Option<FloatDType>,
    accumulated: Option<GradientsAccumulator<Algorithm<B>>>,
    pending: usize,
    losses: Vec<f64>,
    start_iter: usize,
    started: Instant,
    last_end: Instant,
    data_time: f64,
}

fn other(e: impl std::fmt::Display) -> TrainError {
    TrainError::Other(e.to_string())
}

/// MMEngine's `diff_rank_seed`: rank r's draws are seeded with seed + r.
fn draws_seed(run: &RunConfig, rank: usize) -> u64 {
    let seed = run.randomness.seed.unwrap_or(0);
    (seed + if run.randomness.diff_rank_seed { rank as u64 } else { 0 }) ^ 0x5eed_5e1f
}

impl<B: AutodiffBackend> Runner<B> {
    /// Builds the model (loading `load_from`), the data, the optimiser and
    /// the schedule of a fresh run.
    pub fn new(cfg: &LoadedConfig, opts: &TrainOptions, device: &B::Device) -> Result<Self, TrainError> {
        let run = &cfg.run;
        let rank = dist::current().unwrap_or(Rank { rank: 0, world_size: 1 });
        let seed = run.randomness.seed.unwrap_or(0);
        let keymap = key_map();
        let mut model: Algorithm<B> = run.model.init_seeded(device, seed);
        // Tokenizers' and teachers' own weight files (`init_cfg` Pretrained, `tokenizer_path`).
        model = run.model.load_pretrained(model).map_err(other)?;
        if let Some(path) = &run.load_from {
            let ckpt = checkpoint::load(Path::new(path))?;
            let (m, report) = load_into(model, &ckpt.model, &keymap, &LoadOptions::default())?;
            model = m.prepare();
            eprintln!("load_from {path}: {} tensors", report.loaded.len());
        }
        let loader = DataLoader::from_config_seeded(&run.train_dataloader, None, seed)?.sharded(rank.rank, rank.world_size)?;
        let epoch_length = loader.batches_per_epoch();
        if epoch_length == 0 {
            return Err(other("the training data gives no full batch (dataset smaller than batch_size with drop_last?)"));
        }
        if rank.rank == 0 {
            let dl = &run.train_dataloader;
            let dataset = loader.dataset();
            let classes = match dataset.num_classes() {
                Some(n) => format!("{n} classes"),
                None => "unlabelled".into(),
            };
            let tail = if dl.drop_last && dataset.len() % dl.batch_size != 0 { ", the last partial batch dropped" } else { "" };
            eprintln!(
                "data: {} with {} images ({classes}); {epoch_length} batches of {} per epoch{}{tail}",
                dl.dataset.type_name(),
                dataset.len(),
                dl.batch_size,
                if rank.world_size > 1 { " per replica" } else { "" },
            );
            // MMSelfSup keeps the last partial batch unless `drop_last`; say so when it is
            // small enough to make in-batch losses and BatchNorm statistics degenerate.
            let last = dataset.len().div_ceil(rank.world_size) % dl.batch_size;
            if !dl.drop_last && last > 0 && 2 * last < dl.batch_size {
                eprintln!(
                    "warning: the last batch of every epoch holds {last} of {} images (drop_last=false, as this config's \
                     recipe has it): in-batch losses and BatchNorm statistics are degenerate on so few; set \
                     train_dataloader.drop_last=true to drop it",
                    dl.batch_size
                );
            }
        }
        let max_iters = match run.train_cfg.kind {
            TrainLoop::IterBased => run.train_cfg.max_iters.unwrap_or(0),
            TrainLoop::EpochBased => {
                let by_epochs = run.train_cfg.max_epochs.map(|e| e * epoch_length).unwrap_or(usize::MAX);
                by_epochs.min(run.train_cfg.max_iters.unwrap_or(usize::MAX))
            }
        };
        let optim = Optimizer::<B>::new(&run.optim_wrapper, &model, &keymap);
        let base_lr = run.optim_wrapper.lr();
        let base: Vec<f64> = optim.group_lr_mults().iter().map(|m| base_lr * m).collect();
        let fixed_lrs = optim.group_fixed().iter().zip(&base).map(|(f, b)| f.then_some(*b)).collect();
        let schedule =
            Schedule::new(&run.param_scheduler, base, optim.group_weight_decays().to_vec(), epoch_length).map_err(TrainError::Other)?;
        // AmpOptimWrapper: products in float16/bfloat16 during the forward
        // pass, float32 masters, the loss scaled for the backward pass.
        let amp = run.optim_wrapper.amp().map_err(|(k, m)| TrainError::Other(format!("{k}: {m}")))?;
        let now = Instant::now();
        Ok(Self {
            cfg: cfg.clone(),
            model,
            optim,
            schedule,
            fixed_lrs,
            scaler: amp.map(|a| a.scaler),
            draws: Draws::seeded(draws_seed(run, rank.rank)),
            iter: 0,
            epoch: 0,
            batch_in_epoch: 0,
            max_iters,
            epoch_length,
            rank,
            work_dir: opts.work_dir.clone(),
            last_checkpoint: None,
            save_request: None,
            device: device.clone(),
            loader,
            keymap,
            autocast: amp.map(|a| a.dtype),
            accumulated: None,
            pending: 0,
            losses: Vec::new(),
            start_iter: 0,
            started: now,
            last_end: now,
            data_time: 0.0,
        })
    }

    /// Whether this replica writes files (rank 0).
    pub fn is_lead(&self) -> bool {
        self.rank.rank == 0
    }

    /// The device the model runs on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// The training data loader (hooks set its clustering labels and epoch orders).
    pub fn loader(&self) -> &DataLoader {
        &self.loader
    }

    /// Restores the run from a checkpoint: model, optimiser, draws, loss
    /// scaler, counters, and every hook's state.
    pub fn resume(&mut self, path: &Path, hooks: &mut [Box<dyn Hook<B>>]) -> Result<(), TrainError> {
        let mut ckpt = checkpoint::load(path)?;
        let meta = ckpt.meta.ok_or_else(|| TrainError::Other(format!("{}: not a selfsup training checkpoint", path.display())))?;
        for hook in hooks.iter_mut() {
            hook.after_load_checkpoint(self, &mut ckpt.model)?;
        }
        let model = self.model.clone();
        let (m, _) = load_into(model, &ckpt.model, &self.keymap, &LoadOptions::default())?;
        self.model = m.prepare();
        let unknown = self.optim.load_state(meta.optimizer_steps, ckpt.optimizer, &self.device);
        if !unknown.is_empty() {
            return Err(TrainError::Other(format!("optimizer state for unknown parameters: {}", unknown.join(", "))));
        }
        let bad = || TrainError::Other("bad generator state in checkpoint".into());
        let seed_bytes: [u8; 32] = meta.draws_seed.clone().try_into().map_err(|_| bad())?;
        let word_pos: u128 = meta.draws_word_pos.parse().map_err(|_| bad())?;
        // Every rank makes the same number of draws, so rank 0's position
        // is every rank's; with `diff_rank_seed` the key is the rank's own.
        let run = &self.cfg.run;
        let key = if self.rank.rank > 0 && run.randomness.diff_rank_seed {
            Draws::seeded(draws_seed(run, self.rank.rank)).state().0
        } else {
            seed_bytes
        };
        self.draws = Draws::from_state(key, word_pos);
        if let (Some(sc), Some((scale, tracker))) = (self.scaler.as_mut(), meta.loss_scaler) {
            sc.scale = scale;
            sc.growth_tracker = tracker;
        }
        (self.iter, self.epoch, self.batch_in_epoch) = (meta.iter, meta.epoch, meta.batch_in_epoch);
        self.schedule.fast_forward(self.iter, self.epoch);
        self.last_checkpoint = Some(path.to_path_buf());
        if self.is_lead() {
            // Epochs numbered from 1, as the log numbers them.
            eprintln!("resumed from {} at iteration {} (epoch {})", path.display(), self.iter, self.epoch + 1);
        }
        Ok(())
    }

    /// The loop: epochs of iterations until `max_iters`, with the hooks
    /// called at MMEngine's points, then the final checkpoint.
    pub fn run(mut self, hooks: &mut [Box<dyn Hook<B>>]) -> Result<TrainSummary, TrainError> {
        self.start_iter = self.iter;
        self.started = Instant::now();
        self.last_end = self.started;
        for hook in hooks.iter_mut() {
            hook.before_train(&mut self)?;
        }
        while self.iter < self.max_iters {
            for hook in hooks.iter_mut() {
                hook.before_train_epoch(&mut self)?;
            }
            let remaining = self.epoch_length.saturating_sub(self.batch_in_epoch);
            let mut batches = self.loader.iter_from(self.epoch, self.batch_in_epoch).take(remaining);
            while self.iter < self.max_iters {
                for hook in hooks.iter_mut() {
                    hook.before_train_iter(&mut self)?;
                }
                let t_data = Instant::now();
                let Some(batch) = batches.next() else { break };
                let batch = batch?;
                self.data_time += t_data.elapsed().as_secs_f64();
                let out = self.train_step(&batch)?;
                for hook in hooks.iter_mut() {
                    hook.after_train_iter(&mut self, &out)?;
                }
                self.last_end = Instant::now();
                self.serve_save_request(hooks)?;
            }
            if self.iter >= self.max_iters {
                break;
            }
            // The epoch's data ran out.
            self.epoch += 1;
            self.batch_in_epoch = 0;
            self.schedule.step(StepUnit::Epoch);
            for hook in hooks.iter_mut() {
                hook.after_train_epoch(&mut self)?;
            }
            self.serve_save_request(hooks)?;
        }
        for hook in hooks.iter_mut() {
            hook.after_train(&mut self)?;
        }
        // The final checkpoint, named as the checkpoint hook names its own.
        let (e, b) = if self.batch_in_epoch >= self.epoch_length { (self.epoch + 1, 0) } else { (self.epoch, self.batch_in_epoch) };
        let by_epoch = self.cfg.run.default_hooks.checkpoint.as_ref().is_some_and(|h| h.by_epoch);
        let name = if by_epoch && b == 0 { format!("epoch_{e}.safetensors") } else { format!("iter_{}.safetensors", self.iter) };
        let (epoch, batch_in_epoch) = (self.epoch, self.batch_in_epoch);
        (self.epoch, self.batch_in_epoch) = (e, b);
        let final_ckpt = self.save_checkpoint(&name, hooks)?;
        (self.epoch, self.batch_in_epoch) = (epoch, batch_in_epoch);
        let done = self.iter - self.start_iter;
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        Ok(TrainSummary {
            iters: self.iter,
            iters_this_run: done,
            images_per_sec: done as f64 * self.images_per_iter() / secs,
            skipped_images: self.loader.skipped(),
            losses: self.losses,
            checkpoint: final_ckpt,
        })
    }

    fn images_per_iter(&self) -> f64 {
        (self.cfg.run.train_dataloader.batch_size * self.rank.world_size) as f64
    }

    fn serve_save_request(&mut self, hooks: &mut [Box<dyn Hook<B>>]) -> Result<(), TrainError> {
        if let Some(name) = self.save_request.take() {
            self.save_checkpoint(&name, hooks)?;
        }
        Ok(())
    }

    /// One iteration: forward, backward, and (at the end of an
    /// accumulation group) the optimiser step, then the algorithm's
    /// `after_step` and the schedule.
    fn train_step(&mut self, batch: &Batch) -> Result<IterOutput, TrainError> {
        let (iter, max_iters, epoch) = (self.iter, self.max_iters, self.epoch);
        let inputs = batch_to_inputs(batch, self.model.data_preprocessor(), &self.device);
        let (output, state) = {
            let _autocast = autocast(self.autocast);
            self.model.loss(&inputs, &mut self.draws)?
        };
        let mut parts = output.to_f64();
        if self.rank.world_size > 1 {
            // Logged and checked: the mean over the replicas, the same on
            // every rank, so that all stop together on a NaN.
            let values: Vec<f64> = parts.iter().map(|(_, v)| *v).collect();
            for ((_, v), m) in parts.iter_mut().zip(dist::mean_values::<B>(&values, &self.device)) {
                *v = m;
            }
        }
        let total = output.total().ok_or_else(|| other("the algorithm returned no loss"))?;
        let loss: f64 = parts.iter().filter(|(n, _)| n.contains("loss")).map(|(_, v)| v).sum();
        // Gradient accumulation (MMEngine's `accumulative_counts`): the loss
        // is divided by the group size (the last, shorter group of the run
        // by its own size) and the optimiser steps at the end of each group;
        // schedules and momentum encoders move every iteration.
        let accumulate = self.cfg.run.optim_wrapper.accumulative_counts.max(1);
        let group_start = iter - iter % accumulate;
        let group_len = accumulate.min(max_iters - group_start);
        let total = if group_len > 1 { total.div_scalar(group_len as f64) } else { total };
        let total = match &self.scaler {
            Some(sc) => total.mul_scalar(sc.scale),
            None => total,
        };
        let grads = GradientsParams::from_grads(total.backward(), &self.model);
        self.pending += 1;
        let lrs: Vec<f64> = self.schedule.lrs().iter().zip(&self.fixed_lrs).map(|(lr, f)| f.unwrap_or(*lr)).collect();
        let grads = if group_len > 1 {
            let acc = self.accumulated.get_or_insert_with(GradientsAccumulator::new);
            acc.accumulate(&self.model, grads);
            (self.pending >= group_len).then(|| self.accumulated.take().map(|mut a| a.grads()).unwrap_or_default())
        } else {
            Some(grads)
        };
        let model = self.model.clone();
        let (model, grad_norm, stepped) = match grads {
            None => (model, 0.0, false),
            Some(grads) => {
                self.pending = 0;
                // DistributedDataParallel: the replicas' gradients averaged.
                let grads = dist::all_reduce_gradients(&model, grads, ReduceOperation::Mean);
                self.optim.set_weight_decays(self.schedule.weight_decays());
                let (m, norm) = self.optimiser_step(&lrs, model, grads)?;
                (m, norm, true)
            }
        };
        self.model = model.after_step(state, &StepContext { iter, max_iters, epoch });
        self.schedule.step(StepUnit::Iter);
        self.iter += 1;
        self.batch_in_epoch += 1;
        self.losses.push(loss);
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        let done = (self.iter - self.start_iter) as f64;
        Ok(IterOutput {
            parts,
            loss,
            stepped,
            grad_norm,
            lr: lrs.first().copied().unwrap_or(0.0),
            loss_scale: self.scaler.map(|s| s.scale),
            time: self.last_end.elapsed().as_secs_f64(),
            data_time: self.data_time / done,
            data_share: self.data_time / elapsed,
            images_per_sec: done * self.images_per_iter() / elapsed,
        })
    }

    fn optimiser_step(&mut self, lrs: &[f64], model: Algorithm<B>, grads: GradientsParams) -> Result<(Algorithm<B>, f64), TrainError> {
        match self.scaler.as_mut() {
            // GradScaler: overflowing steps are skipped, not errors.
            Some(sc) => {
                let (m, norm, stepped) = self.optim.step_scaled(lrs, model, grads, sc.scale);
                sc.update(!stepped);
                Ok((m, norm))
            }
            None => {
                let clip = self.cfg.run.optim_wrapper.clip_grad.as_ref();
                if clip.is_some_and(|c| c.error_if_nonfinite) {
                    let norm = crate::optim::global_grad_norm::<B, Algorithm<B>>(&model, &grads);
                    if !norm.is_finite() {
                        return Err(TrainError::Other(format!(
                            "iteration {}: gradient norm {norm} is not finite (clip_grad.error_if_nonfinite)",
                            self.iter
                        )));
                    }
                }
                Ok(self.optim.step(lrs, model, grads))
            }
        }
    }

    /// Writes a checkpoint of the current state, with every hook's state,
    /// atomically, and records it as `last_checkpoint`. Every rank calls
    /// it (hooks may gather); rank 0 writes.
    pub fn save_checkpoint(&mut self, name: &str, hooks: &mut [Box<dyn Hook<B>>]) -> Result<PathBuf, TrainError> {
        let path = self.work_dir.join(name);
        let mut state = selfsup_weights::StateDict::default();
        for hook in hooks.iter_mut() {
            hook.before_save_checkpoint(self, &mut state)?;
        }
        if self.is_lead() {
            let (seed_bytes, word_pos) = self.draws.state();
            let meta = CheckpointMeta {
                iter: self.iter,
                epoch: self.epoch,
                batch_in_epoch: self.batch_in_epoch,
                optimizer_steps: self.optim.steps(),
                draws_seed: seed_bytes.to_vec(),
                draws_word_pos: word_pos.to_string(),
                algorithm: self.model.name().to_string(),
                config: self.cfg.tree.value().clone(),
                loss_scaler: self.scaler.map(|s| (s.scale, s.growth_tracker)),
            };
            let mut tensors = export_state_dict(&self.model.valid(), &self.keymap)?;
            tensors.extend(state.tensors);
            let optimizer = self.optim.state_tensors();
            // A checkpoint is written only as a good one.
            let bad = tensors.iter().chain(optimizer.iter().map(|(_, k, t)| (k, t))).find(|(_, t)| !checkpoint::is_finite(t));
            if let Some((key, _)) = bad {
                eprintln!("error: {key} is not finite; {} not written", path.display());
                return Err(TrainError::NonFinite {
                    iter: self.iter,
                    what: "weights",
                    parts: Vec::new(),
                    last_checkpoint: self.last_checkpoint.clone(),
                });
            }
            checkpoint::save(&path, tensors, optimizer, &meta)?;
            checkpoint::write_last_checkpoint(&self.work_dir, &path)?;
        }
        self.last_checkpoint = Some(path.clone());
        for hook in hooks.iter_mut() {
            hook.after_save_checkpoint(self, &path)?;
        }
        Ok(path)
    }
}

/// Trains the config's algorithm on backend `B`. See the crate docs.
///
/// Called on a thread that is a rank of a data-parallel group
/// ([`selfsup_layers::dist::join`]), it trains that rank's replica: see
/// [`train_data_parallel`].
pub fn train<B: AutodiffBackend>(cfg: &LoadedConfig, opts: &TrainOptions, device: &B::Device) -> Result<TrainSummary, TrainError> {
    let run = &cfg.run;
    let work_dir = &opts.work_dir;
    let lead = dist::current().is_none_or(|r| r.rank == 0);
    let resume_from = match &opts.resume {
        Resume::From(p) => Some(p.clone()),
        Resume::Auto => checkpoint::find_latest(work_dir),
        Resume::No if run.resume => checkpoint::find_latest(work_dir),
        Resume::No => None,
    };
    // A checkpoint of another algorithm is refused before anything is written.
    if let Some(path) = &resume_from {
        let meta = checkpoint::read_meta(path)
            .ok_or_else(|| TrainError::Other(format!("{}: not a readable selfsup training checkpoint", path.display())))?;
        if meta.algorithm != run.model.name() {
            return Err(TrainError::Other(format!(
                "{} was written by a {} run; this config trains {}: use its own config, or another --work-dir",
                path.display(),
                meta.algorithm,
                run.model.name()
            )));
        }
        // The optimiser's state is kept per update rule (SGD's momentum, AdamW's moments).
        let stored = meta.config.pointer("/optim_wrapper/optimizer/type").and_then(|t| t.as_str()).unwrap_or_default();
        let stored = stored.rsplit('.').next().unwrap_or_default();
        let wanted = run.optim_wrapper.optimizer.type_name();
        if !stored.is_empty() && stored != wanted {
            return Err(TrainError::Other(format!(
                "{} was trained with the {stored} optimizer; this config's is {wanted}: the optimizer type changed, so its \
                 state cannot be resumed. Start a new run (`load_from` keeps the weights) or another --work-dir",
                path.display()
            )));
        }
    }
    // Rank 0 writes the work dir, the log and the checkpoints.
    if lead {
        fs::create_dir_all(work_dir).map_err(|e| TrainError::Io(work_dir.clone(), e))?;
        // A fresh run keeps its own log; the previous run's moves aside.
        let log = work_dir.join("scalars.json");
        if resume_from.is_none() && log.exists() {
            let old = (1..).map(|n| work_dir.join(format!("scalars.{n}.json"))).find(|p| !p.exists()).unwrap_or_default();
            fs::rename(&log, &old).map_err(|e| TrainError::Io(log.clone(), e))?;
            eprintln!("a new run in {}: the previous log is now {}", work_dir.display(), old.display());
        }
        // Temporary files of writes that a kill interrupted.
        let orphans = selfsup_weights::remove_orphaned_temporaries(work_dir);
        if !orphans.is_empty() {
            eprintln!("removed {} temporary file(s) left by an interrupted run in {}", orphans.len(), work_dir.display());
        }
        eprintln!("work dir: {}", work_dir.display());
        cfg.tree.dump(work_dir.join(&opts.config_name)).map_err(|e| TrainError::Other(format!("writing the resolved config: {e}")))?;
        for w in run.optim_wrapper.warnings() {
            eprintln!("warning: {w}");
        }
    }
    let mut runner = Runner::<B>::new(cfg, opts, device)?;
    let mut hooks = hooks::build::<B>(cfg, opts, lead);
    if let Some(path) = &resume_from {
        runner.resume(path, &mut hooks)?;
    }
    runner.run(&mut hooks)
}
