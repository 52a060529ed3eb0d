//! Port of `mmselfsup.models.heads.MAEPretrainHead` (mmselfsup 1.0.0), and
//! mmpretrain's, whose configs give it `PixelReconstructionLoss`.
use burn::tensor::{backend::Backend, Tensor};
use selfsup_losses::{MaeReconstructionLoss, PixelReconstructionLoss};
use serde::{Deserialize, Serialize};

/// `dict(type='MAEReconstructionLoss')`: no arguments.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaeReconstructionLossConfig {}

selfsup_config::registry! {
    /// The `loss` dict of an MAE head.
    #[derive(Debug, Clone, PartialEq)]
    pub enum MaeLossConfig {
        /// Masked-patch MSE.
        "MAEReconstructionLoss" => MaeReconstructionLoss(MaeReconstructionLossConfig),
        /// mmpretrain's masked-patch L1 or L2 (`criterion='L2'` in its MAE,
        /// SparK and iTPN configs).
        "PixelReconstructionLoss" => PixelReconstruction(PixelReconstructionLoss),
    }
}

impl Default for MaeLossConfig {
    fn default() -> Self {
        MaeLossConfig::MaeReconstructionLoss(MaeReconstructionLossConfig {})
    }
}

/// Configuration of [`MaePretrainHead`]; MMSelfSup's names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaePretrainHeadConfig {
    /// The loss.
    pub loss: MaeLossConfig,
    /// Normalise each target patch by its mean and (unbiased) variance.
    pub norm_pix: bool,
    /// Patch size.
    pub patch_size: usize,
}

impl Default for MaePretrainHeadConfig {
    fn default() -> Self {
        Self { loss: MaeLossConfig::default(), norm_pix: false, patch_size: 16 }
    }
}

impl MaePretrainHeadConfig {
    /// Builds the head (it has no parameters).
    pub fn init(&self) -> MaePretrainHead {
        let loss = match &self.loss {
            MaeLossConfig::MaeReconstructionLoss(_) => MaeHeadLoss::Mae(MaeReconstructionLoss),
            MaeLossConfig::PixelReconstruction(l) => MaeHeadLoss::Pixel(l.clone()),
        };
        MaePretrainHead { norm_pix: self.norm_pix, patch_size: self.patch_size, loss }
    }
}

/// MAE's head: builds the pixel target and applies the loss.
#[derive(Debug, Clone)]
pub struct MaePretrainHead {
    /// Normalise the target per patch.
    pub norm_pix: bool,
    /// Patch size `p`.
    pub patch_size: usize,
    loss: MaeHeadLoss,
}

#[derive(Debug, Clone)]
enum MaeHeadLoss {
    Mae(MaeReconstructionLoss),
    Pixel(PixelReconstructionLoss),
}

impl MaePretrainHead {
    /// Images to patches, MMSelfSup's `einsum('nchpwq->nhwpqc')`: patch
    /// order `(h, w)`, features `(p, q, c)`.
    ///
    /// # Shapes
    /// `[batch, 3, H, W] -> [batch, (H/p)·(W/p), p·p·3]`
    pub fn patchify<B: Backend>(&self, imgs: Tensor<B, 4>) -> Tensor<B, 3> {
        let p = self.patch_size;
        let [n, c, hh, ww] = imgs.dims();
        let (h, w) = (hh / p, ww / p);
        imgs.reshape([n, c, h, p, w, p]).permute([0, 2, 4, 3, 5, 1]).reshape([n, h * w, p * p * c])
    }

    /// The inverse of [`MaePretrainHead::patchify`] for square images.
    ///
    /// # Shapes
    /// `[batch, L, p·p·c] -> [batch, c, √L·p, √L·p]`
    pub fn unpatchify<B: Backend>(&self, x: Tensor<B, 3>) -> Tensor<B, 4> {
        let p = self.patch_size;
        let [n, l, f] = x.dims();
        let h = (l as f64).sqrt() as usize;
        let c = f / (p * p);
        x.reshape([n, h, h, p, p, c]).permute([0, 5, 1, 3, 2, 4]).reshape([n, c, h * p, h * p])
    }

    /// The reconstruction target: patches, normalised per patch when
    /// `norm_pix` with `(t − mean) / √(var + 1e-6)` and the **unbiased**
    /// variance, as `torch.var` computes it.
    pub fn construct_target<B: Backend>(&self, imgs: Tensor<B, 4>) -> Tensor<B, 3> {
        let target = self.patchify(imgs);
        if !self.norm_pix {
            return target;
        }
        let (var, mean) = target.clone().var_mean(2);
        (target - mean) / (var + 1e-6).sqrt()
    }

    /// The loss of a prediction.
    ///
    /// # Shapes
    /// - `pred`: `[batch, L, p·p·3]`; `imgs`: `[batch, 3, H, W]`; `mask`: `[batch, L]`
    pub fn forward<B: Backend>(&self, pred: Tensor<B, 3>, imgs: Tensor<B, 4>, mask: Tensor<B, 2>) -> Tensor<B, 1> {
        let target = self.construct_target(imgs);
        match &self.loss {
            MaeHeadLoss::Mae(l) => l.forward(pred, target, mask),
            MaeHeadLoss::Pixel(l) => l.forward(pred, target, Some(mask)),
        }
    }
}
