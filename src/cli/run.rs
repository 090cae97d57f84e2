//! `rcompose run`: one container for a service, stdio attached, its exit code returned.
//!
//! The project's supervisor creates it (after its dependencies), on the project's networks,
//! as docker compose does; the client hands it its own stdin/stdout/stderr over the control
//! socket, or with a pty gets the master back and copies between it and the terminal.

use anyhow::{bail, Context, Result};
use std::io::{IsTerminal, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use super::Global;
use crate::compose::model::ServiceConfig;
use crate::image::store::Store;
use crate::plan::graph::ServiceGraph;
use crate::supervisor::client;
use crate::supervisor::proto::{Reply, Request, RunOptions};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Run the container in the background and print its name
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Set environment variables (KEY=VALUE, or KEY to take it from this environment)
    #[arg(short = 'e', long = "env", value_name = "KEY=VAL")]
    pub env: Vec<String>,
    /// Add or override a label (KEY=VALUE)
    #[arg(short = 'l', long = "label", value_name = "KEY=VAL")]
    pub labels: Vec<String>,
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
    /// Don't start linked services
    #[arg(long)]
    pub no_deps: bool,
    /// Run with the service's ports published on the host
    #[arg(short = 'P', long)]
    pub service_ports: bool,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish", value_name = "[IP:]HOST:CONTAINER")]
    pub publish: Vec<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume", value_name = "SOURCE:TARGET[:OPTIONS]")]
    pub volumes: Vec<String>,
    /// Add Linux capabilities
    #[arg(long)]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long)]
    pub cap_drop: Vec<String>,
    /// Pull image before running ("always"|"missing"|"never")
    #[arg(long, value_name = "POLICY")]
    pub pull: Option<String>,
    /// Pull without printing progress information
    #[arg(long)]
    pub quiet_pull: bool,
    /// Build the image before starting the container
    #[arg(long)]
    pub build: bool,
    /// Remove containers for services not defined in the Compose file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Set environment variables from a file
    #[arg(long = "env-from-file", value_name = "PATH")]
    pub env_from_file: Vec<PathBuf>,
    /// Use the service's network aliases in the networks the container joins
    #[arg(long)]
    pub use_aliases: bool,
    /// The service to run
    pub service: String,
    /// The command and its arguments (replace the service's command)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub fn run(global: &Global, args: RunArgs) -> Result<i32> {
    if let Some(name) = &args.name {
        crate::names::check_container(name).context("invalid --name")?;
    }
    let opts = global.load_options()?;
    let mut loaded = super::load(global, &opts)?;
    // As docker compose: naming a service on `run` enables its profiles.
    if !loaded.project.services.contains_key(&args.service)
        && loaded.disabled_services.contains(&args.service)
    {
        let mut every = opts.clone();
        every.profiles = vec!["*".into()];
        let all = crate::compose::loader::load(&every)?;
        if let Some(s) = all.project.services.get(&args.service) {
            let mut enabled = opts.clone();
            enabled.profiles.extend(s.profiles.iter().cloned());
            loaded = super::load(global, &enabled)?;
        }
    }
    let mut owned = loaded.project.clone();
    if !owned.services.contains_key(&args.service) {
        bail!("no such service: {}", args.service);
    }
    if global.dry_run {
        if let Some(policy) = &args.pull {
            for s in owned.services.values_mut() {
                s.pull_policy = policy.clone();
            }
        }
        let service = overridden(&owned.services[&args.service], &args, false)?;
        return super::dryrun::run(
            &owned,
            &super::dryrun::RunRequest {
                service: &service,
                name: args.name.as_deref(),
                no_deps: args.no_deps,
                build: args.build,
                rm: args.rm,
            },
        );
    }
    let wanted = if args.no_deps {
        vec![args.service.clone()]
    } else {
        ServiceGraph::of_project(&owned).with_dependencies(std::slice::from_ref(&args.service))
    };
    let build_opts = super::build::Options {
        force: args.build,
        ..super::build::Options::default()
    };
    super::build::build_services(
        global,
        &mut owned,
        &loaded.working_dir,
        &wanted,
        &build_opts,
    )?;
    let project = &owned;
    let Some(base) = project.services.get(&args.service) else {
        bail!("no such service: {}", args.service);
    };
    let tty = !args.no_tty && !args.detach && std::io::stdin().is_terminal();
    let service = overridden(base, &args, tty)?;

    // Images first (the service's and, unless --no-deps, its dependencies'): a missing image
    // fails before anything is created.
    let store = Store::open(crate::paths::images()).context("cannot open the image store")?;
    let mut needed = vec![service.clone()];
    if !args.no_deps {
        let graph = ServiceGraph::of_project(project);
        graph.check_acyclic()?;
        let deps = graph.with_dependencies(std::slice::from_ref(&args.service));
        needed.extend(
            deps.iter()
                .filter(|d| **d != args.service)
                .filter_map(|d| project.services.get(d).cloned()),
        );
    }
    let mut pull_global = global.clone();
    if args.quiet_pull {
        pull_global.progress = super::Progress::Quiet;
    }
    for s in &mut needed {
        if let Some(policy) = &args.pull {
            s.pull_policy = policy.clone();
        }
        if s.build.is_some() {
            continue;
        }
        super::pull::ensure_image(&pull_global, &store, s)?;
    }

    // The streams the container gets: pipes that we copy (never our own descriptors, see
    // `relay`), or a pty whose master comes back.
    let stdio = !tty && !args.detach;
    let stdin = stdio && args.interactive;
    let (relay, fds) = if stdio {
        let (relay, ends) = super::relay::start(stdin).context("cannot make the run's pipes")?;
        (Some(relay), ends.into_vec())
    } else {
        (None, Vec::new())
    };
    let request = Request::Run {
        project: Box::new(project.clone()),
        working_dir: loaded.working_dir.clone(),
        config_files: loaded.files.clone(),
        options: RunOptions {
            service_name: service.name.clone(),
            service: Box::new(service),
            name: args.name.clone(),
            no_deps: args.no_deps,
            rm: args.rm,
            detach: args.detach,
            use_aliases: args.use_aliases,
            tty_size: tty.then(terminal_size).flatten(),
            stdin,
            stdio,
            remove_orphans: args.remove_orphans,
            disabled_services: loaded.disabled_services.clone(),
        },
        contents: crate::configs::client_contents(project, &loaded.environment)?,
    };
    // Signals are caught from before the request: the container's command may run (and a
    // caller react to its output with a signal) before its pid comes back.
    let proxy = (!args.detach).then(SignalProxy::start);
    let result = session(&project.name, &request, fds, &args, proxy.as_ref());
    if let Some(relay) = relay {
        relay.finish();
    }
    if let Some(p) = &proxy {
        p.finish();
    }
    result
}

fn session(
    project: &str,
    request: &Request,
    fds: Vec<OwnedFd>,
    args: &RunArgs,
    proxy: Option<&SignalProxy>,
) -> Result<i32> {
    let mut session = client::run(project, request, fds)?;
    let mut code = None;
    let mut master: Option<OwnedFd> = None;
    let mut raw_guard = None;
    let mut output = None;
    loop {
        let reply = match session.next_reply() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                drop(raw_guard);
                // A command that could not start still has its code (126, 127), as with docker.
                if let (client::ClientError::Failed(_), Some(code)) = (&e, code) {
                    super::print_error(&anyhow::Error::from(e));
                    return Ok(code);
                }
                return Err(e.into());
            }
        };
        match reply {
            (Reply::Progress(p), _) => super::project::print_progress(&p),
            (Reply::Warning(w), _) => super::warn(&w),
            (Reply::Started { container, pid }, _) => {
                if args.detach {
                    println!("{container}");
                }
                if let Some(p) = proxy {
                    p.started(pid);
                }
            }
            (Reply::Pty { .. }, Some(fd)) => {
                if let Some(p) = proxy {
                    p.set_pty(fd.as_raw_fd());
                }
                raw_guard = RawMode::enter();
                output = Some(copy_pty(&fd, args.interactive)?);
                master = Some(fd);
            }
            (Reply::Exited { code: c }, _) => code = Some(c),
            _ => {}
        }
    }
    drop(master);
    if let Some(t) = output {
        let _ = t.join();
    }
    drop(raw_guard);
    Ok(code.unwrap_or(0))
}

/// Docker's sig-proxy for `run`: the proxied signals go to the container's first process. One
/// that comes before the container started waits for it (it may be running already); a
/// second one before that ends rcompose as it would without the proxy, and so does one that
/// never found a container.
struct SignalProxy {
    state: std::sync::Arc<std::sync::Mutex<ProxyState>>,
}

#[derive(Default)]
struct ProxyState {
    pid: Option<i32>,
    pty: Option<i32>,
    pending: Option<i32>,
}

impl SignalProxy {
    fn start() -> SignalProxy {
        let set = sigset(&PROXIED);
        // SAFETY: a valid sigset; threads spawned from here on inherit the mask, and the
        // forwarding thread takes the signals with sigwait.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        let state = std::sync::Arc::new(std::sync::Mutex::new(ProxyState::default()));
        let shared = state.clone();
        std::thread::spawn(move || loop {
            let mut sig = 0;
            // SAFETY: valid pointers.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                continue;
            }
            let Ok(mut st) = shared.lock() else { return };
            match (st.pid, sig) {
                (_, libc::SIGWINCH) => resize(st.pty),
                // SAFETY: kill with plain integers; a container that is gone only fails.
                (Some(pid), _) => unsafe {
                    libc::kill(pid, sig);
                },
                (None, _) if st.pending.is_none() => st.pending = Some(sig),
                (None, _) => die_by(sig),
            }
        });
        SignalProxy { state }
    }

    /// The container's first process runs: signals go to it, the one waiting first.
    fn started(&self, pid: i32) {
        if let Ok(mut st) = self.state.lock() {
            st.pid = Some(pid);
            if let Some(sig) = st.pending.take() {
                // SAFETY: kill with plain integers.
                unsafe { libc::kill(pid, sig) };
            }
        }
    }

    fn set_pty(&self, fd: i32) {
        if let Ok(mut st) = self.state.lock() {
            st.pty = Some(fd);
        }
        resize(Some(fd));
    }

    /// The session is over: a signal that never reached a container takes effect now.
    fn finish(&self) {
        let pending = self.state.lock().ok().and_then(|mut st| st.pending.take());
        if let Some(sig) = pending {
            die_by(sig);
        }
    }
}

/// The pty's size from the terminal's.
fn resize(pty: Option<i32>) {
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
}

/// Ends this process with `sig`'s default action, as if no handler were set.
fn die_by(sig: i32) {
    let set = sigset(&[sig]);
    // SAFETY: restoring the default action and unblocking `sig` in this thread, then raising
    // it here: the process ends (a signal whose default is to be ignored returns).
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Copies the terminal's input to the pty and the pty's output to stdout; the returned thread
/// ends when the container's side of the pty is closed.
pub(crate) fn copy_pty(master: &OwnedFd, interactive: bool) -> Result<std::thread::JoinHandle<()>> {
    let mut reader = std::fs::File::from(master.try_clone()?);
    if interactive {
        let mut writer = std::fs::File::from(master.try_clone()?);
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
    Ok(std::thread::spawn(move || {
        let mut out = std::io::stdout().lock();
        let mut buf = [0u8; 8192];
        // EIO once the last process holding the pty's other side has exited.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || out.write_all(&buf[..n]).is_err() {
                break;
            }
            let _ = out.flush();
        }
    }))
}

/// The service as `run` changes it: command, entrypoint, environment, user, working directory,
/// tty, labels; ports are published only with `--service-ports`, and restart policies do not
/// apply to a one-off container.
fn overridden(base: &ServiceConfig, args: &RunArgs, tty: bool) -> Result<ServiceConfig> {
    let mut s = base.clone();
    if !args.command.is_empty() {
        s.command = Some(args.command.clone());
    }
    if let Some(ep) = &args.entrypoint {
        // Split as docker compose splits `--entrypoint` (go-shellwords, cut at operators).
        let split = crate::compose::shellwords::split(ep)
            .with_context(|| format!("invalid --entrypoint {ep:?}"))?;
        if let Some(dropped) = &split.dropped {
            super::warn(&crate::compose::normalize::dropped_warning(
                "--entrypoint",
                ep,
                dropped,
            ));
        }
        s.entrypoint = Some(split.words);
        // As docker: a new entrypoint clears the image's command unless one is given.
        if args.command.is_empty() && base.command.is_none() {
            s.command = Some(Vec::new());
        }
    }
    // Files first: `-e` wins over `--env-from-file`, as with docker compose.
    for path in &args.env_from_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the env file {}", path.display()))?;
        let vars = crate::compose::dotenv::parse(&text, &|k| std::env::var(k).ok())
            .with_context(|| format!("invalid env file {}", path.display()))?;
        for (k, v) in vars {
            s.environment.insert(k, Some(v));
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
    for l in &args.labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        s.labels.insert(k.to_string(), v.to_string());
    }
    s.tty = tty;
    s.stdin_open = args.interactive;
    if !args.service_ports {
        s.ports.clear();
    }
    for p in &args.publish {
        let ports = crate::compose::canonical::port_configs(p)
            .map_err(|reason| anyhow::anyhow!("invalid --publish {p:?}: {reason}"))?;
        s.ports.extend(ports);
    }
    for v in &args.volumes {
        let mut mount = crate::compose::canonical::volume_config(v)
            .map_err(|reason| anyhow::anyhow!("invalid --volume {v:?}: {reason}"))?;
        // As `docker run -v`: a relative host path is relative to where the command runs.
        if mount.kind == "bind" && !mount.source.starts_with('/') {
            let cwd = std::env::current_dir().context("cannot read the current directory")?;
            mount.source = cwd.join(&mount.source).to_string_lossy().into_owned();
        }
        s.volumes.push(mount);
    }
    s.cap_add.extend(args.cap_add.iter().cloned());
    s.cap_drop.extend(args.cap_drop.iter().cloned());
    s.restart = String::new();
    Ok(s)
}

/// The rcompose binary itself, which the container helper runs from.
pub(crate) fn helper_path() -> Result<PathBuf> {
    std::fs::read_link("/proc/self/exe").context("cannot find the rcompose binary")
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
            resize(pty);
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
