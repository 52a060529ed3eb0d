//! Mixed precision as `torch.autocast` does it, for burn 0.21, which has no
//! autocast: while an [`autocast`] guard is alive on a thread, the
//! matrix products of selfsup's layers ([`crate::functional::linear`],
//! [`crate::functional::matmul`], [`crate::functional::conv2d`]) cast their
//! operands to the low-precision dtype, multiply there, and cast the result
//! back to the input's dtype. Everything else (norms, softmax, losses,
//! element-wise arithmetic) stays in float32, as in autocast's float32
//! list, and the parameters stay float32 masters: the casts are recorded by
//! autodiff, so gradients come back float32.
//!
//! Unlike PyTorch, activations between products are float32, not float16,
//! so memory traffic is that of a float32 run; the products, where the
//! time goes, run on the low-precision units. MMEngine's `AmpOptimWrapper`
//! (`selfsup-train`) opens the guard around the forward pass and scales the
//! loss for float16.
use std::cell::Cell;

use burn::tensor::{backend::Backend, FloatDType, Tensor};

thread_local! {
    static AUTOCAST: Cell<Option<FloatDType>> = const { Cell::new(None) };
}

/// Restores the previous autocast state when dropped.
#[derive(Debug)]
#[must_use = "autocast ends when the guard is dropped"]
pub struct AutocastGuard {
    previous: Option<FloatDType>,
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        AUTOCAST.with(|c| c.set(self.previous));
    }
}

/// Runs the products of this thread in `dtype` (`None`: full precision)
/// until the guard drops; guards nest.
pub fn autocast(dtype: Option<FloatDType>) -> AutocastGuard {
    AutocastGuard { previous: AUTOCAST.with(|c| c.replace(dtype)) }
}

/// The dtype products run in on this thread, if autocast is on.
pub fn autocast_dtype() -> Option<FloatDType> {
    AUTOCAST.with(Cell::get)
}

/// Runs `f` on its operands cast to the autocast dtype and casts its
/// result back to the dtype of `like`; calls `f` unchanged when autocast is
/// off or `like` already has that dtype.
pub(crate) fn cast_op<B: Backend, const D: usize, T>(
    like: &Tensor<B, D>,
    operands: T,
    cast: impl FnOnce(T, FloatDType) -> T,
    f: impl FnOnce(T) -> Tensor<B, D>,
) -> Tensor<B, D> {
    match autocast_dtype() {
        Some(low) if FloatDType::from(like.dtype()) != low => {
            let full = FloatDType::from(like.dtype());
            f(cast(operands, low)).cast(full)
        }
        _ => f(operands),
    }
}
