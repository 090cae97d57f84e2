//! Merging compose files (`-f a -f b`, `extends`) by the compose-spec merge rules, as compose-go's
//! `override` package does: mappings merge recursively, sequences append, scalars replace, with
//! per-attribute exceptions; then duplicates are removed from the sequences that are sets
//! (ports, volumes by target, secrets, ...).
//!
//! Both inputs are canonical (see [`super::canonical`]). Tags in the override file:
//! `!reset` drops the attribute from the result, `!override` replaces it without merging.

use serde_yaml::{Mapping, Value};
use thiserror::Error;

use super::canonical::{parse_volume, scalar_string, type_name};
use super::path::{Seg, TreePath};

#[derive(Debug, Error, PartialEq)]
pub enum MergeError {
    #[error("{path}: cannot override a {base} with a {over}")]
    CannotOverride {
        path: TreePath,
        base: &'static str,
        over: &'static str,
    },
    #[error("{path}: unexpected {found} in a list whose entries must be unique")]
    UnexpectedType { path: TreePath, found: &'static str },
    #[error("{path}: {what} is missing its {field}")]
    MissingField {
        path: TreePath,
        what: &'static str,
        field: &'static str,
    },
    #[error("{path}: invalid spec: {spec}: {reason}")]
    Volume {
        path: TreePath,
        spec: String,
        reason: String,
    },
}

type Result<T = Value> = std::result::Result<T, MergeError>;

/// Merges the override file `over` into `base`; both canonical. Tags left in `base` are resolved
/// as in a single file ([`strip_tags`]); `merge(Value::Null, file)` loads a first file.
pub fn merge(base: Value, over: Value) -> Result {
    let mut base = base;
    strip_tags(&mut base);
    let mut over = over;
    let mut tagged = Vec::new();
    resolve_tags(&mut over, &TreePath::root(), Some(&mut tagged));
    // Both tags first erase the attribute from what came before; `!override` then brings its
    // own value in through the ordinary merge.
    for path in &tagged {
        remove_path(&mut base, path.segments());
    }
    let mut merged = merge_value(base, over, &TreePath::root())?;
    enforce_unicity(&mut merged)?;
    Ok(merged)
}

/// Merges one service definition into another, for `extends`: `over` is the extending service.
pub fn merge_service(base: Value, over: Value) -> Result {
    let wrap = |svc: Value| {
        let mut services = Mapping::new();
        services.insert("x".into(), svc);
        let mut root = Mapping::new();
        root.insert("services".into(), Value::Mapping(services));
        Value::Mapping(root)
    };
    let mut merged = merge(wrap(base), wrap(over))?;
    Ok(merged
        .get_mut("services")
        .and_then(|s| s.get_mut("x"))
        .map(std::mem::take)
        .unwrap_or(Value::Null))
}

/// Resolves the tags of a file that is not merged over anything (or is the first one): a
/// `!reset` attribute or sequence item disappears, an `!override` value stays, untagged.
pub fn strip_tags(v: &mut Value) {
    resolve_tags(v, &TreePath::root(), None);
}

/// Strips `!reset`/`!override` from `v`, recording the paths they were on when `found` is given.
fn resolve_tags(v: &mut Value, path: &TreePath, mut found: Option<&mut Vec<TreePath>>) {
    match v {
        Value::Tagged(t) if t.tag == "reset" => {
            if let Some(found) = found {
                found.push(path.clone());
            }
            *v = Value::Null;
        }
        Value::Tagged(t) if t.tag == "override" => {
            if let Some(found) = found {
                found.push(path.clone());
            }
            *v = std::mem::take(&mut t.value);
            // Tags nested under `!override` mean no more than they do in a single file.
            resolve_tags(v, path, None);
        }
        Value::Tagged(t) => resolve_tags(&mut t.value, path, found),
        Value::Mapping(m) => {
            for (k, e) in m.iter_mut() {
                let p = path.key(scalar_string(k).unwrap_or_default());
                if is_reset(e) {
                    if let Some(found) = found.as_deref_mut() {
                        found.push(p);
                    }
                } else {
                    resolve_tags(e, &p, found.as_deref_mut());
                }
            }
            m.retain(|_, e| !is_reset(e));
        }
        Value::Sequence(seq) => {
            // A reset item only disappears from its own file: compose-go cannot remove items
            // from the base sequence, so nothing is recorded for it.
            seq.retain(|e| !is_reset(e));
            for (i, e) in seq.iter_mut().enumerate() {
                resolve_tags(e, &path.index(i), None);
            }
        }
        _ => {}
    }
}

fn is_reset(v: &Value) -> bool {
    matches!(v, Value::Tagged(t) if t.tag == "reset")
}

/// Deletes the mapping entry at `path` from `v`. Sequence items are never removed (compose-go
/// does not either).
fn remove_path(v: &mut Value, path: &[Seg]) {
    let Some((Seg::Key(first), rest)) = path.split_first() else {
        return;
    };
    let Value::Mapping(m) = v else { return };
    if rest.is_empty() {
        m.remove(first.as_str());
    } else if let Some(e) = m.get_mut(first.as_str()) {
        remove_path(e, rest);
    }
}

// ---------------------------------------------------------------------------------------------
// Merge rules.

#[derive(Clone, Copy)]
enum Rule {
    /// The override replaces the base wholesale.
    Replace,
    /// Same driver (or one unset): merge the mappings; otherwise replace.
    Logging,
    /// `KEY=VAL` attributes: key by key, the override's value (even null) wins.
    KeyValues,
    /// Lists (a lone string counts as a one-item list): append.
    Append,
    /// Append the override's entries the base does not already have.
    AppendNew,
    /// Mappings that may still be written as lists of names.
    AsMapping,
    /// `ipam.config`: entries matched by subnet.
    IpamConfig,
}

const RULES: &[(&str, Rule)] = &[
    ("services.*.command", Rule::Replace),
    ("services.*.entrypoint", Rule::Replace),
    ("services.*.healthcheck.test", Rule::Replace),
    ("services.*.ulimits.*", Rule::Replace),
    ("services.*.logging", Rule::Logging),
    ("services.*.environment", Rule::KeyValues),
    ("services.*.labels", Rule::KeyValues),
    ("services.*.annotations", Rule::KeyValues),
    ("services.*.sysctls", Rule::KeyValues),
    ("services.*.build.args", Rule::KeyValues),
    ("services.*.build.labels", Rule::KeyValues),
    ("services.*.build.additional_contexts", Rule::KeyValues),
    ("services.*.deploy.labels", Rule::KeyValues),
    ("networks.*.labels", Rule::KeyValues),
    ("volumes.*.labels", Rule::KeyValues),
    ("services.*.dns", Rule::Append),
    ("services.*.dns_opt", Rule::Append),
    ("services.*.dns_search", Rule::Append),
    ("services.*.env_file", Rule::Append),
    ("services.*.label_file", Rule::Append),
    ("services.*.tmpfs", Rule::Append),
    ("services.*.extra_hosts", Rule::AppendNew),
    ("services.*.build.extra_hosts", Rule::AppendNew),
    ("services.*.build", Rule::AsMapping),
    ("services.*.depends_on", Rule::AsMapping),
    ("services.*.networks", Rule::AsMapping),
    ("services.*.models", Rule::AsMapping),
    ("networks.*.ipam.config", Rule::IpamConfig),
];

fn matches(path: &TreePath, pattern: &str) -> bool {
    let segs = path.segments();
    let pats: Vec<&str> = pattern.split('.').collect();
    segs.len() == pats.len()
        && segs.iter().zip(&pats).all(|(s, p)| match s {
            Seg::Key(k) => *p == "*" || p == k,
            Seg::Index(_) => false,
        })
}

fn rule_for(path: &TreePath) -> Option<Rule> {
    RULES
        .iter()
        .find(|(pattern, _)| matches(path, pattern))
        .map(|(_, r)| *r)
}

fn merge_value(base: Value, over: Value, path: &TreePath) -> Result {
    if let Some(rule) = rule_for(path) {
        return apply_rule(rule, base, over, path);
    }
    // An empty attribute in an override file changes nothing.
    if over.is_null() {
        return Ok(base);
    }
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => merge_mappings(b, o, path),
        (Value::Sequence(mut b), Value::Sequence(o)) => {
            b.extend(o);
            Ok(Value::Sequence(b))
        }
        (b @ (Value::Mapping(_) | Value::Sequence(_)), o) => Err(MergeError::CannotOverride {
            path: path.clone(),
            base: type_name(&b),
            over: type_name(&o),
        }),
        (_, o) => Ok(o),
    }
}

fn merge_mappings(mut base: Mapping, over: Mapping, path: &TreePath) -> Result {
    for (k, v) in over {
        match base.get_mut(&k) {
            Some(slot) => {
                let p = path.key(scalar_string(&k).unwrap_or_default());
                *slot = merge_value(std::mem::take(slot), v, &p)?;
            }
            None => {
                base.insert(k, v);
            }
        }
    }
    Ok(Value::Mapping(base))
}

fn apply_rule(rule: Rule, base: Value, over: Value, path: &TreePath) -> Result {
    match rule {
        Rule::Replace => Ok(over),
        Rule::Logging => match (base, over) {
            (Value::Mapping(b), Value::Mapping(o)) => {
                let (bd, od) = (b.get("driver"), o.get("driver"));
                if bd.is_none() || od.is_none() || bd == od {
                    merge_mappings(b, o, path)
                } else {
                    Ok(Value::Mapping(o))
                }
            }
            (b, Value::Null) => Ok(b),
            (_, o) => Ok(o),
        },
        Rule::KeyValues => {
            let mut b = into_key_values(base);
            for (k, v) in into_key_values(over) {
                b.insert(k, v);
            }
            Ok(Value::Mapping(b))
        }
        Rule::Append => {
            let mut b = into_sequence(base);
            b.extend(into_sequence(over));
            Ok(Value::Sequence(b))
        }
        Rule::AppendNew => {
            let mut b = into_sequence(base);
            let new: Vec<Value> = into_sequence(over)
                .into_iter()
                .filter(|e| !b.contains(e))
                .collect();
            b.extend(new);
            Ok(Value::Sequence(b))
        }
        Rule::AsMapping => {
            let default = matches(path, "services.*.depends_on").then(|| {
                let mut d = Mapping::new();
                d.insert("condition".into(), "service_started".into());
                d.insert("required".into(), true.into());
                Value::Mapping(d)
            });
            let to_map = |v: Value| match v {
                Value::Sequence(names) => Value::Mapping(
                    names
                        .into_iter()
                        .map(|n| (n, default.clone().unwrap_or(Value::Null)))
                        .collect(),
                ),
                Value::String(context) if matches(path, "services.*.build") => {
                    let mut m = Mapping::new();
                    m.insert("context".into(), Value::String(context));
                    Value::Mapping(m)
                }
                Value::Null => Value::Mapping(Mapping::new()),
                other => other,
            };
            match (to_map(base), to_map(over)) {
                (Value::Mapping(b), Value::Mapping(o)) => merge_mappings(b, o, path),
                (b, o) => Err(MergeError::CannotOverride {
                    path: path.clone(),
                    base: type_name(&b),
                    over: type_name(&o),
                }),
            }
        }
        Rule::IpamConfig => merge_ipam_config(base, over, path),
    }
}

/// compose-go's rule, kept as it is: each override entry replaces or merges into the base entry
/// with the same subnet; base entries no override entry is compared equal to are dropped.
fn merge_ipam_config(base: Value, over: Value, path: &TreePath) -> Result {
    let (Value::Sequence(base), Value::Sequence(over)) = (base, over) else {
        return Err(MergeError::MissingField {
            path: path.clone(),
            what: "ipam config",
            field: "list of subnets",
        });
    };
    let subnet = |v: &Value| v.get("subnet").cloned();
    let mut out: Vec<Value> = Vec::new();
    for original in base {
        let mut right = original;
        for o in &over {
            if subnet(o) != subnet(&right) {
                if !out.iter().any(|e| subnet(e) == subnet(o)) {
                    out.push(o.clone());
                }
                continue;
            }
            right = match (right, o.clone()) {
                (Value::Mapping(r), Value::Mapping(l)) => merge_mappings(r, l, path)?,
                (_, l) => l,
            };
            match out.iter().position(|e| subnet(e) == subnet(&right)) {
                Some(i) => out[i] = right.clone(),
                None => out.push(right.clone()),
            }
        }
    }
    Ok(Value::Sequence(out))
}

/// A `KEY=VAL` attribute as a mapping, whichever form it was written in.
fn into_key_values(v: Value) -> Mapping {
    match v {
        Value::Mapping(m) => m,
        Value::Sequence(seq) => seq
            .iter()
            .filter_map(scalar_string)
            .map(|s| match s.split_once('=') {
                Some((k, v)) => (k.into(), v.into()),
                None => (s.into(), Value::Null),
            })
            .collect(),
        _ => Mapping::new(),
    }
}

/// A list attribute as a sequence: a mapping becomes sorted `key=value` entries (compose-go's
/// conversion), a lone string a one-item list.
fn into_sequence(v: Value) -> Vec<Value> {
    match v {
        Value::Sequence(seq) => seq,
        Value::Null => Vec::new(),
        Value::Mapping(m) => {
            let mut entries = Vec::new();
            for (k, val) in &m {
                let k = scalar_string(k).unwrap_or_default();
                match val {
                    Value::Null => entries.push(k),
                    Value::Sequence(vals) => entries.extend(
                        vals.iter()
                            .map(|x| format!("{k}={}", scalar_string(x).unwrap_or_default())),
                    ),
                    other => {
                        entries.push(format!("{k}={}", scalar_string(other).unwrap_or_default()))
                    }
                }
            }
            entries.sort();
            entries.into_iter().map(Value::String).collect()
        }
        other => vec![other],
    }
}

// ---------------------------------------------------------------------------------------------
// Unicity.

#[derive(Clone, Copy)]
enum Index {
    /// The text before `=` (or the whole entry).
    KeyValue,
    Volume,
    Device,
    Port,
    /// Secrets and configs: target, or the default target made from the source.
    Mount(&'static str),
    Expose,
    EnvFile,
}

const UNIQUE: &[(&str, Index)] = &[
    ("networks.*.labels", Index::KeyValue),
    ("networks.*.ipam.options", Index::KeyValue),
    ("services.*.annotations", Index::KeyValue),
    ("services.*.build.args", Index::KeyValue),
    ("services.*.build.additional_contexts", Index::KeyValue),
    ("services.*.build.tags", Index::KeyValue),
    ("services.*.build.labels", Index::KeyValue),
    ("services.*.cap_add", Index::KeyValue),
    ("services.*.cap_drop", Index::KeyValue),
    ("services.*.configs", Index::Mount("")),
    ("services.*.deploy.labels", Index::KeyValue),
    ("services.*.devices", Index::Device),
    ("services.*.dns", Index::KeyValue),
    ("services.*.dns_opt", Index::KeyValue),
    ("services.*.dns_search", Index::KeyValue),
    ("services.*.environment", Index::KeyValue),
    ("services.*.env_file", Index::EnvFile),
    ("services.*.expose", Index::Expose),
    ("services.*.labels", Index::KeyValue),
    ("services.*.links", Index::KeyValue),
    ("services.*.networks.*.aliases", Index::KeyValue),
    ("services.*.networks.*.link_local_ips", Index::KeyValue),
    ("services.*.ports", Index::Port),
    ("services.*.profiles", Index::KeyValue),
    ("services.*.secrets", Index::Mount("/run/secrets")),
    ("services.*.sysctls", Index::KeyValue),
    ("services.*.tmpfs", Index::KeyValue),
    ("services.*.volumes", Index::Volume),
];

/// Removes redefinitions from the sequences that are sets: an entry whose key was seen before
/// replaces that earlier entry in place. The loader runs this on every file, merged or not.
pub fn enforce_unicity(v: &mut Value) -> Result<()> {
    unicity(v, &TreePath::root())
}

fn unicity(v: &mut Value, path: &TreePath) -> Result<()> {
    match v {
        Value::Mapping(m) => {
            for (k, e) in m.iter_mut() {
                unicity(e, &path.key(scalar_string(k).unwrap_or_default()))?;
            }
        }
        Value::Sequence(seq) => {
            let Some(index) = UNIQUE
                .iter()
                .find(|(pattern, _)| matches(path, pattern))
                .map(|(_, i)| *i)
            else {
                return Ok(());
            };
            let mut out: Vec<Value> = Vec::with_capacity(seq.len());
            let mut keys: Vec<String> = Vec::with_capacity(seq.len());
            for (i, entry) in std::mem::take(seq).into_iter().enumerate() {
                let key = index_key(index, &entry, &path.index(i))?;
                match keys.iter().position(|k| *k == key) {
                    Some(j) => out[j] = entry,
                    None => {
                        keys.push(key);
                        out.push(entry);
                    }
                }
            }
            *seq = out;
        }
        _ => {}
    }
    Ok(())
}

fn index_key(index: Index, entry: &Value, path: &TreePath) -> Result<String> {
    let unexpected = || MergeError::UnexpectedType {
        path: path.clone(),
        found: type_name(entry),
    };
    let missing = |what, field| MergeError::MissingField {
        path: path.clone(),
        what,
        field,
    };
    let target_of = |what| {
        entry
            .get("target")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| missing(what, "target"))
    };
    match (index, entry) {
        (Index::KeyValue, e) => {
            let s = scalar_string(e).ok_or_else(unexpected)?;
            Ok(s.split_once('=').map_or(s.clone(), |(k, _)| k.to_string()))
        }
        (Index::Volume, Value::Mapping(_)) => target_of("service volume"),
        (Index::Volume, Value::String(spec)) => match parse_volume(spec) {
            Ok(v) => Ok(v
                .get("target")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()),
            Err(reason) => Err(MergeError::Volume {
                path: path.clone(),
                spec: spec.clone(),
                reason,
            }),
        },
        (Index::Device, Value::Mapping(_)) => target_of("service device"),
        (Index::Device, Value::String(s)) => {
            let mut parts = s.split(':');
            let first = parts.next().unwrap_or_default();
            Ok(parts.next().unwrap_or(first).to_string())
        }
        (Index::Port, Value::Number(n)) => Ok(n.to_string()),
        (Index::Port, Value::String(s)) => Ok(s.clone()),
        (Index::Port, Value::Mapping(m)) => {
            let target = m.get("target").ok_or_else(|| missing("port", "target"))?;
            // compose-go formats these with Go verbs, so a published port written as a number
            // never equals one written as a string; render the type to keep them apart too.
            let render = |v: Option<&Value>, default: &str| match v {
                None | Some(Value::Null) => default.to_string(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => format!(
                    "({}){}",
                    type_name(other),
                    scalar_string(other).unwrap_or_default()
                ),
            };
            Ok(format!(
                "{}:{}:{}/{}",
                render(m.get("host_ip"), "0.0.0.0"),
                render(m.get("published"), "<nil>"),
                scalar_string(target).unwrap_or_default(),
                render(m.get("protocol"), "tcp"),
            ))
        }
        (Index::Mount(dir), Value::String(s)) => Ok(format!("{dir}/{s}")),
        (Index::Mount(dir), Value::Mapping(m)) => match m.get("target") {
            Some(t) => scalar_string(t).ok_or_else(unexpected),
            None => {
                let source = m.get("source").and_then(scalar_string).unwrap_or_default();
                Ok(format!("{dir}/{source}"))
            }
        },
        (Index::Expose, Value::String(s)) => Ok(s.clone()),
        (Index::Expose, Value::Number(n)) => Ok(n.to_string()),
        (Index::EnvFile, Value::String(s)) => Ok(s.clone()),
        (Index::EnvFile, Value::Mapping(m)) => m
            .get("path")
            .and_then(scalar_string)
            .ok_or_else(|| missing("env_file entry", "path")),
        _ => Err(unexpected()),
    }
}
