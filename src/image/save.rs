//! `image save`: images out of the store as an archive `docker load` and `image load` read.
//!
//! The default format is what `docker save` writes since Docker 25: an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…`) with docker's `manifest.json` and
//! `repositories` beside it, layers as uncompressed tars named by their diff_id. `--format oci`
//! writes the OCI layout alone, and an image whose manifest and compressed blobs are all in the
//! store (built here, or pulled since blobs are kept) goes out exactly as stored.
//!
//! Each layer tar comes from the layer's compressed blob when the store has it (decompressed,
//! checked against the diff_id). Without the blob (images pulled or loaded before blobs were
//! kept) the tar is written again from the unpacked layer with the layer writer; when that tar
//! is not byte-identical to the original, its diff_id differs, so the config is rewritten with
//! the new diff_ids and the saved image has a new id: the caller gets a warning saying so.

use serde_json::{json, Value};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::PathBuf;

use super::config::{MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST};
use super::digest::{Digest, VerifyingReader};
use super::reference::Reference;
use super::store::{ImageRecord, Store, StoreError};
use super::unpack::{detect_compression, Compression};
use crate::build::layer::tar::{Header, TarWriter, TYPE_DIR, TYPE_REG};
use crate::build::layer::{self, to_go_json, Hashing, LayerError, LayerOptions};

const MEDIA_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("layer {diff_id} of image {image}: {source}")]
    Layer {
        image: Digest,
        diff_id: Digest,
        #[source]
        source: LayerError,
    },
    #[error("layer {diff_id} of image {image}: its blob {blob} {detail}")]
    Corrupt {
        image: Digest,
        diff_id: Digest,
        blob: Digest,
        detail: String,
    },
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the archive: {0}")]
    Write(#[source] io::Error),
    #[error("image config {0}: {1}")]
    Config(Digest, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveFormat {
    /// `docker save` (Docker 25+): OCI layout plus `manifest.json` and `repositories`.
    Docker,
    /// An OCI image layout.
    Oci,
}

/// An image to save and the references to name it by in the archive.
#[derive(Debug, Clone)]
pub struct SaveImage {
    pub record: ImageRecord,
    pub tags: Vec<Reference>,
}

/// A file to put in the archive: bytes in memory or a spooled temporary file.
enum Blob {
    Memory(Vec<u8>),
    Spool(PathBuf),
    Stored(PathBuf, Digest),
}

struct Spools(Vec<PathBuf>);

impl Drop for Spools {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_file(p);
        }
    }
}

/// Write `images` as an archive to `out`. Returns warnings (images whose id changed).
pub fn save(
    store: &Store,
    images: &[SaveImage],
    format: SaveFormat,
    out: impl Write,
) -> Result<Vec<String>, SaveError> {
    let mut spools = Spools(Vec::new());
    let mut warnings = Vec::new();
    let mut blobs: Vec<(Digest, Blob)> = Vec::new();
    let mut seen: HashSet<Digest> = HashSet::new();
    let mut index = Vec::new();
    let mut docker_manifest = Vec::new();
    let mut repositories = serde_json::Map::new();
    let mut add = |blobs: &mut Vec<(Digest, Blob)>, d: Digest, b: Blob| {
        if seen.insert(d.clone()) {
            blobs.push((d, b));
        }
    };

    for image in images {
        let rec = &image.record;
        if format == SaveFormat::Oci {
            if let Some((manifest, media_type)) = native(store, rec) {
                let bytes = store.read_blob(&manifest)?;
                add(
                    &mut blobs,
                    rec.id.clone(),
                    Blob::Memory(store.read_blob(&rec.id)?),
                );
                for l in &rec.layers {
                    if let Some(b) = &l.blob {
                        add(
                            &mut blobs,
                            b.clone(),
                            Blob::Stored(store.blob_path(b), b.clone()),
                        );
                    }
                }
                let size = bytes.len() as u64;
                add(&mut blobs, manifest.clone(), Blob::Memory(bytes));
                push_index(&mut index, &media_type, &manifest, size, &image.tags);
                continue;
            }
        }

        let mut config = store.read_blob(&rec.id)?;
        let mut diff_ids = Vec::new();
        let mut layer_descs = Vec::new();
        let mut changed = false;
        for l in &rec.layers {
            let (path, digest, size) = layer_tar(store, rec, l, &mut spools)?;
            if digest != l.diff_id {
                changed = true;
            }
            layer_descs.push(json!({"mediaType": MEDIA_LAYER_TAR, "digest": digest, "size": size}));
            diff_ids.push(digest.clone());
            add(&mut blobs, digest, Blob::Spool(path));
        }
        let mut id = rec.id.clone();
        if changed {
            config = rewrite_diff_ids(&config, &diff_ids)
                .map_err(|e| SaveError::Config(rec.id.clone(), e))?;
            id = Digest::of(&config);
            warnings.push(format!(
                "image {}: its layers were stored without their original blobs and, written again \
                 from the unpacked files, differ from them: the saved image has id {id} (pull the \
                 image again to save it unchanged)",
                rec.id
            ));
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_MANIFEST,
            "config": {"mediaType": MEDIA_OCI_CONFIG, "digest": id, "size": config.len()},
            "layers": layer_descs,
        });
        let manifest =
            to_go_json(&manifest).map_err(|e| SaveError::Config(rec.id.clone(), e.to_string()))?;
        let manifest_digest = Digest::of(&manifest);
        let manifest_size = manifest.len() as u64;
        add(&mut blobs, id.clone(), Blob::Memory(config));
        add(&mut blobs, manifest_digest.clone(), Blob::Memory(manifest));
        push_index(
            &mut index,
            MEDIA_OCI_MANIFEST,
            &manifest_digest,
            manifest_size,
            &image.tags,
        );

        let repo_tags: Vec<String> = image
            .tags
            .iter()
            .filter_map(|t| tag_of(t).map(|tag| format!("{}:{tag}", t.familiar_name())))
            .collect();
        for t in &image.tags {
            if let Some(tag) = tag_of(t) {
                let entry = repositories
                    .entry(t.familiar_name())
                    .or_insert_with(|| json!({}));
                if let Some(m) = entry.as_object_mut() {
                    m.insert(tag, json!(id.hex()));
                }
            }
        }
        docker_manifest.push(json!({
            "Config": format!("blobs/sha256/{}", id.hex()),
            "RepoTags": if repo_tags.is_empty() { Value::Null } else { json!(repo_tags) },
            "Layers": diff_ids.iter().map(|d| format!("blobs/sha256/{}", d.hex())).collect::<Vec<_>>(),
        }));
    }

    let mut tw = TarWriter::new(out);
    let dir = |name: &str| Header {
        name: name.as_bytes().to_vec(),
        typeflag: TYPE_DIR,
        mode: 0o755,
        ..Header::default()
    };
    tw.header(&dir("blobs/")).map_err(SaveError::Write)?;
    tw.header(&dir("blobs/sha256/")).map_err(SaveError::Write)?;
    for (digest, blob) in &blobs {
        let name = format!("blobs/sha256/{}", digest.hex());
        match blob {
            Blob::Memory(bytes) => member(&mut tw, &name, bytes)?,
            Blob::Spool(path) => {
                let f = File::open(path).map_err(io_err("open", path))?;
                let size = f.metadata().map_err(io_err("stat", path))?.len();
                file_member(&mut tw, &name, f, size)?;
            }
            Blob::Stored(path, d) => {
                let f = File::open(path).map_err(io_err("open", path))?;
                let size = f.metadata().map_err(io_err("stat", path))?.len();
                let verified = VerifyingReader::new(BufReader::new(f), d.clone(), Some(size));
                file_member(&mut tw, &name, verified, size)?;
            }
        }
    }
    let json_err = |e: serde_json::Error| SaveError::Write(io::Error::other(e));
    let index = json!({"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": index});
    member(
        &mut tw,
        "index.json",
        &to_go_json(&index).map_err(json_err)?,
    )?;
    if format == SaveFormat::Docker {
        member(
            &mut tw,
            "manifest.json",
            &to_go_json(&docker_manifest).map_err(json_err)?,
        )?;
    }
    member(&mut tw, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    if format == SaveFormat::Docker {
        member(
            &mut tw,
            "repositories",
            &to_go_json(&repositories).map_err(json_err)?,
        )?;
    }
    let mut out = tw.finish().map_err(SaveError::Write)?;
    out.flush().map_err(SaveError::Write)?;
    Ok(warnings)
}

fn io_err<'a>(
    op: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(io::Error) -> SaveError + 'a {
    move |source| SaveError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn member<W: Write>(tw: &mut TarWriter<W>, name: &str, bytes: &[u8]) -> Result<(), SaveError> {
    file_member(tw, name, bytes, bytes.len() as u64)
}

fn file_member<W: Write>(
    tw: &mut TarWriter<W>,
    name: &str,
    src: impl Read,
    size: u64,
) -> Result<(), SaveError> {
    let h = Header {
        name: name.as_bytes().to_vec(),
        typeflag: TYPE_REG,
        mode: 0o644,
        size: size as i64,
        ..Header::default()
    };
    tw.header(&h).map_err(SaveError::Write)?;
    tw.data(src, size).map_err(SaveError::Write)
}

fn push_index(
    index: &mut Vec<Value>,
    media_type: &str,
    digest: &Digest,
    size: u64,
    tags: &[Reference],
) {
    let tagged: Vec<(&Reference, String)> = tags
        .iter()
        .filter_map(|t| tag_of(t).map(|tag| (t, tag)))
        .collect();
    if tagged.is_empty() {
        index.push(json!({"mediaType": media_type, "digest": digest, "size": size}));
    }
    for (t, tag) in tagged {
        index.push(json!({
            "mediaType": media_type,
            "digest": digest,
            "size": size,
            "annotations": {
                "io.containerd.image.name": format!("{}:{tag}", t.name()),
                "org.opencontainers.image.ref.name": tag,
            },
        }));
    }
}

/// The tag a reference names the image by in an archive: its own, `latest` when it has
/// neither tag nor digest, none for a digest-only reference.
fn tag_of(r: &Reference) -> Option<String> {
    match (&r.tag, &r.digest) {
        (Some(t), _) => Some(t.clone()),
        (None, None) => Some(r.tag_or_latest().to_string()),
        (None, Some(_)) => None,
    }
}

/// The stored manifest (and its media type) when it and every blob it names are in the store.
fn native(store: &Store, rec: &ImageRecord) -> Option<(Digest, String)> {
    let manifest = rec.manifest.as_ref()?;
    if !store.has_blob(manifest) || !store.has_blob(&rec.id) {
        return None;
    }
    if !rec
        .layers
        .iter()
        .all(|l| l.blob.as_ref().is_some_and(|b| store.has_blob(b)))
    {
        return None;
    }
    let bytes = store.read_blob(manifest).ok()?;
    let parsed: super::config::Manifest = serde_json::from_slice(&bytes).ok()?;
    // The manifest must describe this image's config and layers (it came with them).
    if parsed.config.digest != rec.id
        || parsed.layers.len() != rec.layers.len()
        || parsed
            .layers
            .iter()
            .zip(&rec.layers)
            .any(|(d, l)| Some(&d.digest) != l.blob.as_ref())
    {
        return None;
    }
    let media_type = if parsed.media_type.is_empty() {
        MEDIA_OCI_MANIFEST.to_string()
    } else {
        parsed.media_type
    };
    Some((manifest.clone(), media_type))
}

/// The layer's uncompressed tar in a spool file: (path, digest, size).
fn layer_tar(
    store: &Store,
    rec: &ImageRecord,
    l: &super::store::LayerRecord,
    spools: &mut Spools,
) -> Result<(PathBuf, Digest, u64), SaveError> {
    let path = store.temp_path("save");
    spools.0.push(path.clone());
    let file = File::create(&path).map_err(io_err("create", &path))?;
    let mut w = Hashing::new(io::BufWriter::new(file));
    if let Some(blob) = l.blob.as_ref().filter(|b| store.has_blob(b)) {
        let corrupt = |detail: String| SaveError::Corrupt {
            image: rec.id.clone(),
            diff_id: l.diff_id.clone(),
            blob: blob.clone(),
            detail,
        };
        let bp = store.blob_path(blob);
        let f = File::open(&bp).map_err(io_err("open", &bp))?;
        let verified = VerifyingReader::new(BufReader::new(f), blob.clone(), None);
        let compression = Compression::from_media_type(&l.media_type);
        let (compression, reader) = match compression {
            Some(c) => (c, Box::new(verified) as Box<dyn Read>),
            None => {
                let (c, r) = detect_compression(verified).map_err(|e| corrupt(e.to_string()))?;
                (c, Box::new(r) as Box<dyn Read>)
            }
        };
        let mut reader: Box<dyn Read> = match compression {
            Compression::None => reader,
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::new(reader).map_err(|e| corrupt(e.to_string()))?,
            ),
        };
        io::copy(&mut reader, &mut w).map_err(|e| corrupt(format!("cannot be read: {e}")))?;
        let (buf, hashed) = w.finish();
        finish_spool(buf, &path)?;
        let digest = Digest::from_sha256(&hashed.hash);
        if digest != l.diff_id {
            return Err(corrupt(format!("decompresses to {digest}")));
        }
        return Ok((path, digest, hashed.count));
    }
    let dir = store.layer_dir(&l.diff_id);
    let layer_err = |source| SaveError::Layer {
        image: rec.id.clone(),
        diff_id: l.diff_id.clone(),
        source,
    };
    if !dir.is_dir() {
        return Err(layer_err(LayerError::Io {
            op: "find unpacked layer",
            path: dir,
            source: io::Error::from(io::ErrorKind::NotFound),
        }));
    }
    let w = layer::write_tar(&dir, w, &LayerOptions::default()).map_err(layer_err)?;
    let (buf, hashed) = w.finish();
    finish_spool(buf, &path)?;
    Ok((path, Digest::from_sha256(&hashed.hash), hashed.count))
}

fn finish_spool(buf: io::BufWriter<File>, path: &std::path::Path) -> Result<(), SaveError> {
    let f = buf
        .into_inner()
        .map_err(|e| io_err("write", path)(e.into_error()))?;
    drop(f);
    Ok(())
}

/// The config with `rootfs.diff_ids` replaced, other fields kept in their order.
fn rewrite_diff_ids(config: &[u8], diff_ids: &[Digest]) -> Result<Vec<u8>, String> {
    let mut v: Value = serde_json::from_slice(config).map_err(|e| e.to_string())?;
    let rootfs = v
        .get_mut("rootfs")
        .and_then(Value::as_object_mut)
        .ok_or("no rootfs")?;
    rootfs.insert("diff_ids".into(), json!(diff_ids));
    to_go_json(&v).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::layer::{capture, commit, scratch, ImageBuilder};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path().join("images")).unwrap();
        (dir, s)
    }

    fn built(s: &Store) -> ImageRecord {
        let mut b = ImageBuilder::from_base(s, None).unwrap();
        b.set_source_date_epoch(Some(1_700_000_000));
        let dirs = scratch(s).unwrap();
        fs::write(dirs.upper.join("hello"), b"hello\n").unwrap();
        let l = capture(s, dirs, &LayerOptions::default()).unwrap();
        b.add_layer(l, "COPY hello /hello # buildkit");
        b.config_mut().cmd = Some(vec!["/hello".into()]);
        commit(s, b, &["example.com/hello:1".parse().unwrap()]).unwrap()
    }

    fn members(archive: &[u8]) -> Vec<String> {
        let mut ar = ::tar::Archive::new(archive);
        ar.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn docker_format_round_trips_through_load() {
        let (_d, s) = store();
        let rec = built(&s);
        let img = SaveImage {
            record: rec.clone(),
            tags: vec!["example.com/hello:1".parse().unwrap()],
        };
        let mut out = Vec::new();
        let warnings = save(&s, &[img], SaveFormat::Docker, &mut out).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let names = members(&out);
        assert!(names.contains(&"manifest.json".to_string()));
        assert!(names.contains(&"repositories".to_string()));
        assert!(names.contains(&format!("blobs/sha256/{}", rec.layers[0].diff_id.hex())));
        let (_d2, s2) = store();
        let loaded = crate::image::archive::load(&s2, &out[..]).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].0.id, rec.id);
        assert_eq!(
            s2.resolve("example.com/hello:1").unwrap().unwrap().id,
            rec.id
        );
    }

    #[test]
    fn oci_format_keeps_a_built_image_as_stored() {
        let (_d, s) = store();
        let rec = built(&s);
        let img = SaveImage {
            record: rec.clone(),
            tags: vec!["example.com/hello:1".parse().unwrap()],
        };
        let mut out = Vec::new();
        save(&s, &[img], SaveFormat::Oci, &mut out).unwrap();
        let names = members(&out);
        assert!(!names.contains(&"manifest.json".to_string()));
        let manifest = rec.manifest.clone().unwrap();
        assert!(names.contains(&format!("blobs/sha256/{}", manifest.hex())));
        assert!(names.contains(&format!(
            "blobs/sha256/{}",
            rec.layers[0].blob.as_ref().unwrap().hex()
        )));
        let (_d2, s2) = store();
        let loaded = crate::image::archive::load(&s2, &out[..]).unwrap();
        assert_eq!(loaded[0].0.id, rec.id);
    }

    #[test]
    fn a_layer_without_its_blob_is_written_again_and_checked() {
        let (_d, s) = store();
        let rec = built(&s);
        // Drop the blob: the layer tar is regenerated from the unpacked directory, and the
        // writer is deterministic, so it is the same tar (same diff_id, same image id).
        fs::remove_file(s.blob_path(rec.layers[0].blob.as_ref().unwrap())).unwrap();
        let img = SaveImage {
            record: rec.clone(),
            tags: vec![],
        };
        let mut out = Vec::new();
        let warnings = save(&s, &[img], SaveFormat::Docker, &mut out).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let (_d2, s2) = store();
        assert_eq!(
            crate::image::archive::load(&s2, &out[..]).unwrap()[0].0.id,
            rec.id
        );

        // A layer whose files no longer match its diff_id (as a pulled layer re-tarred): the
        // config is rewritten and the caller is told.
        fs::write(s.layer_dir(&rec.layers[0].diff_id).join("extra"), b"x").unwrap();
        let img = SaveImage {
            record: rec.clone(),
            tags: vec![],
        };
        let mut out = Vec::new();
        let warnings = save(&s, &[img], SaveFormat::Docker, &mut out).unwrap();
        assert_eq!(warnings.len(), 1);
        let (_d3, s3) = store();
        let loaded = crate::image::archive::load(&s3, &out[..]).unwrap();
        assert_ne!(loaded[0].0.id, rec.id);
        assert!(warnings[0].contains(&loaded[0].0.id.to_string()));
    }

    #[test]
    fn a_damaged_blob_is_an_error() {
        let (_d, s) = store();
        let rec = built(&s);
        fs::write(
            s.blob_path(rec.layers[0].blob.as_ref().unwrap()),
            b"garbage",
        )
        .unwrap();
        let img = SaveImage {
            record: rec,
            tags: vec![],
        };
        let err = save(&s, &[img], SaveFormat::Docker, io::sink()).unwrap_err();
        assert!(err.to_string().contains("blob"), "{err}");
    }
}
