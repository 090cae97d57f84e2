//! `rcompose config` end to end: discovery, project names, env files, profiles, the listing
//! flags, and clear errors (file, line, column, key) for bad input.

mod common;

use common::{rcompose, rcompose_in, stderr, stdout};
use serde_json::Value;
use std::path::Path;

fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("rcompose-cfg-")
        .tempdir()
        .unwrap();
    for (name, content) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    dir
}

fn json_config(dir: &Path, extra: &[&str]) -> Value {
    let mut args = extra.to_vec();
    args.extend(["config", "--format", "json"]);
    let out = rcompose_in(dir, &args);
    assert!(out.status.success(), "config failed: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("config prints JSON")
}

/// A bad file: exit 1, one clear message naming the file and where.
fn assert_rejected(content: &str, expect: &[&str]) {
    let dir = project(&[("compose.yaml", content)]);
    let out = rcompose_in(dir.path(), &["config"]);
    assert_eq!(out.status.code(), Some(1), "should fail: {content}");
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "panic on {content:?}: {err}");
    assert!(err.contains("compose.yaml"), "names the file: {err}");
    for e in expect {
        assert!(err.contains(e), "expected {e:?} in: {err}");
    }
    assert!(
        stdout(&out).is_empty(),
        "prints nothing on stdout: {}",
        stdout(&out)
    );
}

#[test]
fn bad_input_gets_one_clear_error_with_a_location() {
    // Truncated in the middle of a flow sequence.
    assert_rejected(
        "services:\n  web:\n    image: busybox\n    ports: [\"80:80\"",
        &[":5:1", "did not find expected ',' or ']'"],
    );
    // Tab indentation.
    assert_rejected("services:\n\tweb:\n\t\timage: busybox\n", &[":2:"]);
    // An unknown key.
    assert_rejected(
        "services:\n  web:\n    image: busybox\n    wrongField: 1\n",
        &[":4:5", "wrongField"],
    );
    // A duplicate key.
    assert_rejected(
        "services:\n  web:\n    image: a\n    image: b\n",
        &[":4:", "duplicate", "image"],
    );
    // A wrong type.
    assert_rejected(
        "services:\n  web:\n    image: busybox\n    ports: 80\n",
        &[":4:5", "services.web.ports"],
    );
}

#[test]
fn dependency_cycles_and_undefined_services_are_named() {
    let dir = project(&[(
        "compose.yaml",
        "services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n",
    )]);
    let out = rcompose_in(dir.path(), &["config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("dependency cycle detected: a -> b -> a"),
        "{}",
        stderr(&out)
    );

    let dir = project(&[(
        "compose.yaml",
        "services:\n  a: {image: x, depends_on: [nope]}\n",
    )]);
    let out = rcompose_in(dir.path(), &["config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("undefined service \"nope\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn files_are_found_in_parent_directories_with_their_override() {
    let dir = project(&[
        ("compose.yaml", "services:\n  web: {image: busybox}\n"),
        (
            "compose.override.yaml",
            "services:\n  web: {environment: {FROM: override}}\n",
        ),
        ("sub/dir/.keep", ""),
    ]);
    let cfg = json_config(&dir.path().join("sub/dir"), &[]);
    assert_eq!(cfg["services"]["web"]["environment"]["FROM"], "override");
    // The project is named after the directory holding the compose file.
    let expected = dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_lowercase()
        .replace(
            |c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "",
        );
    assert_eq!(cfg["name"], expected.as_str());
}

#[test]
fn project_name_precedence() {
    let dir = project(&[(
        "compose.yaml",
        "name: from-file\nservices:\n  web: {image: x}\n",
    )]);
    assert_eq!(json_config(dir.path(), &[])["name"], "from-file");
    assert_eq!(
        json_config(dir.path(), &["-p", "from-flag"])["name"],
        "from-flag"
    );
    let out = rcompose()
        .args(["config", "--format", "json"])
        .env("COMPOSE_PROJECT_NAME", "from-env")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "from-env");
    // An explicit name must already be valid.
    let out = rcompose_in(dir.path(), &["-p", "Bad Name", "config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid project name"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn dotenv_interpolation_and_os_precedence() {
    let dir = project(&[
        (".env", "TAG=1.0\nPORT=8080\n"),
        (
            "compose.yaml",
            "services:\n  web:\n    image: busybox:${TAG}\n    ports: [\"${PORT}:80\"]\n    environment: [\"X=${MISSING:-dflt}\"]\n",
        ),
    ]);
    let cfg = json_config(dir.path(), &[]);
    assert_eq!(cfg["services"]["web"]["image"], "busybox:1.0");
    assert_eq!(cfg["services"]["web"]["ports"][0]["published"], "8080");
    assert_eq!(cfg["services"]["web"]["environment"]["X"], "dflt");
    let out = rcompose()
        .args(["config", "--format", "json"])
        .env("TAG", "os")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["services"]["web"]["image"], "busybox:os");

    // `${VAR:?message}` reaches the user.
    let dir = project(&[(
        "compose.yaml",
        "services:\n  web:\n    image: ${IMG:?IMG must be set}\n",
    )]);
    let out = rcompose_in(dir.path(), &["config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("IMG must be set"), "{}", stderr(&out));
}

#[test]
fn env_file_flag_and_disabling_the_default() {
    let dir = project(&[
        (".env", "TAG=dot\n"),
        ("other.env", "TAG=other\n"),
        (
            "compose.yaml",
            "services:\n  web:\n    image: x:${TAG:-none}\n",
        ),
    ]);
    let cfg = json_config(dir.path(), &["--env-file", "other.env"]);
    assert_eq!(cfg["services"]["web"]["image"], "x:other");
    let out = rcompose()
        .args(["config", "--format", "json"])
        .env("COMPOSE_DISABLE_ENV_FILE", "1")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["services"]["web"]["image"], "x:none");
}

#[test]
fn compose_file_variable_and_stdin() {
    let dir = project(&[
        ("a.yaml", "services:\n  web: {image: a}\n"),
        (
            "b.yaml",
            "services:\n  web: {image: b}\n  db: {image: db}\n",
        ),
    ]);
    let out = rcompose()
        .args(["config", "--services"])
        .env("COMPOSE_FILE", "a.yaml:b.yaml")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "db\nweb\n");

    use std::io::Write;
    let mut child = rcompose()
        .args(["-f", "-", "-p", "stdin", "config", "--format", "json"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"services:\n  s: {image: from-stdin}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["services"]["s"]["image"], "from-stdin");
}

#[test]
fn merge_extends_and_profiles() {
    let dir = project(&[
        (
            "compose.yaml",
            "services:\n  web:\n    extends: {file: base.yaml, service: base}\n    ports: [\"80:80\"]\n  debug:\n    image: busybox\n    profiles: [dev]\n",
        ),
        (
            "base.yaml",
            "services:\n  base:\n    image: busybox\n    command: [sleep, \"1\"]\n    volumes: [\"./data:/data\"]\n",
        ),
        (
            "override.yaml",
            "services:\n  web:\n    command: [sleep, \"2\"]\n    ports: [\"81:81\"]\n",
        ),
    ]);
    let cfg = json_config(dir.path(), &["-f", "compose.yaml", "-f", "override.yaml"]);
    let web = &cfg["services"]["web"];
    assert_eq!(web["image"], "busybox");
    assert_eq!(web["command"], serde_json::json!(["sleep", "2"]));
    assert_eq!(web["ports"].as_array().unwrap().len(), 2);
    let data = dir.path().join("data");
    assert_eq!(web["volumes"][0]["source"], data.to_str().unwrap());
    assert!(cfg["services"].get("debug").is_none());

    let out = rcompose_in(dir.path(), &["--profile", "dev", "config", "--services"]);
    assert_eq!(stdout(&out), "debug\nweb\n");
    let out = rcompose_in(dir.path(), &["config", "--profiles"]);
    assert_eq!(stdout(&out), "dev\n");
}

#[test]
fn listing_flags_and_output_file() {
    let dir = project(&[(
        "compose.yaml",
        "name: lst\nservices:\n  web: {image: nginx, networks: [front], volumes: ['data:/d']}\n  app: {build: .}\nnetworks:\n  front: {}\nvolumes:\n  data: {}\n",
    )]);
    let run = |args: &[&str]| stdout(&rcompose_in(dir.path(), args));
    assert_eq!(run(&["config", "--services"]), "app\nweb\n");
    assert_eq!(run(&["config", "--volumes"]), "data\n");
    assert_eq!(run(&["config", "--networks"]), "default\nfront\n");
    assert_eq!(run(&["config", "--images"]), "lst-app\nnginx\n");
    assert_eq!(run(&["config", "-q"]), "");
    let hashes = run(&["config", "--hash", "*"]);
    assert_eq!(hashes.lines().count(), 2);
    assert!(hashes.starts_with("app "), "{hashes}");

    let out_file = dir.path().join("out.yaml");
    let out = rcompose_in(dir.path(), &["config", "-o", out_file.to_str().unwrap()]);
    assert!(out.status.success());
    let written = std::fs::read_to_string(out_file).unwrap();
    assert!(written.contains("name: lst"), "{written}");
}

/// `config --services` lists services in dependency order, as docker compose does (its start
/// point is Go map order; ours is the sorted names), and ignores service names as docker does;
/// `config SERVICE` and `--images SERVICE` take the service's dependencies along.
#[test]
fn listings_follow_dependency_order() {
    let dir = project(&[(
        "compose.yaml",
        "name: ord\nservices:\n  web: {image: nginx, depends_on: [db, cache], profiles: [front]}\n  db: {image: postgres}\n  cache: {image: redis, depends_on: [db]}\n  alpha: {image: busybox}\n  worker: {image: python, depends_on: [cache], profiles: [jobs]}\n  beta: {build: .}\n",
    )]);
    let run = |args: &[&str]| {
        let out = rcompose_in(dir.path(), args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(run(&["config", "--services"]), "alpha\nbeta\ndb\ncache\n");
    assert_eq!(
        run(&["--profile", "*", "config", "--services"]),
        "alpha\nbeta\ndb\ncache\nweb\nworker\n"
    );
    // Named services change nothing, even unknown or disabled ones.
    assert_eq!(
        run(&["config", "--services", "web", "nosuch"]),
        "alpha\nbeta\ndb\ncache\n"
    );
    assert_eq!(
        run(&["config", "--images", "worker"]),
        "postgres\nredis\npython\n"
    );
    let json = json_config(dir.path(), &["--profile", "*"]);
    assert_eq!(json["services"].as_object().map(|m| m.len()), Some(6));
    let out = rcompose_in(dir.path(), &["config", "--format", "json", "web"]);
    let json: Value = serde_json::from_slice(&out.stdout).expect("config prints JSON");
    let mut names: Vec<&String> = json["services"].as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(names, ["cache", "db", "web"]);
}

#[test]
fn dollars_are_escaped_in_output() {
    let dir = project(&[(
        "compose.yaml",
        "services:\n  web:\n    image: busybox\n    command: echo $$HOME\n",
    )]);
    let cfg = json_config(dir.path(), &[]);
    assert_eq!(
        cfg["services"]["web"]["command"],
        serde_json::json!(["echo", "$$HOME"])
    );
}

#[test]
fn no_compose_file_is_a_clear_error() {
    let dir = project(&[]);
    let out = rcompose_in(dir.path(), &["config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no configuration file provided"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn version_prints_the_version() {
    let out = rcompose().arg("version").output().unwrap();
    assert!(out.status.success());
    assert!(stdout(&out).contains(env!("CARGO_PKG_VERSION")));
}

fn config_error(files: &[(&str, &str)], args: &[&str]) -> String {
    let dir = project(files);
    let mut all = args.to_vec();
    all.push("config");
    let out = rcompose_in(dir.path(), &all);
    assert_eq!(out.status.code(), Some(1), "should fail: {}", stdout(&out));
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn extends_errors_are_explained() {
    let err = config_error(
        &[(
            "compose.yaml",
            "services:\n  a: {extends: {service: b}}\n  b: {extends: {service: a}}\n",
        )],
        &[],
    );
    assert!(err.contains("circular reference in extends"), "{err}");
    let err = config_error(
        &[(
            "compose.yaml",
            "services:\n  a: {extends: {service: nope}}\n",
        )],
        &[],
    );
    assert!(err.contains("service \"nope\" not found"), "{err}");
    let err = config_error(
        &[(
            "compose.yaml",
            "services:\n  a: {extends: {file: missing.yaml, service: b}}\n",
        )],
        &[],
    );
    assert!(err.contains("missing.yaml"), "{err}");
}

#[test]
fn include_loads_projects_with_their_own_directory_and_env() {
    let dir = project(&[
        (
            "compose.yaml",
            "include:\n  - sub/compose.yaml\nservices:\n  web: {image: web, depends_on: [db]}\n",
        ),
        ("sub/.env", "DB_TAG=15\n"),
        (
            "sub/compose.yaml",
            "services:\n  db:\n    image: postgres:${DB_TAG}\n    volumes: ['./data:/var/lib/data']\n",
        ),
    ]);
    let cfg = json_config(dir.path(), &[]);
    let db = &cfg["services"]["db"];
    assert_eq!(db["image"], "postgres:15");
    let data = dir.path().join("sub/data");
    assert_eq!(db["volumes"][0]["source"], data.to_str().unwrap());
}

#[test]
fn include_conflicts_and_cycles_are_rejected() {
    let err = config_error(
        &[
            (
                "compose.yaml",
                "include: [other.yaml]\nservices:\n  db: {image: mine}\n",
            ),
            ("other.yaml", "services:\n  db: {image: theirs}\n"),
        ],
        &[],
    );
    assert!(
        err.contains("services.db conflicts with imported resource"),
        "{err}"
    );
    let err = config_error(
        &[
            (
                "compose.yaml",
                "include: [b.yaml]\nservices:\n  a: {image: a}\n",
            ),
            (
                "b.yaml",
                "include: [compose.yaml]\nservices:\n  b: {image: b}\n",
            ),
        ],
        &[],
    );
    assert!(err.contains("include cycle detected"), "{err}");
}

#[test]
fn reset_and_override_tags_in_overrides() {
    let dir = project(&[
        (
            "compose.yaml",
            "services:\n  web:\n    image: web\n    ports: ['80:80']\n    environment: {A: '1', B: '2'}\n",
        ),
        (
            "compose.override.yaml",
            "services:\n  web:\n    ports: !reset []\n    environment: !override {C: '3'}\n",
        ),
    ]);
    let cfg = json_config(dir.path(), &[]);
    let web = &cfg["services"]["web"];
    assert!(web.get("ports").is_none(), "{web}");
    assert_eq!(web["environment"], serde_json::json!({"C": "3"}));
}

#[test]
fn a_missing_required_env_file_is_named() {
    let err = config_error(
        &[(
            "compose.yaml",
            "services:\n  web: {image: x, env_file: [nope.env]}\n",
        )],
        &[],
    );
    assert!(err.contains("nope.env"), "{err}");
    // `required: false` makes it optional.
    let dir = project(&[(
        "compose.yaml",
        "services:\n  web: {image: x, env_file: [{path: nope.env, required: false}]}\n",
    )]);
    let cfg = json_config(dir.path(), &[]);
    assert_eq!(cfg["services"]["web"]["image"], "x");
}

#[test]
fn ansi_flag_controls_colour() {
    let dir = project(&[(
        "compose.yaml",
        "version: '3'\nservices:\n  web: {image: busybox}\n",
    )]);
    let coloured = rcompose_in(dir.path(), &["--ansi", "always", "config", "-q"]);
    assert!(coloured.status.success());
    let err = stderr(&coloured);
    assert!(err.contains("`version` is obsolete"), "{err}");
    assert!(
        err.contains("\u{1b}["),
        "colour escapes with --ansi always: {err:?}"
    );
    let plain = rcompose_in(dir.path(), &["--ansi", "never", "config", "-q"]);
    assert!(!stderr(&plain).contains("\u{1b}["), "{:?}", stderr(&plain));
    let out = rcompose()
        .args(["config", "-q"])
        .env("COMPOSE_ANSI", "always")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(stderr(&out).contains("\u{1b}["), "COMPOSE_ANSI is honoured");
}

#[test]
fn a_missing_file_is_named_once() {
    let dir = project(&[]);
    let out = rcompose_in(dir.path(), &["-f", "nope.yaml", "config"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("nope.yaml"), "{err}");
    assert_eq!(
        err.matches("No such file").count(),
        1,
        "the cause is said once: {err}"
    );
}
