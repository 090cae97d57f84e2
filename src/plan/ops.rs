//! A plan: the typed operations that take a project from what exists (`observed`) to what the
//! compose file asks for, each with the reason it is there and the operations it must follow.
//!
//! `reconcile` makes plans without touching anything; the executor runs them through a
//! [`super::host::Host`]; `--dry-run` prints them.

use std::fmt;
use std::time::Duration;

/// The position of a step in its plan.
pub type StepId = usize;

/// One thing to do on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Pull a service's image (it is missing, or `pull_policy`/`--pull` asks).
    PullImage { service: String, image: String },
    /// Build a service's image.
    BuildImage { service: String, image: String },
    /// Push an image to its registry.
    PushImage { image: String },
    /// Create a network of the project (`key`: its key in the compose file).
    CreateNetwork { key: String, name: String },
    /// Remove a network of the project.
    RemoveNetwork { key: String, name: String },
    /// Find an `external: true` network (it must exist) and record it: the project's
    /// containers join it, but it is never created or removed here.
    UseNetwork { key: String, name: String },
    /// Create a named volume.
    CreateVolume { key: String, name: String },
    /// Remove a named volume.
    RemoveVolume { name: String },
    /// Create container `number` of `service` named `name`. With `replaces`, it is the
    /// replacement of that container (docker compose's create-before-remove): it takes the old
    /// one's anonymous volumes unless `renew_anon_volumes`, and is renamed into place later.
    CreateContainer {
        service: String,
        number: u32,
        name: String,
        replaces: Option<String>,
        renew_anon_volumes: bool,
    },
    /// Create the one-off container `name` of `service` (`run`): no replica number, no
    /// service hash, the client's streams.
    CreateOneOff { service: String, name: String },
    /// Start a container.
    StartContainer { name: String },
    /// Stop a container (`timeout`: the grace period before SIGKILL; `None`: its own).
    StopContainer {
        name: String,
        timeout: Option<Duration>,
    },
    /// Remove a (stopped) container; with `volumes`, its anonymous volumes too (not those
    /// another container uses: a replacement keeps the ones it took over).
    RemoveContainer { name: String, volumes: bool },
    /// Send a signal to a container's process (`kill`).
    KillContainer { name: String, signal: i32 },
    /// Freeze a container's processes (`pause`).
    PauseContainer { name: String },
    /// Thaw a paused container (`unpause`).
    UnpauseContainer { name: String },
    /// Copy files between the host and a container (`cp`); `from` and `to` as the user wrote
    /// them (`SERVICE:PATH` for a container's side). Done by the client, never by a host.
    Copy { from: String, to: String },
    /// Give a container its final name (the replacement of a recreated container).
    RenameContainer { from: String, to: String },
    /// Wait until a dependency's container meets a `depends_on` condition before its
    /// dependent is started. `required: false` makes a failure a warning.
    WaitContainer {
        name: String,
        condition: String,
        required: bool,
    },
}

impl Op {
    /// The kind of object the operation acts on, as docker compose's progress names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::PullImage { .. } | Op::BuildImage { .. } | Op::PushImage { .. } => "Image",
            Op::CreateNetwork { .. } | Op::RemoveNetwork { .. } | Op::UseNetwork { .. } => {
                "Network"
            }
            Op::CreateVolume { .. } | Op::RemoveVolume { .. } => "Volume",
            Op::Copy { .. } => "Files",
            _ => "Container",
        }
    }

    /// The name of the object the operation acts on.
    pub fn object(&self) -> &str {
        match self {
            Op::PullImage { image, .. }
            | Op::BuildImage { image, .. }
            | Op::PushImage { image } => image,
            Op::CreateNetwork { name, .. }
            | Op::RemoveNetwork { name, .. }
            | Op::UseNetwork { name, .. }
            | Op::CreateVolume { name, .. }
            | Op::RemoveVolume { name }
            | Op::CreateContainer { name, .. }
            | Op::CreateOneOff { name, .. }
            | Op::StartContainer { name }
            | Op::KillContainer { name, .. }
            | Op::PauseContainer { name }
            | Op::UnpauseContainer { name }
            | Op::StopContainer { name, .. }
            | Op::RemoveContainer { name, .. }
            | Op::WaitContainer { name, .. } => name,
            Op::RenameContainer { from, .. } => from,
            Op::Copy { to, .. } => to,
        }
    }

    /// Whether undoing the operation is part of rolling back a failed run: things this run
    /// made and nothing else had yet.
    pub fn creates(&self) -> bool {
        matches!(
            self,
            Op::CreateNetwork { .. }
                | Op::CreateVolume { .. }
                | Op::CreateContainer { .. }
                | Op::CreateOneOff { .. }
        )
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::PullImage { service, image } => write!(f, "pull image {image} (service {service})"),
            Op::BuildImage { service, image } => {
                write!(f, "build image {image} (service {service})")
            }
            Op::PushImage { image } => write!(f, "push image {image}"),
            Op::CreateNetwork { name, .. } => write!(f, "create network {name}"),
            Op::RemoveNetwork { name, .. } => write!(f, "remove network {name}"),
            Op::UseNetwork { name, .. } => write!(f, "use external network {name}"),
            Op::CreateVolume { name, .. } => write!(f, "create volume {name}"),
            Op::RemoveVolume { name } => write!(f, "remove volume {name}"),
            Op::CreateContainer {
                name,
                replaces,
                renew_anon_volumes,
                ..
            } => {
                write!(f, "create container {name}")?;
                match replaces {
                    Some(old) if *renew_anon_volumes => {
                        write!(f, " (replacing {old}, new anonymous volumes)")
                    }
                    Some(old) => write!(f, " (replacing {old}, its anonymous volumes)"),
                    None => Ok(()),
                }
            }
            Op::CreateOneOff { name, .. } => write!(f, "create one-off container {name}"),
            Op::StartContainer { name } => write!(f, "start container {name}"),
            Op::KillContainer { name, signal } => {
                match nix::sys::signal::Signal::try_from(*signal) {
                    Ok(sig) => write!(f, "kill container {name} ({sig})"),
                    Err(_) => write!(f, "kill container {name} (signal {signal})"),
                }
            }
            Op::PauseContainer { name } => write!(f, "pause container {name}"),
            Op::UnpauseContainer { name } => write!(f, "unpause container {name}"),
            Op::Copy { from, to } => write!(f, "copy {from} to {to}"),
            Op::StopContainer { name, timeout } => {
                write!(f, "stop container {name}")?;
                match timeout {
                    Some(t) => write!(f, " (timeout {}s)", t.as_secs()),
                    None => Ok(()),
                }
            }
            Op::RemoveContainer { name, volumes } => {
                write!(f, "remove container {name}")?;
                if *volumes {
                    write!(f, " and its anonymous volumes")?;
                }
                Ok(())
            }
            Op::RenameContainer { from, to } => write!(f, "rename container {from} to {to}"),
            Op::WaitContainer {
                name,
                condition,
                required,
            } => {
                write!(f, "wait for container {name}: {condition}")?;
                if !*required {
                    write!(f, " (optional)")?;
                }
                Ok(())
            }
        }
    }
}

/// Why an operation is in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The object does not exist yet.
    Missing,
    /// The service's configuration changed in these fields (top-level compose keys).
    ConfigChanged(Vec<String>),
    /// The service's image is another image now.
    ImageChanged,
    /// A flag forces it: `--force-recreate`, `--always-recreate-deps`, `--renew-anon-volumes`.
    Forced(&'static str),
    /// A dependency was recreated and this service asked to be restarted with it
    /// (`depends_on: {restart: true}`). (`--always-recreate-deps` recreates the dependencies
    /// themselves: `Forced`.)
    DependencyRecreated(String),
    /// The container is the old one of a recreation.
    Replaced,
    /// The number of replicas goes from `from` to `to`.
    Scale { from: u32, to: u32 },
    /// The container's service is not in the compose file any more.
    Orphan,
    /// The container exists but does not run.
    NotRunning,
    /// A dependent service needs it (`depends_on`).
    Dependency { dependent: String },
    /// A network's configuration changed in these fields.
    NetworkChanged(Vec<String>),
    /// The image is missing, or the pull policy asks for a pull or a build.
    ImagePolicy(String),
    /// The command asked for it (`down`, `stop`, `rm`, `start`, ...).
    Requested,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Missing => write!(f, "missing"),
            Cause::ConfigChanged(fields) => write!(f, "config changed: {}", fields.join(", ")),
            Cause::ImageChanged => write!(f, "image changed"),
            Cause::Forced(flag) => write!(f, "{flag}"),
            Cause::DependencyRecreated(dep) => write!(f, "dependency {dep} recreated"),
            Cause::Replaced => write!(f, "replaced"),
            Cause::Scale { from, to } => write!(f, "scale {from} → {to}"),
            Cause::Orphan => write!(f, "orphan"),
            Cause::NotRunning => write!(f, "not running"),
            Cause::Dependency { dependent } => write!(f, "{dependent} depends on it"),
            Cause::NetworkChanged(fields) => {
                write!(f, "network config changed: {}", fields.join(", "))
            }
            Cause::ImagePolicy(why) => write!(f, "{why}"),
            Cause::Requested => write!(f, "requested"),
        }
    }
}

/// One operation of a plan, with its cause and the steps it must wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub op: Op,
    pub cause: Cause,
    /// Steps that must have succeeded before this one runs (all earlier in the plan).
    pub after: Vec<StepId>,
}

/// A graph of operations; edges point backwards only, so the order of `steps` is one valid
/// sequential order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// What the plan chose not to do but the user should know (orphans left, ...).
    pub warnings: Vec<String>,
}

impl Plan {
    /// Adds a step after `after` (earlier steps) and returns its id.
    pub fn push(&mut self, op: Op, cause: Cause, after: Vec<StepId>) -> StepId {
        let id = self.steps.len();
        let mut after: Vec<StepId> = after.into_iter().filter(|a| *a < id).collect();
        after.sort_unstable();
        after.dedup();
        self.steps.push(Step { op, cause, after });
        id
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// The step that does `op`, if the plan has it.
    pub fn find(&self, op: &Op) -> Option<StepId> {
        self.steps.iter().position(|s| s.op == *op)
    }
}

/// The plan as `--dry-run` prints it: one numbered line per step with its cause and the steps
/// it waits for.
impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        if self.steps.is_empty() {
            return writeln!(f, "nothing to do");
        }
        for (i, s) in self.steps.iter().enumerate() {
            write!(f, "{:>2}. {} [{}]", i + 1, s.op, s.cause)?;
            if !s.after.is_empty() {
                let after: Vec<String> = s.after.iter().map(|a| (a + 1).to_string()).collect();
                write!(f, " after {}", after.join(","))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_only_wait_for_earlier_ones_and_print_numbered() {
        let mut p = Plan::default();
        let n = p.push(
            Op::CreateNetwork {
                key: "default".into(),
                name: "demo_default".into(),
            },
            Cause::Missing,
            vec![],
        );
        let c = p.push(
            Op::CreateContainer {
                service: "web".into(),
                number: 1,
                name: "demo-web-1".into(),
                replaces: None,
                renew_anon_volumes: false,
            },
            Cause::Missing,
            vec![n, n, 7],
        );
        p.push(
            Op::StartContainer {
                name: "demo-web-1".into(),
            },
            Cause::NotRunning,
            vec![c],
        );
        assert_eq!(p.steps[1].after, vec![0]);
        assert_eq!(
            p.to_string(),
            " 1. create network demo_default [missing]\n \
             2. create container demo-web-1 [missing] after 1\n \
             3. start container demo-web-1 [not running] after 2\n"
        );
    }
}
