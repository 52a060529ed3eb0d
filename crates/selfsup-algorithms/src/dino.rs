//! Port of `DINO` (mmpretrain 1.2.0, `projects/dino/models/algorithm/dino.py`):
//! self-distillation with no labels. A student ViT with `DINONeck` sees
//! every crop (two global, N local); a teacher, the student's EMA, sees
//! the two global crops; `DINOHead` scores each student crop against the
//! teacher's centred, sharpened output for the other global crop.
//!
//! Where this departs from mmpretrain 1.2.0, on purpose:
//! - **The teacher follows the student.** mmpretrain's project builds
//!   `CosineEMA(nn.Sequential(backbone, neck), momentum=base_momentum)` but
//!   never calls `update_parameters`, so its teacher stays at the
//!   initial weights, and mmpretrain's `CosineEMA` takes the *online*
//!   weight (0.004 for BYOL) where `base_momentum=0.99` is the teacher's
//!   weight of MMSelfSup's convention. Here the teacher is a copy of the
//!   student before the first step and after every optimiser step moves as
//!   DINO's paper and MMSelfSup's `CosineEMA` say:
//!   `t ← m·t + (1 − m)·s`, `m` rising from `base_momentum` to 1 along a
//!   cosine over the run's iterations (MMEngine's `steps` counter, key
//!   `teacher.steps`).
//! - `freeze_last_layer` (epochs, default 0 as mmpretrain) gives the last
//!   layer no gradient in the first epochs, as the original DINO's
//!   `cancel_gradients_last_layer`; `DINOTeacherTempWarmupHook` applies it
//!   with the teacher temperature before each epoch.
//!
//! The centre (`head.center`) and the teacher move in `after_step`, after
//! the optimiser step; the centre from the teacher outputs of the step,
//! summed over replicas.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_backbones::{VisionTransformer, VisionTransformerConfig, VitFeatures};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs, StepContext};
use selfsup_heads::{DinoHead, DinoHeadConfig};
use selfsup_layers::init::InitRng;
use selfsup_memories::{EmaKind, MomentumEncoder, OnlineWeights};
use selfsup_necks::{DinoNeck, DinoNeckConfig};
use serde::{Deserialize, Serialize};

use crate::{AlgorithmSpec, ConfigIssue, InitCfg};

selfsup_config::registry! {
    /// DINO's backbone: mmpretrain's `VisionTransformer`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum DinoBackboneConfig {
        /// `mmpretrain.VisionTransformer`.
        "VisionTransformer" => VisionTransformer(VisionTransformerConfig),
    }
}

selfsup_config::registry! {
    /// DINO's neck: `DINONeck`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum DinoNeckRegistry {
        /// The MLP, L2 normalisation and weight-normalised last layer.
        "DINONeck" => DinoNeck(DinoNeckConfig),
    }
}

selfsup_config::registry! {
    /// DINO's head: `DINOHead`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum DinoHeadRegistry {
        /// The multi-crop cross-entropy and the centre.
        "DINOHead" => DinoHead(DinoHeadConfig),
    }
}

fn base_099() -> f64 {
    0.99
}

/// `model = dict(type='DINO', backbone, neck, head, pretrained=None,
/// base_momentum=0.99, data_preprocessor, init_cfg)`, plus
/// `freeze_last_layer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DinoConfig {
    /// The data preprocessor.
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// `dict(type='mmpretrain.VisionTransformer', ...)`.
    pub backbone: DinoBackboneConfig,
    /// `dict(type='DINONeck', ...)`.
    pub neck: DinoNeckRegistry,
    /// `dict(type='DINOHead', ...)`.
    pub head: DinoHeadRegistry,
    /// A weight file for the whole model; must be null (use `load_from`).
    #[serde(default)]
    pub pretrained: Option<String>,
    /// The teacher's starting momentum (its weight; cosine-increased to 1).
    #[serde(default = "base_099")]
    pub base_momentum: f64,
    /// Epochs during which the neck's last layer gets no gradient.
    #[serde(default)]
    pub freeze_last_layer: usize,
    /// MMEngine `init_cfg` (accepted, not interpreted).
    #[serde(default)]
    pub init_cfg: InitCfg,
}

impl DinoConfig {
    fn parts(&self) -> (&VisionTransformerConfig, &DinoNeckConfig, &DinoHeadConfig) {
        let DinoBackboneConfig::VisionTransformer(b) = &self.backbone;
        let DinoNeckRegistry::DinoNeck(n) = &self.neck;
        let DinoHeadRegistry::DinoHead(h) = &self.head;
        (b, n, h)
    }

    /// Crops per image (`head.num_crops`).
    pub fn num_crops(&self) -> usize {
        self.parts().2.num_crops
    }
}

impl AlgorithmSpec for DinoConfig {
    type Model<B: Backend> = Dino<B>;

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    /// The two global crops and the local ones.
    fn num_views(&self) -> usize {
        self.num_crops()
    }

    /// The local crops are `size·96/224` (DINO's 224 + 96), rounded down to
    /// whole patches.
    fn view_sizes(&self, size: usize) -> Vec<usize> {
        let p = self.parts().0.patch_size.max(1);
        let local = (size * 96 / 224 / p).max(1) * p;
        (0..self.num_crops()).map(|i| if i < 2 { size } else { local }).collect()
    }

    fn input_size(&self) -> Option<usize> {
        Some(self.parts().0.img_size)
    }

    fn has_vit_backbone(&self) -> bool {
        true
    }

    fn required_hooks(&self) -> &'static [&'static str] {
        &["DINOTeacherTempWarmupHook"]
    }

    /// Checks the parts and how their widths fit.
    fn validate(&self) -> Result<(), ConfigIssue> {
        let issue = |prefix: &str, (key, msg): (&str, String)| ConfigIssue::new(format!("{prefix}.{key}"), msg);
        let (backbone, neck, head) = self.parts();
        self.data_preprocessor.validate().map_err(|e| issue("data_preprocessor", e))?;
        let spec = backbone.validate().map_err(|e| issue("backbone", e))?;
        // DINO's student and teacher take the cls token without stochastic depth.
        if backbone.drop_path_rate != 0.0 || backbone.avg_featmap() {
            let key = if backbone.drop_path_rate != 0.0 { "backbone.drop_path_rate" } else { "backbone.out_type" };
            return Err(ConfigIssue::new(key, "DINO's backbone returns the cls token without stochastic depth (drop_path_rate 0)"));
        }
        neck.validate().map_err(|e| issue("neck", e))?;
        head.validate().map_err(|e| issue("head", e))?;
        if neck.in_channels != spec.embed_dims {
            return Err(ConfigIssue::new(
                "neck.in_channels",
                format!("{} does not match the backbone's embed_dims {}", neck.in_channels, spec.embed_dims),
            ));
        }
        if head.out_channels != neck.out_channels {
            return Err(ConfigIssue::new(
                "head.out_channels",
                format!("{} does not match neck.out_channels {}", head.out_channels, neck.out_channels),
            ));
        }
        if self.pretrained.is_some() {
            return Err(ConfigIssue::new("pretrained", "not supported; load weights with `load_from` or `selfsup convert`"));
        }
        if !(0.0..=1.0).contains(&self.base_momentum) {
            return Err(ConfigIssue::new("base_momentum", "must be in [0, 1]"));
        }
        Ok(())
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> Dino<B> {
        let (backbone, neck, head) = self.parts();
        let student = (backbone.init(device, rng), neck.init(device, rng));
        let teacher = (backbone.init(device, rng), neck.init(device, rng));
        Dino {
            backbone: student.0,
            neck: student.1,
            teacher: MomentumEncoder::new(teacher, EmaKind::Cosine { base: self.base_momentum, end: 1.0 }, device),
            head: head.init(device),
            data_preprocessor: self.data_preprocessor.clone(),
            freeze_last_layer: self.freeze_last_layer,
            last_layer_frozen: false,
        }
    }
}

/// DINO. Keys `backbone.*`, `neck.*`, `teacher.module.{0,1}.*`,
/// `teacher.steps`, `head.center`, as mmpretrain's `state_dict`.
#[derive(Module, Debug)]
pub struct Dino<B: Backend> {
    /// The student's ViT.
    pub backbone: VisionTransformer<B>,
    /// The student's projection.
    pub neck: DinoNeck<B>,
    /// The teacher `(backbone, neck)`, the student's cosine EMA.
    pub teacher: MomentumEncoder<B, (VisionTransformer<B>, DinoNeck<B>)>,
    /// The loss and the centre.
    pub head: DinoHead<B>,
    #[module(skip)]
    data_preprocessor: DataPreprocessorConfig,
    #[module(skip)]
    freeze_last_layer: usize,
    #[module(skip)]
    last_layer_frozen: bool,
}

/// What `loss` hands to `after_step`: this replica's teacher-output sum and
/// row count, for the centre.
pub type DinoStepState<B> = (Tensor<B, 2>, usize);

impl<B: Backend> Dino<B> {
    fn online(&self) -> OnlineWeights<B> {
        OnlineWeights::default().with(&self.backbone).with(&self.neck)
    }

    /// What `DINOTeacherTempWarmupHook` does before each epoch: the teacher
    /// temperature of the epoch, and the last layer frozen while `epoch <
    /// freeze_last_layer`.
    pub fn begin_epoch(&mut self, epoch: usize, teacher_temp: f64) {
        self.head.set_teacher_temp(teacher_temp);
        self.last_layer_frozen = epoch < self.freeze_last_layer;
    }

    /// Whether the last layer is frozen this epoch.
    pub fn last_layer_frozen(&self) -> bool {
        self.last_layer_frozen
    }

    /// The student's output for a batch of crops of one size.
    fn student(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 2>, ModelError> {
        Ok(self.neck.forward(self.backbone.forward(x)?.cls_token, self.last_layer_frozen))
    }

    /// The global crops and the local crops, each concatenated along the
    /// batch (`torch.cat(inputs[:2])`, `torch.cat(inputs[2:])`).
    fn crops(&self, inputs: &SelfSupInputs<B>) -> Result<(Tensor<B, 4>, Option<Tensor<B, 4>>), ModelError> {
        let views = inputs.expect_views("DINO", self.head.num_crops())?;
        let same = |vs: &[Tensor<B, 4>]| vs.windows(2).all(|w| w[0].dims() == w[1].dims());
        if !same(&views[..2]) || !same(&views[2..]) {
            return Err(ModelError::Shape {
                algorithm: "DINO",
                expected: "two global crops of one size, then local crops of one size".into(),
                got: views.iter().flat_map(|v| v.dims()).collect(),
            });
        }
        let local = (views.len() > 2).then(|| Tensor::cat(views[2..].to_vec(), 0));
        Ok((Tensor::cat(views[..2].to_vec(), 0), local))
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for Dino<B> {
    type Features = VitFeatures<B>;
    type Prediction = VitFeatures<B>;
    type StepState = DinoStepState<B>;

    fn name(&self) -> &'static str {
        "DINO"
    }

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    /// The student backbone on the first view.
    fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<VitFeatures<B>, ModelError> {
        self.backbone.forward(inputs.first_view("DINO")?.clone())
    }

    fn global_features(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        Ok(self.extract_feat(inputs)?.cls_token)
    }

    /// The loss, plus two log-only collapse signals: the teacher's mean
    /// entropy (`teacher_entropy`) and the centre's norm (`center_norm`).
    fn loss(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<(LossOutput<B>, DinoStepState<B>), ModelError> {
        let (global, local) = self.crops(inputs)?;
        let (tb, tn) = &self.teacher.module;
        let teacher = tn.forward(tb.forward(global.clone())?.cls_token, false).detach();
        let mut student = vec![self.student(global)?];
        if let Some(local) = local {
            student.push(self.student(local)?);
        }
        let out = self.head.forward(Tensor::cat(student, 0), teacher);
        let center_norm = self.head.center.val().powi_scalar(2).sum().sqrt();
        let loss = LossOutput::new().with("loss", out.loss).with("teacher_entropy", out.teacher_entropy).with("center_norm", center_norm);
        Ok((loss, out.center_sum))
    }

    /// The student backbone's features of the first view.
    fn predict(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<VitFeatures<B>, ModelError> {
        self.extract_feat(inputs)
    }

    /// Copies the student into a never-updated teacher.
    fn prepare(mut self) -> Self {
        let online = self.online();
        self.teacher = self.teacher.prepare(online);
        self
    }

    /// The centre's EMA, then the teacher's.
    fn after_step(mut self, center_sum: DinoStepState<B>, ctx: &StepContext) -> Self {
        self.head = self.head.update_center(center_sum);
        let online = self.online();
        self.teacher = self.teacher.update(online, ctx.max_iters);
        self
    }
}
