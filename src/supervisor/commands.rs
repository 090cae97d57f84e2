//! The project commands: `up`, `start`, `stop`, `kill`, `pause`, `rm` and `down` (most of
//! them build a plan with `plan::reconcile` and run it), and the container and volume
//! removals their plans ask for.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::engine::{Engine, ProjectFiles, UpCtx};
use super::error::{join_errors, EngineError};
use super::proto::{Reply, Selection, UpOptions};
use super::state::{self, ContainerRecord};
use super::task::Handle;
use super::{host, progress, progress_error, Out};
use crate::compose::model::{Project, ServiceConfig};
use crate::image::store::Store;
use crate::network::project as project_net;
use crate::plan::observed::ObservedContainer;
use crate::plan::ops::{Op, Plan};
use crate::plan::reconcile;
use crate::runtime::spec::HostLimits;

impl Engine {
    /// `up`: converge the project on the model: what exists now, the plan that makes it what
    /// the file says (`plan::reconcile::up`), run through this engine (`host::EngineHost`).
    pub(super) async fn up(
        &self,
        project: Arc<Project>,
        files: ProjectFiles,
        opts: UpOptions,
        out: &Out,
    ) -> Result<(), EngineError> {
        files.record(&self.shared);
        let selected = reconcile::selected_services(&project, &opts)?;
        let store = Store::open(crate::paths::images())?;
        let mut images = HashMap::new();
        let mut choices = BTreeMap::new();
        for name in &selected {
            let svc = &project.services[name];
            let reference =
                crate::image::reference::Reference::parse(&svc.image).map_err(|error| {
                    EngineError::InvalidImage {
                        service: name.clone(),
                        image: svc.image.clone(),
                        error,
                    }
                })?;
            let img = store.resolve(&reference.to_string())?.ok_or_else(|| {
                EngineError::ImageMissing {
                    service: name.clone(),
                    image: svc.image.clone(),
                }
            })?;
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
            project_net::check_fixed_ports(&project.name, &services, &self.all_ports(&ctx))?;
        }
        let observed = self.observed_for_up();
        let plan = reconcile::up(&project, &choices, &observed, &opts)?;
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
            project_net::recheck_host_firewall(&project.name, &networks)?;
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

    /// Runs the plan `make` builds from the selected containers (`start`, `stop`, `kill`,
    /// `pause`, `rm`).
    async fn execute_selected(
        &self,
        sel: &Selection,
        out: &Out,
        make: impl FnOnce(&[&ObservedContainer]) -> Plan,
    ) -> Result<(), EngineError> {
        let (observed, names) = self.observed_selection(sel);
        let selected: Vec<&ObservedContainer> = observed
            .containers
            .iter()
            .filter(|c| names.contains(&c.name))
            .collect();
        self.execute(&make(&selected), None, out).await
    }

    pub(super) async fn start(&self, sel: &Selection, out: &Out) -> Result<(), EngineError> {
        self.execute_selected(sel, out, reconcile::start).await
    }

    pub(super) async fn stop(
        &self,
        sel: &Selection,
        timeout: Option<Duration>,
        out: &Out,
    ) -> Result<(), EngineError> {
        self.execute_selected(sel, out, |s| reconcile::stop(s, timeout))
            .await
    }

    pub(super) async fn kill(
        &self,
        sel: &Selection,
        signal: i32,
        out: &Out,
    ) -> Result<(), EngineError> {
        self.execute_selected(sel, out, |s| reconcile::kill(s, signal))
            .await
    }

    pub(super) async fn pause(
        &self,
        sel: &Selection,
        on: bool,
        out: &Out,
    ) -> Result<(), EngineError> {
        self.execute_selected(sel, out, |s| reconcile::pause(s, on))
            .await
    }

    pub(super) async fn remove(
        &self,
        sel: &Selection,
        stop: bool,
        volumes: bool,
        out: &Out,
    ) -> Result<(), EngineError> {
        self.execute_selected(sel, out, |s| reconcile::remove(s, stop, volumes))
            .await
    }

    /// `down`: stop and remove every container (of the model's services, plus orphans when
    /// asked, or all when the model is unknown), the networks, and with `volumes` the named
    /// volumes; then the state itself.
    pub(super) async fn down(
        &self,
        timeout: Option<Duration>,
        volumes: bool,
        remove_orphans: bool,
        services: Option<Vec<String>>,
        out: &Out,
    ) -> Result<(), EngineError> {
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
                    .map_err(EngineError::RemoveState)?;
                return Ok(());
            }
        }
        self.shared.save()?;
        join_errors(errors)
    }

    /// `services` and, transitively, the services that depend on one of them with
    /// `restart: true` (from the containers' records).
    pub(super) fn with_restart_dependents(&self, services: &[String]) -> Vec<String> {
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

    pub(super) fn select(&self, sel: &Selection) -> Vec<Arc<Handle>> {
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
    pub(super) fn service_graph(handles: &[Arc<Handle>]) -> HashMap<String, Vec<String>> {
        let mut deps: HashMap<String, Vec<String>> = HashMap::new();
        for h in handles {
            let r = h.record.borrow();
            deps.entry(r.service.clone())
                .or_default()
                .extend(r.runtime.depends_on.iter().map(|d| d.service.clone()));
        }
        deps
    }

    /// Stops containers in reverse dependency order (dependents first), in parallel otherwise.
    pub(super) async fn stop_handles(
        &self,
        handles: &[Arc<Handle>],
        timeout: Option<Duration>,
        out: &Out,
    ) {
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
                    Ok::<(), std::convert::Infallible>(())
                }
            },
        )
        .await;
    }

    pub(super) async fn remove_one(
        &self,
        h: &Arc<Handle>,
        volumes: bool,
        out: &Out,
    ) -> Result<(), EngineError> {
        let r = h.snapshot();
        progress(out, "Container", &r.name, "Removing", false);
        match h.remove(false).await {
            Ok(()) => {
                self.shared.network_forget(&r).await;
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
                Err(e.into())
            }
        }
    }

    /// Removes a named volume of the project (`down -v`).
    pub(super) fn remove_volume(&self, name: &str, out: &Out) -> Result<(), EngineError> {
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
                Err(EngineError::Volume {
                    name: name.to_string(),
                    error: e,
                })
            }
        }
    }

    /// Orphans: containers of services the model no longer has (profile-disabled ones are not).
    /// Removed with `remove`, else named in a warning, as docker compose does.
    pub(super) async fn orphans(
        &self,
        project: &Project,
        remove: bool,
        disabled: &[String],
        out: &Out,
    ) -> Result<(), EngineError> {
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
}

/// Runs `f` for every node once all of its `prereqs` (among `nodes`) finished, as many at a
/// time as the graph allows. `f` learns which prerequisites failed.
pub(super) async fn walk<'a, P, F, Fut, E>(
    nodes: Vec<String>,
    prereqs: P,
    f: F,
) -> Vec<(String, Result<(), E>)>
where
    P: Fn(&str) -> Vec<String>,
    F: Fn(String, Vec<String>) -> Fut,
    Fut: Future<Output = Result<(), E>> + 'a,
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
