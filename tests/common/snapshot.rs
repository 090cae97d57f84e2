//! What rcompose can leave on a host, taken as text so that two snapshots compare: links,
//! firewall rules, mounts, cgroups, processes of the test's state, and every file under the
//! test's `RCOMPOSE_ROOT` and `RCOMPOSE_RUN`. A command that must touch nothing (`--dry-run`)
//! leaves the snapshot as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use super::{cgroup_roots, stdout, State};

/// One snapshot: for each part of the host, its lines (sorted, so order does not matter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSnapshot {
    pub parts: BTreeMap<&'static str, BTreeSet<String>>,
}

/// The host as rcompose could change it, seen from this test (see the module comment).
/// Host-wide parts (links, rules, mounts, cgroups) include other programs' objects: a test
/// that compares them must not run beside tests that create containers (`engine.rs` takes a
/// lock), and [`HostSnapshot::without_other_projects`] drops what is plainly someone else's.
pub fn host_snapshot(state: &State) -> HostSnapshot {
    let mut parts = BTreeMap::new();
    parts.insert("link", links());
    parts.insert("nft", nft_ruleset());
    parts.insert("mount", mounts());
    parts.insert("cgroup", cgroups());
    parts.insert("process", processes(state));
    let mut files = BTreeSet::new();
    for dir in [state.root(), state.run()] {
        list_files(&dir, &mut files);
    }
    parts.insert("file", files);
    HostSnapshot { parts }
}

impl HostSnapshot {
    /// What differs from `later`: `+ part: line` for a line only `later` has, `- part: line`
    /// for one it lost.
    pub fn diff(&self, later: &HostSnapshot) -> Vec<String> {
        let empty = BTreeSet::new();
        let names: BTreeSet<&&str> = self.parts.keys().chain(later.parts.keys()).collect();
        let mut out = Vec::new();
        for name in names {
            let a = self.parts.get(*name).unwrap_or(&empty);
            let b = later.parts.get(*name).unwrap_or(&empty);
            out.extend(a.difference(b).map(|l| format!("- {name}: {l}")));
            out.extend(b.difference(a).map(|l| format!("+ {name}: {l}")));
        }
        out
    }

    /// The snapshot without what is plainly another project's or another test's: the firewall
    /// tables and cgroups of other rcompose projects, bridges (and the veths on them) other than
    /// those of `networks` (resolved network names, `<project>_<key>`), and mounts under other
    /// tests' state directories. On a shared host other test runs come and go while one test
    /// compares; what rcompose would leave by mistake is still seen (a table, cgroup or bridge
    /// of this project, a veth on no bridge or on one of its bridges, a mount of its state).
    pub fn without_other_projects(
        mut self,
        state: &State,
        project: &str,
        networks: &[&str],
    ) -> HostSnapshot {
        let own_table = format!("rcompose-{project}");
        if let Some(nft) = self.parts.get_mut("nft") {
            nft.retain(|l| {
                let table = l.split(':').next().unwrap_or_default();
                let name = table.rsplit(' ').next().unwrap_or_default();
                !name.starts_with("rcompose-") || name == own_table
            });
        }
        if let Some(cg) = self.parts.get_mut("cgroup") {
            cg.retain(|l| match l.split_once("/rcompose/") {
                None => false,
                Some((_, rest)) => rest.split('/').next() == Some(project),
            });
        }
        let bridges: Vec<String> = networks
            .iter()
            .map(|n| rcompose::network::names::bridge_name(n))
            .collect();
        if let Some(links) = self.parts.get_mut("link") {
            links.retain(|l| {
                let name = l.split(' ').nth(1).unwrap_or_default();
                let name = name.trim_end_matches(':');
                let name = name.split('@').next().unwrap_or_default();
                let master = l.split(" master ").nth(1).and_then(|m| m.split(' ').next());
                if name.starts_with("rc-") {
                    bridges.iter().any(|b| b == name)
                } else if name.starts_with("rv") {
                    master.is_none_or(|m| !m.starts_with("rc-") || bridges.iter().any(|b| b == m))
                } else {
                    true
                }
            });
        }
        let own_state = state.dir.path().to_string_lossy().into_owned();
        if let Some(mounts) = self.parts.get_mut("mount") {
            mounts.retain(|l| {
                let foreign = ["/rcompose-state-", "/rc-dk-", "/rcb-docker."]
                    .iter()
                    .any(|m| l.contains(m));
                !foreign || l.contains(&own_state)
            });
        }
        self
    }
}

/// Every link of this network namespace: index, name, flags, settings (`ip -o link`).
fn links() -> BTreeSet<String> {
    let o = Command::new("ip").args(["-o", "link"]).output();
    let text = o.map(|o| stdout(&o)).unwrap_or_default();
    text.lines().map(str::to_string).collect()
}

/// The nft ruleset without counters and other state (`nft -s`), each line prefixed with its
/// table so that a rule is told apart from the same rule in another table.
fn nft_ruleset() -> BTreeSet<String> {
    let o = Command::new("nft").args(["-s", "list", "ruleset"]).output();
    let text = o.map(|o| stdout(&o)).unwrap_or_default();
    let mut table = String::new();
    let mut lines = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(header) = line.strip_prefix("table ") {
            table = format!("table {}", header.trim_end_matches('{').trim());
        }
        lines.insert(format!("{table}: {line}"));
    }
    lines
}

/// This process's mount table, without the mount ids (a remount renumbers nothing else).
fn mounts() -> BTreeSet<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(' ').skip(2).collect::<Vec<_>>().join(" "))
        .collect()
}

/// Every cgroup directory under `rcompose` in each hierarchy.
fn cgroups() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for root in cgroup_roots() {
        walk_dirs(&root.join("rcompose"), &mut out);
    }
    out
}

fn walk_dirs(dir: &Path, out: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    out.insert(dir.display().to_string());
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk_dirs(&e.path(), out);
        }
    }
}

/// Processes started with this test's `RCOMPOSE_RUN` in their environment (a supervisor, or
/// anything rcompose spawns that inherits it): pid and command.
fn processes(state: &State) -> BTreeSet<String> {
    let marker = format!("RCOMPOSE_RUN={}", state.run().display());
    let mut out = BTreeSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let name = p.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(env) = std::fs::read(p.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|v| v == marker.as_bytes()) {
            let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            out.insert(format!("{name} {}", cmd.trim_end()));
        }
    }
    out
}

/// Path, type, size (of regular files) and mode of everything under `dir`, `dir` included.
fn list_files(dir: &Path, out: &mut BTreeSet<String>) {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return;
    };
    let t = meta.file_type();
    let kind = if t.is_dir() {
        "dir"
    } else if t.is_file() {
        "file"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_socket() {
        "socket"
    } else if t.is_fifo() {
        "fifo"
    } else {
        "other"
    };
    let size = if t.is_file() { meta.len() } else { 0 };
    out.insert(format!(
        "{} {kind} {size} {:o}",
        dir.display(),
        meta.mode() & 0o7777
    ));
    if t.is_dir() {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                list_files(&e.path(), out);
            }
        }
    }
}
