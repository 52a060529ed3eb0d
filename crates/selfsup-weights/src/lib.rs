//! Checkpoint interop for selfsup.
//!
//! - Reads MMSelfSup `.pth` checkpoints (their `state_dict`, MMSelfSup key
//!   names) and safetensors files into a [`StateDict`].
//! - Loads a state dict into any burn module whose field names are the
//!   PyTorch attribute names, strictly by default: missing keys, unexpected
//!   keys and shape mismatches are reported in PyTorch names and layouts
//!   ([`LoadReport`]). A prefix (`backbone.`) selects and strips a sub-tree
//!   for downstream use.
//! - Exports a module's state dict with PyTorch key names and layouts
//!   (Linear weights `[out, in]`, norm `weight`/`bias`) to safetensors, so
//!   PyTorch users can load ours. Writes are atomic.
//!
//! Key differences that PyTorch's `nn.Sequential` leaves (`ffn.layers.0.0`)
//! are bridged by [`KeyMap`] rows that each component publishes.
//!
//! This crate knows no model: callers pass the module and its key map.
#![warn(missing_docs)]

mod keymap;
mod state_dict;

pub use keymap::KeyMap;
pub use state_dict::{
    export_state_dict, load_into, model_keys, read_checkpoint, remove_orphaned_temporaries, write_atomic, write_safetensors, LoadOptions,
    LoadReport, StateDict, Tensor, WeightsError,
};
