//! Data-parallel collectives: `mmengine.dist` for replicas that run as
//! threads of one process, on burn's own collective (`burn::collective`,
//! the `burn-collective` crate).
//!
//! A data-parallel run starts one thread per device; each thread calls
//! [`join`] with its rank and holds the returned guard while it trains.
//! While the guard is alive, [`rank`] and [`world_size`] answer as
//! `get_rank()` and `get_world_size()` do under `torch.distributed`, and
//! the collectives below talk to the other ranks. Without a guard the
//! world is one device and every collective is the identity, so the
//! algorithms call them unconditionally, as MMSelfSup's do.
//!
//! burn-collective keeps one local server per backend *type*. A backend
//! joins lazily on its first collective (every rank runs the same
//! program, so every rank joins at the same point); the guard leaves all
//! of them when dropped. Tensors of an autodiff backend go through the
//! collective detached: the `*_with_grad` forms put the local gradient
//! path back, as MMSelfSup's `GatherLayer` and in-place `all_reduce` do.
//!
//! A collective that fails (a peer died, shapes differ between ranks)
//! panics with the reason, like a failed `torch.distributed` call raises:
//! there is no way to go on with the step.
use std::any::TypeId;
use std::cell::RefCell;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Barrier, Mutex};

use burn::collective::{self as bc, CollectiveConfig, PeerId};
use burn::module::{AutodiffModule, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{
    backend::{AutodiffBackend, Backend},
    Tensor, TensorData, TensorPrimitive,
};

pub use burn::collective::ReduceOperation;

/// This thread's place in the data-parallel group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rank {
    /// `0..world_size`; rank 0 logs and writes checkpoints.
    pub rank: usize,
    /// Number of replicas.
    pub world_size: usize,
}

struct Session {
    rank: Rank,
    /// Backends registered with burn-collective, and how to leave them.
    joined: Vec<Joined>,
}

struct Joined {
    backend: TypeId,
    leave: Box<dyn Fn()>,
    /// Whether another rank of the group runs on this rank's device.
    shared_device: bool,
}

/// The group's barrier, made for its world size; see [`own`].
static BARRIER: Mutex<Option<(usize, Arc<Barrier>)>> = Mutex::new(None);

fn barrier(world_size: usize) -> Arc<Barrier> {
    let mut b = BARRIER.lock().unwrap_or_else(|e| e.into_inner());
    match b.as_ref() {
        Some((w, barrier)) if *w == world_size => barrier.clone(),
        _ => b.insert((world_size, Arc::new(Barrier::new(world_size)))).1.clone(),
    }
}

/// Every rank's device (`Debug` form) per backend, written by [`register`]
/// before it joins burn-collective, so complete once the join returns.
static DEVICES: Mutex<Option<HashMap<(TypeId, usize), String>>> = Mutex::new(None);

thread_local! {
    static SESSION: RefCell<Option<Session>> = const { RefCell::new(None) };
}

/// Leaves the group (every backend joined on this thread) when dropped.
#[must_use = "the thread leaves the group when the guard is dropped"]
pub struct GroupGuard {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl std::fmt::Debug for GroupGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupGuard").field("rank", &current()).finish()
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(session) = SESSION.with(|s| s.borrow_mut().take()) {
            for joined in session.joined {
                (joined.leave)();
            }
        }
    }
}

/// Makes this thread rank `rank.rank` of `rank.world_size` until the guard
/// drops.
///
/// # Panics
/// When the thread is already in a group, or the rank is out of range.
pub fn join(rank: Rank) -> GroupGuard {
    assert!(rank.world_size >= 1 && rank.rank < rank.world_size, "rank {} of {}", rank.rank, rank.world_size);
    SESSION.with(|s| {
        let mut s = s.borrow_mut();
        assert!(s.is_none(), "this thread is already in a data-parallel group");
        *s = Some(Session { rank, joined: Vec::new() });
    });
    GroupGuard { _not_send: std::marker::PhantomData }
}

/// Resets burn-collective's local server of backend `B`: peers of an
/// earlier group that died without leaving are forgotten. Call before the
/// ranks of a new group join.
pub fn reset<B: Backend>() {
    bc::reset_collective::<B>();
    *BARRIER.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// The group of this thread, if it is in one.
pub fn current() -> Option<Rank> {
    SESSION.with(|s| s.borrow().as_ref().map(|s| s.rank))
}

/// `get_rank()`: 0 outside a group.
pub fn rank() -> usize {
    current().map_or(0, |r| r.rank)
}

/// `get_world_size()`: 1 outside a group.
pub fn world_size() -> usize {
    current().map_or(1, |r| r.world_size)
}

/// This rank's burn-collective peer id.
pub fn peer() -> PeerId {
    PeerId::from(rank())
}

/// Registers backend `B` of this rank with burn-collective, once per
/// thread and backend; blocks until every rank has registered it.
///
/// # Panics
/// Outside a group, or when burn-collective refuses the registration.
pub fn register<B: Backend>(device: &B::Device) {
    registered::<B>(device);
}

/// [`register`], and whether this rank shares its device with another.
fn registered<B: Backend>(device: &B::Device) -> bool {
    let id = TypeId::of::<B>();
    let rank = current().expect("dist::register outside a data-parallel group");
    let known = SESSION.with(|s| s.borrow().as_ref().and_then(|s| s.joined.iter().find(|j| j.backend == id).map(|j| j.shared_device)));
    if let Some(shared_device) = known {
        return shared_device;
    }
    let mine = format!("{device:?}");
    DEVICES.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashMap::new).insert((id, rank.rank), mine.clone());
    let peer = PeerId::from(rank.rank);
    // Returns once every rank has registered, so `DEVICES` is complete.
    bc::register::<B>(peer, device.clone(), CollectiveConfig::default().with_num_devices(rank.world_size))
        .unwrap_or_else(|e| panic!("rank {}: joining the collective failed: {e:?}", rank.rank));
    let shared_device = DEVICES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .is_some_and(|all| (0..rank.world_size).any(|r| r != rank.rank && all.get(&(id, r)) == Some(&mine)));
    let leave: Box<dyn Fn()> = Box::new(move || {
        let _ = bc::finish_collective::<B>(peer);
    });
    SESSION.with(|s| {
        if let Some(s) = s.borrow_mut().as_mut() {
            s.joined.push(Joined { backend: id, leave, shared_device });
        }
    });
    shared_device
}

/// The result of a collective as this rank's own tensor.
///
/// On one device burn-collective hands every rank a clone of the *same*
/// tensor. burn-fusion (wgpu, cuda) executes each thread's operations
/// lazily on its own stream and frees a tensor with the last operation
/// that reads it: a rank whose queued read runs after the other rank's
/// last read finds the buffer gone ("Should have handle for tensor").
/// So each rank reads the values out (a blocking read) while it still
/// holds its clone, waits until every rank has read, and uploads them as a
/// buffer of its own. Replicas on distinct devices already get distinct
/// tensors (a device-to-device copy), so this costs nothing there.
fn own<B: Backend, const D: usize>(out: B::FloatTensorPrimitive, shared_device: bool, device: &B::Device) -> Tensor<B, D> {
    let out = Tensor::<B, D>::from_primitive(TensorPrimitive::Float(out));
    if !shared_device {
        return out.detach();
    }
    // The clone keeps the shared tensor read-only for this read.
    let data = out.clone().into_data();
    barrier(world_size()).wait();
    drop(out);
    Tensor::from_data(data, device)
}

/// burn-collective's server thread computes the reduction with backend
/// `B`'s own operations. On an autodiff backend those operations join the
/// graphs of their inputs, so the tensors that go in and come out are
/// detached (fresh nodes): otherwise the ranks' graphs would be merged
/// through the server's, and burn-autodiff's graph locks, taken from
/// several rank threads at once, can deadlock (seen on burn-tch).
fn reduce_raw<B: Backend, const D: usize>(x: Tensor<B, D>, op: ReduceOperation) -> Tensor<B, D> {
    let device = x.device();
    let shared_device = registered::<B>(&device);
    let prim = x.detach().into_primitive().tensor();
    let out = bc::all_reduce::<B>(peer(), prim, op).unwrap_or_else(|e| panic!("rank {}: all_reduce failed: {e:?}", rank()));
    own(out, shared_device, &device)
}

/// `all_reduce`: the sum or mean of `x` over the ranks, no gradient. The
/// identity (detached) outside a group.
pub fn all_reduce<B: Backend, const D: usize>(x: Tensor<B, D>, op: ReduceOperation) -> Tensor<B, D> {
    if world_size() == 1 {
        return x.detach();
    }
    reduce_raw(x, op)
}

/// MMEngine's in-place `all_reduce` on a tensor that needs a gradient
/// (Barlow Twins' cross-correlation): the value is the sum over ranks, the
/// gradient reaches only this rank's `x`.
pub fn all_reduce_sum_with_grad<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    if world_size() == 1 {
        return x;
    }
    let others = reduce_raw(x.clone(), ReduceOperation::Sum) - x.clone().detach();
    x + others
}

/// `x` of this rank in its slot of a zero tensor `[world·n, ...]`.
fn slotted<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let dims = x.dims();
    let (w, r) = (world_size(), rank());
    let n = dims[0];
    let mut parts = Vec::with_capacity(3);
    let mut pad = dims;
    if r > 0 {
        pad[0] = r * n;
        parts.push(Tensor::zeros(pad, &x.device()));
    }
    let device = x.device();
    parts.push(x);
    if r + 1 < w {
        pad[0] = (w - r - 1) * n;
        parts.push(Tensor::zeros(pad, &device));
    }
    Tensor::cat(parts, 0)
}

/// `concat_all_gather`: the ranks' `x` (same shape on every rank)
/// concatenated along dimension 0 in rank order, no gradient.
pub fn all_gather<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    if world_size() == 1 {
        return x.detach();
    }
    // Adding zeros is exact, so a sum of the slotted tensors is a gather.
    reduce_raw(slotted(x.detach()), ReduceOperation::Sum)
}

/// `torch.cat(GatherLayer.apply(x))`: as [`all_gather`], but the gradient
/// of this rank's slice flows back to `x` (the other slices are constants).
pub fn all_gather_with_grad<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    if world_size() == 1 {
        return x;
    }
    let local = slotted(x);
    let others = reduce_raw(local.clone(), ReduceOperation::Sum) - local.clone().detach();
    local + others
}

/// `broadcast(x, src)`: rank `src`'s `x` on every rank, no gradient. Every
/// rank passes a tensor of the same shape; only `src`'s values are used.
pub fn broadcast<B: Backend, const D: usize>(x: Tensor<B, D>, src: usize) -> Tensor<B, D> {
    if world_size() == 1 {
        return x.detach();
    }
    let device = x.device();
    let shared_device = registered::<B>(&device);
    let shape = x.dims();
    let mine = (rank() == src).then(|| x.detach().into_primitive().tensor());
    let out = bc::broadcast::<B>(peer(), mine).unwrap_or_else(|e| panic!("rank {}: broadcast failed: {e:?}", rank()));
    // Detached, as in `reduce_raw`.
    let out: Tensor<B, D> = own(out, shared_device, &device);
    debug_assert_eq!(out.dims(), shape);
    out
}

/// The mean over the ranks of a few host numbers (loss values for the log
/// and the NaN check), through backend `B` on `device`.
pub fn mean_values<B: Backend>(values: &[f64], device: &B::Device) -> Vec<f64> {
    if world_size() == 1 || values.is_empty() {
        return values.to_vec();
    }
    let t = Tensor::<B, 1>::from_data(TensorData::new(values.iter().map(|v| *v as f32).collect(), [values.len()]), device);
    let mean = reduce_raw(t, ReduceOperation::Mean);
    mean.into_data().convert::<f64>().to_vec::<f64>().expect("data converted to f64 reads as f64")
}

/// `DistributedDataParallel`'s gradient synchronisation: every gradient of
/// `model` reduced over the replicas (`Mean` averages them).
///
/// The tensors go through burn-collective's all-reduce in the order the
/// module visits its parameters, which is the same on every replica; the
/// parameter ids are not (each replica's `ParamId`s are drawn when it is
/// built), so `GradientsParams::all_reduce`, which orders by id, cannot be
/// used for replicas built apart.
pub fn all_reduce_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    grads: GradientsParams,
    op: ReduceOperation,
) -> GradientsParams {
    if world_size() == 1 {
        return grads;
    }
    struct Reduce<B> {
        grads: GradientsParams,
        op: ReduceOperation,
        seen: HashSet<ParamId>,
        _backend: std::marker::PhantomData<B>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Reduce<B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if !self.seen.insert(param.id) {
                return;
            }
            if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
                let g = reduce_raw(g, self.op);
                self.grads.register::<B::InnerBackend, D>(param.id, g);
            }
        }
    }
    let mut visitor = Reduce::<B> { grads, op, seen: HashSet::new(), _backend: std::marker::PhantomData };
    model.visit(&mut visitor);
    visitor.grads
}
