//! NAT, isolation and published ports with nftables: one table per project.
//!
//! Every rule of project `p` lives in table `ip rcompose-p`, so a project's rules are found with
//! `nft list table ip rcompose-p` and removed as a whole by deleting the table, and nothing else
//! on the host is touched — except, on a host whose iptables `filter` table drops forwarded
//! traffic (Docker's), the few accepts of host_firewall.rs, removed with the table. The table
//! is always replaced whole in one `nft -f -` transaction (the kernel applies it atomically, or
//! not at all): [`apply`] takes the project's complete desired state, which makes `up`
//! idempotent. docs/networking.md explains the rules.

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::io::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::process::{Command, Stdio};
use std::str::FromStr;

use super::host_firewall::{self, HostFirewallError};
use super::ipam::Ipv4Net;
use super::ipam6::Ipv6Net;
use super::names::BRIDGE_PREFIX;
use super::nftables::{self, NftablesError};

/// Prefix of every table rcompose creates.
pub const TABLE_PREFIX: &str = "rcompose-";
/// The binary driven here; Debian's `nftables` package.
const NFT: &str = "nft";
/// Marks each published-port rule, so other projects can see which host ports are taken
/// (a DNAT rule holds no socket: binding cannot find it).
const PUBLISH_COMMENT: &str = "rcompose publish";

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("invalid project name {name:?}: expected [a-z0-9_-], starting with a letter or digit")]
    ProjectName { name: String },
    #[error("invalid bridge name {name:?}: expected 1 to 15 characters of [A-Za-z0-9_.-]")]
    BridgeName { name: String },
    #[error(
        "invalid port range {value:?}: expected PORT or START-END with 1 <= START <= END <= 65535"
    )]
    PortRange { value: String },
    #[error("cannot publish host ports {host} on container ports {container}: the ranges must have the same length, or the container side be one port")]
    RangeMismatch {
        host: PortRange,
        container: PortRange,
    },
    #[error("host port {port}/{protocol} on {addr} is published twice")]
    Duplicate {
        protocol: Protocol,
        addr: String,
        port: u16,
    },
    #[error("host port {port}/{protocol} on {addr} is already in use")]
    PortInUse {
        protocol: Protocol,
        addr: String,
        port: u16,
    },
    #[error("host port {port}/{protocol} is already published by project {project}")]
    PublishedElsewhere {
        protocol: Protocol,
        port: u16,
        project: String,
    },
    #[error("host_ip {addr} of port {port}/{protocol} is not an address of this host")]
    HostIp {
        protocol: Protocol,
        addr: IpAddr,
        port: u16,
    },
    #[error("cannot check host port {port}/{protocol} on {addr}")]
    PortCheck {
        protocol: Protocol,
        addr: String,
        port: u16,
        #[source]
        source: io::Error,
    },
    #[error("cannot run {NFT} (is the nftables package installed?)")]
    NftSpawn(#[source] io::Error),
    #[error("{NFT} failed to {action}: {stderr}")]
    Nft { action: String, stderr: String },
    #[error(transparent)]
    Netlink(#[from] NftablesError),
    #[error("cannot parse the output of {NFT} -j")]
    NftOutput(#[source] serde_json::Error),
    #[error(transparent)]
    Host(#[from] HostFirewallError),
}

impl FirewallError {
    /// The host port an error is about, when it is about one.
    pub fn port(&self) -> Option<(Protocol, u16)> {
        match self {
            FirewallError::Duplicate { protocol, port, .. }
            | FirewallError::PortInUse { protocol, port, .. }
            | FirewallError::PublishedElsewhere { protocol, port, .. }
            | FirewallError::HostIp { protocol, port, .. }
            | FirewallError::PortCheck { protocol, port, .. } => Some((*protocol, *port)),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, FirewallError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An inclusive range of ports, `start <= end`, never port 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    start: u16,
    end: u16,
}

impl PortRange {
    pub fn new(start: u16, end: u16) -> Result<PortRange> {
        if start == 0 || start > end {
            return Err(FirewallError::PortRange {
                value: format!("{start}-{end}"),
            });
        }
        Ok(PortRange { start, end })
    }

    pub fn single(port: u16) -> Result<PortRange> {
        PortRange::new(port, port)
    }

    pub fn start(self) -> u16 {
        self.start
    }

    pub fn end(self) -> u16 {
        self.end
    }

    pub fn len(self) -> u32 {
        u32::from(self.end - self.start) + 1
    }

    pub fn is_empty(self) -> bool {
        false
    }

    pub fn ports(self) -> impl Iterator<Item = u16> {
        self.start..=self.end
    }

    fn overlaps(self, other: PortRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl FromStr for PortRange {
    type Err = FirewallError;

    fn from_str(value: &str) -> Result<PortRange> {
        let err = || FirewallError::PortRange {
            value: value.to_string(),
        };
        let (a, b) = value.split_once('-').unwrap_or((value, value));
        let a = a.parse().map_err(|_| err())?;
        let b = b.parse().map_err(|_| err())?;
        PortRange::new(a, b).map_err(|_| err())
    }
}

/// One compose network as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRules {
    /// Its bridge (`names::bridge_name`).
    pub bridge: String,
    pub subnet: Ipv4Net,
    /// The IPv6 subnet of a network with `enable_ipv6`: its rules go in the `ip6` table.
    pub subnet6: Option<Ipv6Net>,
    /// `internal: true`: no masquerade, and nothing enters or leaves the bridge.
    pub internal: bool,
    /// `com.docker.network.bridge.enable_ip_masquerade: false`: traffic leaves with the
    /// containers' own addresses.
    pub no_masquerade: bool,
}

/// A published port: host ports (on `host_ip`, all host addresses when `None` or unspecified)
/// to a container's ports. Ranges map one to one (`8000-8001:9000-9001`), or all to one port.
/// `None` publishes on IPv4 and, when the container has an IPv6 address, on IPv6; an IPv6
/// `host_ip` on IPv6 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishedPort {
    pub protocol: Protocol,
    pub host_ip: Option<IpAddr>,
    pub host_ports: PortRange,
    pub container_ip: Ipv4Addr,
    /// The container's IPv6 address, when it has one on the port's network.
    pub container_ip6: Option<Ipv6Addr>,
    pub container_ports: PortRange,
}

/// Where a port listens in one address family: every address, or one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On<T> {
    All,
    Addr(T),
}

impl PublishedPort {
    /// The IPv4 address it listens on, `None` for all of them (and for an IPv6 `host_ip`,
    /// which [`PublishedPort::v4`] leaves out).
    fn host_addr(&self) -> Option<Ipv4Addr> {
        match self.v4() {
            Some(On::Addr(ip)) => Some(ip),
            _ => None,
        }
    }

    /// Where it listens on IPv4; `None`: not on IPv4.
    fn v4(&self) -> Option<On<Ipv4Addr>> {
        match self.host_ip {
            None => Some(On::All),
            Some(IpAddr::V4(ip)) if ip.is_unspecified() => Some(On::All),
            Some(IpAddr::V4(ip)) => Some(On::Addr(ip)),
            Some(IpAddr::V6(_)) => None,
        }
    }

    /// Where the `ip6` table takes it to the container's IPv6 address; `None`: not there
    /// (no IPv6 address, an IPv4 `host_ip`, or `::1`, which NAT cannot reach: the userland
    /// proxy serves loopback).
    pub fn v6(&self) -> Option<(On<Ipv6Addr>, Ipv6Addr)> {
        let target = self.container_ip6?;
        let on = match self.host_ip {
            None => On::All,
            Some(IpAddr::V6(ip)) if ip.is_unspecified() => On::All,
            Some(IpAddr::V6(ip)) if ip.is_loopback() => return None,
            Some(IpAddr::V6(ip)) => On::Addr(ip),
            Some(IpAddr::V4(_)) => return None,
        };
        Some((on, target))
    }

    fn validate(&self) -> Result<()> {
        let (h, c) = (self.host_ports, self.container_ports);
        if c.len() != 1 && c.len() != h.len() {
            return Err(FirewallError::RangeMismatch {
                host: h,
                container: c,
            });
        }
        Ok(())
    }
}

/// Everything a project needs from the firewall.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectRules {
    pub networks: Vec<NetworkRules>,
    pub ports: Vec<PublishedPort>,
}

/// The table holding project `project`'s rules.
pub fn table_name(project: &str) -> Result<String> {
    let valid = project
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
        && project
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if !valid {
        return Err(FirewallError::ProjectName {
            name: project.to_string(),
        });
    }
    Ok(format!("{TABLE_PREFIX}{project}"))
}

/// Whether the project needs an `ip6` table: a network with IPv6, or a port published to a
/// container's IPv6 address.
pub fn needs_ip6(rules: &ProjectRules) -> bool {
    rules.networks.iter().any(|n| n.subnet6.is_some())
        || rules.ports.iter().any(|p| p.v6().is_some())
}

/// The nft script that replaces project `project`'s tables with `rules`. Pure: what [`apply`]
/// feeds to `nft -f -`. The `ip6` table is there only when [`needs_ip6`].
pub fn render(project: &str, rules: &ProjectRules) -> Result<String> {
    let table = table_name(project)?;
    // Declaring then deleting makes the delete succeed whether or not the table existed; the
    // whole file is one transaction, so nothing ever sees the table missing.
    let mut s = format!("add table ip {table}\ndelete table ip {table}\n");
    s.push_str(&render_table(project, rules)?);
    if needs_ip6(rules) {
        let _ = writeln!(s, "add table ip6 {table}\ndelete table ip6 {table}");
        s.push_str(&render_table6(project, rules)?);
    }
    Ok(s)
}

/// The nft script that creates project `project`'s tables with `rules`, failing when one
/// exists (`create` is exclusive). Pure. Unlike [`render`] it deletes nothing, and a
/// transaction that deletes makes the kernel wait for an RCU grace period (10 to 20 ms on the
/// benchmark machine).
pub fn render_create(project: &str, rules: &ProjectRules) -> Result<String> {
    let table = table_name(project)?;
    let mut s = format!("create table ip {table}\n");
    s.push_str(&render_table(project, rules)?);
    if needs_ip6(rules) {
        let _ = writeln!(s, "create table ip6 {table}");
        s.push_str(&render_table6(project, rules)?);
    }
    Ok(s)
}

/// The forward chain of both tables: isolation between networks, `internal` ones cut off.
/// The rules match interfaces only, so they read the same in `ip` and `ip6`.
fn render_forward<'a>(s: &mut String, networks: impl Iterator<Item = &'a NetworkRules>) {
    let any_bridge = format!("\"{BRIDGE_PREFIX}*\"");
    let _ = writeln!(s, "  chain forward {{");
    let _ = writeln!(
        s,
        "    type filter hook forward priority filter; policy accept;"
    );
    for n in networks {
        let b = format!("\"{}\"", n.bridge);
        if n.internal {
            let _ = writeln!(s, "    iifname {b} oifname != {b} drop");
            let _ = writeln!(s, "    oifname {b} iifname != {b} drop");
        } else {
            // Isolation: nothing goes from this bridge to another rcompose bridge, except to a
            // published port (DNAT) and its replies.
            let _ = writeln!(
                s,
                "    iifname {b} oifname != {b} oifname {any_bridge} ct status ! dnat drop"
            );
            // From elsewhere into the bridge: replies, and published ports only.
            let _ = writeln!(
                s,
                "    oifname {b} iifname != {b} ct state established,related accept"
            );
            let _ = writeln!(s, "    oifname {b} iifname != {b} ct status dnat accept");
            let _ = writeln!(s, "    oifname {b} iifname != {b} drop");
        }
    }
    let _ = writeln!(s, "  }}");
}

/// The NAT chains that carry the port rules `dnat`: prerouting (from other hosts and from
/// containers: hairpin) and output (from the host itself).
fn render_dnat_chains(s: &mut String, dnat: &str) {
    for (chain, hook, priority) in [
        ("prerouting", "prerouting", "dstnat"),
        ("output", "output", "-100"),
    ] {
        let _ = writeln!(s, "  chain {chain} {{");
        let _ = writeln!(
            s,
            "    type nat hook {hook} priority {priority}; policy accept;"
        );
        s.push_str(dnat);
        let _ = writeln!(s, "  }}");
    }
}

/// The `ip6` table: the same isolation for the networks with IPv6, masquerade of their
/// subnets, and the ports published to containers' IPv6 addresses (not `::1`, where the
/// kernel drops what NAT would send on: the userland proxy serves it).
fn render_table6(project: &str, rules: &ProjectRules) -> Result<String> {
    let table = table_name(project)?;
    let mut s = String::new();
    let _ = writeln!(s, "table ip6 {table} {{");
    let v6: Vec<&NetworkRules> = rules
        .networks
        .iter()
        .filter(|n| n.subnet6.is_some())
        .collect();
    render_forward(&mut s, v6.iter().copied());
    let mut dnat = String::new();
    for p in &rules.ports {
        dnat_rule6(&mut dnat, p);
    }
    render_dnat_chains(&mut s, &dnat);
    let _ = writeln!(s, "  chain postrouting {{");
    let _ = writeln!(
        s,
        "    type nat hook postrouting priority srcnat; policy accept;"
    );
    for n in &v6 {
        let Some(net) = n.subnet6 else { continue };
        let b = format!("\"{}\"", n.bridge);
        if !n.internal && !n.no_masquerade {
            let _ = writeln!(s, "    ip6 saddr {net} oifname != {b} masquerade");
        }
        let _ = writeln!(
            s,
            "    oifname {b} ct status dnat ip6 saddr {net} masquerade"
        );
    }
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "}}");
    Ok(s)
}

fn dnat_rule6(s: &mut String, p: &PublishedPort) {
    let Some((on, ip)) = p.v6() else { return };
    let proto = p.protocol.as_str();
    let (h, c) = (p.host_ports, p.container_ports);
    let (daddr, host) = match on {
        On::All => (
            "fib daddr type local ip6 daddr != ::1".to_string(),
            "::".to_string(),
        ),
        On::Addr(a) => (format!("ip6 daddr {a}"), a.to_string()),
    };
    let comment = format!("{PUBLISH_COMMENT} {proto} {host} {h}");
    if c.len() == 1 || h.start == c.start {
        let target = if c.len() == 1 {
            format!("[{ip}]:{}", c.start)
        } else {
            // Same ports on both sides: keep the destination port.
            ip.to_string()
        };
        let _ = writeln!(
            s,
            "    {daddr} {proto} dport {h} dnat to {target} comment \"{comment}\""
        );
    } else {
        for (a, b) in h.ports().zip(c.ports()) {
            let _ = writeln!(
                s,
                "    {daddr} {proto} dport {a} dnat to [{ip}]:{b} comment \"{comment}\""
            );
        }
    }
}

/// The table itself: `table ip rcompose-<project> { ... }`.
fn render_table(project: &str, rules: &ProjectRules) -> Result<String> {
    let table = table_name(project)?;
    for port in &rules.ports {
        port.validate()?;
    }
    // Names go into the script: only what an interface name may hold, nothing that quotes.
    for n in &rules.networks {
        let ok = (1..=super::names::IFNAME_MAX).contains(&n.bridge.len())
            && n.bridge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !ok {
            return Err(FirewallError::BridgeName {
                name: n.bridge.clone(),
            });
        }
    }
    let mut s = String::new();
    let _ = writeln!(s, "table ip {table} {{");
    render_forward(&mut s, rules.networks.iter());

    // route_localnet lets the bridge accept packets to 127.0.0.0/8; only the replies of
    // connections the host made may use that.
    let _ = writeln!(s, "  chain input {{");
    let _ = writeln!(
        s,
        "    type filter hook input priority filter; policy accept;"
    );
    for n in &rules.networks {
        let _ = writeln!(
            s,
            "    iifname \"{}\" ip daddr 127.0.0.0/8 ct state new,invalid,untracked drop",
            n.bridge
        );
    }
    let _ = writeln!(s, "  }}");

    let mut dnat = String::new();
    for p in &rules.ports {
        dnat_rule(&mut dnat, p);
    }
    render_dnat_chains(&mut s, &dnat);

    let _ = writeln!(s, "  chain postrouting {{");
    let _ = writeln!(
        s,
        "    type nat hook postrouting priority srcnat; policy accept;"
    );
    for n in &rules.networks {
        let b = format!("\"{}\"", n.bridge);
        let net = n.subnet;
        if !n.internal && !n.no_masquerade {
            let _ = writeln!(s, "    ip saddr {net} oifname != {b} masquerade");
        }
        // A published port reached on 127.0.0.1: the container cannot answer a loopback source.
        let _ = writeln!(s, "    oifname {b} ip saddr 127.0.0.0/8 masquerade");
        // Hairpin: a container reaching a published port of its own network would get the
        // answer straight from the peer over the bridge, not from the address it called.
        let _ = writeln!(
            s,
            "    oifname {b} ct status dnat ip saddr {net} masquerade"
        );
    }
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "}}");
    Ok(s)
}

fn dnat_rule(s: &mut String, p: &PublishedPort) {
    if p.v4().is_none() {
        return;
    }
    let proto = p.protocol.as_str();
    let (h, c) = (p.host_ports, p.container_ports);
    let daddr = match p.host_addr() {
        Some(ip) => format!("ip daddr {ip}"),
        None => "fib daddr type local".to_string(),
    };
    let ip = p.container_ip;
    let target = if c.len() == 1 {
        format!("{ip}:{}", c.start)
    } else if h.start == c.start {
        // Same ports on both sides: keep the destination port.
        ip.to_string()
    } else {
        let pairs: Vec<String> = h
            .ports()
            .zip(c.ports())
            .map(|(a, b)| format!("{a} : {b}"))
            .collect();
        format!("{ip} : {proto} dport map {{ {} }}", pairs.join(", "))
    };
    let host = p
        .host_addr()
        .map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string());
    let _ = writeln!(
        s,
        "    {daddr} {proto} dport {h} dnat to {target} comment \"{PUBLISH_COMMENT} {proto} {host} {h}\""
    );
}

fn nft(args: &[&str], stdin: Option<&str>, action: &str) -> Result<String> {
    let mut cmd = Command::new(NFT);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(FirewallError::NftSpawn)?;
    if let (Some(script), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A write error means nft exited early: its status and stderr say why.
        let _ = pipe.write_all(script.as_bytes());
    }
    let out = child.wait_with_output().map_err(FirewallError::NftSpawn)?;
    if !out.status.success() {
        return Err(FirewallError::Nft {
            action: action.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Replaces project `project`'s rules with `rules`, atomically; with neither networks nor ports
/// it removes them.
pub fn apply(project: &str, rules: &ProjectRules) -> Result<()> {
    if rules.networks.is_empty() && rules.ports.is_empty() {
        remove(project)?;
        return Ok(());
    }
    let action = format!("apply the rules of project {project}");
    // A project's first `up` creates its table; only when it exists (or cannot be listed) is
    // it replaced. A table made by someone else in between makes the create fail: then it is
    // replaced after all.
    let table = table_name(project)?;
    let exists =
        nftables::list_tables(nftables::FAMILY_IP).map_or(true, |tables| tables.contains(&table));
    let created =
        !exists && nft(&["-f", "-"], Some(&render_create(project, rules)?), &action).is_ok();
    if !created {
        nft(&["-f", "-"], Some(&render(project, rules)?), &action)?;
    }
    if !needs_ip6(rules) {
        // A project whose last IPv6 network or port went. Listed first: a delete, even of a
        // table that is not there, is a transaction, which the kernel may make wait.
        remove_ip6(&table)?;
    }
    // A host firewall dropping forwarded traffic (Docker's) would drop what the table accepts.
    let bridges: Vec<host_firewall::Bridge> = rules
        .networks
        .iter()
        .map(|n| host_firewall::Bridge {
            name: n.bridge.clone(),
            internal: n.internal,
            ipv6: n.subnet6.is_some(),
        })
        .collect();
    host_firewall::sync(project, &bridges)?;
    Ok(())
}

/// Removes every rule of project `project`, its table and what it added to the host's chains
/// (host_firewall); `Ok(false)` when it had no table.
pub fn remove(project: &str) -> Result<bool> {
    let table = table_name(project)?;
    // Found by their comment, whether or not the table is still there (a crash in between).
    let host = host_firewall::remove(project);
    // Over netlink: no nft process, and no listing first (a missing table is ENOENT).
    let existed = nftables::delete_table(nftables::FAMILY_IP, &table)?;
    let existed6 = remove_ip6(&table)?;
    host?;
    Ok(existed || existed6)
}

/// Deletes the project's `ip6` table when it has one (most have none: only a listing then).
fn remove_ip6(table: &str) -> Result<bool> {
    let listed = nftables::list_tables(nftables::FAMILY_IP6)?;
    if !listed.iter().any(|t| t == table) {
        return Ok(false);
    }
    Ok(nftables::delete_table(nftables::FAMILY_IP6, table)?)
}

/// The projects that have rules (to find the leftovers of a crashed run), sorted.
pub fn projects() -> Result<Vec<String>> {
    let names: BTreeSet<String> = nftables::list_tables(nftables::FAMILY_IP)?
        .iter()
        .filter_map(|n| n.strip_prefix(TABLE_PREFIX))
        .map(str::to_string)
        .collect();
    Ok(names.into_iter().collect())
}

fn nft_items(out: &str) -> Result<Vec<serde_json::Value>> {
    let v: serde_json::Value = serde_json::from_str(out).map_err(FirewallError::NftOutput)?;
    Ok(v.get("nftables")
        .and_then(|n| n.as_array())
        .cloned()
        .unwrap_or_default())
}

/// A host port range some project publishes, read back from its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub project: String,
    pub protocol: Protocol,
    /// `None`: all host addresses (of both families); `::` all IPv6 ones.
    pub host_ip: Option<IpAddr>,
    pub host_ports: PortRange,
}

fn parse_publish_comment(comment: &str) -> Option<(Protocol, Option<IpAddr>, PortRange)> {
    let mut words = comment.strip_prefix(PUBLISH_COMMENT)?.split_whitespace();
    let protocol = match words.next()? {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => return None,
    };
    let ip: IpAddr = words.next()?.parse().ok()?;
    let ports = words.next()?.parse().ok()?;
    Some((
        protocol,
        Some(ip).filter(|ip| ip != &IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ports,
    ))
}

/// The host ports project `project` publishes.
pub fn publications(project: &str) -> Result<Vec<Publication>> {
    let table = table_name(project)?;
    let out = nft(
        &["-j", "list", "chain", "ip", &table, "prerouting"],
        None,
        &format!("list the published ports of project {project}"),
    )?;
    let mut found = Vec::new();
    for item in nft_items(&out)? {
        let comment = item
            .get("rule")
            .and_then(|r| r.get("comment"))
            .and_then(|c| c.as_str());
        found.extend(comment.and_then(|c| publication(project, c)));
    }
    Ok(found)
}

/// The publication a rule's comment records, if it is one.
fn publication(project: &str, comment: &str) -> Option<Publication> {
    let (protocol, host_ip, host_ports) = parse_publish_comment(comment)?;
    Some(Publication {
        project: project.to_string(),
        protocol,
        host_ip,
        host_ports,
    })
}

/// The host ports every project but `except` publishes, read from the ruleset in one go: a
/// table listed first and read afterwards can vanish in between (another project's `down`).
pub fn publications_of_others(except: &str) -> Result<Vec<Publication>> {
    let out = nft(
        &["-j", "list", "ruleset"],
        None,
        "list the ports other projects publish",
    )?;
    let mut found = Vec::new();
    for item in nft_items(&out)? {
        let Some(rule) = item.get("rule") else {
            continue;
        };
        if !matches!(
            rule.get("family").and_then(|f| f.as_str()),
            Some("ip" | "ip6")
        ) {
            continue;
        }
        let project = rule
            .get("table")
            .and_then(|t| t.as_str())
            .and_then(|t| t.strip_prefix(TABLE_PREFIX));
        let Some(project) = project.filter(|p| *p != except) else {
            continue;
        };
        if rule.get("chain").and_then(|c| c.as_str()) != Some("prerouting") {
            continue;
        }
        let comment = rule.get("comment").and_then(|c| c.as_str());
        found.extend(comment.and_then(|c| publication(project, c)));
    }
    Ok(found)
}

/// Whether two host addresses of published ports share a socket address: `None` is every
/// address of both families, an unspecified one every address of its family.
pub(crate) fn addrs_overlap(a: Option<IpAddr>, b: Option<IpAddr>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) if a.is_ipv4() != b.is_ipv4() => false,
        (Some(a), Some(b)) => a == b || a.is_unspecified() || b.is_unspecified(),
        _ => true,
    }
}

/// Checks, before anything is created, that every host port of `ports` is free: not published
/// twice in `ports`, not published by another project than `project`, and bindable on its
/// host_ip (a DNAT rule would silently shadow a host service listening there).
pub fn check_ports_free(project: &str, ports: &[PublishedPort]) -> Result<()> {
    if ports.is_empty() {
        // Nothing to check: no need to list what other projects publish (an nft process).
        return Ok(());
    }
    let addr_text =
        |ip: Option<IpAddr>| ip.map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string());
    for (i, p) in ports.iter().enumerate() {
        p.validate()?;
        for q in &ports[..i] {
            if p.protocol == q.protocol
                && addrs_overlap(p.host_ip, q.host_ip)
                && p.host_ports.overlaps(q.host_ports)
            {
                let port = p
                    .host_ports
                    .ports()
                    .find(|x| q.host_ports.ports().any(|y| y == *x))
                    .unwrap_or(p.host_ports.start);
                return Err(FirewallError::Duplicate {
                    protocol: p.protocol,
                    addr: addr_text(p.host_ip),
                    port,
                });
            }
        }
    }
    let others = publications_of_others(project)?;
    for p in ports {
        if let Some(o) = others.iter().find(|o| {
            o.protocol == p.protocol
                && addrs_overlap(o.host_ip, p.host_ip)
                && o.host_ports.overlaps(p.host_ports)
        }) {
            let port = p
                .host_ports
                .ports()
                .find(|x| o.host_ports.ports().any(|y| y == *x))
                .unwrap_or(p.host_ports.start);
            return Err(FirewallError::PublishedElsewhere {
                protocol: p.protocol,
                port,
                project: o.project.clone(),
            });
        }
        let ip = p.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        for port in p.host_ports.ports() {
            let addr = SocketAddr::from((ip, port));
            if super::proxy::is_held(p.protocol, addr) {
                // This process serves it (the project's own IPv6 loopback port).
                continue;
            }
            let bound = match p.protocol {
                Protocol::Tcp => TcpListener::bind(addr).map(drop),
                Protocol::Udp => UdpSocket::bind(addr).map(drop),
            };
            match bound {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    return Err(FirewallError::PortInUse {
                        protocol: p.protocol,
                        addr: ip.to_string(),
                        port,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => {
                    return Err(FirewallError::HostIp {
                        protocol: p.protocol,
                        addr: ip,
                        port,
                    })
                }
                Err(source) => {
                    return Err(FirewallError::PortCheck {
                        protocol: p.protocol,
                        addr: ip.to_string(),
                        port,
                        source,
                    })
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
