//! Names and container paths from a hostile compose file (issue 19, findings 2 and 3): a name
//! that becomes a directory must not lead out of rcompose's stores, and a container path with
//! `..` must not make rcompose read host files while it fills a new volume.

mod common;

use std::path::{Path, PathBuf};

use common::{out, skip, stderr, Project, State};

/// `short` names the project: the supervisor's socket path must stay under `SUN_LEN`.
fn project(test: &str, short: &str, compose: &str) -> Option<Project> {
    Project::new(test, &format!("sn{short}"), compose)
}

/// `..` enough times to climb from any store directory to `/`, then `to` (absolute): the
/// relative path a hostile file writes to reach `to` from wherever rcompose joins it.
fn climb_to(to: &Path) -> String {
    let ups = "../".repeat(32);
    format!("{ups}{}", to.to_string_lossy().trim_start_matches('/'))
}

/// A host directory the hostile file aims at, with a file in it that must survive.
fn victim() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("rcompose-victim-")
        .tempdir()
        .expect("temp dir");
    let x = dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    std::fs::write(x.join("keep"), "precious").unwrap();
    (dir, x)
}

#[test]
fn a_volume_name_outside_the_store_is_refused_and_never_removed() {
    let (_guard, x) = victim();
    let compose = format!(
        r#"
services:
  s:
    image: busybox
    command: ["true"]
    volumes: ["vol:/data"]
volumes:
  vol:
    name: "{}"
"#,
        climb_to(&x)
    );
    let Some(p) = project(
        "a_volume_name_outside_the_store_is_refused_and_never_removed",
        "volname",
        &compose,
    ) else {
        return;
    };
    let o = p.rc(&["up", "-d"]);
    assert!(!o.status.success(), "up accepted the name:\n{}", out(&o));
    let e = stderr(&o);
    assert!(
        e.contains("volumes.vol") && e.contains("invalid volume name") && e.contains("../"),
        "the error names neither the key nor the name:\n{e}"
    );
    assert!(
        !x.join("_data").exists(),
        "up created a volume in the host directory {}",
        x.display()
    );
    // Nothing was created for the project either.
    let volumes = p.state.root().join("volumes");
    let made: Vec<_> = std::fs::read_dir(&volumes)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(made.is_empty(), "volumes created: {made:?}");

    let _ = p.rc(&["down", "-v", "-t", "0"]);
    assert_eq!(
        std::fs::read_to_string(x.join("keep")).ok().as_deref(),
        Some("precious"),
        "down -v removed the host directory {}",
        x.display()
    );
}

#[test]
fn a_container_name_outside_the_cgroup_tree_is_refused() {
    let Some(p) = project(
        "a_container_name_outside_the_cgroup_tree_is_refused",
        "cname",
        "",
    ) else {
        return;
    };
    // The schema's pattern is unanchored, so this passes it; the name becomes the cgroup
    // `rcompose/<project>/<name>`, which would then be a cgroup beside `rcompose`.
    let escape = format!("ab/../../../{}-escaped", p.name);
    std::fs::write(
        p.dir.path().join("compose.yaml"),
        format!(
            "services:\n  s:\n    image: busybox\n    command: [\"true\"]\n    container_name: \"{escape}\"\n"
        ),
    )
    .unwrap();
    let o = p.rc(&["up", "-d"]);
    assert!(!o.status.success(), "up accepted the name:\n{}", out(&o));
    let e = stderr(&o);
    assert!(
        e.contains("services.s.container_name") && e.contains(&escape),
        "the error names neither the key nor the name:\n{e}"
    );
    for root in common::cgroup_roots() {
        let cg = root.join(format!("{}-escaped", p.name));
        assert!(
            !cg.exists(),
            "cgroup created outside rcompose: {}",
            cg.display()
        );
    }
}

#[test]
fn a_volume_target_with_dotdot_copies_nothing_from_the_host() {
    let (_guard, x) = victim();
    std::fs::write(x.join("secret"), "TOPSECRET").unwrap();
    // The target, cleaned, is `<x>` inside the image, which busybox does not have: the new
    // volume starts empty. Joined to a layer directory unclean, it is the host's `<x>`.
    let target = format!("/{}", climb_to(&x));
    let compose = format!(
        r#"
services:
  s:
    image: busybox
    command: ["true"]
    volumes:
      - type: volume
        source: vol
        target: "{target}"
volumes:
  vol: {{}}
"#
    );
    let Some(p) = project(
        "a_volume_target_with_dotdot_copies_nothing_from_the_host",
        "target",
        &compose,
    ) else {
        return;
    };
    let o = p.rc(&["up", "-d"]);
    assert!(o.status.success(), "up failed:\n{}", out(&o));
    let data = p
        .state
        .root()
        .join("volumes")
        .join(format!("{}_vol", p.name))
        .join("_data");
    assert!(data.is_dir(), "the volume was not made: {}", data.display());
    let copied: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        copied.is_empty(),
        "the host's {} was copied into the volume: {copied:?}",
        x.display()
    );
    p.ok(&["down", "-v", "-t", "0"]);
    assert!(x.join("secret").exists());
}

#[test]
fn a_project_name_with_a_path_is_refused_without_a_compose_file() {
    if !nix::unistd::geteuid().is_root() {
        skip(
            "a_project_name_with_a_path_is_refused_without_a_compose_file",
            "needs root, as down does",
        );
        return;
    }
    let (_guard, x) = victim();
    let state = State::new();
    let empty = tempfile::tempdir().unwrap();
    // `down` on a project whose files are gone takes only its name, and removes a project
    // directory left without a state.
    let name = climb_to(&x);
    let o = state
        .cmd(&[])
        .current_dir(empty.path())
        .args(["-p", &name, "down"])
        .output()
        .expect("run rcompose");
    assert!(!o.status.success(), "down accepted -p {name}:\n{}", out(&o));
    assert!(
        stderr(&o).contains("invalid project name"),
        "unexpected error:\n{}",
        out(&o)
    );
    assert_eq!(
        std::fs::read_to_string(x.join("keep")).ok().as_deref(),
        Some("precious"),
        "down removed the host directory {}",
        x.display()
    );
}
