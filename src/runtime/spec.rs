//! The container spec: what one replica of a service runs, derived from the service and its
//! image with the Docker Engine's semantics. Pure logic apart from reading `/etc/passwd` and
//! `/etc/group` out of the image's unpacked layers (never following a link out of them).
//!
//! Docker splits this work between Compose (service → API request), the engine (merging the
//! image config, defaults, validation) and runc (user lookup, `HOME`). [`build`] does all three;
//! the comments name the engine rule each step mirrors.

use super::caps::CapSet;
use super::cgroups::DeviceRule;
use std::collections::VecDeque;
use std::ffi::CString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use sha2::{Digest, Sha256};

use crate::compose::model::{Project, ServiceConfig, UlimitsConfig};
use crate::image::config::RuntimeConfig;

/// The engine's default `PATH` for Linux containers (`oci.DefaultPathEnv`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The engine's stop timeout when neither the service nor the caller sets one.
pub const DEFAULT_STOP_GRACE_PERIOD: Duration = Duration::from_secs(10);
/// `/dev/shm`'s size when `shm_size` is unset (the engine's default).
pub const DEFAULT_SHM_SIZE: u64 = 64 * 1024 * 1024;
/// CFS period used to turn `cpus` into a quota (the engine's 100 ms).
pub const CPU_PERIOD: u64 = 100_000;
/// The engine's smallest memory limit and reservation (`linuxMinMemory`).
pub const MIN_MEMORY: u64 = 6 * 1024 * 1024;
/// `RLIM_INFINITY`.
pub const RLIM_INFINITY: u64 = u64::MAX;

/// Resource names accepted in `ulimits` (go-units' table) with their `RLIMIT_*` numbers.
pub const ULIMITS: [(&str, i32); 15] = [
    ("core", libc::RLIMIT_CORE as i32),
    ("cpu", libc::RLIMIT_CPU as i32),
    ("data", libc::RLIMIT_DATA as i32),
    ("fsize", libc::RLIMIT_FSIZE as i32),
    ("locks", libc::RLIMIT_LOCKS as i32),
    ("memlock", libc::RLIMIT_MEMLOCK as i32),
    ("msgqueue", libc::RLIMIT_MSGQUEUE as i32),
    ("nice", libc::RLIMIT_NICE as i32),
    ("nofile", libc::RLIMIT_NOFILE as i32),
    ("nproc", libc::RLIMIT_NPROC as i32),
    ("rss", libc::RLIMIT_RSS as i32),
    ("rtprio", libc::RLIMIT_RTPRIO as i32),
    ("rttime", libc::RLIMIT_RTTIME as i32),
    ("sigpending", libc::RLIMIT_SIGPENDING as i32),
    ("stack", libc::RLIMIT_STACK as i32),
];

const SIGNALS: [(&str, i32); 31] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
];
const SIGRTMIN: i32 = 34;
const SIGRTMAX: i32 = 64;

/// runc's bound on uids and gids.
const MAX_ID: u64 = i32::MAX as u64;
/// Larger `/etc/passwd` or `/etc/group` files are refused rather than read into memory.
const MAX_ID_FILE: u64 = 16 * 1024 * 1024;
/// Symlinks followed while resolving one path in the image (the kernel's limit).
const MAX_SYMLINKS: u32 = 40;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("service {service:?}: {error}")]
    Service {
        service: String,
        #[source]
        error: Box<SpecError>,
    },
    #[error(
        "no command specified: neither the service nor the image sets an entrypoint or a command"
    )]
    NoCommand,
    #[error("working_dir {0:?} is invalid: it must be an absolute path")]
    RelativeWorkingDir(String),
    #[error("user {0:?} is invalid: expected USER, UID, USER:GROUP or UID:GID")]
    UserSyntax(String),
    #[error("unable to find user {0}: no matching entries in the image's /etc/passwd")]
    UnknownUser(String),
    #[error("unable to find group {0}: no matching entries in the image's /etc/group")]
    UnknownGroup(String),
    #[error("group_add: unable to find group {0}: no matching entries in the image's /etc/group")]
    UnknownAdditionalGroup(String),
    #[error("{what} {value} is out of range: uids and gids go from 0 to 2147483647")]
    IdRange { what: &'static str, value: String },
    #[error("cannot read {path} in the image (layer {layer}): {source}")]
    ReadImageFile {
        path: String,
        layer: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} in the image is larger than 16 MiB")]
    ImageFileTooLarge { path: String },
    #[error("cannot read {path} in the container: {source}")]
    ReadContainerFile {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("too many levels of symbolic links resolving {0} in the image")]
    SymlinkLoop(String),
    #[error("invalid stop_signal {0:?}: expected a signal name (SIGTERM, TERM, RTMIN+1) or a number from 1 to 64")]
    Signal(String),
    #[error("invalid ulimit name {0:?}: expected one of core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack")]
    UlimitName(String),
    #[error("ulimits.{name}: {value} is invalid: limits are non-negative (-1 means unlimited)")]
    UlimitValue { name: String, value: i64 },
    #[error("ulimits.{name}: the soft limit {soft} is above the hard limit {hard}")]
    UlimitSoftAboveHard { name: String, soft: u64, hard: u64 },
    #[error("ulimits.{name}: the hard limit {hard} is above rcompose's own hard limit {host}; raising a hard limit needs CAP_SYS_RESOURCE, which this process lacks: lower the limit or start rcompose with a higher one")]
    UlimitAboveHost {
        name: String,
        hard: String,
        host: String,
    },
    #[error("{0}")]
    Capability(String),
    #[error("invalid security_opt {0:?}: expected KEY=VALUE (label, apparmor, seccomp, no-new-privileges, systempaths)")]
    SecurityOpt(String),
    #[error("invalid {key} {value:?}: expected {expected}")]
    Namespace {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("conflicting options: hostname and {0}")]
    HostnameConflict(&'static str),
    #[error("can't set distinct values on '{0}' and '{1}'")]
    Distinct(&'static str, &'static str),
    #[error("{what} {value} is below the minimum of 6 MiB")]
    MemoryTooSmall { what: &'static str, value: u64 },
    #[error("{0} must not be negative")]
    Negative(&'static str),
    #[error("memswap_limit needs mem_limit: a swap limit without a memory limit is refused")]
    SwapWithoutMemory,
    #[error("memswap_limit {swap} is below mem_limit {memory}: it counts memory plus swap")]
    SwapBelowMemory { swap: u64, memory: u64 },
    #[error("mem_reservation {reservation} is above mem_limit {memory}")]
    ReservationAboveLimit { reservation: u64, memory: u64 },
    #[error("cpus {cpus}: the range of CPUs is from 0.01 to {host}.00, as there are only {host} CPUs available")]
    CpuRange { cpus: f32, host: u32 },
    #[error("conflicting options: cpus and cpu_period/cpu_quota cannot both be set")]
    CpusConflict,
    #[error("invalid cpuset {value:?}: {reason}")]
    Cpuset { value: String, reason: String },
    #[error("oom_score_adj {0} is out of range: expected -1000 to 1000")]
    OomScoreAdj(i64),
    #[error("mem_swappiness {0} is out of range: expected 0 to 100")]
    Swappiness(i64),
    #[error("invalid tmpfs target {0:?}: it must be an absolute path")]
    TmpfsTarget(String),
    #[error("invalid device {source_path:?}:{target:?}:{permissions:?}: {reason}")]
    Device {
        source_path: String,
        target: String,
        permissions: String,
        reason: &'static str,
    },
    #[error("sysctl {name:?} is not allowed: {reason}")]
    Sysctl { name: String, reason: &'static str },
    #[error("invalid device_cgroup_rules entry {rule:?}: {reason}")]
    DeviceRule { rule: String, reason: String },
}

/// What the spec needs to know about the host, gathered once so [`build`] stays testable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLimits {
    /// This process's `(soft, hard)` resource limits by `ulimits` name; missing = unknown.
    pub rlimits: IndexMap<String, (u64, u64)>,
    /// Online CPUs.
    pub cpus: u32,
    /// The host's hostname: the container's when it shares the host's UTS namespace.
    pub hostname: String,
}

impl HostLimits {
    /// Reads the current process's limits, CPU count and hostname.
    pub fn current() -> HostLimits {
        let mut rlimits = IndexMap::new();
        for (name, resource) in ULIMITS {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes one rlimit struct we own.
            if unsafe { libc::getrlimit(resource as _, &mut lim) } == 0 {
                rlimits.insert(name.to_string(), (lim.rlim_cur, lim.rlim_max));
            }
        }
        let cpus = std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .unwrap_or(1);
        let mut buf = [0u8; 256];
        // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer.
        let hostname = if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
            let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
            String::from_utf8_lossy(&buf[..end]).into_owned()
        } else {
            String::new()
        };
        HostLimits {
            rlimits,
            cpus,
            hostname,
        }
    }
}

/// The process identity inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the user's `/etc/group` memberships (when no group was given),
    /// then `group_add`.
    pub additional_gids: Vec<u32>,
    /// The passwd entry's home; `None` without an entry (then `HOME=/`).
    pub home: Option<String>,
    /// The passwd entry's name, when there is one.
    pub name: Option<String>,
}

/// A signal by number, with its canonical name (`SIGTERM`, `SIGRTMIN+2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub number: i32,
    pub name: String,
}

impl Signal {
    /// Parses a name (`SIGTERM`, `term`, `RTMIN+1`) or a number, as docker's `ParseSignal`.
    pub fn parse(raw: &str) -> Result<Signal, SpecError> {
        let bad = || SpecError::Signal(raw.to_string());
        if let Ok(n) = raw.parse::<i32>() {
            return Signal::from_number(n).ok_or_else(bad);
        }
        let upper = raw.to_ascii_uppercase();
        let short = upper.strip_prefix("SIG").unwrap_or(&upper);
        let number = if let Some((_, n)) = SIGNALS.iter().find(|(name, _)| *name == short) {
            *n
        } else {
            match short {
                "IOT" => 6,
                "POLL" => 29,
                "RTMIN" => SIGRTMIN,
                "RTMAX" => SIGRTMAX,
                _ => {
                    let offset = |s: &str| s.parse::<i32>().ok().filter(|n| (1..=30).contains(n));
                    if let Some(n) = short.strip_prefix("RTMIN+").and_then(offset) {
                        SIGRTMIN + n
                    } else if let Some(n) = short.strip_prefix("RTMAX-").and_then(offset) {
                        SIGRTMAX - n
                    } else {
                        return Err(bad());
                    }
                }
            }
        };
        Signal::from_number(number).ok_or_else(bad)
    }

    fn from_number(n: i32) -> Option<Signal> {
        let name = if let Some((name, _)) = SIGNALS.iter().find(|(_, num)| *num == n) {
            format!("SIG{name}")
        } else if (SIGRTMIN..=SIGRTMAX).contains(&n) {
            match n - SIGRTMIN {
                0 => "SIGRTMIN".to_string(),
                30 => "SIGRTMAX".to_string(),
                k if k <= 15 => format!("SIGRTMIN+{k}"),
                k => format!("SIGRTMAX-{}", 30 - k),
            }
        } else if (1..=SIGRTMAX).contains(&n) {
            // 32 and 33 are glibc's own; valid for kill(2) all the same.
            n.to_string()
        } else {
            return None;
        };
        Some(Signal { number: n, name })
    }
}

/// A tmpfs mount: `tmpfs:` entries and `type: tmpfs` volumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpfsMount {
    pub target: String,
    /// Mount options after merging with the engine's defaults (`noexec,nosuid,nodev`).
    pub options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    /// `RLIMIT_*`.
    pub resource: i32,
    pub soft: u64,
    pub hard: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Seccomp {
    /// Docker's default profile.
    #[default]
    Default,
    Unconfined,
    /// A profile file, as written in the compose file (relative to the project directory).
    Profile(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecurityOpts {
    pub no_new_privileges: bool,
    pub seccomp: Seccomp,
    /// `systempaths=unconfined`: no masked or read-only `/proc` paths.
    pub unconfined_systempaths: bool,
    /// `label=...` options, kept for the record: rcompose does not do SELinux.
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemorySwap {
    /// Memory plus swap, in bytes.
    Limit(u64),
    Unlimited,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuQuota {
    /// Microseconds per period; the container may use `quota / period` CPUs.
    pub quota: u64,
    pub period: u64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resources {
    pub memory: Option<u64>,
    pub memory_swap: Option<MemorySwap>,
    pub memory_reservation: Option<u64>,
    pub memory_swappiness: Option<u64>,
    pub oom_kill_disable: bool,
    pub cpu: Option<CpuQuota>,
    /// cgroup v1 `cpu.shares` (the caller converts to a v2 weight).
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// `None`: unlimited.
    pub pids_limit: Option<u64>,
    pub oom_score_adj: i32,
}

/// A namespace's mode (`pid`, `ipc`, `uts`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NamespaceMode {
    #[default]
    Private,
    Host,
    /// Join another service's (first) container.
    Service(String),
    /// Join a container by name.
    Container(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// The service's networks (bridge-like).
    #[default]
    Default,
    None,
    Host,
    Service(String),
    Container(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Namespaces {
    pub pid: NamespaceMode,
    pub ipc: NamespaceMode,
    pub uts: NamespaceMode,
    pub network: NetworkMode,
    /// `cgroup: private` (true) or `host` (false); `None`: docker's default for the host's
    /// cgroup version.
    pub cgroup_private: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub host_path: String,
    pub container_path: String,
    /// A subset of `rwm`.
    pub permissions: String,
}

/// Everything the runtime needs to create one container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    /// 64 hex digits, stable: derived from project, service and index (docker's are random).
    pub id: String,
    /// `container_name`, else `<project>-<service>-<index>`.
    pub name: String,
    /// The image's unpacked layers, bottom first.
    pub rootfs_layers: Vec<PathBuf>,
    /// Entrypoint then command; never empty.
    pub args: Vec<String>,
    /// `KEY=VALUE`, final.
    pub env: Vec<String>,
    /// Absolute.
    pub cwd: String,
    pub user: ResolvedUser,
    pub hostname: String,
    pub domainname: String,
    pub tty: bool,
    pub stdin_open: bool,
    pub read_only: bool,
    pub init: bool,
    pub privileged: bool,
    pub stop_signal: Signal,
    pub stop_grace_period: Duration,
    pub tmpfs: Vec<TmpfsMount>,
    /// `None`: [`DEFAULT_SHM_SIZE`].
    pub shm_size: Option<u64>,
    pub sysctls: Vec<(String, String)>,
    pub ulimits: Vec<Ulimit>,
    /// The bounding/effective/permitted set, `CAP_` names, after `cap_add`/`cap_drop`.
    pub capabilities: Vec<String>,
    pub security: SecurityOpts,
    pub resources: Resources,
    pub namespaces: Namespaces,
    pub devices: Vec<Device>,
    /// `device_cgroup_rules`: devices allowed beyond docker's defaults and `devices`.
    pub device_cgroup_rules: Vec<DeviceRule>,
    /// Image labels, overridden by the service's, plus compose's own.
    pub labels: IndexMap<String, String>,
    /// Things accepted but not acted on (`apparmor=...`), for the caller to print.
    pub warnings: Vec<String>,
}

/// Builds the spec of replica `index` (1-based) of `service`.
///
/// `rootfs_layers` are the image's unpacked layer directories bottom first (the image's
/// `diff_ids` order); user and group names are looked up in them.
pub fn build(
    project: &Project,
    service: &ServiceConfig,
    index: u32,
    image: &RuntimeConfig,
    rootfs_layers: &[PathBuf],
    host: &HostLimits,
) -> Result<ContainerSpec, SpecError> {
    build_inner(project, service, index, image, rootfs_layers, host).map_err(|e| {
        SpecError::Service {
            service: service.name.clone(),
            error: Box::new(e),
        }
    })
}

fn build_inner(
    project: &Project,
    service: &ServiceConfig,
    index: u32,
    image: &RuntimeConfig,
    rootfs_layers: &[PathBuf],
    host: &HostLimits,
) -> Result<ContainerSpec, SpecError> {
    let id = container_id(&project.name, &service.name, index);
    let name = if service.container_name.is_empty() {
        format!("{}-{}-{}", project.name, service.name, index)
    } else {
        crate::names::container_name(&service.container_name).to_string()
    };
    let args = resolve_args(
        service.entrypoint.as_deref(),
        service.command.as_deref(),
        image,
    )?;
    let cwd = resolve_working_dir(&service.working_dir, &image.working_dir)?;
    let namespaces = resolve_namespaces(service)?;

    let domainname = service.domainname.clone();
    let hostname = if !service.hostname.is_empty() {
        if namespaces.uts == NamespaceMode::Host {
            return Err(SpecError::HostnameConflict("the UTS mode"));
        }
        if matches!(namespaces.network, NetworkMode::Container(_)) {
            return Err(SpecError::HostnameConflict("the network mode"));
        }
        service.hostname.clone()
    } else if namespaces.uts == NamespaceMode::Host || namespaces.network == NetworkMode::Host {
        host.hostname.clone()
    } else {
        id[..12].to_string()
    };

    let root = LayeredRoot::new(rootfs_layers);
    let user_spec = if service.user.is_empty() {
        image.user.as_str()
    } else {
        service.user.as_str()
    };
    let user = resolve_user(&root, user_spec, &service.group_add)?;
    let env = resolve_env(
        &image.env,
        &service.environment,
        &hostname,
        service.tty,
        &user,
    );

    let stop_signal = match (service.stop_signal.as_str(), image.stop_signal.as_str()) {
        ("", "") => Signal::parse("SIGTERM")?,
        ("", image_signal) => Signal::parse(image_signal)?,
        (service_signal, _) => Signal::parse(service_signal)?,
    };
    let stop_grace_period = service
        .stop_grace_period
        .map(|d| d.as_std())
        .unwrap_or(DEFAULT_STOP_GRACE_PERIOD);

    let mut warnings = Vec::new();
    let capabilities =
        resolve_capabilities(&service.cap_add, &service.cap_drop, service.privileged)?;
    let security = parse_security_opts(&service.security_opt, &mut warnings)?;

    let mut labels: IndexMap<String, String> = image.labels.clone();
    for (k, v) in &service.labels {
        labels.insert(k.clone(), v.clone());
    }
    labels.insert("com.docker.compose.project".into(), project.name.clone());
    labels.insert("com.docker.compose.service".into(), service.name.clone());
    labels.insert(
        "com.docker.compose.container-number".into(),
        index.to_string(),
    );

    Ok(ContainerSpec {
        id,
        name,
        rootfs_layers: rootfs_layers.to_vec(),
        args,
        env,
        cwd,
        user,
        hostname,
        domainname,
        tty: service.tty,
        stdin_open: service.stdin_open,
        read_only: service.read_only,
        init: service.init.unwrap_or(false),
        privileged: service.privileged,
        stop_signal,
        stop_grace_period,
        tmpfs: resolve_tmpfs(service)?,
        shm_size: positive(service.shm_size.0, "shm_size")?,
        sysctls: resolve_sysctls(service, &namespaces)?,
        ulimits: resolve_ulimits(&service.ulimits, host)?,
        capabilities,
        security,
        resources: resolve_resources(service, host)?,
        namespaces,
        devices: resolve_devices(service)?,
        device_cgroup_rules: service
            .device_cgroup_rules
            .iter()
            .map(|rule| {
                DeviceRule::parse(rule).map_err(|reason| SpecError::DeviceRule {
                    rule: rule.clone(),
                    reason,
                })
            })
            .collect::<Result<_, _>>()?,
        labels,
        warnings,
    })
}

impl ContainerSpec {
    /// Gives the container another id (the supervisor's: a fresh one per container, as docker
    /// gives). A hostname that was the old id's first 12 digits follows the new id, and so does
    /// `$HOSTNAME` unless the service or the image set it: the container's identity stays one.
    pub fn set_id(&mut self, id: String) {
        let old_default = self.id.get(..12).unwrap_or_default().to_string();
        if let (true, Some(new_default)) = (self.hostname == old_default, id.get(..12)) {
            let new_default = new_default.to_string();
            let old_env = format!("HOSTNAME={old_default}");
            for e in &mut self.env {
                if *e == old_env {
                    *e = format!("HOSTNAME={new_default}");
                }
            }
            self.hostname = new_default;
        }
        self.id = id;
    }
}

/// A stable 64-hex-digit id: sha256 of project, service and index.
pub fn container_id(project: &str, service: &str, index: u32) -> String {
    let mut h = Sha256::new();
    h.update(project.as_bytes());
    h.update([0]);
    h.update(service.as_bytes());
    h.update([0]);
    h.update(index.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// The engine's merge (moby `daemon/commit.go`): an empty or unset service entrypoint takes the
/// image's Cmd when the service command is empty too, and the image's Entrypoint only when the
/// service's is unset. So `entrypoint: [...]` drops the image Cmd, `entrypoint: []` clears the
/// image Entrypoint but keeps its Cmd, and `command: []` only clears the image Cmd when an
/// entrypoint is set (docker/compose#5272 shows the engine doing exactly this).
pub fn resolve_args(
    entrypoint: Option<&[String]>,
    command: Option<&[String]>,
    image: &RuntimeConfig,
) -> Result<Vec<String>, SpecError> {
    let mut ep: Vec<String> = entrypoint.map(<[String]>::to_vec).unwrap_or_default();
    let mut cmd: Vec<String> = command.map(<[String]>::to_vec).unwrap_or_default();
    if ep.is_empty() {
        if cmd.is_empty() {
            cmd = image.cmd.clone().unwrap_or_default();
        }
        if entrypoint.is_none() {
            ep = image.entrypoint.clone().unwrap_or_default();
        }
    }
    ep.extend(cmd);
    if ep.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(ep)
}

/// Service, else image, else `/`; lexically cleaned; relative paths are refused as the engine
/// does.
pub fn resolve_working_dir(service: &str, image: &str) -> Result<String, SpecError> {
    let raw = if !service.is_empty() {
        service
    } else if !image.is_empty() {
        image
    } else {
        "/"
    };
    crate::paths::container_path(raw).ok_or_else(|| SpecError::RelativeWorkingDir(raw.to_string()))
}

/// Docker's environment: defaults (`PATH`, `HOSTNAME`, `TERM` with a tty), replaced or
/// extended by the merged image and service environment (service wins; a `None` value unsets
/// the variable, defaults included), then `HOME` from the user's passwd entry unless set.
pub fn resolve_env(
    image_env: &[String],
    service_env: &IndexMap<String, Option<String>>,
    hostname: &str,
    tty: bool,
    user: &ResolvedUser,
) -> Vec<String> {
    let mut env: IndexMap<String, Option<String>> = IndexMap::new();
    env.insert("PATH".into(), Some(DEFAULT_PATH.into()));
    env.insert("HOSTNAME".into(), Some(hostname.into()));
    if tty {
        env.insert("TERM".into(), Some("xterm".into()));
    }
    for entry in image_env {
        let (k, v) = match entry.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (entry.as_str(), None),
        };
        if service_env.contains_key(k) {
            continue;
        }
        set_env(&mut env, k, v);
    }
    for (k, v) in service_env {
        set_env(&mut env, k, v.clone());
    }
    if !env.contains_key("HOME") {
        let home = user.home.clone().unwrap_or_else(|| "/".to_string());
        env.insert("HOME".into(), Some(home));
    }
    env.into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
        .collect()
}

fn set_env(env: &mut IndexMap<String, Option<String>>, k: &str, v: Option<String>) {
    match v {
        // Replace in place, so defaults keep their position as in the engine.
        Some(v) => {
            env.insert(k.to_string(), Some(v));
        }
        None => {
            env.shift_remove(k);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Users and groups, read from the image's layers.

/// A read-only merged view of unpacked layers, resolved like overlayfs would present them.
struct LayeredRoot {
    /// Top first.
    layers: Vec<PathBuf>,
}

/// One layer's directory at the current path: `(layer index, real directory in it)`.
type Contributors = Vec<(usize, PathBuf)>;

impl LayeredRoot {
    fn new(bottom_first: &[PathBuf]) -> LayeredRoot {
        LayeredRoot {
            layers: bottom_first.iter().rev().cloned().collect(),
        }
    }

    fn roots(&self) -> Contributors {
        self.layers
            .iter()
            .enumerate()
            .map(|(i, p)| (i, p.clone()))
            .collect()
    }

    /// Reads a regular file of the merged view, `None` when absent (deleted by a whiteout,
    /// under an opaque directory, not a regular file, or a symlink leading nowhere). Symlinks
    /// are resolved within the view, so none can lead out of the layers.
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, SpecError> {
        let Some((layer, file)) = self.resolve(path)? else {
            return Ok(None);
        };
        let read_err = |source| SpecError::ReadImageFile {
            path: path.to_string(),
            layer: self.layers[layer].clone(),
            source,
        };
        // O_NOFOLLOW: the leaf was a regular file when resolved; refuse if that changed.
        let f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(&file)
            .map_err(read_err)?;
        let meta = f.metadata().map_err(read_err)?;
        if !meta.is_file() {
            return Ok(None);
        }
        if meta.len() > MAX_ID_FILE {
            return Err(SpecError::ImageFileTooLarge {
                path: path.to_string(),
            });
        }
        let mut buf = Vec::with_capacity(meta.len() as usize);
        f.take(MAX_ID_FILE + 1)
            .read_to_end(&mut buf)
            .map_err(read_err)?;
        if buf.len() as u64 > MAX_ID_FILE {
            return Err(SpecError::ImageFileTooLarge {
                path: path.to_string(),
            });
        }
        Ok(Some(buf))
    }

    /// Resolves `path` to the layer and real file that provide it.
    fn resolve(&self, path: &str) -> Result<Option<(usize, PathBuf)>, SpecError> {
        let mut todo: VecDeque<String> = components(path);
        let mut cur: Vec<String> = Vec::new();
        let mut dirs = self.roots();
        let mut links = 0;
        while let Some(name) = todo.pop_front() {
            if name == ".." {
                cur.pop();
                dirs = self.contributors(&cur)?;
                continue;
            }
            match self.lookup(&dirs, &name)? {
                Entry::Absent => return Ok(None),
                Entry::Dir(below) => {
                    cur.push(name);
                    dirs = below;
                }
                Entry::File(layer, file) => {
                    return Ok(if todo.is_empty() {
                        Some((layer, file))
                    } else {
                        None
                    });
                }
                Entry::Symlink(target) => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(SpecError::SymlinkLoop(path.to_string()));
                    }
                    if target.starts_with('/') {
                        cur.clear();
                        dirs = self.roots();
                    }
                    for c in components(&target).into_iter().rev() {
                        todo.push_front(c);
                    }
                }
            }
        }
        // The path names a directory.
        Ok(None)
    }

    /// The directories making up `cur` (already free of links and `..`).
    fn contributors(&self, cur: &[String]) -> Result<Contributors, SpecError> {
        let mut dirs = self.roots();
        for name in cur {
            match self.lookup(&dirs, name)? {
                Entry::Dir(below) => dirs = below,
                _ => return Ok(Vec::new()),
            }
        }
        Ok(dirs)
    }

    /// Looks `name` up in a merged directory: the topmost layer holding it decides; a directory
    /// merges with the directories below it until an opaque one or a non-directory.
    fn lookup(&self, dirs: &Contributors, name: &str) -> Result<Entry, SpecError> {
        let mut iter = dirs.iter();
        while let Some((layer, dir)) = iter.next() {
            let p = dir.join(name);
            let Some(meta) = lstat(&p) else {
                if lstat(&dir.join(format!(".wh.{name}"))).is_some() {
                    return Ok(Entry::Absent);
                }
                continue;
            };
            let ft = meta.file_type();
            if is_whiteout(&meta) {
                return Ok(Entry::Absent);
            }
            if ft.is_symlink() {
                return Ok(match fs::read_link(&p) {
                    Ok(t) => Entry::Symlink(t.to_string_lossy().into_owned()),
                    Err(_) => Entry::Absent,
                });
            }
            if !ft.is_dir() {
                return Ok(if ft.is_file() {
                    Entry::File(*layer, p)
                } else {
                    Entry::Absent
                });
            }
            let mut merged = vec![(*layer, p.clone())];
            if is_opaque(&p) {
                return Ok(Entry::Dir(merged));
            }
            for (lower, lower_dir) in iter {
                let lp = lower_dir.join(name);
                match lstat(&lp) {
                    None => {
                        if lstat(&lower_dir.join(format!(".wh.{name}"))).is_some() {
                            break;
                        }
                    }
                    Some(m) if m.file_type().is_dir() => {
                        let opaque = is_opaque(&lp);
                        merged.push((*lower, lp));
                        if opaque {
                            break;
                        }
                    }
                    Some(_) => break,
                }
            }
            return Ok(Entry::Dir(merged));
        }
        Ok(Entry::Absent)
    }
}

enum Entry {
    Absent,
    Dir(Contributors),
    File(usize, PathBuf),
    Symlink(String),
}

fn components(path: &str) -> VecDeque<String> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
        .collect()
}

fn lstat(p: &Path) -> Option<fs::Metadata> {
    fs::symlink_metadata(p).ok()
}

/// overlayfs' whiteout: a 0:0 character device.
fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// An opaque directory hides everything below it: overlayfs' xattr (as the unpacker sets it)
/// or an OCI `.wh..wh..opq` marker left in place.
fn is_opaque(dir: &Path) -> bool {
    if lstat(&dir.join(".wh..wh..opq")).is_some() {
        return true;
    }
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|attr| get_xattr(dir, attr).as_deref() == Some(b"y"))
}

fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = CString::new(path.as_os_str().as_bytes()).ok()?;
    let n = CString::new(name).ok()?;
    let mut buf = [0u8; 16];
    // SAFETY: both strings are NUL-terminated and the buffer's length is passed.
    let len = unsafe {
        libc::lgetxattr(
            p.as_ptr(),
            n.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len() as libc::size_t,
        )
    };
    usize::try_from(len).ok().map(|l| buf[..l].to_vec())
}

struct PasswdEntry {
    name: String,
    uid: u64,
    gid: u64,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u64,
    members: Vec<String>,
}

/// Lines of a colon-separated database; comments, blanks and unparsable ids are skipped.
fn db_lines(content: &[u8]) -> impl Iterator<Item = Vec<&str>> + '_ {
    std::str::from_utf8(content)
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}

fn parse_passwd(content: &[u8]) -> Vec<PasswdEntry> {
    db_lines(content)
        .filter_map(|f| {
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).map(|s| s.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

fn parse_group(content: &[u8]) -> Vec<GroupEntry> {
    db_lines(content)
        .filter_map(|f| {
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn id(what: &'static str, raw: &str, value: u64) -> Result<u32, SpecError> {
    if value > MAX_ID {
        return Err(SpecError::IdRange {
            what,
            value: raw.to_string(),
        });
    }
    Ok(value as u32)
}

fn numeric(raw: &str) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Too many digits for u64 is still "numeric": report it as out of range.
    Some(raw.parse().unwrap_or(u64::MAX))
}

/// [`resolve_user`] in a root made of `dirs` (bottom first): an image's layers.
pub fn resolve_user_in(
    dirs: &[PathBuf],
    spec: &str,
    group_add: &[String],
) -> Result<ResolvedUser, SpecError> {
    resolve_user(&LayeredRoot::new(dirs), spec, group_add)
}

/// [`resolve_user`] in the running container whose first process is `pid` (`exec -u`): its
/// `/etc/passwd` and `/etc/group` are read through [`super::inroot`], so links the container
/// plants, or swaps in meanwhile, never lead to the host's files.
pub fn resolve_user_in_container(pid: i32, spec: &str) -> Result<ResolvedUser, SpecError> {
    let err = |path: &str| {
        let path = path.to_string();
        move |source| SpecError::ReadContainerFile { path, source }
    };
    let root = super::inroot::container_root(pid).map_err(err("/"))?;
    let read = |path: &str| {
        super::inroot::read_file_at(&root, Path::new(path), MAX_ID_FILE).map_err(err(path))
    };
    resolve_user(&read, spec, &[])
}

/// Where users and groups are looked up: reads a file (`None`: absent).
trait IdFiles {
    fn read_id_file(&self, path: &str) -> Result<Option<Vec<u8>>, SpecError>;
}

impl IdFiles for LayeredRoot {
    fn read_id_file(&self, path: &str) -> Result<Option<Vec<u8>>, SpecError> {
        self.read(path)
    }
}

impl<F: Fn(&str) -> Result<Option<Vec<u8>>, SpecError>> IdFiles for F {
    fn read_id_file(&self, path: &str) -> Result<Option<Vec<u8>>, SpecError> {
        self(path)
    }
}

/// runc's `GetExecUser` plus `GetAdditionalGroups`: `user[:group]`, names looked up in the
/// image, numeric ids accepted without an entry; implicit supplementary groups only when no
/// group is given.
fn resolve_user(
    root: &dyn IdFiles,
    spec: &str,
    group_add: &[String],
) -> Result<ResolvedUser, SpecError> {
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if (user_arg.is_empty() && group_arg.is_some()) || group_arg == Some("") {
        return Err(SpecError::UserSyntax(spec.to_string()));
    }
    let passwd = parse_passwd(&root.read_id_file("/etc/passwd")?.unwrap_or_default());
    let groups = parse_group(&root.read_id_file("/etc/group")?.unwrap_or_default());

    let user_num = numeric(user_arg);
    let entry = if user_arg.is_empty() {
        passwd.iter().find(|u| u.uid == 0)
    } else if let Some(uid) = user_num {
        passwd.iter().find(|u| u.uid == uid)
    } else {
        Some(
            passwd
                .iter()
                .find(|u| u.name == user_arg)
                .ok_or_else(|| SpecError::UnknownUser(user_arg.to_string()))?,
        )
    };
    let uid = match (user_num, entry) {
        (Some(n), _) => id("uid", user_arg, n)?,
        (None, Some(e)) => id("uid", user_arg, e.uid)?,
        (None, None) => 0,
    };
    let mut gid = match entry {
        Some(e) => id("gid", &e.gid.to_string(), e.gid)?,
        None => 0,
    };
    let mut additional = Vec::new();
    match group_arg {
        Some(g) => {
            let found = match numeric(g) {
                Some(n) => groups
                    .iter()
                    .find(|e| e.gid == n)
                    .map(|e| e.gid)
                    .or(Some(n)),
                None => groups.iter().find(|e| e.name == g).map(|e| e.gid),
            };
            gid = id(
                "gid",
                g,
                found.ok_or_else(|| SpecError::UnknownGroup(g.to_string()))?,
            )?;
        }
        None => {
            if let Some(e) = entry {
                for g in groups.iter().filter(|g| g.members.contains(&e.name)) {
                    additional.push(id("gid", &g.name, g.gid)?);
                }
            }
        }
    }
    for ag in group_add {
        let found = groups
            .iter()
            .find(|g| g.name == *ag)
            .map(|g| g.gid)
            .or_else(|| numeric(ag));
        let g = found.ok_or_else(|| SpecError::UnknownAdditionalGroup(ag.clone()))?;
        additional.push(id("gid", ag, g)?);
    }
    let mut seen = std::collections::HashSet::new();
    additional.retain(|g| seen.insert(*g));
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
        home: entry.map(|e| e.home.clone()).filter(|h| !h.is_empty()),
        name: entry.map(|e| e.name.clone()),
    })
}

// ---------------------------------------------------------------------------------------------
// Limits, capabilities, security, namespaces.

fn ulimit_value(name: &str, v: i64) -> Result<u64, SpecError> {
    match v {
        -1 => Ok(RLIM_INFINITY),
        v if v >= 0 => Ok(v as u64),
        v => Err(SpecError::UlimitValue {
            name: name.to_string(),
            value: v,
        }),
    }
}

fn show_limit(v: u64) -> String {
    if v == RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        v.to_string()
    }
}

/// `nofile: 1024` sets both limits; `{soft, hard}` each. A hard limit above this process's own
/// cannot be set without CAP_SYS_RESOURCE: refused here, with the reason, rather than failing
/// with EPERM at start.
pub fn resolve_ulimits(
    ulimits: &IndexMap<String, UlimitsConfig>,
    host: &HostLimits,
) -> Result<Vec<Ulimit>, SpecError> {
    let mut out = Vec::new();
    for (name, cfg) in ulimits {
        let resource = ULIMITS
            .iter()
            .find(|(n, _)| *n == name.as_str())
            .map(|(_, r)| *r)
            .ok_or_else(|| SpecError::UlimitName(name.clone()))?;
        let (soft, hard) = if cfg.single != 0 {
            let v = ulimit_value(name, cfg.single)?;
            (v, v)
        } else {
            (ulimit_value(name, cfg.soft)?, ulimit_value(name, cfg.hard)?)
        };
        if soft > hard {
            return Err(SpecError::UlimitSoftAboveHard {
                name: name.clone(),
                soft,
                hard,
            });
        }
        if let Some((_, host_hard)) = host.rlimits.get(name) {
            if hard > *host_hard {
                return Err(SpecError::UlimitAboveHost {
                    name: name.clone(),
                    hard: show_limit(hard),
                    host: show_limit(*host_hard),
                });
            }
        }
        out.push(Ulimit {
            name: name.clone(),
            resource,
            soft,
            hard,
        });
    }
    Ok(out)
}

/// The container's capabilities by moby's rules (see [`crate::runtime::caps::CapSet`]),
/// as names.
pub fn resolve_capabilities(
    cap_add: &[String],
    cap_drop: &[String],
    privileged: bool,
) -> Result<Vec<String>, SpecError> {
    CapSet::from_config(cap_add, cap_drop, privileged)
        .map(|set| set.names())
        .map_err(|e| SpecError::Capability(e.to_string()))
}

/// The engine's `parseSecurityOpt`: `KEY=VALUE` (or the legacy `KEY:VALUE`), bare
/// `no-new-privileges`.
pub fn parse_security_opts(
    opts: &[String],
    warnings: &mut Vec<String>,
) -> Result<SecurityOpts, SpecError> {
    let mut out = SecurityOpts::default();
    for opt in opts {
        if opt == "no-new-privileges" {
            out.no_new_privileges = true;
            continue;
        }
        let split = opt.split_once('=').or_else(|| opt.split_once(':'));
        let Some((key, value)) = split else {
            return Err(SpecError::SecurityOpt(opt.clone()));
        };
        match key {
            "no-new-privileges" => {
                out.no_new_privileges = match value {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(SpecError::SecurityOpt(opt.clone())),
                }
            }
            "seccomp" if value == "unconfined" => out.seccomp = Seccomp::Unconfined,
            "seccomp" if !value.is_empty() => out.seccomp = Seccomp::Profile(value.to_string()),
            "systempaths" if value == "unconfined" => out.unconfined_systempaths = true,
            "label" => {
                out.labels.push(value.to_string());
                if value != "disable" {
                    warnings.push(format!("security_opt {opt:?} ignored: no SELinux support"));
                }
            }
            "apparmor" => {
                warnings.push(format!("security_opt {opt:?} ignored: no AppArmor support"))
            }
            _ => return Err(SpecError::SecurityOpt(opt.clone())),
        }
    }
    Ok(out)
}

fn namespace_mode(key: &'static str, raw: &str) -> Result<NamespaceMode, SpecError> {
    let bad = || SpecError::Namespace {
        key,
        value: raw.to_string(),
        expected: "host, service:NAME or container:NAME",
    };
    Ok(match raw {
        "" | "private" => NamespaceMode::Private,
        // `shareable` only matters to other containers joining: still a private namespace.
        "shareable" if key == "ipc" => NamespaceMode::Private,
        "host" => NamespaceMode::Host,
        _ => match raw.split_once(':') {
            Some(("service", n)) if !n.is_empty() => NamespaceMode::Service(n.to_string()),
            Some(("container", n)) if !n.is_empty() => NamespaceMode::Container(n.to_string()),
            _ => return Err(bad()),
        },
    })
}

fn resolve_namespaces(service: &ServiceConfig) -> Result<Namespaces, SpecError> {
    let net_raw = if service.network_mode.is_empty() {
        service.net.as_str()
    } else {
        service.network_mode.as_str()
    };
    let network = match net_raw {
        "" | "bridge" | "default" => NetworkMode::Default,
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        _ => match net_raw.split_once(':') {
            Some(("service", n)) if !n.is_empty() => NetworkMode::Service(n.to_string()),
            Some(("container", n)) if !n.is_empty() => NetworkMode::Container(n.to_string()),
            _ => {
                return Err(SpecError::Namespace {
                    key: "network_mode",
                    value: net_raw.to_string(),
                    expected: "none, host, bridge, service:NAME or container:NAME",
                })
            }
        },
    };
    Ok(Namespaces {
        pid: namespace_mode("pid", &service.pid)?,
        ipc: namespace_mode("ipc", &service.ipc)?,
        uts: namespace_mode("uts", &service.uts)?,
        network,
        cgroup_private: match service.cgroup.as_str() {
            "" => None,
            "private" => Some(true),
            "host" => Some(false),
            other => {
                return Err(SpecError::Namespace {
                    key: "cgroup",
                    value: other.to_string(),
                    expected: "host or private",
                })
            }
        },
    })
}

/// Only namespaced sysctls can be set, and only when that namespace is the container's own
/// (moby's `ValidateSysctl`).
fn resolve_sysctls(
    service: &ServiceConfig,
    ns: &Namespaces,
) -> Result<Vec<(String, String)>, SpecError> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let mut out = Vec::new();
    for (name, value) in &service.sysctls {
        let err = |reason| SpecError::Sysctl {
            name: name.clone(),
            reason,
        };
        if IPC.contains(&name.as_str()) || name.starts_with("fs.mqueue.") {
            if ns.ipc != NamespaceMode::Private {
                return Err(err("it belongs to the IPC namespace, which is shared"));
            }
        } else if name.starts_with("net.") {
            if ns.network == NetworkMode::Host {
                return Err(err(
                    "it belongs to the network namespace, which is the host's",
                ));
            }
        } else if name == "kernel.domainname" || name == "kernel.hostname" {
            return Err(err("set hostname or domainname instead"));
        } else {
            return Err(err("it is not namespaced, so it would change the host"));
        }
        out.push((name.clone(), value.clone()));
    }
    Ok(out)
}

/// The engine's tmpfs options: `noexec,nosuid,nodev` unless the entry says otherwise.
fn merge_tmpfs_options(extra: &[String]) -> Vec<String> {
    const PAIRS: [(&str, &str); 5] = [
        ("exec", "noexec"),
        ("suid", "nosuid"),
        ("dev", "nodev"),
        ("rw", "ro"),
        ("atime", "noatime"),
    ];
    let mut out: Vec<String> = vec!["noexec".into(), "nosuid".into(), "nodev".into()];
    for opt in extra.iter().filter(|o| !o.is_empty()) {
        let key = opt.split_once('=').map_or(opt.as_str(), |(k, _)| k);
        let opposite = PAIRS.iter().find_map(|(a, b)| {
            if key == *a {
                Some(*b)
            } else if key == *b {
                Some(*a)
            } else {
                None
            }
        });
        out.retain(|o| {
            let k = o.split_once('=').map_or(o.as_str(), |(k, _)| k);
            k != key && Some(k) != opposite
        });
        out.push(opt.clone());
    }
    out
}

fn resolve_tmpfs(service: &ServiceConfig) -> Result<Vec<TmpfsMount>, SpecError> {
    let mut out = Vec::new();
    for entry in &service.tmpfs {
        let (raw, opts) = entry.split_once(':').unwrap_or((entry.as_str(), ""));
        let target = crate::paths::container_path(raw)
            .ok_or_else(|| SpecError::TmpfsTarget(raw.to_string()))?;
        let extra: Vec<String> = opts.split(',').map(str::to_string).collect();
        out.push(TmpfsMount {
            target,
            options: merge_tmpfs_options(&extra),
        });
    }
    for v in service.volumes.iter().filter(|v| v.kind == "tmpfs") {
        let target = crate::paths::container_path(&v.target)
            .ok_or_else(|| SpecError::TmpfsTarget(v.target.clone()))?;
        let mut extra = Vec::new();
        if v.read_only {
            extra.push("ro".to_string());
        }
        if let Some(t) = &v.tmpfs {
            if t.size.0 > 0 {
                extra.push(format!("size={}", t.size.0));
            }
            if t.mode != 0 {
                extra.push(format!("mode={:o}", t.mode));
            }
        }
        out.push(TmpfsMount {
            target,
            options: merge_tmpfs_options(&extra),
        });
    }
    Ok(out)
}

fn resolve_devices(service: &ServiceConfig) -> Result<Vec<Device>, SpecError> {
    service
        .devices
        .iter()
        .map(|d| {
            let err = |reason| SpecError::Device {
                source_path: d.source.clone(),
                target: d.target.clone(),
                permissions: d.permissions.clone(),
                reason,
            };
            let target = if d.target.is_empty() {
                d.source.clone()
            } else {
                d.target.clone()
            };
            let permissions = if d.permissions.is_empty() {
                "rwm".to_string()
            } else {
                d.permissions.clone()
            };
            let container_path = match crate::paths::container_path(&target) {
                Some(p) if d.source.starts_with('/') => p,
                _ => return Err(err("device paths must be absolute")),
            };
            if permissions.len() > 3 || !permissions.chars().all(|c| "rwm".contains(c)) {
                return Err(err("permissions are a combination of r, w and m"));
            }
            Ok(Device {
                host_path: d.source.clone(),
                container_path,
                permissions,
            })
        })
        .collect()
}

fn positive(v: i64, what: &'static str) -> Result<Option<u64>, SpecError> {
    match v {
        0 => Ok(None),
        v if v > 0 => Ok(Some(v as u64)),
        _ => Err(SpecError::Negative(what)),
    }
}

/// `0-3,5`: syntax, and every CPU below `available`.
fn check_cpuset(value: &str, available: u32) -> Result<(), SpecError> {
    let err = |reason: String| SpecError::Cpuset {
        value: value.to_string(),
        reason,
    };
    for part in value.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (Ok(lo), Ok(hi)) = (lo.trim().parse::<u32>(), hi.trim().parse::<u32>()) else {
            return Err(err("expected CPU numbers and ranges such as 0-3,5".into()));
        };
        if lo > hi {
            return Err(err(format!("range {part} is reversed")));
        }
        if hi >= available {
            return Err(err(format!(
                "CPU {hi} is not available: the host has CPUs 0-{}",
                available.saturating_sub(1)
            )));
        }
    }
    Ok(())
}

/// Compose's `getDeployResources` (service fields, then `deploy.resources` limits and
/// reservations on top) followed by the engine's checks and defaults.
pub fn resolve_resources(
    service: &ServiceConfig,
    host: &HostLimits,
) -> Result<Resources, SpecError> {
    let limits = service
        .deploy
        .as_ref()
        .and_then(|d| d.resources.limits.as_ref());
    let reservations = service
        .deploy
        .as_ref()
        .and_then(|d| d.resources.reservations.as_ref());

    // compose-go refuses distinct values when loading; kept here for models built otherwise.
    let mut memory = service.mem_limit.0;
    let mut cpus = service.cpus;
    let mut pids = service.pids_limit;
    let mut reservation = service.mem_reservation.0;
    if let Some(l) = limits {
        if l.memory.0 != 0 {
            if memory != 0 && memory != l.memory.0 {
                return Err(SpecError::Distinct(
                    "mem_limit",
                    "deploy.resources.limits.memory",
                ));
            }
            memory = l.memory.0;
        }
        if l.cpus != 0.0 {
            if cpus != 0.0 && cpus != l.cpus {
                return Err(SpecError::Distinct("cpus", "deploy.resources.limits.cpus"));
            }
            cpus = l.cpus;
        }
        if l.pids != 0 {
            if pids != 0 && pids != l.pids {
                return Err(SpecError::Distinct(
                    "pids_limit",
                    "deploy.resources.limits.pids",
                ));
            }
            pids = l.pids;
        }
    }
    if let Some(r) = reservations {
        if r.memory.0 != 0 {
            if reservation != 0 && reservation != r.memory.0 {
                return Err(SpecError::Distinct(
                    "mem_reservation",
                    "deploy.resources.reservations.memory",
                ));
            }
            reservation = r.memory.0;
        }
    }

    let memory = positive(memory, "mem_limit")?;
    if let Some(m) = memory.filter(|m| *m < MIN_MEMORY) {
        return Err(SpecError::MemoryTooSmall {
            what: "mem_limit",
            value: m,
        });
    }
    let memory_reservation = positive(reservation, "mem_reservation")?;
    if let Some(r) = memory_reservation {
        if r < MIN_MEMORY {
            return Err(SpecError::MemoryTooSmall {
                what: "mem_reservation",
                value: r,
            });
        }
        if let Some(m) = memory.filter(|m| r > *m) {
            return Err(SpecError::ReservationAboveLimit {
                reservation: r,
                memory: m,
            });
        }
    }
    // -1: unlimited swap; unset with a memory limit: as much swap as memory (the engine's
    // default of twice the limit for memory plus swap).
    let memory_swap = match (service.memswap_limit.0, memory) {
        (0, None) => None,
        (0, Some(m)) => Some(MemorySwap::Limit(m.saturating_mul(2))),
        (-1, _) => Some(MemorySwap::Unlimited),
        (s, _) if s < 0 => return Err(SpecError::Negative("memswap_limit")),
        (_, None) => return Err(SpecError::SwapWithoutMemory),
        (s, Some(m)) if (s as u64) < m => {
            return Err(SpecError::SwapBelowMemory {
                swap: s as u64,
                memory: m,
            })
        }
        (s, Some(_)) => Some(MemorySwap::Limit(s as u64)),
    };
    let memory_swappiness = match service.mem_swappiness.0 {
        0 => None,
        s @ 1..=100 => Some(s as u64),
        s => return Err(SpecError::Swappiness(s)),
    };

    let cpu = if cpus != 0.0 {
        if service.cpu_quota != 0 || service.cpu_period != 0 {
            return Err(SpecError::CpusConflict);
        }
        // Compose multiplies in float32 and truncates, as does the engine's quota arithmetic.
        let nanos = (cpus * 1e9) as i64;
        if nanos < 10_000_000 || nanos > i64::from(host.cpus) * 1_000_000_000 {
            return Err(SpecError::CpuRange {
                cpus,
                host: host.cpus,
            });
        }
        Some(CpuQuota {
            quota: (nanos as u64) * CPU_PERIOD / 1_000_000_000,
            period: CPU_PERIOD,
        })
    } else if service.cpu_quota != 0 {
        let quota = positive(service.cpu_quota, "cpu_quota")?.unwrap_or_default();
        let period = positive(service.cpu_period, "cpu_period")?.unwrap_or(CPU_PERIOD);
        Some(CpuQuota { quota, period })
    } else {
        None
    };

    let cpuset_cpus = if service.cpuset.is_empty() {
        None
    } else {
        check_cpuset(&service.cpuset, host.cpus)?;
        Some(service.cpuset.clone())
    };
    if !(-1000..=1000).contains(&service.oom_score_adj) {
        return Err(SpecError::OomScoreAdj(service.oom_score_adj));
    }
    Ok(Resources {
        memory,
        memory_swap,
        memory_reservation,
        memory_swappiness,
        oom_kill_disable: service.oom_kill_disable,
        cpu,
        cpu_shares: positive(service.cpu_shares, "cpu_shares")?,
        cpuset_cpus,
        cpuset_mems: None,
        // 0 and -1 both mean unlimited to the engine.
        pids_limit: if pids > 0 { Some(pids as u64) } else { None },
        oom_score_adj: service.oom_score_adj as i32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::model::{
        DeployConfig, DeviceMapping, Resource, Resources as DeployResources, UnitBytes,
    };
    use std::os::unix::fs::symlink;
    use tempfile::TempDir;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn host() -> HostLimits {
        let mut rlimits = IndexMap::new();
        rlimits.insert("nofile".to_string(), (1024, 524_288));
        rlimits.insert("nproc".to_string(), (RLIM_INFINITY, RLIM_INFINITY));
        HostLimits {
            rlimits,
            cpus: 4,
            hostname: "the-host".into(),
        }
    }

    fn project() -> Project {
        Project {
            name: "proj".into(),
            ..Default::default()
        }
    }

    fn svc() -> ServiceConfig {
        ServiceConfig {
            name: "web".into(),
            image: "busybox".into(),
            ..Default::default()
        }
    }

    fn image() -> RuntimeConfig {
        RuntimeConfig {
            cmd: Some(s(&["sh"])),
            ..Default::default()
        }
    }

    /// Layers built in a temp dir: `layer(i)` is the i-th from the bottom.
    struct Layers {
        dir: TempDir,
        n: usize,
    }

    impl Layers {
        fn new(n: usize) -> Layers {
            let dir = TempDir::new().unwrap();
            for i in 0..n {
                fs::create_dir_all(dir.path().join(format!("l{i}"))).unwrap();
            }
            Layers { dir, n }
        }
        fn layer(&self, i: usize) -> PathBuf {
            self.dir.path().join(format!("l{i}"))
        }
        fn paths(&self) -> Vec<PathBuf> {
            (0..self.n).map(|i| self.layer(i)).collect()
        }
        fn write(&self, i: usize, path: &str, content: &str) {
            let p = self.layer(i).join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
        fn root(&self) -> LayeredRoot {
            LayeredRoot::new(&self.paths())
        }
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # a comment\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        app:x:1000:1000:App:/home/app:/bin/sh\n\
        broken line\n\
        nohome:x:1001:1001::\n";
    const GROUP: &str = "root:x:0:root\n\
        wheel:x:10:root,app\n\
        app:x:1000:\n\
        audio:x:29:app\n\
        staff:x:50:\n";

    fn std_layers() -> Layers {
        let l = Layers::new(1);
        l.write(0, "etc/passwd", PASSWD);
        l.write(0, "etc/group", GROUP);
        l
    }

    fn spec_with(service: &ServiceConfig, img: &RuntimeConfig) -> Result<ContainerSpec, SpecError> {
        let l = std_layers();
        build(&project(), service, 1, img, &l.paths(), &host())
    }

    fn inner(e: SpecError) -> SpecError {
        match e {
            SpecError::Service { error, .. } => *error,
            e => e,
        }
    }

    // --- command and entrypoint ---

    #[test]
    fn args_follow_the_engine_merge() {
        let img = RuntimeConfig {
            entrypoint: Some(s(&["/entry"])),
            cmd: Some(s(&["serve", "--port", "80"])),
            ..Default::default()
        };
        let r = |ep: Option<&[&str]>, cmd: Option<&[&str]>| {
            let ep = ep.map(s);
            let cmd = cmd.map(s);
            resolve_args(ep.as_deref(), cmd.as_deref(), &img)
        };
        // Image only.
        assert_eq!(
            r(None, None).unwrap(),
            s(&["/entry", "serve", "--port", "80"])
        );
        // `command` replaces the image Cmd, keeps its Entrypoint.
        assert_eq!(r(None, Some(&["run"])).unwrap(), s(&["/entry", "run"]));
        // `entrypoint` replaces the Entrypoint and drops the image Cmd.
        assert_eq!(r(Some(&["/bin/sh"]), None).unwrap(), s(&["/bin/sh"]));
        assert_eq!(
            r(Some(&["/bin/sh", "-c"]), Some(&["echo hi"])).unwrap(),
            s(&["/bin/sh", "-c", "echo hi"])
        );
        // `entrypoint: []` (or "") clears the Entrypoint; the engine then refills Cmd.
        assert_eq!(r(Some(&[]), None).unwrap(), s(&["serve", "--port", "80"]));
        assert_eq!(r(Some(&[]), Some(&["ls"])).unwrap(), s(&["ls"]));
        // `command: []` with an entrypoint: no arguments at all.
        assert_eq!(
            r(Some(&["/bin/true"]), Some(&[])).unwrap(),
            s(&["/bin/true"])
        );
        // `command: []` without an entrypoint override: the engine refills it from the image.
        assert_eq!(
            r(None, Some(&[])).unwrap(),
            s(&["/entry", "serve", "--port", "80"])
        );
    }

    #[test]
    fn no_command_is_an_error() {
        let img = RuntimeConfig::default();
        let e = resolve_args(None, None, &img).unwrap_err();
        assert!(e.to_string().starts_with("no command specified"), "{e}");
        let img = RuntimeConfig {
            entrypoint: Some(s(&["/entry"])),
            ..Default::default()
        };
        let empty: Vec<String> = Vec::new();
        assert!(matches!(
            resolve_args(Some(&empty), Some(&empty), &img),
            Err(SpecError::NoCommand)
        ));
        // Through build: the service is named.
        let e = build(
            &project(),
            &svc(),
            1,
            &RuntimeConfig::default(),
            &[],
            &host(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "service \"web\": no command specified: neither the service nor the image sets an \
             entrypoint or a command"
        );
    }

    // --- environment ---

    #[test]
    fn environment_defaults_image_and_service() {
        let img = s(&["PATH=/opt/bin:/bin", "LANG=C", "KEEP=image", "DROP=x"]);
        let mut env = IndexMap::new();
        env.insert("KEEP".to_string(), Some("service".to_string()));
        env.insert("DROP".to_string(), None);
        env.insert("NEW".to_string(), Some("a=b".to_string()));
        let user = ResolvedUser {
            home: Some("/home/app".into()),
            ..Default::default()
        };
        let out = resolve_env(&img, &env, "abc", false, &user);
        assert_eq!(
            out,
            s(&[
                "PATH=/opt/bin:/bin",
                "HOSTNAME=abc",
                "LANG=C",
                "KEEP=service",
                "NEW=a=b",
                "HOME=/home/app"
            ])
        );
    }

    #[test]
    fn environment_path_default_term_home_fallback_and_unset_defaults() {
        let out = resolve_env(&[], &IndexMap::new(), "h", true, &ResolvedUser::default());
        assert_eq!(
            out,
            vec![
                format!("PATH={DEFAULT_PATH}"),
                "HOSTNAME=h".into(),
                "TERM=xterm".into(),
                "HOME=/".into()
            ]
        );
        let mut env = IndexMap::new();
        env.insert("PATH".to_string(), None);
        env.insert("TERM".to_string(), Some("dumb".to_string()));
        env.insert("HOME".to_string(), Some("/data".to_string()));
        let out = resolve_env(&[], &env, "h", true, &ResolvedUser::default());
        assert_eq!(out, s(&["HOSTNAME=h", "TERM=dumb", "HOME=/data"]));
    }

    #[test]
    fn build_sets_home_from_the_resolved_user() {
        let mut service = svc();
        service.user = "app".into();
        let spec = spec_with(&service, &image()).unwrap();
        assert!(spec.env.contains(&"HOME=/home/app".to_string()));
        assert!(spec.env.contains(&format!("HOSTNAME={}", spec.hostname)));
        service.user = "4242".into();
        let spec = spec_with(&service, &image()).unwrap();
        assert!(spec.env.contains(&"HOME=/".to_string()));
        service.user = "nohome".into();
        let spec = spec_with(&service, &image()).unwrap();
        assert!(spec.env.contains(&"HOME=/".to_string()));
    }

    // --- users and groups ---

    fn user(spec: &str, group_add: &[&str]) -> Result<ResolvedUser, SpecError> {
        resolve_user(&std_layers().root(), spec, &s(group_add))
    }

    #[test]
    fn user_by_name_and_id() {
        let u = user("app", &[]).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.home.as_deref(), Some("/home/app"));
        assert_eq!(u.name.as_deref(), Some("app"));
        // Implicit supplementary groups from membership.
        assert_eq!(u.additional_gids, vec![10, 29]);
        // A numeric uid with an entry takes its gid and home; without one, gid 0.
        let u = user("1000", &[]).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.home.as_deref()),
            (1000, 1000, Some("/home/app"))
        );
        let u = user("4242", &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.home, u.name), (4242, 0, None, None));
        // Default: root, with root's memberships.
        let u = user("", &[]).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (0, 0, vec![0, 10])
        );
        assert_eq!(u.home.as_deref(), Some("/root"));
    }

    #[test]
    fn user_with_group() {
        let u = user("app:staff", &[]).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 50));
        // An explicit group turns off implicit supplementary groups (runc).
        assert!(u.additional_gids.is_empty());
        let u = user("1000:4321", &[]).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 4321));
        let u = user("77:wheel", &[]).unwrap();
        assert_eq!((u.uid, u.gid), (77, 10));
    }

    #[test]
    fn user_errors() {
        assert_eq!(
            user("nobody", &[]).unwrap_err().to_string(),
            "unable to find user nobody: no matching entries in the image's /etc/passwd"
        );
        assert_eq!(
            user("app:nogroup", &[]).unwrap_err().to_string(),
            "unable to find group nogroup: no matching entries in the image's /etc/group"
        );
        assert_eq!(
            user("3000000000", &[]).unwrap_err().to_string(),
            "uid 3000000000 is out of range: uids and gids go from 0 to 2147483647"
        );
        assert!(matches!(user(":1", &[]), Err(SpecError::UserSyntax(_))));
        assert!(matches!(user("app:", &[]), Err(SpecError::UserSyntax(_))));
        // No passwd at all: names fail, numbers work.
        let empty = Layers::new(1);
        assert!(matches!(
            resolve_user(&empty.root(), "app", &[]),
            Err(SpecError::UnknownUser(_))
        ));
        let u = resolve_user(&empty.root(), "5:6", &[]).unwrap();
        assert_eq!((u.uid, u.gid), (5, 6));
    }

    #[test]
    fn group_add_names_numbers_and_errors() {
        let u = user("app:app", &["audio", "4000", "wheel", "audio"]).unwrap();
        assert_eq!(u.additional_gids, vec![29, 4000, 10]);
        let e = user("app", &["video"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "group_add: unable to find group video: no matching entries in the image's /etc/group"
        );
        // Through build, with the service named.
        let mut service = svc();
        service.user = "ghost".into();
        let e = spec_with(&service, &image()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "service \"web\": unable to find user ghost: no matching entries in the image's \
             /etc/passwd"
        );
    }

    #[test]
    fn image_user_applies_when_the_service_sets_none() {
        let img = RuntimeConfig {
            user: "app".into(),
            ..image()
        };
        let spec = spec_with(&svc(), &img).unwrap();
        assert_eq!(spec.user.uid, 1000);
        let mut service = svc();
        service.user = "daemon".into();
        let spec = spec_with(&service, &img).unwrap();
        assert_eq!((spec.user.uid, spec.user.gid), (1, 1));
    }

    // --- reading the layers ---

    #[test]
    fn upper_layers_win() {
        let l = Layers::new(2);
        l.write(0, "etc/passwd", "app:x:1:1::/old:/bin/sh\n");
        l.write(1, "etc/passwd", "app:x:2:2::/new:/bin/sh\n");
        l.write(0, "etc/group", "g:x:5:\n");
        let u = resolve_user(&l.root(), "app", &s(&["g"])).unwrap();
        assert_eq!((u.uid, u.home.as_deref()), (2, Some("/new")));
        // /etc merges: group still comes from the lower layer.
        assert_eq!(u.additional_gids, vec![5]);
    }

    #[test]
    fn oci_whiteout_files_and_opaque_markers_hide_lower_files() {
        let l = Layers::new(2);
        l.write(0, "etc/passwd", "app:x:1:1::/:/bin/sh\n");
        l.write(1, "etc/.wh.passwd", "");
        assert_eq!(l.root().read("/etc/passwd").unwrap(), None);

        let l = Layers::new(2);
        l.write(0, "etc/passwd", "app:x:1:1::/:/bin/sh\n");
        l.write(1, "etc/.wh..wh..opq", "");
        l.write(1, "etc/group", "g:x:5:\n");
        assert_eq!(l.root().read("/etc/passwd").unwrap(), None);
        assert!(l.root().read("/etc/group").unwrap().is_some());
    }

    #[test]
    fn file_above_directory_hides_it() {
        let l = Layers::new(2);
        l.write(0, "etc/passwd", "app:x:1:1::/:/bin/sh\n");
        l.write(1, "etc", "not a directory");
        assert_eq!(l.root().read("/etc/passwd").unwrap(), None);
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn overlay_whiteouts_and_opaque_xattrs() {
        if !is_root() {
            eprintln!("skipped: needs root (mknod, trusted.* xattrs)");
            return;
        }
        let l = Layers::new(2);
        l.write(0, "etc/passwd", "app:x:1:1::/:/bin/sh\n");
        l.write(0, "etc/group", "g:x:5:\n");
        fs::create_dir_all(l.layer(1).join("etc")).unwrap();
        nix::sys::stat::mknod(
            &l.layer(1).join("etc/passwd"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            0,
        )
        .unwrap();
        assert_eq!(l.root().read("/etc/passwd").unwrap(), None);
        assert!(l.root().read("/etc/group").unwrap().is_some());

        // An opaque /etc in the upper layer hides the lower /etc/group.
        let l = Layers::new(2);
        l.write(0, "etc/group", "g:x:5:\n");
        l.write(1, "etc/passwd", "app:x:1:1::/:/bin/sh\n");
        let dir = CString::new(l.layer(1).join("etc").to_str().unwrap()).unwrap();
        // SAFETY: NUL-terminated strings and a valid buffer.
        let rc = unsafe {
            libc::lsetxattr(
                dir.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            )
        };
        assert_eq!(rc, 0);
        assert_eq!(l.root().read("/etc/group").unwrap(), None);
        assert!(l.root().read("/etc/passwd").unwrap().is_some());
    }

    #[test]
    fn symlinks_resolve_inside_the_layers_only() {
        let l = Layers::new(2);
        // The real file lives in a lower layer, the link in the upper one.
        l.write(0, "usr/lib/passwd", "app:x:7:7::/:/bin/sh\n");
        fs::create_dir_all(l.layer(1).join("etc")).unwrap();
        symlink("/usr/lib/passwd", l.layer(1).join("etc/passwd")).unwrap();
        assert_eq!(resolve_user(&l.root(), "app", &[]).unwrap().uid, 7);

        // Relative links and `..` are resolved in the view, clamped at its root.
        let l = Layers::new(1);
        l.write(0, "data/passwd", "app:x:8:8::/:/bin/sh\n");
        fs::create_dir_all(l.layer(0).join("etc")).unwrap();
        symlink("../../../../data/passwd", l.layer(0).join("etc/passwd")).unwrap();
        assert_eq!(resolve_user(&l.root(), "app", &[]).unwrap().uid, 8);

        // A link aimed at the host's file finds nothing in the image.
        let outside = l.dir.path().join("host-passwd");
        fs::write(&outside, "app:x:9:9::/:/bin/sh\n").unwrap();
        let l2 = Layers::new(1);
        fs::create_dir_all(l2.layer(0).join("etc")).unwrap();
        symlink(&outside, l2.layer(0).join("etc/passwd")).unwrap();
        assert_eq!(l2.root().read("/etc/passwd").unwrap(), None);
        assert!(matches!(
            resolve_user(&l2.root(), "app", &[]),
            Err(SpecError::UnknownUser(_))
        ));

        // A symlinked /etc directory is followed inside the view too.
        let l3 = Layers::new(1);
        l3.write(0, "real/passwd", "app:x:3:3::/:/bin/sh\n");
        symlink("real", l3.layer(0).join("etc")).unwrap();
        assert_eq!(resolve_user(&l3.root(), "app", &[]).unwrap().uid, 3);
    }

    #[test]
    fn symlink_loops_are_an_error() {
        let l = Layers::new(1);
        fs::create_dir_all(l.layer(0).join("etc")).unwrap();
        symlink("/etc/group", l.layer(0).join("etc/passwd")).unwrap();
        symlink("/etc/passwd", l.layer(0).join("etc/group")).unwrap();
        let e = l.root().read("/etc/passwd").unwrap_err();
        assert_eq!(
            e.to_string(),
            "too many levels of symbolic links resolving /etc/passwd in the image"
        );
    }

    // --- working dir, hostname, name ---

    #[test]
    fn working_dir() {
        assert_eq!(resolve_working_dir("", "").unwrap(), "/");
        assert_eq!(resolve_working_dir("", "/app").unwrap(), "/app");
        assert_eq!(
            resolve_working_dir("/srv//x/./y/..", "/app").unwrap(),
            "/srv/x"
        );
        let e = resolve_working_dir("app", "/").unwrap_err();
        assert_eq!(
            e.to_string(),
            "working_dir \"app\" is invalid: it must be an absolute path"
        );
        assert!(resolve_working_dir("", "rel").is_err());
    }

    #[test]
    fn a_new_id_takes_the_default_hostname_and_its_variable_along() {
        let mut spec = spec_with(&svc(), &image()).unwrap();
        let id = "ab".repeat(32);
        spec.set_id(id.clone());
        assert_eq!(spec.id, id);
        assert_eq!(spec.hostname, "abababababab");
        assert!(spec.env.contains(&"HOSTNAME=abababababab".to_string()));

        let mut service = svc();
        service.hostname = "box".into();
        let mut spec = spec_with(&service, &image()).unwrap();
        spec.set_id(id);
        assert_eq!(spec.hostname, "box");
        assert!(spec.env.contains(&"HOSTNAME=box".to_string()));
    }

    #[test]
    fn hostname_name_and_id() {
        let spec = spec_with(&svc(), &image()).unwrap();
        assert_eq!(spec.id.len(), 64);
        assert_eq!(spec.hostname, spec.id[..12]);
        assert_eq!(spec.id, container_id("proj", "web", 1));
        assert_ne!(spec.id, container_id("proj", "web", 2));
        assert_eq!(spec.name, "proj-web-1");
        assert_eq!(spec.labels["com.docker.compose.service"], "web");

        let mut service = svc();
        service.hostname = "box".into();
        service.domainname = "example.org".into();
        service.container_name = "mine".into();
        let spec = spec_with(&service, &image()).unwrap();
        assert_eq!(
            (spec.hostname.as_str(), spec.domainname.as_str()),
            ("box", "example.org")
        );
        assert_eq!(spec.name, "mine");

        service.uts = "host".into();
        let e = inner(spec_with(&service, &image()).unwrap_err());
        assert_eq!(
            e.to_string(),
            "conflicting options: hostname and the UTS mode"
        );
        service.hostname.clear();
        assert_eq!(spec_with(&service, &image()).unwrap().hostname, "the-host");
    }

    // --- ulimits ---

    fn ul(pairs: &[(&str, i64, i64, i64)]) -> IndexMap<String, UlimitsConfig> {
        pairs
            .iter()
            .map(|(n, single, soft, hard)| {
                (
                    n.to_string(),
                    UlimitsConfig {
                        single: *single,
                        soft: *soft,
                        hard: *hard,
                        ..Default::default()
                    },
                )
            })
            .collect()
    }

    #[test]
    fn ulimits_values() {
        let out = resolve_ulimits(
            &ul(&[("nofile", 1024, 0, 0), ("nproc", 0, 10, 20)]),
            &host(),
        )
        .unwrap();
        assert_eq!(out[0].name, "nofile");
        assert_eq!(out[0].resource, libc::RLIMIT_NOFILE as i32);
        assert_eq!((out[0].soft, out[0].hard), (1024, 1024));
        assert_eq!((out[1].soft, out[1].hard), (10, 20));
        let out = resolve_ulimits(&ul(&[("core", -1, 0, 0)]), &host()).unwrap();
        assert_eq!(out[0].hard, RLIM_INFINITY);
    }

    #[test]
    fn ulimit_errors() {
        let e = resolve_ulimits(&ul(&[("nofile", 0, 1024, 2_000_000)]), &host()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ulimits.nofile: the hard limit 2000000 is above rcompose's own hard limit 524288; \
             raising a hard limit needs CAP_SYS_RESOURCE, which this process lacks: lower the \
             limit or start rcompose with a higher one"
        );
        let e = resolve_ulimits(&ul(&[("nofile", -1, 0, 0)]), &host()).unwrap_err();
        assert!(e.to_string().contains("the hard limit unlimited"), "{e}");
        let e = resolve_ulimits(&ul(&[("nproc", 0, 20, 10)]), &host()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ulimits.nproc: the soft limit 20 is above the hard limit 10"
        );
        let e = resolve_ulimits(&ul(&[("files", 1, 0, 0)]), &host()).unwrap_err();
        assert!(
            e.to_string().starts_with("invalid ulimit name \"files\""),
            "{e}"
        );
        let e = resolve_ulimits(&ul(&[("core", -5, 0, 0)]), &host()).unwrap_err();
        assert!(matches!(e, SpecError::UlimitValue { value: -5, .. }));
    }

    // --- resources ---

    fn deploy(limits: Resource, reservations: Option<Resource>) -> Option<DeployConfig> {
        Some(DeployConfig {
            resources: DeployResources {
                limits: Some(limits),
                reservations,
                ..Default::default()
            },
            ..Default::default()
        })
    }

    const MIB: i64 = 1024 * 1024;

    #[test]
    fn memory_limits_and_swap() {
        let mut service = svc();
        service.mem_limit = UnitBytes(512 * MIB);
        let r = resolve_resources(&service, &host()).unwrap();
        assert_eq!(r.memory, Some(512 * MIB as u64));
        assert_eq!(r.memory_swap, Some(MemorySwap::Limit(1024 * MIB as u64)));
        service.memswap_limit = UnitBytes(-1);
        let r = resolve_resources(&service, &host()).unwrap();
        assert_eq!(r.memory_swap, Some(MemorySwap::Unlimited));
        service.memswap_limit = UnitBytes(512 * MIB);
        let r = resolve_resources(&service, &host()).unwrap();
        assert_eq!(r.memory_swap, Some(MemorySwap::Limit(512 * MIB as u64)));

        service.memswap_limit = UnitBytes(100 * MIB);
        let e = resolve_resources(&service, &host()).unwrap_err();
        assert!(matches!(e, SpecError::SwapBelowMemory { .. }), "{e}");
        let mut service = svc();
        service.memswap_limit = UnitBytes(100 * MIB);
        let e = resolve_resources(&service, &host()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "memswap_limit needs mem_limit: a swap limit without a memory limit is refused"
        );
        let mut service = svc();
        service.mem_limit = UnitBytes(MIB);
        let e = resolve_resources(&service, &host()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "mem_limit 1048576 is below the minimum of 6 MiB"
        );
    }

    #[test]
    fn deploy_limits_and_reservations() {
        let mut service = svc();
        service.deploy = deploy(
            Resource {
                memory: UnitBytes(256 * MIB),
                cpus: 0.5,
                pids: 100,
                ..Default::default()
            },
            Some(Resource {
                memory: UnitBytes(64 * MIB),
                ..Default::default()
            }),
        );
        let r = resolve_resources(&service, &host()).unwrap();
        assert_eq!(r.memory, Some(256 * MIB as u64));
        assert_eq!(r.memory_reservation, Some(64 * MIB as u64));
        assert_eq!(r.pids_limit, Some(100));
        assert_eq!(
            r.cpu,
            Some(CpuQuota {
                quota: 50_000,
                period: CPU_PERIOD
            })
        );
        // Equal values on both sides are fine; distinct ones are refused as compose-go does.
        service.mem_limit = UnitBytes(256 * MIB);
        assert!(resolve_resources(&service, &host()).is_ok());
        service.mem_limit = UnitBytes(128 * MIB);
        let e = resolve_resources(&service, &host()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "can't set distinct values on 'mem_limit' and 'deploy.resources.limits.memory'"
        );
        service.mem_limit = UnitBytes(0);
        service.pids_limit = 5;
        assert!(matches!(
            resolve_resources(&service, &host()),
            Err(SpecError::Distinct("pids_limit", _))
        ));
    }

    #[test]
    fn reservation_above_limit() {
        let mut service = svc();
        service.mem_limit = UnitBytes(64 * MIB);
        service.mem_reservation = UnitBytes(128 * MIB);
        let e = resolve_resources(&service, &host()).unwrap_err();
        assert!(matches!(e, SpecError::ReservationAboveLimit { .. }), "{e}");
    }

    #[test]
    fn cpus_shares_cpuset_pids_oom() {
        let mut service = svc();
        service.cpus = 1.5;
        service.cpu_shares = 512;
        service.cpuset = "0-1,3".into();
        service.pids_limit = -1;
        service.oom_score_adj = -500;
        let r = resolve_resources(&service, &host()).unwrap();
        assert_eq!(r.cpu.unwrap().quota, 150_000);
        assert_eq!(r.cpu_shares, Some(512));
        assert_eq!(r.cpuset_cpus.as_deref(), Some("0-1,3"));
        assert_eq!(r.pids_limit, None);
        assert_eq!(r.oom_score_adj, -500);
        // float32 arithmetic as compose does it: 0.1 CPU is 10 ms per 100 ms.
        service.cpus = 0.1;
        assert_eq!(
            resolve_resources(&service, &host())
                .unwrap()
                .cpu
                .unwrap()
                .quota,
            10_000
        );

        service.cpus = 8.0;
        let e = resolve_resources(&service, &host()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cpus 8: the range of CPUs is from 0.01 to 4.00, as there are only 4 CPUs available"
        );
        service.cpus = 1.0;
        service.cpu_quota = 50_000;
        assert!(matches!(
            resolve_resources(&service, &host()),
            Err(SpecError::CpusConflict)
        ));
        service.cpus = 0.0;
        let r = resolve_resources(&service, &host()).unwrap();
        assert_eq!(
            r.cpu,
            Some(CpuQuota {
                quota: 50_000,
                period: CPU_PERIOD
            })
        );

        service.cpuset = "0-7".into();
        let e = resolve_resources(&service, &host()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid cpuset \"0-7\": CPU 7 is not available: the host has CPUs 0-3"
        );
        service.cpuset = "a".into();
        assert!(matches!(
            resolve_resources(&service, &host()),
            Err(SpecError::Cpuset { .. })
        ));
        service.cpuset.clear();
        service.oom_score_adj = 1001;
        let e = resolve_resources(&service, &host()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "oom_score_adj 1001 is out of range: expected -1000 to 1000"
        );
    }

    // --- signals ---

    #[test]
    fn stop_signal_names_and_numbers() {
        assert_eq!(Signal::parse("SIGTERM").unwrap().number, 15);
        assert_eq!(Signal::parse("quit").unwrap().name, "SIGQUIT");
        assert_eq!(Signal::parse("9").unwrap().name, "SIGKILL");
        assert_eq!(Signal::parse("SIGRTMIN+3").unwrap().number, 37);
        assert_eq!(Signal::parse("RTMAX-1").unwrap().name, "SIGRTMAX-1");
        assert_eq!(Signal::parse("64").unwrap().name, "SIGRTMAX");
        for bad in ["SIGFOO", "0", "65", "-1", "", "RTMIN+40"] {
            let e = Signal::parse(bad).unwrap_err();
            assert!(
                e.to_string().starts_with("invalid stop_signal"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn stop_signal_precedence_and_grace_period() {
        let img = RuntimeConfig {
            stop_signal: "SIGQUIT".into(),
            ..image()
        };
        assert_eq!(spec_with(&svc(), &image()).unwrap().stop_signal.number, 15);
        assert_eq!(spec_with(&svc(), &img).unwrap().stop_signal.number, 3);
        let mut service = svc();
        service.stop_signal = "SIGUSR1".into();
        service.stop_grace_period = Some(Duration::from_secs(3).into());
        let spec = spec_with(&service, &img).unwrap();
        assert_eq!(spec.stop_signal.number, 10);
        assert_eq!(spec.stop_grace_period, Duration::from_secs(3));
        assert_eq!(
            spec_with(&svc(), &img).unwrap().stop_grace_period,
            DEFAULT_STOP_GRACE_PERIOD
        );
        service.stop_signal = "NOPE".into();
        assert!(matches!(
            inner(spec_with(&service, &img).unwrap_err()),
            SpecError::Signal(_)
        ));
    }

    // --- capabilities and security ---

    #[test]
    fn capabilities() {
        let d = resolve_capabilities(&[], &[], false).unwrap();
        assert_eq!(d, CapSet::docker_default().names());
        let c = resolve_capabilities(
            &s(&["net_admin", "CAP_SYS_PTRACE"]),
            &s(&["MKNOD", "cap_kill"]),
            false,
        )
        .unwrap();
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(c.contains(&"CAP_SYS_PTRACE".to_string()));
        assert!(!c.contains(&"CAP_MKNOD".to_string()));
        assert!(!c.contains(&"CAP_KILL".to_string()));
        assert_eq!(c.len(), 14);
        let c = resolve_capabilities(&s(&["ALL"]), &s(&["SYS_ADMIN"]), false).unwrap();
        let all = CapSet::all().unwrap().names().len();
        assert_eq!(c.len(), all - 1);
        let c = resolve_capabilities(&s(&["chown"]), &s(&["all"]), false).unwrap();
        assert_eq!(c, s(&["CAP_CHOWN"]));
        let c = resolve_capabilities(&[], &s(&["ALL"]), true).unwrap();
        assert_eq!(c.len(), all);
        let e = resolve_capabilities(&s(&["SYS_MAGIC"]), &[], false).unwrap_err();
        assert!(e.to_string().contains("SYS_MAGIC"), "{e}");
    }

    #[test]
    fn security_opts() {
        let mut w = Vec::new();
        let o = parse_security_opts(
            &s(&[
                "no-new-privileges",
                "seccomp=unconfined",
                "apparmor=foo",
                "label=disable",
            ]),
            &mut w,
        )
        .unwrap();
        assert!(o.no_new_privileges);
        assert_eq!(o.seccomp, Seccomp::Unconfined);
        assert_eq!(o.labels, s(&["disable"]));
        assert_eq!(
            w,
            s(&["security_opt \"apparmor=foo\" ignored: no AppArmor support"])
        );
        let o = parse_security_opts(&s(&["no-new-privileges:false", "seccomp=./p.json"]), &mut w)
            .unwrap();
        assert!(!o.no_new_privileges);
        assert_eq!(o.seccomp, Seccomp::Profile("./p.json".into()));
        for bad in ["bogus", "foo=bar", "no-new-privileges=maybe", "seccomp="] {
            let e = parse_security_opts(&s(&[bad]), &mut w).unwrap_err();
            assert!(
                e.to_string().starts_with("invalid security_opt"),
                "{bad}: {e}"
            );
        }
    }

    // --- namespaces, sysctls, tmpfs, devices ---

    #[test]
    fn namespaces() {
        let mut service = svc();
        service.pid = "host".into();
        service.ipc = "service:db".into();
        service.uts = "container:other".into();
        service.network_mode = "none".into();
        let n = resolve_namespaces(&service).unwrap();
        assert_eq!(n.pid, NamespaceMode::Host);
        assert_eq!(n.ipc, NamespaceMode::Service("db".into()));
        assert_eq!(n.uts, NamespaceMode::Container("other".into()));
        assert_eq!(n.network, NetworkMode::None);
        service.pid = "bogus".into();
        let e = resolve_namespaces(&service).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid pid \"bogus\": expected host, service:NAME or container:NAME"
        );
        let mut service = svc();
        service.network_mode = "service:".into();
        assert!(resolve_namespaces(&service).is_err());
        service.network_mode = "service:db".into();
        assert_eq!(
            resolve_namespaces(&service).unwrap().network,
            NetworkMode::Service("db".into())
        );
        assert_eq!(resolve_namespaces(&service).unwrap().cgroup_private, None);
        for (mode, private) in [("private", true), ("host", false)] {
            service.cgroup = mode.into();
            assert_eq!(
                resolve_namespaces(&service).unwrap().cgroup_private,
                Some(private)
            );
        }
        service.cgroup = "shared".into();
        assert!(resolve_namespaces(&service).is_err());
    }

    #[test]
    fn sysctls() {
        let mut service = svc();
        service
            .sysctls
            .insert("net.core.somaxconn".into(), "1024".into());
        service.sysctls.insert("kernel.shmmax".into(), "1".into());
        let out = resolve_sysctls(&service, &Namespaces::default()).unwrap();
        assert_eq!(out.len(), 2);
        let host_net = Namespaces {
            network: NetworkMode::Host,
            ..Default::default()
        };
        let e = resolve_sysctls(&service, &host_net).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("sysctl \"net.core.somaxconn\" is not allowed"));
        let mut service = svc();
        service.sysctls.insert("vm.swappiness".into(), "1".into());
        let e = resolve_sysctls(&service, &Namespaces::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sysctl \"vm.swappiness\" is not allowed: it is not namespaced, so it would change the host"
        );
    }

    #[test]
    fn tmpfs_mounts() {
        let mut service = svc();
        service.tmpfs = s(&["/run", "/tmp:exec,size=64m", "/x/../cache:ro,mode=1777"]);
        let t = resolve_tmpfs(&service).unwrap();
        assert_eq!(t[0].options, s(&["noexec", "nosuid", "nodev"]));
        assert_eq!(t[1].options, s(&["nosuid", "nodev", "exec", "size=64m"]));
        assert_eq!(t[2].target, "/cache");
        assert_eq!(
            t[2].options,
            s(&["noexec", "nosuid", "nodev", "ro", "mode=1777"])
        );
        service.tmpfs = s(&["tmp"]);
        let e = resolve_tmpfs(&service).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid tmpfs target \"tmp\": it must be an absolute path"
        );
    }

    #[test]
    fn devices() {
        let mut service = svc();
        service.devices = vec![
            DeviceMapping {
                source: "/dev/fuse".into(),
                ..Default::default()
            },
            DeviceMapping {
                source: "/dev/sda".into(),
                target: "/dev/xvda".into(),
                permissions: "r".into(),
                ..Default::default()
            },
        ];
        let d = resolve_devices(&service).unwrap();
        assert_eq!(
            d[0],
            Device {
                host_path: "/dev/fuse".into(),
                container_path: "/dev/fuse".into(),
                permissions: "rwm".into()
            }
        );
        assert_eq!(
            (d[1].container_path.as_str(), d[1].permissions.as_str()),
            ("/dev/xvda", "r")
        );
        service.devices[1].permissions = "rwx".into();
        assert!(resolve_devices(&service).is_err());
    }

    #[test]
    fn full_build() {
        let mut service = svc();
        service.tty = true;
        service.stdin_open = true;
        service.read_only = true;
        service.init = Some(true);
        service.shm_size = UnitBytes(128 * MIB);
        service.labels.insert("a".into(), "service".into());
        service.security_opt = s(&["apparmor=x"]);
        let img = RuntimeConfig {
            labels: [
                ("a".to_string(), "image".to_string()),
                ("b".into(), "image".into()),
            ]
            .into_iter()
            .collect(),
            working_dir: "/srv".into(),
            ..image()
        };
        let spec = spec_with(&service, &img).unwrap();
        assert!(spec.tty && spec.stdin_open && spec.read_only && spec.init && !spec.privileged);
        assert_eq!(spec.args, s(&["sh"]));
        assert_eq!(spec.cwd, "/srv");
        assert_eq!(spec.shm_size, Some(128 * MIB as u64));
        assert_eq!(spec.labels["a"], "service");
        assert_eq!(spec.labels["b"], "image");
        assert!(spec.env.contains(&"TERM=xterm".to_string()));
        assert_eq!(spec.user.uid, 0);
        assert_eq!(spec.warnings.len(), 1);
        assert_eq!(spec.rootfs_layers.len(), 1);
    }

    #[test]
    fn host_limits_reads_this_process() {
        let h = HostLimits::current();
        let (soft, hard) = h.rlimits["nofile"];
        assert!(soft <= hard);
        assert!(h.cpus >= 1);
    }
}
