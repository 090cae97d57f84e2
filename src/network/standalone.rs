//! Networks of no project, as `docker network create` makes them: `rcompose network create`
//! plans one as a compose network with that `name:` (the same pools, overlap checks and
//! options), makes its bridge and its own firewall table (owned by the pseudo project
//! `rcompose-net-<bridge hex>`), and records it in `$RCOMPOSE_RUN/networks.d/<bridge>.json`.
//! Projects join it by name (`external: true`, or `name:`): it counts as another project's
//! network for them, so their `down` never removes it. `network rm` and `network prune` do,
//! once no container is on it.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::netlink::Netlink;
use super::project::{self as project_net, NetworkState, ProjectError};
use super::{names, registry};
use crate::compose::model::{IpamConfig, IpamPool, NetworkConfig, Project, ServiceConfig};

/// A network made by `rcompose network create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standalone {
    pub state: NetworkState,
    /// When it was made (RFC 3339, UTC).
    pub created: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Driver options (`-o`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub attachable: bool,
}

/// What `network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub name: String,
    pub driver: String,
    /// Subnets, gateways and ranges as docker's repeatable flags: at most one of each family,
    /// each gateway and range going with the subnet of its family.
    pub subnet: Vec<String>,
    pub gateway: Vec<String>,
    pub ip_range: Vec<String>,
    /// `--ipv6`.
    pub ipv6: bool,
    pub internal: bool,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    #[error(
        "invalid network name {0:?}: a letter or digit, then letters, digits, '_', '.' or '-'"
    )]
    InvalidName(String),
    #[error("network {name}: driver {driver:?} is not supported (bridge, macvlan or ipvlan)")]
    Driver { name: String, driver: String },
    #[error("network with name {0} already exists")]
    Exists(String),
    #[error("network {0} not found")]
    NotFound(String),
    #[error(
        "network {name} belongs to project {project}: `rcompose -p {project} down` removes it"
    )]
    OfProject { name: String, project: String },
    #[error("network {name} has active endpoints: {users}")]
    InUse { name: String, users: String },
    /// Planning, making or removing it (the message names the network or its bridge).
    #[error("{source}")]
    Network {
        name: String,
        #[source]
        source: Box<ProjectError>,
    },
    #[error("cannot take the host's network lock: {0}")]
    Lock(String),
    #[error("cannot record network {name} in {path}: {source}")]
    Record {
        name: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

type Result<T> = std::result::Result<T, StandaloneError>;

/// The pseudo project whose firewall table serves the network with bridge `bridge`.
pub fn owner(bridge: &str) -> String {
    format!("rcompose-net-{}", bridge.trim_start_matches("rc-"))
}

fn dir() -> PathBuf {
    crate::paths::run().join("networks.d")
}

/// Every standalone network, by name.
pub fn list() -> Vec<Standalone> {
    let Ok(entries) = std::fs::read_dir(dir()) else {
        return Vec::new();
    };
    let mut out: Vec<Standalone> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
        .collect();
    out.sort_by(|a, b| a.state.name.cmp(&b.state.name));
    out
}

/// The standalone network called `name`.
pub fn find(name: &str) -> Option<Standalone> {
    list().into_iter().find(|s| s.state.name == name)
}

/// Docker's rule for network names.
fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && name.len() <= 255 {
        Ok(())
    } else {
        Err(StandaloneError::InvalidName(name.to_string()))
    }
}

/// The one-network project `network create` plans with.
fn as_project(opts: &CreateOptions, owner: &str) -> Project {
    let mut service = ServiceConfig {
        name: "net".into(),
        ..ServiceConfig::default()
    };
    service.networks.insert("net".into(), None);
    // One ipam entry per family that sets anything; a second value of a family makes a second
    // entry, which planning refuses by name.
    let mut pools: Vec<IpamPool> = Vec::new();
    for v6 in [false, true] {
        let of = |values: &[String]| -> Vec<String> {
            values
                .iter()
                .filter(|v| v.contains(':') == v6)
                .cloned()
                .collect()
        };
        let (subnets, gateways, ranges) = (of(&opts.subnet), of(&opts.gateway), of(&opts.ip_range));
        let n = subnets.len().max(gateways.len()).max(ranges.len());
        for i in 0..n {
            pools.push(IpamPool {
                subnet: subnets.get(i).cloned().unwrap_or_default(),
                gateway: gateways.get(i).cloned().unwrap_or_default(),
                ip_range: ranges.get(i).cloned().unwrap_or_default(),
                ..IpamPool::default()
            });
        }
    }
    let network = NetworkConfig {
        name: opts.name.clone(),
        internal: opts.internal,
        attachable: opts.attachable,
        labels: opts
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        driver_opts: opts
            .options
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ipam: IpamConfig {
            config: pools,
            ..IpamConfig::default()
        },
        enable_ipv6: opts.ipv6.then_some(true),
        ..NetworkConfig::default()
    };
    let mut services = IndexMap::new();
    services.insert("net".to_string(), service);
    let mut networks = IndexMap::new();
    networks.insert("net".to_string(), network);
    Project {
        name: owner.to_string(),
        services,
        networks,
        ..Project::default()
    }
}

/// Which projects use the network with bridge `bridge`, named for an error: their containers
/// on it (the registry), or their recorded networks.
fn users(bridge: &str) -> Vec<String> {
    let mut users: Vec<String> = registry::entries(bridge)
        .into_iter()
        .map(|e| format!("container {} of project {}", e.name, e.project))
        .collect();
    for project in crate::supervisor::state::projects() {
        let Ok(Some(state)) = crate::supervisor::state::ProjectState::load(&project) else {
            continue;
        };
        if state.networks.iter().any(|n| n.bridge == bridge)
            && !users
                .iter()
                .any(|u| u.ends_with(&format!("project {project}")))
        {
            users.push(format!("project {project}"));
        }
    }
    users
}

/// The project that made network `name` (not external to it), if one did.
fn project_owning(name: &str) -> Option<String> {
    crate::supervisor::state::projects().into_iter().find(|p| {
        crate::supervisor::state::ProjectState::load(p)
            .ok()
            .flatten()
            .is_some_and(|s| s.networks.iter().any(|n| n.name == name && !n.external))
    })
}

fn lock() -> Result<std::fs::File> {
    crate::supervisor::host_network_lock().map_err(|e| StandaloneError::Lock(e.to_string()))
}

/// `network create`: plans, makes and records the network. Nothing is left when a step fails.
pub async fn create(nl: &Netlink, opts: &CreateOptions) -> Result<Standalone> {
    let name = opts.name.clone();
    check_name(&name)?;
    if !matches!(opts.driver.as_str(), "" | "bridge" | "macvlan" | "ipvlan") {
        return Err(StandaloneError::Driver {
            name,
            driver: opts.driver.clone(),
        });
    }
    let bridge = names::bridge_name(&name);
    let owner = owner(&bridge);
    let project = as_project(opts, &owner);
    let _lock = lock()?;
    if find(&name).is_some() || project_owning(&name).is_some() {
        return Err(StandaloneError::Exists(name));
    }
    let failed = |source: ProjectError| StandaloneError::Network {
        name: name.clone(),
        source: Box::new(source),
    };
    let others = crate::supervisor::other_networks(&owner);
    let planned = project_net::plan_networks(&project, &["net"], &[], &others)
        .await
        .map_err(failed)?;
    let Some(state) = planned.into_iter().next() else {
        return Err(StandaloneError::NotFound(name));
    };
    project_net::setup(nl, &owner, std::slice::from_ref(&state), &[])
        .await
        .map_err(failed)?;
    let record = Standalone {
        state,
        created: crate::logs::timefmt::format_timestamp(std::time::SystemTime::now()),
        labels: opts.labels.clone(),
        options: opts.options.clone(),
        attachable: opts.attachable,
    };
    if let Err(e) = save(&record) {
        let _ =
            project_net::teardown(nl, &owner, std::slice::from_ref(&record.state), &[], &[]).await;
        return Err(e);
    }
    Ok(record)
}

fn save(record: &Standalone) -> Result<()> {
    let dir = dir();
    let path = dir.join(format!("{}.json", record.state.bridge));
    let err = |source| StandaloneError::Record {
        name: record.state.name.clone(),
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(err)?;
    let json = serde_json::to_vec_pretty(record).map_err(|e| err(io::Error::other(e)))?;
    let tmp = dir.join(format!(".{}.json.tmp", record.state.bridge));
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(err)
}

/// `network rm`: removes a standalone network no container is on (its bridge, its firewall
/// table and rules, its record).
pub async fn remove(nl: &Netlink, name: &str) -> Result<()> {
    let _lock = lock()?;
    remove_locked(nl, name).await
}

async fn remove_locked(nl: &Netlink, name: &str) -> Result<()> {
    let Some(record) = find(name) else {
        return Err(match project_owning(name) {
            Some(project) => StandaloneError::OfProject {
                name: name.to_string(),
                project,
            },
            None => StandaloneError::NotFound(name.to_string()),
        });
    };
    let users = users(&record.state.bridge);
    if !users.is_empty() {
        return Err(StandaloneError::InUse {
            name: name.to_string(),
            users: users.join(", "),
        });
    }
    let owner = owner(&record.state.bridge);
    project_net::teardown(nl, &owner, std::slice::from_ref(&record.state), &[], &[])
        .await
        .map_err(|source| StandaloneError::Network {
            name: name.to_string(),
            source: Box::new(source),
        })?;
    let path = dir().join(format!("{}.json", record.state.bridge));
    std::fs::remove_file(&path).map_err(|source| StandaloneError::Record {
        name: name.to_string(),
        path,
        source,
    })
}

/// `network prune`: removes every standalone network no container is on; their names.
pub async fn prune(nl: &Netlink) -> Result<Vec<String>> {
    let _lock = lock()?;
    let mut removed = Vec::new();
    for record in list() {
        if users(&record.state.bridge).is_empty() {
            remove_locked(nl, &record.state.name).await?;
            removed.push(record.state.name);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        for good in ["a", "my-net", "net_1.local", "9lives"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-net", ".x", "a/b", "a b", "ünï"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_owner_is_named_after_the_bridge_and_plans_one_network() {
        let bridge = names::bridge_name("shared");
        let owner = owner(&bridge);
        assert_eq!(owner, format!("rcompose-net-{}", &bridge[3..]));
        assert!(crate::network::firewall::table_name(&owner).is_ok());
        let opts = CreateOptions {
            name: "shared".into(),
            subnet: vec!["10.123.0.0/24".into(), "fd00:123::/64".into()],
            gateway: vec!["fd00:123::fe".into()],
            ipv6: true,
            internal: true,
            ..CreateOptions::default()
        };
        let p = as_project(&opts, &owner);
        let net = &p.networks["net"];
        assert_eq!(net.name, "shared");
        assert!(net.internal);
        assert_eq!(net.ipam.config[0].subnet, "10.123.0.0/24");
        assert_eq!(net.ipam.config[0].gateway, "");
        assert_eq!(net.ipam.config[1].subnet, "fd00:123::/64");
        assert_eq!(net.ipam.config[1].gateway, "fd00:123::fe");
        assert_eq!(net.enable_ipv6, Some(true));
        let plain = as_project(
            &CreateOptions {
                name: "x".into(),
                ..CreateOptions::default()
            },
            &owner,
        );
        assert!(plain.networks["net"].ipam.config.is_empty());
        assert!(names::network_id("shared").starts_with(&bridge[3..]));
    }
}
