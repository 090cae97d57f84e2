//! BuildKit's lexer tests: `envVarTest`, `wordsTest` and `lex_test.go`.

use std::collections::BTreeSet;

use super::super::shell::{pattern_to_regex, reverse_pattern, Lex};
use super::super::{ExpandFailure, Expander};
use super::env_of;
use super::upstream::{ENV_VAR_TEST, WORDS_TEST};

fn word(s: &str, env: &[(&str, &str)]) -> Result<String, String> {
    let env = env_of(env);
    Expander::new('\\')
        .word(s, &|k| env.get(k).cloned())
        .map(|e| e.value)
        .map_err(|e| e.to_string())
}

#[test]
fn env_var_table() {
    let env = env_of(&[
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]);
    let x = Expander::new('\\');
    let mut n = 0;
    for (i, line) in ENV_VAR_TEST.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.trim().split('|').collect();
        assert_eq!(parts.len(), 3, "line {}", i + 1);
        let (platform, source, expected) = (parts[0].trim(), parts[1].trim(), parts[2].trim());
        if platform == "W" {
            continue;
        }
        let got = x.word(source, &|k| env.get(k).cloned());
        if expected == "error" {
            assert!(
                got.is_err(),
                "line {}: {source:?} should fail, got {got:?}",
                i + 1
            );
        } else {
            match got {
                Ok(e) => assert_eq!(e.value, expected, "line {}: {source:?}", i + 1),
                Err(e) => panic!("line {}: {source:?}: {e}", i + 1),
            }
        }
        n += 1;
    }
    assert!(n > 200, "only {n} cases read");
}

#[test]
fn words_table() {
    let x = Expander::new('\\');
    let mut env = std::collections::BTreeMap::new();
    let mut n = 0;
    for (i, line) in WORDS_TEST.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            let rest = rest.trim_start_matches(' ');
            let (k, v) = rest.split_once('=').unwrap_or((rest, ""));
            env.insert(k.to_string(), v.to_string());
            continue;
        }
        let parts: Vec<&str> = line.split('|').collect();
        assert_eq!(parts.len(), 2, "line {}", i + 1);
        let test = parts[0].trim();
        let expected: Vec<String> = parts[1]
            .trim_start_matches(' ')
            .split(',')
            .map(str::to_string)
            .collect();
        let got = match x.words(test, &|k| env.get(k).cloned()) {
            Ok((w, _)) => w,
            Err(_) => vec!["error".to_string()],
        };
        assert_eq!(got, expected, "line {}: {test:?}", i + 1);
        n += 1;
    }
    assert!(n > 20);
}

#[test]
fn shell_pattern_to_regex() {
    for (pattern, expected) in [
        ("*", "^.*"),
        ("?", "^."),
        ("\\*", "^\\*"),
        (
            "(()[]{\\}^$.\\*\\?|\\\\",
            "^\\(\\(\\)\\[\\]\\{\\}\\^\\$\\.\\*\\?\\|\\\\",
        ),
    ] {
        assert_eq!(
            pattern_to_regex(pattern, true, true).as_deref(),
            Ok(expected),
            "{pattern}"
        );
    }
    for pattern in ["\\", "\\x", "\\\\\\"] {
        assert!(pattern_to_regex(pattern, true, true).is_err(), "{pattern}");
    }
    assert_eq!(pattern_to_regex("a*", false, false).as_deref(), Ok("a.*?"));
}

#[test]
fn reversed_patterns() {
    for (pattern, expected) in [
        ("a\\*c", "c\\*a"),
        ("\\\\\\ab", "b\\a\\\\"),
        ("ab\\", "\\ba"),
        ("👽\\🚀🖖", "🖖\\🚀👽"),
        ("\\\\b", "b\\\\"),
        ("", ""),
    ] {
        assert_eq!(reverse_pattern(pattern), expected, "{pattern}");
    }
}

#[test]
fn mandatory_variables() {
    let no_empty = "${VAR:?message here$ARG}";
    let no_unset = "${VAR?message here$ARG}";
    let set = [("VAR", "plain"), ("ARG", "x")];
    let empty = [("VAR", ""), ("ARG", "x")];
    let unset = [("ARG", "x")];
    assert_eq!(word(no_empty, &set).as_deref(), Ok("plain"));
    assert!(word(no_empty, &empty)
        .unwrap_err()
        .contains("message herex"));
    assert!(word(no_empty, &unset)
        .unwrap_err()
        .contains("message herex"));
    assert_eq!(word(no_unset, &set).as_deref(), Ok("plain"));
    assert_eq!(word(no_unset, &empty).as_deref(), Ok(""));
    assert!(word(no_unset, &unset)
        .unwrap_err()
        .contains("message herex"));
    assert_eq!(
        word("${X:?}", &[]).unwrap_err(),
        "failed to process \"${X:?}\": X: is not allowed to be unset"
    );
    assert_eq!(
        word("${X:?}", &[("X", "")]).unwrap_err(),
        "failed to process \"${X:?}\": X: is not allowed to be empty"
    );
}

/// lex_test.go `TestProcessWithMatches`: (input, env, expected or None for an error,
/// variables found, variables not found).
#[test]
fn process_with_matches() {
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        Option<&'a str>,
        &'a [&'a str],
        &'a [&'a str],
    );
    let fb: &[(&str, &str)] = &[("FOO", "xxx"), ("BAR", "")];
    let cases: &[Case] = &[
        ("x", &[("DUMMY", "dummy")], Some("x"), &[], &[]),
        (
            "x ${UNUSED}",
            &[("DUMMY", "dummy")],
            Some("x "),
            &[],
            &["UNUSED"],
        ),
        ("x ${FOO}", &[("FOO", "y")], Some("x y"), &["FOO"], &[]),
        (
            "${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}",
            fb,
            Some("xxx  ccc"),
            &["FOO", "BAR"],
            &["BAZ"],
        ),
        (
            "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}",
            fb,
            Some("xxx bbb ccc"),
            &["FOO", "BAR"],
            &["BAZ"],
        ),
        ("${FOO:-}", fb, Some("xxx"), &["FOO"], &[]),
        ("${FOO:-}", &[], Some(""), &[], &["FOO"]),
        (
            "${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}",
            fb,
            Some("aaa bbb "),
            &["FOO", "BAR"],
            &["BAZ"],
        ),
        (
            "${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}",
            fb,
            Some("aaa  "),
            &["FOO", "BAR"],
            &["BAZ"],
        ),
        ("${FOO?aaa}", fb, Some("xxx"), &["FOO"], &[]),
        ("${BAR?bbb}", fb, Some(""), &["BAR"], &[]),
        ("${BAZ?ccc}", fb, None, &[], &[]),
        ("${FOO:?aaa}", fb, Some("xxx"), &["FOO"], &[]),
        ("${BAR:?bbb}", fb, None, &[], &[]),
        ("${BAZ:?ccc}", fb, None, &[], &[]),
        ("${BAZ:?}", fb, None, &[], &[]),
        ("${FOO=aaa}", fb, None, &[], &[]),
        ("${FOO=:aaa}", fb, None, &[], &[]),
        ("${FOO=}", &[], None, &[], &[]),
        (
            "${FOO#()[]{\\}^$.\\*\\?|\\\\}",
            &[("FOO", "()[]{}^$.*?|\\x")],
            Some("x"),
            &["FOO"],
            &[],
        ),
        (
            "${FOO%%\\**}",
            &[("FOO", "xx**")],
            Some("xx"),
            &["FOO"],
            &[],
        ),
        ("${FOO#*x*y}", &[("FOO", "xxyy")], Some("y"), &["FOO"], &[]),
        ("${FOO#*}", &[("FOO", "xxyy")], Some("xxyy"), &["FOO"], &[]),
        (
            "${FOO#$BAR}",
            &[("FOO", "xxyy"), ("BAR", "x")],
            Some("xyy"),
            &["FOO", "BAR"],
            &[],
        ),
        (
            "${FOO#$BAR}",
            &[("FOO", "xxyy"), ("BAR", "")],
            Some("xxyy"),
            &["FOO", "BAR"],
            &[],
        ),
        ("${FOO#}", &[("FOO", "xxyy")], Some("xxyy"), &["FOO"], &[]),
        ("${FOO##*x}", &[("FOO", "xxyy")], Some("yy"), &["FOO"], &[]),
        ("${FOO##}", &[("FOO", "xxyy")], Some("xxyy"), &["FOO"], &[]),
        ("${FOO#?\\?}", &[("FOO", "???y")], Some("?y"), &["FOO"], &[]),
        (
            "${ABC:-.}${FOO%x}${ABC:-.}",
            &[("FOO", "xxyy")],
            Some(".xxyy."),
            &["FOO"],
            &["ABC"],
        ),
        (
            "${FOO%%\\**\\*}",
            &[("FOO", "a***yy*")],
            Some("a"),
            &["FOO"],
            &[],
        ),
        ("${FOO%}", &[("FOO", "xxyy")], Some("xxyy"), &["FOO"], &[]),
        (
            "${FOO%%$BAR}",
            &[("FOO", "xxyy"), ("BAR", "")],
            Some("xxyy"),
            &["FOO", "BAR"],
            &[],
        ),
        ("${FOO:#}", &[], None, &[], &[]),
        ("${FOO:##}", &[], None, &[], &[]),
        ("${FOO:%}", &[], None, &[], &[]),
        ("${FOO:%%}", &[], None, &[], &[]),
        (
            "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
            &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", "\\*/")],
            Some("/foo.*/*.txt - /foo..*.txt"),
            &["FOO", "NEEDLE"],
            &[],
        ),
        (
            "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
            &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
            Some("/tmp/bar.txt - /bar.txt"),
            &["FOO", "NEEDLE"],
            &[],
        ),
        (
            "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
            &[
                ("FOO", "/a/foo/b/c.txt"),
                ("NEEDLE", "/?/"),
                ("REPLACEMENT", "/"),
            ],
            Some("/foo/b/c.txt - /foo/c.txt"),
            &["FOO", "NEEDLE", "REPLACEMENT"],
            &[],
        ),
        (
            "${FOO/$NEEDLE/$REPLACEMENT}",
            &[
                ("FOO", "http://google.de"),
                ("NEEDLE", "http://"),
                ("REPLACEMENT", "https://"),
            ],
            Some("https://google.de"),
            &["FOO", "NEEDLE", "REPLACEMENT"],
            &[],
        ),
        (
            "${FOO//\\//\\/}",
            &[("FOO", "/tmp/foo.txt")],
            Some("\\/tmp\\/foo.txt"),
            &["FOO"],
            &[],
        ),
        (
            "${FOO/$BAR/ww}",
            &[("FOO", "xxyy"), ("BAR", "")],
            Some("wwxxyy"),
            &["FOO", "BAR"],
            &[],
        ),
        ("${FOO//ww}", &[("FOO", "xxyy")], None, &[], &[]),
        ("${FOO//}", &[("FOO", "xxyy")], None, &[], &[]),
        ("${FOO///}", &[("FOO", "xxyy")], Some("xxyy"), &["FOO"], &[]),
        ("${FOO///}", &[], Some(""), &[], &["FOO"]),
    ];
    let x = Expander::new('\\');
    for (input, env, expected, matched, unmatched) in cases {
        let env = env_of(env);
        let got = x.word(input, &|k| env.get(k).cloned());
        match expected {
            None => assert!(got.is_err(), "{input}: {got:?}"),
            Some(expected) => {
                let got = got.unwrap_or_else(|e| panic!("{input}: {e}"));
                assert_eq!(&got.value, expected, "{input}");
                let found: BTreeSet<String> = got.used.difference(&got.unset).cloned().collect();
                let want: BTreeSet<String> = matched.iter().map(|s| s.to_string()).collect();
                assert_eq!(found, want, "{input}: found");
                let want: BTreeSet<String> = unmatched.iter().map(|s| s.to_string()).collect();
                assert_eq!(got.unset, want, "{input}: unset");
            }
        }
    }
}

#[test]
fn platform_release_name() {
    let release =
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz";
    let base = [("VERSION", "v1.2.3"), ("TARGETOS", "linux")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut e = base.to_vec();
        e.extend_from_slice(extra);
        word(release, &e)
    };
    assert_eq!(
        with(&[("TARGETARCH", "arm"), ("TARGETVARIANT", "v7")]).as_deref(),
        Ok("something-v1.2.3.linux-arm-v7.tar.gz")
    );
    assert_eq!(
        with(&[("TARGETARCH", "arm64"), ("TARGETVARIANT", "")]).as_deref(),
        Ok("something-v1.2.3.linux-arm64.tar.gz")
    );
    assert_eq!(
        with(&[("TARGETARCH", "arm64")]).as_deref(),
        Ok("something-v1.2.3.linux-arm64.tar.gz")
    );
}

/// Our own cases: escape characters, error wording, options, limits.
#[test]
fn more_words() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Result<&'a str, &'a str>);
    let cases: &[Case] = &[
        ("$", &[], Ok("$")),
        ("a$", &[], Ok("a$")),
        ("${A:-x y}", &[], Ok("x y")),
        ("${A:-'q'}", &[], Ok("q")),
        ("${A:-\"$B\"}", &[("B", "b")], Ok("b")),
        ("${A+\"set\"}", &[("A", "")], Ok("set")),
        ("${A%.*}", &[("A", "file.tar.gz")], Ok("file.tar")),
        ("${A%%.*}", &[("A", "file.tar.gz")], Ok("file")),
        ("${A#*.}", &[("A", "file.tar.gz")], Ok("tar.gz")),
        ("${A##*.}", &[("A", "file.tar.gz")], Ok("gz")),
        ("${A/a/b}", &[("A", "aaa")], Ok("baa")),
        ("${A//a/b}", &[("A", "aaa")], Ok("bbb")),
        // `$$` is the (unset) special parameter, as in BuildKit.
        ("${A//a/$$}", &[("A", "aa")], Ok("")),
        ("${A", &[], Err("failed to process \"${A\": syntax error: missing '}'")),
        ("${}", &[], Err("failed to process \"${}\": syntax error: bad substitution")),
        ("${A:=x}", &[], Err("failed to process \"${A:=x}\": unsupported modifier (:=) in substitution")),
        ("'abc", &[], Err("failed to process \"'abc\": unexpected end of statement while looking for matching single-quote")),
        ("\"abc", &[], Err("failed to process \"\\\"abc\": unexpected end of statement while looking for matching double-quote")),
        ("${A/x", &[], Err("failed to process \"${A/x\": syntax error: missing '/' in ${}")),
        ("${A#\\x}", &[("A", "a")], Err("failed to process \"${A#\\\\x}\": invalid pattern (\\x) in substitution: invalid escape '\\x'")),
    ];
    for (input, env, expected) in cases {
        let got = word(input, env);
        match expected {
            Ok(v) => assert_eq!(got.as_deref(), Ok(*v), "{input}"),
            Err(m) => assert_eq!(got.err().as_deref(), Some(*m), "{input}"),
        }
    }
}

#[test]
fn backtick_escape() {
    let x = Expander::new('`');
    let env = env_of(&[("A", "a")]);
    let get = |s: &str| x.word(s, &|k| env.get(k).cloned()).map(|e| e.value);
    assert_eq!(get("`$A").as_deref(), Ok("$A"));
    assert_eq!(get("c:\\path\\$A").as_deref(), Ok("c:\\path\\a"));
    assert_eq!(get("\"`\"\"").as_deref(), Ok("\""));
    // Heredoc bodies always use `\`, and keep quotes.
    let h = x
        .heredoc("'$A' \\$A \"x\"", &|k| env.get(k).cloned())
        .map(|e| e.value);
    assert_eq!(h.as_deref(), Ok("'a' $A \"x\""));
}

#[test]
fn skip_unset_and_raw_options() {
    let lex = Lex {
        raw_quotes: true,
        skip_unset_env: true,
        ..Lex::new('\\')
    };
    let env = env_of(&[("A", "a")]);
    let p = lex.process("$A $B ${C} ${D:-x} ${E/a/b} 'q'", &|k| env.get(k).cloned());
    let p = p.map(|p| p.words).unwrap_or_default();
    assert_eq!(p, ["a", "$B", "${C}", "${D:-x}", "${E/a/b}", "'q'"]);
}

#[test]
fn limits_are_errors() {
    let deep = format!("{}x{}", "${A:-".repeat(200), "}".repeat(200));
    assert!(matches!(
        Expander::new('\\')
            .word(&deep, &|_| None)
            .map_err(|e| e.reason),
        Err(ExpandFailure::TooDeep)
    ));
    let big = "x".repeat(5 << 20);
    let env = |_: &str| Some(big.clone());
    assert!(matches!(
        Expander::new('\\').word("$A$A", &env).map_err(|e| e.reason),
        Err(ExpandFailure::TooLong)
    ));
    assert_eq!(
        Expander::new('\\').word("$A", &env).map(|e| e.value.len()),
        Ok(5 << 20)
    );
    // Short words over huge values are bounded too.
    let costly = "${A%%*}".repeat(20);
    assert!(matches!(
        Expander::new('\\')
            .word(&costly, &env)
            .map_err(|e| e.reason),
        Err(ExpandFailure::TooMuchWork)
    ));
}

#[test]
fn words_split_after_expansion() {
    let x = Expander::new('\\');
    let env = env_of(&[("P", "80 443/tcp")]);
    let (w, used) = x
        .words("$P \"8080 x\" ${Q:-9}", &|k| env.get(k).cloned())
        .unwrap_or_default();
    assert_eq!(w, ["80", "443/tcp", "8080 x", "9"]);
    assert_eq!(used.into_iter().collect::<Vec<_>>(), ["P", "Q"]);
    // BuildKit loses "a" here (a shared buffer); we do not.
    let (w, _) = x.words("a${Q:-b}", &|_| None).unwrap_or_default();
    assert_eq!(w, ["ab"]);
}

#[test]
fn display_for_progress() {
    let x = Expander::new('\\');
    let env = env_of(&[("A", "a"), ("S", "s3cr3t")]);
    let get = |k: &str| env.get(k).cloned();
    assert_eq!(
        x.display("RUN echo $A \"$B\" '${C:-x}'", &get),
        "RUN echo a \"$B\" '${C:-x}'"
    );
    assert_eq!(
        x.display("RUN echo \"unterminated", &get),
        "RUN echo \"unterminated"
    );
}
