//! The build context: `.dockerignore`, source resolution, content hashes, copying.
//!
//! A [`Context`] is a directory tree seen through its ignore file, as BuildKit sees the context
//! the client sent it: an ignored file does not exist, an ignored directory exists only when an
//! exception (`!pattern`) re-includes something inside it. Every path is opened from a
//! descriptor of the tree's root with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` after
//! links were resolved by us inside the tree, so no link (nor a swap of one meanwhile) leads a
//! read out of it.

pub mod archive;
pub mod copy;
mod hash;
pub mod pattern;
mod statcache;
use statcache::StatCache;
#[cfg(test)]
mod tests;
mod tree;

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use archive::{extract_archive_into, is_archive};
pub use copy::{copy_into, CopyOptions, CopyStats};
pub use pattern::{PatternError, PatternMatcher};

use pattern::{clean, has_wildcards};

/// Largest ignore file read.
pub const MAX_IGNORE_FILE_BYTES: u64 = 1 << 20;
/// Most patterns in an ignore file or a COPY's `--exclude` list.
pub const MAX_PATTERNS: usize = 10_000;
/// Most entries (files, directories, links) that one `resolve` may return in all.
pub const MAX_ENTRIES: usize = 1_000_000;
/// Deepest path (in components) walked or resolved.
pub const MAX_DEPTH: usize = 256;
/// Most symbolic links followed while resolving one source path (Linux's own limit).
pub const MAX_LINK_HOPS: usize = 40;
/// Most files a persisted stat cache remembers.
pub const MAX_STAT_CACHE: usize = 1_000_000;
/// Most sources in one COPY.
pub const MAX_SOURCES: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{file}:{line}: invalid pattern {pattern:?}: {message}")]
    IgnorePattern {
        file: String,
        line: usize,
        pattern: String,
        message: String,
    },
    #[error("{file}: {message}")]
    IgnoreFile { file: String, message: String },
    #[error("invalid {what} pattern {pattern:?}: {source}")]
    Pattern {
        what: &'static str,
        pattern: String,
        #[source]
        source: PatternError,
    },
    #[error("source {0:?} is outside the build context")]
    OutsideContext(String),
    #[error("{}", not_found_message(.path, .ignored_by))]
    NotFound {
        path: String,
        /// The ignore file that excluded the path, when it exists but is ignored.
        ignored_by: Option<String>,
    },
    #[error("too many {what}: more than {limit}")]
    TooMany { what: &'static str, limit: usize },
    #[error("{path}: more than {limit} levels of symbolic links")]
    LinkLoop { path: String, limit: usize },
    #[error("{path}: deeper than {limit} path components")]
    TooDeep { path: String, limit: usize },
    #[error("{0}")]
    Copy(String),
    #[error("invalid --chmod {value:?}: {message}")]
    Chmod { value: String, message: String },
    #[error("invalid --chown {value:?}: {message}")]
    Chown { value: String, message: String },
    #[error("{path}: {message}")]
    Archive { path: String, message: String },
    #[error("stat cache {path}: {message}")]
    StatCache { path: String, message: String },
}

fn not_found_message(path: &str, ignored_by: &Option<String>) -> String {
    match ignored_by {
        Some(file) => format!("{path:?} not found: it is excluded by {file}"),
        None => format!("{path:?} not found in the build context"),
    }
}

/// The error of `op` on `path`, for `map_err`: the path is only shown when there is an error
/// (made for each of a context's thousands of system calls).
pub(crate) fn io_err<P: AsRef<Path>>(
    op: &'static str,
    path: P,
) -> impl FnOnce(io::Error) -> ContextError {
    move |source| ContextError::Io {
        op,
        path: path.as_ref().display().to_string(),
        source,
    }
}

pub(crate) fn errno_err<P: AsRef<Path>>(
    op: &'static str,
    path: P,
) -> impl FnOnce(nix::errno::Errno) -> ContextError {
    let f = io_err(op, path);
    move |e| f(io::Error::from(e))
}

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

impl FileKind {
    fn of(mode: u32) -> FileKind {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => FileKind::Dir,
            libc::S_IFLNK => FileKind::Symlink,
            libc::S_IFIFO => FileKind::Fifo,
            libc::S_IFCHR => FileKind::CharDevice,
            libc::S_IFBLK => FileKind::BlockDevice,
            libc::S_IFSOCK => FileKind::Socket,
            _ => FileKind::File,
        }
    }
}

/// One path of a source, as it was when `resolve` read it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Relative to the tree's root, with no link in it; the path relative to the source is
    /// its tail (one allocation per entry, for contexts of many thousand files).
    path: Vec<u8>,
    /// Where the path relative to the source starts in `path`.
    rel_at: u32,
    pub kind: FileKind,
    /// Permission and setuid/setgid/sticky bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: (i64, i64),
    pub atime: (i64, i64),
    pub(crate) ctime: (i64, i64),
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) nlink: u64,
    pub rdev: u64,
    /// A link's target, as written.
    pub link: Option<Vec<u8>>,
}

impl Entry {
    /// Relative to the source ("" for the source itself), `/`-separated.
    pub fn rel(&self) -> &[u8] {
        self.path.get(self.rel_at as usize..).unwrap_or_default()
    }

    /// Relative to the tree's root, with no link in it.
    pub(crate) fn tree_rel(&self) -> &[u8] {
        &self.path
    }
}

/// The directory tree sources are read from: a build context, or a stage's root for
/// `COPY --from`.
#[derive(Debug)]
pub(crate) struct Tree {
    pub(crate) dir: PathBuf,
    pub(crate) fd: OwnedFd,
    pub(crate) ignore: PatternMatcher,
    pub(crate) ignore_file: Option<String>,
    /// Files sent as a context belong to root:root in the image (docker's client resets the
    /// owner); files from another stage keep theirs.
    pub(crate) reset_owner: bool,
}

/// A resolved COPY/ADD source: one path (a file, a link, or a directory with what is under it,
/// after `.dockerignore` and `--exclude`).
#[derive(Debug, Clone)]
pub struct Source {
    /// The path relative to the tree's root, links resolved (what was copied), for messages.
    pub path: String,
    /// The name it lands under when the destination is a directory (the last component as
    /// matched, before a link was followed, as BuildKit).
    pub name: Vec<u8>,
    /// Which of the `sources` given to `resolve` this came from.
    pub arg: usize,
    /// The source itself first, then what is under it, parents before children, by name.
    pub entries: Vec<Entry>,
    /// The path as written (wildcards matched, links not followed), for `--parents`.
    pub(crate) written: Vec<Vec<u8>>,
    /// How many leading components of `written` `--parents` drops (a "/./" pivot).
    pub(crate) pivot: usize,
    pub(crate) tree: Arc<Tree>,
}

impl Source {
    pub fn kind(&self) -> FileKind {
        self.entries
            .first()
            .map(|e| e.kind)
            .unwrap_or(FileKind::Dir)
    }

    pub fn is_dir(&self) -> bool {
        self.kind() == FileKind::Dir
    }

    /// Owner resetting rule of the tree this source came from.
    pub fn keeps_owner(&self) -> bool {
        !self.tree.reset_owner
    }
}

/// Stat fields that say a file is unchanged since its content was hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StatKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

#[derive(Debug, Clone)]
struct StatEntry {
    key: StatKey,
    sha256: [u8; 32],
    /// The kept xattrs (name and value): with an unchanged stat (ctime moves with any xattr
    /// change) a file is neither opened nor asked for them again. `None`: not recorded.
    xattrs: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

/// How many threads a walk or copy may use: the CPUs this process may run on, at most 4
/// (asked once: the answer reads cgroup files).
pub(crate) fn parallelism() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(4)
    })
}

/// A build context (or another tree to copy from).
#[derive(Debug)]
pub struct Context {
    tree: Arc<Tree>,
    /// Content hashes of files by path in the context, valid while their stat is unchanged.
    stat_cache: Mutex<StatCache>,
    /// The stat cache being read from disk by another thread ([`Context::load_stat_cache`]),
    /// merged in on first use.
    stat_cache_loading: Mutex<Option<std::thread::JoinHandle<Option<StatCache>>>>,
    /// Files whose content was read (not found in the stat cache) by `digest`, for tests and
    /// progress output.
    hashed: std::sync::atomic::AtomicU64,
    /// The stat cache gained or changed an entry since it was loaded (else saving it again
    /// would rewrite the same file).
    stat_cache_changed: std::sync::atomic::AtomicBool,
}

impl Context {
    /// `dir` the context directory; `dockerfile` the Dockerfile's path (to find
    /// `<Dockerfile>.dockerignore`, which wins over `.dockerignore`).
    pub fn open(dir: &Path, dockerfile: Option<&Path>) -> Result<Context, ContextError> {
        let fd =
            crate::runtime::inroot::open_root(dir).map_err(io_err("open build context", dir))?;
        let mut candidates = Vec::new();
        if let Some(df) = dockerfile {
            let mut name = df.as_os_str().to_owned();
            name.push(".dockerignore");
            let p = PathBuf::from(name);
            candidates.push(if p.is_absolute() { p } else { dir.join(p) });
        }
        candidates.push(dir.join(".dockerignore"));
        let mut ignore = PatternMatcher::default();
        let mut ignore_file = None;
        for file in candidates {
            let data = match read_limited(&file, MAX_IGNORE_FILE_BYTES)? {
                Some(d) => d,
                None => continue,
            };
            let shown = file
                .strip_prefix(dir)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| file.display().to_string());
            ignore = compile_ignore(&data, &shown)?;
            ignore_file = Some(shown);
            break;
        }
        Ok(Context::with_tree(Tree {
            dir: dir.to_path_buf(),
            fd,
            ignore,
            ignore_file,
            reset_owner: true,
        }))
    }

    /// Another directory tree to copy from (`COPY --from=<stage>`, mounted read-only by the
    /// caller): no ignore file, owners kept, links resolved inside `dir`.
    pub fn open_dir_without_ignore(dir: &Path) -> Result<Context, ContextError> {
        let fd = crate::runtime::inroot::open_root(dir).map_err(io_err("open source tree", dir))?;
        Ok(Context::with_tree(Tree {
            dir: dir.to_path_buf(),
            fd,
            ignore: PatternMatcher::default(),
            ignore_file: None,
            reset_owner: false,
        }))
    }

    fn with_tree(tree: Tree) -> Context {
        Context {
            tree: Arc::new(tree),
            stat_cache: Mutex::new(StatCache::default()),
            stat_cache_loading: Mutex::new(None),
            stat_cache_changed: Default::default(),
            hashed: Default::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.tree.dir
    }

    /// The ignore file in force, relative to the context when inside it.
    pub fn ignore_file(&self) -> Option<&str> {
        self.tree.ignore_file.as_deref()
    }

    pub fn ignore_patterns(&self) -> &PatternMatcher {
        &self.tree.ignore
    }

    /// Is `path` (relative to the root) excluded by the ignore file?
    pub fn is_ignored(&self, path: &str) -> bool {
        let p = clean(path.trim_start_matches('/').as_bytes());
        p != b"." && self.tree.ignore.matches_or_parent_matches(&p)
    }

    /// Resolves COPY/ADD sources (variable-expanded, relative to the root) to what they name.
    /// Wildcards are Go's `filepath.Match` per component; a link named by a source is followed
    /// inside the tree; `excludes` are `--exclude` patterns, matched against paths relative to
    /// each source (never the source itself, as BuildKit). A path without wildcards that does
    /// not exist is an error; a wildcard that matches nothing yields nothing (BuildKit's
    /// `AllowEmptyWildcard`).
    pub fn resolve(
        &self,
        sources: &[String],
        excludes: &[String],
    ) -> Result<Vec<Source>, ContextError> {
        self.resolve_with(sources, excludes, false)
    }

    /// [`resolve`](Self::resolve) for `COPY --parents` when `parents`: as BuildKit, the part of
    /// each source after its `/./` pivot (all of it without one) is a pattern with
    /// `.dockerignore` syntax (so `**` crosses directories), matched under the part before the
    /// pivot; matches are not followed when they are links.
    pub fn resolve_with(
        &self,
        sources: &[String],
        excludes: &[String],
        parents: bool,
    ) -> Result<Vec<Source>, ContextError> {
        if sources.len() > MAX_SOURCES {
            return Err(ContextError::TooMany {
                what: "sources",
                limit: MAX_SOURCES,
            });
        }
        if excludes.len() > MAX_PATTERNS {
            return Err(ContextError::TooMany {
                what: "--exclude patterns",
                limit: MAX_PATTERNS,
            });
        }
        let mut exclude =
            PatternMatcher::new(excludes).map_err(|source| ContextError::Pattern {
                what: "--exclude",
                pattern: excludes.join(" "),
                source,
            })?;
        if exclude.is_empty() {
            exclude = PatternMatcher::default();
        }
        let mut budget = MAX_ENTRIES;
        let mut out = Vec::new();
        for (arg, src) in sources.iter().enumerate() {
            if parents {
                out.extend(self.resolve_parents(arg, src, &exclude, &mut budget)?);
            } else {
                out.extend(self.resolve_one(arg, src, &exclude, &mut budget)?);
            }
        }
        Ok(out)
    }

    fn resolve_one(
        &self,
        arg: usize,
        src: &str,
        exclude: &PatternMatcher,
        budget: &mut usize,
    ) -> Result<Vec<Source>, ContextError> {
        let comps = source_components(src)?;
        // `--parents` keeps the path after a "/./" pivot (all of it without one).
        let pivot = match src.trim_start_matches('/').split_once("/./") {
            Some((before, _)) => source_components(before)?.len(),
            None => 0,
        };
        let split = comps
            .iter()
            .position(|c| has_wildcards(c))
            .unwrap_or(comps.len());
        let (fixed, wild) = comps.split_at(split);
        let t = tree::View::new(&self.tree);
        if wild.is_empty() {
            let Some(resolved) = t.resolve(fixed, true)? else {
                return Err(self.not_found(src, &fixed.join(&b'/')));
            };
            let entries = t.walk(&resolved, exclude, budget)?;
            return Ok(vec![self.source(
                arg,
                fixed.to_vec(),
                pivot,
                &resolved,
                entries,
            )]);
        }
        let Some(base) = t.resolve(fixed, true)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for matched in t.glob(&base, wild, budget)? {
            let Some(resolved) = t.resolve(&matched, true)? else {
                // A dangling link: BuildKit fails on it too.
                return Err(self.not_found(src, &matched.join(&b'/')));
            };
            // As written: the fixed part before any link in it was followed.
            let mut written = fixed.to_vec();
            written.extend(matched.iter().skip(base.len()).cloned());
            // `--exclude` applies under each match, never to the match itself (BuildKit).
            let entries = t.walk(&resolved, exclude, budget)?;
            out.push(self.source(arg, written, pivot, &resolved, entries));
        }
        Ok(out)
    }

    fn resolve_parents(
        &self,
        arg: usize,
        src: &str,
        exclude: &PatternMatcher,
        budget: &mut usize,
    ) -> Result<Vec<Source>, ContextError> {
        let trimmed = src.trim_start_matches('/');
        let (before, pattern) = trimmed.split_once("/./").unwrap_or(("", trimmed));
        let base_comps = source_components(before)?;
        let pattern_comps = source_components(pattern)?;
        if !pattern_comps.iter().any(|c| has_wildcards(c)) {
            // A plain path must exist: the same as without --parents.
            return self.resolve_one(arg, src, exclude, budget);
        }
        let t = tree::View::new(&self.tree);
        let Some(base) = t.resolve(&base_comps, true)? else {
            return Ok(Vec::new());
        };
        let pattern = pattern_comps.join(&b'/');
        let include = PatternMatcher::new(&[&pattern]).map_err(|source| ContextError::Pattern {
            what: "source",
            pattern: String::from_utf8_lossy(&pattern).into_owned(),
            source,
        })?;
        let mut out = Vec::new();
        for matched in t.glob_include(&base, &include, budget)? {
            let Some(resolved) = t.resolve(&matched, false)? else {
                continue;
            };
            let mut written = base_comps.clone();
            written.extend(matched.iter().skip(base.len()).cloned());
            let entries = t.walk(&resolved, exclude, budget)?;
            out.push(self.source(arg, written, base_comps.len(), &resolved, entries));
        }
        Ok(out)
    }

    fn source(
        &self,
        arg: usize,
        written: Vec<Vec<u8>>,
        pivot: usize,
        resolved: &[Vec<u8>],
        entries: Vec<Entry>,
    ) -> Source {
        let path = if resolved.is_empty() {
            ".".to_string()
        } else {
            String::from_utf8_lossy(&resolved.join(&b'/')).into_owned()
        };
        Source {
            path,
            name: written.last().cloned().unwrap_or_default(),
            arg,
            entries,
            written,
            pivot,
            tree: self.tree.clone(),
        }
    }

    fn not_found(&self, src: &str, path: &[u8]) -> ContextError {
        let shown = if path.is_empty() {
            src.to_string()
        } else {
            String::from_utf8_lossy(path).into_owned()
        };
        // Present on disk but filtered out: say which file did it.
        let ignored_by = match &self.tree.ignore_file {
            Some(file) if !path.is_empty() && self.tree.ignore.matches_or_parent_matches(path) => {
                let exists = nix::sys::stat::fstatat(
                    &self.tree.fd,
                    Path::new(std::ffi::OsStr::from_bytes(path)),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .is_ok();
                exists.then(|| file.clone())
            }
            _ => None,
        };
        ContextError::NotFound {
            path: shown,
            ignored_by,
        }
    }

    /// Content digest of `sources`: names relative to each source, kinds, modes, owners (for
    /// trees that keep them), link targets, device numbers, xattrs and file contents, never
    /// times. A file whose (dev, ino, size, mtime, ctime) is unchanged since it was last hashed
    /// is not read again.
    pub fn digest(&self, sources: &[Source]) -> Result<crate::image::digest::Digest, ContextError> {
        hash::digest(self, sources)
    }

    /// How many files `digest` has read so far (the others came from the stat cache).
    pub fn files_hashed(&self) -> u64 {
        self.hashed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The stat cache, with what a pending [`load_stat_cache`](Self::load_stat_cache) read
    /// merged in (entries this build filled win).
    fn stat_cache(&self) -> Option<std::sync::MutexGuard<'_, StatCache>> {
        let loading = self.stat_cache_loading.lock().ok()?.take();
        let mut cache = self.stat_cache.lock().ok()?;
        if let Some(loaded) = loading.and_then(|h| h.join().ok()).flatten() {
            cache.absorb(loaded);
        }
        Some(cache)
    }

    /// Whether `source` comes from this context's own tree (the stat cache holds its files
    /// only, by their path in it).
    fn owns(&self, source: &Source) -> bool {
        Arc::ptr_eq(&self.tree, &source.tree)
    }

    /// Writes the stat cache to `path` (atomically: a temporary file renamed over it).
    pub fn save_stat_cache(&self, path: &Path) -> Result<(), ContextError> {
        let cache = self.stat_cache().ok_or_else(|| ContextError::StatCache {
            path: path.display().to_string(),
            message: "lock poisoned".into(),
        })?;
        if !self
            .stat_cache_changed
            .load(std::sync::atomic::Ordering::Relaxed)
            && path.exists()
        {
            return Ok(());
        }
        let data = cache.encode(MAX_STAT_CACHE);
        drop(cache);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, data).map_err(io_err("write stat cache", &tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err("rename stat cache to", path))
    }

    /// Starts reading a stat cache written by `save_stat_cache` on another thread (the
    /// Dockerfile's first steps go on meanwhile; the first digest waits for it). A missing file
    /// is an empty cache, an unreadable one is ignored (it is only a cache).
    pub fn load_stat_cache(&self, path: &Path) -> Result<(), ContextError> {
        let path = path.to_path_buf();
        let read = move || {
            let data = read_limited(&path, 1 << 30).ok().flatten()?;
            if statcache::is_older_format(&data) {
                tracing::debug!(
                    "stat cache {} is of an earlier format: rebuilt",
                    path.display()
                );
                return None;
            }
            let cache = StatCache::load(data);
            if cache.is_none() {
                tracing::warn!("ignoring unreadable stat cache {}", path.display());
            }
            cache
        };
        let handle = std::thread::Builder::new()
            .name("stat-cache".into())
            .spawn(read)
            .map_err(|e| ContextError::StatCache {
                path: "(thread)".into(),
                message: e.to_string(),
            })?;
        if let Ok(mut loading) = self.stat_cache_loading.lock() {
            // A second load replaces a first one not used yet: its entries are merged now.
            if let Some(earlier) = loading.replace(handle) {
                if let (Some(loaded), Ok(mut cache)) =
                    (earlier.join().ok().flatten(), self.stat_cache.lock())
                {
                    cache.absorb(loaded);
                }
            }
        }
        Ok(())
    }
}

/// The components of a source path, cleaned; `..` out of the root is refused.
fn source_components(src: &str) -> Result<Vec<Vec<u8>>, ContextError> {
    let rel = src.trim_start_matches('/');
    let cleaned = clean(rel.as_bytes());
    if cleaned == b".." || cleaned.starts_with(b"../") {
        return Err(ContextError::OutsideContext(src.to_string()));
    }
    if cleaned == b"." {
        return Ok(Vec::new());
    }
    let comps: Vec<Vec<u8>> = cleaned.split(|&c| c == b'/').map(|c| c.to_vec()).collect();
    if comps.len() > MAX_DEPTH {
        return Err(ContextError::TooDeep {
            path: src.to_string(),
            limit: MAX_DEPTH,
        });
    }
    Ok(comps)
}

/// Reads a regular file of at most `max` bytes; `None` when it does not exist.
fn read_limited(path: &Path, max: u64) -> Result<Option<Vec<u8>>, ContextError> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    // Sized from the file's length: growing by doubling copied a large file several times.
    let len = file.metadata().map_or(0, |m| m.len()).min(max + 1);
    let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0) + 1);
    file.take(max + 1)
        .read_to_end(&mut data)
        .map_err(io_err("read", path))?;
    if data.len() as u64 > max {
        return Err(ContextError::IgnoreFile {
            file: path.display().to_string(),
            message: format!("larger than {max} bytes"),
        });
    }
    Ok(Some(data))
}

/// Compiles an ignore file, naming the line of a bad pattern.
fn compile_ignore(data: &[u8], file: &str) -> Result<PatternMatcher, ContextError> {
    let lines = pattern::read_ignore_file(data);
    if lines.len() > MAX_PATTERNS {
        return Err(ContextError::IgnoreFile {
            file: file.to_string(),
            message: format!("more than {MAX_PATTERNS} patterns"),
        });
    }
    match PatternMatcher::new(&lines) {
        Ok(pm) => Ok(pm),
        Err(e) => {
            // Find the offending line for the message.
            let mut line_no = 0;
            let mut text = String::new();
            for (i, line) in data.split(|&c| c == b'\n').enumerate() {
                let one = pattern::read_ignore_file(line);
                if !one.is_empty() && PatternMatcher::new(&one).is_err() {
                    line_no = i + 1;
                    text = String::from_utf8_lossy(line).trim().to_string();
                    break;
                }
            }
            Err(ContextError::IgnorePattern {
                file: file.to_string(),
                line: line_no,
                pattern: text,
                message: e.0,
            })
        }
    }
}
