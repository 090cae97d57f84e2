//! A container's /etc/resolv.conf and /etc/hosts, written as Docker writes them for containers
//! on user-defined networks.
//!
//! resolv.conf names the container's embedded DNS server (`127.0.0.11`, in its own network
//! namespace) as the only nameserver; the
//! host's search domains and options carry over unless compose's `dns_search` / `dns_opt` replace
//! them, and `ndots:0` is added when no valid ndots is set, as Docker does with its internal
//! resolver. The host's nameservers (or compose `dns:`) are where that server forwards, not lines
//! of the container's file. With `network_mode: host` the container gets the host's file.
//!
//! /etc/hosts holds Docker's default lines, then `extra_hosts`, then the container's own
//! addresses with its hostname. `host-gateway` in `extra_hosts` stands for the address that
//! reaches the host from the container: the caller passes it (the gateway of the container's
//! first network, which is the bridge's address on the host).

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::compose::model::HostsList;

/// Where the host's resolver configuration lives.
pub const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
/// Where the host's static host table lives.
pub const HOST_HOSTS: &str = "/etc/hosts";
/// The `extra_hosts` value replaced by the address of the host.
pub const HOST_GATEWAY: &str = "host-gateway";

#[derive(Debug, thiserror::Error)]
pub enum ResolvError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("invalid dns server {value:?}: not an IP address")]
    DnsServer { value: String },
    #[error("invalid extra_hosts entry {host}={value}: not an IP address")]
    ExtraHost { host: String, value: String },
    #[error("extra_hosts entry {host}={HOST_GATEWAY}: no host gateway address is known for this container")]
    NoHostGateway { host: String },
}

/// What a resolv.conf says, in the parts that matter here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Parses like glibc: unknown keywords and unparsable nameservers are skipped, `#` and `;`
    /// start comments, and the last of `search` / `domain` wins.
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    // A scoped IPv6 address (fe80::1%eth0) cannot be a std address: skipped.
                    if let Some(ip) = words.next().and_then(|w| w.parse().ok()) {
                        conf.nameservers.push(ip);
                    }
                }
                Some("search") => conf.search = words.map(str::to_string).collect(),
                Some("domain") => conf.search = words.take(1).map(str::to_string).collect(),
                Some("options") => conf.options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
        conf
    }

    /// Reads and parses `path`; a missing file is an empty configuration, as for glibc.
    pub fn read(path: &Path) -> Result<ResolvConf, ResolvError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(ResolvConf::parse(&text)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(ResolvConf::default()),
            Err(source) => Err(ResolvError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// The nameservers as the DNS server's upstreams (port 53).
    pub fn upstreams(&self) -> Vec<SocketAddr> {
        upstreams(&self.nameservers)
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for ns in &self.nameservers {
            let _ = writeln!(out, "nameserver {ns}");
        }
        if !self.search.is_empty() {
            let _ = writeln!(out, "search {}", self.search.join(" "));
        }
        if !self.options.is_empty() {
            let _ = writeln!(out, "options {}", self.options.join(" "));
        }
        out
    }

    /// The value of option `name` (`ndots` in `ndots:2`), `Some("")` for a bare flag.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options.iter().find_map(|opt| {
            let (key, value) = opt.split_once(':').unwrap_or((opt, ""));
            (key == name).then_some(value)
        })
    }
}

/// Port-53 socket addresses of resolvers.
pub fn upstreams(nameservers: &[IpAddr]) -> Vec<SocketAddr> {
    nameservers
        .iter()
        .map(|&ip| SocketAddr::new(ip, super::dns::DNS_PORT))
        .collect()
}

/// Parses compose `dns:` entries.
pub fn parse_dns_servers(dns: &[String]) -> Result<Vec<IpAddr>, ResolvError> {
    dns.iter()
        .map(|value| {
            value.trim().parse().map_err(|_| ResolvError::DnsServer {
                value: value.clone(),
            })
        })
        .collect()
}

/// The search list after compose `dns_search`: none given keeps the host's, and `.` alone means
/// no search domain at all (Docker's convention).
fn search_override(host: &[String], dns_search: &[String]) -> Vec<String> {
    match dns_search {
        [] => host.to_vec(),
        [only] if only.trim() == "." => Vec::new(),
        given => given.to_vec(),
    }
}

/// The resolv.conf of a container on a user-defined network whose DNS server listens on
/// `gateway`.
pub fn container_resolv_conf(
    host: &ResolvConf,
    nameserver: Ipv4Addr,
    dns_search: &[String],
    dns_opt: &[String],
) -> ResolvConf {
    let options = if dns_opt.is_empty() {
        host.options.clone()
    } else {
        dns_opt.to_vec()
    };
    let mut conf = ResolvConf {
        nameservers: vec![IpAddr::V4(nameserver)],
        search: search_override(&host.search, dns_search),
        // An invalid ndots would make the stub ignore it; Docker drops it and uses its own.
        options: options
            .into_iter()
            .filter(|opt| match opt.strip_prefix("ndots:") {
                Some(value) => value.parse::<u32>().is_ok(),
                None => true,
            })
            .collect(),
    };
    // ndots:0 makes single-label names (services) go out as they are first, so a search
    // domain never turns `db` into an upstream query for `db.corp.example` before ours.
    if conf.option("ndots").is_none() {
        conf.options.push("ndots:0".into());
    }
    conf
}

/// The text of a container's resolv.conf on a user-defined network, with Docker-style comments
/// saying where other names go.
pub fn render_container_resolv_conf(conf: &ResolvConf, upstreams: &[SocketAddr]) -> String {
    let servers: Vec<String> = upstreams.iter().map(|u| u.ip().to_string()).collect();
    format!(
        "# Generated by rcompose.\n\n{}\n# ExtServers: [{}]\n",
        conf.render(),
        servers.join(" ")
    )
}

/// A `network_mode: host` container's resolv.conf: the host's file itself, unless compose
/// `dns`, `dns_search` or `dns_opt` replace some of it.
pub fn host_mode_resolv_conf(
    host_text: &str,
    dns: &[String],
    dns_search: &[String],
    dns_opt: &[String],
) -> Result<String, ResolvError> {
    if dns.is_empty() && dns_search.is_empty() && dns_opt.is_empty() {
        return Ok(host_text.to_string());
    }
    let mut conf = ResolvConf::parse(host_text);
    if !dns.is_empty() {
        conf.nameservers = parse_dns_servers(dns)?;
    }
    conf.search = search_override(&conf.search, dns_search);
    if !dns_opt.is_empty() {
        conf.options = dns_opt.to_vec();
    }
    Ok(conf.render())
}

/// What a container's /etc/hosts is made of.
#[derive(Debug, Clone, Copy)]
pub struct HostsFile<'a> {
    pub hostname: &'a str,
    /// Compose `domainname`; empty for none.
    pub domainname: &'a str,
    /// The container's addresses: one per network, and the IPv6 ones.
    pub addresses: &'a [IpAddr],
    pub extra_hosts: &'a HostsList,
    /// What `host-gateway` stands for; `None` makes its use an error.
    pub host_gateway: Option<IpAddr>,
    /// Whether the IPv6 default lines (and IPv6 extra hosts) are written: Docker leaves them out
    /// of containers without IPv6.
    pub ipv6: bool,
}

impl HostsFile<'_> {
    pub fn render(&self) -> Result<String, ResolvError> {
        let mut out = String::from("127.0.0.1\tlocalhost\n");
        if self.ipv6 {
            out.push_str(
                "::1\tlocalhost ip6-localhost ip6-loopback\n\
                 fe00::\tip6-localnet\n\
                 ff00::\tip6-mcastprefix\n\
                 ff02::1\tip6-allnodes\n\
                 ff02::2\tip6-allrouters\n",
            );
        }
        for (ip, host) in extra_host_lines(self.extra_hosts, self.host_gateway)? {
            if ip.is_ipv4() || self.ipv6 {
                let _ = writeln!(out, "{ip}\t{host}");
            }
        }
        let names = self.own_names();
        if !names.is_empty() {
            for ip in self.addresses {
                let _ = writeln!(out, "{ip}\t{names}");
            }
        }
        Ok(out)
    }

    /// `fqdn short` when the hostname has a domain (its own or `domainname`), else the hostname.
    fn own_names(&self) -> String {
        let fqdn = match (self.hostname, self.domainname) {
            (host, "") => host.to_string(),
            ("", _) => String::new(),
            (host, domain) => format!("{host}.{domain}"),
        };
        match fqdn.split_once('.') {
            Some((short, _)) if !short.is_empty() => format!("{fqdn} {short}"),
            _ => fqdn,
        }
    }
}

/// A `network_mode: host` container's /etc/hosts: the host's, with `extra_hosts` appended.
pub fn host_mode_hosts(
    host_text: &str,
    extra_hosts: &HostsList,
    host_gateway: Option<IpAddr>,
) -> Result<String, ResolvError> {
    let mut out = host_text.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for (ip, host) in extra_host_lines(extra_hosts, host_gateway)? {
        let _ = writeln!(out, "{ip}\t{host}");
    }
    Ok(out)
}

/// `extra_hosts` as (address, host) pairs, in the order given, one per address.
fn extra_host_lines(
    extra_hosts: &HostsList,
    host_gateway: Option<IpAddr>,
) -> Result<Vec<(IpAddr, &str)>, ResolvError> {
    let mut lines = Vec::new();
    for (host, values) in &extra_hosts.0 {
        for value in values {
            let value = value.trim();
            let ip = if value == HOST_GATEWAY {
                host_gateway.ok_or_else(|| ResolvError::NoHostGateway { host: host.clone() })?
            } else {
                // compose accepts IPv6 addresses in brackets: `myhost=[::1]`.
                let bare = value
                    .strip_prefix('[')
                    .and_then(|v| v.strip_suffix(']'))
                    .unwrap_or(value);
                bare.parse().map_err(|_| ResolvError::ExtraHost {
                    host: host.clone(),
                    value: value.to_string(),
                })?
            };
            lines.push((ip, host.as_str()));
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn hosts(entries: &[(&str, &[&str])]) -> HostsList {
        HostsList(
            entries
                .iter()
                .map(|(h, ips)| (h.to_string(), strings(ips)))
                .collect::<IndexMap<_, _>>(),
        )
    }

    const HOST: &str = "# managed by someone\n\
        nameserver 127.0.0.53\n\
        nameserver fe80::1%eth0\n\
        nameserver 2001:db8::53 # v6\n\
        domain ignored.example\n\
        search corp.example lab.example ; trailing comment\n\
        options edns0 trust-ad\n\
        options ndots:2\n\
        sortlist 10.0.0.0\n";

    #[test]
    fn parses_host_file() {
        let conf = ResolvConf::parse(HOST);
        assert_eq!(
            conf.nameservers,
            vec![
                "127.0.0.53".parse::<IpAddr>().unwrap(),
                "2001:db8::53".parse().unwrap()
            ]
        );
        assert_eq!(conf.search, strings(&["corp.example", "lab.example"]));
        assert_eq!(conf.options, strings(&["edns0", "trust-ad", "ndots:2"]));
        assert_eq!(conf.option("ndots"), Some("2"));
        assert_eq!(conf.option("edns0"), Some(""));
        assert_eq!(conf.option("rotate"), None);
        assert_eq!(
            conf.upstreams(),
            vec![
                "127.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::53]:53".parse().unwrap()
            ]
        );
        // the last of domain/search wins.
        assert_eq!(
            ResolvConf::parse("search a.example\ndomain b.example\n").search,
            strings(&["b.example"])
        );
        assert_eq!(ResolvConf::parse(""), ResolvConf::default());
    }

    #[test]
    fn read_missing_file_is_empty_and_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("resolv.conf");
        assert_eq!(ResolvConf::read(&missing).unwrap(), ResolvConf::default());
        // a directory cannot be read as a file.
        let error = ResolvConf::read(dir.path()).unwrap_err();
        assert!(error
            .to_string()
            .contains(&dir.path().display().to_string()));
        std::fs::write(&missing, "nameserver 10.1.2.3\n").unwrap();
        assert_eq!(
            ResolvConf::read(&missing).unwrap().nameservers,
            vec!["10.1.2.3".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn container_file_uses_gateway_and_host_search() {
        let host = ResolvConf::parse(HOST);
        let gateway = Ipv4Addr::new(172, 20, 0, 1);
        let conf = container_resolv_conf(&host, gateway, &[], &[]);
        assert_eq!(
            conf.render(),
            "nameserver 172.20.0.1\nsearch corp.example lab.example\noptions edns0 trust-ad ndots:2\n"
        );
        // without ndots from the host, Docker's ndots:0.
        let plain = ResolvConf::parse("nameserver 10.0.0.2\nsearch x.example\n");
        assert_eq!(
            container_resolv_conf(&plain, gateway, &[], &[]).render(),
            "nameserver 172.20.0.1\nsearch x.example\noptions ndots:0\n"
        );
        // an invalid ndots is replaced.
        let bad = ResolvConf::parse("options ndots:x rotate\n");
        assert_eq!(
            container_resolv_conf(&bad, gateway, &[], &[]).options,
            strings(&["rotate", "ndots:0"])
        );
    }

    #[test]
    fn compose_overrides_search_and_options() {
        let host = ResolvConf::parse(HOST);
        let gateway = Ipv4Addr::new(172, 20, 0, 1);
        let conf = container_resolv_conf(
            &host,
            gateway,
            &strings(&["svc.example"]),
            &strings(&["timeout:1", "attempts:2"]),
        );
        assert_eq!(conf.search, strings(&["svc.example"]));
        assert_eq!(
            conf.options,
            strings(&["timeout:1", "attempts:2", "ndots:0"])
        );
        let conf = container_resolv_conf(&host, gateway, &strings(&["."]), &strings(&["ndots:5"]));
        assert!(conf.search.is_empty());
        assert_eq!(conf.options, strings(&["ndots:5"]));
        assert_eq!(conf.render(), "nameserver 172.20.0.1\noptions ndots:5\n");

        let text = render_container_resolv_conf(&conf, &host.upstreams());
        assert!(text.starts_with("# Generated by rcompose.\n"));
        assert!(text.contains("\nnameserver 172.20.0.1\n"));
        assert!(text.ends_with("# ExtServers: [127.0.0.53 2001:db8::53]\n"));
    }

    #[test]
    fn host_mode_keeps_host_file_unless_overridden() {
        assert_eq!(host_mode_resolv_conf(HOST, &[], &[], &[]).unwrap(), HOST);
        let text = host_mode_resolv_conf(HOST, &strings(&["10.9.9.9", " ::1 "]), &[], &[]).unwrap();
        assert_eq!(
            text,
            "nameserver 10.9.9.9\nnameserver ::1\nsearch corp.example lab.example\noptions edns0 trust-ad ndots:2\n"
        );
        let error = host_mode_resolv_conf(HOST, &strings(&["dns.example"]), &[], &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid dns server \"dns.example\": not an IP address"
        );
        assert_eq!(
            parse_dns_servers(&strings(&["1.1.1.1"])).unwrap(),
            vec!["1.1.1.1".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn hosts_file_like_docker() {
        let extra = hosts(&[
            ("db.example", &["10.1.0.5"]),
            ("host.docker.internal", &[HOST_GATEWAY]),
            ("v6", &["[::1]", "10.1.0.6"]),
        ]);
        let addresses =
            [Ipv4Addr::new(172, 20, 0, 3), Ipv4Addr::new(172, 21, 0, 3)].map(IpAddr::V4);
        let file = HostsFile {
            hostname: "web",
            domainname: "",
            addresses: &addresses,
            extra_hosts: &extra,
            host_gateway: Some(IpAddr::V4(Ipv4Addr::new(172, 20, 0, 1))),
            ipv6: true,
        };
        assert_eq!(
            file.render().unwrap(),
            "127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::\tip6-localnet\n\
             ff00::\tip6-mcastprefix\n\
             ff02::1\tip6-allnodes\n\
             ff02::2\tip6-allrouters\n\
             10.1.0.5\tdb.example\n\
             172.20.0.1\thost.docker.internal\n\
             ::1\tv6\n\
             10.1.0.6\tv6\n\
             172.20.0.3\tweb\n\
             172.21.0.3\tweb\n"
        );
        let no_v6 = HostsFile {
            ipv6: false,
            domainname: "corp.example",
            ..file
        };
        assert_eq!(
            no_v6.render().unwrap(),
            "127.0.0.1\tlocalhost\n\
             10.1.0.5\tdb.example\n\
             172.20.0.1\thost.docker.internal\n\
             10.1.0.6\tv6\n\
             172.20.0.3\tweb.corp.example web\n\
             172.21.0.3\tweb.corp.example web\n"
        );
        let fqdn = HostsFile {
            hostname: "api.corp.example",
            domainname: "",
            ..no_v6
        };
        assert!(fqdn
            .render()
            .unwrap()
            .ends_with("172.21.0.3\tapi.corp.example api\n"));
    }

    #[test]
    fn hosts_file_errors() {
        let addresses = [IpAddr::V4(Ipv4Addr::new(172, 20, 0, 3))];
        let gateway_only = hosts(&[("h", &[HOST_GATEWAY])]);
        let file = HostsFile {
            hostname: "web",
            domainname: "",
            addresses: &addresses,
            extra_hosts: &gateway_only,
            host_gateway: None,
            ipv6: false,
        };
        assert_eq!(
            file.render().unwrap_err().to_string(),
            "extra_hosts entry h=host-gateway: no host gateway address is known for this container"
        );
        let bad = hosts(&[("h", &["not-an-ip"])]);
        let file = HostsFile {
            extra_hosts: &bad,
            ..file
        };
        assert_eq!(
            file.render().unwrap_err().to_string(),
            "invalid extra_hosts entry h=not-an-ip: not an IP address"
        );
    }

    #[test]
    fn host_mode_hosts_appends_extra_hosts() {
        let extra = hosts(&[("gw", &[HOST_GATEWAY])]);
        let gateway = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(
            host_mode_hosts("127.0.0.1 localhost", &extra, gateway).unwrap(),
            "127.0.0.1 localhost\n127.0.0.1\tgw\n"
        );
        assert_eq!(
            host_mode_hosts("", &HostsList::default(), None).unwrap(),
            ""
        );
    }
}
