//! Path patterns as Docker reads them: Go's `filepath.Match` (COPY source wildcards) and
//! moby/patternmatcher (`.dockerignore`, `COPY --exclude`), ported with their semantics.
//!
//! Paths and patterns are bytes: a file name in a context need not be UTF-8.

use regex::bytes::Regex;

/// A malformed pattern (Go's `filepath.ErrBadPattern`, or patternmatcher's own checks).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(pub String);

fn bad(pattern: &[u8]) -> PatternError {
    PatternError(format!(
        "syntax error in pattern {:?}",
        String::from_utf8_lossy(pattern)
    ))
}

/// Go's `path.Clean`, lexically: repeated and trailing slashes, `.` and `..` resolved; `.` for
/// an empty result.
pub fn clean(path: &[u8]) -> Vec<u8> {
    let rooted = path.first() == Some(&b'/');
    let mut parts: Vec<&[u8]> = Vec::new();
    for comp in path.split(|&c| c == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if parts.last().is_some_and(|p| *p != b"..") {
                    parts.pop();
                } else if !rooted {
                    parts.push(comp);
                }
            }
            _ => parts.push(comp),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    if rooted {
        out.push(b'/');
    }
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// Decodes one character (a UTF-8 sequence, or one byte when the bytes are not UTF-8).
fn next_char(s: &[u8]) -> (u32, usize) {
    let len = match s.first() {
        None => return (0, 0),
        Some(&b) if b < 0x80 => return (b as u32, 1),
        Some(&b) if b >= 0xf0 => 4,
        Some(&b) if b >= 0xe0 => 3,
        Some(&b) if b >= 0xc0 => 2,
        Some(&b) => return (b as u32 | 0x8000_0000, 1),
    };
    match s.get(..len).and_then(|c| std::str::from_utf8(c).ok()) {
        Some(c) => (c.chars().next().map(|c| c as u32).unwrap_or(0), len),
        // Invalid UTF-8: one byte, marked so that it never equals a real character.
        None => (s[0] as u32 | 0x8000_0000, 1),
    }
}

/// One character of a class (`\` escapes the next one).
fn class_char(p: &[u8]) -> Result<(u32, usize), ()> {
    match p.first() {
        None | Some(b'-') | Some(b']') => Err(()),
        Some(b'\\') => {
            let (c, n) = next_char(&p[1..]);
            if n == 0 {
                Err(())
            } else {
                Ok((c, n + 1))
            }
        }
        Some(_) => Ok(next_char(p)),
    }
}

/// A parsed `[...]` class: negated, ranges, and the bytes it took from the pattern.
struct Class {
    negated: bool,
    ranges: Vec<(u32, u32)>,
    len: usize,
}

/// Parses a class starting just after `[`, as Go's `matchChunk` does (errors where Go's do).
fn parse_class(p: &[u8]) -> Result<Class, ()> {
    let mut i = 0;
    let negated = p.first() == Some(&b'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        if p.get(i) == Some(&b']') && !ranges.is_empty() {
            i += 1;
            break;
        }
        let (lo, n) = class_char(&p[i..])?;
        i += n;
        let mut hi = lo;
        if p.get(i) == Some(&b'-') {
            let (h, n) = class_char(&p[i + 1..])?;
            i += 1 + n;
            hi = h;
        }
        ranges.push((lo, hi));
    }
    Ok(Class {
        negated,
        ranges,
        len: i,
    })
}

/// Go's `filepath.Match` on `/`-separated paths: `*` and `?` never match `/`, `[...]` classes
/// (`^` negates), `\` escapes. A malformed pattern is an error even when the name does not match.
pub fn fnmatch(pattern: &[u8], name: &[u8]) -> Result<bool, PatternError> {
    validate(pattern)?;
    Ok(match_here(pattern, name))
}

/// Checks `pattern`'s syntax as Go's `filepath.Match` would.
pub fn validate(pattern: &[u8]) -> Result<(), PatternError> {
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' => {
                if i + 1 >= pattern.len() {
                    return Err(bad(pattern));
                }
                i += 1 + next_char(&pattern[i + 1..]).1;
            }
            b'[' => {
                let class = parse_class(&pattern[i + 1..]).map_err(|_| bad(pattern))?;
                i += 1 + class.len;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Backtracking match of a validated pattern; `*` is bounded by the name's length, so the cost
/// is at most pattern × name per star level, and nesting is flat (no recursion per star).
fn match_here(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0usize, 0usize);
    // Where to resume after the last `*`: (pattern index after the star, name index).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p + 1, n));
                    p += 1;
                    continue;
                }
                b'?' => {
                    if n < name.len() && name[n] != b'/' {
                        p += 1;
                        n += next_char(&name[n..]).1;
                        continue;
                    }
                }
                b'[' => {
                    if n < name.len() {
                        if let Ok(class) = parse_class(&pattern[p + 1..]) {
                            let (c, len) = next_char(&name[n..]);
                            let inside = class.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                            if inside != class.negated {
                                p += 1 + class.len;
                                n += len;
                                continue;
                            }
                        }
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    let (pc, plen) = next_char(&pattern[p + 1..]);
                    let (nc, nlen) = next_char(&name[n..]);
                    if nlen > 0 && pc == nc {
                        p += 1 + plen;
                        n += nlen;
                        continue;
                    }
                }
                c => {
                    if n < name.len() && name[n] == c {
                        p += 1;
                        n += 1;
                        continue;
                    }
                }
            }
        } else if n == name.len() {
            return true;
        }
        // Mismatch: let the last star take one more character, unless that is a `/`.
        match star {
            Some((sp, sn)) if sn < name.len() && name[sn] != b'/' => {
                let next = sn + next_char(&name[sn..]).1;
                star = Some((sp, next));
                p = sp;
                n = next;
            }
            _ => return false,
        }
    }
}

/// Does the path component contain a wildcard (`*`, `?`, `[`; `\` escapes), as BuildKit's
/// `containsWildcards`?
pub fn has_wildcards(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Removes the `\` escapes from a wildcard-free path (`a\*b` names the file `a*b`).
pub fn unescape(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    let mut i = 0;
    while i < name.len() {
        if name[i] == b'\\' && i + 1 < name.len() {
            i += 1;
        }
        out.push(name[i]);
        i += 1;
    }
    out
}

#[derive(Debug, Clone)]
enum Kind {
    Exact,
    Prefix,
    Suffix,
    Regex(Regex),
}

/// One compiled `.dockerignore` line.
#[derive(Debug, Clone)]
pub struct Pattern {
    cleaned: Vec<u8>,
    kind: Kind,
    exclusion: bool,
}

impl Pattern {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.cleaned).into_owned()
    }

    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    fn matches(&self, path: &[u8]) -> bool {
        match &self.kind {
            Kind::Exact => path == self.cleaned.as_slice(),
            Kind::Prefix => path.starts_with(&self.cleaned[..self.cleaned.len() - 2]),
            Kind::Suffix => {
                let suffix = &self.cleaned[2..];
                path.ends_with(suffix)
                    // "**/foo" matches "foo".
                    || (suffix.first() == Some(&b'/') && path == &suffix[1..])
            }
            Kind::Regex(re) => re.is_match(path),
        }
    }
}

/// Appends `c` to a regex, escaped.
fn push_literal(re: &mut String, c: u32) {
    match char::from_u32(c) {
        Some(ch) => re.push_str(&regex::escape(ch.encode_utf8(&mut [0; 4]))),
        // A byte of invalid UTF-8.
        None => re.push_str(&format!("(?-u:\\x{:02x})", c & 0xff)),
    }
}

/// Compiles a cleaned pattern as patternmatcher's `compile` does. One deliberate difference: a
/// `[...]` class is translated as a class (patternmatcher copies its inside into the regex
/// unchanged, so `[*]` or `[.]` there mean something filepath.Match never meant), and an escaped
/// letter is that letter (in patternmatcher `\d` reaches the regex as "a digit").
fn compile(p: &[u8]) -> Result<Kind, PatternError> {
    let mut re = String::from("^");
    let mut kind = 0u8; // 0 exact, 1 prefix, 2 suffix, 3 regex
    let mut i = 0;
    let mut first = true;
    while i < p.len() {
        let at_start = first;
        first = false;
        match p[i] {
            b'*' if p.get(i + 1) == Some(&b'*') => {
                i += 2;
                // "**/" is "**".
                if p.get(i) == Some(&b'/') {
                    i += 1;
                }
                if i >= p.len() {
                    // "**" at the end accepts anything, as .gitignore.
                    if kind == 0 {
                        kind = 1;
                    } else {
                        re.push_str(".*");
                        kind = 3;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = 3;
                }
                if at_start {
                    kind = 2;
                }
            }
            b'*' => {
                re.push_str("[^/]*");
                kind = 3;
                i += 1;
            }
            b'?' => {
                re.push_str("[^/]");
                kind = 3;
                i += 1;
            }
            b'\\' => {
                if i + 1 < p.len() {
                    let (c, n) = next_char(&p[i + 1..]);
                    push_literal(&mut re, c);
                    kind = 3;
                    i += 1 + n;
                } else {
                    re.push_str("\\\\");
                    i += 1;
                }
            }
            b'[' => {
                let class = parse_class(&p[i + 1..]).map_err(|_| bad(p))?;
                re.push('[');
                if class.negated {
                    re.push('^');
                }
                for (lo, hi) in &class.ranges {
                    if lo > hi {
                        return Err(bad(p));
                    }
                    push_literal(&mut re, *lo);
                    if lo != hi {
                        re.push('-');
                        push_literal(&mut re, *hi);
                    }
                }
                re.push(']');
                kind = 3;
                i += 1 + class.len;
            }
            _ => {
                let (c, n) = next_char(&p[i..]);
                push_literal(&mut re, c);
                i += n;
            }
        }
    }
    Ok(match kind {
        0 => Kind::Exact,
        1 => Kind::Prefix,
        2 => Kind::Suffix,
        _ => {
            re.push('$');
            Kind::Regex(Regex::new(&re).map_err(|_| bad(p))?)
        }
    })
}

/// A list of patterns, later ones overriding earlier ones, `!` marking exceptions: the rules of
/// `.dockerignore` and `COPY --exclude` (moby/patternmatcher).
#[derive(Debug, Clone, Default)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

/// Which patterns a directory matched, handed down to its children
/// (patternmatcher's `MatchInfo`).
#[derive(Debug, Clone, Default)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

impl PatternMatcher {
    /// patternmatcher's `New`: whitespace trimmed, empty lines dropped, each pattern cleaned;
    /// a lone `!` and malformed patterns are errors.
    pub fn new<S: AsRef<[u8]>>(patterns: &[S]) -> Result<PatternMatcher, PatternError> {
        let mut pm = PatternMatcher::default();
        for raw in patterns {
            let p = raw.as_ref().trim_ascii();
            if p.is_empty() {
                continue;
            }
            let mut p = clean(p);
            let mut exclusion = false;
            if p[0] == b'!' {
                if p.len() == 1 {
                    return Err(PatternError("illegal exclusion pattern: \"!\"".into()));
                }
                exclusion = true;
                p.remove(0);
                pm.exclusions = true;
            }
            validate(&p)?;
            let kind = compile(&p)?;
            pm.patterns.push(Pattern {
                cleaned: p,
                kind,
                exclusion,
            });
        }
        Ok(pm)
    }

    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Are there `!` exceptions (so an excluded directory may still have included children)?
    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    /// Could an exception (`!pattern`) re-include something under directory `dir` (relative,
    /// cleaned)? Conservative: false only when no exception's literal start (up to its first
    /// wildcard) agrees with `dir/`, so an excluded directory that no exception can reach is
    /// not searched (fsutil prunes such directories too).
    pub fn exceptions_may_reach(&self, dir: &[u8]) -> bool {
        let mut d = dir.to_vec();
        d.push(b'/');
        self.patterns.iter().filter(|p| p.exclusion).any(|p| {
            let end = p
                .cleaned
                .iter()
                .position(|c| matches!(c, b'*' | b'?' | b'[' | b'\\'))
                .unwrap_or(p.cleaned.len());
            let pre = &p.cleaned[..end];
            if end == p.cleaned.len() {
                // A literal pattern matches itself and what is under it.
                return pre == dir || pre.starts_with(&d) || d.starts_with(&[pre, b"/"].concat());
            }
            if pre.len() <= d.len() {
                d.starts_with(pre)
            } else {
                pre.starts_with(&d)
            }
        })
    }

    /// patternmatcher's `MatchesOrParentMatches`: is `file` (slash-separated, relative) matched,
    /// itself or through a parent directory, and not re-included by a later exception?
    pub fn matches_or_parent_matches(&self, file: &[u8]) -> bool {
        let parent = parent_dir(file);
        let parent_dirs: Vec<&[u8]> = parent.split(|&c| c == b'/').collect();
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            let mut m = pattern.matches(file);
            if !m && parent != b"." {
                m = (1..=parent_dirs.len()).any(|i| pattern.matches(&parent_dirs[..i].join(&b'/')));
            }
            if m {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// patternmatcher's `MatchesUsingParentResults`, for a walk from the top: `parent` is what
    /// the walk returned for the parent directory (the default for a top-level entry, or for a
    /// path checked without its parents).
    pub fn matches_using_parent_results(
        &self,
        file: &[u8],
        parent: &MatchInfo,
    ) -> (bool, MatchInfo) {
        let parent_matched = &parent.parent_matched;
        let known = parent_matched.len() == self.patterns.len();
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        let mut matched = false;
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut m = known && parent_matched[i];
            if !m {
                if pattern.exclusion != matched {
                    continue;
                }
                m = pattern.matches(file);
                if !m && !known {
                    let parent = parent_dir(file);
                    if parent != b"." {
                        let dirs: Vec<&[u8]> = parent.split(|&c| c == b'/').collect();
                        m = (1..=dirs.len()).any(|i| pattern.matches(&dirs[..i].join(&b'/')));
                    }
                }
            }
            info.parent_matched[i] = m;
            if m {
                matched = !pattern.exclusion;
            }
        }
        (matched, info)
    }
}

/// Go's `filepath.Dir` for a relative, cleaned path.
fn parent_dir(file: &[u8]) -> Vec<u8> {
    match file.iter().rposition(|&c| c == b'/') {
        Some(i) => clean(&file[..i]),
        None => b".".to_vec(),
    }
}

/// Reads an ignore file as moby's `ignorefile.ReadAll`: a UTF-8 BOM stripped, `#` lines skipped,
/// whitespace trimmed, each pattern cleaned and a leading `/` removed (`!` kept in front).
pub fn read_ignore_file(data: &[u8]) -> Vec<Vec<u8>> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut out = Vec::new();
    // bufio.Scanner's lines: split on \n, a trailing \r dropped.
    for line in data.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b"#") {
            continue;
        }
        let mut p = line.trim_ascii();
        if p.is_empty() {
            continue;
        }
        let invert = p[0] == b'!';
        if invert {
            p = p[1..].trim_ascii();
        }
        let mut pattern = Vec::new();
        if !p.is_empty() {
            let mut c = clean(p);
            if c.len() > 1 && c[0] == b'/' {
                c.remove(0);
            }
            pattern = c;
        }
        if invert {
            pattern.insert(0, b'!');
        }
        out.push(pattern);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// patternmatcher's package-level `MatchesOrParentMatches` (a `.` path never matches).
    fn matches(file: &str, patterns: &[&str]) -> Result<bool, PatternError> {
        let pm = PatternMatcher::new(patterns)?;
        let file = clean(file.as_bytes());
        if file == b"." {
            return Ok(false);
        }
        Ok(pm.matches_or_parent_matches(&file))
    }

    #[test]
    fn simple_cases() {
        assert!(matches("fileutils.go", &["*"]).unwrap());
        assert!(matches("fileutils.go", &["*.go"]).unwrap());
        assert!(matches("fileutils.go", &["!fileutils.go", "*.go"]).unwrap());
        assert!(!matches("docs/README.md", &["docs", "!docs/README.md"]).unwrap());
        assert!(!matches("docs/README.md", &["docs/", "!docs/README.md"]).unwrap());
        assert!(!matches("docs/README.md", &["docs/*", "!docs/README.md"]).unwrap());
        assert!(!matches("fileutils.go", &["*.go", "!fileutils.go"]).unwrap());
        assert!(!matches(".", &["*.go"]).unwrap());
        assert!(matches("fileutils.go", &["!"]).is_err());
        assert!(!matches("/any/path/there", &[]).unwrap());
        assert!(matches("/any/path/there", &["["]).is_err());
    }

    const TESTS: &[(&str, &str, bool)] = &[
        ("**", "file", true),
        ("**", "file/", true),
        ("**/", "file", true),
        ("**/", "file/", true),
        ("**", "/", true),
        ("**/", "/", true),
        ("**", "dir/file", true),
        ("**/", "dir/file", true),
        ("**", "dir/file/", true),
        ("**/", "dir/file/", true),
        ("**/**", "dir/file", true),
        ("**/**", "dir/file/", true),
        ("dir/**", "dir/file", true),
        ("dir/**", "dir/file/", true),
        ("dir/**", "dir/dir2/file", true),
        ("dir/**", "dir/dir2/file/", true),
        ("**/dir", "dir", true),
        ("**/dir", "dir/file", true),
        ("**/dir2/*", "dir/dir2/file", true),
        ("**/dir2/*", "dir/dir2/file/", true),
        ("**/dir2/**", "dir/dir2/dir3/file", true),
        ("**/dir2/**", "dir/dir2/dir3/file/", true),
        ("**file", "file", true),
        ("**file", "dir/file", true),
        ("**/file", "dir/file", true),
        ("**file", "dir/dir/file", true),
        ("**/file", "dir/dir/file", true),
        ("**/file*", "dir/dir/file", true),
        ("**/file*", "dir/dir/file.txt", true),
        ("**/file*txt", "dir/dir/file.txt", true),
        ("**/file*.txt", "dir/dir/file.txt", true),
        ("**/file*.txt*", "dir/dir/file.txt", true),
        ("**/**/*.txt", "dir/dir/file.txt", true),
        ("**/**/*.txt2", "dir/dir/file.txt", false),
        ("**/*.txt", "file.txt", true),
        ("**/**/*.txt", "file.txt", true),
        ("a**/*.txt", "a/file.txt", true),
        ("a**/*.txt", "a/dir/file.txt", true),
        ("a**/*.txt", "a/dir/dir/file.txt", true),
        ("a/*.txt", "a/dir/file.txt", false),
        ("a/*.txt", "a/file.txt", true),
        ("a/*.txt**", "a/file.txt", true),
        ("a[b-d]e", "ae", false),
        ("a[b-d]e", "ace", true),
        ("a[b-d]e", "aae", false),
        ("a[^b-d]e", "aze", true),
        (".*", ".foo", true),
        (".*", "foo", false),
        ("abc.def", "abcdef", false),
        ("abc.def", "abc.def", true),
        ("abc.def", "abcZdef", false),
        ("abc?def", "abcZdef", true),
        ("abc?def", "abcdef", false),
        ("a\\\\", "a\\", true),
        ("**/foo/bar", "foo/bar", true),
        ("**/foo/bar", "dir/foo/bar", true),
        ("**/foo/bar", "dir/dir2/foo/bar", true),
        ("abc/**", "abc", false),
        ("abc/**", "abc/def", true),
        ("abc/**", "abc/def/ghi", true),
        ("**/.foo", ".foo", true),
        ("**/.foo", "bar.foo", false),
        ("a(b)c/def", "a(b)c/def", true),
        ("a(b)c/def", "a(b)c/xyz", false),
        ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
        (
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            true,
        ),
        (
            "dist/*.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            true,
        ),
        ("a\\*b", "a*b", true),
    ];

    const MULTI: &[(&[&str], &str, bool)] = &[
        (&["**", "!util/docker/web"], "util/docker/web/foo", false),
        (
            &["**", "!util/docker/web", "util/docker/web/foo"],
            "util/docker/web/foo",
            true,
        ),
        (
            &[
                "**",
                "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            ],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            false,
        ),
        (
            &["**", "!dist/*.whl"],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            false,
        ),
    ];

    /// Walks down `text`'s parents as fsutil's walker does, then checks `text`.
    fn walk_check(pm: &PatternMatcher, text: &str) -> bool {
        let parent = parent_dir(text.as_bytes());
        let mut info = MatchInfo::default();
        if parent != b"." {
            let dirs: Vec<&[u8]> = parent.split(|&c| c == b'/').collect();
            for i in 1..=dirs.len() {
                info = pm
                    .matches_using_parent_results(&dirs[..i].join(&b'/'), &info)
                    .1;
            }
        }
        pm.matches_using_parent_results(text.as_bytes(), &info).0
    }

    #[test]
    fn matches_table() {
        for &(pattern, text, pass) in TESTS {
            let pm = PatternMatcher::new(&[pattern]).unwrap();
            assert_eq!(
                pm.matches_or_parent_matches(text.as_bytes()),
                pass,
                "or-parent {pattern:?} {text:?}"
            );
            assert_eq!(walk_check(&pm, text), pass, "walk {pattern:?} {text:?}");
            let none = pm
                .matches_using_parent_results(text.as_bytes(), &MatchInfo::default())
                .0;
            assert_eq!(none, pass, "no context {pattern:?} {text:?}");
        }
        for &(patterns, text, pass) in MULTI {
            let pm = PatternMatcher::new(patterns).unwrap();
            assert_eq!(
                pm.matches_or_parent_matches(text.as_bytes()),
                pass,
                "{patterns:?} {text:?}"
            );
            assert_eq!(walk_check(&pm, text), pass, "walk {patterns:?} {text:?}");
            let none = pm
                .matches_using_parent_results(text.as_bytes(), &MatchInfo::default())
                .0;
            assert_eq!(none, pass, "no context {patterns:?} {text:?}");
        }
    }

    #[test]
    fn clean_patterns() {
        assert_eq!(
            PatternMatcher::new(&["docs", "config"])
                .unwrap()
                .patterns()
                .len(),
            2
        );
        assert_eq!(
            PatternMatcher::new(&["docs", "config", ""])
                .unwrap()
                .patterns()
                .len(),
            2
        );
        assert!(PatternMatcher::new(&["docs", "!docs/README.md"])
            .unwrap()
            .has_exclusions());
        assert!(PatternMatcher::new(&["docs", "  !docs/README.md"])
            .unwrap()
            .has_exclusions());
        assert!(PatternMatcher::new(&["docs", "!docs/README.md  "])
            .unwrap()
            .has_exclusions());
        assert!(PatternMatcher::new(&["!"]).is_err());
        assert!(!PatternMatcher::new(&["docs"]).unwrap().has_exclusions());
    }

    /// Go's filepath.Match tests, as patternmatcher runs them through `Matches`; `None` means
    /// ErrBadPattern.
    const MATCH_TESTS: &[(&str, &str, Option<bool>)] = &[
        ("abc", "abc", Some(true)),
        ("*", "abc", Some(true)),
        ("*c", "abc", Some(true)),
        ("a*", "a", Some(true)),
        ("a*", "abc", Some(true)),
        ("a*", "ab/c", Some(true)),
        ("a*/b", "abc/b", Some(true)),
        ("a*/b", "a/c/b", Some(false)),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", Some(true)),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Some(true)),
        ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Some(false)),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Some(false)),
        ("a*b?c*x", "abxbbxdbxebxczzx", Some(true)),
        ("a*b?c*x", "abxbbxdbxebxczzy", Some(false)),
        ("ab[c]", "abc", Some(true)),
        ("ab[b-d]", "abc", Some(true)),
        ("ab[e-g]", "abc", Some(false)),
        ("ab[^c]", "abc", Some(false)),
        ("ab[^b-d]", "abc", Some(false)),
        ("ab[^e-g]", "abc", Some(true)),
        ("a\\*b", "a*b", Some(true)),
        ("a\\*b", "ab", Some(false)),
        ("a?b", "a☺b", Some(true)),
        ("a[^a]b", "a☺b", Some(true)),
        ("a???b", "a☺b", Some(false)),
        ("a[^a][^a][^a]b", "a☺b", Some(false)),
        ("[a-ζ]*", "α", Some(true)),
        ("*[a-ζ]", "A", Some(false)),
        ("a?b", "a/b", Some(false)),
        ("a*b", "a/b", Some(false)),
        ("[\\]a]", "]", Some(true)),
        ("[\\-]", "-", Some(true)),
        ("[x\\-]", "x", Some(true)),
        ("[x\\-]", "-", Some(true)),
        ("[x\\-]", "z", Some(false)),
        ("[\\-x]", "x", Some(true)),
        ("[\\-x]", "-", Some(true)),
        ("[\\-x]", "a", Some(false)),
        ("[]a]", "]", None),
        ("[-]", "-", None),
        ("[x-]", "x", None),
        ("[x-]", "-", None),
        ("[x-]", "z", None),
        ("[-x]", "x", None),
        ("[-x]", "-", None),
        ("[-x]", "a", None),
        ("\\", "a", None),
        ("[a-b-c]", "a", None),
        ("[", "a", None),
        ("[^", "a", None),
        ("[^bc", "a", None),
        ("a[", "a", None),
        ("a[", "ab", None),
        ("*x", "xxx", Some(true)),
    ];

    #[test]
    fn match_tests_through_the_matcher() {
        for &(pattern, s, want) in MATCH_TESTS {
            let got = matches(s, &[pattern]).ok();
            assert_eq!(got, want, "Matches({pattern:?}, {s:?})");
        }
    }

    #[test]
    fn match_tests_through_fnmatch() {
        // Go's own filepath.Match table: same results, except that "a*" does not match "ab/c"
        // ("*" never crosses "/"; patternmatcher's parent-directory rule made that one pass).
        for &(pattern, s, want) in MATCH_TESTS {
            let want = if (pattern, s) == ("a*", "ab/c") {
                Some(false)
            } else {
                want
            };
            let got = fnmatch(pattern.as_bytes(), s.as_bytes()).ok();
            assert_eq!(got, want, "Match({pattern:?}, {s:?})");
        }
    }

    #[test]
    fn compile_kinds() {
        let cases: &[(&str, &str)] = &[
            ("*", "regex"),
            ("file*", "regex"),
            ("**", "suffix"),
            ("**/**", "regex"),
            ("dir/**", "prefix"),
            ("**/dir", "suffix"),
            ("**/dir2/*", "regex"),
            ("**file", "suffix"),
            ("a[b-d]e", "regex"),
            ("abc.def", "exact"),
            ("**/foo/bar", "suffix"),
            ("a(b)c/def", "exact"),
            ("a.|)$(}+{bc", "exact"),
        ];
        for &(p, want) in cases {
            let got = match compile(p.as_bytes()).unwrap() {
                Kind::Exact => "exact",
                Kind::Prefix => "prefix",
                Kind::Suffix => "suffix",
                Kind::Regex(_) => "regex",
            };
            assert_eq!(got, want, "{p}");
        }
    }

    #[test]
    fn classes_are_classes() {
        // patternmatcher would put "[^/]*" inside the class; here "[*]" is a star.
        let pm = PatternMatcher::new(&["a[*]b", "c[.]d", "[[]x"]).unwrap();
        assert!(pm.matches_or_parent_matches(b"a*b"));
        assert!(!pm.matches_or_parent_matches(b"axxb"));
        assert!(pm.matches_or_parent_matches(b"c.d"));
        assert!(!pm.matches_or_parent_matches(b"cxd"));
        assert!(pm.matches_or_parent_matches(b"[x"));
        // A reversed range is refused up front (patternmatcher fails on the first match).
        assert!(PatternMatcher::new(&["[Local-Only]/"]).is_err());
    }

    #[test]
    fn exceptions_reach() {
        let pm = PatternMatcher::new(&["*", "!src", "!docs/*.md", "!**/keep"]).unwrap();
        let only = PatternMatcher::new(&["*", "!src", "!docs/*.md"]).unwrap();
        for (dir, want) in [
            ("src", true),
            ("src/a", true),
            ("docs", true),
            ("node_modules", false),
            ("srcs", false),
            ("doc", false),
        ] {
            assert_eq!(only.exceptions_may_reach(dir.as_bytes()), want, "{dir}");
            assert!(pm.exceptions_may_reach(dir.as_bytes()), "{dir}");
        }
        assert!(!PatternMatcher::new(&["x"])
            .unwrap()
            .exceptions_may_reach(b"x"));
    }

    #[test]
    fn non_utf8_names() {
        let pm = PatternMatcher::new(&["*.txt", "raw\u{e9}"]).unwrap();
        assert!(pm.matches_or_parent_matches(b"a.txt"));
        assert!(pm.matches_or_parent_matches("raw\u{e9}".as_bytes()));
        assert!(!pm.matches_or_parent_matches(b"\xff\xfe.bin"));
        assert!(fnmatch(b"*", b"\xff\xfe").unwrap());
        assert!(fnmatch(b"?", b"\xff").unwrap());
    }

    #[test]
    fn go_clean() {
        for (input, want) in [
            ("", "."),
            ("/", "/"),
            ("a/b/../c", "a/c"),
            ("../a", "../a"),
            ("/../a", "/a"),
            ("a/../..", ".."),
            ("./a//b/", "a/b"),
            ("!/x", "!/x"),
        ] {
            assert_eq!(clean(input.as_bytes()), want.as_bytes(), "{input}");
        }
    }

    #[test]
    fn ignore_file_lines() {
        let content = "\u{feff}test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! \r\n./x/../y\n";
        let got: Vec<String> = read_ignore_file(content.as_bytes())
            .into_iter()
            .map(|p| String::from_utf8(p).unwrap())
            .collect();
        assert_eq!(
            got,
            [
                "test1",
                "test2",
                "a/file/here",
                "lastfile",
                "!inverted/abs/path",
                "!",
                "!",
                "y"
            ]
        );
        assert!(read_ignore_file(b"").is_empty());
    }

    #[test]
    fn wildcard_helpers() {
        assert!(has_wildcards(b"*.txt"));
        assert!(has_wildcards(b"a[b]"));
        assert!(!has_wildcards(b"a\\*b"));
        assert!(!has_wildcards(b"plain"));
        assert_eq!(unescape(b"a\\*b"), b"a*b");
    }

    #[test]
    fn star_backtracking_is_bounded() {
        let name = vec![b'a'; 2000];
        let mut pattern = b"*a".repeat(50);
        pattern.push(b'b');
        assert!(!fnmatch(&pattern, &name).unwrap());
    }
}
