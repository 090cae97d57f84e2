//! Control groups for containers, v1 and v2 behind one API.
//!
//! A container gets one cgroup, named by a relative path such as `rcompose/<project>/<container>`:
//!
//! - **v2** (the unified hierarchy, what most users have): one directory under the cgroup2 mount;
//!   the controllers are enabled in `cgroup.subtree_control` of every ancestor on the way.
//! - **v1** (and hybrid mode, as on the build machines): one directory per controller mount
//!   (`freezer`, `pids`, `memory`, `cpu`, `cpuacct`, `cpuset`, `devices`, `blkio`), each joined by
//!   the container.
//!
//! [`Resources`] carries docker's settings (`mem_limit`, `memswap_limit`, `cpus`, ...) in docker's
//! units; each controller file (`memory`, `cpu`, `cpuset`, `pids`, `freezer`) translates them into
//! the files of either version. `v1` and `v2` own the directory layout: creation, joining,
//! listing, killing and removal.

mod cpu;
mod cpuset;
mod devices;
mod freezer;
mod memory;
mod pids;
mod v1;
mod v2;

pub use devices::{
    default_rules as default_device_rules, parse_access, rule_for_node, DeviceKind, DeviceRule,
};

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// Docker's smallest memory limit and reservation (`linuxMinMemory`).
pub const MIN_MEMORY: i64 = 6 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("no cgroup hierarchy is mounted (read {0})")]
    NotMounted(PathBuf),
    #[error("invalid cgroup path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    /// A limit docker refuses; the message is docker's own, word for word.
    #[error("{0}")]
    Invalid(String),
    #[error(
        "the {controller} cgroup controller is not available under {root}, and {needed} needs it"
    )]
    ControllerMissing {
        controller: &'static str,
        root: PathBuf,
        needed: &'static str,
    },
    #[error(
        "a swap limit was requested but the kernel does not account swap ({path} is missing): \
         boot with swapaccount=1 or drop memswap_limit"
    )]
    SwapUnsupported { path: PathBuf },
    #[error("unexpected content in {path}: {content:?}")]
    Parse { path: PathBuf, content: String },
    #[error("cgroup {path} did not reach state {state} in {waited:?}")]
    Timeout {
        path: PathBuf,
        state: &'static str,
        waited: Duration,
    },
    #[error("cgroup {path} still has processes {pids:?} after killing them for {waited:?}")]
    Unkillable {
        path: PathBuf,
        pids: Vec<i32>,
        waited: Duration,
    },
}

pub type Result<T, E = CgroupError> = std::result::Result<T, E>;

/// Where the cgroup file systems are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// One mount per controller (or group of controllers) under `root`, e.g. `/sys/fs/cgroup/memory`.
    V1 { root: PathBuf },
    /// The unified hierarchy mounted at `root`.
    V2 { root: PathBuf },
}

impl Hierarchy {
    /// Finds the hierarchy this process sees, from `/proc/self/mountinfo`.
    pub fn detect() -> Result<Hierarchy> {
        let mountinfo = Path::new("/proc/self/mountinfo");
        let text = fs::read_to_string(mountinfo).map_err(io_err("read", mountinfo))?;
        Hierarchy::from_mountinfo(&text).ok_or_else(|| CgroupError::NotMounted(mountinfo.into()))
    }

    /// Chooses a hierarchy from the text of a mountinfo file.
    ///
    /// cgroup2 at `/sys/fs/cgroup` means a pure v2 system. Otherwise the v1 controller mounts win
    /// when there are any: hybrid systems also mount an empty cgroup2 (at
    /// `/sys/fs/cgroup/unified`) that holds no controllers. A lone cgroup2 mount elsewhere is
    /// used as v2.
    pub fn from_mountinfo(text: &str) -> Option<Hierarchy> {
        let mut v1_root = None;
        let mut v2_root = None;
        for line in text.lines() {
            let Some((mount_point, fs_type, super_options)) = parse_mountinfo_line(line) else {
                continue;
            };
            match fs_type {
                "cgroup2" if mount_point == Path::new("/sys/fs/cgroup") => {
                    return Some(Hierarchy::V2 { root: mount_point });
                }
                "cgroup2" => {
                    v2_root.get_or_insert(mount_point);
                }
                "cgroup" => {
                    let ours = super_options
                        .split(',')
                        .any(|option| v1::CONTROLLERS.contains(&option));
                    if let (true, Some(parent)) = (ours, mount_point.parent()) {
                        v1_root.get_or_insert_with(|| parent.to_path_buf());
                    }
                }
                _ => {}
            }
        }
        v1_root
            .map(|root| Hierarchy::V1 { root })
            .or_else(|| v2_root.map(|root| Hierarchy::V2 { root }))
    }

    pub fn root(&self) -> &Path {
        match self {
            Hierarchy::V1 { root } | Hierarchy::V2 { root } => root,
        }
    }

    pub fn is_v2(&self) -> bool {
        matches!(self, Hierarchy::V2 { .. })
    }
}

/// Returns (mount point, file system type, super options) of one mountinfo line.
fn parse_mountinfo_line(line: &str) -> Option<(PathBuf, &str, &str)> {
    let (mount_fields, fs_fields) = line.split_once(" - ")?;
    let mount_point = mount_fields.split(' ').nth(4)?;
    let mut fs_fields = fs_fields.split(' ');
    let fs_type = fs_fields.next()?;
    let super_options = fs_fields.nth(1).unwrap_or("");
    Some((
        PathBuf::from(unescape_mountinfo(mount_point)),
        fs_type,
        super_options,
    ))
}

/// Undoes the octal escapes (`\040` for a space) the kernel puts in mountinfo paths.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A container's resource limits, in docker's units and with docker's conventions.
///
/// `None` leaves a setting alone. Memory sizes are bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// `mem_limit`; 0 or negative means unlimited.
    pub memory: Option<i64>,
    /// `memswap_limit`: memory plus swap; -1 is unlimited swap, 0 is unset. When unset and
    /// `memory` is set, docker's default applies: as much swap as memory, where swap is
    /// accounted.
    pub memory_swap: Option<i64>,
    /// `mem_reservation`: the soft limit (v1) or protected amount (v2, `memory.low`).
    pub memory_reservation: Option<i64>,
    /// `mem_swappiness` (v1 only: v2 has no such knob, docker ignores it there too).
    pub memory_swappiness: Option<u64>,
    /// `oom_kill_disable` (v1 only, as docker).
    pub oom_kill_disable: bool,
    /// CFS quota in microseconds per period; 0 or negative means unlimited.
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds (docker's default 100000 when only the quota is given).
    pub cpu_period: Option<u64>,
    /// `cpu_shares` (v1 weight, 1024 by default); 0 is unset.
    pub cpu_shares: Option<u64>,
    /// `cpuset`: a CPU list such as `0-2,4`.
    pub cpuset_cpus: Option<String>,
    /// Memory nodes, same syntax.
    pub cpuset_mems: Option<String>,
    /// `pids_limit`; 0 or negative means unlimited.
    pub pids_limit: Option<i64>,
    /// The devices allowed (everything else is denied); `None` leaves the parent's. Set once,
    /// at creation: v2 adds a program per call.
    pub devices: Option<Vec<DeviceRule>>,
}

impl Resources {
    /// Refuses what docker refuses, with docker's messages.
    pub fn validate(&self) -> Result<()> {
        let invalid = |message: &str| Err(CgroupError::Invalid(message.to_string()));
        let memory = self.memory.filter(|&m| m > 0);
        if memory.is_some_and(|m| m < MIN_MEMORY) {
            return invalid("Minimum memory limit allowed is 6MB");
        }
        match self.memory_swap {
            Some(swap) if swap > 0 => match memory {
                None => return invalid(
                    "You should always set the Memory limit when using Memoryswap limit, see usage",
                ),
                Some(m) if swap < m => {
                    return invalid(
                        "Minimum memoryswap limit should be larger than memory limit, see usage",
                    )
                }
                Some(_) => {}
            },
            Some(swap) if swap < -1 => {
                return Err(CgroupError::Invalid(format!(
                    "invalid memory swap limit {swap}: use -1 for unlimited swap"
                )))
            }
            _ => {}
        }
        if let Some(reservation) = self.memory_reservation.filter(|&r| r > 0) {
            if memory.is_some_and(|m| m < reservation) {
                return invalid(
                    "Minimum memory limit can not be less than memory reservation limit, see usage",
                );
            }
            if reservation < MIN_MEMORY {
                return invalid("Minimum memory reservation allowed is 6MB");
            }
        }
        if self
            .cpu_period
            .is_some_and(|p| !(1000..=1_000_000).contains(&p))
        {
            return invalid(
                "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
            );
        }
        if self.cpu_quota.is_some_and(|q| q > 0 && q < 1000) {
            return invalid("CPU cfs quota can not be less than 1ms (i.e. 1000)");
        }
        if let Some(cpus) = &self.cpuset_cpus {
            if !cpuset::is_valid_list(cpus) {
                return Err(CgroupError::Invalid(format!(
                    "Invalid value {cpus} for cpuset cpus"
                )));
            }
        }
        if let Some(mems) = &self.cpuset_mems {
            if !cpuset::is_valid_list(mems) {
                return Err(CgroupError::Invalid(format!(
                    "Invalid value {mems} for cpuset mems"
                )));
            }
        }
        Ok(())
    }

    fn needs_memory(&self) -> bool {
        self.memory.is_some()
            || self.memory_swap.is_some()
            || self.memory_reservation.is_some()
            || self.memory_swappiness.is_some()
            || self.oom_kill_disable
    }

    fn needs_cpu(&self) -> bool {
        self.cpu_quota.is_some() || self.cpu_period.is_some() || self.cpu_shares.is_some()
    }

    fn needs_cpuset(&self) -> bool {
        self.cpuset_cpus.is_some() || self.cpuset_mems.is_some()
    }
}

/// Usage figures for `ps`/`top`/`stats`; `None` where the controller is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub memory_usage: Option<u64>,
    /// `None` when unlimited.
    pub memory_limit: Option<u64>,
    /// Inactive page cache, which `docker stats` takes off the usage.
    pub memory_inactive_file: Option<u64>,
    pub cpu_usage_ns: Option<u64>,
    pub pids_current: Option<u64>,
    /// Bytes read from and written to block devices.
    pub io_read: Option<u64>,
    pub io_write: Option<u64>,
}

/// One container's cgroup: one directory (v2) or one per controller (v1).
#[derive(Debug)]
pub struct Cgroup {
    hierarchy: Hierarchy,
    path: PathBuf,
    layout: Layout,
}

#[derive(Debug)]
enum Layout {
    /// (controller, directory of this cgroup in that controller's mount). Co-mounted
    /// controllers share a directory.
    V1(Vec<(&'static str, PathBuf)>),
    V2(PathBuf),
}

/// Open `cgroup.procs` files, to join the cgroup from a forked child before `exec`.
#[derive(Debug)]
pub struct ProcsFiles {
    files: Vec<OwnedFd>,
}

impl ProcsFiles {
    /// Moves the calling process into the cgroup (by writing `0`).
    ///
    /// Only `write(2)`: no allocation, no locks, so it is safe between `fork` and `exec`
    /// (`CommandExt::pre_exec`).
    pub fn join_self(&self) -> io::Result<()> {
        for file in &self.files {
            // SAFETY: writes one byte from a static buffer to an fd this struct owns.
            let written = unsafe { libc::write(file.as_raw_fd(), b"0".as_ptr().cast(), 1) };
            if written != 1 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// A v1 cgroup entered by the calling thread alone, to fork a process that starts in it
/// ([`Cgroup::thread_join`]).
///
/// Moving a whole process (`cgroup.procs`) takes the kernel's global threadgroup lock for
/// writing, which waits for an RCU grace period: ~10 ms here, the biggest single cost of
/// starting a container. A thread that writes `0` to `tasks` moves only itself, and the kernel
/// skips that lock; a process it then forks inherits the cgroup. v1 has no `CLONE_INTO_CGROUP`:
/// this is the way to the same result.
///
/// For a fresh cgroup only (a container's first process): while inside, the thread is frozen
/// with the cgroup and its process is listed as a member ([`Cgroup::pids`] leaves it out). An
/// `exec` into a running container moves its process instead.
#[derive(Debug, Clone)]
pub struct ThreadJoin {
    /// (a controller of the mount, the mount's directory, this cgroup's `tasks` file there).
    hops: Vec<(&'static str, PathBuf, PathBuf)>,
}

/// The calling thread inside a [`ThreadJoin`]'s cgroup; dropping it moves the thread back.
#[derive(Debug)]
pub struct ThreadInside {
    /// The `tasks` files of the cgroups the thread came from.
    homes: Vec<PathBuf>,
}

impl ThreadJoin {
    /// Moves the calling thread into the cgroup. On failure it is back where it was.
    pub fn enter(&self) -> io::Result<ThreadInside> {
        let own_path = Path::new("/proc/thread-self/cgroup");
        let own = fs::read_to_string(own_path)?;
        let mut homes = Vec::with_capacity(self.hops.len());
        for (controller, base, _) in &self.hops {
            let path = thread_cgroup(&own, controller).ok_or_else(|| {
                io::Error::other(format!(
                    "{} has no {controller} hierarchy",
                    own_path.display()
                ))
            })?;
            homes.push(base.join(path.trim_start_matches('/')).join("tasks"));
        }
        let mut inside = ThreadInside { homes: Vec::new() };
        for ((_, _, tasks), home) in self.hops.iter().zip(homes) {
            fs::write(tasks, "0")
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", tasks.display())))?;
            inside.homes.push(home);
        }
        Ok(inside)
    }
}

impl ThreadInside {
    /// Moves the thread back (also done on drop, ignoring errors).
    pub fn leave(mut self) -> io::Result<()> {
        self.leave_all()
    }

    fn leave_all(&mut self) -> io::Result<()> {
        let mut result = Ok(());
        for home in self.homes.drain(..) {
            if let Err(e) = fs::write(&home, "0") {
                result = Err(io::Error::new(e.kind(), format!("{}: {e}", home.display())));
            }
        }
        result
    }
}

impl Drop for ThreadInside {
    fn drop(&mut self) {
        let _ = self.leave_all();
    }
}

/// The path of `controller`'s cgroup in the text of a `/proc/<pid>/cgroup` file.
fn thread_cgroup<'a>(text: &'a str, controller: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        controllers
            .split(',')
            .any(|c| c == controller)
            .then_some(path)
    })
}

impl Cgroup {
    /// Creates the cgroup (and missing ancestors), then applies `resources`.
    pub fn create(hierarchy: &Hierarchy, path: &str, resources: &Resources) -> Result<Cgroup> {
        resources.validate()?;
        let path = relative_path(path)?;
        // A concurrent `remove` of a sibling may delete an ancestor we just created: try again.
        let mut attempts = 0;
        let layout = loop {
            let created = match hierarchy {
                Hierarchy::V1 { root } => v1::create(root, &path, resources),
                Hierarchy::V2 { root } => v2::create(root, &path, resources),
            };
            match created {
                Err(error) if attempts < 3 && is_not_found(&error) => attempts += 1,
                other => break other?,
            }
        };
        let cgroup = Cgroup {
            hierarchy: hierarchy.clone(),
            path,
            layout,
        };
        if let Err(error) = cgroup.apply(resources) {
            // Best effort: the limits failed, the directories must not stay behind.
            let _ = cgroup.remove();
            return Err(error);
        }
        Ok(cgroup)
    }

    /// Opens an existing cgroup (one made by [`Cgroup::create`], possibly by another process).
    pub fn open(hierarchy: &Hierarchy, path: &str) -> Result<Cgroup> {
        let path = relative_path(path)?;
        let layout = match hierarchy {
            Hierarchy::V1 { root } => v1::open(root, &path)?,
            Hierarchy::V2 { root } => v2::open(root, &path)?,
        };
        Ok(Cgroup {
            hierarchy: hierarchy.clone(),
            path,
            layout,
        })
    }

    /// Writes the limits (again); fields left `None` are not touched.
    pub fn apply(&self, resources: &Resources) -> Result<()> {
        resources.validate()?;
        match &self.layout {
            Layout::V1(dirs) => {
                let dir = |name| v1::dir_of(dirs, name);
                if let Some(dir) = dir("memory") {
                    memory::apply_v1(dir, resources)?;
                }
                if let Some(dir) = dir("cpu") {
                    cpu::apply_v1(dir, resources)?;
                }
                if let Some(dir) = dir("cpuset") {
                    cpuset::apply_v1(dir, resources)?;
                }
                if let Some(dir) = dir("pids") {
                    pids::apply(dir, resources)?;
                }
                if let (Some(dir), Some(rules)) = (dir("devices"), &resources.devices) {
                    devices::apply_v1(dir, rules)?;
                }
            }
            Layout::V2(dir) => {
                memory::apply_v2(dir, resources)?;
                cpu::apply_v2(dir, resources)?;
                cpuset::apply_v2(dir, resources)?;
                pids::apply(dir, resources)?;
                if let Some(rules) = &resources.devices {
                    devices::apply_v2(dir, rules)?;
                }
            }
        }
        Ok(())
    }

    pub fn hierarchy(&self) -> &Hierarchy {
        &self.hierarchy
    }

    /// The path relative to the hierarchy root, as given to [`Cgroup::create`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every directory of this cgroup (one per distinct v1 mount, one on v2).
    pub fn dirs(&self) -> Vec<PathBuf> {
        match &self.layout {
            Layout::V1(dirs) => v1::unique_dirs(dirs),
            Layout::V2(dir) => vec![dir.clone()],
        }
    }

    /// The `cgroup.procs` files a process must be written to, to join the cgroup.
    pub fn procs_paths(&self) -> Vec<PathBuf> {
        self.dirs()
            .into_iter()
            .map(|dir| dir.join("cgroup.procs"))
            .collect()
    }

    /// Opens the `cgroup.procs` files, before forking, for [`ProcsFiles::join_self`].
    pub fn open_procs(&self) -> Result<ProcsFiles> {
        let files = self
            .procs_paths()
            .into_iter()
            .map(|path| {
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map(OwnedFd::from)
                    .map_err(io_err("open", &path))
            })
            .collect::<Result<_>>()?;
        Ok(ProcsFiles { files })
    }

    /// v1: the way for a thread to enter this cgroup and fork into it ([`ThreadJoin`]);
    /// `None` on v2, where `clone3(CLONE_INTO_CGROUP)` does it ([`Cgroup::dir_fd`]).
    pub fn thread_join(&self) -> Option<ThreadJoin> {
        let Layout::V1(dirs) = &self.layout else {
            return None;
        };
        let depth = self.path.components().count();
        let mut hops: Vec<(&'static str, PathBuf, PathBuf)> = Vec::new();
        for (controller, dir) in dirs {
            if hops
                .iter()
                .any(|(_, _, tasks)| tasks.parent() == Some(dir.as_path()))
            {
                continue;
            }
            if let Some(base) = dir.ancestors().nth(depth) {
                hops.push((controller, base.to_path_buf(), dir.join("tasks")));
            }
        }
        Some(ThreadJoin { hops })
    }

    /// The v2 directory, opened for `clone3(CLONE_INTO_CGROUP)`; `None` on v1, which has no
    /// such thing (join with [`Cgroup::open_procs`] or [`Cgroup::add_pid`] instead).
    pub fn dir_fd(&self) -> Result<Option<OwnedFd>> {
        let Layout::V2(dir) = &self.layout else {
            return Ok(None);
        };
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(dir)
            .map_err(io_err("open", dir))?;
        Ok(Some(OwnedFd::from(file)))
    }

    /// Moves a process (all its threads) into the cgroup.
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        for procs in self.procs_paths() {
            write_file(&procs, &pid.to_string())?;
        }
        Ok(())
    }

    /// The processes in the cgroup and its descendants, sorted.
    ///
    /// Never this process: one of its threads is listed for the moment it spends in a v1
    /// cgroup to fork the container's first process ([`ThreadJoin`]), and must not be killed
    /// with the container (a `down` racing the start) or shown as one of its processes.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut pids = Vec::new();
        collect_pids(self.main_dir(), &mut pids)?;
        let own = std::process::id() as i32;
        pids.retain(|&pid| pid != own);
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Freezes every process (`pause`) and waits until they are.
    pub fn freeze(&self) -> Result<()> {
        match &self.layout {
            Layout::V1(dirs) => freezer::freeze_v1(self.freezer_v1(dirs, "pause")?),
            Layout::V2(dir) => freezer::freeze_v2(dir),
        }
    }

    /// Thaws the processes (`unpause`).
    pub fn thaw(&self) -> Result<()> {
        match &self.layout {
            Layout::V1(dirs) => freezer::thaw_v1(self.freezer_v1(dirs, "unpause")?),
            Layout::V2(dir) => freezer::thaw_v2(dir),
        }
    }

    pub fn is_frozen(&self) -> Result<bool> {
        match &self.layout {
            Layout::V1(dirs) => freezer::is_frozen_v1(self.freezer_v1(dirs, "pause")?),
            Layout::V2(dir) => freezer::is_frozen_v2(dir),
        }
    }

    /// SIGKILLs every process in the cgroup and waits (boundedly) until it is empty.
    ///
    /// v2 with `cgroup.kill` (Linux 5.14) kills atomically. Otherwise the cgroup is frozen so
    /// nothing can fork while its members are killed, then thawed so the kills land; repeated
    /// until no process is left.
    pub fn kill_all(&self) -> Result<()> {
        if let Layout::V2(dir) = &self.layout {
            if v2::kill(dir)? {
                return self.wait_empty(Duration::from_secs(5));
            }
        }
        let freezer = match &self.layout {
            Layout::V1(dirs) => v1::dir_of(dirs, "freezer").map(Path::to_path_buf),
            Layout::V2(dir) => Some(dir.clone()),
        };
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        while started.elapsed() < KILL_BOUND {
            if self.pids()?.is_empty() {
                return Ok(());
            }
            let frozen = match (&self.layout, &freezer) {
                (Layout::V1(_), Some(dir)) => freezer::freeze_v1(dir).is_ok(),
                (Layout::V2(_), Some(dir)) => freezer::freeze_v2(dir).is_ok(),
                _ => false,
            };
            for pid in self.pids()? {
                // SAFETY: kill(2) with a pid read from cgroup.procs; ESRCH (gone) is fine.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            if frozen {
                match (&self.layout, &freezer) {
                    (Layout::V1(_), Some(dir)) => freezer::thaw_v1(dir)?,
                    (Layout::V2(_), Some(dir)) => freezer::thaw_v2(dir)?,
                    _ => {}
                }
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        self.wait_empty(Duration::ZERO)
    }

    /// Whether the kernel OOM-killed a process of this cgroup.
    pub fn oom_killed(&self) -> Result<bool> {
        match &self.layout {
            Layout::V1(dirs) => match v1::dir_of(dirs, "memory") {
                Some(dir) => memory::oom_killed_v1(dir),
                None => Ok(false),
            },
            Layout::V2(dir) => memory::oom_killed_v2(dir),
        }
    }

    /// Current memory use in bytes (page cache included, as `docker stats` reads it).
    pub fn memory_usage(&self) -> Result<Option<u64>> {
        match &self.layout {
            Layout::V1(dirs) => v1::dir_of(dirs, "memory").map_or(Ok(None), memory::usage_v1),
            Layout::V2(dir) => memory::usage_v2(dir),
        }
    }

    pub fn stats(&self) -> Result<Stats> {
        let stats = match &self.layout {
            Layout::V1(dirs) => {
                let memory = v1::dir_of(dirs, "memory");
                let (io_read, io_write) =
                    v1::dir_of(dirs, "blkio").map_or(Ok((None, None)), io_bytes_v1)?;
                Stats {
                    memory_usage: memory.map_or(Ok(None), memory::usage_v1)?,
                    memory_limit: memory.map_or(Ok(None), memory::limit_v1)?,
                    memory_inactive_file: memory
                        .map_or(Ok(None), |d| memory::stat(d, "total_inactive_file"))?,
                    cpu_usage_ns: v1::dir_of(dirs, "cpuacct").map_or(Ok(None), cpu::usage_v1)?,
                    pids_current: v1::dir_of(dirs, "pids").map_or(Ok(None), pids::current)?,
                    io_read,
                    io_write,
                }
            }
            Layout::V2(dir) => {
                let (io_read, io_write) = io_bytes_v2(dir)?;
                Stats {
                    memory_usage: memory::usage_v2(dir)?,
                    memory_limit: memory::limit_v2(dir)?,
                    memory_inactive_file: memory::stat(dir, "inactive_file")?,
                    cpu_usage_ns: cpu::usage_v2(dir)?,
                    pids_current: pids::current(dir)?,
                    io_read,
                    io_write,
                }
            }
        };
        Ok(stats)
    }

    /// Removes the cgroup everywhere: its directories (descendants first), then the ancestors
    /// along its path that nothing else uses any more. Retries briefly while exiting processes
    /// drain; kill them first ([`Cgroup::kill_all`]).
    pub fn remove(self) -> Result<()> {
        let bases: Vec<PathBuf> = match &self.layout {
            Layout::V1(dirs) => v1::unique_bases(dirs, &self.path),
            Layout::V2(_) => vec![self.hierarchy.root().to_path_buf()],
        };
        let mut first_error = None;
        for base in bases {
            let leaf = base.join(&self.path);
            if let Err(error) = remove_tree(&leaf) {
                first_error.get_or_insert(error);
                continue;
            }
            // Ancestors shared with other containers are busy (they have children): stop there.
            for ancestor in self.path.ancestors().skip(1) {
                if ancestor.as_os_str().is_empty() {
                    break;
                }
                if !rmdir_if_unused(&base.join(ancestor)) {
                    break;
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The directory whose `cgroup.procs` lists the members.
    fn main_dir(&self) -> &Path {
        match &self.layout {
            Layout::V1(dirs) => v1::main_dir(dirs),
            Layout::V2(dir) => dir,
        }
    }

    fn freezer_v1<'a>(
        &self,
        dirs: &'a [(&'static str, PathBuf)],
        needed: &'static str,
    ) -> Result<&'a Path> {
        v1::dir_of(dirs, "freezer").ok_or_else(|| CgroupError::ControllerMissing {
            controller: "freezer",
            root: self.hierarchy.root().to_path_buf(),
            needed,
        })
    }

    fn wait_empty(&self, bound: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            let pids = self.pids()?;
            if pids.is_empty() {
                return Ok(());
            }
            if started.elapsed() >= bound {
                return Err(CgroupError::Unkillable {
                    path: self.main_dir().to_path_buf(),
                    pids,
                    waited: started.elapsed(),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// How long `kill_all` keeps killing before giving up.
const KILL_BOUND: Duration = Duration::from_secs(5);

/// How long `remove` waits for exiting processes to leave a directory.
const REMOVE_BOUND: Duration = Duration::from_secs(2);

/// Checks a cgroup path: relative components only, no `..` that could climb out of the root.
fn relative_path(path: &str) -> Result<PathBuf> {
    let invalid = |reason| CgroupError::InvalidPath {
        path: path.to_string(),
        reason,
    };
    let trimmed = path.trim_start_matches('/');
    if trimmed.is_empty() {
        return Err(invalid("it names the root of the hierarchy"));
    }
    let mut out = PathBuf::new();
    for component in Path::new(trimmed).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return Err(invalid("it must not contain `..`")),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(invalid("it names the root of the hierarchy"));
    }
    Ok(out)
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn is_not_found(error: &CgroupError) -> bool {
    match error {
        CgroupError::Io { source, .. } | CgroupError::Write { source, .. } => {
            source.kind() == io::ErrorKind::NotFound
        }
        _ => false,
    }
}

/// Writes a cgroup file in one `write(2)`, without creating it: interface files exist or the
/// kernel does not support the setting.
fn write_file(path: &Path, value: &str) -> Result<()> {
    let write_err = |source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    };
    // O_TRUNC is ignored by cgroupfs (as for `echo > file`) and keeps test doubles honest.
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(write_err)?;
    file.write_all(value.as_bytes()).map_err(write_err)
}

/// Creates one cgroup directory; an existing one (a shared ancestor) is fine.
fn make_dir(dir: &Path) -> Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(io_err("create", dir)(error)),
    }
}

fn read_file(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(io_err("read", path))
}

/// Reads a file that may legitimately be absent (older kernels, disabled features).
fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_err("read", path)(error)),
    }
}

fn parse_u64(path: &Path, text: &str) -> Result<u64> {
    text.trim().parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        content: text.to_string(),
    })
}

/// The value of `key` in a flat-keyed file (`memory.events`, `memory.oom_control`, `cpu.stat`).
fn keyed_value(path: &Path, text: &str, key: &str) -> Result<Option<u64>> {
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(' ') {
            if k == key {
                return parse_u64(path, v).map(Some);
            }
        }
    }
    Ok(None)
}

/// v1 `blkio.throttle.io_service_bytes_recursive`: `MAJ:MIN Read|Write|... BYTES` lines.
fn io_bytes_v1(dir: &Path) -> Result<(Option<u64>, Option<u64>)> {
    let path = dir.join("blkio.throttle.io_service_bytes_recursive");
    let Some(text) = read_optional(&path)? else {
        return Ok((None, None));
    };
    let (mut read, mut write) = (0u64, 0u64);
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [_, op, bytes] = fields[..] {
            let bytes = parse_u64(&path, bytes)?;
            match op {
                "Read" => read += bytes,
                "Write" => write += bytes,
                _ => {}
            }
        }
    }
    Ok((Some(read), Some(write)))
}

/// v2 `io.stat`: `MAJ:MIN rbytes=N wbytes=N rios=N ...` lines.
fn io_bytes_v2(dir: &Path) -> Result<(Option<u64>, Option<u64>)> {
    let path = dir.join("io.stat");
    let Some(text) = read_optional(&path)? else {
        return Ok((None, None));
    };
    let (mut read, mut write) = (0u64, 0u64);
    for field in text.split_whitespace() {
        if let Some(v) = field.strip_prefix("rbytes=") {
            read += parse_u64(&path, v)?;
        } else if let Some(v) = field.strip_prefix("wbytes=") {
            write += parse_u64(&path, v)?;
        }
    }
    Ok((Some(read), Some(write)))
}

/// Child cgroups of a directory (a container may make its own below its cgroup).
fn child_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_err("list", dir)(error)),
    };
    let mut children = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list", dir))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            children.push(entry.path());
        }
    }
    Ok(children)
}

fn collect_pids(dir: &Path, pids: &mut Vec<i32>) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    let Some(text) = read_optional(&procs)? else {
        return Ok(());
    };
    for line in text.lines().filter(|line| !line.is_empty()) {
        pids.push(line.trim().parse().map_err(|_| CgroupError::Parse {
            path: procs.clone(),
            content: line.to_string(),
        })?);
    }
    for child in child_dirs(dir)? {
        collect_pids(&child, pids)?;
    }
    Ok(())
}

/// Removes a cgroup directory and its descendants, leaf first, retrying while busy.
fn remove_tree(dir: &Path) -> Result<()> {
    for child in child_dirs(dir)? {
        remove_tree(&child)?;
    }
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            // EBUSY: exiting processes not yet gone.
            Err(error) if error.raw_os_error() == Some(libc::EBUSY) => {
                if started.elapsed() >= REMOVE_BOUND {
                    return Err(io_err("remove", dir)(error));
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(error) => return Err(io_err("remove", dir)(error)),
        }
    }
}

/// Removes an ancestor directory unless it still has children or processes; true when it is
/// gone (or was already).
fn rmdir_if_unused(dir: &Path) -> bool {
    match fs::remove_dir(dir) {
        Ok(()) => true,
        Err(error) => error.kind() == io::ErrorKind::NotFound,
    }
}

#[cfg(test)]
mod tests;
