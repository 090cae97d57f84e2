//! How `up` converges a running project on a changed compose file: what recreates a container
//! and what must not (docker compose's rules).

mod common;

use common::Project;

const BASE: &str = r#"
services:
  app:
    image: busybox
    init: true
    command: sleep infinity
    environment:
      LEVEL: "1"
  db:
    image: busybox
    init: true
    command: sleep infinity
"#;

fn id(p: &Project, service: &str) -> serde_json::Value {
    let name = format!("{}-{service}-1", p.name);
    let id = Project::container(&p.state_json(), &name)["id"].clone();
    assert!(id.is_string(), "no container {name}");
    id
}

fn write(p: &Project, compose: &str) {
    std::fs::write(p.dir.path().join("compose.yaml"), compose).expect("write compose.yaml");
}

/// docker compose's service hash leaves out `build`, `pull_policy`, `depends_on`, `profiles`
/// and the replica count: changing them, or pulling again, keeps the containers; a change of
/// anything else recreates.
#[test]
fn only_a_configuration_change_recreates() {
    let Some(p) = Project::new("only_a_configuration_change_recreates", "conv", BASE) else {
        return;
    };
    p.ok(&["up", "-d"]);
    let (app, db) = (id(&p, "app"), id(&p, "db"));

    p.ok(&["up", "-d", "--pull", "always"]);
    assert_eq!(
        id(&p, "app"),
        app,
        "up --pull always recreated an unchanged app"
    );
    assert_eq!(
        id(&p, "db"),
        db,
        "up --pull always recreated an unchanged db"
    );

    let more = BASE.replace(
        "      LEVEL: \"1\"\n",
        "      LEVEL: \"1\"\n    depends_on: [db]\n    pull_policy: missing\n    scale: 1\n",
    );
    write(&p, &more);
    p.ok(&["up", "-d"]);
    assert_eq!(
        id(&p, "app"),
        app,
        "a new depends_on, pull_policy or scale recreated app"
    );

    write(&p, &more.replace("LEVEL: \"1\"", "LEVEL: \"2\""));
    p.ok(&["up", "-d"]);
    assert_ne!(
        id(&p, "app"),
        app,
        "a changed environment did not recreate app"
    );
    assert_eq!(id(&p, "db"), db, "db was recreated with app");

    p.ok(&["down", "-t", "0"]);
    p.assert_nothing_left();
}

/// One identity per container: `$HOSTNAME`, `hostname` and /etc/hostname agree, for a
/// service's container and a one-off `run`; a `hostname:` of the service is kept everywhere.
#[test]
fn hostname_and_its_variable_agree() {
    let Some(p) = Project::new(
        "hostname_and_its_variable_agree",
        "convhost",
        r#"
services:
  app:
    image: busybox
    init: true
    command: sleep infinity
  named:
    image: busybox
    init: true
    hostname: box
    command: sleep infinity
"#,
    ) else {
        return;
    };
    p.ok(&["up", "-d"]);
    let probe = [
        "sh",
        "-c",
        "echo $HOSTNAME $(hostname) $(cat /etc/hostname)",
    ];
    let seen = |args: &[&str]| {
        let o = p.ok(args);
        let out = common::stdout(&o);
        let words: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(words.len(), 3, "{out}");
        assert!(words.iter().all(|w| *w == words[0]), "{args:?}: {out}");
        words[0].to_string()
    };
    let mut exec = vec!["exec", "-T", "app"];
    exec.extend(probe);
    let app = seen(&exec);
    assert_eq!(app.len(), 12, "{app}");
    let mut run = vec!["run", "--rm", "-T", "app"];
    run.extend(probe);
    let oneoff = seen(&run);
    assert_ne!(
        oneoff, app,
        "a one-off container has an identity of its own"
    );
    let mut named = vec!["exec", "-T", "named"];
    named.extend(probe);
    assert_eq!(seen(&named), "box");
    p.ok(&["down", "-t", "0"]);
    p.assert_nothing_left();
}

/// `run --no-deps` neither starts nor waits for the service's dependencies, whatever state
/// they are in (here: one whose healthcheck never passes and which has exited).
#[test]
fn run_no_deps_does_not_wait_for_dependencies() {
    let Some(p) = Project::new(
        "run_no_deps_does_not_wait_for_dependencies",
        "convnodeps",
        r#"
services:
  web:
    image: busybox
    command: "true"
    depends_on:
      db: {condition: service_healthy}
  db:
    image: busybox
    command: sh -c "exit 3"
    healthcheck:
      test: ["CMD", "false"]
      interval: 1s
"#,
    ) else {
        return;
    };
    // db fails on its own: `up db` only.
    let _ = p.rc(&["up", "-d", "db"]);
    let o = p.ok(&["run", "--rm", "--no-deps", "-T", "web", "echo", "ran"]);
    assert_eq!(common::stdout(&o), "ran\n", "{}", common::out(&o));
    assert!(
        !common::stderr(&o).contains("db"),
        "run --no-deps spoke of its dependency: {}",
        common::out(&o)
    );
    p.ok(&["down", "-t", "0"]);
    p.assert_nothing_left();
}

/// `up -d --wait` reports every container it waits on, as docker compose: `Waiting`, then
/// `Healthy` (a container without a healthcheck once it runs).
#[test]
fn wait_reports_every_container() {
    let Some(p) = Project::new(
        "wait_reports_every_container",
        "convwait",
        r#"
services:
  web:
    image: busybox
    init: true
    command: sleep infinity
    depends_on:
      db: {condition: service_healthy}
  db:
    image: busybox
    init: true
    command: sleep infinity
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
      start_interval: 200ms
      start_period: 10s
"#,
    ) else {
        return;
    };
    let o = p.ok(&["up", "-d", "--wait"]);
    let err = common::stderr(&o);
    for c in ["web", "db"] {
        let name = format!("{}-{c}-1", p.name);
        for status in ["Waiting", "Healthy"] {
            assert!(
                err.lines()
                    .any(|l| l.contains(&format!("Container {name}")) && l.ends_with(status)),
                "no {status} for {name}:\n{err}"
            );
        }
    }
    p.ok(&["down", "-t", "0"]);
    p.assert_nothing_left();
}

/// Ctrl-C on an attached `up web` stops web, not the dependency it started along (docker
/// compose stops the services `up` was given), and `up` then returns.
#[test]
fn ctrl_c_stops_the_services_up_was_given() {
    let Some(p) = Project::new(
        "ctrl_c_stops_the_services_up_was_given",
        "convctrlc",
        r#"
services:
  web:
    image: busybox
    init: true
    command: sh -c "echo web-ready; exec sleep infinity"
    depends_on: [db]
  db:
    image: busybox
    init: true
    command: sleep infinity
"#,
    ) else {
        return;
    };
    let mut child = p
        .cmd(&["up", "web"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn up");
    let (tx, rx) = std::sync::mpsc::channel();
    common::pipe_lines(&mut child, move |line| {
        let _ = tx.send(line);
        true
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx.recv_timeout(left).expect("web never said it was ready");
        if line.contains("web-ready") {
            break;
        }
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "up did not return after Ctrl-C"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let state = p.state_json();
    let status = |service: &str| {
        Project::container(&state, &format!("{}-{service}-1", p.name))["status"].clone()
    };
    assert_eq!(status("db"), "running", "db was stopped too: {state}");
    assert_ne!(status("web"), "running", "web still runs: {state}");
    p.ok(&["down", "-t", "0"]);
    p.assert_nothing_left();
}

/// `up` (attached) and `logs` print the same prefixes: one width for all containers, docker
/// compose's padding.
#[test]
fn up_and_logs_print_the_same_prefixes() {
    let Some(p) = Project::new(
        "up_and_logs_print_the_same_prefixes",
        "convprefix",
        r#"
services:
  app:
    image: busybox
    command: echo hello-from-app
  longername:
    image: busybox
    command: echo hello-from-longername
"#,
    ) else {
        return;
    };
    let up = p.ok(&["up"]);
    let logs = p.ok(&["logs"]);
    let mut from_up: Vec<String> = common::stdout(&up).lines().map(String::from).collect();
    let mut from_logs: Vec<String> = common::stdout(&logs).lines().map(String::from).collect();
    from_up.sort();
    from_logs.sort();
    assert_eq!(from_up, from_logs);
    assert!(
        from_up.contains(&"app-1         | hello-from-app".to_string()),
        "{from_up:?}"
    );
    p.ok(&["down", "-t", "0"]);
    p.assert_nothing_left();
}
