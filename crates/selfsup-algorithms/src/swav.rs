//! Port of `mmselfsup.models.algorithms.SwAV`: multi-crop views, one
//! backbone pass per resolution group, swapped prediction of Sinkhorn
//! assignments over learned prototypes.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor, TensorData},
};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs, StepContext};
use selfsup_heads::{SwAVHead, SwAVHeadConfig};
use selfsup_layers::init::InitRng;
use selfsup_losses::SwAVQueue;
use selfsup_necks::{SwAVNeck, SwAVNeckConfig};
use serde::{Deserialize, Serialize};

use crate::{
    common::{backbone_modes, backbone_spec, check_common, Backbone, BackboneOut, ContrastiveBackboneConfig},
    AlgorithmSpec, ConfigIssue, InitCfg,
};

selfsup_config::registry! {
    /// SwAV's neck.
    #[derive(Debug, Clone, PartialEq)]
    pub enum SwAVNeckRegistry {
        /// Projection of every crop, L2-normalised.
        "SwAVNeck" => SwAV(SwAVNeckConfig),
    }
}

selfsup_config::registry! {
    /// SwAV's head.
    #[derive(Debug, Clone, PartialEq)]
    pub enum SwAVHeadRegistry {
        /// Swapped prediction.
        "SwAVHead" => SwAV(SwAVHeadConfig),
    }
}

/// `model = dict(type='SwAV', backbone, neck, head)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwAVConfig {
    /// The data preprocessor.
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// The backbone.
    pub backbone: ContrastiveBackboneConfig,
    /// Projection.
    pub neck: SwAVNeckRegistry,
    /// Prototypes and loss.
    pub head: SwAVHeadRegistry,
    /// MMEngine `init_cfg`.
    #[serde(default)]
    pub init_cfg: InitCfg,
}

impl SwAVConfig {
    fn neck(&self) -> &SwAVNeckConfig {
        let SwAVNeckRegistry::SwAV(c) = &self.neck;
        c
    }

    fn head(&self) -> &SwAVHeadConfig {
        let SwAVHeadRegistry::SwAV(c) = &self.head;
        c
    }

    /// The loss config (`head.loss`).
    pub fn loss_config(&self) -> &selfsup_losses::SwAVLossConfig {
        self.head().loss.get()
    }
}

impl AlgorithmSpec for SwAVConfig {
    type Model<B: Backend> = SwAV<B>;

    backbone_spec!();

    /// Views per sample: the sum of the loss's `num_crops`.
    fn num_views(&self) -> usize {
        self.head().loss.get().num_crops.iter().sum()
    }

    /// The later crop groups are `size·96/224`, as SwAV's 224 + 96 multi-crop.
    fn view_sizes(&self, size: usize) -> Vec<usize> {
        self.loss_config()
            .num_crops
            .iter()
            .enumerate()
            .flat_map(|(g, &n)| std::iter::repeat_n(if g == 0 { size } else { (size * 96 / 224).max(1) }, n))
            .collect()
    }

    /// Checks the parts and their widths.
    fn validate(&self) -> Result<(), ConfigIssue> {
        check_common(&self.data_preprocessor, &self.backbone)?;
        let neck = self.neck();
        neck.validate().map_err(|(k, m)| ConfigIssue::new(format!("neck.{k}"), m))?;
        if neck.in_channels != self.backbone.feat_dim() {
            return Err(ConfigIssue::new(
                "neck.in_channels",
                format!("{} does not match the backbone's {}", neck.in_channels, self.backbone.feat_dim()),
            ));
        }
        let loss = self.head().loss.get();
        loss.validate().map_err(|(k, m)| ConfigIssue::new(format!("head.loss.{k}"), m))?;
        if loss.feat_dim != neck.out_channels {
            return Err(ConfigIssue::new(
                "head.loss.feat_dim",
                format!("{} does not match the neck's out_channels {}", loss.feat_dim, neck.out_channels),
            ));
        }
        if self.backbone.is_vit() {
            return Err(ConfigIssue::new("backbone.type", "SwAV's multi-crop takes a ResNet"));
        }
        Ok(())
    }

    /// Builds the algorithm with normalised prototypes.
    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> SwAV<B> {
        SwAV {
            backbone: self.backbone.init(device, rng),
            neck: self.neck().init(device, rng),
            head: SwAVHead { loss: self.head().init::<B>(device, rng).loss.normalize_prototypes() },
            data_preprocessor: self.data_preprocessor.clone(),
            queue: None,
            frozen_prototypes: false,
        }
    }
}

/// SwAV. Keys `backbone.*`, `neck.*` (with the BatchNorm also as
/// `neck.projection_neck.1.*`), `head.loss.prototypes.weight`.
#[derive(Module, Debug)]
pub struct SwAV<B: Backend> {
    /// Backbone.
    pub backbone: Backbone<B>,
    /// Projection.
    pub neck: SwAVNeck<B>,
    /// Prototypes and loss.
    pub head: SwAVHead<B>,
    #[module(skip)]
    data_preprocessor: DataPreprocessorConfig,
    #[module(skip)]
    queue: Option<SwAVQueueState>,
    #[module(skip)]
    frozen_prototypes: bool,
}

/// SwAV's feature queue between steps, on the host (`SwAVHook`'s state:
/// not in MMSelfSup's state dict; selfsup keeps it in its checkpoints).
#[derive(Debug, Clone, PartialEq)]
pub struct SwAVQueueState {
    /// `[crops_for_assign, length, feat_dim]`, row-major, newest first.
    pub data: Vec<f32>,
    /// Its shape.
    pub shape: [usize; 3],
    /// Whether the queue joins the assignments (switches on once it is full).
    pub use_queue: bool,
}

impl SwAVQueueState {
    /// An empty (zero) queue, as `SwAVHook` creates it.
    pub fn zeros(crops: usize, length: usize, feat_dim: usize) -> Self {
        Self { data: vec![0.0; crops * length * feat_dim], shape: [crops, length, feat_dim], use_queue: false }
    }
}

/// Start indices of the runs of equal width in `widths`
/// (`torch.unique_consecutive(..., return_counts=True)` then `cumsum`).
pub fn resolution_groups(widths: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, w) in widths.iter().enumerate() {
        match groups.last_mut() {
            Some(g) if widths[g.start] == *w => g.end = i + 1,
            _ => groups.push(i..i + 1),
        }
    }
    groups
}

impl<B: Backend> SwAV<B> {
    /// The feature queue, when `SwAVHook` started one.
    pub fn queue(&self) -> Option<&SwAVQueueState> {
        self.queue.as_ref()
    }

    /// Sets or clears the feature queue (`SwAVHook`'s).
    pub fn set_queue(&mut self, queue: Option<SwAVQueueState>) {
        self.queue = queue;
    }

    /// Gives the prototypes no gradient (the first iterations of a run, with
    /// `SwAVHook(frozen_layers_cfg=dict(prototypes=N))`).
    pub fn set_frozen_prototypes(&mut self, frozen: bool) {
        self.frozen_prototypes = frozen;
    }

    /// The normalised projections of every crop, crop-major, `[crops·n, d]`.
    pub fn embed(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        let total = self.head.loss.total_crops();
        let views = inputs.expect_views("SwAV", total)?;
        let n = views[0].dims()[0];
        if let Some(v) = views.iter().find(|v| v.dims()[0] != n || v.dims()[2] != v.dims()[3]) {
            return Err(ModelError::Shape { algorithm: "SwAV", expected: format!("square crops of batch {n}"), got: v.dims().to_vec() });
        }
        let widths: Vec<usize> = views.iter().map(|v| v.dims()[3]).collect();
        let mut maps = Vec::new();
        for g in resolution_groups(&widths) {
            let x = Tensor::cat(views[g].to_vec(), 0);
            maps.push(self.backbone.forward(x)?.map());
        }
        Ok(self.neck.forward(maps))
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for SwAV<B> {
    type Features = BackboneOut<B>;
    type Prediction = BackboneOut<B>;
    type StepState = Option<SwAVQueue<B>>;

    backbone_modes!("SwAV");

    fn loss(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<(LossOutput<B>, Option<SwAVQueue<B>>), ModelError> {
        let z = self.embed(inputs)?;
        let device = z.device();
        let queue = self
            .queue
            .as_ref()
            .map(|q| SwAVQueue { queue: Tensor::from_data(TensorData::new(q.data.clone(), q.shape), &device), use_queue: q.use_queue });
        let (loss, queue) = self.head.loss.forward_frozen(z, queue.as_ref(), self.frozen_prototypes);
        Ok((LossOutput::new().with("loss", loss), queue))
    }

    /// Normalises the prototypes (after building or loading weights), as
    /// MMSelfSup's forward does in place before each step.
    fn prepare(mut self) -> Self {
        self.head.loss = self.head.loss.normalize_prototypes();
        self
    }

    /// Re-normalises the prototypes, which MMSelfSup does in place at the
    /// start of the next forward.
    fn after_step(mut self, queue: Option<SwAVQueue<B>>, _ctx: &StepContext) -> Self {
        self.head.loss = self.head.loss.normalize_prototypes();
        if let Some(q) = queue {
            let shape = q.queue.dims();
            let data = q.queue.into_data().convert::<f32>().to_vec::<f32>().expect("data converted to f32 reads as f32");
            self.queue = Some(SwAVQueueState { data, shape, use_queue: q.use_queue });
        }
        self
    }
}
