//! [`Config`]: loading with `_base_` inheritance, overrides, typed decoding
//! and serialization.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::options::{get_path, parse_option, set_path};
use crate::tracked::{Kind, Tracked};

/// Origin recorded for keys set by [`Config::merge_options`].
pub const CFG_OPTIONS_ORIGIN: &str = "--cfg-options";
/// Origin recorded for keys set by [`Config::set`].
pub const SET_ORIGIN: &str = "<set>";

/// Config files above this size are refused before they are read: MMSelfSup's largest
/// resolved configs are tens of kilobytes, so a larger file is almost surely not a config
/// (and parsing it could take seconds and gigabytes).
pub const MAX_CONFIG_BYTES: u64 = 8 << 20;

/// Key path → file that last set it.
type Origins = BTreeMap<String, String>;
/// Files being loaded: (canonical path, display name).
type Stack = Vec<(PathBuf, String)>;

/// A config file format, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `.toml`. TOML has no null: nulls are dropped when writing.
    Toml,
    /// `.json`.
    Json,
    /// `.yaml` or `.yml`.
    Yaml,
}

impl Format {
    /// The format for a path's extension (case-insensitive), if supported.
    pub fn from_path(path: impl AsRef<Path>) -> Option<Format> {
        match path.as_ref().extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "toml" => Some(Format::Toml),
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }

    /// Parses `text` into a top-level table (an empty document is an empty table).
    ///
    /// A non-finite number (TOML's `nan`/`inf`, YAML's `.nan`/`.inf`) is an error naming its
    /// key: the tree is JSON, which has none, and would otherwise hold a `null` there.
    fn parse(self, text: &str, file: &str) -> Result<Map<String, Value>, ConfigError> {
        let err = |message: String| ConfigError::Parse { file: file.to_string(), message: one_line(&message) };
        let non_finite = |key_path: String, v: f64| ConfigError::InvalidValue {
            file: file.to_string(),
            key_path,
            message: format!("{v} is not a usable value: config numbers must be finite"),
        };
        let value: Value = match self {
            Format::Toml => {
                let table: toml::Table = toml::from_str(text).map_err(|e| err(toml_message(text, &e)))?;
                if let Some((key, v)) = find_non_finite_toml(&toml::Value::Table(table.clone()), String::new()) {
                    return Err(non_finite(key, v));
                }
                serde_json::to_value(table).map_err(|e| err(e.to_string()))?
            }
            Format::Json => serde_json::from_str(text).map_err(|e| err(e.to_string()))?,
            Format::Yaml => {
                let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| err(e.to_string()))?;
                if let Some((key, v)) = find_non_finite_yaml(&yaml, String::new()) {
                    return Err(non_finite(key, v));
                }
                serde_yaml_ng::from_value(yaml).map_err(|e| err(e.to_string()))?
            }
        };
        match value {
            Value::Object(m) => Ok(m),
            Value::Null => Ok(Map::new()),
            other => Err(err(format!("the top level must be a table, found {other}"))),
        }
    }
}

/// A resolved MMEngine-style config: a JSON object tree plus, for every key
/// path, the file that last set it.
///
/// Key paths are dotted (`model.backbone.arch`); numeric segments index
/// arrays (`train_dataloader.dataset.pipeline.1.size`).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    value: Value,
    file: String,
    origins: Origins,
}

impl Config {
    /// Loads a `.toml`, `.json`, `.yaml` or `.yml` file and resolves its
    /// `_base_` chain (see the [crate docs](crate)).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let (tree, origins) = load_file(path, &mut Vec::new())?;
        Ok(Config { value: Value::Object(tree), file: path.display().to_string(), origins })
    }

    /// Parses config text in `format`; `name` is used in errors and as the
    /// anchor for relative `_base_` paths.
    pub fn parse_str(text: &str, format: Format, name: impl Into<String>) -> Result<Config, ConfigError> {
        let file = name.into();
        let raw = format.parse(text, &file)?;
        let (tree, origins) = resolve(raw, Path::new(&file), &file, &mut Vec::new())?;
        Ok(Config { value: Value::Object(tree), file, origins })
    }

    /// Wraps an already-resolved tree (no `_base_` or `_delete_` processing).
    /// `value` must be an object.
    pub fn from_value(value: Value, name: impl Into<String>) -> Result<Config, ConfigError> {
        let file = name.into();
        match value {
            Value::Object(_) => Ok(Config { value, file, origins: Origins::new() }),
            other => Err(ConfigError::Parse { file, message: format!("the top level must be a table, found {other}") }),
        }
    }

    /// Serializes a typed config (e.g. a decoded one) into a `Config`.
    pub fn from_typed<T: Serialize>(value: &T, name: impl Into<String>) -> Result<Config, ConfigError> {
        let file = name.into();
        let value = serde_json::to_value(value).map_err(|e| ConfigError::Serialize { file: file.clone(), message: e.to_string() })?;
        Config::from_value(value, file)
    }

    /// The top-level file (or name) this config came from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The resolved tree (always an object).
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The value at a dotted key path (`""` is the root).
    pub fn get(&self, key_path: &str) -> Option<&Value> {
        get_path(&self.value, key_path)
    }

    /// Sets the value at a dotted key path, creating tables as needed; a
    /// numeric segment indexes an existing array. Origin: [`SET_ORIGIN`].
    pub fn set(&mut self, key_path: &str, value: Value) -> Result<(), ConfigError> {
        let path: Vec<String> = key_path.split('.').map(String::from).collect();
        self.set_tracked(&path, value, SET_ORIGIN).map_err(|message| ConfigError::InvalidValue {
            file: self.file.clone(),
            key_path: key_path.to_string(),
            message,
        })
    }

    /// Applies MMEngine `--cfg-options` overrides, `KEY.PATH=VALUE` each.
    ///
    /// Values: ints, floats (`1e-4`), `true`/`false`, `null`/`None`,
    /// lists `[a,b]`, `(a,b)` or bare `a,b` (nested brackets allowed),
    /// quoted strings (`'a,b'`, `"x"`), JSON objects `{..}`; anything else is
    /// a plain string. Missing tables are created; a numeric segment indexes
    /// an existing array (`a.0.b=1`). Origin: [`CFG_OPTIONS_ORIGIN`].
    pub fn merge_options<S: AsRef<str>>(&mut self, options: &[S]) -> Result<(), ConfigError> {
        for opt in options {
            let opt = opt.as_ref();
            let bad = |message| ConfigError::BadOption { option: opt.to_string(), message };
            let (path, value) = parse_option(opt).map_err(bad)?;
            self.set_tracked(&path, value, CFG_OPTIONS_ORIGIN).map_err(bad)?;
        }
        Ok(())
    }

    fn set_tracked(&mut self, path: &[String], value: Value, origin: &str) -> Result<(), String> {
        if path.is_empty() || path.iter().any(String::is_empty) {
            return Err("empty key path segment".to_string());
        }
        let existing = (1..=path.len()).take_while(|&n| self.get(&path[..n].join(".")).is_some()).count();
        set_path(&mut self.value, path, value)?;
        remove_under(&mut self.origins, &path.join("."));
        // The full path plus every table this call created.
        for n in existing.min(path.len() - 1) + 1..=path.len() {
            self.origins.insert(path[..n].join("."), origin.to_string());
        }
        Ok(())
    }

    /// The file that last set `key_path` (or its closest recorded ancestor),
    /// falling back to [`Config::file`].
    pub fn origin(&self, key_path: &str) -> &str {
        let mut p = key_path;
        loop {
            if let Some(f) = self.origins.get(p) {
                return f;
            }
            match p.rfind('.') {
                Some(i) => p = &p[..i],
                None => return &self.file,
            }
        }
    }

    /// Decodes the whole tree into `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        serde_path_to_error::deserialize(&self.value).map_err(|e| self.decode_error("", e))
    }

    /// Decodes the subtree at `key_path` into `T`; errors carry full paths.
    pub fn decode_at<T: DeserializeOwned>(&self, key_path: &str) -> Result<T, ConfigError> {
        let v = self
            .get(key_path)
            .ok_or_else(|| ConfigError::MissingKey { file: self.origin(key_path).to_string(), key_path: key_path.to_string() })?;
        serde_path_to_error::deserialize(v).map_err(|e| self.decode_error(key_path, e))
    }

    fn decode_error(&self, prefix: &str, e: serde_path_to_error::Error<serde_json::Error>) -> ConfigError {
        let tracked = Tracked::from_path_error(e);
        let mut path: Vec<String> = prefix.split('.').filter(|s| !s.is_empty()).map(String::from).collect();
        path.extend(tracked.path);
        let at = |path: &[String]| {
            let key_path = if path.is_empty() { "(root)".to_string() } else { path.join(".") };
            (self.origin(&key_path).to_string(), key_path)
        };
        match tracked.kind {
            Kind::UnknownType { name, known } => {
                let (file, key_path) = at(&path);
                ConfigError::UnknownType { file, key_path, name, known }
            }
            Kind::MissingType { known } => {
                let (file, key_path) = at(&path);
                ConfigError::MissingType { file, key_path, known }
            }
            Kind::Msg(message) => {
                if let Some((field, expected)) = unknown_field(&message) {
                    if path.last() != Some(&field) {
                        path.push(field);
                    }
                    let (file, key_path) = at(&path);
                    ConfigError::UnknownKey { file, key_path, expected }
                } else if let Some(field) = missing_field(&message) {
                    path.push(field);
                    let (file, key_path) = at(&path);
                    ConfigError::MissingKey { file, key_path }
                } else {
                    let (file, key_path) = at(&path);
                    ConfigError::InvalidValue { file, key_path, message }
                }
            }
        }
    }

    /// Renders the tree in `format`. For TOML, nulls are dropped (TOML has
    /// no null), including null array elements.
    pub fn to_string_as(&self, format: Format) -> Result<String, ConfigError> {
        let err = |message: String| ConfigError::Serialize { file: self.file.clone(), message: one_line(&message) };
        match format {
            Format::Toml => toml::to_string(&drop_nulls(self.value.clone())).map_err(|e| err(e.to_string())),
            Format::Json => serde_json::to_string_pretty(&self.value).map(|s| s + "\n").map_err(|e| err(e.to_string())),
            Format::Yaml => serde_yaml_ng::to_string(&self.value).map_err(|e| err(e.to_string())),
        }
    }

    /// TOML rendering; nulls are dropped.
    pub fn to_toml_string(&self) -> Result<String, ConfigError> {
        self.to_string_as(Format::Toml)
    }

    /// Pretty JSON rendering.
    pub fn to_json_string_pretty(&self) -> Result<String, ConfigError> {
        self.to_string_as(Format::Json)
    }

    /// YAML rendering.
    pub fn to_yaml_string(&self) -> Result<String, ConfigError> {
        self.to_string_as(Format::Yaml)
    }

    /// Writes the tree to `path` in the format of its extension, atomically
    /// (a temporary file in the same directory, then a rename).
    pub fn dump(&self, path: impl AsRef<Path>) -> Result<(), ConfigError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let format = Format::from_path(path).ok_or_else(|| ConfigError::UnsupportedFormat { file: file.clone() })?;
        let text = self.to_string_as(format)?;
        let io = |source| ConfigError::Io { file: file.clone(), source };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        tmp.write_all(text.as_bytes()).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        // The usual 0644, not the temporary file's 0600.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file().set_permissions(fs::Permissions::from_mode(0o644)).map_err(io)?;
        }
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }
}

/// Reads, parses and resolves one file of a `_base_` chain.
fn load_file(path: &Path, stack: &mut Stack) -> Result<(Map<String, Value>, Origins), ConfigError> {
    let file = path.display().to_string();
    let format = Format::from_path(path).ok_or_else(|| ConfigError::UnsupportedFormat { file: file.clone() })?;
    let io = |source| ConfigError::Io { file: file.clone(), source };
    let canonical = fs::canonicalize(path).map_err(io)?;
    if stack.iter().any(|(c, _)| *c == canonical) {
        let mut chain: Vec<String> = stack.iter().map(|(_, d)| d.clone()).collect();
        chain.push(file.clone());
        let includer = stack.last().map_or_else(|| file.clone(), |(_, d)| d.clone());
        return Err(ConfigError::CircularBase { file: includer, chain });
    }
    let len = fs::metadata(path).map_err(io)?.len();
    if len > MAX_CONFIG_BYTES {
        return Err(ConfigError::Parse {
            file: file.clone(),
            message: format!(
                "the file is {:.1} MiB; a config is at most {} MiB (is this the right file?)",
                len as f64 / (1u64 << 20) as f64,
                MAX_CONFIG_BYTES >> 20
            ),
        });
    }
    let text = fs::read_to_string(path).map_err(io)?;
    let raw = format.parse(&text, &file)?;
    stack.push((canonical, file.clone()));
    let result = resolve(raw, path, &file, stack);
    stack.pop();
    result
}

/// Resolves `raw`'s `_base_` list (relative to `path`'s directory) and merges
/// `raw` on top.
fn resolve(mut raw: Map<String, Value>, path: &Path, file: &str, stack: &mut Stack) -> Result<(Map<String, Value>, Origins), ConfigError> {
    let bad_base = |v: &Value| ConfigError::InvalidValue {
        file: file.to_string(),
        key_path: "_base_".to_string(),
        message: format!("expected a path or a list of paths, found {v}"),
    };
    let bases = match raw.remove("_base_") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(bad_base(&other)),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(bad_base(&other)),
    };
    let dir = path.parent().unwrap_or(Path::new(""));
    let (mut tree, mut origins) = (Map::new(), Origins::new());
    for base in bases {
        let base_path = normalize(&dir.join(&base));
        if !base_path.exists() {
            return Err(ConfigError::BaseNotFound { file: file.to_string(), base });
        }
        let (base_tree, base_origins) = load_file(&base_path, stack)?;
        merge_tracked(&mut tree, base_tree, &mut origins);
        origins.extend(base_origins);
    }
    // A top-level `_delete_ = true` discards everything inherited.
    if raw.remove("_delete_") == Some(Value::Bool(true)) {
        tree.clear();
        origins.clear();
    }
    let mut own = Origins::new();
    record_paths(&raw, "", file, &mut own);
    merge_tracked(&mut tree, raw, &mut origins);
    origins.extend(own);
    Ok((tree, origins))
}

/// Deep-merges `src` into `dst` and forgets the origins of replaced subtrees.
fn merge_tracked(dst: &mut Map<String, Value>, src: Map<String, Value>, origins: &mut Origins) {
    let mut replaced = Vec::new();
    merge_into(dst, src, "", &mut replaced);
    for p in replaced {
        remove_under(origins, &p);
    }
}

/// MMEngine merge: tables merge recursively unless the incoming table has
/// `_delete_ = true`; anything else replaces. `_delete_` keys are dropped.
fn merge_into(dst: &mut Map<String, Value>, src: Map<String, Value>, prefix: &str, replaced: &mut Vec<String>) {
    for (key, mut value) in src {
        let path = join(prefix, &key);
        let delete = value.as_object_mut().and_then(|m| m.remove("_delete_")) == Some(Value::Bool(true));
        match (dst.get_mut(&key), value) {
            (Some(Value::Object(d)), Value::Object(s)) if !delete => merge_into(d, s, &path, replaced),
            (_, mut value) => {
                strip_delete(&mut value);
                replaced.push(path);
                dst.insert(key, value);
            }
        }
    }
}

fn strip_delete(value: &mut Value) {
    match value {
        Value::Object(m) => {
            m.remove("_delete_");
            m.values_mut().for_each(strip_delete);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_delete),
        _ => {}
    }
}

/// Records `file` as the origin of every key path in `map` (tables and
/// array elements included).
fn record_paths(map: &Map<String, Value>, prefix: &str, file: &str, out: &mut Origins) {
    fn walk(value: &Value, path: String, file: &str, out: &mut Origins) {
        match value {
            Value::Object(m) => record_paths(m, &path, file, out),
            Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| walk(v, join(&path, &i.to_string()), file, out)),
            _ => {}
        }
        out.insert(path, file.to_string());
    }
    for (k, v) in map.iter().filter(|(k, _)| *k != "_delete_") {
        walk(v, join(prefix, k), file, out);
    }
}

fn remove_under(origins: &mut Origins, path: &str) {
    if path.is_empty() {
        origins.clear();
    } else {
        let sub = format!("{path}.");
        origins.retain(|k, _| k != path && !k.starts_with(&sub));
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Lexically removes `.` and `..` so error messages show tidy paths.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

fn drop_nulls(value: Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, drop_nulls(v))).collect()),
        Value::Array(a) => Value::Array(a.into_iter().filter(|v| !v.is_null()).map(drop_nulls).collect()),
        other => other,
    }
}

fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// The first non-finite float of a TOML document, with its dotted key path.
fn find_non_finite_toml(v: &toml::Value, path: String) -> Option<(String, f64)> {
    match v {
        toml::Value::Float(f) if !f.is_finite() => Some((path, *f)),
        toml::Value::Table(t) => t.iter().find_map(|(k, v)| find_non_finite_toml(v, child_path(&path, k))),
        toml::Value::Array(a) => a.iter().enumerate().find_map(|(i, v)| find_non_finite_toml(v, child_path(&path, &i.to_string()))),
        _ => None,
    }
}

/// The first non-finite float of a YAML document, with its dotted key path.
fn find_non_finite_yaml(v: &serde_yaml_ng::Value, path: String) -> Option<(String, f64)> {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Number(n) => n.as_f64().filter(|f| !f.is_finite()).map(|f| (path, f)),
        Y::Mapping(m) => m.iter().find_map(|(k, v)| {
            let key = match k {
                Y::String(s) => s.clone(),
                other => serde_yaml_ng::to_string(other).unwrap_or_default().trim().to_string(),
            };
            find_non_finite_yaml(v, child_path(&path, &key))
        }),
        Y::Sequence(a) => a.iter().enumerate().find_map(|(i, v)| find_non_finite_yaml(v, child_path(&path, &i.to_string()))),
        Y::Tagged(t) => find_non_finite_yaml(&t.value, path),
        _ => None,
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_string();
    let Some(before) = e.span().and_then(|s| text.get(..s.start)) else {
        return msg;
    };
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{msg} at line {line} column {col}")
}

/// Parses serde's ``unknown field `x`, expected one of `a`, `b` `` message.
fn unknown_field(msg: &str) -> Option<(String, Vec<String>)> {
    let (field, tail) = msg.strip_prefix("unknown field `")?.split_once('`')?;
    let expected = tail.split('`').skip(1).step_by(2).map(String::from).collect();
    Some((field.to_string(), expected))
}

/// Parses serde's ``missing field `x` `` message.
fn missing_field(msg: &str) -> Option<String> {
    let (field, _) = msg.strip_prefix("missing field `")?.split_once('`')?;
    Some(field.to_string())
}
