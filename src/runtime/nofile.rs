//! The open-files limit of the supervisor and of what it starts.
//!
//! The supervisor serves every container's DNS and the control socket from one process, so it
//! raises its soft `RLIMIT_NOFILE` to the hard limit at start, as container engines do (Go's
//! runtime does it for dockerd and containerd). It never asks above the hard limit: that needs
//! `CAP_SYS_RESOURCE`. Containers keep the limit the supervisor was started with, as docker's
//! get the daemon's limits from before the raise (Go restores them for the processes it
//! starts): [`inherited`] is what a container gets when its `ulimits` do not set `nofile`.

use std::sync::OnceLock;

/// The limit this process had before [`raise`] changed it (`None`: not raised).
static BEFORE: OnceLock<(u64, u64)> = OnceLock::new();

fn get() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Raises this process's soft limit of open files to its hard limit; returns the new limit.
/// The previous one is kept for [`inherited`].
pub fn raise() -> std::io::Result<(u64, u64)> {
    let (soft, hard) = get()?;
    if soft >= hard {
        return Ok((soft, hard));
    }
    let lim = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: a valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let _ = BEFORE.set((soft, hard));
    Ok((hard, hard))
}

/// The `(soft, hard)` limit a process started from here gets when nothing else sets it: the
/// one this process had before [`raise`], `None` when it was not raised (then a child inherits
/// the current limit, which is that one).
pub fn inherited() -> Option<(u64, u64)> {
    BEFORE.get().copied()
}

/// The current soft limit of open files (`None` when unknown).
pub fn soft_limit() -> Option<u64> {
    get().ok().map(|(soft, _)| soft)
}
