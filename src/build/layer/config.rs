//! The built image's config and manifest, in the shape BuildKit's exporter writes them, and
//! committing them into the store.
//!
//! BuildKit's exporter marshals the config from a Go map, so the top-level keys are sorted;
//! the runtime `config` object keeps the field order of `ocispec.ImageConfig` followed by
//! docker's extensions (Healthcheck, OnBuild, Shell), every field `omitempty`. Fields of a
//! base image's config that BuildKit does not model (docker's `container_config`,
//! `docker_version`…) are dropped, as BuildKit drops them: they describe the base's build.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::gojson::{to_go_json, to_go_json_indent};
use super::{CapturedLayer, LayerError};
use crate::image::config::{Healthcheck, RuntimeConfig, MEDIA_OCI_MANIFEST};
use crate::image::digest::Digest;
use crate::image::reference::{Platform, Reference};
use crate::image::store::{ImageRecord, LayerRecord, Store};

pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// What a Dockerfile step writes in its history entry's `comment`.
pub const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";
/// `system.DefaultPathEnv` for Linux: the PATH of a `FROM scratch` image.
pub const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One `history` entry (`ocispec.History`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// An image being built: the base's config and layers plus what the build adds.
/// Serialisable: the step cache keeps it as the state after each step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageBuilder {
    /// Top-level fields kept from the base (author, os.version, os.features).
    extra: Map<String, Value>,
    runtime: RuntimeConfig,
    platform: Platform,
    diff_ids: Vec<Digest>,
    history: Vec<History>,
    layers: Vec<LayerRecord>,
    /// Unpacked bytes of the base plus the tar bytes of new layers.
    size: u64,
    source_date_epoch: Option<i64>,
}

impl ImageBuilder {
    /// Start from `base` (its config blob read from the store as JSON) or from scratch.
    pub fn from_base(store: &Store, base: Option<&ImageRecord>) -> Result<Self, LayerError> {
        let mut b = ImageBuilder {
            extra: Map::new(),
            runtime: RuntimeConfig::default(),
            platform: Platform::host(),
            diff_ids: Vec::new(),
            history: Vec::new(),
            layers: Vec::new(),
            size: 0,
            source_date_epoch: None,
        };
        let Some(base) = base else {
            // BuildKit's `emptyImage`.
            b.runtime.working_dir = "/".to_string();
            b.runtime.env = vec![DEFAULT_PATH_ENV.to_string()];
            return Ok(b);
        };
        if !store.has_blob(&base.id) {
            return Err(LayerError::NoBaseConfig(base.id.clone()));
        }
        let bytes = store.read_blob(&base.id)?;
        let mut v: Map<String, Value> = serde_json::from_slice(&bytes)
            .map_err(|e| LayerError::Config(format!("base config {}: {e}", base.id)))?;
        for key in ["author", "os.version", "os.features"] {
            if let Some(val) = v.remove(key) {
                if !val.is_null() {
                    b.extra.insert(key.to_string(), val);
                }
            }
        }
        if let Some(cfg) = v.remove("config").filter(|c| !c.is_null()) {
            b.runtime = serde_json::from_value(cfg)
                .map_err(|e| LayerError::Config(format!("base config {}: {e}", base.id)))?;
        }
        if let Some(h) = v.remove("history").filter(|h| !h.is_null()) {
            b.history = serde_json::from_value(h)
                .map_err(|e| LayerError::Config(format!("base history {}: {e}", base.id)))?;
            for h in &mut b.history {
                h.created = h.created.as_deref().map(normalize_time);
            }
        }
        b.diff_ids = base.layers.iter().map(|l| l.diff_id.clone()).collect();
        b.layers = base.layers.clone();
        b.size = base.size;
        Ok(b)
    }

    /// `SOURCE_DATE_EPOCH`: the time of new history entries and of the image.
    pub fn set_source_date_epoch(&mut self, epoch: Option<i64>) {
        self.source_date_epoch = epoch;
    }

    pub fn set_platform(&mut self, platform: Platform) {
        self.platform = platform;
    }

    pub fn set_runtime(&mut self, cfg: RuntimeConfig) {
        self.runtime = cfg;
    }

    pub fn runtime(&self) -> &RuntimeConfig {
        &self.runtime
    }

    pub fn config_mut(&mut self) -> &mut RuntimeConfig {
        &mut self.runtime
    }

    pub fn history(&self) -> &[History] {
        &self.history
    }

    pub fn layers(&self) -> &[LayerRecord] {
        &self.layers
    }

    fn step_time(&self) -> String {
        match self.source_date_epoch {
            Some(e) => rfc3339(e, 0),
            None => now(),
        }
    }

    /// A filesystem step: its layer (none when it changed nothing, which BuildKit records as
    /// an empty-layer history entry) and its history text (e.g. `RUN /bin/sh -c make #
    /// buildkit`, `COPY . /src # buildkit`).
    pub fn add_layer(&mut self, layer: Option<CapturedLayer>, created_by: &str) {
        let created = Some(self.step_time());
        let empty = layer.is_none();
        if let Some(l) = layer {
            self.diff_ids.push(l.diff_id.clone());
            self.size += l.tar_size;
            self.layers.push(LayerRecord {
                diff_id: l.diff_id,
                blob: l.blob,
                media_type: l.media_type,
                size: l.size,
            });
        }
        self.history.push(History {
            created,
            created_by: Some(created_by.to_string()),
            author: None,
            comment: Some(HISTORY_COMMENT.to_string()),
            empty_layer: empty,
        });
    }

    /// A metadata-only step (ENV, CMD, LABEL…). Like BuildKit, its time is
    /// `SOURCE_DATE_EPOCH` when set, otherwise filled in from its neighbours at commit.
    pub fn add_history_only(&mut self, created_by: &str) {
        self.history.push(History {
            created: self.source_date_epoch.map(|e| rfc3339(e, 0)),
            created_by: Some(created_by.to_string()),
            author: None,
            comment: Some(HISTORY_COMMENT.to_string()),
            empty_layer: true,
        });
    }

    /// History with the missing times filled as BuildKit's exporter fills them: each entry
    /// without a time takes the first new time after the base or the time before it.
    fn filled_history(&self) -> Vec<History> {
        let mut history = self.history.clone();
        let mut created: Option<String> = None;
        let mut missing = false;
        for h in &history {
            if h.created.is_some() {
                created = h.created.clone();
                if missing {
                    break;
                }
            } else {
                missing = true;
            }
        }
        missing = false;
        for h in &mut history {
            if h.created.is_some() {
                if missing {
                    created = h.created.clone();
                }
            } else {
                missing = true;
                h.created = created.clone();
            }
        }
        history
    }

    /// The config blob's bytes.
    pub fn config_json(&self) -> Result<Vec<u8>, LayerError> {
        let history = self.filled_history();
        let created = match self.source_date_epoch {
            Some(e) => Some(rfc3339(e, 0)),
            None => history.iter().rev().find_map(|h| h.created.clone()),
        };
        // Sorted keys, as Go marshals the exporter's map.
        let mut top: std::collections::BTreeMap<String, Value> = std::collections::BTreeMap::new();
        for (k, v) in &self.extra {
            top.insert(k.clone(), v.clone());
        }
        top.insert("architecture".into(), json!(self.platform.architecture));
        top.insert("os".into(), json!(self.platform.os));
        if let Some(v) = &self.platform.variant {
            top.insert("variant".into(), json!(v));
        }
        top.insert("config".into(), runtime_json(&self.runtime));
        if let Some(c) = created {
            top.insert("created".into(), json!(c));
        }
        let diff_ids = if self.diff_ids.is_empty() {
            Value::Null
        } else {
            json!(self.diff_ids)
        };
        top.insert(
            "rootfs".into(),
            json!({"type": "layers", "diff_ids": diff_ids}),
        );
        if !history.is_empty() {
            top.insert(
                "history".into(),
                serde_json::to_value(&history).map_err(|e| LayerError::Config(e.to_string()))?,
            );
        }
        let map: Map<String, Value> = top.into_iter().collect();
        to_go_json(&map).map_err(|e| LayerError::Config(e.to_string()))
    }
}

/// The runtime config in `DockerOCIImageConfig` field order, empty fields left out.
fn runtime_json(c: &RuntimeConfig) -> Value {
    let mut m = Map::new();
    let set = |m: &mut Map<String, Value>, k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    if !c.user.is_empty() {
        set(&mut m, "User", json!(c.user));
    }
    if !c.exposed_ports.is_empty() {
        set(
            &mut m,
            "ExposedPorts",
            empty_object_set(c.exposed_ports.keys()),
        );
    }
    if !c.env.is_empty() {
        set(&mut m, "Env", json!(c.env));
    }
    if let Some(e) = c.entrypoint.as_ref().filter(|e| !e.is_empty()) {
        set(&mut m, "Entrypoint", json!(e));
    }
    if let Some(e) = c.cmd.as_ref().filter(|e| !e.is_empty()) {
        set(&mut m, "Cmd", json!(e));
    }
    if !c.volumes.is_empty() {
        set(&mut m, "Volumes", empty_object_set(c.volumes.keys()));
    }
    if !c.working_dir.is_empty() {
        set(&mut m, "WorkingDir", json!(c.working_dir));
    }
    if !c.labels.is_empty() {
        let sorted: std::collections::BTreeMap<&String, &String> = c.labels.iter().collect();
        set(&mut m, "Labels", json!(sorted));
    }
    if !c.stop_signal.is_empty() {
        set(&mut m, "StopSignal", json!(c.stop_signal));
    }
    if c.args_escaped {
        set(&mut m, "ArgsEscaped", json!(true));
    }
    if let Some(h) = &c.healthcheck {
        set(&mut m, "Healthcheck", healthcheck_json(h));
    }
    if !c.on_build.is_empty() {
        set(&mut m, "OnBuild", json!(c.on_build));
    }
    if !c.shell.is_empty() {
        set(&mut m, "Shell", json!(c.shell));
    }
    Value::Object(m)
}

/// A Go `map[string]struct{}`: sorted keys, `{}` values.
fn empty_object_set<'a>(keys: impl Iterator<Item = &'a String>) -> Value {
    let sorted: std::collections::BTreeSet<&String> = keys.collect();
    Value::Object(sorted.into_iter().map(|k| (k.clone(), json!({}))).collect())
}

fn healthcheck_json(h: &Healthcheck) -> Value {
    let mut m = Map::new();
    if !h.test.is_empty() {
        m.insert("Test".into(), json!(h.test));
    }
    for (k, v) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
        ("Retries", h.retries),
    ] {
        if v != 0 {
            m.insert(k.into(), json!(v));
        }
    }
    Value::Object(m)
}

/// The manifest's bytes (OCI media types, `json.MarshalIndent` with three spaces as BuildKit).
pub fn manifest_json(config: &Digest, config_size: u64, layers: &[LayerRecord]) -> Option<Vec<u8>> {
    let mut descs = Vec::new();
    for l in layers {
        // A layer without a blob (e.g. an imported rootfs) cannot be named in a manifest.
        let blob = l.blob.as_ref()?;
        descs.push(json!({"mediaType": l.media_type, "digest": blob, "size": l.size}));
    }
    let m = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_MANIFEST,
        "config": {"mediaType": MEDIA_OCI_CONFIG, "digest": config, "size": config_size},
        "layers": descs,
    });
    to_go_json_indent(&m, "   ").ok()
}

/// Write the config blob and manifest into the store, record the image and tag it.
pub fn commit(
    store: &Store,
    builder: ImageBuilder,
    tags: &[Reference],
) -> Result<ImageRecord, LayerError> {
    let config = builder.config_json()?;
    let id = Digest::of(&config);
    store.write_blob(&id, &config)?;
    let manifest = match manifest_json(&id, config.len() as u64, &builder.layers) {
        Some(bytes) => {
            let d = Digest::of(&bytes);
            store.write_blob(&d, &bytes)?;
            Some(d)
        }
        None => None,
    };
    let filled = builder.filled_history();
    let created = match builder.source_date_epoch {
        Some(e) => Some(rfc3339(e, 0)),
        None => filled.iter().rev().find_map(|h| h.created.clone()),
    };
    let mut record = ImageRecord {
        id: id.clone(),
        manifest,
        repo_digests: Vec::new(),
        layers: builder.layers,
        config: builder.runtime,
        architecture: builder.platform.architecture,
        os: builder.platform.os,
        created,
        size: builder.size,
    };
    // Building the same image again keeps what was recorded about it.
    if let Some(existing) = store.image(&id)? {
        record.repo_digests = existing.repo_digests;
    }
    store.put_image(&record)?;
    if !tags.is_empty() {
        store.update_refs(|refs| {
            for t in tags {
                refs.insert(t.to_string(), id.clone());
            }
        })?;
    }
    Ok(record)
}

/// Seconds (and nanoseconds) since the epoch as Go's RFC 3339 with nanoseconds, in UTC,
/// trailing zeros of the fraction trimmed.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

fn now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

/// A base image's time as Go re-marshals it: fraction without trailing zeros, a zero offset
/// as `Z`.
fn normalize_time(t: &str) -> String {
    let (main, zone) = match t.rfind(['Z', 'z', '+', '-']) {
        Some(i) if i > 10 => t.split_at(i),
        _ => return t.to_string(),
    };
    let zone = if matches!(zone, "z" | "Z" | "+00:00" | "-00:00") {
        "Z"
    } else {
        zone
    };
    let main = match main.split_once('.') {
        Some((whole, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                whole.to_string()
            } else {
                format!("{whole}.{frac}")
            }
        }
        None => main.to_string(),
    };
    format!("{main}{zone}")
}

use crate::image::archive::civil_from_days;

#[cfg(test)]
pub(super) fn runtime_json_for_test(c: &RuntimeConfig) -> Value {
    runtime_json(c)
}

#[cfg(test)]
pub(super) fn normalize_time_for_test(t: &str) -> String {
    normalize_time(t)
}
