//! The core contract of selfsup, ported from MMSelfSup's `BaseModel`.
//!
//! An algorithm is a backbone, an optional neck and a head (which owns its
//! loss), plus memories and target generators. MMSelfSup's
//! `forward(mode='tensor'|'loss'|'predict')` becomes three typed methods of
//! [`SelfSupAlgorithm`]: [`extract_feat`](SelfSupAlgorithm::extract_feat),
//! [`loss`](SelfSupAlgorithm::loss) and [`predict`](SelfSupAlgorithm::predict).
//! State that changes between steps (momentum encoders, queues, memory banks)
//! changes only in [`after_step`](SelfSupAlgorithm::after_step), never inside
//! `loss`. Every random draw goes through [`Draws`], so a test can replay the
//! reference implementation's draws.
//!
//! This crate holds no model: components live in the backbones, necks, heads
//! and losses crates, and only the algorithms crate composes them.
#![warn(missing_docs)]

mod algorithm;
mod draws;
mod loss;
mod preprocessor;

pub use algorithm::{DataSamples, ModelError, SelfSupAlgorithm, SelfSupInputs, StepContext};
pub use draws::Draws;
pub use loss::LossOutput;
pub use preprocessor::{DataPreprocessorConfig, DataPreprocessorKind};
