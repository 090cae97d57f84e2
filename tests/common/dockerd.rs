//! A private Docker engine (Debian's docker.io) for tests that compare with, or run beside,
//! Docker: its own network namespace, containerd, data root, exec root, socket and cgroup
//! parent under one temporary directory. It never talks to, or stops, another dockerd or
//! containerd, and the host's network and firewall are not touched (iptables, nftables and
//! br_netfilter's sysctls are per namespace; the namespace has only its loopback, so nothing
//! in it reaches the internet).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{out, stdout};

/// The Docker CLI matching Debian's engine (`/usr/local/bin/docker` is a newer CLI whose
/// `build` needs buildx).
pub const DOCKER: &str = "/usr/bin/docker";

/// The binaries a private engine needs: `None` when all are there, else what is missing.
pub fn missing_binaries() -> Option<String> {
    ["/usr/sbin/dockerd", "/usr/bin/containerd", DOCKER]
        .into_iter()
        .find(|b| !Path::new(b).exists())
        .map(|b| format!("{b} is missing (apt-get install docker.io; scripts/test does)"))
}

/// A network namespace of this test, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: String) -> Netns {
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.sh("ip link set lo up");
        // As Docker finds a fresh host: forwarding off, so it turns it on and sets FORWARD's
        // policy to DROP (it keeps the policy when forwarding was on already).
        ns.sh("echo 0 > /proc/sys/net/ipv4/ip_forward");
        ns
    }

    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// `cmd` run in the namespace with nsenter (not `ip netns exec`, which remounts /sys and
    /// so hides the cgroup mounts dockerd needs). Its stdio settings are not copied.
    pub fn wrap(&self, cmd: &Command) -> Command {
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

    pub fn sh(&self, script: &str) -> String {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        stdout(&run_ok(&mut self.wrap(&c)))
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
pub enum Backend {
    Nft,
    Legacy,
}

/// How the engine is started.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub backend: Backend,
    /// Docker's firewall (iptables rules, FORWARD policy, masquerade). Off, dockerd still
    /// makes its docker0 bridge in the namespace, which BuildKit's RUN steps need (with
    /// `--bridge=none` they fail: "network bridge not found").
    pub iptables: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            backend: Backend::Nft,
            iptables: true,
        }
    }
}

/// A private dockerd and containerd in a namespace, stopped on drop (before the namespace
/// goes, when both are fields of one struct: declare the engine first).
pub struct Dockerd {
    pub dir: tempfile::TempDir,
    containerd: Child,
    dockerd: Child,
    cgroup_parent: String,
}

impl Dockerd {
    pub fn start(ns: &Netns, opts: Options) -> Dockerd {
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
        std::fs::write(d.join("containerd.toml"), conf).expect("containerd.toml");
        // dockerd finds `iptables` on PATH: a directory that makes it the legacy one.
        let mut path = std::env::var("PATH").unwrap_or_default();
        if let Backend::Legacy = opts.backend {
            let bin = d.join("bin");
            std::fs::create_dir(&bin).expect("bin dir");
            for (name, target) in [
                ("iptables", "/usr/sbin/iptables-legacy"),
                ("iptables-save", "/usr/sbin/iptables-legacy-save"),
                ("iptables-restore", "/usr/sbin/iptables-legacy-restore"),
            ] {
                std::os::unix::fs::symlink(target, bin.join(name)).expect("symlink");
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
        let cgroup_parent = format!(
            "/rc-dk-{}-{}",
            std::process::id(),
            d.file_name().and_then(|n| n.to_str()).unwrap_or("x")
        );
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
            .env("PATH", path);
        if !opts.iptables {
            c.args(["--iptables=false", "--ip6tables=false", "--ip-masq=false"]);
        }
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

    /// `unix://...` of its socket, for DOCKER_HOST.
    pub fn host(&self) -> String {
        format!("unix://{}/docker.sock", self.dir.path().display())
    }

    /// The Debian docker CLI talking to this engine.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(DOCKER);
        c.arg("-H").arg(self.host()).stdin(Stdio::null());
        c
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run docker")
    }

    pub fn docker_ok(&self, args: &[&str]) -> Output {
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
        // Whatever the engine left mounted under its directory (overlay layers, shm) goes
        // before the directory is removed, deepest first.
        let dir = format!("{}/", self.dir.path().display());
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&dir))
            .map(str::to_string)
            .collect();
        mounts.sort_by(|a, b| b.cmp(a));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        for root in super::cgroup_roots() {
            let _ = std::fs::remove_dir(root.join(self.cgroup_parent.trim_start_matches('/')));
        }
    }
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?}:\n{}", out(&o));
    o
}
