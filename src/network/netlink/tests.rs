use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use super::testns::{peer_ip, require_root, Echo, NetNs};
use super::*;
use crate::network::names;

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("test subnet")
}

fn bridge(name: &str, gw: [u8; 4], subnet: &str) -> BridgeConfig {
    BridgeConfig {
        name: name.to_string(),
        gateway: Ipv4Addr::from(gw),
        subnet: net(subnet),
        mtu: None,
        ipv6: None,
    }
}

fn attachment<'a>(
    ns: &'a NetNs,
    bridge: &'a str,
    host: &'a str,
    ip: Ipv4Addr,
    subnet: &str,
    gateway: Option<Ipv4Addr>,
) -> Attachment<'a> {
    Attachment {
        netns: ns.fd().as_fd(),
        bridge,
        host_name: host,
        container_name: "eth0",
        address: ip,
        subnet: net(subnet),
        mac: names::MacAddr::for_ipv4(ip),
        mtu: None,
        default_gateway: gateway,
        isolated: false,
        address6: None,
        default_gateway6: None,
    }
}

#[test]
fn sysctl_keys_map_to_proc_paths() {
    assert_eq!(
        sysctl_path("net.ipv4.ip_forward"),
        PathBuf::from("/proc/sys/net/ipv4/ip_forward")
    );
    assert_eq!(
        sysctl_path("net.ipv4.conf.rc-0123456789ab.route_localnet"),
        PathBuf::from("/proc/sys/net/ipv4/conf/rc-0123456789ab/route_localnet")
    );
    // A dotted interface name stays one component.
    assert_eq!(
        sysctl_path("net.ipv6.conf.eth0.100.disable_ipv6"),
        PathBuf::from("/proc/sys/net/ipv6/conf/eth0.100/disable_ipv6")
    );
}

#[test]
fn connect_needs_a_runtime() {
    assert!(matches!(Netlink::connect(), Err(NetlinkError::NoRuntime)));
}

#[test]
fn bridge_is_created_reused_and_deleted() {
    if !require_root("bridge_is_created_reused_and_deleted") {
        return;
    }
    let host = NetNs::new();
    host.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        let mut cfg = bridge("rc-00000000000a", [10, 77, 0, 1], "10.77.0.0/24");
        cfg.mtu = Some(1400);
        let index = nl.ensure_bridge(&cfg).await.unwrap();
        // Reuse is idempotent: same link, one address.
        assert_eq!(nl.ensure_bridge(&cfg).await.unwrap(), index);
        let show = std::process::Command::new("ip")
            .args(["-4", "-o", "addr", "show", "dev", "rc-00000000000a"])
            .output()
            .unwrap();
        let show = String::from_utf8_lossy(&show.stdout);
        assert_eq!(show.lines().count(), 1, "{show}");
        assert!(show.contains("10.77.0.1/24"), "{show}");

        // A leftover with another subnet gets the new gateway only.
        let moved = bridge("rc-00000000000a", [10, 78, 0, 1], "10.78.0.0/16");
        assert_eq!(nl.ensure_bridge(&moved).await.unwrap(), index);
        let link = std::process::Command::new("ip")
            .args(["-d", "-o", "addr", "show", "dev", "rc-00000000000a"])
            .output()
            .unwrap();
        let link = String::from_utf8_lossy(&link.stdout).into_owned();
        assert!(link.contains("10.78.0.1/16"), "{link}");
        assert!(!link.contains("10.77.0.1"), "{link}");
        let detail = std::process::Command::new("ip")
            .args(["-d", "link", "show", "dev", "rc-00000000000a"])
            .output()
            .unwrap();
        let detail = String::from_utf8_lossy(&detail.stdout).into_owned();
        assert!(detail.contains("mtu 1400"), "{detail}");
        assert!(detail.contains("bridge"), "{detail}");
        assert!(
            detail.contains("02:42:0a:4d:00:01"),
            "MAC from gateway: {detail}"
        );

        assert_eq!(
            nl.links_with_prefix("rc-").await.unwrap(),
            vec!["rc-00000000000a".to_string()]
        );
        assert!(nl.delete_link("rc-00000000000a").await.unwrap());
        assert!(!nl.delete_link("rc-00000000000a").await.unwrap());
        assert!(nl.links_with_prefix("rc-").await.unwrap().is_empty());
    });
}

/// A bridge deleted on the kernel's announcement is gone, with a port on it too, and its name
/// can be taken again at once.
#[test]
fn bridge_deleted_on_announcement_is_gone() {
    if !require_root("bridge_deleted_on_announcement_is_gone") {
        return;
    }
    let host = NetNs::new();
    let container = NetNs::new();
    host.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        let cfg = bridge("rc-00000000001a", [10, 79, 0, 1], "10.79.0.0/24");
        let first = nl.ensure_bridge(&cfg).await.unwrap();
        let ip = Ipv4Addr::new(10, 79, 0, 2);
        nl.attach(&attachment(
            &container,
            "rc-00000000001a",
            "rv00000000001a1",
            ip,
            "10.79.0.0/24",
            Some(Ipv4Addr::new(10, 79, 0, 1)),
        ))
        .await
        .unwrap();
        assert!(nl.delete_link_announced("rc-00000000001a").await.unwrap());
        assert_eq!(nl.link_index("rc-00000000001a").await.unwrap(), None);
        assert!(!nl.delete_link_announced("rc-00000000001a").await.unwrap());
        // The name is free: a new bridge takes it (another index), and goes the same way.
        let second = nl.ensure_bridge(&cfg).await.unwrap();
        assert_ne!(first, second);
        assert!(nl.delete_link_announced("rc-00000000001a").await.unwrap());
        assert!(nl.links_with_prefix("rc-").await.unwrap().is_empty());
    });
}

#[test]
fn bridge_errors_name_the_link() {
    if !require_root("bridge_errors_name_the_link") {
        return;
    }
    let host = NetNs::new();
    host.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        let err = nl
            .ensure_bridge(&bridge("lo", [10, 1, 0, 1], "10.1.0.0/24"))
            .await
            .unwrap_err();
        assert!(matches!(err, NetlinkError::NotABridge { .. }), "{err}");
        assert!(err.to_string().contains("lo"), "{err}");
        let err = nl
            .ensure_bridge(&bridge("rc-00000000000b", [10, 2, 0, 1], "10.1.0.0/24"))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "gateway 10.2.0.1 is outside subnet 10.1.0.0/24 of bridge rc-00000000000b"
        );
        assert_eq!(nl.link_index("rc-00000000000b").await.unwrap(), None);
    });
}

#[test]
fn containers_on_one_bridge_talk_and_detach_cleans_up() {
    if !require_root("containers_on_one_bridge_talk_and_detach_cleans_up") {
        return;
    }
    let host = NetNs::new();
    let (c1, c2) = (NetNs::new(), NetNs::new());
    let (ip1, ip2) = (Ipv4Addr::new(10, 80, 0, 2), Ipv4Addr::new(10, 80, 0, 3));
    let gw = Ipv4Addr::new(10, 80, 0, 1);
    let took = host.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        nl.ensure_bridge(&bridge("rc-00000000000c", [10, 80, 0, 1], "10.80.0.0/24"))
            .await
            .unwrap();
        let mut took = Vec::new();
        for (ns, host_name, ip) in [(&c1, "rv00000000000c1", ip1), (&c2, "rv00000000000c2", ip2)] {
            let start = Instant::now();
            nl.attach(&attachment(
                ns,
                "rc-00000000000c",
                host_name,
                ip,
                "10.80.0.0/24",
                Some(gw),
            ))
            .await
            .unwrap();
            took.push(start.elapsed());
        }
        took
    });
    eprintln!("attach took {took:?}");

    // Inside: address, MAC, default route, IPv6 off, lo up.
    let addr = c1.cmd(&["ip", "-o", "addr", "show"]);
    assert!(addr.contains("10.80.0.2/24"), "{addr}");
    assert!(
        !addr
            .lines()
            .any(|l| l.contains("eth0") && l.contains("inet6")),
        "IPv6 must be off on eth0: {addr}"
    );
    let link = c1.cmd(&["ip", "link", "show", "eth0"]);
    assert!(link.contains("02:42:0a:50:00:02"), "{link}");
    assert!(link.contains("state UP"), "{link}");
    let route = c1.cmd(&["ip", "route"]);
    assert!(route.contains("default via 10.80.0.1 dev eth0"), "{route}");
    let disabled = c1.run(|| fs::read_to_string("/proc/sys/net/ipv6/conf/eth0/disable_ipv6"));
    assert_eq!(disabled.unwrap().trim(), "1");

    let _echo = Echo::tcp(&c1, SocketAddr::from((ip1, 7000)));
    let answer = c2.tcp_query(SocketAddr::from((ip1, 7000))).unwrap();
    assert_eq!(peer_ip(&answer), "10.80.0.3", "{answer}");
    let _lo = Echo::tcp(&c2, SocketAddr::from(([127, 0, 0, 1], 7001)));
    let answer = c2
        .tcp_query(SocketAddr::from(([127, 0, 0, 1], 7001)))
        .unwrap();
    assert_eq!(peer_ip(&answer), "127.0.0.1", "lo is up: {answer}");

    let port = host.cmd(&["ip", "-d", "link", "show", "rv00000000000c1"]);
    assert!(port.contains("master rc-00000000000c"), "{port}");
    assert!(port.contains("hairpin on"), "{port}");
    assert!(port.contains("state UP"), "{port}");

    host.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        assert!(nl.detach("rv00000000000c1").await.unwrap());
        assert!(!nl.detach("rv00000000000c1").await.unwrap());
        assert!(nl.delete_link("rc-00000000000c").await.unwrap());
        // The other veth went with the bridge? No: only its master; it is deleted explicitly.
        assert!(nl.detach("rv00000000000c2").await.unwrap());
        assert!(nl.links_with_prefix("r").await.unwrap().is_empty());
    });
    assert!(
        !c1.cmd(&["ip", "link"]).contains("eth0"),
        "peer deleted with host end"
    );
    assert!(host.cmd(&["ip", "route"]).trim().is_empty());
}

#[test]
fn attach_errors_leave_nothing_behind() {
    if !require_root("attach_errors_leave_nothing_behind") {
        return;
    }
    let host = NetNs::new();
    let c = NetNs::new();
    host.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        let ip = Ipv4Addr::new(10, 81, 0, 2);
        let att = attachment(
            &c,
            "rc-00000000000d",
            "rv00000000000d1",
            ip,
            "10.81.0.0/24",
            None,
        );
        let err = nl.attach(&att).await.unwrap_err();
        assert_eq!(err.to_string(), "bridge rc-00000000000d does not exist");

        nl.ensure_bridge(&bridge("rc-00000000000d", [10, 81, 0, 1], "10.81.0.0/24"))
            .await
            .unwrap();
        let outside = attachment(
            &c,
            "rc-00000000000d",
            "rv00000000000d1",
            ip,
            "10.82.0.0/24",
            None,
        );
        let err = nl.attach(&outside).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "address 10.81.0.2 is outside subnet 10.82.0.0/24 of eth0"
        );

        // A gateway that is not on the link fails inside the namespace: the pair is rolled back.
        let bad_gw = attachment(
            &c,
            "rc-00000000000d",
            "rv00000000000d1",
            ip,
            "10.81.0.0/24",
            Some(Ipv4Addr::new(192, 0, 2, 1)),
        );
        let err = nl.attach(&bad_gw).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot add the default route via 192.0.2.1 on eth0"),
            "{err}"
        );
        assert_eq!(nl.link_index("rv00000000000d1").await.unwrap(), None);

        // The name is taken inside the container: the kernel refuses the whole request.
        nl.attach(&att).await.unwrap();
        let twice = Attachment {
            host_name: "rv00000000000d2",
            address: Ipv4Addr::new(10, 81, 0, 3),
            ..att
        };
        let err = nl.attach(&twice).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot create veth pair link rv00000000000d2 (peer eth0)"),
            "{err}"
        );
        assert_eq!(nl.link_index("rv00000000000d2").await.unwrap(), None);
        assert!(nl.detach("rv00000000000d1").await.unwrap());
        assert!(nl.delete_link("rc-00000000000d").await.unwrap());
    });
}

#[test]
fn sysctls_report_what_changed() {
    if !require_root("sysctls_report_what_changed") {
        return;
    }
    let host = NetNs::new();
    host.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        nl.ensure_bridge(&bridge("rc-00000000000e", [10, 83, 0, 1], "10.83.0.0/24"))
            .await
            .unwrap();
        set_sysctl("net.ipv4.ip_forward", "0").unwrap();
        let changes = prepare_sysctls(&["rc-00000000000e"], false).unwrap();
        assert_eq!(
            changes,
            vec![
                SysctlChange {
                    key: "net.ipv4.ip_forward".into(),
                    old: "0".into(),
                    new: "1".into()
                },
                SysctlChange {
                    key: "net.ipv4.conf.rc-00000000000e.route_localnet".into(),
                    old: "0".into(),
                    new: "1".into()
                },
            ]
        );
        assert!(prepare_sysctls(&["rc-00000000000e"], false)
            .unwrap()
            .is_empty());
        let err = prepare_sysctls(&["rc-nonexistent"], false).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot set sysctl net.ipv4.conf.rc-nonexistent.route_localnet to 1"),
            "{err}"
        );
    });
}

/// Not a benchmark harness, a budget: attaching must stay in the milliseconds.
#[test]
fn attach_is_fast() {
    if !require_root("attach_is_fast") {
        return;
    }
    const N: usize = 20;
    let host = NetNs::new();
    let containers: Vec<NetNs> = (0..N).map(|_| NetNs::new()).collect();
    let (total, mut each) = host.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        nl.ensure_bridge(&bridge("rc-00000000000f", [10, 84, 0, 1], "10.84.0.0/24"))
            .await
            .unwrap();
        let gw = Ipv4Addr::new(10, 84, 0, 1);
        let mut each = Vec::new();
        let start = Instant::now();
        for (i, ns) in containers.iter().enumerate() {
            let host_name = format!("rv0000000000f{i:02}");
            let ip = Ipv4Addr::new(10, 84, 0, 10 + i as u8);
            let t = Instant::now();
            nl.attach(&attachment(
                ns,
                "rc-00000000000f",
                &host_name,
                ip,
                "10.84.0.0/24",
                Some(gw),
            ))
            .await
            .unwrap();
            each.push(t.elapsed());
        }
        let total = start.elapsed();
        nl.delete_link("rc-00000000000f").await.unwrap();
        (total, each)
    });
    each.sort();
    let median = each[N / 2];
    eprintln!(
        "attach: {N} containers in {total:?}, median {median:?}, min {:?}, max {:?}",
        each[0],
        each[N - 1]
    );
    assert!(
        median < Duration::from_millis(50),
        "median attach {median:?}"
    );
}
