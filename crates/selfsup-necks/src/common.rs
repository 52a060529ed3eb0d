//! Helpers shared by the projection necks, and the key rows of the necks
//! built from `nn.Sequential` MLPs.
use burn::tensor::{backend::Backend, module::adaptive_avg_pool2d, Tensor, TensorData};
use selfsup_core::Draws;
use selfsup_layers::batch_norm::BatchNormCfg;

/// Key rows between MMSelfSup's `nn.Sequential` indices and our field
/// names: `mlp.0/2` (MoCoV2Neck, DenseCLNeck, DINONeck's `mlp.4` too), `mlp2.0/2` (DenseCLNeck),
/// `projection_neck.0/3` (SwAVNeck).
pub const NECK_KEY_REMAP: &[(&str, &str, &str, &str)] = &[
    (r"(^|\.)mlp\.0\.", "${1}mlp.fc1.", r"(^|\.)mlp\.fc1\.", "${1}mlp.0."),
    (r"(^|\.)mlp\.2\.", "${1}mlp.fc2.", r"(^|\.)mlp\.fc2\.", "${1}mlp.2."),
    (r"(^|\.)mlp\.4\.", "${1}mlp.fc3.", r"(^|\.)mlp\.fc3\.", "${1}mlp.4."),
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

/// `nn.Dropout(p)` in training (autodiff backends), the identity otherwise. The
/// Bernoulli mask comes from the draw `key`: uniforms `u`, kept where `u >= p` and
/// scaled by `1/(1 − p)` (a replayed 0/1 mask reads the same way).
pub(crate) fn dropout<B: Backend>(x: Tensor<B, 2>, p: f64, key: &str, draws: &mut Draws) -> Tensor<B, 2> {
    let device = x.device();
    if !B::ad_enabled(&device) {
        return x;
    }
    let [n, c] = x.dims();
    let scale = (1.0 / (1.0 - p)) as f32;
    let keep: Vec<f32> = draws.uniform(key, n * c).into_iter().map(|u| if f64::from(u) >= p { scale } else { 0.0 }).collect();
    x * Tensor::<B, 2>::from_data(TensorData::new(keep, [n, c]), &device)
}
