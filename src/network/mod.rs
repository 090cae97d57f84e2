//! Networking: names of the links rcompose creates, and IPv4 address management.

pub mod ipam;
pub mod names;
