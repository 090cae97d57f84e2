//! A RUN step: one container made by rcompose's runtime, with the default isolation
//! (namespaces, seccomp, docker's capabilities), on an overlay of the step's parent layers. Its
//! change is the overlay upper directory, which the caller turns into a layer.

use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::BuildError;
use crate::compose::model::{HostsList, Project, ServiceConfig, UlimitsConfig, UnitBytes};
use crate::image::config::RuntimeConfig;
use crate::runtime::container::{self, Container, ExitStatus, Options};
use crate::runtime::process::Stdio;
use crate::runtime::rootfs::MountRequest;
use crate::runtime::spec::{self, HostLimits};

/// BuildKit's hostname for build containers; scripts that record it see the same name.
pub const HOSTNAME: &str = "buildkitsandbox";

/// How many of a failing step's last output lines its error shows.
pub const TAIL_LINES: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// A network namespace of its own with a route out (BuildKit's default).
    #[default]
    Default,
    /// Only a loopback interface.
    None,
    /// The host's network namespace (asked for explicitly, as BuildKit's entitlement).
    Host,
}

/// One RUN step, fully resolved by the executor.
#[derive(Debug, Clone, Default)]
pub struct RunStep {
    /// The parent's unpacked layer directories, bottom first (never empty).
    pub layers: Vec<PathBuf>,
    /// The command, shell already applied.
    pub args: Vec<String>,
    /// `KEY=VALUE`: the image's environment, then the build args in scope.
    pub env: Vec<String>,
    pub cwd: String,
    /// The USER in effect (`name`, `uid`, `uid:gid`...), resolved in the parent's layers.
    pub user: String,
    pub network: Network,
    pub extra_hosts: HostsList,
    pub shm_size: Option<u64>,
    pub ulimits: IndexMap<String, UlimitsConfig>,
    pub privileged: bool,
    /// `RUN --mount`s and secrets, as runtime mounts.
    pub mounts: Vec<MountRequest>,
    /// The contents of `/etc/resolv.conf` for a step with a network.
    pub resolv_conf: Option<String>,
}

/// A finished RUN step: its container directory (the change is in `upper`), exit status and the
/// last lines it printed.
pub struct Finished {
    pub dir: PathBuf,
    pub status: ExitStatus,
    pub tail: Vec<String>,
}

impl Finished {
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
}

/// The service that stands for a build step in the runtime's spec builder: the same defaults
/// and checks as a compose service, with the build's settings.
fn service_for(step: &RunStep) -> ServiceConfig {
    ServiceConfig {
        name: "build".into(),
        entrypoint: Some(Vec::new()),
        command: Some(step.args.clone()),
        hostname: if step.network == Network::Host {
            String::new()
        } else {
            HOSTNAME.into()
        },
        network_mode: match step.network {
            Network::Host => "host".into(),
            Network::None => "none".into(),
            Network::Default => String::new(),
        },
        extra_hosts: step.extra_hosts.clone(),
        shm_size: UnitBytes(step.shm_size.map(|s| s as i64).unwrap_or(0)),
        ulimits: step.ulimits.clone(),
        privileged: step.privileged,
        ..ServiceConfig::default()
    }
}

/// `/etc/hosts` of a build container, as BuildKit writes it.
fn hosts_file(step: &RunStep) -> String {
    let mut s = String::from("127.0.0.1\tlocalhost ");
    s.push_str(HOSTNAME);
    s.push_str("\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (host, ips) in &step.extra_hosts.0 {
        for ip in ips {
            s.push_str(&format!("{ip}\t{host}\n"));
        }
    }
    s
}

/// Runs the step in a container whose directory is `dir` (on the store's filesystem, so that
/// the upper directory can become a layer by a rename). Each output line goes to `on_line`;
/// `on_started` gets the process id (to join it to a network before it runs).
pub fn run(
    step: &RunStep,
    dir: &Path,
    helper: &Path,
    on_started: &mut dyn FnMut(i32) -> Result<(), BuildError>,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<Finished, BuildError> {
    let service = service_for(step);
    let project = Project {
        name: "build".into(),
        ..Project::default()
    };
    let image = RuntimeConfig {
        env: step.env.clone(),
        working_dir: step.cwd.clone(),
        user: step.user.clone(),
        ..RuntimeConfig::default()
    };
    let mut cspec = spec::build(
        &project,
        &service,
        1,
        &image,
        &step.layers,
        &HostLimits::current(),
    )
    .map_err(|e| BuildError::Step(e.to_string()))?;
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    cspec.name = format!("rcompose-build-{}", &id[..id.len().min(12)]);
    // The environment is the image's and the build args only: no HOSTNAME the image lacks
    // (BuildKit sets none).
    cspec.env = step.env.clone();
    if !cspec.env.iter().any(|e| e.starts_with("PATH=")) {
        cspec.env.insert(0, format!("PATH={}", spec::DEFAULT_PATH));
    }
    // runc's default, as BuildKit's steps get it: the user's home from passwd, else `/`.
    if !cspec.env.iter().any(|e| e.starts_with("HOME=")) {
        let home = cspec.user.home.clone().unwrap_or_else(|| "/".into());
        cspec.env.push(format!("HOME={home}"));
    }
    let opts = Options {
        helper: helper.to_path_buf(),
        dir: dir.to_path_buf(),
        cgroup: format!("rcompose/build/{}", cspec.name),
        mounts: step.mounts.clone(),
        hosts: Some(hosts_file(step)),
        resolv_conf: match step.network {
            Network::None => None,
            _ => step.resolv_conf.clone(),
        },
        base_dir: PathBuf::from("/"),
        tty_size: None,
        namespace_peers: Vec::new(),
    };
    let c = Container::create(&cspec, &opts).map_err(|e| BuildError::Step(e.to_string()))?;
    let result = run_created(&c, helper, on_started, on_line);
    // Stray processes (a daemon the step started) die with the step, as in BuildKit.
    let _ = c.kill_all();
    match result {
        Ok((status, tail)) => {
            // The directory stays (the caller takes the upper directory), the cgroup goes.
            c.release_cgroup()
                .map_err(|e| BuildError::Step(e.to_string()))?;
            Ok(Finished {
                dir: dir.to_path_buf(),
                status,
                tail,
            })
        }
        Err(e) => {
            let _ = c.destroy();
            Err(e)
        }
    }
}

fn run_created(
    c: &Container,
    helper: &Path,
    on_started: &mut dyn FnMut(i32) -> Result<(), BuildError>,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<(ExitStatus, Vec<String>), BuildError> {
    let (read, write): (OwnedFd, OwnedFd) =
        nix::unistd::pipe().map_err(|e| BuildError::Step(format!("cannot make a pipe: {e}")))?;
    let stdio = Stdio {
        stdin: None,
        stdout: Some(write.as_fd()),
        stderr: Some(write.as_fd()),
    };
    let spawned = c
        .spawn(helper, stdio)
        .map_err(|e| BuildError::Step(e.to_string()))?;
    drop(write);
    let pid = spawned.pid();
    let reap = |e: BuildError| {
        // SAFETY: killing and reaping our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = container::wait(pid);
        e
    };
    on_started(pid).map_err(reap)?;
    if let Err(e) = c.start(&spawned) {
        let _ = container::wait(pid);
        return Err(BuildError::Step(e.to_string()));
    }
    let mut tail = std::collections::VecDeque::new();
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut r = BufReader::new(std::fs::File::from(read));
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf);
                        let line = line.trim_end_matches(['\n', '\r']);
                        on_line(line);
                        if tail.len() == TAIL_LINES {
                            tail.pop_front();
                        }
                        tail.push_back(line.to_string());
                    }
                }
            }
        });
        let status = container::wait(pid);
        // Processes the step left behind hold the pipe open: they go now.
        let _ = c.kill_all();
        let _ = reader.join();
        status
    })
    .map(|status| (status, tail.into_iter().collect()))
    .map_err(|e| BuildError::Step(format!("cannot wait for the step: {e}")))
}
