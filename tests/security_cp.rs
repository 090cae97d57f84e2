//! Attacks of a hostile container on `cp` out and on the supervisor's descriptors (issue 19,
//! findings 4, 6 and 8): each reproduces the attack as it was reported.

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::{out, stderr, Project};

fn project(test: &str, name: &str, compose: &str) -> Option<Project> {
    Project::new(test, name, compose)
}

/// Waits until `check` holds, failing the test after `limit` (a bound, not a timing).
fn wait_for(what: &str, limit: Duration, check: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not after {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The output of `child`, which is killed (and the test failed) when it runs past `limit`.
fn finish_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().expect("wait") {
            Some(_) => return child.wait_with_output().expect("output"),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let o = child.wait_with_output().expect("output");
                panic!("{what} still ran after {limit:?}, killed:\n{}", out(&o));
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A first `cp` brings a link the container planted (`data/x -> <host dir>`) to the host; the
/// container then makes `x` a directory with a file in it. The same `cp` again must not write
/// that file into the host directory nor change its mode: a link inside the copy is never
/// followed, and a non-directory is not replaced by a directory (docker's untar refuses it).
#[test]
fn cp_out_does_not_write_through_a_link_the_container_planted() {
    let victim = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(victim.path(), std::fs::Permissions::from_mode(0o750)).expect("chmod");
    let compose = format!(
        r#"
services:
  box:
    image: busybox
    init: true
    command: ["sh", "-c", "mkdir -p /data && ln -s {} /data/x && exec sleep 600"]
"#,
        victim.path().display()
    );
    let Some(p) = project(
        "cp_out_does_not_write_through_a_link_the_container_planted",
        "cpplant",
        &compose,
    ) else {
        return;
    };
    p.ok(&["up", "-d"]);
    wait_for("the container's link", Duration::from_secs(20), || {
        p.rc(&["exec", "-T", "box", "test", "-L", "/data/x"])
            .status
            .success()
    });
    let dir = p.dir.path();
    std::fs::create_dir(dir.join("out")).expect("mkdir");
    p.ok(&["cp", "box:/data", "out/"]);
    assert_eq!(
        std::fs::read_link(dir.join("out/data/x")).expect("the copied link"),
        victim.path()
    );

    p.ok(&[
        "exec",
        "-T",
        "box",
        "sh",
        "-c",
        "rm /data/x && mkdir /data/x && echo planted > /data/x/f && chmod 777 /data/x",
    ]);
    let o = p.rc(&["cp", "box:/data", "out/"]);
    let entries: Vec<_> = std::fs::read_dir(victim.path())
        .expect("read the host dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        entries.is_empty(),
        "cp wrote into the host directory: {entries:?}\n{}",
        out(&o)
    );
    let mode = std::fs::metadata(victim.path())
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o750, "cp changed the host directory's mode");
    assert!(
        !o.status.success() && stderr(&o).contains("cannot overwrite non-directory"),
        "{}",
        out(&o)
    );
    // The link itself is left as it was.
    assert_eq!(
        std::fs::read_link(dir.join("out/data/x")).expect("the link"),
        victim.path()
    );
}

/// `cp -L` of a link to a FIFO returns promptly, and copies the FIFO as a FIFO (as docker's
/// tar carries it); `cp -L` of a link to a device is refused instead of reading it.
#[test]
fn cp_follow_link_to_a_fifo_does_not_hang() {
    let Some(p) = project(
        "cp_follow_link_to_a_fifo_does_not_hang",
        "cpfifo",
        r#"
services:
  box:
    image: busybox
    init: true
    command: ["sh", "-c", "mkdir -p /data && mkfifo -m 640 /fifo && ln -s /fifo /data/pipe && ln -s /dev/zero /data/zero && exec sleep 600"]
"#,
    ) else {
        return;
    };
    p.ok(&["up", "-d"]);
    wait_for("the container's links", Duration::from_secs(20), || {
        p.rc(&["exec", "-T", "box", "test", "-L", "/data/zero"])
            .status
            .success()
    });
    let dir = p.dir.path();
    let child = p
        .cmd(&["cp", "-L", "box:/data/pipe", "pipe"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cp");
    let o = finish_within(child, Duration::from_secs(20), "cp -L of a link to a fifo");
    assert!(o.status.success(), "{}", out(&o));
    let meta = std::fs::symlink_metadata(dir.join("pipe")).expect("the copy");
    assert!(meta.file_type().is_fifo(), "{:?}", meta.file_type());
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);

    let child = p
        .cmd(&["cp", "-L", "box:/data/zero", "zero"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cp");
    let o = finish_within(
        child,
        Duration::from_secs(20),
        "cp -L of a link to a device",
    );
    assert!(
        !o.status.success() && stderr(&o).contains("device"),
        "{}",
        out(&o)
    );
    assert!(!dir.join("zero").exists());
}

/// The soft limit of open files of a process, from /proc/<pid>/limits.
fn nofile(pid: &str) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("the open files line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_string(), fields[4].to_string())
}

/// The supervisor raises its soft limit of open files to its hard limit at start, as container
/// engines do, so a container's DNS connections cannot use up what the control socket needs;
/// the containers keep the limit the caller had (docker gives its containers the daemon's
/// limits as they were before the daemon raised its own).
#[test]
fn supervisor_raises_its_open_files_limit_and_containers_keep_the_callers() {
    let Some(p) = project(
        "supervisor_raises_its_open_files_limit_and_containers_keep_the_callers",
        "nofile",
        r#"
services:
  box:
    image: busybox
    init: true
    command: ["sleep", "600"]
"#,
    ) else {
        return;
    };
    let mut hard = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one struct we own.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard) },
        0
    );
    let soft = 512.min(hard.rlim_max);
    if soft == hard.rlim_max {
        common::skip(
            "supervisor_raises_its_open_files_limit_and_containers_keep_the_callers",
            "the hard limit of open files is too low to tell a raised soft limit",
        );
        return;
    }
    let mut up = p.cmd(&["up", "-d"]);
    // SAFETY: setrlimit is async-signal-safe; the child lowers only its own soft limit.
    unsafe {
        up.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = up.output().expect("run up");
    assert!(o.status.success(), "{}", out(&o));

    let pid_file = p
        .state
        .run()
        .join("projects")
        .join(&p.name)
        .join("supervisor.pid");
    let pid = std::fs::read_to_string(&pid_file).expect("the supervisor's pid");
    let pid = pid.trim();
    let hard_text = if hard.rlim_max == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        hard.rlim_max.to_string()
    };
    assert_eq!(
        nofile(pid),
        (hard_text.clone(), hard_text.clone()),
        "the supervisor's open files limit"
    );

    let o = p.ok(&["exec", "-T", "box", "sh", "-c", "ulimit -Sn; ulimit -Hn"]);
    assert_eq!(
        common::stdout(&o),
        format!("{soft}\n{hard_text}\n"),
        "the container's open files limit"
    );
    assert!(Path::new(&format!("/proc/{pid}")).exists());
}

/// A container holding TCP connections to its DNS server (a query on each every few seconds,
/// so no idle timeout ends them) used every descriptor of the supervisor, whose control socket
/// then served no command. Two containers open 600 each against a supervisor limited to 1024
/// descriptors (soft and hard, so nothing can be raised): the DNS server keeps 16 of each
/// container's connections, and commands go on being served.
#[test]
fn dns_connections_of_a_container_do_not_starve_the_control_socket() {
    let script = r#"
import socket, struct, time
ns = [l.split()[1] for l in open('/etc/resolv.conf') if l.startswith('nameserver')][0]
q = struct.pack('>HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0) + b'\x03box\x00' + struct.pack('>HH', 1, 1)
msg = struct.pack('>H', len(q)) + q
conns = []
for i in range(600):
    try:
        conns.append(socket.create_connection((ns, 53), timeout=0.2))
    except OSError:
        pass
open('/tmp/connected', 'w').write(str(len(conns)))
def ping(conns):
    alive = []
    for s in conns:
        try:
            s.sendall(msg)
            n = struct.unpack('>H', s.recv(2, socket.MSG_WAITALL))[0]
            if len(s.recv(n, socket.MSG_WAITALL)) != n:
                raise OSError
            alive.append(s)
        except (OSError, struct.error):
            s.close()
    return alive
while True:
    conns = ping(conns)
    open('/tmp/held.new', 'w').write(str(len(conns)))
    __import__('os').rename('/tmp/held.new', '/tmp/held')
    time.sleep(3)
"#;
    let compose = format!(
        "services:\n  box:\n    image: python:3\n    init: true\n    deploy: {{replicas: 2}}\n    command: [\"python3\", \"-c\", {}]\n",
        serde_json::to_string(script).expect("json")
    );
    let test = "dns_connections_of_a_container_do_not_starve_the_control_socket";
    let Some(p) = project(test, "dnsfd", &compose) else {
        return;
    };
    let mut up = p.cmd(&["up", "-d"]);
    // SAFETY: setrlimit is async-signal-safe; the child lowers only its own limit.
    unsafe {
        up.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = up.output().expect("run up");
    assert!(o.status.success(), "{}", out(&o));
    let supervisor = std::fs::read_to_string(
        p.state
            .run()
            .join("projects")
            .join(&p.name)
            .join("supervisor.pid"),
    )
    .expect("the supervisor's pid");
    assert_eq!(
        nofile(supervisor.trim()),
        ("1024".to_string(), "1024".to_string()),
        "the supervisor's open files limit"
    );
    let state = p.state_json();
    let pids: Vec<i64> = (1..=2)
        .map(|n| {
            Project::container(&state, &format!("{}-box-{n}", p.name))["pid"]
                .as_i64()
                .expect("the container's pid")
        })
        .collect();
    // Read from the host: a command through the control socket is what is being tested.
    let in_box =
        |pid: i64, file: &str| std::fs::read_to_string(format!("/proc/{pid}/root/tmp/{file}")).ok();
    wait_for(
        "the containers' connections",
        Duration::from_secs(120),
        || pids.iter().all(|&pid| in_box(pid, "connected").is_some()),
    );

    for args in [
        &["ps", "--format", "json"][..],
        &["exec", "-T", "box", "cat", "/tmp/connected"][..],
    ] {
        let child = p
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let o = finish_within(
            child,
            Duration::from_secs(20),
            &format!("rcompose {args:?}"),
        );
        assert!(o.status.success(), "{}", out(&o));
    }
    let mut held = Vec::new();
    for &pid in &pids {
        wait_for("the container's count", Duration::from_secs(60), || {
            in_box(pid, "held").is_some()
        });
        held.push(
            in_box(pid, "held")
                .and_then(|h| h.trim().parse::<usize>().ok())
                .expect("a count"),
        );
    }
    let child = p
        .cmd(&["restart", "-t", "0", "box"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let o = finish_within(child, Duration::from_secs(30), "rcompose restart");
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        held.iter().all(|&n| n <= 16),
        "the dns server kept {held:?} connections of each client"
    );
}
