//! DNS over TCP, with the limits a server that containers reach needs (hickory's own TCP
//! listener has none but an idle timeout, and allocates the announced length of a message
//! before its bytes arrive).
//!
//! - at most [`DnsOptions::tcp_per_client`] connections per client address and
//!   [`DnsOptions::tcp_total`] per listener: a connection past either is accepted and closed at
//!   once, so the client sees a refusal instead of a hang;
//! - the whole process's DNS descriptors come from one budget (a share of the open-files
//!   limit, [`super::limits`]): when it is used up the listener stops accepting until one is
//!   given back, so the control socket and the containers' own descriptors always have room;
//! - a message must arrive whole within [`DnsOptions::tcp_idle`] of the last answer, and a
//!   connection answers at most [`MAX_QUERIES`] of them (miekg/dns's default, which docker's
//!   embedded DNS uses);
//! - bytes are buffered as they arrive, never the announced length ahead of them, and all the
//!   connections of a listener together hold at most [`DnsOptions::tcp_buffered`] bytes of
//!   unfinished messages: the connection that would go past it is closed.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

use super::{limits, DnsOptions, Handler};

/// Queries answered on one connection before it is closed.
pub const MAX_QUERIES: usize = 128;

/// What a listener's TCP side holds now, for its own accounting and for tests.
#[derive(Debug, Default)]
pub struct TcpStats {
    /// Open connections.
    pub open: AtomicUsize,
    /// Bytes of messages received but not yet answered.
    pub buffered: AtomicUsize,
    /// Connections closed at once for a limit.
    pub refused: AtomicUsize,
}

struct Shared {
    handler: Handler,
    options: DnsOptions,
    stats: Arc<TcpStats>,
    per_client: Mutex<HashMap<IpAddr, usize>>,
}

/// A client's place among the open connections, given back on drop.
struct Place {
    shared: Arc<Shared>,
    client: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.shared.stats.open.fetch_sub(1, Ordering::SeqCst);
        let mut clients = self
            .shared
            .per_client
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = clients.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                clients.remove(&self.client);
            }
        }
    }
}

impl Shared {
    /// A place for one more connection of `client`, `None` past a limit.
    fn admit(self: &Arc<Shared>, client: IpAddr) -> Option<Place> {
        let mut clients = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        let of_client = clients.get(&client).copied().unwrap_or(0);
        if of_client >= self.options.tcp_per_client
            || self.stats.open.load(Ordering::SeqCst) >= self.options.tcp_total
        {
            return None;
        }
        clients.insert(client, of_client + 1);
        self.stats.open.fetch_add(1, Ordering::SeqCst);
        Some(Place {
            shared: Arc::clone(self),
            client,
        })
    }
}

/// Accepts and serves connections on `listener` until `shutdown`.
pub(super) async fn serve(
    listener: TcpListener,
    handler: Handler,
    options: DnsOptions,
    stats: Arc<TcpStats>,
    shutdown: CancellationToken,
) {
    let shared = Arc::new(Shared {
        handler,
        options,
        stats,
        per_client: Mutex::new(HashMap::new()),
    });
    let mut connections = JoinSet::new();
    loop {
        // A descriptor from the process's DNS budget before accepting: when there is none the
        // listener pauses (clients wait in the backlog) instead of taking the last ones.
        let fd = tokio::select! {
            fd = limits::budget().acquire_owned() => match fd {
                Ok(fd) => fd,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let (stream, src) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(%error, "cannot accept a dns connection");
                // Out of descriptors despite the budget (others in the process used them):
                // wait for a connection to end rather than spin on the same error.
                if matches!(
                    error.raw_os_error(),
                    Some(libc::EMFILE) | Some(libc::ENFILE)
                ) {
                    tokio::select! {
                        _ = connections.join_next(), if !connections.is_empty() => {}
                        () = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
                    }
                }
                continue;
            }
        };
        let Some(place) = shared.admit(src.ip()) else {
            shared.stats.refused.fetch_add(1, Ordering::SeqCst);
            tracing::debug!(%src, "dns connection over the limit, closed");
            drop(stream);
            continue;
        };
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            connection(stream, src, &shared).await;
            drop(place);
            drop(fd);
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn connection(mut stream: TcpStream, src: SocketAddr, shared: &Shared) {
    let idle = shared.options.tcp_idle;
    for _ in 0..MAX_QUERIES {
        let deadline = Instant::now() + idle;
        let message =
            match tokio::time::timeout_at(deadline, read_message(&mut stream, shared)).await {
                Ok(Ok(Some(message))) => message,
                Ok(Ok(None)) => return,
                Ok(Err(error)) => {
                    tracing::debug!(%src, %error, "dns connection closed");
                    return;
                }
                Err(_) => return,
            };
        let Some(answer) = shared.handler.answer_tcp(&message.bytes, src).await else {
            return;
        };
        drop(message);
        let Ok(len) = u16::try_from(answer.len()) else {
            return;
        };
        let mut packet = Vec::with_capacity(answer.len() + 2);
        packet.extend_from_slice(&len.to_be_bytes());
        packet.extend_from_slice(&answer);
        // A client that does not read its answers is not waited for.
        if !matches!(timeout(idle, stream.write_all(&packet)).await, Ok(Ok(()))) {
            return;
        }
    }
}

/// A received message, counted in its listener's buffered bytes until dropped.
struct Message<'a> {
    bytes: Vec<u8>,
    stats: &'a TcpStats,
}

impl Drop for Message<'_> {
    fn drop(&mut self) {
        self.stats
            .buffered
            .fetch_sub(self.bytes.len(), Ordering::SeqCst);
    }
}

/// The next length-prefixed message, `None` when the client closed between messages.
async fn read_message<'a>(
    stream: &mut TcpStream,
    shared: &'a Shared,
) -> io::Result<Option<Message<'a>>> {
    let mut prefix = [0u8; 2];
    match stream.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = usize::from(u16::from_be_bytes(prefix));
    let mut message = Message {
        bytes: Vec::new(),
        stats: &shared.stats,
    };
    let mut chunk = [0u8; 2048];
    while message.bytes.len() < len {
        let want = (len - message.bytes.len()).min(chunk.len());
        let n = stream.read(&mut chunk[..want]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a message",
            ));
        }
        let before = shared.stats.buffered.fetch_add(n, Ordering::SeqCst);
        if before + n > shared.options.tcp_buffered {
            shared.stats.buffered.fetch_sub(n, Ordering::SeqCst);
            return Err(io::Error::other(
                "the listener's buffer for unfinished messages is full",
            ));
        }
        message.bytes.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(message))
}
