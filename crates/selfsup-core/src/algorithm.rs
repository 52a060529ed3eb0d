//! The algorithm trait: MMSelfSup's three forward modes, typed.
use std::collections::BTreeMap;

use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor, TensorData},
};

use crate::{DataPreprocessorConfig, Draws, LossOutput};

/// What MMSelfSup's `data_samples` carry besides the images: masks from
/// mask generators, pseudo-labels, sample indices (memory banks) and labels
/// (evaluation). The loader fills it; algorithms read what they need.
#[derive(Debug, Clone)]
pub struct DataSamples<B: Backend> {
    /// The samples' masks stacked, `[n, h, w]` (`data_sample.mask.value`;
    /// 1 = masked), when the pipeline packs one.
    pub mask: Option<Tensor<B, 3>>,
    /// Pseudo-labels by key (`rot_label`, `patch_label`, ...), stacked along
    /// a new first axis, on the host.
    pub pseudo_label: BTreeMap<String, TensorData>,
    /// Each sample's index in the dataset (`sample_idx`).
    pub sample_idx: Vec<usize>,
    /// Each sample's class (`gt_label`), `None` when unlabelled.
    pub gt_label: Vec<Option<usize>>,
}

impl<B: Backend> Default for DataSamples<B> {
    fn default() -> Self {
        Self { mask: None, pseudo_label: BTreeMap::new(), sample_idx: Vec::new(), gt_label: Vec::new() }
    }
}

/// A batch as an algorithm receives it: MMSelfSup's `inputs`, a list of view
/// tensors `[batch, channels, height, width]` already normalised by the data
/// preprocessor, and the batch's [`DataSamples`].
#[derive(Debug, Clone)]
pub struct SelfSupInputs<B: Backend> {
    /// One tensor per view. Single-view algorithms (MAE) take one.
    pub views: Vec<Tensor<B, 4>>,
    /// Masks, pseudo-labels, indices and labels of the batch's samples.
    pub data_samples: DataSamples<B>,
}

impl<B: Backend> SelfSupInputs<B> {
    /// A batch of `views` without data samples.
    pub fn new(views: Vec<Tensor<B, 4>>) -> Self {
        Self { views, data_samples: DataSamples::default() }
    }

    /// A single-view batch.
    pub fn single(view: Tensor<B, 4>) -> Self {
        Self::new(vec![view])
    }

    /// The same views with `data_samples`.
    pub fn with_data_samples(mut self, data_samples: DataSamples<B>) -> Self {
        self.data_samples = data_samples;
        self
    }

    /// Exactly `count` views, or an error naming the algorithm.
    pub fn expect_views(&self, algorithm: &'static str, count: usize) -> Result<&[Tensor<B, 4>], ModelError> {
        if self.views.len() != count {
            return Err(ModelError::Views { algorithm, expected: count, got: self.views.len() });
        }
        Ok(&self.views)
    }

    /// The first view, or an error naming the algorithm.
    pub fn first_view(&self, algorithm: &'static str) -> Result<&Tensor<B, 4>, ModelError> {
        self.views.first().ok_or(ModelError::Views { algorithm, expected: 1, got: 0 })
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
    /// A data-sample field the algorithm needs is absent or malformed
    /// (pseudo-labels that its pipeline transform makes, sample indices).
    #[error("{algorithm} needs `{field}` in the data samples: {message}")]
    DataSample {
        /// The algorithm's MMSelfSup name.
        algorithm: &'static str,
        /// The field (`rot_label`, `sample_idx`, ...).
        field: String,
        /// What is wrong, and what makes the field.
        message: String,
    },
}

/// A self-supervised algorithm (MMSelfSup's `BaseModel` subclasses).
///
/// `loss` and the other modes take `&self`. What changes between steps
/// changes in [`SelfSupAlgorithm::after_step`], except what PyTorch changes
/// during the forward pass itself: BatchNorm running statistics, and the
/// momentum encoders' copy of them, which MMEngine takes inside `loss()`.
///
/// Everything the runner and the tools ask of an algorithm is a method
/// here; the ones with a default are the ones most algorithms share.
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

    /// The data preprocessor that turns loader batches into `inputs`.
    fn data_preprocessor(&self) -> &DataPreprocessorConfig;

    /// `tensor` mode: the features a downstream user wants.
    fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<Self::Features, ModelError>;

    /// One vector per image for evaluation (kNN, linear probe, extraction):
    /// the cls token after the final norm for ViTs, the average-pooled
    /// last feature map for ResNets. `[batch, dims]`.
    fn global_features(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError>;

    /// `loss` mode: named loss parts, plus the state for `after_step`.
    fn loss(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<(LossOutput<B>, Self::StepState), ModelError>;

    /// `predict` mode: per-sample results.
    fn predict(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<Self::Prediction, ModelError>;

    /// Makes a model ready to train after it was built or loaded (momentum
    /// encoders that were never updated copy the online network, ...).
    /// Idempotent. The default does nothing.
    fn prepare(self) -> Self
    where
        Self: Sized,
    {
        self
    }

    /// Called once after every optimiser step, with the state `loss`
    /// returned. Momentum encoders, queues and memory banks update here.
    fn after_step(self, _state: Self::StepState, _ctx: &StepContext) -> Self
    where
        Self: Sized,
    {
        self
    }
}
