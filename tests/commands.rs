//! `logs`, `top`, `wait`, `events` and `cp` with real containers from the test bed (root).

mod common;

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::{out, pipe_lines, stderr, stdout, Project};

fn project(test: &str, name: &str, compose: &str) -> Option<Project> {
    Project::new(test, &format!("cmd{name}"), compose)
}

impl Project {
    fn container_id(&self, service: &str, number: u32) -> String {
        let name = format!("{}-{service}-{number}", self.name);
        self.state_json()["containers"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == name.as_str()))
            .and_then(|c| c["id"].as_str())
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `args` until `f` accepts its output (the containers write asynchronously).
    fn eventually(&self, args: &[&str], what: &str, f: impl Fn(&Output) -> bool) -> Output {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let o = self.rc(args);
            if f(&o) {
                return o;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                out(&o)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A long-running rcompose whose output lines arrive on a channel.
    fn spawn(&self, args: &[&str]) -> Running {
        let mut child = self
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rcompose");
        let (tx, lines) = mpsc::channel();
        pipe_lines(&mut child, move |line| tx.send(line).is_ok());
        Running { child, lines }
    }
}

/// A spawned rcompose, killed (by its own handle) if the test ends first.
struct Running {
    child: Child,
    lines: Receiver<String>,
}

impl Running {
    /// The next line `f` accepts, skipping others; every line seen is kept in `seen`.
    fn expect(&self, what: &str, seen: &mut Vec<String>, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    seen.push(line.clone());
                    if f(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("timed out waiting for {what}; seen:\n{}", seen.join("\n")),
            }
        }
    }

    /// Waits for the process to end by itself.
    fn exits_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn logs_tail_since_timestamps_and_prefix() {
    let Some(p) = project(
        "logs_tail_since_timestamps_and_prefix",
        "logs",
        r#"
services:
  talk:
    image: busybox
    command: sh -c 'for i in 1 2 3 4 5; do echo line $$i; done; sleep 0.5; echo oops >&2; exec sleep 1000'
    stop_signal: SIGKILL
"#,
    ) else {
        return;
    };
    p.ok(&["up", "-d"]);
    let all = p.eventually(&["logs", "--no-color"], "all lines", |o| {
        stdout(o).contains("line 5") && stderr(o).contains("oops")
    });
    let want: String = (1..=5).map(|i| format!("talk-1  | line {i}\n")).collect();
    assert_eq!(stdout(&all), want, "{}", out(&all));
    // Container stderr goes to stderr, as docker compose prints it.
    assert_eq!(stderr(&all), "talk-1  | oops\n");

    // --tail counts records of both streams from the end.
    let o = p.ok(&["logs", "--no-color", "--tail", "3"]);
    assert_eq!(
        stdout(&o),
        "talk-1  | line 4\ntalk-1  | line 5\n",
        "{}",
        out(&o)
    );
    let o = p.ok(&["logs", "--no-log-prefix", "-n", "2"]);
    assert_eq!(stdout(&o), "line 5\n", "{}", out(&o));

    // -t puts the record's RFC3339 time after the prefix.
    let o = p.ok(&["logs", "--no-log-prefix", "-t", "--tail", "2"]);
    let line = stdout(&o);
    let (stamp, text) = line.split_once(' ').expect("a timestamp");
    assert_eq!(text, "line 5\n");
    assert!(
        stamp.len() == 30 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "{stamp}"
    );

    // --since and --until select by time.
    let o = p.ok(&["logs", "--no-color", "--since", "1h"]);
    assert_eq!(stdout(&o), want);
    let o = p.ok(&["logs", "--no-color", "--until", "1h"]);
    assert_eq!(stdout(&o), "");
    // The lines of one write share a time; the later stderr line has its own.
    let o = p.ok(&["logs", "--no-log-prefix", "-t", "--tail", "1"]);
    let oops = stderr(&o);
    let (oops_stamp, text) = oops.split_once(' ').expect("a timestamp");
    assert_eq!(text, "oops\n");
    let o = p.ok(&["logs", "--no-color", "--since", oops_stamp]);
    assert_eq!(stdout(&o), "", "{}", out(&o));
    assert_eq!(stderr(&o), "talk-1  | oops\n", "{}", out(&o));
    let o = p.rc(&["logs", "--since", "yesterday"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(stderr(&o).contains("yesterday"), "{}", out(&o));

    // A service that does not exist is an error; a project without containers prints nothing.
    let o = p.rc(&["logs", "nosuch"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    p.ok(&["down", "-t", "0"]);
    let o = p.ok(&["logs"]);
    assert_eq!(stdout(&o), "");
}

#[test]
fn logs_follow_sees_restarts_and_new_replicas_until_down() {
    let Some(p) = project(
        "logs_follow_sees_restarts_and_new_replicas_until_down",
        "follow",
        r#"
services:
  web:
    image: busybox
    command: sh -c 'echo started; exec sleep 1000'
    stop_signal: SIGKILL
"#,
    ) else {
        return;
    };
    p.ok(&["up", "-d"]);
    p.eventually(&["logs"], "the first output", |o| {
        stdout(o).contains("started")
    });
    let mut follow = p.spawn(&["logs", "-f", "--no-color"]);
    let mut seen = Vec::new();
    follow.expect("the stored line", &mut seen, |l| l == "web-1  | started");

    // A restart writes to the same log file: its new line arrives.
    p.ok(&["restart", "web"]);
    follow.expect("the line after the restart", &mut seen, |l| {
        l == "web-1  | started"
    });

    // A replica created after `logs -f` started is followed too.
    p.ok(&["up", "-d", "--scale", "web=2"]);
    follow.expect("the new replica's line", &mut seen, |l| {
        l == "web-2  | started"
    });

    // `down` ends the supervisor, and with it `logs -f`.
    p.ok(&["down", "-t", "0"]);
    assert!(
        follow.exits_within(Duration::from_secs(10)),
        "logs -f still runs after down; seen:\n{}",
        seen.join("\n")
    );
    assert_eq!(follow.child.wait().ok().and_then(|s| s.code()), Some(0));
}

#[test]
fn top_shows_the_container_processes() {
    let Some(p) = project(
        "top_shows_the_container_processes",
        "top",
        r#"
services:
  sleeper:
    image: busybox
    command: sleep 1234
    stop_signal: SIGKILL
"#,
    ) else {
        return;
    };
    p.ok(&["up", "-d"]);
    let o = p.eventually(&["top"], "the process", |o| {
        stdout(o).contains("sleep 1234")
    });
    let text = stdout(&o);
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["SERVICE", "#", "UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
        "{text}"
    );
    let row = lines
        .find(|l| l.ends_with("sleep 1234"))
        .unwrap_or_else(|| panic!("no row for the process:\n{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..3], ["sleeper", "1", "root"], "{row}");
    // A host PID, as docker shows it: it is the container's sleep in this PID namespace.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", cells[3])).unwrap_or_default();
    assert_eq!(cmdline, b"sleep\x001234\x00", "{row}");
    assert_eq!(cells[7], "?", "{row}");

    // Only running containers are shown.
    p.ok(&["stop", "-t", "0"]);
    assert_eq!(stdout(&p.ok(&["top"])), "");
}

#[test]
fn wait_returns_the_exit_code_and_can_take_the_project_down() {
    let Some(p) = project(
        "wait_returns_the_exit_code_and_can_take_the_project_down",
        "wait",
        r#"
services:
  job:
    image: busybox
    command: sh -c 'sleep 1; exit 7'
  side:
    image: busybox
    command: sleep 1000
    stop_signal: SIGKILL
"#,
    ) else {
        return;
    };
    let o = p.rc(&["wait"]);
    assert_ne!(
        o.status.code(),
        Some(0),
        "wait needs a service:\n{}",
        out(&o)
    );
    p.ok(&["up", "-d"]);
    let id = p.container_id("job", 1);
    assert!(!id.is_empty());
    let o = p.rc(&["wait", "job"]);
    assert_eq!(o.status.code(), Some(7), "{}", out(&o));
    assert_eq!(
        stdout(&o),
        format!("container \"{id}\" exited with status code 7\n")
    );
    // Already exited: answered at once; --down-project then removes everything.
    let o = p.rc(&["wait", "--down-project", "job"]);
    assert_eq!(o.status.code(), Some(7), "{}", out(&o));
    assert_eq!(
        p.state_json(),
        serde_json::Value::Null,
        "the project is still up"
    );
    let o = p.rc(&["wait", "job"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(stderr(&o).contains("no containers"), "{}", out(&o));
}

#[test]
fn events_show_start_and_die_as_text_and_json() {
    let Some(p) = project(
        "events_show_start_and_die_as_text_and_json",
        "events",
        r#"
services:
  job:
    image: busybox
    command: sh -c 'sleep 1; exit 2'
"#,
    ) else {
        return;
    };
    // Watching first, as a user would: the events of `up` are all seen.
    let text = p.spawn(&["events"]);
    let json = p.spawn(&["events", "--json"]);
    std::thread::sleep(Duration::from_millis(300));
    p.ok(&["up", "-d"]);
    let id = p.container_id("job", 1);
    let name = format!("{}-job-1", p.name);
    let mut seen = Vec::new();
    let start = text.expect("a start event", &mut seen, |l| {
        l.contains(" container start ")
    });
    assert!(
        start.ends_with(&format!(
            "container start {id} (image=busybox, name={name})"
        )),
        "{start}"
    );
    // `2026-11-22 10:00:00.123456 container ...`
    assert_eq!(start.as_bytes()[10], b' ', "{start}");
    assert_eq!(start.as_bytes()[19], b'.', "{start}");
    let die = text.expect("a die event", &mut seen, |l| l.contains(" container die "));
    assert!(
        die.ends_with(&format!(
            "container die {id} (exitCode=2, image=busybox, name={name})"
        )),
        "{die}"
    );
    let mut seen = Vec::new();
    let line = json.expect("a json die event", &mut seen, |l| l.contains("\"die\""));
    let v: serde_json::Value = serde_json::from_str(&line).expect("json");
    assert_eq!(v["type"], "container");
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["service"], "job");
    assert_eq!(v["attributes"]["exitCode"], "2");
    assert_eq!(v["attributes"]["name"], name.as_str());
}

/// `cp` both ways with docker's destination rules; links in the container resolve inside it.
#[test]
fn cp_copies_both_ways_and_stays_inside_the_container() {
    let Some(p) = project(
        "cp_copies_both_ways_and_stays_inside_the_container",
        "cp",
        r#"
services:
  box:
    image: busybox
    init: true
    hostname: inside-box
    command:
      - sh
      - -c
      - mkdir -p /data/sub && echo inner > /data/sub/f && echo top > /data/t && ln -s /etc/shadow /data/link && ln -s / /escape && exec sleep 600
"#,
    ) else {
        return;
    };
    p.ok(&["up", "-d"]);
    let dir = p.dir.path();
    let ready = || {
        p.rc(&["exec", "-T", "box", "test", "-L", "/escape"])
            .status
            .success()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "the container never made its files"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A directory to a new host path; links are copied as links.
    p.ok(&["cp", "box:/data", "out"]);
    let read = |rel: &str| std::fs::read_to_string(dir.join(rel)).unwrap_or_default();
    assert_eq!(read("out/t"), "top\n");
    assert_eq!(read("out/sub/f"), "inner\n");
    assert_eq!(
        std::fs::read_link(dir.join("out/link")).expect("link"),
        Path::new("/etc/shadow")
    );
    // A file into an existing directory keeps its name; `dir/.` copies the contents.
    p.ok(&["cp", "box:/data/t", "."]);
    assert_eq!(read("t"), "top\n");
    std::fs::create_dir(dir.join("contents")).expect("dir");
    p.ok(&["cp", "box:/data/sub/.", "contents"]);
    assert_eq!(read("contents/f"), "inner\n");

    // Host to container: into a directory, and a directory to a new path.
    std::fs::write(dir.join("in.txt"), "from the host\n").expect("write");
    std::fs::create_dir(dir.join("tree")).expect("dir");
    std::fs::write(dir.join("tree/a"), "a\n").expect("write");
    p.ok(&["cp", "in.txt", "box:/data/"]);
    p.ok(&["cp", "tree", "box:/newdir"]);
    let o = p.ok(&["exec", "-T", "box", "cat", "/data/in.txt", "/newdir/a"]);
    assert_eq!(stdout(&o), "from the host\na\n");

    // `/escape -> /` resolves at the container's root, both ways.
    p.ok(&["cp", "box:/escape/etc/hostname", "h"]);
    assert_eq!(read("h"), "inside-box\n");
    let marker = format!("rcompose-cp-{}", p.name);
    p.ok(&["cp", "in.txt", &format!("box:/escape/tmp/{marker}")]);
    assert!(
        !Path::new("/tmp").join(&marker).exists(),
        "cp wrote on the host"
    );
    let o = p.ok(&["exec", "-T", "box", "cat", &format!("/tmp/{marker}")]);
    assert_eq!(stdout(&o), "from the host\n");

    // A directory onto a file is refused, both ways.
    let o = p.rc(&["cp", "tree", "box:/data/t"]);
    assert!(
        !o.status.success() && stderr(&o).contains("directory"),
        "{}",
        out(&o)
    );
    let o = p.rc(&["cp", "box:/data", "in.txt"]);
    assert!(
        !o.status.success() && stderr(&o).contains("directory"),
        "{}",
        out(&o)
    );
    assert_eq!(read("in.txt"), "from the host\n");

    // Bad input is named.
    let o = p.rc(&["cp", "nosuch:/x", "."]);
    assert!(
        !o.status.success() && stderr(&o).contains("nosuch"),
        "{}",
        out(&o)
    );
    let o = p.rc(&["cp", "box:/no/such/file", "."]);
    assert!(
        !o.status.success() && stderr(&o).contains("/no/such/file"),
        "{}",
        out(&o)
    );
    p.ok(&["stop", "-t", "0"]);
    let o = p.rc(&["cp", "box:/data", "again"]);
    assert!(
        !o.status.success() && stderr(&o).contains("not running"),
        "{}",
        out(&o)
    );
    p.ok(&["down", "-t", "0"]);
    p.assert_nothing_left();
}

/// `stats --no-stream`: CPU, memory against the limit, processes; `-a` adds stopped ones.
#[test]
fn stats_reports_cpu_memory_and_processes() {
    let Some(p) = project(
        "stats_reports_cpu_memory_and_processes",
        "stats",
        r#"
services:
  busy:
    image: busybox
    init: true
    mem_limit: 64m
    command: sh -c 'while true; do :; done'
  done:
    image: busybox
    command: "true"
"#,
    ) else {
        return;
    };
    p.ok(&["up", "-d", "--wait"]);
    let rows = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut full = vec!["stats", "--no-stream", "--format", "json"];
        full.extend_from_slice(args);
        stdout(&p.ok(&full))
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    };
    let running = rows(&[]);
    assert_eq!(running.len(), 1, "{running:?}");
    let busy = &running[0];
    assert_eq!(busy["Name"], format!("{}-busy-1", p.name));
    let cpu: f64 = busy["CPUPerc"]
        .as_str()
        .and_then(|c| c.trim_end_matches('%').parse().ok())
        .expect("CPU %");
    assert!(cpu > 20.0, "a busy loop at {cpu}%");
    assert!(
        busy["MemUsage"]
            .as_str()
            .is_some_and(|m| m.ends_with(" / 64MiB")),
        "{busy}"
    );
    assert_eq!(busy["PIDs"], "2", "init and the shell");
    assert!(busy["NetIO"].as_str().is_some_and(|n| n.contains(" / ")));
    assert_eq!(rows(&["-a"]).len(), 2);
    let table = stdout(&p.ok(&["stats", "--no-stream"]));
    assert!(
        table.starts_with("CONTAINER ID") && table.contains("MEM USAGE / LIMIT"),
        "{table}"
    );
    p.ok(&["down", "-t", "0"]);
    p.assert_nothing_left();
}
