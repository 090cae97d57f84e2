//! A container as a whole: its state directory (writable layer, managed files), its cgroup, its
//! process, and its removal. [`Container::create`] prepares everything that does not need the
//! process, [`Container::spawn`] creates it (waiting in the helper), [`Container::start`]
//! releases it into the command, [`Container::destroy`] removes what `create` made.

use std::fs;
use std::io;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::caps::CapSet;
use super::cgroups::{self, Cgroup, DeviceRule, Hierarchy};
use super::init::{InitConfig, ProcessConfig, RootfsSetup};
use super::process::{self, Namespaces, ProcessError, SpawnRequest, Spawned, Stdio};
use super::rootfs::{self, Layout, MountOp, MountRequest};
use super::seccomp::{self, BpfProgram, Profile};
use super::spec::{ContainerSpec, MemorySwap, NamespaceMode, NetworkMode, Seccomp};

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("cannot prepare the container directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot create the cgroup of container {name}: {source}")]
    Cgroup {
        name: String,
        #[source]
        source: cgroups::CgroupError,
    },
    #[error(transparent)]
    Rootfs(#[from] rootfs::RootfsError),
    #[error("seccomp profile of container {name}: {source}")]
    Seccomp {
        name: String,
        #[source]
        source: seccomp::SeccompError,
    },
    #[error("capabilities of container {name}: {source}")]
    Caps {
        name: String,
        #[source]
        source: super::caps::CapsError,
    },
    #[error("container {name}: {source}")]
    Process {
        name: String,
        #[source]
        source: ProcessError,
    },
    #[error("container {name}: {what} is not supported yet")]
    Unsupported { name: String, what: String },
    #[error("container {name}: cannot use device {path}: {source}")]
    Device {
        name: String,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot remove container {name}: {message}")]
    Remove { name: String, message: String },
}

/// What the caller decides beyond the spec.
#[derive(Debug, Clone)]
pub struct Options {
    /// The rcompose binary to run as the helper.
    pub helper: PathBuf,
    /// The container's directory (`$RCOMPOSE_ROOT/containers/<id>`); created, removed by
    /// [`Container::destroy`].
    pub dir: PathBuf,
    /// The cgroup, relative to each hierarchy's root (`rcompose/<project>/<name>`).
    pub cgroup: String,
    /// Binds (volumes) and tmpfs mounts beyond the spec's own.
    pub mounts: Vec<MountRequest>,
    /// Contents of the managed `/etc/hosts` and `/etc/resolv.conf` (`None`: the image's).
    pub hosts: Option<String>,
    pub resolv_conf: Option<String>,
    /// Where a relative `seccomp=PATH` profile is found (the project directory).
    pub base_dir: PathBuf,
    /// For `tty` containers: the initial window size (rows, columns).
    pub tty_size: Option<(u16, u16)>,
    /// Processes of these containers whose namespaces `service:`/`container:` modes name,
    /// by the name given in the spec (`service:db` → `db`).
    pub namespace_peers: Vec<(String, i32)>,
}

/// A created container: directory, cgroup and configuration ready, no process yet.
pub struct Container {
    name: String,
    dir: PathBuf,
    cgroup: Option<Cgroup>,
    cgroup_path: String,
    namespaces: Namespaces,
    config: InitConfig,
}

/// What [`Container::save`] keeps in the container's directory, so another process (`exec`, a
/// new supervisor after a crash) can act on the container.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    name: String,
    cgroup: String,
    /// pid, uts, ipc, net: whether the container has its own.
    namespaces: [bool; 4],
    config: InitConfig,
}

const SAVED_FILE: &str = "container.json";

/// How a process ended, as docker reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ExitStatus {
    /// The exit code docker gives: the code, or 128 + the signal.
    pub fn docker_code(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => 255,
        }
    }
}

/// Waits for `pid` (a child of this process) to end.
pub fn wait(pid: i32) -> io::Result<ExitStatus> {
    loop {
        let mut status = 0;
        // SAFETY: a valid status pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        return Ok(if libc::WIFSIGNALED(status) {
            ExitStatus {
                code: None,
                signal: Some(libc::WTERMSIG(status)),
            }
        } else {
            ExitStatus {
                code: Some(libc::WEXITSTATUS(status)),
                signal: None,
            }
        });
    }
}

/// Docker's default seccomp program for a capability set, compiled once per process.
fn default_program(caps: &CapSet) -> Result<BpfProgram, seccomp::SeccompError> {
    static CACHE: OnceLock<std::sync::Mutex<Vec<(u64, BpfProgram)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Ok(c) = cache.lock() {
        if let Some((_, prog)) = c.iter().find(|(mask, _)| *mask == caps.mask()) {
            return Ok(prog.clone());
        }
    }
    let arch = seccomp::Arch::native()
        .ok_or_else(|| seccomp::SeccompError::Build("unsupported architecture".into()))?;
    let prog = seccomp::compile(&Profile::docker_default(), caps, arch)?;
    if let Ok(mut c) = cache.lock() {
        c.push((caps.mask(), prog.clone()));
    }
    Ok(prog)
}

impl Container {
    /// Prepares the container: directory, managed files, cgroup with its limits, mount plan,
    /// seccomp program. On failure nothing of it is left.
    pub fn create(spec: &ContainerSpec, opts: &Options) -> Result<Container, ContainerError> {
        let mut c = Container {
            name: spec.name.clone(),
            dir: opts.dir.clone(),
            cgroup: None,
            cgroup_path: opts.cgroup.clone(),
            namespaces: Namespaces::default(),
            config: InitConfig::default(),
        };
        match c.prepare(spec, opts) {
            Ok(()) => Ok(c),
            Err(e) => {
                let _ = c.destroy();
                Err(e)
            }
        }
    }

    fn prepare(&mut self, spec: &ContainerSpec, opts: &Options) -> Result<(), ContainerError> {
        let name = spec.name.clone();
        let state = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ContainerError::StateDir { path, source }
        };
        let layout = Layout {
            upper: self.dir.join("upper"),
            work: self.dir.join("work"),
            merged: self.dir.join("merged"),
            hosts: opts.hosts.as_ref().map(|_| self.dir.join("hosts")),
            resolv_conf: opts
                .resolv_conf
                .as_ref()
                .map(|_| self.dir.join("resolv.conf")),
            hostname: Some(self.dir.join("hostname")),
        };
        // Modes set explicitly, as docker's overlay2 makes them, whatever the caller's umask:
        // the overlay's root takes the upper directory's mode (0700 under umask 077 would lock
        // every non-root user out of the container's `/`), and the managed files must stay
        // readable by them.
        for (d, mode) in [
            (&layout.upper, 0o755),
            (&layout.work, 0o700),
            (&layout.merged, 0o700),
        ] {
            fs::create_dir_all(d)
                .and_then(|()| fs::set_permissions(d, fs::Permissions::from_mode(mode)))
                .map_err(state(d))?;
        }
        let hostname = format!("{}\n", spec.hostname);
        for (path, content) in [
            (&layout.hosts, opts.hosts.as_deref()),
            (&layout.resolv_conf, opts.resolv_conf.as_deref()),
            (&layout.hostname, Some(hostname.as_str())),
        ] {
            if let (Some(path), Some(content)) = (path, content) {
                write_0644(path, content).map_err(state(path))?;
            }
        }

        let hierarchy = Hierarchy::detect().map_err(|source| ContainerError::Cgroup {
            name: name.clone(),
            source,
        })?;
        let cgroup = Cgroup::create(&hierarchy, &opts.cgroup, &cgroup_resources(spec)?).map_err(
            |source| ContainerError::Cgroup {
                name: name.clone(),
                source,
            },
        )?;
        self.cgroup = Some(cgroup);

        let mut ops = rootfs::plan(spec, &layout, &opts.mounts)?;
        // On cgroup v2 the container sees its own cgroup (namespaced) read-only, as with docker.
        if hierarchy.is_v2() {
            if let Some(i) = ops
                .iter()
                .position(|op| matches!(op, MountOp::Mount { fstype, .. } if fstype == "sysfs"))
            {
                ops.insert(
                    i + 1,
                    MountOp::Mount {
                        fstype: "cgroup2".into(),
                        target: "/sys/fs/cgroup".into(),
                        flags: nix::mount::MsFlags::MS_NOSUID
                            | nix::mount::MsFlags::MS_NOEXEC
                            | nix::mount::MsFlags::MS_NODEV
                            | nix::mount::MsFlags::MS_RDONLY,
                        data: None,
                    },
                );
            }
        }

        let caps =
            CapSet::from_names(&spec.capabilities).map_err(|source| ContainerError::Caps {
                name: name.clone(),
                source,
            })?;
        let seccomp_err = |source| ContainerError::Seccomp {
            name: name.clone(),
            source,
        };
        let program = match (&spec.security.seccomp, spec.privileged) {
            (_, true) | (Seccomp::Unconfined, _) => None,
            (Seccomp::Default, _) => Some(default_program(&caps).map_err(seccomp_err)?),
            (Seccomp::Profile(path), _) => {
                let profile = Profile::from_file(&opts.base_dir.join(path)).map_err(seccomp_err)?;
                let arch = seccomp::Arch::native().ok_or_else(|| {
                    seccomp_err(seccomp::SeccompError::Build(
                        "unsupported architecture".into(),
                    ))
                })?;
                Some(seccomp::compile(&profile, &caps, arch).map_err(seccomp_err)?)
            }
        };

        let ns = &spec.namespaces;
        let mut join = Vec::new();
        let mut peer = |mode_name: &str, kind: &str, flag: i32| -> Result<(), ContainerError> {
            let pid = opts
                .namespace_peers
                .iter()
                .find(|(n, _)| n == mode_name)
                .map(|(_, pid)| *pid)
                .ok_or_else(|| ContainerError::Unsupported {
                    name: name.clone(),
                    what: format!("sharing the {kind} namespace of {mode_name} (not running)"),
                })?;
            join.push((PathBuf::from(format!("/proc/{pid}/ns/{kind}")), flag));
            Ok(())
        };
        let mut namespaces = Namespaces::default();
        for (mode, kind, flag, new) in [
            (&ns.pid, "pid", libc::CLONE_NEWPID, &mut namespaces.pid),
            (&ns.ipc, "ipc", libc::CLONE_NEWIPC, &mut namespaces.ipc),
            (&ns.uts, "uts", libc::CLONE_NEWUTS, &mut namespaces.uts),
        ] {
            match mode {
                NamespaceMode::Private => *new = true,
                NamespaceMode::Host => {}
                NamespaceMode::Service(s) | NamespaceMode::Container(s) => peer(s, kind, flag)?,
            }
        }
        match &ns.network {
            NetworkMode::Host => {}
            NetworkMode::Service(s) | NetworkMode::Container(s) => {
                peer(s, "net", libc::CLONE_NEWNET)?
            }
            _ => namespaces.net = true,
        }
        self.namespaces = namespaces;

        let init_cfg = InitConfig {
            join,
            // docker's default: private on v2, the host's on v1.
            new_cgroup_ns: spec.namespaces.cgroup_private.unwrap_or(hierarchy.is_v2()),
            hostname: namespaces.uts.then(|| spec.hostname.clone()),
            domainname: namespaces.uts.then(|| spec.domainname.clone()),
            sysctls: spec.sysctls.clone(),
            loopback_up: namespaces.net,
            rootfs: Some(RootfsSetup {
                root: layout.merged.clone(),
                ops,
            }),
            init: spec.init,
            process: ProcessConfig {
                args: spec.args.clone(),
                env: spec.env.clone(),
                cwd: spec.cwd.clone(),
                create_cwd: true,
                uid: spec.user.uid,
                gid: spec.user.gid,
                additional_gids: spec.user.additional_gids.clone(),
                rlimits: container_rlimits(&spec.ulimits),
                oom_score_adj: (spec.resources.oom_score_adj != 0)
                    .then_some(spec.resources.oom_score_adj),
                capabilities: caps.mask(),
                no_new_privs: spec.security.no_new_privileges,
                seccomp: program,
                tty: spec.tty.then(|| opts.tty_size.unwrap_or((24, 80))),
            },
        };
        self.config = init_cfg;
        Ok(())
    }

    /// Writes the container's configuration into its directory (see [`Container::load`]).
    pub fn save(&self) -> Result<(), ContainerError> {
        let ns = self.namespaces;
        let saved = Saved {
            name: self.name.clone(),
            cgroup: self.cgroup_path.clone(),
            namespaces: [ns.pid, ns.uts, ns.ipc, ns.net],
            config: self.config.clone(),
        };
        let path = self.dir.join(SAVED_FILE);
        let body = serde_json::to_vec(&saved).map_err(|e| ContainerError::StateDir {
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        let tmp = self.dir.join(format!("{SAVED_FILE}.tmp"));
        fs::write(&tmp, body)
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|source| ContainerError::StateDir { path, source })
    }

    /// A container created (and saved) by this or another process, from its directory. Its
    /// cgroup is opened when it still exists.
    pub fn load(dir: &Path) -> Result<Container, ContainerError> {
        let path = dir.join(SAVED_FILE);
        let state = |source| ContainerError::StateDir {
            path: path.clone(),
            source,
        };
        let body = fs::read(&path).map_err(state)?;
        let saved: Saved = serde_json::from_slice(&body).map_err(|e| state(io::Error::other(e)))?;
        let cgroup = Hierarchy::detect()
            .ok()
            .and_then(|h| Cgroup::open(&h, &saved.cgroup).ok());
        let [pid, uts, ipc, net] = saved.namespaces;
        Ok(Container {
            name: saved.name,
            dir: dir.to_path_buf(),
            cgroup,
            cgroup_path: saved.cgroup,
            namespaces: Namespaces { pid, uts, ipc, net },
            config: saved.config,
        })
    }

    /// The container's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the container has a network namespace of its own (to plug interfaces into).
    pub fn has_own_network(&self) -> bool {
        self.namespaces.net
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    /// The helper's configuration (tests and `exec` read it).
    pub fn config(&self) -> &InitConfig {
        &self.config
    }

    /// Creates the process, in its namespaces and cgroup, waiting for [`Container::start`] (the
    /// network is set up in between).
    pub fn spawn(&self, helper: &Path, stdio: Stdio) -> Result<Spawned, ContainerError> {
        let spawned = self.spawn_with(helper, self.namespaces, stdio, true)?;
        // The helper builds the rootfs while the caller sets the network up. A failed send
        // (the helper is gone) is retried, and its reason read, by `start`.
        let _ = spawned.configure(&self.config);
        Ok(spawned)
    }

    /// Creates a process in new `namespaces` and in the container's cgroup. Only the `first`
    /// (the container's own) may be forked from inside a v1 cgroup ([`cgroups::ThreadJoin`]):
    /// a running container may be paused or killed meanwhile, which a thread of ours inside
    /// would share.
    fn spawn_with(
        &self,
        helper: &Path,
        namespaces: Namespaces,
        stdio: Stdio,
        first: bool,
    ) -> Result<Spawned, ContainerError> {
        let cgroup_err = |source| ContainerError::Cgroup {
            name: self.name.clone(),
            source,
        };
        let cgroup_fd: Option<OwnedFd> = match &self.cgroup {
            Some(cg) => cg.dir_fd().map_err(cgroup_err)?,
            None => None,
        };
        let thread_join = match (first, &self.cgroup) {
            (true, Some(cg)) => cg.thread_join(),
            _ => None,
        };
        let spawned = process::spawn(&SpawnRequest {
            helper,
            namespaces,
            cgroup: cgroup_fd.as_ref().map(|fd| fd.as_fd()),
            join_cgroup: thread_join.as_ref(),
            stdio,
        })
        .map_err(|source| ContainerError::Process {
            name: self.name.clone(),
            source,
        })?;
        if let (false, Some(cg)) = (spawned.in_cgroup(), &self.cgroup) {
            if let Err(source) = cg.add_pid(spawned.pid()) {
                // SAFETY: killing and reaping our own child.
                unsafe { libc::kill(spawned.pid(), libc::SIGKILL) };
                let _ = wait(spawned.pid());
                return Err(cgroup_err(source));
            }
        }
        Ok(spawned)
    }

    /// Lets the spawned process run the command; returns the pty master of a `tty` container.
    /// On failure the process has exited (the caller still waits for it).
    pub fn start(&self, spawned: &Spawned) -> Result<Option<OwnedFd>, ContainerError> {
        spawned
            .start(&self.config)
            .map_err(|source| ContainerError::Process {
                name: self.name.clone(),
                source,
            })
    }

    /// Whether the OOM killer killed a process of the container.
    pub fn oom_killed(&self) -> bool {
        self.cgroup
            .as_ref()
            .and_then(|cg| cg.oom_killed().ok())
            .unwrap_or(false)
    }

    /// Kills every process left in the cgroup.
    pub fn kill_all(&self) -> Result<(), ContainerError> {
        if let Some(cg) = &self.cgroup {
            cg.kill_all().map_err(|source| ContainerError::Cgroup {
                name: self.name.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Removes the cgroup of a stopped container whose directory stays (`run` without `--rm`).
    pub fn release_cgroup(mut self) -> Result<(), ContainerError> {
        if let Some(cg) = self.cgroup.take() {
            let remove = cg.kill_all().and_then(|()| cg.remove());
            remove.map_err(|source| ContainerError::Cgroup {
                name: self.name.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Removes everything [`Container::create`] made: the processes left, the cgroup, the
    /// directory. Goes on past errors and reports them all.
    pub fn destroy(mut self) -> Result<(), ContainerError> {
        let mut errors = Vec::new();
        if let Some(cg) = self.cgroup.take() {
            if let Err(e) = cg.kill_all() {
                errors.push(e.to_string());
            }
            if let Err(e) = cg.remove() {
                errors.push(e.to_string());
            }
        }
        // Only the directory itself: never through a link put in its place.
        let removed = match self.dir.parent() {
            Some(parent) => crate::paths::remove_store_dir(parent, &self.dir),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "refusing to remove a directory without a parent",
            )),
        };
        if let Err(e) = removed {
            errors.push(format!("{}: {e}", self.dir.display()));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ContainerError::Remove {
                name: self.name,
                message: errors.join("; "),
            })
        }
    }
}

/// What `exec` runs in a running container, beyond the container's own process settings.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub args: Vec<String>,
    /// `KEY=VALUE` entries added to (and overriding) the container's environment.
    pub env: Vec<String>,
    /// `-u`: resolved in the container's own `/etc/passwd` and `/etc/group`.
    pub user: Option<String>,
    pub workdir: Option<String>,
    /// A pty of this size (rows, columns).
    pub tty: Option<(u16, u16)>,
    /// All capabilities, no seccomp filter (`--privileged`).
    pub privileged: bool,
}

impl Container {
    /// Starts a process in the running container whose first process is `pid`: all its
    /// namespaces, its cgroup, its capabilities, seccomp filter, user and environment unless
    /// the request changes them. Returns the process (wait for it with [`wait`]; the helper
    /// relays its exit status) and, with a tty, the pty master.
    pub fn exec(
        &self,
        helper: &Path,
        pid: i32,
        req: &ExecRequest,
        stdio: Stdio,
    ) -> Result<(Spawned, Option<OwnedFd>), ContainerError> {
        let err = |source| ContainerError::Process {
            name: self.name.clone(),
            source,
        };
        let base = &self.config.process;
        let mut p = base.clone();
        p.args = req.args.clone();
        for e in &req.env {
            let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
            p.env
                .retain(|old| old.split_once('=').map_or(old.as_str(), |(k, _)| k) != key);
            p.env.push(e.clone());
        }
        if let Some(user) = &req.user {
            let u = super::spec::resolve_user_in_container(pid, user).map_err(|e| {
                err(ProcessError::Start {
                    message: e.to_string(),
                    code: 1,
                })
            })?;
            p.uid = u.uid;
            p.gid = u.gid;
            p.additional_gids = u.additional_gids;
        }
        if let Some(w) = &req.workdir {
            p.cwd = w.clone();
        }
        p.create_cwd = false;
        p.tty = req.tty;
        // The container's own limits were set on its first process; exec inherits nothing
        // from it, so they are set again (docker's exec gets the container's rlimits too).
        p.oom_score_adj = None;
        if req.privileged {
            p.capabilities = CapSet::all()
                .map_err(|source| ContainerError::Caps {
                    name: self.name.clone(),
                    source,
                })?
                .mask();
            p.seccomp = None;
        }
        let mut join = Vec::new();
        for (kind, flag) in [
            ("ipc", libc::CLONE_NEWIPC),
            ("uts", libc::CLONE_NEWUTS),
            ("net", libc::CLONE_NEWNET),
            ("pid", libc::CLONE_NEWPID),
            ("cgroup", libc::CLONE_NEWCGROUP),
            ("mnt", libc::CLONE_NEWNS),
        ] {
            join.push((PathBuf::from(format!("/proc/{pid}/ns/{kind}")), flag));
        }
        let config = InitConfig {
            join,
            process: p,
            ..InitConfig::default()
        };
        let spawned = self.spawn_with(helper, Namespaces::default(), stdio, false)?;
        match spawned.start(&config) {
            Ok(pty) => Ok((spawned, pty)),
            Err(source) => {
                let _ = wait(spawned.pid());
                Err(err(source))
            }
        }
    }
}

/// The spec's limits in the cgroup module's terms.
/// The limits a container's processes are given: its `ulimits`, and the open-files limit the
/// supervisor was started with when they do not set one (the supervisor raised its own,
/// [`super::nofile`]).
fn container_rlimits(ulimits: &[super::spec::Ulimit]) -> Vec<(i32, u64, u64)> {
    let mut out: Vec<(i32, u64, u64)> = ulimits
        .iter()
        .map(|u| (u.resource, u.soft, u.hard))
        .collect();
    let nofile = libc::RLIMIT_NOFILE as i32;
    if let Some((soft, hard)) = super::nofile::inherited() {
        if !out.iter().any(|&(r, _, _)| r == nofile) {
            out.push((nofile, soft, hard));
        }
    }
    out
}

fn cgroup_resources(spec: &ContainerSpec) -> Result<cgroups::Resources, ContainerError> {
    let r = &spec.resources;
    let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    Ok(cgroups::Resources {
        memory: r.memory.map(signed),
        memory_swap: r.memory_swap.as_ref().map(|s| match *s {
            MemorySwap::Limit(v) => signed(v),
            MemorySwap::Unlimited => -1,
        }),
        memory_reservation: r.memory_reservation.map(signed),
        memory_swappiness: r.memory_swappiness,
        oom_kill_disable: r.oom_kill_disable,
        cpu_quota: r.cpu.map(|c| signed(c.quota)),
        cpu_period: r.cpu.map(|c| c.period),
        cpu_shares: r.cpu_shares,
        cpuset_cpus: r.cpuset_cpus.clone(),
        cpuset_mems: r.cpuset_mems.clone(),
        pids_limit: r.pids_limit.map(signed),
        devices: Some(device_rules(spec)?),
    })
}

/// Docker's device allow list: all for `privileged`, else the defaults, the `devices` (with
/// their permissions) and `device_cgroup_rules`.
fn device_rules(spec: &ContainerSpec) -> Result<Vec<DeviceRule>, ContainerError> {
    if spec.privileged {
        return Ok(vec![DeviceRule::all()]);
    }
    let mut rules = cgroups::default_device_rules();
    for d in &spec.devices {
        let err = |source| ContainerError::Device {
            name: spec.name.clone(),
            path: d.host_path.clone(),
            source,
        };
        let access = cgroups::parse_access(&d.permissions).map_err(|e| err(io::Error::other(e)))?;
        rules.push(cgroups::rule_for_node(Path::new(&d.host_path), access).map_err(err)?);
    }
    rules.extend(spec.device_cgroup_rules.iter().cloned());
    Ok(rules)
}

/// Writes `content` to `path` as a 0644 file (`fchmod`, so the caller's umask plays no part).
fn write_0644(path: &Path, content: &str) -> io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.set_permissions(fs::Permissions::from_mode(0o644))?;
    f.write_all(content.as_bytes())
}
