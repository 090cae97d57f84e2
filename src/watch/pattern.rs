//! `.dockerignore`-style patterns, as docker compose matches `develop.watch` `ignore` and
//! `include`: each pattern is anchored at a base directory, `*` and `?` stay within one path
//! component, `**` spans any number of components, `[...]` is a character class, `\` escapes,
//! a leading `!` re-includes, and the last pattern that matches decides. A pattern that matches a
//! directory matches everything below it.

use std::path::{Component, Path};

use super::WatchError;

/// The usual editor and IDE temporary files, ignored under every watched path (docker compose's
/// list, plus `#*#` and `*.tmp`).
pub const EPHEMERAL: &[&str] = &[
    // JetBrains safe-write files and project directory.
    "**/*___jb_old___",
    "**/*___jb_tmp___",
    "**/.idea",
    // Emacs lock and autosave files.
    "**/.#*",
    "**/#*#",
    // Vim: the write test file, backups, swap files (vim moves on to .swo, .swn when .swp is
    // taken).
    "**/4913",
    "**/*~",
    "**/.*.swp",
    "**/.*.swx",
    "**/.*.swo",
    "**/.*.swn",
    // Temporary files of atomic saves (VS Code, many tools).
    "**/*.tmp",
    // Version control metadata is never part of what runs.
    "**/.git",
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// The pattern's components; `**` is a component of its own.
    parts: Vec<String>,
    exclusion: bool,
}

/// An ordered list of patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patterns {
    patterns: Vec<Pattern>,
}

impl Patterns {
    /// Compiles patterns; an empty or malformed one (an unclosed `[`) is an error.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Patterns, WatchError> {
        let mut out = Vec::new();
        for p in patterns {
            let raw = p.as_ref().trim();
            if raw.is_empty() {
                continue;
            }
            let (exclusion, body) = match raw.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, raw),
            };
            let parts: Vec<String> = body
                .split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .map(String::from)
                .collect();
            if parts.is_empty() || parts.iter().any(|c| c == "..") {
                return Err(WatchError::Pattern {
                    pattern: raw.to_string(),
                    reason: "it must name a path below the watched directory".into(),
                });
            }
            for c in &parts {
                check_component(c).map_err(|reason| WatchError::Pattern {
                    pattern: raw.to_string(),
                    reason,
                })?;
            }
            out.push(Pattern { parts, exclusion });
        }
        Ok(Patterns { patterns: out })
    }

    /// The editor temporary files of [`EPHEMERAL`].
    pub fn ephemeral() -> Patterns {
        // The list is fixed and valid: compiling it cannot fail.
        Patterns::new(EPHEMERAL).unwrap_or_default()
    }

    /// Reads a `.dockerignore` file (comments and blank lines skipped).
    pub fn parse_file(text: &str) -> Result<Patterns, WatchError> {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        Patterns::new(&lines)
    }

    /// Appends `other`'s patterns after these (so they take precedence).
    pub fn extend(&mut self, other: Patterns) {
        self.patterns.extend(other.patterns);
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `rel` (relative to the patterns' base, `/`-separated components) is matched:
    /// the last pattern matching it or one of its parent directories decides.
    pub fn matches(&self, rel: &Path) -> bool {
        let comps: Vec<String> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        let comps: Vec<&str> = comps.iter().map(String::as_str).collect();
        let mut matched = false;
        for p in &self.patterns {
            // A pattern naming a directory covers what is inside it.
            let hit = (1..=comps.len()).any(|n| match_parts(&p.parts, &comps[..n]));
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }
}

/// Rejects a component whose character class is not closed.
fn check_component(c: &str) -> Result<(), String> {
    let chars: Vec<char> = c.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '[' => match class_end(&chars, i) {
                Some(end) => i = end + 1,
                None => return Err("unclosed character class".into()),
            },
            _ => i += 1,
        }
    }
    Ok(())
}

/// Components of a pattern against components of a path; `**` matches zero or more.
fn match_parts(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_parts(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((name, path_rest)) => {
                glob(
                    &first.chars().collect::<Vec<_>>(),
                    &name.chars().collect::<Vec<_>>(),
                ) && match_parts(rest, path_rest)
            }
            None => false,
        },
    }
}

/// One component: `*` (any run), `?` (one character), `[...]`, `\x`.
fn glob(p: &[char], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some('*') => (0..=s.len()).any(|k| glob(&p[1..], &s[k..])),
        Some('?') => !s.is_empty() && glob(&p[1..], &s[1..]),
        Some('[') => match (class_end(p, 0), s.first()) {
            (Some(end), Some(&c)) => class_matches(&p[1..end], c) && glob(&p[end + 1..], &s[1..]),
            _ => false,
        },
        Some('\\') if p.len() > 1 => s.first() == Some(&p[1]) && glob(&p[2..], &s[1..]),
        Some(&c) => s.first() == Some(&c) && glob(&p[1..], &s[1..]),
    }
}

/// Index of the `]` closing the class opened at `start`.
fn class_end(p: &[char], start: usize) -> Option<usize> {
    let mut i = start + 1;
    if matches!(p.get(i), Some('^') | Some('!')) {
        i += 1;
    }
    // A `]` right after the opening bracket is a literal.
    if p.get(i) == Some(&']') {
        i += 1;
    }
    while i < p.len() {
        match p[i] {
            '\\' => i += 2,
            ']' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn class_matches(class: &[char], c: char) -> bool {
    let (negated, body) = match class.first() {
        Some('^') | Some('!') => (true, &class[1..]),
        _ => (false, class),
    };
    let mut i = 0;
    let mut hit = false;
    while i < body.len() {
        let mut lo = body[i];
        if lo == '\\' && i + 1 < body.len() {
            i += 1;
            lo = body[i];
        }
        if i + 2 < body.len() && body[i + 1] == '-' {
            let hi = body[i + 2];
            hit |= lo <= c && c <= hi;
            i += 3;
        } else {
            hit |= lo == c;
            i += 1;
        }
    }
    hit != negated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(patterns: &[&str], path: &str) -> bool {
        Patterns::new(patterns).unwrap().matches(Path::new(path))
    }

    #[test]
    fn patterns_are_anchored_at_the_base_like_dockerignore() {
        assert!(m(&["*.log"], "app.log"));
        assert!(!m(&["*.log"], "sub/app.log"));
        assert!(m(&["**/*.log"], "sub/deep/app.log"));
        assert!(m(&["**/*.log"], "app.log"));
        assert!(m(&["/build"], "build/out.o"));
        assert!(m(&["./src/gen"], "src/gen/a.rs"));
    }

    #[test]
    fn a_matched_directory_covers_its_contents() {
        assert!(m(&["node_modules"], "node_modules/react/index.js"));
        assert!(m(&["node_modules/"], "node_modules"));
        assert!(!m(&["node_modules"], "src/node_modules_notes.txt"));
    }

    #[test]
    fn star_and_question_mark_stay_within_a_component() {
        assert!(m(&["a*c"], "abbbc"));
        assert!(!m(&["a*c"], "ab/c"));
        assert!(m(&["file?.txt"], "file1.txt"));
        assert!(!m(&["file?.txt"], "file10.txt"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(m(&["[abc].txt"], "b.txt"));
        assert!(!m(&["[abc].txt"], "d.txt"));
        assert!(m(&["[a-c]x"], "bx"));
        assert!(m(&["[^a-c]x"], "dx"));
        assert!(!m(&["[!a-c]x"], "ax"));
        assert!(m(&["\\*literal"], "*literal"));
        assert!(!m(&["\\*literal"], "xliteral"));
    }

    #[test]
    fn the_last_matching_pattern_wins_and_exclusions_reinclude() {
        let p = &["*.md", "!README.md"];
        assert!(m(p, "CHANGES.md"));
        assert!(!m(p, "README.md"));
        assert!(m(&["*.md", "!README.md", "README*"], "README.md"));
    }

    #[test]
    fn editor_temporary_files_are_ephemeral() {
        let e = Patterns::ephemeral();
        for f in [
            "a.py~",
            "src/.main.py.swp",
            ".x.swx",
            "deep/4913",
            "src/.#main.py",
            "src/#main.py#",
            "save.tmp",
            ".git/index",
            "sub/.git/HEAD",
            ".idea/workspace.xml",
            "x.py___jb_tmp___",
        ] {
            assert!(e.matches(Path::new(f)), "{f} should be ignored");
        }
        for f in [
            "main.py",
            "src/swap.py",
            "notes.txt",
            "4914",
            ".github/x.yml",
        ] {
            assert!(!e.matches(Path::new(f)), "{f} should not be ignored");
        }
    }

    #[test]
    fn dockerignore_files_skip_comments_and_blank_lines() {
        let p = Patterns::parse_file("# comment\n\n*.pyc\n  build  \n").unwrap();
        assert!(p.matches(Path::new("x.pyc")));
        assert!(p.matches(Path::new("build/a")));
        assert!(!p.matches(Path::new("x.py")));
    }

    #[test]
    fn malformed_patterns_are_errors() {
        let e = Patterns::new(&["[abc"]).unwrap_err().to_string();
        assert!(e.contains("[abc") && e.contains("unclosed"), "{e}");
        let e = Patterns::new(&["../outside"]).unwrap_err().to_string();
        assert!(e.contains("../outside"), "{e}");
        assert!(Patterns::new(&["", "  "]).unwrap().is_empty());
    }
}
