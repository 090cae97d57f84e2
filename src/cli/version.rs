//! `rcompose version`.

use anyhow::Result;

#[derive(Debug, clap::Args)]
pub struct VersionArgs {
    /// Format the output
    #[arg(long, value_parser = ["pretty", "json"], default_value = "pretty")]
    pub format: String,
    /// Shows only the version number
    #[arg(long)]
    pub short: bool,
}

pub fn run(args: VersionArgs) -> Result<i32> {
    let v = env!("CARGO_PKG_VERSION");
    if args.short {
        println!("{v}");
    } else if args.format == "json" {
        println!("{}", serde_json::json!({ "version": v }));
    } else {
        println!("rcompose version v{v}");
    }
    Ok(0)
}
