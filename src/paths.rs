//! Where rcompose keeps things: `RCOMPOSE_ROOT` (images, volumes, container layers, logs) and
//! `RCOMPOSE_RUN` (runtime state, sockets, locks). Tests point both at temporary directories.

use std::path::PathBuf;

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
