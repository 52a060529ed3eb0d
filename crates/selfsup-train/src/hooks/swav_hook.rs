//! Port of `mmselfsup.engine.hooks.SwAVHook`: SwAV's feature queue, started
//! at `epoch_queue_starts` and kept across epochs, and the prototypes
//! frozen for the first iterations (`frozen_layers_cfg`).
//!
//! The queue is the hook's state, as in MMSelfSup (not in the model's
//! state dict). MMSelfSup writes it to `queue{rank}.pth` every `interval`
//! epochs; here it goes into every checkpoint as `hooks.swav_queue`,
//! `[crops, rows, dim]`, or `[world, crops, rows, dim]` for a data-parallel
//! run (each replica queues its own share), so a resumed run continues
//! with the same queue.
use burn::tensor::{backend::AutodiffBackend, Tensor, TensorData};
use selfsup_algorithms::{Algorithm, SwAVQueueState};
use selfsup_layers::dist;
use selfsup_weights::StateDict;

use super::Hook;
use crate::{checkpoint::SWAV_QUEUE, config::SwAVHookConfig, runner::Runner, TrainError};

/// `dict(type='SwAVHook', batch_size, epoch_queue_starts=15, ...)`.
#[derive(Debug, Clone)]
pub struct SwAVHook {
    cfg: SwAVHookConfig,
    queue: Option<SwAVQueueState>,
}

fn swav<B: AutodiffBackend>(model: &mut Algorithm<B>) -> Result<&mut selfsup_algorithms::SwAV<B>, TrainError> {
    match model {
        Algorithm::SwAV(m) => Ok(m),
        other => Err(TrainError::Other(format!("SwAVHook drives SwAV, not {}", selfsup_core::SelfSupAlgorithm::name(other)))),
    }
}

impl SwAVHook {
    /// The hook of `cfg` (the config checks it against the model's loss).
    pub fn new(cfg: SwAVHookConfig) -> Self {
        Self { cfg, queue: None }
    }

    /// The global queue length, rounded down to whole global batches.
    fn length(&self, world: usize) -> usize {
        self.cfg.queue_length - self.cfg.queue_length % (self.cfg.batch_size.max(1) * world)
    }
}

impl<B: AutodiffBackend> Hook<B> for SwAVHook {
    /// Starts the queue (zeros) once `epoch_queue_starts` is reached, and
    /// hands it to the loss with `use_queue` off until it fills again.
    fn before_train_epoch(&mut self, runner: &mut Runner<B>) -> Result<(), TrainError> {
        let world = runner.rank.world_size;
        let length = self.length(world);
        if length == 0 || runner.epoch < self.cfg.epoch_queue_starts {
            return Ok(());
        }
        let model = swav(&mut runner.model)?;
        let queue = match self.queue.take().or_else(|| model.queue().cloned()) {
            Some(q) => SwAVQueueState { use_queue: false, ..q },
            None => SwAVQueueState::zeros(self.cfg.crops_for_assign.len(), length / world, self.cfg.feat_dim),
        };
        model.set_queue(Some(queue));
        Ok(())
    }

    fn before_train_iter(&mut self, runner: &mut Runner<B>) -> Result<(), TrainError> {
        let iter = runner.iter;
        let frozen = self.cfg.frozen_layers_cfg.iter().any(|(name, n)| name.contains("prototypes") && iter < *n);
        swav(&mut runner.model)?.set_frozen_prototypes(frozen);
        Ok(())
    }

    fn after_train_epoch(&mut self, runner: &mut Runner<B>) -> Result<(), TrainError> {
        self.queue = swav(&mut runner.model)?.queue().cloned();
        Ok(())
    }

    fn before_save_checkpoint(&mut self, runner: &Runner<B>, checkpoint: &mut StateDict) -> Result<(), TrainError> {
        let Algorithm::SwAV(m) = &runner.model else { return Ok(()) };
        let Some(q) = m.queue() else { return Ok(()) };
        let data = if runner.rank.world_size == 1 {
            TensorData::new(q.data.clone(), q.shape)
        } else {
            let [c, r, d] = q.shape;
            let mine = Tensor::<B::InnerBackend, 4>::from_data(TensorData::new(q.data.clone(), [1, c, r, d]), runner.device());
            dist::all_gather(mine).into_data()
        };
        checkpoint.tensors.insert(SWAV_QUEUE.to_string(), data);
        Ok(())
    }

    fn after_load_checkpoint(&mut self, runner: &mut Runner<B>, checkpoint: &mut StateDict) -> Result<(), TrainError> {
        let Some(q) = checkpoint.tensors.remove(SWAV_QUEUE) else { return Ok(()) };
        let (world, rank) = (runner.rank.world_size, runner.rank.rank);
        let bad = || TrainError::Other("bad SwAV queue in checkpoint".into());
        let qshape = q.shape.to_vec();
        let all = q.convert::<f32>().to_vec::<f32>().map_err(|_| bad())?;
        // One replica's queue is `[crops, rows, dim]`; a data-parallel run
        // saves every replica's, `[world, crops, rows, dim]`.
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
        self.queue = Some(SwAVQueueState { data, shape, use_queue: false });
        Ok(())
    }
}
