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

/// The fields of a digest, gathered and hashed in blocks: thousands of entries of a few
/// short fields each cost a hasher call per field otherwise. The bytes hashed are the same.
struct Fields {
    h: Sha256,
    buf: Vec<u8>,
}

impl Fields {
    const FLUSH: usize = 32 * 1024;

    fn new() -> Fields {
        Fields {
            h: Sha256::new(),
            buf: Vec::with_capacity(Self::FLUSH + 1024),
        }
    }

    fn field(&mut self, data: &[u8]) {
        self.buf
            .extend_from_slice(&(data.len() as u64).to_le_bytes());
        self.buf.extend_from_slice(data);
        if self.buf.len() >= Self::FLUSH {
            self.h.update(&self.buf);
            self.buf.clear();
        }
    }

    fn finish(mut self) -> Digest {
        self.h.update(&self.buf);
        Digest::from_sha256(&self.h.finalize())
    }
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

pub(super) fn digest(ctx: &Context, sources: &[Source]) -> Result<Digest, ContextError> {
    let mut h = Fields::new();
    h.field(b"rcompose build context v1");
    // The stat cache is held for the whole walk of the entries (a build with nothing changed
    // is thousands of lookups), and let go while a file is read.
    let mut cache = ctx.stat_cache();
    for s in sources {
        h.field(b"source");
        h.field(&(s.arg as u64).to_le_bytes());
        h.field(&s.name);
        let owned = ctx.owns(s);
        for e in &s.entries {
            header(s, e, &mut h);
            if e.kind != FileKind::File {
                other(s, e, &mut h)?;
                continue;
            }
            let hit = match cache.as_mut() {
                Some(c) if owned => c.hit(e.tree_rel(), &walked(e)),
                _ => None,
            };
            if let Some((sum, xattrs)) = hit {
                h.field(&sum);
                for (k, v) in xattrs {
                    h.field(k);
                    h.field(v);
                }
                continue;
            }
            drop(cache.take());
            let (sum, xattrs) = file_hash(ctx, s, e)?;
            h.field(&sum);
            for (k, v) in xattrs {
                h.field(k.as_bytes());
                h.field(&v);
            }
            cache = ctx.stat_cache();
        }
    }
    Ok(h.finish())
}

/// The stat of a walked entry, as the stat cache keys it.
fn walked(e: &Entry) -> StatKey {
    StatKey {
        dev: e.dev,
        ino: e.ino,
        size: e.size,
        mtime: e.mtime,
        ctime: e.ctime,
    }
}

/// The fields every entry starts with.
fn header(s: &Source, e: &Entry, h: &mut Fields) {
    h.field(b"entry");
    h.field(e.rel());
    h.field(kind_tag(e.kind));
    h.field(&e.mode.to_le_bytes());
    if s.keeps_owner() {
        h.field(&e.uid.to_le_bytes());
        h.field(&e.gid.to_le_bytes());
    }
}

/// The fields after the header of an entry that is not a regular file.
fn other(s: &Source, e: &Entry, h: &mut Fields) -> Result<(), ContextError> {
    match e.kind {
        FileKind::Symlink => h.field(e.link.as_deref().unwrap_or_default()),
        FileKind::CharDevice | FileKind::BlockDevice => h.field(&e.rdev.to_le_bytes()),
        FileKind::Dir => {
            let fd = open_beneath(
                s.tree.fd.as_fd(),
                e.tree_rel(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            )
            .map_err(super::errno_err("open directory", os(e.tree_rel())))?;
            for (k, v) in read_xattrs(fd.as_fd())
                .map_err(super::io_err("read xattrs of", os(e.tree_rel())))?
            {
                h.field(k.as_bytes());
                h.field(&v);
            }
        }
        FileKind::File | FileKind::Fifo | FileKind::Socket => {}
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
    // Only the context's own files are in its stat cache, by their path in it.
    let cache = || ctx.owns(s).then(|| ctx.stat_cache()).flatten();
    // The walk's stat matches the cache's: the file is not opened at all (a build with
    // nothing changed costs one stat per file, the walk's).
    if let Some(mut cache) = cache() {
        let walked = walked(e);
        if let Some(hit) = cache.find(e.tree_rel()).filter(|h| h.key == walked) {
            if let Some(xattrs) = &hit.xattrs {
                let xattrs = xattrs
                    .iter()
                    .filter_map(|(k, v)| Some((CString::new(k.clone()).ok()?, v.clone())))
                    .collect::<Vec<_>>();
                cache.mark_used(hit.slot);
                return Ok((hit.sha256.to_vec(), xattrs));
            }
        }
    }
    let fd = open_beneath(
        s.tree.fd.as_fd(),
        e.tree_rel(),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK,
    )
    .map_err(super::errno_err("open", os(e.tree_rel())))?;
    let st = nix::sys::stat::fstat(&fd).map_err(super::errno_err("stat", os(e.tree_rel())))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(ContextError::Copy(format!(
            "{} changed while it was read (no longer a regular file)",
            shown(e.tree_rel())
        )));
    }
    let xattrs =
        read_xattrs(fd.as_fd()).map_err(super::io_err("read xattrs of", os(e.tree_rel())))?;
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
    if let Some(mut cache) = cache() {
        if let Some(hit) = cache.find(e.tree_rel()).filter(|h| h.key == key) {
            cache.mark_used(hit.slot);
            if hit.xattrs.as_ref() != Some(&kept) {
                cache.insert(
                    e.tree_rel().to_vec(),
                    StatEntry {
                        key,
                        sha256: hit.sha256,
                        xattrs: Some(kept),
                    },
                );
                ctx.stat_cache_changed
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            return Ok((hit.sha256.to_vec(), xattrs));
        }
    }
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::from(fd);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(super::io_err("read", os(e.tree_rel())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let sum: [u8; 32] = hasher.finalize().into();
    ctx.hashed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Some(mut cache) = cache() {
        ctx.stat_cache_changed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        cache.insert(
            e.tree_rel().to_vec(),
            StatEntry {
                key,
                sha256: sum,
                xattrs: Some(kept),
            },
        );
    }
    Ok((sum.to_vec(), xattrs))
}
