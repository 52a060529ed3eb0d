//! Port of `mmselfsup.models.utils.clip` (mmselfsup 1.0.0, from MILAN):
//! OpenAI's CLIP with a ViT image tower, in OpenAI's published layout,
//! whose image tower returns its last layer's attention too.
//!
//! The image tower (`visual.*`): a patch convolution without bias
//! (`conv1`), the class token (`class_embedding`) in front, a learned
//! `positional_embedding`, `ln_pre`, a [`Transformer`] of
//! [`ResidualAttentionBlock`]s (pre-norm `ln_1` → PyTorch's
//! `nn.MultiheadAttention` (`attn.in_proj_weight`, `attn.in_proj_bias`,
//! `attn.out_proj`) → residual, `ln_2` → `mlp.c_fc` → QuickGELU
//! (`x·σ(1.702x)`) → `mlp.c_proj` → residual), then `ln_post` on every
//! token and the projection `x @ proj`. The last block's attention
//! probabilities are averaged over the heads (PyTorch's
//! `need_weights=True`). The image tower has `width / 64` heads, as CLIP
//! hard-codes.
//!
//! `build_clip_model` builds the **whole** CLIP from the checkpoint, text
//! tower included (`transformer.*`, `token_embedding`,
//! `positional_embedding`, `ln_final`, `text_projection`, `logit_scale`),
//! so MILAN's and EVA's `state_dict` hold it under
//! `target_generator.tokenizer.*`; it is kept here as parameters for the
//! same inventory (MMSelfSup never runs it). LayerNorms have ε = 1e-5
//! (PyTorch's default).
use std::collections::BTreeMap;

use burn::{
    module::{Module, Param},
    nn::{conv::Conv2d, Linear},
    tensor::{activation::sigmoid, activation::softmax, backend::Backend, Tensor},
};
use selfsup_layers::norm::LayerNorm;
use selfsup_layers::{
    functional::{conv2d, linear, matmul},
    init::{Dist, InitRng},
};
use serde::{Deserialize, Serialize};

/// Keys of OpenAI's archives that are not parameters, dropped before
/// loading (as `build_clip_model` does).
pub const CLIP_SKIPPED_KEYS: &[&str] = &["input_resolution", "context_length", "vocab_size"];

/// The arguments of MMSelfSup's `CLIP(...)`, which `build_clip_model`
/// infers from the checkpoint's shapes ([`clip_config_from_shapes`]).
/// Defaults: OpenAI's ViT-B/16, the tower `clip_vit_base_16.pth.tar`
/// holds. `finetune` (always `False` from `CLIPGenerator`) and
/// `average_targets` (unused) are not fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClipConfig {
    /// Output width of both towers' projections (`text_projection`,
    /// `visual.proj`).
    pub embed_dim: usize,
    /// Image side the positional embedding is built for.
    pub image_resolution: usize,
    /// Blocks of the image tower.
    pub vision_layers: usize,
    /// Width of the image tower (`width / 64` heads).
    pub vision_width: usize,
    /// Patch side.
    pub vision_patch_size: usize,
    /// Text tokens.
    pub context_length: usize,
    /// Text vocabulary.
    pub vocab_size: usize,
    /// Width of the text tower.
    pub transformer_width: usize,
    /// Heads of the text tower (`width / 64` in `build_clip_model`).
    pub transformer_heads: usize,
    /// Blocks of the text tower.
    pub transformer_layers: usize,
}

impl Default for ClipConfig {
    fn default() -> Self {
        Self {
            embed_dim: 512,
            image_resolution: 224,
            vision_layers: 12,
            vision_width: 768,
            vision_patch_size: 16,
            context_length: 77,
            vocab_size: 49408,
            transformer_width: 512,
            transformer_heads: 8,
            transformer_layers: 12,
        }
    }
}

impl ClipConfig {
    /// Heads of the image tower: `vision_width / 64`, as CLIP hard-codes.
    pub fn vision_heads(&self) -> usize {
        self.vision_width / 64
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_resolution / self.vision_patch_size.max(1)
    }

    /// Checks the fields; `(key, message)` on error.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            ("embed_dim", self.embed_dim),
            ("vision_layers", self.vision_layers),
            ("vision_patch_size", self.vision_patch_size),
            ("context_length", self.context_length),
            ("vocab_size", self.vocab_size),
            ("transformer_layers", self.transformer_layers),
            ("transformer_heads", self.transformer_heads),
        ];
        if let Some((k, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err((k, "must be positive".into()));
        }
        let h = self.vision_heads();
        if h == 0 || !self.vision_width.is_multiple_of(h) {
            return Err((
                "vision_width",
                format!("CLIP's image tower has vision_width // 64 heads, which must divide it; {} does not work", self.vision_width),
            ));
        }
        if !self.image_resolution.is_multiple_of(self.vision_patch_size) || self.image_resolution == 0 {
            return Err((
                "image_resolution",
                format!("{} is not a multiple of the patch size {}", self.image_resolution, self.vision_patch_size),
            ));
        }
        if self.transformer_width == 0 || !self.transformer_width.is_multiple_of(self.transformer_heads) {
            return Err(("transformer_width", format!("must be a positive multiple of transformer_heads ({})", self.transformer_heads)));
        }
        Ok(())
    }

    /// The first field (other than the text tower's heads, which no shape
    /// shows) where `other` differs: `(field, ours, theirs)`.
    pub fn difference(&self, other: &ClipConfig) -> Option<(&'static str, usize, usize)> {
        [
            ("embed_dim", self.embed_dim, other.embed_dim),
            ("image_resolution", self.image_resolution, other.image_resolution),
            ("vision_layers", self.vision_layers, other.vision_layers),
            ("vision_width", self.vision_width, other.vision_width),
            ("vision_patch_size", self.vision_patch_size, other.vision_patch_size),
            ("context_length", self.context_length, other.context_length),
            ("vocab_size", self.vocab_size, other.vocab_size),
            ("transformer_width", self.transformer_width, other.transformer_width),
            ("transformer_layers", self.transformer_layers, other.transformer_layers),
        ]
        .into_iter()
        .find(|(_, a, b)| a != b)
    }

    /// Builds the whole CLIP with MMSelfSup's random initialisation
    /// (`CLIP.__init__` and `initialize_parameters`), frozen.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> Clip<B> {
        let w = self.transformer_width;
        let visual = ClipVisionConfig {
            input_resolution: self.image_resolution,
            patch_size: self.vision_patch_size,
            width: self.vision_width,
            layers: self.vision_layers,
            heads: self.vision_heads(),
            output_dim: self.embed_dim,
        }
        .init(device, rng);
        // initialize_parameters: the text tower only.
        let proj_std = (w as f64).powf(-0.5) * ((2 * self.transformer_layers) as f64).powf(-0.5);
        let attn_std = (w as f64).powf(-0.5);
        let fc_std = ((2 * w) as f64).powf(-0.5);
        let stds = TextStds { attn: attn_std, proj: proj_std, fc: fc_std };
        let transformer = Transformer {
            resblocks: (0..self.transformer_layers)
                .map(|_| ResidualAttentionBlock::new(w, self.transformer_heads, Some(stds), device, rng))
                .collect(),
        };
        crate::frozen::freeze(Clip {
            visual,
            transformer,
            token_embedding: TokenEmbedding { weight: rng.param([self.vocab_size, w], Dist::Normal(0.0, 0.02), device) },
            positional_embedding: rng.param([self.context_length, w], Dist::Normal(0.0, 0.01), device),
            ln_final: layer_norm(w, device),
            text_projection: rng.param([w, self.embed_dim], Dist::Normal(0.0, attn_std), device),
            logit_scale: rng.param([1], Dist::Constant((1.0f64 / 0.07).ln()), device),
        })
    }
}

/// `build_clip_model`'s inference of the architecture from a checkpoint's
/// `key -> shape` (OpenAI's layout, no prefix).
pub fn clip_config_from_shapes(shapes: &BTreeMap<String, Vec<usize>>) -> Result<ClipConfig, String> {
    if !shapes.contains_key("visual.proj") {
        return Err("not a ViT CLIP in OpenAI's layout (no `visual.proj`); MMSelfSup's build_clip_model needs one".into());
    }
    let dim = |key: &str, i: usize| -> Result<usize, String> {
        let s = shapes.get(key).ok_or_else(|| format!("`{key}` is missing"))?;
        let i = if i == usize::MAX { s.len().saturating_sub(1) } else { i };
        s.get(i).copied().ok_or_else(|| format!("`{key}` has shape {s:?}"))
    };
    let vision_width = dim("visual.conv1.weight", 0)?;
    let vision_patch_size = dim("visual.conv1.weight", usize::MAX)?;
    let vision_layers = shapes.keys().filter(|k| k.starts_with("visual.") && k.ends_with(".attn.in_proj_weight")).count();
    let tokens = dim("visual.positional_embedding", 0)?;
    let grid = ((tokens.saturating_sub(1)) as f64).sqrt().round() as usize;
    let transformer_width = dim("ln_final.weight", 0)?;
    let transformer_layers = shapes
        .keys()
        .filter(|k| k.starts_with("transformer.resblocks"))
        .filter_map(|k| k.split('.').nth(2))
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    Ok(ClipConfig {
        embed_dim: dim("text_projection", 1)?,
        image_resolution: vision_patch_size * grid,
        vision_layers,
        vision_width,
        vision_patch_size,
        context_length: dim("positional_embedding", 0)?,
        vocab_size: dim("token_embedding.weight", 0)?,
        transformer_width,
        transformer_heads: transformer_width / 64,
        transformer_layers,
    })
}

/// The arguments of the reference's `VisionTransformer` (CLIP's image
/// tower), heads included (CLIP passes `width / 64`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipVisionConfig {
    /// Image side.
    pub input_resolution: usize,
    /// Patch side.
    pub patch_size: usize,
    /// Token width.
    pub width: usize,
    /// Blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Width after `proj`.
    pub output_dim: usize,
}

impl ClipVisionConfig {
    /// The tower with the reference's initialisation: PyTorch's defaults
    /// for the convolution and the blocks (`nn.MultiheadAttention`:
    /// xavier-uniform `in_proj_weight`, zero biases), `width^-0.5·randn` for
    /// the class token, positional embedding and projection; frozen.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> ClipVisionTransformer<B> {
        let (w, p) = (self.width, self.patch_size);
        let scale = (w as f64).powf(-0.5);
        let fan_in = 3 * p * p;
        let bound = 1.0 / (fan_in as f64).sqrt();
        let conv1 = rng.conv2d(3, w, p, p, 0, 1, Dist::Uniform(-bound, bound), None, device);
        let tokens = (self.input_resolution / p).pow(2) + 1;
        crate::frozen::freeze(ClipVisionTransformer {
            conv1,
            class_embedding: rng.param([w], Dist::Normal(0.0, scale), device),
            positional_embedding: rng.param([tokens, w], Dist::Normal(0.0, scale), device),
            ln_pre: layer_norm(w, device),
            transformer: Transformer {
                resblocks: (0..self.layers).map(|_| ResidualAttentionBlock::new(w, self.heads, None, device, rng)).collect(),
            },
            ln_post: layer_norm(w, device),
            proj: rng.param([w, self.output_dim], Dist::Normal(0.0, scale), device),
        })
    }
}

fn layer_norm<B: Backend>(d: usize, device: &B::Device) -> LayerNorm<B> {
    LayerNorm::new(d, 1e-5, device)
}

/// The text tower's `initialize_parameters` standard deviations.
#[derive(Debug, Clone, Copy)]
struct TextStds {
    attn: f64,
    proj: f64,
    fc: f64,
}

/// PyTorch's `nn.MultiheadAttention` (self-attention, no mask): keys
/// `in_proj_weight` (`[3·width, width]`, PyTorch's layout), `in_proj_bias`,
/// `out_proj.*`.
#[derive(Module, Debug)]
pub struct ClipMultiheadAttention<B: Backend> {
    /// `[3·width, width]`: q, k and v stacked.
    pub in_proj_weight: Param<Tensor<B, 2>>,
    /// `[3·width]`.
    pub in_proj_bias: Param<Tensor<B, 1>>,
    /// The output projection.
    pub out_proj: Linear<B>,
    num_heads: usize,
}

impl<B: Backend> ClipMultiheadAttention<B> {
    /// `(output [n, L, width], probabilities [n, heads, L, L])`.
    pub fn forward(&self, x: Tensor<B, 3>) -> (Tensor<B, 3>, Tensor<B, 4>) {
        let [n, l, c] = x.dims();
        let h = self.num_heads;
        let qkv = matmul(x.reshape([n * l, c]), self.in_proj_weight.val().transpose()).reshape([n, l, 3 * c])
            + self.in_proj_bias.val().unsqueeze_dims::<3>(&[0, 1]);
        let qkv = qkv.reshape([n, l, 3, h, c / h]).permute([2, 0, 3, 1, 4]);
        let q = qkv.clone().slice([0..1]).squeeze_dim::<4>(0).mul_scalar(((c / h) as f64).powf(-0.5));
        let k = qkv.clone().slice([1..2]).squeeze_dim::<4>(0);
        let v = qkv.slice([2..3]).squeeze_dim::<4>(0);
        let attn = softmax(matmul(q, k.swap_dims(2, 3)), 3);
        let out = matmul(attn.clone(), v).swap_dims(1, 2).reshape([n, l, c]);
        (linear(&self.out_proj, out), attn)
    }
}

/// `mlp`: `c_fc` → QuickGELU → `c_proj`.
#[derive(Module, Debug)]
pub struct ClipMlp<B: Backend> {
    /// `width -> 4·width`.
    pub c_fc: Linear<B>,
    /// `4·width -> width`.
    pub c_proj: Linear<B>,
}

/// CLIP's QuickGELU, `x·σ(1.702·x)`.
pub fn quick_gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    x.clone() * sigmoid(x.mul_scalar(1.702))
}

/// The reference's `ResidualAttentionBlock`.
#[derive(Module, Debug)]
pub struct ResidualAttentionBlock<B: Backend> {
    /// Self-attention.
    pub attn: ClipMultiheadAttention<B>,
    /// Norm before attention.
    pub ln_1: LayerNorm<B>,
    /// The MLP.
    pub mlp: ClipMlp<B>,
    /// Norm before the MLP.
    pub ln_2: LayerNorm<B>,
}

impl<B: Backend> ResidualAttentionBlock<B> {
    /// PyTorch's defaults, or with `text` the text tower's
    /// `initialize_parameters` on the four weights.
    fn new(w: usize, heads: usize, text: Option<TextStds>, device: &B::Device, rng: &mut InitRng) -> Self {
        let u = |fan_in: usize| {
            let b = 1.0 / (fan_in as f64).sqrt();
            Dist::Uniform(-b, b)
        };
        let (in_w, out_w, fc_w, proj_w) = match text {
            Some(s) => (Dist::Normal(0.0, s.attn), Dist::Normal(0.0, s.proj), Dist::Normal(0.0, s.fc), Dist::Normal(0.0, s.proj)),
            None => (Dist::xavier_uniform(w, 3 * w), u(w), u(w), u(4 * w)),
        };
        let zero = Dist::Constant(0.0);
        Self {
            attn: ClipMultiheadAttention {
                in_proj_weight: rng.param([3 * w, w], in_w, device),
                in_proj_bias: rng.param([3 * w], zero, device),
                out_proj: rng.linear(w, w, out_w, Some(zero), device),
                num_heads: heads,
            },
            ln_1: layer_norm(w, device),
            mlp: ClipMlp {
                c_fc: rng.linear(w, 4 * w, fc_w, Some(u(w)), device),
                c_proj: rng.linear(4 * w, w, proj_w, Some(u(4 * w)), device),
            },
            ln_2: layer_norm(w, device),
        }
    }

    /// `(x [n, L, width], the attention's head-averaged probabilities [n,
    /// L, L])`.
    pub fn forward(&self, x: Tensor<B, 3>) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let (a, attn) = self.attn.forward(self.ln_1.forward(x.clone()));
        let x = x + a;
        let m = linear(&self.mlp.c_proj, quick_gelu(linear(&self.mlp.c_fc, self.ln_2.forward(x.clone()))));
        (x + m, attn.mean_dim(1).squeeze_dim::<3>(1))
    }
}

/// `transformer.resblocks.*`.
#[derive(Module, Debug)]
pub struct Transformer<B: Backend> {
    /// The blocks.
    pub resblocks: Vec<ResidualAttentionBlock<B>>,
}

impl<B: Backend> Transformer<B> {
    /// `(x after the last block, its head-averaged attention [n, L, L])`.
    pub fn forward(&self, x: Tensor<B, 3>) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let mut x = x;
        let mut attention = None;
        for block in &self.resblocks {
            let (y, a) = block.forward(x);
            x = y;
            attention = Some(a);
        }
        (x, attention.expect("CLIP's transformer has at least one block"))
    }
}

/// The image tower (`visual.*`).
#[derive(Module, Debug)]
pub struct ClipVisionTransformer<B: Backend> {
    /// `[width, 3, p, p]`, stride `p`, no bias.
    pub conv1: Conv2d<B>,
    /// `[width]`.
    pub class_embedding: Param<Tensor<B, 1>>,
    /// `[grid² + 1, width]`.
    pub positional_embedding: Param<Tensor<B, 2>>,
    /// Norm before the blocks.
    pub ln_pre: LayerNorm<B>,
    /// The blocks.
    pub transformer: Transformer<B>,
    /// Norm after the blocks, on every token.
    pub ln_post: LayerNorm<B>,
    /// `[width, output_dim]`, applied as `x @ proj`.
    pub proj: Param<Tensor<B, 2>>,
}

/// CLIP's image features and last-layer attention.
#[derive(Debug, Clone)]
pub struct ClipOutput<B: Backend> {
    /// `[n, 1 + grid², output_dim]`: every token after `ln_post` and
    /// `proj`, the class token first.
    pub features: Tensor<B, 3>,
    /// `[n, 1 + grid², 1 + grid²]`: the last block's attention
    /// probabilities, averaged over the heads (row = query).
    pub attention: Tensor<B, 3>,
}

impl<B: Backend> ClipVisionTransformer<B> {
    /// The tokens after `ln_pre`, `[n, 1 + grid², width]`.
    pub fn embed(&self, x: Tensor<B, 4>) -> Tensor<B, 3> {
        let x = conv2d(&self.conv1, x); // [n, w, g, g]
        let [n, w, gh, gw] = x.dims();
        let tokens = self.positional_embedding.dims()[0];
        assert_eq!(
            gh * gw + 1,
            tokens,
            "CLIP's positional embedding has {tokens} tokens but the image gives {gh}x{gw} patches: feed the image size it was built for"
        );
        let x = x.reshape([n, w, gh * gw]).swap_dims(1, 2);
        let cls = self.class_embedding.val().reshape([1, 1, w]).expand([n, 1, w]);
        let x = Tensor::cat(vec![cls, x], 1) + self.positional_embedding.val().unsqueeze_dim::<3>(0);
        self.ln_pre.forward(x)
    }

    /// Detached (the reference runs under `torch.no_grad()`).
    ///
    /// # Shapes
    /// - `x`: `[n, 3, image_resolution, image_resolution]`
    /// - returns features `[n, 1 + grid², output_dim]` and attention
    ///   `[n, 1 + grid², 1 + grid²]`
    pub fn forward(&self, x: Tensor<B, 4>) -> ClipOutput<B> {
        let (x, attention) = self.transformer.forward(self.embed(x.detach()));
        let x = self.ln_post.forward(x);
        let [n, l, w] = x.dims();
        let features = matmul(x.reshape([n * l, w]), self.proj.val()).reshape([n, l, self.proj.dims()[1]]);
        ClipOutput { features: features.detach(), attention: attention.detach() }
    }
}

/// `token_embedding` (an `nn.Embedding`): `weight [vocab, width]`.
#[derive(Module, Debug)]
pub struct TokenEmbedding<B: Backend> {
    /// `[vocab_size, transformer_width]`.
    pub weight: Param<Tensor<B, 2>>,
}

/// MMSelfSup's `CLIP`: the image tower and the (never run) text tower.
/// Frozen.
#[derive(Module, Debug)]
pub struct Clip<B: Backend> {
    /// The image tower.
    pub visual: ClipVisionTransformer<B>,
    /// The text tower's blocks.
    pub transformer: Transformer<B>,
    /// Text token embedding.
    pub token_embedding: TokenEmbedding<B>,
    /// `[context_length, transformer_width]`.
    pub positional_embedding: Param<Tensor<B, 2>>,
    /// The text tower's final norm.
    pub ln_final: LayerNorm<B>,
    /// `[transformer_width, embed_dim]`.
    pub text_projection: Param<Tensor<B, 2>>,
    /// The contrastive temperature's log (0-d in PyTorch, `[1]` here).
    pub logit_scale: Param<Tensor<B, 1>>,
}

impl<B: Backend> Clip<B> {
    /// `encode_image`: the image tower's features and last attention.
    pub fn encode_image(&self, image: Tensor<B, 4>) -> ClipOutput<B> {
        self.visual.forward(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vit_b16_shapes(layers: usize) -> BTreeMap<String, Vec<usize>> {
        let mut s = BTreeMap::new();
        s.insert("visual.proj".to_string(), vec![768, 512]);
        s.insert("visual.conv1.weight".to_string(), vec![768, 3, 16, 16]);
        s.insert("visual.positional_embedding".to_string(), vec![197, 768]);
        for i in 0..layers {
            s.insert(format!("visual.transformer.resblocks.{i}.attn.in_proj_weight"), vec![2304, 768]);
            s.insert(format!("transformer.resblocks.{i}.attn.in_proj_weight"), vec![1536, 512]);
            s.insert(format!("transformer.resblocks.{i}.ln_1.weight"), vec![512]);
        }
        s.insert("text_projection".to_string(), vec![512, 512]);
        s.insert("positional_embedding".to_string(), vec![77, 512]);
        s.insert("token_embedding.weight".to_string(), vec![49408, 512]);
        s.insert("ln_final.weight".to_string(), vec![512]);
        s
    }

    #[test]
    fn infers_vit_b16_as_build_clip_model_does() {
        let cfg = clip_config_from_shapes(&vit_b16_shapes(12)).unwrap();
        assert_eq!(cfg, ClipConfig::default());
        cfg.validate().unwrap();
        assert_eq!((cfg.vision_heads(), cfg.grid()), (12, 14));
        let other = clip_config_from_shapes(&vit_b16_shapes(2)).unwrap();
        assert_eq!(ClipConfig::default().difference(&other), Some(("vision_layers", 12, 2)));
        let mut no_proj = vit_b16_shapes(1);
        no_proj.remove("visual.proj");
        assert!(clip_config_from_shapes(&no_proj).unwrap_err().contains("visual.proj"));
        assert_eq!(ClipConfig { vision_width: 32, ..Default::default() }.validate().unwrap_err().0, "vision_width");
    }
}
