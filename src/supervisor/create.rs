//! Making a service's container: its name, config hash, mounts (`volumes_from`, inherited
//! anonymous volumes), namespaces and files, then the container and its task.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use super::engine::{Engine, UpCtx};
use super::error::EngineError;
use super::health::Check;
use super::restart::Policy;
use super::state::{self, ContainerRecord, Status};
use super::task::{self, Handle, Setup};
use crate::compose::model::{Project, ServiceConfig};
use crate::image::store::{ImageRecord, Store};
use crate::logs::{LogConfig, LogWriter};
use crate::runtime::container::{Container, Options};
use crate::runtime::rootfs::MountRequest;
use crate::runtime::spec::{self, HostLimits};

impl Engine {
    /// Creates container `number` of `service` under `name` and its task. A replacement
    /// (`replaces`) has a temporary name until the old one is gone, takes over its host ports
    /// and, unless `renew`, its anonymous volumes.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn create(
        &self,
        ctx: &UpCtx,
        service: &ServiceConfig,
        image: &Arc<ImageRecord>,
        number: u32,
        hash: &str,
        name: String,
        replaces: Option<&ContainerRecord>,
        renew: bool,
    ) -> Result<Arc<Handle>, EngineError> {
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
        .await?;
        let (setup, created_volumes) = match made {
            Ok(m) => m,
            Err(e) => {
                self.release_reservation(&reserved_id).await;
                crate::network::registry::remove_container(&self.shared.project, &reserved_id);
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

    /// The mounts `service` takes from other containers (`volumes_from`: `SERVICE` or
    /// `container:NAME`, with `:ro` or `:rw`), from their records.
    pub(super) fn volumes_from(
        &self,
        service: &ServiceConfig,
    ) -> Result<Vec<MountRequest>, EngineError> {
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
                return Err(EngineError::VolumesFrom {
                    service: service.name.clone(),
                    from: source.to_string(),
                    project: self.shared.project.clone(),
                });
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

    /// Pids of running containers whose namespaces `service:`/`container:` modes name.
    pub(super) fn namespace_peers(&self, service: &ServiceConfig) -> Vec<(String, i32)> {
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

    pub(super) fn record_volumes(&self, created: Vec<String>) {
        if let Ok(mut m) = self.shared.meta.lock() {
            for v in created {
                if !m.volumes.contains(&v) {
                    m.volumes.push(v);
                }
            }
        }
    }
}

/// Everything a new container is made from.
pub(super) struct NewContainer<'a> {
    pub(super) project: &'a Project,
    pub(super) service: &'a ServiceConfig,
    pub(super) image: &'a ImageRecord,
    pub(super) store: &'a Store,
    pub(super) host: &'a HostLimits,
    pub(super) working_dir: &'a std::path::Path,
    /// Config and secret contents only the client knows.
    pub(super) contents: &'a BTreeMap<String, String>,
    pub(super) number: u32,
    pub(super) hash: &'a str,
    pub(super) helper: &'a std::path::Path,
    pub(super) peers: Vec<(String, i32)>,
    /// Mounts from `volumes_from`.
    pub(super) inherited: Vec<MountRequest>,
    /// Anonymous volumes of the container this one replaces, by target.
    pub(super) inherit_anonymous: BTreeMap<String, PathBuf>,
    pub(super) id: String,
    pub(super) name: String,
    pub(super) oneoff: bool,
    /// The size of the pty (a `run` from a terminal).
    pub(super) tty_size: Option<(u16, u16)>,
    pub(super) net: state::ContainerNet,
    pub(super) resolv: String,
    pub(super) hosts: String,
}

/// Creates a container (blocking: files, cgroup, seccomp program). Returns its task setup and
/// the named volumes created for it.
pub(super) fn create_container(n: NewContainer) -> Result<(Setup, Vec<String>), EngineError> {
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
    let mut spec = spec::build(project, service, number, &image.config, &layers, host)?;
    // A fresh ID per container (a recreated one gets a new one, as with docker); the default
    // hostname and `$HOSTNAME` follow it.
    spec.set_id(id);
    spec.name = name;
    if oneoff {
        spec.labels
            .insert("com.docker.compose.oneoff".into(), "True".into());
    }
    let policy = Policy::of(service)?;
    let log = LogConfig::from_service(service)?;
    let check = Check::resolve(service, image.config.healthcheck.as_ref())?;
    let mut mounts = crate::volume::mounts_of(project, service, &layers, &inherit)?;
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
            return Err(e.into());
        }
    }
    // Named after the container's name at creation: a replacement's temporary name keeps
    // its cgroup apart from the container it replaces, which still runs in its own.
    let cgroup_path = format!("rcompose/{}/{}", project.name, spec.name);
    let options = Options {
        helper: helper.to_path_buf(),
        dir: dir.clone(),
        cgroup: cgroup_path.clone(),
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
            return Err(e.into());
        }
    };
    if let Err(e) = container.save() {
        let _ = container.destroy();
        cleanup();
        return Err(e.into());
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
        cgroup: cgroup_path.clone(),
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

/// The task settings of a loaded container from its record.
pub(super) fn setup_for(container: Container, record: ContainerRecord) -> Setup {
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

/// A container's anonymous volumes by their target (from its mounts: `<dir>/_data`).
pub(super) fn anonymous_by_target(r: &ContainerRecord) -> BTreeMap<String, PathBuf> {
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

pub(super) fn random_id() -> String {
    use std::io::Read;
    let mut buf = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut buf);
    }
    hex::encode(buf)
}
