//! Port of `mmselfsup.models.backbones.MixMIMTransformerPretrain`
//! (`mixmim_backbone.py`, mmselfsup 1.0.0): mmcls's MixMIM transformer
//! (patch 4, windows `[14, 14, 14, 7]`, a fixed 2-D sin-cos position
//! embedding, encoder stride 32) that mixes every image with its partner in
//! the flipped batch: one random mask at the final 1/32 grid, shared by the
//! batch, upsampled to each stage; masked tokens come from the partner, and
//! attention stays within tokens of one source.
use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, Tensor, TensorData},
};
use selfsup_core::{Draws, ModelError};
use selfsup_layers::norm::LayerNorm;
use selfsup_layers::{build_2d_sincos_position_embedding, init::fixed, init::InitRng, NormCfg, NormedPatchEmbed, PatchMerging};
use serde::{Deserialize, Serialize};

use crate::mixmim::{MixMimArch, MixMimBlock, MixMimLayer};

/// MixMIM's encoder stride (hard-coded in mmcls).
pub const ENCODER_STRIDE: usize = 32;
/// The draw of the mixing mask: `[1, 1, L/1024]` uniforms, the smallest
/// `⌊L·ratio⌋` of which are taken from the partner image.
pub const MASK_DRAW: &str = "mask_noise";
/// The draw of `random.uniform(0, range_mask_ratio)` (only when the range
/// is positive).
pub const RATIO_DRAW: &str = "mask_ratio_jitter";

/// Configuration of [`MixMimTransformerPretrain`]: MMSelfSup's arguments and
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MixMimTransformerPretrainConfig {
    /// `base`, `large`, `huge` or custom.
    pub arch: MixMimArch,
    /// FFN width over block width.
    pub mlp_ratio: f64,
    /// Input size (square).
    pub img_size: usize,
    /// Patch size; the masks line up with the tokens only at 4.
    pub patch_size: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Window per stage.
    pub window_size: Vec<usize>,
    /// Bias on qkv.
    pub qkv_bias: bool,
    /// Extra patch-embedding arguments; must be empty.
    pub patch_cfg: serde_json::Map<String, serde_json::Value>,
    /// The norms' config (`LN`).
    pub norm_cfg: NormCfg,
    /// Dropout; must be 0.
    pub drop_rate: f64,
    /// Stochastic depth, linear over all blocks up to this rate.
    pub drop_path_rate: f64,
    /// Attention dropout; must be 0.
    pub attn_drop_rate: f64,
    /// Activation checkpointing (memory only; accepted, not used).
    pub use_checkpoint: bool,
    /// The mask ratio is `0.5 + U(0, range_mask_ratio)`.
    pub range_mask_ratio: f64,
    /// MMEngine `init_cfg`; must be null.
    pub init_cfg: Option<serde_json::Value>,
}

impl Default for MixMimTransformerPretrainConfig {
    fn default() -> Self {
        Self {
            arch: MixMimArch::Name("base".into()),
            mlp_ratio: 4.0,
            img_size: 224,
            patch_size: 4,
            in_channels: 3,
            window_size: vec![14, 14, 14, 7],
            qkv_bias: true,
            patch_cfg: Default::default(),
            norm_cfg: NormCfg::layer_norm(1e-5),
            drop_rate: 0.0,
            drop_path_rate: 0.0,
            attn_drop_rate: 0.0,
            use_checkpoint: false,
            range_mask_ratio: 0.0,
            init_cfg: None,
        }
    }
}

impl MixMimTransformerPretrainConfig {
    /// Checks the config; `(key, message)` for the first field that cannot
    /// be honoured. Returns the last stage's width.
    pub fn validate(&self) -> Result<usize, (&'static str, String)> {
        let spec = self.arch.spec().map_err(|e| ("arch", e))?;
        if self.patch_size != 4 {
            return Err(("patch_size", "MixMIM's masks line up with the tokens only at patch_size 4".into()));
        }
        if !self.img_size.is_multiple_of(ENCODER_STRIDE) {
            return Err(("img_size", format!("{} is not a multiple of the encoder stride {ENCODER_STRIDE}", self.img_size)));
        }
        if self.window_size.len() != 4 || self.window_size.contains(&0) {
            return Err(("window_size", format!("{:?}: one positive window per stage", self.window_size)));
        }
        for (s, &w) in self.window_size.iter().enumerate() {
            let side = self.img_size / (self.patch_size << s);
            if side > w && !side.is_multiple_of(w) {
                return Err(("window_size", format!("stage {s}'s {side}x{side} map is not a whole number of {w}x{w} windows")));
            }
        }
        if self.drop_rate != 0.0 || self.attn_drop_rate != 0.0 {
            return Err(("drop_rate", "dropout is not supported; set drop_rate and attn_drop_rate to 0".into()));
        }
        if !(0.0..1.0).contains(&self.drop_path_rate) {
            return Err(("drop_path_rate", format!("{} is not in [0, 1)", self.drop_path_rate)));
        }
        if !(0.0..=0.5).contains(&self.range_mask_ratio) {
            return Err(("range_mask_ratio", format!("{} is not in [0, 0.5]", self.range_mask_ratio)));
        }
        self.norm_cfg.validate_layer_norm().map_err(|e| ("norm_cfg.type", e))?;
        if !self.patch_cfg.is_empty() {
            return Err(("patch_cfg", "custom patch_cfg is not supported; leave it empty".into()));
        }
        if self.init_cfg.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(("init_cfg", "init_cfg is not supported; load weights with `load_from`".into()));
        }
        Ok(spec.embed_dims << 3)
    }

    /// Builds the backbone with MixMIM's initialisation. Call
    /// [`Self::validate`] first.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> MixMimTransformerPretrain<B> {
        self.validate().unwrap_or_else(|(key, msg)| panic!("invalid MixMIMTransformerPretrain config at `{key}`: {msg}"));
        let spec = self.arch.spec().expect("validated");
        let d = spec.embed_dims;
        let g = self.img_size / self.patch_size;
        let total: usize = spec.depths.iter().sum();
        let dpr = |i: usize| if total > 1 { self.drop_path_rate * i as f64 / (total - 1) as f64 } else { 0.0 };
        let mut offset = 0;
        let layers = (0..4)
            .map(|s| {
                let dims = d << s;
                let res = [g >> s, g >> s];
                let blocks = (0..spec.depths[s])
                    .map(|b| {
                        let (heads, window) = (spec.num_heads[s], self.window_size[s]);
                        MixMimBlock::new(dims, heads, res, window, self.mlp_ratio, dpr(offset + b), &self.norm_cfg, device, rng)
                    })
                    .collect();
                offset += spec.depths[s];
                let downsample = (s < 3).then(|| {
                    let mut merge = PatchMerging::new(dims, 2 * dims, &self.norm_cfg, device, rng);
                    merge.reduction = rng.linear_xavier(4 * dims, 2 * dims, false, device);
                    merge
                });
                MixMimLayer::new(blocks, downsample, res)
            })
            .collect();
        let pos = build_2d_sincos_position_embedding((g, g), d, 10000.0, false);
        MixMimTransformerPretrain {
            patch_embed: NormedPatchEmbed::new(self.in_channels, d, self.patch_size, &NormCfg::layer_norm(1e-5), device, rng),
            absolute_pos_embed: fixed(Tensor::from_data(TensorData::new(pos, [1, g * g, d]), device)),
            layers,
            norm: self.norm_cfg.build_layer_norm(d << 3, device),
            img_size: self.img_size,
            range_mask_ratio: self.range_mask_ratio,
        }
    }
}

/// MixMIM's encoder. Keys as MMSelfSup: `patch_embed.*`,
/// `absolute_pos_embed` (fixed), `layers.{s}.blocks.{b}.*`,
/// `layers.{s}.downsample.*`, `norm`.
#[derive(Module, Debug)]
pub struct MixMimTransformerPretrain<B: Backend> {
    /// The 4 × 4 patch stem with its norm.
    pub patch_embed: NormedPatchEmbed<B>,
    /// Fixed sin-cos `[1, L, c]`; not trained.
    pub absolute_pos_embed: Param<Tensor<B, 3>>,
    /// The four stages.
    pub layers: Vec<MixMimLayer<B>>,
    /// The final norm.
    pub norm: LayerNorm<B>,
    img_size: usize,
    range_mask_ratio: f64,
}

/// The mixing masks of one batch: 1 where a token comes from the partner.
#[derive(Debug, Clone)]
pub struct MixMimMasks {
    /// Per stage `s`, the `[(g/2^s)²]` mask, row-major.
    pub stages: [Vec<f32>; 4],
}

impl<B: Backend> MixMimTransformerPretrain<B> {
    /// The input size.
    pub fn img_size(&self) -> usize {
        self.img_size
    }

    /// MMSelfSup's `random_masking` with ratio `0.5 + U(0, range)`: the
    /// smallest `⌊L·ratio⌋` of `L = (size/32)²` uniforms are masked, then
    /// the mask is upsampled (nearest) to every stage.
    pub fn random_masking(&self, draws: &mut Draws) -> MixMimMasks {
        let out = self.img_size / ENCODER_STRIDE;
        let l = out * out;
        let jitter = if self.range_mask_ratio > 0.0 { f64::from(draws.uniform(RATIO_DRAW, 1)[0]) * self.range_mask_ratio } else { 0.0 };
        let noise = draws.uniform(MASK_DRAW, l);
        let mut order: Vec<usize> = (0..l).collect();
        order.sort_by(|&a, &b| noise[a].total_cmp(&noise[b]));
        let mut last = vec![0f32; l];
        for &i in &order[..(l as f64 * (0.5 + jitter)) as usize] {
            last[i] = 1.0;
        }
        let up = |f: usize| -> Vec<f32> {
            let side = out * f;
            (0..side * side).map(|t| last[(t / side / f) * out + (t % side) / f]).collect()
        };
        MixMimMasks { stages: [up(8), up(4), up(2), last] }
    }

    fn check(&self, x: &Tensor<B, 4>) -> Result<(), ModelError> {
        let [_, _, h, w] = x.dims();
        if h != self.img_size || w != self.img_size {
            return Err(ModelError::Shape {
                algorithm: "MixMIMTransformerPretrain",
                expected: format!("[batch, c, {0}, {0}]", self.img_size),
                got: x.dims().to_vec(),
            });
        }
        Ok(())
    }

    /// The mixed forward: `[batch, c, s, s]` → the normalised last-stage
    /// tokens `[batch, (s/32)², c']`. `draws` (training) drive the
    /// stochastic depth.
    pub fn forward_mixed(&self, x: Tensor<B, 4>, masks: &MixMimMasks, mut draws: Option<&mut Draws>) -> Result<Tensor<B, 3>, ModelError> {
        self.check(&x)?;
        let (x, _) = self.patch_embed.forward(x);
        let l = x.dims()[1];
        let m1 = Tensor::<B, 1>::from_data(TensorData::new(masks.stages[0].clone(), [l]), &x.device()).reshape([1, l, 1]);
        let mut x = x.clone() * (m1.clone().neg() + 1.0) + x.flip([0]) * m1 + self.absolute_pos_embed.val();
        for (s, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, Some(&masks.stages[s]), &format!("drop_path.layers.{s}"), draws.as_deref_mut());
        }
        Ok(self.norm.forward(x))
    }

    /// The plain forward without mixing (mmcls's `MixMIMTransformer`):
    /// the normalised last-stage tokens.
    pub fn forward(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 3>, ModelError> {
        self.check(&x)?;
        let (mut x, _) = self.patch_embed.forward(x);
        x = x + self.absolute_pos_embed.val();
        for layer in &self.layers {
            x = layer.forward(x, None, "", None);
        }
        Ok(self.norm.forward(x))
    }
}
