//! Issue 19, finding 1: a container process must never get the operator's terminal, neither as
//! its controlling terminal nor as a descriptor. Each case runs rcompose from a shell that is a
//! session leader on a fresh pty, as an operator's interactive shell is, and a process in the
//! container tries `TIOCSTI` (typing into the terminal) on its stdio and on `/dev/tty`. Nothing
//! may reach the operator's input queue, and the container must see pipes, not a terminal.

mod common;

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{out, stdout, Project};

/// Tries TIOCSTI on fds 0-2 and on `/dev/tty`, and whether each is a terminal; the report goes
/// to `/tmp/report` in the container (its stdout may be the very terminal under attack).
const ATTACK: &str = r#"
my @r;
for my $fd (0, 1, 2) {
    if (!open(my $fh, "+<&=", $fd)) { push @r, "fd$fd:closed"; next; }
    else {
        my $tty = -t $fh ? "tty" : "notty";
        my $ok = 1;
        for my $c (split //, "echo PWNED\n") { $ok = 0 unless ioctl($fh, 0x5412, $c); }
        push @r, "fd$fd:$tty:" . ($ok ? "INJECTED" : "refused");
    }
}
if (open(my $t, "+<", "/dev/tty")) {
    my $ok = 1;
    for my $c (split //, "echo PWNED\n") { $ok = 0 unless ioctl($t, 0x5412, $c); }
    push @r, "devtty:open:" . ($ok ? "INJECTED" : "refused");
} else {
    push @r, "devtty:none";
}
open(my $o, ">", "/tmp/report") or die;
print $o join(" ", @r), "\n";
"#;

fn project(test: &str, name: &str) -> Option<Project> {
    Project::new(
        test,
        name,
        r#"
services:
  box:
    image: debian:bookworm
    init: true
    command: sleep infinity
  priv:
    image: debian:bookworm
    privileged: true
    init: true
    command: sleep infinity
"#,
    )
}

/// A pty whose slave is in raw mode (so every injected byte is counted by FIONREAD).
fn raw_pty() -> (OwnedFd, OwnedFd) {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let mut t = nix::sys::termios::tcgetattr(&pty.slave).expect("tcgetattr");
    nix::sys::termios::cfmakeraw(&mut t);
    nix::sys::termios::tcsetattr(&pty.slave, nix::sys::termios::SetArg::TCSANOW, &t)
        .expect("tcsetattr");
    (pty.master, pty.slave)
}

/// Bytes waiting in the terminal's input queue: what a shell would read next.
fn pending_input(slave: &OwnedFd) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let rc = unsafe { libc::ioctl(slave.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(rc, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    n
}

/// Runs `script` with `sh -c` as a session leader whose controlling terminal is a new pty, as
/// an operator's shell; `$RC` is rcompose with the project's name and state. Returns the
/// shell's output and the bytes left in the terminal's input queue afterwards.
fn under_pty(p: &Project, script: &str) -> (String, i32) {
    let (master, slave) = raw_pty();
    let rc = p.cmd(&[]).get_program().to_owned();
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .current_dir(p.dir.path())
        .env("RC", rc)
        .env("PROJECT", &p.name)
        .stdin(Stdio::from(slave.try_clone().expect("dup")))
        .stdout(Stdio::from(slave.try_clone().expect("dup")))
        .stderr(Stdio::from(slave.try_clone().expect("dup")));
    for (k, v) in p.cmd(&[]).get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    // SAFETY: setsid and TIOCSCTTY between fork and exec: async-signal-safe syscalls.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn sh under a pty");
    let mut reader = std::fs::File::from(master.try_clone().expect("dup master"));
    let output = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once no process holds the slave any more; the test keeps one, so the reader is
        // ended by closing the master below instead.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            if all.windows(4).any(|w| w == b"DONE") {
                break;
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the shell under the pty did not finish: {script}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let pending = pending_input(&slave);
    // The shell prints DONE last, which ends the reader; else the last holder of the slave
    // going away does.
    drop(slave);
    let text = output.join().unwrap_or_default();
    assert!(status.success(), "{script} failed: {text}");
    (text, pending)
}

fn report(p: &Project, service: &str) -> String {
    let o = p.ok(&["exec", "-T", service, "cat", "/tmp/report"]);
    stdout(&o)
}

fn attack_cmd(prefix: &str, rc_args: &str) -> String {
    let quoted = ATTACK.replace('\'', r"'\''");
    format!(r#"{prefix}"$RC" -p "$PROJECT" {rc_args} perl -e '{quoted}'; echo DONE"#)
}

/// `exec -T`, and `exec` with a pipe as stdin: the exec'd process sees pipes and no
/// controlling terminal, so nothing it types reaches the operator's shell.
#[test]
fn exec_never_gets_the_operators_terminal() {
    let Some(p) = project("exec_never_gets_the_operators_terminal", "sectty") else {
        return;
    };
    p.ok(&["up", "-d", "--wait"]);
    for (prefix, args) in [
        ("", "exec -T box"),
        ("true | ", "exec box"),
        ("", "exec -T --privileged box"),
    ] {
        let (text, pending) = under_pty(&p, &attack_cmd(prefix, args));
        let rep = report(&p, "box");
        let what = format!("{prefix}{args}");
        assert_eq!(
            pending, 0,
            "{what}: the container typed into the operator's terminal\n{text}\n{rep}"
        );
        assert!(!rep.contains("INJECTED"), "{what}: {rep}");
        assert!(
            !rep.contains(":tty:"),
            "{what}: the container got a terminal of the host: {rep}"
        );
        assert!(rep.contains("devtty:none"), "{what}: {rep}");
    }
    // With a pty (no -T under a terminal) the process gets a pty of the container's own: what
    // it types stays in that pty.
    let (text, pending) = under_pty(&p, &attack_cmd("", "exec box"));
    assert_eq!(pending, 0, "exec with a pty typed into the host: {text}");
    p.ok(&["down", "-t", "0"]);
    p.assert_nothing_left();
}

/// `run -T` from a terminal, even privileged (CAP_SYS_ADMIN may TIOCSTI any terminal it has a
/// descriptor of): the one-off container gets pipes, never the client's terminal.
#[test]
fn run_never_gets_the_operators_terminal() {
    let Some(p) = project("run_never_gets_the_operators_terminal", "secrun") else {
        return;
    };
    for service in ["box", "priv"] {
        let marker = format!("/tmp/report-{service}");
        let attack = ATTACK.replace("/tmp/report", &marker);
        let quoted = attack.replace('\'', r"'\''");
        // The report goes to a volume so that it outlives the one-off container.
        let script = format!(
            r#""$RC" -p "$PROJECT" run --rm -T -v "$PWD:/out" {service} perl -e '{}' && cat "{}"; echo DONE"#,
            quoted.replace(&marker, &format!("/out/report-{service}")),
            p.dir.path().join(format!("report-{service}")).display(),
        );
        let (text, pending) = under_pty(&p, &script);
        assert_eq!(
            pending, 0,
            "run {service}: the container typed into the operator's terminal\n{text}"
        );
        assert!(!text.contains("INJECTED"), "run {service}: {text}");
        assert!(!text.contains(":tty:"), "run {service}: {text}");
        assert!(text.contains("devtty:none"), "run {service}: {text}");
    }
    let o = p.rc(&["down", "-t", "0"]);
    assert!(o.status.success(), "{}", out(&o));
    p.assert_nothing_left();
}

/// Finding 7: `exec -u NAME` looks the user up in the container's own `/etc/passwd`, resolved
/// inside the container's root. The container swaps its `/etc` for a link to an absolute path
/// as fast as it can; a lookup through `/proc/<pid>/root/etc/...` path strings follows that
/// link on the host, where the test put a passwd with a user the container does not have.
#[test]
fn exec_user_is_looked_up_inside_the_container() {
    let host = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        host.path().join("passwd"),
        "root:x:0:0::/root:/bin/sh\nhostonly:x:4242:4242::/:/bin/sh\n",
    )
    .expect("write");
    std::fs::write(host.path().join("group"), "root:x:0:\nhostonly:x:4242:\n").expect("write");
    let swap = format!(
        r#"while (1) {{ rename("/etc", "/etc.real"); symlink("{}", "/etc"); unlink("/etc"); rename("/etc.real", "/etc"); }}"#,
        host.path().display()
    );
    // /etc holds the hosts, resolv.conf and hostname mounts, which CAP_SYS_ADMIN can take
    // away; the image's /etc is a directory of a lower layer, which overlayfs will not rename
    // (EXDEV): the container first makes it a directory of its own layer.
    let compose = format!(
        r#"
services:
  racer:
    image: debian:bookworm
    init: true
    cap_add: [SYS_ADMIN]
    command:
      - sh
      - -c
      - umount /etc/hosts /etc/resolv.conf /etc/hostname && cp -a /etc /etc.new && rm -rf /etc && mv /etc.new /etc && touch /tmp/swapping && exec perl -e '{swap}'
"#
    );
    let Some(p) = Project::new(
        "exec_user_is_looked_up_inside_the_container",
        "secuser",
        &compose,
    ) else {
        return;
    };
    p.ok(&["up", "-d"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !p
        .rc(&["exec", "-T", "racer", "test", "-e", "/tmp/swapping"])
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "the container never started swapping"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut refused = 0;
    for _ in 0..120 {
        let o = p.rc(&["exec", "-T", "-u", "hostonly", "racer", "id", "-u"]);
        assert!(
            !o.status.success(),
            "exec -u found a user that exists only in the host's file: {}",
            out(&o)
        );
        if common::stderr(&o).contains("hostonly") {
            refused += 1;
        }
    }
    assert!(refused > 0, "exec -u never got as far as the lookup");
    p.ok(&["down", "-t", "0"]);
    p.assert_nothing_left();
}
