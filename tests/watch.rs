//! `rcompose watch` with real containers from the test bed (root): changes under a watched path
//! reach the running container (sync) or restart it, a burst is one batch, ignores hold, and a
//! symbolic link in the container never leads a write out of it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{pipe_lines, rcompose, stderr, Project, State};

const LOOP: &str = r#"sh -c 'trap "exit 0" TERM; while true; do sleep 0.1; done'"#;

fn project(test: &str, compose: &str) -> Option<Project> {
    let p = Project::new(test, &format!("wt{test}"), compose)?;
    std::fs::create_dir(p.dir.path().join("src")).expect("src dir");
    Some(p)
}

impl Project {
    fn src(&self, rel: &str) -> PathBuf {
        self.dir.path().join("src").join(rel)
    }

    /// The running container's (pid, started_at).
    fn running(&self) -> (i64, String) {
        let s = self.state_json();
        let c = &s["containers"][0];
        (c["pid"].as_i64().unwrap_or(0), c["started_at"].to_string())
    }

    /// A path inside the running container, seen from the host.
    fn in_container(&self, path: &str) -> PathBuf {
        let (pid, _) = self.running();
        PathBuf::from(format!("/proc/{pid}/root{path}"))
    }

    /// `rcompose watch`, its output collected line by line; ready once it says so.
    fn watch(&self) -> Watch {
        let mut child = self
            .cmd(&["watch"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rcompose watch");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        pipe_lines(&mut child, move |line| {
            sink.lock().unwrap().push(line);
            true
        });
        let w = Watch { child, lines };
        w.wait_line("Watch enabled", Duration::from_secs(60));
        w
    }
}

struct Watch {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Watch {
    fn output(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn wait_line(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.output().iter().any(|l| l.contains(needle)) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the watch output:\n{}",
                self.output().join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Ctrl-C: watch ends cleanly with 0.
    fn interrupt(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert_eq!(status.code(), Some(0), "{}", self.output().join("\n"));
                break;
            }
            assert!(Instant::now() < deadline, "watch did not end on Ctrl-C");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(self.output().iter().any(|l| l == "Watch disabled"));
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls until `f` holds, at most `within` from `since`; returns how long it took.
fn within(what: &str, since: Instant, within: Duration, f: impl Fn() -> bool) -> Duration {
    loop {
        if f() {
            return since.elapsed();
        }
        assert!(since.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

#[test]
fn edits_additions_and_deletions_are_synced_and_ignores_hold() {
    let compose = format!(
        r#"
services:
  app:
    image: busybox
    command: {LOOP}
    develop:
      watch:
        - path: ./src
          target: /app
          action: sync
          initial_sync: true
          ignore: ["*.log", "cache/"]
"#
    );
    let Some(p) = project("sync", &compose) else {
        return;
    };
    std::fs::write(p.src("main.txt"), "v1").unwrap();
    std::fs::write(p.src("old.txt"), "old").unwrap();
    let w = p.watch();
    // initial_sync copied the tree before watching.
    assert_eq!(
        read(&p.in_container("/app/main.txt")).as_deref(),
        Some("v1")
    );

    let second = Duration::from_secs(1);
    let t = Instant::now();
    std::fs::write(p.src("main.txt"), "v2").unwrap();
    within("the edit", t, second, || {
        read(&p.in_container("/app/main.txt")).as_deref() == Some("v2")
    });
    let t = Instant::now();
    std::fs::create_dir_all(p.src("pkg/sub")).unwrap();
    std::fs::write(p.src("pkg/sub/new.txt"), "new").unwrap();
    within("the addition", t, second, || {
        read(&p.in_container("/app/pkg/sub/new.txt")).as_deref() == Some("new")
    });
    let t = Instant::now();
    std::fs::remove_file(p.src("old.txt")).unwrap();
    within("the deletion", t, second, || {
        !p.in_container("/app/old.txt").exists()
    });
    // Ignored files (the rule's and an editor's) are not synced; a marker written after them
    // shows their batch was handled.
    std::fs::write(p.src("debug.log"), "x").unwrap();
    std::fs::create_dir(p.src("cache")).unwrap();
    std::fs::write(p.src("cache/blob"), "x").unwrap();
    std::fs::write(p.src(".main.txt.swp"), "x").unwrap();
    std::fs::write(p.src("marker"), "m").unwrap();
    within("the marker", Instant::now(), second, || {
        p.in_container("/app/marker").exists()
    });
    for ignored in ["/app/debug.log", "/app/cache", "/app/.main.txt.swp"] {
        assert!(!p.in_container(ignored).exists(), "{ignored} was synced");
    }
    // The container was never restarted by syncing.
    assert_eq!(p.state_json()["containers"][0]["restart_count"], 0);
    assert!(w
        .output()
        .iter()
        .any(|l| l.starts_with("Syncing service \"app\" after")));
    w.interrupt();
}

#[test]
fn restart_action_restarts_the_container() {
    let compose = format!(
        r#"
services:
  app:
    image: busybox
    command: {LOOP}
    develop:
      watch:
        - path: ./src/app.conf
          action: restart
"#
    );
    let Some(p) = project("restart", &compose) else {
        return;
    };
    std::fs::write(p.src("app.conf"), "a=1").unwrap();
    let w = p.watch();
    let before = p.running();
    let t = Instant::now();
    std::fs::write(p.src("app.conf"), "a=2").unwrap();
    within("the restart", t, Duration::from_secs(1), || {
        let now = p.running();
        now.0 != 0 && now.0 != before.0 && now.1 != before.1
    });
    w.wait_line(
        "Restarting service \"app\" after changes were detected",
        Duration::from_secs(5),
    );
    w.interrupt();
}

#[test]
fn a_burst_of_a_thousand_writes_is_batched() {
    let compose = format!(
        r#"
services:
  app:
    image: busybox
    command: {LOOP}
    develop:
      watch:
        - path: ./src
          target: /app
          action: sync
"#
    );
    let Some(p) = project("burst", &compose) else {
        return;
    };
    let w = p.watch();
    let t = Instant::now();
    for i in 0..1000 {
        std::fs::write(p.src(&format!("f{i:04}.txt")), format!("{i}")).unwrap();
    }
    within("the last file", t, Duration::from_secs(5), || {
        read(&p.in_container("/app/f0999.txt")).as_deref() == Some("999")
    });
    // Nothing more arrives after the batch (twice the quiet period, then some).
    std::thread::sleep(Duration::from_millis(500));
    // One batch when the writer never pauses for the quiet period (150 ms); a loaded machine
    // may pause it, so a few batches are allowed, never one per file. A file whose events
    // straddle two batches counts in both.
    let counts: Vec<usize> = w
        .output()
        .iter()
        .filter_map(|l| l.strip_prefix("Syncing service \"app\" after "))
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect();
    let total: usize = counts.iter().sum();
    assert!(
        !counts.is_empty() && counts.len() <= 3 && (1000..1000 + counts.len()).contains(&total),
        "{counts:?}:\n{}",
        w.output().join("\n")
    );
    let in_container = std::fs::read_dir(p.in_container("/app")).unwrap().count();
    assert_eq!(in_container, 1000);
    w.interrupt();
}

#[test]
fn a_symlink_in_the_container_is_not_followed_out_of_it() {
    let compose = format!(
        r#"
services:
  app:
    image: busybox
    command: {LOOP}
    develop:
      watch:
        - path: ./src
          target: /app
          action: sync
"#
    );
    let Some(p) = project("link", &compose) else {
        return;
    };
    let host_dir = tempfile::tempdir().unwrap();
    let host = host_dir.path().to_string_lossy().into_owned();
    p.ok(&["up", "-d"]);
    // /app is a link to /, and /escape names a host directory.
    p.ok(&[
        "exec",
        "-T",
        "app",
        "sh",
        "-c",
        &format!("ln -s {host} /escape && ln -s / /app"),
    ]);
    let w = p.watch();
    let unique = format!("rcompose-watch-{}.txt", p.name);
    std::fs::create_dir(p.src("escape")).unwrap();
    std::fs::write(p.src("escape/pwned"), "x").unwrap();
    std::fs::write(p.src(&unique), "inside").unwrap();
    within("the sync", Instant::now(), Duration::from_secs(2), || {
        p.in_container(&format!("/{unique}")).exists()
    });
    // The link in the way was replaced by a directory of the container, not followed: the
    // host directory is untouched.
    within(
        "the escape dir",
        Instant::now(),
        Duration::from_secs(2),
        || p.in_container("/escape/pwned").exists(),
    );
    let escape = std::fs::symlink_metadata(p.in_container("/escape")).unwrap();
    assert!(escape.is_dir());
    assert_eq!(std::fs::read_dir(host_dir.path()).unwrap().count(), 0);
    assert!(!Path::new("/").join(&unique).exists());
    w.interrupt();
}

#[test]
fn a_project_without_develop_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("compose.yaml"),
        "services:\n  app:\n    image: busybox\n",
    )
    .unwrap();
    let state = State::new();
    let o = state
        .cmd(&[])
        .current_dir(dir.path())
        .args(["watch", "--no-up"])
        .output()
        .expect("run rcompose");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(
            "none of the selected services is configured for watch, consider setting a 'develop' section"
        ),
        "{}",
        stderr(&o)
    );
    let o = rcompose()
        .current_dir(dir.path())
        .args(["up", "--watch", "-d"])
        .output()
        .expect("run rcompose");
    assert!(
        stderr(&o).contains("--watch cannot be combined"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn rebuild_action_builds_the_image_again_and_recreates() {
    let compose = format!(
        r#"
services:
  app:
    build: ./src
    command: {LOOP}
    develop:
      watch:
        - path: ./src/version
          action: rebuild
"#
    );
    let Some(p) = project("rebuild", &compose) else {
        return;
    };
    std::fs::write(p.src("Dockerfile"), "FROM busybox\nCOPY version /version\n").unwrap();
    std::fs::write(p.src("version"), "1\n").unwrap();
    let w = p.watch();
    assert_eq!(read(&p.in_container("/version")).as_deref(), Some("1\n"));
    let t = Instant::now();
    std::fs::write(p.src("version"), "2\n").unwrap();
    // A new image, built from the changed context, in a new container.
    within("the rebuilt container", t, Duration::from_secs(60), || {
        read(&p.in_container("/version")).as_deref() == Some("2\n")
    });
    w.interrupt();
}
