//! The per-project supervisor: it owns the project's containers (one task each, see `task`),
//! starts them in dependency order gated on their conditions, restarts them by policy, runs
//! their healthchecks, captures their logs, stops them in reverse order, and records
//! everything in the project's state so a later command (or a new supervisor after a crash)
//! can undo it.
//!
//! The engine runs inside `rcompose up` (attached) or in a detached `rcompose` process
//! (`up -d`); both serve the control socket (`server`), which the other commands use
//! (`client`).
//!
//! Where things are:
//! - `engine`: taking over a project, the request dispatch, running plans;
//! - `commands`: up, start, stop, kill, pause, rm, down; `run`: one-off containers;
//! - `create`: making a container; `net`: the project's networks, ports and DNS;
//! - `shared`: what the engine and the container tasks share; `error`: what the engine fails
//!   with;
//! - `host`: the plan host; `task`: one container's task; `ready`: readiness; `health`,
//!   `restart`, `state`;
//! - the control socket: `server`, `client`, `proto`, `fdpass`.

pub mod client;
mod commands;
mod create;
mod engine;
mod error;
pub mod fdpass;
pub mod health;
mod host;
mod net;
pub mod proto;
pub mod ready;
pub mod restart;
mod run;
pub mod server;
mod shared;
pub mod state;
mod task;

use tokio::sync::mpsc;

use self::proto::{Progress, Reply};
use crate::logs::Stream;

pub use self::create::{config_hash, container_name};
pub use self::engine::Engine;
pub use self::error::EngineError;
pub(crate) use self::net::{host_network_lock, other_networks};
pub use self::shared::Shared;

/// Output of a container, for attached clients.
#[derive(Debug, Clone)]
pub struct LogChunk {
    pub container: String,
    pub service: String,
    pub stream: Stream,
    pub bytes: Vec<u8>,
}

/// Where the output of a command goes (the control socket, or the attached CLI).
pub type Out = mpsc::UnboundedSender<Reply>;

fn progress(out: &Out, kind: &str, name: &str, status: &str, done: bool) {
    let _ = out.send(Reply::Progress(Progress {
        kind: kind.into(),
        name: name.into(),
        status: status.into(),
        done,
        error: false,
    }));
}

fn progress_error(out: &Out, kind: &str, name: &str, status: &str) {
    let _ = out.send(Reply::Progress(Progress {
        kind: kind.into(),
        name: name.into(),
        status: status.into(),
        done: true,
        error: true,
    }));
}

/// A sink for progress nobody reads.
fn sink() -> Out {
    mpsc::unbounded_channel().0
}
