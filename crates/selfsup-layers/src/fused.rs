//! Fused kernels for the backends whose tensors we can reach.
//!
//! burn 0.21 composes softmax from five operations (max, subtract, exp,
//! sum, divide), and its autodiff records each one, so the backward pass
//! makes another half-dozen passes; burn-flex runs all of them on one
//! thread. PyTorch has one kernel each way. On the backends enabled at
//! compile time this module registers softmax over the last dimension as a
//! single autodiff operation:
//!
//! - burn-flex: rows spread over the cores, `y = exp(x − max) / Σ` forward
//!   and `dx = y ⊙ (dy − Σ dy ⊙ y)` backward, one pass each;
//! - burn-tch: libtorch's `softmax` and `_softmax_backward_data`.
//!
//! The same holds for ReLU (whose backward burn makes two passes),
//! training-mode BatchNorm, LayerNorm, GELU and attention from a fused
//! q|k|v projection: see each function, and `fused/*.rs` for the kernels.
//!
//! The backend is recognised by its type at run time (components stay
//! generic over `B: Backend`); every other backend, and any dtype other
//! than float32, takes burn's composition.
use burn::tensor::{activation, backend::Backend, Tensor};

/// Moves `t` into type `U` when `T` is `U` (a typed downcast by value):
/// how the fused paths here and in selfsup-train recognise a concrete
/// backend inside generic code.
pub fn cast<T: 'static, U: 'static>(t: T) -> Result<U, T> {
    let mut slot = Some(t);
    match (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<U>>() {
        Some(u) => Ok(u.take().expect("just filled")),
        None => Err(slot.expect("not taken")),
    }
}

/// [`cast`] where the types are known to be equal (a backend just
/// recognised): the value itself.
#[cfg(any(feature = "flex", feature = "tch"))]
fn same<T: 'static, U: 'static>(t: T) -> U {
    cast(t).unwrap_or_else(|_| unreachable!("same backend"))
}

/// `softmax(x, D − 1)`: the same function as burn's, fused where the
/// backend allows it.
pub fn softmax_last_dim<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    output_op(OutputOp::Softmax, x).unwrap_or_else(|x| activation::softmax(x, D - 1))
}

/// `relu(x)`: the same function as burn's, as one autodiff operation whose
/// backward is one pass (burn's compares, then fills) where the backend
/// allows it: multi-threaded on burn-flex, libtorch's `threshold_backward`
/// on burn-tch.
pub fn relu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    output_op(OutputOp::Relu, x).unwrap_or_else(activation::relu)
}

/// `op(x)` on the backends with kernels for it (float32); `Err` hands `x`
/// back on the others.
#[allow(unused_mut, unused_variables)]
fn output_op<B: Backend, const D: usize>(op: OutputOp, x: Tensor<B, D>) -> Result<Tensor<B, D>, Tensor<B, D>> {
    let mut x = x;
    if x.dtype() == burn::tensor::DType::F32 {
        #[cfg(feature = "flex")]
        {
            type Flex = burn_flex::Flex;
            x = match cast::<Tensor<B, D>, Tensor<burn_autodiff::Autodiff<Flex>, D>>(x) {
                Ok(t) => return Ok(same(kernels::op_autodiff::<Flex, D>(op, t))),
                Err(t) => t,
            };
            x = match cast::<Tensor<B, D>, Tensor<Flex, D>>(x) {
                Ok(t) => return Ok(same(kernels::op_inner::<Flex, D>(op, t))),
                Err(t) => t,
            };
        }
        #[cfg(feature = "tch")]
        {
            type Tch = burn_tch::LibTorch<f32>;
            x = match cast::<Tensor<B, D>, Tensor<burn_autodiff::Autodiff<Tch>, D>>(x) {
                Ok(t) => return Ok(same(kernels::op_autodiff::<Tch, D>(op, t))),
                Err(t) => t,
            };
            x = match cast::<Tensor<B, D>, Tensor<Tch, D>>(x) {
                Ok(t) => return Ok(same(kernels::op_inner::<Tch, D>(op, t))),
                Err(t) => t,
            };
        }
    }
    Err(x)
}

/// Training-mode batch normalisation over every dimension but 1 of `x`
/// `[N, C, ...]`, with scale `weight` and shift `bias` `[C]`: the output,
/// and the batch mean and biased variance (detached, for the running
/// statistics). One autodiff operation where the composed layer runs about
/// fifteen kernels forward and thirty backward: on burn-tch, libtorch's
/// `batch_norm` forward and its own backward (`native_batch_norm_backward`,
/// reached through libtorch's autograd on the one node); on burn-flex, two
/// multi-threaded passes each way (`fused/flex_norm.rs`). `Err` hands
/// `x` back on every other backend and dtype.
#[allow(clippy::type_complexity, unused_mut)]
#[cfg_attr(not(any(feature = "tch", feature = "flex")), allow(unused_variables))]
pub fn batch_norm_train<B: Backend, const D: usize>(
    mut x: Tensor<B, D>,
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
    eps: f64,
) -> Result<(Tensor<B, D>, Tensor<B, 1>, Tensor<B, 1>), Tensor<B, D>> {
    #[cfg(feature = "flex")]
    if x.dtype() == burn::tensor::DType::F32 {
        type A = burn_autodiff::Autodiff<burn_flex::Flex>;
        x = match cast::<Tensor<B, D>, Tensor<A, D>>(x) {
            Ok(x) => {
                let w = same::<_, Tensor<A, 1>>(weight);
                let b = same::<_, Tensor<A, 1>>(bias);
                let (y, mean, var) = flex_norm::batch_norm_autodiff(x, w, b, eps);
                return Ok((same(y), same(mean), same(var)));
            }
            Err(x) => x,
        };
    }
    #[cfg(feature = "tch")]
    if x.dtype() == burn::tensor::DType::F32 {
        type A = burn_autodiff::Autodiff<burn_tch::LibTorch<f32>>;
        match cast::<Tensor<B, D>, Tensor<A, D>>(x) {
            Ok(x) => {
                let w = same::<_, Tensor<A, 1>>(weight);
                let b = same::<_, Tensor<A, 1>>(bias);
                let (y, mean, var) = tch_norm::batch_norm_autodiff(x, w, b, eps);
                return Ok((same(y), same(mean), same(var)));
            }
            Err(x) => return Err(x),
        }
    }
    Err(x)
}

/// Multi-head self-attention from a fused q|k|v projection: `qkv`
/// `[b, n, 3c]` (q, k, v side by side, each `heads` heads of `c / heads`)
/// to `softmax(q·kᵀ·scale)·v` as `[b, n, c]`, what mmcls's
/// `MultiheadAttention` computes between its two linear layers. One
/// autodiff operation on burn-flex (`fused/flex_attention.rs`) and on
/// burn-tch (libtorch's `scaled_dot_product_attention`, whose CPU and CUDA
/// kernels are flash attention); burn's composition elsewhere and in other
/// dtypes.
#[allow(unused_mut)]
pub fn qkv_attention<B: Backend>(qkv: Tensor<B, 3>, heads: usize, scale: f64) -> Tensor<B, 3> {
    let mut qkv = qkv;
    if qkv.dtype() == burn::tensor::DType::F32 {
        #[cfg(feature = "flex")]
        {
            qkv = match cast::<Tensor<B, 3>, Tensor<burn_autodiff::Autodiff<burn_flex::Flex>, 3>>(qkv) {
                Ok(t) => return same(flex_attention::qkv_attention_autodiff(t, heads, scale)),
                Err(t) => t,
            };
            qkv = match cast::<Tensor<B, 3>, Tensor<burn_flex::Flex, 3>>(qkv) {
                Ok(t) => return same(flex_attention::qkv_attention_inner(t, heads, scale)),
                Err(t) => t,
            };
        }
        #[cfg(feature = "tch")]
        {
            qkv = match cast::<Tensor<B, 3>, Tensor<burn_autodiff::Autodiff<burn_tch::LibTorch<f32>>, 3>>(qkv) {
                Ok(t) => return same(tch_norm::qkv_attention_autodiff(t, heads, scale)),
                Err(t) => t,
            };
        }
    }
    let [b, n, c3] = qkv.dims();
    let c = c3 / 3;
    let qkv = qkv.reshape([b, n, 3, heads, c / heads]).permute([2, 0, 3, 1, 4]); // [3, b, h, n, hd]
    let q = qkv.clone().slice([0..1]).squeeze_dim::<4>(0);
    let k = qkv.clone().slice([1..2]).squeeze_dim::<4>(0);
    let v = qkv.slice([2..3]).squeeze_dim::<4>(0);
    let attn = softmax_last_dim(crate::functional::matmul(q, k.swap_dims(2, 3)).mul_scalar(scale));
    crate::functional::matmul(attn, v).swap_dims(1, 2).reshape([b, n, c])
}

/// Stride, padding (top, left, bottom, right) and dilation of a 2-D
/// convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dGeometry {
    /// Vertical, horizontal.
    pub stride: [usize; 2],
    /// Top, left, bottom, right.
    pub padding: [usize; 4],
    /// Vertical, horizontal.
    pub dilation: [usize; 2],
}

/// The convolution of `x` `[n, c, h, w]` by `weight` `[co, c, kh, kw]`
/// (one group, no bias) as one autodiff operation: on burn-flex, `im2col`
/// and one product per image each way (`fused/flex_conv.rs`); on burn-tch
/// with symmetric padding, libtorch's `conv2d` and its backward, except
/// for 1×1, stride-1, unpadded kernels: batched MKL products there
/// (measured faster than oneDNN's), with the weight gradient summed in
/// place. `Err` hands the operands back on every other backend and dtype.
#[allow(unused_mut)]
#[cfg_attr(not(any(feature = "flex", feature = "tch")), allow(unused_variables))]
pub fn conv2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    geometry: Conv2dGeometry,
) -> Result<Tensor<B, 4>, (Tensor<B, 4>, Tensor<B, 4>)> {
    let (mut x, mut weight) = (x, weight);
    #[cfg(feature = "flex")]
    if x.dtype() == burn::tensor::DType::F32 && weight.dtype() == burn::tensor::DType::F32 {
        type A = burn_autodiff::Autodiff<burn_flex::Flex>;
        x = match cast::<Tensor<B, 4>, Tensor<A, 4>>(x) {
            Ok(x) => return Ok(same(flex_conv::conv2d_autodiff(x, same(weight), geometry))),
            Err(x) => x,
        };
        x = match cast::<Tensor<B, 4>, Tensor<burn_flex::Flex, 4>>(x) {
            Ok(x) => return Ok(same(flex_conv::conv2d_inner(x, same(weight), geometry))),
            Err(x) => x,
        };
    }
    #[cfg(feature = "tch")]
    {
        let [top, left, bottom, right] = geometry.padding;
        let pointwise = weight.dims()[2..] == [1, 1] && geometry.stride == [1, 1] && geometry.padding == [0; 4];
        if x.dtype() == burn::tensor::DType::F32 && weight.dtype() == burn::tensor::DType::F32 && top == bottom && left == right {
            type A = burn_autodiff::Autodiff<burn_tch::LibTorch<f32>>;
            x = match cast::<Tensor<B, 4>, Tensor<A, 4>>(x) {
                Ok(x) if pointwise => return Ok(same(tch_norm::pointwise_conv_autodiff(x, same(weight)))),
                Ok(x) => return Ok(same(tch_norm::conv2d_autodiff(x, same(weight), geometry))),
                Err(x) => x,
            };
        }
    }
    Err((x, weight))
}

/// `x·W + b` for `x` `[m, in]` and burn's `W` `[in, out]`: on burn-flex
/// (float32) one autodiff operation, a multi-threaded `gemm` each way with
/// no transposed copies (`fused/flex_linear.rs`). `Err` hands the operands
/// back on every other backend and dtype.
#[allow(unused_mut, clippy::type_complexity)]
pub fn linear<B: Backend>(
    x: Tensor<B, 2>,
    w: Tensor<B, 2>,
    b: Option<Tensor<B, 1>>,
) -> Result<Tensor<B, 2>, (Tensor<B, 2>, Tensor<B, 2>, Option<Tensor<B, 1>>)> {
    let mut x = x;
    #[cfg(feature = "flex")]
    if x.dtype() == burn::tensor::DType::F32
        && w.dtype() == burn::tensor::DType::F32
        && b.as_ref().is_none_or(|b| b.dtype() == burn::tensor::DType::F32)
    {
        type A = burn_autodiff::Autodiff<burn_flex::Flex>;
        x = match cast::<Tensor<B, 2>, Tensor<A, 2>>(x) {
            Ok(x) => return Ok(same(flex_linear::linear_autodiff(x, same(w), b.map(same)))),
            Err(x) => x,
        };
        x = match cast::<Tensor<B, 2>, Tensor<burn_flex::Flex, 2>>(x) {
            Ok(x) => return Ok(same(flex_linear::linear_inner(x, same(w), b.map(same)))),
            Err(x) => x,
        };
    }
    Err((x, w, b))
}

/// `gelu(x)` (the `erf` form, PyTorch's default): on burn-flex one
/// multi-threaded autodiff operation (`fused/flex_gelu.rs`); on burn-tch
/// burn's `gelu` (libtorch's kernels each way); elsewhere
/// `x · (1 + erf(x/√2)) / 2` composed, because burn-wgpu 0.21's own GELU
/// gradient is off by up to 1 % (`gelu_and_its_gradient_match_a_direct_computation`)
/// while `erf`'s is exact.
#[allow(unused_mut)]
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let mut x = x;
    #[cfg(feature = "flex")]
    if x.dtype() == burn::tensor::DType::F32 {
        x = match cast::<Tensor<B, D>, Tensor<burn_autodiff::Autodiff<burn_flex::Flex>, D>>(x) {
            Ok(t) => return same(flex_gelu::gelu_autodiff(t)),
            Err(t) => t,
        };
        x = match cast::<Tensor<B, D>, Tensor<burn_flex::Flex, D>>(x) {
            Ok(t) => return same(flex_gelu::gelu_inner(t)),
            Err(t) => t,
        };
    }
    #[cfg(feature = "tch")]
    {
        use std::any::TypeId;
        type Tch = burn_tch::LibTorch<f32>;
        if [TypeId::of::<burn_autodiff::Autodiff<Tch>>(), TypeId::of::<Tch>()].contains(&TypeId::of::<B>()) {
            return activation::gelu(x);
        }
    }
    let cdf = x.clone().mul_scalar(std::f64::consts::FRAC_1_SQRT_2).erf().add_scalar(1.0).mul_scalar(0.5);
    x * cdf
}

/// LayerNorm over the last dimension of `x` with scale `gamma` and shift
/// `beta`: burn's `layer_norm`, as one autodiff operation where the backend
/// allows it (burn's autodiff composes about ten operations forward and
/// twenty backward): burn-flex's rows spread over the cores
/// (`fused/flex_norm.rs`), libtorch's `layer_norm` and its own backward.
#[allow(unused_mut)]
pub fn layer_norm<B: Backend, const D: usize>(x: Tensor<B, D>, gamma: Tensor<B, 1>, beta: Option<Tensor<B, 1>>, eps: f64) -> Tensor<B, D> {
    let mut x = x;
    #[cfg(any(feature = "flex", feature = "tch"))]
    if let (Some(b), burn::tensor::DType::F32) = (&beta, x.dtype()) {
        #[cfg(feature = "flex")]
        {
            type A = burn_autodiff::Autodiff<burn_flex::Flex>;
            x = match cast::<Tensor<B, D>, Tensor<A, D>>(x) {
                Ok(x) => {
                    let g = same::<_, Tensor<A, 1>>(gamma);
                    let b = same::<_, Tensor<A, 1>>(b.clone());
                    return same(flex_norm::layer_norm_autodiff(x, g, b, eps));
                }
                Err(x) => x,
            };
        }
        #[cfg(feature = "tch")]
        {
            type A = burn_autodiff::Autodiff<burn_tch::LibTorch<f32>>;
            x = match cast::<Tensor<B, D>, Tensor<A, D>>(x) {
                Ok(x) => {
                    let g = same::<_, Tensor<A, 1>>(gamma);
                    let b = same::<_, Tensor<A, 1>>(b.clone());
                    return same(tch_norm::layer_norm_autodiff(x, g, b, eps));
                }
                Err(x) => x,
            };
        }
    }
    let beta = beta.map(|b| b.into_primitive().tensor());
    Tensor::from_primitive(burn::tensor::TensorPrimitive::Float(B::layer_norm(
        x.into_primitive().tensor(),
        gamma.into_primitive().tensor(),
        beta,
        eps,
    )))
}

/// The element-wise operations whose backward needs only their output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputOp {
    /// Softmax over the last dimension.
    Softmax,
    /// `max(x, 0)`.
    Relu,
}

/// A backend with its own kernels for the [`OutputOp`]s.
#[cfg(any(feature = "flex", feature = "tch"))]
trait OutputKernels: Backend {
    fn op_forward(op: OutputOp, x: Self::FloatTensorPrimitive) -> Self::FloatTensorPrimitive;
    /// The input gradient from the output `y` and its gradient `dy`.
    fn op_backward(op: OutputOp, y: Self::FloatTensorPrimitive, dy: Self::FloatTensorPrimitive) -> Self::FloatTensorPrimitive;
}

#[cfg(any(feature = "flex", feature = "tch"))]
mod kernels {
    use burn::tensor::{Tensor, TensorPrimitive};
    use burn_autodiff::{
        checkpoint::{base::Checkpointer, strategy::NoCheckpointing},
        grads::Gradients,
        ops::{unary, Backward, Ops, OpsKind},
        Autodiff,
    };

    use super::{OutputKernels, OutputOp};

    #[derive(Debug)]
    struct OutputBackward(OutputOp);

    impl<I: OutputKernels> Backward<I, 1> for OutputBackward {
        /// The forward output.
        type State = I::FloatTensorPrimitive;

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let y = ops.state;
            unary::<I, _>(ops.parents, ops.node, grads, |dy| I::op_backward(self.0, y, dy));
        }
    }

    pub(super) fn op_autodiff<I: OutputKernels, const D: usize>(op: OutputOp, x: Tensor<Autodiff<I>, D>) -> Tensor<Autodiff<I>, D> {
        let x = x.into_primitive().tensor();
        let out = match OutputBackward(op).prepare::<NoCheckpointing>([x.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = I::op_forward(op, x.primitive);
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(I::op_forward(op, x.primitive)),
        };
        Tensor::from_primitive(TensorPrimitive::Float(out))
    }

    pub(super) fn op_inner<I: OutputKernels, const D: usize>(op: OutputOp, x: Tensor<I, D>) -> Tensor<I, D> {
        Tensor::from_primitive(TensorPrimitive::Float(I::op_forward(op, x.into_primitive().tensor())))
    }
}

#[cfg(feature = "flex")]
mod flex_attention;
#[cfg(feature = "flex")]
mod flex_conv;
#[cfg(feature = "flex")]
mod flex_gelu;
#[cfg(feature = "flex")]
mod flex_gemm;
#[cfg(feature = "flex")]
mod flex_linear;
#[cfg(feature = "flex")]
mod flex_math;
#[cfg(feature = "flex")]
mod flex_norm;
#[cfg(feature = "tch")]
mod tch_norm;

#[cfg(feature = "flex")]
mod flex {
    use burn::tensor::DType;
    use burn_flex::{Flex, FlexTensor};
    use rayon::prelude::*;

    /// Rows per parallel task, for rows of `n` elements: about 16 K
    /// elements a task.
    fn rows_per_task(n: usize) -> usize {
        ((1 << 14) / n.max(1)).max(1)
    }

    impl super::OutputKernels for Flex {
        fn op_forward(op: super::OutputOp, x: FlexTensor) -> FlexTensor {
            match op {
                super::OutputOp::Softmax => softmax_forward(x),
                super::OutputOp::Relu => map(x, |v| if v < 0.0 { 0.0 } else { v }),
            }
        }

        fn op_backward(op: super::OutputOp, y: FlexTensor, dy: FlexTensor) -> FlexTensor {
            match op {
                super::OutputOp::Softmax => softmax_backward(y, dy),
                // burn's `relu_backward`: zero where the output is ≤ 0.
                super::OutputOp::Relu => {
                    let y = y.to_contiguous();
                    let mut dx = dy.to_contiguous();
                    let ys = y.as_slice::<f32>().expect("contiguous float32");
                    dx.storage_mut::<f32>().par_chunks_mut(1 << 14).zip(ys.par_chunks(1 << 14)).for_each(|(d, y)| {
                        d.iter_mut().zip(y).for_each(|(d, &y)| {
                            if y <= 0.0 {
                                *d = 0.0;
                            }
                        })
                    });
                    dx
                }
            }
        }
    }

    /// `f` of every element, in parallel; in place when `x` is the only
    /// reference to a whole contiguous buffer (as burn-flex's own unary
    /// operations are).
    fn map(mut x: FlexTensor, f: impl Fn(f32) -> f32 + Sync) -> FlexTensor {
        if x.is_unique() && x.is_contiguous() && x.layout().start_offset() == 0 {
            let n = x.layout().num_elements();
            x.storage_mut::<f32>()[..n].par_chunks_mut(1 << 14).for_each(|c| c.iter_mut().for_each(|v| *v = f(*v)));
            return x;
        }
        let x = x.to_contiguous();
        let mut y = FlexTensor::empty(x.layout().shape().clone(), DType::F32);
        let xs = x.as_slice::<f32>().expect("contiguous float32");
        y.storage_mut::<f32>().par_chunks_mut(1 << 14).zip(xs.par_chunks(1 << 14)).for_each(|(y, x)| {
            y.iter_mut().zip(x).for_each(|(y, &x)| *y = f(x));
        });
        y
    }

    fn softmax_forward(x: FlexTensor) -> FlexTensor {
        let x = x.to_contiguous();
        let shape = x.layout().shape().clone();
        let n = shape.as_slice().last().copied().unwrap_or(1);
        let mut y = FlexTensor::empty(shape, DType::F32);
        let xs = x.as_slice::<f32>().expect("contiguous float32");
        let ys = y.storage_mut::<f32>();
        let chunk = rows_per_task(n) * n;
        ys.par_chunks_mut(chunk).zip(xs.par_chunks(chunk)).for_each(|(ys, xs)| {
            super::flex_math::vectorized(|| {
                for (y, x) in ys.chunks_mut(n).zip(xs.chunks(n)) {
                    y.copy_from_slice(x);
                    super::flex_math::softmax_row(y);
                }
            })
        });
        y
    }

    fn softmax_backward(y: FlexTensor, dy: FlexTensor) -> FlexTensor {
        let y = y.to_contiguous();
        let mut dx = dy.to_contiguous();
        let n = y.layout().shape().as_slice().last().copied().unwrap_or(1);
        let ys = y.as_slice::<f32>().expect("contiguous float32");
        // `dy` is rewritten in place (copied first if shared).
        let dxs = dx.storage_mut::<f32>();
        let chunk = rows_per_task(n) * n;
        dxs.par_chunks_mut(chunk).zip(ys.par_chunks(chunk)).for_each(|(dxs, ys)| {
            for (d, y) in dxs.chunks_mut(n).zip(ys.chunks(n)) {
                let dot: f32 = d.iter().zip(y).map(|(a, b)| a * b).sum();
                d.iter_mut().zip(y).for_each(|(di, yi)| *di = yi * (*di - dot));
            }
        });
        dx
    }
}

#[cfg(feature = "tch")]
mod tch {
    use burn_tch::{LibTorch, TchTensor};

    use super::OutputOp;

    impl super::OutputKernels for LibTorch<f32> {
        fn op_forward(op: OutputOp, x: TchTensor) -> TchTensor {
            TchTensor::new(match op {
                OutputOp::Softmax => x.tensor.softmax(-1, ::tch::Kind::Float),
                OutputOp::Relu => x.tensor.relu(),
            })
        }

        fn op_backward(op: OutputOp, y: TchTensor, dy: TchTensor) -> TchTensor {
            TchTensor::new(match op {
                OutputOp::Softmax => ::tch::Tensor::internal_softmax_backward_data(&dy.tensor, &y.tensor, -1, ::tch::Kind::Float),
                // One pass, as PyTorch's own ReLU backward.
                OutputOp::Relu => y.tensor.threshold_backward(&dy.tensor, 0.0),
            })
        }
    }
}
