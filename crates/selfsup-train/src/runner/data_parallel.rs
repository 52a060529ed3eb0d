//! Data-parallel training on the devices of one machine: one replica per
//! device, each on its own thread and `dist` rank, running [`train`].
use std::sync::{mpsc, Arc, Mutex, PoisonError};

use burn::tensor::backend::AutodiffBackend;
use selfsup_layers::dist::{self, Rank};

use super::{train, TrainOptions, TrainSummary};
use crate::{config::LoadedConfig, TrainError};

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
