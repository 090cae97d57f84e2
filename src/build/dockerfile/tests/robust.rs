//! Random Dockerfile-like input must never panic: every entry point returns Ok or an error.

use std::collections::BTreeMap;
use std::path::Path;

use super::super::{parse, Expander};

const TOKENS: &[&str] = &[
    "FROM ",
    "RUN ",
    "COPY ",
    "ADD ",
    "ENV ",
    "ARG ",
    "LABEL ",
    "ONBUILD ",
    "HEALTHCHECK ",
    "CMD ",
    "ENTRYPOINT ",
    "SHELL ",
    "EXPOSE ",
    "VOLUME ",
    "USER ",
    "WORKDIR ",
    "STOPSIGNAL ",
    "MAINTAINER ",
    "AS ",
    "as ",
    "--mount=",
    "--from=",
    "--chown=",
    "--platform=",
    "--interval=",
    "--retries=",
    "--network=",
    "--link",
    "--device=",
    "required,",
    "\\ \n",
    "--",
    "type=cache,",
    "type=secret,",
    "target=",
    "from=",
    ",",
    "\\\n",
    "\\",
    "`",
    "\n",
    "\n\n",
    "<<EOF",
    "<<-'E'",
    "<<\"X\"",
    "EOF\n",
    "E\n",
    "X\n",
    "\tE\n",
    "${",
    "}",
    ":-",
    ":+",
    ":?",
    "#",
    "##",
    "%",
    "%%",
    "/",
    "//",
    "$",
    "$A",
    "${A}",
    "\"",
    "'",
    "[",
    "]",
    "\"a\",",
    "\"b\"",
    " ",
    "\t",
    "x",
    "1",
    "0",
    "=",
    "é",
    "\r",
    "# escape=`\n",
    "# syntax=x\n",
    "# check=skip=all\n",
    "*",
    "?",
    "NONE",
    "scratch",
    "stage",
    "5s",
    "-1",
    "{",
    "\u{feff}",
    "\u{a0}",
    "<",
    "<<",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_input_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let env: BTreeMap<String, String> = [("A", "a b*c"), ("B", ""), ("stage", "0")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let get = |k: &str| env.get(k).cloned();
    let mut parsed = 0;
    for _ in 0..3000 {
        let mut src = String::from(if rng.below(3) == 0 {
            ""
        } else {
            "FROM a AS stage\n"
        });
        for _ in 0..rng.below(40) + 1 {
            src.push_str(TOKENS[rng.below(TOKENS.len())]);
        }
        let x = Expander::new('\\');
        let _ = x.word(&src, &get);
        let _ = x.words(&src, &get);
        let _ = x.heredoc(&src, &get);
        let Ok(d) = parse(&src, Path::new("Dockerfile")) else {
            continue;
        };
        parsed += 1;
        let _ = d.target(None);
        let _ = d.target(Some("stage"));
        let _ = d.plan(None, &get);
        let _ = d.meta_values(&get, &BTreeMap::new());
        let x = Expander::new(d.directives.escape);
        for st in &d.stages {
            for ins in &st.instructions {
                let _ = ins.expand(&x, &get);
            }
        }
    }
    assert!(parsed > 50, "only {parsed} inputs parsed");
}
