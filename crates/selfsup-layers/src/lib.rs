//! Shared building blocks of selfsup's backbones and necks: the mmcls/mmcv
//! transformer layer (fused `qkv` attention, FFN), patch embedding, fixed
//! 2-D sin-cos position embeddings and MMSelfSup's initialisers.
//!
//! Field names are the PyTorch attribute names, so checkpoint keys match
//! MMSelfSup's; where `nn.Sequential` leaves index names, the remap rows sit
//! next to the component ([`transformer::FFN_KEY_REMAP`]).
//!
//! This crate holds no backbone, neck or algorithm.
#![warn(missing_docs)]

pub mod amp;
pub mod attention;
pub mod batch_norm;
pub mod beit;
pub mod buffer;
pub mod dist;
pub mod functional;
pub mod fused;
pub mod hivit;
pub mod init;
pub mod norm;
pub mod patch_embed;
pub mod pos_embed;
pub mod sobel;
pub mod sparse_modules;
pub mod transformer;
pub mod transformer_blocks;

pub use attention::{BeitAttention, MultiheadAttention, ShiftWindowMsa, WindowMsa};
pub use batch_norm::{BatchNormCfg, TorchBatchNorm};
pub use beit::{BeitLayerConfig, BeitTransformerEncoderLayer, QkvBias, RelativePositionBias};
pub use functional::l2_normalize;
pub use norm::{LayerNorm, NormCfg};
pub use patch_embed::{NormedPatchEmbed, PatchEmbed, PatchMerging};
pub use pos_embed::{build_2d_sincos_position_embedding, resize_pos_embed};
pub use transformer::{Ffn, TransformerEncoderLayer, TransformerEncoderLayerConfig};
