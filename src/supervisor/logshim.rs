//! Temporary: a minimal json-file writer until the logs module lands.
use std::io::{self, Write};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

pub struct LogWriter {
    file: std::fs::File,
}

impl LogWriter {
    pub fn open(path: &Path) -> io::Result<LogWriter> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(LogWriter { file })
    }
    pub fn write(&mut self, stream: Stream, bytes: &[u8]) -> io::Result<()> {
        let s = match stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        for line in String::from_utf8_lossy(bytes).split_inclusive('\n') {
            let rec = serde_json::json!({"log": line, "stream": s});
            writeln!(self.file, "{rec}")?;
        }
        Ok(())
    }
    pub fn flush_partial(&mut self) -> io::Result<()> {
        Ok(())
    }
}
