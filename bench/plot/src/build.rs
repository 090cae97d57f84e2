//! `bench/build.sh`'s results (`scenario,tool,median_ms`): one group of bars per scenario, one
//! bar per tool, on a logarithmic time axis (the medians span ~10 ms to ~10 s).

use std::collections::BTreeMap;
use std::path::Path;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::PlotError;

/// The header line build.sh writes.
pub const HEADER: &str = "scenario,tool,median_ms";

/// The scenarios build.sh measures, by their key in the CSV, with their label on the x axis.
const SCENARIOS: [(&str, &str); 4] = [
    ("a", "(a) cold"),
    ("b", "(b) nothing changed"),
    ("c", "(c) one file changed"),
    ("d", "(d) four services"),
];

/// Times that are no measurement: build.sh writes `n/a` when every run of a tool failed.
const NOT_MEASURED: [&str; 2] = ["failed", "n/a"];

/// One scenario's median wall times (ms), by index into [`Builds::tools`].
#[derive(Debug, PartialEq)]
struct Scenario {
    key: &'static str,
    label: &'static str,
    ms: BTreeMap<usize, f64>,
}

/// The CSV's measured rows, tools and scenarios in the order they first appear.
#[derive(Debug, Default, PartialEq)]
pub struct Builds {
    tools: Vec<String>,
    scenarios: Vec<Scenario>,
}

impl Builds {
    /// Parses `scenario,tool,median_ms` rows (header first, as build.sh writes them); rows
    /// whose time is `failed` or `n/a` are left out.
    pub fn parse(text: &str, path: &Path) -> Result<Self, PlotError> {
        let mut builds = Builds::default();
        let err = crate::error_at(path);
        for (line, fields) in crate::csv_rows(text) {
            let [scenario, tool, ms] = fields[..] else {
                return Err(err(
                    line,
                    format!("expected 3 fields, found {}", fields.len()),
                ));
            };
            let &(key, label) = SCENARIOS
                .iter()
                .find(|(key, _)| *key == scenario)
                .ok_or_else(|| {
                    err(
                        line,
                        format!("unknown scenario {scenario:?} (expected a, b, c or d)"),
                    )
                })?;
            if tool.is_empty() {
                return Err(err(line, "empty tool name".into()));
            }
            if NOT_MEASURED.contains(&ms) {
                continue;
            }
            let ms = crate::time_ms(ms, line, &err)?;
            let t = match builds.tools.iter().position(|t| t == tool) {
                Some(t) => t,
                None => {
                    builds.tools.push(tool.to_string());
                    builds.tools.len() - 1
                }
            };
            let s = match builds.scenarios.iter().position(|s| s.key == key) {
                Some(s) => s,
                None => {
                    builds.scenarios.push(Scenario {
                        key,
                        label,
                        ms: BTreeMap::new(),
                    });
                    builds.scenarios.len() - 1
                }
            };
            if builds.scenarios[s].ms.insert(t, ms).is_some() {
                return Err(err(
                    line,
                    format!("a second time for {tool} in scenario {key}"),
                ));
            }
        }
        if builds.scenarios.is_empty() {
            return Err(PlotError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(builds)
    }

    /// The time axis (ms): every bar, with room below the shortest (so that it shows) and above
    /// the tallest for its value label.
    fn y_range(&self) -> std::ops::Range<f64> {
        let times = self.scenarios.iter().flat_map(|s| s.ms.values().copied());
        let (lo, hi) = times.fold((f64::MAX, 0.0f64), |(lo, hi), ms| (lo.min(ms), hi.max(ms)));
        lo / 3.0..hi * 2.5
    }
}

/// The tools' colours: docker and rcompose as in the updown plot.
fn colour(tool: &str, index: usize) -> RGBColor {
    match tool {
        "docker" => RGBColor(0x1d, 0x63, 0xed),
        "rcompose" => RGBColor(0xce, 0x42, 0x2b),
        "buildah" => RGBColor(0x6a, 0x8e, 0x23),
        _ => {
            let RGBAColor(r, g, b, _) = Palette99::pick(index).to_rgba();
            RGBColor(r, g, b)
        }
    }
}

/// The x axis: one slot per scenario, centred on 0, 1, 2...; its ticks and labels at the centres
/// (plotters' own f64 axis would put them at round numbers of its choosing).
struct Slots {
    count: usize,
}

impl Ranged for Slots {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, (lo, hi): (i32, i32)) -> i32 {
        let share = (value + 0.5) / self.count as f64;
        lo + (f64::from(hi - lo) * share).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        (0..self.count).map(|g| g as f64).collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        -0.5..self.count as f64 - 0.5
    }
}

/// The y axis: milliseconds on a log scale. Labelled lines at the powers of ten, or at 1, 2 and 5
/// times them when the range spans two decades or less; light lines at the other multiples.
/// (plotters' own log axis labels some values twice on a narrow range.)
struct LogMs(std::ops::Range<f64>);

impl Ranged for LogMs {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, (lo, hi): (i32, i32)) -> i32 {
        let (start, end) = (self.0.start.log10(), self.0.end.log10());
        let share = (value.log10() - start) / (end - start);
        lo + (f64::from(hi - lo) * share).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        let multiples: &[f64] = if hint.weight().allow_light_points() {
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
        } else if (self.0.end / self.0.start).log10() > 2.0 {
            &[1.0]
        } else {
            &[1.0, 2.0, 5.0]
        };
        let (first, last) = (self.0.start.log10().floor(), self.0.end.log10().ceil());
        (first as i32..=last as i32)
            .flat_map(|k| multiples.iter().map(move |m| m * 10f64.powi(k)))
            .filter(|v| self.0.contains(v))
            .collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.0.clone()
    }
}

/// Width of the strip right of the chart that holds the legend, px.
const LEGEND_WIDTH: u32 = 130;

pub fn draw(builds: &Builds, png: &Path) -> Result<(), PlotError> {
    let fail = |e: &dyn std::fmt::Display| PlotError::Draw {
        path: png.to_path_buf(),
        reason: e.to_string(),
    };
    let (width, height) = (1000, 600);
    let root = BitMapBackend::new(png, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let root = root
        .titled(
            "Image builds: median wall time (ms, log scale)",
            ("sans-serif", 24),
        )
        .map_err(|e| fail(&e))?;
    // The legend beside the chart, not on it: no bar is ever hidden behind it.
    let (plot_area, legend_area) = root.split_horizontally(width - LEGEND_WIDTH);

    let groups = builds.scenarios.len();
    let x = Slots { count: groups };
    let y = builds.y_range();
    let bottom = y.start;
    let mut chart = ChartBuilder::on(&plot_area)
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x, LogMs(y))
        .map_err(|e| fail(&e))?;
    let label_of = |v: &f64| {
        let g = v.round();
        (g >= 0.0 && (v - g).abs() < 1e-6)
            .then(|| builds.scenarios.get(g as usize))
            .flatten()
            .map_or_else(String::new, |s| s.label.to_string())
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&label_of)
        .x_label_style(("sans-serif", 16))
        .y_desc("ms")
        .y_label_style(("sans-serif", 14))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| fail(&e))?;

    // Each group fills 80% of its slot; each bar a share of that, with a thin gap.
    let bar = 0.8 / builds.tools.len() as f64;
    let value_style = TextStyle::from(("sans-serif", 15).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    for (t, tool) in builds.tools.iter().enumerate() {
        let colour = colour(tool, t);
        let bars: Vec<(f64, f64)> = builds
            .scenarios
            .iter()
            .enumerate()
            .filter_map(|(g, s)| {
                let left = g as f64 - 0.4 + bar * t as f64;
                s.ms.get(&t).map(|&ms| (left, ms))
            })
            .collect();
        chart
            .draw_series(bars.iter().map(|&(left, ms)| {
                Rectangle::new(
                    [(left + bar * 0.06, bottom), (left + bar * 0.94, ms)],
                    colour.filled(),
                )
            }))
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(bars.iter().map(|&(left, ms)| {
                EmptyElement::at((left + bar / 2.0, ms))
                    + Text::new(format!("{ms:.0}"), (0, -3), value_style.clone())
            }))
            .map_err(|e| fail(&e))?;
    }

    let entry_style = ("sans-serif", 16).into_font().color(&BLACK);
    for (t, tool) in builds.tools.iter().enumerate() {
        let y = 40 + 28 * t as i32;
        legend_area
            .draw(&Rectangle::new(
                [(8, y - 8), (26, y + 8)],
                colour(tool, t).filled(),
            ))
            .map_err(|e| fail(&e))?;
        legend_area
            .draw(&Text::new(
                tool.as_str(),
                (34, y),
                entry_style.pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{load_font, DEFAULT_FONT};

    const CSV: &str = "scenario,tool,median_ms\n\
                       a,docker,1097.6\n\
                       a,buildah,3278.3\n\
                       a,rcompose,240.2\n\
                       b,docker,155.7\n\
                       b,buildah,failed\n\
                       b,rcompose,12.5\n\
                       d,docker,1460.8\n\
                       d,buildah,10656.3\n\
                       d,rcompose,259.1\n\
                       c,docker,832.6\n\
                       c,buildah,n/a\n\
                       c,rcompose,185.9\n";

    fn parse(text: &str) -> Result<Builds, PlotError> {
        Builds::parse(text, Path::new("build.csv"))
    }

    #[test]
    fn groups_rows_by_scenario_in_the_order_first_seen() {
        let b = parse(CSV).unwrap();
        assert_eq!(b.tools, ["docker", "buildah", "rcompose"]);
        let keys: Vec<&str> = b.scenarios.iter().map(|s| s.key).collect();
        assert_eq!(keys, ["a", "b", "d", "c"]);
        assert_eq!(b.scenarios[0].label, "(a) cold");
        assert_eq!(b.scenarios[2].label, "(d) four services");
        let d = &b.scenarios[2].ms;
        assert_eq!((d[&0], d[&1], d[&2]), (1460.8, 10656.3, 259.1));
    }

    #[test]
    fn tool_order_is_first_seen_in_the_file() {
        let b = parse("h\nb,rcompose,12\nb,docker,150\na,buildah,3000\na,rcompose,240\n").unwrap();
        assert_eq!(b.tools, ["rcompose", "docker", "buildah"]);
        let keys: Vec<&str> = b.scenarios.iter().map(|s| s.key).collect();
        assert_eq!(keys, ["b", "a"]);
        assert_eq!(b.scenarios[1].ms.get(&2), Some(&3000.0));
        assert_eq!(b.scenarios[1].ms.get(&1), None);
    }

    #[test]
    fn failed_rows_are_left_out() {
        let b = parse(CSV).unwrap();
        assert_eq!(b.scenarios[1].ms.len(), 2, "(b): buildah failed");
        assert_eq!(b.scenarios[1].ms.get(&1), None);
        assert_eq!(b.scenarios[3].ms.get(&1), None, "(c): buildah n/a");
        // A tool that never succeeded has no bar and no legend entry.
        let b = parse("h\na,buildah,failed\na,docker,1000\n").unwrap();
        assert_eq!(b.tools, ["docker"]);
        // Nothing but failures is no measurement.
        let e = parse("h\na,buildah,failed\nb,docker,n/a\n").unwrap_err();
        assert_eq!(e.to_string(), "build.csv: no measurements");
    }

    #[test]
    fn bad_rows_name_the_file_and_line() {
        let e = parse("h\na,docker,1\na,rcompose\n").unwrap_err();
        assert_eq!(e.to_string(), "build.csv:3: expected 3 fields, found 2");
        let e = parse("h\na,docker,fast\n").unwrap_err();
        assert_eq!(e.to_string(), "build.csv:2: invalid time \"fast\"");
        let e = parse("h\na,docker,0\n").unwrap_err();
        assert_eq!(e.to_string(), "build.csv:2: invalid time \"0\"");
        let e = parse("h\n\ne,docker,1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "build.csv:3: unknown scenario \"e\" (expected a, b, c or d)"
        );
        let e = parse("h\na,,1\n").unwrap_err();
        assert_eq!(e.to_string(), "build.csv:2: empty tool name");
        let e = parse("h\na,docker,1\na,docker,2\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "build.csv:3: a second time for docker in scenario a"
        );
    }

    #[test]
    fn a_header_alone_is_no_measurement() {
        let e = parse("scenario,tool,median_ms\n").unwrap_err();
        assert_eq!(e.to_string(), "build.csv: no measurements");
    }

    #[test]
    fn the_time_axis_has_room_below_and_above_every_bar() {
        let r = parse(CSV).unwrap().y_range();
        assert!(r.start < 12.5 / 2.0 && r.end > 10656.3 * 2.0, "{r:?}");
    }

    #[test]
    fn the_time_axis_is_labelled_at_round_values() {
        use plotters::coord::ranged1d::BoldPoints;
        let wide = LogMs(4.0..27_000.0).key_points(BoldPoints(10));
        assert_eq!(wide, [10.0, 100.0, 1000.0, 10_000.0]);
        let narrow = LogMs(50.0..2700.0).key_points(BoldPoints(10));
        assert_eq!(narrow, [50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0]);
        let light = LogMs(50.0..2700.0).key_points(20);
        assert_eq!(light.len(), 5 + 9 + 2, "{light:?}"); // 50-90, 100-900, 1000 and 2000
        let axis = LogMs(10.0..1000.0);
        assert_eq!(axis.map(&100.0, (0, 200)), 100);
    }

    #[test]
    fn draws_a_png() {
        let font = Path::new(DEFAULT_FONT);
        if !font.exists() {
            eprintln!("skipping: {DEFAULT_FONT} missing (Debian package fonts-dejavu-core)");
            return;
        }
        load_font(font).unwrap();
        let b = parse(CSV).unwrap();
        let dir = std::env::temp_dir().join(format!("rcb-plot-build-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let png = dir.join("t.png");
        draw(&b, &png).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }
}
