//! Port of mmpretrain's `iTPNHiViT` (`selfsup/itpn.py`, mmpretrain 1.2.0):
//! [`HiVit`] with iTPN's two masked forward passes. The pixel variant keeps
//! a random subset of patches from the stem on (MAE's masking, the draw
//! `mask_noise`); the CLIP variant runs every patch and swaps the masked
//! ones for a learned mask token at the main stage (the mask comes from
//! the pipeline's `BEiTMaskGenerator`).
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use selfsup_core::{Draws, ModelError};
use selfsup_layers::{
    build_2d_sincos_position_embedding,
    init::{fixed, Dist, InitRng},
    pos_embed::resample_grid,
    NormCfg,
};
use serde::{Deserialize, Serialize};

use crate::{
    hivit::{check_unsupported, HiVit, HiVitArch, HiVitBlock, HiVitSettings},
    mae_vit::random_masking_indices,
};

/// iTPN's HiViT is the HiViT module; only its forward passes differ.
pub type ITpnHiVit<B> = HiVit<B>;

/// Configuration of mmpretrain's `iTPNHiViT`: HiViT's arguments (with
/// iTPN's defaults: LayerNorm eps 1e-6) plus `mask_ratio` and
/// `reconstruction_type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ITpnHiVitConfig {
    /// A name from HiViT's arch table or custom dimensions.
    pub arch: HiVitArch,
    /// Input size (square).
    pub img_size: usize,
    /// Patch size.
    pub patch_size: usize,
    /// Sub-patches per patch side.
    pub inner_patches: usize,
    /// Image channels.
    pub in_chans: usize,
    /// MLP ratio of the stem stages.
    pub stem_mlp_ratio: f64,
    /// MLP ratio of the main stage.
    pub mlp_ratio: f64,
    /// Bias on `qkv`.
    pub qkv_bias: bool,
    /// Must be null.
    pub qk_scale: Option<f64>,
    /// Must be 0.
    pub drop_rate: f64,
    /// Must be 0.
    pub attn_drop_rate: f64,
    /// Stochastic depth, linear over every block (draws
    /// `blocks.{i}.drop_path`).
    pub drop_path_rate: f64,
    /// LayerNorm config.
    pub norm_cfg: NormCfg,
    /// Output indices: one entry (the last main block).
    pub out_indices: serde_json::Value,
    /// Absolute position embedding (fixed: sin-cos for pixels, a frozen
    /// random draw for CLIP, as mmpretrain's `requires_grad = False`).
    pub ape: bool,
    /// Relative position bias in the main stage (CLIP variant only; the
    /// pixel variant's masked pass does not use it).
    pub rpe: bool,
    /// LayerNorm after the patch embedding.
    pub patch_norm: bool,
    /// Must be -1.
    pub frozen_stages: i64,
    /// Must be null.
    pub kernel_size: Option<usize>,
    /// Must be null.
    pub pad_size: Option<usize>,
    /// Layer scale's initial value (0: none).
    pub layer_scale_init_value: f64,
    /// Fraction of patches removed (pixel variant).
    pub mask_ratio: f64,
    /// `"pixel"` or `"clip"`.
    pub reconstruction_type: String,
    /// MMEngine `init_cfg` (accepted, not interpreted).
    pub init_cfg: Option<serde_json::Value>,
}

impl Default for ITpnHiVitConfig {
    fn default() -> Self {
        Self {
            arch: HiVitArch::default(),
            img_size: 224,
            patch_size: 16,
            inner_patches: 4,
            in_chans: 3,
            stem_mlp_ratio: 3.0,
            mlp_ratio: 4.0,
            qkv_bias: true,
            qk_scale: None,
            drop_rate: 0.0,
            attn_drop_rate: 0.0,
            drop_path_rate: 0.0,
            norm_cfg: NormCfg::layer_norm(1e-6),
            out_indices: serde_json::json!([23]),
            ape: true,
            rpe: false,
            patch_norm: true,
            frozen_stages: -1,
            kernel_size: None,
            pad_size: None,
            layer_scale_init_value: 0.0,
            mask_ratio: 0.75,
            reconstruction_type: "pixel".into(),
            init_cfg: None,
        }
    }
}

/// `"pixel"` or `"clip"`, as mmpretrain's assertion.
pub fn check_reconstruction_type(t: &str) -> Result<bool, String> {
    match t {
        "pixel" => Ok(false),
        "clip" => Ok(true),
        other => Err(format!("iTPN supports `pixel` and `clip`, got `{other}`")),
    }
}

impl ITpnHiVitConfig {
    /// Whether this is the CLIP variant.
    pub fn is_clip(&self) -> bool {
        self.reconstruction_type == "clip"
    }

    /// Checks the config; returns the HiViT settings or `(key, message)`.
    pub fn validate(&self) -> Result<HiVitSettings, (&'static str, String)> {
        check_unsupported(
            self.qk_scale,
            self.drop_rate,
            self.attn_drop_rate,
            self.frozen_stages,
            self.kernel_size,
            self.pad_size,
            &self.out_indices,
        )?;
        check_reconstruction_type(&self.reconstruction_type).map_err(|e| ("reconstruction_type", e))?;
        if !(0.0..1.0).contains(&self.mask_ratio) {
            return Err(("mask_ratio", format!("must be in [0, 1), got {}", self.mask_ratio)));
        }
        let s = HiVitSettings {
            arch: self.arch.spec().map_err(|e| ("arch", e))?,
            img_size: self.img_size,
            patch_size: self.patch_size,
            inner_patches: self.inner_patches,
            in_chans: self.in_chans,
            stem_mlp_ratio: self.stem_mlp_ratio,
            mlp_ratio: self.mlp_ratio,
            qkv_bias: self.qkv_bias,
            drop_path_rate: self.drop_path_rate,
            norm_cfg: self.norm_cfg.clone(),
            ape: self.ape,
            rpe: self.rpe,
            patch_norm: self.patch_norm,
            layer_scale_init_value: self.layer_scale_init_value,
        };
        s.validate()?;
        if s.arch.depths.len() != 3 {
            return Err(("arch", format!("iTPN's pyramid takes HiViT's three stages, got {}", s.arch.depths.len())));
        }
        if !self.is_clip() && !s.arch.embed_dims.is_multiple_of(4) {
            return Err(("arch", "embed_dims must be a multiple of 4 for the sin-cos embedding".into()));
        }
        Ok(s)
    }

    /// Builds the backbone with `iTPNHiViT.init_weights`: truncated-normal
    /// Linear layers; for pixels a fixed sin-cos position embedding and a
    /// Xavier patch convolution; for CLIP a frozen random position
    /// embedding, a `N(0, 0.02)` truncated mask token and each block's
    /// output projections divided by `√(2·(index + 1))`.
    ///
    /// # Panics
    /// On a config [`ITpnHiVitConfig::validate`] rejects.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> ITpnHiVit<B> {
        let s = self.validate().unwrap_or_else(|(key, msg)| panic!("invalid iTPNHiViT config at `{key}`: {msg}"));
        let mut model = s.build::<B>(true, device, rng);
        let d = s.arch.embed_dims;
        if self.is_clip() {
            model.mask_token = Some(rng.param([1, 1, d], Dist::TruncNormal(0.0, 0.02), device));
            model.blocks = model
                .blocks
                .into_iter()
                .enumerate()
                .map(|(i, b)| match b {
                    HiVitBlock::Block(b) => HiVitBlock::Block(b.rescale(i + 1)),
                    merge => merge,
                })
                .collect();
        } else {
            let g = s.grid();
            if model.pos_embed.is_some() {
                let pos = build_2d_sincos_position_embedding((g, g), d, 10000.0, false);
                model.pos_embed = Some(fixed(Tensor::from_data(TensorData::new(pos, [1, g * g, d]), device)));
            }
            model.patch_embed = model.patch_embed.xavier(rng);
        }
        model.mask_ratio = self.mask_ratio;
        model
    }
}

/// The pixel variant's masked pass.
#[derive(Debug, Clone)]
pub struct ITpnPixelOutput<B: Backend> {
    /// The kept patches' sub-patch maps before each merge,
    /// `[batch, kept·16, C/4]` and `[batch, kept·4, C/2]`.
    pub features: Vec<Tensor<B, 3>>,
    /// `[batch, kept, embed_dims]`.
    pub latent: Tensor<B, 3>,
    /// `[batch, L]`, 1 for removed patches.
    pub mask: Tensor<B, 2>,
    /// `[batch, L]`, each patch's rank in the noise order.
    pub ids_restore: Tensor<B, 2, Int>,
}

/// The CLIP variant's pass.
#[derive(Debug, Clone)]
pub struct ITpnClipOutput<B: Backend> {
    /// Every patch's sub-patch maps before each merge.
    pub features: Vec<Tensor<B, 3>>,
    /// `[batch, L, embed_dims]`.
    pub latent: Tensor<B, 3>,
}

impl<B: Backend> HiVit<B> {
    /// `iTPNHiViT.forward_pixel` with a mask: MAE's random masking from the
    /// draw `"mask_noise"` (`[batch, L]`, smallest kept), the kept patches
    /// through the stem, their position embedding (resampled as mmpretrain
    /// does when it sees fewer tokens than patches), the main stage without
    /// relative position bias.
    pub fn forward_pixel(&self, x: Tensor<B, 4>, draws: &mut Draws) -> Result<ITpnPixelOutput<B>, ModelError> {
        self.check_input(&x)?;
        let device = x.device();
        let n = x.dims()[0];
        let l = self.num_patches();
        let noise = draws.uniform("mask_noise", n * l);
        let (keep, restore, mask) = random_masking_indices(&noise, n, l, self.mask_ratio);
        let kept = keep.len() / n.max(1);
        let ids_keep = Tensor::<B, 2, Int>::from_data(TensorData::new(keep, [n, kept]), &device);

        let x = self.patch_embed.forward(x);
        let [_, t, c] = x.dims();
        let sub = t / l * c;
        let x =
            x.reshape([n, l, sub]).gather(1, ids_keep.clone().unsqueeze_dim::<3>(2).expand([n, kept, sub])).reshape([n, t / l * kept, c]);
        let stem = self.stem(x, Some(draws));
        let mut x = stem.tokens;
        if let Some(pos) = &self.pos_embed {
            // HiViT's `interpolate_pos_encoding` sees fewer tokens than
            // patches and resamples the grid by `(g + 0.1) / g`: the same
            // number of samples, shifted by bicubic interpolation.
            let d = x.dims()[2];
            let g = self.img_size / self.patch_size();
            let scale = g as f64 / (g as f64 + 0.1);
            let pos = resample_grid(pos.val(), [g, g], [g, g], [scale, scale]);
            x = x + pos.expand([n, l, d]).gather(1, ids_keep.unsqueeze_dim::<3>(2).expand([n, kept, d]));
        }
        Ok(ITpnPixelOutput {
            features: stem.features,
            latent: self.main_stage(x, false, Some(draws)),
            mask: Tensor::from_data(TensorData::new(mask, [n, l]), &device),
            ids_restore: Tensor::from_data(TensorData::new(restore, [n, l]), &device),
        })
    }

    /// `iTPNHiViT.forward_clip`: every patch through the stem, the masked
    /// ones (`mask`: `[batch, H/p, W/p]`, 1 masked) replaced by the mask
    /// token, the position embedding, the main stage with its relative
    /// position bias when `rpe`.
    pub fn forward_clip(&self, x: Tensor<B, 4>, mask: Tensor<B, 3>, draws: &mut Draws) -> Result<ITpnClipOutput<B>, ModelError> {
        self.check_input(&x)?;
        let Some(token) = &self.mask_token else {
            let message = "the backbone was built with reconstruction_type='pixel' and has no mask token".into();
            return Err(ModelError::DataSample { algorithm: "iTPN", field: "mask".into(), message });
        };
        let stem = self.stem(self.patch_embed.forward(x), Some(draws));
        let [n, l, d] = stem.tokens.dims();
        let w = mask.reshape([n, l, 1]);
        let mut x = stem.tokens * w.clone().neg().add_scalar(1.0) + token.val().expand([n, l, d]) * w;
        if let Some(pos) = &self.pos_embed {
            x = x + pos.val();
        }
        Ok(ITpnClipOutput { features: stem.features, latent: self.main_stage(x, self.rpe, Some(draws)) })
    }

    /// The configured mask ratio (pixel variant).
    pub fn mask_ratio(&self) -> f64 {
        self.mask_ratio
    }
}
