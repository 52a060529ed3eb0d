//! Fused optimiser steps for the backends whose tensors we can reach.
//!
//! The generic AdamW update in [`crate::optim`] is written with burn's
//! tensor operations: about fourteen passes over every parameter, each one
//! allocating, where PyTorch's `_single_tensor_adamw` makes eight passes in
//! place. For a ViT-B MAE (111 M parameters) that is a tenth of a CPU step.
//! On the backends enabled at compile time this module does the same
//! arithmetic in fewer passes:
//!
//! - burn-flex: one multi-threaded pass over `p`, `g`, `m` and `v`
//!   (copy-on-write: a buffer shared with another tensor is copied first);
//! - burn-tch: libtorch's in-place operations, as torch's own AdamW does
//!   (CPU and CUDA), when the tensors are not shared.
//!
//! The backend is recognised by its type at run time, so the optimiser
//! stays generic; every other backend takes the generic path.
use burn::tensor::{backend::Backend, DType, Tensor};
#[allow(unused_imports)]
use selfsup_layers::fused::cast;

/// The scalars of one AdamW update of one parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamWStep {
    /// `1 − lr·wd`, the decoupled weight decay.
    pub decay: f64,
    pub b1: f64,
    pub b2: f64,
    pub eps: f64,
    /// `lr / (1 − β1ᵗ)`.
    pub step_size: f64,
    /// `√(1 − β2ᵗ)`.
    pub bias2_sqrt: f64,
}

type Flat<B> = Tensor<B, 1>;

/// What [`adamw`] hands back when no fused kernel applies: its arguments.
pub(crate) type Unfused<B> = (Flat<B>, Flat<B>, Option<(Flat<B>, Flat<B>)>);

/// A parameter and its two moments after a step.
pub(crate) type Stepped<B> = (Flat<B>, Flat<B>, Flat<B>);

/// One AdamW step of the flat parameter `p` with gradient `g` and moments
/// `(m, v)` (none before the first step): the new `(p, m, v)`, or the
/// arguments back when this backend has no fused kernel.
#[allow(unused_mut)]
pub(crate) fn adamw<B: Backend>(
    p: Flat<B>,
    g: Flat<B>,
    moments: Option<(Flat<B>, Flat<B>)>,
    h: &AdamWStep,
) -> Result<Stepped<B>, Unfused<B>> {
    let all_f32 = [Some(&p), Some(&g), moments.as_ref().map(|m| &m.0), moments.as_ref().map(|m| &m.1)]
        .into_iter()
        .flatten()
        .all(|t| t.dtype() == DType::F32);
    let mut args = (p, g, moments);
    if !all_f32 {
        return Err(args);
    }
    #[cfg(feature = "flex")]
    {
        args = match cast::<Unfused<B>, Unfused<burn_flex::Flex>>(args) {
            Ok(a) => {
                return flex::adamw(a, h)
                    .map(|out| cast(out).unwrap_or_else(|_| unreachable!("same backend")))
                    .map_err(|a| cast(a).unwrap_or_else(|_| unreachable!("same backend")))
            }
            Err(a) => a,
        };
    }
    #[cfg(feature = "tch")]
    {
        args = match cast::<Unfused<B>, Unfused<burn_tch::LibTorch<f32>>>(args) {
            Ok(a) => {
                return tch::adamw(a, h)
                    .map(|out| cast(out).unwrap_or_else(|_| unreachable!("same backend")))
                    .map_err(|a| cast(a).unwrap_or_else(|_| unreachable!("same backend")))
            }
            Err(a) => a,
        };
    }
    let _ = h;
    Err(args)
}

/// `Σ t²` of a flat tensor as a one-element tensor on its device: one pass
/// and no temporary on flex (multi-threaded) and tch (`dot`); elsewhere
/// burn's `powi` and `sum`.
pub(crate) fn sum_of_squares<B: Backend>(t: &Flat<B>) -> Flat<B> {
    #[cfg(feature = "flex")]
    if let Some(t) = (t as &dyn std::any::Any).downcast_ref::<Flat<burn_flex::Flex>>() {
        if let Some(s) = flex::sum_of_squares(t) {
            return cast(s).unwrap_or_else(|_| unreachable!("same backend"));
        }
    }
    #[cfg(feature = "tch")]
    if let Some(t) = (t as &dyn std::any::Any).downcast_ref::<Flat<burn_tch::LibTorch<f32>>>() {
        if let Some(s) = tch::sum_of_squares(t) {
            return cast(s).unwrap_or_else(|_| unreachable!("same backend"));
        }
    }
    t.clone().powi_scalar(2).sum()
}

#[cfg(feature = "flex")]
mod flex {
    use burn::tensor::{DType, Tensor, TensorPrimitive};
    use burn_flex::{Flex, FlexTensor};
    use rayon::prelude::*;

    use super::{AdamWStep, Unfused};

    /// Elements per parallel task: large enough to amortise the task, small
    /// enough to balance a few hundred thousand elements over the cores.
    const CHUNK: usize = 1 << 15;

    pub(super) fn sum_of_squares(t: &Tensor<Flex, 1>) -> Option<Tensor<Flex, 1>> {
        let prim = t.clone().into_primitive().tensor();
        let s: f64 = prim.as_slice::<f32>()?.par_chunks(CHUNK).map(|c| c.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>()).sum();
        Some(Tensor::from_data(burn::tensor::TensorData::new(vec![s as f32], [1]), &t.device()))
    }

    fn contiguous(t: Tensor<Flex, 1>) -> FlexTensor {
        t.into_primitive().tensor().to_contiguous()
    }

    /// The arguments come back, moved, when a tensor is not contiguous
    /// float32: a large `Err` costs nothing here.
    #[allow(clippy::result_large_err)]
    pub(super) fn adamw((p, g, moments): Unfused<Flex>, h: &AdamWStep) -> Result<super::Stepped<Flex>, Unfused<Flex>> {
        let n = p.dims()[0];
        let mut p = contiguous(p);
        let g = contiguous(g);
        let (mut m, mut v) = match moments {
            Some((m, v)) => (contiguous(m), contiguous(v)),
            None => (FlexTensor::zeros([n].into(), DType::F32), FlexTensor::zeros([n].into(), DType::F32)),
        };
        let gs = g.as_slice::<f32>().expect("a contiguous float32 gradient");
        let (ps, ms, vs) = (p.storage_mut::<f32>(), m.storage_mut::<f32>(), v.storage_mut::<f32>());
        let AdamWStep { decay, b1, b2, eps, step_size, bias2_sqrt } = *h;
        let (decay, b1, b2, eps, step_size, bias2_sqrt) =
            (decay as f32, b1 as f32, b2 as f32, eps as f32, step_size as f32, bias2_sqrt as f32);
        let (c1, c2) = (1.0 - b1, 1.0 - b2);
        ps.par_chunks_mut(CHUNK).zip(ms.par_chunks_mut(CHUNK)).zip(vs.par_chunks_mut(CHUNK)).zip(gs.par_chunks(CHUNK)).for_each(
            |(((p, m), v), g)| {
                for i in 0..p.len() {
                    let gi = g[i];
                    let mi = m[i] * b1 + gi * c1;
                    let vi = v[i] * b2 + gi * gi * c2;
                    m[i] = mi;
                    v[i] = vi;
                    p[i] = p[i] * decay - step_size * (mi / (vi.sqrt() / bias2_sqrt + eps));
                }
            },
        );
        let wrap = |t: FlexTensor| Tensor::<Flex, 1>::from_primitive(TensorPrimitive::Float(t));
        Ok((wrap(p), wrap(m), wrap(v)))
    }
}

#[cfg(feature = "tch")]
mod tch {
    use burn::tensor::{DType, Tensor, TensorPrimitive};
    use burn_tch::{LibTorch, TchTensor};

    use super::{AdamWStep, Unfused};

    type T = Tensor<LibTorch<f32>, 1>;

    fn prim(t: T) -> TchTensor {
        t.into_primitive().tensor()
    }

    fn wrap(t: TchTensor) -> T {
        Tensor::from_primitive(TensorPrimitive::Float(t))
    }

    pub(super) fn sum_of_squares(t: &T) -> Option<T> {
        if t.dtype() != DType::F32 {
            return None;
        }
        let prim = t.clone().into_primitive().tensor();
        let s = prim.tensor.f_dot(&prim.tensor).and_then(|s| s.f_reshape([1])).ok()?;
        Some(wrap(TchTensor::new(s)))
    }

    /// torch's `_single_tensor_adamw`, in place: eight passes, one
    /// temporary. Falls back when a tensor shares its storage, since an
    /// in-place update would change the other one too.
    #[allow(clippy::result_large_err)]
    pub(super) fn adamw((p, g, moments): Unfused<LibTorch<f32>>, h: &AdamWStep) -> Result<(T, T, T), Unfused<LibTorch<f32>>> {
        let (mut p, g) = (prim(p), prim(g));
        let (mut m, mut v) = match moments {
            Some((m, v)) => (prim(m), prim(v)),
            None => (TchTensor::new(g.tensor.zeros_like()), TchTensor::new(g.tensor.zeros_like())),
        };
        if !(p.can_mut() && m.can_mut() && v.can_mut()) {
            return Err((wrap(p), wrap(g), Some((wrap(m), wrap(v)))));
        }
        let AdamWStep { decay, b1, b2, eps, step_size, bias2_sqrt } = *h;
        // The in-place calls return another handle to the same storage.
        let done = |r: Result<::tch::Tensor, ::tch::TchError>| {
            if let Err(e) = r {
                panic!("AdamW on libtorch: {e}");
            }
        };
        let fail = |e: ::tch::TchError| panic!("AdamW on libtorch: {e}");
        if decay != 1.0 {
            done(p.tensor.f_mul_scalar_(decay));
        }
        done(m.tensor.f_lerp_(&g.tensor, 1.0 - b1));
        done(v.tensor.f_mul_scalar_(b2));
        let g_scaled = g.tensor.f_mul_scalar(1.0 - b2).unwrap_or_else(fail);
        done(v.tensor.f_addcmul_(&g.tensor, &g_scaled));
        // p − step·m / (√v / √b2 + eps) = p + m / ((√v + eps·√b2) · −1 / (step·√b2))
        let scale = step_size * bias2_sqrt;
        if scale != 0.0 {
            let mut denom = v.tensor.f_sqrt().unwrap_or_else(fail);
            done(denom.f_add_scalar_(eps * bias2_sqrt));
            done(denom.f_mul_scalar_(-1.0 / scale));
            done(p.tensor.f_addcdiv_(&m.tensor, &denom));
        }
        Ok((wrap(p), wrap(m), wrap(v)))
    }
}
