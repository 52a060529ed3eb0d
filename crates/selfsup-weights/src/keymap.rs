//! Renaming rows between PyTorch checkpoint keys and selfsup field paths.
use regex::Regex;

/// Regex rows that rename keys both ways: `(pytorch_pattern, ours_template,
/// ours_pattern, pytorch_template)`, all that match: in order towards ours,
/// in reverse order towards PyTorch.
#[derive(Debug, Clone, Default)]
pub struct KeyMap {
    to_ours: Vec<(Regex, String)>,
    to_pytorch: Vec<(Regex, String)>,
    aliases: Vec<Alias>,
}

impl KeyMap {
    /// An identity map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a row. Patterns are regular expressions on the full key;
    /// templates use `$1`-style groups.
    ///
    /// # Panics
    /// On an invalid pattern: rows are compile-time constants of the
    /// components, and a bad one is a bug caught by their tests.
    pub fn row(mut self, pytorch_pattern: &str, ours: &str, ours_pattern: &str, pytorch: &str) -> Self {
        let re = |p: &str| Regex::new(p).unwrap_or_else(|e| panic!("bad key-map pattern `{p}`: {e}"));
        self.to_ours.push((re(pytorch_pattern), ours.to_string()));
        self.to_pytorch.push((re(ours_pattern), pytorch.to_string()));
        self
    }

    /// Adds every row of `rows`.
    pub fn rows(self, rows: &[(&str, &str, &str, &str)]) -> Self {
        rows.iter().fold(self, |m, (a, b, c, d)| m.row(a, b, c, d))
    }

    /// Adds an alias: a second PyTorch key for the same tensor (a module
    /// registered twice, like SwAVNeck's BatchNorm). Keys matching
    /// `source_pattern` are also written as `alias_template`; checkpoint
    /// keys matching `alias_pattern` are accepted as that duplicate.
    ///
    /// # Panics
    /// On an invalid pattern (a bug in a component's constant rows).
    pub fn alias(self, source_pattern: &str, alias_template: &str, alias_pattern: &str) -> Self {
        self.push_alias(source_pattern, alias_template, alias_pattern, None)
    }

    /// [`KeyMap::alias`], only for modules that also hold a key named by `guard_template`
    /// (expanded with the source key's captures): SwAVNeck's BatchNorm has its second name
    /// only beside its `projection_neck`, while another neck's `bn` has none.
    ///
    /// # Panics
    /// On an invalid pattern.
    pub fn alias_when(self, source_pattern: &str, alias_template: &str, alias_pattern: &str, guard_template: &str) -> Self {
        self.push_alias(source_pattern, alias_template, alias_pattern, Some(guard_template))
    }

    fn push_alias(mut self, source_pattern: &str, alias_template: &str, alias_pattern: &str, guard: Option<&str>) -> Self {
        let re = |p: &str| Regex::new(p).unwrap_or_else(|e| panic!("bad key-map pattern `{p}`: {e}"));
        self.aliases.push(Alias {
            source: re(source_pattern),
            template: alias_template.to_string(),
            pattern: re(alias_pattern),
            guard: guard.map(str::to_string),
        });
        self
    }

    /// The alias keys of a PyTorch key (usually none), among a module's keys: `present`
    /// tells whether the module has a key (for guarded aliases).
    pub fn aliases_of(&self, key: &str, present: impl Fn(&str) -> bool) -> Vec<String> {
        self.aliases
            .iter()
            .filter(|a| a.source.is_match(key))
            .filter(|a| a.guard.as_ref().is_none_or(|g| present(&a.source.replace(key, g.as_str()))))
            .map(|a| a.source.replace(key, a.template.as_str()).into_owned())
            .collect()
    }

    /// Whether `key` is an alias (a duplicate name) rather than a tensor of its own.
    pub fn is_alias(&self, key: &str) -> bool {
        self.aliases.iter().any(|a| a.pattern.is_match(key))
    }

    fn apply<'a>(rows: impl Iterator<Item = &'a (Regex, String)>, key: &str) -> String {
        let mut key = key.to_string();
        for (re, template) in rows {
            if re.is_match(&key) {
                key = re.replace_all(&key, template.as_str()).into_owned();
            }
        }
        key
    }

    /// A PyTorch key as a selfsup path: the rows in order.
    pub fn to_ours(&self, key: &str) -> String {
        Self::apply(self.to_ours.iter(), key)
    }

    /// A selfsup path as a PyTorch key: the rows in reverse order, the
    /// inverse of [`KeyMap::to_ours`] when a renamed key could match a
    /// later row (HiViT's `mlp.fc1` against the necks' `mlp.0 ↔ mlp.fc1`).
    pub fn to_pytorch(&self, key: &str) -> String {
        Self::apply(self.to_pytorch.iter().rev(), key)
    }
}

/// A second PyTorch name for a tensor; see [`KeyMap::alias`] and [`KeyMap::alias_when`].
#[derive(Debug, Clone)]
struct Alias {
    source: Regex,
    template: String,
    pattern: Regex,
    guard: Option<String>,
}
