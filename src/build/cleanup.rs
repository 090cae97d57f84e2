//! What an interrupted or crashed build leaves, and how it goes: the steps' cgroups are named
//! after the building process (`rcompose-build-<pid>-<n>`), its scratch directories too
//! (`<kind>-<pid>-…` in the store's tmp). Ctrl-C kills the running steps and lets the build
//! unwind (its drops remove what it made); a build killed outright is swept by the next one:
//! whatever belongs to a process that no longer exists is removed. Nothing is published before
//! it is whole (layers and records land by rename), so the cache stays usable.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::image::store::Store;

/// Where build steps' cgroups live, relative to each hierarchy's root.
pub const CGROUP_PARENT: &str = "rcompose/build";

/// A fresh cgroup name for a step of this process.
pub fn step_name() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "rcompose-build-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn pid_of_step(name: &str) -> Option<u32> {
    name.strip_prefix("rcompose-build-")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Every build-step cgroup directory on this host (v2, or each v1 controller).
fn step_cgroups() -> Vec<PathBuf> {
    let Ok(h) = crate::runtime::cgroups::Hierarchy::detect() else {
        return Vec::new();
    };
    let root = h.root().to_path_buf();
    let mut parents = vec![root.join(CGROUP_PARENT)];
    if let Ok(entries) = fs::read_dir(&root) {
        parents.extend(entries.flatten().map(|e| e.path().join(CGROUP_PARENT)));
    }
    parents
        .into_iter()
        .filter_map(|p| fs::read_dir(p).ok())
        .flat_map(|d| d.flatten().map(|e| e.path()))
        .collect()
}

/// Kills the processes of the step cgroups `which` selects, then removes the cgroups.
fn kill_steps(which: impl Fn(u32) -> bool) {
    for dir in step_cgroups() {
        let Some(pid) = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(pid_of_step)
        else {
            continue;
        };
        if !which(pid) {
            continue;
        }
        // cgroup v2's kill file, else each process of the cgroup.
        if fs::write(dir.join("cgroup.kill"), "1").is_err() {
            if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
                for p in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    // SAFETY: SIGKILL to a process of a build step's own cgroup.
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
            }
        }
        let _ = fs::remove_dir(&dir);
    }
}

/// Ctrl-C: this process's running steps die now (the build then unwinds).
pub fn kill_own_steps() {
    let me = std::process::id();
    kill_steps(|pid| pid == me);
}

/// Before a build: the leftovers of builds whose process is gone.
pub fn sweep(store: &Store) {
    kill_steps(|pid| !alive(pid));
    let Ok(entries) = fs::read_dir(store.root().join("tmp")) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // `<kind>-<pid>-<n>-<nanos>`.
        let mut parts = name.rsplitn(4, '-');
        let (_, _, pid) = (parts.next(), parts.next(), parts.next());
        let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if alive(pid) {
            continue;
        }
        let p = e.path();
        let _ = match fs::symlink_metadata(&p) {
            Ok(md) if md.is_dir() => fs::remove_dir_all(&p),
            _ => fs::remove_file(&p),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_carry_the_pid() {
        let n = step_name();
        assert_eq!(pid_of_step(&n), Some(std::process::id()));
        assert_eq!(pid_of_step("rcompose-build-x-1"), None);
        assert_eq!(pid_of_step("other"), None);
    }

    #[test]
    fn the_tmp_leftovers_of_dead_processes_go() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        // pid 0 never names a live process of ours; our own pid is alive.
        let dead = store.root().join("tmp/step-999999999-1-2");
        let mine = store.temp_path("step");
        fs::create_dir_all(dead.join("upper/x")).unwrap();
        fs::create_dir_all(&mine).unwrap();
        sweep(&store);
        assert!(!dead.exists());
        assert!(mine.exists());
    }
}
