//! Top-level resources: networks, volumes, secrets, configs, models.

use indexmap::IndexMap;
use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use super::codec::{
    de_str_map, de_string, de_string_list, de_vec, is_default, is_false, sorted, yaml_skip_default,
    Extensions,
};
use super::service::Mapping;

/// `external: true` (the legacy `external: {name: x}` form also reads as true).
fn de_external<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Bool(b) => Ok(b),
        Value::Null => Ok(false),
        Value::Mapping(_) => Ok(true),
        Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
        _ => Err(serde::de::Error::custom("external must be a boolean")),
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NetworkConfig {
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
    pub driver: String,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_str_map"
    )]
    pub driver_opts: Mapping,
    /// Always printed in JSON (`"ipam": {}`), as Go does not omit structs.
    #[serde(default, skip_serializing_if = "yaml_skip_default")]
    pub ipam: IpamConfig,
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_external"
    )]
    pub external: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub internal: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub attachable: bool,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_str_map"
    )]
    pub labels: Mapping,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv4: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// `ipam` (Docker Compose v2.40's model has no `options`; the key is dropped as it does).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IpamConfig {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub driver: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_vec"
    )]
    pub config: Vec<IpamPool>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IpamPool {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub subnet: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub gateway: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub ip_range: String,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_str_map"
    )]
    pub aux_addresses: Mapping,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VolumeConfig {
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
    pub driver: String,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_str_map"
    )]
    pub driver_opts: Mapping,
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_external"
    )]
    pub external: bool,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_str_map"
    )]
    pub labels: Mapping,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A top-level secret or config: exactly one of `file`, `environment`, `content`, `external`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FileObjectConfig {
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
    pub file: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub environment: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub content: String,
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_external"
    )]
    pub external: bool,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        serialize_with = "sorted",
        deserialize_with = "de_str_map"
    )]
    pub labels: Mapping,
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
    pub driver_opts: Mapping,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub template_driver: String,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// Secrets never print their `content` (it may hold the secret itself).
pub type SecretConfig = FileObjectConfig;
/// Configs print `content` unless it was read from `environment`.
pub type ConfigObjConfig = FileObjectConfig;

/// A top-level `models` entry (AI models served by Docker Model Runner).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelConfig {
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
    pub model: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub context_size: i64,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_string_list"
    )]
    pub runtime_flags: Vec<String>,
    #[serde(flatten)]
    pub extensions: Extensions,
}
