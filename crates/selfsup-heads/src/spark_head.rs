//! Port of `mmpretrain.models.heads.SparKPretrainHead` (`spark_head.py`,
//! mmpretrain 1.2.0): the image and the reconstruction cut into
//! `patch_size` patches (MAE's `einsum('bchpwq->bhwpqc')` order), the
//! target normalised per patch (`norm_pix`, unbiased variance, `1e-6`), and
//! the loss over the masked (inactive) patches only.
use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

use crate::{
    mae_head::{MaePretrainHead, MaePretrainHeadConfig},
    maskfeat_head::PixelLossConfig,
};

/// `dict(type='SparKPretrainHead', loss=..., norm_pix=True, patch_size=32)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparKPretrainHeadConfig {
    /// The loss (`PixelReconstructionLoss`, L2 in mmpretrain's configs).
    pub loss: PixelLossConfig,
    /// Normalise each target patch by its mean and variance.
    #[serde(default = "yes")]
    pub norm_pix: bool,
    /// The patch size: the algorithm's downsampling ratio.
    #[serde(default = "thirty_two")]
    pub patch_size: usize,
}

fn yes() -> bool {
    true
}
fn thirty_two() -> usize {
    32
}

impl SparKPretrainHeadConfig {
    /// Builds the head (no parameters).
    pub fn init(&self) -> SparKPretrainHead {
        SparKPretrainHead { config: self.clone() }
    }
}

/// SparK's head.
#[derive(Debug, Clone)]
pub struct SparKPretrainHead {
    config: SparKPretrainHeadConfig,
}

impl SparKPretrainHead {
    /// The patch size.
    pub fn patch_size(&self) -> usize {
        self.config.patch_size
    }

    /// MAE's head with SparK's patch size and `norm_pix`: the same
    /// patchify, target and unpatchify.
    pub fn patches(&self) -> MaePretrainHead {
        MaePretrainHeadConfig { norm_pix: self.config.norm_pix, patch_size: self.config.patch_size, ..Default::default() }.init()
    }

    /// The loss of a reconstruction against the image on the patches the
    /// encoder did not see.
    ///
    /// # Shapes
    /// - `pred`, `target`: `[batch, 3, H, W]`
    /// - `active`: `[batch, 1, H/p, W/p]`, 1 where the patch was kept
    /// - returns `[1]`
    pub fn forward<B: Backend>(&self, pred: Tensor<B, 4>, target: Tensor<B, 4>, active: Tensor<B, 4>) -> Tensor<B, 1> {
        // MAE's patchify and norm_pix target are SparK's.
        let patches =
            MaePretrainHeadConfig { norm_pix: self.config.norm_pix, patch_size: self.config.patch_size, ..Default::default() }.init();
        let target = patches.construct_target(target);
        let pred = patches.patchify(pred);
        let [b, _, h, w] = active.dims();
        let non_active = active.reshape([b, h * w]).neg().add_scalar(1.0);
        self.config.loss.get().forward(pred, target, Some(non_active))
    }
}
