//! Test support: throw-away network namespaces and tiny echo servers living in them.
//!
//! Every namespace is held by one file descriptor and no mount: when the `NetNs` drops (even on
//! a panic) and its threads have ended, the kernel destroys it with every link, route and
//! nftables table inside. A test that builds its whole topology, "host" included, inside such
//! namespaces cannot leave anything on the real host nor see what parallel tests do.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

/// Whether tests needing root can run; panics under CI=true rather than skipping.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test} needs root (CI=true does not allow skipping)");
    }
    eprintln!("skipping {test}: needs root");
    false
}

pub struct NetNs {
    fd: OwnedFd,
}

fn setns(fd: &OwnedFd) {
    // SAFETY: plain syscall on a descriptor we keep open.
    let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", io::Error::last_os_error());
}

impl NetNs {
    /// A new, empty network namespace (only `lo`, down).
    pub fn new() -> NetNs {
        let fd = std::thread::spawn(|| {
            // SAFETY: moves only this short-lived thread.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "unshare: {}", io::Error::last_os_error());
            File::open("/proc/thread-self/ns/net").map(OwnedFd::from)
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
        .expect("open /proc/thread-self/ns/net");
        NetNs { fd }
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Runs `f` on a thread inside this namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(&self.fd);
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Runs an async test body on a single-threaded runtime inside this namespace (so netlink
    /// sockets and spawned `nft`/`ip` processes belong to it).
    pub fn block_on<T: Send, F: std::future::Future<Output = T>>(
        &self,
        f: impl FnOnce() -> F + Send,
    ) -> T {
        self.run(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(f())
        })
    }

    /// Runs a command in this namespace and returns its stdout.
    pub fn cmd(&self, args: &[&str]) -> String {
        self.run(|| {
            let out = Command::new(args[0])
                .args(&args[1..])
                .output()
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    }

    /// TCP: connects to `addr` from this namespace and returns what the server said.
    pub fn tcp_query(&self, addr: SocketAddr) -> io::Result<String> {
        self.run(|| {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(400))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut text = String::new();
            s.read_to_string(&mut text)?;
            Ok(text)
        })
    }

    /// UDP: sends a datagram to `addr` from this namespace and returns the answer.
    pub fn udp_query(&self, addr: SocketAddr) -> io::Result<String> {
        self.run(|| {
            let s = UdpSocket::bind("0.0.0.0:0")?;
            s.set_read_timeout(Some(Duration::from_millis(600)))?;
            s.send_to(b"?", addr)?;
            let mut buf = [0u8; 256];
            let (n, _) = s.recv_from(&mut buf)?;
            Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
        })
    }
}

/// An echo server in a namespace: answers every TCP connection (or UDP datagram) with
/// "<peer address> <local address>", so a client learns the source the server saw (NAT) and
/// which port it reached. Stops and joins on drop.
pub struct Echo {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    pub fn tcp(ns: &NetNs, addr: SocketAddr) -> Echo {
        Echo::start(ns, addr, true)
    }

    pub fn udp(ns: &NetNs, addr: SocketAddr) -> Echo {
        Echo::start(ns, addr, false)
    }

    fn start(ns: &NetNs, addr: SocketAddr, tcp: bool) -> Echo {
        let fd = ns.fd.try_clone().expect("dup netns fd");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            setns(&fd);
            drop(fd);
            if tcp {
                let l = TcpListener::bind(addr).expect("bind echo");
                l.set_nonblocking(true).expect("nonblocking");
                let _ = ready_tx.send(());
                while !flag.load(Ordering::Relaxed) {
                    match l.accept() {
                        Ok((mut s, peer)) => {
                            let local = s.local_addr().map(|a| a.to_string()).unwrap_or_default();
                            let _ = s.write_all(format!("{peer} {local}").as_bytes());
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            } else {
                let s = UdpSocket::bind(addr).expect("bind echo");
                s.set_read_timeout(Some(Duration::from_millis(20)))
                    .expect("timeout");
                let _ = ready_tx.send(());
                let local = s.local_addr().map(|a| a.to_string()).unwrap_or_default();
                let mut buf = [0u8; 64];
                while !flag.load(Ordering::Relaxed) {
                    if let Ok((_, peer)) = s.recv_from(&mut buf) {
                        let _ = s.send_to(format!("{peer} {local}").as_bytes(), peer);
                    }
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("echo server did not start");
        Echo {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The peer IP in an echo answer.
pub fn peer_ip(answer: &str) -> &str {
    answer
        .split_whitespace()
        .next()
        .and_then(|a| a.rsplit_once(':'))
        .map_or("", |(ip, _)| ip)
}
