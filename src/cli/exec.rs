//! `rcompose exec`: a command in a running container of a service.

use anyhow::{bail, Context, Result};
use std::io::IsTerminal;
use std::os::fd::AsRawFd;

use super::run::{copy_pty, forward_signals, helper_path, sigset, terminal_size, RawMode, PROXIED};
use super::Global;
use crate::runtime::container::{self, Container, ExecRequest};
use crate::runtime::process::Stdio;
use crate::supervisor::state::{self, Status};

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Detached mode: run the command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Disable pseudo-TTY allocation (default: a TTY when stdin is one)
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "KEY=VAL")]
    pub env: Vec<String>,
    /// Run the command as this user
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Path to workdir directory for this command
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Give extended privileges to the process
    #[arg(long)]
    pub privileged: bool,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// Keep STDIN open (the default for exec)
    #[arg(short = 'i', long, default_value_t = true, hide = true)]
    pub interactive: bool,
    pub service: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

pub fn run(global: &Global, args: ExecArgs) -> Result<i32> {
    let target = super::project::target(global)?;
    let st = super::project::state(&target.name)?;
    let Some(record) = st
        .containers
        .iter()
        .find(|c| c.service == args.service && c.number == args.index && !c.oneoff)
    else {
        if let Some(l) = &target.loaded {
            if !l.project.services.contains_key(&args.service) {
                bail!("no such service: {}", args.service);
            }
        }
        bail!("service {:?} is not running", args.service);
    };
    let (Status::Running, Some(pid)) = (record.status, record.pid) else {
        bail!("container {} is not running", record.name);
    };
    let c = Container::load(&state::container_dir(&record.id))
        .with_context(|| format!("cannot open container {}", record.name))?;
    let tty = !args.no_tty && !args.detach && std::io::stdin().is_terminal();
    let env = args
        .env
        .iter()
        .map(|e| match e.split_once('=') {
            Some(_) => e.clone(),
            None => format!("{e}={}", std::env::var(e).unwrap_or_default()),
        })
        .collect();
    let req = ExecRequest {
        args: args.command.clone(),
        env,
        user: args.user.clone(),
        workdir: args.workdir.clone(),
        tty: tty.then(|| terminal_size().unwrap_or((24, 80))),
        privileged: args.privileged,
    };
    let set = sigset(&PROXIED);
    // SAFETY: a valid sigset; blocked before threads start so the forwarder takes them.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    // The process gets pipes that we copy, or a pty of the container's own; never our own
    // streams (see `relay`).
    let relay = if tty || args.detach {
        None
    } else {
        Some(super::relay::start(args.interactive).context("cannot make the exec's pipes")?)
    };
    let stdio = relay
        .as_ref()
        .map_or_else(Stdio::default, |(_, ends)| ends.stdio());
    let helper = helper_path()?;
    let exec = c.exec(&helper, pid, &req, stdio);
    // Our copies of the container's ends go, so that its exit closes the pipes.
    let relay = relay.map(|(relay, _ends)| relay);
    let (spawned, master) = match exec {
        Ok(x) => x,
        Err(e) => {
            let code = match &e {
                container::ContainerError::Process {
                    source: crate::runtime::process::ProcessError::Start { code, .. },
                    ..
                } => *code,
                _ => 1,
            };
            if let Some(relay) = relay {
                relay.finish();
            }
            super::print_error(&anyhow::Error::new(e));
            return Ok(code);
        }
    };
    let epid = spawned.pid();
    if args.detach {
        // The process runs on in the container; nothing waits for it here.
        std::thread::spawn(move || container::wait(epid));
        return Ok(0);
    }
    let pty_fd = master.as_ref().map(|m| m.as_raw_fd());
    std::thread::spawn(move || forward_signals(epid, pty_fd));
    let mut raw = None;
    let mut output = None;
    if let Some(master) = &master {
        raw = RawMode::enter();
        output = Some(copy_pty(master, true)?);
    }
    let status = container::wait(epid).context("cannot wait for the exec'd process")?;
    if let Some(relay) = relay {
        relay.finish();
    }
    drop(master);
    if let Some(t) = output {
        let _ = t.join();
    }
    drop(raw);
    Ok(status.docker_code())
}
