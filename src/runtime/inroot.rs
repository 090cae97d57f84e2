//! Paths inside a container, resolved from the host: the one way rcompose reads a running
//! container's files (`exec -u`'s passwd and group, `cp`, `watch`). Every component is resolved
//! by the kernel with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` from a directory fd on
//! the container's root, so a symbolic link, `..` or `/proc/self/...` planted by the container
//! stays inside it whatever the container changes meanwhile: there is no check-then-use gap,
//! unlike a walk through `/proc/<pid>/root/...` path strings.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// How every path inside a container is resolved.
pub fn in_root() -> ResolveFlag {
    ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

/// The root of the running container whose first process is `pid` (`/proc/<pid>/root` crosses
/// into its mount namespace, so its volumes are seen too).
pub fn container_root(pid: i32) -> io::Result<OwnedFd> {
    open_root(Path::new(&format!("/proc/{pid}/root")))
}

/// A directory to treat as a container's root.
pub fn open_root(dir: &Path) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens `path` (absolute or not, it starts at `root` either way) inside `root`.
pub fn open(root: BorrowedFd, path: &Path, flags: OFlag, mode: Mode) -> io::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .mode(mode)
        .resolve(in_root());
    Ok(openat2(root, path, how)?)
}

/// Reads a regular file inside `root`: `None` when it is absent or not a regular file (a FIFO
/// or device the container put there is never opened for reading, so it cannot block us), an
/// error when larger than `max` bytes.
pub fn read_file(root: BorrowedFd, path: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
    // O_PATH first: opening a FIFO for reading would block until a writer comes.
    let handle = match open(root, path, OFlag::O_PATH, Mode::empty()) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    let st = nix::sys::stat::fstat(&handle)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(None);
    }
    let fd = reopen(handle.as_fd(), OFlag::O_RDONLY | OFlag::O_NONBLOCK)?;
    let mut buf = Vec::new();
    std::fs::File::from(fd)
        .take(max + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(io::Error::other(format!(
            "{} is larger than {max} bytes",
            path.display()
        )));
    }
    Ok(Some(buf))
}

/// `/proc/self/fd/N`: the path the kernel turns back into exactly this fd's file, for calls
/// that take no fd (`mount(2)`, a reopen).
pub fn proc_fd_path(fd: BorrowedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Opens the file an `O_PATH` fd holds, with `flags`: the very file that was resolved and
/// checked, not a path resolved again (which a container could have swapped meanwhile).
pub fn reopen(fd: BorrowedFd, flags: OFlag) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::open(
        &proc_fd_path(fd),
        flags | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// [`read_file`] on an owned root.
pub fn read_file_at(root: &OwnedFd, path: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
    read_file(root.as_fd(), path, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_dotdot_stay_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, "host secret\n").unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "inside\n").unwrap();
        std::fs::write(root.join("outside"), "the container's own\n").unwrap();
        std::os::unix::fs::symlink("/", root.join("up")).unwrap();
        std::os::unix::fs::symlink("../../../../outside", root.join("rel")).unwrap();
        std::os::unix::fs::symlink("/proc/self/root/etc/hostname", root.join("magic")).unwrap();
        let r = open_root(&root).unwrap();
        let read = |p: &str| read_file_at(&r, Path::new(p), 1024).unwrap();
        assert_eq!(read("/etc/passwd").unwrap(), b"inside\n");
        assert_eq!(read("/../../../outside").unwrap(), b"the container's own\n");
        assert_eq!(read("/rel").unwrap(), b"the container's own\n");
        assert_eq!(read("/up/up/etc/passwd").unwrap(), b"inside\n");
        // Resolved in the root, which has no /proc: not the host's.
        assert_eq!(read("/magic"), None);
        assert_eq!(read("/missing"), None);
    }

    #[test]
    fn fifos_and_directories_are_not_read() {
        let tmp = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(&tmp.path().join("fifo"), Mode::from_bits_truncate(0o644)).unwrap();
        std::fs::create_dir(tmp.path().join("dir")).unwrap();
        std::fs::write(tmp.path().join("big"), vec![b'x'; 100]).unwrap();
        let r = open_root(tmp.path()).unwrap();
        // A FIFO with no writer would block a plain open for reading forever.
        assert_eq!(read_file_at(&r, Path::new("fifo"), 10).unwrap(), None);
        assert_eq!(read_file_at(&r, Path::new("dir"), 10).unwrap(), None);
        assert!(read_file_at(&r, Path::new("big"), 10).is_err());
    }
}
