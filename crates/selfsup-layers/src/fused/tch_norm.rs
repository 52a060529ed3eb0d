//! BatchNorm, LayerNorm, convolution and attention on burn-tch as single
//! autodiff operations: one libtorch call forward (`native_batch_norm`,
//! `layer_norm`, `conv2d`, `scaled_dot_product_attention`) on leaves that
//! share the inputs' memory, and libtorch's own backward for it
//! (`native_batch_norm_backward`, `native_layer_norm_backward`,
//! `convolution_backward`, the flash attention backward), reached through
//! libtorch's autograd on that one node.
use burn::tensor::{Tensor, TensorPrimitive};
use burn_autodiff::{
    checkpoint::{base::Checkpointer, strategy::NoCheckpointing},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
    Autodiff,
};
use burn_tch::{LibTorch, TchTensor};

use super::Conv2dGeometry;

type Tch = LibTorch<f32>;
type A = Autodiff<Tch>;
/// An autodiff tensor of burn-tch (its node and libtorch tensor).
type AutodiffTensor = burn::tensor::ops::FloatTensor<A>;

/// The backward of a libtorch call on `N` leaves.
#[derive(Debug)]
struct TorchNodeBackward;

impl<const N: usize> Backward<Tch, N> for TorchNodeBackward {
    /// libtorch's leaves and the call's output, which holds libtorch's
    /// graph of the call.
    type State = ([TchTensor; N], TchTensor);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<Tch>(&ops.node);
        let (leaves, y) = ops.state;
        // libtorch's `run_backward` starts from scalars: Σ y ⊙ dy has
        // gradient dy at y, then the call's own backward runs, for the
        // tracked inputs only (the others' leaves need no gradient).
        let root = (&y.tensor * &dy.tensor).sum(::tch::Kind::Float);
        let tracked: Vec<_> = ops.parents.into_iter().zip(&leaves).filter_map(|(node, leaf)| Some((node?, &leaf.tensor))).collect();
        let inputs: Vec<&::tch::Tensor> = tracked.iter().map(|(_, t)| *t).collect();
        let g = ::tch::Tensor::run_backward(&[root], &inputs, false, false);
        for ((node, _), grad) in tracked.iter().zip(g) {
            grads.register::<Tch>(node.id, TchTensor::new(grad));
        }
    }
}

/// Runs `call(inputs)` as one autodiff node: on leaves that share the
/// inputs' memory when tracked (`from_existing` keeps burn-tch from writing
/// into it in place while the graph holds it; only the inputs that need a
/// gradient ask libtorch for one), directly when not. `call` returns the
/// output and whatever else it computes.
fn one_node<const N: usize, T>(
    inputs: [AutodiffTensor; N],
    call: impl Fn([&::tch::Tensor; N]) -> (::tch::Tensor, T),
) -> (AutodiffTensor, T) {
    let nodes = inputs.each_ref().map(|t| t.node.clone());
    match TorchNodeBackward.prepare::<NoCheckpointing>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let leaves = inputs.each_ref().map(|t| {
                TchTensor::from_existing(
                    t.primitive.tensor.detach().set_requires_grad(!t.node.requirement.is_none()),
                    t.primitive.storage.clone(),
                )
            });
            let (y, extra) = call(leaves.each_ref().map(|l| &l.tensor));
            let out = TchTensor::new(y.detach());
            (prep.finish((leaves, TchTensor::new(y)), out), extra)
        }
        OpsKind::UnTracked(prep) => {
            let (y, extra) = call(inputs.each_ref().map(|t| &t.primitive.tensor));
            (prep.finish(TchTensor::new(y)), extra)
        }
    }
}

fn float<const D: usize>(t: AutodiffTensor) -> Tensor<A, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
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
    let inputs = [x.into_primitive().tensor(), w.into_primitive().tensor(), b.into_primitive().tensor()];
    let (y, (mean, invstd)) = one_node(inputs, |[x, w, b]| {
        let (y, mean, invstd) = x.native_batch_norm(Some(w), Some(b), none, none, true, 0.0, eps);
        (y, (mean.detach(), invstd.detach()))
    });
    // Fresh copies: libtorch's graph saved `mean` and `invstd`, and burn-tch
    // may update a tensor it holds alone in place.
    let (mean, var) = (mean.copy(), invstd.square().reciprocal() - eps);
    let stat = |t: ::tch::Tensor| Tensor::<A, 1>::from_inner(Tensor::from_primitive(TensorPrimitive::Float(TchTensor::new(t))));
    (float(y), stat(mean), stat(var))
}

/// LayerNorm over the last dimension.
pub(super) fn layer_norm_autodiff<const D: usize>(x: Tensor<A, D>, g: Tensor<A, 1>, b: Tensor<A, 1>, eps: f64) -> Tensor<A, D> {
    let n = x.dims()[D - 1] as i64;
    let inputs = [x.into_primitive().tensor(), g.into_primitive().tensor(), b.into_primitive().tensor()];
    float(one_node(inputs, |[x, g, b]| (x.layer_norm([n], Some(g), Some(b), eps, false), ())).0)
}

/// The convolution of `x` `[n, c, h, w]` by `w` `[co, c, kh, kw]` (one
/// group, symmetric padding): libtorch's `conv2d` (oneDNN on a CPU, cuDNN
/// on CUDA) and its `convolution_backward`.
pub(super) fn conv2d_autodiff(x: Tensor<A, 4>, w: Tensor<A, 4>, g: Conv2dGeometry) -> Tensor<A, 4> {
    let to_i64 = |v: [usize; 2]| v.map(|v| v as i64);
    let (stride, padding, dilation) = (to_i64(g.stride), to_i64([g.padding[0], g.padding[1]]), to_i64(g.dilation));
    let inputs = [x.into_primitive().tensor(), w.into_primitive().tensor()];
    float(one_node(inputs, |[x, w]| (x.conv2d(w, None::<&::tch::Tensor>, stride, padding, dilation, 1), ())).0)
}

/// The backward of a 1×1, stride-1, unpadded convolution as products.
#[derive(Debug)]
struct PointwiseBackward;

impl Backward<Tch, 2> for PointwiseBackward {
    /// The input `[n, c, h, w]` and weight `[co, c, 1, 1]`.
    type State = (TchTensor, TchTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (x, w) = ops.state;
        let dy = grads.consume::<Tch>(&ops.node);
        let (xs, ws) = (x.tensor.size(), w.tensor.size());
        let (n, c, co) = (xs[0], xs[1], ws[0]);
        let x3 = x.tensor.reshape([n, c, -1]);
        let w2 = w.tensor.reshape([co, c]);
        let dy3 = dy.tensor.reshape([n, co, -1]);
        let [x_node, w_node] = ops.parents;
        if let Some(node) = w_node {
            // dW = Σ_images dy·xᵀ, accumulated in place: no [n, co, c] stack to sum.
            let mut dw = ::tch::Tensor::zeros([co, c], (::tch::Kind::Float, w.tensor.device()));
            for i in 0..n {
                let _ = dw.addmm_(&dy3.get(i), &x3.get(i).tr());
            }
            grads.register::<Tch>(node.id, TchTensor::new(dw.reshape(ws.as_slice())));
        }
        if let Some(node) = x_node {
            grads.register::<Tch>(node.id, TchTensor::new(w2.tr().matmul(&dy3).reshape(xs.as_slice())));
        }
    }
}

/// A 1×1, stride-1, unpadded convolution of `x` `[n, c, h, w]` by `w`
/// `[co, c, 1, 1]` as `W·x[i]` for every image `i` (one batched MKL
/// product, which measured faster here than oneDNN's 1×1 convolution),
/// with a backward that sums the weight gradient in place over the images.
pub(super) fn pointwise_conv_autodiff(x: Tensor<A, 4>, w: Tensor<A, 4>) -> Tensor<A, 4> {
    let [n, _, h, wd] = x.dims().map(|d| d as i64);
    let x = x.into_primitive().tensor();
    let w = w.into_primitive().tensor();
    let (co, c) = (w.primitive.tensor.size()[0], w.primitive.tensor.size()[1]);
    let y = w.primitive.tensor.reshape([co, c]).matmul(&x.primitive.tensor.reshape([n, c, h * wd])).reshape([n, co, h, wd]);
    let y = TchTensor::new(y);
    let out = match PointwiseBackward.prepare::<NoCheckpointing>([x.node.clone(), w.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((x.primitive, w.primitive), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    float(out)
}

/// Attention of `qkv` `[b, n, 3c]` with `heads` heads: the q, k and v views,
/// `scaled_dot_product_attention`, and the heads back side by side.
pub(super) fn qkv_attention_autodiff(qkv: Tensor<A, 3>, heads: usize, scale: f64) -> Tensor<A, 3> {
    let [b, n, c3] = qkv.dims().map(|d| d as i64);
    let (h, c) = (heads as i64, c3 / 3);
    let y = one_node([qkv.into_primitive().tensor()], |[qkv]| {
        let parts = qkv.reshape([b, n, 3, h, c / h]).permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (parts.get(0), parts.get(1), parts.get(2));
        let o = ::tch::Tensor::scaled_dot_product_attention(&q, &k, &v, None::<&::tch::Tensor>, 0.0, false, Some(scale), false);
        // libtorch's CPU flash attention returns a view of a token-major buffer, which its
        // backward keeps: the output is a copy, so burn-tch may update it in place.
        (o.transpose(1, 2).reshape([b, n, c]).copy(), ())
    });
    float(y.0)
}
