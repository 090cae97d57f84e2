//! Plots `bench/updown.sh`'s results: `up -d` (and `down`) wall time against the number of
//! services, docker compose and rcompose, on log-log axes (the counts span 1 to 200).
//!
//! Usage: `rcompose-bench-plot [CSV] [PNG]` (defaults: bench/results/updown.csv and
//! bench/results/updown.png, relative to the current directory). The font is DejaVu Sans
//! (Debian's fonts-dejavu-core); `BENCH_PLOT_FONT` names another TTF file.

use std::path::{Path, PathBuf};

use plotters::style::{register_font, FontStyle};

mod updown;

const DEFAULT_CSV: &str = "bench/results/updown.csv";
const DEFAULT_PNG: &str = "bench/results/updown.png";
const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

#[derive(Debug, thiserror::Error)]
enum PlotError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: no measurements")]
    Empty { path: PathBuf },
    #[error("cannot load the font {path}: {reason}")]
    Font { path: PathBuf, reason: String },
    #[error("cannot draw {path}: {reason}")]
    Draw { path: PathBuf, reason: String },
}

/// Registers the TTF file as plotters' "sans-serif" (the ab_glyph backend has no system fonts).
fn load_font(path: &Path) -> Result<(), PlotError> {
    let bytes = std::fs::read(path).map_err(|e| PlotError::Font {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    // plotters keeps the font for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font("sans-serif", FontStyle::Normal, bytes).map_err(|_| PlotError::Font {
        path: path.to_path_buf(),
        reason: "not a valid TrueType font".into(),
    })
}

fn run() -> Result<PathBuf, PlotError> {
    let mut args = std::env::args_os().skip(1);
    let csv = args
        .next()
        .map_or_else(|| DEFAULT_CSV.into(), PathBuf::from);
    let png = args
        .next()
        .map_or_else(|| DEFAULT_PNG.into(), PathBuf::from);
    let font =
        std::env::var_os("BENCH_PLOT_FONT").map_or_else(|| DEFAULT_FONT.into(), PathBuf::from);
    let text = std::fs::read_to_string(&csv).map_err(|source| PlotError::Read {
        path: csv.clone(),
        source,
    })?;
    let results = updown::Results::parse(&text, &csv)?;
    load_font(&font)?;
    updown::draw(&results, &png)?;
    Ok(png)
}

fn main() {
    match run() {
        Ok(png) => println!("{}", png.display()),
        Err(e) => {
            eprintln!("plot: {e}");
            std::process::exit(1);
        }
    }
}
