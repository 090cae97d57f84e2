//! Reading a [`Tree`] as the builder sees it: ignored paths absent, links resolved inside it.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, openat2, readlinkat, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode};

use super::pattern::{fnmatch, MatchInfo, PatternMatcher};
use super::{ContextError, Entry, FileKind, Tree, MAX_DEPTH, MAX_ENTRIES, MAX_LINK_HOPS};

/// Resolution that never follows a link and never leaves the directory it starts from: the
/// paths given to it were resolved by us already, so a link found there now is a swap.
pub(crate) fn beneath() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH
        | ResolveFlag::RESOLVE_NO_SYMLINKS
        | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

pub(crate) fn os(p: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(p))
}

pub(crate) fn shown(p: &[u8]) -> String {
    if p.is_empty() {
        ".".into()
    } else {
        String::from_utf8_lossy(p).into_owned()
    }
}

/// Opens a link-free path relative to `root` (`""` is `root` itself).
pub(crate) fn open_beneath(root: BorrowedFd, path: &[u8], flags: OFlag) -> nix::Result<OwnedFd> {
    let p: &[u8] = if path.is_empty() { b"." } else { path };
    openat2(
        root,
        os(p),
        OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .resolve(beneath()),
    )
}

/// The entry at `path` (relative to the tree's root), whose path relative to its source
/// starts at `rel_at`.
pub(crate) fn entry_from(
    path: Vec<u8>,
    rel_at: usize,
    st: &FileStat,
    link: Option<Vec<u8>>,
) -> Entry {
    Entry {
        rel_at: u32::try_from(rel_at.min(path.len())).unwrap_or(0),
        path,
        kind: FileKind::of(st.st_mode),
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        size: st.st_size as u64,
        mtime: (st.st_mtime, st.st_mtime_nsec),
        atime: (st.st_atime, st.st_atime_nsec),
        ctime: (st.st_ctime, st.st_ctime_nsec),
        dev: st.st_dev,
        ino: st.st_ino,
        nlink: st.st_nlink,
        rdev: st.st_rdev,
        link,
    }
}

fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    if a.is_empty() {
        return b.to_vec();
    }
    let mut v = Vec::with_capacity(a.len() + 1 + b.len());
    v.extend_from_slice(a);
    v.push(b'/');
    v.extend_from_slice(b);
    v
}

/// The length of `join(a, b)`.
fn join_len(a: &[u8], b: &[u8]) -> usize {
    if a.is_empty() {
        b.len()
    } else {
        a.len() + 1 + b.len()
    }
}

fn is_dir(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// The names in a directory (without `.` and `..`), sorted: one buffer and their spans in it
/// (a name per allocation cost as much as a `stat` in large contexts).
pub(crate) struct Names {
    buf: Vec<u8>,
    spans: Vec<(u32, u32)>,
}

impl Names {
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.spans
            .iter()
            .map(|&(a, b)| self.buf.get(a as usize..b as usize).unwrap_or_default())
    }
}

fn read_names(dir: OwnedFd, shown_path: &[u8]) -> Result<Names, ContextError> {
    let mut d = Dir::from_fd(dir).map_err(super::errno_err("read directory", os(shown_path)))?;
    let mut buf = Vec::new();
    let mut spans = Vec::new();
    for ent in d.iter() {
        let ent = ent.map_err(super::errno_err("read directory", os(shown_path)))?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            let start = buf.len();
            buf.extend_from_slice(n);
            let (Ok(a), Ok(b)) = (u32::try_from(start), u32::try_from(buf.len())) else {
                return Err(ContextError::TooMany {
                    what: "bytes of names in one directory",
                    limit: u32::MAX as usize,
                });
            };
            spans.push((a, b));
        }
    }
    spans.sort_unstable_by(|&(a, b), &(c, d)| {
        buf[a as usize..b as usize].cmp(&buf[c as usize..d as usize])
    });
    Ok(Names { buf, spans })
}

pub(crate) struct View<'a> {
    t: &'a Tree,
}

impl<'a> View<'a> {
    pub(crate) fn new(t: &'a Tree) -> View<'a> {
        View { t }
    }

    /// lstat of a link-free path; `None` when it does not exist.
    fn lstat(&self, path: &[u8]) -> Result<Option<FileStat>, ContextError> {
        if path.is_empty() {
            return fstat(&self.t.fd)
                .map(Some)
                .map_err(super::errno_err("stat", &self.t.dir));
        }
        match open_beneath(self.t.fd.as_fd(), path, OFlag::O_PATH) {
            Ok(fd) => fstat(&fd)
                .map(Some)
                .map_err(super::errno_err("stat", os(path))),
            Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => Ok(None),
            Err(Errno::ELOOP) | Err(Errno::EXDEV) => Err(ContextError::Copy(format!(
                "{} changed while it was read (a link appeared on its path)",
                shown(path)
            ))),
            Err(e) => Err(super::errno_err("stat", os(path))(e)),
        }
    }

    fn ignored(&self, path: &[u8]) -> bool {
        !path.is_empty()
            && !self.t.ignore.is_empty()
            && self.t.ignore.matches_or_parent_matches(path)
    }

    /// Would the path exist in the context the builder was sent? An ignored directory does
    /// when an exception re-includes something under it.
    fn visible(&self, path: &[u8], st: &FileStat) -> Result<bool, ContextError> {
        if !self.ignored(path) {
            return Ok(true);
        }
        if !is_dir(st) || !self.t.ignore.exceptions_may_reach(path) {
            return Ok(false);
        }
        let mut budget = MAX_ENTRIES;
        self.has_visible_below(path, 0, &mut budget)
    }

    fn has_visible_below(
        &self,
        dir: &[u8],
        depth: usize,
        budget: &mut usize,
    ) -> Result<bool, ContextError> {
        if depth >= MAX_DEPTH {
            return Ok(false);
        }
        let fd = open_beneath(self.t.fd.as_fd(), dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .map_err(super::errno_err("open directory", os(dir)))?;
        for name in read_names(fd, dir)?.iter() {
            *budget = budget.checked_sub(1).ok_or(ContextError::TooMany {
                what: "files in the build context",
                limit: MAX_ENTRIES,
            })?;
            let p = join(dir, name);
            if !self.ignored(&p) {
                return Ok(true);
            }
            if let Some(st) = self.lstat(&p)? {
                if is_dir(&st)
                    && self.t.ignore.exceptions_may_reach(&p)
                    && self.has_visible_below(&p, depth + 1, budget)?
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Resolves `comps` (cleaned, relative to the root) following links inside the tree, as
    /// BuildKit's `fs.RootPath` (an absolute target starts again at the root, `..` stops at it);
    /// the last component's link is followed when `follow_last`. `None` when a component does
    /// not exist (or is ignored).
    pub(crate) fn resolve(
        &self,
        comps: &[Vec<u8>],
        follow_last: bool,
    ) -> Result<Option<Vec<Vec<u8>>>, ContextError> {
        let mut pending: std::collections::VecDeque<Vec<u8>> = comps.iter().cloned().collect();
        let mut resolved: Vec<Vec<u8>> = Vec::new();
        let mut hops = 0;
        while let Some(c) = pending.pop_front() {
            match c.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            if resolved.len() >= MAX_DEPTH || pending.len() > 16 * MAX_DEPTH {
                return Err(ContextError::TooDeep {
                    path: shown(&comps.join(&b'/')),
                    limit: MAX_DEPTH,
                });
            }
            let candidate = join(&resolved.join(&b'/'), &c);
            let Some(st) = self.lstat(&candidate)? else {
                return Ok(None);
            };
            if !self.visible(&candidate, &st)? {
                return Ok(None);
            }
            let is_link = st.st_mode & libc::S_IFMT == libc::S_IFLNK;
            if is_link && (follow_last || !pending.is_empty()) {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return Err(ContextError::LinkLoop {
                        path: shown(&comps.join(&b'/')),
                        limit: MAX_LINK_HOPS,
                    });
                }
                let parent = resolved.join(&b'/');
                let dir = open_beneath(
                    self.t.fd.as_fd(),
                    &parent,
                    OFlag::O_PATH | OFlag::O_DIRECTORY,
                )
                .map_err(super::errno_err("open directory", os(&parent)))?;
                let target = readlinkat(&dir, os(&c))
                    .map_err(super::errno_err("read link", os(&candidate)))?;
                let target = target.as_bytes();
                if target.first() == Some(&b'/') {
                    resolved.clear();
                }
                for t in target.split(|&b| b == b'/').rev() {
                    pending.push_front(t.to_vec());
                }
                continue;
            }
            resolved.push(c);
        }
        Ok(Some(resolved))
    }

    /// The entries of the source at `resolved` (link-free): itself, then, for a directory,
    /// everything under it that is neither ignored nor excluded, by name, parents first.
    pub(crate) fn walk(
        &self,
        resolved: &[Vec<u8>],
        exclude: &PatternMatcher,
        budget: &mut usize,
    ) -> Result<Vec<Entry>, ContextError> {
        let path = resolved.join(&b'/');
        let Some(st) = self.lstat(&path)? else {
            return Err(ContextError::NotFound {
                path: shown(&path),
                ignored_by: None,
            });
        };
        let link = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            Some(self.read_link(&path)?)
        } else {
            None
        };
        let mut out = vec![entry_from(path.clone(), path.len(), &st, link)];
        take(budget)?;
        if is_dir(&st) {
            // What the ignore file says of the source's parents, as a walk from the top knows.
            let mut ign = MatchInfo::default();
            if !self.t.ignore.is_empty() {
                for i in 1..=resolved.len() {
                    ign = self
                        .t
                        .ignore
                        .matches_using_parent_results(&resolved[..i].join(&b'/'), &ign)
                        .1;
                }
            }
            let fd = open_beneath(
                self.t.fd.as_fd(),
                &path,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            )
            .map_err(super::errno_err("open directory", os(&path)))?;
            let mut w = Walk {
                ignore: &self.t.ignore,
                exclude,
                out: &mut out,
                budget,
            };
            w.dir(fd, &path, b"", &ign, &MatchInfo::default(), 1)?;
        }
        Ok(out)
    }

    fn read_link(&self, path: &[u8]) -> Result<Vec<u8>, ContextError> {
        let (parent, name) = match path.iter().rposition(|&c| c == b'/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => (&b""[..], path),
        };
        let dir = open_beneath(
            self.t.fd.as_fd(),
            parent,
            OFlag::O_PATH | OFlag::O_DIRECTORY,
        )
        .map_err(super::errno_err("open directory", os(parent)))?;
        Ok(readlinkat(&dir, os(name))
            .map_err(super::errno_err("read link", os(path)))?
            .as_bytes()
            .to_vec())
    }

    /// Paths under `base` (link-free) that match the wildcard components `wild`, as BuildKit's
    /// `resolveWildcards`: the path relative to `base` is matched whole with `filepath.Match`,
    /// a matching directory is not searched further, links are not followed while searching.
    pub(crate) fn glob(
        &self,
        base: &[Vec<u8>],
        wild: &[Vec<u8>],
        budget: &mut usize,
    ) -> Result<Vec<Vec<Vec<u8>>>, ContextError> {
        let pattern = wild.join(&b'/');
        super::pattern::validate(&pattern).map_err(|source| ContextError::Pattern {
            what: "source",
            pattern: shown(&pattern),
            source,
        })?;
        let base_path = base.join(&b'/');
        let mut out = Vec::new();
        match self.lstat(&base_path)? {
            Some(st) if is_dir(&st) => {}
            _ => return Ok(out),
        }
        self.glob_dir(
            &base_path,
            base,
            &[],
            &pattern,
            wild.len(),
            budget,
            &mut out,
        )?;
        Ok(out)
    }

    /// Paths under `base` (link-free) matched by `include` (patternmatcher semantics, paths
    /// relative to `base`), as BuildKit's include patterns: a matched directory is taken whole,
    /// links are not followed.
    pub(crate) fn glob_include(
        &self,
        base: &[Vec<u8>],
        include: &PatternMatcher,
        budget: &mut usize,
    ) -> Result<Vec<Vec<Vec<u8>>>, ContextError> {
        let base_path = base.join(&b'/');
        let mut out = Vec::new();
        match self.lstat(&base_path)? {
            Some(st) if is_dir(&st) => {}
            _ => return Ok(out),
        }
        self.include_dir(
            &base_path,
            base,
            &[],
            include,
            &MatchInfo::default(),
            budget,
            &mut out,
        )?;
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn include_dir(
        &self,
        dir: &[u8],
        base: &[Vec<u8>],
        rel: &[Vec<u8>],
        include: &PatternMatcher,
        info: &MatchInfo,
        budget: &mut usize,
        out: &mut Vec<Vec<Vec<u8>>>,
    ) -> Result<(), ContextError> {
        if rel.len() >= MAX_DEPTH {
            return Err(ContextError::TooDeep {
                path: shown(dir),
                limit: MAX_DEPTH,
            });
        }
        let fd = open_beneath(self.t.fd.as_fd(), dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .map_err(super::errno_err("open directory", os(dir)))?;
        for name in read_names(fd, dir)?.iter() {
            take(budget)?;
            let p = join(dir, name);
            let Some(st) = self.lstat(&p)? else { continue };
            if !self.visible(&p, &st)? {
                continue;
            }
            let mut r = rel.to_vec();
            r.push(name.to_vec());
            let (m, child_info) = include.matches_using_parent_results(&r.join(&b'/'), info);
            if m {
                let mut full = base.to_vec();
                full.extend(r);
                out.push(full);
            } else if is_dir(&st) {
                self.include_dir(&p, base, &r, include, &child_info, budget, out)?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn glob_dir(
        &self,
        dir: &[u8],
        base: &[Vec<u8>],
        rel: &[Vec<u8>],
        pattern: &[u8],
        max_depth: usize,
        budget: &mut usize,
        out: &mut Vec<Vec<Vec<u8>>>,
    ) -> Result<(), ContextError> {
        let fd = open_beneath(self.t.fd.as_fd(), dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .map_err(super::errno_err("open directory", os(dir)))?;
        for name in read_names(fd, dir)?.iter() {
            take(budget)?;
            let p = join(dir, name);
            let Some(st) = self.lstat(&p)? else { continue };
            if !self.visible(&p, &st)? {
                continue;
            }
            let mut r = rel.to_vec();
            r.push(name.to_vec());
            let rel_path = r.join(&b'/');
            if fnmatch(pattern, &rel_path).unwrap_or(false) {
                let mut full = base.to_vec();
                full.extend(r);
                out.push(full);
                continue;
            }
            if is_dir(&st) && r.len() < max_depth {
                self.glob_dir(&p, base, &r, pattern, max_depth, budget, out)?;
            }
        }
        Ok(())
    }
}

fn take(budget: &mut usize) -> Result<(), ContextError> {
    *budget = budget.checked_sub(1).ok_or(ContextError::TooMany {
        what: "files in the sources of one COPY",
        limit: MAX_ENTRIES,
    })?;
    Ok(())
}

struct Walk<'w> {
    ignore: &'w PatternMatcher,
    exclude: &'w PatternMatcher,
    out: &'w mut Vec<Entry>,
    budget: &'w mut usize,
}

/// A name of a directory being walked, looked at.
enum Found {
    /// A file, link or other non-directory that is kept.
    Leaf(Entry),
    /// A directory to search: its entry, where it is and what the patterns said of it; `out`
    /// when ignored or excluded (kept only if something under it is not).
    Dir { entry: Entry, job: Job, out: bool },
}

/// Opens directory `name` of `parent` (shown as `t` in errors), never through a link.
fn open_dir(parent: &OwnedFd, name: &[u8], t: &[u8]) -> Result<OwnedFd, ContextError> {
    openat(
        parent,
        os(name),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(super::errno_err("open directory", os(t)))
}

/// A directory to search: its name in its parent, its paths in the tree and the source, and
/// what the patterns said of it.
struct Job {
    name: Vec<u8>,
    t: Vec<u8>,
    s: Vec<u8>,
    ign: MatchInfo,
    exc: MatchInfo,
}

/// What a job found: its entries, whether any was kept, and the budget it used.
type JobResult = Result<(Vec<Entry>, bool, usize), ContextError>;

impl Walk<'_> {
    /// Adds what is under `dir`; true when anything was. The walk's root (depth 1) with
    /// several directories below it has them searched by several threads at once: a large
    /// context is one `stat` per file, and the kernel's share of that is most of a build with
    /// nothing changed. Entries come out in the same order either way.
    fn dir(
        &mut self,
        fd: OwnedFd,
        tree_path: &[u8],
        src_path: &[u8],
        ign: &MatchInfo,
        exc: &MatchInfo,
        depth: usize,
    ) -> Result<bool, ContextError> {
        if depth > MAX_DEPTH {
            return Err(ContextError::TooDeep {
                path: shown(tree_path),
                limit: MAX_DEPTH,
            });
        }
        let dup =
            nix::unistd::dup(&fd).map_err(super::errno_err("read directory", os(tree_path)))?;
        let names = read_names(dup, tree_path)?;
        if depth == 1 {
            let mut found = Vec::with_capacity(names.len());
            for name in names.iter() {
                found.extend(self.look(&fd, tree_path, src_path, ign, exc, name)?);
            }
            let dirs = found
                .iter()
                .filter(|f| matches!(f, Found::Dir { .. }))
                .count();
            let threads = super::parallelism().min(dirs);
            if threads >= 2 {
                return self.parallel(&fd, found, threads, depth);
            }
            let mut any = false;
            for f in found {
                any |= self.add(&fd, f, depth)?;
            }
            return Ok(any);
        }
        let mut any = false;
        self.out.reserve(names.len());
        for name in names.iter() {
            if let Some(f) = self.look(&fd, tree_path, src_path, ign, exc, name)? {
                any |= self.add(&fd, f, depth)?;
            }
        }
        Ok(any)
    }

    /// Adds one name's entry, and for a directory what is under it; true when anything was.
    fn add(&mut self, parent: &OwnedFd, found: Found, depth: usize) -> Result<bool, ContextError> {
        take(self.budget)?;
        match found {
            Found::Leaf(e) => {
                self.out.push(e);
                Ok(true)
            }
            Found::Dir { entry, job, out } => {
                let at = self.out.len();
                self.out.push(entry);
                let fd = open_dir(parent, &job.name, &job.t)?;
                let inner = self.dir(fd, &job.t, &job.s, &job.ign, &job.exc, depth + 1)?;
                if out && !inner {
                    self.out.truncate(at);
                    Ok(false)
                } else {
                    Ok(true)
                }
            }
        }
    }

    /// [`Walk::add`] of every name of the walk's root, its directories searched by `threads`
    /// threads (this one and others), each with the budget left; the entries are put back in
    /// order afterwards.
    fn parallel(
        &mut self,
        parent: &OwnedFd,
        found: Vec<Found>,
        threads: usize,
        depth: usize,
    ) -> Result<bool, ContextError> {
        for _ in &found {
            take(self.budget)?;
        }
        let mut order = Vec::with_capacity(found.len());
        let mut jobs = Vec::new();
        for f in found {
            match f {
                Found::Leaf(e) => order.push((e, None)),
                Found::Dir { entry, job, out } => {
                    order.push((entry, Some((jobs.len(), out))));
                    jobs.push(std::sync::Mutex::new(Some(job)));
                }
            }
        }
        let results: Vec<std::sync::Mutex<Option<JobResult>>> =
            jobs.iter().map(|_| std::sync::Mutex::new(None)).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let left = *self.budget;
        let (ignore, exclude) = (self.ignore, self.exclude);
        let work = || loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(slot) = jobs.get(i) else { break };
            let Some(job) = slot.lock().ok().and_then(|mut j| j.take()) else {
                continue;
            };
            let mut out = Vec::new();
            let mut budget = left;
            let mut w = Walk {
                ignore,
                exclude,
                out: &mut out,
                budget: &mut budget,
            };
            let r = open_dir(parent, &job.name, &job.t)
                .and_then(|fd| w.dir(fd, &job.t, &job.s, &job.ign, &job.exc, depth + 1))
                .map(|inner| (out, inner, left - budget));
            if let Ok(mut slot) = results[i].lock() {
                *slot = Some(r);
            }
        };
        std::thread::scope(|scope| {
            for _ in 1..threads {
                // No thread to be had: this one does the work alone.
                let _ = std::thread::Builder::new().spawn_scoped(scope, work);
            }
            work();
        });
        let mut any = false;
        for (entry, dir) in order {
            let Some((i, out)) = dir else {
                self.out.push(entry);
                any = true;
                continue;
            };
            let result = results[i]
                .lock()
                .ok()
                .and_then(|mut r| r.take())
                .unwrap_or_else(|| Err(ContextError::Copy("a directory walk was lost".into())))?;
            let (children, inner, used) = result;
            *self.budget = self.budget.checked_sub(used).ok_or(ContextError::TooMany {
                what: "files in the sources of one COPY",
                limit: MAX_ENTRIES,
            })?;
            if out && !inner {
                continue;
            }
            self.out.push(entry);
            self.out.extend(children);
            any = true;
        }
        Ok(any)
    }

    /// What `name` in `dir` is for the walk: `None` when it is left out (gone since it was
    /// listed, or ignored or excluded with nothing under it that an exception brings back).
    fn look(
        &self,
        fd: &OwnedFd,
        tree_path: &[u8],
        src_path: &[u8],
        ign: &MatchInfo,
        exc: &MatchInfo,
        name: &[u8],
    ) -> Result<Option<Found>, ContextError> {
        let t = join(tree_path, name);
        // The path in the source is the tail of the path in the tree (an induction from the
        // walk's root, where it is empty).
        debug_assert!(tree_path.ends_with(src_path));
        let rel_at = t.len().saturating_sub(join_len(src_path, name));
        let s = &t[rel_at..];
        let st = match fstatat(fd, os(name), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // Removed since it was listed.
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(super::errno_err("stat", os(&t))(e)),
        };
        let (ignored, ign2) = if self.ignore.is_empty() {
            (false, MatchInfo::default())
        } else {
            self.ignore.matches_using_parent_results(&t, ign)
        };
        let (excluded, exc2) = if self.exclude.is_empty() {
            (false, MatchInfo::default())
        } else {
            self.exclude.matches_using_parent_results(s, exc)
        };
        let out = ignored || excluded;
        if is_dir(&st) {
            // An excluded directory is searched only when an exception may re-include
            // something under it, and kept only when one did.
            let may_reinclude = (!ignored || self.ignore.exceptions_may_reach(&t))
                && (!excluded || self.exclude.exceptions_may_reach(s));
            if out && !may_reinclude {
                return Ok(None);
            }
            return Ok(Some(Found::Dir {
                entry: entry_from(t.clone(), rel_at, &st, None),
                job: Job {
                    name: name.to_vec(),
                    s: s.to_vec(),
                    t,
                    ign: ign2,
                    exc: exc2,
                },
                out,
            }));
        }
        if out {
            return Ok(None);
        }
        let link = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            Some(
                readlinkat(fd, os(name))
                    .map_err(super::errno_err("read link", os(&t)))?
                    .as_bytes()
                    .to_vec(),
            )
        } else {
            None
        };
        Ok(Some(Found::Leaf(entry_from(t, rel_at, &st, link))))
    }
}
