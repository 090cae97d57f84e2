//! Safe, streaming, verified unpacking of one image layer into a directory that becomes an
//! overlayfs lower layer.
//!
//! The (compressed) layer stream goes through a decompressor, then a meter that hashes the
//! uncompressed tar (the layer's diff_id) and enforces the size limits, then the tar parser; every
//! entry is written as it arrives, so a layer is read exactly once and never held in memory.
//!
//! Nothing is ever written outside `dest`: every parent directory is reached from a descriptor of
//! `dest` with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` or, where that is unavailable or
//! a parent is missing, one `openat(O_NOFOLLOW | O_DIRECTORY)` per component. Leaves are created
//! with `O_EXCL`/`mknodat`/`symlinkat` after removing whatever an earlier entry left there (never
//! following it), and metadata is applied with `AT_SYMLINK_NOFOLLOW` or on the open descriptor.
//!
//! On error `dest` is left half-populated: the caller removes it (the content store unpacks into
//! a temporary directory and renames it into place only on success).

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstatat, futimens, makedev, mkdirat, mknodat, utimensat, FchmodatFlags, Mode,
    SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use sha2::{Digest, Sha256};

/// Size of a tar block: headers and the padding after file data are multiples of it.
const BLOCK: u64 = 512;
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &CStr = c"trusted.overlay.opaque";
const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression a layer media type (OCI or Docker schema 2) declares; `None` for a media
    /// type that is not a layer.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        let rest = media_type
            .strip_prefix("application/vnd.oci.image.layer.")
            .or_else(|| media_type.strip_prefix("application/vnd.docker.image.rootfs."))?;
        if rest.ends_with("tar+gzip") || rest.ends_with("tar.gzip") {
            Some(Self::Gzip)
        } else if rest.ends_with("tar+zstd") || rest.ends_with("tar.zstd") {
            Some(Self::Zstd)
        } else if rest.ends_with("tar") {
            Some(Self::None)
        } else {
            None
        }
    }

    /// The compression the first bytes of a blob show (gzip and zstd magic numbers).
    pub fn from_magic(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else {
            Self::None
        }
    }
}

/// A stream whose first bytes were read to detect its compression, put back in front.
pub type Sniffed<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// Reads the first bytes of `reader` to detect its compression; returns a reader that still
/// yields the whole stream.
pub fn detect_compression<R: Read>(mut reader: R) -> io::Result<(Compression, Sniffed<R>)> {
    let mut head = Vec::with_capacity(4);
    (&mut reader).take(4).read_to_end(&mut head)?;
    let compression = Compression::from_magic(&head);
    Ok((compression, io::Cursor::new(head).chain(reader)))
}

/// Bounds against decompression bombs and hostile archives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes of the uncompressed tar stream.
    pub max_uncompressed: u64,
    /// Number of tar members.
    pub max_entries: u64,
    /// Bytes in one entry's path or link target.
    pub max_path_len: usize,
    /// Bytes of extension headers (PAX, GNU long names) before one entry: the tar parser holds
    /// them in memory.
    pub max_header_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_uncompressed: 32 << 30,
            max_entries: 2_000_000,
            max_path_len: 4096,
            max_header_bytes: 1 << 20,
        }
    }
}

/// What an unpacked layer turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// `sha256:<hex>` of the uncompressed tar stream, to compare with the image config's diff_id.
    pub diff_id: String,
    /// Bytes of the uncompressed tar stream.
    pub size: u64,
    /// Tar members read (extension headers not counted).
    pub entries: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("cannot open layer directory {}: {source}", path.display())]
    Dest {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read layer stream: {0}")]
    Read(#[source] io::Error),
    #[error("layer exceeds the limit of {limit} uncompressed bytes")]
    TooLarge { limit: u64 },
    #[error("layer has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error("layer extension headers after entry {after} exceed the limit of {limit} bytes")]
    HeadersTooLarge { limit: u64, after: u64 },
    #[error("layer entry {entry:?} refused: {reason}")]
    Rejected { entry: String, reason: Rejection },
    #[error("layer entry {entry:?}: cannot {op}: {source}")]
    Io {
        entry: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("absolute path")]
    AbsolutePath,
    #[error("path has a `..` component")]
    ParentComponent,
    #[error("path contains a NUL byte")]
    NulByte,
    #[error("path is longer than {0} bytes")]
    PathTooLong(usize),
    #[error("parent {0:?} is a symlink")]
    SymlinkParent(String),
    #[error("parent {0:?} is not a directory")]
    NotDirectoryParent(String),
    #[error("only a directory may name the layer root")]
    RootNotDirectory,
    #[error("bare whiteout `.wh.`")]
    BareWhiteout,
    #[error("whiteout of `.` or `..`")]
    DotWhiteout,
    #[error("symlink has an empty target")]
    EmptySymlink,
    #[error("hard link target {target:?}: {reason}")]
    LinkTarget {
        target: String,
        reason: Box<Rejection>,
    },
    #[error("not in the layer (hard links must follow their target)")]
    Missing,
    #[error("is a directory")]
    Directory,
    #[error("owner id {0} does not fit in 32 bits")]
    BadOwner(u64),
    #[error("unsupported entry type {0:?}")]
    UnsupportedType(tar::EntryType),
}

/// An entry's failure before the entry's name is attached.
#[derive(Debug)]
enum EntryErr {
    Reject(Rejection),
    Io(&'static str, io::Error),
    /// Reading the layer stream failed (maybe a limit): mapped by [`Meter`]'s state.
    Stream(io::Error),
}

impl From<Rejection> for EntryErr {
    fn from(r: Rejection) -> Self {
        EntryErr::Reject(r)
    }
}

fn io_err(op: &'static str) -> impl FnOnce(Errno) -> EntryErr {
    move |e| EntryErr::Io(op, io::Error::from(e))
}

/// Unpacks one layer stream into `dest`, an existing empty directory, and returns its diff_id.
///
/// The stream is read to its end, so the caller's digest of the compressed blob covers it all.
/// On error `dest` is left as it is and the caller removes it.
pub fn unpack_layer(
    reader: impl Read,
    compression: Compression,
    dest: &Path,
    limits: &Limits,
) -> Result<Unpacked, UnpackError> {
    unpack(reader, compression, dest, limits, true)
}

/// [`unpack_layer`], with the openat2 fast path switchable so tests cover the fallback walk.
fn unpack(
    reader: impl Read,
    compression: Compression,
    dest: &Path,
    limits: &Limits,
    use_openat2: bool,
) -> Result<Unpacked, UnpackError> {
    let root = nix::fcntl::open(
        dest,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Dest {
        path: dest.to_path_buf(),
        source: e.into(),
    })?;
    let decoder: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(reader),
        // Multi-member gzip is valid and some tools write it.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::Decoder::new(reader).map_err(UnpackError::Read)?),
    };
    let state = MeterState::new(limits);
    let meter = Meter {
        inner: decoder,
        hasher: Sha256::new(),
        state: &state,
    };
    let mut archive = tar::Archive::new(meter);
    let mut unpacker = Unpacker {
        root,
        limits,
        use_openat2,
        dirs: Vec::new(),
        buf: vec![0; 256 << 10],
    };
    let mut count = 0u64;
    {
        let mut entries = archive
            .entries()
            .map_err(|e| state.stream_error(e, count))?;
        loop {
            // Everything read while looking for the next entry is headers (the previous entry's
            // data was drained below), and the parser keeps those in memory: bound them.
            state.open_header_window(limits.max_header_bytes + 2 * BLOCK);
            let next = entries.next();
            state.close_header_window();
            let mut entry = match next {
                None => break,
                Some(entry) => entry.map_err(|e| state.stream_error(e, count))?,
            };
            count += 1;
            if count > limits.max_entries {
                return Err(UnpackError::TooManyEntries {
                    limit: limits.max_entries,
                });
            }
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let result = unpacker.entry(&mut entry).and_then(|()| {
                io::copy(&mut entry, &mut io::sink())
                    .map(drop)
                    .map_err(EntryErr::Stream)
            });
            if let Err(err) = result {
                return Err(match err {
                    EntryErr::Reject(reason) => UnpackError::Rejected {
                        entry: name,
                        reason,
                    },
                    EntryErr::Io(op, source) => UnpackError::Io {
                        entry: name,
                        op,
                        source,
                    },
                    EntryErr::Stream(e) => state.stream_error(e, count),
                });
            }
        }
    }
    unpacker.finish()?;
    // Hash what follows the end-of-archive marker too: the diff_id covers the whole stream.
    let mut meter = archive.into_inner();
    io::copy(&mut meter, &mut io::sink()).map_err(|e| state.stream_error(e, count))?;
    Ok(Unpacked {
        diff_id: format!("sha256:{}", hex::encode(meter.hasher.finalize())),
        size: state.read.get(),
        entries: count,
    })
}

#[derive(Debug, Clone, Copy)]
enum LimitHit {
    Total,
    Headers,
}

/// Counters shared between the meter (owned by the tar parser) and the unpack loop.
struct MeterState {
    read: Cell<u64>,
    max_total: u64,
    max_headers: u64,
    /// Stream offset the current header window may not pass (`u64::MAX` when closed).
    window_end: Cell<u64>,
    hit: Cell<Option<LimitHit>>,
}

impl MeterState {
    fn new(limits: &Limits) -> Self {
        Self {
            read: Cell::new(0),
            max_total: limits.max_uncompressed,
            max_headers: limits.max_header_bytes,
            window_end: Cell::new(u64::MAX),
            hit: Cell::new(None),
        }
    }

    fn open_header_window(&self, len: u64) {
        self.window_end.set(self.read.get().saturating_add(len));
    }

    fn close_header_window(&self) {
        self.window_end.set(u64::MAX);
    }

    /// A read error, or the limit the meter saw hit (the parser may have wrapped its error).
    fn stream_error(&self, err: io::Error, entries: u64) -> UnpackError {
        match self.hit.get() {
            Some(LimitHit::Total) => UnpackError::TooLarge {
                limit: self.max_total,
            },
            Some(LimitHit::Headers) => UnpackError::HeadersTooLarge {
                limit: self.max_headers,
                after: entries,
            },
            None => UnpackError::Read(err),
        }
    }
}

/// Hashes and counts the uncompressed stream, failing as soon as a limit would be passed.
struct Meter<'s, R> {
    inner: R,
    hasher: Sha256,
    state: &'s MeterState,
}

impl<R: Read> Read for Meter<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let pos = self.state.read.get();
        let end = self.state.max_total.min(self.state.window_end.get());
        let allowed = end.saturating_sub(pos);
        if allowed == 0 {
            // At the limit: only an error if the stream really has more.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            let hit = if pos >= self.state.max_total {
                LimitHit::Total
            } else {
                LimitHit::Headers
            };
            self.state.hit.set(Some(hit));
            return Err(io::Error::other("layer limit exceeded"));
        }
        let cap = buf
            .len()
            .min(usize::try_from(allowed).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..cap])?;
        self.hasher.update(&buf[..n]);
        self.state.read.set(pos + n as u64);
        Ok(n)
    }
}

/// Metadata applied to an entry after it is created.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: TimeSpec,
    xattrs: Vec<(CString, Vec<u8>)>,
}

/// A directory whose mode and mtime are set once its contents are in place.
struct DirMeta {
    path: Vec<u8>,
    mode: u32,
    mtime: TimeSpec,
}

struct Unpacker<'l> {
    root: OwnedFd,
    limits: &'l Limits,
    /// Cleared when the kernel (or a seccomp filter) refuses openat2.
    use_openat2: bool,
    dirs: Vec<DirMeta>,
    buf: Vec<u8>,
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), EntryErr> {
        let raw_path = entry.path_bytes().into_owned();
        let comps = split_path(&raw_path, self.limits.max_path_len)?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        if let Some((last, parents)) = comps.split_last() {
            // AUFS bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`) means nothing to overlayfs.
            if parents.iter().any(|c| c.starts_with(WHITEOUT_META_PREFIX))
                || (last.starts_with(WHITEOUT_META_PREFIX) && *last != OPAQUE_MARKER)
            {
                return Ok(());
            }
            if last.starts_with(WHITEOUT_PREFIX) {
                return self.whiteout(parents, last);
            }
        }
        let meta = read_meta(entry)?;
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        use tar::EntryType as T;
        match kind {
            T::Directory => self.directory(&comps, meta),
            T::Regular | T::Continuous | T::GNUSparse => {
                let (parent, name) = self.parent_of(&comps)?;
                self.regular(&parent, name, entry, &meta)
            }
            T::Symlink => {
                let target = link
                    .filter(|l| !l.is_empty())
                    .ok_or(Rejection::EmptySymlink)?;
                let (parent, name) = self.parent_of(&comps)?;
                clear(&parent, name, false)?;
                symlinkat(target.as_slice(), &parent, name).map_err(io_err("create symlink"))?;
                apply_at(&parent, name, &meta, false)
            }
            T::Link => self.hard_link(&comps, link.as_deref().unwrap_or_default()),
            T::Char | T::Block | T::Fifo => {
                // A FIFO has no device number: real tars leave its fields empty or NUL, which
                // the tar crate does not parse (Go's archive/tar, behind docker and containerd,
                // reads an empty field as 0), so they are not read at all.
                let dev = if kind == T::Fifo {
                    0
                } else {
                    let header = entry.header();
                    let major =
                        device_field(header, true).map_err(|e| EntryErr::Io("parse header", e))?;
                    let minor =
                        device_field(header, false).map_err(|e| EntryErr::Io("parse header", e))?;
                    makedev(u64::from(major), u64::from(minor))
                };
                let sflag = match kind {
                    T::Char => SFlag::S_IFCHR,
                    T::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let (parent, name) = self.parent_of(&comps)?;
                clear(&parent, name, false)?;
                mknodat(&parent, name, sflag, Mode::from_bits_truncate(0o600), dev)
                    .map_err(io_err("create device node"))?;
                apply_at(&parent, name, &meta, true)
            }
            other => Err(Rejection::UnsupportedType(other).into()),
        }
    }

    /// Opens the parent of a non-root path (creating missing directories) and returns the name.
    fn parent_of<'p>(&mut self, comps: &[&'p [u8]]) -> Result<(OwnedFd, &'p [u8]), EntryErr> {
        let (name, parents) = comps.split_last().ok_or(Rejection::RootNotDirectory)?;
        Ok((self.open_dir(parents, true)?, name))
    }

    fn regular(
        &mut self,
        parent: &OwnedFd,
        name: &[u8],
        data: &mut impl Read,
        meta: &Meta,
    ) -> Result<(), EntryErr> {
        clear(parent, name, false)?;
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(parent, name, flags, Mode::from_bits_truncate(0o600))
            .map_err(io_err("create file"))?;
        let mut file = File::from(fd);
        loop {
            let n = data.read(&mut self.buf).map_err(EntryErr::Stream)?;
            if n == 0 {
                break;
            }
            file.write_all(&self.buf[..n])
                .map_err(|e| EntryErr::Io("write file", e))?;
        }
        apply_fd(file.as_fd(), meta)
    }

    fn directory(&mut self, comps: &[&[u8]], meta: Meta) -> Result<(), EntryErr> {
        let dir = match comps.split_last() {
            // `./` describes the layer root itself.
            None => self
                .root
                .try_clone()
                .map_err(|e| EntryErr::Io("open directory", e))?,
            Some((name, parents)) => {
                let parent = self.open_dir(parents, true)?;
                // An existing directory is kept (with its contents), anything else replaced.
                if !clear(&parent, name, true)? {
                    mkdirat(&parent, *name, Mode::from_bits_truncate(0o700))
                        .map_err(io_err("create directory"))?;
                }
                openat(&parent, *name, DIR_FLAGS, Mode::empty())
                    .map_err(io_err("open directory"))?
            }
        };
        fchown(
            &dir,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )
        .map_err(io_err("set owner"))?;
        for (key, value) in &meta.xattrs {
            fset_xattr(dir.as_fd(), key, value).map_err(|e| EntryErr::Io("set xattr", e))?;
        }
        // Mode and mtime wait until the directory's contents are written.
        self.dirs.push(DirMeta {
            path: comps.join(&b'/'),
            mode: meta.mode,
            mtime: meta.mtime,
        });
        Ok(())
    }

    fn hard_link(&mut self, comps: &[&[u8]], raw_target: &[u8]) -> Result<(), EntryErr> {
        let reject = |reason: Rejection| {
            EntryErr::Reject(Rejection::LinkTarget {
                target: String::from_utf8_lossy(raw_target).into_owned(),
                reason: Box::new(reason),
            })
        };
        let target = split_path(raw_target, self.limits.max_path_len).map_err(reject)?;
        let (target_name, target_parents) = target
            .split_last()
            .ok_or_else(|| reject(Rejection::Directory))?;
        if target == comps {
            return Ok(());
        }
        let target_parent = match self.open_dir(target_parents, false) {
            Ok(fd) => fd,
            Err(EntryErr::Reject(r)) => return Err(reject(r)),
            Err(EntryErr::Io(_, e)) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(reject(Rejection::Missing))
            }
            Err(e) => return Err(e),
        };
        match fstatat(&target_parent, *target_name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if is_dir(st.st_mode) => return Err(reject(Rejection::Directory)),
            Ok(_) => {}
            Err(Errno::ENOENT) => return Err(reject(Rejection::Missing)),
            Err(e) => return Err(EntryErr::Io("inspect hard link target", e.into())),
        }
        let (parent, name) = self.parent_of(comps)?;
        clear(&parent, name, false)?;
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
        linkat(
            &target_parent,
            *target_name,
            &parent,
            name,
            AtFlags::empty(),
        )
        .map_err(|e| {
            if e == Errno::ENOENT {
                reject(Rejection::Missing)
            } else {
                EntryErr::Io("create hard link", e.into())
            }
        })
    }

    fn whiteout(&mut self, parents: &[&[u8]], name: &[u8]) -> Result<(), EntryErr> {
        let hidden = &name[WHITEOUT_PREFIX.len()..];
        if hidden.is_empty() {
            return Err(Rejection::BareWhiteout.into());
        }
        if hidden == b"." || hidden == b".." {
            return Err(Rejection::DotWhiteout.into());
        }
        let parent = self.open_dir(parents, true)?;
        if name == OPAQUE_MARKER {
            return fset_xattr(parent.as_fd(), OPAQUE_XATTR, b"y")
                .map_err(|e| EntryErr::Io("mark directory opaque", e));
        }
        clear(&parent, hidden, false)?;
        // overlayfs' whiteout: a 0:0 character device owned by root.
        mknodat(
            &parent,
            hidden,
            SFlag::S_IFCHR,
            Mode::empty(),
            makedev(0, 0),
        )
        .map_err(io_err("create whiteout"))?;
        fchownat(
            &parent,
            hidden,
            Some(Uid::from_raw(0)),
            Some(Gid::from_raw(0)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(io_err("set whiteout owner"))
    }

    /// Opens the directory at `comps` below the layer root without following any symlink,
    /// creating missing components (mode 0755) when `create` is set.
    fn open_dir(&mut self, comps: &[&[u8]], create: bool) -> Result<OwnedFd, EntryErr> {
        if comps.is_empty() {
            return self
                .root
                .try_clone()
                .map_err(|e| EntryErr::Io("open layer root", e));
        }
        if self.use_openat2 {
            let how = OpenHow::new().flags(DIR_FLAGS).resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            );
            match openat2(&self.root, comps.join(&b'/').as_slice(), how) {
                Ok(fd) => return Ok(fd),
                Err(Errno::ENOSYS | Errno::EPERM | Errno::E2BIG) => self.use_openat2 = false,
                // The walk below creates what is missing and names what is wrong.
                Err(_) => {}
            }
        }
        let mut dir = self
            .root
            .try_clone()
            .map_err(|e| EntryErr::Io("open layer root", e))?;
        for (i, comp) in comps.iter().enumerate() {
            dir = match openat(&dir, *comp, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create => {
                    match mkdirat(&dir, *comp, Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(EntryErr::Io("create parent directory", e.into())),
                    }
                    let fd = openat(&dir, *comp, DIR_FLAGS, Mode::empty())
                        .map_err(io_err("open parent directory"))?;
                    // Undo the umask: implicit parents are 0755 as in docker.
                    fchmod(&fd, Mode::from_bits_truncate(0o755))
                        .map_err(io_err("set parent directory mode"))?;
                    fd
                }
                Err(e @ (Errno::ELOOP | Errno::ENOTDIR)) => {
                    let shown = String::from_utf8_lossy(&comps[..=i].join(&b'/')).into_owned();
                    return Err(match fstatat(&dir, *comp, AtFlags::AT_SYMLINK_NOFOLLOW) {
                        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                            Rejection::SymlinkParent(shown).into()
                        }
                        Ok(_) => Rejection::NotDirectoryParent(shown).into(),
                        Err(_) => EntryErr::Io("open parent directory", e.into()),
                    });
                }
                Err(e) => return Err(EntryErr::Io("open parent directory", e.into())),
            };
        }
        Ok(dir)
    }

    /// Sets the directories' modes and mtimes now that nothing more is written into them.
    fn finish(&mut self) -> Result<(), UnpackError> {
        for dir in std::mem::take(&mut self.dirs) {
            let entry = || String::from_utf8_lossy(&dir.path).into_owned();
            let wrap = |op: &'static str| {
                move |e: Errno| UnpackError::Io {
                    entry: entry(),
                    op,
                    source: e.into(),
                }
            };
            let mode = Mode::from_bits_truncate(dir.mode);
            let comps: Vec<&[u8]> = dir
                .path
                .split(|b| *b == b'/')
                .filter(|c| !c.is_empty())
                .collect();
            let Some((name, parents)) = comps.split_last() else {
                fchmod(&self.root, mode).map_err(wrap("set mode"))?;
                futimens(&self.root, &dir.mtime, &dir.mtime).map_err(wrap("set mtime"))?;
                continue;
            };
            // A later entry may have replaced the directory (or a parent): then it has nothing
            // left to fix, and nothing is followed to look.
            let Ok(parent) = self.open_dir(parents, false) else {
                continue;
            };
            match fstatat(&parent, *name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if is_dir(st.st_mode) => {}
                _ => continue,
            }
            // Just checked to be a directory, and nothing else writes into the layer.
            fchmodat(&parent, *name, mode, FchmodatFlags::FollowSymlink)
                .map_err(wrap("set mode"))?;
            utimensat(
                &parent,
                *name,
                &dir.mtime,
                &dir.mtime,
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(wrap("set mtime"))?;
        }
        Ok(())
    }
}

/// Splits an archive path into its components, refusing anything that could leave the layer.
/// An empty result names the layer root.
fn split_path(raw: &[u8], max_len: usize) -> Result<Vec<&[u8]>, Rejection> {
    if raw.len() > max_len {
        return Err(Rejection::PathTooLong(max_len));
    }
    if raw.contains(&0) {
        return Err(Rejection::NulByte);
    }
    if raw.first() == Some(&b'/') {
        return Err(Rejection::AbsolutePath);
    }
    let mut comps = Vec::new();
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err(Rejection::ParentComponent),
            _ => comps.push(comp),
        }
    }
    Ok(comps)
}

/// Removes whatever is at `name` (recursively for a directory, never following a symlink).
/// Returns true when `keep_dir` is set and a directory was kept.
fn clear(parent: &OwnedFd, name: &[u8], keep_dir: bool) -> Result<bool, EntryErr> {
    match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => Ok(false),
        Err(e) => Err(EntryErr::Io("inspect existing entry", e.into())),
        Ok(st) if is_dir(st.st_mode) && keep_dir => Ok(true),
        Ok(_) => {
            remove_all_at(parent.as_fd(), name).map_err(io_err("replace existing entry"))?;
            Ok(false)
        }
    }
}

fn remove_all_at(parent: BorrowedFd<'_>, name: &[u8]) -> nix::Result<()> {
    match unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
        Err(Errno::EISDIR) => {}
        other => return other,
    }
    let fd = openat(parent, name, DIR_FLAGS, Mode::empty())?;
    let mut dir = Dir::from_fd(fd)?;
    let children: Vec<Vec<u8>> = dir
        .iter()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_bytes().to_vec())
        .filter(|n| n != b"." && n != b"..")
        .collect();
    for child in children {
        remove_all_at(dir.as_fd(), &child)?;
    }
    unlinkat(parent, name, UnlinkatFlags::RemoveDir)
}

/// An owner id field of only NULs and spaces is 0, as Go's archive/tar (docker's reader) takes
/// it; the tar crate refuses it, and some layer writers leave uid/gid empty.
fn owner_field(raw: &[u8], parsed: io::Result<u64>) -> io::Result<u64> {
    if raw.iter().all(|&b| b == 0 || b == b' ') {
        return Ok(0);
    }
    parsed
}

fn is_dir(mode: libc::mode_t) -> bool {
    mode & libc::S_IFMT == libc::S_IFDIR
}

/// Reads ownership, mode, mtime and xattrs from the header and its PAX records.
fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta, EntryErr> {
    let header = entry.header();
    let parse = |e| EntryErr::Io("parse header", e);
    let mode = header.mode().map_err(parse)? & 0o7777;
    // The parser already applied PAX uid/gid records to the header.
    let uid = owner_field(&header.as_old().uid, header.uid()).map_err(parse)?;
    let gid = owner_field(&header.as_old().gid, header.gid()).map_err(parse)?;
    let uid = u32::try_from(uid).map_err(|_| Rejection::BadOwner(uid))?;
    let gid = u32::try_from(gid).map_err(|_| Rejection::BadOwner(gid))?;
    let secs = i64::try_from(header.mtime().map_err(parse)?).unwrap_or(i64::MAX);
    let mut mtime = TimeSpec::new(secs, 0);
    let mut xattrs = Vec::new();
    if let Some(pax) = entry.pax_extensions().map_err(parse)? {
        for record in pax {
            let record = record.map_err(parse)?;
            let key = record.key_bytes();
            if key == b"mtime" {
                if let Some(t) = parse_pax_time(record.value_bytes()) {
                    mtime = t;
                }
            } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                // overlayfs' own attributes would let a layer forge opaque directories or
                // redirects: only whiteout conversion sets them.
                if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
                    continue;
                }
                let name = CString::new(name).map_err(|_| Rejection::NulByte)?;
                xattrs.push((name, record.value_bytes().to_vec()));
            }
        }
    }
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    })
}

/// Parses a PAX time (`1700000000.123456789`, possibly negative).
fn parse_pax_time(value: &[u8]) -> Option<TimeSpec> {
    let text = std::str::from_utf8(value).ok()?;
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let mut secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut nanos: i64 = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    if text.starts_with('-') && nanos > 0 {
        secs -= 1;
        nanos = 1_000_000_000 - nanos;
    }
    Some(TimeSpec::new(secs, nanos))
}

/// Applies metadata on an open regular file. Order matters: chown clears setuid bits and file
/// capabilities, so it comes first and the capability xattr last.
fn apply_fd(fd: BorrowedFd<'_>, meta: &Meta) -> Result<(), EntryErr> {
    fchown(
        fd,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
    )
    .map_err(io_err("set owner"))?;
    fchmod(fd, Mode::from_bits_truncate(meta.mode)).map_err(io_err("set mode"))?;
    for (key, value) in &meta.xattrs {
        fset_xattr(fd, key, value).map_err(|e| EntryErr::Io("set xattr", e))?;
    }
    futimens(fd, &meta.mtime, &meta.mtime).map_err(io_err("set mtime"))
}

/// Applies metadata to a just-created symlink or device node by name, never following it.
fn apply_at(parent: &OwnedFd, name: &[u8], meta: &Meta, chmod: bool) -> Result<(), EntryErr> {
    fchownat(
        parent,
        name,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(io_err("set owner"))?;
    if chmod {
        // A device node or FIFO this entry just created (symlinks have no mode of their own).
        fchmodat(
            parent,
            name,
            Mode::from_bits_truncate(meta.mode),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(io_err("set mode"))?;
    }
    for (key, value) in &meta.xattrs {
        lset_xattr_at(parent.as_fd(), name, key, value)
            .map_err(|e| EntryErr::Io("set xattr", e))?;
    }
    utimensat(
        parent,
        name,
        &meta.mtime,
        &meta.mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(io_err("set mtime"))
}

fn fset_xattr(fd: BorrowedFd<'_>, key: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: `key` is NUL-terminated and `value` is valid for `value.len()` bytes for the call.
    let rc = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets an xattr on `parent/name` without following `name`: device nodes and symlinks cannot be
/// opened for fsetxattr, so this goes through the parent's /proc/self/fd link (which pins the
/// parent) and lsetxattr (which does not follow the last component).
fn lset_xattr_at(parent: BorrowedFd<'_>, name: &[u8], key: &CStr, value: &[u8]) -> io::Result<()> {
    let mut path = format!("/proc/self/fd/{}/", parent.as_raw_fd()).into_bytes();
    path.extend_from_slice(name);
    let path = CString::new(path).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: both strings are NUL-terminated and `value` is valid for `value.len()` bytes.
    let rc = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A device number field of a tar header: empty (NUL or space only) reads as 0, as Go's
/// archive/tar reads it; anything else as the tar crate parses it.
fn device_field(header: &tar::Header, major: bool) -> std::io::Result<u32> {
    let raw: Option<&[u8]> = match (header.as_ustar(), header.as_gnu()) {
        (Some(u), _) => Some(if major { &u.dev_major } else { &u.dev_minor }),
        (None, Some(g)) => Some(if major { &g.dev_major } else { &g.dev_minor }),
        _ => None,
    };
    if raw.is_some_and(|r| r.iter().all(|b| *b == 0 || *b == b' ')) {
        return Ok(0);
    }
    let parsed = if major {
        header.device_major()
    } else {
        header.device_minor()
    };
    parsed.map(|v| v.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use tar::{EntryType, Header};

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    /// Unpacking sets ownership, creates device nodes and trusted.* xattrs: root only.
    macro_rules! require_root {
        () => {
            if !is_root() {
                eprintln!("skipped: needs root (mknod, chown, trusted.* xattrs)");
                return;
            }
        };
    }

    const MTIME: u64 = 1_600_000_000;
    /// A valid VFS_CAP_REVISION_2 capability set: cap_net_bind_service, effective.
    const CAP_NET_BIND: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    /// Builds tar streams byte by byte, including the hostile ones the `tar` crate's safe
    /// setters refuse to write.
    struct Tar {
        out: tar::Builder<Vec<u8>>,
        members: u64,
    }

    struct E<'a> {
        path: &'a str,
        kind: EntryType,
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
        link: &'a str,
        data: &'a [u8],
        dev: (u32, u32),
    }

    fn e(path: &str, kind: EntryType) -> E<'_> {
        let mode = if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        };
        E {
            path,
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: MTIME,
            link: "",
            data: b"",
            dev: (0, 0),
        }
    }

    impl Tar {
        fn new() -> Self {
            Self {
                out: tar::Builder::new(Vec::new()),
                members: 0,
            }
        }

        fn add(&mut self, e: E<'_>) -> &mut Self {
            let mut h = Header::new_gnu();
            let name = &mut h.as_old_mut().name;
            name[..e.path.len()].copy_from_slice(e.path.as_bytes());
            h.set_entry_type(e.kind);
            h.set_size(e.data.len() as u64);
            h.set_mode(e.mode);
            h.set_uid(e.uid);
            h.set_gid(e.gid);
            h.set_mtime(e.mtime);
            h.set_link_name_literal(e.link.as_bytes()).unwrap();
            h.set_device_major(e.dev.0).unwrap();
            h.set_device_minor(e.dev.1).unwrap();
            h.set_cksum();
            self.out.append(&h, e.data).unwrap();
            self.members += 1;
            self
        }

        fn dir(&mut self, path: &str) -> &mut Self {
            self.add(e(path, EntryType::Directory))
        }

        fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
            self.add(E {
                data,
                ..e(path, EntryType::Regular)
            })
        }

        fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
            self.add(E {
                link: target,
                ..e(path, EntryType::Symlink)
            })
        }

        fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
            self.add(E {
                link: target,
                ..e(path, EntryType::Link)
            })
        }

        /// PAX records for the next member (not a member itself).
        fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
            let mut data = Vec::new();
            for (key, value) in records {
                let base = key.len() + value.len() + 3;
                let mut len = base + 1;
                while base + len.to_string().len() != len {
                    len += 1;
                }
                data.extend_from_slice(format!("{len} {key}=").as_bytes());
                data.extend_from_slice(value);
                data.push(b'\n');
            }
            self.add(E {
                data: &data,
                ..e("PaxHeaders/x", EntryType::XHeader)
            });
            self.members -= 1;
            self
        }

        /// A GNU long-name record of `len` bytes for the next member.
        fn long_name(&mut self, name: &[u8]) -> &mut Self {
            self.add(E {
                data: name,
                ..e("././@LongLink", EntryType::GNULongName)
            });
            self.members -= 1;
            self
        }

        fn finish(&mut self) -> Vec<u8> {
            let out = std::mem::replace(&mut self.out, tar::Builder::new(Vec::new()));
            out.into_inner().unwrap()
        }
    }

    /// A temp dir holding the layer directory deep inside (so `../..` stays in the temp dir)
    /// and a victim directory that hostile entries aim at.
    struct Sandbox {
        tmp: tempfile::TempDir,
        dest: PathBuf,
    }

    impl Sandbox {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let dest = tmp.path().join("s1/s2/layer");
            std::fs::create_dir_all(&dest).unwrap();
            std::fs::create_dir(tmp.path().join("victim")).unwrap();
            std::fs::write(tmp.path().join("victim/secret"), b"keep").unwrap();
            Self { tmp, dest }
        }

        fn victim(&self) -> PathBuf {
            self.tmp.path().join("victim")
        }

        /// Everything in the temp dir outside the layer: path → (type, mode, size, mtime,
        /// xattr names), walked without following symlinks.
        fn outside(&self) -> BTreeMap<PathBuf, String> {
            let mut seen = BTreeMap::new();
            let mut stack = vec![self.tmp.path().to_path_buf()];
            while let Some(dir) = stack.pop() {
                for child in std::fs::read_dir(&dir).unwrap() {
                    let path = child.unwrap().path();
                    if path == self.dest {
                        continue;
                    }
                    let md = std::fs::symlink_metadata(&path).unwrap();
                    let xattrs = list_xattrs(&path);
                    seen.insert(
                        path.clone(),
                        format!(
                            "{:?} {:o} {} {}.{} {xattrs:?}",
                            md.file_type(),
                            md.mode(),
                            md.len(),
                            md.mtime(),
                            md.mtime_nsec()
                        ),
                    );
                    if md.is_dir() {
                        stack.push(path);
                    }
                }
            }
            seen
        }
    }

    fn list_xattrs(path: &Path) -> Vec<u8> {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        let mut buf = vec![0u8; 4096];
        // SAFETY: valid NUL-terminated path and a buffer of the given length.
        let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        buf.truncate(usize::try_from(n).unwrap_or(0));
        buf
    }

    fn get_xattr(path: &Path, key: &str) -> Option<Vec<u8>> {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        let k = CString::new(key).unwrap();
        let mut buf = vec![0u8; 4096];
        // SAFETY: valid NUL-terminated strings and a buffer of the given length.
        let n =
            unsafe { libc::lgetxattr(c.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        let n = usize::try_from(n).ok()?;
        buf.truncate(n);
        Some(buf)
    }

    fn sha256(bytes: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn unpack_plain(tar: &[u8], dest: &Path) -> Result<Unpacked, UnpackError> {
        unpack_layer(tar, Compression::None, dest, &Limits::default())
    }

    #[test]
    fn empty_owner_fields_read_as_root() {
        let ok = |n: u64| -> io::Result<u64> { Ok(n) };
        let bad = || -> io::Result<u64> { Err(io::Error::other("not a number")) };
        assert_eq!(owner_field(&[0; 8], bad()).unwrap(), 0);
        assert_eq!(owner_field(b"        ", bad()).unwrap(), 0);
        assert_eq!(owner_field(b"  \0\0\0\0\0\0", bad()).unwrap(), 0);
        assert_eq!(owner_field(b"0001750\0", ok(1000)).unwrap(), 1000);
        assert!(owner_field(b"12x\0\0\0\0\0", bad()).is_err());

        require_root!();
        let sb = Sandbox::new();
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..1].copy_from_slice(b"f");
        h.set_entry_type(EntryType::Regular);
        h.set_size(1);
        h.set_mode(0o644);
        h.set_mtime(MTIME);
        h.as_old_mut().uid = [0; 8];
        h.as_old_mut().gid = *b"        ";
        h.set_cksum();
        let mut out = tar::Builder::new(Vec::new());
        out.append(&h, &b"x"[..]).unwrap();
        let bytes = out.into_inner().unwrap();
        unpack_plain(&bytes, &sb.dest).unwrap();
        let md = std::fs::symlink_metadata(sb.dest.join("f")).unwrap();
        assert_eq!((md.uid(), md.gid()), (0, 0));
    }

    #[test]
    fn every_entry_type_lands_with_its_metadata() {
        require_root!();
        let sb = Sandbox::new();
        let mut t = Tar::new();
        t.add(E {
            mtime: 1_000_000_000,
            ..e("./", EntryType::Directory)
        })
        .dir("bin/")
        .add(E {
            mode: 0o4755,
            data: b"su",
            ..e("bin/su", EntryType::Regular)
        })
        .add(E {
            mode: 0o2755,
            uid: 1000,
            gid: 50,
            data: b"sg",
            ..e("bin/sg", EntryType::Regular)
        })
        .add(E {
            mode: 0o1777,
            ..e("tmp", EntryType::Directory)
        })
        // `home` itself is never listed: it is created as an implicit parent.
        .add(E {
            mode: 0o700,
            uid: 1000,
            gid: 1000,
            mtime: 1_400_000_000,
            ..e("home/user/", EntryType::Directory)
        })
        .add(E {
            mode: 0o600,
            uid: 1000,
            gid: 1000,
            mtime: 1_500_000_000,
            data: b"hello",
            ..e("home/user/notes", EntryType::Regular)
        })
        .pax(&[
            ("SCHILY.xattr.security.capability", &CAP_NET_BIND),
            ("SCHILY.xattr.user.note", b"x"),
            ("SCHILY.xattr.trusted.test", b"t"),
            ("mtime", b"1600000000.5"),
            ("uid", b"4294967294"),
        ])
        .add(E {
            mode: 0o755,
            data: b"ping",
            ..e("usr/bin/ping", EntryType::Regular)
        })
        .add(E {
            link: "/bin/busybox",
            uid: 1000,
            gid: 1001,
            mtime: 1_300_000_000,
            ..e("bin/sh", EntryType::Symlink)
        })
        .hardlink("bin/link", "bin/su")
        .add(E {
            mode: 0o666,
            dev: (1, 3),
            ..e("dev/null", EntryType::Char)
        })
        .add(E {
            mode: 0o660,
            gid: 6,
            dev: (7, 0),
            ..e("dev/loop0", EntryType::Block)
        })
        .add(E {
            mode: 0o600,
            ..e("run/fifo", EntryType::Fifo)
        })
        .pax(&[("SCHILY.xattr.trusted.overlay.opaque", b"y")])
        .dir("forged/");
        let members = t.members;
        let bytes = t.finish();
        let got = unpack_plain(&bytes, &sb.dest).unwrap();
        assert_eq!(got.diff_id, sha256(&bytes));
        assert_eq!(got.size, bytes.len() as u64);
        assert_eq!(got.entries, members);

        let d = &sb.dest;
        let md = |p: &str| std::fs::symlink_metadata(d.join(p)).unwrap();
        assert_eq!(md("").mtime(), 1_000_000_000);
        assert_eq!(md("").mode() & 0o7777, 0o755);
        assert_eq!(md("bin/su").mode() & 0o7777, 0o4755);
        assert_eq!(std::fs::read(d.join("bin/su")).unwrap(), b"su");
        let sg = md("bin/sg");
        assert_eq!((sg.mode() & 0o7777, sg.uid(), sg.gid()), (0o2755, 1000, 50));
        assert_eq!(md("tmp").mode() & 0o7777, 0o1777);
        assert!(md("tmp").is_dir());
        assert_eq!(md("home").mode() & 0o7777, 0o755);
        let user = md("home/user");
        assert_eq!(
            (user.mode() & 0o7777, user.uid(), user.gid()),
            (0o700, 1000, 1000)
        );
        // Set after `notes` was written into it.
        assert_eq!(user.mtime(), 1_400_000_000);
        let notes = md("home/user/notes");
        assert_eq!(
            (notes.mode() & 0o7777, notes.uid(), notes.mtime()),
            (0o600, 1000, 1_500_000_000)
        );
        let ping = md("usr/bin/ping");
        assert_eq!(
            (ping.mtime(), ping.mtime_nsec()),
            (1_600_000_000, 500_000_000)
        );
        assert_eq!(ping.uid(), 4_294_967_294);
        let ping_path = d.join("usr/bin/ping");
        assert_eq!(
            get_xattr(&ping_path, "security.capability").unwrap(),
            CAP_NET_BIND
        );
        assert_eq!(get_xattr(&ping_path, "user.note").unwrap(), b"x");
        assert_eq!(get_xattr(&ping_path, "trusted.test").unwrap(), b"t");
        let sh = md("bin/sh");
        assert!(sh.file_type().is_symlink());
        assert_eq!(
            std::fs::read_link(d.join("bin/sh")).unwrap(),
            Path::new("/bin/busybox")
        );
        assert_eq!(
            (sh.uid(), sh.gid(), sh.mtime()),
            (1000, 1001, 1_300_000_000)
        );
        assert_eq!(md("bin/link").ino(), md("bin/su").ino());
        let null = md("dev/null");
        assert!(null.file_type().is_char_device());
        assert_eq!((null.rdev(), null.mode() & 0o7777), (makedev(1, 3), 0o666));
        let lp = md("dev/loop0");
        assert!(lp.file_type().is_block_device());
        assert_eq!(
            (lp.rdev(), lp.gid(), lp.mode() & 0o7777),
            (makedev(7, 0), 6, 0o660)
        );
        assert!(md("run/fifo").file_type().is_fifo());
        assert_eq!(md("run/fifo").mode() & 0o7777, 0o600);
        // A layer cannot forge overlayfs attributes.
        assert_eq!(get_xattr(&d.join("forged"), "trusted.overlay.opaque"), None);
    }

    /// Issue 19: real tars leave a FIFO's device fields empty; such a layer was refused.
    #[test]
    fn a_fifo_with_empty_device_fields_is_unpacked() {
        require_root!();
        let mut t = Tar::new();
        t.dir("run/");
        let mut h = Header::new_ustar();
        h.set_path("run/pipe").unwrap();
        h.set_entry_type(EntryType::Fifo);
        h.set_size(0);
        h.set_mode(0o640);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000_000);
        let ustar = h.as_ustar_mut().unwrap();
        ustar.dev_major = [0; 8];
        ustar.dev_minor = [b' '; 8];
        h.set_cksum();
        t.out.append(&h, &[][..]).unwrap();
        t.members += 1;
        // What made the layer fail: the tar crate does not read an empty field.
        assert!(h.device_major().is_err());
        let members = t.members;
        let bytes = t.finish();
        let sb = Sandbox::new();
        let got = unpack_plain(&bytes, &sb.dest).unwrap();
        assert_eq!(got.entries, members);
        let md = std::fs::symlink_metadata(sb.dest.join("run/pipe")).unwrap();
        assert!(md.file_type().is_fifo());
        assert_eq!(md.mode() & 0o7777, 0o640);
    }

    #[test]
    fn empty_device_fields_read_as_zero() {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Char);
        h.set_device_major(1).unwrap();
        h.as_gnu_mut().unwrap().dev_minor = [0; 8];
        assert_eq!(device_field(&h, true).unwrap(), 1);
        assert_eq!(device_field(&h, false).unwrap(), 0);
        h.as_gnu_mut().unwrap().dev_minor = *b"xyz\0\0\0\0\0";
        assert!(device_field(&h, false).is_err());
    }

    #[test]
    fn compressed_streams_hash_the_uncompressed_tar() {
        require_root!();
        let bytes = Tar::new()
            .dir("etc/")
            .file("etc/hostname", b"box\n")
            .finish();
        let zstd_bytes = zstd::encode_all(bytes.as_slice(), 3).unwrap();
        for (compression, blob) in [
            (Compression::Gzip, gzip(&bytes)),
            (Compression::Zstd, zstd_bytes),
        ] {
            let sb = Sandbox::new();
            let got =
                unpack_layer(blob.as_slice(), compression, &sb.dest, &Limits::default()).unwrap();
            assert_eq!(got.diff_id, sha256(&bytes), "{compression:?}");
            assert_eq!(got.size, bytes.len() as u64);
            assert_eq!(
                std::fs::read(sb.dest.join("etc/hostname")).unwrap(),
                b"box\n"
            );
            // Detection by magic bytes gives the same result.
            let (detected, stream) = detect_compression(blob.as_slice()).unwrap();
            assert_eq!(detected, compression);
            let sb = Sandbox::new();
            let again = unpack_layer(stream, detected, &sb.dest, &Limits::default()).unwrap();
            assert_eq!(again, got);
        }
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts() {
        require_root!();
        let sb = Sandbox::new();
        let bytes = Tar::new()
            .file(".wh.gone", b"")
            .dir("etc/")
            .file("etc/.wh..wh..opq", b"")
            .file("etc/kept", b"k")
            .file("var/lib/.wh.cache", b"")
            // AUFS bookkeeping is dropped, not unpacked.
            .file(".wh..wh.plnk/123.456", b"")
            .finish();
        unpack_plain(&bytes, &sb.dest).unwrap();
        let d = &sb.dest;
        for wh in ["gone", "var/lib/cache"] {
            let md = std::fs::symlink_metadata(d.join(wh)).unwrap();
            assert!(md.file_type().is_char_device(), "{wh}");
            assert_eq!((md.rdev(), md.uid(), md.gid()), (0, 0, 0), "{wh}");
        }
        assert!(!d.join(".wh.gone").exists());
        assert_eq!(
            get_xattr(&d.join("etc"), "trusted.overlay.opaque").unwrap(),
            b"y"
        );
        assert!(!d.join("etc/.wh..wh..opq").exists());
        assert_eq!(std::fs::read(d.join("etc/kept")).unwrap(), b"k");
        assert!(!d.join(".wh..wh.plnk").exists());
    }

    #[test]
    fn later_entries_replace_earlier_ones_without_following_them() {
        require_root!();
        let sb = Sandbox::new();
        let victim = sb.victim();
        let target = victim.join("secret");
        let before = sb.outside();
        let bytes = Tar::new()
            // A file over a symlink to a file outside the layer.
            .symlink("f", target.to_str().unwrap())
            .file("f", b"inside")
            // A directory over a symlink to a directory outside, then a file in it.
            .symlink("d", victim.to_str().unwrap())
            .dir("d/")
            .file("d/secret", b"inside")
            // A file over a directory with contents, a symlink over a file.
            .dir("x/")
            .file("x/y", b"")
            .file("x", b"file now")
            .file("s", b"file")
            .symlink("s", "/etc/shadow")
            .file("twice", b"one")
            .file("twice", b"two")
            .finish();
        unpack_plain(&bytes, &sb.dest).unwrap();
        assert_eq!(sb.outside(), before);
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        let d = &sb.dest;
        assert_eq!(std::fs::read(d.join("f")).unwrap(), b"inside");
        assert!(std::fs::symlink_metadata(d.join("d")).unwrap().is_dir());
        assert_eq!(std::fs::read(d.join("d/secret")).unwrap(), b"inside");
        assert_eq!(std::fs::read(d.join("x")).unwrap(), b"file now");
        assert_eq!(
            std::fs::read_link(d.join("s")).unwrap(),
            Path::new("/etc/shadow")
        );
        assert_eq!(std::fs::read(d.join("twice")).unwrap(), b"two");
    }

    /// Unpacks a hostile stream, built for a fresh sandbox (so it can aim at that sandbox's
    /// victim): it must fail as `expected` says, and nothing outside the layer may change.
    fn refused(
        build: impl Fn(&Sandbox) -> Vec<u8>,
        compression: Compression,
        limits: &Limits,
        expected: impl Fn(&UnpackError) -> bool,
    ) {
        // Both ways of resolving parents: openat2, and the openat walk kept for old kernels.
        for use_openat2 in [true, false] {
            let sb = Sandbox::new();
            let tar = build(&sb);
            let before = sb.outside();
            let err =
                unpack(tar.as_slice(), compression, &sb.dest, limits, use_openat2).unwrap_err();
            assert!(expected(&err), "unexpected error: {err}");
            assert_eq!(sb.outside(), before, "something changed outside the layer");
            assert_eq!(std::fs::read(sb.victim().join("secret")).unwrap(), b"keep");
        }
    }

    fn rejected(entry: &str, reason: Rejection) -> impl Fn(&UnpackError) -> bool + '_ {
        move |err| matches!(err, UnpackError::Rejected { entry: e, reason: r } if e == entry && *r == reason)
    }

    fn hostile(build: impl Fn(&Sandbox) -> Vec<u8>, entry: &str, reason: Rejection) {
        refused(
            build,
            Compression::None,
            &Limits::default(),
            rejected(entry, reason),
        );
    }

    /// The sandbox's victim directory as a symlink target.
    fn victim(sb: &Sandbox) -> String {
        sb.victim().to_string_lossy().into_owned()
    }

    #[test]
    fn traversal_and_absolute_paths_are_refused() {
        require_root!();
        // From s1/s2/layer, `../../etc/passwd` would land in the sandbox's s1/etc.
        let t = |_: &Sandbox| Tar::new().file("../../etc/passwd", b"root::0:0").finish();
        hostile(t, "../../etc/passwd", Rejection::ParentComponent);
        let t = |_: &Sandbox| Tar::new().file("ok/../../x", b"").finish();
        hostile(t, "ok/../../x", Rejection::ParentComponent);
        let t = |_: &Sandbox| Tar::new().file("/abs/path", b"").finish();
        hostile(t, "/abs/path", Rejection::AbsolutePath);
        let t = Tar::new().file("/abs/path", b"").finish();
        let err = unpack_plain(&t, &Sandbox::new().dest).unwrap_err();
        assert_eq!(
            err.to_string(),
            "layer entry \"/abs/path\" refused: absolute path"
        );
    }

    #[test]
    fn paths_through_symlinks_are_refused() {
        require_root!();
        // Through `a -> /`, this would land in the sandbox's victim directory (aimed there
        // rather than at `a/etc/x` so that a regression is seen without touching the host).
        let through_root = |sb: &Sandbox| format!("a{}/escaped", sb.victim().display());
        let t = |sb: &Sandbox| {
            let name = through_root(sb);
            Tar::new().symlink("a", "/").file(&name, b"").finish()
        };
        refused(t, Compression::None, &Limits::default(), |e| {
            matches!(e, UnpackError::Rejected { entry, reason: Rejection::SymlinkParent(p) }
                if entry.ends_with("/victim/escaped") && p == "a")
        });
        let t = |_: &Sandbox| Tar::new().symlink("a", "..").file("a/x", b"").finish();
        hostile(t, "a/x", Rejection::SymlinkParent("a".into()));
        // Through a symlink to a directory outside, over an existing file there.
        let t = |sb: &Sandbox| {
            let v = victim(sb);
            Tar::new()
                .symlink("v", &v)
                .file("v/secret", b"pwned")
                .finish()
        };
        hostile(t, "v/secret", Rejection::SymlinkParent("v".into()));
        // A symlinked parent deeper down, created by an earlier entry of the same layer.
        let t = |_: &Sandbox| {
            Tar::new()
                .dir("d/")
                .symlink("d/e", "../../..")
                .dir("d/e/f/")
                .finish()
        };
        hostile(t, "d/e/f/", Rejection::SymlinkParent("d/e".into()));
        // A file used as a directory.
        let t = |_: &Sandbox| Tar::new().file("plain", b"").file("plain/x", b"").finish();
        hostile(t, "plain/x", Rejection::NotDirectoryParent("plain".into()));
    }

    #[test]
    fn escaping_hard_links_are_refused() {
        require_root!();
        let link = |target: &str, reason| Rejection::LinkTarget {
            target: target.into(),
            reason: Box::new(reason),
        };
        let t = |_: &Sandbox| Tar::new().hardlink("h", "../outside").finish();
        hostile(t, "h", link("../outside", Rejection::ParentComponent));
        let t = |_: &Sandbox| Tar::new().hardlink("h", "/etc/passwd").finish();
        hostile(t, "h", link("/etc/passwd", Rejection::AbsolutePath));
        let t = |sb: &Sandbox| {
            let v = victim(sb);
            Tar::new()
                .symlink("l", &v)
                .hardlink("h", "l/secret")
                .finish()
        };
        hostile(
            t,
            "h",
            link("l/secret", Rejection::SymlinkParent("l".into())),
        );
        let t = |_: &Sandbox| Tar::new().hardlink("h", "missing").finish();
        hostile(t, "h", link("missing", Rejection::Missing));
        let t = |_: &Sandbox| Tar::new().dir("d/").hardlink("h", "d").finish();
        hostile(t, "h", link("d", Rejection::Directory));
    }

    #[test]
    fn hard_link_to_a_symlink_links_the_symlink() {
        require_root!();
        let sb = Sandbox::new();
        let secret = sb.victim().join("secret");
        let t = Tar::new()
            .symlink("s", secret.to_str().unwrap())
            .hardlink("h", "s")
            .finish();
        unpack_plain(&t, &sb.dest).unwrap();
        let h = std::fs::symlink_metadata(sb.dest.join("h")).unwrap();
        assert!(h.file_type().is_symlink());
        assert_ne!(h.ino(), std::fs::metadata(&secret).unwrap().ino());
        assert_eq!(std::fs::metadata(&secret).unwrap().nlink(), 1);
    }

    #[test]
    fn whiteouts_through_symlinks_and_bare_whiteouts_are_refused() {
        require_root!();
        let t = |sb: &Sandbox| {
            let v = victim(sb);
            Tar::new()
                .symlink("l", &v)
                .file("l/.wh.secret", b"")
                .finish()
        };
        hostile(t, "l/.wh.secret", Rejection::SymlinkParent("l".into()));
        // The snapshot includes xattr names: the victim must not turn opaque.
        let t = |sb: &Sandbox| {
            let v = victim(sb);
            Tar::new()
                .symlink("l", &v)
                .file("l/.wh..wh..opq", b"")
                .finish()
        };
        hostile(t, "l/.wh..wh..opq", Rejection::SymlinkParent("l".into()));
        let t = |_: &Sandbox| Tar::new().file(".wh.", b"").finish();
        hostile(t, ".wh.", Rejection::BareWhiteout);
        let t = |_: &Sandbox| Tar::new().file("d/.wh.", b"").finish();
        hostile(t, "d/.wh.", Rejection::BareWhiteout);
        let t = |_: &Sandbox| Tar::new().file(".wh..", b"").finish();
        hostile(t, ".wh..", Rejection::DotWhiteout);
        let t = |_: &Sandbox| Tar::new().file("d/.wh...", b"").finish();
        hostile(t, "d/.wh...", Rejection::DotWhiteout);
    }

    #[test]
    fn gzip_bomb_hits_the_size_limit_fast() {
        require_root!();
        // A 4 GiB file of zeros (1 GiB of it present) in about 1 MB of gzip members.
        let chunk = vec![0u8; 4 << 20];
        let mut first = Tar::new();
        let mut h = Header::new_gnu();
        h.set_path("bomb").unwrap();
        h.set_size(4 << 30);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_cksum();
        first.out.get_mut().extend_from_slice(h.as_bytes());
        let mut stream = first.out.get_ref().clone();
        stream.extend_from_slice(&chunk);
        let mut blob = gzip(&stream);
        let zeros = gzip(&chunk);
        for _ in 0..255 {
            blob.extend_from_slice(&zeros);
        }
        assert!(blob.len() < 2 << 20, "bomb is {} bytes", blob.len());
        let limits = Limits {
            max_uncompressed: 64 << 20,
            ..Limits::default()
        };
        let start = std::time::Instant::now();
        refused(
            |_| blob.clone(),
            Compression::Gzip,
            &limits,
            |e| matches!(e, UnpackError::TooLarge { limit } if *limit == 64 << 20),
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(30));
    }

    #[test]
    fn entry_count_path_length_and_header_size_are_bounded() {
        require_root!();
        let mut t = Tar::new();
        for i in 0..11 {
            t.file(&format!("f{i}"), b"");
        }
        let limits = Limits {
            max_entries: 10,
            ..Limits::default()
        };
        let t = t.finish();
        refused(
            |_| t.clone(),
            Compression::None,
            &limits,
            |e| matches!(e, UnpackError::TooManyEntries { limit: 10 }),
        );
        let limits = Limits {
            max_path_len: 16,
            ..Limits::default()
        };
        let t = Tar::new().file("a/very/long/path/name", b"").finish();
        refused(
            |_| t.clone(),
            Compression::None,
            &limits,
            rejected("a/very/long/path/name", Rejection::PathTooLong(16)),
        );
        // A 2 MiB GNU long name would be held in memory by the parser.
        let huge = vec![b'a'; 2 << 20];
        let t = Tar::new()
            .file("ok", b"")
            .long_name(&huge)
            .file("x", b"")
            .finish();
        refused(
            |_| t.clone(),
            Compression::None,
            &Limits::default(),
            |e| matches!(e, UnpackError::HeadersTooLarge { after: 1, .. }),
        );
        // Long names under the limit are fine.
        let sb = Sandbox::new();
        let name = format!("{}/file", "d".repeat(200));
        let t = Tar::new()
            .long_name(name.as_bytes())
            .file("x", b"long")
            .finish();
        unpack_plain(&t, &sb.dest).unwrap();
        assert_eq!(std::fs::read(sb.dest.join(&name)).unwrap(), b"long");
    }

    #[test]
    fn truncated_and_missing_inputs_are_clear_errors() {
        require_root!();
        let t = Tar::new().file("f", &[7u8; 4096]).finish();
        let err = unpack_plain(&t[..2048], &Sandbox::new().dest).unwrap_err();
        assert!(matches!(err, UnpackError::Read(_)), "{err}");
        let err = unpack_plain(&t, Path::new("/nonexistent/layer")).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("cannot open layer directory /nonexistent/layer"));
        let err = unpack_layer(
            &b"not gzip"[..],
            Compression::Gzip,
            &Sandbox::new().dest,
            &Limits::default(),
        )
        .unwrap_err();
        assert!(matches!(err, UnpackError::Read(_)), "{err}");
    }

    #[test]
    fn paths_are_split_safely() {
        assert_eq!(
            split_path(b"./a//b/./c/", 100).unwrap(),
            vec![&b"a"[..], b"b", b"c"]
        );
        assert!(split_path(b"./", 100).unwrap().is_empty());
        assert_eq!(split_path(b"a/../b", 100), Err(Rejection::ParentComponent));
        assert_eq!(split_path(b"/a", 100), Err(Rejection::AbsolutePath));
        assert_eq!(split_path(b"a\0b", 100), Err(Rejection::NulByte));
        assert_eq!(split_path(b"abcdef", 5), Err(Rejection::PathTooLong(5)));
        // `..` as part of a name is just a name.
        assert_eq!(
            split_path(b"a..b/..c", 100).unwrap(),
            vec![&b"a..b"[..], b"..c"]
        );
    }

    #[test]
    fn compression_comes_from_media_types_and_magic() {
        let cases = [
            (
                "application/vnd.oci.image.layer.v1.tar",
                Some(Compression::None),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Some(Compression::Gzip),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                Some(Compression::Zstd),
            ),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                Some(Compression::Gzip),
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Some(Compression::Gzip),
            ),
            (
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                Some(Compression::Gzip),
            ),
            ("application/vnd.oci.image.config.v1+json", None),
            ("application/vnd.oci.image.layer.v1.tar+bzip2", None),
        ];
        for (media_type, expected) in cases {
            assert_eq!(
                Compression::from_media_type(media_type),
                expected,
                "{media_type}"
            );
        }
        assert_eq!(
            Compression::from_magic(&[0x1f, 0x8b, 8, 0]),
            Compression::Gzip
        );
        assert_eq!(
            Compression::from_magic(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::from_magic(b"etc/"), Compression::None);
        assert_eq!(Compression::from_magic(b""), Compression::None);
    }

    #[test]
    fn pax_times_parse_with_fractions() {
        assert_eq!(
            parse_pax_time(b"12.5"),
            Some(TimeSpec::new(12, 500_000_000))
        );
        assert_eq!(parse_pax_time(b"12"), Some(TimeSpec::new(12, 0)));
        assert_eq!(
            parse_pax_time(b"-1.25"),
            Some(TimeSpec::new(-2, 750_000_000))
        );
        assert_eq!(
            parse_pax_time(b"1.1234567891"),
            Some(TimeSpec::new(1, 123_456_789))
        );
        assert_eq!(parse_pax_time(b"x"), None);
    }
}
