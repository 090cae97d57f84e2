//! The name table the DNS server answers from: per container, its address and names on each
//! network, plus the resolvers its own `dns:` asks for.
//!
//! Writers (the supervisor starting, restarting and removing containers) are rare; readers (every
//! query) are frequent. So a write rebuilds an immutable [`Index`] and swaps it in, and a query
//! takes the current one under a lock held only for an `Arc` clone.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};

/// Time to live of local answers, as Docker's embedded DNS sets it.
pub const TTL: u32 = 600;

/// One container's attachment to one network.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    /// The network's key (its compose name or full name): also the suffix of `name.network`.
    pub network: String,
    pub address: Ipv4Addr,
    /// Its IPv6 address, on a network with `enable_ipv6` (answered to AAAA queries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<Ipv6Addr>,
    /// Names this endpoint answers to on this network: service name, container name, hostname,
    /// aliases. The first is the canonical one, given in answers to reverse (PTR) queries.
    pub names: Vec<String>,
}

impl Endpoint {
    /// The names a compose container answers to on a network: its container name (canonical),
    /// its service, its hostname and the network's aliases, without repeats.
    pub fn for_service(
        network: &str,
        address: Ipv4Addr,
        container_name: &str,
        service: &str,
        hostname: Option<&str>,
        aliases: &[String],
    ) -> Endpoint {
        let mut names: Vec<String> = Vec::new();
        let given = [container_name, service]
            .into_iter()
            .chain(hostname)
            .chain(aliases.iter().map(String::as_str));
        for name in given {
            if !name.is_empty() && !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                names.push(name.to_string());
            }
        }
        Endpoint {
            network: network.to_string(),
            address,
            address6: None,
            names,
        }
    }
}

/// What the DNS server knows of one container.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContainerDns {
    pub endpoints: Vec<Endpoint>,
    /// The container's own resolvers (compose `dns:`); empty means the host's.
    pub upstreams: Vec<SocketAddr>,
    /// Search domains of the container's resolv.conf: `web.example.com` asked by a container
    /// whose search list has `example.com` is answered as `web`.
    pub search: Vec<String>,
    /// Compose `links`: (alias, service) pairs this container alone resolves.
    #[serde(default)]
    pub links: Vec<(String, String)>,
}

/// The outcome of looking a name up for a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The source address is no container's: it gets no answer at all.
    UnknownClient,
    /// No container on the client's networks carries the name: the query goes upstream.
    NotFound,
    /// Every address the name has on the first of the client's networks that knows it.
    Found(Vec<Ipv4Addr>),
}

/// The shared table. Cloning is cheap and clones see each other's updates.
#[derive(Debug, Clone, Default)]
pub struct DnsTable {
    state: Arc<RwLock<State>>,
}

#[derive(Debug, Default)]
struct State {
    containers: BTreeMap<String, ContainerDns>,
    default_upstreams: Vec<SocketAddr>,
    index: Arc<Index>,
}

/// A client as seen from one of its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Client {
    /// The networks it may resolve on, the one of the querying address first.
    pub networks: Vec<String>,
    pub upstreams: Vec<SocketAddr>,
    pub search: Vec<String>,
    /// Link alias -> the service it names (normalized).
    pub links: Vec<(String, String)>,
}

/// The addresses of a name on one network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Addresses {
    pub v4: Vec<Ipv4Addr>,
    /// Those of the containers that have IPv6 on the network (AAAA answers).
    pub v6: Vec<Ipv6Addr>,
}

/// An immutable view of the table, built on every update.
#[derive(Debug, Default)]
pub(crate) struct Index {
    clients: HashMap<Ipv4Addr, Client>,
    /// The same clients by their key in the table (a container's own listener knows it).
    containers: HashMap<String, Client>,
    /// (network, lower-case name) -> addresses, in container order, without duplicates.
    names: HashMap<(String, String), Addresses>,
    /// address (IPv4 or IPv6) -> (network, canonical name).
    reverse: HashMap<IpAddr, Vec<(String, String)>>,
    default_upstreams: Vec<SocketAddr>,
}

impl DnsTable {
    pub fn new() -> DnsTable {
        DnsTable::default()
    }

    /// Adds or replaces a container's entries (a restart with a new address replaces the old).
    pub fn upsert(&self, container: &str, dns: ContainerDns) {
        self.update(|state| {
            state.containers.insert(container.to_string(), dns);
        });
    }

    /// Drops a container's entries; unknown containers are ignored.
    pub fn remove(&self, container: &str) {
        self.update(|state| {
            state.containers.remove(container);
        });
    }

    /// The resolvers used for containers without `dns:` (the host's nameservers).
    pub fn set_default_upstreams(&self, upstreams: Vec<SocketAddr>) {
        self.update(|state| state.default_upstreams = upstreams);
    }

    /// Looks `name` up as `container` (its key) would see it.
    pub fn lookup_for(&self, container: &str, name: &str) -> Lookup {
        let index = self.snapshot();
        match index.container(container) {
            None => Lookup::UnknownClient,
            Some(view) => match index.resolve(view, name) {
                Some(addresses) => Lookup::Found(addresses.v4.clone()),
                None => Lookup::NotFound,
            },
        }
    }

    /// Replaces every entry whose key starts with `prefix` by `entries` (keys with that
    /// prefix): what a refresh learnt of other projects' containers.
    pub fn replace_group(&self, prefix: &str, entries: Vec<(String, ContainerDns)>) {
        self.update(|state| {
            state.containers.retain(|key, _| !key.starts_with(prefix));
            for (key, dns) in entries {
                state.containers.insert(key, dns);
            }
        });
    }

    /// Looks `name` up as the container at `client` would see it.
    pub fn lookup(&self, client: IpAddr, name: &str) -> Lookup {
        let index = self.snapshot();
        match index.client(client) {
            None => Lookup::UnknownClient,
            Some(view) => match index.resolve(view, name) {
                Some(addresses) => Lookup::Found(addresses.v4.clone()),
                None => Lookup::NotFound,
            },
        }
    }

    pub(crate) fn snapshot(&self) -> Arc<Index> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&state.index)
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        // A panic elsewhere while holding the lock leaves consistent data (every write replaces
        // whole values), so a poisoned lock is still usable.
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        change(&mut state);
        state.index = Arc::new(Index::build(&state.containers, &state.default_upstreams));
    }
}

/// Lower case without the trailing dot: the form names are stored and compared in.
pub(crate) fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Index {
    fn build(
        containers: &BTreeMap<String, ContainerDns>,
        default_upstreams: &[SocketAddr],
    ) -> Index {
        let mut index = Index {
            default_upstreams: default_upstreams.to_vec(),
            ..Index::default()
        };
        for (key, dns) in containers {
            let search: Vec<String> = dns
                .search
                .iter()
                .map(|domain| normalize(domain))
                .filter(|domain| !domain.is_empty())
                .collect();
            let links: Vec<(String, String)> = dns
                .links
                .iter()
                .map(|(alias, target)| (normalize(alias), normalize(target)))
                .collect();
            let mut networks: Vec<String> = Vec::new();
            for endpoint in &dns.endpoints {
                if !networks.contains(&endpoint.network) {
                    networks.push(endpoint.network.clone());
                }
            }
            index.containers.insert(
                key.clone(),
                Client {
                    networks,
                    upstreams: dns.upstreams.clone(),
                    search: search.clone(),
                    links: links.clone(),
                },
            );
            for endpoint in &dns.endpoints {
                // The querying address's network first: its answers are the ones reachable
                // through the interface the query came from.
                let mut networks = vec![endpoint.network.clone()];
                for other in &dns.endpoints {
                    if !networks.contains(&other.network) {
                        networks.push(other.network.clone());
                    }
                }
                index.clients.insert(
                    endpoint.address,
                    Client {
                        networks,
                        upstreams: dns.upstreams.clone(),
                        search: search.clone(),
                        links: links.clone(),
                    },
                );
                for name in &endpoint.names {
                    let name = normalize(name);
                    if name.is_empty() {
                        continue;
                    }
                    let addresses = index
                        .names
                        .entry((endpoint.network.clone(), name))
                        .or_default();
                    if !addresses.v4.contains(&endpoint.address) {
                        addresses.v4.push(endpoint.address);
                    }
                    if let Some(v6) = endpoint.address6 {
                        if !addresses.v6.contains(&v6) {
                            addresses.v6.push(v6);
                        }
                    }
                }
                if let Some(canonical) = endpoint.names.first() {
                    let addresses = [
                        Some(IpAddr::V4(endpoint.address)),
                        endpoint.address6.map(IpAddr::V6),
                    ];
                    for address in addresses.into_iter().flatten() {
                        index
                            .reverse
                            .entry(address)
                            .or_default()
                            .push((endpoint.network.clone(), normalize(canonical)));
                    }
                }
            }
        }
        index
    }

    /// The container behind a source address. Only IPv4 clients exist (no IPv6 on our networks);
    /// an IPv4-mapped IPv6 address counts as IPv4.
    pub(crate) fn client(&self, src: IpAddr) -> Option<&Client> {
        let v4 = match src {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(v6) => v6.to_ipv4_mapped()?,
        };
        self.clients.get(&v4)
    }

    /// The container with key `container`, its first network first.
    pub(crate) fn container(&self, container: &str) -> Option<&Client> {
        self.containers.get(container)
    }

    /// Where to forward the client's other queries.
    pub(crate) fn upstreams<'a>(&'a self, client: &'a Client) -> &'a [SocketAddr] {
        if client.upstreams.is_empty() {
            &self.default_upstreams
        } else {
            &client.upstreams
        }
    }

    /// The addresses of `name` on the client's networks: the name itself, the name without one
    /// of the client's search domains, and `name.network` for one of the client's networks.
    pub(crate) fn resolve(&self, client: &Client, name: &str) -> Option<&Addresses> {
        let mut name = normalize(name);
        if name.is_empty() {
            return None;
        }
        // A link alias stands for the service it names (for the linking container only).
        if let Some((_, target)) = client.links.iter().find(|(alias, _)| *alias == name) {
            name = target.clone();
        }
        let mut candidates = vec![name.as_str()];
        for domain in &client.search {
            if let Some(short) = name.strip_suffix(domain.as_str()) {
                if let Some(short) = short.strip_suffix('.').filter(|s| !s.is_empty()) {
                    candidates.push(short);
                }
            }
        }
        for candidate in candidates {
            for network in &client.networks {
                if let Some(found) = self.on_network(network, candidate) {
                    return Some(found);
                }
            }
            // `name.network`: network keys may hold dots, so try every split.
            for (dot, _) in candidate.match_indices('.') {
                let (short, network) = (&candidate[..dot], &candidate[dot + 1..]);
                let network = client
                    .networks
                    .iter()
                    .find(|n| n.eq_ignore_ascii_case(network));
                if let Some(found) = network.and_then(|n| self.on_network(n, short)) {
                    return Some(found);
                }
            }
        }
        None
    }

    /// The canonical name of `address`, when it is on one of the client's networks.
    pub(crate) fn reverse(&self, client: &Client, address: IpAddr) -> Option<&str> {
        let entries = self.reverse.get(&address)?;
        client.networks.iter().find_map(|network| {
            entries
                .iter()
                .find(|(n, _)| n == network)
                .map(|(_, name)| name.as_str())
        })
    }

    fn on_network(&self, network: &str, name: &str) -> Option<&Addresses> {
        self.names
            .get(&(network.to_string(), name.to_string()))
            .filter(|addresses| !addresses.v4.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// front on A and B, web x2 on A, db on B, cache on C alone.
    fn table() -> DnsTable {
        let table = DnsTable::new();
        table.upsert(
            "p-front-1",
            container(vec![
                endpoint("a", "10.0.1.2", &["front", "p-front-1"]),
                endpoint("b", "10.0.2.2", &["front", "p-front-1"]),
            ]),
        );
        table.upsert(
            "p-web-1",
            container(vec![endpoint("a", "10.0.1.3", &["web", "p-web-1", "www"])]),
        );
        table.upsert(
            "p-web-2",
            container(vec![endpoint("a", "10.0.1.4", &["web", "p-web-2"])]),
        );
        table.upsert(
            "p-db-1",
            container(vec![endpoint("b", "10.0.2.3", &["db", "p-db-1"])]),
        );
        table.upsert(
            "p-cache-1",
            container(vec![endpoint("c", "10.0.3.2", &["cache", "p-cache-1"])]),
        );
        table
    }

    fn found(addresses: &[&str]) -> Lookup {
        Lookup::Found(addresses.iter().map(|a| ip(a)).collect())
    }

    fn from(address: &str) -> IpAddr {
        IpAddr::V4(ip(address))
    }

    #[test]
    fn replicas_return_every_address() {
        let table = table();
        assert_eq!(
            table.lookup(from("10.0.1.2"), "web"),
            found(&["10.0.1.3", "10.0.1.4"])
        );
        assert_eq!(
            table.lookup(from("10.0.1.2"), "p-web-2"),
            found(&["10.0.1.4"])
        );
        assert_eq!(table.lookup(from("10.0.1.4"), "www"), found(&["10.0.1.3"]));
    }

    #[test]
    fn client_resolves_only_its_networks() {
        let table = table();
        // front is on A and B: both are visible, from either of its addresses.
        assert_eq!(table.lookup(from("10.0.1.2"), "db"), found(&["10.0.2.3"]));
        assert!(table.lookup(from("10.0.2.2"), "web").is_found());
        // web is on A only: db (B) and cache (C) do not exist for it.
        assert_eq!(table.lookup(from("10.0.1.3"), "db"), Lookup::NotFound);
        assert_eq!(table.lookup(from("10.0.1.3"), "cache"), Lookup::NotFound);
        assert_eq!(table.lookup(from("10.0.3.2"), "front"), Lookup::NotFound);
        // nor through the `name.network` form.
        assert_eq!(table.lookup(from("10.0.1.3"), "db.b"), Lookup::NotFound);
    }

    #[test]
    fn querying_network_is_preferred() {
        let table = table();
        // db sees front on B only; web sees it on A only.
        assert_eq!(
            table.lookup(from("10.0.2.3"), "front"),
            found(&["10.0.2.2"])
        );
        assert_eq!(
            table.lookup(from("10.0.1.3"), "front"),
            found(&["10.0.1.2"])
        );
        // front itself asks through A or B and gets its own address there.
        assert_eq!(
            table.lookup(from("10.0.2.2"), "front"),
            found(&["10.0.2.2"])
        );
        assert_eq!(
            table.lookup(from("10.0.1.2"), "front"),
            found(&["10.0.1.2"])
        );
    }

    #[test]
    fn case_trailing_dot_and_network_suffix() {
        let table = table();
        assert_eq!(
            table.lookup(from("10.0.1.2"), "WeB."),
            found(&["10.0.1.3", "10.0.1.4"])
        );
        assert_eq!(
            table.lookup(from("10.0.1.2"), "db.B."),
            found(&["10.0.2.3"])
        );
        assert_eq!(
            table.lookup(from("10.0.1.2"), "web.a"),
            found(&["10.0.1.3", "10.0.1.4"])
        );
        assert_eq!(table.lookup(from("10.0.1.2"), "."), Lookup::NotFound);
        assert_eq!(table.lookup(from("10.0.1.2"), ""), Lookup::NotFound);
        assert_eq!(
            table.lookup(from("10.0.1.2"), "example.com"),
            Lookup::NotFound
        );
    }

    #[test]
    fn search_domains_are_stripped() {
        let table = table();
        table.upsert(
            "p-web-1",
            ContainerDns {
                search: vec!["Corp.Example.".into()],
                ..container(vec![endpoint("a", "10.0.1.3", &["web", "p-web-1"])])
            },
        );
        assert_eq!(
            table.lookup(from("10.0.1.3"), "p-web-2.corp.example."),
            found(&["10.0.1.4"])
        );
        // only a whole-label suffix is a search domain, and only the client's own.
        assert_eq!(
            table.lookup(from("10.0.1.3"), "p-web-2corp.example"),
            Lookup::NotFound
        );
        assert_eq!(
            table.lookup(from("10.0.1.4"), "p-web-1.corp.example"),
            Lookup::NotFound
        );
    }

    #[test]
    fn updates_replace_and_remove() {
        let table = table();
        table.upsert(
            "p-web-2",
            container(vec![endpoint("a", "10.0.1.9", &["web", "p-web-2"])]),
        );
        assert_eq!(
            table.lookup(from("10.0.1.2"), "web"),
            found(&["10.0.1.3", "10.0.1.9"])
        );
        // the old address is no client any more.
        assert_eq!(table.lookup(from("10.0.1.4"), "web"), Lookup::UnknownClient);
        table.remove("p-web-1");
        table.remove("no-such-container");
        assert_eq!(table.lookup(from("10.0.1.2"), "web"), found(&["10.0.1.9"]));
        assert_eq!(table.lookup(from("10.0.1.2"), "www"), Lookup::NotFound);
        table.remove("p-web-2");
        assert_eq!(table.lookup(from("10.0.1.2"), "web"), Lookup::NotFound);
    }

    #[test]
    fn unknown_and_ipv6_clients() {
        let table = table();
        assert_eq!(table.lookup(from("10.9.9.9"), "web"), Lookup::UnknownClient);
        let mapped = IpAddr::V6(ip("10.0.1.3").to_ipv6_mapped());
        assert!(table.lookup(mapped, "web").is_found());
        assert_eq!(
            table.lookup("fd00::1".parse().unwrap(), "web"),
            Lookup::UnknownClient
        );
    }

    #[test]
    fn duplicate_names_in_one_container_give_one_address() {
        let table = DnsTable::new();
        table.upsert(
            "x",
            container(vec![endpoint(
                "a",
                "10.0.1.5",
                &["x", "X", "x.", "", "alias"],
            )]),
        );
        assert_eq!(table.lookup(from("10.0.1.5"), "x"), found(&["10.0.1.5"]));
    }

    #[test]
    fn reverse_and_upstreams() {
        let table = table();
        let index = table.snapshot();
        let front = index.client(from("10.0.1.2")).cloned().unwrap();
        let web = index.client(from("10.0.1.3")).cloned().unwrap();
        assert_eq!(
            index.reverse(&front, IpAddr::V4(ip("10.0.2.3"))),
            Some("db")
        );
        assert_eq!(index.reverse(&web, IpAddr::V4(ip("10.0.2.3"))), None);
        assert_eq!(index.reverse(&web, IpAddr::V4(ip("10.0.1.9"))), None);
        assert!(index.upstreams(&web).is_empty());

        let host: SocketAddr = "127.0.0.53:53".parse().unwrap();
        let own: SocketAddr = "127.0.0.77:53".parse().unwrap();
        table.set_default_upstreams(vec![host]);
        table.upsert(
            "p-db-1",
            ContainerDns {
                upstreams: vec![own],
                ..container(vec![endpoint("b", "10.0.2.3", &["db"])])
            },
        );
        let index = table.snapshot();
        let db = index.client(from("10.0.2.3")).cloned().unwrap();
        let web = index.client(from("10.0.1.3")).cloned().unwrap();
        assert_eq!(index.upstreams(&db), &[own]);
        assert_eq!(index.upstreams(&web), &[host]);
    }

    #[test]
    fn service_endpoint_names() {
        let aliases = vec!["api".to_string(), "WEB".to_string(), String::new()];
        let endpoint =
            Endpoint::for_service("a", ip("10.0.1.3"), "p-web-1", "web", Some("box"), &aliases);
        assert_eq!(endpoint.names, vec!["p-web-1", "web", "box", "api"]);
        let endpoint = Endpoint::for_service("a", ip("10.0.1.3"), "p-web-1", "web", None, &[]);
        assert_eq!(endpoint.names, vec!["p-web-1", "web"]);
        assert_eq!(endpoint.network, "a");
    }

    impl Lookup {
        fn is_found(&self) -> bool {
            matches!(self, Lookup::Found(_))
        }
    }

    #[test]
    fn link_aliases_resolve_for_the_linking_container_only() {
        let table = DnsTable::new();
        table.upsert("db", container(vec![endpoint("n", "10.0.1.2", &["db"])]));
        let mut app = container(vec![endpoint("n", "10.0.1.3", &["app"])]);
        app.links = vec![("Database".into(), "db".into())];
        table.upsert("app", app);
        assert_eq!(
            table.lookup(from("10.0.1.3"), "database."),
            Lookup::Found(vec![ip("10.0.1.2")])
        );
        assert_eq!(table.lookup(from("10.0.1.2"), "database"), Lookup::NotFound);
    }
}
