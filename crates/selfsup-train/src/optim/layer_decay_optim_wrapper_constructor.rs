//! MMSelfSup's `LearningRateDecayOptimWrapperConstructor`
//! (`mmselfsup/engine/optimizers/layer_decay_optim_wrapper_constructor.py`):
//! layer-wise learning-rate decay for ViT fine-tuning.
use std::collections::{BTreeMap, HashMap};

use super::CustomKey;

/// MMSelfSup's `LearningRateDecayOptimWrapperConstructor` for ViTs
/// (`model_type = "vit"`), as fine-tuning configs use it:
///
/// - layer ids: `backbone.cls_token`, `backbone.mask_token`,
///   `backbone.pos_embed` and `backbone.patch_embed.*` are 0,
///   `backbone.layers.i.*` is `i + 1`, everything else (final norm, neck,
///   head) is `num_layers − 1`, where `num_layers = len(backbone.layers) + 2`;
/// - the lr multiplier is `rate^(num_layers − layer_id − 1)`;
/// - of `paramwise_cfg` only `custom_keys`' `decay_mult` counts, and the
///   *last* matching key in MMSelfSup's order (longest first, then
///   alphabetical) wins, i.e. the shortest;
/// - parameters are grouped per layer into decayed and not decayed, and a
///   group keeps the weight decay of the first parameter that opened it
///   (in module order), as the reference does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerDecay {
    /// `layer_decay_rate` (1 when absent: no decay).
    pub rate: f64,
}

impl LayerDecay {
    /// The ViT layer id of the parameter `name` (MMSelfSup's
    /// `get_layer_id_for_vit`).
    pub fn layer_id(name: &str, num_layers: usize) -> usize {
        if matches!(name, "backbone.cls_token" | "backbone.mask_token" | "backbone.pos_embed") || name.starts_with("backbone.patch_embed") {
            return 0;
        }
        if let Some(rest) = name.strip_prefix("backbone.layers.") {
            if let Some(Ok(i)) = rest.split('.').next().map(str::parse::<usize>) {
                return i + 1;
            }
        }
        num_layers.saturating_sub(1)
    }

    /// `(lr_mult, decay_mult)` of every name, in the given (module) order.
    pub fn settings(&self, names: &[String], custom_keys: &BTreeMap<String, CustomKey>) -> Vec<(f64, f64)> {
        let blocks = names
            .iter()
            .filter_map(|n| n.strip_prefix("backbone.layers.")?.split('.').next()?.parse::<usize>().ok())
            .max()
            .map_or(0, |m| m + 1);
        let num_layers = blocks + 2;
        let mut keys: Vec<&String> = custom_keys.keys().collect();
        keys.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        let mut groups: HashMap<(usize, bool), f64> = HashMap::new();
        names
            .iter()
            .map(|name| {
                let decay = keys.iter().rfind(|k| name.contains(k.as_str())).map_or(1.0, |k| custom_keys[*k].decay_mult.unwrap_or(1.0));
                let id = Self::layer_id(name, num_layers);
                let decay = *groups.entry((id, decay != 0.0)).or_insert(decay);
                (self.rate.powi((num_layers - id - 1) as i32), decay)
            })
            .collect()
    }
}
