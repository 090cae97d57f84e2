//! Instructions: BuildKit's `instructions/parse_test.go`, `bflag_test.go` and mount cases, plus
//! error messages with positions.

use std::time::Duration;

use super::super::instructions::{csv_fields, parse_flags, parse_mount, ram_in_bytes, FlagType};
use super::super::{
    parse_duration, ArgDecl, CommandLine, Healthcheck, Kind, MountKind, NetworkMode, RunMount,
    Security, Sharing,
};
use super::{df, parse_err};

fn one(src: &str) -> Kind {
    let d = df(&format!("FROM x\n{src}\n"));
    d.stages[0].instructions[0].kind.clone()
}

fn err_of(src: &str) -> String {
    let e = parse_err(&format!("FROM x\n{src}\n"));
    e.strip_prefix("Dockerfile:2:1: ")
        .map(str::to_string)
        .unwrap_or(e)
}

#[test]
fn argument_counts() {
    for cmd in ["MAINTAINER", "WORKDIR", "USER", "STOPSIGNAL"] {
        assert_eq!(err_of(cmd), format!("{cmd} requires exactly one argument"));
    }
    for cmd in [
        "ENV",
        "LABEL",
        "ONBUILD",
        "HEALTHCHECK",
        "EXPOSE",
        "VOLUME",
        "ARG",
        "SHELL",
    ] {
        assert_eq!(err_of(cmd), format!("{cmd} requires at least one argument"));
    }
    for cmd in ["ADD", "COPY"] {
        assert_eq!(
            err_of(&format!("{cmd} arg1")),
            format!("{cmd} requires at least two arguments, but only one was provided. Destination could not be determined")
        );
    }
    assert_eq!(
        err_of("COPY\t\n\t\tquux \\\n      bar"),
        "COPY requires at least two arguments, but only one was provided. Destination could not be determined"
    );
    assert_eq!(err_of("LABEL =x"), "LABEL names can not be blank");
    assert_eq!(err_of("ARG =x"), "ARG names can not be blank");
}

#[test]
fn error_cases() {
    let cases = [
        (
            "ONBUILD FROM scratch",
            "FROM isn't allowed as an ONBUILD trigger",
        ),
        (
            "ONBUILD maintainer me",
            "MAINTAINER isn't allowed as an ONBUILD trigger",
        ),
        ("MAINTAINER --boo joe@example.com", "unknown flag: --boo"),
        (
            "ONBUILD ONBUILD RUN touch foobar",
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        ),
        ("FOO bar", "unknown instruction: FOO"),
        ("foo bar", "unknown instruction: foo"),
        ("RUNN x", "unknown instruction: RUNN (did you mean RUN?)"),
        ("cpy a b", "unknown instruction: cpy (did you mean copy?)"),
        (
            "Exposee 80",
            "unknown instruction: Exposee (did you mean expose?)",
        ),
        (
            "SHELL sh -c",
            "SHELL requires the arguments to be in JSON form",
        ),
        ("SHELL []", "SHELL requires at least one argument"),
        (
            "VOLUME [\"\"]",
            "VOLUME specified can not be an empty string",
        ),
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        (
            "HEALTHCHECK FOO x",
            "Unknown type \"FOO\" in HEALTHCHECK (try CMD)",
        ),
        (
            "HEALTHCHECK --interval=50ns CMD x",
            "Interval \"interval\" cannot be less than 1ms",
        ),
        (
            "HEALTHCHECK --interval=-1s CMD x",
            "Interval \"interval\" cannot be less than 1ms",
        ),
        (
            "HEALTHCHECK --timeout=1 CMD x",
            "time: missing unit in duration \"1\"",
        ),
        (
            "HEALTHCHECK --retries=-1 CMD x",
            "--retries cannot be negative (-1)",
        ),
        (
            "HEALTHCHECK --retries=x CMD x",
            "strconv.ParseInt: parsing \"x\": invalid syntax",
        ),
        (
            "HEALTHCHECK --retries=9999999999 CMD x",
            "strconv.ParseInt: parsing \"9999999999\": value out of range",
        ),
        (
            "HEALTHCHECK --intervall=1s CMD x",
            "unknown flag: --intervall (did you mean interval?)",
        ),
        (
            "COPY --fromm=a b c",
            "unknown flag: --fromm (did you mean from?)",
        ),
        ("COPY --chown a b", "missing a value on flag: --chown"),
        ("COPY --link= a b", "missing a value on flag: --link"),
        (
            "COPY --link=yes a b",
            "expecting boolean value for flag --link, not: yes",
        ),
        (
            "COPY --from=a --from=b c d",
            "duplicate flag specified: --from",
        ),
        ("ADD --checksum a b", "missing a value on flag: --checksum"),
        ("ADD --from=x a b", "unknown flag: --from"),
        ("RUN --network=bridge x", "invalid network mode \"bridge\""),
        ("RUN --security=x y", "security \"x\" is not valid"),
        (
            "RUN --mount=type=bind,from=$X x",
            "'from' doesn't support variable expansion, define alias stage instead",
        ),
        (
            "RUN --mount=type=bind,a\\\"b y",
            "failed to parse csv mounts: bare \" in non-quoted-field",
        ),
        ("ENV --x=1 a=b", "unknown flag: --x"),
        ("EXPOSE --p=1 80", "unknown flag: --p"),
        ("CMD --x echo", "unknown flag: --x"),
        ("WORKDIR --x=1 /a", "unknown flag: --x"),
    ];
    for (src, want) in cases {
        let got = err_of(src);
        // BuildKit's own tests check these two with "contains" (a suggestion may follow).
        if src.starts_with("FOO") || src.starts_with("foo") {
            assert!(got.starts_with(want), "{src}: {got}");
        } else {
            assert_eq!(got, want, "{src}");
        }
    }
}

#[test]
fn errors_name_file_line_and_column() {
    assert_eq!(
        parse_err("FROM x\n\n  RUNN apt-get update\n"),
        "Dockerfile:3:3: unknown instruction: RUNN (did you mean RUN?)"
    );
    assert_eq!(
        parse_err("RUN x\n"),
        "Dockerfile:1:1: no build stage in current context"
    );
    assert_eq!(
        parse_err("ARG a\nENV b=c\nFROM x\n"),
        "Dockerfile:2:1: no build stage in current context"
    );
    assert_eq!(
        parse_err("FROM x AS 1st\n"),
        "Dockerfile:1:1: invalid name for build stage: \"1st\", name can't start with a number or contain symbols"
    );
    assert_eq!(
        parse_err("FROM\n"),
        "Dockerfile:1:1: FROM requires either one or three arguments"
    );
    assert_eq!(
        parse_err("FROM a AS\n"),
        "Dockerfile:1:1: FROM requires either one or three arguments"
    );
    assert_eq!(
        parse_err("FROM a to b\n"),
        "Dockerfile:1:1: FROM requires either one or three arguments"
    );
    assert_eq!(
        parse_err("FROM --plat=x a\n"),
        "Dockerfile:1:1: unknown flag: --plat"
    );
    assert_eq!(
        super::super::parse(
            "FROM x\nRUN <<E\n",
            std::path::Path::new("/ctx/app.Dockerfile")
        )
        .err()
        .map(|e| e.to_string())
        .as_deref(),
        Some("/ctx/app.Dockerfile:2:1: unterminated heredoc (no line \"E\" after it)")
    );
}

#[test]
fn stages() {
    let d = df("ARG V=1\nARG A B=2\nFROM --platform=$P img:$V AS Build\nRUN a\nfrom build as Two\nFROM scratch\n");
    assert_eq!(
        d.meta_args,
        [
            ArgDecl {
                name: "V".into(),
                default: Some("1".into())
            },
            ArgDecl {
                name: "A".into(),
                default: None
            },
            ArgDecl {
                name: "B".into(),
                default: Some("2".into())
            }
        ]
    );
    assert_eq!(d.meta_arg_instructions.len(), 2);
    assert_eq!(d.stages.len(), 3);
    let s = &d.stages[0];
    assert_eq!(
        (s.index, s.name.as_deref(), s.base.as_str()),
        (0, Some("build"), "img:$V")
    );
    assert_eq!(s.platform.as_deref(), Some("$P"));
    assert_eq!(
        (s.location.line, s.original.as_str()),
        (3, "FROM --platform=$P img:$V AS Build")
    );
    assert_eq!(s.instructions.len(), 1);
    assert_eq!(
        (d.stages[1].name.as_deref(), d.stages[1].base.as_str()),
        (Some("two"), "build")
    );
    assert_eq!(
        (d.stages[2].name.as_deref(), d.stages[2].display_name()),
        (None, "stage-2".to_string())
    );
    for ok in ["a", "a1", "a-b_c.d", "z..", "A"] {
        df(&format!("FROM x AS {ok}\n"));
    }
    for bad in ["1a", "_a", "a/b", "a:b", "-a", "a@b", "é"] {
        assert!(
            parse_err(&format!("FROM x AS {bad}\n")).contains("invalid name for build stage"),
            "{bad}"
        );
    }
}

#[test]
fn simple_instructions() {
    assert_eq!(one("WORKDIR /a b"), Kind::Workdir("/a b".into()));
    assert_eq!(one("USER 1000:1000"), Kind::User("1000:1000".into()));
    assert_eq!(
        one("STOPSIGNAL SIGKILL"),
        Kind::StopSignal("SIGKILL".into())
    );
    assert_eq!(
        one("STOPSIGNAL --ignored=1 9"),
        Kind::StopSignal("9".into())
    );
    assert_eq!(
        one("MAINTAINER Jane <j@x>"),
        Kind::Maintainer("Jane <j@x>".into())
    );
    assert_eq!(
        one("EXPOSE 8080 80/udp 443"),
        Kind::Expose(vec!["443".into(), "80/udp".into(), "8080".into()])
    );
    assert_eq!(
        one("VOLUME /a /b"),
        Kind::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(
        one("VOLUME [\"/a\", \" /b \"]"),
        Kind::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(
        one("SHELL [\"/bin/bash\", \"-c\"]"),
        Kind::Shell(vec!["/bin/bash".into(), "-c".into()])
    );
    assert_eq!(
        one("ENV a b c"),
        Kind::Env(vec![("a".into(), "b c".into())])
    );
    assert_eq!(
        one("LABEL a=\"1 2\" b=3"),
        Kind::Label(vec![
            ("a".into(), "\"1 2\"".into()),
            ("b".into(), "3".into())
        ])
    );
    assert_eq!(
        one("ARG --ignored a b= c=d=e"),
        Kind::Arg(vec![
            ArgDecl {
                name: "a".into(),
                default: None
            },
            ArgDecl {
                name: "b".into(),
                default: Some(String::new())
            },
            ArgDecl {
                name: "c".into(),
                default: Some("d=e".into())
            },
        ])
    );
    assert_eq!(
        one("ONBUILD   run   make"),
        Kind::OnBuild("run   make".into())
    );
    assert_eq!(
        one("onbuild COPY . /app"),
        Kind::OnBuild("COPY . /app".into())
    );
    assert_eq!(
        one("CMD echo $HOME"),
        Kind::Cmd(CommandLine::Shell("echo $HOME".into()))
    );
    assert_eq!(one("CMD"), Kind::Cmd(CommandLine::Shell(String::new())));
    assert_eq!(
        one("ENTRYPOINT []"),
        Kind::Entrypoint(CommandLine::Exec(vec![]))
    );
    assert_eq!(
        one("entrypoint [\"a\", \"b c\"]"),
        Kind::Entrypoint(CommandLine::Exec(vec!["a".into(), "b c".into()]))
    );
    assert_eq!(
        one("CMD -- [ \"a\", \"b\" ]"),
        Kind::Cmd(CommandLine::Exec(vec!["a".into(), "b".into()]))
    );
}

#[test]
fn keywords_keep_their_case() {
    let d = df("from x\nRun echo\nrun [\"a\"]\n");
    let kw: Vec<&str> = d.stages[0]
        .instructions
        .iter()
        .map(|i| i.keyword.as_str())
        .collect();
    assert_eq!(kw, ["Run", "run"]);
    assert_eq!(d.stages[0].instructions[0].kind.name(), "RUN");
}

#[test]
fn copy_and_add_flags() {
    match one("COPY --from=build --chown=app:app --chmod=0644 --link --parents --exclude=*.md --exclude=tmp a b/ /dst/") {
        Kind::Copy(c) => {
            assert_eq!(c.sources, ["a", "b/"]);
            assert_eq!(c.dest, "/dst/");
            assert_eq!(c.from.as_deref(), Some("build"));
            assert_eq!(c.chown.as_deref(), Some("app:app"));
            assert_eq!(c.chmod.as_deref(), Some("0644"));
            assert!(c.link && c.parents);
            assert_eq!(c.excludes, ["*.md", "tmp"]);
            assert!(!c.json);
        }
        k => panic!("{k:?}"),
    }
    match one("COPY [\"a b\", \"/c d/\"]") {
        Kind::Copy(c) => {
            assert_eq!(
                (c.sources, c.dest.as_str(), c.json),
                (vec!["a b".to_string()], "/c d/", true)
            );
        }
        k => panic!("{k:?}"),
    }
    match one("COPY --link=false a b") {
        Kind::Copy(c) => assert!(!c.link),
        k => panic!("{k:?}"),
    }
    match one(
        "ADD --checksum=sha256:abc --keep-git-dir=true --unpack=FALSE --link https://x/y.tgz /",
    ) {
        Kind::Add(a) => {
            assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
            assert_eq!(
                (a.keep_git_dir, a.unpack, a.link),
                (Some(true), Some(false), true)
            );
            assert_eq!(a.sources, ["https://x/y.tgz"]);
        }
        k => panic!("{k:?}"),
    }
    match one("ADD a b") {
        Kind::Add(a) => assert_eq!(
            (a.keep_git_dir, a.unpack, a.link, a.checksum),
            (None, None, false, None)
        ),
        k => panic!("{k:?}"),
    }
}

#[test]
fn run_flags_and_mounts() {
    match one("RUN --mount=type=cache,target=/root/.cache,id=pip,sharing=locked,uid=1000,mode=0700 --network=none --security=insecure pip install x") {
        Kind::Run(r) => {
            assert_eq!(r.command, CommandLine::Shell("pip install x".into()));
            assert_eq!((r.network, r.security), (Some(NetworkMode::None), Some(Security::Insecure)));
            assert_eq!(r.mounts.len(), 1);
            let m = &r.mounts[0];
            assert_eq!(m.kind, MountKind::Cache);
            assert_eq!((m.target.as_deref(), m.id.as_deref()), (Some("/root/.cache"), Some("pip")));
            assert_eq!((m.sharing, m.uid, m.mode, m.readonly), (Some(Sharing::Locked), Some(1000), Some(0o700), false));
        }
        k => panic!("{k:?}"),
    }
    match one("RUN --mount=target=/src,from=build,source=/out --mount=type=secret,id=tok,env=TOKEN,required [\"sh\", \"-c\", \"x\"]") {
        Kind::Run(r) => {
            assert_eq!(r.command, CommandLine::Exec(vec!["sh".into(), "-c".into(), "x".into()]));
            assert_eq!(r.mounts.len(), 2);
            assert_eq!((r.mounts[0].kind, r.mounts[0].readonly), (MountKind::Bind, true));
            assert_eq!(r.mounts[0].from.as_deref(), Some("build"));
            assert_eq!(r.mounts[1].kind, MountKind::Secret);
            assert_eq!((r.mounts[1].env.as_deref(), r.mounts[1].required), (Some("TOKEN"), true));
            assert_eq!((r.network, r.security), (None, None));
        }
        k => panic!("{k:?}"),
    }
    // A mount using a variable is typed at dispatch (expand), not now.
    match one("RUN --mount=type=cache,target=$DIR --device=vendor.com/gpu=all x") {
        Kind::Run(r) => {
            assert!(r.mounts.is_empty());
            assert_eq!(r.mount_specs, ["type=cache,target=$DIR"]);
            assert_eq!(
                r.devices,
                [super::super::RunDevice {
                    name: "vendor.com/gpu=all".into(),
                    required: false
                }]
            );
        }
        k => panic!("{k:?}"),
    }
    // Invalid mounts are reported at dispatch, as in BuildKit.
    match one("RUN --mount=type=bogus x") {
        Kind::Run(r) => assert!(r.mounts.is_empty()),
        k => panic!("{k:?}"),
    }
}

#[test]
fn devices() {
    use super::super::instructions::parse_device;
    let ok = [
        ("vendor.com/gpu=all", "vendor.com/gpu=all", false),
        ("name=nvidia.com/gpu=0,required", "nvidia.com/gpu=0", true),
        ("required=true,x/y=z", "x/y=z", true),
        ("a,required=false", "a", false),
    ];
    for (spec, name, required) in ok {
        let d = parse_device(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!((d.name.as_str(), d.required), (name, required), "{spec}");
    }
    let bad = [
        ("a,b", "invalid field 'b' must be a key=value pair"),
        ("a,name=b", "device name already set to a"),
        ("a,required=maybe", "invalid value for required: maybe"),
        (
            "a,nme=b",
            "unexpected key 'nme' in 'nme=b' (did you mean name?)",
        ),
    ];
    for (spec, want) in bad {
        assert_eq!(parse_device(spec).err().as_deref(), Some(want), "{spec}");
    }
    assert_eq!(
        err_of("RUN --device=a,b x"),
        "invalid field 'b' must be a key=value pair"
    );
}

fn mount(spec: &str) -> Result<RunMount, String> {
    parse_mount(spec, &mut |v| Ok(v.to_string()))
}

#[test]
fn mounts() {
    let ok = [
        ("type=bind,target=/a", MountKind::Bind, true),
        ("target=/a,rw", MountKind::Bind, false),
        ("target=/a,readwrite=true", MountKind::Bind, false),
        ("target=/a,ro=false", MountKind::Bind, false),
        ("type=cache,target=/a", MountKind::Cache, false),
        ("type=cache,target=/a,ro", MountKind::Cache, true),
        ("type=tmpfs,target=/a,size=64m", MountKind::Tmpfs, false),
        ("type=secret,id=x", MountKind::Secret, true),
        ("type=secret,target=/run/s", MountKind::Secret, true),
        ("type=ssh", MountKind::Ssh, true),
        ("TYPE=SSH,required=true", MountKind::Ssh, true),
        ("\"src=a,b\",target=/x", MountKind::Bind, true),
    ];
    for (spec, kind, ro) in ok {
        let m = mount(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!((m.kind, m.readonly), (kind, ro), "{spec}");
    }
    assert_eq!(
        mount("type=tmpfs,target=/a,size=64m").map(|m| m.size),
        Ok(Some(64 << 20))
    );
    assert_eq!(
        mount("\"src=a,b\",target=/x").map(|m| m.source),
        Ok(Some("a,b".into()))
    );
    let bad = [
        ("type=bogus", "unsupported mount type \"bogus\""),
        (
            "type=cach",
            "unsupported mount type \"cach\" (did you mean cache?)",
        ),
        (
            "type=cache,sharing=shard",
            "unsupported sharing value \"shard\" (did you mean shared?)",
        ),
        ("target=/a,zzz=1", "unexpected key 'zzz' in 'zzz=1'"),
        (
            "target=/a,tagret=1",
            "unexpected key 'tagret' in 'tagret=1' (did you mean target?)",
        ),
        ("target", "invalid field 'target' must be a key=value pair"),
        (
            "required",
            "unexpected key 'required' for mount type 'bind'",
        ),
        (
            "required=true,type=secret",
            "unexpected key 'required' for mount type 'bind'",
        ),
        (
            "target=/a,size=1m",
            "unexpected key 'size' for mount type 'bind'",
        ),
        ("type=tmpfs,size=lots", "invalid value for size: lots"),
        ("type=cache,mode=9", "invalid value 9 for mode"),
        ("type=cache,uid=-1", "invalid value -1 for uid"),
        ("type=cache,gid=x", "invalid value x for gid"),
        ("target=/a,ro=maybe", "invalid value for ro: maybe"),
        (
            "target=/a,mode=0755",
            "mode not allowed for \"bind\" type mounts",
        ),
        (
            "type=tmpfs,uid=1",
            "uid not allowed for \"tmpfs\" type mounts",
        ),
        (
            "type=secret",
            "invalid secret mount. one of source, target required",
        ),
        (
            "type=secret,id=a,from=b",
            "secret mount should not have a from",
        ),
        (
            "type=secret,id=a,sharing=shared",
            "secret mount should not define sharing",
        ),
        (
            "type=secret,id=a,source=b",
            "both source and id can't be set",
        ),
        (
            "target=/a,sharing=private",
            "invalid cache sharing set for bind mount",
        ),
        (
            "\"target=/a",
            "failed to parse csv mounts: extraneous or missing \" in quoted-field",
        ),
    ];
    for (spec, want) in bad {
        assert_eq!(mount(spec).err().as_deref(), Some(want), "{spec}");
    }
}

#[test]
fn csv() {
    let cases: &[(&str, &[&str])] = &[
        ("a,b", &["a", "b"]),
        ("", &[""]),
        ("a,", &["a", ""]),
        ("\"a,b\",c", &["a,b", "c"]),
        ("\"a\"\"b\"", &["a\"b"]),
        (" a , b", &[" a ", " b"]),
    ];
    for (s, want) in cases {
        assert_eq!(
            csv_fields(s).ok(),
            Some(want.iter().map(|w| w.to_string()).collect()),
            "{s}"
        );
    }
    for s in ["a\"b", "\"a", "\"a\"b"] {
        assert!(csv_fields(s).is_err(), "{s}");
    }
}

#[test]
fn ram_sizes() {
    let cases = [
        ("32", Some(32)),
        ("32b", Some(32)),
        ("32k", Some(32 << 10)),
        ("32KiB", Some(32 << 10)),
        ("32 MB", Some(32 << 20)),
        ("1.5g", Some(3 << 29)),
        ("2T", Some(2 << 40)),
        ("1p", Some(1 << 50)),
        ("", None),
        ("-1", None),
        ("1x", None),
        ("1.2.3", None),
    ];
    for (s, want) in cases {
        assert_eq!(ram_in_bytes(s), want, "{s}");
    }
}

#[test]
fn durations() {
    let cases: &[(&str, Option<i128>)] = &[
        ("0", Some(0)),
        ("5s", Some(5_000_000_000)),
        ("1m30s", Some(90_000_000_000)),
        ("1.5h", Some(5_400_000_000_000)),
        ("300ms", Some(300_000_000)),
        ("10us", Some(10_000)),
        ("10µs", Some(10_000)),
        ("1ns", Some(1)),
        ("-2s", Some(-2_000_000_000)),
        ("+.5s", Some(500_000_000)),
        ("1", None),
        ("", None),
        ("s", None),
        ("1d", None),
        ("1.s", Some(1_000_000_000)),
        (".s", None),
        ("9999999999h", None),
    ];
    for (s, want) in cases {
        assert_eq!(parse_duration(s).ok(), *want, "{s}");
    }
}

#[test]
fn healthchecks() {
    assert_eq!(
        one("HEALTHCHECK NONE"),
        Kind::Healthcheck(Healthcheck::None)
    );
    assert_eq!(
        one("HEALTHCHECK --interval=5s none"),
        Kind::Healthcheck(Healthcheck::None)
    );
    assert_eq!(
        one("HEALTHCHECK --interval=5s --timeout=3s --start-period=1m --start-interval=2s --retries=3 CMD curl -f http://x/ || exit 1"),
        Kind::Healthcheck(Healthcheck::Cmd {
            test: vec!["CMD-SHELL".into(), "curl -f http://x/ || exit 1".into()],
            interval: Some(Duration::from_secs(5)),
            timeout: Some(Duration::from_secs(3)),
            start_period: Some(Duration::from_secs(60)),
            start_interval: Some(Duration::from_secs(2)),
            retries: Some(3),
        })
    );
    assert_eq!(
        one("HEALTHCHECK cmd [\"/bin/check\", \"-q\"]"),
        Kind::Healthcheck(Healthcheck::Cmd {
            test: vec!["CMD".into(), "/bin/check".into(), "-q".into()],
            interval: None,
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: None,
        })
    );
    match one("HEALTHCHECK --interval=0s CMD hello world") {
        Kind::Healthcheck(Healthcheck::Cmd { test, interval, .. }) => {
            assert_eq!(test, ["CMD-SHELL", "hello world"]);
            assert_eq!(interval, None);
        }
        k => panic!("{k:?}"),
    }
}

#[test]
fn bflags() {
    let spec = [
        ("bool", FlagType::Bool),
        ("str", FlagType::Str),
        ("list", FlagType::Strings),
    ];
    let f = |args: &[&str]| {
        parse_flags(
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &spec,
        )
    };
    let ok = f(&["--bool", "--str=a=b", "--list=1", "--list=2"]).unwrap_or_default();
    assert_eq!(
        (ok.bool("bool"), ok.string("str").as_deref()),
        (Some(true), Some("a=b"))
    );
    assert_eq!(ok.strings("list"), ["1", "2"]);
    let ok = f(&["--bool=FALSE", "--str="]).unwrap_or_default();
    assert_eq!(
        (ok.bool("bool"), ok.string("str").as_deref()),
        (Some(false), Some(""))
    );
    // A lone -- ends the flags; whatever follows is ignored.
    let ok = f(&["--", "--nope"]).unwrap_or_default();
    assert_eq!(ok.bool("bool"), None);
    let ok = f(&["--str= "]).unwrap_or_default();
    assert_eq!(ok.string("str").as_deref(), Some(" "));
    assert!(f(&[]).is_ok() && f(&["--"]).is_ok());
    let errs = [
        (
            vec!["--bool=xyz"],
            "expecting boolean value for flag --bool, not: xyz",
        ),
        (vec!["--str"], "missing a value on flag: --str"),
        (vec!["--list"], "missing a value on flag: --list"),
        (
            vec!["--str=a", "--str=b"],
            "duplicate flag specified: --str",
        ),
        (vec!["--bool", "--bool"], "duplicate flag specified: --bool"),
        (vec!["--nope"], "unknown flag: --nope"),
        (vec!["--strr=1"], "unknown flag: --strr (did you mean str?)"),
        (vec!["-x"], "arg should start with -- : -x"),
    ];
    for (args, want) in errs {
        assert_eq!(f(&args).err().as_deref(), Some(want), "{args:?}");
    }
}
