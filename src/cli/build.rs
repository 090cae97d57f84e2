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
    /// Cache to import: type=local,src=DIR
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// Cache to export: type=local,dest=DIR
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// SSH agent socket to expose to RUN --mount=type=ssh: default or ID=SOCKET
    #[arg(long = "ssh", value_name = "ID[=SOCKET]")]
    pub ssh: Vec<String>,
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

/// An ssh entry: its id and the agent socket (`$SSH_AUTH_SOCK` when none is given). Key
/// files would need an agent of rcompose's own: refused clearly.
fn ssh_spec((id, path): (&str, Option<&str>)) -> Result<(String, PathBuf)> {
    let socket =
        match path {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from(std::env::var("SSH_AUTH_SOCK").with_context(|| {
                format!("ssh {id}: no socket given and SSH_AUTH_SOCK is not set")
            })?),
        };
    use std::os::unix::fs::FileTypeExt;
    let md =
        std::fs::metadata(&socket).with_context(|| format!("ssh {id}: {}", socket.display()))?;
    if !md.file_type().is_socket() {
        bail!(
            "ssh {id}: {} is not an agent socket (key files are not supported yet: load the key into ssh-agent)",
            socket.display()
        );
    }
    Ok((id.to_string(), socket))
}

/// `rcompose image build`.
pub fn image_build(global: &Global, args: ImageBuildArgs) -> Result<i32> {
    let git_context = crate::build::git::parse(&args.context.to_string_lossy());
    let url_context = git_context
        .is_none()
        .then(|| crate::build::remote::url_context(&args.context.to_string_lossy()))
        .flatten();
    let fetched = git_context.is_some() || url_context.is_some();
    let context = if fetched {
        PathBuf::new()
    } else {
        args.context
            .canonicalize()
            .with_context(|| format!("build context {}", args.context.display()))?
    };
    if !fetched && !context.is_dir() {
        bail!("build context {} is not a directory", context.display());
    }
    let mut req = BuildRequest {
        context: context.clone(),
        git_context,
        url_context,
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
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    for entry in &args.cache_from {
        match cache_spec("(image build)", "--cache-from", entry, "src", &cwd)? {
            CacheSpec::Local(d) => req.cache_from.push(d),
            CacheSpec::Registry(r) => req.registry_cache_from.push(r),
        }
    }
    for entry in &args.cache_to {
        match cache_spec("(image build)", "--cache-to", entry, "dest", &cwd)? {
            CacheSpec::Local(d) => req.cache_to.push(d),
            CacheSpec::Registry(r) => req.registry_cache_to.push(r),
        }
    }
    for spec in &args.ssh {
        let (id, socket) = ssh_spec(
            spec.split_once('=')
                .map_or((spec.as_str(), None), |(i, p)| (i, Some(p))),
        )?;
        req.ssh.insert(id, socket);
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
    if global.dry_run {
        let names = with_build_dependencies(&project, &loaded.working_dir, &names);
        return dry_run_build(&project, &names, args.push);
    }
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
    if args.push {
        let built: Vec<String> = names
            .iter()
            .filter(|n| project.services.get(*n).is_some_and(|s| s.build.is_some()))
            .cloned()
            .collect();
        push_services(global, &project, &built, args.quiet, false)?;
    }
    Ok(0)
}

/// `rcompose push`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PushArgs {
    /// Services to push (default: every service with an image)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Push what services depend on too
    #[arg(long)]
    pub include_deps: bool,
    /// Push what can be pushed, warning about the rest
    #[arg(long)]
    pub ignore_push_failures: bool,
    /// Push without printing progress information
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn push(global: &Global, args: PushArgs) -> Result<i32> {
    let target = super::project::target(global)?;
    let loaded = target.require_loaded()?;
    let mut project = loaded.project.clone();
    let names = super::pull::selected_services(&project, &args.services, args.include_deps)?;
    for s in project.services.values_mut() {
        if s.build.is_some() && s.image.is_empty() {
            s.image = format!("{}-{}", project.name, s.name);
        }
    }
    push_services(
        global,
        &project,
        &names,
        args.quiet,
        args.ignore_push_failures,
    )?;
    Ok(0)
}

/// Pushes the images of `names` (services without an image are skipped, as docker compose).
fn push_services(
    global: &Global,
    project: &Project,
    names: &[String],
    quiet: bool,
    ignore_failures: bool,
) -> Result<()> {
    if global.dry_run {
        return print_push_plan(project, names, ignore_failures);
    }
    let store = Store::open(crate::paths::images()).context("cannot open the image store")?;
    let mut failed = 0;
    for name in names {
        let Some(service) = project.services.get(name) else {
            continue;
        };
        if service.image.is_empty() {
            continue;
        }
        let result = (|| -> Result<()> {
            let reference = Reference::parse(&service.image)
                .with_context(|| format!("invalid image {:?}", service.image))?;
            let record = store
                .resolve(&reference.to_string())?
                .with_context(|| format!("image {} is not present", service.image))?;
            let mut refs = vec![(record.clone(), reference)];
            if let Some(build) = &service.build {
                for t in &build.tags {
                    refs.push((
                        record.clone(),
                        Reference::parse(t).with_context(|| format!("invalid build tag {t:?}"))?,
                    ));
                }
            }
            super::image::push_images(global, &store, &refs, quiet)
        })()
        .with_context(|| format!("service {name}: push failed"));
        if let Err(e) = result {
            if !ignore_failures {
                return Err(e);
            }
            failed += 1;
            super::warn(&format!("{e:#}"));
        }
    }
    if failed > 0 {
        super::warn(&format!("{failed} service(s) not pushed"));
    }
    Ok(())
}

/// `push` under `--dry-run`: one push per image and build tag of `names`, each image checked
/// to be present as the push would (a missing one is an error, or with `ignore_failures` a
/// warning); the store is only read.
fn print_push_plan(project: &Project, names: &[String], ignore_failures: bool) -> Result<()> {
    use crate::plan::ops::{Cause, Op, Plan};
    let store = super::dryrun::store();
    let mut plan = Plan::default();
    for name in names {
        let Some(service) = project.services.get(name) else {
            continue;
        };
        if service.image.is_empty() {
            continue;
        }
        let reference = Reference::parse(&service.image)
            .with_context(|| format!("service {name}: invalid image {:?}", service.image))?;
        let present = match &store {
            Some(s) => s.resolve(&reference.to_string())?.is_some(),
            None => false,
        };
        if !present {
            let message = format!(
                "service {name}: push failed: image {} is not present",
                service.image
            );
            if !ignore_failures {
                bail!("{message}");
            }
            plan.warnings.push(message);
            continue;
        }
        let tags = service.build.iter().flat_map(|b| b.tags.iter());
        for image in std::iter::once(&service.image).chain(tags) {
            Reference::parse(image)
                .with_context(|| format!("service {name}: invalid build tag {image:?}"))?;
            plan.push(
                Op::PushImage {
                    image: image.clone(),
                },
                Cause::Requested,
                vec![],
            );
        }
    }
    super::dryrun::print(&plan);
    Ok(())
}

#[derive(Debug, Clone, clap::Args)]
pub struct BuilderArgs {
    #[command(subcommand)]
    pub command: BuilderCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
#[command(defer = true)]
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
    let names = with_build_dependencies(project, working_dir, names);
    let mut wanted: Vec<(String, BuildRequest)> = Vec::new();
    for name in &names {
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
    // A build that uses another service's image (FROM it, or `service:` in
    // additional_contexts) waits for that build: builds run in waves.
    let mut pending = merged;
    while !pending.is_empty() {
        let tags_pending: Vec<String> = pending.iter().flat_map(|(_, r)| r.tags.clone()).collect();
        let (ready, later): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(_, r)| {
            !uses_images(r)
                .iter()
                .any(|i| tags_pending.contains(i) && !r.tags.contains(i))
        });
        if ready.is_empty() {
            let names: Vec<String> = later.iter().flat_map(|(n, _)| n.clone()).collect();
            bail!(
                "services {} build from each other's images: a cycle",
                names.join(", ")
            );
        }
        run_builds(global, ready.into_iter().map(|(_, r)| r).collect(), mode)?;
        pending = later;
    }
    Ok(())
}

/// Images a build reads (normalised): its Dockerfile's FROM lines and its docker-image://
/// contexts. A text scan is enough to order builds; the builder itself parses properly.
fn uses_images(r: &BuildRequest) -> Vec<String> {
    let mut out: Vec<String> = r
        .additional_contexts
        .values()
        .filter_map(|v| v.strip_prefix("docker-image://"))
        .filter_map(|i| Reference::parse(i).ok().map(|r| r.to_string()))
        .collect();
    let text = match &r.dockerfile {
        Some(DockerfileSource::Inline(t)) => Some(t.clone()),
        Some(DockerfileSource::Path(p)) => std::fs::read_to_string(r.context.join(p)).ok(),
        None => std::fs::read_to_string(r.context.join("Dockerfile")).ok(),
    };
    for line in text.unwrap_or_default().lines() {
        let mut words = line.split_whitespace();
        if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("FROM")) {
            continue;
        }
        if let Some(image) = words.find(|w| !w.starts_with("--")) {
            if let Ok(r) = Reference::parse(image) {
                out.push(r.to_string());
            }
        }
    }
    out
}

fn same_build(a: &BuildRequest, b: &BuildRequest) -> bool {
    a.context == b.context
        && a.git_context == b.git_context
        && a.url_context == b.url_context
        && a.dockerfile == b.dockerfile
        && a.args == b.args
        && a.target == b.target
        && a.labels == b.labels
        && a.network == b.network
        && a.no_cache == b.no_cache
        && a.additional_contexts == b.additional_contexts
        && a.secrets.keys().eq(b.secrets.keys())
}

/// Where a build cache is kept.
enum CacheSpec {
    Local(PathBuf),
    Registry(Reference),
}

/// A `cache_from`/`cache_to` entry: `type=local,src|dest=DIR` is a directory;
/// `type=registry,ref=REF` (or a bare image reference) an artifact in a registry (rcompose's
/// own format: see `image::push::cache`); any other type is an error.
fn cache_spec(
    service: &str,
    what: &str,
    entry: &str,
    dir_key: &str,
    base: &Path,
) -> Result<CacheSpec> {
    let mut kind = None;
    let mut dir = None;
    let mut reference = None;
    for part in entry.split(',') {
        match part.split_once('=') {
            Some(("type", t)) => kind = Some(t.to_string()),
            Some(("ref", r)) => reference = Some(r.to_string()),
            Some((k, v)) if k == dir_key => dir = Some(v.to_string()),
            Some(_) => {}
            None => {
                kind = Some("registry".into());
                reference = Some(part.to_string());
            }
        }
    }
    match kind.as_deref() {
        Some("local") => {
            let d =
                dir.with_context(|| format!("service {service}: {what} {entry:?}: no {dir_key}="))?;
            let p = Path::new(&d);
            Ok(CacheSpec::Local(if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }))
        }
        Some("registry") | None => {
            let r = reference
                .with_context(|| format!("service {service}: {what} {entry:?}: no ref="))?;
            let r = Reference::parse(&r)
                .with_context(|| format!("service {service}: {what} {entry:?}: invalid ref"))?;
            Ok(CacheSpec::Registry(r))
        }
        Some(other) => bail!(
            "service {service}: {what} type {other} is not supported (local and registry are)"
        ),
    }
}

/// `names` and the services whose images their builds read through `service:` or `target:`
/// contexts, recursively (docker compose's build dependencies): built first when missing.
fn with_build_dependencies(project: &Project, working_dir: &Path, names: &[String]) -> Vec<String> {
    let mut out = names.to_vec();
    let mut i = 0;
    while i < out.len() {
        let referenced: Vec<String> = project
            .services
            .get(&out[i])
            .and_then(|s| s.build.as_ref())
            .map(|b| {
                b.additional_contexts
                    .values()
                    .filter_map(|v| {
                        v.strip_prefix("service:")
                            .or_else(|| bake_target(v, working_dir))
                    })
                    .filter(|n| project.services.contains_key(*n))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        for r in referenced {
            if !out.contains(&r) {
                out.push(r);
            }
        }
        i += 1;
    }
    out
}

/// `target:NAME` in `additional_contexts` names a bake target (a service). Docker compose
/// resolves the value as a path in the project directory, as any other, so that is how it
/// arrives here (unless given absolute); it is a bake target when no such directory exists.
fn bake_target<'a>(value: &'a str, working_dir: &Path) -> Option<&'a str> {
    let name = match value.strip_prefix("target:") {
        Some(name) => name,
        None => {
            let path = Path::new(value);
            if path.parent() != Some(working_dir) || path.exists() {
                return None;
            }
            value.rsplit('/').next()?.strip_prefix("target:")?
        }
    };
    (!name.is_empty() && !name.contains('/')).then_some(name)
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
    let git_context = crate::build::git::parse(&build.context);
    let url_context = git_context
        .is_none()
        .then(|| crate::build::remote::url_context(&build.context))
        .flatten();
    let fetched = git_context.is_some() || url_context.is_some();
    if !fetched && (build.context.contains("://") || build.context.starts_with("git@")) {
        bail!(
            "build context {:?} is not supported: a local directory, a git repository or an http(s) URL can be a context",
            build.context
        );
    }
    let mut ssh = IndexMap::new();
    for key in &build.ssh {
        let (id, socket) = ssh_spec((key.id.as_str(), Some(key.path.as_str())))?;
        ssh.insert(id, socket);
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
    let context_dir = {
        let c = Path::new(&build.context);
        if c.is_absolute() {
            c.to_path_buf()
        } else {
            working_dir.join(c)
        }
    };
    let (mut cache_from, mut registry_cache_from) = (Vec::new(), Vec::new());
    for entry in &build.cache_from {
        match cache_spec(&service.name, "cache_from", entry, "src", &context_dir)? {
            CacheSpec::Local(d) => cache_from.push(d),
            CacheSpec::Registry(r) => registry_cache_from.push(r),
        }
    }
    let (mut cache_to, mut registry_cache_to) = (Vec::new(), Vec::new());
    for entry in &build.cache_to {
        match cache_spec(&service.name, "cache_to", entry, "dest", &context_dir)? {
            CacheSpec::Local(d) => cache_to.push(d),
            CacheSpec::Registry(r) => registry_cache_to.push(r),
        }
    }
    let context = Path::new(&build.context);
    let context = if fetched {
        // Fetched when the builds run (`run_builds`).
        PathBuf::new()
    } else if context.is_absolute() {
        context.to_path_buf()
    } else {
        working_dir.join(context)
    };
    if !fetched && !context.is_dir() {
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
        if let Some(other) = v.strip_prefix("service:") {
            // Another service's image (built first when it has a build section).
            let svc = project
                .services
                .get(other)
                .with_context(|| format!("additional context {k}: no such service: {other}"))?;
            additional.insert(
                k.clone(),
                format!("docker-image://{}", image_name(project, svc)),
            );
            continue;
        }
        if let Some(other) = bake_target(v, working_dir) {
            // Bake's `target:NAME`, whose targets are a compose file's services: that
            // service's build result.
            let svc = project
                .services
                .get(other)
                .filter(|s| s.build.is_some())
                .with_context(|| {
                    format!("additional context {k}=target:{other}: no service {other} with a build section")
                })?;
            additional.insert(
                k.clone(),
                format!("docker-image://{}", image_name(project, svc)),
            );
            continue;
        }
        if v.contains("://") && !v.starts_with("docker-image://") {
            bail!("additional context {k}={v} is not supported yet: directories, docker-image://, service: and target: are");
        }
        if v.starts_with("docker-image://") || Path::new(v).is_absolute() {
            additional.insert(k.clone(), v.clone());
        } else if fetched {
            bail!("additional context {k}={v}: a relative directory beside a git or URL context is not supported");
        } else {
            additional.insert(k.clone(), context.join(v).display().to_string());
        }
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
        git_context,
        url_context,
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
        ssh,
        cache_from,
        cache_to,
        registry_cache_from,
        registry_cache_to,
        name: service.name.clone(),
    })
}

/// Ctrl-C and SIGTERM during builds: the running steps are killed, no step starts after, the
/// build unwinds (its scratch directories, mounts and network go) and rcompose exits 130.
/// Blocked in every thread while builds run, taken by one waiting thread.
struct Interrupt {
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    waiter: Option<std::thread::JoinHandle<()>>,
    old: libc::sigset_t,
}

impl Interrupt {
    /// `announce`: say at once that the steps are being stopped (not over a live display,
    /// which the command ends before it says the build was interrupted).
    fn install(announce: bool) -> Interrupt {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let set = super::run::sigset(&[libc::SIGINT, libc::SIGTERM]);
        // SAFETY: sigset_t is plain data; pthread_sigmask only reads `set` and fills `old`.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
        let cancel = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let (c, d) = (cancel.clone(), done.clone());
        let waiter = std::thread::spawn(move || {
            let mut sig = 0;
            // SAFETY: waits for one of the blocked signals.
            unsafe { libc::sigwait(&set, &mut sig) };
            if d.load(Ordering::SeqCst) {
                return;
            }
            c.store(true, Ordering::SeqCst);
            if announce {
                eprintln!("build interrupted: stopping its steps");
            }
            crate::build::cleanup::kill_own_steps();
        });
        Interrupt {
            cancel,
            done,
            waiter: Some(waiter),
            old,
        }
    }

    fn interrupted(&self) -> bool {
        self.cancel.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(w) = self.waiter.take() {
            use std::os::unix::thread::JoinHandleExt;
            // SAFETY: wakes our own waiting thread with a signal it waits for.
            unsafe { libc::pthread_kill(w.as_pthread_t(), libc::SIGTERM) };
            let _ = w.join();
        }
        // SAFETY: restores this thread's mask as it was.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// Runs builds, at most [`CONCURRENCY`] at once; stops at the first failure.
fn run_builds(
    _global: &Global,
    mut reqs: Vec<BuildRequest>,
    mode: Mode,
) -> Result<Vec<ImageRecord>> {
    let store = Store::open(crate::paths::images()).context("cannot open the image store")?;
    let helper = super::run::helper_path()?;
    let progress = Progress::new(mode);
    // Registry caches go through directories, as local ones: fetched first, pushed after.
    let registry = RegistryCaches::prepare(&store, &mut reqs, &progress)?;
    let images = StoreImages {
        store: store.clone(),
        // A pull's lines would break the live display, redrawn in place (there the FROM
        // step's time shows the pull going on), and the JSON stream (one object per line).
        quiet: matches!(mode, Mode::Quiet | Mode::Tty | Mode::Json),
    };
    // The leftovers of killed builds go meanwhile, on a thread (nothing of theirs is what these
    // builds use; a build with nothing changed is ten milliseconds).
    let sweeper = std::thread::Builder::new()
        .name("sweep".into())
        .spawn({
            let store = store.clone();
            move || crate::build::cleanup::sweep(&store)
        })
        .ok();
    let interrupt = Interrupt::install(mode != Mode::Tty);
    let env = Env {
        store: &store,
        images: &images,
        progress: &progress,
        helper: &helper,
        cancel: &interrupt.cancel,
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
            let r = r.map_err(|_| anyhow::anyhow!("{what}: the build panicked"))?;
            if interrupt.interrupted() {
                drop(r);
                drop(interrupt);
                // `exit` runs no destructor: the live display ends here.
                progress.finish();
                eprintln!("build interrupted");
                std::process::exit(130);
            }
            let img = r.with_context(|| format!("{what}: build failed"))?;
            out.insert(n * CONCURRENCY + i, img);
        }
    }
    if let Some(sweeper) = sweeper {
        let _ = sweeper.join();
    }
    registry.publish(&progress)?;
    // The final region before anything the command prints after the builds (an early return
    // gets it from the drop).
    progress.finish();
    Ok(out.into_values().collect())
}

/// What a run of builds fetches and pushes around them — git contexts, registry caches — and
/// their scratch directories (removed on drop; named `<kind>-<pid>-<n>-<nanos>` so the next
/// build's sweep removes those of a killed one).
struct RegistryCaches {
    runtime: Option<tokio::runtime::Runtime>,
    registries: Option<crate::image::registries::Registries>,
    auth: Option<crate::image::auth::AuthStore>,
    pushes: Vec<(Reference, PathBuf)>,
    scratch: Vec<PathBuf>,
}

impl RegistryCaches {
    fn prepare(store: &Store, reqs: &mut [BuildRequest], progress: &Progress) -> Result<Self> {
        let mut me = RegistryCaches {
            runtime: None,
            registries: None,
            auth: None,
            pushes: Vec::new(),
            scratch: Vec::new(),
        };
        for req in reqs.iter_mut() {
            let Some(g) = req.git_context.clone() else {
                continue;
            };
            let dir = me.scratch_dir(store, "git");
            let fetched = crate::build::git::fetch(&g, &dir, false)?;
            progress.note(&format!(
                "fetched {}{} at {}",
                g.remote,
                g.reference
                    .as_deref()
                    .map(|r| format!("#{r}"))
                    .unwrap_or_default(),
                fetched.commit
            ));
            req.context = fetched.dir;
        }
        for req in reqs.iter_mut() {
            let Some(url) = req.url_context.clone() else {
                continue;
            };
            let download = me.scratch_dir(store, "url");
            std::fs::create_dir_all(&download)
                .with_context(|| format!("cannot create {}", download.display()))?;
            let got = crate::build::remote::fetch(&url, &download, None)
                .context("cannot fetch the build context")?;
            let dir = me.scratch_dir(store, "url-context");
            crate::build::remote::context_from_download(&download.join(&got.name), &dir)
                .with_context(|| format!("build context {url}"))?;
            progress.note(&format!("fetched {url} ({})", got.digest));
            req.context = dir;
        }
        if reqs
            .iter()
            .all(|r| r.registry_cache_from.is_empty() && r.registry_cache_to.is_empty())
        {
            return Ok(me);
        }
        me.runtime = Some(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?,
        );
        me.registries = Some(
            crate::image::registries::Registries::load()
                .context("cannot read the registries configuration")?,
        );
        me.auth = Some(
            crate::image::auth::AuthStore::load().context("cannot read registry credentials")?,
        );
        for req in reqs.iter_mut() {
            for r in req.registry_cache_from.clone() {
                let dir = me.scratch_dir(store, "cache");
                let (Some(rt), Some(regs), Some(auth)) = (&me.runtime, &me.registries, &me.auth)
                else {
                    continue;
                };
                // As BuildKit: a cache that cannot be read is a warning, the build goes on.
                match rt.block_on(crate::image::push::cache::pull_dir(regs, auth, &r, &dir)) {
                    Ok(n) => {
                        progress.note(&format!("importing cache manifest from {r}: {n} steps"));
                        req.cache_from.push(dir);
                    }
                    Err(e) => super::warn(&format!("cannot import the build cache {r}: {e}")),
                }
            }
            for r in req.registry_cache_to.clone() {
                let dir = me.scratch_dir(store, "cache");
                req.cache_to.push(dir.clone());
                me.pushes.push((r, dir));
            }
        }
        Ok(me)
    }

    fn scratch_dir(&mut self, store: &Store, kind: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let dir = store.root().join("tmp").join(format!(
            "{kind}-{}-{}-{nanos}",
            std::process::id(),
            self.scratch.len()
        ));
        self.scratch.push(dir.clone());
        dir
    }

    /// Pushes what the builds exported for each `cache_to: type=registry`.
    fn publish(&self, progress: &Progress) -> Result<()> {
        let (Some(rt), Some(regs), Some(auth)) = (&self.runtime, &self.registries, &self.auth)
        else {
            return Ok(());
        };
        for (r, dir) in &self.pushes {
            let n = rt
                .block_on(crate::image::push::cache::push_dir(regs, auth, dir, r))
                .with_context(|| format!("cannot export the build cache to {r}"))?;
            progress.note(&format!("exporting cache manifest to {r}: {n} steps"));
        }
        Ok(())
    }
}

impl Drop for RegistryCaches {
    fn drop(&mut self) {
        for d in &self.scratch {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// `--dry-run build`: the builds (and with `--push`, pushes) it would do, touching nothing.
fn dry_run_build(project: &Project, names: &[String], push: bool) -> Result<i32> {
    use crate::plan::ops::{Cause, Op, Plan};
    let mut plan = Plan::default();
    for name in names {
        let Some(service) = project.services.get(name) else {
            continue;
        };
        if service.build.is_none() {
            continue;
        }
        let image = image_name(project, service);
        let built = plan.push(
            Op::BuildImage {
                service: name.clone(),
                image: image.clone(),
            },
            Cause::Requested,
            vec![],
        );
        if push && !service.image.is_empty() {
            plan.push(Op::PushImage { image }, Cause::Requested, vec![built]);
        }
    }
    super::dryrun::print(&plan);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::loader::{load, Options as LoadOptions};

    fn project(dir: &Path, yaml: &str) -> Project {
        load(&LoadOptions::for_test(dir, "demo", yaml))
            .expect("test compose file loads")
            .project
    }

    #[test]
    fn bake_targets_are_services_unless_the_directory_exists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wd = dir.path();
        assert_eq!(bake_target("target:base", wd), Some("base"));
        let resolved = wd.join("target:base").display().to_string();
        assert_eq!(bake_target(&resolved, wd), Some("base"));
        // A real directory of that name is a directory context, as in docker compose.
        std::fs::create_dir(wd.join("target:base")).expect("mkdir");
        assert_eq!(bake_target(&resolved, wd), None);
        // Elsewhere than the project directory, or not a target at all.
        let deeper = wd.join("sub/target:base").display().to_string();
        assert_eq!(bake_target(&deeper, wd), None);
        assert_eq!(bake_target(&wd.join("ctx").display().to_string(), wd), None);
        assert_eq!(bake_target("target:", wd), None);
        assert_eq!(bake_target("docker-image://busybox", wd), None);
    }

    #[test]
    fn an_http_url_context_is_fetched_when_the_builds_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let request = |context: &str| {
            let p = project(
                dir.path(),
                &format!("services:\n  app:\n    build:\n      context: {context}\n"),
            );
            let s = &p.services["app"];
            let build = s.build.as_ref().expect("build");
            request_for(&p, dir.path(), s, build, "demo-app", &Options::default())
        };
        let r = request("https://example.com/ctx.tar.gz").expect("a URL context");
        assert_eq!(
            r.url_context.as_deref(),
            Some("https://example.com/ctx.tar.gz")
        );
        assert_eq!(r.git_context, None);
        assert_eq!(r.context, PathBuf::new());
        // A git URL stays a git context.
        let r = request("https://example.com/repo.git#main").expect("a git context");
        assert!(r.git_context.is_some() && r.url_context.is_none());
        // Other schemes are refused.
        let e = request("ftp://example.com/ctx.tar").unwrap_err();
        assert!(e.to_string().contains("is not supported"), "{e}");
    }

    #[test]
    fn build_dependencies_follow_service_and_target_contexts() {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["app", "mid", "base", "other"] {
            std::fs::create_dir(dir.path().join(d)).expect("mkdir");
        }
        let p = project(
            dir.path(),
            "services:\n  app:\n    build:\n      context: ./app\n      additional_contexts:\n        \
             m: target:mid\n  mid:\n    build:\n      context: ./mid\n      additional_contexts:\n        \
             b: service:base\n  base:\n    build: ./base\n  other:\n    build: ./other\n",
        );
        let wd = dir.path();
        assert_eq!(
            with_build_dependencies(&p, wd, &["app".into()]),
            ["app", "mid", "base"]
        );
        assert_eq!(
            with_build_dependencies(&p, wd, &["other".into()]),
            ["other"]
        );
    }
}
