//! Port of `mmselfsup.models.backbones.SimMIMSwinTransformer` (mmselfsup
//! 1.0.0): mmcls's Swin Transformer (patch 4, window 7 unless
//! `stage_cfgs.block_cfgs.window_size` says otherwise) whose masked patch
//! embeddings are replaced by a learned `mask_token`
//! (`x·(1−w) + mask_token·w`). It returns the normalised map of each stage
//! in `out_indices` (`norm{i}`), `[batch, c, h, w]`.
use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, Tensor},
};
use selfsup_core::{Draws, ModelError};
use selfsup_layers::norm::LayerNorm;
use selfsup_layers::{
    init::{Dist, InitRng},
    NormCfg, NormedPatchEmbed,
};
use serde::{Deserialize, Serialize};

use crate::swin_transformer::{build_stages, SwinArch, SwinArchSpec, SwinBlockSequence};

/// mmcls's `SwinTransformer` patch size.
const PATCH_SIZE: usize = 4;
/// mmcls's `SwinTransformer` default window.
const DEFAULT_WINDOW: usize = 7;

/// Configuration of [`SimMimSwinTransformer`]: MMSelfSup's arguments and
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimMimSwinTransformerConfig {
    /// `"T"`, `"S"`, `"B"`, `"L"` or a custom `{embed_dims, depths, num_heads}`.
    pub arch: SwinArch,
    /// Input size (square).
    pub img_size: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Dropout after the embedding; must be 0.
    pub drop_rate: f64,
    /// Stochastic depth, linear over all blocks up to this rate.
    pub drop_path_rate: f64,
    /// Stages whose normalised output is returned; the last stage only.
    pub out_indices: Vec<usize>,
    /// Add a learned absolute position embedding to the patch embedding.
    pub use_abs_pos_embed: bool,
    /// Activation checkpointing (memory only; accepted, not used).
    pub with_cp: bool,
    /// Frozen stages; must be -1.
    pub frozen_stages: i64,
    /// BatchNorm eval mode (there is none in Swin; accepted).
    pub norm_eval: bool,
    /// The output norms' config (`LN`).
    pub norm_cfg: NormCfg,
    /// Extra stage arguments: `dict(block_cfgs=dict(window_size=w))`, or
    /// one such dict per stage.
    pub stage_cfgs: serde_json::Value,
    /// Extra patch-embedding arguments; must be empty.
    pub patch_cfg: serde_json::Map<String, serde_json::Value>,
    /// Pad maps smaller than the window (and keep shifting maps equal to it).
    pub pad_small_map: bool,
    /// MMEngine `init_cfg`; must be null.
    pub init_cfg: Option<serde_json::Value>,
}

impl Default for SimMimSwinTransformerConfig {
    fn default() -> Self {
        Self {
            arch: SwinArch::Name("T".into()),
            img_size: 224,
            in_channels: 3,
            drop_rate: 0.0,
            drop_path_rate: 0.1,
            out_indices: vec![3],
            use_abs_pos_embed: false,
            with_cp: false,
            frozen_stages: -1,
            norm_eval: false,
            norm_cfg: NormCfg::layer_norm(1e-5),
            stage_cfgs: serde_json::json!({}),
            patch_cfg: Default::default(),
            pad_small_map: false,
            init_cfg: None,
        }
    }
}

impl SimMimSwinTransformerConfig {
    /// The window of each stage, from `stage_cfgs`.
    fn windows(&self, stages: usize) -> Result<Vec<usize>, String> {
        let window_of = |cfg: &serde_json::Value| -> Result<usize, String> {
            let obj = cfg.as_object().ok_or("must be a dict")?;
            if let Some(k) = obj.keys().find(|k| *k != "block_cfgs") {
                return Err(format!("`{k}` is not supported; only block_cfgs.window_size"));
            }
            let Some(blocks) = obj.get("block_cfgs") else { return Ok(DEFAULT_WINDOW) };
            let blocks = blocks.as_object().ok_or("block_cfgs must be a dict")?;
            if let Some(k) = blocks.keys().find(|k| *k != "window_size") {
                return Err(format!("block_cfgs.{k} is not supported; only window_size"));
            }
            match blocks.get("window_size") {
                None => Ok(DEFAULT_WINDOW),
                Some(w) => {
                    w.as_u64().filter(|&w| w > 0).map(|w| w as usize).ok_or_else(|| format!("window_size {w} is not a positive integer"))
                }
            }
        };
        match &self.stage_cfgs {
            serde_json::Value::Array(list) if list.len() == stages => list.iter().map(window_of).collect(),
            serde_json::Value::Array(list) => Err(format!("{} entries for {stages} stages", list.len())),
            cfg => Ok(vec![window_of(cfg)?; stages]),
        }
    }

    /// Checks the config; `(key, message)` for the first field that cannot
    /// be honoured. Returns the arch and each stage's window.
    pub fn validate(&self) -> Result<(SwinArchSpec, Vec<usize>), (&'static str, String)> {
        let spec = self.arch.spec().map_err(|e| ("arch", e))?;
        let stages = spec.depths.len();
        if stages > 4 {
            return Err(("arch", format!("{stages} stages; mmcls's Swin has at most 4")));
        }
        let windows = self.windows(stages).map_err(|e| ("stage_cfgs", e))?;
        if self.in_channels == 0 {
            return Err(("in_channels", "must be positive".into()));
        }
        let stride = PATCH_SIZE << (stages - 1);
        if !self.img_size.is_multiple_of(stride) {
            return Err(("img_size", format!("{} is not a multiple of the encoder stride {stride}", self.img_size)));
        }
        for (s, &w) in windows.iter().enumerate() {
            let side = self.img_size / (PATCH_SIZE << s);
            if side < w && !self.pad_small_map {
                return Err(("stage_cfgs", format!("stage {s}'s {side}x{side} map is smaller than its window {w}; set pad_small_map")));
            }
        }
        if self.out_indices != [stages - 1] {
            return Err(("out_indices", format!("only the last stage ({}) is supported", stages - 1)));
        }
        if self.drop_rate != 0.0 {
            return Err(("drop_rate", "dropout after the embedding is not supported; set 0".into()));
        }
        if !(0.0..1.0).contains(&self.drop_path_rate) {
            return Err(("drop_path_rate", format!("{} is not in [0, 1)", self.drop_path_rate)));
        }
        if self.frozen_stages != -1 {
            return Err(("frozen_stages", "frozen stages are not supported; set -1".into()));
        }
        self.norm_cfg.validate_layer_norm().map_err(|e| ("norm_cfg.type", e))?;
        if !self.patch_cfg.is_empty() {
            return Err(("patch_cfg", "custom patch_cfg is not supported; leave it empty".into()));
        }
        if self.init_cfg.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(("init_cfg", "init_cfg is not supported; load weights with `load_from`".into()));
        }
        Ok((spec, windows))
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.img_size / PATCH_SIZE
    }

    /// The channels and the total stride of the last stage.
    pub fn out_channels_and_stride(&self) -> Option<(usize, usize)> {
        let spec = self.arch.spec().ok()?;
        let last = spec.depths.len() - 1;
        Some((spec.embed_dims << last, PATCH_SIZE << last))
    }

    /// Builds the backbone with SimMIM's initialisation. Call
    /// [`Self::validate`] first.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> SimMimSwinTransformer<B> {
        let (spec, windows) = self.validate().unwrap_or_else(|(key, msg)| panic!("invalid SimMIMSwinTransformer config at `{key}`: {msg}"));
        let d = spec.embed_dims;
        let tn = Dist::TruncNormal(0.0, 0.02);
        let g = self.grid();
        let last = spec.depths.len() - 1;
        let out_norm = || Some(self.norm_cfg.build_layer_norm(d << last, device));
        SimMimSwinTransformer {
            patch_embed: NormedPatchEmbed::new(self.in_channels, d, PATCH_SIZE, &NormCfg::layer_norm(1e-5), device, rng),
            absolute_pos_embed: self.use_abs_pos_embed.then(|| rng.param([1, g * g, d], tn, device)),
            stages: build_stages(&spec, &windows, self.drop_path_rate, self.pad_small_map, &self.norm_cfg, device, rng),
            mask_token: rng.param([1, 1, d], tn, device),
            norm0: (last == 0).then(out_norm).flatten(),
            norm1: (last == 1).then(out_norm).flatten(),
            norm2: (last == 2).then(out_norm).flatten(),
            norm3: (last == 3).then(out_norm).flatten(),
            img_size: self.img_size,
        }
    }
}

/// SimMIM's Swin. Keys as MMSelfSup: `patch_embed.{projection,norm}`,
/// `absolute_pos_embed`, `stages.{s}.blocks.{b}.*`, `stages.{s}.downsample.*`,
/// `mask_token`, `norm{last}`.
#[derive(Module, Debug)]
pub struct SimMimSwinTransformer<B: Backend> {
    /// The 4 × 4 patch stem with its norm.
    pub patch_embed: NormedPatchEmbed<B>,
    /// `[1, L, c]`, with `use_abs_pos_embed`.
    pub absolute_pos_embed: Option<Param<Tensor<B, 3>>>,
    /// The stages.
    pub stages: Vec<SwinBlockSequence<B>>,
    /// `[1, 1, c]`, replaces masked patches.
    pub mask_token: Param<Tensor<B, 3>>,
    /// Output norm of stage 0 (when it is the last).
    pub norm0: Option<LayerNorm<B>>,
    /// Output norm of stage 1 (when it is the last).
    pub norm1: Option<LayerNorm<B>>,
    /// Output norm of stage 2 (when it is the last).
    pub norm2: Option<LayerNorm<B>>,
    /// Output norm of stage 3 (when it is the last).
    pub norm3: Option<LayerNorm<B>>,
    img_size: usize,
}

impl<B: Backend> SimMimSwinTransformer<B> {
    /// Patches per side of the input.
    pub fn grid(&self) -> usize {
        self.img_size / PATCH_SIZE
    }

    /// The input size.
    pub fn img_size(&self) -> usize {
        self.img_size
    }

    /// Pixels per patch side.
    pub fn patch_size(&self) -> usize {
        PATCH_SIZE
    }

    /// `[batch, c, s, s]` images and optional `[batch, s/4, s/4]` masks
    /// (1 = masked) → the last stage's normalised map `[batch, c', h, w]`.
    /// `draws` (training) drive the stochastic depth.
    pub fn forward(&self, x: Tensor<B, 4>, mask: Option<Tensor<B, 3>>, mut draws: Option<&mut Draws>) -> Result<Tensor<B, 4>, ModelError> {
        let [n, _, h, w] = x.dims();
        let g = self.grid();
        let bad_mask = mask.as_ref().is_some_and(|m| m.dims() != [n, g, g]);
        if h != self.img_size || w != self.img_size || bad_mask {
            return Err(ModelError::Shape {
                algorithm: "SimMIMSwinTransformer",
                expected: format!("[batch, c, {0}, {0}] images with [batch, {g}, {g}] masks", self.img_size),
                got: x.dims().to_vec(),
            });
        }
        let (mut x, mut hw) = self.patch_embed.forward(x);
        if let Some(mask) = mask {
            let m = mask.reshape([n, g * g, 1]);
            x = x * (m.clone().neg() + 1.0) + self.mask_token.val() * m;
        }
        if let Some(pos) = &self.absolute_pos_embed {
            x = x + pos.val();
        }
        for (s, stage) in self.stages.iter().enumerate() {
            (x, hw) = stage.forward(x, hw, &format!("drop_path.stages.{s}"), draws.as_deref_mut());
        }
        let norm = [&self.norm0, &self.norm1, &self.norm2, &self.norm3].into_iter().flatten().next().expect("one output norm");
        let c = x.dims()[2];
        Ok(norm.forward(x).reshape([n, hw[0], hw[1], c]).permute([0, 3, 1, 2]))
    }
}
