//! Pulling an image over the OCI distribution API into the content store.
//!
//! reference → endpoints (mirrors first, from registries.conf) → manifest (an index picks the
//! host platform) → config → layers, in parallel. Each layer streams download → digest check →
//! decompression → unpacking into a staging directory, and is published only when both its blob
//! digest and its diff_id check out. A layer already in the store is never fetched again.

use futures_util::TryStreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::Client;
use std::collections::HashSet;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use super::auth::{AuthError, AuthStore, Credential};
use super::config::{ConfigBlob, Descriptor, Index, Manifest};
use super::config::{
    MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST,
};
use super::digest::{Digest, VerifyingReader};
use super::progress::{self, Progress};
use super::reference::{Platform, Reference};
use super::registries::{Endpoint, Registries, RegistriesError};
use super::store::{remove_tree, BlobWriter, ImageRecord, LayerRecord, Store, StoreError};
use super::unpack::{self, Compression, Limits};

/// Layers downloaded at once per image.
const PARALLEL_LAYERS: usize = 4;

/// The largest image config read into memory (real ones are a few KiB; a registry that sends
/// more is refused instead of filling memory).
pub const MAX_CONFIG: u64 = 8 << 20;

/// An in-memory sink that refuses to grow past `max` bytes.
pub(crate) struct BoundedSink {
    buf: Vec<u8>,
    max: u64,
}

impl BoundedSink {
    pub(crate) fn new(max: u64) -> BoundedSink {
        BoundedSink {
            buf: Vec::new(),
            max,
        }
    }

    pub(crate) fn into_inner(self) -> Vec<u8> {
        self.buf
    }
}

impl tokio::io::AsyncWrite for BoundedSink {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if (self.buf.len() + data.len()) as u64 > self.max {
            let max = self.max;
            return std::task::Poll::Ready(Err(std::io::Error::other(format!(
                "larger than {max} bytes"
            ))));
        }
        self.buf.extend_from_slice(data);
        std::task::Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("{image}: not found in {registry}: {detail}")]
    NotFound {
        image: String,
        registry: String,
        detail: String,
    },
    #[error("{image}: authentication to {registry} failed: {detail}")]
    Auth {
        image: String,
        registry: String,
        detail: String,
    },
    #[error("{image}: cannot reach registry {registry}: {detail}")]
    Unreachable {
        image: String,
        registry: String,
        detail: String,
    },
    #[error("{image}: registry {registry}: {detail}")]
    Registry {
        image: String,
        registry: String,
        detail: String,
    },
    #[error("{image}: no manifest for platform {platform} in {registry} (available: {available})")]
    NoPlatform {
        image: String,
        registry: String,
        platform: String,
        available: String,
    },
    #[error("{image}: content from {registry} failed verification: {detail}")]
    Verify {
        image: String,
        registry: String,
        detail: String,
    },
    #[error("{image}: layer {layer}: {source}")]
    Unpack {
        image: String,
        layer: String,
        #[source]
        source: unpack::UnpackError,
    },
    #[error("{image}: {source}")]
    Store {
        image: String,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Registries(#[from] RegistriesError),
    #[error("{image}: {source}")]
    Credentials {
        image: String,
        #[source]
        source: AuthError,
    },
    #[error("{image}: every registry failed:\n  {}", errors.join("\n  "))]
    AllFailed { image: String, errors: Vec<String> },
}

/// Whether a failure stops the walk over a reference's registries (mirrors, search
/// registries) instead of trying the next one. Content that fails verification is never
/// retried elsewhere silently: the user must know a registry served something else than it
/// claimed. A local failure (the store, unpacking a verified layer, the credentials file)
/// would fail the same way with any registry, and going on would end on an unrelated network
/// error from the next one (a DNS failure for docker.io) that blames a registry for it.
fn ends_the_search(e: &PullError) -> bool {
    matches!(
        e,
        PullError::Verify { .. }
            | PullError::Store { .. }
            | PullError::Unpack { .. }
            | PullError::Credentials { .. }
    )
}

/// Pulls images into a store, sharing one HTTP client and its tokens.
pub struct Puller {
    store: Store,
    registries: Registries,
    auth: AuthStore,
    platform: Platform,
    progress: Progress,
    limits: Limits,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub image: ImageRecord,
    /// Layers fetched now (the others were already in the store).
    pub fetched_layers: usize,
    pub fetched_bytes: u64,
}

impl Puller {
    pub fn new(store: Store, registries: Registries, auth: AuthStore, progress: Progress) -> Self {
        Puller {
            store,
            registries,
            auth,
            platform: Platform::host(),
            progress,
            limits: Limits::default(),
        }
    }

    /// Pull for another platform than the host's (`platform:` in a compose file).
    pub fn with_platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Pull `reference` (already normalised) and tag it in the store.
    pub async fn pull(&self, reference: &Reference) -> Result<Pulled, PullError> {
        let image = reference.familiar();
        let endpoints = self.registries.endpoints(reference)?;
        self.progress.line(&format!("{image} Pulling"));
        let mut errors = Vec::new();
        let mut last = None;
        for endpoint in &endpoints {
            match self.pull_from(reference, endpoint).await {
                Ok(pulled) => {
                    self.progress.line(&format!(
                        "{image} Pulled ({})",
                        pulled.image.manifest.as_ref().unwrap_or(&pulled.image.id)
                    ));
                    return Ok(pulled);
                }
                Err(e) if ends_the_search(&e) => return Err(e),
                Err(e) => {
                    let text = e.to_string();
                    let prefix = format!("{image}: ");
                    errors.push(text.strip_prefix(&prefix).unwrap_or(&text).to_string());
                    last = Some(e);
                }
            }
        }
        match (errors.len(), last) {
            (1, Some(e)) => Err(e),
            _ => Err(PullError::AllFailed { image, errors }),
        }
    }

    async fn pull_from(
        &self,
        reference: &Reference,
        endpoint: &Endpoint,
    ) -> Result<Pulled, PullError> {
        let image = reference.familiar();
        let registry = endpoint.host.clone();
        let ctx = Ctx {
            image: image.clone(),
            registry: registry.clone(),
        };
        let client = client_for(endpoint);
        let auth = match self
            .auth
            .lookup(&endpoint.host, &endpoint.repository)
            .map_err(|source| PullError::Credentials {
                image: image.clone(),
                source,
            })? {
            Some(Credential::Basic(c)) => RegistryAuth::Basic(c.username, c.password),
            Some(Credential::IdentityToken(t)) => RegistryAuth::Bearer(t),
            None => RegistryAuth::Anonymous,
        };
        let at = endpoint.reference(reference);
        let oref = oci_ref(&at, at.manifest_reference());

        // The manifest, or an index that leads to one.
        let accept = [
            MEDIA_OCI_INDEX,
            MEDIA_DOCKER_LIST,
            MEDIA_OCI_MANIFEST,
            MEDIA_DOCKER_MANIFEST,
        ];
        let (bytes, _) = client
            .pull_manifest_raw(&oref, &auth, &accept)
            .await
            .map_err(|e| ctx.classify(e))?;
        let top_digest = Digest::of(&bytes);
        if let Some(wanted) = &reference.digest {
            if wanted != &top_digest.to_string() {
                return Err(ctx.verify(format!(
                    "manifest digest is {top_digest}, the reference asks for {wanted}"
                )));
            }
        }
        let top: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ctx.registry(format!("invalid manifest: {e}")))?;
        let (manifest_bytes, manifest_digest) = if top.get("manifests").is_some() {
            let index: Index = serde_json::from_value(top)
                .map_err(|e| ctx.registry(format!("invalid image index: {e}")))?;
            let chosen = self.choose_platform(&ctx, &index)?;
            let child = oci_ref(&at, &chosen.digest.to_string());
            let (bytes, _) = client
                .pull_manifest_raw(&child, &auth, &accept)
                .await
                .map_err(|e| ctx.classify(e))?;
            let got = Digest::of(&bytes);
            if got != chosen.digest {
                return Err(ctx.verify(format!("manifest {} has digest {got}", chosen.digest)));
            }
            self.store
                .write_blob(&top_digest, &serde_json::to_vec(&index).unwrap_or_default())
                .ok();
            (bytes.to_vec(), got)
        } else {
            (bytes.to_vec(), top_digest.clone())
        };
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| ctx.registry(format!("invalid image manifest: {e}")))?;
        self.store
            .write_blob(&manifest_digest, &manifest_bytes)
            .map_err(|e| ctx.store(e))?;

        // The config: small, fetched whole and verified.
        let config_bytes = if self.store.has_blob(&manifest.config.digest) {
            self.store
                .read_blob(&manifest.config.digest)
                .map_err(|e| ctx.store(e))?
        } else {
            if manifest.config.size > MAX_CONFIG {
                return Err(ctx.registry(format!(
                    "image config of {} bytes, more than the {MAX_CONFIG} accepted",
                    manifest.config.size
                )));
            }
            let mut sink = BoundedSink {
                buf: Vec::new(),
                max: MAX_CONFIG,
            };
            client
                .pull_blob(
                    &oref,
                    manifest.config.digest.to_string().as_str(),
                    &mut sink,
                )
                .await
                .map_err(|e| ctx.classify(e))?;
            let buf = sink.buf;
            self.store
                .write_blob(&manifest.config.digest, &buf)
                .map_err(|e| ctx.verify(e.to_string()))?;
            buf
        };
        let config: ConfigBlob = serde_json::from_slice(&config_bytes)
            .map_err(|e| ctx.registry(format!("invalid image config: {e}")))?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ctx.verify(format!(
                "the manifest has {} layers but the config lists {} diff_ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }

        // The layers, in parallel; each one only once even if an image repeats it.
        let client = Arc::new(client);
        let mut tasks = tokio::task::JoinSet::new();
        let semaphore = Arc::new(tokio::sync::Semaphore::new(PARALLEL_LAYERS));
        let mut seen = HashSet::new();
        let mut fetched_layers = 0;
        for (desc, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            let short = &diff_id.hex()[..12];
            if self.store.has_layer(diff_id) {
                if seen.insert(diff_id.clone()) {
                    self.progress
                        .layer(short, desc.size)
                        .finish("Already exists");
                }
                continue;
            }
            if !seen.insert(diff_id.clone()) {
                continue;
            }
            fetched_layers += 1;
            let job = LayerJob {
                client: client.clone(),
                oref: oref.clone(),
                desc: desc.clone(),
                diff_id: diff_id.clone(),
                store: self.store.clone(),
                limits: self.limits.clone(),
                progress: self.progress.layer(short, desc.size),
                ctx: ctx.clone(),
            };
            let permit = semaphore.clone();
            tasks.spawn(async move {
                let _permit = permit.acquire_owned().await;
                job.run().await
            });
        }
        let mut fetched_bytes = 0;
        let mut first_error = None;
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(n)) => fetched_bytes += n,
                Ok(Err(e)) => {
                    // Stop the other downloads: the pull has failed.
                    tasks.abort_all();
                    first_error.get_or_insert(e);
                }
                Err(join) if join.is_cancelled() => {}
                Err(join) => {
                    first_error.get_or_insert(ctx.registry(format!("layer task failed: {join}")));
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }

        let record = ImageRecord {
            id: manifest.config.digest.clone(),
            manifest: Some(manifest_digest),
            repo_digests: vec![format!("{}@{top_digest}", reference.name())],
            layers: manifest
                .layers
                .iter()
                .zip(&config.rootfs.diff_ids)
                .map(|(d, diff_id)| LayerRecord {
                    diff_id: diff_id.clone(),
                    blob: Some(d.digest.clone()),
                    media_type: d.media_type.clone(),
                    size: d.size,
                })
                .collect(),
            config: config.config.clone(),
            architecture: config.architecture.clone(),
            os: config.os.clone(),
            created: config.created.clone(),
            size: manifest.layers.iter().map(|l| l.size).sum(),
        };
        // An image keeps the repo digests it already had from other repositories.
        let mut record = record;
        if let Ok(Some(existing)) = self.store.image(&record.id) {
            for d in existing.repo_digests {
                if !record.repo_digests.contains(&d) {
                    record.repo_digests.push(d);
                }
            }
        }
        self.store.put_image(&record).map_err(|e| ctx.store(e))?;
        self.store
            .tag(&reference.to_string(), &record.id)
            .map_err(|e| ctx.store(e))?;
        Ok(Pulled {
            image: record,
            fetched_layers,
            fetched_bytes,
        })
    }

    fn choose_platform<'a>(
        &self,
        ctx: &Ctx,
        index: &'a Index,
    ) -> Result<&'a Descriptor, PullError> {
        let entries: Vec<Option<Platform>> = index
            .manifests
            .iter()
            .map(|d| {
                let p = d.platform.as_ref()?;
                Some(Platform::new(&p.os, &p.architecture, p.variant.as_deref()))
            })
            .collect();
        match self.platform.choose(&entries) {
            Ok(i) => Ok(&index.manifests[i]),
            Err(available) => Err(PullError::NoPlatform {
                image: ctx.image.clone(),
                registry: ctx.registry.clone(),
                platform: self.platform.to_string(),
                available,
            }),
        }
    }
}

/// The image and registry an error is about.
#[derive(Clone)]
struct Ctx {
    image: String,
    registry: String,
}

impl Ctx {
    fn verify(&self, detail: String) -> PullError {
        PullError::Verify {
            image: self.image.clone(),
            registry: self.registry.clone(),
            detail,
        }
    }

    fn registry(&self, detail: String) -> PullError {
        PullError::Registry {
            image: self.image.clone(),
            registry: self.registry.clone(),
            detail,
        }
    }

    fn store(&self, source: StoreError) -> PullError {
        PullError::Store {
            image: self.image.clone(),
            source,
        }
    }

    /// Turn the client's error into what the user needs to know.
    fn classify(&self, e: OciDistributionError) -> PullError {
        let (image, registry) = (self.image.clone(), self.registry.clone());
        let detail = error_chain(&e);
        let lower = detail.to_lowercase();
        match &e {
            OciDistributionError::AuthenticationFailure(_)
            | OciDistributionError::UnauthorizedError { .. } => PullError::Auth {
                image,
                registry,
                detail,
            },
            OciDistributionError::ImageManifestNotFoundError(_) => PullError::NotFound {
                image,
                registry,
                detail,
            },
            OciDistributionError::RequestError(r) if r.is_connect() || r.is_timeout() => {
                PullError::Unreachable {
                    image,
                    registry,
                    detail,
                }
            }
            OciDistributionError::DigestError(_) => PullError::Verify {
                image,
                registry,
                detail,
            },
            _ if lower.contains("manifest_unknown")
                || lower.contains("manifest unknown")
                || lower.contains("name_unknown")
                || lower.contains("name unknown")
                || lower.contains("blob unknown")
                || lower.contains("404") =>
            {
                PullError::NotFound {
                    image,
                    registry,
                    detail,
                }
            }
            _ if lower.contains("unauthorized")
                || lower.contains("401")
                || lower.contains("denied") =>
            {
                PullError::Auth {
                    image,
                    registry,
                    detail,
                }
            }
            _ if lower.contains("digest") => PullError::Verify {
                image,
                registry,
                detail,
            },
            _ => PullError::Registry {
                image,
                registry,
                detail,
            },
        }
    }
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

fn client_for(endpoint: &Endpoint) -> Client {
    let protocol = if endpoint.insecure {
        ClientProtocol::HttpsExcept(vec![endpoint.host.clone()])
    } else {
        ClientProtocol::Https
    };
    Client::new(ClientConfig {
        protocol,
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(60)),
        ..Default::default()
    })
}

/// The client library's reference for `r` at `tag_or_digest`.
fn oci_ref(r: &Reference, tag_or_digest: &str) -> oci_client::Reference {
    if tag_or_digest.contains(':') {
        oci_client::Reference::with_digest(
            r.registry.clone(),
            r.repository.clone(),
            tag_or_digest.to_string(),
        )
    } else {
        oci_client::Reference::with_tag(
            r.registry.clone(),
            r.repository.clone(),
            tag_or_digest.to_string(),
        )
    }
}

/// One layer to fetch and unpack.
struct LayerJob {
    client: Arc<Client>,
    oref: oci_client::Reference,
    desc: Descriptor,
    diff_id: Digest,
    store: Store,
    limits: Limits,
    progress: progress::Layer,
    ctx: Ctx,
}

impl LayerJob {
    /// Returns the compressed bytes fetched.
    async fn run(self) -> Result<u64, PullError> {
        // Images pulled side by side often share layers: one download per layer and process,
        // the others wait for it and find the layer in the store.
        let lock = layer_lock(&self.diff_id);
        let _guard = lock.lock().await;
        if self.store.has_layer(&self.diff_id) {
            self.progress.finish("Already exists");
            return Ok(0);
        }
        let digest = self.desc.digest.to_string();
        let stream = self
            .client
            .pull_blob_stream(&self.oref, digest.as_str())
            .await
            .map_err(|e| self.ctx.classify(e))?;
        let reader =
            tokio_util::io::StreamReader::new(stream.stream.map_err(std::io::Error::other));
        let bridge = tokio_util::io::SyncIoBridge::new(reader);
        let compression = Compression::from_media_type(&self.desc.media_type);
        let ctx = self.ctx.clone();
        let progress = self.progress;
        let result = tokio::task::spawn_blocking(move || {
            let staging = self.store.layer_staging().map_err(|e| ctx.store(e))?;
            // The compressed blob is kept too: `image save` and pushes hand out exactly the
            // layer that was pulled (a layer re-tarred from its files would get a new diff_id).
            let sink = if self.store.has_blob(&self.desc.digest) {
                None
            } else {
                Some(
                    self.store
                        .blob_writer(self.desc.digest.clone(), Some(self.desc.size))
                        .map_err(|e| ctx.store(e))?,
                )
            };
            let mut tee = Tee {
                inner: bridge,
                sink,
            };
            let outcome = unpack_verified(
                &mut tee,
                &self.desc,
                &self.diff_id,
                compression,
                &staging,
                &self.limits,
                &progress,
                &ctx,
            );
            match outcome {
                Ok(n) => {
                    if let Some(blob) = tee.sink.take() {
                        blob.commit().map_err(|e| ctx.store(e))?;
                    }
                    self.store
                        .commit_layer(&staging, &self.diff_id)
                        .map_err(|e| ctx.store(e))?;
                    progress.finish("Pull complete");
                    Ok(n)
                }
                Err(e) => {
                    // Nothing of a failed layer stays behind.
                    let _ = remove_tree(&staging);
                    progress.fail();
                    Err(e)
                }
            }
        })
        .await;
        match result {
            Ok(r) => r,
            Err(join) => Err(self.ctx.registry(format!("layer task failed: {join}"))),
        }
    }
}

/// Copies what is read into a blob writer (which checks digest and size on commit).
struct Tee<R> {
    inner: R,
    sink: Option<BlobWriter>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(w) = &mut self.sink {
            std::io::Write::write_all(w, &buf[..n])?;
        }
        Ok(n)
    }
}

/// The in-process lock of one layer (by diff id).
fn layer_lock(diff_id: &Digest) -> Arc<tokio::sync::Mutex<()>> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static LOCKS: OnceLock<Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let locks = LOCKS.get_or_init(Default::default);
    let mut map = locks
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    map.entry(diff_id.clone()).or_default().clone()
}

/// Download → verify blob digest and size → decompress → unpack → verify diff_id.
#[allow(clippy::too_many_arguments)]
fn unpack_verified(
    source: impl Read,
    desc: &Descriptor,
    diff_id: &Digest,
    compression: Option<Compression>,
    staging: &std::path::Path,
    limits: &Limits,
    progress: &progress::Layer,
    ctx: &Ctx,
) -> Result<u64, PullError> {
    let counted = Counting {
        inner: source,
        progress,
    };
    let mut verified = VerifyingReader::new(counted, desc.digest.clone(), Some(desc.size));
    let (compression, reader) = match compression {
        Some(c) => (c, None),
        None => {
            let (c, sniffed) = unpack::detect_compression(&mut verified)
                .map_err(|e| ctx.registry(format!("cannot read layer {}: {e}", desc.digest)))?;
            (c, Some(sniffed))
        }
    };
    let unpacked = match reader {
        Some(r) => unpack::unpack_layer(r, compression, staging, limits),
        None => unpack::unpack_layer(&mut verified, compression, staging, limits),
    };
    let unpacked = unpacked.map_err(|source| match source {
        // A read error here is the download or the digest check failing.
        unpack::UnpackError::Read { .. } if is_verify_error(&source) => {
            ctx.verify(format!("layer {}: {}", desc.digest, error_chain(&source)))
        }
        source => PullError::Unpack {
            image: ctx.image.clone(),
            layer: desc.digest.to_string(),
            source,
        },
    })?;
    // unpack_layer reads to the end of its input, which runs the digest check; a trailing read
    // makes sure of it.
    std::io::copy(&mut verified, &mut std::io::sink())
        .map_err(|e| ctx.verify(format!("layer {}: {e}", desc.digest)))?;
    if unpacked.diff_id != diff_id.to_string() {
        return Err(ctx.verify(format!(
            "layer {} unpacks to {}, the config says {diff_id}",
            desc.digest, unpacked.diff_id
        )));
    }
    Ok(verified.bytes_read())
}

fn is_verify_error(e: &unpack::UnpackError) -> bool {
    let text = error_chain(e);
    text.contains("digest mismatch")
        || text.contains("size mismatch")
        || text.contains("declared size")
}

/// Reports bytes to the progress bar as they arrive.
struct Counting<'a, R> {
    inner: R,
    progress: &'a progress::Layer,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn config_sink_refuses_past_its_limit() {
        use tokio::io::AsyncWriteExt;
        let mut sink = BoundedSink {
            buf: Vec::new(),
            max: 10,
        };
        sink.write_all(b"0123456789").await.unwrap();
        let err = sink.write_all(b"x").await.unwrap_err();
        assert_eq!(err.to_string(), "larger than 10 bytes");
        assert_eq!(sink.buf, b"0123456789");
    }

    #[test]
    fn local_failures_end_the_search_over_registries() {
        let local = PullError::Store {
            image: "busybox".into(),
            source: StoreError::Io {
                what: "cannot create",
                path: "/var/lib/rcompose/images/blobs".into(),
                source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            },
        };
        assert!(ends_the_search(&local));
        let network = PullError::Unreachable {
            image: "busybox".into(),
            registry: "mirror.example".into(),
            detail: "connection refused".into(),
        };
        assert!(!ends_the_search(&network));
        let missing = PullError::NotFound {
            image: "busybox".into(),
            registry: "mirror.example".into(),
            detail: "manifest unknown".into(),
        };
        assert!(!ends_the_search(&missing));
    }
}
