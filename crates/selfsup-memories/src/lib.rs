//! State that MMSelfSup's algorithms carry from one step to the next:
//! MoCo's and DenseCL's feature queues ([`queue`]) and momentum encoders
//! ([`ema`], MMEngine's `ExponentialMovingAverage` and MMSelfSup's
//! `CosineEMA`).
//!
//! Everything here changes only in an algorithm's `after_step`, never in
//! its forward, and is saved in checkpoints under MMSelfSup's keys.
#![warn(missing_docs)]

pub mod ema;
pub mod queue;

pub use ema::{EmaKind, MomentumEncoder, OnlineWeights};
pub use queue::FeatureQueue;
