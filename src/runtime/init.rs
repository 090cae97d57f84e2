//! The helper: the rcompose binary run as `rcompose-init __container-init` in a container's new
//! namespaces (see [`super::process`]). It reads its [`InitConfig`] from fd 3, finishes the
//! container (namespaces to join, hostname, sysctls, rootfs, pty, limits, user, capabilities,
//! seccomp, working directory), closes every other fd and executes the container's command.
//! With `init: true` (or when it joined another container's pid namespace) it forks first and
//! stays as a minimal init that forwards signals and reaps zombies.
//!
//! The work is split around the parent's [`GO`]: what needs no network (joining namespaces,
//! hostname, loopback and, unless a `net.*` sysctl must see the plugged-in interfaces, the
//! sysctls and the whole rootfs) is done while the parent plugs the network in; the rest after.
//!
//! It runs single-threaded, so it may allocate freely. Failures go back over fd 3 as a
//! [`Report::Error`], then the helper exits (a failure before `GO` waits for it first, so that
//! the parent's network set-up still finds the process and then reads the report).

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use super::caps::CapSet;
use super::process::{send_message, Report, GO, SYNC_FD};
use super::rootfs::{self, MountOp};
use super::seccomp::BpfProgram;
use super::syscall::{LinuxSyscall, NodeKind};

/// Everything the helper needs, sent by the parent as JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InitConfig {
    /// Namespaces of another process to join first (`pid: service:db`, `exec`): the
    /// `/proc/<pid>/ns/<kind>` files and their `CLONE_NEW*` type. A pid namespace applies to
    /// children: the helper forks.
    pub join: Vec<(PathBuf, i32)>,
    /// Enter a new cgroup namespace (rooted at the container's cgroup, which the helper is in).
    pub new_cgroup_ns: bool,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    /// `net.ipv4.ip_forward` style keys; written before the rootfs, in the new namespaces.
    pub sysctls: Vec<(String, String)>,
    /// Bring `lo` up (a new network namespace).
    pub loopback_up: bool,
    /// The rootfs to build (absent when joining a running container's mount namespace).
    pub rootfs: Option<RootfsSetup>,
    /// Stay as PID 1 (`init: true`): fork the command, forward signals, reap zombies.
    pub init: bool,
    pub process: ProcessConfig,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootfsSetup {
    /// Where the overlay is mounted before `pivot_root`.
    pub root: PathBuf,
    pub ops: Vec<MountOp>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProcessConfig {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    /// Create the working directory when missing (docker does for a container's main process).
    pub create_cwd: bool,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// (resource, soft, hard).
    pub rlimits: Vec<(i32, u64, u64)>,
    pub oom_score_adj: Option<i32>,
    /// The capability set (bounding = permitted = effective).
    pub capabilities: u64,
    pub no_new_privs: bool,
    /// A compiled seccomp program, or none (unconfined).
    pub seccomp: Option<BpfProgram>,
    /// Allocate a pty of this size (rows, columns) for stdio.
    pub tty: Option<(u16, u16)>,
}

/// The umask a container's processes start with, as runc gives them when the spec names none.
const CONTAINER_UMASK: libc::mode_t = 0o022;

/// Exit codes docker gives a command that cannot be executed.
const NOT_FOUND: i32 = 127;
const NOT_EXECUTABLE: i32 = 126;

struct Failure {
    message: String,
    code: i32,
}

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 1,
        }
    }
}

fn os(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> Failure {
    move |e| Failure::new(format!("{what}: {e}"))
}

/// The helper's `main`. Never returns: it execs the command, runs as init, or exits.
pub fn main() -> ! {
    // Nothing of the parent's but stdio and the control socket crosses into the container.
    // SAFETY: closing fds this process does not use.
    unsafe { libc::close_range(SYNC_FD as u32 + 1, u32::MAX, 0) };
    // Whatever the caller's umask, what the helper creates (device nodes, mount points, the
    // working directory) gets exactly the mode asked for: one call here rather than a chmod per
    // node. The command gets docker's 0022 just before it runs (see `exec`).
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0) };
    // The parent may block or ignore signals (rcompose run forwards them from a thread): the
    // container starts with none blocked and default dispositions, as under docker.
    let empty = empty_sigset();
    // SAFETY: a valid sigset; resetting dispositions of catchable signals.
    unsafe {
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
    // No other process may ptrace us or open our /proc entries while we run the host binary.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // SAFETY: fd 3 is the control socket the parent set up.
    let sync = unsafe { OwnedFd::from_raw_fd(SYNC_FD) };
    let config = match read_config(sync.as_fd()) {
        Ok(c) => c,
        Err(f) => fail_before_go(sync.as_fd(), f),
    };
    let early_rootfs = !needs_network(&config.sysctls);
    if let Err(f) = prepare(&config, early_rootfs) {
        fail_before_go(sync.as_fd(), f);
    }
    match super::process::recv_message(sync.as_fd()) {
        Ok((Some(msg), _)) if msg == GO => {}
        // The parent gave up on this container (its network failed): nothing to report.
        // SAFETY: exiting without running destructors or atexit handlers of the parent's image.
        _ => unsafe { libc::_exit(1) },
    }
    match run(&config, early_rootfs, sync.as_fd()) {
        Ok(never) => match never {},
        Err(f) => report_and_exit(sync.as_fd(), f),
    }
}

/// Whether some sysctl is a network one, which may name the interfaces the parent plugs in
/// (`net.ipv4.conf.eth0.*`): then the sysctls, and the rootfs that hides the host's `/proc`
/// after them, wait for [`GO`].
fn needs_network(sysctls: &[(String, String)]) -> bool {
    sysctls.iter().any(|(key, _)| key.starts_with("net."))
}

/// Reports `f`, then lives on until [`GO`] (or the end) comes: the parent sets the network up
/// in between, and must still find this process and its namespaces.
fn fail_before_go(sync: BorrowedFd, f: Failure) -> ! {
    report(sync, &f);
    let _ = super::process::recv_message(sync);
    // SAFETY: exiting without running destructors or atexit handlers of the parent's image.
    unsafe { libc::_exit(f.code) }
}

fn report(sync: BorrowedFd, f: &Failure) {
    let report = Report::Error {
        message: f.message.clone(),
        code: f.code,
    };
    if let Ok(body) = serde_json::to_vec(&report) {
        let _ = send_message(sync, &body, None);
    }
}

fn report_and_exit(sync: BorrowedFd, f: Failure) -> ! {
    report(sync, &f);
    // SAFETY: exiting without running destructors or atexit handlers of the parent's image.
    unsafe { libc::_exit(f.code) }
}

fn read_config(sync: BorrowedFd) -> Result<InitConfig, Failure> {
    let (msg, _) =
        super::process::recv_message(sync).map_err(os("cannot read the configuration"))?;
    let msg = msg.ok_or_else(|| Failure::new("the parent closed the control socket"))?;
    serde_json::from_slice(&msg).map_err(|e| Failure::new(format!("invalid configuration: {e}")))
}

enum Never {}

/// What is done before [`GO`]: everything that does not depend on the container's network
/// interfaces; with `early_rootfs`, the sysctls and the rootfs too.
fn prepare(config: &InitConfig, early_rootfs: bool) -> Result<(), Failure> {
    join_namespaces(&config.join)?;
    if config.new_cgroup_ns {
        // SAFETY: unshare with a flag.
        if unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } != 0 {
            return Err(os("cannot create the cgroup namespace")(
                io::Error::last_os_error(),
            ));
        }
    }
    if let Some(name) = &config.hostname {
        nix::unistd::sethostname(name)
            .map_err(|e| Failure::new(format!("cannot set the hostname {name:?}: {e}")))?;
    }
    if let Some(name) = config.domainname.as_ref().filter(|d| !d.is_empty()) {
        // SAFETY: a valid pointer and length.
        let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
        if rc != 0 {
            return Err(os(format!("cannot set the domain name {name:?}"))(
                io::Error::last_os_error(),
            ));
        }
    }
    if config.loopback_up {
        loopback_up().map_err(os("cannot bring up the loopback interface"))?;
    }
    if early_rootfs {
        sysctls_and_rootfs(config)?;
    }
    Ok(())
}

fn sysctls_and_rootfs(config: &InitConfig) -> Result<(), Failure> {
    // Namespaced sysctls reflect the writer's namespaces, so the host's /proc works here.
    for (key, value) in &config.sysctls {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value).map_err(os(format!("cannot set sysctl {key}={value}")))?;
    }
    if let Some(setup) = &config.rootfs {
        rootfs::apply(&setup.root, &setup.ops, &LinuxSyscall)
            .map_err(|e| Failure::new(format!("cannot set up the root filesystem: {e}")))?;
    }
    Ok(())
}

/// What is done after [`GO`], up to the command.
fn run(config: &InitConfig, early_rootfs: bool, sync: BorrowedFd) -> Result<Never, Failure> {
    if !early_rootfs {
        sysctls_and_rootfs(config)?;
    }
    let p = &config.process;
    apply_limits(p)?;
    let joins_pid = config.join.iter().any(|(_, t)| *t == libc::CLONE_NEWPID);
    if config.init || joins_pid {
        let mut all = empty_sigset();
        // SAFETY: a valid sigset.
        unsafe {
            libc::sigfillset(&mut all);
            libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        }
        // SAFETY: single-threaded: fork is safe and the child may go on as usual.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(os("cannot fork the command")(io::Error::last_os_error()));
        }
        if pid > 0 {
            // SAFETY: our copy of the control socket must close so the parent sees the exec.
            unsafe { libc::close(SYNC_FD) };
            reap(pid, config.init)
        }
        let empty = empty_sigset();
        // SAFETY: a valid sigset.
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) };
    }
    // The command leads a session of its own (with a pty, the pty is its controlling
    // terminal). The helper already does, from `process::spawn`; a forked command does not.
    // SAFETY: setsid has no arguments; a session leader gets EPERM, which is fine.
    unsafe { libc::setsid() };
    if let Some((rows, cols)) = p.tty {
        pty_stdio(sync, rows, cols)?;
    }
    let cwd = open_cwd(&p.cwd, p.create_cwd)?;
    exec(p, cwd)
}

fn join_namespaces(join: &[(PathBuf, i32)]) -> Result<(), Failure> {
    // Open them all first: joining the mount namespace hides the others' paths.
    let mut files = Vec::new();
    for (path, kind) in join {
        let f = File::open(path).map_err(os(format!("cannot open {}", path.display())))?;
        files.push((f, *kind, path));
    }
    // The mount namespace last (it changes our root and cwd).
    files.sort_by_key(|(_, kind, _)| *kind == libc::CLONE_NEWNS);
    for (f, kind, path) in files {
        // SAFETY: setns on an open namespace file.
        if unsafe { libc::setns(f.as_raw_fd(), kind) } != 0 {
            return Err(os(format!("cannot join {}", path.display()))(
                io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

fn loopback_up() -> io::Result<()> {
    // SAFETY: socket with constant arguments.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: ifreq is plain data; a zeroed one is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS / SIOCSIFFLAGS read and write the ifreq we own.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn apply_limits(p: &ProcessConfig) -> Result<(), Failure> {
    if let Some(adj) = p.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(os(format!("cannot set oom_score_adj to {adj}")))?;
    }
    for &(resource, soft, hard) in &p.rlimits {
        let lim = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: a valid rlimit struct.
        if unsafe { libc::setrlimit(resource as _, &lim) } != 0 {
            return Err(
                os(format!("cannot set rlimit {resource} to {soft}:{hard}"))(
                    io::Error::last_os_error(),
                ),
            );
        }
    }
    Ok(())
}

fn empty_sigset() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        set
    }
}

/// The init loop: forward every signal to the command, reap children (all of them as PID 1),
/// and exit as the command did (128 + signal when it was killed, as docker reports it).
fn reap(child: libc::pid_t, all: bool) -> ! {
    let mut set = empty_sigset();
    // SAFETY: a valid sigset.
    unsafe { libc::sigfillset(&mut set) };
    loop {
        // SAFETY: a zeroed siginfo is valid for the kernel to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers.
        let sig = unsafe { libc::sigwaitinfo(&set, &mut info) };
        if sig < 0 {
            continue;
        }
        if sig != libc::SIGCHLD {
            // SAFETY: kill with plain integers; a child that is gone is fine.
            unsafe { libc::kill(child, sig) };
            continue;
        }
        loop {
            let mut status = 0;
            let target = if all { -1 } else { child };
            // SAFETY: a valid status pointer.
            let pid = unsafe { libc::waitpid(target, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                let code = if libc::WIFSIGNALED(status) {
                    128 + libc::WTERMSIG(status)
                } else {
                    libc::WEXITSTATUS(status)
                };
                // SAFETY: exiting; as PID 1 the kernel then kills what is left.
                unsafe { libc::_exit(code) }
            }
        }
    }
}

/// A pty from the container's own devpts: the master goes to the parent, the slave becomes
/// stdio and the controlling terminal.
fn pty_stdio(sync: BorrowedFd, rows: u16, cols: u16) -> Result<(), Failure> {
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| Failure::new(format!("cannot open /dev/ptmx: {e}")))?;
    nix::pty::grantpt(&master).map_err(|e| Failure::new(format!("grantpt: {e}")))?;
    nix::pty::unlockpt(&master).map_err(|e| Failure::new(format!("unlockpt: {e}")))?;
    let name = nix::pty::ptsname_r(&master).map_err(|e| Failure::new(format!("ptsname: {e}")))?;
    let slave = nix::fcntl::open(
        Path::new(&name),
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| Failure::new(format!("cannot open {name}: {e}")))?;
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: ioctls on fds we own with valid arguments.
    unsafe {
        libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &size);
        if libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) < 0 {
            return Err(os("cannot set the controlling terminal")(
                io::Error::last_os_error(),
            ));
        }
    }
    let body = serde_json::to_vec(&Report::Pty).map_err(|e| Failure::new(e.to_string()))?;
    send_message(sync, &body, Some(master.as_raw_fd()))
        .map_err(os("cannot send the pty to the parent"))?;
    for target in 0..3 {
        // SAFETY: dup2 onto stdio, which this process owns.
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } < 0 {
            return Err(os("cannot dup the pty")(io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Opens the working directory inside the container without following magic links (a
/// `working_dir` of `/proc/self/fd/N` must not lead out of the rootfs).
fn open_cwd(cwd: &str, create: bool) -> Result<OwnedFd, Failure> {
    let cwd = if cwd.is_empty() { "/" } else { cwd };
    if create {
        rootfs::ensure_in_root(Path::new("/"), cwd, NodeKind::Dir)
            .map_err(|e| Failure::new(format!("cannot create the working directory {cwd}: {e}")))?;
    }
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(nix::fcntl::AT_FDCWD, Path::new(cwd), how).map_err(|e| {
        Failure::new(format!(
            "the working directory {cwd} is not a directory inside the container: {e}"
        ))
    })
}

fn cstring(s: &str, what: &str) -> Result<CString, Failure> {
    CString::new(s).map_err(|_| Failure::new(format!("{what} contains a NUL byte: {s:?}")))
}

/// The executable for `name`: as given when it has a slash, else searched in the container's
/// `PATH` (docker looks it up the same way, in the container).
fn find_executable(name: &str, env: &[String]) -> Result<PathBuf, Failure> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(super::spec::DEFAULT_PATH);
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(name);
        if let Ok(c) = CString::new(candidate.as_os_str().as_bytes()) {
            // SAFETY: a valid C string.
            if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 && !candidate.is_dir() {
                return Ok(candidate);
            }
        }
    }
    Err(Failure {
        message: format!("exec: {name:?}: executable file not found in $PATH"),
        code: NOT_FOUND,
    })
}

fn exec(p: &ProcessConfig, cwd: OwnedFd) -> Result<Never, Failure> {
    let Some(first) = p.args.first() else {
        return Err(Failure::new("no command specified"));
    };
    let argv: Vec<CString> = p
        .args
        .iter()
        .map(|a| cstring(a, "an argument"))
        .collect::<Result<_, _>>()?;
    let envp: Vec<CString> = p
        .env
        .iter()
        .map(|e| cstring(e, "an environment variable"))
        .collect::<Result<_, _>>()?;
    // What we hold bounds what we can give: root may lack some capabilities (CAP_SYS_RESOURCE
    // on some hosts), and a privileged container then gets all the others.
    let caps = CapSet::from_mask(p.capabilities & permitted_mask())
        .prepare()
        .map_err(|e| Failure::new(e.to_string()))?;

    if p.no_new_privs {
        super::seccomp::set_no_new_privs().map_err(|e| Failure::new(e.to_string()))?;
    }
    // Without no_new_privs the filter needs CAP_SYS_ADMIN: install it while we have it.
    if !p.no_new_privs {
        if let Some(prog) = &p.seccomp {
            super::seccomp::apply(prog).map_err(|e| Failure::new(e.to_string()))?;
        }
    }
    // The bounding set needs CAP_SETPCAP, which a non-root user loses at setuid.
    caps.drop_bounding()
        .map_err(|e| Failure::new(e.to_string()))?;
    switch_user(p)?;
    caps.set_sets().map_err(|e| Failure::new(e.to_string()))?;
    // SAFETY: fchdir on an fd we own.
    if unsafe { libc::fchdir(cwd.as_raw_fd()) } != 0 {
        return Err(os(format!("cannot enter the working directory {}", p.cwd))(
            io::Error::last_os_error(),
        ));
    }
    drop(cwd);
    let program = find_executable(first, &p.env)?;
    let program_c = cstring(&program.to_string_lossy(), "the command")?;
    if p.no_new_privs {
        if let Some(prog) = &p.seccomp {
            super::seccomp::apply(prog).map_err(|e| Failure::new(e.to_string()))?;
        }
    }
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // Every fd but stdio and the control socket (close-on-exec) goes now. The command starts
    // with docker's (runc's) umask, not the helper's 0 nor the caller's.
    // SAFETY: plain integer arguments.
    unsafe {
        libc::umask(CONTAINER_UMASK);
        libc::close_range(SYNC_FD as u32 + 1, u32::MAX, 0);
        libc::fcntl(SYNC_FD, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::execve(program_c.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr());
    }
    let err = io::Error::last_os_error();
    let code = match err.raw_os_error() {
        Some(libc::ENOENT) => NOT_FOUND,
        _ => NOT_EXECUTABLE,
    };
    Err(Failure {
        message: format!("exec {}: {err}", program.display()),
        code,
    })
}

/// This process's permitted capabilities (`CapPrm` in /proc/self/status); all when unknown.
fn permitted_mask() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapPrm:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

fn switch_user(p: &ProcessConfig) -> Result<(), Failure> {
    let groups: Vec<libc::gid_t> = p.additional_gids.clone();
    // SAFETY: plain integer arguments and a valid group list.
    unsafe {
        if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
            return Err(os("cannot set the supplementary groups")(
                io::Error::last_os_error(),
            ));
        }
        if libc::setresgid(p.gid, p.gid, p.gid) != 0 {
            return Err(os(format!("cannot switch to group {}", p.gid))(
                io::Error::last_os_error(),
            ));
        }
        // Keep the permitted set across setuid so the capabilities can then be set.
        libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0);
        if libc::setresuid(p.uid, p.uid, p.uid) != 0 {
            return Err(os(format!("cannot switch to user {}", p.uid))(
                io::Error::last_os_error(),
            ));
        }
        libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0);
    }
    Ok(())
}

/// Whether `args` ask for the helper (`rcompose __container-init`).
pub fn is_helper_invocation(arg1: Option<&OsStr>) -> bool {
    arg1 == Some(OsStr::new(super::process::HELPER_ARG))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sysctls(keys: &[&str]) -> Vec<(String, String)> {
        keys.iter()
            .map(|k| (k.to_string(), "1".to_string()))
            .collect()
    }

    #[test]
    fn only_net_sysctls_wait_for_the_network() {
        assert!(!needs_network(&[]));
        assert!(!needs_network(&sysctls(&[
            "kernel.shmmax",
            "fs.mqueue.msg_max"
        ])));
        assert!(needs_network(&sysctls(&[
            "kernel.shmmax",
            "net.ipv4.conf.eth0.route_localnet"
        ])));
        // A key that only contains "net." elsewhere is not a network one.
        assert!(!needs_network(&sysctls(&["kernel.net.x"])));
    }
}
