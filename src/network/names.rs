//! Deterministic names for the links rcompose creates, and MAC addresses.
//!
//! Linux interface names are limited to 15 bytes (IFNAMSIZ - 1), too short for
//! `<project>_<network>`, so names are a short prefix plus a slice of a sha256: deterministic (the
//! next `up` or `down` finds them again without any state file) and recognisable (leftovers from a
//! crashed run can be told apart from the host's own links).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// Prefix of every bridge rcompose creates.
pub const BRIDGE_PREFIX: &str = "rc-";
/// Prefix of the host end of every veth pair rcompose creates.
pub const VETH_PREFIX: &str = "rv";

const BRIDGE_HASH_LEN: usize = IFNAME_MAX - BRIDGE_PREFIX.len();
const VETH_HASH_LEN: usize = IFNAME_MAX - VETH_PREFIX.len();

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NamesError {
    #[error("invalid mac_address {value:?}: expected six hex octets such as 02:42:ac:11:00:02")]
    MacSyntax { value: String },
    #[error(
        "invalid mac_address {value:?}: a multicast address cannot be assigned to an interface"
    )]
    MacMulticast { value: String },
    #[error(
        "invalid mac_address {value:?}: the all-zero address cannot be assigned to an interface"
    )]
    MacZero { value: String },
}

fn hex_digest(parts: &[&str], len: usize) -> String {
    let mut h = Sha256::new();
    for p in parts {
        // The length prefix keeps ("ab", "c") and ("a", "bc") apart.
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    let mut s = hex::encode(h.finalize());
    s.truncate(len);
    s
}

/// The bridge for a compose network, from its resolved name (`NetworkConfig::name`, which is
/// `<project>_<key>` unless the file sets `name:`): unique per project and network, and shared
/// when two projects explicitly name the same network, as with Docker. Always 15 characters:
/// `rc-` and 12 hex digits.
pub fn bridge_name(network_name: &str) -> String {
    format!(
        "{BRIDGE_PREFIX}{}",
        hex_digest(&["bridge", network_name], BRIDGE_HASH_LEN)
    )
}

/// A network's id as `network ls`/`inspect` show it: 64 hex digits whose first 12 are its
/// bridge's (so the short id names the bridge).
pub fn network_id(network_name: &str) -> String {
    hex_digest(&["bridge", network_name], 64)
}

/// The host end of a container's veth pair on one network: `rv` and 13 hex digits of the
/// container id and the network's resolved name.
pub fn veth_host_name(container_id: &str, network_name: &str) -> String {
    format!(
        "{VETH_PREFIX}{}",
        hex_digest(&["veth", container_id, network_name], VETH_HASH_LEN)
    )
}

/// The container end of the veth pair for the `index`-th network of a container, as Docker names
/// them (`eth0`, `eth1`, ...). It lives in the container's namespace, so it cannot collide.
pub fn container_interface_name(index: usize) -> String {
    format!("eth{index}")
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `name` has the shape of a bridge made by [`bridge_name`].
pub fn is_rcompose_bridge(name: &str) -> bool {
    name.len() == IFNAME_MAX && name.strip_prefix(BRIDGE_PREFIX).is_some_and(is_lower_hex)
}

/// Whether `name` has the shape of a veth host end made by [`veth_host_name`].
pub fn is_rcompose_veth(name: &str) -> bool {
    name.len() == IFNAME_MAX && name.strip_prefix(VETH_PREFIX).is_some_and(is_lower_hex)
}

/// Whether a host interface was made by rcompose (a candidate for leftover cleanup). Exact shape
/// matching: a host link such as `rc-lan` or `rvnet0` is never taken for one of ours.
pub fn is_rcompose_interface(name: &str) -> bool {
    is_rcompose_bridge(name) || is_rcompose_veth(name)
}

/// An Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Docker's address for a container IP: the locally administered prefix `02:42` and the four
    /// bytes of the address, so it is unique wherever the IP is.
    pub fn for_ipv4(ip: Ipv4Addr) -> MacAddr {
        let [a, b, c, d] = ip.octets();
        MacAddr([0x02, 0x42, a, b, c, d])
    }

    pub fn octets(self) -> [u8; 6] {
        self.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = NamesError;

    /// A `mac_address` as a user writes it: six two-digit hex octets separated by `:` or `-`
    /// (one separator throughout), either case. Addresses the kernel would refuse for an
    /// interface (multicast, all zeros) are errors here, before anything is created.
    fn from_str(value: &str) -> Result<MacAddr, NamesError> {
        let syntax = || NamesError::MacSyntax {
            value: value.to_string(),
        };
        let sep = if value.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut parts = value.split(sep);
        for byte in &mut out {
            let part = parts.next().ok_or_else(syntax)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(syntax());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| syntax())?;
        }
        if parts.next().is_some() {
            return Err(syntax());
        }
        if out[0] & 0x01 != 0 {
            return Err(NamesError::MacMulticast {
                value: value.to_string(),
            });
        }
        if out == [0; 6] {
            return Err(NamesError::MacZero {
                value: value.to_string(),
            });
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_fit_and_are_deterministic() {
        let a = bridge_name("demo_default");
        assert_eq!(a.len(), IFNAME_MAX);
        assert!(a.starts_with("rc-"));
        assert_eq!(a, bridge_name("demo_default"));
        assert_ne!(a, bridge_name("demo_backend"));
        assert_ne!(a, bridge_name("other_default"));
        // Long names still fit.
        assert_eq!(bridge_name(&"x".repeat(300)).len(), IFNAME_MAX);
        assert!(is_rcompose_bridge(&a));
        assert!(!is_rcompose_veth(&a));
    }

    #[test]
    fn veth_names_fit_and_differ_per_network() {
        let id = "0123456789abcdef".repeat(4);
        let a = veth_host_name(&id, "demo_default");
        assert_eq!(a.len(), IFNAME_MAX);
        assert!(a.starts_with("rv"));
        assert_eq!(a, veth_host_name(&id, "demo_default"));
        assert_ne!(a, veth_host_name(&id, "demo_backend"));
        assert_ne!(a, veth_host_name("other", "demo_default"));
        assert!(is_rcompose_veth(&a));
        assert!(is_rcompose_interface(&a));
    }

    #[test]
    fn hashing_separates_field_boundaries() {
        assert_ne!(veth_host_name("ab", "c"), veth_host_name("a", "bc"));
    }

    #[test]
    fn host_interfaces_are_not_ours() {
        for name in [
            "lo",
            "eth0",
            "docker0",
            "rc-lan",
            "rvnet0",
            "rc-0123456789ab0", // too long
            "rc-0123456789a",   // too short
            "rc-0123456789AB",  // upper case is never produced
            "rv0123456789abg",
            "br-0123456789ab",
        ] {
            assert!(!is_rcompose_interface(name), "{name}");
        }
        assert!(is_rcompose_interface("rc-0123456789ab"));
        assert!(is_rcompose_interface("rv0123456789abc"));
    }

    #[test]
    fn container_interfaces_are_numbered() {
        assert_eq!(container_interface_name(0), "eth0");
        assert_eq!(container_interface_name(2), "eth2");
    }

    #[test]
    fn mac_from_ip_is_docker_style() {
        let mac = MacAddr::for_ipv4(Ipv4Addr::new(172, 18, 0, 2));
        assert_eq!(mac.to_string(), "02:42:ac:12:00:02");
        assert_eq!(mac.octets(), [2, 0x42, 172, 18, 0, 2]);
    }

    #[test]
    fn mac_parsing() {
        let m: MacAddr = "02:42:AC:11:00:02".parse().unwrap();
        assert_eq!(m.0, [2, 0x42, 0xac, 0x11, 0, 2]);
        assert_eq!(m.to_string(), "02:42:ac:11:00:02");
        let m: MacAddr = "92-d0-c6-0a-29-33".parse().unwrap();
        assert_eq!(m.to_string(), "92:d0:c6:0a:29:33");
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "02:42:ac:11:00:2",
            "02:42:ac:11:00:0g",
            "02:42-ac:11:00:02",
            "0242.ac11.0002",
            "+2:42:ac:11:00:02",
        ] {
            assert!(
                matches!(bad.parse::<MacAddr>(), Err(NamesError::MacSyntax { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            "01:00:5e:00:00:01".parse::<MacAddr>(),
            Err(NamesError::MacMulticast { .. })
        ));
        assert!(matches!(
            "ff:ff:ff:ff:ff:ff".parse::<MacAddr>(),
            Err(NamesError::MacMulticast { .. })
        ));
        assert_eq!(
            "00:00:00:00:00:00".parse::<MacAddr>(),
            Err(NamesError::MacZero {
                value: "00:00:00:00:00:00".into()
            })
        );
    }
}
