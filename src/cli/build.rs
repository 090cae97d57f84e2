//! `rcompose build`, `rcompose image build`, `rcompose builder prune`, and the builds that
//! `up --build`, `create --build`, `run --build` and a missing image of a `build:` service ask
//! for.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indexmap::IndexMap;

use super::Global;
use crate::build::executor::{self, Env};
use crate::build::progress::{Mode, Progress};
use crate::build::{BuildRequest, DockerfileSource, Images, SecretSource};
use crate::compose::model::{BuildConfig, Project, ServiceConfig};
use crate::image::auth::AuthStore;
use crate::image::pull::Puller;
use crate::image::reference::{Platform, Reference};
use crate::image::registries::Registries;
use crate::image::store::{ImageRecord, Store};
use crate::plan::graph::ServiceGraph;

/// At most this many service builds at once (each also runs its stages in parallel).
const CONCURRENCY: usize = 4;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct BuildArgs {
    /// Services to build (default: every service with a build section)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the base images
    #[arg(long)]
    pub pull: bool,
    /// Set build-time variables for services
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Don't print anything to standard output
    #[arg(short, long)]
    pub quiet: bool,
    /// Push service images
    #[arg(long)]
    pub push: bool,
    /// Also build dependencies (transitively)
    #[arg(long)]
    pub with_dependencies: bool,
}

/// `rcompose image build`, like `docker build`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImageBuildArgs {
    /// The build context directory
    #[arg(value_name = "CONTEXT")]
    pub context: PathBuf,
    /// Name and optionally a tag (`name:tag`)
    #[arg(short, long = "tag", value_name = "REF")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile); the long form is --dockerfile
    /// because --file names compose files everywhere in rcompose
    #[arg(short = 'f', long = "dockerfile", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Set build-time variables
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    pub target: Option<String>,
    /// Secret to expose to the build: id=ID,src=PATH or id=ID,env=VAR
    #[arg(long = "secret", value_name = "SPEC")]
    pub secrets: Vec<String>,
    /// Set metadata for the image
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the base images
    #[arg(long)]
    pub pull: bool,
    /// Networking mode for the RUN instructions: default, none or host
    #[arg(long)]
    pub network: Option<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_hosts: Vec<String>,
    /// Additional build contexts (name=path)
    #[arg(long = "build-context", value_name = "NAME=PATH")]
    pub build_contexts: Vec<String>,
    /// Suppress the build output and print the image ID on success
    #[arg(short, long)]
    pub quiet: bool,
}

/// Base images for the builder: from the store, pulled when absent or asked.
struct StoreImages {
    store: Store,
    quiet: bool,
}

impl Images for StoreImages {
    fn base_image(&self, reference: &str, pull: bool) -> std::result::Result<ImageRecord, String> {
        let r = Reference::parse(reference).map_err(|e| format!("invalid reference: {e}"))?;
        let name = r.to_string();
        if !pull {
            if let Ok(Some(img)) = self.store.resolve(&name) {
                return Ok(img);
            }
        }
        let registries = Registries::load()
            .map_err(|e| format!("cannot read the registries configuration: {e}"))?;
        let auth =
            AuthStore::load().map_err(|e| format!("cannot read registry credentials: {e}"))?;
        let mode = if self.quiet {
            crate::image::progress::Mode::Quiet
        } else {
            crate::image::progress::Mode::Plain
        };
        let puller = Puller::new(
            self.store.clone(),
            registries,
            auth,
            crate::image::progress::Progress::new(mode),
        )
        .with_platform(Platform::host());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        rt.block_on(puller.pull(&r))
            .map(|p| p.image)
            .map_err(|e| format!("cannot pull {name}: {e}"))
    }
}

fn progress_mode(global: &Global, explicit: Option<&str>, quiet: bool) -> Result<Mode> {
    if quiet {
        return Ok(Mode::Quiet);
    }
    let tty = std::io::stderr().is_terminal();
    let raw = match explicit {
        Some(p) => p.to_string(),
        None => match global.progress {
            super::Progress::Auto => "auto".into(),
            super::Progress::Tty => "tty".into(),
            super::Progress::Plain => "plain".into(),
            super::Progress::Json => "json".into(),
            super::Progress::Quiet => "quiet".into(),
        },
    };
    Mode::parse(&raw, tty).with_context(|| {
        format!("invalid --progress {raw:?}: expected auto, plain, tty, quiet or json")
    })
}

fn kv(list: &[String], what: &str) -> Result<Vec<(String, Option<String>)>> {
    list.iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), Some(v.to_string()))),
            None if !s.is_empty() => Ok((s.clone(), None)),
            _ => bail!("invalid {what} {s:?}: expected KEY=VALUE"),
        })
        .collect()
}

fn secret_spec(spec: &str) -> Result<(String, SecretSource)> {
    let mut id = None;
    let mut src = None;
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(SecretSource::File(PathBuf::from(v))),
            Some(("env", v)) => src = Some(SecretSource::Env(v.to_string())),
            Some(("type", "file" | "env")) => {}
            _ => bail!("invalid --secret {spec:?}: expected id=ID,src=PATH or id=ID,env=VAR"),
        }
    }
    let id = id.with_context(|| format!("invalid --secret {spec:?}: no id"))?;
    let src = src.unwrap_or_else(|| SecretSource::Env(id.clone()));
    Ok((id, src))
}

/// `rcompose image build`.
pub fn image_build(global: &Global, args: ImageBuildArgs) -> Result<i32> {
    let context = args
        .context
        .canonicalize()
        .with_context(|| format!("build context {}", args.context.display()))?;
    if !context.is_dir() {
        bail!("build context {} is not a directory", context.display());
    }
    let mut req = BuildRequest {
        context: context.clone(),
        dockerfile: args.file.as_ref().map(|f| {
            // `-f` is relative to the current directory, as docker's.
            DockerfileSource::Path(
                std::env::current_dir()
                    .map(|d| d.join(f))
                    .unwrap_or(f.clone()),
            )
        }),
        target: args.target.clone(),
        no_cache: args.no_cache,
        pull: args.pull,
        network: args.network.clone(),
        ..BuildRequest::default()
    };
    for (k, v) in kv(&args.build_args, "--build-arg")? {
        req.args.insert(k, v);
    }
    for (k, v) in kv(&args.labels, "--label")? {
        req.labels.insert(k, v.unwrap_or_default());
    }
    for s in &args.secrets {
        let (id, src) = secret_spec(s)?;
        req.secrets.insert(id, src);
    }
    for h in &args.add_hosts {
        let (host, ip) = h
            .split_once(':')
            .with_context(|| format!("invalid --add-host {h:?}: expected HOST:IP"))?;
        req.extra_hosts
            .0
            .entry(host.to_string())
            .or_default()
            .push(ip.to_string());
    }
    for c in &args.build_contexts {
        let (name, value) = c
            .split_once('=')
            .with_context(|| format!("invalid --build-context {c:?}: expected NAME=PATH"))?;
        req.additional_contexts
            .insert(name.to_string(), value.to_string());
    }
    for t in &args.tags {
        let r = Reference::parse(t).with_context(|| format!("invalid tag {t:?}"))?;
        req.tags.push(r.to_string());
    }
    let mode = progress_mode(global, None, args.quiet)?;
    let img = run_builds(global, vec![req], mode)?
        .into_iter()
        .next()
        .context("the build produced no image")?;
    if args.quiet {
        println!("{}", img.id);
    }
    Ok(0)
}

/// `rcompose build`.
pub fn build(global: &Global, args: BuildArgs) -> Result<i32> {
    if args.push {
        bail!("build --push is not supported yet: pushing images to a registry");
    }
    let target = super::project::target(global)?;
    let loaded = target.require_loaded()?;
    let project = loaded.project.clone();
    for s in &args.services {
        if !project.services.contains_key(s) {
            bail!("no such service: {s}");
        }
    }
    let mut names: Vec<String> = if args.services.is_empty() {
        project.services.keys().cloned().collect()
    } else {
        args.services.clone()
    };
    if args.with_dependencies && !args.services.is_empty() {
        names = ServiceGraph::of_project(&project).with_dependencies(&names);
    }
    let overrides = kv(&args.build_args, "--build-arg")?;
    let opts = Options {
        force: true,
        no_build: false,
        no_cache: args.no_cache,
        pull: args.pull,
        args: overrides,
        quiet: args.quiet,
    };
    let mut project = project;
    build_services(global, &mut project, &loaded.working_dir, &names, &opts)?;
    Ok(0)
}

#[derive(Debug, Clone, clap::Args)]
pub struct BuilderArgs {
    #[command(subcommand)]
    pub command: BuilderCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum BuilderCommand {
    /// Remove the build cache
    Prune {
        /// Do not prompt for confirmation (rcompose never prompts)
        #[arg(short, long)]
        force: bool,
        /// Remove all build cache (the only mode: kept for docker's flag)
        #[arg(short, long)]
        all: bool,
    },
}

pub fn builder(args: BuilderArgs) -> Result<i32> {
    match args.command {
        BuilderCommand::Prune { .. } => builder_prune(),
    }
}

/// `rcompose builder prune`: the build cache's records and cache mounts.
pub fn builder_prune() -> Result<i32> {
    let store = Store::open(crate::paths::images()).context("cannot open the image store")?;
    let cache = crate::build::cache::Cache::open(&store);
    let n = cache.prune()?;
    let mounts = crate::build::cache::dir_of(&store).join("mounts");
    if mounts.is_dir() {
        std::fs::remove_dir_all(&mounts)
            .with_context(|| format!("cannot remove {}", mounts.display()))?;
    }
    println!("Deleted build cache records: {n}");
    Ok(0)
}

/// How `up`, `create`, `run` and `build` decide about builds.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Build even when the image is present (`--build`, `build`).
    pub force: bool,
    /// Never build (`--no-build`): the image must be present.
    pub no_build: bool,
    pub no_cache: bool,
    pub pull: bool,
    /// `--build-arg` overrides.
    pub args: Vec<(String, Option<String>)>,
    pub quiet: bool,
}

/// The image a service runs: its `image`, or `<project>-<service>` for a build without one.
pub fn image_name(project: &Project, service: &ServiceConfig) -> String {
    if service.image.is_empty() {
        format!("{}-{}", project.name, service.name)
    } else {
        service.image.clone()
    }
}

/// Builds what `names` need (services with a `build:` section whose image is missing, or all of
/// them with `force` / `pull_policy: build`), then gives every build service of the project its
/// image name so that the rest of the engine finds it in the store.
pub fn build_services(
    global: &Global,
    project: &mut Project,
    working_dir: &Path,
    names: &[String],
    opts: &Options,
) -> Result<()> {
    let store = Store::open(crate::paths::images()).context("cannot open the image store")?;
    let mut wanted: Vec<(String, BuildRequest)> = Vec::new();
    for name in names {
        let Some(service) = project.services.get(name) else {
            continue;
        };
        let Some(build) = &service.build else {
            continue;
        };
        let image = image_name(project, service);
        let present = Reference::parse(&image)
            .ok()
            .and_then(|r| store.resolve(&r.to_string()).ok().flatten())
            .is_some();
        let policy_build = service.pull_policy == "build";
        if opts.no_build {
            if !present {
                bail!("service {name}: image {image} is not present and --no-build was given");
            }
            continue;
        }
        if present && !opts.force && !policy_build {
            continue;
        }
        let req = request_for(project, working_dir, service, build, &image, opts)
            .with_context(|| format!("service {name}"))?;
        wanted.push((name.clone(), req));
    }
    for s in project.services.values_mut() {
        if s.build.is_some() && s.image.is_empty() {
            s.image = format!("{}-{}", project.name, s.name);
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    // Identical builds (same context, Dockerfile, args, target…) run once and get every tag.
    let mut merged: Vec<(Vec<String>, BuildRequest)> = Vec::new();
    for (name, req) in wanted {
        match merged.iter_mut().find(|(_, r)| same_build(r, &req)) {
            Some((names, r)) => {
                names.push(name);
                for t in req.tags {
                    if !r.tags.contains(&t) {
                        r.tags.push(t);
                    }
                }
            }
            None => merged.push((vec![name], req)),
        }
    }
    let mode = progress_mode(global, None, opts.quiet)?;
    let reqs: Vec<BuildRequest> = merged.into_iter().map(|(_, r)| r).collect();
    run_builds(global, reqs, mode)?;
    Ok(())
}

fn same_build(a: &BuildRequest, b: &BuildRequest) -> bool {
    a.context == b.context
        && a.dockerfile == b.dockerfile
        && a.args == b.args
        && a.target == b.target
        && a.labels == b.labels
        && a.network == b.network
        && a.no_cache == b.no_cache
        && a.additional_contexts == b.additional_contexts
        && a.secrets.keys().eq(b.secrets.keys())
}

/// The build request of a compose service.
fn request_for(
    project: &Project,
    working_dir: &Path,
    service: &ServiceConfig,
    build: &BuildConfig,
    image: &str,
    opts: &Options,
) -> Result<BuildRequest> {
    if build.context.contains("://") || build.context.starts_with("git@") {
        bail!(
            "build context {:?} is not supported yet: only a local directory can be a context",
            build.context
        );
    }
    if !build.ssh.is_empty() {
        bail!("build.ssh is not supported yet");
    }
    let host = Platform::host().to_string();
    for p in build
        .platforms
        .iter()
        .chain(std::iter::once(&service.platform))
    {
        if !p.is_empty() && Platform::parse(p).map(|p| p.to_string()).ok() != Some(host.clone()) {
            bail!(
                "build platform {p} is not supported: rcompose builds only for this host ({host})"
            );
        }
    }
    for (what, list) in [
        ("cache_from", &build.cache_from),
        ("cache_to", &build.cache_to),
    ] {
        for entry in list {
            super::warn(&format!(
                "service {}: build.{what} {entry:?} is not supported yet and is ignored (the local build cache is used)",
                service.name
            ));
        }
    }
    let context = Path::new(&build.context);
    let context = if context.is_absolute() {
        context.to_path_buf()
    } else {
        working_dir.join(context)
    };
    if !context.is_dir() {
        bail!("build context {} is not a directory", context.display());
    }
    let dockerfile = if !build.dockerfile_inline.is_empty() {
        Some(DockerfileSource::Inline(build.dockerfile_inline.clone()))
    } else if !build.dockerfile.is_empty() {
        Some(DockerfileSource::Path(PathBuf::from(&build.dockerfile)))
    } else {
        None
    };
    let mut args: IndexMap<String, Option<String>> = build.args.clone().into_iter().collect();
    for (k, v) in &opts.args {
        args.insert(k.clone(), v.clone());
    }
    let mut secrets = IndexMap::new();
    for s in &build.secrets {
        let def = project
            .secrets
            .get(&s.source)
            .with_context(|| format!("build secret {} is not defined", s.source))?;
        let src = if !def.file.is_empty() {
            SecretSource::File(PathBuf::from(&def.file))
        } else if !def.environment.is_empty() {
            SecretSource::Env(def.environment.clone())
        } else {
            bail!(
                "build secret {}: only file and environment secrets can be used in builds",
                s.source
            );
        };
        let id = if s.target.is_empty() {
            s.source.clone()
        } else {
            s.target.clone()
        };
        secrets.insert(id, src);
    }
    let mut additional = IndexMap::new();
    for (k, v) in &build.additional_contexts {
        if v.starts_with("service:") || v.starts_with("target:") || v.starts_with("docker-image://")
        {
            bail!("additional context {k}={v} is not supported yet: only directories");
        }
        additional.insert(k.clone(), v.clone());
    }
    let mut tags = vec![Reference::parse(image)
        .with_context(|| format!("invalid image name {image:?}"))?
        .to_string()];
    for t in &build.tags {
        let r = Reference::parse(t).with_context(|| format!("invalid build tag {t:?}"))?;
        tags.push(r.to_string());
    }
    Ok(BuildRequest {
        context,
        dockerfile,
        args,
        target: (!build.target.is_empty()).then(|| build.target.clone()),
        tags,
        labels: build.labels.clone().into_iter().collect(),
        no_cache: build.no_cache || opts.no_cache,
        pull: build.pull || opts.pull,
        network: (!build.network.is_empty()).then(|| build.network.clone()),
        secrets,
        extra_hosts: build.extra_hosts.clone(),
        shm_size: (build.shm_size.0 > 0).then_some(build.shm_size.0 as u64),
        ulimits: build.ulimits.clone(),
        privileged: build.privileged,
        additional_contexts: additional,
        name: service.name.clone(),
    })
}

/// Runs builds, at most [`CONCURRENCY`] at once; stops at the first failure.
fn run_builds(_global: &Global, reqs: Vec<BuildRequest>, mode: Mode) -> Result<Vec<ImageRecord>> {
    let store = Store::open(crate::paths::images()).context("cannot open the image store")?;
    let helper = super::run::helper_path()?;
    let progress = Progress::new(mode);
    let images = StoreImages {
        store: store.clone(),
        quiet: mode == Mode::Quiet,
    };
    let env = Env {
        store: &store,
        images: &images,
        progress: &progress,
        helper: &helper,
    };
    let mut out: BTreeMap<usize, ImageRecord> = BTreeMap::new();
    for chunk in reqs.chunks(CONCURRENCY).enumerate() {
        let (n, chunk) = chunk;
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|req| s.spawn(|| executor::build(req, &env)))
                .collect();
            handles.into_iter().map(|h| h.join()).collect()
        });
        for (i, (r, req)) in results.into_iter().zip(chunk).enumerate() {
            let what = if req.name.is_empty() {
                req.context.display().to_string()
            } else {
                format!("service {}", req.name)
            };
            let img = r
                .map_err(|_| anyhow::anyhow!("{what}: the build panicked"))?
                .with_context(|| format!("{what}: build failed"))?;
            out.insert(n * CONCURRENCY + i, img);
        }
    }
    Ok(out.into_values().collect())
}
