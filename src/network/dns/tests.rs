//! Real-socket tests on loopback: the server listens on 127.0.0.1 at a random port, clients play
//! containers from addresses of 127.0.0.0/8 (all local on Linux without setup), and upstreams are
//! fake servers of these tests on other loopback ports.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::*;

const WAIT: Duration = Duration::from_secs(3);

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn endpoint(network: &str, address: &str, names: &[&str]) -> Endpoint {
    Endpoint {
        network: network.into(),
        address: ip(address),
        address6: None,
        names: names.iter().map(|n| n.to_string()).collect(),
    }
}

fn container(endpoints: Vec<Endpoint>) -> ContainerDns {
    ContainerDns {
        endpoints,
        ..ContainerDns::default()
    }
}

/// front (127.0.0.1) on a and b; web x2 (127.0.0.3-4) on a; db (127.0.0.5) on b.
fn project_table() -> DnsTable {
    let table = DnsTable::new();
    table.upsert(
        "p-front-1",
        container(vec![
            endpoint("a", "127.0.0.1", &["front", "p-front-1"]),
            endpoint("b", "127.0.0.2", &["front", "p-front-1"]),
        ]),
    );
    table.upsert(
        "p-web-1",
        container(vec![endpoint("a", "127.0.0.3", &["p-web-1", "web", "www"])]),
    );
    table.upsert(
        "p-web-2",
        container(vec![endpoint("a", "127.0.0.4", &["p-web-2", "web"])]),
    );
    table.upsert(
        "p-db-1",
        container(vec![endpoint("b", "127.0.0.5", &["p-db-1", "db"])]),
    );
    table
}

fn fast() -> DnsOptions {
    DnsOptions {
        forward: ForwardTimeouts {
            attempt: Duration::from_millis(200),
            total: Duration::from_millis(400),
        },
        tcp_idle: Duration::from_secs(2),
        ..DnsOptions::default()
    }
}

/// A listener on 127.0.0.1 at a free port; the TCP port may be taken after UDP got it, so retry.
async fn start(table: DnsTable, options: DnsOptions) -> DnsListener {
    for _ in 0..20 {
        match serve("127.0.0.1:0".parse().unwrap(), table.clone(), options).await {
            Ok(listener) => return listener,
            Err(DnsError::BindTcp { .. }) => continue,
            Err(error) => panic!("{error}"),
        }
    }
    panic!("no free port pair on 127.0.0.1");
}

fn query_message(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut message = Message::new(0x1234, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    message.to_vec().unwrap()
}

/// Asks `server` over UDP from source address `from`.
async fn ask(server: SocketAddr, from: &str, name: &str, qtype: RecordType) -> Message {
    let socket = UdpSocket::bind((ip(from), 0)).await.unwrap();
    socket
        .send_to(&query_message(name, qtype), server)
        .await
        .unwrap();
    let mut buffer = vec![0; 4096];
    let len = timeout(WAIT, socket.recv(&mut buffer))
        .await
        .expect("no dns answer in time")
        .unwrap();
    let answer = Message::from_vec(&buffer[..len]).unwrap();
    assert_eq!(answer.metadata.id, 0x1234);
    assert_eq!(answer.metadata.message_type, MessageType::Response);
    answer
}

/// Asks `server` over TCP from source address `from`.
async fn ask_tcp(server: SocketAddr, from: &str, name: &str, qtype: RecordType) -> Message {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((ip(from), 0).into()).unwrap();
    let mut stream = timeout(WAIT, socket.connect(server))
        .await
        .unwrap()
        .unwrap();
    ask_on_as(&mut stream, name, qtype).await
}

/// The A records' addresses, sorted (the server rotates them).
fn addresses(message: &Message) -> Vec<Ipv4Addr> {
    let mut found: Vec<Ipv4Addr> = message
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(A(ip)) => Some(*ip),
            _ => None,
        })
        .collect();
    found.sort();
    found
}

/// A fake upstream resolver on loopback (UDP and TCP, same port): `nx*` names get NXDOMAIN,
/// others an A record with `answer`; `silent` ones never answer.
struct FakeUpstream {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn fake_reply(query: &[u8], answer: Ipv4Addr) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    let mut reply = Message::response(request.metadata.id, OpCode::Query);
    reply.metadata.recursion_available = true;
    let question = request.queries.first()?.clone();
    if question.name().to_ascii().starts_with("nx") {
        reply.metadata.response_code = ResponseCode::NXDomain;
    } else if question.query_type() == RecordType::A {
        reply.add_answer(Record::from_rdata(
            question.name().clone(),
            30,
            RData::A(A(answer)),
        ));
    }
    reply.add_query(question);
    reply.to_vec().ok()
}

async fn fake_upstream(answer: Ipv4Addr, silent: bool) -> FakeUpstream {
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
            break (udp, tcp);
        }
    };
    let addr = udp.local_addr().unwrap();
    let queries = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&queries);
    let udp_task = tokio::spawn(async move {
        let mut buffer = vec![0; 4096];
        while let Ok((len, peer)) = udp.recv_from(&mut buffer).await {
            count.fetch_add(1, Ordering::SeqCst);
            if silent {
                continue;
            }
            if let Some(reply) = fake_reply(&buffer[..len], answer) {
                let _ = udp.send_to(&reply, peer).await;
            }
        }
    });
    let count = Arc::clone(&queries);
    let tcp_task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let Ok(len) = stream.read_u16().await else {
                continue;
            };
            let mut query = vec![0; usize::from(len)];
            if stream.read_exact(&mut query).await.is_err() || silent {
                continue;
            }
            if let Some(reply) = fake_reply(&query, answer) {
                let mut packet = (reply.len() as u16).to_be_bytes().to_vec();
                packet.extend_from_slice(&reply);
                let _ = stream.write_all(&packet).await;
            }
        }
    });
    FakeUpstream {
        addr,
        queries,
        tasks: vec![udp_task, tcp_task],
    }
}

#[tokio::test]
async fn answers_names_replicas_and_aliases() {
    let server = start(project_table(), fast()).await;
    let at = server.local_addr();

    let web = ask(at, "127.0.0.1", "web.", RecordType::A).await;
    assert_eq!(web.metadata.response_code, ResponseCode::NoError);
    assert!(web.metadata.authoritative);
    assert_eq!(addresses(&web), vec![ip("127.0.0.3"), ip("127.0.0.4")]);
    assert!(web.answers.iter().all(|r| r.ttl == TTL));

    let alias = ask(at, "127.0.0.4", "WWW", RecordType::A).await;
    assert_eq!(addresses(&alias), vec![ip("127.0.0.3")]);
    // the answer carries the name as asked (case included, for 0x20-randomising stubs).
    assert_eq!(alias.answers[0].name.to_ascii(), "WWW.");

    let container_name = ask(at, "127.0.0.3", "p-web-2", RecordType::A).await;
    assert_eq!(addresses(&container_name), vec![ip("127.0.0.4")]);

    // front is on a and b: each address answers with the network it asks through first.
    let db = ask(at, "127.0.0.1", "db", RecordType::A).await;
    assert_eq!(addresses(&db), vec![ip("127.0.0.5")]);
    let via_b = ask(at, "127.0.0.5", "front", RecordType::A).await;
    assert_eq!(addresses(&via_b), vec![ip("127.0.0.2")]);
    let via_network = ask(at, "127.0.0.1", "db.b", RecordType::A).await;
    assert_eq!(addresses(&via_network), vec![ip("127.0.0.5")]);
}

#[tokio::test]
async fn replicas_are_rotated() {
    let server = start(project_table(), fast()).await;
    let mut firsts = std::collections::BTreeSet::new();
    for _ in 0..64 {
        let web = ask(server.local_addr(), "127.0.0.1", "web", RecordType::A).await;
        assert_eq!(web.answers.len(), 2);
        if let RData::A(A(first)) = &web.answers[0].data {
            firsts.insert(*first);
        }
    }
    // both replicas come first at some point (a 2^-63 chance to fail by bad luck).
    assert_eq!(firsts.len(), 2, "{firsts:?}");
}

#[tokio::test]
async fn aaaa_ptr_and_tcp() {
    let server = start(project_table(), fast()).await;
    let at = server.local_addr();

    let aaaa = ask(at, "127.0.0.1", "web", RecordType::AAAA).await;
    assert_eq!(aaaa.metadata.response_code, ResponseCode::NoError);
    assert!(aaaa.answers.is_empty());

    let ptr = ask(at, "127.0.0.1", "3.0.0.127.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(ptr.metadata.response_code, ResponseCode::NoError);
    let targets: Vec<String> = ptr
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::PTR(PTR(name)) => Some(name.to_ascii()),
            _ => None,
        })
        .collect();
    assert_eq!(targets, vec!["p-web-1."]);

    let tcp = ask_tcp(at, "127.0.0.3", "web", RecordType::A).await;
    assert_eq!(addresses(&tcp), vec![ip("127.0.0.3"), ip("127.0.0.4")]);
}

#[tokio::test]
async fn aaaa_and_ip6_ptr_on_networks_with_ipv6() {
    let table = project_table();
    let v6 = |s: &str| -> std::net::Ipv6Addr { s.parse().unwrap() };
    // web-1 and web-2 on a with IPv6 addresses too.
    for (key, addr, addr6, names) in [
        (
            "p-web-1",
            "127.0.0.3",
            "fd00::3",
            &["p-web-1", "web", "www"][..],
        ),
        ("p-web-2", "127.0.0.4", "fd00::4", &["p-web-2", "web"][..]),
    ] {
        table.upsert(
            key,
            container(vec![Endpoint {
                address6: Some(v6(addr6)),
                ..endpoint("a", addr, names)
            }]),
        );
    }
    let server = start(table, fast()).await;
    let at = server.local_addr();
    let aaaa = ask(at, "127.0.0.1", "web", RecordType::AAAA).await;
    assert!(aaaa.metadata.authoritative);
    let mut found: Vec<std::net::Ipv6Addr> = aaaa
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::AAAA(AAAA(ip)) => Some(*ip),
            _ => None,
        })
        .collect();
    found.sort();
    assert_eq!(found, vec![v6("fd00::3"), v6("fd00::4")]);
    // A still answers the IPv4 addresses only; a name without IPv6 has no AAAA.
    let a = ask(at, "127.0.0.1", "web", RecordType::A).await;
    assert_eq!(addresses(&a), vec![ip("127.0.0.3"), ip("127.0.0.4")]);
    let front = ask(at, "127.0.0.3", "front", RecordType::AAAA).await;
    assert_eq!(front.metadata.response_code, ResponseCode::NoError);
    assert!(front.answers.is_empty());

    let arpa = "3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.";
    let ptr = ask(at, "127.0.0.1", arpa, RecordType::PTR).await;
    let targets: Vec<String> = ptr
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::PTR(PTR(name)) => Some(name.to_ascii()),
            _ => None,
        })
        .collect();
    assert_eq!(targets, vec!["p-web-1."]);
}

#[tokio::test]
async fn other_networks_are_invisible_and_unknown_clients_refused() {
    let table = project_table();
    let upstream = fake_upstream(ip("192.0.2.1"), false).await;
    table.set_default_upstreams(vec![upstream.addr]);
    let server = start(table, fast()).await;
    let at = server.local_addr();

    // web is on a only: db (on b) is not answered locally but forwarded, and upstream's
    // NXDOMAIN is what the client gets.
    let db = ask(at, "127.0.0.3", "nx-db", RecordType::A).await;
    assert_eq!(db.metadata.response_code, ResponseCode::NXDomain);
    let before = upstream.queries.load(Ordering::SeqCst);
    let db = ask(at, "127.0.0.3", "db", RecordType::A).await;
    assert!(!addresses(&db).contains(&ip("127.0.0.5")));
    assert!(!db.metadata.authoritative);
    assert_eq!(upstream.queries.load(Ordering::SeqCst), before + 1);
    let db = ask(at, "127.0.0.3", "db.b", RecordType::A).await;
    assert!(!addresses(&db).contains(&ip("127.0.0.5")));
    let ptr = ask(at, "127.0.0.3", "5.0.0.127.in-addr.arpa", RecordType::PTR).await;
    assert!(ptr.answers.is_empty());

    let stranger = ask(at, "127.0.0.99", "web", RecordType::A).await;
    assert_eq!(stranger.metadata.response_code, ResponseCode::Refused);
    assert!(stranger.answers.is_empty());
}

#[tokio::test]
async fn forwards_to_host_or_container_upstreams() {
    let host = fake_upstream(ip("192.0.2.1"), false).await;
    let own = fake_upstream(ip("192.0.2.2"), false).await;
    let table = project_table();
    table.set_default_upstreams(vec![host.addr]);
    table.upsert(
        "p-db-1",
        ContainerDns {
            upstreams: vec![own.addr],
            ..container(vec![endpoint("b", "127.0.0.5", &["p-db-1", "db"])])
        },
    );
    let server = start(table, fast()).await;
    let at = server.local_addr();

    let answer = ask(at, "127.0.0.3", "example.test", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.metadata.recursion_available);
    assert_eq!(addresses(&answer), vec![ip("192.0.2.1")]);
    let answer = ask(at, "127.0.0.5", "example.test", RecordType::A).await;
    assert_eq!(addresses(&answer), vec![ip("192.0.2.2")]);
    // over TCP, forwarded over TCP.
    let tcp = ask_tcp(at, "127.0.0.3", "example.test", RecordType::A).await;
    assert_eq!(addresses(&tcp), vec![ip("192.0.2.1")]);
    assert_eq!(host.queries.load(Ordering::SeqCst), 2);
    assert_eq!(own.queries.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn dead_upstreams_give_servfail_quickly() {
    let silent = fake_upstream(ip("192.0.2.1"), true).await;
    let table = project_table();
    table.set_default_upstreams(vec![silent.addr]);
    let server = start(table.clone(), fast()).await;
    let at = server.local_addr();

    let started = Instant::now();
    let answer = ask(at, "127.0.0.3", "example.test", RecordType::A).await;
    let waited = started.elapsed();
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
    assert!(waited < Duration::from_millis(1500), "{waited:?}");
    assert_eq!(silent.queries.load(Ordering::SeqCst), 1);

    // silent then a good one: the second answers within the total budget.
    let good = fake_upstream(ip("192.0.2.9"), false).await;
    table.set_default_upstreams(vec![silent.addr, good.addr]);
    let answer = ask(at, "127.0.0.3", "example.test", RecordType::A).await;
    assert_eq!(addresses(&answer), vec![ip("192.0.2.9")]);

    // a closed port (the fake's, once dropped) fails on the ICMP error, long before a patient
    // listener's timeout.
    let closed = good.addr;
    drop(good);
    tokio::time::sleep(Duration::from_millis(50)).await;
    table.set_default_upstreams(vec![closed]);
    let patient = DnsOptions {
        forward: ForwardTimeouts {
            attempt: Duration::from_secs(10),
            total: Duration::from_secs(10),
        },
        ..fast()
    };
    let patient = start(table.clone(), patient).await;
    let started = Instant::now();
    let answer = ask(
        patient.local_addr(),
        "127.0.0.3",
        "example.test",
        RecordType::A,
    )
    .await;
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    assert!(started.elapsed() < Duration::from_secs(2));

    // no upstream at all.
    table.set_default_upstreams(Vec::new());
    let answer = ask(at, "127.0.0.3", "example.test", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn updates_are_visible_without_restart() {
    let table = project_table();
    let server = start(table.clone(), fast()).await;
    let at = server.local_addr();
    assert_eq!(
        addresses(&ask(at, "127.0.0.1", "web", RecordType::A).await).len(),
        2
    );
    // p-web-2 restarts with a new address; p-web-1 goes away.
    table.upsert(
        "p-web-2",
        container(vec![endpoint("a", "127.0.0.14", &["p-web-2", "web"])]),
    );
    table.remove("p-web-1");
    let web = ask(at, "127.0.0.1", "web", RecordType::A).await;
    assert_eq!(addresses(&web), vec![ip("127.0.0.14")]);
    // the new address is a client now, the old ones are not.
    let from_new = ask(at, "127.0.0.14", "front", RecordType::A).await;
    assert_eq!(addresses(&from_new), vec![ip("127.0.0.1")]);
    let from_old = ask(at, "127.0.0.3", "front", RecordType::A).await;
    assert_eq!(from_old.metadata.response_code, ResponseCode::Refused);
}

#[tokio::test]
async fn listeners_start_stop_and_name_their_address() {
    let table = project_table();
    let first = start(table.clone(), fast()).await;
    let at = first.local_addr();
    let error = serve(at, table.clone(), fast()).await.unwrap_err();
    assert!(error.to_string().contains(&at.to_string()), "{error}");
    assert!(matches!(error, DnsError::BindUdp { .. }));

    first.shutdown().await.unwrap();
    // the address is free again at once.
    let again = serve(at, table.clone(), fast()).await.unwrap();
    assert_eq!(
        addresses(&ask(at, "127.0.0.1", "db", RecordType::A).await),
        vec![ip("127.0.0.5")]
    );
    drop(again);

    // b's socket is closed: a query there gets no answer (connection refused).
    let b = again_addr_closed(table.clone()).await;
    let socket = UdpSocket::bind("127.0.0.5:0").await.unwrap();
    socket.connect(b).await.unwrap();
    socket
        .send(&query_message("front", RecordType::A))
        .await
        .unwrap();
    let mut buffer = [0; 512];
    let outcome = timeout(Duration::from_millis(300), socket.recv(&mut buffer)).await;
    assert!(!matches!(outcome, Ok(Ok(_))), "{outcome:?}");
}

/// The address of a listener that was started and shut down.
async fn again_addr_closed(table: DnsTable) -> SocketAddr {
    let listener = start(table, fast()).await;
    let at = listener.local_addr();
    listener.shutdown().await.unwrap();
    at
}

/// Sockets for a per-container listener, bound here (in the test's namespace) at a free port.
fn container_sockets() -> (std::net::UdpSocket, std::net::TcpListener) {
    for _ in 0..20 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            udp.set_nonblocking(true).unwrap();
            tcp.set_nonblocking(true).unwrap();
            return (udp, tcp);
        }
    }
    panic!("no free port for both udp and tcp");
}

/// A container's own listener answers as that container whatever the query's source address
/// (inside its namespace every query comes from loopback), and runs its refresh first; a
/// listener for a container the table does not know refuses.
#[tokio::test]
async fn a_containers_own_listener_answers_as_that_container() {
    let table = project_table();
    let refreshed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = Arc::clone(&refreshed);
    let refresh: Refresh = Arc::new(move || {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    let sockets = container_sockets();
    let db = serve_container(sockets, table.clone(), fast(), "p-db-1", Some(refresh)).unwrap();
    let at = SocketAddr::from(([127, 0, 0, 1], db.local_addr().port()));
    // db is on network b only: `web` (network a) is not its to see, `front` is (on b).
    assert_eq!(
        addresses(&ask(at, "127.0.0.1", "front", RecordType::A).await),
        vec![ip("127.0.0.2")]
    );
    assert_eq!(
        addresses(&ask_tcp(at, "127.0.0.1", "db", RecordType::A).await),
        vec![ip("127.0.0.5")]
    );
    assert!(refreshed.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    drop(db);

    let sockets = container_sockets();
    let nobody = serve_container(sockets, table, fast(), "p-gone-1", None).unwrap();
    let at = SocketAddr::from(([127, 0, 0, 1], nobody.local_addr().port()));
    let answer = ask(at, "127.0.0.3", "web", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::Refused);
}

#[tokio::test]
async fn local_answer_latency() {
    let server = start(project_table(), fast()).await;
    let at = server.local_addr();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(at).await.unwrap();
    let query = query_message("web", RecordType::A);
    let mut buffer = [0; 512];
    let mut samples = Vec::new();
    for _ in 0..300 {
        let started = Instant::now();
        socket.send(&query).await.unwrap();
        timeout(WAIT, socket.recv(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        samples.push(started.elapsed());
    }
    samples.sort();
    let p50 = samples[samples.len() / 2];
    let p99 = samples[samples.len() * 99 / 100];
    println!("local answer latency over udp: p50 {p50:?}, p99 {p99:?}");
    assert!(p50 < Duration::from_millis(20), "p50 {p50:?}");
}

/// A TCP connection to `server` from source address `from`.
async fn connect(server: SocketAddr, from: &str) -> tokio::net::TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((ip(from), 0).into()).unwrap();
    timeout(WAIT, socket.connect(server))
        .await
        .expect("connect in time")
        .unwrap()
}

/// Asks on an open TCP connection.
async fn ask_on(stream: &mut tokio::net::TcpStream, name: &str) -> Message {
    ask_on_as(stream, name, RecordType::A).await
}

/// Asks for `name`'s `qtype` records on an open TCP connection.
async fn ask_on_as(stream: &mut tokio::net::TcpStream, name: &str, qtype: RecordType) -> Message {
    let query = query_message(name, qtype);
    let mut packet = (query.len() as u16).to_be_bytes().to_vec();
    packet.extend_from_slice(&query);
    stream.write_all(&packet).await.unwrap();
    let len = timeout(WAIT, stream.read_u16()).await.unwrap().unwrap();
    let mut answer = vec![0; usize::from(len)];
    timeout(WAIT, stream.read_exact(&mut answer))
        .await
        .unwrap()
        .unwrap();
    Message::from_vec(&answer).unwrap()
}

/// Whether the server closed `stream` (end of file or reset) rather than keeping it open; a
/// connection still open after [`WAIT`] counts as not closed.
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        timeout(WAIT, stream.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// Waits until the listener's (open connections, buffered bytes) satisfy `check`; a bound,
/// not a timing.
async fn usage_until(server: &DnsListener, check: impl Fn((usize, usize)) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check(server.tcp_usage()) {
        assert!(
            Instant::now() < deadline,
            "tcp usage stayed {:?}",
            server.tcp_usage()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Issue 19: a container opening TCP connections without end used up the supervisor's
/// descriptors. Connections past the per-client or the listener's limit are closed at once;
/// those within keep being answered, and so are UDP and other clients.
#[tokio::test]
async fn tcp_connections_are_limited_per_client_and_in_total() {
    let options = DnsOptions {
        tcp_per_client: 4,
        tcp_total: 6,
        tcp_idle: Duration::from_secs(30),
        ..fast()
    };
    let server = start(project_table(), options).await;
    let at = server.local_addr();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(at, "127.0.0.3").await);
    }
    // The kernel hands connections over in order: the first four are the ones kept.
    for n in 0..3 {
        let mut extra = connect(at, "127.0.0.3").await;
        assert!(
            closed_by_server(&mut extra).await,
            "connection {} of one client was kept",
            5 + n
        );
    }
    // The listener's total: 127.0.0.4 gets the two places left, not a third.
    for _ in 0..2 {
        held.push(connect(at, "127.0.0.4").await);
    }
    let mut extra = connect(at, "127.0.0.4").await;
    assert!(
        closed_by_server(&mut extra).await,
        "the listener's total was passed"
    );
    assert_eq!(server.tcp_refused(), 4);

    // Those kept are answered, and UDP from the same client too.
    let answer = ask_on(&mut held[0], "web").await;
    assert_eq!(addresses(&answer), vec![ip("127.0.0.3"), ip("127.0.0.4")]);
    let answer = ask_on(&mut held[5], "front").await;
    assert_eq!(addresses(&answer), vec![ip("127.0.0.1")]);
    let udp = ask(at, "127.0.0.3", "web", RecordType::A).await;
    assert_eq!(addresses(&udp).len(), 2);
    // A place given back is taken by another client.
    held.truncate(4);
    usage_until(&server, |(open, _)| open == 4).await;
    let tcp = ask_tcp(at, "127.0.0.5", "front", RecordType::A).await;
    assert_eq!(addresses(&tcp), vec![ip("127.0.0.2")]);
}

/// Issue 19: connections announcing 65,535 bytes and sending nothing more grew the supervisor
/// by the announced size each. Only bytes that arrived are held, and all connections together
/// hold at most `tcp_buffered`: the one that would pass it is closed.
#[tokio::test]
async fn tcp_buffers_only_what_arrives_within_a_bound() {
    let options = DnsOptions {
        tcp_buffered: 1000,
        tcp_idle: Duration::from_secs(30),
        ..fast()
    };
    let server = start(project_table(), options).await;
    let at = server.local_addr();
    let mut streams = Vec::new();
    for n in 0..8 {
        let mut stream = connect(at, &format!("127.0.0.{}", 10 + n)).await;
        let mut packet = 65_535u16.to_be_bytes().to_vec();
        packet.extend_from_slice(&[0u8; 100]);
        stream.write_all(&packet).await.unwrap();
        streams.push(stream);
    }
    usage_until(&server, |(open, buffered)| open == 8 && buffered == 800).await;
    // 300 more bytes would pass the bound: that connection is closed, the others stay.
    let mut greedy = connect(at, "127.0.0.30").await;
    let mut packet = 65_535u16.to_be_bytes().to_vec();
    packet.extend_from_slice(&[0u8; 300]);
    greedy.write_all(&packet).await.unwrap();
    assert!(
        closed_by_server(&mut greedy).await,
        "the buffer bound was passed"
    );
    usage_until(&server, |(open, buffered)| open == 8 && buffered == 800).await;
    drop(streams);
    usage_until(&server, |usage| usage == (0, 0)).await;
}

/// Forwarded queries hold an upstream socket each: past the limit the answer is SERVFAIL at
/// once instead of one more socket and task.
#[tokio::test]
async fn forwarded_queries_are_bounded() {
    let silent = fake_upstream(ip("192.0.2.1"), true).await;
    let table = project_table();
    table.set_default_upstreams(vec![silent.addr]);
    let options = DnsOptions {
        forward: ForwardTimeouts {
            attempt: Duration::from_secs(20),
            total: Duration::from_secs(20),
        },
        forwarding: 1,
        ..fast()
    };
    let server = start(table, options).await;
    let at = server.local_addr();
    // The first holds the only place while its upstream stays silent.
    let socket = UdpSocket::bind((ip("127.0.0.3"), 0)).await.unwrap();
    socket
        .send_to(&query_message("example.test", RecordType::A), at)
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while silent.queries.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the first query was not forwarded"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let answer = ask(at, "127.0.0.4", "other.test", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    // Local names are still answered.
    let web = ask(at, "127.0.0.4", "web", RecordType::A).await;
    assert_eq!(addresses(&web).len(), 2);
    assert_eq!(silent.queries.load(Ordering::SeqCst), 1);
}

#[test]
fn the_descriptor_budget_is_a_share_of_the_limit() {
    assert_eq!(limits::share(Some(1024)), 256);
    assert_eq!(limits::share(Some(100)), limits::MIN);
    assert_eq!(limits::share(Some(1 << 40)), limits::MAX);
    assert_eq!(limits::share(None), 256);
}
