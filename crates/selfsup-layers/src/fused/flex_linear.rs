//! A linear layer `y = x·W + b` (`x` `[m, in]`, burn's `W` `[in, out]`) on
//! burn-flex as one autodiff operation: one multi-threaded `gemm` call
//! forward, with the bias as its starting value, and backward
//! `dx = dy·Wᵀ` and `dW = xᵀ·dy` read through strides (no transposed
//! copies) and `db` as column sums of `dy` in one pass.
//!
//! burn composes it from a matrix product and a broadcast addition: each
//! output is zero-filled and then copied to an aligned buffer by
//! burn-flex, the bias costs another pass each way, and the backward
//! products go through transposed views.
use burn::tensor::{Tensor, TensorPrimitive};
use burn_autodiff::{
    checkpoint::{base::Checkpointer, strategy::NoCheckpointing},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
    Autodiff,
};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::flex_gemm::{gemm, tensor, Dst};

fn floats(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("contiguous float32")
}

/// `y[m, out]`.
fn forward(x: &FlexTensor, w: &FlexTensor, b: Option<&FlexTensor>) -> FlexTensor {
    let (m, k, n) = (x.layout().shape()[0], w.layout().shape()[0], w.layout().shape()[1]);
    let mut y = vec![0f32; m * n];
    let mode = match b {
        Some(b) => {
            let b = floats(b);
            y.par_chunks_mut(n).for_each(|row| row.copy_from_slice(b));
            Dst::Accumulate
        }
        None => Dst::Overwrite,
    };
    // SAFETY: x is m×k, W k×n and y m×n, all contiguous.
    unsafe { gemm((m, n, k), y.as_mut_ptr(), (n, 1), floats(x).as_ptr(), (k, 1), floats(w).as_ptr(), (n, 1), 1.0, mode, true) };
    tensor(y, vec![m, n])
}

/// `dx[m, in] = dy·Wᵀ`.
fn grad_input(dy: &[f32], w: &FlexTensor) -> FlexTensor {
    let (k, n) = (w.layout().shape()[0], w.layout().shape()[1]);
    let m = dy.len() / n;
    let mut dx = vec![0f32; m * k];
    // SAFETY: dy is m×n; Wᵀ is n×k through W's strides.
    unsafe { gemm((m, k, n), dx.as_mut_ptr(), (k, 1), dy.as_ptr(), (n, 1), floats(w).as_ptr(), (1, n), 1.0, Dst::Overwrite, true) };
    tensor(dx, vec![m, k])
}

/// `dW[in, out] = xᵀ·dy`.
fn grad_weight(x: &FlexTensor, dy: &[f32]) -> FlexTensor {
    let (m, k) = (x.layout().shape()[0], x.layout().shape()[1]);
    let n = dy.len() / m;
    let mut dw = vec![0f32; k * n];
    // SAFETY: xᵀ is k×m through x's strides; dy is m×n.
    unsafe { gemm((k, n, m), dw.as_mut_ptr(), (n, 1), floats(x).as_ptr(), (1, k), dy.as_ptr(), (n, 1), 1.0, Dst::Overwrite, true) };
    tensor(dw, vec![k, n])
}

/// `db[out] = Σ_rows dy`: each core sums a block of rows, then the
/// partial sums are added.
fn grad_bias(dy: &[f32], n: usize) -> FlexTensor {
    let m = dy.len() / n;
    let rows = m.div_ceil(rayon::current_num_threads()).max(1);
    let db = dy
        .par_chunks(rows * n)
        .map(|block| {
            let mut s = vec![0f32; n];
            block.chunks(n).for_each(|r| s.iter_mut().zip(r).for_each(|(s, v)| *s += v));
            s
        })
        .reduce(
            || vec![0f32; n],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                a
            },
        );
    tensor(db, vec![n])
}

#[derive(Debug)]
struct LinearBackward;

impl<const N: usize> Backward<Flex, N> for LinearBackward {
    /// The input and weight (contiguous).
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (x, w) = ops.state;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let g = floats(&dy);
        let n = w.layout().shape()[1];
        for (i, node) in ops.parents.into_iter().enumerate() {
            if let Some(node) = node {
                let grad = match i {
                    0 => grad_input(g, &w),
                    1 => grad_weight(&x, g),
                    _ => grad_bias(g, n),
                };
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

type A = Autodiff<Flex>;

/// `x·W + b` for `x` `[m, in]`, `W` `[in, out]`, `b` `[out]`.
pub(crate) fn linear_autodiff(x: Tensor<A, 2>, w: Tensor<A, 2>, b: Option<Tensor<A, 1>>) -> Tensor<A, 2> {
    let x = x.into_primitive().tensor();
    let w = w.into_primitive().tensor();
    let (xc, wc) = (x.primitive.to_contiguous(), w.primitive.to_contiguous());
    let out = match b {
        Some(b) => {
            let b = b.into_primitive().tensor();
            let y = forward(&xc, &wc, Some(&b.primitive.to_contiguous()));
            match LinearBackward.prepare::<NoCheckpointing>([x.node.clone(), w.node.clone(), b.node.clone()]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((xc, wc), y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        }
        None => {
            let y = forward(&xc, &wc, None);
            match LinearBackward.prepare::<NoCheckpointing>([x.node.clone(), w.node.clone()]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((xc, wc), y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        }
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// The same without autodiff.
pub(crate) fn linear_inner(x: Tensor<Flex, 2>, w: Tensor<Flex, 2>, b: Option<Tensor<Flex, 1>>) -> Tensor<Flex, 2> {
    let x = x.into_primitive().tensor().to_contiguous();
    let w = w.into_primitive().tensor().to_contiguous();
    let b = b.map(|b| b.into_primitive().tensor().to_contiguous());
    Tensor::from_primitive(TensorPrimitive::Float(forward(&x, &w, b.as_ref())))
}
