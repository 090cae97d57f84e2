//! `rcompose run`: one container for a service, stdio attached, its exit code returned.
//!
//! Networking arrives with its own issue: until then the container gets a network namespace of
//! its own with only `lo` (docker's `network_mode: none`).

use anyhow::{bail, Context, Result};
use std::io::{IsTerminal, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::Global;
use crate::compose::model::{Project, ServiceConfig};
use crate::image::store::Store;
use crate::runtime::container::{self, Container, ExitStatus, Options};
use crate::runtime::process::Stdio;
use crate::runtime::spec::{self, HostLimits};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Set environment variables (KEY=VALUE, or KEY to take it from this environment)
    #[arg(short = 'e', long = "env", value_name = "KEY=VAL")]
    pub env: Vec<String>,
    /// Run as this user (name or uid[:gid])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Override the image's entrypoint
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Disable pseudo-TTY allocation (default: a TTY when stdin is one)
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Keep STDIN open even if not attached (the default for run)
    #[arg(short = 'i', long, default_value_t = true, hide = true)]
    pub interactive: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Don't start linked services (rcompose run does not start dependencies yet)
    #[arg(long)]
    pub no_deps: bool,
    /// The service to run
    pub service: String,
    /// The command and its arguments (replace the service's command)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub fn run(global: &Global, args: RunArgs) -> Result<i32> {
    let mut opts = global.load_options()?;
    opts.services = vec![args.service.clone()];
    let loaded = super::load(global, &opts)?;
    let project = &loaded.project;
    let Some(base) = project.services.get(&args.service) else {
        bail!("no such service: {}", args.service);
    };
    let tty = !args.no_tty && std::io::stdin().is_terminal();
    let service = overridden(base, &args, tty)?;

    let store = Store::open(crate::paths::images()).context("cannot open the image store")?;
    let image = super::pull::ensure_image(global, &store, &service)?;
    let layers: Vec<PathBuf> = image
        .layers
        .iter()
        .map(|l| store.layer_dir(&l.diff_id))
        .collect();

    let mut spec = spec::build(
        project,
        &service,
        1,
        &image.config,
        &layers,
        &HostLimits::current(),
    )?;
    for w in &spec.warnings {
        super::warn(w);
    }
    // A one-off container: docker compose names it `<project>-<service>-run-<12 hex>`.
    let suffix = random_hex(12);
    spec.id = format!("{}{}", &spec.id[..52], suffix);
    spec.name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}-run-{suffix}", project.name, service.name));
    if service.hostname.is_empty() && service.network_mode != "host" {
        spec.hostname = spec.id[..12].to_string();
    }
    spec.labels
        .insert("com.docker.compose.oneoff".into(), "True".into());

    let crate::volume::Mounts {
        requests: mounts,
        anonymous,
        ..
    } = crate::volume::mounts_of(project, &service, &layers)?;
    let dir = crate::paths::root().join("containers").join(&spec.id);
    let options = Options {
        helper: helper_path()?,
        dir,
        cgroup: format!("rcompose/{}/{}", project.name, spec.name),
        mounts,
        hosts: Some(hosts_file(&spec.hostname)),
        resolv_conf: Some(host_resolv_conf()),
        base_dir: loaded.working_dir.clone(),
        tty_size: tty.then(terminal_size).flatten(),
        namespace_peers: Vec::new(),
    };
    // Anonymous volumes belong to this container alone: they go when it fails to start.
    let remove_anonymous = |dirs: &[PathBuf]| {
        for dir in dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    };
    let c = match Container::create(&spec, &options) {
        Ok(c) => c,
        Err(e) => {
            remove_anonymous(&anonymous);
            return Err(e.into());
        }
    };
    let result = run_container(&c, &options.helper, tty, args.interactive);
    let status = match result {
        Ok(s) => s,
        Err(e) => {
            let code = match e.downcast_ref::<container::ContainerError>() {
                Some(container::ContainerError::Process {
                    source: crate::runtime::process::ProcessError::Start { code, .. },
                    ..
                }) => *code,
                _ => 1,
            };
            let _ = c.destroy();
            remove_anonymous(&anonymous);
            super::print_error(&e);
            return Ok(code);
        }
    };
    if args.rm {
        c.destroy()?;
        // As docker compose: --rm takes the container's anonymous volumes with it.
        for dir in anonymous {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot remove volume {}", dir.display()))?;
        }
    } else {
        keep_stopped(c, &spec, project, &service, &status)?;
    }
    Ok(status.docker_code())
}

/// The service as `run` changes it: command, entrypoint, environment, user, working directory,
/// tty; ports are not published and restart policies do not apply to a one-off container.
fn overridden(base: &ServiceConfig, args: &RunArgs, tty: bool) -> Result<ServiceConfig> {
    let mut s = base.clone();
    if !args.command.is_empty() {
        s.command = Some(args.command.clone());
    }
    if let Some(ep) = &args.entrypoint {
        let words =
            shell_words::split(ep).with_context(|| format!("invalid --entrypoint {ep:?}"))?;
        s.entrypoint = Some(words);
        // As docker: a new entrypoint clears the image's command unless one is given.
        if args.command.is_empty() && base.command.is_none() {
            s.command = Some(Vec::new());
        }
    }
    for e in &args.env {
        match e.split_once('=') {
            Some((k, v)) => s.environment.insert(k.to_string(), Some(v.to_string())),
            None => s
                .environment
                .insert(e.clone(), std::env::var(e).ok().map(|v| v.to_string())),
        };
    }
    if let Some(u) = &args.user {
        s.user = u.clone();
    }
    if let Some(w) = &args.workdir {
        s.working_dir = w.clone();
    }
    s.tty = tty;
    s.stdin_open = args.interactive;
    s.ports.clear();
    s.restart = String::new();
    Ok(s)
}

/// The rcompose binary itself, which the container helper runs from.
pub(crate) fn helper_path() -> Result<PathBuf> {
    std::fs::read_link("/proc/self/exe").context("cannot find the rcompose binary")
}

fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n.div_ceil(2)];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut buf);
    }
    let mut s = hex::encode(buf);
    s.truncate(n);
    s
}

fn hosts_file(hostname: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n\
         127.0.1.1\t{hostname}\n"
    )
}

/// The host's resolv.conf, as docker gives a container without a network of its own.
fn host_resolv_conf() -> String {
    std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
}

pub(crate) fn terminal_size() -> Option<(u16, u16)> {
    // SAFETY: a zeroed winsize is valid for TIOCGWINSZ to fill.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ on stdin writes one winsize.
    let rc = unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Signals `run` passes on to the container (docker's sig-proxy), and SIGWINCH for the pty.
pub(crate) const PROXIED: [i32; 5] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGWINCH,
];

pub(crate) fn sigset(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialised by sigemptyset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, *s);
        }
        set
    }
}

fn run_container(c: &Container, helper: &Path, tty: bool, interactive: bool) -> Result<ExitStatus> {
    // Block the proxied signals before any thread starts: a forwarding thread takes them.
    let set = sigset(&PROXIED);
    // SAFETY: a valid sigset.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let stdio = if tty {
        Stdio::default()
    } else {
        Stdio {
            stdin: interactive.then(|| stdin.as_fd()),
            stdout: Some(stdout.as_fd()),
            stderr: Some(stderr.as_fd()),
        }
    };
    let spawned = c.spawn(helper, stdio)?;
    let pid = spawned.pid();
    let master = match c.start(&spawned) {
        Ok(m) => m,
        Err(e) => {
            let _ = container::wait(pid);
            return Err(e.into());
        }
    };
    let master: Option<OwnedFd> = master;
    let pty_fd = master.as_ref().map(|m| m.as_raw_fd());
    std::thread::spawn(move || forward_signals(pid, pty_fd));

    let mut raw_guard = None;
    let mut output = None;
    if let Some(master) = &master {
        raw_guard = RawMode::enter();
        let mut reader = std::fs::File::from(master.try_clone()?);
        let mut writer = std::fs::File::from(master.try_clone()?);
        if interactive {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut input = std::io::stdin().lock();
                while let Ok(n) = input.read(&mut buf) {
                    if n == 0 || writer.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
        output = Some(std::thread::spawn(move || {
            let mut out = std::io::stdout().lock();
            let mut buf = [0u8; 8192];
            // EIO once the last process holding the pty's other side has exited.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || out.write_all(&buf[..n]).is_err() {
                    break;
                }
                let _ = out.flush();
            }
        }));
    }
    let status = container::wait(pid).context("cannot wait for the container")?;
    // Nothing may outlive the command (its pid namespace is gone with it, unless shared).
    let _ = c.kill_all();
    drop(master);
    if let Some(t) = output {
        let _ = t.join();
    }
    drop(raw_guard);
    Ok(status)
}

/// Forwards the proxied signals to the container's first process (resizing the pty on
/// SIGWINCH), until the process is gone.
pub(crate) fn forward_signals(pid: i32, pty: Option<i32>) {
    let set = sigset(&PROXIED);
    loop {
        let mut sig = 0;
        // SAFETY: valid pointers.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            continue;
        }
        if sig == libc::SIGWINCH {
            if let (Some(fd), Some((rows, cols))) = (pty, terminal_size()) {
                let ws = libc::winsize {
                    ws_row: rows,
                    ws_col: cols,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                // SAFETY: TIOCSWINSZ reads one winsize; a closed fd only fails.
                unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
            }
            continue;
        }
        // SAFETY: kill with plain integers.
        if unsafe { libc::kill(pid, sig) } != 0 {
            return;
        }
    }
}

/// The terminal in raw mode while a pty is attached, restored on drop.
pub(crate) struct RawMode(libc::termios);

impl RawMode {
    pub(crate) fn enter() -> Option<RawMode> {
        let fd = std::io::stdin().as_raw_fd();
        // SAFETY: termios is plain data filled by tcgetattr.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers on stdin.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return None;
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw edits the struct we own.
        unsafe {
            libc::cfmakeraw(&mut raw);
            libc::tcsetattr(fd, libc::TCSANOW, &raw);
        }
        Some(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restoring the attributes read in `enter`.
        unsafe { libc::tcsetattr(std::io::stdin().as_raw_fd(), libc::TCSANOW, &self.0) };
    }
}

/// Without `--rm` the stopped container stays, as with docker: its directory (writable layer)
/// and a record of it; `down` and `rm` remove it. The cgroup goes now.
fn keep_stopped(
    c: Container,
    spec: &spec::ContainerSpec,
    project: &Project,
    service: &ServiceConfig,
    status: &ExitStatus,
) -> Result<()> {
    if let Some(cg) = c.cgroup() {
        let _ = cg.kill_all();
    }
    let record = serde_json::json!({
        "id": spec.id,
        "name": spec.name,
        "project": project.name,
        "service": service.name,
        "oneoff": true,
        "state": "exited",
        "exit_code": status.docker_code(),
        "image": service.image,
    });
    let dir = crate::paths::root().join("containers").join(&spec.id);
    std::fs::write(dir.join("state.json"), serde_json::to_vec_pretty(&record)?)
        .with_context(|| format!("cannot record container {}", spec.name))?;
    c.release_cgroup()?;
    Ok(())
}
