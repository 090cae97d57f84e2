//! `rcompose network ls|inspect|create|rm|prune`: rcompose's networks as `docker network`
//! shows them — those of every project (from their states) and those `network create` made
//! (`network::standalone`), with the containers on each (`network::registry`).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use sha2::Digest as _;

use super::Global;
use crate::network::names;
use crate::network::netlink::Netlink;
use crate::network::project::NetworkState;
use crate::network::registry;
use crate::network::standalone::{self, CreateOptions, Standalone};
use crate::supervisor::state::{self, ProjectState};

#[derive(Debug, clap::Args)]
pub struct NetworkArgs {
    #[command(subcommand)]
    pub command: NetworkCommand,
}

#[derive(Debug, clap::Subcommand)]
#[command(defer = true)]
pub enum NetworkCommand {
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect {
        #[arg(required = true, value_name = "NETWORK")]
        networks: Vec<String>,
        /// Format the output with a Go template, or `json`
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Create a network (outside any project; projects join it by name)
    Create(CreateArgs),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true, value_name = "NETWORK")]
        networks: Vec<String>,
        /// Do not error if the network does not exist
        #[arg(short, long)]
        force: bool,
    },
    /// Remove all unused networks made by `network create`
    Prune {
        /// Do not prompt for confirmation (rcompose never prompts)
        #[arg(short, long)]
        force: bool,
    },
}

impl NetworkCommand {
    pub fn name(&self) -> &'static str {
        match self {
            NetworkCommand::Ls(_) => "network ls",
            NetworkCommand::Inspect { .. } => "network inspect",
            NetworkCommand::Create(_) => "network create",
            NetworkCommand::Rm { .. } => "network rm",
            NetworkCommand::Prune { .. } => "network prune",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// `table`, `json`, or a Go template
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Filter: name=, id=, label=KEY[=VALUE], driver=, scope=, type=custom|builtin
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Do not truncate the IDs
    #[arg(long)]
    pub no_trunc: bool,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    pub name: String,
    /// Driver: bridge, or macvlan or ipvlan (with `-o parent=IFACE`)
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR form (one IPv4 and, with --ipv6, one IPv6)
    #[arg(long)]
    pub subnet: Vec<String>,
    /// Gateway of the subnet of its family
    #[arg(long)]
    pub gateway: Vec<String>,
    /// Allocate container addresses from this sub-range
    #[arg(long)]
    pub ip_range: Vec<String>,
    /// No route out of the network
    #[arg(long)]
    pub internal: bool,
    /// Accepted for docker's sake: every rcompose network can be joined
    #[arg(long)]
    pub attachable: bool,
    /// Enable IPv6 (an automatic unique local /64 unless --subnet gives one)
    #[arg(long)]
    pub ipv6: bool,
    /// Metadata, KEY=VALUE (repeatable)
    #[arg(long = "label", value_name = "LABEL")]
    pub labels: Vec<String>,
    /// Driver options, KEY=VALUE (repeatable)
    #[arg(short = 'o', long = "opt", value_name = "OPTION")]
    pub options: Vec<String>,
}

/// One network as the commands show it.
struct Network {
    state: NetworkState,
    created: String,
    labels: BTreeMap<String, String>,
    options: BTreeMap<String, String>,
    attachable: bool,
}

impl Network {
    fn id(&self) -> String {
        names::network_id(&self.state.name)
    }
}

/// Every network rcompose knows: those of `network create`, then each project's own (a
/// network shared by name appears once).
fn all_networks() -> Vec<Network> {
    let mut out: Vec<Network> = standalone::list()
        .into_iter()
        .map(|s: Standalone| Network {
            state: s.state,
            created: s.created,
            labels: s.labels,
            options: s.options,
            attachable: s.attachable,
        })
        .collect();
    for project in state::projects() {
        let Ok(Some(st)) = ProjectState::load(&project) else {
            continue;
        };
        for n in st.networks {
            if n.external || out.iter().any(|o| o.state.bridge == n.bridge) {
                continue;
            }
            let labels = BTreeMap::from([
                ("com.docker.compose.network".to_string(), n.key.clone()),
                ("com.docker.compose.project".to_string(), project.clone()),
            ]);
            let mut options = BTreeMap::new();
            if let Some(mtu) = n.mtu {
                options.insert("com.docker.network.driver.mtu".to_string(), mtu.to_string());
            }
            out.push(Network {
                state: n,
                created: String::new(),
                labels,
                options,
                attachable: false,
            });
        }
    }
    out.sort_by(|a, b| a.state.name.cmp(&b.state.name));
    out
}

/// The network a user named: by name, full id, or a unique id prefix.
fn find<'n>(networks: &'n [Network], wanted: &str) -> Result<&'n Network> {
    if let Some(n) = networks.iter().find(|n| n.state.name == wanted) {
        return Ok(n);
    }
    let by_id: Vec<&Network> = networks
        .iter()
        .filter(|n| !wanted.is_empty() && n.id().starts_with(wanted))
        .collect();
    match by_id.as_slice() {
        [one] => Ok(one),
        [] => bail!("network {wanted} not found"),
        _ => bail!(
            "network {wanted} is ambiguous ({} networks match)",
            by_id.len()
        ),
    }
}

pub fn run(global: &Global, args: NetworkArgs) -> Result<i32> {
    if global.dry_run
        && !matches!(
            args.command,
            NetworkCommand::Ls(_) | NetworkCommand::Inspect { .. }
        )
    {
        bail!(
            "--dry-run is not supported by `rcompose {}` yet: nothing was done",
            args.command.name()
        );
    }
    match args.command {
        NetworkCommand::Ls(a) => ls(&a),
        NetworkCommand::Inspect { networks, format } => inspect(&networks, format.as_deref()),
        NetworkCommand::Create(a) => create(a),
        NetworkCommand::Rm { networks, force } => rm(&networks, force),
        NetworkCommand::Prune { force: _ } => prune(),
    }
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether `n` passes every `key=value` filter (docker's: same key ORs, different keys AND).
fn passes(n: &Network, filters: &[(String, String)]) -> Result<bool> {
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in filters {
        by_key.entry(k.as_str()).or_default().push(v.as_str());
    }
    for (key, values) in by_key {
        let ok = values.iter().any(|v| match key {
            "name" => n.state.name.contains(v),
            "id" => n.id().starts_with(v),
            "driver" => *v == n.state.driver.name(),
            "scope" => *v == "local",
            "type" => *v == "custom",
            "label" => match v.split_once('=') {
                Some((lk, lv)) => n.labels.get(lk).is_some_and(|x| x == lv),
                None => n.labels.contains_key(*v),
            },
            _ => false,
        });
        if !matches!(key, "name" | "id" | "driver" | "scope" | "type" | "label") {
            bail!("invalid filter {key:?}: expected name, id, label, driver, scope or type");
        }
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn ls(args: &LsArgs) -> Result<i32> {
    let filters: Vec<(String, String)> = args
        .filters
        .iter()
        .map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("invalid filter {f:?}: expected KEY=VALUE"))
        })
        .collect::<Result<_>>()?;
    let mut rows = Vec::new();
    for n in all_networks() {
        if passes(&n, &filters)? {
            rows.push(n);
        }
    }
    let id = |n: &Network| {
        let id = n.id();
        if args.no_trunc {
            id
        } else {
            id[..12].to_string()
        }
    };
    if args.quiet {
        for n in &rows {
            println!("{}", id(n));
        }
        return Ok(0);
    }
    let value = |n: &Network| {
        json!({
            "CreatedAt": n.created, "Driver": n.state.driver.name(), "ID": id(n),
            "IPv4": "true", "IPv6": "false", "Internal": n.state.internal.to_string(),
            "Labels": labels_text(&n.labels), "Name": n.state.name, "Scope": "local",
        })
    };
    match args.format.as_str() {
        "table" => {
            let mut table = vec![vec![
                "NETWORK ID".to_string(),
                "NAME".into(),
                "DRIVER".into(),
                "SCOPE".into(),
            ]];
            for n in &rows {
                table.push(vec![
                    id(n),
                    n.state.name.clone(),
                    "bridge".into(),
                    "local".into(),
                ]);
            }
            print!("{}", super::table(&table));
        }
        "json" => {
            for n in &rows {
                println!("{}", value(n));
            }
        }
        template => {
            let values: Vec<Value> = rows.iter().map(value).collect();
            let headers = [("ID", "NETWORK ID"), ("CreatedAt", "CREATED AT")];
            print!("{}", super::template::render(template, &values, &headers)?);
        }
    }
    Ok(0)
}

/// `network inspect`'s object, in docker's shape.
fn inspect_value(n: &Network) -> Value {
    let s = &n.state;
    let mut pool = json!({"Subnet": s.subnet.to_string(), "Gateway": s.gateway.to_string()});
    if let Some(range) = s.ip_range {
        pool["IPRange"] = json!(range.to_string());
    }
    let mut pools = vec![pool];
    if let Some(v6) = &s.ipv6 {
        let mut pool6 = json!({"Subnet": v6.subnet.to_string(), "Gateway": v6.gateway.to_string()});
        if let Some(range) = v6.ip_range {
            pool6["IPRange"] = json!(range.to_string());
        }
        pools.push(pool6);
    }
    let mut containers = serde_json::Map::new();
    for e in registry::entries(&s.bridge) {
        let endpoint = sha2::Sha256::digest(format!("{}/{}", e.container, s.bridge).as_bytes());
        containers.insert(
            e.container.clone(),
            json!({
                "Name": e.name,
                "EndpointID": hex::encode(endpoint),
                "MacAddress": e.mac,
                "IPv4Address": format!("{}/{}", e.address, s.subnet.prefix_len()),
                "IPv6Address": match (e.address6, &s.ipv6) {
                    (Some(a), Some(v6)) => format!("{a}/{}", v6.subnet.prefix_len()),
                    _ => String::new(),
                },
            }),
        );
    }
    json!({
        "Name": s.name,
        "Id": n.id(),
        "Created": n.created,
        "Scope": "local",
        "Driver": s.driver.name(),
        "EnableIPv4": true,
        "EnableIPv6": s.ipv6.is_some(),
        "IPAM": {"Driver": "default", "Options": {}, "Config": pools},
        "Internal": s.internal,
        "Attachable": n.attachable,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": n.options,
        "Labels": n.labels,
    })
}

fn inspect(wanted: &[String], format: Option<&str>) -> Result<i32> {
    let networks = all_networks();
    let mut values = Vec::new();
    let mut missing = Vec::new();
    for w in wanted {
        match find(&networks, w) {
            Ok(n) => values.push(inspect_value(n)),
            Err(e) => missing.push(e.to_string()),
        }
    }
    match format {
        None | Some("json") => println!("{}", serde_json::to_string_pretty(&Value::Array(values))?),
        Some(template) => print!("{}", super::template::render(template, &values, &[])?),
    }
    if missing.is_empty() {
        Ok(0)
    } else {
        bail!("{}", missing.join("; "))
    }
}

fn key_values(what: &str, items: &[String]) -> Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            None if what == "label" && !item.is_empty() => Ok((item.clone(), String::new())),
            _ => bail!("invalid {what} {item:?}: expected KEY=VALUE"),
        })
        .collect()
}

fn netlink_runtime() -> Result<(tokio::runtime::Runtime, Netlink)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let nl = {
        let _enter = rt.enter();
        Netlink::connect().context("cannot open netlink")?
    };
    Ok((rt, nl))
}

fn create(args: CreateArgs) -> Result<i32> {
    let opts = CreateOptions {
        name: args.name.clone(),
        driver: args.driver,
        subnet: args.subnet,
        gateway: args.gateway,
        ip_range: args.ip_range,
        ipv6: args.ipv6,
        internal: args.internal,
        attachable: args.attachable,
        labels: key_values("label", &args.labels)?,
        options: key_values("option", &args.options)?,
    };
    let (rt, nl) = netlink_runtime()?;
    let made = rt.block_on(standalone::create(&nl, &opts))?;
    println!("{}", names::network_id(&made.state.name));
    Ok(0)
}

fn rm(wanted: &[String], force: bool) -> Result<i32> {
    let (rt, nl) = netlink_runtime()?;
    let mut failed = Vec::new();
    for name in wanted {
        // An id (or its prefix) names the network too.
        let name = match find(&all_networks(), name) {
            Ok(n) => n.state.name.clone(),
            Err(_) => name.clone(),
        };
        match rt.block_on(standalone::remove(&nl, &name)) {
            Ok(()) => println!("{name}"),
            Err(standalone::StandaloneError::NotFound(_)) if force => {}
            Err(e) => failed.push(e.to_string()),
        }
    }
    if failed.is_empty() {
        Ok(0)
    } else {
        bail!("{}", failed.join("; "))
    }
}

fn prune() -> Result<i32> {
    let (rt, nl) = netlink_runtime()?;
    let removed = rt.block_on(standalone::prune(&nl))?;
    if !removed.is_empty() {
        println!("Deleted Networks:");
        for name in removed {
            println!("{name}");
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(name: &str, labels: &[(&str, &str)]) -> Network {
        let subnet: crate::network::ipam::Ipv4Net = "10.9.0.0/24".parse().expect("subnet");
        Network {
            state: NetworkState {
                key: "n".into(),
                name: name.into(),
                bridge: names::bridge_name(name),
                subnet,
                gateway: "10.9.0.1".parse().expect("gateway"),
                ip_range: None,
                configured: false,
                internal: false,
                external: false,
                mtu: None,
                config_fields: Default::default(),
                options: Default::default(),
                driver: Default::default(),
                ipv6: None,
            },
            created: String::new(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            options: BTreeMap::new(),
            attachable: false,
        }
    }

    fn f(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// docker's filters: the same key ORs, different keys AND; an unknown key is an error.
    #[test]
    fn ls_filters_as_docker() {
        let n = network("front_net", &[("team", "web"), ("tier", "")]);
        let id = n.id();
        for (pairs, want) in [
            (f(&[("name", "front")]), true),
            (f(&[("name", "back")]), false),
            (f(&[("name", "back"), ("name", "front")]), true),
            (f(&[("id", &id[..5])]), true),
            (f(&[("label", "team=web")]), true),
            (f(&[("label", "team=db")]), false),
            (f(&[("label", "tier")]), true),
            (
                f(&[("driver", "bridge"), ("scope", "local"), ("type", "custom")]),
                true,
            ),
            (f(&[("driver", "macvlan")]), false),
            (f(&[("name", "front"), ("label", "team=db")]), false),
        ] {
            assert_eq!(passes(&n, &pairs).expect("filter"), want, "{pairs:?}");
        }
        assert!(passes(&n, &f(&[("colour", "red")])).is_err());
    }
}
