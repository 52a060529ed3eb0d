//! Port of `mmselfsup.models.target_generators.dall_e` (mmselfsup 1.0.0),
//! registered as `DALL-E` (class `Encoder`, OpenAI's DALL-E dVAE encoder as
//! BEiT ships it): BEiT v1's and CAE's tokenizer.
//!
//! A 7 × 7 input convolution, four groups of `n_blk_per_group` residual
//! blocks with `n_hid`, `2·n_hid`, `4·n_hid` and `8·n_hid` channels and a
//! 2 × 2 max-pool after each of the first three, then ReLU and a 1 × 1
//! convolution to `vocab_size` logits: `[n, 3, h, w] -> [n, vocab, h/8,
//! w/8]`. A block is `id_path(x) + (1/n_layers²)·res_path(x)` with
//! `n_layers = 4·n_blk_per_group`, `res_path` = four ReLU-then-convolution
//! steps (3 × 3, 3 × 3, 3 × 3, 1 × 1, through `n_out/4` channels) and
//! `id_path` a 1 × 1 convolution where the width changes (the identity
//! otherwise). The targets are the argmax over the vocabulary.
//!
//! The convolutions' parameters are named `w` and `b`, as in the reference
//! (`blocks.input.w`, `blocks.group_1.block_1.res_path.conv_1.w`,
//! `blocks.output.conv.w`); the blocks of a group are a `Vec` here
//! (`group_1.block.0`) with the [`DALLE_KEY_REMAP`] rows to `block_1`.
//!
//! Input: the reference encoder maps nothing; its input is already in
//! `[0.1, 0.9]`, which BEiT's `TwoNormDataPreprocessor` (`second_mean
//! = -20.4`, `second_std = 204`) and CAE's data preprocessor produce from
//! 0–255 pixels: DALL-E's `map_pixels` with ε = 0.1 ([`map_pixels`]).
//!
//! Precision: on CUDA the reference runs the blocks' convolutions in
//! float16 (`use_float16=True` of its `Conv2d`; the output convolution and
//! everything on the CPU stay float32). This port always computes in
//! float32; `use_mixed_precision`, unused by the reference too, changes
//! nothing.
use burn::{
    module::{Module, Param},
    tensor::{
        backend::Backend,
        module::{conv2d, max_pool2d},
        ops::ConvOptions,
        Tensor,
    },
};
use selfsup_layers::init::{Dist, InitRng};
use serde::{Deserialize, Serialize};

use crate::pretrained::{pretrained_init, validate_init_cfg, PretrainedInit};

/// DALL-E's `logit_laplace_eps`: pixels in `[0, 1]` are squeezed into
/// `[ε, 1 − ε]`.
pub const LOGIT_LAPLACE_EPS: f64 = 0.1;

/// The reference's `Encoder.group_count`.
pub const GROUP_COUNT: usize = 4;

/// The most blocks per group the key map names (`block_1` ..
/// `block_9`).
pub const MAX_BLOCKS_PER_GROUP: usize = 9;

/// Key rows between the reference's `group_g.block_{i+1}` and our
/// `group_g.block.{i}` (`(pytorch_pattern, ours, ours_pattern, pytorch)`,
/// for `selfsup_weights::KeyMap::rows`).
pub const DALLE_KEY_REMAP: &[(&str, &str, &str, &str)] = &[
    (
        r"(^|\.)blocks\.group_([1-4])\.block_1\.",
        "${1}blocks.group_${2}.block.0.",
        r"(^|\.)blocks\.group_([1-4])\.block\.0\.",
        "${1}blocks.group_${2}.block_1.",
    ),
    (
        r"(^|\.)blocks\.group_([1-4])\.block_2\.",
        "${1}blocks.group_${2}.block.1.",
        r"(^|\.)blocks\.group_([1-4])\.block\.1\.",
        "${1}blocks.group_${2}.block_2.",
    ),
    (
        r"(^|\.)blocks\.group_([1-4])\.block_3\.",
        "${1}blocks.group_${2}.block.2.",
        r"(^|\.)blocks\.group_([1-4])\.block\.2\.",
        "${1}blocks.group_${2}.block_3.",
    ),
    (
        r"(^|\.)blocks\.group_([1-4])\.block_4\.",
        "${1}blocks.group_${2}.block.3.",
        r"(^|\.)blocks\.group_([1-4])\.block\.3\.",
        "${1}blocks.group_${2}.block_4.",
    ),
    (
        r"(^|\.)blocks\.group_([1-4])\.block_5\.",
        "${1}blocks.group_${2}.block.4.",
        r"(^|\.)blocks\.group_([1-4])\.block\.4\.",
        "${1}blocks.group_${2}.block_5.",
    ),
    (
        r"(^|\.)blocks\.group_([1-4])\.block_6\.",
        "${1}blocks.group_${2}.block.5.",
        r"(^|\.)blocks\.group_([1-4])\.block\.5\.",
        "${1}blocks.group_${2}.block_6.",
    ),
    (
        r"(^|\.)blocks\.group_([1-4])\.block_7\.",
        "${1}blocks.group_${2}.block.6.",
        r"(^|\.)blocks\.group_([1-4])\.block\.6\.",
        "${1}blocks.group_${2}.block_7.",
    ),
    (
        r"(^|\.)blocks\.group_([1-4])\.block_8\.",
        "${1}blocks.group_${2}.block.7.",
        r"(^|\.)blocks\.group_([1-4])\.block\.7\.",
        "${1}blocks.group_${2}.block_8.",
    ),
    (
        r"(^|\.)blocks\.group_([1-4])\.block_9\.",
        "${1}blocks.group_${2}.block.8.",
        r"(^|\.)blocks\.group_([1-4])\.block\.8\.",
        "${1}blocks.group_${2}.block_9.",
    ),
];

/// `dict(type='DALL-E', ...)`: the reference's attrs fields and defaults
/// (`n_hid=256, n_blk_per_group=2, input_channels=3, vocab_size=8192`),
/// which are the published encoder's.
///
/// The reference's validators require `n_hid ≥ 64` and `vocab_size ≥
/// 512`; these are relaxed here (any `n_hid` divisible by 4, any
/// vocabulary) so demos and fixtures can use tiny encoders (the reference
/// builds them under `attr.validators.disabled()`, the module code
/// unchanged). `device` is not accepted (burn places the module).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DallEConfig {
    /// Channels of the first group; groups have 1, 2, 4 and 8 times this.
    pub n_hid: usize,
    /// Residual blocks per group.
    pub n_blk_per_group: usize,
    /// Input channels.
    pub input_channels: usize,
    /// Codebook size: the logits' channels.
    pub vocab_size: usize,
    /// Accepted for fidelity; has no effect. MMSelfSup wraps the weights in
    /// `nn.Parameter`s (which require grad whatever this says) and never
    /// back-propagates into the tokenizer; ours are frozen.
    pub requires_grad: bool,
    /// Accepted for fidelity; unused by the reference and here.
    pub use_mixed_precision: bool,
    /// MMEngine `init_cfg`; `dict(type='Pretrained', checkpoint=PATH)` names
    /// the weight file (`dalle_encoder.pth`), read by the algorithm's
    /// `load_pretrained`, never by `init`.
    pub init_cfg: Option<serde_json::Value>,
}

impl Default for DallEConfig {
    fn default() -> Self {
        Self {
            n_hid: 256,
            n_blk_per_group: 2,
            input_channels: 3,
            vocab_size: 8192,
            requires_grad: false,
            use_mixed_precision: true,
            init_cfg: None,
        }
    }
}

impl DallEConfig {
    /// Checks the fields; `(key, message)` on error.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.n_hid == 0 || !self.n_hid.is_multiple_of(4) {
            return Err(("n_hid", format!("must be a positive multiple of 4 (the blocks' widths n_out/4), got {}", self.n_hid)));
        }
        if !(1..=MAX_BLOCKS_PER_GROUP).contains(&self.n_blk_per_group) {
            return Err(("n_blk_per_group", format!("must be in 1..={MAX_BLOCKS_PER_GROUP}, got {}", self.n_blk_per_group)));
        }
        if self.input_channels == 0 {
            return Err(("input_channels", "must be positive".into()));
        }
        if self.vocab_size == 0 {
            return Err(("vocab_size", "must be positive".into()));
        }
        validate_init_cfg(self.init_cfg.as_ref()).map_err(|m| ("init_cfg", m))
    }

    /// The weight file `init_cfg` names, if any.
    pub fn pretrained(&self) -> Option<PretrainedInit> {
        pretrained_init(self.init_cfg.as_ref())
    }

    /// Builds the encoder with the reference's random initialisation
    /// (weights `N(0, 1/√(n_in·k²))`, zero biases), frozen.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> DallE<B> {
        let h = self.n_hid;
        let n_layers = GROUP_COUNT * self.n_blk_per_group;
        let mut conv = |n_in: usize, n_out: usize, kw: usize| DallEConv::new(n_in, n_out, kw, device, rng);
        let input = conv(self.input_channels, h, 7);
        let mut group = |n_in: usize, n_out: usize| DallEGroup {
            block: (0..self.n_blk_per_group)
                .map(|i| EncoderBlock::new(if i == 0 { n_in } else { n_out }, n_out, n_layers, device, rng))
                .collect(),
        };
        let group_1 = group(h, h);
        let group_2 = group(h, 2 * h);
        let group_3 = group(2 * h, 4 * h);
        let group_4 = group(4 * h, 8 * h);
        let output = DallEOutput { conv: DallEConv::new(8 * h, self.vocab_size, 1, device, rng) };
        crate::frozen::freeze(DallE { blocks: DallEBlocks { input, group_1, group_2, group_3, group_4, output } })
    }
}

/// DALL-E's `map_pixels`: `[0, 1]` pixels to `[ε, 1 − ε]`, ε = 0.1 (what
/// the reference's data preprocessors do to the tokenizer's view).
pub fn map_pixels<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    x.mul_scalar(1.0 - 2.0 * LOGIT_LAPLACE_EPS).add_scalar(LOGIT_LAPLACE_EPS)
}

/// The reference's `Conv2d`: a `kw × kw` convolution with "same" padding
/// (`(kw − 1)/2`) and parameters named `w` (`[n_out, n_in, kw, kw]`) and
/// `b` (`[n_out]`).
#[derive(Module, Debug)]
pub struct DallEConv<B: Backend> {
    /// `[n_out, n_in, kw, kw]`.
    pub w: Param<Tensor<B, 4>>,
    /// `[n_out]`.
    pub b: Param<Tensor<B, 1>>,
}

impl<B: Backend> DallEConv<B> {
    fn new(n_in: usize, n_out: usize, kw: usize, device: &B::Device, rng: &mut InitRng) -> Self {
        let std = 1.0 / ((n_in * kw * kw) as f64).sqrt();
        Self { w: rng.param([n_out, n_in, kw, kw], Dist::Normal(0.0, std), device), b: rng.param([n_out], Dist::Constant(0.0), device) }
    }

    /// `[n, n_in, h, w] -> [n, n_out, h, w]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let kw = self.w.dims()[3];
        let p = (kw - 1) / 2;
        conv2d(x, self.w.val(), Some(self.b.val()), ConvOptions::new([1, 1], [p, p], [1, 1], 1))
    }
}

/// The residual path's four convolutions (`res_path.conv_1` ..
/// `conv_4`), each after a ReLU.
#[derive(Module, Debug)]
pub struct ResPath<B: Backend> {
    /// 3 × 3, `n_in -> n_out/4`.
    pub conv_1: DallEConv<B>,
    /// 3 × 3, `n_out/4 -> n_out/4`.
    pub conv_2: DallEConv<B>,
    /// 3 × 3, `n_out/4 -> n_out/4`.
    pub conv_3: DallEConv<B>,
    /// 1 × 1, `n_out/4 -> n_out`.
    pub conv_4: DallEConv<B>,
}

impl<B: Backend> ResPath<B> {
    /// `relu → conv_1 → relu → conv_2 → relu → conv_3 → relu → conv_4`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        use burn::tensor::activation::relu;
        let x = self.conv_1.forward(relu(x));
        let x = self.conv_2.forward(relu(x));
        let x = self.conv_3.forward(relu(x));
        self.conv_4.forward(relu(x))
    }
}

/// The reference's `EncoderBlock`: `id_path(x) + post_gain·res_path(x)`.
#[derive(Module, Debug)]
pub struct EncoderBlock<B: Backend> {
    /// A 1 × 1 convolution when the width changes; the identity otherwise.
    pub id_path: Option<DallEConv<B>>,
    /// The residual path.
    pub res_path: ResPath<B>,
    /// `1 / n_layers²`.
    pub post_gain: f64,
}

impl<B: Backend> EncoderBlock<B> {
    fn new(n_in: usize, n_out: usize, n_layers: usize, device: &B::Device, rng: &mut InitRng) -> Self {
        let hid = n_out / 4;
        let id_path = (n_in != n_out).then(|| DallEConv::new(n_in, n_out, 1, device, rng));
        let res_path = ResPath {
            conv_1: DallEConv::new(n_in, hid, 3, device, rng),
            conv_2: DallEConv::new(hid, hid, 3, device, rng),
            conv_3: DallEConv::new(hid, hid, 3, device, rng),
            conv_4: DallEConv::new(hid, n_out, 1, device, rng),
        };
        Self { id_path, res_path, post_gain: 1.0 / (n_layers * n_layers) as f64 }
    }

    /// `[n, n_in, h, w] -> [n, n_out, h, w]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let id = match &self.id_path {
            Some(conv) => conv.forward(x.clone()),
            None => x.clone(),
        };
        id + self.res_path.forward(x).mul_scalar(self.post_gain)
    }
}

/// One group: its blocks (`block_1`, `block_2`, ... in the reference).
#[derive(Module, Debug)]
pub struct DallEGroup<B: Backend> {
    /// The blocks, in order.
    pub block: Vec<EncoderBlock<B>>,
}

impl<B: Backend> DallEGroup<B> {
    /// The blocks in order (no pooling).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.block.iter().fold(x, |x, b| b.forward(x))
    }
}

/// `blocks.output`: ReLU, then the 1 × 1 convolution to the vocabulary.
#[derive(Module, Debug)]
pub struct DallEOutput<B: Backend> {
    /// `[vocab, 8·n_hid, 1, 1]`.
    pub conv: DallEConv<B>,
}

/// The reference's `blocks` `nn.Sequential`.
#[derive(Module, Debug)]
pub struct DallEBlocks<B: Backend> {
    /// 7 × 7, `input_channels -> n_hid`.
    pub input: DallEConv<B>,
    /// `n_hid` channels, then a max-pool.
    pub group_1: DallEGroup<B>,
    /// `2·n_hid` channels, then a max-pool.
    pub group_2: DallEGroup<B>,
    /// `4·n_hid` channels, then a max-pool.
    pub group_3: DallEGroup<B>,
    /// `8·n_hid` channels.
    pub group_4: DallEGroup<B>,
    /// ReLU and the logits' convolution.
    pub output: DallEOutput<B>,
}

/// The DALL-E encoder (`DALL-E`). Keys `blocks.*`; frozen.
#[derive(Module, Debug)]
pub struct DallE<B: Backend> {
    /// The layers, under the reference's names.
    pub blocks: DallEBlocks<B>,
}

/// `nn.MaxPool2d(kernel_size=2)`: stride 2, odd sizes floored.
fn pool<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], false)
}

impl<B: Backend> DallE<B> {
    /// Codebook size.
    pub fn vocab_size(&self) -> usize {
        self.blocks.output.conv.w.dims()[0]
    }

    /// The four groups' outputs (after the pooling of the first three),
    /// `[n, 2^g·n_hid, h/2^(g+1), w/2^(g+1)]`; the reference's intermediates.
    pub fn group_outputs(&self, x: Tensor<B, 4>) -> [Tensor<B, 4>; 4] {
        let b = &self.blocks;
        let g1 = pool(b.group_1.forward(b.input.forward(x.detach())));
        let g2 = pool(b.group_2.forward(g1.clone()));
        let g3 = pool(b.group_3.forward(g2.clone()));
        let g4 = b.group_4.forward(g3.clone());
        [g1, g2, g3, g4]
    }

    /// The logits, detached (the reference runs under `torch.no_grad()`).
    ///
    /// # Shapes
    /// - `x`: `[n, input_channels, h, w]`, pixels in `[0.1, 0.9]`
    /// - returns `[n, vocab_size, ⌊⌊⌊h/2⌋/2⌋/2⌋, ...]` (`h/8` for multiples
    ///   of 8)
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, _, _, g4] = self.group_outputs(x);
        self.blocks.output.conv.forward(burn::tensor::activation::relu(g4)).detach()
    }

    /// The codes: the argmax over the vocabulary, `[n, h/8 · w/8]` in
    /// row-major order (BEiT's and CAE's targets).
    pub fn codes(&self, x: Tensor<B, 4>) -> Tensor<B, 2, burn::tensor::Int> {
        let logits = self.forward(x);
        let [n, _, h, w] = logits.dims();
        logits.argmax(1).reshape([n, h * w])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        assert_eq!(DallEConfig { n_hid: 6, ..Default::default() }.validate().unwrap_err().0, "n_hid");
        assert_eq!(DallEConfig { n_blk_per_group: 10, ..Default::default() }.validate().unwrap_err().0, "n_blk_per_group");
        let json = r#"{"n_hid": 8, "vocab_size": 32, "init_cfg": {"type": "Pretrained", "checkpoint": "x.pth"}}"#;
        let cfg: DallEConfig = serde_json::from_str(json).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.pretrained().unwrap().checkpoint, "x.pth");
        assert!(serde_json::from_str::<DallEConfig>(r#"{"device": "cuda"}"#).is_err());
    }
}
