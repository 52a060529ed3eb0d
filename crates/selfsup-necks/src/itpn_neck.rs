//! Port of mmpretrain's `iTPNPretrainDecoder` and `PatchSplit`
//! (`necks/itpn_neck.py`, mmpretrain 1.2.0): a feature pyramid that splits
//! the main stage's tokens back onto the stem's 2×2 and 4×4 sub-patch grids
//! (each level MLP blocks over the split tokens plus the stem's own map),
//! then every level embedded to a share of the decoder width, flattened per
//! patch and summed. For pixels an MAE decoder follows (mask tokens,
//! sin-cos position embedding, transformer layers); for CLIP a LayerNorm.
use burn::{
    module::{Module, Param},
    nn::Linear,
    tensor::{backend::Backend, Int, Tensor, TensorData},
};
use selfsup_layers::norm::LayerNorm;
use selfsup_layers::{
    build_2d_sincos_position_embedding,
    functional::linear,
    hivit::{BlockConfig, BlockWithRpe, LinearInit},
    init::{fixed, Dist, InitRng},
    NormCfg, TransformerEncoderLayer, TransformerEncoderLayerConfig,
};
use serde::{Deserialize, Serialize};

/// Key rows for `decoder_embed`, a list of `nn.Sequential(LayerNorm, Linear)`.
pub const ITPN_NECK_KEY_REMAP: &[(&str, &str, &str, &str)] = &[
    (
        r"(^|\.)decoder_embed\.(\d+)\.0\.",
        "${1}decoder_embed.${2}.norm.",
        r"(^|\.)decoder_embed\.(\d+)\.norm\.",
        "${1}decoder_embed.${2}.0.",
    ),
    (r"(^|\.)decoder_embed\.(\d+)\.1\.", "${1}decoder_embed.${2}.fc.", r"(^|\.)decoder_embed\.(\d+)\.fc\.", "${1}decoder_embed.${2}.1."),
];

/// Configuration of [`ITpnPretrainDecoder`]: mmpretrain's field names and
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ITpnPretrainDecoderConfig {
    /// Patches of the encoder grid (square).
    pub num_patches: usize,
    /// Patch size.
    pub patch_size: usize,
    /// Image channels.
    pub in_chans: usize,
    /// The encoder's width.
    pub embed_dim: usize,
    /// The pyramid's width.
    pub fpn_dim: usize,
    /// MLP blocks per pyramid level.
    pub fpn_depth: usize,
    /// Decoder width (the CLIP variant's output width too).
    pub decoder_embed_dim: usize,
    /// Decoder layers (pixel variant).
    pub decoder_depth: usize,
    /// Decoder heads (pixel variant).
    pub decoder_num_heads: usize,
    /// MLP ratio of the pyramid's blocks and the decoder's layers.
    pub mlp_ratio: f64,
    /// LayerNorm config.
    pub norm_cfg: NormCfg,
    /// `"pixel"` or `"clip"`.
    pub reconstruction_type: String,
    /// Pyramid levels: 2 or 3.
    pub num_outs: usize,
    /// Bias on the pyramid blocks' (unused) attention.
    pub qkv_bias: bool,
    /// Must be null.
    pub qk_scale: Option<f64>,
    /// Must be 0.
    pub drop_rate: f64,
    /// Must be 0.
    pub attn_drop_rate: f64,
    /// Output width; `None` means `patch_size² · in_chans`.
    pub predict_feature_dim: Option<usize>,
    /// MMEngine `init_cfg` (accepted, not interpreted).
    pub init_cfg: Option<serde_json::Value>,
}

impl Default for ITpnPretrainDecoderConfig {
    fn default() -> Self {
        Self {
            num_patches: 196,
            patch_size: 16,
            in_chans: 3,
            embed_dim: 512,
            fpn_dim: 256,
            fpn_depth: 2,
            decoder_embed_dim: 512,
            decoder_depth: 6,
            decoder_num_heads: 16,
            mlp_ratio: 4.0,
            norm_cfg: NormCfg::layer_norm(1e-6),
            reconstruction_type: "pixel".into(),
            num_outs: 3,
            qkv_bias: true,
            qk_scale: None,
            drop_rate: 0.0,
            attn_drop_rate: 0.0,
            predict_feature_dim: None,
            init_cfg: None,
        }
    }
}

impl ITpnPretrainDecoderConfig {
    /// Whether this is the CLIP variant.
    pub fn is_clip(&self) -> bool {
        self.reconstruction_type == "clip"
    }

    /// Output width of the pixel decoder.
    pub fn output_dim(&self) -> usize {
        self.predict_feature_dim.unwrap_or(self.patch_size * self.patch_size * self.in_chans)
    }

    /// Checks the config; `(key, message)` for the first bad field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !matches!(self.reconstruction_type.as_str(), "pixel" | "clip") {
            return Err(("reconstruction_type", format!("iTPN supports `pixel` and `clip`, got `{}`", self.reconstruction_type)));
        }
        // mmpretrain builds no pyramid for one level and reshapes with a
        // float side for more than three; neither runs.
        if !(2..=3).contains(&self.num_outs) {
            return Err(("num_outs", format!("{} pyramid levels; mmpretrain's neck runs with 2 or 3", self.num_outs)));
        }
        if self.qk_scale.is_some() || self.drop_rate != 0.0 || self.attn_drop_rate != 0.0 {
            return Err(("drop_rate", "dropout and a custom qk_scale are not supported".into()));
        }
        let share = 1 << (2 * (self.num_outs - 1));
        if !self.decoder_embed_dim.is_multiple_of(share) || !self.embed_dim.is_multiple_of(4) {
            return Err(("decoder_embed_dim", format!("decoder_embed_dim must be a multiple of {share} and embed_dim of 4")));
        }
        let side = (self.num_patches as f64).sqrt() as usize;
        if side * side != self.num_patches {
            return Err(("num_patches", format!("{} is not a square number of patches", self.num_patches)));
        }
        if self.is_clip() {
            if self.decoder_embed_dim != self.embed_dim {
                return Err((
                    "decoder_embed_dim",
                    format!("the CLIP variant's norm is over embed_dim {}; set decoder_embed_dim to it", self.embed_dim),
                ));
            }
        } else {
            if self.decoder_num_heads == 0 || !self.decoder_embed_dim.is_multiple_of(self.decoder_num_heads) {
                return Err((
                    "decoder_num_heads",
                    format!("decoder_embed_dim {} is not divisible by {}", self.decoder_embed_dim, self.decoder_num_heads),
                ));
            }
            if !self.decoder_embed_dim.is_multiple_of(4) {
                return Err(("decoder_embed_dim", "must be a multiple of 4 for the sin-cos embedding".into()));
            }
        }
        self.norm_cfg.validate_layer_norm().map_err(|e| ("norm_cfg.type", e))
    }

    /// Builds the neck. `init` is how its Linear layers start: the pixel
    /// config's model-level Xavier, or PyTorch's default (the CLIP config
    /// has none; there the pyramid's `fc2`s are then divided by
    /// `√(2·(index + 1))`). The decoder layers' FFNs are mmcls's (Xavier,
    /// `N(0, 1e-6)` biases), the mask token `N(0, 0.02)`, the decoder
    /// position embedding fixed sin-cos.
    ///
    /// # Panics
    /// On a config [`ITpnPretrainDecoderConfig::validate`] rejects.
    pub fn init<B: Backend>(&self, init: LinearInit, device: &B::Device, rng: &mut InitRng) -> ITpnPretrainDecoder<B> {
        if let Err((key, msg)) = self.validate() {
            panic!("invalid iTPNPretrainDecoder config at `{key}`: {msg}");
        }
        let (e, f, d) = (self.embed_dim, self.fpn_dim, self.decoder_embed_dim);
        let block = |rng: &mut InitRng| {
            let cfg = BlockConfig {
                input_size: 0,
                dim: f,
                num_heads: 0,
                mlp_ratio: self.mlp_ratio,
                qkv_bias: self.qkv_bias,
                drop_path: 0.0,
                rpe: false,
                layer_scale_init_value: 0.0,
                norm_cfg: self.norm_cfg.clone(),
            };
            cfg.init::<B>(init, device, rng)
        };
        let split = |dim: usize, rng: &mut InitRng| PatchSplit {
            norm: self.norm_cfg.build_layer_norm(dim, device),
            reduction: init.linear(rng, dim, 4 * f, false, device),
            fpn_dim: f,
        };
        let three = self.num_outs == 3;
        let align_dim_16tofpn = (e != f).then(|| init.linear(rng, e, f, true, device));
        let mut fpn_modules = vec![block(rng), block(rng)];
        let align_dim_16to8 = init.linear(rng, e / 2, f, false, device);
        let split_16to8 = split(e, rng);
        let block_16to8 = (0..self.fpn_depth).map(|_| block(rng)).collect();
        let (align_dim_8to4, split_8to4, block_8to4) = if three {
            let a = init.linear(rng, e / 4, f, false, device);
            let s = split(f, rng);
            let b = (0..self.fpn_depth).map(|_| block(rng)).collect();
            fpn_modules.push(block(rng));
            (Some(a), Some(s), b)
        } else {
            (None, None, Vec::new())
        };
        let decoder_embed = (0..self.num_outs)
            .map(|i| DecoderEmbed { norm: LayerNorm::new(f, 1e-5, device), fc: init.linear(rng, f, d >> (2 * i), true, device) })
            .collect();
        let mut neck = ITpnPretrainDecoder {
            align_dim_16tofpn,
            fpn_modules,
            align_dim_16to8: Some(align_dim_16to8),
            split_16to8: Some(split_16to8),
            block_16to8,
            align_dim_8to4,
            split_8to4,
            block_8to4,
            decoder_embed,
            mask_token: None,
            decoder_pos_embed: None,
            decoder_blocks: Vec::new(),
            ln1: None,
            decoder_pred: None,
            norm: None,
        };
        if self.is_clip() {
            neck.fpn_modules = neck.fpn_modules.into_iter().enumerate().map(|(i, b)| b.rescale(i + 1)).collect();
            neck.norm = Some(self.norm_cfg.build_layer_norm(e, device));
        } else {
            let side = (self.num_patches as f64).sqrt() as usize;
            let pos = build_2d_sincos_position_embedding((side, side), d, 10000.0, false);
            let layer = TransformerEncoderLayerConfig {
                embed_dims: d,
                num_heads: self.decoder_num_heads,
                feedforward_channels: (self.mlp_ratio * d as f64) as usize,
                qkv_bias: true,
                norm_cfg: self.norm_cfg.clone(),
                ffn_bias_std: 1e-6,
            };
            neck.mask_token = Some(rng.param([1, 1, d], Dist::Normal(0.0, 0.02), device));
            neck.decoder_pos_embed = Some(fixed(Tensor::from_data(TensorData::new(pos, [1, self.num_patches, d]), device)));
            neck.decoder_blocks = (0..self.decoder_depth).map(|_| layer.init(device, rng)).collect();
            neck.ln1 = Some(self.norm_cfg.build_layer_norm(d, device));
            neck.decoder_pred = Some(init.linear(rng, d, self.output_dim(), true, device));
        }
        neck
    }
}

/// iTPN's `PatchSplit`: norm, a Linear to four `fpn_dim` tokens, laid out
/// as each sub-patch's 2×2 children. Keys `norm.*`, `reduction.weight`.
#[derive(Module, Debug)]
pub struct PatchSplit<B: Backend> {
    /// LayerNorm over the input width.
    pub norm: LayerNorm<B>,
    /// `dim → 4·fpn_dim`, no bias.
    pub reduction: Linear<B>,
    fpn_dim: usize,
}

impl<B: Backend> PatchSplit<B> {
    /// # Shapes
    /// `[batch, L·s², dim] -> [batch, L·(2s)², fpn_dim]` for an `s × s`
    /// sub-patch grid per patch.
    pub fn forward(&self, x: Tensor<B, 3>, l: usize, s: usize) -> Tensor<B, 3> {
        let b = x.dims()[0];
        let f = self.fpn_dim;
        let x = linear(&self.reduction, self.norm.forward(x));
        // [b·L, s, s, 2, 2, f] -> [b·L, s, 2, s, 2, f]
        x.reshape([b * l, s, s, 2, 2, f]).swap_dims(2, 3).reshape([b, l * 4 * s * s, f])
    }
}

/// One entry of `decoder_embed`: `nn.Sequential(LayerNorm, Linear)` (keys
/// `0.*`, `1.*`; the LayerNorm is PyTorch's default, eps 1e-5).
#[derive(Module, Debug)]
pub struct DecoderEmbed<B: Backend> {
    /// Key `0`.
    pub norm: LayerNorm<B>,
    /// Key `1`.
    pub fc: Linear<B>,
}

/// iTPN's pyramid neck and decoder. Keys as mmpretrain:
/// `align_dim_16tofpn`, `fpn_modules.{i}`, `align_dim_16to8`,
/// `split_16to8`, `block_16to8.{i}`, `align_dim_8to4`, `split_8to4`,
/// `block_8to4.{i}`, `decoder_embed.{i}.{0,1}`; pixel: `mask_token`,
/// `decoder_pos_embed`, `decoder_blocks.{i}`, `ln1`, `decoder_pred`; CLIP:
/// `norm`.
#[derive(Module, Debug)]
pub struct ITpnPretrainDecoder<B: Backend> {
    /// `embed_dim → fpn_dim` when they differ.
    pub align_dim_16tofpn: Option<Linear<B>>,
    /// One MLP block per level.
    pub fpn_modules: Vec<BlockWithRpe<B>>,
    /// The stem's second map to `fpn_dim`.
    pub align_dim_16to8: Option<Linear<B>>,
    /// Main tokens onto the 2×2 grid.
    pub split_16to8: Option<PatchSplit<B>>,
    /// The 2×2 level's blocks.
    pub block_16to8: Vec<BlockWithRpe<B>>,
    /// The stem's first map to `fpn_dim` (three levels).
    pub align_dim_8to4: Option<Linear<B>>,
    /// The 2×2 level onto the 4×4 grid (three levels).
    pub split_8to4: Option<PatchSplit<B>>,
    /// The 4×4 level's blocks (three levels).
    pub block_8to4: Vec<BlockWithRpe<B>>,
    /// Each level to `decoder_embed_dim / 4^i`.
    pub decoder_embed: Vec<DecoderEmbed<B>>,
    /// Pixel: `[1, 1, decoder_embed_dim]`.
    pub mask_token: Option<Param<Tensor<B, 3>>>,
    /// Pixel: fixed sin-cos `[1, L, decoder_embed_dim]`, no cls row.
    pub decoder_pos_embed: Option<Param<Tensor<B, 3>>>,
    /// Pixel: the decoder's layers.
    pub decoder_blocks: Vec<TransformerEncoderLayer<B>>,
    /// Pixel: the decoder norm.
    pub ln1: Option<LayerNorm<B>>,
    /// Pixel: to pixels.
    pub decoder_pred: Option<Linear<B>>,
    /// CLIP: the output norm.
    pub norm: Option<LayerNorm<B>>,
}

impl<B: Backend> ITpnPretrainDecoder<B> {
    /// The pyramid: each level's tokens `[batch, L', (h·w)·d_i]` after its
    /// `decoder_embed`, coarsest first.
    ///
    /// # Shapes
    /// - `features`: the stem's maps `[batch, L'·16, C/4]`, `[batch, L'·4, C/2]`
    /// - `x`: `[batch, L', C]`
    pub fn pyramid(&self, features: &[Tensor<B, 3>], x: Tensor<B, 3>) -> Vec<Tensor<B, 3>> {
        let [b, l, _] = x.dims();
        let mut outs = vec![match &self.align_dim_16tofpn {
            Some(a) => linear(a, x.clone()),
            None => x.clone(),
        }];
        let run = |blocks: &[BlockWithRpe<B>], mut y: Tensor<B, 3>| {
            for blk in blocks {
                y = blk.forward(y, false, "", None);
            }
            y
        };
        if let (Some(split), Some(align)) = (&self.split_16to8, &self.align_dim_16to8) {
            let y = run(&self.block_16to8, split.forward(x, l, 1) + linear(align, features[1].clone()));
            outs.push(y);
        }
        if let (Some(split), Some(align)) = (&self.split_8to4, &self.align_dim_8to4) {
            let y = outs[1].clone();
            outs.push(run(&self.block_8to4, split.forward(y, l, 2) + linear(align, features[0].clone())));
        }
        outs.into_iter()
            .zip(&self.fpn_modules)
            .zip(&self.decoder_embed)
            .map(|((out, fpn), embed)| {
                let y = linear(&embed.fc, embed.norm.forward(fpn.forward(out, false, "", None)));
                let w = y.dims()[1] / l * y.dims()[2];
                y.reshape([b, l, w])
            })
            .collect()
    }

    /// The pixel variant: every level's kept tokens completed with mask
    /// tokens and put back in patch order, summed with the position
    /// embedding, then the decoder.
    ///
    /// # Shapes
    /// - `ids_restore`: `[batch, L]`
    /// - returns `[batch, L, patch² · in_chans]`
    ///
    /// # Panics
    /// On a neck built for CLIP.
    pub fn forward_pixel(&self, features: &[Tensor<B, 3>], x: Tensor<B, 3>, ids_restore: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let (Some(token), Some(pos), Some(ln1), Some(pred)) = (&self.mask_token, &self.decoder_pos_embed, &self.ln1, &self.decoder_pred)
        else {
            panic!("iTPNPretrainDecoder: the pixel pass on a neck built for CLIP");
        };
        let [n, l] = ids_restore.dims();
        let mut levels = self.pyramid(features, x).into_iter().map(|y| {
            let [_, kept, d] = y.dims();
            let y = Tensor::cat(vec![y, token.val().expand([n, l + 1 - kept, d])], 1);
            y.gather(1, ids_restore.clone().unsqueeze_dim::<3>(2).expand([n, l, d]))
        });
        let mut x = levels.next().expect("at least two levels") + pos.val();
        for y in levels {
            x = x + y;
        }
        for block in &self.decoder_blocks {
            x = block.forward(x);
        }
        linear(pred, ln1.forward(x))
    }

    /// The CLIP variant: the levels summed and normed.
    ///
    /// # Shapes
    /// `[batch, L, C] -> [batch, L, decoder_embed_dim]`
    ///
    /// # Panics
    /// On a neck built for pixels.
    pub fn forward_clip(&self, features: &[Tensor<B, 3>], x: Tensor<B, 3>) -> Tensor<B, 3> {
        let norm = self.norm.as_ref().expect("iTPNPretrainDecoder: the CLIP pass on a neck built for pixels");
        let mut levels = self.pyramid(features, x).into_iter();
        let mut x = levels.next().expect("at least two levels");
        for y in levels {
            x = x + y;
        }
        norm.forward(x)
    }
}
