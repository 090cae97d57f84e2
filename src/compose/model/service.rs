//! A service and everything nested in it (compose-go `types.ServiceConfig` and friends).
//! Field order follows compose-go's struct declarations: `docker compose config` prints in that
//! order.

use std::fmt;

use indexmap::IndexMap;
use serde::de::{self, Deserializer};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_yaml::Value;

use super::codec::{
    de_command, de_multi_map, de_opt_str_map, de_str_map, de_string, de_string_list, de_vec,
    is_default, is_false, sorted, yaml_mode, yaml_skip_default, yaml_skip_none, yes, Extensions,
};
use super::units::{de_f32, ser_f32, Duration, FileMode, UnitBytes};

/// `string → string` mapping: labels, options, sysctls, annotations.
pub type Mapping = IndexMap<String, String>;
/// `string → string?` mapping where `None` means "unset" (environment, build args).
pub type MappingWithEquals = IndexMap<String, Option<String>>;

/// The configuration of one service.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceConfig {
    /// The service's key in `services`; set by [`super::Project`], never printed.
    #[serde(skip)]
    pub name: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub profiles: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_str_map"
    )]
    pub annotations: Mapping,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub develop: Option<DevelopConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blkio_config: Option<BlkioConfig>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub cap_add: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub cap_drop: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub cgroup_parent: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub cgroup: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub cpu_count: i64,
    #[serde(
        default,
        skip_serializing_if = "is_default",
        serialize_with = "ser_f32",
        deserialize_with = "de_f32"
    )]
    pub cpu_percent: f32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub cpu_period: i64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub cpu_quota: i64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub cpu_rt_period: i64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub cpu_rt_runtime: i64,
    #[serde(
        default,
        skip_serializing_if = "is_default",
        serialize_with = "ser_f32",
        deserialize_with = "de_f32"
    )]
    pub cpus: f32,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub cpuset: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub cpu_shares: i64,
    /// `None`: keep the image's command; `Some(vec![])`: clear it. JSON prints `null` for `None`.
    #[serde(
        default,
        skip_serializing_if = "yaml_skip_none",
        deserialize_with = "de_command"
    )]
    pub command: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_vec"
    )]
    pub configs: Vec<ServiceConfigObjConfig>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub container_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_spec: Option<CredentialSpecConfig>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted"
    )]
    pub depends_on: IndexMap<String, ServiceDependency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<DeployConfig>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub device_cgroup_rules: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_vec"
    )]
    pub devices: Vec<DeviceMapping>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub dns: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub dns_opt: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub dns_search: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub dockerfile: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub domainname: String,
    /// As [`Self::command`].
    #[serde(
        default,
        skip_serializing_if = "yaml_skip_none",
        deserialize_with = "de_command"
    )]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ServiceProviderConfig>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_opt_str_map"
    )]
    pub environment: MappingWithEquals,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_vec"
    )]
    pub env_file: Vec<EnvFile>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub expose: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<ExtendsConfig>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub external_links: Vec<String>,
    #[serde(default, skip_serializing_if = "HostsList::is_empty")]
    pub extra_hosts: HostsList,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub group_add: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_vec"
    )]
    pub gpus: Vec<DeviceRequest>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthCheckConfig>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub ipc: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub isolation: String,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_str_map"
    )]
    pub labels: Mapping,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub label_file: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub links: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<LoggingConfig>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub log_driver: String,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_str_map"
    )]
    pub log_opt: Mapping,
    #[serde(default, skip_serializing_if = "UnitBytes::is_zero")]
    pub mem_limit: UnitBytes,
    #[serde(default, skip_serializing_if = "UnitBytes::is_zero")]
    pub mem_reservation: UnitBytes,
    #[serde(default, skip_serializing_if = "UnitBytes::is_zero")]
    pub memswap_limit: UnitBytes,
    /// compose-go types this as a byte size too, so it prints as a string (`"10"`).
    #[serde(default, skip_serializing_if = "UnitBytes::is_zero")]
    pub mem_swappiness: UnitBytes,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub mac_address: String,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted"
    )]
    pub models: IndexMap<String, Option<ServiceModelConfig>>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub net: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub network_mode: String,
    /// `None` values print as `null`: attached with no per-network settings.
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted"
    )]
    pub networks: IndexMap<String, Option<ServiceNetworkConfig>>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub oom_kill_disable: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub oom_score_adj: i64,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub pid: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub pids_limit: i64,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub platform: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_vec"
    )]
    pub ports: Vec<ServicePortConfig>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub privileged: bool,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub pull_policy: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub restart: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub runtime: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_vec"
    )]
    pub secrets: Vec<ServiceSecretConfig>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub security_opt: Vec<String>,
    #[serde(default, skip_serializing_if = "UnitBytes::is_zero")]
    pub shm_size: UnitBytes,
    #[serde(default, skip_serializing_if = "is_false")]
    pub stdin_open: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub stop_signal: String,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_str_map"
    )]
    pub storage_opt: Mapping,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_str_map"
    )]
    pub sysctls: Mapping,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub tmpfs: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub tty: bool,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted"
    )]
    pub ulimits: IndexMap<String, UlimitsConfig>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub use_api_socket: bool,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub user: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub userns_mode: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub uts: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub volume_driver: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_vec"
    )]
    pub volumes: Vec<ServiceVolumeConfig>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub volumes_from: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub working_dir: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_vec"
    )]
    pub post_start: Vec<ServiceHook>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_vec"
    )]
    pub pre_stop: Vec<ServiceHook>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// Orders every object's keys, so that a digest of the JSON depends on the content only (the
/// serialiser's order may follow how a key came in).
fn sort_keys(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.sort_keys();
            map.values_mut().for_each(sort_keys);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

impl ServiceConfig {
    /// The service's configuration hash, with docker compose's exclusions (compose-go's
    /// `ServiceHash`): the sha256 of the service's JSON without what never requires a new
    /// container: `build`, `pull_policy`, `scale` and `deploy.replicas`, `depends_on`,
    /// `profiles`. The digest is of the JSON with sorted keys: Go orders a struct's fields its own
    /// way, so the value equals docker's only for simple services.
    pub fn docker_hash(&self) -> Result<String, super::ModelError> {
        use sha2::Digest;
        let value = self.hash_value()?;
        let text = super::Project::go_json(&value, false)?;
        Ok(hex::encode(sha2::Sha256::digest(text.as_bytes())))
    }

    /// The service as `docker_hash` hashes it: its JSON form without the keys docker compose
    /// leaves out, keys sorted.
    pub fn hash_value(&self) -> Result<serde_json::Value, super::ModelError> {
        let mut value =
            serde_json::to_value(self).map_err(|e| super::ModelError::Render(e.to_string()))?;
        if let Some(map) = value.as_object_mut() {
            for key in [
                "name",
                "build",
                "pull_policy",
                "scale",
                "depends_on",
                "profiles",
            ] {
                map.remove(key);
            }
            if let Some(deploy) = map.get_mut("deploy").and_then(|d| d.as_object_mut()) {
                deploy.remove("replicas");
                // `deploy: {replicas: N}` alone is a replica count, like `scale` (the model
                // adds empty `resources` and `placement`).
                let empty = |v: &serde_json::Value| {
                    v.is_null() || v.as_object().is_some_and(|o| o.is_empty())
                };
                if deploy.values().all(empty) {
                    map.remove("deploy");
                }
            }
        }
        sort_keys(&mut value);
        Ok(value)
    }

    /// Names of the services this one depends on (`depends_on` keys), in declaration order.
    pub fn dependencies(&self) -> impl Iterator<Item = &str> {
        self.depends_on.keys().map(String::as_str)
    }

    /// Number of containers to run: `scale`, else `deploy.replicas`, else 1.
    pub fn scale(&self) -> i64 {
        self.scale
            .or_else(|| self.deploy.as_ref().and_then(|d| d.replicas))
            .unwrap_or(1)
    }

    /// Whether the service is enabled by `profiles` (services without profiles always are).
    pub fn has_profile(&self, profiles: &[String]) -> bool {
        self.profiles.is_empty() || self.profiles.iter().any(|p| profiles.contains(p))
    }

    /// Attached network names, highest `priority` first, then by name (compose-go's order for
    /// connecting networks).
    pub fn networks_by_priority(&self) -> Vec<&str> {
        let mut names: Vec<(&str, i64)> = self
            .networks
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_ref().map_or(0, |n| n.priority)))
            .collect();
        names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        names.into_iter().map(|(k, _)| k).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceProviderConfig {
    #[serde(
        default,
        rename = "type",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub kind: String,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_multi_map"
    )]
    pub options: IndexMap<String, Vec<String>>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BuildConfig {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub context: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub dockerfile: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub dockerfile_inline: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub entitlements: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_opt_str_map"
    )]
    pub args: MappingWithEquals,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub provenance: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub sbom: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_ssh"
    )]
    pub ssh: Vec<SshKey>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_str_map"
    )]
    pub labels: Mapping,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub cache_from: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub cache_to: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_cache: bool,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_str_map"
    )]
    pub additional_contexts: Mapping,
    #[serde(default, skip_serializing_if = "is_false")]
    pub pull: bool,
    #[serde(default, skip_serializing_if = "HostsList::is_empty")]
    pub extra_hosts: HostsList,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub isolation: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub network: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub target: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_vec"
    )]
    pub secrets: Vec<ServiceSecretConfig>,
    #[serde(default, skip_serializing_if = "UnitBytes::is_zero")]
    pub shm_size: UnitBytes,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub tags: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted"
    )]
    pub ulimits: IndexMap<String, UlimitsConfig>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub platforms: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub privileged: bool,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// One `build.ssh` entry: `default`, or `id` with a key/socket path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SshKey {
    pub id: String,
    pub path: String,
}

/// Printed as `"id"` or `"id=path"` (the short syntax). Docker Compose itself fails to print
/// keys with a path (its JSON encoder emits invalid JSON), so there is no oracle to follow.
impl Serialize for SshKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.path.is_empty() {
            s.serialize_str(&self.id)
        } else {
            s.serialize_str(&format!("{}={}", self.id, self.path))
        }
    }
}

/// `build.ssh` as a mapping `id: path|null` or a list of `id` / `id=path` strings.
fn de_ssh<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SshKey>, D::Error> {
    let split = |s: String| match s.split_once('=') {
        Some((id, path)) => SshKey {
            id: id.to_string(),
            path: path.to_string(),
        },
        None => SshKey {
            id: s,
            path: String::new(),
        },
    };
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::Mapping(m) => m
            .into_iter()
            .map(|(k, v)| {
                let id = k
                    .as_str()
                    .ok_or_else(|| de::Error::custom("ssh key id must be a string"))?;
                let path = match v {
                    Value::Null => String::new(),
                    Value::String(p) => p,
                    _ => {
                        return Err(de::Error::custom(format!(
                            "ssh key {id}: path must be a string"
                        )))
                    }
                };
                Ok(SshKey {
                    id: id.to_string(),
                    path,
                })
            })
            .collect(),
        Value::Sequence(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(split(s)),
                _ => Err(de::Error::custom("ssh entries must be strings")),
            })
            .collect(),
        Value::String(s) => Ok(vec![split(s)]),
        _ => Err(de::Error::custom("expected a mapping or list for ssh")),
    }
}

/// `extra_hosts`: host → IPs. Printed as a sorted list of `host=ip`, as compose-go does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostsList(pub IndexMap<String, Vec<String>>);

impl HostsList {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `host<sep>ip` entries in declaration order (the engine wants `:`).
    pub fn as_list(&self, sep: &str) -> Vec<String> {
        self.0
            .iter()
            .flat_map(|(h, ips)| ips.iter().map(move |ip| format!("{h}{sep}{ip}")))
            .collect()
    }

    fn insert(&mut self, host: &str, ips: &str) {
        let entry = self.0.entry(host.to_string()).or_default();
        for ip in ips.split(',') {
            // `[::1]` → `::1`
            let ip = ip
                .strip_prefix('[')
                .and_then(|i| i.strip_suffix(']'))
                .filter(|i| !i.is_empty())
                .unwrap_or(ip);
            entry.push(ip.to_string());
        }
    }
}

impl Serialize for HostsList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut list = self.as_list("=");
        list.sort();
        list.serialize(s)
    }
}

impl<'de> Deserialize<'de> for HostsList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = HostsList::default();
        let check = |host: &str| {
            if host.is_empty() || host.contains([':', '=']) {
                Err(de::Error::custom(format!("bad host name '{host}'")))
            } else {
                Ok(())
            }
        };
        match Value::deserialize(d)? {
            Value::Null => {}
            Value::Sequence(items) => {
                for item in items {
                    let Value::String(s) = item else {
                        return Err(de::Error::custom("extra_hosts entries must be strings"));
                    };
                    let (host, ip) =
                        s.split_once('=')
                            .or_else(|| s.split_once(':'))
                            .ok_or_else(|| {
                                de::Error::custom(format!(
                                    "invalid additional host, missing IP: {s}"
                                ))
                            })?;
                    check(host)?;
                    out.insert(host, ip);
                }
            }
            Value::Mapping(m) => {
                for (k, v) in m {
                    let host = k.as_str().unwrap_or_default().to_string();
                    check(&host)?;
                    match v {
                        Value::Null => out.insert(&host, ""),
                        Value::String(ip) => out.insert(&host, &ip),
                        Value::Sequence(ips) => {
                            for ip in ips {
                                out.insert(&host, ip.as_str().unwrap_or_default());
                            }
                        }
                        _ => {
                            return Err(de::Error::custom("unexpected value for extra_hosts entry"))
                        }
                    }
                }
            }
            _ => return Err(de::Error::custom("extra_hosts must be a list or mapping")),
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DevelopConfig {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_vec"
    )]
    pub watch: Vec<Trigger>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// One `develop.watch` rule.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Trigger {
    #[serde(default, deserialize_with = "de_string")]
    pub path: String,
    #[serde(default, deserialize_with = "de_string")]
    pub action: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub target: String,
    #[serde(default, skip_serializing_if = "yaml_skip_default")]
    pub exec: ServiceHook,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub include: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub ignore: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub initial_sync: bool,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A lifecycle hook (`post_start`, `pre_stop`) or a watch `exec`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceHook {
    #[serde(
        default,
        skip_serializing_if = "yaml_skip_none",
        deserialize_with = "de_command"
    )]
    pub command: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub user: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub privileged: bool,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub working_dir: String,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_opt_str_map"
    )]
    pub environment: MappingWithEquals,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BlkioConfig {
    #[serde(default, skip_serializing_if = "is_default")]
    pub weight: u16,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_vec"
    )]
    pub weight_device: Vec<WeightDevice>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_vec"
    )]
    pub device_read_bps: Vec<ThrottleDevice>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_vec"
    )]
    pub device_read_iops: Vec<ThrottleDevice>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_vec"
    )]
    pub device_write_bps: Vec<ThrottleDevice>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_vec"
    )]
    pub device_write_iops: Vec<ThrottleDevice>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// compose-go has no tags on these two structs: JSON prints Go field names (`Path`, `Weight`,
/// `Rate`), YAML lower-cases them.
fn device_key(json: &'static str, yaml: &'static str) -> &'static str {
    if yaml_mode() {
        yaml
    } else {
        json
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct WeightDevice {
    #[serde(default, alias = "Path", deserialize_with = "de_string")]
    pub path: String,
    #[serde(default, alias = "Weight")]
    pub weight: u16,
    #[serde(flatten)]
    pub extensions: Extensions,
}

impl Serialize for WeightDevice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(device_key("Path", "path"), &self.path)?;
        m.serialize_entry(device_key("Weight", "weight"), &self.weight)?;
        if yaml_mode() {
            for (k, v) in &self.extensions.0 {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct ThrottleDevice {
    #[serde(default, alias = "Path", deserialize_with = "de_string")]
    pub path: String,
    #[serde(default, alias = "Rate")]
    pub rate: UnitBytes,
    #[serde(flatten)]
    pub extensions: Extensions,
}

impl Serialize for ThrottleDevice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(device_key("Path", "path"), &self.path)?;
        m.serialize_entry(device_key("Rate", "rate"), &self.rate)?;
        if yaml_mode() {
            for (k, v) in &self.extensions.0 {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DeviceMapping {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub source: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub target: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub permissions: String,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LoggingConfig {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub driver: String,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_str_map"
    )]
    pub options: Mapping,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DeployConfig {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_str_map"
    )]
    pub labels: Mapping,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_config: Option<UpdateConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdateConfig>,
    #[serde(default, skip_serializing_if = "yaml_skip_default")]
    pub resources: Resources,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(default, skip_serializing_if = "yaml_skip_default")]
    pub placement: Placement,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub endpoint_mode: String,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UpdateConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u64>,
    #[serde(default, skip_serializing_if = "Duration::is_zero")]
    pub delay: Duration,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub failure_action: String,
    #[serde(default, skip_serializing_if = "Duration::is_zero")]
    pub monitor: Duration,
    #[serde(
        default,
        skip_serializing_if = "is_default",
        serialize_with = "ser_f32",
        deserialize_with = "de_f32"
    )]
    pub max_failure_ratio: f32,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub order: String,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Resource>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Resource {
    /// CPUs as a fraction (`0.5`), compose-go's `NanoCPUs`.
    #[serde(
        default,
        skip_serializing_if = "is_default",
        serialize_with = "ser_f32",
        deserialize_with = "de_f32"
    )]
    pub cpus: f32,
    #[serde(default, skip_serializing_if = "UnitBytes::is_zero")]
    pub memory: UnitBytes,
    #[serde(default, skip_serializing_if = "is_default")]
    pub pids: i64,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_vec"
    )]
    pub devices: Vec<DeviceRequest>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_vec"
    )]
    pub generic_resources: Vec<GenericResource>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GenericResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discrete_resource_spec: Option<DiscreteGenericResource>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DiscreteGenericResource {
    #[serde(default, deserialize_with = "de_string")]
    pub kind: String,
    #[serde(default)]
    pub value: i64,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A device request (`gpus`, `deploy.resources.reservations.devices`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DeviceRequest {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub capabilities: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub driver: String,
    /// `-1` means `all`.
    #[serde(
        default,
        skip_serializing_if = "is_default",
        deserialize_with = "de_device_count"
    )]
    pub count: i64,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub device_ids: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_str_map"
    )]
    pub options: Mapping,
    #[serde(flatten)]
    pub extensions: Extensions,
}

fn de_device_count<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| de::Error::custom(format!("invalid device count {n}"))),
        Value::String(s) if s.eq_ignore_ascii_case("all") => Ok(-1),
        Value::String(s) => s.parse().map_err(|_| {
            de::Error::custom(format!(
                "invalid value {s:?}, the only value allowed is 'all' or a number"
            ))
        }),
        Value::Null => Ok(0),
        _ => Err(de::Error::custom("invalid type for device count")),
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RestartPolicy {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub condition: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Placement {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub constraints: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_vec"
    )]
    pub preferences: Vec<PlacementPreferences>,
    #[serde(
        default,
        rename = "max_replicas_per_node",
        skip_serializing_if = "is_default"
    )]
    pub max_replicas: u64,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PlacementPreferences {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub spread: String,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceNetworkConfig {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub aliases: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_str_map"
    )]
    pub driver_opts: Mapping,
    #[serde(default, skip_serializing_if = "is_default")]
    pub gw_priority: i64,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub interface_name: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub ipv4_address: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub ipv6_address: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub link_local_ips: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub mac_address: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub priority: i64,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServicePortConfig {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub name: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub mode: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub host_ip: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub target: u32,
    /// A port or a range (`"8000-8010"`); empty when the engine picks.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub published: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub protocol: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub app_protocol: String,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A mount. `kind` is `bind`, `volume`, `tmpfs`, `npipe`, `cluster` or `image`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceVolumeConfig {
    #[serde(
        default,
        rename = "type",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub kind: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub source: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub target: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub consistency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<ServiceVolumeBind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<ServiceVolumeVolume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<ServiceVolumeTmpfs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ServiceVolumeImage>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceVolumeBind {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub selinux: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub propagation: String,
    /// Docker Compose v2.40 prints this only when true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub create_host_path: bool,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub recursive: String,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceVolumeVolume {
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_str_map"
    )]
    pub labels: Mapping,
    #[serde(default, skip_serializing_if = "is_false")]
    pub nocopy: bool,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub subpath: String,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceVolumeTmpfs {
    #[serde(default, skip_serializing_if = "UnitBytes::is_zero")]
    pub size: UnitBytes,
    /// Printed as a decimal integer (`493` for 0755), unlike secret modes.
    #[serde(
        default,
        skip_serializing_if = "is_default",
        deserialize_with = "de_tmpfs_mode"
    )]
    pub mode: u32,
    #[serde(flatten)]
    pub extensions: Extensions,
}

fn de_tmpfs_mode<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    FileMode::deserialize(d).map(|m| m.0)
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceVolumeImage {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub subpath: String,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A service's reference to a secret or config (`FileReferenceConfig`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FileReferenceConfig {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub source: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub target: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub uid: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub gid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FileMode>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

pub type ServiceSecretConfig = FileReferenceConfig;
pub type ServiceConfigObjConfig = FileReferenceConfig;

/// A ulimit: a single value (soft = hard) or a soft/hard pair.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UlimitsConfig {
    pub single: i64,
    pub soft: i64,
    pub hard: i64,
    pub extensions: Extensions,
}

impl Serialize for UlimitsConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.single != 0 {
            return s.serialize_i64(self.single);
        }
        let mut m = s.serialize_map(None)?;
        if self.soft != 0 {
            m.serialize_entry("soft", &self.soft)?;
        }
        if self.hard != 0 {
            m.serialize_entry("hard", &self.hard)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for UlimitsConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let int = |v: &Value, what: &str| -> Result<i64, D::Error> {
            match v {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }
            .ok_or_else(|| de::Error::custom(format!("ulimit {what} must be an integer")))
        };
        match Value::deserialize(d)? {
            Value::Mapping(m) => {
                let mut out = UlimitsConfig::default();
                for (k, v) in m {
                    match k.as_str() {
                        Some("soft") => out.soft = int(&v, "soft")?,
                        Some("hard") => out.hard = int(&v, "hard")?,
                        Some(x) if x.starts_with("x-") => {
                            out.extensions.0.insert(x.to_string(), v);
                        }
                        _ => {}
                    }
                }
                Ok(out)
            }
            v => Ok(UlimitsConfig {
                single: int(&v, "value")?,
                ..Default::default()
            }),
        }
    }
}

impl fmt::Display for UlimitsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.single != 0 {
            write!(f, "{}", self.single)
        } else {
            write!(f, "{}:{}", self.soft, self.hard)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CredentialSpecConfig {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub config: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub file: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub registry: String,
    #[serde(flatten)]
    pub extensions: Extensions,
}

pub const CONDITION_STARTED: &str = "service_started";
pub const CONDITION_HEALTHY: &str = "service_healthy";
pub const CONDITION_COMPLETED_SUCCESSFULLY: &str = "service_completed_successfully";

/// One `depends_on` entry. `required` is always printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceDependency {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub condition: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub restart: bool,
    #[serde(flatten)]
    pub extensions: Extensions,
    #[serde(default = "yes")]
    pub required: bool,
}

impl Default for ServiceDependency {
    fn default() -> Self {
        ServiceDependency {
            condition: CONDITION_STARTED.to_string(),
            restart: false,
            extensions: Extensions::default(),
            required: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvFile {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub path: String,
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub format: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ExtendsConfig {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub file: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub service: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HealthCheckConfig {
    /// `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", "..."]`; a plain string means CMD-SHELL.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_health_test"
    )]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disable: bool,
    #[serde(flatten)]
    pub extensions: Extensions,
}

fn de_health_test<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(vec!["CMD-SHELL".to_string(), s]),
        other => de_string_list(other).map_err(de::Error::custom),
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceModelConfig {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub endpoint_var: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub model_var: String,
    #[serde(flatten)]
    pub extensions: Extensions,
}
