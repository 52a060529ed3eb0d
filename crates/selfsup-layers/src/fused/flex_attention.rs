//! Multi-head self-attention from a fused q|k|v projection on burn-flex, as
//! one autodiff operation: `qkv` `[b, n, 3c]` in, `softmax(q·kᵀ·scale)·v`
//! out as `[b, n, c]` (heads side by side, ready for the output
//! projection).
//!
//! The composed form slices q, k and v out of a permuted `qkv` (whose
//! backward fills three zero tensors of the full size and adds them),
//! multiplies, runs the softmax, and copies the result back to token-major
//! order. Here every `(sample, head)` pair is one task on the cores, whose
//! four products (`q·kᵀ`, `p·v` forward; `dp = dy·vᵀ`, `dv = pᵀ·dy`,
//! `dq = ds·k`, `dk = dsᵀ·q` backward) read q, k and v where they lie in
//! `qkv` through `gemm`'s strides and write straight into the output and
//! into `d qkv`. The probabilities `p` are kept for the backward pass, as
//! PyTorch's eager attention keeps them.
use burn::tensor::{Tensor, TensorPrimitive};
use burn_autodiff::{
    checkpoint::{base::Checkpointer, strategy::NoCheckpointing},
    grads::Gradients,
    ops::{unary, Backward, Ops, OpsKind},
    Autodiff,
};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::flex_gemm::{gemm, tensor, Dst, SharedPtr};
use super::flex_math::{softmax_row, vectorized};

/// The sizes of one call: batch, tokens, heads, head width.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    n: usize,
    h: usize,
    d: usize,
}

impl Dims {
    fn c(self) -> usize {
        self.h * self.d
    }
    /// Offset of token 0 of head `hh` of part `part` (0 q, 1 k, 2 v) of sample `bi` in `qkv`.
    fn qkv_at(self, bi: usize, part: usize, hh: usize) -> usize {
        bi * self.n * 3 * self.c() + part * self.c() + hh * self.d
    }
}

/// Forward: the output `[b, n, c]` and the probabilities `[b, h, n, n]`.
fn forward(qkv: &[f32], dims: Dims, scale: f32) -> (Vec<f32>, Vec<f32>) {
    let Dims { b, n, h, d } = dims;
    let (c, row) = (dims.c(), 3 * dims.c());
    let mut out = vec![0f32; b * n * c];
    let mut probs = vec![0f32; b * h * n * n];
    let out_ptr = SharedPtr(out.as_mut_ptr());
    probs.par_chunks_mut(n * n).enumerate().for_each(|(task, p)| {
        let (bi, hh) = (task / h, task % h);
        let q = qkv[dims.qkv_at(bi, 0, hh)..].as_ptr();
        let k = qkv[dims.qkv_at(bi, 1, hh)..].as_ptr();
        let v = qkv[dims.qkv_at(bi, 2, hh)..].as_ptr();
        // SAFETY: q, k, v are n rows of `row` floats from their offsets, `p` is n×n, and this
        // task's output block (sample bi, columns hh·d..) is written by no other task.
        unsafe {
            gemm((n, n, d), p.as_mut_ptr(), (n, 1), q, (row, 1), k, (1, row), scale, Dst::Overwrite, false);
            softmax_rows(p, n);
            let o = out_ptr.get().add(bi * n * c + hh * d);
            gemm((n, d, n), o, (c, 1), p.as_ptr(), (n, 1), v, (row, 1), 1.0, Dst::Overwrite, false);
        }
    });
    (out, probs)
}

fn softmax_rows(p: &mut [f32], n: usize) {
    vectorized(|| {
        for r in p.chunks_mut(n) {
            softmax_row(r);
        }
    })
}

/// Backward: `d qkv` `[b, n, 3c]` from `dy` `[b, n, c]`.
fn backward(qkv: &[f32], probs: &[f32], dy: &[f32], dims: Dims, scale: f32) -> Vec<f32> {
    let Dims { b, n, h, d } = dims;
    let (c, row) = (dims.c(), 3 * dims.c());
    let mut dqkv = vec![0f32; b * n * row];
    let dptr = SharedPtr(dqkv.as_mut_ptr());
    (0..b * h).into_par_iter().for_each_init(
        || vec![0f32; n * n],
        |ds, task| {
            let (bi, hh) = (task / h, task % h);
            let p = &probs[task * n * n..][..n * n];
            let g = dy[bi * n * c + hh * d..].as_ptr();
            let at = |part| dims.qkv_at(bi, part, hh);
            let (q, k, v) = (qkv[at(0)..].as_ptr(), qkv[at(1)..].as_ptr(), qkv[at(2)..].as_ptr());
            // SAFETY: as in `forward`; this task writes only its head's columns of sample bi.
            unsafe {
                // dv = pᵀ·dy
                gemm((n, d, n), dptr.get().add(at(2)), (row, 1), p.as_ptr(), (1, n), g, (c, 1), 1.0, Dst::Overwrite, false);
                // dp = dy·vᵀ, then ds = p ⊙ (dp − Σ_j dp ⊙ p)
                gemm((n, n, d), ds.as_mut_ptr(), (n, 1), g, (c, 1), v, (1, row), 1.0, Dst::Overwrite, false);
                for (dr, pr) in ds.chunks_mut(n).zip(p.chunks(n)) {
                    let dot: f32 = dr.iter().zip(pr).map(|(a, b)| a * b).sum();
                    dr.iter_mut().zip(pr).for_each(|(x, &pv)| *x = pv * (*x - dot));
                }
                // dq = scale · ds·k, dk = scale · dsᵀ·q
                gemm((n, d, n), dptr.get().add(at(0)), (row, 1), ds.as_ptr(), (n, 1), k, (row, 1), scale, Dst::Overwrite, false);
                gemm((n, d, n), dptr.get().add(at(1)), (row, 1), ds.as_ptr(), (1, n), q, (row, 1), scale, Dst::Overwrite, false);
            }
        },
    );
    dqkv
}

#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 1> for AttentionBackward {
    /// `qkv` (contiguous), the probabilities, the sizes and the scale.
    type State = (FlexTensor, Vec<f32>, Dims, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (qkv, probs, dims, scale) = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |dy| {
            let dy = dy.to_contiguous();
            let g = backward(qkv.as_slice::<f32>().expect("float32"), &probs, dy.as_slice::<f32>().expect("float32"), dims, scale);
            tensor(g, vec![dims.b, dims.n, 3 * dims.c()])
        });
    }
}

fn dims_of(qkv: &FlexTensor, heads: usize) -> Dims {
    let s = qkv.layout().shape();
    Dims { b: s[0], n: s[1], h: heads, d: s[2] / 3 / heads }
}

/// Attention of `qkv` `[b, n, 3c]` with `heads` heads.
pub(crate) fn qkv_attention_autodiff(qkv: Tensor<Autodiff<Flex>, 3>, heads: usize, scale: f64) -> Tensor<Autodiff<Flex>, 3> {
    let qkv = qkv.into_primitive().tensor();
    let x = qkv.primitive.to_contiguous();
    let dims = dims_of(&x, heads);
    let (out, probs) = forward(x.as_slice::<f32>().expect("float32"), dims, scale as f32);
    let y = tensor(out, vec![dims.b, dims.n, dims.c()]);
    let out = match AttentionBackward.prepare::<NoCheckpointing>([qkv.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((x, probs, dims, scale as f32), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// Attention without autodiff.
pub(crate) fn qkv_attention_inner(qkv: Tensor<Flex, 3>, heads: usize, scale: f64) -> Tensor<Flex, 3> {
    let x = qkv.into_primitive().tensor().to_contiguous();
    let dims = dims_of(&x, heads);
    let out = forward(x.as_slice::<f32>().expect("float32"), dims, scale as f32).0;
    Tensor::from_primitive(TensorPrimitive::Float(tensor(out, vec![dims.b, dims.n, dims.c()])))
}
