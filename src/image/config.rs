//! Image configuration (the OCI/docker image config blob) and manifests, the parts rcompose
//! uses. Parsed once at pull time and stored beside the image, ready for the runtime.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::digest::Digest;

pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The image config blob, as registries serve it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ConfigBlob {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default)]
    pub config: RuntimeConfig,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

/// What the runtime needs from an image: docker's field names, every field optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeConfig {
    #[serde(default, deserialize_with = "null_default")]
    pub env: Vec<String>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, deserialize_with = "null_default")]
    pub working_dir: String,
    #[serde(default, deserialize_with = "null_default")]
    pub user: String,
    #[serde(default, deserialize_with = "null_default")]
    pub exposed_ports: IndexMap<String, serde_json::Value>,
    #[serde(default, deserialize_with = "null_default")]
    pub volumes: IndexMap<String, serde_json::Value>,
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, deserialize_with = "null_default")]
    pub stop_signal: String,
    #[serde(default, deserialize_with = "null_default")]
    pub labels: IndexMap<String, String>,
    /// Dockerfile `ONBUILD` triggers, run by builds that use this image as their base.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub on_build: Vec<String>,
    /// Dockerfile `SHELL`: the shell form's command prefix.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub shell: Vec<String>,
    /// Windows-only in docker; kept so that a base image's value survives a build.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub args_escaped: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

/// Docker's HEALTHCHECK; durations in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    #[serde(default, deserialize_with = "null_default")]
    pub test: Vec<String>,
    #[serde(default)]
    pub interval: i64,
    #[serde(default)]
    pub timeout: i64,
    #[serde(default)]
    pub start_period: i64,
    #[serde(default)]
    pub start_interval: i64,
    #[serde(default)]
    pub retries: i64,
}

/// JSON `null` read as the type's default (Go writes nil slices and maps as null).
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A content descriptor in a manifest or index.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformSpec>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PlatformSpec {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest (OCI or docker schema 2).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default)]
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// An image index or docker manifest list.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    #[serde(default)]
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_config_with_nulls_and_healthcheck() {
        let blob = r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":null,
            "Entrypoint":["/init"],"WorkingDir":"","ExposedPorts":{"6379/tcp":{}},"Volumes":null,
            "Healthcheck":{"Test":["CMD","true"],"Interval":1000000000,"Retries":3},"Labels":null},
            "rootfs":{"type":"layers","diff_ids":["sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"]}}"#;
        let c: ConfigBlob = serde_json::from_str(blob).unwrap();
        assert_eq!(c.config.env, vec!["PATH=/bin"]);
        assert_eq!(c.config.cmd, None);
        assert_eq!(c.config.entrypoint, Some(vec!["/init".to_string()]));
        assert!(c.config.exposed_ports.contains_key("6379/tcp"));
        assert_eq!(c.config.healthcheck.unwrap().interval, 1_000_000_000);
        assert_eq!(c.rootfs.diff_ids.len(), 1);
    }
}
