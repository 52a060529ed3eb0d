//! Port of the pieces of `mmcls.models.backbones.MixMIMTransformer`
//! (`mixmim.py`, mmcls 1.0.0rc6) that MixMIM's pre-training backbone
//! builds on: the arch table, `MixMIMBlock` (an mmcls transformer layer
//! whose attention is window attention with a relative position bias,
//! restricted to tokens of the same source image) and `MixMIMLayer`.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor, TensorData},
};
use selfsup_core::Draws;
use selfsup_layers::norm::LayerNorm;
use selfsup_layers::{
    functional::drop_path,
    init::{Dist, InitRng},
    Ffn, NormCfg, PatchMerging, WindowMsa,
};
use serde::{Deserialize, Serialize};

/// A custom MixMIM arch: `dict(embed_dims, depths, num_heads)`; mmcls
/// also demands `num_layers` and `feedforward_channels`, which it never
/// reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixMimArchSpec {
    /// Width of the first stage.
    pub embed_dims: usize,
    /// Blocks per stage (four stages).
    pub depths: Vec<usize>,
    /// Heads per stage.
    pub num_heads: Vec<usize>,
    /// Accepted, unused (mmcls asserts it is present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_layers: Option<usize>,
    /// Accepted, unused (mmcls asserts it is present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedforward_channels: Option<usize>,
}

/// `arch`: `base`, `large`, `huge` (or `b`, `l`, `h`), or a custom table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MixMimArch {
    /// A name from mmcls's `arch_zoo`.
    Name(String),
    /// Custom dimensions.
    Custom(MixMimArchSpec),
}

impl MixMimArch {
    /// Resolves the arch as mmcls's `arch_zoo`; MixMIM has four stages.
    pub fn spec(&self) -> Result<MixMimArchSpec, String> {
        let zoo = |embed_dims, num_heads: [usize; 4]| MixMimArchSpec {
            embed_dims,
            depths: vec![2, 2, 18, 2],
            num_heads: num_heads.to_vec(),
            num_layers: None,
            feedforward_channels: None,
        };
        let s = match self {
            MixMimArch::Custom(s) => s.clone(),
            MixMimArch::Name(n) => match n.to_ascii_lowercase().as_str() {
                "b" | "base" => zoo(128, [4, 8, 16, 32]),
                "l" | "large" => zoo(192, [6, 12, 24, 48]),
                "h" | "huge" => zoo(352, [11, 22, 44, 88]),
                other => return Err(format!("unknown MixMIM arch `{other}`; expected base, large or huge")),
            },
        };
        if s.depths.len() != 4 || s.num_heads.len() != 4 {
            return Err(format!("MixMIM has four stages; got depths {:?}, num_heads {:?}", s.depths, s.num_heads));
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

/// mmcls's `MixMIMBlock`: `x + drop_path(attn(ln1(x)))` with window
/// attention over a `[h, w]` map (no shift; the window shrinks to the map
/// when the map is not larger), then `x + drop_path(ffn(ln2(x)))`. Keys
/// `ln1`, `attn.*`, `ln2`, `ffn.layers.*`.
#[derive(Module, Debug)]
pub struct MixMimBlock<B: Backend> {
    /// Norm before attention.
    pub ln1: LayerNorm<B>,
    /// Window attention with relative position bias.
    pub attn: WindowMsa<B>,
    /// Norm before the FFN.
    pub ln2: LayerNorm<B>,
    /// The FFN.
    pub ffn: Ffn<B>,
    drop_path: f64,
    resolution: [usize; 2],
}

impl<B: Backend> MixMimBlock<B> {
    /// A block over a `resolution` map; xavier-uniform Linear weights and
    /// zero biases (MixMIM's `_init_weights`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dims: usize,
        heads: usize,
        resolution: [usize; 2],
        window: usize,
        mlp_ratio: f64,
        drop_path: f64,
        norm: &NormCfg,
        device: &B::Device,
        rng: &mut InitRng,
    ) -> Self {
        let window = window.min(resolution[0].min(resolution[1]));
        let hidden = (mlp_ratio * dims as f64) as usize;
        let mut attn = WindowMsa::new(dims, heads, window, true, device, rng);
        attn.qkv = rng.linear_xavier(dims, 3 * dims, true, device);
        attn.proj = rng.linear_xavier(dims, dims, true, device);
        attn.relative_position_bias_table = rng.param([(2 * window - 1) * (2 * window - 1), heads], Dist::Constant(0.0), device);
        Self {
            ln1: norm.build_layer_norm(dims, device),
            attn,
            ln2: norm.build_layer_norm(dims, device),
            ffn: Ffn { fc1: rng.linear_xavier(dims, hidden, true, device), fc2: rng.linear_xavier(hidden, dims, true, device) },
            drop_path,
            resolution,
        }
    }

    /// `[batch, h·w, c]`; `source` is the per-token mixing mask `[h·w]`
    /// (1 = taken from the partner image), shared by the batch, or none.
    pub fn forward(&self, x: Tensor<B, 3>, source: Option<&[f32]>, key: &str, mut draws: Option<&mut Draws>) -> Tensor<B, 3> {
        let [b, l, c] = x.dims();
        let [h, w] = self.resolution;
        assert_eq!(l, h * w, "MixMIMBlock: {l} tokens for a {h}x{w} map");
        let ws = self.attn.window();
        let windows = self.ln1.forward(x.clone()).reshape([b, h / ws, ws, w / ws, ws, c]).permute([0, 1, 3, 2, 4, 5]).reshape([
            b * (h / ws) * (w / ws),
            ws * ws,
            c,
        ]);
        let mask = source.and_then(|m| same_source_mask::<B>(m, [h, w], ws, &x.device()));
        let a = self.attn.forward(windows, mask).reshape([b, h / ws, w / ws, ws, ws, c]).permute([0, 1, 3, 2, 4, 5]).reshape([b, l, c]);
        let x = x + drop_path(a, self.drop_path, &format!("{key}.attn"), draws.as_deref_mut());
        let f = self.ffn.forward(self.ln2.forward(x.clone()));
        x + drop_path(f, self.drop_path, &format!("{key}.ffn"), draws)
    }
}

/// The additive attention mask of `MixMIMWindowAttention` per window,
/// `[windows, w², w²]`: −1e30 between tokens from different source images.
/// `None` when every window holds tokens of one source (the mask would be
/// all zeros).
fn same_source_mask<B: Backend>(source: &[f32], [h, w]: [usize; 2], ws: usize, device: &B::Device) -> Option<Tensor<B, 3>> {
    let (nh, nw, n) = (h / ws, w / ws, ws * ws);
    let mut out = vec![0f32; nh * nw * n * n];
    for wi in 0..nh {
        for wj in 0..nw {
            let m: Vec<f32> = (0..n).map(|t| source[(wi * ws + t / ws) * w + wj * ws + t % ws]).collect();
            let base = (wi * nw + wj) * n * n;
            for r in 0..n {
                for c in 0..n {
                    if m[r] != m[c] {
                        out[base + r * n + c] = -1e30;
                    }
                }
            }
        }
    }
    out.iter().any(|v| *v != 0.0).then(|| Tensor::from_data(TensorData::new(out, [nh * nw, n, n]), device))
}

/// mmcls's `MixMIMLayer`: the blocks of one stage, then an optional
/// `PatchMerging`. Keys `blocks.{i}.*`, `downsample.*`.
#[derive(Module, Debug)]
pub struct MixMimLayer<B: Backend> {
    /// The blocks.
    pub blocks: Vec<MixMimBlock<B>>,
    /// Patch merging to the next stage (all but the last).
    pub downsample: Option<PatchMerging<B>>,
    resolution: [usize; 2],
}

impl<B: Backend> MixMimLayer<B> {
    /// A stage of `blocks` over a `resolution` map.
    pub fn new(blocks: Vec<MixMimBlock<B>>, downsample: Option<PatchMerging<B>>, resolution: [usize; 2]) -> Self {
        Self { blocks, downsample, resolution }
    }

    /// `[batch, h·w, c] -> [batch, h'·w', c']`.
    pub fn forward(&self, mut x: Tensor<B, 3>, source: Option<&[f32]>, key: &str, mut draws: Option<&mut Draws>) -> Tensor<B, 3> {
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x, source, &format!("{key}.blocks.{i}"), draws.as_deref_mut());
        }
        match &self.downsample {
            Some(merge) => merge.forward(x, self.resolution).0,
            None => x,
        }
    }
}
