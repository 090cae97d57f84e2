//! The engine: it takes over a project (`open`), takes one request at a time (`handle`,
//! the dispatch to the commands), and runs plans through the plan host (`execute`).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{broadcast, Notify};

use super::create::setup_for;
use super::error::EngineError;
use super::net::other_networks;
use super::proto::{self, Reply, Selection};
use super::shared::{Meta, Shared};
use super::state::{self, ProjectLock, ProjectState, Status};
use super::task;
use super::{host, sink, Out};
use crate::compose::model::Project;
use crate::image::store::{ImageRecord, Store};
use crate::plan::executor::{self, ExecOptions};
use crate::plan::observed::Observed;
use crate::plan::ops::Plan;
use crate::runtime::container::Container;
use crate::runtime::spec::HostLimits;

/// The supervisor's engine for one project.
pub struct Engine {
    pub(super) shared: Arc<Shared>,
    /// One mutating command at a time (as docker compose serialises on its project).
    pub(super) op: tokio::sync::Mutex<()>,
    pub(super) _lock: ProjectLock,
}

impl Engine {
    /// Takes over the project: its recorded containers get tasks again. Processes left by a
    /// supervisor that died are killed (their output and exit status went with it); with
    /// `restart_adopted`, those whose policy says so start again, as docker does when its
    /// daemon restarts.
    pub fn open(project: &str, lock: ProjectLock) -> Result<Engine, EngineError> {
        let helper = std::fs::read_link("/proc/self/exe").map_err(EngineError::Binary)?;
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
        let state = ProjectState::load(project)?;
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
                    // Other projects on its networks must stop resolving it.
                    let _ = shared.register(&record, false, &state.networks);
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
    pub async fn handle(&self, req: proto::Request, out: &Out) -> Result<(), EngineError> {
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

    /// What exists of the project, for `reconcile`.
    /// (Which networks other projects use is left out: only `up`, which may recreate a
    /// network, needs it — `observed_for_up` — and it costs a read of every other project's
    /// state.)
    pub(super) fn observed(&self) -> Observed {
        Observed::from_state(&self.shared.snapshot(), &[])
    }

    /// What exists, with the networks other projects' containers use marked.
    pub(super) fn observed_for_up(&self) -> Observed {
        let shared: Vec<String> = other_networks(&self.shared.project)
            .into_iter()
            .map(|n| n.name)
            .collect();
        Observed::from_state(&self.shared.snapshot(), &shared)
    }

    /// What exists, and the names of the selected containers in it.
    pub(super) fn observed_selection(&self, sel: &Selection) -> (Observed, Vec<String>) {
        let names: Vec<String> = self.select(sel).iter().map(|h| h.name()).collect();
        (self.observed(), names)
    }

    /// Runs a plan through this engine; after a failure, what the run created is undone.
    pub(super) async fn execute(
        &self,
        plan: &Plan,
        ctx: Option<&UpCtx>,
        out: &Out,
    ) -> Result<(), EngineError> {
        let host = host::EngineHost::new(self, ctx, out);
        self.run_plan(plan, &host, out).await
    }

    /// Runs a plan through `host`; the first failure's message (with undo failures).
    pub(super) async fn run_plan(
        &self,
        plan: &Plan,
        host: &host::EngineHost<'_>,
        out: &Out,
    ) -> Result<(), EngineError> {
        match executor::execute(plan, host, &ExecOptions::default()).await {
            Ok(report) => {
                for w in report.warnings {
                    let _ = out.send(Reply::Warning(w));
                }
                Ok(())
            }
            // The host's message says what failed on what; undo failures follow it.
            Err(e) => Err(e.into()),
        }
    }
}

/// What `up` resolved before its plan runs (the model, its images, the host's limits): what
/// the plan host creates containers from.
pub(super) struct UpCtx {
    pub(super) project: Arc<Project>,
    pub(super) working_dir: PathBuf,
    pub(super) contents: Arc<BTreeMap<String, String>>,
    pub(super) store: Store,
    pub(super) images: HashMap<String, Arc<ImageRecord>>,
    pub(super) host: Arc<HostLimits>,
}

/// Where a project's files are, as the client loaded them.
pub(super) struct ProjectFiles {
    pub(super) working_dir: PathBuf,
    pub(super) config_files: Vec<PathBuf>,
    /// Config and secret contents only the client knows.
    pub(super) contents: Arc<BTreeMap<String, String>>,
}

impl ProjectFiles {
    pub(super) fn record(&self, shared: &Shared) {
        if let Ok(mut m) = shared.meta.lock() {
            m.working_dir = self.working_dir.clone();
            m.config_files = self.config_files.clone();
        }
    }
}
