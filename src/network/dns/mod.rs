//! Service-name DNS for containers, like Docker's embedded DNS.
//!
//! Like Docker, each container has its own resolver at `127.0.0.11`, port 53 (UDP and TCP), in
//! its own network namespace, which its resolv.conf names: the supervisor binds the sockets
//! there ([`bind_in_namespace`]) and serves them from its tokio runtime in the host namespace.
//! Nothing is bound on the networks' gateways, so several projects can share a network, each
//! serving its own containers. A query is answered from the [`DnsTable`]: the container a
//! listener serves resolves the names of the networks it is on and no others (other projects'
//! containers on a shared network come in through a [`Refresh`]). Everything else goes to
//! upstream resolvers: the container's own `dns:`, else the host's nameservers (loopback ones
//! work: forwarding happens in the host namespace).
//!
//! [`serve`] listens on an address of the host instead, knowing clients by their source
//! address (tests, fuzzing); clients whose address is in no container's entry are refused.

mod forward;
pub mod limits;
mod table;
mod tcp;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::iter;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use tokio::net::{TcpSocket, UdpSocket};
use tokio::sync::Semaphore;

pub use forward::{ForwardTimeouts, UpstreamError};
pub use table::{ContainerDns, DnsTable, Endpoint, Lookup, TTL};
pub use tcp::{TcpStats, MAX_QUERIES};

/// The port containers query.
pub const DNS_PORT: u16 = 53;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot listen for dns on udp {addr}: {source}")]
    BindUdp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen for dns on tcp {addr}: {source}")]
    BindTcp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("dns listener on {addr} stopped with an error: {reason}")]
    Stopped { addr: SocketAddr, reason: String },
}

/// Tunables of a listener. The limits bound what one container, or all of them, can make the
/// supervisor hold (issue 19: a container's TCP connections used up its descriptors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsOptions {
    pub forward: ForwardTimeouts,
    /// A TCP connection idle this long is closed; a message must arrive whole within it.
    pub tcp_idle: Duration,
    /// Open TCP connections per client address.
    pub tcp_per_client: usize,
    /// Open TCP connections of the listener.
    pub tcp_total: usize,
    /// Bytes of unfinished TCP messages the listener holds, all connections together.
    pub tcp_buffered: usize,
    /// Queries being forwarded upstream at once (each holds a socket), UDP and TCP.
    pub forwarding: usize,
}

impl Default for DnsOptions {
    fn default() -> DnsOptions {
        DnsOptions {
            forward: ForwardTimeouts::default(),
            tcp_idle: Duration::from_secs(10),
            tcp_per_client: 16,
            tcp_total: 256,
            tcp_buffered: 1 << 20,
            forwarding: 128,
        }
    }
}

/// Serving one address, UDP and TCP. Dropping it stops the listeners (their tasks are aborted);
/// [`DnsListener::shutdown`] also waits until the sockets are closed.
pub struct DnsListener {
    addr: SocketAddr,
    /// UDP, through hickory's server.
    server: Server<Handler>,
    /// TCP, served here with limits (`tcp`).
    tcp: Option<tokio::task::JoinHandle<()>>,
    tcp_stats: Arc<TcpStats>,
}

impl std::fmt::Debug for DnsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsListener")
            .field("addr", &self.addr)
            .finish()
    }
}

impl DnsListener {
    /// The bound address (with the actual port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Open TCP connections and the bytes of their unfinished messages.
    pub fn tcp_usage(&self) -> (usize, usize) {
        (
            self.tcp_stats.open.load(Ordering::SeqCst),
            self.tcp_stats.buffered.load(Ordering::SeqCst),
        )
    }

    /// TCP connections closed at once for a limit, since the start.
    pub fn tcp_refused(&self) -> usize {
        self.tcp_stats.refused.load(Ordering::SeqCst)
    }

    /// Stops serving and waits for the sockets to be closed, so the address can be bound again.
    pub async fn shutdown(mut self) -> Result<(), DnsError> {
        let addr = self.addr;
        let udp = self.server.shutdown_gracefully().await;
        // The TCP task ends on the same token; its connections are aborted with its task set.
        if let Some(tcp) = self.tcp.take() {
            let _ = tcp.await;
        }
        udp.map_err(|error| DnsError::Stopped {
            addr,
            reason: error.to_string(),
        })
    }
}

impl Drop for DnsListener {
    fn drop(&mut self) {
        // The server's tasks are aborted as its task set drops; cancelling first lets any that
        // is running end cleanly.
        self.server.shutdown_token().cancel();
        if let Some(tcp) = &self.tcp {
            tcp.abort();
        }
    }
}

/// Starts answering on `addr` (UDP and TCP, same port; port 0 picks one) on the current tokio
/// runtime, from `table`. Clients are known by their source address.
pub async fn serve(
    addr: SocketAddr,
    table: DnsTable,
    options: DnsOptions,
) -> Result<DnsListener, DnsError> {
    let udp = UdpSocket::bind(addr)
        .await
        .map_err(|source| DnsError::BindUdp { addr, source })?;
    let bound = udp
        .local_addr()
        .map_err(|source| DnsError::BindUdp { addr, source })?;
    let tcp = bind_tcp(bound).map_err(|source| DnsError::BindTcp {
        addr: bound,
        source,
    })?;
    let handler = Handler::new(table, options, None, None);
    Ok(serve_sockets(bound, udp, tcp, handler, options))
}

/// What a per-container listener runs before answering each query: brings the table up to
/// date with what it does not own (other projects' containers on shared networks).
pub type Refresh = Arc<dyn Fn() + Send + Sync>;

/// Where containers find their resolver: in their own network namespace, as with Docker's
/// embedded DNS (`127.0.0.11`).
pub const EMBEDDED_ADDRESS: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 11);

/// Binds the resolver's UDP socket and TCP listener at [`EMBEDDED_ADDRESS`], port 53, inside
/// the network namespace `netns`, from a short-lived thread that enters it (the calling
/// thread never moves). The sockets stay in that namespace: only its processes can reach
/// them, and they keep it alive until they are closed.
pub fn bind_in_namespace(
    netns: std::os::fd::BorrowedFd<'_>,
) -> Result<(std::net::UdpSocket, std::net::TcpListener), DnsError> {
    let addr = SocketAddr::from((EMBEDDED_ADDRESS, DNS_PORT));
    let netns = netns
        .try_clone_to_owned()
        .map_err(|source| DnsError::BindUdp { addr, source })?;
    std::thread::scope(|scope| {
        let bind = scope.spawn(|| {
            use std::os::fd::AsRawFd as _;
            // SAFETY: setns only reads the descriptor, which `netns` keeps open for the call.
            if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                let source = std::io::Error::last_os_error();
                return Err(DnsError::BindUdp { addr, source });
            }
            let udp = std::net::UdpSocket::bind(addr)
                .and_then(|u| u.set_nonblocking(true).map(|()| u))
                .map_err(|source| DnsError::BindUdp { addr, source })?;
            // std sets SO_REUSEADDR on listeners: a restarted container rebinds at once.
            let tcp = std::net::TcpListener::bind(addr)
                .and_then(|t| t.set_nonblocking(true).map(|()| t))
                .map_err(|source| DnsError::BindTcp { addr, source })?;
            Ok((udp, tcp))
        });
        bind.join().unwrap_or_else(|_| {
            Err(DnsError::Stopped {
                addr,
                reason: "the thread binding the resolver's sockets panicked".into(),
            })
        })
    })
}

/// Serves the container `container` (its key in the table) on sockets bound in its namespace
/// ([`bind_in_namespace`]): every query comes from that container, whatever its source address.
pub fn serve_container(
    sockets: (std::net::UdpSocket, std::net::TcpListener),
    table: DnsTable,
    options: DnsOptions,
    container: &str,
    refresh: Option<Refresh>,
) -> Result<DnsListener, DnsError> {
    let (udp, tcp) = sockets;
    let addr = udp
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from((EMBEDDED_ADDRESS, DNS_PORT)));
    let udp = UdpSocket::from_std(udp).map_err(|source| DnsError::BindUdp { addr, source })?;
    let tcp = tokio::net::TcpListener::from_std(tcp)
        .map_err(|source| DnsError::BindTcp { addr, source })?;
    let handler = Handler::new(table, options, Some(Arc::from(container)), refresh);
    Ok(serve_sockets(addr, udp, tcp, handler, options))
}

fn serve_sockets(
    addr: SocketAddr,
    udp: UdpSocket,
    tcp: tokio::net::TcpListener,
    handler: Handler,
    options: DnsOptions,
) -> DnsListener {
    let mut server = Server::new(handler.clone());
    server.register_socket(udp);
    let tcp_stats = Arc::new(TcpStats::default());
    let tcp = tokio::spawn(tcp::serve(
        tcp,
        handler,
        options,
        Arc::clone(&tcp_stats),
        server.shutdown_token().clone(),
    ));
    DnsListener {
        addr,
        server,
        tcp: Some(tcp),
        tcp_stats,
    }
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // A restarted supervisor rebinds at once despite connections left in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}

/// A project's resolvers: one per container, in the container's own network namespace, over
/// one shared table.
pub struct DnsService {
    table: DnsTable,
    options: DnsOptions,
    refresh: Option<Refresh>,
    /// By container (its key in the table).
    listeners: HashMap<String, DnsListener>,
}

impl std::fmt::Debug for DnsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsService")
            .field("listeners", &self.listeners.len())
            .finish()
    }
}

impl DnsService {
    /// `refresh` runs before each query is answered (see [`Refresh`]).
    pub fn new(table: DnsTable, options: DnsOptions, refresh: Option<Refresh>) -> DnsService {
        DnsService {
            table,
            options,
            refresh,
            listeners: HashMap::new(),
        }
    }

    pub fn table(&self) -> &DnsTable {
        &self.table
    }

    /// Serves `container` from inside its network namespace `netns`, replacing the listener
    /// of its previous run.
    pub async fn serve_container(
        &mut self,
        container: &str,
        netns: std::os::fd::BorrowedFd<'_>,
    ) -> Result<(), DnsError> {
        if let Some(old) = self.listeners.remove(container) {
            old.shutdown().await?;
        }
        let sockets = bind_in_namespace(netns)?;
        let listener = serve_container(
            sockets,
            self.table.clone(),
            self.options,
            container,
            self.refresh.clone(),
        )?;
        self.listeners.insert(container.to_string(), listener);
        Ok(())
    }

    /// Stops serving `container` and closes its sockets (they would keep its network
    /// namespace alive); unknown containers are ignored.
    pub async fn stop_container(&mut self, container: &str) -> Result<(), DnsError> {
        match self.take_container(container) {
            Some(listener) => listener.shutdown().await,
            None => Ok(()),
        }
    }

    /// The listener of `container`, no longer served by this service: the caller shuts it down
    /// (without holding whatever guards the service).
    pub fn take_container(&mut self, container: &str) -> Option<DnsListener> {
        self.listeners.remove(container)
    }

    /// Stops every listener.
    pub async fn stop_all(&mut self) {
        for (_, listener) in self.listeners.drain() {
            let _ = listener.shutdown().await;
        }
    }

    /// How many containers are served.
    pub fn serving(&self) -> usize {
        self.listeners.len()
    }
}

#[derive(Clone)]
struct Handler {
    table: DnsTable,
    forward: ForwardTimeouts,
    /// Places for queries being forwarded (each holds an upstream socket).
    forwarding: Arc<Semaphore>,
    /// The one container this listener serves (its key in the table); `None`: clients are
    /// known by their source address.
    client: Option<Arc<str>>,
    refresh: Option<Refresh>,
}

impl Handler {
    fn new(
        table: DnsTable,
        options: DnsOptions,
        client: Option<Arc<str>>,
        refresh: Option<Refresh>,
    ) -> Handler {
        Handler {
            table,
            forward: options.forward,
            forwarding: Arc::new(Semaphore::new(options.forwarding)),
            client,
            refresh,
        }
    }
}

/// The EDNS record of an answer: any client speaking EDNS gets an OPT record back (RFC 6891),
/// with its own buffer size.
fn answer_edns(request: &Request) -> Option<Edns> {
    request.edns.as_ref().map(|_| {
        let mut edns = Edns::new();
        edns.set_max_payload(request.max_payload());
        edns
    })
}

/// A response before encoding: the records outlive the borrowed message built from them.
struct Reply {
    metadata: Metadata,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
}

impl Reply {
    fn new(request: &Request) -> Reply {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        Reply {
            metadata,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
        }
    }

    fn error(mut self, code: ResponseCode) -> Reply {
        self.metadata.response_code = code;
        self
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let reply = self.reply(request).await;
        // The UDP answer is truncated to the buffer size the client said it accepts.
        let edns = answer_edns(request);
        let metadata = reply.metadata;
        let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
            metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            iter::empty(),
            reply.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(src = %request.src(), %error, "cannot send dns response");
                let mut failed = metadata;
                failed.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata: failed,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

impl Handler {
    /// The wire answer to `query`, received over TCP from `src`; `None` for what gets no
    /// answer (not a query, or not a DNS message: the connection is closed).
    async fn answer_tcp(&self, query: &[u8], src: SocketAddr) -> Option<Vec<u8>> {
        let request = Request::from_bytes(query.to_vec(), src, Protocol::Tcp).ok()?;
        if request.metadata.message_type == MessageType::Response {
            return None;
        }
        let reply = self.reply(&request).await;
        let edns = answer_edns(&request);
        let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
            reply.metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            iter::empty(),
            reply.additionals.iter(),
        );
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(u16::MAX);
        if let Err(error) = response.destructive_emit(&mut encoder) {
            tracing::debug!(%src, %error, "cannot encode a dns answer");
            // As hickory does: SERVFAIL with the header alone.
            bytes.clear();
            let mut metadata =
                Metadata::new(request.metadata.id, MessageType::Response, OpCode::Query);
            metadata.response_code = ResponseCode::ServFail;
            let header = Header {
                metadata,
                counts: HeaderCounts::default(),
            };
            header.emit(&mut BinEncoder::new(&mut bytes)).ok()?;
        }
        Some(bytes)
    }

    async fn reply(&self, request: &Request) -> Reply {
        let mut reply = Reply::new(request);
        if request.metadata.op_code != OpCode::Query {
            return reply.error(ResponseCode::NotImp);
        }
        let Ok(info) = request.request_info() else {
            return reply.error(ResponseCode::FormErr);
        };
        if let Some(refresh) = &self.refresh {
            refresh();
        }
        let index = self.table.snapshot();
        let client = match &self.client {
            Some(container) => index.container(container),
            None => index.client(request.src().ip()),
        };
        let Some(client) = client else {
            return reply.error(ResponseCode::Refused);
        };
        let query = info.query.original();
        let qname = query.name();
        let qtype = query.query_type();

        if query.query_class() == DNSClass::IN {
            if qtype == RecordType::PTR {
                let target = reverse_address(qname).and_then(|ip| index.reverse(client, ip));
                if let Some(target) = target.and_then(|t| Name::from_ascii(format!("{t}.")).ok()) {
                    reply.metadata.authoritative = true;
                    reply.answers.push(Record::from_rdata(
                        qname.clone(),
                        TTL,
                        RData::PTR(PTR(target)),
                    ));
                    return reply;
                }
            } else if let Some(addresses) = index.resolve(client, &qname.to_ascii()) {
                // A known name has A records, and AAAA ones on networks with IPv6; the other
                // types get NOERROR with no answer, so a stub does not go on to ask upstream
                // about a container.
                reply.metadata.authoritative = true;
                // Rotated at random, as Docker shuffles them: stubs connect to the first
                // address, so replicas share the clients instead of the first taking all.
                if matches!(qtype, RecordType::A | RecordType::ANY) {
                    reply.answers.extend(
                        rotated(&addresses.v4)
                            .map(|&ip| Record::from_rdata(qname.clone(), TTL, RData::A(A(ip)))),
                    );
                }
                if matches!(qtype, RecordType::AAAA | RecordType::ANY) {
                    reply.answers.extend(
                        rotated(&addresses.v6).map(|&ip| {
                            Record::from_rdata(qname.clone(), TTL, RData::AAAA(AAAA(ip)))
                        }),
                    );
                }
                return reply;
            }
        }

        let upstreams = index.upstreams(client).to_vec();
        drop(index);
        // A socket upstream needs a place among this server's forwarded queries and a
        // descriptor of the process's DNS budget; without them the answer is SERVFAIL at once,
        // so a flood of queries cannot hold sockets or tasks without bound.
        let places = (
            Arc::clone(&self.forwarding).try_acquire_owned(),
            limits::budget().try_acquire_owned(),
        );
        let (Ok(_place), Ok(_fd)) = places else {
            tracing::debug!(src = %request.src(), name = %qname, "too many dns queries being forwarded");
            return reply.error(ResponseCode::ServFail);
        };
        let tcp = request.protocol() == Protocol::Tcp;
        match forward::forward(request.as_slice(), &upstreams, tcp, self.forward).await {
            Ok(answer) => {
                let from = answer.metadata;
                reply.metadata.response_code = from.response_code;
                reply.metadata.authoritative = from.authoritative;
                reply.metadata.truncation = from.truncation;
                reply.metadata.recursion_available = from.recursion_available;
                reply.metadata.authentic_data = from.authentic_data;
                reply.answers = answer.answers;
                reply.authorities = answer.authorities;
                reply.additionals = answer.additionals;
                reply
            }
            Err(error) => {
                tracing::debug!(src = %request.src(), name = %qname, %error, "dns forwarding failed");
                reply.error(ResponseCode::ServFail)
            }
        }
    }
}

/// `items` from a random place on, wrapping around.
fn rotated<T>(items: &[T]) -> impl Iterator<Item = &T> {
    let start = match items.len() {
        0 => 0,
        n => random_u64() as usize % n,
    };
    items[start..].iter().chain(&items[..start])
}

/// The wire answer to `query` from `src`, as the TCP listener gives it, for the fuzz targets
/// (`fuzz/`): a container controls these bytes. Forwarding uses the table's upstreams.
#[doc(hidden)]
pub async fn answer_for_fuzzing(
    table: &DnsTable,
    query: &[u8],
    src: SocketAddr,
) -> Option<Vec<u8>> {
    let options = DnsOptions::default();
    let handler = Handler::new(table.clone(), options, None, None);
    handler.answer_tcp(query, src).await
}

/// A number nobody outside can predict: SipHash keyed from the OS's randomness (a fresh key per
/// call) over the current instant.
pub(crate) fn random_u64() -> u64 {
    RandomState::new().hash_one(std::time::Instant::now())
}

/// The IPv4 address of a full `d.c.b.a.in-addr.arpa.` name.
fn reverse_address(name: &Name) -> Option<IpAddr> {
    let net = name.parse_arpa_name().ok()?;
    match net.addr() {
        IpAddr::V4(ip) if net.prefix_len() == 32 => Some(IpAddr::V4(ip)),
        IpAddr::V6(ip) if net.prefix_len() == 128 => Some(IpAddr::V6(ip)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
