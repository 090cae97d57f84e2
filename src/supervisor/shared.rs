//! What the engine and its container tasks share: the project's containers (their task
//! handles), its recorded networks and volumes, its live networking, and the state file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{broadcast, Notify};

use super::error::EngineError;
use super::proto::Event;
use super::state::ProjectState;
use super::task::Handle;
use super::LogChunk;
use crate::network::dns::DnsService;
use crate::network::netlink::Netlink;
use crate::network::project::{self as project_net, NetworkState};

/// What the engine and its container tasks share.
pub struct Shared {
    pub project: String,
    pub helper: PathBuf,
    pub events: broadcast::Sender<Event>,
    pub logs: broadcast::Sender<LogChunk>,
    /// Signalled when the state changed and must be written.
    pub dirty: Notify,
    pub(super) containers: Mutex<Vec<Arc<Handle>>>,
    pub(super) meta: Mutex<Meta>,
    pub(super) net: tokio::sync::Mutex<NetCtx>,
    pub(super) gone: std::sync::atomic::AtomicBool,
    /// Held from snapshot to written file: two writers (the state writer task and a command
    /// finishing) must not let an older snapshot land after a newer one.
    pub(super) save_lock: Mutex<()>,
}

#[derive(Default)]
pub(super) struct Meta {
    pub(super) working_dir: PathBuf,
    pub(super) config_files: Vec<PathBuf>,
    pub(super) networks: Vec<NetworkState>,
    pub(super) volumes: Vec<String>,
}

/// The project's live networking: the netlink connection and the DNS servers.
#[derive(Default)]
pub(super) struct NetCtx {
    pub(super) nl: Option<Netlink>,
    pub(super) dns: Option<DnsService>,
    /// Other projects' containers on this project's networks, for its DNS table.
    pub(super) foreign: Option<Arc<crate::network::registry::Foreign>>,
    /// Addresses and ports planned for containers being created (by container id): services
    /// start in parallel, and a container's record only exists once it is created, so without
    /// this two of them could be given the same address or host port.
    pub(super) reserved: HashMap<String, Reservation>,
    /// Containers (by id) whose host ports their replacement took over: their rules go from
    /// the firewall table while they wait to be removed.
    pub(super) superseded: std::collections::HashSet<String>,
    /// Listeners of the published ports NAT cannot serve (IPv6 loopback).
    pub(super) proxies: crate::network::proxy::Proxies,
}

#[derive(Default)]
pub(super) struct Reservation {
    pub(super) addresses: Vec<std::net::IpAddr>,
    pub(super) ports: Vec<project_net::PortBinding>,
}

impl Shared {
    pub(super) fn networks(&self) -> Vec<NetworkState> {
        self.meta
            .lock()
            .map(|m| m.networks.clone())
            .unwrap_or_default()
    }

    pub(super) fn handles(&self) -> Vec<Arc<Handle>> {
        self.containers
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    pub(super) fn add(&self, h: Handle) -> Arc<Handle> {
        let h = Arc::new(h);
        if let Ok(mut c) = self.containers.lock() {
            c.push(h.clone());
        }
        h
    }

    pub(super) fn forget(&self, id: &str) {
        if let Ok(mut c) = self.containers.lock() {
            c.retain(|h| h.record.borrow().id != id);
        }
    }

    /// The state as it is now.
    pub fn snapshot(&self) -> ProjectState {
        let meta = self.meta.lock();
        let (working_dir, config_files, networks, volumes) = match &meta {
            Ok(m) => (
                m.working_dir.clone(),
                m.config_files.clone(),
                m.networks.clone(),
                m.volumes.clone(),
            ),
            Err(_) => Default::default(),
        };
        drop(meta);
        ProjectState {
            project: self.project.clone(),
            working_dir,
            config_files,
            networks,
            volumes,
            containers: self.handles().iter().map(|h| h.snapshot()).collect(),
        }
    }

    /// Writes the state, unless `down` removed the project.
    pub fn save(&self) -> Result<(), EngineError> {
        let _order = self
            .save_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.is_gone() {
            return Ok(());
        }
        Ok(self.snapshot().save()?)
    }

    /// Whether `down` removed the project.
    pub fn is_gone(&self) -> bool {
        self.gone.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether some container runs or will run again (a pending restart).
    pub fn is_active(&self) -> bool {
        self.handles()
            .iter()
            .any(|h| h.record.borrow().status.is_active())
    }
}
