//! selfsup's backbones. Each file ports one MMSelfSup backbone and keeps its
//! name (`mae_vit.rs` ↔ `mmselfsup/models/backbones/mae_vit.py`).
//!
//! Backbones know nothing of necks, heads or algorithms; the algorithms crate
//! composes them.
#![warn(missing_docs)]

pub mod mae_vit;
pub mod mocov3_vit;
pub mod resnet;
pub mod vit_arch;

pub use mae_vit::{MaeEncoderOutput, MaeVit, MaeVitConfig, VitFeatures};
pub use mocov3_vit::MoCoV3VitConfig;
pub use resnet::{ResNet, ResNetConfig, RESNET_KEY_REMAP};
pub use vit_arch::{VitArch, VitArchSpec};
