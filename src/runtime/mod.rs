//! The container runtime: the container spec a service and its image give, the rootfs mount
//! plan (through a `Syscall` trait), cgroups, capabilities, seccomp. Process creation, init and
//! exec arrive with the rest of issue 4.

pub mod caps;
pub mod cgroups;
pub mod rootfs;
pub mod seccomp;
mod seccomp_default;
pub mod spec;
pub mod syscall;
