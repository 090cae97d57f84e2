//! `rcompose push` and `image push`: an image of the store to a registry over the distribution
//! API, with the same credentials and registries configuration as pulls. Blobs the registry
//! has are skipped; small blobs go in one request, large ones stream from the store in chunks;
//! the manifest goes last, byte for byte the one in the store (so its digest is the image's).

use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};

use super::auth::{AuthStore, Credential};
use super::config::MEDIA_OCI_MANIFEST;
use super::digest::Digest;
use super::progress::Progress;
use super::reference::Reference;
use super::registries::Registries;
use super::store::{ImageRecord, Store};

/// Blobs up to this size go in one request; larger ones stream in chunks.
const MONOLITHIC_MAX: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{image}: {detail}")]
    Registry { image: String, detail: String },
    #[error("{image}: {detail}")]
    Local { image: String, detail: String },
}

impl PushError {
    fn registry(image: &str, detail: impl std::fmt::Display) -> PushError {
        PushError::Registry {
            image: image.to_string(),
            detail: detail.to_string(),
        }
    }
    fn local(image: &str, detail: impl std::fmt::Display) -> PushError {
        PushError::Local {
            image: image.to_string(),
            detail: detail.to_string(),
        }
    }
}

pub struct Pusher {
    store: Store,
    registries: Registries,
    auth: AuthStore,
    progress: Progress,
}

impl Pusher {
    pub fn new(store: Store, registries: Registries, auth: AuthStore, progress: Progress) -> Self {
        Pusher {
            store,
            registries,
            auth,
            progress,
        }
    }

    /// Pushes `image` as `target`; returns the manifest's digest.
    pub async fn push(&self, image: &ImageRecord, target: &Reference) -> Result<Digest, PushError> {
        let name = target.familiar();
        // A built image's blobs and manifest are made on its first push.
        let materialized = crate::build::layer::materialize(&self.store, image)
            .map_err(|e| PushError::local(&name, e))?;
        let image = &materialized;
        let manifest_digest = image.manifest.clone().ok_or_else(|| {
            PushError::local(
                &name,
                "the image has no manifest in the store (re-pull or rebuild it)",
            )
        })?;
        let manifest = self
            .store
            .read_blob(&manifest_digest)
            .map_err(|e| PushError::local(&name, e))?;
        let media_type = serde_json::from_slice::<serde_json::Value>(&manifest)
            .ok()
            .and_then(|m| {
                m.get("mediaType")
                    .and_then(|t| t.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| MEDIA_OCI_MANIFEST.to_string());
        // Every blob must be here before anything is sent.
        let mut blobs = Vec::new();
        for l in &image.layers {
            let blob = l.blob.clone().filter(|b| self.store.has_blob(b)).ok_or_else(|| {
                PushError::local(
                    &name,
                    format!(
                        "layer {} has no compressed blob in the store (pulled before rcompose kept them): pull the image again",
                        l.diff_id
                    ),
                )
            })?;
            blobs.push(blob);
        }
        blobs.push(image.id.clone());

        let (client, oref, _) = connect(
            &self.registries,
            &self.auth,
            target,
            &name,
            RegistryOperation::Push,
        )
        .await?;
        self.progress.line(&format!("{name} Pushing"));
        for blob in &blobs {
            let short = &blob.hex()[..12];
            let exists = client
                .blob_exists(&oref, &blob.to_string())
                .await
                .map_err(|e| PushError::registry(&name, e))?;
            if exists {
                self.progress
                    .line(&format!(" {short} Layer already exists"));
                continue;
            }
            push_blob_file(&client, &oref, &self.store.blob_path(blob), blob, &name).await?;
            self.progress.line(&format!(" {short} Pushed"));
        }
        let content_type = http::HeaderValue::from_str(&media_type)
            .map_err(|e| PushError::local(&name, format!("manifest media type: {e}")))?;
        client
            .push_manifest_raw(&oref, manifest, content_type)
            .await
            .map_err(|e| PushError::registry(&name, format!("manifest: {e}")))?;
        self.progress
            .line(&format!("{name} Pushed ({manifest_digest})"));
        Ok(manifest_digest)
    }
}

/// A client and the reference at the registry itself (pushes never go to a mirror),
/// authenticated for pushing `target`.
async fn connect(
    registries: &Registries,
    auth: &AuthStore,
    target: &Reference,
    name: &str,
    op: RegistryOperation,
) -> Result<(Client, oci_client::Reference, RegistryAuth), PushError> {
    let endpoint = registries
        .endpoints(target)
        .map_err(|e| PushError::local(name, e))?
        .into_iter()
        .find(|e| !e.mirror)
        .ok_or_else(|| PushError::local(name, "no registry to push to"))?;
    let protocol = if endpoint.insecure {
        ClientProtocol::HttpsExcept(vec![endpoint.host.clone()])
    } else {
        ClientProtocol::Https
    };
    let client = Client::new(ClientConfig {
        protocol,
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(120)),
        ..Default::default()
    });
    let credential = match auth
        .lookup(&endpoint.host, &endpoint.repository)
        .map_err(|e| PushError::local(name, e))?
    {
        Some(Credential::Basic(c)) => RegistryAuth::Basic(c.username, c.password),
        Some(Credential::IdentityToken(t)) => RegistryAuth::Bearer(t),
        None => RegistryAuth::Anonymous,
    };
    let at = endpoint.reference(target);
    let tag = at.tag.clone().unwrap_or_else(|| "latest".into());
    let oref = oci_client::Reference::with_tag(at.registry.clone(), at.repository.clone(), tag);
    client.auth(&oref, &credential, op).await.map_err(|e| {
        PushError::registry(
            name,
            format!("authentication to {} failed: {e}", endpoint.host),
        )
    })?;
    Ok((client, oref, credential))
}

/// Uploads the file at `path` as blob `digest` (in one request when small, else streamed).
async fn push_blob_file(
    client: &Client,
    oref: &oci_client::Reference,
    path: &std::path::Path,
    digest: &Digest,
    name: &str,
) -> Result<(), PushError> {
    let size = std::fs::metadata(path)
        .map_err(|e| PushError::local(name, format!("{}: {e}", path.display())))?
        .len();
    if size <= MONOLITHIC_MAX {
        let data = std::fs::read(path)
            .map_err(|e| PushError::local(name, format!("{}: {e}", path.display())))?;
        client
            .push_blob(oref, data, &digest.to_string())
            .await
            .map_err(|e| PushError::registry(name, format!("blob {digest}: {e}")))?;
    } else {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| PushError::local(name, format!("{}: {e}", path.display())))?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 4 << 20).map(|r| {
            r.map_err(|e| {
                oci_client::errors::OciDistributionError::GenericError(Some(e.to_string()))
            })
        });
        client
            .push_blob_stream(oref, stream, &digest.to_string(), Some(size))
            .await
            .map_err(|e| PushError::registry(name, format!("blob {digest}: {e}")))?;
    }
    Ok(())
}

/// A build cache in a registry (`cache_to`/`cache_from: type=registry,ref=…`): rcompose's own
/// format, an OCI artifact whose config holds the step records and whose layers are the layer
/// blobs they need — the layout of a local cache directory (`build::cache::local`), moved.
pub mod cache {
    use super::*;
    use std::path::Path;

    /// The config's media type, so nobody mistakes the artifact for an image.
    pub const MEDIA_CACHE_CONFIG: &str = "application/vnd.rcompose.build-cache.config.v1+json";
    const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// At most this many bytes of records are read back (a hostile registry).
    const CONFIG_MAX: usize = 64 << 20;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct CacheConfig {
        records: std::collections::BTreeMap<String, serde_json::Value>,
    }

    fn descriptor(media_type: &str, digest: &Digest, size: u64) -> serde_json::Value {
        serde_json::json!({"mediaType": media_type, "digest": digest.to_string(), "size": size})
    }

    /// Pushes the cache directory `dir` (records/, blobs/sha256/) as `target`.
    pub async fn push_dir(
        registries: &Registries,
        auth: &AuthStore,
        dir: &Path,
        target: &Reference,
    ) -> Result<usize, PushError> {
        let name = target.familiar();
        let local = |e: std::io::Error| PushError::local(&name, format!("{}: {e}", dir.display()));
        let mut records = std::collections::BTreeMap::new();
        for e in std::fs::read_dir(dir.join("records"))
            .map_err(local)?
            .flatten()
        {
            let p = e.path();
            let Some(key) = p.file_stem().and_then(|s| s.to_str()).map(str::to_string) else {
                continue;
            };
            let bytes = std::fs::read(&p).map_err(local)?;
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| PushError::local(&name, format!("{}: {e}", p.display())))?;
            records.insert(key, value);
        }
        let count = records.len();
        let config =
            serde_json::to_vec(&CacheConfig { records }).map_err(|e| PushError::local(&name, e))?;
        let config_digest = Digest::of(&config);
        let (client, oref, _) =
            connect(registries, auth, target, &name, RegistryOperation::Push).await?;
        let mut layers = Vec::new();
        let blobs = dir.join("blobs/sha256");
        let mut entries: Vec<_> = std::fs::read_dir(&blobs)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        entries.sort();
        for p in entries {
            let Some(hex) = p.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Ok(digest) = format!("sha256:{hex}").parse::<Digest>() else {
                continue;
            };
            let size = std::fs::metadata(&p).map_err(local)?.len();
            if !client
                .blob_exists(&oref, &digest.to_string())
                .await
                .map_err(|e| PushError::registry(&name, e))?
            {
                push_blob_file(&client, &oref, &p, &digest, &name).await?;
            }
            layers.push(descriptor(MEDIA_LAYER, &digest, size));
        }
        client
            .push_blob(&oref, config.clone(), &config_digest.to_string())
            .await
            .map_err(|e| PushError::registry(&name, format!("cache config: {e}")))?;
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_MANIFEST,
            "config": descriptor(MEDIA_CACHE_CONFIG, &config_digest, config.len() as u64),
            "layers": layers,
        }))
        .map_err(|e| PushError::local(&name, e))?;
        client
            .push_manifest_raw(
                &oref,
                manifest,
                http::HeaderValue::from_static(MEDIA_OCI_MANIFEST),
            )
            .await
            .map_err(|e| PushError::registry(&name, format!("cache manifest: {e}")))?;
        Ok(count)
    }

    /// Fetches the cache `source` into the directory `dir` (records/, blobs/sha256/), every
    /// blob checked against its digest. A cache that does not exist yet is no error (the first
    /// CI run), as with BuildKit: `Ok(0)`.
    pub async fn pull_dir(
        registries: &Registries,
        auth: &AuthStore,
        source: &Reference,
        dir: &Path,
    ) -> Result<usize, PushError> {
        let name = source.familiar();
        // From the registry itself, as pushes: a cache is not mirrored.
        let (client, oref, credential) =
            connect(registries, auth, source, &name, RegistryOperation::Pull).await?;
        let manifest = match client
            .pull_manifest_raw(&oref, &credential, &[MEDIA_OCI_MANIFEST])
            .await
        {
            Ok((bytes, _)) => bytes,
            Err(oci_client::errors::OciDistributionError::ImageManifestNotFoundError(_)) => {
                return Ok(0)
            }
            Err(e)
                if e.to_string().contains("MANIFEST_UNKNOWN")
                    || e.to_string().contains("NAME_UNKNOWN") =>
            {
                return Ok(0)
            }
            Err(e) => return Err(PushError::registry(&name, format!("cache manifest: {e}"))),
        };
        let manifest: serde_json::Value = serde_json::from_slice(&manifest)
            .map_err(|e| PushError::registry(&name, format!("cache manifest: {e}")))?;
        let desc = |v: &serde_json::Value| -> Option<(String, Digest, u64)> {
            Some((
                v.get("mediaType")?.as_str()?.to_string(),
                v.get("digest")?.as_str()?.parse::<Digest>().ok()?,
                v.get("size")?.as_u64()?,
            ))
        };
        let Some((config_type, config_digest, config_size)) = manifest.get("config").and_then(desc)
        else {
            return Err(PushError::registry(&name, "cache manifest: no config"));
        };
        if config_type != MEDIA_CACHE_CONFIG {
            return Err(PushError::registry(
                &name,
                format!("{config_type} is not an rcompose build cache"),
            ));
        }
        if config_size as usize > CONFIG_MAX {
            return Err(PushError::registry(&name, "cache config is too large"));
        }
        let local = |e: std::io::Error| PushError::local(&name, format!("{}: {e}", dir.display()));
        let blobs = dir.join("blobs/sha256");
        let records = dir.join("records");
        std::fs::create_dir_all(&blobs).map_err(local)?;
        std::fs::create_dir_all(&records).map_err(local)?;
        // Read into a sink that refuses more than the limit, whatever the registry sends.
        let mut sink = crate::image::pull::BoundedSink::new(CONFIG_MAX as u64);
        client
            .pull_blob(
                &oref,
                &oci_client::manifest::OciDescriptor {
                    media_type: config_type.clone(),
                    digest: config_digest.to_string(),
                    size: config_size as i64,
                    ..Default::default()
                },
                &mut sink,
            )
            .await
            .map_err(|e| PushError::registry(&name, format!("cache config: {e}")))?;
        let config = sink.into_inner();
        if Digest::of(&config) != config_digest {
            return Err(PushError::registry(&name, "cache config: wrong digest"));
        }
        let config: CacheConfig = serde_json::from_slice(&config)
            .map_err(|e| PushError::registry(&name, format!("cache config: {e}")))?;
        for layer in manifest
            .get("layers")
            .and_then(|l| l.as_array())
            .into_iter()
            .flatten()
        {
            let Some((media_type, digest, size)) = desc(layer) else {
                return Err(PushError::registry(&name, "cache manifest: a bad layer"));
            };
            let to = blobs.join(digest.hex());
            let tmp = blobs.join(format!(".{}.tmp", digest.hex()));
            let file = tokio::fs::File::create(&tmp).await.map_err(local)?;
            // oci_client checks the digest as it writes.
            client
                .pull_blob(
                    &oref,
                    &oci_client::manifest::OciDescriptor {
                        media_type,
                        digest: digest.to_string(),
                        size: size as i64,
                        ..Default::default()
                    },
                    file,
                )
                .await
                .map_err(|e| PushError::registry(&name, format!("blob {digest}: {e}")))?;
            std::fs::rename(&tmp, &to).map_err(local)?;
        }
        let mut n = 0;
        for (key, record) in config.records {
            // A key is a file name here: 64 hex digits and nothing else.
            if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let bytes = serde_json::to_vec(&record).map_err(|e| PushError::local(&name, e))?;
            std::fs::write(records.join(format!("{key}.json")), bytes).map_err(local)?;
            n += 1;
        }
        Ok(n)
    }
}
