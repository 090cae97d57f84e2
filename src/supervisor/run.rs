//! `run`: a one-off container of a service, after its dependencies, with the client's
//! streams.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::create::{create_container, random_id, NewContainer};
use super::engine::{Engine, ProjectFiles, UpCtx};
use super::error::EngineError;
use super::host::{EngineHost, OneOff, PtyReceiver};
use super::proto::{self, Reply, UpOptions};
use super::restart::Policy;
use super::task::{self, Handle};
use super::{sink, Out};
use crate::compose::model::{Project, ServiceConfig};
use crate::image::store::Store;
use crate::plan::reconcile;
use crate::runtime::spec::HostLimits;

impl Engine {
    /// A `run` request with the streams that came with it (stdin when asked, stdout, stderr).
    pub async fn serve_run(
        &self,
        req: proto::Request,
        fds: Vec<OwnedFd>,
        out: &Out,
    ) -> Result<(), EngineError> {
        let proto::Request::Run {
            project,
            working_dir,
            config_files,
            options,
            contents,
        } = req
        else {
            return Err(EngineError::NotRun);
        };
        let expected = if options.stdio {
            2 + usize::from(options.stdin)
        } else {
            0
        };
        if fds.len() != expected {
            return Err(EngineError::Streams {
                expected,
                got: fds.len(),
            });
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

    /// `run`: a one-off container of a service, after its dependencies (unless `no_deps`);
    /// its streams are the client's (`io`). Replies `Started` (and `Pty`), then `Exited`
    /// unless detached.
    pub(super) async fn run(
        &self,
        project: Arc<Project>,
        files: ProjectFiles,
        opts: proto::RunOptions,
        io: task::OneOffIo,
        out: &Out,
    ) -> Result<(), EngineError> {
        let mut service = opts.service.as_ref().clone();
        service.name = opts.service_name.clone();
        if !project.services.contains_key(&service.name) {
            return Err(EngineError::NoSuchService(service.name.clone()));
        }
        // Under the project's operation lock until the container runs; not while it runs.
        let (h, pty) = {
            let _op = self.op.lock().await;
            let name = match &opts.name {
                // It becomes the cgroup `rcompose/<project>/<name>`: one plain component.
                Some(n) => {
                    crate::names::check_container(n)?;
                    crate::names::container_name(n).to_string()
                }
                None => format!(
                    "{}-{}-run-{}",
                    project.name,
                    service.name,
                    &random_id()[..12]
                ),
            };
            if self.shared.handles().iter().any(|h| h.name() == name) {
                return Err(EngineError::NameInUse(name));
            }
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
            // Its image was pulled or built by the client.
            let plan = reconcile::run(
                &project,
                &service,
                &reconcile::ImageChoice::default(),
                &self.observed(),
                &name,
                opts.no_deps,
            )?;
            for w in &plan.warnings {
                let _ = out.send(Reply::Warning(w.clone()));
            }
            let ctx = UpCtx {
                project: project.clone(),
                working_dir: files.working_dir.clone(),
                contents: files.contents.clone(),
                store: Store::open(crate::paths::images())?,
                images: HashMap::new(),
                host: Arc::new(HostLimits::current()),
            };
            let oneoff = OneOff {
                service: &service,
                files: &files,
                opts: &opts,
                io: Mutex::new(Some(io)),
                made: Mutex::new(None),
            };
            let host = EngineHost::for_run(self, &ctx, oneoff, out);
            let r = self.run_plan(&plan, &host, out).await;
            let made = host.take_oneoff();
            let _ = self.shared.save();
            match (r, made) {
                (Ok(()), Some(made)) => made,
                (Ok(()), None) => return Err(EngineError::WentAway(name)),
                (Err(e), made) => {
                    if let Some((h, _)) = made {
                        // The command could not start (126, 127): that is the run's exit code.
                        if let Some(code) = h.snapshot().exit_code {
                            let _ = out.send(Reply::Exited { code });
                        }
                        if opts.rm {
                            let _ = self.remove_one(&h, true, &sink()).await;
                            let _ = self.shared.save();
                        }
                    }
                    return Err(e);
                }
            }
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
            .map_err(|_| EngineError::WentAway(name.clone()))?;
        let _ = out.send(Reply::Exited { code: exited });
        if opts.rm {
            let _op = self.op.lock().await;
            self.remove_one(&h, true, &sink()).await?;
            let _ = self.shared.save();
        }
        Ok(())
    }

    /// Creates a `run` container and its task (not started).
    pub(super) async fn create_oneoff(
        &self,
        project: &Arc<Project>,
        service: &ServiceConfig,
        files: &ProjectFiles,
        opts: &proto::RunOptions,
        name: String,
        mut io: task::OneOffIo,
    ) -> Result<(Arc<Handle>, Option<PtyReceiver>), EngineError> {
        let store = Store::open(crate::paths::images())?;
        let reference =
            crate::image::reference::Reference::parse(&service.image).map_err(|error| {
                EngineError::InvalidImage {
                    service: service.name.clone(),
                    image: service.image.clone(),
                    error,
                }
            })?;
        let image =
            store
                .resolve(&reference.to_string())?
                .ok_or_else(|| EngineError::ImageMissing {
                    service: service.name.clone(),
                    image: service.image.clone(),
                })?;
        let id = random_id();
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
        .await?;
        let (mut setup, created_volumes) = match made {
            Ok(m) => m,
            Err(e) => {
                self.release_reservation(&reserved_id).await;
                crate::network::registry::remove_container(&self.shared.project, &reserved_id);
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
}
