//! selfsup's losses. Each file ports one MMSelfSup (or mmcls) loss file and
//! keeps its name (`mae_loss.rs` ↔ `mmselfsup/models/losses/mae_loss.py`,
//! `reconstruction_loss.rs` (PixelReconstructionLoss), `simmim_loss.rs`,
//! `cosine_similarity_loss.rs`, `cross_correlation_loss.rs`, `swav_loss.rs`
//! (with the Sinkhorn-Knopp of `mmselfsup/utils/distributed_sinkhorn.py`),
//! `cross_entropy_loss.rs` ↔ mmcls's
//! `mmcls/models/losses/cross_entropy_loss.py`, and `label_smooth_loss.rs` ↔
//! mmcls's `label_smooth_loss.py`).
//!
//! Losses are plain functions of tensors (SwAV's also holds its
//! prototypes, as in MMSelfSup); heads own them.
#![warn(missing_docs)]

pub mod beit_loss;
pub mod cae_loss;
pub mod cosine_similarity_loss;
pub mod cross_correlation_loss;
pub mod cross_entropy_loss;
pub mod label_smooth_loss;
pub mod mae_loss;
pub mod reconstruction_loss;
pub mod simmim_loss;
pub mod swav_loss;

pub use beit_loss::BeitLoss;
pub use cae_loss::CaeLoss;
pub use cosine_similarity_loss::CosineSimilarityLoss;
pub use cross_correlation_loss::CrossCorrelationLoss;
pub use cross_entropy_loss::CrossEntropyLossConfig;
pub use label_smooth_loss::LabelSmoothLossConfig;
pub use mae_loss::MaeReconstructionLoss;
pub use reconstruction_loss::{Criterion, PixelReconstructionLoss};
pub use selfsup_layers::l2_normalize;
pub use simmim_loss::SimMimReconstructionLoss;
pub use swav_loss::{sinkhorn, SwAVLoss, SwAVLossConfig, SwAVQueue};
