//! A docker archive (`docker save`, `rcompose image save`) flattened into what the parity test
//! compares: some image config fields, the history, and the file tree the layers make when
//! applied in order (OCI whiteouts and opaque directories applied; mtimes left out).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{self, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The config fields compared (`config` of the image config).
pub const CONFIG_FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "Healthcheck",
    "StopSignal",
    "OnBuild",
    "Shell",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub created_by: String,
    pub empty_layer: bool,
}

/// One path of the flattened tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// file, dir, symlink, char, block, fifo
    pub kind: String,
    /// Permission bits with setuid, setgid and sticky (0o7777).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A symlink's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// A device's major,minor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<(u64, u64)>,
    /// Extended attributes, values hex.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
    /// For a regular file with several names (hard links): the first of them, in path order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked: Option<String>,
    /// A small text file's content, for readable differences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// Files up to this size that are UTF-8 keep their text.
const TEXT_MAX: usize = 96;

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:04o} {}:{}",
            self.kind, self.mode, self.uid, self.gid
        )?;
        if self.kind == "file" {
            write!(f, " {}B", self.size)?;
        }
        if let Some(h) = &self.sha256 {
            write!(f, " sha256:{}", h.get(..12).unwrap_or(h))?;
        }
        if let Some(l) = &self.link {
            write!(f, " -> {l}")?;
        }
        if let Some((ma, mi)) = self.dev {
            write!(f, " dev {ma},{mi}")?;
        }
        for (k, v) in &self.xattrs {
            write!(f, " xattr {k}={v}")?;
        }
        if let Some(l) = &self.linked {
            write!(f, " hardlink-of {l}")?;
        }
        if let Some(t) = &self.text {
            write!(f, " {t:?}")?;
        }
        Ok(())
    }
}

/// A flattened image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flat {
    /// The fields of CONFIG_FIELDS that are set (null is the same as absent).
    pub config: BTreeMap<String, serde_json::Value>,
    pub history: Vec<History>,
    /// Absolute path (no trailing slash) to node; the root itself is left out.
    pub tree: BTreeMap<String, Node>,
    /// Those of the needles asked for that occur in a layer (decompressed) or in the config.
    #[serde(default)]
    pub found: Vec<String>,
}

#[derive(Debug)]
pub enum Error {
    Io(String, io::Error),
    Format(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(what, e) => write!(f, "{what}: {e}"),
            Error::Format(m) => write!(f, "{m}"),
        }
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |e| Error::Io(what, e)
}

#[derive(Deserialize)]
struct ManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Flattens the docker archive at `archive` (one image). `needles`: byte strings looked for
/// in every layer and in the config (a secret's content must be in none).
pub fn flatten_archive(archive: &Path, needles: &[String]) -> Result<Flat, Error> {
    let dir = tempfile::Builder::new()
        .prefix("rc-parity-flat-")
        .tempdir()
        .map_err(io_err("temp dir"))?;
    let f = std::fs::File::open(archive).map_err(io_err(archive.display().to_string()))?;
    tar::Archive::new(f)
        .unpack(dir.path())
        .map_err(io_err(format!("unpacking {}", archive.display())))?;
    let manifest = read_in(dir.path(), "manifest.json")?;
    let manifest: Vec<ManifestEntry> = serde_json::from_slice(&manifest)
        .map_err(|e| Error::Format(format!("manifest.json: {e}")))?;
    let [entry] = manifest.as_slice() else {
        return Err(Error::Format(format!(
            "manifest.json: {} images, expected one",
            manifest.len()
        )));
    };
    let config = read_in(dir.path(), &entry.config)?;
    let mut found: Vec<String> = needles
        .iter()
        .filter(|n| contains(&config, n.as_bytes()))
        .cloned()
        .collect();
    let mut flat = flatten_config(&config)?;
    let mut tree = Tree::default();
    for layer in &entry.layers {
        let data = read_in(dir.path(), layer)?;
        let data = decompress(&data).map_err(io_err(format!("decompressing {layer}")))?;
        for n in needles {
            if !found.contains(n) && contains(&data, n.as_bytes()) {
                found.push(n.clone());
            }
        }
        tree.apply(&data[..])
            .map_err(|e| Error::Format(format!("layer {layer}: {e}")))?;
    }
    found.sort();
    flat.tree = tree.finish();
    flat.found = found;
    Ok(flat)
}

fn read_in(dir: &Path, name: &str) -> Result<Vec<u8>, Error> {
    if name.starts_with('/') || name.split('/').any(|c| c == "..") {
        return Err(Error::Format(format!("{name}: path leaves the archive")));
    }
    std::fs::read(dir.join(name)).map_err(io_err(name.to_string()))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// gzip and zstd layers are decompressed; anything else is taken as a plain tar.
pub fn decompress(data: &[u8]) -> io::Result<Vec<u8>> {
    if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out)?;
        Ok(out)
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::decode_all(data)
    } else {
        Ok(data.to_vec())
    }
}

/// The compared config fields and history of an image config (JSON).
pub fn flatten_config(config: &[u8]) -> Result<Flat, Error> {
    let v: serde_json::Value =
        serde_json::from_slice(config).map_err(|e| Error::Format(format!("image config: {e}")))?;
    let mut fields = BTreeMap::new();
    if let Some(c) = v.get("config").and_then(|c| c.as_object()) {
        for f in CONFIG_FIELDS {
            match c.get(*f) {
                None | Some(serde_json::Value::Null) => {}
                Some(x) => {
                    fields.insert((*f).to_string(), x.clone());
                }
            }
        }
    }
    let history = v
        .get("history")
        .and_then(|h| h.as_array())
        .map(|h| {
            h.iter()
                .map(|e| History {
                    created_by: e
                        .get("created_by")
                        .and_then(|c| c.as_str())
                        .unwrap_or("")
                        .to_string(),
                    empty_layer: e
                        .get("empty_layer")
                        .and_then(|c| c.as_bool())
                        .unwrap_or(false),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Flat {
        config: fields,
        history,
        tree: BTreeMap::new(),
        found: Vec::new(),
    })
}

/// What a path holds while layers are applied: regular files point at an inode, so that hard
/// links share one.
#[derive(Clone)]
enum Ent {
    File(usize),
    Other(Node),
}

#[derive(Clone)]
struct Inode {
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    sha256: String,
    xattrs: BTreeMap<String, String>,
    text: Option<String>,
}

/// The file tree being built, layer by layer.
#[derive(Default)]
pub struct Tree {
    paths: BTreeMap<String, Ent>,
    inodes: Vec<Inode>,
}

/// One entry of a layer, read before any is applied (whiteouts apply to lower layers only).
enum Change {
    Whiteout(String),
    Opaque(String),
    Put(String, Ent),
    HardLink(String, String),
}

/// "./a/b/", "/a/b", "a/b" → "/a/b"; the root → None.
fn norm(p: &str) -> Option<String> {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    (!parts.is_empty()).then(|| format!("/{}", parts.join("/")))
}

fn parent(p: &str) -> Option<&str> {
    match p.rfind('/') {
        Some(0) | None => None,
        Some(i) => Some(&p[..i]),
    }
}

impl Tree {
    /// Applies one layer (an uncompressed tar).
    pub fn apply(&mut self, layer: impl Read) -> io::Result<()> {
        let mut changes = Vec::new();
        let mut ar = tar::Archive::new(layer);
        for e in ar.entries()? {
            let mut e = e?;
            let raw = e.path()?.to_string_lossy().into_owned();
            let Some(path) = norm(&raw) else { continue };
            let (dir, base) = match path.rfind('/') {
                Some(i) => (&path[..i], &path[i + 1..]),
                None => ("", path.as_str()),
            };
            if base == ".wh..wh..opq" {
                changes.push(Change::Opaque(dir.to_string()));
                continue;
            }
            if let Some(name) = base.strip_prefix(".wh.") {
                changes.push(Change::Whiteout(format!("{dir}/{name}")));
                continue;
            }
            let mut xattrs = BTreeMap::new();
            let mut pax_uid = None;
            let mut pax_gid = None;
            if let Some(exts) = e.pax_extensions()? {
                for x in exts {
                    let x = x?;
                    let Ok(key) = x.key() else { continue };
                    if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                        xattrs.insert(name.to_string(), hex::encode(x.value_bytes()));
                    } else if key == "uid" {
                        pax_uid = x.value().ok().and_then(|v| v.parse().ok());
                    } else if key == "gid" {
                        pax_gid = x.value().ok().and_then(|v| v.parse().ok());
                    }
                }
            }
            let h = e.header();
            let mode = h.mode()? & 0o7777;
            let uid = pax_uid.unwrap_or(h.uid()?);
            let gid = pax_gid.unwrap_or(h.gid()?);
            let kind = h.entry_type();
            let node = |kind: &str| Node {
                kind: kind.to_string(),
                mode,
                uid,
                gid,
                size: 0,
                sha256: None,
                link: None,
                dev: None,
                xattrs: xattrs.clone(),
                linked: None,
                text: None,
            };
            use tar::EntryType as T;
            let change = match kind {
                T::Regular | T::Continuous | T::GNUSparse => {
                    let mut hasher = Sha256::new();
                    let mut size = 0u64;
                    let mut head = Vec::new();
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = e.read(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        hasher.update(&buf[..n]);
                        if head.len() <= TEXT_MAX {
                            head.extend_from_slice(&buf[..n.min(TEXT_MAX + 1)]);
                        }
                        size += n as u64;
                    }
                    let text = (head.len() <= TEXT_MAX)
                        .then(|| String::from_utf8(head).ok())
                        .flatten();
                    self.inodes.push(Inode {
                        mode,
                        uid,
                        gid,
                        size,
                        sha256: hex::encode(hasher.finalize()),
                        xattrs: xattrs.clone(),
                        text,
                    });
                    Change::Put(path, Ent::File(self.inodes.len() - 1))
                }
                T::Link => {
                    let target = e
                        .link_name()?
                        .map(|l| l.to_string_lossy().into_owned())
                        .and_then(|l| norm(&l))
                        .ok_or_else(|| {
                            io::Error::other(format!("{path}: hard link without a target"))
                        })?;
                    Change::HardLink(path, target)
                }
                T::Symlink => {
                    let mut n = node("symlink");
                    n.link = e.link_name()?.map(|l| l.to_string_lossy().into_owned());
                    Change::Put(path, Ent::Other(n))
                }
                T::Directory => Change::Put(path, Ent::Other(node("dir"))),
                T::Char | T::Block => {
                    let mut n = node(if kind == T::Char { "char" } else { "block" });
                    n.dev = Some((
                        h.device_major()?.unwrap_or(0).into(),
                        h.device_minor()?.unwrap_or(0).into(),
                    ));
                    Change::Put(path, Ent::Other(n))
                }
                T::Fifo => Change::Put(path, Ent::Other(node("fifo"))),
                // PAX and GNU long-name headers are read by the tar crate itself.
                other => {
                    return Err(io::Error::other(format!(
                        "{path}: unexpected tar entry type {other:?}"
                    )))
                }
            };
            changes.push(change);
        }
        for c in &changes {
            match c {
                Change::Whiteout(p) => self.remove(p),
                Change::Opaque(d) => self.remove_children(d),
                _ => {}
            }
        }
        for c in changes {
            match c {
                Change::Put(p, ent) => self.put(p, ent),
                Change::HardLink(p, target) => match self.paths.get(&target) {
                    Some(Ent::File(ino)) => {
                        let ino = *ino;
                        self.put(p, Ent::File(ino))
                    }
                    // Linux allows hard links to symlinks and devices: a copy of the node.
                    Some(Ent::Other(n)) if n.kind != "dir" => {
                        let n = n.clone();
                        self.put(p, Ent::Other(n))
                    }
                    _ => {
                        return Err(io::Error::other(format!(
                            "{p}: hard link to {target}, which is missing or a directory"
                        )))
                    }
                },
                _ => {}
            }
        }
        Ok(())
    }

    fn remove(&mut self, p: &str) {
        self.paths.remove(p);
        self.remove_children(p);
    }

    fn remove_children(&mut self, dir: &str) {
        let prefix = format!("{dir}/");
        let doomed: Vec<String> = self
            .paths
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.paths.remove(&k);
        }
    }

    fn put(&mut self, p: String, ent: Ent) {
        // A parent missing from every layer so far is made as tar extraction makes it.
        let mut missing = Vec::new();
        let mut cur = parent(&p);
        while let Some(d) = cur {
            match self.paths.get(d) {
                Some(Ent::Other(n)) if n.kind == "dir" => break,
                // A non-directory in the way is replaced, as by extraction.
                _ => missing.push(d.to_string()),
            }
            cur = parent(d);
        }
        for d in missing.into_iter().rev() {
            self.remove(&d);
            self.paths.insert(
                d,
                Ent::Other(Node {
                    kind: "dir".into(),
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    size: 0,
                    sha256: None,
                    link: None,
                    dev: None,
                    xattrs: BTreeMap::new(),
                    linked: None,
                    text: None,
                }),
            );
        }
        let new_is_dir = matches!(&ent, Ent::Other(n) if n.kind == "dir");
        let old_is_dir = matches!(self.paths.get(&p), Some(Ent::Other(n)) if n.kind == "dir");
        if old_is_dir && !new_is_dir {
            self.remove_children(&p);
        }
        self.paths.insert(p, ent);
    }

    /// The flattened listing.
    pub fn finish(self) -> BTreeMap<String, Node> {
        let mut first: HashMap<usize, (&str, usize)> = HashMap::new();
        for (p, e) in &self.paths {
            if let Ent::File(ino) = e {
                first.entry(*ino).or_insert((p.as_str(), 0)).1 += 1;
            }
        }
        self.paths
            .iter()
            .map(|(p, e)| {
                let node = match e {
                    Ent::Other(n) => n.clone(),
                    Ent::File(ino) => {
                        let i = &self.inodes[*ino];
                        let linked = first
                            .get(ino)
                            .filter(|(_, n)| *n > 1)
                            .map(|(f, _)| f.to_string());
                        Node {
                            kind: "file".into(),
                            mode: i.mode,
                            uid: i.uid,
                            gid: i.gid,
                            size: i.size,
                            sha256: Some(i.sha256.clone()),
                            link: None,
                            dev: None,
                            xattrs: i.xattrs.clone(),
                            linked,
                            text: i.text.clone(),
                        }
                    }
                };
                (p.clone(), node)
            })
            .collect()
    }
}

/// One difference between docker's image and rcompose's.
#[derive(Debug, Clone)]
pub struct Difference {
    /// "config.Env", "history", "/path/in/image"
    pub key: String,
    pub docker: String,
    pub rcompose: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\n      docker:   {}\n      rcompose: {}",
            self.key, self.docker, self.rcompose
        )
    }
}

/// What to compare.
pub struct Compare<'a> {
    pub history: bool,
    /// Config fields left out ("Healthcheck").
    pub ignore_config: &'a [String],
}

pub fn diff(docker: &Flat, rcompose: &Flat, how: &Compare<'_>) -> Vec<Difference> {
    let mut out = Vec::new();
    let show = |v: Option<&serde_json::Value>| match v {
        Some(v) => v.to_string(),
        None => "(not set)".to_string(),
    };
    for f in CONFIG_FIELDS {
        if how.ignore_config.iter().any(|i| i == f) {
            continue;
        }
        let (a, b) = (docker.config.get(*f), rcompose.config.get(*f));
        if a != b {
            out.push(Difference {
                key: format!("config.{f}"),
                docker: show(a),
                rcompose: show(b),
            });
        }
    }
    if how.history && docker.history != rcompose.history {
        let line = |h: &History| {
            format!(
                "{:?}{}",
                h.created_by,
                if h.empty_layer { " (empty layer)" } else { "" }
            )
        };
        let n = docker.history.len().max(rcompose.history.len());
        for i in 0..n {
            let (a, b) = (docker.history.get(i), rcompose.history.get(i));
            if a != b {
                out.push(Difference {
                    key: format!("history[{i}]"),
                    docker: a.map(line).unwrap_or_else(|| "(none)".into()),
                    rcompose: b.map(line).unwrap_or_else(|| "(none)".into()),
                });
            }
        }
    }
    let absent = "(absent)".to_string();
    let keys: std::collections::BTreeSet<&String> =
        docker.tree.keys().chain(rcompose.tree.keys()).collect();
    for k in keys {
        let (a, b) = (docker.tree.get(k), rcompose.tree.get(k));
        if a != b {
            out.push(Difference {
                key: k.clone(),
                docker: a.map(|n| n.to_string()).unwrap_or_else(|| absent.clone()),
                rcompose: b.map(|n| n.to_string()).unwrap_or_else(|| absent.clone()),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer tar from (path, kind, mode, content-or-link) entries.
    fn layer(entries: &[(&str, char, u32, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, mode, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(*mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            match kind {
                'f' => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, path, data.as_bytes()).unwrap();
                }
                'd' => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    b.append_data(&mut h, path, &[][..]).unwrap();
                }
                'l' | 'h' => {
                    h.set_entry_type(if *kind == 'l' {
                        tar::EntryType::Symlink
                    } else {
                        tar::EntryType::Link
                    });
                    h.set_size(0);
                    b.append_link(&mut h, path, data).unwrap();
                }
                _ => unreachable!(),
            }
        }
        b.into_inner().unwrap()
    }

    fn flat(layers: &[Vec<u8>]) -> BTreeMap<String, Node> {
        let mut t = Tree::default();
        for l in layers {
            t.apply(&l[..]).unwrap();
        }
        t.finish()
    }

    fn paths(t: &BTreeMap<String, Node>) -> Vec<&str> {
        t.keys().map(String::as_str).collect()
    }

    #[test]
    fn whiteouts_and_opaque_dirs_apply_to_lower_layers_only() {
        let l1 = layer(&[
            ("a/", 'd', 0o755, ""),
            ("a/x", 'f', 0o644, "x"),
            ("a/sub/", 'd', 0o755, ""),
            ("a/sub/y", 'f', 0o644, "y"),
            ("b/", 'd', 0o755, ""),
            ("b/z", 'f', 0o644, "z"),
            ("c", 'f', 0o644, "c"),
        ]);
        // The opaque marker after a file of the same layer in the directory: it keeps it.
        let l2 = layer(&[
            ("a/", 'd', 0o700, ""),
            ("a/new", 'f', 0o644, "n"),
            ("a/.wh..wh..opq", 'f', 0o644, ""),
            ("b/", 'd', 0o755, ""),
            ("b/.wh.z", 'f', 0o644, ""),
            (".wh.c", 'f', 0o644, ""),
        ]);
        let t = flat(&[l1, l2]);
        assert_eq!(paths(&t), ["/a", "/a/new", "/b"]);
        assert_eq!(t["/a"].mode, 0o700);
    }

    #[test]
    fn a_whiteout_removes_a_whole_directory() {
        let l1 = layer(&[
            ("d/", 'd', 0o755, ""),
            ("d/e/", 'd', 0o755, ""),
            ("d/e/f", 'f', 0o644, "f"),
            ("dd", 'f', 0o644, "not a child of d"),
        ]);
        let l2 = layer(&[(".wh.d", 'f', 0o644, "")]);
        assert_eq!(paths(&flat(&[l1, l2])), ["/dd"]);
    }

    #[test]
    fn hard_links_share_content_and_name_the_first_path() {
        let l1 = layer(&[
            ("z", 'f', 0o4755, "data"),
            ("a", 'h', 0o644, "z"),
            ("s", 'l', 0o777, "z"),
        ]);
        let t = flat(&[l1]);
        assert_eq!(t["/a"], t["/z"]);
        assert_eq!(t["/a"].mode, 0o4755);
        assert_eq!(t["/z"].linked.as_deref(), Some("/a"));
        assert_eq!(t["/s"].link.as_deref(), Some("z"));
        assert_eq!(t["/s"].kind, "symlink");
        // A later layer replacing one name breaks the link.
        let l2 = layer(&[("z", 'f', 0o644, "new")]);
        let t = flat(&[
            layer(&[("z", 'f', 0o644, "data"), ("a", 'h', 0o644, "z")]),
            l2,
        ]);
        assert_eq!(t["/a"].linked, None);
        assert_eq!(t["/z"].linked, None);
        assert_ne!(t["/a"].sha256, t["/z"].sha256);
    }

    #[test]
    fn a_file_replacing_a_directory_removes_its_children() {
        let l1 = layer(&[("d/", 'd', 0o755, ""), ("d/x", 'f', 0o644, "x")]);
        let l2 = layer(&[("d", 'f', 0o600, "now a file")]);
        let t = flat(&[l1, l2]);
        assert_eq!(paths(&t), ["/d"]);
        assert_eq!(t["/d"].kind, "file");
        assert_eq!(t["/d"].size, 10);
    }

    #[test]
    fn missing_parents_are_made_and_names_normalised() {
        let t = flat(&[layer(&[
            ("./x/y/f", 'f', 0o644, ""),
            ("./", 'd', 0o755, ""),
        ])]);
        assert_eq!(paths(&t), ["/x", "/x/y", "/x/y/f"]);
        assert_eq!(t["/x"].kind, "dir");
    }

    #[test]
    fn compressed_layers_are_read() {
        let l = layer(&[("f", 'f', 0o644, "hello")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &l).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decompress(&gz).unwrap(), l);
        let zs = zstd::encode_all(&l[..], 1).unwrap();
        assert_eq!(decompress(&zs).unwrap(), l);
        assert_eq!(decompress(&l).unwrap(), l);
    }

    #[test]
    fn config_fields_null_is_unset() {
        let f = flatten_config(
            br#"{"config":{"Env":["A=1"],"OnBuild":null,"Cmd":[],"Hostname":"x"},
                "history":[{"created_by":"RUN x # buildkit"},{"created_by":"ENV A=1","empty_layer":true}]}"#,
        )
        .unwrap();
        assert_eq!(f.config.keys().collect::<Vec<_>>(), ["Cmd", "Env"]);
        assert_eq!(f.history.len(), 2);
        assert!(f.history[1].empty_layer);
        assert!(!f.history[0].empty_layer);
    }

    #[test]
    fn diff_names_each_differing_item() {
        let a = Flat {
            config: BTreeMap::from([("User".to_string(), serde_json::json!("app"))]),
            history: vec![History {
                created_by: "RUN a".into(),
                empty_layer: false,
            }],
            tree: flat(&[layer(&[("f", 'f', 0o644, "x"), ("g", 'f', 0o644, "")])]),
            found: vec![],
        };
        let mut b = a.clone();
        b.config.remove("User");
        b.history[0].empty_layer = true;
        b.tree = flat(&[layer(&[("f", 'f', 0o600, "x")])]);
        let keys: Vec<String> = diff(
            &a,
            &b,
            &Compare {
                history: true,
                ignore_config: &[],
            },
        )
        .into_iter()
        .map(|d| d.key)
        .collect();
        assert_eq!(keys, ["config.User", "history[0]", "/f", "/g"]);
        let keys = diff(
            &a,
            &b,
            &Compare {
                history: false,
                ignore_config: &["User".to_string()],
            },
        );
        assert_eq!(keys.len(), 2);
    }
}
