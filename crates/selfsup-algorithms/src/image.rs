//! Port of mmcls's `ImageClassifier` (`mmcls/models/classifiers/image.py`,
//! 1.0.0rc6): the model of MMSelfSup's classification benchmarks, which
//! fine-tune a pre-trained backbone (`selfsup finetune`).
//!
//! `backbone → neck → head`: mmcls's `VisionTransformer` (with
//! `avg_token=True` the mean patch token through `ln2`, MMSelfSup's ViT
//! fine-tuning; else the cls token), or a `ResNet` with mmcls's
//! `GlobalAveragePooling`; then `LinearClsHead` with `CrossEntropyLoss`
//! or `LabelSmoothLoss`. In training, `train_cfg.augments` (or the data
//! preprocessor's `batch_augments`) mixes the normalised batch and its
//! one-hot scores (Mixup, CutMix, one of them per batch), and the ViT's
//! stochastic depth applies.
//!
//! The backbone's `init_cfg=dict(type='Pretrained', checkpoint, prefix)`
//! is what MMSelfSup's benchmark scripts set to fine-tune a pre-trained
//! model (`--cfg-options model.backbone.init_cfg.checkpoint=...
//! model.backbone.init_cfg.prefix=backbone.`): the keys under `prefix`
//! load into the backbone when training starts, loosely as MMEngine's
//! `load_checkpoint(strict=False)`: missing and unexpected keys are listed
//! on stderr; a position embedding for another grid is resized
//! bicubically (mmcls's `_prepare_pos_embed`); other shape mismatches are
//! errors. An empty `checkpoint` loads nothing.
use burn::{
    module::Module,
    tensor::{backend::Backend, Int, Tensor, TensorData},
};
use selfsup_backbones::{ResNet, ResNetConfig, VisionTransformer, VisionTransformerConfig};
use selfsup_core::{DataPreprocessorConfig, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs};
use selfsup_heads::{ClsTargets, LinearClsHead, LinearClsHeadConfig};
use selfsup_layers::{init::InitRng, resize_pos_embed};
use selfsup_necks::{GlobalAveragePooling, GlobalAveragePoolingConfig};
use selfsup_weights::{load_into, LoadOptions, StateDict};
use serde::{Deserialize, Serialize};

use crate::{
    batch_augments::RandomBatchAugmentConfig, target_generator_weights::read_local_checkpoint, AlgorithmSpec, ConfigIssue, InitCfg,
};

selfsup_config::registry! {
    /// The classifier's backbone.
    #[derive(Debug, Clone, PartialEq)]
    pub enum ClassifierBackboneConfig {
        /// mmcls's `ResNet` (last stage, `out_indices` at its default).
        "ResNet" => ResNet(ResNetConfig),
        /// mmcls's `VisionTransformer`.
        "VisionTransformer" => VisionTransformer(VisionTransformerConfig),
    }
}

selfsup_config::registry! {
    /// The classifier's neck.
    #[derive(Debug, Clone, PartialEq)]
    pub enum ClassifierNeckConfig {
        /// mmcls's `GlobalAveragePooling`.
        "GlobalAveragePooling" => GlobalAveragePooling(GlobalAveragePoolingConfig),
    }
}

selfsup_config::registry! {
    /// The classifier's head.
    #[derive(Debug, Clone, PartialEq)]
    pub enum ClassifierHeadConfig {
        /// mmcls's `LinearClsHead`.
        "LinearClsHead" => LinearClsHead(LinearClsHeadConfig),
    }
}

/// The backbone's `init_cfg=dict(type='Pretrained', checkpoint, prefix=None)`.
#[derive(Debug, Clone, PartialEq)]
pub struct PretrainedBackbone {
    /// The file (a local path).
    pub checkpoint: String,
    /// Keys under this prefix (stripped) are the backbone's.
    pub prefix: Option<String>,
}

/// `model = dict(type='ImageClassifier', backbone, neck=None, head,
/// train_cfg=None, data_preprocessor=None, init_cfg=None)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageClassifierConfig {
    /// mmcls's `ClsDataPreprocessor` (the type when the dict names none, as
    /// `ImageClassifier` sets it).
    #[serde(default = "cls_preprocessor", deserialize_with = "cls_preprocessor_dict")]
    pub data_preprocessor: DataPreprocessorConfig,
    /// The backbone, with an optional `init_cfg` Pretrained.
    pub backbone: ClassifierBackboneConfig,
    /// `GlobalAveragePooling` for a ResNet; none for a ViT.
    #[serde(default)]
    pub neck: Option<ClassifierNeckConfig>,
    /// The classifier.
    pub head: ClassifierHeadConfig,
    /// `dict(augments=[...], probs=None)`: the batch augmentations.
    #[serde(default)]
    pub train_cfg: Option<RandomBatchAugmentConfig>,
    /// `pretrained` (mmcls's old argument): refused, use the backbone's `init_cfg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<String>,
    /// MMEngine `init_cfg` (the components' own initialisation is built).
    #[serde(default)]
    pub init_cfg: InitCfg,
}

fn cls_preprocessor() -> DataPreprocessorConfig {
    DataPreprocessorConfig { kind: selfsup_core::DataPreprocessorKind::Cls, ..Default::default() }
}

/// `data_preprocessor.setdefault('type', 'mmcls.ClsDataPreprocessor')`.
fn cls_preprocessor_dict<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DataPreprocessorConfig, D::Error> {
    let mut v = serde_json::Value::deserialize(d)?;
    if let Some(obj) = v.as_object_mut() {
        obj.entry("type").or_insert_with(|| "ClsDataPreprocessor".into());
    }
    serde_json::from_value(v).map_err(serde::de::Error::custom)
}

impl ImageClassifierConfig {
    fn head(&self) -> &LinearClsHeadConfig {
        let ClassifierHeadConfig::LinearClsHead(h) = &self.head;
        h
    }

    /// The backbone's own `init_cfg`.
    fn backbone_init_cfg(&self) -> Option<&serde_json::Value> {
        match &self.backbone {
            ClassifierBackboneConfig::ResNet(c) => c.init_cfg.as_ref(),
            ClassifierBackboneConfig::VisionTransformer(c) => c.init_cfg.as_ref(),
        }
    }

    /// The backbone config without its `init_cfg` (read here, not by the backbone).
    fn backbone_without_init(&self) -> ClassifierBackboneConfig {
        match &self.backbone {
            ClassifierBackboneConfig::ResNet(c) => ClassifierBackboneConfig::ResNet(ResNetConfig { init_cfg: None, ..c.clone() }),
            ClassifierBackboneConfig::VisionTransformer(c) => {
                ClassifierBackboneConfig::VisionTransformer(VisionTransformerConfig { init_cfg: None, ..c.clone() })
            }
        }
    }

    /// The backbone's Pretrained `init_cfg`, when it names a file.
    ///
    /// # Errors
    /// An `init_cfg` of another type, or without `checkpoint`.
    pub fn pretrained_backbone(&self) -> Result<Option<PretrainedBackbone>, ConfigIssue> {
        let Some(cfg) = self.backbone_init_cfg() else { return Ok(None) };
        let bad = |m: &str| ConfigIssue::new("backbone.init_cfg", m.to_string());
        if cfg.get("type").and_then(|t| t.as_str()) != Some("Pretrained") {
            return Err(bad("only dict(type='Pretrained', checkpoint=..., prefix=...) is supported"));
        }
        let checkpoint = cfg.get("checkpoint").and_then(|c| c.as_str()).ok_or_else(|| bad("Pretrained needs a `checkpoint` path"))?;
        if checkpoint.is_empty() {
            return Ok(None);
        }
        let prefix = cfg.get("prefix").and_then(|p| p.as_str()).filter(|p| !p.is_empty()).map(String::from);
        Ok(Some(PretrainedBackbone { checkpoint: checkpoint.into(), prefix }))
    }

    /// The batch augmentations: `train_cfg`, else the data preprocessor's `batch_augments`.
    ///
    /// # Errors
    /// `batch_augments` that is not a `RandomBatchAugment` dict.
    pub fn batch_augments(&self) -> Result<Option<RandomBatchAugmentConfig>, ConfigIssue> {
        if let Some(t) = &self.train_cfg {
            return Ok(Some(t.clone()));
        }
        match &self.data_preprocessor.batch_augments {
            None => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| ConfigIssue::new("data_preprocessor.batch_augments", e.to_string())),
        }
    }

    fn feat_dim(&self) -> usize {
        match &self.backbone {
            ClassifierBackboneConfig::ResNet(c) => c.feat_dim(),
            ClassifierBackboneConfig::VisionTransformer(c) => c.arch.spec().map(|s| s.embed_dims).unwrap_or(0),
        }
    }
}

impl AlgorithmSpec for ImageClassifierConfig {
    type Model<B: Backend> = ImageClassifier<B>;

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    fn num_views(&self) -> usize {
        1
    }

    fn input_size(&self) -> Option<usize> {
        match &self.backbone {
            ClassifierBackboneConfig::ResNet(_) => None,
            ClassifierBackboneConfig::VisionTransformer(c) => Some(c.img_size),
        }
    }

    fn has_vit_backbone(&self) -> bool {
        matches!(self.backbone, ClassifierBackboneConfig::VisionTransformer(_))
    }

    fn validate(&self) -> Result<(), ConfigIssue> {
        let issue = |prefix: &str, (k, m): (&str, String)| ConfigIssue::new(format!("{prefix}.{k}"), m);
        self.data_preprocessor.validate().map_err(|e| issue("data_preprocessor", e))?;
        if self.pretrained.is_some() {
            return Err(ConfigIssue::new("pretrained", "use backbone.init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...)"));
        }
        self.pretrained_backbone()?;
        match (&self.backbone_without_init(), &self.neck) {
            (ClassifierBackboneConfig::ResNet(c), Some(ClassifierNeckConfig::GlobalAveragePooling(g))) => {
                c.validate().map_err(|e| issue("backbone", e))?;
                if c.out_indices != ResNetConfig::default().out_indices {
                    return Err(ConfigIssue::new("backbone.out_indices", "the classifier takes the last stage: leave out_indices at its default"));
                }
                g.validate().map_err(|(k, m)| ConfigIssue::new(format!("neck.{k}"), m))?;
            }
            (ClassifierBackboneConfig::ResNet(_), None) => {
                return Err(ConfigIssue::new("neck", "a ResNet classifier needs neck=dict(type='GlobalAveragePooling')"));
            }
            (ClassifierBackboneConfig::VisionTransformer(c), None) => {
                c.validate().map_err(|e| issue("backbone", e))?;
            }
            (ClassifierBackboneConfig::VisionTransformer(_), Some(_)) => {
                return Err(ConfigIssue::new("neck", "a ViT classifier takes its token directly: neck=None"));
            }
        }
        let head = self.head();
        head.validate().map_err(|(k, m)| ConfigIssue::new(format!("head.{k}"), m))?;
        if head.in_channels != self.feat_dim() {
            return Err(ConfigIssue::new(
                "head.in_channels",
                format!("{} does not match the backbone's {} features", head.in_channels, self.feat_dim()),
            ));
        }
        if self.data_preprocessor.num_classes.is_some_and(|n| n != head.num_classes) {
            return Err(ConfigIssue::new("data_preprocessor.num_classes", format!("does not match head.num_classes {}", head.num_classes)));
        }
        if let Some(a) = self.batch_augments()? {
            a.validate().map_err(|(k, m)| ConfigIssue::new(format!("train_cfg.{k}"), m))?;
        }
        Ok(())
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> ImageClassifier<B> {
        let backbone = match self.backbone_without_init() {
            ClassifierBackboneConfig::ResNet(c) => ClassifierBackbone::ResNet(c.init(device, rng)),
            ClassifierBackboneConfig::VisionTransformer(c) => ClassifierBackbone::Vit(c.init(device, rng)),
        };
        ImageClassifier {
            backbone,
            head: self.head().init(device, rng),
            neck: self.neck.as_ref().map(|ClassifierNeckConfig::GlobalAveragePooling(g)| g.init()),
            augments: self.batch_augments().ok().flatten(),
            num_classes: self.head().num_classes,
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }

    fn load_pretrained<B: Backend>(&self, mut model: ImageClassifier<B>) -> Result<ImageClassifier<B>, ConfigIssue> {
        let Some(p) = self.pretrained_backbone()? else { return Ok(model) };
        let key = "backbone.init_cfg.checkpoint";
        let state = read_local_checkpoint(key, &p.checkpoint)?;
        let state = match &p.prefix {
            Some(prefix) => state.sub(prefix),
            None => state,
        };
        if state.tensors.is_empty() {
            let under = p.prefix.as_deref().map(|x| format!(" under `{x}`")).unwrap_or_default();
            return Err(ConfigIssue::new(key, format!("{}: no tensor{under}", p.checkpoint)));
        }
        let fail = |e: String| ConfigIssue::new(key, format!("{}: {e}", p.checkpoint));
        model.backbone = match model.backbone {
            ClassifierBackbone::ResNet(r) => ClassifierBackbone::ResNet(load_backbone(r, &state, &p.checkpoint).map_err(fail)?),
            ClassifierBackbone::Vit(v) => {
                let state = resize_checkpoint_pos_embed(&v, state).map_err(fail)?;
                ClassifierBackbone::Vit(load_backbone(v, &state, &p.checkpoint).map_err(fail)?)
            }
        };
        Ok(model)
    }
}

/// Loads `state` into a backbone by its own keys: missing and unexpected
/// keys are listed on stderr, shape mismatches are errors.
fn load_backbone<B: Backend, M: Module<B>>(module: M, state: &StateDict, path: &str) -> Result<M, String> {
    let (module, report) =
        load_into(module, state, &crate::key_map(), &LoadOptions { strict: false, prefix: None }).map_err(|e| e.to_string())?;
    if !report.shape_mismatches.is_empty() {
        let list: Vec<String> = report.shape_mismatches.iter().map(|(k, m, c)| format!("{k}: model {m:?}, checkpoint {c:?}")).collect();
        return Err(format!("shape mismatches: {}", list.join("; ")));
    }
    eprintln!("backbone init_cfg Pretrained {path}: {} tensors loaded", report.loaded.len());
    if !report.missing.is_empty() {
        eprintln!("  missing (kept as initialised): {}", report.missing.join(", "));
    }
    if !report.unexpected.is_empty() {
        eprintln!("  unexpected (ignored): {}", report.unexpected.join(", "));
    }
    Ok(module)
}

/// mmcls's `_prepare_pos_embed`: a checkpoint's `pos_embed` for another
/// grid, resized bicubically to the backbone's.
fn resize_checkpoint_pos_embed<B: Backend>(v: &VisionTransformer<B>, mut state: StateDict) -> Result<StateDict, String> {
    let Some(pos) = state.tensors.get("pos_embed") else { return Ok(state) };
    let want = v.pos_embed.dims();
    if pos.shape.as_slice() == want.as_slice() {
        return Ok(state);
    }
    let (len, dim) = match pos.shape.as_slice() {
        [1, len, dim] if *dim == want[2] => (*len, *dim),
        other => return Err(format!("pos_embed of shape {other:?} cannot be resized to {want:?}")),
    };
    let side = |tokens: usize| -> Result<usize, String> {
        let s = ((tokens.saturating_sub(1)) as f64).sqrt().round() as usize;
        if s * s + 1 == tokens {
            Ok(s)
        } else {
            Err(format!("pos_embed with {tokens} tokens is not a square grid plus the cls token"))
        }
    };
    let (src, dst) = (side(len)?, side(want[1])?);
    eprintln!("Resize the pos_embed shape from [1, {len}, {dim}] to {want:?}.");
    let device = v.pos_embed.device();
    let t = Tensor::<B, 3>::from_data(pos.clone().convert::<f32>(), &device);
    let resized = resize_pos_embed(t, [src, src], [dst, dst], 1);
    state.tensors.insert("pos_embed".into(), resized.into_data());
    Ok(state)
}

/// The classifier's backbone module.
#[derive(Module, Debug)]
pub enum ClassifierBackbone<B: Backend> {
    /// mmcls's ResNet.
    ResNet(ResNet<B>),
    /// mmcls's VisionTransformer.
    Vit(VisionTransformer<B>),
}

/// mmcls's `ImageClassifier`; keys `backbone.*`, `head.fc.*`.
#[derive(Module, Debug)]
pub struct ImageClassifier<B: Backend> {
    /// Backbone.
    pub backbone: ClassifierBackbone<B>,
    /// `LinearClsHead`.
    pub head: LinearClsHead<B>,
    #[module(skip)]
    neck: Option<GlobalAveragePooling>,
    #[module(skip)]
    augments: Option<RandomBatchAugmentConfig>,
    num_classes: usize,
    #[module(skip)]
    data_preprocessor: DataPreprocessorConfig,
}

impl<B: Backend> ImageClassifier<B> {
    /// The feature the head takes (`extract_feat`): the ViT's token, or
    /// the ResNet's pooled last stage. With `draws`, stochastic depth.
    pub fn feature(&self, x: Tensor<B, 4>, draws: Option<&mut Draws>) -> Result<Tensor<B, 2>, ModelError> {
        match &self.backbone {
            ClassifierBackbone::Vit(v) => v.forward_feature(x, draws),
            ClassifierBackbone::ResNet(r) => {
                // A ResNet classifier always has its `GlobalAveragePooling` (validated).
                Ok(self.neck.unwrap_or(GlobalAveragePooling).forward(r.forward_last(x)?))
            }
        }
    }

    /// Each sample's class, all required.
    fn labels(&self, inputs: &SelfSupInputs<B>, n: usize) -> Result<Vec<usize>, ModelError> {
        let labels = &inputs.data_samples.gt_label;
        let missing = |message: String| ModelError::DataSample { algorithm: "ImageClassifier", field: "gt_label".into(), message };
        if labels.len() != n {
            return Err(missing(format!("{} labels for {n} images", labels.len())));
        }
        labels
            .iter()
            .map(|l| match l {
                Some(c) if *c < self.num_classes => Ok(*c),
                Some(c) => Err(missing(format!("class {c} is outside the head's {} classes", self.num_classes))),
                None => Err(missing("an unlabelled image: train on class sub-folders or a labelled dataset".into())),
            })
            .collect()
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for ImageClassifier<B> {
    /// `[n, features]`.
    type Features = Tensor<B, 2>;
    /// The class scores (logits), `[n, classes]`.
    type Prediction = Tensor<B, 2>;
    type StepState = ();

    fn name(&self) -> &'static str {
        "ImageClassifier"
    }

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        self.feature(inputs.first_view("ImageClassifier")?.clone(), None)
    }

    fn global_features(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        self.extract_feat(inputs)
    }

    fn loss(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<(LossOutput<B>, ()), ModelError> {
        let x = inputs.first_view("ImageClassifier")?.clone();
        let n = x.dims()[0];
        let labels = self.labels(inputs, n)?;
        let device = x.device();
        let labels = Tensor::<B, 1, Int>::from_data(TensorData::new(labels.into_iter().map(|c| c as i64).collect(), [n]), &device);
        let (x, targets) = match &self.augments {
            Some(aug) => {
                let scores = labels.one_hot::<2>(self.num_classes).float();
                let (x, scores) = aug.apply(x, scores, draws);
                (x, ClsTargets::Scores(scores))
            }
            None => (x, ClsTargets::Labels(labels)),
        };
        let feat = self.feature(x, Some(draws))?;
        Ok((LossOutput::new().with("loss", self.head.loss(feat, targets)), ()))
    }

    fn predict(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<Tensor<B, 2>, ModelError> {
        Ok(self.head.forward(self.extract_feat(inputs)?))
    }
}
