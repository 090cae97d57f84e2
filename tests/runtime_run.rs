//! `rcompose run` with real containers from the test bed (root): what a process sees inside,
//! limits, exit codes and signals, init, hostile images, and nothing left behind.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{out, skip, stderr, stdout, Project};

fn fixture(test: &str, compose: &str) -> Option<Project> {
    Project::new(test, &format!("rt-{}", test.replace('_', "-")), compose)
}

impl Project {
    /// `run --rm -T ARGS`.
    fn run(&self, args: &[&str]) -> Output {
        let mut full = vec!["run", "--rm", "-T"];
        full.extend_from_slice(args);
        self.rc(&full)
    }

    /// `down -v` (`run` made the project's networks), then nothing of the project is left.
    fn down_leaves_nothing(&self) {
        self.ok(&["down", "-v"]);
        self.assert_nothing_left();
    }
}

fn status_field(text: &str, field: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn the_container_sees_its_own_world() {
    let Some(f) = fixture(
        "own_world",
        "services:\n  bb:\n    image: busybox\n    hostname: box1\n    domainname: example.test\n",
    ) else {
        return;
    };
    let o = f.run(&[
        "bb",
        "sh",
        "-c",
        "hostname; echo pid=$$; cat /proc/1/status; cat /proc/mounts; ls /sys/fs; \
         echo x > /proc/sys/kernel/domainname; echo rc=$?; cat /etc/hostname; ip -o link",
    ]);
    let text = stdout(&o);
    assert!(o.status.success(), "{}", out(&o));
    assert!(text.starts_with("box1\npid=1\n"), "{}", out(&o));
    // Docker's default capability set, its seccomp filter, no no_new_privs by default.
    assert_eq!(status_field(&text, "CapEff"), "00000000a80425fb", "{text}");
    assert_eq!(status_field(&text, "CapBnd"), "00000000a80425fb", "{text}");
    assert_eq!(status_field(&text, "Seccomp"), "2", "{text}");
    assert_eq!(status_field(&text, "NoNewPrivs"), "0", "{text}");
    assert!(text.contains("overlay / overlay"), "{text}");
    assert!(text.contains("proc /proc/sys proc ro"), "{text}");
    assert!(text.contains("sysfs /sys sysfs ro"), "{text}");
    assert!(text.contains("devpts /dev/pts devpts"), "{text}");
    assert!(text.contains("mqueue /dev/mqueue mqueue"), "{text}");
    assert!(text.contains("shm /dev/shm tmpfs") || text.contains("tmpfs /dev/shm tmpfs"));
    assert!(text.contains("rc=1"), "/proc/sys must be read-only: {text}");
    assert!(text.contains("\nbox1\n"), "/etc/hostname: {text}");
    // lo, up, and one interface on the project's default network.
    let links: Vec<&str> = text.lines().filter(|l| l.contains(": <")).collect();
    assert_eq!(links.len(), 2, "{text}");
    assert!(
        links[0].contains("lo:") && links[0].contains("UP"),
        "{text}"
    );
    assert!(links[1].contains("eth0@"), "{text}");
    f.down_leaves_nothing();
}

#[test]
fn security_options_and_users_apply() {
    let Some(f) = fixture(
        "security",
        r#"
services:
  nnp:
    image: busybox
    security_opt: [no-new-privileges]
    cap_drop: [ALL]
    cap_add: [NET_BIND_SERVICE]
  unconfined:
    image: busybox
    security_opt: ["seccomp=unconfined"]
  user:
    image: busybox
    user: "1000:1000"
    group_add: ["10", "20"]
    working_dir: /work/here
"#,
    ) else {
        return;
    };
    let o = f.run(&["nnp", "cat", "/proc/self/status"]);
    let text = stdout(&o);
    assert_eq!(status_field(&text, "NoNewPrivs"), "1", "{}", out(&o));
    assert_eq!(status_field(&text, "CapEff"), "0000000000000400", "{text}");

    // Docker's profile refuses new user namespaces; unconfined allows them.
    let o = f.run(&["nnp", "unshare", "-U", "true"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        out(&o)
    );
    let o = f.run(&[
        "unconfined",
        "sh",
        "-c",
        "unshare -U true && grep Seccomp: /proc/self/status",
    ]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(stdout(&o).contains("Seccomp:\t0"), "{}", out(&o));

    let o = f.run(&["user", "sh", "-c", "id; pwd; cat /proc/self/status"]);
    let text = stdout(&o);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        text.starts_with("uid=1000 gid=1000 groups=10,20\n"),
        "{text}"
    );
    assert!(
        text.contains("\n/work/here\n"),
        "working_dir is created: {text}"
    );
    assert_eq!(status_field(&text, "CapEff"), "0000000000000000", "{text}");

    // run's own overrides.
    let o = f.run(&[
        "-u",
        "0",
        "-w",
        "/tmp",
        "-e",
        "HELLO=world",
        "--entrypoint",
        "sh -c",
        "user",
        "echo $HELLO $(id -u) $(pwd)",
    ]);
    assert_eq!(stdout(&o), "world 0 /tmp\n", "{}", out(&o));
    f.down_leaves_nothing();
}

#[test]
fn read_only_root_and_tmpfs() {
    let Some(f) = fixture(
        "read_only",
        "services:\n  ro:\n    image: busybox\n    read_only: true\n    tmpfs: [/scratch]\n",
    ) else {
        return;
    };
    let o = f.run(&[
        "ro",
        "sh",
        "-c",
        "touch /x; echo root=$?; touch /scratch/y; echo scratch=$?; echo x > /etc/hosts; echo hosts=$?",
    ]);
    assert_eq!(stdout(&o), "root=1\nscratch=0\nhosts=1\n", "{}", out(&o));
    f.down_leaves_nothing();
}

#[test]
fn limits_are_enforced() {
    let Some(f) = fixture(
        "limits",
        r#"
services:
  hog:
    image: busybox
    mem_limit: 24m
    memswap_limit: 24m
    command: ["sh", "-c", "x=$$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"]
  forks:
    image: busybox
    pids_limit: 12
    command: ["sh", "-c", "for i in $$(seq 30); do sleep 3 & done; echo started"]
  single:
    image: busybox
    pids_limit: 1
    command: ["echo", "alone"]
  nofile:
    image: busybox
    ulimits:
      nofile: {soft: 100, hard: 200}
    command: ["sh", "-c", "ulimit -n; ulimit -Hn"]
"#,
    ) else {
        return;
    };
    let o = f.run(&["hog"]);
    assert_eq!(o.status.code(), Some(137), "OOM-killed: {}", out(&o));
    assert!(!stdout(&o).contains("survived"));

    let o = f.run(&["forks"]);
    assert!(stderr(&o).contains("can't fork"), "{}", out(&o));

    // Room for the container's one process (v1 spawns from a thread inside the cgroup: that
    // thread must not take the place).
    let o = f.run(&["single"]);
    assert_eq!(stdout(&o), "alone\n", "{}", out(&o));

    let o = f.run(&["nofile"]);
    assert_eq!(stdout(&o), "100\n200\n", "{}", out(&o));
    f.down_leaves_nothing();
}

#[test]
fn exit_codes_and_signals() {
    let Some(f) = fixture(
        "exit_codes",
        "services:\n  bb:\n    image: busybox\n  init:\n    image: busybox\n    init: true\n",
    ) else {
        return;
    };
    assert_eq!(f.run(&["bb", "sh", "-c", "exit 3"]).status.code(), Some(3));
    let o = f.run(&["bb", "no-such-command"]);
    assert_eq!(o.status.code(), Some(127), "{}", out(&o));
    assert!(stderr(&o).contains("no-such-command"), "{}", out(&o));
    let o = f.run(&["bb", "/etc/passwd"]);
    assert_eq!(o.status.code(), Some(126), "{}", out(&o));

    // With init, a command killed by a signal reports 128 + signal.
    let o = f.run(&["init", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(o.status.code(), Some(143), "{}", out(&o));
    // PID 1 without init ignores a signal it has no handler for, as under docker.
    let o = f.run(&["bb", "sh", "-c", "kill -TERM $$; echo alive"]);
    assert_eq!(stdout(&o), "alive\n", "{}", out(&o));

    // Signals sent to rcompose run reach the container (docker's sig-proxy).
    let mut child = f
        .cmd(&[
            "run",
            "--rm",
            "-T",
            "bb",
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.05; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut reader = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).expect("read");
    assert_eq!(line, "ready\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let status = child.wait().expect("wait");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).expect("read");
    assert_eq!(rest, "got-term\n");
    assert_eq!(status.code(), Some(42));
    f.down_leaves_nothing();
}

#[test]
fn init_reaps_zombies() {
    let Some(f) = fixture(
        "zombies",
        "services:\n  init:\n    image: busybox\n    init: true\n",
    ) else {
        return;
    };
    // The orphans are reparented to PID 1, the init, which must reap them.
    let script = "(sleep 0.1 &); (sleep 0.1 &); sleep 1; ps -o pid,stat,args; true";
    let o = f.run(&["init", "sh", "-c", script]);
    let text = stdout(&o);
    assert!(o.status.success(), "{}", out(&o));
    let zombies = text
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("Z"));
    assert_eq!(zombies.count(), 0, "{}", out(&o));
    let pid1 = text
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap_or("");
    assert!(pid1.contains("rcompose-init"), "{text}");
    f.down_leaves_nothing();
}

#[test]
fn a_tty_is_a_pty_of_the_container() {
    let Some(f) = fixture(
        "tty",
        "services:\n  bb:\n    image: busybox\n    init: true\n    command: sleep 600\n",
    ) else {
        return;
    };
    if Command::new("script").arg("--version").output().is_err() {
        skip("tty", "needs script(1) from util-linux");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_rcompose");
    let in_script = |args: &str| {
        Command::new("script")
            .args(["-qec", &format!("{bin} -p {} {args}", f.name), "/dev/null"])
            .current_dir(f.dir.path())
            .envs(f.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RCOMPOSE_ROOT", f.state.root())
            .env("RCOMPOSE_RUN", f.state.dir.path().join("run"))
            .stdin(Stdio::null())
            .output()
            .expect("script")
    };
    let o = in_script("run --rm bb sh -c 'tty; stty size; exit 4'");
    let text = stdout(&o);
    assert!(text.contains("/dev/pts/0"), "{}", out(&o));
    assert_eq!(o.status.code(), Some(4), "{}", out(&o));

    // `exec` into a running container gets a pty of that container too.
    f.ok(&["up", "-d"]);
    let o = in_script("exec bb sh -c 'tty; exit 5'");
    assert!(stdout(&o).contains("/dev/pts/0"), "{}", out(&o));
    assert_eq!(o.status.code(), Some(5), "{}", out(&o));
    f.ok(&["down", "-t", "0"]);
    f.down_leaves_nothing();
}

/// Builds an image from busybox's unpacked layer changed by `edit`, imported as `name`.
fn hostile_image(f: &Project, name: &str, changes: &[&str], edit: impl FnOnce(&Path)) {
    let o = f
        .cmd(&["image", "pull", "-q", "busybox"])
        .output()
        .expect("pull");
    assert!(o.status.success(), "{}", out(&o));
    let layers = f.state.root().join("images/layers/sha256");
    let layer = std::fs::read_dir(&layers)
        .expect("layers")
        .flatten()
        .next()
        .expect("one layer")
        .path();
    let work = tempfile::tempdir().expect("tmp");
    let rootfs = work.path().join("rootfs");
    let cp = Command::new("cp")
        .args(["-a"])
        .arg(&layer)
        .arg(&rootfs)
        .status()
        .expect("cp");
    assert!(cp.success());
    edit(&rootfs);
    let tarball = work.path().join("image.tar");
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .expect("tar");
    assert!(tar.success());
    let mut args = vec!["image", "import"];
    for c in changes {
        args.extend(["--change", c]);
    }
    let t = tarball.to_string_lossy().to_string();
    args.extend([t.as_str(), name]);
    let o = f.cmd(&args).output().expect("import");
    assert!(o.status.success(), "{}", out(&o));
}

fn sha256_of(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).expect("read");
    hex::encode(sha2::Sha256::digest(&bytes))
}

#[test]
fn hostile_images_stay_inside() {
    let Some(f) = fixture(
        "hostile",
        r#"
services:
  links:
    image: hostile/links
    command: ["sh", "-c", "echo ok > /dev/null && ls /proc/self/ >/dev/null && echo fine"]
  fdcwd:
    image: busybox
    working_dir: /proc/self/fd/3
    command: ["pwd"]
  exe:
    image: hostile/exe
    init: true
    cap_add: [SYS_PTRACE]
  selfexe:
    image: hostile/exe
    entrypoint: ["/evil"]
"#,
    ) else {
        return;
    };
    let canary = f.dir.path().join("canary");
    std::fs::write(&canary, "host file\n").expect("canary");
    // /proc and /dev/null are symlinks out of the rootfs in this image.
    let target = canary.to_string_lossy().to_string();
    hostile_image(&f, "hostile/links", &[], |root| {
        std::fs::remove_dir_all(root.join("proc")).ok();
        std::os::unix::fs::symlink(&target, root.join("proc")).expect("symlink");
        std::fs::create_dir_all(root.join("dev")).ok();
        std::os::unix::fs::symlink(&target, root.join("dev/null")).expect("symlink");
    });
    let o = f.run(&["links"]);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(stdout(&o), "fine\n");
    assert_eq!(
        std::fs::read_to_string(&canary).expect("canary"),
        "host file\n"
    );

    // A working directory through a magic link is refused.
    let o = f.run(&["fdcwd"]);
    assert!(!o.status.success(), "{}", out(&o));
    assert!(stderr(&o).contains("/proc/self/fd/3"), "{}", out(&o));

    // An entrypoint that tries to overwrite the runtime through /proc/<pid>/exe, directly and
    // by making itself run the helper's binary (`#!/proc/self/exe`).
    let bin = Path::new(env!("CARGO_BIN_EXE_rcompose"));
    let before = sha256_of(bin);
    hostile_image(&f, "hostile/exe", &["ENTRYPOINT [\"/attack\"]"], |root| {
        let script = "#!/bin/sh\n\
            for p in /proc/1/exe /proc/self/exe /proc/*/exe; do\n\
              (echo pwned > $p) 2>/dev/null && echo WROTE $p\n\
              cp /bin/busybox $p 2>/dev/null && echo COPIED $p\n\
            done\n\
            /evil 2>/dev/null\n\
            echo done\n";
        std::fs::write(root.join("attack"), script).expect("attack");
        std::fs::set_permissions(root.join("attack"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        std::fs::write(root.join("evil"), "#!/proc/self/exe\n").expect("evil");
        std::fs::set_permissions(root.join("evil"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    });
    let o = f.run(&["exe"]);
    assert!(stdout(&o).contains("done"), "{}", out(&o));
    assert!(!stdout(&o).contains("WROTE"), "{}", out(&o));
    assert!(!stdout(&o).contains("COPIED"), "{}", out(&o));
    // The runtime executing `#!/proc/self/exe` runs its own binary in the container: it must
    // not get anywhere, and the binary stays as it was.
    let o = f.run(&["selfexe"]);
    assert!(!o.status.success(), "{}", out(&o));
    assert_eq!(sha256_of(bin), before, "the rcompose binary changed");
    f.down_leaves_nothing();
}

#[test]
fn run_without_rm_keeps_the_stopped_container() {
    let Some(f) = fixture("keep", "services:\n  bb:\n    image: busybox\n") else {
        return;
    };
    let o = f
        .cmd(&["run", "-T", "bb", "sh", "-c", "echo data > /kept; exit 7"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(7), "{}", out(&o));
    let containers: Vec<PathBuf> = std::fs::read_dir(f.state.root().join("containers"))
        .expect("containers")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(containers.len(), 1);
    assert_eq!(
        std::fs::read_to_string(containers[0].join("upper/kept")).expect("upper"),
        "data\n"
    );
    // The project knows it: `ps -a` lists it as exited with its code, `down` removes it.
    let ps = f
        .cmd(&["ps", "-a", "--format", "json"])
        .output()
        .expect("ps");
    let text = stdout(&ps);
    assert!(
        text.contains(&format!("\"Name\":\"{}-bb-run-", f.name)),
        "{}",
        out(&ps)
    );
    assert!(text.contains("\"ExitCode\":7"), "{}", out(&ps));
    f.down_leaves_nothing();
}

#[test]
fn bad_input_is_named() {
    let Some(f) = fixture(
        "bad_input",
        "services:\n  bb:\n    image: busybox\n  gone:\n    image: 127.0.0.1:5043/library/nothing-here\n",
    ) else {
        return;
    };
    let o = f.run(&["nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nosuch"), "{}", out(&o));
    let o = f.run(&["gone"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nothing-here"), "{}", out(&o));
    f.down_leaves_nothing();
}

#[test]
fn volumes_binds_and_anonymous_volumes() {
    let Some(f) = fixture(
        "volumes",
        "services:\n  bb:\n    image: busybox\n    volumes:\n      - ./data:/data\n      - named:/named\n      - /anon\nvolumes:\n  named: {}\n",
    ) else {
        return;
    };
    let o = f.run(&[
        "bb",
        "sh",
        "-c",
        "echo bound > /data/f && echo kept > /named/f && echo gone > /anon/f && cat /data/f /named/f /anon/f",
    ]);
    assert_eq!(stdout(&o), "bound\nkept\ngone\n", "{}", out(&o));
    assert_eq!(
        std::fs::read_to_string(f.dir.path().join("data/f")).expect("bind"),
        "bound\n"
    );
    let volumes = f.state.root().join("volumes");
    let named = volumes.join(format!("{}_named/_data/f", f.name));
    assert_eq!(std::fs::read_to_string(named).expect("named"), "kept\n");
    let left: Vec<_> = std::fs::read_dir(&volumes)
        .expect("volumes")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        left,
        [format!("{}_named", f.name)],
        "--rm removes anonymous volumes"
    );
    f.down_leaves_nothing();
}

/// `devices` with their permissions, `device_cgroup_rules`, docker's device allow list, and
/// `sysctls` as the container sees them.
#[test]
fn devices_and_sysctls() {
    if !Path::new("/dev/loop-control").exists() {
        skip("devices_and_sysctls", "needs /dev/loop-control on the host");
        return;
    }
    let Some(f) = fixture(
        "devices",
        r#"
services:
  dev:
    image: busybox
    devices:
      - "/dev/loop-control:/dev/lc:r"
    sysctls:
      net.ipv4.ip_unprivileged_port_start: "99"
      kernel.shm_rmid_forced: "1"
  ruled:
    image: busybox
    device_cgroup_rules:
      - "c 1:1 r"
  nodev:
    image: busybox
    devices:
      - "/dev/no-such-device:/dev/x"
  priv:
    image: busybox
    privileged: true
"#,
    ) else {
        return;
    };
    let o = f.run(&[
        "dev",
        "sh",
        "-c",
        "(exec 3</dev/lc) && echo readable; \
         (exec 3>/dev/lc) 2>&1; \
         mknod /tmp/mem c 1 1 && (head -c 1 /tmp/mem) 2>&1; \
         cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shm_rmid_forced",
    ]);
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert_eq!(lines.first(), Some(&"readable"), "{}", out(&o));
    // Write is not in `r`; /dev/mem (1:1) is not in docker's list: the cgroup refuses both.
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("Operation not permitted"))
            .count(),
        2,
        "{}",
        out(&o)
    );
    assert_eq!(&lines[lines.len() - 2..], ["99", "1"], "{}", out(&o));

    // With the rule, the cgroup lets the open through to the driver (which may still refuse,
    // but not with EPERM).
    let o = f.run(&[
        "ruled",
        "sh",
        "-c",
        "mknod /tmp/mem c 1 1 && (head -c 1 /tmp/mem >/dev/null) 2>&1; echo done",
    ]);
    assert!(stdout(&o).ends_with("done\n"), "{}", out(&o));
    assert!(
        !stdout(&o).contains("Operation not permitted"),
        "{}",
        out(&o)
    );

    // Privileged: the host's devices, every one allowed (docker's --privileged).
    let o = f.run(&[
        "priv",
        "sh",
        "-c",
        "(exec 3<>/dev/loop-control) && echo opened; test -c /dev/pts/ptmx && echo pts; \
         test -L /dev/ptmx && echo ptmx-link",
    ]);
    assert_eq!(stdout(&o), "opened\npts\nptmx-link\n", "{}", out(&o));

    let o = f.run(&["nodev", "true"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(stderr(&o).contains("/dev/no-such-device"), "{}", out(&o));
    f.down_leaves_nothing();
}

/// `cgroup: private|host`, `mem_swappiness` and `oom_kill_disable` (the last two are v1 knobs,
/// read from the host's side of the container's cgroup).
#[test]
fn cgroup_namespace_and_memory_knobs() {
    let Some(f) = fixture(
        "cgroup_knobs",
        r#"
services:
  private:
    image: busybox
    cgroup: private
  host:
    image: busybox
    cgroup: host
  knobs:
    image: busybox
    init: true
    mem_limit: 64m
    mem_swappiness: 10
    oom_kill_disable: true
    command: sleep 600
"#,
    ) else {
        return;
    };
    let memory_line = |o: &Output| {
        stdout(o)
            .lines()
            .find(|l| l.contains(":memory:") || l.starts_with("0::"))
            .map(|l| l.rsplit(':').next().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    let o = f.run(&["private", "cat", "/proc/self/cgroup"]);
    assert_eq!(memory_line(&o), "/", "{}", out(&o));
    let o = f.run(&["host", "cat", "/proc/self/cgroup"]);
    assert!(
        memory_line(&o).starts_with(&format!("/rcompose/{}/", f.name)),
        "{}",
        out(&o)
    );

    let v1_memory = Path::new("/sys/fs/cgroup/memory");
    if v1_memory.is_dir() {
        let name = format!("{}-knobs-probe", f.name);
        f.ok(&["run", "-d", "--name", &name, "knobs"]);
        let dir = v1_memory.join("rcompose").join(&f.name).join(&name);
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert_eq!(read("memory.swappiness").trim(), "10");
        assert!(
            read("memory.oom_control").contains("oom_kill_disable 1"),
            "{}",
            read("memory.oom_control")
        );
    }
    f.ok(&["down", "-t", "0"]);
    f.down_leaves_nothing();
}

#[test]
fn run_enables_the_profile_of_the_service_it_names() {
    let Some(f) = fixture(
        "profile_run",
        "services:\n  app:\n    image: busybox\n  job:\n    image: busybox\n    profiles: [tools]\n",
    ) else {
        return;
    };
    let o = f.run(&["job", "echo", "from the job"]);
    assert_eq!(stdout(&o), "from the job\n", "{}", out(&o));
    f.down_leaves_nothing();
}
