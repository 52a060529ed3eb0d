//! Port of `mmselfsup.models.necks.SimMIMNeck` (`simmim_neck.py`): a 1×1
//! convolution to `encoder_stride²·3` channels and a `PixelShuffle` back to
//! image resolution. The convolution keeps PyTorch's default
//! initialisation; its key is `decoder.0` (an `nn.Sequential`, mirrored by
//! a one-element list).
use burn::{
    module::Module,
    nn::conv::Conv2d,
    tensor::{backend::Backend, Tensor},
};
use selfsup_layers::{
    functional::conv2d,
    init::{Dist, InitRng},
};
use serde::{Deserialize, Serialize};

/// `dict(type='SimMIMNeck', in_channels, encoder_stride)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimMimNeckConfig {
    /// Channels of the encoder's last feature map.
    pub in_channels: usize,
    /// The encoder's total stride.
    pub encoder_stride: usize,
    /// MMEngine `init_cfg` (PyTorch's default init is what is built).
    #[serde(default)]
    pub init_cfg: Option<serde_json::Value>,
}

impl SimMimNeckConfig {
    /// Builds the neck.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> SimMimNeck<B> {
        let out = self.encoder_stride * self.encoder_stride * 3;
        let bound = 1.0 / (self.in_channels as f64).sqrt();
        let dist = Dist::Uniform(-bound, bound);
        SimMimNeck {
            decoder: vec![rng.conv2d(self.in_channels, out, 1, 1, 0, 1, dist, Some(dist), device)],
            encoder_stride: self.encoder_stride,
        }
    }
}

/// SimMIM's decoder. Key `decoder.0.{weight,bias}`.
#[derive(Module, Debug)]
pub struct SimMimNeck<B: Backend> {
    /// The 1×1 convolution (the Sequential's PixelShuffle has no weights).
    pub decoder: Vec<Conv2d<B>>,
    encoder_stride: usize,
}

/// `nn.PixelShuffle(r)`: `[n, c·r², h, w] -> [n, c, h·r, w·r]`.
pub fn pixel_shuffle<B: Backend>(x: Tensor<B, 4>, r: usize) -> Tensor<B, 4> {
    let [n, crr, h, w] = x.dims();
    let c = crr / (r * r);
    x.reshape([n, c, r, r, h, w]).permute([0, 1, 4, 2, 5, 3]).reshape([n, c, h * r, w * r])
}

impl<B: Backend> SimMimNeck<B> {
    /// `[n, c, h, w] -> [n, 3, h·s, w·s]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        pixel_shuffle(conv2d(&self.decoder[0], x), self.encoder_stride)
    }
}
