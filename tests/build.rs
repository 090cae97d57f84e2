//! Image builds with real steps (root, the test bed): `image build`, the step cache by content,
//! failures that say where and why, the build network, compose's `build:` with `up`, `build`
//! and `--build`, and the classic build + redis example. Parity with `docker build` is
//! tests/build_parity.rs.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;

use common::{out, skip, stderr, stdout, testbed_env, Project, State};

/// A private state, the test bed's environment, and a context directory.
type Setup = (State, Vec<(String, String)>, tempfile::TempDir);

/// [`Setup`], or `None` after saying why the test cannot run.
fn setup(test: &str) -> Option<Setup> {
    if !nix::unistd::geteuid().is_root() {
        skip(test, "needs root to run build steps");
        return None;
    }
    let Some(env) = testbed_env() else {
        skip(
            test,
            "the image test bed is not served (scripts/test serves it)",
        );
        return None;
    };
    Some((State::new(), env, tempfile::tempdir().expect("temp dir")))
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, content) in files {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, content).expect("write");
    }
}

fn build(state: &State, env: &[(String, String)], ctx: &Path, args: &[&str]) -> Output {
    state
        .cmd(env)
        .args(["--progress", "plain", "image", "build"])
        .args(args)
        .arg(ctx)
        .output()
        .expect("run rcompose")
}

/// Whether the nftables table of the build network of build process `pid` is gone, waiting
/// for it up to 10 s: a finished build's network is removed by a detached helper process right
/// after it. Only that one: other tests' builds run beside it with their own.
fn build_table_gone(pid: u32) -> bool {
    let own = format!("rcompose-rcompose-build-{pid}-");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let tables = std::process::Command::new("nft")
            .args(["list", "tables"])
            .output()
            .expect("nft");
        let left = stdout(&tables).lines().any(|l| {
            l.split_whitespace()
                .last()
                .is_some_and(|t| t.starts_with(&own))
        });
        if !left {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A variable of the test bed's environment (registries, auth file), empty when unset.
fn testbed_var(env: &[(String, String)], key: &str) -> String {
    env.iter()
        .find(|(n, _)| n == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// The instructions a build's progress marked CACHED, and the ones it ran.
fn steps(progress: &str) -> (Vec<String>, Vec<String>) {
    let mut names = std::collections::BTreeMap::new();
    let mut cached = Vec::new();
    let mut ran = Vec::new();
    for line in progress.lines() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((n, text)) = rest.split_once(' ') else {
            continue;
        };
        if let Some(step) = text.strip_prefix('[') {
            if let Some((_, instruction)) = step.split_once("] ") {
                names.insert(n.to_string(), instruction.to_string());
            }
        } else if text == "CACHED" {
            cached.extend(names.get(n).cloned());
        } else if text.starts_with("DONE") {
            ran.extend(names.get(n).cloned().filter(|i| !i.starts_with("FROM")));
        }
    }
    (cached, ran)
}

#[test]
fn builds_run_and_are_cached_by_content() {
    let test = "builds_run_and_are_cached_by_content";
    let Some((state, env, ctx)) = setup(test) else {
        return;
    };
    write(
        ctx.path(),
        &[
            (
                "Dockerfile",
                "FROM busybox AS build\nARG NAME=world\nWORKDIR /src\nCOPY a.txt .\n\
                 RUN echo \"hello $NAME\" > out && cat a.txt >> out\nCOPY b.txt .\n\
                 RUN cat b.txt >> out\n\
                 FROM busybox\nCOPY --from=build /src/out /out\nCMD [\"cat\", \"/out\"]\n",
            ),
            ("a.txt", "A\n"),
            ("b.txt", "B\n"),
        ],
    );
    let tag = format!("{}:latest", common::project_name("bt-cache"));
    let first = build(&state, &env, ctx.path(), &["-t", &tag]);
    assert!(first.status.success(), "{}", out(&first));
    let (cached, ran) = steps(&stderr(&first));
    assert!(cached.is_empty(), "{}", out(&first));
    assert_eq!(ran.len(), 6, "{ran:?}\n{}", out(&first));

    // The image runs, with the build's result.
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("compose.yaml"),
        format!("services:\n  app:\n    image: {tag}\n"),
    )
    .expect("compose.yaml");
    let project = common::project_name("bt-cache-run");
    let run = state
        .cmd(&env)
        .current_dir(dir.path())
        .args(["-p", &project, "run", "--rm", "-T", "app"])
        .output()
        .expect("run");
    assert_eq!(stdout(&run), "hello world\nA\nB\n", "{}", out(&run));
    let down = state
        .cmd(&env)
        .current_dir(dir.path())
        .args(["-p", &project, "down"])
        .output()
        .expect("down");
    assert!(down.status.success(), "{}", out(&down));

    let id = |o: &Output| stdout(o).trim().to_string();
    let again = build(&state, &env, ctx.path(), &["-t", &tag, "-q"]);
    assert!(again.status.success(), "{}", out(&again));
    let id1 = id(&again);
    assert!(id1.starts_with("sha256:"), "{}", out(&again));

    // Nothing changed but an mtime: every step is a cache hit, the image is the same.
    let f = std::fs::File::options()
        .append(true)
        .open(ctx.path().join("a.txt"))
        .expect("open");
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .expect("touch");
    let touched = build(&state, &env, ctx.path(), &["-t", &tag]);
    let (cached, ran) = steps(&stderr(&touched));
    assert_eq!((cached.len(), ran.len()), (6, 0), "{}", out(&touched));
    let same = build(&state, &env, ctx.path(), &["-t", &tag, "-q"]);
    assert_eq!(id(&same), id1);

    // One changed file: the steps before the COPY that reads it are hits, the rest run.
    write(ctx.path(), &[("b.txt", "B2\n")]);
    let changed = build(&state, &env, ctx.path(), &["-t", &tag]);
    assert!(changed.status.success(), "{}", out(&changed));
    let (cached, ran) = steps(&stderr(&changed));
    assert_eq!(
        cached,
        vec![
            "WORKDIR /src".to_string(),
            "COPY a.txt .".into(),
            "RUN echo \"hello $NAME\" > out && cat a.txt >> out".into()
        ],
        "{}",
        out(&changed)
    );
    assert_eq!(ran.len(), 3, "{}", out(&changed));
    let new = build(&state, &env, ctx.path(), &["-t", &tag, "-q"]);
    assert_ne!(id(&new), id1);

    // --no-cache runs everything again.
    let cold = build(&state, &env, ctx.path(), &["-t", &tag, "--no-cache"]);
    let (cached, _) = steps(&stderr(&cold));
    assert!(cached.is_empty(), "{}", out(&cold));
}

#[test]
fn json_progress_is_json_alone() {
    let test = "json_progress_is_json_alone";
    let Some((state, env, ctx)) = setup(test) else {
        return;
    };
    let tag = common::project_name("bt-json");
    write(
        ctx.path(),
        &[("Dockerfile", "FROM busybox\nRUN echo hello from the step\n")],
    );
    // The store is new: the base image is pulled during the build, and says nothing there.
    let o = state
        .cmd(&env)
        .args(["--progress", "json", "image", "build", "-t", &tag])
        .arg(ctx.path())
        .output()
        .expect("run rcompose");
    assert!(o.status.success(), "{}", out(&o));
    let err = stderr(&o);
    let events: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{err}")))
        .collect();
    assert!(
        events.iter().any(|e| e["log"] == "hello from the step"),
        "{err}"
    );
    assert!(events.iter().any(|e| e["done"].is_number()), "{err}");
}

#[test]
fn bad_builds_say_where_and_why_and_tag_nothing() {
    let test = "bad_builds_say_where_and_why_and_tag_nothing";
    let Some((state, env, ctx)) = setup(test) else {
        return;
    };
    let tag = common::project_name("bt-bad");
    // A failing step: its stage, line, command, exit code and last output lines.
    write(
        ctx.path(),
        &[(
            "Dockerfile",
            "FROM busybox AS first\nRUN true\nRUN echo one; echo oops >&2; exit 3\n",
        )],
    );
    let o = build(&state, &env, ctx.path(), &["-t", &tag]);
    let err = stderr(&o);
    assert!(!o.status.success(), "{}", out(&o));
    for want in [
        "Dockerfile:3",
        "stage first",
        "RUN echo one; echo oops >&2; exit 3",
        "exit code 3",
        "oops",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    let ls = state.cmd(&env).args(["image", "ls"]).output().expect("ls");
    assert!(!stdout(&ls).contains(&tag), "{}", out(&ls));

    // A syntax error names file, line and column.
    write(ctx.path(), &[("Dockerfile", "FROM busybox\nRUNN true\n")]);
    let o = build(&state, &env, ctx.path(), &["-t", &tag]);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("Dockerfile:2:1"), "{err}");
    assert!(err.contains("RUNN"), "{err}");

    // A missing COPY source, and one .dockerignore excluded: named relative to the context.
    write(
        ctx.path(),
        &[
            ("Dockerfile", "FROM busybox\nCOPY secret.key /\n"),
            ("secret.key", "k"),
            (".dockerignore", "*.key\n"),
        ],
    );
    let o = build(&state, &env, ctx.path(), &["-t", &tag]);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("secret.key") && err.contains(".dockerignore"),
        "{err}"
    );
    // The step itself is shown failed, as BuildKit's output does.
    assert!(err.contains("#2 [stage-0 2/2] COPY secret.key /"), "{err}");
    assert!(err.contains("#2 ERROR: "), "{err}");

    // A heredoc whose name is a path: refused, nothing written outside the build's scratch.
    let outside = ctx.path().join("escaped");
    let name = format!("../../../../../../..{}", outside.display());
    write(
        ctx.path(),
        &[(
            "Dockerfile",
            &format!("FROM busybox\nCOPY <<{name} /x\nhi\n{name}\n"),
        )],
    );
    let o = build(&state, &env, ctx.path(), &["-t", &tag]);
    assert!(!o.status.success(), "{}", out(&o));
    assert!(stderr(&o).contains("not a file name"), "{}", out(&o));
    assert!(
        !outside.exists(),
        "the heredoc was written to {}",
        outside.display()
    );

    // An unknown base image, and an unknown target.
    write(
        ctx.path(),
        &[("Dockerfile", "FROM no-such-image-here\nRUN true\n")],
    );
    let o = build(&state, &env, ctx.path(), &["-t", &tag]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no-such-image-here"), "{}", out(&o));
    assert!(stderr(&o).contains("#1 ERROR: "), "{}", out(&o));
    write(ctx.path(), &[("Dockerfile", "FROM busybox AS base\n")]);
    let o = build(&state, &env, ctx.path(), &["-t", &tag, "--target", "bsae"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("bsae"), "{}", out(&o));
    // Nothing of the failed builds is left in the store's scratch space.
    let tmp = state.root().join("images/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", tmp.display());
}

#[test]
fn run_steps_reach_out_over_their_own_network_and_leave_nothing() {
    let test = "run_steps_reach_out_over_their_own_network_and_leave_nothing";
    let Some((state, env, ctx)) = setup(test) else {
        return;
    };
    // A server on the host, reached through the build bridge's gateway (and its masquerade).
    let listener = TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nfrom host");
        }
    });
    write(
        ctx.path(),
        &[(
            "Dockerfile",
            &format!(
                "FROM busybox\n\
                 RUN wget -q -O /fetched http://$(ip route | awk '/default/{{print $3}}'):{port}/\n\
                 RUN --network=none ip -o link | wc -l > /links\n"
            ),
        )],
    );
    let tag = common::project_name("bt-net");
    // Spawned rather than run so its pid names its network: other tests build beside it.
    let child = state
        .cmd(&env)
        .args(["--progress", "plain", "image", "build", "-t", &tag])
        .arg(ctx.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run rcompose");
    let pid = child.id();
    let o = child.wait_with_output().expect("wait for rcompose");
    assert!(o.status.success(), "{}", out(&o));
    server.join().expect("server");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("compose.yaml"),
        format!("services:\n  app:\n    image: {tag}\n    network_mode: none\n"),
    )
    .expect("compose.yaml");
    let project = common::project_name("bt-net-run");
    let run = state
        .cmd(&env)
        .current_dir(dir.path())
        .args([
            "-p", &project, "run", "--rm", "-T", "app", "cat", "/fetched", "/links",
        ])
        .output()
        .expect("run");
    assert_eq!(stdout(&run), "from host1\n", "{}", out(&run));
    // The build's bridge and firewall rules went with it.
    assert!(
        build_table_gone(pid),
        "the firewall table of build {pid} is left"
    );
}

#[test]
fn compose_builds_what_is_missing_and_rebuilds_on_request() {
    let test = "compose_builds_what_is_missing_and_rebuilds_on_request";
    let Some(p) = Project::new(
        test,
        "bt-compose",
        "services:\n  web:\n    build:\n      context: ./app\n      args:\n        WHO: compose\n    \
         command: [\"sleep\", \"3600\"]\n    init: true\n",
    ) else {
        return;
    };
    write(
        &p.dir.path().join("app"),
        &[
            (
                "Dockerfile",
                "FROM busybox\nARG WHO\nCOPY msg /msg\nRUN echo \"built by $WHO\" >> /msg\n",
            ),
            ("msg", "one\n"),
        ],
    );
    // No image yet and --no-build: a clear error, nothing made.
    let o = p.rc(&["up", "-d", "--no-build"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--no-build"), "{}", out(&o));
    // --dry-run plans the build (and up's build of the missing image) and builds nothing.
    let o = p.ok(&["--dry-run", "build"]);
    assert!(
        stdout(&o).contains(&format!("build image {}-web (service web)", p.name)),
        "{}",
        out(&o)
    );
    let o = p.ok(&["--dry-run", "up", "-d"]);
    assert!(stdout(&o).contains("image missing"), "{}", out(&o));
    assert!(!stdout(&p.ok(&["images"])).contains(&format!("{}-web", p.name)));
    // up builds the missing image (named <project>-web) and runs it.
    p.ok(&["up", "-d"]);
    let msg = p.ok(&["exec", "-T", "web", "cat", "/msg"]);
    assert_eq!(stdout(&msg), "one\nbuilt by compose\n");
    let images = p.ok(&["images"]);
    assert!(
        stdout(&images).contains(&format!("{}-web", p.name)),
        "{}",
        out(&images)
    );
    // A changed context does not rebuild by itself; --build does, and recreates the service.
    write(&p.dir.path().join("app"), &[("msg", "two\n")]);
    p.ok(&["up", "-d"]);
    assert_eq!(
        stdout(&p.ok(&["exec", "-T", "web", "cat", "/msg"])),
        "one\nbuilt by compose\n"
    );
    p.ok(&["up", "-d", "--build"]);
    assert_eq!(
        stdout(&p.ok(&["exec", "-T", "web", "cat", "/msg"])),
        "two\nbuilt by compose\n"
    );
    // `build` with a --build-arg override, then run uses it.
    p.ok(&["build", "--build-arg", "WHO=cli"]);
    let run = p.ok(&["run", "--rm", "-T", "web", "cat", "/msg"]);
    assert_eq!(stdout(&run), "two\nbuilt by cli\n");
    p.ok(&["down"]);
    p.assert_nothing_left();
}

#[test]
fn the_classic_example_builds_and_serves() {
    let test = "the_classic_example_builds_and_serves";
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("compose-examples/build-web-redis");
    let compose = std::fs::read_to_string(example.join("compose.yaml")).expect("example");
    let Some(p) = Project::new(test, "bt-classic", &compose) else {
        return;
    };
    for f in ["Dockerfile", "app.py"] {
        std::fs::copy(example.join(f), p.dir.path().join(f)).expect("copy");
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let up = p
        .cmd(&["up", "--build", "-d", "--wait"])
        .env("WEB_PORT", port.to_string())
        .output()
        .expect("up");
    assert!(up.status.success(), "{}", out(&up));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("read");
    assert!(reply.contains("I have been seen 1 times"), "{reply}");
    p.ok(&["down"]);
    p.assert_nothing_left();
}

#[test]
fn built_images_push_to_a_registry_and_pull_back_the_same() {
    let test = "built_images_push_to_a_registry_and_pull_back_the_same";
    let Some((state, env, ctx)) = setup(test) else {
        return;
    };
    let var = |k: &str| testbed_var(&env, k);
    // The test bed's registry with authentication; a repository of this test's own.
    let registry = var("RCOMPOSE_TESTBED_AUTH_REGISTRY");
    let reference = format!(
        "{registry}/rcompose-tests/{}:v1",
        common::project_name("bt-push")
    );
    write(
        ctx.path(),
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY big /big\nRUN echo built > /built\n",
            ),
            // Over the single-request limit: this blob goes in chunks.
            ("big", &"0123456789abcdef".repeat(1 << 21)),
        ],
    );
    let o = build(&state, &env, ctx.path(), &["-t", &reference, "-q"]);
    assert!(o.status.success(), "{}", out(&o));
    let id = stdout(&o).trim().to_string();
    // Without credentials the registry refuses, and says so.
    let denied = state
        .cmd(&env)
        .args(["image", "push", &reference])
        .output()
        .expect("push");
    assert!(!denied.status.success(), "{}", out(&denied));
    let auth_file = var("RCOMPOSE_TESTBED_AUTH_FILE");
    let pushed = state
        .cmd(&env)
        .env("REGISTRY_AUTH_FILE", &auth_file)
        .args(["image", "push", &reference])
        .output()
        .expect("push");
    assert!(pushed.status.success(), "{}", out(&pushed));
    // Again: every blob is there already.
    let again = state
        .cmd(&env)
        .env("REGISTRY_AUTH_FILE", &auth_file)
        .args(["image", "push", &reference])
        .output()
        .expect("push");
    assert!(again.status.success(), "{}", out(&again));
    assert!(
        stderr(&again).contains("already exists") || stdout(&again).contains("already exists"),
        "{}",
        out(&again)
    );
    // A fresh store pulls it back as the same image.
    let other = State::new();
    let pulled = other
        .cmd(&env)
        .env("REGISTRY_AUTH_FILE", &auth_file)
        .args(["image", "pull", &reference])
        .output()
        .expect("pull");
    assert!(pulled.status.success(), "{}", out(&pulled));
    let inspect = other
        .cmd(&env)
        .args(["image", "inspect", &reference])
        .output()
        .expect("inspect");
    assert!(
        stdout(&inspect).contains(&id),
        "{id} not in {}",
        out(&inspect)
    );
}

#[test]
fn ssh_mounts_give_the_step_the_agent_socket() {
    let test = "ssh_mounts_give_the_step_the_agent_socket";
    let Some((state, env, ctx)) = setup(test) else {
        return;
    };
    let sock_dir = tempfile::tempdir().expect("temp dir");
    let sock = sock_dir.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    write(
        ctx.path(),
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && echo \"$SSH_AUTH_SOCK\" > /sock\n",
        )],
    );
    let tag = common::project_name("bt-ssh");
    // Not required by default (as BuildKit): without --ssh the step runs without a socket.
    let o = build(&state, &env, ctx.path(), &["-t", &tag]);
    assert!(!o.status.success(), "{}", out(&o));
    let spec = format!("default={}", sock.display());
    let o = build(&state, &env, ctx.path(), &["-t", &tag, "--ssh", &spec]);
    assert!(o.status.success(), "{}", out(&o));
    // A key file is not an agent: refused clearly.
    let key = sock_dir.path().join("id_ed25519");
    std::fs::write(&key, "not a socket").expect("key");
    let o = build(
        &state,
        &env,
        ctx.path(),
        &["-t", &tag, "--ssh", &format!("default={}", key.display())],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not an agent socket"), "{}", out(&o));
}

/// `app` builds FROM `base`'s image, which an additional context (`context`) names: `base`
/// is built first, whether `args` ask for both or for `app` alone, and `app` runs on it.
fn base_is_built_first(test: &str, prefix: &str, context: &str, base_extra: &str, args: &[&str]) {
    let Some(p) = Project::new(
        test,
        prefix,
        &format!(
            "services:\n  app:\n    build:\n      context: ./app\n      additional_contexts:\n        \
             base: {context}\n    command: [\"cat\", \"/base\", \"/app\"]\n  base:\n    build: ./base\n{base_extra}"
        ),
    ) else {
        return;
    };
    write(
        &p.dir.path().join("base"),
        &[("Dockerfile", "FROM busybox\nRUN echo base > /base\n")],
    );
    write(
        &p.dir.path().join("app"),
        &[("Dockerfile", "FROM base\nRUN echo app > /app\n")],
    );
    // --dry-run names both builds, and builds nothing.
    let dry: Vec<&str> = std::iter::once("--dry-run")
        .chain(args.iter().copied())
        .collect();
    let plan = out(&p.ok(&dry));
    for want in ["(service base)", "(service app)"] {
        assert!(plan.contains(want), "missing {want:?} in:\n{plan}");
    }
    assert!(!plan.contains("echo base"), "{plan}");
    let o = p.ok(args);
    let err = stderr(&o);
    let first_base = err.find("echo base").expect("base built");
    let first_app = err.find("echo app").expect("app built");
    assert!(first_base < first_app, "{err}");
    let run = p.ok(&["run", "--rm", "-T", "app"]);
    assert_eq!(stdout(&run), "base\napp\n");
    p.ok(&["down"]);
}

#[test]
fn a_service_builds_from_another_services_image() {
    // Both asked for (`base` only with its profile): ordered by the app's FROM.
    base_is_built_first(
        "a_service_builds_from_another_services_image",
        "bt-chain",
        "service:base",
        "    profiles: [tools]\n",
        &["--profile", "tools", "build"],
    );
}

#[test]
fn a_bake_target_context_builds_that_service_first() {
    // Only `app` asked for: `base`, which its `target:` context names, is built too.
    base_is_built_first(
        "a_bake_target_context_builds_that_service_first",
        "bt-target",
        "target:base",
        "",
        &["build", "app"],
    );
}

#[test]
fn ctrl_c_stops_a_build_and_leaves_the_cache_usable() {
    use std::io::BufRead;
    let test = "ctrl_c_stops_a_build_and_leaves_the_cache_usable";
    let Some((state, env, ctx)) = setup(test) else {
        return;
    };
    write(
        ctx.path(),
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo first > /first\nRUN echo started; sleep 600\n",
        )],
    );
    let tag = common::project_name("bt-int");
    let mut child = state
        .cmd(&env)
        .args(["--progress", "plain", "image", "build", "-t", &tag])
        .arg(ctx.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("build");
    let stderr_pipe = child.stderr.take().expect("stderr");
    let mut lines = std::io::BufReader::new(stderr_pipe).lines();
    // The long step is running when it has printed.
    for line in lines.by_ref() {
        let line = line.expect("line");
        if line.ends_with(" started") {
            break;
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("kill");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130), "{rest:?}");
    // Nothing of it is left: no step process or cgroup, no scratch directory, no network.
    let tmp = state.root().join("images/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", tmp.display());
    assert!(build_table_gone(child.id()), "the firewall table is left");
    // (Read from /proc: procps is not on every machine.)
    let still: Vec<String> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("echo started; sleep 600"))
        .collect();
    assert!(still.is_empty(), "still running: {still:?}");
    // The steps that finished are cache hits next time.
    write(
        ctx.path(),
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo first > /first\nRUN true\n",
        )],
    );
    let o = build(&state, &env, ctx.path(), &["-t", &tag]);
    assert!(o.status.success(), "{}", out(&o));
    let (cached, _) = steps(&stderr(&o));
    assert_eq!(
        cached,
        vec!["RUN echo first > /first".to_string()],
        "{}",
        out(&o)
    );
}

#[test]
fn add_downloads_urls_checks_checksums_and_extracts_them_only_when_asked() {
    let test = "add_downloads_urls_checks_checksums_and_extracts_them_only_when_asked";
    let Some((state, env, ctx)) = setup(test) else {
        return;
    };
    // A small HTTP server on the host's loopback (downloads are made by rcompose itself).
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let body: &'static [u8] = b"\x1f\x8b not really a gzip, never extracted\n";
    // A real archive too, for `--unpack=true`.
    let archive: &'static [u8] = {
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        ));
        let mut h = tar::Header::new_gnu();
        h.set_size(9);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "inside.txt", &b"unpacked\n"[..])
            .expect("tar");
        Vec::leak(tar.into_inner().expect("tar").finish().expect("gzip"))
    };
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { break };
            let mut buf = [0u8; 2048];
            let n = s.read(&mut buf).unwrap_or(0);
            let real = String::from_utf8_lossy(&buf[..n]).contains("/real.tar.gz");
            let data = if real { archive } else { body };
            let head = format!(
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
                data.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(data);
        }
    });
    let digest = {
        use sha2::Digest as _;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(body)))
    };
    let url = format!("http://127.0.0.1:{port}/dl/tool.tar.gz");
    let tag = common::project_name("bt-url");
    write(
        ctx.path(),
        &[(
            "Dockerfile",
            &format!(
                "FROM busybox\nADD --checksum=sha256:{} {url} /opt/\n",
                "0".repeat(64)
            ),
        )],
    );
    let o = build(&state, &env, ctx.path(), &["-t", &tag]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("checksum mismatch"), "{}", out(&o));
    write(
        ctx.path(),
        &[(
            "Dockerfile",
            &format!(
                "FROM busybox\nADD --checksum={digest} {url} /opt/\n\
                 RUN stat -c '%a %Y %s' /opt/tool.tar.gz > /stat\n\
                 ADD http://127.0.0.1:{port}/dl/real.tar.gz /packed/\n\
                 ADD --unpack=true http://127.0.0.1:{port}/dl/real.tar.gz /unpacked/\n\
                 RUN ls /packed >> /stat && cat /unpacked/inside.txt >> /stat\n"
            ),
        )],
    );
    let o = build(&state, &env, ctx.path(), &["-t", &tag]);
    assert!(o.status.success(), "{}", out(&o));
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("compose.yaml"),
        format!("services:\n  app:\n    image: {tag}\n    network_mode: none\n"),
    )
    .expect("compose.yaml");
    let run = state
        .cmd(&env)
        .current_dir(dir.path())
        .args([
            "-p",
            &common::project_name("bt-url-run"),
            "run",
            "--rm",
            "-T",
            "app",
            "cat",
            "/stat",
        ])
        .output()
        .expect("run");
    // Downloaded archives are copied as they are, extracted only with `--unpack=true`.
    assert_eq!(
        stdout(&run),
        format!("600 784111777 {}\nreal.tar.gz\nunpacked\n", body.len()),
        "{}",
        out(&run)
    );
}

#[test]
fn a_local_cache_export_makes_another_store_hit() {
    let test = "a_local_cache_export_makes_another_store_hit";
    let Some((state, env, ctx)) = setup(test) else {
        return;
    };
    write(
        ctx.path(),
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY a /a\nRUN cat /a > /b\nWORKDIR /w\n",
            ),
            ("a", "from the first machine\n"),
        ],
    );
    let cache = tempfile::tempdir().expect("cache dir");
    let to = format!("type=local,dest={}", cache.path().display());
    let from = format!("type=local,src={}", cache.path().display());
    let tag = common::project_name("bt-cachedir");
    let o = build(
        &state,
        &env,
        ctx.path(),
        &["-t", &tag, "--cache-to", &to, "-q"],
    );
    assert!(o.status.success(), "{}", out(&o));
    let id = stdout(&o).trim().to_string();
    // Another store (another CI runner): every step is a hit, the image the same.
    let other = State::new();
    let o = build(
        &other,
        &env,
        ctx.path(),
        &["-t", &tag, "--cache-from", &from],
    );
    assert!(o.status.success(), "{}", out(&o));
    let (cached, ran) = steps(&stderr(&o));
    assert_eq!((cached.len(), ran.len()), (3, 0), "{}", out(&o));
    let o = build(
        &other,
        &env,
        ctx.path(),
        &["-t", &tag, "--cache-from", &from, "-q"],
    );
    assert_eq!(stdout(&o).trim(), id);
    // Unknown cache types are refused; a registry cache is not used yet and says so.
    let o = build(
        &other,
        &env,
        ctx.path(),
        &["-t", &tag, "--cache-from", "type=gha"],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("gha"), "{}", out(&o));
}

#[test]
fn a_registry_cache_makes_another_store_hit() {
    let test = "a_registry_cache_makes_another_store_hit";
    let Some((state, env, ctx)) = setup(test) else {
        return;
    };
    let var = |k: &str| testbed_var(&env, k);
    // The test bed's registry with authentication; a repository of this test's own.
    let registry = var("RCOMPOSE_TESTBED_AUTH_REGISTRY");
    let auth_file = var("RCOMPOSE_TESTBED_AUTH_FILE");
    let cache = format!(
        "{registry}/rcompose-tests/{}:cache",
        common::project_name("bt-regcache")
    );
    write(
        ctx.path(),
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY a /a\nRUN cat /a > /b\nWORKDIR /w\n",
            ),
            ("a", "from the first runner\n"),
        ],
    );
    let tag = common::project_name("bt-regcache");
    let with_auth = |st: &State, args: &[&str]| {
        st.cmd(&env)
            .env("REGISTRY_AUTH_FILE", &auth_file)
            .args(["--progress", "plain", "image", "build"])
            .args(args)
            .arg(ctx.path())
            .output()
            .expect("run rcompose")
    };
    // A cache not pushed yet (the first CI run) is no error.
    let from = format!("type=registry,ref={cache}");
    let to = format!("type=registry,ref={cache}");
    let o = with_auth(
        &state,
        &["-t", &tag, "--cache-from", &from, "--cache-to", &to, "-q"],
    );
    assert!(o.status.success(), "{}", out(&o));
    let id = stdout(&o).trim().to_string();
    // Another store (another CI runner): every step is a hit from the registry, the image the
    // same; the cache as a bare reference works too.
    let other = State::new();
    let o = with_auth(&other, &["-t", &tag, "--cache-from", &cache]);
    assert!(o.status.success(), "{}", out(&o));
    let (cached, ran) = steps(&stderr(&o));
    assert_eq!((cached.len(), ran.len()), (3, 0), "{}", out(&o));
    let o = with_auth(&other, &["-t", &tag, "-q"]);
    assert_eq!(stdout(&o).trim(), id);
    // Something that is not an rcompose cache is refused with a warning, and the build runs.
    let third = State::new();
    let image = format!("{}/busybox:latest", var("RCOMPOSE_TESTBED_REGISTRY"));
    let o = with_auth(&third, &["-t", &tag, "--cache-from", &image]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        stderr(&o).contains("cannot import the build cache"),
        "{}",
        out(&o)
    );
}

#[test]
fn compose_build_keys_reach_the_build() {
    let test = "compose_build_keys_reach_the_build";
    let Some(p) = Project::new(
        test,
        "bt-keys",
        "secrets:\n  tok:\n    file: ./tok.txt\n\
         services:\n  app:\n    image: keys-app:one\n    build:\n      context: ./ctx\n      \
         dockerfile_inline: |\n        FROM busybox AS unused\n        RUN exit 1\n        \
         FROM busybox AS wanted\n        COPY --from=extra e.txt /e.txt\n        \
         RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /toklen\n        \
         RUN grep -c gateway.test /etc/hosts > /hosts; ulimit -n > /nofile; \
         grep CapEff /proc/self/status | cut -f2 > /capeff; ip -o link | wc -l > /links; \
         df -k /dev/shm | tail -1 | awk '{print $2}' > /shm\n      \
         target: wanted\n      labels:\n        org.example.kind: test\n      tags: [\"keys-app:two\"]\n      \
         extra_hosts: [\"gateway.test=10.1.2.3\"]\n      network: none\n      shm_size: 8m\n      \
         ulimits:\n        nofile: {soft: 1234, hard: 1234}\n      privileged: true\n      \
         secrets: [tok]\n      additional_contexts:\n        extra: ./more\n    \
         command: [\"sh\", \"-c\", \"cat /e.txt /toklen /hosts /nofile /capeff /links /shm\"]\n",
    ) else {
        return;
    };
    write(
        p.dir.path(),
        &[
            ("tok.txt", "s3cret"),
            ("more/e.txt", "extra\n"),
            ("ctx/.keep", ""),
        ],
    );
    p.ok(&["build"]);
    let run = p.ok(&["run", "--rm", "-T", "app"]);
    // The other context, the secret (6 bytes), extra_hosts, ulimits, privileged's full
    // capability set, network none (loopback only), shm_size; the stage that fails is skipped.
    let lines: Vec<String> = stdout(&run).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 7, "{}", out(&run));
    assert_eq!(&lines[..4], ["extra", "6", "1", "1234"], "{}", out(&run));
    let caps = u64::from_str_radix(&lines[4], 16).expect("CapEff");
    assert!(caps & (1 << 21) != 0, "no CAP_SYS_ADMIN: {:x}", caps);
    assert_eq!(&lines[5..], ["1", "8192"], "{}", out(&run));
    let inspect = p.ok(&["image", "inspect", "keys-app:two"]);
    let text = stdout(&inspect);
    assert!(text.contains("\"org.example.kind\": \"test\""), "{text}");
    assert!(text.contains("keys-app:one"), "{text}");
    p.ok(&["down"]);
}

/// A git server on loopback (`git daemon`) serving `root`'s repositories; killed on drop.
struct GitDaemon {
    child: std::process::Child,
    port: u16,
}

impl GitDaemon {
    fn start(root: &Path) -> GitDaemon {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut child = std::process::Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", root.display()),
                "--export-all",
                "--informative-errors",
            ])
            .arg(root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("git daemon");
        // Ready when it accepts connections (bounded).
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return GitDaemon { child, port };
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("git daemon did not listen on {port}");
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git(dir: &Path, args: &[&str]) {
    let o = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .expect("git");
    assert!(o.status.success(), "git {args:?}: {}", out(&o));
}

#[test]
fn git_contexts_and_add_from_git() {
    let test = "git_contexts_and_add_from_git";
    let repos = tempfile::tempdir().expect("repos");
    let repo = repos.path().join("app");
    let daemon = GitDaemon::start(repos.path());
    let url = format!("git://127.0.0.1:{}/app", daemon.port);
    write(
        &repo,
        &[
            (
                "sub/Dockerfile",
                &format!(
                    "FROM busybox\nCOPY hello /hello\nADD {url}#v1:lib /lib\n\
                     ADD --keep-git-dir=true {url}#v1 /repo\n"
                ),
            ),
            ("sub/hello", "from the repository\n"),
            ("lib/x", "first\n"),
        ],
    );
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "one"]);
    git(&repo, &["tag", "v1"]);
    // A later commit on main: the tag still names the first.
    std::fs::write(repo.join("lib/x"), "second\n").expect("edit");
    git(&repo, &["commit", "-q", "-am", "two"]);
    let Some(p) = Project::new(
        test,
        "bt-git",
        &format!(
            "services:\n  app:\n    image: bt-git-app\n    build:\n      context: {url}#main:sub\n"
        ),
    ) else {
        return;
    };
    let o = p.ok(&["build"]);
    assert!(stderr(&o).contains("fetched"), "{}", out(&o));
    let run = p.ok(&["run", "--rm", "-T", "app", "cat", "/hello", "/lib/x"]);
    assert_eq!(stdout(&run), "from the repository\nfirst\n");
    // `.git` only where `--keep-git-dir=true` asked for it.
    let run = p.ok(&[
        "run",
        "--rm",
        "-T",
        "app",
        "sh",
        "-c",
        "test -f /repo/.git/HEAD && test ! -e /lib/.git && cat /repo/lib/x",
    ]);
    assert_eq!(stdout(&run), "first\n", "{}", out(&run));
    // Nothing of the checkouts is left.
    let tmp = p.state.root().join("images/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", tmp.display());
    // A subdirectory that leaves the repository, and a local path as a git transport, are
    // refused.
    let bad = Project::new(
        test,
        "bt-git-bad",
        &format!("services:\n  app:\n    image: bt-git-bad\n    build:\n      context: {url}#main:../..\n"),
    )
    .expect("project");
    let o = bad.rc(&["build"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("subdirectory"), "{}", out(&o));
    p.ok(&["down"]);
}

/// Serves `files` (path → body) over HTTP/1.0 on loopback; 404 for any other path. Returns
/// the base URL.
fn serve_http(files: Vec<(&'static str, Vec<u8>)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { break };
            let mut buf = [0u8; 2048];
            let n = s.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            let path = request.split_whitespace().nth(1).unwrap_or_default();
            let reply = match files.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => {
                    let mut r =
                        format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                            .into_bytes();
                    r.extend_from_slice(body);
                    r
                }
                None => b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            };
            let _ = s.write_all(&reply);
        }
    });
    format!("http://127.0.0.1:{port}")
}

#[test]
fn a_url_is_a_context_a_tarball_or_a_dockerfile() {
    let test = "a_url_is_a_context_a_tarball_or_a_dockerfile";
    let Some((state, env, _ctx)) = setup(test) else {
        return;
    };
    let build_url = |tag: &str, url: String| {
        state
            .cmd(&env)
            .args(["--progress", "plain", "image", "build", "-t", tag, &url])
            .output()
            .expect("run rcompose")
    };
    let tarball = {
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        ));
        for (name, body) in [
            (
                "Dockerfile",
                &b"FROM busybox\nCOPY app/greeting /greeting\n"[..],
            ),
            ("app/greeting", &b"from a tarball\n"[..]),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, name, body).expect("tar");
        }
        tar.into_inner().expect("tar").finish().expect("gzip")
    };
    let base = serve_http(vec![
        ("/ctx.tar.gz", tarball),
        (
            "/Dockerfile",
            b"FROM busybox\nRUN echo from a dockerfile > /greeting\n".to_vec(),
        ),
    ]);
    let run = |tag: &str| {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("compose.yaml"),
            format!("services:\n  app:\n    image: {tag}\n    network_mode: none\n"),
        )
        .expect("compose.yaml");
        state
            .cmd(&env)
            .current_dir(dir.path())
            .args(["-p", &common::project_name("bt-urlctx-run")])
            .args(["run", "--rm", "-T", "app", "cat", "/greeting"])
            .output()
            .expect("run")
    };
    let tag = common::project_name("bt-urlctx");
    let o = build_url(&tag, format!("{base}/ctx.tar.gz"));
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(stdout(&run(&tag)), "from a tarball\n");
    // A URL to a text file: the Dockerfile of an empty context.
    let tag2 = common::project_name("bt-urlctx-df");
    let o = build_url(&tag2, format!("{base}/Dockerfile"));
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(stdout(&run(&tag2)), "from a dockerfile\n");
    // A URL that is not there: a clear error naming it.
    let o = build_url(&tag2, format!("{base}/missing.tar"));
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("cannot fetch the build context")
            && e.contains("missing.tar")
            && e.contains("404"),
        "{e}"
    );
}

#[test]
fn library_warnings_reach_stderr_and_the_json_stream() {
    let test = "library_warnings_reach_stderr_and_the_json_stream";
    let Some((state, env, ctx)) = setup(test) else {
        return;
    };
    write(
        ctx.path(),
        &[
            ("a.txt", "a\n"),
            (
                "Dockerfile",
                "FROM busybox\nCOPY --chown=nosuchuser a.txt /a.txt\n",
            ),
        ],
    );
    let tag = common::project_name("bt-warn");
    let said = "--chown=nosuchuser: no user \"nosuchuser\" in the image's /etc/passwd; using 0";
    // Plain progress: a WARN line, as the CLI prints its own.
    let o = build(&state, &env, ctx.path(), &["-t", &tag, "--no-cache"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(stderr(&o).contains(&format!("WARN {said}")), "{}", out(&o));
    // RCOMPOSE_LOG=off: none.
    let o = state
        .cmd(&env)
        .env("RCOMPOSE_LOG", "off")
        .args([
            "--progress",
            "plain",
            "image",
            "build",
            "--no-cache",
            "-t",
            &tag,
        ])
        .arg(ctx.path())
        .output()
        .expect("run rcompose");
    assert!(o.status.success(), "{}", out(&o));
    assert!(!stderr(&o).contains("WARN"), "{}", out(&o));
    // JSON progress: a note of the stream, which stays one JSON object per line.
    let o = state
        .cmd(&env)
        .args([
            "--progress",
            "json",
            "image",
            "build",
            "--no-cache",
            "-t",
            &tag,
        ])
        .arg(ctx.path())
        .output()
        .expect("run rcompose");
    assert!(o.status.success(), "{}", out(&o));
    let err = stderr(&o);
    let notes: Vec<String> = err
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{err}"))
        })
        .filter_map(|e| e["note"].as_str().map(str::to_string))
        .collect();
    assert!(notes.iter().any(|n| n.contains(said)), "{err}");
}
