//! `reconcile`: what must happen for what exists ([`Observed`]) to become what the compose file
//! asks for, as a [`Plan`]. Pure: no host access, so every scenario is a unit test
//! (`reconcile/tests.rs`, golden plans).
//!
//! docker compose's convergence rules (pkg/compose/convergence.go):
//! - A container is recreated when its service hash (which leaves out build, pull_policy,
//!   depends_on, profiles and the replica count) or its image changed; services named on the
//!   command line follow `--force-recreate`/`--no-recreate`/`-V`, the others (dependencies
//!   pulled in) `--always-recreate-deps`/`--no-recreate`.
//! - Recreation creates the replacement first under a temporary name (`<old id>_<name>`),
//!   which takes the old container's anonymous volumes (unless `-V`), then stops and removes
//!   the old one and renames the replacement into place: a failed create leaves the old
//!   container running.
//! - Scaling down removes the highest numbers; containers of services the file no longer has
//!   are orphans (removed with `--remove-orphans`, else named in a warning).
//! - A dependent starts once its dependencies meet their `depends_on` conditions; one that
//!   asked for `restart: true` is restarted when a dependency was recreated.
//! - A network whose configuration changed is recreated when only this project's containers
//!   use it (they are stopped first and recreated on the new one), else it is an error.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use super::graph::{CycleError, ServiceGraph};
use super::observed::{changed_fields, field_hashes, Observed, ObservedContainer};
use super::ops::{Cause, Op, Plan, StepId};
use crate::compose::model::{Project, ServiceConfig};
use crate::network::project as project_net;
use crate::supervisor::proto::UpOptions;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    #[error("no such service: {0}")]
    NoSuchService(String),
    #[error(transparent)]
    Cycle(#[from] CycleError),
    #[error(
        "network {name} has changed ({fields}) but containers of other projects are attached to it: stop them first"
    )]
    NetworkInUse { name: String, fields: String },
    #[error("{0}")]
    Network(String),
    #[error("dependency failed to start: service {0} did not start")]
    DependencyMissing(String),
}

/// Why an image is fetched before containers are made from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    Pull(String),
    Build(String),
}

/// The image a service will run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageChoice {
    /// The image's id in the store now (`None`: not present yet).
    pub id: Option<String>,
    /// Pull or build it first, and why.
    pub fetch: Option<Fetch>,
}

/// What decides whether a container must be recreated: docker compose's service hash and the
/// image's id.
pub fn config_hash(service: &ServiceConfig, image_id: &str) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(service.docker_hash().unwrap_or_default().as_bytes());
    h.update(image_id.as_bytes());
    hex::encode(h.finalize())
}

/// Per top-level key hashes of what `config_hash` covers (the cause of a recreation names the
/// keys that differ).
pub fn service_fields(service: &ServiceConfig) -> BTreeMap<String, String> {
    service
        .hash_value()
        .map(|v| field_hashes(&v))
        .unwrap_or_default()
}

/// How containers of one service are recreated (docker compose's strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Never,
    Diverged,
    Force(&'static str),
}

/// The name a replacement has until its old container is gone: `<old id, 12>_<name>`, as
/// docker compose.
fn temporary_name(old: &ObservedContainer) -> String {
    let short: String = old.id.chars().take(12).collect();
    format!("{short}_{}", old.name)
}

/// docker compose's orphan warning.
pub fn orphan_warning(names: &[String]) -> String {
    format!(
        "Found orphan containers ({}) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.",
        names.join(", ")
    )
}

/// The services an `up` acts on: those named (all when none is) with their dependencies
/// (unless `no_deps`). Unknown services and dependency cycles are errors.
pub fn selected_services(
    project: &Project,
    opts: &UpOptions,
) -> Result<Vec<String>, ReconcileError> {
    let graph = ServiceGraph::of_project(project);
    graph.check_acyclic()?;
    for s in opts
        .services
        .iter()
        .chain(opts.scale.iter().map(|(s, _)| s))
    {
        if !project.services.contains_key(s) {
            return Err(ReconcileError::NoSuchService(s.clone()));
        }
    }
    Ok(if opts.services.is_empty() {
        project.services.keys().cloned().collect()
    } else if opts.no_deps {
        opts.services.clone()
    } else {
        graph.with_dependencies(&opts.services)
    })
}

/// The plan of `up` (and `create`, `up --no-start`, `scale`, watch's rebuild).
pub fn up(
    project: &Project,
    images: &BTreeMap<String, ImageChoice>,
    observed: &Observed,
    opts: &UpOptions,
) -> Result<Plan, ReconcileError> {
    let graph = ServiceGraph::of_project(project);
    let selected = selected_services(project, opts)?;
    let levels = graph.start_levels()?;
    let mut order: Vec<String> = levels
        .iter()
        .flatten()
        .filter(|s| selected.contains(s))
        .cloned()
        .collect();
    let timeout = opts.timeout.map(Duration::from_secs);
    let mut plan = Plan::default();

    // Orphans first: they may hold ports or names the new containers want.
    let orphans: Vec<&ObservedContainer> = observed
        .containers
        .iter()
        .filter(|c| {
            !c.oneoff
                && !project.services.contains_key(&c.service)
                && !opts.disabled_services.contains(&c.service)
        })
        .collect();
    if opts.remove_orphans {
        for c in &orphans {
            let stop = c.is_active().then(|| {
                plan.push(
                    Op::StopContainer {
                        name: c.name.clone(),
                        timeout,
                    },
                    Cause::Orphan,
                    vec![],
                )
            });
            plan.push(
                Op::RemoveContainer {
                    name: c.name.clone(),
                    volumes: true,
                },
                Cause::Orphan,
                stop.into_iter().collect(),
            );
        }
    } else if !orphans.is_empty() {
        let names: Vec<String> = orphans.iter().map(|c| c.name.clone()).collect();
        plan.warnings.push(orphan_warning(&names));
    }

    // Networks: missing ones are created; changed ones are recreated once this project's
    // containers on them are stopped.
    let selected_refs: Vec<&str> = selected.iter().map(String::as_str).collect();
    let used = project_net::used_networks(project, &selected_refs)
        .map_err(|e| ReconcileError::Network(e.to_string()))?;
    let mut network_ready: HashMap<String, StepId> = HashMap::new();
    // Containers stopped because their network is recreated (by name: the stop step).
    let mut stopped_for_network: HashMap<String, StepId> = HashMap::new();
    let mut changed_networks: HashMap<String, Vec<String>> = HashMap::new();
    for (key, config) in &used {
        let name = project_net::network_name(project, key, config);
        let Some(existing) = observed.networks.iter().find(|n| n.key == *key) else {
            let op = missing_network(key, name, config.external);
            let id = plan.push(op, Cause::Missing, vec![]);
            network_ready.insert(key.to_string(), id);
            continue;
        };
        if config.external {
            // Someone else's: never recreated here.
            continue;
        }
        let mut fields = if existing.config_fields.is_empty() {
            Vec::new()
        } else {
            changed_fields(
                &existing.config_fields,
                &project_net::network_fields(config),
            )
        };
        if existing.name != name && !fields.iter().any(|f| f == "name") {
            fields.push("name".into());
        }
        if fields.is_empty() || existing.external {
            continue;
        }
        if existing.used_by_others {
            return Err(ReconcileError::NetworkInUse {
                name: existing.name.clone(),
                fields: fields.join(", "),
            });
        }
        let cause = Cause::NetworkChanged(fields.clone());
        let mut stops = Vec::new();
        for c in observed
            .containers
            .iter()
            .filter(|c| c.networks.iter().any(|n| n == key))
        {
            let stop = match stopped_for_network.get(&c.name) {
                Some(s) => *s,
                None => {
                    let s = plan.push(
                        Op::StopContainer {
                            name: c.name.clone(),
                            timeout,
                        },
                        cause.clone(),
                        vec![],
                    );
                    stopped_for_network.insert(c.name.clone(), s);
                    s
                }
            };
            stops.push(stop);
        }
        let removed = plan.push(
            Op::RemoveNetwork {
                key: key.to_string(),
                name: existing.name.clone(),
            },
            cause.clone(),
            stops,
        );
        let created = plan.push(
            Op::CreateNetwork {
                key: key.to_string(),
                name,
            },
            cause,
            vec![removed],
        );
        network_ready.insert(key.to_string(), created);
        changed_networks.insert(key.to_string(), fields);
    }

    // A changed network's containers are all stopped: those of services this `up` was not
    // given are recreated on it too, else they would stay stopped on a network that is gone.
    if !changed_networks.is_empty() {
        let on_changed: Vec<&str> = observed
            .containers
            .iter()
            .filter(|c| !c.oneoff && c.networks.iter().any(|n| changed_networks.contains_key(n)))
            .map(|c| c.service.as_str())
            .collect();
        order = levels
            .iter()
            .flatten()
            .filter(|s| selected.contains(s) || on_changed.contains(&s.as_str()))
            .cloned()
            .collect();
    }

    // Services, dependencies first.
    let mut recreated: HashSet<String> = HashSet::new();
    // Per service: the container names it will have, and the step after which each is
    // running (None: it runs already).
    let mut running: HashMap<String, Vec<(String, Option<StepId>)>> = HashMap::new();
    // Per service: the steps creating its containers (volumes_from waits for them).
    let mut creates: HashMap<String, Vec<StepId>> = HashMap::new();
    let mut waits: HashMap<(String, String), StepId> = HashMap::new();
    for name in &order {
        let service = &project.services[name];
        let named = opts.services.is_empty() || opts.services.contains(name);
        let strategy = if opts.no_recreate {
            Strategy::Never
        } else if named && opts.force_recreate {
            Strategy::Force("--force-recreate")
        } else if named && opts.renew_anon_volumes {
            Strategy::Force("--renew-anon-volumes")
        } else if !named && opts.always_recreate_deps {
            Strategy::Force("--always-recreate-deps")
        } else {
            Strategy::Diverged
        };
        let choice = images.get(name).cloned().unwrap_or_default();
        let image_step = choice.fetch.as_ref().map(|f| match f {
            Fetch::Pull(why) => plan.push(
                Op::PullImage {
                    service: name.clone(),
                    image: service.image.clone(),
                },
                Cause::ImagePolicy(why.clone()),
                vec![],
            ),
            Fetch::Build(why) => plan.push(
                Op::BuildImage {
                    service: name.clone(),
                    image: service.image.clone(),
                },
                Cause::ImagePolicy(why.clone()),
                vec![],
            ),
        });
        let hash = choice.id.as_deref().map(|id| config_hash(service, id));
        let fields = service_fields(service);

        // What a create of this service waits for: its image, its networks, the containers
        // whose namespaces it joins (running) or whose volumes it takes (created).
        let mut before_create: Vec<StepId> = image_step.into_iter().collect();
        if service.network_mode.is_empty() {
            for key in service.networks.keys() {
                before_create.extend(network_ready.get(key));
            }
        }
        for mode in [
            &service.network_mode,
            &service.pid,
            &service.ipc,
            &service.uts,
        ] {
            if let Some(peer) = mode.strip_prefix("service:") {
                if let Some(r) = running.get(peer) {
                    before_create.extend(r.iter().filter_map(|(_, s)| *s));
                }
            }
        }
        for source in &service.volumes_from {
            let peer = source.strip_prefix("service:").unwrap_or(source);
            let peer = peer.split(':').next().unwrap_or(peer);
            if let Some(c) = creates.get(peer) {
                before_create.extend(c.iter().copied());
            }
        }

        let want = opts
            .scale
            .iter()
            .find(|(s, _)| s == name)
            .map(|(_, n)| *n)
            .unwrap_or_else(|| service.scale().clamp(0, i64::from(u32::MAX)) as u32);
        let existing = observed.replicas(name);
        let scale_cause = Cause::Scale {
            from: existing.len() as u32,
            to: want,
        };
        for c in existing.iter().filter(|c| c.number > want) {
            let stop = c.is_active().then(|| {
                plan.push(
                    Op::StopContainer {
                        name: c.name.clone(),
                        timeout,
                    },
                    scale_cause.clone(),
                    vec![],
                )
            });
            plan.push(
                Op::RemoveContainer {
                    name: c.name.clone(),
                    volumes: true,
                },
                scale_cause.clone(),
                stop.into_iter().collect(),
            );
        }
        // A dependency recreated, which this service follows with a restart.
        let restart_for: Option<String> = service
            .depends_on
            .iter()
            .find(|(dep, cond)| cond.restart && recreated.contains(*dep))
            .map(|(dep, _)| dep.clone());

        // The dependencies' conditions, awaited before any start of this service.
        let mut before_start: Vec<StepId> = Vec::new();
        let dependency_waits = |plan: &mut Plan,
                                waits: &mut HashMap<(String, String), StepId>,
                                running: &HashMap<String, Vec<(String, Option<StepId>)>>|
         -> Vec<StepId> {
            let mut out = Vec::new();
            for (dep, cond) in &service.depends_on {
                if opts.no_deps && !selected.contains(dep) {
                    continue;
                }
                let containers: Vec<(String, Option<StepId>)> = match running.get(dep) {
                    Some(r) => r.clone(),
                    None => observed
                        .replicas(dep)
                        .into_iter()
                        .map(|c| (c.name.clone(), None))
                        .collect(),
                };
                for (container, started) in containers {
                    let key = (container.clone(), cond.condition.clone());
                    let id = *waits.entry(key).or_insert_with(|| {
                        plan.push(
                            Op::WaitContainer {
                                name: container.clone(),
                                condition: cond.condition.clone(),
                                required: cond.required,
                            },
                            Cause::Dependency {
                                dependent: service.name.clone(),
                            },
                            started.into_iter().collect(),
                        )
                    });
                    out.push(id);
                }
            }
            out
        };
        let mut waits_made = false;

        let mut service_running = Vec::new();
        for number in 1..=want {
            let final_name = crate::supervisor::container_name(project, service, number);
            let current = existing.iter().find(|c| c.number == number);
            // (step after which the container exists under its final name, cause of a start)
            let (ready, start_cause): (Option<StepId>, Option<Cause>) = match current {
                Some(c) => {
                    let on_changed_network = c
                        .networks
                        .iter()
                        .find_map(|n| changed_networks.get(n))
                        .cloned();
                    let diverged = || -> Option<Cause> {
                        match &hash {
                            Some(h) if *h == c.config_hash => None,
                            Some(_) if choice.id.as_deref() != Some(c.image_id.as_str()) => {
                                Some(Cause::ImageChanged)
                            }
                            Some(_) => Some(Cause::ConfigChanged(changed_fields(
                                &c.config_fields,
                                &fields,
                            ))),
                            // The image is fetched first: its id is not known yet.
                            None => {
                                let changed = changed_fields(&c.config_fields, &fields);
                                (!changed.is_empty() && !c.config_fields.is_empty())
                                    .then_some(Cause::ConfigChanged(changed))
                            }
                        }
                    };
                    let recreate = match (on_changed_network, strategy) {
                        (Some(fields), _) => Some(Cause::NetworkChanged(fields)),
                        (None, Strategy::Never) => None,
                        (None, Strategy::Force(flag)) => Some(Cause::Forced(flag)),
                        (None, Strategy::Diverged) => diverged(),
                    };
                    if let Some(cause) = recreate {
                        recreated.insert(name.clone());
                        let temporary = temporary_name(c);
                        let create = plan.push(
                            Op::CreateContainer {
                                service: name.clone(),
                                number,
                                name: temporary.clone(),
                                replaces: Some(c.name.clone()),
                                renew_anon_volumes: opts.renew_anon_volumes,
                            },
                            cause.clone(),
                            before_create.clone(),
                        );
                        let stop = match stopped_for_network.get(&c.name) {
                            Some(s) => Some(*s),
                            None => c.is_active().then(|| {
                                plan.push(
                                    Op::StopContainer {
                                        name: c.name.clone(),
                                        timeout,
                                    },
                                    Cause::Replaced,
                                    vec![create],
                                )
                            }),
                        };
                        let mut after_remove = vec![create];
                        after_remove.extend(stop);
                        let removed = plan.push(
                            // (Anonymous volumes the replacement did not take over go
                            // with it either way: nothing else could use them.)
                            Op::RemoveContainer {
                                name: c.name.clone(),
                                volumes: opts.renew_anon_volumes,
                            },
                            Cause::Replaced,
                            after_remove,
                        );
                        let renamed = plan.push(
                            Op::RenameContainer {
                                from: temporary,
                                to: final_name.clone(),
                            },
                            cause.clone(),
                            vec![removed],
                        );
                        creates.entry(name.clone()).or_default().push(renamed);
                        (Some(renamed), Some(cause))
                    } else if let (Some(dep), true, false) =
                        (&restart_for, c.is_active(), opts.no_start)
                    {
                        let cause = Cause::DependencyRecreated(dep.clone());
                        let stop = plan.push(
                            Op::StopContainer {
                                name: c.name.clone(),
                                timeout: None,
                            },
                            cause.clone(),
                            vec![],
                        );
                        (Some(stop), Some(cause))
                    } else if c.is_active() {
                        (None, None)
                    } else {
                        (None, Some(Cause::NotRunning))
                    }
                }
                None => {
                    let cause = if existing.is_empty() {
                        Cause::Missing
                    } else {
                        scale_cause.clone()
                    };
                    let create = plan.push(
                        Op::CreateContainer {
                            service: name.clone(),
                            number,
                            name: final_name.clone(),
                            replaces: None,
                            renew_anon_volumes: false,
                        },
                        cause.clone(),
                        before_create.clone(),
                    );
                    creates.entry(name.clone()).or_default().push(create);
                    (Some(create), Some(cause))
                }
            };
            let started = match start_cause {
                Some(cause) if !opts.no_start => {
                    if !waits_made {
                        before_start = dependency_waits(&mut plan, &mut waits, &running);
                        waits_made = true;
                    }
                    let mut after: Vec<StepId> = ready.into_iter().collect();
                    after.extend(before_start.iter().copied());
                    Some(plan.push(
                        Op::StartContainer {
                            name: final_name.clone(),
                        },
                        cause,
                        after,
                    ))
                }
                _ => ready,
            };
            service_running.push((final_name, started));
        }
        running.insert(name.clone(), service_running);
    }
    Ok(plan)
}

/// What `down` is asked.
#[derive(Debug, Clone, Default)]
pub struct DownOptions {
    /// Services of the current file (for orphans); `None`: remove every container.
    pub services: Option<Vec<String>>,
    pub remove_orphans: bool,
    /// Remove the named volumes too (`-v`).
    pub volumes: bool,
    pub timeout: Option<Duration>,
}

/// The plan of `down`: containers stopped dependents first and removed with their anonymous
/// volumes; once none is left, the networks (and with `volumes` the named volumes).
pub fn down(observed: &Observed, opts: &DownOptions) -> Plan {
    let mut plan = Plan::default();
    let (going, kept): (Vec<&ObservedContainer>, Vec<&ObservedContainer>) = match &opts.services {
        Some(s) if !opts.remove_orphans => observed
            .containers
            .iter()
            .partition(|c| s.contains(&c.service)),
        _ => (observed.containers.iter().collect(), Vec::new()),
    };
    if !kept.is_empty() {
        let names: Vec<String> = kept.iter().map(|c| c.name.clone()).collect();
        plan.warnings.push(orphan_warning(&names));
    }
    let stops = stop_steps(&mut plan, &going, opts.timeout, &Cause::Requested);
    // Networks go after every container is removed: a removal rewrites the firewall table
    // when the container published ports, which would bring back a table torn down already.
    let mut removed = Vec::new();
    for c in &going {
        removed.push(plan.push(
            Op::RemoveContainer {
                name: c.name.clone(),
                volumes: true,
            },
            Cause::Requested,
            stops.get(&c.name).copied().into_iter().collect(),
        ));
    }
    if kept.is_empty() {
        for n in observed.networks.iter().filter(|n| !n.external) {
            plan.push(
                Op::RemoveNetwork {
                    key: n.key.clone(),
                    name: n.name.clone(),
                },
                Cause::Requested,
                removed.clone(),
            );
        }
    }
    if opts.volumes {
        for v in &observed.volumes {
            plan.push(
                Op::RemoveVolume { name: v.clone() },
                Cause::Requested,
                removed.clone(),
            );
        }
    }
    plan
}

/// Stops of the active ones of `containers`, each after the stops of the containers that
/// depend on its service (dependents first). Returns the stop step of each container by name.
fn stop_steps(
    plan: &mut Plan,
    containers: &[&ObservedContainer],
    timeout: Option<Duration>,
    cause: &Cause,
) -> HashMap<String, StepId> {
    let services: Vec<(&str, Vec<&str>)> = {
        let mut by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for c in containers {
            by.entry(c.service.as_str())
                .or_default()
                .extend(c.depends_on.iter().map(String::as_str));
        }
        by.into_iter().collect()
    };
    let graph = ServiceGraph::new(services.iter().map(|(s, d)| (*s, d.iter().copied())));
    // Recorded dependencies cannot form a cycle unless a file changed under them: then any
    // order will do.
    let levels = graph
        .stop_levels()
        .unwrap_or_else(|_| vec![services.iter().map(|(s, _)| s.to_string()).collect()]);
    let mut out: HashMap<String, StepId> = HashMap::new();
    let mut by_service: HashMap<String, Vec<StepId>> = HashMap::new();
    for level in levels {
        for service in level {
            let after: Vec<StepId> = graph
                .dependents(&service)
                .iter()
                .flat_map(|d| by_service.get(d).cloned().unwrap_or_default())
                .collect();
            for c in containers
                .iter()
                .filter(|c| c.service == service && c.is_active())
            {
                let id = plan.push(
                    Op::StopContainer {
                        name: c.name.clone(),
                        timeout,
                    },
                    cause.clone(),
                    after.clone(),
                );
                out.insert(c.name.clone(), id);
                by_service.entry(service.clone()).or_default().push(id);
            }
        }
    }
    out
}

/// The plan of `stop` (and the first half of `restart`): the selected running containers,
/// dependents first.
pub fn stop(selected: &[&ObservedContainer], timeout: Option<Duration>) -> Plan {
    let mut plan = Plan::default();
    stop_steps(&mut plan, selected, timeout, &Cause::Requested);
    plan
}

/// The plan of waiting for `service`'s dependencies (a one-off `run`): each dependency's
/// containers meet its condition. A required dependency without containers is an error, an
/// optional one a warning.
pub fn dependency_waits(
    service: &ServiceConfig,
    observed: &Observed,
) -> Result<Plan, ReconcileError> {
    let mut plan = Plan::default();
    for (dep, cond) in &service.depends_on {
        let containers = observed.replicas(dep);
        if containers.is_empty() {
            if cond.required {
                return Err(ReconcileError::DependencyMissing(dep.clone()));
            }
            plan.warnings.push(format!(
                "optional dependency {dep} of service {} is not running",
                service.name
            ));
            continue;
        }
        for c in containers {
            plan.push(
                Op::WaitContainer {
                    name: c.name.clone(),
                    condition: cond.condition.clone(),
                    required: cond.required,
                },
                Cause::Dependency {
                    dependent: service.name.clone(),
                },
                vec![],
            );
        }
    }
    Ok(plan)
}

/// The plan of `run`'s one-off container `name` of `service` (`service` carries the run's
/// overrides): unless `no_deps`, each dependency's containers meet their condition first
/// (their own `up` is planned before, by [`up`]); the service's missing networks are made; the
/// container is created (after its image is pulled or built, when `image.fetch` says so) and
/// started.
pub fn run(
    project: &Project,
    service: &ServiceConfig,
    image: &ImageChoice,
    observed: &Observed,
    name: &str,
    no_deps: bool,
) -> Result<Plan, ReconcileError> {
    let mut plan = if no_deps {
        Plan::default()
    } else {
        dependency_waits(service, observed)?
    };
    let mut before: Vec<StepId> = (0..plan.len()).collect();
    if let Some(fetch) = &image.fetch {
        let image_name = if service.image.is_empty() {
            format!("{}-{}", project.name, service.name)
        } else {
            service.image.clone()
        };
        let (op, why) = match fetch {
            Fetch::Pull(why) => (
                Op::PullImage {
                    service: service.name.clone(),
                    image: image_name,
                },
                why,
            ),
            Fetch::Build(why) => (
                Op::BuildImage {
                    service: service.name.clone(),
                    image: image_name,
                },
                why,
            ),
        };
        before.push(plan.push(op, Cause::ImagePolicy(why.clone()), vec![]));
    }
    if service.network_mode.is_empty() {
        let used = project_net::used_networks(project, &[service.name.as_str()])
            .map_err(|e| ReconcileError::Network(e.to_string()))?;
        for (key, config) in &used {
            if observed.networks.iter().any(|n| n.key == *key) {
                continue;
            }
            let name = project_net::network_name(project, key, config);
            let op = missing_network(key, name, config.external);
            before.push(plan.push(op, Cause::Missing, vec![]));
        }
    }
    let create = plan.push(
        Op::CreateOneOff {
            service: service.name.clone(),
            name: name.to_string(),
        },
        Cause::Requested,
        before,
    );
    plan.push(
        Op::StartContainer {
            name: name.to_string(),
        },
        Cause::Requested,
        vec![create],
    );
    Ok(plan)
}

/// What a network the project does not have yet needs: made, or (`external`, someone else's)
/// found and recorded.
fn missing_network(key: &str, name: String, external: bool) -> Op {
    let key = key.to_string();
    if external {
        Op::UseNetwork { key, name }
    } else {
        Op::CreateNetwork { key, name }
    }
}

/// The plan of `kill`: `signal` to each selected container that runs.
pub fn kill(selected: &[&ObservedContainer], signal: i32) -> Plan {
    let mut plan = Plan::default();
    for c in selected.iter().filter(|c| c.is_active()) {
        plan.push(
            Op::KillContainer {
                name: c.name.clone(),
                signal,
            },
            Cause::Requested,
            vec![],
        );
    }
    plan
}

/// The plan of `pause` (`on`) or `unpause`: the selected containers that run, or that are
/// paused.
pub fn pause(selected: &[&ObservedContainer], on: bool) -> Plan {
    use crate::supervisor::state::Status;
    let mut plan = Plan::default();
    for c in selected {
        let op = match (on, c.status) {
            (true, Status::Running) => Op::PauseContainer {
                name: c.name.clone(),
            },
            (false, Status::Paused) => Op::UnpauseContainer {
                name: c.name.clone(),
            },
            _ => continue,
        };
        plan.push(op, Cause::Requested, vec![]);
    }
    plan
}

/// The plan of `start`: the selected containers that do not run, each after the containers of
/// the services it depends on.
pub fn start(selected: &[&ObservedContainer]) -> Plan {
    let mut plan = Plan::default();
    let services: BTreeMap<&str, Vec<&str>> = {
        let mut by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for c in selected {
            by.entry(c.service.as_str())
                .or_default()
                .extend(c.depends_on.iter().map(String::as_str));
        }
        by
    };
    let graph = ServiceGraph::new(services.iter().map(|(s, d)| (*s, d.iter().copied())));
    let levels = graph
        .start_levels()
        .unwrap_or_else(|_| vec![services.keys().map(|s| s.to_string()).collect()]);
    let mut by_service: HashMap<String, Vec<StepId>> = HashMap::new();
    for service in levels.into_iter().flatten() {
        let after: Vec<StepId> = graph
            .dependencies(&service)
            .iter()
            .flat_map(|d| by_service.get(d).cloned().unwrap_or_default())
            .collect();
        for c in selected
            .iter()
            .filter(|c| c.service == service && !c.is_active())
        {
            let id = plan.push(
                Op::StartContainer {
                    name: c.name.clone(),
                },
                Cause::NotRunning,
                after.clone(),
            );
            by_service.entry(service.clone()).or_default().push(id);
        }
    }
    plan
}

/// The plan of `rm`: the selected containers that do not run (with `stop`, stopped first),
/// with their anonymous volumes when `volumes`.
pub fn remove(selected: &[&ObservedContainer], stop: bool, volumes: bool) -> Plan {
    let mut plan = Plan::default();
    let stops = if stop {
        stop_steps(&mut plan, selected, None, &Cause::Requested)
    } else {
        HashMap::new()
    };
    for c in selected {
        if c.is_active() && !stops.contains_key(&c.name) {
            continue;
        }
        plan.push(
            Op::RemoveContainer {
                name: c.name.clone(),
                volumes,
            },
            Cause::Requested,
            stops.get(&c.name).copied().into_iter().collect(),
        );
    }
    plan
}

#[cfg(test)]
mod tests;
