//! rcompose's state is root's alone: image layers hold setuid binaries that a hostile image
//! chose, and containers' layers and volumes are written by containers. A host user must not
//! reach them through `$RCOMPOSE_ROOT` or `$RCOMPOSE_RUN` (docker keeps /var/lib/docker 0710).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{out, Project};

#[test]
fn state_directories_are_private_to_root() {
    let Some(p) = Project::new(
        "state_directories_are_private_to_root",
        "secstate",
        "services:\n  box:\n    image: debian:bookworm\n    command: sleep infinity\n    init: true\n",
    ) else {
        return;
    };
    // The state's temporary directory is itself 0700: open it, as /var/lib is, so that only
    // rcompose's own directories stand in the way. A root made 0755 by an older rcompose is
    // tightened.
    let chmod = |path: &std::path::Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    chmod(p.state.dir.path(), 0o755);
    std::fs::create_dir(p.state.root()).expect("mkdir");
    chmod(&p.state.root(), 0o755);
    p.ok(&["up", "-d"]);
    for dir in [p.state.root(), p.state.run()] {
        let mode = std::fs::metadata(&dir).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
    }
    // `su` is setuid root in Debian's layer; nobody cannot even see it.
    let su = walk_find(&p.state.root().join("images"), "su");
    let su = su.expect("the debian layer has /usr/bin/su");
    assert_ne!(
        std::fs::metadata(&su).expect("stat").permissions().mode() & 0o4000,
        0
    );
    let o = Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(&su)
        .arg("--help")
        .output()
        .expect("setpriv");
    assert!(
        !o.status.success() && common::stderr(&o).contains("Permission denied"),
        "nobody ran a setuid binary of an image layer: {}",
        out(&o)
    );
    p.ok(&["down", "-t", "0"]);
    p.assert_nothing_left();
}

/// The first `usr/bin/NAME` under `dir`.
fn walk_find(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    let candidate = dir.join("usr/bin").join(name);
    if candidate.is_file() {
        return Some(candidate);
    }
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let ft = entry.file_type().ok()?;
        if ft.is_dir() {
            if let Some(found) = walk_find(&entry.path(), name) {
                return Some(found);
            }
        }
    }
    None
}
