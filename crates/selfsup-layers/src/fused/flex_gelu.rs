//! GELU (the exact, `erf` form) on burn-flex as one multi-threaded autodiff
//! operation: burn-flex's own `gelu` and `gelu_backward` run on one thread.
//! `erf` and the Gaussian are `flex_math`'s, in vectorised loops (the
//! `erf` PyTorch's vectorised GELU uses; burn-flex's `libm::erff` is a
//! scalar call and differs from it by under 6·10⁻⁷).
use burn::tensor::{DType, Tensor, TensorPrimitive};
use burn_autodiff::{
    checkpoint::{base::Checkpointer, strategy::NoCheckpointing},
    grads::Gradients,
    ops::{unary, Backward, Ops, OpsKind},
    Autodiff,
};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;
use std::f32::consts::FRAC_1_SQRT_2;

use super::flex_math::{erf, exp_nonpositive, vectorized};

const CHUNK: usize = 1 << 14;

fn forward(x: &FlexTensor) -> FlexTensor {
    let xs = x.as_slice::<f32>().expect("contiguous float32");
    let mut y = FlexTensor::empty(x.layout().shape().clone(), DType::F32);
    y.storage_mut::<f32>().par_chunks_mut(CHUNK).zip(xs.par_chunks(CHUNK)).for_each(|(ys, xs)| {
        vectorized(|| {
            for (y, &x) in ys.iter_mut().zip(xs) {
                *y = 0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2));
            }
        })
    });
    y
}

#[derive(Debug)]
struct GeluBackward;

impl Backward<Flex, 1> for GeluBackward {
    /// The input, contiguous.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let x = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |dy| {
            let mut dx = dy.to_contiguous();
            let xs = x.as_slice::<f32>().expect("contiguous float32");
            let inv_sqrt_2pi = 1.0 / (2.0 * std::f32::consts::PI).sqrt();
            dx.storage_mut::<f32>().par_chunks_mut(CHUNK).zip(xs.par_chunks(CHUNK)).for_each(|(ds, xs)| {
                vectorized(|| {
                    for (d, &x) in ds.iter_mut().zip(xs) {
                        let cdf = 0.5 * (1.0 + erf(x * FRAC_1_SQRT_2));
                        let pdf = inv_sqrt_2pi * exp_nonpositive(-0.5 * x * x);
                        *d *= cdf + x * pdf;
                    }
                })
            });
            dx
        });
    }
}

/// `gelu(x)` as one autodiff operation.
pub(crate) fn gelu_autodiff<const D: usize>(x: Tensor<Autodiff<Flex>, D>) -> Tensor<Autodiff<Flex>, D> {
    let x = x.into_primitive().tensor();
    let xc = x.primitive.to_contiguous();
    let y = forward(&xc);
    let out = match GeluBackward.prepare::<NoCheckpointing>([x.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(xc, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// `gelu(x)` without autodiff.
pub(crate) fn gelu_inner<const D: usize>(x: Tensor<Flex, D>) -> Tensor<Flex, D> {
    Tensor::from_primitive(TensorPrimitive::Float(forward(&x.into_primitive().tensor().to_contiguous())))
}
