//! selfsup's algorithms: the one crate that composes backbones, necks, heads,
//! memories and target generators. Each file ports one MMSelfSup algorithm
//! (`mae.rs` ↔ `mmselfsup/models/algorithms/mae.py`).
//!
//! [`AlgorithmConfig`] is the registry of `model.type` names and [`Algorithm`]
//! the matching module enum, for tools that pick the algorithm from a config
//! file. Code that knows its algorithm uses the concrete type ([`Mae`]).
#![warn(missing_docs)]

pub mod mae;
mod registry;

pub use mae::{Mae, MaeConfig, MaePrediction};
pub use registry::{Algorithm, AlgorithmConfig, AnyPrediction, AnyStepState, ConfigIssue, Features};

/// Rows that map MMSelfSup checkpoint keys to selfsup field paths and back
/// (`(pytorch_pattern, ours, ours_pattern, pytorch)`), for every component
/// the algorithms use. Feed them to `selfsup_weights::KeyMap::rows`.
pub fn key_map_rows() -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
    selfsup_layers::transformer::FFN_KEY_REMAP.to_vec()
}

/// MMEngine's `init_cfg` entries are accepted (the component initialisation
/// they describe is built in) but not interpreted.
pub type InitCfg = Option<serde_json::Value>;
