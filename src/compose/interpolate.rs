//! `$VAR` interpolation in compose values, as Docker Compose (compose-go `template` and
//! `interpolation` packages) does it, followed by its type casting of a few known paths.
//!
//! Recognised forms: `$V`, `${V}`, `${V:-d}`, `${V-d}`, `${V:?e}`, `${V?e}`, `${V:+r}`, `${V+r}`,
//! nested templates in `d`/`e`/`r`, and `$$` for a literal `$`. A `$` followed by anything else is
//! kept as is; `${` that does not open a valid template is an error.
//!
//! The scanning mirrors compose-go's regular expression closely on purpose (for example the
//! argument of a braced form extends to the last `}` of the line before braces are balanced),
//! because compose files in the wild rely on those quirks.

use std::collections::HashSet;

use serde_yaml::{Mapping, Number, Value};

use super::path::{Seg, TreePath};

/// The result of interpolating one string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpolated {
    pub value: String,
    /// Variables referenced without a default that were not set, in first-use order, each once.
    pub unset: Vec<String>,
}

/// Messages follow docker compose's wording, since users compare them with what it prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolateError {
    /// A `${` that does not open a valid template; `template` is the string being scanned.
    #[error("Invalid template: {}", go_quote(template))]
    InvalidTemplate { template: String },
    /// `${V:?reason}` / `${V?reason}` with `V` missing.
    #[error(
        "required variable {variable} is missing a value{}",
        reason_suffix(reason)
    )]
    MissingRequired { variable: String, reason: String },
    /// An invalid template inside the compose tree.
    #[error(
        "invalid interpolation format for {}.\nYou may need to escape any $ with another $.\n{template}",
        compose_path(path)
    )]
    InvalidFormat { path: TreePath, template: String },
    /// Any other interpolation failure inside the compose tree.
    #[error("error while interpolating {}: {source}", compose_path(path))]
    AtPath {
        path: TreePath,
        source: Box<InterpolateError>,
    },
    /// Templates nested (or chained on one line) deeper than [`MAX_NESTING`]: each level is a
    /// recursion, and the stack is not the place to learn the limit.
    #[error(
        "template nested deeper than {MAX_NESTING} levels: {}",
        go_quote(template)
    )]
    TooDeep { template: String },
    /// An interpolated value at a typed path that does not convert to that type.
    #[error(
        "error while interpolating {}: failed to cast to expected type: {reason}",
        compose_path(path)
    )]
    Cast { path: TreePath, reason: String },
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

/// The path as compose-go prints it in interpolation errors: sequence items are `[]`, not indexes
/// (`services.web.command.[]`).
pub fn compose_path(path: &TreePath) -> String {
    path.segments()
        .iter()
        .map(|s| match s {
            Seg::Key(k) => k.as_str(),
            Seg::Index(_) => "[]",
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Quote a string the way Go's `%q` / `%#v` does for the characters that matter in messages.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Interpolate one string. Unset variables are listed in the result, not reported.
pub fn interpolate_str(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Interpolated, InterpolateError> {
    let mut unset: Vec<String> = Vec::new();
    let value = substitute(s, lookup, &mut |name: &str| {
        if !unset.iter().any(|u| u == name) {
            unset.push(name.to_string());
        }
    })?;
    Ok(Interpolated { value, unset })
}

/// The warning docker compose prints for a variable used without a value.
pub fn unset_warning(name: &str) -> String {
    format!(
        "The {} variable is not set. Defaulting to a blank string.",
        go_quote(name)
    )
}

/// How deep templates may nest: `${A:-${B:-…}}` levels, plus operator templates followed by
/// more text on their line (`${A:-x}${B:-y}…`, evaluated one inside the other as compose-go
/// does). compose-go has no limit (Go stacks grow); real files use a handful.
pub const MAX_NESTING: usize = 128;

/// Substitute every template in `t`. `on_unset` is called for each plain reference (`$V`, `${V}`)
/// to a variable that `lookup` does not know, every time it occurs.
pub fn substitute(
    t: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    on_unset: &mut dyn FnMut(&str),
) -> Result<String, InterpolateError> {
    substitute_at(t, lookup, on_unset, 0)
}

fn substitute_at(
    t: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    on_unset: &mut dyn FnMut(&str),
    depth: usize,
) -> Result<String, InterpolateError> {
    if depth > MAX_NESTING {
        return Err(InterpolateError::TooDeep {
            template: t.to_string(),
        });
    }
    let b = t.as_bytes();
    let mut out = String::with_capacity(t.len());
    // Like compose-go, keep scanning after an error (so later warnings still fire) and report
    // the first one.
    let mut first_err: Option<InterpolateError> = None;
    let mut i = 0;
    while let Some(off) = t[i..].find('$') {
        let d = i + off;
        out.push_str(&t[i..d]);
        match b.get(d + 1) {
            Some(b'$') => {
                out.push('$');
                i = d + 2;
            }
            Some(&c) if is_name_start(c) => {
                let end = ident_end(b, d + 1);
                let name = &t[d + 1..end];
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => on_unset(name),
                }
                i = end;
            }
            Some(b'{') => match braced_match_end(t, d) {
                Some(end) => {
                    match replace_braced(&t[d..end], lookup, on_unset, depth) {
                        Ok(v) => out.push_str(&v),
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                    i = end;
                }
                None => {
                    first_err.get_or_insert(InterpolateError::InvalidTemplate {
                        template: t.to_string(),
                    });
                    i = d + 2;
                }
            },
            _ => {
                out.push('$');
                i = d + 1;
            }
        }
    }
    out.push_str(&t[i..]);
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

fn is_name_start(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphabetic()
}

fn ident_end(b: &[u8], start: usize) -> usize {
    let mut j = start;
    while j < b.len() && (b[j] == b'_' || b[j].is_ascii_alphanumeric()) {
        j += 1;
    }
    j
}

/// Where the braced template starting at `t[d..]` (`${`) ends, as compose-go's pattern matches
/// it: `${NAME}`, or `${NAME` + operator + anything up to the *last* `}` on the line.
fn braced_match_end(t: &str, d: usize) -> Option<usize> {
    let b = t.as_bytes();
    let start = d + 2;
    if !b.get(start).is_some_and(|&c| is_name_start(c)) {
        return None;
    }
    let n = ident_end(b, start);
    match b.get(n) {
        Some(b'}') => return Some(n + 1),
        None => return None,
        Some(_) => {}
    }
    let mut q = n;
    if b[q] == b':' {
        q += 1;
    }
    if !matches!(b.get(q), Some(b'-' | b'+' | b'?')) {
        return None;
    }
    q += 1;
    let line_end = t[q..].find('\n').map_or(t.len(), |x| q + x);
    t[q..line_end].rfind('}').map(|k| q + k + 1)
}

/// compose-go's brace balancing over a matched template: every `{` opens (and hides the next
/// character), every `}` closes.
fn first_brace_closing(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut open = 0i32;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'}' {
            open -= 1;
            if open == 0 {
                return Some(i);
            }
        }
        if b[i] == b'{' {
            open += 1;
            i += 1;
        }
        i += 1;
    }
    None
}

/// Evaluate one braced template `s` (`${...}` as matched, possibly followed by more text).
fn replace_braced(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    on_unset: &mut dyn FnMut(&str),
    depth: usize,
) -> Result<String, InterpolateError> {
    let (sub, rest) = match first_brace_closing(s) {
        Some(c) => (&s[..=c], &s[c + 1..]),
        None => (s, ""),
    };
    // `sub` is `${` + content + `}` by construction of the match.
    let content = &sub[2..sub.len() - 1];
    let name_len = ident_end(content.as_bytes(), 0);
    let name = &content[..name_len];
    let after = &content[name_len..];
    let (colon, after) = match after.strip_prefix(':') {
        Some(a) => (true, a),
        None => (false, after),
    };
    let mut value = match after.as_bytes().first() {
        None => match lookup(name) {
            Some(v) => v,
            None => {
                on_unset(name);
                String::new()
            }
        },
        Some(&op) => {
            // The argument is interpolated even when it ends up unused, as compose-go does.
            let arg = substitute_at(&after[1..], lookup, on_unset, depth + 1)?;
            let current = lookup(name);
            let present = current.as_deref().is_some_and(|v| !colon || !v.is_empty());
            match op {
                b'-' if present => current.unwrap_or_default(),
                b'-' => arg,
                b'+' if present => arg,
                b'+' => current.unwrap_or_default(),
                _ if present => current.unwrap_or_default(),
                _ => {
                    return Err(InterpolateError::MissingRequired {
                        variable: name.to_string(),
                        reason: arg,
                    })
                }
            }
        }
    };
    if !rest.is_empty() {
        value.push_str(&substitute_at(rest, lookup, on_unset, depth + 1)?);
    }
    Ok(value)
}

/// How a string at a typed path is converted after interpolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cast {
    /// Go `strconv.Atoi`.
    Int,
    /// Go `strconv.ParseInt(s, 10, 64)`.
    Int64,
    Float,
    Float32,
    Bool,
}

/// compose-go `loader/interpolate.go` `interpolateTypeCastMapping`. `*` matches any key or
/// sequence item, `[]` any sequence item.
const CASTS: &[(&str, Cast)] = &[
    ("services.*.cpu_count", Cast::Int64),
    ("services.*.cpu_percent", Cast::Float),
    ("services.*.cpu_period", Cast::Int64),
    ("services.*.cpu_quota", Cast::Int64),
    ("services.*.cpu_rt_period", Cast::Int64),
    ("services.*.cpu_rt_runtime", Cast::Int64),
    ("services.*.cpus", Cast::Float32),
    ("services.*.cpu_shares", Cast::Int64),
    ("services.*.init", Cast::Bool),
    ("services.*.deploy.replicas", Cast::Int),
    ("services.*.deploy.update_config.parallelism", Cast::Int),
    (
        "services.*.deploy.update_config.max_failure_ratio",
        Cast::Float,
    ),
    ("services.*.deploy.rollback_config.parallelism", Cast::Int),
    (
        "services.*.deploy.rollback_config.max_failure_ratio",
        Cast::Float,
    ),
    ("services.*.deploy.restart_policy.max_attempts", Cast::Int),
    (
        "services.*.deploy.placement.max_replicas_per_node",
        Cast::Int,
    ),
    ("services.*.healthcheck.retries", Cast::Int),
    ("services.*.healthcheck.disable", Cast::Bool),
    ("services.*.oom_kill_disable", Cast::Bool),
    ("services.*.oom_score_adj", Cast::Int64),
    ("services.*.pids_limit", Cast::Int64),
    ("services.*.ports.[].target", Cast::Int),
    ("services.*.privileged", Cast::Bool),
    ("services.*.read_only", Cast::Bool),
    ("services.*.scale", Cast::Int),
    ("services.*.stdin_open", Cast::Bool),
    ("services.*.tty", Cast::Bool),
    ("services.*.ulimits.*", Cast::Int),
    ("services.*.ulimits.*.hard", Cast::Int),
    ("services.*.ulimits.*.soft", Cast::Int),
    ("services.*.volumes.[].read_only", Cast::Bool),
    ("services.*.volumes.[].volume.nocopy", Cast::Bool),
    ("networks.*.external", Cast::Bool),
    ("networks.*.internal", Cast::Bool),
    ("networks.*.attachable", Cast::Bool),
    ("networks.*.enable_ipv6", Cast::Bool),
    ("volumes.*.external", Cast::Bool),
    ("secrets.*.external", Cast::Bool),
    ("configs.*.external", Cast::Bool),
];

/// The cast for a path, if any. compose-go joins keys with `.` and splits again to match, so a
/// key that itself contains a dot never matches; splitting here reproduces that.
fn cast_for(path: &TreePath) -> Option<Cast> {
    let parts: Vec<&str> = path
        .segments()
        .iter()
        .flat_map(|s| match s {
            Seg::Key(k) => k.split('.').collect::<Vec<_>>(),
            Seg::Index(_) => vec!["[]"],
        })
        .collect();
    CASTS.iter().find_map(|(pattern, cast)| {
        let pat: Vec<&str> = pattern.split('.').collect();
        let hit =
            pat.len() == parts.len() && pat.iter().zip(&parts).all(|(p, s)| *p == "*" || p == s);
        hit.then_some(*cast)
    })
}

fn apply_cast(cast: Cast, s: &str, warn: &mut dyn FnMut(String)) -> Result<Value, String> {
    match cast {
        Cast::Int => parse_go_int(s, "Atoi").map(|n| Value::Number(n.into())),
        Cast::Int64 => parse_go_int(s, "ParseInt").map(|n| Value::Number(n.into())),
        Cast::Float => parse_go_float(s, false).map(|f| Value::Number(Number::from(f))),
        Cast::Float32 => parse_go_float(s, true).map(|f| Value::Number(Number::from(f))),
        Cast::Bool => parse_go_bool(s, warn).map(Value::Bool),
    }
}

fn strconv_err(func: &str, s: &str, what: &str) -> String {
    format!("strconv.{func}: parsing {}: {what}", go_quote(s))
}

/// Go's base-10 integer syntax: optional sign, ASCII digits only.
fn parse_go_int(s: &str, func: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(strconv_err(func, s, "invalid syntax"));
    }
    s.parse::<i64>()
        .map_err(|_| strconv_err(func, s, "value out of range"))
}

/// Go's `strconv.ParseFloat` for the decimal forms (underscores between digits allowed, `inf`,
/// `infinity` and `nan` accepted); overflow is an error, not infinity.
fn parse_go_float(s: &str, single: bool) -> Result<f64, String> {
    let invalid = || strconv_err("ParseFloat", s, "invalid syntax");
    let cleaned: String = if s.contains('_') {
        if !underscores_ok(s) {
            return Err(invalid());
        }
        s.chars().filter(|&c| c != '_').collect()
    } else {
        s.to_string()
    };
    let body = cleaned.strip_prefix(['+', '-']).unwrap_or(&cleaned);
    let special = matches!(
        body.to_ascii_lowercase().as_str(),
        "inf" | "infinity" | "nan"
    );
    // Rust accepts a few spellings Go does not (e.g. a sign on `nan`); both reject the rest.
    if !special
        && !body
            .bytes()
            .all(|c| c.is_ascii_digit() || b".eE+-".contains(&c))
    {
        return Err(invalid());
    }
    let value: f64 = cleaned.parse().map_err(|_| invalid())?;
    let overflow = if single {
        cleaned.parse::<f32>().map_or(true, |f| f.is_infinite())
    } else {
        value.is_infinite()
    };
    if overflow && !special {
        return Err(strconv_err("ParseFloat", s, "value out of range"));
    }
    Ok(value)
}

/// Go accepts `_` in a float only between digits.
fn underscores_ok(s: &str) -> bool {
    let b = s.strip_prefix(['+', '-']).unwrap_or(s).as_bytes();
    b.iter().enumerate().all(|(i, &c)| {
        c != b'_'
            || (i > 0
                && b[i - 1].is_ascii_digit()
                && b.get(i + 1).is_some_and(|n| n.is_ascii_digit()))
    })
}

fn parse_go_bool(s: &str, warn: &mut dyn FnMut(String)) -> Result<bool, String> {
    match s.to_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        "y" | "yes" | "on" => {
            warn(format!(
                "{} for boolean is not supported by YAML 1.2, please use `true`",
                go_quote(s)
            ));
            Ok(true)
        }
        "n" | "no" | "off" => {
            warn(format!(
                "{} for boolean is not supported by YAML 1.2, please use `false`",
                go_quote(s)
            ));
            Ok(false)
        }
        _ => Err(format!("invalid boolean: {s}")),
    }
}

/// Interpolate every string scalar of a compose tree in place (mapping keys are left alone), then
/// cast strings at compose-go's typed paths. Warnings (unset variables, once per name; YAML 1.1
/// booleans) go to `warn`. The first error in document order is returned.
pub fn interpolate_tree(
    v: &mut Value,
    lookup: &dyn Fn(&str) -> Option<String>,
    warn: &mut dyn FnMut(String),
) -> Result<(), InterpolateError> {
    let mut walker = Walker {
        lookup,
        warn,
        warned: HashSet::new(),
    };
    walker.walk(v, &TreePath::root())
}

struct Walker<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    warn: &'a mut dyn FnMut(String),
    warned: HashSet<String>,
}

impl Walker<'_> {
    fn walk(&mut self, v: &mut Value, path: &TreePath) -> Result<(), InterpolateError> {
        match v {
            Value::String(s) => {
                if let Some(new) = self.scalar(s, path)? {
                    *v = new;
                }
                Ok(())
            }
            Value::Mapping(m) => self.walk_mapping(m, path),
            Value::Sequence(seq) => {
                for (i, item) in seq.iter_mut().enumerate() {
                    self.walk(item, &path.index(i))?;
                }
                Ok(())
            }
            // `!reset` / `!override` wrap a value that is interpolated like any other.
            Value::Tagged(t) => self.walk(&mut t.value, path),
            Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
        }
    }

    fn walk_mapping(&mut self, m: &mut Mapping, path: &TreePath) -> Result<(), InterpolateError> {
        for (k, item) in m.iter_mut() {
            self.walk(item, &path.key(key_string(k)))?;
        }
        Ok(())
    }

    /// Interpolate one string; returns the replacement value when it changed type or content.
    fn scalar(&mut self, s: &str, path: &TreePath) -> Result<Option<Value>, InterpolateError> {
        let mut unset: Vec<String> = Vec::new();
        let value = substitute(s, self.lookup, &mut |n: &str| unset.push(n.to_string()))
            .map_err(|e| at_path(path, e))?;
        for name in unset {
            if self.warned.insert(name.clone()) {
                (self.warn)(unset_warning(&name));
            }
        }
        match cast_for(path) {
            Some(cast) => apply_cast(cast, &value, self.warn)
                .map(Some)
                .map_err(|reason| InterpolateError::Cast {
                    path: path.clone(),
                    reason,
                }),
            None if value != s => Ok(Some(Value::String(value))),
            None => Ok(None),
        }
    }
}

fn at_path(path: &TreePath, e: InterpolateError) -> InterpolateError {
    match e {
        InterpolateError::InvalidTemplate { template } => InterpolateError::InvalidFormat {
            path: path.clone(),
            template,
        },
        other => InterpolateError::AtPath {
            path: path.clone(),
            source: Box::new(other),
        },
    }
}

/// A mapping key as a path segment; non-string keys (numbers, booleans) print as YAML does.
fn key_string(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_string(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Interpolate with A=a, E="" set and everything else unset.
    fn run(s: &str) -> Result<Interpolated, InterpolateError> {
        let e = env(&[("A", "a"), ("E", ""), ("N", "8080"), ("T", "yes")]);
        interpolate_str(s, &|k| e.get(k).cloned())
    }

    /// Found probing nesting limits for the fuzz targets (libFuzzer's 64 KiB inputs reach it):
    /// `${A:-${A:-…}}` 5,000 deep, or operator templates chained on one line, overflowed the
    /// stack, one recursion per level. Past MAX_NESTING it is an error.
    #[test]
    fn nesting_deeper_than_the_limit_is_an_error_not_a_stack_overflow() {
        let nested = |n: usize| format!("{}x{}", "${U:-".repeat(n), "}".repeat(n));
        assert_eq!(val(&nested(MAX_NESTING)), "x");
        for n in [MAX_NESTING + 2, 20_000] {
            let err = run(&nested(n)).unwrap_err();
            assert!(
                matches!(err, InterpolateError::TooDeep { .. }),
                "{n} levels: {err}"
            );
            assert!(err
                .to_string()
                .starts_with("template nested deeper than 128 levels"));
        }
        // Templates with an operator followed by more on their line recurse too.
        let chained = |n: usize| "${U:-x}".repeat(n);
        assert_eq!(val(&chained(100)), "x".repeat(100));
        assert!(matches!(
            run(&chained(20_000)).unwrap_err(),
            InterpolateError::TooDeep { .. }
        ));
        // Plain templates do not nest, however many there are.
        assert_eq!(val(&"${A}".repeat(20_000)), "a".repeat(20_000));
    }

    fn val(s: &str) -> String {
        match run(s) {
            Ok(i) => i.value,
            Err(e) => panic!("{s:?} failed: {e}"),
        }
    }

    fn err(s: &str) -> String {
        match run(s) {
            Ok(i) => panic!("{s:?} should fail, gave {:?}", i.value),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn plain_forms() {
        assert_eq!(val("$A"), "a");
        assert_eq!(val("${A}"), "a");
        assert_eq!(val("x${A}y$A.z"), "xaya.z");
        assert_eq!(val("$A_B-c"), "-c");
        assert_eq!(val("no vars"), "no vars");
        assert_eq!(
            run("$U ${U} $A $V").map(|i| i.unset).ok(),
            Some(vec!["U".into(), "V".into()])
        );
    }

    #[test]
    fn defaults() {
        assert_eq!(val("${U:-d}"), "d");
        assert_eq!(val("${E:-d}"), "d");
        assert_eq!(val("${A:-d}"), "a");
        assert_eq!(val("${U-d}"), "d");
        assert_eq!(val("${E-d}"), "");
        assert_eq!(val("${A-d}"), "a");
        assert_eq!(val("x${U-d}y"), "xdy");
        assert_eq!(val("${U:-}"), "");
        // The default runs to the matching brace, the rest is text.
        assert_eq!(val("${U:-a}}"), "a}");
        assert_eq!(val("${U:-{a}b}c"), "{a}bc");
        assert_eq!(val("${U:-{}x}"), "{}x");
        assert_eq!(val("${U-a:-b}"), "a:-b");
        // Defaults are not interpolated for variables they are not used for, but are still
        // scanned: an unset variable in them is reported.
        assert_eq!(run("${A-$Z}").map(|i| i.unset).ok(), Some(vec!["Z".into()]));
    }

    #[test]
    fn alternatives() {
        assert_eq!(val("${A:+r}"), "r");
        assert_eq!(val("${E:+r}"), "");
        assert_eq!(val("${U:+r}"), "");
        assert_eq!(val("${A+r}"), "r");
        assert_eq!(val("${E+r}"), "r");
        assert_eq!(val("${U+r}"), "");
    }

    #[test]
    fn required() {
        assert_eq!(val("${A:?boom}"), "a");
        assert_eq!(val("${E?boom}"), "");
        assert_eq!(
            err("${U:?U variable must be set}"),
            "required variable U is missing a value: U variable must be set"
        );
        assert_eq!(err("${E:?}"), "required variable E is missing a value");
        assert_eq!(err("${U?}"), "required variable U is missing a value");
        assert_eq!(
            err("${U:?$A is ${U2}}"),
            "required variable U is missing a value: a is "
        );
    }

    #[test]
    fn nesting() {
        assert_eq!(val("${U:-${V:-x}}"), "x");
        assert_eq!(val("${U:-${A}}"), "a");
        assert_eq!(val("${U:-${V:-${A}-y}}z"), "a-yz");
        assert_eq!(val("${A:+${U:-r}}"), "r");
        assert_eq!(val("${U:-a}${A}"), "aa");
        assert_eq!(val("${U:-a} and ${V:-b}"), "a and b");
        // An error in an unused default still fails, as in compose-go.
        assert_eq!(
            err("${A:-${U:?boom}}"),
            "required variable U is missing a value: boom"
        );
    }

    #[test]
    fn dollars() {
        assert_eq!(val("$$A"), "$A");
        assert_eq!(val("$${A}"), "${A}");
        assert_eq!(val("$$$A"), "$a");
        assert_eq!(val("$1 $ a $"), "$1 $ a $");
        assert_eq!(val("${A}$"), "a$");
    }

    #[test]
    fn invalid_templates() {
        for t in [
            "${",
            "${ A}",
            "${A:}",
            "${A",
            "${9}",
            "${A x}",
            "${A[x]}",
            "a ${-}",
            "${A:-x\ny}",
        ] {
            assert_eq!(
                err(t),
                format!("Invalid template: {}", go_quote(t)),
                "{t:?}"
            );
        }
        // The innermost template scanned is the one reported.
        assert_eq!(err("x ${U:-${ B}}"), r#"Invalid template: "${ B}""#);
    }

    #[test]
    fn warning_text() {
        assert_eq!(
            unset_warning("FILE"),
            r#"The "FILE" variable is not set. Defaulting to a blank string."#
        );
    }

    fn tree(yaml: &str) -> (Result<Value, InterpolateError>, Vec<String>) {
        let e = env(&[
            ("A", "a"),
            ("N", "8080"),
            ("T", "yes"),
            ("F", "1.5"),
            ("B", "true"),
        ]);
        let mut v: Value = serde_yaml::from_str(yaml).unwrap_or(Value::Null);
        let mut warnings = Vec::new();
        let r = interpolate_tree(&mut v, &|k| e.get(k).cloned(), &mut |w| warnings.push(w));
        (r.map(|_| v), warnings)
    }

    fn tree_ok(yaml: &str) -> (Value, Vec<String>) {
        let (r, w) = tree(yaml);
        match r {
            Ok(v) => (v, w),
            Err(e) => panic!("{yaml} failed: {e}"),
        }
    }

    fn tree_err(yaml: &str) -> String {
        match tree(yaml).0 {
            Ok(v) => panic!("{yaml} should fail, gave {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap_or(Value::Null)
    }

    #[test]
    fn whole_tree() {
        let (v, w) = tree_ok(
            r#"
services:
  "${A}":
    image: "img:${A}"
    command: ["echo", "$U", "$$HOME"]
    environment: {X: "${U}", Y: "${N}"}
    ports: [{target: "${N}", published: "${N}"}]
    privileged: "${B}"
    tty: "${T}"
    cpus: "${F}"
    ulimits: {nofile: "${N}", nproc: {soft: "1", hard: "${N}"}}
    healthcheck: {retries: "3", disable: "false"}
    labels: !override {a: "${A}"}
    deploy: {replicas: 2}
networks:
  n: {external: "true"}
volumes:
  v: {external: "${B}"}
"#,
        );
        let expected = yaml(
            r#"
services:
  "${A}":
    image: "img:a"
    command: ["echo", "", "$HOME"]
    environment: {X: "", Y: "8080"}
    ports: [{target: 8080, published: "8080"}]
    privileged: true
    tty: true
    cpus: 1.5
    ulimits: {nofile: 8080, nproc: {soft: 1, hard: 8080}}
    healthcheck: {retries: 3, disable: false}
    labels: !override {a: "a"}
    deploy: {replicas: 2}
networks:
  n: {external: true}
volumes:
  v: {external: true}
"#,
        );
        assert_eq!(v, expected);
        assert_eq!(
            w,
            vec![
                unset_warning("U"),
                "\"yes\" for boolean is not supported by YAML 1.2, please use `true`".to_string()
            ]
        );
    }

    #[test]
    fn tree_errors_name_the_path() {
        assert_eq!(
            tree_err("services: {test: {image: '${ID:?ID variable must be set}'}}"),
            "error while interpolating services.test.image: required variable ID is missing a value: ID variable must be set"
        );
        assert_eq!(
            tree_err("services: {test: {command: [a, '${X:?e}']}}"),
            "error while interpolating services.test.command.[]: required variable X is missing a value: e"
        );
        assert_eq!(
            tree_err("services: {test: {image: 'a${'}}"),
            "invalid interpolation format for services.test.image.\nYou may need to escape any $ with another $.\na${"
        );
    }

    #[test]
    fn cast_table() {
        let cases: &[(&str, &str, Value)] = &[
            ("services.s.cpu_count", "12", Value::Number(12.into())),
            (
                "services.s.cpu_percent",
                "12.5",
                Value::Number(Number::from(12.5)),
            ),
            ("services.s.cpus", "0.5", Value::Number(Number::from(0.5))),
            ("services.s.init", "TRUE", Value::Bool(true)),
            ("services.s.deploy.replicas", "+3", Value::Number(3.into())),
            (
                "services.s.deploy.update_config.max_failure_ratio",
                "1_0",
                Value::Number(Number::from(10.0)),
            ),
            (
                "services.s.deploy.placement.max_replicas_per_node",
                "1",
                Value::Number(1.into()),
            ),
            (
                "services.s.oom_score_adj",
                "-500",
                Value::Number((-500).into()),
            ),
            ("services.s.read_only", "off", Value::Bool(false)),
            ("services.s.ulimits.nofile", "9", Value::Number(9.into())),
            (
                "services.s.ulimits.nofile.soft",
                "9",
                Value::Number(9.into()),
            ),
            ("networks.n.enable_ipv6", "false", Value::Bool(false)),
            ("configs.c.external", "true", Value::Bool(true)),
            ("secrets.c.external", "true", Value::Bool(true)),
        ];
        let mut sink = |_: String| {};
        for (path, input, want) in cases {
            let p = TreePath::parse(path);
            let cast = cast_for(&p);
            assert!(cast.is_some(), "{path} should be typed");
            let got = cast.map(|c| apply_cast(c, input, &mut sink));
            assert_eq!(got, Some(Ok(want.clone())), "{path}");
        }
        for path in [
            "services.s.ports[0].target",
            "services.s.volumes[1].volume.nocopy",
        ] {
            assert!(cast_for(&TreePath::parse(path)).is_some(), "{path}");
        }
        for path in [
            "services.s.ports[0].published",
            // File modes stay strings: the model reads them as octal, as docker does.
            "services.s.secrets[0].mode",
            "services.s.mem_limit",
            "services.s.environment.privileged",
            "services.s.ports.target",
            "x.services.s.tty",
        ] {
            assert_eq!(cast_for(&TreePath::parse(path)), None, "{path}");
        }
        // A dotted service name never matches, as in compose-go.
        let dotted = TreePath::root().key("services").key("a.b").key("tty");
        assert_eq!(cast_for(&dotted), None);
    }

    #[test]
    fn cast_errors() {
        let mut sink = |_: String| {};
        assert_eq!(
            apply_cast(Cast::Int, "abc", &mut sink),
            Err(r#"strconv.Atoi: parsing "abc": invalid syntax"#.to_string())
        );
        assert_eq!(
            apply_cast(Cast::Int, " 80", &mut sink),
            Err(r#"strconv.Atoi: parsing " 80": invalid syntax"#.to_string())
        );
        assert_eq!(
            apply_cast(Cast::Int, "99999999999999999999", &mut sink),
            Err(r#"strconv.Atoi: parsing "99999999999999999999": value out of range"#.to_string())
        );
        assert_eq!(
            apply_cast(Cast::Int64, "1.5", &mut sink),
            Err(r#"strconv.ParseInt: parsing "1.5": invalid syntax"#.to_string())
        );
        assert_eq!(
            apply_cast(Cast::Float32, "1e40", &mut sink),
            Err(r#"strconv.ParseFloat: parsing "1e40": value out of range"#.to_string())
        );
        assert_eq!(
            apply_cast(Cast::Float, "1__0", &mut sink),
            Err(r#"strconv.ParseFloat: parsing "1__0": invalid syntax"#.to_string())
        );
        assert_eq!(
            apply_cast(Cast::Bool, "maybe", &mut sink),
            Err("invalid boolean: maybe".to_string())
        );
        assert_eq!(
            tree_err("services: {test: {privileged: '${A}'}}"),
            "error while interpolating services.test.privileged: failed to cast to expected type: invalid boolean: a"
        );
        assert_eq!(
            tree_err("services: {test: {deploy: {replicas: '${U}'}}}"),
            r#"error while interpolating services.test.deploy.replicas: failed to cast to expected type: strconv.Atoi: parsing "": invalid syntax"#
        );
    }

    #[test]
    fn unset_warned_once_per_name() {
        let (_, w) = tree_ok("a: $U\nb: [$U, '${U} $V']\nc: {d: $V}");
        assert_eq!(w, vec![unset_warning("U"), unset_warning("V")]);
    }

    #[test]
    fn non_strings_untouched() {
        let (v, w) = tree_ok("services: {s: {tty: true, cpus: 2, scale: ~}}\n1: x");
        assert_eq!(
            v,
            yaml("services: {s: {tty: true, cpus: 2, scale: ~}}\n1: x")
        );
        assert!(w.is_empty());
    }
}

/// A variable a compose file uses, as `config --variables` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Variable {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "DefaultValue")]
    pub default: Option<String>,
    #[serde(rename = "PresenceValue")]
    pub alternate: Option<String>,
    #[serde(rename = "Required")]
    pub required: bool,
}

/// Every variable referenced in `text`, in order of first use, including those nested in
/// defaults (`${A:-${B}}`). `$$` escapes are skipped. Malformed templates are ignored here:
/// interpolation reports them.
pub fn variables(text: &str) -> Vec<Variable> {
    let mut out: Vec<Variable> = Vec::new();
    scan_variables(text, &mut out, 0);
    out
}

fn scan_variables(text: &str, out: &mut Vec<Variable>, level: usize) {
    // Deeper templates are left out, as interpolation refuses them.
    if level > MAX_NESTING {
        return;
    }
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'$') => i += 2,
            Some(b'{') => {
                // Find the matching brace, counting nested `${`.
                let start = i + 2;
                let mut depth = 1;
                let mut j = start;
                while j < b.len() && depth > 0 {
                    match b[j] {
                        b'{' => depth += 1,
                        b'}' => depth -= 1,
                        _ => {}
                    }
                    j += 1;
                }
                if depth != 0 {
                    return;
                }
                let inner = &text[start..j - 1];
                let name_len = inner
                    .bytes()
                    .take_while(|c| *c == b'_' || c.is_ascii_alphanumeric())
                    .count();
                let (name, rest) = inner.split_at(name_len);
                if !name.is_empty() {
                    let mut v = Variable {
                        name: name.to_string(),
                        default: None,
                        alternate: None,
                        required: false,
                    };
                    let arg = |op: &str| rest.strip_prefix(op).map(str::to_string);
                    if let Some(a) = arg(":?").or_else(|| arg("?")) {
                        v.required = true;
                        scan_variables(&a, out, level + 1);
                    } else if let Some(a) = arg(":-").or_else(|| arg("-")) {
                        scan_variables(&a, out, level + 1);
                        v.default = Some(a);
                    } else if let Some(a) = arg(":+").or_else(|| arg("+")) {
                        scan_variables(&a, out, level + 1);
                        v.alternate = Some(a);
                    }
                    add_variable(out, v);
                }
                i = j;
            }
            Some(c) if *c == b'_' || c.is_ascii_alphabetic() => {
                let len = text[i + 1..]
                    .bytes()
                    .take_while(|c| *c == b'_' || c.is_ascii_alphanumeric())
                    .count();
                add_variable(
                    out,
                    Variable {
                        name: text[i + 1..i + 1 + len].to_string(),
                        default: None,
                        alternate: None,
                        required: false,
                    },
                );
                i += 1 + len;
            }
            _ => i += 1,
        }
    }
}

/// Keep the first mention of a variable, completed by what later mentions say.
fn add_variable(out: &mut Vec<Variable>, v: Variable) {
    match out.iter_mut().find(|o| o.name == v.name) {
        Some(o) => {
            o.required |= v.required;
            if o.default.is_none() {
                o.default = v.default;
            }
            if o.alternate.is_none() {
                o.alternate = v.alternate;
            }
        }
        None => out.push(v),
    }
}

#[cfg(test)]
mod variables_tests {
    use super::*;

    #[test]
    fn lists_variables_with_defaults_and_requirements() {
        let vars = variables("image: ${IMG:?must}:${TAG:-latest}\nenv: [X=$FOO, Y=${BAR:+alt}, Z=$${NOT}, W=${A:-${B}}]");
        let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["IMG", "TAG", "FOO", "BAR", "B", "A"]);
        assert!(vars[0].required);
        assert_eq!(vars[1].default.as_deref(), Some("latest"));
        assert_eq!(vars[3].alternate.as_deref(), Some("alt"));
        assert_eq!(vars[5].default.as_deref(), Some("${B}"));
    }

    /// Found probing nesting limits for the fuzz targets: every nesting level was a recursion,
    /// and deep nesting overflowed the stack. Deeper templates are left out.
    #[test]
    fn deep_nesting_is_bounded() {
        let deep = format!("{}x{}", "${A:-".repeat(20_000), "}".repeat(20_000));
        let vars = variables(&deep);
        assert_eq!(vars.len(), 1);
        assert_eq!(vars[0].name, "A");
    }
}
