//! Heredocs: BuildKit's `parser_heredoc_test.go` and `instructions/parse_heredoc_test.go` cases.

use super::super::ast::{self, parse_heredoc};
use super::super::{CommandLine, Heredoc, Kind};
use super::{df, parse_err};

fn h(name: &str, content: &str, expand: bool, chomp: bool, fd: u32) -> Heredoc {
    Heredoc {
        name: name.into(),
        content: content.into(),
        expand,
        chomp,
        fd,
    }
}

#[test]
fn extracts_heredocs() {
    let src = "
FROM alpine:3.6
ENV NAME=me
RUN ls
USER <<INVALID
INVALID
RUN <<EMPTY
EMPTY
RUN 3<<EMPTY2
EMPTY2
RUN \"<<NOHEREDOC\"
RUN <<INDENT
\tfoo
\tbar
INDENT
RUN <<-UNINDENT
\tbaz
\tquux
UNINDENT
RUN <<-UNINDENT2
\tbaz
\tquux
\tUNINDENT2
RUN <<-EXPAND
\texpand $NAME
EXPAND
RUN <<-'NOEXPAND'
\tdon't expand $NAME
NOEXPAND
RUN <<COPY
echo hello world
echo foo bar
COPY
RUN <<COMMENT
# internal comment
echo hello world
echo foo bar # trailing comment
COMMENT
RUN --mount=type=cache,target=/foo <<MOUNT
echo hello
MOUNT
COPY <<FILE1 <<FILE2 /dest
content 1
FILE1
content 2
FILE2
COPY <<EOF /quotes
\"foo\"
'bar'
EOF
COPY <<X <<Y /dest
Y
X
X
Y
RUN <<COMPLEX python3
print('hello world')
COMPLEX
COPY <<file.txt /dest
hello world
file.txt
RUN <<eo'f'
echo foo
eof
RUN <<eo\\'f
echo foo
eo'f
RUN <<'e'o\\'f
echo foo
eo'f
RUN <<'one two'
echo bar
one two
RUN <<$EOF
$EOF
RUN <<  EOF
EOF
RUN <<  EOF  > foo
EOF
\t";
    let expected: Vec<Vec<Heredoc>> = vec![
        vec![],
        vec![],
        vec![],
        vec![],
        vec![h("EMPTY", "", true, false, 0)],
        vec![h("EMPTY2", "", true, false, 3)],
        vec![],
        vec![h("INDENT", "\tfoo\n\tbar\n", true, false, 0)],
        vec![h("UNINDENT", "\tbaz\n\tquux\n", true, true, 0)],
        vec![h("UNINDENT2", "\tbaz\n\tquux\n", true, true, 0)],
        vec![h("EXPAND", "\texpand $NAME\n", true, true, 0)],
        vec![h("NOEXPAND", "\tdon't expand $NAME\n", false, true, 0)],
        vec![h(
            "COPY",
            "echo hello world\necho foo bar\n",
            true,
            false,
            0,
        )],
        vec![h(
            "COMMENT",
            "# internal comment\necho hello world\necho foo bar # trailing comment\n",
            true,
            false,
            0,
        )],
        vec![h("MOUNT", "echo hello\n", true, false, 0)],
        vec![
            h("FILE1", "content 1\n", true, false, 0),
            h("FILE2", "content 2\n", true, false, 0),
        ],
        vec![h("EOF", "\"foo\"\n'bar'\n", true, false, 0)],
        vec![h("X", "Y\n", true, false, 0), h("Y", "X\n", true, false, 0)],
        vec![h("COMPLEX", "print('hello world')\n", true, false, 0)],
        vec![h("file.txt", "hello world\n", true, false, 0)],
        vec![h("eof", "echo foo\n", false, false, 0)],
        vec![h("eo'f", "echo foo\n", true, false, 0)],
        vec![h("eo'f", "echo foo\n", false, false, 0)],
        vec![h("one two", "echo bar\n", false, false, 0)],
        vec![h("$EOF", "", true, false, 0)],
        vec![h("EOF", "", true, false, 0)],
        vec![h("EOF", "", true, false, 0)],
    ];
    let ast = ast::parse(src).unwrap_or_else(|p| panic!("{}: {}", p.line, p.message));
    assert_eq!(ast.nodes.len(), expected.len() + 1);
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(
            &ast.nodes[i + 1].heredocs,
            want,
            "instruction {} ({})",
            i + 1,
            ast.nodes[i + 1].original
        );
    }
}

#[test]
fn json_forms_have_no_heredocs() {
    let ast = ast::parse("FROM alpine:3.6\nRUN [\"whoami\"]\nRUN [\"<<EOF\"]\nRUN [\"<<'EOF'\"]\n")
        .unwrap_or_else(|p| panic!("{}", p.message));
    for n in &ast.nodes[1..] {
        assert!(n.heredocs.is_empty(), "{}", n.original);
    }
}

#[test]
fn chomp() {
    assert_eq!(
        h("E", "\thello\n\tworld\n", true, true, 0).body(),
        "hello\nworld\n"
    );
    assert_eq!(
        h("E", "\t\thello\n  \tworld", true, true, 0).body(),
        "hello\n  \tworld"
    );
    assert_eq!(h("E", "\thello\n", true, false, 0).body(), "\thello\n");
}

#[test]
fn heredoc_words() {
    for src in [
        "<<EOF",
        "<<'EOF'",
        "<<\"EOF\"",
        "<<-EOF",
        "<<-'EOF'",
        "<<-\"EOF\"",
        "<<EO\"F\"",
        "<< EOF",
        "<<- EOF",
    ] {
        let got = parse_heredoc(src);
        assert_eq!(
            got.as_ref()
                .ok()
                .and_then(|h| h.as_ref())
                .map(|h| h.name.as_str()),
            Some("EOF"),
            "{src}"
        );
    }
    for src in ["<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""] {
        assert!(parse_heredoc(src).is_err(), "{src}");
    }
    for src in ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"] {
        assert_eq!(parse_heredoc(src), Ok(None), "{src}");
    }
}

#[test]
fn heredoc_names_in_lines() {
    let cases: &[(&str, &[&str])] = &[
        ("RUN <<EOF", &["EOF"]),
        ("RUN <<-EOF", &["EOF"]),
        // As in BuildKit, the lexer splits `<<-` from the delimiter: no heredoc.
        ("RUN <<- EOF", &[]),
        ("RUN << -EOF", &["-EOF"]),
        ("RUN <<'EOF'", &["EOF"]),
        ("RUN 4<<EOF", &["EOF"]),
        ("RUN <<EOF <<EOF2", &["EOF", "EOF2"]),
        ("RUN '<<EOF'", &[]),
        ("RUN \"<<EOF\"", &[]),
    ];
    for (line, names) in cases {
        let mut src = format!("FROM x\n{line}\n");
        for n in *names {
            src.push_str(&format!("{n}\n"));
        }
        let ast = ast::parse(&src).unwrap_or_else(|p| panic!("{line}: {}", p.message));
        let got: Vec<&str> = ast.nodes[1]
            .heredocs
            .iter()
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(got, *names, "{line}");
    }
}

#[test]
fn run_and_copy_heredocs() {
    let src = "FROM x
RUN <<EOF
echo hi
EOF
RUN python3 <<EOF > /out
print(1)
EOF
COPY <<-EOT /etc/a
\tline
EOT
ADD --chmod=755 <<run.sh <<'x' /bin/
#!/bin/sh
run.sh
$y
x
RUN echo done
";
    let d = df(src);
    let ins = &d.stages[0].instructions;
    assert_eq!(ins.len(), 5);
    match &ins[0].kind {
        Kind::Run(r) => {
            assert_eq!(r.command, CommandLine::Shell("<<EOF".into()));
            assert_eq!(r.heredocs, [h("EOF", "echo hi\n", true, false, 0)]);
        }
        k => panic!("{k:?}"),
    }
    assert_eq!((ins[0].location.line, ins[0].end_line), (2, 4));
    match &ins[1].kind {
        Kind::Run(r) => assert_eq!(r.command, CommandLine::Shell("python3 <<EOF > /out".into())),
        k => panic!("{k:?}"),
    }
    match &ins[2].kind {
        Kind::Copy(c) => {
            assert!(c.sources.is_empty());
            assert_eq!(c.dest, "/etc/a");
            assert_eq!(c.heredocs, [h("EOT", "\tline\n", true, true, 0)]);
            assert_eq!(c.heredocs[0].body(), "line\n");
        }
        k => panic!("{k:?}"),
    }
    match &ins[3].kind {
        Kind::Add(a) => {
            assert_eq!(a.chmod.as_deref(), Some("755"));
            let names: Vec<(&str, bool)> = a
                .heredocs
                .iter()
                .map(|h| (h.name.as_str(), h.expand))
                .collect();
            assert_eq!(names, [("run.sh", true), ("x", false)]);
            assert_eq!(a.heredocs[0].content, "#!/bin/sh\n");
            assert_eq!(a.heredocs[1].content, "$y\n");
        }
        k => panic!("{k:?}"),
    }
    assert_eq!(ins[4].location.line, 16);
    assert_eq!(
        h("E", "first line\nsecond\n", true, false, 0).summary(),
        "first line..."
    );
    assert_eq!(h("E", "  only\n", true, false, 0).summary(), "only");
}

#[test]
fn heredoc_errors() {
    assert_eq!(
        parse_err("FROM x\nRUN <<EOF\necho\n"),
        "Dockerfile:2:1: unterminated heredoc (no line \"EOF\" after it)"
    );
    assert_eq!(
        parse_err("FROM x\nCOPY a <<EOF\nx\nEOF\n"),
        "Dockerfile:2:1: COPY cannot accept a heredoc as a destination"
    );
    // Not a heredoc instruction: `<<` is an ordinary argument.
    let d = df("FROM x\nUSER <<EOF\n");
    assert_eq!(d.stages[0].instructions.len(), 1);
    assert!(parse_err("FROM x\nUSER <<EOF\nEOF\n").contains("unknown instruction: EOF"));
}

#[test]
fn onbuild_heredocs() {
    let d = df("FROM x\nONBUILD RUN <<EOF\necho hi\nEOF\n");
    assert_eq!(
        d.stages[0].instructions[0].kind,
        Kind::OnBuild("RUN <<EOF\necho hi\nEOF".into())
    );
}

/// `instructions/parse_heredoc_test.go` `TestCopyHeredoc`: (Dockerfile line(s), dest, paths,
/// heredoc sources as (name, body, expand)).
#[test]
fn copy_heredoc_sources() {
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a [&'a str],
        &'a [(&'a str, &'a str, bool)],
    );
    let cases: &[Case] = &[
        ("COPY /foo /bar", "/bar", &["/foo"], &[]),
        ("COPY <<EOF /bar\nEOF", "/bar", &[], &[("EOF", "", true)]),
        (
            "COPY <<EOF /bar\nTESTING\nEOF",
            "/bar",
            &[],
            &[("EOF", "TESTING\n", true)],
        ),
        (
            "COPY <<-EOF /bar\n\tTESTING\nEOF",
            "/bar",
            &[],
            &[("EOF", "TESTING\n", true)],
        ),
        (
            "COPY <<'EOF' /bar\nTESTING\nEOF",
            "/bar",
            &[],
            &[("EOF", "TESTING\n", false)],
        ),
        (
            "COPY <<EOF1 <<EOF2 /bar\nthis is the first file\nEOF1\nthis is the second file\nEOF2",
            "/bar",
            &[],
            &[
                ("EOF1", "this is the first file\n", true),
                ("EOF2", "this is the second file\n", true),
            ],
        ),
        (
            "COPY <<EOF foo.txt /bar\nthis is inline\nEOF",
            "/bar",
            &["foo.txt"],
            &[("EOF", "this is inline\n", true)],
        ),
        (
            "COPY <<EOF /quotes\n\"quotes\"\nEOF",
            "/quotes",
            &[],
            &[("EOF", "\"quotes\"\n", true)],
        ),
    ];
    for (src, dest, paths, docs) in cases {
        let d = df(&format!("FROM x\n{src}"));
        let Kind::Copy(c) = &d.stages[0].instructions[0].kind else {
            panic!("{src}")
        };
        assert_eq!(c.dest, *dest, "{src}");
        assert_eq!(c.sources, *paths, "{src}");
        let got: Vec<(String, String, bool)> = c
            .heredocs
            .iter()
            .map(|h| (h.name.clone(), h.body(), h.expand))
            .collect();
        let want: Vec<(String, String, bool)> = docs
            .iter()
            .map(|(n, b, e)| (n.to_string(), b.to_string(), *e))
            .collect();
        assert_eq!(got, want, "{src}");
    }
}

/// `TestRunHeredoc`: (Dockerfile, command, heredocs as (name, raw body, chomp)).
#[test]
fn run_heredoc_commands() {
    type Case<'a> = (&'a str, CommandLine, &'a [(&'a str, &'a str, bool)]);
    let cases: Vec<Case> = vec![
        (
            "RUN [\"ls\", \"/\"]",
            CommandLine::Exec(vec!["ls".into(), "/".into()]),
            &[],
        ),
        (
            "RUN [\"<<EOF\"]",
            CommandLine::Exec(vec!["<<EOF".into()]),
            &[],
        ),
        ("RUN ls /", CommandLine::Shell("ls /".into()), &[]),
        (
            "RUN <<EOF\nls /\nwhoami\nEOF",
            CommandLine::Shell("<<EOF".into()),
            &[("EOF", "ls /\nwhoami\n", false)],
        ),
        (
            "RUN <<'EOF' | python\nprint(\"hello\")\nprint(\"world\")\nEOF",
            CommandLine::Shell("<<'EOF' | python".into()),
            &[("EOF", "print(\"hello\")\nprint(\"world\")\n", false)],
        ),
        (
            "RUN <<-EOF\n\techo test\nEOF",
            CommandLine::Shell("<<-EOF".into()),
            &[("EOF", "\techo test\n", true)],
        ),
    ];
    for (src, command, docs) in cases {
        let d = df(&format!("FROM x\n{src}"));
        let Kind::Run(r) = &d.stages[0].instructions[0].kind else {
            panic!("{src}")
        };
        assert_eq!(r.command, command, "{src}");
        let got: Vec<(String, String, bool)> = r
            .heredocs
            .iter()
            .map(|h| (h.name.clone(), h.content.clone(), h.chomp))
            .collect();
        let want: Vec<(String, String, bool)> = docs
            .iter()
            .map(|(n, b, c)| (n.to_string(), b.to_string(), *c))
            .collect();
        assert_eq!(got, want, "{src}");
    }
}
