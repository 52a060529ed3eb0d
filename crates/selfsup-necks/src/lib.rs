//! selfsup's necks. Each file ports MMSelfSup necks and keeps their names
//! (`mae_neck.rs` ↔ `mmselfsup/models/necks/mae_neck.py`; `contrastive.rs`
//! holds `linear_neck.py`, `nonlinear_neck.py`, `mocov2_neck.py`,
//! `densecl_neck.py` and `swav_neck.py`).
//!
//! Necks know nothing of backbones, heads or algorithms.
#![warn(missing_docs)]

pub mod contrastive;
pub mod mae_neck;

pub use contrastive::{
    ConvMlp, DenseCLNeck, DenseCLNeckConfig, DenseCLNeckOutput, LinearNeck, LinearNeckConfig, Mlp, MoCoV2Neck,
    MoCoV2NeckConfig, NonLinearNeck, NonLinearNeckConfig, SwAVNeck, SwAVNeckConfig, SwAVProjection, NECK_KEY_ALIASES,
    NECK_KEY_REMAP, NONLINEAR_KEY_REMAP,
};
pub use mae_neck::{ClsBatchNormNeck, ClsBatchNormNeckConfig, MaePretrainDecoder, MaePretrainDecoderConfig};
