//! Appends a container's output to its json-file log, rotating it like Docker.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use super::reader::rotated_path;
use super::timefmt::format_timestamp;
use super::{io_err, LogConfig, LogDriver, Result, Stream};

/// Docker's copier buffer: a longer line is stored as several records.
pub(crate) const MAX_LINE: usize = 16 * 1024;

#[derive(Serialize)]
struct Record<'a> {
    log: &'a str,
    stream: &'a str,
    time: &'a str,
}

/// The unfinished last line of one stream and when its first bytes arrived.
#[derive(Default)]
struct Partial {
    buf: Vec<u8>,
    since: Option<SystemTime>,
}

/// Writes one container's log. Not shared between threads: the supervisor owns one per
/// container and feeds it both streams, which keeps records of one container in order.
pub struct LogWriter {
    path: PathBuf,
    config: LogConfig,
    file: Option<File>,
    size: u64,
    partial: [Partial; 2],
    /// Records of the current `write`, appended to the file with one write.
    pending: Vec<u8>,
}

impl LogWriter {
    /// Opens (creating it and its directory) the log at `path` for appending. With the `none`
    /// driver nothing is created and every write is dropped.
    pub fn open(path: &Path, config: LogConfig) -> Result<LogWriter> {
        let mut writer = LogWriter {
            path: path.to_path_buf(),
            config,
            file: None,
            size: 0,
            partial: Default::default(),
            pending: Vec::new(),
        };
        if writer.config.driver != LogDriver::None {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir).map_err(io_err("create the directory of", path))?;
            }
            writer.open_file()?;
        }
        Ok(writer)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores a chunk of a stream's output, stamped with the current time.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> Result<()> {
        self.write_at(stream, data, SystemTime::now())
    }

    /// Stores a chunk of output received at `time`: one record per complete line, the last
    /// line kept back until its end arrives (or it grows past 16 KiB, or
    /// [`LogWriter::flush_partial`]). A record's time is when its first byte arrived.
    pub fn write_at(&mut self, stream: Stream, data: &[u8], time: SystemTime) -> Result<()> {
        if self.file.is_none() {
            return Ok(());
        }
        let mut partial = std::mem::take(&mut self.partial[stream as usize]);
        let result = self.split_lines(stream, &mut partial, data, time);
        self.partial[stream as usize] = partial;
        result?;
        self.flush_pending()
    }

    fn split_lines(
        &mut self,
        stream: Stream,
        partial: &mut Partial,
        data: &[u8],
        time: SystemTime,
    ) -> Result<()> {
        for piece in data.split_inclusive(|&b| b == b'\n') {
            if partial.buf.is_empty() {
                partial.since = Some(time);
            }
            partial.buf.extend_from_slice(piece);
            let complete = piece.ends_with(b"\n");
            // Docker flushes its buffer when it is full; a complete line that fits is kept whole.
            while partial.buf.len() > MAX_LINE || (!complete && partial.buf.len() == MAX_LINE) {
                let cut = utf8_boundary(&partial.buf, MAX_LINE);
                let head: Vec<u8> = partial.buf.drain(..cut).collect();
                self.push_record(stream, &head, partial.since.unwrap_or(time))?;
            }
            if complete {
                let line = std::mem::take(&mut partial.buf);
                self.push_record(stream, &line, partial.since.unwrap_or(time))?;
            }
        }
        Ok(())
    }

    /// Writes out the unfinished last line of each stream (the container exited, or its pipe
    /// closed), as records without a trailing newline.
    pub fn flush_partial(&mut self) -> Result<()> {
        if self.file.is_none() {
            return Ok(());
        }
        for stream in [Stream::Stdout, Stream::Stderr] {
            let partial = std::mem::take(&mut self.partial[stream as usize]);
            if !partial.buf.is_empty() {
                let time = partial.since.unwrap_or_else(SystemTime::now);
                self.push_record(stream, &partial.buf, time)?;
            }
        }
        self.flush_pending()
    }

    fn push_record(&mut self, stream: Stream, line: &[u8], time: SystemTime) -> Result<()> {
        let text = String::from_utf8_lossy(line);
        let stamp = format_timestamp(time);
        let mut record = serde_json::to_vec(&Record {
            log: &text,
            stream: stream.as_str(),
            time: &stamp,
        })
        .map_err(|e| io_err("encode a record for", &self.path)(io::Error::other(e)))?;
        record.push(b'\n');
        if let Some(max) = self.config.max_size {
            let used = self.size + self.pending.len() as u64;
            if used > 0 && used + record.len() as u64 > max {
                self.flush_pending()?;
                self.rotate()?;
            }
        }
        self.pending.extend_from_slice(&record);
        Ok(())
    }

    fn flush_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let Some(file) = self.file.as_mut() else {
            self.pending.clear();
            return Ok(());
        };
        // O_APPEND and whole records per write: a reader never sees half a record from two
        // writers, and a crash tears at most the last line.
        let written = file.write_all(&self.pending);
        let len = self.pending.len() as u64;
        self.pending.clear();
        written.map_err(io_err("append to", &self.path))?;
        self.size += len;
        Ok(())
    }

    /// Renames the log to `.1` (shifting older files up, dropping those past `max-file`) and
    /// starts a new one.
    fn rotate(&mut self) -> Result<()> {
        self.file = None;
        let keep = self.config.max_file;
        if keep <= 1 {
            remove_if_exists(&self.path)?;
        } else {
            remove_if_exists(&rotated_path(&self.path, keep - 1))?;
            for n in (1..keep - 1).rev() {
                rename_if_exists(
                    &rotated_path(&self.path, n),
                    &rotated_path(&self.path, n + 1),
                )?;
            }
            rename_if_exists(&self.path, &rotated_path(&self.path, 1))?;
        }
        self.open_file()
    }

    fn open_file(&mut self) -> Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(io_err("open", &self.path))?;
        self.size = file
            .metadata()
            .map_err(io_err("inspect", &self.path))?
            .len();
        // A crash may have torn the last record: end it, so the next record stays readable.
        if self.size > 0 {
            let mut last = [0u8; 1];
            file.read_exact_at(&mut last, self.size - 1)
                .map_err(io_err("read", &self.path))?;
            if last[0] != b'\n' {
                (&file)
                    .write_all(b"\n")
                    .map_err(io_err("append to", &self.path))?;
                self.size += 1;
            }
        }
        self.file = Some(file);
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if let Err(e) = self.flush_partial() {
            tracing::warn!("{e}");
        }
    }
}

/// The largest cut at or below `max` that does not split a UTF-8 sequence (so the lossy
/// conversion of each piece keeps every character); `max` itself for non-UTF-8 data.
fn utf8_boundary(buf: &[u8], max: usize) -> usize {
    let mut cut = max;
    // At most three continuation bytes (10xxxxxx) precede a character boundary.
    while cut > max - 3 && buf.get(cut).is_some_and(|b| b & 0xC0 == 0x80) {
        cut -= 1;
    }
    if buf.get(cut).is_some_and(|b| b & 0xC0 == 0x80) {
        max
    } else {
        cut
    }
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

fn rename_if_exists(from: &Path, to: &Path) -> Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("rotate", from)(e)),
        _ => Ok(()),
    }
}
