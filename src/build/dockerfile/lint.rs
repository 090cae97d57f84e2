//! BuildKit's build checks that the text alone decides (`frontend/dockerfile/linter` rules),
//! and the `# check=` directive that skips them or makes them errors.
//!
//! Checks that need the build's state (UndefinedVar, UndefinedArgInFrom, WorkdirRelativePath,
//! ExposeProtoCasing/ExposeInvalidFormat on expanded ports, InvalidBaseImagePlatform,
//! RedundantTargetPlatform, CopyIgnoredFile) are the executor's.

use super::ast::Node;
use super::{Directives, Dockerfile, Kind, Stage, Warning};

/// The `# check=` directive: `skip=Rule1,Rule2` or `skip=all`; `error=true`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckConfig {
    pub skip: Vec<String>,
    pub skip_all: bool,
    /// Warnings fail the build.
    pub error: bool,
    pub experimental: Vec<String>,
    pub experimental_all: bool,
}

impl CheckConfig {
    pub fn skips(&self, rule: &str) -> bool {
        self.skip_all || self.skip.iter().any(|r| r == rule)
    }
}

fn list(v: &str) -> (bool, Vec<String>) {
    let v = v.trim();
    if v == "all" {
        (true, Vec::new())
    } else {
        (false, v.split(',').map(|r| r.trim().to_string()).collect())
    }
}

impl Directives {
    /// The `# check=` directive parsed as BuildKit's `ParseLintOptions`.
    pub fn check_config(&self) -> Result<CheckConfig, String> {
        let mut cfg = CheckConfig::default();
        // As BuildKit's ParseDirective, only the value's first word counts (`skip=all // x`).
        let first = self
            .check
            .as_deref()
            .map(|c| c.split(' ').next().unwrap_or_default());
        let Some(s) = first.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(cfg);
        };
        for p in s.splitn(3, ';') {
            let Some((k, v)) = p.split_once('=') else {
                return Err(format!("invalid check option {}", super::go_quote(p)));
            };
            match k.trim() {
                "skip" => (cfg.skip_all, cfg.skip) = list(v),
                "experimental" => (cfg.experimental_all, cfg.experimental) = list(v),
                "error" => {
                    cfg.error = match v.trim() {
                        "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
                        "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
                        _ => {
                            return Err(format!(
                                "failed to parse check option {}",
                                super::go_quote(p)
                            ))
                        }
                    }
                }
                other => return Err(format!("invalid check option {}", super::go_quote(other))),
            }
        }
        Ok(cfg)
    }
}

fn warn(out: &mut Vec<Warning>, rule: &str, url: &str, line: usize, message: String) {
    out.push(Warning {
        rule: rule.to_string(),
        message,
        url: format!("https://docs.docker.com/go/dockerfile/rule/{url}/"),
        line,
    });
}

fn self_consistent(s: &str) -> bool {
    s == s.to_lowercase() || s == s.to_uppercase()
}

fn is_secret_key(key: &str) -> bool {
    // BuildKit's `(?i)(?:_|^)(?:token)(?:_|$)`: one `_`-separated word of the name.
    const DENY: &[&str] = &[
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    const ALLOW: &[&str] = &["public", "file", "version"];
    let lower = key.to_lowercase();
    let has = |tokens: &[&str]| lower.split('_').any(|w| tokens.contains(&w));
    has(DENY) && !has(ALLOW)
}

/// Adds the text-only checks to `df.warnings` (sorted by line) and drops skipped rules.
pub(crate) fn check(nodes: &[Node], df: &mut Dockerfile) -> Result<(), String> {
    let cfg = df.directives.check_config()?;
    let mut out = std::mem::take(&mut df.warnings);

    // Instruction casing over FROMs and stage instructions (not meta ARGs), as BuildKit.
    let first_from = nodes
        .iter()
        .position(|n| n.value.eq_ignore_ascii_case("from"))
        .unwrap_or(nodes.len());
    let staged = nodes.get(first_from..).unwrap_or_default();
    let (mut lower, mut upper) = (0, 0);
    for n in staged {
        if self_consistent(&n.value) {
            if n.value == n.value.to_lowercase() {
                lower += 1;
            } else {
                upper += 1;
            }
        }
    }
    let majority_lower = lower > upper;
    for n in staged {
        let wrong = if majority_lower {
            (n.value != n.value.to_lowercase()).then_some("lowercase")
        } else {
            (n.value != n.value.to_uppercase()).then_some("uppercase")
        };
        if let Some(casing) = wrong {
            warn(
                &mut out,
                "ConsistentInstructionCasing",
                "consistent-instruction-casing",
                n.start_line,
                format!(
                    "Command '{}' should match the case of the command majority ({casing})",
                    n.value
                ),
            );
        }
    }

    // FROM ... AS name.
    let mut seen: Vec<&str> = Vec::new();
    for (n, st) in staged
        .iter()
        .filter(|n| n.value.eq_ignore_ascii_case("from"))
        .zip(&df.stages)
    {
        if let [_, as_kw, name] = n.args.as_slice() {
            if *name != name.to_lowercase() {
                warn(
                    &mut out,
                    "StageNameCasing",
                    "stage-name-casing",
                    n.start_line,
                    format!("Stage name '{name}' should be lowercase"),
                );
            }
            let from = &n.value;
            let mismatch = if *from == from.to_lowercase() {
                *as_kw != as_kw.to_lowercase()
            } else if *from == from.to_uppercase() {
                *as_kw != as_kw.to_uppercase()
            } else {
                false
            };
            if mismatch {
                warn(
                    &mut out,
                    "FromAsCasing",
                    "from-as-casing",
                    n.start_line,
                    format!("'{as_kw}' and '{from}' keywords' casing do not match"),
                );
            }
        }
        if let Some(name) = st.name.as_deref() {
            if name == "context" || name == "scratch" {
                warn(
                    &mut out,
                    "ReservedStageName",
                    "reserved-stage-name",
                    st.location.line,
                    format!(
                        "Stage name should not use the same name as reserved stage {}",
                        super::go_quote(name)
                    ),
                );
            }
            if seen.contains(&name) {
                warn(
                    &mut out,
                    "DuplicateStageName",
                    "duplicate-stage-name",
                    st.location.line,
                    format!(
                        "Duplicate stage name {}, stage names should be unique",
                        super::go_quote(name)
                    ),
                );
            }
            seen.push(name);
        }
    }

    // `ENV k v`: the line parser marks the legacy form with an empty delimiter.
    for n in staged {
        let is_kv = n.value.eq_ignore_ascii_case("env") || n.value.eq_ignore_ascii_case("label");
        if is_kv && n.args.len() == 3 && n.args.get(2).is_some_and(String::is_empty) {
            warn(
                &mut out,
                "LegacyKeyValueFormat",
                "legacy-key-value-format",
                n.start_line,
                format!(
                    "\"{0} key=value\" should be used instead of legacy \"{0} key value\" format",
                    n.value
                ),
            );
        }
    }

    for ins in &df.meta_arg_instructions {
        if let Kind::Arg(decls) = &ins.kind {
            for d in decls {
                secret(&mut out, "ARG", &d.name, ins.location.line);
            }
        }
    }
    for (i, st) in df.stages.iter().enumerate() {
        stage_checks(&mut out, &df.stages, i, st);
    }

    out.retain(|w| !cfg.skips(&w.rule));
    out.sort_by_key(|w| w.line);
    df.warnings = out;
    Ok(())
}

fn secret(out: &mut Vec<Warning>, instruction: &str, key: &str, line: usize) {
    if is_secret_key(key) {
        warn(
            out,
            "SecretsUsedInArgOrEnv",
            "secrets-used-in-arg-or-env",
            line,
            format!(
                "Do not use ARG or ENV instructions for sensitive data ({instruction} {})",
                super::go_quote(key)
            ),
        );
    }
}

/// Whether a stage or the stages it is built FROM set a SHELL before instruction `upto`.
fn has_shell(stages: &[Stage], i: usize, upto: usize) -> bool {
    let mut idx = i;
    let mut limit = upto;
    for _ in 0..stages.len() {
        let Some(st) = stages.get(idx) else {
            return false;
        };
        if st
            .instructions
            .iter()
            .take(limit)
            .any(|ins| matches!(ins.kind, Kind::Shell(_)))
        {
            return true;
        }
        // The base, if it is an earlier stage by that exact (unexpanded) name.
        match stages[..idx]
            .iter()
            .rev()
            .find(|s| s.name.as_deref() == Some(st.base.as_str()))
        {
            Some(parent) => {
                idx = parent.index;
                limit = usize::MAX;
            }
            None => return false,
        }
    }
    false
}

fn stage_checks(out: &mut Vec<Warning>, stages: &[Stage], i: usize, st: &Stage) {
    let mut last: [Option<usize>; 3] = [None; 3];
    for (k, ins) in st.instructions.iter().enumerate() {
        let line = ins.location.line;
        let slot = match &ins.kind {
            Kind::Cmd(_) => Some(0),
            Kind::Entrypoint(_) => Some(1),
            Kind::Healthcheck(_) => Some(2),
            _ => None,
        };
        if let Some(slot) = slot {
            // BuildKit reports the earlier instruction, the one that is ignored.
            if let Some(prev) = last[slot] {
                warn(
                    out,
                    "MultipleInstructionsDisallowed",
                    "multiple-instructions-disallowed",
                    prev,
                    format!(
                        "Multiple {} instructions should not be used in the same stage because only the last one will be used",
                        ins.keyword
                    ),
                );
            }
            last[slot] = Some(line);
        }
        match &ins.kind {
            Kind::Cmd(super::CommandLine::Shell(_))
            | Kind::Entrypoint(super::CommandLine::Shell(_))
                if !has_shell(stages, i, k) =>
            {
                warn(
                    out,
                    "JSONArgsRecommended",
                    "json-args-recommended",
                    line,
                    format!(
                        "JSON arguments recommended for {} to prevent unintended behavior related to OS signals",
                        ins.keyword
                    ),
                );
            }
            Kind::Maintainer(_) => warn(
                out,
                "MaintainerDeprecated",
                "maintainer-deprecated",
                line,
                "Maintainer instruction is deprecated in favor of using label".to_string(),
            ),
            Kind::Env(pairs) | Kind::Label(pairs) => {
                let is_env = matches!(ins.kind, Kind::Env(_));
                if is_env {
                    for (k, _) in pairs {
                        secret(out, "ENV", k, line);
                    }
                }
            }
            Kind::Arg(decls) => {
                for d in decls {
                    secret(out, "ARG", &d.name, line);
                }
            }
            _ => {}
        }
    }
}
