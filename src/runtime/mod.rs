//! The container runtime: turns a service into an isolated, limited process on the kernel.

pub mod cgroups;
