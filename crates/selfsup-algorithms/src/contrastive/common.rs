//! Pieces every algorithm of the family shares: the backbone choice, the
//! neck registries and the single-device forms of MMSelfSup's distributed
//! helpers.
use burn::{
    module::Module,
    tensor::{backend::Backend, module::adaptive_avg_pool2d, Tensor},
};
use selfsup_backbones::{MaeVit, MoCoV3VitConfig, ResNet, ResNetConfig, VitFeatures};
use selfsup_core::{ModelError, SelfSupInputs};
use selfsup_layers::init::InitRng;
use selfsup_necks::{NonLinearNeck, NonLinearNeckConfig};

use crate::ConfigIssue;

selfsup_config::registry! {
    /// The backbone of a contrastive algorithm.
    #[derive(Debug, Clone, PartialEq)]
    pub enum ContrastiveBackboneConfig {
        /// MMSelfSup's ResNet.
        "ResNet" => ResNet(ResNetConfig),
        /// MoCo v3's ViT (frozen random patch projection, fixed sin-cos positions).
        "MoCoV3ViT" => MoCoV3Vit(MoCoV3VitConfig),
    }
}

impl ContrastiveBackboneConfig {
    /// Checks the config.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        match self {
            Self::ResNet(c) => c.validate().map_err(|(k, m)| ConfigIssue::new(format!("backbone.{k}"), m)),
            Self::MoCoV3Vit(c) => c.validate().map(|_| ()).map_err(|(k, m)| ConfigIssue::new(format!("backbone.{k}"), m)),
        }
    }

    /// Width of the features a neck receives (channels of the last map,
    /// or the ViT's embedding width).
    pub fn feat_dim(&self) -> usize {
        match self {
            Self::ResNet(c) => c.feat_dim(),
            Self::MoCoV3Vit(c) => c.embed_dims(),
        }
    }

    /// The square input size the backbone needs, when it fixes one.
    pub fn input_size(&self) -> Option<usize> {
        match self {
            Self::ResNet(_) => None,
            Self::MoCoV3Vit(c) => Some(c.img_size),
        }
    }

    /// Whether this is a ViT.
    pub fn is_vit(&self) -> bool {
        matches!(self, Self::MoCoV3Vit(_))
    }

    /// Builds the backbone.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> Backbone<B> {
        match self {
            Self::ResNet(c) => Backbone::ResNet(c.init(device, rng)),
            Self::MoCoV3Vit(c) => Backbone::Vit(c.init(device, rng)),
        }
    }
}

/// A built backbone. Keys are the inner backbone's.
#[derive(Module, Debug)]
pub enum Backbone<B: Backend> {
    /// ResNet.
    ResNet(ResNet<B>),
    /// A ViT (MoCo v3).
    Vit(MaeVit<B>),
}

/// What a backbone gives its neck.
#[derive(Debug, Clone)]
pub enum BackboneOut<B: Backend> {
    /// The last ResNet feature map, `[n, c, h, w]`.
    Map(Tensor<B, 4>),
    /// A ViT's patch and cls tokens.
    Vit(VitFeatures<B>),
}

impl<B: Backend> BackboneOut<B> {
    /// Global features for evaluation: the pooled map or the cls token.
    pub fn global(self) -> Tensor<B, 2> {
        match self {
            BackboneOut::Map(x) => adaptive_avg_pool2d(x, [1, 1]).flatten::<2>(1, 3),
            BackboneOut::Vit(f) => f.cls_token,
        }
    }

    /// The feature map (for a ViT, its patch tokens as a map).
    pub fn map(self) -> Tensor<B, 4> {
        match self {
            BackboneOut::Map(x) => x,
            BackboneOut::Vit(f) => f.patch_token,
        }
    }
}

impl<B: Backend> Backbone<B> {
    /// The backbone's output for its neck.
    pub fn forward(&self, x: Tensor<B, 4>) -> Result<BackboneOut<B>, ModelError> {
        match self {
            Backbone::ResNet(r) => Ok(BackboneOut::Map(r.forward_last(x)?)),
            Backbone::Vit(v) => Ok(BackboneOut::Vit(v.forward(x)?)),
        }
    }
}

/// `NonLinearNeck` on a backbone output: the cls token with `vit_backbone`,
/// else the (pooled) map.
pub fn project<B: Backend>(neck: &NonLinearNeck<B>, out: BackboneOut<B>) -> Tensor<B, 2> {
    match out {
        BackboneOut::Vit(f) if neck.vit_backbone() => neck.forward(f.cls_token),
        other => neck.forward_map(other.map()),
    }
}

/// Checks the parts every algorithm of the family has: the data
/// preprocessor and the backbone.
pub fn check_common(dp: &selfsup_core::DataPreprocessorConfig, backbone: &ContrastiveBackboneConfig) -> Result<(), ConfigIssue> {
    dp.validate().map_err(|(k, m)| ConfigIssue::new(format!("data_preprocessor.{k}"), m))?;
    backbone.validate()
}

/// Checks a `NonLinearNeck` against the backbone.
pub fn check_nonlinear(neck: &NonLinearNeckConfig, backbone: &ContrastiveBackboneConfig, key: &str) -> Result<(), ConfigIssue> {
    neck.validate().map_err(|(k, m)| ConfigIssue::new(format!("{key}.{k}"), m))?;
    if neck.in_channels != backbone.feat_dim() {
        return Err(ConfigIssue::new(
            format!("{key}.in_channels"),
            format!("{} does not match the backbone's output width {}", neck.in_channels, backbone.feat_dim()),
        ));
    }
    if backbone.is_vit() != neck.vit_backbone {
        return Err(ConfigIssue::new(format!("{key}.vit_backbone"), format!("must be {} for this backbone", backbone.is_vit())));
    }
    Ok(())
}

/// MMSelfSup's `GatherLayer` / `concat_all_gather` on one device: the
/// local batch. Data-parallel training replaces this function.
pub fn gather<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    x
}

/// Exactly `count` views of the same shape, or an error saying what the
/// algorithm expects.
pub fn expect_pair<'a, B: Backend>(inputs: &'a SelfSupInputs<B>, algorithm: &'static str) -> Result<&'a [Tensor<B, 4>], ModelError> {
    let views = inputs.expect_views(algorithm, 2)?;
    if views[0].dims() != views[1].dims() {
        return Err(ModelError::Shape {
            algorithm,
            expected: format!("both views of shape {:?}", views[0].dims()),
            got: views[1].dims().to_vec(),
        });
    }
    Ok(views)
}
