//! BatchNorm and LayerNorm on burn-tch as single autodiff operations: one
//! libtorch call forward (`native_batch_norm`, `layer_norm`) on leaves that
//! share the inputs' memory, and libtorch's own backward for it
//! (`native_batch_norm_backward`, `native_layer_norm_backward`), reached
//! through libtorch's autograd on that one node.
use burn::tensor::{Tensor, TensorPrimitive};
use burn_autodiff::{
    checkpoint::{base::Checkpointer, strategy::NoCheckpointing},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
    Autodiff,
};
use burn_tch::{LibTorch, TchTensor};

type Tch = LibTorch<f32>;
type A = Autodiff<Tch>;

/// The backward of a libtorch call on three leaves (input, scale, shift).
#[derive(Debug)]
struct TorchNodeBackward;

impl Backward<Tch, 3> for TorchNodeBackward {
    /// libtorch's three leaves and the call's output, which holds
    /// libtorch's graph of the call.
    type State = (TchTensor, TchTensor, TchTensor, TchTensor);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<Tch>(&ops.node);
        let (x, w, b, y) = ops.state;
        // libtorch's `run_backward` starts from scalars: Σ y ⊙ dy has
        // gradient dy at y, then the call's own backward runs.
        let root = (&y.tensor * &dy.tensor).sum(::tch::Kind::Float);
        let mut g = ::tch::Tensor::run_backward(&[root], &[&x.tensor, &w.tensor, &b.tensor], false, false).into_iter();
        for node in ops.parents {
            let grad = g.next().expect("one gradient per input");
            if let Some(node) = node {
                grads.register::<Tch>(node.id, TchTensor::new(grad));
            }
        }
    }
}

/// Runs `call(x, w, b)` as one autodiff node: on leaves that share the
/// inputs' memory when tracked (`from_existing` keeps burn-tch from writing
/// into it in place while the graph holds it), directly when not. `call`
/// returns the output and whatever else it computes.
fn one_node<const D: usize, T>(
    x: Tensor<A, D>,
    w: Tensor<A, 1>,
    b: Tensor<A, 1>,
    call: impl Fn(&::tch::Tensor, &::tch::Tensor, &::tch::Tensor) -> (::tch::Tensor, T),
) -> (Tensor<A, D>, T) {
    let (x, w, b) = (x.into_primitive().tensor(), w.into_primitive().tensor(), b.into_primitive().tensor());
    let (out, extra) =
        match TorchNodeBackward.prepare::<NoCheckpointing>([x.node.clone(), w.node.clone(), b.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let leaf = |t: &TchTensor| TchTensor::from_existing(t.tensor.detach().set_requires_grad(true), t.storage.clone());
                let (xl, wl, bl) = (leaf(&x.primitive), leaf(&w.primitive), leaf(&b.primitive));
                let (y, extra) = call(&xl.tensor, &wl.tensor, &bl.tensor);
                let out = TchTensor::new(y.detach());
                (prep.finish((xl, wl, bl, TchTensor::new(y)), out), extra)
            }
            OpsKind::UnTracked(prep) => {
                let (y, extra) = call(&x.primitive.tensor, &w.primitive.tensor, &b.primitive.tensor);
                (prep.finish(TchTensor::new(y)), extra)
            }
        };
    (Tensor::from_primitive(TensorPrimitive::Float(out)), extra)
}

/// Training-mode BatchNorm: the output and the batch mean and biased
/// variance (detached).
pub(super) fn batch_norm_autodiff<const D: usize>(
    x: Tensor<A, D>,
    w: Tensor<A, 1>,
    b: Tensor<A, 1>,
    eps: f64,
) -> (Tensor<A, D>, Tensor<A, 1>, Tensor<A, 1>) {
    let none = None::<&::tch::Tensor>;
    // `native_batch_norm` gives the batch mean and 1/√(var + eps) of the same
    // pass; the variance comes back from the latter.
    let (y, (mean, invstd)) = one_node(x, w, b, |x, w, b| {
        let (y, mean, invstd) = x.native_batch_norm(Some(w), Some(b), none, none, true, 0.0, eps);
        (y, (mean.detach(), invstd.detach()))
    });
    // Fresh copies: libtorch's graph saved `mean` and `invstd`, and burn-tch
    // may update a tensor it holds alone in place.
    let (mean, var) = (mean.copy(), invstd.square().reciprocal() - eps);
    let stat = |t: ::tch::Tensor| Tensor::<A, 1>::from_inner(Tensor::from_primitive(TensorPrimitive::Float(TchTensor::new(t))));
    (y, stat(mean), stat(var))
}

/// LayerNorm over the last dimension.
pub(super) fn layer_norm_autodiff<const D: usize>(x: Tensor<A, D>, g: Tensor<A, 1>, b: Tensor<A, 1>, eps: f64) -> Tensor<A, D> {
    let n = x.dims()[D - 1] as i64;
    one_node(x, g, b, |x, g, b| (x.layer_norm([n], Some(g), Some(b), eps, false), ())).0
}
