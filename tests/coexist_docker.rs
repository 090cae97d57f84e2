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
use std::time::Duration;

use common::dockerd::{Backend, Dockerd, Netns, Options};
use common::{out, skip, stdout, Project};

/// Docker's container publishes this port in the test's namespace (nothing else runs there).
const DOCKER_PORT: u16 = 8081;

/// The namespace's firewall as text, without counters: iptables-save of both backends and
/// nft's ruleset.
fn firewall(ns: &Netns) -> String {
    let save = ns.sh("iptables-nft-save; echo ---; \
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
fn http_get(ns: &Netns, addr: (&str, u16), path: &str) -> String {
    let ns = File::open(ns.path()).expect("open the test's netns");
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

/// What the test needs besides root and the test bed, or why it cannot run.
fn docker_archive(test: &str, p: &Project) -> Option<PathBuf> {
    if let Some(why) = common::dockerd::missing_binaries() {
        skip(test, &why);
        return None;
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
    let engine = Dockerd::start(
        &ns,
        Options {
            backend,
            iptables: true,
        },
    );
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
        let page = http_get(&ns, ("127.0.0.1", DOCKER_PORT), "/");
        assert!(page.contains("200 OK"), "docker's container {when}: {page}");
    };
    docker_page("before up");
    let before = firewall(&ns);

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
    let first = http_get(&ns, ("127.0.0.1", port), "/");
    assert!(first.contains("seen 1 times"), "{first}");
    docker_page("beside rcompose's");
    // From the host's own address (docker0's), and from Docker's container: a client on
    // another bridge, forwarded through FORWARD and DOCKER-USER.
    let second = http_get(&ns, ("172.17.0.1", port), "/");
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
        let again = http_get(&ns, ("127.0.0.1", port), "/");
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
    let after = firewall(&ns);
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
