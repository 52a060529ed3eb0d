//! What the burn-flex kernels that multiply matrices share: `gemm` called
//! through raw pointers and strides, a pointer the parallel tasks share, and
//! float32 tensors made from the vectors they fill.
use burn::tensor::{Shape, TensorData};
use burn_flex::FlexTensor;

/// A raw pointer the tasks share; each writes a disjoint block through it.
#[derive(Clone, Copy)]
pub(super) struct SharedPtr(pub(super) *mut f32);
// SAFETY: every user writes disjoint blocks from its tasks.
unsafe impl Send for SharedPtr {}
unsafe impl Sync for SharedPtr {}

impl SharedPtr {
    /// The pointer (a method, so closures capture the `Send` wrapper whole).
    pub(super) fn get(self) -> *mut f32 {
        self.0
    }
}

/// How a product treats what `dst` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dst {
    /// `dst = beta · lhs · rhs`.
    Overwrite,
    /// `dst += beta · lhs · rhs`.
    Accumulate,
}

/// `dst[m×n] (=|+=) beta · lhs[m×k] · rhs[k×n]`, each matrix given by its
/// pointer and (row, column) strides; on the calling thread unless
/// `parallel`, then on rayon's pool.
///
/// # Safety
/// The pointers must address every element their strides reach, and no
/// other thread may write what `dst` addresses.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    (d_rs, d_cs): (usize, usize),
    lhs: *const f32,
    (l_rs, l_cs): (usize, usize),
    rhs: *const f32,
    (r_rs, r_cs): (usize, usize),
    beta: f32,
    mode: Dst,
    parallel: bool,
) {
    let s = |v: usize| v as isize;
    let parallelism = if parallel { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    let accumulate = mode == Dst::Accumulate;
    gemm::gemm(
        m,
        n,
        k,
        dst,
        s(d_cs),
        s(d_rs),
        accumulate,
        lhs,
        s(l_cs),
        s(l_rs),
        rhs,
        s(r_cs),
        s(r_rs),
        if accumulate { 1.0 } else { 0.0 },
        beta,
        false,
        false,
        false,
        parallelism,
    );
}

/// A contiguous float32 tensor holding `values` (no copy).
pub(super) fn tensor(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, Shape::from(shape)))
}
