//! `image save`, `image tag` and `image history` end to end: an image pulled from the test bed,
//! saved, loaded into a fresh RCOMPOSE_ROOT, is the same image.

mod common;

use common::{skip, stderr, stdout, testbed_env, State};
use std::process::Stdio;

const IMAGE: &str = "127.0.0.1:5043/library/busybox:latest";

fn pulled(test: &str) -> Option<(State, Vec<(String, String)>, String)> {
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
