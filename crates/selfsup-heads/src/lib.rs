//! selfsup's heads. Each file ports one MMSelfSup head and keeps its name
//! (`mae_head.rs` ↔ `mmselfsup/models/heads/mae_head.py`). A head owns its
//! loss, so this crate builds on the losses crate (one layer down); it knows
//! nothing of backbones, necks or algorithms.
#![warn(missing_docs)]

pub mod mae_head;

pub use mae_head::{MaeLossConfig, MaePretrainHead, MaePretrainHeadConfig};
