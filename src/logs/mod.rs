//! Container logs: storage, reading, following and the `web-1  | ...` formatting.
//!
//! Storage is Docker's `json-file` format, one file per container
//! (`$RCOMPOSE_ROOT/containers/<id>/<id>-json.log`), one JSON record per line:
//! `{"log":"hello\n","stream":"stdout","time":"2026-11-22T10:00:00.123456789Z"}`.
//! Why this format: it is what users and tools already know (`jq`, log shippers that read
//! Docker's files), it is append-only text that survives a crash mid-write (a torn last line is
//! skipped, nothing else is lost), and every record carries its stream and a nanosecond UTC
//! timestamp, which `--since/--until/--timestamps` need and which lets several containers be
//! merged by time. A line longer than 16 KiB is split into records like Docker does (only the
//! last piece ends with `\n`), so one huge line cannot hold a whole buffer hostage.
//! Timestamps are written with a fixed nine fraction digits (Docker trims trailing zeros; both
//! parse the same), so the times of one file also sort as text.
//! Rotation follows Docker too: with `max-size` the file is renamed to `.1` (older ones shift
//! to `.2`, ...; `max-file` bounds how many exist) before a record would overflow it, and a
//! reader or follower walks the rotated files oldest first.
//! The `local` driver is accepted and stored in the same format with its defaults (20 MiB x 5),
//! `none` stores nothing.

mod config;
mod follow;
mod format;
mod reader;
pub(crate) mod timefmt;
mod writer;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use config::{LogConfig, LogDriver};
pub use follow::{follow_many, follow_many_then, spawn_follow_many, FollowControl, Source, Start};
pub use format::{FormatOptions, Formatter};
pub use reader::{read, read_with_cursor, rotated_path, Cursor, ReadOptions};
pub use timefmt::{format_timestamp, parse_time_arg};
pub use writer::LogWriter;

/// Which output of the container a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn parse(s: &str) -> Option<Stream> {
        match s {
            "stdout" => Some(Stream::Stdout),
            "stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }
}

/// One record of a log: a line with its trailing `\n`, or without one when it is a piece of a
/// longer line (or the last output of a container that did not end it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub stream: Stream,
    pub time: SystemTime,
    pub line: Vec<u8>,
}

/// The log file of container `id` under the containers directory, as Docker names it.
pub fn container_log_path(containers_dir: &Path, id: &str) -> PathBuf {
    containers_dir.join(id).join(format!("{id}-json.log"))
}

#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("cannot {action} log file {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("service {service:?}: logging driver {driver:?} is not supported (rcompose stores logs with json-file, local or none)")]
    UnsupportedDriver { service: String, driver: String },
    #[error("service {service:?}: unknown log option {key:?} for the {driver} logging driver")]
    UnknownOption {
        service: String,
        driver: String,
        key: String,
    },
    #[error("service {service:?}: invalid log option {key}={value:?}: {reason}")]
    BadOption {
        service: String,
        key: String,
        value: String,
        reason: String,
    },
    #[error("invalid time {value:?}: {reason}")]
    TimeArg { value: String, reason: String },
    #[error("cannot start watching log files: {0}")]
    Watcher(#[source] notify::Error),
    #[error("cannot watch {path} for new log lines: {source}")]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}

pub type Result<T, E = LogsError> = std::result::Result<T, E>;

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> LogsError + 'a {
    move |source| LogsError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}
