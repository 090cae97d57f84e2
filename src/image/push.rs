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

        // Pushes go to the registry itself, never to a mirror.
        let endpoint = self
            .registries
            .endpoints(target)
            .map_err(|e| PushError::local(&name, e))?
            .into_iter()
            .find(|e| !e.mirror)
            .ok_or_else(|| PushError::local(&name, "no registry to push to"))?;
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
        let auth = match self
            .auth
            .lookup(&endpoint.host, &endpoint.repository)
            .map_err(|e| PushError::local(&name, e))?
        {
            Some(Credential::Basic(c)) => RegistryAuth::Basic(c.username, c.password),
            Some(Credential::IdentityToken(t)) => RegistryAuth::Bearer(t),
            None => RegistryAuth::Anonymous,
        };
        let at = endpoint.reference(target);
        let tag = at.tag.clone().unwrap_or_else(|| "latest".into());
        let oref = oci_client::Reference::with_tag(at.registry.clone(), at.repository.clone(), tag);
        client
            .auth(&oref, &auth, RegistryOperation::Push)
            .await
            .map_err(|e| {
                PushError::registry(
                    &name,
                    format!("authentication to {} failed: {e}", endpoint.host),
                )
            })?;
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
            let path = self.store.blob_path(blob);
            let size = std::fs::metadata(&path)
                .map_err(|e| PushError::local(&name, format!("{}: {e}", path.display())))?
                .len();
            if size <= MONOLITHIC_MAX {
                let data = std::fs::read(&path)
                    .map_err(|e| PushError::local(&name, format!("{}: {e}", path.display())))?;
                client
                    .push_blob(&oref, data, &blob.to_string())
                    .await
                    .map_err(|e| PushError::registry(&name, format!("blob {blob}: {e}")))?;
            } else {
                let file = tokio::fs::File::open(&path)
                    .await
                    .map_err(|e| PushError::local(&name, format!("{}: {e}", path.display())))?;
                let stream = tokio_util::io::ReaderStream::with_capacity(file, 4 << 20).map(|r| {
                    r.map_err(|e| {
                        oci_client::errors::OciDistributionError::GenericError(Some(e.to_string()))
                    })
                });
                client
                    .push_blob_stream(&oref, stream, &blob.to_string(), Some(size))
                    .await
                    .map_err(|e| PushError::registry(&name, format!("blob {blob}: {e}")))?;
            }
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
