//! Creating a container's first process: `clone3` into new namespaces and straight into the
//! container's cgroup (v2: `CLONE_INTO_CGROUP`; v1: cloned by a thread that entered the cgroup
//! alone, see [`ThreadJoin`]), then `execve` of the rcompose helper that finishes the
//! set-up inside ([`super::init`]).
//!
//! The caller may be a multi-threaded tokio process, so between `clone` and `execve` the child
//! runs only raw system calls on memory prepared before the clone: no allocation, no locks.
//! Everything that needs more (the rootfs, users, capabilities, seccomp) happens in the helper,
//! which is single-threaded and fresh.
//!
//! The helper is executed through a read-only bind mount of its own file, made in the child's
//! private mount namespace: a process in the container that reaches the helper's executable
//! through `/proc/<pid>/exe` (the CVE-2019-5736 attack) can read it but never write it.
//!
//! The helper gets its configuration in one message ([`Spawned::configure`], as early as
//! possible) and does what needs no network (namespaces, hostname, usually the whole rootfs)
//! while the caller plugs the network in; [`Spawned::start`] then sends [`GO`] and the helper
//! finishes and executes the command.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use super::cgroups::ThreadJoin;
use super::init::InitConfig;

/// The fd the helper finds its end of the control socket on.
pub const SYNC_FD: RawFd = 3;

/// The first argument that makes the rcompose binary run as the helper.
pub const HELPER_ARG: &str = "__container-init";

/// The message that lets a configured helper go on to the command.
pub const GO: &[u8] = b"go";

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("invalid helper path {0:?}")]
    HelperPath(std::path::PathBuf),
    #[error("cannot create the control socket: {0}")]
    Socket(#[source] io::Error),
    #[error("cannot prepare the container's stdio: {0}")]
    Stdio(#[source] io::Error),
    #[error("cannot create the container process: {0}")]
    Clone(#[source] io::Error),
    /// A terminal of the host as a container's stdio: the container could type into it
    /// (`TIOCSTI`) or read it after rcompose exits. Callers relay through pipes instead.
    #[error("refusing to give the container a terminal of the host as its {0}")]
    HostTerminal(&'static str),
    #[error("cannot start the container's helper ({step}): {source}")]
    PreExec {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot send the container's configuration: {0}")]
    Send(#[source] io::Error),
    #[error("cannot read from the container's helper: {0}")]
    Receive(#[source] io::Error),
    #[error("invalid message from the container's helper: {0}")]
    Protocol(String),
    /// The helper failed to set the container up or to exec its command; `code` is the exit code
    /// docker gives such a failure (127 not found, 126 not executable, 1 otherwise).
    #[error("{message}")]
    Start { message: String, code: i32 },
}

/// Namespaces to create, as `CLONE_NEW*` flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub pid: bool,
    pub uts: bool,
    pub ipc: bool,
    pub net: bool,
}

impl Namespaces {
    fn clone_flags(&self) -> u64 {
        // A mount namespace always: the helper's read-only bind and the rootfs live there.
        let mut flags = libc::CLONE_NEWNS as u64;
        for (on, flag) in [
            (self.pid, libc::CLONE_NEWPID),
            (self.uts, libc::CLONE_NEWUTS),
            (self.ipc, libc::CLONE_NEWIPC),
            (self.net, libc::CLONE_NEWNET),
        ] {
            if on {
                flags |= flag as u64;
            }
        }
        flags
    }
}

/// What the new process gets as stdin, stdout and stderr (`None`: `/dev/null`). Never a
/// terminal: [`spawn`] refuses one (a container's terminal is a pty of its own devpts).
#[derive(Debug, Default)]
pub struct Stdio<'a> {
    pub stdin: Option<BorrowedFd<'a>>,
    pub stdout: Option<BorrowedFd<'a>>,
    pub stderr: Option<BorrowedFd<'a>>,
}

pub struct SpawnRequest<'a> {
    /// The rcompose binary (normally `/proc/self/exe`'s target).
    pub helper: &'a Path,
    pub namespaces: Namespaces,
    /// A cgroup v2 directory to start in (`CLONE_INTO_CGROUP`).
    pub cgroup: Option<BorrowedFd<'a>>,
    /// A cgroup v1 to start in: the process is cloned from a thread that entered it alone.
    pub join_cgroup: Option<&'a ThreadJoin>,
    pub stdio: Stdio<'a>,
}

/// A process created and waiting in the helper for its configuration.
#[derive(Debug)]
pub struct Spawned {
    pid: i32,
    pidfd: Option<OwnedFd>,
    sync: OwnedFd,
    /// Whether `clone3` placed it in the requested cgroup (else the caller must add it).
    in_cgroup: bool,
    /// Whether the configuration was sent ([`Spawned::configure`]).
    configured: AtomicBool,
}

/// What the helper sends back before the container's command starts.
#[derive(Debug, Serialize, Deserialize)]
pub enum Report {
    /// The pty master of a `tty` container follows as an `SCM_RIGHTS` fd.
    Pty,
    /// Set-up or exec failed.
    Error { message: String, code: i32 },
}

/// Pre-exec failures are reported as `[0xff, step, errno (4 bytes, native)]`.
const RAW_ERROR: u8 = 0xff;
const STEPS: [&str; 6] = [
    "dup stdio",
    "make mounts private",
    "bind the helper",
    "make the helper read-only",
    "exec the helper",
    "start a session",
];

// `struct clone_args` (linux/sched.h), version 2 (with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Creates the process. It starts the helper and waits for [`Spawned::start`].
pub fn spawn(req: &SpawnRequest) -> Result<Spawned, ProcessError> {
    let helper = CString::new(req.helper.as_os_str().as_bytes())
        .map_err(|_| ProcessError::HelperPath(req.helper.to_path_buf()))?;
    if !req.helper.is_absolute() {
        return Err(ProcessError::HelperPath(req.helper.to_path_buf()));
    }
    let arg0 = c"rcompose-init";
    let arg1 = CString::new(HELPER_ARG).map_err(|_| ProcessError::Protocol("helper arg".into()))?;
    let argv: [*const libc::c_char; 3] = [arg0.as_ptr(), arg1.as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];

    for (fd, what) in [
        (req.stdio.stdin, "stdin"),
        (req.stdio.stdout, "stdout"),
        (req.stdio.stderr, "stderr"),
    ] {
        if fd.is_some_and(|fd| nix::unistd::isatty(fd).unwrap_or(false)) {
            return Err(ProcessError::HostTerminal(what));
        }
    }
    let (parent_sock, child_sock) = seqpacket_pair().map_err(ProcessError::Socket)?;
    let devnull = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(ProcessError::Stdio)?;
    // Sources at fd 10 or above, so that dup2 onto 0..=3 in the child never clobbers one.
    let high = |fd: Option<BorrowedFd>| -> Result<OwnedFd, ProcessError> {
        let fd = fd.unwrap_or(devnull.as_fd());
        fd_at_least(fd, 10).map_err(ProcessError::Stdio)
    };
    let sources = [
        high(req.stdio.stdin)?,
        high(req.stdio.stdout)?,
        high(req.stdio.stderr)?,
        fd_at_least(child_sock.as_fd(), 10).map_err(ProcessError::Stdio)?,
    ];
    let source_fds: [RawFd; 4] = [
        sources[0].as_raw_fd(),
        sources[1].as_raw_fd(),
        sources[2].as_raw_fd(),
        sources[3].as_raw_fd(),
    ];
    let report_fd = sources[3].as_raw_fd();

    let child = ChildArgs {
        sources: &source_fds,
        helper: &helper,
        argv: &argv,
        envp: &envp,
        report_fd,
    };
    let clone_flags = req.namespaces.clone_flags();
    let cloned = match (req.cgroup, req.join_cgroup) {
        // cgroup v1: from a thread that entered the cgroup alone (see `ThreadJoin`).
        (None, Some(join)) => std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let inside = match join.enter() {
                        Ok(inside) => inside,
                        Err(e) => {
                            tracing::debug!("cannot spawn from inside the cgroup: {e}");
                            return clone_child(clone_flags, None, &child);
                        }
                    };
                    match clone_child(clone_flags, None, &child) {
                        Ok((pid, pidfd, _)) => {
                            if let Err(e) = inside.leave() {
                                // It leaves when it exits, a moment later.
                                tracing::warn!("cannot move the spawning thread back: {e}");
                            }
                            Ok((pid, pidfd, true))
                        }
                        // No room for the thread and the process (`pids_limit: 1`): the
                        // caller moves the process instead.
                        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                            drop(inside);
                            clone_child(clone_flags, None, &child)
                        }
                        Err(e) => Err(e),
                    }
                })
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the spawning thread panicked")))
        }),
        (cgroup, _) => clone_child(clone_flags, cgroup, &child),
    };
    let (pid, pidfd, in_cgroup) = cloned.map_err(ProcessError::Clone)?;
    drop(sources);
    drop(child_sock);
    Ok(Spawned {
        pid,
        pidfd,
        sync: parent_sock,
        in_cgroup,
        configured: AtomicBool::new(false),
    })
}

/// Memory prepared for the child, which runs [`child_main`] between clone and exec.
struct ChildArgs<'a> {
    sources: &'a [RawFd; 4],
    helper: &'a CString,
    argv: &'a [*const libc::c_char; 3],
    envp: &'a [*const libc::c_char; 1],
    report_fd: RawFd,
}

// SAFETY: the pointers in `argv` and `envp` point into `CString`s that outlive the scoped
// thread that may use them; nothing writes through them.
unsafe impl Sync for ChildArgs<'_> {}

/// Clones the child (`clone3`, falling back to `clone`), optionally straight into a v2 cgroup.
/// Returns its pid, pidfd and whether it started in `cgroup`.
fn clone_child(
    namespace_flags: u64,
    cgroup: Option<BorrowedFd>,
    child: &ChildArgs,
) -> io::Result<(i32, Option<OwnedFd>, bool)> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: namespace_flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(cg) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = cg.as_raw_fd() as u64;
    }

    // SAFETY: clone3 without CLONE_VM and without a stack behaves like fork: the child runs on a
    // copy of this stack. It only calls `child_main`, which makes raw system calls on the
    // prepared memory and never returns.
    let mut in_cgroup = cgroup.is_some();
    let mut pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid < 0 {
        let err = io::Error::last_os_error();
        // Old kernels (or a seccomp filter around us) lack clone3: legacy clone does the same,
        // without CLONE_INTO_CGROUP (the caller then adds the pid to the cgroup).
        if !matches!(err.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) {
            return Err(err);
        }
        in_cgroup = false;
        // SAFETY: as above; a NULL stack makes clone fork-like. With CLONE_PIDFD the pidfd is
        // stored through the parent_tid argument.
        pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                namespace_flags | libc::CLONE_PIDFD as u64 | libc::SIGCHLD as u64,
                0usize,
                &mut pidfd as *mut RawFd,
                0usize,
                0usize,
            )
        };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    if pid == 0 {
        // SAFETY: see child_main.
        unsafe {
            child_main(
                child.sources,
                child.helper,
                child.argv,
                child.envp,
                child.report_fd,
            )
        }
    }
    let pidfd = (pidfd >= 0).then(|| {
        // SAFETY: the kernel just gave us this fd.
        unsafe { OwnedFd::from_raw_fd(pidfd) }
    });
    Ok((pid as i32, pidfd, in_cgroup))
}

/// The child between clone and exec. Only async-signal-safe system calls on memory prepared
/// before the clone.
///
/// # Safety
/// Must only be called in the child of a fork-like clone.
unsafe fn child_main(
    sources: &[RawFd; 4],
    helper: &CString,
    argv: &[*const libc::c_char; 3],
    envp: &[*const libc::c_char; 1],
    report_fd: RawFd,
) -> ! {
    let fail = |step: u8| -> ! {
        let errno = *libc::__errno_location();
        let mut msg = [0u8; 6];
        msg[0] = RAW_ERROR;
        msg[1] = step;
        msg[2..6].copy_from_slice(&errno.to_ne_bytes());
        libc::write(report_fd, msg.as_ptr().cast(), msg.len());
        libc::_exit(1)
    };
    // A session of its own before anything else: the caller's controlling terminal (the
    // operator's, for `exec`) must not be the container's, or `/dev/tty` in the container
    // opens it. As a session leader without a terminal, it has none.
    if libc::setsid() < 0 {
        fail(5);
    }
    for (target, &src) in sources.iter().enumerate() {
        if libc::dup2(src, target as RawFd) < 0 {
            fail(0);
        }
    }
    // The new mount namespace starts as a copy of the host's, whose mounts are often shared:
    // nothing done from here on may propagate back.
    let root = c"/";
    if libc::mount(
        std::ptr::null(),
        root.as_ptr(),
        std::ptr::null(),
        libc::MS_REC | libc::MS_PRIVATE,
        std::ptr::null(),
    ) < 0
    {
        fail(1);
    }
    if libc::mount(
        helper.as_ptr(),
        helper.as_ptr(),
        std::ptr::null(),
        libc::MS_BIND,
        std::ptr::null(),
    ) < 0
    {
        fail(2);
    }
    if libc::mount(
        std::ptr::null(),
        helper.as_ptr(),
        std::ptr::null(),
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NODEV | libc::MS_NOSUID,
        std::ptr::null(),
    ) < 0
    {
        fail(3);
    }
    libc::execve(helper.as_ptr(), argv.as_ptr(), envp.as_ptr());
    fail(4)
}

impl Spawned {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// False when the process could not start in the requested cgroup (legacy clone on v2, or
    /// no room for the spawning thread on v1): add [`Spawned::pid`] to it before
    /// [`Spawned::start`].
    pub fn in_cgroup(&self) -> bool {
        self.in_cgroup
    }

    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|fd| fd.as_fd())
    }

    /// Sends the configuration: the helper prepares what needs no network, then waits for
    /// [`Spawned::start`]. A process that did not start in its cgroup is added to it first (the
    /// helper's work is charged there). Set-up failures are reported by `start`.
    pub fn configure(&self, config: &InitConfig) -> Result<(), ProcessError> {
        let body = serde_json::to_vec(config).map_err(|e| ProcessError::Protocol(e.to_string()))?;
        send_message(self.sync.as_fd(), &body, None).map_err(ProcessError::Send)?;
        self.configured.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Sends the configuration (unless [`Spawned::configure`] did) and [`GO`], and waits until
    /// the container's command is executing (the helper's end of the socket closes on exec).
    /// Returns the pty master of a `tty` container.
    pub fn start(&self, config: &InitConfig) -> Result<Option<OwnedFd>, ProcessError> {
        if !self.configured.load(Ordering::SeqCst) {
            self.configure(config)?;
        }
        // A helper that failed already has exited after its report: that report is the answer.
        let go = send_message(self.sync.as_fd(), GO, None);
        let mut pty = None;
        loop {
            let (msg, fd) = recv_message(self.sync.as_fd()).map_err(ProcessError::Receive)?;
            let Some(msg) = msg else {
                // Closed without a report: executing the command, unless `go` never arrived.
                return match go {
                    Ok(()) => Ok(pty),
                    Err(e) => Err(ProcessError::Send(e)),
                };
            };
            if msg.first() == Some(&RAW_ERROR) && msg.len() == 6 {
                let step = STEPS.get(usize::from(msg[1])).copied().unwrap_or("unknown");
                let errno = i32::from_ne_bytes([msg[2], msg[3], msg[4], msg[5]]);
                return Err(ProcessError::PreExec {
                    step,
                    source: io::Error::from_raw_os_error(errno),
                });
            }
            match serde_json::from_slice::<Report>(&msg) {
                Ok(Report::Pty) => {
                    pty = Some(fd.ok_or_else(|| {
                        ProcessError::Protocol("pty message without a file descriptor".into())
                    })?)
                }
                Ok(Report::Error { message, code }) => {
                    return Err(ProcessError::Start { message, code })
                }
                Err(e) => return Err(ProcessError::Protocol(e.to_string())),
            }
        }
    }

    /// Hands the pid and pidfd over (the socket is closed).
    pub fn into_parts(self) -> (i32, Option<OwnedFd>) {
        (self.pid, self.pidfd)
    }
}

/// The largest message either side sends (a configuration with a seccomp program is ~100 KB).
const MAX_MESSAGE: usize = 4 << 20;

fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is valid for two ints.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us these fds.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A close-on-exec duplicate of `fd` numbered `min` or above.
fn fd_at_least(fd: BorrowedFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Sends one seqpacket record, with `fd` attached when given.
fn send_record(sock: BorrowedFd, body: &[u8], fd: Option<RawFd>) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: body.as_ptr() as *mut libc::c_void,
        iov_len: body.len(),
    };
    // Room for one fd.
    let mut control = [0u8; 64];
    // SAFETY: a zeroed msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: CMSG macros on a buffer big enough for one int.
        unsafe {
            let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
            std::ptr::copy_nonoverlapping(
                &fd as *const RawFd as *const u8,
                libc::CMSG_DATA(cmsg),
                std::mem::size_of::<RawFd>(),
            );
        }
    }
    loop {
        // SAFETY: msg is fully initialised.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Sends one message: a 4-byte length record (carrying `fd`, when given), then the body in
/// records of at most 64 KiB (a record must fit the socket buffer).
pub fn send_message(sock: BorrowedFd, body: &[u8], fd: Option<RawFd>) -> io::Result<()> {
    const CHUNK: usize = 64 << 10;
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too long"))?;
    send_record(sock, &len.to_ne_bytes(), fd)?;
    for chunk in body.chunks(CHUNK) {
        send_record(sock, chunk, None)?;
    }
    Ok(())
}

/// Receives one record; `None` at end of stream. A record carrying an fd returns it.
fn recv_record(sock: BorrowedFd, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u8; 64];
    // SAFETY: a zeroed msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len();
    let n = loop {
        // SAFETY: msg is fully initialised.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    let mut fd = None;
    // SAFETY: walking the control messages the kernel wrote.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let mut raw: RawFd = -1;
                std::ptr::copy_nonoverlapping(
                    libc::CMSG_DATA(cmsg),
                    &mut raw as *mut RawFd as *mut u8,
                    std::mem::size_of::<RawFd>(),
                );
                if raw >= 0 {
                    fd = Some(OwnedFd::from_raw_fd(raw));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n, fd))
}

/// Receives one message sent by [`send_message`] (or the raw 6-byte pre-exec error record).
/// `None` at end of stream.
pub fn recv_message(sock: BorrowedFd) -> io::Result<(Option<Vec<u8>>, Option<OwnedFd>)> {
    let mut head = [0u8; 64 << 10];
    let (n, fd) = recv_record(sock, &mut head)?;
    if n == 0 {
        return Ok((None, fd));
    }
    if n != 4 {
        // A raw record: the pre-exec error.
        return Ok((Some(head[..n].to_vec()), fd));
    }
    let len = u32::from_ne_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message of {len} bytes"),
        ));
    }
    let mut body = Vec::with_capacity(len);
    let mut fd = fd;
    while body.len() < len {
        let (n, more) = recv_record(sock, &mut head)?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        body.extend_from_slice(&head[..n]);
        fd = fd.or(more);
    }
    Ok((Some(body), fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Spawned` whose helper end is returned, for playing the helper in a thread.
    fn fake() -> (Spawned, OwnedFd) {
        let (parent, child) = seqpacket_pair().expect("socketpair");
        let spawned = Spawned {
            pid: 0,
            pidfd: None,
            sync: parent,
            in_cgroup: true,
            configured: AtomicBool::new(false),
        };
        (spawned, child)
    }

    fn config() -> InitConfig {
        InitConfig {
            hostname: Some("box".into()),
            ..InitConfig::default()
        }
    }

    #[test]
    fn configure_then_start_sends_the_configuration_once_then_go() {
        let (spawned, child) = fake();
        let helper = std::thread::spawn(move || {
            let (first, _) = recv_message(child.as_fd()).expect("config");
            let cfg: InitConfig = serde_json::from_slice(&first.expect("a message")).expect("json");
            let (second, _) = recv_message(child.as_fd()).expect("go");
            (cfg.hostname, second)
        });
        spawned.configure(&config()).expect("configure");
        // The helper's end closes (as on exec): started, no pty.
        let started = spawned.start(&config()).expect("start");
        assert!(started.is_none());
        let (hostname, second) = helper.join().expect("helper");
        assert_eq!(hostname.as_deref(), Some("box"));
        assert_eq!(second.as_deref(), Some(GO));
    }

    #[test]
    fn start_alone_configures_first() {
        let (spawned, child) = fake();
        let helper = std::thread::spawn(move || {
            let first = recv_message(child.as_fd()).expect("config").0;
            let second = recv_message(child.as_fd()).expect("go").0;
            (first.is_some(), second)
        });
        spawned.start(&config()).expect("start");
        let (configured, second) = helper.join().expect("helper");
        assert!(configured);
        assert_eq!(second.as_deref(), Some(GO));
    }

    #[test]
    fn a_failure_reported_before_go_is_the_start_error() {
        let (spawned, child) = fake();
        let helper = std::thread::spawn(move || {
            let _ = recv_message(child.as_fd()).expect("config");
            let report = Report::Error {
                message: "cannot set up the root filesystem: no".into(),
                code: 1,
            };
            let body = serde_json::to_vec(&report).expect("json");
            send_message(child.as_fd(), &body, None).expect("report");
            // Waits for go (or the end) before exiting, as the helper does.
            let _ = recv_message(child.as_fd());
        });
        spawned.configure(&config()).expect("configure");
        match spawned.start(&config()) {
            Err(ProcessError::Start { message, code }) => {
                assert_eq!(message, "cannot set up the root filesystem: no");
                assert_eq!(code, 1);
            }
            other => panic!("expected the reported failure, got {other:?}"),
        }
        helper.join().expect("helper");
    }

    #[test]
    fn a_helper_gone_before_go_is_a_send_error() {
        let (spawned, child) = fake();
        drop(child);
        assert!(matches!(
            spawned.start(&config()),
            Err(ProcessError::Send(_))
        ));
    }
}
