use clap::Parser;
use rcompose::cli::{run, Cli};

fn main() {
    // The container helper runs before anything else (no threads, no argument parsing).
    if rcompose::runtime::init::is_helper_invocation(std::env::args_os().nth(1).as_deref()) {
        rcompose::runtime::init::main();
    }
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // One line per cause: what failed, then why.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                // Many errors already quote their cause; say it once.
                let cause = cause.to_string();
                if !msg.contains(&cause) {
                    msg.push_str(": ");
                    msg.push_str(&cause);
                }
            }
            eprintln!("{} {msg}", console::style("error:").red().bold());
            1
        }
    };
    std::process::exit(code);
}
