//! Gradient clipping by the global norm: MMEngine `OptimWrapper`'s
//! `clip_grad` (`mmengine/optim/optimizer/optim_wrapper.py`, torch's
//! `clip_grad_norm_`), and the global gradient norm it and Lamb use.
use burn::{
    module::{AutodiffModule, ModuleVisitor, Param},
    optim::GradientsParams,
    tensor::{backend::AutodiffBackend, ElementConversion, Tensor},
};
use serde::{Deserialize, Serialize};

use crate::fused;

/// `clip_grad = dict(max_norm=..., norm_type=2)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipGradConfig {
    /// Largest global gradient norm.
    pub max_norm: f64,
    /// Norm order; only 2 is supported.
    #[serde(default = "two")]
    pub norm_type: f64,
    /// Stop the run when the gradient norm is not finite (torch's flag).
    #[serde(default)]
    pub error_if_nonfinite: bool,
}

fn two() -> f64 {
    2.0
}

struct NormVisitor<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for NormVisitor<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let n = g.shape().num_elements();
            let s = fused::sum_of_squares(&g.reshape([n]));
            self.sum = Some(match self.sum.take() {
                Some(acc) => acc + s,
                None => s,
            });
        }
    }
}

/// As [`global_grad_norm`], storing each gradient back contiguous: burn's
/// convolution weight gradients come out permuted, and on burn-flex every
/// element-wise pass over a permuted tensor walks it element by element,
/// so the norm and the update would each pay that walk. Reshaping through
/// one dimension makes the copy once.
pub(super) fn compact_grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(module: &M, grads: &mut GradientsParams) -> f64 {
    struct Compact<'a, B: AutodiffBackend> {
        grads: &'a mut GradientsParams,
        sum: Option<Tensor<B::InnerBackend, 1>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Compact<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
                let shape = g.shape();
                let flat = g.reshape([shape.num_elements()]);
                let s = fused::sum_of_squares(&flat);
                self.sum = Some(match self.sum.take() {
                    Some(acc) => acc + s,
                    None => s,
                });
                self.grads.register::<B::InnerBackend, D>(param.id, flat.reshape(shape));
            }
        }
    }
    let mut v = Compact::<B> { grads, sum: None };
    module.visit(&mut v);
    v.sum.map(|s| s.into_scalar().elem::<f64>().sqrt()).unwrap_or(0.0)
}

/// The global L2 norm of every gradient (one host read).
pub fn global_grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(module: &M, grads: &GradientsParams) -> f64 {
    let mut v = NormVisitor::<B> { grads, sum: None };
    module.visit(&mut v);
    v.sum.map(|s| s.into_scalar().elem::<f64>().sqrt()).unwrap_or(0.0)
}
