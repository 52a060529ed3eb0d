//! The weight files a generator's config names: MMEngine's
//! `init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...)` (DALL-E,
//! VQ-KD) and `CLIPGenerator`'s `tokenizer_path`.
//!
//! Reading and loading them is `selfsup-algorithms`' job (it owns the
//! weights crate); this module only says which file, and refuses remote
//! ones: nothing is downloaded.

/// A `Pretrained` entry of an `init_cfg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PretrainedInit {
    /// The file (MMEngine also accepts URLs; we do not load them).
    pub checkpoint: String,
    /// Load only the keys under this prefix, stripped (MMEngine's `prefix`).
    pub prefix: Option<String>,
}

/// The `Pretrained` entry of an MMEngine `init_cfg` (a dict or a list of
/// dicts), if any.
pub fn pretrained_init(init_cfg: Option<&serde_json::Value>) -> Option<PretrainedInit> {
    let entries: Vec<&serde_json::Value> = match init_cfg? {
        serde_json::Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    entries.into_iter().find(|e| e["type"] == "Pretrained").and_then(|e| {
        Some(PretrainedInit {
            checkpoint: e["checkpoint"].as_str()?.to_string(),
            prefix: e["prefix"].as_str().map(|p| if p.ends_with('.') { p.to_string() } else { format!("{p}.") }),
        })
    })
}

/// Checks the `Pretrained` entry of an `init_cfg`: it names a checkpoint
/// (a path or URL; URLs fail only when loading).
pub fn validate_init_cfg(init_cfg: Option<&serde_json::Value>) -> Result<(), String> {
    let Some(cfg) = init_cfg else { return Ok(()) };
    let entries: Vec<&serde_json::Value> = match cfg {
        serde_json::Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    for e in entries {
        if e["type"] == "Pretrained" && !e["checkpoint"].is_string() {
            return Err("a `Pretrained` init_cfg needs `checkpoint`, a path".into());
        }
    }
    Ok(())
}

/// Whether `path` is a URL MMEngine would download (`http://`,
/// `https://`, `s3://`, ...).
pub fn is_remote(path: &str) -> bool {
    path.split_once("://").is_some_and(|(scheme, _)| !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The error for a remote weight file named by config key `key`.
pub fn remote_message(key: &str, path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    format!(
        "`{path}` is a URL, and selfsup downloads nothing: download it yourself (e.g. `curl -LO {path}`) \
         and set `{key}` to the local file (e.g. `{key}=checkpoints/{file}`)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_pretrained_entry_and_recognises_urls() {
        let cfg = serde_json::json!({"type": "Pretrained", "checkpoint": "https://download.openmmlab.com/x/dalle_encoder.pth"});
        let p = pretrained_init(Some(&cfg)).unwrap();
        assert!(is_remote(&p.checkpoint));
        assert_eq!(p.prefix, None);
        let list = serde_json::json!([{"type": "TruncNormal", "std": 0.02}, {"type": "Pretrained", "checkpoint": "a.pth", "prefix": "target_generator"}]);
        let p = pretrained_init(Some(&list)).unwrap();
        assert_eq!((p.checkpoint.as_str(), p.prefix.as_deref()), ("a.pth", Some("target_generator.")));
        assert!(!is_remote("/data/ckpt/a.pth") && !is_remote("C:/x.pth") && is_remote("s3://bucket/x.pth"));
        assert!(pretrained_init(Some(&serde_json::json!({"type": "Normal"}))).is_none());
        assert!(validate_init_cfg(Some(&serde_json::json!({"type": "Pretrained"}))).is_err());
        assert!(remote_message("target_generator.tokenizer_path", "https://h/clip.pth.tar").contains("checkpoints/clip.pth.tar"));
    }
}
