//! Networking: names of the links rcompose creates, and IPv4 address management.

pub mod firewall;
pub mod ipam;
pub mod names;
pub mod netlink;
