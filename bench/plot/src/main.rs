//! Plots the side-by-side benchmarks' CSV results as PNG charts. The CSV's header line says
//! which kind it is:
//!
//! - `services,tool,op,median_ms` (`bench/updown.sh`): `up -d` (and `down`) wall time against the
//!   number of services, docker compose and rcompose, on log-log axes ([`updown`]);
//! - `scenario,tool,median_ms` (`bench/build.sh`): image build time per scenario, one bar per
//!   tool, on a log time axis ([`build`]).
//!
//! Usage: `rcompose-bench-plot [CSV] [PNG]` (defaults: bench/results/updown.csv, relative to the
//! current directory, and the CSV's path with the extension .png). The font is DejaVu Sans
//! (Debian's fonts-dejavu-core); `BENCH_PLOT_FONT` names another TTF file.

use std::path::{Path, PathBuf};

use plotters::style::{register_font, FontStyle};

mod build;
mod updown;

const DEFAULT_CSV: &str = "bench/results/updown.csv";
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

/// The data rows of a CSV (the header line skipped, blank lines too): line number (from 1) and
/// fields, trimmed.
/// A parse error at a line of the CSV at `path`.
fn error_at(path: &Path) -> impl Fn(usize, String) -> PlotError + '_ {
    move |line, reason| PlotError::Parse {
        path: path.to_path_buf(),
        line,
        reason,
    }
}

/// A median time in ms: a positive finite number.
fn time_ms(
    ms: &str,
    line: usize,
    err: &impl Fn(usize, String) -> PlotError,
) -> Result<f64, PlotError> {
    ms.parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .ok_or_else(|| err(line, format!("invalid time {ms:?}")))
}

fn csv_rows(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, row)| !row.trim().is_empty())
        .map(|(i, row)| (i + 1, row.split(',').map(str::trim).collect()))
}

/// A parsed CSV, of the kind its header names.
#[derive(Debug, PartialEq)]
enum Chart {
    UpDown(updown::Results),
    Build(build::Builds),
}

impl Chart {
    fn parse(text: &str, path: &Path) -> Result<Self, PlotError> {
        let first = text.lines().next().unwrap_or_default();
        let header: Vec<&str> = first.split(',').map(str::trim).collect();
        let header = header.join(",");
        if header == updown::HEADER {
            updown::Results::parse(text, path).map(Chart::UpDown)
        } else if header == build::HEADER {
            build::Builds::parse(text, path).map(Chart::Build)
        } else {
            Err(PlotError::Parse {
                path: path.to_path_buf(),
                line: 1,
                reason: format!(
                    "unknown header {first:?} (expected {:?} or {:?})",
                    updown::HEADER,
                    build::HEADER
                ),
            })
        }
    }

    fn draw(&self, png: &Path) -> Result<(), PlotError> {
        match self {
            Chart::UpDown(results) => updown::draw(results, png),
            Chart::Build(builds) => build::draw(builds, png),
        }
    }
}

/// The PNG beside the CSV: bench/results/build.csv gives bench/results/build.png.
fn default_png(csv: &Path) -> PathBuf {
    csv.with_extension("png")
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
    let png = args.next().map_or_else(|| default_png(&csv), PathBuf::from);
    let font =
        std::env::var_os("BENCH_PLOT_FONT").map_or_else(|| DEFAULT_FONT.into(), PathBuf::from);
    let text = std::fs::read_to_string(&csv).map_err(|source| PlotError::Read {
        path: csv.clone(),
        source,
    })?;
    let chart = Chart::parse(&text, &csv)?;
    load_font(&font)?;
    chart.draw(&png)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_png_defaults_to_the_csv_path_with_png_extension() {
        assert_eq!(
            default_png(Path::new(DEFAULT_CSV)),
            Path::new("bench/results/updown.png")
        );
        assert_eq!(
            default_png(Path::new("bench/results/build.csv")),
            Path::new("bench/results/build.png")
        );
        assert_eq!(default_png(Path::new("/tmp/x")), Path::new("/tmp/x.png"));
    }

    #[test]
    fn the_header_picks_the_kind() {
        let path = Path::new("r.csv");
        let c = Chart::parse("services,tool,op,median_ms\n1,docker,up,900\n", path).unwrap();
        assert!(matches!(c, Chart::UpDown(_)), "{c:?}");
        let c = Chart::parse("scenario, tool, median_ms\na,docker,1097.6\n", path).unwrap();
        assert!(matches!(c, Chart::Build(_)), "{c:?}");
        let e = Chart::parse("scenario,tool,median_ms\n", path).unwrap_err();
        assert_eq!(e.to_string(), "r.csv: no measurements");
    }

    #[test]
    fn an_unknown_header_is_named() {
        let e = Chart::parse("when,what\n1,2\n", Path::new("r.csv")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "r.csv:1: unknown header \"when,what\" (expected \"services,tool,op,median_ms\" \
             or \"scenario,tool,median_ms\")"
        );
        let e = Chart::parse("", Path::new("r.csv")).unwrap_err();
        assert!(
            e.to_string().starts_with("r.csv:1: unknown header \"\""),
            "{e}"
        );
    }
}
