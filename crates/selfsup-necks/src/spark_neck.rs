//! Port of `mmpretrain.models.necks.SparKLightDecoder` (`spark_neck.py`,
//! mmpretrain 1.2.0): SparK's light decoder. `log2(upsample_ratio)`
//! `DecoderConvModule`s, each a `ConvTranspose2d` that doubles the
//! resolution and a `ConvBlock2x` (3×3 convolution, norm, activation,
//! twice), with channels halving from `feature_dim`; before module `i` the
//! encoder's `i`-th feature map (coarsest first) is added. A 1×1
//! convolution projects to RGB.
//!
//! Keys `decoder.{i}.upsample.*`, `decoder.{i}.conv_blocks.{j}.conv{1,2}.*`,
//! `decoder.{i}.conv_blocks.{j}.norm{1,2}.*` and `proj.*`, as mmpretrain's
//! `state_dict`. Initialisation: Kaiming (fan-out, normal) convolutions and
//! transposed convolutions with zero biases, unit norms.
use burn::{
    module::Module,
    nn::conv::{Conv2d, ConvTranspose2d, ConvTranspose2dConfig},
    tensor::{activation::relu, backend::Backend, Tensor},
};
use selfsup_layers::{
    batch_norm::{BatchNormCfg, TorchBatchNorm},
    functional::conv2d,
    init::{Dist, InitRng},
};
use serde::{Deserialize, Serialize};

/// `dict(type='SparKLightDecoder', ...)`: mmpretrain's field names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparKLightDecoderConfig {
    /// Channels of the first (coarsest) module's input.
    pub feature_dim: usize,
    /// Total upsampling, a power of two (the algorithm's `downsample_raito`).
    pub upsample_ratio: usize,
    /// Middle channels of each `ConvBlock2x`; 0 is the module's input channels.
    #[serde(default)]
    pub mid_channels: usize,
    /// `ConvTranspose2d`'s kernel.
    #[serde(default = "four")]
    pub kernel_size: usize,
    /// `ConvTranspose2d`'s stride.
    #[serde(default = "two")]
    pub scale_factor: usize,
    /// `ConvBlock2x`s per module.
    #[serde(default = "one")]
    pub num_conv_blocks: usize,
    /// `SyncBN` (default) or `BN`.
    #[serde(default = "sync_bn")]
    pub norm_cfg: BatchNormCfg,
    /// `ReLU6` (default) or `ReLU`.
    #[serde(default = "relu6")]
    pub act_cfg: ActCfg,
    /// Whether each `ConvBlock2x` ends with its activation.
    #[serde(default)]
    pub last_act: bool,
    /// MMEngine `init_cfg` (the default Kaiming/Constant init is built in).
    #[serde(default)]
    pub init_cfg: Option<serde_json::Value>,
}

fn four() -> usize {
    4
}
fn two() -> usize {
    2
}
fn one() -> usize {
    1
}
fn sync_bn() -> BatchNormCfg {
    BatchNormCfg::new("SyncBN")
}
fn relu6() -> ActCfg {
    ActCfg { kind: "ReLU6".into(), inplace: None }
}

/// `act_cfg = dict(type='ReLU6')`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActCfg {
    /// `ReLU6` or `ReLU`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Accepted (no effect on values).
    #[serde(default)]
    pub inplace: Option<bool>,
}

impl SparKLightDecoderConfig {
    /// The channels between the modules: `feature_dim / 2^i`, `i = 0..=n`.
    pub fn channels(&self) -> Vec<usize> {
        let n = self.upsample_ratio.trailing_zeros() as usize;
        (0..=n).map(|i| self.feature_dim >> i).collect()
    }

    /// Checks the config; `(key, message)` for the first field that cannot
    /// be honoured.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !self.upsample_ratio.is_power_of_two() || self.upsample_ratio < 2 {
            return Err(("upsample_ratio", format!("{} is not a power of two above 1", self.upsample_ratio)));
        }
        if self.scale_factor != 2 {
            return Err(("scale_factor", "each module doubles the resolution; only 2 is supported".into()));
        }
        if self.kernel_size < self.scale_factor || !(self.kernel_size - self.scale_factor).is_multiple_of(2) {
            return Err((
                "kernel_size",
                format!("{} must be at least scale_factor and differ from it by an even number", self.kernel_size),
            ));
        }
        if *self.channels().last().unwrap_or(&0) == 0 || !self.feature_dim.is_multiple_of(self.upsample_ratio) {
            return Err(("feature_dim", format!("{} does not halve {} times", self.feature_dim, self.upsample_ratio.trailing_zeros())));
        }
        if self.num_conv_blocks == 0 {
            return Err(("num_conv_blocks", "must be at least 1".into()));
        }
        self.norm_cfg.validate().map_err(|e| ("norm_cfg", e))?;
        if !matches!(self.act_cfg.kind.as_str(), "ReLU6" | "ReLU") {
            return Err(("act_cfg", format!("activation `{}` is not supported; expected ReLU6 or ReLU", self.act_cfg.kind)));
        }
        Ok(())
    }

    /// Builds the decoder. Call [`SparKLightDecoderConfig::validate`] first.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> SparKLightDecoder<B> {
        let channels = self.channels();
        let k = self.kernel_size;
        let conv3 = |rng: &mut InitRng, cin: usize, cout: usize| {
            rng.conv2d(cin, cout, 3, 1, 1, 1, Dist::kaiming_normal_fan_out(cout * 9), None, device)
        };
        let decoder = channels
            .windows(2)
            .map(|w| {
                let (cin, cout) = (w[0], w[1]);
                let mid = if self.mid_channels == 0 { cin } else { self.mid_channels };
                let mut upsample = ConvTranspose2dConfig::new([cin, cin], [k, k])
                    .with_stride([self.scale_factor, self.scale_factor])
                    .with_padding([(k - self.scale_factor) / 2; 2])
                    .with_bias(true)
                    .init(device);
                // PyTorch's fans of a transposed convolution's `[in, out, k, k]`
                // weight: fan-out is `in·k·k`.
                upsample.weight = rng.param([cin, cin, k, k], Dist::kaiming_normal_fan_out(cin * k * k), device);
                upsample.bias = Some(rng.param([cin], Dist::Constant(0.0), device));
                let conv_blocks = (0..self.num_conv_blocks)
                    .map(|_| ConvBlock2x {
                        conv1: conv3(rng, cin, mid),
                        norm1: self.norm_cfg.init(mid, device, rng),
                        conv2: conv3(rng, mid, cout),
                        norm2: self.norm_cfg.init(cout, device, rng),
                        last_act: self.last_act,
                        relu6: self.act_cfg.kind == "ReLU6",
                    })
                    .collect();
                DecoderConvModule { upsample, conv_blocks }
            })
            .collect();
        let last = *channels.last().expect("validated");
        SparKLightDecoder {
            decoder,
            proj: rng.conv2d(last, 3, 1, 1, 0, 1, Dist::kaiming_normal_fan_out(3), Some(Dist::Constant(0.0)), device),
        }
    }
}

/// 3×3 convolution, norm, activation; twice (the second activation only
/// with `last_act`). Keys `conv1`, `norm1`, `conv2`, `norm2`.
#[derive(Module, Debug)]
pub struct ConvBlock2x<B: Backend> {
    /// First convolution (no bias).
    pub conv1: Conv2d<B>,
    /// Its norm.
    pub norm1: TorchBatchNorm<B>,
    /// Second convolution (no bias).
    pub conv2: Conv2d<B>,
    /// Its norm.
    pub norm2: TorchBatchNorm<B>,
    last_act: bool,
    relu6: bool,
}

impl<B: Backend> ConvBlock2x<B> {
    fn act(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        if self.relu6 {
            x.clamp(0.0, 6.0)
        } else {
            relu(x)
        }
    }

    /// `[n, c_in, h, w] -> [n, c_out, h, w]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = self.act(self.norm1.forward(conv2d(&self.conv1, x)));
        let x = self.norm2.forward(conv2d(&self.conv2, x));
        if self.last_act {
            self.act(x)
        } else {
            x
        }
    }
}

/// `ConvTranspose2d` (×2) then the conv blocks.
#[derive(Module, Debug)]
pub struct DecoderConvModule<B: Backend> {
    /// The upsampling transposed convolution.
    pub upsample: ConvTranspose2d<B>,
    /// The `ConvBlock2x`s.
    pub conv_blocks: Vec<ConvBlock2x<B>>,
}

/// SparK's light decoder.
#[derive(Module, Debug)]
pub struct SparKLightDecoder<B: Backend> {
    /// The upsampling modules, coarsest first.
    pub decoder: Vec<DecoderConvModule<B>>,
    /// The 1×1 projection to RGB.
    pub proj: Conv2d<B>,
}

impl<B: Backend> SparKLightDecoder<B> {
    /// `to_dec[i]` (`None` where the encoder gave no map) is added before
    /// module `i`; the first must be present.
    ///
    /// # Shapes
    /// - `to_dec[i]`: `[n, feature_dim / 2^i, h·2^i, w·2^i]`
    /// - output: `[n, 3, h·upsample_ratio, w·upsample_ratio]`
    pub fn forward(&self, to_dec: &[Option<Tensor<B, 4>>]) -> Tensor<B, 4> {
        let mut x: Option<Tensor<B, 4>> = None;
        for (i, d) in self.decoder.iter().enumerate() {
            if let Some(Some(f)) = to_dec.get(i) {
                x = Some(match x {
                    Some(x) => x + f.clone(),
                    None => f.clone(),
                });
            }
            let h = d.upsample.forward(x.expect("the coarsest feature map is given"));
            x = Some(d.conv_blocks.iter().fold(h, |h, b| b.forward(h)));
        }
        conv2d(&self.proj, x.expect("at least one module"))
    }
}
