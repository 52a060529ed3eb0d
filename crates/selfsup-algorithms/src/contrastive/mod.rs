//! The contrastive and siamese family: SimCLR, MoCo v1/v2, MoCo v3, BYOL,
//! SimSiam, Barlow Twins, DenseCL and SwAV.
//!
//! What MMSelfSup does across devices, and what it is here. Each piece is
//! a collective of [`selfsup_layers::dist`], which is the identity on one
//! device and talks to the other replicas in a data-parallel run:
//! - SimCLR's `GatherLayer` ([`common::gather_with_grad`]), MoCo v3's and
//!   the queues' `concat_all_gather` ([`common::gather`]); MoCo v3's labels
//!   are offset by the rank.
//! - MoCo's and DenseCL's `batch_shuffle_ddp` / `batch_unshuffle_ddp`
//!   ([`common::batch_shuffle`]): they keep BatchNorm from seeing a
//!   device's own positives. On one device the key encoder's BatchNorm
//!   sees the whole batch whatever its order, so both are skipped.
//! - Barlow Twins' all-reduce of the correlation matrix and SwAV's
//!   distributed Sinkhorn: sums over the replicas.
//! - `SyncBN`: burn has none, so each replica's BatchNorm normalises its
//!   own batch, as MMSelfSup's plain `BN` does (MoCo v2's configs use it).
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
