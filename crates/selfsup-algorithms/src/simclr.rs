//! Port of `mmselfsup.models.algorithms.SimCLR`.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor, TensorData},
};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs};
use selfsup_heads::ContrastiveHead;
use selfsup_layers::init::InitRng;
use selfsup_necks::NonLinearNeck;
use serde::{Deserialize, Serialize};

use crate::{
    common::{
        backbone_modes, backbone_spec, check_common, check_nonlinear, expect_pair, gather_with_grad, project, Backbone, BackboneOut,
        ContrastiveBackboneConfig, ContrastiveHeadRegistry, NonLinearNeckRegistry,
    },
    AlgorithmSpec, ConfigIssue, InitCfg,
};

/// `model = dict(type='SimCLR', backbone, neck, head)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimClrConfig {
    /// The data preprocessor.
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// The backbone.
    pub backbone: ContrastiveBackboneConfig,
    /// The projection MLP.
    pub neck: NonLinearNeckRegistry,
    /// InfoNCE head.
    pub head: ContrastiveHeadRegistry,
    /// MMEngine `init_cfg` (the components' own initialisation is built).
    #[serde(default)]
    pub init_cfg: InitCfg,
}

impl AlgorithmSpec for SimClrConfig {
    type Model<B: Backend> = SimClr<B>;

    backbone_spec!();

    fn num_views(&self) -> usize {
        2
    }

    /// Checks the parts and their widths.
    fn validate(&self) -> Result<(), ConfigIssue> {
        check_common(&self.data_preprocessor, &self.backbone)?;
        check_nonlinear(self.neck.get(), &self.backbone, "neck")?;
        self.head.get().loss.get().validate().map_err(|(k, m)| ConfigIssue::new(format!("head.loss.{k}"), m))
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> SimClr<B> {
        SimClr {
            backbone: self.backbone.init(device, rng),
            neck: self.neck.get().init(device, rng),
            head: self.head.get().init(),
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }
}

/// SimCLR: both views through one backbone call (BatchNorm statistics cover
/// both), interleaved as MMSelfSup stacks them, then NT-Xent.
#[derive(Module, Debug)]
pub struct SimClr<B: Backend> {
    /// Backbone.
    pub backbone: Backbone<B>,
    /// Projection.
    pub neck: NonLinearNeck<B>,
    #[module(skip)]
    head: ContrastiveHead,
    #[module(skip)]
    data_preprocessor: DataPreprocessorConfig,
}

/// Column indices of the positive (`[2n, 1]`) and the negatives
/// (`[2n, 2n−2]`) of each row of SimCLR's `[2n, 2n]` similarity matrix,
/// with views interleaved (row `2i` and `2i+1` are image `i`).
pub fn simclr_indices(n2: usize) -> (Vec<i64>, Vec<i64>) {
    let mut pos = Vec::with_capacity(n2);
    let mut neg = Vec::with_capacity(n2 * n2.saturating_sub(2));
    for i in 0..n2 {
        let partner = i ^ 1;
        pos.push(partner as i64);
        neg.extend((0..n2).filter(|&j| j != i && j != partner).map(|j| j as i64));
    }
    (pos, neg)
}

impl<B: Backend> SimClr<B> {
    /// `z / (‖z‖ + 1e-10)` of both views, interleaved, `[2n, d]`.
    pub fn embed(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        let views = expect_pair(inputs, "SimCLR")?;
        let [n, c, h, w] = views[0].dims();
        let x = Tensor::stack::<5>(vec![views[0].clone(), views[1].clone()], 1).reshape([2 * n, c, h, w]);
        let z = project(&self.neck, self.backbone.forward(x)?);
        let norm = z.clone().powi_scalar(2).sum_dim(1).sqrt().add_scalar(1e-10);
        Ok(gather_with_grad(z / norm))
    }
}

impl<B: Backend> SimClr<B> {
    /// The positive similarity of every embedding (`[2n, 1]`) and all its
    /// similarities with the self and partner columns pushed to −1e9
    /// (`[2n, 2n]`), before the temperature.
    ///
    /// Under the softmax this is MMSelfSup's `[2n, 2n−2]` negatives (the
    /// masked columns weigh `exp(−1e9/T) = 0` exactly in float32), built
    /// with float masks instead of a gather: no host-made index tensors,
    /// which burn-wgpu mis-reads in some sequences of a long run.
    pub fn similarities(&self, inputs: &SelfSupInputs<B>) -> Result<(Tensor<B, 2>, Tensor<B, 2>), ModelError> {
        let z = self.embed(inputs)?;
        let n2 = z.dims()[0];
        let device = z.device();
        let s = z.clone().matmul(z.transpose());
        let (pos, _) = simclr_indices(n2);
        let mut partner = vec![0f32; n2 * n2];
        let mut masked = vec![0f32; n2 * n2];
        for (i, &p) in pos.iter().enumerate() {
            partner[i * n2 + p as usize] = 1.0;
            masked[i * n2 + p as usize] = -1e9;
            masked[i * n2 + i] = -1e9;
        }
        let partner = Tensor::<B, 2>::from_data(TensorData::new(partner, [n2, n2]), &device);
        let masked = Tensor::<B, 2>::from_data(TensorData::new(masked, [n2, n2]), &device);
        Ok(((s.clone() * partner).sum_dim(1), s + masked))
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for SimClr<B> {
    type Features = BackboneOut<B>;
    type Prediction = BackboneOut<B>;
    type StepState = ();

    backbone_modes!("SimCLR");

    fn loss(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<(LossOutput<B>, ()), ModelError> {
        let (pos, neg) = self.similarities(inputs)?;
        let loss = self.head.forward(pos, neg);
        Ok((LossOutput::new().with("loss", loss), ()))
    }
}
