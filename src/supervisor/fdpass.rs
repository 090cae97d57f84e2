//! File descriptors over the control socket (SCM_RIGHTS): `run` hands the supervisor the
//! client's stdin/stdout/stderr with its request line, and gets a pty's master back with a reply
//! line. Descriptors travel with the first byte of the line they belong to; both sides read
//! those lines with `recvmsg`, never through a buffered reader that would drop them.

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// More than any message here carries (3 streams).
const MAX_FDS: usize = 8;

/// The longest request line the supervisor reads. A request carries a whole project and the
/// contents of its file configs and secrets, far below this; a longer line is refused instead
/// of growing without bound.
pub const MAX_REQUEST: usize = 256 << 20;

/// Sends all of `bytes`, with `fds` attached to the first chunk.
fn send_blocking_or_async(
    fd: RawFd,
    bytes: &[u8],
    fds: &[RawFd],
    flags: MsgFlags,
) -> io::Result<usize> {
    let iov = [IoSlice::new(bytes)];
    let cmsgs: Vec<ControlMessage> = if fds.is_empty() {
        Vec::new()
    } else {
        vec![ControlMessage::ScmRights(fds)]
    };
    sendmsg::<()>(fd, &iov, &cmsgs, flags, None).map_err(io::Error::from)
}

/// One `recvmsg`: the bytes read and the descriptors that came with them (close-on-exec).
fn recv_once(fd: RawFd, buf: &mut [u8], flags: MsgFlags) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        fd,
        &mut iov,
        Some(&mut space),
        flags | MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: the kernel just installed these descriptors in this process for us.
            fds.extend(raw.into_iter().map(|r| unsafe { OwnedFd::from_raw_fd(r) }));
        }
    }
    Ok((msg.bytes, fds))
}

/// Writes `bytes` on a blocking socket with `fds` attached.
pub fn send(
    stream: &std::os::unix::net::UnixStream,
    bytes: &[u8],
    fds: &[BorrowedFd],
) -> io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let mut sent = send_blocking_or_async(stream.as_raw_fd(), bytes, &raw, MsgFlags::empty())?;
    while sent < bytes.len() {
        sent += send_blocking_or_async(stream.as_raw_fd(), &bytes[sent..], &[], MsgFlags::empty())?;
    }
    Ok(())
}

/// Writes `bytes` on the supervisor's socket with `fd` attached.
pub async fn send_async(
    stream: &tokio::net::UnixStream,
    bytes: &[u8],
    fd: BorrowedFd<'_>,
) -> io::Result<()> {
    let raw = stream.as_raw_fd();
    let mut sent = 0;
    while sent < bytes.len() {
        let fds: &[RawFd] = if sent == 0 { &[fd.as_raw_fd()] } else { &[] };
        sent += stream
            .async_io(tokio::io::Interest::WRITABLE, || {
                send_blocking_or_async(raw, &bytes[sent..], fds, MsgFlags::MSG_DONTWAIT)
            })
            .await?;
    }
    Ok(())
}

/// Reads the request line (and its descriptors) from a new connection. The client sends
/// nothing after it but, for subscriptions, its hang-up. `None`: closed before a full line.
pub async fn read_request(
    stream: &tokio::net::UnixStream,
) -> io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    read_request_within(stream, MAX_REQUEST).await
}

/// [`read_request`] with a line of at most `max` bytes.
async fn read_request_within(
    stream: &tokio::net::UnixStream,
    max: usize,
) -> io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let raw = stream.as_raw_fd();
    let mut line = Vec::new();
    let mut fds = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (n, got) = stream
            .async_io(tokio::io::Interest::READABLE, || {
                recv_once(raw, &mut buf, MsgFlags::MSG_DONTWAIT)
            })
            .await?;
        fds.extend(got);
        if n == 0 {
            return Ok(None);
        }
        // Only the new bytes are searched: rescanning the whole line is quadratic.
        let start = line.len();
        line.extend_from_slice(&buf[..n]);
        if let Some(end) = line[start..].iter().position(|&b| b == b'\n') {
            line.truncate(start + end);
            return Ok(Some((line, fds)));
        }
        if line.len() > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("request line longer than {max} bytes"),
            ));
        }
    }
}

/// Reads reply lines from a blocking socket, keeping the descriptors that arrive with them.
pub struct LineReader {
    stream: std::os::unix::net::UnixStream,
    buf: Vec<u8>,
    fds: VecDeque<OwnedFd>,
    eof: bool,
}

impl LineReader {
    pub fn new(stream: std::os::unix::net::UnixStream) -> LineReader {
        LineReader {
            stream,
            buf: Vec::new(),
            fds: VecDeque::new(),
            eof: false,
        }
    }

    /// The next line (without its newline); `None` at the end of the stream.
    pub fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                return Ok(Some(line));
            }
            if self.eof {
                return Ok(None);
            }
            let mut chunk = [0u8; 16 * 1024];
            let (n, fds) = match recv_once(self.stream.as_raw_fd(), &mut chunk, MsgFlags::empty()) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.fds.extend(fds);
            if n == 0 {
                self.eof = true;
                if !self.buf.is_empty() {
                    return Ok(Some(std::mem::take(&mut self.buf)));
                }
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The oldest descriptor received and not yet taken.
    pub fn take_fd(&mut self) -> Option<OwnedFd> {
        self.fds.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[tokio::test]
    async fn request_line_brings_its_descriptors() {
        let (client, server) = std::os::unix::net::UnixStream::pair().unwrap();
        let (mut r, w) = std::os::unix::net::UnixStream::pair().unwrap();
        send(&client, b"{\"run\":1}\n", &[w.as_fd()]).unwrap();
        drop(w);
        server.set_nonblocking(true).unwrap();
        let server = tokio::net::UnixStream::from_std(server).unwrap();
        let (line, fds) = read_request(&server).await.unwrap().unwrap();
        assert_eq!(line, b"{\"run\":1}");
        assert_eq!(fds.len(), 1);
        // The descriptor is the other end's peer: what is written to it arrives.
        let mut passed = std::fs::File::from(fds.into_iter().next().unwrap());
        passed.write_all(b"hi").unwrap();
        drop(passed);
        let mut got = String::new();
        r.read_to_string(&mut got).unwrap();
        assert_eq!(got, "hi");
    }

    #[tokio::test]
    async fn request_line_is_bounded() {
        let (client, server) = std::os::unix::net::UnixStream::pair().unwrap();
        server.set_nonblocking(true).unwrap();
        let server = tokio::net::UnixStream::from_std(server).unwrap();
        // No newline in sight: refused once past the limit, not read for ever.
        let writer = std::thread::spawn(move || {
            let _ = (&client).write_all(&[b'x'; 300 << 10]);
            client
        });
        let err = read_request_within(&server, 100 << 10).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            err.to_string().contains("longer than 102400 bytes"),
            "{err}"
        );
        drop(server);
        drop(writer.join().unwrap());

        // A line split over many reads, its newline in the last one, is found whole.
        let (client, server) = std::os::unix::net::UnixStream::pair().unwrap();
        server.set_nonblocking(true).unwrap();
        let server = tokio::net::UnixStream::from_std(server).unwrap();
        let mut line = vec![b'y'; 200 << 10];
        line.push(b'\n');
        let writer = std::thread::spawn(move || (&client).write_all(&line).map(|()| client));
        let (got, _) = read_request_within(&server, 1 << 20)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.len(), 200 << 10);
        drop(writer.join().unwrap());
    }

    #[tokio::test]
    async fn reply_lines_keep_their_descriptor_until_taken() {
        let (client, server) = std::os::unix::net::UnixStream::pair().unwrap();
        server.set_nonblocking(true).unwrap();
        let server = tokio::net::UnixStream::from_std(server).unwrap();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        use tokio::io::AsyncWriteExt;
        let mut s = server;
        s.write_all(b"first\n").await.unwrap();
        send_async(&s, b"second\n", a.as_fd()).await.unwrap();
        s.write_all(b"third").await.unwrap();
        drop(s);
        let mut reader = LineReader::new(client);
        assert_eq!(reader.next_line().unwrap().unwrap(), b"first");
        assert_eq!(reader.next_line().unwrap().unwrap(), b"second");
        assert!(reader.take_fd().is_some());
        assert!(reader.take_fd().is_none());
        assert_eq!(reader.next_line().unwrap().unwrap(), b"third");
        assert!(reader.next_line().unwrap().is_none());
    }

    #[tokio::test]
    async fn closed_before_a_line_is_none() {
        let (client, server) = std::os::unix::net::UnixStream::pair().unwrap();
        server.set_nonblocking(true).unwrap();
        let server = tokio::net::UnixStream::from_std(server).unwrap();
        drop(client);
        assert!(read_request(&server).await.unwrap().is_none());
    }
}
