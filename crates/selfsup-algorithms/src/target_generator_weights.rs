//! The published weight files of the frozen target generators, loaded by
//! key: what MMEngine's `PretrainedInit` does for `init_cfg=dict(
//! type='Pretrained', checkpoint=...)` (DALL-E's `dalle_encoder.pth`,
//! VQ-KD's `vqkd_encoder.pth`) and `CLIPGenerator` for its
//! `tokenizer_path` (OpenAI's CLIP layout, `clip_vit_base_16.pth.tar`).
//!
//! An algorithm whose config names such a file overrides
//! [`AlgorithmSpec::load_pretrained`](crate::AlgorithmSpec::load_pretrained)
//! and calls [`LoadPretrained::load_pretrained`] on its generator's config
//! with the freshly built generator:
//!
//! ```ignore
//! fn load_pretrained<B: Backend>(&self, mut model: Beit<B>) -> Result<Beit<B>, ConfigIssue> {
//!     model.target_generator = self.dalle_config().load_pretrained(model.target_generator)?;
//!     Ok(model)
//! }
//! ```
//!
//! Remote files (`https://...`) are an error telling the user to download
//! them: nothing is downloaded. Config validation accepts them, so the
//! benchmark configs resolve.
//!
//! Strictness: MMEngine loads these files with `strict=False` (missing
//! keys keep their initial values, unexpected keys are ignored, both with
//! a warning). Here a missing key is an error (a wrong file would silently
//! give random targets), except VQ-KD's statistics buffers
//! (`quantize.cluster_size`, `quantize.embedding.initted`), which keep
//! their initial values as in MMEngine; unexpected keys are ignored with
//! a warning on stderr, as MMEngine does; a shape mismatch is an error.
use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use selfsup_target_generators::{
    clip::{clip_config_from_shapes, CLIP_SKIPPED_KEYS},
    is_remote, remote_message, ClipGenerator, ClipGeneratorConfig, DallE, DallEConfig, PretrainedInit, Vqkd, VqkdConfig,
};
use selfsup_weights::{load_into, read_checkpoint, LoadOptions, LoadReport, StateDict, WeightsError};

use crate::ConfigIssue;

/// A generator config that can name a published weight file.
pub trait LoadPretrained {
    /// The generator module.
    type Module<B: Backend>;

    /// Loads the file the config names (if any) into `module`, built by
    /// the config's `init`; `module` unchanged when it names none. The
    /// parameters stay frozen. Errors name the config key (below
    /// `model.`) and the file.
    fn load_pretrained<B: Backend>(&self, module: Self::Module<B>) -> Result<Self::Module<B>, ConfigIssue>;
}

/// Reads a local checkpoint for config key `key`; remote paths are errors.
pub fn read_local_checkpoint(key: &str, path: &str) -> Result<StateDict, ConfigIssue> {
    if is_remote(path) {
        return Err(ConfigIssue::new(key, remote_message(&format!("model.{key}"), path)));
    }
    read_checkpoint(Path::new(path)).map_err(|e| ConfigIssue::new(key, e.to_string()))
}

/// Loads `state` into a generator by its own keys (no `target_generator.`
/// prefix): every key the module has must be present with its shape,
/// except those in `optional`; unexpected keys are reported on stderr.
pub fn load_generator_state<B: Backend, M: Module<B>>(
    module: M,
    state: &StateDict,
    optional: &[&str],
) -> Result<(M, LoadReport), WeightsError> {
    let (module, report) = load_into(module, state, &crate::key_map(), &LoadOptions { strict: false, prefix: None })?;
    let missing: Vec<&String> = report.missing.iter().filter(|k| !optional.contains(&k.as_str())).collect();
    if !missing.is_empty() || !report.shape_mismatches.is_empty() {
        let mut strict = report.clone();
        strict.unexpected.clear();
        strict.missing.retain(|k| !optional.contains(&k.as_str()));
        return Err(WeightsError::Mismatch(strict));
    }
    Ok((module, report))
}

fn load_file<B: Backend, M: Module<B>>(key: &str, init: &PretrainedInit, module: M, optional: &[&str]) -> Result<M, ConfigIssue> {
    let mut state = read_local_checkpoint(key, &init.checkpoint)?;
    if let Some(prefix) = &init.prefix {
        state = state.sub(prefix);
    }
    load_state(key, init, state, module, optional)
}

fn load_state<B: Backend, M: Module<B>>(
    key: &str,
    init: &PretrainedInit,
    state: StateDict,
    module: M,
    optional: &[&str],
) -> Result<M, ConfigIssue> {
    let issue = |e: WeightsError| ConfigIssue::new(key, format!("{}: {e}", init.checkpoint));
    let (module, report) = load_generator_state(module, &state, optional).map_err(issue)?;
    if !report.unexpected.is_empty() {
        eprintln!(
            "warning: {}: {} unexpected keys ignored (as MMEngine's Pretrained init does): {}",
            init.checkpoint,
            report.unexpected.len(),
            report.unexpected.join(", ")
        );
    }
    Ok(module)
}

impl LoadPretrained for DallEConfig {
    type Module<B: Backend> = DallE<B>;

    /// `init_cfg=dict(type='Pretrained', checkpoint=PATH)`: the encoder's
    /// keys `blocks.*` (MMSelfSup's `dalle_encoder.pth`: a flat state dict,
    /// or one under `state_dict`).
    fn load_pretrained<B: Backend>(&self, module: DallE<B>) -> Result<DallE<B>, ConfigIssue> {
        match self.pretrained() {
            Some(init) => load_file("target_generator.init_cfg.checkpoint", &init, module, &[]),
            None => Ok(module),
        }
    }
}

impl LoadPretrained for VqkdConfig {
    type Module<B: Backend> = Vqkd<B>;

    /// `init_cfg=dict(type='Pretrained', checkpoint=PATH)`: keys
    /// `encoder.*`, `encode_task_layer.*`, `quantize.*` (MMSelfSup's
    /// `vqkd_encoder.pth`). A file without `quantize.cluster_size` or
    /// `quantize.embedding.initted` keeps their initial values, as
    /// MMEngine's non-strict load does (without `initted`, a
    /// `quantize_kmeans_init` codebook is then re-initialised by k-means on
    /// the first batch, as in MMSelfSup).
    fn load_pretrained<B: Backend>(&self, module: Vqkd<B>) -> Result<Vqkd<B>, ConfigIssue> {
        match self.pretrained() {
            Some(init) => {
                load_file("target_generator.init_cfg.checkpoint", &init, module, &["quantize.cluster_size", "quantize.embedding.initted"])
            }
            None => Ok(module),
        }
    }
}

impl LoadPretrained for ClipGeneratorConfig {
    type Module<B: Backend> = ClipGenerator<B>;

    /// `tokenizer_path`: a flat OpenAI-layout CLIP state dict (`visual.*`
    /// and the text tower; `input_resolution`, `context_length` and
    /// `vocab_size` are dropped, as `build_clip_model` drops them; float16
    /// tensors are widened). MMSelfSup builds the architecture from the
    /// file; ours is built from `arch` before the file is read, so the
    /// file's architecture (inferred as `build_clip_model` does) must equal
    /// it: a difference is an error naming the `arch` field to set.
    fn load_pretrained<B: Backend>(&self, module: ClipGenerator<B>) -> Result<ClipGenerator<B>, ConfigIssue> {
        let Some(path) = self.tokenizer_path.as_deref() else { return Ok(module) };
        let key = "target_generator.tokenizer_path";
        let mut state = read_local_checkpoint(key, path)?;
        state.tensors.retain(|k, _| !CLIP_SKIPPED_KEYS.contains(&k.as_str()));
        let shapes = state.tensors.iter().map(|(k, v)| (k.clone(), v.shape.to_vec())).collect();
        let found = clip_config_from_shapes(&shapes).map_err(|m| ConfigIssue::new(key, format!("{path}: {m}")))?;
        if let Some((field, ours, theirs)) = self.arch.difference(&found) {
            return Err(ConfigIssue::new(
                format!("target_generator.arch.{field}"),
                format!("{path} is a CLIP with {field} = {theirs}, but the config builds {ours}: set `{field} = {theirs}`"),
            ));
        }
        let init = PretrainedInit { checkpoint: path.to_string(), prefix: None };
        load_state(key, &init, state.prefixed("tokenizer."), module, &[])
    }
}
