//! selfsup's heads. Each file ports one MMSelfSup head file and keeps its
//! name (`mae_head.rs` ↔ `mmselfsup/models/heads/mae_head.py`,
//! `cls_head.rs`, `contrastive_head.rs`, `latent_heads.rs` (`LatentPredictHead` and
//! `LatentCrossCorrelationHead`), `mocov3_head.rs`, `swav_head.rs`, `maskfeat_head.rs`, `milan_head.rs`, `mixmim_head.rs`, `simmim_head.rs`; mmpretrain's
//! `spark_head.rs` and `itpn_clip_head.rs`; mmcls's `linear_head.rs`, the
//! fine-tuning classifier). A head
//! owns its loss, so this crate builds on the losses crate (one layer down),
//! and on the necks crate for the predictor MLPs that MMSelfSup's heads build
//! (`LatentPredictHead`, `MoCoV3Head`); it knows nothing of backbones or
//! algorithms.
#![warn(missing_docs)]

pub mod beitv1_head;
pub mod beitv2_head;
pub mod cae_head;
pub mod cls_head;
pub mod contrastive_head;
pub mod dino_head;
pub mod itpn_clip_head;
pub mod latent_heads;
pub mod linear_head;
pub mod mae_head;
pub mod maskfeat_head;
pub mod milan_head;
pub mod mixmim_head;
pub mod mocov3_head;
pub mod simmim_head;
pub mod spark_head;
pub mod swav_head;

pub use beitv1_head::{BeitHeadConfig, BeitLossConfig, BeitV1Head};
pub use beitv2_head::BeitV2Head;
pub use cae_head::{CaeHead, CaeHeadConfig, CaeLossConfig};
pub use cls_head::{ClsHead, ClsHeadConfig};
pub use contrastive_head::{CeLossConfig, ContrastiveHead, ContrastiveHeadConfig};
pub use dino_head::{DinoHead, DinoHeadConfig, DinoHeadOutput};
pub use itpn_clip_head::{ITpnClipHead, ITpnClipHeadConfig};
pub use latent_heads::{
    CosineLossConfig, CrossCorrelationLossConfig, LatentCrossCorrelationHead, LatentCrossCorrelationHeadConfig, LatentPredictHead,
    LatentPredictHeadConfig, PredictorConfig,
};
pub use linear_head::{ClsLossConfig, ClsTargets, LinearClsHead, LinearClsHeadConfig};
pub use mae_head::{MaeLossConfig, MaePretrainHead, MaePretrainHeadConfig};
pub use maskfeat_head::{MaskFeatPretrainHead, MaskFeatPretrainHeadConfig, PixelLossConfig};
pub use milan_head::{MilanPretrainHead, MilanPretrainHeadConfig};
pub use mixmim_head::{MixMimPretrainHead, MixMimPretrainHeadConfig};
pub use mocov3_head::{MoCoV3Head, MoCoV3HeadConfig};
pub use simmim_head::{SimMimHead, SimMimHeadConfig, SimMimLossConfig};
pub use spark_head::{SparKPretrainHead, SparKPretrainHeadConfig};
pub use swav_head::{SwAVHead, SwAVHeadConfig, SwAVLossRegistry};
