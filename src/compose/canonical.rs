//! Short syntax → long syntax, the way compose-go's `transform.Canonical` does it.
//!
//! Runs on one file's YAML tree after interpolation and before merging, so that every later stage
//! (merge, unicity, the typed model) sees one shape per attribute: ports and volumes as lists of
//! mappings, `depends_on`/`networks` as mappings, key=value lists (`environment`, `labels`, ...)
//! as mappings. Defaults that are not implied by the short syntax (port `mode`/`protocol` for a
//! bare integer, secret targets, ...) and path resolution belong to later stages.
//!
//! Values under a `!override` tag are transformed and keep their tag; values under `!reset` are
//! left alone, the merge drops them.

use serde_yaml::{Mapping, Number, Value};
use thiserror::Error;

use super::path::TreePath;

#[derive(Debug, Error, PartialEq)]
pub enum CanonicalError {
    #[error("top-level object must be a mapping, found a {found}")]
    NotAMapping { found: &'static str },
    #[error("{path}: invalid type {found} for {what}")]
    InvalidType {
        path: TreePath,
        what: &'static str,
        found: &'static str,
    },
    #[error("{path}: invalid port spec {spec:?}: {reason}")]
    Port {
        path: TreePath,
        spec: String,
        reason: String,
    },
    #[error("{path}: invalid spec: {spec}: {reason}")]
    Volume {
        path: TreePath,
        spec: String,
        reason: String,
    },
    #[error("{path}: invalid value {value:?}, expected key=value")]
    KeyValue { path: TreePath, value: String },
    #[error("{path}: confusing device mapping {spec:?}, please use long syntax")]
    Device { path: TreePath, spec: String },
    #[error("{path}: invalid ssh key {key:?}, expected id=path or default")]
    SshKey { path: TreePath, key: String },
    #[error("{path}: name and external.name conflict; only use name")]
    ExternalNameConflict { path: TreePath },
}

type Result<T = ()> = std::result::Result<T, CanonicalError>;

/// Rewrites `root` (one compose file, interpolated) into canonical long syntax, in place.
pub fn canonical(root: &mut Value) -> Result {
    let path = TreePath::root();
    through_tags(root, |root| {
        let Value::Mapping(top) = root else {
            return Err(CanonicalError::NotAMapping {
                found: type_name(root),
            });
        };
        for (k, v) in top.iter_mut() {
            let Some(key) = k.as_str() else { continue };
            let p = path.key(key);
            match key {
                "services" => each_entry(v, &p, service)?,
                "networks" | "volumes" => each_entry(v, &p, |v, p| resource(v, p, true))?,
                "secrets" | "configs" => each_entry(v, &p, |v, p| resource(v, p, false))?,
                "include" => each_item(v, &p, "include", include)?,
                _ => {}
            }
        }
        Ok(())
    })
}

/// Applies `f` to the value under any `!override` tag; `!reset` values are skipped.
fn through_tags(v: &mut Value, f: impl FnOnce(&mut Value) -> Result) -> Result {
    match v {
        Value::Tagged(t) if t.tag == "reset" => Ok(()),
        Value::Tagged(t) => through_tags(&mut t.value, f),
        _ => f(v),
    }
}

/// Applies `f` to every value of a mapping (`services.*`, `volumes.*`, ...).
fn each_entry(v: &mut Value, p: &TreePath, f: impl Fn(&mut Value, &TreePath) -> Result) -> Result {
    through_tags(v, |v| {
        if let Value::Mapping(m) = v {
            for (k, e) in m.iter_mut() {
                let p = p.key(key_string(k));
                through_tags(e, |e| f(e, &p))?;
            }
        }
        Ok(())
    })
}

/// Applies `f` to every item of a sequence (`volumes.*`, `secrets.*`, ...).
fn each_item(
    v: &mut Value,
    p: &TreePath,
    what: &'static str,
    f: impl Fn(&mut Value, &TreePath) -> Result,
) -> Result {
    through_tags(v, |v| match v {
        Value::Sequence(seq) => {
            for (i, e) in seq.iter_mut().enumerate() {
                let p = p.index(i);
                through_tags(e, |e| f(e, &p))?;
            }
            Ok(())
        }
        Value::Null => Ok(()),
        other => Err(invalid(p, what, other)),
    })
}

fn service(svc: &mut Value, p: &TreePath) -> Result {
    let Value::Mapping(m) = svc else {
        return Ok(());
    };
    for (k, v) in m.iter_mut() {
        let Some(key) = k.as_str() else { continue };
        let p = p.key(key);
        let p = &p;
        through_tags(v, |v| match key {
            "build" => build(v, p),
            "depends_on" => depends_on(v, p),
            "env_file" => env_file(v, p),
            "extends" => extends(v, p),
            "gpus" => gpus(v, p),
            "networks" | "models" => service_networks(v, p),
            "ports" => ports(v, p),
            "volumes" => each_item(v, p, "volumes", volume_mount),
            "devices" => each_item(v, p, "devices", device),
            "secrets" | "configs" => each_item(v, p, "file mount", file_mount),
            "ulimits" => each_entry(v, p, ulimit),
            "environment" | "labels" | "annotations" | "sysctls" => key_values(v, p, false),
            "extra_hosts" => extra_hosts(v, p),
            "dns" | "dns_search" | "tmpfs" | "label_file" => string_or_list(v),
            "deploy" => each_key(v, p, "labels", |v, p| key_values(v, p, false)),
            "develop" => each_key(v, p, "watch", watch),
            _ => Ok(()),
        })?;
    }
    Ok(())
}

/// Applies `f` to `v[key]` when `v` is a mapping holding `key`.
fn each_key(
    v: &mut Value,
    p: &TreePath,
    key: &str,
    f: impl FnOnce(&mut Value, &TreePath) -> Result,
) -> Result {
    if let Some(inner) = v.as_mapping_mut().and_then(|m| m.get_mut(key)) {
        let p = p.key(key);
        through_tags(inner, |inner| f(inner, &p))?;
    }
    Ok(())
}

fn build(v: &mut Value, p: &TreePath) -> Result {
    match v {
        Value::String(s) => {
            *v = map([("context", Value::String(std::mem::take(s)))]);
            Ok(())
        }
        Value::Mapping(m) => {
            // No default `context: .` here (compose-go adds it after merging): added before
            // the merge it would replace the context of the file underneath.
            for (k, e) in m.iter_mut() {
                let Some(key) = k.as_str() else { continue };
                let p = p.key(key);
                let p = &p;
                through_tags(e, |e| match key {
                    "args" | "labels" => key_values(e, p, false),
                    "additional_contexts" => key_values(e, p, true),
                    "ssh" => ssh(e, p),
                    "secrets" => each_item(e, p, "file mount", file_mount),
                    "ulimits" => each_entry(e, p, ulimit),
                    "extra_hosts" => extra_hosts(e, p),
                    _ => Ok(()),
                })?;
            }
            Ok(())
        }
        other => Err(invalid(p, "build", other)),
    }
}

fn depends_on(v: &mut Value, p: &TreePath) -> Result {
    match v {
        Value::Sequence(seq) => {
            let mut m = Mapping::new();
            for (i, e) in seq.iter().enumerate() {
                let name = e
                    .as_str()
                    .ok_or_else(|| invalid(&p.index(i), "depends_on entry", e))?;
                m.insert(
                    name.into(),
                    map([
                        ("condition", "service_started".into()),
                        ("required", true.into()),
                    ]),
                );
            }
            *v = Value::Mapping(m);
            Ok(())
        }
        Value::Mapping(m) => {
            for (k, e) in m.iter_mut() {
                let p = p.key(key_string(k));
                through_tags(e, |e| {
                    let Value::Mapping(d) = e else {
                        return Err(invalid(&p, "depends_on entry", e));
                    };
                    if !d.contains_key("condition") {
                        d.insert("condition".into(), "service_started".into());
                    }
                    if !d.contains_key("required") {
                        d.insert("required".into(), true.into());
                    }
                    Ok(())
                })?;
            }
            Ok(())
        }
        other => Err(invalid(p, "depends_on", other)),
    }
}

fn env_file(v: &mut Value, p: &TreePath) -> Result {
    fn entry(e: &mut Value, p: &TreePath) -> Result {
        match e {
            Value::String(s) => {
                *e = map([
                    ("path", Value::String(std::mem::take(s))),
                    ("required", true.into()),
                ]);
                Ok(())
            }
            Value::Mapping(m) => {
                if !m.contains_key("required") {
                    m.insert("required".into(), true.into());
                }
                Ok(())
            }
            other => Err(invalid(p, "env_file", other)),
        }
    }
    if let Value::String(_) = v {
        *v = Value::Sequence(vec![std::mem::take(v)]);
    }
    each_item(v, p, "env_file", entry)
}

fn extends(v: &mut Value, p: &TreePath) -> Result {
    match v {
        Value::String(s) => {
            *v = map([("service", Value::String(std::mem::take(s)))]);
            Ok(())
        }
        Value::Mapping(_) => Ok(()),
        other => Err(invalid(p, "extends", other)),
    }
}

fn gpus(v: &mut Value, p: &TreePath) -> Result {
    match v {
        // The only string form the schema allows is `all`.
        Value::String(_) => {
            *v = Value::Sequence(vec![map([("count", "all".into())])]);
            Ok(())
        }
        Value::Sequence(_) => Ok(()),
        other => Err(invalid(p, "gpus", other)),
    }
}

fn service_networks(v: &mut Value, p: &TreePath) -> Result {
    if let Value::Sequence(seq) = v {
        let mut m = Mapping::new();
        for (i, e) in seq.iter().enumerate() {
            let name = e
                .as_str()
                .ok_or_else(|| invalid(&p.index(i), "network name", e))?;
            m.insert(name.into(), Value::Null);
        }
        *v = Value::Mapping(m);
    }
    Ok(())
}

fn file_mount(v: &mut Value, p: &TreePath) -> Result {
    match v {
        Value::String(s) => {
            *v = map([("source", Value::String(std::mem::take(s)))]);
            Ok(())
        }
        Value::Mapping(_) => Ok(()),
        other => Err(invalid(p, "file mount", other)),
    }
}

fn ulimit(v: &mut Value, p: &TreePath) -> Result {
    match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(()),
        Value::Mapping(_) => Ok(()),
        other => Err(invalid(p, "ulimits", other)),
    }
}

fn ssh(v: &mut Value, p: &TreePath) -> Result {
    let Value::Sequence(seq) = v else {
        return match v {
            Value::Mapping(_) => Ok(()),
            other => Err(invalid(p, "ssh", other)),
        };
    };
    let mut m = Mapping::new();
    for (i, e) in seq.iter().enumerate() {
        let s = e
            .as_str()
            .ok_or_else(|| invalid(&p.index(i), "ssh key", e))?;
        match s.split_once('=') {
            Some((id, path)) => m.insert(id.into(), path.into()),
            None if s == "default" => m.insert(s.into(), Value::Null),
            None => {
                return Err(CanonicalError::SshKey {
                    path: p.index(i),
                    key: s.to_string(),
                })
            }
        };
    }
    *v = Value::Mapping(m);
    Ok(())
}

/// `[KEY=VAL, KEY]` → `{KEY: VAL, KEY: null}`; a repeated key keeps its first position and its
/// last value, as compose-go's unicity rule does for these lists.
fn key_values(v: &mut Value, p: &TreePath, require_value: bool) -> Result {
    match v {
        Value::Sequence(seq) => {
            let mut m = Mapping::new();
            for (i, e) in seq.iter().enumerate() {
                let s = scalar_string(e).ok_or_else(|| invalid(&p.index(i), "key=value", e))?;
                match s.split_once('=') {
                    Some((k, val)) => m.insert(k.into(), val.into()),
                    None if require_value => {
                        return Err(CanonicalError::KeyValue {
                            path: p.index(i),
                            value: s,
                        })
                    }
                    None => m.insert(s.into(), Value::Null),
                };
            }
            *v = Value::Mapping(m);
            Ok(())
        }
        Value::Mapping(_) | Value::Null => Ok(()),
        other => Err(invalid(p, "key=value mapping", other)),
    }
}

/// `extra_hosts` stays a list (order and duplicates matter to docker); the mapping form becomes
/// sorted `host=ip` entries, one per address. `host:ip` entries are left for the typed model.
fn extra_hosts(v: &mut Value, p: &TreePath) -> Result {
    match v {
        Value::Mapping(m) => {
            let mut hosts = Vec::new();
            for (k, e) in m.iter() {
                let host = key_string(k);
                match e {
                    Value::Null => hosts.push(host),
                    Value::Sequence(ips) => {
                        for ip in ips {
                            let ip = scalar_string(ip)
                                .ok_or_else(|| invalid(&p.key(&host), "extra host", ip))?;
                            hosts.push(format!("{host}={ip}"));
                        }
                    }
                    other => {
                        let ip = scalar_string(other)
                            .ok_or_else(|| invalid(&p.key(&host), "extra host", other))?;
                        hosts.push(format!("{host}={ip}"));
                    }
                }
            }
            hosts.sort();
            *v = Value::Sequence(hosts.into_iter().map(Value::String).collect());
            Ok(())
        }
        Value::String(_) => string_or_list(v),
        Value::Sequence(_) | Value::Null => Ok(()),
        other => Err(invalid(p, "extra_hosts", other)),
    }
}

fn string_or_list(v: &mut Value) -> Result {
    if let Value::String(_) = v {
        *v = Value::Sequence(vec![std::mem::take(v)]);
    }
    Ok(())
}

/// `develop.watch` items whose `path` is a list become one item per path.
fn watch(v: &mut Value, _p: &TreePath) -> Result {
    let Value::Sequence(seq) = v else {
        return Ok(());
    };
    let mut out = Vec::with_capacity(seq.len());
    for item in std::mem::take(seq) {
        let paths = match item.get("path") {
            Some(Value::Sequence(paths)) => paths.clone(),
            _ => {
                out.push(item);
                continue;
            }
        };
        for path in paths {
            let mut one = item.clone();
            if let Value::Mapping(m) = &mut one {
                m.insert("path".into(), path);
            }
            out.push(one);
        }
    }
    *seq = out;
    Ok(())
}

fn device(v: &mut Value, p: &TreePath) -> Result {
    let spec = match v {
        Value::Mapping(_) => return Ok(()),
        Value::String(s) => s.clone(),
        other => return Err(invalid(p, "device", other)),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, perms) = match parts.as_slice() {
        [src] => (*src, "", "rwm"),
        [src, dst] => (*src, *dst, "rwm"),
        [src, dst, perms] => (*src, *dst, *perms),
        _ => {
            return Err(CanonicalError::Device {
                path: p.clone(),
                spec,
            })
        }
    };
    let dst = if dst.is_empty() { src } else { dst };
    *v = map([
        ("source", src.into()),
        ("target", dst.into()),
        ("permissions", perms.into()),
    ]);
    Ok(())
}

fn include(v: &mut Value, p: &TreePath) -> Result {
    match v {
        Value::String(s) => {
            let path = Value::Sequence(vec![Value::String(std::mem::take(s))]);
            *v = map([("path", path)]);
            Ok(())
        }
        Value::Mapping(m) => {
            for key in ["path", "env_file"] {
                if let Some(e) = m.get_mut(key) {
                    string_or_list(e)?;
                }
            }
            Ok(())
        }
        other => Err(invalid(p, "include", other)),
    }
}

/// Top-level `networks.*`, `volumes.*`, `secrets.*`, `configs.*`: an empty entry becomes `{}`, the
/// legacy `external: {name: x}` becomes `external: true` + `name: x`.
fn resource(v: &mut Value, p: &TreePath, has_labels: bool) -> Result {
    if v.is_null() {
        *v = Value::Mapping(Mapping::new());
        return Ok(());
    }
    let Value::Mapping(m) = v else {
        return Err(invalid(p, "resource definition", v));
    };
    if has_labels {
        if let Some(labels) = m.get_mut("labels") {
            let lp = p.key("labels");
            through_tags(labels, |l| key_values(l, &lp, false))?;
        }
    }
    let ext_name = match m.get_mut("external") {
        Some(ext @ Value::Mapping(_)) => {
            let name = ext.get("name").cloned();
            *ext = Value::Bool(true);
            name
        }
        _ => None,
    };
    if let Some(ext_name) = ext_name {
        match m.get("name") {
            Some(name) if *name != ext_name => {
                return Err(CanonicalError::ExternalNameConflict { path: p.clone() })
            }
            Some(_) => {}
            None => {
                m.insert("name".into(), ext_name);
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Ports: the short syntax of docker's `nat.ParsePortSpec`.

fn ports(v: &mut Value, p: &TreePath) -> Result {
    let Value::Sequence(seq) = v else {
        return Err(invalid(p, "ports", v));
    };
    let mut out = Vec::with_capacity(seq.len());
    for (i, entry) in std::mem::take(seq).into_iter().enumerate() {
        match entry {
            Value::Number(n) if n.is_u64() || n.is_i64() => {
                out.push(map([("target", Value::Number(n))]));
            }
            Value::String(spec) => {
                let parsed = parse_port(&spec).map_err(|reason| CanonicalError::Port {
                    path: p.index(i),
                    spec: spec.clone(),
                    reason,
                })?;
                out.extend(parsed);
            }
            e @ (Value::Mapping(_) | Value::Tagged(_)) => out.push(e),
            other => return Err(invalid(&p.index(i), "port", &other)),
        }
    }
    *seq = out;
    Ok(())
}

/// A short port spec (`run --publish`) as the model's port entries.
pub fn port_configs(
    spec: &str,
) -> std::result::Result<Vec<super::model::ServicePortConfig>, String> {
    parse_port(spec)?
        .into_iter()
        .map(|v| serde_yaml::from_value(v).map_err(|e| e.to_string()))
        .collect()
}

/// A short volume spec (`run --volume`) as the model's mount.
pub fn volume_config(spec: &str) -> std::result::Result<super::model::ServiceVolumeConfig, String> {
    serde_yaml::from_value(parse_volume(spec)?).map_err(|e| e.to_string())
}

/// `[[ip:]host:]container[/proto]`, where host and container may be ranges. One long-syntax
/// entry per container port, ordered as docker orders them (by the string `port/proto`).
fn parse_port(spec: &str) -> std::result::Result<Vec<Value>, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let n = parts.len();
    let container = parts[n - 1];
    let (ip, host) = match n {
        1 => (String::new(), ""),
        2 => (String::new(), parts[0]),
        _ => (parts[..n - 2].join(":"), parts[n - 2]),
    };
    let (proto, container) = split_proto(container);
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let ip = match ip.strip_prefix('[') {
        Some(rest) => rest
            .strip_suffix(']')
            .map(str::to_string)
            .ok_or_else(|| format!("invalid IP address: {ip}"))?,
        None => ip,
    };
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    if container.is_empty() {
        return Err("no port specified".to_string());
    }
    let (start, end) =
        port_range(container).ok_or_else(|| format!("invalid containerPort: {container}"))?;
    let (host_start, host_end) = if host.is_empty() {
        (0, 0)
    } else {
        let r = port_range(host).ok_or_else(|| format!("invalid hostPort: {host}"))?;
        // A host range for a single container port is a pool to pick from.
        if end - start != r.1 - r.0 && end != start {
            return Err(format!(
                "invalid ranges specified for container and host Ports: {container} and {host}"
            ));
        }
        r
    };
    let mut entries: Vec<(String, Value)> = (0..=end - start)
        .map(|i| {
            let target = start + i;
            let published = if host.is_empty() {
                String::new()
            } else if start == end && host_start != host_end {
                format!("{host_start}-{host_end}")
            } else {
                (host_start + i).to_string()
            };
            let mut m = Mapping::new();
            m.insert("mode".into(), "ingress".into());
            if !ip.is_empty() {
                m.insert("host_ip".into(), ip.as_str().into());
            }
            m.insert("target".into(), Value::Number(Number::from(target)));
            if !published.is_empty() {
                m.insert("published".into(), published.into());
            }
            m.insert("protocol".into(), proto.as_str().into());
            (format!("{target}/{proto}"), Value::Mapping(m))
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries.into_iter().map(|(_, v)| v).collect())
}

fn split_proto(raw: &str) -> (&str, &str) {
    let mut parts = raw.split('/');
    let port = parts.next().unwrap_or("");
    if port.is_empty() {
        return ("", "");
    }
    match parts.next() {
        None | Some("") => ("tcp", port),
        Some(proto) => (proto, port),
    }
}

fn port_range(s: &str) -> Option<(u32, u32)> {
    let parse = |s: &str| s.parse::<u16>().ok().map(u32::from);
    match s.split_once('-') {
        None => parse(s).map(|p| (p, p)),
        Some((a, b)) => {
            let (a, b) = (parse(a)?, parse(b)?);
            (b >= a).then_some((a, b))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Volumes: compose-go's `format.ParseVolume`.

fn volume_mount(v: &mut Value, p: &TreePath) -> Result {
    match v {
        // The long syntax's target is cleaned too, as docker compose prints it (`/a/../b/` is
        // `/b`), and as the short syntax's is below.
        Value::Mapping(m) => {
            if let Some(Value::String(t)) = m.get_mut("target") {
                *t = clean_path(t);
            }
            Ok(())
        }
        Value::String(spec) => {
            *v = parse_volume(spec).map_err(|reason| CanonicalError::Volume {
                path: p.clone(),
                spec: spec.clone(),
                reason,
            })?;
            Ok(())
        }
        other => Err(invalid(p, "service volume mount", other)),
    }
}

#[derive(Default)]
struct VolumeSpec {
    source: String,
    target: String,
    read_only: bool,
    nocopy: Option<bool>,
    selinux: Option<String>,
    propagation: Option<String>,
}

/// `[source:]target[:options]`. A one-letter first section followed by `:` is read as a
/// Windows drive (`C:/data`), as docker does, even on Linux.
pub(crate) fn parse_volume(spec: &str) -> std::result::Result<Value, String> {
    let chars: Vec<char> = spec.chars().collect();
    match chars.len() {
        0 => return Err("invalid empty volume spec".to_string()),
        1 | 2 => {
            return Ok(map([
                ("type", "volume".into()),
                ("target", clean_path(spec).into()),
            ]))
        }
        _ => {}
    }
    let mut vol = VolumeSpec::default();
    let mut buf = String::new();
    let mut depth = 0usize; // inside ${...}: colons there are not separators
    let mut prev_dollar = false;
    // `None` marks the end of the spec, which closes the last section.
    for c in chars.iter().copied().map(Some).chain(std::iter::once(None)) {
        match c {
            Some('{') if prev_dollar => {
                depth += 1;
                buf.push('{');
            }
            Some('}') if depth > 0 => {
                depth -= 1;
                buf.push('}');
            }
            Some(':') if buf.chars().count() == 1 && buf.chars().all(char::is_alphabetic) => {
                buf.push(':')
            }
            Some(':') | None if depth == 0 => {
                volume_section(&mut vol, &buf, c.is_none())?;
                buf.clear();
            }
            Some(c) => buf.push(c),
            None => volume_section(&mut vol, &buf, true)?,
        }
        prev_dollar = c == Some('$');
    }
    Ok(volume_value(vol))
}

fn volume_section(vol: &mut VolumeSpec, buf: &str, last: bool) -> std::result::Result<(), String> {
    if buf.is_empty() {
        return Err("empty section between colons".to_string());
    }
    if vol.source.is_empty() && last {
        vol.target = buf.to_string(); // anonymous volume
    } else if vol.source.is_empty() {
        vol.source = buf.to_string();
    } else if vol.target.is_empty() {
        vol.target = buf.to_string();
    } else if !last {
        return Err("too many colons".to_string());
    } else {
        for opt in buf.split(',') {
            match opt {
                "ro" => vol.read_only = true,
                "rw" => vol.read_only = false,
                "nocopy" => vol.nocopy = Some(true),
                "z" | "Z" => vol.selinux = Some(opt.to_string()),
                "rprivate" | "private" | "rshared" | "shared" | "rslave" | "slave" => {
                    vol.propagation = Some(opt.to_string())
                }
                // docker ignores unknown options too
                _ => {}
            }
        }
    }
    Ok(())
}

fn volume_value(vol: VolumeSpec) -> Value {
    let is_bind = is_file_path(&vol.source);
    let mut m = Mapping::new();
    m.insert(
        "type".into(),
        if is_bind { "bind" } else { "volume" }.into(),
    );
    if !vol.source.is_empty() {
        m.insert("source".into(), vol.source.as_str().into());
    }
    m.insert("target".into(), clean_path(&vol.target).into());
    if vol.read_only {
        m.insert("read_only".into(), true.into());
    }
    let has_bind_opts = vol.selinux.is_some() || vol.propagation.is_some();
    if is_bind || has_bind_opts {
        let mut b = Mapping::new();
        if let Some(s) = vol.selinux {
            b.insert("selinux".into(), s.into());
        }
        if let Some(p) = vol.propagation {
            b.insert("propagation".into(), p.into());
        }
        if is_bind {
            // short syntax binds create a missing host path (docker-compose v1 compatibility)
            b.insert("create_host_path".into(), true.into());
        }
        m.insert("bind".into(), Value::Mapping(b));
    }
    if !is_bind || vol.nocopy.is_some() {
        let mut v = Mapping::new();
        if let Some(nocopy) = vol.nocopy {
            v.insert("nocopy".into(), nocopy.into());
        }
        m.insert("volume".into(), Value::Mapping(v));
    }
    Value::Mapping(m)
}

fn is_file_path(source: &str) -> bool {
    let mut chars = source.chars();
    match chars.next() {
        None => false,
        Some('.' | '/' | '~') => true,
        Some(_) if source.starts_with("\\\\") => true,
        Some(first) => first.is_alphabetic() && chars.next() == Some(':'),
    }
}

/// Go's `path.Clean` (lexical), which compose-go applies to mount targets; empty stays empty.
pub(crate) fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return String::new();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Mapping(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

fn key_string(k: &Value) -> String {
    scalar_string(k).unwrap_or_default()
}

/// Strings, numbers and booleans as text; what a `KEY=VAL` list entry may be.
pub(crate) fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(crate::compose::yaml::number_text(n)),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Sequence(_) => "sequence",
        Value::Mapping(_) => "mapping",
        Value::Tagged(_) => "tagged value",
    }
}

fn invalid(path: &TreePath, what: &'static str, found: &Value) -> CanonicalError {
    CanonicalError::InvalidType {
        path: path.clone(),
        what,
        found: type_name(found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(src: &str) -> Value {
        serde_yaml::from_str(src).unwrap()
    }

    fn canon(src: &str) -> Value {
        let mut v = yaml(src);
        canonical(&mut v).unwrap();
        v
    }

    fn canon_err(src: &str) -> String {
        let mut v = yaml(src);
        canonical(&mut v).unwrap_err().to_string()
    }

    /// The service `w` of a one-service file whose body is `body`.
    fn svc(body: &str) -> Value {
        let src = format!("services:\n  w:\n{}", indent(body));
        canon(&src)["services"]["w"].clone()
    }

    fn indent(s: &str) -> String {
        s.lines().map(|l| format!("    {l}\n")).collect()
    }

    // Expected values cross-checked with `docker compose config --format json` (v2.40.3), minus
    // the later stages: port defaults for bare integers, absolute paths, secret targets.
    #[test]
    fn ports_short_syntax() {
        let got = svc(
            r#"ports: ["8080:80/udp", "3000-3002:4000-4002", "127.0.0.1:81:80", 5000,
  "9000", "[::1]:82:80", "127.0.0.1::83", {target: 90, published: 9090}]"#,
        );
        let want = yaml(
            r#"
ports:
  - {mode: ingress, target: 80, published: "8080", protocol: udp}
  - {mode: ingress, target: 4000, published: "3000", protocol: tcp}
  - {mode: ingress, target: 4001, published: "3001", protocol: tcp}
  - {mode: ingress, target: 4002, published: "3002", protocol: tcp}
  - {mode: ingress, host_ip: 127.0.0.1, target: 80, published: "81", protocol: tcp}
  - {target: 5000}
  - {mode: ingress, target: 9000, protocol: tcp}
  - {mode: ingress, host_ip: "::1", target: 80, published: "82", protocol: tcp}
  - {mode: ingress, host_ip: 127.0.0.1, target: 83, protocol: tcp}
  - {target: 90, published: 9090}
"#,
        );
        assert_eq!(got, want);
    }

    #[test]
    fn port_ranges_sort_as_docker_does_and_host_range_is_a_pool() {
        let got = svc(r#"ports: ["998-1000", "8000-8010:80", "0:80", ":81"]"#);
        let want = yaml(
            r#"
ports:
  - {mode: ingress, target: 1000, protocol: tcp}
  - {mode: ingress, target: 998, protocol: tcp}
  - {mode: ingress, target: 999, protocol: tcp}
  - {mode: ingress, target: 80, published: "8000-8010", protocol: tcp}
  - {mode: ingress, target: 80, published: "0", protocol: tcp}
  - {mode: ingress, target: 81, protocol: tcp}
"#,
        );
        assert_eq!(got, want);
    }

    #[test]
    fn invalid_ports_name_path_spec_and_reason() {
        let cases = [
            ("80:80:80", "invalid IP address: 80"),
            ("abc", "invalid containerPort: abc"),
            ("80-79:80", "invalid hostPort: 80-79"),
            (
                "8080-8081:80-82",
                "invalid ranges specified for container and host Ports: 80-82 and 8080-8081",
            ),
            ("70000:80", "invalid hostPort: 70000"),
            ("80/xyz", "invalid proto: xyz"),
            ("1.2.3.4:80", "invalid hostPort: 1.2.3.4"),
            ("80:", "invalid proto: "),
        ];
        for (spec, reason) in cases {
            let err = canon_err(&format!("services:\n  w:\n    ports: [80, {spec:?}]"));
            assert_eq!(
                err,
                format!("services.w.ports[1]: invalid port spec {spec:?}: {reason}"),
                "{spec}"
            );
        }
        assert_eq!(
            canon_err("services:\n  w:\n    ports: 80"),
            "services.w.ports: invalid type integer for ports"
        );
    }

    #[test]
    fn volumes_short_syntax() {
        let got = svc(
            r#"volumes: ["./data:/data:ro", "named:/named:nocopy", "/host:/ctr:z",
  "/host2:/ctr2:rw,rshared,Z", "/anon", "named2:/n2/../x/", "~/foo:/foo",
  "/a/:/b/./c/:rw,nocopy,z", "./x:./rel", "/a:/b:ro,unknown", {type: tmpfs, target: /t}]"#,
        );
        let want = yaml(
            r#"
volumes:
  - {type: bind, source: ./data, target: /data, read_only: true, bind: {create_host_path: true}}
  - {type: volume, source: named, target: /named, volume: {nocopy: true}}
  - {type: bind, source: /host, target: /ctr, bind: {selinux: z, create_host_path: true}}
  - {type: bind, source: /host2, target: /ctr2,
     bind: {selinux: Z, propagation: rshared, create_host_path: true}}
  - {type: volume, target: /anon, volume: {}}
  - {type: volume, source: named2, target: /x, volume: {}}
  - {type: bind, source: ~/foo, target: /foo, bind: {create_host_path: true}}
  - {type: bind, source: /a/, target: /b/c, bind: {selinux: z, create_host_path: true},
     volume: {nocopy: true}}
  - {type: bind, source: ./x, target: rel, bind: {create_host_path: true}}
  - {type: bind, source: /a, target: /b, read_only: true, bind: {create_host_path: true}}
  - {type: tmpfs, target: /t}
"#,
        );
        assert_eq!(got, want);
    }

    #[test]
    fn volumes_long_syntax_targets_are_cleaned_as_docker_compose_prints_them() {
        let got = svc(
            r#"volumes: [{type: volume, source: v, target: "/../../../tmp/secret"},
  {type: volume, target: "//a/./b//c/"}, {type: tmpfs, target: /t/../u},
  {type: volume, target: data/../x}]"#,
        );
        let want = yaml(
            r#"
volumes:
  - {type: volume, source: v, target: /tmp/secret}
  - {type: volume, target: /a/b/c}
  - {type: tmpfs, target: /u}
  - {type: volume, target: x}
"#,
        );
        assert_eq!(got, want);
    }

    #[test]
    fn one_letter_volume_name_reads_as_a_windows_drive_like_docker() {
        let got = svc(r#"volumes: ["v:/v", "C:/a:/b", "/x", "ab"]"#);
        let want = yaml(
            r#"
volumes:
  - {type: volume, target: "v:/v", volume: {}}
  - {type: bind, source: "C:/a", target: /b, bind: {create_host_path: true}}
  - {type: volume, target: /x}
  - {type: volume, target: ab}
"#,
        );
        assert_eq!(got, want);
    }

    #[test]
    fn invalid_volumes_say_what_docker_says() {
        let cases = [
            (":/text_file.txt", "empty section between colons"),
            ("/a:/b:ro:x", "too many colons"),
            ("/a::ro", "empty section between colons"),
            ("/a:/b:", "empty section between colons"),
            ("", "invalid empty volume spec"),
        ];
        for (spec, reason) in cases {
            let err = canon_err(&format!("services:\n  w:\n    volumes: [{spec:?}]"));
            assert_eq!(
                err,
                format!("services.w.volumes[0]: invalid spec: {spec}: {reason}")
            );
        }
    }

    #[test]
    fn colons_inside_variable_syntax_do_not_split_a_volume() {
        let got = svc(r#"volumes: ["${A:-x}:/t"]"#);
        assert_eq!(got["volumes"][0]["source"], yaml("${A:-x}"));
        assert_eq!(got["volumes"][0]["target"], yaml("/t"));
    }

    #[test]
    fn dependencies_networks_and_references() {
        let got = svc(r#"
depends_on: [db, cache]
networks: [front, back]
extends: base
build: ./dir
env_file: a.env
secrets: [s1, {source: s2, target: /x}]
configs: [c1]
gpus: all
devices: ["/dev/a", "/dev/b:/dev/c", "/dev/d:/dev/e:r"]
ulimits: {nofile: 1000, nproc: {soft: 1, hard: 2}}
dns: 8.8.8.8
tmpfs: /tmp
label_file: l.txt
"#);
        let want = yaml(
            r#"
depends_on:
  db: {condition: service_started, required: true}
  cache: {condition: service_started, required: true}
networks: {front: null, back: null}
extends: {service: base}
build: {context: ./dir}
env_file: [{path: a.env, required: true}]
secrets: [{source: s1}, {source: s2, target: /x}]
configs: [{source: c1}]
gpus: [{count: all}]
devices:
  - {source: /dev/a, target: /dev/a, permissions: rwm}
  - {source: /dev/b, target: /dev/c, permissions: rwm}
  - {source: /dev/d, target: /dev/e, permissions: r}
ulimits: {nofile: 1000, nproc: {soft: 1, hard: 2}}
dns: [8.8.8.8]
tmpfs: [/tmp]
label_file: [l.txt]
"#,
        );
        assert_eq!(got, want);
    }

    #[test]
    fn long_forms_get_their_implied_fields() {
        let got = svc(r#"
depends_on: {db: {condition: service_healthy}, x: {required: false}}
env_file: [a.env, {path: b.env, required: false}, {path: c.env}]
build: {dockerfile: D, args: [X=1, Y], ssh: [default, "k=/p"], additional_contexts: ["a=./b"],
        secrets: [bs], labels: {l: v}}
"#);
        let want = yaml(
            r#"
depends_on:
  db: {condition: service_healthy, required: true}
  x: {required: false, condition: service_started}
env_file:
  - {path: a.env, required: true}
  - {path: b.env, required: false}
  - {path: c.env, required: true}
build:
  dockerfile: D
  args: {X: "1", Y: null}
  ssh: {default: null, k: /p}
  additional_contexts: {a: ./b}
  secrets: [{source: bs}]
  labels: {l: v}
"#,
        );
        assert_eq!(got, want);
    }

    #[test]
    fn key_value_lists_become_mappings() {
        let got = svc(r#"
environment: [A=1, B, C=, D=x=y, A=3]
labels: [l1=a, l2]
sysctls: [net.a=1]
annotations: {a: b}
deploy: {labels: [d=1]}
extra_hosts: {zz: 1.2.3.4, aa: [5.6.7.8, "::1"]}
"#);
        let want = yaml(
            r#"
environment: {A: "3", B: null, C: "", D: x=y}
labels: {l1: a, l2: null}
sysctls: {net.a: "1"}
annotations: {a: b}
deploy: {labels: {d: "1"}}
extra_hosts: ["aa=5.6.7.8", "aa=::1", "zz=1.2.3.4"]
"#,
        );
        assert_eq!(got, want);
        // the list form of extra_hosts is kept as written (docker keeps `host:ip` duplicates)
        assert_eq!(
            svc(r#"extra_hosts: ["h1:1.2.3.4", "h2=5"]"#),
            yaml(r#"extra_hosts: ["h1:1.2.3.4", "h2=5"]"#)
        );
    }

    #[test]
    fn develop_watch_paths_expand() {
        let got =
            svc("develop: {watch: [{path: [a, b], action: sync}, {path: c, action: rebuild}]}");
        let want = yaml(
            "develop: {watch: [{path: a, action: sync}, {path: b, action: sync}, \
             {path: c, action: rebuild}]}",
        );
        assert_eq!(got, want);
    }

    #[test]
    fn top_level_resources_and_include() {
        let got = canon(
            r#"
include: [a.yaml, {path: b.yaml, env_file: b.env}, {path: [c.yaml, d.yaml]}]
networks:
  front:
  back: {external: {name: real}}
  lab: {labels: [a=b]}
volumes:
  named:
  ext: {external: true}
  same: {name: n, external: {name: n}}
secrets:
  s: {external: {name: x}}
configs:
  c:
"#,
        );
        let want = yaml(
            r#"
include: [{path: [a.yaml]}, {path: [b.yaml], env_file: [b.env]}, {path: [c.yaml, d.yaml]}]
networks:
  front: {}
  back: {external: true, name: real}
  lab: {labels: {a: b}}
volumes:
  named: {}
  ext: {external: true}
  same: {name: n, external: true}
secrets:
  s: {external: true, name: x}
configs:
  c: {}
"#,
        );
        assert_eq!(got, want);
        assert_eq!(
            canon_err("volumes:\n  v: {name: a, external: {name: b}}"),
            "volumes.v: name and external.name conflict; only use name"
        );
    }

    #[test]
    fn override_tags_keep_their_tag_and_reset_values_are_untouched() {
        let got = svc(r#"
ports: !override ["80:80"]
volumes: !reset "not a list"
depends_on: !override [db]
"#);
        let want = yaml(
            r#"
ports: !override [{mode: ingress, target: 80, published: "80", protocol: tcp}]
volumes: !reset "not a list"
depends_on: !override {db: {condition: service_started, required: true}}
"#,
        );
        assert_eq!(got, want);
    }

    #[test]
    fn invalid_types_name_the_path() {
        let cases = [
            ("depends_on: 3", "services.w.depends_on: invalid type integer for depends_on"),
            ("build: [a]", "services.w.build: invalid type sequence for build"),
            ("extends: 1", "services.w.extends: invalid type integer for extends"),
            ("env_file: {a: b}", "services.w.env_file: invalid type mapping for env_file"),
            ("secrets: [1]", "services.w.secrets[0]: invalid type integer for file mount"),
            ("ulimits: {nofile: x}", "services.w.ulimits.nofile: invalid type string for ulimits"),
            (
                "devices: [\"a:b:c:d\"]",
                "services.w.devices[0]: confusing device mapping \"a:b:c:d\", please use long syntax",
            ),
            (
                "build: {ssh: [nokey]}",
                "services.w.build.ssh[0]: invalid ssh key \"nokey\", expected id=path or default",
            ),
            (
                "build: {additional_contexts: [nokey]}",
                "services.w.build.additional_contexts[0]: invalid value \"nokey\", expected key=value",
            ),
            ("environment: [[a]]", "services.w.environment[0]: invalid type sequence for key=value"),
        ];
        for (body, want) in cases {
            let err = canon_err(&format!("services:\n  w:\n{}", indent(body)));
            assert_eq!(err, want, "{body}");
        }
        assert_eq!(
            canon_err("[1]"),
            "top-level object must be a mapping, found a sequence"
        );
    }

    #[test]
    fn clean_path_is_lexical_like_go() {
        assert_eq!(clean_path("/b/./c/"), "/b/c");
        assert_eq!(clean_path("/n2/../x/"), "/x");
        assert_eq!(clean_path("./rel"), "rel");
        assert_eq!(clean_path("../a/../../b"), "../../b");
        assert_eq!(clean_path("/.."), "/");
        assert_eq!(clean_path("."), ".");
    }
}
