//! The contrastive and siamese family: SimCLR, MoCo v1/v2, MoCo v3, BYOL,
//! SimSiam, Barlow Twins, DenseCL and SwAV.
//!
//! What MMSelfSup does across devices, and what it is here on one device:
//! - SimCLR's `GatherLayer` and MoCo v3's `concat_all_gather`: the local
//!   batch is the global batch, so the gather is the identity.
//! - MoCo's and DenseCL's `batch_shuffle_ddp` / `batch_unshuffle_ddp`: they
//!   keep BatchNorm from seeing a device's own positives. On one device the
//!   key encoder's BatchNorm sees the whole batch whatever its order and the
//!   unshuffle restores the order, so both are the identity (up to the
//!   summation order of the batch statistics).
//! - `SyncBN`: BatchNorm over the global batch; on one device, BatchNorm.
//! - Barlow Twins' all-reduce of the correlation matrix and SwAV's
//!   distributed Sinkhorn: sums over one device.
//!
//! Each of those sits in one function here ([`common::gather`] for the
//! gathers), so data-parallel training replaces them without touching the
//! algorithms.
pub mod common;
pub mod moco;
pub mod siamese;
pub mod simclr;
pub mod swav;

pub use common::{Backbone, BackboneOut, ContrastiveBackboneConfig};
pub use moco::{DenseCl, DenseClConfig, MoCo, MoCoConfig};
pub use siamese::{BarlowTwins, BarlowTwinsConfig, Byol, ByolConfig, MoCoV3, MoCoV3Config, SimSiam, SimSiamConfig};
pub use simclr::{SimClr, SimClrConfig};
pub use swav::{SwAV, SwAVConfig, SwAVQueueState};
