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
pub mod fdpass;
pub mod health;
mod host;
pub mod proto;
pub mod ready;
pub mod restart;
pub mod server;
pub mod state;
mod task;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::runtime::rootfs::MountRequest;
use std::os::fd::OwnedFd;
use tokio::sync::{broadcast, mpsc, oneshot, watch, Notify};

use self::health::Check;
use self::proto::{Event, Progress, Reply, Selection, UpOptions};
use self::restart::Policy;
use self::state::{ContainerRecord, ProjectLock, ProjectState, Status};
use self::task::{Handle, Setup};
use crate::compose::model::{Project, ServiceConfig};
use crate::image::store::{ImageRecord, Store};
use crate::logs::{LogConfig, LogWriter, Stream};
use crate::network::dns::{DnsOptions, DnsService, DnsTable};
use crate::network::netlink::Netlink;
use crate::network::project::{self as project_net, NetworkState, PortsInUse};
use crate::network::resolv::ResolvConf;
use crate::plan::executor::{self, ExecError, ExecOptions};
use crate::plan::observed::Observed;
use crate::plan::ops::{Op, Plan};
use crate::plan::reconcile;
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
    net: tokio::sync::Mutex<NetCtx>,
    gone: std::sync::atomic::AtomicBool,
    /// Held from snapshot to written file: two writers (the state writer task and a command
    /// finishing) must not let an older snapshot land after a newer one.
    save_lock: Mutex<()>,
}

#[derive(Default)]
struct Meta {
    working_dir: PathBuf,
    config_files: Vec<PathBuf>,
    networks: Vec<NetworkState>,
    volumes: Vec<String>,
}

/// The project's live networking: the netlink connection and the DNS servers.
#[derive(Default)]
struct NetCtx {
    nl: Option<Netlink>,
    dns: Option<DnsService>,
    /// Networks whose DNS listener runs.
    serving: Vec<String>,
    /// Addresses and ports planned for containers being created (by container id): services
    /// start in parallel, and a container's record only exists once it is created, so without
    /// this two of them could be given the same address or host port.
    reserved: HashMap<String, Reservation>,
    /// Containers (by id) whose host ports their replacement took over: their rules go from
    /// the firewall table while they wait to be removed.
    superseded: std::collections::HashSet<String>,
}

#[derive(Default)]
struct Reservation {
    addresses: Vec<std::net::Ipv4Addr>,
    ports: Vec<project_net::PortBinding>,
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
    fn networks(&self) -> Vec<NetworkState> {
        self.meta
            .lock()
            .map(|m| m.networks.clone())
            .unwrap_or_default()
    }

    /// The netlink connection and a DNS server on every network's gateway, made on first use.
    async fn ensure_net(&self, ctx: &mut NetCtx) -> Result<(), String> {
        if ctx.nl.is_none() {
            ctx.nl = Some(Netlink::connect().map_err(|e| format!("cannot open netlink: {e}"))?);
        }
        if ctx.dns.is_none() {
            let table = DnsTable::new();
            let host = ResolvConf::read(std::path::Path::new(
                crate::network::resolv::HOST_RESOLV_CONF,
            ))
            .unwrap_or_default();
            table.set_default_upstreams(host.upstreams());
            ctx.dns = Some(DnsService::new(table, DnsOptions::default()));
        }
        for net in self.networks() {
            if ctx.serving.contains(&net.key) {
                continue;
            }
            let addr = std::net::SocketAddr::from((net.gateway, crate::network::dns::DNS_PORT));
            if let Some(dns) = ctx.dns.as_mut() {
                dns.add_network(&net.key, addr).await.map_err(|e| {
                    format!("network {}: cannot serve DNS on {addr}: {e}", net.name)
                })?;
            }
            ctx.serving.push(net.key.clone());
        }
        Ok(())
    }

    /// Plugs a container's new network namespace in before its command runs, and makes its
    /// names resolvable.
    async fn network_attach(&self, record: &ContainerRecord, pid: i32) -> Result<(), String> {
        if record.network.interfaces.is_empty() {
            return Ok(());
        }
        let mut ctx = self.net.lock().await;
        self.ensure_net(&mut ctx).await?;
        let netns = std::fs::File::open(format!("/proc/{pid}/ns/net")).map_err(|e| {
            format!(
                "container {}: cannot open its network namespace: {e}",
                record.name
            )
        })?;
        let networks = self.networks();
        if let Some(nl) = &ctx.nl {
            use std::os::fd::AsFd;
            project_net::attach(nl, netns.as_fd(), &record.network.interfaces, &networks)
                .await
                .map_err(|e| format!("container {}: {e}", record.name))?;
        }
        if let Some(dns) = &ctx.dns {
            dns.table().upsert(&record.name, record.network.dns.clone());
        }
        Ok(())
    }

    /// A stopped container answers no more names (its address stays reserved).
    async fn network_release(&self, name: &str) {
        let ctx = self.net.lock().await;
        if let Some(dns) = &ctx.dns {
            dns.table().remove(name);
        }
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

    fn forget(&self, id: &str) {
        if let Ok(mut c) = self.containers.lock() {
            c.retain(|h| h.record.borrow().id != id);
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
        let _order = self
            .save_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
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
            net: Default::default(),
            gone: Default::default(),
            save_lock: Mutex::new(()),
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
                contents,
            } => {
                let files = ProjectFiles {
                    working_dir,
                    config_files,
                    contents: Arc::new(contents),
                };
                let r = self.up(Arc::new(*project), files, options, out).await;
                if r.is_err() && self.shared.handles().is_empty() {
                    // Nothing of the project runs or exists (a taken port, a missing bind
                    // source, ...): what this `up` made goes too, its networks and state.
                    // Named volumes stay (they may hold data).
                    let _ = self.down(None, false, false, None, &sink()).await;
                }
                r
            }
            R::Start(sel) => self.start(&sel, out).await,
            R::Stop { selection, timeout } => {
                self.stop(&selection, timeout.map(Duration::from_secs), out)
                    .await
            }
            R::Restart {
                mut selection,
                timeout,
            } => {
                // Dependents that asked for it (`depends_on: {restart: true}`) follow.
                if !selection.services.is_empty() {
                    selection.services = self.with_restart_dependents(&selection.services);
                }
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
            // Served by `serve_run` (it needs the connection's streams and its own locking).
            R::Attach { .. } | R::Run { .. } => Ok(()),
        };
        let _ = self.shared.save();
        r
    }

    /// A `run` request with the streams that came with it (stdin when asked, stdout, stderr).
    pub async fn serve_run(
        &self,
        req: proto::Request,
        fds: Vec<OwnedFd>,
        out: &Out,
    ) -> Result<(), String> {
        let proto::Request::Run {
            project,
            working_dir,
            config_files,
            options,
            contents,
        } = req
        else {
            return Err("not a run request".into());
        };
        let expected = if options.stdio {
            2 + usize::from(options.stdin)
        } else {
            0
        };
        if fds.len() != expected {
            return Err(format!(
                "run: expected {expected} streams from the client, got {}",
                fds.len()
            ));
        }
        let mut fds = fds.into_iter();
        let io = task::OneOffIo {
            stdin: if options.stdin && options.stdio {
                fds.next()
            } else {
                None
            },
            stdout: fds.next(),
            stderr: fds.next(),
            pty: None,
        };
        let files = ProjectFiles {
            working_dir,
            config_files,
            contents: Arc::new(contents),
        };
        let r = self.run(Arc::new(*project), files, options, io, out).await;
        let _ = self.shared.save();
        r
    }

    /// `services` and, transitively, the services that depend on one of them with
    /// `restart: true` (from the containers' records).
    fn with_restart_dependents(&self, services: &[String]) -> Vec<String> {
        let mut out: Vec<String> = services.to_vec();
        let records: Vec<ContainerRecord> =
            self.shared.handles().iter().map(|h| h.snapshot()).collect();
        loop {
            let more: Vec<String> = records
                .iter()
                .filter(|r| !r.oneoff && !out.contains(&r.service))
                .filter(|r| {
                    r.runtime
                        .depends_on
                        .iter()
                        .any(|d| d.restart && out.contains(&d.service))
                })
                .map(|r| r.service.clone())
                .collect();
            if more.is_empty() {
                return out;
            }
            for m in more {
                if !out.contains(&m) {
                    out.push(m);
                }
            }
        }
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

    /// What exists, and the names of the selected containers in it.
    fn observed_selection(&self, sel: &Selection) -> (Observed, Vec<String>) {
        let names: Vec<String> = self.select(sel).iter().map(|h| h.name()).collect();
        (self.observed(), names)
    }

    async fn start(&self, sel: &Selection, out: &Out) -> Result<(), String> {
        let (observed, names) = self.observed_selection(sel);
        let selected: Vec<_> = observed
            .containers
            .iter()
            .filter(|c| names.contains(&c.name))
            .collect();
        self.execute(&reconcile::start(&selected), None, out).await
    }

    async fn stop(
        &self,
        sel: &Selection,
        timeout: Option<Duration>,
        out: &Out,
    ) -> Result<(), String> {
        let (observed, names) = self.observed_selection(sel);
        let selected: Vec<_> = observed
            .containers
            .iter()
            .filter(|c| names.contains(&c.name))
            .collect();
        self.execute(&reconcile::stop(&selected, timeout), None, out)
            .await
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
        let (observed, names) = self.observed_selection(sel);
        let selected: Vec<_> = observed
            .containers
            .iter()
            .filter(|c| names.contains(&c.name))
            .collect();
        self.execute(&reconcile::remove(&selected, stop, volumes), None, out)
            .await
    }

    async fn remove_one(&self, h: &Arc<Handle>, volumes: bool, out: &Out) -> Result<(), String> {
        let r = h.snapshot();
        progress(out, "Container", &r.name, "Removing", false);
        match h.remove(false).await {
            Ok(()) => {
                self.shared.network_release(&r.name).await;
                self.shared.forget(&r.id);
                self.shared.net.lock().await.superseded.remove(&r.id);
                if volumes {
                    // Not those another container uses: a replacement took them over.
                    let others: Vec<String> = self
                        .shared
                        .handles()
                        .iter()
                        .flat_map(|h| h.record.borrow().anonymous_volumes.clone())
                        .collect();
                    for v in r.anonymous_volumes.iter().filter(|v| !others.contains(v)) {
                        let _ = crate::volume::remove_dir(std::path::Path::new(v));
                    }
                }
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
        let plan = reconcile::down(
            &self.observed(),
            &reconcile::DownOptions {
                services,
                remove_orphans,
                volumes,
                timeout,
            },
        );
        for w in &plan.warnings {
            let _ = out.send(Reply::Warning(w.clone()));
        }
        // Their veths go with the networks (a container's own go with its namespace).
        let interfaces: Vec<project_net::Interface> = self
            .shared
            .handles()
            .iter()
            .flat_map(|h| h.record.borrow().network.interfaces.clone())
            .collect();
        let mut host = host::EngineHost::new(self, None, out);
        host.set_interfaces(interfaces);
        let mut errors = Vec::new();
        if let Err(e) = self.run_plan(&plan, &host, out).await {
            errors.push(e);
        }
        // A project whose networks were never recorded (a first `up` that failed early) may
        // still have a firewall table: the networks' teardown removes it.
        if errors.is_empty()
            && self.shared.handles().is_empty()
            && !plan
                .steps
                .iter()
                .any(|s| matches!(s.op, Op::RemoveNetwork { .. }))
        {
            if let Err(e) = self.remove_networks(&[], out).await {
                errors.push(e);
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
                // No state write may land after the directory is gone.
                let _order = self
                    .shared
                    .save_lock
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                self.shared
                    .gone
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                // The whole directory goes now (socket and lock file too: the lock stays ours
                // until this process exits), so `down` returning means nothing is left.
                state::remove_project_dir(&self.shared.project)
                    .map_err(|e| format!("cannot remove the project's state: {e}"))?;
                return Ok(());
            }
        }
        self.shared.save()?;
        join_errors(errors)
    }

    /// Removes the project's bridges (not external or shared ones), leftover veths and its
    /// firewall table, and stops its DNS servers.
    async fn remove_networks(
        &self,
        interfaces: &[project_net::Interface],
        out: &Out,
    ) -> Result<(), String> {
        let networks = self.shared.networks();
        let mut ctx = self.shared.net.lock().await;
        if let Some(mut dns) = ctx.dns.take() {
            for key in std::mem::take(&mut ctx.serving) {
                let _ = dns.remove_network(&key).await;
            }
        }
        let has_table = crate::network::firewall::projects()
            .map(|p| p.contains(&self.shared.project))
            .unwrap_or(true);
        if networks.is_empty() && interfaces.is_empty() && !has_table {
            return Ok(());
        }
        if ctx.nl.is_none() {
            ctx.nl = Some(Netlink::connect().map_err(|e| format!("cannot open netlink: {e}"))?);
        }
        let others = other_networks(&self.shared.project);
        for n in networks.iter().filter(|n| !n.external) {
            progress(out, "Network", &n.name, "Removing", false);
        }
        let nl = ctx.nl.as_ref().ok_or("no netlink connection")?;
        let r = project_net::teardown(nl, &self.shared.project, &networks, interfaces, &others)
            .await
            .map_err(|e| e.to_string());
        for n in networks.iter().filter(|n| !n.external) {
            if r.is_ok() {
                progress(out, "Network", &n.name, "Removed", true);
            } else {
                progress_error(out, "Network", &n.name, "Error");
            }
        }
        if r.is_ok() {
            if let Ok(mut m) = self.shared.meta.lock() {
                m.networks.clear();
            }
        }
        r
    }

    /// Plans the networks the services need (keeping the recorded ones), creates what is
    /// missing and serves DNS on them.
    async fn ensure_networks(
        &self,
        project: &Project,
        services: &[String],
        out: &Out,
    ) -> Result<(), String> {
        let wanted: Vec<&str> = services
            .iter()
            .filter(|s| {
                project
                    .services
                    .get(*s)
                    .is_some_and(|svc| svc.network_mode.is_empty())
            })
            .map(String::as_str)
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let previous = self.shared.networks();
        let others = other_networks(&project.name);
        let planned = project_net::plan_networks(project, &wanted, &previous, &others)
            .await
            .map_err(|e| e.to_string())?;
        let new: Vec<NetworkState> = planned
            .iter()
            .filter(|n| !previous.iter().any(|p| p.key == n.key))
            .cloned()
            .collect();
        if new.is_empty() {
            return project_net::recheck_host_firewall(&project.name, &previous)
                .map_err(|e| e.to_string());
        }
        for n in new.iter().filter(|n| !n.external) {
            progress(out, "Network", &n.name, "Creating", false);
        }
        let mut ctx = self.shared.net.lock().await;
        if ctx.nl.is_none() {
            ctx.nl = Some(Netlink::connect().map_err(|e| format!("cannot open netlink: {e}"))?);
        }
        // Planning and creating a bridge is one step for the whole host: two projects planning
        // at once would pick the same free subnet.
        let _host_lock = tokio::task::spawn_blocking(host_network_lock)
            .await
            .map_err(|e| e.to_string())??;
        // Re-planned under the lock: the host's routes may have changed meanwhile.
        let planned = project_net::plan_networks(project, &wanted, &previous, &others)
            .await
            .map_err(|e| e.to_string())?;
        let new: Vec<NetworkState> = planned
            .iter()
            .filter(|n| !previous.iter().any(|p| p.key == n.key))
            .cloned()
            .collect();
        let mut all = previous.clone();
        all.extend(new.iter().cloned());
        let ports = self.all_ports(&ctx);
        let nl = ctx.nl.as_ref().ok_or("no netlink connection")?;
        if let Err(e) = project_net::setup(nl, &project.name, &all, &ports).await {
            for n in new.iter().filter(|n| !n.external) {
                progress_error(out, "Network", &n.name, "Error");
            }
            return Err(e.to_string());
        }
        if let Ok(mut m) = self.shared.meta.lock() {
            m.networks = all;
        }
        self.shared.dirty.notify_one();
        self.shared.ensure_net(&mut ctx).await?;
        for n in new.iter().filter(|n| !n.external) {
            progress(out, "Network", &n.name, "Created", true);
        }
        Ok(())
    }

    /// Every port the project's containers publish, with those reserved for containers being
    /// created.
    fn all_ports(&self, ctx: &NetCtx) -> Vec<project_net::PortBinding> {
        let mut ports: Vec<project_net::PortBinding> = self
            .shared
            .handles()
            .iter()
            .filter(|h| !ctx.superseded.contains(&h.record.borrow().id))
            .flat_map(|h| h.record.borrow().network.ports.clone())
            .collect();
        for port in ctx.reserved.values().flat_map(|r| &r.ports) {
            if !ports.contains(port) {
                ports.push(*port);
            }
        }
        ports
    }

    /// A created (or failed) container's addresses and ports now live in its record (or
    /// nowhere).
    async fn release_reservation(&self, id: &str) {
        self.shared.net.lock().await.reserved.remove(id);
    }

    /// A new container's interfaces, ports and DNS names; its ports are published now (an error
    /// names a taken port before the container exists).
    /// `name`: the container's name for DNS (its final one); `replacing`: the container it
    /// replaces, whose host ports it takes over (the old one keeps them until it is removed).
    async fn plan_container_net(
        &self,
        project: &Project,
        service: &ServiceConfig,
        id: &str,
        name: &str,
        replacing: Option<&ContainerRecord>,
    ) -> Result<(state::ContainerNet, String, String), String> {
        let networks = self.shared.networks();
        let mut ctx = self.shared.net.lock().await;
        let mut in_use: Vec<std::net::Ipv4Addr> = self
            .shared
            .handles()
            .iter()
            .flat_map(|h| {
                h.record
                    .borrow()
                    .network
                    .interfaces
                    .iter()
                    .map(|i| i.address)
                    .collect::<Vec<_>>()
            })
            .collect();
        in_use.extend(
            ctx.reserved
                .values()
                .flat_map(|r| r.addresses.iter().copied()),
        );
        let interfaces = project_net::plan_interfaces(project, service, id, &networks, &in_use)
            .map_err(|e| e.to_string())?;
        // Other projects' ports come from an nft listing (milliseconds): only when needed.
        let mut ports_in_use = if service.ports.is_empty() {
            PortsInUse::new()
        } else {
            PortsInUse::of_other_projects(&project.name).map_err(|e| e.to_string())?
        };
        if let Some(old) = replacing {
            ctx.superseded.insert(old.id.clone());
        }
        let existing = self.all_ports(&ctx);
        ports_in_use.add(&existing);
        let ports =
            project_net::published_ports(service, &interfaces, &networks, &mut ports_in_use)
                .map_err(|e| e.to_string())?;
        if !ports.is_empty() {
            if ctx.nl.is_none() {
                ctx.nl = Some(Netlink::connect().map_err(|e| format!("cannot open netlink: {e}"))?);
            }
            let mut all = existing;
            all.extend(ports.iter().cloned());
            let nl = ctx.nl.as_ref().ok_or("no netlink connection")?;
            project_net::setup(nl, &project.name, &networks, &all)
                .await
                .map_err(|e| format!("service {}: {e}", service.name))?;
        }
        let host = ResolvConf::read(std::path::Path::new(
            crate::network::resolv::HOST_RESOLV_CONF,
        ))
        .unwrap_or_default();
        let hostname = if service.hostname.is_empty() {
            id[..12].to_string()
        } else {
            service.hostname.clone()
        };
        let (resolv, hosts) =
            project_net::container_files(service, &hostname, &interfaces, &networks, &host)
                .map_err(|e| e.to_string())?;
        let dns = project_net::dns_entries(service, name, &interfaces, &host)
            .map_err(|e| e.to_string())?;
        ctx.reserved.insert(
            id.to_string(),
            Reservation {
                addresses: interfaces.iter().map(|i| i.address).collect(),
                ports: ports.clone(),
            },
        );
        Ok((
            state::ContainerNet {
                interfaces,
                ports,
                dns,
            },
            resolv,
            hosts,
        ))
    }

    /// `up`: converge the project on the model: what exists now, the plan that makes it what
    /// the file says (`plan::reconcile::up`), run through this engine (`host::EngineHost`).
    async fn up(
        &self,
        project: Arc<Project>,
        files: ProjectFiles,
        opts: UpOptions,
        out: &Out,
    ) -> Result<(), String> {
        files.record(&self.shared);
        let selected = reconcile::selected_services(&project, &opts).map_err(|e| e.to_string())?;
        let store = Store::open(crate::paths::images()).map_err(|e| e.to_string())?;
        let mut images = HashMap::new();
        let mut choices = BTreeMap::new();
        for name in &selected {
            let svc = &project.services[name];
            let reference = crate::image::reference::Reference::parse(&svc.image)
                .map_err(|e| format!("service {name}: invalid image {:?}: {e}", svc.image))?;
            let img = store
                .resolve(&reference.to_string())
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("service {name}: image {} is not present", svc.image))?;
            choices.insert(
                name.clone(),
                reconcile::ImageChoice {
                    id: Some(img.id.to_string()),
                    fetch: None,
                },
            );
            images.insert(name.clone(), Arc::new(img));
        }
        // A taken port is an error before anything of this `up` exists.
        {
            let ctx = self.shared.net.lock().await;
            let services: Vec<&ServiceConfig> = selected
                .iter()
                .filter_map(|n| project.services.get(n))
                .collect();
            project_net::check_fixed_ports(&project.name, &services, &self.all_ports(&ctx))
                .map_err(|e| e.to_string())?;
        }
        let observed = self.observed();
        let plan =
            reconcile::up(&project, &choices, &observed, &opts).map_err(|e| e.to_string())?;
        for w in &plan.warnings {
            let _ = out.send(Reply::Warning(w.clone()));
        }
        // Containers the plan leaves as they are still say so, as docker compose's do.
        if !opts.no_start {
            for c in observed.containers.iter().filter(|c| {
                !c.oneoff
                    && c.is_active()
                    && selected.contains(&c.service)
                    && !plan.steps.iter().any(|s| {
                        s.op.object() == c.name && !matches!(s.op, Op::WaitContainer { .. })
                    })
            }) {
                progress(out, "Container", &c.name, "Running", true);
            }
        }
        // Networks that stay: Docker's restart may have flushed the host rules they need.
        let networks = self.shared.networks();
        if !networks.is_empty()
            && !plan
                .steps
                .iter()
                .any(|s| matches!(s.op, Op::CreateNetwork { .. }))
        {
            project_net::recheck_host_firewall(&project.name, &networks)
                .map_err(|e| e.to_string())?;
        }
        let ctx = UpCtx {
            project: project.clone(),
            working_dir: files.working_dir,
            contents: files.contents,
            store,
            images,
            host: Arc::new(HostLimits::current()),
        };
        self.execute(&plan, Some(&ctx), out).await
    }

    /// Runs a plan through this engine; after a failure, what the run created is undone.
    async fn execute(&self, plan: &Plan, ctx: Option<&UpCtx>, out: &Out) -> Result<(), String> {
        let host = host::EngineHost::new(self, ctx, out);
        self.run_plan(plan, &host, out).await
    }

    /// Runs a plan through `host`; the first failure's message (with undo failures).
    async fn run_plan(
        &self,
        plan: &Plan,
        host: &host::EngineHost<'_>,
        out: &Out,
    ) -> Result<(), String> {
        match executor::execute(plan, host, &ExecOptions::default()).await {
            Ok(report) => {
                for w in report.warnings {
                    let _ = out.send(Reply::Warning(w));
                }
                Ok(())
            }
            // The host's message says what failed on what; undo failures follow it.
            Err(ExecError::Step {
                source,
                undo_errors,
                ..
            }) => {
                let mut message = source.to_string();
                for e in undo_errors {
                    message.push_str(&format!("; {e}"));
                }
                Err(message)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// What exists of the project, for `reconcile`.
    fn observed(&self) -> Observed {
        let shared: Vec<String> = other_networks(&self.shared.project)
            .into_iter()
            .map(|n| n.name)
            .collect();
        Observed::from_state(&self.shared.snapshot(), &shared)
    }

    /// Removes one network of the project (its bridge, DNS server and firewall rules), the
    /// others staying as they are.
    async fn remove_network(&self, key: &str, out: &Out) -> Result<(), String> {
        let networks = self.shared.networks();
        let Some(net) = networks.iter().find(|n| n.key == key).cloned() else {
            return Ok(());
        };
        let rest: Vec<NetworkState> = networks.into_iter().filter(|n| n.key != key).collect();
        let mut ctx = self.shared.net.lock().await;
        if ctx.serving.iter().any(|k| k == key) {
            if let Some(dns) = ctx.dns.as_mut() {
                let _ = dns.remove_network(key).await;
            }
            ctx.serving.retain(|k| k != key);
        }
        if ctx.nl.is_none() {
            ctx.nl = Some(Netlink::connect().map_err(|e| format!("cannot open netlink: {e}"))?);
        }
        if !net.external {
            progress(out, "Network", &net.name, "Removing", false);
        }
        let others = other_networks(&self.shared.project);
        let ports = self.all_ports(&ctx);
        let nl = ctx.nl.as_ref().ok_or("no netlink connection")?;
        let r = async {
            // Teardown drops the project's firewall table with the bridge: the table is
            // written again for the networks that stay.
            project_net::teardown(
                nl,
                &self.shared.project,
                std::slice::from_ref(&net),
                &[],
                &others,
            )
            .await?;
            if !rest.is_empty() {
                project_net::setup(nl, &self.shared.project, &rest, &ports).await?;
            }
            Ok::<(), project_net::ProjectError>(())
        }
        .await
        .map_err(|e| e.to_string());
        if let Err(e) = r {
            progress_error(out, "Network", &net.name, "Error");
            return Err(e);
        }
        if let Ok(mut m) = self.shared.meta.lock() {
            m.networks.retain(|n| n.key != key);
        }
        self.shared.dirty.notify_one();
        if !net.external {
            progress(out, "Network", &net.name, "Removed", true);
        }
        Ok(())
    }

    /// Removes a named volume of the project (`down -v`).
    fn remove_volume(&self, name: &str, out: &Out) -> Result<(), String> {
        progress(out, "Volume", name, "Removing", false);
        match crate::volume::remove(name) {
            Ok(()) => {
                if let Ok(mut m) = self.shared.meta.lock() {
                    m.volumes.retain(|v| v != name);
                }
                progress(out, "Volume", name, "Removed", true);
                Ok(())
            }
            Err(e) => {
                progress_error(out, "Volume", name, "Error");
                Err(format!("cannot remove volume {name}: {e}"))
            }
        }
    }

    /// `run`: a one-off container of a service, after its dependencies (unless `no_deps`);
    /// its streams are the client's (`io`). Replies `Started` (and `Pty`), then `Exited`
    /// unless detached.
    /// Orphans: containers of services the model no longer has (profile-disabled ones are not).
    /// Removed with `remove`, else named in a warning, as docker compose does.
    async fn orphans(
        &self,
        project: &Project,
        remove: bool,
        disabled: &[String],
        out: &Out,
    ) -> Result<(), String> {
        let orphans: Vec<Arc<Handle>> = self
            .shared
            .handles()
            .into_iter()
            .filter(|h| {
                let r = h.record.borrow();
                !r.oneoff
                    && !project.services.contains_key(&r.service)
                    && !disabled.contains(&r.service)
            })
            .collect();
        if orphans.is_empty() {
            return Ok(());
        }
        if remove {
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
        Ok(())
    }

    async fn run(
        &self,
        project: Arc<Project>,
        files: ProjectFiles,
        opts: proto::RunOptions,
        io: task::OneOffIo,
        out: &Out,
    ) -> Result<(), String> {
        let mut service = opts.service.as_ref().clone();
        service.name = opts.service_name.clone();
        if !project.services.contains_key(&service.name) {
            return Err(format!("no such service: {}", service.name));
        }
        // Under the project's operation lock until the container runs; not while it runs.
        let (h, pty) = {
            let _op = self.op.lock().await;
            let deps: Vec<String> = service.dependencies().map(String::from).collect();
            if !opts.no_deps && !deps.is_empty() {
                let up = UpOptions {
                    services: deps,
                    remove_orphans: opts.remove_orphans,
                    disabled_services: opts.disabled_services.clone(),
                    ..UpOptions::default()
                };
                let deps_files = ProjectFiles {
                    working_dir: files.working_dir.clone(),
                    config_files: files.config_files.clone(),
                    contents: files.contents.clone(),
                };
                self.up(project.clone(), deps_files, up, out).await?;
            } else {
                files.record(&self.shared);
                self.orphans(&project, opts.remove_orphans, &opts.disabled_services, out)
                    .await?;
            }
            // `--no-deps`: the dependencies are neither started nor awaited, as docker compose.
            if !opts.no_deps {
                let waits = reconcile::dependency_waits(&service, &self.observed())
                    .map_err(|e| e.to_string())?;
                for w in &waits.warnings {
                    let _ = out.send(Reply::Warning(w.clone()));
                }
                self.execute(&waits, None, out).await?;
            }
            self.ensure_networks(&project, std::slice::from_ref(&service.name), out)
                .await?;
            let (h, pty) = self
                .create_oneoff(&project, &service, &files, &opts, io)
                .await?;
            let r = h.start().await;
            let _ = self.shared.save();
            if let Err(e) = r {
                // The command could not start (126, 127): that is the run's exit code.
                if let Some(code) = h.snapshot().exit_code {
                    let _ = out.send(Reply::Exited { code });
                }
                if opts.rm {
                    let _ = self.remove_one(&h, true, &sink()).await;
                }
                return Err(e);
            }
            (h, pty)
        };
        let mut rx = h.record.clone();
        let (name, pid) = {
            let r = rx.borrow();
            (r.name.clone(), r.pid.unwrap_or(0))
        };
        let _ = out.send(Reply::Started {
            container: name.clone(),
            pid,
        });
        if let Some(Ok(master)) = match pty {
            Some(rx) => Some(rx.await),
            None => None,
        } {
            let _ = out.send(Reply::Pty {
                fd: Some(Arc::new(master)),
            });
        }
        if opts.detach {
            return Ok(());
        }
        let exited = rx
            .wait_for(|r| !r.status.is_active())
            .await
            .map(|r| r.exit_code.unwrap_or(0))
            .map_err(|_| format!("container {name} went away"))?;
        let _ = out.send(Reply::Exited { code: exited });
        if opts.rm {
            let _op = self.op.lock().await;
            self.remove_one(&h, true, &sink()).await?;
            let _ = self.shared.save();
        }
        Ok(())
    }

    /// The mounts `service` takes from other containers (`volumes_from`: `SERVICE` or
    /// `container:NAME`, with `:ro` or `:rw`), from their records.
    fn volumes_from(&self, service: &ServiceConfig) -> Result<Vec<MountRequest>, String> {
        let mut out = Vec::new();
        for entry in &service.volumes_from {
            let (source, mode) = match entry.rsplit_once(':') {
                Some((s, m @ ("ro" | "rw"))) => (s, Some(m)),
                _ => (entry.as_str(), None),
            };
            let handles = self.shared.handles();
            let found = match source.strip_prefix("container:") {
                Some(name) => handles.iter().find(|h| h.record.borrow().name == name),
                None => handles
                    .iter()
                    .filter(|h| {
                        let r = h.record.borrow();
                        r.service == source && !r.oneoff
                    })
                    .min_by_key(|h| h.record.borrow().number),
            };
            let Some(h) = found else {
                return Err(format!(
                    "service {}: volumes_from {source}: no such container in project {}",
                    service.name, self.shared.project
                ));
            };
            for m in &h.record.borrow().mounts {
                out.push(MountRequest::Bind {
                    source: m.source.clone(),
                    target: m.target.clone(),
                    read_only: match mode {
                        Some("ro") => true,
                        Some(_) => false,
                        None => m.read_only,
                    },
                });
            }
        }
        Ok(out)
    }

    /// Creates a `run` container and its task (not started).
    async fn create_oneoff(
        &self,
        project: &Arc<Project>,
        service: &ServiceConfig,
        files: &ProjectFiles,
        opts: &proto::RunOptions,
        mut io: task::OneOffIo,
    ) -> Result<(Arc<Handle>, Option<oneshot::Receiver<OwnedFd>>), String> {
        let store = Store::open(crate::paths::images()).map_err(|e| e.to_string())?;
        let reference = crate::image::reference::Reference::parse(&service.image).map_err(|e| {
            format!(
                "service {}: invalid image {:?}: {e}",
                service.name, service.image
            )
        })?;
        let image = store
            .resolve(&reference.to_string())
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!(
                    "service {}: image {} is not present",
                    service.name, service.image
                )
            })?;
        let id = random_id();
        let name = match &opts.name {
            // It becomes the cgroup `rcompose/<project>/<name>`: one plain component.
            Some(n) => {
                crate::names::check_container(n).map_err(|e| e.to_string())?;
                crate::names::container_name(n).to_string()
            }
            None => format!("{}-{}-run-{}", project.name, service.name, &id[..12]),
        };
        if self.shared.handles().iter().any(|h| h.name() == name) {
            return Err(format!("container name {name} is already in use"));
        }
        let (mut net, resolv, hosts) = self
            .plan_container_net(project, service, &id, &name, None)
            .await?;
        if !opts.use_aliases {
            // Without --use-aliases a one-off container answers to its own names only.
            for endpoint in &mut net.dns.endpoints {
                endpoint.names.retain(|n| {
                    *n == name || (!service.hostname.is_empty() && *n == service.hostname)
                });
            }
        }
        // With a pty, the master goes to the client (Reply::Pty).
        let pty = service.tty.then(|| {
            let (tx, rx) = oneshot::channel();
            io.pty = Some(tx);
            rx
        });
        let reserved_id = id.clone();
        let has_ports = !net.ports.is_empty();
        let project = project.clone();
        let service = service.clone();
        let working_dir = files.working_dir.clone();
        let contents = files.contents.clone();
        let helper = self.shared.helper.clone();
        let peers = self.namespace_peers(&service);
        let inherited = self.volumes_from(&service)?;
        let tty_size = opts.tty_size;
        let made = tokio::task::spawn_blocking(move || {
            create_container(NewContainer {
                project: &project,
                service: &service,
                image: &image,
                store: &store,
                host: &HostLimits::current(),
                working_dir: &working_dir,
                contents: &contents,
                number: 1,
                hash: "",
                helper: &helper,
                peers,
                inherited,
                inherit_anonymous: BTreeMap::new(),
                id,
                name,
                oneoff: true,
                tty_size,
                net,
                resolv,
                hosts,
            })
        })
        .await
        .map_err(|e| e.to_string())?;
        let (mut setup, created_volumes) = match made {
            Ok(m) => m,
            Err(e) => {
                self.release_reservation(&reserved_id).await;
                if has_ports {
                    let _ = self.republish().await;
                }
                return Err(e);
            }
        };
        self.record_volumes(created_volumes);
        setup.policy = Policy::default();
        setup.record.runtime.policy = Policy::default();
        setup.oneoff = Some(io);
        let h = self.shared.add(task::spawn(self.shared.clone(), setup));
        self.release_reservation(&reserved_id).await;
        self.shared.dirty.notify_one();
        Ok((h, pty))
    }

    fn record_volumes(&self, created: Vec<String>) {
        if let Ok(mut m) = self.shared.meta.lock() {
            for v in created {
                if !m.volumes.contains(&v) {
                    m.volumes.push(v);
                }
            }
        }
    }

    /// Creates container `number` of `service` under `name` and its task. A replacement
    /// (`replaces`) has a temporary name until the old one is gone, takes over its host ports
    /// and, unless `renew`, its anonymous volumes.
    #[allow(clippy::too_many_arguments)]
    async fn create(
        &self,
        ctx: &UpCtx,
        service: &ServiceConfig,
        image: &Arc<ImageRecord>,
        number: u32,
        hash: &str,
        name: String,
        replaces: Option<&ContainerRecord>,
        renew: bool,
    ) -> Result<Arc<Handle>, String> {
        let project = ctx.project.clone();
        let service = service.clone();
        let image = image.clone();
        let store = ctx.store.clone();
        let host = ctx.host.clone();
        let working_dir = ctx.working_dir.clone();
        let contents = ctx.contents.clone();
        let hash = hash.to_string();
        let helper = self.shared.helper.clone();
        let peers = self.namespace_peers(&service);
        let inherited = self.volumes_from(&service)?;
        let inherit = match replaces {
            Some(old) if !renew => anonymous_by_target(old),
            _ => BTreeMap::new(),
        };
        let id = random_id();
        let final_name = container_name(&project, &service, number);
        let planned = self
            .plan_container_net(&project, &service, &id, &final_name, replaces)
            .await;
        let (net, resolv, hosts) = match planned {
            Ok(p) => p,
            Err(e) => {
                self.unsupersede(replaces).await;
                return Err(e);
            }
        };
        let ports = net.ports.clone();
        let reserved_id = id.clone();
        let made = tokio::task::spawn_blocking(move || {
            create_container(NewContainer {
                project: &project,
                service: &service,
                image: &image,
                store: &store,
                host: &host,
                working_dir: &working_dir,
                contents: &contents,
                number,
                hash: &hash,
                helper: &helper,
                peers,
                inherited,
                inherit_anonymous: inherit,
                id,
                name,
                oneoff: false,
                tty_size: None,
                net,
                resolv,
                hosts,
            })
        })
        .await
        .map_err(|e| e.to_string())?;
        let (setup, created_volumes) = match made {
            Ok(m) => m,
            Err(e) => {
                self.release_reservation(&reserved_id).await;
                let superseded = self.unsupersede(replaces).await;
                if !ports.is_empty() || superseded {
                    // Unpublish what was published for it (and give the old one its ports
                    // back).
                    let _ = self.republish().await;
                }
                return Err(e);
            }
        };
        self.record_volumes(created_volumes);
        let h = self.shared.add(task::spawn(self.shared.clone(), setup));
        self.release_reservation(&reserved_id).await;
        self.shared.dirty.notify_one();
        Ok(h)
    }

    /// A replacement that failed gives the container it was to replace its host ports back
    /// (republished by the caller); whether it had taken them.
    async fn unsupersede(&self, replaces: Option<&ContainerRecord>) -> bool {
        match replaces {
            Some(old) => self.shared.net.lock().await.superseded.remove(&old.id),
            None => false,
        }
    }

    /// Rewrites the firewall table with the ports of the containers that exist.
    async fn republish(&self) -> Result<(), String> {
        let networks = self.shared.networks();
        let ctx = self.shared.net.lock().await;
        let Some(nl) = ctx.nl.as_ref() else {
            return Ok(());
        };
        project_net::setup(nl, &self.shared.project, &networks, &self.all_ports(&ctx))
            .await
            .map_err(|e| e.to_string())
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
    contents: Arc<BTreeMap<String, String>>,
    store: Store,
    images: HashMap<String, Arc<ImageRecord>>,
    host: Arc<HostLimits>,
}

/// Where a project's files are, as the client loaded them.
struct ProjectFiles {
    working_dir: PathBuf,
    config_files: Vec<PathBuf>,
    /// Config and secret contents only the client knows.
    contents: Arc<BTreeMap<String, String>>,
}

impl ProjectFiles {
    fn record(&self, shared: &Shared) {
        if let Ok(mut m) = shared.meta.lock() {
            m.working_dir = self.working_dir.clone();
            m.config_files = self.config_files.clone();
        }
    }
}

/// A sink for progress nobody reads.
fn sink() -> Out {
    mpsc::unbounded_channel().0
}

/// docker compose's container name: `container_name` (checked when the project was loaded,
/// without the leading `/` the engine drops), else `<project>-<service>-<n>`.
pub fn container_name(project: &Project, service: &ServiceConfig, number: u32) -> String {
    if !service.container_name.is_empty() {
        return crate::names::container_name(&service.container_name).to_string();
    }
    format!("{}-{}-{number}", project.name, service.name)
}

/// What decides whether a container must be recreated (see `plan::reconcile::config_hash`).
pub fn config_hash(service: &ServiceConfig, image: &ImageRecord) -> String {
    crate::plan::reconcile::config_hash(service, &image.id.to_string())
}

/// Waits until a dependency's container meets a `depends_on` condition.
async fn wait_condition(h: &Arc<Handle>, condition: &str, out: &Out) -> Result<(), String> {
    use ready::{judge, Condition, Readiness, Seen};
    let condition = Condition::of_depends_on(condition);
    if condition == Condition::Started {
        // Its start came first in the plan (or it ran already).
        return Ok(());
    }
    let mut rx = h.record.clone();
    let name = h.name();
    if condition == Condition::Healthy && rx.borrow().runtime.healthcheck.is_none() {
        return Err(format!("container {name} has no healthcheck configured"));
    }
    progress(out, "Container", &name, "Waiting", false);
    let r = rx
        .wait_for(|r| judge(condition, &Seen::of(r)) != Readiness::Pending)
        .await
        .map(|r| r.clone())
        .map_err(|_| format!("container {name} is gone"))?;
    match judge(condition, &Seen::of(&r)) {
        Readiness::Ready(word) => {
            progress(out, "Container", &name, word, true);
            Ok(())
        }
        _ => {
            progress_error(out, "Container", &name, "Error");
            Err(if condition == Condition::CompletedSuccessfully {
                format!(
                    "service {:?} didn't complete successfully: exit {}",
                    r.service,
                    r.exit_code.unwrap_or(-1)
                )
            } else {
                format!("dependency failed to start: container {name} is unhealthy")
            })
        }
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

fn join_errors(errors: Vec<String>) -> Result<(), String> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// The task settings of a loaded container from its record.
fn setup_for(container: Container, record: ContainerRecord) -> Setup {
    let log = LogWriter::open(&state::log_path(&record.id), record.runtime.log.clone()).ok();
    Setup {
        policy: record.runtime.policy,
        check: record.runtime.healthcheck.clone(),
        stop_signal: record.runtime.stop_signal,
        grace: record.runtime.stop_grace,
        tty: record.runtime.tty,
        container,
        record,
        log,
        oneoff: None,
    }
}

/// Everything a new container is made from.
struct NewContainer<'a> {
    project: &'a Project,
    service: &'a ServiceConfig,
    image: &'a ImageRecord,
    store: &'a Store,
    host: &'a HostLimits,
    working_dir: &'a std::path::Path,
    /// Config and secret contents only the client knows.
    contents: &'a BTreeMap<String, String>,
    number: u32,
    hash: &'a str,
    helper: &'a std::path::Path,
    peers: Vec<(String, i32)>,
    /// Mounts from `volumes_from`.
    inherited: Vec<MountRequest>,
    /// Anonymous volumes of the container this one replaces, by target.
    inherit_anonymous: BTreeMap<String, PathBuf>,
    id: String,
    name: String,
    oneoff: bool,
    /// The size of the pty (a `run` from a terminal).
    tty_size: Option<(u16, u16)>,
    net: state::ContainerNet,
    resolv: String,
    hosts: String,
}

/// Creates a container (blocking: files, cgroup, seccomp program). Returns its task setup and
/// the named volumes created for it.
fn create_container(n: NewContainer) -> Result<(Setup, Vec<String>), String> {
    let NewContainer {
        project,
        service,
        image,
        store,
        host,
        working_dir,
        contents,
        number,
        hash,
        helper,
        peers,
        inherited,
        inherit_anonymous: inherit,
        id,
        name,
        oneoff,
        tty_size,
        net,
        resolv,
        hosts,
    } = n;
    let layers: Vec<PathBuf> = image
        .layers
        .iter()
        .map(|l| store.layer_dir(&l.diff_id))
        .collect();
    let mut spec = spec::build(project, service, number, &image.config, &layers, host)
        .map_err(|e| e.to_string())?;
    // A fresh ID per container (a recreated one gets a new one, as with docker); the default
    // hostname and `$HOSTNAME` follow it.
    spec.set_id(id);
    spec.name = name;
    if oneoff {
        spec.labels
            .insert("com.docker.compose.oneoff".into(), "True".into());
    }
    let policy = Policy::of(service).map_err(|e| e.to_string())?;
    let log = LogConfig::from_service(service).map_err(|e| e.to_string())?;
    let check =
        Check::resolve(service, image.config.healthcheck.as_ref()).map_err(|e| e.to_string())?;
    let mut mounts =
        crate::volume::mounts_of(project, service, &layers, &inherit).map_err(|e| e.to_string())?;
    mounts.requests.extend(inherited);
    // What other containers' volumes_from take: binds and volumes (not configs, secrets, tmpfs).
    let mount_records: Vec<state::MountRecord> = mounts
        .requests
        .iter()
        .filter_map(|m| match m {
            MountRequest::Bind {
                source,
                target,
                read_only,
            } => Some(state::MountRecord {
                source: source.clone(),
                target: target.clone(),
                read_only: *read_only,
            }),
            MountRequest::Tmpfs(_) => None,
        })
        .collect();
    let dir = state::container_dir(&spec.id);
    // What was made for this container alone goes with a failed creation: its directory, its
    // anonymous volumes and the named volumes this call created (nothing records them
    // otherwise).
    let created = mounts.created.clone();
    let anonymous = mounts.anonymous.clone();
    let cleanup = || {
        for name in &created {
            let _ = crate::volume::remove(name);
        }
        for d in &anonymous {
            let _ = crate::volume::remove_dir(d);
        }
        let _ = crate::paths::remove_store_dir(&crate::paths::containers(), &dir);
    };
    // Configs and secrets: written into the container's directory, mounted read-only.
    match crate::configs::mounts(project, service, contents, working_dir, &dir) {
        Ok(files) => mounts.requests.extend(files),
        Err(e) => {
            cleanup();
            return Err(e.to_string());
        }
    }
    let options = Options {
        helper: helper.to_path_buf(),
        dir: dir.clone(),
        cgroup: format!("rcompose/{}/{}", project.name, spec.name),
        mounts: mounts.requests,
        hosts: Some(hosts),
        resolv_conf: Some(resolv),
        base_dir: working_dir.to_path_buf(),
        tty_size,
        namespace_peers: peers,
    };
    let container = match Container::create(&spec, &options) {
        Ok(c) => c,
        Err(e) => {
            cleanup();
            return Err(e.to_string());
        }
    };
    if let Err(e) = container.save() {
        let _ = container.destroy();
        cleanup();
        return Err(e.to_string());
    }
    let record = ContainerRecord {
        id: spec.id.clone(),
        name: spec.name.clone(),
        service: service.name.clone(),
        number,
        oneoff,
        image: service.image.clone(),
        image_id: image.id.to_string(),
        config_hash: hash.to_string(),
        config_fields: crate::plan::reconcile::service_fields(service),
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
        ports: net
            .ports
            .iter()
            .map(|p| state::PortRecord {
                host_ip: p.host_ip.map_or("0.0.0.0".into(), |ip| ip.to_string()),
                host_port: p.host_port,
                container_port: p.container_port,
                protocol: p.protocol.to_string(),
            })
            .collect(),
        network: net,
        anonymous_volumes: mounts
            .anonymous
            .iter()
            .chain(&mounts.inherited)
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        mounts: mount_records,
        runtime: state::RuntimeSettings {
            policy,
            healthcheck: check,
            stop_signal: spec.stop_signal.number,
            stop_grace: spec.stop_grace_period,
            tty: spec.tty,
            log,
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
            post_start: service.post_start.iter().map(state::Hook::of).collect(),
            pre_stop: service.pre_stop.iter().map(state::Hook::of).collect(),
        },
    };
    Ok((setup_for(container, record), mounts.created))
}

/// A container's anonymous volumes by their target (from its mounts: `<dir>/_data`).
fn anonymous_by_target(r: &ContainerRecord) -> BTreeMap<String, PathBuf> {
    r.anonymous_volumes
        .iter()
        .filter_map(|dir| {
            let dir = PathBuf::from(dir);
            let data = dir.join("_data");
            r.mounts
                .iter()
                .find(|m| m.source == data)
                .map(|m| (m.target.clone(), dir))
        })
        .collect()
}

fn random_id() -> String {
    use std::io::Read;
    let mut buf = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut buf);
    }
    hex::encode(buf)
}

/// The networks of the other rcompose projects (subnets to avoid, shared networks to keep).
pub(crate) fn other_networks(project: &str) -> Vec<NetworkState> {
    state::projects()
        .into_iter()
        .filter(|p| p != project)
        .filter_map(|p| ProjectState::load(&p).ok().flatten())
        .flat_map(|s| s.networks)
        .collect()
}

/// A host-wide lock around network planning and bridge creation (held until dropped). It lives
/// outside `RCOMPOSE_RUN`: installations with different state directories share the host's
/// address space.
pub(crate) fn host_network_lock() -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    let dir = if std::path::Path::new("/run/lock").is_dir() {
        std::path::PathBuf::from("/run/lock")
    } else {
        std::env::temp_dir()
    };
    let path = dir.join("rcompose-network.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: flock on an fd we own; blocks until the other holder is done.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!(
            "cannot lock {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(f)
}
