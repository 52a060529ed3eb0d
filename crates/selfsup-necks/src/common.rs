//! Helpers shared by the projection necks, and the key rows of the necks
//! built from `nn.Sequential` MLPs.
use burn::tensor::{backend::Backend, module::adaptive_avg_pool2d, Tensor};
use selfsup_layers::batch_norm::BatchNormCfg;

/// Key rows between MMSelfSup's `nn.Sequential` indices and our field
/// names: `mlp.0/2` (MoCoV2Neck, DenseCLNeck), `mlp2.0/2` (DenseCLNeck),
/// `projection_neck.0/3` (SwAVNeck).
pub const NECK_KEY_REMAP: &[(&str, &str, &str, &str)] = &[
    (r"(^|\.)mlp\.0\.", "${1}mlp.fc1.", r"(^|\.)mlp\.fc1\.", "${1}mlp.0."),
    (r"(^|\.)mlp\.2\.", "${1}mlp.fc2.", r"(^|\.)mlp\.fc2\.", "${1}mlp.2."),
    (r"(^|\.)mlp2\.0\.", "${1}mlp2.conv1.", r"(^|\.)mlp2\.conv1\.", "${1}mlp2.0."),
    (r"(^|\.)mlp2\.2\.", "${1}mlp2.conv2.", r"(^|\.)mlp2\.conv2\.", "${1}mlp2.2."),
    (r"(^|\.)projection_neck\.0\.", "${1}projection_neck.fc1.", r"(^|\.)projection_neck\.fc1\.", "${1}projection_neck.0."),
    (r"(^|\.)projection_neck\.3\.", "${1}projection_neck.fc2.", r"(^|\.)projection_neck\.fc2\.", "${1}projection_neck.3."),
];

pub(crate) fn pool_flatten<B: Backend>(x: Tensor<B, 4>, with_avg_pool: bool) -> Tensor<B, 2> {
    let x = if with_avg_pool { adaptive_avg_pool2d(x, [1, 1]) } else { x };
    x.flatten::<2>(1, 3)
}

pub(crate) fn yes() -> bool {
    true
}

pub(crate) fn sync_bn() -> BatchNormCfg {
    BatchNormCfg::new("SyncBN")
}
