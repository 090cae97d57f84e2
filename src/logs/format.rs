//! `web-1  | hello`: log lines as docker compose prints them.

use std::collections::HashMap;
use std::sync::Mutex;

use console::Style;

use super::timefmt::format_timestamp;
use super::Entry;

/// Docker compose v2's rainbow (`cmd/formatter/colors.go`): the basic colours, then their
/// bold ("intense") forms, handed out in this order.
const PALETTE: [Style; 10] = [
    Style::new().cyan(),
    Style::new().yellow(),
    Style::new().green(),
    Style::new().magenta(),
    Style::new().blue(),
    Style::new().cyan().bold(),
    Style::new().yellow().bold(),
    Style::new().green().bold(),
    Style::new().magenta().bold(),
    Style::new().blue().bold(),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FormatOptions {
    /// Colour the prefix (`--ansi`, `--no-color`); decided by the caller, not by the terminal.
    pub color: bool,
    /// Print `name  | ` (`--no-log-prefix` turns it off).
    pub prefix: bool,
    /// Print each entry's time after the prefix (`--timestamps`).
    pub timestamps: bool,
}

/// Formats entries of many containers consistently: one prefix width, one colour per service
/// (given in the order services are first seen, so the same service keeps its colour).
#[derive(Debug)]
pub struct Formatter {
    width: usize,
    opts: FormatOptions,
    colors: Mutex<HashMap<String, usize>>,
}

impl Formatter {
    /// `names`: every container name that may be printed, to pad prefixes to one width.
    pub fn new(names: &[&str], opts: FormatOptions) -> Formatter {
        // Compose pads to the longest name plus one, then writes " | ".
        let longest = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        Formatter {
            width: longest + 1,
            opts,
            colors: Mutex::new(HashMap::new()),
        }
    }

    /// One output line, always ending with a newline.
    pub fn format(&self, container_name: &str, service: &str, entry: &Entry) -> String {
        let mut out = String::new();
        if self.opts.prefix {
            let prefix = format!("{container_name:<width$} | ", width = self.width);
            if self.opts.color {
                let style = PALETTE[self.color_of(service)].clone().force_styling(true);
                out.push_str(&style.apply_to(prefix).to_string());
            } else {
                out.push_str(&prefix);
            }
        }
        if self.opts.timestamps {
            out.push_str(&format_timestamp(entry.time));
            out.push(' ');
        }
        let line = entry.line.strip_suffix(b"\n").unwrap_or(&entry.line);
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
        out
    }

    fn color_of(&self, service: &str) -> usize {
        let mut colors = self.colors.lock().unwrap_or_else(|e| e.into_inner());
        let next = colors.len() % PALETTE.len();
        *colors.entry(service.to_string()).or_insert(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Stream;
    use std::time::{Duration, UNIX_EPOCH};

    fn entry(line: &str) -> Entry {
        Entry {
            stream: Stream::Stdout,
            time: UNIX_EPOCH + Duration::new(1_795_341_600, 5_000),
            line: line.as_bytes().to_vec(),
        }
    }

    const PLAIN: FormatOptions = FormatOptions {
        color: false,
        prefix: true,
        timestamps: false,
    };

    #[test]
    fn pads_the_prefix_to_the_longest_name() {
        let f = Formatter::new(&["web-1", "db-1", "worker-1"], PLAIN);
        assert_eq!(
            f.format("web-1", "web", &entry("hello\n")),
            "web-1     | hello\n"
        );
        assert_eq!(
            f.format("worker-1", "worker", &entry("x\n")),
            "worker-1  | x\n"
        );
        let f = Formatter::new(&["web-1", "db-1"], PLAIN);
        assert_eq!(f.format("db-1", "db", &entry("up\n")), "db-1   | up\n");
        assert_eq!(
            f.format("web-1", "web", &entry("hello\n")),
            "web-1  | hello\n"
        );
    }

    #[test]
    fn ends_every_line_with_one_newline() {
        let f = Formatter::new(&["a-1"], PLAIN);
        assert_eq!(f.format("a-1", "a", &entry("partial")), "a-1  | partial\n");
        assert_eq!(f.format("a-1", "a", &entry("")), "a-1  | \n");
    }

    #[test]
    fn timestamps_and_no_prefix() {
        let f = Formatter::new(
            &["web-1"],
            FormatOptions {
                timestamps: true,
                ..PLAIN
            },
        );
        assert_eq!(
            f.format("web-1", "web", &entry("hi\n")),
            "web-1  | 2026-11-22T10:00:00.000005000Z hi\n"
        );
        let f = Formatter::new(&["web-1"], FormatOptions::default());
        assert_eq!(f.format("web-1", "web", &entry("hi\n")), "hi\n");
        let f = Formatter::new(
            &["web-1"],
            FormatOptions {
                color: true,
                timestamps: true,
                prefix: false,
            },
        );
        assert_eq!(
            f.format("web-1", "web", &entry("hi\n")),
            "2026-11-22T10:00:00.000005000Z hi\n"
        );
    }

    #[test]
    fn colours_follow_compose_order_and_stay_with_the_service() {
        let f = Formatter::new(
            &["web-1", "web-2", "db-1"],
            FormatOptions {
                color: true,
                ..PLAIN
            },
        );
        let web1 = f.format("web-1", "web", &entry("a\n"));
        let db = f.format("db-1", "db", &entry("b\n"));
        let web2 = f.format("web-2", "web", &entry("c\n"));
        // Cyan (36) first, then yellow (33), the prefix reset before the line.
        assert_eq!(web1, "\x1b[36mweb-1  | \x1b[0ma\n");
        assert_eq!(db, "\x1b[33mdb-1   | \x1b[0mb\n");
        assert_eq!(web2, "\x1b[36mweb-2  | \x1b[0mc\n");
        for (i, svc) in ["s2", "s3", "s4", "s5"].iter().enumerate() {
            let out = f.format("x", svc, &entry("\n"));
            let code = ["32", "35", "34", "36"][i];
            assert!(out.starts_with(&format!("\x1b[{code}m")), "{svc}: {out:?}");
        }
        // The sixth service gets the first intense colour: cyan and bold.
        let out = f.format("x", "s5", &entry("\n"));
        assert!(
            out.contains("\x1b[36m") && out.contains("\x1b[1m"),
            "{out:?}"
        );
    }
}
