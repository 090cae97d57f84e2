//! `rcompose watch` and the watch half of `up --watch`: the project's `develop.watch` rules
//! carried out against its running containers, through its supervisor.

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};

use super::{project, Global};
use crate::compose::loader::Loaded;
use crate::compose::model::{Project, ServiceHook};
use crate::image::store::Store;
use crate::runtime::container::{self, Container, ExecRequest};
use crate::runtime::process::Stdio;
use crate::supervisor::proto::{Request, Selection, UpOptions};
use crate::supervisor::state::{self, Status};
use crate::watch::rules::{self, Rule};
use crate::watch::{self as w, Backend, Input, Target, WatchError};

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Do not start the services before watching
    #[arg(long)]
    pub no_up: bool,
    /// Hide pull output (rebuild)
    #[arg(long)]
    pub quiet: bool,
    /// Prune dangling images on rebuild
    #[arg(long)]
    pub prune: bool,
    pub services: Vec<String>,
}

/// `up -d` as the command line would ask for it (so `watch` starts the project exactly as `up`).
#[derive(Parser)]
struct UpCommand {
    #[command(flatten)]
    up: super::up::UpArgs,
}

pub fn run(global: &Global, args: WatchArgs) -> Result<i32> {
    // Ctrl-C and SIGTERM end the watch: blocked before any thread starts, then taken by one.
    let signals = super::up::spawn_signal_thread();
    let target = project::target(global)?;
    let loaded = target.require_loaded()?;
    for s in &args.services {
        if !loaded.project.services.contains_key(s) {
            bail!("no such service: {s}");
        }
    }
    let rules = prepare(&loaded, &args.services)?;
    if !args.no_up {
        let mut argv = vec!["up".to_string(), "-d".to_string()];
        if args.quiet {
            argv.push("--quiet-pull".into());
        }
        argv.extend(args.services.iter().cloned());
        let up = UpCommand::try_parse_from(argv).context("cannot prepare up")?;
        let code = super::up::run(global, up.up)?;
        if code != 0 {
            return Ok(code);
        }
    }
    let (tx, rx) = channel();
    let stop = tx.clone();
    std::thread::spawn(move || {
        if signals.recv().is_ok() {
            let _ = stop.send(Input::Stop);
        }
    });
    let mut backend = CliBackend::new(global, &loaded, args.quiet, args.prune);
    watch(&rules, &mut backend, tx, rx)?;
    Ok(0)
}

/// The rules of the selected services, with docker compose's warnings printed; fails when none
/// of them has a `develop` section.
pub fn prepare(loaded: &Loaded, services: &[String]) -> Result<Vec<Rule>> {
    let rules = rules::compile_project(&loaded.project, &loaded.working_dir, services)?;
    let (rules, warnings) = rules::review(rules, &loaded.project, &loaded.working_dir);
    for warning in warnings {
        super::warn(&warning);
    }
    Ok(rules)
}

/// `up --watch`: watches in a thread of its own until the process ends (the attached `up`
/// decides when, on Ctrl-C or when the containers are gone).
pub fn spawn(global: &Global, loaded: &Loaded, rules: Vec<Rule>) {
    let mut backend = CliBackend::new(global, loaded, false, false);
    std::thread::spawn(move || {
        let (tx, rx) = channel();
        if let Err(e) = watch(&rules, &mut backend, tx, rx) {
            super::print_error(&anyhow::Error::new(e));
        }
    });
}

fn watch(
    rules: &[Rule],
    backend: &mut CliBackend,
    tx: Sender<Input>,
    rx: std::sync::mpsc::Receiver<Input>,
) -> Result<(), WatchError> {
    let mut log = |line: &str| print_line(line);
    w::initial_sync(rules, backend, &mut log)?;
    w::run(rules, backend, tx, rx, &mut log)
}

/// Watch messages on stdout, between the containers' log lines; warnings on stderr.
fn print_line(line: &str) {
    use std::io::Write;
    match line.strip_prefix("WARN ") {
        Some(warning) => super::warn(warning),
        None => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

/// The project's supervisor, containers and image store.
struct CliBackend {
    global: Global,
    project: Project,
    working_dir: PathBuf,
    config_files: Vec<PathBuf>,
    /// The environment the project was loaded with (config and secret contents).
    environment: crate::compose::environment::Environment,
    quiet: bool,
    prune: bool,
}

impl CliBackend {
    fn new(global: &Global, loaded: &Loaded, quiet: bool, prune: bool) -> CliBackend {
        CliBackend {
            global: global.clone(),
            project: loaded.project.clone(),
            working_dir: loaded.working_dir.clone(),
            config_files: loaded.files.clone(),
            environment: loaded.environment.clone(),
            quiet,
            prune,
        }
    }

    /// The running containers of `service` with their host pid.
    fn running(&self, service: &str) -> Result<Vec<(state::ContainerRecord, i32)>, WatchError> {
        let st = project::state(&self.project.name).map_err(backend_err)?;
        Ok(st
            .containers
            .into_iter()
            .filter(|c| c.service == service && !c.oneoff && c.status == Status::Running)
            .filter_map(|c| c.pid.map(|pid| (c, pid)))
            .collect())
    }
}

fn backend_err(e: impl std::fmt::Display) -> WatchError {
    WatchError::Backend(format!("{e:#}"))
}

impl Backend for CliBackend {
    fn containers(&mut self, service: &str) -> Result<Vec<Target>, WatchError> {
        // Synced files stay root's, as docker compose copies them, unless the service runs as
        // another user: then they are that user's, as resolved when the container was created.
        let as_user = self
            .project
            .services
            .get(service)
            .is_some_and(|s| !s.user.is_empty());
        let mut out = Vec::new();
        for (record, pid) in self.running(service)? {
            let owner = if as_user {
                let c = Container::load(&state::container_dir(&record.id)).map_err(|e| {
                    WatchError::Backend(format!("cannot open container {}: {e}", record.name))
                })?;
                Some((c.config().process.uid, c.config().process.gid))
            } else {
                None
            };
            out.push(Target {
                name: record.name,
                pid,
                owner,
            });
        }
        Ok(out)
    }

    fn restart(&mut self, services: &[String]) -> Result<(), WatchError> {
        let req = Request::Restart {
            selection: Selection {
                services: services.to_vec(),
                index: None,
            },
            timeout: None,
        };
        project::send(&self.project.name, &req, false, true).map_err(backend_err)
    }

    fn exec(&mut self, service: &str, hook: &ServiceHook) -> Result<(), WatchError> {
        let helper = super::run::helper_path().map_err(backend_err)?;
        let req = ExecRequest {
            args: hook.command.clone().unwrap_or_default(),
            env: hook
                .environment
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={v}"),
                    None => format!("{k}={}", std::env::var(k).unwrap_or_default()),
                })
                .collect(),
            user: (!hook.user.is_empty()).then(|| hook.user.clone()),
            workdir: (!hook.working_dir.is_empty()).then(|| hook.working_dir.clone()),
            tty: None,
            privileged: hook.privileged,
        };
        for (record, pid) in self.running(service)? {
            let c = Container::load(&state::container_dir(&record.id)).map_err(|e| {
                WatchError::Backend(format!("cannot open container {}: {e}", record.name))
            })?;
            let stdout = std::io::stdout();
            let stderr = std::io::stderr();
            let stdio = Stdio {
                stdin: None,
                stdout: Some(stdout.as_fd()),
                stderr: Some(stderr.as_fd()),
            };
            let (spawned, _) = c.exec(&helper, pid, &req, stdio).map_err(|e| {
                WatchError::Backend(format!("cannot exec in container {}: {e}", record.name))
            })?;
            let status = container::wait(spawned.pid()).map_err(|e| {
                WatchError::Backend(format!("cannot wait for exec in {}: {e}", record.name))
            })?;
            let code = status.docker_code();
            if code != 0 {
                return Err(WatchError::Backend(format!(
                    "exec {:?} in container {} exited with code {code}",
                    req.args, record.name
                )));
            }
        }
        Ok(())
    }

    fn rebuild(&mut self, services: &[String]) -> Result<(), WatchError> {
        // Services with a build section are built again (the step cache keeps it to what
        // changed); others have their image pulled again. Then the containers are recreated.
        let store = Store::open(crate::paths::images()).map_err(backend_err)?;
        let mut global = self.global.clone();
        if self.quiet {
            global.progress = super::Progress::Quiet;
        }
        let built: Vec<String> = services
            .iter()
            .filter(|s| {
                self.project
                    .services
                    .get(*s)
                    .is_some_and(|svc| svc.build.is_some())
            })
            .cloned()
            .collect();
        if !built.is_empty() {
            let opts = super::build::Options {
                force: true,
                quiet: self.quiet,
                ..Default::default()
            };
            super::build::build_services(
                &global,
                &mut self.project,
                &self.working_dir,
                &built,
                &opts,
            )
            .map_err(backend_err)?;
        }
        for name in services {
            let Some(service) = self.project.services.get(name) else {
                continue;
            };
            if service.build.is_some() {
                continue;
            }
            let mut service = service.clone();
            service.pull_policy = "always".into();
            super::pull::ensure_image(&global, &store, &service).map_err(backend_err)?;
        }
        let req = Request::Up {
            project: Box::new(self.project.clone()),
            working_dir: self.working_dir.clone(),
            config_files: self.config_files.clone(),
            options: UpOptions {
                services: services.to_vec(),
                no_deps: true,
                force_recreate: true,
                ..Default::default()
            },
            contents: crate::configs::client_contents(&self.project, &self.environment)
                .map_err(backend_err)?,
        };
        project::send(&self.project.name, &req, true, self.quiet).map_err(backend_err)?;
        if self.prune {
            // Images no reference names any more, except those any project's containers use.
            let mut keep = Vec::new();
            for name in state::projects() {
                if let Ok(st) = project::state(&name) {
                    keep.extend(st.containers.iter().filter_map(|c| c.image_id.parse().ok()));
                }
            }
            store.prune(&keep, false).map_err(backend_err)?;
        }
        Ok(())
    }
}
