//! Port of `mmselfsup.models.target_generators.VQKD` (`vqkd.py`, mmselfsup
//! 1.0.0): BEiT v2's vector-quantised knowledge-distillation tokenizer,
//! encoder and quantizer only (MMSelfSup builds no decoder).
//!
//! The encoder is mmcls's `BEiT` ([`BeitEncoder`], with the BEiT v2
//! config's `vqkd_encoder`: absolute position embedding, no relative
//! position bias, no layer scale, final norm `ln1`), whose patch tokens
//! go through `encode_task_layer` (Linear → Tanh → Linear, keys
//! `encode_task_layer.0`, `.2`) to the codebook width, are L2-normalised,
//! and take the index of the nearest entry of the
//! [`NormEmaVectorQuantizer`]'s codebook: `[n, 3, 224, 224] -> [n, 196]`
//! token ids. The input is BEiT v2's second view, `(x − 127.5) / 127.5`
//! (the data preprocessor's `second_mean`, `second_std`); the tokenizer
//! normalises nothing itself.
//!
//! The reference's forward also moves the codebook (see
//! [`crate::vector_quantizer`]); here the forward is pure and
//! [`Vqkd::encode`] returns what the algorithm needs to apply that update.
use burn::{
    module::{Module, Param},
    nn::Linear,
    tensor::{activation::tanh, backend::Backend, Int, Tensor},
};
use selfsup_layers::norm::LayerNorm;
use selfsup_layers::{
    functional::{l2_normalize, linear},
    init::{Dist, InitRng},
    BeitLayerConfig, BeitTransformerEncoderLayer, NormCfg, PatchEmbed, QkvBias, RelativePositionBias,
};
use serde::{Deserialize, Serialize};

use crate::{
    pretrained::{pretrained_init, validate_init_cfg, PretrainedInit},
    vector_quantizer::NormEmaVectorQuantizer,
};

/// Key rows between `encode_task_layer.0` / `.2` (an `nn.Sequential` with
/// a Tanh between) and our `fc1` / `fc2`.
pub const VQKD_KEY_REMAP: &[(&str, &str, &str, &str)] = &[
    (r"(^|\.)encode_task_layer\.0\.", "${1}encode_task_layer.fc1.", r"(^|\.)encode_task_layer\.fc1\.", "${1}encode_task_layer.0."),
    (r"(^|\.)encode_task_layer\.2\.", "${1}encode_task_layer.fc2.", r"(^|\.)encode_task_layer\.fc2\.", "${1}encode_task_layer.2."),
];

/// The dimensions of an mmcls arch dict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeitArchSpec {
    /// Token width.
    pub embed_dims: usize,
    /// Layers.
    pub num_layers: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// FFN hidden width.
    pub feedforward_channels: usize,
}

/// mmcls's `arch`: a name of `VisionTransformer.arch_zoo` or a dict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BeitArch {
    /// `'base'`, `'b'`, `'large'`, ...
    Name(String),
    /// Custom dimensions.
    Custom(BeitArchSpec),
}

impl BeitArch {
    /// The dimensions (mmcls's `arch_zoo`, which `BEiT` inherits).
    pub fn spec(&self) -> Result<BeitArchSpec, String> {
        let s = |embed_dims, num_layers, num_heads, feedforward_channels| BeitArchSpec {
            embed_dims,
            num_layers,
            num_heads,
            feedforward_channels,
        };
        match self {
            BeitArch::Custom(spec) => Ok(*spec),
            BeitArch::Name(n) => Ok(match n.to_lowercase().as_str() {
                "s" | "small" => s(768, 8, 8, 2304),
                "b" | "base" => s(768, 12, 12, 3072),
                "l" | "large" => s(1024, 24, 16, 4096),
                "h" | "huge" => s(1280, 32, 16, 5120),
                "eva-g" | "eva-giant" => s(1408, 40, 16, 6144),
                "deit-t" | "deit-tiny" => s(192, 12, 3, 768),
                "deit-s" | "deit-small" => s(384, 12, 6, 1536),
                "deit-b" | "deit-base" => s(768, 12, 12, 3072),
                other => return Err(format!("unknown arch `{other}`")),
            }),
        }
    }
}

/// mmcls's `BEiT(...)` arguments, VQKD's `encoder_config`. Defaults are
/// mmcls `BEiT`'s own (a partial dict means what it means in Python);
/// [`VqkdConfig::default`] holds the BEiT v2 configs' `vqkd_encoder`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BeitEncoderConfig {
    /// Architecture name or dimensions.
    pub arch: BeitArch,
    /// Input side (square).
    pub img_size: usize,
    /// Patch side.
    pub patch_size: usize,
    /// Input channels.
    pub in_channels: usize,
    /// The output layer (an index or a list; the first is VQKD's).
    pub out_indices: serde_json::Value,
    /// Dropout after the position embedding; must be 0.
    pub drop_rate: f64,
    /// Stochastic depth; must be 0 (the tokenizer is in training mode).
    pub drop_path_rate: f64,
    /// LayerNorm config.
    pub norm_cfg: NormCfg,
    /// `ln1` after the last layer.
    pub final_norm: bool,
    /// Keep the class token through the layers.
    pub with_cls_token: bool,
    /// Average the patch tokens; must be false for VQKD.
    pub avg_token: bool,
    /// Frozen stages (the tokenizer is frozen whole; no effect).
    pub frozen_stages: i64,
    /// Return the class token too; must be false for VQKD.
    pub output_cls_token: bool,
    /// Learned absolute position embedding `pos_embed`.
    pub use_abs_pos_emb: bool,
    /// A relative position bias table per layer.
    pub use_rel_pos_bias: bool,
    /// One relative position bias for all layers (`rel_pos_bias`).
    pub use_shared_rel_pos_bias: bool,
    /// Layer scale `gamma_1`, `gamma_2` (none when 0).
    pub layer_scale_init_value: f64,
    /// Position embedding resizing on load; sizes must match here.
    pub interpolate_mode: String,
    /// mmcv `PatchEmbed` arguments: empty (or `padding=0`).
    pub patch_cfg: serde_json::Map<String, serde_json::Value>,
    /// Per-layer overrides; must be empty.
    pub layer_cfgs: serde_json::Map<String, serde_json::Value>,
    /// MMEngine `init_cfg` of the encoder (accepted; VQKD's own `init_cfg`
    /// names the weight file).
    pub init_cfg: Option<serde_json::Value>,
}

impl Default for BeitEncoderConfig {
    fn default() -> Self {
        Self {
            arch: BeitArch::Name("base".into()),
            img_size: 224,
            patch_size: 16,
            in_channels: 3,
            out_indices: (-1).into(),
            drop_rate: 0.0,
            drop_path_rate: 0.0,
            norm_cfg: NormCfg::layer_norm(1e-6),
            final_norm: false,
            with_cls_token: true,
            avg_token: true,
            frozen_stages: -1,
            output_cls_token: false,
            use_abs_pos_emb: false,
            use_rel_pos_bias: true,
            use_shared_rel_pos_bias: false,
            layer_scale_init_value: 0.1,
            interpolate_mode: "bicubic".into(),
            patch_cfg: Default::default(),
            layer_cfgs: Default::default(),
            init_cfg: None,
        }
    }
}

impl BeitEncoderConfig {
    /// The BEiT v2 configs' `vqkd_encoder` dict.
    pub fn vqkd_encoder() -> Self {
        Self {
            final_norm: true,
            avg_token: false,
            use_abs_pos_emb: true,
            use_rel_pos_bias: false,
            layer_scale_init_value: 0.0,
            ..Self::default()
        }
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.img_size / self.patch_size.max(1)
    }

    /// The layer VQKD reads: `self.encoder(x)[0]`, the first output mmcls
    /// appends, i.e. the lowest of `out_indices` once resolved.
    pub fn out_index(&self, num_layers: usize) -> Result<usize, String> {
        let raw: Vec<i64> = match &self.out_indices {
            serde_json::Value::Array(a) => a.iter().map(|v| v.as_i64()).collect::<Option<_>>(),
            v => v.as_i64().map(|i| vec![i]),
        }
        .filter(|v: &Vec<i64>| !v.is_empty())
        .ok_or("out_indices must be an integer or a non-empty list of integers")?;
        raw.into_iter()
            .map(|i| {
                let j = if i < 0 { i + num_layers as i64 } else { i };
                if (0..num_layers as i64).contains(&j) {
                    Ok(j as usize)
                } else {
                    Err(format!("out index {i} is outside the {num_layers} layers"))
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.into_iter().min().expect("non-empty"))
    }

    /// Checks the fields VQKD can honour; `(key, message)` on error.
    pub fn validate(&self) -> Result<BeitArchSpec, (&'static str, String)> {
        let spec = self.arch.spec().map_err(|m| ("arch", m))?;
        if spec.num_heads == 0 || !spec.embed_dims.is_multiple_of(spec.num_heads) || spec.num_layers == 0 {
            return Err((
                "arch",
                format!("embed_dims {} must be a multiple of num_heads {} with at least one layer", spec.embed_dims, spec.num_heads),
            ));
        }
        if self.patch_size == 0 || self.img_size == 0 || !self.img_size.is_multiple_of(self.patch_size) {
            return Err(("img_size", format!("{} is not a positive multiple of patch_size {}", self.img_size, self.patch_size)));
        }
        if self.in_channels == 0 {
            return Err(("in_channels", "must be positive".into()));
        }
        self.out_index(spec.num_layers).map_err(|m| ("out_indices", m))?;
        if self.drop_rate != 0.0 {
            return Err(("drop_rate", "must be 0: the tokenizer runs in training mode, dropout would randomise its codes".into()));
        }
        if self.drop_path_rate != 0.0 {
            return Err((
                "drop_path_rate",
                "must be 0: the tokenizer runs in training mode, stochastic depth would randomise its codes".into(),
            ));
        }
        self.norm_cfg.validate_layer_norm().map_err(|m| ("norm_cfg", m))?;
        if self.avg_token || self.output_cls_token {
            return Err(("avg_token", "VQKD reads the patch tokens: avg_token and output_cls_token must be false".into()));
        }
        if self.use_rel_pos_bias && self.use_shared_rel_pos_bias {
            return Err(("use_rel_pos_bias", "use_rel_pos_bias and use_shared_rel_pos_bias cannot both be true".into()));
        }
        if !self.with_cls_token && (self.use_rel_pos_bias || self.use_shared_rel_pos_bias) {
            return Err(("with_cls_token", "mmcls's relative position bias assumes a class token".into()));
        }
        if !(self.patch_cfg.is_empty() || (self.patch_cfg.len() == 1 && self.patch_cfg.get("padding") == Some(&0.into()))) {
            return Err(("patch_cfg", "only an empty patch_cfg (or padding=0) is supported".into()));
        }
        if !self.layer_cfgs.is_empty() {
            return Err(("layer_cfgs", "per-layer overrides are not supported".into()));
        }
        Ok(spec)
    }

    /// Builds the encoder with mmcls's default initialisation (PyTorch's
    /// defaults for the patch convolution and the attention's Linear
    /// layers, zero q/v biases, xavier FFNs with `N(0, 1e-6)` biases,
    /// truncated-normal `pos_embed` and per-layer tables, zero class token
    /// and shared table).
    ///
    /// # Panics
    /// On a config [`BeitEncoderConfig::validate`] refuses.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> BeitEncoder<B> {
        let spec = self.validate().unwrap_or_else(|(k, m)| panic!("encoder_config.{k}: {m}"));
        let d = spec.embed_dims;
        let g = self.grid();
        let torch_default = |fan_in: usize| {
            let b = 1.0 / (fan_in as f64).sqrt();
            Dist::Uniform(-b, b)
        };
        let mut patch_embed = PatchEmbed::new(self.in_channels, d, self.patch_size, device, rng);
        let fan_in = self.in_channels * self.patch_size * self.patch_size;
        patch_embed.projection.weight = rng.param([d, self.in_channels, self.patch_size, self.patch_size], torch_default(fan_in), device);
        let layer = BeitLayerConfig {
            embed_dims: d,
            num_heads: spec.num_heads,
            feedforward_channels: spec.feedforward_channels,
            layer_scale_init_value: self.layer_scale_init_value,
            window_size: self.use_rel_pos_bias.then_some([g, g]),
            bias: QkvBias::QvBias,
            drop_path_rate: 0.0,
            norm_cfg: self.norm_cfg.clone(),
        };
        let layers = (0..spec.num_layers)
            .map(|_| {
                let mut l = layer.init(None, device, rng);
                l.attn.qkv.weight = rng.param([d, 3 * d], torch_default(d), device);
                l.attn.proj.weight = rng.param([d, d], torch_default(d), device);
                l.attn.proj.bias = Some(rng.param([d], torch_default(d), device));
                l
            })
            .collect();
        BeitEncoder {
            patch_embed,
            cls_token: rng.param([1, 1, d], Dist::Constant(0.0), device),
            pos_embed: self.use_abs_pos_emb.then(|| rng.param([1, g * g + 1, d], Dist::TruncNormal(0.0, 0.02), device)),
            rel_pos_bias: self.use_shared_rel_pos_bias.then(|| RelativePositionBias::new([g, g], spec.num_heads, device)),
            layers,
            ln1: self.final_norm.then(|| self.norm_cfg.build_layer_norm(d, device)),
            out_index: self.out_index(spec.num_layers).expect("validated"),
            with_cls_token: self.with_cls_token,
        }
    }
}

/// mmcls's `BEiT` trunk as VQKD uses it. Keys `patch_embed.projection.*`,
/// `cls_token`, `pos_embed`, `rel_pos_bias.*`, `layers.i.*`, `ln1.*`.
#[derive(Module, Debug)]
pub struct BeitEncoder<B: Backend> {
    /// The patch convolution.
    pub patch_embed: PatchEmbed<B>,
    /// `[1, 1, dims]`.
    pub cls_token: Param<Tensor<B, 3>>,
    /// `[1, 1 + grid², dims]`, with `use_abs_pos_emb`.
    pub pos_embed: Option<Param<Tensor<B, 3>>>,
    /// The shared bias, with `use_shared_rel_pos_bias`.
    pub rel_pos_bias: Option<RelativePositionBias<B>>,
    /// The layers.
    pub layers: Vec<BeitTransformerEncoderLayer<B>>,
    /// The final norm, with `final_norm`.
    pub ln1: Option<LayerNorm<B>>,
    out_index: usize,
    with_cls_token: bool,
}

impl<B: Backend> BeitEncoder<B> {
    /// The patch tokens of the output layer, `[n, 3, H, W] -> [n, grid²,
    /// dims]` (row-major; the reference's `(n, dims, h, w)` transposed).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 3> {
        let x = self.patch_embed.forward(x);
        let [n, l, d] = x.dims();
        let mut x = Tensor::cat(vec![self.cls_token.val().expand([n, 1, d]), x], 1);
        if let Some(pos) = &self.pos_embed {
            assert_eq!(
                pos.dims()[1],
                l + 1,
                "the tokenizer's position embedding is for {} patches, the image gives {l}",
                pos.dims()[1] - 1
            );
            x = x + pos.val();
        }
        if !self.with_cls_token {
            x = x.slice([0..n, 1..l + 1]);
        }
        let shared = self.rel_pos_bias.as_ref().map(|r| r.forward());
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate().take(self.out_index + 1) {
            x = layer.forward(x, shared.clone(), &format!("layers.{i}"), None);
            if i == last {
                if let Some(ln) = &self.ln1 {
                    x = ln.forward(x);
                }
            }
        }
        let t = x.dims()[1];
        if self.with_cls_token {
            x.slice([0..n, 1..t])
        } else {
            x
        }
    }
}

/// `encode_task_layer`: Linear → Tanh → Linear (keys `.0`, `.2`).
#[derive(Module, Debug)]
pub struct EncodeTaskLayer<B: Backend> {
    /// `dims -> dims` (key `encode_task_layer.0`).
    pub fc1: Linear<B>,
    /// `dims -> embed_dims` (key `encode_task_layer.2`).
    pub fc2: Linear<B>,
}

/// `dict(type='VQKD', ...)`: the reference's arguments and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VqkdConfig {
    /// mmcls `BEiT` arguments (required by MMSelfSup; default here: the BEiT
    /// v2 configs' `vqkd_encoder`).
    pub encoder_config: BeitEncoderConfig,
    /// Must be `None`: MMSelfSup's VQKD only runs the encoder.
    pub decoder_config: Option<serde_json::Value>,
    /// Codebook size.
    pub num_embed: usize,
    /// Code width.
    pub embed_dims: usize,
    /// EMA decay of the codebook and the code counts.
    pub decay: f64,
    /// Commitment-loss weight (unused by the tokenizer).
    pub beta: f64,
    /// Start with an empty codebook (`initted = 0`) filled by k-means on
    /// the first batch; otherwise normalised random entries.
    pub quantize_kmeans_init: bool,
    /// MMEngine `init_cfg`; `dict(type='Pretrained', checkpoint=PATH)` names
    /// the weight file (`vqkd_encoder.pth`), read by the algorithm's
    /// `load_pretrained`, never by `init`.
    pub init_cfg: Option<serde_json::Value>,
}

impl Default for VqkdConfig {
    fn default() -> Self {
        Self {
            encoder_config: BeitEncoderConfig::vqkd_encoder(),
            decoder_config: None,
            num_embed: 8192,
            embed_dims: 32,
            decay: 0.99,
            beta: 1.0,
            quantize_kmeans_init: true,
            init_cfg: None,
        }
    }
}

impl VqkdConfig {
    /// Checks the fields; `(key, message)` on error.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.encoder_config.validate().map_err(|(k, m)| ("encoder_config", format!("{k}: {m}")))?;
        if self.decoder_config.is_some() {
            return Err(("decoder_config", "MMSelfSup's VQKD builds only the encoder; leave decoder_config unset".into()));
        }
        if self.num_embed == 0 || self.embed_dims == 0 {
            return Err(("num_embed", "num_embed and embed_dims must be positive".into()));
        }
        if !(0.0..=1.0).contains(&self.decay) {
            return Err(("decay", format!("must be in [0, 1], got {}", self.decay)));
        }
        validate_init_cfg(self.init_cfg.as_ref()).map_err(|m| ("init_cfg", m))
    }

    /// The image side the tokenizer reads.
    pub fn img_size(&self) -> usize {
        self.encoder_config.img_size
    }

    /// Tokens per side: the codes are `[n, grid²]`.
    pub fn grid(&self) -> usize {
        self.encoder_config.grid()
    }

    /// The weight file `init_cfg` names, if any.
    pub fn pretrained(&self) -> Option<PretrainedInit> {
        pretrained_init(self.init_cfg.as_ref())
    }

    /// Builds the tokenizer with the reference's random initialisation,
    /// frozen.
    ///
    /// # Panics
    /// On a config [`VqkdConfig::validate`] refuses.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> Vqkd<B> {
        let encoder = self.encoder_config.init(device, rng);
        let d = self.encoder_config.validate().expect("validated").embed_dims;
        let quantize =
            NormEmaVectorQuantizer::new(self.num_embed, self.embed_dims, self.beta, self.decay, self.quantize_kmeans_init, device, rng);
        let encode_task_layer =
            EncodeTaskLayer { fc1: rng.linear_torch(d, d, true, device), fc2: rng.linear_torch(d, self.embed_dims, true, device) };
        crate::frozen::freeze(Vqkd { encoder, quantize, encode_task_layer })
    }
}

/// What [`Vqkd::encode`] gives: the quantizer's input and the codes.
#[derive(Debug, Clone)]
pub struct VqkdEncoding<B: Backend> {
    /// `[n·L, embed_dims]`: the task layer's output, L2-normalised (the
    /// reference's `z_flattened`).
    pub z: Tensor<B, 2>,
    /// `[n·L]`: the nearest codebook entry of each.
    pub codes: Tensor<B, 1, Int>,
}

/// `VQKD`. Keys `encoder.*`, `quantize.*`, `encode_task_layer.*`; frozen.
#[derive(Module, Debug)]
pub struct Vqkd<B: Backend> {
    /// The BEiT encoder.
    pub encoder: BeitEncoder<B>,
    /// The codebook.
    pub quantize: NormEmaVectorQuantizer<B>,
    /// Encoder width to code width.
    pub encode_task_layer: EncodeTaskLayer<B>,
}

impl<B: Backend> Vqkd<B> {
    /// The task layer's output before normalisation (the reference's
    /// `to_quantizer_features`), `[n, L, embed_dims]`.
    pub fn task_features(&self, x: Tensor<B, 4>) -> Tensor<B, 3> {
        let f = self.encoder.forward(x.detach());
        linear(&self.encode_task_layer.fc2, tanh(linear(&self.encode_task_layer.fc1, f)))
    }

    /// `encode` up to the codes: the normalised vectors and their codes,
    /// detached; what the codebook's EMA update needs.
    pub fn encode(&self, x: Tensor<B, 4>) -> VqkdEncoding<B> {
        let t = self.task_features(x);
        let [n, l, c] = t.dims();
        let z = l2_normalize(t.reshape([n * l, c]), 1).detach();
        VqkdEncoding { codes: self.quantize.codes(z.clone()), z }
    }

    /// `get_tokens`: `[n, 3, H, W] -> [n, grid²]` token ids (row-major).
    pub fn get_tokens(&self, x: Tensor<B, 4>) -> Tensor<B, 2, Int> {
        let n = x.dims()[0];
        let codes = self.encode(x).codes;
        let l = codes.dims()[0] / n;
        codes.reshape([n, l])
    }

    /// `forward`: the token ids, as [`Vqkd::get_tokens`].
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2, Int> {
        self.get_tokens(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_beitv2_config_and_names_bad_fields() {
        let json = serde_json::json!({
            "encoder_config": {"arch": {"embed_dims": 16, "num_layers": 2, "num_heads": 2, "feedforward_channels": 32},
                "img_size": 32, "patch_size": 8, "in_channels": 3, "out_indices": -1, "drop_rate": 0.0, "drop_path_rate": 0.0,
                "norm_cfg": {"type": "LN", "eps": 1e-6}, "final_norm": true, "with_cls_token": true, "avg_token": false,
                "frozen_stages": -1, "output_cls_token": false, "use_abs_pos_emb": true, "use_rel_pos_bias": false,
                "use_shared_rel_pos_bias": false, "layer_scale_init_value": 0.0, "interpolate_mode": "bicubic",
                "patch_cfg": {}, "layer_cfgs": {}, "init_cfg": null},
            "num_embed": 32, "embed_dims": 8, "quantize_kmeans_init": false});
        let cfg: VqkdConfig = serde_json::from_value(json).unwrap();
        cfg.validate().unwrap();
        assert_eq!((cfg.img_size(), cfg.grid()), (32, 4));
        VqkdConfig::default().validate().unwrap();
        let bad = VqkdConfig { encoder_config: BeitEncoderConfig::default(), ..Default::default() };
        assert_eq!(bad.validate().unwrap_err().0, "encoder_config");
        assert_eq!(
            VqkdConfig { decoder_config: Some(serde_json::json!({})), ..Default::default() }.validate().unwrap_err().0,
            "decoder_config"
        );
    }
}
