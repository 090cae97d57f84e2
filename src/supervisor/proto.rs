//! The control socket's protocol: one JSON request per connection, answered by a stream of
//! JSON lines (progress, events) that ends with `Done`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::state::{Health, Status};
use crate::compose::model::{Project, ServiceConfig};

/// What `up` asks for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpOptions {
    /// The services named on the command line (empty: all).
    pub services: Vec<String>,
    pub no_deps: bool,
    pub force_recreate: bool,
    pub no_recreate: bool,
    pub remove_orphans: bool,
    /// Create the containers but do not start them (`create`, `up --no-start`).
    pub no_start: bool,
    /// `--scale SERVICE=N` overrides.
    pub scale: Vec<(String, u32)>,
    /// Seconds to wait for a container replaced by a recreate to stop.
    pub timeout: Option<u64>,
    /// Services of the file that profiles disabled: their containers are not orphans.
    #[serde(default)]
    pub disabled_services: Vec<String>,
    /// Recreate dependent containers with their dependencies (`--always-recreate-deps`).
    #[serde(default)]
    pub always_recreate_deps: bool,
    /// Recreated containers get new anonymous volumes instead of the old ones' (`-V`).
    #[serde(default)]
    pub renew_anon_volumes: bool,
}

/// Which containers a command acts on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Selection {
    /// Services (empty: all).
    pub services: Vec<String>,
    /// Only this replica of them (`--index`).
    pub index: Option<u32>,
}

/// What `run` asks for: one one-off container of a service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunOptions {
    /// The service as `run` changed it (command, entrypoint, environment, user, ports, tty).
    pub service: Box<ServiceConfig>,
    /// The service's name (a service's own name is not part of its serialized form).
    pub service_name: String,
    /// `--name`; otherwise `<project>-<service>-run-<12 hex>`.
    pub name: Option<String>,
    /// Do not start (or wait for) the service's dependencies.
    pub no_deps: bool,
    /// Remove the container (and its anonymous volumes) when it exits.
    pub rm: bool,
    /// Answer once it started (`-d`) instead of when it exits.
    pub detach: bool,
    /// Give it the service's name and network aliases in DNS (`--use-aliases`).
    pub use_aliases: bool,
    /// The client's terminal size when the container gets a pty.
    pub tty_size: Option<(u16, u16)>,
    /// Which standard streams come with the request (SCM_RIGHTS, in this order): stdin when
    /// asked, then stdout and stderr. With a pty none come: the master goes back instead.
    pub stdin: bool,
    pub stdio: bool,
    /// Remove containers of services the file no longer has (`--remove-orphans`).
    #[serde(default)]
    pub remove_orphans: bool,
    /// Services of the file that profiles disabled: their containers are not orphans.
    #[serde(default)]
    pub disabled_services: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Bring the project to the loaded model (as `up`).
    Up {
        project: Box<Project>,
        working_dir: PathBuf,
        config_files: Vec<PathBuf>,
        options: UpOptions,
        /// Config and secret contents only the client knows (`configs::client_contents`).
        #[serde(default)]
        contents: BTreeMap<String, String>,
    },
    Start(Selection),
    Stop {
        selection: Selection,
        timeout: Option<u64>,
    },
    Restart {
        selection: Selection,
        timeout: Option<u64>,
    },
    Kill {
        selection: Selection,
        signal: i32,
    },
    Pause(Selection),
    Unpause(Selection),
    /// Remove stopped containers (`rm`; `stop` first with `-s`).
    Remove {
        selection: Selection,
        stop: bool,
        volumes: bool,
    },
    /// Stop and remove everything (`down`); the supervisor exits after answering.
    Down {
        timeout: Option<u64>,
        volumes: bool,
        remove_orphans: bool,
        /// Services of the current model (for orphan detection); `None`: remove all.
        services: Option<Vec<String>>,
    },
    /// Stream container events (and with `logs`, their output) until the client disconnects.
    Attach {
        logs: bool,
    },
    /// A one-off container (`run`): replies `Started`, `Pty` with a pty, then `Exited` unless
    /// detached.
    Run {
        project: Box<Project>,
        working_dir: PathBuf,
        config_files: Vec<PathBuf>,
        options: RunOptions,
        #[serde(default)]
        contents: BTreeMap<String, String>,
    },
}

/// A step of a command, printed like docker compose's progress lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// `Container`, `Network`, `Volume`.
    pub kind: String,
    pub name: String,
    /// `Creating`, `Created`, `Starting`, `Started`, `Waiting`, `Healthy`, ...
    pub status: String,
    /// Whether this is the end of the step (printed with a check mark) or an error.
    pub done: bool,
    pub error: bool,
}

/// A change in a container's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub container: String,
    /// The container's ID, image and whether it is a one-off (`run`): what `logs -f`, `wait`
    /// and `events` need without reading the state, which may not be saved yet.
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub oneoff: bool,
    pub service: String,
    pub status: Status,
    pub exit_code: Option<i32>,
    pub health: Option<Health>,
    /// Whether a restart is pending (the container exited but its policy brings it back).
    pub restarting: bool,
    /// `start`, `die`, `health_status`, `destroy`, `create`, `stop`, `restart`, ...
    pub action: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Reply {
    Progress(Progress),
    Event(Event),
    Log {
        container: String,
        service: String,
        stderr: bool,
        data: String,
    },
    Warning(String),
    /// An `Attach` subscription is in place: nothing that happens from now on is missed.
    Attached,
    /// A `run` container started (its first process has this host pid).
    Started {
        container: String,
        pid: i32,
    },
    /// The master side of a `run` container's pty, passed with this line (SCM_RIGHTS).
    Pty {
        #[serde(skip)]
        fd: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
    },
    /// A `run` container exited with this code (128+signal when killed).
    Exited {
        code: i32,
    },
    Done {
        error: Option<String>,
    },
}
