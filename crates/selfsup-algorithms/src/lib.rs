//! selfsup's algorithms: the one crate that composes backbones, necks, heads,
//! memories and target generators. Each file ports one MMSelfSup algorithm
//! (`mae.rs` ↔ `mmselfsup/models/algorithms/mae.py`).
//!
//! [`AlgorithmConfig`] is the registry of `model.type` names and [`Algorithm`]
//! the matching module enum, for tools that pick the algorithm from a config
//! file. Code that knows its algorithm uses the concrete type ([`Mae`]).
#![warn(missing_docs)]

pub mod contrastive;
pub mod mae;
mod registry;

pub use contrastive::{
    BarlowTwins, BarlowTwinsConfig, Byol, ByolConfig, DenseCl, DenseClConfig, MoCo, MoCoConfig, MoCoV3, MoCoV3Config, SimClr,
    SimClrConfig, SimSiam, SimSiamConfig, SwAV, SwAVConfig,
};
pub use mae::{Mae, MaeConfig, MaePrediction};
pub use registry::{Algorithm, AlgorithmConfig, AnyPrediction, AnyStepState, ConfigIssue, Features};

/// Rows that map MMSelfSup checkpoint keys to selfsup field paths and back
/// (`(pytorch_pattern, ours, ours_pattern, pytorch)`), for every component
/// the algorithms use. Feed them to `selfsup_weights::KeyMap::rows`.
pub fn key_map_rows() -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
    let mut rows = selfsup_layers::transformer::FFN_KEY_REMAP.to_vec();
    rows.extend_from_slice(selfsup_backbones::RESNET_KEY_REMAP);
    rows.extend_from_slice(selfsup_necks::NECK_KEY_REMAP);
    rows.extend_from_slice(selfsup_necks::NONLINEAR_KEY_REMAP);
    rows.extend_from_slice(QUEUE_KEY_REMAP);
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
/// is also `neck.projection_neck.1`).
pub fn key_map() -> selfsup_weights::KeyMap {
    selfsup_weights::KeyMap::new()
        .rows(&key_map_rows())
        .alias(r"^(.*\.)?neck\.bn\.(.*)$", "${1}neck.projection_neck.1.${2}", r"^(.*\.)?neck\.projection_neck\.1\.(.*)$")
}

/// MMEngine's `init_cfg` entries are accepted (the component initialisation
/// they describe is built in) but not interpreted.
pub type InitCfg = Option<serde_json::Value>;
