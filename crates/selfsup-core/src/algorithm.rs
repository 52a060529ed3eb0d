//! The algorithm trait: MMSelfSup's three forward modes, typed.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};

use crate::{Draws, LossOutput};

/// A batch as an algorithm receives it: MMSelfSup's `inputs`, a list of view
/// tensors `[batch, channels, height, width]` already normalised by the data
/// preprocessor, plus optional labels (for evaluation only).
#[derive(Debug, Clone)]
pub struct SelfSupInputs<B: Backend> {
    /// One tensor per view. Single-view algorithms (MAE) take one.
    pub views: Vec<Tensor<B, 4>>,
}

impl<B: Backend> SelfSupInputs<B> {
    /// A single-view batch.
    pub fn single(view: Tensor<B, 4>) -> Self {
        Self { views: vec![view] }
    }

    /// The only view of a single-view batch, or an error naming the algorithm.
    pub fn expect_views(&self, algorithm: &'static str, count: usize) -> Result<&[Tensor<B, 4>], ModelError> {
        if self.views.len() != count {
            return Err(ModelError::Views { algorithm, expected: count, got: self.views.len() });
        }
        Ok(&self.views)
    }
}

/// What the training loop tells an algorithm after each optimiser step.
#[derive(Debug, Clone, Copy)]
pub struct StepContext {
    /// The iteration that just finished, counted from 0.
    pub iter: usize,
    /// The total number of iterations of the run.
    pub max_iters: usize,
    /// The current epoch, counted from 0.
    pub epoch: usize,
}

/// Errors an algorithm reports for inputs that do not fit it.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ModelError {
    /// Wrong number of views.
    #[error("{algorithm} expects {expected} view(s) per batch, got {got}")]
    Views {
        /// The algorithm's MMSelfSup name.
        algorithm: &'static str,
        /// Views it needs.
        expected: usize,
        /// Views it got.
        got: usize,
    },
    /// A view of the wrong shape.
    #[error("{algorithm} expects views of shape {expected}, got {got:?}")]
    Shape {
        /// The algorithm's MMSelfSup name.
        algorithm: &'static str,
        /// The expected shape, in words.
        expected: String,
        /// The shape it got.
        got: Vec<usize>,
    },
}

/// A self-supervised algorithm (MMSelfSup's `BaseModel` subclasses).
///
/// `loss` and the other modes take `&self` and never mutate: state that
/// changes between steps changes in [`SelfSupAlgorithm::after_step`].
pub trait SelfSupAlgorithm<B: Backend>: Module<B> {
    /// What `tensor` mode returns (MMSelfSup's `extract_feat`).
    type Features;
    /// What `predict` mode returns, per sample.
    type Prediction;
    /// State the `loss` mode hands to [`SelfSupAlgorithm::after_step`]
    /// (keys to enqueue, ...). `()` for stateless algorithms.
    type StepState;

    /// MMSelfSup's name for the algorithm (`"MAE"`).
    fn name(&self) -> &'static str;

    /// `tensor` mode: the features a downstream user wants.
    fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<Self::Features, ModelError>;

    /// `loss` mode: named loss parts, plus the state for `after_step`.
    fn loss(
        &self,
        inputs: &SelfSupInputs<B>,
        draws: &mut Draws,
    ) -> Result<(LossOutput<B>, Self::StepState), ModelError>;

    /// `predict` mode: per-sample results.
    fn predict(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<Self::Prediction, ModelError>;

    /// Called once after every optimiser step, with the state `loss`
    /// returned. Momentum encoders, queues and memory banks update here.
    fn after_step(self, _state: Self::StepState, _ctx: &StepContext) -> Self
    where
        Self: Sized,
    {
        self
    }
}
