//! Reads a json-file log and its rotated files.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;

use super::timefmt::parse_timestamp;
use super::{io_err, Entry, Result, Stream};

/// What `rcompose logs` asks for. `tail` counts records from the end across rotated files and
/// is applied before `since`/`until`, as Docker does; `since` and `until` are inclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    pub tail: Option<usize>,
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
}

impl ReadOptions {
    fn wants(&self, e: &Entry) -> bool {
        self.since.is_none_or(|s| e.time >= s) && self.until.is_none_or(|u| e.time <= u)
    }
}

/// Where a read stopped: the file (by device and inode, which survive a rename) and the byte
/// after the last complete record. A follower started from it misses and repeats nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    /// `None` when the log did not exist yet.
    pub(crate) file: Option<FileId>,
    pub(crate) offset: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub(crate) fn of(meta: &fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// `path.n`: the n-th rotated file (1 is the newest).
pub fn rotated_path(path: &Path, n: usize) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The log's records, oldest first, over its rotated files and the current one. A missing log
/// is empty; lines that are not records (torn or corrupt) are skipped.
pub fn read(path: &Path, opts: &ReadOptions) -> Result<Vec<Entry>> {
    read_with_cursor(path, opts).map(|(entries, _)| entries)
}

/// [`read`], plus the point where it stopped, to follow from.
pub fn read_with_cursor(path: &Path, opts: &ReadOptions) -> Result<(Vec<Entry>, Cursor)> {
    // The current file is opened first so the cursor names the file that was read even if it
    // is rotated meanwhile.
    let current = match File::open(path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("open", path)(e)),
    };
    // Newest file first, so a tail stops reading once it has enough.
    let mut newest_first: Vec<Vec<Entry>> = Vec::new();
    let mut have = 0;
    let wanted = |have: usize| opts.tail.is_none_or(|n| have < n);
    let mut cursor = Cursor::default();
    if let Some(file) = current {
        let meta = file.metadata().map_err(io_err("inspect", path))?;
        let (start, data) = read_end(&file, path, meta.len(), opts.tail)?;
        // A last line without its newline is still being written: the follower gets it.
        let complete = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let entries: Vec<Entry> = parse_records(&data[..complete]).collect();
        have += entries.len();
        newest_first.push(entries);
        cursor = Cursor {
            file: Some(FileId::of(&meta)),
            offset: start + complete as u64,
        };
    }
    for rotated in existing_rotations(path) {
        if !wanted(have) {
            break;
        }
        let file = match File::open(&rotated) {
            Ok(f) => f,
            // Rotated away while we read: older than what we have anyway.
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(io_err("open", &rotated)(e)),
        };
        let len = file.metadata().map_err(io_err("inspect", &rotated))?.len();
        let remaining = opts.tail.map(|n| n - have);
        let (_, data) = read_end(&file, &rotated, len, remaining)?;
        let entries: Vec<Entry> = parse_records(&data).collect();
        have += entries.len();
        newest_first.push(entries);
    }
    let mut entries: Vec<Entry> = newest_first.into_iter().rev().flatten().collect();
    if let Some(n) = opts.tail {
        entries.drain(..entries.len().saturating_sub(n));
    }
    entries.retain(|e| opts.wants(e));
    Ok((entries, cursor))
}

/// The bytes of `file` up to `end`: all of them, or for a tail of `n` only the last chunks
/// that hold at least `n` whole lines (so a large log is not read to show its last lines).
/// Returns where the bytes start.
pub(crate) fn read_end(
    file: &File,
    path: &Path,
    end: u64,
    tail: Option<usize>,
) -> Result<(u64, Vec<u8>)> {
    const CHUNK: u64 = 64 * 1024;
    let mut start = end;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut newlines = 0;
    while start > 0 && tail.is_none_or(|n| newlines <= n) {
        let size = if tail.is_some() {
            CHUNK.min(start)
        } else {
            start
        };
        start -= size;
        let mut chunk = vec![0u8; size as usize];
        file.read_exact_at(&mut chunk, start)
            .map_err(io_err("read", path))?;
        newlines += chunk.iter().filter(|&&b| b == b'\n').count();
        chunks.push(chunk);
    }
    let mut data: Vec<u8> = chunks.into_iter().rev().flatten().collect();
    if start > 0 {
        // The first line is cut: drop it.
        let first = data
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |i| i + 1);
        data.drain(..first);
        start += first as u64;
    }
    Ok((start, data))
}

/// The rotated files that exist, newest (`.1`) first. Docker numbers them without gaps.
pub(crate) fn existing_rotations(path: &Path) -> Vec<PathBuf> {
    (1..)
        .map(|n| rotated_path(path, n))
        .take_while(|p| p.exists())
        .collect()
}

#[derive(Deserialize)]
struct RawRecord<'a> {
    #[serde(borrow)]
    log: std::borrow::Cow<'a, str>,
    stream: &'a str,
    time: &'a str,
}

/// The records of complete lines; anything that does not parse is skipped.
pub(crate) fn parse_records(data: &[u8]) -> impl Iterator<Item = Entry> + '_ {
    data.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(parse_record)
}

pub(crate) fn parse_record(line: &[u8]) -> Option<Entry> {
    let raw: RawRecord = serde_json::from_slice(line).ok()?;
    Some(Entry {
        stream: Stream::parse(raw.stream)?,
        time: parse_timestamp(raw.time)?,
        line: raw.log.into_owned().into_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{LogConfig, LogWriter};
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_341_600 + secs)
    }

    fn lines(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.line).into_owned())
            .collect()
    }

    fn rotating(max_size: u64, max_file: usize) -> LogConfig {
        LogConfig {
            max_size: Some(max_size),
            max_file,
            ..LogConfig::default()
        }
    }

    #[test]
    fn writes_docker_records_and_reads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c1").join("c1-json.log");
        let mut w = LogWriter::open(&path, LogConfig::default()).unwrap();
        w.write_at(Stream::Stdout, b"hello\nwor", t(0)).unwrap();
        w.write_at(Stream::Stderr, b"oops \"quoted\"\n", t(1))
            .unwrap();
        w.write_at(Stream::Stdout, b"ld\n", t(2)).unwrap();
        w.write_at(Stream::Stdout, b"no newline", t(3)).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            r#"{"log":"hello\n","stream":"stdout","time":"2026-11-22T10:00:00.000000000Z"}"#
        );
        drop(w); // flushes the unfinished line
        let entries = read(&path, &ReadOptions::default()).unwrap();
        assert_eq!(
            lines(&entries),
            ["hello\n", "oops \"quoted\"\n", "world\n", "no newline"]
        );
        let streams: Vec<_> = entries.iter().map(|e| e.stream).collect();
        assert_eq!(
            streams,
            [
                Stream::Stdout,
                Stream::Stderr,
                Stream::Stdout,
                Stream::Stdout
            ]
        );
        // The split line is stamped with the arrival of its first bytes.
        assert_eq!(entries[2].time, t(0));
        assert_eq!(entries[3].time, t(3));
    }

    #[test]
    fn long_lines_are_split_at_16k_without_breaking_characters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.log");
        let mut w = LogWriter::open(&path, LogConfig::default()).unwrap();
        // 'é' is two bytes; an odd prefix puts a character across the 16 KiB mark.
        let mut line = b"x".to_vec();
        line.extend("é".repeat(10_000).as_bytes());
        line.push(b'\n');
        w.write_at(Stream::Stdout, &line, t(0)).unwrap();
        let entries = read(&path, &ReadOptions::default()).unwrap();
        assert_eq!(entries.len(), 2);
        assert!(entries[0].line.len() <= 16 * 1024 && !entries[0].line.ends_with(b"\n"));
        assert!(std::str::from_utf8(&entries[0].line).is_ok());
        let joined: Vec<u8> = entries.iter().flat_map(|e| e.line.clone()).collect();
        assert_eq!(joined, line);
        // An unfinished line is written once it fills the buffer.
        w.write_at(Stream::Stderr, &b"y".repeat(16 * 1024 + 10), t(1))
            .unwrap();
        let entries = read(&path, &ReadOptions::default()).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[2].line.len(), 16 * 1024);
    }

    #[test]
    fn rotates_like_docker_and_reads_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.log");
        // Each record is about 75 bytes: two fit in 200 bytes.
        let mut w = LogWriter::open(&path, rotating(200, 3)).unwrap();
        for i in 0..10 {
            w.write_at(Stream::Stdout, format!("line {i}\n").as_bytes(), t(i))
                .unwrap();
        }
        assert!(rotated_path(&path, 1).exists() && rotated_path(&path, 2).exists());
        assert!(!rotated_path(&path, 3).exists());
        for p in [path.clone(), rotated_path(&path, 1), rotated_path(&path, 2)] {
            assert!(fs::metadata(&p).unwrap().len() <= 200, "{}", p.display());
        }
        let all = read(&path, &ReadOptions::default()).unwrap();
        assert_eq!(
            lines(&all),
            ["line 4\n", "line 5\n", "line 6\n", "line 7\n", "line 8\n", "line 9\n"]
        );

        let tail = |n| {
            read(
                &path,
                &ReadOptions {
                    tail: Some(n),
                    ..Default::default()
                },
            )
            .unwrap()
        };
        assert_eq!(lines(&tail(3)), ["line 7\n", "line 8\n", "line 9\n"]);
        assert_eq!(tail(0).len(), 0);
        assert_eq!(tail(100).len(), 6);

        let window = read(
            &path,
            &ReadOptions {
                since: Some(t(5)),
                until: Some(t(7)),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(lines(&window), ["line 5\n", "line 6\n", "line 7\n"]);
        // Docker applies tail first, then the time window.
        let both = read(
            &path,
            &ReadOptions {
                tail: Some(2),
                since: Some(t(5)),
                until: Some(t(8)),
            },
        )
        .unwrap();
        assert_eq!(lines(&both), ["line 8\n"]);
    }

    #[test]
    fn tail_of_a_large_log_crosses_chunks_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.log");
        let mut w = LogWriter::open(&path, rotating(150_000, 2)).unwrap();
        for i in 0..3000 {
            w.write_at(Stream::Stdout, format!("line {i}\n").as_bytes(), t(i))
                .unwrap();
        }
        w.write_at(Stream::Stdout, b"unfinished", t(3000)).unwrap();
        assert!(rotated_path(&path, 1).exists());
        let all = read(&path, &ReadOptions::default()).unwrap();
        let total = all.len();
        for n in [0, 1, 3, 999, 1000, 2500, total, total + 10] {
            let got = read(
                &path,
                &ReadOptions {
                    tail: Some(n),
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(got, all[total.saturating_sub(n)..], "tail {n}");
        }
        assert_eq!(all.last().unwrap().line, b"line 2999\n");
        let (_, cursor) = read_with_cursor(
            &path,
            &ReadOptions {
                tail: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
        let (_, full) = read_with_cursor(&path, &ReadOptions::default()).unwrap();
        assert_eq!(cursor, full);
    }

    #[test]
    fn max_file_one_truncates_instead_of_keeping_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one.log");
        let mut w = LogWriter::open(&path, rotating(100, 1)).unwrap();
        for i in 0..5 {
            w.write_at(Stream::Stdout, format!("line {i}\n").as_bytes(), t(i))
                .unwrap();
        }
        assert!(!rotated_path(&path, 1).exists());
        assert_eq!(
            lines(&read(&path, &ReadOptions::default()).unwrap()),
            ["line 4\n"]
        );
    }

    #[test]
    fn reopening_appends_and_counts_the_existing_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("re.log");
        let mut w = LogWriter::open(&path, rotating(200, 2)).unwrap();
        w.write_at(Stream::Stdout, b"first\n", t(0)).unwrap();
        w.write_at(Stream::Stdout, b"second\n", t(1)).unwrap();
        drop(w);
        let mut w = LogWriter::open(&path, rotating(200, 2)).unwrap();
        w.write_at(Stream::Stdout, b"third\n", t(2)).unwrap();
        assert_eq!(
            lines(&read(&rotated_path(&path, 1), &ReadOptions::default()).unwrap()),
            ["first\n", "second\n"]
        );
        assert_eq!(
            lines(&read(&path, &ReadOptions::default()).unwrap()),
            ["first\n", "second\n", "third\n"]
        );
    }

    #[test]
    fn missing_log_is_empty_and_corrupt_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.log");
        let (entries, cursor) = read_with_cursor(&path, &ReadOptions::default()).unwrap();
        assert!(entries.is_empty());
        assert_eq!(cursor.file, None);

        fs::write(
            &path,
            concat!(
                "{\"log\":\"a\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-22T10:00:00Z\"}\n",
                "not json\n",
                "{\"log\":\"b\\n\",\"stream\":\"video\",\"time\":\"2026-11-22T10:00:00Z\"}\n",
                "{\"log\":\"c\\n\",\"stream\":\"stderr\",\"time\":\"yesterday\"}\n",
                "{\"log\":\"d\\n\",\"stream\":\"stderr\",\"time\":\"2026-11-22T10:00:01.5Z\"}\n",
                "{\"log\":\"torn",
            ),
        )
        .unwrap();
        let (entries, cursor) = read_with_cursor(&path, &ReadOptions::default()).unwrap();
        assert_eq!(lines(&entries), ["a\n", "d\n"]);
        assert_eq!(entries[1].time, t(1) + Duration::from_millis(500));
        // The cursor stops before the torn line, which a follower will read once complete.
        let len = fs::metadata(&path).unwrap().len();
        assert_eq!(cursor.offset, len - "{\"log\":\"torn".len() as u64);
    }

    #[test]
    fn reopening_a_torn_log_keeps_new_records_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("torn.log");
        fs::write(
            &path,
            "{\"log\":\"a\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-22T10:00:00Z\"}\n{\"log\":\"cr",
        )
        .unwrap();
        let mut w = LogWriter::open(&path, LogConfig::default()).unwrap();
        w.write_at(Stream::Stdout, b"b\n", t(1)).unwrap();
        assert_eq!(
            lines(&read(&path, &ReadOptions::default()).unwrap()),
            ["a\n", "b\n"]
        );
    }

    #[test]
    fn none_driver_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("n.log");
        let config = LogConfig {
            driver: super::super::LogDriver::None,
            ..LogConfig::default()
        };
        let mut w = LogWriter::open(&path, config).unwrap();
        w.write(Stream::Stdout, b"dropped\n").unwrap();
        drop(w);
        assert!(!path.exists() && !path.parent().unwrap().exists());
    }

    #[test]
    fn unwritable_log_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, "").unwrap();
        let path = blocker.join("x.log");
        let e = LogWriter::open(&path, LogConfig::default())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
    }
}
