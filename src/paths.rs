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

/// The image content store.
pub fn images() -> PathBuf {
    root().join("images")
}
