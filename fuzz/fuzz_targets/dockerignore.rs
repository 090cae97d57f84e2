//! `.dockerignore` (moby/patternmatcher semantics): the file read and compiled, then paths
//! matched. The first line is the path to match (with its parents), the rest the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcompose::build::context::pattern::{read_ignore_file, PatternMatcher};

fuzz_target!(|data: &[u8]| {
    let (path, file) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"a/b/c.txt"[..], data),
    };
    let patterns = read_ignore_file(file);
    let Ok(matcher) = PatternMatcher::new(&patterns) else {
        return;
    };
    for p in [path, b"a", b"a/b/c.txt", b"node_modules/x/y", b".git/HEAD"] {
        let _ = matcher.matches_or_parent_matches(p);
        let _ = matcher.exceptions_may_reach(p);
    }
});
