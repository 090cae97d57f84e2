//! The kernel side of container networking, through rtnetlink: bridges, veth pairs, addresses,
//! routes, and the few sysctls they need.
//!
//! Everything on the host side runs in the network namespace of the thread that opened the
//! [`Netlink`] connection (a netlink socket stays bound to the namespace it was created in). A
//! container's side is configured from a short-lived thread that enters the container's namespace
//! and opens its own socket there, so the calling process never moves (see docs/networking.md).

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoPortKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage, MacVlanMode,
};
use rtnetlink::{LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

use super::ipam::Ipv4Net;
use super::names::MacAddr;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("network setup needs a tokio runtime on the calling thread")]
    NoRuntime,
    #[error("cannot open a netlink socket")]
    Socket(#[source] io::Error),
    #[error("cannot {op} link {name}")]
    Link {
        op: &'static str,
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("link {name} exists but is a {kind}, not a bridge")]
    NotABridge { name: String, kind: String },
    #[error("bridge {name} does not exist")]
    NoBridge { name: String },
    #[error("link {name} does not exist")]
    NoLink { name: String },
    #[error("gateway {gateway} is outside subnet {subnet} of bridge {name}")]
    GatewayOutside {
        name: String,
        gateway: Ipv4Addr,
        subnet: Ipv4Net,
    },
    #[error("address {address} is outside subnet {subnet} of {name}")]
    AddressOutside {
        name: String,
        address: Ipv4Addr,
        subnet: Ipv4Net,
    },
    #[error("cannot {op} address {address}/{prefix} on {name}")]
    Address {
        op: &'static str,
        name: String,
        address: IpAddr,
        prefix: u8,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot create ipvlan link {name}: this kernel has no ipvlan support (the ipvlan module)"
    )]
    NoIpvlan { name: String },
    #[error("cannot add the default route via {gateway} on {name}")]
    Route {
        name: String,
        gateway: IpAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot enter the container's network namespace")]
    EnterNamespace(#[source] io::Error),
    #[error("cannot start the thread that configures the container's network namespace")]
    Thread(#[source] io::Error),
    #[error("the thread configuring {name} in the container's network namespace died")]
    ThreadLost { name: String },
    #[error("cannot set sysctl {key} to {value}")]
    Sysctl {
        key: String,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("{error}; rolling back also failed: {rollback}")]
    Rollback {
        #[source]
        error: Box<NetlinkError>,
        rollback: Box<NetlinkError>,
    },
}

type Result<T> = std::result::Result<T, NetlinkError>;

/// The errno of a failed netlink request, as an `io::Error` (so `EEXIST` and `ENODEV` can be told
/// apart and the message is the kernel's).
fn to_io(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

fn is_errno(e: &io::Error, errno: i32) -> bool {
    e.raw_os_error() == Some(errno)
}

/// A bridge to create or reuse: its name (`names::bridge_name`), the gateway address it carries
/// in `subnet`, and an optional MTU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    pub name: String,
    pub gateway: Ipv4Addr,
    pub subnet: Ipv4Net,
    pub mtu: Option<u32>,
    /// The IPv6 gateway address and prefix length, on a network with IPv6.
    pub ipv6: Option<(Ipv6Addr, u8)>,
}

/// One container interface to create on a bridge.
#[derive(Debug, Clone, Copy)]
pub struct Attachment<'a> {
    /// The container's network namespace: an open `/proc/<pid>/ns/net` or a netns file.
    pub netns: BorrowedFd<'a>,
    /// The bridge the host end joins; it must exist.
    pub bridge: &'a str,
    /// The host end of the veth pair (`names::veth_host_name`).
    pub host_name: &'a str,
    /// The name inside the container (`names::container_interface_name`: eth0, eth1...).
    pub container_name: &'a str,
    pub address: Ipv4Addr,
    /// The network's subnet: gives the prefix length of `address`.
    pub subnet: Ipv4Net,
    pub mac: MacAddr,
    pub mtu: Option<u32>,
    /// The default route of the container: set only for its primary network.
    pub default_gateway: Option<Ipv4Addr>,
    /// An isolated bridge port: no traffic to or from the other isolated ports (the network's
    /// `enable_icc: false`), only to the bridge itself and beyond.
    pub isolated: bool,
    /// The IPv6 address and prefix length, on a network with IPv6 (else IPv6 is off on the
    /// interface).
    pub address6: Option<(Ipv6Addr, u8)>,
    /// The IPv6 default route, with `default_gateway` on a network with IPv6.
    pub default_gateway6: Option<Ipv6Addr>,
}

/// A sysctl this module changed, with the value it had before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlChange {
    pub key: String,
    pub old: String,
    pub new: String,
}

/// A route-netlink connection bound to the network namespace of the thread that opened it.
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

impl Netlink {
    /// Opens a netlink socket in the calling thread's network namespace; its connection task runs
    /// on the current tokio runtime.
    pub fn connect() -> Result<Netlink> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| NetlinkError::NoRuntime)?;
        let _enter = runtime.enter();
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
        runtime.spawn(connection);
        Ok(Netlink { handle })
    }

    async fn link_by_name(&self, name: &str) -> Result<Option<LinkMessage>> {
        let mut links = self.handle.link().get().match_name(name).execute();
        match links.try_next().await {
            Ok(link) => Ok(link),
            Err(e) => {
                let e = to_io(e);
                if is_errno(&e, libc::ENODEV) {
                    Ok(None)
                } else {
                    Err(NetlinkError::Link {
                        op: "look up",
                        name: name.to_string(),
                        source: e,
                    })
                }
            }
        }
    }

    /// The index of link `name`, `None` when there is no such link.
    pub async fn link_index(&self, name: &str) -> Result<Option<u32>> {
        Ok(self.link_by_name(name).await?.map(|l| l.header.index))
    }

    /// Creates bridge `config.name` with its gateway address, MTU and a fixed MAC, up; or
    /// reuses it when it exists (a second network of a project, a leftover of a crashed run),
    /// making its addresses and state what `config` says. Returns its index.
    pub async fn ensure_bridge(&self, config: &BridgeConfig) -> Result<u32> {
        let name = config.name.as_str();
        if !config.subnet.contains(config.gateway) {
            return Err(NetlinkError::GatewayOutside {
                name: name.to_string(),
                gateway: config.gateway,
                subnet: config.subnet,
            });
        }
        let link_err = |op, source| NetlinkError::Link {
            op,
            name: name.to_string(),
            source,
        };
        let index = match self.link_by_name(name).await? {
            Some(link) => {
                check_is_bridge(name, &link)?;
                let mut set = LinkUnspec::new_with_index(link.header.index).up();
                if let Some(mtu) = config.mtu {
                    set = set.mtu(mtu);
                }
                self.handle
                    .link()
                    .set(set.build())
                    .execute()
                    .await
                    .map_err(|e| link_err("set up", to_io(e)))?;
                link.header.index
            }
            None => {
                // A fixed MAC: otherwise the bridge takes the lowest MAC of its ports and changes
                // it as containers come and go, which stales the containers' ARP entry for the
                // gateway. The gateway address is never a container's, so this one is unique.
                let mut msg = LinkBridge::new(name)
                    .address(MacAddr::for_ipv4(config.gateway).octets().to_vec());
                if let Some(mtu) = config.mtu {
                    msg = msg.mtu(mtu);
                }
                match self.handle.link().add(msg.build()).execute().await {
                    Ok(()) => {}
                    // Another process created it between our look-up and now.
                    Err(e) if is_errno(&to_io(e.clone()), libc::EEXIST) => {}
                    Err(e) => return Err(link_err("create bridge", to_io(e))),
                }
                let link =
                    self.link_by_name(name)
                        .await?
                        .ok_or_else(|| NetlinkError::NoBridge {
                            name: name.to_string(),
                        })?;
                check_is_bridge(name, &link)?;
                link.header.index
            }
        };
        self.set_only_address(name, index, config.gateway, config.subnet.prefix_len())
            .await?;
        if let Some((gateway, prefix)) = config.ipv6 {
            // The gateway is the network's own: no duplicate detection to wait for.
            set_sysctl(&format!("net.ipv6.conf.{name}.disable_ipv6"), "0")?;
            self.add_address6(name, index, gateway, prefix).await?;
        }
        Ok(index)
    }

    /// Adds an IPv6 address without duplicate-address detection (usable at once); one that is
    /// there already is fine.
    async fn add_address6(
        &self,
        name: &str,
        index: u32,
        address: Ipv6Addr,
        prefix: u8,
    ) -> Result<()> {
        let mut request = self.handle.address().add(index, address.into(), prefix);
        request
            .message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
        match request.execute().await {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = to_io(e);
                if is_errno(&e, libc::EEXIST) {
                    return Ok(());
                }
                Err(NetlinkError::Address {
                    op: "add",
                    name: name.to_string(),
                    address: address.into(),
                    prefix,
                    source: e,
                })
            }
        }
    }

    /// Puts `address/prefix` on link `index` and removes its other IPv4 addresses (a reused
    /// bridge may carry the gateway of an older subnet).
    async fn set_only_address(
        &self,
        name: &str,
        index: u32,
        address: Ipv4Addr,
        prefix: u8,
    ) -> Result<()> {
        let addr_err = |op, address: Ipv4Addr, prefix, source| NetlinkError::Address {
            op,
            name: name.to_string(),
            address: address.into(),
            prefix,
            source,
        };
        let mut present = false;
        let mut existing = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let mut stale = Vec::new();
        while let Some(msg) = existing
            .try_next()
            .await
            .map_err(|e| addr_err("list", address, prefix, to_io(e)))?
        {
            let ip = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            });
            let Some(ip) = ip else { continue };
            if msg.header.index != index {
                continue;
            }
            if ip == address && msg.header.prefix_len == prefix {
                present = true;
            } else {
                stale.push((ip, msg.header.prefix_len, msg));
            }
        }
        for (ip, len, msg) in stale {
            self.handle
                .address()
                .del(msg)
                .execute()
                .await
                .map_err(|e| addr_err("remove", ip, len, to_io(e)))?;
        }
        if !present {
            match self
                .handle
                .address()
                .add(index, address.into(), prefix)
                .execute()
                .await
            {
                Ok(()) => {}
                Err(e) => {
                    let e = to_io(e);
                    if !is_errno(&e, libc::EEXIST) {
                        return Err(addr_err("add", address, prefix, e));
                    }
                }
            }
        }
        Ok(())
    }

    /// Brings link `name` up.
    pub async fn set_up(&self, name: &str) -> Result<()> {
        let index = self
            .link_index(name)
            .await?
            .ok_or_else(|| NetlinkError::NoLink {
                name: name.to_string(),
            })?;
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|e| NetlinkError::Link {
                op: "set up",
                name: name.to_string(),
                source: to_io(e),
            })
    }

    /// Deletes link `name`; `Ok(false)` when there was none. Deleting the host end of a veth
    /// pair deletes its peer too, and deleting a bridge frees its ports.
    pub async fn delete_link(&self, name: &str) -> Result<bool> {
        let Some(index) = self.link_index(name).await? else {
            return Ok(false);
        };
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(true),
            Err(e) => {
                let e = to_io(e);
                // Gone in the meantime (its peer's namespace died, another `down`).
                if is_errno(&e, libc::ENODEV) {
                    Ok(false)
                } else {
                    Err(NetlinkError::Link {
                        op: "delete",
                        name: name.to_string(),
                        source: e,
                    })
                }
            }
        }
    }

    /// Deletes link `name` as [`Netlink::delete_link`] does, but returns once the kernel has
    /// announced it gone rather than once it has freed it (about half the time of a bridge's
    /// deletion, see `unlink.rs`); the name is free again on return. `Ok(false)`: no such link.
    pub async fn delete_link_announced(&self, name: &str) -> Result<bool> {
        let Some(index) = self.link_index(name).await? else {
            return Ok(false);
        };
        unlink::delete_announced(index, name)
            .await
            .map_err(|source| NetlinkError::Link {
                op: "delete",
                name: name.to_string(),
                source,
            })
    }

    /// The names of the links whose name starts with `prefix`, sorted (finds the bridges and
    /// veths a crashed run left: `names::BRIDGE_PREFIX`, `names::VETH_PREFIX`).
    pub async fn links_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let mut links = self.handle.link().get().execute();
        let mut names = Vec::new();
        while let Some(link) = links.try_next().await.map_err(|e| NetlinkError::Link {
            op: "list",
            name: format!("{prefix}*"),
            source: to_io(e),
        })? {
            for attr in &link.attributes {
                if let LinkAttribute::IfName(name) = attr {
                    if name.starts_with(prefix) {
                        names.push(name.clone());
                    }
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// Connects a container to a bridge. One request creates the veth pair with its peer
    /// already in the container's namespace, named, with its MAC and MTU, and the host end
    /// enslaved to the bridge and up; then, from inside the namespace: IPv6 off on the interface
    /// (no duplicate-address detection to wait for), the address, the interface and `lo` up, and
    /// the default route when `default_gateway` is set. On failure the pair is deleted again.
    pub async fn attach(&self, att: &Attachment<'_>) -> Result<()> {
        if !att.subnet.contains(att.address) {
            return Err(NetlinkError::AddressOutside {
                name: att.container_name.to_string(),
                address: att.address,
                subnet: att.subnet,
            });
        }
        let bridge = self
            .link_index(att.bridge)
            .await?
            .ok_or_else(|| NetlinkError::NoBridge {
                name: att.bridge.to_string(),
            })?;
        let mut peer = LinkUnspec::new_with_name(att.container_name)
            .address(att.mac.octets().to_vec())
            .setns_by_fd(att.netns.as_raw_fd());
        let mut host = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
            .name(att.host_name)
            .controller(bridge)
            .up();
        if let Some(mtu) = att.mtu {
            peer = peer.mtu(mtu);
            host = host.mtu(mtu);
        }
        let msg = host
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
            .build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(|e| NetlinkError::Link {
                op: "create veth pair",
                name: format!("{} (peer {})", att.host_name, att.container_name),
                source: to_io(e),
            })?;

        let configured = match self.set_port_flags(att.host_name, att.isolated).await {
            Ok(()) => configure_in_namespace(att, false).await,
            Err(e) => Err(e),
        };
        if let Err(error) = configured {
            return match self.delete_link(att.host_name).await {
                Ok(_) => Err(error),
                Err(rollback) => Err(NetlinkError::Rollback {
                    error: Box::new(error),
                    rollback: Box::new(rollback),
                }),
            };
        }
        Ok(())
    }

    /// The index of `parent`, the interface a macvlan or ipvlan link of `att` is made on,
    /// after checking that the address is on the network.
    async fn parent_of(&self, att: &Attachment<'_>, parent: &str) -> Result<u32> {
        if !att.subnet.contains(att.address) {
            return Err(NetlinkError::AddressOutside {
                name: att.container_name.to_string(),
                address: att.address,
                subnet: att.subnet,
            });
        }
        self.link_index(parent)
            .await?
            .ok_or_else(|| NetlinkError::NoLink {
                name: parent.to_string(),
            })
    }

    /// Connects a container to a macvlan network: one request creates a macvlan link of
    /// `parent` (mode `bridge`, `private`, `vepa` or `passthru`) already in the container's
    /// namespace, named, with its MAC and MTU; then it is configured from inside as a veth peer
    /// is (`att.bridge` and `att.host_name` are not used: there is no host end). A failure
    /// leaves the link in the container's namespace, which goes with the container.
    pub async fn attach_macvlan(
        &self,
        att: &Attachment<'_>,
        parent: &str,
        mode: &str,
    ) -> Result<()> {
        let index = self.parent_of(att, parent).await?;
        let mode = match mode {
            "" | "bridge" => MacVlanMode::Bridge,
            "private" => MacVlanMode::Private,
            "vepa" => MacVlanMode::Vepa,
            "passthru" => MacVlanMode::Passthrough,
            other => {
                return Err(NetlinkError::Link {
                    op: "create macvlan",
                    name: att.container_name.to_string(),
                    source: io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("unknown macvlan mode {other:?}"),
                    ),
                })
            }
        };
        let mut msg = rtnetlink::LinkMacVlan::new(att.container_name, index, mode)
            .address(att.mac.octets().to_vec())
            .setns_by_fd(att.netns.as_raw_fd());
        if let Some(mtu) = att.mtu {
            msg = msg.mtu(mtu);
        }
        self.handle
            .link()
            .add(msg.build())
            .execute()
            .await
            .map_err(|e| NetlinkError::Link {
                op: "create macvlan",
                name: format!("{} (parent {parent})", att.container_name),
                source: to_io(e),
            })?;
        configure_in_namespace(att, false).await
    }

    /// Connects a container to an ipvlan network: one request creates an ipvlan link of
    /// `parent` (mode `l2`, `l3` or `l3s`; flag `bridge`, `private` or `vepa`) already in the
    /// container's namespace, named, with its MTU (it shares the parent's MAC address); then it
    /// is configured from inside as a macvlan link is. In l3 and l3s modes the default route
    /// is the link itself, as Docker's: the parent routes, there is no gateway to reach. A
    /// kernel without ipvlan is an error saying so.
    pub async fn attach_ipvlan(
        &self,
        att: &Attachment<'_>,
        parent: &str,
        mode: &str,
        flag: &str,
    ) -> Result<()> {
        use rtnetlink::packet_route::link::{IpVlanFlags, IpVlanMode};
        let index = self.parent_of(att, parent).await?;
        let invalid = |what: String| NetlinkError::Link {
            op: "create ipvlan",
            name: att.container_name.to_string(),
            source: io::Error::new(io::ErrorKind::InvalidInput, what),
        };
        let (ipvlan_mode, routed) = match mode {
            "" | "l2" => (IpVlanMode::L2, false),
            "l3" => (IpVlanMode::L3, true),
            "l3s" => (IpVlanMode::L3S, true),
            other => return Err(invalid(format!("unknown ipvlan mode {other:?}"))),
        };
        let flags = match flag {
            "" | "bridge" => IpVlanFlags::empty(),
            "private" => IpVlanFlags::Private,
            "vepa" => IpVlanFlags::Vepa,
            other => return Err(invalid(format!("unknown ipvlan flag {other:?}"))),
        };
        let mut msg = rtnetlink::LinkIpVlan::new(att.container_name, index, ipvlan_mode)
            .flag(flags)
            .setns_by_fd(att.netns.as_raw_fd());
        if let Some(mtu) = att.mtu {
            msg = msg.mtu(mtu);
        }
        match self.handle.link().add(msg.build()).execute().await {
            Ok(()) => {}
            Err(e) => {
                let e = to_io(e);
                if is_errno(&e, libc::EOPNOTSUPP) {
                    return Err(NetlinkError::NoIpvlan {
                        name: format!("{} (parent {parent})", att.container_name),
                    });
                }
                return Err(NetlinkError::Link {
                    op: "create ipvlan",
                    name: format!("{} (parent {parent})", att.container_name),
                    source: e,
                });
            }
        }
        // Routed: the default route goes out of the link, with no gateway.
        let dev_route = routed && att.default_gateway.is_some();
        let att = Attachment {
            default_gateway: att.default_gateway.filter(|_| !routed),
            ..*att
        };
        configure_in_namespace(&att, dev_route).await
    }

    /// Hairpin mode on a bridge port: with br_netfilter loaded (Docker loads it), a container
    /// calling its own published port has its DNATed packet bridged back out of the port it
    /// came in by. And `isolated` (`enable_icc: false`). The kernel ignores port settings in
    /// the request that creates the link.
    async fn set_port_flags(&self, port: &str, isolated: bool) -> Result<()> {
        let msg = LinkMessageBuilder::<LinkBridgePort>::default()
            .name(port)
            .set_port_kind(InfoPortKind::Bridge)
            .hairpin(true)
            .isolated(isolated)
            .build();
        self.handle
            .link()
            .set_port(msg)
            .execute()
            .await
            .map_err(|e| NetlinkError::Link {
                op: "set hairpin mode on",
                name: port.to_string(),
                source: to_io(e),
            })
    }

    /// Disconnects a container: deletes the host end, which takes the peer with it. `Ok(false)`
    /// when it was already gone (the container's namespace died with its last process).
    pub async fn detach(&self, host_name: &str) -> Result<bool> {
        self.delete_link(host_name).await
    }
}

fn check_is_bridge(name: &str, link: &LinkMessage) -> Result<()> {
    let kind = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(kind) => Some(kind.clone()),
            _ => None,
        }),
        _ => None,
    });
    match kind {
        Some(InfoKind::Bridge) => Ok(()),
        Some(other) => Err(NetlinkError::NotABridge {
            name: name.to_string(),
            kind: other.to_string(),
        }),
        None => Err(NetlinkError::NotABridge {
            name: name.to_string(),
            kind: "device without a kind".to_string(),
        }),
    }
}

/// What the in-namespace thread needs, owned so it can move to the thread.
struct InNamespace {
    netns: OwnedFd,
    name: String,
    address: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
    address6: Option<(Ipv6Addr, u8)>,
    gateway6: Option<Ipv6Addr>,
    /// The default route is the link itself (ipvlan l3): no gateway.
    dev_route: bool,
}

async fn configure_in_namespace(att: &Attachment<'_>, dev_route: bool) -> Result<()> {
    let job = InNamespace {
        netns: att
            .netns
            .try_clone_to_owned()
            .map_err(NetlinkError::EnterNamespace)?,
        name: att.container_name.to_string(),
        address: att.address,
        prefix: att.subnet.prefix_len(),
        gateway: att.default_gateway,
        address6: att.address6,
        gateway6: att.default_gateway6,
        dev_route,
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("rcompose-netns".into())
        .spawn(move || {
            // The receiver only disappears when the caller gave up waiting.
            let _ = tx.send(job.run());
        })
        .map_err(NetlinkError::Thread)?;
    rx.await.map_err(|_| NetlinkError::ThreadLost {
        name: att.container_name.to_string(),
    })?
}

impl InNamespace {
    /// Runs on its own thread, which it moves into the container's namespace for good (the
    /// thread ends afterwards): its netlink socket and its /proc/sys/net writes then belong to
    /// that namespace.
    fn run(self) -> Result<()> {
        enter_netns(&self.netns)?;
        if self.address6.is_some() {
            // Addresses are handed out uniquely: no duplicate-address detection (which would
            // keep the link-local address tentative for a second) before the interface is up.
            set_sysctl(&format!("net.ipv6.conf.{}.accept_dad", self.name), "0")?;
        } else {
            // IPv4 only: with IPv6 off there is no link-local address and so no
            // duplicate-address detection delay, as Docker does for networks without IPv6. No
            // ipv6 directory means IPv6 is disabled on the whole host: nothing to do.
            let key = format!("net.ipv6.conf.{}.disable_ipv6", self.name);
            match set_sysctl(&key, "1") {
                Ok(_) => {}
                Err(NetlinkError::Sysctl { source, .. })
                    if source.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(NetlinkError::Socket)?;
        runtime.block_on(self.configure())
    }

    async fn configure(&self) -> Result<()> {
        let nl = Netlink::connect()?;
        let name = self.name.as_str();
        let index = nl
            .link_index(name)
            .await?
            .ok_or_else(|| NetlinkError::NoLink {
                name: name.to_string(),
            })?;
        nl.handle
            .address()
            .add(index, self.address.into(), self.prefix)
            .execute()
            .await
            .map_err(|e| NetlinkError::Address {
                op: "add",
                name: name.to_string(),
                address: self.address.into(),
                prefix: self.prefix,
                source: to_io(e),
            })?;
        if let Some((address, prefix)) = self.address6 {
            nl.add_address6(name, index, address, prefix).await?;
        }
        nl.set_up(name).await?;
        nl.set_up("lo").await?;
        let nl = &nl;
        // `via`: the gateway, shown in an error (unspecified for a route out of the link).
        let add = |route, via: IpAddr| async move {
            nl.handle
                .route()
                .add(route)
                .execute()
                .await
                .map_err(|e| NetlinkError::Route {
                    name: name.to_string(),
                    gateway: via,
                    source: to_io(e),
                })
        };
        if let Some(gateway) = self.gateway6 {
            let route = RouteMessageBuilder::<Ipv6Addr>::new()
                .gateway(gateway)
                .output_interface(index)
                .build();
            add(route, gateway.into()).await?;
        }
        if self.dev_route {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .output_interface(index)
                .scope(rtnetlink::packet_route::route::RouteScope::Link)
                .build();
            add(route, IpAddr::V4(Ipv4Addr::UNSPECIFIED)).await?;
        }
        if let Some(gateway) = self.gateway {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gateway)
                .output_interface(index)
                .build();
            add(route, gateway.into()).await?;
        }
        Ok(())
    }
}

/// Moves the calling thread into the network namespace `netns`.
fn enter_netns(netns: &OwnedFd) -> Result<()> {
    // SAFETY: setns only reads the descriptor, which `netns` keeps open for the call.
    let rc = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(NetlinkError::EnterNamespace(io::Error::last_os_error()))
    }
}

/// `net.ipv4.conf.<ifname>.<setting>` → /proc/sys/net/ipv4/conf/<ifname>/<setting>: an interface
/// name may contain dots, so it is kept as one component (what `sysctl` does with '/' in keys).
fn sysctl_path(key: &str) -> PathBuf {
    let mut path = PathBuf::from("/proc/sys");
    let mut parts = key.splitn(4, '.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), Some("conf"), Some(rest)) => {
            path.push(a);
            path.push(b);
            path.push("conf");
            match rest.rsplit_once('.') {
                Some((ifname, setting)) => {
                    path.push(ifname);
                    path.push(setting);
                }
                None => path.push(rest),
            }
        }
        _ => path.extend(key.split('.')),
    }
    path
}

/// Sets sysctl `key` (dotted, as `sysctl` writes it) to `value` in the calling thread's network
/// namespace; reports the change, `None` when it already had that value.
pub fn set_sysctl(key: &str, value: &str) -> Result<Option<SysctlChange>> {
    let err = |source| NetlinkError::Sysctl {
        key: key.to_string(),
        value: value.to_string(),
        source,
    };
    let path = sysctl_path(key);
    let old = fs::read_to_string(&path).map_err(err)?;
    let old = old.trim();
    if old == value {
        return Ok(None);
    }
    fs::write(&path, value).map_err(err)?;
    Ok(Some(SysctlChange {
        key: key.to_string(),
        old: old.to_string(),
        new: value.to_string(),
    }))
}

/// The sysctls the bridges and the firewall need: IPv4 forwarding, and `route_localnet` on each
/// bridge so a published port answers on 127.0.0.1 (the firewall DNATs locally generated
/// traffic to a container and masquerades its loopback source; without it the kernel drops
/// such packets as martians). Returns what was changed.
///
/// With `ipv6` (a network has IPv6), IPv6 forwarding too, as Docker turns it on for IPv6
/// networks. It is host-wide: on a host taking its IPv6 route from router advertisements,
/// set `accept_ra=2` on that interface to keep it (docs/networking.md).
pub fn prepare_sysctls(bridges: &[&str], ipv6: bool) -> Result<Vec<SysctlChange>> {
    let mut changes = Vec::new();
    changes.extend(set_sysctl("net.ipv4.ip_forward", "1")?);
    if ipv6 {
        changes.extend(set_sysctl("net.ipv6.conf.all.forwarding", "1")?);
    }
    for bridge in bridges {
        changes.extend(set_sysctl(
            &format!("net.ipv4.conf.{bridge}.route_localnet"),
            "1",
        )?);
    }
    Ok(changes)
}

mod unlink;

#[cfg(test)]
pub(crate) mod testns;

#[cfg(test)]
mod tests;
