//! The project-wide steps after merging: defaults, absolute paths, resolved environment,
//! docker compose's normalisation, profiles, `env_file` contents, consistency checks.
//!
//! All of them work on the canonical tree (long syntax everywhere), so they stay small.

use indexmap::IndexMap;
use serde_yaml::{Mapping, Value};
use std::collections::BTreeSet;

use super::discovery::join_clean;
use super::dotenv;
use super::environment::Environment;
use super::path::TreePath;
use super::yaml::{get, scalar_text};
use crate::plan::graph::ServiceGraph;

#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    #[error("{0}: invalid compose project")]
    Invalid(String),
    /// Like `Invalid`, with the key it is about, so the loader can point into the file.
    #[error("{message}: invalid compose project")]
    InvalidAt { path: TreePath, message: String },
    #[error("{0}")]
    Message(String),
    #[error("env file {path} not found: stat {path}: no such file or directory")]
    EnvFileMissing { path: String },
    #[error("failed to read env file {path}: {message}")]
    EnvFile { path: String, message: String },
    #[error("can't use both '{0}' (deprecated) and '{1}'")]
    Conflict(&'static str, &'static str),
}

fn invalid(msg: impl Into<String>) -> NormalizeError {
    NormalizeError::Invalid(msg.into())
}

fn invalid_at(path: TreePath, msg: impl Into<String>) -> NormalizeError {
    NormalizeError::InvalidAt {
        path,
        message: msg.into(),
    }
}

/// `services.<name>`: where most consistency errors point.
fn service_path(name: &str) -> TreePath {
    TreePath::root().key("services").key(name)
}

impl NormalizeError {
    /// The key the error is about, when it is about one.
    pub fn path(&self) -> Option<&TreePath> {
        match self {
            NormalizeError::InvalidAt { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// Iterate over the services of a tree, mutably.
fn services_mut(tree: &mut Value) -> impl Iterator<Item = (String, &mut Mapping)> {
    tree.get_mut("services")
        .and_then(Value::as_mapping_mut)
        .into_iter()
        .flat_map(|m| m.iter_mut())
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_mapping_mut()?)))
}

fn services(tree: &Value) -> impl Iterator<Item = (&str, &Mapping)> {
    tree.get("services")
        .and_then(Value::as_mapping)
        .into_iter()
        .flat_map(|m| m.iter())
        .filter_map(|(k, v)| Some((k.as_str()?, v.as_mapping()?)))
}

fn str_of<'a>(m: &'a Mapping, key: &str) -> Option<&'a str> {
    get(m, key).and_then(Value::as_str)
}

/// Defaults docker compose fills in before anything else: a build context of `.`, port
/// protocol and mode, device requests counting `all`.
pub fn set_defaults(tree: &mut Value) {
    for (_, service) in services_mut(tree) {
        if let Some(Value::Mapping(build)) = service.get_mut("build") {
            if get(build, "context").is_none() {
                build.insert(Value::from("context"), Value::from("."));
            }
        }
        if let Some(Value::Sequence(ports)) = service.get_mut("ports") {
            for port in ports.iter_mut().filter_map(Value::as_mapping_mut) {
                if get(port, "protocol").is_none() {
                    port.insert(Value::from("protocol"), Value::from("tcp"));
                }
                if get(port, "mode").is_none() {
                    port.insert(Value::from("mode"), Value::from("ingress"));
                }
            }
        }
        if let Some(Value::Sequence(secrets)) = service.get_mut("secrets") {
            for secret in secrets.iter_mut().filter_map(Value::as_mapping_mut) {
                if get(secret, "target").is_none() {
                    if let Some(src) = str_of(secret, "source").map(str::to_string) {
                        let target = format!("/run/secrets/{src}");
                        secret.insert(Value::from("target"), Value::from(target));
                    }
                }
            }
        }
        let gpus = service.get_mut("gpus").and_then(Value::as_sequence_mut);
        for device in gpus.into_iter().flatten() {
            default_device_count(device);
        }
        let devices = service
            .get_mut("deploy")
            .and_then(|d| d.get_mut("resources"))
            .and_then(|r| r.get_mut("reservations"))
            .and_then(|r| r.get_mut("devices"))
            .and_then(Value::as_sequence_mut);
        for device in devices.into_iter().flatten() {
            default_device_count(device);
        }
    }
}

fn default_device_count(device: &mut Value) {
    if let Some(d) = device.as_mapping_mut() {
        if get(d, "count").is_none() && get(d, "device_ids").is_none() {
            d.insert(Value::from("count"), Value::from("all"));
        }
    }
}

/// `~` expansion as docker compose does it (from `$HOME`).
fn expand_user(p: &str) -> String {
    match p.strip_prefix('~') {
        Some(rest) => {
            let home = std::env::var("HOME").unwrap_or_default();
            join_clean(&home, rest.trim_start_matches('/'))
        }
        None => p.to_string(),
    }
}

/// A path made absolute against `base`; absolute paths (Unix, or Windows ones such as
/// `C:\dir` meant for a remote engine) are kept as written.
fn abs_path(base: &str, p: &str) -> String {
    let p = expand_user(p);
    if p.starts_with('/') || is_windows_abs(&p) {
        p
    } else {
        join_clean(base, &p)
    }
}

/// `C:\x`, `C:/x` or `\\server\share`.
fn is_windows_abs(p: &str) -> bool {
    let b = p.as_bytes();
    (b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b[2] == b'\\' || b[2] == b'/'))
        || p.starts_with("\\\\")
}

/// Build contexts that are not local directories: URLs, git remotes, other services' images.
fn is_remote_context(s: &str) -> bool {
    s.contains("://")
        || ["github.com/", "git@", "service:"]
            .iter()
            .any(|prefix| s.starts_with(prefix))
}

fn resolve_in_place(v: &mut Value, base: &str) {
    if let Value::String(s) = v {
        if !s.is_empty() {
            *s = abs_path(base, s);
        }
    }
}

/// Relative paths (build contexts, bind sources, env files, config and secret files, watch
/// paths) made absolute against `base`.
pub fn resolve_relative_paths(tree: &mut Value, base: &str) {
    for (_, service) in services_mut(tree) {
        if let Some(Value::Mapping(build)) = service.get_mut("build") {
            if let Some(ctx) = build.get_mut("context") {
                if !ctx.as_str().is_some_and(is_remote_context) {
                    resolve_in_place(ctx, base);
                }
            }
            if let Some(Value::Mapping(extra)) = build.get_mut("additional_contexts") {
                for (_, ctx) in extra.iter_mut() {
                    if !ctx.as_str().is_some_and(is_remote_context) {
                        resolve_in_place(ctx, base);
                    }
                }
            }
        }
        if let Some(Value::Sequence(files)) = service.get_mut("env_file") {
            for f in files.iter_mut() {
                if let Some(p) = f.get_mut("path") {
                    resolve_in_place(p, base);
                } else {
                    resolve_in_place(f, base);
                }
            }
        }
        if let Some(Value::Sequence(files)) = service.get_mut("label_file") {
            files.iter_mut().for_each(|f| resolve_in_place(f, base));
        }
        if let Some(file) = service.get_mut("extends").and_then(|e| e.get_mut("file")) {
            resolve_in_place(file, base);
        }
        if let Some(Value::Sequence(watch)) =
            service.get_mut("develop").and_then(|d| d.get_mut("watch"))
        {
            for w in watch.iter_mut() {
                if let Some(p) = w.get_mut("path") {
                    resolve_in_place(p, base);
                }
            }
        }
        if let Some(Value::Sequence(volumes)) = service.get_mut("volumes") {
            for vol in volumes.iter_mut().filter_map(Value::as_mapping_mut) {
                if str_of(vol, "type") == Some("bind") {
                    if let Some(src) = vol.get_mut("source") {
                        resolve_in_place(src, base);
                    }
                }
            }
        }
    }
    for kind in ["configs", "secrets"] {
        let Some(Value::Mapping(items)) = tree.get_mut(kind) else {
            continue;
        };
        for (_, item) in items.iter_mut() {
            if let Some(f) = item.get_mut("file") {
                resolve_in_place(f, base);
            }
        }
    }
    if let Some(Value::Mapping(volumes)) = tree.get_mut("volumes") {
        for (_, vol) in volumes.iter_mut() {
            let Some(vol) = vol.as_mapping_mut() else {
                continue;
            };
            if str_of(vol, "driver").is_some_and(|d| d != "local") {
                continue;
            }
            let Some(Value::Mapping(opts)) = vol.get_mut("driver_opts") else {
                continue;
            };
            if str_of(opts, "o") == Some("bind") {
                // Unlike other paths, an empty device means the working directory itself.
                if let Some(Value::String(dev)) = opts.get_mut("device") {
                    *dev = abs_path(base, dev);
                }
            }
        }
    }
}

/// Entries given without a value (`environment: [FOO]`, `FOO: null`) take the project
/// environment's value when it has one; otherwise they stay unset (null).
pub fn resolve_environment(tree: &mut Value, env: &Environment) {
    for (_, service) in services_mut(tree) {
        if let Some(e) = service.get_mut("environment") {
            resolve_mapping(e, env, true);
        }
        if let Some(Value::Mapping(build)) = service.get_mut("build") {
            if let Some(args) = build.get_mut("args") {
                resolve_mapping(args, env, false);
            }
        }
    }
}

/// A list (`K=V` / `K`) or map (`K: V` / `K: null`) of variables turned into a map with the
/// missing values looked up in `env`. Unresolved entries stay null when `keep_unset`, else
/// they are dropped.
fn resolve_mapping(v: &mut Value, env: &Environment, keep_unset: bool) {
    let mut out = Mapping::new();
    match v {
        Value::Sequence(items) => {
            for item in items.iter() {
                let Some(s) = scalar_text(item) else { continue };
                match s.split_once('=') {
                    Some((k, val)) => {
                        out.insert(Value::from(k), Value::from(val));
                    }
                    None => {
                        if let Some(val) = env.get(&s) {
                            out.insert(Value::from(s), Value::from(val.as_str()));
                        } else if keep_unset {
                            out.insert(Value::from(s), Value::Null);
                        }
                    }
                }
            }
        }
        Value::Mapping(m) => {
            for (k, val) in m.iter() {
                let key = scalar_text(k).unwrap_or_default();
                match val {
                    Value::Null => {
                        if let Some(found) = env.get(&key) {
                            out.insert(Value::from(key), Value::from(found.as_str()));
                        } else if keep_unset {
                            out.insert(Value::from(key), Value::Null);
                        }
                    }
                    other => {
                        let text = scalar_text(other).unwrap_or_default();
                        out.insert(Value::from(key), Value::from(text));
                    }
                }
            }
        }
        _ => return,
    }
    *v = Value::Mapping(out);
}

/// A `depends_on` entry docker compose adds for an implied dependency.
fn implied_dependency(restart: bool) -> Value {
    let mut m = Mapping::new();
    m.insert(Value::from("condition"), Value::from("service_started"));
    m.insert(Value::from("restart"), Value::from(restart));
    m.insert(Value::from("required"), Value::from(true));
    Value::Mapping(m)
}

/// Docker compose's normalisation: the implicit `default` network, `pull_policy`
/// spelling, build defaults, implied dependencies (`links`, `network_mode: service:`,
/// `volumes_from`, shared namespaces) and resource names (`<project>_<key>`).
pub fn normalize(tree: &mut Value, env: &Environment) -> Result<(), NormalizeError> {
    normalize_networks(tree);
    for (_, service) in services_mut(tree) {
        if str_of(service, "pull_policy") == Some("if_not_present") {
            service.insert(Value::from("pull_policy"), Value::from("missing"));
        }
        if let Some(Value::Mapping(build)) = service.get_mut("build") {
            if get(build, "context").is_none() {
                build.insert(Value::from("context"), Value::from("."));
            }
            if get(build, "dockerfile").is_none() && get(build, "dockerfile_inline").is_none() {
                build.insert(Value::from("dockerfile"), Value::from("Dockerfile"));
            }
        }
        resolve_service_env(service, env);

        let mut depends: Mapping = match service.get("depends_on") {
            Some(Value::Mapping(m)) => m.clone(),
            _ => Mapping::new(),
        };
        let mut add = |name: &str, restart: bool| {
            if !name.is_empty() && depends.get(name).is_none() {
                depends.insert(Value::from(name), implied_dependency(restart));
            }
        };
        if let Some(Value::Sequence(links)) = service.get("links") {
            for link in links.iter().filter_map(Value::as_str) {
                let parts: Vec<&str> = link.split(':').collect();
                add(if parts.len() == 2 { parts[0] } else { link }, true);
            }
        }
        for ns in ["network_mode", "ipc", "pid", "uts", "cgroup"] {
            if let Some(shared) = str_of(service, ns).and_then(|s| s.strip_prefix("service:")) {
                add(shared, true);
            }
        }
        if let Some(Value::Sequence(from)) = service.get("volumes_from") {
            for vol in from.iter().filter_map(Value::as_str) {
                if !vol.starts_with("container:") {
                    add(vol.split(':').next().unwrap_or(vol), false);
                }
            }
        }
        if !depends.is_empty() {
            service.insert(Value::from("depends_on"), Value::Mapping(depends));
        }
    }
    set_names_from_keys(tree);
    Ok(())
}

fn resolve_service_env(service: &mut Mapping, env: &Environment) {
    if let Some(e) = service.get_mut("environment") {
        resolve_mapping(e, env, true);
    }
    if let Some(Value::Mapping(build)) = service.get_mut("build") {
        if let Some(args) = build.get_mut("args") {
            resolve_mapping(args, env, false);
        }
    }
}

/// Services without networks join `default`; `default` exists when someone uses it.
fn normalize_networks(tree: &mut Value) {
    let mut uses_default = false;
    for (_, service) in services_mut(tree) {
        if get(service, "provider").is_some() || get(service, "network_mode").is_some() {
            continue;
        }
        let needs_default = match service.get("networks") {
            None | Some(Value::Null) => true,
            Some(Value::Mapping(m)) if m.is_empty() => true,
            Some(Value::Sequence(s)) if s.is_empty() => true,
            Some(Value::Mapping(m)) => {
                uses_default |= get(m, "default").is_some();
                false
            }
            _ => false,
        };
        if needs_default {
            let mut m = Mapping::new();
            m.insert(Value::from("default"), Value::Null);
            service.insert(Value::from("networks"), Value::Mapping(m));
            uses_default = true;
        }
    }
    let Some(root) = tree.as_mapping_mut() else {
        return;
    };
    let networks = root
        .entry(Value::from("networks"))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if networks.is_null() {
        *networks = Value::Mapping(Mapping::new());
    }
    if let Some(n) = networks.as_mapping_mut() {
        if uses_default && get(n, "default").is_none() {
            n.insert(Value::from("default"), Value::Mapping(Mapping::new()));
        }
        if n.is_empty() {
            root.remove("networks");
        }
    }
}

/// Networks, volumes, configs and secrets without a `name` are named `<project>_<key>`, or
/// just `<key>` when external.
fn set_names_from_keys(tree: &mut Value) {
    let project = tree
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    for kind in ["networks", "volumes", "configs", "secrets"] {
        let Some(Value::Mapping(items)) = tree.get_mut(kind) else {
            continue;
        };
        for (key, item) in items.iter_mut() {
            let key = scalar_text(key).unwrap_or_default();
            if item.is_null() {
                *item = Value::Mapping(Mapping::new());
            }
            let Some(m) = item.as_mapping_mut() else {
                continue;
            };
            // Legacy `external: {name: x}`.
            if let Some(Value::Mapping(ext)) = m.get("external").cloned().as_ref() {
                if let Some(n) = get(ext, "name").cloned() {
                    if get(m, "name").is_none() {
                        m.insert(Value::from("name"), n);
                    }
                }
                m.insert(Value::from("external"), Value::from(true));
            }
            if get(m, "name").is_none() {
                let external = matches!(get(m, "external"), Some(Value::Bool(true)));
                let name = if external {
                    key.clone()
                } else {
                    format!("{project}_{key}")
                };
                m.insert(Value::from("name"), Value::from(name));
            }
        }
    }
}

/// Every profile declared by a service, sorted.
pub fn profiles(tree: &Value) -> Vec<String> {
    let mut all = BTreeSet::new();
    for (_, s) in services(tree) {
        if let Some(Value::Sequence(p)) = get(s, "profiles") {
            all.extend(p.iter().filter_map(scalar_text));
        }
    }
    all.into_iter().collect()
}

/// Keep the services enabled by `profiles` (or named in `selected`), move the others out.
/// Returns the names of the disabled services.
pub fn apply_profiles(
    tree: &mut Value,
    profiles: &[String],
    selected: &[String],
) -> Result<Vec<String>, NormalizeError> {
    let mut enabled: Vec<String> = profiles.to_vec();
    // A service named on the command line enables its own profiles.
    for (name, service) in services(tree) {
        if selected.iter().any(|s| s == name) {
            if let Some(Value::Sequence(p)) = get(service, "profiles") {
                enabled.extend(p.iter().filter_map(scalar_text));
            }
        }
    }
    let mut disabled = Vec::new();
    if let Some(Value::Mapping(all)) = tree.get_mut("services") {
        let names: Vec<Value> = all.keys().cloned().collect();
        for key in names {
            let on = match all.get(&key).and_then(|s| s.get("profiles")) {
                Some(Value::Sequence(p)) if !p.is_empty() => p.iter().any(|p| {
                    let p = scalar_text(p).unwrap_or_default();
                    enabled.iter().any(|e| e == "*" || *e == p)
                }),
                _ => true,
            };
            if !on {
                all.remove(&key);
                disabled.push(scalar_text(&key).unwrap_or_default());
            }
        }
    }
    // depends_on a disabled service is only allowed when the dependency is optional.
    let enabled_names: BTreeSet<String> = services(tree).map(|(n, _)| n.to_string()).collect();
    for (name, service) in services(tree) {
        let Some(Value::Mapping(deps)) = get(service, "depends_on") else {
            continue;
        };
        for (dep, cfg) in deps {
            let dep = scalar_text(dep).unwrap_or_default();
            let required = !matches!(cfg.get("required"), Some(Value::Bool(false)));
            if !enabled_names.contains(&dep) && disabled.contains(&dep) && required {
                return Err(invalid(format!(
                    "service {name:?} depends on undefined service {dep:?}"
                )));
            }
        }
    }
    Ok(disabled)
}

/// Drop the networks, volumes, secrets, configs and models no enabled service uses, as docker
/// compose does before printing or creating anything.
pub fn remove_unused_resources(tree: &mut Value) {
    let mut used: IndexMap<&str, BTreeSet<String>> = IndexMap::new();
    for kind in ["networks", "volumes", "secrets", "configs", "models"] {
        used.insert(kind, BTreeSet::new());
    }
    for (_, s) in services(tree) {
        if let Some(Value::Mapping(n)) = get(s, "networks") {
            used["networks"].extend(n.keys().filter_map(scalar_text));
        }
        if let Some(Value::Mapping(m)) = get(s, "models") {
            used["models"].extend(m.keys().filter_map(scalar_text));
        }
        for v in get(s, "volumes")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            if v.get("type").and_then(Value::as_str) == Some("volume") {
                if let Some(src) = v
                    .get("source")
                    .and_then(scalar_text)
                    .filter(|s| !s.is_empty())
                {
                    used["volumes"].insert(src);
                }
            }
        }
        let build_secrets = get(s, "build").and_then(|b| b.get("secrets"));
        for (kind, items) in [
            ("secrets", get(s, "secrets")),
            ("secrets", build_secrets),
            ("configs", get(s, "configs")),
        ] {
            for item in items.and_then(Value::as_sequence).into_iter().flatten() {
                if let Some(src) = item.get("source").and_then(scalar_text) {
                    used[kind].insert(src);
                }
            }
        }
    }
    let Some(root) = tree.as_mapping_mut() else {
        return;
    };
    for (kind, names) in used {
        let Some(Value::Mapping(defined)) = root.get_mut(kind) else {
            continue;
        };
        defined.retain(|k, _| scalar_text(k).is_some_and(|k| names.contains(&k)));
        if defined.is_empty() {
            root.remove(kind);
        }
    }
}

/// Names that become directories or host-wide names must be single path components
/// (`crate::names`): the volumes' names (their `name:`, or `<project>_<key>`, or the key of an
/// external one) and `container_name`. docker compose leaves this to the engine, which refuses
/// them when it creates the volume or container; rcompose refuses them here, before anything
/// is created.
pub fn check_names(tree: &Value) -> Result<(), NormalizeError> {
    if let Some(Value::Mapping(volumes)) = tree.get("volumes") {
        for (key, v) in volumes {
            let key = scalar_text(key).unwrap_or_default();
            let Some(name) = v.get("name").and_then(Value::as_str) else {
                continue;
            };
            if let Err(e) = crate::names::check_volume(name) {
                return Err(invalid_at(
                    TreePath::root().key("volumes").key(&key).key("name"),
                    format!("volumes.{key}: {e}"),
                ));
            }
        }
    }
    for (service, s) in services(tree) {
        if let Some(name) = str_of(s, "container_name") {
            if let Err(e) = crate::names::check_container(name) {
                return Err(invalid_at(
                    service_path(service).key("container_name"),
                    format!("services.{service}.container_name: {e}"),
                ));
            }
        }
    }
    Ok(())
}

/// Cross-references docker compose checks: images or builds, declared networks, volumes,
/// secrets and configs, existing dependencies, unique container names, dependency cycles.
/// The service-level resource keys that duplicate a `deploy.resources` one. As compose-go's
/// consistency check: when the service-level value is set (non-zero) and the `deploy` block
/// has the `limits` (or `reservations`) mapping at all, the two must be equal, an absent
/// deploy value counting as zero. Values are compared after canonicalisation (bytes, CPUs).
fn check_distinct_resources(name: &str, s: &Mapping) -> Result<(), NormalizeError> {
    // Unparsable values count as zero here; decoding the model reports them.
    fn number(v: Option<&Value>, bytes: bool) -> f64 {
        match v {
            Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
            Some(Value::String(s)) if bytes => {
                super::model::parse_bytes(s).map_or(0.0, |b| b as f64)
            }
            Some(Value::String(s)) => s.trim().parse().unwrap_or(0.0),
            _ => 0.0,
        }
    }
    let Some(resources) = get(s, "deploy").and_then(|d| d.get("resources")) else {
        return Ok(());
    };
    // (service key, deploy section, deploy key, compared as compose-go's float32 CPUs)
    const PAIRS: [(&str, &str, &str, bool); 4] = [
        ("cpus", "limits", "cpus", true),
        ("mem_limit", "limits", "memory", false),
        ("mem_reservation", "reservations", "memory", false),
        ("pids_limit", "limits", "pids", false),
    ];
    for (key, section, deploy_key, is_cpus) in PAIRS {
        let bytes = deploy_key == "memory";
        let top = number(get(s, key), bytes);
        let Some(Value::Mapping(sect)) = resources.get(section) else {
            continue;
        };
        let other = number(get(sect, deploy_key), bytes);
        let differs = if is_cpus {
            top as f32 != other as f32
        } else {
            top != other
        };
        if top != 0.0 && differs {
            return Err(invalid(format!(
                "services.{name}: can't set distinct values on '{key}' and \
                 'deploy.resources.{section}.{deploy_key}'"
            )));
        }
    }
    Ok(())
}

pub fn check_consistency(tree: &Value) -> Result<(), NormalizeError> {
    let declared = |kind: &str, name: &str| -> bool {
        tree.get(kind)
            .and_then(Value::as_mapping)
            .is_some_and(|m| get(m, name).is_some())
    };
    let names: BTreeSet<&str> = services(tree).map(|(n, _)| n).collect();
    let mut container_names: IndexMap<String, String> = IndexMap::new();
    let mut edges: Vec<(String, Vec<String>)> = Vec::new();
    for (name, s) in services(tree) {
        let has_image = str_of(s, "image").is_some_and(|i| !i.is_empty());
        if !has_image && get(s, "build").is_none() && get(s, "provider").is_none() {
            return Err(invalid_at(
                service_path(name),
                format!("service {name:?} has neither an image nor a build context specified"),
            ));
        }
        let replicas = get(s, "deploy").and_then(|d| d.get("replicas"));
        if let (Some(scale), Some(replicas)) = (get(s, "scale"), replicas) {
            if !scale.is_null() && !replicas.is_null() && scale != replicas {
                return Err(invalid(format!(
                    "services.{name}: can't set distinct values on 'scale' and 'deploy.replicas'"
                )));
            }
        }
        check_distinct_resources(name, s)?;
        if let Some(Value::Mapping(build)) = get(s, "build") {
            if get(build, "dockerfile").is_some()
                && get(build, "dockerfile_inline").is_some()
                && str_of(build, "dockerfile") != Some("Dockerfile")
            {
                return Err(invalid(format!(
                    "service {name:?} declares mutualy exclusive dockerfile and dockerfile_inline"
                )));
            }
            if let (Some(Value::Sequence(platforms)), Some(platform)) =
                (get(build, "platforms"), str_of(s, "platform"))
            {
                if !platforms.iter().any(|p| p.as_str() == Some(platform)) {
                    return Err(invalid(format!(
                        "service.build.platforms MUST include service.platform {platform:?}"
                    )));
                }
            }
        }
        if let Some(Value::Mapping(nets)) = get(s, "networks") {
            if get(s, "network_mode").is_some() && !nets.is_empty() {
                return Err(invalid(format!(
                    "service {name} declares mutually exclusive `network_mode` and `networks`"
                )));
            }
            for net in nets.keys().filter_map(Value::as_str) {
                if !declared("networks", net) {
                    return Err(invalid_at(
                        service_path(name).key("networks").key(net),
                        format!("service {name:?} refers to undefined network {net}"),
                    ));
                }
            }
        }
        if let Some(Value::Sequence(test)) = get(s, "healthcheck").and_then(|h| h.get("test")) {
            if let Some(first) = test.first().and_then(Value::as_str) {
                if !matches!(first, "CMD" | "CMD-SHELL" | "NONE") {
                    return Err(NormalizeError::Message(format!(
                        "services.{name}.healthcheck.test must start either by \"CMD\", \"CMD-SHELL\" or \"NONE\""
                    )));
                }
            }
        }
        let mut deps = Vec::new();
        if let Some(Value::Mapping(d)) = get(s, "depends_on") {
            for (dep, cfg) in d {
                let dep = scalar_text(dep).unwrap_or_default();
                let required = !matches!(cfg.get("required"), Some(Value::Bool(false)));
                if !names.contains(dep.as_str()) {
                    if required {
                        let at = service_path(name).key("depends_on").key(dep.as_str());
                        return Err(invalid_at(
                            at,
                            format!("service {name:?} depends on undefined service {dep:?}"),
                        ));
                    }
                    continue;
                }
                deps.push(dep);
            }
        }
        edges.push((name.to_string(), deps));
        if let Some(shared) = str_of(s, "network_mode").and_then(|m| m.strip_prefix("service:")) {
            if !names.contains(shared) {
                return Err(NormalizeError::Message(format!(
                    "service {shared:?} not found for network_mode 'service:{shared}'"
                )));
            }
        }
        if let Some(Value::Sequence(vols)) = get(s, "volumes") {
            for v in vols.iter().filter_map(Value::as_mapping) {
                if str_of(v, "type") == Some("volume") {
                    if let Some(src) = str_of(v, "source").filter(|s| !s.is_empty()) {
                        if !declared("volumes", src) {
                            return Err(invalid_at(
                                service_path(name).key("volumes"),
                                format!("service {name:?} refers to undefined volume {src}"),
                            ));
                        }
                    }
                }
            }
        }
        for (kind, singular) in [("secrets", "secret"), ("configs", "config")] {
            if let Some(Value::Sequence(items)) = get(s, kind) {
                for item in items {
                    let src = item
                        .get("source")
                        .and_then(scalar_text)
                        .or_else(|| scalar_text(item))
                        .unwrap_or_default();
                    if !declared(kind, &src) {
                        return Err(invalid_at(
                            service_path(name).key(kind),
                            format!("service {name:?} refers to undefined {singular} {src}"),
                        ));
                    }
                }
            }
        }
        if let Some(cn) = str_of(s, "container_name") {
            if let Some(existing) = container_names.get(cn) {
                return Err(invalid_at(
                    service_path(name).key("container_name"),
                    format!(
                    "services.{name}: container name {cn:?} is already in use by service {existing}"
                ),
                ));
            }
            container_names.insert(cn.to_string(), name.to_string());
        }
    }
    if let Some(Value::Mapping(secrets)) = tree.get("secrets") {
        for (name, secret) in secrets {
            let Some(m) = secret.as_mapping() else {
                continue;
            };
            let external = matches!(get(m, "external"), Some(Value::Bool(true)));
            if !external
                && get(m, "file").is_none()
                && get(m, "environment").is_none()
                && get(m, "content").is_none()
            {
                return Err(invalid(format!(
                    "secret {:?} must declare either `file` or `environment`",
                    scalar_text(name).unwrap_or_default()
                )));
            }
        }
    }
    let graph = ServiceGraph::new(
        edges
            .iter()
            .map(|(n, d)| (n.as_str(), d.iter().map(String::as_str))),
    );
    if let Some(cycle) = graph.find_cycle() {
        return Err(NormalizeError::Message(format!(
            "dependency cycle detected: {}",
            cycle.join(" -> ")
        )));
    }
    Ok(())
}

/// Fold each service's `env_file` contents into its `environment` (explicit entries win) and
/// its `label_file` contents into `labels`, then drop the file lists, as `docker compose
/// config` prints them.
pub fn resolve_env_files(tree: &mut Value, env: &Environment) -> Result<(), NormalizeError> {
    for (_, service) in services_mut(tree) {
        if let Some(files) = service.remove("env_file") {
            let mut from_files: IndexMap<String, String> = IndexMap::new();
            for f in files.as_sequence().into_iter().flatten() {
                let (path, required, raw) = match f {
                    Value::Mapping(m) => (
                        str_of(m, "path").unwrap_or_default().to_string(),
                        !matches!(get(m, "required"), Some(Value::Bool(false))),
                        str_of(m, "format") == Some("raw"),
                    ),
                    other => (scalar_text(other).unwrap_or_default(), true, false),
                };
                let p = std::path::Path::new(&path);
                if !p.exists() {
                    if required {
                        return Err(NormalizeError::EnvFileMissing { path });
                    }
                    continue;
                }
                let read_err = |message: String| NormalizeError::EnvFile {
                    path: path.clone(),
                    message,
                };
                let values = if raw {
                    let content =
                        std::fs::read_to_string(p).map_err(|e| read_err(e.to_string()))?;
                    dotenv::parse_raw(&content, &|k: &str| env.get(k).cloned())
                        .map_err(|e| read_err(e.to_string()))?
                } else {
                    let lookup = |k: &str| -> Option<String> {
                        from_files.get(k).cloned().or_else(|| env.get(k).cloned())
                    };
                    dotenv::read_file(p, &lookup).map_err(|e| read_err(e.to_string()))?
                };
                from_files.extend(values);
            }
            if !from_files.is_empty() {
                let mut merged = Mapping::new();
                for (k, v) in from_files {
                    merged.insert(Value::from(k), Value::from(v));
                }
                if let Some(Value::Mapping(explicit)) = service.get("environment") {
                    for (k, v) in explicit {
                        merged.insert(k.clone(), v.clone());
                    }
                }
                service.insert(Value::from("environment"), Value::Mapping(merged));
            }
        }
        if let Some(files) = service.remove("label_file") {
            let mut merged = Mapping::new();
            for f in files
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let p = std::path::Path::new(f);
                let content = std::fs::read_to_string(p).map_err(|e| NormalizeError::EnvFile {
                    path: f.to_string(),
                    message: e.to_string(),
                })?;
                let values =
                    dotenv::parse_raw(&content, &|k: &str| env.get(k).cloned()).map_err(|e| {
                        NormalizeError::EnvFile {
                            path: f.to_string(),
                            message: e.to_string(),
                        }
                    })?;
                for (k, v) in values {
                    merged.insert(Value::from(k), Value::from(v));
                }
            }
            if let Some(Value::Mapping(explicit)) = service.get("labels") {
                for (k, v) in explicit {
                    merged.insert(k.clone(), v.clone());
                }
            }
            if !merged.is_empty() {
                service.insert(Value::from("labels"), Value::Mapping(merged));
            }
        }
    }
    Ok(())
}

/// Commands given as one string are split into words as docker compose splits them
/// ([`super::shellwords`]), and a healthcheck test given as a string runs through the shell
/// (`CMD-SHELL`). Returns a warning for every string whose tail the splitter dropped at a
/// shell operator (`echo a && echo b` runs `echo a`), which docker compose drops silently.
pub fn split_commands(tree: &mut Value) -> Result<Vec<String>, NormalizeError> {
    fn split(v: &mut Value, what: &str, warnings: &mut Vec<String>) -> Result<(), NormalizeError> {
        if let Value::String(s) = v {
            let split = super::shellwords::split(s)
                .map_err(|e| NormalizeError::Message(format!("{what}: {e}: {s:?}")))?;
            if let Some(dropped) = &split.dropped {
                warnings.push(dropped_warning(what, s, dropped));
            }
            *v = Value::Sequence(split.words.into_iter().map(Value::from).collect());
        }
        Ok(())
    }
    let mut warnings = Vec::new();
    for (name, service) in services_mut(tree) {
        for key in ["command", "entrypoint"] {
            if let Some(v) = service.get_mut(key) {
                split(v, &format!("services.{name}.{key}"), &mut warnings)?;
            }
        }
        if let Some(Value::Mapping(hc)) = service.get_mut("healthcheck") {
            if let Some(Value::String(s)) = hc.get("test").cloned() {
                let test = vec![Value::from("CMD-SHELL"), Value::from(s)];
                hc.insert(Value::from("test"), Value::Sequence(test));
            }
        }
        for hook in ["post_start", "pre_stop"] {
            if let Some(Value::Sequence(hooks)) = service.get_mut(hook) {
                for (i, h) in hooks.iter_mut().enumerate() {
                    if let Some(c) = h.get_mut("command") {
                        split(
                            c,
                            &format!("services.{name}.{hook}[{i}].command"),
                            &mut warnings,
                        )?;
                    }
                }
            }
        }
        if let Some(Value::Sequence(watch)) =
            service.get_mut("develop").and_then(|d| d.get_mut("watch"))
        {
            for (i, w) in watch.iter_mut().enumerate() {
                if let Some(c) = w.get_mut("exec").and_then(|e| e.get_mut("command")) {
                    split(
                        c,
                        &format!("services.{name}.develop.watch[{i}].exec.command"),
                        &mut warnings,
                    )?;
                }
            }
        }
    }
    Ok(warnings)
}

/// The warning for a command string cut at a shell operator: what runs, what is dropped, and
/// the form that would run the whole line.
pub fn dropped_warning(what: &str, line: &str, dropped: &str) -> String {
    let kept = line[..line.len() - dropped.len()].trim_end();
    let runs = if kept.is_empty() {
        "the command is empty".to_string()
    } else {
        format!("only {kept:?} runs")
    };
    format!(
        "{what}: {line:?} is not run by a shell: {runs} and {dropped:?} is dropped \
         (as docker compose does); to run the whole line write [\"sh\", \"-c\", {line:?}]"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(src: &str) -> Value {
        serde_yaml::from_str(src).unwrap()
    }

    #[test]
    fn string_commands_are_split_like_a_shell() {
        let mut t = tree("services:\n  a:\n    command: sh -c \"echo $$X 'a b'\"\n    entrypoint: ''\n    healthcheck: {test: curl -f localhost}\n");
        split_commands(&mut t).unwrap();
        let a = &t["services"]["a"];
        assert_eq!(a["command"], tree("[sh, -c, \"echo $$X 'a b'\"]"));
        assert_eq!(a["entrypoint"], tree("[]"));
        assert_eq!(
            a["healthcheck"]["test"],
            tree("[CMD-SHELL, curl -f localhost]")
        );
        let mut bad = tree("services:\n  a: {command: \"echo 'unterminated\"}\n");
        assert!(split_commands(&mut bad).is_err());
    }

    #[test]
    fn service_resources_must_agree_with_deploy_resources() {
        let check = |body: &str| {
            let t = tree(&format!("services:\n  s:\n    image: x\n{body}\n"));
            check_consistency(&t).map_err(|e| e.to_string())
        };
        let err = check("    mem_limit: 1g\n    deploy: {resources: {limits: {memory: 2g}}}")
            .unwrap_err();
        assert!(
            err.contains(
                "can't set distinct values on 'mem_limit' and 'deploy.resources.limits.memory'"
            ),
            "{err}"
        );
        // An absent deploy value counts as zero once the limits mapping exists.
        assert!(check("    pids_limit: 5\n    deploy: {resources: {limits: {cpus: 1}}}").is_err());
        assert!(check("    cpus: 0.5\n    deploy: {resources: {limits: {memory: 1g}}}").is_err());
        assert!(
            check("    mem_reservation: 1g\n    deploy: {resources: {reservations: {}}}").is_err()
        );
        // Equal after units, or nothing to compare with.
        assert!(
            check("    mem_limit: 1g\n    deploy: {resources: {limits: {memory: 1024m}}}").is_ok()
        );
        assert!(check("    cpus: '1.5'\n    deploy: {resources: {limits: {cpus: 1.5}}}").is_ok());
        assert!(check("    mem_limit: 1g\n    deploy: {resources: {}}").is_ok());
    }

    #[test]
    fn a_command_cut_at_an_operator_is_split_like_docker_and_warned_about() {
        let mut t = tree("services:\n  a:\n    command: echo one && echo two\n    post_start: [{command: 'x; y'}]\n");
        let warnings = split_commands(&mut t).unwrap();
        assert_eq!(t["services"]["a"]["command"], tree("[echo, one]"));
        assert_eq!(t["services"]["a"]["post_start"][0]["command"], tree("[x]"));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].starts_with("services.a.command: "),
            "{}",
            warnings[0]
        );
        assert!(
            warnings[0].contains("\"&& echo two\" is dropped"),
            "{}",
            warnings[0]
        );
        assert!(
            warnings[0].contains(r#"["sh", "-c", "echo one && echo two"]"#),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn default_network_is_implicit_and_names_are_derived() {
        let mut t = tree("name: p\nservices:\n  a: {image: x}\n  b: {image: x, network_mode: host}\nvolumes:\n  data:\n  ext: {external: true}\n");
        normalize(&mut t, &Environment::new()).unwrap();
        assert_eq!(t["services"]["a"]["networks"], tree("default: null"));
        assert!(t["services"]["b"].get("networks").is_none());
        assert_eq!(t["networks"]["default"]["name"], Value::from("p_default"));
        assert_eq!(t["volumes"]["data"]["name"], Value::from("p_data"));
        assert_eq!(t["volumes"]["ext"]["name"], Value::from("ext"));
    }

    #[test]
    fn implied_dependencies_are_added() {
        let mut t = tree("name: p\nservices:\n  a: {image: x, links: ['b:alias'], network_mode: 'service:c', volumes_from: ['d:ro', 'container:e']}\n  b: {image: x}\n  c: {image: x}\n  d: {image: x}\n");
        normalize(&mut t, &Environment::new()).unwrap();
        let deps = t["services"]["a"]["depends_on"].as_mapping().unwrap();
        let keys: Vec<&str> = deps.keys().filter_map(Value::as_str).collect();
        assert_eq!(keys, ["b", "c", "d"]);
        assert_eq!(deps["d"]["restart"], Value::Bool(false));
        assert_eq!(deps["b"]["restart"], Value::Bool(true));
    }

    #[test]
    fn environment_without_values_is_resolved_or_kept_null() {
        let mut env = Environment::new();
        env.insert("HOME".into(), "/root".into());
        let mut t = tree("services:\n  a:\n    image: x\n    environment: [A=1, HOME, NOPE]\n    build: {args: [HOME, NOPE]}\n");
        resolve_environment(&mut t, &env);
        assert_eq!(
            t["services"]["a"]["environment"],
            tree("{A: '1', HOME: /root, NOPE: null}")
        );
        assert_eq!(t["services"]["a"]["build"]["args"], tree("{HOME: /root}"));
    }

    #[test]
    fn relative_paths_become_absolute() {
        let mut t = tree("services:\n  a:\n    build: {context: ./app}\n    volumes: [{type: bind, source: ./data, target: /d}, {type: volume, source: v, target: /v}]\n    env_file: [{path: .env, required: true}]\nsecrets:\n  s: {file: ./s.txt}\n");
        resolve_relative_paths(&mut t, "/work/p");
        let a = &t["services"]["a"];
        assert_eq!(a["build"]["context"], Value::from("/work/p/app"));
        assert_eq!(a["volumes"][0]["source"], Value::from("/work/p/data"));
        assert_eq!(a["volumes"][1]["source"], Value::from("v"));
        assert_eq!(a["env_file"][0]["path"], Value::from("/work/p/.env"));
        assert_eq!(t["secrets"]["s"]["file"], Value::from("/work/p/s.txt"));
        let mut t = tree("services:\n  a: {build: {context: 'https://github.com/x/y.git'}}\n");
        resolve_relative_paths(&mut t, "/w");
        assert_eq!(
            t["services"]["a"]["build"]["context"],
            Value::from("https://github.com/x/y.git")
        );
    }

    #[test]
    fn profiles_disable_services_and_guard_dependencies() {
        let src = "services:\n  a: {image: x}\n  dbg: {image: x, profiles: [debug]}\n";
        let mut t = tree(src);
        assert_eq!(
            apply_profiles(&mut t, &[], &[]).unwrap(),
            vec!["dbg".to_string()]
        );
        let mut t = tree(src);
        assert!(apply_profiles(&mut t, &["debug".into()], &[])
            .unwrap()
            .is_empty());
        let mut t = tree(src);
        assert!(apply_profiles(&mut t, &["*".into()], &[])
            .unwrap()
            .is_empty());
        let mut t = tree(src);
        assert!(apply_profiles(&mut t, &[], &["dbg".into()])
            .unwrap()
            .is_empty());
        let mut t = tree("services:\n  a: {image: x, depends_on: {dbg: {condition: service_started, required: true}}}\n  dbg: {image: x, profiles: [debug]}\n");
        let err = apply_profiles(&mut t, &[], &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("depends on undefined service \"dbg\""),
            "{err}"
        );
        let mut t = tree("services:\n  a: {image: x, depends_on: {dbg: {condition: service_started, required: false}}}\n  dbg: {image: x, profiles: [debug]}\n");
        assert!(apply_profiles(&mut t, &[], &[]).is_ok());
    }

    #[test]
    fn consistency_errors_name_the_problem() {
        let check = |src: &str| check_consistency(&tree(src)).unwrap_err().to_string();
        assert!(check("services:\n  a: {}\n").contains("neither an image nor a build context"));
        assert!(
            check("services:\n  a: {image: x, depends_on: {b: {required: true}}}\n")
                .contains("depends on undefined service \"b\"")
        );
        assert!(check("services:\n  a: {image: x, networks: {n: null}}\n")
            .contains("undefined network n"));
        assert!(check(
            "services:\n  a: {image: x, volumes: [{type: volume, source: v, target: /v}]}\n"
        )
        .contains("undefined volume v"));
        assert!(check(
            "services:\n  a: {image: x, container_name: c}\n  b: {image: x, container_name: c}\n"
        )
        .contains("container name \"c\" is already in use"));
        assert_eq!(
            check("services:\n  a: {image: x, scale: 2, deploy: {replicas: 3}}\n"),
            "services.a: can't set distinct values on 'scale' and 'deploy.replicas': invalid compose project"
        );
        assert!(check_consistency(&tree(
            "services:\n  a: {image: x, scale: 2, deploy: {replicas: 2}}\n"
        ))
        .is_ok());
        assert_eq!(
            check("services:\n  s1: {image: x, depends_on: {s2: {}}}\n  s2: {image: x, depends_on: {s1: {}}}\n"),
            "dependency cycle detected: s1 -> s2 -> s1"
        );
    }
}
