//! Port of `DINONeck` (mmpretrain 1.2.0, `projects/dino/models/neck/dino_neck.py`):
//! DINO's projection, `Linear → GELU → Linear → GELU → Linear` to a
//! bottleneck, L2 normalisation, then a bias-free last layer under
//! `torch.nn.utils.weight_norm`, whose gain `weight_g` DINO fills with 1
//! and freezes (`DINO.__init__`), so the layer's rows are the unit
//! directions of `weight_v`.
//!
//! Linear layers keep PyTorch's default initialisation, as `DINONeck` has
//! no `init_weights`; `weight_v` starts as the plain layer's weight.
use burn::{
    module::{Module, Param},
    nn::Linear,
    tensor::{activation::gelu, backend::Backend, Tensor},
};
use selfsup_layers::{
    functional::{l2_normalize, linear, matmul},
    init::{fixed, InitRng},
};
use serde::{Deserialize, Serialize};

/// `dict(type='DINONeck', in_channels, hidden_channels, out_channels, bottleneck_channels)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DinoNeckConfig {
    /// Input channels (the backbone's width).
    pub in_channels: usize,
    /// Hidden width of the MLP.
    pub hidden_channels: usize,
    /// Output channels (the number of prototypes, 65536 in DINO).
    pub out_channels: usize,
    /// Width of the bottleneck before the last layer.
    pub bottleneck_channels: usize,
    /// MMEngine `init_cfg` (PyTorch's default Linear init is what is built).
    #[serde(default)]
    pub init_cfg: Option<serde_json::Value>,
}

impl DinoNeckConfig {
    /// Checks the widths; `(key, message)` for the first that is zero.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (key, v) in [
            ("in_channels", self.in_channels),
            ("hidden_channels", self.hidden_channels),
            ("out_channels", self.out_channels),
            ("bottleneck_channels", self.bottleneck_channels),
        ] {
            if v == 0 {
                return Err((key, "must be positive".into()));
            }
        }
        Ok(())
    }

    /// Builds the neck with the last layer already weight-normalised (gain 1, frozen).
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> DinoNeck<B> {
        let mlp = DinoMlp {
            fc1: rng.linear_torch(self.in_channels, self.hidden_channels, true, device),
            fc2: rng.linear_torch(self.hidden_channels, self.hidden_channels, true, device),
            fc3: rng.linear_torch(self.hidden_channels, self.bottleneck_channels, true, device),
        };
        // PyTorch's Linear stores `[out, in]`; burn's `[in, out]`.
        let plain = rng.linear_torch(self.bottleneck_channels, self.out_channels, false, device);
        let v = plain.weight.val().transpose().detach().require_grad();
        DinoNeck {
            mlp,
            last_layer: WeightNormLinear {
                weight_g: fixed(Tensor::ones([self.out_channels, 1], &v.device())),
                weight_v: Param::from_tensor(v),
            },
        }
    }
}

/// The three Linear layers (keys `mlp.0`, `mlp.2`, `mlp.4`).
#[derive(Module, Debug)]
pub struct DinoMlp<B: Backend> {
    /// `in → hidden`.
    pub fc1: Linear<B>,
    /// `hidden → hidden`.
    pub fc2: Linear<B>,
    /// `hidden → bottleneck`.
    pub fc3: Linear<B>,
}

/// A bias-free Linear under `weight_norm(dim=0)`: `W = g · v / ‖v‖` per
/// output row. Keys `weight_g` `[out, 1]` and `weight_v` `[out, in]`,
/// PyTorch's layout.
#[derive(Module, Debug)]
pub struct WeightNormLinear<B: Backend> {
    /// The per-row gain (DINO: 1, not trained).
    pub weight_g: Param<Tensor<B, 2>>,
    /// The direction, `[out, in]`.
    pub weight_v: Param<Tensor<B, 2>>,
}

impl<B: Backend> WeightNormLinear<B> {
    /// The effective weight `[out, in]`; `frozen` cuts its gradient (DINO's
    /// `freeze_last_layer`: the optimiser then skips `weight_v`, as PyTorch
    /// does a parameter whose gradient is `None`).
    pub fn weight(&self, frozen: bool) -> Tensor<B, 2> {
        let v = if frozen { self.weight_v.val().detach() } else { self.weight_v.val() };
        let norm = v.clone().powi_scalar(2).sum_dim(1).sqrt();
        v * (self.weight_g.val() / norm)
    }
}

/// DINO's projection head. Keys `mlp.{0,2,4}.*`, `last_layer.weight_{g,v}`.
#[derive(Module, Debug)]
pub struct DinoNeck<B: Backend> {
    /// The MLP to the bottleneck.
    pub mlp: DinoMlp<B>,
    /// The weight-normalised last layer.
    pub last_layer: WeightNormLinear<B>,
}

impl<B: Backend> DinoNeck<B> {
    /// `[n, in] -> [n, out]`. `freeze_last_layer` gives the last layer no
    /// gradient.
    pub fn forward(&self, x: Tensor<B, 2>, freeze_last_layer: bool) -> Tensor<B, 2> {
        let m = &self.mlp;
        let x = linear(&m.fc3, gelu(linear(&m.fc2, gelu(linear(&m.fc1, x)))));
        matmul(l2_normalize(x, 1), self.last_layer.weight(freeze_last_layer).transpose())
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.last_layer.weight_v.dims()[0]
    }
}
