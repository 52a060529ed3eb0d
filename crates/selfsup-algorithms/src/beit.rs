//! Port of `mmselfsup.models.algorithms.BEiT` (mmselfsup 1.0.0), one class
//! for BEiT v1 and v2 as in MMSelfSup. The backbone (`BEiTViT`) sees the
//! first view with the pipeline's block-wise mask; the frozen tokenizer
//! turns the second view into codes (v1: the argmax of the DALL-E
//! encoder's logits; v2: VQ-KD's nearest codebook entries); the head
//! classifies the masked tokens into the vocabulary. v2 adds `BEiTV2Neck`
//! on the early and last layers' tokens and a second loss.
//!
//! As in MMSelfSup, VQ-KD stays in training mode while BEiT v2 trains: a
//! codebook that is not yet initialised is filled by k-means on the first
//! batch (the draw `vqkd_kmeans` picks the starting vectors), and every step
//! moves the codebook and the code counts by their EMA (counts and sums
//! summed over ranks). The update is computed in `loss` and applied in
//! `after_step`; the codes of a step come from the codebook before it.
use burn::{
    module::Module,
    tensor::{backend::Backend, Int, Tensor},
};
use selfsup_backbones::{BeitVit, BeitVitConfig, VitFeatures};
use selfsup_core::{DataPreprocessorConfig, DataPreprocessorKind, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs};
use selfsup_heads::{BeitHeadConfig, BeitV1Head, BeitV2Head};
use selfsup_layers::init::InitRng;
use selfsup_necks::{BeitV2Neck, BeitV2NeckConfig};
use selfsup_layers::dist::{self, ReduceOperation};
use selfsup_target_generators::{CodeStatistics, DallE, DallEConfig, NormEmaVectorQuantizer, Vqkd, VqkdConfig};
use serde::{Deserialize, Serialize};

use crate::{common::pipeline_mask, AlgorithmSpec, ConfigIssue, InitCfg, LoadPretrained};

/// `model = dict(type='BEiT', ...)`: MMSelfSup's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeitConfig {
    /// `TwoNormDataPreprocessor`: the second view is the tokenizer's input.
    pub data_preprocessor: DataPreprocessorConfig,
    /// `dict(type='BEiTViT', ...)`.
    pub backbone: BeitBackboneConfig,
    /// `None` (v1) or `dict(type='BEiTV2Neck', ...)` (v2).
    #[serde(default)]
    pub neck: Option<BeitNeckConfig>,
    /// `BEiTV1Head` or `BEiTV2Head`.
    pub head: BeitHeadRegistry,
    /// `DALL-E` (v1) or `VQKD` (v2).
    pub target_generator: BeitTargetConfig,
    /// MMEngine `init_cfg` (accepted, not interpreted).
    #[serde(default)]
    pub init_cfg: InitCfg,
}

selfsup_config::registry! {
    /// BEiT's backbone.
    #[derive(Debug, Clone, PartialEq)]
    pub enum BeitBackboneConfig {
        /// MMSelfSup's `BEiTViT`.
        "BEiTViT" => BeitVit(BeitVitConfig),
    }
}

selfsup_config::registry! {
    /// BEiT v2's neck.
    #[derive(Debug, Clone, PartialEq)]
    pub enum BeitNeckConfig {
        /// MMSelfSup's `BEiTV2Neck`.
        "BEiTV2Neck" => BeitV2Neck(BeitV2NeckConfig),
    }
}

selfsup_config::registry! {
    /// BEiT's head.
    #[derive(Debug, Clone, PartialEq)]
    pub enum BeitHeadRegistry {
        /// BEiT v1's head.
        "BEiTV1Head" => V1(BeitHeadConfig),
        /// BEiT v2's head.
        "BEiTV2Head" => V2(BeitHeadConfig),
    }
}

selfsup_config::registry! {
    /// BEiT's tokenizer.
    #[derive(Debug, Clone, PartialEq)]
    pub enum BeitTargetConfig {
        /// The DALL-E encoder (v1).
        "DALL-E" => DallE(DallEConfig),
        /// The VQ-KD tokenizer (v2).
        "VQKD" => Vqkd(VqkdConfig),
    }
}

impl BeitConfig {
    fn backbone(&self) -> &BeitVitConfig {
        let BeitBackboneConfig::BeitVit(b) = &self.backbone;
        b
    }

    fn head(&self) -> &BeitHeadConfig {
        match &self.head {
            BeitHeadRegistry::V1(h) | BeitHeadRegistry::V2(h) => h,
        }
    }

    /// The tokenizer's input size for a first view of `size` pixels: the
    /// DALL-E encoder downsamples by 8 to the backbone's patch grid, VQ-KD
    /// reads the image at its encoder's size.
    fn target_size(&self, size: usize) -> usize {
        let b = self.backbone();
        match &self.target_generator {
            BeitTargetConfig::DallE(_) => size / b.patch_size * 8,
            BeitTargetConfig::Vqkd(t) => t.img_size(),
        }
    }
}

impl AlgorithmSpec for BeitConfig {
    type Model<B: Backend> = Beit<B>;

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    fn num_views(&self) -> usize {
        2
    }

    fn view_sizes(&self, size: usize) -> Vec<usize> {
        vec![size, self.target_size(size)]
    }

    fn input_size(&self) -> Option<usize> {
        Some(self.backbone().img_size)
    }

    fn has_vit_backbone(&self) -> bool {
        true
    }

    /// Checks every part and how they fit: v1 is BEiTV1Head on DALL-E
    /// without a neck, v2 BEiTV2Head on VQ-KD with `BEiTV2Neck` and two
    /// backbone outputs; widths, vocabulary and token grids agree.
    fn validate(&self) -> Result<(), ConfigIssue> {
        let issue = |prefix: &str, (key, msg): (&str, String)| ConfigIssue::new(format!("{prefix}.{key}"), msg);
        self.data_preprocessor.validate().map_err(|e| issue("data_preprocessor", e))?;
        if self.data_preprocessor.kind != DataPreprocessorKind::TwoNorm {
            return Err(ConfigIssue::new("data_preprocessor.type", "BEiT normalises its two views apart: use TwoNormDataPreprocessor"));
        }
        let backbone = self.backbone();
        let (spec, outs) = backbone.validate().map_err(|e| issue("backbone", e))?;
        let head = self.head();
        head.validate().map_err(|e| issue("head", e))?;
        if head.embed_dims != spec.embed_dims {
            return Err(ConfigIssue::new("head.embed_dims", format!("{} does not match the backbone's {}", head.embed_dims, spec.embed_dims)));
        }
        let g = backbone.grid();
        let (vocab, grid) = match &self.target_generator {
            BeitTargetConfig::DallE(t) => {
                t.validate().map_err(|e| issue("target_generator", e))?;
                (t.vocab_size, g)
            }
            BeitTargetConfig::Vqkd(t) => {
                t.validate().map_err(|e| issue("target_generator", e))?;
                (t.num_embed, t.grid())
            }
        };
        if grid != g {
            return Err(ConfigIssue::new("target_generator", format!("the tokenizer gives {grid}x{grid} codes but the backbone has {g}x{g} patches")));
        }
        if head.num_embed != vocab {
            return Err(ConfigIssue::new("head.num_embed", format!("{} does not match the tokenizer's vocabulary of {vocab}", head.num_embed)));
        }
        match (&self.head, &self.neck, &self.target_generator) {
            (BeitHeadRegistry::V1(_), None, BeitTargetConfig::DallE(_)) => {
                if outs.len() != 1 {
                    return Err(ConfigIssue::new("backbone.out_indices", "BEiT v1 reads one backbone output"));
                }
            }
            (BeitHeadRegistry::V2(_), Some(BeitNeckConfig::BeitV2Neck(neck)), BeitTargetConfig::Vqkd(_)) => {
                neck.validate().map_err(|e| issue("neck", e))?;
                if outs.len() != 2 || outs[0] >= outs[1] {
                    return Err(ConfigIssue::new("backbone.out_indices", "BEiT v2 reads an early and the last layer's outputs, e.g. [-4, -1]"));
                }
                if neck.embed_dims() != spec.embed_dims {
                    return Err(ConfigIssue::new(
                        "neck.backbone_arch",
                        format!("width {} does not match the backbone's {}", neck.embed_dims(), spec.embed_dims),
                    ));
                }
            }
            _ => {
                return Err(ConfigIssue::new(
                    "head",
                    "BEiT v1 is BEiTV1Head + DALL-E without a neck; BEiT v2 is BEiTV2Head + VQKD + BEiTV2Neck",
                ))
            }
        }
        Ok(())
    }

    /// The tokenizer's weight file (`target_generator.init_cfg` Pretrained:
    /// `dalle_encoder.pth`, `vqkd_encoder.pth`), when the config names one.
    fn load_pretrained<B: Backend>(&self, mut model: Beit<B>) -> Result<Beit<B>, ConfigIssue> {
        model.target_generator = match (&self.target_generator, model.target_generator) {
            (BeitTargetConfig::DallE(c), BeitTokenizer::DallE(t)) => BeitTokenizer::DallE(c.load_pretrained(t)?),
            (BeitTargetConfig::Vqkd(c), BeitTokenizer::Vqkd(t)) => BeitTokenizer::Vqkd(c.load_pretrained(t)?),
            _ => return Err(ConfigIssue::new("target_generator.type", "the model's tokenizer is not the config's")),
        };
        Ok(model)
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> Beit<B> {
        let backbone = self.backbone().init(device, rng);
        let neck = self.neck.as_ref().map(|BeitNeckConfig::BeitV2Neck(n)| n.init(device, rng));
        let head = match &self.head {
            BeitHeadRegistry::V1(h) => BeitHead::V1(h.init_v1(device, rng)),
            BeitHeadRegistry::V2(h) => BeitHead::V2(h.init_v2(device, rng)),
        };
        let target_generator = match &self.target_generator {
            BeitTargetConfig::DallE(t) => BeitTokenizer::DallE(t.init(device, rng)),
            BeitTargetConfig::Vqkd(t) => BeitTokenizer::Vqkd(t.init(device, rng)),
        };
        Beit { backbone, neck, head, target_generator, data_preprocessor: self.data_preprocessor.clone() }
    }
}

/// BEiT's head, v1 or v2. Keys `cls_head.*`.
#[derive(Module, Debug)]
pub enum BeitHead<B: Backend> {
    /// `BEiTV1Head`.
    V1(BeitV1Head<B>),
    /// `BEiTV2Head`.
    V2(BeitV2Head<B>),
}

/// BEiT's frozen tokenizer. Keys are the generator's own.
#[derive(Module, Debug)]
pub enum BeitTokenizer<B: Backend> {
    /// The DALL-E encoder.
    DallE(DallE<B>),
    /// VQ-KD.
    Vqkd(Vqkd<B>),
}

impl<B: Backend> BeitTokenizer<B> {
    /// The codes of a batch of tokenizer inputs, `[batch, h·w]`.
    pub fn codes(&self, x: Tensor<B, 4>) -> Tensor<B, 2, Int> {
        match self {
            Self::DallE(t) => t.codes(x),
            Self::Vqkd(t) => t.get_tokens(x),
        }
    }
}

/// BEiT v1 and v2. Keys `backbone.*`, `neck.*` (v2), `head.cls_head.*`,
/// `target_generator.*`, as MMSelfSup's `state_dict`.
#[derive(Module, Debug)]
pub struct Beit<B: Backend> {
    /// The ViT with a mask token and relative position bias.
    pub backbone: BeitVit<B>,
    /// BEiT v2's patch aggregation.
    pub neck: Option<BeitV2Neck<B>>,
    /// The classifier over the vocabulary.
    pub head: BeitHead<B>,
    /// The frozen tokenizer.
    pub target_generator: BeitTokenizer<B>,
    /// The data preprocessor (no parameters).
    #[module(skip)]
    pub data_preprocessor: DataPreprocessorConfig,
}

/// BEiT's `predict` output: the codes the model predicts for every patch
/// and the tokenizer's.
#[derive(Debug, Clone)]
pub struct BeitPrediction<B: Backend> {
    /// `[batch, L]`, the argmax of the head's logits (v2: on the last
    /// layer's tokens).
    pub predicted: Tensor<B, 2, Int>,
    /// `[batch, L]`, the tokenizer's codes.
    pub target: Tensor<B, 2, Int>,
    /// `[batch, h, w]`, 1 for masked patches.
    pub mask: Tensor<B, 3>,
}

/// What a BEiT v2 step changes in VQ-KD's quantizer: the k-means-filled
/// codebook when it was not initialised, and the batch's code statistics
/// for the EMA.
#[derive(Debug, Clone)]
pub struct VqkdUpdate<B: Backend> {
    /// The quantizer after its k-means start, when this step made it.
    pub initialised: Option<NormEmaVectorQuantizer<B>>,
    /// This rank's code counts and sums.
    pub statistics: CodeStatistics<B>,
}

/// VQ-KD's training-mode codes of a batch and the quantizer update they
/// imply (MMSelfSup's `NormEMAVectorQuantizer.forward` in training mode).
fn vqkd_codes_training<B: Backend>(vqkd: &Vqkd<B>, x: Tensor<B, 4>, draws: &mut Draws) -> (Tensor<B, 2, Int>, VqkdUpdate<B>) {
    let n = x.dims()[0];
    let enc = vqkd.encode(x);
    let (quantize, initialised) = if vqkd.quantize.is_initted() {
        (vqkd.quantize.clone(), false)
    } else {
        let rows = enc.z.dims()[0];
        let k = vqkd.quantize.num_embed();
        // `sample_vectors`: randperm(N)[:k], or randint(0, N, k) when N < k.
        let indices: Vec<usize> = if rows >= k {
            let keys = draws.uniform("vqkd_kmeans", rows);
            let mut order: Vec<usize> = (0..rows).collect();
            order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
            order.truncate(k);
            order
        } else {
            draws.integers("vqkd_kmeans", k, rows).into_iter().map(|i| i as usize).collect()
        };
        (vqkd.quantize.clone().init_embed(enc.z.clone(), &indices), true)
    };
    let codes = quantize.codes(enc.z.clone());
    let statistics = quantize.statistics(enc.z, codes.clone());
    let l = codes.dims()[0] / n;
    (codes.reshape([n, l]), VqkdUpdate { initialised: initialised.then_some(quantize), statistics })
}

/// The backbone's view, the tokenizer's view and the mask of a batch.
type ViewsAndMask<B> = (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 3>);

impl<B: Backend> Beit<B> {
    fn views_and_mask(&self, inputs: &SelfSupInputs<B>) -> Result<ViewsAndMask<B>, ModelError> {
        let views = inputs.expect_views("BEiT", 2)?;
        let g = self.backbone.grid();
        let mask = pipeline_mask(inputs, "BEiT", [g, g], "BEiTMaskGenerator")?;
        Ok((views[0].clone(), views[1].clone(), mask))
    }

    /// The head's input tokens: v1 the last output `[batch, 1 + L, d]`; v2
    /// the neck's `(x, x_cls_pt)`, `[batch, L, d]` each.
    fn tokens(&self, img: Tensor<B, 4>, mask: Tensor<B, 3>, mut draws: Option<&mut Draws>) -> Result<Vec<Tensor<B, 3>>, ModelError> {
        let mut outs = self.backbone.forward(img, mask, draws.as_deref_mut())?;
        Ok(match &self.neck {
            Some(neck) => {
                let last = outs.pop().expect("two outputs");
                let early = outs.pop().expect("two outputs");
                let (x, x_cls_pt) = neck.forward(early, last, self.backbone.shared_rel_pos_bias(), draws);
                vec![x, x_cls_pt]
            }
            None => outs,
        })
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for Beit<B> {
    type Features = VitFeatures<B>;
    type Prediction = BeitPrediction<B>;
    type StepState = Option<VqkdUpdate<B>>;

    fn name(&self) -> &'static str {
        "BEiT"
    }

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    /// The backbone's last output without masking.
    fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<VitFeatures<B>, ModelError> {
        self.backbone.features(inputs.first_view("BEiT")?.clone())
    }

    fn global_features(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        Ok(self.extract_feat(inputs)?.cls_token)
    }

    fn loss(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<(LossOutput<B>, Option<VqkdUpdate<B>>), ModelError> {
        let (img, target_img, mask) = self.views_and_mask(inputs)?;
        let tokens = self.tokens(img, mask.clone(), Some(draws))?;
        let (codes, update) = match &self.target_generator {
            BeitTokenizer::Vqkd(vqkd) => {
                let (codes, update) = vqkd_codes_training(vqkd, target_img, draws);
                (codes, Some(update))
            }
            dalle => (dalle.codes(target_img), None),
        };
        let out = match &self.head {
            BeitHead::V1(head) => LossOutput::new().with("loss", head.forward_codes(tokens[0].clone(), codes, mask)),
            BeitHead::V2(head) => {
                let (loss_1, loss_2) = head.forward(tokens[0].clone(), tokens[1].clone(), codes, mask);
                LossOutput::new().with("loss_1", loss_1).with("loss_2", loss_2)
            }
        };
        Ok((out, update))
    }

    /// VQ-KD's quantizer moves (k-means start, then the EMA of this step's
    /// statistics, summed over ranks).
    fn after_step(mut self, state: Option<VqkdUpdate<B>>, _ctx: &selfsup_core::StepContext) -> Self {
        if let (Some(update), BeitTokenizer::Vqkd(vqkd)) = (state, &mut self.target_generator) {
            let quantize = update.initialised.unwrap_or_else(|| vqkd.quantize.clone());
            let CodeStatistics { bins, embed_sum } = update.statistics;
            let statistics =
                CodeStatistics { bins: dist::all_reduce(bins, ReduceOperation::Sum), embed_sum: dist::all_reduce(embed_sum, ReduceOperation::Sum) };
            vqkd.quantize = quantize.apply_ema(statistics);
        }
        self
    }

    fn predict(&self, inputs: &SelfSupInputs<B>, _draws: &mut Draws) -> Result<BeitPrediction<B>, ModelError> {
        let (img, target_img, mask) = self.views_and_mask(inputs)?;
        let tokens = self.tokens(img, mask.clone(), None)?;
        let predicted = match &self.head {
            BeitHead::V1(h) => {
                let [n, l1, d] = tokens[0].dims();
                selfsup_layers::functional::linear(&h.cls_head, tokens[0].clone().slice([0..n, 1..l1, 0..d])).argmax(2)
            }
            BeitHead::V2(h) => selfsup_layers::functional::linear(&h.cls_head, tokens[0].clone()).argmax(2),
        };
        let [n, l, _] = predicted.dims();
        Ok(BeitPrediction { predicted: predicted.reshape([n, l]), target: self.target_generator.codes(target_img), mask })
    }
}
