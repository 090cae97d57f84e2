use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;

use super::*;
use crate::compose::loader::{load, Options};
use crate::network::netlink::testns::{peer_ip, require_root, Echo, NetNs};

fn project(name: &str, yaml: &str) -> Project {
    let dir = tempfile::tempdir().expect("tempdir");
    load(&Options::for_test(dir.path(), name, yaml))
        .expect("test compose file loads")
        .project
}

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("test subnet")
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test address")
}

fn pool() -> Pool {
    Pool::parse("base=10.200.0.0/16,size=24").expect("test pool")
}

fn route(iface: &str, s: &str) -> HostRoute {
    HostRoute {
        iface: iface.into(),
        net: net(s),
    }
}

fn plan(p: &Project, services: &[&str]) -> Result<Vec<NetworkState>> {
    plan_networks_on(&HostView::default(), &pool(), p, services, &[], &[])
}

fn state(key: &str, name: &str, subnet: &str) -> NetworkState {
    let subnet = net(subnet);
    NetworkState {
        key: key.into(),
        name: name.into(),
        bridge: names::bridge_name(name),
        subnet,
        gateway: Ipv4Addr::from(u32::from(subnet.network()) + 1),
        ip_range: None,
        configured: false,
        internal: false,
        external: false,
        mtu: None,
        config_fields: Default::default(),
        options: Default::default(),
        driver: NetDriver::Bridge,
        ipv6: None,
    }
}

const TWO: &str = "
services:
  web: {image: x}
  db: {image: x, networks: [back]}
  tool: {image: x, network_mode: host}
networks:
  back: {}
  unused: {}
";

#[test]
fn plans_only_the_networks_the_services_use() {
    let p = project("demo", TWO);
    let nets = plan(&p, &["web"]).unwrap();
    assert_eq!(nets.len(), 1);
    let d = &nets[0];
    assert_eq!(d.key, "default");
    assert_eq!(d.name, "demo_default");
    assert_eq!(d.bridge, names::bridge_name("demo_default"));
    assert_eq!(d.subnet, net("10.200.0.0/24"));
    assert_eq!(d.gateway, ip("10.200.0.1"));
    assert_eq!(d.ip_range, None);
    assert!(!d.configured && !d.internal && !d.external);

    let nets = plan(&p, &["web", "db", "tool"]).unwrap();
    let keys: Vec<&str> = nets.iter().map(|n| n.key.as_str()).collect();
    assert_eq!(keys, ["back", "default"]);
    assert!(nets.iter().all(|n| n.key != "unused"));
    assert_ne!(nets[0].subnet, nets[1].subnet);
    assert!(plan(&p, &["tool"]).unwrap().is_empty());
    assert!(matches!(
        plan(&p, &["nope"]),
        Err(ProjectError::UnknownService { .. })
    ));
}

#[test]
fn automatic_subnets_skip_taken_and_host_routes_but_not_our_own() {
    let p = project("demo", "services: {web: {image: x}}");
    let host = HostView {
        routes: vec![route("eth0", "10.200.0.0/23")],
        links: Vec::new(),
        ..Default::default()
    };
    let others = [state("default", "other_default", "10.200.2.0/24")];
    let nets = plan_networks_on(&host, &pool(), &p, &["web"], &[], &others).unwrap();
    assert_eq!(nets[0].subnet, net("10.200.3.0/24"));

    // A restart: the previous subnet is kept, though the project's own bridge routes it.
    let previous = [state("default", "demo_default", "10.200.9.0/24")];
    let host = HostView {
        routes: vec![route(&previous[0].bridge, "10.200.9.0/24")],
        links: Vec::new(),
        ..Default::default()
    };
    let nets = plan_networks_on(&host, &pool(), &p, &["web"], &previous, &others).unwrap();
    assert_eq!(nets, previous);
    // ...unless another project or a new host route took it meanwhile.
    let others = [state("default", "other_default", "10.200.9.0/24")];
    let nets = plan_networks_on(&host, &pool(), &p, &["web"], &previous, &others).unwrap();
    assert_eq!(nets[0].subnet, net("10.200.0.0/24"));

    let full = HostView {
        routes: vec![route("wg0", "10.200.0.0/16")],
        links: Vec::new(),
        ..Default::default()
    };
    let err = plan_networks_on(&full, &pool(), &p, &["web"], &[], &[]).unwrap_err();
    assert!(err.to_string().contains("no free subnet"), "{err}");
}

#[test]
fn ipam_config_mtu_internal_and_name_are_honoured() {
    let p = project(
        "demo",
        "
services:
  web: {image: x, networks: [front, back, auto]}
networks:
  auto: {}
  front:
    name: shop-front
    driver: bridge
    driver_opts: {com.docker.network.driver.mtu: '1400'}
    ipam:
      config: [{subnet: 10.60.0.0/16, gateway: 10.60.0.254, ip_range: 10.60.5.0/24}]
  back:
    internal: true
    driver_opts: {com.docker.network.bridge.name: br-back}
    ipam: {config: [{subnet: 10.200.0.0/24}]}
",
    );
    let nets = plan(&p, &["web"]).unwrap();
    let by = |k: &str| nets.iter().find(|n| n.key == k).unwrap();
    let front = by("front");
    assert_eq!(front.name, "shop-front");
    assert_eq!(front.bridge, names::bridge_name("shop-front"));
    assert_eq!(front.subnet, net("10.60.0.0/16"));
    assert_eq!(front.gateway, ip("10.60.0.254"));
    assert_eq!(front.ip_range, Some(net("10.60.5.0/24")));
    assert!(front.configured);
    assert_eq!(front.mtu, Some(1400));
    assert!(by("back").internal);
    assert_eq!(by("back").bridge, "br-back");
    // The automatic subnets avoid the configured one even though it comes later in the file.
    assert_eq!(by("auto").subnet, net("10.200.1.0/24"));

    // A changed ipam config replaces the previous subnet.
    let mut previous = nets.clone();
    let i = previous.iter().position(|n| n.key == "front").unwrap();
    previous[i].subnet = net("10.61.0.0/16");
    let again =
        plan_networks_on(&HostView::default(), &pool(), &p, &["web"], &previous, &[]).unwrap();
    assert_eq!(again, nets);

    // State round-trips through JSON.
    let json = serde_json::to_string(&nets).unwrap();
    assert!(json.contains("\"10.60.0.0/16\""), "{json}");
    let back: Vec<NetworkState> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, nets);
}

#[test]
fn network_definition_errors_name_the_network() {
    let cases = [
        (
            "driver: overlay",
            "network n: driver \"overlay\" is not supported",
        ),
        (
            "driver_opts: {com.docker.network.driver.mtu: big}",
            "network n: invalid driver_opts com.docker.network.driver.mtu=\"big\": not a number",
        ),
        (
            "driver_opts: {com.docker.network.driver.mtu: '20'}",
            "must be between 68 and 65535",
        ),
        ("enable_ipv4: false", "enable_ipv4: false is not supported"),
        (
            "ipam: {config: [{subnet: 10.0.0.0/8, gateway: 11.0.0.1}]}",
            "network demo_n: gateway 11.0.0.1 is outside subnet 10.0.0.0/8",
        ),
    ];
    for (def, want) in cases {
        let p = project(
            "demo",
            &format!(
                "services: {{web: {{image: x, networks: [n]}}}}\nnetworks: {{n: {{{def}}}}}\n"
            ),
        );
        let err = plan(&p, &["web"]).unwrap_err().to_string();
        assert!(err.contains(want), "{def}: {err}");
    }
}

#[test]
fn external_networks_must_exist_as_bridges() {
    let p = project(
        "demo",
        "
services: {web: {image: x, networks: [ext, lan]}}
networks:
  ext: {external: true, name: shared}
  lan: {external: true}
",
    );
    let ours = HostLink {
        name: names::bridge_name("shared"),
        kind: Some("bridge".into()),
        mtu: Some(1450),
        addresses: vec![(ip("10.210.0.1"), 24)],
    };
    let hand_made = HostLink {
        name: "lan".into(),
        kind: Some("bridge".into()),
        mtu: Some(1500),
        addresses: vec![(ip("192.168.77.5"), 24)],
    };
    let host = HostView {
        routes: Vec::new(),
        links: vec![ours.clone(), hand_made.clone()],
        ..Default::default()
    };
    let nets = plan_networks_on(&host, &pool(), &p, &["web"], &[], &[]).unwrap();
    assert_eq!(nets[0].bridge, ours.name);
    assert_eq!(nets[0].subnet, net("10.210.0.0/24"));
    assert_eq!(nets[0].gateway, ip("10.210.0.1"));
    assert_eq!(nets[0].mtu, Some(1450));
    assert!(nets[0].external);
    assert_eq!(nets[1].bridge, "lan");
    assert_eq!(nets[1].subnet, net("192.168.77.0/24"));
    assert_eq!(nets[1].gateway, ip("192.168.77.5"));

    let only_one = HostView {
        routes: Vec::new(),
        links: vec![ours.clone()],
        ..Default::default()
    };
    let err = plan_networks_on(&only_one, &pool(), &p, &["web"], &[], &[])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("external network lan not found"), "{err}");

    let not_bridge = HostView {
        routes: Vec::new(),
        links: vec![
            ours.clone(),
            HostLink {
                kind: None,
                ..hand_made.clone()
            },
        ],
        ..Default::default()
    };
    let err = plan_networks_on(&not_bridge, &pool(), &p, &["web"], &[], &[])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "external network lan: link lan is a device, not a bridge"
    );

    let bare = HostView {
        routes: Vec::new(),
        links: vec![
            ours,
            HostLink {
                addresses: Vec::new(),
                ..hand_made
            },
        ],
        ..Default::default()
    };
    let err = plan_networks_on(&bare, &pool(), &p, &["web"], &[], &[])
        .unwrap_err()
        .to_string();
    assert_eq!(err, "external network lan: bridge lan has no IPv4 address");
}

#[test]
fn a_network_named_like_another_projects_is_shared() {
    let p = project(
        "demo",
        "services: {web: {image: x, networks: [n]}}\nnetworks: {n: {name: common}}\n",
    );
    let mut theirs = state("x", "common", "10.200.7.0/24");
    theirs.mtu = Some(1300);
    let nets = plan_networks_on(
        &HostView::default(),
        &pool(),
        &p,
        &["web"],
        &[],
        std::slice::from_ref(&theirs),
    )
    .unwrap();
    assert_eq!(nets[0].key, "n");
    assert_eq!(nets[0].bridge, theirs.bridge);
    assert_eq!(nets[0].subnet, theirs.subnet);
    assert_eq!(nets[0].mtu, Some(1300));

    let p = project(
        "demo",
        "services: {web: {image: x, networks: [n]}}\nnetworks: {n: {name: common, ipam: {config: [{subnet: 10.9.0.0/24}]}}}\n",
    );
    let err = plan_networks_on(&HostView::default(), &pool(), &p, &["web"], &[], &[theirs])
        .unwrap_err()
        .to_string();
    assert!(err.contains("differs from 10.200.7.0/24"), "{err}");
}

const ADDRS: &str = "
services:
  web:
    image: x
    mac_address: 02:00:00:00:00:aa
    networks:
      front: {aliases: [www]}
      back: {priority: 10, ipv4_address: 10.50.0.7, mac_address: 02:00:00:00:00:bb}
  db:
    image: x
    networks:
      back: {ipv4_address: 10.50.0.2}
  cache: {image: x, networks: [back]}
networks:
  front: {}
  back: {ipam: {config: [{subnet: 10.50.0.0/24}]}}
";

fn service<'a>(p: &'a Project, name: &str) -> &'a ServiceConfig {
    p.services.get(name).expect("test service")
}

#[test]
fn interfaces_follow_priority_static_addresses_and_macs() {
    let p = project("demo", ADDRS);
    let nets = plan(&p, &["web", "db", "cache"]).unwrap();
    let web = plan_interfaces(&p, service(&p, "web"), "c1", &nets, &[]).unwrap();
    // back has the higher priority: it is eth0 and carries the default route.
    assert_eq!(web.len(), 2);
    assert_eq!(web[0].network, "back");
    assert_eq!(web[0].ifname, "eth0");
    assert_eq!(web[0].address, ip("10.50.0.7"));
    assert_eq!(web[0].mac.to_string(), "02:00:00:00:00:bb");
    assert!(web[0].default_gateway);
    assert_eq!(web[0].host_veth, names::veth_host_name("c1", "demo_back"));
    assert_eq!(web[1].network, "front");
    assert_eq!(web[1].ifname, "eth1");
    assert_eq!(web[1].aliases, ["www"]);
    assert!(!web[1].default_gateway);
    // The service-level mac_address belongs to the first network only, which has its own.
    assert_eq!(web[1].mac, MacAddr::for_ipv4(web[1].address));
    let front = nets.iter().find(|n| n.key == "front").unwrap();
    assert_eq!(
        web[1].address,
        Ipv4Addr::from(u32::from(front.subnet.network()) + 2)
    );

    // Dynamic addresses skip those in use and those db asked for by ipv4_address.
    let in_use = [IpAddr::V4(ip("10.50.0.7")), IpAddr::V4(ip("10.50.0.3"))];
    let cache = plan_interfaces(&p, service(&p, "cache"), "c2", &nets, &in_use).unwrap();
    assert_eq!(cache[0].address, ip("10.50.0.4"));
    assert_eq!(cache[0].mac, MacAddr::for_ipv4(ip("10.50.0.4")));

    // Interfaces round-trip through JSON.
    let json = serde_json::to_string(&web).unwrap();
    assert_eq!(serde_json::from_str::<Vec<Interface>>(&json).unwrap(), web);
}

#[test]
fn static_address_errors() {
    let p = project("demo", ADDRS);
    let nets = plan(&p, &["web", "db", "cache"]).unwrap();
    let err = plan_interfaces(
        &p,
        service(&p, "web"),
        "c1",
        &nets,
        &[IpAddr::V4(ip("10.50.0.7"))],
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "service web: ipv4_address 10.50.0.7 on network back is already used by another container"
    );

    let bad = |def: &str| {
        let p = project(
            "demo",
            &format!(
                "services: {{web: {{image: x, networks: {{n: {{{def}}}, a: {{}}}}}}}}\n\
                 networks: {{n: {{ipam: {{config: [{{subnet: 10.50.0.0/24}}]}}}}, a: {{}}}}\n"
            ),
        );
        let nets = plan(&p, &["web"]).unwrap();
        plan_interfaces(&p, service(&p, "web"), "c", &nets, &[])
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        bad("ipv4_address: 10.51.0.7"),
        "service web: network n: address 10.51.0.7 is outside subnet 10.50.0.0/24"
    );
    assert_eq!(
        bad("ipv4_address: 10.50.0.1"),
        "service web: network n: address 10.50.0.1 is the network, gateway or broadcast address of subnet 10.50.0.0/24"
    );
    assert!(bad("ipv4_address: ten").contains("not an IPv4 address"));
    assert!(bad("mac_address: 01:00:5e:00:00:01").contains("multicast"));
    assert!(bad("interface_name: a-name-far-too-long").contains("invalid interface_name"));
    assert!(bad("interface_name: eth0").contains("another network of the container"));

    // Static addresses need a subnet from the user, as with Docker.
    let p = project(
        "demo",
        "services: {web: {image: x, networks: {n: {ipv4_address: 10.200.0.9}}}}\nnetworks: {n: {}}\n",
    );
    let nets = plan(&p, &["web"]).unwrap();
    let err = plan_interfaces(&p, service(&p, "web"), "c", &nets, &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs a network with a subnet set"), "{err}");
}

#[test]
fn gateway_priority_internal_networks_and_network_modes() {
    let p = project(
        "demo",
        "
services:
  web:
    image: x
    networks:
      a: {}
      b: {gw_priority: 5, interface_name: uplink}
      c: {}
  iso: {image: x, networks: [c]}
  host: {image: x, network_mode: host}
  side: {image: x, network_mode: 'service:web'}
  odd: {image: x, network_mode: bridge}
networks:
  a: {}
  b: {}
  c: {internal: true}
",
    );
    let nets = plan(&p, &["web", "iso"]).unwrap();
    let web = plan_interfaces(&p, service(&p, "web"), "c", &nets, &[]).unwrap();
    let names: Vec<(&str, &str, bool)> = web
        .iter()
        .map(|i| (i.network.as_str(), i.ifname.as_str(), i.default_gateway))
        .collect();
    assert_eq!(
        names,
        [
            ("a", "eth0", false),
            ("b", "uplink", true),
            ("c", "eth2", false)
        ]
    );
    let iso = plan_interfaces(&p, service(&p, "iso"), "d", &nets, &[]).unwrap();
    assert!(
        !iso[0].default_gateway,
        "an internal network has no way out"
    );
    for mode in ["host", "side"] {
        assert!(plan_interfaces(&p, service(&p, mode), "e", &nets, &[])
            .unwrap()
            .is_empty());
    }
    let err = plan_interfaces(&p, service(&p, "odd"), "f", &nets, &[]).unwrap_err();
    assert!(err.to_string().contains("network_mode \"bridge\""), "{err}");
    let err = plan_interfaces(&p, service(&p, "web"), "c", &nets[..1], &[]).unwrap_err();
    assert!(
        matches!(err, ProjectError::NetworkNotPlanned { .. }),
        "{err}"
    );
}

fn ports_of(ports: &str) -> (Project, Vec<NetworkState>, Vec<Interface>) {
    let p = project(
        "demo",
        &format!("services: {{web: {{image: x, ports: {ports}}}}}\n"),
    );
    let nets = plan(&p, &["web"]).unwrap();
    let ifaces = plan_interfaces(&p, service(&p, "web"), "c", &nets, &[]).unwrap();
    (p, nets, ifaces)
}

#[test]
fn published_ports_in_every_syntax() {
    let (p, nets, ifaces) = ports_of(
        r#"["18080:80", "127.0.0.1:18081:81/udp", "18100-18101:90-91",
           {target: 95, published: "18095", host_ip: 0.0.0.0, protocol: tcp}]"#,
    );
    let me = ifaces[0].address;
    let got = published_ports(service(&p, "web"), &ifaces, &nets, &mut PortsInUse::new()).unwrap();
    let b = |protocol, host_ip, host_port, container_port| PortBinding {
        protocol,
        host_ip,
        host_port,
        container_ip: me,
        container_ip6: None,
        container_port,
    };
    let want = [
        b(Protocol::Tcp, None, 18080, 80),
        b(Protocol::Udp, Some(IpAddr::V4(ip("127.0.0.1"))), 18081, 81),
        b(Protocol::Tcp, None, 18100, 90),
        b(Protocol::Tcp, None, 18101, 91),
        b(Protocol::Tcp, None, 18095, 95),
    ];
    for w in &want {
        assert!(got.contains(w), "{w:?} missing from {got:?}");
    }
    assert_eq!(got.len(), want.len());
    let fw = got[0].to_firewall().unwrap();
    assert_eq!(fw.host_ports, PortRange::single(got[0].host_port).unwrap());
    let json = serde_json::to_string(&got).unwrap();
    assert!(json.contains("\"udp\""), "{json}");
    assert_eq!(
        serde_json::from_str::<Vec<PortBinding>>(&json).unwrap(),
        got
    );
}

#[test]
fn random_and_pooled_ports_are_free_and_distinct() {
    let (p, nets, ifaces) = ports_of(r#"["80", "81", "0:82", "19000-19003:83", "19000-19003:84"]"#);
    // Something listens on the first port of the pool, another project publishes the second.
    let busy = TcpListener::bind("0.0.0.0:19000");
    let mut in_use = PortsInUse::new();
    in_use.add(&[PortBinding {
        protocol: Protocol::Tcp,
        host_ip: None,
        host_port: 19001,
        container_ip: ip("10.9.9.9"),
        container_ip6: None,
        container_port: 1,
    }]);
    let got = published_ports(service(&p, "web"), &ifaces, &nets, &mut in_use).unwrap();
    let (lo, hi) = ephemeral_range();
    let by_target = |t: u16| {
        got.iter()
            .find(|b| b.container_port == t)
            .unwrap()
            .host_port
    };
    for t in [80, 81, 82] {
        let port = by_target(t);
        assert!((lo..=hi).contains(&port), "{port} outside {lo}-{hi}");
        assert!(port_is_free(Protocol::Tcp, None, port).unwrap(), "{port}");
    }
    let mut hosts: Vec<u16> = got.iter().map(|b| b.host_port).collect();
    hosts.sort_unstable();
    hosts.dedup();
    assert_eq!(hosts.len(), got.len(), "{got:?}");
    if busy.is_ok() {
        assert_eq!(by_target(83), 19002);
        assert_eq!(by_target(84), 19003);
    }
    // The chosen ports are now in use for the next container.
    assert!(in_use.contains(
        Protocol::Tcp,
        Some(IpAddr::V4(ip("127.0.0.1"))),
        by_target(80)
    ));
    assert!(!in_use.contains(Protocol::Udp, None, by_target(80)));
    // The pool is exhausted.
    let err = published_ports(service(&p, "web"), &ifaces, &nets, &mut in_use)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no free host port for 19000-19003:83/tcp"),
        "{err}"
    );
}

#[test]
fn port_errors() {
    for (ports, want) in [
        (
            r#"[{target: 80, published: "8080", host_ip: "no-ip"}]"#,
            "host_ip is not an IP address",
        ),
        (r#"["8080:80/sctp"]"#, "protocol sctp is not supported"),
        (r#"[{target: 0, published: "8080"}]"#, "between 1 and 65535"),
    ] {
        let (p, nets, ifaces) = ports_of(ports);
        let err = published_ports(service(&p, "web"), &ifaces, &nets, &mut PortsInUse::new())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("service web: invalid port"), "{err}");
        assert!(err.contains(want), "{ports}: {err}");
    }
    let p = project(
        "demo",
        "services:\n  web: {image: x, ports: ['8080:80'], networks: [i]}\n  h: {image: x, ports: ['8080:80'], network_mode: host}\nnetworks: {i: {internal: true}}\n",
    );
    let nets = plan(&p, &["web"]).unwrap();
    let ifaces = plan_interfaces(&p, service(&p, "web"), "c", &nets, &[]).unwrap();
    let err =
        published_ports(service(&p, "web"), &ifaces, &nets, &mut PortsInUse::new()).unwrap_err();
    assert!(matches!(err, ProjectError::NoPortNetwork { .. }), "{err}");
    // Host networking publishes nothing: the container uses the host's ports.
    assert!(
        published_ports(service(&p, "h"), &[], &nets, &mut PortsInUse::new())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn container_files_and_dns_entries() {
    let p = project(
        "demo",
        "
services:
  web:
    image: x
    domainname: example.test
    dns: [9.9.9.9]
    dns_search: [corp.test]
    dns_opt: [ndots:3]
    extra_hosts: [db.local=10.1.1.1, host.docker.internal=host-gateway]
    networks: {a: {aliases: [www]}, b: {}}
  plain: {image: x, networks: [a]}
  alone: {image: x, network_mode: none, dns: [1.1.1.1]}
networks: {a: {}, b: {}}
",
    );
    let nets = plan(&p, &["web", "plain"]).unwrap();
    let web = service(&p, "web");
    let ifaces = plan_interfaces(&p, web, "c", &nets, &[]).unwrap();
    let host = ResolvConf::parse("nameserver 127.0.0.53\nsearch lan\noptions edns0\n");
    let gw = nets[0].gateway;
    let (resolv_conf, hosts) = container_files(web, "web", &ifaces, &nets, &host, false).unwrap();
    assert_eq!(
        resolv_conf,
        format!(
            "# Generated by rcompose.\n\nnameserver 127.0.0.11\nsearch corp.test\noptions ndots:3\n\n# ExtServers: [9.9.9.9]\n"
        )
    );
    let want = format!(
        "127.0.0.1\tlocalhost\n10.1.1.1\tdb.local\n{gw}\thost.docker.internal\n\
         {a}\tweb.example.test web\n{b}\tweb.example.test web\n",
        a = ifaces[0].address,
        b = ifaces[1].address
    );
    assert_eq!(hosts, want);

    let plain = service(&p, "plain");
    let pif = plan_interfaces(&p, plain, "d", &nets, &[IpAddr::V4(ifaces[0].address)]).unwrap();
    let (resolv_conf, _) = container_files(plain, "abc", &pif, &nets, &host, false).unwrap();
    assert!(resolv_conf.contains("nameserver 127.0.0.11\nsearch lan\noptions edns0 ndots:0\n"));
    assert!(
        resolv_conf.contains("# ExtServers: [127.0.0.53]"),
        "{resolv_conf}"
    );

    let alone = service(&p, "alone");
    let (resolv_conf, hosts) = container_files(alone, "x", &[], &nets, &host, false).unwrap();
    assert_eq!(
        resolv_conf,
        "nameserver 1.1.1.1\nsearch lan\noptions edns0\n"
    );
    assert_eq!(hosts, "127.0.0.1\tlocalhost\n");

    let dns = dns_entries(web, "demo-web-1", &ifaces, &host).unwrap();
    assert_eq!(dns.endpoints.len(), 2);
    assert_eq!(dns.endpoints[0].network, "a");
    assert_eq!(dns.endpoints[0].address, ifaces[0].address);
    assert_eq!(dns.endpoints[0].names, ["demo-web-1", "web", "www"]);
    assert_eq!(dns.endpoints[1].names, ["demo-web-1", "web"]);
    assert_eq!(dns.upstreams, ["9.9.9.9:53".parse::<SocketAddr>().unwrap()]);
    assert_eq!(dns.search, ["corp.test"]);
    let dns = dns_entries(plain, "demo-plain-1", &pif, &host).unwrap();
    assert!(
        dns.upstreams.is_empty(),
        "the host's resolvers, set once in the table"
    );
    assert_eq!(dns.search, ["lan"]);
}

// ---- root: the whole flow in a fake host -------------------------------------------------------

/// A fake host: a fresh namespace with `lo` up (published ports are reached on 127.0.0.1).
/// Dropping it destroys every link and table the test made, even when the test fails.
fn fake_host() -> NetNs {
    let host = NetNs::new();
    host.cmd(&["ip", "link", "set", "lo", "up"]);
    host
}

fn links(ns: &NetNs) -> Vec<String> {
    ns.cmd(&["ip", "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn two_containers_one_network_ports_and_teardown() {
    if !require_root("two_containers_one_network_ports_and_teardown") {
        return;
    }
    let host = fake_host();
    let p = project(
        "pflow1",
        "services:\n  web: {image: x, ports: ['127.0.0.1:18480:80', '80']}\n  client: {image: x}\n",
    );
    let c1 = NetNs::new();
    let c2 = NetNs::new();
    let nets = plan(&p, &["web", "client"]).unwrap();
    let web_if = plan_interfaces(&p, service(&p, "web"), "pflow1-web-1", &nets, &[]).unwrap();
    let cl_if = plan_interfaces(
        &p,
        service(&p, "client"),
        "pflow1-client-1",
        &nets,
        &[IpAddr::V4(web_if[0].address)],
    )
    .unwrap();
    let mut in_use = PortsInUse::new();
    let ports = host
        .run(|| published_ports(service(&p, "web"), &web_if, &nets, &mut in_use))
        .unwrap();
    assert_eq!(ports.len(), 2);

    host.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        setup(&nl, "pflow1", &nets, &ports).await.unwrap();
        // Idempotent: a second `up` changes nothing.
        setup(&nl, "pflow1", &nets, &ports).await.unwrap();
        attach(&nl, c1.fd().as_fd(), &web_if, &nets).await.unwrap();
        attach(&nl, c2.fd().as_fd(), &cl_if, &nets).await.unwrap();
    });
    let route = c2.cmd(&["ip", "route", "show", "default"]);
    assert!(
        route.contains(&format!("via {}", nets[0].gateway)),
        "{route}"
    );

    let web_ip = web_if[0].address;
    let echo = Echo::tcp(&c1, SocketAddr::from((web_ip, 80)));
    // Container to container, on the bridge: the source is the client's own address.
    let answer = c2.tcp_query(SocketAddr::from((web_ip, 80))).unwrap();
    assert_eq!(peer_ip(&answer), cl_if[0].address.to_string(), "{answer}");
    // From the host on 127.0.0.1 through both published ports.
    for b in &ports {
        let answer = host
            .tcp_query(SocketAddr::from((Ipv4Addr::LOCALHOST, b.host_port)))
            .unwrap_or_else(|e| panic!("port {}: {e}", b.host_port));
        assert!(answer.ends_with(&format!("{web_ip}:80")), "{answer}");
    }
    // A port taken by this project is refused to another one, with nothing created.
    let other = [state("default", "pflow1x_default", "10.200.99.0/24")];
    let err = host.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        setup(&nl, "pflow1x", &other, &ports[..1])
            .await
            .unwrap_err()
    });
    assert!(
        err.to_string()
            .contains("host port 18480/tcp is already published by project pflow1"),
        "{err}"
    );
    assert!(!links(&host).contains(&other[0].bridge));
    drop(echo);

    host.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        let all: Vec<Interface> = web_if.iter().chain(&cl_if).cloned().collect();
        teardown(&nl, "pflow1", &nets, &all, &[]).await.unwrap();
        // Twice: idempotent.
        teardown(&nl, "pflow1", &nets, &all, &[]).await.unwrap();
    });
    assert_eq!(links(&host), ["lo"]);
    assert_eq!(host.cmd(&["nft", "list", "tables"]).trim(), "");
}

#[test]
fn two_networks_are_isolated_and_external_bridges_are_found() {
    if !require_root("two_networks_are_isolated_and_external_bridges_are_found") {
        return;
    }
    let host = fake_host();
    let p = project(
        "pflow2",
        "
services:
  a: {image: x, networks: [front]}
  b: {image: x, networks: [back]}
  both: {image: x, networks: [front, back, ext]}
networks:
  front: {}
  back: {driver_opts: {com.docker.network.driver.mtu: '1400'}}
  ext: {external: true, name: handmade}
",
    );
    host.cmd(&["ip", "link", "add", "handmade", "type", "bridge"]);
    host.cmd(&["ip", "addr", "add", "10.222.0.1/24", "dev", "handmade"]);
    host.cmd(&["ip", "link", "set", "handmade", "up"]);
    let (ca, cb, cboth) = (NetNs::new(), NetNs::new(), NetNs::new());
    let services = ["a", "b", "both"];
    let nets = host.block_on(|| async {
        let view = host_view(&p, &services).await.unwrap();
        plan_networks_on(&view, &pool(), &p, &services, &[], &[]).unwrap()
    });
    let ext = nets.iter().find(|n| n.key == "ext").unwrap();
    assert_eq!(
        (ext.bridge.as_str(), ext.subnet),
        ("handmade", net("10.222.0.0/24"))
    );

    let mut in_use = Vec::new();
    let mut plan_one = |svc: &str| {
        let ifs = plan_interfaces(&p, service(&p, svc), svc, &nets, &in_use).unwrap();
        in_use.extend(ifs.iter().flat_map(Interface::addresses));
        ifs
    };
    let (ia, ib, iboth) = (plan_one("a"), plan_one("b"), plan_one("both"));
    host.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        setup(&nl, "pflow2", &nets, &[]).await.unwrap();
        attach(&nl, ca.fd().as_fd(), &ia, &nets).await.unwrap();
        attach(&nl, cb.fd().as_fd(), &ib, &nets).await.unwrap();
        attach(&nl, cboth.fd().as_fd(), &iboth, &nets)
            .await
            .unwrap();
    });
    let mtu = cboth.cmd(&["ip", "link", "show", "dev", "eth0"]);
    assert!(
        mtu.contains("mtu 1400"),
        "back is eth0 (sorted by key): {mtu}"
    );

    let on_a = SocketAddr::from((ia[0].address, 7));
    let echo = Echo::tcp(&ca, on_a);
    assert!(cboth.tcp_query(on_a).is_ok(), "same network");
    assert!(cb.tcp_query(on_a).is_err(), "across networks must fail");
    drop(echo);

    host.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        let all: Vec<Interface> = ia.iter().chain(&ib).chain(&iboth).cloned().collect();
        teardown(&nl, "pflow2", &nets, &all, &[]).await.unwrap();
    });
    // The external bridge stays, everything of the project is gone.
    let mut left = links(&host);
    left.sort();
    assert_eq!(left, ["handmade", "lo"]);
    assert_eq!(host.cmd(&["nft", "list", "tables"]).trim(), "");
}

#[test]
fn attach_rolls_back_and_teardown_reports_every_error() {
    if !require_root("attach_rolls_back_and_teardown_reports_every_error") {
        return;
    }
    let host = fake_host();
    let c = NetNs::new();
    let p = project(
        "pflow3",
        "services: {a: {image: x, networks: [x, y]}}\nnetworks: {x: {}, y: {}}\n",
    );
    let nets = plan(&p, &["a"]).unwrap();
    let ifs = plan_interfaces(&p, service(&p, "a"), "a", &nets, &[]).unwrap();
    host.block_on(|| async {
        let nl = Netlink::connect().unwrap();
        // Only the first network's bridge exists: the second veth fails, the first is removed.
        setup(&nl, "pflow3", &nets[..1], &[]).await.unwrap();
        let err = attach(&nl, c.fd().as_fd(), &ifs, &nets).await.unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert_eq!(nl.link_index(&ifs[0].host_veth).await.unwrap(), None);
        // A bad project name: the table cannot be removed, the bridge still is.
        let err = teardown(&nl, "Bad Name", &nets, &ifs, &[])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ProjectError::Teardown { errors, .. } if errors.len() == 1),
            "{err}"
        );
        assert_eq!(nl.link_index(&nets[0].bridge).await.unwrap(), None);
        teardown(&nl, "pflow3", &nets, &ifs, &[]).await.unwrap();
    });
    assert_eq!(links(&host), ["lo"]);
    assert_eq!(host.cmd(&["nft", "list", "tables"]).trim(), "");
}

/// Conflicts name both sides: a subnet over another network's (by name) or over a route of
/// Docker's or Podman's, and a bridge name taken by another network or by a link of the host
/// that rcompose did not make (taking `docker0` over would replace Docker's address).
#[test]
fn conflicts_name_both_sides() {
    let p = project(
        "demo",
        "
services: {web: {image: x, networks: [a]}}
networks:
  a: {ipam: {config: [{subnet: 10.210.0.0/24}]}}
",
    );
    let others = [state("default", "other_default", "10.210.0.0/16")];
    let err = plan_networks_on(&HostView::default(), &pool(), &p, &["web"], &[], &others)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "network demo_a: subnet 10.210.0.0/24 overlaps subnet 10.210.0.0/16 of network other_default"
    );
    for (iface, owner) in [
        ("docker0", "a Docker network"),
        ("podman1", "a Podman network"),
    ] {
        let host = HostView {
            routes: vec![route(iface, "10.210.0.0/20")],
            links: Vec::new(),
            ..Default::default()
        };
        let err = plan_networks_on(&host, &pool(), &p, &["web"], &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains(iface) && err.contains(owner), "{err}");
    }

    let named = |bridge: &str| {
        project(
            "demo",
            &format!(
                "
services: {{web: {{image: x, networks: [a]}}}}
networks:
  a: {{driver_opts: {{com.docker.network.bridge.name: {bridge}}}}}
"
            ),
        )
    };
    let docker0 = HostView {
        routes: Vec::new(),
        links: vec![HostLink {
            name: "docker0".into(),
            kind: Some("bridge".into()),
            ..HostLink::default()
        }],
        ..Default::default()
    };
    let err = plan_networks_on(&docker0, &pool(), &named("docker0"), &["web"], &[], &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bridge name docker0 is already taken by a bridge of the host that rcompose did not make"),
        "{err}"
    );
    let mut theirs = state("default", "other_default", "10.211.0.0/24");
    theirs.bridge = "mybr".into();
    let err = plan_networks_on(
        &HostView::default(),
        &pool(),
        &named("mybr"),
        &["web"],
        &[],
        &[theirs.clone()],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("already taken by network other_default"),
        "{err}"
    );
    // Its own bridge, from a previous up, is no conflict.
    let mut mine = state("a", "demo_a", "10.212.0.0/24");
    mine.bridge = "mybr".into();
    let host = HostView {
        routes: Vec::new(),
        links: vec![HostLink {
            name: "mybr".into(),
            kind: Some("bridge".into()),
            ..HostLink::default()
        }],
        ..Default::default()
    };
    assert!(plan_networks_on(&host, &pool(), &named("mybr"), &["web"], &[mine], &[]).is_ok());
}

/// Docker's bridge options: `enable_icc` and `enable_ip_masquerade` (Go booleans),
/// `host_binding_ipv4` (the host address of ports published without one); bad values are
/// named.
#[test]
fn bridge_driver_options() {
    let p = project(
        "demo",
        "
services:
  web: {image: x, networks: [quiet], ports: ['8080:80', '0.0.0.0:8081:81', '127.0.0.2:8082:82']}
networks:
  quiet:
    driver_opts:
      com.docker.network.bridge.enable_icc: 'false'
      com.docker.network.bridge.enable_ip_masquerade: '0'
      com.docker.network.bridge.host_binding_ipv4: 127.0.0.1
",
    );
    let nets = plan(&p, &["web"]).unwrap();
    assert_eq!(
        nets[0].options,
        BridgeOptions {
            no_icc: true,
            no_masquerade: true,
            host_binding: Some(ip("127.0.0.1")),
        }
    );
    let web = service(&p, "web");
    let ifaces = plan_interfaces(&p, web, "c", &nets, &[]).unwrap();
    let ports = published_ports(web, &ifaces, &nets, &mut PortsInUse::new()).unwrap();
    let hosts: Vec<Option<IpAddr>> = ports.iter().map(|b| b.host_ip).collect();
    let v4 = |s| Some(IpAddr::V4(ip(s)));
    assert_eq!(hosts, [v4("127.0.0.1"), None, v4("127.0.0.2")]);

    for (option, value) in [
        ("com.docker.network.bridge.enable_icc", "nope"),
        ("com.docker.network.bridge.host_binding_ipv4", "::1"),
    ] {
        let bad = project(
            "demo",
            &format!(
                "services: {{web: {{image: x, networks: [n]}}}}\nnetworks: {{n: {{driver_opts: {{{option}: '{value}'}}}}}}\n"
            ),
        );
        let err = plan(&bad, &["web"]).unwrap_err().to_string();
        assert!(err.contains(option) && err.contains(value), "{err}");
    }
}

/// A project's networks planned one at a time (an `up` plans the networks of the services it
/// starts, a network per step): a later network never gets the subnet of one planned before,
/// whose route is on the project's own bridge. (Before: both got the first pool subnet.)
#[test]
fn networks_planned_one_at_a_time_get_different_subnets() {
    let p = project(
        "demo",
        "
services:
  a: {image: x, networks: [one]}
  b: {image: x, networks: [two]}
networks: {one: {}, two: {}}
",
    );
    let first = plan(&p, &["a"]).unwrap();
    let host = HostView {
        routes: vec![route(&first[0].bridge, &first[0].subnet.to_string())],
        links: Vec::new(),
        ..Default::default()
    };
    let second = plan_networks_on(&host, &pool(), &p, &["b"], &first, &[]).unwrap();
    let two = second.iter().find(|n| n.key == "two").expect("two planned");
    assert_ne!(two.subnet, first[0].subnet);
    assert!(!two.subnet.overlaps(first[0].subnet));
    // Planning `a` again keeps its subnet.
    let again = plan_networks_on(&host, &pool(), &p, &["a"], &first, &[]).unwrap();
    assert_eq!(again, first);
}

/// The macvlan driver: `parent` is required and must exist; the network may sit on the
/// parent's own subnet (its route is no conflict); no link is made (`bridge` only keys the
/// registry); ports cannot be published through it; `internal` is refused.
#[test]
fn macvlan_networks() {
    let compose = |opts: &str| {
        project(
            "demo",
            &format!(
                "
services: {{web: {{image: x, networks: [lan]}}}}
networks:
  lan:
    driver: macvlan
    driver_opts: {{{opts}}}
    ipam: {{config: [{{subnet: 192.168.50.0/24, gateway: 192.168.50.1}}]}}
"
            ),
        )
    };
    let host = HostView {
        routes: vec![route("eth9", "192.168.50.0/24")],
        links: vec![HostLink {
            name: "eth9".into(),
            ..HostLink::default()
        }],
        ..Default::default()
    };
    let p = compose("parent: eth9, macvlan_mode: private");
    let nets = plan_networks_on(&host, &pool(), &p, &["web"], &[], &[]).unwrap();
    assert_eq!(
        nets[0].driver,
        NetDriver::Macvlan {
            parent: "eth9".into(),
            mode: "private".into()
        }
    );
    assert_eq!(nets[0].subnet, net("192.168.50.0/24"));
    assert!(nets[0].bridge.starts_with("mv-") && !names::is_rcompose_bridge(&nets[0].bridge));
    let err = plan_networks_on(&HostView::default(), &pool(), &p, &["web"], &[], &[])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "network lan: parent interface eth9 does not exist on this host"
    );
    let err = plan_networks_on(&host, &pool(), &compose(""), &["web"], &[], &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs driver_opts parent"), "{err}");
    let err = plan_networks_on(
        &host,
        &pool(),
        &compose("parent: eth9, macvlan_mode: loud"),
        &["web"],
        &[],
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("macvlan_mode") && err.contains("loud"),
        "{err}"
    );

    let web = service(&p, "web");
    let ifaces = plan_interfaces(&p, web, "c", &nets, &[]).unwrap();
    assert!(ifaces[0].default_gateway);
    let mut published = web.clone();
    published.ports = service(
        &project("demo", "services: {web: {image: x, ports: ['8080:80']}}\n"),
        "web",
    )
    .ports
    .clone();
    let err = published_ports(&published, &ifaces, &nets, &mut PortsInUse::new()).unwrap_err();
    assert!(err.to_string().contains("cannot publish ports"), "{err}");
}

/// The ipvlan driver: as macvlan, with `ipvlan_mode` l2, l3 or l3s and `ipvlan_flag` bridge,
/// private or vepa; the registry key is its own; errors name the driver.
#[test]
fn ipvlan_networks() {
    let compose = |opts: &str, extra: &str| {
        project(
            "demo",
            &format!(
                "
services: {{web: {{image: x, networks: [lan]}}}}
networks:
  lan:
    driver: ipvlan
    driver_opts: {{{opts}}}
    ipam: {{config: [{{subnet: 192.168.60.0/24, gateway: 192.168.60.1}}]}}
{extra}"
            ),
        )
    };
    let host = HostView {
        routes: vec![route("eth9", "192.168.60.0/24")],
        links: vec![HostLink {
            name: "eth9".into(),
            ..HostLink::default()
        }],
        ..Default::default()
    };
    let plan_of = |p: &Project| plan_networks_on(&host, &pool(), p, &["web"], &[], &[]);
    let nets = plan_of(&compose(
        "parent: eth9, ipvlan_mode: l3, ipvlan_flag: private",
        "",
    ))
    .unwrap();
    assert_eq!(
        nets[0].driver,
        NetDriver::Ipvlan {
            parent: "eth9".into(),
            mode: "l3".into(),
            flag: "private".into()
        }
    );
    assert_eq!(nets[0].driver.name(), "ipvlan");
    assert_eq!(nets[0].driver.parent(), Some("eth9"));
    assert!(nets[0].bridge.starts_with("iv-") && !names::is_rcompose_bridge(&nets[0].bridge));
    // Kept in the state and read back.
    let json = serde_json::to_string(&nets[0]).unwrap();
    let back: NetworkState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, nets[0]);
    let defaults = plan_of(&compose("parent: eth9", "")).unwrap();
    assert_eq!(
        defaults[0].driver,
        NetDriver::Ipvlan {
            parent: "eth9".into(),
            mode: String::new(),
            flag: String::new()
        }
    );
    for (opts, want) in [
        ("", "network lan: ipvlan needs driver_opts parent"),
        (
            "parent: eth9, ipvlan_mode: l4",
            "ipvlan_mode=\"l4\": expected l2, l3 or l3s",
        ),
        (
            "parent: eth9, ipvlan_flag: loud",
            "ipvlan_flag=\"loud\": expected bridge, private or vepa",
        ),
    ] {
        let err = plan_of(&compose(opts, "")).unwrap_err().to_string();
        assert!(err.contains(want), "{opts}: {err}");
    }
    let internal = compose("parent: eth9", "    internal: true\n");
    let err = plan_of(&internal).unwrap_err().to_string();
    assert!(
        err.contains("internal: true is not supported with the ipvlan driver"),
        "{err}"
    );
}

/// A chosen bridge name is a link name and a directory of the network registry: `.` and `..`
/// are refused.
#[test]
fn bridge_names_cannot_be_dot_or_dot_dot() {
    for bad in [".", ".."] {
        let p = project(
            "demo",
            &format!(
                "services: {{web: {{image: x, networks: [a]}}}}\nnetworks: {{a: {{driver_opts: {{com.docker.network.bridge.name: '{bad}'}}}}}}\n"
            ),
        );
        let err = plan(&p, &["web"]).unwrap_err().to_string();
        assert!(err.contains("not . or .."), "{err}");
    }
}

const IPV6: &str = "
services:
  web: {image: x, networks: {v6: {priority: 10}, v4: {}}, ports: ['8080:80', '[::1]:8081:81', '[fd00::2]:8082:82']}
  db:
    image: x
    networks:
      v6s: {ipv6_address: 'fd00:55::10'}
networks:
  v6: {enable_ipv6: true}
  v4: {}
  v6s:
    enable_ipv6: true
    ipam: {config: [{subnet: 10.55.0.0/24}, {subnet: 'fd00:55::/64', gateway: 'fd00:55::fe'}]}
";

#[test]
fn ipv6_networks_get_subnets_addresses_and_names() {
    let p = project("demo", IPV6);
    let host = HostView {
        routes6: vec![ipam6::HostRoute6 {
            iface: "eth0".into(),
            net: "fd12:3456:789a::/64".parse().unwrap(),
        }],
        pool6: Some("fd12:3456:789a::/48".parse().unwrap()),
        ..Default::default()
    };
    let nets = plan_networks_on(&host, &pool(), &p, &["web", "db"], &[], &[]).unwrap();
    let by_key = |k: &str| nets.iter().find(|n| n.key == k).unwrap();
    // Automatic: the pool's first /64 the host does not route.
    let v6 = by_key("v6").ipv6.clone().unwrap();
    assert_eq!(v6.subnet.to_string(), "fd12:3456:789a:1::/64");
    assert_eq!(v6.gateway.to_string(), "fd12:3456:789a:1::1");
    assert!(!v6.configured);
    assert!(by_key("v4").ipv6.is_none());
    let v6s = by_key("v6s").ipv6.clone().unwrap();
    assert_eq!(v6s.gateway.to_string(), "fd00:55::fe");
    assert!(v6s.configured);

    // Kept when planned again with the previous state.
    let again = plan_networks_on(&host, &pool(), &p, &["web", "db"], &nets, &[]).unwrap();
    assert_eq!(again, nets);

    let web = plan_interfaces(&p, service(&p, "web"), "c1", &nets, &[]).unwrap();
    let on = |ifs: &[Interface], k: &str| ifs.iter().find(|i| i.network == k).cloned().unwrap();
    assert_eq!(
        on(&web, "v6").address6.unwrap().to_string(),
        "fd12:3456:789a:1::2"
    );
    assert_eq!(on(&web, "v4").address6, None);
    // The next container skips the address in use.
    let used: Vec<IpAddr> = web.iter().flat_map(Interface::addresses).collect();
    let web2 = plan_interfaces(&p, service(&p, "web"), "c2", &nets, &used).unwrap();
    assert_eq!(
        on(&web2, "v6").address6.unwrap().to_string(),
        "fd12:3456:789a:1::3"
    );
    let db = plan_interfaces(&p, service(&p, "db"), "c3", &nets, &[]).unwrap();
    assert_eq!(db[0].address6.unwrap().to_string(), "fd00:55::10");

    // DNS answers AAAA with it; /etc/hosts lists it after the IPv4 addresses.
    let dns = dns_entries(
        service(&p, "web"),
        "demo-web-1",
        &web,
        &ResolvConf::default(),
    )
    .unwrap();
    let v6_endpoint = dns.endpoints.iter().find(|e| e.network == "v6").unwrap();
    assert_eq!(v6_endpoint.address6, on(&web, "v6").address6);
    let (_, hosts) = container_files(
        service(&p, "web"),
        "h",
        &web,
        &nets,
        &ResolvConf::default(),
        false,
    )
    .unwrap();
    assert!(hosts.contains("::1\tlocalhost"), "{hosts}");
    assert!(hosts.contains("fd12:3456:789a:1::2\th"), "{hosts}");

    // Ports: the default one also to the IPv6 address; IPv6 host addresses as given.
    let ports = published_ports(service(&p, "web"), &web, &nets, &mut PortsInUse::new()).unwrap();
    assert_eq!(ports[0].host_ip, None);
    assert_eq!(ports[0].container_ip6, on(&web, "v6").address6);
    assert_eq!(ports[1].host_ip, Some("::1".parse().unwrap()));
    assert_eq!(ports[2].host_ip, Some("fd00::2".parse().unwrap()));
}

#[test]
fn ipv6_errors_name_the_network_and_service() {
    let cases = [
        (
            "services: {a: {image: x, networks: {n: {ipv6_address: 'fd00::5'}}}}\nnetworks: {n: {}}\n",
            "service a: ipv6_address \"fd00::5\" on network n: the network has no IPv6 (set enable_ipv6: true)",
        ),
        (
            "services: {a: {image: x, networks: {n: {ipv6_address: 'fd00::5'}}}}\nnetworks: {n: {enable_ipv6: true}}\n",
            "needs a network with an IPv6 subnet set in its ipam config",
        ),
        (
            "services: {a: {image: x, networks: {n: {ipv6_address: 'fd00:1::5'}}}}\nnetworks: {n: {enable_ipv6: true, ipam: {config: [{subnet: 'fd00::/64'}]}}}\n",
            "IPv6 address fd00:1::5 is outside subnet fd00::/64",
        ),
        (
            "services: {a: {image: x, networks: {n: {ipv6_address: 'nope'}}}}\nnetworks: {n: {enable_ipv6: true, ipam: {config: [{subnet: 'fd00::/64'}]}}}\n",
            "not an IPv6 address",
        ),
    ];
    for (yaml, want) in cases {
        let p = project("demo", yaml);
        let nets = plan(&p, &["a"]).unwrap();
        let err = plan_interfaces(&p, service(&p, "a"), "c", &nets, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{err}");
    }
    let p = project(
        "demo",
        "services: {a: {image: x, networks: [n]}}\nnetworks: {n: {enable_ipv6: true, ipam: {config: [{subnet: 'fd00::1/64'}]}}}\n",
    );
    let err = plan(&p, &["a"]).unwrap_err().to_string();
    assert_eq!(
        err,
        "network n: invalid IPv6 subnet fd00::1/64: it should be fd00::/64"
    );
    let p = project(
        "demo",
        "services: {a: {image: x, networks: [n]}}\nnetworks: {n: {driver: macvlan, enable_ipv6: true, driver_opts: {parent: eth0}}}\n",
    );
    let err = plan(&p, &["a"]).unwrap_err().to_string();
    assert!(
        err.contains("enable_ipv6: true is not supported with the macvlan driver"),
        "{err}"
    );
}
