//! Shell-like word processing: quotes, escapes and `$VAR` expansion, as BuildKit's
//! `frontend/dockerfile/shell` (`ShellLex.ProcessWord` / `ProcessWords`) does it.
//!
//! The scanner is a port of BuildKit's, quirks included (they decide what ends up in images):
//! `\` inside double quotes escapes only `"`, `$` and the escape character; `${V:#p}` is an error;
//! `${V/p/r}` replaces the first match literally while `${V//p/r}` expands `$1`-style references in
//! `r` as Go's `Regexp.ReplaceAllString` does. One deliberate difference: BuildKit shares one
//! word buffer between nested `${...}` scans, so `ProcessWords("a${X:-b}")` loses the `a`; here
//! every scan has its own buffer.

use std::collections::BTreeSet;

use super::limits::{MAX_EXPANSION, MAX_EXPANSION_WORK, MAX_NESTING};

/// A variable lookup: `Some(value)` for a set variable (possibly empty), `None` for unset.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Why a word could not be processed (BuildKit's wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandFailure {
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    #[error("unexpected end of statement while looking for matching {0}")]
    Unterminated(char),
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// `${V?message}` / `${V:?message}` with `V` unset (or empty).
    #[error("{name}: {message}")]
    Required { name: String, message: String },
    #[error("invalid pattern ({pattern}) in substitution: {reason}")]
    InvalidPattern { pattern: String, reason: String },
    #[error("expansion result longer than {MAX_EXPANSION} bytes")]
    TooLong,
    #[error("more than {MAX_NESTING} nested ${{...}} or quotes")]
    TooDeep,
    #[error("expansion reads more than {MAX_EXPANSION_WORK} bytes of variable values")]
    TooMuchWork,
}

/// A word that could not be processed: the word and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {}: {reason}", super::go_quote(word))]
pub struct ExpandError {
    pub word: String,
    pub reason: ExpandFailure,
}

/// One processed word and the variables it referred to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expanded {
    pub value: String,
    /// Every variable name the word looked up, set or not (a step's cache key depends on these).
    pub used: BTreeSet<String>,
    /// The subset of `used` that was unset.
    pub unset: BTreeSet<String>,
}

/// Variable expansion with a Dockerfile's escape character, for the executor's dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expander {
    escape: char,
}

impl Expander {
    pub fn new(escape: char) -> Self {
        Expander { escape }
    }

    pub fn escape(&self) -> char {
        self.escape
    }

    /// One word as `ShellLex.ProcessWord`: quotes removed, escapes applied, variables expanded,
    /// whitespace kept.
    pub fn word(&self, s: &str, env: Env<'_>) -> Result<Expanded, ExpandError> {
        let out = Lex::new(self.escape).process(s, env)?;
        Ok(Expanded {
            value: out.result,
            used: out.used,
            unset: out.unset,
        })
    }

    /// Several words as `ShellLex.ProcessWords`: split on unquoted whitespace after expansion.
    pub fn words(
        &self,
        s: &str,
        env: Env<'_>,
    ) -> Result<(Vec<String>, BTreeSet<String>), ExpandError> {
        let out = Lex::new(self.escape).process(s, env)?;
        Ok((out.words, out.used))
    }

    /// A command line as BuildKit shows it in progress output (`processCmdEnv`): set variables
    /// expanded, unset ones and quotes left as written; the text unchanged if it cannot be
    /// processed.
    pub fn display(&self, s: &str, env: Env<'_>) -> String {
        let lex = Lex {
            raw_quotes: true,
            skip_unset_env: true,
            ..Lex::new(self.escape)
        };
        lex.process(s, env)
            .map(|p| p.result)
            .unwrap_or_else(|_| s.to_string())
    }

    /// A heredoc body as BuildKit expands `COPY <<EOF` contents: variables and `\` escapes
    /// only, quotes left alone (always with `\`, whatever the Dockerfile's escape character).
    pub fn heredoc(&self, s: &str, env: Env<'_>) -> Result<Expanded, ExpandError> {
        let lex = Lex {
            skip_process_quotes: true,
            ..Lex::new('\\')
        };
        let out = lex.process(s, env)?;
        Ok(Expanded {
            value: out.result,
            used: out.used,
            unset: out.unset,
        })
    }
}

/// The scanner's options, as BuildKit's `Lex` fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lex {
    pub escape: char,
    pub raw_quotes: bool,
    pub raw_escapes: bool,
    pub skip_process_quotes: bool,
    pub skip_unset_env: bool,
}

pub(crate) struct Processed {
    pub result: String,
    pub words: Vec<String>,
    pub used: BTreeSet<String>,
    pub unset: BTreeSet<String>,
}

impl Lex {
    pub fn new(escape: char) -> Self {
        Lex {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    pub fn process(&self, word: &str, env: Env<'_>) -> Result<Processed, ExpandError> {
        let mut sw = ShellWord {
            lex: *self,
            chars: word.chars().collect(),
            pos: 0,
            raw_escapes: self.raw_escapes,
            env,
            used: BTreeSet::new(),
            unset: BTreeSet::new(),
            depth: 0,
            work: 0,
        };
        let raw = sw.raw_escapes;
        match sw.stop_on(None, raw) {
            Ok((result, words)) => Ok(Processed {
                result,
                words,
                used: sw.used,
                unset: sw.unset,
            }),
            Err(reason) => Err(ExpandError {
                word: word.to_string(),
                reason,
            }),
        }
    }
}

struct ShellWord<'a> {
    lex: Lex,
    chars: Vec<char>,
    pos: usize,
    raw_escapes: bool,
    env: Env<'a>,
    used: BTreeSet<String>,
    unset: BTreeSet<String>,
    depth: usize,
    /// Bytes of variable values looked up so far (bounded by MAX_EXPANSION_WORK).
    work: usize,
}

#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }
    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(std::mem::take(&mut self.buf));
        }
        self.words
    }
}

fn check_len(s: &str) -> Result<(), ExpandFailure> {
    if s.len() > MAX_EXPANSION {
        return Err(ExpandFailure::TooLong);
    }
    Ok(())
}

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn enter(&mut self) -> Result<(), ExpandFailure> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(ExpandFailure::TooDeep);
        }
        Ok(())
    }

    /// Scans up to `stop` (consumed) or the end; returns the processed text and its words.
    fn stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ExpandFailure> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn stop_on_inner(
        &mut self,
        stop: Option<char>,
    ) -> Result<(String, Vec<String>), ExpandFailure> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let tmp = self.dollar()?;
                    result.push_str(&tmp);
                    words.add_string(&tmp);
                }
                '<' => {
                    let tmp = self.possible_heredoc();
                    result.push_str(&tmp);
                    words.add_raw_string(&tmp);
                }
                '\'' | '"' if !self.lex.skip_process_quotes => {
                    let tmp = if ch == '\'' {
                        self.single_quote()?
                    } else {
                        self.double_quote()?
                    };
                    result.push_str(&tmp);
                    words.add_raw_string(&tmp);
                }
                _ => {
                    self.next();
                    let mut ch = ch;
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // The escape character escapes anything but the end of the text.
                        match self.next() {
                            None => break,
                            Some(c) => {
                                ch = c;
                                words.add_raw_char(c);
                            }
                        }
                    } else {
                        words.add_char(ch);
                    }
                    result.push(ch);
                }
            }
            check_len(&result)?;
        }
        if let Some(stop) = stop {
            return Err(ExpandFailure::Unterminated(stop));
        }
        Ok((result, words.finish()))
    }

    fn single_quote(&mut self) -> Result<String, ExpandFailure> {
        // Everything up to the next ' is literal; a ' cannot be escaped inside.
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => return Err(ExpandFailure::UnterminatedSingleQuote),
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, ExpandFailure> {
        // Literal except `$` and the escape character, which escapes only `"`, `$` and itself.
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => return Err(ExpandFailure::UnterminatedDoubleQuote),
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.dollar()?;
                    result.push_str(&v);
                }
                Some(_) => {
                    let Some(mut ch) = self.next() else { continue };
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                self.next();
                                ch = c;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
            check_len(&result)?;
        }
    }

    fn dollar(&mut self) -> Result<String, ExpandFailure> {
        self.enter()?;
        let r = self.dollar_inner();
        self.depth -= 1;
        r
    }

    fn dollar_inner(&mut self) -> Result<String, ExpandFailure> {
        self.next(); // '$'
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.get_env(&name)? {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next(); // '{'
        match self.peek() {
            None => return Err(ExpandFailure::MissingBrace),
            Some('{' | '}' | ':') => return Err(ExpandFailure::BadSubstitution),
            Some(_) => {}
        }
        let name = self.name();
        let Some(ch) = self.next() else {
            return Err(ExpandFailure::MissingBrace);
        };
        match ch {
            '}' => Ok(match self.get_env(&name)? {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let mut chs = ch.to_string();
                let mut op = Some(ch);
                let null_is_unset = ch == ':';
                if null_is_unset {
                    op = self.next();
                    chs.extend(op);
                }
                let raw = matches!(op, Some('#' | '%'));
                if null_is_unset && raw {
                    return Err(ExpandFailure::UnsupportedModifier(chs));
                }
                let word = match self.stop_on(Some('}'), raw) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        return Err(if self.peek().is_none() {
                            ExpandFailure::MissingBrace
                        } else {
                            e
                        });
                    }
                };
                let value = self.get_env(&name)?;
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let unset = match &value {
                    None => true,
                    Some(v) => null_is_unset && v.is_empty(),
                };
                match op {
                    Some('-') => Ok(if unset {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    Some('+') => Ok(if unset { String::new() } else { word }),
                    Some('?') => match value {
                        None => Err(ExpandFailure::Required {
                            name,
                            message: if word.is_empty() {
                                "is not allowed to be unset".into()
                            } else {
                                word
                            },
                        }),
                        Some(v) if null_is_unset && v.is_empty() => Err(ExpandFailure::Required {
                            name,
                            message: if word.is_empty() {
                                "is not allowed to be empty".into()
                            } else {
                                word
                            },
                        }),
                        Some(v) => Ok(v),
                    },
                    Some(c @ ('#' | '%')) => {
                        // One #/% matches the shortest pattern, a doubled one the longest.
                        let (greedy, pattern) = match word.strip_prefix(c) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word),
                        };
                        let value = value.unwrap_or_default();
                        if c == '%' {
                            trim_suffix(&pattern, &value, greedy)
                        } else {
                            trim_prefix(&pattern, &value, greedy)
                        }
                    }
                    _ => Err(ExpandFailure::UnsupportedModifier(chs)),
                }
            }
            '/' => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.next();
                }
                let pattern = match self.stop_on(Some('/'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        return Err(if self.peek().is_none() {
                            ExpandFailure::MissingSlash
                        } else {
                            e
                        })
                    }
                };
                let replacement = match self.stop_on(Some('}'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        return Err(if self.peek().is_none() {
                            ExpandFailure::MissingBrace
                        } else {
                            e
                        })
                    }
                };
                let value = self.get_env(&name)?;
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                }
                let value = value.unwrap_or_default();
                let re = pattern_regex(&pattern, true, false)?;
                let out = if replace_all {
                    // As Go's ReplaceAllString: `$name` in the replacement names a group.
                    re.replace_all(&value, replacement.as_str()).into_owned()
                } else {
                    match re.find(&value) {
                        Some(m) => format!(
                            "{}{}{}",
                            &value[..m.start()],
                            replacement,
                            &value[m.end()..]
                        ),
                        None => value,
                    }
                };
                check_len(&out)?;
                Ok(out)
            }
            _ => Err(ExpandFailure::UnsupportedModifier(ch.to_string())),
        }
    }

    /// A variable name: letters, digits and `_`; or all digits (positional); or one special
    /// parameter character.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_numeric() {
                while let Some(d) = self.peek().filter(|c| c.is_numeric()) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }

    fn possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".to_string();
        }
        self.next();
        // Whitespace between << and the delimiter stays part of the word.
        let mut out = String::from("<<");
        while let Some(c) = self.peek().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            out.push(c);
            self.next();
        }
        out
    }

    fn get_env(&mut self, name: &str) -> Result<Option<String>, ExpandFailure> {
        self.used.insert(name.to_string());
        let v = (self.env)(name);
        match &v {
            None => {
                self.unset.insert(name.to_string());
            }
            Some(v) => {
                self.work = self.work.saturating_add(v.len());
                if self.work > MAX_EXPANSION_WORK {
                    return Err(ExpandFailure::TooMuchWork);
                }
            }
        }
        Ok(v)
    }
}

/// A shell wildcard pattern (`*`, `?`, `\` escapes; no bracket expressions) as a regular
/// expression, as BuildKit's `convertShellPatternToRegex`.
pub(crate) fn pattern_to_regex(
    pattern: &str,
    greedy: bool,
    anchored: bool,
) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len() + 4);
    if anchored {
        out.push('^');
    }
    let star = if greedy { ".*" } else { ".*?" };
    let mut it = pattern.chars().peekable();
    while let Some(tok) = it.next() {
        match tok {
            '*' => out.push_str(star),
            '?' => out.push('.'),
            '\\' => {
                // `\}` and `\/` escape the ${} syntax, not the pattern.
                if matches!(it.peek(), Some('}' | '/')) {
                    continue;
                }
                match it.next() {
                    Some(c @ ('*' | '?' | '\\')) => {
                        out.push('\\');
                        out.push(c);
                    }
                    Some(c) => return Err(format!("invalid escape '\\{c}'")),
                    None => return Err("invalid escape '\\'".to_string()),
                }
            }
            '[' | ']' | '{' | '}' | '.' | '+' | '(' | ')' | '|' | '^' | '$' => {
                out.push('\\');
                out.push(tok);
            }
            _ => out.push(tok),
        }
    }
    Ok(out)
}

fn pattern_regex(
    pattern: &str,
    greedy: bool,
    anchored: bool,
) -> Result<regex::Regex, ExpandFailure> {
    let invalid = |reason: String| ExpandFailure::InvalidPattern {
        pattern: pattern.to_string(),
        reason,
    };
    let src = pattern_to_regex(pattern, greedy, anchored).map_err(invalid)?;
    regex::RegexBuilder::new(&src)
        .size_limit(1 << 24)
        .build()
        .map_err(|e| invalid(e.to_string()))
}

fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, ExpandFailure> {
    let re = pattern_regex(pattern, greedy, true)?;
    Ok(match re.find(value) {
        Some(m) => value[m.end()..].to_string(),
        None => value.to_string(),
    })
}

/// Regular expressions find the leftmost match only, so the shortest or longest suffix is
/// found as a prefix of the reversed value with the reversed pattern.
fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, ExpandFailure> {
    let rp = reverse_pattern(pattern);
    let rv: String = value.chars().rev().collect();
    let out = trim_prefix(&rp, &rv, greedy)?;
    Ok(out.chars().rev().collect())
}

/// Reverses a pattern keeping each `\x` escape in front of its character: `a\*c` → `c\*a`.
pub(crate) fn reverse_pattern(pattern: &str) -> String {
    let runes: Vec<char> = pattern.chars().collect();
    let mut out = vec!['\0'; runes.len()];
    let Some(last) = runes.len().checked_sub(1) else {
        return String::new();
    };
    let mut i = 0;
    while i <= last {
        let tok = runes[i];
        let out_idx = last - i;
        if tok == '\\' && i != last {
            out[out_idx - 1] = tok;
            out[out_idx] = runes[i + 1];
            i += 2;
        } else {
            out[out_idx] = tok;
            i += 1;
        }
    }
    out.into_iter().collect()
}
