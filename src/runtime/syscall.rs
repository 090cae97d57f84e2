//! The system calls the rootfs setup makes, behind a trait so the mount logic can be unit tested
//! with a recording double instead of real mounts.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};

/// What to create when a mount target is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    File,
}

/// Something a mount starts from or lands on, held open (`O_PATH`) from the moment it was
/// resolved: every mount goes through the fd, so the kernel never resolves a path the container
/// could have changed since (CVE-2021-30465's class).
#[derive(Debug)]
pub struct Handle {
    /// Where it was found (for messages and the recording double; never passed to the kernel).
    pub path: PathBuf,
    pub is_dir: bool,
    /// `None` only in [`RecordingSyscall`]'s handles.
    fd: Option<OwnedFd>,
}

impl Handle {
    pub fn new(path: PathBuf, is_dir: bool, fd: OwnedFd) -> Handle {
        Handle {
            path,
            is_dir,
            fd: Some(fd),
        }
    }

    /// A handle with no fd, for test doubles; the real system refuses it (`EBADF`).
    pub fn unopened(path: PathBuf, is_dir: bool) -> Handle {
        Handle {
            path,
            is_dir,
            fd: None,
        }
    }

    pub fn fd(&self) -> io::Result<BorrowedFd<'_>> {
        self.fd
            .as_ref()
            .map(AsFd::as_fd)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))
    }

    /// `/proc/self/fd/N`: the path the kernel turns back into exactly this fd's file, for the
    /// calls that take no fd (`mount(2)`).
    fn proc_path(&self) -> io::Result<PathBuf> {
        Ok(proc_fd(self.fd()?))
    }
}

use super::inroot::proc_fd_path as proc_fd;

/// The kernel interface the rootfs setup uses. Nothing in it takes a path inside the container:
/// targets and sources are [`Handle`]s, and the path-taking calls only ever see the helper's own
/// `/`, `.` and the host-side container directory.
pub trait Syscall {
    /// `mount(2)` with only `flags` on the helper's own `/` (rprivate before, read-only after
    /// `pivot_root`): a path no container can redirect.
    fn mount_root(&self, flags: MsFlags) -> io::Result<()>;
    /// A new `fstype` filesystem on the directory `target`.
    fn mount_fs(
        &self,
        fstype: &str,
        target: &Handle,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
    /// A recursive bind of `source` onto `target`; with `read_only` the new mounts are
    /// read-only before they are attached.
    fn bind(&self, source: &Handle, target: &Handle, read_only: bool) -> io::Result<()>;
    fn umount2(&self, target: &Path, flags: MntFlags) -> io::Result<()>;
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()>;
    fn chdir(&self, path: &Path) -> io::Result<()>;
    /// Opens a host path (a bind source, the overlay's mount point) once, `O_PATH`; links are
    /// followed as `docker run -v` follows them, at this one resolution.
    fn open_host(&self, path: &Path) -> io::Result<Handle>;
    /// Resolves `path` inside `root` without leaving it (see [`super::rootfs::resolve_in_root`]),
    /// creating it (and its parents) as `create` says when missing. `None`: missing, not created.
    fn resolve_in(
        &self,
        root: &Path,
        path: &str,
        create: Option<NodeKind>,
    ) -> io::Result<Option<Handle>>;
    /// A symlink `name` in the directory `dir`.
    fn symlink(&self, target: &str, dir: &Handle, name: &str) -> io::Result<()>;
    /// A device node `name` in the directory `dir`, of exactly `mode` (the helper's umask is 0).
    fn mknod(&self, dir: &Handle, name: &str, kind: SFlag, mode: u32, dev: u64) -> io::Result<()>;
}

/// The real thing, over `nix` and the mount API's system calls.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSyscall;

impl Syscall for LinuxSyscall {
    fn mount_root(&self, flags: MsFlags) -> io::Result<()> {
        nix::mount::mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .map_err(io::Error::from)
    }

    fn mount_fs(
        &self,
        fstype: &str,
        target: &Handle,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        nix::mount::mount(
            Some(fstype),
            &target.proc_path()?,
            Some(fstype),
            flags,
            data,
        )
        .map_err(io::Error::from)
    }

    fn bind(&self, source: &Handle, target: &Handle, read_only: bool) -> io::Result<()> {
        // A detached copy of the source's mounts, made read-only while nobody can see it, then
        // attached on the target's fd: no path is resolved after `source` and `target` were.
        let tree = open_tree(source.fd()?)?;
        let mut remount = false;
        if read_only {
            match mount_setattr_rdonly(tree.as_fd()) {
                Ok(()) => {}
                // Before Linux 5.12: remount the attached mount through the tree's own fd.
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => remount = true,
                Err(e) => return Err(e),
            }
        }
        move_mount(tree.as_fd(), target.fd()?)?;
        if remount {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            nix::mount::mount(
                None::<&str>,
                &proc_fd(tree.as_fd()),
                None::<&str>,
                flags,
                None::<&str>,
            )
            .map_err(io::Error::from)?;
        }
        Ok(())
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> io::Result<()> {
        nix::mount::umount2(target, flags).map_err(io::Error::from)
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        nix::unistd::pivot_root(new_root, put_old).map_err(io::Error::from)
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        nix::unistd::chdir(path).map_err(io::Error::from)
    }

    fn open_host(&self, path: &Path) -> io::Result<Handle> {
        let fd = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())?;
        let st = nix::sys::stat::fstat(&fd)?;
        let is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
        Ok(Handle::new(path.to_path_buf(), is_dir, fd))
    }

    fn resolve_in(
        &self,
        root: &Path,
        path: &str,
        create: Option<NodeKind>,
    ) -> io::Result<Option<Handle>> {
        super::rootfs::lookup_in_root(root, path, create).map_err(io::Error::other)
    }

    fn symlink(&self, target: &str, dir: &Handle, name: &str) -> io::Result<()> {
        nix::unistd::symlinkat(target, dir.fd()?, name).map_err(io::Error::from)
    }

    fn mknod(&self, dir: &Handle, name: &str, kind: SFlag, mode: u32, dev: u64) -> io::Result<()> {
        nix::sys::stat::mknodat(dir.fd()?, name, kind, Mode::from_bits_truncate(mode), dev)
            .map_err(io::Error::from)
    }
}

/// `open_tree(fd, "", OPEN_TREE_CLONE | AT_RECURSIVE)`: a detached copy of the mounts at `fd`.
fn open_tree(fd: BorrowedFd) -> io::Result<OwnedFd> {
    let flags = libc::OPEN_TREE_CLONE
        | libc::OPEN_TREE_CLOEXEC
        | libc::AT_EMPTY_PATH as libc::c_uint
        | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: a valid fd, an empty C string, flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags as libc::c_ulong,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as libc::c_int) })
}

/// `mount_setattr(tree, "", AT_RECURSIVE, MOUNT_ATTR_RDONLY)`: every mount of a detached tree
/// read-only (docker's recursive read-only bind).
fn mount_setattr_rdonly(tree: BorrowedFd) -> io::Result<()> {
    // SAFETY: mount_attr is plain data.
    let mut attr: libc::mount_attr = unsafe { std::mem::zeroed() };
    attr.attr_set = libc::MOUNT_ATTR_RDONLY;
    let flags = libc::AT_EMPTY_PATH | libc::AT_RECURSIVE;
    // SAFETY: a valid fd, an empty C string, a valid mount_attr and its size.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            flags as libc::c_uint,
            &mut attr as *mut libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `move_mount(tree, "", target, "", F_EMPTY_PATH | T_EMPTY_PATH)`: attaches the tree on the
/// very file `target` holds.
fn move_mount(tree: BorrowedFd, target: BorrowedFd) -> io::Result<()> {
    let flags = libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: valid fds, empty C strings, flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            flags as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// How a [`Handle`] reached a recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// Resolved inside a root by [`Syscall::resolve_in`].
    Root(PathBuf),
    /// Opened on the host by [`Syscall::open_host`].
    Host(PathBuf),
}

/// One recorded call of [`RecordingSyscall`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    MountRoot(MsFlags),
    MountFs {
        fstype: String,
        target: Via,
        flags: MsFlags,
        data: Option<String>,
    },
    Bind {
        source: Via,
        target: Via,
        read_only: bool,
    },
    Umount2 {
        target: PathBuf,
        flags: MntFlags,
    },
    PivotRoot {
        new_root: PathBuf,
        put_old: PathBuf,
    },
    Chdir(PathBuf),
    OpenHost(PathBuf),
    Resolve {
        root: PathBuf,
        path: String,
        create: Option<NodeKind>,
    },
    Symlink {
        target: String,
        link: PathBuf,
    },
    Mknod {
        path: PathBuf,
        kind: SFlag,
        mode: u32,
        dev: u64,
    },
}

/// A test double: records every call and touches nothing. Paths resolve lexically; those in
/// `files` are regular files, those in `missing` do not exist (unless created), and `mknod`
/// fails with `EPERM` when `mknod_denied` (as in a user namespace). Calls taking handles record
/// where each came from ([`Via`]).
#[derive(Debug, Default)]
pub struct RecordingSyscall {
    pub calls: RefCell<Vec<Call>>,
    pub files: HashSet<String>,
    pub missing: HashSet<String>,
    pub mknod_denied: bool,
    /// The paths of the handles `open_host` gave out (a handle knows only its path).
    pub host: RefCell<HashSet<PathBuf>>,
}

impl RecordingSyscall {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    fn record(&self, call: Call) {
        self.calls.borrow_mut().push(call);
    }

    fn via(&self, h: &Handle) -> Via {
        if self.host.borrow().contains(&h.path) {
            Via::Host(h.path.clone())
        } else {
            Via::Root(h.path.clone())
        }
    }
}

impl Syscall for RecordingSyscall {
    fn mount_root(&self, flags: MsFlags) -> io::Result<()> {
        self.record(Call::MountRoot(flags));
        Ok(())
    }

    fn mount_fs(
        &self,
        fstype: &str,
        target: &Handle,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        self.record(Call::MountFs {
            fstype: fstype.to_string(),
            target: self.via(target),
            flags,
            data: data.map(str::to_string),
        });
        Ok(())
    }

    fn bind(&self, source: &Handle, target: &Handle, read_only: bool) -> io::Result<()> {
        self.record(Call::Bind {
            source: self.via(source),
            target: self.via(target),
            read_only,
        });
        Ok(())
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> io::Result<()> {
        self.record(Call::Umount2 {
            target: target.to_path_buf(),
            flags,
        });
        Ok(())
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        self.record(Call::PivotRoot {
            new_root: new_root.to_path_buf(),
            put_old: put_old.to_path_buf(),
        });
        Ok(())
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        self.record(Call::Chdir(path.to_path_buf()));
        Ok(())
    }

    fn open_host(&self, path: &Path) -> io::Result<Handle> {
        self.record(Call::OpenHost(path.to_path_buf()));
        self.host.borrow_mut().insert(path.to_path_buf());
        let clean = lexical_clean(&path.to_string_lossy());
        let is_dir = !self.files.contains(&clean);
        Ok(Handle::unopened(path.to_path_buf(), is_dir))
    }

    fn resolve_in(
        &self,
        root: &Path,
        path: &str,
        create: Option<NodeKind>,
    ) -> io::Result<Option<Handle>> {
        self.record(Call::Resolve {
            root: root.to_path_buf(),
            path: path.to_string(),
            create,
        });
        let clean = lexical_clean(path);
        if create.is_none() && self.missing.contains(&clean) {
            return Ok(None);
        }
        let is_dir = match create {
            Some(kind) if self.missing.contains(&clean) => kind == NodeKind::Dir,
            _ => !self.files.contains(&clean),
        };
        Ok(Some(Handle::unopened(
            root.join(clean.trim_start_matches('/')),
            is_dir,
        )))
    }

    fn symlink(&self, target: &str, dir: &Handle, name: &str) -> io::Result<()> {
        self.record(Call::Symlink {
            target: target.to_string(),
            link: dir.path.join(name),
        });
        Ok(())
    }

    fn mknod(&self, dir: &Handle, name: &str, kind: SFlag, mode: u32, dev: u64) -> io::Result<()> {
        self.record(Call::Mknod {
            path: dir.path.join(name),
            kind,
            mode,
            dev,
        });
        if self.mknod_denied {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        Ok(())
    }
}

/// `/a/./b/../c` → `/a/c`, `..` clamped at `/`.
pub fn lexical_clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_clean_clamps_at_root() {
        assert_eq!(lexical_clean("a/./b/../c"), "/a/c");
        assert_eq!(lexical_clean("/../../etc//x/"), "/etc/x");
        assert_eq!(lexical_clean(""), "/");
    }

    #[test]
    fn recording_double_records_and_resolves() {
        let mut sys = RecordingSyscall::default();
        sys.files.insert("/etc/hosts".into());
        sys.missing.insert("/proc/acpi".into());
        let r = sys
            .resolve_in(Path::new("/m"), "/etc/hosts", None)
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.path.as_path(), r.is_dir),
            (Path::new("/m/etc/hosts"), false)
        );
        assert!(sys
            .resolve_in(Path::new("/m"), "/proc/acpi", None)
            .unwrap()
            .is_none());
        let dev = sys
            .resolve_in(Path::new("/m"), "/dev", None)
            .unwrap()
            .unwrap();
        sys.mknod_denied = true;
        let e = sys
            .mknod(&dev, "null", SFlag::S_IFCHR, 0o666, 0)
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        let null = sys.open_host(Path::new("/dev/null")).unwrap();
        sys.bind(&null, &r, false).unwrap();
        assert_eq!(
            sys.calls().last(),
            Some(&Call::Bind {
                source: Via::Host("/dev/null".into()),
                target: Via::Root("/m/etc/hosts".into()),
                read_only: false
            })
        );
        // The real system refuses a handle without an fd rather than guess a path.
        let e = LinuxSyscall.bind(&null, &r, false).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
    }
}
