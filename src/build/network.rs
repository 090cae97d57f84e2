//! The network of RUN steps (BuildKit's default): a bridge of rcompose's own for the duration
//! of one build, with masquerade to the outside, made by the same code as a project's default
//! network (so the same coexistence with Docker's firewall). Each step gets a network
//! namespace of its own, joined to the bridge before its command runs. Made on a thread of its
//! own as soon as a step misses the cache (before the first RUN needs it); removed when the
//! build ends, by a detached helper process so the result does not wait for the kernel; a
//! build killed before that leaves a bridge named after its process, which the next build
//! removes.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;
use std::sync::Mutex;

use indexmap::IndexMap;

use super::BuildError;
use crate::compose::model::{NetworkConfig, Project, ServiceConfig};
use crate::network::netlink::Netlink;
use crate::network::project::{self as project_net, Interface, NetworkState};
use crate::network::resolv::ResolvConf;

/// Docker's fallback resolvers when the host's are only reachable on its loopback.
const FALLBACK_DNS: [Ipv4Addr; 2] = [Ipv4Addr::new(8, 8, 8, 8), Ipv4Addr::new(8, 8, 4, 4)];

pub struct BuildNetwork {
    rt: tokio::runtime::Runtime,
    nl: Netlink,
    project: Project,
    networks: Vec<NetworkState>,
    in_use: Mutex<Vec<IpAddr>>,
    counter: std::sync::atomic::AtomicU32,
    pub resolv_conf: String,
}

fn err(what: &str, e: impl std::fmt::Display) -> BuildError {
    BuildError::Step(format!("build network: {what}: {e}"))
}

/// The project name of a build network: `rcompose-build-<pid>-<n>`, `n` counting the build
/// networks of this process. One process makes several, one after the other (builds in waves,
/// watch's rebuilds), and a finished one is removed by a detached helper: a name of its own
/// keeps that helper from removing the next one's bridge.
fn project_name(pid: u32, n: u32) -> String {
    format!("rcompose-build-{pid}-{n}")
}

/// The build process of a build network's project name (`rcompose-build-<pid>-<n>`, or the
/// older `rcompose-build-<pid>`).
fn build_pid(project: &str) -> Option<u32> {
    let rest = project.strip_prefix("rcompose-build-")?;
    let (pid, n) = rest.split_once('-').unwrap_or((rest, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(n) {
        return None;
    }
    pid.parse().ok()
}

static NETWORKS_MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl BuildNetwork {
    pub fn create() -> Result<BuildNetwork, BuildError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| err("cannot start the async runtime", e))?;
        let nl = {
            let _enter = rt.enter();
            Netlink::connect().map_err(|e| err("cannot open netlink", e))?
        };
        let n = NETWORKS_MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = project_name(std::process::id(), n);
        let mut service = ServiceConfig {
            name: "build".into(),
            ..ServiceConfig::default()
        };
        service.networks.insert("default".into(), None);
        let mut networks = IndexMap::new();
        networks.insert(
            "default".to_string(),
            NetworkConfig {
                name: format!("{name}_default"),
                ..NetworkConfig::default()
            },
        );
        let mut services = IndexMap::new();
        services.insert("build".to_string(), service);
        let project = Project {
            name: name.clone(),
            services,
            networks,
            ..Project::default()
        };
        let _lock = crate::supervisor::host_network_lock().map_err(|e| err("lock", e))?;
        rt.block_on(remove_stale(&nl));
        let others = crate::supervisor::other_networks(&name);
        let planned = rt
            .block_on(project_net::plan_networks(
                &project,
                &["build"],
                &[],
                &others,
            ))
            .map_err(|e| err("cannot plan", e))?;
        rt.block_on(project_net::setup(&nl, &name, &planned, &[]))
            .map_err(|e| err("cannot create", e))?;
        let host = ResolvConf::read(std::path::Path::new("/etc/resolv.conf")).unwrap_or_default();
        let mut conf = host.clone();
        conf.nameservers.retain(|ip| !ip.is_loopback());
        if conf.nameservers.is_empty() {
            conf.nameservers = FALLBACK_DNS.iter().map(|ip| IpAddr::V4(*ip)).collect();
        }
        Ok(BuildNetwork {
            rt,
            nl,
            project,
            networks: planned,
            in_use: Mutex::new(Vec::new()),
            counter: std::sync::atomic::AtomicU32::new(0),
            resolv_conf: conf.render(),
        })
    }

    /// Joins the process `pid` (a step's first process, its namespaces made) to the bridge.
    /// The address stays taken until [`BuildNetwork::release`].
    pub fn attach(&self, pid: i32) -> Result<Vec<Interface>, BuildError> {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = crate::runtime::spec::container_id(&self.project.name, "build", n + 1);
        let service = &self.project.services["build"];
        let interfaces = {
            let mut in_use = self
                .in_use
                .lock()
                .map_err(|_| err("addresses", "lock poisoned"))?;
            let ifs =
                project_net::plan_interfaces(&self.project, service, &id, &self.networks, &in_use)
                    .map_err(|e| err("cannot plan the step's interface", e))?;
            in_use.extend(ifs.iter().flat_map(Interface::addresses));
            ifs
        };
        let netns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
            .map_err(|e| err("cannot open the step's network namespace", e))?;
        let attached = self.rt.block_on(project_net::attach(
            &self.nl,
            netns.as_fd(),
            &interfaces,
            &self.networks,
        ));
        if let Err(e) = attached {
            self.release(&interfaces);
            return Err(err("cannot attach the step", e));
        }
        Ok(interfaces)
    }

    pub fn release(&self, interfaces: &[Interface]) {
        let _ = self.rt.block_on(project_net::detach(&self.nl, interfaces));
        if let Ok(mut in_use) = self.in_use.lock() {
            in_use.retain(|a| !interfaces.iter().any(|i| i.addresses().any(|b| b == *a)));
        }
    }
}

/// The hidden command that removes a finished build's network (see `Drop for BuildNetwork`).
pub const GC_ARG: &str = "__build-network-gc";

impl Drop for BuildNetwork {
    /// The bridge and firewall table go in a short-lived detached process of rcompose's own:
    /// deleting a bridge waits for the kernel (20 ms and more), which the build's result need
    /// not wait for. When that process cannot start, they go here; when it dies first, the
    /// next build removes them (`remove_stale`: their build process is gone).
    fn drop(&mut self) {
        if spawn_gc(&self.project.name).is_ok() {
            return;
        }
        let _ = self.rt.block_on(project_net::teardown(
            &self.nl,
            &self.project.name,
            &self.networks,
            &[],
            &[],
        ));
    }
}

fn spawn_gc(project: &str) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg(GC_ARG)
        .arg(project)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C to the build's does not stop the clean-up.
        .process_group(0)
        .spawn()?;
    // Reaped by a thread, so a long-lived process (watch's rebuilds) keeps no zombie; a CLI
    // that exits first leaves it to init.
    std::thread::Builder::new()
        .name("build-net-gc".into())
        .spawn(move || {
            let _ = child.wait();
        })?;
    Ok(())
}

/// [`GC_ARG`]: removes the bridge and firewall rules of build network `project` (only names of
/// build networks, `rcompose-build-<pid>-<n>`, are accepted). The exit code is 0 when they are
/// gone.
pub fn gc_main(project: &str) -> i32 {
    if build_pid(project).is_none() {
        eprintln!("rcompose: {GC_ARG}: not a build network: {project:?}");
        return 2;
    }
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return 1;
    };
    let nl = {
        let _enter = rt.enter();
        match Netlink::connect() {
            Ok(nl) => nl,
            Err(_) => return 1,
        }
    };
    let bridge = crate::network::names::bridge_name(&format!("{project}_default"));
    let link = rt.block_on(nl.delete_link(&bridge));
    let rules = crate::network::firewall::remove(project);
    i32::from(link.is_err() || rules.is_err())
}

/// Build networks of builds whose process is gone (killed before their teardown): their
/// firewall rules (found by project name) and their bridge.
async fn remove_stale(nl: &Netlink) {
    for project in crate::network::firewall::projects().unwrap_or_default() {
        let Some(pid) = build_pid(&project) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let bridge = crate::network::names::bridge_name(&format!("{project}_default"));
        let _ = nl.delete_link(&bridge).await;
        let _ = crate::network::firewall::remove(&project);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_network_names_carry_the_process_and_a_count() {
        assert_eq!(project_name(42, 3), "rcompose-build-42-3");
        assert_eq!(build_pid("rcompose-build-42-3"), Some(42));
        assert_eq!(build_pid("rcompose-build-42"), Some(42));
        for not in [
            "rcompose-build-",
            "rcompose-build-42-",
            "rcompose-build-x-1",
            "web",
            "rcompose-build-4-2-1",
        ] {
            assert_eq!(build_pid(not), None, "{not}");
        }
    }
}
