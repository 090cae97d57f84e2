//! A compose project's networking, composed from the pieces of this module: which networks the
//! project needs and their subnets (ipam), each container's interfaces and addresses, its
//! published ports, the bridges and the nftables table (netlink, firewall), the container's
//! resolv.conf and /etc/hosts (resolv), and its DNS records (dns).
//!
//! Planning is pure and returns plain data ([`NetworkState`], [`Interface`], [`PortBinding`]) that
//! the caller keeps on disk (serde), so a restarted supervisor or `down` after a crash finds the
//! same subnets, addresses, veths and ports. The kernel work ([`setup`], [`attach`], [`detach`],
//! [`teardown`]) only takes that data. docs/networking.md ("Project flow") gives the order.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::BorrowedFd;
use std::str::FromStr;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkInfo};
use serde::{Deserialize, Serialize};

use super::dns::{ContainerDns, Endpoint};
use super::firewall::{self, FirewallError, NetworkRules, PortRange, ProjectRules, Protocol};
use super::host_firewall;
use super::ipam::{self, HostRoute, IpamError, Ipv4Net, Pool, Subnet};
use super::ipam6::{self, HostRoute6, Ipam6Error, Ipv6Net, Ipv6State};
use super::names::{self, MacAddr, NamesError};
use super::netlink::{self, Attachment, BridgeConfig, Netlink, NetlinkError};
use super::resolv::{self, HostsFile, ResolvConf, ResolvError};
use crate::compose::model::{
    IpamConfig, NetworkConfig, Project, ServiceConfig, ServiceNetworkConfig, ServicePortConfig,
};

/// `driver_opts` key for the MTU of a network, as Docker names it.
pub const MTU_OPTION: &str = "com.docker.network.driver.mtu";
/// `driver_opts` key turning inter-container traffic off, as Docker names it.
pub const ICC_OPTION: &str = "com.docker.network.bridge.enable_icc";
/// `driver_opts` key turning masquerade off, as Docker names it.
pub const MASQUERADE_OPTION: &str = "com.docker.network.bridge.enable_ip_masquerade";
/// `driver_opts` key for the default host address of published ports, as Docker names it.
pub const HOST_BINDING_OPTION: &str = "com.docker.network.bridge.host_binding_ipv4";
/// `driver_opts` key naming the bridge, as Docker names it.
pub const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("service {service} does not exist in the project")]
    UnknownService { service: String },
    #[error("service {service} uses network {network}, which is not declared in the project")]
    UndeclaredNetwork { service: String, network: String },
    #[error("network {network}: {driver} needs driver_opts parent (the host interface to share)")]
    MacvlanParent {
        network: String,
        driver: &'static str,
    },
    #[error("network {network}: parent interface {parent} does not exist on this host")]
    ParentMissing { network: String, parent: String },
    #[error("network {network}: {what} is not supported with the {driver} driver")]
    MacvlanUnsupported {
        network: String,
        what: &'static str,
        driver: &'static str,
    },
    #[error("network {network}: driver {driver:?} is not supported (bridge, macvlan or ipvlan)")]
    Driver { network: String, driver: String },
    #[error("network {network}: invalid driver_opts {option}={value:?}: {reason}")]
    DriverOpt {
        network: String,
        option: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("network {network}: enable_ipv4: false is not supported (rcompose networks are IPv4)")]
    Ipv4Disabled { network: String },
    #[error("external network {name} not found: there is no bridge {bridge} or {name} (create it, or drop `external: true`)")]
    ExternalMissing { name: String, bridge: String },
    #[error("external network {name}: link {link} is a {kind}, not a bridge")]
    ExternalNotBridge {
        name: String,
        link: String,
        kind: String,
    },
    #[error("external network {name}: bridge {link} has no IPv4 address")]
    ExternalNoAddress { name: String, link: String },
    #[error("network {network}: ipam subnet {subnet} differs from {shared}, the subnet of network {name} that another project already created")]
    SharedSubnet {
        network: String,
        name: String,
        subnet: Ipv4Net,
        shared: Ipv4Net,
    },
    #[error(
        "network {network}: subnet {subnet} overlaps subnet {other_subnet} of network {other}"
    )]
    SubnetTaken {
        network: String,
        subnet: Ipv4Net,
        other: String,
        other_subnet: Ipv4Net,
    },
    #[error("network {network}: bridge name {bridge} is already taken by {by}: choose another com.docker.network.bridge.name")]
    BridgeTaken {
        network: String,
        bridge: String,
        by: String,
    },
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error("cannot read the host's IPv6 routes: {0}")]
    HostRoutes6(#[source] Ipam6Error),
    #[error("network {network}: {source}")]
    Ipam6 {
        network: String,
        #[source]
        source: Ipam6Error,
    },
    #[error("service {service}: ipv6_address {value:?} on network {network}: {reason}")]
    Address6 {
        service: String,
        network: String,
        value: String,
        reason: String,
    },
    #[error("cannot read link {name} of the host")]
    HostLink {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("service {service}: network_mode {mode:?} is not supported (use host, none, service:NAME or container:NAME)")]
    NetworkMode { service: String, mode: String },
    #[error("service {service}: network {network} was not planned (plan the networks of every service first)")]
    NetworkNotPlanned { service: String, network: String },
    #[error("service {service}: invalid ipv4_address {value:?} on network {network}: not an IPv4 address")]
    AddressSyntax {
        service: String,
        network: String,
        value: String,
    },
    #[error("service {service}: ipv4_address {address} on network {network}: needs a network with a subnet set in its ipam config")]
    StaticNeedsSubnet {
        service: String,
        network: String,
        address: Ipv4Addr,
    },
    #[error("service {service}: ipv4_address {address} on network {network} is already used by another container")]
    AddressInUse {
        service: String,
        network: String,
        address: Ipv4Addr,
    },
    #[error("service {service}: network {network}: {source}")]
    Address {
        service: String,
        network: String,
        #[source]
        source: IpamError,
    },
    #[error("service {service}: network {network}: {source}")]
    Mac {
        service: String,
        network: String,
        #[source]
        source: NamesError,
    },
    #[error("service {service}: invalid interface_name {name:?} on network {network}: {reason}")]
    InterfaceName {
        service: String,
        network: String,
        name: String,
        reason: &'static str,
    },
    #[error("service {service}: invalid port {port}: {reason}")]
    Port {
        service: String,
        port: String,
        reason: String,
    },
    #[error("service {service}: no free host port for {port}")]
    NoFreePort { service: String, port: String },
    #[error("cannot check host port {port}/{protocol} on {addr}")]
    PortProbe {
        protocol: Protocol,
        addr: IpAddr,
        port: u16,
        #[source]
        source: io::Error,
    },
    #[error("service {service}: cannot publish ports: it is on no network that reaches the host (network_mode {mode:?}, or only internal networks)")]
    NoPortNetwork { service: String, mode: String },
    #[error("network {network} is not in the project's network state")]
    UnknownNetwork { network: String },
    #[error("external network {name}: bridge {bridge} does not exist any more")]
    ExternalGone { name: String, bridge: String },
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    #[error(transparent)]
    Proxy(#[from] super::proxy::ProxyError),
    /// A host port that cannot be published, with the service that asked for it.
    #[error("service {service}: {source}")]
    ServicePort {
        service: String,
        #[source]
        source: FirewallError,
    },
    #[error(transparent)]
    Resolv(#[from] ResolvError),
    #[error("{error}; rolling back also failed: {rollback}")]
    Rollback {
        #[source]
        error: Box<ProjectError>,
        rollback: Box<ProjectError>,
    },
    #[error("detaching the container failed: {}", list(.errors))]
    Detach { errors: Vec<ProjectError> },
    #[error("cleaning up the network of project {project} failed: {}", list(.errors))]
    Teardown {
        project: String,
        errors: Vec<ProjectError>,
    },
}

fn list(errors: &[ProjectError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

pub type Result<T> = std::result::Result<T, ProjectError>;

/// Serde through `Display`/`FromStr`, for the network types that have no serde of their own.
pub(crate) mod text {
    use super::*;
    use serde::{de::Error as _, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(
        value: &T,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(d: D) -> std::result::Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }

    pub mod option {
        use super::*;

        pub fn serialize<T: Display, S: Serializer>(
            value: &Option<T>,
            s: S,
        ) -> std::result::Result<S::Ok, S::Error> {
            match value {
                Some(v) => s.collect_str(v),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, T, D>(d: D) -> std::result::Result<Option<T>, D::Error>
        where
            T: FromStr,
            T::Err: Display,
            D: Deserializer<'de>,
        {
            Option::<String>::deserialize(d)?
                .map(|s| s.parse().map_err(D::Error::custom))
                .transpose()
        }
    }

    pub mod protocol {
        use super::*;

        pub fn serialize<S: Serializer>(
            p: &Protocol,
            s: S,
        ) -> std::result::Result<S::Ok, S::Error> {
            s.collect_str(p)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> std::result::Result<Protocol, D::Error> {
            match String::deserialize(d)?.as_str() {
                "tcp" => Ok(Protocol::Tcp),
                "udp" => Ok(Protocol::Udp),
                other => Err(D::Error::custom(format!("unknown protocol {other:?}"))),
            }
        }
    }
}

/// A project network as created (kept in the project's state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkState {
    /// The compose key (`default`, `backend`).
    pub key: String,
    /// The resolved name: `<project>_<key>`, or `name:`.
    pub name: String,
    /// The Linux bridge.
    pub bridge: String,
    #[serde(with = "text")]
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    #[serde(with = "text::option", default)]
    pub ip_range: Option<Ipv4Net>,
    /// The subnet comes from the user (ipam config, or an external bridge): only then may a
    /// service set `ipv4_address`, as with Docker.
    pub configured: bool,
    pub internal: bool,
    pub external: bool,
    pub mtu: Option<u32>,
    /// Per top-level key hashes of the network's compose configuration when it was created
    /// (`plan::observed::field_hashes`): `up` recreates a network whose configuration changed.
    #[serde(default)]
    pub config_fields: std::collections::BTreeMap<String, String>,
    /// The bridge driver's options users set (`driver_opts`).
    #[serde(default)]
    pub options: BridgeOptions,
    /// `bridge` (the default) or `macvlan`.
    #[serde(default, skip_serializing_if = "NetDriver::is_bridge")]
    pub driver: NetDriver,
    /// The IPv6 subnet and gateway of a network with `enable_ipv6: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6State>,
}

/// The driver of a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum NetDriver {
    /// A Linux bridge of rcompose's (`NetworkState::bridge`), NAT and firewall rules.
    #[default]
    Bridge,
    /// Each container gets a macvlan link of the host's `parent` interface, on the parent's
    /// own network: no bridge, no NAT, no published ports (`bridge` then only names the
    /// network's registry directory).
    Macvlan { parent: String, mode: String },
    /// Each container gets an ipvlan link of `parent` (sharing its MAC address): `mode` l2
    /// (the default, on the parent's network as macvlan), l3 or l3s (routed: the default route
    /// is the link itself); `flag` bridge (the default), private or vepa.
    Ipvlan {
        parent: String,
        mode: String,
        flag: String,
    },
}

impl NetDriver {
    pub fn is_bridge(&self) -> bool {
        matches!(self, NetDriver::Bridge)
    }

    pub fn name(&self) -> &'static str {
        match self {
            NetDriver::Bridge => "bridge",
            NetDriver::Macvlan { .. } => "macvlan",
            NetDriver::Ipvlan { .. } => "ipvlan",
        }
    }

    /// The host interface a macvlan or ipvlan network shares.
    pub fn parent(&self) -> Option<&str> {
        match self {
            NetDriver::Bridge => None,
            NetDriver::Macvlan { parent, .. } | NetDriver::Ipvlan { parent, .. } => Some(parent),
        }
    }
}

/// Docker's bridge driver options besides the name and MTU.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeOptions {
    /// `com.docker.network.bridge.enable_icc: false`: containers of the network cannot reach
    /// each other (each bridge port is isolated), only the gateway and the outside.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_icc: bool,
    /// `com.docker.network.bridge.enable_ip_masquerade: false`: no masquerade out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_masquerade: bool,
    /// `com.docker.network.bridge.host_binding_ipv4`: the host address of ports published
    /// without one by containers on this network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_binding: Option<Ipv4Addr>,
}

impl NetworkState {
    /// The address tracker of this network, holding `in_use`.
    fn subnet_tracker(&self, in_use: &[Ipv4Addr]) -> std::result::Result<Subnet, IpamError> {
        // Always "configured", so addresses of running containers can be reserved; whether a
        // static address is allowed is checked against `self.configured`.
        let mut subnet = Subnet::configured(self.subnet, Some(self.gateway), self.ip_range)?;
        for &addr in in_use {
            // Addresses of other networks, or the reserved ones, are no concern of this one.
            let _ = subnet.reserve(addr);
        }
        Ok(subnet)
    }
}

/// One container's place on one network (kept in the project's state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// The network's compose key.
    pub network: String,
    /// The name inside the container: eth0, eth1... or `interface_name`.
    pub ifname: String,
    /// The host end of the veth pair.
    pub host_veth: String,
    pub address: Ipv4Addr,
    /// The IPv6 address on a network with IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<Ipv6Addr>,
    #[serde(with = "text")]
    pub mac: MacAddr,
    /// Network aliases (DNS names on this network besides the service and container names).
    pub aliases: Vec<String>,
    /// The container's default route goes through this network's gateway.
    pub default_gateway: bool,
}

impl Interface {
    /// Its addresses: the IPv4 one, and the IPv6 one when it has one.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> {
        [
            Some(IpAddr::V4(self.address)),
            self.address6.map(IpAddr::V6),
        ]
        .into_iter()
        .flatten()
    }
}

/// A published port of a container (kept in the project's state: a port picked at random must
/// stay the same when the table is rebuilt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortBinding {
    #[serde(with = "text::protocol")]
    pub protocol: Protocol,
    /// `None`: every host address, IPv4 and IPv6; `::` every IPv6 one.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    /// The container's IPv6 address, when its network has IPv6: IPv6 clients reach it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_ip6: Option<Ipv6Addr>,
    pub container_port: u16,
}

impl PortBinding {
    /// The firewall's view (fails only on a state file holding port 0).
    pub fn to_firewall(&self) -> Result<firewall::PublishedPort> {
        Ok(firewall::PublishedPort {
            protocol: self.protocol,
            host_ip: self.host_ip,
            host_ports: PortRange::single(self.host_port)?,
            container_ip: self.container_ip,
            container_ip6: self.container_ip6,
            container_ports: PortRange::single(self.container_port)?,
        })
    }
}

/// Host ports that must not be picked: those of other projects (read from their nftables
/// tables, as a DNAT rule holds no socket) and those already given to this project's
/// containers.
#[derive(Debug, Clone, Default)]
pub struct PortsInUse {
    taken: Vec<(Protocol, Option<IpAddr>, PortRange)>,
}

impl PortsInUse {
    pub fn new() -> PortsInUse {
        PortsInUse::default()
    }

    /// The ports every other project publishes.
    pub fn of_other_projects(project: &str) -> Result<PortsInUse> {
        let mut in_use = PortsInUse::new();
        for p in firewall::publications_of_others(project)? {
            in_use.taken.push((p.protocol, p.host_ip, p.host_ports));
        }
        Ok(in_use)
    }

    /// Adds ports already given to containers (from the caller's state).
    pub fn add(&mut self, bindings: &[PortBinding]) {
        for b in bindings {
            if let Ok(range) = PortRange::single(b.host_port) {
                self.taken.push((b.protocol, b.host_ip, range));
            }
        }
    }

    fn contains(&self, protocol: Protocol, ip: Option<IpAddr>, port: u16) -> bool {
        self.taken.iter().any(|(p, i, r)| {
            *p == protocol
                && firewall::addrs_overlap(*i, ip)
                && r.start() <= port
                && port <= r.end()
        })
    }
}

/// What the host has that planning looks at: its routes, and the links external networks name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostView {
    pub routes: Vec<HostRoute>,
    pub links: Vec<HostLink>,
    /// The host's IPv6 routes (read only when a network wants IPv6).
    pub routes6: Vec<HostRoute6>,
    /// Where automatic IPv6 subnets come from (`ipam6::default_pool`; `None` when no network
    /// wants IPv6).
    pub pool6: Option<Ipv6Net>,
}

/// A link of the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostLink {
    pub name: String,
    /// `bridge`, `veth`...; `None` for a device without a kind (a physical one).
    pub kind: Option<String>,
    pub mtu: Option<u32>,
    /// IPv4 addresses with their prefix length.
    pub addresses: Vec<(Ipv4Addr, u8)>,
}

pub fn network_name(project: &Project, key: &str, config: &NetworkConfig) -> String {
    if !config.name.is_empty() {
        config.name.clone()
    } else if config.external {
        key.to_string()
    } else {
        format!("{}_{key}", project.name)
    }
}

/// The links an external network may be: the bridge rcompose would create for it, or a link of
/// that exact name (a bridge made by hand or by another tool).
fn external_candidates(name: &str) -> [String; 2] {
    [names::bridge_name(name), name.to_string()]
}

/// Whether the service lives in another namespace than its own networks' (no interfaces).
fn shares_namespace(mode: &str) -> bool {
    mode == "host"
        || mode == "none"
        || mode.starts_with("service:")
        || mode.starts_with("container:")
}

/// The network keys `services` join, in the project's order of networks.
pub fn used_networks<'p>(
    project: &'p Project,
    services: &[&str],
) -> Result<Vec<(&'p str, &'p NetworkConfig)>> {
    let mut used = BTreeSet::new();
    for &name in services {
        let service = project
            .services
            .get(name)
            .ok_or_else(|| ProjectError::UnknownService {
                service: name.to_string(),
            })?;
        if !service.network_mode.is_empty() {
            continue;
        }
        for key in service.networks.keys() {
            if !project.networks.contains_key(key) {
                return Err(ProjectError::UndeclaredNetwork {
                    service: name.to_string(),
                    network: key.clone(),
                });
            }
            used.insert(key.as_str());
        }
    }
    Ok(project
        .networks
        .iter()
        .filter(|(k, _)| used.contains(k.as_str()))
        .map(|(k, v)| (k.as_str(), v))
        .collect())
}

/// Reads what [`plan_networks_on`] needs from the host: the routing table, and the links the
/// external networks of `services` may be (from the calling thread's network namespace).
pub async fn host_view(project: &Project, services: &[&str]) -> Result<HostView> {
    let routes = ipam::host_routes()?;
    let mut external: Vec<String> = Vec::new();
    let mut ipv6 = false;
    for (key, config) in used_networks(project, services)? {
        ipv6 |= config.enable_ipv6 == Some(true);
        if config.external {
            external.extend(external_candidates(&network_name(project, key, config)));
        } else if matches!(config.driver.as_str(), "macvlan" | "ipvlan") {
            external.extend(config.driver_opts.get("parent").cloned());
        } else if let Some(bridge) = config.driver_opts.get(BRIDGE_NAME_OPTION) {
            // A bridge name the file chooses may be taken by a link of the host.
            external.push(bridge.clone());
        }
    }
    let links = if external.is_empty() {
        Vec::new()
    } else {
        read_links(&external).await?
    };
    let routes6 = if ipv6 {
        ipam6::host_routes().map_err(ProjectError::HostRoutes6)?
    } else {
        Vec::new()
    };
    Ok(HostView {
        routes,
        links,
        routes6,
        pool6: ipv6.then(ipam6::default_pool),
    })
}

fn rtnetlink_io(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

/// The links of `names` that exist, with their kind, MTU and IPv4 addresses.
async fn read_links(names: &[String]) -> Result<Vec<HostLink>> {
    let err = |name: &str| {
        let name = name.to_string();
        move |source| ProjectError::HostLink { name, source }
    };
    let (connection, handle, _) = rtnetlink::new_connection().map_err(err("(netlink socket)"))?;
    let task = tokio::spawn(connection);
    let mut found = Vec::new();
    for name in names {
        let mut links = handle.link().get().match_name(name.clone()).execute();
        let link = match links.try_next().await {
            Ok(Some(link)) => link,
            Ok(None) => continue,
            Err(e) => {
                let e = rtnetlink_io(e);
                if e.raw_os_error() == Some(libc::ENODEV) {
                    continue;
                }
                task.abort();
                return Err(err(name)(e));
            }
        };
        let mut host = HostLink {
            name: name.clone(),
            ..HostLink::default()
        };
        for attr in &link.attributes {
            match attr {
                LinkAttribute::Mtu(mtu) => host.mtu = Some(*mtu),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(kind) = info {
                            host.kind = Some(kind.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        let index = link.header.index;
        let mut addresses = handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        loop {
            match addresses.try_next().await {
                Ok(Some(msg)) => {
                    if msg.header.index != index {
                        continue;
                    }
                    let ip = msg.attributes.iter().find_map(|a| match a {
                        AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                        _ => None,
                    });
                    if let Some(ip) = ip {
                        host.addresses.push((ip, msg.header.prefix_len));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    task.abort();
                    return Err(err(name)(rtnetlink_io(e)));
                }
            }
        }
        found.push(host);
    }
    task.abort();
    Ok(found)
}

/// Plans the networks `services` use, reading the host (routes, external bridges) first.
/// `previous`: this project's networks from its state, reused so restarts keep their subnets;
/// `others`: the networks of the other rcompose projects (subnets to avoid; a network with the
/// same resolved name is the same network and is shared as it is).
pub async fn plan_networks(
    project: &Project,
    services: &[&str],
    previous: &[NetworkState],
    others: &[NetworkState],
) -> Result<Vec<NetworkState>> {
    let host = host_view(project, services).await?;
    let pool = Pool::from_env()?;
    plan_networks_on(&host, &pool, project, services, previous, others)
}

/// A non-external network's settings from its compose definition.
struct Wanted<'a> {
    key: &'a str,
    name: String,
    bridge: String,
    /// `enable_ipv6: true`.
    ipv6: bool,
    ipam: &'a IpamConfig,
    internal: bool,
    mtu: Option<u32>,
    config_fields: std::collections::BTreeMap<String, String>,
    options: BridgeOptions,
    driver: NetDriver,
}

/// Go's `strconv.ParseBool`, which docker uses for driver options.
fn parse_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn is_ipv6_pool(p: &crate::compose::model::IpamPool) -> bool {
    [&p.subnet, &p.gateway, &p.ip_range]
        .iter()
        .any(|s| s.contains(':'))
}

fn wanted<'a>(project: &Project, key: &'a str, config: &'a NetworkConfig) -> Result<Wanted<'a>> {
    let name = network_name(project, key, config);
    // macvlan or ipvlan: links of a parent interface, no bridge.
    let (macvlan, link_driver) = match config.driver.as_str() {
        "" | "bridge" => (false, "bridge"),
        "macvlan" => (true, "macvlan"),
        "ipvlan" => (true, "ipvlan"),
        _ => {
            return Err(ProjectError::Driver {
                network: key.to_string(),
                driver: config.driver.clone(),
            })
        }
    };
    if macvlan && config.internal {
        return Err(ProjectError::MacvlanUnsupported {
            network: key.to_string(),
            what: "internal: true",
            driver: link_driver,
        });
    }
    if config.enable_ipv4 == Some(false) {
        return Err(ProjectError::Ipv4Disabled {
            network: key.to_string(),
        });
    }
    let ipv6 = config.enable_ipv6 == Some(true);
    if macvlan && ipv6 {
        return Err(ProjectError::MacvlanUnsupported {
            network: key.to_string(),
            what: "enable_ipv6: true",
            driver: link_driver,
        });
    }
    if !ipv6 && config.ipam.config.iter().any(is_ipv6_pool) {
        tracing::warn!(
            network = key,
            "an IPv6 ipam config without enable_ipv6: true is ignored"
        );
    }
    let opt_err = |option, value: &str, reason| ProjectError::DriverOpt {
        network: key.to_string(),
        option,
        value: value.to_string(),
        reason,
    };
    let mut mtu = None;
    let mut bridge = names::bridge_name(&name);
    let mut options = BridgeOptions::default();
    let mut driver = NetDriver::Bridge;
    if macvlan {
        let parent = config
            .driver_opts
            .get("parent")
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .ok_or_else(|| ProjectError::MacvlanParent {
                network: key.to_string(),
                driver: link_driver,
            })?;
        let opt = |name: &str| {
            config
                .driver_opts
                .get(name)
                .map(|m| m.trim().to_string())
                .unwrap_or_default()
        };
        if link_driver == "ipvlan" {
            let (mode, flag) = (opt("ipvlan_mode"), opt("ipvlan_flag"));
            if !matches!(mode.as_str(), "" | "l2" | "l3" | "l3s") {
                return Err(opt_err("ipvlan_mode", &mode, "expected l2, l3 or l3s"));
            }
            if !matches!(flag.as_str(), "" | "bridge" | "private" | "vepa") {
                return Err(opt_err(
                    "ipvlan_flag",
                    &flag,
                    "expected bridge, private or vepa",
                ));
            }
            // No link of its own: the name only keys the network's registry directory.
            bridge = format!("iv-{}", &names::network_id(&name)[..12]);
            driver = NetDriver::Ipvlan { parent, mode, flag };
        } else {
            let mode = opt("macvlan_mode");
            if !matches!(
                mode.as_str(),
                "" | "bridge" | "private" | "vepa" | "passthru"
            ) {
                return Err(opt_err(
                    "macvlan_mode",
                    &mode,
                    "expected bridge, private, vepa or passthru",
                ));
            }
            // No link of its own: the name only keys the network's registry directory.
            bridge = format!("mv-{}", &names::network_id(&name)[..12]);
            driver = NetDriver::Macvlan { parent, mode };
        }
    }
    for (option, value) in &config.driver_opts {
        if macvlan && option != MTU_OPTION {
            // parent and the mode are read above; bridge options do not apply.
            if !matches!(
                option.as_str(),
                "parent" | "macvlan_mode" | "ipvlan_mode" | "ipvlan_flag"
            ) {
                tracing::warn!(network = key, option = %option, driver = link_driver, "driver option not supported, ignored");
            }
            continue;
        }
        match option.as_str() {
            ICC_OPTION => {
                let on = parse_bool(value)
                    .ok_or_else(|| opt_err(ICC_OPTION, value, "expected true or false"))?;
                options.no_icc = !on;
            }
            MASQUERADE_OPTION => {
                let on = parse_bool(value)
                    .ok_or_else(|| opt_err(MASQUERADE_OPTION, value, "expected true or false"))?;
                options.no_masquerade = !on;
            }
            HOST_BINDING_OPTION => {
                let ip: Ipv4Addr = value
                    .trim()
                    .parse()
                    .map_err(|_| opt_err(HOST_BINDING_OPTION, value, "expected an IPv4 address"))?;
                options.host_binding = Some(ip);
            }
            MTU_OPTION => {
                let v: u32 = value
                    .trim()
                    .parse()
                    .map_err(|_| opt_err(MTU_OPTION, value, "not a number"))?;
                // 68 is the smallest MTU IPv4 allows.
                if !(68..=65535).contains(&v) {
                    return Err(opt_err(MTU_OPTION, value, "must be between 68 and 65535"));
                }
                mtu = Some(v);
            }
            BRIDGE_NAME_OPTION => {
                // `.` and `..` are no link names, and the bridge names a directory of the
                // network registry: never one that leaves it.
                let ok = (1..=names::IFNAME_MAX).contains(&value.len())
                    && value != "."
                    && value != ".."
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
                if !ok {
                    return Err(opt_err(
                        BRIDGE_NAME_OPTION,
                        value,
                        "expected 1 to 15 characters of [A-Za-z0-9_.-], not . or ..",
                    ));
                }
                bridge = value.clone();
            }
            other => {
                tracing::warn!(
                    network = key,
                    option = other,
                    "driver option not supported, ignored"
                );
            }
        }
    }
    Ok(Wanted {
        key,
        name,
        bridge,
        ipv6,
        ipam: &config.ipam,
        internal: config.internal,
        mtu,
        config_fields: network_fields(config),
        options,
        driver,
    })
}

/// Per-key hashes of a network's compose configuration, to tell later what changed.
pub fn network_fields(config: &NetworkConfig) -> std::collections::BTreeMap<String, String> {
    serde_json::to_value(config)
        .map(|v| crate::plan::observed::field_hashes(&v))
        .unwrap_or_default()
}

fn external_state(host: &HostView, key: &str, name: &str) -> Result<NetworkState> {
    let candidates = external_candidates(name);
    let link = candidates
        .iter()
        .find_map(|c| host.links.iter().find(|l| &l.name == c))
        .ok_or_else(|| ProjectError::ExternalMissing {
            name: name.to_string(),
            bridge: candidates[0].clone(),
        })?;
    if link.kind.as_deref() != Some("bridge") {
        return Err(ProjectError::ExternalNotBridge {
            name: name.to_string(),
            link: link.name.clone(),
            kind: link.kind.clone().unwrap_or_else(|| "device".into()),
        });
    }
    let (gateway, prefix) =
        *link
            .addresses
            .first()
            .ok_or_else(|| ProjectError::ExternalNoAddress {
                name: name.to_string(),
                link: link.name.clone(),
            })?;
    let subnet =
        Ipv4Net::truncating(gateway, prefix).ok_or_else(|| ProjectError::ExternalNoAddress {
            name: name.to_string(),
            link: link.name.clone(),
        })?;
    Ok(NetworkState {
        key: key.to_string(),
        name: name.to_string(),
        bridge: link.name.clone(),
        subnet,
        gateway,
        ip_range: None,
        configured: true,
        internal: false,
        external: true,
        mtu: link.mtu,
        config_fields: Default::default(),
        options: BridgeOptions::default(),
        driver: NetDriver::Bridge,
        ipv6: None,
    })
}

fn state_from(w: &Wanted<'_>, subnet: &Subnet) -> NetworkState {
    NetworkState {
        key: w.key.to_string(),
        name: w.name.clone(),
        bridge: w.bridge.clone(),
        subnet: subnet.net(),
        gateway: subnet.gateway(),
        ip_range: (subnet.range() != subnet.net()).then_some(subnet.range()),
        configured: subnet.is_configured(),
        internal: w.internal,
        external: false,
        mtu: w.mtu,
        config_fields: w.config_fields.clone(),
        options: w.options.clone(),
        driver: w.driver.clone(),
        ipv6: None,
    }
}

/// [`plan_networks`] on a given view of the host and address pool (pure: what the tests use).
pub fn plan_networks_on(
    host: &HostView,
    pool: &Pool,
    project: &Project,
    services: &[&str],
    previous: &[NetworkState],
    others: &[NetworkState],
) -> Result<Vec<NetworkState>> {
    let used = used_networks(project, services)?;
    let mut wanted_list = Vec::new();
    let mut planned: Vec<Option<NetworkState>> = Vec::new();
    for (key, config) in &used {
        if config.external {
            let name = network_name(project, key, config);
            // One rcompose knows (another project's, or `network create`'s) is taken as
            // recorded, driver and all; else it must be a bridge of the host.
            let recorded = others.iter().find(|o| o.name == name && !o.external);
            planned.push(Some(match recorded {
                Some(o) => NetworkState {
                    key: key.to_string(),
                    external: true,
                    config_fields: Default::default(),
                    ..o.clone()
                },
                None => external_state(host, key, &name)?,
            }));
            wanted_list.push(None);
        } else {
            wanted_list.push(Some(wanted(project, key, config)?));
            planned.push(None);
        }
    }
    check_bridge_names(host, &wanted_list, previous, others)?;
    for w in wanted_list.iter().flatten() {
        if let Some(parent) = w.driver.parent() {
            if !host.links.iter().any(|l| l.name == parent) {
                return Err(ProjectError::ParentMissing {
                    network: w.key.to_string(),
                    parent: parent.to_string(),
                });
            }
        }
    }
    // This project's own bridges carry routes to the subnets being reused: not obstacles.
    let own: BTreeSet<&str> = wanted_list
        .iter()
        .flatten()
        .map(|w| w.bridge.as_str())
        .chain(previous.iter().map(|p| p.bridge.as_str()))
        .collect();
    let routes: Vec<HostRoute> = host
        .routes
        .iter()
        .filter(|r| !own.contains(r.iface.as_str()))
        .cloned()
        .collect();
    // A macvlan or ipvlan network lives on its parent's network: the parent's routes are its
    // own.
    let routes_of = |w: &Wanted<'_>| -> Vec<HostRoute> {
        match w.driver.parent() {
            Some(parent) => routes
                .iter()
                .filter(|r| r.iface != parent)
                .cloned()
                .collect(),
            None => routes.clone(),
        }
    };
    // Every subnet but the network's own: other projects', this plan's, and this project's
    // networks that the plan does not cover (an `up` plans only the networks of the services
    // it starts; a network made by an earlier step keeps its subnet, and its route is on one
    // of the project's own bridges, which the route check leaves out).
    let in_use = |planned: &[Option<NetworkState>], skip_name: &str| -> Vec<Ipv4Net> {
        others
            .iter()
            .chain(previous)
            .filter(|o| o.name != skip_name && !o.external)
            .map(|o| o.subnet)
            .chain(
                planned
                    .iter()
                    .flatten()
                    .filter(|p| !p.external)
                    .map(|p| p.subnet),
            )
            .collect()
    };

    // First the networks whose subnet is known (shared, reused, configured), then automatic
    // ones, so an automatic subnet never takes one a later network of the file asks for.
    let mut automatic = Vec::new();
    for (i, w) in wanted_list.iter().enumerate() {
        let Some(w) = w else { continue };
        let configured = w.ipam.config.iter().any(|p| !is_ipv6_pool(p));
        let shared = others.iter().find(|o| o.name == w.name && !o.external);
        if let Some(shared) = shared {
            // Another project created this named network: same bridge, same subnet.
            let subnet = ipam::network_subnet(&w.name, w.ipam, pool, &[], &[])?;
            if subnet.is_configured() && subnet.net() != shared.subnet {
                return Err(ProjectError::SharedSubnet {
                    network: w.key.to_string(),
                    name: w.name.clone(),
                    subnet: subnet.net(),
                    shared: shared.subnet,
                });
            }
            planned[i] = Some(NetworkState {
                key: w.key.to_string(),
                internal: w.internal,
                mtu: w.mtu.or(shared.mtu),
                ..shared.clone()
            });
            continue;
        }
        let busy = in_use(&planned, &w.name);
        let reusable = previous.iter().find(|p| {
            p.key == w.key
                && p.name == w.name
                && p.bridge == w.bridge
                && !p.external
                && !busy.iter().any(|b| b.overlaps(p.subnet))
                && !routes.iter().any(|r| r.net.overlaps(p.subnet))
        });
        if let Some(prev) = reusable {
            let keep = if configured {
                // Reused only when the file still asks for the same addresses.
                let subnet = ipam::network_subnet(&w.name, w.ipam, pool, &[], &[])?;
                (subnet.net(), subnet.gateway(), subnet.range())
                    == (
                        prev.subnet,
                        prev.gateway,
                        prev.ip_range.unwrap_or(prev.subnet),
                    )
            } else {
                !prev.configured
            };
            if keep {
                planned[i] = Some(NetworkState {
                    internal: w.internal,
                    mtu: w.mtu,
                    ..prev.clone()
                });
                continue;
            }
        }
        if configured {
            let subnet = ipam::network_subnet(&w.name, w.ipam, pool, &busy, &routes_of(w))
                .map_err(|e| name_overlap(e, others, &planned))?;
            planned[i] = Some(state_from(w, &subnet));
        } else {
            automatic.push(i);
        }
    }
    for i in automatic {
        let Some(w) = &wanted_list[i] else { continue };
        let busy = in_use(&planned, &w.name);
        let subnet = ipam::network_subnet(&w.name, w.ipam, pool, &busy, &routes_of(w))
            .map_err(|e| name_overlap(e, others, &planned))?;
        planned[i] = Some(state_from(w, &subnet));
    }
    let routes6: Vec<HostRoute6> = host
        .routes6
        .iter()
        .filter(|r| !own.contains(r.iface.as_str()))
        .cloned()
        .collect();
    let pool6 = host.pool6.unwrap_or_else(ipam6::default_pool);
    plan_ipv6(
        &routes6,
        pool6,
        &wanted_list,
        &mut planned,
        previous,
        others,
    )?;
    Ok(planned.into_iter().flatten().collect())
}

/// The IPv6 side of the planned networks that want it: a shared network's, the one a network
/// had (same subnet while its file asks for the same), else from its ipam config or `pool`;
/// `routes`: the host's IPv6 routes but those of the project's own bridges.
fn plan_ipv6(
    routes: &[HostRoute6],
    pool: Ipv6Net,
    wanted_list: &[Option<Wanted<'_>>],
    planned: &mut [Option<NetworkState>],
    previous: &[NetworkState],
    others: &[NetworkState],
) -> Result<()> {
    for (i, w) in wanted_list.iter().enumerate() {
        let (Some(w), Some(state)) = (w, &planned[i]) else {
            continue;
        };
        if !w.ipv6 {
            if let Some(state) = planned[i].as_mut() {
                state.ipv6 = None;
            }
            continue;
        }
        let err = |source| ProjectError::Ipam6 {
            network: w.key.to_string(),
            source,
        };
        // A network another project made is taken with its IPv6 side (or its lack of one).
        if others.iter().any(|o| o.name == w.name && !o.external) {
            continue;
        }
        let busy: Vec<Ipv6Net> = others
            .iter()
            .chain(previous)
            .filter(|o| o.name != w.name && !o.external)
            .chain(planned.iter().flatten().filter(|p| p.name != w.name))
            .filter_map(|o| o.ipv6.as_ref().map(|v6| v6.subnet))
            .collect();
        let wanted = ipam6::network_subnet(w.ipam, pool, &busy, routes).map_err(err)?;
        let kept = previous
            .iter()
            .find(|p| p.key == w.key && p.name == w.name && p.bridge == state.bridge)
            .and_then(|p| p.ipv6.clone())
            .filter(|prev| match wanted.configured {
                true => *prev == wanted,
                false => !prev.configured && !busy.iter().any(|b| b.overlaps(prev.subnet)),
            });
        if let Some(state) = planned[i].as_mut() {
            state.ipv6 = Some(kept.unwrap_or(wanted));
        }
    }
    Ok(())
}

/// An overlap with another network's subnet, with that network's name (IPAM knows subnets
/// only).
fn name_overlap(
    e: IpamError,
    others: &[NetworkState],
    planned: &[Option<NetworkState>],
) -> ProjectError {
    if let IpamError::Network { network, source } = &e {
        if let IpamError::OverlapsNetwork { subnet, other } = source.as_ref() {
            let named = others
                .iter()
                .chain(planned.iter().flatten())
                .find(|o| o.subnet == *other && !o.external);
            if let Some(o) = named {
                return ProjectError::SubnetTaken {
                    network: network.clone(),
                    subnet: *subnet,
                    other: o.name.clone(),
                    other_subnet: *other,
                };
            }
        }
    }
    e.into()
}

/// A bridge name a network chooses (`com.docker.network.bridge.name`) must not be another
/// network's, nor a link of the host that rcompose did not make (`docker0`, an uplink...):
/// taking one over would replace its addresses.
fn check_bridge_names(
    host: &HostView,
    wanted: &[Option<Wanted>],
    previous: &[NetworkState],
    others: &[NetworkState],
) -> Result<()> {
    let wanted: Vec<&Wanted> = wanted.iter().flatten().collect();
    for (i, w) in wanted.iter().enumerate() {
        if let Some(o) = wanted[..i].iter().find(|o| o.bridge == w.bridge) {
            return Err(ProjectError::BridgeTaken {
                network: w.key.to_string(),
                bridge: w.bridge.clone(),
                by: format!("network {} of the same file", o.name),
            });
        }
        if w.bridge == names::bridge_name(&w.name) {
            continue;
        }
        let recorded: Vec<&NetworkState> = previous
            .iter()
            .chain(others)
            .filter(|o| o.bridge == w.bridge)
            .collect();
        if let Some(o) = recorded.iter().find(|o| o.name != w.name) {
            return Err(ProjectError::BridgeTaken {
                network: w.key.to_string(),
                bridge: w.bridge.clone(),
                by: format!("network {}", o.name),
            });
        }
        if recorded.is_empty() {
            if let Some(link) = host.links.iter().find(|l| l.name == w.bridge) {
                let kind = link.kind.as_deref().unwrap_or("device");
                return Err(ProjectError::BridgeTaken {
                    network: w.key.to_string(),
                    bridge: w.bridge.clone(),
                    by: format!("a {kind} of the host that rcompose did not make"),
                });
            }
        }
    }
    Ok(())
}

fn network_config(service: &ServiceConfig, key: &str) -> ServiceNetworkConfig {
    service
        .networks
        .get(key)
        .cloned()
        .flatten()
        .unwrap_or_default()
}

/// The service's networks in the order Docker Compose connects them: `priority` first (highest
/// first), then by key.
fn ordered_networks(service: &ServiceConfig) -> Vec<(&str, ServiceNetworkConfig)> {
    let mut keys: Vec<(&str, ServiceNetworkConfig)> = service
        .networks
        .keys()
        .map(|k| (k.as_str(), network_config(service, k)))
        .collect();
    keys.sort_by(|a, b| b.1.priority.cmp(&a.1.priority).then(a.0.cmp(b.0)));
    keys
}

/// A container's IPv6 address on `net`: its `ipv6_address`, else the next free one (past
/// those of `in_use` and those other services ask for); none on a network without IPv6.
fn interface_address6(
    project: &Project,
    svc: &str,
    key: &str,
    cfg: &ServiceNetworkConfig,
    net: &NetworkState,
    in_use: &[Ipv6Addr],
) -> Result<Option<Ipv6Addr>> {
    let text = cfg.ipv6_address.trim();
    let bad = |reason: String| ProjectError::Address6 {
        service: svc.to_string(),
        network: key.to_string(),
        value: text.to_string(),
        reason,
    };
    let Some(v6) = &net.ipv6 else {
        return match text {
            "" => Ok(None),
            _ => Err(bad("the network has no IPv6 (set enable_ipv6: true)".into())),
        };
    };
    let parse = |t: &str| -> Option<Ipv6Addr> {
        let t = t.trim();
        t.strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(t)
            .parse()
            .ok()
    };
    if text.is_empty() {
        // Addresses other services ask for by ipv6_address are kept for them.
        let mut taken = in_use.to_vec();
        for (name, other) in &project.services {
            if name == svc {
                continue;
            }
            let wanted = other
                .networks
                .get(key)
                .and_then(|c| c.as_ref())
                .and_then(|c| parse(&c.ipv6_address));
            taken.extend(wanted);
        }
        return v6
            .allocate(&taken)
            .map(Some)
            .map_err(|e| ProjectError::Ipam6 {
                network: key.to_string(),
                source: e,
            });
    }
    let address = parse(text).ok_or_else(|| bad("not an IPv6 address".into()))?;
    if !v6.configured {
        return Err(bad(
            "needs a network with an IPv6 subnet set in its ipam config".into(),
        ));
    }
    v6.check_static(address, in_use)
        .map_err(|e| bad(e.to_string()))?;
    Ok(Some(address))
}

fn check_interface_name(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() || name.len() > names::IFNAME_MAX {
        return Err("expected 1 to 15 bytes");
    }
    if name == "."
        || name == ".."
        || name.contains(['/', ':'])
        || name.contains(char::is_whitespace)
    {
        return Err("an interface name cannot be . or .., nor contain /, : or spaces");
    }
    if name == "lo" {
        return Err("lo is the container's loopback interface");
    }
    Ok(())
}

/// The interfaces of one container of `service`: one per network it joins, in Docker Compose's
/// order (`priority`, then key), each with an address (`ipv4_address`, else the next one free of
/// `in_use` and of the static addresses other services declare), a MAC (`mac_address` of the
/// network, the service's `mac_address` for the first network, else Docker's `02:42:<ip>`) and a
/// name in the container (`interface_name`, else eth0, eth1...). The default route goes through
/// the non-internal network with the highest `gw_priority` (the first of them on a tie).
/// Services with a `network_mode` get none: they live in another namespace.
pub fn plan_interfaces(
    project: &Project,
    service: &ServiceConfig,
    container_id: &str,
    networks: &[NetworkState],
    in_use: &[IpAddr],
) -> Result<Vec<Interface>> {
    let svc = service.name.as_str();
    let in_use6: Vec<Ipv6Addr> = in_use
        .iter()
        .filter_map(|a| match a {
            IpAddr::V6(v6) => Some(*v6),
            IpAddr::V4(_) => None,
        })
        .collect();
    let in_use: Vec<Ipv4Addr> = in_use
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
        .collect();
    if !service.network_mode.is_empty() {
        if shares_namespace(&service.network_mode) {
            return Ok(Vec::new());
        }
        return Err(ProjectError::NetworkMode {
            service: svc.to_string(),
            mode: service.network_mode.clone(),
        });
    }
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut gateway: Option<(usize, i64)> = None;
    for (index, (key, cfg)) in ordered_networks(service).into_iter().enumerate() {
        let net = networks.iter().find(|n| n.key == key).ok_or_else(|| {
            ProjectError::NetworkNotPlanned {
                service: svc.to_string(),
                network: key.to_string(),
            }
        })?;
        let addr_err = |source| ProjectError::Address {
            service: svc.to_string(),
            network: key.to_string(),
            source,
        };
        let mut subnet = net.subnet_tracker(&in_use).map_err(addr_err)?;
        let address = match cfg.ipv4_address.trim() {
            "" => {
                // Addresses other services ask for by ipv4_address are kept for them.
                for (name, other) in &project.services {
                    if name == svc {
                        continue;
                    }
                    let wanted = other
                        .networks
                        .get(key)
                        .and_then(|c| c.as_ref())
                        .and_then(|c| c.ipv4_address.trim().parse::<Ipv4Addr>().ok());
                    if let Some(ip) = wanted {
                        let _ = subnet.reserve(ip);
                    }
                }
                subnet.allocate().map_err(addr_err)?
            }
            text => {
                let address: Ipv4Addr = text.parse().map_err(|_| ProjectError::AddressSyntax {
                    service: svc.to_string(),
                    network: key.to_string(),
                    value: text.to_string(),
                })?;
                if !net.configured {
                    return Err(ProjectError::StaticNeedsSubnet {
                        service: svc.to_string(),
                        network: key.to_string(),
                        address,
                    });
                }
                if in_use.contains(&address) {
                    return Err(ProjectError::AddressInUse {
                        service: svc.to_string(),
                        network: key.to_string(),
                        address,
                    });
                }
                subnet.reserve(address).map_err(addr_err)?;
                address
            }
        };
        let address6 = interface_address6(project, svc, key, &cfg, net, &in_use6)?;
        let mac_text = match cfg.mac_address.trim() {
            "" if index == 0 => service.mac_address.trim(),
            other => other,
        };
        let mac = if mac_text.is_empty() {
            MacAddr::for_ipv4(address)
        } else {
            mac_text.parse().map_err(|source| ProjectError::Mac {
                service: svc.to_string(),
                network: key.to_string(),
                source,
            })?
        };
        let ifname = match cfg.interface_name.trim() {
            "" => names::container_interface_name(index),
            given => given.to_string(),
        };
        let name_err = |reason| ProjectError::InterfaceName {
            service: svc.to_string(),
            network: key.to_string(),
            name: ifname.clone(),
            reason,
        };
        check_interface_name(&ifname).map_err(name_err)?;
        if interfaces.iter().any(|i| i.ifname == ifname) {
            return Err(name_err("another network of the container has that name"));
        }
        if !net.internal && gateway.is_none_or(|(_, best)| cfg.gw_priority > best) {
            gateway = Some((index, cfg.gw_priority));
        }
        interfaces.push(Interface {
            network: key.to_string(),
            ifname: ifname.clone(),
            host_veth: names::veth_host_name(container_id, &net.name),
            address,
            address6,
            mac,
            aliases: cfg.aliases.clone(),
            default_gateway: false,
        });
    }
    if let Some((index, _)) = gateway {
        interfaces[index].default_gateway = true;
    }
    Ok(interfaces)
}

/// A port's `host_ip`: an address, IPv6 ones also in brackets (`[::1]`).
fn parse_host_ip(text: &str) -> Option<IpAddr> {
    let text = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    text.parse().ok()
}

fn port_text(p: &ServicePortConfig) -> String {
    let mut s = String::new();
    if !p.host_ip.is_empty() {
        s.push_str(&p.host_ip);
        s.push(':');
    }
    if !p.published.is_empty() {
        s.push_str(&p.published);
        s.push(':');
    }
    s.push_str(&p.target.to_string());
    if !p.protocol.is_empty() {
        s.push('/');
        s.push_str(&p.protocol);
    }
    s
}

/// The system's ephemeral port range (Docker picks random host ports there).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let mut w = t.split_whitespace().map(|w| w.parse::<u16>().ok());
            Some((w.next()??, w.next()??))
        })
        .filter(|(a, b)| *a > 0 && a <= b)
        .unwrap_or((32768, 60999))
}

/// Whether `port` can be bound now on `ip` (all addresses for `None`).
fn port_is_free(protocol: Protocol, ip: Option<IpAddr>, port: u16) -> Result<bool> {
    let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let addr = SocketAddr::from((ip, port));
    let bound = match protocol {
        Protocol::Tcp => TcpListener::bind(addr).map(drop),
        Protocol::Udp => UdpSocket::bind(addr).map(drop),
    };
    match bound {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Ok(false),
        Err(source) => Err(ProjectError::PortProbe {
            protocol,
            addr: ip,
            port,
            source,
        }),
    }
}

/// A free host port in `start..=end`, not in `in_use`. A random start spreads the picks, as the
/// kernel does for ephemeral ports, so two projects asking at once rarely pick the same one.
fn pick_port(
    protocol: Protocol,
    ip: Option<IpAddr>,
    (start, end): (u16, u16),
    in_use: &PortsInUse,
    random: bool,
) -> Result<Option<u16>> {
    let span = u32::from(end - start) + 1;
    let offset = if random {
        (super::dns::random_u64() % u64::from(span)) as u32
    } else {
        0
    };
    for i in 0..span {
        let port = (u32::from(start) + (offset + i) % span) as u16;
        if !in_use.contains(protocol, ip, port) && port_is_free(protocol, ip, port)? {
            return Ok(Some(port));
        }
    }
    Ok(None)
}

/// The published ports of a container of `service` (the loader gives one entry per container
/// port: `published` is empty or `0` for a random host port, a port, or a range to pick one free
/// port from, as Docker does). Random and range ports are free on the host right now and not in
/// `in_use`; each chosen port is added to `in_use`, so the caller passes the same value for every
/// container of the project. Ports go to the container's address on its first non-internal
/// network; `network_mode: host` publishes nothing (the container is on the host's ports).
pub fn published_ports(
    service: &ServiceConfig,
    interfaces: &[Interface],
    networks: &[NetworkState],
    in_use: &mut PortsInUse,
) -> Result<Vec<PortBinding>> {
    let svc = service.name.as_str();
    if service.ports.is_empty() || service.network_mode == "host" {
        return Ok(Vec::new());
    }
    let (container_ip, container_ip6, default_host_ip) = interfaces
        .iter()
        .find_map(|i| {
            networks
                .iter()
                .find(|n| n.key == i.network && !n.internal && n.driver.is_bridge())
                .map(|n| (i.address, i.address6, n.options.host_binding))
        })
        .ok_or_else(|| ProjectError::NoPortNetwork {
            service: svc.to_string(),
            mode: service.network_mode.clone(),
        })?;
    let mut out = Vec::new();
    for p in &service.ports {
        let bad = |reason: &str| ProjectError::Port {
            service: svc.to_string(),
            port: port_text(p),
            reason: reason.to_string(),
        };
        let protocol = match p.protocol.to_ascii_lowercase().as_str() {
            "" | "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            other => {
                return Err(bad(&format!(
                    "protocol {other} is not supported (tcp or udp)"
                )))
            }
        };
        let container_port = u16::try_from(p.target)
            .ok()
            .filter(|t| *t > 0)
            .ok_or_else(|| bad("the container port must be between 1 and 65535"))?;
        let host_ip = match p.host_ip.trim() {
            // No address given: the network's `host_binding_ipv4`, else every address.
            "" => default_host_ip
                .filter(|ip| !ip.is_unspecified())
                .map(IpAddr::V4),
            "0.0.0.0" => None,
            text => match parse_host_ip(text) {
                Some(ip) => Some(ip),
                None => return Err(bad("host_ip is not an IP address")),
            },
        };
        let host_port = match p.published.trim() {
            "" | "0" => pick_port(protocol, host_ip, ephemeral_range(), in_use, true)?,
            text => {
                let range: PortRange = text.parse().map_err(|_| {
                    bad("the published port must be PORT or START-END within 1-65535")
                })?;
                if range.len() == 1 {
                    Some(range.start())
                } else {
                    pick_port(
                        protocol,
                        host_ip,
                        (range.start(), range.end()),
                        in_use,
                        false,
                    )?
                }
            }
        }
        .ok_or_else(|| ProjectError::NoFreePort {
            service: svc.to_string(),
            port: port_text(p),
        })?;
        let binding = PortBinding {
            protocol,
            host_ip,
            host_port,
            container_ip,
            container_ip6,
            container_port,
        };
        in_use.add(&[binding]);
        out.push(binding);
    }
    Ok(out)
}

/// Before anything of an `up` is created: the fixed host ports `services` publish must not be
/// published by another project or bound on the host (random ports and ranges are picked per
/// container later). Ports this project already publishes (`own`) are fine.
pub fn check_fixed_ports(
    project: &str,
    services: &[&ServiceConfig],
    own: &[PortBinding],
) -> Result<()> {
    let mut wanted = Vec::new();
    let mut owners: Vec<&str> = Vec::new();
    for service in services {
        if service.network_mode == "host" {
            continue;
        }
        for p in &service.ports {
            let protocol = match p.protocol.to_ascii_lowercase().as_str() {
                "" | "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                _ => continue, // named with the container
            };
            let Ok(host_port) = p.published.trim().parse::<u16>() else {
                continue;
            };
            let host_ip = match p.host_ip.trim() {
                "" | "0.0.0.0" => None,
                text => match parse_host_ip(text) {
                    Some(ip) => Some(ip),
                    None => continue,
                },
            };
            let mine = own.iter().any(|b| {
                b.protocol == protocol && b.host_port == host_port && b.host_ip == host_ip
            });
            let (Ok(host_ports), Ok(container_ports)) = (
                PortRange::single(host_port),
                PortRange::single(u16::try_from(p.target).unwrap_or(0)),
            ) else {
                continue;
            };
            if host_port == 0 || mine {
                continue;
            }
            let port = firewall::PublishedPort {
                protocol,
                host_ip,
                host_ports,
                container_ip: Ipv4Addr::UNSPECIFIED,
                container_ip6: None,
                container_ports,
            };
            // The same port twice is a scaled service: the error comes with its second replica.
            if !wanted.contains(&port) {
                wanted.push(port);
                owners.push(service.name.as_str());
            }
        }
    }
    firewall::check_ports_free(project, &wanted).map_err(|e| {
        // The port the error is about, and the last service asking for it (for a port
        // published twice, the second one).
        let owner = e.port().and_then(|(protocol, port)| {
            wanted
                .iter()
                .zip(&owners)
                .rev()
                .find(|(w, _)| w.protocol == protocol && w.host_ports.ports().any(|p| p == port))
                .map(|(_, s)| s.to_string())
        });
        match owner {
            Some(service) => ProjectError::ServicePort { service, source: e },
            None => ProjectError::Firewall(e),
        }
    })
}

fn network<'a>(networks: &'a [NetworkState], key: &str) -> Result<&'a NetworkState> {
    networks
        .iter()
        .find(|n| n.key == key)
        .ok_or_else(|| ProjectError::UnknownNetwork {
            network: key.to_string(),
        })
}

/// Creates what the project's networks need, or brings it in line when it exists: the bridges
/// (not external ones, which must exist), the sysctls, and the project's nftables table with
/// `ports` (the whole table is replaced: call again with every port of the project when they
/// change). The ports are checked first: a port in use is an error naming it, and then nothing
/// has been created. Bridges this call created are removed again when a later step fails.
pub async fn setup(
    nl: &Netlink,
    project: &str,
    networks: &[NetworkState],
    ports: &[PortBinding],
) -> Result<()> {
    let fw_ports = ports
        .iter()
        .map(PortBinding::to_firewall)
        .collect::<Result<Vec<_>>>()?;
    // Validates the project name too, before anything exists.
    firewall::table_name(project)?;
    firewall::check_ports_free(project, &fw_ports)?;
    let mut created = Vec::new();
    let result = setup_steps(nl, project, networks, fw_ports, &mut created).await;
    let Err(error) = result else { return Ok(()) };
    let mut failures = Vec::new();
    // This call made every bridge of the project: it was its first set-up, and a firewall
    // table or host rules it may have added go too (the bridges are all made before them).
    let own = networks.iter().filter(|n| !n.external).count();
    if own > 0 && created.len() == own {
        if let Err(e) = firewall::remove(project) {
            failures.push(ProjectError::from(e));
        }
    }
    for bridge in &created {
        if let Err(e) = nl.delete_link(bridge).await {
            failures.push(ProjectError::from(e));
        }
    }
    match failures.len() {
        0 => Err(error),
        _ => Err(ProjectError::Rollback {
            error: Box::new(error),
            rollback: Box::new(ProjectError::Teardown {
                project: project.to_string(),
                errors: failures,
            }),
        }),
    }
}

async fn setup_steps(
    nl: &Netlink,
    project: &str,
    networks: &[NetworkState],
    ports: Vec<firewall::PublishedPort>,
    created: &mut Vec<String>,
) -> Result<()> {
    for net in networks {
        if let Some(parent) = net.driver.parent() {
            // Nothing to make: each container's link is made on the parent when it starts.
            if nl.link_index(parent).await?.is_none() {
                return Err(ProjectError::ParentMissing {
                    network: net.key.clone(),
                    parent: parent.to_string(),
                });
            }
            continue;
        }
        let exists = nl.link_index(&net.bridge).await?.is_some();
        if net.external {
            if !exists {
                return Err(ProjectError::ExternalGone {
                    name: net.name.clone(),
                    bridge: net.bridge.clone(),
                });
            }
            continue;
        }
        if !exists {
            created.push(net.bridge.clone());
        }
        nl.ensure_bridge(&BridgeConfig {
            name: net.bridge.clone(),
            gateway: net.gateway,
            subnet: net.subnet,
            mtu: net.mtu,
            ipv6: net
                .ipv6
                .as_ref()
                .map(|v6| (v6.gateway, v6.subnet.prefix_len())),
        })
        .await?;
    }
    // External bridges too: a published port reached on 127.0.0.1 needs route_localnet on the
    // bridge of the container it goes to.
    let bridges: Vec<&str> = networks
        .iter()
        .filter(|n| n.driver.is_bridge())
        .map(|n| n.bridge.as_str())
        .collect();
    let ipv6 = networks.iter().any(|n| n.ipv6.is_some());
    for change in netlink::prepare_sysctls(&bridges, ipv6)? {
        tracing::debug!(
            key = change.key,
            old = change.old,
            new = change.new,
            "sysctl changed"
        );
    }
    let rules = ProjectRules {
        networks: networks
            .iter()
            .filter(|n| n.driver.is_bridge())
            .map(|n| NetworkRules {
                bridge: n.bridge.clone(),
                subnet: n.subnet,
                subnet6: n.ipv6.as_ref().map(|v6| v6.subnet),
                internal: n.internal,
                no_masquerade: n.options.no_masquerade,
            })
            .collect(),
        ports,
    };
    firewall::apply(project, &rules)?;
    Ok(())
}

/// Checks again what the project keeps in the host's firewall chains (host_firewall) for
/// `networks`, and restores it: a Docker engine that restarted meanwhile flushed its chains.
/// For an `up` that creates no network (creating one applies everything).
pub fn recheck_host_firewall(project: &str, networks: &[NetworkState]) -> Result<()> {
    firewall::table_name(project)?;
    let bridges: Vec<host_firewall::Bridge> = networks
        .iter()
        .filter(|n| n.driver.is_bridge())
        .map(|n| host_firewall::Bridge {
            name: n.bridge.clone(),
            internal: n.internal,
            ipv6: n.ipv6.is_some(),
        })
        .collect();
    host_firewall::sync(project, &bridges).map_err(FirewallError::from)?;
    Ok(())
}

/// Plugs a container in: one veth pair per interface, created in `netns` (an open
/// `/proc/<pid>/ns/net`), the default route via the gateway of the interface that has it. When
/// one fails, the ones made before are removed.
pub async fn attach(
    nl: &Netlink,
    netns: BorrowedFd<'_>,
    interfaces: &[Interface],
    networks: &[NetworkState],
) -> Result<()> {
    for (done, iface) in interfaces.iter().enumerate() {
        // The host end is named after the container: a restarted container's previous one may
        // still be there while the kernel tears its old namespace down (asynchronously).
        let stale = nl.delete_link(&iface.host_veth).await;
        let result = match (stale, network(networks, &iface.network)) {
            (Err(e), _) => Err(ProjectError::from(e)),
            (Ok(_), Err(e)) => Err(e),
            (Ok(_), Ok(net)) => {
                let att = Attachment {
                    netns,
                    bridge: &net.bridge,
                    host_name: &iface.host_veth,
                    container_name: &iface.ifname,
                    address: iface.address,
                    subnet: net.subnet,
                    mac: iface.mac,
                    mtu: net.mtu,
                    default_gateway: iface.default_gateway.then_some(net.gateway),
                    isolated: net.options.no_icc,
                    address6: net
                        .ipv6
                        .as_ref()
                        .zip(iface.address6)
                        .map(|(v6, a)| (a, v6.subnet.prefix_len())),
                    default_gateway6: net
                        .ipv6
                        .as_ref()
                        .filter(|_| iface.default_gateway && iface.address6.is_some())
                        .map(|v6| v6.gateway),
                };
                match &net.driver {
                    NetDriver::Bridge => nl.attach(&att).await,
                    NetDriver::Macvlan { parent, mode } => {
                        nl.attach_macvlan(&att, parent, mode).await
                    }
                    NetDriver::Ipvlan { parent, mode, flag } => {
                        nl.attach_ipvlan(&att, parent, mode, flag).await
                    }
                }
                .map_err(ProjectError::from)
            }
        };
        if let Err(error) = result {
            return match detach(nl, &interfaces[..done]).await {
                Ok(()) => Err(error),
                Err(rollback) => Err(ProjectError::Rollback {
                    error: Box::new(error),
                    rollback: Box::new(rollback),
                }),
            };
        }
    }
    Ok(())
}

/// Unplugs a container: deletes the host end of each veth (the peer goes with it). Interfaces
/// already gone (the namespace died with the container) are fine; goes on past errors.
pub async fn detach(nl: &Netlink, interfaces: &[Interface]) -> Result<()> {
    let mut errors = Vec::new();
    for iface in interfaces {
        if let Err(e) = nl.detach(&iface.host_veth).await {
            errors.push(ProjectError::from(e));
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(ProjectError::Detach { errors }),
    }
}

/// Removes the project's networking: the veths of `interfaces` (leftovers of a crashed run; the
/// normal ones died with their namespaces), the bridges of `networks` except external ones and
/// those another project still uses (a network shared by `name:`, listed in `others`), and the
/// nftables table. Idempotent; goes on past errors and reports them all.
pub async fn teardown(
    nl: &Netlink,
    project: &str,
    networks: &[NetworkState],
    interfaces: &[Interface],
    others: &[NetworkState],
) -> Result<()> {
    // The firewall goes on a thread of its own while the links go here: deleting a bridge and
    // deleting a table each wait for the kernel (RCU grace periods, ~10 ms each), not for each
    // other. The thread is spawned from this one, so it is in the same network namespace.
    let (done, firewall_removed) = tokio::sync::oneshot::channel();
    let name = project.to_string();
    // A thread that cannot start drops `done`: then the firewall goes after the links.
    let _ = std::thread::Builder::new()
        .name("fw-teardown".into())
        .spawn(move || {
            let _ = done.send(firewall::remove(&name));
        });
    let mut errors = Vec::new();
    for net in networks {
        let shared = others.iter().any(|o| o.bridge == net.bridge);
        // An external network goes only when it is a bridge rcompose made for another project
        // that went down while this one used it (its bridge is `rc-<hash of its name>`, and no
        // project uses it now): the last project on it removes it, so nothing is left behind.
        // One made by hand (named as the network) always stays.
        let orphan = net.external && net.bridge == names::bridge_name(&net.name);
        if shared || (net.external && !orphan) || !net.driver.is_bridge() {
            continue;
        }
        if let Err(e) = nl.delete_link_announced(&net.bridge).await {
            errors.push(ProjectError::from(e));
        }
    }
    // Leftover veths, after the bridges: a stopped container's go with its namespace, which
    // the kernel frees a grace period after its last socket closed (its resolver's): deleting
    // them first would wait for that, and for the namespace's own teardown, every `down`.
    for iface in interfaces {
        if let Err(e) = nl.detach(&iface.host_veth).await {
            errors.push(ProjectError::from(e));
        }
    }
    let removed = match firewall_removed.await {
        Ok(r) => r,
        // No thread, or it ended without an answer: removing is idempotent, do it here.
        Err(_) => firewall::remove(project),
    };
    if let Err(e) = removed {
        errors.push(ProjectError::from(e));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ProjectError::Teardown {
            project: project.to_string(),
            errors,
        })
    }
}

/// The resolvers the embedded DNS forwards to for this container: its `dns:`, else the host's.
fn container_upstreams(service: &ServiceConfig, host: &ResolvConf) -> Result<Vec<SocketAddr>> {
    if service.dns.is_empty() {
        Ok(host.upstreams())
    } else {
        Ok(resolv::upstreams(&resolv::parse_dns_servers(&service.dns)?))
    }
}

/// The gateway of the container's first network: what `host-gateway` stands for (and whether
/// the container is on a network at all).
fn first_gateway(interfaces: &[Interface], networks: &[NetworkState]) -> Result<Option<Ipv4Addr>> {
    interfaces
        .first()
        .map(|i| network(networks, &i.network).map(|n| n.gateway))
        .transpose()
}

/// The files a container gets: `/etc/resolv.conf` naming its embedded DNS at `127.0.0.11`
/// (the host's search and options, or `dns_search` / `dns_opt`; `dns:` is
/// where that server forwards), and `/etc/hosts` (its hostname on each of its addresses,
/// `extra_hosts` with `host-gateway` as the first network's gateway). A container without
/// interfaces gets the host's resolvers with the service's overrides, unless it is in the
/// namespace of a container that has a resolver there (`peer_resolver`).
pub fn container_files(
    service: &ServiceConfig,
    hostname: &str,
    interfaces: &[Interface],
    networks: &[NetworkState],
    host_resolv: &ResolvConf,
    peer_resolver: bool,
) -> Result<(String, String)> {
    let gateway = first_gateway(interfaces, networks)?;
    // `network_mode: service:X` / `container:X` lives in X's namespace, where X's resolver
    // listens (when X is on a network): it resolves as X does, as with Docker.
    let resolve_embedded = gateway.is_some() || peer_resolver;
    let resolv_conf = match resolve_embedded {
        true => {
            let conf = resolv::container_resolv_conf(
                host_resolv,
                super::dns::EMBEDDED_ADDRESS,
                &service.dns_search,
                &service.dns_opt,
            );
            resolv::render_container_resolv_conf(&conf, &container_upstreams(service, host_resolv)?)
        }
        false => resolv::host_mode_resolv_conf(
            &host_resolv.render(),
            &service.dns,
            &service.dns_search,
            &service.dns_opt,
        )?,
    };
    // IPv4 addresses first, as Docker writes them.
    let addresses: Vec<IpAddr> = interfaces
        .iter()
        .map(|i| IpAddr::V4(i.address))
        .chain(interfaces.iter().filter_map(|i| i.address6.map(IpAddr::V6)))
        .collect();
    let hosts = HostsFile {
        hostname,
        domainname: &service.domainname,
        addresses: &addresses,
        extra_hosts: &service.extra_hosts,
        host_gateway: gateway.map(IpAddr::V4),
        ipv6: interfaces.iter().any(|i| i.address6.is_some()),
    }
    .render()?;
    Ok((resolv_conf, hosts))
}

/// What the embedded DNS server answers for a container: on each of its networks, its container
/// name, its service name and its aliases; its own resolvers (`dns:`) and search list.
pub fn dns_entries(
    service: &ServiceConfig,
    container_name: &str,
    interfaces: &[Interface],
    host_resolv: &ResolvConf,
) -> Result<ContainerDns> {
    let endpoints = interfaces
        .iter()
        .map(|i| Endpoint {
            address6: i.address6,
            ..Endpoint::for_service(
                &i.network,
                i.address,
                container_name,
                &service.name,
                None,
                &i.aliases,
            )
        })
        .collect();
    let upstreams = if service.dns.is_empty() {
        Vec::new()
    } else {
        container_upstreams(service, host_resolv)?
    };
    // The search list the container's resolv.conf gets (the gateway does not matter here).
    let search = resolv::container_resolv_conf(
        host_resolv,
        Ipv4Addr::UNSPECIFIED,
        &service.dns_search,
        &service.dns_opt,
    )
    .search;
    // `links: [SERVICE[:ALIAS]]`: the alias resolves to the service, for this container.
    let links = service
        .links
        .iter()
        .filter_map(|l| {
            let (target, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
            (alias != target).then(|| (alias.to_string(), target.to_string()))
        })
        .collect();
    Ok(ContainerDns {
        endpoints,
        upstreams,
        search,
        links,
    })
}

#[cfg(test)]
mod tests;
