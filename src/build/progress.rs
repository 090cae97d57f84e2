//! Build progress as BuildKit prints it. `--progress plain` (what CI logs show): numbered
//! steps with their stage and Dockerfile line, `CACHED` marks, step output with timestamps and
//! `DONE` timings. `tty` (and `auto` on a terminal): BuildKit's live display, a region redrawn
//! in place every 100 ms by a thread of its own: a `[+] Building` header with the finished and
//! started steps, one line per step with its time right-aligned, the last output lines of the
//! running steps, and a final draw of every step (`FINISHED`) when the builds end. `quiet`
//! prints nothing; `json` one object per event for tools.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
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

/// How often the live display is redrawn.
const TICK: Duration = Duration::from_millis(100);
/// Output lines shown under a running step (as BuildKit).
const TAIL_LINES: usize = 6;
/// A step's output line is kept up to this many characters: no terminal is wider.
const MAX_LINE_CHARS: usize = 1024;

pub struct Progress {
    mode: Mode,
    next: AtomicUsize,
    shared: Arc<Shared>,
    started: Instant,
    /// The library's diagnostics go into the live display or the JSON stream while it lasts
    /// (a line of their own on stderr would break either).
    _diagnostics: Option<crate::diagnostics::Redirect>,
}

/// What the drawing thread shares with the events' threads.
struct Shared {
    out: Mutex<Box<dyn Write + Send>>,
    live: Mutex<Live>,
    /// Wakes the drawing thread to stop.
    wake: Condvar,
}

/// The live display's state (`Mode::Tty`): events only update it; the drawing thread draws it.
#[derive(Debug)]
struct Live {
    started: Instant,
    /// In start order; a step's id is its index + 1.
    steps: Vec<Step>,
    /// Notes not printed yet: they go above the region, once.
    notes: Vec<String>,
    /// The drawing thread was started (it starts on the first event).
    spawned: bool,
    drawer: Option<JoinHandle<usize>>,
    /// `finish` ran: the final region is on the screen and nothing is redrawn any more.
    finished: bool,
}

#[derive(Debug)]
struct Step {
    name: String,
    text: String,
    started: Instant,
    status: Status,
    /// The last output lines, already made safe to print.
    tail: VecDeque<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Running,
    Done(Duration),
    Cached,
    Failed(Duration),
}

impl Live {
    fn new(started: Instant) -> Live {
        Live {
            started,
            steps: Vec::new(),
            notes: Vec::new(),
            spawned: false,
            drawer: None,
            finished: false,
        }
    }

    fn start(&mut self, name: String, text: String, at: Instant) -> StepId {
        self.steps.push(Step {
            name,
            text,
            started: at,
            status: Status::Running,
            tail: VecDeque::new(),
        });
        StepId(self.steps.len())
    }

    fn step(&mut self, id: StepId) -> Option<&mut Step> {
        id.0.checked_sub(1).and_then(|i| self.steps.get_mut(i))
    }

    fn line(&mut self, id: StepId, safe: String) {
        if let Some(s) = self.step(id) {
            if s.tail.len() == TAIL_LINES {
                s.tail.pop_front();
            }
            s.tail.push_back(safe);
        }
    }

    /// A step ends once: a later event for it is ignored.
    fn end(&mut self, id: StepId, status: impl FnOnce(&Step) -> Status) {
        if let Some(s) = self.step(id) {
            if s.status == Status::Running {
                s.status = status(s);
            }
        }
    }
}

/// Locks `m` even if a thread panicked holding it: a display has nothing to keep consistent.
fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Progress {
    pub fn new(mode: Mode) -> Progress {
        let mut p = Progress::to(mode, Box::new(std::io::stderr()));
        if matches!(mode, Mode::Tty | Mode::Json) {
            let shared = p.shared.clone();
            p._diagnostics = Some(crate::diagnostics::redirect(Arc::new(move |line: &str| {
                shared.diagnostic(mode, line)
            })));
        }
        p
    }

    pub fn to(mode: Mode, out: Box<dyn Write + Send>) -> Progress {
        let started = Instant::now();
        Progress {
            mode,
            next: AtomicUsize::new(1),
            shared: Arc::new(Shared {
                out: Mutex::new(out),
                live: Mutex::new(Live::new(started)),
                wake: Condvar::new(),
            }),
            started,
            _diagnostics: None,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn emit(&self, plain: impl FnOnce() -> String, json: impl FnOnce() -> serde_json::Value) {
        let text = match self.mode {
            Mode::Quiet | Mode::Tty => return,
            Mode::Plain => plain(),
            Mode::Json => json().to_string(),
        };
        if let Ok(mut out) = self.out().lock() {
            let _ = writeln!(out, "{text}");
        }
    }

    fn out(&self) -> &Mutex<Box<dyn Write + Send>> {
        &self.shared.out
    }

    /// Applies an event to the live display's state (`Mode::Tty`) and starts the drawing
    /// thread on the first one. Cheap: the build's threads never wait for the terminal.
    fn live<R>(&self, f: impl FnOnce(&mut Live) -> R) -> R {
        let mut live = lock(&self.shared.live);
        let r = f(&mut live);
        if !live.spawned && !live.finished {
            live.spawned = true;
            let shared = self.shared.clone();
            // Without the thread (it cannot be made) `finish` still draws the final region.
            live.drawer = std::thread::Builder::new()
                .name("build-progress".into())
                .spawn(move || shared.redraw_until_finished())
                .ok();
        }
        r
    }

    /// A new step: `#N [name] text`.
    pub fn start(&self, name: &str, text: &str) -> StepId {
        if self.mode == Mode::Tty {
            let (name, text) = (printable(name), printable(text));
            return self.live(|l| l.start(name, text, Instant::now()));
        }
        let id = StepId(self.next.fetch_add(1, Ordering::Relaxed));
        self.emit(
            || format!("#{} [{name}] {text}", id.0),
            || serde_json::json!({"step": id.0, "name": name, "started": text}),
        );
        id
    }

    /// A line the step printed, with the seconds since the step started (as BuildKit).
    pub fn line(&self, id: StepId, since: Duration, text: &str) {
        if self.mode == Mode::Tty {
            // Made safe before taking the lock, which the drawing thread also takes.
            let safe = printable(text);
            return self.live(|l| l.line(id, safe));
        }
        self.emit(
            || format!("#{} {:.3} {text}", id.0, since.as_secs_f64()),
            || serde_json::json!({"step": id.0, "log": text}),
        );
    }

    pub fn cached(&self, id: StepId) {
        if self.mode == Mode::Tty {
            return self.live(|l| l.end(id, |_| Status::Cached));
        }
        self.emit(
            || format!("#{} CACHED", id.0),
            || serde_json::json!({"step": id.0, "cached": true}),
        );
    }

    pub fn done(&self, id: StepId, took: Duration) {
        if self.mode == Mode::Tty {
            return self.live(|l| l.end(id, |_| Status::Done(took)));
        }
        self.emit(
            || format!("#{} DONE {:.1}s", id.0, took.as_secs_f64()),
            || serde_json::json!({"step": id.0, "done": took.as_secs_f64()}),
        );
    }

    /// The step failed. On a terminal the message is not shown: it is the build's error,
    /// which the command prints under the final region.
    pub fn error(&self, id: StepId, message: &str) {
        if self.mode == Mode::Tty {
            let now = Instant::now();
            return self.live(|l| {
                l.end(id, |s| {
                    Status::Failed(now.saturating_duration_since(s.started))
                })
            });
        }
        self.emit(
            || format!("#{} ERROR: {message}", id.0),
            || serde_json::json!({"step": id.0, "error": message}),
        );
    }

    /// A note not tied to a step (a warning from the Dockerfile checks). On a terminal it is
    /// printed once above the live region.
    pub fn note(&self, text: &str) {
        if self.mode == Mode::Tty {
            let lines: Vec<String> = text.split('\n').map(printable).collect();
            let after_finish = self.live(|l| {
                if l.finished {
                    true
                } else {
                    l.notes.extend_from_slice(&lines);
                    false
                }
            });
            if after_finish {
                self.shared.draw(&lines, &[], 0);
            }
            return;
        }
        self.emit(|| text.to_string(), || serde_json::json!({"note": text}));
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Ends the live display (`Mode::Tty`): stops the drawing thread and draws the final
    /// region, every step and `FINISHED`. Later calls, and later events, draw nothing (a later
    /// note is printed as a line). Also done on drop, so an early return leaves a clean screen.
    pub fn finish(&self) {
        if self.mode != Mode::Tty {
            return;
        }
        let drawer = {
            let mut live = lock(&self.shared.live);
            if live.finished {
                return;
            }
            live.finished = true;
            live.drawer.take()
        };
        self.shared.wake.notify_all();
        // The thread returns how many lines its last region has: the final one replaces it.
        let shown = drawer.and_then(|h| h.join().ok()).unwrap_or(0);
        let (notes, lines) = {
            let mut live = lock(&self.shared.live);
            if live.steps.is_empty() && live.notes.is_empty() && shown == 0 {
                return;
            }
            let (width, _) = term_size();
            let lines = render(&live, width, usize::MAX, Instant::now(), true);
            (std::mem::take(&mut live.notes), lines)
        };
        self.shared.draw(&notes, &lines, shown);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Shared {
    /// A diagnostic line of the library while the display lasts: a note of the live display
    /// (a line above the final region once it is drawn), or a JSON note.
    fn diagnostic(&self, mode: Mode, line: &str) {
        if mode == Mode::Json {
            let mut out = lock(&self.out);
            let _ = writeln!(out, "{}", serde_json::json!({ "note": line }));
            return;
        }
        let line = printable(line);
        let mut live = lock(&self.live);
        if !live.finished {
            // Drawn with the next frame (or the final region).
            live.notes.push(line);
            return;
        }
        drop(live);
        self.draw(&[line], &[], 0);
    }

    /// The drawing thread: redraws every [`TICK`] until `finish`; returns the height of the
    /// region it drew last.
    fn redraw_until_finished(&self) -> usize {
        // Signals are for the threads that handle them: the builds block SIGINT and SIGTERM in
        // every thread while they run, for one thread to take them, and this one may have
        // been started before (by a note), with the caller's mask.
        // SAFETY: `set` is plain data filled by sigfillset; only this thread's mask changes.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut set);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
        let mut shown = 0;
        loop {
            let (notes, lines) = {
                let mut live = lock(&self.live);
                if !live.finished {
                    live = self
                        .wake
                        .wait_timeout(live, TICK)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
                if live.finished {
                    return shown;
                }
                let (width, height) = term_size();
                let lines = render(&live, width, height, Instant::now(), false);
                (std::mem::take(&mut live.notes), lines)
            };
            shown = self.draw(&notes, &lines, shown);
        }
    }

    /// Replaces the region of `shown` lines above the cursor by `notes` (which stay) and
    /// `lines` (the new region), in one write: the cursor goes up over the old region, each
    /// line overwrites one and clears the rest of its row, and what is left below is cleared.
    /// Returns the new region's height.
    fn draw(&self, notes: &[String], lines: &[String], shown: usize) -> usize {
        let mut frame = String::new();
        if shown > 0 {
            // `\x1b[0A` would move up one line: never sent.
            frame.push_str(&format!("\r\x1b[{shown}A"));
        }
        for l in notes.iter().chain(lines) {
            frame.push_str(l);
            frame.push_str("\x1b[K\n");
        }
        frame.push_str("\x1b[J");
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(frame.as_bytes());
            let _ = out.flush();
        }
        lines.len()
    }
}

/// Columns and rows to draw in. Lines stop one column short of the terminal's width: a
/// character written in the last column leaves the cursor there, and the clear-to-end-of-line
/// that follows would erase it.
fn term_size() -> (usize, usize) {
    // 80x24 when standard error is not a terminal or has no size.
    let (rows, cols) = console::Term::stderr().size();
    (
        usize::from(cols).saturating_sub(1).max(1),
        usize::from(rows),
    )
}

/// `text` made safe to print on a terminal, for output that comes from inside a build
/// container: no escape sequence (it could move the cursor, retitle the window, or rewrite
/// the screen) and no control character. A line rewritten with `\r` (a progress bar) is
/// shown as the terminal would: its last part. Tabs become spaces so that widths hold.
fn printable(text: &str) -> String {
    let last = text.rsplit('\r').find(|p| !p.is_empty()).unwrap_or("");
    console::strip_ansi_codes(last)
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .filter(|c| !c.is_control())
        .take(MAX_LINE_CHARS)
        .collect()
}

/// The live region as lines of at most `width` columns: the header, then each step (and, for
/// a running one, its last output lines). Live (`last` false) it fits in `height - 2` rows,
/// dropping the oldest finished steps first; the final region (`last`) has every step, and
/// output lines only under the steps that did not succeed.
fn render(live: &Live, width: usize, height: usize, now: Instant, last: bool) -> Vec<String> {
    let finished = live
        .steps
        .iter()
        .filter(|s| s.status != Status::Running)
        .count();
    let mut header = format!(
        "[+] Building {:.1}s ({finished}/{})",
        now.saturating_duration_since(live.started).as_secs_f64(),
        live.steps.len()
    );
    if last {
        header.push_str(" FINISHED");
    }
    // Each step's lines, and whether it is finished.
    let mut blocks: Vec<(bool, Vec<String>)> = live
        .steps
        .iter()
        .map(|s| {
            let mut lines = vec![step_line(s, width, now)];
            let tail = match s.status {
                Status::Running => true,
                Status::Failed(_) => last,
                Status::Done(_) | Status::Cached => false,
            };
            if tail {
                lines.extend(
                    s.tail
                        .iter()
                        .map(|l| truncate(&format!(" => => # {l}"), width)),
                );
            }
            (s.status != Status::Running, lines)
        })
        .collect();
    if !last {
        fit(&mut blocks, height.saturating_sub(3));
    }
    let mut lines = vec![truncate(&header, width)];
    lines.extend(blocks.into_iter().flat_map(|(_, l)| l));
    lines
}

/// Drops lines until `blocks` have at most `rows`: the oldest finished steps, then (on a
/// terminal too short for the running ones) the oldest running steps, then the oldest output
/// lines of the one left.
fn fit(blocks: &mut Vec<(bool, Vec<String>)>, rows: usize) {
    let mut excess = blocks
        .iter()
        .map(|(_, l)| l.len())
        .sum::<usize>()
        .saturating_sub(rows);
    blocks.retain(|(finished, lines)| {
        let drop = excess > 0 && *finished;
        if drop {
            excess = excess.saturating_sub(lines.len());
        }
        !drop
    });
    // The newest step stays: it shows what is happening now.
    let mut keep_from = 0;
    while excess > 0 && keep_from + 1 < blocks.len() {
        excess = excess.saturating_sub(blocks[keep_from].1.len());
        keep_from += 1;
    }
    blocks.drain(..keep_from);
    if excess > 0 {
        if let Some((_, lines)) = blocks.first_mut() {
            let cut = excess.min(lines.len().saturating_sub(1));
            lines.drain(1..1 + cut);
            if rows == 0 {
                lines.clear();
            }
        }
    }
}

/// ` => [CACHED |ERROR ][name] text` and the step's time at the right edge of `width`
/// columns; running steps show their time so far.
fn step_line(s: &Step, width: usize, now: Instant) -> String {
    let (mark, took) = match s.status {
        Status::Running => ("", now.saturating_duration_since(s.started)),
        Status::Done(d) => ("", d),
        Status::Cached => ("CACHED ", Duration::ZERO),
        Status::Failed(d) => ("ERROR ", d),
    };
    let left = format!(" => {mark}[{}] {}", s.name, s.text);
    let time = format!("{:.1}s", took.as_secs_f64());
    let time_width = time.len();
    if width < time_width + 2 {
        return truncate(&left, width);
    }
    let room = width - time_width - 1;
    let left = truncate(&left, room);
    let pad = room.saturating_sub(console::measure_text_width(&left));
    format!("{left}{:pad$} {time}", "")
}

/// `text` cut to `width` columns, ending with `…` when cut (wide characters count twice).
fn truncate(text: &str, width: usize) -> String {
    console::truncate_str(text, width, "…").into_owned()
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

    /// An empty display state whose builds started at `t0`.
    fn live_at(t0: Instant) -> Live {
        Live::new(t0)
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn width_of(l: &str) -> usize {
        console::measure_text_width(l)
    }

    #[test]
    fn header_counts_marks_and_right_aligned_times() {
        let t0 = Instant::now();
        let mut l = live_at(t0);
        let a = l.start("web build 1/4".into(), "FROM debian".into(), t0);
        l.end(a, |_| Status::Done(Duration::ZERO));
        let b = l.start("web build 2/4".into(), "RUN apt-get update".into(), t0);
        l.end(b, |_| Status::Cached);
        let _running = l.start("web build 3/4".into(), "RUN make".into(), t0 + secs(1.0));
        let d = l.start("web build 4/4".into(), "RUN false".into(), t0 + secs(1.0));
        l.end(d, |_| Status::Failed(secs(0.25)));
        // A second end of a step changes nothing.
        l.end(d, |_| Status::Done(secs(9.0)));
        let lines = render(&l, 60, 40, t0 + secs(3.4), false);
        assert_eq!(lines[0], "[+] Building 3.4s (3/4)");
        assert_eq!(
            lines[1..],
            [
                format!(" => [web build 1/4] FROM debian{:>29}", "0.0s"),
                format!(
                    " => CACHED [web build 2/4] RUN apt-get update{:>15}",
                    "0.0s"
                ),
                format!(" => [web build 3/4] RUN make{:>32}", "2.4s"),
                format!(" => ERROR [web build 4/4] RUN false{:>25}", "0.2s"),
            ]
        );
        assert!(lines[1..].iter().all(|x| width_of(x) == 60));
    }

    #[test]
    fn long_lines_are_cut_to_the_width() {
        let t0 = Instant::now();
        let mut l = live_at(t0);
        let a = l.start(
            "app 2/3".into(),
            "RUN echo 日本語のとても長いテキストがここに続きます".into(),
            t0,
        );
        l.line(a, "ビルドの出力もとても長い一行になることがあります".into());
        let lines = render(&l, 40, 40, t0 + secs(12.0), false);
        assert_eq!(lines.len(), 3);
        for line in &lines {
            assert!(width_of(line) <= 40, "{line:?} is wider than 40");
        }
        assert!(lines[1].starts_with(" => [app 2/3] RUN echo 日本"));
        assert!(lines[1].ends_with("… 12.0s"), "{:?}", lines[1]);
        assert!(lines[2].starts_with(" => => # ビルド") && lines[2].ends_with('…'));
        // Too narrow for the time: the text alone, cut.
        let narrow = render(&l, 5, 40, t0, false);
        assert!(narrow.iter().all(|x| width_of(x) <= 5), "{narrow:?}");
    }

    #[test]
    fn running_steps_show_their_last_six_output_lines() {
        let t0 = Instant::now();
        let mut l = live_at(t0);
        let a = l.start("x 2/2".into(), "RUN make".into(), t0);
        for n in 1..=8 {
            l.line(a, format!("line {n}"));
        }
        let lines = render(&l, 80, 40, t0, false);
        let tail: Vec<&str> = lines[2..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                " => => # line 3",
                " => => # line 4",
                " => => # line 5",
                " => => # line 6",
                " => => # line 7",
                " => => # line 8"
            ]
        );
        // Done: no more output lines.
        l.end(a, |_| Status::Done(secs(1.0)));
        assert_eq!(render(&l, 80, 40, t0, false).len(), 2);
    }

    #[test]
    fn container_output_cannot_reach_the_terminal() {
        assert_eq!(printable("\x1b[2J\x1b[Hcleared"), "cleared");
        assert_eq!(printable("\x1b]0;owned\x07title"), "title");
        assert_eq!(printable("\x1b]8;;http://x\x1b\\link"), "link");
        assert_eq!(printable("\u{9b}31mred\x1b"), "red");
        assert_eq!(printable("a\x08b\x07c\u{7f}d\u{85}e"), "abcde");
        assert_eq!(printable(" 10%\r 50%\r100%"), "100%");
        assert_eq!(printable("done\r"), "done");
        assert_eq!(printable("a\tb"), "a b");
        assert_eq!(printable(&"x".repeat(5000)).len(), MAX_LINE_CHARS);
        // Through the display: nothing but the prefix and the text.
        let t0 = Instant::now();
        let mut l = live_at(t0);
        let a = l.start(printable("s\x1b[1A"), printable("RUN x\r"), t0);
        l.line(a, printable("\x1b[10Aup\rover"));
        let lines = render(&l, 80, 40, t0, false);
        assert!(
            lines.iter().all(|x| !x.contains(['\x1b', '\r'])),
            "{lines:?}"
        );
        assert!(lines[1].starts_with(" => [s] RUN x "));
        assert_eq!(lines[2], " => => # over");
    }

    #[test]
    fn a_short_terminal_drops_the_oldest_finished_steps_first() {
        let t0 = Instant::now();
        let mut l = live_at(t0);
        for n in 1..=10 {
            let s = l.start(format!("s {n}"), "COPY . .".into(), t0);
            l.end(s, |_| Status::Done(secs(0.1)));
        }
        let run = l.start("s 11".into(), "RUN make".into(), t0);
        for n in 1..=6 {
            l.line(run, format!("out {n}"));
        }
        let last = l.start("s 12".into(), "COPY a b".into(), t0);
        l.end(last, |_| Status::Done(secs(0.1)));
        // 12 rows: the header and 9 lines (two rows stay free).
        let lines = render(&l, 80, 12, t0, false);
        assert_eq!(lines.len(), 10, "{lines:#?}");
        assert!(lines[0].starts_with("[+] Building"));
        assert!(lines[1].starts_with(" => [s 10] COPY . ."));
        assert!(lines[2].starts_with(" => [s 11] RUN make"));
        assert_eq!(lines[8], " => => # out 6");
        assert!(lines[9].starts_with(" => [s 12] COPY a b"));
        // Shorter than a running step: its newest lines.
        let lines = render(&l, 80, 6, t0, false);
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(lines[1].starts_with(" => [s 11] RUN make"));
        assert_eq!(lines[2..], [" => => # out 5", " => => # out 6"]);
        assert_eq!(render(&l, 80, 2, t0, false).len(), 1);
        // The final region has every step whatever the height.
        assert_eq!(render(&l, 80, 5, t0, true).len(), 1 + 12 + 6);
    }

    #[test]
    fn the_final_region_has_every_step_and_only_failed_output() {
        let t0 = Instant::now();
        let mut l = live_at(t0);
        let a = l.start("1/3".into(), "RUN ok".into(), t0);
        l.line(a, "fine".into());
        l.end(a, |_| Status::Done(secs(1.5)));
        let b = l.start("2/3".into(), "RUN false".into(), t0);
        l.line(b, "oops".into());
        l.end(b, |_| Status::Failed(secs(0.5)));
        let lines = render(&l, 50, 3, t0 + secs(2.0), true);
        assert_eq!(
            lines,
            [
                "[+] Building 2.0s (2/2) FINISHED".to_string(),
                format!(" => [1/3] RUN ok{:>34}", "1.5s"),
                format!(" => ERROR [2/3] RUN false{:>25}", "0.5s"),
                " => => # oops".to_string(),
            ]
        );
    }

    #[test]
    fn tty_mode_draws_a_final_region_on_finish() {
        let buf = Buf::default();
        let p = Progress::to(Mode::Tty, Box::new(buf.clone()));
        p.note(" WARN: JSONArgsRecommended");
        let a = p.start("web 1/3", "FROM scratch");
        p.done(a, Duration::ZERO);
        let b = p.start("web 2/3", "COPY a /a");
        p.cached(b);
        let c = p.start("web 3/3", "RUN make");
        p.line(c, Duration::ZERO, "\x1b]0;pwned\x07cc -o x x.c");
        p.error(c, "exit code 2");
        // The drawing thread's first live region (waited for: the machine may be busy).
        let deadline = Instant::now() + Duration::from_secs(30);
        while !String::from_utf8_lossy(&buf.0.lock().unwrap()).contains("(3/3)")
            && Instant::now() < deadline
        {
            std::thread::sleep(TICK);
        }
        p.finish();
        p.finish();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches("FINISHED").count(), 1, "{text:?}");
        assert_eq!(
            text.matches("WARN: JSONArgsRecommended").count(),
            1,
            "{text:?}"
        );
        let last = &text[text.rfind("[+] Building").unwrap()..];
        assert!(last.contains("(3/3) FINISHED\x1b[K\n"), "{last:?}");
        assert!(last.contains(" => [web 1/3] FROM scratch "));
        assert!(last.contains(" => CACHED [web 2/3] COPY a /a "));
        assert!(last.contains(" => ERROR [web 3/3] RUN make "));
        assert!(last.contains(" => => # cc -o x x.c\x1b[K\n"));
        assert!(last.ends_with("\x1b[K\n\x1b[J"));
        assert!(!text.contains("pwned"));
        // The final region replaced the live one: the cursor went up over it.
        let before = &text[..text.rfind("[+] Building").unwrap()];
        assert!(before.ends_with('A'), "{before:?}");
        drop(p);
        assert_eq!(buf.0.lock().unwrap().len(), text.len(), "drop drew again");
    }

    #[test]
    fn tty_mode_finishes_on_drop_and_prints_later_notes() {
        let buf = Buf::default();
        {
            let p = Progress::to(Mode::Tty, Box::new(buf.clone()));
            let a = p.start("x 1/1", "COPY a /a");
            p.done(a, secs(0.1));
        }
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("[+] Building"), "{text:?}");
        assert!(text.contains("(1/1) FINISHED"), "{text:?}");
        let buf = Buf::default();
        let p = Progress::to(Mode::Tty, Box::new(buf.clone()));
        p.finish();
        assert!(buf.0.lock().unwrap().is_empty(), "no event, nothing drawn");
        p.note("exporting cache");
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "exporting cache\x1b[K\n\x1b[J");
    }
}
