//! Path-preserving decoding: the `registry!` machinery and the
//! Python-convention helpers ([`one_or_many`], [`Pair`]).
//!
//! serde buffers the content of tagged/untagged enums, which makes
//! `serde_path_to_error` lose the path below them. The helpers here decode
//! the buffered part with their own `serde_path_to_error` pass and smuggle the
//! inner path (plus the error kind) through `serde::de::Error::custom` in a
//! marked message; [`Config::decode`](crate::Config::decode) unpacks it.

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::{Error as _, SerializeMap};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Separates the human-readable part of a tracked message from the encoded part.
const MARK: &str = "\u{0}selfsup-config\u{0}";
const SEP: char = '\u{0}';
const PATH_SEP: char = '\u{1}';

/// The kind of a tracked error.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// A plain serde message.
    Msg(String),
    /// A registry `type` that is not registered.
    UnknownType { name: String, known: Vec<String> },
    /// A registry table without `type`.
    MissingType { known: Vec<String> },
}

/// An error with the key path (relative to where decoding started).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tracked {
    pub path: Vec<String>,
    pub kind: Kind,
}

impl Tracked {
    /// Unpacks a message produced by [`Tracked::encode`]; any other message
    /// becomes a plain [`Kind::Msg`] at the empty path.
    pub fn decode(msg: &str) -> Tracked {
        let plain = || Tracked { path: Vec::new(), kind: Kind::Msg(msg.to_string()) };
        let Some((_, enc)) = msg.split_once(MARK) else {
            return plain();
        };
        let mut parts = enc.split(SEP);
        let (Some(tag), Some(path)) = (parts.next(), parts.next()) else {
            return plain();
        };
        let path = path.split(PATH_SEP).filter(|s| !s.is_empty()).map(String::from).collect();
        let list =
            |s: Option<&str>| -> Vec<String> { s.unwrap_or("").split(PATH_SEP).filter(|s| !s.is_empty()).map(String::from).collect() };
        let kind = match tag {
            "T" => Kind::UnknownType { name: parts.next().unwrap_or("").to_string(), known: list(parts.next()) },
            "M" => Kind::MissingType { known: list(parts.next()) },
            _ => Kind::Msg(parts.next().unwrap_or("").to_string()),
        };
        Tracked { path, kind }
    }

    /// Packs the error into a message that survives `de::Error::custom`.
    /// The message starts with a readable `path: message` part.
    pub fn encode(&self) -> String {
        let path = self.path.join(&PATH_SEP.to_string());
        let (human, enc) = match &self.kind {
            Kind::Msg(m) => (m.clone(), format!("E{SEP}{path}{SEP}{m}")),
            Kind::UnknownType { name, known } => (
                format!("unknown type \"{name}\"; known: {}", known.join(", ")),
                format!("T{SEP}{path}{SEP}{name}{SEP}{}", known.join(&PATH_SEP.to_string())),
            ),
            Kind::MissingType { known } => (
                format!("missing type name; known: {}", known.join(", ")),
                format!("M{SEP}{path}{SEP}{}", known.join(&PATH_SEP.to_string())),
            ),
        };
        format!("{}: {human}{MARK}{enc}", self.path.join("."))
    }

    /// Converts a `serde_path_to_error` error, joining its path with any path
    /// already encoded in the inner message.
    pub fn from_path_error(e: serde_path_to_error::Error<serde_json::Error>) -> Tracked {
        let mut path: Vec<String> = e
            .path()
            .iter()
            .map(|seg| match seg {
                serde_path_to_error::Segment::Seq { index } => index.to_string(),
                serde_path_to_error::Segment::Map { key } => key.clone(),
                serde_path_to_error::Segment::Enum { variant } => variant.clone(),
                serde_path_to_error::Segment::Unknown => "?".to_string(),
            })
            .collect();
        let inner = Tracked::decode(&e.into_inner().to_string());
        path.extend(inner.path);
        Tracked { path, kind: inner.kind }
    }
}

/// Deserializes `value` with path tracking, re-raising errors as tracked
/// messages in the caller's error type.
fn from_value_tracked<T: DeserializeOwned, E: serde::de::Error>(value: Value) -> Result<T, E> {
    serde_path_to_error::deserialize(value).map_err(|e| E::custom(Tracked::from_path_error(e).encode()))
}

/// Support code for the [`registry!`](crate::registry) macro. Not a public API.
#[doc(hidden)]
pub mod __private {
    use super::*;
    pub use serde;

    /// Reads a table, removes and resolves its `type` (stripping a `scope.`
    /// prefix) against `known`, and returns the canonical name plus the rest.
    pub fn split_tagged<'de, D: Deserializer<'de>>(d: D, known: &[&'static str]) -> Result<(&'static str, Value), D::Error> {
        let mut map = Map::<String, Value>::deserialize(d)?;
        let known_names = || known.iter().map(|k| k.to_string()).collect();
        let err = |kind| D::Error::custom(Tracked { path: vec!["type".into()], kind }.encode());
        let name = match map.remove("type") {
            None => return Err(err(Kind::MissingType { known: known_names() })),
            Some(Value::String(s)) => s,
            Some(other) => {
                return Err(err(Kind::Msg(format!("invalid type: {other}, expected a type name string"))));
            }
        };
        let bare = name.rsplit_once('.').map_or(name.as_str(), |(_, n)| n);
        match known.iter().find(|k| **k == bare) {
            Some(k) => Ok((k, Value::Object(map))),
            None => Err(err(Kind::UnknownType { name, known: known_names() })),
        }
    }

    /// Decodes a variant's fields, keeping the path of any error.
    pub fn decode_variant<T: DeserializeOwned, E: serde::de::Error>(rest: Value) -> Result<T, E> {
        from_value_tracked(rest)
    }

    /// Serializes `{"type": tag, ...fields of value}`.
    pub fn serialize_tagged<S: Serializer, T: Serialize>(s: S, tag: &str, value: &T) -> Result<S::Ok, S::Error> {
        let fields = match serde_json::to_value(value).map_err(S::Error::custom)? {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => return Err(S::Error::custom(format!("registry type {tag} must serialize to a table, got {other}"))),
        };
        let mut map = s.serialize_map(Some(fields.len() + 1))?;
        map.serialize_entry("type", tag)?;
        for (k, v) in fields.iter().filter(|(k, _)| *k != "type") {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }

    /// Error for a name that `split_tagged` accepted but no arm matched
    /// (cannot happen with the macro-generated code).
    pub fn unmatched<E: serde::de::Error>(tag: &str) -> E {
        E::custom(format!("registry type {tag} has no variant"))
    }
}

/// Declares a component registry: an enum whose variants are selected by the
/// MMEngine `type` key.
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
/// #[serde(deny_unknown_fields, default)]
/// pub struct MaeVitConfig { pub arch: String, pub mask_ratio: f64 }
///
/// #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
/// #[serde(deny_unknown_fields, default)]
/// pub struct ResNetConfig { pub depth: usize }
///
/// selfsup_config::registry! {
///     /// Backbones.
///     #[derive(Debug, Clone, PartialEq)]
///     pub enum BackboneConfig {
///         /// MAE's ViT.
///         "MAEViT" => MaeVit(MaeVitConfig),
///         "ResNet" => ResNet(ResNetConfig),
///     }
/// }
///
/// let b: BackboneConfig = serde_json::from_str(r#"{"type": "mmselfsup.MAEViT", "arch": "b"}"#).unwrap();
/// assert_eq!(b.type_name(), "MAEViT");
/// assert_eq!(BackboneConfig::TYPES, &["MAEViT", "ResNet"]);
/// assert_eq!(serde_json::to_string(&b).unwrap(), r#"{"type":"MAEViT","arch":"b","mask_ratio":0.0}"#);
/// ```
///
/// The generated `Deserialize` accepts a table with a `type` string
/// (optionally scope-prefixed, `"mmcls.ResNet"`) and decodes the remaining
/// keys into the variant's struct; errors keep the full key path when decoded
/// through [`Config::decode`](crate::Config::decode). `Serialize` emits
/// `{"type": "<name>", ...fields}`. Also generated: `TYPES` (registered names)
/// and `type_name()`. Variant payloads must serialize to a table.
///
/// Decode registries through [`Config`](crate::Config): when decoded directly
/// (e.g. `serde_json::from_str`), error messages start with a readable
/// `inner.path: message` but carry an encoded tail meant for `Config`.
#[macro_export]
macro_rules! registry {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $tag:literal => $variant:ident($inner:ty) ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant($inner), )+
        }

        impl $name {
            /// The registered `type` names, in declaration order.
            pub const TYPES: &'static [&'static str] = &[$($tag),+];

            /// The registered `type` name of this value's variant.
            pub fn type_name(&self) -> &'static str {
                match self { $( Self::$variant(_) => $tag, )+ }
            }
        }

        impl $crate::__private::serde::Serialize for $name {
            fn serialize<S: $crate::__private::serde::Serializer>(&self, s: S) -> ::core::result::Result<S::Ok, S::Error> {
                match self { $( Self::$variant(v) => $crate::__private::serialize_tagged(s, $tag, v), )+ }
            }
        }

        impl<'de> $crate::__private::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(d: D) -> ::core::result::Result<Self, D::Error> {
                let (tag, rest) = $crate::__private::split_tagged(d, Self::TYPES)?;
                $( if tag == $tag { return $crate::__private::decode_variant(rest).map(Self::$variant); } )+
                ::core::result::Result::Err($crate::__private::unmatched(tag))
            }
        }
    };
}

/// `#[serde(deserialize_with = "selfsup_config::one_or_many")]`: accepts a
/// single `x` or a list `[x, ...]` (MMSelfSup's `out_indices=3` vs
/// `out_indices=(1, 3)`) into a `Vec`.
pub fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    match Value::deserialize(d)? {
        v @ Value::Array(_) => from_value_tracked(v),
        v => from_value_tracked(v).map(|x| vec![x]),
    }
}

/// A value given either once (broadcast to both) or as a pair, like
/// `to_2tuple` in MMSelfSup: `img_size = 224` or `img_size = [224, 192]`.
///
/// Serializes as a scalar when both halves are equal, else as a 2-array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Pair<T>(pub T, pub T);

/// Sizes such as `img_size`, `patch_size`, `kernel_size`: `224` or `[224, 224]`.
pub type IntOrPair = Pair<usize>;

impl<T: Copy> Pair<T> {
    /// Both halves equal to `v`.
    pub fn splat(v: T) -> Self {
        Pair(v, v)
    }

    /// As a tuple.
    pub fn tuple(self) -> (T, T) {
        (self.0, self.1)
    }
}

impl<T: Copy> From<T> for Pair<T> {
    fn from(v: T) -> Self {
        Pair(v, v)
    }
}

impl<T> From<(T, T)> for Pair<T> {
    fn from((a, b): (T, T)) -> Self {
        Pair(a, b)
    }
}

impl<T: Serialize + PartialEq> Serialize for Pair<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == self.1 {
            self.0.serialize(s)
        } else {
            [&self.0, &self.1].serialize(s)
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Pair<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Array(a) if a.len() != 2 => {
                Err(D::Error::custom(format!("expected one value or a list of 2, found a list of {}", a.len())))
            }
            v @ Value::Array(_) => from_value_tracked::<[T; 2], _>(v).map(|[a, b]| Pair(a, b)),
            v => Ok(Pair(from_value_tracked(v.clone())?, from_value_tracked(v)?)),
        }
    }
}
