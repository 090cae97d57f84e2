//! The system calls the rootfs setup makes, behind a trait so the mount logic can be unit tested
//! with a recording double instead of real mounts.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};

/// What to create when a mount target is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    File,
}

/// A path resolved inside a root: where it is on the host, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub path: PathBuf,
    pub is_dir: bool,
}

/// The kernel interface the rootfs setup uses.
pub trait Syscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
    fn umount2(&self, target: &Path, flags: MntFlags) -> io::Result<()>;
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()>;
    fn chdir(&self, path: &Path) -> io::Result<()>;
    /// Resolves `path` inside `root` without leaving it (see [`super::rootfs::resolve_in_root`]),
    /// creating it (and its parents) as `create` says when missing. `None`: missing, not created.
    fn resolve_in(
        &self,
        root: &Path,
        path: &str,
        create: Option<NodeKind>,
    ) -> io::Result<Option<Resolved>>;
    fn symlink(&self, target: &str, link: &Path) -> io::Result<()>;
    fn mknod(&self, path: &Path, kind: SFlag, mode: u32, dev: u64) -> io::Result<()>;
}

/// The real thing, over `nix`.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSyscall;

impl Syscall for LinuxSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        nix::mount::mount(source, target, fstype, flags, data).map_err(io::Error::from)
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

    fn resolve_in(
        &self,
        root: &Path,
        path: &str,
        create: Option<NodeKind>,
    ) -> io::Result<Option<Resolved>> {
        super::rootfs::lookup_in_root(root, path, create).map_err(io::Error::other)
    }

    fn symlink(&self, target: &str, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn mknod(&self, path: &Path, kind: SFlag, mode: u32, dev: u64) -> io::Result<()> {
        nix::sys::stat::mknod(path, kind, Mode::from_bits_truncate(mode), dev)
            .map_err(io::Error::from)
    }
}

/// One recorded call of [`RecordingSyscall`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Mount {
        source: Option<PathBuf>,
        target: PathBuf,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
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
/// fails with `EPERM` when `mknod_denied` (as in a user namespace).
#[derive(Debug, Default)]
pub struct RecordingSyscall {
    pub calls: RefCell<Vec<Call>>,
    pub files: HashSet<String>,
    pub missing: HashSet<String>,
    pub mknod_denied: bool,
}

impl RecordingSyscall {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    fn record(&self, call: Call) {
        self.calls.borrow_mut().push(call);
    }
}

impl Syscall for RecordingSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        self.record(Call::Mount {
            source: source.map(Path::to_path_buf),
            target: target.to_path_buf(),
            fstype: fstype.map(str::to_string),
            flags,
            data: data.map(str::to_string),
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

    fn resolve_in(
        &self,
        root: &Path,
        path: &str,
        create: Option<NodeKind>,
    ) -> io::Result<Option<Resolved>> {
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
        Ok(Some(Resolved {
            path: root.join(clean.trim_start_matches('/')),
            is_dir,
        }))
    }

    fn symlink(&self, target: &str, link: &Path) -> io::Result<()> {
        self.record(Call::Symlink {
            target: target.to_string(),
            link: link.to_path_buf(),
        });
        Ok(())
    }

    fn mknod(&self, path: &Path, kind: SFlag, mode: u32, dev: u64) -> io::Result<()> {
        self.record(Call::Mknod {
            path: path.to_path_buf(),
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
        let r = sys.resolve_in(Path::new("/m"), "/etc/hosts", None).unwrap();
        assert_eq!(
            r,
            Some(Resolved {
                path: "/m/etc/hosts".into(),
                is_dir: false
            })
        );
        assert_eq!(
            sys.resolve_in(Path::new("/m"), "/proc/acpi", None).unwrap(),
            None
        );
        sys.mknod_denied = true;
        let e = sys
            .mknod(Path::new("/m/dev/null"), SFlag::S_IFCHR, 0o666, 0)
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        assert_eq!(sys.calls().len(), 3);
    }
}
