//! Writes into a running container's filesystem from the host, without ever leaving it.
//!
//! Everything is reached from a directory file descriptor on the container's root
//! (`/proc/<pid>/root`, which crosses into the container's mount namespace, so volumes mounted
//! in the container are written too), with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`:
//! a symbolic link in the container, even `/app -> /`, resolves inside the container's root,
//! never on the host. Final components are never followed: a file is written to a fresh
//! temporary name (`O_CREAT | O_EXCL`) and renamed over the target, which replaces a symbolic
//! link rather than writing through it, and readers never see a half-written file.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{openat2, renameat, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fchmod, mkdirat, Mode, SFlag};
use nix::unistd::{fchown, fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use super::WatchError;

/// A container's filesystem, opened through its root.
#[derive(Debug)]
pub struct ContainerFs {
    root: OwnedFd,
    /// Owner given to what is written (`None`: root, as the copying process).
    owner: Option<(u32, u32)>,
}

/// Temporary names differ per write, also across threads.
static COUNTER: AtomicU64 = AtomicU64::new(0);

use crate::runtime::inroot::in_root;

/// Resolution of a single name below a directory: no symbolic link at all.
fn beneath() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH
        | ResolveFlag::RESOLVE_NO_SYMLINKS
        | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC
}

impl ContainerFs {
    /// The filesystem of the container whose first process is `pid`.
    pub fn open(pid: i32, owner: Option<(u32, u32)>) -> Result<ContainerFs, WatchError> {
        ContainerFs::open_dir(Path::new(&format!("/proc/{pid}/root")), owner)
    }

    /// A directory treated as a container's root (a rootfs, or a test's directory).
    pub fn open_dir(root: &Path, owner: Option<(u32, u32)>) -> Result<ContainerFs, WatchError> {
        let root =
            nix::fcntl::open(root, dir_flags(), Mode::empty()).map_err(|e| WatchError::Sync {
                target: root.display().to_string(),
                source: e.into(),
            })?;
        Ok(ContainerFs { root, owner })
    }

    /// Copies a host file, symbolic link or directory tree to `target` (an absolute path in the
    /// container), creating missing parent directories. `skip` leaves out host paths inside a
    /// copied directory. Returns the number of entries written.
    pub fn copy(
        &self,
        host: &Path,
        target: &str,
        skip: &dyn Fn(&Path) -> bool,
    ) -> Result<usize, WatchError> {
        let err = |source: io::Error| WatchError::Sync {
            target: target.to_string(),
            source,
        };
        let (parent, name) = split(target).ok_or_else(|| {
            err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a path below the container's root",
            ))
        })?;
        let dir = self.ensure_dir(&parent).map_err(err)?;
        self.copy_into(dir.as_fd(), OsStr::new(&name), host, skip)
            .map_err(|e| WatchError::Sync {
                target: target.to_string(),
                source: io::Error::new(e.kind(), format!("cannot copy {}: {e}", host.display())),
            })
    }

    /// Removes `target` (a file, link or a whole directory) from the container; a missing
    /// target is not an error.
    pub fn remove(&self, target: &str) -> Result<(), WatchError> {
        let err = |source: io::Error| WatchError::Sync {
            target: target.to_string(),
            source,
        };
        let Some((parent, name)) = split(target) else {
            return Err(err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "refusing to remove the container's root",
            )));
        };
        let dir = match openat2(&self.root, parent.as_str(), how(dir_flags(), 0, in_root())) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => return Ok(()),
            Err(e) => return Err(err(e.into())),
        };
        remove_entry(dir.as_fd(), OsStr::new(&name)).map_err(err)
    }

    /// Whether `path` in the container is a directory (links followed inside the root).
    pub fn is_dir(&self, path: &str) -> bool {
        openat2(&self.root, path, how(dir_flags(), 0, in_root())).is_ok()
    }

    /// Whether `path` exists in the container (links followed inside the root).
    pub fn exists(&self, path: &str) -> bool {
        openat2(
            &self.root,
            path,
            how(OFlag::O_PATH | OFlag::O_CLOEXEC, 0, in_root()),
        )
        .is_ok()
    }

    /// Copies `source` (an absolute path in the container: a file, a symbolic link, copied as a
    /// link, a FIFO, or a directory tree) to the host, as entry `name` of the directory
    /// `host_dir`, or into `host_dir` itself when `name` is `None` (the contents of a directory).
    /// Links inside the container resolve in its root on the way to `source`; `source` itself is
    /// followed only with `follow` (`cp -L`). Returns the number of entries written.
    ///
    /// `host_dir` is the destination the user named, opened once (a link there is the user's
    /// and is followed, as `docker cp` follows it); everything below it is created relative to
    /// that descriptor without following any link: a link already in the destination, brought
    /// by an earlier copy or put there by anyone, is replaced (a file, a link) or refused (a
    /// directory cannot overwrite a non-directory, as docker's untar says), never written
    /// through. Modes are set through the written descriptors.
    pub fn copy_out(
        &self,
        source: &str,
        host_dir: &Path,
        name: Option<&OsStr>,
        follow: bool,
    ) -> Result<usize, WatchError> {
        let host = match name {
            Some(n) => host_dir.join(n),
            None => host_dir.to_path_buf(),
        };
        let err = |source_err: io::Error| WatchError::CopyOut {
            source_path: source.to_string(),
            host: host.clone(),
            source: source_err,
        };
        let hdir = nix::fcntl::open(host_dir, dir_flags(), Mode::empty()).map_err(|e| {
            err(io::Error::new(
                io::Error::from(e).kind(),
                format!("{}: {e}", host_dir.display()),
            ))
        })?;
        let (entry, what) = match split(source) {
            None => {
                let root = openat2(&self.root, ".", how(path_flags(), 0, in_root()))
                    .map_err(|e| err(e.into()))?;
                (root, "/".to_string())
            }
            Some((parent, base)) => {
                let full = format!("{}/{base}", parent.trim_end_matches('/'));
                let opened = if follow {
                    // Followed inside the container's root only, and opened as a path: a FIFO
                    // or device is never opened for reading.
                    openat2(&self.root, full.as_str(), how(path_flags(), 0, in_root()))
                } else {
                    openat2(&self.root, parent.as_str(), how(dir_flags(), 0, in_root())).and_then(
                        |dir| {
                            openat2(
                                &dir,
                                base.as_str(),
                                how(path_flags() | OFlag::O_NOFOLLOW, 0, beneath()),
                            )
                        },
                    )
                };
                (opened.map_err(|e| err(e.into()))?, full)
            }
        };
        let st = nix::sys::stat::fstat(&entry).map_err(|e| err(e.into()))?;
        match file_type(st.st_mode) {
            SFlag::S_IFCHR | SFlag::S_IFBLK => {
                return Err(err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{what} is a device: rcompose cp does not copy device nodes"),
                )))
            }
            SFlag::S_IFSOCK => {
                return Err(err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{what} is a socket: rcompose cp does not copy sockets"),
                )))
            }
            SFlag::S_IFDIR => {}
            _ if name.is_none() => {
                return Err(err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{what} is not a directory"),
                )))
            }
            _ => {}
        }
        copy_out_entry(entry, st, hdir.as_fd(), name, &host).map_err(err)
    }

    /// Opens directory `dir` of the container, creating what is missing (mode 0755, given to
    /// the owner).
    fn ensure_dir(&self, dir: &str) -> io::Result<OwnedFd> {
        let mut fd = openat2(&self.root, ".", how(dir_flags(), 0, in_root()))?;
        let mut prefix = String::new();
        for comp in dir.split('/').filter(|c| !c.is_empty()) {
            prefix.push('/');
            prefix.push_str(comp);
            let next = match openat2(&self.root, prefix.as_str(), how(dir_flags(), 0, in_root())) {
                Ok(next) => next,
                Err(Errno::ENOENT) => {
                    match mkdirat(&fd, comp, Mode::from_bits_truncate(0o755)) {
                        Ok(()) => self.chown_at(fd.as_fd(), OsStr::new(comp))?,
                        // Created meanwhile, or a dangling link (reopening says which).
                        Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    openat2(&self.root, prefix.as_str(), how(dir_flags(), 0, in_root()))?
                }
                Err(e) => return Err(e.into()),
            };
            fd = next;
        }
        Ok(fd)
    }

    fn copy_into(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        host: &Path,
        skip: &dyn Fn(&Path) -> bool,
    ) -> io::Result<usize> {
        let meta = std::fs::symlink_metadata(host)?;
        let mode = Mode::from_bits_truncate(meta.permissions().mode() & 0o7777);
        let ft = meta.file_type();
        if ft.is_dir() {
            let sub = self.open_or_make_dir(dir, name)?;
            // chown first: it clears set-id bits that chmod then sets.
            self.chown(sub.as_fd())?;
            fchmod(&sub, mode)?;
            let mut count = 1;
            let mut entries: Vec<_> = std::fs::read_dir(host)?.collect::<Result<_, _>>()?;
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let path = entry.path();
                if skip(&path) {
                    continue;
                }
                count += self.copy_into(sub.as_fd(), &entry.file_name(), &path, skip)?;
            }
            return Ok(count);
        }
        let tmp = format!(
            ".rcompose-sync-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        if ft.is_symlink() {
            let link = std::fs::read_link(host)?;
            symlinkat(link.as_path(), dir, tmp.as_str())?;
            if let Some((uid, gid)) = self.owner {
                fchownat(
                    dir,
                    tmp.as_str(),
                    Some(Uid::from_raw(uid)),
                    Some(Gid::from_raw(gid)),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )?;
            }
        } else if ft.is_file() {
            let mut src = File::open(host)?;
            let out = openat2(
                dir,
                tmp.as_str(),
                how(
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
                    0o600,
                    beneath(),
                ),
            )?;
            let written = (|| {
                let mut dst = File::from(out);
                io::copy(&mut src, &mut dst)?;
                self.chown(dst.as_fd())?;
                fchmod(&dst, mode)?;
                Ok::<_, io::Error>(())
            })();
            if let Err(e) = written {
                let _ = unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
                return Err(e);
            }
        } else {
            // Sockets, fifos and devices are not synced (docker's tar would carry them, but a
            // watched source tree has none worth copying).
            return Ok(0);
        }
        if let Err(e) = replace(dir, &tmp, name) {
            let _ = unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(e);
        }
        Ok(1)
    }

    /// The directory `name` in `dir`, created when missing; anything else in its place (a file,
    /// a link) is replaced.
    fn open_or_make_dir(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
        match openat2(dir, name, how(dir_flags(), 0, beneath())) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(Errno::ENOTDIR) | Err(Errno::ELOOP) | Err(Errno::EXDEV) => {
                unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)?;
            }
            Err(e) => return Err(e.into()),
        }
        match mkdirat(dir, name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(openat2(dir, name, how(dir_flags(), 0, beneath()))?)
    }

    fn chown(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        if let Some((uid, gid)) = self.owner {
            fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
        }
        Ok(())
    }

    fn chown_at(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        if let Some((uid, gid)) = self.owner {
            fchownat(
                dir,
                name,
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )?;
        }
        Ok(())
    }
}

fn path_flags() -> OFlag {
    OFlag::O_PATH | OFlag::O_CLOEXEC
}

fn file_type(mode: u32) -> SFlag {
    SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits())
}

/// Copies the container entry `src` (an `O_PATH` descriptor, of status `st`) to entry `name` of
/// the host directory `hdir` (into `hdir` itself for `None`, a directory's contents only).
/// `host` names the destination in messages. Nothing on the host side is followed.
fn copy_out_entry(
    src: OwnedFd,
    st: nix::sys::stat::FileStat,
    hdir: BorrowedFd<'_>,
    name: Option<&OsStr>,
    host: &Path,
) -> io::Result<usize> {
    let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
    let kind = file_type(st.st_mode);
    if kind == SFlag::S_IFDIR {
        let dir = openat2(&src, ".", how(dir_flags(), 0, beneath()))?;
        drop(src);
        let target = match name {
            Some(name) => host_dir(hdir, name, host)?,
            None => nix::unistd::dup(hdir)?,
        };
        let mut names = entry_names(dir.as_fd())?;
        names.sort();
        let mut count = 1;
        for child in names {
            let entry = openat2(
                &dir,
                child.as_os_str(),
                how(path_flags() | OFlag::O_NOFOLLOW, 0, beneath()),
            )?;
            let st = nix::sys::stat::fstat(&entry)?;
            count += copy_out_entry(entry, st, target.as_fd(), Some(&child), &host.join(&child))?;
        }
        // The user's own directory (contents copied into it) keeps its mode, as with docker.
        if name.is_some() {
            fchmod(&target, mode)?;
        }
        return Ok(count);
    }
    let Some(name) = name else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a directory",
        ));
    };
    match kind {
        SFlag::S_IFLNK => {
            let target = nix::fcntl::readlinkat(&src, "")?;
            remove_host_nondir(hdir, name, host)?;
            symlinkat(target.as_os_str(), hdir, name)?;
            Ok(1)
        }
        SFlag::S_IFREG => {
            // Reopened through the O_PATH descriptor: the very file that was checked, which a
            // container cannot swap for a FIFO or device in between.
            let file =
                crate::runtime::inroot::reopen(src.as_fd(), OFlag::O_RDONLY | OFlag::O_NOCTTY)?;
            remove_host_nondir(hdir, name, host)?;
            let out = openat2(
                hdir,
                name,
                how(
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
                    0o600,
                    beneath(),
                ),
            )?;
            let mut dst = File::from(out);
            io::copy(&mut File::from(file), &mut dst)?;
            fchmod(&dst, mode)?;
            Ok(1)
        }
        SFlag::S_IFIFO => {
            // As docker's tar carries a FIFO: a new FIFO, never opened.
            remove_host_nondir(hdir, name, host)?;
            nix::unistd::mkfifoat(hdir, name, Mode::from_bits_truncate(0o600))?;
            nix::sys::stat::fchmodat(
                hdir,
                name,
                mode,
                nix::sys::stat::FchmodatFlags::NoFollowSymlink,
            )?;
            Ok(1)
        }
        // Devices and sockets inside a copied tree are left out (rcompose creates no device
        // node on the host).
        _ => Ok(0),
    }
}

/// The directory `name` in the host directory `hdir`, created when missing. A link or any
/// other non-directory in its place is an error (docker's untar: "cannot overwrite
/// non-directory with directory"), never followed.
fn host_dir(hdir: BorrowedFd<'_>, name: &OsStr, host: &Path) -> io::Result<OwnedFd> {
    match mkdirat(hdir, name, Mode::from_bits_truncate(0o700)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e.into()),
    }
    match openat2(
        hdir,
        name,
        how(dir_flags() | OFlag::O_NOFOLLOW, 0, beneath()),
    ) {
        Ok(fd) => Ok(fd),
        Err(Errno::ENOTDIR) | Err(Errno::ELOOP) | Err(Errno::EXDEV) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "cannot overwrite non-directory {} with directory",
                host.display()
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Makes room for a non-directory `name` in the host directory `hdir`: what is there (a file,
/// a link) is removed, never followed; a directory is an error, as in docker's untar.
fn remove_host_nondir(hdir: BorrowedFd<'_>, name: &OsStr, host: &Path) -> io::Result<()> {
    match unlinkat(hdir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EISDIR) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "cannot overwrite directory {} with non-directory",
                host.display()
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

fn how(flags: OFlag, mode: u32, resolve: ResolveFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags)
        .mode(Mode::from_bits_truncate(mode))
        .resolve(resolve)
}

/// Renames `tmp` over `name`; a directory in the way is removed first (the host has a file
/// where the container has a directory).
fn replace(dir: BorrowedFd<'_>, tmp: &str, name: &OsStr) -> io::Result<()> {
    match renameat(dir, tmp, dir, name) {
        Ok(()) => Ok(()),
        Err(Errno::EISDIR) | Err(Errno::ENOTEMPTY) | Err(Errno::EEXIST) => {
            remove_entry(dir, name)?;
            Ok(renameat(dir, tmp, dir, name)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes `name` from `dir`: a file or link, or a directory with everything in it. Nothing is
/// followed: a link is removed, not what it points to.
fn remove_entry(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => return Ok(()),
        Err(Errno::EISDIR) => {}
        Err(e) => return Err(e.into()),
    }
    let sub = openat2(dir, name, how(dir_flags(), 0, beneath()))?;
    for child in entry_names(sub.as_fd())? {
        remove_entry(sub.as_fd(), &child)?;
    }
    match unlinkat(dir, name, UnlinkatFlags::RemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The names in an open directory, without `.` and `..`.
fn entry_names(dir: BorrowedFd<'_>) -> io::Result<Vec<std::ffi::OsString>> {
    let mut names = Vec::new();
    let mut d = nix::dir::Dir::from_fd(nix::unistd::dup(dir)?)?;
    for entry in d.iter() {
        let n = entry?.file_name().to_bytes().to_vec();
        if n != b"." && n != b".." {
            names.push(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(n));
        }
    }
    Ok(names)
}

/// A container path as its parent directory and final name (`..` stays at the root, as the
/// kernel resolves it); `None` for the root itself.
fn split(target: &str) -> Option<(String, String)> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(target).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    let name = parts.pop()?;
    Some((format!("/{}", parts.join("/")), name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt};

    fn none(_: &Path) -> bool {
        false
    }

    struct Bed {
        _dir: tempfile::TempDir,
        host: std::path::PathBuf,
        root: std::path::PathBuf,
        outside: std::path::PathBuf,
    }

    fn bed() -> Bed {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host");
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        for d in [&host, &root, &outside] {
            std::fs::create_dir(d).unwrap();
        }
        Bed {
            host,
            root,
            outside,
            _dir: dir,
        }
    }

    #[test]
    fn copies_files_with_their_mode_and_creates_parents() {
        let b = bed();
        let f = b.host.join("run.sh");
        std::fs::write(&f, "echo hi\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o751)).unwrap();
        let fs = ContainerFs::open_dir(&b.root, None).unwrap();
        assert_eq!(fs.copy(&f, "/app/bin/run.sh", &none).unwrap(), 1);
        let copied = b.root.join("app/bin/run.sh");
        assert_eq!(std::fs::read_to_string(&copied).unwrap(), "echo hi\n");
        let mode = std::fs::metadata(&copied).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o751);
        // Overwriting replaces the content; no temporary file stays behind.
        std::fs::write(&f, "echo bye\n").unwrap();
        fs.copy(&f, "/app/bin/run.sh", &none).unwrap();
        assert_eq!(std::fs::read_to_string(&copied).unwrap(), "echo bye\n");
        let names: Vec<_> = std::fs::read_dir(b.root.join("app/bin"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["run.sh"]);
    }

    #[test]
    fn copies_trees_links_and_honours_skip() {
        let b = bed();
        let src = b.host.join("src");
        std::fs::create_dir_all(src.join("pkg")).unwrap();
        std::fs::write(src.join("pkg/a.py"), "a").unwrap();
        std::fs::write(src.join("skip.log"), "x").unwrap();
        symlink("pkg/a.py", src.join("link")).unwrap();
        let fs = ContainerFs::open_dir(&b.root, None).unwrap();
        let skip = |p: &Path| p.extension().is_some_and(|e| e == "log");
        let n = fs.copy(&src, "/app", &skip).unwrap();
        assert_eq!(n, 4, "dir, pkg, a.py, link");
        assert_eq!(
            std::fs::read_to_string(b.root.join("app/pkg/a.py")).unwrap(),
            "a"
        );
        assert_eq!(
            std::fs::read_link(b.root.join("app/link")).unwrap(),
            Path::new("pkg/a.py")
        );
        assert!(!b.root.join("app/skip.log").exists());
    }

    #[test]
    fn removes_files_and_trees_and_ignores_missing_ones() {
        let b = bed();
        std::fs::create_dir_all(b.root.join("app/d/e")).unwrap();
        std::fs::write(b.root.join("app/d/e/f"), "x").unwrap();
        std::fs::write(b.root.join("app/g"), "x").unwrap();
        let fs = ContainerFs::open_dir(&b.root, None).unwrap();
        fs.remove("/app/g").unwrap();
        fs.remove("/app/d").unwrap();
        assert!(!b.root.join("app/g").exists() && !b.root.join("app/d").exists());
        fs.remove("/app/missing").unwrap();
        fs.remove("/nowhere/at/all").unwrap();
        assert!(fs.remove("/").is_err());
    }

    #[test]
    fn a_link_to_the_host_root_is_not_followed_out_of_the_container() {
        let b = bed();
        // The container's /app points at `/`, /up climbs out with `..`: both resolve inside
        // the container root. /host names the test's host directory, which does not exist in
        // the container: writing through it fails instead of reaching the host.
        symlink("/", b.root.join("app")).unwrap();
        symlink("../../../../../../..", b.root.join("up")).unwrap();
        symlink(&b.outside, b.root.join("host")).unwrap();
        let f = b.host.join("f.txt");
        std::fs::write(&f, "data").unwrap();
        let fs = ContainerFs::open_dir(&b.root, None).unwrap();
        fs.copy(&f, "/app/f.txt", &none).unwrap();
        fs.copy(&f, "/up/escaped.txt", &none).unwrap();
        assert!(fs.copy(&f, "/host/f.txt", &none).is_err());
        assert!(fs.copy(&f, "/host/deeper/f.txt", &none).is_err());
        assert_eq!(
            std::fs::read_dir(&b.outside).unwrap().count(),
            0,
            "wrote outside"
        );
        assert_eq!(
            std::fs::read_to_string(b.root.join("f.txt")).unwrap(),
            "data"
        );
        assert!(b.root.join("escaped.txt").exists());
        // A link as the final component is replaced, not written through.
        std::fs::write(b.outside.join("victim"), "keep").unwrap();
        symlink(b.outside.join("victim"), b.root.join("final")).unwrap();
        fs.copy(&f, "/final", &none).unwrap();
        assert_eq!(
            std::fs::read_to_string(b.outside.join("victim")).unwrap(),
            "keep"
        );
        assert!(!std::fs::symlink_metadata(b.root.join("final"))
            .unwrap()
            .is_symlink());
        // Removing through a link removes the link only.
        symlink(&b.outside, b.root.join("gone")).unwrap();
        fs.remove("/gone").unwrap();
        assert!(b.outside.join("victim").exists());
    }

    #[test]
    fn a_file_replaces_a_directory_and_a_directory_replaces_a_file() {
        let b = bed();
        std::fs::create_dir_all(b.root.join("app/x/y")).unwrap();
        std::fs::write(b.root.join("app/z"), "file").unwrap();
        std::fs::write(b.host.join("x"), "now a file").unwrap();
        std::fs::create_dir(b.host.join("z")).unwrap();
        let fs = ContainerFs::open_dir(&b.root, None).unwrap();
        fs.copy(&b.host.join("x"), "/app/x", &none).unwrap();
        fs.copy(&b.host.join("z"), "/app/z", &none).unwrap();
        assert_eq!(
            std::fs::read_to_string(b.root.join("app/x")).unwrap(),
            "now a file"
        );
        assert!(b.root.join("app/z").is_dir());
    }

    #[test]
    fn owner_is_applied_when_asked() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED owner_is_applied_when_asked: chown needs root");
            return;
        }
        let b = bed();
        std::fs::write(b.host.join("f"), "x").unwrap();
        let fs = ContainerFs::open_dir(&b.root, Some((1234, 4321))).unwrap();
        fs.copy(&b.host.join("f"), "/new/f", &none).unwrap();
        for p in ["new", "new/f"] {
            let m = std::fs::metadata(b.root.join(p)).unwrap();
            assert_eq!((m.uid(), m.gid()), (1234, 4321), "{p}");
        }
    }

    #[test]
    fn copy_out_never_follows_a_link_in_the_destination() {
        let b = bed();
        std::fs::create_dir_all(b.root.join("data/x")).unwrap();
        std::fs::write(b.root.join("data/x/f"), "planted").unwrap();
        std::fs::write(b.root.join("data/g"), "file").unwrap();
        std::fs::set_permissions(&b.outside, std::fs::Permissions::from_mode(0o750)).unwrap();
        std::fs::write(b.outside.join("victim"), "keep").unwrap();
        // What an earlier copy brought: links to the host's directory and file.
        std::fs::create_dir(b.host.join("data")).unwrap();
        symlink(&b.outside, b.host.join("data/x")).unwrap();
        symlink(b.outside.join("victim"), b.host.join("data/g")).unwrap();
        let fs = ContainerFs::open_dir(&b.root, None).unwrap();
        let e = fs
            .copy_out("/data", &b.host, Some(OsStr::new("data")), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot overwrite non-directory"), "{e}");
        assert_eq!(std::fs::read_dir(&b.outside).unwrap().count(), 1);
        assert_eq!(
            std::fs::metadata(&b.outside).unwrap().permissions().mode() & 0o7777,
            0o750
        );
        // A file replaces the link instead of writing through it.
        std::fs::remove_dir_all(b.root.join("data/x")).unwrap();
        fs.copy_out("/data", &b.host, Some(OsStr::new("data")), false)
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(b.outside.join("victim")).unwrap(),
            "keep"
        );
        assert_eq!(
            std::fs::read_to_string(b.host.join("data/g")).unwrap(),
            "file"
        );
        // A file onto a directory is refused, as docker's untar does.
        std::fs::create_dir(b.host.join("g")).unwrap();
        let e = fs
            .copy_out("/data/g", &b.host, Some(OsStr::new("g")), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot overwrite directory"), "{e}");
    }

    #[test]
    fn copy_out_of_a_fifo_behind_a_link_does_not_open_it() {
        let b = bed();
        nix::unistd::mkfifo(&b.root.join("fifo"), Mode::from_bits_truncate(0o640)).unwrap();
        std::fs::set_permissions(b.root.join("fifo"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        symlink("/fifo", b.root.join("pipe")).unwrap();
        let (root, host) = (b.root.clone(), b.host.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let fs = ContainerFs::open_dir(&root, None).unwrap();
            let _ = tx.send(
                fs.copy_out("/pipe", &host, Some(OsStr::new("p")), true)
                    .map_err(|e| e.to_string()),
            );
        });
        let copied = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("copying a fifo hung");
        assert_eq!(copied, Ok(1));
        let meta = std::fs::symlink_metadata(b.host.join("p")).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()));
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    }

    #[test]
    fn missing_sources_and_roots_are_errors() {
        let b = bed();
        let fs = ContainerFs::open_dir(&b.root, None).unwrap();
        let e = fs
            .copy(&b.host.join("nope"), "/app/nope", &none)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/app/nope") && e.contains("nope"), "{e}");
        assert!(fs.copy(&b.host, "/", &none).is_err());
        assert!(ContainerFs::open_dir(&b.host.join("missing"), None).is_err());
    }
}
