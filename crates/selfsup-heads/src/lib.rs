//! selfsup's heads. Each file ports MMSelfSup heads and keeps their names
//! (`mae_head.rs` ↔ `mmselfsup/models/heads/mae_head.py`). A head owns its
//! loss, so this crate builds on the losses crate (one layer down), and on
//! the necks crate for the predictor MLPs that MMSelfSup's heads build
//! (`LatentPredictHead`, `MoCoV3Head`); it knows nothing of backbones or
//! algorithms.
#![warn(missing_docs)]

pub mod contrastive;
pub mod mae_head;

pub use contrastive::{
    CeLossConfig, ContrastiveHead, ContrastiveHeadConfig, CosineLossConfig, CrossCorrelationLossConfig, LatentCrossCorrelationHead,
    LatentCrossCorrelationHeadConfig, LatentPredictHead, LatentPredictHeadConfig, MoCoV3Head, MoCoV3HeadConfig, PredictorConfig,
    SwAVHead, SwAVHeadConfig, SwAVLossRegistry,
};
pub use mae_head::{MaeLossConfig, MaePretrainHead, MaePretrainHeadConfig};
