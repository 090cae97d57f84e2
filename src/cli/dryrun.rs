//! `--dry-run` (global, as docker compose's): the plan a command would carry out — what would
//! be done and why — printed on stdout, with nothing touched on the host: the project's state
//! and the image store are only read, no supervisor is started, no directory is made.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::time::Duration;

use super::pull::{decide, Decision};
use crate::compose::model::{Project, ServiceConfig};
use crate::image::reference::Reference;
use crate::image::store::Store;
use crate::plan::observed::{Observed, ObservedContainer};
use crate::plan::ops::{Cause, Op, Plan};
use crate::plan::reconcile::{self, DownOptions, Fetch, ImageChoice};
use crate::supervisor::proto::UpOptions;
use crate::supervisor::state::{self, ProjectState};

/// Commands that change nothing: they run as usual under `--dry-run`.
pub fn reads_only(command: &str) -> bool {
    matches!(
        command,
        "config"
            | "ps"
            | "ls"
            | "logs"
            | "images"
            | "version"
            | "top"
            | "port"
            | "events"
            | "stats"
            // `network ls` and `inspect` run; the others refuse the flag themselves.
            | "network"
    )
}

/// Commands that print their plan under `--dry-run`.
pub fn plans(command: &str) -> bool {
    matches!(
        command,
        "up" | "create"
            | "scale"
            | "down"
            | "start"
            | "stop"
            | "restart"
            | "rm"
            | "kill"
            | "pause"
            | "unpause"
            | "run"
            | "pull"
            | "build"
            | "push"
            | "cp"
    )
}

/// Refuses `--dry-run` for a command that would act without a plan to show.
pub fn check(command: &str) -> Result<()> {
    if reads_only(command) || plans(command) {
        return Ok(());
    }
    bail!("--dry-run is not supported by `rcompose {command}` yet: nothing was done")
}

pub fn print(plan: &Plan) {
    print!("DRY-RUN MODE: nothing is changed; the plan:\n{plan}");
}

/// What exists of `project`, from its recorded state (nothing if it has none).
fn observed(project: &str) -> Result<Observed> {
    let st = ProjectState::load(project)
        .with_context(|| format!("cannot read the state of project {project}"))?;
    let shared: Vec<String> = state::projects()
        .into_iter()
        .filter(|p| p != project)
        .filter_map(|p| ProjectState::load(&p).ok().flatten())
        .flat_map(|s| s.networks.into_iter().map(|n| n.name))
        .collect();
    Ok(st
        .map(|s| Observed::from_state(&s, &shared))
        .unwrap_or_default())
}

/// The image store as it is, only read (`None`: there is none yet, so no images).
pub fn store() -> Option<Store> {
    let root = crate::paths::images();
    root.is_dir().then(|| Store::at(root))
}

/// The images `up` would use: present ones by id, and which it would pull or build first.
fn image_choices(
    project: &Project,
    selected: &[String],
    build: bool,
    no_build: bool,
) -> Result<BTreeMap<String, ImageChoice>> {
    let store = store();
    let mut out = BTreeMap::new();
    for name in selected {
        let svc = &project.services[name];
        let image = if svc.image.is_empty() {
            format!("{}-{}", project.name, svc.name)
        } else {
            svc.image.clone()
        };
        let reference = Reference::parse(&image)
            .with_context(|| format!("service {name}: invalid image {image:?}"))?;
        let present = match &store {
            Some(s) => s.resolve(&reference.to_string())?,
            None => None,
        };
        let age = present.as_ref().map(|img| {
            store
                .as_ref()
                .and_then(|s| s.recorded_at(&img.id))
                .and_then(|t| t.elapsed().ok())
                .unwrap_or_default()
        });
        let fetch = if svc.build.is_some() && !no_build && (build || present.is_none()) {
            Some(Fetch::Build(if build {
                "--build".to_string()
            } else {
                "image missing".to_string()
            }))
        } else if svc.build.is_some() && present.is_none() {
            bail!("service {name}: image {image} is not present and --no-build was given");
        } else if svc.build.is_none() {
            let policy = if svc.pull_policy.is_empty() {
                "missing"
            } else {
                svc.pull_policy.as_str()
            };
            match decide(policy, age, false).with_context(|| format!("service {name}"))? {
                Decision::Pull if present.is_none() => Some(Fetch::Pull("image missing".into())),
                Decision::Pull => Some(Fetch::Pull(format!("pull_policy {policy}"))),
                Decision::Skip(_) if present.is_none() => bail!(
                    "service {name}: image {image} is not present and its pull_policy is {policy}"
                ),
                Decision::Skip(_) => None,
            }
        } else {
            None
        };
        out.insert(
            name.clone(),
            ImageChoice {
                id: present.map(|i| i.id.to_string()),
                fetch,
            },
        );
    }
    Ok(out)
}

/// `up`/`create`/`scale` under `--dry-run`.
pub fn up(project: &Project, opts: &UpOptions, build: bool, no_build: bool) -> Result<i32> {
    let selected = reconcile::selected_services(project, opts)?;
    let images = image_choices(project, &selected, build, no_build)?;
    let plan = reconcile::up(project, &images, &observed(&project.name)?, opts)?;
    print(&plan);
    Ok(0)
}

/// `down` under `--dry-run`.
pub fn down(project: &str, opts: &DownOptions) -> Result<i32> {
    print(&reconcile::down(&observed(project)?, opts));
    Ok(0)
}

/// The service containers (not one-off) of `services` (all when empty).
fn select<'o>(o: &'o Observed, services: &[String]) -> Vec<&'o ObservedContainer> {
    o.containers
        .iter()
        .filter(|c| !c.oneoff && (services.is_empty() || services.contains(&c.service)))
        .collect()
}

/// `start`, `stop`, `restart` and `rm` under `--dry-run`.
pub fn lifecycle(
    command: &str,
    project: &str,
    services: &[String],
    timeout: Option<u64>,
    stop_first: bool,
    volumes: bool,
) -> Result<i32> {
    let o = observed(project)?;
    let selected = select(&o, services);
    let timeout = timeout.map(Duration::from_secs);
    let plan = match command {
        "start" => reconcile::start(&selected),
        "stop" => reconcile::stop(&selected, timeout),
        "restart" => {
            // Stopped, then started again: the start plan sees them all stopped.
            let mut plan = reconcile::stop(&selected, timeout);
            let stopped: Vec<ObservedContainer> = selected
                .iter()
                .map(|c| ObservedContainer {
                    status: state::Status::Exited,
                    ..(*c).clone()
                })
                .collect();
            let refs: Vec<&ObservedContainer> = stopped.iter().collect();
            // Every start follows every stop; its own edges move past them.
            let stops = plan.len();
            for step in reconcile::start(&refs).steps {
                let after = step
                    .after
                    .iter()
                    .map(|a| a + stops)
                    .chain(0..stops)
                    .collect();
                plan.push(step.op, step.cause, after);
            }
            plan
        }
        "rm" => reconcile::remove(&selected, stop_first, volumes),
        other => bail!("--dry-run is not supported by `rcompose {other}` yet"),
    };
    print(&plan);
    Ok(0)
}

/// `kill` under `--dry-run`.
pub fn kill(project: &str, services: &[String], signal: i32) -> Result<i32> {
    let o = observed(project)?;
    print(&reconcile::kill(&select(&o, services), signal));
    Ok(0)
}

/// `pause` (`on`) or `unpause` under `--dry-run`.
pub fn pause(project: &str, services: &[String], on: bool) -> Result<i32> {
    let o = observed(project)?;
    print(&reconcile::pause(&select(&o, services), on));
    Ok(0)
}

/// What `run` asks for, as its plan needs it.
pub struct RunRequest<'a> {
    /// The service with the run's overrides.
    pub service: &'a ServiceConfig,
    /// `--name`.
    pub name: Option<&'a str>,
    pub no_deps: bool,
    /// `--build`.
    pub build: bool,
    /// `--rm`.
    pub rm: bool,
}

/// `run` under `--dry-run`: the `up` of its dependencies (unless `--no-deps`), then the waits
/// for them, the one-off container's image, networks, creation and start, and with `--rm` its
/// removal once it exits.
pub fn run(project: &Project, req: &RunRequest) -> Result<i32> {
    let service = req.service;
    let observed = observed(&project.name)?;
    let deps: Vec<String> = service.dependencies().map(String::from).collect();
    let mut plan = if req.no_deps || deps.is_empty() {
        Plan::default()
    } else {
        let opts = UpOptions {
            services: deps,
            ..UpOptions::default()
        };
        let selected = reconcile::selected_services(project, &opts)?;
        let images = image_choices(project, &selected, req.build, false)?;
        reconcile::up(project, &images, &observed, &opts)?
    };
    let image = image_choices(
        project,
        std::slice::from_ref(&service.name),
        req.build,
        false,
    )?
    .remove(&service.name)
    .unwrap_or_default();
    let name = match req.name {
        Some(n) => crate::names::container_name(n).to_string(),
        None => format!("{}-{}-run-<id>", project.name, service.name),
    };
    let oneoff = reconcile::run(
        project,
        service,
        &image,
        &observed.after(&plan),
        &name,
        req.no_deps,
    )?;
    // The one-off's steps follow the dependencies' up.
    let up_steps = plan.len();
    for step in oneoff.steps {
        let after = if step.after.is_empty() {
            (0..up_steps).collect()
        } else {
            step.after.iter().map(|a| a + up_steps).collect()
        };
        plan.push(step.op, step.cause, after);
    }
    plan.warnings.extend(oneoff.warnings);
    if req.rm {
        let start = plan.len() - 1;
        plan.push(
            Op::RemoveContainer {
                name,
                volumes: true,
            },
            Cause::Forced("--rm, once it exits"),
            vec![start],
        );
    }
    print(&plan);
    Ok(0)
}
