//! Port of mmcls's `Mixup` (`mmcls/models/utils/batch_augments/mixup.py`,
//! 1.0.0rc6): each image and its scores blended with another sample's,
//! `λ·x + (1 − λ)·x[perm]`, with `λ ~ Beta(α, α)` (the draw
//! `mixup_lambda`) and a random permutation of the batch (the draw
//! `mixup_index`).
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use selfsup_core::Draws;
use serde::{Deserialize, Serialize};

/// `dict(type='Mixup', alpha)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixupConfig {
    /// `α` of the `Beta(α, α)` mixing ratio.
    pub alpha: f64,
}

impl MixupConfig {
    /// Checks `alpha`; `(key, message)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.alpha > 0.0 && self.alpha.is_finite()) {
            return Err(("alpha", format!("must be positive, got {}", self.alpha)));
        }
        Ok(())
    }

    /// Mixes a batch and its `[n, classes]` scores.
    pub fn mix<B: Backend>(&self, x: Tensor<B, 4>, scores: Tensor<B, 2>, draws: &mut Draws) -> (Tensor<B, 4>, Tensor<B, 2>) {
        let lam = draws.beta("mixup_lambda", self.alpha, self.alpha);
        let index = permutation::<B>(draws, "mixup_index", x.dims()[0], &x.device());
        let mixed = x.clone().mul_scalar(lam) + x.select(0, index.clone()).mul_scalar(1.0 - lam);
        (mixed, mix_scores(scores, lam, index))
    }
}

/// `torch.randperm(n)` as the draw `name` (replayable: the indices).
pub(crate) fn permutation<B: Backend>(draws: &mut Draws, name: &str, n: usize, device: &B::Device) -> Tensor<B, 1, Int> {
    let order = draws.weighted_permutation(name, &vec![1.0; n], 1);
    Tensor::from_data(TensorData::new(order, [n]), device)
}

/// `λ·s + (1 − λ)·s[index]`.
pub(crate) fn mix_scores<B: Backend>(scores: Tensor<B, 2>, lam: f64, index: Tensor<B, 1, Int>) -> Tensor<B, 2> {
    scores.clone().mul_scalar(lam) + scores.select(0, index).mul_scalar(1.0 - lam)
}
