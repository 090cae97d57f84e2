//! `rcompose pull`: the images of a project's services, in parallel, by their pull policy.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::time::Duration;

use super::{progress_mode, Global};
use crate::compose::model::{Project, ServiceConfig};
use crate::image::auth::AuthStore;
use crate::image::progress::Progress;
use crate::image::pull::Puller;
use crate::image::reference::{Platform, Reference};
use crate::image::registries::Registries;
use crate::image::store::{ImageRecord, Store};
use crate::plan::graph::ServiceGraph;

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Services to pull (default: all)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Pull what it can and ignore images that fail to pull
    #[arg(long)]
    pub ignore_pull_failures: bool,
    /// Also pull the services the named ones depend on
    #[arg(long)]
    pub include_deps: bool,
    /// Apply this pull policy to every service
    #[arg(long, value_parser = ["always", "missing"])]
    pub policy: Option<String>,
    /// Ignore images that can be built
    #[arg(long)]
    pub ignore_buildable: bool,
    /// Pull without printing progress information
    #[arg(short, long)]
    pub quiet: bool,
}

/// What a pull policy asks for, given whether the image is present and when it was pulled.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Pull,
    Skip(&'static str),
}

pub(crate) fn decide(policy: &str, present: Option<Duration>, buildable: bool) -> Result<Decision> {
    let max_age = |age: Duration| match present {
        Some(elapsed) if elapsed < age => Decision::Skip("image is recent enough"),
        _ => Decision::Pull,
    };
    Ok(match policy {
        "" | "always" => Decision::Pull,
        "missing" | "if_not_present" => match present {
            Some(_) => Decision::Skip("image is already present locally"),
            None => Decision::Pull,
        },
        "never" => Decision::Skip("pull_policy is never"),
        "build" => Decision::Skip("image is built, not pulled"),
        "daily" => max_age(Duration::from_secs(24 * 3600)),
        "weekly" => max_age(Duration::from_secs(7 * 24 * 3600)),
        p if p.starts_with("every_") => {
            let d = crate::compose::model::parse_duration(&p["every_".len()..])
                .map_err(|e| anyhow::anyhow!("invalid pull_policy {p:?}: {e}"))?;
            max_age(d)
        }
        _ if buildable => Decision::Skip("image is built, not pulled"),
        other => bail!("invalid pull_policy {other:?}"),
    })
}

pub fn run(global: &Global, args: PullArgs) -> Result<i32> {
    let mut opts = global.load_options()?;
    opts.services = args.services.clone();
    let loaded = super::load(global, &opts)?;
    let project = &loaded.project;
    let services = selected_services(project, &args.services, args.include_deps)?;

    if global.dry_run {
        return dry_run(project, &services, &args);
    }
    let store = Store::open(crate::paths::images()).context("cannot open the image store")?;
    // One pull per distinct image, whichever services share it.
    let mut wanted: BTreeMap<(String, String), (Reference, String, Vec<String>)> = BTreeMap::new();
    for name in &services {
        let Some(service) = project.services.get(name) else {
            continue;
        };
        let buildable = service.build.is_some();
        if service.image.is_empty() {
            continue; // built, never pulled
        }
        if buildable && args.ignore_buildable {
            continue;
        }
        let reference = Reference::parse(&service.image)
            .with_context(|| format!("service {name}: invalid image {:?}", service.image))?;
        let present = store
            .resolve(&reference.to_string())?
            .and_then(|img| store.recorded_at(&img.id))
            .map(|t| t.elapsed().unwrap_or_default());
        let policy = args
            .policy
            .clone()
            .unwrap_or_else(|| service.pull_policy.clone());
        match decide(&policy, present, buildable).with_context(|| format!("service {name}"))? {
            Decision::Skip(why) => {
                if !args.quiet && global.progress != super::Progress::Quiet {
                    eprintln!("{name} Skipped - {why}");
                }
            }
            Decision::Pull => {
                let platform = service.platform.clone();
                wanted
                    .entry((reference.to_string(), platform.clone()))
                    .or_insert_with(|| (reference, platform, Vec::new()))
                    .2
                    .push(name.clone());
            }
        }
    }
    if wanted.is_empty() {
        return Ok(0);
    }

    let mode = if args.quiet {
        crate::image::progress::Mode::Quiet
    } else {
        progress_mode(global)
    };
    let registries = Registries::load().context("cannot read the registries configuration")?;
    let auth = AuthStore::load().context("cannot read registry credentials")?;
    let progress = Progress::new(mode);
    // One puller per platform asked for (`platform:`), the host's by default.
    let mut pullers = Vec::new();
    for (reference, platform, services) in wanted.into_values() {
        let mut puller = Puller::new(
            store.clone(),
            registries.clone(),
            auth.clone(),
            progress.clone(),
        );
        if !platform.is_empty() {
            let p = Platform::parse(&platform).with_context(|| {
                format!(
                    "service {}: invalid platform {platform:?}",
                    services.join(", ")
                )
            })?;
            puller = puller.with_platform(p);
        }
        pullers.push((reference, services, puller));
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let results = runtime.block_on(async {
        let pulls = pullers
            .iter()
            .map(|(reference, services, puller)| async move {
                (services, puller.pull(reference).await)
            });
        futures_util::future::join_all(pulls).await
    });
    let mut failed = 0;
    for (services, result) in results {
        if let Err(e) = result {
            failed += 1;
            let msg = format!("{e} (service {})", services.join(", "));
            if args.ignore_pull_failures {
                super::warn(&msg);
            } else {
                eprintln!("{} {msg}", console::style("error:").red().bold());
            }
        }
    }
    Ok(if failed > 0 && !args.ignore_pull_failures {
        1
    } else {
        0
    })
}

/// The services named (all when none), plus their dependencies when asked.
pub fn selected_services(
    project: &Project,
    names: &[String],
    include_deps: bool,
) -> Result<Vec<String>> {
    for n in names {
        if !project.services.contains_key(n) {
            bail!("no such service: {n}");
        }
    }
    let mut all: Vec<String> = if names.is_empty() {
        project.services.keys().cloned().collect()
    } else {
        names.to_vec()
    };
    if include_deps && !names.is_empty() {
        let graph = ServiceGraph::new(project.services.iter().map(|(n, s)| {
            (
                n.as_str(),
                s.depends_on.keys().map(String::as_str).collect::<Vec<_>>(),
            )
        }));
        all = graph.with_dependencies(&all);
    }
    all.sort();
    Ok(all)
}

/// The image of `service` for `run`/`up`: from the store, pulled first when its pull policy
/// asks (`missing` by default, as docker compose does for these commands).
pub fn ensure_image(
    global: &Global,
    store: &Store,
    service: &ServiceConfig,
) -> Result<ImageRecord> {
    if service.image.is_empty() {
        bail!(
            "service {}: no image (building images is not supported yet)",
            service.name
        );
    }
    let reference = Reference::parse(&service.image).with_context(|| {
        format!(
            "service {}: invalid image {:?}",
            service.name, service.image
        )
    })?;
    let name = reference.to_string();
    let present = store.resolve(&name)?;
    let age = present
        .as_ref()
        .and_then(|img| store.recorded_at(&img.id))
        .map(|t| t.elapsed().unwrap_or_default());
    let policy = match service.pull_policy.as_str() {
        "" => "missing",
        p => p,
    };
    let decision = decide(
        policy,
        age.or(present.as_ref().map(|_| Duration::ZERO)),
        false,
    )
    .with_context(|| format!("service {}", service.name))?;
    match (decision, present) {
        (Decision::Skip(_), Some(img)) => return Ok(img),
        (Decision::Skip(_), None) => bail!(
            "service {}: image {name} is not present and its pull_policy is {policy}",
            service.name
        ),
        (Decision::Pull, _) => {}
    }
    let registries = Registries::load().context("cannot read the registries configuration")?;
    let auth = AuthStore::load().context("cannot read registry credentials")?;
    let mut puller = Puller::new(
        store.clone(),
        registries,
        auth,
        Progress::new(progress_mode(global)),
    );
    if !service.platform.is_empty() {
        let p = Platform::parse(&service.platform).with_context(|| {
            format!(
                "service {}: invalid platform {:?}",
                service.name, service.platform
            )
        })?;
        puller = puller.with_platform(p);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let pulled = runtime
        .block_on(puller.pull(&reference))
        .with_context(|| format!("service {}: cannot pull {name}", service.name))?;
    Ok(pulled.image)
}

/// `--dry-run pull`: the pulls the policies ask for, from the store as it is (only read).
fn dry_run(
    project: &crate::compose::model::Project,
    services: &[String],
    args: &PullArgs,
) -> Result<i32> {
    use crate::plan::ops::{Cause, Op, Plan};
    let store = super::dryrun::store();
    let mut plan = Plan::default();
    let mut seen = std::collections::BTreeSet::new();
    for name in services {
        let Some(service) = project.services.get(name) else {
            continue;
        };
        let buildable = service.build.is_some();
        if service.image.is_empty() || (buildable && args.ignore_buildable) {
            continue;
        }
        let reference = Reference::parse(&service.image)
            .with_context(|| format!("service {name}: invalid image {:?}", service.image))?;
        let present = match &store {
            Some(s) => s.resolve(&reference.to_string())?.map(|img| {
                s.recorded_at(&img.id)
                    .and_then(|t| t.elapsed().ok())
                    .unwrap_or_default()
            }),
            None => None,
        };
        let policy = args
            .policy
            .clone()
            .unwrap_or_else(|| service.pull_policy.clone());
        let decision =
            decide(&policy, present, buildable).with_context(|| format!("service {name}"))?;
        if decision == Decision::Pull && seen.insert(reference.to_string()) {
            let why = if present.is_none() {
                "image missing".to_string()
            } else if policy.is_empty() {
                "requested".to_string()
            } else {
                format!("pull_policy {policy}")
            };
            plan.push(
                Op::PullImage {
                    service: name.clone(),
                    image: service.image.clone(),
                },
                Cause::ImagePolicy(why),
                vec![],
            );
        }
    }
    super::dryrun::print(&plan);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policies_decide_like_docker() {
        let hour = Some(Duration::from_secs(3600));
        assert_eq!(decide("", hour, false).unwrap(), Decision::Pull);
        assert_eq!(decide("always", hour, false).unwrap(), Decision::Pull);
        assert!(matches!(
            decide("missing", hour, false).unwrap(),
            Decision::Skip(_)
        ));
        assert_eq!(decide("missing", None, false).unwrap(), Decision::Pull);
        assert!(matches!(
            decide("never", None, false).unwrap(),
            Decision::Skip(_)
        ));
        assert!(matches!(
            decide("daily", hour, false).unwrap(),
            Decision::Skip(_)
        ));
        assert_eq!(
            decide("daily", Some(Duration::from_secs(90_000)), false).unwrap(),
            Decision::Pull
        );
        assert_eq!(decide("every_30m", hour, false).unwrap(), Decision::Pull);
        assert!(matches!(
            decide("every_2h", hour, false).unwrap(),
            Decision::Skip(_)
        ));
        assert!(decide("every_banana", hour, false).is_err());
    }
}
