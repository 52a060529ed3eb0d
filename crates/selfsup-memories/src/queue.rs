//! MoCo's ring buffer of negative keys (`queue`, `queue_ptr` buffers of
//! `mmselfsup.models.algorithms.MoCo` and `DenseCL`).
use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, ElementConversion, Tensor},
};
use selfsup_layers::{
    init::{fixed, Dist, InitRng},
    l2_normalize,
};

/// A `(feat_dim, K)` queue of L2-normalised keys with its write pointer.
///
/// Keys: `queue` and `queue_ptr` under the algorithm (DenseCL's second one
/// is `queue2`, `queue2_ptr`); the weights crate maps our `memory.queue`
/// paths to them. The pointer is kept as a float (exact below 2²⁴) and
/// written as int64 in checkpoints.
#[derive(Module, Debug)]
pub struct FeatureQueue<B: Backend> {
    /// `[feat_dim, K]`, one key per column.
    pub queue: Param<Tensor<B, 2>>,
    /// `[1]`: the next column to write.
    pub queue_ptr: Param<Tensor<B, 1>>,
}

impl<B: Backend> FeatureQueue<B> {
    /// A queue filled as MMSelfSup does: `normalize(randn(feat_dim, K), dim=0)`.
    pub fn new(feat_dim: usize, len: usize, device: &B::Device, rng: &mut InitRng) -> Self {
        Self {
            queue: rng.fixed_with([feat_dim, len], Dist::Normal(0.0, 1.0), |q| l2_normalize(q, 0), device),
            queue_ptr: fixed(Tensor::zeros([1], device)),
        }
    }

    /// `K`.
    pub fn len(&self) -> usize {
        self.queue.dims()[1]
    }

    /// Whether `K` is 0 (never: configs are validated).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The queue's keys, `[feat_dim, K]`, without gradient.
    pub fn keys(&self) -> Tensor<B, 2> {
        self.queue.val().detach()
    }

    /// The write pointer.
    pub fn ptr(&self) -> usize {
        self.queue_ptr.val().into_scalar().elem::<f64>() as usize
    }

    /// Writes `keys` (`[n, feat_dim]`) at the pointer and advances it by `n`
    /// modulo `K` (MMSelfSup's `_dequeue_and_enqueue`; `K % n == 0` is
    /// checked when the config loads).
    pub fn enqueue(self, keys: Tensor<B, 2>) -> Self {
        let [n, d] = keys.dims();
        let k = self.len();
        let ptr = self.ptr();
        assert!(ptr + n <= k, "queue length {k} is not a multiple of the batch size {n}");
        let (qid, q, qmap) = self.queue.consume();
        let q = q.detach().set_require_grad(false).slice_assign([0..d, ptr..ptr + n], keys.detach().set_require_grad(false).transpose());
        let (pid, p, pmap) = self.queue_ptr.consume();
        let p = p.detach().set_require_grad(false).zeros_like().add_scalar(((ptr + n) % k) as f64);
        Self { queue: Param::from_mapped_value(qid, q, qmap), queue_ptr: Param::from_mapped_value(pid, p, pmap) }
    }
}
