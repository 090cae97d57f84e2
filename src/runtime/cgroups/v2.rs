//! The v2 layout: one directory in the unified hierarchy, controllers enabled from above.

use std::path::Path;

use super::{make_dir, read_file, write_file, CgroupError, Layout, Resources, Result};

/// Controllers enabled for containers (when the kernel offers them); `io` for its statistics.
const CONTROLLERS: [&str; 5] = ["cpu", "cpuset", "io", "memory", "pids"];

pub(super) fn create(root: &Path, path: &Path, resources: &Resources) -> Result<Layout> {
    let mut dir = root.to_path_buf();
    for component in path.components() {
        // A cgroup only has the controllers its parent enables in `cgroup.subtree_control`.
        enable_controllers(&dir, resources)?;
        dir.push(component);
        make_dir(&dir)?;
    }
    Ok(Layout::V2(dir))
}

fn enable_controllers(dir: &Path, resources: &Resources) -> Result<()> {
    let available = read_file(&dir.join("cgroup.controllers"))?;
    let available: Vec<&str> = available.split_whitespace().collect();
    let needs = [
        ("memory", resources.needs_memory(), "a memory limit"),
        ("cpu", resources.needs_cpu(), "a cpu limit"),
        ("cpuset", resources.needs_cpuset(), "cpuset"),
        ("pids", resources.pids_limit.is_some(), "pids_limit"),
    ];
    for (controller, needed, what) in needs {
        if needed && !available.contains(&controller) {
            return Err(CgroupError::ControllerMissing {
                controller,
                root: dir.to_path_buf(),
                needed: what,
            });
        }
    }
    let subtree_control = dir.join("cgroup.subtree_control");
    let enabled = read_file(&subtree_control)?;
    let enabled: Vec<&str> = enabled.split_whitespace().collect();
    let missing: Vec<String> = CONTROLLERS
        .iter()
        .filter(|c| available.contains(c) && !enabled.contains(c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    write_file(&subtree_control, &missing.join(" "))
}

pub(super) fn open(root: &Path, path: &Path) -> Result<Layout> {
    let dir = root.join(path);
    if !dir.is_dir() {
        return Err(CgroupError::Io {
            what: "open cgroup",
            path: dir,
            source: std::io::ErrorKind::NotFound.into(),
        });
    }
    Ok(Layout::V2(dir))
}

/// Kills the whole cgroup at once with `cgroup.kill`; false when the kernel (before 5.14) has
/// no such file.
pub(super) fn kill(dir: &Path) -> Result<bool> {
    let kill = dir.join("cgroup.kill");
    if !kill.exists() {
        return Ok(false);
    }
    write_file(&kill, "1")?;
    Ok(true)
}
