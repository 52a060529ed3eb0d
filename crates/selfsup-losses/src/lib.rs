//! selfsup's losses. Each file ports MMSelfSup losses and keeps their names
//! (`mae_loss.rs` ↔ `mmselfsup/models/losses/mae_loss.py`).
//!
//! Losses are plain functions of tensors (SwAV's also holds its
//! prototypes, as in MMSelfSup); heads own them.
#![warn(missing_docs)]

pub mod contrastive;
pub mod mae_loss;

pub use contrastive::{
    sinkhorn, CosineSimilarityLoss, CrossCorrelationLoss, CrossEntropyLossConfig, SwAVLoss, SwAVLossConfig, SwAVQueue,
};
pub use selfsup_layers::l2_normalize;
pub use mae_loss::MaeReconstructionLoss;
