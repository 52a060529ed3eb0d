//! selfsup's algorithms: the one crate that composes backbones, necks, heads,
//! memories and target generators. Each file ports one MMSelfSup algorithm
//! and is named after its Python file (`byol.rs` ↔
//! `mmselfsup/models/algorithms/byol.py`); `common.rs` holds what the
//! contrastive family shares.
//!
//! The list below is the registry: [`AlgorithmConfig`] (the `model.type`
//! names), [`Algorithm`] (the module enum for tools that pick the algorithm
//! from a config file) and their companions are generated from it, and it
//! declares each algorithm's module. Adding an algorithm is its file (a
//! config implementing [`AlgorithmSpec`], a module implementing
//! [`selfsup_core::SelfSupAlgorithm`]) and one line here. Code that knows
//! its algorithm uses the concrete type ([`Mae`]).
#![warn(missing_docs)]

pub mod batch_augments;
pub mod common;
mod registry;
pub mod target_generator_weights;

pub use common::{Backbone, BackboneOut, ContrastiveBackboneConfig};
pub use mae::MaePrediction;
pub use maskfeat::MaskFeatPrediction;
pub use registry::{AlgorithmSpec, ConfigIssue};
pub use simmim::SimMimPrediction;
pub use swav::SwAVQueueState;
pub use target_generator_weights::LoadPretrained;

algorithms! {
    /// Masked autoencoder.
    "MAE" => Mae(MaeConfig, Mae) in mae,
    /// SimCLR.
    "SimCLR" => SimClr(SimClrConfig, SimClr) in simclr,
    /// MoCo v1 and v2.
    "MoCo" => MoCo(MoCoConfig, MoCo) in moco,
    /// MoCo v3.
    "MoCoV3" => MoCoV3(MoCoV3Config, MoCoV3) in mocov3,
    /// BYOL.
    "BYOL" => Byol(ByolConfig, Byol) in byol,
    /// SimSiam.
    "SimSiam" => SimSiam(SimSiamConfig, SimSiam) in simsiam,
    /// Barlow Twins.
    "BarlowTwins" => BarlowTwins(BarlowTwinsConfig, BarlowTwins) in barlowtwins,
    /// DenseCL.
    "DenseCL" => DenseCl(DenseClConfig, DenseCl) in densecl,
    /// SwAV.
    "SwAV" => SwAV(SwAVConfig, SwAV) in swav,
    /// Rotation prediction.
    "RotationPred" => RotationPred(RotationPredConfig, RotationPred) in rotation_pred,
    /// Relative patch location.
    "RelativeLoc" => RelativeLoc(RelativeLocConfig, RelativeLoc) in relative_loc,
    /// Non-parametric instance discrimination.
    "NPID" => Npid(NpidConfig, Npid) in npid,
    /// DeepCluster.
    "DeepCluster" => DeepCluster(DeepClusterConfig, DeepCluster) in deepcluster,
    /// Online deep clustering.
    "ODC" => Odc(OdcConfig, Odc) in odc,
    /// MaskFeat.
    "MaskFeat" => MaskFeat(MaskFeatConfig, MaskFeat) in maskfeat,
    /// PixMIM.
    "PixMIM" => PixMim(PixMimConfig, PixMim) in pixmim,
    /// SimMIM.
    "SimMIM" => SimMim(SimMimConfig, SimMim) in simmim,
    /// MixMIM.
    "MixMIM" => MixMim(MixMimConfig, MixMim) in mixmim,
    /// BEiT v1 and v2.
    "BEiT" => Beit(BeitConfig, Beit) in beit,
    /// Context autoencoder.
    "CAE" => Cae(CaeConfig, Cae) in cae,
    /// MILAN.
    "MILAN" => Milan(MilanConfig, Milan) in milan,
    /// EVA (MAE-style).
    "EVA" => Eva(EvaConfig, Eva) in eva,
    /// DINO (mmpretrain's project).
    "DINO" => Dino(DinoConfig, Dino) in dino,
    /// SparK (mmpretrain).
    "SparK" => SparK(SparKConfig, SparK) in spark,
    /// iTPN (mmpretrain).
    "iTPN" => ITpn(ITpnConfig, ITpn) in itpn,
    /// mmcls's classifier, for fine-tuning pre-trained backbones.
    "ImageClassifier" => ImageClassifier(ImageClassifierConfig, ImageClassifier) in image,
}

/// What the `algorithms!` macro names, for crates that invoke it.
#[doc(hidden)]
pub mod __private {
    pub use burn;
    pub use selfsup_config;
    pub use selfsup_core;
    pub use selfsup_layers;
}

/// Rows that map MMSelfSup checkpoint keys to selfsup field paths and back
/// (`(pytorch_pattern, ours, ours_pattern, pytorch)`), for every component
/// the algorithms use. Feed them to `selfsup_weights::KeyMap::rows`.
pub fn key_map_rows() -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
    // HiViT's `mlp.fc1` rows come before the necks' `mlp.0` rows, which
    // name theirs `mlp.fc1` (KeyMap applies rows in order, and in reverse
    // order back to PyTorch).
    let mut rows = selfsup_layers::hivit::HIVIT_KEY_REMAP.to_vec();
    rows.extend_from_slice(selfsup_layers::transformer::FFN_KEY_REMAP);
    rows.extend_from_slice(selfsup_backbones::RESNET_KEY_REMAP);
    rows.extend_from_slice(selfsup_necks::NECK_KEY_REMAP);
    rows.extend_from_slice(selfsup_necks::ITPN_NECK_KEY_REMAP);
    rows.extend_from_slice(selfsup_necks::NONLINEAR_KEY_REMAP);
    rows.extend_from_slice(QUEUE_KEY_REMAP);
    rows.extend_from_slice(selfsup_target_generators::DALLE_KEY_REMAP);
    rows.extend_from_slice(selfsup_target_generators::VQKD_KEY_REMAP);
    rows
}

/// MoCo's and DenseCL's queues are buffers of the algorithm itself
/// (`queue`, `queue_ptr`, `queue2`, `queue2_ptr`); ours live in `memory`
/// and `memory2`.
const QUEUE_KEY_REMAP: &[(&str, &str, &str, &str)] = &[
    (r"^queue(_ptr)?$", "memory.queue${1}", r"^memory\.queue(_ptr)?$", "queue${1}"),
    (r"^queue2(_ptr)?$", "memory2.queue${1}", r"^memory2\.queue(_ptr)?$", "queue2${1}"),
];

/// The complete key map of every algorithm: [`key_map_rows`] plus the
/// duplicate names MMSelfSup writes for one tensor (SwAVNeck's BatchNorm
/// is also `neck.projection_neck.1`, beside its `projection_neck.0`; the
/// `neck.bn` of RelativeLocNeck has no second name).
pub fn key_map() -> selfsup_weights::KeyMap {
    selfsup_weights::KeyMap::new().rows(&key_map_rows()).alias_when(
        r"^(.*\.)?neck\.bn\.(.*)$",
        "${1}neck.projection_neck.1.${2}",
        r"^(.*\.)?neck\.projection_neck\.1\.(.*)$",
        "${1}neck.projection_neck.0.weight",
    )
}

/// MMEngine's `init_cfg` entries are accepted (the component initialisation
/// they describe is built in) but not interpreted.
pub type InitCfg = Option<serde_json::Value>;
