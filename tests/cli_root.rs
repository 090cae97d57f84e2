//! Without root (until rootless mode exists) every command but `config` and `version` says
//! plainly that it needs root, before it touches the store or the run directory: no lock
//! file, chown or registry error stands in for that message.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn commands_say_they_need_root_before_touching_anything() {
    if !nix::unistd::geteuid().is_root() {
        common::skip(
            "commands_say_they_need_root_before_touching_anything",
            "runs rcompose as nobody through runuser, which needs root",
        );
        return;
    }
    if Command::new("runuser").arg("--help").output().is_err() {
        common::skip(
            "commands_say_they_need_root_before_touching_anything",
            "runuser is not installed",
        );
        return;
    }
    // The project folder is nobody's to read; the state folders are root's and absent, as on
    // a host where rcompose never ran (nobody can create neither).
    let dir = tempfile::Builder::new()
        .prefix("rcompose-root-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let project = dir.path().join("proj");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(
        project.join("compose.yaml"),
        "services:\n  app:\n    image: busybox\n    command: sleep 100\n",
    )
    .unwrap();
    let private = dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let root = private.join("root");
    let run = private.join("run");

    let as_nobody = |args: &[&str]| {
        let out = Command::new("runuser")
            .args(["-u", "nobody", "--", env!("CARGO_BIN_EXE_rcompose")])
            .args(args)
            .current_dir(&project)
            .env("RCOMPOSE_ROOT", &root)
            .env("RCOMPOSE_RUN", &run)
            .output()
            .expect("runuser");
        (
            out.status.code(),
            common::stderr(&out),
            common::stdout(&out),
        )
    };
    let commands: &[&[&str]] = &[
        &["up", "-d"],
        &["run", "--rm", "app", "true"],
        &["pull"],
        &["down"],
        &["ps"],
        &["ls"],
        &["stop"],
        &["kill"],
        &["start"],
        &["images"],
        &["exec", "app", "true"],
        &["logs"],
    ];
    for args in commands {
        let (code, err, _) = as_nobody(args);
        let expect = format!("rcompose {} needs root: ", args[0]);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(
            err.contains(&expect),
            "{args:?} does not say it needs root: {err}"
        );
        for blame in [
            "lock",
            "Permission denied",
            "set owner",
            "registry",
            "docker.io",
        ] {
            assert!(!err.contains(blame), "{args:?} blames {blame:?}: {err}");
        }
        assert_eq!(err.lines().count(), 1, "{args:?}: one message: {err}");
    }
    assert!(!root.exists() && !run.exists(), "nothing was created");

    // Reading compose files needs nothing.
    let (code, err, out) = as_nobody(&["config", "--services"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "app\n");
}
