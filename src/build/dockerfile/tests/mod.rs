//! Table-driven tests for the Dockerfile frontend, many ported from BuildKit's own.

mod expand;
mod heredoc;
mod instructions;
mod parser;
mod plan;
mod robust;
mod shell;
mod upstream;

use std::collections::BTreeMap;
use std::path::Path;

use super::{parse, Dockerfile};

/// An environment from `k=v` pairs (the last of a name wins).
pub(super) fn env_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn df(src: &str) -> Dockerfile {
    match parse(src, Path::new("Dockerfile")) {
        Ok(d) => d,
        Err(e) => panic!("parse failed: {e}\n--- source ---\n{src}"),
    }
}

pub(super) fn parse_err(src: &str) -> String {
    match parse(src, Path::new("Dockerfile")) {
        Ok(d) => panic!("parsed but should not: {src:?} -> {d:?}"),
        Err(e) => e.to_string(),
    }
}
