//! The embedded DNS server: a query packet from a container in, the wire answer out. The table
//! has two containers on two networks; the client is one of them (or a stranger, chosen by the
//! first byte). No upstreams: forwarded names fail at once without traffic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcompose::network::dns::{answer_for_fuzzing, ContainerDns, DnsTable, Endpoint};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::OnceLock;

fn table() -> &'static DnsTable {
    static TABLE: OnceLock<DnsTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let table = DnsTable::new();
        let endpoint = |network: &str, address: [u8; 4], names: &[&str]| Endpoint {
            network: network.into(),
            address: Ipv4Addr::from(address),
            // AAAA and ip6.arpa answers too.
            address6: Some(Ipv4Addr::from(address).to_ipv6_mapped()),
            names: names.iter().map(|n| n.to_string()).collect(),
        };
        table.upsert(
            "p-web-1",
            ContainerDns {
                endpoints: vec![endpoint("a", [10, 1, 0, 2], &["web", "p-web-1", "www"])],
                ..ContainerDns::default()
            },
        );
        table.upsert(
            "p-db-1",
            ContainerDns {
                endpoints: vec![
                    endpoint("a", [10, 1, 0, 3], &["db", "p-db-1"]),
                    endpoint("b", [10, 2, 0, 3], &["db", "p-db-1", "database"]),
                ],
                ..ContainerDns::default()
            },
        );
        table
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&who, query)) = data.split_first() else {
        return;
    };
    let client = match who % 3 {
        0 => [10, 1, 0, 2],
        1 => [10, 2, 0, 3],
        _ => [10, 9, 9, 9],
    };
    let src = SocketAddr::from((Ipv4Addr::from(client), 40000));
    let _ = runtime().block_on(answer_for_fuzzing(table(), query, src));
});
