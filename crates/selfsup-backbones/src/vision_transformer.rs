//! mmcls's general `VisionTransformer` (`mmcls/models/backbones/vision_transformer.py`),
//! the ViT that MAE's and MoCo v3's backbones are underneath: its `arch_zoo`
//! (named architectures or a custom dict) and the features it returns.
//!
//! The encoder itself is [`MaeVit`](crate::MaeVit) (`mae_vit.rs`), whose
//! [`forward`](crate::MaeVit::forward) is mmcls's unmasked forward; MoCo v3's
//! ViT ([`MoCoV3VitConfig`](crate::MoCoV3VitConfig)) builds the same module.
use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

/// The four numbers that define a ViT's width and depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VitArchSpec {
    /// Token width.
    pub embed_dims: usize,
    /// Number of transformer layers.
    pub num_layers: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// FFN hidden width.
    pub feedforward_channels: usize,
}

/// `arch`: an mmcls arch name (`"b"`, `"base"`, `"deit-s"`, ...) or a
/// custom `{embed_dims, num_layers, num_heads, feedforward_channels}` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum VitArch {
    /// A name from mmcls's `arch_zoo`.
    Name(String),
    /// Custom dimensions.
    Custom(VitArchSpec),
}

impl Default for VitArch {
    fn default() -> Self {
        VitArch::Name("b".into())
    }
}

const fn spec(embed_dims: usize, num_layers: usize, num_heads: usize, feedforward_channels: usize) -> VitArchSpec {
    VitArchSpec { embed_dims, num_layers, num_heads, feedforward_channels }
}

impl VitArch {
    /// The arch names mmcls knows, for error messages.
    pub const NAMES: &'static [&'static str] = &[
        "s",
        "small",
        "b",
        "base",
        "l",
        "large",
        "h",
        "huge",
        "eva-g",
        "eva-giant",
        "deit-t",
        "deit-tiny",
        "deit-s",
        "deit-small",
        "deit-b",
        "deit-base",
        "mocov3-s",
        "mocov3-small",
    ];

    /// Resolves the arch to its dimensions, as mmcls's `arch_zoo`.
    pub fn spec(&self) -> Result<VitArchSpec, String> {
        match self {
            VitArch::Custom(s) => Ok(*s),
            VitArch::Name(name) => Ok(match name.to_ascii_lowercase().as_str() {
                "s" | "small" => spec(768, 8, 8, 768 * 3),
                "b" | "base" => spec(768, 12, 12, 3072),
                "l" | "large" => spec(1024, 24, 16, 4096),
                "h" | "huge" => spec(1280, 32, 16, 5120),
                "eva-g" | "eva-giant" => spec(1408, 40, 16, 6144),
                "deit-t" | "deit-tiny" => spec(192, 12, 3, 192 * 4),
                "deit-s" | "deit-small" => spec(384, 12, 6, 384 * 4),
                "deit-b" | "deit-base" => spec(768, 12, 12, 768 * 4),
                "mocov3-s" | "mocov3-small" => spec(384, 12, 12, 1536),
                other => return Err(format!("unknown ViT arch `{other}`; expected one of {}", Self::NAMES.join(", "))),
            }),
        }
    }
}

/// Features of the unmasked ViT, as mmcls returns them with
/// `output_cls_token=True`.
#[derive(Debug, Clone)]
pub struct VitFeatures<B: Backend> {
    /// `[batch, embed_dims, h, w]`.
    pub patch_token: Tensor<B, 4>,
    /// `[batch, embed_dims]`, after the final norm.
    pub cls_token: Tensor<B, 2>,
}
