//! `develop.watch`: watch host paths (inotify through `notify`), batch the changes, and keep the
//! running containers in step: sync files into them, restart them, exec a command in them, or
//! recreate them from a freshly pulled image.
//!
//! The pieces are pure where they can be: [`pattern`] (`.dockerignore` matching), [`rules`]
//! (which path concerns which service), [`debounce`] (a burst is one batch), [`plan`] (a batch
//! becomes per-service actions) and [`sync`] (safe writes through a container's root). The loop
//! here ties them to the filesystem; what needs the supervisor goes through a [`Backend`].

pub mod debounce;
pub mod pattern;
pub mod plan;
pub mod rules;
pub mod sync;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};

use crate::compose::model::ServiceHook;
use debounce::Debouncer;
use plan::ServicePlan;
use rules::Rule;
use sync::ContainerFs;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("none of the selected services is configured for watch, consider setting a 'develop' section")]
    NothingToWatch,
    #[error("service {service:?}: invalid watch rule for path {path:?}: {reason}")]
    Rule {
        service: String,
        path: String,
        reason: String,
    },
    #[error("invalid pattern {pattern:?}: {reason}")]
    Pattern { pattern: String, reason: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot sync {target} into the container: {source}")]
    Sync {
        target: String,
        source: std::io::Error,
    },
    #[error("cannot copy {source_path} from the container to {host}: {source}")]
    CopyOut {
        source_path: String,
        host: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot watch {path}: {source}")]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
    #[error("the file watcher failed: {0}")]
    Watcher(notify::Error),
    /// What the backend (the supervisor, the image store) reported.
    #[error("{0}")]
    Backend(String),
}

/// A running container that changes go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    /// Its first process on the host.
    pub pid: i32,
    /// Owner of synced files (`None`: root).
    pub owner: Option<(u32, u32)>,
}

/// What the watch loop asks of the project.
pub trait Backend {
    /// The running containers of `service`.
    fn containers(&mut self, service: &str) -> Result<Vec<Target>, WatchError>;
    /// Restarts the services' containers.
    fn restart(&mut self, services: &[String]) -> Result<(), WatchError>;
    /// Runs a `sync+exec` command in each running container of `service`.
    fn exec(&mut self, service: &str, hook: &ServiceHook) -> Result<(), WatchError>;
    /// Re-pulls the services' images and recreates their containers.
    fn rebuild(&mut self, services: &[String]) -> Result<(), WatchError>;
}

/// What the loop receives: file events, or the order to stop.
#[derive(Debug)]
pub enum Input {
    Fs(notify::Result<notify::Event>),
    Stop,
}

/// The watch loop's output (docker compose's watch messages).
pub type Log<'a> = &'a mut dyn FnMut(&str);

/// `initial_sync`: copies each such rule's tree into the service's running containers.
pub fn initial_sync(
    rules: &[Rule],
    backend: &mut dyn Backend,
    log: Log<'_>,
) -> Result<(), WatchError> {
    for rule in rules.iter().filter(|r| r.initial_sync && r.action.syncs()) {
        if !rule.path.exists() {
            continue;
        }
        let skip = |p: &Path| rule.matches(p).is_none();
        for target in backend.containers(&rule.service)? {
            let fs = ContainerFs::open(target.pid, target.owner)?;
            let n = fs.copy(&rule.path, &rule.target, &skip)?;
            log(&format!(
                "Initial sync of service {:?}: {n} files copied to {} in {}",
                rule.service, rule.target, target.name
            ));
        }
    }
    Ok(())
}

/// Watches the rules' paths until [`Input::Stop`] arrives on `rx` (`tx` is its sender, which
/// the file watcher also sends to). Errors of one batch are reported and watching goes on.
pub fn run(
    rules: &[Rule],
    backend: &mut dyn Backend,
    tx: Sender<Input>,
    rx: Receiver<Input>,
    log: Log<'_>,
) -> Result<(), WatchError> {
    let mut watcher = notify::recommended_watcher(move |res| {
        let _ = tx.send(Input::Fs(res));
    })
    .map_err(WatchError::Watcher)?;
    let mut watched = BTreeSet::new();
    for rule in rules {
        if !watched.insert(rule.path.clone()) {
            continue;
        }
        let mode = if rule.path.is_dir() {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        if !rule.path.exists() {
            log(&format!(
                "WARN path {} of service {:?} does not exist: it is not watched",
                rule.path.display(),
                rule.service
            ));
            continue;
        }
        watcher
            .watch(&rule.path, mode)
            .map_err(|source| WatchError::Watch {
                path: rule.path.clone(),
                source,
            })?;
    }
    log("Watch enabled");
    let mut debouncer = Debouncer::default();
    loop {
        let timeout = debouncer
            .deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(3600));
        match rx.recv_timeout(timeout) {
            Ok(Input::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            Ok(Input::Fs(Ok(event))) => {
                // Reads and closes change nothing.
                if matches!(event.kind, EventKind::Access(_)) {
                    continue;
                }
                let now = Instant::now();
                for path in event.paths {
                    debouncer.push(path, now);
                }
            }
            Ok(Input::Fs(Err(e))) => log(&format!("WARN file watcher: {e}")),
            Err(RecvTimeoutError::Timeout) => {}
        }
        if let Some(batch) = debouncer.take_ready(Instant::now()) {
            if batch.len() > 1000 {
                log("Large batch of file changes detected. If you just switched branches, this is expected.");
            }
            for p in plan::plan(&batch, rules) {
                if let Err(e) = apply(&p, rules, backend, log) {
                    log(&format!("WARN Error handling changed files: {e}"));
                }
            }
        }
    }
    log("Watch disabled");
    Ok(())
}

/// Carries out one service's plan: rebuild, sync, restart, exec.
pub fn apply(
    p: &ServicePlan,
    rules: &[Rule],
    backend: &mut dyn Backend,
    log: Log<'_>,
) -> Result<(), WatchError> {
    let services = std::slice::from_ref(&p.service);
    if p.rebuild {
        log(&format!(
            "Rebuilding service(s) [{:?}] after changes were detected...",
            p.service
        ));
        backend.rebuild(services)?;
        log(&format!(
            "service(s) [{:?}] successfully rebuilt",
            p.service
        ));
    }
    if !p.sync.is_empty() {
        log(&format!(
            "Syncing service {:?} after {} changes were detected",
            p.service,
            p.sync.len()
        ));
        for target in backend.containers(&p.service)? {
            sync_into(&target, p, rules)?;
        }
    }
    if p.restart {
        log(&format!(
            "Restarting service {:?} after changes were detected",
            p.service
        ));
        backend.restart(services)?;
        log(&format!("service(s) [{:?}] restarted", p.service));
    }
    for &i in &p.exec {
        if let Some(rule) = rules.get(i) {
            backend.exec(&p.service, &rule.exec)?;
        }
    }
    Ok(())
}

/// Applies a plan's sync items to one container: existing host paths are copied (a directory
/// with what is inside it), missing ones removed. A path that fails does not stop the others;
/// the first failure is returned.
fn sync_into(target: &Target, p: &ServicePlan, rules: &[Rule]) -> Result<(), WatchError> {
    let fs = ContainerFs::open(target.pid, target.owner)?;
    let mut copied_dirs: Vec<&Path> = Vec::new();
    let mut first_error = None;
    for item in &p.sync {
        let host = item.mapping.host.as_path();
        // Items are sorted: a directory comes before what is inside it, which its copy covers.
        if copied_dirs.iter().any(|d| host.starts_with(d)) {
            continue;
        }
        let Some(rule) = rules.get(item.rule) else {
            continue;
        };
        let result = match std::fs::symlink_metadata(host) {
            Ok(meta) => {
                let skip = |p: &Path| rule.matches(p).is_none();
                let copied = fs.copy(host, &item.mapping.container, &skip);
                if meta.is_dir() {
                    copied_dirs.push(host);
                }
                copied.map(drop)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs.remove(&item.mapping.container)
            }
            Err(source) => Err(WatchError::Read {
                path: host.to_path_buf(),
                source,
            }),
        };
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::model::{ServiceConfig, Trigger};

    /// Records what the loop asks for; it has no running containers (syncing into a real one
    /// is covered by `sync`'s tests and tests/watch.rs).
    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
        fail_restart: bool,
    }

    impl Backend for Recorder {
        fn containers(&mut self, service: &str) -> Result<Vec<Target>, WatchError> {
            self.calls.push(format!("containers {service}"));
            Ok(Vec::new())
        }
        fn restart(&mut self, services: &[String]) -> Result<(), WatchError> {
            self.calls.push(format!("restart {services:?}"));
            if self.fail_restart {
                return Err(WatchError::Backend("service \"web\" is not running".into()));
            }
            Ok(())
        }
        fn exec(&mut self, service: &str, hook: &ServiceHook) -> Result<(), WatchError> {
            self.calls.push(format!(
                "exec {service} {:?}",
                hook.command.clone().unwrap_or_default()
            ));
            Ok(())
        }
        fn rebuild(&mut self, services: &[String]) -> Result<(), WatchError> {
            self.calls.push(format!("rebuild {services:?}"));
            Ok(())
        }
    }

    fn rule(dir: &Path, path: &str, action: &str, target: &str) -> Rule {
        let t = Trigger {
            path: path.into(),
            action: action.into(),
            target: target.into(),
            exec: ServiceHook {
                command: Some(vec!["reload".into()]),
                ..Default::default()
            },
            ..Default::default()
        };
        let svc = ServiceConfig {
            name: "web".into(),
            ..Default::default()
        };
        Rule::compile(&svc, &t, dir).unwrap()
    }

    #[test]
    fn apply_runs_actions_in_docker_compose_order_and_reports_them() {
        let rules = vec![
            rule(Path::new("/p"), "src", "sync+exec", "/app"),
            rule(Path::new("/p"), "conf", "restart", ""),
        ];
        let batch = vec![PathBuf::from("/p/src/a"), PathBuf::from("/p/conf/c")];
        let plans = plan::plan(&batch, &rules);
        let mut b = Recorder::default();
        let mut lines = Vec::new();
        apply(&plans[0], &rules, &mut b, &mut |l: &str| {
            lines.push(l.to_string())
        })
        .unwrap();
        assert_eq!(
            b.calls,
            [
                "containers web",
                "restart [\"web\"]",
                "exec web [\"reload\"]"
            ]
        );
        assert_eq!(
            lines,
            [
                "Syncing service \"web\" after 1 changes were detected",
                "Restarting service \"web\" after changes were detected",
                "service(s) [\"web\"] restarted"
            ]
        );
        b.fail_restart = true;
        let e = apply(&plans[0], &rules, &mut b, &mut |_: &str| {}).unwrap_err();
        assert!(e.to_string().contains("not running"), "{e}");
    }

    #[test]
    fn the_loop_batches_a_burst_and_stops_on_request() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf")).unwrap();
        let rules = vec![rule(dir.path(), "conf", "restart", "")];
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = tx.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let conf = dir.path().join("conf");
        let writer = std::thread::spawn(move || {
            ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            for i in 0..200 {
                std::fs::write(conf.join(format!("f{i}")), "x").unwrap();
            }
            std::fs::write(conf.join(".f1.swp"), "x").unwrap();
            done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            // Long enough for a second batch to show up, were the burst split.
            std::thread::sleep(debounce::QUIET * 3);
            let _ = stop.send(Input::Stop);
        });
        let mut b = Recorder::default();
        let mut lines = Vec::new();
        run(&rules, &mut b, tx, rx, &mut |l: &str| {
            match l {
                "Watch enabled" => drop(ready_tx.send(())),
                "service(s) [\"web\"] restarted" => drop(done_tx.send(())),
                _ => {}
            }
            lines.push(l.to_string());
        })
        .unwrap();
        writer.join().unwrap();
        assert_eq!(b.calls, ["restart [\"web\"]"], "{lines:?}");
        assert_eq!(lines.first().map(String::as_str), Some("Watch enabled"));
        assert_eq!(lines.last().map(String::as_str), Some("Watch disabled"));
    }
}
