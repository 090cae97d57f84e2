//! One container's life inside the supervisor: a task that owns the container, starts it,
//! captures its output into its log, runs its healthcheck, waits for it, restarts it by policy
//! with docker's backoff, and stops, kills, pauses or removes it on command.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot, watch};

use super::health::{Check, Tracker};
use super::proto::Event;
use super::restart::{Backoff, Policy};
use super::state::{ContainerRecord, Health, Status};
use super::Shared;
use crate::logs::{LogWriter, Stream};
use crate::runtime::container::{Container, ExecRequest, ExitStatus};
use crate::runtime::process::{ProcessError, Stdio};

/// Why a container task could not do what the engine asked. Every message names the
/// container.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// Its task ended (the container was removed meanwhile).
    #[error("container {0} is gone")]
    Gone(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    /// Between two runs of its restart policy.
    #[error("container {0} is restarting")]
    Restarting(String),
    /// Its command could not be started (the message carries docker's reason: not found,
    /// not executable, ...).
    #[error("cannot start container {name}: {message}")]
    Start { name: String, message: String },
    #[error("container {name}: post_start hook {command:?} exited with code {code}")]
    PostStartExit {
        name: String,
        command: String,
        code: i32,
    },
    #[error("container {name}: post_start hook {command:?} failed: {message}")]
    PostStart {
        name: String,
        command: String,
        message: String,
    },
    #[error("cannot kill container {name}: {message}")]
    Kill { name: String, message: String },
    #[error("cannot {} container {name}: {message}", if *.pause { "pause" } else { "unpause" })]
    Freeze {
        name: String,
        pause: bool,
        message: String,
    },
    /// A health probe still held it after its stop.
    #[error("cannot remove container {0}: it is still in use")]
    Busy(String),
    #[error("cannot remove container {name}: {message}")]
    Remove { name: String, message: String },
}

/// What the engine asks of a container.
pub enum Cmd {
    Start(oneshot::Sender<Result<(), TaskError>>),
    /// Stop (stop signal, then SIGKILL after `timeout`); `user`: a command asked (so
    /// `unless-stopped` and `always` do not bring it back).
    Stop {
        timeout: Option<Duration>,
        reply: oneshot::Sender<()>,
    },
    Kill {
        signal: i32,
        reply: oneshot::Sender<Result<(), TaskError>>,
    },
    Pause(oneshot::Sender<Result<(), TaskError>>),
    Unpause(oneshot::Sender<Result<(), TaskError>>),
    /// Remove the (stopped) container; with `volumes`, its anonymous volumes too.
    Remove {
        volumes: bool,
        reply: oneshot::Sender<Result<(), TaskError>>,
    },
    /// Give it another name (a replacement takes its old container's name).
    Rename {
        name: String,
        reply: oneshot::Sender<()>,
    },
}

/// The engine's side of a container task.
pub struct Handle {
    pub cmd: mpsc::UnboundedSender<Cmd>,
    pub record: watch::Receiver<ContainerRecord>,
}

impl Handle {
    pub fn snapshot(&self) -> ContainerRecord {
        self.record.borrow().clone()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(make(tx)).ok()?;
        rx.await.ok()
    }

    pub async fn start(&self) -> Result<(), TaskError> {
        self.ask(Cmd::Start)
            .await
            .unwrap_or_else(|| Err(TaskError::Gone(self.name())))
    }

    pub async fn stop(&self, timeout: Option<Duration>) {
        self.ask(|reply| Cmd::Stop { timeout, reply }).await;
    }

    pub async fn kill(&self, signal: i32) -> Result<(), TaskError> {
        self.ask(|reply| Cmd::Kill { signal, reply })
            .await
            .unwrap_or(Ok(()))
    }

    pub async fn pause(&self, pause: bool) -> Result<(), TaskError> {
        let r = if pause {
            self.ask(Cmd::Pause).await
        } else {
            self.ask(Cmd::Unpause).await
        };
        r.unwrap_or(Ok(()))
    }

    pub async fn remove(&self, volumes: bool) -> Result<(), TaskError> {
        self.ask(|reply| Cmd::Remove { volumes, reply })
            .await
            .unwrap_or(Ok(()))
    }

    pub async fn rename(&self, name: String) {
        self.ask(|reply| Cmd::Rename { name, reply }).await;
    }

    pub fn name(&self) -> String {
        self.record.borrow().name.clone()
    }
}

/// What a container task needs besides the container.
pub struct Setup {
    pub container: Container,
    pub record: ContainerRecord,
    pub policy: Policy,
    pub check: Option<Check>,
    pub stop_signal: i32,
    pub grace: Duration,
    pub log: Option<LogWriter>,
    pub tty: bool,
    /// A `run` container's first start uses the client's streams instead of the log.
    pub oneoff: Option<OneOffIo>,
}

/// The client's side of a `run` container: its streams, or where the pty's master goes.
#[derive(Default)]
pub struct OneOffIo {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub pty: Option<oneshot::Sender<OwnedFd>>,
}

/// Starts the task of a created (or adopted) container.
pub fn spawn(shared: Arc<Shared>, setup: Setup) -> Handle {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (rec_tx, rec_rx) = watch::channel(setup.record.clone());
    let task = Task {
        shared,
        container: Some(Arc::new(setup.container)),
        record: Arc::new(rec_tx),
        policy: setup.policy,
        check: setup.check,
        stop_signal: setup.stop_signal,
        grace: setup.grace,
        log: Arc::new(std::sync::Mutex::new(setup.log)),
        tty: setup.tty,
        oneoff: setup.oneoff,
        backoff: Backoff::default(),
    };
    tokio::spawn(task.run(cmd_rx));
    Handle {
        cmd: cmd_tx,
        record: rec_rx,
    }
}

struct Task {
    shared: Arc<Shared>,
    container: Option<Arc<Container>>,
    record: Arc<watch::Sender<ContainerRecord>>,
    policy: Policy,
    check: Option<Check>,
    stop_signal: i32,
    grace: Duration,
    log: Arc<std::sync::Mutex<Option<LogWriter>>>,
    tty: bool,
    oneoff: Option<OneOffIo>,
    backoff: Backoff,
}

/// A process of the container being waited for.
struct Running {
    pid: i32,
    pidfd: AsyncFd<OwnedFd>,
    started: Instant,
    pumps: Vec<tokio::task::JoinHandle<()>>,
    health: Option<tokio::task::JoinHandle<()>>,
}

enum Phase {
    Idle,
    Running(Running),
    /// A restart is due at this instant.
    Backoff(tokio::time::Instant),
}

impl Task {
    fn update(&self, action: &str, f: impl FnOnce(&mut ContainerRecord)) {
        self.record.send_modify(f);
        let r = self.record.borrow().clone();
        let _ = self.shared.events.send(Event {
            container: r.name.clone(),
            id: r.id.clone(),
            image: r.image.clone(),
            oneoff: r.oneoff,
            service: r.service.clone(),
            status: r.status,
            exit_code: r.exit_code,
            health: r.health,
            restarting: r.status == Status::Restarting,
            action: action.to_string(),
        });
        self.shared.dirty.notify_one();
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        let mut phase = Phase::Idle;
        loop {
            phase = match phase {
                Phase::Idle => {
                    let Some(cmd) = rx.recv().await else {
                        return;
                    };
                    match cmd {
                        Cmd::Start(reply) => {
                            self.record.send_modify(|r| r.stopped_by_user = false);
                            let (phase, mut result) = self.start_or_backoff().await;
                            if let Phase::Running(running) = &phase {
                                result = self.post_start(running).await;
                            }
                            let _ = reply.send(result);
                            phase
                        }
                        Cmd::Stop { reply, .. } => {
                            let _ = reply.send(());
                            Phase::Idle
                        }
                        Cmd::Kill { reply, .. } | Cmd::Pause(reply) | Cmd::Unpause(reply) => {
                            let name = self.record.borrow().name.clone();
                            let _ = reply.send(Err(TaskError::NotRunning(name)));
                            Phase::Idle
                        }
                        Cmd::Remove { volumes, reply } => {
                            let _ = reply.send(self.remove(volumes).await);
                            return;
                        }
                        Cmd::Rename { name, reply } => {
                            self.update("rename", |r| r.name = name);
                            let _ = reply.send(());
                            Phase::Idle
                        }
                    }
                }
                Phase::Running(running) => {
                    tokio::select! {
                        status = wait_exit(&running) => self.exited(running, status, false).await,
                        cmd = rx.recv() => match cmd {
                            None => Phase::Running(running),
                            Some(cmd) => self.command_while_running(running, cmd).await,
                        },
                    }
                }
                Phase::Backoff(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {
                            self.update("restart", |r| r.restart_count += 1);
                            self.start_or_backoff().await.0
                        }
                        cmd = rx.recv() => match cmd {
                            None => return,
                            Some(Cmd::Start(reply)) => {
                                let (phase, mut result) = self.start_or_backoff().await;
                                if let Phase::Running(running) = &phase {
                                    result = self.post_start(running).await;
                                }
                                let _ = reply.send(result);
                                phase
                            }
                            Some(Cmd::Stop { reply, .. }) => {
                                // A pending restart is cancelled.
                                self.update("stop", |r| {
                                    r.status = Status::Exited;
                                    r.stopped_by_user = true;
                                });
                                let _ = reply.send(());
                                Phase::Idle
                            }
                            Some(Cmd::Remove { volumes, reply }) => {
                                let _ = reply.send(self.remove(volumes).await);
                                return;
                            }
                            Some(Cmd::Rename { name, reply }) => {
                                self.update("rename", |r| r.name = name);
                                let _ = reply.send(());
                                Phase::Backoff(at)
                            }
                            Some(Cmd::Kill { reply, .. }) | Some(Cmd::Pause(reply)) | Some(Cmd::Unpause(reply)) => {
                                let name = self.record.borrow().name.clone();
                                let _ = reply.send(Err(TaskError::Restarting(name)));
                                Phase::Backoff(at)
                            }
                        },
                    }
                }
            };
        }
    }

    async fn command_while_running(&mut self, running: Running, cmd: Cmd) -> Phase {
        match cmd {
            Cmd::Start(reply) => {
                let _ = reply.send(Ok(()));
                Phase::Running(running)
            }
            Cmd::Stop { timeout, reply } => {
                self.pre_stop(running.pid).await;
                self.update("kill", |r| r.stopped_by_user = true);
                let status = self.stop(&running, timeout.unwrap_or(self.grace)).await;
                let phase = self.exited(running, status, true).await;
                let _ = reply.send(());
                phase
            }
            Cmd::Kill { signal, reply } => {
                // SAFETY: kill with plain integers; the pid is our unreaped child.
                let rc = unsafe { libc::kill(running.pid, signal) };
                let r = if rc == 0 {
                    Ok(())
                } else {
                    Err(TaskError::Kill {
                        name: self.record.borrow().name.clone(),
                        message: io::Error::last_os_error().to_string(),
                    })
                };
                let _ = reply.send(r);
                Phase::Running(running)
            }
            Cmd::Pause(reply) => {
                let r = self
                    .freeze(true)
                    .map_err(|message| self.freeze_error(true, message));
                if r.is_ok() {
                    self.update("pause", |r| r.status = Status::Paused);
                }
                let _ = reply.send(r);
                Phase::Running(running)
            }
            Cmd::Unpause(reply) => {
                let r = self
                    .freeze(false)
                    .map_err(|message| self.freeze_error(false, message));
                if r.is_ok() {
                    self.update("unpause", |r| r.status = Status::Running);
                }
                let _ = reply.send(r);
                Phase::Running(running)
            }
            Cmd::Remove { volumes, reply } => {
                // The engine stops first; a forced removal kills.
                self.update("kill", |r| r.stopped_by_user = true);
                let status = self.stop(&running, Duration::ZERO).await;
                self.exited(running, status, true).await;
                let _ = reply.send(self.remove(volumes).await);
                Phase::Idle
            }
            Cmd::Rename { name, reply } => {
                self.update("rename", |r| r.name = name);
                let _ = reply.send(());
                Phase::Running(running)
            }
        }
    }

    fn freeze_error(&self, pause: bool, message: String) -> TaskError {
        TaskError::Freeze {
            name: self.record.borrow().name.clone(),
            pause,
            message,
        }
    }

    fn freeze(&self, on: bool) -> Result<(), String> {
        let c = self.container.as_ref().ok_or("container removed")?;
        let cg = c.cgroup().ok_or("container has no cgroup")?;
        let r = if on { cg.freeze() } else { cg.thaw() };
        r.map_err(|e| e.to_string())
    }

    /// Runs the `post_start` hooks in the container started as `pid`, in order; the first that
    /// fails is the start's error (the container keeps running, as with docker compose).
    async fn post_start(&self, running: &Running) -> Result<(), TaskError> {
        let pid = running.pid;
        let hooks = self.record.borrow().runtime.post_start.clone();
        for hook in &hooks {
            let code = match self.hook(pid, hook).await {
                Ok(code) => code,
                // A command that ends at once (a `run` of `true`) leaves nothing to hook into:
                // its namespaces go before it is a zombie, so give its exit a moment to show.
                Err(e) => {
                    let exiting =
                        tokio::time::timeout(Duration::from_millis(500), running.pidfd.readable())
                            .await;
                    if exiting.is_ok() {
                        return Ok(());
                    }
                    return Err(TaskError::PostStart {
                        name: self.record.borrow().name.clone(),
                        command: hook.command.join(" "),
                        message: e,
                    });
                }
            };
            if code != 0 {
                return Err(TaskError::PostStartExit {
                    name: self.record.borrow().name.clone(),
                    command: hook.command.join(" "),
                    code,
                });
            }
        }
        Ok(())
    }

    /// Runs the `pre_stop` hooks before a stop; a failing hook is written to the container's
    /// log and the stop goes on (a stop must always stop).
    async fn pre_stop(&self, pid: i32) {
        if self.record.borrow().status == Status::Paused {
            let _ = self.freeze(false);
        }
        let hooks = self.record.borrow().runtime.pre_stop.clone();
        for hook in &hooks {
            match self.hook(pid, hook).await {
                Ok(0) => {}
                Ok(code) => self.write_log(
                    Stream::Stderr,
                    format!(
                        "pre_stop hook {:?} exited with code {code}\n",
                        hook.command.join(" ")
                    )
                    .as_bytes(),
                ),
                Err(e) => self.write_log(Stream::Stderr, format!("{e}\n").as_bytes()),
            }
        }
    }

    /// One hook in the container; its output goes to the container's log. Returns its code.
    async fn hook(&self, pid: i32, hook: &super::state::Hook) -> Result<i32, String> {
        let container = self
            .container
            .clone()
            .ok_or_else(|| "container removed".to_string())?;
        let req = ExecRequest {
            args: hook.command.clone(),
            env: hook.env.clone(),
            user: hook.user.clone(),
            workdir: hook.working_dir.clone(),
            privileged: hook.privileged,
            tty: None,
        };
        let (code, output) = exec_in(&container, &self.shared, pid, req, None)
            .await
            .map_err(String::from)?;
        if !output.is_empty() {
            self.write_log(Stream::Stdout, output.as_bytes());
        }
        Ok(code)
    }

    /// Stop signal, then SIGKILL to the whole cgroup after `grace`.
    async fn stop(&self, running: &Running, grace: Duration) -> ExitStatus {
        // A paused container cannot handle a signal: thaw it first (docker does the same).
        if self.record.borrow().status == Status::Paused {
            let _ = self.freeze(false);
        }
        // SAFETY: kill with plain integers; the pid is our unreaped child.
        unsafe { libc::kill(running.pid, self.stop_signal) };
        match tokio::time::timeout(grace, wait_exit(running)).await {
            Ok(s) => s,
            Err(_) => {
                if let Some(c) = &self.container {
                    let _ = c.kill_all();
                }
                // SAFETY: as above.
                unsafe { libc::kill(running.pid, libc::SIGKILL) };
                wait_exit(running).await
            }
        }
    }

    /// Records an exit and decides what comes next.
    async fn exited(&mut self, running: Running, status: ExitStatus, by_command: bool) -> Phase {
        if let Some(h) = running.health {
            h.abort();
            let _ = h.await;
        }
        // Nothing of the container may outlive its first process (processes in a shared or
        // host pid namespace would).
        if let Some(c) = &self.container {
            let _ = c.kill_all();
        }
        for p in running.pumps {
            let _ = p.await;
        }
        if let Ok(mut log) = self.log.lock() {
            if let Some(w) = log.as_mut() {
                let _ = w.flush_partial();
            }
        }
        let record = self.record.borrow().clone();
        self.shared.network_release(&record).await;
        let code = status.docker_code();
        let ran = running.started.elapsed();
        let r = self.record.borrow().clone();
        let restart = !by_command
            && self
                .policy
                .should_restart(code, r.restart_count, r.stopped_by_user);
        self.update("die", |r| {
            r.status = if restart {
                Status::Restarting
            } else {
                Status::Exited
            };
            r.exit_code = Some(code);
            r.pid = None;
            r.health = None;
            r.finished_at = Some(SystemTime::now());
        });
        if restart {
            let delay = self.backoff.delay(ran);
            Phase::Backoff(tokio::time::Instant::now() + delay)
        } else {
            Phase::Idle
        }
    }

    /// Starts the process; a failure to start counts as an exit (docker's 126/127 codes) and
    /// goes through the restart policy.
    async fn start_or_backoff(&mut self) -> (Phase, Result<(), TaskError>) {
        match self.start().await {
            Ok(running) => (Phase::Running(running), Ok(())),
            Err((code, message)) => {
                let name = self.record.borrow().name.clone();
                self.write_log(Stream::Stderr, format!("{message}\n").as_bytes());
                let r = self.record.borrow().clone();
                let restart = self
                    .policy
                    .should_restart(code, r.restart_count, r.stopped_by_user);
                self.update("die", |r| {
                    r.status = if restart {
                        Status::Restarting
                    } else {
                        Status::Exited
                    };
                    r.exit_code = Some(code);
                    r.pid = None;
                    r.finished_at = Some(SystemTime::now());
                });
                let phase = if restart {
                    let delay = self.backoff.delay(Duration::ZERO);
                    Phase::Backoff(tokio::time::Instant::now() + delay)
                } else {
                    Phase::Idle
                };
                (phase, Err(TaskError::Start { name, message }))
            }
        }
    }

    fn write_log(&self, stream: Stream, bytes: &[u8]) {
        if let Ok(mut log) = self.log.lock() {
            if let Some(w) = log.as_mut() {
                let _ = w.write(stream, bytes);
            }
        }
    }

    async fn start(&mut self) -> Result<Running, (i32, String)> {
        let container = self
            .container
            .clone()
            .ok_or((1, "container removed".to_string()))?;
        let helper = self.shared.helper.clone();
        let tty = self.tty;
        let fail = |e: String| (1, e);
        // Output: two pipes, or the pty the helper sends back; a `run` container's first start
        // writes to the client's streams instead.
        let mut oneoff = self.oneoff.take();
        let (out, err) = if tty || oneoff.is_some() {
            (None, None)
        } else {
            (
                Some(pipe().map_err(|e| fail(e.to_string()))?),
                Some(pipe().map_err(|e| fail(e.to_string()))?),
            )
        };
        let (out_r, out_w) = out.map_or((None, None), |(r, w)| (Some(r), Some(w)));
        let (err_r, err_w) = err.map_or((None, None), |(r, w)| (Some(r), Some(w)));
        let (in_w, out_w, err_w) = match oneoff.as_mut() {
            Some(io) if !tty => (io.stdin.take(), io.stdout.take(), io.stderr.take()),
            _ => (None, out_w, err_w),
        };
        let c = container.clone();
        let spawned = tokio::task::spawn_blocking(move || {
            let stdio = Stdio {
                stdin: in_w.as_ref().map(|f| f.as_fd()),
                stdout: out_w.as_ref().map(|f| f.as_fd()),
                stderr: err_w.as_ref().map(|f| f.as_fd()),
            };
            c.spawn(&helper, stdio)
        })
        .await
        .map_err(|e| fail(e.to_string()))?
        .map_err(|e| fail(e.to_string()))?;
        let pid = spawned.pid();

        let record = self.record.borrow().clone();
        if let Err(e) = self.shared.network_attach(&record, pid).await {
            // SAFETY: killing and reaping our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = tokio::task::spawn_blocking(move || crate::runtime::container::wait(pid)).await;
            return Err((1, e.to_string()));
        }

        let c = container.clone();
        let (spawned, started) = tokio::task::spawn_blocking(move || {
            let r = c.start(&spawned);
            (spawned, r)
        })
        .await
        .map_err(|e| fail(e.to_string()))?;
        let pty = match started {
            Ok(pty) => pty,
            Err(e) => {
                let code = match &e {
                    crate::runtime::container::ContainerError::Process {
                        source: ProcessError::Start { code, .. },
                        ..
                    } => *code,
                    _ => 1,
                };
                let _ =
                    tokio::task::spawn_blocking(move || crate::runtime::container::wait(pid)).await;
                return Err((code, e.to_string()));
            }
        };
        let (pid, pidfd) = spawned.into_parts();
        let pidfd = match pidfd {
            Some(fd) => fd,
            None => pidfd_open(pid).map_err(|e| fail(format!("pidfd_open: {e}")))?,
        };
        let pidfd = async_fd(pidfd).map_err(|e| fail(e.to_string()))?;

        // The client of a `run` with a pty reads and writes the master itself.
        let pty = match (pty, oneoff.and_then(|io| io.pty)) {
            (Some(master), Some(to_client)) => {
                let _ = to_client.send(master);
                None
            }
            (pty, _) => pty,
        };
        let mut pumps = Vec::new();
        for (fd, stream) in [
            (out_r, Stream::Stdout),
            (err_r, Stream::Stderr),
            (pty, Stream::Stdout),
        ] {
            if let Some(fd) = fd {
                pumps.push(tokio::spawn(pump(
                    fd,
                    stream,
                    self.log.clone(),
                    self.shared.clone(),
                    self.record.borrow().name.clone(),
                    self.record.borrow().service.clone(),
                )));
            }
        }
        let has_check = self.check.is_some();
        self.update("start", |r| {
            r.status = Status::Running;
            r.pid = Some(pid);
            r.exit_code = None;
            r.started_at = Some(SystemTime::now());
            r.health = has_check.then_some(Health::Starting);
            r.health_log.clear();
        });
        let health = self.check.clone().map(|check| {
            tokio::spawn(health_loop(
                check,
                container,
                self.shared.clone(),
                self.record.clone(),
                pid,
            ))
        });
        Ok(Running {
            pid,
            pidfd,
            started: Instant::now(),
            pumps,
            health,
        })
    }

    async fn remove(&mut self, volumes: bool) -> Result<(), TaskError> {
        let record = self.record.borrow().clone();
        let Some(c) = self.container.take() else {
            return Ok(());
        };
        // Health probes hold a reference only while they run, and they are aborted by now.
        // A probe's exec that was under way when the container stopped still holds it briefly.
        let mut c = c;
        let deadline = Instant::now() + Duration::from_secs(5);
        let c = loop {
            match Arc::try_unwrap(c) {
                Ok(c) => break c,
                Err(back) if Instant::now() < deadline => {
                    c = back;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(_) => return Err(TaskError::Busy(record.name)),
            }
        };
        if let Ok(mut log) = self.log.lock() {
            log.take();
        }
        c.destroy().map_err(|e| TaskError::Remove {
            name: record.name.clone(),
            message: e.to_string(),
        })?;
        if volumes {
            // Recorded paths: removed only if they are volumes in the store.
            for v in &record.anonymous_volumes {
                let _ = crate::volume::remove_dir(std::path::Path::new(v));
            }
        }
        self.update("destroy", |_| {});
        Ok(())
    }
}

/// Copies a container's output into its log and to attached clients.
async fn pump(
    fd: OwnedFd,
    stream: Stream,
    log: Arc<std::sync::Mutex<Option<LogWriter>>>,
    shared: Arc<Shared>,
    container: String,
    service: String,
) {
    if set_nonblocking(&fd).is_err() {
        return;
    }
    let Ok(afd) = async_fd(fd) else {
        return;
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let Ok(mut guard) = afd.readable().await else {
            return;
        };
        let n = match guard.try_io(|fd| {
            // SAFETY: reading into our own buffer.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        }) {
            Ok(Ok(0)) => return,
            Ok(Ok(n)) => n,
            // EIO: a pty whose other side is closed.
            Ok(Err(_)) => return,
            Err(_would_block) => continue,
        };
        let bytes = &buf[..n];
        if let Ok(mut l) = log.lock() {
            if let Some(w) = l.as_mut() {
                let _ = w.write(stream, bytes);
            }
        }
        let _ = shared.logs.send(super::LogChunk {
            container: container.clone(),
            service: service.clone(),
            stream,
            bytes: bytes.to_vec(),
        });
    }
}

/// Runs the healthcheck until aborted (when the process exits).
async fn health_loop(
    check: Check,
    container: Arc<Container>,
    shared: Arc<Shared>,
    record: Arc<watch::Sender<ContainerRecord>>,
    pid: i32,
) {
    let started = Instant::now();
    let mut tracker = Tracker::default();
    loop {
        tokio::time::sleep(check.next_wait(started.elapsed())).await;
        let since = started.elapsed();
        let (ok, output) = probe(&check, &container, &shared, pid).await;
        let before = tracker.status();
        let now = tracker.record(&check, ok, since);
        record.send_modify(|r| {
            r.health = Some(now);
            r.health_log.push(output);
            // docker keeps the last five results.
            let n = r.health_log.len();
            if n > 5 {
                r.health_log.drain(..n - 5);
            }
        });
        if before != now {
            let r = record.borrow().clone();
            let _ = shared.events.send(Event {
                container: r.name.clone(),
                id: r.id.clone(),
                image: r.image.clone(),
                oneoff: r.oneoff,
                service: r.service.clone(),
                status: r.status,
                exit_code: r.exit_code,
                health: r.health,
                restarting: false,
                action: "health_status".into(),
            });
            shared.dirty.notify_one();
        }
    }
}

/// One probe: the check's command inside the container, killed after the timeout.
async fn probe(
    check: &Check,
    container: &Arc<Container>,
    shared: &Shared,
    pid: i32,
) -> (bool, String) {
    let req = ExecRequest {
        args: check.command.clone(),
        ..Default::default()
    };
    match exec_in(container, shared, pid, req, Some(check.timeout)).await {
        Ok((code, out)) => (code == 0, out),
        Err(ExecFailure::TimedOut) => (
            false,
            format!(
                "Health check exceeded timeout ({})",
                crate::compose::model::format_duration(check.timeout)
            ),
        ),
        Err(ExecFailure::Failed(e)) => (false, e),
    }
}

#[derive(Debug)]
enum ExecFailure {
    TimedOut,
    Failed(String),
}

impl From<ExecFailure> for String {
    fn from(e: ExecFailure) -> String {
        match e {
            ExecFailure::TimedOut => "timed out".into(),
            ExecFailure::Failed(e) => e,
        }
    }
}

/// Runs `req` in the container whose first process is `pid`, its output (stdout and stderr,
/// at most 4 KiB) captured; killed after `timeout`. Returns its exit code and output.
async fn exec_in(
    container: &Arc<Container>,
    shared: &Shared,
    pid: i32,
    req: ExecRequest,
    timeout: Option<Duration>,
) -> Result<(i32, String), ExecFailure> {
    let failed = |e: String| ExecFailure::Failed(e);
    let (r, w) = pipe().map_err(|e| failed(e.to_string()))?;
    let c = container.clone();
    let helper = shared.helper.clone();
    let spawned = tokio::task::spawn_blocking(move || {
        let stdio = Stdio {
            stdin: None,
            stdout: Some(w.as_fd()),
            stderr: Some(w.as_fd()),
        };
        c.exec(&helper, pid, &req, stdio)
    })
    .await
    .map_err(|e| failed(e.to_string()))?
    .map_err(|e| failed(e.to_string()))?
    .0;
    let output = tokio::spawn(read_capped(r, 4096));
    let (epid, pidfd) = spawned.into_parts();
    let pidfd = match pidfd
        .map(Ok)
        .unwrap_or_else(|| pidfd_open(epid))
        .and_then(async_fd)
    {
        Ok(fd) => fd,
        Err(e) => {
            let _ =
                tokio::task::spawn_blocking(move || crate::runtime::container::wait(epid)).await;
            return Err(failed(e.to_string()));
        }
    };
    let running = Running {
        pid: epid,
        pidfd,
        started: Instant::now(),
        pumps: Vec::new(),
        health: None,
    };
    let waited = match timeout {
        Some(t) => tokio::time::timeout(t, wait_exit(&running)).await.ok(),
        None => Some(wait_exit(&running).await),
    };
    match waited {
        Some(status) => {
            let out = output.await.unwrap_or_default();
            Ok((status.docker_code(), out))
        }
        None => {
            // SAFETY: killing our own unreaped child.
            unsafe { libc::kill(epid, libc::SIGKILL) };
            wait_exit(&running).await;
            output.abort();
            Err(ExecFailure::TimedOut)
        }
    }
}

async fn read_capped(fd: OwnedFd, cap: usize) -> String {
    let mut out = Vec::new();
    if set_nonblocking(&fd).is_err() {
        return String::new();
    }
    let Ok(afd) = async_fd(fd) else {
        return String::new();
    };
    let mut buf = [0u8; 4096];
    loop {
        let Ok(mut guard) = afd.readable().await else {
            break;
        };
        match guard.try_io(|fd| {
            // SAFETY: reading into our own buffer.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        }) {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                if out.len() < cap {
                    out.extend_from_slice(&buf[..n.min(cap - out.len())]);
                }
            }
            Err(_) => continue,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits for the process behind `running.pidfd` to end and reaps it.
async fn wait_exit(running: &Running) -> ExitStatus {
    loop {
        let mut status = 0;
        // SAFETY: a valid status pointer; the pid is our child.
        let rc = unsafe { libc::waitpid(running.pid, &mut status, libc::WNOHANG) };
        if rc == running.pid {
            return if libc::WIFSIGNALED(status) {
                ExitStatus {
                    code: None,
                    signal: Some(libc::WTERMSIG(status)),
                }
            } else {
                ExitStatus {
                    code: Some(libc::WEXITSTATUS(status)),
                    signal: None,
                }
            };
        }
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                // Not our child (already reaped): nothing to wait for.
                return ExitStatus {
                    code: None,
                    signal: Some(libc::SIGKILL),
                };
            }
            continue;
        }
        match running.pidfd.readable().await {
            Ok(mut g) => g.clear_ready(),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fds owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: the pidfd_open syscall with plain integers.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Registers a readable fd with the runtime.
fn async_fd(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the OwnedFd stays open and unchanged for as long as the AsyncFd owns it.
    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

#[cfg(test)]
mod tests {
    use super::TaskError;

    /// Every message says what failed on which container, once.
    #[test]
    fn task_errors_name_the_container_and_the_action() {
        let cases = [
            (
                TaskError::Start {
                    name: "p-web-1".into(),
                    message: "exec: \"nope\": executable file not found in $PATH".into(),
                },
                "cannot start container p-web-1: exec: \"nope\": executable file not found in $PATH",
            ),
            (
                TaskError::Freeze {
                    name: "p-web-1".into(),
                    pause: false,
                    message: "no cgroup".into(),
                },
                "cannot unpause container p-web-1: no cgroup",
            ),
            (
                TaskError::PostStartExit {
                    name: "p-web-1".into(),
                    command: "sh -c false".into(),
                    code: 1,
                },
                "container p-web-1: post_start hook \"sh -c false\" exited with code 1",
            ),
            (
                TaskError::Busy("p-web-1".into()),
                "cannot remove container p-web-1: it is still in use",
            ),
            (
                TaskError::NotRunning("p-web-1".into()),
                "container p-web-1 is not running",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }
}
