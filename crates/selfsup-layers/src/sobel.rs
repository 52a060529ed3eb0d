//! Port of `mmselfsup.models.utils.Sobel` (`sobel.py`): a frozen RGB →
//! gray (1×1 convolution, weights 1/3) → horizontal and vertical Sobel
//! (3×3, padding 1) stem that hides colour from a network (DeepCluster's
//! `ResNetSobel`). Keys `sobel.0.{weight,bias}`, `sobel.1.{weight,bias}`
//! (an `nn.Sequential` of two `Conv2d`), saved but never trained.
use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, module::conv2d, ops::ConvOptions, Tensor, TensorData},
};

use crate::init::fixed;

/// One frozen convolution of the stem (stride 1, padding `k / 2`).
#[derive(Module, Debug)]
pub struct FixedConv<B: Backend> {
    /// `[out, in, k, k]`.
    pub weight: Param<Tensor<B, 4>>,
    /// `[out]`.
    pub bias: Param<Tensor<B, 1>>,
}

/// The Sobel stem; see the module documentation.
#[derive(Module, Debug)]
pub struct Sobel<B: Backend> {
    /// Gray, then the two Sobel filters.
    pub sobel: Vec<FixedConv<B>>,
}

impl<B: Backend> Sobel<B> {
    /// The stem with MMSelfSup's fixed weights.
    pub fn new(device: &B::Device) -> Self {
        let conv = |w: Vec<f32>, shape: [usize; 4]| FixedConv {
            weight: fixed(Tensor::from_data(TensorData::new(w, shape), device)),
            bias: fixed(Tensor::zeros([shape[0]], device)),
        };
        #[rustfmt::skip]
        let sobel = vec![
            1.0, 0.0, -1.0, 2.0, 0.0, -2.0, 1.0, 0.0, -1.0, // d/dx
            1.0, 2.0, 1.0, 0.0, 0.0, 0.0, -1.0, -2.0, -1.0, // d/dy
        ];
        Self { sobel: vec![conv(vec![1.0 / 3.0; 3], [1, 3, 1, 1]), conv(sobel, [2, 1, 3, 3])] }
    }

    /// `[n, 3, h, w] -> [n, 2, h, w]`.
    pub fn forward(&self, mut x: Tensor<B, 4>) -> Tensor<B, 4> {
        for c in &self.sobel {
            let k = c.weight.dims()[2];
            let pad = k / 2;
            x = conv2d(x, c.weight.val(), Some(c.bias.val()), ConvOptions::new([1, 1], [pad, pad], [1, 1], 1));
        }
        x
    }
}
