//! Reading compose files as YAML trees, and finding where a key stands in the source.
//!
//! Values come from `serde_yaml` (anchors, aliases, `!reset`/`!override` tags kept as
//! `Value::Tagged`, `<<` merge keys applied here). serde_yaml's values carry no positions, so
//! when an error must name a line and column we re-scan the source with yaml-rust2's event
//! parser and walk it to the offending path. That second pass only runs on the error path.

use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use std::fmt;
use yaml_rust2::parser::{Event, Parser};

use super::path::{Seg, TreePath};

/// A position in a source file, 1-based like editors show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("{message}")]
    Syntax {
        message: String,
        location: Option<Location>,
    },
    #[error("{path}: non-string key {key}")]
    NonStringKey { path: TreePath, key: String },
    #[error("top-level object must be a mapping")]
    NotAMapping,
    #[error("{path}: map merge requires a mapping or a sequence of mappings as the value of `<<`, found {found}")]
    Merge { path: TreePath, found: &'static str },
}

impl YamlError {
    pub fn location(&self) -> Option<Location> {
        match self {
            YamlError::Syntax { location, .. } => *location,
            _ => None,
        }
    }
}

/// Parse every document of a compose file. Empty documents are skipped; an empty file gives an
/// empty list (the caller decides whether that is an error).
pub fn parse_documents(content: &str) -> Result<Vec<Value>, YamlError> {
    // A UTF-8 BOM is legal at the start of a YAML stream but libyaml reports it as a character.
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    let mut docs = Vec::new();
    // A quoted `"<<"` key is an ordinary key in YAML (and for docker compose); serde_yaml
    // forgets the quotes and would merge it. Such keys are renamed for the parse and back after.
    if let Some(at) = flow_too_deep(content) {
        return Err(YamlError::Syntax {
            message: "recursion limit exceeded".into(),
            location: Some(at),
        });
    }
    let hidden = hide_quoted_merge_keys(content)?;
    let parsed = hidden.as_deref().unwrap_or(content);
    for de in serde_yaml::Deserializer::from_str(parsed) {
        let mut value = Value::deserialize(de).map_err(|e| {
            let mut err = syntax_error(e);
            // serde_yaml points at the mapping holding a duplicate key; point at the duplicate.
            if let YamlError::Syntax { message, location } = &mut err {
                if message.contains("duplicate entry") {
                    if let Some(at) = find_duplicate_key(content) {
                        *location = Some(at);
                    }
                }
            }
            err
        })?;
        if value.is_null() {
            continue;
        }
        apply_merge(&mut value, &TreePath::root())?;
        if hidden.is_some() {
            unhide_merge_keys(&mut value);
        }
        check_keys(&value, &TreePath::root())?;
        docs.push(value);
    }
    if has_octal_candidate(content) {
        for (doc, path, text, n) in octal_scalars(content) {
            if let Some(v) = docs.get_mut(doc).and_then(|d| value_at_mut(d, &path)) {
                // serde_yaml keeps a leading-zero plain scalar as the string it was.
                if v.as_str() == Some(text.as_str()) {
                    *v = Value::from(n);
                }
            }
        }
    }
    Ok(docs)
}

/// serde_yaml refuses anything nested deeper than this many collections.
const MAX_DEPTH: usize = 128;

/// Where flow collections (`[`, `{`) nest deeper than serde_yaml takes, if they do. libyaml's
/// scanner (under serde_yaml) is quadratic in the depth of flow collections — `[[[…]]]` 30,000
/// deep took seconds to be refused — so this linear scan refuses them first, with serde_yaml's
/// message. It counts only brackets that open or sit inside a flow collection (not those in
/// quoted scalars, comments, block scalars or inside a plain scalar), so it refuses nothing
/// serde_yaml would take: flow depth is part of the total depth serde_yaml bounds.
fn flow_too_deep(content: &str) -> Option<Location> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    // Inside a block scalar (`|`, `>`) opened by a line of this indentation.
    let mut block_scalar: Option<usize> = None;
    for (n, line) in content.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if let Some(opener) = block_scalar {
            if line.trim().is_empty() || indent > opener {
                continue;
            }
            block_scalar = None;
        }
        // The last character that is not a space, outside quotes and comments.
        let mut prev: Option<char> = None;
        let mut chars = line.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if let Some(q) = quote {
                match c {
                    '\\' if q == '"' => {
                        chars.next();
                    }
                    '\'' if q == '\'' && chars.peek().map(|(_, c)| *c) == Some('\'') => {
                        chars.next();
                    }
                    _ if c == q => {
                        quote = None;
                        prev = Some(c);
                    }
                    _ => {}
                }
                continue;
            }
            match c {
                '#' if i == 0 || line[..i].ends_with([' ', '\t']) => break,
                '"' | '\''
                    if prev.is_none_or(|p| matches!(p, ':' | '-' | '?' | ',' | '[' | '{')) =>
                {
                    quote = Some(c);
                }
                '[' | '{' if depth > 0 || prev.is_none_or(|p| matches!(p, ':' | '-' | '?')) => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Some(Location {
                            line: n + 1,
                            column: line[..i].chars().count() + 1,
                        });
                    }
                }
                ']' | '}' if depth > 0 => depth -= 1,
                ' ' | '\t' => continue,
                _ => {}
            }
            prev = Some(c);
        }
        if depth == 0 && quote.is_none() {
            let content = line.split(" #").next().unwrap_or(line).trim_end();
            let indicator =
                content.trim_end_matches(|c: char| c == '+' || c == '-' || c.is_ascii_digit());
            if indicator.ends_with(" |")
                || indicator.ends_with(" >")
                || indicator == "|"
                || indicator == ">"
            {
                block_scalar = Some(indent);
            }
        }
    }
    None
}

/// Resolve `<<` merge keys at every depth, the way go-yaml v3 (docker compose's parser) does:
/// a mapping's own keys win over merged ones, in `<<: [*a, *b]` the first mapping that has a
/// key wins, and a merged mapping has its own merge keys resolved first, so merges nest and
/// chain through anchors (`x-b: &b {<<: *a}` then `<<: *b`). serde_yaml's `apply_merge` copies
/// a merged mapping's `<<` in unresolved, which is why this is ours. A merged value tagged
/// `!reset` contributes nothing (compose-go drops reset nodes before merging); other tags are
/// looked through.
fn apply_merge(v: &mut Value, path: &TreePath) -> Result<(), YamlError> {
    match v {
        Value::Mapping(m) => {
            // Resolve the children first: the `<<` value itself and everything it merges in
            // are resolved before their keys are copied.
            for (k, child) in m.iter_mut() {
                let p = match k {
                    Value::String(s) => path.key(s.clone()),
                    _ => path.clone(),
                };
                apply_merge(child, &p)?;
            }
            let Some(merge) = m.remove("<<") else {
                return Ok(());
            };
            let here = path.key("<<");
            let mut sources = Vec::new();
            match untag(merge) {
                None => {}
                Some(Value::Mapping(src)) => sources.push(src),
                Some(Value::Sequence(items)) => {
                    for item in items {
                        match untag(item) {
                            None => {}
                            Some(Value::Mapping(src)) => sources.push(src),
                            Some(other) => {
                                return Err(YamlError::Merge {
                                    path: here,
                                    found: kind(&other),
                                })
                            }
                        }
                    }
                }
                Some(other) => {
                    return Err(YamlError::Merge {
                        path: here,
                        found: kind(&other),
                    })
                }
            }
            for src in sources {
                for (k, val) in src {
                    m.entry(k).or_insert(val);
                }
            }
            Ok(())
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                apply_merge(item, &path.index(i))?;
            }
            Ok(())
        }
        Value::Tagged(t) => apply_merge(&mut t.value, path),
        _ => Ok(()),
    }
}

/// A merge source without its tag; `None` for a `!reset` one, which merges nothing.
fn untag(v: Value) -> Option<Value> {
    match v {
        Value::Tagged(t) if t.tag == "!reset" => None,
        Value::Tagged(t) => untag(t.value),
        other => Some(other),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a sequence",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// What a quoted `<<` key is renamed to while serde_yaml parses: a private-use character no
/// compose key contains.
const HIDDEN_MERGE_KEY: &str = "\u{e000}<<";

/// The source with every quoted `"<<"` / `'<<'` mapping key renamed to [`HIDDEN_MERGE_KEY`],
/// or `None` when there is none (the common case, found without parsing). A mapping with both
/// a quoted and a plain `<<` has a duplicate key, as go-yaml says.
fn hide_quoted_merge_keys(content: &str) -> Result<Option<String>, YamlError> {
    use yaml_rust2::scanner::TScalarStyle;
    if !content.contains("\"<<\"") && !content.contains("'<<'") {
        return Ok(None);
    }
    // Mapping frames alternate key, value; only a scalar in key position is a key. The
    // second member: whether the mapping already has a `<<` key.
    let mut expecting_key: Vec<(Option<bool>, bool)> = Vec::new();
    let mut at = Vec::new();
    let mut parser = Parser::new_from_str(content);
    while let Ok((ev, mark)) = parser.next_token() {
        let is_key = matches!(expecting_key.last(), Some((Some(true), _)));
        let mut completed = false;
        match ev {
            Event::StreamEnd => break,
            Event::MappingStart(..) => {
                expecting_key.push((Some(true), false));
                continue;
            }
            Event::SequenceStart(..) => {
                expecting_key.push((None, false));
                continue;
            }
            Event::MappingEnd | Event::SequenceEnd => {
                expecting_key.pop();
                completed = true;
            }
            Event::Scalar(text, style, ..) => {
                if is_key && text == "<<" {
                    if let Some((_, seen)) = expecting_key.last_mut() {
                        if *seen {
                            return Err(YamlError::Syntax {
                                message: "duplicate entry with key \"<<\"".to_string(),
                                location: Some(Location {
                                    line: mark.line(),
                                    column: mark.col() + 1,
                                }),
                            });
                        }
                        *seen = true;
                    }
                    if style != TScalarStyle::Plain {
                        at.push(mark.index());
                    }
                }
                completed = true;
            }
            Event::Alias(..) => completed = true,
            _ => {}
        }
        if completed {
            if let Some((Some(k), _)) = expecting_key.last_mut() {
                *k = !*k;
            }
        }
    }
    if at.is_empty() {
        return Ok(None);
    }
    let mut out = String::with_capacity(content.len() + at.len() * 3);
    let mut last = 0;
    for i in at {
        // The marker is the opening quote; anything else (an escape such as "\x3c<") is left.
        let quoted = content
            .get(i..)
            .is_some_and(|r| r.starts_with("\"<<\"") || r.starts_with("'<<'"));
        if !quoted || i < last {
            continue;
        }
        out.push_str(&content[last..=i]);
        out.push('\u{e000}');
        last = i + 1;
    }
    out.push_str(&content[last..]);
    Ok(Some(out))
}

/// Give hidden `<<` keys their name back, at every depth.
fn unhide_merge_keys(v: &mut Value) {
    match v {
        Value::Mapping(m) => {
            if let Some(val) = m.remove(HIDDEN_MERGE_KEY) {
                m.insert(Value::from("<<"), val);
            }
            for (_, child) in m.iter_mut() {
                unhide_merge_keys(child);
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(unhide_merge_keys),
        Value::Tagged(t) => unhide_merge_keys(&mut t.value),
        _ => {}
    }
}

/// A cheap test for a token such as ` 0440` before walking the whole file for octals.
fn has_octal_candidate(content: &str) -> bool {
    content.as_bytes().windows(3).any(|w| {
        matches!(w[0], b' ' | b'[' | b',' | b'-') && w[1] == b'0' && (b'0'..=b'7').contains(&w[2])
    })
}

/// Plain scalars written as YAML 1.1 octal integers (`0440`): docker compose's YAML parser
/// reads them as octal (file modes are written that way), serde_yaml as decimal.
fn octal_scalars(content: &str) -> Vec<(usize, TreePath, String, i64)> {
    use yaml_rust2::scanner::TScalarStyle;
    enum Frame {
        Map { key: Option<String> },
        Seq { index: usize },
    }
    let mut found = Vec::new();
    let mut parser = Parser::new_from_str(content);
    let mut stack: Vec<Frame> = Vec::new();
    let mut doc = 0usize;
    let mut started = false;
    let path_of = |stack: &[Frame]| {
        let mut p = TreePath::root();
        for f in stack {
            p = match f {
                Frame::Map { key: Some(k) } => p.key(k.clone()),
                Frame::Seq { index } => p.index(*index),
                Frame::Map { key: None } => p,
            };
        }
        p
    };
    // After a value completes, the enclosing collection moves to its next slot.
    fn advance(stack: &mut [Frame]) {
        match stack.last_mut() {
            Some(Frame::Map { key }) => *key = None,
            Some(Frame::Seq { index }) => *index += 1,
            None => {}
        }
    }
    while let Ok((ev, _)) = parser.next_token() {
        match ev {
            Event::StreamEnd => break,
            Event::DocumentStart => {
                if started {
                    doc += 1;
                }
                started = true;
                stack.clear();
            }
            Event::MappingStart(..) => stack.push(Frame::Map { key: None }),
            Event::SequenceStart(..) => stack.push(Frame::Seq { index: 0 }),
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                advance(&mut stack);
            }
            Event::Scalar(text, style, ..) => {
                if let Some(Frame::Map { key: key @ None }) = stack.last_mut() {
                    *key = Some(text);
                    continue;
                }
                let octal = style == TScalarStyle::Plain
                    && text.len() > 1
                    && text.starts_with('0')
                    && text.bytes().all(|c| (b'0'..=b'7').contains(&c));
                if octal {
                    if let Ok(n) = i64::from_str_radix(&text[1..], 8) {
                        found.push((doc, path_of(&stack), text.clone(), n));
                    }
                }
                advance(&mut stack);
            }
            Event::Alias(_) => advance(&mut stack),
            _ => {}
        }
    }
    found
}

/// The value at `path`, if the tree has one there. A key step into a sequence of strings
/// matches the item with that text (`depends_on: [db]` holds `depends_on.db`).
pub fn value_at<'a>(v: &'a Value, path: &TreePath) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path.segments() {
        cur = match (seg, cur) {
            (Seg::Key(k), Value::Mapping(m)) => m.get(k.as_str())?,
            (Seg::Key(k), Value::Sequence(s)) => s.iter().find(|i| i.as_str() == Some(k))?,
            (Seg::Index(i), Value::Sequence(s)) => s.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// The value at `path`, if the tree has one there.
fn value_at_mut<'a>(v: &'a mut Value, path: &TreePath) -> Option<&'a mut Value> {
    let mut cur = v;
    for seg in path.segments() {
        cur = match (seg, cur) {
            (Seg::Key(k), Value::Mapping(m)) => m.get_mut(k.as_str())?,
            (Seg::Index(i), Value::Sequence(s)) => s.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn syntax_error(e: serde_yaml::Error) -> YamlError {
    let location = e.location().map(|l| Location {
        line: l.line(),
        column: l.column(),
    });
    // serde_yaml appends " at line L column C" to its messages; we print the location ourselves.
    let mut message = e.to_string();
    if let Some(i) = message.find(" at line ") {
        message.truncate(i);
    }
    YamlError::Syntax { message, location }
}

/// Compose keys are strings; YAML allows `1: x` or `[a]: x`, which docker compose rejects.
/// Plain scalars that YAML typed as numbers or booleans are accepted as their text, as Go's
/// decoder does for map keys it stringifies (`8080: ...` under `ports` is not a thing, but
/// `"1"` service names are).
fn check_keys(v: &Value, path: &TreePath) -> Result<(), YamlError> {
    match v {
        Value::Mapping(m) => {
            for (k, val) in m {
                let key = match k {
                    Value::String(s) => s.clone(),
                    other => {
                        return Err(YamlError::NonStringKey {
                            path: path.clone(),
                            key: scalar_text(other).unwrap_or_else(|| format!("{other:?}")),
                        })
                    }
                };
                check_keys(val, &path.key(key))?;
            }
            Ok(())
        }
        Value::Sequence(s) => {
            for (i, item) in s.iter().enumerate() {
                check_keys(item, &path.index(i))?;
            }
            Ok(())
        }
        Value::Tagged(t) => check_keys(&t.value, path),
        _ => Ok(()),
    }
}

/// The text of a scalar as a string, the way compose treats scalars given where a string is
/// expected (`8080` → `"8080"`, `true` → `"true"`).
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(number_text(n)),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => None,
        Value::Tagged(t) => scalar_text(&t.value),
        _ => None,
    }
}

/// A number as compose-go prints a YAML number it stringifies (Go's `fmt.Sprint`): integers as
/// they are, floats in their shortest form with an exponent from 1e+06 up and below 1e-04
/// (`1e6` → `1e+06`, `3.0` → `3`, `.inf` → `+Inf`).
pub fn number_text(n: &serde_yaml::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() => go_float(f),
        _ => n.to_string(),
    }
}

fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits, as Go's shortest formatting does.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        format!("{f}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    }
}

/// Look a key up in a mapping by string.
pub fn get<'a>(m: &'a Mapping, key: &str) -> Option<&'a Value> {
    m.get(Value::String(key.to_string()))
}

/// Where `path` stands in document `doc` of `content`: the position of the last key (or
/// sequence item) of the path that exists in the source. `None` when the source does not parse
/// or the document is missing.
pub fn locate(content: &str, doc: usize, path: &TreePath) -> Option<Location> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    let mut parser = Parser::new_from_str(content);
    let mut docs_seen = 0usize;
    // Skip to the start of the wanted document.
    loop {
        let (ev, _) = parser.next_token().ok()?;
        match ev {
            Event::DocumentStart => {
                if docs_seen == doc {
                    break;
                }
                docs_seen += 1;
            }
            Event::StreamEnd => return None,
            _ => {}
        }
    }
    let segs = path.segments();
    let mut best: Option<Location> = None;
    // Descend: at each level, find the child named by the next segment.
    let (ev, mark) = parser.next_token().ok()?;
    let mut current = ev;
    let mut current_mark = Location {
        line: mark.line(),
        column: mark.col() + 1,
    };
    for seg in segs {
        match (&current, seg) {
            (Event::MappingStart(..), Seg::Key(want)) => {
                let mut found = None;
                loop {
                    let (kev, kmark) = parser.next_token().ok()?;
                    match kev {
                        Event::MappingEnd => break,
                        Event::Scalar(ref k, ..) => {
                            let at = Location {
                                line: kmark.line(),
                                column: kmark.col() + 1,
                            };
                            if k == want {
                                let (vev, vmark) = parser.next_token().ok()?;
                                found = Some((
                                    at,
                                    vev,
                                    Location {
                                        line: vmark.line(),
                                        column: vmark.col() + 1,
                                    },
                                ));
                                break;
                            }
                            skip_node(&mut parser)?;
                        }
                        other => {
                            // A complex key: skip it and its value.
                            skip_started(&mut parser, &other)?;
                            skip_node(&mut parser)?;
                        }
                    }
                }
                let (key_at, vev, vmark) = found?;
                best = Some(key_at);
                current = vev;
                current_mark = vmark;
            }
            (Event::SequenceStart(..), Seg::Index(want)) => {
                let mut i = 0usize;
                let mut found = None;
                loop {
                    let (iev, imark) = parser.next_token().ok()?;
                    if iev == Event::SequenceEnd {
                        break;
                    }
                    if i == *want {
                        found = Some((
                            iev,
                            Location {
                                line: imark.line(),
                                column: imark.col() + 1,
                            },
                        ));
                        break;
                    }
                    skip_started(&mut parser, &iev)?;
                    i += 1;
                }
                let (iev, at) = found?;
                best = Some(at);
                current = iev;
                current_mark = at;
            }
            (Event::SequenceStart(..), Seg::Key(want)) => {
                // A list of names (`depends_on: [db]`): the item with that text.
                loop {
                    let (iev, imark) = parser.next_token().ok()?;
                    match iev {
                        Event::SequenceEnd => return best.or(Some(current_mark)),
                        Event::Scalar(ref text, ..) if text == want => {
                            return Some(Location {
                                line: imark.line(),
                                column: imark.col() + 1,
                            });
                        }
                        other => skip_started(&mut parser, &other)?,
                    }
                }
            }
            _ => return best.or(Some(current_mark)),
        }
    }
    best.or(Some(current_mark))
}

/// The position of the first key that repeats a key of the same mapping.
fn find_duplicate_key(content: &str) -> Option<Location> {
    let mut parser = Parser::new_from_str(content);
    // One frame per open collection: for mappings, the keys seen and whether a key comes next.
    enum Frame {
        Map {
            keys: std::collections::HashSet<String>,
            expect_key: bool,
        },
        Seq,
    }
    let mut stack: Vec<Frame> = Vec::new();
    loop {
        let (ev, mark) = parser.next_token().ok()?;
        let at_key = matches!(
            stack.last(),
            Some(Frame::Map {
                expect_key: true,
                ..
            })
        );
        match &ev {
            Event::StreamEnd => return None,
            Event::Scalar(text, ..) if at_key => {
                if let Some(Frame::Map { keys, .. }) = stack.last_mut() {
                    if !keys.insert(text.clone()) {
                        return Some(Location {
                            line: mark.line(),
                            column: mark.col() + 1,
                        });
                    }
                }
            }
            _ => {}
        }
        let completed = match ev {
            Event::MappingStart(..) => {
                stack.push(Frame::Map {
                    keys: Default::default(),
                    expect_key: true,
                });
                false
            }
            Event::SequenceStart(..) => {
                stack.push(Frame::Seq);
                false
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                true
            }
            Event::Scalar(..) | Event::Alias(..) => true,
            _ => false,
        };
        // A completed node is a key or a value of the enclosing mapping: flip between the two.
        if completed {
            if let Some(Frame::Map { expect_key, .. }) = stack.last_mut() {
                *expect_key = !*expect_key;
            }
        }
    }
}

/// Skip the next complete node.
fn skip_node<T: Iterator<Item = char>>(parser: &mut Parser<T>) -> Option<()> {
    let (ev, _) = parser.next_token().ok()?;
    skip_started(parser, &ev)
}

/// Skip the rest of a node whose first event was `ev`.
fn skip_started<T: Iterator<Item = char>>(parser: &mut Parser<T>, ev: &Event) -> Option<()> {
    let mut depth = match ev {
        Event::MappingStart(..) | Event::SequenceStart(..) => 1usize,
        _ => 0,
    };
    while depth > 0 {
        let (ev, _) = parser.next_token().ok()?;
        match ev {
            Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
            Event::MappingEnd | Event::SequenceEnd => depth -= 1,
            Event::StreamEnd => return None,
            _ => {}
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_collections_are_refused_at_once_and_nothing_else_is() {
        let deep = |n: usize| format!("x: {}{}\n", "[".repeat(n), "]".repeat(n));
        // 30,000 deep: refused by the scan (libyaml took seconds), where it passes 128.
        let e = parse_documents(&deep(30_000)).unwrap_err();
        assert_eq!(e.to_string(), "recursion limit exceeded");
        assert_eq!(
            e.location(),
            Some(Location {
                line: 1,
                column: 4 + 128
            })
        );
        let mixed = format!("x: {}1{}\n", "{a: [".repeat(100), "]}".repeat(100));
        assert!(flow_too_deep(&mixed).is_some());
        // What the scan must not count.
        for fine in [
            deep(100),
            format!("x: '{}'\n", "[".repeat(500)),
            format!("x: \"{}\\\" {}\"\n", "[".repeat(300), "{".repeat(300)),
            format!("x: a{}\n", "[".repeat(500)),
            format!("x: |\n  {}\n  {}\ny: 1\n", "[".repeat(300), "{".repeat(300)),
            format!("x: >-\n  {}\n", "[".repeat(300)),
            format!("x: 1 # {}\n", "[".repeat(300)),
            "x: [it's, '[]\n".to_string(),
        ] {
            assert_eq!(flow_too_deep(&fine), None, "{fine}");
        }
    }

    #[test]
    fn parses_documents_and_applies_merge_keys() {
        let docs = parse_documents(
            "x-base: &base\n  image: busybox\n  environment: {A: '1'}\nservices:\n  web:\n    <<: *base\n    command: true\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 1);
        let web = &docs[0]["services"]["web"];
        assert_eq!(web["image"], Value::String("busybox".into()));
        assert_eq!(web["command"], Value::Bool(true));
    }

    #[test]
    fn merge_keys_nest_chain_and_keep_first_wins() {
        let docs = parse_documents(
            "x-a: &a {restart: always, environment: {A: a, <<: {Z: z}}}\n\
             x-b: &b {<<: *a, image: busybox}\n\
             x-c: &c {user: c, image: other}\n\
             services:\n  s1: {<<: *b}\n  s2: {<<: [*b, *c], restart: 'no'}\n  s3: {<<: [*c, *b]}\n",
        )
        .unwrap();
        let s = &docs[0]["services"];
        assert_eq!(s["s1"]["restart"], Value::from("always"));
        assert_eq!(s["s1"]["image"], Value::from("busybox"));
        assert_eq!(s["s1"]["environment"]["Z"], Value::from("z"));
        assert!(s["s1"].get("<<").is_none());
        assert_eq!(s["s2"]["restart"], Value::from("no"));
        assert_eq!(s["s2"]["image"], Value::from("busybox"));
        assert_eq!(s["s2"]["user"], Value::from("c"));
        assert_eq!(s["s3"]["image"], Value::from("other"));
    }

    #[test]
    fn merge_of_a_scalar_is_an_error_and_reset_merges_nothing() {
        for bad in ["1", "null", "[1]", "[[{a: 1}]]"] {
            let err = parse_documents(&format!("services:\n  s:\n    <<: {bad}\n")).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("services.s.<<: map merge requires"),
                "{bad}: {err}"
            );
        }
        let docs = parse_documents(
            "services:\n  s:\n    <<: [!reset {user: a}, !override {restart: always}]\n",
        )
        .unwrap();
        assert!(docs[0]["services"]["s"].get("user").is_none());
        assert_eq!(docs[0]["services"]["s"]["restart"], Value::from("always"));
    }

    #[test]
    fn a_quoted_merge_key_is_an_ordinary_key() {
        let docs = parse_documents(
            "services:\n  s:\n    labels: {\"<<\": q, x: y}\n    environment: {'<<': e}\n    <<: {user: u}\n",
        )
        .unwrap();
        let s = &docs[0]["services"]["s"];
        assert_eq!(s["labels"]["<<"], Value::from("q"));
        assert_eq!(s["environment"]["<<"], Value::from("e"));
        assert_eq!(s["user"], Value::from("u"));
        assert!(s.get("<<").is_none());
        let err = parse_documents("a:\n  \"<<\": 1\n  <<: {b: 1}\n").unwrap_err();
        assert!(err.to_string().contains("duplicate entry"), "{err}");
        assert_eq!(err.location().map(|l| (l.line, l.column)), Some((3, 3)));
    }

    #[test]
    fn keeps_reset_and_override_tags() {
        let docs = parse_documents("services:\n  web:\n    ports: !reset []\n").unwrap();
        match &docs[0]["services"]["web"]["ports"] {
            Value::Tagged(t) => assert_eq!(t.tag, "!reset"),
            other => panic!("expected a tagged value, got {other:?}"),
        }
    }

    #[test]
    fn yaml_1_1_octals_are_read_as_octal() {
        let docs = parse_documents(
            "secrets:\n  - source: s\n    mode: 0440\n    uid: '0440'\n    gid: 10\n",
        )
        .unwrap();
        assert_eq!(docs[0]["secrets"][0]["mode"], Value::from(0o440));
        assert_eq!(docs[0]["secrets"][0]["uid"], Value::from("0440"));
        assert_eq!(docs[0]["secrets"][0]["gid"], Value::from(10));
    }

    #[test]
    fn empty_documents_are_skipped() {
        assert!(parse_documents("").unwrap().is_empty());
        assert!(parse_documents("# just a comment\n").unwrap().is_empty());
        assert_eq!(parse_documents("a: 1\n---\nb: 2\n").unwrap().len(), 2);
    }

    #[test]
    fn syntax_errors_carry_a_location() {
        let err = parse_documents("services:\n\tweb:\n    image: x\n").unwrap_err();
        let loc = err.location().expect("a location");
        assert_eq!(loc.line, 2);
        let err = parse_documents("services:\n  web:\n    image: [x\n").unwrap_err();
        assert!(err.location().is_some());
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let err = parse_documents("services:\n  web:\n    image: a\n    image: b\n").unwrap_err();
        assert!(err.to_string().contains("duplicate"), "{err}");
        assert_eq!(err.location().map(|l| l.line), Some(4));
    }

    #[test]
    fn non_string_keys_are_rejected() {
        let err = parse_documents("services:\n  [a, b]: {}\n").unwrap_err();
        assert!(matches!(err, YamlError::NonStringKey { .. }), "{err:?}");
    }

    #[test]
    fn locate_finds_keys_and_items() {
        let src = "name: x\nservices:\n  web:\n    image: busybox\n    ports:\n      - 80\n      - \"8080:80\"\n    wrongField: 1\n";
        let at = |p: &str| locate(src, 0, &TreePath::parse(p)).unwrap();
        assert_eq!(
            at("services.web.wrongField"),
            Location { line: 8, column: 5 }
        );
        assert_eq!(at("services.web.ports[1]"), Location { line: 7, column: 9 });
        assert_eq!(at("services.web.image"), Location { line: 4, column: 5 });
        assert_eq!(
            locate("a:\n  deps: [x, y]\n", 0, &TreePath::parse("a.deps.y")),
            Some(Location {
                line: 2,
                column: 13
            })
        );
        // A path that goes deeper than the source: the deepest existing key.
        assert_eq!(
            at("services.web.image.nope"),
            Location { line: 4, column: 5 }
        );
    }

    #[test]
    fn locate_in_second_document() {
        let src = "services:\n  a: {}\n---\nservices:\n  b:\n    bad: 1\n";
        let loc = locate(src, 1, &TreePath::parse("services.b.bad")).unwrap();
        assert_eq!(loc.line, 6);
    }

    #[test]
    fn numbers_print_as_go_prints_them() {
        let text = |src: &str| {
            let v: Value = serde_yaml::from_str(src).unwrap();
            scalar_text(&v).unwrap()
        };
        assert_eq!(text("1e6"), "1e+06");
        assert_eq!(text("1e5"), "100000");
        assert_eq!(text("123456789.0"), "1.23456789e+08");
        assert_eq!(text("1234567.5"), "1.2345675e+06");
        assert_eq!(text("0.0001"), "0.0001");
        assert_eq!(text("0.00001"), "1e-05");
        assert_eq!(text("1.5e300"), "1.5e+300");
        assert_eq!(text("3.0"), "3");
        assert_eq!(text("1.50"), "1.5");
        assert_eq!(text("-0.0"), "-0");
        assert_eq!(text(".inf"), "+Inf");
        assert_eq!(text("-.inf"), "-Inf");
        assert_eq!(text(".nan"), "NaN");
        assert_eq!(text("0x1F"), "31");
        assert_eq!(text("-12"), "-12");
    }
}
