//! `rcompose stats`: the containers' resource use, as `docker compose stats` shows it: CPU %
//! over the last interval, memory use (without the inactive page cache) against the limit or
//! the host's memory, network and block I/O, and the number of processes. Read straight from
//! each container's cgroup and network namespace.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::logs::Filter;
use super::project;
use super::Global;
use crate::image::progress::scaled_size;
use crate::runtime::cgroups::{Cgroup, Hierarchy, Stats};
use crate::supervisor::state::ContainerRecord;

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Format output using a custom template: 'table', 'json', or a Go template
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    pub services: Vec<String>,
}

/// The interval CPU % is measured over (docker's daemon samples every second).
const INTERVAL: Duration = Duration::from_secs(1);

/// One reading of a container.
struct Sample {
    at: Instant,
    stats: Stats,
    net: (u64, u64),
}

pub fn run(global: &Global, args: StatsArgs) -> Result<i32> {
    let target = project::target(global)?;
    let sel = project::selection(&args.services, &target)?;
    let hierarchy = Hierarchy::detect().context("cannot find the cgroup hierarchy")?;
    let host_memory = host_memory();
    let mut before: HashMap<String, Sample> = HashMap::new();
    let stdout = std::io::stdout();
    loop {
        let st = project::state(&target.name)?;
        let filter = Filter {
            services: sel.services.clone(),
            index: None,
            oneoff: true,
        };
        let containers: Vec<&ContainerRecord> = filter
            .select(&st)
            .into_iter()
            .filter(|c| args.all || c.status.is_active())
            .collect();
        let first = before.is_empty();
        let mut now: HashMap<String, Sample> = HashMap::new();
        for c in &containers {
            if let Some(s) = sample(&hierarchy, &target.name, c) {
                now.insert(c.id.clone(), s);
            }
        }
        if first && !now.is_empty() {
            // CPU % needs two readings.
            std::thread::sleep(INTERVAL / 2);
            before = now;
            continue;
        }
        let rows: Vec<serde_json::Value> = containers
            .iter()
            .map(|c| {
                row(
                    c,
                    before.get(&c.id),
                    now.get(&c.id),
                    host_memory,
                    args.no_trunc,
                )
            })
            .collect();
        let text = render(&args.format, &rows)?;
        let mut out = stdout.lock();
        if !args.no_stream {
            // Redraw in place, as docker does on a terminal.
            write!(out, "\x1b[2J\x1b[H")?;
        }
        write!(out, "{text}")?;
        out.flush()?;
        if args.no_stream {
            return Ok(0);
        }
        before = now;
        std::thread::sleep(INTERVAL);
    }
}

fn sample(hierarchy: &Hierarchy, project: &str, c: &ContainerRecord) -> Option<Sample> {
    let path = c.cgroup_path(project);
    let cgroup = Cgroup::open(hierarchy, &path).ok()?;
    let stats = cgroup.stats().ok()?;
    let net = c.pid.and_then(net_bytes).unwrap_or((0, 0));
    Some(Sample {
        at: Instant::now(),
        stats,
        net,
    })
}

/// Bytes received and sent on every interface but `lo`, from the process's network namespace.
fn net_bytes(pid: i32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    Some(parse_net_dev(&text))
}

fn parse_net_dev(text: &str) -> (u64, u64) {
    let (mut rx, mut tx) = (0, 0);
    for line in text.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let fields: Vec<u64> = counters
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        if fields.len() >= 9 {
            rx += fields[0];
            tx += fields[8];
        }
    }
    (rx, tx)
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// One container's row, docker's field names and formatting.
fn row(
    c: &ContainerRecord,
    before: Option<&Sample>,
    now: Option<&Sample>,
    host_memory: u64,
    no_trunc: bool,
) -> serde_json::Value {
    let id = if no_trunc {
        c.id.clone()
    } else {
        c.id.chars().take(12).collect()
    };
    let (cpu, mem_usage, mem_perc, net, block, pids) = match now {
        None => (
            "0.00%".to_string(),
            "0B / 0B".to_string(),
            "0.00%".to_string(),
            "0B / 0B".to_string(),
            "0B / 0B".to_string(),
            "0".to_string(),
        ),
        Some(now) => {
            let s = &now.stats;
            let cpu = match (before, s.cpu_usage_ns) {
                (Some(b), Some(ns)) => {
                    let used = ns.saturating_sub(b.stats.cpu_usage_ns.unwrap_or(ns)) as f64;
                    let wall = now.at.duration_since(b.at).as_nanos().max(1) as f64;
                    used / wall * 100.0
                }
                _ => 0.0,
            };
            let usage = s
                .memory_usage
                .unwrap_or(0)
                .saturating_sub(s.memory_inactive_file.unwrap_or(0));
            let limit = s
                .memory_limit
                .filter(|&l| host_memory == 0 || l < host_memory)
                .unwrap_or(host_memory);
            let mem_perc = if limit > 0 {
                usage as f64 / limit as f64 * 100.0
            } else {
                0.0
            };
            (
                format!("{cpu:.2}%"),
                format!("{} / {}", binary_size(usage), binary_size(limit)),
                format!("{mem_perc:.2}%"),
                format!("{} / {}", decimal_size(now.net.0), decimal_size(now.net.1)),
                format!(
                    "{} / {}",
                    decimal_size(s.io_read.unwrap_or(0)),
                    decimal_size(s.io_write.unwrap_or(0))
                ),
                s.pids_current.unwrap_or(0).to_string(),
            )
        }
    };
    serde_json::json!({
        "BlockIO": block,
        "CPUPerc": cpu,
        "Container": id,
        "ID": id,
        "MemPerc": mem_perc,
        "MemUsage": mem_usage,
        "Name": c.name,
        "NetIO": net,
        "PIDs": pids,
    })
}

fn render(format: &str, rows: &[serde_json::Value]) -> Result<String> {
    match format {
        "table" | "" => super::template::render(
            "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}",
            rows,
            &HEADERS,
        ),
        "json" => super::template::render("{{json .}}", rows, &HEADERS),
        template => super::template::render(template, rows, &HEADERS),
    }
}

const HEADERS: [(&str, &str); 9] = [
    ("ID", "CONTAINER ID"),
    ("Container", "CONTAINER"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

/// docker's `units.BytesSize`: powers of 1024, four significant digits (`1.465MiB`).
fn binary_size(bytes: u64) -> String {
    scaled_size(
        bytes,
        1024.0,
        &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"],
        4,
    )
}

/// docker's `units.HumanSizeWithPrecision(size, 3)`: powers of 1000 (`1.05kB`).
fn decimal_size(bytes: u64) -> String {
    scaled_size(bytes, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB", "EB"], 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_prints_them() {
        assert_eq!(binary_size(0), "0B");
        assert_eq!(binary_size(1536), "1.5KiB");
        assert_eq!(binary_size(1_536_000), "1.465MiB");
        assert_eq!(binary_size(25_165_824_000), "23.44GiB");
        assert_eq!(decimal_size(648), "648B");
        assert_eq!(decimal_size(1050), "1.05kB");
        assert_eq!(decimal_size(12_345_678), "12.3MB");
    }

    #[test]
    fn net_dev_sums_all_but_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:  100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  eth0: 1000      10    0    0    0     0          0         0      500       5    0    0    0     0       0          0\n  eth1:   24       1    0    0    0     0          0         0       12       1    0    0    0     0       0          0\n";
        assert_eq!(parse_net_dev(text), (1024, 512));
    }
}
