//! Copying resolved sources into a container root, with Docker's (BuildKit's) COPY rules.
//!
//! The destination directory is reached with `openat2(RESOLVE_IN_ROOT)` from the root's
//! descriptor (a link in the image is followed, but only inside the image, as BuildKit's
//! `fs.RootPath`); below it every entry is created relative to an open directory descriptor with
//! `O_NOFOLLOW`/`O_EXCL`/`AT_SYMLINK_NOFOLLOW`, so nothing in the image can lead a write out of
//! the root.

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstat, fstatat, futimens, mkdirat, mknodat, utimensat, FchmodatFlags, Mode,
    SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use super::hash::read_xattrs;
use super::pattern::clean;
use super::tree::{open_beneath, os, shown};
use super::{ContextError, Entry, FileKind, Source};
use crate::runtime::inroot;

/// Largest /etc/passwd or /etc/group read for `--chown` names.
const MAX_ID_FILE_BYTES: u64 = 16 << 20;

/// How a copy lands.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// The working directory a relative destination is taken from.
    pub workdir: String,
    /// `--chown`: `user`, `user:group`, names or numbers.
    pub chown: Option<String>,
    /// `--chmod`: octal, or symbolic (`u+x,g-w`) as BuildKit.
    pub chmod: Option<String>,
    /// `--parents`: keep each source's path (relative to the tree's root) under the destination.
    pub parents: bool,
    /// Times later than this are clamped to it.
    pub source_date_epoch: Option<i64>,
    /// The overlay upper directory of the step when the root is that overlay: a directory the
    /// copy creates (so in no lower layer) is filled there, not through the overlay, which
    /// doubles what making a file costs. Nothing else looks at it meanwhile.
    pub upper: Option<std::path::PathBuf>,
}

/// What a copy wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub files: u64,
    pub dirs: u64,
    pub links: u64,
    pub bytes: u64,
}

/// A parsed `--chmod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChmodSpec {
    Octal(u32),
    Symbolic(Vec<SymbolicClause>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolicClause {
    who: u32,
    op: u8,
    perm: SymbolicPerm,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SymbolicPerm {
    Bits {
        bits: u32,
        big_x: bool,
    },
    /// `u`, `g` or `o`: copy that class's bits.
    Copy(u32),
}

impl ChmodSpec {
    /// Parses octal (`0755`, `755`; at most 0o7777) or symbolic (`u+x`, `go-w`, `a=rX`, comma
    /// separated) modes.
    pub fn parse(s: &str) -> Result<ChmodSpec, ContextError> {
        let err = |message: &str| ContextError::Chmod {
            value: s.to_string(),
            message: message.to_string(),
        };
        if s.is_empty() {
            return Err(err("empty mode"));
        }
        if s.bytes().all(|c| c.is_ascii_digit()) {
            let m = u32::from_str_radix(s, 8).map_err(|_| err("not an octal number"))?;
            if m > 0o7777 {
                return Err(err("greater than 07777"));
            }
            return Ok(ChmodSpec::Octal(m));
        }
        let mut clauses = Vec::new();
        for part in s.split(',') {
            let b = part.as_bytes();
            let mut i = 0;
            let mut who = 0;
            while i < b.len() && b"ugoa".contains(&b[i]) {
                who |= match b[i] {
                    b'u' => 0o4700,
                    b'g' => 0o2070,
                    b'o' => 0o1007,
                    _ => 0o7777,
                };
                i += 1;
            }
            if who == 0 {
                // No umask in a build: no "who" means everyone.
                who = 0o7777;
            }
            if i >= b.len() {
                return Err(err("missing operator (+, - or =)"));
            }
            while i < b.len() {
                let op = b[i];
                if !b"+-=".contains(&op) {
                    return Err(err("unexpected character; expected +, - or ="));
                }
                i += 1;
                let perm = if i < b.len() && b"ugo".contains(&b[i]) {
                    let from = match b[i] {
                        b'u' => 6,
                        b'g' => 3,
                        _ => 0,
                    };
                    i += 1;
                    SymbolicPerm::Copy(from)
                } else {
                    let mut bits = 0;
                    let mut big_x = false;
                    while i < b.len() && b"rwxXst".contains(&b[i]) {
                        match b[i] {
                            b'r' => bits |= 0o444,
                            b'w' => bits |= 0o222,
                            b'x' => bits |= 0o111,
                            b'X' => big_x = true,
                            b's' => bits |= 0o6000,
                            _ => bits |= 0o1000,
                        }
                        i += 1;
                    }
                    SymbolicPerm::Bits { bits, big_x }
                };
                clauses.push(SymbolicClause { who, op, perm });
            }
        }
        Ok(ChmodSpec::Symbolic(clauses))
    }

    /// The mode a file of `mode` (permission bits) gets.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            ChmodSpec::Octal(m) => *m,
            ChmodSpec::Symbolic(clauses) => {
                let mut m = mode & 0o7777;
                for c in clauses {
                    let bits = match &c.perm {
                        SymbolicPerm::Bits { bits, big_x } => {
                            let mut b = *bits;
                            if *big_x && (is_dir || m & 0o111 != 0) {
                                b |= 0o111;
                            }
                            b
                        }
                        SymbolicPerm::Copy(shift) => {
                            let class = (m >> shift) & 0o7;
                            class | (class << 3) | (class << 6)
                        }
                    } & c.who;
                    match c.op {
                        b'+' => m |= bits,
                        b'-' => m &= !bits,
                        _ => m = (m & !c.who) | bits,
                    }
                }
                m
            }
        }
    }
}

/// Parses `--chown` against the root's /etc/passwd and /etc/group as BuildKit does: a number
/// (or `root`) alone means that uid and the same gid; a user name alone means its uid and
/// primary group. A name the image does not know is, as in BuildKit, not an error: an unknown
/// user is uid 0 and gid 0, an unknown group leaves the gid as the user part set it (logged).
pub fn resolve_chown(root: BorrowedFd, spec: &str) -> Result<(u32, u32), ContextError> {
    let err = |message: String| ContextError::Chown {
        value: spec.to_string(),
        message,
    };
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, mut gid) = match numeric_id(user) {
        Some(n) => (n, n),
        None => {
            let passwd = read_id_file(root, "/etc/passwd").map_err(&err)?;
            match lookup(&passwd, user, 2)
                .and_then(|f| Some((f.first()?.parse().ok()?, f.get(1)?.parse().ok()?)))
            {
                Some(ids) => ids,
                None => {
                    tracing::warn!(
                        "--chown={spec}: no user {user:?} in the image's /etc/passwd; using 0"
                    );
                    (0, 0)
                }
            }
        }
    };
    if let Some(g) = group {
        match numeric_id(g) {
            Some(n) => gid = n,
            None => {
                let groups = read_id_file(root, "/etc/group").map_err(&err)?;
                match lookup(&groups, g, 2).and_then(|f| f.first()?.parse().ok()) {
                    Some(n) => gid = n,
                    None => tracing::warn!(
                        "--chown={spec}: no group {g:?} in the image's /etc/group; using {gid}"
                    ),
                }
            }
        }
    }
    Ok((uid, gid))
}

/// BuildKit's `parseUID`: `root` is 0, else a decimal number that fits an int32.
fn numeric_id(s: &str) -> Option<u32> {
    if s == "root" {
        return Some(0);
    }
    s.parse::<u32>().ok().filter(|&n| n <= i32::MAX as u32)
}

fn read_id_file(root: BorrowedFd, path: &str) -> Result<String, String> {
    match inroot::read_file(root, Path::new(path), MAX_ID_FILE_BYTES) {
        Ok(Some(data)) => Ok(String::from_utf8_lossy(&data).into_owned()),
        Ok(None) => Ok(String::new()),
        Err(e) => Err(format!("read {path}: {e}")),
    }
}

/// The fields after the `skip`th (name, password, ...) of the line whose first field is `name`.
fn lookup<'a>(file: &'a str, name: &str, skip: usize) -> Option<Vec<&'a str>> {
    file.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&name) && fields.len() > skip).then(|| fields[skip..].to_vec())
    })
}

fn copy_err(msg: String) -> ContextError {
    ContextError::Copy(msg)
}

fn errno<'p>(op: &'static str, path: &'p str) -> impl FnOnce(Errno) -> ContextError + 'p {
    move |e| ContextError::Copy(format!("{op} {path}: {e}"))
}

/// The destination's components, cleaned (`..` stops at the root), and whether it names a
/// directory (a trailing `/`, or `.`).
fn dest_components(dest: &str, workdir: &str) -> (Vec<Vec<u8>>, bool) {
    let is_dir = dest.is_empty() || dest == "." || dest.ends_with('/') || dest.ends_with("/.");
    let full = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("/{}/{}", workdir.trim_start_matches('/'), dest)
    };
    let cleaned = clean(full.as_bytes());
    let comps = cleaned
        .split(|&c| c == b'/')
        .filter(|c| !c.is_empty())
        .map(|c| c.to_vec())
        .collect();
    (comps, is_dir)
}

/// Components with `.` and `..` resolved lexically (`..` stops at the root).
fn clean_comps(comps: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in comps {
        match c.as_slice() {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            _ => out.push(c),
        }
    }
    out
}

/// Copies of at least this many entries are split between threads ([`Copier::parallel_plan`]).
const PARALLEL_COPY_MIN: usize = 256;

/// A destination directory open during a copy, with the times to give it once its contents
/// are written.
struct OpenDir {
    rel: Vec<u8>,
    fd: OwnedFd,
    times: Option<Entry>,
    /// A file made in it gets the effective ids and the mode asked for less the umask: the
    /// directory is not setgid (which gives its group) and has no default ACL (which gives
    /// modes of its own).
    plain: bool,
}

/// See [`OpenDir::plain`]; when in doubt, not.
fn plain_dir(fd: BorrowedFd) -> bool {
    let setgid = fstat(fd).map_or(true, |st| st.st_mode & libc::S_ISGID != 0);
    if setgid {
        return false;
    }
    // SAFETY: a NUL-terminated name; a null buffer of size 0 asks for the size only.
    let n = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            c"system.posix_acl_default".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    n < 0 && matches!(Errno::last(), Errno::ENODATA | Errno::EOPNOTSUPP)
}

/// Files up to this size are copied with one read and one write (a buffer of the copier's);
/// larger ones by the kernel.
const SMALL_FILE: usize = 256 << 10;

/// What a file made by this process is without a chown or chmod: its owner (the effective ids,
/// where the parent directory is not setgid) and the permission bits the umask takes away.
#[derive(Debug, Clone, Copy)]
struct Creator {
    uid: u32,
    gid: u32,
    umask: u32,
}

impl Creator {
    fn current() -> Creator {
        // Read, not set and put back: setting it would give files other threads make
        // meanwhile other modes. Unknown, it is taken to clear every bit (chmod always).
        let umask = std::fs::read_to_string("/proc/thread-self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(0o777);
        Creator {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            umask,
        }
    }
}

struct Copier<'a> {
    root: BorrowedFd<'a>,
    /// Mode of the directories the copy creates on the way to its destination: 0755, or an
    /// octal `--chmod` (BuildKit's `MkdirAll(dest, *ci.Mode)`: `COPY --chmod=644 f /new/`
    /// makes /new 0644 there too).
    dir_mode: u32,
    owner: Option<(u32, u32)>,
    chmod: Option<ChmodSpec>,
    epoch: Option<i64>,
    /// First copy of each hard-linked inode: (source dev, ino) → (directory, name).
    links: HashMap<(u64, u64), (OwnedFd, Vec<u8>)>,
    stats: CopyStats,
    creator: Creator,
    /// Reused for small files.
    buf: Vec<u8>,
    /// See [`CopyOptions::upper`].
    upper: Option<BorrowedFd<'a>>,
}

/// Copies `sources` to `dest` in the root `root` (see the module comment for the rules).
pub fn copy_into(
    root: BorrowedFd,
    sources: &[Source],
    dest: &str,
    opts: &CopyOptions,
) -> Result<CopyStats, ContextError> {
    // Several sources and a destination without a trailing "/": the Dockerfile reference
    // forbids it but BuildKit does not check, copying each source in turn (directories merge,
    // a later file replaces an earlier one); so do we.
    let (dest_comps, dest_is_dir) = dest_components(dest, &opts.workdir);
    let owner = opts
        .chown
        .as_deref()
        .map(|c| resolve_chown(root, c))
        .transpose()?;
    let chmod = opts.chmod.as_deref().map(ChmodSpec::parse).transpose()?;
    let dir_mode = match &chmod {
        Some(ChmodSpec::Octal(m)) => *m,
        _ => 0o755,
    };
    let upper = match &opts.upper {
        Some(dir) => Some(
            nix::fcntl::open(
                dir.as_path(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno("open", &dir.display().to_string()))?,
        ),
        None => None,
    };
    let mut c = Copier {
        root,
        dir_mode,
        owner,
        chmod,
        epoch: opts.source_date_epoch,
        links: HashMap::new(),
        stats: CopyStats::default(),
        creator: Creator::current(),
        buf: Vec::new(),
        upper: upper.as_ref().map(|fd| fd.as_fd()),
    };
    for s in sources {
        let mut dest_comps = dest_comps.clone();
        let mut dest_is_dir = dest_is_dir;
        if opts.parents {
            // --parents: the source's path as written (after a "/./" pivot) is kept under the
            // destination.
            let kept = s.written.get(s.pivot..).unwrap_or_default();
            if !kept.is_empty() {
                let n = if s.is_dir() {
                    kept.len()
                } else {
                    kept.len() - 1
                };
                dest_comps.extend(kept.iter().take(n).cloned());
                dest_is_dir = true;
            }
        }
        c.copy_source(s, &dest_comps, dest_is_dir)?;
    }
    Ok(c.stats)
}

impl Copier<'_> {
    /// Opens (creating what is missing, mode `dir_mode`, owned by the --chown user) the directory at
    /// `comps`, following links inside the root only.
    fn mkdir_all(&mut self, comps: &[Vec<u8>]) -> Result<OwnedFd, ContextError> {
        let mut dir = inroot::open(
            self.root,
            Path::new("/"),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .map_err(|e| copy_err(format!("open / in the image: {e}")))?;
        for i in 0..comps.len() {
            let prefix = format!("/{}", shown(&comps[..=i].join(&b'/')));
            match inroot::open(
                self.root,
                Path::new(&prefix),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
                Mode::empty(),
            ) {
                Ok(fd) => dir = fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let name = os(&comps[i]);
                    match mkdirat(&dir, name, Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(errno("create directory", &prefix)(e)),
                    }
                    let fd = openat(
                        &dir,
                        name,
                        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(errno("open directory", &prefix))?;
                    fchmod(&fd, Mode::from_bits_truncate(self.dir_mode))
                        .map_err(errno("chmod", &prefix))?;
                    if let Some((u, g)) = self.owner {
                        fchown(&fd, Some(Uid::from_raw(u)), Some(Gid::from_raw(g)))
                            .map_err(errno("chown", &prefix))?;
                    }
                    self.stats.dirs += 1;
                    dir = fd;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                    return Err(copy_err(format!(
                        "cannot copy to {prefix}: not a directory in the image"
                    )));
                }
                Err(e) => return Err(copy_err(format!("open {prefix} in the image: {e}"))),
            }
        }
        Ok(dir)
    }

    /// Is there a directory at `comps` (links followed inside the root)? `None` when nothing.
    fn dest_kind(&self, comps: &[Vec<u8>]) -> Result<Option<bool>, ContextError> {
        let p = format!("/{}", shown(&comps.join(&b'/')));
        match inroot::open(self.root, Path::new(&p), OFlag::O_PATH, Mode::empty()) {
            Ok(fd) => {
                let st = fstat(&fd).map_err(errno("stat", &p))?;
                Ok(Some(st.st_mode & libc::S_IFMT == libc::S_IFDIR))
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                Ok(None)
            }
            Err(e) => Err(copy_err(format!("stat {p} in the image: {e}"))),
        }
    }

    /// `comps` with every link resolved inside the root, as BuildKit's `fs.RootPath`: an
    /// absolute target starts again at the root, `..` stops at it, a missing tail is kept.
    fn root_path(&self, comps: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, ContextError> {
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
            if resolved.len() > super::MAX_DEPTH || pending.len() > 16 * super::MAX_DEPTH {
                return Err(ContextError::TooDeep {
                    path: shown(&comps.join(&b'/')),
                    limit: super::MAX_DEPTH,
                });
            }
            let p = format!(
                "/{}",
                shown(&[resolved.clone(), vec![c.clone()]].concat().join(&b'/'))
            );
            let fd = match inroot::open(
                self.root,
                Path::new(&p),
                OFlag::O_PATH | OFlag::O_NOFOLLOW,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                    // Nothing there: the rest is taken as written.
                    resolved.push(c);
                    resolved.extend(pending.drain(..).filter(|c| !c.is_empty() && c != b"."));
                    return Ok(clean_comps(resolved));
                }
                Err(e) => return Err(copy_err(format!("stat {p} in the image: {e}"))),
            };
            let st = fstat(&fd).map_err(errno("stat", &p))?;
            if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
                resolved.push(c);
                continue;
            }
            hops += 1;
            if hops > super::MAX_LINK_HOPS {
                return Err(ContextError::LinkLoop {
                    path: shown(&comps.join(&b'/')),
                    limit: super::MAX_LINK_HOPS,
                });
            }
            let target =
                nix::fcntl::readlinkat(&fd, Path::new("")).map_err(errno("read link", &p))?;
            let target = std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str()).to_vec();
            if target.first() == Some(&b'/') {
                resolved.clear();
            }
            for t in target.split(|&b| b == b'/').rev() {
                pending.push_front(t.to_vec());
            }
        }
        Ok(resolved)
    }

    fn copy_source(
        &mut self,
        s: &Source,
        dest: &[Vec<u8>],
        dest_is_dir: bool,
    ) -> Result<(), ContextError> {
        let Some(top) = s.entries.first() else {
            return Ok(());
        };
        // Hard links are kept within one source, as BuildKit's copier (one per source).
        self.links.clear();
        // A destination directory not there before (in a lower layer, or from an earlier
        // source) is made now through the overlay, so is in the upper directory alone.
        let fresh = self.upper.is_some()
            && top.kind == FileKind::Dir
            && self.dest_kind(&self.root_path(dest)?)?.is_none();
        if dest_is_dir {
            self.mkdir_all(dest)?;
        } else if let Some((_, parent)) = dest.split_last() {
            self.mkdir_all(parent)?;
        }
        // Links in the destination are followed inside the root (a file copied onto a link
        // replaces the file it points at, as BuildKit).
        let dest = self.root_path(dest)?;
        let existing = self.dest_kind(&dest)?;
        if top.kind == FileKind::Dir {
            // A directory's contents, not itself, land at the destination.
            let shown_dest = format!("/{}", shown(&dest.join(&b'/')));
            if existing == Some(false) {
                return Err(copy_err(format!(
                    "cannot copy directory {} to non-directory {shown_dest}",
                    s.path
                )));
            }
            let mut dir = self.mkdir_all(&dest)?;
            if fresh {
                // At the same path there: `dest` has no links left.
                if let Some(upper) = self.upper {
                    if let Ok(fd) = open_beneath(
                        upper,
                        &dest.join(&b'/'),
                        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
                    ) {
                        dir = fd;
                    }
                }
            }
            // BuildKit leaves a destination it created with the time of its creation, and gives
            // one that was there before the source directory's times.
            let times = (existing == Some(true)).then(|| top.clone());
            return self.copy_children(s, dir, &shown_dest, times);
        }
        let (parent, name): (Vec<Vec<u8>>, Vec<u8>) = match existing {
            Some(true) => (dest.to_vec(), s.name.clone()),
            _ => match dest.split_last() {
                Some((last, parent)) => (parent.to_vec(), last.clone()),
                None => (Vec::new(), s.name.clone()),
            },
        };
        if name.is_empty() || name == b"." || name == b".." {
            return Err(copy_err(format!(
                "cannot copy {} to a destination without a name",
                s.path
            )));
        }
        let dir = self.mkdir_all(&parent)?;
        let shown_path = format!(
            "/{}",
            shown(&[parent, vec![name.clone()]].concat().join(&b'/'))
        );
        self.copy_entry(s, top, dir.as_fd(), false, &name, &shown_path)?;
        Ok(())
    }

    fn copy_children(
        &mut self,
        s: &Source,
        top: OwnedFd,
        top_shown: &str,
        top_times: Option<Entry>,
    ) -> Result<(), ContextError> {
        let entries = s.entries.get(1..).unwrap_or_default();
        let plain = plain_dir(top.as_fd());
        let top = OpenDir {
            rel: Vec::new(),
            fd: top,
            times: top_times,
            plain,
        };
        match self.parallel_plan(entries) {
            Some(threads) => self.copy_parallel(s, entries, top, top_shown, threads),
            None => self.copy_tree(s, entries, top, top_shown),
        }
    }

    /// Copies `entries` (depth-first, parents first) under `root`, then sets the times of
    /// each directory once its contents are written.
    fn copy_tree(
        &mut self,
        s: &Source,
        entries: &[Entry],
        root: OpenDir,
        top_shown: &str,
    ) -> Result<(), ContextError> {
        // Open destination directories along the walk, with the times to set once their
        // contents are written.
        let mut stack = vec![root];
        for e in entries {
            let (parent_rel, name) = match e.rel().iter().rposition(|&c| c == b'/') {
                Some(i) => (&e.rel()[..i], &e.rel()[i + 1..]),
                None => (&b""[..], e.rel()),
            };
            while stack.last().is_some_and(|o| o.rel != parent_rel) && stack.len() > 1 {
                if let Some(done) = stack.pop() {
                    self.finish_dir(&done.fd, done.times.as_ref(), &done.rel)?;
                }
            }
            let Some(parent) = stack.last() else { break };
            if parent.rel != parent_rel {
                return Err(copy_err(format!(
                    "{}: walk order broken at {}",
                    s.path,
                    shown(e.rel())
                )));
            }
            let shown_path = format!("{}/{}", top_shown.trim_end_matches('/'), shown(e.rel()));
            let pfd = parent.fd.as_fd();
            if e.kind == FileKind::Dir {
                let fd = self.make_dir(s, e, pfd, name, &shown_path)?;
                let plain = plain_dir(fd.as_fd());
                stack.push(OpenDir {
                    rel: e.rel().to_vec(),
                    fd,
                    times: Some(e.clone()),
                    plain,
                });
            } else {
                self.copy_entry(s, e, pfd, parent.plain, name, &shown_path)?;
            }
        }
        while let Some(done) = stack.pop() {
            self.finish_dir(&done.fd, done.times.as_ref(), &done.rel)?;
        }
        Ok(())
    }

    /// How many threads copy `entries` (a directory's contents), `None` for this one alone:
    /// a large copy with several directories at its top is split by those directories (a
    /// file copy is a dozen system calls, most of a COPY's time). Not with hard links, which
    /// a copy keeps only within what one thread copies.
    fn parallel_plan(&self, entries: &[Entry]) -> Option<usize> {
        if entries.len() < PARALLEL_COPY_MIN {
            return None;
        }
        if entries
            .iter()
            .any(|e| e.kind == FileKind::File && e.nlink > 1)
        {
            return None;
        }
        let dirs = entries
            .iter()
            .filter(|e| e.kind == FileKind::Dir && !e.rel().contains(&b'/'))
            .count();
        let threads = super::parallelism().min(dirs);
        (threads >= 2).then_some(threads)
    }

    /// [`copy_tree`](Self::copy_tree) with the top's directories made here and their contents
    /// copied by `threads` threads, each with a copier of its own; the top's own files are
    /// copied here, and its times set last.
    fn copy_parallel(
        &mut self,
        s: &Source,
        entries: &[Entry],
        top: OpenDir,
        top_shown: &str,
        threads: usize,
    ) -> Result<(), ContextError> {
        struct Job<'e> {
            dir: OpenDir,
            below: &'e [Entry],
        }
        let mut jobs: Vec<std::sync::Mutex<Option<Job>>> = Vec::new();
        let mut i = 0;
        while i < entries.len() {
            let e = &entries[i];
            let shown_path = format!("{}/{}", top_shown.trim_end_matches('/'), shown(e.rel()));
            if e.kind != FileKind::Dir {
                self.copy_entry(s, e, top.fd.as_fd(), top.plain, e.rel(), &shown_path)?;
                i += 1;
                continue;
            }
            // Its subtree: the entries after it whose path is under it.
            let mut prefix = e.rel().to_vec();
            prefix.push(b'/');
            let end = entries[i + 1..]
                .iter()
                .position(|x| !x.rel().starts_with(&prefix))
                .map_or(entries.len(), |n| i + 1 + n);
            let fd = self.make_dir(s, e, top.fd.as_fd(), e.rel(), &shown_path)?;
            let plain = plain_dir(fd.as_fd());
            jobs.push(std::sync::Mutex::new(Some(Job {
                dir: OpenDir {
                    rel: e.rel().to_vec(),
                    fd,
                    times: Some(e.clone()),
                    plain,
                },
                below: &entries[i + 1..end],
            })));
            i = end;
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed = std::sync::atomic::AtomicBool::new(false);
        let results: std::sync::Mutex<Vec<Result<CopyStats, ContextError>>> = Default::default();
        let (root, dir_mode, owner, chmod, epoch, creator, upper) = (
            self.root,
            self.dir_mode,
            self.owner,
            self.chmod.clone(),
            self.epoch,
            self.creator,
            self.upper,
        );
        let work = || {
            let mut c = Copier {
                root,
                dir_mode,
                owner,
                chmod: chmod.clone(),
                epoch,
                links: HashMap::new(),
                stats: CopyStats::default(),
                creator,
                buf: Vec::new(),
                upper,
            };
            let mut result = Ok(());
            while result.is_ok() && !failed.load(std::sync::atomic::Ordering::Relaxed) {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(slot) = jobs.get(n) else { break };
                let Some(job) = slot.lock().ok().and_then(|mut j| j.take()) else {
                    continue;
                };
                result = c.copy_tree(s, job.below, job.dir, top_shown);
            }
            if result.is_err() {
                failed.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            if let Ok(mut r) = results.lock() {
                r.push(result.map(|()| c.stats));
            }
        };
        std::thread::scope(|scope| {
            for _ in 1..threads {
                // No thread to be had: the others and this one do the work.
                let _ = std::thread::Builder::new().spawn_scoped(scope, work);
            }
            work();
        });
        let results = results
            .into_inner()
            .map_err(|_| copy_err("a copy thread failed".into()))?;
        for r in results {
            let stats = r?;
            self.stats.files += stats.files;
            self.stats.dirs += stats.dirs;
            self.stats.links += stats.links;
            self.stats.bytes += stats.bytes;
        }
        if jobs.iter().any(|j| j.lock().map_or(true, |j| j.is_some())) {
            return Err(copy_err(format!(
                "{}: a part of the copy was not done",
                s.path
            )));
        }
        self.finish_dir(&top.fd, top.times.as_ref(), &top.rel)
    }

    fn owner_of(&self, s: &Source, e: &Entry) -> (u32, u32) {
        self.owner.unwrap_or(if s.keeps_owner() {
            (e.uid, e.gid)
        } else {
            (0, 0)
        })
    }

    fn mode_of(&self, e: &Entry) -> u32 {
        match &self.chmod {
            Some(spec) => spec.apply(e.mode, e.kind == FileKind::Dir),
            None => e.mode,
        }
    }

    fn times(&self, e: &Entry) -> (TimeSpec, TimeSpec) {
        let clamp = |(s, ns): (i64, i64)| match self.epoch {
            Some(epoch) if s > epoch || (s == epoch && ns > 0) => TimeSpec::new(epoch, 0),
            _ => TimeSpec::new(s, ns),
        };
        (clamp(e.atime), clamp(e.mtime))
    }

    fn make_dir(
        &mut self,
        s: &Source,
        e: &Entry,
        parent: BorrowedFd,
        name: &[u8],
        shown_path: &str,
    ) -> Result<OwnedFd, ContextError> {
        match fstatat(parent, os(name), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {}
            Ok(_) => {
                return Err(copy_err(format!(
                    "cannot copy to non-directory: {shown_path}"
                )))
            }
            Err(Errno::ENOENT) => {
                mkdirat(parent, os(name), Mode::from_bits_truncate(0o700))
                    .map_err(errno("create directory", shown_path))?;
                self.stats.dirs += 1;
            }
            Err(e) => return Err(errno("stat", shown_path)(e)),
        }
        let fd = openat(
            parent,
            os(name),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno("open directory", shown_path))?;
        let (u, g) = self.owner_of(s, e);
        fchown(&fd, Some(Uid::from_raw(u)), Some(Gid::from_raw(g)))
            .map_err(errno("chown", shown_path))?;
        fchmod(&fd, Mode::from_bits_truncate(self.mode_of(e)))
            .map_err(errno("chmod", shown_path))?;
        self.copy_xattrs(s, e, fd.as_fd(), shown_path)?;
        Ok(fd)
    }

    fn finish_dir(&self, fd: &OwnedFd, e: Option<&Entry>, rel: &[u8]) -> Result<(), ContextError> {
        if let Some(e) = e {
            let (a, m) = self.times(e);
            futimens(fd, &a, &m).map_err(errno("set times of", &shown(rel)))?;
        }
        Ok(())
    }

    /// Removes what is at `name` unless it is a directory (which is an error, as BuildKit).
    fn clear(parent: BorrowedFd, name: &[u8], shown_path: &str) -> Result<(), ContextError> {
        match fstatat(parent, os(name), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => Err(copy_err(format!(
                "cannot replace directory {shown_path} with a file"
            ))),
            Ok(_) => unlinkat(parent, os(name), UnlinkatFlags::NoRemoveDir)
                .map_err(errno("remove", shown_path)),
            Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(errno("stat", shown_path)(e)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_entry(
        &mut self,
        s: &Source,
        e: &Entry,
        parent: BorrowedFd,
        parent_plain: bool,
        name: &[u8],
        shown_path: &str,
    ) -> Result<(), ContextError> {
        if e.kind == FileKind::Dir {
            let fd = self.make_dir(s, e, parent, name, shown_path)?;
            return self.finish_dir(&fd, Some(e), name);
        }
        if e.kind == FileKind::Socket {
            // A socket is not content: BuildKit's context transfer drops it.
            return Ok(());
        }
        if e.kind == FileKind::File {
            return self.copy_file(s, e, parent, parent_plain, name, shown_path);
        }
        Self::clear(parent, name, shown_path)?;
        let (u, g) = self.owner_of(s, e);
        let (atime, mtime) = self.times(e);
        match e.kind {
            FileKind::Symlink => {
                let target = e.link.clone().unwrap_or_default();
                symlinkat(os(&target), parent, os(name))
                    .map_err(errno("create link", shown_path))?;
                self.stats.links += 1;
            }
            FileKind::Fifo | FileKind::CharDevice | FileKind::BlockDevice => {
                let kind = match e.kind {
                    FileKind::Fifo => SFlag::S_IFIFO,
                    FileKind::CharDevice => SFlag::S_IFCHR,
                    _ => SFlag::S_IFBLK,
                };
                mknodat(
                    parent,
                    os(name),
                    kind,
                    Mode::from_bits_truncate(0o600),
                    e.rdev,
                )
                .map_err(errno("create", shown_path))?;
                self.stats.files += 1;
                fchmodat(
                    parent,
                    os(name),
                    Mode::from_bits_truncate(self.mode_of(e)),
                    FchmodatFlags::NoFollowSymlink,
                )
                .or_else(|err| {
                    if err == Errno::EOPNOTSUPP {
                        Ok(())
                    } else {
                        Err(err)
                    }
                })
                .map_err(errno("chmod", shown_path))?;
            }
            FileKind::Dir | FileKind::Socket | FileKind::File => {}
        }
        fchownat(
            parent,
            os(name),
            Some(Uid::from_raw(u)),
            Some(Gid::from_raw(g)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(errno("chown", shown_path))?;
        utimensat(
            parent,
            os(name),
            &atime,
            &mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(errno("set times of", shown_path))?;
        Ok(())
    }

    /// A regular file: made with O_EXCL (what was at its name removed first, unless a
    /// directory), its data, owner, mode, kept xattrs and times. A file is most of a COPY and
    /// a dozen system calls: the chown and chmod are left out when the new file already has
    /// that owner and mode.
    fn copy_file(
        &mut self,
        s: &Source,
        e: &Entry,
        parent: BorrowedFd,
        parent_plain: bool,
        name: &[u8],
        shown_path: &str,
    ) -> Result<(), ContextError> {
        // Made with O_EXCL; when something is at the name, it is removed and made again.
        fn cleared<T>(
            parent: BorrowedFd,
            name: &[u8],
            shown_path: &str,
            make: impl Fn() -> Result<T, Errno>,
        ) -> Result<Result<T, Errno>, ContextError> {
            match make() {
                Err(Errno::EEXIST) => {
                    Copier::clear(parent, name, shown_path)?;
                    Ok(make())
                }
                r => Ok(r),
            }
        }
        if e.nlink > 1 {
            if let Some((dir, first)) = self.links.get(&(e.dev, e.ino)) {
                let link = || linkat(dir, os(first), parent, os(name), AtFlags::empty());
                cleared(parent, name, shown_path, link)?.map_err(errno("link", shown_path))?;
                self.stats.links += 1;
                return Ok(());
            }
        }
        let (u, g) = self.owner_of(s, e);
        let (atime, mtime) = self.times(e);
        let src = open_beneath(
            s.tree.fd.as_fd(),
            e.tree_rel(),
            OFlag::O_RDONLY | OFlag::O_NONBLOCK,
        )
        .map_err(|err| copy_err(format!("open {}: {err}", shown(e.tree_rel()))))?;
        let st = fstat(&src).map_err(errno("stat", &shown(e.tree_rel())))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(copy_err(format!(
                "{} is no longer a regular file",
                shown(e.tree_rel())
            )));
        }
        let mode = self.mode_of(e);
        let create = || {
            openat(
                parent,
                os(name),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(mode & 0o777),
            )
        };
        let out =
            cleared(parent, name, shown_path, create)?.map_err(errno("create", shown_path))?;
        let mut from = std::fs::File::from(src);
        let mut to = std::fs::File::from(out);
        let n = self
            .copy_data(&mut from, &mut to, st.st_size)
            .map_err(|err| {
                copy_err(format!(
                    "copy {} to {shown_path}: {err}",
                    shown(e.tree_rel())
                ))
            })?;
        self.stats.bytes += n;
        self.stats.files += 1;
        // A new file belongs to the effective ids (in a plain directory).
        if u != self.creator.uid || g != self.creator.gid || !parent_plain {
            fchown(&to, Some(Uid::from_raw(u)), Some(Gid::from_raw(g)))
                .map_err(errno("chown", shown_path))?;
        }
        // After chown, which clears setuid and setgid; only needed when the umask (or a default
        // ACL) took bits away or the mode has setuid, setgid or sticky bits (which open(2) may
        // drop).
        if mode & 0o7000 != 0 || mode & self.creator.umask != 0 || !parent_plain {
            fchmod(&to, Mode::from_bits_truncate(mode)).map_err(errno("chmod", shown_path))?;
        }
        self.copy_xattrs_to(from.as_fd(), to.as_fd(), shown_path)?;
        futimens(&to, &atime, &mtime).map_err(errno("set times of", shown_path))?;
        if e.nlink > 1 {
            let dir = nix::unistd::dup(parent).map_err(errno("dup", shown_path))?;
            self.links.insert((e.dev, e.ino), (dir, name.to_vec()));
        }
        Ok(())
    }

    /// A file's data: a small file in one read (of a byte more than its size: a short read is
    /// its end) and one write; a larger one, or one that grew, by `std::io::copy` (the kernel's
    /// copy where it can).
    fn copy_data(
        &mut self,
        from: &mut std::fs::File,
        to: &mut std::fs::File,
        size: i64,
    ) -> std::io::Result<u64> {
        use std::io::{Read, Write};
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size >= SMALL_FILE {
            return std::io::copy(from, to);
        }
        self.buf.resize(size + 1, 0);
        let n = loop {
            match from.read(&mut self.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        to.write_all(&self.buf[..n])?;
        if n == size {
            // Asked for one byte more: a regular file reads short only at its end.
            return Ok(n as u64);
        }
        // It grew or shrank since its stat: the rest, whatever it is now.
        Ok(n as u64 + std::io::copy(from, to)?)
    }

    /// A directory's kept xattrs, from its source.
    fn copy_xattrs(
        &self,
        s: &Source,
        e: &Entry,
        to: BorrowedFd,
        shown_path: &str,
    ) -> Result<(), ContextError> {
        if e.kind != FileKind::Dir {
            return Ok(());
        }
        let src = open_beneath(
            s.tree.fd.as_fd(),
            e.tree_rel(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        )
        .map_err(|err| copy_err(format!("open {}: {err}", shown(e.tree_rel()))))?;
        self.copy_xattrs_to(src.as_fd(), to, shown_path)
    }

    fn copy_xattrs_to(
        &self,
        from: BorrowedFd,
        to: BorrowedFd,
        shown_path: &str,
    ) -> Result<(), ContextError> {
        let list = read_xattrs(from)
            .map_err(|err| copy_err(format!("read xattrs for {shown_path}: {err}")))?;
        for (k, v) in list {
            set_xattr(to, &k, &v).map_err(|err| {
                copy_err(format!(
                    "set xattr {} on {shown_path}: {err}",
                    k.to_string_lossy()
                ))
            })?;
        }
        Ok(())
    }
}

pub(crate) fn set_xattr(fd: BorrowedFd, key: &CStr, value: &[u8]) -> std::io::Result<()> {
    // SAFETY: key is NUL-terminated and value is a valid buffer of its length.
    let r = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        // A filesystem without user xattrs: BuildKit logs and goes on.
        if e.raw_os_error() == Some(libc::ENOTSUP) {
            return Ok(());
        }
        return Err(e);
    }
    Ok(())
}
