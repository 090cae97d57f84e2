//! Line-parser nodes → typed instructions and stages, with BuildKit's argument checks, flags
//! (`instructions/bflag.go`), `RUN --mount` parsing (`commands_runmount.go`) and error texts.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use regex::Regex;

use super::ast::{parse_heredoc, Ast, Node};
use super::{
    did_you_mean, go_quote, Add, ArgDecl, CommandLine, Copy, Dockerfile, DockerfileError,
    Healthcheck, Heredoc, Instruction, Kind, Location, MountKind, NetworkMode, Run, RunDevice,
    RunMount, Security, Sharing, Stage,
};

const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

pub(crate) fn build(ast: &Ast, file: &Arc<Path>) -> Result<Dockerfile, DockerfileError> {
    let escape = ast.directives.escape;
    let mut stages: Vec<Stage> = Vec::new();
    let mut meta_args = Vec::new();
    let mut meta_arg_instructions = Vec::new();
    for node in &ast.nodes {
        let loc = location(node, file);
        if node.value.eq_ignore_ascii_case("from") {
            let stage = parse_from(node, stages.len(), loc.clone()).map_err(|m| err(&loc, m))?;
            stages.push(stage);
            continue;
        }
        let ins = instruction(node, escape, file)?;
        match stages.last_mut() {
            Some(stage) => stage.instructions.push(ins),
            None => match &ins.kind {
                Kind::Arg(args) => {
                    meta_args.extend(args.iter().cloned());
                    meta_arg_instructions.push(ins);
                }
                _ => return Err(err(&loc, "no build stage in current context")),
            },
        }
    }
    Ok(Dockerfile {
        directives: ast.directives.clone(),
        meta_args,
        meta_arg_instructions,
        stages,
        warnings: ast.warnings.clone(),
    })
}

fn location(node: &Node, file: &Arc<Path>) -> Location {
    Location {
        file: file.clone(),
        line: node.start_line,
        column: node.column,
    }
}

fn err(loc: &Location, message: impl Into<String>) -> DockerfileError {
    DockerfileError::Parse {
        file: loc.file.to_path_buf(),
        line: loc.line,
        column: loc.column,
        message: message.into(),
    }
}

fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-' | '_' | '.'))
}

fn parse_from(node: &Node, index: usize, location: Location) -> Result<Stage, String> {
    let args = &node.args;
    let name = match args.as_slice() {
        [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            if !valid_stage_name(&lower) {
                return Err(format!(
                    "invalid name for build stage: {}, name can't start with a number or contain symbols",
                    go_quote(name)
                ));
            }
            Some(lower)
        }
        [_] => None,
        _ => return Err("FROM requires either one or three arguments".to_string()),
    };
    let flags = parse_flags(&node.flags, &[("platform", FlagType::Str)])?;
    let base = args.first().cloned().unwrap_or_default();
    Ok(Stage {
        index,
        name,
        base,
        platform: flags.string("platform").filter(|p| !p.is_empty()),
        location,
        original: node.original.trim().to_string(),
        instructions: Vec::new(),
    })
}

/// One non-FROM node as a typed instruction.
pub(crate) fn instruction(
    node: &Node,
    escape: char,
    file: &Arc<Path>,
) -> Result<Instruction, DockerfileError> {
    let loc = location(node, file);
    let kind = kind(node, escape).map_err(|m| err(&loc, m))?;
    Ok(Instruction {
        location: loc,
        end_line: node.end_line,
        original: node.original.trim().to_string(),
        keyword: node.value.clone(),
        kind,
    })
}

fn at_least_one(cmd: &str) -> String {
    format!("{cmd} requires at least one argument")
}

fn exactly_one(cmd: &str) -> String {
    format!("{cmd} requires exactly one argument")
}

fn one_arg(node: &Node, cmd: &str) -> Result<String, String> {
    match node.args.as_slice() {
        [a] => Ok(a.clone()),
        _ => Err(exactly_one(cmd)),
    }
}

/// BuildKit's `nodeArgs`: ONBUILD's arguments are its trigger's name and arguments.
fn node_args(node: &Node) -> Vec<String> {
    match &node.sub {
        Some(sub) => {
            let mut v = vec![sub.value.clone()];
            v.extend(node_args(sub));
            v
        }
        None => node.args.clone(),
    }
}

fn command_line(node: &Node) -> CommandLine {
    if node.json {
        CommandLine::Exec(node.args.clone())
    } else {
        CommandLine::Shell(node.args.join(" "))
    }
}

fn kind(node: &Node, escape: char) -> Result<Kind, String> {
    let lower = node.value.to_lowercase();
    let no_flags = |node: &Node| parse_flags(&node.flags, &[]).map(|_| ());
    Ok(match lower.as_str() {
        "env" => {
            no_flags(node)?;
            Kind::Env(kvps(&node.args, "ENV")?)
        }
        "maintainer" => {
            let m = one_arg(node, "MAINTAINER")?;
            no_flags(node)?;
            Kind::Maintainer(m)
        }
        "label" => {
            no_flags(node)?;
            Kind::Label(kvps(&node.args, "LABEL")?)
        }
        "add" => Kind::Add(parse_add(node)?),
        "copy" => Kind::Copy(parse_copy(node)?),
        "onbuild" => {
            let args = node_args(node);
            let Some(first) = args.first() else {
                return Err(at_least_one("ONBUILD"));
            };
            no_flags(node)?;
            let trigger = first.trim().to_uppercase();
            match trigger.as_str() {
                "ONBUILD" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_string())
                }
                "MAINTAINER" | "FROM" => {
                    return Err(format!("{trigger} isn't allowed as an ONBUILD trigger"))
                }
                _ => {}
            }
            static ONBUILD: LazyLock<Regex> = LazyLock::new(|| {
                #[allow(clippy::unwrap_used)]
                Regex::new(r"(?i)^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*").unwrap()
            });
            let mut expr = ONBUILD.replace(&node.original, "").into_owned();
            for h in &node.heredocs {
                expr.push('\n');
                expr.push_str(&h.content);
                expr.push_str(&h.name);
            }
            Kind::OnBuild(expr)
        }
        "workdir" => {
            let p = one_arg(node, "WORKDIR")?;
            no_flags(node)?;
            Kind::Workdir(p)
        }
        "run" => Kind::Run(parse_run(node)?),
        "cmd" => {
            no_flags(node)?;
            Kind::Cmd(command_line(node))
        }
        "entrypoint" => {
            no_flags(node)?;
            Kind::Entrypoint(command_line(node))
        }
        "healthcheck" => Kind::Healthcheck(parse_healthcheck(node)?),
        "expose" => {
            if node.args.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            no_flags(node)?;
            let mut ports = node.args.clone();
            // BuildKit sorts the (unexpanded) ports.
            ports.sort();
            Kind::Expose(ports)
        }
        "user" => {
            let u = one_arg(node, "USER")?;
            no_flags(node)?;
            Kind::User(u)
        }
        "volume" => {
            if node.args.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            no_flags(node)?;
            let mut vols = Vec::new();
            for v in &node.args {
                let v = v.trim();
                if v.is_empty() {
                    return Err("VOLUME specified can not be an empty string".to_string());
                }
                vols.push(v.to_string());
            }
            Kind::Volume(vols)
        }
        // BuildKit never parses STOPSIGNAL's or ARG's flags: they are ignored.
        "stopsignal" => Kind::StopSignal(one_arg(node, "STOPSIGNAL")?),
        "arg" => {
            if node.args.is_empty() {
                return Err(at_least_one("ARG"));
            }
            let mut decls = Vec::new();
            for a in &node.args {
                let decl = match a.split_once('=') {
                    Some(("", _)) => return Err("ARG names can not be blank".to_string()),
                    Some((k, v)) => ArgDecl {
                        name: k.to_string(),
                        default: Some(v.to_string()),
                    },
                    None => ArgDecl {
                        name: a.clone(),
                        default: None,
                    },
                };
                decls.push(decl);
            }
            Kind::Arg(decls)
        }
        "shell" => {
            no_flags(node)?;
            if node.args.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            if !node.json {
                return Err("SHELL requires the arguments to be in JSON form".to_string());
            }
            Kind::Shell(node.args.clone())
        }
        // Only an ONBUILD trigger can bring a FROM here (see `parse_trigger`).
        "from" => return Err("FROM isn't allowed as an ONBUILD trigger".to_string()),
        _ => {
            let _ = escape;
            return Err(format!(
                "unknown instruction: {}{}",
                node.value,
                did_you_mean(&node.value, INSTRUCTIONS, false)
            ));
        }
    })
}

/// ENV/LABEL arguments in threes (key, value, delimiter) as key/value pairs.
fn kvps(args: &[String], cmd: &str) -> Result<Vec<(String, String)>, String> {
    if args.is_empty() {
        return Err(at_least_one(cmd));
    }
    let chunks = args.chunks_exact(3);
    if !chunks.remainder().is_empty() {
        return Err(format!("Bad input to {cmd}, too many arguments"));
    }
    let mut out = Vec::new();
    for c in chunks {
        if let [k, v, _] = c {
            if k.is_empty() {
                return Err(format!("{cmd} names can not be blank"));
            }
            out.push((k.clone(), v.clone()));
        }
    }
    Ok(out)
}

struct SourcesAndDest {
    sources: Vec<String>,
    dest: String,
    heredocs: Vec<Heredoc>,
}

fn sources_and_dest(node: &Node, cmd: &str) -> Result<SourcesAndDest, String> {
    let Some((dest, srcs)) = node.args.split_last() else {
        return Err(no_destination(cmd));
    };
    if let Ok(Some(_)) = parse_heredoc(dest) {
        return Err(format!("{cmd} cannot accept a heredoc as a destination"));
    }
    let mut sources = Vec::new();
    let mut heredocs = Vec::new();
    for src in srcs {
        match parse_heredoc(src) {
            Ok(Some(h)) => {
                let content = node
                    .heredocs
                    .iter()
                    .find(|d| d.name == h.name)
                    .map(|d| d.content.clone())
                    .unwrap_or_default();
                heredocs.push(Heredoc { content, ..h });
            }
            _ => sources.push(src.clone()),
        }
    }
    Ok(SourcesAndDest {
        sources,
        dest: dest.clone(),
        heredocs,
    })
}

fn no_destination(cmd: &str) -> String {
    format!("{cmd} requires at least two arguments, but only one was provided. Destination could not be determined")
}

fn parse_add(node: &Node) -> Result<Add, String> {
    if node.args.len() < 2 {
        return Err(no_destination("ADD"));
    }
    let f = parse_flags(
        &node.flags,
        &[
            ("chown", FlagType::Str),
            ("chmod", FlagType::Str),
            ("link", FlagType::Bool),
            ("keep-git-dir", FlagType::Bool),
            ("checksum", FlagType::Str),
            ("unpack", FlagType::Bool),
            ("exclude", FlagType::Strings),
        ],
    )?;
    let sd = sources_and_dest(node, "ADD")?;
    Ok(Add {
        sources: sd.sources,
        dest: sd.dest,
        chown: f.string("chown").filter(|s| !s.is_empty()),
        chmod: f.string("chmod").filter(|s| !s.is_empty()),
        link: f.bool("link").unwrap_or(false),
        excludes: f.strings("exclude"),
        heredocs: sd.heredocs,
        checksum: f.string("checksum").filter(|s| !s.is_empty()),
        keep_git_dir: f.bool("keep-git-dir"),
        unpack: f.bool("unpack"),
        json: node.json,
    })
}

fn parse_copy(node: &Node) -> Result<Copy, String> {
    if node.args.len() < 2 {
        return Err(no_destination("COPY"));
    }
    let f = parse_flags(
        &node.flags,
        &[
            ("chown", FlagType::Str),
            ("from", FlagType::Str),
            ("chmod", FlagType::Str),
            ("link", FlagType::Bool),
            ("exclude", FlagType::Strings),
            ("parents", FlagType::Bool),
        ],
    )?;
    let sd = sources_and_dest(node, "COPY")?;
    Ok(Copy {
        sources: sd.sources,
        dest: sd.dest,
        from: f.string("from").filter(|s| !s.is_empty()),
        chown: f.string("chown").filter(|s| !s.is_empty()),
        chmod: f.string("chmod").filter(|s| !s.is_empty()),
        link: f.bool("link").unwrap_or(false),
        parents: f.bool("parents").unwrap_or(false),
        excludes: f.strings("exclude"),
        heredocs: sd.heredocs,
        json: node.json,
    })
}

fn parse_run(node: &Node) -> Result<Run, String> {
    let f = parse_flags(
        &node.flags,
        &[
            ("device", FlagType::Strings),
            ("mount", FlagType::Strings),
            ("network", FlagType::Str),
            ("security", FlagType::Str),
        ],
    )?;
    let devices = f
        .strings("device")
        .iter()
        .map(|d| parse_device(d))
        .collect::<Result<Vec<_>, _>>()?;
    let mount_specs = f.strings("mount");
    let mut mounts = Vec::new();
    for spec in &mount_specs {
        check_mount_unexpanded(spec)?;
        // Typed now when it needs no expansion; any error waits for dispatch, as in BuildKit.
        if !spec.contains('$') {
            if let Ok(m) = parse_mount(spec, &mut |v| Ok(v.to_string())) {
                mounts.push(m);
            }
        }
    }
    let network = match f.string("network") {
        None => None,
        Some(v) => Some(match v.as_str() {
            "default" => NetworkMode::Default,
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            _ => return Err(format!("invalid network mode {}", go_quote(&v))),
        }),
    };
    let security = match f.string("security") {
        None => None,
        Some(v) => Some(match v.as_str() {
            "sandbox" => Security::Sandbox,
            "insecure" => Security::Insecure,
            _ => return Err(format!("security {} is not valid", go_quote(&v))),
        }),
    };
    Ok(Run {
        command: command_line(node),
        mounts,
        mount_specs,
        network,
        security,
        devices,
        heredocs: node.heredocs.clone(),
    })
}

fn parse_healthcheck(node: &Node) -> Result<Healthcheck, String> {
    let Some((typ, args)) = node.args.split_first() else {
        return Err(at_least_one("HEALTHCHECK"));
    };
    let typ = typ.to_uppercase();
    if typ == "NONE" {
        if !args.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".to_string());
        }
        // BuildKit does not look at the flags of HEALTHCHECK NONE.
        return Ok(Healthcheck::None);
    }
    let f = parse_flags(
        &node.flags,
        &[
            ("interval", FlagType::Str),
            ("timeout", FlagType::Str),
            ("start-period", FlagType::Str),
            ("start-interval", FlagType::Str),
            ("retries", FlagType::Str),
        ],
    )?;
    if typ != "CMD" {
        return Err(format!(
            "Unknown type {} in HEALTHCHECK (try CMD)",
            go_quote(&typ)
        ));
    }
    let test = if node.json {
        if args.is_empty() {
            return Err("Missing command after HEALTHCHECK CMD".to_string());
        }
        let mut t = vec!["CMD".to_string()];
        t.extend(args.iter().cloned());
        t
    } else {
        if args.is_empty() {
            return Err("Missing command after HEALTHCHECK CMD".to_string());
        }
        vec!["CMD-SHELL".to_string(), args.join(" ")]
    };
    let interval = |name: &str| -> Result<Option<Duration>, String> {
        let Some(v) = f.string(name).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let nanos = parse_duration(&v)?;
        if nanos == 0 {
            return Ok(None);
        }
        if nanos < 1_000_000 {
            return Err(format!(
                "Interval {} cannot be less than 1ms",
                go_quote(name)
            ));
        }
        Ok(Some(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        )))
    };
    let retries = match f.string("retries").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => {
            let n = parse_go_int(&v).ok_or_else(|| {
                format!("strconv.ParseInt: parsing {}: invalid syntax", go_quote(&v))
            })?;
            if i32::try_from(n).is_err() {
                return Err(format!(
                    "strconv.ParseInt: parsing {}: value out of range",
                    go_quote(&v)
                ));
            }
            if n < 0 {
                return Err(format!("--retries cannot be negative ({n})"));
            }
            Some(u32::try_from(n).unwrap_or(0))
        }
    };
    Ok(Healthcheck::Cmd {
        test,
        interval: interval("interval")?,
        timeout: interval("timeout")?,
        start_period: interval("start-period")?,
        start_interval: interval("start-interval")?,
        retries,
    })
}

/// Go's `strconv.ParseInt(s, 10, 64)` (a sign, decimal digits).
fn parse_go_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Go's `time.ParseDuration`, in nanoseconds (negative allowed): `1h30m`, `1.5s`, `300ms`.
pub fn parse_duration(orig: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(orig));
    let mut s = orig;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: i128 = 0;
    while !s.is_empty() {
        if !s.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let flen = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &rest[..flen];
            s = &rest[flen..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let mult: i128 = match unit {
            "" => return Err(format!("time: missing unit in duration {}", go_quote(orig))),
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(unit),
                    go_quote(orig)
                ))
            }
        };
        let v: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut part = v.checked_mul(mult).ok_or_else(invalid)?;
        if !frac_part.is_empty() {
            // Only as many fraction digits as can matter.
            let digits = &frac_part[..frac_part.len().min(30)];
            let f: i128 = digits.parse().map_err(|_| invalid())?;
            let scale = 10i128
                .checked_pow(u32::try_from(digits.len()).unwrap_or(30))
                .ok_or_else(invalid)?;
            part += f.checked_mul(mult).ok_or_else(invalid)? / scale;
        }
        total = total.checked_add(part).ok_or_else(invalid)?;
        if total > i64::MAX as i128 {
            return Err(invalid());
        }
    }
    Ok(if neg { -total } else { total })
}

// ---- flags ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagType {
    Bool,
    Str,
    Strings,
}

#[derive(Debug, Default)]
pub(crate) struct Flags {
    bools: BTreeMap<String, bool>,
    strings: BTreeMap<String, String>,
    lists: BTreeMap<String, Vec<String>>,
}

impl Flags {
    /// A bool flag's value, `None` when not given.
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.bools.get(name).copied()
    }
    /// A string flag's value, `None` when not given.
    pub fn string(&self, name: &str) -> Option<String> {
        self.strings.get(name).cloned()
    }
    pub fn strings(&self, name: &str) -> Vec<String> {
        self.lists.get(name).cloned().unwrap_or_default()
    }
}

/// BuildKit's `BFlags.Parse`: `--name=value` / `--name` for bools, a lone `--` ends the flags.
pub(crate) fn parse_flags(args: &[String], spec: &[(&str, FlagType)]) -> Result<Flags, String> {
    let mut out = Flags::default();
    let mut used: Vec<&str> = Vec::new();
    for a in args {
        if a == "--" {
            return Ok(out);
        }
        let Some(body) = a.strip_prefix("--") else {
            return Err(format!("arg should start with -- : {a}"));
        };
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let flag_name = &a[..2 + name.len()];
        let Some(&(key, ty)) = spec.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = spec.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown flag: {flag_name}{}",
                did_you_mean(name, &names, true)
            ));
        };
        if used.contains(&key) && ty != FlagType::Strings {
            return Err(format!("duplicate flag specified: {flag_name}"));
        }
        used.push(key);
        match ty {
            FlagType::Bool => {
                let b = match value {
                    Some("") => return Err(format!("missing a value on flag: {flag_name}")),
                    None => true,
                    Some(v) => match v.to_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(format!(
                                "expecting boolean value for flag {flag_name}, not: {v}"
                            ))
                        }
                    },
                };
                out.bools.insert(key.to_string(), b);
            }
            FlagType::Str => {
                let Some(v) = value else {
                    return Err(format!("missing a value on flag: {flag_name}"));
                };
                out.strings.insert(key.to_string(), v.to_string());
            }
            FlagType::Strings => {
                let Some(v) = value else {
                    return Err(format!("missing a value on flag: {flag_name}"));
                };
                out.lists
                    .entry(key.to_string())
                    .or_default()
                    .push(v.to_string());
            }
        }
    }
    Ok(out)
}

/// BuildKit's `ParseDevice`: a name (bare or `name=`), and `required[=bool]`.
pub(crate) fn parse_device(val: &str) -> Result<RunDevice, String> {
    let fields = csv_fields(val).map_err(|e| format!("failed to parse csv devices: {e}"))?;
    let mut d = RunDevice {
        name: String::new(),
        required: false,
    };
    for field in &fields {
        let Some((key, value)) = field.split_once('=') else {
            match field.to_lowercase().as_str() {
                "required" => d.required = true,
                _ if d.name.is_empty() => d.name = field.clone(),
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        match key.to_lowercase().as_str() {
            "name" => {
                if !d.name.is_empty() {
                    return Err(format!("device name already set to {}", d.name));
                }
                d.name = value.to_string();
            }
            "required" => {
                d.required = parse_go_bool(value)
                    .ok_or_else(|| format!("invalid value for required: {value}"))?;
            }
            _ if d.name.is_empty() => d.name = field.clone(),
            k => {
                return Err(format!(
                    "unexpected key '{k}' in '{field}'{}",
                    did_you_mean(k, &["name", "required"], true)
                ))
            }
        }
    }
    Ok(d)
}

// ---- RUN --mount ----

/// One CSV record as Go's `encoding/csv` reads it (BuildKit uses `go-csvvalue`): fields split at
/// commas, a field in double quotes may hold commas and `""` for a quote.
pub(crate) fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut rest = s;
    loop {
        if let Some(q) = rest.strip_prefix('"') {
            let mut field = String::new();
            let mut r = q;
            loop {
                let Some(i) = r.find('"') else {
                    return Err("extraneous or missing \" in quoted-field".to_string());
                };
                field.push_str(&r[..i]);
                r = &r[i + 1..];
                if let Some(after) = r.strip_prefix('"') {
                    field.push('"');
                    r = after;
                    continue;
                }
                break;
            }
            fields.push(field);
            if r.is_empty() {
                return Ok(fields);
            }
            match r.strip_prefix(',') {
                Some(after) => rest = after,
                None => return Err("extraneous or missing \" in quoted-field".to_string()),
            }
        } else {
            let (field, next) = match rest.find(',') {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            };
            if field.contains('"') {
                return Err("bare \" in non-quoted-field".to_string());
            }
            fields.push(field.to_string());
            match next {
                Some(n) => rest = n,
                None => return Ok(fields),
            }
        }
    }
}

/// The `from=` values of a mount spec, read without expansion (for the stage plan).
pub(crate) fn mount_from(spec: &str) -> Option<String> {
    let fields = csv_fields(spec).ok()?;
    let mut from = None;
    for f in fields {
        if let Some((k, v)) = f.split_once('=') {
            if k.eq_ignore_ascii_case("from") && !v.is_empty() {
                from = Some(v.to_string());
            }
        }
    }
    from
}

/// What BuildKit checks of a mount before dispatch: the CSV and that `from` is not a variable.
fn check_mount_unexpanded(spec: &str) -> Result<(), String> {
    let fields = csv_fields(spec).map_err(|e| format!("failed to parse csv mounts: {e}"))?;
    for f in fields {
        if let Some((k, v)) = f.split_once('=') {
            if k.eq_ignore_ascii_case("from") {
                if let Some(i) = v.find('$') {
                    if i != v.len() - 1 {
                        return Err(
                            "'from' doesn't support variable expansion, define alias stage instead"
                                .into(),
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn parse_go_uint32(v: &str, radix: u32) -> Option<u32> {
    if v.is_empty() || v.starts_with('+') {
        return None;
    }
    u32::from_str_radix(v, radix).ok()
}

/// docker/go-units `RAMInBytes`: `64m`, `1.5GiB`, `512 k`, binary multiples.
pub(crate) fn ram_in_bytes(v: &str) -> Option<u64> {
    static RAM: LazyLock<Regex> = LazyLock::new(|| {
        #[allow(clippy::unwrap_used)]
        Regex::new(r"^([0-9]+(?:\.[0-9]+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$").unwrap()
    });
    let caps = RAM.captures(v)?;
    let n: f64 = caps.get(1)?.as_str().parse().ok()?;
    let exp = match caps.get(2).map(|m| m.as_str().to_ascii_lowercase()) {
        None => 0,
        Some(u) => match u.as_str() {
            "k" => 1,
            "m" => 2,
            "g" => 3,
            "t" => 4,
            _ => 5,
        },
    };
    let bytes = n * 1024f64.powi(exp);
    Some(bytes as u64)
}

fn kind_name(k: MountKind) -> &'static str {
    match k {
        MountKind::Bind => "bind",
        MountKind::Cache => "cache",
        MountKind::Tmpfs => "tmpfs",
        MountKind::Secret => "secret",
        MountKind::Ssh => "ssh",
    }
}

/// BuildKit's `parseMount` with an expander for values.
pub(crate) fn parse_mount(
    spec: &str,
    expand: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<RunMount, String> {
    let fields = csv_fields(spec).map_err(|e| format!("failed to parse csv mounts: {e}"))?;
    let mut m = RunMount {
        kind: MountKind::Bind,
        target: None,
        source: None,
        from: None,
        id: None,
        sharing: None,
        mode: None,
        uid: None,
        gid: None,
        readonly: false,
        required: false,
        size: None,
        env: None,
    };
    let mut ro_auto = true;
    let unexpected = |key: &str, m: &RunMount| {
        format!(
            "unexpected key '{key}' for mount type '{}'",
            kind_name(m.kind)
        )
    };
    for field in &fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), v),
            None => {
                let key = field.to_lowercase();
                match key.as_str() {
                    "readonly" | "ro" => {
                        m.readonly = true;
                        ro_auto = false;
                    }
                    "readwrite" | "rw" => {
                        m.readonly = false;
                        ro_auto = false;
                    }
                    "required" if matches!(m.kind, MountKind::Secret | MountKind::Ssh) => {
                        m.required = true
                    }
                    "required" => return Err(unexpected(&key, &m)),
                    _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
                }
                continue;
            }
        };
        let value = expand(value)?;
        let bad_value = || format!("invalid value for {key}: {value}");
        match key.as_str() {
            "type" => {
                m.kind = match value.to_lowercase().as_str() {
                    "bind" => MountKind::Bind,
                    "cache" => MountKind::Cache,
                    "tmpfs" => MountKind::Tmpfs,
                    "secret" => MountKind::Secret,
                    "ssh" => MountKind::Ssh,
                    _ => {
                        return Err(format!(
                            "unsupported mount type {}{}",
                            go_quote(&value),
                            did_you_mean(
                                &value,
                                &["bind", "cache", "tmpfs", "secret", "ssh"],
                                true
                            )
                        ))
                    }
                }
            }
            "from" => m.from = Some(value).filter(|v| !v.is_empty()),
            "source" | "src" => m.source = Some(value).filter(|v| !v.is_empty()),
            "target" | "dst" | "destination" => m.target = Some(value).filter(|v| !v.is_empty()),
            "readonly" | "ro" => {
                m.readonly = parse_go_bool(&value).ok_or_else(bad_value)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.readonly = !parse_go_bool(&value).ok_or_else(bad_value)?;
                ro_auto = false;
            }
            "required" => {
                if !matches!(m.kind, MountKind::Secret | MountKind::Ssh) {
                    return Err(unexpected(&key, &m));
                }
                m.required = parse_go_bool(&value).ok_or_else(bad_value)?;
            }
            "size" => {
                if m.kind != MountKind::Tmpfs {
                    return Err(unexpected(&key, &m));
                }
                m.size = Some(ram_in_bytes(&value).ok_or_else(bad_value)?);
            }
            "id" => m.id = Some(value).filter(|v| !v.is_empty()),
            "sharing" => {
                m.sharing = Some(match value.to_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => {
                        return Err(format!(
                            "unsupported sharing value {}{}",
                            go_quote(&value),
                            did_you_mean(&value, &["shared", "private", "locked"], true)
                        ))
                    }
                })
            }
            "mode" => {
                m.mode = Some(
                    parse_go_uint32(&value, 8)
                        .ok_or_else(|| format!("invalid value {value} for mode"))?,
                )
            }
            "uid" => {
                m.uid = Some(
                    parse_go_uint32(&value, 10)
                        .ok_or_else(|| format!("invalid value {value} for uid"))?,
                )
            }
            "gid" => {
                m.gid = Some(
                    parse_go_uint32(&value, 10)
                        .ok_or_else(|| format!("invalid value {value} for gid"))?,
                )
            }
            "env" => m.env = Some(value),
            _ => {
                let keys = [
                    "type",
                    "from",
                    "source",
                    "target",
                    "readonly",
                    "id",
                    "sharing",
                    "required",
                    "size",
                    "mode",
                    "uid",
                    "gid",
                    "src",
                    "dst",
                    "destination",
                    "ro",
                    "rw",
                    "readwrite",
                    "env",
                ];
                return Err(format!(
                    "unexpected key '{key}' in '{field}'{}",
                    did_you_mean(&key, &keys, true)
                ));
            }
        }
    }
    let kind = go_quote(kind_name(m.kind));
    if !matches!(
        m.kind,
        MountKind::Secret | MountKind::Ssh | MountKind::Cache
    ) {
        if m.mode.is_some() {
            return Err(format!("mode not allowed for {kind} type mounts"));
        }
        if m.uid.is_some() {
            return Err(format!("uid not allowed for {kind} type mounts"));
        }
        if m.gid.is_some() {
            return Err(format!("gid not allowed for {kind} type mounts"));
        }
    }
    if ro_auto {
        m.readonly = !matches!(m.kind, MountKind::Cache | MountKind::Tmpfs);
    }
    if m.kind == MountKind::Secret {
        if m.from.is_some() {
            return Err("secret mount should not have a from".into());
        }
        if m.sharing.is_some() {
            return Err("secret mount should not define sharing".into());
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() {
            return Err("invalid secret mount. one of source, target required".into());
        }
        if m.source.is_some() && m.id.is_some() {
            return Err("both source and id can't be set".into());
        }
    }
    if m.sharing.is_some() && m.kind != MountKind::Cache {
        return Err(format!(
            "invalid cache sharing set for {} mount",
            kind_name(m.kind)
        ));
    }
    Ok(m)
}
