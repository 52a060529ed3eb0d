//! selfsup's losses. Each file ports one MMSelfSup loss and keeps its name
//! (`mae_loss.rs` ↔ `mmselfsup/models/losses/mae_loss.py`).
//!
//! Losses are plain functions of tensors; heads own them.
#![warn(missing_docs)]

pub mod mae_loss;

pub use mae_loss::MaeReconstructionLoss;
