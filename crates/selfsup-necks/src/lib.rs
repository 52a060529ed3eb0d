//! selfsup's necks. Each file ports one MMSelfSup neck and keeps its name
//! (`mae_neck.rs` ↔ `mmselfsup/models/necks/mae_neck.py`).
//!
//! Necks know nothing of backbones, heads or algorithms.
#![warn(missing_docs)]

pub mod mae_neck;

pub use mae_neck::{MaePretrainDecoder, MaePretrainDecoderConfig};
