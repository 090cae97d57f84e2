//! `image import`, `image load`, `image inspect|rm|prune` end to end, each test with its own
//! RCOMPOSE_ROOT.

mod common;

use common::{skip, stderr, stdout, testbed_env, State};
use std::path::PathBuf;

fn rootfs_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data, mode) in [
        ("bin/hello", &b"#!/bin/sh\necho hello\n"[..], 0o755),
        ("etc/os-release", &b"ID=test\n"[..], 0o644),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, path, data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn import_inspect_remove_and_prune() {
    let state = State::new();
    let tarball = state.dir.path().join("rootfs.tar");
    std::fs::write(&tarball, rootfs_tar()).unwrap();
    let out = state
        .cmd(&[])
        .args([
            "image",
            "import",
            tarball.to_str().unwrap(),
            "example/hello:1",
        ])
        .args([
            "-c",
            "CMD [\"/bin/hello\"]",
            "-c",
            "ENV GREETING=hi",
            "-c",
            "WORKDIR /srv",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    assert!(id.starts_with("sha256:"), "{id}");

    let inspect = state
        .cmd(&[])
        .args(["image", "inspect", "example/hello:1"])
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(v[0]["Id"], id.as_str());
    assert_eq!(v[0]["Config"]["Cmd"], serde_json::json!(["/bin/hello"]));
    assert_eq!(v[0]["Config"]["WorkingDir"], "/srv");
    assert!(v[0]["Config"]["Env"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("GREETING=hi")));
    assert_eq!(v[0]["RepoTags"], serde_json::json!(["example/hello:1"]));

    // The listing formats.
    let short = &id.trim_start_matches("sha256:")[..12];
    let q = state.cmd(&[]).args(["image", "ls", "-q"]).output().unwrap();
    assert_eq!(stdout(&q).trim(), short);
    let j = state
        .cmd(&[])
        .args(["image", "ls", "--format", "json"])
        .output()
        .unwrap();
    let row: serde_json::Value = serde_json::from_str(stdout(&j).trim()).unwrap();
    assert_eq!(row["Repository"], "example/hello");
    assert_eq!(row["Tag"], "1");
    assert_eq!(row["ID"], short);
    let d = state
        .cmd(&[])
        .args(["image", "ls", "--digests"])
        .output()
        .unwrap();
    assert!(
        stdout(&d).lines().next().unwrap().contains("DIGEST"),
        "{}",
        stdout(&d)
    );
    assert!(
        stdout(&d).contains("<none>"),
        "imported images have no digest: {}",
        stdout(&d)
    );

    // A bad change is refused before anything is written.
    let out = state
        .cmd(&[])
        .args([
            "image",
            "import",
            tarball.to_str().unwrap(),
            "-c",
            "FOO bar",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid change \"FOO bar\""),
        "{}",
        stderr(&out)
    );

    let rm = state
        .cmd(&[])
        .args(["image", "rm", "example/hello:1"])
        .output()
        .unwrap();
    assert!(rm.status.success(), "{}", stderr(&rm));
    assert!(
        stdout(&rm).contains("Untagged: example/hello:1"),
        "{}",
        stdout(&rm)
    );
    assert!(
        stdout(&rm).contains(&format!("Deleted: {id}")),
        "{}",
        stdout(&rm)
    );
    let prune = state
        .cmd(&[])
        .args(["image", "prune", "-f"])
        .output()
        .unwrap();
    assert!(prune.status.success());
    assert!(
        stdout(&prune).contains("Total reclaimed space"),
        "{}",
        stdout(&prune)
    );
    let layers = std::fs::read_dir(state.root().join("images/layers/sha256"))
        .unwrap()
        .count();
    assert_eq!(layers, 0, "prune removed the unused layer");

    let missing = state
        .cmd(&[])
        .args(["image", "rm", "example/nope:1"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("no such image"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn load_docker_and_oci_archives_from_the_test_bed() {
    let Some(env) = testbed_env() else {
        skip(
            "image load",
            "the image test bed is not served (tests/testbed/testbed.sh all)",
        );
        return;
    };
    let dir = env
        .iter()
        .find(|(k, _)| k == "RCOMPOSE_TESTBED_DIR")
        .map(|(_, v)| PathBuf::from(v).join("tars"))
        .unwrap_or_default();
    if !dir.join("busybox-latest.docker.tar").is_file() {
        skip(
            "image load",
            "no test bed archives (tests/testbed/testbed.sh tars)",
        );
        return;
    }
    for (file, tag) in [
        ("busybox-latest.docker.tar", "busybox:latest"),
        ("nginx-alpine.oci.tar", "nginx:alpine"),
    ] {
        let state = State::new();
        let out = state
            .cmd(&[])
            .args(["image", "load", "-i", dir.join(file).to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!("Loaded image: {tag}")),
            "{file}: {}",
            stdout(&out)
        );
        let ls = state.cmd(&[]).args(["image", "ls"]).output().unwrap();
        let (repo, t) = tag.split_once(':').unwrap();
        assert!(
            stdout(&ls).contains(repo) && stdout(&ls).contains(t),
            "{}",
            stdout(&ls)
        );
    }
}

#[test]
fn loading_garbage_is_a_clear_error() {
    let state = State::new();
    let junk = state.dir.path().join("junk.tar");
    std::fs::write(&junk, rootfs_tar()).unwrap();
    let out = state
        .cmd(&[])
        .args(["image", "load", "-i", junk.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("junk.tar"), "{}", stderr(&out));
}
