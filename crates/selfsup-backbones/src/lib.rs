//! selfsup's backbones. Each file ports one MMSelfSup (or mmcls) backbone and
//! keeps its name (`mae_vit.rs` ↔ `mmselfsup/models/backbones/mae_vit.py`,
//! `mocov3_vit.rs`, `maskfeat_vit.rs`, `milan_vit.rs`, `simmim_swin.rs`, `resnet.rs`;
//! `mixmim_backbone.rs`; mmpretrain's `sparse_resnet.rs` (SparK), `hivit.rs` and
//! `itpn_hivit.rs` (iTPN); `swin_transformer.rs` and `mixmim.rs` ↔ mmcls's
//! Swin and MixMIM blocks and arch tables); `vision_transformer.rs` ↔ mmcls's
//! `vision_transformer.py` holds the ViT arch table and the unmasked ViT's
//! output, which MAE's and MoCo v3's ViTs share.
//!
//! Backbones know nothing of necks, heads or algorithms; the algorithms crate
//! composes them.
#![warn(missing_docs)]

pub mod beit_vit;
pub mod cae_vit;
pub mod hivit;
pub mod itpn_hivit;
pub mod mae_vit;
pub mod maskfeat_vit;
pub mod milan_vit;
pub mod mixmim;
pub mod mixmim_backbone;
pub mod mocov3_vit;
pub mod resnet;
pub mod simmim_swin;
pub mod sparse_resnet;
pub mod swin_transformer;
pub mod vision_transformer;

pub use beit_vit::{BeitVit, BeitVitConfig};
pub use cae_vit::{CaeVit, CaeVitConfig};
pub use hivit::{HiVit, HiVitArch, HiVitConfig};
pub use itpn_hivit::{ITpnHiVit, ITpnHiVitConfig};
pub use mae_vit::{MaeEncoderOutput, MaeVit, MaeVitConfig};
pub use maskfeat_vit::{MaskFeatVit, MaskFeatVitConfig};
pub use milan_vit::{MilanEncoderOutput, MilanVit, MilanVitConfig};
pub use mixmim_backbone::{MixMimMasks, MixMimTransformerPretrain, MixMimTransformerPretrainConfig};
pub use mocov3_vit::MoCoV3VitConfig;
pub use resnet::{ResNet, ResNetConfig, RESNET_KEY_REMAP};
pub use simmim_swin::{SimMimSwinTransformer, SimMimSwinTransformerConfig};
pub use sparse_resnet::{SparseResNet, SparseResNetConfig};
pub use swin_transformer::{SwinArch, SwinArchSpec};
pub use vision_transformer::{VisionTransformer, VisionTransformerConfig, VitArch, VitArchSpec, VitFeatures};
