//! Pieces the contrastive and siamese algorithms share: the backbone
//! choice, the neck and head registries, config checks, and MMSelfSup's
//! distributed helpers.
//!
//! What MMSelfSup does across devices, and what it is here. Each piece is
//! a collective of [`selfsup_layers::dist`], which is the identity on one
//! device and talks to the other replicas in a data-parallel run:
//! - SimCLR's `GatherLayer` ([`gather_with_grad`]), MoCo v3's and the
//!   queues' `concat_all_gather` ([`gather`]); MoCo v3's labels are offset
//!   by the rank.
//! - MoCo's and DenseCL's `batch_shuffle_ddp` / `batch_unshuffle_ddp`
//!   ([`batch_shuffle`]): they keep BatchNorm from seeing a device's own
//!   positives. On one device the key encoder's BatchNorm sees the whole
//!   batch whatever its order, so both are skipped.
//! - Barlow Twins' all-reduce of the correlation matrix and SwAV's
//!   distributed Sinkhorn: sums over the replicas.
//! - `SyncBN`: burn has none, so each replica's BatchNorm normalises its
//!   own batch, as MMSelfSup's plain `BN` does (MoCo v2's configs use it).
use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, module::adaptive_avg_pool2d, Int, Tensor, TensorData},
};
use selfsup_backbones::{MaeVit, MoCoV3VitConfig, ResNet, ResNetConfig, VitFeatures};
use selfsup_core::{DataPreprocessorConfig, Draws, ModelError, SelfSupInputs};
use selfsup_heads::{ContrastiveHeadConfig, LatentCrossCorrelationHeadConfig, LatentPredictHeadConfig, MoCoV3HeadConfig};
use selfsup_layers::{
    dist,
    init::{fixed, InitRng},
};
use selfsup_necks::{NonLinearNeck, NonLinearNeckConfig};

use crate::ConfigIssue;

selfsup_config::registry! {
    /// The backbone of a contrastive algorithm.
    #[derive(Debug, Clone, PartialEq)]
    pub enum ContrastiveBackboneConfig {
        /// MMSelfSup's ResNet.
        "ResNet" => ResNet(ResNetConfig),
        /// The ResNet on two channels behind a frozen gray + Sobel stem (DeepCluster).
        "ResNetSobel" => ResNetSobel(ResNetConfig),
        /// MoCo v3's ViT (frozen random patch projection, fixed sin-cos positions).
        "MoCoV3ViT" => MoCoV3Vit(MoCoV3VitConfig),
    }
}

impl ContrastiveBackboneConfig {
    /// Checks the config.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        match self {
            Self::ResNet(c) | Self::ResNetSobel(c) => c.validate().map_err(|(k, m)| ConfigIssue::new(format!("backbone.{k}"), m)),
            Self::MoCoV3Vit(c) => c.validate().map(|_| ()).map_err(|(k, m)| ConfigIssue::new(format!("backbone.{k}"), m)),
        }
    }

    /// Width of the features a neck receives (channels of the last map,
    /// or the ViT's embedding width).
    pub fn feat_dim(&self) -> usize {
        match self {
            Self::ResNet(c) | Self::ResNetSobel(c) => c.feat_dim(),
            Self::MoCoV3Vit(c) => c.embed_dims(),
        }
    }

    /// The square input size the backbone needs, when it fixes one.
    pub fn input_size(&self) -> Option<usize> {
        match self {
            Self::ResNet(_) | Self::ResNetSobel(_) => None,
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
            Self::ResNetSobel(c) => Backbone::ResNet(c.init_sobel(device, rng)),
            Self::MoCoV3Vit(c) => Backbone::Vit(c.init(device, rng)),
        }
    }
}

selfsup_config::registry! {
    /// A `NonLinearNeck` dict.
    #[derive(Debug, Clone, PartialEq)]
    pub enum NonLinearNeckRegistry {
        /// MMSelfSup's MLP projection.
        "NonLinearNeck" => NonLinearNeck(NonLinearNeckConfig),
    }
}

impl NonLinearNeckRegistry {
    /// The inner config.
    pub fn get(&self) -> &NonLinearNeckConfig {
        let Self::NonLinearNeck(c) = self;
        c
    }
}

selfsup_config::registry! {
    /// A `ContrastiveHead` dict.
    #[derive(Debug, Clone, PartialEq)]
    pub enum ContrastiveHeadRegistry {
        /// InfoNCE.
        "ContrastiveHead" => ContrastiveHead(ContrastiveHeadConfig),
    }
}

impl ContrastiveHeadRegistry {
    /// The inner config.
    pub fn get(&self) -> &ContrastiveHeadConfig {
        let Self::ContrastiveHead(c) = self;
        c
    }
}

selfsup_config::registry! {
    /// A `LatentPredictHead` dict.
    #[derive(Debug, Clone, PartialEq)]
    pub enum LatentPredictHeadRegistry {
        /// Predictor + cosine loss.
        "LatentPredictHead" => LatentPredict(LatentPredictHeadConfig),
    }
}

selfsup_config::registry! {
    /// A `LatentCrossCorrelationHead` dict.
    #[derive(Debug, Clone, PartialEq)]
    pub enum CrossCorrelationHeadRegistry {
        /// Barlow Twins' head.
        "LatentCrossCorrelationHead" => LatentCrossCorrelation(LatentCrossCorrelationHeadConfig),
    }
}

selfsup_config::registry! {
    /// A `MoCoV3Head` dict.
    #[derive(Debug, Clone, PartialEq)]
    pub enum MoCoV3HeadRegistry {
        /// MoCo v3's head.
        "MoCoV3Head" => MoCoV3(MoCoV3HeadConfig),
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
pub fn check_common(dp: &DataPreprocessorConfig, backbone: &ContrastiveBackboneConfig) -> Result<(), ConfigIssue> {
    dp.validate().map_err(|(k, m)| ConfigIssue::new(format!("data_preprocessor.{k}"), m))?;
    backbone.validate()
}

/// Checks the data preprocessor, the backbone and a `NonLinearNeck`
/// projection (the siamese algorithms' common parts).
pub fn check_projection(
    dp: &DataPreprocessorConfig,
    backbone: &ContrastiveBackboneConfig,
    neck: &NonLinearNeckRegistry,
) -> Result<(), ConfigIssue> {
    check_common(dp, backbone)?;
    check_nonlinear(neck.get(), backbone, "neck")
}

/// Checks a predictor MLP that maps the projection to itself.
pub fn check_predictor(pred: &NonLinearNeckConfig, width: usize, key: &str) -> Result<(), ConfigIssue> {
    pred.validate().map_err(|(k, m)| ConfigIssue::new(format!("{key}.{k}"), m))?;
    if pred.in_channels != width || pred.out_features() != width {
        return Err(ConfigIssue::new(
            format!("{key}.in_channels"),
            format!("the predictor maps {} -> {}; the projection is {width} wide", pred.in_channels, pred.out_features()),
        ));
    }
    if pred.vit_backbone {
        return Err(ConfigIssue::new(format!("{key}.vit_backbone"), "a predictor takes vectors; set false"));
    }
    Ok(())
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

/// MMSelfSup's `concat_all_gather`: every replica's `x` in rank order,
/// no gradient. On one device, `x` detached.
pub fn gather<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    dist::all_gather(x)
}

/// `torch.cat(GatherLayer.apply(x))`: as [`gather`], with the gradient of
/// this replica's rows flowing back to `x`. On one device, `x`.
pub fn gather_with_grad<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    dist::all_gather_with_grad(x)
}

/// How [`batch_shuffle`] dealt the global batch: this replica's rows of
/// `argsort(perm)`, or nothing on one device.
#[derive(Debug, Clone)]
pub struct Unshuffle(Option<Vec<i64>>);

/// MMSelfSup's `batch_shuffle_ddp` (the ShuffleBN of MoCo and DenseCL):
/// the global batch of key images is permuted by rank 0's random
/// permutation (the draw `"batch_shuffle"`, broadcast) and dealt back, so
/// the key encoder's BatchNorm never sees a replica's own positives. On
/// one device BatchNorm sees the whole batch whatever its order, so this
/// is the identity and draws nothing.
pub fn batch_shuffle<B: Backend>(x: Tensor<B, 4>, draws: &mut Draws) -> (Tensor<B, 4>, Unshuffle) {
    let (world, rank) = (dist::world_size(), dist::rank());
    if world == 1 {
        return (x, Unshuffle(None));
    }
    let n = x.dims()[0];
    let device = x.device();
    let all = dist::all_gather(x);
    let noise = draws.uniform("batch_shuffle", n * world);
    let mut perm: Vec<usize> = (0..n * world).collect();
    perm.sort_by(|a, b| noise[*a].total_cmp(&noise[*b]));
    // Rank 0's permutation (exact in float32 below 2²⁴).
    let perm_t = Tensor::<B, 1>::from_data(TensorData::new(perm.iter().map(|p| *p as f32).collect(), [n * world]), &device);
    let perm: Vec<i64> = dist::broadcast(perm_t, 0)
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("data converted to f32 reads as f32")
        .iter()
        .map(|p| *p as i64)
        .collect();
    let mut unshuffle = vec![0i64; perm.len()];
    for (i, p) in perm.iter().enumerate() {
        unshuffle[*p as usize] = i as i64;
    }
    let mine = Tensor::<B, 1, Int>::from_data(TensorData::new(perm[rank * n..(rank + 1) * n].to_vec(), [n]), &device);
    (all.select(0, mine), Unshuffle(Some(unshuffle[rank * n..(rank + 1) * n].to_vec())))
}

/// MMSelfSup's `batch_unshuffle_ddp`: this replica's rows of the gathered
/// `x` in the order of its own images again.
pub fn batch_unshuffle<B: Backend, const D: usize>(x: Tensor<B, D>, unshuffle: &Unshuffle) -> Tensor<B, D> {
    match &unshuffle.0 {
        None => x,
        Some(idx) => {
            let device = x.device();
            let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx.clone(), [idx.len()]), &device);
            dist::all_gather(x).select(0, idx)
        }
    }
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

/// The pseudo-labels `key` of a batch (stacked per sample by the collate), flattened
/// sample-major as MMSelfSup's `torch.flatten(torch.stack(labels))`; `made_by` names the
/// pipeline transform that makes them, for the error.
pub fn pseudo_labels<B: Backend>(
    inputs: &SelfSupInputs<B>,
    key: &str,
    algorithm: &'static str,
    made_by: &str,
    device: &B::Device,
) -> Result<Tensor<B, 1, Int>, ModelError> {
    let err = |message: String| ModelError::DataSample { algorithm, field: key.to_string(), message };
    let data = inputs.data_samples.pseudo_label.get(key).ok_or_else(|| err(format!("absent; `{made_by}` in the pipeline makes it")))?;
    let labels: Vec<i64> = data.clone().convert::<i64>().to_vec::<i64>().map_err(|e| err(format!("{e:?}")))?;
    let n = labels.len();
    Ok(Tensor::from_data(TensorData::new(labels, [n]), device))
}

/// The [`crate::AlgorithmSpec`] methods that every config with a
/// `data_preprocessor` and a `backbone: ContrastiveBackboneConfig` answers
/// the same way.
macro_rules! backbone_spec {
    () => {
        fn data_preprocessor(&self) -> &selfsup_core::DataPreprocessorConfig {
            &self.data_preprocessor
        }

        fn input_size(&self) -> Option<usize> {
            self.backbone.input_size()
        }

        fn has_vit_backbone(&self) -> bool {
            self.backbone.is_vit()
        }
    };
}
pub(crate) use backbone_spec;

/// The [`selfsup_core::SelfSupAlgorithm`] methods that every algorithm
/// with a `backbone: Backbone<B>` and a `data_preprocessor` field answers
/// the same way: its name, the backbone's output on the first view as
/// features and prediction, and its global vector.
macro_rules! backbone_modes {
    ($name:literal) => {
        fn name(&self) -> &'static str {
            $name
        }

        fn data_preprocessor(&self) -> &selfsup_core::DataPreprocessorConfig {
            &self.data_preprocessor
        }

        fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<BackboneOut<B>, ModelError> {
            self.backbone.forward(inputs.first_view($name)?.clone())
        }

        fn global_features(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
            Ok(self.extract_feat(inputs)?.global())
        }

        fn predict(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<BackboneOut<B>, ModelError> {
            self.extract_feat(inputs)
        }
    };
}
pub(crate) use backbone_modes;

/// The batch's sample indices, checked against the bank.
pub fn sample_indices<B: Backend>(inputs: &SelfSupInputs<B>, algorithm: &'static str, len: usize) -> Result<Vec<usize>, ModelError> {
    let idx = &inputs.data_samples.sample_idx;
    let n = inputs.views.first().map_or(0, |v| v.dims()[0]);
    let err = |message: String| ModelError::DataSample { algorithm, field: "sample_idx".into(), message };
    if idx.len() != n {
        return Err(err(format!("{} indices for a batch of {n}; the data loader sets them", idx.len())));
    }
    if let Some(&bad) = idx.iter().find(|&&i| i >= len) {
        return Err(err(format!("index {bad} is past the memory bank's {len} rows; set memory_bank.length to the dataset's length")));
    }
    Ok(idx.clone())
}

/// Every replica's indices, in rank order (MMSelfSup's `all_gather`); on one
/// device, `idx`.
pub fn gather_indices<B: Backend>(idx: Vec<usize>, device: &B::Device) -> Vec<usize> {
    if dist::current().is_none() {
        return idx;
    }
    let n = idx.len();
    let t = Tensor::<B, 2>::from_data(TensorData::new(idx.iter().map(|&i| i as f32).collect::<Vec<_>>(), [n, 1]), device);
    let all = gather(t).into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default();
    all.into_iter().map(|v| v as usize).collect()
}

/// The cross entropy's class weights as the buffer `loss_weight`, `[k]` (DeepCluster
/// and ODC start from the uniform `1/k`).
pub fn class_weights<B: Backend>(weights: Vec<f32>, device: &B::Device) -> Param<Tensor<B, 1>> {
    let k = weights.len();
    fixed(Tensor::from_data(TensorData::new(weights, [k]), device))
}

/// The batch's masks from the pipeline's mask generator (`data_sample.mask`),
/// checked against the `[h, w]` grid the model masks; `made_by` names the
/// transform that makes them, for the error.
pub fn pipeline_mask<B: Backend>(
    inputs: &SelfSupInputs<B>,
    algorithm: &'static str,
    [h, w]: [usize; 2],
    made_by: &str,
) -> Result<Tensor<B, 3>, ModelError> {
    let n = inputs.views.first().map_or(0, |v| v.dims()[0]);
    let err = |message: String| ModelError::DataSample { algorithm, field: "mask".into(), message };
    let mask = inputs.data_samples.mask.as_ref().ok_or_else(|| err(format!("absent; `{made_by}` in the pipeline makes it")))?;
    if mask.dims() != [n, h, w] {
        return Err(err(format!("expected [{n}, {h}, {w}] masks, got {:?}; check `{made_by}`'s sizes", mask.dims())));
    }
    Ok(mask.clone())
}
