//! Port of `mmpretrain.models.backbones.SparseResNet` (mmpretrain 1.2.0):
//! mmpretrain's ResNet with every convolution, pooling and BatchNorm turned
//! into its sparse form (`sparse_modules.py`), SparK's encoder. The network
//! and its keys are [`ResNet`]'s (torchvision's layout); the sparse layers
//! are [`ResNet::forward_sparse`].
//!
//! mmpretrain numbers `out_indices` from the first stage (0..=3, no stem
//! output), where MMSelfSup's ResNet counts the stem as 0; the config keeps
//! mmpretrain's numbering.
use burn::tensor::backend::Backend;
use selfsup_layers::{batch_norm::BatchNormCfg, init::InitRng};
use serde::{Deserialize, Serialize};

use crate::resnet::{ResNet, ResNetConfig};

/// SparK's encoder: a [`ResNet`] run with [`ResNet::forward_sparse`].
pub type SparseResNet<B> = ResNet<B>;

/// `dict(type='SparseResNet', depth=50, ...)`: mmpretrain's field names and
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SparseResNetConfig {
    /// 18, 34, 50, 101 or 152.
    pub depth: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Stem width.
    pub stem_channels: usize,
    /// Width of the first stage (times the block expansion at its output).
    pub base_channels: usize,
    /// Block expansion; `None` is the block's own (1 basic, 4 bottleneck).
    pub expansion: Option<usize>,
    /// Number of stages (1–4).
    pub num_stages: usize,
    /// Stride of the first block of each stage.
    pub strides: Vec<usize>,
    /// Dilation of each stage.
    pub dilations: Vec<usize>,
    /// Outputs: stage indices from 0 (mmpretrain's numbering).
    pub out_indices: Vec<usize>,
    /// `"pytorch"` or `"caffe"`.
    pub style: String,
    /// ResNetV1d's deep stem; not supported.
    pub deep_stem: bool,
    /// ResNetV1d's average-pool downsampling; not supported.
    pub avg_down: bool,
    /// Stages frozen: -1 none, 0 the stem, i the stem and stages 1..=i.
    pub frozen_stages: i64,
    /// Convolution config; only the default (`None`) is supported.
    pub conv_cfg: Option<serde_json::Value>,
    /// `SparseSyncBatchNorm2d` (default) or `SparseBatchNorm2d` (also `BN`
    /// and `SyncBN`, which mmpretrain converts to their sparse forms).
    pub norm_cfg: BatchNormCfg,
    /// Keep every BatchNorm in eval mode while training.
    pub norm_eval: bool,
    /// Gradient checkpointing: accepted, no effect on the result.
    pub with_cp: bool,
    /// Zero the last BatchNorm scale of every block.
    pub zero_init_residual: bool,
    /// MMEngine `init_cfg`: the default Kaiming/Constant init is built in.
    pub init_cfg: Option<serde_json::Value>,
    /// Stochastic depth, rising linearly over the blocks from 0.
    pub drop_path_rate: f64,
}

impl Default for SparseResNetConfig {
    fn default() -> Self {
        Self {
            depth: 50,
            in_channels: 3,
            stem_channels: 64,
            base_channels: 64,
            expansion: None,
            num_stages: 4,
            strides: vec![1, 2, 2, 2],
            dilations: vec![1, 1, 1, 1],
            out_indices: vec![3],
            style: "pytorch".into(),
            deep_stem: false,
            avg_down: false,
            frozen_stages: -1,
            conv_cfg: None,
            norm_cfg: BatchNormCfg::new("SparseSyncBatchNorm2d"),
            norm_eval: false,
            with_cp: false,
            zero_init_residual: false,
            init_cfg: None,
            drop_path_rate: 0.0,
        }
    }
}

/// The BatchNorm types a sparse network accepts, as their dense names.
pub(crate) fn dense_norm(cfg: &BatchNormCfg) -> Result<BatchNormCfg, String> {
    let kind = match cfg.kind.as_str() {
        "SparseSyncBatchNorm2d" | "SyncBN" | "SyncBatchNorm" => "SyncBN",
        "SparseBatchNorm2d" | "BN" | "BN2d" | "BatchNorm2d" => "BN",
        other => return Err(format!("norm type `{other}` is not supported here; expected SparseSyncBatchNorm2d or SparseBatchNorm2d")),
    };
    Ok(BatchNormCfg { kind: kind.into(), ..cfg.clone() })
}

impl SparseResNetConfig {
    /// The network as a [`ResNetConfig`] (MMSelfSup's `out_indices`).
    pub fn resnet(&self) -> Result<ResNetConfig, (&'static str, String)> {
        if let Some(&i) = self.out_indices.iter().find(|&&i| i >= self.num_stages) {
            return Err(("out_indices", format!("index {i} is not a stage (0..{})", self.num_stages)));
        }
        Ok(ResNetConfig {
            depth: self.depth,
            in_channels: self.in_channels,
            stem_channels: self.stem_channels,
            base_channels: self.base_channels,
            expansion: self.expansion,
            num_stages: self.num_stages,
            strides: self.strides.clone(),
            dilations: self.dilations.clone(),
            out_indices: self.out_indices.iter().map(|i| i + 1).collect(),
            style: self.style.clone(),
            deep_stem: self.deep_stem,
            avg_down: self.avg_down,
            frozen_stages: self.frozen_stages,
            conv_cfg: self.conv_cfg.clone(),
            norm_cfg: dense_norm(&self.norm_cfg).map_err(|e| ("norm_cfg", e))?,
            norm_eval: self.norm_eval,
            with_cp: self.with_cp,
            zero_init_residual: self.zero_init_residual,
            init_cfg: self.init_cfg.clone(),
            drop_path_rate: self.drop_path_rate,
        })
    }

    /// Checks the config; `(key, message)` for the first field that cannot
    /// be honoured.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.resnet()?.check(true)
    }

    /// Channels of each configured output, in order.
    pub fn out_channels(&self) -> Vec<usize> {
        let r = self.resnet().expect("a validated config");
        let mut idx = r.out_indices.clone();
        idx.sort_unstable();
        idx.into_iter().map(|i| r.out_channels(i)).collect()
    }

    /// The downsampling of each configured output (4 for the first stage).
    pub fn out_strides(&self) -> Vec<usize> {
        let mut idx = self.out_indices.clone();
        idx.sort_unstable();
        idx.into_iter().map(|i| 4 * self.strides[..=i].iter().product::<usize>()).collect()
    }

    /// Builds the network with mmpretrain's initialisation. Call
    /// [`SparseResNetConfig::validate`] first.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> SparseResNet<B> {
        self.resnet().unwrap_or_else(|(k, m)| panic!("invalid SparseResNet config at `{k}`: {m}")).init_sparse(device, rng)
    }
}
