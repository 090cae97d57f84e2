//! The per-project supervisor: it owns the project's containers (one task each, see `task`),
//! starts them in dependency order gated on their conditions, restarts them by policy, runs
//! their healthchecks, captures their logs, stops them in reverse order, and records
//! everything in the project's state so a later command (or a new supervisor after a crash)
//! can undo it.
//!
//! The engine runs inside `rcompose up` (attached) or in a detached `rcompose` process
//! (`up -d`); both serve the control socket (`server`), which the other commands use
//! (`client`).

pub mod client;
pub mod health;
mod logshim;
pub mod proto;
pub mod restart;
pub mod server;
pub mod state;
mod task;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};
use tokio::sync::{broadcast, mpsc, watch, Notify};

use self::health::Check;
use self::logshim::{LogWriter, Stream};
use self::proto::{Event, Progress, Reply, Selection, UpOptions};
use self::restart::Policy;
use self::state::{ContainerRecord, Health, ProjectLock, ProjectState, Status};
use self::task::{Handle, Setup};
use crate::compose::model::{Project, ServiceConfig};
use crate::image::store::{ImageRecord, Store};
use crate::plan::graph::ServiceGraph;
use crate::runtime::container::{Container, Options};
use crate::runtime::spec::{self, HostLimits};

/// Output of a container, for attached clients.
#[derive(Debug, Clone)]
pub struct LogChunk {
    pub container: String,
    pub service: String,
    pub stream: Stream,
    pub bytes: Vec<u8>,
}

/// What the engine and its container tasks share.
pub struct Shared {
    pub project: String,
    pub helper: PathBuf,
    pub events: broadcast::Sender<Event>,
    pub logs: broadcast::Sender<LogChunk>,
    /// Signalled when the state changed and must be written.
    pub dirty: Notify,
    containers: Mutex<Vec<Arc<Handle>>>,
    meta: Mutex<Meta>,
    gone: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct Meta {
    working_dir: PathBuf,
    config_files: Vec<PathBuf>,
    networks: serde_json::Value,
    volumes: Vec<String>,
}

/// Where the output of a command goes (the control socket, or the attached CLI).
pub type Out = mpsc::UnboundedSender<Reply>;

fn progress(out: &Out, kind: &str, name: &str, status: &str, done: bool) {
    let _ = out.send(Reply::Progress(Progress {
        kind: kind.into(),
        name: name.into(),
        status: status.into(),
        done,
        error: false,
    }));
}

fn progress_error(out: &Out, kind: &str, name: &str, status: &str) {
    let _ = out.send(Reply::Progress(Progress {
        kind: kind.into(),
        name: name.into(),
        status: status.into(),
        done: true,
        error: true,
    }));
}

impl Shared {
    /// Plugs a container's new network namespace in before its command runs.
    async fn network_attach(&self, _record: &ContainerRecord, _pid: i32) -> Result<(), String> {
        Ok(())
    }

    fn handles(&self) -> Vec<Arc<Handle>> {
        self.containers
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    fn add(&self, h: Handle) -> Arc<Handle> {
        let h = Arc::new(h);
        if let Ok(mut c) = self.containers.lock() {
            c.push(h.clone());
        }
        h
    }

    fn forget(&self, name: &str) {
        if let Ok(mut c) = self.containers.lock() {
            c.retain(|h| h.record.borrow().name != name);
        }
    }

    /// The state as it is now.
    pub fn snapshot(&self) -> ProjectState {
        let meta = self.meta.lock();
        let (working_dir, config_files, networks, volumes) = match &meta {
            Ok(m) => (
                m.working_dir.clone(),
                m.config_files.clone(),
                m.networks.clone(),
                m.volumes.clone(),
            ),
            Err(_) => Default::default(),
        };
        drop(meta);
        ProjectState {
            project: self.project.clone(),
            working_dir,
            config_files,
            networks,
            volumes,
            containers: self.handles().iter().map(|h| h.snapshot()).collect(),
        }
    }

    /// Writes the state, unless `down` removed the project.
    pub fn save(&self) -> Result<(), String> {
        if self.is_gone() {
            return Ok(());
        }
        self.snapshot().save().map_err(|e| e.to_string())
    }

    /// Whether `down` removed the project.
    pub fn is_gone(&self) -> bool {
        self.gone.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether some container runs or will run again (a pending restart).
    pub fn is_active(&self) -> bool {
        self.handles()
            .iter()
            .any(|h| h.record.borrow().status.is_active())
    }
}

/// The supervisor's engine for one project.
pub struct Engine {
    shared: Arc<Shared>,
    /// One mutating command at a time (as docker compose serialises on its project).
    op: tokio::sync::Mutex<()>,
    _lock: ProjectLock,
}

impl Engine {
    /// Takes over the project: its recorded containers get tasks again. Processes left by a
    /// supervisor that died are killed (their output and exit status went with it); with
    /// `restart_adopted`, those whose policy says so start again, as docker does when its
    /// daemon restarts.
    pub fn open(project: &str, lock: ProjectLock) -> Result<Engine, String> {
        let helper = std::fs::read_link("/proc/self/exe")
            .map_err(|e| format!("cannot find the rcompose binary: {e}"))?;
        let (events, _) = broadcast::channel(1024);
        let (logs, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            project: project.to_string(),
            helper,
            events,
            logs,
            dirty: Notify::new(),
            containers: Mutex::new(Vec::new()),
            meta: Mutex::new(Meta::default()),
            gone: Default::default(),
        });
        let state = ProjectState::load(project).map_err(|e| e.to_string())?;
        if let Some(state) = state {
            if let Ok(mut m) = shared.meta.lock() {
                m.working_dir = state.working_dir.clone();
                m.config_files = state.config_files.clone();
                m.networks = state.networks.clone();
                m.volumes = state.volumes.clone();
            }
            for mut record in state.containers {
                let dir = state::container_dir(&record.id);
                let Ok(container) = Container::load(&dir) else {
                    // Its directory is gone: nothing left to run or remove.
                    continue;
                };
                if record.status.is_active() {
                    let _ = container.kill_all();
                    record.status = Status::Exited;
                    record.exit_code = record.exit_code.or(Some(137));
                    record.pid = None;
                    record.health = None;
                    record.finished_at = Some(SystemTime::now());
                }
                let setup = setup_for(container, record);
                shared.add(task::spawn(shared.clone(), setup));
            }
        }
        let engine = Engine {
            shared: shared.clone(),
            op: tokio::sync::Mutex::new(()),
            _lock: lock,
        };
        // The state writer: coalesces changes into one write each.
        let writer = Arc::downgrade(&shared);
        tokio::spawn(async move {
            loop {
                let Some(s) = writer.upgrade() else { return };
                s.dirty.notified().await;
                drop(s);
                let Some(s) = writer.upgrade() else { return };
                let _ = s.save();
            }
        });
        Ok(engine)
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Starts again the adopted containers whose restart policy brings them back.
    pub async fn restart_adopted(&self) {
        for h in self.shared.handles() {
            let r = h.snapshot();
            if r.exit_code == Some(137)
                && r.runtime.policy.restarts_on_adopt(r.stopped_by_user)
                && r.started_at.is_some()
            {
                let _ = h.start().await;
            }
        }
    }

    /// Runs one request, sending its output to `out`. The error is also what `Done` carries.
    pub async fn handle(&self, req: proto::Request, out: &Out) -> Result<(), String> {
        use proto::Request as R;
        let _op = self.op.lock().await;
        let r = match req {
            R::Up {
                project,
                working_dir,
                config_files,
                options,
            } => {
                self.up(Arc::new(*project), working_dir, config_files, options, out)
                    .await
            }
            R::Start(sel) => self.start(&sel, out).await,
            R::Stop { selection, timeout } => {
                self.stop(&selection, timeout.map(Duration::from_secs), out)
                    .await
            }
            R::Restart { selection, timeout } => {
                self.stop(&selection, timeout.map(Duration::from_secs), out)
                    .await?;
                self.start(&selection, out).await
            }
            R::Kill { selection, signal } => self.kill(&selection, signal, out).await,
            R::Pause(sel) => self.pause(&sel, true, out).await,
            R::Unpause(sel) => self.pause(&sel, false, out).await,
            R::Remove {
                selection,
                stop,
                volumes,
            } => self.remove(&selection, stop, volumes, out).await,
            R::Down {
                timeout,
                volumes,
                remove_orphans,
                services,
            } => {
                self.down(
                    timeout.map(Duration::from_secs),
                    volumes,
                    remove_orphans,
                    services,
                    out,
                )
                .await
            }
            R::Attach { .. } => Ok(()),
        };
        let _ = self.shared.save();
        r
    }

    fn select(&self, sel: &Selection) -> Vec<Arc<Handle>> {
        self.shared
            .handles()
            .into_iter()
            .filter(|h| {
                let r = h.record.borrow();
                !r.oneoff
                    && (sel.services.is_empty() || sel.services.contains(&r.service))
                    && sel.index.is_none_or(|i| i == r.number)
            })
            .collect()
    }

    /// The services of the selected containers with their dependencies among them, from the
    /// dependency labels recorded at creation.
    fn service_graph(handles: &[Arc<Handle>]) -> HashMap<String, Vec<String>> {
        let mut deps: HashMap<String, Vec<String>> = HashMap::new();
        for h in handles {
            let r = h.record.borrow();
            deps.entry(r.service.clone())
                .or_default()
                .extend(r.runtime.depends_on.iter().map(|d| d.service.clone()));
        }
        deps
    }

    async fn start(&self, sel: &Selection, out: &Out) -> Result<(), String> {
        let handles = self.select(sel);
        let deps = Self::service_graph(&handles);
        let services: Vec<String> = deps.keys().cloned().collect();
        let results = walk(
            services,
            |s| deps.get(s).cloned().unwrap_or_default(),
            |svc, _failed| {
                let handles: Vec<_> = handles
                    .iter()
                    .filter(|h| h.record.borrow().service == svc)
                    .cloned()
                    .collect();
                async move {
                    for h in handles {
                        let r = h.snapshot();
                        if r.status.is_active() {
                            continue;
                        }
                        progress(out, "Container", &r.name, "Starting", false);
                        if let Err(e) = h.start().await {
                            progress_error(out, "Container", &r.name, "Error");
                            return Err(e);
                        }
                        progress(out, "Container", &r.name, "Started", true);
                    }
                    Ok(())
                }
            },
        )
        .await;
        first_error(results)
    }

    async fn stop(
        &self,
        sel: &Selection,
        timeout: Option<Duration>,
        out: &Out,
    ) -> Result<(), String> {
        let handles = self.select(sel);
        self.stop_handles(&handles, timeout, out).await;
        Ok(())
    }

    /// Stops containers in reverse dependency order (dependents first), in parallel otherwise.
    async fn stop_handles(&self, handles: &[Arc<Handle>], timeout: Option<Duration>, out: &Out) {
        let deps = Self::service_graph(handles);
        let mut dependents: HashMap<String, Vec<String>> = HashMap::new();
        for (svc, ds) in &deps {
            for d in ds {
                dependents.entry(d.clone()).or_default().push(svc.clone());
            }
        }
        let services: Vec<String> = deps.keys().cloned().collect();
        walk(
            services,
            |s| dependents.get(s).cloned().unwrap_or_default(),
            |svc, _| {
                let handles: Vec<_> = handles
                    .iter()
                    .filter(|h| h.record.borrow().service == svc)
                    .cloned()
                    .collect();
                async move {
                    let stops = handles.into_iter().map(|h| async move {
                        let r = h.snapshot();
                        if !r.status.is_active() {
                            return;
                        }
                        progress(out, "Container", &r.name, "Stopping", false);
                        let t = timeout.or(Some(r.runtime.stop_grace));
                        h.stop(t).await;
                        progress(out, "Container", &r.name, "Stopped", true);
                    });
                    futures_util::future::join_all(stops).await;
                    Ok(())
                }
            },
        )
        .await;
    }

    async fn kill(&self, sel: &Selection, signal: i32, out: &Out) -> Result<(), String> {
        let mut errors = Vec::new();
        for h in self.select(sel) {
            let r = h.snapshot();
            if !r.status.is_active() {
                continue;
            }
            progress(out, "Container", &r.name, "Killing", false);
            match h.kill(signal).await {
                Ok(()) => progress(out, "Container", &r.name, "Killed", true),
                Err(e) => {
                    progress_error(out, "Container", &r.name, "Error");
                    errors.push(format!("cannot kill container {}: {e}", r.name));
                }
            }
        }
        join_errors(errors)
    }

    async fn pause(&self, sel: &Selection, on: bool, out: &Out) -> Result<(), String> {
        let (doing, done) = if on {
            ("Pausing", "Paused")
        } else {
            ("Unpausing", "Unpaused")
        };
        let mut errors = Vec::new();
        for h in self.select(sel) {
            let r = h.snapshot();
            let applies = if on {
                r.status == Status::Running
            } else {
                r.status == Status::Paused
            };
            if !applies {
                continue;
            }
            progress(out, "Container", &r.name, doing, false);
            match h.pause(on).await {
                Ok(()) => progress(out, "Container", &r.name, done, true),
                Err(e) => {
                    progress_error(out, "Container", &r.name, "Error");
                    errors.push(format!("container {}: {e}", r.name));
                }
            }
        }
        join_errors(errors)
    }

    async fn remove(
        &self,
        sel: &Selection,
        stop: bool,
        volumes: bool,
        out: &Out,
    ) -> Result<(), String> {
        let handles = self.select(sel);
        if stop {
            self.stop_handles(&handles, None, out).await;
        }
        let mut errors = Vec::new();
        for h in handles {
            let r = h.snapshot();
            if r.status.is_active() {
                continue;
            }
            if let Err(e) = self.remove_one(&h, volumes, out).await {
                errors.push(e);
            }
        }
        join_errors(errors)
    }

    async fn remove_one(&self, h: &Arc<Handle>, volumes: bool, out: &Out) -> Result<(), String> {
        let r = h.snapshot();
        progress(out, "Container", &r.name, "Removing", false);
        match h.remove(volumes).await {
            Ok(()) => {
                self.shared.forget(&r.name);
                self.shared.dirty.notify_one();
                progress(out, "Container", &r.name, "Removed", true);
                Ok(())
            }
            Err(e) => {
                progress_error(out, "Container", &r.name, "Error");
                Err(format!("cannot remove container {}: {e}", r.name))
            }
        }
    }

    /// `down`: stop and remove every container (of the model's services, plus orphans when
    /// asked, or all when the model is unknown), the networks, and with `volumes` the named
    /// volumes; then the state itself.
    async fn down(
        &self,
        timeout: Option<Duration>,
        volumes: bool,
        remove_orphans: bool,
        services: Option<Vec<String>>,
        out: &Out,
    ) -> Result<(), String> {
        let all = self.shared.handles();
        let (handles, orphans): (Vec<_>, Vec<_>) = match &services {
            Some(s) if !remove_orphans => all
                .into_iter()
                .partition(|h| s.contains(&h.record.borrow().service)),
            _ => (all, Vec::new()),
        };
        if !orphans.is_empty() {
            let names: Vec<String> = orphans.iter().map(|h| h.name()).collect();
            let _ = out.send(Reply::Warning(format!(
                "Found orphan containers ({}) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.",
                names.join(", ")
            )));
        }
        self.stop_handles(&handles, timeout, out).await;
        let mut errors = Vec::new();
        for h in &handles {
            if let Err(e) = self.remove_one(h, true, out).await {
                errors.push(e);
            }
        }
        if let Err(e) = self.remove_networks(out).await {
            errors.push(e);
        }
        if volumes {
            let names = self
                .shared
                .meta
                .lock()
                .map(|m| m.volumes.clone())
                .unwrap_or_default();
            for name in names {
                progress(out, "Volume", &name, "Removing", false);
                match state::remove_path(&state::volume_dir(&name)) {
                    Ok(()) => {
                        if let Ok(mut m) = self.shared.meta.lock() {
                            m.volumes.retain(|v| *v != name);
                        }
                        progress(out, "Volume", &name, "Removed", true);
                    }
                    Err(e) => {
                        progress_error(out, "Volume", &name, "Error");
                        errors.push(format!("cannot remove volume {name}: {e}"));
                    }
                }
            }
        }
        if errors.is_empty() && self.shared.handles().is_empty() {
            let keep_volumes = self
                .shared
                .meta
                .lock()
                .map(|m| !m.volumes.is_empty())
                .unwrap_or(false);
            if !keep_volumes {
                self.shared
                    .gone
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                ProjectState::remove(&self.shared.project).map_err(|e| e.to_string())?;
                return Ok(());
            }
        }
        self.shared.save()?;
        join_errors(errors)
    }

    async fn remove_networks(&self, _out: &Out) -> Result<(), String> {
        Ok(())
    }

    /// `up`: converge the project on the model.
    async fn up(
        &self,
        project: Arc<Project>,
        working_dir: PathBuf,
        config_files: Vec<PathBuf>,
        opts: UpOptions,
        out: &Out,
    ) -> Result<(), String> {
        if let Ok(mut m) = self.shared.meta.lock() {
            m.working_dir = working_dir.clone();
            m.config_files = config_files;
        }
        let graph = ServiceGraph::new(
            project
                .services
                .iter()
                .map(|(n, s)| (n.as_str(), s.dependencies())),
        );
        if let Some(cycle) = graph.find_cycle() {
            return Err(format!("dependency cycle detected: {}", cycle.join(" -> ")));
        }
        for s in &opts.services {
            if !project.services.contains_key(s) {
                return Err(format!("no such service: {s}"));
            }
        }
        let selected: Vec<String> = if opts.services.is_empty() {
            project.services.keys().cloned().collect()
        } else if opts.no_deps {
            opts.services.clone()
        } else {
            graph.with_dependencies(&opts.services)
        };

        // Orphans: containers of services the model no longer has.
        let orphans: Vec<Arc<Handle>> = self
            .shared
            .handles()
            .into_iter()
            .filter(|h| {
                let r = h.record.borrow();
                !r.oneoff && !project.services.contains_key(&r.service)
            })
            .collect();
        if !orphans.is_empty() {
            if opts.remove_orphans {
                self.stop_handles(&orphans, None, out).await;
                for h in &orphans {
                    self.remove_one(h, true, out).await?;
                }
            } else {
                let names: Vec<String> = orphans.iter().map(|h| h.name()).collect();
                let _ = out.send(Reply::Warning(format!(
                    "Found orphan containers ({}) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.",
                    names.join(", ")
                )));
            }
        }

        let store = Store::open(crate::paths::images()).map_err(|e| e.to_string())?;
        let mut images = HashMap::new();
        for name in &selected {
            let svc = &project.services[name];
            let reference = crate::image::reference::Reference::parse(&svc.image)
                .map_err(|e| format!("service {name}: invalid image {:?}: {e}", svc.image))?;
            let img = store
                .resolve(&reference.to_string())
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("service {name}: image {} is not present", svc.image))?;
            images.insert(name.clone(), Arc::new(img));
        }
        let host = Arc::new(HostLimits::current());
        let scales: HashMap<String, u32> = opts.scale.iter().cloned().collect();

        let ctx = UpCtx {
            project: project.clone(),
            working_dir,
            store,
            images,
            host,
            opts: opts.clone(),
            scales,
        };
        let results = walk(
            selected.clone(),
            |s| {
                project
                    .services
                    .get(s)
                    .map(|svc| svc.dependencies().map(String::from).collect())
                    .unwrap_or_default()
            },
            |svc, failed| self.up_service(&ctx, svc, failed, out),
        )
        .await;
        first_error(results)
    }

    async fn up_service(
        &self,
        ctx: &UpCtx,
        name: String,
        failed: Vec<String>,
        out: &Out,
    ) -> Result<(), String> {
        let service = &ctx.project.services[&name];
        // Dependencies first: their conditions.
        for (dep, cond) in &service.depends_on {
            let dep_handles: Vec<_> = self
                .shared
                .handles()
                .into_iter()
                .filter(|h| {
                    let r = h.record.borrow();
                    r.service == *dep && !r.oneoff
                })
                .collect();
            if failed.contains(dep) || (dep_handles.is_empty() && !ctx.opts.no_deps) {
                if cond.required {
                    return Err(format!(
                        "dependency failed to start: service {dep} did not start"
                    ));
                }
                let _ = out.send(Reply::Warning(format!(
                    "optional dependency {dep} of service {name} is not running"
                )));
                continue;
            }
            if ctx.opts.no_start {
                continue;
            }
            for h in dep_handles {
                if let Err(e) = wait_condition(&h, &cond.condition, out).await {
                    if cond.required {
                        return Err(e);
                    }
                    let _ = out.send(Reply::Warning(e));
                }
            }
        }

        let image = ctx.images[&name].clone();
        let hash = config_hash(service, &image);
        let want = ctx
            .scales
            .get(&name)
            .copied()
            .or_else(|| service.scale.map(|s| s.max(0) as u32))
            .or_else(|| {
                service
                    .deploy
                    .as_ref()
                    .and_then(|d| d.replicas)
                    .map(|r| r.max(0) as u32)
            })
            .unwrap_or(1);
        let mut existing: Vec<Arc<Handle>> = self
            .shared
            .handles()
            .into_iter()
            .filter(|h| {
                let r = h.record.borrow();
                r.service == name && !r.oneoff
            })
            .collect();
        existing.sort_by_key(|h| h.record.borrow().number);

        // Scale down: the highest numbers go.
        let extra: Vec<_> = existing
            .iter()
            .filter(|h| h.record.borrow().number > want)
            .cloned()
            .collect();
        if !extra.is_empty() {
            self.stop_handles(&extra, None, out).await;
            for h in &extra {
                self.remove_one(h, true, out).await?;
            }
        }
        let mut targets = Vec::new();
        for number in 1..=want {
            let current = existing
                .iter()
                .find(|h| h.record.borrow().number == number)
                .cloned();
            let h = match current {
                Some(h) => {
                    let r = h.snapshot();
                    let changed = r.config_hash != hash;
                    if !ctx.opts.no_recreate && (ctx.opts.force_recreate || changed) {
                        progress(out, "Container", &r.name, "Recreate", false);
                        let t = ctx
                            .opts
                            .timeout
                            .map(Duration::from_secs)
                            .or(Some(r.runtime.stop_grace));
                        h.stop(t).await;
                        self.remove_one(&h, true, &sink()).await?;
                        let h = self.create(ctx, service, &image, number, &hash).await?;
                        progress(out, "Container", &r.name, "Recreated", true);
                        h
                    } else {
                        h
                    }
                }
                None => {
                    let name = container_name(&ctx.project, service, number);
                    progress(out, "Container", &name, "Creating", false);
                    match self.create(ctx, service, &image, number, &hash).await {
                        Ok(h) => {
                            progress(out, "Container", &name, "Created", true);
                            h
                        }
                        Err(e) => {
                            progress_error(out, "Container", &name, "Error");
                            return Err(e);
                        }
                    }
                }
            };
            targets.push(h);
        }
        if ctx.opts.no_start {
            return Ok(());
        }
        let starts = targets.into_iter().map(|h| async move {
            let r = h.snapshot();
            if r.status.is_active() {
                progress(out, "Container", &r.name, "Running", true);
                return Ok(());
            }
            progress(out, "Container", &r.name, "Starting", false);
            match h.start().await {
                Ok(()) => {
                    progress(out, "Container", &r.name, "Started", true);
                    Ok(())
                }
                Err(e) => {
                    progress_error(out, "Container", &r.name, "Error");
                    Err(e)
                }
            }
        });
        let results = futures_util::future::join_all(starts).await;
        results.into_iter().collect::<Result<Vec<()>, String>>()?;
        Ok(())
    }

    /// Creates container `number` of `service` and its task.
    async fn create(
        &self,
        ctx: &UpCtx,
        service: &ServiceConfig,
        image: &Arc<ImageRecord>,
        number: u32,
        hash: &str,
    ) -> Result<Arc<Handle>, String> {
        let project = ctx.project.clone();
        let service = service.clone();
        let image = image.clone();
        let store = ctx.store.clone();
        let host = ctx.host.clone();
        let working_dir = ctx.working_dir.clone();
        let hash = hash.to_string();
        let helper = self.shared.helper.clone();
        let peers = self.namespace_peers(&service);
        let (setup, created_volumes) = tokio::task::spawn_blocking(move || {
            create_container(
                &project,
                &service,
                &image,
                &store,
                &host,
                &working_dir,
                number,
                &hash,
                &helper,
                peers,
            )
        })
        .await
        .map_err(|e| e.to_string())??;
        if let Ok(mut m) = self.shared.meta.lock() {
            for v in created_volumes {
                if !m.volumes.contains(&v) {
                    m.volumes.push(v);
                }
            }
        }
        let h = self.shared.add(task::spawn(self.shared.clone(), setup));
        self.shared.dirty.notify_one();
        Ok(h)
    }

    /// Pids of running containers whose namespaces `service:`/`container:` modes name.
    fn namespace_peers(&self, service: &ServiceConfig) -> Vec<(String, i32)> {
        let mut out = Vec::new();
        for mode in [
            &service.pid,
            &service.ipc,
            &service.uts,
            &service.network_mode,
        ] {
            let target = mode
                .strip_prefix("service:")
                .map(|s| (s, true))
                .or_else(|| mode.strip_prefix("container:").map(|c| (c, false)));
            let Some((target, is_service)) = target else {
                continue;
            };
            let pid = self.shared.handles().iter().find_map(|h| {
                let r = h.record.borrow();
                let hit = if is_service {
                    r.service == target && !r.oneoff
                } else {
                    r.name == target
                };
                if hit {
                    r.pid
                } else {
                    None
                }
            });
            if let Some(pid) = pid {
                out.push((target.to_string(), pid));
            }
        }
        out
    }
}

struct UpCtx {
    project: Arc<Project>,
    working_dir: PathBuf,
    store: Store,
    images: HashMap<String, Arc<ImageRecord>>,
    host: Arc<HostLimits>,
    opts: UpOptions,
    scales: HashMap<String, u32>,
}

/// A sink for progress nobody reads.
fn sink() -> Out {
    mpsc::unbounded_channel().0
}

/// docker compose's container name: `container_name`, else `<project>-<service>-<n>`.
pub fn container_name(project: &Project, service: &ServiceConfig, number: u32) -> String {
    if !service.container_name.is_empty() {
        return service.container_name.clone();
    }
    format!("{}-{}-{number}", project.name, service.name)
}

/// What decides whether a container must be recreated: the service's configuration (its
/// replica count aside) and the image.
pub fn config_hash(service: &ServiceConfig, image: &ImageRecord) -> String {
    let mut s = service.clone();
    s.scale = None;
    if let Some(d) = s.deploy.as_mut() {
        d.replicas = None;
    }
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&s).unwrap_or_default());
    h.update(image.id.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// Waits until a dependency's container meets a `depends_on` condition.
async fn wait_condition(h: &Arc<Handle>, condition: &str, out: &Out) -> Result<(), String> {
    use crate::compose::model::{CONDITION_COMPLETED_SUCCESSFULLY, CONDITION_HEALTHY};
    let mut rx = h.record.clone();
    let name = h.name();
    match condition {
        CONDITION_HEALTHY => {
            if rx.borrow().runtime.healthcheck.is_none() {
                return Err(format!("container {name} has no healthcheck configured"));
            }
            progress(out, "Container", &name, "Waiting", false);
            let r = rx
                .wait_for(|r| {
                    r.health == Some(Health::Healthy)
                        || r.health == Some(Health::Unhealthy)
                        || matches!(r.status, Status::Exited | Status::Dead)
                })
                .await
                .map(|r| r.clone())
                .map_err(|_| format!("container {name} is gone"))?;
            if r.health == Some(Health::Healthy) {
                progress(out, "Container", &name, "Healthy", true);
                Ok(())
            } else {
                progress_error(out, "Container", &name, "Error");
                Err(format!(
                    "dependency failed to start: container {name} is unhealthy"
                ))
            }
        }
        CONDITION_COMPLETED_SUCCESSFULLY => {
            progress(out, "Container", &name, "Waiting", false);
            let r = rx
                .wait_for(|r| {
                    matches!(r.status, Status::Exited | Status::Dead) && r.exit_code.is_some()
                })
                .await
                .map(|r| r.clone())
                .map_err(|_| format!("container {name} is gone"))?;
            let code = r.exit_code.unwrap_or(-1);
            if code == 0 {
                progress(out, "Container", &name, "Exited", true);
                Ok(())
            } else {
                progress_error(out, "Container", &name, "Error");
                Err(format!(
                    "service {:?} didn't complete successfully: exit {code}",
                    r.service
                ))
            }
        }
        _ => Ok(()),
    }
}

/// Runs `f` for every node once all of its `prereqs` (among `nodes`) finished, as many at a
/// time as the graph allows. `f` learns which prerequisites failed.
async fn walk<'a, P, F, Fut>(
    nodes: Vec<String>,
    prereqs: P,
    f: F,
) -> Vec<(String, Result<(), String>)>
where
    P: Fn(&str) -> Vec<String>,
    F: Fn(String, Vec<String>) -> Fut,
    Fut: Future<Output = Result<(), String>> + 'a,
{
    let mut txs = HashMap::new();
    let mut rxs = HashMap::new();
    for n in &nodes {
        let (tx, rx) = watch::channel(None::<bool>);
        txs.insert(n.clone(), tx);
        rxs.insert(n.clone(), rx);
    }
    let mut futs = Vec::new();
    for n in &nodes {
        let pre: Vec<(String, watch::Receiver<Option<bool>>)> = prereqs(n)
            .into_iter()
            .filter_map(|p| rxs.get(&p).cloned().map(|rx| (p, rx)))
            .collect();
        let Some(tx) = txs.remove(n) else { continue };
        let name = n.clone();
        let f = &f;
        futs.push(async move {
            let mut failed = Vec::new();
            for (p, mut rx) in pre {
                let ok = rx
                    .wait_for(|v| v.is_some())
                    .await
                    .map(|v| v.unwrap_or(false))
                    .unwrap_or(false);
                if !ok {
                    failed.push(p);
                }
            }
            let r = f(name.clone(), failed).await;
            let _ = tx.send(Some(r.is_ok()));
            (name, r)
        });
    }
    futures_util::future::join_all(futs).await
}

fn first_error(results: Vec<(String, Result<(), String>)>) -> Result<(), String> {
    // A dependency's own error is more telling than "dependency failed" of its dependents.
    let mut errors: Vec<String> = results.into_iter().filter_map(|(_, r)| r.err()).collect();
    errors.sort_by_key(|e| e.starts_with("dependency failed to start: service"));
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn join_errors(errors: Vec<String>) -> Result<(), String> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// The task settings of a loaded container from its record.
fn setup_for(container: Container, record: ContainerRecord) -> Setup {
    let log = LogWriter::open(&state::log_path(&record.id)).ok();
    Setup {
        policy: record.runtime.policy,
        check: record.runtime.healthcheck.clone(),
        stop_signal: record.runtime.stop_signal,
        grace: record.runtime.stop_grace,
        tty: record.runtime.tty,
        container,
        record,
        log,
    }
}

/// Creates a container (blocking: files, cgroup, seccomp program). Returns its task setup and
/// the named volumes created for it.
#[allow(clippy::too_many_arguments)]
fn create_container(
    project: &Project,
    service: &ServiceConfig,
    image: &ImageRecord,
    store: &Store,
    host: &HostLimits,
    working_dir: &std::path::Path,
    number: u32,
    hash: &str,
    helper: &std::path::Path,
    peers: Vec<(String, i32)>,
) -> Result<(Setup, Vec<String>), String> {
    let layers: Vec<PathBuf> = image
        .layers
        .iter()
        .map(|l| store.layer_dir(&l.diff_id))
        .collect();
    let mut spec = spec::build(project, service, number, &image.config, &layers, host)
        .map_err(|e| e.to_string())?;
    // A fresh ID per container (a recreated one gets a new one, as with docker).
    spec.id = random_id();
    spec.name = container_name(project, service, number);
    if service.hostname.is_empty() && service.network_mode != "host" {
        spec.hostname = spec.id[..12].to_string();
    }
    let policy = Policy::of(service).map_err(|e| e.to_string())?;
    let check =
        Check::resolve(service, image.config.healthcheck.as_ref()).map_err(|e| e.to_string())?;
    let mounts = crate::volume::mounts_of(project, service, &layers).map_err(|e| e.to_string())?;
    let dir = state::container_dir(&spec.id);
    let options = Options {
        helper: helper.to_path_buf(),
        dir: dir.clone(),
        cgroup: format!("rcompose/{}/{}", project.name, spec.name),
        mounts: mounts.requests,
        hosts: Some(hosts_file(&spec.hostname)),
        resolv_conf: Some(std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()),
        base_dir: working_dir.to_path_buf(),
        tty_size: None,
        namespace_peers: peers,
    };
    let cleanup = |anon: &[PathBuf]| {
        for d in anon {
            let _ = std::fs::remove_dir_all(d);
        }
    };
    let container = match Container::create(&spec, &options) {
        Ok(c) => c,
        Err(e) => {
            cleanup(&mounts.anonymous);
            return Err(e.to_string());
        }
    };
    if let Err(e) = container.save() {
        let _ = container.destroy();
        cleanup(&mounts.anonymous);
        return Err(e.to_string());
    }
    let record = ContainerRecord {
        id: spec.id.clone(),
        name: spec.name.clone(),
        service: service.name.clone(),
        number,
        oneoff: false,
        image: service.image.clone(),
        image_id: image.id.to_string(),
        config_hash: hash.to_string(),
        command: spec.args.clone(),
        status: Status::Created,
        pid: None,
        exit_code: None,
        health: None,
        health_log: Vec::new(),
        created_at: SystemTime::now(),
        started_at: None,
        finished_at: None,
        restart_count: 0,
        stopped_by_user: false,
        ports: Vec::new(),
        networking: serde_json::Value::Null,
        anonymous_volumes: mounts
            .anonymous
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        runtime: state::RuntimeSettings {
            policy,
            healthcheck: check,
            stop_signal: spec.stop_signal.number,
            stop_grace: spec.stop_grace_period,
            tty: spec.tty,
            depends_on: service
                .depends_on
                .iter()
                .map(|(s, d)| state::Dependency {
                    service: s.clone(),
                    condition: d.condition.clone(),
                    required: d.required,
                    restart: d.restart,
                })
                .collect(),
        },
    };
    Ok((setup_for(container, record), mounts.created))
}

fn random_id() -> String {
    use std::io::Read;
    let mut buf = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut buf);
    }
    hex::encode(buf)
}

fn hosts_file(hostname: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n\
         127.0.1.1\t{hostname}\n"
    )
}

/// RFC 3339 in UTC with nanoseconds, as docker prints timestamps.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_nanos()
    )
}
