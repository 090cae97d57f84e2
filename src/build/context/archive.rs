//! ADD of a local tar archive: detected by content (plain, gzip, bzip2, xz, zstd, as moby's
//! `DecompressStream`) and extracted as moby's `chrootarchive.Untar` does: the destination acts
//! as the archive's root (a link in the archive, or `..`, never leads out of it), owners and
//! modes from the archive, `--chown`/`--chmod` not applied to its contents (BuildKit).

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstatat, futimens, makedev, mkdirat, mknodat, utimensat, FchmodatFlags, Mode,
    SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use super::copy::{set_xattr, CopyOptions};
use super::hash::kept_xattr;
use super::pattern::clean;
use super::tree::{open_beneath, os};
use super::{ContextError, FileKind, Source, MAX_DEPTH, MAX_ENTRIES};
use crate::runtime::inroot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// moby's `DetectCompression`.
fn detect(head: &[u8]) -> Compression {
    if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        Compression::Gzip
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

fn open_source(src: &Source) -> Result<std::fs::File, ContextError> {
    let e = src.entries.first().ok_or_else(|| ContextError::Archive {
        path: src.path.clone(),
        message: "empty source".into(),
    })?;
    let fd = open_beneath(
        src.tree.fd.as_fd(),
        e.tree_rel(),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK,
    )
    .map_err(super::errno_err("open", &src.path))?;
    Ok(std::fs::File::from(fd))
}

fn decompressed(mut file: std::fs::File, path: &str) -> Result<Box<dyn Read>, ContextError> {
    let mut head = Vec::with_capacity(6);
    (&mut file)
        .take(6)
        .read_to_end(&mut head)
        .map_err(super::io_err("read", path))?;
    let stream = io::Cursor::new(head.clone()).chain(file);
    Ok(match detect(&head) {
        Compression::None => Box::new(stream),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stream)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(stream)),
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(stream)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(stream).map_err(super::io_err("decompress", path))?,
        ),
    })
}

/// Is this source a tar archive (possibly compressed) that docker's ADD would extract? As
/// moby's `IsArchivePath`: it decompresses and a first tar header reads.
pub fn is_archive(src: &Source) -> Result<bool, ContextError> {
    if src.kind() != FileKind::File {
        return Ok(false);
    }
    let reader = decompressed(open_source(src)?, &src.path)?;
    let mut ar = tar::Archive::new(reader);
    let Ok(mut entries) = ar.entries() else {
        return Ok(false);
    };
    Ok(matches!(entries.next(), Some(Ok(_))))
}

fn arc_err(path: &str, message: String) -> ContextError {
    ContextError::Archive {
        path: path.to_string(),
        message,
    }
}

/// Extracts `archive` into the directory `dest` (created, mode 0755, owned by the --chown
/// user) in `root`.
pub fn extract_archive_into(
    root: BorrowedFd,
    archive: &Source,
    dest: &str,
    opts: &CopyOptions,
) -> Result<(), ContextError> {
    let owner = opts
        .chown
        .as_deref()
        .map(|c| super::copy::resolve_chown(root, c))
        .transpose()?;
    let full = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("/{}/{}", opts.workdir.trim_start_matches('/'), dest)
    };
    let dest_path = String::from_utf8_lossy(&clean(full.as_bytes())).into_owned();
    let top = mkdir_all(root, &dest_path, owner)?;
    let reader = decompressed(open_source(archive)?, &archive.path)?;
    let mut ar = tar::Archive::new(reader);
    let entries = ar
        .entries()
        .map_err(|e| arc_err(&archive.path, format!("read archive: {e}")))?;
    let clamp = |t: i64| match opts.source_date_epoch {
        Some(epoch) if t > epoch => epoch,
        _ => t,
    };
    // Directory times are set last: writing into a directory changes its mtime.
    let mut dir_times: Vec<(Vec<u8>, i64)> = Vec::new();
    for (count, entry) in entries.enumerate() {
        if count >= MAX_ENTRIES {
            return Err(arc_err(
                &archive.path,
                format!("more than {MAX_ENTRIES} entries"),
            ));
        }
        let mut entry = entry.map_err(|e| arc_err(&archive.path, format!("read archive: {e}")))?;
        let raw = entry.path_bytes().into_owned();
        let name = clean(raw.strip_prefix(b"/").unwrap_or(&raw));
        if name == b"." {
            continue;
        }
        if name.starts_with(b"../") || name == b".." {
            return Err(arc_err(
                &archive.path,
                format!(
                    "entry {:?} is outside the archive's root",
                    String::from_utf8_lossy(&raw)
                ),
            ));
        }
        if name.split(|&c| c == b'/').count() > MAX_DEPTH {
            return Err(arc_err(
                &archive.path,
                format!("entry deeper than {MAX_DEPTH} components"),
            ));
        }
        let shown = String::from_utf8_lossy(&name).into_owned();
        let (parent_rel, leaf) = match name.iter().rposition(|&c| c == b'/') {
            Some(i) => (&name[..i], &name[i + 1..]),
            None => (&b""[..], &name[..]),
        };
        let parent = open_dir_in(top.as_fd(), parent_rel, &archive.path)?;
        let header = entry.header().clone();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let uid = header
            .uid()
            .ok()
            .and_then(|u| u32::try_from(u).ok())
            .unwrap_or(0);
        let gid = header
            .gid()
            .ok()
            .and_then(|g| u32::try_from(g).ok())
            .unwrap_or(0);
        let mtime = clamp(
            header
                .mtime()
                .ok()
                .and_then(|m| i64::try_from(m).ok())
                .unwrap_or(0),
        );
        let ts = TimeSpec::new(mtime, 0);
        let err = |op: &'static str| {
            let shown = shown.clone();
            let path = archive.path.clone();
            move |e: Errno| arc_err(&path, format!("{op} {shown}: {e}"))
        };
        let kind = header.entry_type();
        if kind.is_dir() {
            match fstatat(&parent, os(leaf), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {}
                Ok(_) => {
                    unlinkat(&parent, os(leaf), UnlinkatFlags::NoRemoveDir)
                        .map_err(err("remove"))?;
                    mkdirat(&parent, os(leaf), Mode::from_bits_truncate(0o700))
                        .map_err(err("create directory"))?;
                }
                Err(Errno::ENOENT) => mkdirat(&parent, os(leaf), Mode::from_bits_truncate(0o700))
                    .map_err(err("create directory"))?,
                Err(e) => return Err(err("stat")(e)),
            }
            let fd = openat(
                &parent,
                os(leaf),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(err("open directory"))?;
            fchown(&fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                .map_err(err("chown"))?;
            fchmod(&fd, Mode::from_bits_truncate(mode)).map_err(err("chmod"))?;
            dir_times.push((name.clone(), mtime));
            continue;
        }
        // Whatever is there goes, unless it is a directory (moby keeps a directory only for a
        // directory entry, and fails to replace a non-empty one).
        match fstatat(&parent, os(leaf), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                unlinkat(&parent, os(leaf), UnlinkatFlags::RemoveDir)
                    .map_err(err("replace directory"))?;
            }
            Ok(_) => {
                unlinkat(&parent, os(leaf), UnlinkatFlags::NoRemoveDir).map_err(err("remove"))?
            }
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(err("stat")(e)),
        }
        let xattrs: Vec<(Vec<u8>, Vec<u8>)> = match entry.pax_extensions() {
            Ok(Some(ext)) => ext
                .filter_map(|x| x.ok())
                .filter_map(|x| {
                    let k = x.key_bytes().strip_prefix(b"SCHILY.xattr.")?.to_vec();
                    kept_xattr(&k).then(|| (k, x.value_bytes().to_vec()))
                })
                .collect(),
            _ => Vec::new(),
        };
        if kind.is_file() || kind == tar::EntryType::Continuous || kind.is_gnu_sparse() {
            let out = openat(
                &parent,
                os(leaf),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .map_err(err("create"))?;
            let mut f = std::fs::File::from(out);
            io::copy(&mut entry, &mut f)
                .map_err(|e| arc_err(&archive.path, format!("write {shown}: {e}")))?;
            fchown(&f, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))).map_err(err("chown"))?;
            fchmod(&f, Mode::from_bits_truncate(mode)).map_err(err("chmod"))?;
            for (k, v) in &xattrs {
                if let Ok(k) = std::ffi::CString::new(k.clone()) {
                    // Best effort, as moby's BestEffortXattrs.
                    let _ = set_xattr(f.as_fd(), &k, v);
                }
            }
            futimens(&f, &ts, &ts).map_err(err("set times of"))?;
            continue;
        }
        if kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| {
                    arc_err(&archive.path, format!("hard link {shown} without a target"))
                })?
                .into_owned();
            let target = clean(target.strip_prefix(b"/").unwrap_or(&target));
            if target.starts_with(b"../") || target == b".." || target == b"." {
                return Err(arc_err(
                    &archive.path,
                    format!("hard link {shown} points outside the archive's root"),
                ));
            }
            let (tp, tl) = match target.iter().rposition(|&c| c == b'/') {
                Some(i) => (&target[..i], &target[i + 1..]),
                None => (&b""[..], &target[..]),
            };
            let tdir = open_dir_in(top.as_fd(), tp, &archive.path)?;
            linkat(&tdir, os(tl), &parent, os(leaf), AtFlags::empty()).map_err(err("link"))?;
            continue;
        }
        if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| arc_err(&archive.path, format!("link {shown} without a target")))?
                .into_owned();
            symlinkat(os(&target), &parent, os(leaf)).map_err(err("create link"))?;
        } else if kind.is_fifo() || kind.is_character_special() || kind.is_block_special() {
            let (flag, dev) = if kind.is_fifo() {
                (SFlag::S_IFIFO, 0)
            } else {
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let f = if kind.is_character_special() {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                (f, makedev(major as u64, minor as u64))
            };
            mknodat(
                &parent,
                os(leaf),
                flag,
                Mode::from_bits_truncate(0o600),
                dev,
            )
            .map_err(err("create"))?;
            fchmodat(
                &parent,
                os(leaf),
                Mode::from_bits_truncate(mode),
                FchmodatFlags::NoFollowSymlink,
            )
            .or_else(|e| {
                if e == Errno::EOPNOTSUPP {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(err("chmod"))?;
        } else {
            // PAX/GNU metadata entries are consumed by the tar reader; anything else is skipped
            // as moby does ("unhandled tar header type" is only logged there).
            continue;
        }
        fchownat(
            &parent,
            os(leaf),
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(err("chown"))?;
        utimensat(&parent, os(leaf), &ts, &ts, UtimensatFlags::NoFollowSymlink)
            .map_err(err("set times of"))?;
    }
    for (name, mtime) in dir_times.iter().rev() {
        let ts = TimeSpec::new(*mtime, 0);
        if let Ok(fd) = inroot::open(
            top.as_fd(),
            os(name),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
            Mode::empty(),
        ) {
            let _ = futimens(&fd, &ts, &ts);
        }
    }
    Ok(())
}

/// Opens directory `rel` inside `top`, `top` acting as the root (a chroot, as moby's
/// chrootarchive), creating missing directories with mode 0755 as moby does.
fn open_dir_in(top: BorrowedFd, rel: &[u8], archive: &str) -> Result<OwnedFd, ContextError> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
    match inroot::open(top, os(rel), flags, Mode::empty()) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => {
            return Err(arc_err(
                archive,
                format!("open {}: {e}", String::from_utf8_lossy(rel)),
            ))
        }
    }
    let mut dir = inroot::open(top, Path::new("."), flags, Mode::empty())
        .map_err(|e| arc_err(archive, format!("open destination: {e}")))?;
    let comps: Vec<&[u8]> = rel
        .split(|&c| c == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    for i in 0..comps.len() {
        let prefix = comps[..=i].join(&b'/');
        match inroot::open(top, os(&prefix), flags, Mode::empty()) {
            Ok(fd) => dir = fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                mkdirat(&dir, os(comps[i]), Mode::from_bits_truncate(0o755))
                    .or_else(|e| if e == Errno::EEXIST { Ok(()) } else { Err(e) })
                    .map_err(|e| {
                        arc_err(
                            archive,
                            format!("create directory {}: {e}", String::from_utf8_lossy(&prefix)),
                        )
                    })?;
                dir = openat(
                    &dir,
                    os(comps[i]),
                    flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| {
                    arc_err(
                        archive,
                        format!("open {}: {e}", String::from_utf8_lossy(&prefix)),
                    )
                })?;
                let _ = fchmod(&dir, Mode::from_bits_truncate(0o755));
            }
            Err(e) => {
                return Err(arc_err(
                    archive,
                    format!("open {}: {e}", String::from_utf8_lossy(&prefix)),
                ))
            }
        }
    }
    Ok(dir)
}

/// The destination directory, created with its parents (0755, --chown owner).
fn mkdir_all(
    root: BorrowedFd,
    path: &str,
    owner: Option<(u32, u32)>,
) -> Result<OwnedFd, ContextError> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
    let mut dir = inroot::open(root, Path::new("/"), flags, Mode::empty())
        .map_err(|e| ContextError::Copy(format!("open / in the image: {e}")))?;
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for i in 0..comps.len() {
        let prefix = format!("/{}", comps[..=i].join("/"));
        match inroot::open(root, Path::new(&prefix), flags, Mode::empty()) {
            Ok(fd) => dir = fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                mkdirat(&dir, comps[i], Mode::from_bits_truncate(0o755))
                    .or_else(|e| if e == Errno::EEXIST { Ok(()) } else { Err(e) })
                    .map_err(|e| ContextError::Copy(format!("create directory {prefix}: {e}")))?;
                dir = openat(
                    &dir,
                    comps[i],
                    flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| ContextError::Copy(format!("open directory {prefix}: {e}")))?;
                fchmod(&dir, Mode::from_bits_truncate(0o755))
                    .map_err(|e| ContextError::Copy(format!("chmod {prefix}: {e}")))?;
                if let Some((u, g)) = owner {
                    fchown(&dir, Some(Uid::from_raw(u)), Some(Gid::from_raw(g)))
                        .map_err(|e| ContextError::Copy(format!("chown {prefix}: {e}")))?;
                }
            }
            Err(e) => {
                return Err(ContextError::Copy(format!(
                    "open {prefix} in the image: {e}"
                )))
            }
        }
    }
    Ok(dir)
}
