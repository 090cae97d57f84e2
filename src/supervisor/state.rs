//! A project's state on disk: `$RCOMPOSE_RUN/projects/<project>/state.json`, written by the one
//! process holding the project's lock (a supervisor, or a CLI command acting without one), read
//! by everyone (`ps`, `logs`, `exec`, `port`, `ls`).
//!
//! It is the record of everything `up` made, so that `down` can undo it even after the
//! supervisor was killed with SIGKILL.

use serde::{Deserialize, Serialize};

use crate::network::dns::ContainerDns;
use crate::network::project::{Interface, NetworkState, PortBinding};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::SystemTime;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read project state {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot parse project state {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("cannot write project state {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot lock project {project} ({path}): {source}")]
    Lock {
        project: String,
        path: PathBuf,
        source: io::Error,
    },
}

pub type Result<T, E = StateError> = std::result::Result<T, E>;

/// The directory of a project's runtime state.
pub fn project_dir(project: &str) -> PathBuf {
    crate::paths::run().join("projects").join(project)
}

/// The supervisor's control socket.
pub fn socket_path(project: &str) -> PathBuf {
    project_dir(project).join("supervisor.sock")
}

/// A container's directory (writable layer, managed files, saved configuration, logs).
pub fn container_dir(id: &str) -> PathBuf {
    crate::paths::containers().join(id)
}

/// A container's log file, in docker's json-file layout.
pub fn log_path(id: &str) -> PathBuf {
    container_dir(id).join(format!("{id}-json.log"))
}

/// Projects with a state on disk.
pub fn projects() -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(crate::paths::run().join("projects"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().join(STATE_FILE).exists())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

const STATE_FILE: &str = "state.json";

/// A container's life, as docker names its states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Restarting,
    Paused,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Restarting => "restarting",
            Status::Paused => "paused",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// Whether a process of the container may exist (or is about to).
    pub fn is_active(self) -> bool {
        matches!(self, Status::Running | Status::Restarting | Status::Paused)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// A published port as `ps` and `port` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRecord {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
}

/// A bind mount or volume of a container: host directory, target, read-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRecord {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
}

/// One container of the project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub service: String,
    pub number: u32,
    #[serde(default)]
    pub oneoff: bool,
    /// The image as the compose file names it, and the image ID it was created from.
    pub image: String,
    pub image_id: String,
    /// Hash of the service's configuration: `up` recreates the container when it changes.
    pub config_hash: String,
    /// Per top-level key hashes of that configuration (`plan::observed::field_hashes`): a
    /// recreation names the keys that changed.
    #[serde(default)]
    pub config_fields: std::collections::BTreeMap<String, String>,
    pub command: Vec<String>,
    pub status: Status,
    #[serde(default)]
    pub pid: Option<i32>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub health: Option<Health>,
    #[serde(default)]
    pub health_log: Vec<String>,
    pub created_at: SystemTime,
    #[serde(default)]
    pub started_at: Option<SystemTime>,
    #[serde(default)]
    pub finished_at: Option<SystemTime>,
    #[serde(default)]
    pub restart_count: u32,
    /// Stopped by a command (stop, down), which `unless-stopped` respects.
    #[serde(default)]
    pub stopped_by_user: bool,
    #[serde(default)]
    pub ports: Vec<PortRecord>,
    /// Its interfaces, published ports and DNS names.
    #[serde(default)]
    pub network: ContainerNet,
    /// Anonymous volumes (directories) that go with the container.
    #[serde(default)]
    pub anonymous_volumes: Vec<String>,
    /// Its cgroup, relative to the hierarchy's root: `rcompose/<project>/<name>` with the name
    /// it was created under (a replacement keeps its temporary one). Empty in older records:
    /// see [`ContainerRecord::cgroup_path`].
    #[serde(default)]
    pub cgroup: String,
    /// Its bind mounts and volumes, for `volumes_from` of other containers.
    #[serde(default)]
    pub mounts: Vec<MountRecord>,
    /// How the supervisor runs it (kept so a new supervisor can take over).
    pub runtime: RuntimeSettings,
}

impl ContainerRecord {
    /// Where its cgroup is, for `stats` and `top`.
    pub fn cgroup_path(&self, project: &str) -> String {
        if self.cgroup.is_empty() {
            format!("rcompose/{project}/{}", self.name)
        } else {
            self.cgroup.clone()
        }
    }
}

/// A container's place on the project's networks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerNet {
    pub interfaces: Vec<Interface>,
    pub ports: Vec<PortBinding>,
    pub dns: ContainerDns,
}

/// The settings a container task needs, fixed when the container is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeSettings {
    pub policy: super::restart::Policy,
    pub healthcheck: Option<super::health::Check>,
    pub stop_signal: i32,
    pub stop_grace: std::time::Duration,
    pub tty: bool,
    pub log: crate::logs::LogConfig,
    /// The service's `depends_on`, for start and stop order.
    pub depends_on: Vec<Dependency>,
    /// Commands run inside the container after each start and before each stop.
    #[serde(default)]
    pub post_start: Vec<Hook>,
    #[serde(default)]
    pub pre_stop: Vec<Hook>,
}

/// A `post_start` or `pre_stop` hook: a command executed in the running container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    pub command: Vec<String>,
    pub user: Option<String>,
    pub privileged: bool,
    pub working_dir: Option<String>,
    /// `KEY=VALUE` entries added to the container's environment.
    pub env: Vec<String>,
}

impl Hook {
    pub fn of(hook: &crate::compose::model::ServiceHook) -> Hook {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Hook {
            command: hook.command.clone().unwrap_or_default(),
            user: non_empty(&hook.user),
            privileged: hook.privileged,
            working_dir: non_empty(&hook.working_dir),
            env: hook
                .environment
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dependency {
    pub service: String,
    pub condition: String,
    pub required: bool,
    pub restart: bool,
}

/// Everything a project's `up` made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProjectState {
    pub project: String,
    #[serde(default)]
    pub working_dir: PathBuf,
    #[serde(default)]
    pub config_files: Vec<PathBuf>,
    /// The project's networks as created.
    #[serde(default)]
    pub networks: Vec<NetworkState>,
    /// Named volumes this project created (`down -v` removes them).
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub containers: Vec<ContainerRecord>,
}

impl ProjectState {
    /// The state of `project`; `None` when it has none.
    pub fn load(project: &str) -> Result<Option<ProjectState>> {
        let path = project_dir(project).join(STATE_FILE);
        let body = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Read { path, source }),
        };
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| StateError::Parse {
                path,
                message: e.to_string(),
            })
    }

    /// Writes the state atomically (a reader never sees half a file).
    pub fn save(&self) -> Result<()> {
        let dir = project_dir(&self.project);
        let path = dir.join(STATE_FILE);
        let write = |source| StateError::Write {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(write)?;
        let body = serde_json::to_vec_pretty(self).map_err(|e| write(io::Error::other(e)))?;
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        fs::write(&tmp, body).map_err(write)?;
        fs::rename(&tmp, &path).map_err(write)
    }

    /// Removes the project's state file (after `down`; the directory goes when its
    /// supervisor exits).
    pub fn remove(project: &str) -> Result<()> {
        let path = project_dir(project).join(STATE_FILE);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(StateError::Write { path, source: e })
            }
            _ => Ok(()),
        }
    }

    pub fn container(&self, name: &str) -> Option<&ContainerRecord> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The containers of `service` (one-off ones left out), by number.
    pub fn service_containers(&self, service: &str) -> Vec<&ContainerRecord> {
        let mut v: Vec<_> = self
            .containers
            .iter()
            .filter(|c| c.service == service && !c.oneoff)
            .collect();
        v.sort_by_key(|c| c.number);
        v
    }
}

/// The project's lock: held by whoever writes its state. Released on drop (or when the holder
/// dies, so a killed supervisor never leaves it taken).
#[derive(Debug)]
pub struct ProjectLock {
    _fd: OwnedFd,
}

impl ProjectLock {
    /// Takes the lock without waiting; `None` when another process holds it.
    pub fn try_acquire(project: &str) -> Result<Option<ProjectLock>> {
        let dir = project_dir(project);
        let path = dir.join("lock");
        let err = |source| StateError::Lock {
            project: project.to_string(),
            path: path.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(err)?;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(err)?;
        let fd = OwnedFd::from(file);
        // SAFETY: flock on an fd we own.
        let rc = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Ok(None);
            }
            return Err(err(e));
        }
        Ok(Some(ProjectLock { _fd: fd }))
    }

    /// Whether some process holds the project's lock (a supervisor runs).
    pub fn is_held(project: &str) -> bool {
        if !project_dir(project).join("lock").exists() {
            return false;
        }
        matches!(ProjectLock::try_acquire(project), Ok(None))
    }
}

/// Removes a project's runtime state directory (which may be missing), only ever a directory
/// directly in `$RCOMPOSE_RUN/projects`.
pub fn remove_project_dir(project: &str) -> io::Result<()> {
    crate::names::check_project(project)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    crate::paths::remove_store_dir(&crate::paths::run().join("projects"), &project_dir(project))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_are_dockers() {
        assert_eq!(Status::Running.as_str(), "running");
        assert!(Status::Paused.is_active());
        assert!(!Status::Exited.is_active());
        assert_eq!(
            serde_json::to_string(&Status::Restarting).unwrap(),
            "\"restarting\""
        );
    }
}
