//! The container runtime: the container spec a service and its image give, the rootfs mount
//! plan (through a `Syscall` trait), cgroups, capabilities, seccomp, and the processes: created
//! by `clone3` ([`process`]), finished inside by the helper ([`init`]), managed as a whole by
//! [`container`].

pub mod caps;
pub mod cgroups;
pub mod container;
pub mod init;
pub mod inroot;
pub mod nofile;
pub mod process;
pub mod rootfs;
pub mod seccomp;
mod seccomp_default;
pub mod spec;
pub mod syscall;
