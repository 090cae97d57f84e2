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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::canonical::canonical;

    fn yaml(src: &str) -> Value {
        serde_yaml::from_str(src).unwrap()
    }

    /// Loads files the way the loader does: canonical form, then merged in order.
    fn load(files: &[&str]) -> Result {
        let mut acc = Value::Null;
        for src in files {
            let mut v = yaml(src);
            canonical(&mut v).unwrap();
            acc = merge(acc, v)?;
        }
        Ok(acc)
    }

    fn service(files: &[&str], name: &str) -> Value {
        load(files).unwrap()["services"][name].clone()
    }

    // The two-file case below was run through `docker compose -f a.yaml -f b.yaml config`
    // (v2.40.3); the expected tree is its output before defaults and path resolution.
    const A: &str = r#"
services:
  web:
    image: nginx
    environment: {A: "1", B: "2", Z: x}
    labels: [l1=a, l2]
    ports: ["8080:80", "9090:90"]
    volumes: ["./a:/data", "v:/v"]
    command: echo a
    dns: 1.1.1.1
    extra_hosts: ["h1:1.2.3.4"]
    secrets: [s1]
    env_file: [a.env]
    networks: [front]
    depends_on: [db]
    cap_add: [A]
    logging: {driver: json-file, options: {a: "1"}}
    healthcheck: {test: [CMD, a], interval: 1s}
    tmpfs: /t
    sysctls: {a: 1}
  db: {image: redis, command: x, user: root, ports: ["1:1"]}
"#;
    const B: &str = r#"
services:
  web:
    environment: [A, C=3]
    labels: {l2: b}
    ports: ["8080:80", "127.0.0.1:8080:80", "9091:90"]
    volumes: ["./b:/data:ro"]
    command: [echo, b]
    dns: [1.1.1.1, 8.8.8.8]
    extra_hosts: {h1: 1.2.3.4, h2: 5.6.7.8}
    secrets: [{source: s1, target: /run/secrets/s1, mode: 0400}, s2]
    env_file: [{path: a.env, required: false}]
    networks: {front: {aliases: [x]}}
    depends_on: {db: {condition: service_healthy}}
    cap_add: [A, B]
    logging: {options: {b: "2"}}
    healthcheck: {test: [CMD, b]}
    tmpfs: [/t, /u]
    sysctls: [b=2]
  db:
    command: !reset null
    user: !reset
    ports: !override ["2:2"]
"#;

    #[test]
    fn two_files_merge_like_docker_compose() {
        let got = load(&[A, B]).unwrap();
        let want = yaml(
            r#"
services:
  web:
    image: nginx
    environment: {A: null, B: "2", Z: x, C: "3"}
    labels: {l1: a, l2: b}
    ports:
      - {mode: ingress, target: 80, published: "8080", protocol: tcp}
      - {mode: ingress, target: 90, published: "9090", protocol: tcp}
      - {mode: ingress, host_ip: 127.0.0.1, target: 80, published: "8080", protocol: tcp}
      - {mode: ingress, target: 90, published: "9091", protocol: tcp}
    volumes:
      - {type: bind, source: ./b, target: /data, read_only: true, bind: {create_host_path: true}}
      - {type: volume, target: "v:/v", volume: {}}
    command: [echo, b]
    dns: [1.1.1.1, 8.8.8.8]
    extra_hosts: ["h1:1.2.3.4", "h1=1.2.3.4", "h2=5.6.7.8"]
    secrets:
      - {source: s1, target: /run/secrets/s1, mode: 0400}
      - {source: s2}
    env_file: [{path: a.env, required: false}]
    networks: {front: {aliases: [x]}}
    depends_on: {db: {condition: service_healthy, required: true}}
    cap_add: [A, B]
    logging: {driver: json-file, options: {a: "1", b: "2"}}
    healthcheck: {test: [CMD, b], interval: 1s}
    tmpfs: [/t, /u]
    sysctls: {a: 1, b: "2"}
  db:
    image: redis
    ports: [{mode: ingress, target: 2, published: "2", protocol: tcp}]
"#,
        );
        assert_eq!(got, want);
    }

    #[test]
    fn reset_and_override_in_a_single_file() {
        // docker compose: `user` and `ports` disappear, the `dns` item too, `!override` is kept.
        let mut v = yaml(
            r#"
services:
  web:
    user: !reset root
    command: !override [a, b]
    ports: !reset ["80"]
    dns: [!reset 1.1.1.1, 2.2.2.2]
    environment: !override {A: 1}
"#,
        );
        strip_tags(&mut v);
        let want = yaml("services: {web: {command: [a, b], dns: [2.2.2.2], environment: {A: 1}}}");
        assert_eq!(v, want);
        // merging a first file over nothing does the same
        assert_eq!(
            load(&["services: {web: {user: !reset root, dns: [!reset a, b]}}"]).unwrap(),
            yaml("services: {web: {dns: [b]}}")
        );
    }

    #[test]
    fn override_replaces_without_merging_and_reset_drops() {
        let base = "services: {web: {environment: {A: 1, B: 2}, volumes: [/a, /b], image: x}}";
        let over = r#"
services:
  web:
    environment: !override {C: 3}
    volumes: !reset []
    image: !reset
"#;
        assert_eq!(
            load(&[base, over]).unwrap(),
            yaml("services: {web: {environment: {C: 3}}}")
        );
        // a whole service
        assert_eq!(
            load(&[
                "services: {a: {image: x}, b: {image: y}}",
                "services: {a: !reset ~}"
            ])
            .unwrap(),
            yaml("services: {b: {image: y}}")
        );
    }

    #[test]
    fn default_rules_mappings_merge_sequences_append_scalars_replace() {
        let base = "services: {w: {image: a, cap_drop: [X], deploy: {resources: {limits: {cpus: '1'}}}}}\nx-a: {k: [1]}";
        let over = "services: {w: {image: b, cap_drop: [Y], deploy: {resources: {limits: {memory: 1g}}}, user: ~}}\nx-a: {k: [2], j: 1}";
        assert_eq!(
            load(&[base, over]).unwrap(),
            yaml(
                "services: {w: {image: b, cap_drop: [X, Y], \
                 deploy: {resources: {limits: {cpus: '1', memory: 1g}}}, user: ~}}\n\
                 x-a: {k: [1, 2], j: 1}"
            )
        );
        // an empty value in the override changes nothing
        assert_eq!(
            service(
                &["services: {w: {image: a}}", "services: {w: {image: ~}}"],
                "w"
            ),
            yaml("{image: a}")
        );
    }

    #[test]
    fn type_mismatch_is_an_error_naming_the_path() {
        let err = load(&[
            "services: {w: {deploy: {resources: {}}}}",
            "services: {w: {deploy: [x]}}",
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "services.w.deploy: cannot override a mapping with a sequence"
        );
    }

    #[test]
    fn logging_with_another_driver_replaces() {
        let got = service(
            &[
                "services: {w: {logging: {driver: json-file, options: {a: '1'}}}}",
                "services: {w: {logging: {driver: syslog, options: {b: '2'}}}}",
            ],
            "w",
        );
        assert_eq!(got, yaml("{logging: {driver: syslog, options: {b: '2'}}}"));
    }

    #[test]
    fn entrypoint_and_ulimits_replace() {
        let got = service(
            &[
                "services: {w: {entrypoint: [a, b], ulimits: {nofile: {soft: 1, hard: 2}}}}",
                "services: {w: {entrypoint: [c], ulimits: {nofile: {soft: 3}}}}",
            ],
            "w",
        );
        assert_eq!(got, yaml("{entrypoint: [c], ulimits: {nofile: {soft: 3}}}"));
    }

    #[test]
    fn unicity_keeps_first_position_and_last_value() {
        let got = service(
            &[r#"
services:
  w:
    ports: ["80:80", "80:80", "0.0.0.0:80:80", {target: 80, published: 80},
            {target: 80, published: "80"}]
    dns: [a, a, b]
    environment: [A=1, B=2, A=3]
    cap_add: [X, X]
    expose: [80, "80", 81]
    volumes: ["/a:/data", "/b:/data:ro"]
    configs: [c, {source: c, target: /c, mode: 1}]
    devices: ["/dev/a:/dev/x", {source: /dev/b, target: /dev/x, permissions: r}]
"#],
            "w",
        );
        // docker compose keeps the integer-published port apart from the string ones; the last
        // duplicate wins (docker then fills in mode and protocol)
        let want = yaml(
            r#"
ports:
  - {target: 80, published: "80"}
  - {target: 80, published: 80}
dns: [a, b]
environment: {A: "3", B: "2"}
cap_add: [X]
expose: ["80", 81]
volumes:
  - {type: bind, source: /b, target: /data, read_only: true, bind: {create_host_path: true}}
configs: [{source: c, target: /c, mode: 1}]
devices: [{source: /dev/b, target: /dev/x, permissions: r}]
"#,
        );
        assert_eq!(got, want);
    }

    #[test]
    fn unicity_errors_name_the_entry() {
        let mut v = yaml("services: {w: {volumes: [{type: tmpfs}]}}");
        assert_eq!(
            enforce_unicity(&mut v).unwrap_err().to_string(),
            "services.w.volumes[0]: service volume is missing its target"
        );
        let mut v = yaml("services: {w: {cap_add: [[x]]}}");
        assert_eq!(
            enforce_unicity(&mut v).unwrap_err().to_string(),
            "services.w.cap_add[0]: unexpected sequence in a list whose entries must be unique"
        );
    }

    #[test]
    fn build_and_depends_on_merge_as_mappings() {
        let got = service(
            &[
                "services: {w: {build: ./a, depends_on: [db]}}",
                "services: {w: {build: {dockerfile: D, args: [X=1]}, depends_on: {db: {required: false}, c: {condition: service_healthy}}}}",
            ],
            "w",
        );
        let want = yaml(
            r#"
build: {context: ./a, dockerfile: D, args: {X: "1"}}
depends_on:
  db: {condition: service_started, required: false}
  c: {condition: service_healthy, required: true}
"#,
        );
        assert_eq!(got, want);
    }

    #[test]
    fn ipam_config_merges_by_subnet() {
        let got = load(&[
            "networks: {n: {ipam: {config: [{subnet: 10.0.0.0/24, gateway: 10.0.0.1}, {subnet: 10.1.0.0/24}]}}}",
            "networks: {n: {ipam: {config: [{subnet: 10.0.0.0/24, ip_range: 10.0.0.0/25}]}}}",
        ])
        .unwrap();
        let want = yaml(
            "networks: {n: {ipam: {config: [{subnet: 10.0.0.0/24, gateway: 10.0.0.1, ip_range: 10.0.0.0/25}]}}}",
        );
        assert_eq!(got, want);
    }

    #[test]
    fn merge_service_for_extends() {
        let base = yaml("{image: a, environment: {A: '1'}, ports: [{target: 80}]}");
        let over =
            yaml("{environment: {B: '2'}, ports: [{target: 80}, {target: 81}], command: !reset ~}");
        assert_eq!(
            merge_service(base, over).unwrap(),
            yaml("{image: a, environment: {A: '1', B: '2'}, ports: [{target: 80}, {target: 81}]}")
        );
    }
}
