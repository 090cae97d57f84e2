//! Targets, stage plans, global ARGs and text-only checks.

use std::collections::{BTreeMap, BTreeSet};

use super::super::{Base, StagePlan};
use super::{df, env_of};

const MULTI: &str = "ARG BASE=alpine
ARG TAG=3.20
FROM ${BASE}:${TAG} AS base
RUN apk add make

FROM busybox AS tools

FROM base AS build
COPY --from=tools /bin/x /bin/x
RUN --mount=type=cache,target=/c --mount=from=golang:1.22,target=/go make

FROM base AS test
COPY --from=build /out /out
COPY --from=0 /etc/os-release /

FROM scratch
COPY --from=build /out /
COPY --from=docker.io/library/nginx:latest /etc/nginx /etc/nginx
";

fn plan(src: &str, target: Option<&str>, env: &[(&str, &str)]) -> Result<StagePlan, String> {
    let d = df(src);
    let env = env_of(env);
    d.plan(target, &|k| env.get(k).cloned())
        .map_err(|e| e.to_string())
}

fn set<T: Ord + Clone>(v: &[T]) -> BTreeSet<T> {
    v.iter().cloned().collect()
}

#[test]
fn targets() {
    let d = df(MULTI);
    assert_eq!(d.target(None).ok(), Some(4));
    assert_eq!(d.target(Some("")).ok(), Some(4));
    assert_eq!(d.target(Some("build")).ok(), Some(2));
    assert_eq!(d.target(Some("BUILD")).ok(), Some(2));
    assert_eq!(
        d.target(Some("tset"))
            .err()
            .map(|e| e.to_string())
            .as_deref(),
        Some("Dockerfile: target stage \"tset\" could not be found (did you mean test?)")
    );
    assert_eq!(
        d.target(Some("nothing"))
            .err()
            .map(|e| e.to_string())
            .as_deref(),
        Some("Dockerfile: target stage \"nothing\" could not be found")
    );
    // The last stage of a name wins.
    let d = df("FROM a AS x\nFROM b AS x\nFROM c\n");
    assert_eq!(d.target(Some("x")).ok(), Some(1));
    let d = df("ARG A=1\n");
    assert!(d.target(None).is_err());
}

#[test]
fn plan_for_last_stage() {
    let p =
        plan(MULTI, None, &[("BASE", "alpine"), ("TAG", "3.20")]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.order, [0, 1, 2, 4]);
    assert_eq!(p.deps.get(&4), Some(&set(&[2])));
    assert_eq!(p.deps.get(&2), Some(&set(&[0, 1])));
    assert_eq!(p.deps.get(&0), Some(&BTreeSet::new()));
    assert_eq!(p.deps.get(&1), Some(&BTreeSet::new()));
    assert_eq!(
        p.images,
        set(&[
            "alpine:3.20".to_string(),
            "busybox".into(),
            "docker.io/library/nginx:latest".into(),
            "golang:1.22".into()
        ])
    );
    assert_eq!(p.bases.get(&2), Some(&Base::Stage(0)));
    assert_eq!(p.bases.get(&4), Some(&Base::Scratch));
    assert_eq!(p.bases.get(&0), Some(&Base::Image("alpine:3.20".into())));
}

#[test]
fn plan_for_targets() {
    let p = plan(MULTI, Some("base"), &[("BASE", "debian"), ("TAG", "12")])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.order, [0]);
    assert_eq!(p.images, set(&["debian:12".to_string()]));
    let p = plan(MULTI, Some("test"), &[("BASE", "alpine"), ("TAG", "3")])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.order, [0, 1, 2, 3]);
    assert_eq!(p.deps.get(&3), Some(&set(&[0, 2])));
    let p = plan(MULTI, Some("tools"), &[("BASE", "a")]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (p.order, p.images),
        (vec![1], set(&["busybox".to_string()]))
    );
}

#[test]
fn plan_errors() {
    let cases = [
        ("FROM a AS one\nCOPY --from=two /x /x\nFROM b AS two\n", Some("one"), "Dockerfile:2:1: cannot copy from stage \"two\", it needs to be defined before current stage \"one\""),
        ("FROM a AS one\nCOPY --from=one /x /x\n", None, "Dockerfile:1:1: circular dependency detected on stage: one"),
        ("FROM a\nCOPY --from=5 /x /x\n", None, "Dockerfile:2:1: invalid stage index 5"),
        ("FROM a\nCOPY --from=-1 /x /x\n", None, "Dockerfile:2:1: invalid stage index -1"),
        ("FROM a\nCOPY --from=$X /x /x\n", None, "Dockerfile:2:1: variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"),
        ("FROM $NOPE\n", None, "Dockerfile:1:1: base name ($NOPE) should not be blank"),
        ("ARG V\nFROM a:${V:?setV}\n", None, "Dockerfile:2:1: FROM: failed to process \"a:${V:?setV}\": V: setV"),
        ("FROM a AS one\nRUN --mount=from=two,target=/x x\nFROM b AS two\nFROM c\nCOPY --from=one / /\n", None, "Dockerfile:2:1: cannot mount from stage \"two\", stage needs to be defined before current command"),
    ];
    for (src, target, want) in cases {
        assert_eq!(plan(src, target, &[]).err().as_deref(), Some(want), "{src}");
    }
    // A cycle is an error even in a stage the target does not need.
    let e = plan(
        "FROM a AS one\nCOPY --from=one /x /x\nFROM b AS two\n",
        Some("two"),
        &[],
    );
    assert_eq!(
        e.err().as_deref(),
        Some("Dockerfile:1:1: circular dependency detected on stage: one")
    );
    let p = plan(
        "FROM --platform=$BUILDPLATFORM a AS b\nFROM --platform=linux/arm64 b\n",
        None,
        &[("BUILDPLATFORM", "linux/amd64")],
    );
    let p = p.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.platforms.get(&0).map(String::as_str), Some("linux/amd64"));
    assert_eq!(p.platforms.get(&1).map(String::as_str), Some("linux/arm64"));
    let e = plan("FROM --platform=$P a\n", None, &[]);
    assert_eq!(
        e.err().as_deref(),
        Some("Dockerfile:1:1: empty platform value from expression $P")
    );
    // A forward reference in a stage the target does not need is no error.
    let p = plan(
        "FROM a AS one\nCOPY --from=two /x /x\nFROM b AS two\n",
        Some("two"),
        &[],
    );
    assert_eq!(p.map(|p| p.order), Ok(vec![1]));
}

#[test]
fn bases() {
    // FROM names an earlier stage exactly (stage names are lower-case); else it is an image.
    let p = plan(
        "FROM a AS one\nFROM one\nFROM ONE\nFROM two\nFROM b AS two\n",
        None,
        &[],
    );
    let p = p.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.order, [4]);
    let d = df("FROM a AS one\nFROM one\nFROM ONE\nFROM two\nFROM b AS two\n");
    for (t, base) in [
        (1, Base::Stage(0)),
        (2, Base::Image("ONE".into())),
        (3, Base::Image("two".into())),
    ] {
        let d2 = d.clone();
        let mut d2 = d2;
        d2.stages.truncate(t + 1);
        let p = d2.plan(None, &|_| None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.bases.get(&t), Some(&base), "stage {t}");
    }
    let p = plan(
        "ARG IMG=x\nFROM ${IMG} AS s\nFROM s\nCOPY --from=S / /\n",
        None,
        &[("IMG", "y")],
    );
    let p = p.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((p.order, p.images), (vec![0, 1], set(&["y".to_string()])));
}

#[test]
fn meta_values() {
    let d = df("ARG A=1\nARG B=${A}2 C\nARG A=x$A\nARG D=${C:-none}\nFROM x\nARG E=1\n");
    let predefined: BTreeMap<String, String> = env_of(&[("TARGETOS", "linux")]);
    let v = d
        .meta_values(&|_| None, &predefined)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        v,
        env_of(&[
            ("A", "x1"),
            ("B", "12"),
            ("D", "none"),
            ("TARGETOS", "linux")
        ])
    );
    let build_args = env_of(&[("A", "9"), ("C", "c")]);
    let v = d
        .meta_values(&|k| build_args.get(k).cloned(), &BTreeMap::new())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        v,
        env_of(&[("A", "9"), ("B", "92"), ("C", "c"), ("D", "c")])
    );
    let d = df("ARG A=${X:?required}\nFROM a\n");
    assert_eq!(
        d.meta_values(&|_| None, &BTreeMap::new())
            .err()
            .map(|e| e.to_string())
            .as_deref(),
        Some("Dockerfile:1:1: ARG: failed to process \"${X:?required}\": X: required")
    );
}

fn rules(src: &str) -> Vec<(String, usize)> {
    df(src)
        .warnings
        .into_iter()
        .map(|w| (w.rule, w.line))
        .collect()
}

fn r(v: &[(&str, usize)]) -> Vec<(String, usize)> {
    v.iter().map(|(a, b)| (a.to_string(), *b)).collect()
}

#[test]
fn checks() {
    assert_eq!(rules("FROM a\nRUN x\nCMD [\"x\"]\n"), r(&[]));
    assert_eq!(
        rules("FROM a\nCMD x\nENTRYPOINT y\n"),
        r(&[("JSONArgsRecommended", 2), ("JSONArgsRecommended", 3)])
    );
    assert_eq!(rules("FROM a\nSHELL [\"sh\",\"-c\"]\nCMD x\n"), r(&[]));
    assert_eq!(
        rules("FROM a AS b\nSHELL [\"sh\",\"-c\"]\nFROM b\nCMD x\n"),
        r(&[])
    );
    assert_eq!(
        rules("FROM a\nCMD [\"a\"]\nCMD [\"b\"]\nHEALTHCHECK NONE\nHEALTHCHECK NONE\n"),
        r(&[
            ("MultipleInstructionsDisallowed", 2),
            ("MultipleInstructionsDisallowed", 4)
        ])
    );
    assert_eq!(
        rules("FROM a\nMAINTAINER me\n"),
        r(&[("MaintainerDeprecated", 2)])
    );
    assert_eq!(
        rules("FROM a\nENV k v\nLABEL a=b\nLABEL c d\n"),
        r(&[("LegacyKeyValueFormat", 2), ("LegacyKeyValueFormat", 4)])
    );
    assert_eq!(rules("FROM a AS Build\n"), r(&[("StageNameCasing", 1)]));
    assert_eq!(rules("FROM a as b\n"), r(&[("FromAsCasing", 1)]));
    assert_eq!(rules("from a AS b\n"), r(&[("FromAsCasing", 1)]));
    assert_eq!(
        rules("From a as b\n"),
        r(&[("ConsistentInstructionCasing", 1)])
    );
    assert_eq!(
        rules("FROM a AS x\nFROM b AS x\n"),
        r(&[("DuplicateStageName", 2)])
    );
    assert_eq!(rules("FROM a AS scratch\n"), r(&[("ReservedStageName", 1)]));
    assert_eq!(
        rules("FROM a\nrun x\nRUN y\nRUN z\n"),
        r(&[("ConsistentInstructionCasing", 2)])
    );
    assert_eq!(
        rules("from a\nrun x\nRUN y\nrun z\n"),
        r(&[("ConsistentInstructionCasing", 3)])
    );
    assert_eq!(
        rules("ARG GITHUB_TOKEN\nFROM a\nENV API_KEY=1 PUBLIC_KEY=2 MONKEY=3 KEY=4\nARG db_password\n"),
        r(&[
            ("SecretsUsedInArgOrEnv", 1),
            ("SecretsUsedInArgOrEnv", 3),
            ("SecretsUsedInArgOrEnv", 3),
            ("SecretsUsedInArgOrEnv", 4)
        ])
    );
    assert_eq!(
        rules(
            "# check=skip=JSONArgsRecommended,MaintainerDeprecated\nFROM a\nCMD x\nMAINTAINER m\n"
        ),
        r(&[])
    );
    assert_eq!(rules("# check=skip=all\nFROM a\nCMD x\n"), r(&[]));
    let d = df("# check=error=true;skip=StageNameCasing\nFROM a\n");
    let cfg = d.directives.check_config().unwrap_or_default();
    assert!(cfg.error && cfg.skips("StageNameCasing") && !cfg.skips("Other"));
    assert!(super::parse_err("# check=bogus\nFROM a\n").contains("invalid check option"));
    let w = &df("FROM a\nCMD x\n").warnings[0];
    assert_eq!(
        w.message,
        "JSON arguments recommended for CMD to prevent unintended behavior related to OS signals"
    );
    assert_eq!(
        w.url,
        "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/"
    );
}

#[test]
fn onbuild_triggers() {
    use std::path::Path;
    let t = super::super::parse_trigger("RUN make install", Path::new("onbuild"));
    let t = t.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.original, "RUN make install");
    let t = super::super::parse_trigger("COPY <<EOF /x\nhi\nEOF", Path::new("onbuild"));
    assert!(matches!(t.map(|i| i.kind), Ok(super::super::Kind::Copy(c)) if c.heredocs.len() == 1));
    let t = super::super::parse_trigger("RUN a\nRUN b", Path::new("onbuild"));
    assert_eq!(
        t.err().map(|e| e.to_string()).as_deref(),
        Some("onbuild:1:1: onbuild trigger should be a single expression")
    );
    let t = super::super::parse_trigger("FROM x", Path::new("onbuild"));
    assert_eq!(
        t.err().map(|e| e.to_string()).as_deref(),
        Some("onbuild:1:1: FROM isn't allowed as an ONBUILD trigger")
    );
}
