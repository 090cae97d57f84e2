use clap::Parser;
use rcompose::cli::{run, Cli};

fn main() {
    // The container helper runs before anything else (no threads, no argument parsing).
    if rcompose::runtime::init::is_helper_invocation(std::env::args_os().nth(1).as_deref()) {
        rcompose::runtime::init::main();
    }
    let mut args = std::env::args();
    match args.nth(1).as_deref() {
        Some(rcompose::supervisor::server::SUPERVISE_ARG) => {
            // Its stderr is the project's supervisor.log.
            rcompose::diagnostics::init(Some(false));
            let project = args.next().unwrap_or_default();
            std::process::exit(rcompose::supervisor::server::main(&project));
        }
        Some(rcompose::build::network::GC_ARG) => {
            rcompose::diagnostics::init(Some(false));
            let project = args.next().unwrap_or_default();
            std::process::exit(rcompose::build::network::gc_main(&project));
        }
        _ => {}
    }
    let cli = Cli::parse();
    rcompose::diagnostics::init(cli.global.ansi_choice());
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            rcompose::cli::print_error(&e);
            1
        }
    };
    std::process::exit(code);
}
