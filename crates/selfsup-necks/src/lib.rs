//! selfsup's necks. Each file ports one MMSelfSup neck file and keeps its name
//! (`linear_neck.rs` ↔ `mmselfsup/models/necks/linear_neck.py`,
//! `nonlinear_neck.rs`, `mocov2_neck.rs`, `densecl_neck.rs`, `swav_neck.rs`,
//! `relative_loc_neck.rs`, `avgpool_neck.rs`, `simmim_neck.rs`, `mixmim_neck.rs`,
//! `milan_neck.rs`; mmpretrain's `spark_neck.rs` and `itpn_neck.rs`; mmcls's
//! `gap.rs` (`GlobalAveragePooling`, the ResNet classifier's neck);
//! `mae_neck.rs` holds both classes of `mae_neck.py`, `MAEPretrainDecoder`
//! and `ClsBatchNormNeck`). `common.rs` holds the helpers the projection
//! necks share and their `nn.Sequential` key rows ([`NECK_KEY_REMAP`]).
//!
//! Necks know nothing of backbones, heads or algorithms.
#![warn(missing_docs)]

pub mod avgpool_neck;
pub mod beitv2_neck;
pub mod cae_neck;
mod common;
pub mod densecl_neck;
pub mod dino_neck;
pub mod gap;
pub mod itpn_neck;
pub mod linear_neck;
pub mod mae_neck;
pub mod milan_neck;
pub mod mixmim_neck;
pub mod mocov2_neck;
pub mod nonlinear_neck;
pub mod odc_neck;
pub mod relative_loc_neck;
pub mod simmim_neck;
pub mod spark_neck;
pub mod swav_neck;

pub use avgpool_neck::{AvgPool2dNeck, AvgPool2dNeckConfig};
pub use beitv2_neck::{BeitV2Neck, BeitV2NeckArch, BeitV2NeckConfig};
pub use cae_neck::{CaeNeck, CaeNeckConfig, CaeNeckOutput};
pub use common::NECK_KEY_REMAP;
pub use densecl_neck::{ConvMlp, DenseCLNeck, DenseCLNeckConfig, DenseCLNeckOutput};
pub use dino_neck::{DinoMlp, DinoNeck, DinoNeckConfig, WeightNormLinear};
pub use gap::{GlobalAveragePooling, GlobalAveragePoolingConfig};
pub use itpn_neck::{ITpnPretrainDecoder, ITpnPretrainDecoderConfig, ITPN_NECK_KEY_REMAP};
pub use linear_neck::{LinearNeck, LinearNeckConfig};
pub use mae_neck::{ClsBatchNormNeck, ClsBatchNormNeckConfig, MaePretrainDecoder, MaePretrainDecoderConfig};
pub use milan_neck::{MilanPretrainDecoder, MilanPretrainDecoderConfig};
pub use mixmim_neck::{MixMimPretrainDecoder, MixMimPretrainDecoderConfig};
pub use mocov2_neck::{Mlp, MoCoV2Neck, MoCoV2NeckConfig};
pub use nonlinear_neck::{NonLinearNeck, NonLinearNeckConfig, NONLINEAR_KEY_REMAP};
pub use odc_neck::{ODCNeck, ODCNeckConfig};
pub use relative_loc_neck::{RelativeLocNeck, RelativeLocNeckConfig};
pub use simmim_neck::{pixel_shuffle, SimMimNeck, SimMimNeckConfig};
pub use spark_neck::{SparKLightDecoder, SparKLightDecoderConfig};
pub use swav_neck::{SwAVNeck, SwAVNeckConfig, SwAVProjection, NECK_KEY_ALIASES};
