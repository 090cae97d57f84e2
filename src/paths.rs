//! Where rcompose keeps things: `RCOMPOSE_ROOT` (images, volumes, container layers, logs) and
//! `RCOMPOSE_RUN` (runtime state, sockets, locks). Tests point both at temporary directories.

use std::io;
use std::path::{Path, PathBuf};

pub const DEFAULT_ROOT: &str = "/var/lib/rcompose";
pub const DEFAULT_RUN: &str = "/run/rcompose";

/// `$RCOMPOSE_ROOT`, else `/var/lib/rcompose`.
pub fn root() -> PathBuf {
    std::env::var_os("RCOMPOSE_ROOT")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT))
}

/// `$RCOMPOSE_RUN`, else `/run/rcompose`.
pub fn run() -> PathBuf {
    std::env::var_os("RCOMPOSE_RUN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RUN))
}

/// Makes `$RCOMPOSE_ROOT` and `$RCOMPOSE_RUN` private to root (0700), creating them when
/// missing and tightening them when they are open to others (as docker keeps its data root).
/// Layers hold the images' setuid binaries, and containers' layers and volumes are writable by
/// containers: a host user who could reach them could run a setuid-root program an image
/// brought, or read a container's files. Containers reach what they need through their mounts,
/// never by these paths.
pub fn make_private() -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    for dir in [root(), run()] {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        // Never through a link: the mode is set on what is really there.
        let md = std::fs::symlink_metadata(&dir)?;
        if !md.is_dir() {
            return Err(std::io::Error::other(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        if md.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// The image content store.
pub fn images() -> PathBuf {
    root().join("images")
}

/// The named volumes' store: `$RCOMPOSE_ROOT/volumes`.
pub fn volumes() -> PathBuf {
    root().join("volumes")
}

/// The containers' directories: `$RCOMPOSE_ROOT/containers`.
pub fn containers() -> PathBuf {
    root().join("containers")
}

/// A path inside a container, cleaned once, lexically, as Go's `path.Clean` and the engine do:
/// no `.`, `..`, repeated or trailing slashes survive (`/../../etc` is `/etc`). `None` for a
/// relative path, which no caller accepts. Everything that puts a compose file's container path
/// to use (volume and tmpfs targets, configs, secrets, devices, `working_dir`) goes through
/// here, so a `..` never reaches code that joins it to a host path.
pub fn container_path(raw: &str) -> Option<String> {
    if !raw.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// Whether `name` is one plain path component: not empty, no `/`, not `.` or `..`.
pub fn is_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

/// Removes `dir`, which must be a direct child of `store` (compared lexically, after checking
/// that its last part is one plain component) and a real directory, not a link to one. A
/// missing directory is not an error. Every removal of a directory whose path was built from
/// input (a volume's name, a container's directory recorded in a state file) goes through here.
///
/// The tree itself is removed by `std::fs::remove_dir_all`, which walks it with `openat` and
/// `O_NOFOLLOW` (since Rust 1.58.1, CVE-2022-21658): links inside are removed, never followed.
pub fn remove_store_dir(store: &Path, dir: &Path) -> io::Result<()> {
    let refuse = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "refusing to remove {}: {why} of {}",
                dir.display(),
                store.display()
            ),
        )
    };
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| is_component(n))
        .ok_or_else(|| refuse("its name is not one path component"))?;
    if dir.parent() != Some(store) || dir.components().any(|c| c.as_os_str() == "..") {
        return Err(refuse("it is not a direct child"));
    }
    let path = store.join(name);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(md) if md.file_type().is_symlink() => {
            return Err(refuse("it is a link, not a directory"))
        }
        Ok(md) if !md.is_dir() => return Err(refuse("it is not a directory")),
        Ok(_) => {}
    }
    match std::fs::remove_dir_all(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_are_cleaned_once() {
        let c = |s: &str| container_path(s);
        assert_eq!(c("/").as_deref(), Some("/"));
        assert_eq!(c("/data").as_deref(), Some("/data"));
        assert_eq!(c("//a//b/./c/").as_deref(), Some("/a/b/c"));
        assert_eq!(c("/../../../../tmp/secret").as_deref(), Some("/tmp/secret"));
        assert_eq!(c("/x/../../etc").as_deref(), Some("/etc"));
        assert_eq!(c("/.."), Some("/".to_string()));
        assert_eq!(c("data"), None);
        assert_eq!(c("../data"), None);
        assert_eq!(c(""), None);
    }

    #[test]
    fn only_a_direct_child_directory_of_the_store_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = tmp.path().join("volumes");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(store.join("ok/_data/sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();

        // `..` in the name or the path, a grandchild, another directory: refused.
        for dir in [
            store.join("../outside"),
            store.join("ok/../../outside"),
            store.join("ok/_data"),
            outside.clone(),
            store.join(".."),
            store.clone(),
        ] {
            assert!(remove_store_dir(&store, &dir).is_err(), "{}", dir.display());
        }
        // A link in the store to a directory elsewhere is refused, and its target kept.
        std::os::unix::fs::symlink(&outside, store.join("link")).unwrap();
        let e = remove_store_dir(&store, &store.join("link")).unwrap_err();
        assert!(e.to_string().contains("link"), "{e}");
        assert!(outside.join("keep").exists());

        // A link inside the removed tree is removed, not followed.
        std::os::unix::fs::symlink(&outside, store.join("ok/_data/sub/out")).unwrap();
        remove_store_dir(&store, &store.join("ok")).unwrap();
        assert!(!store.join("ok").exists());
        assert!(outside.join("keep").exists());
        // Missing: nothing to do.
        remove_store_dir(&store, &store.join("gone")).unwrap();
    }
}
