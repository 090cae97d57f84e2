//! Image builds: rcompose against `docker build` with BuildKit (issue 16, "Parity with docker
//! build"). Every case in tests/build-cases/ is built by Debian's docker.io engine
//! (`DOCKER_BUILDKIT=1 /usr/bin/docker build`, a private dockerd in a network namespace of this
//! test, base images `docker load`ed from the test bed's archives) and by `rcompose image
//! build`; both images are saved as docker archives and flattened (flatten.rs): the image
//! config fields, the history and the file tree after all layers (mtimes aside). Any
//! difference not in KNOWN_DIFFERENCES fails the test.
//!
//! Docker's flattened results are cached under the test bed's cache directory, keyed by a hash
//! of the prepared case, the docker version and the base images, so reruns start no dockerd.
//!
//! - `RCOMPOSE_PARITY_CASE=<name>[,<name>...]` runs those cases only (name or its number).
//! - `RCOMPOSE_PARITY_DOCKER_ONLY=1` runs only the docker side and checks the flattener and
//!   each case's expectations on docker's images.
//! - `RCOMPOSE_PARITY_REFRESH=1` rebuilds docker's results instead of using the cache.
//! - `RCOMPOSE_PARITY_RCOMPOSE=<path>` runs that rcompose binary instead of this build's.
//! - `RCOMPOSE_PARITY_SELF_CHECK=1` compares docker's (cached) images with docker's own again,
//!   built afresh in a new engine instead of rcompose's: the harness and docker's
//!   reproducibility checked (by-content cases: docker's equivalent built twice).
//!
//! A case (tests/build-cases/NN-name/): `context/` (the build context, Dockerfile included),
//! `case.toml` (see `Case`), secrets and other files beside them.

mod common;
#[path = "build_parity/flatten.rs"]
mod flatten;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use common::dockerd::{Dockerd, Netns, Options};
use common::{out, skip, stdout};
use flatten::{Compare, Difference, Flat};

/// Bump when the flattener or the way docker's side builds changes: cached results go stale.
const HARNESS_VERSION: &str = "2";

/// Builds run at once by each side (2 cores: more only waits).
const DOCKER_JOBS: usize = 3;
const RCOMPOSE_JOBS: usize = 2;

/// Differences accepted between docker's image and rcompose's, each with its reason (these go
/// into docs/compatibility.md). `case`: a case name or "*"; `key`: a difference's key
/// ("config.User", "history[3]", "/etc/x"), or a prefix of it ending in '*'.
struct Known {
    case: &'static str,
    key: &'static str,
    /// Accepts this pair only (docker's side, rcompose's side), so that a rule never hides
    /// another difference at the same key.
    accepts: fn(&str, &str) -> bool,
    reason: &'static str,
}

const KNOWN_DIFFERENCES: &[Known] = &[
    Known {
        case: "*",
        key: "history[*",
        accepts: same_history_as_current_buildkit,
        reason: "history text as current BuildKit writes it (ARG with its value, COPY/ADD with \
                 --chown/--chmod, RUN's build args once each, EXPOSE as a list, HEALTHCHECK as \
                 the config struct); docker 20.10's BuildKit v0.8 wrote older forms",
    },
    Known {
        case: "23-copy-chmod",
        key: "/s*",
        accepts: |d, r| d.replace(" 0775 ", " 2775 ").replace(" 0755 ", " 4755 ") == r,
        reason: "COPY --chmod keeps setuid/setgid bits as current BuildKit; docker 20.10's \
                 BuildKit dropped them",
    },
    Known {
        case: "23-copy-chmod",
        key: "/dir",
        accepts: |d, r| d == "dir 0755 0:0" && r == "dir 0750 0:0",
        reason: "COPY --chmod also gives its mode to the destination directories it creates, \
                 as current BuildKit (fsutil's MkdirAll with the copy's mode); docker 20.10 made \
                 them 0755",
    },
    Known {
        case: "31-hardlinks-context",
        key: "/two/*",
        accepts: |d, r| {
            r.starts_with(d.split(" sha256:").next().unwrap_or(d)) && r.contains("hardlink-of")
        },
        reason: "hard links between files of one COPY stay hard links, as current BuildKit; \
                 docker 20.10 copied them as separate files",
    },
    Known {
        case: "*",
        key: "/*",
        accepts: |d, r| d == "dir 0755 0:0" && r == "(absent)",
        reason: "the mount points a RUN --mount needed are removed after the step, as current \
                 BuildKit does; docker 20.10 left them in the layer as empty directories",
    },
];

/// Docker 20.10's history text and current BuildKit's say the same thing.
fn same_history_as_current_buildkit(d: &str, r: &str) -> bool {
    fn normal(s: &str) -> String {
        let empty = s.ends_with("(empty layer)");
        let text = s.trim_end_matches(" (empty layer)").trim_matches('"');
        let mut words: Vec<String> = Vec::new();
        let mut seen_args = std::collections::BTreeSet::new();
        let mut it = text.split(' ').peekable();
        let first = it.next().unwrap_or_default().to_string();
        if first.starts_with("HEALTHCHECK") {
            return format!("HEALTHCHECK {empty}");
        }
        words.push(first.clone());
        for w in it {
            if w.starts_with("--chown=") || w.starts_with("--chmod=") {
                continue;
            }
            if first == "ARG" {
                words.push(w.split('=').next().unwrap_or(w).to_string());
                continue;
            }
            if first == "RUN" && w.starts_with('|') {
                continue;
            }
            if first == "RUN" && w.contains('=') && !w.starts_with('/') && words.len() == 1 {
                // A build arg: kept once.
                if seen_args.insert(w.to_string()) {
                    continue;
                }
                continue;
            }
            if first == "EXPOSE" {
                let w = w
                    .trim_start_matches("map[")
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .trim_end_matches(":{}");
                words.push(w.to_string());
                continue;
            }
            words.push(w.to_string());
        }
        if first == "EXPOSE" {
            words[1..].sort();
        }
        format!(
            "{} {empty} {}",
            words.join(" "),
            seen_args.into_iter().collect::<Vec<_>>().join(" ")
        )
    }
    normal(d) == normal(r)
}

/// The test bed images docker needs: (name, tag, archive stem under tars/).
const BASE_IMAGES: &[(&str, &str, &str)] = &[
    ("busybox", "latest", "busybox-latest"),
    ("alpine", "latest", "alpine-latest"),
    ("alpine", "3", "alpine-3"),
    ("debian", "bookworm", "debian-bookworm"),
    ("python", "3", "python-3"),
];

/// case.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// What the case checks, one line.
    about: String,
    /// `-f`, relative to the context.
    #[serde(default)]
    dockerfile: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    build_args: BTreeMap<String, String>,
    /// Secret id → file, relative to the case directory (outside the context). Each file's
    /// content must appear in no layer and not in the config.
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    /// A shell script run in the prepared context (hard links, special modes, owners, empty
    /// directories, archives: what git does not keep). `$CASE` is the case directory.
    #[serde(default)]
    setup: Option<String>,
    /// The feature docker's BuildKit lacks; docker then builds `docker_dockerfile` (relative to
    /// the case directory), an equivalent without it, and the images are compared by content:
    /// the file tree and the config, not the history.
    #[serde(default)]
    docker_lacks: Option<String>,
    #[serde(default)]
    docker_dockerfile: Option<String>,
    /// Config fields left out of a by-content comparison (what the equivalent cannot express);
    /// `expect_config` then says what rcompose must write.
    #[serde(default)]
    ignore_config: Vec<String>,
    /// "Field" or "Field.Key" → JSON value, checked on both images (on rcompose's only for a
    /// field in ignore_config).
    #[serde(default)]
    expect_config: BTreeMap<String, toml::Value>,
    /// Checks on the flattened tree of both images: they make sure a case tests what it says
    /// (and the flattener reads docker's images right).
    #[serde(default)]
    expect: Vec<Expect>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    path: String,
    #[serde(default)]
    absent: bool,
    #[serde(default)]
    kind: Option<String>,
    /// Octal, e.g. "4755".
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    uid: Option<u64>,
    #[serde(default)]
    gid: Option<u64>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    link: Option<String>,
    /// A hard link of this path.
    #[serde(default)]
    hardlink_of: Option<String>,
}

/// A case ready to build.
struct Prepared {
    name: String,
    dir: PathBuf,
    case: Case,
    /// The prepared context.
    ctx: PathBuf,
    /// Cache key of docker's result.
    key: String,
}

impl Prepared {
    fn by_content(&self) -> bool {
        self.case.docker_dockerfile.is_some()
    }

    fn needles(&self) -> Vec<String> {
        self.case
            .secrets
            .values()
            .filter_map(|f| std::fs::read_to_string(self.dir.join(f)).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Build arguments shared by both builders (after `build`), the context last.
    fn build_args(&self, docker: bool) -> Vec<String> {
        let mut a = Vec::new();
        let c = &self.case;
        match (&c.docker_dockerfile, &c.dockerfile) {
            (Some(f), _) if docker => {
                a.push("-f".into());
                a.push(self.dir.join(f).display().to_string());
            }
            (_, Some(f)) => {
                a.push("-f".into());
                a.push(self.ctx.join(f).display().to_string());
            }
            _ => {}
        }
        if let Some(t) = &c.target {
            a.push("--target".into());
            a.push(t.clone());
        }
        for (k, v) in &c.build_args {
            a.push("--build-arg".into());
            a.push(format!("{k}={v}"));
        }
        for (id, f) in &c.secrets {
            a.push("--secret".into());
            a.push(format!("id={id},src={}", self.dir.join(f).display()));
        }
        a.push(self.ctx.display().to_string());
        a
    }

    fn tag(&self) -> String {
        format!("parity-{}:latest", self.name)
    }
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/build-cases")
}

/// Every case (or those RCOMPOSE_PARITY_CASE names), in name order.
fn load_cases() -> Vec<(String, PathBuf, Case)> {
    let filter: Option<Vec<String>> = std::env::var("RCOMPOSE_PARITY_CASE")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("tests/build-cases")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("case.toml").is_file())
        .collect();
    dirs.sort();
    let cases: Vec<_> = dirs
        .into_iter()
        .filter_map(|d| {
            let name = d.file_name()?.to_str()?.to_string();
            if let Some(f) = &filter {
                let number = name.split('-').next().unwrap_or("");
                if !f.iter().any(|x| *x == name || x == number) {
                    return None;
                }
            }
            let text = std::fs::read_to_string(d.join("case.toml")).expect("case.toml");
            let case: Case =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{}/case.toml: {e}", d.display()));
            assert!(
                case.docker_lacks.is_some() == case.docker_dockerfile.is_some(),
                "{name}: docker_lacks and docker_dockerfile go together"
            );
            Some((name, d, case))
        })
        .collect();
    assert!(
        !cases.is_empty(),
        "no case matches RCOMPOSE_PARITY_CASE={:?}",
        filter
    );
    cases
}

/// Copies a case's context with normalised owners and modes (a git checkout's depend on the
/// umask), then runs its setup script.
fn prepare(name: &str, dir: &Path, case: Case, work: &Path, key_base: &str) -> Prepared {
    let ctx = work.join(name);
    copy_tree(&dir.join("context"), &ctx);
    if let Some(script) = &case.setup {
        let o = Command::new("sh")
            .args(["-euc", script])
            .current_dir(&ctx)
            .env("CASE", dir)
            .output()
            .expect("run setup");
        assert!(o.status.success(), "{name}: setup failed:\n{}", out(&o));
    }
    let mut h = Sha256::new();
    h.update(format!("harness {HARNESS_VERSION}\n{key_base}\n"));
    h.update(std::fs::read(dir.join("case.toml")).expect("case.toml"));
    for f in case.docker_dockerfile.iter().chain(case.secrets.values()) {
        h.update(format!("\nfile {f}\n"));
        h.update(std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{name}: {f}: {e}")));
    }
    hash_tree(&ctx, &ctx, &mut h);
    Prepared {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        case,
        ctx,
        key: hex::encode(h.finalize()),
    }
}

/// What every cached result depends on besides its case: dockerd's version (BuildKit is part
/// of it) and the test bed's base images.
fn key_base(testbed: &Path) -> String {
    let version = Command::new("dockerd")
        .arg("--version")
        .output()
        .map(|o| stdout(&o))
        .unwrap_or_default();
    let mut digests: Vec<String> = BASE_IMAGES
        .iter()
        .map(|(_, _, stem)| {
            let f = testbed.join(format!("tars/{stem}.digest"));
            format!(
                "{stem} {}",
                std::fs::read_to_string(f).unwrap_or_default().trim()
            )
        })
        .collect();
    digests.sort();
    format!("{}\n{}", version.trim(), digests.join("\n"))
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .unwrap_or_else(|e| panic!("{}: {e}", from.display()))
        .map(|e| e.expect("entry"))
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let meta = std::fs::symlink_metadata(&src).expect("stat");
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&src).expect("readlink");
            std::os::unix::fs::symlink(target, &dst).expect("symlink");
            std::os::unix::fs::lchown(&dst, Some(0), Some(0)).expect("lchown");
        } else if meta.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy");
            let mode = if meta.mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        std::os::unix::fs::lchown(&dst, Some(0), Some(0)).expect("lchown");
    }
}

/// Adds every path of the tree (type, mode, owner, content or target; not mtimes) to `h`.
fn hash_tree(root: &Path, dir: &Path, h: &mut Sha256) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        let m = std::fs::symlink_metadata(&p).expect("stat");
        let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
        h.update(format!(
            "\n{rel} {:o} {}:{} {} ",
            m.mode(),
            m.uid(),
            m.gid(),
            m.nlink()
        ));
        if m.file_type().is_symlink() {
            h.update(
                std::fs::read_link(&p)
                    .expect("readlink")
                    .as_os_str()
                    .as_encoded_bytes(),
            );
        } else if m.is_dir() {
            hash_tree(root, &p, h);
        } else if m.is_file() {
            h.update(std::fs::read(&p).expect("read"));
        }
    }
}

/// Runs `f` on every item, `jobs` at a time; results in the items' order.
fn par_map<T: Sync, R: Send>(items: &[T], jobs: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs.min(items.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                results.lock().expect("results")[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .expect("results")
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

/// The test bed's cache directory (`testbed.sh env` prints it even when nothing is served).
fn testbed_dir() -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/testbed.sh");
    let o = Command::new(script).arg("env").output().ok()?;
    stdout(&o)
        .lines()
        .find_map(|l| l.strip_prefix("export RCOMPOSE_TESTBED_DIR="))
        .map(PathBuf::from)
}

#[derive(Serialize, Deserialize)]
struct Cached {
    case: String,
    docker: String,
    flat: Flat,
}

/// Docker's side: each case's flattened image, from the cache or built now.
/// `use_cache` false: everything is built and nothing is stored (the self-check).
fn docker_side(
    cases: &[Prepared],
    testbed: &Path,
    tmp: &Path,
    use_cache: bool,
) -> Result<Vec<Flat>, String> {
    let cache = testbed.join("parity-cache");
    std::fs::create_dir_all(&cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let refresh = !use_cache || std::env::var("RCOMPOSE_PARITY_REFRESH").is_ok_and(|v| v == "1");
    let cached: Vec<Option<Flat>> = cases
        .iter()
        .map(|c| {
            if refresh {
                return None;
            }
            let text = std::fs::read(cache.join(format!("{}.json", c.key))).ok()?;
            serde_json::from_slice::<Cached>(&text).ok().map(|c| c.flat)
        })
        .collect();
    let todo: Vec<&Prepared> = cases
        .iter()
        .zip(&cached)
        .filter(|(_, f)| f.is_none())
        .map(|(c, _)| c)
        .collect();
    eprintln!(
        "docker: {} of {} cases cached in {}",
        cases.len() - todo.len(),
        cases.len(),
        cache.display()
    );
    let mut built: BTreeMap<String, Flat> = BTreeMap::new();
    if !todo.is_empty() {
        let t0 = Instant::now();
        let ns = Netns::new(format!("rc-parity-{}", std::process::id()));
        let engine = Dockerd::start(
            &ns,
            Options {
                iptables: false,
                ..Options::default()
            },
        );
        let version = stdout(&engine.docker_ok(&["version", "--format", "{{.Server.Version}}"]));
        eprintln!(
            "docker: dockerd {} up in {:?}",
            version.trim(),
            t0.elapsed()
        );
        let t1 = Instant::now();
        for (name, tag, stem) in BASE_IMAGES {
            let used = todo.iter().any(|c| {
                let files = [
                    c.ctx
                        .join(c.case.dockerfile.as_deref().unwrap_or("Dockerfile")),
                    c.dir
                        .join(c.case.docker_dockerfile.as_deref().unwrap_or("-none-")),
                ];
                files.iter().any(|f| {
                    std::fs::read_to_string(f).is_ok_and(|t| {
                        t.contains(&format!("{name}:{tag}"))
                            || (*tag == "latest" && t.contains(name))
                    })
                })
            });
            if used {
                let tar = testbed.join(format!("tars/{stem}.docker.tar"));
                if !tar.is_file() {
                    return Err(format!(
                        "{} is missing (tests/testbed/testbed.sh tars)",
                        tar.display()
                    ));
                }
                engine.docker_ok(&["load", "-q", "-i", &tar.to_string_lossy()]);
            }
        }
        eprintln!("docker: base images loaded in {:?}", t1.elapsed());
        let t2 = Instant::now();
        let results = par_map(&todo, DOCKER_JOBS, |c| -> Result<Flat, String> {
            let tb = Instant::now();
            let o = engine
                .cmd()
                .env("DOCKER_BUILDKIT", "1")
                .args(["build", "--progress=plain", "-t", &c.tag()])
                .args(c.build_args(true))
                .output()
                .map_err(|e| format!("docker build: {e}"))?;
            if !o.status.success() {
                return Err(format!("{}: docker build failed:\n{}", c.name, out(&o)));
            }
            let archive = tmp.join(format!("{}.docker.tar", c.name));
            engine.docker_ok(&["save", "-o", &archive.to_string_lossy(), &c.tag()]);
            let flat = flatten::flatten_archive(&archive, &c.needles())
                .map_err(|e| format!("{}: docker's image: {e}", c.name))?;
            let _ = std::fs::remove_file(&archive);
            eprintln!("docker: built {} in {:?}", c.name, tb.elapsed());
            Ok(flat)
        });
        eprintln!(
            "docker: {} builds in {:?} ({DOCKER_JOBS} at a time)",
            todo.len(),
            t2.elapsed()
        );
        // The namespace has no route out: had BuildKit tried to resolve a base image on
        // docker.io instead of using the loaded one, the build would have failed; say so plainly.
        let logs = std::fs::read_to_string(engine.dir.path().join("dockerd.err"))
            .unwrap_or_default()
            + &std::fs::read_to_string(engine.dir.path().join("dockerd.log")).unwrap_or_default();
        let mut errors = Vec::new();
        if logs.contains("registry-1.docker.io") || logs.contains("index.docker.io") {
            errors.push(
                "dockerd tried to reach docker.io (a base image not loaded from the test bed?)"
                    .to_string(),
            );
        }
        for (c, r) in todo.iter().zip(results) {
            match r {
                Ok(flat) if !use_cache => {
                    built.insert(c.name.clone(), flat);
                }
                Ok(flat) => {
                    let entry = Cached {
                        case: c.name.clone(),
                        docker: version.trim().to_string(),
                        flat: flat.clone(),
                    };
                    let path = cache.join(format!("{}.json", c.key));
                    let tmp_path = cache.join(format!(".{}.{}.tmp", c.key, std::process::id()));
                    let json = serde_json::to_vec(&entry).map_err(|e| e.to_string())?;
                    std::fs::write(&tmp_path, json)
                        .and_then(|()| std::fs::rename(&tmp_path, &path))
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    built.insert(c.name.clone(), flat);
                }
                Err(e) => errors.push(e),
            }
        }
        drop(engine);
        drop(ns);
        if !errors.is_empty() {
            return Err(errors.join("\n\n"));
        }
    }
    Ok(cases
        .iter()
        .zip(cached)
        .map(|(c, f)| f.unwrap_or_else(|| built.remove(&c.name).expect("built")))
        .collect())
}

/// rcompose with the test's state: the binary of this build, or `$RCOMPOSE_PARITY_RCOMPOSE`
/// (a release build, say) with the same arguments and environment.
fn rcompose_cmd(state: &common::State, env: &[(String, String)]) -> Command {
    let cmd = state.cmd(env);
    let Some(bin) = std::env::var_os("RCOMPOSE_PARITY_RCOMPOSE") else {
        return cmd;
    };
    let mut other = Command::new(bin);
    other.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => other.env(k, v),
            None => other.env_remove(k),
        };
    }
    other
}

/// rcompose's side: each case built with `rcompose image build` and saved.
fn rcompose_side(
    cases: &[Prepared],
    env: &[(String, String)],
    tmp: &Path,
) -> Vec<Result<Flat, String>> {
    let state = common::State::new();
    let t0 = Instant::now();
    let results = par_map(cases, RCOMPOSE_JOBS, |c| {
        let tb = Instant::now();
        let o = rcompose_cmd(&state, env)
            .args(["image", "build", "-t", &c.tag()])
            .args(c.build_args(false))
            .output()
            .map_err(|e| format!("rcompose image build: {e}"))?;
        if !o.status.success() {
            return Err(format!("rcompose image build failed:\n{}", out(&o)));
        }
        let archive = tmp.join(format!("{}.rcompose.tar", c.name));
        let o = rcompose_cmd(&state, env)
            .args(["image", "save", "-o", &archive.to_string_lossy(), &c.tag()])
            .output()
            .map_err(|e| format!("rcompose image save: {e}"))?;
        if !o.status.success() {
            return Err(format!("rcompose image save failed:\n{}", out(&o)));
        }
        let flat = flatten::flatten_archive(&archive, &c.needles())
            .map_err(|e| format!("rcompose's image: {e}"))?;
        let _ = std::fs::remove_file(&archive);
        eprintln!("rcompose: built {} in {:?}", c.name, tb.elapsed());
        Ok(flat)
    });
    eprintln!(
        "rcompose: {} builds in {:?} ({RCOMPOSE_JOBS} at a time)",
        cases.len(),
        t0.elapsed()
    );
    results
}

/// A config value by "Field" or "Field.Key".
fn config_value<'a>(flat: &'a Flat, path: &str) -> Option<&'a serde_json::Value> {
    let mut parts = path.split('.');
    let mut v = flat.config.get(parts.next()?)?;
    for p in parts {
        v = v.get(p)?;
    }
    Some(v)
}

/// The case's own checks on one image; messages for those that fail.
fn check_expectations(c: &Prepared, flat: &Flat, docker: bool) -> Vec<String> {
    let mut bad = Vec::new();
    if flat.tree.is_empty() {
        bad.push("the flattened tree is empty".to_string());
    }
    for n in &flat.found {
        bad.push(format!("the secret {n:?} is in a layer or the config"));
    }
    for e in &c.case.expect {
        let node = flat.tree.get(&e.path);
        if e.absent {
            if let Some(n) = node {
                bad.push(format!("{} should be absent, is {n}", e.path));
            }
            continue;
        }
        let Some(n) = node else {
            bad.push(format!("{} is missing", e.path));
            continue;
        };
        let mut wrong = Vec::new();
        if e.kind.as_ref().is_some_and(|k| *k != n.kind) {
            wrong.push("kind");
        }
        if let Some(m) = &e.mode {
            let m = u32::from_str_radix(m, 8).unwrap_or_else(|_| panic!("{}: mode {m}", c.name));
            if m != n.mode {
                wrong.push("mode");
            }
        }
        if e.uid.is_some_and(|u| u != n.uid) {
            wrong.push("uid");
        }
        if e.gid.is_some_and(|g| g != n.gid) {
            wrong.push("gid");
        }
        if let Some(text) = &e.content {
            let want = hex::encode(Sha256::digest(text.as_bytes()));
            if n.sha256.as_deref() != Some(want.as_str()) {
                wrong.push("content");
            }
        }
        if e.link.as_ref().is_some_and(|l| n.link.as_ref() != Some(l)) {
            wrong.push("link target");
        }
        if let Some(other) = &e.hardlink_of {
            let same = flat.tree.get(other).is_some_and(|o| {
                o.linked.is_some() && o.linked == n.linked && o.sha256 == n.sha256
            });
            if !same {
                wrong.push("hard link");
            }
        }
        if !wrong.is_empty() {
            bad.push(format!("{}: wrong {}: {n}", e.path, wrong.join(", ")));
        }
    }
    for (field, want) in &c.case.expect_config {
        if docker
            && c.case
                .ignore_config
                .iter()
                .any(|i| field.starts_with(i.as_str()))
        {
            continue;
        }
        let want = serde_json::to_value(want).expect("toml to json");
        let got = config_value(flat, field);
        if got != Some(&want) {
            bad.push(format!("config {field}: {got:?}, expected {want}"));
        }
    }
    bad
}

fn known_reason(case: &str, d: &Difference) -> Option<&'static str> {
    KNOWN_DIFFERENCES
        .iter()
        .find(|k| {
            (k.case == "*" || k.case == case)
                && match k.key.strip_suffix('*') {
                    Some(prefix) => d.key.starts_with(prefix),
                    None => d.key == k.key,
                }
                && (k.accepts)(&d.docker, &d.rcompose)
        })
        .map(|k| k.reason)
}

/// Runs `rcompose image build --help`: false while the builder does not exist.
fn rcompose_can_build() -> bool {
    rcompose_cmd(&common::State::new(), &[])
        .args(["image", "build", "--help"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn build_parity() {
    const TEST: &str = "build_parity";
    if !nix::unistd::geteuid().is_root() {
        skip(TEST, "needs root (a private dockerd, containers)");
        return;
    }
    let docker_only = std::env::var("RCOMPOSE_PARITY_DOCKER_ONLY").is_ok_and(|v| v == "1");
    let Some(testbed) = testbed_dir() else {
        skip(TEST, "no test bed (tests/testbed/testbed.sh)");
        return;
    };
    // Without rcompose's builder (or the served test bed it pulls from) the docker side still
    // runs: its checks cover the flattener and the cases.
    let self_check = std::env::var("RCOMPOSE_PARITY_SELF_CHECK").is_ok_and(|v| v == "1");
    let rcompose_side_ready: Result<Vec<(String, String)>, &str> = if self_check {
        Ok(Vec::new())
    } else if docker_only {
        Err("RCOMPOSE_PARITY_DOCKER_ONLY=1")
    } else {
        match common::testbed_env() {
            None => Err("image test bed not served (tests/testbed/testbed.sh all)"),
            Some(_) if !rcompose_can_build() => Err("rcompose has no `image build` yet"),
            Some(env) => Ok(env),
        }
    };
    let work = tempfile::Builder::new()
        .prefix("rc-parity-")
        .tempdir()
        .expect("work dir");
    let ctxs = work.path().join("ctx");
    let t0 = Instant::now();
    let key_base = key_base(&testbed);
    let cases: Vec<Prepared> = load_cases()
        .into_iter()
        .map(|(name, dir, case)| prepare(&name, &dir, case, &ctxs, &key_base))
        .collect();
    eprintln!("{} cases prepared in {:?}", cases.len(), t0.elapsed());

    let needs_engine = std::env::var("RCOMPOSE_PARITY_REFRESH").is_ok_and(|v| v == "1")
        || cases.iter().any(|c| {
            !testbed
                .join("parity-cache")
                .join(format!("{}.json", c.key))
                .is_file()
        });
    if needs_engine {
        if let Some(why) = common::dockerd::missing_binaries() {
            skip(TEST, &why);
            return;
        }
    }
    let t1 = Instant::now();
    let docker = match docker_side(&cases, &testbed, work.path(), true) {
        Ok(d) => d,
        Err(e) => panic!("docker's side failed:\n{e}"),
    };
    eprintln!("docker side: {:?}", t1.elapsed());

    let mut report = String::new();
    let mut failed = 0;
    for (c, flat) in cases.iter().zip(&docker) {
        let bad = check_expectations(c, flat, true);
        if !bad.is_empty() {
            failed += 1;
            let _ = writeln!(report, "\n{} (docker's image): {}", c.name, c.case.about);
            for b in bad {
                let _ = writeln!(report, "  {b}");
            }
        }
    }
    let env = match rcompose_side_ready {
        Ok(env) => env,
        Err(why) => {
            assert!(
                failed == 0,
                "{failed} cases fail their checks on docker's image:{report}"
            );
            eprintln!("docker side: {} cases checked", cases.len());
            if !docker_only {
                skip(TEST, &format!("rcompose's side: {why}"));
            }
            return;
        }
    };
    let ours = if self_check {
        match docker_side(&cases, &testbed, work.path(), false) {
            Ok(v) => v.into_iter().map(Ok).collect(),
            Err(e) => panic!("docker's second build failed:\n{e}"),
        }
    } else {
        rcompose_side(&cases, &env, work.path())
    };
    let mut known_seen = 0;
    for ((c, d), r) in cases.iter().zip(&docker).zip(ours) {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                failed += 1;
                let _ = writeln!(report, "\n{}: {}\n  {e}", c.name, c.case.about);
                continue;
            }
        };
        let mut lines = check_expectations(c, &r, self_check)
            .into_iter()
            .map(|b| format!("  check on rcompose's image: {b}"))
            .collect::<Vec<_>>();
        let how = Compare {
            history: !c.by_content(),
            ignore_config: &c.case.ignore_config,
        };
        for d in flatten::diff(d, &r, &how) {
            match known_reason(&c.name, &d) {
                Some(reason) => {
                    known_seen += 1;
                    eprintln!("{}: known difference ({reason}): {d}", c.name);
                }
                None => lines.push(format!("  {d}")),
            }
        }
        if !lines.is_empty() {
            failed += 1;
            let mode = match &c.case.docker_lacks {
                Some(f) => format!(" [by content: docker's BuildKit lacks {f}]"),
                None => String::new(),
            };
            let _ = writeln!(
                report,
                "\n{}{mode}: {}\n  {} differences",
                c.name,
                c.case.about,
                lines.len()
            );
            const SHOWN: usize = 40;
            for l in lines.iter().take(SHOWN) {
                let _ = writeln!(report, "{l}");
            }
            if lines.len() > SHOWN {
                let _ = writeln!(report, "  ... and {} more", lines.len() - SHOWN);
            }
        }
    }
    eprintln!(
        "{} cases, {failed} differ, {known_seen} known differences",
        cases.len()
    );
    assert!(
        failed == 0,
        "{failed} of {} cases differ from docker build:{report}",
        cases.len()
    );
}
