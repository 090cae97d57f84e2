//! Exec into a running container, through the runtime library (root, test bed images).

mod common;

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use common::{skip, testbed_env, State};
use rcompose::compose::loader;
use rcompose::image::store::Store;
use rcompose::runtime::container::{self, Container, ExecRequest, Options};
use rcompose::runtime::process::Stdio;
use rcompose::runtime::spec::{self, HostLimits};

fn helper() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rcompose"))
}

/// Runs `req` in the container whose first process is `pid`: (exit code, stdout).
fn exec(c: &Container, pid: i32, req: ExecRequest) -> (i32, String) {
    let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe().expect("pipe");
    let (spawned, _) = c
        .exec(
            &helper(),
            pid,
            &req,
            Stdio {
                stdin: None,
                stdout: Some(write.as_fd()),
                stderr: Some(write.as_fd()),
            },
        )
        .expect("exec");
    drop(write);
    let mut text = String::new();
    std::fs::File::from(read)
        .read_to_string(&mut text)
        .expect("read");
    let status = container::wait(spawned.pid()).expect("wait");
    (status.docker_code(), text)
}

#[test]
fn exec_joins_the_running_container() {
    let test = "exec_joins_the_running_container";
    if !nix::unistd::geteuid().is_root() {
        return skip(test, "needs root to create containers");
    }
    let Some(env) = testbed_env() else {
        return skip(
            test,
            "the image test bed is not served (scripts/test serves it)",
        );
    };
    let state = State::new();
    let o = state
        .cmd(&env)
        .args(["image", "pull", "-q", "busybox"])
        .output()
        .expect("pull");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("compose.yaml"),
        "services:\n  bb:\n    image: busybox\n    hostname: execbox\n    working_dir: /srv\n    \
         environment: [GREETING=hi]\n    command: [sleep, '30']\n",
    )
    .expect("compose");
    let mut opts = loader::Options::from_process().expect("options");
    opts.cwd = dir.path().to_path_buf();
    opts.project_name = Some(common::project_name("rt-exec"));
    let loaded = loader::load(&opts).expect("load");
    let service = &loaded.project.services["bb"];
    let store = Store::open(state.root().join("images")).expect("store");
    let name = rcompose::image::reference::Reference::parse("busybox").expect("ref");
    let image = store
        .resolve(&name.to_string())
        .expect("resolve")
        .expect("busybox");
    let layers: Vec<PathBuf> = image
        .layers
        .iter()
        .map(|l| store.layer_dir(&l.diff_id))
        .collect();
    let spec = spec::build(
        &loaded.project,
        service,
        1,
        &image.config,
        &layers,
        &HostLimits::current(),
    )
    .expect("spec");
    let options = Options {
        helper: helper(),
        dir: state.root().join("containers").join(&spec.id),
        cgroup: format!("rcompose/{}/{}", common::project_name("rt-exec"), spec.name),
        mounts: Vec::new(),
        hosts: None,
        resolv_conf: None,
        base_dir: dir.path().to_path_buf(),
        tty_size: None,
        namespace_peers: Vec::new(),
    };
    let c = Container::create(&spec, &options).expect("create");
    let spawned = c.spawn(&helper(), Stdio::default()).expect("spawn");
    c.start(&spawned).expect("start");
    let pid = spawned.pid();

    let (code, text) = exec(
        &c,
        pid,
        ExecRequest {
            args: vec![
                "sh".into(),
                "-c".into(),
                "hostname; pwd; echo $GREETING; tr '\\0' ' ' < /proc/1/cmdline; echo; \
                 grep -E 'CapEff|Seccomp:' /proc/self/status; exit 5"
                    .into(),
            ],
            ..Default::default()
        },
    );
    assert_eq!(code, 5, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        &lines[..4],
        ["execbox", "/srv", "hi", "sleep 30 "],
        "{text}"
    );
    assert!(text.contains("CapEff:\t00000000a80425fb"), "{text}");
    assert!(text.contains("Seccomp:\t2"), "{text}");

    let (code, text) = exec(
        &c,
        pid,
        ExecRequest {
            args: vec![
                "sh".into(),
                "-c".into(),
                "id -u; pwd; echo $GREETING".into(),
            ],
            env: vec!["GREETING=bye".into()],
            user: Some("nobody".into()),
            workdir: Some("/tmp".into()),
            ..Default::default()
        },
    );
    assert_eq!((code, text.as_str()), (0, "65534\n/tmp\nbye\n"));

    let (_, text) = exec(
        &c,
        pid,
        ExecRequest {
            args: vec![
                "grep".into(),
                "-E".into(),
                "CapEff|Seccomp:".into(),
                "/proc/self/status".into(),
            ],
            privileged: true,
            ..Default::default()
        },
    );
    assert!(text.contains("Seccomp:\t0"), "{text}");
    assert!(!text.contains("CapEff:\t00000000a80425fb"), "{text}");

    let failed = c.exec(
        &helper(),
        pid,
        &ExecRequest {
            args: vec!["no-such-tool".into()],
            ..Default::default()
        },
        Stdio::default(),
    );
    match failed {
        Err(container::ContainerError::Process {
            source: rcompose::runtime::process::ProcessError::Start { code, message },
            ..
        }) => {
            assert_eq!(code, 127);
            assert!(message.contains("no-such-tool"), "{message}");
        }
        other => panic!("expected a start failure: {:?}", other.map(|_| ())),
    }

    // SAFETY: killing our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let status = container::wait(pid).expect("wait");
    assert_eq!(status.docker_code(), 137);
    let cgroup_dirs: Vec<PathBuf> = c.cgroup().map(|cg| cg.dirs()).unwrap_or_default();
    c.destroy().expect("destroy");
    for d in cgroup_dirs {
        assert!(!Path::new(&d).exists(), "cgroup {} left", d.display());
    }
    assert!(!options.dir.exists());
}
