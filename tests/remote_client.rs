//! A published port seen from another host: a client in a network namespace of the test's
//! own, behind a veth to the host, reaches the service through the host's address on that
//! link, and the service sees the client's own address (DNAT, no masquerade). Hairpin: a
//! container of the project reaches the same published port through the host's address.

mod common;

use std::process::Command;

use common::{out, Project};

/// Answers every connection with the peer address it saw, then closes.
const ECHO_PEER: &str = r#"
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000))
s.listen(16)
while True:
    c, a = s.accept()
    c.sendall((a[0] + "\n").encode())
    c.close()
"#;

/// Reads one line from `addr:port`, run inside `netns` (or on the host when `None`).
const CLIENT: &str = r#"
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
print(c.recv(100).decode().strip())
"#;

/// A network namespace with a veth to the host: host side `.1`, namespace side `.2` of a /30
/// in 203.0.113.0/24 (TEST-NET-3), default route through the host. Removed on drop.
struct RemoteHost {
    ns: String,
    host_if: String,
    host_ip: String,
    client_ip: String,
}

fn ip(args: &[&str]) {
    let o = Command::new("ip").args(args).output().expect("ip");
    assert!(o.status.success(), "ip {args:?}: {}", out(&o));
}

impl RemoteHost {
    fn new() -> RemoteHost {
        let pid = std::process::id();
        let base = (pid % 63) * 4;
        let r = RemoteHost {
            ns: format!("rc-remote-{pid:x}"),
            host_if: format!("rcr{:x}h", pid % 0xfffff),
            host_ip: format!("203.0.113.{}", base + 1),
            client_ip: format!("203.0.113.{}", base + 2),
        };
        let peer = format!("rcr{:x}c", pid % 0xfffff);
        ip(&["netns", "add", &r.ns]);
        ip(&[
            "link", "add", &r.host_if, "type", "veth", "peer", "name", &peer, "netns", &r.ns,
        ]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", r.host_ip),
            "dev",
            &r.host_if,
        ]);
        ip(&["link", "set", &r.host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["-n", r.ns.as_str()];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["addr", "add", &format!("{}/30", r.client_ip), "dev", &peer]);
        inside(&["link", "set", &peer, "up"]);
        inside(&["link", "set", "lo", "up"]);
        inside(&["route", "add", "default", "via", &r.host_ip]);
        r
    }

    /// The line the server at `addr:port` answers, asked from inside the namespace.
    fn ask(&self, addr: &str, port: u16) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns, "python3", "-c", CLIENT, addr])
            .arg(port.to_string())
            .output()
            .expect("python3 in the namespace")
    }
}

impl Drop for RemoteHost {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn a_remote_client_keeps_its_address_and_hairpin_works() {
    let port = free_port();
    let compose = format!(
        r#"
services:
  echo:
    image: python:3
    init: true
    command: ["python3", "-c", {script:?}]
    ports: ["{port}:7000"]
    healthcheck:
      test: ["CMD", "python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 7000))"]
      interval: 1s
      start_interval: 200ms
      start_period: 20s
  neighbour:
    image: python:3
    init: true
    command: sleep infinity
"#,
        script = ECHO_PEER
    );
    let Some(p) = Project::new(
        "a_remote_client_keeps_its_address_and_hairpin_works",
        "remote",
        &compose,
    ) else {
        return;
    };
    p.ok(&["up", "-d", "--wait"]);
    let remote = RemoteHost::new();

    // From the other host, to this host's address on the link between them.
    let o = remote.ask(&remote.host_ip, port);
    assert!(o.status.success(), "remote client: {}", out(&o));
    assert_eq!(
        common::stdout(&o).trim(),
        remote.client_ip,
        "the service did not see the remote client's own address"
    );

    // Hairpin: a container of the project, through the host's address.
    let o = p.rc(&[
        "exec",
        "-T",
        "neighbour",
        "python3",
        "-c",
        CLIENT,
        &remote.host_ip,
        &port.to_string(),
    ]);
    assert!(o.status.success(), "hairpin: {}", out(&o));
    assert!(!common::stdout(&o).trim().is_empty(), "{}", out(&o));

    drop(remote);
    p.ok(&["down", "-t", "0"]);
    p.assert_nothing_left();
}
