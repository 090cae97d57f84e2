//! `bench/updown.sh`'s results (`services,tool,op,median_ms`): wall time against the number
//! of services, one line per tool and operation, on log-log axes.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use crate::PlotError;

/// The header line updown.sh writes.
pub const HEADER: &str = "services,tool,op,median_ms";

/// Median wall time (ms) of one tool and operation, by number of services.
type Series = BTreeMap<u32, f64>;

/// The CSV's rows grouped by (tool, op): "docker"/"rcompose", "up"/"down".
#[derive(Debug, Default, PartialEq)]
pub struct Results {
    series: BTreeMap<(String, String), Series>,
}

impl Results {
    /// Parses `services,tool,op,median_ms` rows (header first, as updown.sh writes them).
    pub fn parse(text: &str, path: &Path) -> Result<Self, PlotError> {
        let mut results = Results::default();
        let err = crate::error_at(path);
        for (line, fields) in crate::csv_rows(text) {
            let [services, tool, op, ms] = fields[..] else {
                return Err(err(
                    line,
                    format!("expected 4 fields, found {}", fields.len()),
                ));
            };
            let services: u32 = services
                .parse()
                .map_err(|_| err(line, format!("invalid number of services {services:?}")))?;
            let ms = crate::time_ms(ms, line, &err)?;
            if services == 0 {
                return Err(err(line, "0 services cannot be plotted".into()));
            }
            results
                .series
                .entry((tool.to_string(), op.to_string()))
                .or_default()
                .insert(services, ms);
        }
        if results.series.is_empty() {
            return Err(PlotError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(results)
    }

    /// Axis ranges (services, seconds) covering every point, with a margin on the log scale.
    fn ranges(&self) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
        let points = self.series.values().flat_map(|s| s.iter());
        let (mut n_max, mut t_min, mut t_max) = (1.0f64, f64::MAX, 0.0f64);
        for (&n, &ms) in points {
            n_max = n_max.max(f64::from(n));
            t_min = t_min.min(ms / 1000.0);
            t_max = t_max.max(ms / 1000.0);
        }
        (0.8..n_max * 1.25, t_min / 1.5..t_max * 1.5)
    }
}

pub fn draw(results: &Results, png: &Path) -> Result<(), PlotError> {
    let fail = |e: &dyn std::fmt::Display| PlotError::Draw {
        path: png.to_path_buf(),
        reason: e.to_string(),
    };
    let root = BitMapBackend::new(png, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (x, y) = results.ranges();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "up -d / down of N trivial services (median wall time)",
            ("sans-serif", 24),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(x.log_scale(), y.log_scale())
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("services")
        .y_desc("seconds")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v}"))
        .draw()
        .map_err(|e| fail(&e))?;
    for ((tool, op), series) in &results.series {
        let colour = match tool.as_str() {
            "docker" => RGBColor(0x1d, 0x63, 0xed),
            _ => RGBColor(0xce, 0x42, 0x2b),
        };
        // up is what the plot is about: solid and thick; down lighter.
        let style = if op == "up" {
            colour.stroke_width(3)
        } else {
            colour.mix(0.45).stroke_width(2)
        };
        let points: Vec<(f64, f64)> = series
            .iter()
            .map(|(&n, &ms)| (f64::from(n), ms / 1000.0))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), style))
            .map_err(|e| fail(&e))?
            .label(format!("{tool} {op}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 4, style.filled())),
            )
            .map_err(|e| fail(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{load_font, DEFAULT_FONT};

    const CSV: &str = "services,tool,op,median_ms\n\
                       1,docker,up,900.5\n\
                       10,docker,up,2500\n\
                       1,rcompose,up,40\n\
                       10,rcompose,up,120.5\n\
                       1,rcompose,down,30\n";

    #[test]
    fn groups_rows_by_tool_and_op() {
        let r = Results::parse(CSV, Path::new("x.csv")).unwrap();
        assert_eq!(r.series.len(), 3);
        let up = &r.series[&("rcompose".to_string(), "up".to_string())];
        assert_eq!(up.get(&10), Some(&120.5));
        assert_eq!(up.len(), 2);
    }

    #[test]
    fn ranges_cover_every_point() {
        let r = Results::parse(CSV, Path::new("x.csv")).unwrap();
        let (x, y) = r.ranges();
        assert!(x.start < 1.0 && x.end > 10.0);
        assert!(y.start < 0.030 && y.end > 2.5);
    }

    #[test]
    fn bad_rows_name_the_line() {
        let e = Results::parse("h\n1,docker,up\n", Path::new("x.csv")).unwrap_err();
        assert_eq!(e.to_string(), "x.csv:2: expected 4 fields, found 3");
        let e = Results::parse("h\n1,docker,up,0\n", Path::new("x.csv")).unwrap_err();
        assert!(e.to_string().contains("invalid time \"0\""), "{e}");
        let e = Results::parse("h\nmany,docker,up,1\n", Path::new("x.csv")).unwrap_err();
        assert!(e.to_string().contains("invalid number of services"), "{e}");
        let e = Results::parse("h\n0,docker,up,1\n", Path::new("x.csv")).unwrap_err();
        assert!(e.to_string().contains("0 services"), "{e}");
    }

    #[test]
    fn a_header_alone_is_no_measurement() {
        let e = Results::parse("services,tool,op,median_ms\n", Path::new("x.csv")).unwrap_err();
        assert_eq!(e.to_string(), "x.csv: no measurements");
    }

    #[test]
    fn draws_a_png() {
        let font = Path::new(DEFAULT_FONT);
        if !font.exists() {
            eprintln!("skipping: {DEFAULT_FONT} missing (Debian package fonts-dejavu-core)");
            return;
        }
        load_font(font).unwrap();
        let r = Results::parse(CSV, Path::new("x.csv")).unwrap();
        let dir = std::env::temp_dir().join(format!("rcb-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let png = dir.join("t.png");
        draw(&r, &png).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }
}
