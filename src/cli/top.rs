//! `rcompose top`: the processes of the running containers, as docker compose shows them
//! (docker runs `ps -ef` on the host and keeps the container's processes: host PIDs, host
//! user names).

use anyhow::{Context, Result};
use std::fs;
use std::time::{SystemTime, UNIX_EPOCH};

use super::logs::Filter;
use super::project;
use super::Global;
use crate::runtime::cgroups::{Cgroup, Hierarchy};

#[derive(Debug, clap::Args)]
pub struct TopArgs {
    pub services: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TopError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {reason}")]
    Parse { path: String, reason: &'static str },
}

const TITLES: [&str; 10] = [
    "SERVICE", "#", "UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD",
];

pub fn run(global: &Global, args: TopArgs) -> Result<i32> {
    let target = project::target(global)?;
    let sel = project::selection(&args.services, &target)?;
    let st = project::state(&target.name)?;
    let filter = Filter {
        services: sel.services,
        index: None,
        oneoff: true,
    };
    let running: Vec<_> = filter
        .select(&st)
        .into_iter()
        .filter(|c| c.status.is_active())
        .collect();
    if running.is_empty() {
        return Ok(0);
    }
    let hierarchy = Hierarchy::detect().context("cannot find the cgroup hierarchy")?;
    let clock = Clock::read()?;
    let mut rows = vec![TITLES.iter().map(|t| t.to_string()).collect::<Vec<_>>()];
    for c in running {
        let path = c.cgroup_path(&target.name);
        // A container that stopped meanwhile has no cgroup left: it has no processes.
        let Ok(cgroup) = Cgroup::open(&hierarchy, &path) else {
            continue;
        };
        let pids = cgroup
            .pids()
            .with_context(|| format!("cannot list the processes of container {}", c.name))?;
        for pid in pids {
            // A process may exit between the listing and the read: it is not shown.
            if let Ok(p) = Process::read(pid) {
                let mut row = vec![c.service.clone(), c.number.to_string()];
                row.extend(p.columns(&clock));
                rows.push(row);
            }
        }
    }
    if rows.len() > 1 {
        print!("{}", tabwriter(&rows));
    }
    Ok(0)
}

/// What converting `/proc` times needs: clock ticks per second, boot time, now.
struct Clock {
    hz: u64,
    boot: u64,
    now: u64,
}

impl Clock {
    fn read() -> Result<Clock, TopError> {
        // SAFETY: sysconf has no preconditions.
        let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
            .ok()
            .filter(|&h| h > 0)
            .unwrap_or(100);
        let stat = read("/proc/stat")?;
        let boot = stat
            .lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or(TopError::Parse {
                path: "/proc/stat".into(),
                reason: "no btime line",
            })?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        Ok(Clock { hz, boot, now })
    }
}

/// One process, from `/proc/<pid>/{stat,status,cmdline}`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Process {
    uid: u32,
    pid: i32,
    ppid: i32,
    tty: u32,
    /// utime + stime, in clock ticks.
    cpu_ticks: u64,
    /// Since boot, in clock ticks.
    start_ticks: u64,
    comm: String,
    args: Vec<String>,
}

impl Process {
    fn read(pid: i32) -> Result<Process, TopError> {
        let stat_path = format!("/proc/{pid}/stat");
        let mut p = parse_stat(&read(&stat_path)?).ok_or(TopError::Parse {
            path: stat_path,
            reason: "unexpected layout",
        })?;
        let status_path = format!("/proc/{pid}/status");
        p.uid = effective_uid(&read(&status_path)?).ok_or(TopError::Parse {
            path: status_path,
            reason: "no Uid line",
        })?;
        let cmdline_path = format!("/proc/{pid}/cmdline");
        let cmdline = fs::read(&cmdline_path).map_err(|source| TopError::Read {
            path: cmdline_path,
            source,
        })?;
        p.args = cmdline
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        Ok(p)
    }

    /// UID PID PPID C STIME TTY TIME CMD, as `ps -ef` prints them.
    fn columns(&self, clock: &Clock) -> Vec<String> {
        let cpu_secs = self.cpu_ticks / clock.hz;
        let started = clock.boot + self.start_ticks / clock.hz;
        let elapsed = clock.now.saturating_sub(started);
        // ps's C: CPU use over the process's life, in percent, capped at 99.
        let c = (self.cpu_ticks * 100 / clock.hz)
            .checked_div(elapsed)
            .unwrap_or(0)
            .min(99);
        let cmd = if self.args.is_empty() {
            format!("[{}]", self.comm)
        } else {
            self.args.join(" ")
        };
        vec![
            user_name(self.uid),
            self.pid.to_string(),
            self.ppid.to_string(),
            c.to_string(),
            stime(started, clock.now),
            tty_name(self.tty),
            cpu_time(cpu_secs),
            cmd,
        ]
    }
}

fn read(path: &str) -> Result<String, TopError> {
    fs::read_to_string(path).map_err(|source| TopError::Read {
        path: path.into(),
        source,
    })
}

/// `pid (comm) state ppid pgrp session tty_nr ... utime stime ... starttime ...`; the command
/// name may hold spaces and parentheses, so the fields start after the last `)`.
fn parse_stat(text: &str) -> Option<Process> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let comm = text.get(open + 1..close)?.to_string();
    let f: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // f[0] is field 3 (state) of proc(5).
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Process {
        uid: 0,
        pid,
        ppid: i32::try_from(field(4)?).ok()?,
        tty: u32::try_from(field(7)?).ok()?,
        cpu_ticks: field(14)? + field(15)?,
        start_ticks: field(22)?,
        comm,
        args: Vec::new(),
    })
}

/// `Uid:\treal\teffective\tsaved\tfs`: ps -ef shows the effective user.
fn effective_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// The terminal from `tty_nr` (major in bits 8-15, minor in bits 0-7 and 20-31), named as ps
/// names the common ones.
fn tty_name(tty_nr: u32) -> String {
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        0 => "?".into(),
        136..=143 => format!("pts/{}", minor + (major - 136) * 256),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        _ => format!("{major}:{minor}"),
    }
}

/// `[DD-]HH:MM:SS` of CPU time.
fn cpu_time(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// ps's STIME: `HH:MM` within the last day, `MonDD` within the year, else the year.
fn stime(started: u64, now: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let tm = super::events::local_tm(started);
    if now.saturating_sub(started) < 86_400 {
        format!("{:02}:{:02}", tm.tm_hour, tm.tm_min)
    } else if super::events::local_tm(now).tm_year == tm.tm_year {
        let month = usize::try_from(tm.tm_mon).ok().and_then(|m| MONTHS.get(m));
        format!("{}{:02}", month.unwrap_or(&"???"), tm.tm_mday)
    } else {
        (i64::from(tm.tm_year) + 1900).to_string()
    }
}

/// Go's `tabwriter.NewWriter(out, 4, 1, 2, ' ', 0)` as docker compose uses it: each column
/// but the last as wide as its widest cell plus two, at least four.
fn tabwriter(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols.saturating_sub(1))
        .map(|i| {
            let widest = rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0);
            (widest + 2).max(4)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            match widths.get(i) {
                Some(w) if i + 1 < row.len() => super::push_padded(&mut out, cell, *w),
                _ => out.push_str(cell),
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let text = "4242 (my (odd) cmd) S 4200 4242 4242 34817 4242 4194560 100 0 0 0 \
                    250 50 0 0 20 0 1 0 123456 1000000 200 18446744073709551615";
        let p = parse_stat(text).unwrap();
        assert_eq!(p.pid, 4242);
        assert_eq!(p.comm, "my (odd) cmd");
        assert_eq!(p.ppid, 4200);
        assert_eq!(p.tty, 34817);
        assert_eq!(p.cpu_ticks, 300);
        assert_eq!(p.start_ticks, 123456);
        assert!(parse_stat("4242 (cut").is_none());
        assert!(parse_stat("4242 (x) S 1 2").is_none());
    }

    #[test]
    fn uid_tty_and_times_as_ps_shows_them() {
        assert_eq!(
            effective_uid("Name:\tsh\nUid:\t1000\t0\t0\t0\nGid:\t0\n"),
            Some(0)
        );
        assert_eq!(effective_uid("Name:\tsh\n"), None);
        assert_eq!(tty_name(0), "?");
        assert_eq!(tty_name(34817), "pts/1");
        assert_eq!(tty_name((4 << 8) | 2), "tty2");
        assert_eq!(cpu_time(59), "00:00:59");
        assert_eq!(cpu_time(3 * 3600 + 62), "03:01:02");
        assert_eq!(cpu_time(2 * 86_400 + 5), "2-00:00:05");
        assert_eq!(user_name(0), "root");
        assert_eq!(user_name(4_000_000_000), "4000000000");
    }

    #[test]
    fn stime_is_a_clock_time_within_a_day() {
        let now = 1_795_341_600;
        let recent = stime(now - 60, now);
        assert_eq!(recent.len(), 5, "{recent}");
        assert_eq!(recent.as_bytes()[2], b':');
        let old = stime(now - 400 * 86_400, now);
        assert!(old.parse::<u32>().is_ok_and(|y| y >= 2024), "{old}");
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id() as i32;
        let p = Process::read(pid).unwrap();
        assert_eq!(p.pid, pid);
        // SAFETY: getppid and geteuid have no preconditions.
        assert_eq!(p.ppid, unsafe { libc::getppid() });
        assert_eq!(p.uid, unsafe { libc::geteuid() });
        assert!(!p.args.is_empty());
        let cols = p.columns(&Clock::read().unwrap());
        assert_eq!(cols.len(), TITLES.len() - 2);
        assert_eq!(cols[1], pid.to_string());
        assert!(cols[7].contains(&p.args[0]), "{cols:?}");
        assert!(matches!(
            Process::read(i32::MAX),
            Err(TopError::Read { .. })
        ));
    }

    #[test]
    fn tabwriter_pads_like_go() {
        let rows = vec![
            vec!["SERVICE".into(), "#".into(), "CMD".into()],
            vec!["web".into(), "1".into(), "sleep 100".into()],
        ];
        assert_eq!(
            tabwriter(&rows),
            "SERVICE  #   CMD\nweb      1   sleep 100\n"
        );
    }
}
