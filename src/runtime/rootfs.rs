//! The container's root filesystem: the ordered list of mounts that builds it (overlayfs over
//! the image layers, `/proc`, `/sys`, a minimal `/dev`, docker's masked and read-only paths, the
//! managed `/etc` files, the caller's binds and tmpfs), applying that list through a
//! [`Syscall`], and resolving mount targets inside the rootfs without ever leaving it.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, OFlag, AT_FDCWD};
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{fstat, mkdirat, Mode, SFlag};

use super::spec::{ContainerSpec, TmpfsMount, DEFAULT_SHM_SIZE};
use super::syscall::{lexical_clean, Handle, NodeKind, Syscall};

/// Symlinks followed while resolving one path, as the kernel's `MAXSYMLINKS`.
pub const MAX_SYMLINKS: usize = 40;
/// Mount data must fit in one page with its NUL; 4096 is the smallest Linux page.
pub const MAX_MOUNT_DATA: usize = 4095;

/// Docker's masked paths: hidden behind `/dev/null` (files) or an empty read-only tmpfs (dirs).
pub const MASKED_PATHS: [&str; 10] = [
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The standard character devices every container gets: name, major, minor.
pub const STANDARD_DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// The `/dev` symlinks: link, target.
pub const DEV_SYMLINKS: [(&str, &str); 5] = [
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
    ("/dev/ptmx", "pts/ptmx"),
];

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("the container has no image layers to mount")]
    NoLayers,
    #[error("layer path {0:?} cannot be passed to overlayfs: it contains ',', ':' or '\\'")]
    UnsafeLayerPath(PathBuf),
    #[error(
        "overlayfs options for {layers} layers are {len} bytes, over the {max}-byte mount data \
         limit even with paths relative to {parent:?}"
    )]
    OverlayOptionsTooLong {
        layers: usize,
        len: usize,
        max: usize,
        parent: PathBuf,
    },
    #[error("invalid mount target {0:?}: it must be an absolute path")]
    InvalidTarget(String),
    #[error("resolving {path:?} in {root:?}: too many levels of symbolic links")]
    TooManyLinks { root: PathBuf, path: String },
    #[error("resolving {path:?} in {root:?}: {component:?} is not a directory")]
    NotADirectory {
        root: PathBuf,
        path: String,
        component: String,
    },
    #[error("resolving {path:?} in {root:?}: {source}")]
    Resolve {
        root: PathBuf,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{op} {target:?}: {source}")]
    Syscall {
        op: &'static str,
        target: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Where the container's filesystem lives on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The container's writable layer.
    pub upper: PathBuf,
    /// Overlayfs' work directory (same filesystem as `upper`).
    pub work: PathBuf,
    /// The mount point of the overlay: the new root.
    pub merged: PathBuf,
    /// The managed files, bind-mounted over the image's (absent: left alone).
    pub hosts: Option<PathBuf>,
    pub resolv_conf: Option<PathBuf>,
    pub hostname: Option<PathBuf>,
}

/// A mount the caller asks for: binds (including volumes) and tmpfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountRequest {
    Bind {
        source: PathBuf,
        /// Absolute, inside the container.
        target: String,
        read_only: bool,
    },
    Tmpfs(TmpfsMount),
}

impl MountRequest {
    fn target(&self) -> &str {
        match self {
            MountRequest::Bind { target, .. } => target,
            MountRequest::Tmpfs(t) => &t.target,
        }
    }
}

/// One step of building the rootfs. Targets given as `String` are paths inside the container,
/// resolved inside the current root when applied; `PathBuf`s are host paths.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MountOp {
    /// Make every mount in the (new) mount namespace private, so nothing propagates to the host.
    MakePrivate,
    /// The overlay of the image layers on `target`. `cwd`: the directory the relative
    /// `lowerdir`s in `data` are relative to (the short-path trick), when needed.
    Overlay {
        target: PathBuf,
        data: String,
        cwd: Option<PathBuf>,
    },
    /// A kernel filesystem (proc, sysfs, tmpfs, devpts, mqueue) on a directory.
    Mount {
        fstype: String,
        target: String,
        #[serde(with = "ms_flags")]
        flags: MsFlags,
        data: Option<String>,
    },
    /// A bind mount of a host path; read-only binds take a second, remounting `mount(2)`.
    Bind {
        source: PathBuf,
        target: String,
        read_only: bool,
    },
    /// A device node: `mknod`, or a bind of the host's node where `mknod` is not allowed.
    Device {
        path: String,
        major: u64,
        minor: u64,
        mode: u32,
        host: PathBuf,
        /// A block device (else a character one).
        #[serde(default)]
        block: bool,
    },
    Symlink {
        target: String,
        link: String,
    },
    /// Hide a path if it exists: `/dev/null` over a file, an empty read-only tmpfs over a dir.
    Mask(String),
    /// Make a path read-only if it exists (bind it onto itself, remount read-only).
    ReadOnly(String),
    /// `pivot_root` into the new root and detach the old one; later targets are under `/`.
    PivotRoot,
    /// Remount `/` read-only (`read_only: true`).
    RemountRootReadOnly,
}

/// `MsFlags` as their bits on the wire to the helper.
mod ms_flags {
    use nix::mount::MsFlags;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(flags: &MsFlags, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(flags.bits())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MsFlags, D::Error> {
        Ok(MsFlags::from_bits_retain(u64::deserialize(d)?))
    }
}

/// The device nodes under `dir` (the host's `/dev`), as runc lists them for a privileged
/// container: recursively, except the file systems a container gets its own of (`pts`, `shm`,
/// `mqueue`), `fd` and `console`.
fn host_devices(dir: &Path) -> Vec<MountOp> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let Some(name) = path.file_name().map(|n| n.to_os_string()) else {
            continue;
        };
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let file_type = meta.file_type();
        if file_type.is_dir() {
            if !matches!(
                name.to_str(),
                Some("pts" | "shm" | "mqueue" | "fd" | ".lxc" | ".udev")
            ) {
                out.extend(host_devices(&path));
            }
            continue;
        }
        let block = file_type.is_block_device();
        if !(block || file_type.is_char_device()) || name == "console" {
            continue;
        }
        let Some(container_path) = path.to_str() else {
            continue;
        };
        out.push(MountOp::Device {
            path: container_path.to_string(),
            major: nix::sys::stat::major(meta.rdev()),
            minor: nix::sys::stat::minor(meta.rdev()),
            mode: meta.mode() & 0o7777,
            host: path.clone(),
            block,
        });
    }
    out
}

/// The mounts that build `spec`'s rootfs, in order.
pub fn plan(
    spec: &ContainerSpec,
    layout: &Layout,
    extra: &[MountRequest],
) -> Result<Vec<MountOp>, RootfsError> {
    let nosuid_noexec_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    let mut ops = vec![MountOp::MakePrivate, overlay(spec, layout)?];
    let fs = |fstype: &str, target: &str, flags: MsFlags, data: Option<&str>| MountOp::Mount {
        fstype: fstype.to_string(),
        target: target.to_string(),
        flags,
        data: data.map(str::to_string),
    };

    // The caller's mounts, parents before children (docker sorts by depth).
    let mut requests: Vec<MountRequest> = spec
        .tmpfs
        .iter()
        .cloned()
        .map(MountRequest::Tmpfs)
        .chain(extra.iter().cloned())
        .collect();
    for r in &requests {
        if !r.target().starts_with('/') {
            return Err(RootfsError::InvalidTarget(r.target().to_string()));
        }
    }
    requests.sort_by_key(|r| depth(r.target()));
    let covered = |target: &str| requests.iter().any(|r| lexical_clean(r.target()) == target);

    ops.push(fs("proc", "/proc", nosuid_noexec_nodev, None));
    ops.push(fs(
        "tmpfs",
        "/dev",
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    ));
    ops.push(fs(
        "devpts",
        "/dev/pts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    ));
    let sys_flags = if spec.privileged {
        nosuid_noexec_nodev
    } else {
        nosuid_noexec_nodev | MsFlags::MS_RDONLY
    };
    ops.push(fs("sysfs", "/sys", sys_flags, None));
    ops.push(fs("mqueue", "/dev/mqueue", nosuid_noexec_nodev, None));
    if !covered("/dev/shm") {
        let size = spec.shm_size.unwrap_or(DEFAULT_SHM_SIZE);
        ops.push(fs(
            "tmpfs",
            "/dev/shm",
            nosuid_noexec_nodev,
            Some(&format!("mode=1777,size={size}")),
        ));
    }
    for (name, major, minor) in STANDARD_DEVICES {
        ops.push(MountOp::Device {
            path: format!("/dev/{name}"),
            major,
            minor,
            mode: 0o666,
            host: PathBuf::from(format!("/dev/{name}")),
            block: false,
        });
    }
    if spec.privileged {
        // As `docker run --privileged`: the host's devices, at their paths.
        // Not the standard devices (made above), nor `/dev/ptmx`: the container's must stay
        // the link to its own devpts instance, as runc makes it.
        for op in host_devices(Path::new("/dev")) {
            let MountOp::Device { path, .. } = &op else {
                continue;
            };
            let ours = STANDARD_DEVICES
                .iter()
                .any(|(name, _, _)| *path == format!("/dev/{name}"))
                || DEV_SYMLINKS.iter().any(|(link, _)| path == link);
            if !ours {
                ops.push(op);
            }
        }
    }
    for (link, target) in DEV_SYMLINKS {
        ops.push(MountOp::Symlink {
            target: target.to_string(),
            link: link.to_string(),
        });
    }
    for d in &spec.devices {
        if !d.container_path.starts_with('/') {
            return Err(RootfsError::InvalidTarget(d.container_path.clone()));
        }
        ops.push(MountOp::Bind {
            source: PathBuf::from(&d.host_path),
            target: d.container_path.clone(),
            read_only: false,
        });
    }

    // Docker makes the managed files read-only along with a read-only rootfs.
    for (file, target) in [
        (&layout.hosts, "/etc/hosts"),
        (&layout.resolv_conf, "/etc/resolv.conf"),
        (&layout.hostname, "/etc/hostname"),
    ] {
        if let Some(source) = file {
            if !covered(target) {
                ops.push(MountOp::Bind {
                    source: source.clone(),
                    target: target.to_string(),
                    read_only: spec.read_only,
                });
            }
        }
    }

    for r in requests {
        ops.push(match r {
            MountRequest::Bind {
                source,
                target,
                read_only,
            } => MountOp::Bind {
                source,
                target,
                read_only,
            },
            MountRequest::Tmpfs(t) => {
                let (flags, data) = parse_options(&t.options);
                MountOp::Mount {
                    fstype: "tmpfs".into(),
                    target: t.target,
                    flags,
                    data: (!data.is_empty()).then(|| data.join(",")),
                }
            }
        });
    }

    if !spec.privileged && !spec.security.unconfined_systempaths {
        ops.extend(MASKED_PATHS.iter().map(|p| MountOp::Mask(p.to_string())));
        ops.extend(
            READONLY_PATHS
                .iter()
                .map(|p| MountOp::ReadOnly(p.to_string())),
        );
    }
    ops.push(MountOp::PivotRoot);
    if spec.read_only {
        ops.push(MountOp::RemountRootReadOnly);
    }
    Ok(ops)
}

fn depth(target: &str) -> usize {
    lexical_clean(target)
        .split('/')
        .filter(|c| !c.is_empty())
        .count()
}

/// The overlay mount. `lowerdir` lists the top layer first (the reverse of `rootfs_layers`).
/// Over the mount data limit, the layers are given relative to their common parent and the
/// mount is made from there (docker's overlay2 does the same with shorter link names); still
/// over it is an error.
fn overlay(spec: &ContainerSpec, layout: &Layout) -> Result<MountOp, RootfsError> {
    overlay_op(
        &spec.rootfs_layers,
        Some((&layout.upper, &layout.work)),
        &layout.merged,
    )
}

/// The overlay of `layers` (bottom first) on `target`, writable into `upper` (with its work
/// directory) or read-only without (then at least two layers are needed, as overlayfs wants).
pub fn overlay_op(
    layers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<MountOp, RootfsError> {
    if layers.is_empty() {
        return Err(RootfsError::NoLayers);
    }
    for p in layers
        .iter()
        .map(PathBuf::as_path)
        .chain(upper.into_iter().flat_map(|(u, w)| [u, w]))
    {
        if p.as_os_str()
            .as_bytes()
            .iter()
            .any(|b| matches!(b, b',' | b':' | b'\\'))
        {
            return Err(RootfsError::UnsafeLayerPath(p.to_path_buf()));
        }
    }
    let data = |lower: Vec<&Path>| {
        let lower: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
        match upper {
            Some((u, w)) => format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.join(":"),
                u.display(),
                w.display()
            ),
            None => format!("lowerdir={}", lower.join(":")),
        }
    };
    // A layer listed twice (images repeat the empty layer; two WORKDIRs of one directory make
    // the same layer) is refused by overlayfs (ELOOP): its upper occurrence alone gives the
    // same tree.
    let mut seen = std::collections::HashSet::new();
    let top_first: Vec<&Path> = layers
        .iter()
        .rev()
        .map(PathBuf::as_path)
        .filter(|p| seen.insert(*p))
        .collect();
    let full = data(top_first.clone());
    if full.len() <= MAX_MOUNT_DATA {
        return Ok(MountOp::Overlay {
            target: target.to_path_buf(),
            data: full,
            cwd: None,
        });
    }
    let parent = common_parent(&top_first);
    let relative: Vec<&Path> = top_first
        .iter()
        .map(|p| p.strip_prefix(&parent).unwrap_or(p))
        .collect();
    let short = data(relative);
    if short.len() > MAX_MOUNT_DATA || parent.as_os_str().is_empty() {
        return Err(RootfsError::OverlayOptionsTooLong {
            layers: top_first.len(),
            len: short.len(),
            max: MAX_MOUNT_DATA,
            parent,
        });
    }
    Ok(MountOp::Overlay {
        target: target.to_path_buf(),
        data: short,
        cwd: Some(parent),
    })
}

/// The longest directory every path is strictly under.
fn common_parent(paths: &[&Path]) -> PathBuf {
    let mut common: Option<PathBuf> = None;
    for p in paths {
        let parent = p.parent().unwrap_or(p);
        common = Some(match common {
            None => parent.to_path_buf(),
            Some(c) => c
                .components()
                .zip(parent.components())
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect(),
        });
    }
    common.unwrap_or_default()
}

/// Splits `mount -o` style options into `mount(2)` flags and filesystem data.
pub fn parse_options(options: &[String]) -> (MsFlags, Vec<String>) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        let (set, clear) = match o.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            // Propagation is not a per-mount data option; mounts here are private anyway.
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => continue,
            other => {
                data.push(other.to_string());
                continue;
            }
        };
        flags = (flags | set) - clear;
    }
    (flags, data)
}

/// Carries out `ops`, built by [`plan`] for the rootfs mounted on `root`.
///
/// Every target inside the container is resolved once, by an fd walk that cannot leave the
/// root, and every bind source once on the host; mounts then go through those fds (see
/// [`Syscall`]), so a container racing a directory of a shared volume against a link changes
/// nothing: the mount lands on what was resolved, read-only from the start when asked.
pub fn apply(root: &Path, ops: &[MountOp], sys: &dyn Syscall) -> Result<(), RootfsError> {
    let fail = |op: &'static str, target: &Path| {
        let target = target.to_path_buf();
        move |source: io::Error| RootfsError::Syscall { op, target, source }
    };
    let mut cur = root.to_path_buf();
    let resolve = |cur: &Path, path: &str, create: Option<NodeKind>| {
        sys.resolve_in(cur, path, create)
            .map_err(|source| RootfsError::Resolve {
                root: cur.to_path_buf(),
                path: path.to_string(),
                source,
            })
    };
    let must = |cur: &Path, path: &str, kind: NodeKind| -> Result<Handle, RootfsError> {
        resolve(cur, path, Some(kind))?.ok_or_else(|| RootfsError::Resolve {
            root: cur.to_path_buf(),
            path: path.to_string(),
            source: io::Error::from(io::ErrorKind::NotFound),
        })
    };
    let host = |path: &Path| sys.open_host(path).map_err(fail("open", path));
    let bind = |source: &Handle, target: &Handle, read_only: bool| {
        sys.bind(source, target, read_only)
            .map_err(fail("bind mount", &target.path))
    };
    // Opened on first use: several masked files share it.
    let mut dev_null: Option<Handle> = None;
    for op in ops {
        match op {
            MountOp::MakePrivate => {
                sys.mount_root(MsFlags::MS_REC | MsFlags::MS_PRIVATE)
                    .map_err(fail("make private", Path::new("/")))?;
            }
            MountOp::Overlay { target, data, cwd } => {
                if let Some(cwd) = cwd {
                    sys.chdir(cwd).map_err(fail("chdir", cwd))?;
                }
                let t = host(target)?;
                sys.mount_fs("overlay", &t, MsFlags::empty(), Some(data))
                    .map_err(fail("mount overlay", target))?;
            }
            MountOp::Mount {
                fstype,
                target,
                flags,
                data,
            } => {
                let t = must(&cur, target, NodeKind::Dir)?;
                sys.mount_fs(fstype, &t, *flags, data.as_deref())
                    .map_err(fail("mount", &t.path))?;
            }
            MountOp::Bind {
                source,
                target,
                read_only,
            } => {
                // The source is on the host, chosen by the caller: its kind decides the target's.
                let s = host(source)?;
                let kind = if s.is_dir {
                    NodeKind::Dir
                } else {
                    NodeKind::File
                };
                let t = must(&cur, target, kind)?;
                bind(&s, &t, *read_only)?;
            }
            MountOp::Device {
                path,
                major,
                minor,
                mode,
                host: host_node,
                block,
            } => {
                let (parent, name) = split_parent(path);
                let dir = must(&cur, parent, NodeKind::Dir)?;
                let dev = nix::sys::stat::makedev(*major, *minor);
                let kind = if *block {
                    SFlag::S_IFBLK
                } else {
                    SFlag::S_IFCHR
                };
                match sys.mknod(&dir, name, kind, *mode, dev) {
                    Ok(()) => {}
                    // In a user namespace mknod is refused: bind the host's node instead.
                    Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                        let s = host(host_node)?;
                        let t = must(&cur, path, NodeKind::File)?;
                        bind(&s, &t, false)?;
                    }
                    Err(e) => return Err(fail("mknod", &dir.path.join(name))(e)),
                }
            }
            MountOp::Symlink { target, link } => {
                let (parent, name) = split_parent(link);
                let dir = must(&cur, parent, NodeKind::Dir)?;
                match sys.symlink(target, &dir, name) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                        return Err(fail("symlink", &dir.path.join(name))(e));
                    }
                    _ => {}
                }
            }
            MountOp::Mask(path) => {
                let Some(t) = resolve(&cur, path, None)? else {
                    continue;
                };
                if t.is_dir {
                    sys.mount_fs("tmpfs", &t, MsFlags::MS_RDONLY, None)
                        .map_err(fail("mask", &t.path))?;
                } else {
                    if dev_null.is_none() {
                        dev_null = Some(host(Path::new("/dev/null"))?);
                    }
                    if let Some(null) = &dev_null {
                        bind(null, &t, false)?;
                    }
                }
            }
            MountOp::ReadOnly(path) => {
                let Some(t) = resolve(&cur, path, None)? else {
                    continue;
                };
                // Onto itself, read-only before it is attached: the fd is both ends.
                bind(&t, &t, true)?;
            }
            MountOp::PivotRoot => {
                // pivot_root(".", "."): the old root ends up stacked under the new one, and is
                // detached at once; no directory for it is needed inside the container. `cur` is
                // the container's directory on the host, which no container can reach.
                sys.chdir(&cur).map_err(fail("chdir", &cur))?;
                sys.pivot_root(Path::new("."), Path::new("."))
                    .map_err(fail("pivot_root", &cur))?;
                sys.umount2(Path::new("."), MntFlags::MNT_DETACH)
                    .map_err(fail("detach old root", &cur))?;
                cur = PathBuf::from("/");
                sys.chdir(&cur).map_err(fail("chdir", &cur))?;
            }
            MountOp::RemountRootReadOnly => {
                let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
                sys.mount_root(flags)
                    .map_err(fail("remount read-only", Path::new("/")))?;
            }
        }
    }
    Ok(())
}

/// `/dev/null` → (`/dev`, `null`).
fn split_parent(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((parent, name)) => (parent, name),
        None => ("/", path),
    }
}

/// Resolves `path` as if `root` were `/`: every component is looked up with `openat(O_PATH |
/// O_NOFOLLOW)` from the previous one's fd, symlinks are read with `readlinkat` and restarted
/// from `root` (absolute) or their directory (relative), `..` stops at `root`, and more than
/// [`MAX_SYMLINKS`] links is an error. Missing components are appended as written (with `..`
/// still clamped), so the answer is always under `root`.
pub fn resolve_in_root(root: &Path, path: &str) -> Result<PathBuf, RootfsError> {
    Ok(walk(root, path, None)?.path)
}

/// [`resolve_in_root`], creating what is missing (directories, and the last component as
/// `kind`) inside the root as it goes.
pub fn ensure_in_root(root: &Path, path: &str, kind: NodeKind) -> Result<PathBuf, RootfsError> {
    Ok(walk(root, path, Some(kind))?.path)
}

/// The [`Syscall::resolve_in`] of the real system: `None` when missing and not created. The
/// handle holds the `O_PATH` fd the walk ended on, which is what mounts then use.
pub fn lookup_in_root(
    root: &Path,
    path: &str,
    create: Option<NodeKind>,
) -> Result<Option<Handle>, RootfsError> {
    let w = walk(root, path, create)?;
    Ok(match (w.is_dir, w.fd) {
        (Some(is_dir), Some(fd)) => Some(Handle::new(w.path, is_dir, fd)),
        _ => None,
    })
}

struct Walked {
    path: PathBuf,
    /// `None`: the path does not exist.
    is_dir: Option<bool>,
    /// The fd of what was found (`None` when missing).
    fd: Option<OwnedFd>,
}

fn components(path: &OsStr) -> impl DoubleEndedIterator<Item = OsString> + '_ {
    path.as_bytes()
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| OsStr::from_bytes(c).to_os_string())
}

fn walk(root: &Path, path: &str, create: Option<NodeKind>) -> Result<Walked, RootfsError> {
    let err = |source: Errno| RootfsError::Resolve {
        root: root.to_path_buf(),
        path: path.to_string(),
        source: io::Error::from(source),
    };
    let o_path = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let root_fd =
        openat(AT_FDCWD, root, o_path | OFlag::O_DIRECTORY, Mode::empty()).map_err(err)?;
    // The resolved components with their fds; `None` once past a missing component.
    let mut stack: Vec<(OsString, Option<OwnedFd>)> = Vec::new();
    let mut pending: VecDeque<OsString> = components(OsStr::new(path)).collect();
    let mut links = 0;
    let mut missing = false;
    let mut is_dir = true;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            stack.pop();
            // Back at an existing ancestor, lookups resume.
            missing = stack.last().is_some_and(|(_, fd)| fd.is_none());
            is_dir = true;
            continue;
        }
        if missing {
            stack.push((name, None));
            continue;
        }
        let dir = match stack.last() {
            Some((_, Some(fd))) => fd.as_fd(),
            _ => root_fd.as_fd(),
        };
        let fd = match openat(dir, name.as_os_str(), o_path, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => match create {
                None => {
                    missing = true;
                    is_dir = false;
                    stack.push((name, None));
                    continue;
                }
                Some(kind) => {
                    let last = pending.is_empty();
                    let made = if last && kind == NodeKind::File {
                        let flags = OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_WRONLY
                            | OFlag::O_CLOEXEC;
                        openat(
                            dir,
                            name.as_os_str(),
                            flags,
                            Mode::from_bits_truncate(0o644),
                        )
                        .map(drop)
                    } else {
                        mkdirat(dir, name.as_os_str(), Mode::from_bits_truncate(0o755))
                    };
                    match made {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(err(e)),
                    }
                    // Look it up again like any other component (it may have raced into a link).
                    pending.push_front(name);
                    continue;
                }
            },
            Err(e) => return Err(err(e)),
        };
        let st = fstat(&fd).map_err(err)?;
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFLNK {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(RootfsError::TooManyLinks {
                    root: root.to_path_buf(),
                    path: path.to_string(),
                });
            }
            // An O_PATH fd of a link with an empty name reads the link itself.
            let target = readlinkat(&fd, "").map_err(err)?;
            if target.as_bytes().starts_with(b"/") {
                stack.clear();
            }
            for c in components(&target).rev() {
                pending.push_front(c);
            }
            continue;
        }
        is_dir = kind == SFlag::S_IFDIR;
        if !is_dir && !pending.is_empty() {
            return Err(RootfsError::NotADirectory {
                root: root.to_path_buf(),
                path: path.to_string(),
                component: name.to_string_lossy().into_owned(),
            });
        }
        stack.push((name, Some(fd)));
    }
    let mut resolved = root.to_path_buf();
    resolved.extend(stack.iter().map(|(n, _)| n));
    let fd = match stack.pop() {
        None => Some(root_fd),
        Some((_, fd)) => fd.filter(|_| !missing),
    };
    Ok(Walked {
        path: resolved,
        is_dir: (!missing).then_some(is_dir),
        fd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::spec::{Device, Signal};
    use crate::runtime::syscall::{Call, LinuxSyscall, RecordingSyscall, Via};
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::time::Duration;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            id: "0".repeat(64),
            name: "p-web-1".into(),
            rootfs_layers: vec!["/l/base".into(), "/l/mid".into(), "/l/top".into()],
            args: vec!["sh".into()],
            env: vec![],
            cwd: "/".into(),
            user: Default::default(),
            hostname: "web".into(),
            domainname: String::new(),
            tty: false,
            stdin_open: false,
            read_only: false,
            init: false,
            privileged: false,
            stop_signal: Signal {
                number: 15,
                name: "SIGTERM".into(),
            },
            stop_grace_period: Duration::from_secs(10),
            tmpfs: vec![],
            shm_size: None,
            sysctls: vec![],
            ulimits: vec![],
            capabilities: vec![],
            security: Default::default(),
            resources: Default::default(),
            namespaces: Default::default(),
            devices: vec![],
            device_cgroup_rules: vec![],
            labels: Default::default(),
            warnings: vec![],
        }
    }

    fn layout() -> Layout {
        Layout {
            upper: "/c/upper".into(),
            work: "/c/work".into(),
            merged: "/c/merged".into(),
            hosts: Some("/c/hosts".into()),
            resolv_conf: Some("/c/resolv.conf".into()),
            hostname: Some("/c/hostname".into()),
        }
    }

    fn targets(ops: &[MountOp]) -> Vec<String> {
        ops.iter()
            .map(|op| match op {
                MountOp::MakePrivate => "private".to_string(),
                MountOp::Overlay { .. } => "overlay".to_string(),
                MountOp::Mount { fstype, target, .. } => format!("{fstype} {target}"),
                MountOp::Bind { target, .. } => format!("bind {target}"),
                MountOp::Device { path, .. } => format!("dev {path}"),
                MountOp::Symlink { link, .. } => format!("link {link}"),
                MountOp::Mask(p) => format!("mask {p}"),
                MountOp::ReadOnly(p) => format!("ro {p}"),
                MountOp::PivotRoot => "pivot".to_string(),
                MountOp::RemountRootReadOnly => "ro /".to_string(),
            })
            .collect()
    }

    fn find<'a>(ops: &'a [MountOp], target: &str) -> &'a MountOp {
        ops.iter()
            .find(|op| matches!(op, MountOp::Mount { target: t, .. } if t == target))
            .unwrap()
    }

    #[test]
    fn default_plan_order_and_options() {
        let ops = plan(&spec(), &layout(), &[]).unwrap();
        let t = targets(&ops);
        let mut expected: Vec<String> = [
            "private",
            "overlay",
            "proc /proc",
            "tmpfs /dev",
            "devpts /dev/pts",
            "sysfs /sys",
            "mqueue /dev/mqueue",
            "tmpfs /dev/shm",
            "dev /dev/null",
            "dev /dev/zero",
            "dev /dev/full",
            "dev /dev/random",
            "dev /dev/urandom",
            "dev /dev/tty",
            "link /dev/fd",
            "link /dev/stdin",
            "link /dev/stdout",
            "link /dev/stderr",
            "link /dev/ptmx",
            "bind /etc/hosts",
            "bind /etc/resolv.conf",
            "bind /etc/hostname",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        expected.extend(MASKED_PATHS.iter().map(|p| format!("mask {p}")));
        expected.extend(READONLY_PATHS.iter().map(|p| format!("ro {p}")));
        expected.push("pivot".into());
        assert_eq!(t, expected);

        assert_eq!(
            ops[1],
            MountOp::Overlay {
                target: "/c/merged".into(),
                data: "lowerdir=/l/top:/l/mid:/l/base,upperdir=/c/upper,workdir=/c/work".into(),
                cwd: None,
            }
        );
        let nsx = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
        assert_eq!(
            find(&ops, "/proc"),
            &MountOp::Mount {
                fstype: "proc".into(),
                target: "/proc".into(),
                flags: nsx,
                data: None
            }
        );
        assert!(matches!(find(&ops, "/sys"),
            MountOp::Mount { flags, .. } if *flags == nsx | MsFlags::MS_RDONLY));
        assert!(matches!(find(&ops, "/dev"),
            MountOp::Mount { data: Some(d), .. } if d == "mode=755,size=65536k"));
        assert!(matches!(find(&ops, "/dev/pts"),
            MountOp::Mount { data: Some(d), flags, .. }
                if d == "newinstance,ptmxmode=0666,mode=0620,gid=5"
                    && *flags == MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC));
        assert!(matches!(find(&ops, "/dev/shm"),
            MountOp::Mount { data: Some(d), flags, .. }
                if d == "mode=1777,size=67108864" && *flags == nsx));
        assert!(ops.contains(&MountOp::Symlink {
            target: "pts/ptmx".into(),
            link: "/dev/ptmx".into()
        }));
        assert!(ops.contains(&MountOp::Bind {
            source: "/c/resolv.conf".into(),
            target: "/etc/resolv.conf".into(),
            read_only: false
        }));
    }

    #[test]
    fn host_devices_lists_nodes_as_runc_does() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (mknod)");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let node = |path: &Path, kind: SFlag, major, minor| {
            nix::sys::stat::mknod(
                path,
                kind,
                Mode::from_bits_truncate(0o640),
                nix::sys::stat::makedev(major, minor),
            )
            .unwrap()
        };
        fs::create_dir_all(d.join("sub")).unwrap();
        fs::create_dir_all(d.join("pts")).unwrap();
        node(&d.join("null"), SFlag::S_IFCHR, 1, 3);
        node(&d.join("sub/disk"), SFlag::S_IFBLK, 7, 1);
        node(&d.join("pts/0"), SFlag::S_IFCHR, 136, 0);
        node(&d.join("console"), SFlag::S_IFCHR, 5, 1);
        fs::write(d.join("file"), "").unwrap();
        symlink("null", d.join("link")).unwrap();
        let ops = host_devices(d);
        let at = |p: &str| d.join(p).to_string_lossy().into_owned();
        assert_eq!(
            ops,
            vec![
                MountOp::Device {
                    path: at("null"),
                    major: 1,
                    minor: 3,
                    mode: 0o640,
                    host: d.join("null"),
                    block: false,
                },
                MountOp::Device {
                    path: at("sub/disk"),
                    major: 7,
                    minor: 1,
                    mode: 0o640,
                    host: d.join("sub/disk"),
                    block: true,
                },
            ]
        );
    }

    #[test]
    fn privileged_has_rw_sys_and_no_masks() {
        let mut s = spec();
        s.privileged = true;
        let ops = plan(&s, &layout(), &[]).unwrap();
        assert!(!ops
            .iter()
            .any(|op| matches!(op, MountOp::Mask(_) | MountOp::ReadOnly(_))));
        assert!(matches!(find(&ops, "/sys"),
            MountOp::Mount { flags, .. } if !flags.contains(MsFlags::MS_RDONLY)));

        let mut s = spec();
        s.security.unconfined_systempaths = true;
        let ops = plan(&s, &layout(), &[]).unwrap();
        assert!(!ops.iter().any(|op| matches!(op, MountOp::Mask(_))));
        assert!(matches!(find(&ops, "/sys"),
            MountOp::Mount { flags, .. } if flags.contains(MsFlags::MS_RDONLY)));
    }

    #[test]
    fn read_only_remounts_root_last_and_managed_files_ro() {
        let mut s = spec();
        s.read_only = true;
        let ops = plan(&s, &layout(), &[]).unwrap();
        assert_eq!(ops.last(), Some(&MountOp::RemountRootReadOnly));
        assert_eq!(ops[ops.len() - 2], MountOp::PivotRoot);
        assert!(ops.contains(&MountOp::Bind {
            source: "/c/hosts".into(),
            target: "/etc/hosts".into(),
            read_only: true
        }));
        let ops = plan(&spec(), &layout(), &[]).unwrap();
        assert!(!ops.contains(&MountOp::RemountRootReadOnly));
    }

    #[test]
    fn shm_size_and_caller_mounts() {
        let mut s = spec();
        s.shm_size = Some(128 * 1024 * 1024);
        s.tmpfs = vec![TmpfsMount {
            target: "/run/sub".into(),
            options: vec![
                "noexec".into(),
                "nosuid".into(),
                "exec".into(),
                "size=64m".into(),
            ],
        }];
        s.devices = vec![Device {
            host_path: "/dev/fuse".into(),
            container_path: "/dev/fuse".into(),
            permissions: "rwm".into(),
        }];
        let extra = [
            MountRequest::Bind {
                source: "/data".into(),
                target: "/run/sub/deep/x".into(),
                read_only: true,
            },
            MountRequest::Bind {
                source: "/v".into(),
                target: "/run".into(),
                read_only: false,
            },
            MountRequest::Bind {
                source: "/my/hosts".into(),
                target: "/etc/hosts".into(),
                read_only: false,
            },
        ];
        let ops = plan(&s, &layout(), &extra).unwrap();
        assert!(matches!(find(&ops, "/dev/shm"),
            MountOp::Mount { data: Some(d), .. } if d == "mode=1777,size=134217728"));
        let t = targets(&ops);
        let pos = |s: &str| t.iter().position(|x| x == s).unwrap();
        // Parents first; the caller's /etc/hosts replaces the managed one.
        assert!(pos("bind /run") < pos("tmpfs /run/sub"));
        assert!(pos("tmpfs /run/sub") < pos("bind /run/sub/deep/x"));
        assert!(pos("bind /dev/fuse") > pos("dev /dev/tty"));
        assert_eq!(t.iter().filter(|x| *x == "bind /etc/hosts").count(), 1);
        assert!(ops.contains(&MountOp::Bind {
            source: "/my/hosts".into(),
            target: "/etc/hosts".into(),
            read_only: false
        }));
        assert!(matches!(find(&ops, "/run/sub"),
            MountOp::Mount { flags, data: Some(d), .. }
                if *flags == MsFlags::MS_NOSUID && d == "size=64m"));
    }

    #[test]
    fn plan_errors() {
        let mut s = spec();
        s.rootfs_layers.clear();
        assert!(matches!(
            plan(&s, &layout(), &[]),
            Err(RootfsError::NoLayers)
        ));
        let mut s = spec();
        s.rootfs_layers.push("/l/a:b".into());
        assert_eq!(
            plan(&s, &layout(), &[]).unwrap_err().to_string(),
            "layer path \"/l/a:b\" cannot be passed to overlayfs: it contains ',', ':' or '\\'"
        );
        let bad = [MountRequest::Bind {
            source: "/x".into(),
            target: "data".into(),
            read_only: false,
        }];
        assert_eq!(
            plan(&spec(), &layout(), &bad).unwrap_err().to_string(),
            "invalid mount target \"data\": it must be an absolute path"
        );
    }

    #[test]
    fn many_layers_use_relative_paths_then_fail() {
        let store = "/var/lib/rcompose/layers/sha256";
        let layer = |i: usize| PathBuf::from(format!("{store}/{i:064x}"));
        let mut s = spec();
        s.rootfs_layers = (0..50).map(layer).collect();
        let ops = plan(&s, &layout(), &[]).unwrap();
        let MountOp::Overlay { data, cwd, .. } = &ops[1] else {
            panic!("no overlay: {ops:?}")
        };
        assert_eq!(cwd.as_deref(), Some(Path::new(store)));
        assert!(data.starts_with(&format!("lowerdir={:064x}:{:064x}:", 49, 48)));
        assert!(data.len() <= MAX_MOUNT_DATA);

        s.rootfs_layers = (0..80).map(layer).collect();
        let e = plan(&s, &layout(), &[]).unwrap_err();
        assert!(
            matches!(e, RootfsError::OverlayOptionsTooLong { layers: 80, .. }),
            "{e}"
        );
    }

    #[test]
    fn parse_options_splits_flags_and_data() {
        let o = |v: &[&str]| parse_options(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            o(&["ro", "nodev", "mode=1777", "size=1g", "rprivate"]),
            (
                MsFlags::MS_RDONLY | MsFlags::MS_NODEV,
                vec!["mode=1777".to_string(), "size=1g".to_string()]
            )
        );
        assert_eq!(o(&["ro", "rw"]).0, MsFlags::empty());
    }

    #[test]
    fn apply_drives_the_syscalls() {
        let mut s = spec();
        s.read_only = true;
        let ops = plan(&s, &layout(), &[]).unwrap();
        let mut sys = RecordingSyscall::default();
        sys.files.insert("/proc/kcore".into());
        sys.missing.insert("/proc/acpi".into());
        apply(Path::new("/c/merged"), &ops, &sys).unwrap();
        let calls = sys.calls();
        let root = |p: &str| Via::Root(p.into());
        let host = |p: &str| Via::Host(p.into());
        assert_eq!(
            calls[0],
            Call::MountRoot(MsFlags::MS_REC | MsFlags::MS_PRIVATE)
        );
        let mounts: Vec<&Call> = calls
            .iter()
            .filter(|c| matches!(c, Call::MountFs { .. }))
            .collect();
        assert!(matches!(mounts[0], Call::MountFs { fstype, target, .. }
            if fstype == "overlay" && *target == host("/c/merged")));
        assert!(matches!(mounts[1], Call::MountFs { fstype, target, .. }
            if fstype == "proc" && *target == root("/c/merged/proc")));
        assert!(calls.contains(&Call::Mknod {
            path: "/c/merged/dev/null".into(),
            kind: SFlag::S_IFCHR,
            mode: 0o666,
            dev: nix::sys::stat::makedev(1, 3)
        }));
        assert!(calls.contains(&Call::Symlink {
            target: "/proc/self/fd".into(),
            link: "/c/merged/dev/fd".into()
        }));
        // A masked file gets /dev/null, a masked dir an empty read-only tmpfs, a missing one
        // nothing.
        assert!(calls.contains(&Call::Bind {
            source: host("/dev/null"),
            target: root("/c/merged/proc/kcore"),
            read_only: false
        }));
        assert!(calls.contains(&Call::MountFs {
            fstype: "tmpfs".into(),
            target: root("/c/merged/proc/scsi"),
            flags: MsFlags::MS_RDONLY,
            data: None
        }));
        assert!(!calls.iter().any(|c| matches!(c,
            Call::MountFs { target: Via::Root(t), .. } | Call::Bind { target: Via::Root(t), .. }
                if t.ends_with("acpi"))));
        // Read-only paths: bound onto themselves (one fd for both ends), read-only.
        assert!(calls.contains(&Call::Bind {
            source: root("/c/merged/proc/sys"),
            target: root("/c/merged/proc/sys"),
            read_only: true
        }));
        // The managed files: host sources opened once, read-only with the rootfs.
        assert!(calls.contains(&Call::Bind {
            source: host("/c/hosts"),
            target: root("/c/merged/etc/hosts"),
            read_only: true
        }));
        // Pivot, detach the old root, then the read-only remount of the new /.
        let n = calls.len();
        assert_eq!(
            calls[n - 5..],
            [
                Call::Chdir("/c/merged".into()),
                Call::PivotRoot {
                    new_root: ".".into(),
                    put_old: ".".into()
                },
                Call::Umount2 {
                    target: ".".into(),
                    flags: MntFlags::MNT_DETACH
                },
                Call::Chdir("/".into()),
                Call::MountRoot(MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY),
            ]
        );
    }

    /// CVE-2021-30465's class: no mount may name its target (or a source inside the rootfs) by
    /// a path the kernel would resolve again. Every mount and remount of a full plan (caller
    /// binds, tmpfs, devices, masks, read-only paths, read-only rootfs) goes through a handle:
    /// targets resolved in the root, sources opened once on the host; the only path-based mount
    /// calls are on the helper's own `/`.
    #[test]
    fn every_mount_goes_through_a_resolved_handle() {
        let mut s = spec();
        s.read_only = true;
        s.tmpfs = vec![TmpfsMount {
            target: "/run/t".into(),
            options: vec!["size=1m".into()],
        }];
        s.devices = vec![Device {
            host_path: "/dev/fuse".into(),
            container_path: "/dev/fuse".into(),
            permissions: "rwm".into(),
        }];
        let extra = [
            MountRequest::Bind {
                source: "/vol/shared/_data".into(),
                target: "/shared".into(),
                read_only: false,
            },
            MountRequest::Bind {
                source: "/src".into(),
                target: "/shared/dir".into(),
                read_only: true,
            },
        ];
        let ops = plan(&s, &layout(), &extra).unwrap();
        let mut sys = RecordingSyscall {
            mknod_denied: true,
            ..Default::default()
        };
        sys.files.insert("/proc/kcore".into());
        apply(Path::new("/c/merged"), &ops, &sys).unwrap();
        let calls = sys.calls();
        let in_root = |v: &Via| matches!(v, Via::Root(p) if p.starts_with("/c/merged"));
        let mut binds = 0;
        for c in &calls {
            match c {
                Call::MountFs { fstype, target, .. } => {
                    // The overlay's mount point is the container's directory on the host.
                    assert!(
                        in_root(target) || (fstype == "overlay" && matches!(target, Via::Host(_))),
                        "{c:?}"
                    );
                }
                Call::Bind { source, target, .. } => {
                    binds += 1;
                    assert!(in_root(target), "{c:?}");
                    assert!(
                        matches!(source, Via::Host(_)) || source == target,
                        "a bind source inside the rootfs must be the target's own handle: {c:?}"
                    );
                }
                Call::MountRoot(_) | Call::Umount2 { .. } => {}
                _ => {}
            }
        }
        // Managed files, caller binds, the device, masked files, read-only paths, the standard
        // devices bound because mknod was refused.
        assert!(binds >= 3 + 2 + 1 + 1 + READONLY_PATHS.len() + 6, "{binds}");
        // A read-only bind is one call that is read-only from the start: nothing remounts it
        // by path afterwards.
        assert!(calls.contains(&Call::Bind {
            source: Via::Host("/src".into()),
            target: Via::Root("/c/merged/shared/dir".into()),
            read_only: true
        }));
        let remounts = calls
            .iter()
            .filter(|c| matches!(c, Call::MountRoot(f) if f.contains(MsFlags::MS_REMOUNT)))
            .count();
        assert_eq!(remounts, 1, "only the read-only rootfs remounts, on /");
    }

    #[test]
    fn apply_falls_back_to_binding_devices() {
        let ops = plan(&spec(), &layout(), &[]).unwrap();
        let sys = RecordingSyscall {
            mknod_denied: true,
            ..Default::default()
        };
        apply(Path::new("/r"), &ops, &sys).unwrap();
        assert!(sys.calls().contains(&Call::Bind {
            source: Via::Host("/dev/urandom".into()),
            target: Via::Root("/r/dev/urandom".into()),
            read_only: false
        }));
        assert!(sys.calls().contains(&Call::Resolve {
            root: "/r".into(),
            path: "/dev/urandom".into(),
            create: Some(NodeKind::File)
        }));
    }

    /// The real system calls, with a hostile container's move between resolving a target and
    /// mounting on it: the resolved directory is renamed away and a link to a host directory
    /// takes its name. What was resolved gets the mount; the host directory gets nothing.
    struct Swapping<'a> {
        /// Container path whose resolution triggers the swap.
        at: &'a str,
        /// The directory the link points to (outside the root).
        outside: &'a Path,
    }

    impl Syscall for Swapping<'_> {
        fn mount_root(&self, flags: MsFlags) -> io::Result<()> {
            LinuxSyscall.mount_root(flags)
        }
        fn mount_fs(
            &self,
            fstype: &str,
            target: &Handle,
            flags: MsFlags,
            data: Option<&str>,
        ) -> io::Result<()> {
            LinuxSyscall.mount_fs(fstype, target, flags, data)
        }
        fn bind(&self, source: &Handle, target: &Handle, read_only: bool) -> io::Result<()> {
            LinuxSyscall.bind(source, target, read_only)
        }
        fn umount2(&self, target: &Path, flags: MntFlags) -> io::Result<()> {
            LinuxSyscall.umount2(target, flags)
        }
        fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
            LinuxSyscall.pivot_root(new_root, put_old)
        }
        fn chdir(&self, path: &Path) -> io::Result<()> {
            LinuxSyscall.chdir(path)
        }
        fn open_host(&self, path: &Path) -> io::Result<Handle> {
            LinuxSyscall.open_host(path)
        }
        fn resolve_in(
            &self,
            root: &Path,
            path: &str,
            create: Option<NodeKind>,
        ) -> io::Result<Option<Handle>> {
            let found = LinuxSyscall.resolve_in(root, path, create)?;
            if path == self.at {
                if let Some(h) = &found {
                    fs::rename(&h.path, h.path.with_extension("moved"))?;
                    symlink(self.outside, &h.path)?;
                }
            }
            Ok(found)
        }
        fn symlink(&self, target: &str, dir: &Handle, name: &str) -> io::Result<()> {
            LinuxSyscall.symlink(target, dir, name)
        }
        fn mknod(
            &self,
            dir: &Handle,
            name: &str,
            kind: SFlag,
            mode: u32,
            dev: u64,
        ) -> io::Result<()> {
            LinuxSyscall.mknod(dir, name, kind, mode, dev)
        }
    }

    #[test]
    fn a_target_swapped_for_a_link_after_resolution_gets_the_mount_read_only() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (mount namespaces)");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (root, src, outside) = (
            t.path().join("root"),
            t.path().join("src"),
            t.path().join("host"),
        );
        let dirs = [
            root.join("shared/dir"),
            root.join("tmp"),
            src.clone(),
            outside.join("shared"),
            outside.join("tmp"),
        ];
        for d in dirs {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(src.join("MARKER"), "ro").unwrap();
        let ops = [
            MountOp::Bind {
                source: src.clone(),
                target: "/shared/dir".into(),
                read_only: true,
            },
            MountOp::Mount {
                fstype: "tmpfs".into(),
                target: "/tmp".into(),
                flags: MsFlags::empty(),
                data: None,
            },
        ];
        let (root2, outside2) = (root.clone(), outside.clone());
        // A thread of its own in a private mount namespace: nothing reaches the host's mounts.
        let seen = std::thread::spawn(move || -> Result<Vec<String>, String> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| e.to_string())?;
            LinuxSyscall
                .mount_root(MsFlags::MS_REC | MsFlags::MS_PRIVATE)
                .map_err(|e| e.to_string())?;
            for at in ["/shared/dir", "/tmp"] {
                let sys = Swapping {
                    at,
                    outside: &outside2.join(if at == "/tmp" { "tmp" } else { "shared" }),
                };
                let op = ops.iter().find(|op| match op {
                    MountOp::Bind { target, .. } | MountOp::Mount { target, .. } => target == at,
                    _ => false,
                });
                let op: Vec<MountOp> = op.into_iter().cloned().collect();
                apply(&root2, &op, &sys).map_err(|e| e.to_string())?;
            }
            let moved = root2.join("shared/dir.moved");
            let tmp = root2.join("tmp.moved");
            Ok(vec![
                // The bind is on the directory that was resolved, and read-only.
                fs::read_to_string(moved.join("MARKER")).unwrap_or_default(),
                fs::write(moved.join("probe"), "x")
                    .map_err(|e| e.raw_os_error() == Some(libc::EROFS))
                    .err()
                    .map_or("writable".into(), |rofs| format!("erofs={rofs}")),
                // The tmpfs too: a file made through it is not in the underlying directory.
                fs::write(tmp.join("t"), "x").map_or_else(|e| e.to_string(), |()| "ok".into()),
                // Nothing reached the host directories the links point to.
                ["shared", "tmp"]
                    .map(|d| fs::read_dir(outside2.join(d)).map_or(9, |d| d.count()))
                    .iter()
                    .sum::<usize>()
                    .to_string(),
            ])
        })
        .join()
        .unwrap()
        .unwrap();
        assert_eq!(seen, ["ro", "erofs=true", "ok", "0"]);
        // Out of that namespace: the mounts are gone, the directories as they were.
        assert!(!root.join("tmp.moved/t").exists());
        assert!(!src.join("probe").exists());
        assert_eq!(fs::read_dir(outside.join("shared")).unwrap().count(), 0);
    }

    /// A hostile image: links that point out of the root in every way a path can.
    fn hostile() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for d in ["etc", "dev", "usr/lib", "proc"] {
            fs::create_dir_all(r.join(d)).unwrap();
        }
        fs::write(r.join("etc/shadow"), "inside").unwrap();
        symlink("/", r.join("dev/null")).unwrap();
        symlink("/etc/shadow", r.join("proc/kcore")).unwrap();
        symlink("../../../../../../..", r.join("usr/lib/up")).unwrap();
        symlink("../usr/lib/up/etc", r.join("etc/via")).unwrap();
        symlink("loop2", r.join("loop1")).unwrap();
        symlink("loop1", r.join("loop2")).unwrap();
        symlink("/usr/lib/up/tmp/x", r.join("dangling")).unwrap();
        symlink("../run/resolv.conf", r.join("etc/resolv.conf")).unwrap();
        t
    }

    #[test]
    fn resolve_never_leaves_the_root() {
        let t = hostile();
        let r = t.path();
        let res = |p: &str| resolve_in_root(r, p).unwrap();
        assert_eq!(res("/dev/null"), r.to_path_buf());
        assert_eq!(res("/proc/kcore"), r.join("etc/shadow"));
        assert_eq!(res("/usr/lib/up"), r.to_path_buf());
        assert_eq!(res("/usr/lib/up/etc/shadow"), r.join("etc/shadow"));
        assert_eq!(res("/../../../etc"), r.join("etc"));
        assert_eq!(
            res("usr/lib/../../../x/../etc/via/shadow"),
            r.join("etc/shadow")
        );
        assert_eq!(res("/dangling"), r.join("tmp/x"));
        assert_eq!(res("/nope/../../../etc/./shadow"), r.join("etc/shadow"));
        assert_eq!(res("/etc/resolv.conf"), r.join("run/resolv.conf"));
        let e = resolve_in_root(r, "/loop1/x").unwrap_err();
        assert!(matches!(e, RootfsError::TooManyLinks { .. }), "{e}");
        let e = resolve_in_root(r, "/etc/shadow/x").unwrap_err();
        assert!(
            matches!(e, RootfsError::NotADirectory { ref component, .. } if component == "shadow"),
            "{e}"
        );
    }

    #[test]
    fn ensure_creates_inside_the_root() {
        let t = hostile();
        let r = t.path();
        // The link to the host's /etc leads to the image's /run; the file is made there.
        let p = ensure_in_root(r, "/etc/resolv.conf", NodeKind::File).unwrap();
        assert_eq!(p, r.join("run/resolv.conf"));
        assert!(p.is_file());
        let p = ensure_in_root(r, "/dangling", NodeKind::Dir).unwrap();
        assert_eq!(p, r.join("tmp/x"));
        assert!(p.is_dir());
        let p = ensure_in_root(r, "/usr/lib/up/a/../b/c", NodeKind::Dir).unwrap();
        assert_eq!(p, r.join("b/c"));
        assert!(r.join("a").is_dir() && p.is_dir());
        // Existing targets are left as they are.
        let p = ensure_in_root(r, "/dev/null", NodeKind::File).unwrap();
        assert_eq!(p, r.to_path_buf());
        let found = lookup_in_root(r, "/proc/kcore", None).unwrap().unwrap();
        assert_eq!(found.path, r.join("etc/shadow"));
        assert!(!found.is_dir);
        assert!(lookup_in_root(r, "/proc/acpi", None).unwrap().is_none());
        assert_eq!(fs::read_to_string(r.join("etc/shadow")).unwrap(), "inside");
    }
}
