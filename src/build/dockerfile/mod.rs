//! The Dockerfile frontend: parser, instructions, variable expansion, stages.
//!
//! The syntax is that of BuildKit's current dockerfile frontend (moby/buildkit
//! `frontend/dockerfile/parser`, `instructions` and `shell`), ported rule by rule:
//! [`parse`] turns source text into stages of typed [`Instruction`]s whose arguments are still
//! unexpanded; the executor calls [`Instruction::expand`] at dispatch time with the ARG/ENV
//! environment of that moment, as BuildKit does, and [`Dockerfile::plan`] for the stages a
//! target needs. Pure code: no I/O beyond the text the caller passes in.

mod ast;
mod expand;
mod instructions;
pub mod limits;
mod lint;
mod plan;
mod shell;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use instructions::parse_duration;
pub use lint::CheckConfig;
pub use plan::{Base, StagePlan};
pub use shell::{Env, ExpandError, ExpandFailure, Expanded, Expander};

/// Parses a Dockerfile. `file` names it in errors and locations.
pub fn parse(source: &str, file: &Path) -> Result<Dockerfile, DockerfileError> {
    let file: Arc<Path> = Arc::from(file);
    if source.len() > limits::MAX_SOURCE {
        return Err(DockerfileError::Parse {
            file: file.to_path_buf(),
            line: 1,
            column: 1,
            message: format!("dockerfile larger than {} bytes", limits::MAX_SOURCE),
        });
    }
    let ast = ast::parse(source).map_err(|p| p.into_error(&file))?;
    let mut df = instructions::build(&ast, &file)?;
    lint::check(&ast.nodes, &mut df).map_err(|message| DockerfileError::Parse {
        file: file.to_path_buf(),
        line: 1,
        column: 1,
        message,
    })?;
    Ok(df)
}

/// Parses an ONBUILD trigger (as stored in an image's config) into its instruction, for running
/// it when the image is used as a base. BuildKit parses each trigger as a Dockerfile of its own
/// that must hold exactly one instruction (FROM refused), and reports errors at the FROM of the
/// stage that uses the image; it also adds the stage a trigger's `COPY --from` names to the
/// plan, which [`Dockerfile::plan`] cannot know.
pub fn parse_trigger(trigger: &str, file: &Path) -> Result<Instruction, DockerfileError> {
    let file: Arc<Path> = Arc::from(file);
    let ast = ast::parse(trigger).map_err(|p| p.into_error(&file))?;
    match ast.nodes.as_slice() {
        [node] => instructions::instruction(node, ast.directives.escape, &file),
        _ => Err(DockerfileError::Parse {
            file: file.to_path_buf(),
            line: 1,
            column: 1,
            message: "onbuild trigger should be a single expression".into(),
        }),
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub directives: Directives,
    /// ARGs before the first FROM (global scope).
    pub meta_args: Vec<ArgDecl>,
    /// Where each of `meta_args`' ARG instructions is (one entry per ARG instruction).
    pub meta_arg_instructions: Vec<Instruction>,
    pub stages: Vec<Stage>,
    /// BuildKit's checks that can be decided from the text alone, in line order.
    pub warnings: Vec<Warning>,
}

/// Parser directives (`# syntax=`, `# escape=`, `# check=`) from the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    pub syntax: Option<String>,
    /// `\` or `` ` ``.
    pub escape: char,
    /// The raw `# check=` value (e.g. `skip=JSONArgsRecommended;error=true`).
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

/// A BuildKit build check ("lint rule") that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// BuildKit's rule name, e.g. `JSONArgsRecommended`.
    pub rule: String,
    pub message: String,
    pub url: String,
    /// 1-based line.
    pub line: usize,
}

/// Where something is in the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: Arc<Path>,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One build stage: a FROM and the instructions after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub index: usize,
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// The FROM image, stage or `scratch`, unexpanded.
    pub base: String,
    /// `--platform`, unexpanded.
    pub platform: Option<String>,
    pub location: Location,
    /// The FROM line as written (trimmed).
    pub original: String,
    pub instructions: Vec<Instruction>,
}

impl Stage {
    /// BuildKit's name for the stage in progress output: its name or `stage-N`.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("stage-{}", self.index))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub location: Location,
    /// Last line, heredoc bodies included.
    pub end_line: usize,
    /// The instruction as BuildKit prints it in history and progress: the logical line,
    /// continuations joined and comments removed, trimmed (heredoc bodies not included).
    pub original: String,
    /// The instruction name as written (`run`, `RUN`).
    pub keyword: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Run(Run),
    Cmd(CommandLine),
    Entrypoint(CommandLine),
    Shell(Vec<String>),
    Copy(Copy),
    Add(Add),
    /// Unexpanded: values keep their quotes until [`Instruction::expand`].
    Env(Vec<(String, String)>),
    Arg(Vec<ArgDecl>),
    /// Unexpanded, as `Env`.
    Label(Vec<(String, String)>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    StopSignal(String),
    Healthcheck(Healthcheck),
    /// The trigger as BuildKit stores it in the image config (`RUN x`, heredocs appended).
    OnBuild(String),
    Maintainer(String),
}

impl Kind {
    /// The instruction's name in upper case.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Run(_) => "RUN",
            Kind::Cmd(_) => "CMD",
            Kind::Entrypoint(_) => "ENTRYPOINT",
            Kind::Shell(_) => "SHELL",
            Kind::Copy(_) => "COPY",
            Kind::Add(_) => "ADD",
            Kind::Env(_) => "ENV",
            Kind::Arg(_) => "ARG",
            Kind::Label(_) => "LABEL",
            Kind::Expose(_) => "EXPOSE",
            Kind::Volume(_) => "VOLUME",
            Kind::User(_) => "USER",
            Kind::Workdir(_) => "WORKDIR",
            Kind::StopSignal(_) => "STOPSIGNAL",
            Kind::Healthcheck(_) => "HEALTHCHECK",
            Kind::OnBuild(_) => "ONBUILD",
            Kind::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// A command in shell form (run through the image's SHELL) or exec form (a JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// The text after the instruction (and its flags). Empty only when there was none, in
    /// which case BuildKit runs the shell with no command string at all.
    Shell(String),
    /// An empty vector is `[]` (for ENTRYPOINT: reset).
    Exec(Vec<String>),
}

/// `ARG name` or `ARG name=default` (default unexpanded until [`Instruction::expand`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub command: CommandLine,
    /// Typed `--mount`s. A mount whose text uses a variable is typed only by
    /// [`Instruction::expand`] (as BuildKit validates it only at dispatch); before that it is
    /// missing here but present in `mount_specs`.
    pub mounts: Vec<RunMount>,
    /// Every `--mount` value as written.
    pub mount_specs: Vec<String>,
    /// `--network`; `None` when not given (BuildKit's `default`).
    pub network: Option<NetworkMode>,
    /// `--security`; `None` when not given (BuildKit's `sandbox`).
    pub security: Option<Security>,
    /// `--device` (BuildKit's CDI devices).
    pub devices: Vec<RunDevice>,
    /// Heredoc bodies, raw (see [`Heredoc::body`]); the command is then e.g. `<<EOF` or
    /// `python3 <<EOF`.
    pub heredocs: Vec<Heredoc>,
}

/// One `RUN --device=name[,required]` (a CDI device name such as `vendor.com/gpu=all`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDevice {
    pub name: String,
    pub required: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    Default,
    None,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Sandbox,
    Insecure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// One `RUN --mount=...`, as BuildKit's `instructions.Mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMount {
    pub kind: MountKind,
    pub target: Option<String>,
    pub source: Option<String>,
    /// A stage name or image (for bind and cache mounts).
    pub from: Option<String>,
    /// Cache id, or secret/ssh id.
    pub id: Option<String>,
    pub sharing: Option<Sharing>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Resolved as BuildKit does: explicit ro/rw, else read-only for bind, secret and ssh.
    pub readonly: bool,
    pub required: bool,
    /// tmpfs size in bytes.
    pub size: Option<u64>,
    /// `env=` of a secret mount: expose the secret as this environment variable.
    pub env: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// Source paths (heredoc sources are in `heredocs`), unexpanded.
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub excludes: Vec<String>,
    /// Heredoc sources: each becomes a file named after its delimiter.
    pub heredocs: Vec<Heredoc>,
    /// The arguments were a JSON array.
    pub json: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    pub sources: Vec<String>,
    pub dest: String,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub excludes: Vec<String>,
    pub heredocs: Vec<Heredoc>,
    pub checksum: Option<String>,
    /// `--keep-git-dir`; `None` when not given.
    pub keep_git_dir: Option<bool>,
    /// `--unpack`; `None` when not given (unpack local archives, not remote ones).
    pub unpack: Option<bool>,
    pub json: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable the base image's check.
    None,
    Cmd {
        /// Docker's form: `["CMD", args...]` or `["CMD-SHELL", "command"]`.
        test: Vec<String>,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        start_period: Option<Duration>,
        start_interval: Option<Duration>,
        retries: Option<u32>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter, which is also the file name for COPY/ADD.
    pub name: String,
    /// The lines between the instruction and the delimiter, each with its newline.
    pub content: String,
    /// The delimiter was unquoted: COPY/ADD expand variables in the body.
    pub expand: bool,
    /// `<<-`: leading tabs are removed from the body's lines.
    pub chomp: bool,
    /// `3<<EOF`: the file descriptor (0 when not given).
    pub fd: u32,
}

impl Heredoc {
    /// The body with leading tabs removed when `chomp`.
    pub fn body(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        let mut out = String::with_capacity(self.content.len());
        for line in self.content.split_inclusive('\n') {
            out.push_str(line.trim_start_matches('\t'));
        }
        out
    }

    /// BuildKit's one-line summary for progress output: the first line, `...` if more.
    pub fn summary(&self) -> String {
        let doc = self.content.trim().replace("\r\n", "\n");
        let mut lines = doc.split('\n');
        let first = lines.next().unwrap_or_default().to_string();
        if lines.next().is_some() {
            format!("{first}...")
        } else {
            first
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DockerfileError {
    /// The text is not a valid Dockerfile.
    #[error("{}:{line}:{column}: {message}", file.display())]
    Parse {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// An instruction's arguments could not be expanded.
    #[error("{}:{line}:{column}: {instruction}: {source}", file.display())]
    Expand {
        file: PathBuf,
        line: usize,
        column: usize,
        instruction: String,
        #[source]
        source: Box<ExpandError>,
    },
    /// An instruction is invalid once expanded (a mount, a FROM), or stages refer to each other
    /// in a way that cannot be built.
    #[error("{}:{line}:{column}: {message}", file.display())]
    Invalid {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: target stage {} could not be found{suggestion}", file.display(), go_quote(target))]
    UnknownTarget {
        file: PathBuf,
        target: String,
        suggestion: String,
    },
}

impl DockerfileError {
    pub(crate) fn invalid(loc: &Location, message: impl Into<String>) -> Self {
        DockerfileError::Invalid {
            file: loc.file.to_path_buf(),
            line: loc.line,
            column: loc.column,
            message: message.into(),
        }
    }
}

/// A parse problem before the file name is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Problem {
    pub fn new(line: usize, column: usize, message: String) -> Self {
        Problem {
            line,
            column,
            message,
        }
    }

    pub fn into_error(self, file: &Path) -> DockerfileError {
        DockerfileError::Parse {
            file: file.to_path_buf(),
            line: self.line,
            column: self.column,
            message: self.message,
        }
    }
}

/// Go's `strconv.Quote` (BuildKit's `%q`), for messages that match BuildKit's.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// BuildKit's did-you-mean: the closest option within edit distance 2, unless `val` is one.
pub(crate) fn suggest(val: &str, options: &[&str], case_sensitive: bool) -> Option<String> {
    let norm = |s: &str| {
        if case_sensitive {
            s.to_string()
        } else {
            s.to_lowercase()
        }
    };
    let v = norm(val);
    let mut best: Option<String> = None;
    let mut min = 3;
    for opt in options {
        let o = norm(opt);
        if o == v {
            return None;
        }
        let d = strsim::levenshtein(&v, &o);
        if d < min {
            min = d;
            best = Some(if case_sensitive {
                o
            } else if val == val.to_lowercase() {
                o.to_lowercase()
            } else if val == val.to_uppercase() {
                o.to_uppercase()
            } else {
                o
            });
        }
    }
    best
}

/// `" (did you mean X?)"` or nothing.
pub(crate) fn did_you_mean(val: &str, options: &[&str], case_sensitive: bool) -> String {
    suggest(val, options, case_sensitive)
        .map(|m| format!(" (did you mean {m}?)"))
        .unwrap_or_default()
}
