//! Port of mmpretrain's `HiViT` (`backbones/hivit.py`, mmpretrain 1.2.0):
//! a hierarchical ViT whose first stages are MLP-only blocks on
//! `inner × inner` sub-patches of each patch, merged twice into one token
//! per patch for the attention blocks of the main stage. The blocks are in
//! `selfsup_layers::hivit`; iTPN's masked forward passes are in
//! `itpn_hivit.rs`.
use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, Tensor, TensorData},
};
use selfsup_core::{Draws, ModelError};
use selfsup_layers::{
    attention::relative_position_index,
    hivit::{BlockConfig, BlockWithRpe, LinearInit, PatchEmbed, PatchMerge},
    init::{fixed, Dist, InitRng},
    NormCfg,
};
use serde::{Deserialize, Serialize};

/// `arch`: a name from HiViT's `arch_zoo` or a custom table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HiVitArch {
    /// `"t"`/`"tiny"`, `"s"`/`"small"`, `"b"`/`"base"`, `"l"`/`"large"`.
    Name(String),
    /// `dict(embed_dims=..., depths=[...], num_heads=...)`.
    Custom(HiVitArchSpec),
}

/// HiViT's dimensions: the main stage's width, every stage's depth and the
/// main stage's heads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HiVitArchSpec {
    /// Width of the main stage (earlier stages halve it per stage).
    pub embed_dims: usize,
    /// Blocks per stage; the stem stages run twice as many MLP blocks.
    pub depths: Vec<usize>,
    /// Attention heads of the main stage.
    pub num_heads: usize,
}

impl Default for HiVitArch {
    fn default() -> Self {
        HiVitArch::Name("base".into())
    }
}

impl HiVitArch {
    /// The dimensions, from mmpretrain's table for a name.
    pub fn spec(&self) -> Result<HiVitArchSpec, String> {
        let s = |embed_dims, depths: &[usize], num_heads| HiVitArchSpec { embed_dims, depths: depths.to_vec(), num_heads };
        match self {
            HiVitArch::Custom(spec) => Ok(spec.clone()),
            HiVitArch::Name(name) => match name.to_ascii_lowercase().as_str() {
                "t" | "tiny" => Ok(s(384, &[1, 1, 10], 6)),
                "s" | "small" => Ok(s(384, &[2, 2, 20], 6)),
                "b" | "base" => Ok(s(512, &[2, 2, 24], 8)),
                "l" | "large" => Ok(s(768, &[2, 2, 40], 12)),
                other => Err(format!("unknown HiViT arch `{other}`; expected one of t, tiny, s, small, b, base, l, large")),
            },
        }
    }
}

/// The arguments HiViT and iTPN's HiViT share, with mmpretrain's names.
#[derive(Debug, Clone, PartialEq)]
pub struct HiVitSettings {
    /// The dimensions.
    pub arch: HiVitArchSpec,
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
    /// Stochastic depth, linear over every block.
    pub drop_path_rate: f64,
    /// The LayerNorms.
    pub norm_cfg: NormCfg,
    /// Absolute position embedding.
    pub ape: bool,
    /// Relative position bias in the main stage.
    pub rpe: bool,
    /// LayerNorm after the patch embedding.
    pub patch_norm: bool,
    /// Layer scale's initial value (0: none).
    pub layer_scale_init_value: f64,
}

/// The checks both configs make on the arguments selfsup does not
/// implement beyond mmpretrain's defaults, `(key, message)` on failure.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_unsupported(
    qk_scale: Option<f64>,
    drop_rate: f64,
    attn_drop_rate: f64,
    frozen_stages: i64,
    kernel_size: Option<usize>,
    pad_size: Option<usize>,
    out_indices: &serde_json::Value,
) -> Result<(), (&'static str, String)> {
    if qk_scale.is_some() {
        return Err(("qk_scale", "a custom attention scale is not supported; leave it null".into()));
    }
    if drop_rate != 0.0 || attn_drop_rate != 0.0 {
        return Err(("drop_rate", "dropout is not supported; set drop_rate and attn_drop_rate to 0".into()));
    }
    if frozen_stages > 0 {
        return Err(("frozen_stages", "freezing stages is not supported; set -1".into()));
    }
    if kernel_size.is_some() || pad_size.is_some() {
        return Err(("kernel_size", "custom patch-embedding kernels are not supported; leave kernel_size and pad_size null".into()));
    }
    // mmpretrain overwrites the last index with the last main block and
    // reshapes in place at every other index, so only one output works.
    if !matches!(out_indices, serde_json::Value::Array(a) if a.len() == 1 && a[0].is_i64()) {
        return Err(("out_indices", "HiViT gives its last block only; use a one-element list ([23])".into()));
    }
    Ok(())
}

impl HiVitSettings {
    /// Checks the dimensions; `(key, message)` on failure.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let a = &self.arch;
        if a.depths.is_empty() || a.depths.contains(&0) {
            return Err(("arch", "every stage needs at least one block".into()));
        }
        let stems = a.depths.len() - 1;
        if !a.embed_dims.is_multiple_of(1 << stems) {
            return Err(("arch", format!("embed_dims {} is not divisible by 2^{stems} for the stem stages", a.embed_dims)));
        }
        if a.num_heads == 0 || !a.embed_dims.is_multiple_of(a.num_heads) {
            return Err(("arch", format!("embed_dims {} is not divisible by num_heads {}", a.embed_dims, a.num_heads)));
        }
        if self.inner_patches != 1 << stems {
            return Err((
                "inner_patches",
                format!("{} stages merge 2^{stems} sub-patches per side, not {}", a.depths.len(), self.inner_patches),
            ));
        }
        if self.patch_size == 0 || !self.patch_size.is_multiple_of(self.inner_patches) || !self.img_size.is_multiple_of(self.patch_size) {
            return Err((
                "patch_size",
                format!(
                    "img_size {} must be a multiple of patch_size {}, itself a multiple of inner_patches {}",
                    self.img_size, self.patch_size, self.inner_patches
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.drop_path_rate) {
            return Err(("drop_path_rate", format!("must be in [0, 1), got {}", self.drop_path_rate)));
        }
        self.norm_cfg.validate_layer_norm().map_err(|e| ("norm_cfg.type", e))
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.img_size / self.patch_size
    }

    /// Builds the backbone. Every Linear starts from mmpretrain's
    /// `_init_weights`, the patch convolution from PyTorch's default, the
    /// position embedding from `N(0, 0.02)` truncated (trainable unless
    /// `fixed_pos_embed`); iTPN's variants adjust this afterwards.
    ///
    /// # Panics
    /// On settings [`HiVitSettings::validate`] rejects.
    pub fn build<B: Backend>(&self, fixed_pos_embed: bool, device: &B::Device, rng: &mut InitRng) -> HiVit<B> {
        if let Err((key, msg)) = self.validate() {
            panic!("invalid HiViT config at `{key}`: {msg}");
        }
        let a = &self.arch;
        let grid = self.grid();
        let stages = a.depths.len();
        let mut dim = a.embed_dims >> (stages - 1);
        let patch_norm = self.patch_norm.then_some(&self.norm_cfg);
        let patch_embed = PatchEmbed::new(self.in_chans, dim, self.patch_size, self.inner_patches, patch_norm, device, rng);
        let shape = [1, grid * grid, a.embed_dims];
        let pos_embed = self.ape.then(|| match fixed_pos_embed {
            true => rng.fixed_with(shape, Dist::TruncNormal(0.0, 0.02), |t| t, device),
            false => rng.param(shape, Dist::TruncNormal(0.0, 0.02), device),
        });
        let total: usize = a.depths.iter().sum::<usize>() + a.depths[..stages - 1].iter().sum::<usize>();
        let rate = |i: usize| if total > 1 { self.drop_path_rate * i as f64 / (total - 1) as f64 } else { 0.0 };
        let mut blocks = Vec::new();
        let mut k = 0;
        for (stage, &depth) in a.depths.iter().enumerate() {
            let main = dim == a.embed_dims;
            let n = if main { depth } else { 2 * depth };
            for _ in 0..n {
                let cfg = BlockConfig {
                    input_size: grid,
                    dim,
                    num_heads: if main { a.num_heads } else { 0 },
                    mlp_ratio: if main { self.mlp_ratio } else { self.stem_mlp_ratio },
                    qkv_bias: self.qkv_bias,
                    drop_path: rate(k),
                    rpe: self.rpe,
                    layer_scale_init_value: self.layer_scale_init_value,
                    norm_cfg: self.norm_cfg.clone(),
                };
                blocks.push(HiVitBlock::Block(cfg.init(LinearInit::TruncNormal, device, rng)));
                k += 1;
            }
            if stage + 1 < stages {
                blocks.push(HiVitBlock::Merge(PatchMerge::new(dim, &self.norm_cfg, LinearInit::TruncNormal, device, rng)));
                dim *= 2;
            }
        }
        let index =
            self.rpe.then(|| fixed(Tensor::from_data(TensorData::new(relative_position_index(grid), [grid * grid, grid * grid]), device)));
        HiVit {
            patch_embed,
            pos_embed,
            relative_position_index: index,
            blocks,
            mask_token: None,
            num_main_blocks: a.depths[stages - 1],
            img_size: self.img_size,
            rpe: self.rpe,
            mask_ratio: 0.0,
        }
    }
}

/// Configuration of [`HiVit`], mmpretrain's `HiViT`: its field names and
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HiVitConfig {
    /// A name from the arch table or custom dimensions.
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
    /// Stochastic depth, linear over every block.
    pub drop_path_rate: f64,
    /// LayerNorm config.
    pub norm_cfg: NormCfg,
    /// Output indices: one entry (the last main block).
    pub out_indices: serde_json::Value,
    /// Absolute position embedding.
    pub ape: bool,
    /// Relative position bias in the main stage.
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
    /// MMEngine `init_cfg` (accepted, not interpreted).
    pub init_cfg: Option<serde_json::Value>,
}

impl Default for HiVitConfig {
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
            norm_cfg: NormCfg::layer_norm(1e-5),
            out_indices: serde_json::json!([23]),
            ape: true,
            rpe: false,
            patch_norm: true,
            frozen_stages: -1,
            kernel_size: None,
            pad_size: None,
            layer_scale_init_value: 0.0,
            init_cfg: None,
        }
    }
}

impl HiVitConfig {
    /// The settings, after checking the arch and the unsupported arguments.
    pub fn settings(&self) -> Result<HiVitSettings, (&'static str, String)> {
        check_unsupported(
            self.qk_scale,
            self.drop_rate,
            self.attn_drop_rate,
            self.frozen_stages,
            self.kernel_size,
            self.pad_size,
            &self.out_indices,
        )?;
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
        Ok(s)
    }
}

/// One entry of HiViT's `blocks`: a block or a merge between stages. Keys
/// are the inner module's.
#[derive(Module, Debug)]
pub enum HiVitBlock<B: Backend> {
    /// `BlockWithRPE`.
    Block(BlockWithRpe<B>),
    /// `PatchMerge`.
    Merge(PatchMerge<B>),
}

/// HiViT. Keys as mmpretrain: `patch_embed.*`, `pos_embed`,
/// `relative_position_index` (with `rpe`), `blocks.{i}.*` (blocks and
/// merges in one list), and iTPN's `mask_token`.
#[derive(Module, Debug)]
pub struct HiVit<B: Backend> {
    /// Patch embedding onto the sub-patch grid.
    pub patch_embed: PatchEmbed<B>,
    /// `[1, L, embed_dims]`, with `ape`.
    pub pos_embed: Option<Param<Tensor<B, 3>>>,
    /// The backbone's own copy of the main stage's index (with `rpe`).
    pub relative_position_index: Option<Param<Tensor<B, 2>>>,
    /// Stem blocks, merges, then the main stage's blocks.
    pub blocks: Vec<HiVitBlock<B>>,
    /// iTPN's CLIP variant: `[1, 1, embed_dims]`.
    pub mask_token: Option<Param<Tensor<B, 3>>>,
    pub(crate) num_main_blocks: usize,
    pub(crate) img_size: usize,
    pub(crate) rpe: bool,
    pub(crate) mask_ratio: f64,
}

/// The stem's output: the sub-patch maps before each merge (iTPN's
/// pyramid) and the tokens entering the main stage.
#[derive(Debug, Clone)]
pub struct HiVitStem<B: Backend> {
    /// `[batch, L·inner², C/2^k]` before each merge, finest first.
    pub features: Vec<Tensor<B, 3>>,
    /// `[batch, L, embed_dims]`.
    pub tokens: Tensor<B, 3>,
}

impl<B: Backend> HiVit<B> {
    /// The main stage's width.
    pub fn embed_dims(&self) -> usize {
        match self.blocks.last() {
            Some(HiVitBlock::Block(b)) => b.norm2.gamma.dims()[0],
            _ => 0,
        }
    }

    /// The configured input size.
    pub fn img_size(&self) -> usize {
        self.img_size
    }

    /// Patches `L` at the configured size.
    pub fn num_patches(&self) -> usize {
        let g = self.img_size / self.patch_size();
        g * g
    }

    /// The patch size.
    pub fn patch_size(&self) -> usize {
        self.patch_embed.proj.weight.dims()[2] * self.patch_embed.inner()
    }

    pub(crate) fn check_input(&self, x: &Tensor<B, 4>) -> Result<(), ModelError> {
        let [_, c, h, w] = x.dims();
        let expected_c = self.patch_embed.proj.weight.dims()[1];
        if c != expected_c || h != self.img_size || w != self.img_size {
            return Err(ModelError::Shape {
                algorithm: "HiViT",
                expected: format!("[batch, {expected_c}, {0}, {0}]", self.img_size),
                got: x.dims().to_vec(),
            });
        }
        Ok(())
    }

    /// The stem blocks and merges on `[batch, L·inner², C]` sub-patch
    /// tokens (all patches, or the kept ones).
    pub fn stem(&self, mut x: Tensor<B, 3>, mut draws: Option<&mut Draws>) -> HiVitStem<B> {
        let mut inner = self.patch_embed.inner();
        let mut features = Vec::new();
        let stem = self.blocks.len() - self.num_main_blocks;
        for (i, block) in self.blocks[..stem].iter().enumerate() {
            match block {
                HiVitBlock::Block(b) => x = b.forward(x, false, &format!("blocks.{i}.drop_path"), draws.as_deref_mut()),
                HiVitBlock::Merge(m) => {
                    features.push(x.clone());
                    x = m.forward(x, inner);
                    inner /= 2;
                }
            }
        }
        HiVitStem { features, tokens: x }
    }

    /// The main stage's attention blocks on `[batch, tokens, embed_dims]`;
    /// the relative position bias only when `rpe` is asked for.
    pub fn main_stage(&self, mut x: Tensor<B, 3>, rpe: bool, mut draws: Option<&mut Draws>) -> Tensor<B, 3> {
        let stem = self.blocks.len() - self.num_main_blocks;
        for (i, block) in self.blocks.iter().enumerate().skip(stem) {
            if let HiVitBlock::Block(b) = block {
                x = b.forward(x, rpe, &format!("blocks.{i}.drop_path"), draws.as_deref_mut());
            }
        }
        x
    }

    /// mmpretrain's `HiViT.forward`: every patch through the stem, the
    /// position embedding, the main stage (with its relative position bias
    /// when `rpe`); the last block's tokens as a map, no final norm.
    ///
    /// # Shapes
    /// `[batch, in_chans, img_size, img_size] -> [batch, embed_dims, H/p, W/p]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 4>, ModelError> {
        self.check_input(&x)?;
        let [n, _, h, _] = x.dims();
        let g = h / self.patch_size();
        let mut x = self.stem(self.patch_embed.forward(x), None).tokens;
        if let Some(pos) = &self.pos_embed {
            x = x + pos.val();
        }
        let x = self.main_stage(x, self.rpe, None);
        let d = x.dims()[2];
        Ok(x.swap_dims(1, 2).reshape([n, d, g, g]))
    }
}
