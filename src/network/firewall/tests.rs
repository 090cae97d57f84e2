use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsFd;

use super::*;
use crate::network::host_firewall;
use crate::network::names::MacAddr;
use crate::network::netlink::testns::{peer_ip, require_root, Echo, NetNs};
use crate::network::netlink::{self, Attachment, BridgeConfig, Netlink};

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("test subnet")
}

fn port(protocol: Protocol, host: &str, ip: [u8; 4], container: &str) -> PublishedPort {
    PublishedPort {
        protocol,
        host_ip: None,
        host_ports: host.parse().unwrap(),
        container_ip: Ipv4Addr::from(ip),
        container_ip6: None,
        container_ports: container.parse().unwrap(),
    }
}

#[test]
fn project_names_make_table_names() {
    assert_eq!(table_name("demo").unwrap(), "rcompose-demo");
    assert_eq!(table_name("my_app-2").unwrap(), "rcompose-my_app-2");
    assert_eq!(table_name("0day").unwrap(), "rcompose-0day");
    for bad in ["", "Demo", "a b", "a;b", "-x", "_x", "a}", "x\"y"] {
        let err = table_name(bad).unwrap_err();
        assert!(matches!(err, FirewallError::ProjectName { .. }), "{bad}");
    }
}

#[test]
fn port_ranges_parse_and_print() {
    let r: PortRange = "8000-8010".parse().unwrap();
    assert_eq!((r.start(), r.end(), r.len()), (8000, 8010, 11));
    assert_eq!(r.to_string(), "8000-8010");
    assert_eq!("80".parse::<PortRange>().unwrap().to_string(), "80");
    for bad in ["", "0", "80-79", "1-65536", "a", "80-", "-80", "1-2-3"] {
        let err = bad.parse::<PortRange>().unwrap_err();
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
    assert!(PortRange::new(0, 1).is_err());
}

#[test]
fn rendered_table_has_isolation_nat_and_ports() {
    let rules = ProjectRules {
        networks: vec![
            NetworkRules {
                bridge: "rc-000000000001".into(),
                subnet: net("10.1.0.0/24"),
                subnet6: None,
                internal: false,
                no_masquerade: false,
            },
            NetworkRules {
                bridge: "rc-000000000002".into(),
                subnet: net("10.2.0.0/24"),
                subnet6: None,
                internal: true,
                no_masquerade: false,
            },
        ],
        ports: vec![
            port(Protocol::Tcp, "8080", [10, 1, 0, 2], "80"),
            PublishedPort {
                host_ip: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))),
                ..port(Protocol::Udp, "5000-5001", [10, 1, 0, 2], "6000-6001")
            },
            port(Protocol::Tcp, "9000-9002", [10, 1, 0, 3], "9000-9002"),
        ],
    };
    let s = render("demo", &rules).unwrap();
    assert!(s.starts_with(
        "add table ip rcompose-demo\ndelete table ip rcompose-demo\ntable ip rcompose-demo {\n"
    ));
    for line in [
        "iifname \"rc-000000000001\" oifname != \"rc-000000000001\" oifname \"rc-*\" ct status ! dnat drop",
        "oifname \"rc-000000000001\" iifname != \"rc-000000000001\" ct status dnat accept",
        "iifname \"rc-000000000002\" oifname != \"rc-000000000002\" drop",
        "oifname \"rc-000000000002\" iifname != \"rc-000000000002\" drop",
        "ip saddr 10.1.0.0/24 oifname != \"rc-000000000001\" masquerade",
        "oifname \"rc-000000000001\" ip saddr 127.0.0.0/8 masquerade",
        "oifname \"rc-000000000001\" ct status dnat ip saddr 10.1.0.0/24 masquerade",
        "fib daddr type local tcp dport 8080 dnat to 10.1.0.2:80 comment \"rcompose publish tcp 0.0.0.0 8080\"",
        "ip daddr 127.0.0.1 udp dport 5000-5001 dnat to 10.1.0.2 : udp dport map { 5000 : 6000, 5001 : 6001 } comment \"rcompose publish udp 127.0.0.1 5000-5001\"",
        "fib daddr type local tcp dport 9000-9002 dnat to 10.1.0.3 comment",
    ] {
        assert!(s.contains(line), "missing {line}\nin:\n{s}");
    }
    // An internal network is never masqueraded.
    assert!(!s.contains("ip saddr 10.2.0.0/24 oifname"), "{s}");
    // Nor one with `enable_ip_masquerade: false`, whose published ports still work.
    let mut quiet = rules.clone();
    quiet.networks[0].no_masquerade = true;
    let q = render("demo", &quiet).unwrap();
    assert!(!q.contains("ip saddr 10.1.0.0/24 oifname"), "{q}");
    assert!(q.contains("dnat to 10.1.0.2:80 "), "{q}");
    // Both NAT hooks carry the port rules.
    assert_eq!(s.matches("dnat to 10.1.0.2:80 ").count(), 2, "{s}");
    assert!(s.trim_end().ends_with('}'));
    // A first set-up creates the same table, exclusively and without deleting anything.
    let created = render_create("demo", &rules).unwrap();
    let table = s
        .strip_prefix("add table ip rcompose-demo\ndelete table ip rcompose-demo\n")
        .unwrap();
    assert_eq!(
        created,
        format!("create table ip rcompose-demo\n{table}"),
        "{created}"
    );
}

#[test]
fn ipv6_rules_go_in_an_ip6_table_of_their_own() {
    let v4only = ProjectRules {
        networks: vec![NetworkRules {
            bridge: "rc-000000000001".into(),
            subnet: net("10.1.0.0/24"),
            subnet6: None,
            internal: false,
            no_masquerade: false,
        }],
        ports: vec![port(Protocol::Tcp, "8080", [10, 1, 0, 2], "80")],
    };
    assert!(!needs_ip6(&v4only));
    assert!(!render("demo", &v4only).unwrap().contains("ip6"));

    let ip6 = |s: &str| -> Option<Ipv6Addr> { Some(s.parse().unwrap()) };
    let mut rules = v4only.clone();
    rules.networks[0].subnet6 = Some("fd00:1::/64".parse().unwrap());
    rules.networks.push(NetworkRules {
        bridge: "rc-000000000002".into(),
        subnet: net("10.2.0.0/24"),
        subnet6: Some("fd00:2::/64".parse().unwrap()),
        internal: true,
        no_masquerade: false,
    });
    rules.ports = vec![
        PublishedPort {
            container_ip6: ip6("fd00:1::2"),
            ..port(Protocol::Tcp, "8080", [10, 1, 0, 2], "80")
        },
        // On one IPv6 address only: not in the ip table.
        PublishedPort {
            host_ip: Some("fd00:99::1".parse().unwrap()),
            container_ip6: ip6("fd00:1::2"),
            ..port(Protocol::Udp, "5353", [10, 1, 0, 2], "53")
        },
        // Loopback is the proxy's: no rule at all.
        PublishedPort {
            host_ip: Some("::1".parse().unwrap()),
            container_ip6: ip6("fd00:1::2"),
            ..port(Protocol::Tcp, "9090", [10, 1, 0, 2], "90")
        },
    ];
    assert!(needs_ip6(&rules));
    let s = render("demo", &rules).unwrap();
    let (v4, v6) = s.split_once("add table ip6 rcompose-demo\ndelete table ip6 rcompose-demo\ntable ip6 rcompose-demo {\n").expect("an ip6 table");
    assert!(v4.contains("dnat to 10.1.0.2:80 "), "{v4}");
    assert!(!v4.contains("5353") && !v4.contains("9090"), "{v4}");
    for line in [
        "iifname \"rc-000000000001\" oifname != \"rc-000000000001\" oifname \"rc-*\" ct status ! dnat drop",
        "iifname \"rc-000000000002\" oifname != \"rc-000000000002\" drop",
        "ip6 saddr fd00:1::/64 oifname != \"rc-000000000001\" masquerade",
        "oifname \"rc-000000000001\" ct status dnat ip6 saddr fd00:1::/64 masquerade",
        "fib daddr type local ip6 daddr != ::1 tcp dport 8080 dnat to [fd00:1::2]:80 comment \"rcompose publish tcp :: 8080\"",
        "ip6 daddr fd00:99::1 udp dport 5353 dnat to [fd00:1::2]:53 comment \"rcompose publish udp fd00:99::1 5353\"",
    ] {
        assert!(v6.contains(line), "missing {line}\nin:\n{v6}");
    }
    assert!(
        !v6.contains("ip6 saddr fd00:2::/64 oifname !="),
        "internal: no masquerade\n{v6}"
    );
    assert!(!v6.contains("9090"), "{v6}");
    assert_eq!(
        parse_publish_comment("rcompose publish udp fd00:99::1 5353"),
        Some((
            Protocol::Udp,
            Some("fd00:99::1".parse().unwrap()),
            PortRange::single(5353).unwrap()
        ))
    );
    let created = render_create("demo", &rules).unwrap();
    assert!(
        created.contains("create table ip6 rcompose-demo\ntable ip6 rcompose-demo {"),
        "{created}"
    );

    // Overlaps: every address covers both families; an unspecified address its own family.
    let v = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    assert!(addrs_overlap(None, v("::1")));
    assert!(addrs_overlap(v("::"), v("::1")));
    assert!(!addrs_overlap(v("0.0.0.0"), v("::1")));
    assert!(!addrs_overlap(v("127.0.0.1"), v("::1")));
    assert!(addrs_overlap(v("::1"), v("::1")));
}

#[test]
fn mismatched_ranges_are_refused() {
    let rules = ProjectRules {
        networks: vec![],
        ports: vec![port(Protocol::Tcp, "8000-8002", [10, 1, 0, 2], "80-81")],
    };
    let err = render("demo", &rules).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot publish host ports 8000-8002 on container ports 80-81: the ranges must have the same length, or the container side be one port"
    );
    // Many host ports onto one container port is fine.
    let one = port(Protocol::Tcp, "8000-8002", [10, 1, 0, 2], "80");
    assert!(one.validate().is_ok());
}

#[test]
fn bridge_names_cannot_inject_rules() {
    for bad in ["", "rc-\"; flush ruleset", "rc-0123456789abcdef", "br 0"] {
        let rules = ProjectRules {
            networks: vec![NetworkRules {
                bridge: bad.into(),
                subnet: net("10.1.0.0/24"),
                subnet6: None,
                internal: false,
                no_masquerade: false,
            }],
            ports: vec![],
        };
        let err = render("demo", &rules).unwrap_err();
        assert!(
            matches!(err, FirewallError::BridgeName { .. }),
            "{bad}: {err}"
        );
    }
}

#[test]
fn publish_comments_round_trip() {
    let mut s = String::new();
    dnat_rule(&mut s, &port(Protocol::Udp, "53", [10, 0, 0, 2], "53"));
    let comment = s.split('"').nth(1).unwrap();
    assert_eq!(
        parse_publish_comment(comment),
        Some((Protocol::Udp, None, PortRange::single(53).unwrap()))
    );
    assert_eq!(
        parse_publish_comment("rcompose publish tcp 127.0.0.1 80-90"),
        Some((
            Protocol::Tcp,
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            PortRange::new(80, 90).unwrap()
        ))
    );
    assert_eq!(parse_publish_comment("something else"), None);
    assert_eq!(
        parse_publish_comment("rcompose publish sctp 0.0.0.0 1"),
        None
    );
}

#[test]
fn duplicates_in_one_project_are_refused() {
    let ports = [
        port(Protocol::Tcp, "8000-8010", [10, 1, 0, 2], "80"),
        PublishedPort {
            host_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ..port(Protocol::Tcp, "8005", [10, 1, 0, 3], "80")
        },
    ];
    let err = check_ports_free("demo", &ports).unwrap_err();
    assert_eq!(
        err.to_string(),
        "host port 8005/tcp on 127.0.0.1 is published twice"
    );
    // Same port, other protocol: no conflict (the check goes on to nft and sockets).
    assert!(!matches!(
        check_ports_free(
            "demo",
            &[
                port(Protocol::Tcp, "8005", [10, 1, 0, 2], "80"),
                port(Protocol::Udp, "8005", [10, 1, 0, 2], "80"),
            ]
        ),
        Err(FirewallError::Duplicate { .. })
    ));
}

#[test]
fn busy_ports_are_named() {
    if !require_root("busy_ports_are_named") {
        return;
    }
    let host = NetNs::new();
    host.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        nl.set_up("lo").await.unwrap();
        let _tcp = TcpListener::bind("127.0.0.1:8080").unwrap();
        let _udp = UdpSocket::bind("0.0.0.0:5353").unwrap();
        let err = check_ports_free(
            "demo",
            &[port(Protocol::Tcp, "8079-8081", [10, 0, 0, 2], "80")],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "host port 8080/tcp on 0.0.0.0 is already in use"
        );
        let err = check_ports_free("demo", &[port(Protocol::Udp, "5353", [10, 0, 0, 2], "53")])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "host port 5353/udp on 0.0.0.0 is already in use"
        );
        let elsewhere = PublishedPort {
            host_ip: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9))),
            ..port(Protocol::Tcp, "80", [10, 0, 0, 2], "80")
        };
        let err = check_ports_free("demo", &[elsewhere]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "host_ip 203.0.113.9 of port 80/tcp is not an address of this host"
        );
        check_ports_free(
            "demo",
            &[
                port(Protocol::Tcp, "8081", [10, 0, 0, 2], "80"),
                port(Protocol::Udp, "8080", [10, 0, 0, 2], "80"),
            ],
        )
        .unwrap();

        // A port another project publishes has no socket: the check reads its rules.
        let other = ProjectRules {
            networks: vec![],
            ports: vec![port(Protocol::Tcp, "9000-9005", [10, 0, 0, 2], "9000-9005")],
        };
        apply("other", &other).unwrap();
        let err = check_ports_free("demo", &[port(Protocol::Tcp, "9003", [10, 0, 0, 3], "80")])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "host port 9003/tcp is already published by project other"
        );
        // Its own ports do not count against a project (an `up` that changes nothing).
        check_ports_free("other", &other.ports).unwrap();
        assert!(remove("other").unwrap());
    });
}

#[test]
fn projects_are_listed_replaced_and_removed() {
    if !require_root("projects_are_listed_replaced_and_removed") {
        return;
    }
    let host = NetNs::new();
    host.run(|| {
        let rules = |bridge: &str, subnet: &str| ProjectRules {
            networks: vec![NetworkRules {
                bridge: bridge.into(),
                subnet: net(subnet),
                subnet6: None,
                internal: false,
                no_masquerade: false,
            }],
            ports: vec![port(Protocol::Tcp, "8080", [10, 1, 0, 2], "80")],
        };
        assert!(projects().unwrap().is_empty());
        apply("alpha", &rules("rc-000000000001", "10.1.0.0/24")).unwrap();
        apply("beta", &rules("rc-000000000002", "10.2.0.0/24")).unwrap();
        // Replacing is whole and idempotent.
        apply("alpha", &rules("rc-000000000003", "10.3.0.0/24")).unwrap();
        apply("alpha", &rules("rc-000000000003", "10.3.0.0/24")).unwrap();
        assert_eq!(projects().unwrap(), vec!["alpha", "beta"]);
        let alpha = nft(&["list", "table", "ip", "rcompose-alpha"], None, "list").unwrap();
        assert!(alpha.contains("rc-000000000003"), "{alpha}");
        assert!(!alpha.contains("rc-000000000001"), "{alpha}");
        assert_eq!(alpha.matches("masquerade").count(), 3, "{alpha}");
        assert_eq!(
            publications("alpha").unwrap(),
            vec![Publication {
                project: "alpha".into(),
                protocol: Protocol::Tcp,
                host_ip: None,
                host_ports: PortRange::single(8080).unwrap(),
            }]
        );
        // beta publishes the same port (in these rules): only alpha's is another project's.
        let others = publications_of_others("beta").unwrap();
        assert_eq!(others.len(), 1, "{others:?}");
        assert_eq!(others[0].project, "alpha");
        assert_eq!(others[0].host_ports, PortRange::single(8080).unwrap());

        // A table of someone else is never touched.
        nft(&["add", "table", "ip", "someone-else"], None, "add").unwrap();
        assert!(remove("alpha").unwrap());
        assert!(!remove("alpha").unwrap());
        apply("beta", &ProjectRules::default()).unwrap();
        assert!(projects().unwrap().is_empty());
        let left = nft(&["list", "ruleset"], None, "list").unwrap();
        assert_eq!(left.trim(), "table ip someone-else {\n}", "{left}");
    });
}

/// What else manages the fake host's firewall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostFirewall {
    /// Nothing: every base chain accepts.
    Open,
    /// As Docker leaves it with this iptables backend: FORWARD's policy DROP, and DOCKER-USER
    /// jumped to first from FORWARD.
    Docker(host_firewall::Backend),
    /// Only FORWARD's policy DROP (a hardened host without Docker).
    ForwardDrop(host_firewall::Backend),
}

impl HostFirewall {
    /// Sets the host's chains up, in the current namespace.
    fn install(self) {
        let (backend, docker) = match self {
            HostFirewall::Open => return,
            HostFirewall::Docker(b) => (b, true),
            HostFirewall::ForwardDrop(b) => (b, false),
        };
        let mut steps = vec![vec!["-P", "FORWARD", "DROP"]];
        if docker {
            steps.push(vec!["-N", "DOCKER-USER"]);
            steps.push(vec!["-A", "DOCKER-USER", "-j", "RETURN"]);
            steps.push(vec!["-I", "FORWARD", "-j", "DOCKER-USER"]);
        }
        for step in steps {
            let out = std::process::Command::new(backend.binary())
                .args(&step)
                .output()
                .unwrap();
            assert!(out.status.success(), "{backend} {step:?}: {out:?}");
        }
    }

    /// The host's whole firewall as text, without counters: nft's ruleset and the legacy tables.
    fn snapshot(self, host: &NetNs) -> String {
        let mut text = host.cmd(&["nft", "-s", "list", "ruleset"]);
        if self == HostFirewall::Docker(host_firewall::Backend::Legacy)
            || self == HostFirewall::ForwardDrop(host_firewall::Backend::Legacy)
        {
            text.push_str(&host.cmd(&["iptables-legacy", "-t", "filter", "-S"]));
        }
        text
    }
}

/// The fake host with its networks and containers, all inside namespaces of this test.
struct Topology {
    host_firewall: HostFirewall,
    /// The host's firewall before rcompose's rules.
    before: String,
    host: NetNs,
    a1: NetNs,
    a2: NetNs,
    b1: NetNs,
    i1: NetNs,
    outside: NetNs,
}

const NET_A: &str = "rc-00000000000a";
const NET_B: &str = "rc-00000000000b";
const NET_I: &str = "rc-00000000000c";
/// A host uplink: any interface that is not an rcompose bridge.
const UPLINK: &str = "uplink0";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test address")
}

/// Whether bridged traffic goes through the IP hooks (br_netfilter, which Docker loads): the
/// rules must work both ways. Returns false when br_netfilter is not there to turn on.
fn set_bridge_netfilter(on: bool) -> bool {
    let value = if on { "1" } else { "0" };
    match netlink::set_sysctl("net.bridge.bridge-nf-call-iptables", value) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("br_netfilter not available: {e}");
            false
        }
    }
}

impl Topology {
    fn build_on(bridge_netfilter: bool, host_firewall: HostFirewall) -> Topology {
        let host = NetNs::new();
        host.run(|| host_firewall.install());
        let t = Topology {
            host_firewall,
            before: host_firewall.snapshot(&host),
            host,
            a1: NetNs::new(),
            a2: NetNs::new(),
            b1: NetNs::new(),
            i1: NetNs::new(),
            outside: NetNs::new(),
        };
        t.host.block_on(|| async {
            let nl = Netlink::connect().unwrap();
            nl.set_up("lo").await.unwrap();
            set_bridge_netfilter(bridge_netfilter);
            for (name, gw, subnet) in [
                (NET_A, "10.90.1.1", "10.90.1.0/24"),
                (NET_B, "10.90.2.1", "10.90.2.0/24"),
                (NET_I, "10.90.3.1", "10.90.3.0/24"),
                (UPLINK, "198.51.100.1", "198.51.100.0/24"),
            ] {
                nl.ensure_bridge(&BridgeConfig {
                    name: name.into(),
                    gateway: ip(gw),
                    subnet: net(subnet),
                    mtu: None,
                    ipv6: None,
                })
                .await
                .unwrap();
            }
            for (ns, bridge, host_name, addr, subnet, gw) in [
                (
                    &t.a1,
                    NET_A,
                    "rv0000000000a01",
                    "10.90.1.2",
                    "10.90.1.0/24",
                    Some("10.90.1.1"),
                ),
                (
                    &t.a2,
                    NET_A,
                    "rv0000000000a02",
                    "10.90.1.3",
                    "10.90.1.0/24",
                    Some("10.90.1.1"),
                ),
                (
                    &t.b1,
                    NET_B,
                    "rv0000000000b01",
                    "10.90.2.2",
                    "10.90.2.0/24",
                    Some("10.90.2.1"),
                ),
                (
                    &t.i1,
                    NET_I,
                    "rv0000000000c01",
                    "10.90.3.2",
                    "10.90.3.0/24",
                    Some("10.90.3.1"),
                ),
                // The outside host has no route back to the containers: answers to it must be
                // masqueraded.
                (
                    &t.outside,
                    UPLINK,
                    "rv0000000000o01",
                    "198.51.100.2",
                    "198.51.100.0/24",
                    None,
                ),
            ] {
                nl.attach(&Attachment {
                    netns: ns.fd().as_fd(),
                    bridge,
                    host_name,
                    container_name: "eth0",
                    address: ip(addr),
                    subnet: net(subnet),
                    mac: MacAddr::for_ipv4(ip(addr)),
                    mtu: None,
                    default_gateway: gw.map(ip),
                    isolated: false,
                    address6: None,
                    default_gateway6: None,
                })
                .await
                .unwrap();
            }
            let changes = netlink::prepare_sysctls(&[NET_A, NET_B, NET_I], false).unwrap();
            assert!(
                changes.iter().any(|c| c.key.ends_with("route_localnet")),
                "{changes:?}"
            );
            let rules = ProjectRules {
                networks: vec![
                    NetworkRules {
                        bridge: NET_A.into(),
                        subnet: net("10.90.1.0/24"),
                        subnet6: None,
                        internal: false,
                        no_masquerade: false,
                    },
                    NetworkRules {
                        bridge: NET_B.into(),
                        subnet: net("10.90.2.0/24"),
                        subnet6: None,
                        internal: false,
                        no_masquerade: false,
                    },
                    NetworkRules {
                        bridge: NET_I.into(),
                        subnet: net("10.90.3.0/24"),
                        subnet6: None,
                        internal: true,
                        no_masquerade: false,
                    },
                ],
                ports: vec![
                    port(Protocol::Tcp, "8080", [10, 90, 1, 2], "80"),
                    port(Protocol::Udp, "5353", [10, 90, 1, 2], "53"),
                    port(Protocol::Tcp, "9000-9001", [10, 90, 1, 2], "7000-7001"),
                ],
            };
            check_ports_free("fwtest", &rules.ports).unwrap();
            apply("fwtest", &rules).unwrap();
        });
        t
    }

    /// Undoes everything through the API and checks that the host is back to empty.
    fn teardown(&self) {
        self.host.block_on(|| async {
            assert!(remove("fwtest").unwrap());
            let nl = Netlink::connect().unwrap();
            for veth in nl.links_with_prefix("rv").await.unwrap() {
                assert!(nl.detach(&veth).await.unwrap());
            }
            for bridge in [NET_A, NET_B, NET_I, UPLINK] {
                assert!(nl.delete_link(bridge).await.unwrap());
            }
        });
        let links = self.host.cmd(&["ip", "-o", "link"]);
        assert_eq!(links.lines().count(), 1, "only lo is left: {links}");
        assert!(self.host.cmd(&["ip", "route"]).trim().is_empty());
        // The host's own rules exactly as they were; nothing else.
        assert_eq!(self.host_firewall.snapshot(&self.host), self.before);
        if self.host_firewall == HostFirewall::Open {
            assert!(self.host.cmd(&["nft", "list", "ruleset"]).trim().is_empty());
        }
    }
}

fn sock(addr: &str, port: u16) -> SocketAddr {
    SocketAddr::from((ip(addr), port))
}

#[test]
fn networks_are_masqueraded_and_isolated() {
    if require_root("networks_are_masqueraded_and_isolated") {
        masquerade_and_isolation(true);
        masquerade_and_isolation(false);
    }
}

fn masquerade_and_isolation(bridge_netfilter: bool) {
    masquerade_and_isolation_on(bridge_netfilter, HostFirewall::Open);
}

fn masquerade_and_isolation_on(bridge_netfilter: bool, host_firewall: HostFirewall) {
    let t = Topology::build_on(bridge_netfilter, host_firewall);
    {
        let _a1 = Echo::tcp(&t.a1, sock("0.0.0.0", 80));
        let _b1 = Echo::tcp(&t.b1, sock("0.0.0.0", 80));
        let _out = Echo::tcp(&t.outside, sock("0.0.0.0", 9999));

        // Within one bridge.
        let answer = t.a2.tcp_query(sock("10.90.1.2", 80)).unwrap();
        assert_eq!(peer_ip(&answer), "10.90.1.3", "{answer}");
        // Out through the uplink, masqueraded.
        let answer = t.a1.tcp_query(sock("198.51.100.2", 9999)).unwrap();
        assert_eq!(peer_ip(&answer), "198.51.100.1", "{answer}");
        // An internal network stays on its bridge.
        assert!(t.i1.tcp_query(sock("198.51.100.2", 9999)).is_err());
        assert!(t.i1.tcp_query(sock("10.90.1.2", 80)).is_err());
        // Two networks cannot talk.
        assert!(t.a1.tcp_query(sock("10.90.2.2", 80)).is_err());
        assert!(t.b1.tcp_query(sock("10.90.1.2", 80)).is_err());
        // Nothing unsolicited comes in from outside.
        t.outside
            .cmd(&["ip", "route", "add", "10.90.0.0/16", "via", "198.51.100.1"]);
        assert!(t.outside.tcp_query(sock("10.90.1.2", 80)).is_err());
    }
    t.teardown();
}

#[test]
fn published_ports_with_br_netfilter() {
    if require_root("published_ports_with_br_netfilter") {
        published_ports(true);
    }
}

#[test]
fn published_ports_without_br_netfilter() {
    if require_root("published_ports_without_br_netfilter") {
        published_ports(false);
    }
}

fn published_ports(bridge_netfilter: bool) {
    published_ports_on(bridge_netfilter, HostFirewall::Open);
}

fn published_ports_on(bridge_netfilter: bool, host_firewall: HostFirewall) {
    let t = Topology::build_on(bridge_netfilter, host_firewall);
    {
        let _tcp = Echo::tcp(&t.a1, sock("0.0.0.0", 80));
        let _udp = Echo::udp(&t.a1, sock("0.0.0.0", 53));
        let _r0 = Echo::tcp(&t.a1, sock("0.0.0.0", 7000));
        let _r1 = Echo::tcp(&t.a1, sock("0.0.0.0", 7001));

        // From the host itself: loopback (masqueraded to the gateway), the bridge address, the
        // uplink address.
        let answer = t.host.tcp_query(sock("127.0.0.1", 8080)).unwrap();
        assert_eq!(peer_ip(&answer), "10.90.1.1", "{answer}");
        assert!(answer.ends_with("10.90.1.2:80"), "{answer}");
        let answer = t.host.tcp_query(sock("10.90.1.1", 8080)).unwrap();
        assert!(answer.ends_with("10.90.1.2:80"), "{answer}");
        let answer = t.host.tcp_query(sock("198.51.100.1", 8080)).unwrap();
        assert!(answer.ends_with("10.90.1.2:80"), "{answer}");
        // From another host: the client's address is kept.
        let answer = t.outside.tcp_query(sock("198.51.100.1", 8080)).unwrap();
        assert_eq!(peer_ip(&answer), "198.51.100.2", "{answer}");
        // Hairpin: from a neighbour, from the container itself, from another network.
        let answer = t.a2.tcp_query(sock("10.90.1.1", 8080)).unwrap();
        assert_eq!(peer_ip(&answer), "10.90.1.1", "{answer}");
        let answer = t.a1.tcp_query(sock("10.90.1.1", 8080)).unwrap();
        assert!(answer.ends_with("10.90.1.2:80"), "{answer}");
        let answer = t.b1.tcp_query(sock("10.90.2.1", 8080)).unwrap();
        assert!(answer.ends_with("10.90.1.2:80"), "{answer}");
        // UDP and a range mapped with an offset.
        let answer = t.host.udp_query(sock("127.0.0.1", 5353)).unwrap();
        assert!(answer.ends_with("0.0.0.0:53"), "{answer}");
        let answer = t.outside.udp_query(sock("198.51.100.1", 5353)).unwrap();
        assert_eq!(peer_ip(&answer), "198.51.100.2", "{answer}");
        let answer = t.host.tcp_query(sock("127.0.0.1", 9001)).unwrap();
        assert!(answer.ends_with("10.90.1.2:7001"), "{answer}");
        let answer = t.host.tcp_query(sock("10.90.1.1", 9000)).unwrap();
        assert!(answer.ends_with("10.90.1.2:7000"), "{answer}");
        // An unpublished port is not forwarded.
        assert!(t.host.tcp_query(sock("127.0.0.1", 80)).is_err());
    }
    t.teardown();
}

/// Docker's firewall (FORWARD policy DROP, DOCKER-USER, br_netfilter) with the iptables-nft
/// backend, Debian 12's default: every path still works as on an open host, and removing the
/// project leaves the host's rules exactly as they were.
#[test]
fn beside_dockers_firewall_with_iptables_nft() {
    if require_root("beside_dockers_firewall_with_iptables_nft") {
        let docker = HostFirewall::Docker(host_firewall::Backend::Nft);
        masquerade_and_isolation_on(true, docker);
        published_ports_on(true, docker);
    }
}

#[test]
fn beside_dockers_firewall_with_iptables_legacy() {
    if require_root("beside_dockers_firewall_with_iptables_legacy") {
        let docker = HostFirewall::Docker(host_firewall::Backend::Legacy);
        masquerade_and_isolation_on(true, docker);
        published_ports_on(true, docker);
    }
}

/// A host dropping forwarded traffic without Docker: the rules go to FORWARD.
#[test]
fn on_a_host_whose_forward_policy_is_drop() {
    if require_root("on_a_host_whose_forward_policy_is_drop") {
        let drop = HostFirewall::ForwardDrop(host_firewall::Backend::Nft);
        masquerade_and_isolation_on(false, drop);
        published_ports_on(true, drop);
    }
}

/// IPv6 beside Docker 27's firewall, which drops forwarded traffic in ip6tables too (FORWARD
/// policy DROP, DOCKER-USER, with br_netfilter on): containers reach each other and the outside
/// (masqueraded) over IPv6, a remote client reaches a published port on the host's IPv6 address
/// with its own address kept, the host reaches it on the gateway; removing the project leaves
/// both families' host rules as they were.
#[test]
fn ipv6_beside_dockers_firewall() {
    if !require_root("ipv6_beside_dockers_firewall") {
        return;
    }
    const NET6: &str = "rc-00000000006a";
    const UPLINK6: &str = "uplink6";
    let host = NetNs::new();
    let (c1, c2, outside) = (NetNs::new(), NetNs::new(), NetNs::new());
    let snapshot = |host: &NetNs| host.cmd(&["nft", "-s", "list", "ruleset"]);
    host.run(|| {
        for backend in [host_firewall::Backend::Nft, host_firewall::Backend::Nft6] {
            for step in [
                vec!["-P", "FORWARD", "DROP"],
                vec!["-N", "DOCKER-USER"],
                vec!["-A", "DOCKER-USER", "-j", "RETURN"],
                vec!["-I", "FORWARD", "-j", "DOCKER-USER"],
            ] {
                let out = std::process::Command::new(backend.binary())
                    .args(&step)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{backend} {step:?}: {out:?}");
            }
        }
    });
    let before = snapshot(&host);
    let a6 = |s: &str| -> Ipv6Addr { s.parse().unwrap() };
    host.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        nl.set_up("lo").await.unwrap();
        let bridge_netfilter =
            netlink::set_sysctl("net.bridge.bridge-nf-call-ip6tables", "1").is_ok();
        eprintln!("br_netfilter for IPv6: {bridge_netfilter}");
        for (name, gw, subnet, gw6) in [
            (NET6, "10.91.1.1", "10.91.1.0/24", "fd00:91::1"),
            (UPLINK6, "198.51.101.1", "198.51.101.0/24", "2001:db8:1::1"),
        ] {
            nl.ensure_bridge(&BridgeConfig {
                name: name.into(),
                gateway: ip(gw),
                subnet: net(subnet),
                mtu: None,
                ipv6: Some((a6(gw6), 64)),
            })
            .await
            .unwrap();
        }
        for (ns, bridge, host_name, addr, addr6, gw6) in [
            (
                &c1,
                NET6,
                "rv000000006a001",
                "10.91.1.2",
                "fd00:91::2",
                Some("fd00:91::1"),
            ),
            (
                &c2,
                NET6,
                "rv000000006a002",
                "10.91.1.3",
                "fd00:91::3",
                Some("fd00:91::1"),
            ),
            // No route back to the containers: answers to it must be masqueraded.
            (
                &outside,
                UPLINK6,
                "rv000000006a0o1",
                "198.51.101.2",
                "2001:db8:1::2",
                None,
            ),
        ] {
            nl.attach(&Attachment {
                netns: ns.fd().as_fd(),
                bridge,
                host_name,
                container_name: "eth0",
                address: ip(addr),
                subnet: net(if bridge == NET6 {
                    "10.91.1.0/24"
                } else {
                    "198.51.101.0/24"
                }),
                mac: MacAddr::for_ipv4(ip(addr)),
                mtu: None,
                default_gateway: None,
                isolated: false,
                address6: Some((a6(addr6), 64)),
                default_gateway6: gw6.map(a6),
            })
            .await
            .unwrap();
        }
        netlink::prepare_sysctls(&[NET6], true).unwrap();
        let rules = ProjectRules {
            networks: vec![NetworkRules {
                bridge: NET6.into(),
                subnet: net("10.91.1.0/24"),
                subnet6: Some("fd00:91::/64".parse().unwrap()),
                internal: false,
                no_masquerade: false,
            }],
            ports: vec![PublishedPort {
                container_ip6: Some(a6("fd00:91::2")),
                ..port(Protocol::Tcp, "8080", [10, 91, 1, 2], "80")
            }],
        };
        apply("fw6test", &rules).unwrap();
    });
    let v6 = |s: &str, port: u16| SocketAddr::from((a6(s), port));
    {
        let _c1 = Echo::tcp(&c1, v6("::", 80));
        let _out = Echo::tcp(&outside, v6("::", 9999));
        let answer = c2.tcp_query(v6("fd00:91::2", 80)).unwrap();
        assert_eq!(peer_ip(&answer), "[fd00:91::3]", "{answer}");
        let answer = c1.tcp_query(v6("2001:db8:1::2", 9999)).unwrap();
        assert_eq!(peer_ip(&answer), "[2001:db8:1::1]", "masqueraded: {answer}");
        let answer = outside.tcp_query(v6("2001:db8:1::1", 8080)).unwrap();
        assert_eq!(peer_ip(&answer), "[2001:db8:1::2]", "client kept: {answer}");
        assert!(answer.ends_with("[fd00:91::2]:80"), "{answer}");
        let answer = host.tcp_query(v6("fd00:91::1", 8080)).unwrap();
        assert!(answer.ends_with("[fd00:91::2]:80"), "{answer}");
        // Nothing unsolicited comes in from outside.
        outside.cmd(&[
            "ip",
            "-6",
            "route",
            "add",
            "fd00:91::/64",
            "via",
            "2001:db8:1::1",
        ]);
        assert!(outside.tcp_query(v6("fd00:91::2", 80)).is_err());
    }
    host.block_on(|| async {
        assert!(remove("fw6test").unwrap());
    });
    assert_eq!(snapshot(&host), before);
}
