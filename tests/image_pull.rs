//! Pulling images: through the test bed's registry (a docker.io mirror, and a second one with
//! basic auth), by tag and by digest, twice, in parallel; and from a fake registry that lies.
//! Each test has its own RCOMPOSE_ROOT.

mod common;
#[path = "common/fake_registry.rs"]
mod fake_registry;

use common::{skip, stderr, stdout, testbed_env, State};
use fake_registry::{FakeRegistry, Routes};
use sha2::{Digest, Sha256};
use std::path::Path;

fn testbed(test: &str) -> Option<Vec<(String, String)>> {
    let env = testbed_env();
    if env.is_none() {
        skip(
            test,
            "the image test bed is not served (run `tests/testbed/testbed.sh all` as root)",
        );
    }
    env
}

fn var(env: &[(String, String)], name: &str) -> String {
    env.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// `N new layer(s)` from `image pull`'s summary line.
fn new_layers(out: &str) -> usize {
    out.split(": ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

fn layer_dirs(state: &State) -> usize {
    std::fs::read_dir(state.root().join("images/layers/sha256"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn tmp_is_empty(state: &State) -> bool {
    std::fs::read_dir(state.root().join("images/tmp"))
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

#[test]
fn pull_by_tag_twice_fetches_nothing_the_second_time() {
    let Some(env) = testbed("pull by tag") else {
        return;
    };
    let state = State::new();
    let first = state
        .cmd(&env)
        .args(["image", "pull", "redis:7"])
        .output()
        .unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(new_layers(&stdout(&first)), 2, "{}", stdout(&first));
    let second = state
        .cmd(&env)
        .args(["image", "pull", "redis:7"])
        .output()
        .unwrap();
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(new_layers(&stdout(&second)), 0, "{}", stdout(&second));
    assert!(
        stderr(&second).contains("Already exists"),
        "{}",
        stderr(&second)
    );

    // python:3 shares the Debian base layer: only its own layer is fetched.
    let py = state
        .cmd(&env)
        .args(["image", "pull", "python:3"])
        .output()
        .unwrap();
    assert!(py.status.success(), "{}", stderr(&py));
    assert_eq!(new_layers(&stdout(&py)), 1, "{}", stdout(&py));
    assert_eq!(layer_dirs(&state), 3);
    assert!(tmp_is_empty(&state));

    let ls = state.cmd(&env).args(["image", "ls"]).output().unwrap();
    let ls = stdout(&ls);
    assert!(ls.contains("redis") && ls.contains("python"), "{ls}");

    // The unpacked layer holds the real redis-server.
    let found = std::fs::read_dir(state.root().join("images/layers/sha256"))
        .unwrap()
        .flatten()
        .any(|d| d.path().join("usr/bin/redis-server").exists());
    assert!(found, "redis-server is in one of the layers");
}

#[test]
fn pull_by_digest() {
    let Some(env) = testbed("pull by digest") else {
        return;
    };
    let state = State::new();
    let out = state
        .cmd(&env)
        .args(["image", "pull", "busybox"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let inspect = state
        .cmd(&env)
        .args(["image", "inspect", "busybox"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let repo_digest = v[0]["RepoDigests"][0].as_str().unwrap().to_string();
    assert!(
        repo_digest.starts_with("docker.io/library/busybox@sha256:"),
        "{repo_digest}"
    );

    let fresh = State::new();
    let out = fresh
        .cmd(&env)
        .args(["image", "pull", &repo_digest])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // An index pulled by digest works too (alpine:3 is an OCI index).
    let out = fresh
        .cmd(&env)
        .args(["image", "pull", "alpine:3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn pull_with_basic_auth() {
    let Some(env) = testbed("pull with auth") else {
        return;
    };
    let registry = var(&env, "RCOMPOSE_TESTBED_AUTH_REGISTRY");
    let auth_file = var(&env, "RCOMPOSE_TESTBED_AUTH_FILE");
    let image = format!("{registry}/library/busybox:latest");
    let state = State::new();

    let denied = state
        .cmd(&env)
        .args(["image", "pull", &image])
        .output()
        .unwrap();
    assert_eq!(denied.status.code(), Some(1));
    let err = stderr(&denied);
    assert!(
        err.contains("authentication to") && err.contains(&registry),
        "{err}"
    );

    let ok = state
        .cmd(&env)
        .env("REGISTRY_AUTH_FILE", &auth_file)
        .args(["image", "pull", &image])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", stderr(&ok));

    // Docker's config.json works as well; a wrong password is refused.
    let docker_dir = state.dir.path().join("docker");
    std::fs::create_dir_all(&docker_dir).unwrap();
    let bad = base64_encode(b"rcompose:wrong");
    std::fs::write(
        docker_dir.join("config.json"),
        format!(r#"{{"auths":{{"{registry}":{{"auth":"{bad}"}}}}}}"#),
    )
    .unwrap();
    let wrong = state
        .cmd(&env)
        .env("DOCKER_CONFIG", &docker_dir)
        .args(["image", "pull", &image])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1), "{}", stdout(&wrong));
    assert!(
        stderr(&wrong).contains("authentication"),
        "{}",
        stderr(&wrong)
    );
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn unknown_images_and_unreachable_registries_are_named() {
    let Some(env) = testbed("pull errors") else {
        return;
    };
    let state = State::new();
    let out = state
        .cmd(&env)
        .args(["image", "pull", "busybox:no-such-tag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("busybox:no-such-tag"), "{err}");
    assert!(err.contains("not found in 127.0.0.1:"), "{err}");

    // A registry nobody listens on: the port is bound then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = state.dir.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!("[[registry]]\nlocation = \"127.0.0.1:{port}\"\ninsecure = true\n"),
    )
    .unwrap();
    let out = state
        .cmd(&[])
        .env("CONTAINERS_REGISTRIES_CONF", &conf)
        .args(["image", "pull", &format!("127.0.0.1:{port}/x/y:1")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot reach registry 127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn compose_pull_pulls_every_service_and_honours_policies() {
    let Some(env) = testbed("compose pull") else {
        return;
    };
    let state = State::new();
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("compose.yaml"),
        "services:\n  web: {image: python:3}\n  cache: {image: redis:7}\n  tool: {image: busybox, pull_policy: never}\n",
    )
    .unwrap();
    let out = state
        .cmd(&env)
        .args(["-p", "pulltest", "pull"])
        .current_dir(project.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("tool Skipped"), "{}", stderr(&out));
    // python:3 and redis:7 share their base layer: it is downloaded once.
    assert_eq!(
        stderr(&out).matches("Pull complete").count(),
        3,
        "{}",
        stderr(&out)
    );
    let images = state
        .cmd(&env)
        .args(["-p", "pulltest", "images"])
        .current_dir(project.path())
        .output()
        .unwrap();
    let listed = stdout(&images);
    assert!(
        listed.contains("web") && listed.contains("cache"),
        "{listed}"
    );
    assert!(!listed.contains("tool"), "{listed}");
    let json = state
        .cmd(&env)
        .args(["-p", "pulltest", "images", "--format", "json"])
        .current_dir(project.path())
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(2), "{rows}");
    let ids = state
        .cmd(&env)
        .args(["-p", "pulltest", "images", "-q"])
        .current_dir(project.path())
        .output()
        .unwrap();
    assert_eq!(stdout(&ids).lines().count(), 2, "{}", stdout(&ids));

    // `missing` skips present images; a platform the index lacks is a clear error.
    std::fs::write(
        project.path().join("compose.yaml"),
        "services:\n  web: {image: python:3, pull_policy: missing}\n  arm: {image: alpine:3, platform: linux/s390x}\n",
    )
    .unwrap();
    let out = state
        .cmd(&env)
        .args(["-p", "pulltest", "pull"])
        .current_dir(project.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("web Skipped - image is already present locally"),
        "{err}"
    );
    assert!(
        err.contains("no manifest for platform linux/s390x"),
        "{err}"
    );
    let out = state
        .cmd(&env)
        .args(["-p", "pulltest", "pull", "--ignore-pull-failures", "-q"])
        .current_dir(project.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn concurrent_pulls_of_the_same_image_both_succeed() {
    let Some(env) = testbed("concurrent pulls") else {
        return;
    };
    let state = State::new();
    let children: Vec<_> = (0..3)
        .map(|_| {
            state
                .cmd(&env)
                .args(["image", "pull", "-q", "redis:7"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(layer_dirs(&state), 2);
    assert!(tmp_is_empty(&state));
}

// ---- a registry that lies ----

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// A tar with one entry whose name is written as given (the tar crate refuses `..`).
fn raw_tar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&header, data).unwrap();
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Routes for `evil/app:1` whose one layer is `served`, declared as `declared` (digest, size).
fn image_routes(served: &[u8], declared: &[u8], diff_id: &str) -> Routes {
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    })
    .to_string()
    .into_bytes();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(declared), "size": declared.len()}],
    })
    .to_string()
    .into_bytes();
    let mut routes = Routes::new();
    let json = "application/vnd.oci.image.manifest.v1+json".to_string();
    routes.insert(
        "/v2/evil/app/manifests/1".into(),
        (json.clone(), manifest.clone()),
    );
    routes.insert(
        format!("/v2/evil/app/manifests/{}", sha(&manifest)),
        (json, manifest),
    );
    routes.insert(
        format!("/v2/evil/app/blobs/{}", sha(&config)),
        ("application/octet-stream".into(), config),
    );
    routes.insert(
        format!("/v2/evil/app/blobs/{}", sha(declared)),
        ("application/octet-stream".into(), served.to_vec()),
    );
    routes
}

fn fake_pull(routes: Routes, image_path: &str) -> (State, std::process::Output) {
    pull_from(FakeRegistry::start(routes), image_path)
}

fn pull_from(registry: FakeRegistry, image_path: &str) -> (State, std::process::Output) {
    let state = State::new();
    let conf = state.dir.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nlocation = \"{}\"\ninsecure = true\n",
            registry.host
        ),
    )
    .unwrap();
    let out = state
        .cmd(&[])
        .env("CONTAINERS_REGISTRIES_CONF", &conf)
        .args(["image", "pull", &format!("{}/{image_path}", registry.host)])
        .output()
        .unwrap();
    (state, out)
}

/// Nothing named `marker` anywhere under `dir`.
fn nowhere(dir: &Path, marker: &str) -> bool {
    walk(dir)
        .iter()
        .all(|p| !p.to_string_lossy().contains(marker))
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            out.push(e.path());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(walk(&e.path()));
            }
        }
    }
    out
}

#[test]
fn a_registry_serving_a_wrong_blob_is_refused() {
    let good = gzip(&raw_tar("hello.txt", b"hello"));
    let evil = gzip(&raw_tar("hello.txt", b"evil!"));
    let diff_id = sha(&raw_tar("hello.txt", b"hello"));
    let (state, out) = fake_pull(image_routes(&evil, &good, &diff_id), "evil/app:1");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("failed verification"), "{err}");
    assert!(
        err.contains("digest mismatch") || err.contains("declared size"),
        "{err}"
    );
    assert_eq!(layer_dirs(&state), 0, "no layer published");
    assert!(tmp_is_empty(&state), "no partial file left");
    assert!(
        !state.root().join("images/refs.json").exists(),
        "nothing tagged"
    );
}

#[test]
fn a_layer_whose_diff_id_lies_is_refused() {
    let layer = gzip(&raw_tar("hello.txt", b"hello"));
    let (state, out) = fake_pull(
        image_routes(&layer, &layer, &sha(b"something else")),
        "evil/app:1",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("the config says"), "{}", stderr(&out));
    assert_eq!(layer_dirs(&state), 0);
    assert!(tmp_is_empty(&state));
}

#[test]
fn a_hostile_layer_is_refused_and_writes_nothing_outside() {
    let tar = raw_tar("../../../../escaped-by-rcompose-test", b"gotcha");
    let layer = gzip(&tar);
    let (state, out) = fake_pull(image_routes(&layer, &layer, &sha(&tar)), "evil/app:1");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("escaped-by-rcompose-test"),
        "names the entry: {err}"
    );
    assert!(nowhere(state.dir.path(), "escaped-by-rcompose-test"));
    assert!(!Path::new("/escaped-by-rcompose-test").exists());
    assert_eq!(layer_dirs(&state), 0);
    assert!(tmp_is_empty(&state));
}

/// A failure no other registry can cure (here a layer the unpacker refuses; a store it cannot
/// write is the same) ends the pull: rcompose does not go on to the next registry and end on
/// its network error, which would blame a registry for the failure.
#[test]
fn a_failure_after_the_download_is_not_followed_by_other_registries() {
    let tar = raw_tar("../../../../escaped-by-rcompose-test", b"gotcha");
    let layer = gzip(&tar);
    let mirror = FakeRegistry::start(image_routes(&layer, &layer, &sha(&tar)));
    // The registry itself is one nobody listens on; only its mirror answers.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let state = State::new();
    let conf = state.dir.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nlocation = \"127.0.0.1:{port}\"\ninsecure = true\n\
             [[registry.mirror]]\nlocation = \"{}\"\ninsecure = true\n",
            mirror.host
        ),
    )
    .unwrap();
    let out = state
        .cmd(&[])
        .env("CONTAINERS_REGISTRIES_CONF", &conf)
        .args(["image", "pull", &format!("127.0.0.1:{port}/evil/app:1")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("escaped-by-rcompose-test"),
        "names the entry: {err}"
    );
    assert!(
        !err.contains("cannot reach") && !err.contains("every registry failed"),
        "a registry is blamed for a failure it did not cause: {err}"
    );
    assert_eq!(layer_dirs(&state), 0);
}

#[test]
fn a_manifest_pulled_by_digest_must_have_that_digest() {
    let layer = gzip(&raw_tar("hello.txt", b"hello"));
    let mut routes = image_routes(&layer, &layer, &sha(&raw_tar("hello.txt", b"hello")));
    let wanted = sha(b"not the manifest");
    let manifest = routes["/v2/evil/app/manifests/1"].clone();
    routes.insert(format!("/v2/evil/app/manifests/{wanted}"), manifest);
    let (state, out) = fake_pull(routes, &format!("evil/app@{wanted}"));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("failed verification"), "{err}");
    assert!(err.contains(&wanted), "names the digest: {err}");
    assert_eq!(layer_dirs(&state), 0);
}

#[test]
fn bearer_token_auth_like_docker_hub() {
    let tar = raw_tar("hello.txt", b"hello");
    let layer = gzip(&tar);
    let registry =
        FakeRegistry::start_with_token(image_routes(&layer, &layer, &sha(&tar)), "s3cret");
    let issued = registry.tokens_issued.clone();
    let (state, out) = pull_from(registry, "evil/app:1");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        issued.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "a token was fetched"
    );
    assert_eq!(layer_dirs(&state), 1);
}

fn zstd_compress(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// Routes for `multi/app:1`: a docker manifest list (or OCI index) leading to a manifest of the
/// given media type with one layer per (media type, blob, uncompressed tar).
fn multi_routes(
    list_type: &str,
    manifest_type: &str,
    layers: &[(&str, Vec<u8>, Vec<u8>)],
) -> Routes {
    let diff_ids: Vec<String> = layers.iter().map(|(_, _, tar)| sha(tar)).collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string()
    .into_bytes();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": sha(&config), "size": config.len()},
        "layers": layers.iter().map(|(mt, blob, _)| serde_json::json!(
            {"mediaType": mt, "digest": sha(blob), "size": blob.len()})).collect::<Vec<_>>(),
    })
    .to_string()
    .into_bytes();
    let list = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": list_type,
        "manifests": [
            {"mediaType": manifest_type, "digest": sha(b"arm"), "size": 1,
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
            {"mediaType": manifest_type, "digest": sha(&manifest), "size": manifest.len(),
             "platform": {"architecture": "amd64", "os": "linux"}},
        ],
    })
    .to_string()
    .into_bytes();
    let mut routes = Routes::new();
    routes.insert("/v2/multi/app/manifests/1".into(), (list_type.into(), list));
    routes.insert(
        format!("/v2/multi/app/manifests/{}", sha(&manifest)),
        (manifest_type.into(), manifest),
    );
    routes.insert(
        format!("/v2/multi/app/blobs/{}", sha(&config)),
        ("application/octet-stream".into(), config),
    );
    for (_, blob, _) in layers {
        routes.insert(
            format!("/v2/multi/app/blobs/{}", sha(blob)),
            ("application/octet-stream".into(), blob.clone()),
        );
    }
    routes
}

#[test]
fn docker_manifest_lists_with_gzip_zstd_and_plain_layers() {
    let a = raw_tar("a.txt", b"gzip layer");
    let b = raw_tar("b.txt", b"zstd layer");
    let c = raw_tar("c.txt", b"plain layer");
    let layers = vec![
        (
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            gzip(&a),
            a.clone(),
        ),
        (
            "application/vnd.oci.image.layer.v1.tar+zstd",
            zstd_compress(&b),
            b.clone(),
        ),
        (
            "application/vnd.oci.image.layer.v1.tar",
            c.clone(),
            c.clone(),
        ),
    ];
    let routes = multi_routes(
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        &layers,
    );
    let (state, out) = fake_pull(routes, "multi/app:1");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(layer_dirs(&state), 3);
    for (tar, file) in [(&a, "a.txt"), (&b, "b.txt"), (&c, "c.txt")] {
        let dir = state
            .root()
            .join("images/layers/sha256")
            .join(sha(tar).trim_start_matches("sha256:"));
        assert!(dir.join(file).is_file(), "{file} unpacked");
    }
}

#[test]
fn progress_flag_controls_pull_output() {
    let Some(env) = testbed("pull progress") else {
        return;
    };
    let state = State::new();
    let quiet = state
        .cmd(&env)
        .args(["--progress", "quiet", "image", "pull", "busybox"])
        .output()
        .unwrap();
    assert!(quiet.status.success(), "{}", stderr(&quiet));
    assert!(!stderr(&quiet).contains("Pulling"), "{}", stderr(&quiet));
    let plain = state
        .cmd(&env)
        .args(["--progress", "plain", "image", "pull", "busybox"])
        .output()
        .unwrap();
    assert!(plain.status.success(), "{}", stderr(&plain));
    assert!(
        stderr(&plain).contains("busybox:latest Pulling"),
        "{}",
        stderr(&plain)
    );
    assert!(
        stderr(&plain).contains("Already exists"),
        "{}",
        stderr(&plain)
    );
}
