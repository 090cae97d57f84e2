//! The step cache: content-addressed keys as BuildKit's, records in the store.
//!
//! A step's key is the hash of its parent's key, the instruction as it runs (expanded), the
//! values of the build args it uses, and the content digest of the files it reads (never their
//! mtimes). A record holds the image state after the step (layers and config), so a hit costs
//! one small file read; it is written by rename, so a crash leaves either no record or a whole
//! one, and a record whose layers have gone from the store is a miss.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::BuildError;
use crate::image::digest::Digest;
use crate::image::store::{LayerRecord, Store};

/// Bumped when what a key covers changes: old records are then never matched.
const VERSION: &str = "rcompose-build-cache-v1";

/// A step's cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub String);

impl Key {
    /// The key of a stage's base: an image by its id, or `scratch`.
    pub fn base(image_id: Option<&Digest>, platform: &str) -> Key {
        let mut h = KeyHasher::new();
        h.field(
            "base",
            &image_id.map_or("scratch".to_string(), |d| d.to_string()),
        );
        h.field("platform", platform);
        h.finish()
    }
}

/// Builds a key from named fields: each is length-prefixed, so no two field lists collide.
pub struct KeyHasher(Sha256);

impl KeyHasher {
    pub fn new() -> KeyHasher {
        let mut h = Sha256::new();
        h.update(VERSION.as_bytes());
        KeyHasher(h)
    }

    pub fn child_of(parent: &Key) -> KeyHasher {
        let mut h = KeyHasher::new();
        h.field("parent", &parent.0);
        h
    }

    pub fn field(&mut self, name: &str, value: &str) -> &mut Self {
        for part in [name, value] {
            self.0.update((part.len() as u64).to_le_bytes());
            self.0.update(part.as_bytes());
        }
        self
    }

    pub fn finish(self) -> Key {
        Key(hex::encode(self.0.finalize()))
    }
}

impl Default for KeyHasher {
    fn default() -> Self {
        KeyHasher::new()
    }
}

/// The image state after a step: what a cache hit restores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub layers: Vec<LayerRecord>,
    /// The image config as it stands (docker's JSON: config, history, rootfs).
    pub config: serde_json::Value,
}

/// The cache of one store.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    store: Store,
}

impl Cache {
    pub fn open(store: &Store) -> Cache {
        Cache {
            dir: dir_of(store),
            store: store.clone(),
        }
    }

    fn path(&self, key: &Key) -> PathBuf {
        self.dir.join(format!("{}.json", key.0))
    }

    /// The record of `key` when it is whole and its layers are all in the store.
    pub fn get(&self, key: &Key) -> Option<Record> {
        let bytes = fs::read(self.path(key)).ok()?;
        let record: Record = serde_json::from_slice(&bytes).ok()?;
        record
            .layers
            .iter()
            // Unpacked layers are what a build needs (pulled images keep no compressed blobs).
            .all(|l| self.store.has_layer(&l.diff_id))
            .then_some(record)
    }

    pub fn put(&self, key: &Key, record: &Record) -> Result<(), BuildError> {
        let io = |what: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source: io::Error| BuildError::Io { what, path, source }
        };
        fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", key.0, std::process::id()));
        let bytes = serde_json::to_vec(record)
            .map_err(|e| BuildError::Step(format!("cannot encode a cache record: {e}")))?;
        let mut f = fs::File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_data())
            .map_err(io("write", &tmp))?;
        fs::rename(&tmp, self.path(key)).map_err(io("rename", &tmp))
    }

    /// `builder prune`: every record; returns how many there were. Layers stay in the store
    /// until `image prune` finds them unused.
    pub fn prune(&self) -> Result<usize, BuildError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(source) => {
                return Err(BuildError::Io {
                    what: "read",
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let mut n = 0;
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") && fs::remove_file(&p).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Every layer a record refers to (`image prune` keeps them).
    pub fn layers(&self) -> Vec<Digest> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<Record>(&b).ok())
            .flat_map(|r| r.layers.into_iter().map(|l| l.diff_id))
            .collect()
    }
}

/// Where a store keeps its build cache.
pub fn dir_of(store: &Store) -> PathBuf {
    store.root().join("build-cache")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_every_field_and_its_boundaries() {
        let parent = Key::base(None, "linux/amd64");
        let k = |fields: &[(&str, &str)]| {
            let mut h = KeyHasher::child_of(&parent);
            for (n, v) in fields {
                h.field(n, v);
            }
            h.finish()
        };
        let a = k(&[("op", "RUN a"), ("arg", "x")]);
        assert_eq!(a, k(&[("op", "RUN a"), ("arg", "x")]));
        assert_ne!(a, k(&[("op", "RUN a"), ("arg", "y")]));
        // The same bytes split differently are another key.
        assert_ne!(k(&[("op", "RUN ab")]), k(&[("op", "RUN a"), ("b", "")]));
        assert_ne!(
            Key::base(None, "linux/amd64"),
            Key::base(None, "linux/arm64")
        );
    }

    #[test]
    fn records_round_trip_and_vanish_with_their_layers() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let cache = Cache::open(&store);
        let key = Key::base(None, "linux/amd64");
        let empty = Record {
            layers: Vec::new(),
            config: serde_json::json!({"config": {}}),
        };
        cache.put(&key, &empty).unwrap();
        assert_eq!(cache.get(&key), Some(empty));
        let missing_layer = Record {
            layers: vec![LayerRecord {
                diff_id: Digest::of(b"not in the store"),
                blob: None,
                media_type: String::new(),
                size: 0,
            }],
            config: serde_json::json!({}),
        };
        cache.put(&key, &missing_layer).unwrap();
        assert_eq!(cache.get(&key), None);
        assert_eq!(cache.prune().unwrap(), 1);
        assert_eq!(cache.get(&key), None);
    }
}

/// `cache_to: type=local,dest=DIR` / `cache_from: type=local,src=DIR`: records and the layer
/// blobs they need, in a directory another machine (a CI runner) can restore.
pub mod local {
    use super::*;
    use crate::image::unpack::{detect_compression, unpack_layer, Limits};

    fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BuildError + 'a {
        move |source| BuildError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Writes the records of `keys` and every layer blob of theirs the store has.
    pub fn export(cache: &Cache, dir: &Path, keys: &[Key]) -> Result<usize, BuildError> {
        let records = dir.join("records");
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&records).map_err(io("create", &records))?;
        fs::create_dir_all(&blobs).map_err(io("create", &blobs))?;
        let mut n = 0;
        for key in keys {
            let Some(mut record) = cache.get(key) else {
                continue;
            };
            for l in &mut record.layers {
                // Blobs deferred by the build are made now; layers of pulled images without
                // one are left to their image (pulled again on the other side).
                if crate::build::layer::layer_blob(&cache.store, l).is_err() {
                    continue;
                }
                let Some(blob) = l.blob.as_ref() else {
                    continue;
                };
                let to = blobs.join(blob.hex());
                if !to.exists() {
                    let tmp = blobs.join(format!(".{}.tmp", blob.hex()));
                    fs::copy(cache.store.blob_path(blob), &tmp).map_err(io("copy", &tmp))?;
                    fs::rename(&tmp, &to).map_err(io("rename", &tmp))?;
                }
            }
            let bytes = serde_json::to_vec(&record)
                .map_err(|e| BuildError::Step(format!("cannot encode a cache record: {e}")))?;
            let p = records.join(format!("{}.json", key.0));
            fs::write(&p, bytes).map_err(io("write", &p))?;
            n += 1;
        }
        Ok(n)
    }

    /// Reads the records of `dir` into the store's cache; each layer a record needs and the
    /// store lacks is unpacked from its blob, its diff_id checked. Returns the records taken.
    pub fn import(cache: &Cache, dir: &Path) -> Result<usize, BuildError> {
        let records = dir.join("records");
        let Ok(entries) = fs::read_dir(&records) else {
            // A cache directory not written yet (the first CI run) is no error, as BuildKit's.
            return Ok(0);
        };
        let mut n = 0;
        for e in entries.flatten() {
            let p = e.path();
            let Some(key) = p
                .file_stem()
                .and_then(|s| s.to_str())
                .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(|s| Key(s.to_string()))
            else {
                continue;
            };
            if cache.get(&key).is_some() {
                continue;
            }
            let Ok(record) = fs::read(&p)
                .ok()
                .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
                .ok_or(())
            else {
                continue;
            };
            // A layer the store lacks comes from the directory's blob; one that cannot (a base
            // image's layer, made whole by that image's pull) is left to `get` to judge.
            for l in &record.layers {
                if cache.store.has_layer(&l.diff_id) {
                    continue;
                }
                let Some(blob) = &l.blob else {
                    continue;
                };
                let src = dir.join("blobs/sha256").join(blob.hex());
                if src.is_file() {
                    if let Err(e) = import_layer(cache, &src, blob, &l.diff_id) {
                        tracing::warn!("cache import: {e}");
                    }
                }
            }
            cache.put(&key, &record)?;
            n += 1;
        }
        Ok(n)
    }

    fn import_layer(
        cache: &Cache,
        src: &Path,
        blob: &Digest,
        diff_id: &Digest,
    ) -> Result<(), BuildError> {
        let store = &cache.store;
        let staging = store.layer_staging()?;
        let result = (|| -> Result<(), BuildError> {
            let f = fs::File::open(src).map_err(io("open", src))?;
            let verifying = crate::image::digest::VerifyingReader::new(f, blob.clone(), None);
            let (compression, reader) = detect_compression(verifying).map_err(io("read", src))?;
            let unpacked = unpack_layer(reader, compression, &staging, &Limits::default())
                .map_err(|e| BuildError::Step(format!("cache layer {blob}: {e}")))?;
            if unpacked.diff_id != diff_id.to_string() {
                return Err(BuildError::Step(format!(
                    "cache layer {blob}: its content is {}, the record says {diff_id}",
                    unpacked.diff_id
                )));
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = crate::image::store::remove_tree(&staging);
            return Err(e);
        }
        store.commit_layer(&staging, diff_id)?;
        if !store.has_blob(blob) {
            let bytes = fs::read(src).map_err(io("read", src))?;
            store.write_blob(blob, &bytes)?;
        }
        Ok(())
    }
}
