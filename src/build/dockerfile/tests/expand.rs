//! Dispatch-time expansion of instructions.

use std::collections::BTreeSet;

use super::super::{CommandLine, DockerfileError, Expander, Instruction, Kind, MountKind};
use super::{df, env_of};

fn expand_with(src: &str, env: &[(&str, &str)]) -> Result<(Kind, Vec<String>), DockerfileError> {
    let d = df(&format!("FROM x\n{src}\n"));
    let env = env_of(env);
    let ins: &Instruction = &d.stages[0].instructions[0];
    let (out, used) = ins.expand(&Expander::new(d.directives.escape), &|k| {
        env.get(k).cloned()
    })?;
    assert_eq!(out.location, ins.location);
    assert_eq!(out.original, ins.original);
    Ok((out.kind, used.into_iter().collect()))
}

fn expand(src: &str, env: &[(&str, &str)]) -> Kind {
    expand_with(src, env)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .0
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn env_and_label() {
    assert_eq!(
        expand("ENV A=$B C=\"x y\" D='$B' E=a\\ b", &[("B", "bee")]),
        Kind::Env(vec![
            ("A".into(), "bee".into()),
            ("C".into(), "x y".into()),
            ("D".into(), "$B".into()),
            ("E".into(), "a b".into()),
        ])
    );
}

#[test]
fn env_forms() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("ENV name value", &[("name", "value")]),
        ("ENV name=value", &[("name", "value")]),
        ("ENV name=\"value value1\"", &[("name", "value value1")]),
        ("ENV name=value\\ value2", &[("name", "value value2")]),
        (
            "ENV name=\"value'quote space'value2\"",
            &[("name", "value'quote space'value2")],
        ),
        (
            "ENV name='value\"double quote\"value2'",
            &[("name", "value\"double quote\"value2")],
        ),
        ("ENV name=\"a\\\"b\"", &[("name", "a\"b")]),
        ("ENV name=\"a\\'b\"", &[("name", "a\\'b")]),
        ("ENV name=\"''\"", &[("name", "''")]),
        ("ENV name=\"a\\\\b\"", &[("name", "a\\b")]),
        ("ENV ${K}=${V:-d}", &[("k", "d")]),
        (
            "LABEL \"com.example.vendor\"=\"ACME Inc\"",
            &[("com.example.vendor", "ACME Inc")],
        ),
        (
            "LABEL multi.label1=\"value1\" multi.label2=value2",
            &[("multi.label1", "value1"), ("multi.label2", "value2")],
        ),
    ];
    for (src, want) in cases {
        let got = expand(src, &[("K", "k")]);
        let pairs = match got {
            Kind::Env(p) | Kind::Label(p) => p,
            k => panic!("{k:?}"),
        };
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(pairs, want, "{src}");
    }
}

#[test]
fn paths_users_and_lists() {
    let env = [
        ("DIR", "/app"),
        ("U", "me"),
        ("P", "8080 9090/udp"),
        ("SIG", "TERM"),
    ];
    assert_eq!(
        expand("WORKDIR $DIR/src", &env),
        Kind::Workdir("/app/src".into())
    );
    assert_eq!(
        expand("WORKDIR \"$DIR/a b\"", &env),
        Kind::Workdir("/app/a b".into())
    );
    assert_eq!(
        expand("USER ${U}:${G:-staff}", &env),
        Kind::User("me:staff".into())
    );
    assert_eq!(
        expand("STOPSIGNAL SIG$SIG", &env),
        Kind::StopSignal("SIGTERM".into())
    );
    assert_eq!(
        expand("VOLUME $DIR/data /x", &env),
        Kind::Volume(s(&["/app/data", "/x"]))
    );
    assert_eq!(
        expand("EXPOSE $P 80", &env),
        Kind::Expose(s(&["8080", "9090/udp", "80"]))
    );
}

#[test]
fn copy_and_add() {
    let env = [("SRC", "a b"), ("DST", "/d"), ("UID", "1000")];
    match expand(
        "COPY --chown=$UID:$UID --chmod=${MODE:-644} --exclude=$X $SRC \"$SRC\" $DST/",
        &env,
    ) {
        Kind::Copy(c) => {
            assert_eq!(c.sources, ["a b", "a b"]);
            assert_eq!(c.dest, "/d/");
            assert_eq!(c.chown.as_deref(), Some("1000:1000"));
            assert_eq!(c.chmod.as_deref(), Some("644"));
            // --exclude is not expanded (as in BuildKit).
            assert_eq!(c.excludes, ["$X"]);
        }
        k => panic!("{k:?}"),
    }
    match expand(
        "ADD --checksum=$SUM https://x/$V.tgz /",
        &[("SUM", "sha256:1"), ("V", "2")],
    ) {
        Kind::Add(a) => {
            assert_eq!(a.checksum.as_deref(), Some("sha256:1"));
            assert_eq!(a.sources, ["https://x/2.tgz"]);
        }
        k => panic!("{k:?}"),
    }
}

#[test]
fn heredoc_bodies() {
    let env = [("NAME", "world")];
    match expand(
        "COPY <<-EOF <<'RAW' /x/\n\thello $NAME \"q\" \\$NAME\n\tEOF\nraw $NAME\nRAW",
        &env,
    ) {
        Kind::Copy(c) => {
            assert_eq!(c.heredocs[0].content, "hello world \"q\" $NAME\n");
            assert!(!c.heredocs[0].chomp);
            assert_eq!(c.heredocs[1].content, "raw $NAME\n");
        }
        k => panic!("{k:?}"),
    }
    // RUN heredocs are not expanded by the frontend (the shell does it).
    match expand("RUN <<EOF\necho $NAME\nEOF", &env) {
        Kind::Run(r) => assert_eq!(r.heredocs[0].content, "echo $NAME\n"),
        k => panic!("{k:?}"),
    }
}

#[test]
fn not_expanded() {
    let env = [("A", "x")];
    for src in [
        "RUN echo $A",
        "CMD echo $A",
        "ENTRYPOINT [\"$A\"]",
        "SHELL [\"$A\"]",
        "HEALTHCHECK CMD $A",
        "ONBUILD RUN $A",
        "MAINTAINER $A",
    ] {
        let d = df(&format!("FROM x\n{src}\n"));
        let ins = &d.stages[0].instructions[0];
        let (out, used) = ins
            .expand(&Expander::new('\\'), &|k| env_of(&env).get(k).cloned())
            .unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(out.kind, ins.kind, "{src}");
        assert!(used.is_empty(), "{src}");
    }
    match expand("RUN echo $A", &env) {
        Kind::Run(r) => assert_eq!(r.command, CommandLine::Shell("echo $A".into())),
        k => panic!("{k:?}"),
    }
}

#[test]
fn arg_defaults() {
    assert_eq!(
        expand("ARG A=$B C", &[("B", "b")]),
        Kind::Arg(vec![
            super::super::ArgDecl {
                name: "A".into(),
                default: Some("b".into())
            },
            super::super::ArgDecl {
                name: "C".into(),
                default: None
            },
        ])
    );
}

#[test]
fn run_mounts_at_dispatch() {
    let env = [("DIR", "/cache"), ("ID", "pip")];
    match expand(
        "RUN --mount=type=cache,target=$DIR,id=${ID} --mount=type=tmpfs,target=/t x",
        &env,
    ) {
        Kind::Run(r) => {
            assert_eq!(r.mounts.len(), 2);
            assert_eq!(
                (r.mounts[0].kind, r.mounts[0].target.as_deref()),
                (MountKind::Cache, Some("/cache"))
            );
            assert_eq!(r.mounts[0].id.as_deref(), Some("pip"));
            assert_eq!(r.mounts[1].kind, MountKind::Tmpfs);
        }
        k => panic!("{k:?}"),
    }
    let e = expand_with("RUN --mount=type=cache,uid=$U x", &[("U", "me")])
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("Dockerfile:2:1: invalid value me for uid")
    );
    let e = expand_with("RUN --mount=type=bogus x", &[])
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("Dockerfile:2:1: unsupported mount type \"bogus\"")
    );
    let e = expand_with("RUN --mount=target=${X:?nodir} x", &[])
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("Dockerfile:2:1: RUN: failed to process \"${X:?nodir}\": X: nodir")
    );
}

#[test]
fn used_variables() {
    let (_, used) = expand_with("COPY --chown=$U $A ${B:-x} ${C+y} /$D", &[("A", "a")])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(used, ["A", "B", "C", "D", "U"]);
    let (_, used) = expand_with("WORKDIR /x", &[("A", "a")]).unwrap_or_else(|e| panic!("{e}"));
    assert!(used.is_empty());
    let set: BTreeSet<&str> = ["A"].into();
    assert!(set.contains("A"));
}

#[test]
fn expansion_errors_name_the_instruction() {
    let e = expand_with("WORKDIR ${A:?must be set}", &[])
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("Dockerfile:2:1: WORKDIR: failed to process \"${A:?must be set}\": A: must be set")
    );
    let e = expand_with("ENV A=\"unterminated", &[])
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("Dockerfile:2:1: ENV: failed to process \"\\\"unterminated\": unexpected end of statement while looking for matching double-quote")
    );
}

#[test]
fn backtick_escape_file() {
    let d = df("# escape=`\nFROM x\nWORKDIR c:\\$A`$B\n");
    let ins = &d.stages[0].instructions[0];
    let (out, _) = ins
        .expand(&Expander::new(d.directives.escape), &|k| {
            (k == "A").then(|| "a".to_string())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.kind, Kind::Workdir("c:\\a$B".into()));
}
