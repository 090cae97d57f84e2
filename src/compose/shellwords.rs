//! Splitting a `command:` / `entrypoint:` string into words the way docker compose does.
//!
//! compose-go splits these strings with mattn/go-shellwords v1.0.12 (no environment or
//! command expansion). It is not a shell: it stops at the first unquoted `;`, `&`, `|`, `<` or
//! `>` and silently drops the rest of the line, so `echo one && echo two` runs `echo one`.
//! We give the same words, and report what was dropped so the caller can warn about it.
//! Its other rules, kept here on purpose: a backslash escapes any character outside single
//! quotes (`\t` is `t`), `$(...)` and backticks are kept verbatim as part of a word, a `(` not
//! preceded by `$` is an error, a word of digits just before `>` (`2>`) is dropped with the
//! redirection, and a line ending inside quotes or after a lone backslash is an error.

/// The words of a line, and the part of the line that was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub words: Vec<String>,
    /// The rest of the line from the operator that ended the parse (`&& echo two`), if any.
    pub dropped: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShellwordsError {
    #[error("invalid command line string")]
    Invalid,
}

/// Split `line` as go-shellwords' `Parse` does with its defaults.
pub fn split(line: &str) -> Result<Split, ShellwordsError> {
    #[derive(PartialEq)]
    enum Got {
        No,
        Single,
        Quoted,
    }
    let mut words = Vec::new();
    let mut buf = String::new();
    let (mut escaped, mut double, mut single, mut back, mut dollar) =
        (false, false, false, false, false);
    let mut got = Got::No;
    // Byte offset where the current word started, to show a dropped `2>` with its digits.
    let mut word_start = 0usize;
    let mut dropped = None;

    for (at, r) in line.char_indices() {
        if escaped {
            buf.push(r);
            escaped = false;
            got = Got::Single;
            continue;
        }
        if r == '\\' {
            if single {
                buf.push(r);
            } else {
                if got == Got::No && buf.is_empty() {
                    word_start = at;
                }
                escaped = true;
            }
            continue;
        }
        if matches!(r, ' ' | '\t' | '\r' | '\n') {
            if single || double || back || dollar {
                buf.push(r);
            } else if got != Got::No {
                words.push(std::mem::take(&mut buf));
                got = Got::No;
            }
            continue;
        }
        if got == Got::No && buf.is_empty() {
            word_start = at;
        }
        match r {
            '`' if !single && !double && !dollar => back = !back,
            // go-shellwords toggles here even on an unmatched `)`; the line then ends inside
            // a "subshell" and is rejected, as docker compose rejects it.
            ')' if !single && !double && !back => dollar = !dollar,
            '(' if !single && !double && !back => {
                if !dollar && buf.ends_with('$') {
                    dollar = true;
                    buf.push('(');
                    continue;
                }
                return Err(ShellwordsError::Invalid);
            }
            '"' if !single && !dollar => {
                if double {
                    got = Got::Quoted;
                }
                double = !double;
                continue;
            }
            '\'' if !double && !dollar => {
                if single {
                    got = Got::Quoted;
                }
                single = !single;
                continue;
            }
            ';' | '&' | '|' | '<' | '>' if !(single || double || back || dollar) => {
                let mut from = at;
                // `2>&1`: a word starting with a digit before `>` is taken for a file
                // descriptor and dropped with the redirection.
                if r == '>' && buf.starts_with(|c: char| c.is_ascii_digit()) {
                    got = Got::No;
                    from = word_start;
                }
                dropped = Some(line[from..].to_string());
                break;
            }
            _ => {}
        }
        got = Got::Single;
        buf.push(r);
    }
    if got != Got::No {
        words.push(buf);
    }
    if escaped || single || double || back || dollar {
        return Err(ShellwordsError::Invalid);
    }
    Ok(Split { words, dropped })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        split(line).unwrap().words
    }

    /// Each pair was checked against docker compose 2.40 (`config --format json`).
    #[test]
    fn words_match_docker_compose() {
        let cases: &[(&str, &[&str])] = &[
            ("echo one && echo two", &["echo", "one"]),
            ("echo one || echo two", &["echo", "one"]),
            ("echo a;echo b", &["echo", "a"]),
            ("a | b", &["a"]),
            ("a & b", &["a"]),
            ("a >f", &["a"]),
            ("a 2>&1", &["a"]),
            ("a 12>f", &["a"]),
            ("a b2>f", &["a", "b2"]),
            ("a < f", &["a"]),
            (";a b", &[]),
            ("echo `date`x y", &["echo", "`date`x", "y"]),
            ("echo a$(b c)d e", &["echo", "a$(b c)d", "e"]),
            ("a $( b ) c", &["a", "$( b )", "c"]),
            ("a $(b;c) d", &["a", "$(b;c)", "d"]),
            ("a `b;c` d", &["a", "`b;c`", "d"]),
            ("a \\t b", &["a", "t", "b"]),
            ("a 'b\\tc'", &["a", "b\\tc"]),
            ("a \"b\\tc\"", &["a", "btc"]),
            ("a \\; b", &["a", ";", "b"]),
            ("a ';' b", &["a", ";", "b"]),
            ("a\rb", &["a", "b"]),
            ("'' a", &["", "a"]),
            ("a \"\" b", &["a", "", "b"]),
            ("a#b #c", &["a#b", "#c"]),
            ("a \\(b", &["a", "(b"]),
            ("a \"$(b\" c", &["a", "$(b", "c"]),
        ];
        for (line, want) in cases {
            assert_eq!(words(line), *want, "{line:?}");
        }
    }

    #[test]
    fn the_dropped_rest_is_reported() {
        let s = split("echo one && echo two").unwrap();
        assert_eq!(s.dropped.as_deref(), Some("&& echo two"));
        assert_eq!(
            split("run 2>&1 | tee").unwrap().dropped.as_deref(),
            Some("2>&1 | tee")
        );
        assert_eq!(split("a ';' b").unwrap().dropped, None);
        assert_eq!(split("a `b;c`").unwrap().dropped, None);
    }

    #[test]
    fn unbalanced_lines_are_rejected() {
        for line in [
            "a\\",
            "a 'b",
            "a \"b",
            "a `b",
            "a $(b",
            "a (b",
            "a ) b",
            "a $(b (c))",
        ] {
            assert_eq!(split(line), Err(ShellwordsError::Invalid), "{line:?}");
        }
    }
}
