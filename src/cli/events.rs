//! `rcompose events` and `rcompose wait`: both watch the supervisor's container events.

use anyhow::{bail, Result};
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::lifecycle::{self, DownArgs};
use super::logs::Filter;
use super::project;
use super::Global;
use crate::supervisor::client;
use crate::supervisor::proto::{Event, Reply};

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Output events as a stream of json objects
    #[arg(long)]
    pub json: bool,
    pub services: Vec<String>,
}

/// Streams the project's container events until the supervisor exits or Ctrl-C. Like docker
/// compose (which waits on the engine), it waits for a project that is not up yet: the
/// subscription starts its supervisor, which `up` then uses.
pub fn events(global: &Global, args: EventsArgs) -> Result<i32> {
    let target = project::target(global)?;
    let sel = project::selection(&args.services, &target)?;
    let filter = Filter {
        services: sel.services,
        index: None,
        // docker compose leaves out one-off containers.
        oneoff: false,
    };
    let stream = client::attach(&target.name, false)?;
    for reply in stream {
        let Reply::Event(ev) = reply else { continue };
        if !filter.matches(&ev.service, None, ev.oneoff) {
            continue;
        }
        let now = SystemTime::now();
        let line = if args.json {
            json_line(&ev, now)
        } else {
            text_line(&ev, now)
        };
        println!("{line}");
    }
    Ok(0)
}

/// docker's action name: health changes carry the new status.
fn action(ev: &Event) -> String {
    match (ev.action.as_str(), ev.health) {
        ("health_status", Some(h)) => format!("health_status: {}", h.as_str()),
        (a, _) => a.to_string(),
    }
}

/// The event's attributes as docker's engine reports them for a container (its compose
/// labels left out, as docker compose does), sorted by key.
fn attributes(ev: &Event) -> Vec<(&'static str, String)> {
    let mut attrs = Vec::new();
    if ev.action == "die" {
        attrs.push(("exitCode", ev.exit_code.unwrap_or(0).to_string()));
    }
    attrs.push(("image", ev.image.clone()));
    attrs.push(("name", ev.container.clone()));
    attrs
}

/// `2026-11-22 10:00:00.123456 container start <id> (image=busybox, name=demo-web-1)`, then
/// an empty line: docker compose's event text ends with a newline and is printed with one.
fn text_line(ev: &Event, time: SystemTime) -> String {
    let attrs: Vec<String> = attributes(ev)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "{} container {} {} ({})\n",
        local_time(time, Precision::Micros),
        action(ev),
        ev.id,
        attrs.join(", ")
    )
}

/// docker compose's `--json` object: Go marshals a map with its keys sorted, and the time as
/// RFC3339 with nanoseconds in the local zone.
fn json_line(ev: &Event, time: SystemTime) -> String {
    let mut attrs = serde_json::Map::new();
    for (k, v) in attributes(ev) {
        attrs.insert(k.to_string(), v.into());
    }
    let mut obj = serde_json::Map::new();
    obj.insert("action".into(), action(ev).into());
    obj.insert("attributes".into(), attrs.into());
    obj.insert("id".into(), ev.id.clone().into());
    obj.insert("service".into(), ev.service.clone().into());
    obj.insert("time".into(), local_time(time, Precision::Rfc3339).into());
    obj.insert("type".into(), "container".into());
    serde_json::Value::Object(obj).to_string()
}

#[derive(Clone, Copy)]
enum Precision {
    /// `2006-01-02 15:04:05.000000`
    Micros,
    /// Go's RFC3339Nano: `2006-01-02T15:04:05.999999999Z07:00`.
    Rfc3339,
}

/// The broken-down local time of a unix time.
pub(super) fn local_tm(secs: u64) -> libc::tm {
    let secs = libc::time_t::try_from(secs).unwrap_or(libc::time_t::MAX);
    // SAFETY: localtime_r and gmtime_r only read `secs` and write the caller-owned `tm`;
    // gmtime_r is the fallback for a time localtime cannot represent.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        unsafe { libc::gmtime_r(&secs, &mut tm) };
    }
    tm
}

fn local_time(t: SystemTime, precision: Precision) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let tm = local_tm(d.as_secs());
    let date = format!(
        "{:04}-{:02}-{:02}",
        tm.tm_year as i64 + 1900,
        tm.tm_mon + 1,
        tm.tm_mday
    );
    let clock = format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec);
    let nanos = d.subsec_nanos();
    match precision {
        Precision::Micros => format!("{date} {clock}.{:06}", nanos / 1000),
        Precision::Rfc3339 => {
            let mut frac = format!(".{nanos:09}");
            while frac.ends_with('0') {
                frac.pop();
            }
            if frac == "." {
                frac.clear();
            }
            let off = tm.tm_gmtoff;
            let zone = if off == 0 {
                "Z".to_string()
            } else {
                let sign = if off < 0 { '-' } else { '+' };
                format!("{sign}{:02}:{:02}", off.abs() / 3600, off.abs() / 60 % 60)
            };
            format!("{date}T{clock}{frac}{zone}")
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    #[arg(required = true, value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Drops project when the first container stops
    #[arg(long)]
    pub down_project: bool,
}

/// Blocks until every container of the services has stopped, printing each exit as docker
/// compose does; returns the exit code of the last one to stop.
pub fn wait(global: &Global, args: WaitArgs) -> Result<i32> {
    let target = project::target(global)?;
    let sel = project::selection(&args.services, &target)?;
    // Subscribed before the state is read, so no exit falls between the two.
    let events = client::attach_running(&target.name, false)?;
    let st = project::state(&target.name)?;
    let filter = Filter {
        services: sel.services,
        index: None,
        // docker compose waits on one-off containers too.
        oneoff: true,
    };
    let containers = filter.select(&st);
    if containers.is_empty() {
        bail!("no containers for project {:?}", target.name);
    }
    let mut code = 0;
    let mut pending: HashMap<String, String> = HashMap::new();
    for c in containers {
        // Without a supervisor nothing runs, whatever the last saved state says.
        if c.status.is_active() && events.is_some() {
            pending.insert(c.id.clone(), c.name.clone());
        } else {
            code = c.exit_code.unwrap_or(0);
            print_exit(&c.id, code);
        }
    }
    if let Some(events) = events.filter(|_| !pending.is_empty()) {
        for reply in events {
            let Reply::Event(ev) = reply else { continue };
            if matches!(ev.action.as_str(), "die" | "destroy") && pending.remove(&ev.id).is_some() {
                code = ev.exit_code.unwrap_or(0);
                print_exit(&ev.id, code);
                if pending.is_empty() {
                    break;
                }
            }
        }
    }
    if !pending.is_empty() {
        let mut names: Vec<String> = pending.into_values().collect();
        names.sort();
        bail!(
            "the supervisor of project {} went away while waiting for {}",
            target.name,
            names.join(", ")
        );
    }
    if args.down_project {
        lifecycle::down(
            global,
            DownArgs {
                volumes: false,
                remove_orphans: true,
                timeout: None,
                rmi: None,
            },
        )?;
    }
    Ok(code)
}

fn print_exit(id: &str, code: i32) {
    println!("container {id:?} exited with status code {code}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::state::{Health, Status};
    use std::time::Duration;

    fn event(action: &str) -> Event {
        Event {
            container: "demo-web-1".into(),
            id: "abc123".into(),
            image: "busybox:latest".into(),
            oneoff: false,
            service: "web".into(),
            status: Status::Exited,
            exit_code: Some(3),
            health: Some(Health::Healthy),
            restarting: false,
            action: action.into(),
        }
    }

    #[test]
    fn text_lines_look_like_docker_compose() {
        let t = UNIX_EPOCH + Duration::new(1_795_341_600, 123_456_789);
        let line = text_line(&event("die"), t);
        let (time, rest) = line.split_at(26);
        assert_eq!(
            rest,
            " container die abc123 (exitCode=3, image=busybox:latest, name=demo-web-1)\n"
        );
        // The local date and time, to the microsecond.
        assert!(time.ends_with(".123456"), "{time}");
        assert_eq!(time.as_bytes()[10], b' ');
        let start = text_line(&event("start"), t);
        assert!(
            start.ends_with("container start abc123 (image=busybox:latest, name=demo-web-1)\n"),
            "{start}"
        );
        let health = text_line(&event("health_status"), t);
        assert!(
            health.contains("container health_status: healthy abc123"),
            "{health}"
        );
    }

    #[test]
    fn json_lines_have_sorted_keys_and_an_rfc3339_time() {
        let t = UNIX_EPOCH + Duration::new(1_795_341_600, 120_000_000);
        let line = json_line(&event("start"), t);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["action"], "start");
        assert_eq!(v["id"], "abc123");
        assert_eq!(v["service"], "web");
        assert_eq!(v["type"], "container");
        assert_eq!(v["attributes"]["image"], "busybox:latest");
        assert_eq!(v["attributes"]["name"], "demo-web-1");
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["action", "attributes", "id", "service", "time", "type"]
        );
        let time = v["time"].as_str().unwrap();
        // Trailing zeros of the fraction trimmed, as Go does; and it parses back to `t`.
        assert!(time.contains(":00.12") && !time.contains(".120"), "{time}");
        assert_eq!(crate::logs::parse_time_arg(time, t).unwrap(), t);
    }

    #[test]
    fn whole_seconds_have_no_fraction() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_341_600);
        let s = local_time(t, Precision::Rfc3339);
        assert!(!s.contains('.'), "{s}");
        assert_eq!(crate::logs::parse_time_arg(&s, t).unwrap(), t);
    }
}
