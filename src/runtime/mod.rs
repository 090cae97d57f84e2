//! The container runtime: specs, cgroups, capabilities, seccomp.

pub mod caps;
pub mod cgroups;
pub mod seccomp;
mod seccomp_default;
