//! rcompose beside a real Docker engine (Debian's docker.io, iptables enabled): Docker sets the
//! filter table's FORWARD policy to DROP, adds DOCKER-USER and turns br_netfilter on, which
//! drops everything of rcompose's bridges unless rcompose opens them (network/host_firewall.rs).
//!
//! Hermetic: the engine runs in a network namespace of the test's own (iptables, nftables and
//! br_netfilter's sysctls are per namespace), with its own containerd, data root, exec root,
//! socket and cgroup parent; rcompose runs in that namespace too. Images come from the test bed:
//! rcompose pulls them from the host's namespace first (the registry on the host's 127.0.0.1 is
//! not reachable from the test's namespace), Docker loads an archive.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{out, skip, stdout, Project};

/// The Docker CLI matching Debian's engine.
const DOCKER: &str = "/usr/bin/docker";
/// Docker's container publishes this port in the test's namespace (nothing else runs there).
const DOCKER_PORT: u16 = 8081;

/// A network namespace of this test, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(name: String) -> Netns {
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.sh("ip link set lo up");
        // As Docker finds a fresh host: forwarding off, so it turns it on and sets FORWARD's
        // policy to DROP (it keeps the policy when forwarding was on already).
        ns.sh("echo 0 > /proc/sys/net/ipv4/ip_forward");
        ns
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// `cmd` run in the namespace with nsenter (not `ip netns exec`, which remounts /sys and
    /// so hides the cgroup mounts dockerd needs). Its stdio settings are not copied.
    fn wrap(&self, cmd: &Command) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            c.current_dir(dir);
        }
        c
    }

    fn sh(&self, script: &str) -> String {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        stdout(&run_ok(&mut self.wrap(&c)))
    }

    /// The namespace's firewall as text, without counters: iptables-save of both backends and
    /// nft's ruleset.
    fn firewall(&self) -> String {
        let save = self.sh("iptables-nft-save; echo ---; \
             grep -qx filter /proc/net/ip_tables_names 2>/dev/null && iptables-legacy-save; \
             echo ---; nft -s list ruleset");
        save.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                // ":FORWARD DROP [12:345]": counters go.
                match (l.starts_with(':'), l.rfind(" [")) {
                    (true, Some(i)) => &l[..i],
                    _ => l,
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// An HTTP GET to `addr` from inside the namespace.
    fn http_get(&self, addr: (&str, u16), path: &str) -> String {
        let ns = File::open(self.path()).expect("open the test's netns");
        let addr = (addr.0.to_string(), addr.1);
        let path = path.to_string();
        std::thread::spawn(move || {
            // A network namespace is per thread: only this one moves.
            // SAFETY: setns on an open namespace file; no memory is involved.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let mut s = std::net::TcpStream::connect_timeout(
                &format!("{}:{}", addr.0, addr.1).parse().expect("address"),
                Duration::from_secs(5),
            )
            .unwrap_or_else(|e| panic!("connect to {addr:?} in the test's netns: {e}"));
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
            let mut body = String::new();
            let _ = s.read_to_string(&mut body);
            body
        })
        .join()
        .expect("http thread")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Which iptables dockerd uses.
#[derive(Clone, Copy, Debug)]
enum Backend {
    Nft,
    Legacy,
}

/// A private dockerd and containerd in the test's namespace, stopped on drop.
struct Dockerd {
    dir: tempfile::TempDir,
    containerd: Child,
    dockerd: Child,
    cgroup_parent: String,
}

impl Dockerd {
    fn start(ns: &Netns, backend: Backend) -> Dockerd {
        // Socket paths must stay short: under /var/tmp, not the test's deep temp dirs.
        let dir = tempfile::Builder::new()
            .prefix("rc-dk-")
            .tempdir_in("/var/tmp")
            .expect("docker dir");
        let d = dir.path();
        let conf = format!(
            "version = 2\nroot = \"{d}/containerd/root\"\nstate = \"{d}/containerd/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{d}/containerd.sock\"\n\
             [ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n\
             [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/containerd/opt\"\n",
            d = d.display()
        );
        std::fs::write(d.join("containerd.toml"), conf).unwrap();
        // dockerd finds `iptables` on PATH: a directory that makes it the legacy one.
        let mut path = std::env::var("PATH").unwrap_or_default();
        if let Backend::Legacy = backend {
            let bin = d.join("bin");
            std::fs::create_dir(&bin).unwrap();
            for (name, target) in [
                ("iptables", "/usr/sbin/iptables-legacy"),
                ("iptables-save", "/usr/sbin/iptables-legacy-save"),
                ("iptables-restore", "/usr/sbin/iptables-legacy-restore"),
            ] {
                std::os::unix::fs::symlink(target, bin.join(name)).unwrap();
            }
            path = format!("{}:{path}", bin.display());
        }
        let log = |name: &str| File::create(d.join(name)).expect("log file");
        let mut c = Command::new("containerd");
        c.arg("--config").arg(d.join("containerd.toml"));
        let containerd = ns
            .wrap(&c)
            .stdin(Stdio::null())
            .stdout(log("containerd.log"))
            .stderr(log("containerd.err"))
            .spawn()
            .expect("start containerd");
        let cgroup_parent = format!("/rc-dk-{}-{backend:?}", std::process::id());
        let mut c = Command::new("dockerd");
        c.arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}/docker.sock", d.display()))
            .arg("--containerd")
            .arg(d.join("containerd.sock"))
            .args(["--cgroup-parent", &cgroup_parent])
            // Its defaults otherwise: iptables on, the docker0 bridge, masquerade.
            .env("PATH", path);
        let dockerd = ns
            .wrap(&c)
            .stdin(Stdio::null())
            .stdout(log("dockerd.log"))
            .stderr(log("dockerd.err"))
            .spawn()
            .expect("start dockerd");
        let mut engine = Dockerd {
            dir,
            containerd,
            dockerd,
            cgroup_parent,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !engine.docker(&["info"]).status.success() {
            let exited = engine.dockerd.try_wait().ok().flatten();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "dockerd did not start ({exited:?}): {}",
                std::fs::read_to_string(engine.dir.path().join("dockerd.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        engine
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new(DOCKER)
            .arg("-H")
            .arg(format!("unix://{}/docker.sock", self.dir.path().display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    fn docker_ok(&self, args: &[&str]) -> Output {
        let o = self.docker(args);
        assert!(o.status.success(), "docker {args:?}:\n{}", out(&o));
        o
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // Containers first: busybox httpd as PID 1 ignores SIGTERM, and dockerd would wait.
        let ids = stdout(&self.docker(&["ps", "-aq"]));
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.docker(&args);
        }
        for child in [&mut self.dockerd, &mut self.containerd] {
            if let Ok(pid) = i32::try_from(child.id()) {
                // nsenter execs the daemon: the pid is the daemon's.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let _ = child.wait();
        }
        for root in common::cgroup_roots() {
            let _ = std::fs::remove_dir(root.join(self.cgroup_parent.trim_start_matches('/')));
        }
    }
}

fn run_ok(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?}:\n{}", out(&o));
    o
}

/// What the test needs besides root and the test bed, or why it cannot run.
fn docker_archive(test: &str, p: &Project) -> Option<PathBuf> {
    for bin in ["/usr/sbin/dockerd", "/usr/bin/containerd", DOCKER] {
        if !Path::new(bin).exists() {
            skip(
                test,
                &format!("{bin} is missing (apt-get install docker.io; scripts/test does)"),
            );
            return None;
        }
    }
    let tars = p
        .env
        .iter()
        .find(|(k, _)| k == "RCOMPOSE_TESTBED_DIR")
        .map(|(_, v)| Path::new(v).join("tars/nginx-alpine.docker.tar"));
    match tars {
        Some(t) if t.is_file() => Some(t),
        _ => {
            skip(test, "no test bed archives (tests/testbed/testbed.sh tars)");
            None
        }
    }
}

fn web_redis_beside_docker(test: &str, backend: Backend) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("compose-examples/web-redis");
    let compose = std::fs::read_to_string(example.join("compose.yaml")).unwrap();
    let compose = compose.replace("\"8000:8000\"", "\"8000\"");
    let base = match backend {
        Backend::Nft => "cxdknft",
        Backend::Legacy => "cxdkleg",
    };
    let Some(p) = Project::new(test, base, &compose) else {
        return;
    };
    let Some(archive) = docker_archive(test, &p) else {
        return;
    };
    std::fs::copy(example.join("app.py"), p.dir.path().join("app.py")).unwrap();
    // The registry is on the host's loopback: pull from here.
    p.ok(&["pull"]);

    let ns = Netns::new(format!("rc-dk-{}-{base}", std::process::id()));
    let engine = Dockerd::start(&ns, backend);
    let docker_fw = ns.sh("iptables -S FORWARD; iptables-legacy -S FORWARD 2>/dev/null || true");
    assert!(
        docker_fw.contains("-P FORWARD DROP") && docker_fw.contains("-j DOCKER-USER"),
        "dockerd did not set up its firewall as on a fresh host:\n{docker_fw}"
    );
    assert_eq!(
        ns.sh("cat /proc/sys/net/bridge/bridge-nf-call-iptables")
            .trim(),
        "1",
        "br_netfilter is not on in the test's namespace"
    );
    engine.docker_ok(&["load", "-i", &archive.to_string_lossy()]);
    engine.docker_ok(&[
        "run",
        "-d",
        "--name",
        "dk-web",
        "-p",
        &format!("{DOCKER_PORT}:80"),
        "nginx:alpine",
    ]);
    let docker_page = |when: &str| {
        let page = ns.http_get(("127.0.0.1", DOCKER_PORT), "/");
        assert!(page.contains("200 OK"), "docker's container {when}: {page}");
    };
    docker_page("before up");
    let before = ns.firewall();

    let rc = |args: &[&str]| {
        let o = ns.wrap(&p.cmd(args)).output().expect("run rcompose");
        assert!(o.status.success(), "rcompose {args:?} failed:\n{}", out(&o));
        o
    };
    rc(&["up", "-d", "--wait"]);
    let port: u16 = stdout(&rc(&["port", "web", "8000"]))
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a published port");
    // web reaches redis over the bridge (br_netfilter: through FORWARD), and answers on its
    // published port; Docker's container at the same time.
    let first = ns.http_get(("127.0.0.1", port), "/");
    assert!(first.contains("seen 1 times"), "{first}");
    docker_page("beside rcompose's");
    // From the host's own address (docker0's), and from Docker's container: a client on
    // another bridge, forwarded through FORWARD and DOCKER-USER.
    let second = ns.http_get(("172.17.0.1", port), "/");
    assert!(second.contains("seen 2 times"), "{second}");
    let from_docker = engine.docker_ok(&[
        "run",
        "--rm",
        "nginx:alpine",
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://172.17.0.1:{port}/"),
    ]);
    assert!(
        stdout(&from_docker).contains("seen 3 times"),
        "{}",
        out(&from_docker)
    );

    if let Backend::Nft = backend {
        // Docker restarting flushes its chains, ours with them: the next `up` puts them back.
        ns.sh("iptables -F DOCKER-USER && iptables -A DOCKER-USER -j RETURN");
        rc(&["up", "-d", "--wait"]);
        let again = ns.http_get(("127.0.0.1", port), "/");
        assert!(again.contains("seen 4 times"), "{again}");
    }
    if let Backend::Legacy = backend {
        // A crashed supervisor: `down` finds the rules by their comment all the same.
        let pidfile = p
            .state
            .run()
            .join("projects")
            .join(&p.name)
            .join("supervisor.pid");
        let pid: i32 = std::fs::read_to_string(pidfile)
            .expect("supervisor.pid")
            .trim()
            .parse()
            .expect("a pid");
        // SAFETY: plain kill of the supervisor this test started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    }
    rc(&["down", "-v"]);
    let after = ns.firewall();
    assert_eq!(before, after, "the namespace's firewall differs after down");
    docker_page("after down");
    p.assert_nothing_left();
}

#[test]
fn web_redis_beside_docker_with_iptables_nft() {
    web_redis_beside_docker("web_redis_beside_docker_with_iptables_nft", Backend::Nft);
}

/// With the legacy backend, `down` comes after the supervisor was killed.
#[test]
fn web_redis_beside_docker_with_iptables_legacy() {
    web_redis_beside_docker(
        "web_redis_beside_docker_with_iptables_legacy",
        Backend::Legacy,
    );
}
