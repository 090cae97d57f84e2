//! Layers from overlay upper directories, image configs, committing built images.
//!
//! A build step runs on an overlay whose upper directory comes from [`scratch`]; afterwards
//! [`capture`] turns that directory into a layer: one deterministic tar (the bytes containerd's
//! layer writer makes for the same change, see [`tar`]), compressed and hashed in one pass into
//! the store's `blobs/`, while the directory itself becomes the unpacked layer
//! `layers/sha256/<diff_id>` by rename. [`ImageBuilder`] and [`commit`] make the image config
//! and manifest as BuildKit's exporter writes them.

mod config;
mod gojson;
pub mod tar;

pub use config::{commit, manifest_json, rfc3339, History, ImageBuilder, HISTORY_COMMENT};
pub use gojson::to_go_json;

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use crate::image::digest::Digest;
use crate::image::store::{remove_tree, ImageRecord, Store, StoreError};
pub use crate::image::unpack::Compression;

use self::tar::{Header, TarWriter};

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{}: overlay {kind} entry (the step's overlay must be mounted with redirect_dir=off and \
         metacopy=off, or the layer would miss data kept in a lower layer)",
        path.display()
    )]
    OverlayFeature { path: PathBuf, kind: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("image config: {0}")]
    Config(String),
    #[error("base image {0} has no config blob in the store (pull it again)")]
    NoBaseConfig(Digest),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LayerError + 'a {
    move |source| LayerError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// How layers are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerOptions {
    /// `SOURCE_DATE_EPOCH`: file times later than it are clamped to it, and image and history
    /// times are it.
    pub source_date_epoch: Option<i64>,
    pub compression: Compression,
    /// Leave the compressed blob (and so the manifest) to the first push or save: a build
    /// then only hashes each layer's tar, as docker's image store keeps BuildKit's layers
    /// uncompressed until a push. Not with `source_date_epoch` (its clamped times are in the
    /// tar only, so the tar could not be written again the same).
    pub defer_blob: bool,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            source_date_epoch: None,
            compression: Compression::Gzip,
            defer_blob: false,
        }
    }
}

/// A step's overlay upper and work directories, on the store's file system (so that the upper
/// directory can become a layer by rename). Removed on drop unless captured.
#[derive(Debug)]
pub struct StepDirs {
    base: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
}

impl StepDirs {
    /// The directory holding both (a build container's own directory).
    pub fn base(&self) -> &Path {
        &self.base
    }
}

impl Drop for StepDirs {
    fn drop(&mut self) {
        let _ = remove_tree(&self.base);
    }
}

/// A fresh upper+work directory pair for a step.
pub fn scratch(store: &Store) -> Result<StepDirs, LayerError> {
    let base = store.temp_path("step");
    fs::create_dir(&base).map_err(io_err("create", &base))?;
    let dirs = StepDirs {
        upper: base.join("upper"),
        work: base.join("work"),
        base,
    };
    for d in [&dirs.upper, &dirs.work] {
        fs::create_dir(d).map_err(io_err("create", d))?;
    }
    Ok(dirs)
}

/// A layer made by [`capture`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedLayer {
    /// sha256 of the uncompressed tar; names `layers/sha256/<diff_id>`.
    pub diff_id: Digest,
    /// sha256 of the compressed blob in `blobs/`; `None` while deferred (see
    /// [`LayerOptions::defer_blob`] and [`materialize`]).
    pub blob: Option<Digest>,
    /// Compressed bytes.
    pub size: u64,
    pub media_type: String,
    /// Uncompressed tar bytes.
    pub tar_size: u64,
}

/// The OCI layer media type for a compression.
pub fn layer_media_type(c: Compression) -> &'static str {
    match c {
        Compression::None => "application/vnd.oci.image.layer.v1.tar",
        Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    }
}

/// Turn a step's upper directory into a layer. `None` when the step changed nothing: BuildKit
/// drops an empty layer from the image and marks its history entry `empty_layer`.
pub fn capture(
    store: &Store,
    dirs: StepDirs,
    opts: &LayerOptions,
) -> Result<Option<CapturedLayer>, LayerError> {
    let empty = fs::read_dir(&dirs.upper)
        .map_err(io_err("read", &dirs.upper))?
        .next()
        .is_none();
    if empty {
        return Ok(None);
    }
    capture_always(store, dirs, opts).map(Some)
}

/// [`capture`], keeping an empty change as an empty layer: what BuildKit makes of WORKDIR on
/// a directory that already exists (its history entry is never an empty layer).
pub fn capture_always(
    store: &Store,
    dirs: StepDirs,
    opts: &LayerOptions,
) -> Result<CapturedLayer, LayerError> {
    if opts.defer_blob && opts.source_date_epoch.is_none() {
        let (_, tar) = write_tar(&dirs.upper, Hashing::new(std::io::sink()), opts)?.finish();
        let diff_id = Digest::from_sha256(&tar.hash);
        store.commit_layer(&dirs.upper, &diff_id)?;
        return Ok(CapturedLayer {
            diff_id,
            blob: None,
            size: 0,
            media_type: layer_media_type(opts.compression).to_string(),
            tar_size: tar.count,
        });
    }
    let tmp = store.temp_path("blob");
    let result = write_blob(&dirs.upper, &tmp, opts);
    let (tar, blob) = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let diff_id = Digest::from_sha256(&tar.hash);
    let blob_digest = Digest::from_sha256(&blob.hash);
    publish_blob(store, &tmp, &blob_digest)?;
    store.commit_layer(&dirs.upper, &diff_id)?;
    Ok(CapturedLayer {
        diff_id,
        blob: Some(blob_digest),
        size: blob.count,
        media_type: layer_media_type(opts.compression).to_string(),
        tar_size: tar.count,
    })
}

/// Move a finished blob file into `blobs/` (a copy already there wins: same digest, same bytes).
/// Gives every layer of `image` that has none its compressed blob (written again from the
/// unpacked layer, which must give the recorded diff_id), then the manifest; records and
/// returns the image. What a push needs of an image built with deferred blobs.
pub fn materialize(store: &Store, image: &ImageRecord) -> Result<ImageRecord, LayerError> {
    if image.manifest.is_some()
        && image
            .layers
            .iter()
            .all(|l| l.blob.as_ref().is_some_and(|b| store.has_blob(b)))
    {
        return Ok(image.clone());
    }
    let mut rec = image.clone();
    for l in &mut rec.layers {
        layer_blob(store, l)?;
    }
    let config = store.read_blob(&rec.id)?;
    let manifest = manifest_json(&rec.id, config.len() as u64, &rec.layers)
        .ok_or_else(|| LayerError::Config(format!("image {}: a layer has no blob", rec.id)))?;
    let d = Digest::of(&manifest);
    store.write_blob(&d, &manifest)?;
    rec.manifest = Some(d);
    store.put_image(&rec)?;
    Ok(rec)
}

/// The compressed blob of one layer, written again from its unpacked directory when the store
/// lacks it (the tar must give the recorded diff_id); `l` then names it.
pub fn layer_blob(
    store: &Store,
    l: &mut crate::image::store::LayerRecord,
) -> Result<(), LayerError> {
    if l.blob.as_ref().is_some_and(|b| store.has_blob(b)) {
        return Ok(());
    }
    let opts = LayerOptions::default();
    let dir = store.layer_dir(&l.diff_id);
    let tmp = store.temp_path("blob");
    let (tar, blob) = match write_blob(&dir, &tmp, &opts) {
        Ok(v) => v,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let diff_id = Digest::from_sha256(&tar.hash);
    if diff_id != l.diff_id {
        let _ = fs::remove_file(&tmp);
        return Err(LayerError::Config(format!(
            "layer {} written again gives {diff_id}: its blob cannot be made",
            l.diff_id
        )));
    }
    let digest = Digest::from_sha256(&blob.hash);
    publish_blob(store, &tmp, &digest)?;
    l.blob = Some(digest);
    l.size = blob.count;
    l.media_type = layer_media_type(opts.compression).to_string();
    Ok(())
}

fn publish_blob(store: &Store, tmp: &Path, digest: &Digest) -> Result<(), LayerError> {
    let dest = store.blob_path(digest);
    if dest.is_file() {
        let _ = fs::remove_file(tmp);
        return Ok(());
    }
    fs::rename(tmp, &dest).map_err(|e| {
        let _ = fs::remove_file(tmp);
        LayerError::Io {
            op: "publish blob",
            path: dest,
            source: e,
        }
    })
}

/// sha256 and byte count of what passes through.
pub struct Hashing<W> {
    inner: W,
    hasher: sha2::Sha256,
    count: u64,
}

pub struct Hashed {
    pub hash: Vec<u8>,
    pub count: u64,
}

impl<W: Write> Hashing<W> {
    pub fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: sha2::Sha256::new(),
            count: 0,
        }
    }
    pub fn finish(self) -> (W, Hashed) {
        (
            self.inner,
            Hashed {
                hash: self.hasher.finalize().to_vec(),
                count: self.count,
            },
        )
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A compressor over any writer, finished explicitly.
enum Compressor<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Compressor<W> {
    fn new(c: Compression, w: W) -> io::Result<Self> {
        Ok(match c {
            Compression::None => Compressor::None(w),
            Compression::Gzip => Compressor::Gzip(flate2::write::GzEncoder::new(
                w,
                flate2::Compression::default(),
            )),
            Compression::Zstd => Compressor::Zstd(zstd::stream::write::Encoder::new(w, 3)?),
        })
    }
    fn finish(self) -> io::Result<W> {
        match self {
            Compressor::None(w) => Ok(w),
            Compressor::Gzip(e) => e.finish(),
            Compressor::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::None(w) => w.write(buf),
            Compressor::Gzip(e) => e.write(buf),
            Compressor::Zstd(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.flush(),
            Compressor::Gzip(e) => e.flush(),
            Compressor::Zstd(e) => e.flush(),
        }
    }
}

/// Write `dir` as a layer tar into the file `dest`, compressed: returns (tar, blob) hashes.
fn write_blob(
    dir: &Path,
    dest: &Path,
    opts: &LayerOptions,
) -> Result<(Hashed, Hashed), LayerError> {
    let file = File::create(dest).map_err(io_err("create", dest))?;
    let blob = Hashing::new(BufWriter::with_capacity(1 << 16, file));
    let compressor = Compressor::new(opts.compression, blob).map_err(io_err("compress", dest))?;
    let tar_hash = Hashing::new(compressor);
    let tar_hash = write_tar(dir, tar_hash, opts)?;
    let (compressor, tar) = tar_hash.finish();
    let blob = compressor.finish().map_err(io_err("write", dest))?;
    let (buf, blob) = blob.finish();
    let file = buf
        .into_inner()
        .map_err(|e| io_err("write", dest)(e.into_error()))?;
    file.sync_all().map_err(io_err("write", dest))?;
    Ok((tar, blob))
}

/// Write the change in the overlay upper directory `dir` as a layer tar to `out`.
///
/// Entries come in the order of a depth-first walk with each directory's names sorted
/// bytewise (the order of Go's `filepath.Walk`, which BuildKit's differ uses), a directory
/// before its contents. Along the way overlay's private xattrs are removed from `dir`, since it
/// becomes a lower layer as it is.
pub fn write_tar<W: Write>(dir: &Path, out: W, opts: &LayerOptions) -> Result<W, LayerError> {
    let mut walk = Walk {
        root: dir,
        tw: TarWriter::new(out),
        links: HashMap::new(),
        opts,
    };
    walk.dir(dir, b"")?;
    walk.tw.finish().map_err(io_err("write layer of", dir))
}

struct Walk<'a, W: Write> {
    root: &'a Path,
    tw: TarWriter<W>,
    /// (dev, ino) → the name the inode was first written under.
    links: HashMap<(u64, u64), Vec<u8>>,
    opts: &'a LayerOptions,
}

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const OVERLAY_XATTRS: &str = "trusted.overlay.";

/// Where an entry's extended attributes are read: its open descriptor (files and directories:
/// no path to resolve again), else its path (links and devices, which cannot be opened).
enum XattrsOf<'p> {
    Fd(BorrowedFd<'p>),
    Path(&'p Path),
}

impl<W: Write> Walk<'_, W> {
    /// A directory's entry names, sorted bytewise.
    fn names(fd: &OwnedFd, path: &Path) -> Result<std::vec::IntoIter<Vec<u8>>, LayerError> {
        let dup = nix::unistd::dup(fd).map_err(|e| io_err("read", path)(e.into()))?;
        let mut d = nix::dir::Dir::from_fd(dup).map_err(|e| io_err("read", path)(e.into()))?;
        let mut names: Vec<Vec<u8>> = Vec::new();
        for entry in d.iter() {
            let entry = entry.map_err(|e| io_err("read", path)(e.into()))?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(n.to_vec());
            }
        }
        names.sort();
        Ok(names.into_iter())
    }

    /// Depth-first, with an explicit stack: a step controls how deep its directories go. Each
    /// level holds its directory open, and entries are looked at relative to it (a path from
    /// the root is a dozen components the kernel would resolve again for every call).
    fn dir(&mut self, path: &Path, rel: &[u8]) -> Result<(), LayerError> {
        let fd: OwnedFd = File::open(path).map_err(io_err("open", path))?.into();
        let names = Self::names(&fd, path)?;
        let mut stack = vec![(fd, path.to_path_buf(), rel.to_vec(), names)];
        while let Some((dir_fd, dir, dir_rel, names)) = stack.last_mut() {
            let Some(name) = names.next() else {
                stack.pop();
                continue;
            };
            let child = dir.join(OsStr::from_bytes(&name));
            let mut child_rel = dir_rel.clone();
            if !child_rel.is_empty() {
                child_rel.push(b'/');
            }
            child_rel.extend_from_slice(&name);
            let parent = dir_fd.as_fd();
            if let Some(fd) = self.entry(parent, &name, &child, child_rel.clone())? {
                let names = Self::names(&fd, &child)?;
                stack.push((fd, child, child_rel, names));
            }
        }
        Ok(())
    }

    /// Writes one entry (`name` in the directory `parent`, at `path`); for a directory to
    /// descend into, its open descriptor.
    fn entry(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        path: &Path,
        rel: Vec<u8>,
    ) -> Result<Option<OwnedFd>, LayerError> {
        use nix::fcntl::{AtFlags, OFlag};
        let name = OsStr::from_bytes(name);
        let st = nix::sys::stat::fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| io_err("stat", path)(e.into()))?;
        let kind = st.st_mode & libc::S_IFMT;
        if kind == libc::S_IFSOCK {
            // containerd leaves sockets out.
            return Ok(None);
        }
        if kind == libc::S_IFCHR && st.st_rdev == 0 {
            self.whiteout(&rel, None)?;
            return Ok(None);
        }
        let opened = match kind {
            libc::S_IFREG | libc::S_IFDIR => {
                let dir = if kind == libc::S_IFDIR {
                    OFlag::O_DIRECTORY
                } else {
                    OFlag::O_NONBLOCK
                };
                let fd = nix::fcntl::openat(
                    parent,
                    name,
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | dir,
                    nix::sys::stat::Mode::empty(),
                )
                .map_err(|e| io_err("open", path)(e.into()))?;
                Some(fd)
            }
            _ => None,
        };
        let at = match &opened {
            Some(fd) => XattrsOf::Fd(fd.as_fd()),
            None => XattrsOf::Path(path),
        };
        let xattrs = self.xattrs(&at, path)?;
        let opaque = xattrs.get(OPAQUE_XATTR).is_some_and(|v| v == b"y");
        for (key, what) in [
            ("trusted.overlay.redirect", "redirect"),
            ("trusted.overlay.metacopy", "metacopy"),
        ] {
            if xattrs.contains_key(key) {
                return Err(LayerError::OverlayFeature {
                    path: path.to_path_buf(),
                    kind: what,
                });
            }
        }
        // Overlay's own xattrs (origin, impure, nlink…) mean nothing once the directory is a
        // lower layer; only the opaque marker stays, as unpacked layers have it.
        for key in xattrs.keys() {
            if key.starts_with(OVERLAY_XATTRS) && !(key == OPAQUE_XATTR && opaque) {
                removexattr(&at, key).map_err(io_err("remove overlay xattr from", path))?;
            }
        }

        let mut mtime = st.st_mtime;
        if let Some(epoch) = self.opts.source_date_epoch {
            if (mtime, st.st_mtime_nsec) > (epoch, 0) {
                mtime = epoch;
            }
        }
        let mut h = Header {
            name: rel.clone(),
            mode: i64::from(st.st_mode & 0o7777),
            uid: i64::from(st.st_uid),
            gid: i64::from(st.st_gid),
            mtime,
            want_pax: true,
            ..Header::default()
        };
        for (k, v) in &xattrs {
            if !k.starts_with(OVERLAY_XATTRS) && !SKIPPED_XATTRS.contains(&k.as_str()) {
                h.pax.insert(format!("SCHILY.xattr.{k}"), v.clone());
            }
        }
        match kind {
            libc::S_IFDIR => {
                h.typeflag = tar::TYPE_DIR;
                h.name.push(b'/');
            }
            libc::S_IFLNK => {
                h.typeflag = tar::TYPE_SYMLINK;
                h.linkname = nix::fcntl::readlinkat(parent, name)
                    .map_err(|e| io_err("read link", path)(e.into()))?
                    .into_vec();
            }
            libc::S_IFREG => {
                h.typeflag = tar::TYPE_REG;
                h.size = st.st_size;
            }
            libc::S_IFCHR | libc::S_IFBLK => {
                h.typeflag = if kind == libc::S_IFCHR {
                    tar::TYPE_CHAR
                } else {
                    tar::TYPE_BLOCK
                };
                h.devmajor = libc::major(st.st_rdev) as i64;
                h.devminor = libc::minor(st.st_rdev) as i64;
            }
            libc::S_IFIFO => h.typeflag = tar::TYPE_FIFO,
            _ => {}
        }
        // Hard links within the layer: the first name carries the data, later ones link to it.
        if kind != libc::S_IFDIR && st.st_nlink > 1 {
            match self.links.get(&(st.st_dev, st.st_ino)) {
                Some(first) => {
                    h.typeflag = tar::TYPE_LINK;
                    h.linkname = first.clone();
                    h.size = 0;
                }
                None => {
                    self.links.insert((st.st_dev, st.st_ino), rel.clone());
                }
            }
        }
        self.tw
            .header(&h)
            .map_err(io_err("write layer entry for", path))?;
        if kind == libc::S_IFDIR {
            if opaque {
                self.whiteout(&rel, Some(b".wh..wh..opq"))?;
            }
            return Ok(opened);
        }
        if h.typeflag == tar::TYPE_REG && h.size > 0 {
            if let Some(fd) = opened {
                self.tw
                    .data(File::from(fd), h.size as u64)
                    .map_err(io_err("read", path))?;
            }
        }
        Ok(None)
    }

    /// A whiteout for `rel` (or the opaque marker inside it), as containerd writes whiteouts:
    /// an empty regular file, mode 0, owned by 0:0, every time the epoch.
    fn whiteout(&mut self, rel: &[u8], marker: Option<&[u8]>) -> Result<(), LayerError> {
        let name = match marker {
            Some(m) => {
                let mut n = rel.to_vec();
                n.push(b'/');
                n.extend_from_slice(m);
                n
            }
            None => {
                let split = rel.iter().rposition(|&c| c == b'/').map_or(0, |i| i + 1);
                let mut n = rel[..split].to_vec();
                n.extend_from_slice(b".wh.");
                n.extend_from_slice(&rel[split..]);
                n
            }
        };
        let h = Header {
            name,
            typeflag: tar::TYPE_REG,
            atime: Some(0),
            ctime: Some(0),
            ..Header::default()
        };
        let root = self.root;
        self.tw.header(&h).map_err(io_err("write layer of", root))
    }

    fn xattrs(
        &self,
        at: &XattrsOf<'_>,
        path: &Path,
    ) -> Result<BTreeMap<String, Vec<u8>>, LayerError> {
        let names = listxattr(at).map_err(io_err("list xattrs of", path))?;
        let mut out = BTreeMap::new();
        for name in names {
            // Names are bytes; the tar record key must be text.
            let Ok(key) = String::from_utf8(name) else {
                continue;
            };
            match getxattr(at, &key) {
                Ok(v) => {
                    out.insert(key, v);
                }
                // Removed in between, or not readable by design (e.g. some security modules).
                Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
                Err(e) => return Err(io_err("read xattrs of", path)(e)),
            }
        }
        Ok(out)
    }
}

/// Host labels, not image content: the next host labels files itself.
const SKIPPED_XATTRS: &[&str] = &["security.selinux"];

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn listxattr(at: &XattrsOf<'_>) -> io::Result<Vec<Vec<u8>>> {
    let p = match at {
        XattrsOf::Path(path) => Some(cpath(path)?),
        XattrsOf::Fd(_) => None,
    };
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: `p` is NUL-terminated, the descriptor open; `buf` is valid for `buf.len()`
        // bytes.
        let n = unsafe {
            match (at, &p) {
                (XattrsOf::Path(_), Some(p)) => {
                    libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
                }
                (XattrsOf::Fd(fd), _) => {
                    libc::flistxattr(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
                }
                (XattrsOf::Path(_), None) => -1,
            }
        };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf
                .split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .map(<[u8]>::to_vec)
                .collect());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ERANGE) if buf.len() < (1 << 20) => buf.resize(buf.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(Vec::new()),
            _ => return Err(err),
        }
    }
}

fn getxattr(at: &XattrsOf<'_>, key: &str) -> io::Result<Vec<u8>> {
    let k = CString::new(key).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let p = match at {
        XattrsOf::Path(path) => Some(cpath(path)?),
        XattrsOf::Fd(_) => None,
    };
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: the strings are NUL-terminated, the descriptor open; `buf` is valid for
        // `buf.len()` bytes.
        let n = unsafe {
            match (at, &p) {
                (XattrsOf::Path(_), Some(p)) => {
                    libc::lgetxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
                }
                (XattrsOf::Fd(fd), _) => libc::fgetxattr(
                    fd.as_raw_fd(),
                    k.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                ),
                (XattrsOf::Path(_), None) => -1,
            }
        };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ERANGE) if buf.len() < (1 << 20) => buf.resize(buf.len() * 4, 0),
            _ => return Err(err),
        }
    }
}

fn removexattr(at: &XattrsOf<'_>, key: &str) -> io::Result<()> {
    let k = CString::new(key).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: the strings are NUL-terminated, the descriptor open.
    let rc = unsafe {
        match at {
            XattrsOf::Path(path) => libc::lremovexattr(cpath(path)?.as_ptr(), k.as_ptr()),
            XattrsOf::Fd(fd) => libc::fremovexattr(fd.as_raw_fd(), k.as_ptr()),
        }
    };
    if rc == 0 {
        Ok(())
    } else {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENODATA) {
            return Ok(());
        }
        Err(err)
    }
}

#[cfg(test)]
mod tests;
