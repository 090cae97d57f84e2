//! The project's networking: its bridges and firewall table (create, recheck, remove), a new
//! container's addresses, ports and DNS names, and plugging a started container in.

use std::sync::Arc;

use super::engine::Engine;
use super::error::EngineError;
use super::shared::{NetCtx, Reservation, Shared};
use super::state::{self, ContainerRecord, ProjectState};
use super::{progress, progress_error, Out};
use crate::compose::model::{Project, ServiceConfig};
use crate::network::dns::{DnsOptions, DnsService, DnsTable, Refresh};
use crate::network::netlink::Netlink;
use crate::network::project::{self as project_net, NetworkState, PortsInUse};
use crate::network::registry::{self, Foreign};
use crate::network::resolv::ResolvConf;

impl Shared {
    /// The netlink connection and the DNS service, made on first use; the DNS service learns
    /// the project's networks (for other projects' containers on them).
    pub(super) async fn ensure_net(&self, ctx: &mut NetCtx) -> Result<(), EngineError> {
        if ctx.nl.is_none() {
            ctx.nl = Some(Netlink::connect().map_err(EngineError::Netlink)?);
        }
        if ctx.dns.is_none() {
            let table = DnsTable::new();
            let host = ResolvConf::read(std::path::Path::new(
                crate::network::resolv::HOST_RESOLV_CONF,
            ))
            .unwrap_or_default();
            table.set_default_upstreams(host.upstreams());
            let foreign = Arc::new(Foreign::new(&self.project, table.clone()));
            let from = Arc::clone(&foreign);
            let refresh: Refresh = Arc::new(move || from.refresh());
            ctx.dns = Some(DnsService::new(table, DnsOptions::default(), Some(refresh)));
            ctx.foreign = Some(foreign);
        }
        if let Some(foreign) = &ctx.foreign {
            foreign.set_networks(
                self.networks()
                    .iter()
                    .map(|n| (n.key.clone(), n.bridge.clone()))
                    .collect(),
            );
        }
        Ok(())
    }

    /// Plugs a container's new network namespace in before its command runs: its interfaces,
    /// its resolver at 127.0.0.11 inside the namespace, its names.
    pub(super) async fn network_attach(
        &self,
        record: &ContainerRecord,
        pid: i32,
    ) -> Result<(), EngineError> {
        if record.network.interfaces.is_empty() {
            return Ok(());
        }
        let mut ctx = self.net.lock().await;
        self.ensure_net(&mut ctx).await?;
        let failed = |message: String| EngineError::Container {
            name: record.name.clone(),
            message,
        };
        let netns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
            .map_err(|e| failed(format!("cannot open its network namespace: {e}")))?;
        let networks = self.networks();
        use std::os::fd::AsFd;
        if let Some(nl) = &ctx.nl {
            project_net::attach(nl, netns.as_fd(), &record.network.interfaces, &networks)
                .await
                .map_err(|e| failed(e.to_string()))?;
        }
        if let Some(dns) = ctx.dns.as_mut() {
            // Its names only once its resolver serves: a start that fails leaves none behind.
            dns.serve_container(&record.id, netns.as_fd())
                .await
                .map_err(|e| failed(format!("cannot serve its dns: {e}")))?;
            dns.table().upsert(&record.id, record.network.dns.clone());
        }
        drop(ctx);
        self.register(record, true, &networks)
    }

    /// A stopped container answers no more names and its resolver goes (its sockets would keep
    /// the dead namespace alive); its address stays reserved.
    pub(super) async fn network_release(&self, record: &ContainerRecord) {
        if record.network.interfaces.is_empty() {
            return;
        }
        self.stop_resolver(record).await;
        let _ = self.register(record, false, &self.networks());
    }

    /// A removed container: its resolver goes and its addresses are free again.
    pub(super) async fn network_forget(&self, record: &ContainerRecord) {
        self.stop_resolver(record).await;
        registry::remove_container(&self.project, &record.id);
    }

    async fn stop_resolver(&self, record: &ContainerRecord) {
        let listener = {
            let mut ctx = self.net.lock().await;
            ctx.dns.as_mut().and_then(|dns| {
                dns.table().remove(&record.id);
                dns.take_container(&record.id)
            })
        };
        // Outside the lock: containers stopping together close their resolvers together.
        if let Some(listener) = listener {
            let _ = listener.shutdown().await;
        }
    }

    /// Writes the container's entry on each of its networks in the host-wide registry (see
    /// `network::registry`); `active`: it runs, so its names resolve for other projects.
    pub(super) fn register(
        &self,
        record: &ContainerRecord,
        active: bool,
        networks: &[NetworkState],
    ) -> Result<(), EngineError> {
        register(
            &self.project,
            &record.id,
            &record.name,
            &record.network,
            active,
            networks,
        )
    }
}

/// The registry entries of a container (see `Shared::register`).
fn register(
    project: &str,
    id: &str,
    name: &str,
    net: &state::ContainerNet,
    active: bool,
    networks: &[NetworkState],
) -> Result<(), EngineError> {
    for interface in &net.interfaces {
        let Some(network) = networks.iter().find(|n| n.key == interface.network) else {
            continue;
        };
        let names = net
            .dns
            .endpoints
            .iter()
            .find(|e| e.network == interface.network)
            .map(|e| e.names.clone())
            .unwrap_or_default();
        registry::put(
            &network.bridge,
            &registry::Entry {
                project: project.to_string(),
                container: id.to_string(),
                name: name.to_string(),
                address: interface.address,
                address6: interface.address6,
                mac: interface.mac.to_string(),
                names,
                active,
            },
        )
        .map_err(|e| EngineError::Container {
            name: name.to_string(),
            message: e.to_string(),
        })?;
    }
    Ok(())
}

impl Engine {
    /// Plans the networks the services need (keeping the recorded ones), creates what is
    /// missing and serves DNS on them.
    pub(super) async fn ensure_networks(
        &self,
        project: &Project,
        services: &[String],
        out: &Out,
    ) -> Result<(), EngineError> {
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
        let planned = project_net::plan_networks(project, &wanted, &previous, &others).await?;
        let new: Vec<NetworkState> = planned
            .iter()
            .filter(|n| !previous.iter().any(|p| p.key == n.key))
            .cloned()
            .collect();
        if new.is_empty() {
            return project_net::recheck_host_firewall(&project.name, &previous)
                .map_err(EngineError::from);
        }
        for n in new.iter().filter(|n| !n.external) {
            progress(out, "Network", &n.name, "Creating", false);
        }
        let mut ctx = self.shared.net.lock().await;
        if ctx.nl.is_none() {
            ctx.nl = Some(Netlink::connect().map_err(EngineError::Netlink)?);
        }
        // Planning and creating a bridge is one step for the whole host: two projects planning
        // at once would pick the same free subnet.
        let _host_lock = tokio::task::spawn_blocking(host_network_lock).await??;
        // Re-planned under the lock: the host's routes may have changed meanwhile.
        let planned = project_net::plan_networks(project, &wanted, &previous, &others).await?;
        let new: Vec<NetworkState> = planned
            .iter()
            .filter(|n| !previous.iter().any(|p| p.key == n.key))
            .cloned()
            .collect();
        let mut all = previous.clone();
        all.extend(new.iter().cloned());
        let ports = self.all_ports(&ctx);
        let nl = ctx.nl.as_ref().ok_or(EngineError::NoNetlink)?;
        if let Err(e) = project_net::setup(nl, &project.name, &all, &ports).await {
            for n in new.iter().filter(|n| !n.external) {
                progress_error(out, "Network", &n.name, "Error");
            }
            return Err(e.into());
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

    /// Removes one network of the project (its bridge, DNS server and firewall rules), the
    /// others staying as they are.
    pub(super) async fn remove_network(&self, key: &str, out: &Out) -> Result<(), EngineError> {
        let networks = self.shared.networks();
        let Some(net) = networks.iter().find(|n| n.key == key).cloned() else {
            return Ok(());
        };
        let rest: Vec<NetworkState> = networks.into_iter().filter(|n| n.key != key).collect();
        let mut ctx = self.shared.net.lock().await;
        if ctx.nl.is_none() {
            ctx.nl = Some(Netlink::connect().map_err(EngineError::Netlink)?);
        }
        if !net.external {
            progress(out, "Network", &net.name, "Removing", false);
        }
        let others = other_networks(&self.shared.project);
        let ports = self.all_ports(&ctx);
        let nl = ctx.nl.as_ref().ok_or(EngineError::NoNetlink)?;
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
        .map_err(EngineError::from);
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

    /// Removes the project's bridges (not external or shared ones), leftover veths and its
    /// firewall table, and stops its DNS servers.
    pub(super) async fn remove_networks(
        &self,
        interfaces: &[project_net::Interface],
        out: &Out,
    ) -> Result<(), EngineError> {
        let networks = self.shared.networks();
        let mut ctx = self.shared.net.lock().await;
        if let Some(mut dns) = ctx.dns.take() {
            dns.stop_all().await;
        }
        ctx.proxies.clear().await;
        ctx.foreign = None;
        // The project's entries on every network, also those a crashed run left.
        registry::remove_project(&self.shared.project);
        let has_table = crate::network::firewall::projects()
            .map(|p| p.contains(&self.shared.project))
            .unwrap_or(true);
        if networks.is_empty() && interfaces.is_empty() && !has_table {
            return Ok(());
        }
        if ctx.nl.is_none() {
            ctx.nl = Some(Netlink::connect().map_err(EngineError::Netlink)?);
        }
        let others = other_networks(&self.shared.project);
        for n in networks.iter().filter(|n| !n.external) {
            progress(out, "Network", &n.name, "Removing", false);
        }
        let nl = ctx.nl.as_ref().ok_or(EngineError::NoNetlink)?;
        let r = project_net::teardown(nl, &self.shared.project, &networks, interfaces, &others)
            .await
            .map_err(EngineError::from);
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

    /// A new container's interfaces, ports and DNS names; its ports are published now (an error
    /// names a taken port before the container exists).
    /// `name`: the container's name for DNS (its final one); `replacing`: the container it
    /// replaces, whose host ports it takes over (the old one keeps them until it is removed).
    pub(super) async fn plan_container_net(
        &self,
        project: &Project,
        service: &ServiceConfig,
        id: &str,
        name: &str,
        replacing: Option<&ContainerRecord>,
    ) -> Result<(state::ContainerNet, String, String), EngineError> {
        let networks = self.shared.networks();
        let mut ctx = self.shared.net.lock().await;
        let mut in_use: Vec<std::net::IpAddr> = self
            .shared
            .handles()
            .iter()
            .flat_map(|h| {
                h.record
                    .borrow()
                    .network
                    .interfaces
                    .iter()
                    .flat_map(project_net::Interface::addresses)
                    .collect::<Vec<_>>()
            })
            .collect();
        in_use.extend(
            ctx.reserved
                .values()
                .flat_map(|r| r.addresses.iter().copied()),
        );
        // Other projects on the same networks hand out addresses too: their entries count, and
        // this container's are written before the host's network lock is let go.
        let host_lock = if !networks.is_empty() && service.network_mode.is_empty() {
            let lock = tokio::task::spawn_blocking(host_network_lock).await??;
            for n in &networks {
                in_use.extend(registry::addresses_of_others(&n.bridge, &project.name));
            }
            Some(lock)
        } else {
            None
        };
        let interfaces = project_net::plan_interfaces(project, service, id, &networks, &in_use)?;
        let host = ResolvConf::read(std::path::Path::new(
            crate::network::resolv::HOST_RESOLV_CONF,
        ))
        .unwrap_or_default();
        let dns = project_net::dns_entries(service, name, &interfaces, &host)?;
        let mut net = state::ContainerNet {
            interfaces,
            ports: Vec::new(),
            dns,
        };
        let hostname = if service.hostname.is_empty() {
            id[..12].to_string()
        } else {
            service.hostname.clone()
        };
        let peer_resolver = self.network_peer_has_resolver(service);
        let (resolv, hosts) = project_net::container_files(
            service,
            &hostname,
            &net.interfaces,
            &networks,
            &host,
            peer_resolver,
        )?;
        // The addresses are taken once written: the lock goes before the slower port work.
        if let Err(e) = register(&project.name, id, name, &net, false, &networks) {
            // One network's entry may be written already.
            registry::remove_container(&project.name, id);
            return Err(e);
        }
        drop(host_lock);
        match self
            .publish_ports(
                &mut ctx,
                project,
                service,
                &net.interfaces,
                &networks,
                replacing,
            )
            .await
        {
            Ok(ports) => net.ports = ports,
            Err(e) => {
                registry::remove_container(&project.name, id);
                return Err(e);
            }
        }
        let state::ContainerNet {
            interfaces,
            ports,
            dns,
        } = net;
        ctx.reserved.insert(
            id.to_string(),
            Reservation {
                addresses: interfaces
                    .iter()
                    .flat_map(project_net::Interface::addresses)
                    .collect(),
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

    /// Picks and publishes a new container's host ports (an error names a taken port before
    /// the container exists); `replacing`'s ports are taken over.
    async fn publish_ports(
        &self,
        ctx: &mut NetCtx,
        project: &Project,
        service: &ServiceConfig,
        interfaces: &[project_net::Interface],
        networks: &[NetworkState],
        replacing: Option<&ContainerRecord>,
    ) -> Result<Vec<project_net::PortBinding>, EngineError> {
        // Other projects' ports come from an nft listing (milliseconds): only when needed.
        let mut ports_in_use = if service.ports.is_empty() {
            PortsInUse::new()
        } else {
            PortsInUse::of_other_projects(&project.name)?
        };
        if let Some(old) = replacing {
            ctx.superseded.insert(old.id.clone());
        }
        let existing = self.all_ports(ctx);
        ports_in_use.add(&existing);
        let ports = project_net::published_ports(service, interfaces, networks, &mut ports_in_use)?;
        if !ports.is_empty() {
            if ctx.nl.is_none() {
                ctx.nl = Some(Netlink::connect().map_err(EngineError::Netlink)?);
            }
            let mut all = existing;
            all.extend(ports.iter().cloned());
            let nl = ctx.nl.as_ref().ok_or(EngineError::NoNetlink)?;
            project_net::setup(nl, &project.name, networks, &all)
                .await
                .map_err(|error| EngineError::Ports {
                    service: service.name.clone(),
                    error: Box::new(error),
                })?;
            if let Err(error) = ctx.proxies.sync(&all).await {
                // Back to the ports as they were (the table was just written with the new
                // ones): the new container's go, a container it was to replace keeps its own.
                if let Some(old) = replacing {
                    ctx.superseded.remove(&old.id);
                }
                let before = self.all_ports(ctx);
                if let Some(nl) = ctx.nl.as_ref() {
                    let _ = project_net::setup(nl, &project.name, networks, &before).await;
                }
                let _ = ctx.proxies.sync(&before).await;
                return Err(EngineError::Ports {
                    service: service.name.clone(),
                    error: Box::new(error.into()),
                });
            }
        }
        Ok(ports)
    }

    /// Whether the container whose network namespace `service` joins (`network_mode:
    /// service:X` or `container:X`) is on a network, so its resolver listens there.
    fn network_peer_has_resolver(&self, service: &ServiceConfig) -> bool {
        let mode = service.network_mode.as_str();
        let target = match (
            mode.strip_prefix("service:"),
            mode.strip_prefix("container:"),
        ) {
            (Some(s), _) => (s, true),
            (_, Some(c)) => (c, false),
            _ => return false,
        };
        self.shared.handles().iter().any(|h| {
            let r = h.record.borrow();
            let hit = if target.1 {
                r.service == target.0 && !r.oneoff
            } else {
                r.name == target.0
            };
            hit && !r.network.interfaces.is_empty()
        })
    }

    /// Every port the project's containers publish, with those reserved for containers being
    /// created.
    pub(super) fn all_ports(&self, ctx: &NetCtx) -> Vec<project_net::PortBinding> {
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
    pub(super) async fn release_reservation(&self, id: &str) {
        self.shared.net.lock().await.reserved.remove(id);
    }

    /// A replacement that failed gives the container it was to replace its host ports back
    /// (republished by the caller); whether it had taken them.
    pub(super) async fn unsupersede(&self, replaces: Option<&ContainerRecord>) -> bool {
        match replaces {
            Some(old) => self.shared.net.lock().await.superseded.remove(&old.id),
            None => false,
        }
    }

    /// Rewrites the firewall table with the ports of the containers that exist.
    pub(super) async fn republish(&self) -> Result<(), EngineError> {
        let networks = self.shared.networks();
        let mut ctx = self.shared.net.lock().await;
        let Some(nl) = ctx.nl.as_ref() else {
            return Ok(());
        };
        let ports = self.all_ports(&ctx);
        project_net::setup(nl, &self.shared.project, &networks, &ports)
            .await
            .map_err(EngineError::from)?;
        ctx.proxies
            .sync(&ports)
            .await
            .map_err(|e| EngineError::from(project_net::ProjectError::from(e)))
    }
}

/// The networks of the other rcompose projects, and those `network create` made (subnets to
/// avoid, shared networks to keep).
pub(crate) fn other_networks(project: &str) -> Vec<NetworkState> {
    state::projects()
        .into_iter()
        .filter(|p| p != project)
        .filter_map(|p| ProjectState::load(&p).ok().flatten())
        .flat_map(|s| s.networks)
        .chain(
            crate::network::standalone::list()
                .into_iter()
                .map(|s| s.state)
                .filter(|n| crate::network::standalone::owner(&n.bridge) != project),
        )
        .collect()
}

/// A host-wide lock around network planning and bridge creation (held until dropped). It lives
/// outside `RCOMPOSE_RUN`: installations with different state directories share the host's
/// address space.
pub(crate) fn host_network_lock() -> Result<std::fs::File, EngineError> {
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
        .map_err(|error| EngineError::HostLock {
            what: "open",
            path: path.clone(),
            error,
        })?;
    // SAFETY: flock on an fd we own; blocks until the other holder is done.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(EngineError::HostLock {
            what: "lock",
            path,
            error: std::io::Error::last_os_error(),
        });
    }
    Ok(f)
}
