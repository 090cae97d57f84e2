//! The typed compose model: what the loader produces and everything downstream consumes.
//!
//! Mirrors compose-go's `types` package as used by Docker Compose v2.40. Read it from the
//! normalised canonical tree (the shape `docker compose config --format json` prints) with
//! [`Project::from_value`]; serialising a [`Project`] yields exactly that JSON (Go's `omitempty`
//! rules, maps sorted by key, durations as `1m30s`, byte sizes as `"1024"`). Maps keep their
//! insertion order in memory and are sorted when printed. [`Project::to_yaml_value`] renders the
//! `docker compose config` YAML variant (extensions inline, unset commands omitted, top-level
//! `models` shown).

mod codec;
mod resources;
mod service;
mod units;

use indexmap::IndexMap;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_yaml::Value;

pub use codec::Extensions;
pub use resources::{
    ConfigObjConfig, FileObjectConfig, IpamConfig, IpamPool, ModelConfig, NetworkConfig,
    SecretConfig, VolumeConfig,
};
pub use service::*;
pub use units::{format_duration, parse_bytes, parse_duration, Duration, FileMode, UnitBytes};

use codec::{de_map_default, sorted, with_yaml_mode, yaml_mode};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid duration {0:?}: expected a number with a unit such as `1m30s`")]
    Duration(String),
    #[error("invalid duration {0:?}: negative durations are not allowed")]
    NegativeDuration(String),
    #[error("invalid byte size {0:?}: expected an integer or a size such as `512m`")]
    Bytes(String),
    #[error("invalid compose model at {path}: {message}")]
    Decode { path: String, message: String },
    #[error("cannot render the compose model: {0}")]
    Render(String),
}

/// A loaded compose project.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Project {
    pub name: String,
    pub services: IndexMap<String, ServiceConfig>,
    pub networks: IndexMap<String, NetworkConfig>,
    pub volumes: IndexMap<String, VolumeConfig>,
    pub secrets: IndexMap<String, SecretConfig>,
    pub configs: IndexMap<String, ConfigObjConfig>,
    pub models: IndexMap<String, ModelConfig>,
    pub extensions: Extensions,
}

#[derive(Deserialize)]
struct RawProject {
    #[serde(default, deserialize_with = "codec::de_string")]
    name: String,
    #[serde(default, deserialize_with = "de_map_default")]
    services: IndexMap<String, ServiceConfig>,
    #[serde(default, deserialize_with = "de_map_default")]
    networks: IndexMap<String, NetworkConfig>,
    #[serde(default, deserialize_with = "de_map_default")]
    volumes: IndexMap<String, VolumeConfig>,
    #[serde(default, deserialize_with = "de_map_default")]
    secrets: IndexMap<String, SecretConfig>,
    #[serde(default, deserialize_with = "de_map_default")]
    configs: IndexMap<String, ConfigObjConfig>,
    #[serde(default, deserialize_with = "de_map_default")]
    models: IndexMap<String, ModelConfig>,
    #[serde(flatten)]
    extensions: Extensions,
}

impl<'de> Deserialize<'de> for Project {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawProject::deserialize(d)?;
        let mut services = raw.services;
        for (name, service) in services.iter_mut() {
            service.name.clone_from(name);
        }
        Ok(Project {
            name: raw.name,
            services,
            networks: raw.networks,
            volumes: raw.volumes,
            secrets: raw.secrets,
            configs: raw.configs,
            models: raw.models,
            extensions: raw.extensions,
        })
    }
}

/// One top-level entry; the top level is printed from a map, like compose-go does.
enum Top<'a> {
    Name(&'a str),
    Services(&'a IndexMap<String, ServiceConfig>),
    Networks(&'a IndexMap<String, NetworkConfig>),
    Volumes(&'a IndexMap<String, VolumeConfig>),
    Files(IndexMap<String, FileObjectConfig>),
    Models(&'a IndexMap<String, ModelConfig>),
    Extension(&'a Value),
}

impl Serialize for Top<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Top::Name(n) => s.serialize_str(n),
            Top::Services(m) => sorted(m, s),
            Top::Networks(m) => sorted(m, s),
            Top::Volumes(m) => sorted(m, s),
            Top::Files(m) => sorted(m, s),
            Top::Models(m) => sorted(m, s),
            Top::Extension(v) => v.serialize(s),
        }
    }
}

impl Serialize for Project {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let yaml = yaml_mode();
        // Secret content may be the secret itself; config content read from the environment
        // is printed as its source instead.
        let secrets = self
            .secrets
            .iter()
            .map(|(k, v)| {
                let mut v = v.clone();
                v.content.clear();
                (k.clone(), v)
            })
            .collect();
        let configs = self
            .configs
            .iter()
            .map(|(k, v)| {
                let mut v = v.clone();
                if !v.environment.is_empty() {
                    v.content.clear();
                }
                (k.clone(), v)
            })
            .collect();
        let mut entries: Vec<(&str, Top<'_>)> = vec![
            ("name", Top::Name(&self.name)),
            ("services", Top::Services(&self.services)),
        ];
        if !self.networks.is_empty() {
            entries.push(("networks", Top::Networks(&self.networks)));
        }
        if !self.volumes.is_empty() {
            entries.push(("volumes", Top::Volumes(&self.volumes)));
        }
        if !self.secrets.is_empty() {
            entries.push(("secrets", Top::Files(secrets)));
        }
        if !self.configs.is_empty() {
            entries.push(("configs", Top::Files(configs)));
        }
        // Docker Compose v2.40 leaves `models` out of its JSON output.
        if yaml && !self.models.is_empty() {
            entries.push(("models", Top::Models(&self.models)));
        }
        for (k, v) in &self.extensions.0 {
            entries.push((k.as_str(), Top::Extension(v)));
        }
        if !yaml {
            // JSON goes through a Go map: keys sorted.
            entries.sort_by(|a, b| a.0.cmp(b.0));
        }
        let mut map = s.serialize_map(Some(entries.len()))?;
        for (k, v) in &entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Go's `encoding/json` escapes `<`, `>` and `&` (HTML-safe by default) and U+2028/U+2029
/// (JavaScript-safe) inside strings, where serde_json writes them as they are. Outside strings
/// JSON has none of these characters, so replacing every one in the text is exact.
pub fn go_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

impl Project {
    /// Reads a project from the normalised canonical tree.
    pub fn from_value(tree: Value) -> Result<Project, ModelError> {
        serde_path_to_error::deserialize(tree).map_err(|e| ModelError::Decode {
            path: e.path().to_string(),
            message: e.inner().to_string(),
        })
    }

    /// What `docker compose config --format json` prints.
    pub fn to_json_value(&self) -> Result<serde_json::Value, ModelError> {
        serde_json::to_value(self).map_err(|e| ModelError::Render(e.to_string()))
    }

    /// `value` as Go's `encoding/json` writes it (docker compose's JSON): serde_json's text
    /// with Go's HTML-safe escapes (see [`go_escape`]), indented by two spaces when `pretty`.
    pub fn go_json(value: &serde_json::Value, pretty: bool) -> Result<String, ModelError> {
        let text = if pretty {
            serde_json::to_string_pretty(value)
        } else {
            serde_json::to_string(value)
        };
        text.map(|t| go_escape(&t))
            .map_err(|e| ModelError::Render(e.to_string()))
    }

    /// What `docker compose config` prints as YAML.
    pub fn to_yaml_value(&self) -> Result<Value, ModelError> {
        with_yaml_mode(|| serde_yaml::to_value(self)).map_err(|e| ModelError::Render(e.to_string()))
    }

    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.get(name)
    }

    pub fn service_mut(&mut self, name: &str) -> Option<&mut ServiceConfig> {
        self.services.get_mut(name)
    }

    /// Service names, sorted (compose-go's `ServiceNames`).
    pub fn service_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.services.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Services depending on `name` (reverse `depends_on`), in declaration order.
    pub fn dependents(&self, name: &str) -> Vec<&str> {
        self.services
            .values()
            .filter(|s| s.depends_on.contains_key(name))
            .map(|s| s.name.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests;
