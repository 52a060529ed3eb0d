//! Port of `mmselfsup.models.algorithms.CAE` (mmselfsup 1.0.0), the context
//! autoencoder. The backbone (`CAEViT`) encodes the visible patches of the
//! first view (the pipeline's block-wise mask); the momentum `teacher`, a
//! second `CAEViT`, encodes the masked patches (its latent target); the
//! neck regresses the masked patches' latents from the visible ones and
//! decodes them into logits over the DALL-E vocabulary; the frozen DALL-E
//! encoder gives the codes of the second view. `loss = main + align`
//! (cross entropy on the codes, `lambd`·MSE on the latents); `main` and
//! `align` are logged beside it (they do not contain "loss", so only
//! `loss` is back-propagated, as MMEngine's `parse_losses` does).
//!
//! The teacher: MMSelfSup builds it from the backbone's config and copies
//! the backbone into it in `init_weights`; here it is built from the same
//! initial draws, so it starts equal. Its parameters never train.
//! MMSelfSup's `loss()` runs the teacher first and then
//! `momentum_update()`s it towards the backbone's weights of that
//! iteration, before the optimiser step: `t ← m·t + (1 − m)·b`
//! (`base_momentum` m, 0 in the configs: a copy). So the teacher that
//! encodes iteration `k`'s targets holds the backbone of iteration `k − 1`.
//! Here `loss` hands the backbone's weights of the iteration to
//! `after_step` ([`CaeStepState`]), which applies the same update after the
//! optimiser step: the teacher's state after every iteration is
//! MMSelfSup's.
use burn::{
    module::{Module, ModuleMapper, ModuleVisitor, Param},
    tensor::{backend::Backend, Int, Tensor, TensorPrimitive},
};
use selfsup_backbones::{cae_vit::MaskIds, CaeVit, CaeVitConfig, VitFeatures};
use selfsup_core::{
    DataPreprocessorConfig, DataPreprocessorKind, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs, StepContext,
};
use selfsup_heads::{CaeHead, CaeHeadConfig};
use selfsup_layers::init::InitRng;
use selfsup_necks::{CaeNeck, CaeNeckConfig};
use selfsup_target_generators::{freeze, DallE, DallEConfig};
use serde::{Deserialize, Serialize};

use crate::{common::pipeline_mask, AlgorithmSpec, ConfigIssue, InitCfg, LoadPretrained};

/// `model = dict(type='CAE', ...)`: MMSelfSup's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaeConfig {
    /// `CAEDataPreprocessor`: the second view mapped to [0.1, 0.9] for DALL-E.
    pub data_preprocessor: DataPreprocessorConfig,
    /// `dict(type='CAEViT', ...)`.
    pub backbone: CaeBackboneConfig,
    /// `dict(type='CAENeck', ...)`.
    pub neck: CaeNeckRegistry,
    /// `dict(type='CAEHead', loss=dict(type='CAELoss', lambd=2))`.
    pub head: CaeHeadRegistry,
    /// `dict(type='DALL-E', ...)`.
    pub target_generator: CaeTargetConfig,
    /// Momentum of the teacher (MMSelfSup's default and configs: 0.0, a copy).
    #[serde(default)]
    pub base_momentum: f64,
    /// MMEngine `init_cfg` (accepted, not interpreted).
    #[serde(default)]
    pub init_cfg: InitCfg,
}

selfsup_config::registry! {
    /// CAE's backbone.
    #[derive(Debug, Clone, PartialEq)]
    pub enum CaeBackboneConfig {
        /// MMSelfSup's `CAEViT`.
        "CAEViT" => CaeVit(CaeVitConfig),
    }
}

selfsup_config::registry! {
    /// CAE's neck.
    #[derive(Debug, Clone, PartialEq)]
    pub enum CaeNeckRegistry {
        /// MMSelfSup's `CAENeck`.
        "CAENeck" => CaeNeck(CaeNeckConfig),
    }
}

selfsup_config::registry! {
    /// CAE's head.
    #[derive(Debug, Clone, PartialEq)]
    pub enum CaeHeadRegistry {
        /// MMSelfSup's `CAEHead`.
        "CAEHead" => CaeHead(CaeHeadConfig),
    }
}

selfsup_config::registry! {
    /// CAE's tokenizer.
    #[derive(Debug, Clone, PartialEq)]
    pub enum CaeTargetConfig {
        /// The DALL-E encoder.
        "DALL-E" => DallE(DallEConfig),
    }
}

impl CaeConfig {
    fn parts(&self) -> (&CaeVitConfig, &CaeNeckConfig, &CaeHeadConfig, &DallEConfig) {
        let CaeBackboneConfig::CaeVit(b) = &self.backbone;
        let CaeNeckRegistry::CaeNeck(n) = &self.neck;
        let CaeHeadRegistry::CaeHead(h) = &self.head;
        let CaeTargetConfig::DallE(t) = &self.target_generator;
        (b, n, h, t)
    }
}

impl AlgorithmSpec for CaeConfig {
    type Model<B: Backend> = Cae<B>;

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    fn num_views(&self) -> usize {
        2
    }

    /// The DALL-E encoder downsamples by 8 to the backbone's patch grid
    /// (224 / 16 = 14 = 112 / 8).
    fn view_sizes(&self, size: usize) -> Vec<usize> {
        vec![size, size / self.parts().0.patch_size * 8]
    }

    fn input_size(&self) -> Option<usize> {
        Some(self.parts().0.img_size)
    }

    fn has_vit_backbone(&self) -> bool {
        true
    }

    /// Checks every part and how they fit: widths, the vocabulary, the
    /// number of mask queries against the patch grid, the momentum.
    fn validate(&self) -> Result<(), ConfigIssue> {
        let issue = |prefix: &str, (key, msg): (&str, String)| ConfigIssue::new(format!("{prefix}.{key}"), msg);
        self.data_preprocessor.validate().map_err(|e| issue("data_preprocessor", e))?;
        if self.data_preprocessor.kind != DataPreprocessorKind::Cae {
            return Err(ConfigIssue::new(
                "data_preprocessor.type",
                "CAE maps its second view to [0.1, 0.9] for DALL-E: use CAEDataPreprocessor",
            ));
        }
        let (backbone, neck, head, dalle) = self.parts();
        let spec = backbone.validate().map_err(|e| issue("backbone", e))?;
        neck.validate().map_err(|e| issue("neck", e))?;
        head.validate().map_err(|(k, m)| ConfigIssue::new(format!("head.{k}"), m))?;
        dalle.validate().map_err(|e| issue("target_generator", e))?;
        if neck.embed_dims != spec.embed_dims {
            return Err(ConfigIssue::new(
                "neck.embed_dims",
                format!("{} does not match the backbone's {}", neck.embed_dims, spec.embed_dims),
            ));
        }
        if neck.num_classes != dalle.vocab_size {
            return Err(ConfigIssue::new(
                "neck.num_classes",
                format!("{} does not match the tokenizer's vocabulary of {}", neck.num_classes, dalle.vocab_size),
            ));
        }
        let l = backbone.grid() * backbone.grid();
        if neck.mask_tokens_num >= l {
            return Err(ConfigIssue::new(
                "neck.mask_tokens_num",
                format!("{} masked patches leave none of the backbone's {l} visible", neck.mask_tokens_num),
            ));
        }
        if !(0.0..=1.0).contains(&self.base_momentum) {
            return Err(ConfigIssue::new("base_momentum", format!("must be in [0, 1], got {}", self.base_momentum)));
        }
        Ok(())
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> Cae<B> {
        let (backbone, neck, head, dalle) = self.parts();
        // The teacher repeats the backbone's draws: MMSelfSup's
        // `_init_teacher` copy, without drawing either now.
        let mut teacher_rng = rng.clone();
        Cae {
            backbone: backbone.init(device, rng),
            teacher: freeze(backbone.init(device, &mut teacher_rng)),
            neck: neck.init(device, rng),
            head: head.init(),
            target_generator: dalle.init(device, rng),
            momentum: self.base_momentum,
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }

    /// The DALL-E weights its `init_cfg` names (`dalle_encoder.pth`).
    fn load_pretrained<B: Backend>(&self, mut model: Cae<B>) -> Result<Cae<B>, ConfigIssue> {
        model.target_generator = self.parts().3.load_pretrained(model.target_generator)?;
        Ok(model)
    }
}

/// CAE. Keys `backbone.*`, `teacher.*`, `neck.*`, `target_generator.*`, as
/// MMSelfSup's `state_dict`.
#[derive(Module, Debug)]
pub struct Cae<B: Backend> {
    /// The encoder of the visible patches.
    pub backbone: CaeVit<B>,
    /// The momentum copy of the backbone that encodes the masked patches.
    pub teacher: CaeVit<B>,
    /// Latent regressor and decoder.
    pub neck: CaeNeck<B>,
    /// The head and its loss (no parameters).
    #[module(skip)]
    pub head: CaeHead,
    /// The frozen DALL-E encoder.
    pub target_generator: DallE<B>,
    /// The teacher's momentum (`base_momentum`).
    #[module(skip)]
    pub momentum: f64,
    /// The data preprocessor (no parameters).
    #[module(skip)]
    pub data_preprocessor: DataPreprocessorConfig,
}

/// What `loss` hands to `after_step`: the backbone as the iteration used
/// it, before the optimiser step (the weights MMSelfSup's
/// `momentum_update` reads inside `loss()`).
#[derive(Debug, Clone)]
pub struct CaeStepState<B: Backend> {
    /// The backbone before the step.
    pub backbone: CaeVit<B>,
}

/// The tensors of a module in visiting order, detached.
struct Collect<B: Backend>(Vec<TensorPrimitive<B>>);

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.push(param.val().detach().into_primitive());
    }
}

/// `t ← t·m + b·(1 − m)` for every tensor `t` of the teacher and `b` of the
/// backbone (MMSelfSup's `momentum_update`, buffers-as-parameters included).
struct MomentumUpdate<B: Backend> {
    online: std::vec::IntoIter<TensorPrimitive<B>>,
    momentum: f64,
}

impl<B: Backend> ModuleMapper<B> for MomentumUpdate<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, teacher, mapper) = param.consume();
        let online = Tensor::<B, D>::from_primitive(self.online.next().expect("the teacher and the backbone have the same structure"));
        let value = teacher.detach().mul_scalar(self.momentum) + online.mul_scalar(1.0 - self.momentum);
        Param::from_mapped_value(id, value.set_require_grad(false), mapper)
    }
}

/// CAE's `predict` output.
#[derive(Debug, Clone)]
pub struct CaePrediction<B: Backend> {
    /// `[batch, masked]`, the argmax of the decoder's logits.
    pub predicted: Tensor<B, 2, Int>,
    /// `[batch, masked]`, the tokenizer's codes of the masked patches.
    pub target: Tensor<B, 2, Int>,
    /// `[batch, h, w]`, 1 for masked patches.
    pub mask: Tensor<B, 3>,
}

/// Everything one forward pass computes, for `loss` and `predict`.
struct Forward<B: Backend> {
    mask: Tensor<B, 3>,
    masked: Tensor<B, 2, Int>,
    latent_target: Tensor<B, 3>,
    latent_pred: Tensor<B, 3>,
    logits: Tensor<B, 3>,
    logits_target: Tensor<B, 4>,
}

impl<B: Backend> Cae<B> {
    fn run(&self, inputs: &SelfSupInputs<B>, mut draws: Option<&mut Draws>) -> Result<Forward<B>, ModelError> {
        let views = inputs.expect_views("CAE", 2)?;
        let g = self.backbone.grid();
        let mask = pipeline_mask(inputs, "CAE", [g, g], "BEiTMaskGenerator")?;
        let n = mask.dims()[0];
        let err = |message: String| ModelError::DataSample { algorithm: "CAE", field: "mask".into(), message };
        let ids = MaskIds::from_mask(&mask.clone().reshape([n, g * g])).map_err(err)?;
        let want = self.neck.mask_tokens_num();
        let (Some(visible), Some(masked)) = (ids.visible, ids.masked) else {
            return Err(err(format!("CAE needs both masked and visible patches; the neck has {want} mask tokens")));
        };
        if masked.dims()[1] != want {
            return Err(err(format!("{} masked patches per sample, but the neck's mask_tokens_num is {want}", masked.dims()[1])));
        }
        let img = views[0].clone();
        let unmasked = self.backbone.forward_visible(img.clone(), Some(&visible), "backbone", draws.as_deref_mut())?;
        let target = self.teacher.forward_visible(img, Some(&masked), "teacher", draws.as_deref_mut())?.detach();
        let [_, t1, d] = target.dims();
        let latent_target = target.slice([0..n, 1..t1, 0..d]);
        let [_, u1, _] = unmasked.dims();
        let out = self.neck.forward(
            unmasked.slice([0..n, 1..u1, 0..d]),
            self.backbone.pos_embed_of(&masked),
            self.backbone.pos_embed_of(&visible),
            draws,
        );
        let logits_target = self.target_generator.forward(views[1].clone()).detach();
        let [_, _, h, w] = logits_target.dims();
        if h * w != g * g {
            return Err(ModelError::Shape {
                algorithm: "CAE",
                expected: format!("a second view the DALL-E encoder turns into {g}x{g} codes ({0}x{0} pixels)", g * 8),
                got: views[1].dims().to_vec(),
            });
        }
        Ok(Forward { mask, masked, latent_target, latent_pred: out.latent_pred, logits: out.logits, logits_target })
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for Cae<B> {
    type Features = VitFeatures<B>;
    type Prediction = CaePrediction<B>;
    type StepState = CaeStepState<B>;

    fn name(&self) -> &'static str {
        "CAE"
    }

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    /// The backbone's features with every patch visible (MMSelfSup 1.0.0's
    /// `extract_feat` cannot call `CAEViT` without a mask; mmpretrain's CAE
    /// runs the full ViT).
    fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<VitFeatures<B>, ModelError> {
        self.backbone.features(inputs.first_view("CAE")?.clone())
    }

    fn global_features(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        Ok(self.extract_feat(inputs)?.cls_token)
    }

    fn loss(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<(LossOutput<B>, CaeStepState<B>), ModelError> {
        let f = self.run(inputs, Some(draws))?;
        let [n, m, c] = f.logits.dims();
        let (main, align) = self.head.forward(f.logits.reshape([n * m, c]), f.logits_target, f.latent_pred, f.latent_target, &f.masked);
        let out = LossOutput::new().with("loss", main.clone() + align.clone()).with("main", main).with("align", align);
        Ok((out, CaeStepState { backbone: self.backbone.clone() }))
    }

    fn predict(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<CaePrediction<B>, ModelError> {
        let f = self.run(inputs, None)?;
        let [n, m, _] = f.logits.dims();
        Ok(CaePrediction {
            predicted: f.logits.argmax(2).reshape([n, m]),
            target: self.head.target(f.logits_target, &f.masked).reshape([n, m]),
            mask: f.mask,
        })
    }

    /// MMSelfSup's `momentum_update` with the backbone of the iteration.
    fn after_step(mut self, state: CaeStepState<B>, _ctx: &StepContext) -> Self {
        let mut online = Collect(Vec::new());
        state.backbone.visit(&mut online);
        let mut update = MomentumUpdate { online: online.0.into_iter(), momentum: self.momentum };
        self.teacher = self.teacher.map(&mut update);
        self
    }
}
