//! The content store under `$RCOMPOSE_ROOT/images`:
//!
//! ```text
//! blobs/sha256/<hex>          manifests, configs and compressed layers, by digest
//! layers/sha256/<diff-id>/    each layer unpacked once, shared by every image that has it
//! images/<config-hex>.json    an image: its manifest, layers and parsed config
//! refs.json                   reference (docker.io/library/redis:7) → image id
//! tmp/                        work in progress; renamed into place when complete
//! ```
//!
//! Everything lands by `rename` from `tmp/` (same file system), so a reader never sees half a
//! blob or half a layer, and two processes pulling the same image at once both succeed: the
//! second rename finds the content already there and drops its copy. `refs.json` is updated
//! under an exclusive lock on `refs.lock`.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::config::RuntimeConfig;
use super::digest::{Digest, VerifyingReader};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("blob {digest}: {source}")]
    Verify {
        digest: Digest,
        #[source]
        source: io::Error,
    },
    #[error("corrupt store file {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("no such image: {0}")]
    NoSuchImage(String),
    #[error("image {image} is used by {users}")]
    InUse { image: String, users: String },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// The digest of the uncompressed tar: names the unpacked directory.
    pub diff_id: Digest,
    /// The compressed blob it came from, when it came from a registry or archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<Digest>,
    #[serde(default)]
    pub media_type: String,
    /// Compressed size as the manifest declares it.
    pub size: u64,
}

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config blob's digest: docker's image ID.
    pub id: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Digest>,
    /// `name@sha256:…` for each repository it was pulled from by manifest digest.
    #[serde(default)]
    pub repo_digests: Vec<String>,
    pub layers: Vec<LayerRecord>,
    pub config: RuntimeConfig,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Bytes on disk once unpacked (sum of the layers' unpacked sizes, when known).
    #[serde(default)]
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Open (creating it if needed) the store at `root`.
    /// The store at `root` as it is, for reading only (`--dry-run`): nothing is created.
    pub fn at(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let store = Store { root: root.into() };
        for dir in ["blobs/sha256", "layers/sha256", "images", "tmp"] {
            let p = store.root.join(dir);
            fs::create_dir_all(&p).map_err(io_err("cannot create", &p))?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// A blob's bytes, verified against its digest (a store can be damaged on disk).
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>, StoreError> {
        let p = self.blob_path(d);
        let f = File::open(&p).map_err(io_err("cannot open blob", &p))?;
        let mut out = Vec::new();
        VerifyingReader::new(f, d.clone(), None)
            .read_to_end(&mut out)
            .map_err(|source| StoreError::Verify {
                digest: d.clone(),
                source,
            })?;
        Ok(out)
    }

    /// Store `data` as blob `expected`, after checking it has that digest.
    pub fn write_blob(&self, expected: &Digest, data: &[u8]) -> Result<(), StoreError> {
        // Content-addressed: a blob that is there is these bytes (a rebuilt image's config).
        if self.has_blob(expected) && Digest::of(data) == *expected {
            return Ok(());
        }
        let mut w = self.blob_writer(expected.clone(), Some(data.len() as u64))?;
        w.write_all(data).map_err(io_err("cannot write", &w.tmp))?;
        w.commit()
    }

    /// A writer for a blob arriving as a stream; [`BlobWriter::commit`] verifies and publishes
    /// it, dropping the writer without committing leaves nothing behind.
    pub fn blob_writer(
        &self,
        expected: Digest,
        size: Option<u64>,
    ) -> Result<BlobWriter, StoreError> {
        let tmp = self.temp_path("blob");
        let file = File::create(&tmp).map_err(io_err("cannot create", &tmp))?;
        Ok(BlobWriter {
            file: Some(file),
            hasher: <sha2::Sha256 as sha2::Digest>::new(),
            written: 0,
            tmp,
            dest: self.blob_path(&expected),
            expected,
            size,
        })
    }

    /// A unique path under `tmp/`.
    pub fn temp_path(&self, kind: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        self.root
            .join("tmp")
            .join(format!("{kind}-{}-{n}-{nanos}", std::process::id()))
    }

    /// Where the layer with this diff id is (or will be) unpacked.
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers/sha256").join(diff_id.hex())
    }

    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_dir(diff_id).is_dir()
    }

    /// A fresh directory under `tmp/` to unpack a layer into.
    pub fn layer_staging(&self) -> Result<PathBuf, StoreError> {
        let p = self.temp_path("layer");
        fs::create_dir(&p).map_err(io_err("cannot create", &p))?;
        Ok(p)
    }

    /// Publish an unpacked layer. When another pull published the same layer first, ours is
    /// removed and theirs kept: the contents are the same by construction (same diff id).
    pub fn commit_layer(&self, staging: &Path, diff_id: &Digest) -> Result<(), StoreError> {
        let dest = self.layer_dir(diff_id);
        match fs::rename(staging, &dest) {
            Ok(()) => Ok(()),
            Err(e) if dest.is_dir() => {
                let _ = e;
                remove_tree(staging)
            }
            Err(e) => {
                let _ = remove_tree(staging);
                Err(io_err("cannot publish layer", &dest)(e))
            }
        }
    }

    fn image_path(&self, id: &Digest) -> PathBuf {
        self.root.join("images").join(format!("{}.json", id.hex()))
    }

    /// Record an image (its layers must be committed first).
    pub fn put_image(&self, image: &ImageRecord) -> Result<(), StoreError> {
        let path = self.image_path(&image.id);
        let data = serde_json::to_vec_pretty(image).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        // The same record again (a build with nothing changed): no write, no fsync.
        if fs::read(&path).is_ok_and(|old| old == data) {
            return Ok(());
        }
        self.write_atomic(&path, &data)
    }

    pub fn image(&self, id: &Digest) -> Result<Option<ImageRecord>, StoreError> {
        let path = self.image_path(id);
        match fs::read(&path) {
            Ok(data) => serde_json::from_slice(&data)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    path,
                    message: e.to_string(),
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("cannot read", &path)(e)),
        }
    }

    /// When an image was last recorded (pulled, loaded or imported): `pull_policy: daily`
    /// and friends compare against it.
    pub fn recorded_at(&self, id: &Digest) -> Option<std::time::SystemTime> {
        fs::metadata(self.image_path(id))
            .and_then(|m| m.modified())
            .ok()
    }

    /// Every image in the store.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let dir = self.root.join("images");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("cannot list", &dir))? {
            let entry = entry.map_err(io_err("cannot list", &dir))?;
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            let Ok(id) = format!("sha256:{hex}").parse::<Digest>() else {
                continue;
            };
            if let Some(img) = self.image(&id)? {
                out.push(img);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// The reference → image id table.
    pub fn refs(&self) -> Result<IndexMap<String, Digest>, StoreError> {
        let path = self.root.join("refs.json");
        match fs::read(&path) {
            Ok(data) => serde_json::from_slice(&data).map_err(|e| StoreError::Corrupt {
                path,
                message: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(IndexMap::new()),
            Err(e) => Err(io_err("cannot read", &path)(e)),
        }
    }

    /// Change the reference table under the store's lock.
    pub fn update_refs<T>(
        &self,
        f: impl FnOnce(&mut IndexMap<String, Digest>) -> T,
    ) -> Result<T, StoreError> {
        let lock_path = self.root.join("refs.lock");
        let lock = File::create(&lock_path).map_err(io_err("cannot create", &lock_path))?;
        lock.lock().map_err(io_err("cannot lock", &lock_path))?;
        let mut refs = self.refs()?;
        let before = refs.clone();
        let out = f(&mut refs);
        if refs == before {
            // Nothing changed (a tag already pointing where it is set to): no write.
            return Ok(out);
        }
        let data = serde_json::to_vec_pretty(&refs).map_err(|e| StoreError::Corrupt {
            path: lock_path.clone(),
            message: e.to_string(),
        })?;
        self.write_atomic(&self.root.join("refs.json"), &data)?;
        Ok(out)
    }

    /// Point `reference` (normalised, e.g. `docker.io/library/redis:7`) at image `id`.
    pub fn tag(&self, reference: &str, id: &Digest) -> Result<(), StoreError> {
        self.update_refs(|refs| {
            refs.insert(reference.to_string(), id.clone());
        })
    }

    /// The image a reference or an image id (full or a unique prefix of at least 4 hex digits)
    /// names.
    pub fn resolve(&self, name: &str) -> Result<Option<ImageRecord>, StoreError> {
        if let Some(id) = self.refs()?.get(name) {
            return self.image(id);
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 4 && hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            let matches: Vec<ImageRecord> = self
                .images()?
                .into_iter()
                .filter(|i| i.id.hex().starts_with(hex))
                .collect();
            if matches.len() == 1 {
                return Ok(matches.into_iter().next());
            }
        }
        Ok(None)
    }

    /// References pointing at image `id`.
    pub fn refs_of(&self, id: &Digest) -> Result<Vec<String>, StoreError> {
        Ok(self
            .refs()?
            .into_iter()
            .filter(|(_, d)| d == id)
            .map(|(r, _)| r)
            .collect())
    }

    /// Remove a reference; the image itself goes when no reference is left. Returns the image
    /// ids deleted.
    pub fn remove(&self, name: &str) -> Result<Vec<Digest>, StoreError> {
        let image = self
            .resolve(name)?
            .ok_or_else(|| StoreError::NoSuchImage(name.to_string()))?;
        let remaining = self.update_refs(|refs| {
            if refs.shift_remove(name).is_none() {
                // Removed by id: every reference to it goes.
                refs.retain(|_, d| *d != image.id);
            }
            refs.values().filter(|d| **d == image.id).count()
        })?;
        if remaining > 0 {
            return Ok(Vec::new());
        }
        let path = self.image_path(&image.id);
        fs::remove_file(&path).map_err(io_err("cannot remove", &path))?;
        Ok(vec![image.id])
    }

    /// Remove images no reference names (`all`: every image not in `keep`), then blobs and
    /// layers no remaining image uses, and leftovers in `tmp/`. Returns the bytes freed.
    pub fn prune(&self, keep: &[Digest], all: bool) -> Result<u64, StoreError> {
        let refs = self.refs()?;
        let mut freed = 0;
        for img in self.images()? {
            let named = refs.values().any(|d| *d == img.id);
            if keep.contains(&img.id) || (named && !all) {
                continue;
            }
            self.update_refs(|r| r.retain(|_, d| *d != img.id))?;
            let p = self.image_path(&img.id);
            fs::remove_file(&p).map_err(io_err("cannot remove", &p))?;
        }
        let images = self.images()?;
        let mut used_blobs = std::collections::HashSet::new();
        let mut used_layers = std::collections::HashSet::new();
        for img in &images {
            used_blobs.insert(img.id.hex().to_string());
            if let Some(m) = &img.manifest {
                used_blobs.insert(m.hex().to_string());
            }
            for l in &img.layers {
                used_layers.insert(l.diff_id.hex().to_string());
                if let Some(b) = &l.blob {
                    used_blobs.insert(b.hex().to_string());
                }
            }
        }
        for (dir, used) in [
            ("blobs/sha256", &used_blobs),
            ("layers/sha256", &used_layers),
        ] {
            let dir = self.root.join(dir);
            for entry in fs::read_dir(&dir).map_err(io_err("cannot list", &dir))? {
                let entry = entry.map_err(io_err("cannot list", &dir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !used.contains(&name) {
                    freed += disk_usage(&entry.path());
                    remove_tree(&entry.path())?;
                }
            }
        }
        let tmp = self.root.join("tmp");
        for entry in fs::read_dir(&tmp).map_err(io_err("cannot list", &tmp))? {
            let entry = entry.map_err(io_err("cannot list", &tmp))?;
            freed += disk_usage(&entry.path());
            remove_tree(&entry.path())?;
        }
        Ok(freed)
    }

    fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<(), StoreError> {
        let tmp = self.temp_path("meta");
        let mut f = File::create(&tmp).map_err(io_err("cannot create", &tmp))?;
        f.write_all(data)
            .and_then(|_| f.sync_all())
            .map_err(io_err("cannot write", &tmp))?;
        fs::rename(&tmp, path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err("cannot write", path)(e)
        })
    }
}

/// A blob being written: hashed as it goes, published only by [`BlobWriter::commit`].
pub struct BlobWriter {
    file: Option<File>,
    hasher: sha2::Sha256,
    written: u64,
    tmp: PathBuf,
    dest: PathBuf,
    expected: Digest,
    size: Option<u64>,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("blob writer already committed"))?;
        let n = f.write(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        self.written += n as u64;
        if self.size.is_some_and(|s| self.written > s) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob {} is larger than its declared size {}",
                    self.expected,
                    self.size.unwrap_or(0)
                ),
            ));
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

impl BlobWriter {
    /// Check digest and size, then move the blob into place.
    pub fn commit(mut self) -> Result<(), StoreError> {
        let file = self.file.take();
        if let Some(f) = &file {
            f.sync_all().map_err(io_err("cannot write", &self.tmp))?;
        }
        drop(file);
        let got = Digest::from_sha256(&sha2::Digest::finalize(self.hasher.clone()));
        let verify = |msg: String| StoreError::Verify {
            digest: self.expected.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, msg),
        };
        if got != self.expected {
            return Err(verify(format!(
                "digest mismatch: expected {}, got {got}",
                self.expected
            )));
        }
        if let Some(size) = self.size {
            if size != self.written {
                return Err(verify(format!(
                    "size mismatch: expected {size} bytes, got {}",
                    self.written
                )));
            }
        }
        fs::rename(&self.tmp, &self.dest).map_err(io_err("cannot publish blob", &self.dest))
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Committed or not, no temporary file outlives the writer.
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Remove a file or a directory tree, including read-only directories a layer may contain.
pub fn remove_tree(p: &Path) -> Result<(), StoreError> {
    let meta = match fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("cannot remove", p)(e)),
    };
    if !meta.is_dir() {
        return fs::remove_file(p).map_err(io_err("cannot remove", p));
    }
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(_) => {
            // A directory without write permission blocks removal of its entries: open it up
            // and try again (never following symlinks: only directories are changed).
            make_writable(p);
            fs::remove_dir_all(p).map_err(io_err("cannot remove", p))
        }
    }
}

fn make_writable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::symlink_metadata(p) {
        if meta.is_dir() {
            let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o755));
            if let Ok(entries) = fs::read_dir(p) {
                for e in entries.flatten() {
                    make_writable(&e.path());
                }
            }
        }
    }
}

/// Bytes used by a file or tree (apparent sizes), for prune's report.
fn disk_usage(p: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(p) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(p)
        .map(|entries| entries.flatten().map(|e| disk_usage(&e.path())).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path().join("images")).unwrap();
        (dir, s)
    }

    fn image(id: &Digest, layer: &Digest) -> ImageRecord {
        ImageRecord {
            id: id.clone(),
            manifest: None,
            repo_digests: Vec::new(),
            layers: vec![LayerRecord {
                diff_id: layer.clone(),
                blob: None,
                media_type: String::new(),
                size: 1,
            }],
            config: RuntimeConfig::default(),
            architecture: "amd64".into(),
            os: "linux".into(),
            created: None,
            size: 1,
        }
    }

    #[test]
    fn blobs_are_verified_and_published_atomically() {
        let (_d, s) = store();
        let d = Digest::of(b"hello");
        s.write_blob(&d, b"hello").unwrap();
        assert!(s.has_blob(&d));
        assert_eq!(s.read_blob(&d).unwrap(), b"hello");
        let wrong = Digest::of(b"other");
        let err = s.write_blob(&wrong, b"hello").unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        assert!(!s.has_blob(&wrong));
        // A writer dropped half-way leaves nothing in tmp/.
        let mut w = s.blob_writer(Digest::of(b"x"), None).unwrap();
        w.write_all(b"partial").unwrap();
        drop(w);
        assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn a_damaged_blob_is_detected_on_read() {
        let (_d, s) = store();
        let d = Digest::of(b"hello");
        s.write_blob(&d, b"hello").unwrap();
        fs::write(s.blob_path(&d), b"HELLO").unwrap();
        assert!(s.read_blob(&d).is_err());
    }

    #[test]
    fn layers_commit_once() {
        let (_d, s) = store();
        let diff = Digest::of(b"layer");
        let a = s.layer_staging().unwrap();
        fs::write(a.join("f"), b"1").unwrap();
        s.commit_layer(&a, &diff).unwrap();
        let b = s.layer_staging().unwrap();
        fs::write(b.join("f"), b"1").unwrap();
        s.commit_layer(&b, &diff).unwrap();
        assert!(s.has_layer(&diff));
        assert!(!b.exists(), "the second copy is dropped");
    }

    #[test]
    fn refs_resolve_remove_and_prune() {
        let (_d, s) = store();
        let layer = Digest::of(b"layer");
        let staging = s.layer_staging().unwrap();
        s.commit_layer(&staging, &layer).unwrap();
        let id = Digest::of(b"config");
        s.write_blob(&id, b"config").unwrap();
        s.put_image(&image(&id, &layer)).unwrap();
        s.tag("docker.io/library/busybox:latest", &id).unwrap();
        s.tag("docker.io/library/busybox:1", &id).unwrap();
        assert_eq!(
            s.resolve("docker.io/library/busybox:1")
                .unwrap()
                .unwrap()
                .id,
            id
        );
        assert_eq!(s.resolve(&id.hex()[..8]).unwrap().unwrap().id, id);
        assert!(s.resolve("docker.io/library/nope:1").unwrap().is_none());
        assert_eq!(s.refs_of(&id).unwrap().len(), 2);

        // Removing one of two references keeps the image.
        assert!(s.remove("docker.io/library/busybox:1").unwrap().is_empty());
        assert_eq!(
            s.remove("docker.io/library/busybox:latest").unwrap(),
            vec![id.clone()]
        );
        assert!(s.images().unwrap().is_empty());
        // Prune frees the now unused blob and layer.
        s.prune(&[], false).unwrap();
        assert!(!s.has_blob(&id));
        assert!(!s.has_layer(&layer));
        assert!(matches!(s.remove("nope"), Err(StoreError::NoSuchImage(_))));
    }
}
