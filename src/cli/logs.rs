//! `rcompose logs`: the containers' stored output, merged by time, and with `-f` what they
//! write next, including containers that start later, until the project goes down.

use anyhow::{Context, Result};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::project;
use super::Global;
use crate::logs::{
    parse_time_arg, read_with_cursor, spawn_follow_many, Entry, FollowControl, FormatOptions,
    Formatter, ReadOptions, Source, Start, Stream,
};
use crate::supervisor::client;
use crate::supervisor::proto::{Event, Reply};
use crate::supervisor::state::{self, ContainerRecord, ProjectState};

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs for each container
    #[arg(short = 'n', long, default_value = "all", value_name = "N")]
    pub tail: String,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)
    #[arg(long)]
    pub until: Option<String>,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Produce monochrome output
    #[arg(long)]
    pub no_color: bool,
    /// Don't print prefix in logs
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Index of the container if the service has multiple replicas
    #[arg(long)]
    pub index: Option<u32>,
    pub services: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogsCmdError {
    #[error("invalid --tail value {0:?}: expected a number of lines or \"all\"")]
    Tail(String),
}

/// `--tail`: `all` (or a negative number, as docker takes it) is everything.
fn parse_tail(value: &str) -> Result<Option<usize>, LogsCmdError> {
    if value == "all" || value.is_empty() {
        return Ok(None);
    }
    match value.parse::<i64>() {
        Ok(n) if n < 0 => Ok(None),
        Ok(n) => usize::try_from(n)
            .map(Some)
            .map_err(|_| LogsCmdError::Tail(value.into())),
        Err(_) => Err(LogsCmdError::Tail(value.into())),
    }
}

fn read_options(args: &LogsArgs, now: SystemTime) -> Result<ReadOptions> {
    let time = |v: &Option<String>| v.as_deref().map(|v| parse_time_arg(v, now)).transpose();
    Ok(ReadOptions {
        tail: parse_tail(&args.tail)?,
        since: time(&args.since)?,
        until: time(&args.until)?,
    })
}

/// docker compose prints a container by its name without the project: `web-1`.
pub fn label(project: &str, container: &str) -> String {
    container
        .strip_prefix(project)
        .and_then(|rest| rest.strip_prefix('-'))
        .unwrap_or(container)
        .to_string()
}

/// What a `logs` (or `top`, `wait`) selection covers: services (all when empty) and a replica.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub services: Vec<String>,
    pub index: Option<u32>,
    pub oneoff: bool,
}

impl Filter {
    pub fn matches(&self, service: &str, number: Option<u32>, oneoff: bool) -> bool {
        (self.services.is_empty() || self.services.iter().any(|s| s == service))
            && (self.index.is_none() || number.is_none() || self.index == number)
            && (self.oneoff || !oneoff)
    }

    pub fn select<'a>(&self, st: &'a ProjectState) -> Vec<&'a ContainerRecord> {
        let mut out: Vec<&ContainerRecord> = st
            .containers
            .iter()
            .filter(|c| self.matches(&c.service, Some(c.number), c.oneoff))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

/// Prints entries of many containers, stdout lines to stdout and stderr lines to stderr, as
/// docker compose's log consumer does.
struct Printer {
    formatter: Formatter,
    /// Label → service, for the colour; containers that appear later are added.
    services: Mutex<HashMap<String, String>>,
    until: Option<SystemTime>,
}

impl Printer {
    fn print(&self, label: &str, entry: &Entry) {
        if self.until.is_some_and(|u| entry.time > u) {
            return;
        }
        let service = self
            .services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(label)
            .cloned()
            .unwrap_or_default();
        let line = self.formatter.format(label, &service, entry);
        // A closed stdout (`logs | head`) ends nothing else: the rest is dropped.
        let _ = match entry.stream {
            Stream::Stdout => std::io::stdout().lock().write_all(line.as_bytes()),
            Stream::Stderr => std::io::stderr().lock().write_all(line.as_bytes()),
        };
    }
}

pub fn run(global: &Global, args: LogsArgs) -> Result<i32> {
    let target = project::target(global)?;
    let sel = project::selection(&args.services, &target)?;
    let opts = read_options(&args, SystemTime::now())?;
    let filter = Filter {
        services: sel.services,
        index: args.index,
        oneoff: false,
    };
    // Subscribed before the state is read: a container that starts meanwhile is either in
    // the state or announced by an event (or both: it is followed once).
    let events = if args.follow {
        client::attach_running(&target.name, false)?
    } else {
        None
    };
    let st = project::state(&target.name)?;
    let containers = filter.select(&st);
    let labels: Vec<String> = containers
        .iter()
        .map(|c| label(&target.name, &c.name))
        .collect();
    let printer = Arc::new(Printer {
        formatter: Formatter::new(
            &labels.iter().map(String::as_str).collect::<Vec<_>>(),
            FormatOptions {
                color: !args.no_color && console::colors_enabled(),
                prefix: !args.no_log_prefix,
                timestamps: args.timestamps,
            },
        ),
        services: Mutex::new(
            labels
                .iter()
                .cloned()
                .zip(containers.iter().map(|c| c.service.clone()))
                .collect(),
        ),
        until: opts.until,
    });

    let mut merged: Vec<(usize, Entry)> = Vec::new();
    let mut sources = Vec::new();
    let mut followed: HashSet<String> = HashSet::new();
    for (i, c) in containers.iter().enumerate() {
        let path = state::log_path(&c.id);
        let (entries, cursor) = read_with_cursor(&path, &opts)
            .with_context(|| format!("cannot read the logs of container {}", c.name))?;
        merged.extend(entries.into_iter().map(|e| (i, e)));
        sources.push(Source::new(labels[i].clone(), path).after(cursor));
        followed.insert(c.id.clone());
    }
    // Interleaved by time; a stable sort keeps each container's own order for equal times.
    merged.sort_by_key(|(_, e)| e.time);
    for (i, entry) in &merged {
        printer.print(&labels[*i], entry);
    }
    let Some(events) = events else {
        return Ok(0);
    };

    let control = FollowControl::new();
    let sink_printer = printer.clone();
    let follower = spawn_follow_many(sources, Start::End, control.clone(), move |src, entry| {
        sink_printer.print(&src.label, &entry)
    });
    // Until the supervisor exits (`down`): containers created meanwhile (scale, recreate)
    // join; a restarted one keeps its log file, which the follower is already on.
    for reply in events {
        let Reply::Event(ev) = reply else { continue };
        if let Some(source) = new_source(&target.name, &filter, &ev, &mut followed) {
            printer
                .services
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(source.label.clone(), ev.service.clone());
            control.add_source(source, Start::Beginning);
        }
    }
    control.stop();
    match follower.join() {
        Ok(result) => result.context("cannot follow the logs")?,
        Err(_) => anyhow::bail!("the log follower failed"),
    }
    Ok(0)
}

/// The log to follow for a container an event announces, if it is selected and new.
fn new_source(
    project: &str,
    filter: &Filter,
    ev: &Event,
    followed: &mut HashSet<String>,
) -> Option<Source> {
    if ev.id.is_empty() || followed.contains(&ev.id) || ev.action == "destroy" {
        return None;
    }
    let label = label(project, &ev.container);
    let number = label.rsplit_once('-').and_then(|(_, n)| n.parse().ok());
    if !filter.matches(&ev.service, number, ev.oneoff) {
        return None;
    }
    followed.insert(ev.id.clone());
    Some(Source::new(label, state::log_path(&ev.id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::state::Status;
    use std::time::Duration;

    fn args(tail: &str, since: Option<&str>) -> LogsArgs {
        LogsArgs {
            follow: false,
            tail: tail.into(),
            since: since.map(String::from),
            until: None,
            timestamps: false,
            no_color: true,
            no_log_prefix: false,
            index: None,
            services: vec![],
        }
    }

    #[test]
    fn tail_takes_numbers_and_all() {
        assert_eq!(parse_tail("all").unwrap(), None);
        assert_eq!(parse_tail("-1").unwrap(), None);
        assert_eq!(parse_tail("0").unwrap(), Some(0));
        assert_eq!(parse_tail("25").unwrap(), Some(25));
        let e = parse_tail("ten").unwrap_err().to_string();
        assert!(e.contains("\"ten\"") && e.contains("--tail"), "{e}");
    }

    #[test]
    fn read_options_parse_relative_times_and_report_bad_ones() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        let o = read_options(&args("3", Some("10m")), now).unwrap();
        assert_eq!(o.tail, Some(3));
        assert_eq!(
            o.since,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(9_400))
        );
        assert!(read_options(&args("all", Some("yesterday")), now).is_err());
    }

    #[test]
    fn labels_drop_the_project_prefix() {
        assert_eq!(label("demo", "demo-web-1"), "web-1");
        assert_eq!(label("demo", "other-web-1"), "other-web-1");
        assert_eq!(label("demo", "demoweb-1"), "demoweb-1");
    }

    fn event(id: &str, name: &str, service: &str, oneoff: bool) -> Event {
        Event {
            container: name.into(),
            id: id.into(),
            image: "busybox".into(),
            oneoff,
            service: service.into(),
            status: Status::Running,
            exit_code: None,
            health: None,
            restarting: false,
            action: "start".into(),
        }
    }

    #[test]
    fn events_add_new_selected_containers_once() {
        let filter = Filter {
            services: vec!["web".into()],
            index: None,
            oneoff: false,
        };
        let mut followed = HashSet::from(["old".to_string()]);
        // A restart of a followed container: same log file, nothing to add.
        assert!(new_source(
            "p",
            &filter,
            &event("old", "p-web-1", "web", false),
            &mut followed
        )
        .is_none());
        let s = new_source(
            "p",
            &filter,
            &event("new", "p-web-2", "web", false),
            &mut followed,
        )
        .unwrap();
        assert_eq!(s.label, "web-2");
        assert_eq!(s.path, state::log_path("new"));
        assert!(new_source(
            "p",
            &filter,
            &event("new", "p-web-2", "web", false),
            &mut followed
        )
        .is_none());
        // Other services and one-off containers are not followed.
        assert!(new_source(
            "p",
            &filter,
            &event("db", "p-db-1", "db", false),
            &mut followed
        )
        .is_none());
        assert!(new_source(
            "p",
            &filter,
            &event("run", "p-web-run-1", "web", true),
            &mut followed
        )
        .is_none());
    }

    #[test]
    fn index_selects_one_replica() {
        let filter = Filter {
            services: vec![],
            index: Some(2),
            oneoff: false,
        };
        assert!(filter.matches("web", Some(2), false));
        assert!(!filter.matches("web", Some(1), false));
        assert!(!filter.matches("web", Some(2), true));
    }
}
