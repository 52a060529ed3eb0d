//! selfsup's target generators: the frozen modules that turn an image into
//! what a masked-image model predicts. Each file ports one MMSelfSup file
//! and keeps its name (`hog_generator.rs` ↔
//! `mmselfsup/models/target_generators/hog_generator.py`,
//! `low_freq_generator.rs`, `dall_e.rs`, `clip_generator.rs`, `vqkd.rs`;
//! `clip.rs` ↔ `mmselfsup/models/utils/clip.py`, `vector_quantizer.rs` ↔
//! `mmselfsup/models/utils/vector_quantizer.py`).
//!
//! The tokenizers and teachers (DALL-E, VQ-KD, CLIP) have published
//! weight files that their configs name (`init_cfg` `Pretrained`,
//! `tokenizer_path`); [`pretrained`] says which file, and
//! `selfsup_algorithms::LoadPretrained` loads it by key (this crate does
//! not depend on the weights crate). `init` never reads files.
//!
//! A generator's tensors are MMSelfSup's buffers and parameters
//! (`target_generator.*` in an algorithm's `state_dict`): `Param`s without
//! gradient ([`freeze`]), saved and loaded by key and never given to the
//! optimiser. Their outputs are
//! detached, as MMSelfSup computes them under `torch.no_grad()`.
#![warn(missing_docs)]

pub mod clip;
pub mod clip_generator;
pub mod dall_e;
pub mod frozen;
pub mod hog_generator;
pub mod low_freq_generator;
pub mod pretrained;
pub mod vector_quantizer;
pub mod vqkd;

pub use clip::{Clip, ClipConfig, ClipOutput};
pub use clip_generator::{ClipGenerator, ClipGeneratorConfig};
pub use dall_e::{map_pixels, DallE, DallEConfig, DALLE_KEY_REMAP};
pub use frozen::freeze;
pub use hog_generator::{HogGenerator, HogGeneratorConfig};
pub use low_freq_generator::{ImgSize, LowFreqTargetGenerator, LowFreqTargetGeneratorConfig};
pub use pretrained::{is_remote, remote_message, PretrainedInit};
pub use vector_quantizer::{CodeStatistics, NormEmaVectorQuantizer};
pub use vqkd::{BeitEncoderConfig, Vqkd, VqkdConfig, VqkdEncoding, VQKD_KEY_REMAP};
