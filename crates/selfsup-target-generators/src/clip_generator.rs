//! Port of `mmselfsup.models.target_generators.CLIPGenerator`
//! (`clip_generator.py`, mmselfsup 1.0.0): MILAN's and EVA's teacher, the
//! image tower of OpenAI's CLIP returning every token's features (after
//! `ln_post` and `proj`) and the last layer's head-averaged attention.
//! MILAN uses the attention of the class token as patch importance, EVA
//! the features as targets.
//!
//! MMSelfSup builds the whole CLIP (text tower included: its keys are in
//! the algorithm's `state_dict` as `target_generator.tokenizer.*`) from the
//! checkpoint `tokenizer_path` names, inferring the architecture from its
//! shapes. Here `init` never reads files: the architecture is declared by
//! `arch` (default: OpenAI's ViT-B/16, the tower of
//! `clip_vit_base_16.pth.tar` the MILAN and EVA configs name), the module
//! is built from it with MMSelfSup's random initialisation, and the
//! algorithm's `load_pretrained` (`selfsup_algorithms::LoadPretrained`)
//! reads the local file, checks that its architecture is `arch`, and loads
//! it by key. An `http(s)` `tokenizer_path` is accepted by validation (the
//! benchmark configs resolve) and refused by loading, with a message
//! telling the user to download it.
use burn::{
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use selfsup_layers::init::InitRng;
use serde::{Deserialize, Serialize};

use crate::clip::{Clip, ClipConfig, ClipOutput};

/// `dict(type='CLIPGenerator', tokenizer_path=...)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClipGeneratorConfig {
    /// The CLIP checkpoint in OpenAI's layout (a flat state dict, `.pth` or
    /// `.pth.tar`), read by `load_pretrained`. Required by MMSelfSup;
    /// `None` here leaves the randomly initialised CLIP (the demos' tiny
    /// teacher).
    pub tokenizer_path: Option<String>,
    /// selfsup's addition: the architecture, which MMSelfSup infers from the
    /// checkpoint (`build_clip_model`) and selfsup needs before reading it.
    /// A checkpoint of another architecture is refused at loading.
    pub arch: ClipConfig,
}

impl ClipGeneratorConfig {
    /// Checks the fields; `(key, message)` on error. A URL passes (only
    /// loading refuses it).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.tokenizer_path.as_deref().is_some_and(str::is_empty) {
            return Err(("tokenizer_path", "is empty".into()));
        }
        self.arch.validate().map_err(|(k, m)| (k, format!("arch.{k}: {m}")))
    }

    /// Width of the features (`embed_dim`).
    pub fn out_dim(&self) -> usize {
        self.arch.embed_dim
    }

    /// The image side CLIP reads (`image_resolution`).
    pub fn img_size(&self) -> usize {
        self.arch.image_resolution
    }

    /// Patches per side; the features have `1 + grid²` tokens.
    pub fn grid(&self) -> usize {
        self.arch.grid()
    }

    /// Builds the generator with a randomly initialised CLIP (MMSelfSup's
    /// initialisation), frozen.
    pub fn init<B: Backend>(&self, device: &B::Device, rng: &mut InitRng) -> ClipGenerator<B> {
        ClipGenerator { tokenizer: self.arch.init(device, rng) }
    }
}

/// `CLIPGenerator`. Keys `tokenizer.*` (`target_generator.tokenizer.*` in
/// an algorithm), OpenAI's CLIP names below.
#[derive(Module, Debug)]
pub struct ClipGenerator<B: Backend> {
    /// The whole CLIP; only its image tower runs.
    pub tokenizer: Clip<B>,
}

impl<B: Backend> ClipGenerator<B> {
    /// The features and the last layer's attention, detached.
    ///
    /// # Shapes
    /// - `x`: `[n, 3, image_resolution, image_resolution]`, normalised as
    ///   the algorithm's data preprocessor does
    /// - returns features `[n, 1 + L, embed_dim]` and attention
    ///   `[n, 1 + L, 1 + L]`, `L = grid²`, the class token first
    pub fn forward(&self, x: Tensor<B, 4>) -> ClipOutput<B> {
        self.tokenizer.encode_image(x)
    }
}
