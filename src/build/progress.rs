//! Build progress as BuildKit prints it: numbered steps with their stage and Dockerfile line,
//! `CACHED` marks, step output with timestamps and `DONE` timings (`--progress plain`, what CI
//! logs show; also on a terminal, where the step lines are bold); `quiet` prints nothing;
//! `json` one object per event for tools.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Plain,
    Tty,
    Quiet,
    Json,
}

impl Mode {
    /// `--progress` values as docker's (`auto` picks tty or plain).
    pub fn parse(s: &str, stderr_is_tty: bool) -> Option<Mode> {
        Some(match s {
            "auto" | "" => {
                if stderr_is_tty {
                    Mode::Tty
                } else {
                    Mode::Plain
                }
            }
            "plain" => Mode::Plain,
            "tty" => Mode::Tty,
            "quiet" => Mode::Quiet,
            "json" | "rawjson" => Mode::Json,
            _ => return None,
        })
    }
}

/// A step's number in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepId(pub usize);

pub struct Progress {
    mode: Mode,
    next: AtomicUsize,
    out: Mutex<Box<dyn Write + Send>>,
    started: Instant,
}

impl Progress {
    pub fn new(mode: Mode) -> Progress {
        Progress::to(mode, Box::new(std::io::stderr()))
    }

    pub fn to(mode: Mode, out: Box<dyn Write + Send>) -> Progress {
        Progress {
            mode,
            next: AtomicUsize::new(1),
            out: Mutex::new(out),
            started: Instant::now(),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn emit(&self, plain: impl FnOnce() -> String, json: impl FnOnce() -> serde_json::Value) {
        let text = match self.mode {
            Mode::Quiet => return,
            Mode::Plain => plain(),
            Mode::Tty => plain(),
            Mode::Json => json().to_string(),
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{text}");
        }
    }

    /// A new step: `#N [name] text`.
    pub fn start(&self, name: &str, text: &str) -> StepId {
        let id = StepId(self.next.fetch_add(1, Ordering::Relaxed));
        let tty = self.mode == Mode::Tty;
        self.emit(
            || {
                let line = format!("#{} [{name}] {text}", id.0);
                if tty {
                    console::style(line).bold().to_string()
                } else {
                    line
                }
            },
            || serde_json::json!({"step": id.0, "name": name, "started": text}),
        );
        id
    }

    /// A line the step printed, with the seconds since the step started (as BuildKit).
    pub fn line(&self, id: StepId, since: Duration, text: &str) {
        self.emit(
            || format!("#{} {:.3} {text}", id.0, since.as_secs_f64()),
            || serde_json::json!({"step": id.0, "log": text}),
        );
    }

    pub fn cached(&self, id: StepId) {
        self.emit(
            || format!("#{} CACHED", id.0),
            || serde_json::json!({"step": id.0, "cached": true}),
        );
    }

    pub fn done(&self, id: StepId, took: Duration) {
        self.emit(
            || format!("#{} DONE {:.1}s", id.0, took.as_secs_f64()),
            || serde_json::json!({"step": id.0, "done": took.as_secs_f64()}),
        );
    }

    pub fn error(&self, id: StepId, message: &str) {
        self.emit(
            || format!("#{} ERROR: {message}", id.0),
            || serde_json::json!({"step": id.0, "error": message}),
        );
    }

    /// A note not tied to a step (a warning from the Dockerfile checks).
    pub fn note(&self, text: &str) {
        self.emit(|| text.to_string(), || serde_json::json!({"note": text}));
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_lines_are_buildkits() {
        let buf = Buf::default();
        let p = Progress::to(Mode::Plain, Box::new(buf.clone()));
        let a = p.start("web build 2/4", "RUN make");
        p.line(a, Duration::from_millis(512), "cc -o x x.c");
        p.done(a, Duration::from_millis(1234));
        let b = p.start("web 3/4", "COPY . .");
        p.cached(b);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "#1 [web build 2/4] RUN make\n#1 0.512 cc -o x x.c\n#1 DONE 1.2s\n\
             #2 [web 3/4] COPY . .\n#2 CACHED\n"
        );
    }

    #[test]
    fn quiet_prints_nothing_and_modes_parse() {
        let buf = Buf::default();
        let p = Progress::to(Mode::Quiet, Box::new(buf.clone()));
        let a = p.start("x", "RUN y");
        p.done(a, Duration::ZERO);
        assert!(buf.0.lock().unwrap().is_empty());
        assert_eq!(Mode::parse("auto", false), Some(Mode::Plain));
        assert_eq!(Mode::parse("auto", true), Some(Mode::Tty));
        assert_eq!(Mode::parse("json", true), Some(Mode::Json));
        assert_eq!(Mode::parse("fancy", true), None);
    }
}
