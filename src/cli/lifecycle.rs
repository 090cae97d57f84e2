//! `down`, `ps`, `start`, `stop`, `restart`, `kill`, `pause`, `unpause`, `rm`, `port`, `ls`:
//! thin commands over the supervisor and the project's state.

use anyhow::{bail, Context, Result};
use std::time::SystemTime;

use super::project::{self, selection, send, send_if_running, Target};
use super::Global;
use crate::supervisor::proto::Request;
use crate::supervisor::state::{self, ContainerRecord, Status};

#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// Remove named volumes declared in the "volumes" section of the Compose file and anonymous volumes attached to containers
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Remove containers for services not defined in the Compose file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Specify a shutdown timeout in seconds
    #[arg(short = 't', long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Remove images used by services ("local" or "all")
    #[arg(long, value_name = "TYPE")]
    pub rmi: Option<String>,
}

pub fn down(global: &Global, args: DownArgs) -> Result<i32> {
    let target = project::target(global)?;
    if let Some(r) = &args.rmi {
        if r != "local" && r != "all" {
            bail!("invalid --rmi {r:?}: expected local or all");
        }
    }
    // Services disabled by profiles are the project's too: their containers go, they are not
    // orphans.
    let services: Option<Vec<String>> = target.loaded.as_ref().map(|l| {
        l.project
            .services
            .keys()
            .cloned()
            .chain(l.disabled_services.iter().cloned())
            .collect()
    });
    if global.dry_run {
        return super::dryrun::down(
            &target.name,
            &crate::plan::reconcile::DownOptions {
                services,
                remove_orphans: args.remove_orphans,
                volumes: args.volumes,
                timeout: args.timeout.map(std::time::Duration::from_secs),
            },
        );
    }
    let st = project::state(&target.name)?;
    let known = state::ProjectLock::is_held(&target.name)
        || state::project_dir(&target.name).join("state.json").exists();
    if known {
        send(
            &target.name,
            &Request::Down {
                timeout: args.timeout,
                volumes: args.volumes,
                remove_orphans: args.remove_orphans,
                services,
            },
            true,
            false,
        )?;
    }
    if !known {
        // A directory with neither a state nor a live supervisor is what a crash left before
        // anything was recorded: nothing of it runs.
        let dir = state::project_dir(&target.name);
        if dir.exists() {
            state::remove_project_dir(&target.name)
                .with_context(|| format!("cannot remove {}", dir.display()))?;
        }
        // Entries such a run may have written in the network registry.
        crate::network::registry::remove_project(&target.name);
    }
    if let Some(rmi) = &args.rmi {
        let store = crate::image::store::Store::open(crate::paths::images())?;
        let mut images: Vec<String> = st.containers.iter().map(|c| c.image.clone()).collect();
        if let Some(l) = &target.loaded {
            images.extend(l.project.services.values().map(|s| s.image.clone()));
        }
        images.sort();
        images.dedup();
        for img in images.iter().filter(|i| !i.is_empty()) {
            // "local": only images without a custom tag, which rcompose never builds: none.
            if rmi == "all" && store.remove(img).is_ok() {
                project::print_progress(&crate::supervisor::proto::Progress {
                    kind: "Image".into(),
                    name: img.clone(),
                    status: "Removed".into(),
                    done: true,
                    error: false,
                });
            }
        }
    }
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Show all stopped containers
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Display services
    #[arg(long)]
    pub services: bool,
    /// Format the output: table, json, or a Go template ("{{.Name}}\t{{.Status}}", "table ...")
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Filter services by status (paused, restarting, removing, running, dead, created, exited)
    #[arg(long)]
    pub status: Vec<String>,
    /// Filter services by a property (status=...)
    #[arg(long)]
    pub filter: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    pub service_names: Vec<String>,
}

pub fn ps(global: &Global, args: PsArgs) -> Result<i32> {
    let target = project::target(global)?;
    let sel = selection(&args.service_names, &target)?;
    let st = project::state(&target.name)?;
    let mut statuses = args.status.clone();
    if let Some(f) = &args.filter {
        match f.split_once('=') {
            Some(("status", v)) => statuses.push(v.to_string()),
            _ => bail!("invalid filter {f:?}: only status=... is supported"),
        }
    }
    let mut rows: Vec<&ContainerRecord> = st
        .containers
        .iter()
        .filter(|c| sel.services.is_empty() || sel.services.contains(&c.service))
        .filter(|c| {
            args.all
                || !statuses.is_empty()
                || c.status.is_active()
                || c.oneoff && c.status == Status::Running
        })
        .filter(|c| statuses.is_empty() || statuses.iter().any(|s| s == c.status.as_str()))
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    if args.services {
        let mut s: Vec<&str> = rows.iter().map(|c| c.service.as_str()).collect();
        s.dedup();
        for n in s {
            println!("{n}");
        }
        return Ok(0);
    }
    if args.quiet {
        for c in rows {
            println!("{}", c.id);
        }
        return Ok(0);
    }
    let now = SystemTime::now();
    let json_row = |c: &ContainerRecord| {
        serde_json::json!({
            "ID": c.id,
            "Name": c.name,
            "Names": c.name,
            "Image": c.image,
            "Command": quoted_command(c, true),
            "Project": target.name,
            "Service": c.service,
            "Created": c.created_at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            "RunningFor": format!(
                "{} ago",
                project::human_duration(now.duration_since(c.created_at).unwrap_or_default())
            ),
            "State": c.status.as_str(),
            "Status": status_text(c, now),
            "Health": c.health.map(|h| h.as_str()).unwrap_or(""),
            "ExitCode": c.exit_code.unwrap_or(0),
            "Ports": ports_text(c),
            "Publishers": c.ports.iter().map(|p| serde_json::json!({
                "URL": p.host_ip, "TargetPort": p.container_port,
                "PublishedPort": p.host_port, "Protocol": p.protocol,
            })).collect::<Vec<_>>(),
        })
    };
    match args.format.as_str() {
        "json" => {
            for c in rows {
                let mut v = json_row(c);
                // Fields docker compose's JSON does not have.
                if let Some(m) = v.as_object_mut() {
                    for k in ["Names", "RunningFor", "Ports"] {
                        m.remove(k);
                    }
                }
                println!("{v}");
            }
        }
        "table" => {
            let mut table = vec![vec![
                "NAME".to_string(),
                "IMAGE".into(),
                "COMMAND".into(),
                "SERVICE".into(),
                "CREATED".into(),
                "STATUS".into(),
                "PORTS".into(),
            ]];
            for c in rows {
                let created = now.duration_since(c.created_at).unwrap_or_default();
                table.push(vec![
                    c.name.clone(),
                    c.image.clone(),
                    quoted_command(c, args.no_trunc),
                    c.service.clone(),
                    format!("{} ago", project::human_duration(created)),
                    status_text(c, now),
                    ports_text(c),
                ]);
            }
            print!("{}", super::table(&table));
        }
        template => {
            let values: Vec<serde_json::Value> = rows.iter().map(|c| json_row(c)).collect();
            let headers = [
                ("Name", "NAME"),
                ("Names", "NAMES"),
                ("RunningFor", "CREATED"),
                ("CreatedAt", "CREATED AT"),
                ("ExitCode", "EXIT CODE"),
            ];
            print!("{}", super::template::render(template, &values, &headers)?);
        }
    }
    Ok(0)
}

fn quoted_command(c: &ContainerRecord, full: bool) -> String {
    let cmd = c.command.join(" ");
    if full || cmd.chars().count() <= 20 {
        format!("\"{cmd}\"")
    } else {
        let short: String = cmd.chars().take(19).collect();
        format!("\"{short}…\"")
    }
}

/// docker's STATUS column: `Up 5 seconds (healthy)`, `Exited (0) 3 seconds ago`, ...
pub fn status_text(c: &ContainerRecord, now: SystemTime) -> String {
    let since = |t: Option<SystemTime>| {
        project::human_duration(
            t.and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default(),
        )
    };
    match c.status {
        Status::Created => "Created".into(),
        Status::Running | Status::Paused => {
            let mut s = format!("Up {}", since(c.started_at));
            if c.status == Status::Paused {
                s.push_str(" (Paused)");
            } else if let Some(h) = c.health {
                let h = if h == crate::supervisor::state::Health::Starting {
                    "health: starting"
                } else {
                    h.as_str()
                };
                s.push_str(&format!(" ({h})"));
            }
            s
        }
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            c.exit_code.unwrap_or(0),
            since(c.finished_at)
        ),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            c.exit_code.unwrap_or(0),
            since(c.finished_at)
        ),
        Status::Dead => "Dead".into(),
    }
}

fn ports_text(c: &ContainerRecord) -> String {
    c.ports
        .iter()
        .map(|p| {
            // IPv6 addresses in brackets, as docker prints them.
            let host = match p.host_ip.contains(':') {
                true => format!("[{}]", p.host_ip),
                false => p.host_ip.clone(),
            };
            format!(
                "{host}:{}->{}/{}",
                p.host_port, p.container_port, p.protocol
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, clap::Args)]
pub struct ServicesArgs {
    pub services: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Specify a shutdown timeout in seconds
    #[arg(short = 't', long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    pub services: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// SIGNAL to send to the container
    #[arg(short = 's', long, default_value = "SIGKILL")]
    pub signal: String,
    /// Remove containers for services not defined in the Compose file
    #[arg(long)]
    pub remove_orphans: bool,
    pub services: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Don't ask to confirm removal
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Stop the containers, if required, before removing
    #[arg(short = 's', long)]
    pub stop: bool,
    /// Remove any anonymous volumes attached to containers
    #[arg(short = 'v', long)]
    pub volumes: bool,
    pub services: Vec<String>,
}

fn known(target: &Target) -> bool {
    state::project_dir(&target.name).join("state.json").exists()
}

pub fn start(global: &Global, args: ServicesArgs) -> Result<i32> {
    let target = project::target(global)?;
    let sel = selection(&args.services, &target)?;
    if global.dry_run {
        return super::dryrun::lifecycle("start", &target.name, &args.services, None, false, false);
    }
    if !known(&target) {
        bail!("no containers to start");
    }
    send(&target.name, &Request::Start(sel), true, false)?;
    Ok(0)
}

pub fn stop(global: &Global, args: StopArgs) -> Result<i32> {
    let target = project::target(global)?;
    let selection = selection(&args.services, &target)?;
    if global.dry_run {
        return super::dryrun::lifecycle(
            "stop",
            &target.name,
            &args.services,
            args.timeout,
            false,
            false,
        );
    }
    send_if_running(
        &target.name,
        &Request::Stop {
            selection,
            timeout: args.timeout,
        },
    )?;
    Ok(0)
}

pub fn restart(global: &Global, args: StopArgs) -> Result<i32> {
    let target = project::target(global)?;
    let selection = selection(&args.services, &target)?;
    if global.dry_run {
        return super::dryrun::lifecycle(
            "restart",
            &target.name,
            &args.services,
            args.timeout,
            false,
            false,
        );
    }
    if !known(&target) {
        return Ok(0);
    }
    send(
        &target.name,
        &Request::Restart {
            selection,
            timeout: args.timeout,
        },
        true,
        false,
    )?;
    Ok(0)
}

pub fn kill(global: &Global, args: KillArgs) -> Result<i32> {
    let target = project::target(global)?;
    let selection = selection(&args.services, &target)?;
    let signal = crate::runtime::spec::Signal::parse(&args.signal)?.number;
    if global.dry_run {
        return super::dryrun::kill(&target.name, &args.services, signal);
    }
    send_if_running(&target.name, &Request::Kill { selection, signal })?;
    Ok(0)
}

pub fn pause(global: &Global, args: ServicesArgs, on: bool) -> Result<i32> {
    let target = project::target(global)?;
    let sel = selection(&args.services, &target)?;
    if global.dry_run {
        return super::dryrun::pause(&target.name, &args.services, on);
    }
    let req = if on {
        Request::Pause(sel)
    } else {
        Request::Unpause(sel)
    };
    send_if_running(&target.name, &req)?;
    Ok(0)
}

pub fn rm(global: &Global, args: RmArgs) -> Result<i32> {
    let target = project::target(global)?;
    let selection = selection(&args.services, &target)?;
    if global.dry_run {
        return super::dryrun::lifecycle(
            "rm",
            &target.name,
            &args.services,
            None,
            args.stop,
            args.volumes,
        );
    }
    if !known(&target) {
        eprintln!("No stopped containers");
        return Ok(0);
    }
    let _ = args.force; // rcompose never asks: -f is accepted for scripts written for docker.
    send(
        &target.name,
        &Request::Remove {
            selection,
            stop: args.stop,
            volumes: args.volumes,
        },
        true,
        false,
    )?;
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct PortArgs {
    /// tcp or udp
    #[arg(long, default_value = "tcp")]
    pub protocol: String,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    pub service: String,
    pub private_port: u16,
}

pub fn port(global: &Global, args: PortArgs) -> Result<i32> {
    let target = project::target(global)?;
    let st = project::state(&target.name)?;
    let Some(c) = st
        .containers
        .iter()
        .find(|c| c.service == args.service && c.number == args.index && !c.oneoff)
    else {
        bail!("service {} has no container {}", args.service, args.index);
    };
    match c
        .ports
        .iter()
        .find(|p| p.container_port == args.private_port && p.protocol == args.protocol)
    {
        Some(p) => {
            println!("{}:{}", p.host_ip, p.host_port);
            Ok(0)
        }
        None => bail!(
            "no port {}/{} published for {}",
            args.private_port,
            args.protocol,
            c.name
        ),
    }
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Show all stopped Compose projects
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display project names
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Format the output: table or json
    #[arg(long, default_value = "table")]
    pub format: String,
}

pub fn ls(args: LsArgs) -> Result<i32> {
    let mut rows = vec![vec![
        "NAME".to_string(),
        "STATUS".into(),
        "CONFIG FILES".into(),
    ]];
    let mut json = Vec::new();
    for name in state::projects() {
        let Ok(Some(st)) = state::ProjectState::load(&name) else {
            continue;
        };
        if st.containers.is_empty() {
            continue;
        }
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for c in &st.containers {
            *counts.entry(c.status.as_str()).or_default() += 1;
        }
        let running = counts.get("running").copied().unwrap_or(0);
        if running == 0 && !args.all {
            continue;
        }
        let status = counts
            .iter()
            .map(|(s, n)| format!("{s}({n})"))
            .collect::<Vec<_>>()
            .join(", ");
        let files = st
            .config_files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(",");
        if args.quiet {
            println!("{name}");
            continue;
        }
        json.push(serde_json::json!({"Name": name, "Status": status, "ConfigFiles": files}));
        rows.push(vec![name, status, files]);
    }
    if args.quiet {
        return Ok(0);
    }
    match args.format.as_str() {
        "json" => println!("{}", serde_json::Value::Array(json)),
        "table" => print!("{}", super::table(&rows)),
        other => bail!("invalid --format {other:?}: expected table or json"),
    }
    Ok(0)
}
