//! The build executor: the stages a target needs, independent ones in parallel; each
//! instruction dispatched as BuildKit's dockerfile2llb does (expansion with the environment of
//! that moment, history text, config changes), filesystem steps run on overlays of their
//! parent's layers and captured from the upper directory, every step looked up in the cache
//! first.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::cache::{Cache, Key, KeyHasher, Record};
use super::context::{self, Context, CopyOptions, Source};
use super::dockerfile::Base;
use super::dockerfile::Expander;
use super::dockerfile::{
    self, CommandLine, Dockerfile, Healthcheck, Heredoc, Instruction, Kind, MountKind, NetworkMode,
    RunMount, Sharing, Stage,
};
use super::layer::{self, ImageBuilder, LayerOptions};
use super::mount::{with_overlays, Overlay};
use super::network::BuildNetwork;
use super::prefetch::{Prefetch, SourcesKey};
use super::progress::{Progress, StepId};
use super::run::{self, Network, RunStep};
use super::{BuildError, BuildRequest, DockerfileSource, Images, SecretSource};
use crate::image::config::Healthcheck as ImageHealthcheck;
use crate::image::digest::Digest;
use crate::image::reference::{Platform, Reference};
use crate::image::store::{ImageRecord, LayerRecord, Store};
use crate::runtime::inroot;
use crate::runtime::rootfs::MountRequest;

/// The diff_id of an empty tar (1024 zero bytes): the lower layer of a `FROM scratch` stage.
const EMPTY_LAYER: &str = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

/// What the builder runs with.
pub struct Env<'a> {
    pub store: &'a Store,
    pub images: &'a dyn Images,
    pub progress: &'a Progress,
    /// The rcompose binary, which build containers run their helper from.
    pub helper: &'a Path,
    /// Set on Ctrl-C: no further step starts (the running ones are killed by the caller).
    pub cancel: &'a std::sync::atomic::AtomicBool,
}

/// A stage's state as dispatch goes: the image so far and what only the build sees.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    image: ImageBuilder,
    /// The environment of RUN steps and of expansion: the image's Env, then ARGs and ENVs in
    /// the order they came (a later one replaces an earlier one of the same name).
    env: Vec<(String, String)>,
    /// ARGs declared in this stage, in order, with their values (None: declared, unset).
    args: Vec<(String, Option<String>)>,
    /// CMD was set in this stage (ENTRYPOINT then keeps it).
    cmd_set: bool,
}

impl State {
    fn lookup(&self, name: &str) -> Option<String> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_string(), value.to_string()));
    }

    fn env_list(&self) -> Vec<String> {
        self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

/// A finished stage.
#[derive(Clone)]
struct Done {
    state: State,
    key: Key,
}

/// Everything the stages share.
struct Build<'a> {
    req: &'a BuildRequest,
    env: &'a Env<'a>,
    df: Dockerfile,
    file: PathBuf,
    x: Expander,
    context: Context,
    named: BTreeMap<String, Context>,
    /// Named contexts that are images (`docker-image://REF`): FROM and --from use REF.
    aliases: BTreeMap<String, String>,
    build_args: BTreeMap<String, String>,
    meta: BTreeMap<String, String>,
    cache: Cache,
    layer_opts: LayerOptions,
    platform: Platform,
    done: Mutex<BTreeMap<usize, Done>>,
    /// Images named by `COPY --from` and mounts, resolved once.
    images: Mutex<BTreeMap<String, ImageRecord>>,
    secrets: BTreeMap<String, Vec<u8>>,
    /// The keys of this build's filesystem steps (for `cache_to`).
    keys: Mutex<Vec<Key>>,
    /// The bridge of RUN steps with the default network, made on first use (or on a thread of
    /// its own from the first cache miss, see [`Build::prepare_network`]).
    network: Mutex<NetState>,
    /// Context sources of COPY/ADD steps read ahead of them (see [`super::prefetch`]).
    prefetch: Prefetch,
}

/// The build network, as far as it is made.
enum NetState {
    None,
    Making(std::thread::JoinHandle<Result<BuildNetwork, BuildError>>),
    Ready(std::sync::Arc<BuildNetwork>),
}

/// Builds `req`; returns the image, committed to the store and tagged.
pub fn build(req: &BuildRequest, env: &Env<'_>) -> Result<ImageRecord, BuildError> {
    let (source, file) = read_dockerfile(req)?;
    let df = dockerfile::parse(&source, &file)?;
    for w in &df.warnings {
        env.progress.note(&format!(
            " WARN: {}: {} (line {})",
            w.rule, w.message, w.line
        ));
    }
    let context = Context::open(&req.context, Some(&file))?;
    // The stat cache of this context from earlier builds: unchanged files are not read again.
    let stat_cache = super::cache::dir_of(env.store).join("stat").join(format!(
        "{}.bin",
        Digest::of(req.context.as_os_str().as_encoded_bytes()).hex()
    ));
    if let Err(e) = context.load_stat_cache(&stat_cache) {
        tracing::warn!("{e}");
    }
    let mut named = BTreeMap::new();
    let mut aliases = BTreeMap::new();
    for (name, value) in &req.additional_contexts {
        if let Some(reference) = value.strip_prefix("docker-image://") {
            aliases.insert(name.clone(), reference.to_string());
            continue;
        }
        if value.contains("://") || value.starts_with("target:") || value.starts_with("service:") {
            return Err(BuildError::Unsupported(format!(
                "additional context {name}={value} (only directories and docker-image://)"
            )));
        }
        let p = if Path::new(value).is_absolute() {
            PathBuf::from(value)
        } else {
            req.context.join(value)
        };
        // A named context is a context: its own .dockerignore applies.
        named.insert(name.clone(), Context::open(&p, None)?);
    }
    let mut build_args = BTreeMap::new();
    for (k, v) in &req.args {
        match v {
            Some(v) => {
                build_args.insert(k.clone(), v.clone());
            }
            None => {
                if let Ok(v) = std::env::var(k) {
                    build_args.insert(k.clone(), v);
                }
            }
        }
    }
    let platform = Platform::host();
    let predefined = platform_args(&platform);
    let meta = df.meta_values(&|k| build_args.get(k).cloned(), &predefined)?;
    let epoch = build_args
        .get("SOURCE_DATE_EPOCH")
        .cloned()
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        .and_then(|s| s.trim().parse::<i64>().ok());
    let mut secrets = BTreeMap::new();
    for (id, src) in &req.secrets {
        let bytes = match src {
            SecretSource::File(p) => fs::read(p).map_err(|source| BuildError::Io {
                what: "read secret",
                path: p.clone(),
                source,
            })?,
            SecretSource::Env(var) => std::env::var(var)
                .map_err(|_| {
                    BuildError::Invalid(format!(
                        "secret {id}: environment variable {var} is not set"
                    ))
                })?
                .into_bytes(),
        };
        secrets.insert(id.clone(), bytes);
    }
    let b = Build {
        req,
        env,
        x: Expander::new(df.directives.escape),
        df,
        file,
        context,
        named,
        aliases,
        build_args,
        meta,
        cache: Cache::open(env.store),
        layer_opts: LayerOptions {
            source_date_epoch: epoch,
            defer_blob: true,
            ..LayerOptions::default()
        },
        platform,
        done: Mutex::new(BTreeMap::new()),
        images: Mutex::new(BTreeMap::new()),
        secrets,
        keys: Mutex::new(Vec::new()),
        network: Mutex::new(NetState::None),
        prefetch: Prefetch::default(),
    };
    let result = b.run();
    // A network made for RUN steps that then all came from the cache: dropped (removed) now,
    // not left half-made by a thread the process's exit cuts short.
    if let Ok(mut net) = b.network.lock() {
        if let NetState::Making(handle) = std::mem::replace(&mut *net, NetState::None) {
            let _ = handle.join();
        }
    }
    if result.is_ok() {
        let saved = stat_cache
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .map_err(|e| e.to_string())
            .and_then(|_| {
                b.context
                    .save_stat_cache(&stat_cache)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = saved {
            tracing::warn!("cannot save the build context's stat cache: {e}");
        }
    }
    result
}

fn read_dockerfile(req: &BuildRequest) -> Result<(String, PathBuf), BuildError> {
    match &req.dockerfile {
        Some(DockerfileSource::Inline(text)) => {
            Ok((text.clone(), req.context.join("Dockerfile.inline")))
        }
        Some(DockerfileSource::Path(p)) => {
            let path = if p.is_absolute() {
                p.clone()
            } else {
                req.context.join(p)
            };
            read_file(&path)
        }
        None => read_file(&req.context.join("Dockerfile")),
    }
}

/// Reads a Dockerfile, at most one byte more than the parser takes (which then says it is too
/// large): one from a URL context, or a device, is not read whole into memory first.
fn read_file(path: &Path) -> Result<(String, PathBuf), BuildError> {
    use std::io::Read;
    let err = |source| BuildError::Io {
        what: "read Dockerfile",
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    fs::File::open(path)
        .map_err(err)?
        .take(dockerfile::limits::MAX_SOURCE as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if bytes.len() > dockerfile::limits::MAX_SOURCE {
        // Too large whatever it holds (the cut may split a character): the parser says so.
        return Ok((
            String::from_utf8_lossy(&bytes).into_owned(),
            path.to_path_buf(),
        ));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        BuildError::Invalid(format!("{}: the Dockerfile is not UTF-8", path.display()))
    })?;
    Ok((text, path.to_path_buf()))
}

/// BuildKit's automatic platform ARGs (build platform = target platform: no cross builds).
fn platform_args(p: &Platform) -> BTreeMap<String, String> {
    let variant = p.variant.clone().unwrap_or_default();
    let full = if variant.is_empty() {
        format!("{}/{}", p.os, p.architecture)
    } else {
        format!("{}/{}/{variant}", p.os, p.architecture)
    };
    let mut m = BTreeMap::new();
    for prefix in ["TARGET", "BUILD"] {
        m.insert(format!("{prefix}PLATFORM"), full.clone());
        m.insert(format!("{prefix}OS"), p.os.clone());
        m.insert(format!("{prefix}ARCH"), p.architecture.clone());
        m.insert(format!("{prefix}VARIANT"), variant.clone());
    }
    m
}

impl Build<'_> {
    fn run(&self) -> Result<ImageRecord, BuildError> {
        for dir in &self.req.cache_from {
            let n = super::cache::local::import(&self.cache, dir)?;
            self.env.progress.note(&format!(
                "importing cache from {}: {n} steps",
                dir.display()
            ));
        }
        let meta = |k: &str| self.meta.get(k).cloned();
        let plan = self.df.plan(self.req.target.as_deref(), &meta)?;
        let unused: Vec<&String> = self
            .build_args
            .keys()
            .filter(|k| !self.declared(k) && !is_predefined(k))
            .collect();
        if !unused.is_empty() {
            self.env.progress.note(&format!(
                " WARN: one or more build-args {unused:?} were not consumed"
            ));
        }
        self.prefetch.plan(self.prefetch_keys(&plan.order));
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let workers = self.prefetch.queued().min(context::parallelism());
            let spawned = (0..workers)
                .filter(|_| {
                    std::thread::Builder::new()
                        .name("prefetch".into())
                        .spawn_scoped(s, || {
                            self.prefetch.work(&self.context, &stop, self.env.cancel)
                        })
                        .is_ok()
                })
                .count();
            if spawned == 0 {
                self.prefetch.abandon();
            }
            let result = self.stages(&plan);
            // A failed build reads no more sources ahead (the walks under way end first).
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            result
        })?;
        let target = *plan
            .order
            .last()
            .ok_or_else(|| BuildError::Invalid("the Dockerfile has no stage".into()))?;
        let done = self
            .done
            .lock()
            .map_err(|_| BuildError::Step("build state poisoned".into()))?
            .get(&target)
            .cloned()
            .ok_or_else(|| BuildError::Step("the target stage did not finish".into()))?;
        let mut image = done.state.image;
        for (k, v) in &self.req.labels {
            image.config_mut().labels.insert(k.clone(), v.clone());
        }
        image.set_source_date_epoch(self.layer_opts.source_date_epoch);
        let tags = self
            .req
            .tags
            .iter()
            .map(|t| {
                Reference::parse(t)
                    .map_err(|e| BuildError::Invalid(format!("invalid tag {t:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let record = layer::commit(self.env.store, image, &tags)?;
        let keys = self
            .keys
            .lock()
            .map_err(|_| BuildError::Step("build state poisoned".into()))?
            .clone();
        for dir in &self.req.cache_to {
            let n = super::cache::local::export(&self.cache, dir, &keys)?;
            self.env
                .progress
                .note(&format!("exporting cache to {}: {n} steps", dir.display()));
        }
        Ok(record)
    }

    /// The context sources of the COPY/ADD steps of `stages` (in order) that do not depend on
    /// the build's state: no variable in their arguments, no `--from`, no heredoc, no URL.
    fn prefetch_keys(&self, stages: &[usize]) -> Vec<SourcesKey> {
        let none = |_: &str| None;
        let mut keys = Vec::new();
        for &i in stages {
            let Some(stage) = self.df.stages.get(i) else {
                continue;
            };
            for ins in &stage.instructions {
                if !matches!(ins.kind, Kind::Copy(_) | Kind::Add(_)) {
                    continue;
                }
                let Ok((expanded, used)) = ins.expand(&self.x, &none) else {
                    continue;
                };
                if !used.is_empty() {
                    continue;
                }
                match expanded.kind {
                    Kind::Copy(c) if c.from.is_none() && c.heredocs.is_empty() => {
                        keys.push((c.sources, c.excludes, c.parents));
                    }
                    Kind::Add(a)
                        if a.heredocs.is_empty()
                            && a.sources.iter().all(|s| {
                                super::git::parse(s).is_none()
                                    && !s.starts_with("http://")
                                    && !s.starts_with("https://")
                            }) =>
                    {
                        keys.push((a.sources, a.excludes, false));
                    }
                    _ => {}
                }
            }
        }
        keys
    }

    /// Runs the stages `plan` needs, level by level.
    fn stages(&self, plan: &dockerfile::StagePlan) -> Result<(), BuildError> {
        // Stages by level: each level's stages need only earlier levels, so they run at once.
        let mut level: BTreeMap<usize, usize> = BTreeMap::new();
        for &i in &plan.order {
            let l = plan
                .deps
                .get(&i)
                .into_iter()
                .flatten()
                .filter_map(|d| level.get(d))
                .max()
                .map_or(0, |l| l + 1);
            level.insert(i, l);
        }
        let levels = level.values().max().map_or(0, |l| l + 1);
        for l in 0..levels {
            let stages: Vec<usize> = plan
                .order
                .iter()
                .copied()
                .filter(|i| level.get(i) == Some(&l))
                .collect();
            let results: Vec<Result<(), BuildError>> = std::thread::scope(|s| {
                let handles: Vec<_> = stages
                    .iter()
                    .map(|&i| {
                        let base = plan.bases.get(&i).cloned();
                        s.spawn(move || self.stage(i, base))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(BuildError::Step("a build stage panicked".into()))
                        })
                    })
                    .collect()
            });
            for r in results {
                r?;
            }
        }
        Ok(())
    }

    fn network(&self) -> Result<std::sync::Arc<BuildNetwork>, BuildError> {
        let mut net = self
            .network
            .lock()
            .map_err(|_| BuildError::Step("build state poisoned".into()))?;
        let made = match std::mem::replace(&mut *net, NetState::None) {
            NetState::Ready(n) => n,
            NetState::Making(handle) => std::sync::Arc::new(
                handle
                    .join()
                    .map_err(|_| BuildError::Step("build network: making it panicked".into()))??,
            ),
            NetState::None => std::sync::Arc::new(BuildNetwork::create()?),
        };
        *net = NetState::Ready(made.clone());
        Ok(made)
    }

    /// Starts making the build network on another thread when a RUN of the Dockerfile may
    /// need it: called when a step misses the cache, so every later step of its stage runs
    /// (and a cached build makes none). Its cost (10 ms and more) then overlaps the steps
    /// before the first RUN.
    fn prepare_network(&self) {
        if matches!(self.req.network.as_deref(), Some("none" | "host")) {
            return;
        }
        let wants = self.df.stages.iter().any(|s| {
            s.instructions.iter().any(|i| {
                matches!(&i.kind, Kind::Run(r) if matches!(r.network, None | Some(NetworkMode::Default)))
            })
        });
        let Ok(mut net) = self.network.lock() else {
            return;
        };
        if wants && matches!(*net, NetState::None) {
            if let Ok(handle) = std::thread::Builder::new()
                .name("build-network".into())
                .spawn(BuildNetwork::create)
            {
                *net = NetState::Making(handle);
            }
        }
    }

    fn declared(&self, name: &str) -> bool {
        self.df.meta_args.iter().any(|a| a.name == name)
            || self.df.stages.iter().any(|s| {
                s.instructions.iter().any(|i| match &i.kind {
                    Kind::Arg(decls) => decls.iter().any(|d| d.name == name),
                    _ => false,
                })
            })
    }

    fn stage(&self, index: usize, base: Option<Base>) -> Result<(), BuildError> {
        let stage = &self.df.stages[index];
        let total = stage.instructions.len() + 1;
        let label = |k: usize| {
            let name = stage.display_name();
            if self.req.name.is_empty() {
                format!("{name} {k}/{total}")
            } else {
                format!("{} {name} {k}/{total}", self.req.name)
            }
        };
        let started = Instant::now();
        let (mut state, mut key, from_text) = match base {
            Some(Base::Stage(i)) => {
                let d = self.finished(i)?;
                (
                    d.state,
                    d.key,
                    format!("FROM {}", self.df.stages[i].display_name()),
                )
            }
            Some(Base::Image(reference)) => {
                let reference = self.aliases.get(&reference).cloned().unwrap_or(reference);
                let id = self
                    .env
                    .progress
                    .start(&label(1), &format!("FROM {reference}"));
                let img = self
                    .env
                    .images
                    .base_image(&reference, self.req.pull)
                    .map_err(|message| {
                        // The step's end, as BuildKit shows it; the error says the rest.
                        self.env.progress.error(id, &message);
                        BuildError::BaseImage {
                            reference: reference.clone(),
                            message,
                        }
                    })?;
                self.env.progress.done(id, started.elapsed());
                let key = Key::base(Some(&img.id), &self.platform.to_string());
                let image = ImageBuilder::from_base(self.env.store, Some(&img))?;
                (self.initial_state(image), key, String::new())
            }
            Some(Base::Scratch) | None => {
                let image = ImageBuilder::from_base(self.env.store, None)?;
                (
                    self.initial_state(image),
                    Key::base(None, &self.platform.to_string()),
                    String::new(),
                )
            }
        };
        if !from_text.is_empty() {
            let id = self.env.progress.start(&label(1), &from_text);
            self.env.progress.done(id, std::time::Duration::ZERO);
        }
        // ONBUILD triggers of the base image run first, then are gone from the new image.
        let triggers = std::mem::take(&mut state.image.config_mut().on_build);
        for t in &triggers {
            let ins = dockerfile::parse_trigger(t, &self.file)?;
            key = self.step(stage, &label(1), &ins, &mut state, key)?;
        }
        for (n, ins) in stage.instructions.iter().enumerate() {
            key = self.step(stage, &label(n + 2), ins, &mut state, key)?;
        }
        self.done
            .lock()
            .map_err(|_| BuildError::Step("build state poisoned".into()))?
            .insert(index, Done { state, key });
        Ok(())
    }

    fn initial_state(&self, image: ImageBuilder) -> State {
        let env = image
            .runtime()
            .env
            .iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e.clone(), String::new()),
            })
            .collect();
        State {
            image,
            env,
            args: Vec::new(),
            cmd_set: false,
        }
    }

    fn finished(&self, index: usize) -> Result<Done, BuildError> {
        self.done
            .lock()
            .map_err(|_| BuildError::Step("build state poisoned".into()))?
            .get(&index)
            .cloned()
            .ok_or_else(|| BuildError::Step(format!("stage {index} was not built first")))
    }

    /// One instruction: its key, a cache hit or its execution. Returns the new key.
    fn step(
        &self,
        stage: &Stage,
        label: &str,
        ins: &Instruction,
        state: &mut State,
        parent: Key,
    ) -> Result<Key, BuildError> {
        if self.env.cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(BuildError::Interrupted);
        }
        let started = Instant::now();
        let location = format!(
            "{}:{} (stage {})",
            self.file.file_name().map_or_else(
                || self.file.display().to_string(),
                |n| n.to_string_lossy().into_owned()
            ),
            ins.location.line,
            stage.display_name()
        );
        let wrap = |e: BuildError| match e {
            e @ BuildError::StepFailed { .. } => e,
            e => BuildError::Step(format!("{location}: {}: {e}", ins.original)),
        };
        // ARG changes only the build's state: no cache lookup, a history entry.
        if let Kind::Arg(decls) = &ins.kind {
            let text = self.arg(decls, state).map_err(wrap)?;
            state.image.add_history_only(&text);
            let mut h = KeyHasher::child_of(&parent);
            h.field("op", &text);
            return Ok(h.finish());
        }
        let env_now = state.clone();
        let lookup = move |k: &str| env_now.lookup(k);
        let (expanded, _used) = ins.expand(&self.x, &lookup).map_err(|e| wrap(e.into()))?;
        match &expanded.kind {
            Kind::Run(_) | Kind::Copy(_) | Kind::Add(_) | Kind::Workdir(_) => {}
            _ => {
                // Metadata: applied directly; cheap, so not cached on its own, but part of
                // the key of what follows.
                let text = self.metadata(&expanded, state).map_err(wrap)?;
                let mut h = KeyHasher::child_of(&parent);
                h.field("op", &text);
                return Ok(h.finish());
            }
        }
        let progress = self.env.progress;
        let id = progress.start(label, &ins.original);
        let (key, history, prepared) = self.key_of(&expanded, state, &parent).map_err(|e| {
            // A COPY source missing, a --from stage unknown…: the step failed.
            progress.error(id, &e.to_string());
            wrap(e)
        })?;
        if !self.req.no_cache {
            if let Some(record) = self.cache.get(&key) {
                if let Ok(restored) = serde_json::from_value::<State>(record.config) {
                    *state = restored;
                    progress.cached(id);
                    if let Ok(mut keys) = self.keys.lock() {
                        keys.push(key.clone());
                    }
                    return Ok(key);
                }
            }
        }
        self.prepare_network();
        let result = self.execute(&expanded, state, prepared, id, started, &location);
        match result {
            Ok(layer) => {
                state.image.add_layer(layer, &history);
                let record = Record {
                    layers: state.image.layers().to_vec(),
                    config: serde_json::to_value(&*state).map_err(|e| {
                        BuildError::Step(format!("cannot record the build state: {e}"))
                    })?,
                };
                self.cache.put(&key, &record)?;
                if let Ok(mut keys) = self.keys.lock() {
                    keys.push(key.clone());
                }
                progress.done(id, started.elapsed());
                Ok(key)
            }
            Err(e) => {
                progress.error(id, &e.to_string());
                Err(wrap(e))
            }
        }
    }

    /// `ARG`: declares args in this stage with their values; returns the history text.
    fn arg(&self, decls: &[dockerfile::ArgDecl], state: &mut State) -> Result<String, BuildError> {
        let mut parts = Vec::new();
        for d in decls {
            let value = if let Some(v) = self.build_args.get(&d.name) {
                Some(v.clone())
            } else if let Some(def) = &d.default {
                let lookup = |k: &str| state.lookup(k);
                Some(
                    self.x
                        .word(def, &lookup)
                        .map_err(|e| BuildError::Invalid(e.to_string()))?
                        .value,
                )
            } else {
                self.meta.get(&d.name).cloned()
            };
            if let Some(v) = &value {
                state.set_env(&d.name, v);
                parts.push(format!("{}={v}", d.name));
            } else {
                parts.push(d.name.clone());
            }
            state.args.retain(|(k, _)| *k != d.name);
            state.args.push((d.name.clone(), value));
        }
        Ok(format!("ARG {}", parts.join(" ")))
    }

    /// Metadata instructions: the config changes and the history entry, as BuildKit's.
    fn metadata(&self, ins: &Instruction, state: &mut State) -> Result<String, BuildError> {
        let text = match &ins.kind {
            Kind::Env(pairs) => {
                let mut msg = String::from("ENV");
                for (k, v) in pairs {
                    msg.push_str(&format!(" {k}={v}"));
                    state.set_env(k, v);
                    let cfg = state.image.config_mut();
                    let prefix = format!("{k}=");
                    match cfg.env.iter_mut().find(|e| e.starts_with(&prefix)) {
                        Some(e) => *e = format!("{k}={v}"),
                        None => cfg.env.push(format!("{k}={v}")),
                    }
                }
                msg
            }
            Kind::Label(pairs) => {
                let mut msg = String::from("LABEL");
                for (k, v) in pairs {
                    msg.push_str(&format!(" {k}={v}"));
                    state.image.config_mut().labels.insert(k.clone(), v.clone());
                }
                msg
            }
            Kind::Expose(ports) => {
                let mut specs = Vec::new();
                for p in ports {
                    let spec = if p.contains('/') {
                        p.to_ascii_lowercase()
                    } else {
                        format!("{p}/tcp")
                    };
                    state
                        .image
                        .config_mut()
                        .exposed_ports
                        .insert(spec.clone(), serde_json::json!({}));
                    specs.push(spec);
                }
                format!("EXPOSE [{}]", specs.join(" "))
            }
            Kind::Volume(vols) => {
                for v in vols {
                    if v.trim().is_empty() {
                        return Err(BuildError::Invalid(
                            "VOLUME specified can not be an empty string".into(),
                        ));
                    }
                    state
                        .image
                        .config_mut()
                        .volumes
                        .insert(v.clone(), serde_json::json!({}));
                }
                format!("VOLUME [{}]", vols.join(" "))
            }
            Kind::User(u) => {
                state.image.config_mut().user = u.clone();
                format!("USER {u}")
            }
            Kind::StopSignal(s) => {
                crate::runtime::spec::Signal::parse(s)
                    .map_err(|e| BuildError::Invalid(e.to_string()))?;
                state.image.config_mut().stop_signal = s.clone();
                format!("STOPSIGNAL {s}")
            }
            Kind::Shell(sh) => {
                state.image.config_mut().shell = sh.clone();
                format!("SHELL [{}]", sh.join(" "))
            }
            Kind::Cmd(c) => {
                let args = self.command_args(c, state);
                state.image.config_mut().cmd = Some(args.clone());
                state.cmd_set = true;
                format!("CMD {}", go_quoted_list(&args))
            }
            Kind::Entrypoint(c) => {
                let args = self.command_args(c, state);
                let cfg = state.image.config_mut();
                cfg.entrypoint = Some(args.clone());
                if !state.cmd_set {
                    cfg.cmd = None;
                }
                format!("ENTRYPOINT {}", go_quoted_list(&args))
            }
            Kind::Healthcheck(h) => {
                let hc = match h {
                    Healthcheck::None => ImageHealthcheck {
                        test: vec!["NONE".into()],
                        ..ImageHealthcheck::default()
                    },
                    Healthcheck::Cmd {
                        test,
                        interval,
                        timeout,
                        start_period,
                        start_interval,
                        retries,
                    } => ImageHealthcheck {
                        test: test.clone(),
                        interval: nanos(*interval),
                        timeout: nanos(*timeout),
                        start_period: nanos(*start_period),
                        start_interval: nanos(*start_interval),
                        retries: retries.map_or(0, i64::from),
                    },
                };
                let text = format!(
                    "HEALTHCHECK {{Test:[{}] Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
                    hc.test.join(" "),
                    go_duration(hc.interval),
                    go_duration(hc.timeout),
                    go_duration(hc.start_period),
                    go_duration(hc.start_interval),
                    hc.retries
                );
                state.image.config_mut().healthcheck = Some(hc);
                text
            }
            Kind::OnBuild(trigger) => {
                state.image.config_mut().on_build.push(trigger.clone());
                // BuildKit records no history for ONBUILD.
                return Ok(format!("ONBUILD {trigger}"));
            }
            Kind::Maintainer(m) => format!("MAINTAINER {m}"),
            other => {
                return Err(BuildError::Step(format!(
                    "{} is not a metadata instruction",
                    other.name()
                )))
            }
        };
        state.image.add_history_only(&text);
        Ok(text)
    }

    /// CMD/ENTRYPOINT/RUN arguments: exec form as is, shell form through the SHELL.
    fn command_args(&self, c: &CommandLine, state: &State) -> Vec<String> {
        match c {
            CommandLine::Exec(v) => v.clone(),
            CommandLine::Shell(s) => {
                let mut sh = shell_of(state);
                sh.push(s.clone());
                sh
            }
        }
    }

    /// The key of a filesystem step, its history text, and what was resolved to compute it.
    fn key_of(
        &self,
        ins: &Instruction,
        state: &State,
        parent: &Key,
    ) -> Result<(Key, String, Prepared), BuildError> {
        let mut h = KeyHasher::child_of(parent);
        match &ins.kind {
            Kind::Run(r) => {
                let args = self.run_args(r, state);
                let history = format!(
                    "RUN {} # buildkit",
                    run_command_string(&args, &state.args, state)
                );
                h.field("op", "RUN");
                for a in &args {
                    h.field("arg", a);
                }
                for e in state.env_list() {
                    h.field("env", &e);
                }
                for m in &r.mounts {
                    h.field("mount", &format!("{m:?}"));
                    if m.kind == MountKind::Bind {
                        let digest = self.mount_source_digest(m)?;
                        h.field("mount-content", &digest);
                    }
                }
                h.field("network", &format!("{:?}", r.network));
                h.field("user", &state.image.runtime().user);
                h.field("cwd", &state.image.runtime().working_dir);
                Ok((h.finish(), history, Prepared::Run(args)))
            }
            Kind::Copy(c) => {
                let (sources, digest, from_key) = self.copy_sources(
                    c.from.as_deref(),
                    &c.sources,
                    &c.excludes,
                    c.parents,
                    &c.heredocs,
                    state,
                )?;
                let history = copy_history(
                    "COPY",
                    c.parents,
                    &c.chown,
                    &c.chmod,
                    &c.sources,
                    &c.heredocs,
                    &c.dest,
                );
                h.field("op", &format!("{:?}", ins.kind));
                h.field("content", &digest);
                h.field("from", &from_key);
                h.field("cwd", &state.image.runtime().working_dir);
                Ok((h.finish(), history, Prepared::Copy(sources)))
            }
            Kind::Add(a) => {
                let mut local = Vec::new();
                let mut urls = Vec::new();
                let mut repos = Vec::new();
                for s in &a.sources {
                    if let Some(g) = super::git::parse(s) {
                        repos.push(g);
                        continue;
                    }
                    if s.starts_with("http://") || s.starts_with("https://") {
                        urls.push(s.clone());
                    } else {
                        local.push(s.clone());
                    }
                }
                if !repos.is_empty() && (repos.len() != 1 || !urls.is_empty() || !local.is_empty())
                {
                    return Err(BuildError::Invalid(
                        "ADD from git takes one repository and no other source".into(),
                    ));
                }
                if a.checksum.is_some() && (urls.len() != 1 || !local.is_empty()) {
                    return Err(BuildError::Invalid(
                        "checksum requires one HTTP(S) source".into(),
                    ));
                }
                let (mut sources, mut digest, from_key) =
                    self.copy_sources(None, &local, &a.excludes, false, &a.heredocs, state)?;
                if !urls.is_empty() {
                    let tmp = TempDir::new(self.env.store, "download")?;
                    let mut names = Vec::new();
                    for u in &urls {
                        let f = super::remote::fetch(u, &tmp.0, a.checksum.as_deref())?;
                        digest.push_str(&format!(" {u}={}", f.digest));
                        names.push(f.name);
                    }
                    let ctx = Context::open_dir_without_ignore(&tmp.0)?;
                    sources.remote = ctx.resolve(&names, &[])?;
                    sources._remote_tmp = Some(tmp);
                }
                if let Some(g) = repos.first() {
                    // The repository's tree (with .git only for `--keep-git-dir=true`) goes into
                    // the destination, as BuildKit's ADD of a git URL; the step is keyed by the
                    // commit (and the instruction, flags included).
                    let tmp = TempDir::new(self.env.store, "git")?;
                    let keep_git_dir = a.keep_git_dir == Some(true);
                    let fetched = super::git::fetch(g, &tmp.0.join("repo"), keep_git_dir)?;
                    digest.push_str(&format!(" {}={}", g.remote, fetched.commit));
                    let ctx = Context::open_dir_without_ignore(&fetched.dir)?;
                    sources.remote = ctx.resolve(&[".".to_string()], &[])?;
                    sources._remote_tmp = Some(tmp);
                }
                let history = copy_history(
                    "ADD",
                    false,
                    &a.chown,
                    &a.chmod,
                    &a.sources,
                    &a.heredocs,
                    &a.dest,
                );
                h.field("op", &format!("{:?}", ins.kind));
                h.field("content", &digest);
                h.field("from", &from_key);
                h.field("cwd", &state.image.runtime().working_dir);
                Ok((h.finish(), history, Prepared::Copy(sources)))
            }
            Kind::Workdir(p) => {
                let wd = normalize_workdir(&state.image.runtime().working_dir, p);
                h.field("op", &format!("WORKDIR {wd}"));
                h.field("user", &state.image.runtime().user);
                Ok((h.finish(), format!("WORKDIR {wd}"), Prepared::Workdir(wd)))
            }
            other => Err(BuildError::Step(format!(
                "{} has no filesystem step",
                other.name()
            ))),
        }
    }

    /// RUN's command: heredocs folded in as BuildKit does, then the shell for the shell form.
    fn run_args(&self, r: &dockerfile::Run, state: &State) -> Vec<String> {
        match &r.command {
            CommandLine::Exec(v) => v.clone(),
            CommandLine::Shell(cmd) => {
                let line = match r.heredocs.as_slice() {
                    [] => cmd.clone(),
                    [only] if is_bare_heredoc(cmd) => {
                        // A script with a shebang runs as a file (see `execute`).
                        let body = only.body();
                        if body.starts_with("#!") {
                            return vec![format!("/dev/pipes/{}", only.name)];
                        }
                        body
                    }
                    docs => {
                        let mut b = cmd.clone();
                        for d in docs {
                            b.push('\n');
                            b.push_str(&d.content);
                            b.push_str(&d.name);
                        }
                        b
                    }
                };
                let mut sh = shell_of(state);
                sh.push(line);
                sh
            }
        }
    }

    fn mount_source_digest(&self, m: &RunMount) -> Result<String, BuildError> {
        let src = m.source.clone().unwrap_or_else(|| ".".into());
        if let Some(from) = &m.from {
            // The source stage's (or image's) key stands for its content.
            let (_, key) = self.source_layers(from)?;
            return Ok(format!("{}:{src}", key.0));
        }
        let sources = self.context.resolve(&[src], &[])?;
        Ok(self.context.digest(&sources)?.to_string())
    }

    /// COPY/ADD sources resolved in their tree, their content digest and the key of the
    /// stage they come from.
    fn copy_sources(
        &self,
        from: Option<&str>,
        sources: &[String],
        excludes: &[String],
        parents: bool,
        heredocs: &[Heredoc],
        state: &State,
    ) -> Result<(CopySources, String, String), BuildError> {
        if !heredocs.is_empty() {
            // Heredoc files: written to a scratch directory, then copied like context files.
            let dir = self.env.store.temp_path("heredoc");
            fs::create_dir(&dir).map_err(|source| BuildError::Io {
                what: "create",
                path: dir.clone(),
                source,
            })?;
            let guard = TempDir(dir.clone());
            let mut names = Vec::new();
            let mut digest_input = String::new();
            for d in heredocs {
                let body = if d.expand {
                    let lookup = |k: &str| state.lookup(k);
                    self.x
                        .heredoc(&d.body(), &lookup)
                        .map_err(|e| BuildError::Invalid(e.to_string()))?
                        .value
                } else {
                    d.body()
                };
                // The delimiter names a file of the scratch directory: one component, or a
                // hostile Dockerfile could write anywhere on the host (`<<../../x`).
                if !crate::paths::is_component(&d.name) {
                    return Err(BuildError::Invalid(format!(
                        "heredoc name {:?} is not a file name",
                        d.name
                    )));
                }
                let p = dir.join(&d.name);
                fs::write(&p, &body).map_err(|source| BuildError::Io {
                    what: "write",
                    path: p.clone(),
                    source,
                })?;
                use std::os::unix::fs::PermissionsExt;
                let _ = fs::set_permissions(&p, fs::Permissions::from_mode(0o644));
                digest_input.push_str(&format!("{}\0{}\0", d.name, body));
                names.push(d.name.clone());
            }
            let ctx = Context::open_dir_without_ignore(&dir)?;
            let mut all = ctx.resolve(&names, &[])?;
            let mut digest = Digest::of(digest_input.as_bytes()).to_string();
            if !sources.is_empty() {
                let rest = self.context.resolve_with(sources, excludes, parents)?;
                digest.push_str(&self.context.digest(&rest)?.to_string());
                all.extend(rest);
            }
            return Ok((
                CopySources {
                    sources: all,
                    remote: Vec::new(),
                    _remote_tmp: None,
                    stage: None,
                    _tmp: Some(guard),
                },
                digest,
                String::new(),
            ));
        }
        match from {
            None => {
                let key = (sources.to_vec(), excludes.to_vec(), parents);
                let (resolved, digest) = match self.prefetch.take(&key) {
                    Some(read) => read,
                    None => {
                        let resolved = self.context.resolve_with(sources, excludes, parents)?;
                        let digest = self.context.digest(&resolved)?;
                        (resolved, digest)
                    }
                };
                let digest = digest.to_string();
                Ok((
                    CopySources {
                        sources: resolved,
                        remote: Vec::new(),
                        _remote_tmp: None,
                        stage: None,
                        _tmp: None,
                    },
                    digest,
                    String::new(),
                ))
            }
            Some(name) => {
                let is_stage = self
                    .df
                    .stages
                    .iter()
                    .any(|s| s.name.as_deref() == Some(name.to_ascii_lowercase().as_str()));
                if let Some(ctx) = self.named.get(name).filter(|_| !is_stage) {
                    let resolved = ctx.resolve_with(sources, excludes, parents)?;
                    let digest = ctx.digest(&resolved)?.to_string();
                    return Ok((
                        CopySources {
                            sources: resolved,
                            remote: Vec::new(),
                            _remote_tmp: None,
                            stage: None,
                            _tmp: None,
                        },
                        digest,
                        format!("context:{name}"),
                    ));
                }
                let (layers, key) = self.source_layers(name)?;
                Ok((
                    CopySources {
                        sources: Vec::new(),
                        remote: Vec::new(),
                        _remote_tmp: None,
                        stage: Some(FromTree {
                            layers,
                            sources: sources.to_vec(),
                            excludes: excludes.to_vec(),
                            parents,
                        }),
                        _tmp: None,
                    },
                    // The source stage's key stands for its content.
                    String::new(),
                    key.0,
                ))
            }
        }
    }

    /// The layers of `COPY --from=NAME`: a stage (by name or index) or an image.
    fn source_layers(&self, name: &str) -> Result<(Vec<PathBuf>, Key), BuildError> {
        let lower = name.to_ascii_lowercase();
        let stage = self
            .df
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| name.parse::<usize>().ok());
        if let Some(i) = stage {
            let done = self.finished(i)?;
            let layers = self.layer_dirs(done.state.image.layers())?;
            return Ok((layers, done.key));
        }
        let name = self.aliases.get(name).map_or(name, String::as_str);
        let img = {
            let mut images = self
                .images
                .lock()
                .map_err(|_| BuildError::Step("build state poisoned".into()))?;
            match images.get(name) {
                Some(i) => i.clone(),
                None => {
                    let i = self
                        .env
                        .images
                        .base_image(name, self.req.pull)
                        .map_err(|message| BuildError::BaseImage {
                            reference: name.to_string(),
                            message,
                        })?;
                    images.insert(name.to_string(), i.clone());
                    i
                }
            }
        };
        let layers = self.layer_dirs(&img.layers)?;
        Ok((layers, Key::base(Some(&img.id), &self.platform.to_string())))
    }

    /// Unpacked layer directories, bottom first; the empty layer for an image with none.
    fn layer_dirs(&self, layers: &[LayerRecord]) -> Result<Vec<PathBuf>, BuildError> {
        if layers.is_empty() {
            return Ok(vec![self.empty_layer()?]);
        }
        Ok(layers
            .iter()
            .map(|l| self.env.store.layer_dir(&l.diff_id))
            .collect())
    }

    fn empty_layer(&self) -> Result<PathBuf, BuildError> {
        let d: Digest = EMPTY_LAYER
            .parse()
            .map_err(|_| BuildError::Step("bad empty layer digest".into()))?;
        let dir = self.env.store.layer_dir(&d);
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(|source| BuildError::Io {
                what: "create",
                path: dir.clone(),
                source,
            })?;
        }
        Ok(dir)
    }

    /// Runs a filesystem step; returns its layer (None: no change).
    fn execute(
        &self,
        ins: &Instruction,
        state: &mut State,
        prepared: Prepared,
        id: StepId,
        started: Instant,
        location: &str,
    ) -> Result<Option<layer::CapturedLayer>, BuildError> {
        let lowers = self.layer_dirs(state.image.layers())?;
        let dirs = layer::scratch(self.env.store)?;
        match (&ins.kind, prepared) {
            (Kind::Run(r), Prepared::Run(args)) => {
                self.run_step(r, args, state, &lowers, &dirs, id, started, location, ins)?;
            }
            (Kind::Copy(c), Prepared::Copy(sources)) => {
                let opts = CopyOptions {
                    workdir: state.image.runtime().working_dir.clone(),
                    chown: c.chown.clone(),
                    chmod: c.chmod.clone(),
                    parents: c.parents,
                    source_date_epoch: self.layer_opts.source_date_epoch,
                    upper: None,
                };
                self.copy_step(&lowers, &dirs, sources, &c.dest, &opts, Unpack::NONE)?;
            }
            (Kind::Add(a), Prepared::Copy(sources)) => {
                let opts = CopyOptions {
                    workdir: state.image.runtime().working_dir.clone(),
                    chown: a.chown.clone(),
                    chmod: a.chmod.clone(),
                    parents: false,
                    source_date_epoch: self.layer_opts.source_date_epoch,
                    upper: None,
                };
                // As BuildKit: local archives are extracted unless `--unpack=false`, downloaded
                // ones only with `--unpack=true`.
                let unpack = Unpack {
                    local: a.unpack != Some(false),
                    downloaded: a.unpack == Some(true),
                };
                self.copy_step(&lowers, &dirs, sources, &a.dest, &opts, unpack)?;
            }
            (Kind::Workdir(_), Prepared::Workdir(wd)) => {
                state.image.config_mut().working_dir = wd.clone();
                if wd == "/" {
                    return Ok(None);
                }
                let user = state.image.runtime().user.clone();
                let epoch = self.layer_opts.source_date_epoch;
                let target = StepMount::new(self.env.store)?;
                with_overlays(
                    &[Overlay {
                        layers: &lowers,
                        upper: Some((&dirs.upper, &dirs.work)),
                        target: &target.0,
                    }],
                    |roots| {
                        let owner = if user.is_empty() {
                            None
                        } else {
                            Some(context::copy::resolve_chown(roots[0].as_fd(), &user)?)
                        };
                        mkdir_all(roots[0].as_fd(), &wd, owner, epoch)
                    },
                )?;
                return Ok(Some(layer::capture_always(
                    self.env.store,
                    dirs,
                    &self.layer_opts,
                )?));
            }
            _ => return Err(BuildError::Step("mismatched step".into())),
        }
        Ok(layer::capture(self.env.store, dirs, &self.layer_opts)?)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_step(
        &self,
        r: &dockerfile::Run,
        args: Vec<String>,
        state: &State,
        lowers: &[PathBuf],
        dirs: &layer::StepDirs,
        id: StepId,
        started: Instant,
        location: &str,
        ins: &Instruction,
    ) -> Result<(), BuildError> {
        if r.security == Some(dockerfile::Security::Insecure) {
            return Err(BuildError::Unsupported(
                "RUN --security=insecure (needs the security.insecure entitlement)".into(),
            ));
        }
        if !r.devices.is_empty() {
            return Err(BuildError::Unsupported("RUN --device (CDI devices)".into()));
        }
        let network = match r.network {
            Some(NetworkMode::None) => Network::None,
            Some(NetworkMode::Host) => {
                if self.req.network.as_deref() != Some("host") {
                    return Err(BuildError::Invalid(
                        "RUN --network=host needs the build's network to be host (network: host in compose, --network host)".into(),
                    ));
                }
                Network::Host
            }
            Some(NetworkMode::Default) | None => match self.req.network.as_deref() {
                Some("none") => Network::None,
                Some("host") => Network::Host,
                _ => Network::Default,
            },
        };
        let mut env = state.env_list();
        let mut mounts = Vec::new();
        let mut stubs: Vec<String> = vec![
            "/etc/hosts".into(),
            "/etc/resolv.conf".into(),
            "/etc/hostname".into(),
        ];
        let scratch = TempDir::new(self.env.store, "run")?;
        let mut locks = Vec::new();
        for (n, m) in r.mounts.iter().enumerate() {
            match m.kind {
                MountKind::Secret => {
                    let sid =
                        m.id.clone()
                            .or_else(|| {
                                m.target
                                    .as_ref()
                                    .and_then(|t| t.rsplit('/').next().map(str::to_string))
                            })
                            .unwrap_or_default();
                    let Some(content) = self.secrets.get(&sid) else {
                        if m.required {
                            return Err(BuildError::Invalid(format!(
                                "secret {sid} not found: give it with --secret id={sid},src=PATH or in the service's build.secrets"
                            )));
                        }
                        continue;
                    };
                    if let Some(var) = &m.env {
                        env.push(format!("{var}={}", String::from_utf8_lossy(content)));
                        if m.target.is_none() {
                            continue;
                        }
                    }
                    let target = m
                        .target
                        .clone()
                        .unwrap_or_else(|| format!("/run/secrets/{sid}"));
                    let file = scratch.0.join(format!("secret-{n}"));
                    write_private(&file, content, m.mode.unwrap_or(0o400), m.uid, m.gid)?;
                    stubs.push(target.clone());
                    mounts.push(MountRequest::Bind {
                        source: file,
                        target,
                        read_only: true,
                    });
                }
                MountKind::Cache => {
                    let target = m.target.clone().ok_or_else(|| {
                        BuildError::Invalid("a cache mount needs a target".into())
                    })?;
                    if m.from.is_some() {
                        return Err(BuildError::Unsupported(
                            "RUN --mount=type=cache,from=...".into(),
                        ));
                    }
                    let cid = m.id.clone().unwrap_or_else(|| target.clone());
                    let dir = cache_mount_dir(self.env.store, &cid, m)?;
                    if m.sharing != Some(Sharing::Shared) {
                        // `locked` waits for the other user; `private` is served the same way
                        // (one user at a time), which keeps its contents whole.
                        locks.push(lock_file(&dir.with_extension("lock"))?);
                    }
                    stubs.push(target.clone());
                    mounts.push(MountRequest::Bind {
                        source: dir,
                        target,
                        read_only: m.readonly,
                    });
                }
                MountKind::Tmpfs => {
                    let target = m.target.clone().ok_or_else(|| {
                        BuildError::Invalid("a tmpfs mount needs a target".into())
                    })?;
                    let mut options = Vec::new();
                    if let Some(size) = m.size {
                        options.push(format!("size={size}"));
                    }
                    stubs.push(target.clone());
                    mounts.push(MountRequest::Tmpfs(crate::runtime::spec::TmpfsMount {
                        target,
                        options,
                    }));
                }
                MountKind::Bind => {
                    let target = m
                        .target
                        .clone()
                        .ok_or_else(|| BuildError::Invalid("a bind mount needs a target".into()))?;
                    let src = m.source.clone().unwrap_or_else(|| ".".into());
                    // A copy of the source, private to this step: the context as the build
                    // sees it (.dockerignore applied), writes thrown away as BuildKit's, and a
                    // stage's or image's files without mounting them where the step runs.
                    let source = self.bind_copy(m, &src, &scratch.0.join(format!("bind-{n}")))?;
                    stubs.push(target.clone());
                    mounts.push(MountRequest::Bind {
                        source,
                        target,
                        read_only: m.readonly,
                    });
                }
                MountKind::Ssh => {
                    let sid = m.id.clone().unwrap_or_else(|| "default".into());
                    let Some(socket) = self.req.ssh.get(&sid) else {
                        if m.required {
                            return Err(BuildError::Invalid(format!(
                                "ssh agent {sid} not given: use --ssh {sid}=SOCKET (or build.ssh in compose)"
                            )));
                        }
                        continue;
                    };
                    let target = m
                        .target
                        .clone()
                        .unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{n}"));
                    // As BuildKit: the agent's socket for this step only, and SSH_AUTH_SOCK
                    // naming it.
                    env.push(format!("SSH_AUTH_SOCK={target}"));
                    stubs.push(target.clone());
                    mounts.push(MountRequest::Bind {
                        source: socket.clone(),
                        target,
                        read_only: false,
                    });
                }
            }
        }
        // A heredoc script with a shebang runs as a file, as in BuildKit.
        if let [only] = r.heredocs.as_slice() {
            if let CommandLine::Shell(cmd) = &r.command {
                if is_bare_heredoc(cmd) && only.body().starts_with("#!") {
                    if !crate::paths::is_component(&only.name) {
                        return Err(BuildError::Invalid(format!(
                            "heredoc name {:?} is not a file name",
                            only.name
                        )));
                    }
                    let file = scratch.0.join("heredoc-script");
                    write_private(&file, only.body().as_bytes(), 0o755, None, None)?;
                    mounts.push(MountRequest::Bind {
                        source: file,
                        target: format!("/dev/pipes/{}", only.name),
                        read_only: true,
                    });
                }
            }
        }
        let step = RunStep {
            layers: lowers.to_vec(),
            args,
            env,
            cwd: {
                let wd = &state.image.runtime().working_dir;
                if wd.is_empty() {
                    "/".into()
                } else {
                    wd.clone()
                }
            },
            user: state.image.runtime().user.clone(),
            network,
            extra_hosts: self.req.extra_hosts.clone(),
            shm_size: self.req.shm_size,
            ulimits: self.req.ulimits.clone(),
            privileged: self.req.privileged,
            mounts,
            resolv_conf: None,
        };
        let net = match network {
            Network::Default => Some(self.network()?),
            _ => None,
        };
        let mut step = step;
        step.resolv_conf = net.as_ref().map(|n| n.resolv_conf.clone());
        let progress = self.env.progress;
        let mut on_line = |l: &str| progress.line(id, started.elapsed(), l);
        let mut attached = Vec::new();
        let mut on_started = |pid: i32| {
            if let Some(n) = &net {
                attached = n.attach(pid)?;
            }
            Ok(())
        };
        let finished = run::run(
            &step,
            dirs.base(),
            self.env.helper,
            &mut on_started,
            &mut on_line,
        );
        if let Some(n) = &net {
            n.release(&attached);
        }
        let finished = finished?;
        if self.env.cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(BuildError::Interrupted);
        }
        drop(locks);
        remove_stubs(&dirs.upper, lowers, &stubs);
        let code = finished.status.docker_code();
        if code != 0 {
            return Err(BuildError::StepFailed {
                location: location.to_string(),
                instruction: ins.original.clone(),
                code,
                tail: finished.tail,
            });
        }
        Ok(())
    }

    /// A copy of a bind mount's source (from the context, or from a stage or image mounted
    /// read-only for the copy) in `dir`; returns what to bind: the directory, or the file.
    fn bind_copy(&self, m: &RunMount, src: &str, dir: &Path) -> Result<PathBuf, BuildError> {
        fs::create_dir_all(dir).map_err(|source| BuildError::Io {
            what: "create",
            path: dir.to_path_buf(),
            source,
        })?;
        let root = inroot::open_root(dir).map_err(|source| BuildError::Io {
            what: "open",
            path: dir.to_path_buf(),
            source,
        })?;
        let opts = CopyOptions {
            workdir: "/".into(),
            ..CopyOptions::default()
        };
        let copy = |ctx: &Context| -> Result<(bool, Vec<u8>), BuildError> {
            let srcs = ctx.resolve(&[src.to_string()], &[])?;
            let first = srcs
                .first()
                .ok_or_else(|| BuildError::Invalid(format!("bind mount source {src} not found")))?;
            let kind = (first.is_dir(), first.name.clone());
            context::copy_into(root.as_fd(), &srcs, "/", &opts)?;
            Ok(kind)
        };
        let (is_dir, name) = match &m.from {
            None => copy(&self.context)?,
            Some(from) => {
                let (layers, _) = self.source_layers(from)?;
                let mnt = StepMount::new(self.env.store)?;
                with_overlays(
                    &[Overlay {
                        layers: &layers,
                        upper: None,
                        target: &mnt.0,
                    }],
                    |_| copy(&Context::open_dir_without_ignore(&mnt.0)?),
                )?
            }
        };
        if is_dir {
            Ok(dir.to_path_buf())
        } else {
            use std::os::unix::ffi::OsStrExt;
            Ok(dir.join(std::ffi::OsStr::from_bytes(&name)))
        }
    }

    fn copy_step(
        &self,
        lowers: &[PathBuf],
        dirs: &layer::StepDirs,
        sources: CopySources,
        dest: &str,
        opts: &CopyOptions,
        unpack: Unpack,
    ) -> Result<(), BuildError> {
        let target = StepMount::new(self.env.store)?;
        let opts = &CopyOptions {
            upper: Some(dirs.upper.clone()),
            ..opts.clone()
        };
        match &sources.stage {
            None => {
                let srcs = sources.sources;
                let remote = sources.remote;
                with_overlays(
                    &[Overlay {
                        layers: lowers,
                        upper: Some((&dirs.upper, &dirs.work)),
                        target: &target.0,
                    }],
                    |roots| {
                        if !srcs.is_empty() {
                            copy_all(roots[0].as_fd(), &srcs, dest, opts, unpack.local)?;
                        }
                        if !remote.is_empty() {
                            copy_all(roots[0].as_fd(), &remote, dest, opts, unpack.downloaded)?;
                        }
                        Ok(())
                    },
                )
            }
            Some(tree) => {
                let from = StepMount::new(self.env.store)?;
                with_overlays(
                    &[
                        Overlay {
                            layers: lowers,
                            upper: Some((&dirs.upper, &dirs.work)),
                            target: &target.0,
                        },
                        Overlay {
                            layers: &tree.layers,
                            upper: None,
                            target: &from.0,
                        },
                    ],
                    |roots| {
                        let ctx = Context::open_dir_without_ignore(&from.0)?;
                        let srcs = ctx.resolve_with(&tree.sources, &tree.excludes, tree.parents)?;
                        copy_all(roots[0].as_fd(), &srcs, dest, opts, false)
                    },
                )
            }
        }
    }
}

/// Which of an ADD's sources are extracted when they are archives.
#[derive(Debug, Clone, Copy)]
struct Unpack {
    /// From the context (or heredocs).
    local: bool,
    /// Downloaded (`ADD https://…`); a git repository's tree never is.
    downloaded: bool,
}

impl Unpack {
    /// COPY's: nothing.
    const NONE: Unpack = Unpack {
        local: false,
        downloaded: false,
    };
}

fn copy_all(
    root: BorrowedFd<'_>,
    sources: &[Source],
    dest: &str,
    opts: &CopyOptions,
    unpack: bool,
) -> Result<(), BuildError> {
    if unpack {
        // ADD: local archives are extracted, other sources copied.
        let mut plain = Vec::new();
        for s in sources {
            if !s.is_dir() && context::is_archive(s)? {
                context::extract_archive_into(root, s, dest, opts)?;
            } else {
                plain.push(s.clone());
            }
        }
        if !plain.is_empty() {
            context::copy_into(root, &plain, dest, opts)?;
        }
        return Ok(());
    }
    context::copy_into(root, sources, dest, opts)?;
    Ok(())
}

/// What `key_of` resolved for `execute`.
enum Prepared {
    Run(Vec<String>),
    Copy(CopySources),
    Workdir(String),
}

struct CopySources {
    sources: Vec<Source>,
    /// `ADD https://…` files, downloaded: copied, never extracted.
    remote: Vec<Source>,
    _remote_tmp: Option<TempDir>,
    /// `COPY --from` a stage or image: resolved once its tree is mounted.
    stage: Option<FromTree>,
    _tmp: Option<TempDir>,
}

struct FromTree {
    layers: Vec<PathBuf>,
    sources: Vec<String>,
    excludes: Vec<String>,
    parents: bool,
}

/// A scratch directory in the store's tmp, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(store: &Store, kind: &str) -> Result<TempDir, BuildError> {
        let p = store.temp_path(kind);
        fs::create_dir_all(&p).map_err(|source| BuildError::Io {
            what: "create",
            path: p.clone(),
            source,
        })?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// An empty directory to mount a step's root on (in a private namespace, see `mount`).
struct StepMount(PathBuf);

impl StepMount {
    fn new(store: &Store) -> Result<StepMount, BuildError> {
        let p = store.temp_path("mnt");
        fs::create_dir_all(&p).map_err(|source| BuildError::Io {
            what: "create",
            path: p.clone(),
            source,
        })?;
        Ok(StepMount(p))
    }
}

impl Drop for StepMount {
    fn drop(&mut self) {
        // Only ever mounted in a thread's own namespace: here it is an empty directory.
        let _ = fs::remove_dir(&self.0);
    }
}

fn shell_of(state: &State) -> Vec<String> {
    let sh = &state.image.runtime().shell;
    if sh.is_empty() {
        vec!["/bin/sh".into(), "-c".into()]
    } else {
        sh.clone()
    }
}

/// `RUN <<EOF` alone (the heredoc is the whole command).
fn is_bare_heredoc(cmd: &str) -> bool {
    let c = cmd.trim();
    c.starts_with("<<") && !c.contains(char::is_whitespace)
}

/// BuildKit's `runCommandString`: `|N K=V... args...` when build args are in scope.
fn run_command_string(
    args: &[String],
    build_args: &[(String, Option<String>)],
    state: &State,
) -> String {
    let mut parts: Vec<String> = Vec::new();
    for (k, v) in build_args {
        let value = state.lookup(k).or_else(|| v.clone()).unwrap_or_default();
        parts.push(format!("{k}={value}"));
    }
    if !parts.is_empty() {
        parts.insert(0, format!("|{}", parts.len()));
    }
    parts.extend(args.iter().cloned());
    parts.join(" ")
}

fn copy_history(
    what: &str,
    parents: bool,
    chown: &Option<String>,
    chmod: &Option<String>,
    sources: &[String],
    heredocs: &[Heredoc],
    dest: &str,
) -> String {
    let mut s = String::from(what);
    if parents {
        s.push_str(" --parents");
    }
    if let Some(c) = chown {
        s.push_str(&format!(" --chown={c}"));
    }
    if let Some(c) = chmod {
        s.push_str(&format!(" --chmod={c}"));
    }
    for src in sources {
        s.push(' ');
        s.push_str(src);
    }
    for d in heredocs {
        s.push_str(&format!(" <<{}", d.name));
    }
    s.push(' ');
    s.push_str(dest);
    s.push_str(" # buildkit");
    s
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quoted_list(args: &[String]) -> String {
    let quoted: Vec<String> = args
        .iter()
        .map(|a| serde_json::to_string(a).unwrap_or_default())
        .collect();
    format!("[{}]", quoted.join(" "))
}

fn nanos(d: Option<std::time::Duration>) -> i64 {
    d.map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Go's `time.Duration` String for whole seconds and minutes (what HEALTHCHECK flags give).
fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let d = std::time::Duration::from_nanos(ns.unsigned_abs());
    let secs = d.as_secs();
    let frac = d.subsec_nanos();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if frac == 0 {
        out.push_str(&format!("{s}s"));
    } else if secs == 0 && frac.is_multiple_of(1_000_000) {
        return format!("{}ms", frac / 1_000_000);
    } else {
        let f = format!("{:09}", frac);
        out.push_str(&format!("{s}.{}s", f.trim_end_matches('0')));
    }
    out
}

/// `WORKDIR`: relative to the current one, cleaned.
fn normalize_workdir(current: &str, p: &str) -> String {
    let joined = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("{}/{p}", if current.is_empty() { "/" } else { current })
    };
    crate::paths::container_path(&joined).unwrap_or_else(|| "/".into())
}

fn is_predefined(k: &str) -> bool {
    matches!(
        k,
        "HTTP_PROXY"
            | "http_proxy"
            | "HTTPS_PROXY"
            | "https_proxy"
            | "FTP_PROXY"
            | "ftp_proxy"
            | "NO_PROXY"
            | "no_proxy"
            | "ALL_PROXY"
            | "all_proxy"
            | "SOURCE_DATE_EPOCH"
    )
}

/// `mkdir -p` inside `root`, each created directory 0755 and owned by `owner`; never through
/// a link out of the root.
fn mkdir_all(
    root: BorrowedFd<'_>,
    path: &str,
    owner: Option<(u32, u32)>,
    epoch: Option<i64>,
) -> Result<(), BuildError> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    let mut cur = String::new();
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        cur.push('/');
        cur.push_str(comp);
        let p = Path::new(&cur);
        match inroot::open(root, p, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()) {
            Ok(_) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(source) => {
                return Err(BuildError::Io {
                    what: "open",
                    path: p.to_path_buf(),
                    source,
                })
            }
        }
        let parent = Path::new(&cur).parent().unwrap_or(Path::new("/"));
        let pfd = inroot::open(
            root,
            parent,
            OFlag::O_DIRECTORY | OFlag::O_RDONLY,
            Mode::empty(),
        )
        .map_err(|source| BuildError::Io {
            what: "open",
            path: parent.to_path_buf(),
            source,
        })?;
        nix::sys::stat::mkdirat(pfd.as_fd(), comp, Mode::from_bits_truncate(0o755)).map_err(
            |e| BuildError::Io {
                what: "create directory",
                path: p.to_path_buf(),
                source: e.into(),
            },
        )?;
        let dfd = nix::fcntl::openat(
            pfd.as_fd(),
            comp,
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY,
            Mode::empty(),
        )
        .map_err(|e| BuildError::Io {
            what: "open",
            path: p.to_path_buf(),
            source: e.into(),
        })?;
        // The umask does not decide an image's modes.
        let _ = nix::sys::stat::fchmod(dfd.as_fd(), Mode::from_bits_truncate(0o755));
        if let Some((uid, gid)) = owner {
            nix::unistd::fchown(
                dfd.as_fd(),
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .map_err(|e| BuildError::Io {
                what: "chown",
                path: p.to_path_buf(),
                source: e.into(),
            })?;
        }
        if let Some(t) = epoch {
            let ts = nix::sys::time::TimeSpec::new(t, 0);
            let _ = nix::sys::stat::futimens(dfd.as_fd(), &ts, &ts);
        }
    }
    Ok(())
}

/// A file only root can read, for a secret or a script mounted into one step.
fn write_private(
    path: &Path,
    content: &[u8],
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<(), BuildError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| BuildError::Io {
        what: "write",
        path: path.to_path_buf(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(content).map_err(io)?;
    nix::unistd::fchown(
        f.as_fd(),
        Some(nix::unistd::Uid::from_raw(uid.unwrap_or(0))),
        Some(nix::unistd::Gid::from_raw(gid.unwrap_or(0))),
    )
    .map_err(|e| io(e.into()))?;
    nix::sys::stat::fchmod(f.as_fd(), nix::sys::stat::Mode::from_bits_truncate(mode))
        .map_err(|e| io(e.into()))?;
    Ok(())
}

/// The directory of cache mount `id` (kept in the store across builds).
fn cache_mount_dir(store: &Store, id: &str, m: &RunMount) -> Result<PathBuf, BuildError> {
    let dir = super::cache::dir_of(store)
        .join("mounts")
        .join(Digest::of(id.as_bytes()).hex());
    if !dir.is_dir() {
        fs::create_dir_all(&dir).map_err(|source| BuildError::Io {
            what: "create",
            path: dir.clone(),
            source,
        })?;
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(m.mode.unwrap_or(0o755)));
        let _ = nix::unistd::chown(
            &dir,
            Some(nix::unistd::Uid::from_raw(m.uid.unwrap_or(0))),
            Some(nix::unistd::Gid::from_raw(m.gid.unwrap_or(0))),
        );
    }
    Ok(dir)
}

fn lock_file(path: &Path) -> Result<nix::fcntl::Flock<fs::File>, BuildError> {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| BuildError::Io {
            what: "open",
            path: path.to_path_buf(),
            source,
        })?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
        BuildError::Io {
            what: "lock",
            path: path.to_path_buf(),
            source: e.into(),
        }
    })
}

/// Mount points the runtime had to create for a step (managed files, mounts) are not part of
/// its change: removed from the upper directory unless a lower layer has them, as BuildKit
/// removes its mount stubs. Their parents created only for them go too.
fn remove_stubs(upper: &Path, lowers: &[PathBuf], stubs: &[String]) {
    let in_lowers = |rel: &str| {
        lowers
            .iter()
            .any(|l| fs::symlink_metadata(l.join(rel)).is_ok())
    };
    let mut parents = BTreeSet::new();
    for stub in stubs {
        let rel = stub.trim_start_matches('/');
        if rel.is_empty() || in_lowers(rel) {
            continue;
        }
        let p = upper.join(rel);
        if let Ok(md) = fs::symlink_metadata(&p) {
            let removed = if md.is_dir() {
                fs::remove_dir(&p).is_ok()
            } else if md.is_file() && md.len() == 0 {
                fs::remove_file(&p).is_ok()
            } else {
                false
            };
            if removed {
                let mut parent = Path::new(rel).parent();
                while let Some(pp) = parent.filter(|pp| !pp.as_os_str().is_empty()) {
                    parents.insert(pp.to_path_buf());
                    parent = pp.parent();
                }
            }
        }
    }
    // Deepest first; only empty ones that no lower layer has.
    for p in parents.iter().rev() {
        if !in_lowers(&p.to_string_lossy()) {
            let _ = fs::remove_dir(upper.join(p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dockerfile_is_read_only_up_to_what_the_parser_takes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Dockerfile");
        let huge = dockerfile::limits::MAX_SOURCE + 4096;
        // A two-byte character across the cut: still "too large", not "not UTF-8".
        std::fs::write(
            &path,
            "#".repeat(dockerfile::limits::MAX_SOURCE) + &"é".repeat(huge),
        )
        .unwrap();
        let (text, _) = read_file(&path).unwrap();
        assert!(text.len() > dockerfile::limits::MAX_SOURCE);
        let e = dockerfile::parse(&text, &path).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    }

    #[test]
    fn go_formats() {
        assert_eq!(
            go_quoted_list(&["a b".into(), "c\"".into()]),
            "[\"a b\" \"c\\\"\"]"
        );
        assert_eq!(go_duration(30_000_000_000), "30s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(500_000_000), "500ms");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
    }

    #[test]
    fn workdirs_are_relative_to_the_current_one() {
        assert_eq!(normalize_workdir("/app", "src"), "/app/src");
        assert_eq!(normalize_workdir("", "src"), "/src");
        assert_eq!(normalize_workdir("/app", "/x/../y"), "/y");
    }

    #[test]
    fn run_history_shows_build_args() {
        let state = State {
            image: ImageBuilder::from_base(
                &Store::open(tempfile::tempdir().unwrap().path()).unwrap(),
                None,
            )
            .unwrap(),
            env: vec![("A".into(), "1".into())],
            args: vec![("A".into(), Some("1".into())), ("B".into(), None)],
            cmd_set: false,
        };
        assert_eq!(
            run_command_string(
                &["/bin/sh".into(), "-c".into(), "make".into()],
                &state.args,
                &state
            ),
            "|2 A=1 B= /bin/sh -c make"
        );
        assert!(is_bare_heredoc("<<EOF"));
        assert!(!is_bare_heredoc("python3 <<EOF"));
    }
}
