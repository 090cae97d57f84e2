//! `.env` files as Docker Compose reads them (compose-go's `dotenv` package), and the `raw`
//! env-file format (`KEY=VALUE` lines taken literally).
//!
//! Syntax: `KEY=value`, `KEY: value`, an optional `export ` prefix, `#` comment lines, blank
//! lines, a UTF-8 BOM. Unquoted values end at the line end or at ` #`, and are trimmed and
//! interpolated. Single-quoted values are literal (`\'` is a quote); double-quoted values may span
//! lines, understand `\n`, `\t`, `\"`, `\\`, `\$`, octal `\0NNN`... and are interpolated. A `KEY`
//! alone on its line is inherited: taken from `lookup`, or left out when `lookup` has no value.
//!
//! Interpolation resolves a variable from `lookup` first, then from the keys defined earlier in
//! the same file (compose-go's order).

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::interpolate::{self, InterpolateError};

#[derive(Debug, thiserror::Error)]
pub enum DotenvError {
    #[error("line {line}: key cannot contain a space")]
    KeyWithSpace { line: usize },
    #[error(
        "line {line}: unexpected character {} in variable name {}",
        interpolate::go_quote(&ch.to_string()),
        interpolate::go_quote(near)
    )]
    UnexpectedChar { line: usize, ch: char, near: String },
    #[error("line {line}: unterminated quoted value {text}")]
    Unterminated { line: usize, text: String },
    /// `export` followed by nothing.
    #[error("zero length string")]
    ZeroLength,
    /// A value's `${...}` failed (invalid template or a `:?` variable missing).
    #[error(transparent)]
    Interpolate(#[from] InterpolateError),
    /// `raw` format: a key with a blank in it.
    #[error("variable '{0}' contains whitespaces")]
    RawKeyWithSpace(String),
    /// `raw` format: a line starting with `=`.
    #[error("no variable name on line '{0}'")]
    RawNoName(String),
    #[error("failed to read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to read {}: {source}", path.display())]
    File {
        path: PathBuf,
        source: Box<DotenvError>,
    },
    #[error("failed to parse env_file {}: {source}", path.display())]
    RawFile {
        path: PathBuf,
        source: Box<DotenvError>,
    },
}

/// Parse `.env` content. Warnings (unset variables in values) are dropped; see
/// [`parse_with_warnings`].
pub fn parse(
    content: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, DotenvError> {
    parse_with_warnings(content, lookup, &mut |_| {})
}

/// Parse `.env` content, sending docker compose's "variable is not set" warnings to `warn`.
pub fn parse_with_warnings(
    content: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    warn: &mut dyn FnMut(String),
) -> Result<IndexMap<String, String>, DotenvError> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    let mut parser = Parser {
        line: 1,
        lookup,
        warn,
        out: IndexMap::new(),
    };
    parser.run(content)?;
    Ok(parser.out)
}

/// Read and parse a `.env` file; errors name the file.
pub fn read_file(
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, DotenvError> {
    read_file_with_warnings(path, lookup, &mut |_| {})
}

pub fn read_file_with_warnings(
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
    warn: &mut dyn FnMut(String),
) -> Result<IndexMap<String, String>, DotenvError> {
    let content = read(path)?;
    parse_with_warnings(&content, lookup, warn).map_err(|e| DotenvError::File {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

fn read(path: &Path) -> Result<String, DotenvError> {
    let bytes = std::fs::read(path).map_err(|source| DotenvError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // compose-go does not insist on UTF-8; keep going with replacement characters.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `env_file: {format: raw}`: `KEY=VALUE` lines taken literally (no quotes, no interpolation, no
/// inline comments). Leading blanks and `#` lines are skipped; a bare `KEY` is inherited from
/// `lookup`.
pub fn parse_raw(
    content: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, DotenvError> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    let mut out = IndexMap::new();
    for raw_line in content.split('\n') {
        // Lines end at `\n`, a `\r` before it is dropped (Go's bufio.ScanLines).
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line, None),
        };
        if key.contains([' ', '\t']) {
            return Err(DotenvError::RawKeyWithSpace(key.to_string()));
        }
        if key.is_empty() {
            return Err(DotenvError::RawNoName(line.to_string()));
        }
        match value {
            Some(v) => {
                out.insert(key.to_string(), v.to_string());
            }
            None => {
                if let Some(v) = lookup(key) {
                    out.insert(key.to_string(), v);
                }
            }
        }
    }
    Ok(out)
}

/// Read and parse a `raw` format env file; errors name the file.
pub fn read_raw_file(
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, DotenvError> {
    let content = read(path)?;
    parse_raw(&content, lookup).map_err(|e| DotenvError::RawFile {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

/// compose-go's notion of a blank inside a line: never a line break.
fn is_blank(c: char) -> bool {
    matches!(
        c,
        '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    )
}

fn is_key_char(c: char) -> bool {
    matches!(c, '_' | '.' | '-' | '[' | ']') || c.is_alphabetic() || c.is_numeric()
}

/// A statement scanner that follows compose-go's parser step by step, including how it counts
/// lines for error messages.
struct Parser<'a> {
    line: usize,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    warn: &'a mut dyn FnMut(String),
    out: IndexMap<String, String>,
}

impl Parser<'_> {
    fn run(&mut self, src: &str) -> Result<(), DotenvError> {
        let mut rest = src;
        loop {
            rest = self.statement_start(rest);
            if rest.is_empty() {
                return Ok(());
            }
            let (key, after, inherited) = self.locate_key(rest)?;
            if key.contains(' ') {
                return Err(DotenvError::KeyWithSpace { line: self.line });
            }
            if inherited {
                if let Some(v) = (self.lookup)(key) {
                    self.out.insert(key.to_string(), v);
                }
                rest = after;
                continue;
            }
            let (value, after) = self.extract_value(after)?;
            self.out.insert(key.to_string(), value);
            rest = after;
        }
    }

    /// Skip blanks, line breaks and comment lines; "" at the end of input.
    fn statement_start<'s>(&mut self, mut src: &'s str) -> &'s str {
        loop {
            let Some(pos) = self.skip_whitespace(src) else {
                return "";
            };
            src = &src[pos..];
            if !src.starts_with('#') {
                return src;
            }
            match src.find('\n') {
                Some(nl) => src = &src[nl..],
                None => return "",
            }
        }
    }

    /// Index of the first non-whitespace character, counting the line breaks passed.
    fn skip_whitespace(&mut self, src: &str) -> Option<usize> {
        for (i, c) in src.char_indices() {
            if c == '\n' {
                self.line += 1;
            }
            if !c.is_whitespace() {
                return Some(i);
            }
        }
        None
    }

    /// Returns the key, the text after its `=`/`:` (blanks skipped), and whether the key stood
    /// alone on its line (inherited).
    fn locate_key<'s>(
        &mut self,
        mut src: &'s str,
    ) -> Result<(&'s str, &'s str, bool), DotenvError> {
        if let Some(after) = src.strip_prefix("export") {
            // Go's `^export\s+`: \s is [\t\n\f\r ].
            if after.starts_with(['\t', '\n', '\u{c}', '\r', ' ']) {
                src = after.trim_start_matches(is_blank);
            }
        }
        let mut end = None;
        for (i, c) in src.char_indices() {
            if is_blank(c) {
                continue;
            }
            match c {
                '=' | ':' | '\n' => {
                    end = Some((i, c == '\n'));
                    break;
                }
                c if is_key_char(c) => {}
                c => {
                    return Err(DotenvError::UnexpectedChar {
                        line: self.line,
                        ch: c,
                        near: src.split('\n').next().unwrap_or_default().to_string(),
                    })
                }
            }
        }
        if src.is_empty() {
            return Err(DotenvError::ZeroLength);
        }
        // Without a terminator (last line, no newline) compose-go takes an empty key and reads
        // the whole text as its value.
        let (key, offset, inherited) = match end {
            Some((i, inherited)) => (&src[..i], i + 1, inherited),
            None => ("", 0, false),
        };
        if inherited && !key.contains(' ') {
            self.line += 1;
        }
        let key = key.trim_end();
        let rest = src[offset..].trim_start_matches(is_blank);
        Ok((key, rest, inherited))
    }

    fn extract_value<'s>(&mut self, src: &'s str) -> Result<(String, &'s str), DotenvError> {
        let quote = match src.chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => {
                let (value, rest) = src.split_once('\n').unwrap_or((src, ""));
                self.line += 1;
                let value = value.split(" #").next().unwrap_or_default().trim_end();
                return Ok((self.expand(value)?, rest));
            }
        };
        let mut value = String::new();
        let mut escaped = false;
        for (i, c) in src.char_indices().skip(1) {
            if c == '\n' {
                self.line += 1;
            }
            if escaped {
                escaped = false;
                // An escaped quote loses its backslash; other escapes are kept for later.
                if c != quote {
                    value.push('\\');
                }
                value.push(c);
                continue;
            }
            if c == '\\' {
                escaped = true;
            } else if c == quote {
                let rest = &src[i + 1..];
                if quote == '"' {
                    value = self.expand(&expand_escapes(&value))?;
                }
                return Ok((value, rest));
            } else {
                value.push(c);
            }
        }
        Err(DotenvError::Unterminated {
            line: self.line,
            text: src.split('\n').next().unwrap_or_default().to_string(),
        })
    }

    /// Interpolate a value: `lookup` first, then keys defined earlier in the file.
    fn expand(&mut self, value: &str) -> Result<String, DotenvError> {
        let lookup = self.lookup;
        let out = &self.out;
        let warn = &mut *self.warn;
        let resolve = |k: &str| lookup(k).or_else(|| out.get(k).cloned());
        let value = interpolate::substitute(value, &resolve, &mut |name: &str| {
            warn(interpolate::unset_warning(name))
        })?;
        Ok(value)
    }
}

/// Backslash escapes of double-quoted values: `\a \b \f \n \r \t \v \" \\`, octal `\0NNN`, and
/// `\$` (a literal `$`). Anything else keeps its backslash.
fn expand_escapes(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 >= b.len() {
            i += 1;
            continue;
        }
        let simple = match b[i + 1] {
            b'a' => Some("\u{7}"),
            b'b' => Some("\u{8}"),
            b'f' => Some("\u{c}"),
            b'n' => Some("\n"),
            b'r' => Some("\r"),
            b't' => Some("\t"),
            b'v' => Some("\u{b}"),
            b'"' => Some("\""),
            b'\\' => Some("\\"),
            // Escaped for the interpolation that follows.
            b'$' => Some("$$"),
            // `\c` is matched but is no valid escape: it stays.
            b'c' => Some("\\c"),
            _ => None,
        };
        if let Some(rep) = simple {
            out.push_str(&s[copied..i]);
            out.push_str(rep);
            i += 2;
            copied = i;
            continue;
        }
        if b[i + 1] == b'0' {
            // `\0` then up to three digits; only `\0` + three octal digits worth <= 255 decodes,
            // anything else loses its `0` (compose-go rewrites `\0` to `\` before decoding).
            let start = i + 2;
            let mut end = start;
            while end < b.len() && end - start < 3 && b[end].is_ascii_digit() {
                end += 1;
            }
            let digits = &s[start..end];
            out.push_str(&s[copied..i]);
            match octal(digits) {
                Some(c) => out.push(c),
                None => {
                    out.push('\\');
                    out.push_str(digits);
                }
            }
            i = end;
            copied = i;
            continue;
        }
        i += 1;
    }
    out.push_str(&s[copied..]);
    out
}

fn octal(digits: &str) -> Option<char> {
    if digits.len() != 3 {
        return None;
    }
    let v = u32::from_str_radix(digits, 8).ok()?;
    if v > 255 {
        return None;
    }
    char::from_u32(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const FIXTURES: &str = "/work/shared/conformance/compose-go/dotenv-fixtures";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn map(pairs: &[(&str, &str)]) -> IndexMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ok(content: &str) -> IndexMap<String, String> {
        match parse(content, &no_env) {
            Ok(m) => m,
            Err(e) => panic!("{content:?} failed: {e}"),
        }
    }

    fn err(content: &str) -> String {
        match parse(content, &no_env) {
            Ok(m) => panic!("{content:?} should fail, gave {m:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn one(line: &str) -> (String, String) {
        let m = ok(line);
        assert_eq!(m.len(), 1, "{line:?} gave {m:?}");
        m.into_iter().next().unwrap_or_default()
    }

    fn fixture(name: &str, env: &HashMap<&str, &str>) -> Option<IndexMap<String, String>> {
        let path = Path::new(FIXTURES).join(name);
        if !path.exists() {
            eprintln!("skipping: {} is missing", path.display());
            return None;
        }
        let lookup = |k: &str| env.get(k).map(|v| v.to_string());
        match read_file(&path, &lookup) {
            Ok(m) => Some(m),
            Err(e) => panic!("{name}: {e}"),
        }
    }

    /// Fixture file, environment for `lookup`, expected result.
    type FixtureCase<'a> = (
        &'a str,
        &'a HashMap<&'a str, &'a str>,
        IndexMap<String, String>,
    );

    /// Expected values come from `docker compose config` with the fixture as `env_file`.
    #[test]
    fn fixtures() {
        let none = HashMap::new();
        let plain = map(&[
            ("OPTION_A", "1"),
            ("OPTION_B", "2"),
            ("OPTION_C", "3"),
            ("OPTION_D", "4"),
            ("OPTION_E", "5"),
            ("456", "ABC"),
            ("OPTION_F", ""),
            ("OPTION_G", ""),
            ("OPTION_H", "my string"),
        ]);
        let substituted = map(&[
            ("OPTION_A", "1"),
            ("OPTION_B", "1"),
            ("OPTION_C", "1"),
            ("OPTION_D", "1_1"),
            ("OPTION_E", ""),
        ]);
        let os = HashMap::from([("VAR_TO_BE_LOADED_FROM_OS_ENV", "osval")]);
        let cases: Vec<FixtureCase> = vec![
            (
                "custom.format",
                &none,
                map(&[("FOO", "BAR"), ("ZOT", "QIX")]),
            ),
            (
                "equals.env",
                &none,
                map(&[(
                    "OPTION_A",
                    "postgres://localhost:5432/database?sslmode=disable",
                )]),
            ),
            (
                "exported.env",
                &none,
                map(&[("OPTION_A", "2"), ("OPTION_B", "\\n")]),
            ),
            (
                "inherited-multi-var.env",
                &os,
                map(&[
                    ("foo", "bar"),
                    ("VAR_TO_BE_LOADED_FROM_OS_ENV", "osval"),
                    ("bar", "baz"),
                ]),
            ),
            ("inherited-not-found.env", &os, map(&[])),
            (
                "inherited-single-var.env",
                &os,
                map(&[("VAR_TO_BE_LOADED_FROM_OS_ENV", "osval")]),
            ),
            ("plain.env", &none, plain.clone()),
            ("utf8-bom.env", &none, plain),
            (
                "quoted.env",
                &none,
                map(&[
                    ("OPTION_A", "1"),
                    ("OPTION_B", "2"),
                    ("OPTION_C", ""),
                    ("OPTION_D", "\\n"),
                    ("OPTION_E", "1"),
                    ("OPTION_F", "2"),
                    ("OPTION_G", ""),
                    ("OPTION_H", "\n"),
                    ("OPTION_I", "echo 'asd'"),
                    ("OPTION_J", "first line\nsecond line\nthird line\nand so on"),
                    ("OPTION_K", "Let's go!"),
                    ("OPTION_Z", "last value"),
                ]),
            ),
            (
                "special.env",
                &none,
                map(&[
                    ("VAR.WITH.DOTS", "dots"),
                    ("VAR_WITH_UNDERSCORES", "underscores"),
                    ("VAR-WITH-DASHES", "dashes"),
                ]),
            ),
            ("substitutions.env", &none, substituted.clone()),
            ("substitutions-default.env", &none, substituted),
            (
                "unquoted.env",
                &none,
                map(&[
                    ("OPTION_A", "some quoted phrase"),
                    ("OPTION_B", "first one with an unquoted phrase"),
                    ("OPTION_C", "then another one with an unquoted phrase"),
                    (
                        "OPTION_D",
                        "then another one with an unquoted phrase special è char",
                    ),
                    ("OPTION_E", "then another one quoted phrase"),
                ]),
            ),
        ];
        for (name, env, want) in cases {
            let Some(got) = fixture(name, env) else {
                return;
            };
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn invalid_fixture_names_file_and_line() {
        let path = Path::new(FIXTURES).join("invalid1.env");
        if !path.exists() {
            eprintln!("skipping: {} is missing", path.display());
            return;
        }
        let e = read_file(&path, &no_env)
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(
            e,
            Err(format!(
                "failed to read {}: line 7: key cannot contain a space",
                path.display()
            ))
        );
    }

    #[test]
    fn lines() {
        assert_eq!(one("FOO=bar"), ("FOO".into(), "bar".into()));
        assert_eq!(one("FOO =bar").1, "bar");
        assert_eq!(one("FOO= bar").1, "bar");
        assert_eq!(one("FOO=bar ").1, "bar");
        assert_eq!(one(" \tFOO=bar").1, "bar");
        assert_eq!(one("FOO\t=\tbar").1, "bar");
        assert_eq!(one("OPTION_A: 1"), ("OPTION_A".into(), "1".into()));
        assert_eq!(one("OPTION_A: Foo=bar").1, "Foo=bar");
        assert_eq!(one("OPTION_A=1:B").1, "1:B");
        assert_eq!(one("FOO=foobar=").1, "foobar=");
        assert_eq!(one("FOO.BAR=foobar").0, "FOO.BAR");
        assert_eq!(one("CAFÉ=1").0, "CAFÉ");
        assert_eq!(one("FOO=").1, "");
    }

    #[test]
    fn export_prefix() {
        assert_eq!(one("export OPTION_A=2"), ("OPTION_A".into(), "2".into()));
        assert_eq!(one("export\tOPTION_A=2").0, "OPTION_A");
        assert_eq!(one("  export  OPTION_A=2").0, "OPTION_A");
        assert_eq!(one("export exportFoo=2").0, "exportFoo");
        assert_eq!(one("exportFOO=2").0, "exportFOO");
        assert_eq!(one("export_FOO =2").0, "export_FOO");
        assert_eq!(one("export.FOO= 2").0, "export.FOO");
    }

    #[test]
    fn comments() {
        assert_eq!(ok("# c\n\n  # d\r\n\t\n"), map(&[]));
        assert_eq!(one("FOO=bar # this is foo").1, "bar");
        assert_eq!(one("FOO=a#b").1, "a#b");
        assert_eq!(one("FOO=a\t#b").1, "a\t#b");
        assert_eq!(one(r#"FOO="bar#baz" # comment"#).1, "bar#baz");
        assert_eq!(one("FOO='bar#baz' # comment").1, "bar#baz");
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(one(r#"FOO="escaped\"bar""#).1, "escaped\"bar");
        assert_eq!(one(r#"FOO="'d'""#).1, "'d'");
        assert_eq!(one(r"FOO='a\'b\nc'").1, "a'b\\nc");
        assert_eq!(one(r#"FOO="bar\nbaz""#).1, "bar\nbaz");
        assert_eq!(one(r#"FOO="bar\n\ b\az""#).1, "bar\n\\ b\u{7}z");
        assert_eq!(one(r#"FOO="bar\\\n\ b\az""#).1, "bar\\\n\\ b\u{7}z");
        assert_eq!(
            one(r#"FOO="a\tb\\c\qf\x41\0101\0777\01""#).1,
            "a\tb\\c\\qf\\x41A\\777\\1"
        );
        assert_eq!(one(r#"FOO="ends with \\""#).1, "ends with \\");
        assert_eq!(one(r#"FOO="x\c\$y\0""#).1, "x\\c$y\\");
        assert_eq!(one("FOO=\"multi\nline\" # c").1, "multi\nline");
        // Text after a closing quote starts a new statement: here an inherited key.
        let env = |k: &str| (k == "junk").then(|| "J".to_string());
        assert_eq!(
            parse("B=\"x\" junk\n", &env).ok(),
            Some(map(&[("B", "x"), ("junk", "J")]))
        );
        assert_eq!(ok("A=1\r\nB=\"2\"\r\n"), map(&[("A", "1"), ("B", "2")]));
    }

    #[test]
    fn expansion() {
        assert_eq!(
            ok("FOO=test\nBAR=$FOO"),
            map(&[("FOO", "test"), ("BAR", "test")])
        );
        assert_eq!(ok("FOO=test\nBAR=${FOO}bar")["BAR"], "testbar");
        assert_eq!(ok("BAR=$FOO")["BAR"], "");
        assert_eq!(ok("FOO=test\nBAR=\"quote $FOO\"")["BAR"], "quote test");
        assert_eq!(ok("BAR='quote $FOO'")["BAR"], "quote $FOO");
        assert_eq!(ok(r#"FOO="foo\$BAR""#)["FOO"], "foo$BAR");
        assert_eq!(ok(r#"FOO="foo\${BAR}""#)["FOO"], "foo${BAR}");
        assert_eq!(
            ok("FOO=test\nBAR=\"foo\\${FOO} ${FOO}\"")["BAR"],
            "foo${FOO} test"
        );
        assert_eq!(ok("A=1\nC=${NOPE:-$A}")["C"], "1");
        // `lookup` wins over keys of the file.
        let env = |k: &str| (k == "FOO").then(|| "os".to_string());
        assert_eq!(
            parse("FOO=file\nBAR=$FOO\nBAZ=\"${FOO}\"", &env).ok(),
            Some(map(&[("FOO", "file"), ("BAR", "os"), ("BAZ", "os")]))
        );
        let mut warnings = Vec::new();
        let r = parse_with_warnings("A=$NOPE", &no_env, &mut |w| warnings.push(w));
        assert_eq!(r.ok(), Some(map(&[("A", "")])));
        assert_eq!(warnings, vec![interpolate::unset_warning("NOPE")]);
    }

    #[test]
    fn inherited_and_odd_keys() {
        let env = |k: &str| (k == "BAR").then(|| "bv".to_string());
        assert_eq!(
            parse("FOO=1\nBAR\n", &env).ok(),
            Some(map(&[("FOO", "1"), ("BAR", "bv")]))
        );
        assert_eq!(ok("FOO=1\nNOPE\n"), map(&[("FOO", "1")]));
        // A last line without newline nor `=` becomes the value of an empty key, as in compose-go.
        assert_eq!(
            parse("FOO=1\nBAR", &env).ok(),
            Some(map(&[("FOO", "1"), ("", "BAR")]))
        );
        assert_eq!(ok("=\"value\""), map(&[("", "value")]));
    }

    #[test]
    fn errors() {
        assert_eq!(
            err("A=1\n\nlol$wut=3\n"),
            r#"line 3: unexpected character "$" in variable name "lol$wut=3""#
        );
        assert_eq!(
            err("A=1\nB=x\n   C D\nE=2\n"),
            "line 3: key cannot contain a space"
        );
        assert_eq!(
            err("A=1\nB=\"abc\n\nC=2\n# x\n"),
            "line 6: unterminated quoted value \"abc"
        );
        assert_eq!(err("A='abc"), "line 1: unterminated quoted value 'abc");
        assert_eq!(err("A=${"), r#"Invalid template: "${""#);
        assert_eq!(
            err("D=${NOPE:?no way}\nE=1\n"),
            "required variable NOPE is missing a value: no way"
        );
        assert_eq!(err("export "), "zero length string");
        let missing = read_file(Path::new("/nonexistent/.env"), &no_env);
        assert!(matches!(missing, Err(DotenvError::Io { .. })));
    }

    #[test]
    fn raw_format() {
        let env = |k: &str| (k == "E").then(|| "ev".to_string());
        let got = parse_raw(
            "\u{feff}  A= 1 \r\nE\n  # c\nF=a=b\n\t\nG=\"x\" # y\nH=$A\nNOPE\n",
            &env,
        );
        assert_eq!(
            got.ok(),
            Some(map(&[
                ("A", " 1 "),
                ("E", "ev"),
                ("F", "a=b"),
                ("G", "\"x\" # y"),
                ("H", "$A"),
            ]))
        );
        let e = |c: &str| parse_raw(c, &no_env).map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(
            e(" C = x"),
            Err("variable 'C ' contains whitespaces".into())
        );
        assert_eq!(e("E \n"), Err("variable 'E ' contains whitespaces".into()));
        assert_eq!(e("A=1\n=v\n"), Err("no variable name on line '=v'".into()));
    }

    #[test]
    fn raw_file_errors_name_the_file() {
        let dir = tempfile::tempdir().ok();
        let Some(dir) = dir else { return };
        let path = dir.path().join("e.env");
        assert!(std::fs::write(&path, "A B=1\n").is_ok());
        let e = read_raw_file(&path, &no_env)
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(
            e,
            Err(format!(
                "failed to parse env_file {}: variable 'A B' contains whitespaces",
                path.display()
            ))
        );
    }
}
