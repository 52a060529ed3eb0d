//! State that MMSelfSup's algorithms carry from one step to the next:
//! MoCo's and DenseCL's feature queues ([`queue`]), momentum encoders
//! ([`ema`], MMEngine's `ExponentialMovingAverage` and MMSelfSup's
//! `CosineEMA`), NPID's per-sample feature bank ([`simple_memory`]), and
//! the clustering DeepCluster and ODC run between epochs ([`clustering`]).
//!
//! Everything here changes only in an algorithm's `after_step`, never in
//! its forward, and is saved in checkpoints under MMSelfSup's keys.
#![warn(missing_docs)]

pub mod clustering;
pub mod ema;
pub mod odc_memory;
pub mod queue;
pub mod simple_memory;

pub use ema::{EmaKind, MomentumEncoder, OnlineWeights};
pub use odc_memory::{ODCMemory, ODCMemoryConfig, OdcUpdate};
pub use queue::FeatureQueue;
pub use simple_memory::{SimpleMemory, SimpleMemoryConfig};
