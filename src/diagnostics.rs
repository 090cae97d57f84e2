//! Where the library's diagnostics (`tracing` events) go: warnings to stderr, as the CLI prints
//! its own (`WARN …`), and more with `RCOMPOSE_LOG`. Without a subscriber they went nowhere: a
//! network's ignored driver option, an unknown `--chown` user, a log that could not be
//! followed were never seen.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::level_filters::LevelFilter;

/// The variable that sets the level: `off`, `error`, `warn` (the default), `info`, `debug`,
/// `trace`.
pub const LOG_VAR: &str = "RCOMPOSE_LOG";

/// The level `RCOMPOSE_LOG` asks for; `warn` when unset, or set to something else (then
/// also said, once the subscriber is in place).
fn level(value: Option<&str>) -> (LevelFilter, Option<String>) {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return (LevelFilter::WARN, None);
    };
    match v.to_ascii_lowercase().as_str() {
        "off" => (LevelFilter::OFF, None),
        "error" => (LevelFilter::ERROR, None),
        "warn" | "warning" => (LevelFilter::WARN, None),
        "info" => (LevelFilter::INFO, None),
        "debug" => (LevelFilter::DEBUG, None),
        "trace" => (LevelFilter::TRACE, None),
        _ => (
            LevelFilter::WARN,
            Some(format!(
                "{LOG_VAR}={v:?} is not a level (off, error, warn, info, debug, trace): using warn"
            )),
        ),
    }
}

/// Installs the process's subscriber. `ansi`: colour the level (`None`: as the `console`
/// crate decides for stderr, which `--ansi` sets).
pub fn init(ansi: Option<bool>) {
    let (max, bad) = level(std::env::var(LOG_VAR).ok().as_deref());
    let ansi =
        ansi.unwrap_or_else(|| std::io::stderr().is_terminal() && console::colors_enabled_stderr());
    let installed = tracing_subscriber::fmt()
        .with_writer(Lines)
        .with_max_level(max)
        .with_ansi(false)
        .event_format(Format { ansi })
        .try_init()
        .is_ok();
    if let (true, Some(message)) = (installed, bad) {
        tracing::warn!("{message}");
    }
}

/// A diagnostic as the CLI prints its own warnings: `WARN message key=value…`.
struct Format {
    ansi: bool,
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Format
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = *event.metadata().level();
        let name = console::style(level.as_str());
        let name = match (self.ansi, level) {
            (false, _) => name,
            (true, tracing::Level::ERROR) => name.red().force_styling(true),
            (true, tracing::Level::WARN) => name.yellow().force_styling(true),
            (true, _) => name.dim().force_styling(true),
        };
        write!(writer, "{name} ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Where a diagnostic line goes instead of stderr while a [`Redirect`] lives: a build's
/// live display or JSON stream, which a stray line would break.
type Sink = Arc<dyn Fn(&str) + Send + Sync>;

static SINK: Mutex<Option<(u64, Sink)>> = Mutex::new(None);
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Diagnostics go to `sink` (one call per event, its line without the newline) until this
/// is dropped.
pub struct Redirect(u64);

pub fn redirect(sink: Sink) -> Redirect {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut s) = SINK.lock() {
        *s = Some((id, sink));
    }
    Redirect(id)
}

impl Drop for Redirect {
    fn drop(&mut self) {
        if let Ok(mut s) = SINK.lock() {
            if s.as_ref().is_some_and(|(id, _)| *id == self.0) {
                *s = None;
            }
        }
    }
}

/// The subscriber's writer: one event's line, sent on drop to the sink or stderr.
struct Lines;

impl tracing_subscriber::fmt::MakeWriter<'_> for Lines {
    type Writer = Line;

    fn make_writer(&self) -> Line {
        Line(Vec::new())
    }
}

struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        // The sink is called without the lock held: it takes its own.
        let sink = SINK
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(|(_, f)| f.clone()));
        match sink {
            Some(f) => f(String::from_utf8_lossy(&self.0).trim_end_matches('\n')),
            None => {
                let _ = std::io::stderr().lock().write_all(&self.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_by_name_warn_by_default() {
        assert_eq!(level(None), (LevelFilter::WARN, None));
        assert_eq!(level(Some("")), (LevelFilter::WARN, None));
        assert_eq!(level(Some(" Debug ")), (LevelFilter::DEBUG, None));
        assert_eq!(level(Some("off")), (LevelFilter::OFF, None));
        assert_eq!(level(Some("trace")), (LevelFilter::TRACE, None));
        let (l, said) = level(Some("loud"));
        assert_eq!(l, LevelFilter::WARN);
        assert!(said.is_some_and(|m| m.contains("RCOMPOSE_LOG=\"loud\"")));
    }

    #[test]
    fn a_redirect_takes_the_lines_until_dropped() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let r = redirect(Arc::new(move |l: &str| {
            g.lock().unwrap().push(l.to_string())
        }));
        {
            let mut line = Line(Vec::new());
            line.write_all(b" WARN something\n").unwrap();
        }
        drop(r);
        assert_eq!(*got.lock().unwrap(), vec![" WARN something".to_string()]);
        // A later redirect's drop does not clear a newer one.
        let first = redirect(Arc::new(|_: &str| {}));
        let second = redirect(Arc::new(|_: &str| {}));
        drop(first);
        assert!(SINK.lock().unwrap().is_some());
        drop(second);
        assert!(SINK.lock().unwrap().is_none());
    }
}
