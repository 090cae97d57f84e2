//! Forwarding a query to upstream resolvers, the way a stub resolver does: each upstream in turn,
//! over the protocol the client used, bounded in time so that a dead upstream ends in SERVFAIL
//! before the client gives up rather than in silence.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout, Instant};

/// The largest DNS message over UDP (and over TCP, by its 16-bit length prefix).
const MAX_MESSAGE: usize = 65_535;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no upstream resolver to forward to")]
    NoUpstream,
    #[error("upstream {upstream} did not answer within {waited:?}")]
    Timeout {
        upstream: SocketAddr,
        waited: Duration,
    },
    #[error("cannot query upstream {upstream}: {source}")]
    Io {
        upstream: SocketAddr,
        source: io::Error,
    },
    #[error("invalid answer from upstream {upstream}: {reason}")]
    Invalid {
        upstream: SocketAddr,
        reason: String,
    },
    #[error("query too short to forward ({len} bytes)")]
    ShortQuery { len: usize },
}

/// How long forwarding may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardTimeouts {
    /// For one upstream, before the next is tried.
    pub attempt: Duration,
    /// For all of them: glibc's stub gives up after 5 s, so the default answers before that.
    pub total: Duration,
}

impl Default for ForwardTimeouts {
    fn default() -> ForwardTimeouts {
        ForwardTimeouts {
            attempt: Duration::from_secs(2),
            total: Duration::from_secs(4),
        }
    }
}

/// Sends the wire-format `query` to each upstream in turn and returns the first real answer. A
/// SERVFAIL or REFUSED moves on to the next upstream, and is returned only if none does better.
pub async fn forward(
    query: &[u8],
    upstreams: &[SocketAddr],
    tcp: bool,
    timeouts: ForwardTimeouts,
) -> Result<Message, UpstreamError> {
    if query.len() < 12 {
        return Err(UpstreamError::ShortQuery { len: query.len() });
    }
    let deadline = Instant::now() + timeouts.total;
    let mut last_error = UpstreamError::NoUpstream;
    let mut refusal = None;
    for &upstream in upstreams {
        let waited = timeouts
            .attempt
            .min(deadline.saturating_duration_since(Instant::now()));
        if waited.is_zero() {
            break;
        }
        let exchange = async {
            if tcp {
                exchange_tcp(query, upstream).await
            } else {
                exchange_udp(query, upstream).await
            }
        };
        match timeout(waited, exchange).await {
            Ok(Ok(answer)) => match answer.metadata.response_code {
                ResponseCode::ServFail | ResponseCode::Refused => refusal = Some(answer),
                _ => return Ok(answer),
            },
            Ok(Err(error)) => last_error = error,
            Err(_) => last_error = UpstreamError::Timeout { upstream, waited },
        }
    }
    refusal.ok_or(last_error)
}

/// A fresh transaction id: with the random source port of a fresh socket, what makes a spoofed
/// answer hard to slip in.
fn transaction_id() -> u16 {
    super::random_u64() as u16
}

fn with_id(query: &[u8], id: u16) -> Vec<u8> {
    let mut packet = query.to_vec();
    packet[..2].copy_from_slice(&id.to_be_bytes());
    packet
}

async fn exchange_udp(query: &[u8], upstream: SocketAddr) -> Result<Message, UpstreamError> {
    let io_error = |source| UpstreamError::Io { upstream, source };
    let local: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(io_error)?;
    // Connected, so the kernel drops datagrams from anyone but the upstream and reports a closed
    // port (ICMP unreachable) as an error at once instead of a timeout.
    socket.connect(upstream).await.map_err(io_error)?;
    let id = transaction_id();
    socket.send(&with_id(query, id)).await.map_err(io_error)?;
    let mut buffer = vec![0; MAX_MESSAGE];
    loop {
        let len = socket.recv(&mut buffer).await.map_err(io_error)?;
        // A stray or late datagram for another id is skipped, not taken as the answer.
        if len >= 2 && buffer[..2] == id.to_be_bytes() {
            return parse_answer(&buffer[..len], upstream);
        }
    }
}

async fn exchange_tcp(query: &[u8], upstream: SocketAddr) -> Result<Message, UpstreamError> {
    let io_error = |source| UpstreamError::Io { upstream, source };
    let len = u16::try_from(query.len()).map_err(|_| UpstreamError::Invalid {
        upstream,
        reason: format!("query of {} bytes does not fit a message", query.len()),
    })?;
    let mut stream = TcpStream::connect(upstream).await.map_err(io_error)?;
    let id = transaction_id();
    let mut packet = len.to_be_bytes().to_vec();
    packet.extend_from_slice(&with_id(query, id));
    stream.write_all(&packet).await.map_err(io_error)?;
    let answer_len = stream.read_u16().await.map_err(io_error)?;
    let mut answer = vec![0; usize::from(answer_len)];
    stream.read_exact(&mut answer).await.map_err(io_error)?;
    if answer.len() < 2 || answer[..2] != id.to_be_bytes() {
        return Err(UpstreamError::Invalid {
            upstream,
            reason: "answer for another transaction id".into(),
        });
    }
    parse_answer(&answer, upstream)
}

fn parse_answer(bytes: &[u8], upstream: SocketAddr) -> Result<Message, UpstreamError> {
    let message = Message::from_vec(bytes).map_err(|error| UpstreamError::Invalid {
        upstream,
        reason: error.to_string(),
    })?;
    if message.metadata.message_type != MessageType::Response {
        return Err(UpstreamError::Invalid {
            upstream,
            reason: "a query instead of an answer".into(),
        });
    }
    Ok(message)
}
