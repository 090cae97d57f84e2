//! The container runtime: turning a service into an isolated, limited process.

pub mod caps;
pub mod seccomp;
