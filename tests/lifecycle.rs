//! The supervisor with real containers from the test bed (root): `up`, `down`, `ps`, `exec`,
//! `port`, depends_on, healthchecks, restart policies, exit codes, scaled DNS, networks, and
//! nothing left behind — not even after the supervisor is killed with SIGKILL.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{out, stderr, stdout, Project};

fn project(test: &str, compose: &str) -> Option<Project> {
    Project::new(test, &format!("lc{}", test.replace('_', "")), compose)
}

impl Project {
    /// Polls the recorded state (written on every change) until `f` holds.
    fn wait_state(&self, what: &str, f: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.state_json();
            if f(&s) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {s:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn bridges(&self) -> Vec<String> {
        let s = self.state_json();
        s["networks"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n["bridge"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// `ip ARGS` on the host.
fn ip(args: &[&str]) -> std::process::Output {
    std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("ip")
}

/// Deletes a link a test made, also when the test fails.
struct DelLink(String);

impl Drop for DelLink {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.0]);
    }
}

/// A veth pair `parent`/`peer`, both up, as the parent of macvlan or ipvlan networks; deleted
/// when the guard goes.
fn veth_parent(parent: &str, peer: &str) -> DelLink {
    let made = ip(&["link", "add", parent, "type", "veth", "peer", "name", peer]);
    assert!(made.status.success(), "{}", out(&made));
    let guard = DelLink(parent.to_string());
    for link in [parent, peer] {
        assert!(ip(&["link", "set", link, "up"]).status.success());
    }
    guard
}

/// Whether this kernel makes links of `kind` (macvlan, ipvlan) on `parent`: `Err` with what
/// `ip` said when not. `probe` names the test link, deleted at once.
fn kernel_makes(kind: &str, parent: &str, probe: &str) -> Result<(), String> {
    let made = ip(&["link", "add", "link", parent, "name", probe, "type", kind]);
    let _ = ip(&["link", "del", probe]);
    if made.status.success() {
        Ok(())
    } else {
        Err(stderr(&made).trim().to_string())
    }
}

fn http_get(port: u16, path: &str) -> String {
    let mut s =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to published port");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

#[test]
fn web_redis_example_counts_hits_and_down_leaves_nothing() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("compose-examples/web-redis");
    let compose = std::fs::read_to_string(example.join("compose.yaml")).unwrap();
    // A random host port: tests never share ports.
    let compose = compose.replace("\"8000:8000\"", "\"8000\"");
    let Some(p) = project("web_redis", &compose) else {
        return;
    };
    std::fs::copy(example.join("app.py"), p.dir.path().join("app.py")).unwrap();

    p.ok(&["up", "-d", "--wait"]);
    let ps = stdout(&p.ok(&["ps"]));
    assert!(
        ps.contains("(healthy)") && ps.contains("->8000/tcp"),
        "{ps}"
    );
    let port_out = stdout(&p.ok(&["port", "web", "8000"]));
    let port: u16 = port_out
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .expect("a port");
    let first = http_get(port, "/");
    let second = http_get(port, "/");
    assert!(first.contains("seen 1 times"), "{first}");
    assert!(second.contains("seen 2 times"), "{second}");

    // web reaches redis by name through the embedded DNS.
    let state = p.state_json();
    let redis = Project::container(&state, &format!("{}-redis-1", p.name));
    let redis_ip = redis["network"]["interfaces"][0]["address"]
        .as_str()
        .unwrap()
        .to_string();
    let resolved = p.ok(&[
        "exec",
        "-T",
        "web",
        "python3",
        "-c",
        "import socket; print(socket.gethostbyname('redis'))",
    ]);
    assert_eq!(stdout(&resolved).trim(), redis_ip);

    let bridges = p.bridges();
    assert_eq!(bridges.len(), 1);
    assert!(link_exists(&bridges[0]));
    p.ok(&["down", "-v"]);
    assert!(!link_exists(&bridges[0]), "bridge {} left", bridges[0]);
    p.assert_nothing_left();
}

#[test]
fn exit_code_from_aborts_and_returns_the_code() {
    let Some(p) = project(
        "exit_code_from",
        r#"
services:
  job:
    image: busybox
    command: sh -c 'echo working; exit 3'
    depends_on:
      side:
        condition: service_healthy
  side:
    image: busybox
    # Ready (healthy) once its TERM trap is set: PID 1 ignores a signal it has no handler for.
    command: sh -c 'trap "exit 0" TERM; touch /ready; while true; do sleep 0.1; done'
    healthcheck:
      test: ["CMD", "test", "-f", "/ready"]
      interval: 1s
      start_interval: 100ms
      start_period: 10s
"#,
    ) else {
        return;
    };
    let o = p.rc(&["up", "--exit-code-from", "job", "--no-color"]);
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    // Padded to the longest container name plus one, as docker compose (and `logs`).
    assert!(stdout(&o).contains("job-1   | working"), "{}", out(&o));
    assert!(
        stderr(&o).contains("job-1 exited with code 3"),
        "{}",
        out(&o)
    );
    // Aborting stopped the other service too.
    let ps = stdout(&p.ok(&["ps", "-a"]));
    assert!(
        ps.contains("Exited (0)") && ps.contains("Exited (3)"),
        "{ps}"
    );
    p.ok(&["down"]);
    p.assert_nothing_left();
}

#[test]
fn restart_on_failure_gives_up_after_max_attempts() {
    let Some(p) = project(
        "restart_on_failure",
        r#"
services:
  flaky:
    image: busybox
    command: sh -c 'echo try; exit 1'
    restart: on-failure:2
"#,
    ) else {
        return;
    };
    p.ok(&["up", "-d"]);
    let name = format!("{}-flaky-1", p.name);
    p.wait_state("two restarts, then exited", |s| {
        let c = Project::container(s, &name);
        c["restart_count"] == 2 && c["status"] == "exited"
    });
    let logs = std::fs::read_to_string(
        p.state
            .root()
            .join("containers")
            .join(
                Project::container(&p.state_json(), &name)["id"]
                    .as_str()
                    .unwrap(),
            )
            .join(format!(
                "{}-json.log",
                Project::container(&p.state_json(), &name)["id"]
                    .as_str()
                    .unwrap()
            )),
    )
    .unwrap();
    assert_eq!(logs.matches("try").count(), 3, "{logs}");
    p.ok(&["down"]);
    p.assert_nothing_left();
}

#[test]
fn failed_dependency_stops_the_start_with_a_clear_error() {
    let Some(p) = project(
        "failed_dependency",
        r#"
services:
  init:
    image: busybox
    command: sh -c 'exit 4'
  app:
    image: busybox
    command: sleep 60
    depends_on:
      init:
        condition: service_completed_successfully
"#,
    ) else {
        return;
    };
    let o = p.rc(&["up", "-d"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("didn't complete successfully: exit 4"),
        "{}",
        out(&o)
    );
    // app was created beside init (docker compose creates every container first) but never
    // started.
    let s = p.state_json();
    let app = Project::container(&s, &format!("{}-app-1", p.name));
    assert_eq!(app["status"], "created", "{s:#}");
    p.ok(&["down"]);
    p.assert_nothing_left();
}

#[test]
fn healthcheck_gates_dependents_and_replicas_resolve() {
    let Some(p) = project(
        "health_and_scale",
        r#"
services:
  db:
    image: busybox
    command: sh -c 'sleep 0.5; touch /tmp/ready; sleep 600'
    init: true
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 10s
      start_interval: 100ms
      start_period: 30s
  api:
    image: busybox
    command: sleep 600
    init: true
    deploy:
      replicas: 2
    depends_on:
      db:
        condition: service_healthy
"#,
    ) else {
        return;
    };
    let o = p.ok(&["up", "-d"]);
    let err = stderr(&o);
    let healthy = err.find("db-1  Healthy").expect("db became healthy");
    // Created beside db (docker compose creates every container first), started once db is
    // healthy.
    let api_started = err.find("api-1  Starting").expect("api started");
    assert!(
        healthy < api_started,
        "api was started before db was healthy:\n{err}"
    );
    let s = p.state_json();
    let ips: Vec<String> = (1..=2)
        .map(|n| {
            Project::container(&s, &format!("{}-api-{n}", p.name))["network"]["interfaces"][0]
                ["address"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let looked_up = stdout(&p.ok(&["exec", "-T", "db", "nslookup", "api"]));
    for ip in &ips {
        assert!(looked_up.contains(ip), "{ip} not in:\n{looked_up}");
    }
    let ps = stdout(&p.ok(&["ps"]));
    assert!(ps.contains("(healthy)"), "{ps}");
    p.ok(&["down", "-t", "1"]);
    p.assert_nothing_left();
}

#[test]
fn containers_on_different_networks_cannot_reach_each_other() {
    let Some(p) = project(
        "net_isolation",
        r#"
services:
  a:
    image: busybox
    command: sleep 600
    init: true
    networks: [front]
  b:
    image: busybox
    command: sleep 600
    init: true
    networks: [back]
  c:
    image: busybox
    command: sleep 600
    init: true
    networks: [front, back]
networks:
  front: {}
  back:
    internal: true
"#,
    ) else {
        return;
    };
    p.ok(&["up", "-d"]);
    let s = p.state_json();
    let ip = |svc: &str| {
        Project::container(&s, &format!("{}-{svc}-1", p.name))["network"]["interfaces"][0]
            ["address"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let b_ip = ip("b");
    let from_c = p.rc(&["exec", "-T", "c", "ping", "-c", "1", "-W", "2", &b_ip]);
    assert!(
        from_c.status.success(),
        "c cannot reach b:\n{}",
        out(&from_c)
    );
    let from_a = p.rc(&["exec", "-T", "a", "ping", "-c", "1", "-W", "1", &b_ip]);
    assert!(!from_a.status.success(), "a reached b across networks");
    // Services start in parallel: every interface still gets its own address.
    let mut addresses: Vec<String> = ["a", "b", "c"]
        .iter()
        .flat_map(|svc| {
            Project::container(&s, &format!("{}-{svc}-1", p.name))["network"]["interfaces"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|i| i["address"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(addresses.len(), 4);
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 4, "an address given twice: {addresses:?}");
    // Names resolve only on the networks a container shares with them.
    let c_finds_b = p.rc(&["exec", "-T", "c", "nslookup", "b"]);
    assert!(
        out(&c_finds_b).contains(&b_ip),
        "c cannot resolve b:\n{}",
        out(&c_finds_b)
    );
    let a_finds_b = p.rc(&["exec", "-T", "a", "nslookup", "b"]);
    assert!(
        !out(&a_finds_b).contains(&b_ip),
        "a resolved b across networks:\n{}",
        out(&a_finds_b)
    );
    p.ok(&["down"]);
    p.assert_nothing_left();
}

#[test]
fn killed_supervisor_then_down_leaves_nothing() {
    let Some(p) = project(
        "killed_supervisor",
        r#"
services:
  svc:
    image: busybox
    command: sleep 600
    ports: ["80"]
"#,
    ) else {
        return;
    };
    p.ok(&["up", "-d"]);
    let piddir = p.state.dir.path().join("run/projects").join(&p.name);
    let pid: i32 = std::fs::read_to_string(piddir.join("supervisor.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let state = p.state_json();
    let cpid = Project::container(&state, &format!("{}-svc-1", p.name))["pid"]
        .as_i64()
        .unwrap() as i32;
    // SAFETY: plain kill of the supervisor this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let bridges = p.bridges();
    p.ok(&["down"]);
    assert!(
        !Path::new(&format!("/proc/{cpid}")).exists()
            || std::fs::read_to_string(format!("/proc/{cpid}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true),
        "the container's process survived"
    );
    for b in bridges {
        assert!(!link_exists(&b), "bridge {b} left");
    }
    p.assert_nothing_left();
}

#[test]
fn run_starts_dependencies_and_joins_the_project_network() {
    let Some(p) = project(
        "run_deps",
        r#"
services:
  db:
    image: busybox
    command: sh -c 'echo ready > /tmp/ready; exec sleep 600'
    init: true
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      start_interval: 100ms
      start_period: 10s
  app:
    image: busybox
    depends_on:
      db:
        condition: service_healthy
    links: ["db:database"]
    command: "true"
"#,
    ) else {
        return;
    };
    // Dependencies come up (healthy) first; the one-off container resolves them by name and
    // returns its own exit code; its output is the client's, stdout and stderr apart.
    let o = p.rc(&[
        "run",
        "--rm",
        "app",
        "sh",
        "-c",
        "nslookup db >/dev/null && nslookup database >/dev/null && echo resolved; \
         echo to-stderr >&2; exit 5",
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", out(&o));
    assert_eq!(stdout(&o), "resolved\n", "{}", out(&o));
    assert!(stderr(&o).contains("to-stderr"), "{}", out(&o));
    assert!(stderr(&o).contains("Healthy"), "{}", out(&o));
    let ps = stdout(&p.ok(&["ps", "-a", "--format", "json"]));
    assert!(ps.contains("\"Service\":\"db\""), "{ps}");
    assert!(!ps.contains("-app-run-"), "--rm left the container: {ps}");

    // stdin reaches the container; -d prints the name and leaves it running; its DNS name is
    // its container name, not the service's (no --use-aliases).
    let mut child = p
        .cmd(&["run", "--rm", "-T", "--no-deps", "app", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run cat");
    {
        use std::io::Write;
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(b"through stdin\n").expect("write");
    }
    let o = child.wait_with_output().expect("wait");
    assert_eq!(stdout(&o), "through stdin\n", "{}", out(&o));

    let o = p.ok(&[
        "run",
        "-d",
        "--name",
        "lcrundeps-oneoff",
        "app",
        "sleep",
        "600",
    ]);
    assert_eq!(stdout(&o).trim(), "lcrundeps-oneoff", "{}", out(&o));
    let found = p.rc(&["exec", "-T", "db", "nslookup", "lcrundeps-oneoff"]);
    assert!(out(&found).contains("Address"), "{}", out(&found));
    let by_service = p.rc(&["exec", "-T", "db", "nslookup", "app"]);
    assert!(
        !by_service.status.success() || !stdout(&by_service).contains("Name:"),
        "{}",
        out(&by_service)
    );
    // With --use-aliases the one-off answers to the service's name too.
    p.ok(&[
        "run",
        "-d",
        "--use-aliases",
        "--name",
        "lcrundeps-aliased",
        "app",
        "sleep",
        "600",
    ]);
    let by_service = p.rc(&["exec", "-T", "db", "nslookup", "app"]);
    assert!(
        stdout(&by_service).contains("Name:"),
        "{}",
        out(&by_service)
    );
    // A name in use is refused.
    let again = p.rc(&["run", "-d", "--name", "lcrundeps-oneoff", "app", "true"]);
    assert!(!again.status.success(), "{}", out(&again));
    assert!(stderr(&again).contains("already in use"), "{}", out(&again));

    p.ok(&["down"]);
    p.assert_nothing_left();
}

#[test]
fn configs_and_secrets_are_files_with_their_owner_and_mode() {
    let Some(p) = project(
        "configs_secrets",
        r#"
services:
  app:
    image: busybox
    configs:
      - source: from_env
      - source: from_file
      - source: inlined
        target: /etc/inlined.conf
        mode: 0400
        uid: "1005"
    secrets:
      - source: token
        target: bar
        uid: "1005"
        gid: "1006"
        mode: 0440
configs:
  from_env:
    environment: CONFIG
  from_file:
    file: config.txt
  inlined:
    content: This is my $CONFIG
secrets:
  token:
    environment: SECRET
"#,
    ) else {
        return;
    };
    std::fs::write(p.dir.path().join("config.txt"), "from a file\n").expect("config.txt");
    let script =
        "cat /from_env; echo; cat /from_file /etc/inlined.conf; echo; cat /run/secrets/bar; \
                  echo; stat -c '%n %u %g %a' /etc/inlined.conf /run/secrets/bar; \
                  echo x > /from_file || echo read-only";
    let o = p
        .cmd(&["run", "--rm", "app", "sh", "-c", script])
        .env("CONFIG", "cfgval")
        .env("SECRET", "topsecret")
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(
        stdout(&o),
        "cfgval\nfrom a file\nThis is my cfgval\ntopsecret\n\
         /etc/inlined.conf 1005 0 400\n/run/secrets/bar 1005 1006 440\nread-only\n",
        "{}",
        out(&o)
    );
    // A variable a secret needs and nobody set: named before anything is created.
    let o = p
        .cmd(&["run", "--rm", "app", "true"])
        .env("CONFIG", "cfgval")
        .env_remove("SECRET")
        .output()
        .expect("run");
    assert!(!o.status.success(), "{}", out(&o));
    assert!(
        stderr(&o).contains("secret token: environment variable SECRET is not set"),
        "{}",
        out(&o)
    );
    p.ok(&["down"]);
    p.assert_nothing_left();
}

#[test]
fn volumes_persist_until_down_v_and_volumes_from_shares_them() {
    let Some(p) = project(
        "volumes_from",
        r#"
services:
  data:
    image: busybox
    command: sh -c 'echo named >> /named/f; echo anon > /anon/f; touch /ready; exec sleep 600'
    init: true
    volumes:
      - vol:/named
      - /anon
    healthcheck:
      test: ["CMD", "test", "-f", "/ready"]
      interval: 1s
      start_interval: 100ms
      start_period: 10s
  reader:
    image: busybox
    depends_on:
      data:
        condition: service_healthy
    volumes_from:
      - data:ro
    command: sh -c 'cat /named/f /anon/f; echo x > /named/g || echo read-only'
volumes:
  vol: {}
"#,
    ) else {
        return;
    };
    p.ok(&["up", "-d", "--wait"]);
    let o = p.ok(&["run", "--rm", "--no-deps", "reader"]);
    assert_eq!(stdout(&o), "named\nanon\nread-only\n", "{}", out(&o));
    // The named volume outlives `down`; the anonymous one goes with its container.
    p.ok(&["down"]);
    p.ok(&["up", "-d", "--wait", "data"]);
    let o = p.ok(&["exec", "-T", "data", "cat", "/named/f", "/anon/f"]);
    assert_eq!(stdout(&o), "named\nnamed\nanon\n", "{}", out(&o));
    p.ok(&["down", "-v"]);
    let volumes = p.state.root().join("volumes");
    let left: Vec<_> = std::fs::read_dir(&volumes)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "volumes left after down -v: {left:?}");
    p.assert_nothing_left();
}

#[test]
fn post_start_and_pre_stop_hooks_run_inside_the_container() {
    let Some(p) = project(
        "hooks",
        r#"
services:
  app:
    image: busybox
    command: sleep 600
    init: true
    volumes:
      - data:/data
    environment:
      WHO: app
    post_start:
      - command: sh -c 'echo "post_start as $$(id -u) in $$(pwd) for $$WHO $$EXTRA"'
        user: "1000"
        working_dir: /tmp
        environment:
          EXTRA: extra
    pre_stop:
      - command: sh -c 'echo pre_stop >> /data/log.txt'
  failing:
    image: busybox
    command: sleep 600
    init: true
    profiles: [failing]
    post_start:
      - command: sh -c 'exit 4'
volumes:
  data: {}
"#,
    ) else {
        return;
    };
    p.ok(&["up", "-d"]);
    p.ok(&["restart", "app"]);
    p.ok(&["stop", "app"]);
    // post_start's output is the container's (as user 1000, in /tmp, with its environment).
    let logs = stdout(&p.ok(&["logs", "--no-log-prefix", "app"]));
    assert_eq!(
        logs.matches("post_start as 1000 in /tmp for app extra")
            .count(),
        2,
        "{logs}"
    );
    // pre_stop ran before each stop, inside the container (its volume).
    let o = p.ok(&["run", "--rm", "--no-deps", "app", "cat", "/data/log.txt"]);
    assert_eq!(stdout(&o), "pre_stop\npre_stop\n", "{}", out(&o));
    // A failing post_start hook fails the start and says which.
    let o = p.rc(&["--profile", "failing", "up", "-d", "failing"]);
    assert!(!o.status.success(), "{}", out(&o));
    assert!(
        stderr(&o).contains("post_start hook") && stderr(&o).contains("exited with code 4"),
        "{}",
        out(&o)
    );
    p.ok(&["--profile", "failing", "down", "-v"]);
    p.assert_nothing_left();
}

#[test]
fn depends_on_restart_true_follows_its_dependency() {
    let Some(p) = project(
        "dep_restart",
        r#"
services:
  db:
    image: busybox
    command: sleep 600
    init: true
    environment:
      VERSION: ${VERSION:-1}
  follower:
    image: busybox
    command: sleep 600
    init: true
    depends_on:
      db:
        condition: service_started
        restart: true
  bystander:
    image: busybox
    command: sleep 600
    init: true
    depends_on: [db]
"#,
    ) else {
        return;
    };
    p.ok(&["up", "-d"]);
    let started = |svc: &str| {
        let s = p.state_json();
        Project::container(&s, &format!("{}-{svc}-1", p.name))["started_at"].clone()
    };
    let (f0, b0) = (started("follower"), started("bystander"));
    // `restart db` restarts the follower too, not the bystander.
    p.ok(&["restart", "db"]);
    let (f1, b1) = (started("follower"), started("bystander"));
    assert_ne!(f0, f1, "the follower was not restarted");
    assert_eq!(b0, b1, "the bystander was restarted");
    // A recreated db (its configuration changed) restarts the follower as well.
    let o = p
        .cmd(&["up", "-d"])
        .env("VERSION", "2")
        .output()
        .expect("up");
    assert!(o.status.success(), "{}", out(&o));
    assert!(stderr(&o).contains("Recreated"), "{}", out(&o));
    let (f2, b2) = (started("follower"), started("bystander"));
    assert_ne!(f1, f2, "the follower was not restarted after the recreate");
    assert_eq!(b1, b2, "the bystander was restarted after the recreate");
    p.ok(&["down"]);
    p.assert_nothing_left();
}

/// `http_get` once the server behind `port` answers (a started container may not listen yet).
fn http_get_ready(port: u16) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing answers on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    http_get(port, "/")
}

/// `n` host ports free right now, the second and third consecutive (for a range).
fn free_ports(n: usize) -> Vec<u16> {
    loop {
        let listeners: Vec<std::net::TcpListener> = (0..n)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let mut ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().expect("addr").port())
            .collect();
        drop(listeners);
        // Make ports[2] = ports[1] + 1 when that one is free too.
        if n >= 3 {
            let next = ports[1].wrapping_add(1);
            if next == 0 || std::net::TcpListener::bind(("127.0.0.1", next)).is_err() {
                continue;
            }
            ports[2] = next;
        }
        ports.sort_unstable();
        ports.dedup();
        if ports.len() == n {
            // Keep the range's order.
            return ports;
        }
    }
}

#[test]
fn published_ports_in_every_syntax_and_two_projects_side_by_side() {
    let ports = free_ports(6);
    // A range needs two consecutive ports: find them among the sorted ones.
    let range_start = ports
        .windows(2)
        .find(|w| w[1] == w[0] + 1)
        .map(|w| w[0])
        .expect("two consecutive ports");
    let others: Vec<u16> = ports
        .iter()
        .copied()
        .filter(|p| *p != range_start && *p != range_start + 1)
        .collect();
    let (short, on_loopback, long, udp) = (others[0], others[1], others[2], others[3]);
    let compose = |name: &str, short: u16, on_loopback: u16, long: u16, range: u16, udp: u16| {
        format!(
            r#"
services:
  web:
    image: busybox
    init: true
    command:
      - sh
      - -c
      - |
        mkdir -p /www && echo {name} > /www/index.html
        httpd -p 8080 -h /www && httpd -p 8081 -h /www
        exec httpd -f -p 80 -h /www
    ports:
      - "{short}:80"
      - "127.0.0.1:{on_loopback}:80"
      - "80"
      - target: 80
        published: "{long}"
        host_ip: 0.0.0.0
        protocol: tcp
      - "{range}-{range_end}:8080-8081"
  udp:
    image: python:3
    init: true
    command:
      - python3
      - -c
      - |
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("", 9999))
        while True:
            data, _ = s.recvfrom(100)
            open("/tmp/udp", "ab").write(data)
    ports:
      - "{udp}:9999/udp"
"#,
            range_end = range + 1
        )
    };
    let Some(a) = project(
        "ports_a",
        &compose("alpha", short, on_loopback, long, range_start, udp),
    ) else {
        return;
    };
    a.ok(&["up", "-d"]);
    let random: u16 = stdout(&a.ok(&["port", "web", "80"]))
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a random port");
    for port in [
        short,
        on_loopback,
        long,
        range_start,
        range_start + 1,
        random,
    ] {
        let got = http_get_ready(port);
        assert!(got.contains("alpha"), "port {port}: {got}");
    }
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    socket
        .send_to(b"datagram\n", ("127.0.0.1", udp))
        .expect("send udp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let o = a.rc(&["exec", "-T", "udp", "cat", "/tmp/udp"]);
        if stdout(&o).contains("datagram") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "udp datagram never arrived"
        );
        // Datagrams can be lost: send again while waiting.
        let _ = socket.send_to(b"datagram\n", ("127.0.0.1", udp));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // A second project with the same file but its own ports runs beside it; one that asks
    // for a port the first has is refused before anything of it exists.
    let more = free_ports(6);
    let b_range = more
        .windows(2)
        .find(|w| w[1] == w[0] + 1)
        .map(|w| w[0])
        .expect("consecutive");
    let b_others: Vec<u16> = more
        .iter()
        .copied()
        .filter(|p| *p != b_range && *p != b_range + 1)
        .collect();
    let Some(b) = project(
        "ports_b",
        &compose(
            "beta",
            b_others[0],
            b_others[1],
            b_others[2],
            b_range,
            b_others[3],
        ),
    ) else {
        return;
    };
    b.ok(&["up", "-d"]);
    assert!(http_get_ready(b_others[0]).contains("beta"));
    assert!(http_get(short, "/").contains("alpha"));
    // A container reaches another project's published port through the host (its gateway).
    // (busybox's nc: its static wget crashes resolving names with glibc's NSS.)
    let script = format!(
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 $(ip route | awk '/default/ {{print $3}}') {short}"
    );
    let o = b.rc(&["exec", "-T", "web", "sh", "-c", &script]);
    assert!(stdout(&o).contains("alpha"), "{}", out(&o));
    let Some(c) = project(
        "ports_c",
        &compose(
            "gamma",
            short,
            b_others[1] + 7,
            b_others[2] + 7,
            b_range + 7,
            udp + 7,
        ),
    ) else {
        return;
    };
    let o = c.rc(&["up", "-d"]);
    assert!(!o.status.success(), "{}", out(&o));
    assert!(stderr(&o).contains(&short.to_string()), "{}", out(&o));
    assert!(stderr(&o).contains("service web"), "{}", out(&o));
    c.assert_nothing_left();
    b.ok(&["down"]);
    b.assert_nothing_left();
    // Taking one project down left the other untouched.
    assert!(http_get(short, "/").contains("alpha"));
    a.ok(&["down"]);
    a.assert_nothing_left();
}

/// docker compose's e2e `cascade` fixture (busybox for alpine).
const CASCADE: &str = r#"
services:
  running:
    image: busybox
    command: sleep infinity
    init: true
  exit:
    image: busybox
    command: /bin/true
    depends_on:
      running:
        condition: service_started
  fail:
    image: busybox
    command: sh -c "return 111"
    depends_on:
      exit:
        condition: service_completed_successfully
"#;

#[test]
fn cascade_stop_on_the_first_exit() {
    let Some(p) = project("cascade_stop", CASCADE) else {
        return;
    };
    let o = p.rc(&["up", "--abort-on-container-exit", "--no-color"]);
    let text = out(&o);
    assert!(text.contains("exit-1 exited with code 0"), "{text}");
    assert!(text.contains("Aborting on container exit..."), "{text}");
    assert_eq!(o.status.code(), Some(0), "{text}");
    p.ok(&["down"]);
    p.assert_nothing_left();
}

#[test]
fn cascade_fail_returns_the_failing_code() {
    let Some(p) = project("cascade_fail", CASCADE) else {
        return;
    };
    let o = p.rc(&["up", "--abort-on-container-failure", "--no-color"]);
    let text = out(&o);
    assert!(text.contains("exit-1 exited with code 0"), "{text}");
    assert!(text.contains("fail-1 exited with code 111"), "{text}");
    // docker compose says "exit" for both cascades.
    assert!(text.contains("Aborting on container exit..."), "{text}");
    assert_eq!(o.status.code(), Some(111), "{text}");
    p.ok(&["down"]);
    p.assert_nothing_left();
}

#[test]
fn an_unhealthy_dependency_fails_the_start() {
    let Some(p) = project(
        "start_fail",
        r#"
services:
  fail:
    image: busybox
    init: true
    command: sleep infinity
    healthcheck:
      test: "false"
      interval: 200ms
      retries: 3
  depends:
    image: busybox
    init: true
    command: sleep infinity
    depends_on:
      fail:
        condition: service_healthy
"#,
    ) else {
        return;
    };
    let o = p.rc(&["up", "-d"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        stderr(&o).contains(&format!("container {}-fail-1 is unhealthy", p.name)),
        "{}",
        out(&o)
    );
    // The dependent never started.
    let ps = stdout(&p.ok(&["ps", "--format", "{{.Service}}"]));
    assert_eq!(ps.trim(), "fail", "{ps}");
    p.ok(&["down"]);
    p.assert_nothing_left();
}

#[test]
fn scale_replicas_and_orphans() {
    let compose = r#"
services:
  back:
    image: busybox
    command: sleep infinity
    init: true
    depends_on: [db]
  db:
    image: busybox
    command: sleep infinity
    init: true
  front:
    image: busybox
    command: sleep infinity
    init: true
    deploy:
      replicas: 2
  dbadmin:
    image: busybox
    command: sleep infinity
    deploy:
      replicas: 0
  tool:
    image: busybox
    command: "true"
    profiles: [tools]
"#;
    let Some(p) = project("scale", compose) else {
        return;
    };
    let names = |p: &Project| -> Vec<String> {
        let mut v: Vec<String> = stdout(&p.ok(&["ps", "-a", "--format", "{{.Name}}"]))
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        v.sort();
        v
    };
    p.ok(&["up", "-d", "--scale", "back=2"]);
    let n = &p.name;
    assert_eq!(
        names(&p),
        [
            format!("{n}-back-1"),
            format!("{n}-back-2"),
            format!("{n}-db-1"),
            format!("{n}-front-1"),
            format!("{n}-front-2"),
        ]
    );
    // Scaling down removes the highest numbers.
    p.ok(&["up", "-d", "--scale", "back=1", "--scale", "front=1"]);
    assert_eq!(
        names(&p),
        [
            format!("{n}-back-1"),
            format!("{n}-db-1"),
            format!("{n}-front-1")
        ]
    );
    // `scale`: the same, without recreating what runs.
    let before = Project::container(&p.state_json(), &format!("{n}-front-1"))["id"].clone();
    p.ok(&["scale", "front=3"]);
    assert_eq!(
        names(&p),
        [
            format!("{n}-back-1"),
            format!("{n}-db-1"),
            format!("{n}-front-1"),
            format!("{n}-front-2"),
            format!("{n}-front-3")
        ]
    );
    let after = Project::container(&p.state_json(), &format!("{n}-front-1"))["id"].clone();
    assert_eq!(before, after, "scale recreated front-1");
    p.ok(&["scale", "front=1"]);
    let o = p.rc(&["scale", "front"]);
    assert!(
        !o.status.success() && stderr(&o).contains("SERVICE=REPLICAS"),
        "{}",
        out(&o)
    );
    // A service run through its profile, then the file without that profile: not an orphan.
    p.ok(&["--profile", "tools", "up", "-d", "tool"]);
    let o = p.ok(&["up", "-d"]);
    assert!(!stderr(&o).contains("orphan"), "{}", out(&o));
    // A service gone from the file is an orphan: named, then removed with --remove-orphans.
    std::fs::write(
        p.dir.path().join("compose.yaml"),
        compose.replace("  dbadmin:", "  gone-admin:").replace(
            "  back:\n    image: busybox\n    command: sleep infinity\n    init: true\n    depends_on: [db]\n",
            "",
        ),
    )
    .expect("rewrite compose.yaml");
    let o = p.ok(&["up", "-d"]);
    assert!(
        stderr(&o).contains("Found orphan containers")
            && stderr(&o).contains(&format!("{n}-back-1")),
        "{}",
        out(&o)
    );
    p.ok(&["up", "-d", "--remove-orphans"]);
    assert!(
        !names(&p).contains(&format!("{n}-back-1")),
        "{:?}",
        names(&p)
    );
    p.ok(&["--profile", "tools", "down"]);
    p.assert_nothing_left();
}

#[test]
fn environment_priority_follows_docker_compose() {
    let Some(p) = project(
        "env_priority",
        r#"
services:
  env:
    image: busybox
    env_file: [.env.override]
    environment:
      FROM_COMPOSE: "Compose File"
      INTERPOLATED: ${WHEREAMI}
      PASSED:
"#,
    ) else {
        return;
    };
    std::fs::write(p.dir.path().join(".env"), "WHEREAMI=Env File\n").expect(".env");
    std::fs::write(
        p.dir.path().join(".env.override"),
        "FROM_COMPOSE=override\nFROM_FILE=override\nPATH=/override\n",
    )
    .expect(".env.override");
    let show = "echo $FROM_COMPOSE/$FROM_FILE/$INTERPOLATED/$PASSED/$PATH";
    let run = |extra: &[&str], shell: &[(&str, &str)]| {
        let mut args = vec!["run", "--rm", "-T"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["env", "/bin/sh", "-c", show]);
        let mut cmd = p.cmd(&args);
        cmd.env_remove("WHEREAMI").env_remove("PASSED");
        for (k, v) in shell {
            cmd.env(k, v);
        }
        let o = cmd.output().expect("run");
        assert!(o.status.success(), "{}", out(&o));
        stdout(&o).trim().to_string()
    };
    // environment > env_file > image; .env feeds interpolation; an empty `PASSED:` takes the
    // shell's value, or is unset.
    assert_eq!(run(&[], &[]), "Compose File/override/Env File///override");
    // The shell beats .env for interpolation and fills PASSED; `run -e` beats everything.
    assert_eq!(
        run(
            &["-e", "FROM_COMPOSE=cli"],
            &[("WHEREAMI", "shell"), ("PASSED", "yes")]
        ),
        "cli/override/shell/yes//override"
    );
    p.ok(&["down"]);
    p.assert_nothing_left();
}

#[test]
fn wait_returns_when_the_services_exit() {
    let Some(p) = project(
        "wait_fixture",
        r#"
services:
  faster:
    image: busybox
    command: sleep 0.2
  slower:
    image: busybox
    command: sh -c 'sleep 0.6; exit 3'
  infinity:
    image: busybox
    command: sleep infinity
    init: true
"#,
    ) else {
        return;
    };
    p.ok(&["up", "-d"]);
    let o = p.rc(&["wait", "faster", "slower"]);
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    let ps = stdout(&p.ok(&["ps", "--format", "{{.Name}}"]));
    assert!(ps.contains("infinity") && !ps.contains("slower"), "{ps}");
    p.ok(&["down"]);
    p.assert_nothing_left();
}

#[test]
fn network_modes_host_none_and_service() {
    let Some(p) = project(
        "netmodes",
        r#"
services:
  web:
    image: busybox
    init: true
    command: sleep infinity
  sidecar:
    image: busybox
    init: true
    command: sleep infinity
    network_mode: "service:web"
  isolated:
    image: busybox
    init: true
    command: sleep infinity
    network_mode: none
  onhost:
    image: busybox
    init: true
    command: sleep infinity
    network_mode: host
"#,
    ) else {
        return;
    };
    p.ok(&["up", "-d"]);
    let links = |svc: &str| {
        stdout(&p.ok(&["exec", "-T", svc, "ip", "-o", "link"]))
            .lines()
            .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            .collect::<Vec<_>>()
    };
    let addr = |svc: &str| stdout(&p.ok(&["exec", "-T", svc, "ip", "-o", "-4", "addr"]));
    // service:web shares web's namespace: the same interfaces and addresses, and web's
    // resolver (docker: the same resolv.conf), so it finds the project's services by name.
    assert_eq!(addr("sidecar"), addr("web"));
    let resolv = stdout(&p.ok(&["exec", "-T", "sidecar", "cat", "/etc/resolv.conf"]));
    assert!(resolv.contains("nameserver 127.0.0.11"), "{resolv}");
    let found = p.rc(&["exec", "-T", "sidecar", "nslookup", "web"]);
    assert!(
        found.status.success(),
        "sidecar cannot resolve web:
{}",
        out(&found)
    );
    // none: only lo.
    assert_eq!(links("isolated"), ["lo"]);
    // host: the host's own links.
    let host_links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .expect("/sys/class/net")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let seen = links("onhost");
    assert!(
        seen.iter()
            .any(|l| l != "lo" && host_links.iter().any(|h| l.starts_with(h.as_str()))),
        "{seen:?} vs {host_links:?}"
    );
    p.ok(&["down"]);
    p.assert_nothing_left();
}

/// `run`'s own flags: `-p`, `-v` (a relative path from where the command runs), `--cap-add`,
/// `--cap-drop`, `--env-from-file` (under `-e`).
#[test]
fn run_flags_publish_volume_capabilities_and_env_files() {
    let Some(p) = project(
        "run_flags",
        "services:\n  web:\n    image: busybox\n    environment:\n      BOTH: service\n",
    ) else {
        return;
    };
    let dir = p.dir.path();
    std::fs::write(dir.join("vars.env"), "FROM_FILE=yes\nBOTH=file\n").expect("env file");
    std::fs::create_dir(dir.join("data")).expect("data dir");
    std::fs::write(dir.join("data/f"), "bound\n").expect("data file");
    let o = p.ok(&[
        "run",
        "--rm",
        "-T",
        "-v",
        "./data:/data:ro",
        "--cap-drop",
        "CHOWN",
        "--cap-add",
        "NET_ADMIN",
        "--env-from-file",
        "vars.env",
        "-e",
        "BOTH=flag",
        "web",
        "sh",
        "-c",
        "cat /data/f; grep CapEff /proc/self/status; echo $FROM_FILE $BOTH; \
         touch /data/g 2>/dev/null || echo read-only",
    ]);
    // Docker's default set (a80425fb) without CHOWN (bit 0), with NET_ADMIN (bit 12).
    assert_eq!(
        stdout(&o),
        "bound\nCapEff:\t00000000a80435fa\nyes flag\nread-only\n",
        "{}",
        out(&o)
    );

    // --pull and --quiet-pull: the policy applies to this run.
    let o = p.ok(&[
        "run",
        "--rm",
        "-T",
        "--pull",
        "never",
        "--quiet-pull",
        "web",
        "true",
    ]);
    assert!(!stderr(&o).contains("Pulling"), "{}", out(&o));
    let o = p.rc(&["run", "--rm", "-T", "--pull", "sometimes", "web", "true"]);
    assert!(
        !o.status.success() && stderr(&o).contains("sometimes"),
        "{}",
        out(&o)
    );

    // A service dropped from the file: named by `run`, removed by `run --remove-orphans`.
    let compose = dir.join("compose.yaml");
    let original = std::fs::read_to_string(&compose).expect("compose");
    std::fs::write(
        &compose,
        format!("{original}  old:\n    image: busybox\n    init: true\n    command: sleep 600\n"),
    )
    .expect("compose with old");
    p.ok(&["up", "-d", "old"]);
    std::fs::write(&compose, &original).expect("compose without old");
    let o = p.ok(&["run", "--rm", "-T", "web", "true"]);
    assert!(
        stderr(&o).contains("Found orphan containers"),
        "{}",
        out(&o)
    );
    p.ok(&["run", "--rm", "-T", "--remove-orphans", "web", "true"]);
    let old = format!("{}-old-1", p.name);
    assert!(
        Project::container(&p.state_json(), &old).is_null(),
        "{old} is still there"
    );

    let port = free_ports(1)[0];
    p.ok(&[
        "run",
        "-d",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "web",
        "sh",
        "-c",
        "mkdir /www && echo published > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http_get(port, "/").contains("published")
        {
            break;
        }
        assert!(Instant::now() < deadline, "port {port} never served");
        std::thread::sleep(Duration::from_millis(50));
    }
    p.ok(&["down", "-t", "0"]);
    p.assert_nothing_left();
}

/// `exec` from the CLI: `-u`, `-w`, `-e`, `--privileged`, `--index`, and the command's exit code.
#[test]
fn exec_flags_and_exit_code() {
    let Some(p) = project(
        "exec_flags",
        "services:\n  box:\n    image: busybox\n    init: true\n    command: sleep 600\n    environment:\n      FROM: service\n    deploy:\n      replicas: 2\n",
    ) else {
        return;
    };
    p.ok(&["up", "-d"]);
    let o = p.rc(&[
        "exec",
        "-T",
        "-u",
        "nobody",
        "-w",
        "/tmp",
        "-e",
        "EXTRA=flag",
        "box",
        "sh",
        "-c",
        "id -un; pwd; echo $FROM $EXTRA; hostname; exit 4",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", out(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        &lines[..3],
        ["nobody", "/tmp", "service flag"],
        "{}",
        out(&o)
    );
    let first_host = lines[3].to_string();
    let o = p.ok(&["exec", "-T", "--index", "2", "box", "hostname"]);
    assert_ne!(stdout(&o).trim(), first_host, "--index 2 ran in replica 1");
    let caps = |o: &std::process::Output| {
        stdout(o)
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).expect("hex"))
            .expect("CapEff")
    };
    let plain = caps(&p.ok(&["exec", "-T", "box", "grep", "CapEff", "/proc/self/status"]));
    let privileged = caps(&p.ok(&[
        "exec",
        "-T",
        "--privileged",
        "box",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]));
    assert_eq!(plain, 0xa80425fb, "docker's default set");
    assert!(
        privileged & plain == plain && privileged.count_ones() > plain.count_ones() + 20,
        "--privileged: {privileged:x}"
    );
    let o = p.rc(&["exec", "-T", "box", "no-such-command"]);
    assert_eq!(o.status.code(), Some(127), "{}", out(&o));
    p.ok(&["down", "-t", "0"]);
    p.assert_nothing_left();
}

/// Two projects on one network (`name:` in one, `name:` + `external: true` in the other), as
/// docker compose shares networks by name: each container resolves the other project's by
/// container name, service name and alias — and not what sits on the other project's private
/// network —, addresses never collide, and either project goes down and comes back without
/// breaking the other's names. The last one down removes the bridge. (docker compose keeps
/// an `external` network for ever; rcompose's last user removes one that an rcompose project
/// made, so nothing is left.)
#[test]
fn projects_share_a_network_by_name_in_any_order() {
    let network = format!("lcshare-{:x}", std::process::id());
    let Some(a) = project(
        "share_network",
        &format!(
            r#"
services:
  api:
    image: busybox
    init: true
    command: ["sh", "-c", "mkdir -p /www && echo from-a > /www/index.html && exec httpd -f -p 80 -h /www"]
    networks:
      shared: {{aliases: [backend]}}
      private: {{}}
  db:
    image: busybox
    init: true
    command: sleep infinity
    networks: [private]
networks:
  shared: {{name: {network}}}
  private: {{}}
"#
        ),
    ) else {
        return;
    };
    let b_dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        b_dir.path().join("compose.yaml"),
        format!(
            r#"
services:
  client:
    image: busybox
    init: true
    command: sleep infinity
    networks: [shared]
networks:
  shared: {{name: {network}, external: true}}
"#
        ),
    )
    .expect("write the other project's compose.yaml");
    let b_name = common::project_name("lcshareb");
    let b = |args: &[&str]| {
        a.state
            .cmd(&a.env)
            .current_dir(b_dir.path())
            .args(["-p", &b_name])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run rcompose")
    };
    struct Down<F: Fn(&[&str]) -> std::process::Output>(F);
    impl<F: Fn(&[&str]) -> std::process::Output> Drop for Down<F> {
        fn drop(&mut self) {
            let _ = (self.0)(&["down", "-t", "0"]);
        }
    }
    let b = Down(b);
    let b_ok = |args: &[&str]| {
        let o = (b.0)(args);
        assert!(
            o.status.success(),
            "{args:?} of the other project failed:\n{}",
            out(&o)
        );
        o
    };
    let b_state = || -> serde_json::Value {
        let path = a
            .state
            .run()
            .join("projects")
            .join(&b_name)
            .join("state.json");
        std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    };
    let address = |s: &serde_json::Value, container: &str, network_key: &str| -> String {
        Project::container(s, container)["network"]["interfaces"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["network"] == network_key)
            .and_then(|i| i["address"].as_str())
            .unwrap_or_else(|| panic!("no address of {container} on {network_key}: {s:#}"))
            .to_string()
    };
    let (api, db, client) = (
        format!("{}-api-1", a.name),
        format!("{}-db-1", a.name),
        format!("{b_name}-client-1"),
    );
    // `nslookup NAME` in a container; Some(output) when it resolved.
    let lookup_in_b = |name: &str| {
        let o = (b.0)(&["exec", "-T", "client", "nslookup", name]);
        o.status.success().then(|| out(&o))
    };
    let lookup_in_a = |name: &str| {
        let o = a.rc(&["exec", "-T", "api", "nslookup", name]);
        o.status.success().then(|| out(&o))
    };

    a.ok(&["up", "-d"]);
    b_ok(&["up", "-d"]);
    let bridge = a
        .bridges()
        .into_iter()
        .find(|br| {
            a.state_json()["networks"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|n| n["bridge"] == br.as_str() && n["name"] == network.as_str())
        })
        .expect("the shared network's bridge");
    let (api_ip, db_ip) = (
        address(&a.state_json(), &api, "shared"),
        address(&a.state_json(), &db, "private"),
    );
    let client_ip = address(&b_state(), &client, "shared");
    assert_ne!(api_ip, client_ip, "two projects were given one address");
    for name in ["backend", "api", api.as_str()] {
        let found = lookup_in_b(name).unwrap_or_else(|| panic!("b cannot resolve {name}"));
        assert!(
            found.contains(&api_ip),
            "b resolved {name} elsewhere:\n{found}"
        );
    }
    assert!(
        lookup_in_b("db").is_none_or(|o| !o.contains(&db_ip)),
        "b resolved a's db on a's private network"
    );
    let found = lookup_in_a(&client).expect("a cannot resolve b's container");
    assert!(found.contains(&client_ip), "{found}");
    let page = b_ok(&["exec", "-T", "client", "wget", "-qO-", "http://backend/"]);
    assert_eq!(stdout(&page).trim(), "from-a");

    // a goes first: b keeps the bridge and its own names; a's are gone from b's view.
    a.ok(&["down", "-t", "0"]);
    assert!(link_exists(&bridge), "a removed the bridge b still uses");
    assert!(lookup_in_b(&client).is_some_and(|o| o.contains(&client_ip)));
    assert!(
        lookup_in_b("backend").is_none(),
        "b still resolves a's api after a's down"
    );
    // a comes back beside b: its api gets another address than b's client, and is found.
    a.ok(&["up", "-d"]);
    let api_ip = address(&a.state_json(), &api, "shared");
    assert_ne!(api_ip, client_ip, "a took the address b's client holds");
    let found = lookup_in_b("backend").expect("b cannot resolve a's api after its new up");
    assert!(found.contains(&api_ip), "{found}");

    // b goes first now: a is untouched.
    b_ok(&["down", "-t", "0"]);
    assert!(link_exists(&bridge));
    assert!(lookup_in_a("backend").is_some_and(|o| o.contains(&api_ip)));
    assert!(
        lookup_in_a(&client).is_none(),
        "a still resolves b's client after b's down"
    );

    // b again, then a down, then b down: the last one removes the bridge.
    b_ok(&["up", "-d"]);
    a.ok(&["down", "-t", "0"]);
    assert!(link_exists(&bridge));
    b_ok(&["down", "-t", "0"]);
    assert!(
        !link_exists(&bridge),
        "the last project down left bridge {bridge}"
    );
    assert!(
        !a.state.run().join("projects").join(&b_name).exists(),
        "b's state is left"
    );
    let left: Vec<_> = std::fs::read_dir(a.state.run().join("networks"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "network registry entries left: {left:?}");
    a.assert_nothing_left();
}

/// `network create|ls|inspect|rm|prune`, docker's shapes: a network made outside any project is
/// joined by name (`external: true`), shows its containers, cannot be removed while one is on
/// it, outlives the project's `down`, and `rm` removes it (bridge and firewall table); a
/// project's own network is the project's to remove; `prune` removes the unused ones.
#[test]
fn network_commands_make_list_inspect_and_remove_networks() {
    let pid = std::process::id();
    let (net, spare) = (format!("lcnet-{pid:x}"), format!("lcnet-spare-{pid:x}"));
    let subnet = format!("10.179.{}.0/24", pid % 250);
    let Some(p) = project(
        "network_commands",
        &format!(
            r#"
services:
  app:
    image: busybox
    init: true
    command: sleep infinity
    networks: [outside, own]
networks:
  outside: {{name: {net}, external: true}}
  own: {{}}
"#
        ),
    ) else {
        return;
    };
    // A failed assertion must not leave the networks made here.
    struct Remove<'a>(&'a Project, [&'a str; 2]);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = self.0.rc(&["down", "-t", "0"]);
            let _ = self.0.rc(&["network", "rm", "-f", self.1[0], self.1[1]]);
        }
    }
    let _remove = Remove(&p, [&net, &spare]);
    let o = p.rc(&[
        "network", "create", "--subnet", &subnet, "--label", "team=lc", &net,
    ]);
    assert!(o.status.success(), "network create failed:\n{}", out(&o));
    let id = stdout(&o).trim().to_string();
    assert_eq!(id.len(), 64, "network create prints the id: {id:?}");
    let bridge = format!("rc-{}", &id[..12]);
    assert!(link_exists(&bridge), "no bridge {bridge}");
    let again = p.rc(&["network", "create", &net]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("already exists"), "{}", out(&again));

    let listed = stdout(&p.ok(&["network", "ls", "--filter", "label=team=lc", "-q"]));
    assert_eq!(listed.trim(), &id[..12]);
    let table = stdout(&p.ok(&["network", "ls"]));
    assert!(table.starts_with("NETWORK ID"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.contains(&net) && l.contains("bridge")),
        "{table}"
    );

    p.ok(&["up", "-d"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&stdout(&p.ok(&["network", "inspect", &net]))).expect("json");
    let n = &inspect[0];
    assert_eq!(n["Id"], id.as_str());
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], subnet.as_str());
    assert_eq!(n["Labels"]["team"], "lc");
    let containers = n["Containers"].as_object().expect("containers");
    assert_eq!(containers.len(), 1, "{n:#}");
    let app = containers.values().next().expect("one container");
    assert_eq!(app["Name"], format!("{}-app-1", p.name).as_str());
    let prefix = subnet.trim_end_matches("0/24");
    assert!(
        app["IPv4Address"]
            .as_str()
            .unwrap_or("")
            .starts_with(prefix),
        "{app:#}"
    );
    // The project's own network is listed too, with compose's labels.
    let own = format!("{}_own", p.name);
    let o = p.ok(&[
        "network",
        "inspect",
        "-f",
        "{{.Name}} {{json .Labels}}",
        &own,
    ]);
    assert!(
        stdout(&o).contains("com.docker.compose.project"),
        "{}",
        out(&o)
    );

    let busy = p.rc(&["network", "rm", &net]);
    assert!(!busy.status.success(), "a network in use was removed");
    assert!(
        stderr(&busy).contains(&format!("{}-app-1", p.name)),
        "{}",
        out(&busy)
    );
    let theirs = p.rc(&["network", "rm", &own]);
    assert!(!theirs.status.success());
    assert!(stderr(&theirs).contains("down"), "{}", out(&theirs));
    let dry = p.rc(&["--dry-run", "network", "create", &spare]);
    assert!(!dry.status.success(), "--dry-run network create acted");

    p.ok(&["down", "-t", "0"]);
    assert!(
        link_exists(&bridge),
        "the project's down removed a network it did not make"
    );
    let removed = p.ok(&["network", "rm", &id[..12]]);
    assert_eq!(stdout(&removed).trim(), net);
    assert!(!link_exists(&bridge), "network rm left bridge {bridge}");
    let tables = std::process::Command::new("nft")
        .args(["list", "tables"])
        .output()
        .expect("nft");
    assert!(
        !stdout(&tables).contains(&id[..12]),
        "network rm left its firewall table:\n{}",
        stdout(&tables)
    );

    p.ok(&["network", "create", &spare]);
    let pruned = stdout(&p.ok(&["network", "prune", "-f"]));
    assert!(
        pruned.contains("Deleted Networks:") && pruned.contains(&spare),
        "{pruned}"
    );
    assert!(stdout(&p.ok(&["network", "ls", "-q"])).trim().is_empty());
    p.assert_nothing_left();
}

/// A bridge name the file chooses that a link of the host already has (not one of rcompose's):
/// `up` fails naming the network and the link, and nothing is made — the link keeps its
/// address.
#[test]
fn a_bridge_name_taken_on_the_host_is_refused() {
    let link = format!("lctk{:x}", std::process::id() % 0xfffff);
    let Some(p) = project(
        "bridge_taken",
        &format!(
            r#"
services:
  app: {{image: busybox, command: sleep infinity, networks: [n]}}
networks:
  n: {{driver_opts: {{com.docker.network.bridge.name: {link}}}}}
"#
        ),
    ) else {
        return;
    };
    // A bridge made by hand, as docker0 is (this kernel may have no dummy links).
    assert!(ip(&["link", "add", &link, "type", "bridge"])
        .status
        .success());
    let _del = DelLink(link.clone());
    assert!(ip(&["addr", "add", "192.0.2.77/32", "dev", &link])
        .status
        .success());
    let o = p.rc(&["up", "-d"]);
    assert!(!o.status.success(), "up took over {link}:\n{}", out(&o));
    assert!(
        stderr(&o).contains(&format!("bridge name {link} is already taken")),
        "{}",
        out(&o)
    );
    let addr = stdout(&ip(&["-o", "addr", "show", "dev", &link]));
    assert!(
        addr.contains("192.0.2.77/32"),
        "the link lost its address: {addr}"
    );
    p.ok(&["down"]);
    p.assert_nothing_left();
}

/// Docker's bridge options: `enable_icc: false` keeps the network's containers from each other
/// (they still reach the gateway), `enable_ip_masquerade: false` leaves the network out of
/// masquerade, and `host_binding_ipv4` is the address of ports published without one.
#[test]
fn bridge_driver_options_apply() {
    let port = free_ports(1)[0];
    let Some(p) = project(
        "bridge_options",
        &format!(
            r#"
services:
  a: {{image: busybox, init: true, command: sleep infinity, networks: [quiet]}}
  b: {{image: busybox, init: true, command: sleep infinity, networks: [quiet]}}
  web:
    image: busybox
    init: true
    command: ["sh", "-c", "mkdir -p /www && echo bound > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports: ["{port}:80"]
    networks: [bound]
networks:
  quiet:
    driver_opts:
      com.docker.network.bridge.enable_icc: "false"
      com.docker.network.bridge.enable_ip_masquerade: "false"
  bound:
    driver_opts:
      com.docker.network.bridge.host_binding_ipv4: 127.0.0.1
"#
        ),
    ) else {
        return;
    };
    p.ok(&["up", "-d"]);
    let s = p.state_json();
    let net = |key: &str| {
        s["networks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["key"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("no network {key}: {s:#}"))
    };
    let (quiet, bound) = (net("quiet"), net("bound"));
    // Networks of services started apart are planned apart: never on one subnet.
    assert_ne!(quiet["subnet"], bound["subnet"], "{s:#}");
    let b_ip = Project::container(&s, &format!("{}-b-1", p.name))["network"]["interfaces"][0]
        ["address"]
        .as_str()
        .expect("b's address")
        .to_string();
    let gateway = quiet["gateway"].as_str().expect("gateway").to_string();
    let to_b = p.rc(&["exec", "-T", "a", "ping", "-c", "1", "-W", "1", &b_ip]);
    assert!(!to_b.status.success(), "a reached b with enable_icc false");
    let to_gw = p.rc(&["exec", "-T", "a", "ping", "-c", "1", "-W", "2", &gateway]);
    assert!(
        to_gw.status.success(),
        "a cannot reach its gateway:\n{}",
        out(&to_gw)
    );

    let published = stdout(&p.ok(&["port", "web", "80"]));
    assert_eq!(published.trim(), format!("127.0.0.1:{port}"));
    assert!(http_get(port, "/").contains("bound"));

    let table = std::process::Command::new("nft")
        .args(["list", "table", "ip", &format!("rcompose-{}", p.name)])
        .output()
        .expect("nft");
    let table = stdout(&table);
    let masq = |subnet: &serde_json::Value| {
        format!("ip saddr {} oifname", subnet.as_str().unwrap_or_default())
    };
    assert!(!table.contains(&masq(&quiet["subnet"])), "{table}");
    assert!(table.contains(&masq(&bound["subnet"])), "{table}");
    p.ok(&["down", "-t", "0"]);
    p.assert_nothing_left();
}

/// The macvlan driver with a `parent` interface of the host (here one end of a veth pair made
/// for the test): each container gets a macvlan link of it with its address on the parent's
/// network, they reach and resolve each other, nothing of rcompose's is made on the host
/// (no bridge, no rule), and `down` leaves the parent as it was. A parent that does not exist
/// is an error naming it, before anything is made.
#[test]
fn macvlan_networks_use_a_parent_interface() {
    let pid = std::process::id();
    let (parent, peer) = (
        format!("lcmv{:x}", pid % 0xfffff),
        format!("lcmq{:x}", pid % 0xfffff),
    );
    let subnet = format!("10.183.{}", pid % 250);
    let compose = |parent: &str| {
        format!(
            r#"
services:
  a: {{image: busybox, init: true, command: sleep infinity, networks: [lan]}}
  b: {{image: busybox, init: true, command: sleep infinity, networks: [lan]}}
networks:
  lan:
    driver: macvlan
    driver_opts: {{parent: {parent}}}
    ipam: {{config: [{{subnet: {subnet}.0/24, gateway: {subnet}.1}}]}}
"#
        )
    };
    let Some(p) = project("macvlan", &compose(&parent)) else {
        return;
    };
    let _del = veth_parent(&parent, &peer);
    // A kernel without macvlan cannot run this test (it has veth pairs and bridges).
    if let Err(said) = kernel_makes("macvlan", &parent, &format!("lcmp{:x}", pid % 0xfffff)) {
        common::skip(
            "macvlan_networks_use_a_parent_interface",
            &format!("needs macvlan links in the kernel: {said}"),
        );
        return;
    }

    p.ok(&["up", "-d"]);
    let s = p.state_json();
    let addr = |svc: &str| {
        Project::container(&s, &format!("{}-{svc}-1", p.name))["network"]["interfaces"][0]
            ["address"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let b_ip = addr("b");
    assert!(b_ip.starts_with(&format!("{subnet}.")), "{b_ip}");
    // eth0 is a link of the parent: `eth0@if<the parent's index>`.
    let index = std::fs::read_to_string(format!("/sys/class/net/{parent}/ifindex"))
        .expect("the parent's index");
    let link = stdout(&p.ok(&["exec", "-T", "a", "ip", "link", "show", "eth0"]));
    assert!(
        link.contains(&format!("eth0@if{}:", index.trim())),
        "eth0 is no link of {parent}:\n{link}"
    );
    let ping = p.rc(&["exec", "-T", "a", "ping", "-c", "1", "-W", "2", &b_ip]);
    assert!(ping.status.success(), "a cannot reach b:\n{}", out(&ping));
    let found = stdout(&p.ok(&["exec", "-T", "a", "nslookup", "b"]));
    assert!(found.contains(&b_ip), "{found}");
    // Nothing of the network on the host: no bridge, no veth host end (other tests' links
    // come and go meanwhile, so only this project's are looked for).
    let network = &s["networks"][0];
    assert!(
        !link_exists(network["bridge"].as_str().unwrap_or("?")),
        "{network:#}"
    );
    for c in ["a", "b"] {
        let iface =
            &Project::container(&s, &format!("{}-{c}-1", p.name))["network"]["interfaces"][0];
        let host_end = iface["host_veth"].as_str().unwrap_or_default();
        assert!(!link_exists(host_end), "{c} has a host end {host_end}");
    }
    p.ok(&["down", "-t", "0"]);
    let still = stdout(&ip(&["-br", "link", "show", &parent]));
    assert!(still.contains("UP"), "down touched the parent: {still}");
    p.assert_nothing_left();

    std::fs::write(p.dir.path().join("compose.yaml"), compose("lcmvnothere")).expect("write");
    let o = p.rc(&["up", "-d"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("parent interface lcmvnothere does not exist"),
        "{}",
        out(&o)
    );
    p.ok(&["down"]);
    p.assert_nothing_left();
}

/// The command right after `down` never reaches the supervisor that served the `down`: that
/// one exits, and a request it took would be cut off ("the supervisor went away"). With a
/// named volume kept, the project's directory (and so its socket) stays after `down`; before
/// the fix about half of these `up`s failed on the busy test machine.
#[test]
fn a_command_right_after_down_reaches_a_live_supervisor() {
    let Some(p) = project(
        "after_down",
        "services:\n  app:\n    image: busybox\n    init: true\n    command: sleep infinity\n    volumes: [vol:/v]\nvolumes:\n  vol: {}\n",
    ) else {
        return;
    };
    for _ in 0..8 {
        p.ok(&["up", "-d"]);
        p.ok(&["down", "-t", "0"]);
    }
    p.ok(&["up", "-d"]);
    p.ok(&["down", "-v", "-t", "0"]);
    p.assert_nothing_left();
}

/// `enable_ipv6`: containers get IPv6 addresses on an automatic /64, reach each other over
/// IPv6 and find each other's address with AAAA queries; a port published on `[::1]` answers
/// there (the userland proxy: NAT cannot take loopback to a container), a port published on
/// every address answers on the host's IPv6 addresses too (the gateway is one), and `down`
/// leaves no `ip6` table.
#[test]
fn ipv6_networks_between_services_and_published_ports() {
    let ports = free_ports(3);
    let Some(p) = project(
        "ipv6",
        &format!(
            r#"
services:
  web:
    image: busybox
    init: true
    command: ["sh", "-c", "mkdir -p /www && echo six > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports: ["[::1]:{}:80", "{}:80"]
    networks: [v6]
  client: {{image: busybox, init: true, command: sleep infinity, networks: [v6]}}
  plain:
    image: busybox
    init: true
    command: ["sh", "-c", "mkdir -p /www && echo six > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports: ["{}:80"]
networks:
  v6: {{enable_ipv6: true}}
"#,
            ports[0], ports[1], ports[2]
        ),
    ) else {
        return;
    };
    p.ok(&["up", "-d"]);
    let s = p.state_json();
    let net = s["networks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["key"] == "v6")
        .unwrap_or_else(|| panic!("no network v6: {s:#}"));
    let subnet6 = net["ipv6"]["subnet"]
        .as_str()
        .expect("an IPv6 subnet")
        .to_string();
    let gateway6 = net["ipv6"]["gateway"]
        .as_str()
        .expect("an IPv6 gateway")
        .to_string();
    assert!(
        subnet6.starts_with("fd") && subnet6.ends_with("/64"),
        "{subnet6}"
    );
    let web6 = Project::container(&s, &format!("{}-web-1", p.name))["network"]["interfaces"][0]
        ["address6"]
        .as_str()
        .expect("web's IPv6 address")
        .to_string();

    // AAAA from the embedded DNS, and HTTP over IPv6 between the services.
    let aaaa = p.ok(&[
        "exec",
        "-T",
        "client",
        "nslookup",
        "-type=aaaa",
        "web",
        "127.0.0.11",
    ]);
    assert!(stdout(&aaaa).contains(&web6), "{}", out(&aaaa));
    let got = p.ok(&[
        "exec",
        "-T",
        "client",
        "wget",
        "-qO-",
        &format!("http://[{web6}]/"),
    ]);
    assert_eq!(stdout(&got).trim(), "six");

    // From the host: [::1] (explicit, then implicit), and the host's own IPv6 address.
    let get6 = |host: &str, port: u16| {
        let addr = std::net::SocketAddr::new(host.parse().expect("address"), port);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                write!(s, "GET / HTTP/1.0\r\n\r\n").unwrap();
                let mut body = String::new();
                let _ = s.read_to_string(&mut body);
                if body.contains("six") {
                    return body;
                }
            }
            assert!(Instant::now() < deadline, "nothing answers on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    get6("::1", ports[0]);
    get6("::1", ports[1]);
    get6(&gateway6, ports[1]);
    // A container without IPv6 answers on IPv6 too, through the proxy on [::].
    get6("::1", ports[2]);
    assert!(http_get_ready(ports[1]).contains("six"));
    let ps = stdout(&p.ok(&["ps"]));
    assert!(ps.contains(&format!("[::1]:{}->80/tcp", ports[0])), "{ps}");

    // `network inspect` in docker's shape: the IPv6 pool and the container's IPv6 address.
    let inspect: serde_json::Value = serde_json::from_str(&stdout(&p.ok(&[
        "network",
        "inspect",
        &format!("{}_v6", p.name),
    ])))
    .expect("json");
    assert_eq!(inspect[0]["EnableIPv6"], true, "{inspect:#}");
    assert_eq!(inspect[0]["IPAM"]["Config"][1]["Subnet"], subnet6.as_str());
    let listed = inspect[0]["Containers"].to_string();
    assert!(listed.contains(&format!("{web6}/64")), "{inspect:#}");
    // `network create --ipv6` with a subnet of each family.
    let standalone = format!("lc6-{:x}", std::process::id());
    let v6net = format!("fd00:{:x}::/64", std::process::id() % 0xffff);
    p.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        &v6net,
        &standalone,
    ]);
    let made = p.rc(&["network", "inspect", &standalone]);
    p.ok(&["network", "rm", &standalone]);
    let made: serde_json::Value = serde_json::from_str(&stdout(&made)).expect("json");
    assert_eq!(made[0]["EnableIPv6"], true, "{made:#}");
    assert_eq!(
        made[0]["IPAM"]["Config"][1]["Subnet"],
        v6net.as_str(),
        "{made:#}"
    );

    // A replaced container takes its [::1] ports over (the old listener is closed first).
    let compose = std::fs::read_to_string(p.dir.path().join("compose.yaml")).expect("read");
    let changed = compose.replace(
        "    networks: [v6]\n  client",
        "    environment: {REV: '2'}\n    networks: [v6]\n  client",
    );
    assert_ne!(compose, changed);
    std::fs::write(p.dir.path().join("compose.yaml"), changed).expect("write");
    p.ok(&["up", "-d"]);
    let web_id = |s: &serde_json::Value| {
        Project::container(s, &format!("{}-web-1", p.name))["id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_ne!(web_id(&s), web_id(&p.state_json()), "web was not replaced");
    get6("::1", ports[0]);
    get6("::1", ports[1]);
    let table = std::process::Command::new("nft")
        .args(["list", "table", "ip6", &format!("rcompose-{}", p.name)])
        .output()
        .expect("nft");
    let table = stdout(&table);
    assert!(
        table.contains(&format!("ip6 saddr {subnet6} oifname")),
        "no masquerade of {subnet6}:\n{table}"
    );
    p.ok(&["down", "-t", "0"]);
    p.assert_nothing_left();
}

/// The ipvlan driver with a `parent` interface (one end of a veth pair made for the test):
/// containers get ipvlan links of it (sharing its MAC address) on its network, reach and
/// resolve each other, and nothing of rcompose's is made on the host. On a kernel without
/// ipvlan (this project's CI machine has none) `up` must fail saying so, with nothing left.
#[test]
fn ipvlan_networks_use_a_parent_interface() {
    let test = "ipvlan_networks_use_a_parent_interface";
    let pid = std::process::id();
    let (parent, peer) = (
        format!("lciv{:x}", pid % 0xfffff),
        format!("lciq{:x}", pid % 0xfffff),
    );
    let subnet = format!("10.184.{}", pid % 250);
    let Some(p) = project(
        "ipvlan",
        &format!(
            r#"
services:
  a: {{image: busybox, init: true, command: sleep infinity, networks: [lan]}}
  b: {{image: busybox, init: true, command: sleep infinity, networks: [lan]}}
networks:
  lan:
    driver: ipvlan
    driver_opts: {{parent: {parent}, ipvlan_mode: l2}}
    ipam: {{config: [{{subnet: {subnet}.0/24, gateway: {subnet}.1}}]}}
"#
        ),
    ) else {
        return;
    };
    let _del = veth_parent(&parent, &peer);
    let supported = kernel_makes("ipvlan", &parent, &format!("lcip{:x}", pid % 0xfffff)).is_ok();
    if !supported {
        let o = p.rc(&["up", "-d"]);
        assert!(!o.status.success(), "up succeeded without ipvlan");
        assert!(
            stderr(&o).contains("this kernel has no ipvlan support"),
            "{}",
            out(&o)
        );
        p.ok(&["down", "-t", "0"]);
        p.assert_nothing_left();
        // Not a skip: the error path is this kernel's whole behaviour, and it was checked.
        eprintln!(
            "{test}: this kernel has no ipvlan links: the error was checked, not the data path"
        );
        return;
    }
    p.ok(&["up", "-d"]);
    let s = p.state_json();
    let b_ip = Project::container(&s, &format!("{}-b-1", p.name))["network"]["interfaces"][0]
        ["address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(b_ip.starts_with(&format!("{subnet}.")), "{b_ip}");
    // The link shares the parent's MAC address.
    let mac = std::fs::read_to_string(format!("/sys/class/net/{parent}/address"))
        .expect("the parent's MAC");
    let link = stdout(&p.ok(&["exec", "-T", "a", "ip", "link", "show", "eth0"]));
    assert!(
        link.contains(mac.trim()),
        "eth0 is no ipvlan of {parent}:\n{link}"
    );
    let ping = p.rc(&["exec", "-T", "a", "ping", "-c", "1", "-W", "2", &b_ip]);
    assert!(ping.status.success(), "a cannot reach b:\n{}", out(&ping));
    let found = stdout(&p.ok(&["exec", "-T", "a", "nslookup", "b"]));
    assert!(found.contains(&b_ip), "{found}");
    p.ok(&["down", "-t", "0"]);
    p.assert_nothing_left();
}
