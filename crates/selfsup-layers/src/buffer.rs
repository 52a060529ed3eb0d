//! State a PyTorch module keeps outside its `state_dict`: a plain tensor
//! attribute or `register_buffer(..., persistent=False)`.
//!
//! A [`NonPersistent`] tensor lives in the module (on its device, carried
//! through `valid()` and the optimiser untouched) but `selfsup-weights`
//! leaves it out of key inventories, exports and loads by its type name, so
//! MMSelfSup's checkpoints load strictly and ours have MMSelfSup's keys.
//! Whoever needs it across a resume saves it separately (ODC's hook).
use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, Tensor},
};

use crate::init::fixed;

/// A 2-D tensor outside the state dict; never trained.
#[derive(Module, Debug)]
pub struct NonPersistent<B: Backend> {
    /// The tensor.
    pub value: Param<Tensor<B, 2>>,
}

impl<B: Backend> NonPersistent<B> {
    /// Wraps `tensor` (detached, no gradient).
    pub fn new(tensor: Tensor<B, 2>) -> Self {
        Self { value: fixed(tensor) }
    }

    /// The tensor, without gradient.
    pub fn get(&self) -> Tensor<B, 2> {
        self.value.val().detach()
    }
}
