//! selfsup's target generators: the frozen modules that turn an image into
//! what a masked-image model predicts. Each file ports one MMSelfSup file
//! and keeps its name (`hog_generator.rs` ↔
//! `mmselfsup/models/target_generators/hog_generator.py`,
//! `low_freq_generator.rs`).
//!
//! A generator's tensors are MMSelfSup's buffers (`target_generator.*` in
//! an algorithm's `state_dict`): `Param`s without gradient, saved and
//! loaded by key and never given to the optimiser. Their outputs are
//! detached, as MMSelfSup computes them under `torch.no_grad()`.
#![warn(missing_docs)]

pub mod hog_generator;
pub mod low_freq_generator;

pub use hog_generator::{HogGenerator, HogGeneratorConfig};
pub use low_freq_generator::{ImgSize, LowFreqTargetGenerator, LowFreqTargetGeneratorConfig};
