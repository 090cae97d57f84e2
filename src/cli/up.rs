//! `rcompose up` and `rcompose create`: converge the project on the compose file through its
//! supervisor; attached, print the containers' output until they exit or Ctrl-C.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::project;
use super::Global;
use crate::image::store::Store;
use crate::plan::graph::ServiceGraph;
use crate::supervisor::client;
use crate::supervisor::proto::{Reply, Request, Selection, UpOptions};
use crate::supervisor::ready::{judge, Condition, Readiness, Seen};

#[derive(Debug, Default, clap::Args)]
pub struct UpArgs {
    /// Detached mode: run containers in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Wait for services to be running|healthy (implies detached mode)
    #[arg(long)]
    pub wait: bool,
    /// Maximum duration in seconds to wait for the project to be running|healthy
    #[arg(long, value_name = "SECONDS")]
    pub wait_timeout: Option<u64>,
    /// Produce monochrome output
    #[arg(long)]
    pub no_color: bool,
    /// Don't print prefix in logs
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Show timestamps
    #[arg(long)]
    pub timestamps: bool,
    /// Restrict attaching to the specified services
    #[arg(long = "attach", value_name = "SERVICE")]
    pub attach: Vec<String>,
    /// Do not attach (stream logs) to the specified services
    #[arg(long = "no-attach", value_name = "SERVICE")]
    pub no_attach: Vec<String>,
    /// Stops all containers if any container was stopped
    #[arg(long)]
    pub abort_on_container_exit: bool,
    /// Stops all containers if any container exited with failure
    #[arg(long)]
    pub abort_on_container_failure: bool,
    /// Return the exit code of the selected service container (implies --abort-on-container-exit)
    #[arg(long, value_name = "SERVICE")]
    pub exit_code_from: Option<String>,
    /// Recreate containers even if their configuration and image haven't changed
    #[arg(long)]
    pub force_recreate: bool,
    /// If containers already exist, don't recreate them
    #[arg(long)]
    pub no_recreate: bool,
    /// Don't start linked services
    #[arg(long)]
    pub no_deps: bool,
    /// Recreate dependent containers. Incompatible with --no-recreate
    #[arg(long)]
    pub always_recreate_deps: bool,
    /// Recreate anonymous volumes instead of retrieving data from the previous containers
    #[arg(short = 'V', long)]
    pub renew_anon_volumes: bool,
    /// Remove containers for services not defined in the Compose file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Scale SERVICE to NUM instances (overrides `scale` in the compose file)
    #[arg(long, value_name = "SERVICE=NUM")]
    pub scale: Vec<String>,
    /// Don't start the services after creating them
    #[arg(long)]
    pub no_start: bool,
    /// Use this timeout in seconds for container shutdown
    #[arg(short = 't', long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Pull image before running ("always"|"missing"|"never")
    #[arg(long)]
    pub pull: Option<String>,
    /// Pull without printing progress information
    #[arg(long)]
    pub quiet_pull: bool,
    /// Don't build an image, even if it's policy
    #[arg(long)]
    pub no_build: bool,
    /// Build images before starting containers
    #[arg(long)]
    pub build: bool,
    /// Watch source code and update services (develop.watch) while attached
    #[arg(short = 'w', long)]
    pub watch: bool,
    pub services: Vec<String>,
}

pub fn run(global: &Global, args: UpArgs) -> Result<i32> {
    up(global, args, false)
}

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// Don't start linked services
    #[arg(long)]
    pub no_deps: bool,
    /// SERVICE=REPLICAS
    #[arg(required = true, value_name = "SERVICE=REPLICAS")]
    pub scales: Vec<String>,
}

/// `scale SERVICE=N...`: `up -d --no-recreate --scale SERVICE=N SERVICE...`.
pub fn scale(global: &Global, args: ScaleArgs) -> Result<i32> {
    let services = args
        .scales
        .iter()
        .map(|s| match s.split_once('=') {
            Some((service, _)) if !service.is_empty() => Ok(service.to_string()),
            _ => bail!("invalid scale {s:?}: expected SERVICE=REPLICAS"),
        })
        .collect::<Result<Vec<_>>>()?;
    let up_args = UpArgs {
        detach: true,
        no_recreate: true,
        no_deps: args.no_deps,
        scale: args.scales,
        services,
        ..UpArgs::default()
    };
    up(global, up_args, false)
}

/// `create`: `up --no-start`.
pub fn create(global: &Global, mut args: UpArgs) -> Result<i32> {
    args.no_start = true;
    args.detach = true;
    up(global, args, true)
}

fn up(global: &Global, args: UpArgs, is_create: bool) -> Result<i32> {
    if args.build && args.no_build {
        bail!("--build and --no-build are incompatible");
    }
    if args.no_recreate && args.force_recreate {
        bail!("--force-recreate and --no-recreate are incompatible");
    }
    if args.no_recreate && args.always_recreate_deps {
        bail!("--always-recreate-deps and --no-recreate are incompatible");
    }
    if args.detach
        && (args.abort_on_container_exit
            || args.abort_on_container_failure
            || args.exit_code_from.is_some())
    {
        bail!("--abort-on-container-exit, --abort-on-container-failure and --exit-code-from cannot be combined with --detach");
    }
    if args.watch && (args.detach || args.wait || is_create) {
        bail!("--watch cannot be combined with --detach or --wait");
    }
    let target = project::target(global)?;
    let loaded = target.require_loaded()?;
    let mut project = loaded.project.clone();
    for s in args.services.iter().chain(args.exit_code_from.iter()) {
        if !project.services.contains_key(s) {
            bail!("no such service: {s}");
        }
    }
    let watch_rules = if args.watch {
        Some(super::watch::prepare(&loaded, &args.services)?)
    } else {
        None
    };
    let mut scale = Vec::new();
    for s in &args.scale {
        let (svc, n) = s
            .split_once('=')
            .with_context(|| format!("invalid --scale {s:?}: expected SERVICE=NUM"))?;
        let n: u32 = n
            .parse()
            .with_context(|| format!("invalid --scale {s:?}: expected SERVICE=NUM"))?;
        if !project.services.contains_key(svc) {
            bail!("no such service: {svc}");
        }
        scale.push((svc.to_string(), n));
    }
    // Images first: a missing image fails before anything is created.
    let graph = ServiceGraph::of_project(&project);
    let selected: Vec<String> = if args.services.is_empty() {
        project.services.keys().cloned().collect()
    } else if args.no_deps {
        args.services.clone()
    } else {
        graph.with_dependencies(&args.services)
    };
    if let Some(p) = &args.pull {
        for s in project.services.values_mut() {
            s.pull_policy = p.clone();
        }
    }
    let options = UpOptions {
        services: args.services.clone(),
        no_deps: args.no_deps,
        force_recreate: args.force_recreate,
        no_recreate: args.no_recreate,
        remove_orphans: args.remove_orphans,
        disabled_services: loaded.disabled_services.clone(),
        no_start: args.no_start,
        scale,
        timeout: args.timeout,
        always_recreate_deps: args.always_recreate_deps,
        renew_anon_volumes: args.renew_anon_volumes,
    };
    if global.dry_run {
        return super::dryrun::up(&project, &options, args.build, args.no_build);
    }
    let store = Store::open(crate::paths::images()).context("cannot open the image store")?;
    let mut quiet_global = global.clone();
    if args.quiet_pull {
        quiet_global.progress = super::Progress::Quiet;
    }
    // Builds first: a service built FROM another's image finds it, and every build service
    // gets its image name before the pulls and the engine look it up.
    let build_opts = super::build::Options {
        force: args.build,
        no_build: args.no_build,
        ..super::build::Options::default()
    };
    super::build::build_services(
        global,
        &mut project,
        &loaded.working_dir,
        &selected,
        &build_opts,
    )?;
    for name in &selected {
        if project.services[name].build.is_some() {
            continue;
        }
        super::pull::ensure_image(&quiet_global, &store, &project.services[name])?;
    }

    let name = project.name.clone();
    let request = Request::Up {
        project: Box::new(project.clone()),
        working_dir: loaded.working_dir.clone(),
        config_files: loaded.files.clone(),
        options,
        contents: crate::configs::client_contents(&project, &loaded.environment)?,
    };
    let detach = args.detach || args.wait || is_create;
    // Ctrl-C and SIGTERM: blocked before any thread starts, then taken by one thread.
    let signals = (!detach).then(spawn_signal_thread);
    // Attached: subscribe before anything starts, so no output is missed.
    let attach_stream = if detach {
        None
    } else {
        Some(client::attach(&name, true)?)
    };
    let wait_stream = if args.wait {
        Some(client::attach(&name, false)?)
    } else {
        None
    };
    project::send(&name, &request, true, false)?;
    if let Some(events) = wait_stream {
        return wait_ready(
            &name,
            &selected,
            events,
            args.wait_timeout.map(Duration::from_secs),
        );
    }
    let (Some(stream), Some(signals)) = (attach_stream, signals) else {
        return Ok(0);
    };
    if let Some(rules) = watch_rules {
        super::watch::spawn(global, &loaded, rules);
    }
    attached(&name, &selected, &args, stream, signals)
}

/// `--wait`: until every container of the services runs (healthy when it has a healthcheck)
/// or, for a one-shot, exited 0.
fn wait_ready(
    project: &str,
    services: &[String],
    events: impl Iterator<Item = Reply> + Send + 'static,
    timeout: Option<Duration>,
) -> Result<i32> {
    let state = project::state(project)?;
    let mut current: HashMap<String, Seen> = state
        .containers
        .iter()
        .filter(|c| !c.oneoff && services.contains(&c.service))
        .map(|c| (c.name.clone(), Seen::of(c)))
        .collect();
    // As docker compose: every container it waits on says `Waiting`, then `Healthy` once it
    // runs and (with a healthcheck) is healthy; the first failure ends the wait.
    let mut names: Vec<String> = current.keys().cloned().collect();
    names.sort();
    let line = |name: &str, status: &str, done: bool, error: bool| {
        project::print_progress(&crate::supervisor::proto::Progress {
            kind: "Container".into(),
            name: name.to_string(),
            status: status.to_string(),
            done,
            error,
        })
    };
    for name in &names {
        line(name, "Waiting", false, false);
    }
    let mut ready: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut verdict = |m: &HashMap<String, Seen>| -> Option<Result<(), String>> {
        for name in &names {
            let Some(seen) = m.get(name) else { continue };
            if ready.contains(name) {
                continue;
            }
            match judge(Condition::Up, seen) {
                Readiness::Ready(status) => {
                    line(name, status, true, false);
                    ready.insert(name.clone());
                }
                Readiness::Failed(status) => {
                    line(name, &status, false, true);
                    return Some(Err(format!("container {name} {status}")));
                }
                Readiness::Pending => {}
            }
        }
        (ready.len() == names.len()).then_some(Ok(()))
    };
    if let Some(v) = verdict(&current) {
        return v.map(|()| 0).map_err(|e| anyhow::anyhow!(e));
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for r in events {
            if tx.send(r).is_err() {
                return;
            }
        }
    });
    loop {
        let left = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600 * 24 * 365),
        };
        match rx.recv_timeout(left) {
            Ok(Reply::Event(ev)) => {
                if let Some(entry) = current.get_mut(&ev.container) {
                    entry.status = ev.status;
                    entry.exit_code = ev.exit_code;
                    entry.health = ev.health;
                }
                if let Some(v) = verdict(&current) {
                    return v.map(|()| 0).map_err(|e| anyhow::anyhow!(e));
                }
            }
            Ok(_) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                bail!("timeout waiting for the project {project} to be running and healthy")
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                bail!("the supervisor of project {project} went away")
            }
        }
    }
}

/// Attached mode: prints output, reports exits, stops the services it was given on Ctrl-C
/// (twice: kills them).
fn attached(
    project: &str,
    services: &[String],
    args: &UpArgs,
    stream: impl Iterator<Item = Reply> + Send + 'static,
    sig_rx: std::sync::mpsc::Receiver<i32>,
) -> Result<i32> {
    let state = project::state(project)?;
    let attached_services: Vec<String> = services
        .iter()
        .filter(|s| args.attach.is_empty() || args.attach.contains(s))
        .filter(|s| !args.no_attach.contains(s))
        .cloned()
        .collect();
    let mut active: HashMap<String, bool> = HashMap::new();
    let mut service_of: HashMap<String, String> = HashMap::new();
    let mut labels: HashMap<String, String> = HashMap::new();
    for c in state
        .containers
        .iter()
        .filter(|c| !c.oneoff && services.contains(&c.service))
    {
        active.insert(c.name.clone(), c.status.is_active());
        service_of.insert(c.name.clone(), c.service.clone());
        labels.insert(c.name.clone(), format!("{}-{}", c.service, c.number));
    }
    let mut names: Vec<&String> = labels
        .iter()
        .filter(|(n, _)| {
            state
                .container(n)
                .is_some_and(|c| attached_services.contains(&c.service))
        })
        .map(|(_, l)| l)
        .collect();
    names.sort();
    eprintln!(
        "Attaching to {}",
        names
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    // The same prefixes and colours as `logs` (one implementation).
    let label_list: Vec<&str> = labels.values().map(String::as_str).collect();
    let formatter = crate::logs::Formatter::new(
        &label_list,
        crate::logs::FormatOptions {
            color: !args.no_color && console::colors_enabled(),
            prefix: !args.no_log_prefix,
            timestamps: args.timestamps,
        },
    );

    let (tx, rx) = std::sync::mpsc::channel::<Reply>();
    std::thread::spawn(move || {
        for r in stream {
            if tx.send(r).is_err() {
                return;
            }
        }
    });
    let mut stopping = false;
    // Stopped by Ctrl-C: only the given services' containers are waited for.
    let mut interrupted = false;
    let mut exit_code: Option<i32> = None;
    let mut partial: HashMap<String, String> = HashMap::new();
    // Ctrl-C stops (a second one kills) the services `up` was given, not their dependencies;
    // all of them when none was given (docker compose's `Create.Services`).
    let given = Selection {
        services: args.services.clone(),
        index: None,
    };
    let stop_all = |project: &str, timeout: Option<u64>, selection: Selection| {
        let project = project.to_string();
        std::thread::spawn(move || {
            let _ = client::request(
                &project,
                &Request::Stop { selection, timeout },
                false,
                |_| {},
            );
        });
    };
    loop {
        if let Ok(sig) = sig_rx.try_recv() {
            if !stopping {
                stopping = true;
                eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
                let _ = sig;
                stop_all(project, args.timeout, given.clone());
                interrupted = true;
            } else {
                let p = project.to_string();
                let selection = given.clone();
                std::thread::spawn(move || {
                    let _ = client::request(
                        &p,
                        &Request::Kill {
                            selection,
                            signal: libc::SIGKILL,
                        },
                        false,
                        |_| {},
                    );
                });
            }
        }
        let reply = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(r) => r,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                // Everything seen so far is handled: done when nothing runs any more (after
                // Ctrl-C: nothing of the services that were stopped).
                let waited = |name: &String| {
                    !interrupted
                        || given.services.is_empty()
                        || service_of
                            .get(name)
                            .is_some_and(|s| given.services.contains(s))
                };
                if !active.is_empty() && active.iter().filter(|(n, _)| waited(n)).all(|(_, a)| !a) {
                    break;
                }
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match reply {
            Reply::Log {
                container,
                service,
                data,
                ..
            } => {
                if !attached_services.contains(&service) {
                    continue;
                }
                let label = labels
                    .get(&container)
                    .cloned()
                    .unwrap_or_else(|| container.clone());
                let buf = partial.entry(container.clone()).or_default();
                buf.push_str(&data);
                while let Some(i) = buf.find('\n') {
                    let line: String = buf.drain(..=i).collect();
                    print_line(&formatter, &label, &service, &line);
                }
            }
            Reply::Event(ev) => {
                if !services.contains(&ev.service) {
                    continue;
                }
                labels
                    .entry(ev.container.clone())
                    .or_insert_with(|| ev.container.clone());
                let is_active = ev.status.is_active();
                active.insert(ev.container.clone(), is_active);
                service_of.insert(ev.container.clone(), ev.service.clone());
                if ev.action == "die" && !ev.restarting {
                    let label = labels.get(&ev.container).cloned().unwrap_or_default();
                    if let Some(rest) = partial.remove(&ev.container) {
                        if !rest.is_empty() {
                            print_line(&formatter, &label, &ev.service, &rest);
                        }
                    }
                    let code = ev.exit_code.unwrap_or(0);
                    if attached_services.contains(&ev.service) {
                        eprintln!("{label} exited with code {code}");
                    }
                    let is_target = args.exit_code_from.as_deref() == Some(ev.service.as_str());
                    if is_target && exit_code.is_none() {
                        exit_code = Some(code);
                    }
                    let abort = args.abort_on_container_exit
                        || args.exit_code_from.is_some()
                        || (args.abort_on_container_failure && code != 0);
                    if abort && !stopping {
                        stopping = true;
                        if args.exit_code_from.is_none()
                            && args.abort_on_container_failure
                            && code != 0
                        {
                            exit_code = Some(code);
                        }
                        eprintln!("Aborting on container exit...");
                        stop_all(project, args.timeout, Selection::default());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(exit_code.unwrap_or(0))
}

fn print_line(formatter: &crate::logs::Formatter, label: &str, service: &str, line: &str) {
    use std::io::Write;
    let entry = crate::logs::Entry {
        stream: crate::logs::Stream::Stdout,
        time: std::time::SystemTime::now(),
        line: line.as_bytes().to_vec(),
    };
    let text = formatter.format(label, service, &entry);
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

pub(super) fn spawn_signal_thread() -> std::sync::mpsc::Receiver<i32> {
    let (tx, rx) = std::sync::mpsc::channel();
    // SAFETY: sigset manipulation on a local set; blocking SIGINT/SIGTERM in this (main)
    // thread before other threads start makes them inherit the mask, so sigwait gets them.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        std::thread::spawn(move || loop {
            let mut sig = 0;
            if libc::sigwait(&set, &mut sig) == 0 && tx.send(sig).is_err() {
                return;
            }
        });
    }
    rx
}
