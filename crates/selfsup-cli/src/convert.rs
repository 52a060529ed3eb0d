//! `selfsup convert`: a checkpoint (MMSelfSup `.pth`, or ours without its
//! training state) to safetensors, optionally checked against a config's
//! model and cut to a sub-tree.
use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use selfsup::{
    algorithms::key_map,
    train::LoadedConfig,
    weights::{export_state_dict, load_into, model_keys, write_safetensors, LoadOptions, StateDict},
    with_backend,
};

use crate::BackendArgs;

#[derive(clap::Args)]
pub struct ConvertArgs {
    /// Input checkpoint (.pth or .safetensors).
    pub input: PathBuf,
    /// Output .safetensors.
    pub output: PathBuf,
    /// Check the keys and shapes against this config's model (strict).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Keep only this sub-tree, prefix stripped (`backbone.` for downstream use).
    #[arg(long)]
    pub prefix: Option<String>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// `selfsup convert`.
pub fn convert(args: ConvertArgs) -> Result<()> {
    let ConvertArgs { input, output, config, prefix, backend } = args;
    // Our own training checkpoints keep the model and drop the rest.
    let state = selfsup::train::checkpoint::model_weights(&input)?;
    let state = match &prefix {
        Some(p) => state.sub(p),
        None => state,
    };
    let tensors = match config {
        Some(cfg_path) => {
            let cfg = LoadedConfig::load(&cfg_path, &[])?;
            let keymap = key_map();
            with_backend!(backend.backend.as_str(), &backend.device, |B, device| {
                (|| -> Result<_> {
                    let model = cfg.run.model.init::<B>(&device);
                    if let Some(p) = &prefix {
                        // Only the part under the prefix: its keys and shapes
                        // must be the model's under that prefix.
                        check_part(&model_keys(&model, &keymap), p, &state)
                            .with_context(|| format!("{} under `{p}` does not fit {}", input.display(), cfg_path.display()))?;
                        eprintln!("checked against {} under `{p}`: {} tensors", cfg_path.display(), state.tensors.len());
                        return Ok(state.tensors.clone());
                    }
                    let (model, report) = load_into(model, &state, &keymap, &LoadOptions::default())
                        .with_context(|| format!("{} does not fit {}", input.display(), cfg_path.display()))?;
                    eprintln!("checked against {}: {report}", cfg_path.display());
                    Ok(export_state_dict(&model, &keymap)?)
                })()
            })
            .map_err(|e| anyhow!(e))??
        }
        None => state.tensors,
    };
    let n = tensors.len();
    write_safetensors(&output, &tensors, &Default::default())?;
    println!("wrote {n} tensors to {}", output.display());
    Ok(())
}

/// Checks that `part` holds exactly the model's keys under `prefix`
/// (stripped), with their shapes.
fn check_part(model: &BTreeMap<String, Vec<usize>>, prefix: &str, part: &StateDict) -> Result<()> {
    let wanted: BTreeMap<&str, &Vec<usize>> = model.iter().filter_map(|(k, s)| k.strip_prefix(prefix).map(|k| (k, s))).collect();
    if wanted.is_empty() {
        anyhow::bail!("the model has no keys under `{prefix}`");
    }
    let missing: Vec<&str> = wanted.keys().filter(|k| !part.tensors.contains_key(**k)).copied().collect();
    let unexpected: Vec<&String> = part.tensors.keys().filter(|k| !wanted.contains_key(k.as_str())).collect();
    let mismatched: Vec<String> = part
        .tensors
        .iter()
        .filter_map(|(k, t)| {
            wanted.get(k.as_str()).filter(|s| ***s != t.shape.to_vec()).map(|s| format!("{k}: {:?} vs {s:?}", t.shape.to_vec()))
        })
        .collect();
    if missing.is_empty() && unexpected.is_empty() && mismatched.is_empty() {
        return Ok(());
    }
    anyhow::bail!("missing {missing:?}, unexpected {unexpected:?}, shapes {mismatched:?}")
}
