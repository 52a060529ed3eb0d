//! Port of `mmselfsup.models.heads.SwAVHead` (`swav_head.py`), with its
//! `loss` dict ([`SwAVLossRegistry`]).
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_layers::init::InitRng;
use selfsup_losses::{SwAVLoss, SwAVLossConfig, SwAVQueue};
use serde::{Deserialize, Serialize};

selfsup_config::registry! {
    /// `dict(type='SwAVLoss', ...)`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum SwAVLossRegistry {
        /// SwAV's swapped prediction.
        "SwAVLoss" => SwAV(SwAVLossConfig),
    }
}

impl SwAVLossRegistry {
    /// The inner config.
    pub fn get(&self) -> &SwAVLossConfig {
        let SwAVLossRegistry::SwAV(c) = self;
        c
    }
}

/// `dict(type='SwAVHead', loss=dict(type='SwAVLoss', ...))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwAVHeadConfig {
    /// The loss (holds the prototypes).
    pub loss: SwAVLossRegistry,
}

impl SwAVHeadConfig {
    /// Builds the head with normalised prototypes.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> SwAVHead<B> {
        SwAVHead { loss: self.loss.get().init(device, rng) }
    }
}

/// SwAV's head: passes to [`SwAVLoss`]. Key `loss.prototypes.weight`.
#[derive(Module, Debug)]
pub struct SwAVHead<B: Backend> {
    /// The loss and its prototypes.
    pub loss: SwAVLoss<B>,
}

impl<B: Backend> SwAVHead<B> {
    /// See [`SwAVLoss::forward`].
    pub fn forward(&self, z: Tensor<B, 2>, queue: Option<&SwAVQueue<B>>) -> (Tensor<B, 1>, Option<SwAVQueue<B>>) {
        self.loss.forward(z, queue)
    }
}
