//! `image save`, `image tag` and `image history` end to end: an image pulled from the test bed,
//! saved, loaded into a fresh RCOMPOSE_ROOT, is the same image.

mod common;

use common::{skip, stderr, stdout, testbed_env, State};
use std::process::Stdio;

const IMAGE: &str = "127.0.0.1:5043/library/busybox:latest";

/// A fresh state with the test bed's busybox pulled: (state, test bed env, image reference).
type Pulled = (State, Vec<(String, String)>, String);

fn pulled(test: &str) -> Option<Pulled> {
    let Some(env) = testbed_env() else {
        skip(
            test,
            "the image test bed is not running (scripts/test serves it)",
        );
        return None;
    };
    let registry = env
        .iter()
        .find(|(k, _)| k == "RCOMPOSE_TESTBED_REGISTRY")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "127.0.0.1:5043".into());
    let image = IMAGE.replace("127.0.0.1:5043", &registry);
    let state = State::new();
    let out = state
        .cmd(&env)
        .args(["image", "pull", "-q", &image])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    Some((state, env, image))
}

fn id_of(state: &State, image: &str) -> String {
    let out = state
        .cmd(&[])
        .args(["image", "inspect", image])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["Id"].as_str().unwrap().to_string()
}

#[test]
fn save_then_load_elsewhere_is_the_same_image() {
    let Some((state, _env, image)) = pulled("save_then_load_elsewhere_is_the_same_image") else {
        return;
    };
    let id = id_of(&state, &image);
    let tag = state
        .cmd(&[])
        .args(["image", "tag", &image, "example/saved:1"])
        .output()
        .unwrap();
    assert!(tag.status.success(), "{}", stderr(&tag));
    assert_eq!(id_of(&state, "example/saved:1"), id);

    for format in ["docker", "oci"] {
        let file = state.dir.path().join(format!("saved-{format}.tar"));
        let out = state
            .cmd(&[])
            .args(["image", "save", "--format", format, "-o"])
            .arg(&file)
            .args([&image, "example/saved:1"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).is_empty(), "no warning: {}", stderr(&out));

        let fresh = State::new();
        let load = fresh
            .cmd(&[])
            .args(["image", "load", "-i"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(load.status.success(), "{format}: {}", stderr(&load));
        assert!(
            stdout(&load).contains("Loaded image: example/saved:1"),
            "{}",
            stdout(&load)
        );
        assert_eq!(id_of(&fresh, "example/saved:1"), id, "{format}");
        assert_eq!(id_of(&fresh, &image), id, "{format}");
    }

    // To standard output when it is not a terminal: the same bytes as with -o.
    let piped = state
        .cmd(&[])
        .args(["image", "save", &image, "example/saved:1"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(piped.status.success(), "{}", stderr(&piped));
    let file = std::fs::read(state.dir.path().join("saved-docker.tar")).unwrap();
    assert_eq!(piped.stdout, file);

    // An unknown image is an error naming it.
    let out = state
        .cmd(&[])
        .args(["image", "save", "-o"])
        .arg(state.dir.path().join("x.tar"))
        .arg("example/nope:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("example/nope:1"), "{}", stderr(&out));
    assert!(!state.dir.path().join("x.tar").exists());
}

#[test]
fn history_lists_the_config_history_newest_first() {
    let Some((state, _env, image)) = pulled("history_lists_the_config_history_newest_first") else {
        return;
    };
    let id = id_of(&state, &image);
    let out = state
        .cmd(&[])
        .args(["image", "history", &image])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    for col in ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"] {
        assert!(header.contains(col), "{header}");
    }
    let first = lines.next().unwrap();
    assert!(first.starts_with(&id["sha256:".len()..][..12]), "{first}");
    assert!(first.contains(" ago"), "{first}");

    let q = state
        .cmd(&[])
        .args(["image", "history", "-q", "--no-trunc", &image])
        .output()
        .unwrap();
    assert_eq!(stdout(&q).lines().next(), Some(id.as_str()));

    let j = state
        .cmd(&[])
        .args(["image", "history", "--format", "json", "-H=false", &image])
        .output()
        .unwrap();
    assert!(j.status.success(), "{}", stderr(&j));
    for line in stdout(&j).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for key in [
            "Comment",
            "CreatedAt",
            "CreatedBy",
            "CreatedSince",
            "ID",
            "Size",
        ] {
            assert!(v.get(key).is_some(), "{key} in {line}");
        }
        assert!(v["Size"].as_str().unwrap().parse::<u64>().is_ok(), "{line}");
    }
}

/// A built image (base from the test bed, a layer with a new file, a whiteout and an opaque
/// directory, an empty step) saved by rcompose is loaded and run by a private dockerd, with the
/// same image id.
#[test]
fn docker_loads_and_runs_a_saved_built_image() {
    use rcompose::build::layer::{capture, commit, scratch, ImageBuilder, LayerOptions};
    use rcompose::image::store::Store;
    const TEST: &str = "docker_loads_and_runs_a_saved_built_image";
    if !nix::unistd::geteuid().is_root() {
        return skip(TEST, "needs root (a private dockerd, device whiteouts)");
    }
    let have = |bin: &str| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("dockerd") || !have("containerd") || !have("docker") {
        return skip(
            TEST,
            "docker.io (dockerd, containerd, docker) is not installed",
        );
    }
    let Some((state, _env, image)) = pulled(TEST) else {
        return;
    };

    let store = Store::open(state.root().join("images")).unwrap();
    let base = store.resolve(&image).unwrap().unwrap();
    let mut b = ImageBuilder::from_base(&store, Some(&base)).unwrap();
    let dirs = scratch(&store).unwrap();
    std::fs::write(dirs.upper.join("hello.txt"), b"hello from rcompose\n").unwrap();
    std::fs::create_dir(dirs.upper.join("etc")).unwrap();
    nix::sys::stat::mknod(
        &dirs.upper.join("etc/group"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        0,
    )
    .unwrap();
    std::fs::create_dir(dirs.upper.join("usr")).unwrap();
    let usr = std::ffi::CString::new(dirs.upper.join("usr").into_os_string().into_encoded_bytes())
        .unwrap();
    // SAFETY: NUL-terminated strings; the value is valid for its length.
    let rc = unsafe {
        nix::libc::lsetxattr(
            usr.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    };
    assert_eq!(rc, 0);
    std::fs::write(dirs.upper.join("usr/only"), b"x").unwrap();
    let layer = capture(&store, dirs, &LayerOptions::default()).unwrap();
    b.add_layer(layer, "RUN /bin/sh -c make # buildkit");
    b.config_mut().cmd = Some(vec![
        "sh".into(),
        "-c".into(),
        "cat /hello.txt && ls /usr && ! test -e /etc/group && echo whited-out".into(),
    ]);
    b.add_history_only("CMD [\"sh\" \"-c\" \"…\"]");
    b.add_layer(None, "RUN /bin/sh -c true # buildkit");
    let built = commit(&store, b, &["example/built:1".parse().unwrap()]).unwrap();

    let file = state.dir.path().join("built.tar");
    let out = state
        .cmd(&[])
        .args(["image", "save", "-o"])
        .arg(&file)
        .arg("example/built:1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let script = format!(
        r#"set -eu
source bench/lib.sh
bench_docker_up
trap bench_docker_down EXIT
docker load -i '{file}' >&2
docker inspect --format '{{{{.Id}}}}' example/built:1
docker run --rm --network none example/built:1
"#,
        file = file.display()
    );
    let run = std::process::Command::new("nice")
        .args(["-n", "10", "bash", "-c", &script])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let text = stdout(&run);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(built.id.to_string().as_str()), "{text}");
    assert_eq!(
        lines.collect::<Vec<_>>(),
        ["hello from rcompose", "only", "whited-out"],
        "{text}"
    );
}
