//! The supervisor's [`Host`]: the operations of a plan done on this machine through the
//! engine (container tasks, the project's networks and firewall, volumes), with docker
//! compose's progress lines.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt as _;

use super::engine::{Engine, ProjectFiles, UpCtx};
use super::error::EngineError;
use super::proto::RunOptions;
use super::ready;
use super::task::{Handle, OneOffIo};
use super::{progress, progress_error, sink, Out};
use crate::compose::model::ServiceConfig;
use crate::plan::host::{Host, HostError};
use crate::plan::ops::{Cause, Op, Step};

/// Runs plans of one command of one project.
pub(super) struct EngineHost<'a> {
    engine: &'a Engine,
    /// What `up` resolved (project, images, options); `None` for plans that create nothing.
    ctx: Option<&'a UpCtx>,
    out: &'a Out,
    warnings: Mutex<Vec<String>>,
    /// Network changes one at a time: each plans addresses against the others' results.
    network_op: tokio::sync::Mutex<()>,
    /// `down` removes every network (and the firewall table) in one go, at its first
    /// network step, with these host ends of the containers' interfaces.
    networks_removed: std::sync::atomic::AtomicBool,
    interfaces: Vec<crate::network::project::Interface>,
    /// `run`'s one-off container: what creates it, and the task it became.
    oneoff: Option<OneOff<'a>>,
}

/// What `run` gives its plan's host for the one-off container.
pub(super) struct OneOff<'a> {
    /// The service with the run's overrides.
    pub(super) service: &'a ServiceConfig,
    pub(super) files: &'a ProjectFiles,
    pub(super) opts: &'a RunOptions,
    /// The client's streams, taken by the create.
    pub(super) io: Mutex<Option<OneOffIo>>,
    /// The container's task once created, and the pty master to come (with a tty).
    pub(super) made: Mutex<Option<(Arc<Handle>, Option<PtyReceiver>)>>,
}

/// Where a one-off container's pty master arrives (with `tty`).
pub(super) type PtyReceiver = tokio::sync::oneshot::Receiver<std::os::fd::OwnedFd>;

/// The host's messages are the engine's (`EngineError`'s text, or a task's).
fn failed(message: impl std::fmt::Display) -> HostError {
    HostError::Failed(message.to_string())
}

impl<'a> EngineHost<'a> {
    pub(super) fn new(engine: &'a Engine, ctx: Option<&'a UpCtx>, out: &'a Out) -> Self {
        EngineHost {
            engine,
            ctx,
            out,
            warnings: Mutex::new(Vec::new()),
            network_op: tokio::sync::Mutex::new(()),
            networks_removed: Default::default(),
            interfaces: Vec::new(),
            oneoff: None,
        }
    }

    /// A host for `run`'s plan, which creates the one-off container.
    pub(super) fn for_run(
        engine: &'a Engine,
        ctx: &'a UpCtx,
        oneoff: OneOff<'a>,
        out: &'a Out,
    ) -> Self {
        EngineHost {
            oneoff: Some(oneoff),
            ..EngineHost::new(engine, Some(ctx), out)
        }
    }

    /// The one-off container's task (and pty), once created; `None` before or without one.
    pub(super) fn take_oneoff(&self) -> Option<(Arc<Handle>, Option<PtyReceiver>)> {
        self.oneoff
            .as_ref()
            .and_then(|o| o.made.lock().unwrap_or_else(PoisonError::into_inner).take())
    }

    /// The containers' interfaces `down`'s network teardown removes.
    pub(super) fn set_interfaces(&mut self, interfaces: Vec<crate::network::project::Interface>) {
        self.interfaces = interfaces;
    }

    fn handle(&self, name: &str) -> Result<Arc<Handle>, HostError> {
        self.engine
            .shared
            .handles()
            .into_iter()
            .find(|h| h.record.borrow().name == name)
            .ok_or_else(|| HostError::NotFound {
                kind: "container",
                name: name.to_string(),
            })
    }

    fn ctx(&self) -> Result<&'a UpCtx, HostError> {
        self.ctx
            .ok_or_else(|| failed("this command does not create anything"))
    }

    fn warn(&self, message: String) {
        self.warnings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(message);
    }

    async fn apply_op(&self, step: &Step) -> Result<(), HostError> {
        let out = self.out;
        match &step.op {
            Op::PullImage { image, .. }
            | Op::BuildImage { image, .. }
            | Op::PushImage { image } => Err(failed(format!(
                "image {image}: images are pulled and built before the engine runs"
            ))),
            Op::CreateNetwork { key, .. } | Op::UseNetwork { key, .. } => {
                let ctx = self.ctx()?;
                let _one = self.network_op.lock().await;
                let services: Vec<String> = ctx
                    .project
                    .services
                    .values()
                    .filter(|s| s.network_mode.is_empty() && s.networks.contains_key(key))
                    .map(|s| s.name.clone())
                    .collect();
                self.engine
                    .ensure_networks(&ctx.project, &services, out)
                    .await
                    .map_err(failed)
            }
            Op::RemoveNetwork { key, .. } => {
                let _one = self.network_op.lock().await;
                if self.ctx.is_some() {
                    // `up`: this network only, to be created again.
                    self.engine.remove_network(key, out).await.map_err(failed)
                } else if !self
                    .networks_removed
                    .swap(true, std::sync::atomic::Ordering::SeqCst)
                {
                    self.engine
                        .remove_networks(&self.interfaces, out)
                        .await
                        .map_err(failed)
                } else {
                    Ok(())
                }
            }
            Op::CreateVolume { name, .. } => Err(failed(format!(
                "volume {name}: volumes are made with their first container"
            ))),
            Op::RemoveVolume { name } => self.engine.remove_volume(name, out).map_err(failed),
            Op::CreateContainer {
                service,
                number,
                name,
                replaces,
                renew_anon_volumes,
            } => {
                let ctx = self.ctx()?;
                let config = ctx
                    .project
                    .services
                    .get(service)
                    .ok_or_else(|| failed(format!("no such service: {service}")))?;
                // A service this `up` was not given (its network changed) is resolved here.
                let image = match ctx.images.get(service) {
                    Some(i) => i.clone(),
                    None => {
                        let reference = crate::image::reference::Reference::parse(&config.image)
                            .map_err(|e| {
                                failed(format!(
                                    "service {service}: invalid image {:?}: {e}",
                                    config.image
                                ))
                            })?;
                        let found = ctx
                            .store
                            .resolve(&reference.to_string())
                            .map_err(failed)?
                            .ok_or_else(|| {
                                failed(format!(
                                    "service {service}: image {} is not present",
                                    config.image
                                ))
                            })?;
                        Arc::new(found)
                    }
                };
                let image = &image;
                let hash = super::config_hash(config, image);
                let old = match replaces {
                    Some(old) => Some(self.handle(old)?.snapshot()),
                    None => None,
                };
                let shown = replaces.as_deref().unwrap_or(name);
                let (doing, done) = if old.is_some() {
                    ("Recreate", None)
                } else {
                    ("Creating", Some("Created"))
                };
                progress(out, "Container", shown, doing, false);
                match self
                    .engine
                    .create(
                        ctx,
                        config,
                        image,
                        *number,
                        &hash,
                        name.clone(),
                        old.as_ref(),
                        *renew_anon_volumes,
                    )
                    .await
                {
                    Ok(_) => {
                        if let Some(done) = done {
                            progress(out, "Container", shown, done, true);
                        }
                        Ok(())
                    }
                    Err(e) => {
                        progress_error(out, "Container", shown, "Error");
                        Err(failed(e))
                    }
                }
            }
            Op::CreateOneOff { name, .. } => {
                let (ctx, oneoff) = match (self.ctx, &self.oneoff) {
                    (Some(ctx), Some(o)) => (ctx, o),
                    _ => return Err(failed("only run creates one-off containers")),
                };
                let io = oneoff
                    .io
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take()
                    .ok_or_else(|| failed(format!("container {name}: its streams were taken")))?;
                let made = self
                    .engine
                    .create_oneoff(
                        &ctx.project,
                        oneoff.service,
                        oneoff.files,
                        oneoff.opts,
                        name.clone(),
                        io,
                    )
                    .await
                    .map_err(failed)?;
                *oneoff.made.lock().unwrap_or_else(PoisonError::into_inner) = Some(made);
                Ok(())
            }
            Op::StartContainer { name } => {
                let h = self.handle(name)?;
                let r = h.snapshot();
                if r.oneoff {
                    // `run` shows its own container's start by attaching to it.
                    return h.start().await.map_err(failed);
                }
                if r.status.is_active() {
                    progress(out, "Container", name, "Running", true);
                    return Ok(());
                }
                progress(out, "Container", name, "Starting", false);
                match h.start().await {
                    Ok(()) => {
                        progress(out, "Container", name, "Started", true);
                        Ok(())
                    }
                    Err(e) => {
                        progress_error(out, "Container", name, "Error");
                        Err(failed(e))
                    }
                }
            }
            Op::StopContainer { name, timeout } => {
                let h = self.handle(name)?;
                let r = h.snapshot();
                if !r.status.is_active() {
                    return Ok(());
                }
                let grace = timeout.or(Some(r.runtime.stop_grace));
                match &step.cause {
                    Cause::Replaced => h.stop(grace).await,
                    Cause::DependencyRecreated(_) => {
                        progress(out, "Container", name, "Restarting", false);
                        h.stop(grace).await;
                    }
                    _ => {
                        progress(out, "Container", name, "Stopping", false);
                        h.stop(grace).await;
                        progress(out, "Container", name, "Stopped", true);
                    }
                }
                Ok(())
            }
            Op::RemoveContainer { name, volumes } => {
                let h = self.handle(name)?;
                let quiet = sink();
                let shown = if step.cause == Cause::Replaced {
                    &quiet
                } else {
                    out
                };
                let had_ports = !h.snapshot().network.ports.is_empty();
                // A replaced container's anonymous volumes that its replacement did not take
                // over go too (`remove_one` keeps those another container uses).
                let volumes = *volumes || step.cause == Cause::Replaced;
                self.engine
                    .remove_one(&h, volumes, shown)
                    .await
                    .map_err(failed)?;
                if had_ports {
                    // Its DNAT rules went first in the table: the replacement's serve now.
                    self.engine.republish().await.map_err(failed)?;
                }
                Ok(())
            }
            Op::KillContainer { name, signal } => {
                let h = self.handle(name)?;
                progress(out, "Container", name, "Killing", false);
                match h.kill(*signal).await {
                    Ok(()) => {
                        progress(out, "Container", name, "Killed", true);
                        Ok(())
                    }
                    Err(e) => {
                        progress_error(out, "Container", name, "Error");
                        Err(failed(e))
                    }
                }
            }
            Op::PauseContainer { name } | Op::UnpauseContainer { name } => {
                let on = matches!(step.op, Op::PauseContainer { .. });
                let (doing, done) = if on {
                    ("Pausing", "Paused")
                } else {
                    ("Unpausing", "Unpaused")
                };
                let h = self.handle(name)?;
                progress(out, "Container", name, doing, false);
                match h.pause(on).await {
                    Ok(()) => {
                        progress(out, "Container", name, done, true);
                        Ok(())
                    }
                    Err(e) => {
                        progress_error(out, "Container", name, "Error");
                        Err(failed(e))
                    }
                }
            }
            Op::Copy { from, to } => Err(failed(format!(
                "copy {from} to {to}: files are copied by the client"
            ))),
            Op::RenameContainer { from, to } => {
                let h = self.handle(from)?;
                h.rename(to.clone()).await;
                self.engine.shared.dirty.notify_one();
                progress(out, "Container", to, "Recreated", true);
                Ok(())
            }
            Op::WaitContainer {
                name,
                condition,
                required,
            } => {
                let h = self.handle(name)?;
                match wait_condition(&h, condition, out).await {
                    Ok(()) => Ok(()),
                    Err(e) if *required => Err(failed(e)),
                    Err(e) => {
                        self.warn(e.to_string());
                        Ok(())
                    }
                }
            }
        }
    }

    async fn undo_op(&self, step: &Step) -> Result<(), HostError> {
        match &step.op {
            Op::CreateContainer { name, .. } | Op::CreateOneOff { name, .. } => {
                let replaces = match &step.op {
                    Op::CreateContainer { replaces, .. } => replaces.as_ref(),
                    _ => None,
                };
                let h = self.handle(name)?;
                let r = h.snapshot();
                if r.status.is_active() {
                    h.stop(Some(Duration::ZERO)).await;
                }
                // Its own anonymous volumes go; those it took over from the container it was
                // to replace stay with that one (`remove_one` keeps volumes others use).
                self.engine
                    .remove_one(&h, true, &sink())
                    .await
                    .map_err(failed)?;
                // The container it was to replace (still there: else this would not be undone)
                // takes its host ports back.
                let old = replaces
                    .and_then(|o| self.handle(o).ok())
                    .map(|o| o.snapshot());
                let gave_back = self.engine.unsupersede(old.as_ref()).await;
                if !r.network.ports.is_empty() || gave_back {
                    self.engine.republish().await.map_err(failed)?;
                }
                Ok(())
            }
            Op::CreateNetwork { key, .. } => {
                let _one = self.network_op.lock().await;
                self.engine
                    .remove_network(key, &sink())
                    .await
                    .map_err(failed)
            }
            _ => Ok(()),
        }
    }
}

impl Host for EngineHost<'_> {
    fn apply<'s>(&'s self, step: &'s Step) -> BoxFuture<'s, Result<(), HostError>> {
        self.apply_op(step).boxed()
    }

    fn undo<'s>(&'s self, step: &'s Step) -> BoxFuture<'s, Result<(), HostError>> {
        self.undo_op(step).boxed()
    }

    fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Waits until a dependency's container meets a `depends_on` condition.
async fn wait_condition(h: &Arc<Handle>, condition: &str, out: &Out) -> Result<(), EngineError> {
    use ready::{judge, Condition, Readiness, Seen};
    let condition = Condition::of_depends_on(condition);
    if condition == Condition::Started {
        // Its start came first in the plan (or it ran already).
        return Ok(());
    }
    let mut rx = h.record.clone();
    let name = h.name();
    if condition == Condition::Healthy && rx.borrow().runtime.healthcheck.is_none() {
        return Err(EngineError::NoHealthcheck(name));
    }
    progress(out, "Container", &name, "Waiting", false);
    let r = rx
        .wait_for(|r| judge(condition, &Seen::of(r)) != Readiness::Pending)
        .await
        .map(|r| r.clone())
        .map_err(|_| EngineError::Gone(name.clone()))?;
    match judge(condition, &Seen::of(&r)) {
        Readiness::Ready(word) => {
            progress(out, "Container", &name, word, true);
            Ok(())
        }
        _ => {
            progress_error(out, "Container", &name, "Error");
            Err(if condition == Condition::CompletedSuccessfully {
                EngineError::NotCompleted {
                    service: r.service.clone(),
                    code: r.exit_code.unwrap_or(-1),
                }
            } else {
                EngineError::Unhealthy(name)
            })
        }
    }
}
