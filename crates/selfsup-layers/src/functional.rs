//! Small tensor functions PyTorch has and burn lacks.
use burn::tensor::{backend::Backend, Tensor};

/// `F.normalize(x, dim=dim)`: `x / max(‖x‖₂, 1e-12)` along `dim`.
pub fn l2_normalize<B: Backend, const D: usize>(x: Tensor<B, D>, dim: usize) -> Tensor<B, D> {
    let norm = x.clone().powi_scalar(2).sum_dim(dim).sqrt().clamp_min(1e-12);
    x / norm
}
