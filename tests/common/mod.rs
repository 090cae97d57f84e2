//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod dockerd;
mod project;
mod snapshot;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[allow(unused_imports)] // not every test binary runs projects
pub use project::{out, pipe_lines, Project};
#[allow(unused_imports)] // not every test binary compares host snapshots
pub use snapshot::{host_snapshot, HostSnapshot};

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

/// A project name for `base` that no other test run on this host uses at the same time:
/// bridges, firewall tables and cgroups are host-wide and named after the project.
#[allow(dead_code)] // not every test binary names projects
pub fn project_name(base: &str) -> String {
    format!("{base}-{:x}", std::process::id())
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

/// The image test bed's environment (`tests/testbed/testbed.sh env`), when its registries are
/// running. `None` means the test bed is not served: `scripts/test` (as root) serves it.
pub fn testbed_env() -> Option<Vec<(String, String)>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/testbed.sh");
    let status = Command::new(&script).arg("status").output().ok()?;
    if !String::from_utf8_lossy(&status.stdout).contains("running") {
        return None;
    }
    let out = Command::new(&script).arg("env").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let vars: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.trim_matches('\'').trim_matches('"').to_string(),
            )
        })
        .collect();
    let conf = vars
        .iter()
        .find(|(k, _)| k == "CONTAINERS_REGISTRIES_CONF")?;
    Path::new(&conf.1).is_file().then_some(vars)
}

/// A private `RCOMPOSE_ROOT`/`RCOMPOSE_RUN` pair for one test.
pub struct State {
    pub dir: tempfile::TempDir,
}

impl State {
    pub fn new() -> State {
        State {
            dir: tempfile::Builder::new()
                .prefix("rcompose-state-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// `RCOMPOSE_RUN`.
    #[allow(dead_code)] // not every test binary looks at it
    pub fn run(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// rcompose with this state and the given environment.
    pub fn cmd(&self, env: &[(String, String)]) -> Command {
        let mut cmd = rcompose();
        cmd.env("RCOMPOSE_ROOT", self.root())
            .env("RCOMPOSE_RUN", self.run())
            // Credentials and registries come only from what the test sets.
            .env("HOME", self.dir.path())
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_CONFIG")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("XDG_CONFIG_HOME");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }
}

/// Every cgroup hierarchy root (v2, or each v1 controller), to check nothing was left in them.
pub fn cgroup_roots() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    let mut roots = vec![base.to_path_buf()];
    if let Ok(d) = std::fs::read_dir(base) {
        roots.extend(d.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    roots
}
