//! Content digests of resolved sources, with a stat cache so unchanged files are not read again.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::fcntl::OFlag;
use sha2::{Digest as _, Sha256};

use super::tree::{open_beneath, os, shown};
use super::{Context, ContextError, Entry, FileKind, Source, StatEntry, StatKey};
use crate::image::digest::Digest;

/// Extended attributes kept by a copy (BuildKit keeps them all where the filesystem takes
/// them; `trusted.*` and `security.selinux` belong to the host, not to the image).
pub(crate) fn kept_xattr(name: &[u8]) -> bool {
    name.starts_with(b"user.") || name == b"security.capability"
}

/// The kept extended attributes of an open file or directory, sorted by name.
pub(crate) fn read_xattrs(fd: BorrowedFd) -> Result<Vec<(CString, Vec<u8>)>, std::io::Error> {
    let raw = fd.as_raw_fd();
    // SAFETY: a null buffer of size 0 asks for the size only.
    let size = unsafe { libc::flistxattr(raw, std::ptr::null_mut(), 0) };
    if size < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOTSUP) => Ok(Vec::new()),
            _ => Err(e),
        };
    }
    if size == 0 {
        return Ok(Vec::new());
    }
    let mut names = vec![0u8; size as usize];
    // SAFETY: the buffer is `names.len()` bytes long.
    let size = unsafe { libc::flistxattr(raw, names.as_mut_ptr().cast(), names.len()) };
    if size < 0 {
        return Err(std::io::Error::last_os_error());
    }
    names.truncate(size as usize);
    let mut out = Vec::new();
    for name in names.split(|&c| c == 0).filter(|n| !n.is_empty()) {
        if !kept_xattr(name) {
            continue;
        }
        let Ok(cname) = CString::new(name) else {
            continue;
        };
        let mut buf = vec![0u8; 64 * 1024];
        // SAFETY: the buffer is `buf.len()` bytes long; cname is NUL-terminated.
        let n = unsafe { libc::fgetxattr(raw, cname.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            // Removed since it was listed.
            continue;
        }
        buf.truncate(n as usize);
        out.push((cname, buf));
    }
    out.sort();
    Ok(out)
}

fn field(h: &mut Sha256, data: &[u8]) {
    h.update((data.len() as u64).to_le_bytes());
    h.update(data);
}

fn kind_tag(k: FileKind) -> &'static [u8] {
    match k {
        FileKind::File => b"file",
        FileKind::Dir => b"dir",
        FileKind::Symlink => b"symlink",
        FileKind::Fifo => b"fifo",
        FileKind::CharDevice => b"char",
        FileKind::BlockDevice => b"block",
        FileKind::Socket => b"socket",
    }
}

/// A file's content sum and kept xattrs (names without their NUL), from the stat cache.
type Cached = ([u8; 32], Vec<(Vec<u8>, Vec<u8>)>);

pub(super) fn digest(ctx: &Context, sources: &[Source]) -> Result<Digest, ContextError> {
    let mut cached = cached_sums(ctx, sources).into_iter();
    let mut h = Sha256::new();
    field(&mut h, b"rcompose build context v1");
    for s in sources {
        field(&mut h, b"source");
        field(&mut h, &(s.arg as u64).to_le_bytes());
        field(&mut h, &s.name);
        for e in &s.entries {
            entry(ctx, s, e, cached.next().flatten(), &mut h)?;
        }
    }
    Ok(Digest::from_sha256(&h.finalize()))
}

/// For each entry of `sources` in order, its [`Cached`] when it is a file whose walk stat
/// matches the stat cache: all looked up under one lock (a build with nothing changed is
/// thousands of these).
fn cached_sums(ctx: &Context, sources: &[Source]) -> Vec<Option<Cached>> {
    use std::os::unix::ffi::OsStrExt;
    let Some(mut cache) = ctx.stat_cache() else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(sources.iter().map(|s| s.entries.len()).sum());
    let mut path = Vec::new();
    for s in sources {
        let dir = s.tree.dir.as_os_str().as_bytes();
        for e in &s.entries {
            if e.kind != FileKind::File {
                out.push(None);
                continue;
            }
            path.clear();
            path.extend_from_slice(dir);
            path.push(b'/');
            path.extend_from_slice(&e.tree_rel);
            let hit = cache.get_mut(path.as_slice()).filter(|hit| {
                hit.key
                    == StatKey {
                        dev: e.dev,
                        ino: e.ino,
                        size: e.size,
                        mtime: e.mtime,
                        ctime: e.ctime,
                    }
            });
            out.push(hit.and_then(|hit| {
                let xattrs = hit.xattrs.clone()?;
                hit.used = true;
                Some((hit.sha256, xattrs))
            }));
        }
    }
    out
}

fn entry(
    ctx: &Context,
    s: &Source,
    e: &Entry,
    cached: Option<Cached>,
    h: &mut Sha256,
) -> Result<(), ContextError> {
    field(h, b"entry");
    field(h, &e.rel);
    field(h, kind_tag(e.kind));
    field(h, &e.mode.to_le_bytes());
    if s.keeps_owner() {
        field(h, &e.uid.to_le_bytes());
        field(h, &e.gid.to_le_bytes());
    }
    match e.kind {
        FileKind::Symlink => field(h, e.link.as_deref().unwrap_or_default()),
        FileKind::CharDevice | FileKind::BlockDevice => field(h, &e.rdev.to_le_bytes()),
        FileKind::File => match cached {
            Some((sum, xattrs)) => {
                field(h, &sum);
                for (k, v) in xattrs {
                    field(h, &k);
                    field(h, &v);
                }
            }
            None => {
                let (sum, xattrs) = file_hash(ctx, s, e)?;
                field(h, &sum);
                for (k, v) in xattrs {
                    field(h, k.as_bytes());
                    field(h, &v);
                }
            }
        },
        FileKind::Dir => {
            let fd = open_beneath(
                s.tree.fd.as_fd(),
                &e.tree_rel,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            )
            .map_err(super::errno_err("open directory", os(&e.tree_rel)))?;
            for (k, v) in
                read_xattrs(fd.as_fd()).map_err(super::io_err("read xattrs of", os(&e.tree_rel)))?
            {
                field(h, k.as_bytes());
                field(h, &v);
            }
        }
        FileKind::Fifo | FileKind::Socket => {}
    }
    Ok(())
}

/// The sha256 of a file's content (from the stat cache when its stat is unchanged) and its
/// kept xattrs.
#[allow(clippy::type_complexity)]
fn file_hash(
    ctx: &Context,
    s: &Source,
    e: &Entry,
) -> Result<(Vec<u8>, Vec<(CString, Vec<u8>)>), ContextError> {
    let cache_path = {
        use std::os::unix::ffi::OsStrExt;
        let dir = s.tree.dir.as_os_str().as_bytes();
        let mut p = Vec::with_capacity(dir.len() + 1 + e.tree_rel.len());
        p.extend_from_slice(dir);
        p.push(b'/');
        p.extend_from_slice(&e.tree_rel);
        p
    };
    // The walk's stat matches the cache's: the file is not opened at all (a build with
    // nothing changed costs one stat per file, the walk's).
    let walked = StatKey {
        dev: e.dev,
        ino: e.ino,
        size: e.size,
        mtime: e.mtime,
        ctime: e.ctime,
    };
    if let Some(mut cache) = ctx.stat_cache() {
        if let Some(hit) = cache.get_mut(&cache_path) {
            if hit.key == walked {
                let xattrs = hit.xattrs.as_ref().map(|x| {
                    x.iter()
                        .filter_map(|(k, v)| Some((CString::new(k.clone()).ok()?, v.clone())))
                        .collect::<Vec<_>>()
                });
                if let Some(xattrs) = xattrs {
                    hit.used = true;
                    return Ok((hit.sha256.to_vec(), xattrs));
                }
            }
        }
    }
    let fd = open_beneath(
        s.tree.fd.as_fd(),
        &e.tree_rel,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK,
    )
    .map_err(super::errno_err("open", os(&e.tree_rel)))?;
    let st = nix::sys::stat::fstat(&fd).map_err(super::errno_err("stat", os(&e.tree_rel)))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(ContextError::Copy(format!(
            "{} changed while it was read (no longer a regular file)",
            shown(&e.tree_rel)
        )));
    }
    let xattrs =
        read_xattrs(fd.as_fd()).map_err(super::io_err("read xattrs of", os(&e.tree_rel)))?;
    let key = StatKey {
        dev: st.st_dev,
        ino: st.st_ino,
        size: st.st_size as u64,
        mtime: (st.st_mtime, st.st_mtime_nsec),
        ctime: (st.st_ctime, st.st_ctime_nsec),
    };
    let kept: Vec<(Vec<u8>, Vec<u8>)> = xattrs
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
        .collect();
    if let Some(mut cache) = ctx.stat_cache() {
        if let Some(hit) = cache.get_mut(&cache_path) {
            if hit.key == key {
                hit.used = true;
                if hit.xattrs.as_ref() != Some(&kept) {
                    hit.xattrs = Some(kept);
                    ctx.stat_cache_changed
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                return Ok((hit.sha256.to_vec(), xattrs));
            }
        }
    }
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::from(fd);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(super::io_err("read", os(&e.tree_rel)))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let sum: [u8; 32] = hasher.finalize().into();
    ctx.hashed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ctx.stat_cache_changed
        .store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(mut cache) = ctx.stat_cache() {
        cache.insert(
            cache_path,
            StatEntry {
                key,
                sha256: sum,
                xattrs: Some(kept),
                used: true,
            },
        );
    }
    Ok((sum.to_vec(), xattrs))
}
