//! IPv6 address management for networks with `enable_ipv6: true`.
//!
//! A network's IPv6 subnet is the one its `ipam.config` gives, else a /64 of a unique local
//! /48 (`fdXX:XXXX:XXXX::/48`, derived from the host's machine id, as Docker 27 derives its
//! default IPv6 pool), skipping /64s other networks use or the host routes. The gateway is the
//! subnet's first address unless configured; containers get the next free addresses in order.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::compose::model::IpamConfig;

const PROC_NET_IPV6_ROUTE: &str = "/proc/net/ipv6_route";
/// Automatic subnets are /64s, the size SLAAC and Docker use.
const AUTO_PREFIX: u8 = 64;
/// A subnet needs its network address, a gateway and a container: /126 is the smallest.
const MAX_PREFIX: u8 = 126;
/// How many addresses past the start an allocation looks at before giving up (a /64 never
/// runs out; a configured /120 does).
const SCAN_LIMIT: u128 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Ipam6Error {
    #[error("invalid IPv6 subnet {value:?}: {reason}")]
    Cidr { value: String, reason: String },
    #[error("invalid IPv6 subnet {value}: it should be {canonical}")]
    HostBits { value: String, canonical: Ipv6Net },
    #[error("invalid {field} {value:?}: not an IPv6 address")]
    Address { field: &'static str, value: String },
    #[error("IPv6 subnet {subnet} is too small for a network (at most /{MAX_PREFIX})")]
    SubnetTooSmall { subnet: Ipv6Net },
    #[error("IPv6 gateway {gateway} is outside subnet {subnet}")]
    GatewayOutside { gateway: Ipv6Addr, subnet: Ipv6Net },
    #[error("ip_range {range} is outside IPv6 subnet {subnet}")]
    RangeOutside { range: Ipv6Net, subnet: Ipv6Net },
    #[error("IPv6 subnet {subnet} overlaps the host route to {route} (on {iface})")]
    OverlapsRoute {
        subnet: Ipv6Net,
        route: Ipv6Net,
        iface: String,
    },
    #[error("IPv6 subnet {subnet} overlaps subnet {other} of another network")]
    OverlapsNetwork { subnet: Ipv6Net, other: Ipv6Net },
    #[error("ipam config sets an IPv6 gateway or ip_range without a subnet")]
    MissingSubnet,
    #[error("only one IPv6 ipam config per network is supported, found {count}")]
    SeveralConfigs { count: usize },
    #[error("no free IPv6 /64 left in {pool}: every one overlaps a host route or another network")]
    PoolExhausted { pool: Ipv6Net },
    #[error("no free IPv6 address left in {range}")]
    AddressesExhausted { range: Ipv6Net },
    #[error("IPv6 address {addr} is outside subnet {subnet}")]
    StaticOutside { addr: Ipv6Addr, subnet: Ipv6Net },
    #[error("IPv6 address {addr} is the network or gateway address of subnet {subnet}")]
    StaticReserved { addr: Ipv6Addr, subnet: Ipv6Net },
    #[error("IPv6 address {addr} is already in use")]
    StaticTaken { addr: Ipv6Addr },
    #[error("cannot parse {PROC_NET_IPV6_ROUTE} line {line}: {reason}")]
    RouteLine { line: usize, reason: String },
}

type Result<T> = std::result::Result<T, Ipam6Error>;

fn mask(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => u128::MAX << (128 - u32::from(p.min(128))),
    }
}

/// An IPv6 network: an address with its host bits cleared and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Net {
    addr: Ipv6Addr,
    prefix: u8,
}

impl Ipv6Net {
    /// The network of `addr`/`prefix`, host bits dropped; `None` when `prefix` exceeds 128.
    pub fn truncating(addr: Ipv6Addr, prefix: u8) -> Option<Ipv6Net> {
        (prefix <= 128).then(|| Ipv6Net {
            addr: Ipv6Addr::from(u128::from(addr) & mask(prefix)),
            prefix,
        })
    }

    pub fn network(self) -> Ipv6Addr {
        self.addr
    }

    pub fn prefix_len(self) -> u8 {
        self.prefix
    }

    pub fn contains(self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & mask(self.prefix) == u128::from(self.addr)
    }

    pub fn overlaps(self, other: Ipv6Net) -> bool {
        let p = self.prefix.min(other.prefix);
        u128::from(self.addr) & mask(p) == u128::from(other.addr) & mask(p)
    }

    /// The address `n` past the network address (wrapping inside the network).
    pub fn nth(self, n: u128) -> Ipv6Addr {
        let host = n & !mask(self.prefix);
        Ipv6Addr::from(u128::from(self.addr) | host)
    }

    /// The index of `ip` in this network (its host bits).
    fn index(self, ip: Ipv6Addr) -> u128 {
        u128::from(ip) & !mask(self.prefix)
    }

    /// How many addresses it holds, saturating.
    fn size(self) -> u128 {
        match 128 - u32::from(self.prefix) {
            128 => u128::MAX,
            bits => 1u128 << bits,
        }
    }
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv6Net {
    type Err = Ipam6Error;

    /// CIDR notation; set host bits are an error naming the intended network, as with Docker.
    fn from_str(value: &str) -> Result<Ipv6Net> {
        let cidr = |reason: &str| Ipam6Error::Cidr {
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let (addr, prefix) = value
            .split_once('/')
            .ok_or_else(|| cidr("expected address/prefix"))?;
        let addr: Ipv6Addr = addr.parse().map_err(|_| cidr("not an IPv6 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 128)
            .ok_or_else(|| cidr("the prefix length must be 0 to 128"))?;
        let net = Ipv6Net::truncating(addr, prefix).ok_or_else(|| cidr("bad prefix"))?;
        if net.addr != addr {
            return Err(Ipam6Error::HostBits {
                value: value.to_string(),
                canonical: net,
            });
        }
        Ok(net)
    }
}

/// A network's IPv6 side (kept in the project's state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv6State {
    #[serde(with = "super::project::text")]
    pub subnet: Ipv6Net,
    pub gateway: Ipv6Addr,
    #[serde(with = "super::project::text::option", default)]
    pub ip_range: Option<Ipv6Net>,
    /// The subnet comes from the user: only then may a service set `ipv6_address`.
    pub configured: bool,
}

impl Ipv6State {
    /// The next free address of the range for a container: past the gateway, not in `in_use`.
    pub fn allocate(&self, in_use: &[Ipv6Addr]) -> Result<Ipv6Addr> {
        let range = self.ip_range.unwrap_or(self.subnet);
        let limit = range.size().min(SCAN_LIMIT);
        (0..limit)
            .map(|i| range.nth(i))
            .find(|ip| self.is_free(*ip, in_use))
            .ok_or(Ipam6Error::AddressesExhausted { range })
    }

    fn is_free(&self, ip: Ipv6Addr, in_use: &[Ipv6Addr]) -> bool {
        self.subnet.index(ip) != 0 && ip != self.gateway && !in_use.contains(&ip)
    }

    /// Checks a static `ipv6_address`.
    pub fn check_static(&self, addr: Ipv6Addr, in_use: &[Ipv6Addr]) -> Result<()> {
        if !self.subnet.contains(addr) {
            return Err(Ipam6Error::StaticOutside {
                addr,
                subnet: self.subnet,
            });
        }
        if self.subnet.index(addr) == 0 || addr == self.gateway {
            return Err(Ipam6Error::StaticReserved {
                addr,
                subnet: self.subnet,
            });
        }
        if in_use.contains(&addr) {
            return Err(Ipam6Error::StaticTaken { addr });
        }
        Ok(())
    }
}

/// An IPv6 route of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute6 {
    pub iface: String,
    pub net: Ipv6Net,
}

/// The host's IPv6 routes that a network could collide with: no default, link-local,
/// multicast or loopback ones.
pub fn host_routes() -> Result<Vec<HostRoute6>> {
    // A host without IPv6 has no file: no routes.
    let text = std::fs::read_to_string(PROC_NET_IPV6_ROUTE).unwrap_or_default();
    parse_proc_net_ipv6_route(&text)
}

/// Parses `/proc/net/ipv6_route`: destination (32 hex digits), its prefix length (hex), ...,
/// the interface last.
pub fn parse_proc_net_ipv6_route(text: &str) -> Result<Vec<HostRoute6>> {
    let link_local = Ipv6Net::truncating(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10);
    let multicast = Ipv6Net::truncating(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8);
    let mut routes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let bad = |reason: &str| Ipam6Error::RouteLine {
            line: i + 1,
            reason: reason.to_string(),
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        if fields.len() < 10 {
            return Err(bad("expected 10 fields"));
        }
        let dest = u128::from_str_radix(fields[0], 16).map_err(|_| bad("bad destination"))?;
        let prefix = u8::from_str_radix(fields[1], 16).map_err(|_| bad("bad prefix length"))?;
        let iface = fields[9];
        let Some(net) = Ipv6Net::truncating(Ipv6Addr::from(dest), prefix) else {
            return Err(bad("bad prefix length"));
        };
        let skip = prefix == 0
            || iface == "lo"
            || link_local.is_some_and(|l| l.overlaps(net))
            || multicast.is_some_and(|m| m.overlaps(net));
        if !skip {
            routes.push(HostRoute6 {
                iface: iface.to_string(),
                net,
            });
        }
    }
    Ok(routes)
}

/// The unique local /48 automatic subnets come from: `fd` and 40 bits of the SHA-256 of the
/// host's machine id (RFC 4193's pseudo-random global id), a fixed one when there is none.
pub fn default_pool() -> Ipv6Net {
    let id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    pool_for(id.trim())
}

/// [`default_pool`] for a given machine id (pure).
pub fn pool_for(machine_id: &str) -> Ipv6Net {
    let digest = Sha256::digest(format!("rcompose ipv6 pool {machine_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes[0] = 0xfd;
    bytes[1..6].copy_from_slice(&digest[..5]);
    Ipv6Net {
        addr: Ipv6Addr::from(bytes),
        prefix: 48,
    }
}

fn check_overlaps(net: Ipv6Net, in_use: &[Ipv6Net], routes: &[HostRoute6]) -> Result<()> {
    if let Some(other) = in_use.iter().find(|o| o.overlaps(net)) {
        return Err(Ipam6Error::OverlapsNetwork {
            subnet: net,
            other: *other,
        });
    }
    if let Some(r) = routes.iter().find(|r| r.net.overlaps(net)) {
        return Err(Ipam6Error::OverlapsRoute {
            subnet: net,
            route: r.net,
            iface: r.iface.clone(),
        });
    }
    Ok(())
}

fn parse_addr(field: &'static str, value: &str) -> Result<Ipv6Addr> {
    value.trim().parse().map_err(|_| Ipam6Error::Address {
        field,
        value: value.to_string(),
    })
}

/// A network's IPv6 side: from its `ipam.config` IPv6 entry, else a free /64 of `pool`.
/// `in_use`: other networks' IPv6 subnets; `routes`: the host's.
pub fn network_subnet(
    ipam: &IpamConfig,
    pool: Ipv6Net,
    in_use: &[Ipv6Net],
    routes: &[HostRoute6],
) -> Result<Ipv6State> {
    let v6: Vec<_> = ipam
        .config
        .iter()
        .filter(|c| {
            [&c.subnet, &c.gateway, &c.ip_range]
                .iter()
                .any(|s| s.contains(':'))
        })
        .collect();
    match v6.as_slice() {
        [] => {
            let net = (0..1u128 << (AUTO_PREFIX - pool.prefix.min(AUTO_PREFIX)))
                .map(|i| Ipv6Net {
                    addr: Ipv6Addr::from(
                        u128::from(pool.addr) | (i << (128 - u32::from(AUTO_PREFIX))),
                    ),
                    prefix: AUTO_PREFIX,
                })
                .take(1 << 16)
                .find(|n| check_overlaps(*n, in_use, routes).is_ok())
                .ok_or(Ipam6Error::PoolExhausted { pool })?;
            Ok(Ipv6State {
                subnet: net,
                gateway: net.nth(1),
                ip_range: None,
                configured: false,
            })
        }
        [cfg] => {
            if cfg.subnet.trim().is_empty() {
                return Err(Ipam6Error::MissingSubnet);
            }
            let subnet: Ipv6Net = cfg.subnet.trim().parse()?;
            if subnet.prefix > MAX_PREFIX {
                return Err(Ipam6Error::SubnetTooSmall { subnet });
            }
            check_overlaps(subnet, in_use, routes)?;
            let gateway = match cfg.gateway.trim() {
                "" => subnet.nth(1),
                g => parse_addr("gateway", g)?,
            };
            if !subnet.contains(gateway) {
                return Err(Ipam6Error::GatewayOutside { gateway, subnet });
            }
            let ip_range = match cfg.ip_range.trim() {
                "" => None,
                r => {
                    let range: Ipv6Net = r.parse()?;
                    if !(subnet.contains(range.addr) && range.prefix >= subnet.prefix) {
                        return Err(Ipam6Error::RangeOutside { range, subnet });
                    }
                    Some(range)
                }
            };
            Ok(Ipv6State {
                subnet,
                gateway,
                ip_range,
                configured: true,
            })
        }
        more => Err(Ipam6Error::SeveralConfigs { count: more.len() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::model::IpamPool;

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    fn ipam(subnet: &str, gateway: &str, range: &str) -> IpamConfig {
        IpamConfig {
            config: vec![IpamPool {
                subnet: subnet.into(),
                gateway: gateway.into(),
                ip_range: range.into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn parses_and_checks_cidrs() {
        let n = net("fd00:1:2::/64");
        assert_eq!(n.to_string(), "fd00:1:2::/64");
        assert!(n.contains("fd00:1:2::5".parse().unwrap()));
        assert!(!n.contains("fd00:1:3::5".parse().unwrap()));
        assert!(n.overlaps(net("fd00::/16")));
        assert!(!n.overlaps(net("fd00:1:3::/64")));
        assert!(matches!(
            "fd00::1/64".parse::<Ipv6Net>(),
            Err(Ipam6Error::HostBits { .. })
        ));
        assert!("10.0.0.0/8".parse::<Ipv6Net>().is_err());
        assert!("fd00::/129".parse::<Ipv6Net>().is_err());
    }

    #[test]
    fn the_default_pool_is_a_stable_unique_local_48() {
        let a = pool_for("0123456789abcdef");
        assert_eq!(a, pool_for("0123456789abcdef"));
        assert_ne!(a, pool_for("fedcba9876543210"));
        assert_eq!(a.prefix_len(), 48);
        assert_eq!(a.network().octets()[0], 0xfd);
    }

    #[test]
    fn automatic_subnets_skip_used_ones_and_routes() {
        let pool = net("fd12:3456:789a::/48");
        let s = network_subnet(&IpamConfig::default(), pool, &[], &[]).unwrap();
        assert_eq!(s.subnet, net("fd12:3456:789a::/64"));
        assert_eq!(s.gateway, "fd12:3456:789a::1".parse::<Ipv6Addr>().unwrap());
        assert!(!s.configured);
        let routes = [HostRoute6 {
            iface: "eth9".into(),
            net: net("fd12:3456:789a:1::/64"),
        }];
        let s = network_subnet(&IpamConfig::default(), pool, &[s.subnet], &routes).unwrap();
        assert_eq!(s.subnet, net("fd12:3456:789a:2::/64"));
    }

    #[test]
    fn configured_subnets_are_checked() {
        let pool = net("fd12:3456:789a::/48");
        let s = network_subnet(&ipam("fd00:db8::/64", "fd00:db8::fe", ""), pool, &[], &[]).unwrap();
        assert_eq!(s.gateway, "fd00:db8::fe".parse::<Ipv6Addr>().unwrap());
        assert!(s.configured);
        let e = network_subnet(&ipam("fd00:db8::/64", "fd00:9::1", ""), pool, &[], &[]);
        assert!(matches!(e, Err(Ipam6Error::GatewayOutside { .. })));
        let e = network_subnet(
            &ipam("fd00:db8::/64", "", ""),
            pool,
            &[net("fd00::/16")],
            &[],
        );
        assert!(
            matches!(&e, Err(Ipam6Error::OverlapsNetwork { other, .. }) if *other == net("fd00::/16"))
        );
        let e = network_subnet(&ipam("", "fd00::1", ""), pool, &[], &[]);
        assert!(matches!(e, Err(Ipam6Error::MissingSubnet)));
        let e = network_subnet(&ipam("fd00:db8::/127", "", ""), pool, &[], &[]);
        assert!(matches!(e, Err(Ipam6Error::SubnetTooSmall { .. })));
        let e = network_subnet(&ipam("fd00:db8::/64", "", "fd00:db9::/80"), pool, &[], &[]);
        assert!(matches!(e, Err(Ipam6Error::RangeOutside { .. })));
        // IPv4 entries are left to the IPv4 side.
        let mut both = ipam("fd00:db8::/64", "", "");
        both.config.push(IpamPool {
            subnet: "10.5.0.0/16".into(),
            ..Default::default()
        });
        assert!(network_subnet(&both, pool, &[], &[]).unwrap().configured);
    }

    #[test]
    fn addresses_follow_the_gateway_and_skip_used_ones() {
        let s =
            network_subnet(&ipam("fd00:db8::/120", "", ""), net("fd00::/48"), &[], &[]).unwrap();
        let a: Ipv6Addr = "fd00:db8::2".parse().unwrap();
        assert_eq!(s.allocate(&[]).unwrap(), a);
        assert_eq!(
            s.allocate(&[a]).unwrap(),
            "fd00:db8::3".parse::<Ipv6Addr>().unwrap()
        );
        assert!(s.check_static(a, &[]).is_ok());
        assert!(matches!(
            s.check_static(a, &[a]),
            Err(Ipam6Error::StaticTaken { .. })
        ));
        assert!(matches!(
            s.check_static(s.gateway, &[]),
            Err(Ipam6Error::StaticReserved { .. })
        ));
        assert!(matches!(
            s.check_static("fd00:db9::2".parse().unwrap(), &[]),
            Err(Ipam6Error::StaticOutside { .. })
        ));
        let ranged = network_subnet(
            &ipam("fd00:db8::/64", "", "fd00:db8::100/120"),
            net("fd00::/48"),
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(
            ranged.allocate(&[]).unwrap(),
            "fd00:db8::100".parse::<Ipv6Addr>().unwrap()
        );
        let full: Vec<Ipv6Addr> = (2..4).map(|i| s.subnet.nth(i)).collect();
        let tiny =
            network_subnet(&ipam("fd00:db8::/126", "", ""), net("fd00::/48"), &[], &[]).unwrap();
        assert!(matches!(
            tiny.allocate(&full),
            Err(Ipam6Error::AddressesExhausted { .. })
        ));
    }

    #[test]
    fn reads_the_kernel_route_table() {
        let text = "\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000003 00000000 00000003     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000004 00000000 80200001       lo
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
";
        let routes = parse_proc_net_ipv6_route(text).unwrap();
        assert_eq!(
            routes,
            vec![HostRoute6 {
                iface: "eth0".into(),
                net: net("fd00::/64")
            }]
        );
        assert!(parse_proc_net_ipv6_route("zz 40").is_err());
    }
}
