//! The data loader: a dataset + a pipeline → deterministic batches, on worker threads.
//!
//! # Determinism
//! A batch is a pure function of `(seed, epoch, iteration)`:
//! - the order of epoch `e` is a permutation keyed by `(seed, e)`
//!   ([`sampler::permutation`]);
//! - batch `k` of epoch `e` holds positions `k·batch_size ..` of that order;
//! - the sample at position `p` draws its augmentations from a ChaCha stream keyed by
//!   `(seed, e, p)` ([`sampler::sample_rng`]).
//!
//! So the same seed gives the same batches whatever `num_workers` is, and
//! [`DataLoader::iter_from`] resumes a run exactly.
//!
//! # Bad files
//! A sample whose file is unreadable, corrupt or truncated (or that a transform cannot
//! handle, e.g. a 1-pixel-high image) is skipped: a warning goes to the skip callback
//! (default: `eprintln!`), the [`skipped`](DataLoader::skipped) counter counts each bad
//! sample once, and the batch is filled with the next readable samples of the epoch's order
//! (those after the batch, wrapping around; they also appear in their own batch, which keeps
//! every batch independent of the others). The loader never stops on one bad file; it
//! returns [`DataError::NoReadableSample`] only when a whole epoch's worth of candidates fails.
//!
//! # Threads
//! With `num_workers = W > 0`, worker `w` builds batches `w, w + W, w + 2W, ...` of the
//! iteration and sends them through its own bounded channel (`prefetch` batches); the
//! iterator reads the channels round-robin, so batches come out in order with at most
//! `W · prefetch` batches buffered. Workers stop when the iterator is dropped.

pub mod collate;
pub mod config;
pub mod sampler;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver};

pub use collate::{default_collate, Batch, ViewBatch};
pub use config::{CollateFnConfig, DataLoaderConfig, DefaultSamplerConfig, InfiniteSamplerConfig, SamplerConfig};
pub use sampler::SamplerKind;

use crate::datasets::Dataset;
use crate::transforms::{Pipeline, Sample};
use crate::DataError;

/// Loader settings (the programmatic form of [`DataLoaderConfig`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataLoaderOptions {
    /// Samples per batch. Default 1.
    pub batch_size: usize,
    /// Worker threads; 0 loads in the iterating thread. Default 0.
    pub num_workers: usize,
    /// Shuffle each epoch. Default `true`.
    pub shuffle: bool,
    /// Drop the last incomplete batch of each epoch ([`SamplerKind::Default`] only). Default `false`.
    pub drop_last: bool,
    /// Seed of the order and of the augmentations. Default 0.
    pub seed: u64,
    /// Batches buffered per worker (at least 1). Default 2.
    pub prefetch: usize,
    /// Epoch layout. Default [`SamplerKind::Default`].
    pub sampler: SamplerKind,
    /// Drop unreadable samples from their batch instead of filling their
    /// place with the next readable one (evaluation and extraction: one row
    /// per readable image, batches may be shorter or empty). Default `false`.
    pub skip_unreadable: bool,
    /// Draw each epoch's indices with replacement (`DeepClusterSampler(replace=True)`, as
    /// ODC trains) instead of a permutation. Default `false`.
    pub replace: bool,
}

impl Default for DataLoaderOptions {
    fn default() -> Self {
        Self {
            batch_size: 1,
            num_workers: 0,
            shuffle: true,
            drop_last: false,
            seed: 0,
            prefetch: 2,
            sampler: SamplerKind::Default,
            skip_unreadable: false,
            replace: false,
        }
    }
}

/// Called once per bad sample with the error (see the module documentation).
pub type SkipCallback = Arc<dyn Fn(&DataError) + Send + Sync>;

/// One sample slot of a batch: position `pos` of pass `pass`.
#[derive(Debug, Clone, Copy)]
struct Slot {
    pass: u64,
    pos: usize,
}

struct Shared {
    dataset: Arc<dyn Dataset>,
    pipeline: Pipeline,
    opts: DataLoaderOptions,
    batches_per_epoch: usize,
    /// `(rank, world_size)`: this loader takes every `world_size`-th position.
    shard: (usize, usize),
    skipped: Arc<AtomicUsize>,
    /// Samples already reported (counted once each).
    reported: Mutex<HashSet<usize>>,
    /// Samples whose file cannot be read or decoded: not retried.
    unreadable: Mutex<HashSet<usize>>,
    perms: Mutex<VecDeque<(u64, Arc<Vec<usize>>)>>,
    /// Orders given for some passes (DeepCluster's uniform sampling), in
    /// place of the sampler's permutation.
    orders: Mutex<HashMap<u64, Arc<Vec<usize>>>>,
    /// Clustering labels by dataset index (DeepCluster, ODC).
    labels: RwLock<Option<Arc<Vec<i64>>>>,
    on_skip: SkipCallback,
}

/// Deterministic, multi-threaded batch loader; see the module documentation.
///
/// ```no_run
/// # use selfsup_data::*;
/// # fn main() -> Result<(), DataError> {
/// let cfg = DataLoaderConfig::from_json(r#"{
///     "batch_size": 32, "num_workers": 4,
///     "sampler": {"type": "DefaultSampler", "shuffle": true},
///     "collate_fn": {"type": "default_collate"},
///     "dataset": {"type": "SyntheticDataset", "pipeline": [
///         {"type": "RandomResizedCrop", "size": 32, "backend": "pillow"},
///         {"type": "RandomFlip", "prob": 0.5},
///         {"type": "PackSelfSupInputs"}]}}"#)?;
/// let loader = DataLoader::from_config(&cfg, None)?;
/// for batch in loader.iter_epoch(0) {
///     let batch = batch?;
///     let view0 = &batch.views[0]; // NCHW f32 in 0..=255, RGB
///     assert_eq!(view0.shape[1..], [3, 32, 32]);
/// }
/// // Iteration-based training, resumable: the next batch after (epoch 3, iteration 17).
/// let mut it = loader.iter_from(3, 18);
/// let next = it.next();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DataLoader {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DataLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataLoader")
            .field("len", &self.shared.dataset.len())
            .field("options", &self.shared.opts)
            .field("skipped", &self.skipped())
            .finish_non_exhaustive()
    }
}

impl DataLoader {
    /// A loader over `dataset` with `pipeline`.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for `batch_size == 0`, or when `drop_last` leaves no
    /// batch at all (fewer samples than `batch_size`); [`DataError::EmptyDataset`] for an
    /// empty dataset.
    pub fn new(dataset: Arc<dyn Dataset>, pipeline: Pipeline, opts: DataLoaderOptions) -> Result<Self, DataError> {
        let len = dataset.len();
        if opts.batch_size == 0 {
            return Err(DataError::config("DataLoader", "`batch_size` must be positive"));
        }
        if len == 0 {
            return Err(DataError::EmptyDataset {
                dataset: "DataLoader",
                path: "<dataset>".into(),
                reason: "the dataset has no sample".into(),
            });
        }
        let batches_per_epoch = batches_per_epoch(len, &opts, 1)?;
        Ok(Self {
            shared: Arc::new(Shared {
                dataset,
                pipeline,
                opts,
                batches_per_epoch,
                shard: (0, 1),
                skipped: Arc::new(AtomicUsize::new(0)),
                reported: Mutex::new(HashSet::new()),
                unreadable: Mutex::new(HashSet::new()),
                perms: Mutex::new(VecDeque::new()),
                orders: Mutex::new(HashMap::new()),
                labels: RwLock::new(None),
                on_skip: Arc::new(|e: &DataError| eprintln!("warning: skipping sample: {e}")),
            }),
        })
    }

    /// Builds the dataset and pipeline of an MMEngine dataloader config. The seed is the
    /// sampler's `seed`, or 0; use [`DataLoader::from_config_seeded`] to pass the runner's.
    ///
    /// # Errors
    /// Any dataset, pipeline or option error.
    pub fn from_config(cfg: &DataLoaderConfig, base_dir: Option<&Path>) -> Result<Self, DataError> {
        Self::from_config_seeded(cfg, base_dir, 0)
    }

    /// As [`DataLoader::from_config`], with `seed` used when the sampler has none.
    ///
    /// # Errors
    /// Any dataset, pipeline or option error.
    pub fn from_config_seeded(cfg: &DataLoaderConfig, base_dir: Option<&Path>, seed: u64) -> Result<Self, DataError> {
        let opts = cfg.options(seed)?;
        let pipeline = Pipeline::new(cfg.dataset.pipeline())?;
        let dataset = cfg.dataset.build(base_dir)?;
        Self::new(dataset, pipeline, opts)
    }

    /// Replaces the skip callback (default: a warning on stderr). Call before iterating.
    pub fn with_skip_callback(self, callback: SkipCallback) -> Self {
        let s = &self.shared;
        Self {
            shared: Arc::new(Shared {
                dataset: s.dataset.clone(),
                pipeline: s.pipeline.clone(),
                opts: s.opts.clone(),
                batches_per_epoch: s.batches_per_epoch,
                shard: s.shard,
                skipped: s.skipped.clone(),
                reported: Mutex::new(lock(&s.reported).clone()),
                unreadable: Mutex::new(lock(&s.unreadable).clone()),
                perms: Mutex::new(VecDeque::new()),
                orders: Mutex::new(HashMap::new()),
                labels: RwLock::new(None),
                on_skip: callback,
            }),
        }
    }

    /// The loader of rank `rank` of `world_size` data-parallel replicas, as
    /// MMEngine's samplers shard: every rank walks the same epoch order and
    /// takes positions `rank, rank + world_size, ...`; `DefaultSampler`
    /// pads the order by repeating its start so that every rank gets
    /// `ceil(len / world_size)` samples, and `InfiniteSampler` strides its
    /// endless stream. The augmentation stream of a sample is keyed by its
    /// position in the whole order, so ranks never share one. Rank 0 of 1
    /// is the loader itself. Call before iterating.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] for a rank out of range, or when
    /// `drop_last` leaves a rank no batch.
    pub fn sharded(self, rank: usize, world_size: usize) -> Result<Self, DataError> {
        if world_size == 0 || rank >= world_size {
            return Err(DataError::config("DataLoader", format!("rank {rank} of {world_size} replicas")));
        }
        let s = &self.shared;
        let batches_per_epoch = batches_per_epoch(s.len(), &s.opts, world_size)?;
        Ok(Self {
            shared: Arc::new(Shared {
                dataset: s.dataset.clone(),
                pipeline: s.pipeline.clone(),
                opts: s.opts.clone(),
                batches_per_epoch,
                shard: (rank, world_size),
                skipped: s.skipped.clone(),
                reported: Mutex::new(lock(&s.reported).clone()),
                unreadable: Mutex::new(lock(&s.unreadable).clone()),
                perms: Mutex::new(VecDeque::new()),
                orders: Mutex::new(HashMap::new()),
                labels: RwLock::new(None),
                on_skip: s.on_skip.clone(),
            }),
        })
    }

    /// `(rank, world_size)` of this loader's shard; `(0, 1)` unsharded.
    pub fn shard(&self) -> (usize, usize) {
        self.shared.shard
    }

    /// The dataset.
    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.shared.dataset
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Pipeline {
        &self.shared.pipeline
    }

    /// The options.
    pub fn options(&self) -> &DataLoaderOptions {
        &self.shared.opts
    }

    /// Gives every sample its cluster (`DeepClusterImageNet.assign_labels`):
    /// samples loaded from now on carry `labels[index]` as their
    /// `clustering_label` pseudo-label.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] when there is not one label per sample.
    pub fn assign_labels(&self, labels: Vec<i64>) -> Result<(), DataError> {
        if labels.len() != self.shared.len() {
            return Err(DataError::config("DataLoader", format!("{} clustering labels for {} samples", labels.len(), self.shared.len())));
        }
        *self.shared.labels.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(labels));
        Ok(())
    }

    /// The clustering labels last assigned, if any.
    pub fn labels(&self) -> Option<Arc<Vec<i64>>> {
        self.shared.labels.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Uses `order` (dataset indices, one per position of the epoch) for epoch `epoch` in
    /// place of the sampler's permutation: `DeepClusterSampler.set_uniform_indices`.
    /// Set it before iterating that epoch.
    ///
    /// # Errors
    /// [`DataError::InvalidConfig`] when `order` is not the dataset's length or names a
    /// sample past its end.
    pub fn set_epoch_order(&self, epoch: usize, order: Vec<usize>) -> Result<(), DataError> {
        let len = self.shared.len();
        if order.len() != len || order.iter().any(|&i| i >= len) {
            return Err(DataError::config("DataLoader", format!("an epoch order of {} positions for {len} samples", order.len())));
        }
        let mut orders = lock(&self.shared.orders);
        orders.retain(|&e, _| e + 2 > epoch as u64);
        orders.insert(epoch as u64, Arc::new(order));
        Ok(())
    }

    /// The order given for epoch `epoch` by [`DataLoader::set_epoch_order`], if any.
    pub fn epoch_order(&self, epoch: usize) -> Option<Arc<Vec<usize>>> {
        lock(&self.shared.orders).get(&(epoch as u64)).cloned()
    }

    /// Batches per epoch (`len / batch_size`, rounded up unless `drop_last`).
    pub fn batches_per_epoch(&self) -> usize {
        self.shared.batches_per_epoch
    }

    /// Number of bad samples skipped so far (each counted once).
    pub fn skipped(&self) -> usize {
        self.shared.skipped.load(Ordering::Relaxed)
    }

    /// The shared skip counter (e.g. for a logger).
    pub fn skipped_counter(&self) -> Arc<AtomicUsize> {
        self.shared.skipped.clone()
    }

    /// Loads batch `iteration` of epoch `epoch` in the calling thread.
    ///
    /// # Errors
    /// See [`BatchIter`]'s items.
    pub fn load_batch(&self, epoch: usize, iteration: usize) -> Result<Batch, DataError> {
        self.shared.load_global(epoch as u64 * self.shared.batches_per_epoch as u64 + iteration as u64)
    }

    /// The batches of one epoch.
    pub fn iter_epoch(&self, epoch: usize) -> BatchIter {
        let nb = self.shared.batches_per_epoch as u64;
        let start = epoch as u64 * nb;
        BatchIter::new(self.shared.clone(), start, Some(start + nb))
    }

    /// An endless iterator starting at batch `iteration` of epoch `epoch` and running into the
    /// following epochs (iteration-based training). To resume after the batch
    /// `(epoch, iteration)`, call `iter_from(epoch, iteration + 1)`; an iteration past the end
    /// of the epoch carries over into the next ones.
    pub fn iter_from(&self, epoch: usize, iteration: usize) -> BatchIter {
        let start = epoch as u64 * self.shared.batches_per_epoch as u64 + iteration as u64;
        BatchIter::new(self.shared.clone(), start, None)
    }
}

/// Batches per epoch of one of `world` shards.
fn batches_per_epoch(len: usize, opts: &DataLoaderOptions, world: usize) -> Result<usize, DataError> {
    let shard_len = len.div_ceil(world);
    let n = if opts.drop_last && opts.sampler == SamplerKind::Default {
        shard_len / opts.batch_size
    } else {
        shard_len.div_ceil(opts.batch_size)
    };
    if n == 0 {
        let per = if world > 1 { format!(" ({shard_len} per each of {world} replicas)") } else { String::new() };
        return Err(DataError::config(
            "DataLoader",
            format!("the dataset has {len} samples{per}, fewer than batch_size = {} with drop_last = true: no batch", opts.batch_size),
        ));
    }
    Ok(n)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves the set consistent: keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn len(&self) -> usize {
        self.dataset.len()
    }

    fn permutation(&self, pass: u64) -> Arc<Vec<usize>> {
        if let Some(p) = lock(&self.orders).get(&pass) {
            return p.clone();
        }
        if let Some((_, p)) = lock(&self.perms).iter().find(|(e, _)| *e == pass) {
            return p.clone();
        }
        let p = Arc::new(if self.opts.replace && self.opts.shuffle {
            sampler::with_replacement(self.opts.seed, pass, self.len())
        } else {
            sampler::permutation(self.opts.seed, pass, self.len(), self.opts.shuffle)
        });
        let mut cache = lock(&self.perms);
        cache.push_back((pass, p.clone()));
        while cache.len() > 4 {
            cache.pop_front();
        }
        p
    }

    /// Slots of global batch `g`, and the candidate slots used to replace bad samples.
    fn slots(&self, g: u64) -> (Vec<Slot>, Vec<Slot>) {
        let len = self.len();
        let bs = self.opts.batch_size;
        let (rank, world) = self.shard;
        // Local position `p` of this shard is position `rank + p·world` of
        // the whole (padded) order.
        let global = |p: usize| rank + p * world;
        match self.opts.sampler {
            SamplerKind::Default => {
                let shard_len = len.div_ceil(world);
                let nb = self.batches_per_epoch as u64;
                let (epoch, k) = (g / nb, (g % nb) as usize);
                let start = k * bs;
                let end = (start + bs).min(shard_len);
                let slots = (start..end).map(|p| Slot { pass: epoch, pos: global(p) % len }).collect();
                let cands = (end..start + shard_len).map(|q| Slot { pass: epoch, pos: global(q % shard_len) % len }).collect();
                (slots, cands)
            }
            SamplerKind::Infinite => {
                let at = |s: u64| {
                    let t = rank as u64 + s * world as u64;
                    Slot { pass: t / len as u64, pos: (t % len as u64) as usize }
                };
                let start = g * bs as u64;
                let end = start + bs as u64;
                ((start..end).map(at).collect(), (end..end + len as u64).map(at).collect())
            }
        }
    }

    /// Loads dataset sample `index` with the random stream of `rng_slot`.
    fn load_sample(&self, index: usize, rng_slot: Slot) -> Result<Sample, DataError> {
        let mut raw = self.dataset.load(index)?;
        if let Some(labels) = self.labels.read().unwrap_or_else(PoisonError::into_inner).as_ref() {
            raw.clustering_label = labels.get(index).copied();
        }
        let mut rng = sampler::sample_rng(self.opts.seed, rng_slot.pass, rng_slot.pos as u64);
        self.pipeline.run(raw, &mut rng)
    }

    fn report(&self, index: usize, err: &DataError) {
        if matches!(err, DataError::Io { .. } | DataError::Decode { .. }) {
            lock(&self.unreadable).insert(index);
        }
        if lock(&self.reported).insert(index) {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            (self.on_skip)(err);
        }
    }

    fn load_global(&self, g: u64) -> Result<Batch, DataError> {
        let (slots, candidates) = self.slots(g);
        let mut samples = Vec::with_capacity(slots.len());
        let mut failed = Vec::new();
        for slot in &slots {
            let index = self.permutation(slot.pass)[slot.pos];
            if lock(&self.unreadable).contains(&index) {
                failed.push(*slot);
                continue;
            }
            match self.load_sample(index, *slot) {
                Ok(s) => samples.push(s),
                Err(e) if e.is_sample_error() => {
                    self.report(index, &e);
                    failed.push(*slot);
                }
                Err(e) => return Err(e),
            }
        }
        let mut cands = candidates.into_iter();
        let mut tried = 0usize;
        let mut last = String::from("none");
        let failed = if self.opts.skip_unreadable { Vec::new() } else { failed };
        for slot in failed {
            loop {
                let Some(c) = cands.next() else {
                    return Err(DataError::NoReadableSample { tried, last });
                };
                tried += 1;
                let index = self.permutation(c.pass)[c.pos];
                if lock(&self.unreadable).contains(&index) {
                    continue;
                }
                // The replacement fills `slot`: it draws from `slot`'s random stream.
                match self.load_sample(index, slot) {
                    Ok(s) => {
                        samples.push(s);
                        break;
                    }
                    Err(e) if e.is_sample_error() => {
                        self.report(index, &e);
                        last = e.to_string();
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let mut batch = default_collate(&samples)?;
        let nb = self.batches_per_epoch as u64;
        batch.epoch = (g / nb) as usize;
        batch.iteration = (g % nb) as usize;
        Ok(batch)
    }
}

/// Iterator over batches (`Item = Result<Batch, DataError>`), from
/// [`DataLoader::iter_epoch`] (finite) or [`DataLoader::iter_from`] (endless).
///
/// An `Err` item does not end the iteration (except [`DataError::WorkerDied`]); per-sample
/// problems never surface here (they are skipped), so an `Err` means a configuration problem
/// (e.g. views of different sizes) or a dataset with no readable sample.
pub struct BatchIter {
    shared: Arc<Shared>,
    start: u64,
    next: u64,
    end: Option<u64>,
    receivers: Vec<Receiver<Result<Batch, DataError>>>,
    handles: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for BatchIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchIter")
            .field("next", &self.next)
            .field("end", &self.end)
            .field("workers", &self.handles.len())
            .finish_non_exhaustive()
    }
}

impl BatchIter {
    fn new(shared: Arc<Shared>, start: u64, end: Option<u64>) -> Self {
        let workers = shared.opts.num_workers;
        let stop = Arc::new(AtomicBool::new(false));
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = bounded(shared.opts.prefetch.max(1));
            let shared = shared.clone();
            let worker_stop = stop.clone();
            let spawned = std::thread::Builder::new().name(format!("selfsup-data-{w}")).spawn(move || {
                let mut g = start + w as u64;
                while end.is_none_or(|e| g < e) && !worker_stop.load(Ordering::Relaxed) {
                    if tx.send(shared.load_global(g)).is_err() {
                        break;
                    }
                    g += workers as u64;
                }
            });
            match spawned {
                Ok(h) => {
                    receivers.push(rx);
                    handles.push(h);
                }
                // No thread available: fall back to loading in the iterating thread.
                Err(_) => {
                    stop.store(true, Ordering::Relaxed);
                    receivers.clear();
                    break;
                }
            }
        }
        Self { shared, start, next: start, end, receivers, handles, stop }
    }

    /// The epoch and iteration of the next batch.
    pub fn position(&self) -> (usize, usize) {
        let nb = self.shared.batches_per_epoch as u64;
        ((self.next / nb) as usize, (self.next % nb) as usize)
    }
}

impl Iterator for BatchIter {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.end.is_some_and(|e| self.next >= e) {
            return None;
        }
        let g = self.next;
        if self.receivers.is_empty() {
            self.next += 1;
            return Some(self.shared.load_global(g));
        }
        let w = ((g - self.start) % self.receivers.len() as u64) as usize;
        match self.receivers[w].recv() {
            Ok(b) => {
                self.next += 1;
                Some(b)
            }
            Err(_) => {
                // The worker's channel closed without its batch: it panicked.
                self.end = Some(g);
                Some(Err(DataError::WorkerDied { worker: w }))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.end {
            Some(e) => {
                let n = e.saturating_sub(self.next) as usize;
                (n, Some(n))
            }
            None => (usize::MAX, None),
        }
    }
}

impl Drop for BatchIter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Closing the channels unblocks workers waiting to send.
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}
