//! The command line: docker compose's global flags and one file per subcommand.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Read;
use std::path::PathBuf;

use crate::compose::loader::{self, Loaded, Options};

pub mod build;
pub mod config;
pub mod cp;
pub mod dryrun;
pub mod events;
pub mod exec;
pub mod image;
pub mod lifecycle;
pub mod logs;
pub mod network;
pub mod project;
pub mod pull;
pub mod relay;
pub mod run;
pub mod stats;
pub mod template;
pub mod top;
pub mod up;
pub mod version;
pub mod watch;

#[derive(Debug, Parser)]
#[command(
    name = "rcompose",
    version,
    about = "Define and run multi-container applications, without a daemon",
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// docker compose's global flags (and their `COMPOSE_*` environment variables).
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Compose configuration files (`-` for standard input)
    #[arg(long = "file", global = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// Compose configuration files, given before the command (`rcompose -f a.yaml up`): the
    /// short forms stay free for the commands' own `-f` (force) and `-p` (publish), as in
    /// docker compose.
    #[arg(short = 'f', value_name = "FILE")]
    pub files_short: Vec<String>,
    /// Project name
    #[arg(long = "project-name", global = true)]
    pub project_name: Option<String>,
    /// Project name (before the command)
    #[arg(short = 'p', value_name = "PROJECT_NAME")]
    pub project_name_short: Option<String>,
    /// Alternate working directory (default: the directory of the first compose file)
    #[arg(long, global = true, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Profiles to enable
    #[arg(long = "profile", global = true, value_name = "PROFILE")]
    pub profiles: Vec<String>,
    /// Alternate environment files
    #[arg(long = "env-file", global = true, value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Progress output type
    #[arg(long, global = true, env = "COMPOSE_PROGRESS", value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
    /// Control when to print ANSI control characters
    #[arg(long, global = true, env = "COMPOSE_ANSI", value_enum, default_value_t = Ansi::Auto)]
    pub ansi: Ansi,
    /// Execute command in dry run mode: print what it would do, and why, changing nothing
    #[arg(long, global = true)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    Auto,
    Tty,
    Plain,
    Json,
    Quiet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Ansi {
    Never,
    Always,
    Auto,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Parse, resolve and render the compose file in canonical format
    Config(config::ConfigArgs),
    /// Pull service images
    Pull(pull::PullArgs),
    /// Build or rebuild services
    Build(build::BuildArgs),
    /// Manage the build cache: prune
    Builder(build::BuilderArgs),
    /// Push service images
    Push(build::PushArgs),
    /// List images used by the created containers
    Images(image::ImagesArgs),
    /// Manage images: ls, inspect, rm, prune, pull, import, load
    Image(image::ImageArgs),
    /// Manage networks: ls, inspect, create, rm, prune
    Network(network::NetworkArgs),
    /// Run a one-off command on a service
    Run(run::RunArgs),
    /// Create and start containers
    Up(up::UpArgs),
    /// Creates containers for a service
    Create(up::UpArgs),
    /// Stop and remove containers, networks
    Down(lifecycle::DownArgs),
    /// List containers
    Ps(lifecycle::PsArgs),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// Copy files/folders between a service container and the local filesystem
    Cp(cp::CpArgs),
    /// Scale services
    Scale(up::ScaleArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(stats::StatsArgs),
    /// Start services
    Start(lifecycle::ServicesArgs),
    /// Stop services
    Stop(lifecycle::StopArgs),
    /// Restart service containers
    Restart(lifecycle::StopArgs),
    /// Force stop service containers
    Kill(lifecycle::KillArgs),
    /// Pause services
    Pause(lifecycle::ServicesArgs),
    /// Unpause services
    Unpause(lifecycle::ServicesArgs),
    /// Removes stopped service containers
    Rm(lifecycle::RmArgs),
    /// Print the public port for a port binding
    Port(lifecycle::PortArgs),
    /// List running compose projects
    Ls(lifecycle::LsArgs),
    /// Show the rcompose version information
    Version(version::VersionArgs),
    /// View output from containers
    Logs(logs::LogsArgs),
    /// Display the running processes
    Top(top::TopArgs),
    /// Block until containers of all (or specified) services stop
    Wait(events::WaitArgs),
    /// Receive real time events from containers
    Events(events::EventsArgs),
    /// Watch the build context for services and update them when files change (develop.watch)
    Watch(watch::WatchArgs),
}

impl Global {
    /// What `--ansi` says of colours: `None` for auto.
    pub fn ansi_choice(&self) -> Option<bool> {
        match self.ansi {
            Ansi::Never => Some(false),
            Ansi::Always => Some(true),
            Ansi::Auto => None,
        }
    }

    /// Apply `--ansi` to every styled output of this process.
    pub fn apply_ansi(&self) {
        match self.ansi {
            Ansi::Never => console::set_colors_enabled(false),
            Ansi::Always => console::set_colors_enabled(true),
            Ansi::Auto => {}
        }
        match self.ansi {
            Ansi::Never => console::set_colors_enabled_stderr(false),
            Ansi::Always => console::set_colors_enabled_stderr(true),
            Ansi::Auto => {}
        }
    }

    /// Loader options from the global flags and this process.
    pub fn load_options(&self) -> Result<Options> {
        let mut opts = Options::from_process().context("cannot determine the current directory")?;
        opts.files = self.files_short.clone();
        opts.files.extend(self.files.iter().cloned());
        opts.project_name = self
            .project_name
            .clone()
            .or_else(|| self.project_name_short.clone());
        opts.project_directory = self.project_directory.clone();
        opts.profiles = self.profiles.clone();
        opts.env_files = self.env_files.clone();
        if opts.files.iter().any(|f| f == "-") {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("failed to read the compose file from standard input")?;
            opts.stdin = Some(s);
        }
        Ok(opts)
    }

    /// Print the loader's warnings the way the rest of the CLI prints them.
    pub fn print_warnings(&self, loaded: &Loaded) {
        for w in &loaded.warnings {
            warn(w);
        }
    }
}

/// The progress display `--progress` asks for.
pub fn progress_mode(global: &Global) -> crate::image::progress::Mode {
    use crate::image::progress::Mode;
    match global.progress {
        Progress::Auto => Mode::Auto,
        Progress::Tty => Mode::Tty,
        // JSON progress events are not implemented: plain lines are the closest.
        Progress::Plain | Progress::Json => Mode::Plain,
        Progress::Quiet => Mode::Quiet,
    }
}

/// `cell` padded with spaces to `width` characters. By hand: `format!`'s width stops at
/// u16::MAX and panics past it, and a cell (a command line, a `--format` result) can be wider.
pub fn push_padded(out: &mut String, cell: &str, width: usize) {
    out.push_str(cell);
    out.extend(std::iter::repeat_n(
        ' ',
        width.saturating_sub(cell.chars().count()),
    ));
}

/// Left-aligned columns separated by three spaces, like docker's tables.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                push_padded(&mut line, cell, widths[i] + 3);
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A warning on standard error.
pub fn warn(msg: &str) {
    eprintln!("{} {msg}", console::style("WARN").yellow());
}

/// Load the project with the given options, printing warnings.
pub fn load(global: &Global, opts: &Options) -> Result<Loaded> {
    let loaded = loader::load(opts)?;
    global.print_warnings(&loaded);
    Ok(loaded)
}

impl Command {
    /// The subcommand as typed (`up`, `run`, ...), for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Config(_) => "config",
            Command::Pull(_) => "pull",
            Command::Build(_) => "build",
            Command::Builder(_) => "builder",
            Command::Push(_) => "push",
            Command::Images(_) => "images",
            Command::Image(_) => "image",
            Command::Network(_) => "network",
            Command::Run(_) => "run",
            Command::Up(_) => "up",
            Command::Create(_) => "create",
            Command::Down(_) => "down",
            Command::Ps(_) => "ps",
            Command::Exec(_) => "exec",
            Command::Cp(_) => "cp",
            Command::Scale(_) => "scale",
            Command::Stats(_) => "stats",
            Command::Start(_) => "start",
            Command::Stop(_) => "stop",
            Command::Restart(_) => "restart",
            Command::Kill(_) => "kill",
            Command::Pause(_) => "pause",
            Command::Unpause(_) => "unpause",
            Command::Rm(_) => "rm",
            Command::Port(_) => "port",
            Command::Ls(_) => "ls",
            Command::Version(_) => "version",
            Command::Logs(_) => "logs",
            Command::Top(_) => "top",
            Command::Wait(_) => "wait",
            Command::Events(_) => "events",
            Command::Watch(_) => "watch",
        }
    }
}

/// Why a command other than `config` and `version` cannot run without root: until rootless
/// mode exists every one of them creates namespaces, mounts or cgroups, or reads images and
/// state that are root's alone (0700). Said before anything is touched, so that the user does
/// not meet a lock file, a chown or a registry error instead.
pub fn needs_root(command: &str) -> String {
    let why = match command {
        "pull" | "images" | "image" => format!(
            "image layers are unpacked with their files' owners and device nodes and kept in {}, \
             which only root may use",
            crate::paths::root().display()
        ),
        _ => format!(
            "containers run in namespaces, mounts and cgroups only root can create, and their \
             images and state are kept in {} and {}, which only root may use",
            crate::paths::root().display(),
            crate::paths::run().display()
        ),
    };
    format!(
        "rcompose {command} needs root: {why} (rootless mode is not supported yet); run it as \
         root, for example with sudo"
    )
}

/// Run the parsed command line; the exit code to return.
pub fn run(cli: Cli) -> Result<i32> {
    cli.global.apply_ansi();
    let reads_files_only = matches!(cli.command, Command::Config(_) | Command::Version(_));
    let root = nix::unistd::geteuid().is_root();
    if !reads_files_only && !root {
        anyhow::bail!("{}", needs_root(cli.command.name()));
    }
    if cli.global.dry_run {
        dryrun::check(cli.command.name())?;
    }
    if !reads_files_only && root && !cli.global.dry_run {
        crate::paths::make_private().with_context(|| {
            format!(
                "cannot make {} and {} private",
                crate::paths::root().display(),
                crate::paths::run().display()
            )
        })?;
    }
    match cli.command {
        Command::Config(args) => config::run(&cli.global, args),
        Command::Pull(args) => pull::run(&cli.global, args),
        Command::Build(args) => build::build(&cli.global, args),
        Command::Builder(args) => build::builder(args),
        Command::Push(args) => build::push(&cli.global, args),
        Command::Images(args) => image::images(&cli.global, args),
        Command::Image(args) => image::run(&cli.global, args),
        Command::Network(args) => network::run(&cli.global, args),
        Command::Run(args) => run::run(&cli.global, args),
        Command::Up(args) => up::run(&cli.global, args),
        Command::Create(args) => up::create(&cli.global, args),
        Command::Down(args) => lifecycle::down(&cli.global, args),
        Command::Ps(args) => lifecycle::ps(&cli.global, args),
        Command::Exec(args) => exec::run(&cli.global, args),
        Command::Cp(args) => cp::run(&cli.global, args),
        Command::Scale(args) => up::scale(&cli.global, args),
        Command::Stats(args) => stats::run(&cli.global, args),
        Command::Start(args) => lifecycle::start(&cli.global, args),
        Command::Stop(args) => lifecycle::stop(&cli.global, args),
        Command::Restart(args) => lifecycle::restart(&cli.global, args),
        Command::Kill(args) => lifecycle::kill(&cli.global, args),
        Command::Pause(args) => lifecycle::pause(&cli.global, args, true),
        Command::Unpause(args) => lifecycle::pause(&cli.global, args, false),
        Command::Rm(args) => lifecycle::rm(&cli.global, args),
        Command::Port(args) => lifecycle::port(&cli.global, args),
        Command::Ls(args) => lifecycle::ls(args),
        Command::Version(args) => version::run(args),
        Command::Logs(args) => logs::run(&cli.global, args),
        Command::Top(args) => top::run(&cli.global, args),
        Command::Wait(args) => events::wait(&cli.global, args),
        Command::Events(args) => events::events(&cli.global, args),
        Command::Watch(args) => watch::run(&cli.global, args),
    }
}

/// Prints `error: ...` with each cause once: what failed, then why (many errors already quote
/// their cause).
pub fn print_error(e: &anyhow::Error) {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !msg.contains(&cause) {
            msg.push_str(": ");
            msg.push_str(&cause);
        }
    }
    eprintln!("{} {msg}", console::style("error:").red().bold());
}

#[cfg(test)]
mod tests {
    /// clap's own checks of every subcommand (clashing flags are found here, not by a user).
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    /// A column wider than `format!` pads (u16::MAX) is padded too: the `format_template` fuzz
    /// target found the panic with a `--format "table {{json .}}\t…"` of a thousand `json`s.
    #[test]
    fn table_columns_of_any_width() {
        let wide = "x".repeat(70_000);
        let rows = vec![
            vec![wide.clone(), "a".to_string()],
            vec!["y".to_string(), "b".to_string()],
        ];
        let out = super::table(&rows);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], format!("{wide}   a"));
        assert_eq!(lines[1], format!("y{}   b", " ".repeat(69_999)));
    }
}
