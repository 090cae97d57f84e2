//! Stdio of `exec -T` and `run -T`: pipes between the client's streams and the container's
//! process, copied by threads here, as docker relays them. The container only ever gets the
//! far ends of pipes rcompose made, never a descriptor of the client's own: a client's stream
//! may be the operator's terminal, and a process holding a terminal's descriptor can type into
//! it (`TIOCSTI`), change its modes or read its input after rcompose has exited.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::thread::JoinHandle;

use crate::runtime::process::Stdio;

/// The container's ends of the pipes, to pass on (over the supervisor's socket, or to the
/// runtime) and then drop.
pub struct ContainerEnds {
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

impl ContainerEnds {
    pub fn stdio(&self) -> Stdio<'_> {
        Stdio {
            stdin: self.stdin.as_ref().map(|f| f.as_fd()),
            stdout: Some(self.stdout.as_fd()),
            stderr: Some(self.stderr.as_fd()),
        }
    }

    /// In the order `run` sends them: stdin (when relayed), stdout, stderr.
    pub fn into_vec(self) -> Vec<OwnedFd> {
        let mut v: Vec<OwnedFd> = self.stdin.into_iter().collect();
        v.push(self.stdout);
        v.push(self.stderr);
        v
    }
}

/// The copying threads of one container process's stdio.
pub struct Relay {
    outputs: Vec<JoinHandle<()>>,
    /// Closed once the process has exited: the output threads then take what is left in their
    /// pipes without waiting for the writers to close (a process the command left behind in
    /// the container may hold them open).
    stop: OwnedFd,
}

/// Makes the pipes, and starts copying: our stdin into the container's (when `stdin`), the
/// container's stdout and stderr to ours.
pub fn start(stdin: bool) -> io::Result<(Relay, ContainerEnds)> {
    let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (stop_r, stop_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let in_r = if stdin {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        // Never joined: it may be blocked reading a terminal when the process exits, and our
        // exit ends it then.
        spawn_unsignalled(move || {
            let mut to = std::fs::File::from(w);
            let mut buf = [0u8; 8192];
            let mut input = io::stdin().lock();
            while let Ok(n) = input.read(&mut buf) {
                // EOF closes the container's stdin; EPIPE: it stopped reading.
                if n == 0 || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        Some(r)
    } else {
        None
    };
    let stop_r = std::sync::Arc::new(stop_r);
    let s1 = stop_r.clone();
    let s2 = stop_r;
    let outputs = vec![
        spawn_unsignalled(move || copy_out(out_r, &s1, || io::stdout().lock())),
        spawn_unsignalled(move || copy_out(err_r, &s2, || io::stderr().lock())),
    ];
    Ok((
        Relay {
            outputs,
            stop: stop_w,
        },
        ContainerEnds {
            stdin: in_r,
            stdout: out_w,
            stderr: err_w,
        },
    ))
}

impl Relay {
    /// The process has exited: copies what it wrote and ends the threads.
    pub fn finish(self) {
        drop(self.stop);
        for t in self.outputs {
            let _ = t.join();
        }
    }
}

/// A copying thread takes no signal: those sent to rcompose are for the thread that proxies
/// them to the container (or for their default action), whenever the relay was started. The
/// thread is created with every signal blocked, so none can reach it even at its start.
fn spawn_unsignalled<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    // SAFETY: sigsets filled by the libc calls, applied to this thread and restored after.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let handle = std::thread::spawn(f);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        handle
    }
}

/// Copies `pipe` to the stream `sink` gives until the pipe's writers are gone, or, once `stop`
/// is readable (closed), until the pipe has nothing more right now.
fn copy_out<W: Write>(pipe: OwnedFd, stop: &OwnedFd, sink: impl Fn() -> W) {
    let mut from = std::fs::File::from(pipe);
    let mut buf = [0u8; 16384];
    let mut draining = false;
    let mut sink_gone = false;
    loop {
        if !draining {
            match readable(from.as_fd(), stop.as_fd()) {
                Ok((_, true)) => {
                    draining = true;
                    if nix::fcntl::fcntl(
                        &from,
                        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                    )
                    .is_err()
                    {
                        return;
                    }
                }
                Ok((true, false)) => {}
                Ok((false, false)) => continue,
                Err(_) => return,
            }
        }
        match from.read(&mut buf) {
            Ok(0) => return,
            // Read and dropped: a container writing to our closed stdout must not block.
            Ok(_) if sink_gone => {}
            Ok(n) => {
                let mut out = sink();
                sink_gone = out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // WouldBlock while draining: everything written before the exit is copied.
            Err(_) => return,
        }
    }
}

/// Waits until `data` or `stop` is readable (or hung up); returns which.
fn readable(data: BorrowedFd, stop: BorrowedFd) -> io::Result<(bool, bool)> {
    let mut fds = [
        libc::pollfd {
            fd: data.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: two valid pollfd entries.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok((false, false))
        } else {
            Err(e)
        };
    }
    Ok((fds[0].revents != 0, fds[1].revents != 0))
}
