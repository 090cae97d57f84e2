//! Pull progress: bars on a terminal (indicatif), plain lines otherwise, nothing when quiet.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

/// How progress is shown (`--progress`, `-q`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bars when standard error is a terminal, lines otherwise.
    Auto,
    Tty,
    Plain,
    Quiet,
}

/// Progress output shared by the tasks of a pull.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

enum Inner {
    Quiet,
    Plain(Mutex<()>),
    Tty(MultiProgress),
}

/// One layer's progress.
pub struct Layer {
    bar: Option<ProgressBar>,
    progress: Progress,
    label: String,
    total: u64,
}

impl Progress {
    pub fn new(mode: Mode) -> Progress {
        let inner = match mode {
            Mode::Quiet => Inner::Quiet,
            Mode::Plain => Inner::Plain(Mutex::new(())),
            Mode::Tty => Inner::Tty(MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            Mode::Auto if std::io::stderr().is_terminal() => {
                Inner::Tty(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
            }
            Mode::Auto => Inner::Plain(Mutex::new(())),
        };
        Progress {
            inner: Arc::new(inner),
        }
    }

    /// A line of status (`redis:7 Pulling`), above the bars on a terminal.
    pub fn line(&self, msg: &str) {
        match &*self.inner {
            Inner::Quiet => {}
            Inner::Plain(lock) => {
                let _guard = lock.lock();
                eprintln!("{msg}");
            }
            Inner::Tty(multi) => {
                let _ = multi.println(msg);
            }
        }
    }

    /// Start showing a layer of `total` bytes.
    pub fn layer(&self, label: &str, total: u64) -> Layer {
        let bar = match &*self.inner {
            Inner::Tty(multi) => {
                let bar = multi.add(ProgressBar::new(total));
                let style = ProgressStyle::with_template(
                    " {prefix} {msg:12} [{bar:30}] {bytes}/{total_bytes}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_prefix(label.to_string());
                bar.set_message("Downloading");
                Some(bar)
            }
            _ => None,
        };
        Layer {
            bar,
            progress: self.clone(),
            label: label.to_string(),
            total,
        }
    }
}

impl Layer {
    pub fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    /// The layer is in the store.
    pub fn finish(&self, what: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_message(what.to_string());
                bar.finish();
            }
            None => self.progress.line(&format!(
                " {} {what} ({})",
                self.label,
                human_bytes(self.total)
            )),
        }
    }

    pub fn fail(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon_with_message("Failed");
        }
    }
}

/// Sizes the way docker prints them: decimal units, four significant digits (go-units'
/// `HumanSize`).
pub fn human_bytes(n: u64) -> String {
    scaled_size(n, 1000.0, &["B", "kB", "MB", "GB", "TB"], 4)
}

/// go-units' sizes: `bytes` in the largest unit of `base` below it, with C's `%.{digits}g`
/// (`digits` significant digits, trailing zeros dropped).
pub fn scaled_size(bytes: u64, base: f64, units: &[&str], digits: i32) -> String {
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= base && unit + 1 < units.len() {
        size /= base;
        unit += 1;
    }
    let text = if size == 0.0 {
        "0".to_string()
    } else {
        let exponent = size.log10().floor() as i32;
        let decimals = (digits - 1 - exponent).max(0) as usize;
        let text = format!("{size:.decimals$}");
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text
        }
    };
    format!("{text}{}", units[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_docker() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1_000), "1kB");
        assert_eq!(human_bytes(53_800_000), "53.8MB");
        assert_eq!(human_bytes(1_234_567_890), "1.235GB");
        assert_eq!(human_bytes(999_999), "1000kB");
    }
}
