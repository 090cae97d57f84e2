//! What the engine's functions fail with. Each message says what failed and on what; the
//! protocol boundary (`Engine::handle`, `Engine::serve_run`, the `Done` reply) sends it as text.

use std::io;

use crate::plan::executor::ExecError;
use crate::plan::host::HostError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The running binary (the containers' helper) could not be found.
    #[error("cannot find the rcompose binary: {0}")]
    Binary(#[source] io::Error),
    /// The project's state could not be read or written.
    #[error(transparent)]
    State(#[from] super::state::StateError),
    #[error("cannot remove the project's state: {0}")]
    RemoveState(#[source] io::Error),
    #[error("no such service: {0}")]
    NoSuchService(String),
    #[error("service {service}: invalid image {image:?}: {error}")]
    InvalidImage {
        service: String,
        image: String,
        #[source]
        error: crate::image::reference::ReferenceError,
    },
    #[error("service {service}: image {image} is not present")]
    ImageMissing { service: String, image: String },
    /// The image store could not be opened or read.
    #[error(transparent)]
    Images(#[from] crate::image::store::StoreError),
    #[error(transparent)]
    Reconcile(#[from] crate::plan::reconcile::ReconcileError),
    /// A plan step failed: the host's message, then the undos that failed.
    #[error("{source}{}", undo_tail(.undo_errors))]
    Plan {
        source: HostError,
        undo_errors: Vec<String>,
    },
    /// A plan the executor refused (see `ExecError`).
    #[error(transparent)]
    Exec(ExecError),
    /// The project's networks, ports or firewall table.
    #[error(transparent)]
    Network(Box<crate::network::project::ProjectError>),
    /// Publishing a service's ports.
    #[error("service {service}: {error}")]
    Ports {
        service: String,
        #[source]
        error: Box<crate::network::project::ProjectError>,
    },
    #[error("cannot open netlink: {0}")]
    Netlink(#[source] crate::network::netlink::NetlinkError),
    #[error("no netlink connection")]
    NoNetlink,
    /// The host-wide network lock file.
    #[error("cannot {what} {}: {error}", .path.display())]
    HostLock {
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        error: io::Error,
    },
    /// Plugging a started container into its networks.
    #[error("container {name}: {message}")]
    Container { name: String, message: String },
    #[error("container name {0} is already in use")]
    NameInUse(String),
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
    #[error("service {service}: volumes_from {from}: no such container in project {project}")]
    VolumesFrom {
        service: String,
        from: String,
        project: String,
    },
    #[error("cannot remove volume {name}: {error}")]
    Volume {
        name: String,
        #[source]
        error: io::Error,
    },
    /// Making a container: its spec, settings, mounts, files and directory.
    #[error(transparent)]
    Spec(#[from] crate::runtime::spec::SpecError),
    #[error(transparent)]
    Restart(#[from] super::restart::RestartError),
    #[error(transparent)]
    Logging(#[from] crate::logs::LogsError),
    #[error(transparent)]
    Health(#[from] super::health::HealthError),
    #[error(transparent)]
    Mounts(#[from] crate::volume::VolumeError),
    #[error(transparent)]
    Configs(#[from] crate::configs::ConfigsError),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::container::ContainerError),
    /// A container task's failure (start, hooks, kill, pause, remove).
    #[error(transparent)]
    Task(#[from] super::task::TaskError),
    /// A `depends_on` condition that a container did not meet.
    #[error("container {0} has no healthcheck configured")]
    NoHealthcheck(String),
    #[error("container {0} is gone")]
    Gone(String),
    #[error("service {service:?} didn't complete successfully: exit {code}")]
    NotCompleted { service: String, code: i32 },
    #[error("dependency failed to start: container {0} is unhealthy")]
    Unhealthy(String),
    /// A `run` container whose task ended before it exited.
    #[error("container {0} went away")]
    WentAway(String),
    #[error("not a run request")]
    NotRun,
    #[error("run: expected {expected} streams from the client, got {got}")]
    Streams { expected: usize, got: usize },
    /// A blocking job (container creation, the network lock) that panicked or was cancelled.
    #[error(transparent)]
    Join(#[from] tokio::task::JoinError),
    /// Several containers failed (kill, pause): every message.
    #[error("{}", join(.0))]
    Many(Vec<EngineError>),
}

impl From<ExecError> for EngineError {
    fn from(e: ExecError) -> Self {
        match e {
            // The host's message says what failed on what; undo failures follow it.
            ExecError::Step {
                source,
                undo_errors,
                ..
            } => EngineError::Plan {
                source,
                undo_errors,
            },
            e => EngineError::Exec(e),
        }
    }
}

// Boxed: a project error is large, and every engine function returns this enum.
impl From<crate::network::project::ProjectError> for EngineError {
    fn from(e: crate::network::project::ProjectError) -> Self {
        EngineError::Network(Box::new(e))
    }
}

fn undo_tail(undo_errors: &[String]) -> String {
    undo_errors.iter().map(|e| format!("; {e}")).collect()
}

fn join(errors: &[EngineError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Ok when nothing failed, else the failure, or every failure.
pub(super) fn join_errors(mut errors: Vec<EngineError>) -> Result<(), EngineError> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(EngineError::Many(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_failure_reads_as_the_hosts_message_then_the_undos() {
        let e = EngineError::Plan {
            source: HostError::Failed("service web: port 8080 is already taken".into()),
            undo_errors: vec!["cannot undo create container a: busy".into()],
        };
        assert_eq!(
            e.to_string(),
            "service web: port 8080 is already taken; cannot undo create container a: busy"
        );
    }

    #[test]
    fn many_failures_are_joined() {
        let e = EngineError::Many(vec![
            EngineError::Task(super::super::task::TaskError::Kill {
                name: "p-a-1".into(),
                message: "no such process".into(),
            }),
            EngineError::NoSuchService("b".into()),
        ]);
        assert_eq!(
            e.to_string(),
            "cannot kill container p-a-1: no such process; no such service: b"
        );
        assert!(join_errors(Vec::new()).is_ok());
    }
}
