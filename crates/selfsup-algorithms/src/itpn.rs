//! Port of `mmpretrain.models.selfsup.iTPN` (mmpretrain 1.2.0, `itpn.py`):
//! integrally pre-trained pyramid transformers. `iTPNHiViT` encodes the
//! image; `iTPNPretrainDecoder` builds a feature pyramid from the main
//! stage's tokens and the stem's maps and decodes it.
//!
//! Two targets, chosen by `reconstruction_type` (the same on backbone and
//! neck):
//! - `pixel`: MAE's recipe. The kept patches (the draw `mask_noise`, MAE's
//!   arithmetic) run through the encoder; the decoder completes every
//!   pyramid level with mask tokens, and `MAEPretrainHead` scores the
//!   per-patch-normalised pixels of the removed patches.
//! - `clip`: BEiT's recipe. Every patch runs, the pipeline's
//!   `BEiTMaskGenerator` patches swapped for a mask token at the main
//!   stage; `iTPNClipHead` scores the masked patches against a frozen
//!   CLIP's patch features of the second view (`TwoNormDataPreprocessor`).
//!
//! Keys as mmpretrain's `state_dict`: `backbone.*`, `neck.*`,
//! `head.cls_head.*` and `target_generator.tokenizer.*` (CLIP).
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_backbones::{ITpnHiVit, ITpnHiVitConfig};
use selfsup_core::{DataPreprocessorConfig, DataPreprocessorKind, Draws, LossOutput, ModelError, SelfSupAlgorithm, SelfSupInputs};
use selfsup_heads::{ITpnClipHead, ITpnClipHeadConfig, MaePretrainHead, MaePretrainHeadConfig};
use selfsup_layers::{
    functional::linear,
    hivit::LinearInit,
    init::{check_mae_init_cfg, InitRng},
};
use selfsup_necks::{ITpnPretrainDecoder, ITpnPretrainDecoderConfig};
use selfsup_target_generators::ClipGenerator;
use serde::{Deserialize, Serialize};

use crate::{
    common::pipeline_mask,
    mae::{mae_prediction, MaePrediction},
    milan::{ClipTargetConfig, ClipTargetPrediction},
    AlgorithmSpec, ConfigIssue, InitCfg, LoadPretrained,
};

selfsup_config::registry! {
    /// iTPN's backbone.
    #[derive(Debug, Clone, PartialEq)]
    pub enum ITpnBackboneConfig {
        /// mmpretrain's `iTPNHiViT`.
        "iTPNHiViT" => ITpnHiVit(ITpnHiVitConfig),
    }
}

selfsup_config::registry! {
    /// iTPN's neck.
    #[derive(Debug, Clone, PartialEq)]
    pub enum ITpnNeckConfig {
        /// mmpretrain's `iTPNPretrainDecoder`.
        "iTPNPretrainDecoder" => ITpnPretrainDecoder(ITpnPretrainDecoderConfig),
    }
}

selfsup_config::registry! {
    /// iTPN's head: pixels or CLIP features.
    #[derive(Debug, Clone, PartialEq)]
    pub enum ITpnHeadConfig {
        /// `MAEPretrainHead` (pixel target).
        "MAEPretrainHead" => Pixel(MaePretrainHeadConfig),
        /// `iTPNClipHead` (CLIP target).
        "iTPNClipHead" => Clip(ITpnClipHeadConfig),
    }
}

/// `model = dict(type='iTPN', ...)`: mmpretrain's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ITpnConfig {
    /// `SelfSupDataPreprocessor` (pixel) or `TwoNormDataPreprocessor` (CLIP).
    #[serde(default)]
    pub data_preprocessor: DataPreprocessorConfig,
    /// `dict(type='iTPNHiViT', ...)`.
    pub backbone: ITpnBackboneConfig,
    /// `dict(type='iTPNPretrainDecoder', ...)`.
    pub neck: ITpnNeckConfig,
    /// `MAEPretrainHead` or `iTPNClipHead`.
    pub head: ITpnHeadConfig,
    /// `dict(type='CLIPGenerator', tokenizer_path=...)` for the CLIP target.
    #[serde(default)]
    pub target_generator: Option<ClipTargetConfig>,
    /// MMEngine `init_cfg`: the pixel configs' Xavier Linear and constant
    /// LayerNorm (the neck's Linear layers then start Xavier; without it
    /// they start as PyTorch's default), or null.
    #[serde(default)]
    pub init_cfg: InitCfg,
}

impl ITpnConfig {
    fn parts(&self) -> (&ITpnHiVitConfig, &ITpnPretrainDecoderConfig) {
        let ITpnBackboneConfig::ITpnHiVit(b) = &self.backbone;
        let ITpnNeckConfig::ITpnPretrainDecoder(n) = &self.neck;
        (b, n)
    }

    fn is_clip(&self) -> bool {
        self.parts().0.is_clip()
    }

    /// How the neck's Linear layers start: the model-level Xavier when the
    /// config has it (the pixel configs), PyTorch's default otherwise.
    fn neck_init(&self) -> LinearInit {
        match &self.init_cfg {
            Some(v) if !v.is_null() => LinearInit::Xavier,
            _ => LinearInit::Torch,
        }
    }
}

impl AlgorithmSpec for ITpnConfig {
    type Model<B: Backend> = ITpn<B>;

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    fn num_views(&self) -> usize {
        if self.is_clip() {
            2
        } else {
            1
        }
    }

    fn input_size(&self) -> Option<usize> {
        Some(self.parts().0.img_size)
    }

    fn has_vit_backbone(&self) -> bool {
        true
    }

    /// Every part and how they fit: one `reconstruction_type` throughout,
    /// with its head (and for CLIP its target generator and two-view
    /// preprocessor); the neck on the encoder's width, patches and grid;
    /// CLIP on the encoder's images and patches, its width the head's.
    fn validate(&self) -> Result<(), ConfigIssue> {
        let issue = |prefix: &str, (key, msg): (&str, String)| ConfigIssue::new(format!("{prefix}.{key}"), msg);
        self.data_preprocessor.validate().map_err(|e| issue("data_preprocessor", e))?;
        check_mae_init_cfg(self.init_cfg.as_ref()).map_err(|e| ConfigIssue::new("init_cfg", e))?;
        let (backbone, neck) = self.parts();
        let s = backbone.validate().map_err(|e| issue("backbone", e))?;
        neck.validate().map_err(|e| issue("neck", e))?;
        if neck.reconstruction_type != backbone.reconstruction_type {
            return Err(ConfigIssue::new(
                "neck.reconstruction_type",
                format!("`{}` differs from the backbone's `{}`", neck.reconstruction_type, backbone.reconstruction_type),
            ));
        }
        if neck.embed_dim != s.arch.embed_dims {
            return Err(ConfigIssue::new("neck.embed_dim", format!("{} does not match the backbone's embed_dims {}", neck.embed_dim, s.arch.embed_dims)));
        }
        match (&self.head, &self.target_generator) {
            (ITpnHeadConfig::Pixel(head), None) if !self.is_clip() => {
                let g = s.grid();
                if neck.num_patches != g * g {
                    return Err(ConfigIssue::new("neck.num_patches", format!("{} does not match the backbone's {} patches", neck.num_patches, g * g)));
                }
                for (key, p) in [("neck.patch_size", neck.patch_size), ("head.patch_size", head.patch_size)] {
                    if p != s.patch_size {
                        return Err(ConfigIssue::new(key, format!("{p} does not match backbone.patch_size {}", s.patch_size)));
                    }
                }
                if neck.in_chans != s.in_chans {
                    return Err(ConfigIssue::new("neck.in_chans", format!("{} does not match backbone.in_chans {}", neck.in_chans, s.in_chans)));
                }
                if neck.predict_feature_dim.is_some_and(|d| d != neck.output_dim()) {
                    return Err(ConfigIssue::new("neck.predict_feature_dim", "the pixel target needs patch_size² · in_chans; leave it unset"));
                }
                Ok(())
            }
            (ITpnHeadConfig::Clip(head), Some(target)) if self.is_clip() => {
                if self.data_preprocessor.kind != DataPreprocessorKind::TwoNorm {
                    return Err(ConfigIssue::new("data_preprocessor.type", "the CLIP target reads a second view: use TwoNormDataPreprocessor"));
                }
                if head.embed_dims != neck.decoder_embed_dim {
                    return Err(ConfigIssue::new("head.embed_dims", format!("{} does not match neck.decoder_embed_dim {}", head.embed_dims, neck.decoder_embed_dim)));
                }
                target.validate_for(s.img_size, s.patch_size, head.num_embed, "head.num_embed")
            }
            (_, target) => Err(ConfigIssue::new(
                "head.type",
                format!(
                    "reconstruction_type `{}` takes {}; got {} {} a target generator",
                    backbone.reconstruction_type,
                    if self.is_clip() { "iTPNClipHead and a CLIPGenerator" } else { "MAEPretrainHead and no target generator" },
                    match self.head {
                        ITpnHeadConfig::Pixel(_) => "MAEPretrainHead",
                        ITpnHeadConfig::Clip(_) => "iTPNClipHead",
                    },
                    if target.is_some() { "with" } else { "without" }
                ),
            )),
        }
    }

    fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> ITpn<B> {
        let (backbone, neck) = self.parts();
        let (pixel_head, head) = match &self.head {
            ITpnHeadConfig::Pixel(h) => (Some(h.init()), None),
            ITpnHeadConfig::Clip(h) => (None, Some(h.init(device, rng))),
        };
        ITpn {
            backbone: backbone.init(device, rng),
            neck: neck.init(self.neck_init(), device, rng),
            head,
            target_generator: self.target_generator.as_ref().map(|t| t.get().init(device, rng)),
            pixel_head,
            data_preprocessor: self.data_preprocessor.clone(),
        }
    }

    /// Loads the CLIP checkpoint `tokenizer_path` names (OpenAI's layout).
    fn load_pretrained<B: Backend>(&self, mut model: ITpn<B>) -> Result<ITpn<B>, ConfigIssue> {
        if let (Some(cfg), Some(clip)) = (&self.target_generator, model.target_generator.take()) {
            model.target_generator = Some(cfg.get().load_pretrained(clip)?);
        }
        Ok(model)
    }
}

/// iTPN: `iTPNHiViT` + `iTPNPretrainDecoder` + `MAEPretrainHead` (pixel)
/// or `iTPNClipHead` with a frozen CLIP (clip).
#[derive(Module, Debug)]
pub struct ITpn<B: Backend> {
    /// The HiViT encoder.
    pub backbone: ITpnHiVit<B>,
    /// The pyramid and decoder.
    pub neck: ITpnPretrainDecoder<B>,
    /// The CLIP variant's head.
    pub head: Option<ITpnClipHead<B>>,
    /// The CLIP variant's frozen CLIP.
    pub target_generator: Option<ClipGenerator<B>>,
    /// The pixel variant's head (no parameters).
    #[module(skip)]
    pub pixel_head: Option<MaePretrainHead>,
    /// The data preprocessor (no parameters).
    #[module(skip)]
    pub data_preprocessor: DataPreprocessorConfig,
}

/// iTPN's `predict` output.
#[derive(Debug, Clone)]
pub enum ITpnPrediction<B: Backend> {
    /// Pixels, as MAE's.
    Pixel(MaePrediction<B>),
    /// The head's and CLIP's features of every patch, and the mask.
    Clip(ClipTargetPrediction<B>),
}

impl<B: Backend> ITpn<B> {
    /// The pixel variant's decoder prediction `[batch, L, p²·3]` and mask
    /// `[batch, L]`.
    pub fn reconstruct(&self, img: Tensor<B, 4>, draws: &mut Draws) -> Result<(Tensor<B, 3>, Tensor<B, 2>), ModelError> {
        let enc = self.backbone.forward_pixel(img, draws)?;
        let pred = self.neck.forward_pixel(&enc.features, enc.latent, enc.ids_restore);
        Ok((pred, enc.mask))
    }

    /// The CLIP variant up to the head: `pred` holds the neck's tokens
    /// `[batch, L, decoder_embed_dim]` (before `iTPNClipHead`), `target`
    /// CLIP's patch features `[batch, L, num_embed]` (its cls token
    /// dropped), and the mask `[batch, L]`.
    pub fn clip_parts(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<ClipTargetPrediction<B>, ModelError> {
        let views = inputs.expect_views("iTPN", 2)?;
        let g = self.backbone.img_size() / self.backbone.patch_size();
        let mask = pipeline_mask(inputs, "iTPN", [g, g], "BEiTMaskGenerator")?;
        let Some(clip) = &self.target_generator else {
            return Err(ModelError::Views { algorithm: "iTPN (pixel)", expected: 1, got: 2 });
        };
        let enc = self.backbone.forward_clip(views[0].clone(), mask.clone(), draws)?;
        let feats = self.neck.forward_clip(&enc.features, enc.latent);
        let target = clip.forward(views[1].clone()).features.detach();
        let [n, l1, d] = target.dims();
        Ok(ClipTargetPrediction { pred: feats, target: target.slice([0..n, 1..l1, 0..d]), mask: mask.reshape([n, l1 - 1]) })
    }

    fn clip_head(&self) -> Result<&ITpnClipHead<B>, ModelError> {
        self.head.as_ref().ok_or(ModelError::Views { algorithm: "iTPN (pixel)", expected: 1, got: 2 })
    }
}

impl<B: Backend> SelfSupAlgorithm<B> for ITpn<B> {
    type Features = Tensor<B, 4>;
    type Prediction = ITpnPrediction<B>;
    type StepState = ();

    fn name(&self) -> &'static str {
        "iTPN"
    }

    fn data_preprocessor(&self) -> &DataPreprocessorConfig {
        &self.data_preprocessor
    }

    /// The last block's tokens as a map `[batch, C, H/p, W/p]`, without
    /// masking (mmpretrain's `backbone(inputs, mask=None)`).
    fn extract_feat(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 4>, ModelError> {
        let img = inputs.views.first().ok_or(ModelError::Views { algorithm: "iTPN", expected: 1, got: 0 })?;
        self.backbone.forward(img.clone())
    }

    /// The mean of the last block's tokens.
    fn global_features(&self, inputs: &SelfSupInputs<B>) -> Result<Tensor<B, 2>, ModelError> {
        let map = self.extract_feat(inputs)?;
        let [n, c, _, _] = map.dims();
        Ok(map.flatten::<3>(2, 3).mean_dim(2).reshape([n, c]))
    }

    fn loss(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<(LossOutput<B>, ()), ModelError> {
        let loss = match &self.pixel_head {
            Some(head) => {
                let img = inputs.expect_views("iTPN", 1)?[0].clone();
                let (pred, mask) = self.reconstruct(img.clone(), draws)?;
                head.forward(pred, img, mask)
            }
            None => {
                let parts = self.clip_parts(inputs, draws)?;
                self.clip_head()?.forward(parts.pred, parts.target, parts.mask)
            }
        };
        Ok((LossOutput::new().with("loss", loss), ()))
    }

    /// Pixels as MAE's prediction, or the head's and CLIP's features.
    fn predict(&self, inputs: &SelfSupInputs<B>, draws: &mut Draws) -> Result<ITpnPrediction<B>, ModelError> {
        match &self.pixel_head {
            Some(head) => {
                let img = inputs.expect_views("iTPN", 1)?[0].clone();
                let (pred, mask) = self.reconstruct(img.clone(), draws)?;
                Ok(ITpnPrediction::Pixel(mae_prediction(head, img, pred, mask)))
            }
            None => {
                let parts = self.clip_parts(inputs, draws)?;
                let pred = linear(&self.clip_head()?.cls_head, parts.pred);
                Ok(ITpnPrediction::Clip(ClipTargetPrediction { pred, ..parts }))
            }
        }
    }
}
