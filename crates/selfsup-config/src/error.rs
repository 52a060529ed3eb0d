//! The crate's error type.

/// Everything that can go wrong while loading, overriding, decoding or
/// writing a config.
///
/// Every message is a single line that starts with the file responsible
/// (for decode errors: the file that last wrote the offending key, see
/// [`Config::origin`](crate::Config::origin)) followed by the full dotted key
/// path, e.g.
/// `configs/mae/foo.toml: model.backbone.mask_ratioo: unknown key; expected one of arch, patch_size`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Reading or writing a file failed.
    #[error("{file}: I/O error: {source}")]
    Io {
        /// The file being read or written.
        file: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML/JSON/YAML, or its top level is not a table.
    #[error("{file}: parse error: {message}")]
    Parse {
        /// The file that failed to parse.
        file: String,
        /// Parser message, with line and column where the parser gives them.
        message: String,
    },
    /// The file extension is not `.toml`, `.json`, `.yaml` or `.yml`.
    #[error("{file}: unsupported config format (expected .toml, .json, .yaml or .yml)")]
    UnsupportedFormat {
        /// The offending path.
        file: String,
    },
    /// A key that the target struct does not have (typo, or wrong component).
    #[error("{file}: {key_path}: unknown key; {}", expected_keys(expected))]
    UnknownKey {
        /// File that wrote the key.
        file: String,
        /// Full dotted path of the unknown key.
        key_path: String,
        /// The keys that are accepted at that level.
        expected: Vec<String>,
    },
    /// A value of the wrong type or shape.
    #[error("{file}: {key_path}: {message}")]
    InvalidValue {
        /// File that wrote the value.
        file: String,
        /// Full dotted path of the value.
        key_path: String,
        /// What is wrong (serde's message).
        message: String,
    },
    /// A required key is absent.
    #[error("{file}: {key_path}: missing key")]
    MissingKey {
        /// File that wrote the enclosing table.
        file: String,
        /// Full dotted path of the missing key.
        key_path: String,
    },
    /// A registry `type` name that is not registered.
    #[error("{file}: {key_path}: unknown type \"{name}\"; known: {}", known.join(", "))]
    UnknownType {
        /// File that wrote the `type` key.
        file: String,
        /// Full dotted path of the `type` key.
        key_path: String,
        /// The name as written (scope prefix included).
        name: String,
        /// Registered names.
        known: Vec<String>,
    },
    /// A registry table without a `type` key.
    #[error("{file}: {key_path}: missing type name; known: {}", known.join(", "))]
    MissingType {
        /// File that wrote the enclosing table.
        file: String,
        /// Full dotted path of the missing `type` key.
        key_path: String,
        /// Registered names.
        known: Vec<String>,
    },
    /// A `_base_` entry that does not exist.
    #[error("{file}: _base_: base config \"{base}\" not found")]
    BaseNotFound {
        /// The including file.
        file: String,
        /// The `_base_` entry as written.
        base: String,
    },
    /// `_base_` inheritance loops back on itself.
    #[error("{file}: _base_: circular inheritance: {}", chain.join(" -> "))]
    CircularBase {
        /// The file whose `_base_` closes the loop.
        file: String,
        /// The inclusion chain, ending with the repeated file.
        chain: Vec<String>,
    },
    /// A malformed `--cfg-options` entry.
    #[error("--cfg-options {option}: {message}")]
    BadOption {
        /// The option as given.
        option: String,
        /// What is wrong.
        message: String,
    },
    /// The config cannot be written in the requested format.
    #[error("{file}: cannot serialize: {message}")]
    Serialize {
        /// The config's file name.
        file: String,
        /// The serializer's message.
        message: String,
    },
}

impl ConfigError {
    /// The file the error is attributed to (`None` for [`ConfigError::BadOption`]).
    pub fn file(&self) -> Option<&str> {
        use ConfigError::*;
        match self {
            Io { file, .. }
            | Parse { file, .. }
            | UnsupportedFormat { file }
            | UnknownKey { file, .. }
            | InvalidValue { file, .. }
            | MissingKey { file, .. }
            | UnknownType { file, .. }
            | MissingType { file, .. }
            | BaseNotFound { file, .. }
            | CircularBase { file, .. }
            | Serialize { file, .. } => Some(file),
            BadOption { .. } => None,
        }
    }

    /// The full dotted key path of a decode error, if the error has one.
    pub fn key_path(&self) -> Option<&str> {
        use ConfigError::*;
        match self {
            UnknownKey { key_path, .. }
            | InvalidValue { key_path, .. }
            | MissingKey { key_path, .. }
            | UnknownType { key_path, .. }
            | MissingType { key_path, .. } => Some(key_path),
            _ => None,
        }
    }
}

fn expected_keys(expected: &[String]) -> String {
    if expected.is_empty() {
        "no keys are accepted here".to_string()
    } else {
        format!("expected one of {}", expected.join(", "))
    }
}
