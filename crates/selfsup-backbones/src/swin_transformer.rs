//! Port of the pieces of `mmcls.models.backbones.SwinTransformer`
//! (`swin_transformer.py`, mmcls 1.0.0rc6) that SimMIM's backbone builds
//! on: the arch table, `SwinBlock` and `SwinBlockSequence`.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_core::Draws;
use selfsup_layers::norm::LayerNorm;
use selfsup_layers::{
    functional::drop_path,
    init::{Dist, InitRng},
    Ffn, NormCfg, PatchMerging, ShiftWindowMsa, WindowMsa,
};
use serde::{Deserialize, Serialize};

/// A custom Swin arch: `dict(embed_dims, depths, num_heads)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwinArchSpec {
    /// Width of the first stage (doubled by every patch merging).
    pub embed_dims: usize,
    /// Blocks per stage.
    pub depths: Vec<usize>,
    /// Attention heads per stage.
    pub num_heads: Vec<usize>,
}

/// `arch`: an mmcls name (`T`, `S`, `B`, `L`, or `tiny`, ...) or a custom
/// table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SwinArch {
    /// A name from mmcls's `arch_zoo` (case-insensitive).
    Name(String),
    /// Custom dimensions.
    Custom(SwinArchSpec),
}

impl SwinArch {
    /// Resolves the arch, as mmcls's `arch_zoo`.
    pub fn spec(&self) -> Result<SwinArchSpec, String> {
        let spec = |embed_dims, depths: [usize; 4], num_heads: [usize; 4]| SwinArchSpec {
            embed_dims,
            depths: depths.to_vec(),
            num_heads: num_heads.to_vec(),
        };
        let s = match self {
            SwinArch::Custom(s) => s.clone(),
            SwinArch::Name(name) => match name.to_ascii_lowercase().as_str() {
                "t" | "tiny" => spec(96, [2, 2, 6, 2], [3, 6, 12, 24]),
                "s" | "small" => spec(96, [2, 2, 18, 2], [3, 6, 12, 24]),
                "b" | "base" => spec(128, [2, 2, 18, 2], [4, 8, 16, 32]),
                "l" | "large" => spec(192, [2, 2, 18, 2], [6, 12, 24, 48]),
                other => return Err(format!("unknown Swin arch `{other}`; expected t, s, b, l (or tiny, small, base, large)")),
            },
        };
        if s.depths.is_empty() || s.depths.len() != s.num_heads.len() {
            return Err(format!("depths {:?} and num_heads {:?} must be non-empty and of one length", s.depths, s.num_heads));
        }
        for (i, &h) in s.num_heads.iter().enumerate() {
            let width = s.embed_dims << i;
            if h == 0 || width % h != 0 {
                return Err(format!("stage {i}: width {width} is not divisible by {h} heads"));
            }
        }
        Ok(s)
    }
}

/// mmcls's `SwinBlock`: `x + drop_path(attn(norm1(x)))`, then
/// `x + drop_path(ffn(norm2(x)))`. Keys `norm1`, `attn.w_msa.*`, `norm2`,
/// `ffn.layers.*`.
#[derive(Module, Debug)]
pub struct SwinBlock<B: Backend> {
    /// Norm before attention.
    pub norm1: LayerNorm<B>,
    /// (Shifted) window attention.
    pub attn: ShiftWindowMsa<B>,
    /// Norm before the FFN.
    pub norm2: LayerNorm<B>,
    /// The FFN (ratio 4, GELU).
    pub ffn: Ffn<B>,
    drop_path: f64,
}

impl<B: Backend> SwinBlock<B> {
    /// A block of `dims` channels; `shift` shifts by half a window.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dims: usize,
        heads: usize,
        window: usize,
        shift: bool,
        drop_path: f64,
        pad_small_map: bool,
        norm: &NormCfg,
        device: &B::Device,
        rng: &mut InitRng,
    ) -> Self {
        let tn = Dist::TruncNormal(0.0, 0.02);
        let zero = Some(Dist::Constant(0.0));
        let hidden = dims * 4;
        Self {
            norm1: norm.build_layer_norm(dims, device),
            attn: ShiftWindowMsa::new(
                WindowMsa::new(dims, heads, window, true, device, rng),
                if shift { window / 2 } else { 0 },
                pad_small_map,
            ),
            norm2: norm.build_layer_norm(dims, device),
            ffn: Ffn { fc1: rng.linear(dims, hidden, tn, zero, device), fc2: rng.linear(hidden, dims, tn, zero, device) },
            drop_path,
        }
    }

    /// `[batch, h·w, c] -> [batch, h·w, c]`; `draws` (training) drive the
    /// stochastic depth, under `key.attn` and `key.ffn`.
    pub fn forward(&self, x: Tensor<B, 3>, hw: [usize; 2], key: &str, mut draws: Option<&mut Draws>) -> Tensor<B, 3> {
        let a = self.attn.forward(self.norm1.forward(x.clone()), hw);
        let x = x + drop_path(a, self.drop_path, &format!("{key}.attn"), draws.as_deref_mut());
        let f = self.ffn.forward(self.norm2.forward(x.clone()));
        x + drop_path(f, self.drop_path, &format!("{key}.ffn"), draws)
    }
}

/// mmcls's `SwinBlockSequence`: the blocks of one stage (every second one
/// shifted), then an optional `PatchMerging`. Keys `blocks.{i}.*`,
/// `downsample.*`.
#[derive(Module, Debug)]
pub struct SwinBlockSequence<B: Backend> {
    /// The blocks.
    pub blocks: Vec<SwinBlock<B>>,
    /// Patch merging to the next stage (all but the last stage).
    pub downsample: Option<PatchMerging<B>>,
}

impl<B: Backend> SwinBlockSequence<B> {
    /// `[batch, h·w, c] -> ([batch, h'·w', c'], [h', w'])`.
    pub fn forward(&self, mut x: Tensor<B, 3>, hw: [usize; 2], key: &str, mut draws: Option<&mut Draws>) -> (Tensor<B, 3>, [usize; 2]) {
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x, hw, &format!("{key}.blocks.{i}"), draws.as_deref_mut());
        }
        match &self.downsample {
            Some(merge) => merge.forward(x, hw),
            None => (x, hw),
        }
    }
}

/// Builds the stages of a Swin arch: stage `i` has width `embed_dims·2^i`,
/// window `windows[i]`, stochastic depth linear from 0 to `drop_path_rate`
/// over all blocks, and a patch merging unless it is the last; with
/// `pad_small_map`, maps smaller than their window are padded.
pub fn build_stages<B: Backend>(
    spec: &SwinArchSpec,
    windows: &[usize],
    drop_path_rate: f64,
    pad_small_map: bool,
    norm: &NormCfg,
    device: &B::Device,
    rng: &mut InitRng,
) -> Vec<SwinBlockSequence<B>> {
    let total: usize = spec.depths.iter().sum();
    let dpr = |i: usize| if total > 1 { drop_path_rate * i as f64 / (total - 1) as f64 } else { 0.0 };
    let mut offset = 0;
    let stages = spec.depths.len();
    (0..stages)
        .map(|s| {
            let dims = spec.embed_dims << s;
            let blocks = (0..spec.depths[s])
                .map(|b| SwinBlock::new(dims, spec.num_heads[s], windows[s], b % 2 == 1, dpr(offset + b), pad_small_map, norm, device, rng))
                .collect();
            offset += spec.depths[s];
            let downsample = (s + 1 < stages).then(|| PatchMerging::new(dims, 2 * dims, &NormCfg::layer_norm(1e-5), device, rng));
            SwinBlockSequence { blocks, downsample }
        })
        .collect()
}
