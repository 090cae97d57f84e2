//! A compose project for tests that run real containers: its own directory, state and name,
//! the test bed's registries, and the checks that nothing is left behind.

use std::process::{Command, Output, Stdio};

use super::{cgroup_roots, project_name, skip, stderr, stdout, testbed_env, State};

/// A project directory with a `compose.yaml`, a private state and a name no other test run on
/// this host uses. Dropping it takes the project down, whatever the test did.
pub struct Project {
    pub state: State,
    pub env: Vec<(String, String)>,
    pub dir: tempfile::TempDir,
    pub name: String,
}

impl Project {
    /// The project `name` (made unique to this test process) for `test`, or `None` after
    /// saying why it cannot run: containers need root and the image test bed.
    pub fn new(test: &str, name: &str, compose: &str) -> Option<Project> {
        if !nix::unistd::geteuid().is_root() {
            skip(test, "needs root to create containers and networks");
            return None;
        }
        let Some(env) = testbed_env() else {
            skip(
                test,
                "the image test bed is not served (scripts/test serves it)",
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("compose.yaml"), compose).expect("write compose.yaml");
        Some(Project {
            state: State::new(),
            env,
            dir,
            // Bridges, firewall tables and cgroups are host-wide and named after the project.
            name: project_name(name),
        })
    }

    /// rcompose in the project's directory, with its name and state, stdin closed.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.state.cmd(&self.env);
        cmd.current_dir(self.dir.path())
            .args(["-p", &self.name])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    pub fn rc(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run rcompose")
    }

    /// Runs and asserts success.
    pub fn ok(&self, args: &[&str]) -> Output {
        let o = self.rc(args);
        assert!(
            o.status.success(),
            "rcompose {args:?} failed:\n{}{}",
            out(&o),
            self.supervisor_log()
        );
        o
    }

    /// The supervisors' logs of this test's projects, for a failure's message.
    pub fn supervisor_log(&self) -> String {
        let mut out = String::new();
        let projects = self.state.run().join("projects");
        for entry in std::fs::read_dir(&projects).into_iter().flatten().flatten() {
            let path = entry.path().join("supervisor.log");
            if let Ok(log) = std::fs::read_to_string(&path) {
                out.push_str(&format!("{}:\n{log}\n", path.display()));
            }
        }
        if out.is_empty() {
            out = format!("(no supervisor log under {})", projects.display());
        }
        out
    }

    /// The project's recorded state (`Null` when there is none).
    pub fn state_json(&self) -> serde_json::Value {
        let p = self
            .state
            .run()
            .join("projects")
            .join(&self.name)
            .join("state.json");
        std::fs::read(&p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    /// The container called `name` in a recorded state (`Null` when absent).
    pub fn container<'a>(state: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
        state["containers"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == name))
            .unwrap_or(&serde_json::Value::Null)
    }

    /// Nothing of the project on the host: state, container directories, cgroups, firewall
    /// table, mounts. Call it after `down`.
    pub fn assert_nothing_left(&self) {
        let run = self.state.run().join("projects").join(&self.name);
        assert!(!run.exists(), "project state left: {}", run.display());
        let containers: Vec<_> = std::fs::read_dir(self.state.root().join("containers"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(
            containers.is_empty(),
            "container directories left: {containers:?}"
        );
        for root in cgroup_roots() {
            let cg = root.join("rcompose").join(&self.name);
            let children: Vec<_> = std::fs::read_dir(&cg)
                .map(|d| d.flatten().filter(|e| e.path().is_dir()).collect())
                .unwrap_or_default();
            assert!(children.is_empty(), "cgroups left under {}", cg.display());
        }
        let tables = Command::new("nft")
            .args(["list", "tables"])
            .output()
            .expect("nft");
        assert!(
            !stdout(&tables).contains(&format!("rcompose-{}", self.name)),
            "firewall table left:\n{}",
            stdout(&tables)
        );
        // Its entries in the host-wide network registry.
        let prefix = format!("{}.", self.name);
        let entries: Vec<_> = std::fs::read_dir(self.state.run().join("networks"))
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
            .filter(|f| f.file_name().to_string_lossy().starts_with(&prefix))
            .map(|f| f.path())
            .collect();
        assert!(
            entries.is_empty(),
            "network registry entries left: {entries:?}"
        );
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        assert!(
            !mountinfo.contains(&*self.state.dir.path().to_string_lossy()),
            "mounts of the test's state left on the host"
        );
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        // A failed test must not leave containers, networks or firewall rules.
        let _ = self.rc(&["down", "-v", "-t", "0"]);
    }
}

/// Reads a spawned child's stdout and stderr (both piped) line by line in threads, handing
/// each line to `sink` until the pipes close or `sink` says stop (returns false).
pub fn pipe_lines(
    child: &mut std::process::Child,
    sink: impl Fn(String) -> bool + Clone + Send + 'static,
) {
    use std::io::BufRead;
    let streams = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ];
    for stream in streams.into_iter().flatten() {
        let sink = sink.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                if !sink(line) {
                    return;
                }
            }
        });
    }
}

/// Both streams of a command's output, for assertion messages.
pub fn out(o: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", stdout(o), stderr(o))
}
