//! MMEngine-style configuration for selfsup.
//!
//! Config files are TOML, JSON or YAML (chosen by extension) laid out like
//! MMSelfSup's Python configs, with the same vocabulary:
//!
//! ```toml
//! _base_ = ["../_base_/models/mae_vit-base-p16.toml", "../_base_/default_runtime.toml"]
//!
//! [model]
//! type = "MAE"
//! backbone = { type = "MAEViT", arch = "b", mask_ratio = 0.75 }
//!
//! [train_cfg]
//! max_iters = 20
//! ```
//!
//! What this crate does:
//!
//! * **Loading** ([`Config::from_file`]): parses into a [`serde_json::Value`]
//!   object tree and resolves `_base_` (a path or a list of paths, relative to
//!   the including file, recursively; cycles are an error). Bases are merged in
//!   order, then the file's own keys are deep-merged on top: tables merge
//!   recursively, anything else replaces. A table containing
//!   `_delete_ = true` replaces instead of merging (at the top level it
//!   discards everything inherited). `_base_` and `_delete_` do not appear in
//!   the result.
//! * **Origins** ([`Config::origin`]): every key path remembers the file that
//!   last set it, so errors name the file that wrote the offending key.
//! * **Overrides** ([`Config::merge_options`]): MMEngine's `--cfg-options`.
//! * **Typed decoding** ([`Config::decode`], [`Config::decode_at`]) through
//!   `serde_path_to_error`, with errors like
//!   `configs/mae/foo.toml: model.backbone.mask_ratioo: unknown key; expected one of arch, mask_ratio`.
//!   Component registries (`type`-tagged enums) are declared with
//!   [`registry!`], which keeps full key paths in errors (serde's own
//!   internally tagged enums lose them) and accepts scope-prefixed names
//!   (`"mmselfsup.MAEViT"`).
//! * **Writing** the resolved tree back ([`Config::to_toml_string`],
//!   [`Config::dump`], ...). TOML cannot hold null: nulls are dropped there.
//! * **Python-convention helpers**: tuples are plain arrays; [`one_or_many`]
//!   accepts `x` or `[x, ...]`; [`Pair`]/[`IntOrPair`] accept `224` or
//!   `[224, 224]`.
//!
//! What it is not: it does not know any component (other crates define the
//! typed structs and their defaults), does not evaluate Python configs, and
//! does not support MMEngine's `{{_base_.xxx}}` variable references or
//! `_base_` variable access; it depends on no deep-learning library.
//!
//! Component structs should use `#[serde(deny_unknown_fields, default)]`
//! with a `Default` equal to MMSelfSup's defaults, so sparse configs decode
//! and a decoded config serializes back in full.
#![warn(missing_docs)]

mod config;
mod error;
mod options;
mod tracked;

pub use config::{Config, Format, CFG_OPTIONS_ORIGIN, MAX_CONFIG_BYTES, SET_ORIGIN};
pub use error::ConfigError;
pub use serde_json::Value;
pub use tracked::{one_or_many, IntOrPair, Pair};

#[doc(hidden)]
pub use tracked::__private;
