//! Root filesystems of build steps seen from rcompose itself (COPY, ADD, WORKDIR): overlays
//! mounted in a mount namespace of one thread, so that they vanish with the thread whatever
//! happens (an error, a panic, a crash): nothing is ever left mounted on the host.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;

use super::BuildError;
use crate::runtime::inroot;
use crate::runtime::rootfs::{self, MountOp};
use crate::runtime::syscall::LinuxSyscall;

/// One filesystem to mount: layers bottom first, writable into `upper` when given.
pub struct Overlay<'a> {
    pub layers: &'a [PathBuf],
    /// Upper and work directory (same filesystem).
    pub upper: Option<(&'a Path, &'a Path)>,
    /// Where to mount it: an empty directory of the caller's.
    pub target: &'a Path,
}

/// Mounts each overlay in a fresh mount namespace of a new thread and calls `f` there with the
/// root of each, opened as a directory fd (paths inside are resolved with `inroot`).
pub fn with_overlays<R: Send>(
    overlays: &[Overlay<'_>],
    f: impl FnOnce(&[OwnedFd]) -> Result<R, BuildError> + Send,
) -> Result<R, BuildError> {
    let mut ops = vec![MountOp::MakePrivate];
    for o in overlays {
        ops.push(overlay_or_bind(o)?);
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            // CLONE_NEWNS takes CLONE_FS with it: this thread's cwd and mounts are its own.
            nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(|e| {
                BuildError::Step(format!("cannot make a mount namespace for the build: {e}"))
            })?;
            rootfs::apply(Path::new("/"), &ops, &LinuxSyscall)
                .map_err(|e| BuildError::Step(format!("cannot mount a build step's files: {e}")))?;
            let roots = overlays
                .iter()
                .map(|o| {
                    inroot::open_root(o.target).map_err(|e| BuildError::Io {
                        what: "open a build step's root",
                        path: o.target.to_path_buf(),
                        source: e,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            f(&roots)
        })
        .join()
        .unwrap_or_else(|_| Err(BuildError::Step("a build step's thread panicked".into())))
    })
}

/// A read-only overlay of a single layer is not possible (overlayfs wants two lower
/// directories without an upper one): a read-only bind of it serves.
fn overlay_or_bind(o: &Overlay<'_>) -> Result<MountOp, BuildError> {
    let fail = |e: rootfs::RootfsError| {
        BuildError::Step(format!("cannot mount a build step's files: {e}"))
    };
    match (o.layers, o.upper) {
        ([only], None) => Ok(MountOp::Bind {
            source: only.clone(),
            target: o.target.display().to_string(),
            read_only: true,
        }),
        _ => rootfs::overlay_op(o.layers, o.upper, o.target).map_err(fail),
    }
}
