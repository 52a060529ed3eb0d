//! selfsup: OpenMMLab MMSelfSup's self-supervised visual pre-training
//! toolbox (MAE, ...) rebuilt in Rust on burn.
//!
//! This facade re-exports the workspace's crates and picks the backends.
//! Depend on it, or on the individual crates:
//!
//! | crate | what |
//! |---|---|
//! | [`core`] | the algorithm contract: three forward modes, loss parts, injectable draws, data preprocessor |
//! | [`config`] | MMEngine-style configs: TOML/JSON/YAML, `_base_`, `--cfg-options`, typed decoding |
//! | [`layers`] | ViT building blocks, sin-cos embeddings, initialisers |
//! | [`backbones`], [`necks`], [`heads`], [`losses`], [`memories`] | the components, one file per MMSelfSup component |
//! | [`algorithms`] | the algorithms that compose them, and the `model.type` registry |
//! | [`weights`] | MMSelfSup `.pth` loading, strict key checks, safetensors export |
//! | [`data`] | datasets, transforms, the loader |
//! | [`train`] | the engine: optimiser, schedules, loop, checkpoints, bench, extraction |
//!
//! Backends are Cargo features: `flex` (pure-Rust CPU, the default), `tch`
//! (libtorch), `wgpu`, `cuda`. [`backend`] lists the compiled ones and
//! dispatches to one by name.
#![warn(missing_docs)]

pub use selfsup_algorithms as algorithms;
pub use selfsup_backbones as backbones;
pub use selfsup_config as config;
pub use selfsup_core as core;
pub use selfsup_data as data;
pub use selfsup_heads as heads;
pub use selfsup_layers as layers;
pub use selfsup_losses as losses;
pub use selfsup_memories as memories;
pub use selfsup_necks as necks;
pub use selfsup_target_generators as target_generators;
pub use selfsup_train as train;
pub use selfsup_viz as viz;
pub use selfsup_weights as weights;

pub mod backend;
