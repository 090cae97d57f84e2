//! What the project commands share: which project, talking to its supervisor, printing its
//! progress like docker compose.

use anyhow::{Context, Result};

use super::Global;
use crate::compose::loader::Loaded;
use crate::supervisor::client;
use crate::supervisor::proto::{Progress, Reply, Request, Selection};
use crate::supervisor::state::ProjectState;

/// The project the command acts on: from the compose files, or only its name (`-p`) when there
/// are none (`down`, `ps`, `stop` work on a project whose files are gone, as with docker).
pub struct Target {
    pub name: String,
    pub loaded: Option<Loaded>,
    /// Why the files did not load, when they did not (for commands that need them).
    pub load_error: Option<anyhow::Error>,
}

impl Target {
    /// The loaded project, or why there is none.
    pub fn require_loaded(self) -> Result<Loaded> {
        match (self.loaded, self.load_error) {
            (Some(l), _) => Ok(l),
            (None, Some(e)) => Err(e),
            (None, None) => anyhow::bail!("no configuration file provided: not found"),
        }
    }
}

pub fn target(global: &Global) -> Result<Target> {
    let opts = global.load_options()?;
    match super::load(global, &opts) {
        Ok(loaded) => Ok(Target {
            name: loaded.project.name.clone(),
            loaded: Some(loaded),
            load_error: None,
        }),
        Err(e) => match opts
            .project_name
            .clone()
            .or_else(|| std::env::var("COMPOSE_PROJECT_NAME").ok())
        {
            // The name becomes `$RCOMPOSE_RUN/projects/<name>`, which `down` may remove.
            Some(name) if !name.is_empty() => match crate::names::check_project(&name) {
                Ok(()) => Ok(Target {
                    name,
                    loaded: None,
                    load_error: Some(e),
                }),
                Err(invalid) => Err(invalid.into()),
            },
            _ => Err(e),
        },
    }
}

/// The project's recorded state (empty when it has none).
pub fn state(project: &str) -> Result<ProjectState> {
    Ok(ProjectState::load(project)
        .with_context(|| format!("cannot read the state of project {project}"))?
        .unwrap_or_else(|| ProjectState {
            project: project.to_string(),
            ..Default::default()
        }))
}

/// Prints progress lines as docker compose's plain progress does (on stderr).
pub fn print_progress(p: &Progress) {
    let mark = if p.error {
        console::style("✘").red().to_string()
    } else if p.done {
        console::style("✔").green().to_string()
    } else {
        " ".to_string()
    };
    eprintln!(" {mark} {} {}  {}", p.kind, p.name, p.status);
}

/// Sends a request, printing its progress and warnings; fails with the request's error.
pub fn send(project: &str, req: &Request, start: bool, quiet: bool) -> Result<()> {
    let r = client::request(project, req, start, |reply| match reply {
        Reply::Progress(p) if !quiet => print_progress(&p),
        Reply::Warning(w) => super::warn(&w),
        _ => {}
    });
    match r {
        Ok(()) => Ok(()),
        Err(client::ClientError::Failed(e)) => Err(anyhow::anyhow!(e)),
        Err(e) => Err(e.into()),
    }
}

/// Sends a request to the running supervisor; when none runs, nothing runs, and the request
/// has nothing to do (stop, kill, pause).
pub fn send_if_running(project: &str, req: &Request) -> Result<()> {
    if client::connect(project).is_none() {
        return Ok(());
    }
    send(project, req, false, false)
}

pub fn selection(services: &[String], target: &Target) -> Result<Selection> {
    if let Some(l) = &target.loaded {
        for s in services {
            if !l.project.services.contains_key(s) {
                anyhow::bail!("no such service: {s}");
            }
        }
    }
    Ok(Selection {
        services: services.to_vec(),
        index: None,
    })
}

/// docker's `units.HumanDuration`, as `ps` shows ages.
pub fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let hours = s / 3600;
    if s < 1 {
        "Less than a second".into()
    } else if s == 1 {
        "1 second".into()
    } else if s < 60 {
        format!("{s} seconds")
    } else if s / 60 == 1 {
        "About a minute".into()
    } else if s < 3600 {
        format!("{} minutes", s / 60)
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn human_durations_like_docker() {
        let d = Duration::from_secs;
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(d(1)), "1 second");
        assert_eq!(human_duration(d(42)), "42 seconds");
        assert_eq!(human_duration(d(61)), "About a minute");
        assert_eq!(human_duration(d(600)), "10 minutes");
        assert_eq!(human_duration(d(3700)), "About an hour");
        assert_eq!(human_duration(d(3 * 3600)), "3 hours");
        assert_eq!(human_duration(d(3 * 86400)), "3 days");
    }
}
