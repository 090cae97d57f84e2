//! Networking: names of the links rcompose creates, IPv4 and IPv6 address management, bridges and veths
//! over rtnetlink, the project's nftables table (and the accepts a host firewall such as
//! Docker's needs, host_firewall), and the DNS that lets containers find each other
//! by service name; `project` composes them for a whole compose project.

pub mod dns;
pub mod firewall;
pub mod host_firewall;
pub mod ipam;
pub mod ipam6;
pub mod names;
pub mod netlink;
pub mod nftables;
pub mod project;
pub mod proxy;
pub mod registry;
pub mod resolv;
pub mod standalone;
