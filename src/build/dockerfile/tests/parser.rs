//! The line parser: BuildKit's parser test files, directives, continuations, JSON, flags.

use super::super::ast::{self, parse_words};
use super::upstream::{LINE_FILE, NEGATIVE_FILES, PARSER_FILES};
use super::{df, parse_err};

fn dump(src: &str) -> String {
    let ast = ast::parse(src).unwrap_or_else(|p| panic!("{}:{}: {}", p.line, p.column, p.message));
    ast.nodes
        .iter()
        .map(|n| format!("({})\n", n.dump()))
        .collect()
}

#[test]
fn upstream_parser_files() {
    for (name, src, expected) in PARSER_FILES {
        assert_eq!(dump(src), *expected, "testfiles/{name}");
    }
    assert!(PARSER_FILES.len() >= 30);
}

#[test]
fn upstream_negative_files() {
    for (name, src) in NEGATIVE_FILES {
        let e = parse_err(src);
        assert!(e.starts_with("Dockerfile:"), "{name}: {e}");
    }
}

#[test]
fn line_numbers() {
    let ast = ast::parse(LINE_FILE).unwrap_or_else(|p| panic!("{}", p.message));
    let lines: Vec<(usize, usize)> = ast
        .nodes
        .iter()
        .map(|n| (n.start_line, n.end_line))
        .collect();
    assert_eq!(lines, [(5, 5), (11, 12), (17, 31)]);
}

#[test]
fn words() {
    let cases: &[(&str, &[&str])] = &[
        ("foo", &["foo"]),
        ("foo bar", &["foo", "bar"]),
        ("foo\\ bar", &["foo\\ bar"]),
        ("foo=bar", &["foo=bar"]),
        ("foo bar 'abc xyz'", &["foo", "bar", "'abc xyz'"]),
        ("foo bar \"abc xyz\"", &["foo", "bar", "\"abc xyz\""]),
        ("àöû", &["àöû"]),
        ("föo bàr \"âbc xÿz\"", &["föo", "bàr", "\"âbc xÿz\""]),
        ("a\"b c\"d e", &["a\"b c\"d", "e"]),
        ("''", &["''"]),
        ("a\\", &["a"]),
    ];
    for (input, expected) in cases {
        assert_eq!(parse_words(input, '\\'), *expected, "{input}");
    }
}

#[test]
fn empty_continuation_lines_warn() {
    let d = df("
FROM alpine:3.6

RUN valid \\
    continuation

RUN something \\

    following \\

    more

RUN another \\

    thing

RUN non-indented \\
# this is a comment
   after-comment

RUN indented \\
    # this is an indented comment
    comment
\t");
    let w: Vec<_> = d
        .warnings
        .iter()
        .filter(|w| w.rule == "NoEmptyContinuation")
        .collect();
    assert_eq!(w.len(), 2, "{:?}", d.warnings);
    assert_eq!(w[0].line, 11);
    assert_eq!(w[1].line, 15);
    let runs: Vec<&str> = d.stages[0]
        .instructions
        .iter()
        .map(|i| i.original.as_str())
        .collect();
    assert_eq!(
        runs,
        [
            "RUN valid     continuation",
            "RUN something     following     more",
            "RUN another     thing",
            "RUN non-indented    after-comment",
            "RUN indented     comment"
        ]
    );
}

#[test]
fn long_lines() {
    let label = "a".repeat(65536);
    let e = parse_err(&format!("\n\t\tFROM image\n\t\tLABEL test={label}\n"));
    assert_eq!(
        e,
        "Dockerfile:3:1: dockerfile line greater than max allowed size of 65535"
    );
}

#[test]
fn directives() {
    let d = df("#escape=`\n# key = FOO bar\n# smth\nFROM x\n");
    assert_eq!(d.directives.escape, '`');
    let d = df("# EScape=`\n# syntax = docker/dockerfile:1 // opts\n#check=skip=all\nFROM x\n");
    assert_eq!(d.directives.escape, '`');
    assert_eq!(
        d.directives.syntax.as_deref(),
        Some("docker/dockerfile:1 // opts")
    );
    assert_eq!(d.directives.check.as_deref(), Some("skip=all"));
    // Not at the top: an ordinary comment.
    let d = df("FROM x\n# escape=`\nRUN a \\\n b\n");
    assert_eq!(d.directives.escape, '\\');
    assert_eq!(d.stages[0].instructions[0].original, "RUN a  b");
    let d = df("\n# escape=`\nFROM x\n");
    assert_eq!(d.directives.escape, '\\');
    let d = df("# unknown=1\n# escape=`\nFROM x\n");
    assert_eq!(d.directives.escape, '\\');
    let d = df("# this is a comment\n# escape=`\nFROM x\n");
    assert_eq!(d.directives.escape, '\\');
    // A shebang line ends the directives (BuildKit's parser; only its syntax detection skips it).
    let d = df("#!/usr/bin/env buildctl\n# escape=`\nFROM x\n");
    assert_eq!(d.directives.escape, '\\');
    // Leading whitespace before a directive is allowed, and spaces around `=`.
    let d = df("  #  escape  =  `  \nFROM x\n");
    assert_eq!(d.directives.escape, '`');
    // A byte-order mark is not part of the first line.
    let d = df("\u{feff}# escape=`\nFROM x\n");
    assert_eq!(d.directives.escape, '`');
    assert_eq!(
        parse_err("# escape=`\n# escape=\\\nFROM x\n"),
        "Dockerfile:2:1: only one escape parser directive can be used"
    );
    assert_eq!(
        parse_err("# escape=x\nFROM x\n"),
        "Dockerfile:1:1: invalid escape token 'x' does not match ` or \\"
    );
    assert_eq!(
        parse_err("# syntax=a\n# SYNTAX=b\nFROM x\n"),
        "Dockerfile:2:1: only one syntax parser directive can be used"
    );
}

#[test]
fn backtick_continuations() {
    let d =
        df("# escape=`\nFROM windows\nRUN dir c:\\ `\n  && echo `\n  done\nCOPY a\\b c:\\d\\\n");
    let ins = &d.stages[0].instructions;
    assert_eq!(ins[0].original, "RUN dir c:\\   && echo   done");
    assert_eq!(ins[1].original, "COPY a\\b c:\\d\\");
    assert_eq!((ins[0].location.line, ins[0].end_line), (3, 5));
}

#[test]
fn continuation_edge_cases() {
    let cases: &[(&str, &str)] = &[
        ("FROM x\nRUN a \\  \t\n b\n", "RUN a  b"),
        ("FROM x\nRUN a \\\\\nRUN b\n", "RUN a \\\\"),
        ("FROM x\nRUN a \\\n\\\n b\n", "RUN a  b"),
        ("FROM x\nRUN a \\\n  # c \\\n b\n", "RUN a  b"),
        ("FROM x\nRUN a \\", "RUN a"),
        ("FROM x\nRUN a#b\n", "RUN a#b"),
        ("FROM x\n  RUN a  \n", "RUN a"),
        ("FROM x\r\nRUN a \\\r\n b\r\n", "RUN a  b"),
    ];
    for (src, want) in cases {
        let d = df(src);
        assert_eq!(d.stages[0].instructions[0].original, *want, "{src:?}");
    }
}

#[test]
fn json_arrays() {
    let valid: &[(&str, &[&str])] = &[
        ("[]", &[]),
        ("[\"\"]", &[""]),
        ("[\"a\"]", &["a"]),
        ("[\"a\",\"b\"]", &["a", "b"]),
        ("[ \"a\", \"b\" ]", &["a", "b"]),
        ("[\t\"a\",\t\"b\"\t]", &["a", "b"]),
        ("\t[\t\"a\",\t\"b\"\t]\t", &["a", "b"]),
        (
            "[\"abc 123\", \"♥\", \"☃\", \"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0000\"]",
            &["abc 123", "♥", "☃", "\" \\ / \u{8} \u{c} \n \r \t \u{0}"],
        ),
    ];
    for (json, want) in valid {
        let d = df(&format!("FROM x\nCMD {json}\n"));
        match &d.stages[0].instructions[0].kind {
            super::super::Kind::Cmd(super::super::CommandLine::Exec(v)) => {
                assert_eq!(v, want, "{json}")
            }
            k => panic!("{json}: {k:?}"),
        }
    }
    for json in [
        "[\"a\",42,\"b\"]",
        "[\"a\",123.456,\"b\"]",
        "[\"a\",{},\"b\"]",
        "[\"a\",{\"c\": \"d\"},\"b\"]",
        "[\"a\",[\"c\"],\"b\"]",
        "[\"a\",true,\"b\"]",
        "[\"a\",false,\"b\"]",
        "[\"a\",null,\"b\"]",
    ] {
        assert_eq!(
            parse_err(&format!("FROM x\nCMD {json}\n")),
            "Dockerfile:2:1: when using JSON array syntax, arrays must be comprised of strings only",
            "{json}"
        );
    }
    // Not JSON: shell form, as written.
    for text in [
        "[\"a\"",
        "['a']",
        "[\"a\" \"b\"]",
        "[\"a\"] x",
        "[ \"a\\q\" ]",
    ] {
        let d = df(&format!("FROM x\nCMD {text}\n"));
        assert_eq!(
            d.stages[0].instructions[0].kind,
            super::super::Kind::Cmd(super::super::CommandLine::Shell(text.to_string())),
            "{text}"
        );
    }
}

#[test]
fn flags_are_extracted() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("COPY --from=a b c", &["--from=a"], &["b", "c"]),
        ("COPY --from=\"a b\" c d", &["--from=a b"], &["c", "d"]),
        ("COPY --from='a' c d", &["--from=a"], &["c", "d"]),
        ("COPY --chown=1\\ 2 c d", &["--chown=1 2"], &["c", "d"]),
        ("COPY -- --x d", &[], &["--x", "d"]),
        (
            "COPY --link --parents a b",
            &["--link", "--parents"],
            &["a", "b"],
        ),
        ("COPY -a b", &[], &["-a", "b"]),
        ("COPY --a=\"\" b c", &["--a="], &["b", "c"]),
        (
            "RUN --mount=type=bind,source=\"a,b\" x",
            &["--mount=type=bind,source=a,b"],
            &["x"],
        ),
        ("RUN --network=none", &["--network=none"], &[]),
    ];
    for (line, flags, args) in cases {
        let n = ast::node_from_line(line, '\\', 0).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(n.flags, *flags, "{line}");
        assert_eq!(n.args, *args, "{line}");
    }
}

#[test]
fn env_and_label_forms() {
    let cases: &[(&str, &[&str])] = &[
        ("ENV a b", &["a", "b", ""]),
        ("ENV a b c  d", &["a", "b c  d", ""]),
        ("ENV a=b", &["a", "b", "="]),
        ("ENV a=b c=\"d e\"", &["a", "b", "=", "c", "\"d e\"", "="]),
        ("ENV a=", &["a", "", "="]),
        ("LABEL \"x y\"=z", &["\"x y\"", "z", "="]),
        ("ENV a=b\\ c", &["a", "b\\ c", "="]),
    ];
    for (line, args) in cases {
        let n = ast::node_from_line(line, '\\', 0).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(n.args, *args, "{line}");
    }
    for (line, msg) in [
        ("ENV a", "ENV must have two arguments"),
        ("LABEL a", "LABEL must have two arguments"),
        (
            "ENV a=b c",
            "Syntax error - can't find = in \"c\". Must be of the form: name=value",
        ),
    ] {
        assert_eq!(
            ast::node_from_line(line, '\\', 0).err().as_deref(),
            Some(msg),
            "{line}"
        );
    }
}

#[test]
fn columns_and_original() {
    let d = df("FROM x\n   RUN  a \\\n  b\n\tUSER me # not a comment\n");
    let ins = &d.stages[0].instructions;
    assert_eq!(
        (
            ins[0].location.line,
            ins[0].location.column,
            ins[0].end_line
        ),
        (2, 4, 3)
    );
    assert_eq!(ins[0].original, "RUN  a   b");
    assert_eq!((ins[1].location.line, ins[1].location.column), (4, 2));
    assert_eq!(ins[1].original, "USER me # not a comment");
    assert_eq!(ins[0].location.to_string(), "Dockerfile:2:4");
}

#[test]
fn empty_files() {
    for src in ["", "\n\n", "# only\n# comments\n", "  \n\t\n"] {
        let e = parse_err(src);
        assert!(e.ends_with("file with no instructions"), "{src:?}: {e}");
    }
}

#[test]
fn limits() {
    let many = "FROM x\n".to_string() + &"RUN a\n".repeat(10_001);
    assert!(parse_err(&many).ends_with("more than 10000 instructions"));
    let big = "#".repeat(60_000) + "\n";
    let huge = big.repeat(80);
    assert!(parse_err(&huge).contains("dockerfile larger than"));
    let mut long = String::from("FROM x\nRUN a");
    for _ in 0..20 {
        long.push_str(" \\\n");
        long.push_str(&"b".repeat(60_000));
    }
    assert!(parse_err(&long).contains("instruction longer than"));
    let nested = format!("FROM x\n{}RUN a\n", "ONBUILD ".repeat(5_000));
    assert!(parse_err(&nested).contains("Chaining ONBUILD"));
}
