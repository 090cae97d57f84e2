//! What exists of a project, as `reconcile` needs it: its containers (service, replica number,
//! configuration hash and fields, status), its networks and its named volumes. Made from the
//! project's recorded state (`from_state`), so a plan needs no host access and tests can write
//! any situation down.

use std::collections::BTreeMap;
use std::time::Duration;

use super::ops::{Op, Plan};
use crate::supervisor::state::{ContainerRecord, ProjectState, Status};

/// One existing container.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    pub service: String,
    pub number: u32,
    pub oneoff: bool,
    pub image_id: String,
    /// docker compose's service hash (with the image) the container was created from.
    pub config_hash: String,
    /// Per top-level key hashes of that configuration (empty for records older than them): the
    /// cause of a recreation names the keys that differ.
    pub config_fields: BTreeMap<String, String>,
    pub status: Status,
    /// Its own stop grace period (`stop_grace_period`).
    pub stop_grace: Duration,
    /// Services it depends on, as recorded when it was created (`down` stops dependents
    /// first).
    pub depends_on: Vec<String>,
    /// Those of them with `restart: true`.
    pub restart_with: Vec<String>,
    /// The compose keys of the networks it is attached to.
    pub networks: Vec<String>,
}

impl ObservedContainer {
    pub fn from_record(r: &ContainerRecord) -> ObservedContainer {
        ObservedContainer {
            id: r.id.clone(),
            name: r.name.clone(),
            service: r.service.clone(),
            number: r.number,
            oneoff: r.oneoff,
            image_id: r.image_id.clone(),
            config_hash: r.config_hash.clone(),
            config_fields: r.config_fields.clone(),
            status: r.status,
            stop_grace: r.runtime.stop_grace,
            depends_on: r
                .runtime
                .depends_on
                .iter()
                .map(|d| d.service.clone())
                .collect(),
            networks: r
                .network
                .interfaces
                .iter()
                .map(|i| i.network.clone())
                .collect(),
            restart_with: r
                .runtime
                .depends_on
                .iter()
                .filter(|d| d.restart)
                .map(|d| d.service.clone())
                .collect(),
        }
    }

    /// Whether its process runs (or will run again).
    pub fn is_active(&self) -> bool {
        self.status.is_active()
    }
}

/// One existing network of the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedNetwork {
    /// The compose key.
    pub key: String,
    pub name: String,
    pub external: bool,
    /// Per top-level key hashes of the network's compose configuration when it was created
    /// (empty for records older than them: never reported as changed).
    pub config_fields: BTreeMap<String, String>,
    /// Containers of other projects are attached to it (it cannot be recreated).
    pub used_by_others: bool,
}

/// Everything that exists of a project.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub containers: Vec<ObservedContainer>,
    pub networks: Vec<ObservedNetwork>,
    /// Named volumes the project created.
    pub volumes: Vec<String>,
}

impl Observed {
    /// What a project's recorded state says exists. `shared`: names of networks that other
    /// projects' containers use.
    pub fn from_state(state: &ProjectState, shared: &[String]) -> Observed {
        Observed {
            containers: state
                .containers
                .iter()
                .map(ObservedContainer::from_record)
                .collect(),
            networks: state
                .networks
                .iter()
                .map(|n| ObservedNetwork {
                    key: n.key.clone(),
                    name: n.name.clone(),
                    external: n.external,
                    config_fields: n.config_fields.clone(),
                    used_by_others: shared.contains(&n.name),
                })
                .collect(),
            volumes: state.volumes.clone(),
        }
    }

    /// The service containers (not one-off) of `service`, by replica number.
    pub fn replicas(&self, service: &str) -> Vec<&ObservedContainer> {
        let mut out: Vec<&ObservedContainer> = self
            .containers
            .iter()
            .filter(|c| !c.oneoff && c.service == service)
            .collect();
        out.sort_by_key(|c| c.number);
        out
    }
}

impl Observed {
    /// What would exist once `plan` has run (for `--dry-run`, which plans a command on top of
    /// another's plan): containers created, renamed, started, stopped and removed, networks
    /// created and removed. A created container runs; what it was created from is unknown.
    pub fn after(&self, plan: &Plan) -> Observed {
        let mut o = self.clone();
        for step in &plan.steps {
            match &step.op {
                Op::CreateContainer {
                    service,
                    number,
                    name,
                    ..
                } => o.containers.push(ObservedContainer {
                    id: String::new(),
                    name: name.clone(),
                    service: service.clone(),
                    number: *number,
                    oneoff: false,
                    image_id: String::new(),
                    config_hash: String::new(),
                    config_fields: BTreeMap::new(),
                    status: Status::Created,
                    stop_grace: Duration::ZERO,
                    depends_on: Vec::new(),
                    restart_with: Vec::new(),
                    networks: Vec::new(),
                }),
                Op::RemoveContainer { name, .. } => o.containers.retain(|c| c.name != *name),
                Op::RenameContainer { from, to } => {
                    for c in o.containers.iter_mut().filter(|c| c.name == *from) {
                        c.name = to.clone();
                    }
                }
                Op::StartContainer { name } | Op::StopContainer { name, .. } => {
                    let status = if matches!(step.op, Op::StartContainer { .. }) {
                        Status::Running
                    } else {
                        Status::Exited
                    };
                    for c in o.containers.iter_mut().filter(|c| c.name == *name) {
                        c.status = status;
                    }
                }
                Op::CreateNetwork { key, name } | Op::UseNetwork { key, name } => {
                    o.networks.push(ObservedNetwork {
                        key: key.clone(),
                        name: name.clone(),
                        external: matches!(step.op, Op::UseNetwork { .. }),
                        config_fields: BTreeMap::new(),
                        used_by_others: false,
                    })
                }
                Op::RemoveNetwork { key, .. } => o.networks.retain(|n| n.key != *key),
                _ => {}
            }
        }
        o
    }
}

/// Per top-level key hashes of a JSON object (a service or a network as the compose model
/// serialises it): what changed between two configurations, by key.
pub fn field_hashes(value: &serde_json::Value) -> BTreeMap<String, String> {
    use sha2::Digest as _;
    let Some(map) = value.as_object() else {
        return BTreeMap::new();
    };
    map.iter()
        .map(|(k, v)| {
            let digest = sha2::Sha256::digest(v.to_string().as_bytes());
            (k.clone(), hex::encode(&digest[..8]))
        })
        .collect()
}

/// The keys whose hashes differ between two field maps (sorted; present in one only counts).
pub fn changed_fields(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out: Vec<String> = old
        .keys()
        .chain(new.keys())
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_fields_name_added_removed_and_edited_keys() {
        let a = field_hashes(
            &serde_json::json!({"image": "x", "environment": {"A": "1"}, "ports": [1]}),
        );
        let b = field_hashes(
            &serde_json::json!({"image": "x", "environment": {"A": "2"}, "user": "u"}),
        );
        assert_eq!(changed_fields(&a, &b), ["environment", "ports", "user"]);
        assert!(changed_fields(&a, &a).is_empty());
    }
}
