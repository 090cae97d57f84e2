//! The line-level parser: parser directives, comments, line continuations, heredocs, and each
//! instruction's arguments split as BuildKit's `frontend/dockerfile/parser` splits them (its
//! `Node` tree, flattened). Arguments stay unexpanded and, for ENV/LABEL/ARG, quoted.

use std::sync::LazyLock;

use regex::Regex;

use super::limits::{MAX_FLAGS, MAX_HEREDOCS, MAX_INSTRUCTIONS, MAX_LINE, MAX_LOGICAL_LINE};
use super::shell::Lex;
use super::{Directives, Heredoc, Problem, Warning};

/// One instruction as the line parser sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    /// The instruction name as written (`run`, `RUN`, `Run`).
    pub value: String,
    /// The logical line (continuations joined, comments removed), untrimmed.
    pub original: String,
    /// `--name=value` words before the arguments, quotes and escapes processed.
    pub flags: Vec<String>,
    pub args: Vec<String>,
    /// The arguments were a JSON array.
    pub json: bool,
    /// ONBUILD's trigger instruction.
    pub sub: Option<Box<Node>>,
    pub heredocs: Vec<Heredoc>,
    pub start_line: usize,
    pub end_line: usize,
    /// 1-based column (in characters) of the instruction name on its first line.
    pub column: usize,
}

pub(crate) struct Ast {
    pub nodes: Vec<Node>,
    pub directives: Directives,
    pub warnings: Vec<Warning>,
}

static DIRECTIVE: LazyLock<Regex> = LazyLock::new(|| {
    // Go's `\s` is ASCII-only, hence the explicit class.
    #[allow(clippy::unwrap_used)]
    Regex::new(r"^([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*$").unwrap()
});

static HEREDOC: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)]
    Regex::new(r"^([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)$").unwrap()
});

/// The parser-directive state: directives only at the very top, each at most once.
struct DirectiveParser {
    done: bool,
    escape: char,
    directives: Directives,
    seen: Vec<String>,
}

impl DirectiveParser {
    /// Looks at one (left-trimmed) line; an error for a repeated directive or a bad escape.
    fn line(&mut self, line: &str) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        let Some(rest) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(());
        };
        let rest = rest.trim_start();
        let Some(caps) = DIRECTIVE.captures(rest) else {
            self.done = true;
            return Ok(());
        };
        let (Some(k), Some(v)) = (caps.get(1), caps.get(2)) else {
            self.done = true;
            return Ok(());
        };
        let key = k.as_str().to_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(());
        }
        if self.seen.contains(&key) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        self.seen.push(key.clone());
        let value = v.as_str().to_string();
        match key.as_str() {
            "escape" => {
                self.escape = match value.as_str() {
                    "`" => '`',
                    "\\" => '\\',
                    _ => {
                        return Err(format!(
                            "invalid escape token '{value}' does not match ` or \\"
                        ))
                    }
                };
                self.directives.escape = self.escape;
            }
            "syntax" => self.directives.syntax = Some(value),
            _ => self.directives.check = Some(value),
        }
        Ok(())
    }
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// BuildKit's `processLine`: newline trimmed, optionally left-trimmed, fed to the directive
/// parser, and emptied when it is a comment.
fn process_line<'a>(
    d: &mut DirectiveParser,
    raw: &'a str,
    strip_left: bool,
) -> Result<&'a str, String> {
    let mut token = trim_newline(raw);
    if strip_left {
        token = token.trim_start();
    }
    d.line(token)?;
    Ok(if is_comment(token) { "" } else { token })
}

/// Removes a trailing line-continuation escape (plus spaces/tabs after it); `true` when the
/// line does not continue. An escape preceded by another escape does not continue the line.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some("") => ("", false),
        Some(before) if !before.ends_with(escape) => (before, false),
        _ => (line, true),
    }
}

/// Whitespace as Go's `reWhitespace` (`[\t\v\f\r ]`), which splits arguments.
fn is_ascii_ws(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// Splits at the first run of ASCII whitespace, as `reWhitespace.Split(s, 2)`.
fn split2(s: &str) -> (&str, Option<&str>) {
    match s.find(is_ascii_ws) {
        None => (s, None),
        Some(i) => {
            let rest = s[i..].trim_start_matches(is_ascii_ws);
            (&s[..i], Some(rest))
        }
    }
}

/// `reWhitespace.Split(s, -1)`.
fn split_all(s: &str) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    s.split(is_ascii_ws)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect::<Vec<_>>()
}

pub(crate) fn parse(source: &str) -> Result<Ast, Problem> {
    let lines: Vec<&str> = source.split_inclusive('\n').collect();
    for (i, l) in lines.iter().enumerate() {
        if l.len() > MAX_LINE + 1 || (l.len() > MAX_LINE && !l.ends_with('\n')) {
            return Err(Problem::new(
                i + 1,
                1,
                format!("dockerfile line greater than max allowed size of {MAX_LINE}"),
            ));
        }
    }
    let mut d = DirectiveParser {
        done: false,
        escape: '\\',
        directives: Directives::default(),
        seen: Vec::new(),
    };
    let mut nodes: Vec<Node> = Vec::new();
    let mut warnings = Vec::new();
    let mut heredoc_count = 0usize;
    let mut current = 0usize;
    let mut i = 0usize;
    while i < lines.len() {
        let mut raw = lines[i];
        i += 1;
        if current == 0 {
            raw = raw.strip_prefix('\u{feff}').unwrap_or(raw);
        }
        let processed =
            process_line(&mut d, raw, true).map_err(|m| Problem::new(current + 1, 1, m))?;
        current += 1;
        let start_line = current;
        let column = raw.chars().take_while(|c| c.is_whitespace()).count() + 1;
        let (first, mut end) = trim_continuation(processed, d.escape);
        if end && first.is_empty() {
            continue;
        }
        let mut buf = first.to_string();
        let mut has_empty = false;
        while !end && i < lines.len() {
            let raw = lines[i];
            i += 1;
            let processed =
                process_line(&mut d, raw, false).map_err(|m| Problem::new(current + 1, 1, m))?;
            current += 1;
            if is_comment(raw) {
                continue;
            }
            if processed.trim_start().is_empty() {
                has_empty = true;
                continue;
            }
            let (part, e) = trim_continuation(processed, d.escape);
            end = e;
            buf.push_str(part);
            if buf.len() > MAX_LOGICAL_LINE {
                return Err(Problem::new(
                    start_line,
                    column,
                    format!("instruction longer than {MAX_LOGICAL_LINE} bytes"),
                ));
            }
        }
        if has_empty {
            warnings.push(Warning {
                rule: "NoEmptyContinuation".into(),
                message: "Empty continuation line".into(),
                url: "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/".into(),
                line: current,
            });
        }
        let mut node =
            node_from_line(&buf, d.escape, 0).map_err(|m| Problem::new(start_line, column, m))?;
        if can_contain_heredoc(&node) && buf.contains("<<") {
            let docs = heredocs_from_line(&buf).map_err(|m| Problem::new(start_line, column, m))?;
            for mut doc in docs {
                heredoc_count += 1;
                if heredoc_count > MAX_HEREDOCS {
                    return Err(Problem::new(
                        start_line,
                        column,
                        format!("more than {MAX_HEREDOCS} heredocs"),
                    ));
                }
                let mut terminated = false;
                let mut content = String::new();
                while i < lines.len() {
                    let raw = lines[i];
                    i += 1;
                    current += 1;
                    let mut candidate = trim_newline(raw);
                    if doc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(raw);
                }
                if !terminated {
                    return Err(Problem::new(
                        start_line,
                        column,
                        format!("unterminated heredoc (no line {:?} after it)", doc.name),
                    ));
                }
                doc.content = content;
                node.heredocs.push(doc);
            }
        }
        node.start_line = start_line;
        node.end_line = current;
        node.column = column;
        nodes.push(node);
        if nodes.len() > MAX_INSTRUCTIONS {
            return Err(Problem::new(
                start_line,
                column,
                format!("more than {MAX_INSTRUCTIONS} instructions"),
            ));
        }
    }
    if nodes.is_empty() {
        return Err(Problem::new(
            current.max(1),
            1,
            "file with no instructions".to_string(),
        ));
    }
    Ok(Ast {
        nodes,
        directives: d.directives,
        warnings,
    })
}

fn can_contain_heredoc(node: &Node) -> bool {
    let node = match &node.sub {
        Some(sub) if node.value.eq_ignore_ascii_case("onbuild") => sub,
        _ => node,
    };
    matches!(node.value.to_lowercase().as_str(), "add" | "copy" | "run") && !node.json
}

/// Splits a logical line into instruction, flags and arguments, and the arguments as that
/// instruction wants them. `depth` counts ONBUILD nesting.
pub(crate) fn node_from_line(line: &str, escape: char, depth: usize) -> Result<Node, String> {
    let (cmd, rest) = split2(line.trim());
    let (flags, args) = match rest {
        Some(rest) => {
            let (args, flags) = extract_flags(rest, escape)?;
            (flags, args.trim().to_string())
        }
        None => (Vec::new(), String::new()),
    };
    let mut node = Node {
        value: cmd.to_string(),
        original: line.to_string(),
        flags,
        args: Vec::new(),
        json: false,
        sub: None,
        heredocs: Vec::new(),
        start_line: 0,
        end_line: 0,
        column: 1,
    };
    match cmd.to_lowercase().as_str() {
        "add" | "copy" | "volume" => (node.args, node.json) = maybe_json_to_list(&args)?,
        "arg" => node.args = parse_words(&args, escape),
        "cmd" | "entrypoint" | "run" | "shell" => (node.args, node.json) = maybe_json(&args)?,
        "env" => node.args = name_val(&args, "ENV", escape)?,
        "label" => node.args = name_val(&args, "LABEL", escape)?,
        "expose" | "from" => node.args = split_all(&args),
        "healthcheck" => (node.args, node.json) = health_config(&args)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => {
            if !args.is_empty() {
                node.args = vec![args];
            }
        }
        "onbuild" => {
            // ONBUILD ONBUILD is refused later; going no deeper bounds the recursion.
            if !args.is_empty() && depth < 2 {
                node.sub = Some(Box::new(node_from_line(&args, escape, depth + 1)?));
            }
        }
        // Unknown instructions are reported when the nodes become instructions.
        _ => node.args = vec![String::new()],
    }
    Ok(node)
}

/// BuildKit's `extractBuilderFlags`: leading `--flag` words (quotes and escapes processed), up
/// to the first word without `--` or a lone `--`. Returns the rest of the line and the flags.
fn extract_flags(line: &str, escape: char) -> Result<(&str, Vec<String>), String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let n = chars.len();
    let at = |p: usize| chars.get(p).map_or(line.len(), |c| c.0);
    let ch_at = |p: usize| chars.get(p).map_or('\0', |c| c.1);
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut buf = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut p = 0;
    while p <= n {
        if words.len() > MAX_FLAGS {
            return Err(format!("more than {MAX_FLAGS} flags"));
        }
        let ch = ch_at(p);
        if phase == Phase::Spaces {
            if p == n {
                break;
            }
            if ch.is_whitespace() {
                p += 1;
                continue;
            }
            if ch != '-' || p + 1 == n || ch_at(p + 1) != '-' {
                return Ok((&line[at(p)..], words));
            }
            phase = Phase::Word;
        }
        if p == n {
            if buf != "--" && (blank_ok || !buf.is_empty()) {
                words.push(buf);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if buf == "--" {
                    return Ok((&line[at(p)..], words));
                }
                if blank_ok || !buf.is_empty() {
                    words.push(std::mem::take(&mut buf));
                }
                buf.clear();
                blank_ok = false;
                p += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                p += 1;
                continue;
            }
            let mut c = ch;
            if ch == escape {
                if p + 1 == n {
                    p += 1;
                    continue;
                }
                p += 1;
                c = ch_at(p);
            }
            buf.push(c);
            p += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
            p += 1;
            continue;
        }
        let mut c = ch;
        if ch == escape {
            if p + 1 == n {
                phase = Phase::Word;
                p += 1;
                continue;
            }
            p += 1;
            c = ch_at(p);
        }
        buf.push(c);
        p += 1;
    }
    Ok(("", words))
}

/// BuildKit's `parseWords`: whitespace-separated words, quotes and escapes kept in the word
/// (they are processed at expansion time).
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let n = chars.len();
    let ch_at = |p: usize| chars.get(p).copied().unwrap_or('\0');
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut buf = String::new();
    let mut p = 0;
    while p <= n {
        let ch = ch_at(p);
        if phase == Phase::Spaces {
            if p == n {
                break;
            }
            if ch.is_whitespace() {
                p += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if p == n {
            if blank_ok || !buf.is_empty() {
                words.push(buf);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !buf.is_empty() {
                    words.push(std::mem::take(&mut buf));
                }
                blank_ok = false;
                p += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            let mut c = ch;
            if ch == escape {
                if p + 1 == n {
                    p += 1;
                    continue;
                }
                // Outside quotes an escape and the next character are both kept, even a quote.
                buf.push(ch);
                p += 1;
                c = ch_at(p);
            }
            buf.push(c);
            p += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
        }
        let mut c = ch;
        // The escape is special except in single quotes.
        if ch == escape && quote != '\'' {
            if p + 1 == n {
                phase = Phase::Word;
                p += 1;
                continue;
            }
            p += 1;
            buf.push(ch);
            c = ch_at(p);
        }
        buf.push(c);
        p += 1;
    }
    words
}

/// ENV and LABEL: `k=v ...` (each word split at its first `=`) or the legacy `k v`; args come
/// in threes: key, value, and `=` or `""` for the legacy form.
fn name_val(rest: &str, key: &str, escape: char) -> Result<Vec<String>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let (k, v) = split2(rest);
        let Some(v) = v else {
            return Err(format!("{key} must have two arguments"));
        };
        return Ok(vec![k.to_string(), v.to_string(), String::new()]);
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for w in &words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                super::go_quote(w)
            ));
        };
        out.extend([k.to_string(), v.to_string(), "=".to_string()]);
    }
    Ok(out)
}

enum JsonError {
    NotJson,
    NotStrings,
}

const NOT_STRINGS: &str = "when using JSON array syntax, arrays must be comprised of strings only";

fn parse_json(rest: &str) -> Result<Vec<String>, JsonError> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Err(JsonError::NotJson);
    }
    let values: Vec<serde_json::Value> =
        serde_json::from_str(rest).map_err(|_| JsonError::NotJson)?;
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(JsonError::NotStrings),
        })
        .collect()
}

/// A JSON array (exec form) or, when it is not valid JSON, the whole text (shell form).
fn maybe_json(rest: &str) -> Result<(Vec<String>, bool), String> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match parse_json(rest) {
        Ok(v) => Ok((v, true)),
        Err(JsonError::NotStrings) => Err(NOT_STRINGS.to_string()),
        Err(JsonError::NotJson) => Ok((vec![rest.to_string()], false)),
    }
}

/// A JSON array or whitespace-separated words.
fn maybe_json_to_list(rest: &str) -> Result<(Vec<String>, bool), String> {
    match parse_json(rest) {
        Ok(v) => Ok((v, true)),
        Err(JsonError::NotStrings) => Err(NOT_STRINGS.to_string()),
        Err(JsonError::NotJson) => Ok((split_all(rest), false)),
    }
}

/// HEALTHCHECK: a type word (`CMD`, `NONE`) then a command as CMD takes it.
fn health_config(rest: &str) -> Result<(Vec<String>, bool), String> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let typ = &rest[..sep];
    let cmd = rest[sep..].trim_start();
    let (args, json) = maybe_json(cmd)?;
    let mut out = vec![typ.to_string()];
    out.extend(args);
    Ok((out, json))
}

fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let lex = Lex {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset_env: true,
        ..Lex::new('\\')
    };
    let words = match lex.process(line, &|_| None) {
        Ok(p) => p.words,
        Err(_) => Vec::new(),
    };
    let mut docs = Vec::new();
    for w in words {
        if let Some(doc) = parse_heredoc(&w)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// A heredoc word (`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`), or `None` when `src` is not one.
/// Any quoting in the delimiter turns expansion of the body off.
pub(crate) fn parse_heredoc(src: &str) -> Result<Option<Heredoc>, String> {
    // Most words are not heredocs: no regex (compiled on first use) for them.
    if !src.contains("<<") {
        return Ok(None);
    }
    let Some(caps) = HEREDOC.captures(src) else {
        return Ok(None);
    };
    let fd = caps
        .get(1)
        .and_then(|m| m.as_str().parse::<u32>().ok())
        .unwrap_or(0);
    let chomp = caps.get(2).is_some_and(|m| m.as_str() == "-");
    let rest = caps.get(3).map_or("", |m| m.as_str());
    if rest.is_empty() {
        return Ok(None);
    }
    let lex = Lex {
        skip_unset_env: true,
        ..Lex::new('\\')
    };
    let words = lex
        .process(rest, &|_| None)
        .map_err(|e| e.to_string())?
        .words;
    let [word] = words.as_slice() else {
        return Ok(None);
    };
    let raw = Lex {
        raw_quotes: true,
        ..lex
    }
    .process(rest, &|_| None)
    .map_err(|e| e.to_string())?
    .words;
    let [raw_word] = raw.as_slice() else {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    };
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    Ok(Some(Heredoc {
        name: word.clone(),
        content: String::new(),
        expand: quotes(word) == quotes(raw_word),
        chomp,
        fd,
    }))
}

#[cfg(test)]
impl Node {
    /// BuildKit's `Node.Dump`, for comparing with its parser test files.
    pub(crate) fn dump(&self) -> String {
        let mut s = self.value.to_lowercase();
        if !self.flags.is_empty() {
            let quoted: Vec<String> = self.flags.iter().map(|f| super::go_quote(f)).collect();
            s.push_str(&format!(" [{}]", quoted.join(" ")));
        }
        for a in &self.args {
            s.push(' ');
            s.push_str(&super::go_quote(a));
        }
        if let Some(sub) = &self.sub {
            s.push_str(&format!(" ({})", sub.dump()));
        }
        s.trim().to_string()
    }
}
