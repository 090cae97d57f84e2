//! The supervisor process: `rcompose __supervise PROJECT`, started (detached, in a session of
//! its own) by the commands that need it. It holds the project's lock, serves the control
//! socket, and exits once nothing runs and no client has been connected for [`LINGER`] (at
//! once after `down`).

use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, Notify};

use super::proto::{Reply, Request};
use super::state::{self, ProjectLock};
use super::Engine;

/// The hidden argument that runs the supervisor.
pub const SUPERVISE_ARG: &str = "__supervise";

/// What the supervisor prints on stdout once, for the process that started it.
pub const READY: &str = "ready";
pub const BUSY: &str = "busy";

/// How long an idle supervisor stays for the next command. Starting one costs more than a
/// whole `run` of a small container (exec, async runtime, state, DNS, firewall check), and
/// commands often come in bursts; an idle supervisor holds no container, mount or cgroup.
pub const LINGER: Duration = Duration::from_secs(2);

/// Overrides [`LINGER`] (milliseconds; 0: exit as soon as idle), read by the supervisor from
/// the environment of the command that started it.
pub const LINGER_ENV: &str = "RCOMPOSE_SUPERVISOR_LINGER_MS";

/// The linger time `value` (of [`LINGER_ENV`]) asks for; [`LINGER`] when unset or invalid.
fn linger_from(value: Option<&str>) -> Duration {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(LINGER, Duration::from_millis)
}

/// The supervisor's main; returns the process exit code.
pub fn main(project: &str) -> i32 {
    // Every container's DNS connections and the control socket share this process's
    // descriptors: take all the hard limit allows (containers keep the caller's limit).
    if let Err(e) = crate::runtime::nofile::raise() {
        eprintln!("supervisor {project}: cannot raise the open files limit: {e}");
    }
    let lock = match ProjectLock::try_acquire(project) {
        Ok(Some(l)) => l,
        Ok(None) => {
            println!("{BUSY}");
            return 0;
        }
        Err(e) => {
            println!("error: {e}");
            return 1;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            println!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(serve(project, lock)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("supervisor {project}: {e}");
            1
        }
    }
}

async fn serve(project: &str, lock: ProjectLock) -> Result<(), String> {
    let engine = match Engine::open(project, lock) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            println!("error: {e}");
            return Err(e.to_string());
        }
    };
    let path = state::socket_path(project);
    let _ = std::fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            let msg = format!("cannot listen on {}: {e}", path.display());
            println!("error: {msg}");
            return Err(msg);
        }
    };
    // Which socket file is ours: `down` unlinks it only if it still is (see `connection`).
    let socket_id = {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(&path).ok().map(|m| (m.dev(), m.ino()))
    };
    let project_dir = state::project_dir(project);
    // Its pid, for tools and tests (the lock says whether it still runs).
    let _ = std::fs::write(
        project_dir.join("supervisor.pid"),
        std::process::id().to_string(),
    );
    engine.restart_adopted().await;
    // Tell the starter we are ready, then detach stdout/stderr into the supervisor's log.
    println!("{READY}");
    let _ = std::io::stdout().flush();
    redirect_output(project);

    let clients = Arc::new(AtomicUsize::new(0));
    let wake = Arc::new(Notify::new());
    let shutdown = Arc::new(Notify::new());
    let mut events = engine.shared().events.subscribe();
    let linger = linger_from(std::env::var(LINGER_ENV).ok().as_deref());
    let mut served_one = false;
    let mut waited = false;
    // When the supervisor last became idle (no client, nothing running): it exits `linger`
    // after that unless a client comes.
    let mut idle_since: Option<tokio::time::Instant> = None;
    loop {
        let linger_left = idle_since.map(|t| linger.saturating_sub(t.elapsed()));
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of descriptors (or memory): retrying at once would spin; a
                        // client that ends frees one.
                        tracing::warn!("control socket: cannot accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        continue;
                    }
                };
                served_one = true;
                idle_since = None;
                clients.fetch_add(1, Ordering::SeqCst);
                let (engine, clients, wake, shutdown) =
                    (engine.clone(), clients.clone(), wake.clone(), shutdown.clone());
                tokio::spawn(async move {
                    let down = connection(stream, &engine, socket_id).await;
                    clients.fetch_sub(1, Ordering::SeqCst);
                    if down {
                        shutdown.notify_one();
                    }
                    wake.notify_one();
                });
            }
            () = wake.notified() => {}
            () = shutdown.notified() => {
                eprintln!("supervisor {project}: exits after down");
                break;
            }
            ev = events.recv() => {
                if matches!(ev, Err(broadcast::error::RecvError::Closed)) {
                    eprintln!("supervisor {project}: exits: its event stream closed");
                    break;
                }
            }
            // Nobody connected after the starter went away.
            () = tokio::time::sleep(Duration::from_secs(10)), if !served_one => waited = true,
            () = tokio::time::sleep(linger_left.unwrap_or_default()), if linger_left.is_some() => {
                // Nothing runs, nothing will: the state on disk says the rest.
                eprintln!("supervisor {project}: exits: idle for {linger:?}");
                break;
            }
        }
        let idle = clients.load(Ordering::SeqCst) == 0 && !engine.shared().is_active();
        if !idle || !(served_one || waited) {
            idle_since = None;
        } else if linger.is_zero() || !project_dir.is_dir() {
            // No lingering asked, or the state directory was removed under us (a test's
            // temporary directory): nothing to wait for.
            eprintln!(
                "supervisor {project}: exits: idle, and {}",
                if linger.is_zero() {
                    "no linger asked"
                } else {
                    "its state directory is gone"
                }
            );
            break;
        } else if idle_since.is_none() {
            idle_since = Some(tokio::time::Instant::now());
        }
    }
    drop(listener);
    // After `down` the directory is gone already (and may be a new supervisor's by now); a
    // directory removed by someone else is not recreated either.
    if !engine.shared().is_gone() && project_dir.is_dir() {
        let _ = std::fs::remove_file(&path);
        let _ = engine.shared().save();
    }
    drop(engine);
    Ok(())
}

/// Serves one connection: one request, its replies, `Done`. Returns whether it was `down`.
/// `socket_id`: the (device, inode) of this supervisor's socket file.
async fn connection(
    stream: UnixStream,
    engine: &Arc<Engine>,
    socket_id: Option<(u64, u64)>,
) -> bool {
    let Ok(Some((line, fds))) = super::fdpass::read_request(&stream).await else {
        return false;
    };
    let (read, mut write) = stream.into_split();
    let lines = BufReader::new(read).lines();
    let req: Request = match serde_json::from_slice(&line) {
        Ok(r) => r,
        Err(e) => {
            let done = Reply::Done {
                error: Some(format!("invalid request: {e}")),
            };
            let _ = write_reply(&mut write, &done).await;
            return false;
        }
    };
    let is_down = matches!(req, Request::Down { .. });
    let attach = match req {
        Request::Attach { logs } => Some(logs),
        _ => None,
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Reply>();
    let writer = tokio::spawn(async move {
        while let Some(r) = rx.recv().await {
            if write_reply(&mut write, &r).await.is_err() {
                return None;
            }
        }
        Some(write)
    });
    let result = if let Some(logs) = attach {
        // Events (and output) until the client hangs up.
        let stream = tokio::spawn(forward(engine.clone(), logs, tx.clone()));
        let mut rest = lines;
        let _ = rest.next_line().await;
        stream.abort();
        Ok(())
    } else if matches!(req, Request::Run { .. }) {
        engine.serve_run(req, fds, &tx).await
    } else {
        engine.handle(req, &tx).await
    };
    if is_down && result.is_ok() {
        // This supervisor exits now: no client may reach it once `down` has answered (the
        // next command would be cut off mid-request; with no socket it starts a new
        // supervisor, which waits for this one's lock). The directory may be gone already,
        // or hold a new supervisor's socket: only our own file is removed.
        let path = state::socket_path(&engine.shared().project);
        let ours = {
            use std::os::unix::fs::MetadataExt as _;
            std::fs::metadata(&path).ok().map(|m| (m.dev(), m.ino()))
        };
        if ours.is_some() && ours == socket_id {
            let _ = std::fs::remove_file(&path);
        }
    }
    // The protocol boundary: the client gets the engine's message.
    let _ = tx.send(Reply::Done {
        error: result.err().map(|e| e.to_string()),
    });
    drop(tx);
    let _ = writer.await;
    is_down
}

/// Sends container events, and with `logs` their output, as they happen.
async fn forward(engine: Arc<Engine>, logs: bool, tx: mpsc::UnboundedSender<Reply>) {
    let mut events = engine.shared().events.subscribe();
    let mut output = engine.shared().logs.subscribe();
    if tx.send(Reply::Attached).is_err() {
        return;
    }
    loop {
        let reply = tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => Reply::Event(ev),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            chunk = output.recv(), if logs => match chunk {
                Ok(c) => Reply::Log {
                    container: c.container,
                    service: c.service,
                    stderr: c.stream == crate::logs::Stream::Stderr,
                    data: String::from_utf8_lossy(&c.bytes).into_owned(),
                },
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if tx.send(reply).is_err() {
            return;
        }
    }
}

async fn write_reply(w: &mut tokio::net::unix::OwnedWriteHalf, r: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
    line.push(b'\n');
    match r {
        Reply::Pty { fd: Some(fd) } => {
            use std::os::fd::AsFd;
            super::fdpass::send_async(w.as_ref(), &line, fd.as_fd()).await
        }
        _ => w.write_all(&line).await,
    }
}

/// stdout and stderr into `supervisor.log` in the project's directory (the starter only reads
/// the first line).
fn redirect_output(project: &str) {
    let path = state::project_dir(project).join("supervisor.log");
    if let Ok(f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        // SAFETY: dup2 onto stdout/stderr with an fd we own.
        unsafe {
            libc::dup2(f.as_raw_fd(), 1);
            libc::dup2(f.as_raw_fd(), 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linger_defaults_when_unset_or_invalid() {
        assert_eq!(linger_from(None), LINGER);
        assert_eq!(linger_from(Some("soon")), LINGER);
        assert_eq!(linger_from(Some("-5")), LINGER);
    }

    #[test]
    fn linger_is_read_in_milliseconds() {
        assert_eq!(linger_from(Some("0")), Duration::ZERO);
        assert_eq!(linger_from(Some(" 250 ")), Duration::from_millis(250));
    }
}
