//! MMSelfSup's weight initialisers, as burn initialisers.
use burn::{
    module::Param,
    nn::{Initializer, Linear, LinearConfig},
    tensor::{backend::Backend, Tensor},
};

/// `torch.nn.init.xavier_uniform_` for a weight with the given fans.
pub fn xavier_uniform(fan_in: usize, fan_out: usize) -> Initializer {
    let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
    Initializer::Uniform { min: -a, max: a }
}

/// A Linear initialised as MMSelfSup's MAE does: xavier-uniform weight, zero
/// bias.
pub fn linear_xavier<B: Backend>(d_in: usize, d_out: usize, bias: bool, device: &B::Device) -> Linear<B> {
    let mut linear = LinearConfig::new(d_in, d_out)
        .with_bias(bias)
        .with_initializer(xavier_uniform(d_in, d_out))
        .init(device);
    if bias {
        linear.bias = Some(Param::from_tensor(Tensor::zeros([d_out], device)));
    }
    linear
}

/// A parameter drawn from `N(0, std)`.
pub fn normal<B: Backend, const D: usize>(shape: [usize; D], std: f64, device: &B::Device) -> Param<Tensor<B, D>> {
    Initializer::Normal { mean: 0.0, std }.init(shape, device)
}

/// A fixed tensor saved with the module but never trained (fixed position
/// embeddings, EMA counters): a `Param` with `require_grad = false`.
pub fn fixed<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Param<Tensor<B, D>> {
    Param::from_tensor(tensor).set_require_grad(false)
}
