//! A userland proxy for the published ports NAT cannot take to a container, as Docker's
//! docker-proxy: IPv6 loopback (`[::1]`: the kernel drops a packet with a loopback address that
//! NAT would send out of another interface, and IPv6 has no `route_localnet`), and IPv6
//! addresses of a container without IPv6. Every other published port stays pure DNAT
//! (firewall.rs), which keeps the client's address.
//!
//! The supervisor holds one listener per such port while the port is published
//! ([`Proxies::sync`] with the project's complete list); dropping it closes them all. The
//! listeners are recorded process-wide ([`is_held`]), so the check that a host port is free
//! does not trip over the project's own listener.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use super::firewall::Protocol;
use super::project::PortBinding;

/// A UDP "connection" with no packet either way for this long is forgotten, as conntrack's
/// UDP timeout does.
const UDP_IDLE: Duration = Duration::from_secs(60);
/// At most this many UDP clients per port at once (each holds a socket).
const UDP_CLIENTS: usize = 1024;
/// At most this many TCP connections per port at once (each holds two sockets in the
/// supervisor, which also serves the containers' DNS): more are closed as they come.
const TCP_CONNECTIONS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("host port {port}/{protocol} on {addr} is already in use")]
    InUse {
        protocol: Protocol,
        addr: IpAddr,
        port: u16,
    },
    #[error("cannot listen on {addr}/{protocol} for a published port")]
    Listen {
        protocol: Protocol,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

impl ProxyError {
    /// The port the error is about.
    pub fn port(&self) -> (Protocol, u16) {
        match self {
            ProxyError::InUse { protocol, port, .. } => (*protocol, *port),
            ProxyError::Listen { protocol, addr, .. } => (*protocol, addr.port()),
        }
    }
}

/// The listeners of this process, for [`is_held`].
static HELD: Mutex<BTreeSet<(Protocol, SocketAddr)>> = Mutex::new(BTreeSet::new());

/// Whether this process listens on `addr` for a published port (then the port is its own).
pub fn is_held(protocol: Protocol, addr: SocketAddr) -> bool {
    HELD.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(&(protocol, addr))
}

/// One proxied port: where it listens and where it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    pub protocol: Protocol,
    pub listen: SocketAddr,
    pub target: SocketAddr,
    /// The file asked for this address (`[::1]:8080:80`): a taken port is an error. A port
    /// published on every address gets its IPv6 loopback side when it can.
    pub explicit: bool,
}

/// The routes a published port needs besides NAT (none for most).
pub fn routes(b: &PortBinding) -> Vec<Route> {
    let listen = match b.host_ip {
        None => Some((
            if b.container_ip6.is_some() {
                Ipv6Addr::LOCALHOST
            } else {
                Ipv6Addr::UNSPECIFIED
            },
            false,
        )),
        Some(IpAddr::V6(ip)) if ip.is_unspecified() => Some((
            if b.container_ip6.is_some() {
                Ipv6Addr::LOCALHOST
            } else {
                Ipv6Addr::UNSPECIFIED
            },
            true,
        )),
        Some(IpAddr::V6(ip)) if ip.is_loopback() => Some((ip, true)),
        Some(IpAddr::V6(ip)) if b.container_ip6.is_none() => Some((ip, true)),
        Some(_) => None,
    };
    let target = match b.container_ip6 {
        Some(ip) => IpAddr::V6(ip),
        None => IpAddr::V4(b.container_ip),
    };
    listen
        .map(|(ip, explicit)| Route {
            protocol: b.protocol,
            listen: SocketAddr::from((ip, b.host_port)),
            target: SocketAddr::from((target, b.container_port)),
            explicit,
        })
        .into_iter()
        .collect()
}

/// A running listener; its task (and every connection's) ends when it is dropped.
struct Running {
    task: Option<JoinHandle<()>>,
    key: (Protocol, SocketAddr),
}

impl Running {
    /// Stops the listener and waits until its socket is closed: the port can be bound again
    /// at once (a replaced container's port is taken over by its replacement).
    async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
        HELD.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

/// The project's proxied ports.
#[derive(Default)]
pub struct Proxies {
    running: HashMap<Route, Running>,
}

impl Proxies {
    /// Makes the listeners those of `bindings` (the project's complete list): stops the ones no
    /// longer wanted first, then starts the new ones. A taken port of an explicit route is an
    /// error (the listeners started before it stay: the caller's list is still wanted); an
    /// implicit one is left out with a warning, as its IPv4 side works.
    pub async fn sync(&mut self, bindings: &[PortBinding]) -> Result<(), ProxyError> {
        let wanted: Vec<Route> = bindings.iter().flat_map(routes).collect();
        let gone: Vec<Route> = self
            .running
            .keys()
            .filter(|r| !wanted.contains(r))
            .copied()
            .collect();
        for route in gone {
            if let Some(running) = self.running.remove(&route) {
                running.stop().await;
            }
        }
        for route in wanted {
            if self.running.contains_key(&route) {
                continue;
            }
            match start(route) {
                Ok(running) => {
                    self.running.insert(route, running);
                }
                Err(e) if !route.explicit => {
                    tracing::warn!(listen = %route.listen, error = %e, "published port not served on IPv6 loopback");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Closes every listener (their sockets are closed when this returns).
    pub async fn clear(&mut self) {
        for (_, running) in self.running.drain() {
            running.stop().await;
        }
    }
}

fn listen_socket(route: Route) -> Result<Socket, ProxyError> {
    let (protocol, addr) = (route.protocol, route.listen);
    let err = |source: io::Error| {
        if source.kind() == io::ErrorKind::AddrInUse {
            ProxyError::InUse {
                protocol,
                addr: addr.ip(),
                port: addr.port(),
            }
        } else {
            ProxyError::Listen {
                protocol,
                addr,
                source,
            }
        }
    };
    let kind = match protocol {
        Protocol::Tcp => Type::STREAM,
        Protocol::Udp => Type::DGRAM,
    };
    let socket = Socket::new(Domain::for_address(addr), kind, None).map_err(err)?;
    if addr.is_ipv6() {
        // `[::]` is IPv6 only: IPv4 goes through NAT.
        socket.set_only_v6(true).map_err(err)?;
    }
    if protocol == Protocol::Tcp {
        socket.set_reuse_address(true).map_err(err)?;
    }
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    if protocol == Protocol::Tcp {
        socket.listen(1024).map_err(err)?;
    }
    Ok(socket)
}

fn start(route: Route) -> Result<Running, ProxyError> {
    let socket = listen_socket(route)?;
    let err = |source| ProxyError::Listen {
        protocol: route.protocol,
        addr: route.listen,
        source,
    };
    let task = match route.protocol {
        Protocol::Tcp => {
            let listener = TcpListener::from_std(socket.into()).map_err(err)?;
            tokio::spawn(serve_tcp(listener, route.target, TCP_CONNECTIONS))
        }
        Protocol::Udp => {
            let socket = UdpSocket::from_std(socket.into()).map_err(err)?;
            tokio::spawn(serve_udp(socket, route.target))
        }
    };
    let key = (route.protocol, route.listen);
    HELD.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key);
    Ok(Running {
        task: Some(task),
        key,
    })
}

/// Copies each connection to `listener` both ways to `target`, at most `max` at once.
async fn serve_tcp(listener: TcpListener, target: SocketAddr, max: usize) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut client, _)) = accepted else {
                    // Out of descriptors or similar: let connections finish before retrying.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                if connections.len() >= max {
                    // Closed at once: a flood of connections cannot hold the supervisor's fds.
                    drop(client);
                    continue;
                }
                connections.spawn(async move {
                    // A container not listening (yet): the client sees the connection closed,
                    // as with docker-proxy.
                    if let Ok(mut upstream) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
            // Reaps finished connections; aborting this task aborts the set's.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_udp(socket: UdpSocket, target: SocketAddr) {
    let socket = Arc::new(socket);
    let clients: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    let mut relays = tokio::task::JoinSet::new();
    let mut buf = vec![0u8; 65535];
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let Ok((n, client)) = received else { continue };
                let known = clients
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&client)
                    .cloned();
                let upstream = match known {
                    Some(u) => u,
                    None => {
                        let count = clients.lock().unwrap_or_else(PoisonError::into_inner).len();
                        if count >= UDP_CLIENTS {
                            continue;
                        }
                        let Ok(u) = udp_upstream(target).await else { continue };
                        let u = Arc::new(u);
                        clients
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(client, Arc::clone(&u));
                        relays.spawn(relay_back(
                            Arc::clone(&socket),
                            Arc::clone(&u),
                            client,
                            Arc::clone(&clients),
                        ));
                        u
                    }
                };
                let _ = upstream.send(&buf[..n]).await;
            }
            Some(_) = relays.join_next(), if !relays.is_empty() => {}
        }
    }
}

async fn udp_upstream(target: SocketAddr) -> io::Result<UdpSocket> {
    let any: SocketAddr = match target {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let u = UdpSocket::bind(any).await?;
    u.connect(target).await?;
    Ok(u)
}

/// The container's answers to one client, until the exchange goes quiet.
async fn relay_back(
    socket: Arc<UdpSocket>,
    upstream: Arc<UdpSocket>,
    client: SocketAddr,
    clients: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>,
) {
    let mut buf = vec![0u8; 65535];
    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, upstream.recv(&mut buf)).await {
        let _ = socket.send_to(&buf[..n], client).await;
    }
    clients
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&client);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn binding(host_ip: Option<&str>, ip6: Option<&str>) -> PortBinding {
        PortBinding {
            protocol: Protocol::Tcp,
            host_ip: host_ip.map(|s| s.parse().unwrap()),
            host_port: 8080,
            container_ip: "10.0.0.2".parse().unwrap(),
            container_ip6: ip6.map(|s| s.parse().unwrap()),
            container_port: 80,
        }
    }

    #[test]
    fn only_what_nat_cannot_serve_is_proxied() {
        let r = |h, c| {
            routes(&binding(h, c))
                .into_iter()
                .map(|r| (r.listen.to_string(), r.target.to_string(), r.explicit))
                .collect::<Vec<_>>()
        };
        let own = |a: &str, b: &str, e| vec![(a.to_string(), b.to_string(), e)];
        // Every address: loopback to the IPv6 address, or every IPv6 address to the IPv4 one.
        assert_eq!(
            r(None, Some("fd00::2")),
            own("[::1]:8080", "[fd00::2]:80", false)
        );
        assert_eq!(r(None, None), own("[::]:8080", "10.0.0.2:80", false));
        assert_eq!(r(Some("::"), None), own("[::]:8080", "10.0.0.2:80", true));
        assert_eq!(r(Some("::1"), None), own("[::1]:8080", "10.0.0.2:80", true));
        assert_eq!(
            r(Some("::1"), Some("fd00::2")),
            own("[::1]:8080", "[fd00::2]:80", true)
        );
        assert_eq!(
            r(Some("fd00::9"), None),
            own("[fd00::9]:8080", "10.0.0.2:80", true)
        );
        // NAT serves these.
        assert!(r(Some("fd00::9"), Some("fd00::2")).is_empty());
        assert!(r(Some("127.0.0.1"), None).is_empty());
        assert!(r(Some("0.0.0.0"), Some("fd00::2")).is_empty());
    }

    #[tokio::test]
    async fn tcp_and_udp_reach_the_target_and_stop_with_the_port() {
        // Targets on the IPv4 loopback, listeners on the IPv6 one.
        let tcp_target = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let udp_target = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let free = std::net::TcpListener::bind("[::1]:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let mk = |protocol, target: SocketAddr| PortBinding {
            protocol,
            host_ip: Some("::1".parse().unwrap()),
            host_port: port,
            container_ip: "127.0.0.1".parse().unwrap(),
            container_ip6: None,
            container_port: target.port(),
        };
        let bindings = [
            mk(Protocol::Tcp, tcp_target.local_addr().unwrap()),
            mk(Protocol::Udp, udp_target.local_addr().unwrap()),
        ];
        let mut proxies = Proxies::default();
        proxies.sync(&bindings).await.unwrap();
        let at: SocketAddr = ("::1".parse::<Ipv6Addr>().unwrap(), port).into();
        assert!(is_held(Protocol::Tcp, at));
        // The same again changes nothing; a second process (here: a plain bind) is refused.
        proxies.sync(&bindings).await.unwrap();
        assert!(std::net::TcpListener::bind(at).is_err());

        let server = tokio::spawn(async move {
            let (mut c, _) = tcp_target.accept().await.unwrap();
            let mut b = [0u8; 4];
            c.read_exact(&mut b).await.unwrap();
            c.write_all(&b).await.unwrap();
        });
        let mut client = TcpStream::connect(at).await.unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut back = [0u8; 4];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"ping");
        server.await.unwrap();

        let udp_client = UdpSocket::bind("[::1]:0").await.unwrap();
        udp_client.send_to(b"hello", at).await.unwrap();
        let mut b = [0u8; 16];
        let (n, from) = udp_target.recv_from(&mut b).await.unwrap();
        assert_eq!(&b[..n], b"hello");
        udp_target.send_to(b"world", from).await.unwrap();
        let (n, _) = udp_client.recv_from(&mut b).await.unwrap();
        assert_eq!(&b[..n], b"world");

        // Gone from the list: the listener is closed when sync returns (the port is free).
        proxies.sync(&bindings[1..]).await.unwrap();
        assert!(!is_held(Protocol::Tcp, at));
        assert!(TcpStream::connect(at).await.is_err());
        assert!(std::net::TcpListener::bind(at).is_ok());
        proxies.clear().await;
        assert!(!is_held(Protocol::Udp, at));
        // Closed: the port can be bound again at once.
        assert!(std::net::UdpSocket::bind(at).is_ok());
    }

    #[tokio::test]
    async fn connections_past_the_limit_are_closed() {
        // A target that keeps every connection open.
        let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let to = target.local_addr().unwrap();
        let holder = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((c, _)) = target.accept().await {
                held.push(c);
            }
        });
        let listener = TcpListener::bind("[::1]:0").await.unwrap();
        let at = listener.local_addr().unwrap();
        let proxy = tokio::spawn(serve_tcp(listener, to, 2));
        let mut open = Vec::new();
        for _ in 0..2 {
            open.push(TcpStream::connect(at).await.unwrap());
        }
        // Accepted in order: the third finds two being served and is closed at once (a read
        // gives end of file; an open one would never become readable).
        let third = TcpStream::connect(at).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), third.readable())
            .await
            .expect("the third connection was not closed")
            .unwrap();
        let mut probe = [0u8; 1];
        assert!(matches!(third.try_read(&mut probe), Ok(0)));
        // The first two are still open: nothing to read, no end of file.
        for c in &open {
            let mut b = [0u8; 1];
            assert!(
                matches!(c.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            );
        }
        proxy.abort();
        holder.abort();
    }

    #[tokio::test]
    async fn a_taken_explicit_port_is_an_error_an_implicit_one_a_warning() {
        let busy = std::net::TcpListener::bind("[::]:0").unwrap();
        let port = busy.local_addr().unwrap().port();
        let mut b = binding(Some("::"), None);
        b.host_port = port;
        let mut proxies = Proxies::default();
        let err = proxies.sync(&[b]).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("host port {port}/tcp on :: is already in use")
        );
        b.host_ip = None;
        proxies.sync(&[b]).await.unwrap();
    }
}
