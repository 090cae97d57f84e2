//! The CLI's side of the control socket: find the project's supervisor or start one, send a
//! request, read its replies.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::proto::{Reply, Request};
use super::server::{BUSY, READY, SUPERVISE_ARG};
use super::state;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot start the supervisor of project {project}: {message}")]
    Start { project: String, message: String },
    #[error("cannot talk to the supervisor of project {project}: {source}")]
    Io {
        project: String,
        source: std::io::Error,
    },
    #[error("the supervisor of project {project} went away")]
    Gone { project: String },
    #[error("{0}")]
    Failed(String),
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A connection to the project's running supervisor, if one runs.
pub fn connect(project: &str) -> Option<UnixStream> {
    UnixStream::connect(state::socket_path(project)).ok()
}

/// A connection to the project's supervisor, started when none runs.
pub fn connect_or_start(project: &str) -> Result<UnixStream> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = connect(project) {
            return Ok(s);
        }
        match start(project)? {
            Started::Ready => {
                if let Some(s) = connect(project) {
                    return Ok(s);
                }
            }
            // Another supervisor holds the project (starting or exiting): try again.
            Started::Busy => std::thread::sleep(Duration::from_millis(20)),
        }
        if Instant::now() > deadline {
            return Err(ClientError::Start {
                project: project.into(),
                message: "timed out waiting for the control socket".into(),
            });
        }
    }
}

enum Started {
    Ready,
    Busy,
}

fn start(project: &str) -> Result<Started> {
    let err = |message: String| ClientError::Start {
        project: project.into(),
        message,
    };
    let exe = std::fs::read_link("/proc/self/exe").map_err(|e| err(e.to_string()))?;
    let mut cmd = Command::new(exe);
    cmd.arg(SUPERVISE_ARG)
        .arg(project)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe: the supervisor leaves the terminal's session, so
    // Ctrl-C and a closing terminal do not reach it.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| err(e.to_string()))?;
    let Some(stdout) = child.stdout.take() else {
        return Err(err("no stdout".into()));
    };
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| err(e.to_string()))?;
    // The supervisor runs on; reap it in the background so it never lingers as a zombie
    // while this command runs.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    match line.trim() {
        READY => Ok(Started::Ready),
        BUSY => Ok(Started::Busy),
        other => Err(err(other
            .strip_prefix("error: ")
            .unwrap_or(other)
            .to_string())),
    }
}

/// Sends `req` and hands every reply but the final `Done` to `on_reply`; the request's error
/// becomes `ClientError::Failed`.
pub fn request(
    project: &str,
    req: &Request,
    start_if_needed: bool,
    mut on_reply: impl FnMut(Reply),
) -> Result<()> {
    // A supervisor that was just exiting may drop the connection unanswered: try again.
    for _ in 0..3 {
        let stream = if start_if_needed {
            connect_or_start(project)?
        } else {
            match connect(project) {
                Some(s) => s,
                None => {
                    return Err(ClientError::Gone {
                        project: project.into(),
                    })
                }
            }
        };
        match exchange(project, stream, req, &mut on_reply)? {
            Some(r) => return r,
            None => continue,
        }
    }
    Err(ClientError::Gone {
        project: project.into(),
    })
}

/// `None` when the connection closed before any reply.
fn exchange(
    project: &str,
    mut stream: UnixStream,
    req: &Request,
    on_reply: &mut impl FnMut(Reply),
) -> Result<Option<Result<()>>> {
    let io = |source| ClientError::Io {
        project: project.into(),
        source,
    };
    let mut line = serde_json::to_vec(req).map_err(|e| io(std::io::Error::other(e)))?;
    line.push(b'\n');
    if stream.write_all(&line).is_err() {
        return Ok(None);
    }
    let mut got_any = false;
    for line in BufReader::new(stream).lines() {
        let line = match line {
            Ok(l) => l,
            Err(_) if !got_any => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        got_any = true;
        let reply: Reply = serde_json::from_str(&line).map_err(|e| io(std::io::Error::other(e)))?;
        match reply {
            Reply::Done { error } => {
                return Ok(Some(match error {
                    None => Ok(()),
                    Some(e) => Err(ClientError::Failed(e)),
                }))
            }
            other => on_reply(other),
        }
    }
    if got_any {
        Err(ClientError::Gone {
            project: project.into(),
        })
    } else {
        Ok(None)
    }
}

/// Subscribes to events (and output); the stream yields replies until the supervisor exits.
pub fn attach(project: &str, logs: bool) -> Result<impl Iterator<Item = Reply> + Send + 'static> {
    // A supervisor that is exiting (after `down`) may still accept and then drop the
    // connection: subscribe again, to a new one.
    let mut tries = 3;
    loop {
        let stream = connect_or_start(project)?;
        match subscribe(project, stream, logs) {
            Err(ClientError::Gone { .. }) if tries > 1 => {
                tries -= 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// [`attach`] to the supervisor only if one runs (`None` otherwise): watching a project must
/// not start one.
pub fn attach_running(
    project: &str,
    logs: bool,
) -> Result<Option<impl Iterator<Item = Reply> + Send + 'static>> {
    let Some(stream) = connect(project) else {
        return Ok(None);
    };
    match subscribe(project, stream, logs) {
        Ok(replies) => Ok(Some(replies)),
        // It was exiting.
        Err(ClientError::Gone { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn subscribe(
    project: &str,
    mut stream: UnixStream,
    logs: bool,
) -> Result<impl Iterator<Item = Reply> + Send + 'static> {
    let mut line = serde_json::to_vec(&Request::Attach { logs })
        .map_err(|e| ClientError::Failed(e.to_string()))?;
    line.push(b'\n');
    if stream.write_all(&line).is_err() {
        return Err(ClientError::Gone {
            project: project.into(),
        });
    }
    let mut lines = BufReader::new(stream)
        .lines()
        .map_while(|l| l.ok())
        .filter_map(|l| serde_json::from_str::<Reply>(&l).ok());
    // Wait until the subscription is in place, so the caller's next request is seen whole.
    loop {
        match lines.next() {
            Some(Reply::Attached) => break,
            Some(_) => continue,
            None => {
                return Err(ClientError::Gone {
                    project: project.into(),
                })
            }
        }
    }
    Ok(lines)
}

/// A `run` request in progress: its replies, with the pty's master when one comes.
pub struct RunSession {
    project: String,
    /// The request and the streams it carries, to send again to a supervisor that was exiting.
    line: Vec<u8>,
    fds: Vec<std::os::fd::OwnedFd>,
    reader: super::fdpass::LineReader,
    got_any: bool,
}

impl RunSession {
    /// The next reply and, for `Reply::Pty`, the descriptor that came with it. `Done` ends
    /// the session: its error becomes `ClientError::Failed`, and `None` follows.
    pub fn next_reply(&mut self) -> Result<Option<(Reply, Option<std::os::fd::OwnedFd>)>> {
        let mut retries = 3;
        let line = loop {
            let read = self.reader.next_line();
            match read {
                Ok(Some(line)) => break line,
                // A supervisor that was just exiting drops the request unanswered.
                Ok(None) | Err(_) if !self.got_any && retries > 0 => {
                    retries -= 1;
                    std::thread::sleep(Duration::from_millis(20));
                    self.reader = send_run(&self.project, &self.line, &self.fds)?;
                }
                Ok(None) => {
                    return Err(ClientError::Gone {
                        project: self.project.clone(),
                    })
                }
                Err(source) => {
                    return Err(ClientError::Io {
                        project: self.project.clone(),
                        source,
                    })
                }
            }
        };
        self.got_any = true;
        let reply: Reply = serde_json::from_slice(&line).map_err(|e| ClientError::Io {
            project: self.project.clone(),
            source: std::io::Error::other(e),
        })?;
        match reply {
            Reply::Done { error: Some(e) } => Err(ClientError::Failed(e)),
            Reply::Done { error: None } => Ok(None),
            Reply::Pty { .. } => {
                let fd = self.reader.take_fd();
                Ok(Some((reply, fd)))
            }
            other => Ok(Some((other, None))),
        }
    }
}

fn send_run(
    project: &str,
    line: &[u8],
    fds: &[std::os::fd::OwnedFd],
) -> Result<super::fdpass::LineReader> {
    use std::os::fd::AsFd;
    let borrowed: Vec<std::os::fd::BorrowedFd> = fds.iter().map(|f| f.as_fd()).collect();
    let stream = connect_or_start(project)?;
    super::fdpass::send(&stream, line, &borrowed).map_err(|source| ClientError::Io {
        project: project.into(),
        source,
    })?;
    Ok(super::fdpass::LineReader::new(stream))
}

/// Sends a `run` request with the client's streams (`fds`, as `RunOptions` says), starting the
/// supervisor if needed.
pub fn run(project: &str, req: &Request, fds: Vec<std::os::fd::OwnedFd>) -> Result<RunSession> {
    let mut line = serde_json::to_vec(req).map_err(|e| ClientError::Io {
        project: project.into(),
        source: std::io::Error::other(e),
    })?;
    line.push(b'\n');
    let reader = send_run(project, &line, &fds)?;
    Ok(RunSession {
        project: project.into(),
        line,
        fds,
        reader,
        got_any: false,
    })
}
