//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `../shared/conformance` beside the repository, or `$RCOMPOSE_CONFORMANCE`.
pub fn conformance_dir() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("RCOMPOSE_CONFORMANCE") {
        return Some(PathBuf::from(p));
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance");
    p.is_dir().then(|| p.canonicalize().unwrap_or(p))
}

/// Say why a test did not run. Under CI (`CI=true`) a missing prerequisite is a failure:
/// `.ci/run` installs everything, so a skip there would hide a broken install step.
pub fn skip(test: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{test}: cannot run under CI: {why}");
    }
    eprintln!("SKIPPED {test}: {why}");
}

/// The rcompose binary built for this test run.
pub fn rcompose() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rcompose"));
    // Tests never inherit the user's compose settings.
    for (k, _) in std::env::vars() {
        if k.starts_with("COMPOSE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Run rcompose in `dir` with `args`.
pub fn rcompose_in(dir: &Path, args: &[&str]) -> Output {
    rcompose()
        .args(args)
        .current_dir(dir)
        .output()
        .expect("failed to run rcompose")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
