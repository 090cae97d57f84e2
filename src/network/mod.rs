//! Networking: names of the links rcompose creates, IPv4 address management, and the DNS that
//! lets containers find each other by service name.

pub mod dns;
pub mod ipam;
pub mod names;
pub mod resolv;
