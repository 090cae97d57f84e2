//! Who is on a network, host-wide: one small file per container and network under
//! `RCOMPOSE_RUN/networks/<bridge>/<project>.<container id>.json`, written by the container's
//! supervisor. Several projects can be on one network (`name:`, `external: true`); each keeps
//! its containers in its own state, and this is where they learn about each other's:
//!
//! - **addresses**: a container's address is taken from the network's free ones minus every
//!   entry, whoever wrote it, under the host's network lock; its entry is written before the
//!   lock is let go, so two projects never hand out one address;
//! - **names**: a container's resolver answers for the other projects' containers on its
//!   networks from their entries ([`Foreign`]), re-read whenever the directory changed.
//!
//! An entry lives as long as the container (created → removed); `active` says whether it runs,
//! which is when its names resolve. The directory is named after the bridge, never after the
//! network's name, which a compose file chooses.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::dns::{ContainerDns, DnsTable, Endpoint};

/// One container on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub project: String,
    /// The container's id.
    pub container: String,
    /// The container's name.
    pub name: String,
    pub address: Ipv4Addr,
    /// Its IPv6 address, on a network with IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<Ipv6Addr>,
    /// Its interface's MAC address on this network.
    #[serde(default)]
    pub mac: String,
    /// The names it answers to on this network (container name, service, hostname, aliases).
    pub names: Vec<String>,
    /// Its process runs.
    pub active: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot record container {container} on network bridge {bridge} in {path}: {source}")]
    Write {
        container: String,
        bridge: String,
        path: PathBuf,
        source: io::Error,
    },
}

/// Where every network's directory is.
pub fn root() -> PathBuf {
    crate::paths::run().join("networks")
}

fn file_name(project: &str, container: &str) -> String {
    format!("{project}.{container}.json")
}

/// Records (or replaces) `entry` on the network whose bridge is `bridge`.
pub fn put(bridge: &str, entry: &Entry) -> Result<(), RegistryError> {
    put_in(&root(), bridge, entry)
}

fn put_in(root: &Path, bridge: &str, entry: &Entry) -> Result<(), RegistryError> {
    let dir = root.join(bridge);
    let path = dir.join(file_name(&entry.project, &entry.container));
    let err = |source| RegistryError::Write {
        container: entry.name.clone(),
        bridge: bridge.to_string(),
        path: path.clone(),
        source,
    };
    let json = serde_json::to_vec(entry).map_err(|e| err(io::Error::other(e)))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        file_name(&entry.project, &entry.container)
    ));
    // A directory emptied and removed meanwhile (by another project's clean-up) is made again.
    let mut tries = 0;
    loop {
        std::fs::create_dir_all(&dir).map_err(err)?;
        match std::fs::write(&tmp, &json).and_then(|()| std::fs::rename(&tmp, &path)) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 3 => tries += 1,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(err(e));
            }
        }
    }
}

/// Every entry on the network whose bridge is `bridge` (unreadable files are skipped: a
/// half-written one is never seen, entries are renamed into place).
pub fn entries(bridge: &str) -> Vec<Entry> {
    entries_in(&root(), bridge)
}

fn entries_in(root: &Path, bridge: &str) -> Vec<Entry> {
    let Ok(dir) = std::fs::read_dir(root.join(bridge)) else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && name.ends_with(".json")
        })
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
        .collect()
}

/// The addresses of the containers of projects other than `project` on the network whose
/// bridge is `bridge` (running or not: a stopped container keeps its address).
pub fn addresses_of_others(bridge: &str, project: &str) -> Vec<IpAddr> {
    entries(bridge)
        .into_iter()
        .filter(|e| e.project != project)
        .flat_map(|e| [Some(IpAddr::V4(e.address)), e.address6.map(IpAddr::V6)])
        .flatten()
        .collect()
}

/// When the network's directory last changed (an entry added, replaced or removed).
pub fn stamp(bridge: &str) -> Option<SystemTime> {
    std::fs::metadata(root().join(bridge))
        .and_then(|m| m.modified())
        .ok()
}

/// Removes `container`'s entries of `project` on every network.
pub fn remove_container(project: &str, container: &str) {
    remove_matching(&root(), |name| name == file_name(project, container));
}

/// Removes every entry of `project` (its `down`, also after a crash), and the directories left
/// empty.
pub fn remove_project(project: &str) {
    remove_matching(&root(), |name| of_project(name, project));
}

/// Whether a file is an entry of `project` (`<project>.<id>.json`: neither has a dot).
fn of_project(file: &str, project: &str) -> bool {
    file.strip_prefix(project)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_suffix(".json"))
        .is_some_and(|id| !id.is_empty() && !id.contains('.'))
}

fn remove_matching(root: &Path, matches: impl Fn(&str) -> bool) {
    let Ok(dirs) = std::fs::read_dir(root) else {
        return;
    };
    for dir in dirs.flatten() {
        let Ok(files) = std::fs::read_dir(dir.path()) else {
            continue;
        };
        for file in files.flatten() {
            if matches(&file.file_name().to_string_lossy()) {
                let _ = std::fs::remove_file(file.path());
            }
        }
        // Fails while another entry is there, which is what is wanted.
        let _ = std::fs::remove_dir(dir.path());
    }
}

/// The keys under which other projects' containers sit in a project's DNS table.
pub const FOREIGN: &str = "foreign:";

/// Keeps a project's DNS table up to date with the other projects' containers on its networks.
#[derive(Debug)]
pub struct Foreign {
    project: String,
    table: DnsTable,
    root: PathBuf,
    /// The project's networks: (compose key, bridge).
    networks: RwLock<Vec<(String, String)>>,
    /// Each bridge directory's stamp when it was last read.
    seen: Mutex<HashMap<String, Option<SystemTime>>>,
}

impl Foreign {
    pub fn new(project: &str, table: DnsTable) -> Foreign {
        Foreign::at(root(), project, table)
    }

    fn at(root: PathBuf, project: &str, table: DnsTable) -> Foreign {
        Foreign {
            project: project.to_string(),
            table,
            root,
            networks: RwLock::new(Vec::new()),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The project's networks changed: (compose key, bridge) of each. Read again at the next
    /// refresh.
    pub fn set_networks(&self, networks: Vec<(String, String)>) {
        let mut current = self
            .networks
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Unchanged (every container start says them again): what was read stays valid.
        if *current == networks {
            return;
        }
        *current = networks;
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Re-reads the networks' entries if a directory changed since the last time (a `stat`
    /// per network otherwise), and puts the other projects' running containers in the table
    /// under this project's keys for those networks.
    pub fn refresh(&self) {
        let networks = self
            .networks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let stamps: HashMap<String, Option<SystemTime>> = networks
            .iter()
            .map(|(_, bridge)| {
                let stamp = std::fs::metadata(self.root.join(bridge))
                    .and_then(|m| m.modified())
                    .ok();
                (bridge.clone(), stamp)
            })
            .collect();
        if !seen.is_empty() && *seen == stamps {
            return;
        }
        let mut found: BTreeMap<String, ContainerDns> = BTreeMap::new();
        for (key, bridge) in &networks {
            for e in entries_in(&self.root, bridge) {
                if e.project == self.project || !e.active {
                    continue;
                }
                found
                    .entry(format!("{FOREIGN}{}.{}", e.project, e.container))
                    .or_default()
                    .endpoints
                    .push(Endpoint {
                        network: key.clone(),
                        address: e.address,
                        address6: e.address6,
                        names: e.names,
                    });
            }
        }
        self.table
            .replace_group(FOREIGN, found.into_iter().collect());
        *seen = stamps;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::dns::Lookup;

    fn entry(project: &str, id: &str, address: &str, names: &[&str], active: bool) -> Entry {
        Entry {
            project: project.into(),
            container: id.into(),
            name: names.first().map(|n| n.to_string()).unwrap_or_default(),
            address: address.parse().expect("address"),
            address6: None,
            mac: String::new(),
            names: names.iter().map(|n| n.to_string()).collect(),
            active,
        }
    }

    #[test]
    fn entries_are_put_read_and_removed_per_container_and_project() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        put_in(
            root,
            "rc-1",
            &entry("a", "c1", "10.0.0.2", &["a-web-1"], true),
        )
        .expect("put");
        put_in(
            root,
            "rc-1",
            &entry("b", "c2", "10.0.0.3", &["b-db-1"], false),
        )
        .expect("put");
        put_in(
            root,
            "rc-2",
            &entry("a", "c1", "10.0.1.2", &["a-web-1"], true),
        )
        .expect("put");
        // A replacement of the same container's entry.
        put_in(
            root,
            "rc-1",
            &entry("a", "c1", "10.0.0.4", &["a-web-1"], true),
        )
        .expect("put");
        let mut on1: Vec<Ipv4Addr> = entries_in(root, "rc-1").iter().map(|e| e.address).collect();
        on1.sort();
        assert_eq!(
            on1,
            [
                "10.0.0.3".parse::<Ipv4Addr>().unwrap(),
                "10.0.0.4".parse().unwrap()
            ]
        );
        remove_matching(root, |n| n == file_name("a", "c1"));
        assert_eq!(entries_in(root, "rc-1").len(), 1);
        assert!(!root.join("rc-2").exists(), "an emptied directory stays");
        // A project whose name is a prefix of another's keeps the other's entries.
        put_in(root, "rc-1", &entry("b-x", "c3", "10.0.0.5", &["x"], true)).expect("put");
        remove_matching(root, |n| of_project(n, "b"));
        let left: Vec<String> = entries_in(root, "rc-1")
            .into_iter()
            .map(|e| e.project)
            .collect();
        assert_eq!(left, ["b-x"]);
    }

    #[test]
    fn other_projects_running_containers_resolve_on_shared_networks_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let table = DnsTable::new();
        // Our container, on our key "shared" (bridge rc-s) and a private one.
        table.upsert(
            "ours",
            ContainerDns {
                endpoints: vec![
                    Endpoint::for_service(
                        "shared",
                        "10.9.0.2".parse().unwrap(),
                        "a-app-1",
                        "app",
                        None,
                        &[],
                    ),
                    Endpoint::for_service(
                        "private",
                        "10.8.0.2".parse().unwrap(),
                        "a-app-1",
                        "app",
                        None,
                        &[],
                    ),
                ],
                ..ContainerDns::default()
            },
        );
        let foreign = Foreign::at(root.clone(), "a", table.clone());
        foreign.set_networks(vec![
            ("shared".into(), "rc-s".into()),
            ("private".into(), "rc-p".into()),
        ]);
        put_in(
            &root,
            "rc-s",
            &entry("a", "ours", "10.9.0.2", &["a-app-1"], true),
        )
        .expect("put");
        put_in(
            &root,
            "rc-s",
            &entry("b", "x", "10.9.0.3", &["b-api-1", "api", "gateway"], true),
        )
        .expect("put");
        put_in(
            &root,
            "rc-s",
            &entry("b", "y", "10.9.0.4", &["b-old-1"], false),
        )
        .expect("put");
        put_in(
            &root,
            "rc-elsewhere",
            &entry("b", "z", "10.7.0.2", &["b-hidden-1"], true),
        )
        .expect("put");
        foreign.refresh();
        let ip = |s: &str| vec![s.parse::<Ipv4Addr>().unwrap()];
        assert_eq!(
            table.lookup_for("ours", "gateway"),
            Lookup::Found(ip("10.9.0.3"))
        );
        assert_eq!(
            table.lookup_for("ours", "b-api-1.shared"),
            Lookup::Found(ip("10.9.0.3"))
        );
        assert_eq!(
            table.lookup_for("ours", "b-old-1"),
            Lookup::NotFound,
            "not running"
        );
        assert_eq!(
            table.lookup_for("ours", "b-hidden-1"),
            Lookup::NotFound,
            "not our network"
        );
        assert_eq!(
            table.lookup_for("ours", "app"),
            Lookup::Found(ip("10.9.0.2"))
        );
        // The other project's container goes: a refresh sees the directory change.
        remove_matching(&root, |n| n == file_name("b", "x"));
        foreign.refresh();
        assert_eq!(table.lookup_for("ours", "gateway"), Lookup::NotFound);
    }
}
