//! `--cfg-options key=value` parsing, after MMEngine's `DictAction`.

use serde_json::{Map, Number, Value};

/// Splits `key.path=value` into path segments and a parsed value.
pub(crate) fn parse_option(opt: &str) -> Result<(Vec<String>, Value), String> {
    let (key, value) = opt.split_once('=').ok_or("expected KEY=VALUE")?;
    let path: Vec<String> = key.trim().split('.').map(str::to_string).collect();
    if path.iter().any(String::is_empty) {
        return Err(format!("malformed key path \"{}\"", key.trim()));
    }
    check_brackets(value)?;
    Ok((path, parse_value(value)))
}

/// MMEngine's `DictAction` refuses a value whose brackets do not pair up (`arch=[`), which
/// would otherwise become a plain string. Quoted parts are not counted.
fn check_brackets(value: &str) -> Result<(), String> {
    let mut stack = Vec::new();
    let mut quote = None;
    for c in value.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '(' | '{') => stack.push(c),
            (None, ']' | ')' | '}') => {
                let open = match c {
                    ']' => '[',
                    ')' => '(',
                    _ => '{',
                };
                if stack.pop() != Some(open) {
                    return Err(format!("unbalanced brackets in value `{}`: `{c}` closes nothing", value.trim()));
                }
            }
            _ => {}
        }
    }
    match stack.last() {
        Some(open) => Err(format!("unbalanced brackets in value `{}`: `{open}` is never closed", value.trim())),
        None => Ok(()),
    }
}

/// Parses an option value: `[..]`/`(..)` lists (nested), `a,b` lists, quoted
/// strings, `{..}` JSON objects, ints, floats, `true`/`false`,
/// `null`/`none` (any case), anything else as a plain string.
pub(crate) fn parse_value(s: &str) -> Value {
    let s = s.trim();
    if let Some(inner) = strip_brackets(s) {
        return Value::Array(split_top(inner).into_iter().map(parse_value).collect());
    }
    let parts = split_top(s);
    if parts.len() > 1 || s.ends_with(',') {
        return Value::Array(parts.into_iter().map(parse_value).collect());
    }
    parse_scalar(s)
}

fn parse_scalar(s: &str) -> Value {
    let quoted = s.len() >= 2 && (s.starts_with('"') && s.ends_with('"') || s.starts_with('\'') && s.ends_with('\''));
    if quoted {
        if s.starts_with('"') {
            if let Ok(v) = serde_json::from_str::<String>(s) {
                return Value::String(v);
            }
        }
        return Value::String(s[1..s.len() - 1].to_string());
    }
    if s.starts_with('{') {
        if let Ok(v) = serde_json::from_str::<Value>(s) {
            return v;
        }
    }
    if let Ok(i) = s.parse::<i64>() {
        return Value::Number(i.into());
    }
    if let Ok(u) = s.parse::<u64>() {
        return Value::Number(u.into());
    }
    let numeric = s.bytes().any(|b| b.is_ascii_digit()) && s.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
    if let Some(n) = numeric.then(|| s.parse::<f64>().ok()).flatten().and_then(Number::from_f64) {
        return Value::Number(n);
    }
    match s.to_ascii_lowercase().as_str() {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "null" | "none" => Value::Null,
        _ => Value::String(s.to_string()),
    }
}

/// If `s` is one bracketed group (`[..]` or `(..)`), returns its inside.
fn strip_brackets(s: &str) -> Option<&str> {
    let close = match s.chars().next()? {
        '[' => ']',
        '(' => ')',
        _ => return None,
    };
    if !s.ends_with(close) {
        return None;
    }
    // The group must close at the very end: "[1],[2]" is two groups.
    let mut depth = 0i32;
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '(') => depth += 1,
            (None, ']' | ')') => {
                depth -= 1;
                if depth == 0 {
                    return (i == s.len() - 1).then(|| &s[1..i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits on commas outside brackets and quotes; drops one trailing empty part.
fn split_top(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut quote, mut start) = (Vec::new(), 0i32, None, 0);
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '(' | '{') => depth += 1,
            (None, ']' | ')' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = s[start..].trim();
    if !last.is_empty() || parts.is_empty() && !s.trim().is_empty() {
        parts.push(last);
    }
    parts
}

/// Walks one path segment, creating a table where the key is missing (and
/// replacing a scalar by a table). Array segments must be in-range indices.
fn step<'a>(cur: &'a mut Value, seg: &str) -> Result<&'a mut Value, String> {
    if !matches!(cur, Value::Array(_) | Value::Object(_)) {
        *cur = Value::Object(Map::new());
    }
    match cur {
        Value::Array(items) => {
            let len = items.len();
            let i: usize = seg.parse().map_err(|_| format!("\"{seg}\" is not a list index (the value is a list)"))?;
            items.get_mut(i).ok_or_else(|| format!("index {i} out of range for a list of length {len}"))
        }
        Value::Object(m) => Ok(m.entry(seg.to_string()).or_insert_with(|| Value::Object(Map::new()))),
        _ => Err("cannot descend into a scalar".to_string()),
    }
}

/// Sets `path` in `root` to `value`, creating tables as needed.
pub(crate) fn set_path(root: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let mut cur = root;
    for seg in path {
        cur = step(cur, seg)?;
    }
    *cur = value;
    Ok(())
}

/// Looks up a dotted path (numeric segments index arrays).
pub(crate) fn get_path<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(root);
    }
    path.split('.').try_fold(root, |cur, seg| match cur {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values() {
        let cases = [
            ("20", json!(20)),
            ("-3", json!(-3)),
            ("1e-4", json!(1e-4)),
            ("0.5", json!(0.5)),
            ("true", json!(true)),
            ("False", json!(false)),
            ("null", json!(null)),
            ("None", json!(null)),
            ("imgs/", json!("imgs/")),
            ("inf", json!("inf")),
            ("'a,b'", json!("a,b")),
            ("\"x\\ty\"", json!("x\ty")),
            ("[1,2]", json!([1, 2])),
            ("[]", json!([])),
            ("(1, 2.5, x)", json!([1, 2.5, "x"])),
            ("a,b", json!(["a", "b"])),
            ("a,", json!(["a"])),
            ("[[1,2],[3]]", json!([[1, 2], [3]])),
            ("[1],[2]", json!([[1], [2]])),
            ("['a,b', c]", json!(["a,b", "c"])),
            ("{\"k\": 1}", json!({"k": 1})),
            ("", json!("")),
        ];
        for (s, want) in cases {
            assert_eq!(parse_value(s), want, "parsing {s:?}");
        }
    }

    #[test]
    fn option_errors() {
        assert!(parse_option("novalue").is_err());
        assert!(parse_option("a..b=1").is_err());
        assert!(parse_option("=1").is_err());
        for bad in ["arch=[", "arch=[1,2", "arch=(1]", "arch=1]"] {
            let e = parse_option(bad).expect_err(bad);
            assert!(e.contains("unbalanced brackets"), "{bad}: {e}");
        }
        assert_eq!(parse_option("name='[x'").unwrap().1, json!("[x"), "quoted brackets do not count");
        let (p, v) = parse_option("a.b = 2").unwrap();
        assert_eq!((p, v), (vec!["a".to_string(), "b".to_string()], json!(2)));
    }
}
