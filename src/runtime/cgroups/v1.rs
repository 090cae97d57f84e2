//! The v1 layout: the cgroup is one directory in each controller's own mount.

use std::fs;
use std::path::{Path, PathBuf};

use super::{cpuset, make_dir, CgroupError, Layout, Resources, Result};

/// The controllers a container joins. `cpuacct` and `blkio` only for accounting (`stats`);
/// `freezer` for pause and for killing without races; `devices` for the device allow list.
pub(super) const CONTROLLERS: [&str; 8] = [
    "freezer", "pids", "memory", "cpu", "cpuacct", "cpuset", "devices", "blkio",
];

/// The mount of one controller: `root/<name>`, or a co-mount such as `root/cpu,cpuacct` when
/// no symlink names it alone.
fn controller_base(root: &Path, name: &str) -> Option<PathBuf> {
    let direct = root.join(name);
    if direct.is_dir() {
        // Resolve `cpu -> cpu,cpuacct`, so co-mounted controllers share one directory.
        let is_link = fs::symlink_metadata(&direct).is_ok_and(|m| m.file_type().is_symlink());
        return Some(match is_link {
            true => fs::canonicalize(&direct).unwrap_or(direct),
            false => direct,
        });
    }
    fs::read_dir(root)
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            let comounts = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            comounts.split(',').any(|c| c == name) && path.is_dir()
        })
}

/// What in `resources` needs the controller, if anything.
fn needed_by(name: &str, resources: &Resources) -> Option<&'static str> {
    match name {
        "memory" if resources.needs_memory() => Some("a memory limit"),
        "cpu" if resources.needs_cpu() => Some("a cpu limit"),
        "cpuset" if resources.needs_cpuset() => Some("cpuset"),
        "pids" if resources.pids_limit.is_some() => Some("pids_limit"),
        "devices" if resources.devices.is_some() => Some("the device allow list"),
        _ => None,
    }
}

pub(super) fn create(root: &Path, path: &Path, resources: &Resources) -> Result<Layout> {
    let mut dirs = Vec::new();
    for name in CONTROLLERS {
        let Some(base) = controller_base(root, name) else {
            if let Some(needed) = needed_by(name, resources) {
                return Err(CgroupError::ControllerMissing {
                    controller: name,
                    root: root.to_path_buf(),
                    needed,
                });
            }
            continue;
        };
        // One level at a time: a new cpuset cgroup starts with no CPUs and no memory nodes,
        // and takes no process until it has some, so each level copies its parent's.
        let mut dir = base;
        for component in path.components() {
            let parent = dir.clone();
            dir.push(component);
            make_dir(&dir)?;
            if name == "cpuset" {
                cpuset::inherit_v1(&parent, &dir)?;
            }
        }
        dirs.push((name, dir));
    }
    if dirs.is_empty() {
        return Err(CgroupError::NotMounted(root.to_path_buf()));
    }
    Ok(Layout::V1(dirs))
}

pub(super) fn open(root: &Path, path: &Path) -> Result<Layout> {
    let dirs: Vec<_> = CONTROLLERS
        .into_iter()
        .filter_map(|name| Some((name, controller_base(root, name)?.join(path))))
        .filter(|(_, dir)| dir.is_dir())
        .collect();
    if dirs.is_empty() {
        return Err(CgroupError::Io {
            what: "open cgroup",
            path: root.join("*").join(path),
            source: std::io::ErrorKind::NotFound.into(),
        });
    }
    Ok(Layout::V1(dirs))
}

pub(super) fn dir_of<'a>(dirs: &'a [(&'static str, PathBuf)], name: &str) -> Option<&'a Path> {
    dirs.iter()
        .find(|(controller, _)| *controller == name)
        .map(|(_, dir)| dir.as_path())
}

/// The distinct directories, in controller order (co-mounts appear once).
pub(super) fn unique_dirs(dirs: &[(&'static str, PathBuf)]) -> Vec<PathBuf> {
    let mut unique: Vec<PathBuf> = Vec::new();
    for (_, dir) in dirs {
        if !unique.contains(dir) {
            unique.push(dir.clone());
        }
    }
    unique
}

/// The controller mounts the directories live in.
pub(super) fn unique_bases(dirs: &[(&'static str, PathBuf)], path: &Path) -> Vec<PathBuf> {
    let depth = path.components().count();
    unique_dirs(dirs)
        .into_iter()
        .filter_map(|dir| dir.ancestors().nth(depth).map(Path::to_path_buf))
        .collect()
}

/// The directory listing the members: every controller lists the same processes.
pub(super) fn main_dir<'a>(dirs: &'a [(&'static str, PathBuf)]) -> &'a Path {
    ["freezer", "pids", "memory"]
        .into_iter()
        .find_map(|name| dir_of(dirs, name))
        .or_else(|| dirs.first().map(|(_, dir)| dir.as_path()))
        .unwrap_or(Path::new("/nonexistent"))
}
