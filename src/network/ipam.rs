//! IPv4 address management: a subnet for each network, an address for each container.
//!
//! Subnets come from a pool of candidates (Docker's default pools unless `RCOMPOSE_ADDRESS_POOLS`
//! says otherwise), skipping every range already routed on the host or used by another network,
//! or from the network's `ipam.config`. Inside a subnet, addresses are handed out sequentially,
//! next-fit like Docker's serial allocation: a released address is not reused before the others,
//! so a restarted container's old address does not reach a new one while peers still cache it.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::compose::model::{IpamConfig, IpamPool};

/// The variable that overrides the default address pools:
/// `base=10.10.0.0/16,size=24;base=10.20.0.0/16,size=24`.
pub const POOLS_ENV: &str = "RCOMPOSE_ADDRESS_POOLS";

const PROC_NET_ROUTE: &str = "/proc/net/route";
/// `RTF_UP` in the route flags.
const RTF_UP: u32 = 0x0001;
/// A bridge subnet needs a network address, a gateway, a broadcast address and at least one
/// container: /30 is the smallest.
const MAX_PREFIX: u8 = 30;

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("invalid subnet {value:?}: {reason}")]
    Cidr { value: String, reason: String },
    #[error("invalid subnet {value}: it should be {canonical}")]
    HostBits { value: String, canonical: Ipv4Net },
    #[error("invalid {field} {value:?}: not an IPv4 address")]
    Address { field: &'static str, value: String },
    #[error("invalid {POOLS_ENV} entry {entry:?}: {reason}")]
    PoolSpec { entry: String, reason: String },
    #[error("no free subnet left in the address pools: every candidate overlaps a host route or another network (set {POOLS_ENV} to add pools)")]
    PoolsExhausted,
    #[error("subnet {subnet} is too small for a bridge network (at most /{MAX_PREFIX})")]
    SubnetTooSmall { subnet: Ipv4Net },
    #[error("gateway {gateway} is outside subnet {subnet}")]
    GatewayOutside { gateway: Ipv4Addr, subnet: Ipv4Net },
    #[error("gateway {gateway} is the network or broadcast address of subnet {subnet}")]
    GatewayReserved { gateway: Ipv4Addr, subnet: Ipv4Net },
    #[error("ip_range {range} is outside subnet {subnet}")]
    RangeOutside { range: Ipv4Net, subnet: Ipv4Net },
    #[error("subnet {subnet} overlaps the host route to {route} (on {iface}{})", owner_hint(.iface))]
    OverlapsRoute {
        subnet: Ipv4Net,
        route: Ipv4Net,
        iface: String,
    },
    #[error("subnet {subnet} overlaps subnet {other} of another network")]
    OverlapsNetwork { subnet: Ipv4Net, other: Ipv4Net },
    #[error("ipam config sets a gateway or ip_range without a subnet")]
    MissingSubnet,
    #[error("only one IPv4 ipam config per network is supported, found {count}")]
    SeveralConfigs { count: usize },
    #[error("ipam driver {driver:?} is not supported (only \"default\")")]
    Driver { driver: String },
    #[error("no free address left in {range} (subnet {subnet})")]
    AddressesExhausted { subnet: Ipv4Net, range: Ipv4Net },
    #[error("address {addr} is outside subnet {subnet}")]
    StaticOutside { addr: Ipv4Addr, subnet: Ipv4Net },
    #[error("address {addr} is already in use in subnet {subnet}")]
    StaticTaken { addr: Ipv4Addr, subnet: Ipv4Net },
    #[error("address {addr} is the network, gateway or broadcast address of subnet {subnet}")]
    StaticReserved { addr: Ipv4Addr, subnet: Ipv4Net },
    #[error("static address {addr} needs a network with a subnet set in its ipam config")]
    StaticNeedsConfiguredSubnet { addr: Ipv4Addr },
    #[error("network {network}: {source}")]
    Network {
        network: String,
        #[source]
        source: Box<IpamError>,
    },
    #[error("cannot parse {PROC_NET_ROUTE} line {line}: {reason}")]
    RouteLine { line: usize, reason: String },
    #[error("cannot read {PROC_NET_ROUTE}")]
    ReadRoutes(#[source] std::io::Error),
}

type Result<T> = std::result::Result<T, IpamError>;

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

/// An IPv4 network: an address with its host bits cleared and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    /// The network of `addr`/`prefix`, host bits dropped; `None` when `prefix` exceeds 32.
    pub fn truncating(addr: Ipv4Addr, prefix: u8) -> Option<Ipv4Net> {
        (prefix <= 32).then(|| Ipv4Net {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    pub fn network(self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix_len(self) -> u8 {
        self.prefix
    }

    pub fn netmask(self) -> Ipv4Addr {
        Ipv4Addr::from(mask(self.prefix))
    }

    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !mask(self.prefix))
    }

    /// Number of addresses, network and broadcast included.
    pub fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.addr)
    }

    /// Whether `other` lies entirely inside this network.
    pub fn contains_net(self, other: Ipv4Net) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    pub fn overlaps(self, other: Ipv4Net) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// The consecutive subnets of length `prefix` that make up this network (none when `prefix`
    /// is shorter than this network's or longer than 32).
    pub fn subnets(self, prefix: u8) -> impl Iterator<Item = Ipv4Net> {
        let count = if prefix >= self.prefix && prefix <= 32 {
            1u64 << (prefix - self.prefix)
        } else {
            0
        };
        let start = u64::from(u32::from(self.addr));
        let step = 1u64 << (32 - u32::from(prefix.min(32)));
        (0..count).map(move |i| Ipv4Net {
            // In range: the last subnet ends at this network's broadcast address.
            addr: Ipv4Addr::from((start + i * step) as u32),
            prefix,
        })
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = IpamError;

    /// CIDR notation; set host bits are an error (naming the intended network) as with Docker,
    /// since `172.20.1.5/16` is more likely a typo than a wish for `172.20.0.0/16`.
    fn from_str(value: &str) -> Result<Ipv4Net> {
        let cidr = |reason: &str| IpamError::Cidr {
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let (addr, prefix) = value
            .split_once('/')
            .ok_or_else(|| cidr("expected address/prefix"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| cidr("not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| cidr("the prefix length must be 0 to 32"))?;
        let net = Ipv4Net::truncating(addr, prefix).ok_or_else(|| cidr("bad prefix"))?;
        if net.addr != addr {
            return Err(IpamError::HostBits {
                value: value.to_string(),
                canonical: net,
            });
        }
        Ok(net)
    }
}

/// One range of candidate subnets: `base` cut into subnets of prefix length `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSpec {
    pub base: Ipv4Net,
    pub size: u8,
}

/// Where network subnets are taken from, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    specs: Vec<PoolSpec>,
}

impl Default for Pool {
    fn default() -> Pool {
        Pool::docker_default()
    }
}

impl Pool {
    /// Docker's default pools: 172.17.0.0/16 to 172.31.0.0/16, then 192.168.0.0/16 in /20s.
    pub fn docker_default() -> Pool {
        let mut specs: Vec<PoolSpec> = (17..=31)
            .filter_map(|b| Ipv4Net::truncating(Ipv4Addr::new(172, b, 0, 0), 16))
            .map(|base| PoolSpec { base, size: 16 })
            .collect();
        if let Some(base) = Ipv4Net::truncating(Ipv4Addr::new(192, 168, 0, 0), 16) {
            specs.push(PoolSpec { base, size: 20 });
        }
        Pool { specs }
    }

    pub fn new(specs: Vec<PoolSpec>) -> Pool {
        Pool { specs }
    }

    pub fn specs(&self) -> &[PoolSpec] {
        &self.specs
    }

    /// `base=10.10.0.0/16,size=24;base=10.20.0.0/16,size=24`: `;` between pools, `,` between
    /// the keys of one pool. `size` defaults to the base's own prefix length (one subnet).
    pub fn parse(text: &str) -> Result<Pool> {
        let mut specs = Vec::new();
        for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = |reason: String| IpamError::PoolSpec {
                entry: entry.to_string(),
                reason,
            };
            let (mut base, mut size) = (None, None);
            for field in entry.split(',').map(str::trim) {
                match field.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                    Some(("base", v)) => {
                        base = Some(v.parse::<Ipv4Net>().map_err(|e| bad(e.to_string()))?)
                    }
                    Some(("size", v)) => {
                        size = Some(
                            v.parse::<u8>()
                                .map_err(|_| bad(format!("size {v:?} is not a prefix length")))?,
                        )
                    }
                    _ => return Err(bad(format!("unknown field {field:?}"))),
                }
            }
            let base = base.ok_or_else(|| bad("missing base=".into()))?;
            let size = size.unwrap_or(base.prefix);
            if size < base.prefix || size > MAX_PREFIX {
                return Err(bad(format!(
                    "size must be between /{} and /{MAX_PREFIX}",
                    base.prefix
                )));
            }
            specs.push(PoolSpec { base, size });
        }
        if specs.is_empty() {
            return Err(IpamError::PoolSpec {
                entry: text.to_string(),
                reason: "no pool given".into(),
            });
        }
        Ok(Pool { specs })
    }

    /// The pools from [`POOLS_ENV`], or Docker's defaults when it is unset or empty.
    pub fn from_env() -> Result<Pool> {
        match std::env::var(POOLS_ENV) {
            Ok(v) if !v.trim().is_empty() => Pool::parse(&v),
            _ => Ok(Pool::docker_default()),
        }
    }

    /// Every candidate subnet, in order.
    pub fn candidates(&self) -> impl Iterator<Item = Ipv4Net> + '_ {
        self.specs.iter().flat_map(|s| s.base.subnets(s.size))
    }
}

/// A route in the host's main routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    pub iface: String,
    pub net: Ipv4Net,
}

/// The host's IPv4 routes, default routes left out (they overlap everything).
pub fn host_routes() -> Result<Vec<HostRoute>> {
    let text = std::fs::read_to_string(PROC_NET_ROUTE).map_err(IpamError::ReadRoutes)?;
    parse_proc_net_route(&text)
}

/// The kernel prints each address as the `%08X` of a big-endian `__be32` read as a native
/// integer: parsing it back and taking the native bytes restores the address on any host.
fn route_addr(field: &str) -> Option<Ipv4Addr> {
    u32::from_str_radix(field, 16)
        .ok()
        .map(|v| Ipv4Addr::from(v.to_ne_bytes()))
}

/// Parses the text of `/proc/net/route`: up routes other than default ones.
pub fn parse_proc_net_route(text: &str) -> Result<Vec<HostRoute>> {
    let mut routes = Vec::new();
    // The first line is the header.
    for (i, line) in text.lines().enumerate().skip(1) {
        let bad = |reason: &str| IpamError::RouteLine {
            line: i + 1,
            reason: reason.to_string(),
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        if fields.len() < 8 {
            return Err(bad("expected at least 8 fields"));
        }
        let dest = route_addr(fields[1]).ok_or_else(|| bad("bad destination"))?;
        let flags = u32::from_str_radix(fields[3], 16).map_err(|_| bad("bad flags"))?;
        let netmask = route_addr(fields[7]).ok_or_else(|| bad("bad mask"))?;
        let bits = u32::from(netmask);
        let prefix = bits.leading_ones();
        if bits.count_ones() != prefix {
            return Err(bad("non-contiguous mask"));
        }
        if flags & RTF_UP == 0 || prefix == 0 {
            continue;
        }
        let net = Ipv4Net::truncating(dest, prefix as u8).ok_or_else(|| bad("bad mask"))?;
        routes.push(HostRoute {
            iface: fields[0].to_string(),
            net,
        });
    }
    Ok(routes)
}

/// Whose network an interface of the host is, when its name says so: docker's default bridge
/// and user networks, podman's (netavark and CNI) bridges.
fn owner_hint(iface: &str) -> &'static str {
    if iface == "docker0" || iface.starts_with("br-") {
        ", a Docker network"
    } else if iface.starts_with("podman") || iface.starts_with("cni-podman") {
        ", a Podman network"
    } else if crate::network::names::is_rcompose_bridge(iface) {
        ", an rcompose network"
    } else {
        ""
    }
}

fn check_overlaps(net: Ipv4Net, in_use: &[Ipv4Net], host_routes: &[HostRoute]) -> Result<()> {
    if let Some(other) = in_use.iter().find(|o| o.overlaps(net)) {
        return Err(IpamError::OverlapsNetwork {
            subnet: net,
            other: *other,
        });
    }
    if let Some(r) = host_routes.iter().find(|r| r.net.overlaps(net)) {
        return Err(IpamError::OverlapsRoute {
            subnet: net,
            route: r.net,
            iface: r.iface.clone(),
        });
    }
    Ok(())
}

/// The first candidate of `pool` that overlaps neither another network's subnet nor a host route.
/// The caller leaves out the routes of its own bridges, which are not conflicts.
pub fn allocate_subnet(
    pool: &Pool,
    in_use: &[Ipv4Net],
    host_routes: &[HostRoute],
) -> Result<Subnet> {
    let net = pool
        .candidates()
        .find(|c| check_overlaps(*c, in_use, host_routes).is_ok())
        .ok_or(IpamError::PoolsExhausted)?;
    Subnet::build(net, None, None, false)
}

fn parse_addr(field: &'static str, value: &str) -> Result<Ipv4Addr> {
    value.parse().map_err(|_| IpamError::Address {
        field,
        value: value.to_string(),
    })
}

fn is_ipv6(cfg: &IpamPool) -> bool {
    [&cfg.subnet, &cfg.gateway, &cfg.ip_range]
        .iter()
        .any(|s| s.contains(':'))
}

/// The subnet of the network `network` (its name, for error messages): from its `ipam.config`
/// when that sets an IPv4 subnet (checked against other networks and host routes), otherwise from
/// the pool. IPv6 entries are left to the caller. `aux_addresses` are reserved.
pub fn network_subnet(
    network: &str,
    ipam: &IpamConfig,
    pool: &Pool,
    in_use: &[Ipv4Net],
    host_routes: &[HostRoute],
) -> Result<Subnet> {
    let wrap = |e: IpamError| IpamError::Network {
        network: network.to_string(),
        source: Box::new(e),
    };
    if !(ipam.driver.is_empty() || ipam.driver == "default") {
        return Err(wrap(IpamError::Driver {
            driver: ipam.driver.clone(),
        }));
    }
    let v4: Vec<&IpamPool> = ipam.config.iter().filter(|c| !is_ipv6(c)).collect();
    match v4.as_slice() {
        [] => allocate_subnet(pool, in_use, host_routes).map_err(wrap),
        [cfg] => subnet_from_config(cfg, in_use, host_routes).map_err(wrap),
        _ => Err(wrap(IpamError::SeveralConfigs { count: v4.len() })),
    }
}

fn subnet_from_config(
    cfg: &IpamPool,
    in_use: &[Ipv4Net],
    host_routes: &[HostRoute],
) -> Result<Subnet> {
    if cfg.subnet.is_empty() {
        return Err(IpamError::MissingSubnet);
    }
    let net: Ipv4Net = cfg.subnet.parse()?;
    let gateway = match cfg.gateway.as_str() {
        "" => None,
        g => Some(parse_addr("gateway", g)?),
    };
    let range = match cfg.ip_range.as_str() {
        "" => None,
        r => Some(r.parse::<Ipv4Net>()?),
    };
    let mut subnet = Subnet::build(net, gateway, range, true)?;
    check_overlaps(net, in_use, host_routes)?;
    for value in cfg.aux_addresses.values() {
        subnet.reserve(parse_addr("aux_addresses entry", value)?)?;
    }
    Ok(subnet)
}

/// A network's subnet and the container addresses handed out in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    net: Ipv4Net,
    gateway: Ipv4Addr,
    range: Ipv4Net,
    configured: bool,
    taken: BTreeSet<Ipv4Addr>,
    /// Where the next search starts: just after the last address handed out.
    cursor: u32,
}

impl Subnet {
    /// A subnet set by the user: the gateway defaults to the first host address, addresses are
    /// handed out from `range` (default: the whole subnet).
    pub fn configured(
        net: Ipv4Net,
        gateway: Option<Ipv4Addr>,
        range: Option<Ipv4Net>,
    ) -> Result<Subnet> {
        Subnet::build(net, gateway, range, true)
    }

    /// A subnet chosen from the pools.
    pub fn automatic(net: Ipv4Net) -> Result<Subnet> {
        Subnet::build(net, None, None, false)
    }

    fn build(
        net: Ipv4Net,
        gateway: Option<Ipv4Addr>,
        range: Option<Ipv4Net>,
        configured: bool,
    ) -> Result<Subnet> {
        if net.prefix > MAX_PREFIX {
            return Err(IpamError::SubnetTooSmall { subnet: net });
        }
        let first_host = Ipv4Addr::from(u32::from(net.addr) + 1);
        let gateway = gateway.unwrap_or(first_host);
        if !net.contains(gateway) {
            return Err(IpamError::GatewayOutside {
                gateway,
                subnet: net,
            });
        }
        if gateway == net.addr || gateway == net.broadcast() {
            return Err(IpamError::GatewayReserved {
                gateway,
                subnet: net,
            });
        }
        let range = range.unwrap_or(net);
        if !net.contains_net(range) {
            return Err(IpamError::RangeOutside { range, subnet: net });
        }
        Ok(Subnet {
            net,
            gateway,
            range,
            configured,
            taken: BTreeSet::new(),
            cursor: u32::from(range.addr),
        })
    }

    pub fn net(&self) -> Ipv4Net {
        self.net
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    pub fn range(&self) -> Ipv4Net {
        self.range
    }

    /// Whether the subnet came from `ipam.config` (static addresses need one, as with Docker).
    pub fn is_configured(&self) -> bool {
        self.configured
    }

    fn is_reserved(&self, addr: Ipv4Addr) -> bool {
        addr == self.net.addr || addr == self.net.broadcast() || addr == self.gateway
    }

    pub fn is_taken(&self, addr: Ipv4Addr) -> bool {
        self.taken.contains(&addr)
    }

    /// Takes a static address (`ipv4_address`, an aux address). Reserve every static address of
    /// the project before the first [`Subnet::allocate`], or a dynamic one may take it first.
    /// It may lie outside `ip_range`, not outside the subnet.
    pub fn reserve(&mut self, addr: Ipv4Addr) -> Result<()> {
        if !self.configured {
            return Err(IpamError::StaticNeedsConfiguredSubnet { addr });
        }
        if !self.net.contains(addr) {
            return Err(IpamError::StaticOutside {
                addr,
                subnet: self.net,
            });
        }
        if self.is_reserved(addr) {
            return Err(IpamError::StaticReserved {
                addr,
                subnet: self.net,
            });
        }
        if !self.taken.insert(addr) {
            return Err(IpamError::StaticTaken {
                addr,
                subnet: self.net,
            });
        }
        Ok(())
    }

    /// The next free address of the range after the last one handed out, wrapping around.
    pub fn allocate(&mut self) -> Result<Ipv4Addr> {
        let start = u64::from(u32::from(self.range.addr));
        let size = self.range.size();
        let offset = u64::from(self.cursor).saturating_sub(start) % size;
        for i in 0..size {
            // In range: start + (anything below size) stays within the range.
            let addr = Ipv4Addr::from((start + (offset + i) % size) as u32);
            if self.is_reserved(addr) || self.taken.contains(&addr) {
                continue;
            }
            self.taken.insert(addr);
            self.cursor = u32::from(addr).wrapping_add(1);
            return Ok(addr);
        }
        Err(IpamError::AddressesExhausted {
            subnet: self.net,
            range: self.range,
        })
    }

    /// Gives an address back; `false` when it was not taken.
    pub fn release(&mut self, addr: Ipv4Addr) -> bool {
        self.taken.remove(&addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn route(s: &str) -> HostRoute {
        HostRoute {
            iface: "eth0".into(),
            net: net(s),
        }
    }

    #[test]
    fn ipv4net_basics() {
        let n = net("172.18.0.0/16");
        assert_eq!(n.to_string(), "172.18.0.0/16");
        assert_eq!(n.broadcast(), ip("172.18.255.255"));
        assert_eq!(n.netmask(), ip("255.255.0.0"));
        assert_eq!(n.size(), 65536);
        assert!(n.contains(ip("172.18.3.4")));
        assert!(!n.contains(ip("172.19.0.0")));
        assert!(n.contains_net(net("172.18.5.0/24")));
        assert!(!net("172.18.5.0/24").contains_net(n));
        assert!(n.overlaps(net("172.0.0.0/8")));
        assert!(net("172.0.0.0/8").overlaps(n));
        assert!(!n.overlaps(net("172.19.0.0/16")));
        assert_eq!(net("0.0.0.0/0").size(), 1 << 32);
        assert_eq!(net("10.0.0.1/32").broadcast(), ip("10.0.0.1"));
        let subs: Vec<_> = net("192.168.0.0/16").subnets(20).collect();
        assert_eq!(subs.len(), 16);
        assert_eq!(subs[1], net("192.168.16.0/20"));
        assert_eq!(subs[15], net("192.168.240.0/20"));
        assert_eq!(
            net("255.255.255.0/24").subnets(25).last(),
            Some(net("255.255.255.128/25"))
        );
        assert_eq!(net("10.0.0.0/16").subnets(8).count(), 0);
    }

    #[test]
    fn ipv4net_parse_errors() {
        for bad in [
            "10.0.0.0",
            "10.0.0/8",
            "10.0.0.0/33",
            "10.0.0.0/x",
            "fd00::/64",
            "",
        ] {
            assert!(
                matches!(bad.parse::<Ipv4Net>(), Err(IpamError::Cidr { .. })),
                "{bad}"
            );
        }
        let err = "172.20.1.5/16".parse::<Ipv4Net>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid subnet 172.20.1.5/16: it should be 172.20.0.0/16"
        );
    }

    #[test]
    fn default_pools_are_dockers() {
        let pool = Pool::docker_default();
        assert_eq!(pool.specs().len(), 16);
        let c: Vec<_> = pool.candidates().collect();
        assert_eq!(c.len(), 15 + 16);
        assert_eq!(c[0], net("172.17.0.0/16"));
        assert_eq!(c[14], net("172.31.0.0/16"));
        assert_eq!(c[15], net("192.168.0.0/20"));
        assert_eq!(c[30], net("192.168.240.0/20"));
    }

    #[test]
    fn pools_from_text() {
        let pool = Pool::parse(" base=10.10.0.0/16,size=24 ; base=10.20.0.0/24;").unwrap();
        assert_eq!(
            pool.specs(),
            &[
                PoolSpec {
                    base: net("10.10.0.0/16"),
                    size: 24
                },
                PoolSpec {
                    base: net("10.20.0.0/24"),
                    size: 24
                },
            ]
        );
        assert_eq!(pool.candidates().count(), 257);
        for bad in [
            "",
            ";",
            "size=24",
            "base=10.0.0.0/16,size=8",
            "base=10.0.0.0/16,size=31",
            "base=10.0.0.0/16,size=x",
            "base=10.0.0.1/16,size=24",
            "base=10.0.0.0/16,mask=24",
            "base=10.0.0.0/16,size",
        ] {
            assert!(
                matches!(Pool::parse(bad), Err(IpamError::PoolSpec { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn allocation_skips_networks_and_routes() {
        let pool = Pool::docker_default();
        // docker0 holds 172.17/16; a VPN routes 172.16/12 minus nothing: all of 172.x is out.
        let s = allocate_subnet(&pool, &[], &[route("172.17.0.0/16")]).unwrap();
        assert_eq!(s.net(), net("172.18.0.0/16"));
        assert_eq!(s.gateway(), ip("172.18.0.1"));
        assert!(!s.is_configured());
        let s = allocate_subnet(
            &pool,
            &[net("172.18.0.0/16")],
            &[route("172.17.0.0/16"), route("172.19.128.0/24")],
        )
        .unwrap();
        assert_eq!(s.net(), net("172.20.0.0/16"));
        let s =
            allocate_subnet(&pool, &[net("192.168.0.0/20")], &[route("172.16.0.0/12")]).unwrap();
        assert_eq!(s.net(), net("192.168.16.0/20"));
        let all = allocate_subnet(
            &pool,
            &[],
            &[route("172.16.0.0/12"), route("192.168.0.0/16")],
        );
        assert!(matches!(all, Err(IpamError::PoolsExhausted)));
    }

    #[test]
    fn sequential_addresses_with_release_and_exhaustion() {
        let mut s = Subnet::automatic(net("10.0.0.0/29")).unwrap();
        let got: Vec<_> = (0..5).map(|_| s.allocate().unwrap()).collect();
        let want: Vec<_> = (2..=6).map(|d| Ipv4Addr::new(10, 0, 0, d)).collect();
        assert_eq!(got, want);
        assert!(matches!(
            s.allocate(),
            Err(IpamError::AddressesExhausted { .. })
        ));
        assert!(s.release(ip("10.0.0.3")));
        assert!(!s.release(ip("10.0.0.3")));
        assert!(!s.is_taken(ip("10.0.0.3")));
        assert_eq!(s.allocate().unwrap(), ip("10.0.0.3"));
        // Next-fit: a released address waits until the others have been used.
        let mut s = Subnet::automatic(net("10.0.0.0/24")).unwrap();
        let a = s.allocate().unwrap();
        assert!(s.release(a));
        assert_eq!(s.allocate().unwrap(), ip("10.0.0.3"));
    }

    #[test]
    fn allocation_from_ip_range_and_around_statics() {
        let mut s = Subnet::configured(
            net("172.28.0.0/16"),
            Some(ip("172.28.5.254")),
            Some(net("172.28.5.0/30")),
        )
        .unwrap();
        assert!(s.is_configured());
        assert_eq!(s.range(), net("172.28.5.0/30"));
        s.reserve(ip("172.28.5.1")).unwrap();
        // A static address outside ip_range but inside the subnet is fine.
        s.reserve(ip("172.28.9.9")).unwrap();
        assert_eq!(s.allocate().unwrap(), ip("172.28.5.0"));
        assert_eq!(s.allocate().unwrap(), ip("172.28.5.2"));
        assert_eq!(s.allocate().unwrap(), ip("172.28.5.3"));
        assert!(s.allocate().is_err());
    }

    #[test]
    fn gateway_in_range_is_skipped() {
        let mut s = Subnet::configured(net("10.1.0.0/24"), Some(ip("10.1.0.2")), None).unwrap();
        assert_eq!(s.allocate().unwrap(), ip("10.1.0.1"));
        assert_eq!(s.allocate().unwrap(), ip("10.1.0.3"));
    }

    #[test]
    fn static_address_errors() {
        let mut s = Subnet::configured(net("10.1.0.0/24"), None, None).unwrap();
        s.reserve(ip("10.1.0.10")).unwrap();
        assert!(matches!(
            s.reserve(ip("10.1.0.10")),
            Err(IpamError::StaticTaken { .. })
        ));
        assert!(matches!(
            s.reserve(ip("10.1.1.10")),
            Err(IpamError::StaticOutside { .. })
        ));
        for reserved in ["10.1.0.0", "10.1.0.1", "10.1.0.255"] {
            assert!(
                matches!(
                    s.reserve(ip(reserved)),
                    Err(IpamError::StaticReserved { .. })
                ),
                "{reserved}"
            );
        }
        let a = s.allocate().unwrap();
        assert!(matches!(s.reserve(a), Err(IpamError::StaticTaken { .. })));
        let mut auto = Subnet::automatic(net("172.18.0.0/16")).unwrap();
        assert!(matches!(
            auto.reserve(ip("172.18.0.5")),
            Err(IpamError::StaticNeedsConfiguredSubnet { .. })
        ));
    }

    #[test]
    fn subnet_validation() {
        let err = Subnet::configured(net("10.1.0.0/24"), Some(ip("10.2.0.1")), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "gateway 10.2.0.1 is outside subnet 10.1.0.0/24"
        );
        for g in ["10.1.0.0", "10.1.0.255"] {
            assert!(matches!(
                Subnet::configured(net("10.1.0.0/24"), Some(ip(g)), None),
                Err(IpamError::GatewayReserved { .. })
            ));
        }
        let err =
            Subnet::configured(net("10.1.0.0/24"), None, Some(net("10.1.0.0/23"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ip_range 10.1.0.0/23 is outside subnet 10.1.0.0/24"
        );
        assert!(matches!(
            Subnet::automatic(net("10.1.0.0/31")),
            Err(IpamError::SubnetTooSmall { .. })
        ));
        let mut s = Subnet::automatic(net("10.1.0.0/30")).unwrap();
        assert_eq!(s.allocate().unwrap(), ip("10.1.0.2"));
        assert!(s.allocate().is_err());
    }

    fn ipam(subnet: &str, gateway: &str, ip_range: &str) -> IpamConfig {
        IpamConfig {
            config: vec![IpamPool {
                subnet: subnet.into(),
                gateway: gateway.into(),
                ip_range: ip_range.into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn network_subnet_from_config() {
        let pool = Pool::docker_default();
        let s = network_subnet(
            "demo_db",
            &ipam("10.5.0.0/16", "10.5.0.254", "10.5.1.0/24"),
            &pool,
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(s.net(), net("10.5.0.0/16"));
        assert_eq!(s.gateway(), ip("10.5.0.254"));
        assert_eq!(s.range(), net("10.5.1.0/24"));
        assert!(s.is_configured());

        // An IPv6-only config leaves IPv4 to the pool.
        let s = network_subnet("demo_db", &ipam("fd00::/64", "", ""), &pool, &[], &[]).unwrap();
        assert_eq!(s.net(), net("172.17.0.0/16"));
        let s = network_subnet(
            "demo_db",
            &IpamConfig::default(),
            &pool,
            &[net("172.17.0.0/16")],
            &[],
        )
        .unwrap();
        assert_eq!(s.net(), net("172.18.0.0/16"));
    }

    #[test]
    fn network_subnet_errors() {
        let pool = Pool::docker_default();
        let err = network_subnet(
            "demo_db",
            &ipam("10.5.0.0/16", "", ""),
            &pool,
            &[],
            &[HostRoute {
                iface: "wg0".into(),
                net: net("10.0.0.0/8"),
            }],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "network demo_db: subnet 10.5.0.0/16 overlaps the host route to 10.0.0.0/8 (on wg0)"
        );
        let err = network_subnet(
            "n",
            &ipam("10.5.0.0/16", "", ""),
            &pool,
            &[net("10.5.3.0/24")],
            &[],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "network n: subnet 10.5.0.0/16 overlaps subnet 10.5.3.0/24 of another network"
        );
        let cases = [
            (ipam("", "10.0.0.1", ""), "without a subnet"),
            (
                ipam("10.5.0.0/16", "10.6.0.1", ""),
                "gateway 10.6.0.1 is outside",
            ),
            (ipam("10.5.0.0/16", "x", ""), "invalid gateway \"x\""),
            (
                ipam("10.5.0.0/16", "", "10.6.0.0/24"),
                "ip_range 10.6.0.0/24 is outside",
            ),
            (ipam("10.5.0.1/16", "", ""), "it should be 10.5.0.0/16"),
        ];
        for (cfg, want) in cases {
            let err = network_subnet("n", &cfg, &pool, &[], &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err}");
        }
        let mut two = ipam("10.5.0.0/16", "", "");
        two.config.push(two.config[0].clone());
        assert!(network_subnet("n", &two, &pool, &[], &[])
            .unwrap_err()
            .to_string()
            .contains("only one"));
        let drv = IpamConfig {
            driver: "dhcp".into(),
            ..Default::default()
        };
        assert!(network_subnet("n", &drv, &pool, &[], &[])
            .unwrap_err()
            .to_string()
            .contains("dhcp"));
    }

    #[test]
    fn aux_addresses_are_reserved() {
        let mut cfg = ipam("10.5.0.0/24", "", "");
        let mut aux = IndexMap::new();
        aux.insert("router".to_string(), "10.5.0.2".to_string());
        cfg.config[0].aux_addresses = aux;
        let mut s = network_subnet("n", &cfg, &Pool::default(), &[], &[]).unwrap();
        assert!(s.is_taken(ip("10.5.0.2")));
        assert_eq!(s.allocate().unwrap(), ip("10.5.0.3"));
        let mut bad = IndexMap::new();
        bad.insert("router".to_string(), "10.6.0.2".to_string());
        cfg.config[0].aux_addresses = bad;
        assert!(matches!(
            network_subnet("n", &cfg, &Pool::default(), &[], &[]),
            Err(IpamError::Network { .. })
        ));
    }

    // The sample was taken on a little-endian (x86_64) host; the hex fields are native integers.
    #[cfg(target_endian = "little")]
    #[test]
    fn proc_net_route_parsing() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
wg0\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n\
eth0\t0A0A0A0A\t0101A8C0\t0007\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n\
down0\t000014AC\t00000000\t0000\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
\n";
        let routes = parse_proc_net_route(text).unwrap();
        let got: Vec<(String, String)> = routes
            .iter()
            .map(|r| (r.iface.clone(), r.net.to_string()))
            .collect();
        let want = [
            ("eth0", "192.168.1.0/24"),
            ("docker0", "172.17.0.0/16"),
            ("wg0", "10.0.0.0/8"),
            ("eth0", "10.10.10.10/32"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn proc_net_route_errors() {
        let header =
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n";
        for (body, why) in [
            ("eth0\t0001A8C0\t00000000\n", "expected at least 8 fields"),
            (
                "eth0\tZZ\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
                "bad destination",
            ),
            (
                "eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\tFF00FF00\t0\t0\t0\n",
                "non-contiguous mask",
            ),
        ] {
            let err = parse_proc_net_route(&format!("{header}{body}"))
                .unwrap_err()
                .to_string();
            assert_eq!(err, format!("cannot parse /proc/net/route line 2: {why}"));
        }
    }

    #[test]
    fn host_routes_reads_proc() {
        // Whatever the host has, the call succeeds and never reports a default route.
        let routes = host_routes().unwrap();
        assert!(routes.iter().all(|r| r.net.prefix_len() > 0));
    }
}
