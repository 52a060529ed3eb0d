//! Loss outputs with named parts, as MMSelfSup's loss dicts.
use burn::tensor::{backend::Backend, Tensor};

/// The output of an algorithm's `loss` mode: named scalar parts.
///
/// As MMEngine's `parse_losses` does, only the parts whose name contains
/// `"loss"` are summed into the total that is back-propagated; the others are
/// logged only.
#[derive(Debug, Clone)]
pub struct LossOutput<B: Backend> {
    parts: Vec<(String, Tensor<B, 1>)>,
}

impl<B: Backend> Default for LossOutput<B> {
    fn default() -> Self {
        Self { parts: Vec::new() }
    }
}

impl<B: Backend> LossOutput<B> {
    /// An empty output.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a part (a scalar, shape `[1]`).
    pub fn with(mut self, name: impl Into<String>, value: Tensor<B, 1>) -> Self {
        self.push(name, value);
        self
    }

    /// Adds a part in place.
    pub fn push(&mut self, name: impl Into<String>, value: Tensor<B, 1>) {
        self.parts.push((name.into(), value));
    }

    /// The parts, in insertion order.
    pub fn parts(&self) -> &[(String, Tensor<B, 1>)] {
        &self.parts
    }

    /// The part called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor<B, 1>> {
        self.parts.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The sum of the parts whose name contains `"loss"` (MMEngine's
    /// `parse_losses`). `None` when no part is a loss.
    pub fn total(&self) -> Option<Tensor<B, 1>> {
        self.parts.iter().filter(|(n, _)| n.contains("loss")).map(|(_, t)| t.clone()).reduce(|a, b| a + b)
    }

    /// Every part read back to the host, for logging.
    pub fn to_f64(&self) -> Vec<(String, f64)> {
        self.parts.iter().map(|(n, t)| (n.clone(), t.clone().into_scalar().elem::<f64>())).collect()
    }
}

use burn::tensor::ElementConversion;
