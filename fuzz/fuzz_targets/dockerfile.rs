//! The Dockerfile frontend: parse (directives, heredocs, continuations, instructions, checks),
//! the stages a target needs, and every instruction expanded as the executor would with a
//! small ARG/ENV environment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcompose::build::dockerfile::{self, Expander};
use std::collections::BTreeMap;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(df) = dockerfile::parse(text, Path::new("/fuzz/Dockerfile")) else {
        return;
    };
    let env = |name: &str| match name {
        "VERSION" => Some("1.0".to_string()),
        "EMPTY" => Some(String::new()),
        "PATH" => Some("/usr/bin:/bin".to_string()),
        _ => None,
    };
    let _ = df.meta_values(&env, &BTreeMap::new());
    let _ = df.plan(None, &env);
    if let Some(name) = df.stages.first().and_then(|s| s.name.clone()) {
        let _ = df.plan(Some(&name), &env);
    }
    let x = Expander::new(df.directives.escape);
    for stage in &df.stages {
        let _ = x.word(&stage.base, &env);
        for instruction in &stage.instructions {
            let _ = instruction.expand(&x, &env);
        }
    }
});
