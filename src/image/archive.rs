//! `image import` (a root-filesystem tar becomes a one-layer image) and `image load` (`docker
//! save` archives and OCI image layout archives).
//!
//! `load` reads the outer tar once, in one pass: members arrive in any order (a `docker save`
//! writes its layers before `manifest.json`), so small members are kept in memory and large ones
//! spooled to files under the store's `tmp/`, named by a counter, never by the member's path.
//! Only then are the manifests read, every blob checked against its digest (OCI) and every layer
//! against the config's diff_ids (docker and OCI), layers unpacked into staging directories, and,
//! when everything checked out, layers, blobs, images and tags published. A failure publishes
//! nothing and removes the temporary files.

use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;

use super::config::{ConfigBlob, Manifest, PlatformSpec, RootFs, RuntimeConfig};
use super::config::{MEDIA_DOCKER_LIST, MEDIA_OCI_INDEX};
use super::digest::{Digest, VerifyingReader};
use super::reference::{Platform, Reference, ReferenceError};
use super::store::{remove_tree, ImageRecord, LayerRecord, Store, StoreError};
use super::unpack::{detect_compression, unpack_layer, Compression, Limits, UnpackError};

/// The Env docker gives an image that sets none (`docker import`, Dockerfiles from scratch).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("invalid change {change:?}: {reason}")]
    InvalidChange { change: String, reason: String },
    #[error("cannot read archive: {0}")]
    Read(#[source] io::Error),
    #[error("archive member {member:?} refused: {reason}")]
    UnsafeMember { member: String, reason: String },
    #[error("archive has more than {0} members")]
    TooManyMembers(u64),
    #[error("not an image archive: {0}")]
    Format(String),
    #[error("{what} {member:?} is not in the archive")]
    Missing { what: String, member: String },
    #[error("{what} {member:?} is too large: {size} bytes (limit {limit})")]
    TooLarge {
        what: String,
        member: String,
        size: u64,
        limit: u64,
    },
    #[error("{what} {member:?} is invalid: {detail}")]
    Invalid {
        what: String,
        member: String,
        detail: String,
    },
    #[error("{what} {member:?} failed verification: {detail}")]
    Verify {
        what: String,
        member: String,
        detail: String,
    },
    #[error("layer {member:?}: {source}")]
    Unpack {
        member: String,
        #[source]
        source: UnpackError,
    },
    #[error("root filesystem: {0}")]
    Rootfs(#[source] UnpackError),
    #[error("invalid tag {tag:?} in {member:?}: {source}")]
    Tag {
        tag: String,
        member: String,
        #[source]
        source: ReferenceError,
    },
    #[error("no image for platform {platform} in the archive (available: {available})")]
    NoPlatform { platform: String, available: String },
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io_err(what: &'static str, path: &std::path::Path) -> impl FnOnce(io::Error) -> ArchiveError {
    let path = path.to_path_buf();
    move |source| ArchiveError::Io { what, path, source }
}

// ---------------------------------------------------------------------------------------------
// import

/// How `import` builds the image.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Tag the image with this reference.
    pub reference: Option<Reference>,
    /// Dockerfile-style instructions applied to the config (`docker import --change`): CMD,
    /// ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL.
    pub changes: Vec<String>,
    /// The platform recorded in the config; the host's when `None`.
    pub platform: Option<Platform>,
}

/// Turn a root-filesystem tar (plain, gzip or zstd) into a one-layer image, like `docker import`.
pub fn import(
    store: &Store,
    rootfs_tar: impl Read,
    opts: &ImportOptions,
) -> Result<ImageRecord, ArchiveError> {
    // Changes are checked before anything is read or written.
    let mut runtime = RuntimeConfig {
        env: vec![DEFAULT_PATH.to_string()],
        ..RuntimeConfig::default()
    };
    apply_changes(&mut runtime, &opts.changes)?;
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);

    let mut staging = Staging::new(store);
    let dir = staging.create()?;
    let mut counted = Counting {
        inner: rootfs_tar,
        read: 0,
    };
    let (compression, sniffed) = detect_compression(&mut counted).map_err(ArchiveError::Read)?;
    let unpacked = unpack_layer(sniffed, compression, &dir, &Limits::default())
        .map_err(ArchiveError::Rootfs)?;
    let diff_id: Digest = unpacked.diff_id.parse().map_err(|e| {
        ArchiveError::Rootfs(UnpackError::Read(io::Error::other(format!(
            "unexpected diff_id: {e}"
        ))))
    })?;

    let created = now_rfc3339();
    let config = ConfigBlob {
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        created: Some(created.clone()),
        config: runtime,
        rootfs: RootFs {
            kind: "layers".to_string(),
            diff_ids: vec![diff_id.clone()],
        },
    };
    let config_bytes = config_json(&config, &created)?;
    let id = Digest::of(&config_bytes);

    staging.commit(&dir, &diff_id)?;
    store.write_blob(&id, &config_bytes)?;
    let record = ImageRecord {
        id: id.clone(),
        manifest: None,
        repo_digests: Vec::new(),
        layers: vec![LayerRecord {
            diff_id,
            blob: None,
            media_type: layer_media_type(compression).to_string(),
            size: counted.read,
        }],
        config: config.config,
        architecture: config.architecture,
        os: config.os,
        created: config.created,
        size: unpacked.size,
    };
    store.put_image(&record)?;
    if let Some(reference) = &opts.reference {
        store.tag(&reference.to_string(), &id)?;
    }
    Ok(record)
}

/// The config blob's bytes, with the history entry `docker import` writes.
fn config_json(config: &ConfigBlob, created: &str) -> Result<Vec<u8>, ArchiveError> {
    let invalid = |e: serde_json::Error| ArchiveError::Invalid {
        what: "image config".to_string(),
        member: "-".to_string(),
        detail: e.to_string(),
    };
    let mut value = serde_json::to_value(config).map_err(invalid)?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "history".to_string(),
            serde_json::json!([{ "created": created, "comment": "Imported from -" }]),
        );
    }
    serde_json::to_vec(&value).map_err(invalid)
}

fn layer_media_type(c: Compression) -> &'static str {
    match c {
        Compression::None => "application/vnd.oci.image.layer.v1.tar",
        Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    }
}

/// Apply `docker import --change` instructions in order.
pub fn apply_changes(cfg: &mut RuntimeConfig, changes: &[String]) -> Result<(), ArchiveError> {
    for change in changes {
        apply_change(cfg, change).map_err(|reason| ArchiveError::InvalidChange {
            change: change.clone(),
            reason,
        })?;
    }
    Ok(())
}

fn apply_change(cfg: &mut RuntimeConfig, change: &str) -> Result<(), String> {
    let trimmed = change.trim();
    let (word, rest) = match trimmed.split_once(char::is_whitespace) {
        Some((w, r)) => (w, r.trim()),
        None => (trimmed, ""),
    };
    if word.is_empty() {
        return Err("empty instruction".to_string());
    }
    let instruction = word.to_ascii_uppercase();
    let needs_argument = || format!("{instruction} requires an argument");
    match instruction.as_str() {
        "CMD" | "ENTRYPOINT" => {
            if rest.is_empty() {
                return Err(needs_argument());
            }
            let command = command_form(rest);
            if instruction == "CMD" {
                cfg.cmd = Some(command);
            } else {
                cfg.entrypoint = Some(command);
            }
        }
        "ENV" => {
            for (key, value) in key_values(rest, &instruction)? {
                let prefix = format!("{key}=");
                let entry = format!("{key}={value}");
                match cfg.env.iter_mut().find(|e| e.starts_with(&prefix)) {
                    Some(existing) => *existing = entry,
                    None => cfg.env.push(entry),
                }
            }
        }
        "LABEL" => {
            for (key, value) in key_values(rest, &instruction)? {
                cfg.labels.insert(key, value);
            }
        }
        "WORKDIR" => {
            if rest.is_empty() {
                return Err(needs_argument());
            }
            // A relative WORKDIR is relative to the previous one, as in a Dockerfile.
            cfg.working_dir = if rest.starts_with('/') {
                rest.to_string()
            } else {
                let base = if cfg.working_dir.is_empty() {
                    "/"
                } else {
                    cfg.working_dir.as_str()
                };
                format!("{}/{rest}", base.trim_end_matches('/'))
            };
        }
        "USER" => {
            if rest.is_empty() {
                return Err(needs_argument());
            }
            cfg.user = rest.to_string();
        }
        "EXPOSE" => {
            if rest.is_empty() {
                return Err(needs_argument());
            }
            for spec in rest.split_whitespace() {
                for port in expand_port(spec)? {
                    cfg.exposed_ports.insert(port, serde_json::json!({}));
                }
            }
        }
        "VOLUME" => {
            let paths: Vec<String> = if rest.starts_with('[') {
                serde_json::from_str(rest)
                    .map_err(|e| format!("VOLUME expects a JSON array of strings: {e}"))?
            } else {
                rest.split_whitespace().map(str::to_string).collect()
            };
            if paths.is_empty() || paths.iter().any(|p| p.trim().is_empty()) {
                return Err("VOLUME paths must not be empty".to_string());
            }
            for p in paths {
                cfg.volumes.insert(p, serde_json::json!({}));
            }
        }
        "STOPSIGNAL" => {
            if !is_signal(rest) {
                return Err(format!("invalid signal {rest:?}"));
            }
            cfg.stop_signal = rest.to_string();
        }
        "FROM" | "RUN" | "COPY" | "ADD" | "ARG" | "ONBUILD" | "SHELL" | "HEALTHCHECK"
        | "MAINTAINER" => return Err(format!("{instruction} is not supported as a change")),
        _ => return Err(format!("unknown instruction {instruction}")),
    }
    Ok(())
}

/// A JSON array is the exec form; anything else runs through `/bin/sh -c`, as in a Dockerfile.
fn command_form(rest: &str) -> Vec<String> {
    if rest.starts_with('[') {
        if let Ok(args) = serde_json::from_str::<Vec<String>>(rest) {
            return args;
        }
    }
    vec!["/bin/sh".to_string(), "-c".to_string(), rest.to_string()]
}

/// `KEY=value KEY2="v 2"`, or the legacy single-pair form `KEY value with spaces`.
fn key_values(rest: &str, instruction: &str) -> Result<Vec<(String, String)>, String> {
    if rest.is_empty() {
        return Err(format!("{instruction} requires an argument"));
    }
    let first = rest.split_whitespace().next().unwrap_or_default();
    if !first.contains('=') {
        let value = rest[first.len()..].trim();
        if value.is_empty() {
            return Err(format!("{instruction} {first} has no value"));
        }
        return Ok(vec![(first.to_string(), value.to_string())]);
    }
    let words = shell_words::split(rest).map_err(|e| format!("cannot parse {rest:?}: {e}"))?;
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("{instruction} expects KEY=value, got {w:?}")),
        })
        .collect()
}

/// `80`, `53/udp`, `8000-8002/tcp` → `80/tcp`…
fn expand_port(spec: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid protocol {proto:?} in {spec:?}"));
    }
    let port = |s: &str| match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("invalid port {s:?} in {spec:?}")),
    };
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(ports)?, port(ports)?),
    };
    if start > end {
        return Err(format!("invalid port range {ports:?}"));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

fn is_signal(s: &str) -> bool {
    const NAMES: &[&str] = &[
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV",
        "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU",
        "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR", "SYS", "RTMIN",
        "RTMAX",
    ];
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if NAMES.contains(&name) {
        return true;
    }
    // RTMIN+n and RTMAX-n.
    [("RTMIN+", 1..=30), ("RTMAX-", 1..=30)]
        .into_iter()
        .any(|(prefix, range)| {
            name.strip_prefix(prefix)
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| range.contains(&n))
        })
}

/// Now, as RFC 3339 in UTC with nanoseconds (what docker writes in `created`).
fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_nanos()
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

// ---------------------------------------------------------------------------------------------
// load

/// Bounds on what `load` accepts from an archive.
#[derive(Debug, Clone)]
struct LoadLimits {
    /// Members up to this size are kept in memory…
    small_member: u64,
    /// …as long as all of them together stay under this.
    max_in_memory: u64,
    /// The largest JSON document (manifest, index, config) read into memory.
    max_json: u64,
    max_members: u64,
    layer: Limits,
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits {
            small_member: 1 << 20,
            max_in_memory: 64 << 20,
            max_json: 16 << 20,
            max_members: 1_000_000,
            layer: Limits::default(),
        }
    }
}

/// Load every image of a `docker save` or OCI image layout archive (plain, gzip or zstd) into the
/// store, like `docker load`. Returns each image with the references (normalised,
/// `docker.io/library/busybox:latest`) it was tagged with.
pub fn load(
    store: &Store,
    archive: impl Read,
) -> Result<Vec<(ImageRecord, Vec<String>)>, ArchiveError> {
    load_with(store, archive, &LoadLimits::default())
}

fn load_with(
    store: &Store,
    archive: impl Read,
    limits: &LoadLimits,
) -> Result<Vec<(ImageRecord, Vec<String>)>, ArchiveError> {
    let members = Members::read(store, archive, limits)?;
    let pending = if members.get("manifest.json").is_some() {
        // Docker 25+ writes an OCI layout and manifest.json side by side; manifest.json names
        // the images fully (RepoTags), the OCI index often by bare tag only.
        plan_docker(&members, limits)?
    } else if members.get("index.json").is_some() {
        plan_oci(&members, limits)?
    } else {
        return Err(ArchiveError::Format(
            "neither manifest.json (docker save) nor index.json (OCI layout) found".to_string(),
        ));
    };
    publish(store, &members, merge(pending), limits)
}

/// A member's content.
enum Content {
    Memory(Vec<u8>),
    File(PathBuf),
}

struct Member {
    size: u64,
    /// sha256 of the content, computed while the archive streamed by.
    digest: Digest,
    content: Content,
}

/// The archive's members, by normalised path.
struct Members {
    files: HashMap<String, Member>,
    /// Symlinks and hard links: path → target path (normalised, inside the archive).
    links: HashMap<String, String>,
    spool: Spool,
}

/// The directory large members are written to; removed with everything in it when dropped.
struct Spool {
    dir: PathBuf,
    next: u64,
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = remove_tree(&self.dir);
    }
}

impl Members {
    fn read(
        store: &Store,
        archive: impl Read,
        limits: &LoadLimits,
    ) -> Result<Members, ArchiveError> {
        let dir = store.temp_path("load");
        fs::create_dir(&dir).map_err(io_err("create", &dir))?;
        let mut members = Members {
            files: HashMap::new(),
            links: HashMap::new(),
            spool: Spool { dir, next: 0 },
        };
        let (compression, sniffed) = detect_compression(archive).map_err(ArchiveError::Read)?;
        let reader: Box<dyn Read> = match compression {
            Compression::None => Box::new(sniffed),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(sniffed)),
            Compression::Zstd => Box::new(zstd::Decoder::new(sniffed).map_err(ArchiveError::Read)?),
        };
        let mut tar = tar::Archive::new(reader);
        let mut in_memory = 0u64;
        let mut count = 0u64;
        for entry in tar.entries().map_err(ArchiveError::Read)? {
            let mut entry = entry.map_err(ArchiveError::Read)?;
            count += 1;
            if count > limits.max_members {
                return Err(ArchiveError::TooManyMembers(limits.max_members));
            }
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let unsafe_member = |reason: String| ArchiveError::UnsafeMember {
                member: raw.clone(),
                reason,
            };
            let path = normalize(&raw).map_err(unsafe_member)?;
            let kind = entry.header().entry_type();
            let is_link = kind.is_symlink() || kind.is_hard_link();
            if !(is_link || kind.is_file() || kind == tar::EntryType::Continuous) {
                // Directories, device nodes, FIFOs, global PAX headers: nothing a loader reads.
                continue;
            }
            if path.is_empty() {
                return Err(unsafe_member("names the archive root".to_string()));
            }
            if members.files.contains_key(&path) || members.links.contains_key(&path) {
                return Err(unsafe_member("appears twice".to_string()));
            }
            if is_link {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                // A symlink is relative to its directory, a hard link to the archive root.
                let joined = match (kind.is_symlink(), path.rsplit_once('/')) {
                    (true, Some((parent, _))) if !target.starts_with('/') => {
                        format!("{parent}/{target}")
                    }
                    _ => target.clone(),
                };
                let resolved = resolve_dots(&joined)
                    .map_err(|reason| unsafe_member(format!("link to {target:?}: {reason}")))?;
                members.links.insert(path, resolved);
                continue;
            }
            let size = entry.size();
            let member = if size <= limits.small_member && in_memory + size <= limits.max_in_memory
            {
                in_memory += size;
                let mut hashing = Hashing::new(&mut entry);
                let mut data = Vec::with_capacity(size as usize);
                hashing.read_to_end(&mut data).map_err(ArchiveError::Read)?;
                Member {
                    size: data.len() as u64,
                    digest: hashing.digest(),
                    content: Content::Memory(data),
                }
            } else {
                let file_path = members.spool.dir.join(members.spool.next.to_string());
                members.spool.next += 1;
                let mut file = File::create(&file_path).map_err(io_err("create", &file_path))?;
                let mut hashing = Hashing::new(&mut entry);
                let written = copy(&mut hashing, &mut file, &file_path)?;
                Member {
                    size: written,
                    digest: hashing.digest(),
                    content: Content::File(file_path),
                }
            };
            members.files.insert(path, member);
        }
        Ok(members)
    }

    /// The member at `path`, following links.
    fn get(&self, path: &str) -> Option<&Member> {
        let mut path = path;
        for _ in 0..16 {
            if let Some(m) = self.files.get(path) {
                return Some(m);
            }
            path = self.links.get(path)?;
        }
        None
    }

    /// The member a manifest names, which must exist.
    fn named(&self, name: &str, what: &str) -> Result<(String, &Member), ArchiveError> {
        let path = normalize(name).map_err(|reason| ArchiveError::UnsafeMember {
            member: name.to_string(),
            reason: format!("named as {what}: {reason}"),
        })?;
        match self.get(&path) {
            Some(m) => Ok((path, m)),
            None => Err(ArchiveError::Missing {
                what: what.to_string(),
                member: name.to_string(),
            }),
        }
    }

    /// A JSON member's bytes, bounded in size.
    fn json(&self, name: &str, what: &str, limit: u64) -> Result<Vec<u8>, ArchiveError> {
        let (path, member) = self.named(name, what)?;
        if member.size > limit {
            return Err(ArchiveError::TooLarge {
                what: what.to_string(),
                member: path,
                size: member.size,
                limit,
            });
        }
        let mut data = Vec::new();
        self.open(member)?
            .read_to_end(&mut data)
            .map_err(ArchiveError::Read)?;
        Ok(data)
    }

    fn open<'a>(&'a self, member: &'a Member) -> Result<Box<dyn Read + 'a>, ArchiveError> {
        Ok(match &member.content {
            Content::Memory(data) => Box::new(&data[..]),
            Content::File(p) => Box::new(io::BufReader::with_capacity(
                256 << 10,
                File::open(p).map_err(io_err("open", p))?,
            )),
        })
    }

    /// The compression a member's first bytes show.
    fn compression(&self, member: &Member) -> Result<Compression, ArchiveError> {
        let mut head = Vec::with_capacity(4);
        self.open(member)?
            .take(4)
            .read_to_end(&mut head)
            .map_err(ArchiveError::Read)?;
        Ok(Compression::from_magic(&head))
    }
}

/// A member path as a relative, `/`-separated path without `.` components; `..` and absolute
/// paths are refused (the archive is never extracted as such, but a name that tries to leave
/// it says the archive is hostile).
fn normalize(path: &str) -> Result<String, String> {
    if path.starts_with('/') {
        return Err("absolute path".to_string());
    }
    if path.contains('\0') {
        return Err("path contains a NUL byte".to_string());
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("path has a `..` component".to_string()),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Lexically resolve `..` in a link target joined to its directory; it may not climb out of the
/// archive.
fn resolve_dots(path: &str) -> Result<String, String> {
    if path.starts_with('/') {
        return Err("absolute path".to_string());
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("points outside the archive".to_string());
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Hashes what is read through it.
struct Hashing<R> {
    inner: R,
    hasher: sha2::Sha256,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: <sha2::Sha256 as sha2::Digest>::new(),
        }
    }

    fn digest(&self) -> Digest {
        Digest::from_sha256(&sha2::Digest::finalize(self.hasher.clone()))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        Ok(n)
    }
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Copy with read errors (the archive) told apart from write errors (the spool file).
fn copy(from: &mut impl Read, to: &mut File, path: &std::path::Path) -> Result<u64, ArchiveError> {
    let mut buf = vec![0; 256 << 10];
    let mut total = 0;
    loop {
        let n = from.read(&mut buf).map_err(ArchiveError::Read)?;
        if n == 0 {
            return Ok(total);
        }
        to.write_all(&buf[..n]).map_err(io_err("write", path))?;
        total += n as u64;
    }
}

/// An image found in the archive, checked but not yet published.
struct PendingImage {
    id: Digest,
    config_bytes: Vec<u8>,
    config: ConfigBlob,
    manifest: Option<(Digest, Vec<u8>)>,
    layers: Vec<PendingLayer>,
    tags: Vec<String>,
}

struct PendingLayer {
    /// The member's normalised path.
    member: String,
    diff_id: Digest,
    /// The digest the member must have (OCI blobs), checked again while unpacking.
    expected: Option<(Digest, u64)>,
    blob: Digest,
    media_type: String,
    compression: Option<Compression>,
    size: u64,
}

/// `manifest.json` of `docker save`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

fn plan_docker(members: &Members, limits: &LoadLimits) -> Result<Vec<PendingImage>, ArchiveError> {
    let data = members.json("manifest.json", "manifest", limits.max_json)?;
    let entries: Vec<SaveEntry> =
        serde_json::from_slice(&data).map_err(|e| ArchiveError::Invalid {
            what: "manifest".to_string(),
            member: "manifest.json".to_string(),
            detail: e.to_string(),
        })?;
    if entries.is_empty() {
        return Err(ArchiveError::Format(
            "manifest.json lists no images".to_string(),
        ));
    }
    let mut out = Vec::new();
    for entry in entries {
        let config_bytes = members.json(&entry.config, "image config", limits.max_json)?;
        let id = Digest::of(&config_bytes);
        // The config's member name carries its digest (`<hex>.json`, `blobs/sha256/<hex>`).
        if let Some(named) = config_name_digest(&entry.config) {
            if named != id {
                return Err(ArchiveError::Verify {
                    what: "image config".to_string(),
                    member: entry.config.clone(),
                    detail: format!("its name says {named}, its content is {id}"),
                });
            }
        }
        let config = parse_config(&config_bytes, &entry.config)?;
        if config.rootfs.diff_ids.len() != entry.layers.len() {
            return Err(ArchiveError::Invalid {
                what: "image config".to_string(),
                member: entry.config.clone(),
                detail: format!(
                    "manifest.json lists {} layers but the config has {} diff_ids",
                    entry.layers.len(),
                    config.rootfs.diff_ids.len()
                ),
            });
        }
        let mut layers = Vec::new();
        for (name, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
            let (path, member) = members.named(name, "layer")?;
            if let Some(named) = blob_name_digest(name) {
                if named != member.digest {
                    return Err(ArchiveError::Verify {
                        what: "layer".to_string(),
                        member: name.clone(),
                        detail: format!("its name says {named}, its content is {}", member.digest),
                    });
                }
            }
            let compression = members.compression(member)?;
            layers.push(PendingLayer {
                member: path,
                diff_id: diff_id.clone(),
                expected: None,
                blob: member.digest.clone(),
                media_type: docker_media_type(compression).to_string(),
                compression: Some(compression),
                size: member.size,
            });
        }
        let tags = entry
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| normalize_tag(t, "manifest.json"))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(PendingImage {
            id,
            config_bytes,
            config,
            manifest: None,
            layers,
            tags,
        });
    }
    Ok(out)
}

fn docker_media_type(c: Compression) -> &'static str {
    match c {
        Compression::None => "application/vnd.docker.image.rootfs.diff.tar",
        Compression::Gzip => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    }
}

/// The digest a `blobs/sha256/<hex>` member name carries.
fn blob_name_digest(name: &str) -> Option<Digest> {
    let hex = normalize(name)
        .ok()?
        .strip_prefix("blobs/sha256/")?
        .to_string();
    format!("sha256:{hex}").parse().ok()
}

/// The digest a config member name carries: `<hex>.json` (docker save before 25) or a blob path.
fn config_name_digest(name: &str) -> Option<Digest> {
    blob_name_digest(name).or_else(|| {
        let path = normalize(name).ok()?;
        let hex = path.strip_suffix(".json")?;
        format!("sha256:{hex}").parse().ok()
    })
}

fn parse_config(bytes: &[u8], member: &str) -> Result<ConfigBlob, ArchiveError> {
    serde_json::from_slice(bytes).map_err(|e| ArchiveError::Invalid {
        what: "image config".to_string(),
        member: member.to_string(),
        detail: e.to_string(),
    })
}

fn normalize_tag(tag: &str, member: &str) -> Result<String, ArchiveError> {
    Reference::parse(tag)
        .map(|r| r.to_string())
        .map_err(|source| ArchiveError::Tag {
            tag: tag.to_string(),
            member: member.to_string(),
            source,
        })
}

/// A descriptor in an OCI index, with the annotations that carry tags.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciDescriptor {
    #[serde(default)]
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(default)]
    platform: Option<PlatformSpec>,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

#[derive(Deserialize)]
struct OciIndex {
    #[serde(default)]
    manifests: Vec<OciDescriptor>,
}

fn plan_oci(members: &Members, limits: &LoadLimits) -> Result<Vec<PendingImage>, ArchiveError> {
    if members.get("oci-layout").is_some() {
        let layout = members.json("oci-layout", "oci-layout", limits.max_json)?;
        let value: serde_json::Value =
            serde_json::from_slice(&layout).map_err(|e| ArchiveError::Invalid {
                what: "layout file".to_string(),
                member: "oci-layout".to_string(),
                detail: e.to_string(),
            })?;
        if value.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
            return Err(ArchiveError::Invalid {
                what: "layout file".to_string(),
                member: "oci-layout".to_string(),
                detail: "imageLayoutVersion is not 1.0.0".to_string(),
            });
        }
    }
    let data = members.json("index.json", "index", limits.max_json)?;
    let index = parse_index(&data, "index.json")?;
    if index.manifests.is_empty() {
        return Err(ArchiveError::Format(
            "index.json lists no images".to_string(),
        ));
    }
    let host = Platform::host();
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for desc in &index.manifests {
        // A layout may list single-platform manifests directly: only the host's are loaded.
        if let Some(p) = &desc.platform {
            let p = Platform::new(&p.os, &p.architecture, p.variant.as_deref());
            if !host.matches(&p) {
                skipped.push(p.to_string());
                continue;
            }
        }
        let mut image = resolve_oci(members, desc, limits, &host, 0)?;
        if let Some(tag) = oci_tag(&desc.annotations) {
            image.tags.push(normalize_tag(&tag, "index.json")?);
        }
        out.push(image);
    }
    if out.is_empty() {
        return Err(ArchiveError::NoPlatform {
            platform: host.to_string(),
            available: skipped.join(", "),
        });
    }
    Ok(out)
}

/// The reference an index entry is tagged with. `org.opencontainers.image.ref.name` is often a
/// bare tag (`latest`), which names no repository: such entries load untagged unless containerd's
/// full name is there too.
fn oci_tag(annotations: &HashMap<String, String>) -> Option<String> {
    if let Some(name) = annotations.get(ANNOTATION_CONTAINERD_NAME) {
        return Some(name.clone());
    }
    annotations
        .get(ANNOTATION_REF_NAME)
        .filter(|n| n.contains(['/', ':', '@']))
        .cloned()
}

fn parse_index(data: &[u8], member: &str) -> Result<OciIndex, ArchiveError> {
    serde_json::from_slice(data).map_err(|e| ArchiveError::Invalid {
        what: "index".to_string(),
        member: member.to_string(),
        detail: e.to_string(),
    })
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// A small blob's bytes, checked against its descriptor's digest and size.
fn oci_blob(
    members: &Members,
    digest: &Digest,
    size: u64,
    what: &str,
    limits: &LoadLimits,
) -> Result<Vec<u8>, ArchiveError> {
    let path = blob_path(digest);
    check_blob(members, &path, digest, size, what)?;
    members.json(&path, what, limits.max_json)
}

/// A blob member must have the digest and size its descriptor declares.
fn check_blob(
    members: &Members,
    path: &str,
    digest: &Digest,
    size: u64,
    what: &str,
) -> Result<(), ArchiveError> {
    let (_, member) = members.named(path, what)?;
    let fail = |detail: String| ArchiveError::Verify {
        what: what.to_string(),
        member: path.to_string(),
        detail,
    };
    if member.digest != *digest {
        return Err(fail(format!(
            "digest mismatch: expected {digest}, got {}",
            member.digest
        )));
    }
    if member.size != size {
        return Err(fail(format!(
            "size mismatch: the descriptor says {size} bytes, the member has {}",
            member.size
        )));
    }
    Ok(())
}

fn resolve_oci(
    members: &Members,
    desc: &OciDescriptor,
    limits: &LoadLimits,
    platform: &Platform,
    depth: usize,
) -> Result<PendingImage, ArchiveError> {
    let data = oci_blob(members, &desc.digest, desc.size, "manifest", limits)?;
    let path = blob_path(&desc.digest);
    let is_index = match desc.media_type.as_str() {
        MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST => true,
        "" => serde_json::from_slice::<serde_json::Value>(&data)
            .map(|v| v.get("manifests").is_some())
            .unwrap_or(false),
        _ => false,
    };
    if is_index {
        if depth >= 4 {
            return Err(ArchiveError::Invalid {
                what: "index".to_string(),
                member: path,
                detail: "indexes nested too deeply".to_string(),
            });
        }
        let index = parse_index(&data, &path)?;
        let entries: Vec<Option<Platform>> = index
            .manifests
            .iter()
            .map(|d| {
                let p = d.platform.as_ref()?;
                Some(Platform::new(&p.os, &p.architecture, p.variant.as_deref()))
            })
            .collect();
        let chosen = match platform.choose(&entries) {
            Ok(i) => &index.manifests[i],
            // An index without platforms (attestations aside) has one image.
            Err(_) if entries.iter().all(Option::is_none) && index.manifests.len() == 1 => {
                &index.manifests[0]
            }
            Err(available) => {
                return Err(ArchiveError::NoPlatform {
                    platform: platform.to_string(),
                    available,
                })
            }
        };
        return resolve_oci(members, chosen, limits, platform, depth + 1);
    }

    let manifest: Manifest = serde_json::from_slice(&data).map_err(|e| ArchiveError::Invalid {
        what: "manifest".to_string(),
        member: path.clone(),
        detail: e.to_string(),
    })?;
    let config_bytes = oci_blob(
        members,
        &manifest.config.digest,
        manifest.config.size,
        "image config",
        limits,
    )?;
    let config_path = blob_path(&manifest.config.digest);
    let config = parse_config(&config_bytes, &config_path)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(ArchiveError::Invalid {
            what: "manifest".to_string(),
            member: path,
            detail: format!(
                "{} layers but the config has {} diff_ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        });
    }
    let mut layers = Vec::new();
    for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
        let member = blob_path(&layer.digest);
        check_blob(members, &member, &layer.digest, layer.size, "layer")?;
        layers.push(PendingLayer {
            member,
            diff_id: diff_id.clone(),
            expected: Some((layer.digest.clone(), layer.size)),
            blob: layer.digest.clone(),
            media_type: layer.media_type.clone(),
            compression: Compression::from_media_type(&layer.media_type),
            size: layer.size,
        });
    }
    Ok(PendingImage {
        id: manifest.config.digest.clone(),
        config_bytes,
        config,
        manifest: Some((desc.digest.clone(), data)),
        layers,
        tags: Vec::new(),
    })
}

/// One entry per image, in order of first appearance, with the tags of all its entries.
fn merge(pending: Vec<PendingImage>) -> Vec<PendingImage> {
    let mut out: Vec<PendingImage> = Vec::new();
    for image in pending {
        match out.iter_mut().find(|o| o.id == image.id) {
            Some(existing) => {
                for tag in image.tags {
                    if !existing.tags.contains(&tag) {
                        existing.tags.push(tag);
                    }
                }
            }
            None => out.push(image),
        }
    }
    out
}

/// Staging directories for layers, removed unless committed.
struct Staging<'a> {
    store: &'a Store,
    dirs: Vec<PathBuf>,
}

impl<'a> Staging<'a> {
    fn new(store: &'a Store) -> Self {
        Staging {
            store,
            dirs: Vec::new(),
        }
    }

    fn create(&mut self) -> Result<PathBuf, ArchiveError> {
        let dir = self.store.layer_staging()?;
        self.dirs.push(dir.clone());
        Ok(dir)
    }

    fn commit(&mut self, dir: &PathBuf, diff_id: &Digest) -> Result<(), ArchiveError> {
        self.dirs.retain(|d| d != dir);
        self.store.commit_layer(dir, diff_id)?;
        Ok(())
    }
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        for dir in &self.dirs {
            let _ = remove_tree(dir);
        }
    }
}

/// Unpack the layers the store lacks, then publish layers, blobs, images and tags.
fn publish(
    store: &Store,
    members: &Members,
    images: Vec<PendingImage>,
    limits: &LoadLimits,
) -> Result<Vec<(ImageRecord, Vec<String>)>, ArchiveError> {
    let mut staging = Staging::new(store);
    let mut staged: Vec<(PathBuf, Digest)> = Vec::new();
    let mut unpacked_sizes: HashMap<Digest, u64> = HashMap::new();
    let mut seen = HashSet::new();
    for layer in images.iter().flat_map(|i| &i.layers) {
        if store.has_layer(&layer.diff_id) || !seen.insert(layer.diff_id.clone()) {
            continue;
        }
        let dir = staging.create()?;
        let size = unpack_pending(members, layer, &dir, limits)?;
        unpacked_sizes.insert(layer.diff_id.clone(), size);
        staged.push((dir, layer.diff_id.clone()));
    }

    // Everything checked out: publish.
    for (dir, diff_id) in &staged {
        staging.commit(dir, diff_id)?;
    }
    let mut out = Vec::new();
    for image in images {
        store.write_blob(&image.id, &image.config_bytes)?;
        if let Some((digest, bytes)) = &image.manifest {
            store.write_blob(digest, bytes)?;
        }
        let mut record = ImageRecord {
            id: image.id.clone(),
            manifest: image.manifest.as_ref().map(|(d, _)| d.clone()),
            repo_digests: Vec::new(),
            layers: image
                .layers
                .iter()
                .map(|l| LayerRecord {
                    diff_id: l.diff_id.clone(),
                    blob: Some(l.blob.clone()),
                    media_type: l.media_type.clone(),
                    size: l.size,
                })
                .collect(),
            config: image.config.config.clone(),
            architecture: image.config.architecture.clone(),
            os: image.config.os.clone(),
            created: image.config.created.clone(),
            size: image
                .layers
                .iter()
                .map(|l| unpacked_sizes.get(&l.diff_id).copied().unwrap_or(l.size))
                .sum(),
        };
        // Loading again keeps what pulls recorded (repo digests, the registry's manifest).
        if let Some(existing) = store.image(&record.id)? {
            record.repo_digests = existing.repo_digests;
            // Its layers were unpacked before, when their unpacked size was known.
            record.size = existing.size;
            if record.manifest.is_none() {
                record.manifest = existing.manifest;
            }
        }
        store.put_image(&record)?;
        for tag in &image.tags {
            store.tag(tag, &record.id)?;
        }
        out.push((record, image.tags));
    }
    Ok(out)
}

/// Unpack one layer member into `dir`, checking its blob digest (OCI) and its diff_id. Returns
/// the uncompressed size.
fn unpack_pending(
    members: &Members,
    layer: &PendingLayer,
    dir: &std::path::Path,
    limits: &LoadLimits,
) -> Result<u64, ArchiveError> {
    let member = members
        .get(&layer.member)
        .ok_or_else(|| ArchiveError::Missing {
            what: "layer".to_string(),
            member: layer.member.clone(),
        })?;
    let reader = members.open(member)?;
    // The spooled copy is checked again as it is read: it sat in a file since it was hashed.
    let mut source: Box<dyn Read + '_> = match &layer.expected {
        Some((digest, size)) => Box::new(VerifyingReader::new(reader, digest.clone(), Some(*size))),
        None => reader,
    };
    let unpack_err = |source| ArchiveError::Unpack {
        member: layer.member.clone(),
        source,
    };
    let unpacked = match layer.compression {
        Some(c) => unpack_layer(&mut source, c, dir, &limits.layer),
        None => {
            let (c, sniffed) = detect_compression(&mut source).map_err(ArchiveError::Read)?;
            unpack_layer(sniffed, c, dir, &limits.layer)
        }
    }
    .map_err(unpack_err)?;
    io::copy(&mut source, &mut io::sink()).map_err(|e| ArchiveError::Verify {
        what: "layer".to_string(),
        member: layer.member.clone(),
        detail: e.to_string(),
    })?;
    if unpacked.diff_id != layer.diff_id.to_string() {
        return Err(ArchiveError::Verify {
            what: "layer".to_string(),
            member: layer.member.clone(),
            detail: format!(
                "it unpacks to {}, the image config says {}",
                unpacked.diff_id, layer.diff_id
            ),
        });
    }
    Ok(unpacked.size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("images")).unwrap();
        (dir, store)
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    enum Item<'a> {
        File(&'a str, &'a [u8]),
        Symlink(&'a str, &'a str),
        Dir(&'a str),
    }

    fn tar_of(items: &[Item]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for item in items {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(0);
            h.set_uid(0);
            h.set_gid(0);
            match item {
                Item::File(path, data) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(data.len() as u64);
                    h.set_mode(0o644);
                    // set_path refuses `..`: write the raw name for hostile members.
                    set_name(&mut h, path);
                    h.set_cksum();
                    b.append(&h, *data).unwrap();
                }
                Item::Symlink(path, target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    h.set_mode(0o777);
                    set_name(&mut h, path);
                    h.set_link_name(target).unwrap();
                    h.set_cksum();
                    b.append(&h, &[][..]).unwrap();
                }
                Item::Dir(path) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    set_name(&mut h, path);
                    h.set_cksum();
                    b.append(&h, &[][..]).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    fn set_name(h: &mut tar::Header, path: &str) {
        let name = &mut h.as_old_mut().name;
        name.fill(0);
        name[..path.len()].copy_from_slice(path.as_bytes());
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Two layers: the second deletes `bin/keep` with a whiteout and adds `etc/new`.
    fn layers() -> (Vec<u8>, Vec<u8>) {
        let l1 = tar_of(&[
            Item::Dir("etc/"),
            Item::File("etc/hello", b"hi"),
            Item::Dir("bin/"),
            Item::File("bin/keep", b"k"),
        ]);
        let l2 = tar_of(&[Item::File("bin/.wh.keep", b""), Item::File("etc/new", b"n")]);
        (l1, l2)
    }

    fn config_for(diff_ids: &[&[u8]], cmd: &str) -> Vec<u8> {
        let ids: Vec<String> = diff_ids.iter().map(|l| Digest::of(l).to_string()).collect();
        serde_json::to_vec(&serde_json::json!({
            "architecture": Platform::host().architecture, "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": [cmd], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": ids},
        }))
        .unwrap()
    }

    /// A `docker save` archive in the pre-25 shape: `<id>.json`, a `layer.tar` symlink, layers
    /// before manifest.json.
    fn docker_archive(tags: &[&str]) -> (Vec<u8>, Digest) {
        let (l1, l2) = layers();
        let l1_hex = Digest::of(&l1).hex().to_string();
        let config = config_for(&[&l1, &l2], "sh");
        let id = Digest::of(&config);
        let l2gz = gzip(&l2);
        let manifest = serde_json::to_vec(&serde_json::json!([{
            "Config": format!("{}.json", id.hex()),
            "RepoTags": tags,
            "Layers": ["aaaa/layer.tar", "l2.tar.gz"],
        }]))
        .unwrap();
        let l1_name = format!("{l1_hex}.tar");
        let l1_link = format!("../{l1_hex}.tar");
        let config_name = format!("{}.json", id.hex());
        let archive = tar_of(&[
            Item::File(&l1_name, &l1),
            Item::Dir("aaaa/"),
            Item::Symlink("aaaa/layer.tar", &l1_link),
            Item::File("./l2.tar.gz", &l2gz),
            Item::File(&config_name, &config),
            Item::File("manifest.json", &manifest),
        ]);
        (archive, id)
    }

    fn assert_nothing_published(s: &Store) {
        assert!(s.images().unwrap().is_empty());
        assert!(s.refs().unwrap().is_empty());
        assert_eq!(
            fs::read_dir(s.root().join("layers/sha256"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(
            fs::read_dir(s.root().join("blobs/sha256")).unwrap().count(),
            0
        );
        assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn loads_a_docker_save_archive() {
        if !is_root() {
            eprintln!("note: not root, skipping (whiteouts are device nodes)");
            return;
        }
        let (s_dir, s) = store();
        let (archive, id) = docker_archive(&["busybox:1", "example.com:5000/team/app:v2"]);
        let loaded = load(&s, &archive[..]).unwrap();
        assert_eq!(loaded.len(), 1);
        let (record, tags) = &loaded[0];
        assert_eq!(record.id, id);
        assert_eq!(
            tags,
            &vec![
                "docker.io/library/busybox:1".to_string(),
                "example.com:5000/team/app:v2".to_string()
            ]
        );
        assert_eq!(record.config.cmd, Some(vec!["sh".to_string()]));
        assert_eq!(record.layers.len(), 2);
        assert_eq!(
            record.layers[1].media_type,
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
        assert_eq!(
            s.resolve("docker.io/library/busybox:1")
                .unwrap()
                .unwrap()
                .id,
            id
        );
        assert_eq!(
            s.read_blob(&id).unwrap().len(),
            s.read_blob(&id).unwrap().len()
        );
        let l1 = s.layer_dir(&record.layers[0].diff_id);
        let l2 = s.layer_dir(&record.layers[1].diff_id);
        assert_eq!(fs::read(l1.join("etc/hello")).unwrap(), b"hi");
        assert_eq!(fs::read(l2.join("etc/new")).unwrap(), b"n");
        let wh = fs::symlink_metadata(l2.join("bin/keep")).unwrap();
        assert!(
            wh.file_type().is_char_device(),
            "whiteout became a 0:0 device"
        );
        assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);

        // Loading again unpacks nothing and gives the same image.
        let before = fs::metadata(&l1).unwrap().modified().unwrap();
        let again = load(&s, &archive[..]).unwrap();
        assert_eq!(again[0].0, *record);
        assert_eq!(fs::metadata(&l1).unwrap().modified().unwrap(), before);
        drop(s_dir);
    }

    /// An OCI layout: index.json → nested index (host and another platform) → manifest.
    fn oci_archive(corrupt_layer: bool) -> (Vec<u8>, Digest, Digest) {
        let (l1, l2) = layers();
        let l1gz = gzip(&l1);
        let config = config_for(&[&l1, &l2], "oci");
        let host = Platform::host();
        let desc = |media: &str, data: &[u8]| serde_json::json!({"mediaType": media, "digest": Digest::of(data).to_string(), "size": data.len()});
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": desc("application/vnd.oci.image.config.v1+json", &config),
            "layers": [
                desc("application/vnd.oci.image.layer.v1.tar+gzip", &l1gz),
                desc("application/vnd.oci.image.layer.v1.tar", &l2),
            ],
        }))
        .unwrap();
        let other_arch = if host.architecture == "s390x" {
            "ppc64le"
        } else {
            "s390x"
        };
        let other = b"{\"not\": \"loaded\"}".to_vec();
        let mut host_desc = desc(MEDIA_OCI_MANIFEST_STR, &manifest);
        host_desc["platform"] = serde_json::json!({"os": "linux", "architecture": host.architecture, "variant": host.variant});
        let mut other_desc = desc(MEDIA_OCI_MANIFEST_STR, &other);
        other_desc["platform"] = serde_json::json!({"os": "linux", "architecture": other_arch});
        let nested = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX,
            "manifests": [other_desc, host_desc],
        }))
        .unwrap();
        let mut top = desc(MEDIA_OCI_INDEX, &nested);
        top["annotations"] = serde_json::json!({ANNOTATION_REF_NAME: "docker.io/library/app:1.0"});
        let mut bare = desc(MEDIA_OCI_INDEX, &nested);
        bare["annotations"] = serde_json::json!({ANNOTATION_REF_NAME: "latest"});
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "manifests": [top, bare],
        }))
        .unwrap();
        let path = |d: &[u8]| format!("blobs/sha256/{}", Digest::of(d).hex());
        let l2_content: Vec<u8> = if corrupt_layer {
            let mut c = l2.clone();
            c[600] ^= 1;
            c
        } else {
            l2.clone()
        };
        let names = [
            path(&l1gz),
            path(&l2),
            path(&config),
            path(&manifest),
            path(&nested),
        ];
        let archive = tar_of(&[
            Item::File("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
            Item::Dir("blobs/"),
            Item::Dir("blobs/sha256/"),
            Item::File(&names[0], &l1gz),
            Item::File(&names[1], &l2_content),
            Item::File(&names[2], &config),
            Item::File(&names[3], &manifest),
            Item::File(&names[4], &nested),
            Item::File("index.json", &index),
        ]);
        (archive, Digest::of(&config), Digest::of(&manifest))
    }

    const MEDIA_OCI_MANIFEST_STR: &str = super::super::config::MEDIA_OCI_MANIFEST;

    #[test]
    fn loads_an_oci_layout_choosing_the_host_platform() {
        if !is_root() {
            eprintln!("note: not root, skipping (whiteouts are device nodes)");
            return;
        }
        let (_d, s) = store();
        let (archive, id, manifest) = oci_archive(false);
        // Spool every member to disk to cover that path too.
        let limits = LoadLimits {
            small_member: 0,
            ..LoadLimits::default()
        };
        let loaded = load_with(&s, &archive[..], &limits).unwrap();
        assert_eq!(loaded.len(), 1, "both index entries are the same image");
        let (record, tags) = &loaded[0];
        assert_eq!(record.id, id);
        assert_eq!(record.manifest, Some(manifest.clone()));
        assert!(s.has_blob(&manifest));
        assert_eq!(tags, &vec!["docker.io/library/app:1.0".to_string()]);
        assert_eq!(record.config.cmd, Some(vec!["oci".to_string()]));
        assert_eq!(
            record.layers[0].media_type,
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let l2 = s.layer_dir(&record.layers[1].diff_id);
        assert!(fs::symlink_metadata(l2.join("bin/keep"))
            .unwrap()
            .file_type()
            .is_char_device());
        assert_eq!(
            s.resolve("docker.io/library/app:1.0").unwrap().unwrap().id,
            id
        );
        assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn loads_a_gzipped_archive_without_whiteouts() {
        let (_d, s) = store();
        let layer = tar_of(&[Item::File("hello", b"world")]);
        let config = config_for(&[&layer], "x");
        let id = Digest::of(&config);
        let manifest = format!(
            r#"[{{"Config":"blobs/sha256/{}","RepoTags":null,"Layers":["blobs/sha256/{}"]}}]"#,
            id.hex(),
            Digest::of(&layer).hex()
        );
        let archive = gzip(&tar_of(&[
            Item::File(&format!("blobs/sha256/{}", id.hex()), &config),
            Item::File(
                &format!("blobs/sha256/{}", Digest::of(&layer).hex()),
                &layer,
            ),
            Item::File("manifest.json", manifest.as_bytes()),
        ]));
        let loaded = load(&s, &archive[..]).unwrap();
        assert_eq!(loaded[0].0.id, id);
        assert!(loaded[0].1.is_empty(), "untagged");
        assert!(s.refs().unwrap().is_empty());
        let dir = s.layer_dir(&Digest::of(&layer));
        assert_eq!(fs::read(dir.join("hello")).unwrap(), b"world");
    }

    fn expect_load_error(archive: &[u8], limits: &LoadLimits, needle: &str) {
        let (_d, s) = store();
        let err = load_with(&s, archive, limits).unwrap_err().to_string();
        assert!(err.contains(needle), "{err:?} should contain {needle:?}");
        assert_nothing_published(&s);
    }

    #[test]
    fn hostile_archives_are_refused_and_leave_nothing() {
        let defaults = LoadLimits::default();
        let (l1, _) = layers();
        // A member path with `..`.
        let a = tar_of(&[
            Item::File("../evil", b"x"),
            Item::File("manifest.json", b"[]"),
        ]);
        expect_load_error(&a, &defaults, "path has a `..` component");
        let a = tar_of(&[Item::File("/abs", b"x")]);
        expect_load_error(&a, &defaults, "absolute path");
        // A symlink member pointing out of the archive.
        let a = tar_of(&[Item::Symlink("x/layer.tar", "../../etc/passwd")]);
        expect_load_error(&a, &defaults, "points outside the archive");
        // A manifest naming a missing layer.
        let config = config_for(&[&l1], "x");
        let id = Digest::of(&config);
        let cfg_name = format!("{}.json", id.hex());
        let m = format!(r#"[{{"Config":"{cfg_name}","RepoTags":["a:1"],"Layers":["nope.tar"]}}]"#);
        let a = tar_of(&[
            Item::File(&cfg_name, &config),
            Item::File("manifest.json", m.as_bytes()),
        ]);
        expect_load_error(&a, &defaults, "layer \"nope.tar\" is not in the archive");
        // A manifest naming a layer through `..`.
        let m = format!(r#"[{{"Config":"{cfg_name}","RepoTags":[],"Layers":["../x.tar"]}}]"#);
        let a = tar_of(&[
            Item::File(&cfg_name, &config),
            Item::File("manifest.json", m.as_bytes()),
        ]);
        expect_load_error(&a, &defaults, "refused");
        // A config too large to read into memory.
        let small = LoadLimits {
            max_json: 64,
            ..LoadLimits::default()
        };
        let m = format!(r#"[{{"Config":"{cfg_name}","RepoTags":[],"Layers":["l.tar"]}}]"#);
        let a = tar_of(&[
            Item::File(&cfg_name, &config),
            Item::File("l.tar", &l1),
            Item::File("manifest.json", m.as_bytes()),
        ]);
        expect_load_error(&a, &small, "is too large");
        // A config whose name is not its digest.
        let wrong = format!("{}.json", Digest::of(b"other").hex());
        let m = format!(r#"[{{"Config":"{wrong}","RepoTags":[],"Layers":["l.tar"]}}]"#);
        let a = tar_of(&[
            Item::File(&wrong, &config),
            Item::File("l.tar", &l1),
            Item::File("manifest.json", m.as_bytes()),
        ]);
        expect_load_error(&a, &defaults, "its name says");
        // A layer whose diff_id does not match the config.
        let other_layer = tar_of(&[Item::File("evil", b"x")]);
        let a = tar_of(&[
            Item::File(&cfg_name, &config),
            Item::File("l.tar", &other_layer),
            Item::File(
                "manifest.json",
                format!(r#"[{{"Config":"{cfg_name}","RepoTags":["a:1"],"Layers":["l.tar"]}}]"#)
                    .as_bytes(),
            ),
        ]);
        expect_load_error(&a, &defaults, "the image config says");
        // An invalid tag.
        let a = tar_of(&[
            Item::File(&cfg_name, &config),
            Item::File("l.tar", &l1),
            Item::File(
                "manifest.json",
                format!(r#"[{{"Config":"{cfg_name}","RepoTags":["Bad:1"],"Layers":["l.tar"]}}]"#)
                    .as_bytes(),
            ),
        ]);
        expect_load_error(&a, &defaults, "invalid tag \"Bad:1\"");
        // An OCI blob whose content is not its digest.
        let (a, _, _) = oci_archive(true);
        expect_load_error(&a, &defaults, "digest mismatch");
        // Not an image archive at all.
        let a = tar_of(&[Item::File("hello", b"x")]);
        expect_load_error(&a, &defaults, "neither manifest.json");
    }

    #[test]
    fn a_second_good_layer_is_not_published_when_a_later_one_fails() {
        let (_d, s) = store();
        let good = tar_of(&[Item::File("a", b"1")]);
        let bad = tar_of(&[Item::File("b", b"2")]);
        let config = config_for(&[&good, b"not the bad layer"], "x");
        let cfg_name = format!("{}.json", Digest::of(&config).hex());
        let m =
            format!(r#"[{{"Config":"{cfg_name}","RepoTags":["a:1"],"Layers":["g.tar","b.tar"]}}]"#);
        let a = tar_of(&[
            Item::File(&cfg_name, &config),
            Item::File("g.tar", &good),
            Item::File("b.tar", &bad),
            Item::File("manifest.json", m.as_bytes()),
        ]);
        let err = load(&s, &a[..]).unwrap_err();
        assert!(matches!(err, ArchiveError::Verify { .. }), "{err}");
        assert_nothing_published(&s);
    }

    #[test]
    fn imports_a_rootfs_with_changes() {
        let (_d, s) = store();
        let rootfs = tar_of(&[Item::Dir("bin/"), Item::File("bin/app", b"#!/bin/sh\n")]);
        let opts = ImportOptions {
            reference: Some(Reference::parse("myimg:1").unwrap()),
            changes: vec![
                r#"CMD ["app", "--serve"]"#.to_string(),
                "ENTRYPOINT echo hi".to_string(),
                r#"ENV A=1 B="two words""#.to_string(),
                "env LEGACY some value".to_string(),
                "WORKDIR /srv".to_string(),
                "WORKDIR app".to_string(),
                "USER nobody".to_string(),
                "EXPOSE 80 53/udp 8000-8001".to_string(),
                "LABEL a=b".to_string(),
                r#"VOLUME ["/data"]"#.to_string(),
                "VOLUME /logs /cache".to_string(),
                "STOPSIGNAL SIGINT".to_string(),
            ],
            platform: None,
        };
        let record = import(&s, &gzip(&rootfs)[..], &opts).unwrap();
        let c = &record.config;
        assert_eq!(c.cmd, Some(vec!["app".to_string(), "--serve".to_string()]));
        assert_eq!(
            c.entrypoint,
            Some(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(
            c.env,
            vec![DEFAULT_PATH, "A=1", "B=two words", "LEGACY=some value"]
        );
        assert_eq!(c.working_dir, "/srv/app");
        assert_eq!(c.user, "nobody");
        let ports: Vec<&String> = c.exposed_ports.keys().collect();
        assert_eq!(ports, ["80/tcp", "53/udp", "8000/tcp", "8001/tcp"]);
        assert_eq!(c.labels.get("a").map(String::as_str), Some("b"));
        let vols: Vec<&String> = c.volumes.keys().collect();
        assert_eq!(vols, ["/data", "/logs", "/cache"]);
        assert_eq!(c.stop_signal, "SIGINT");

        // The config blob is what the id names, and says what the record says.
        let blob = s.read_blob(&record.id).unwrap();
        let parsed: ConfigBlob = serde_json::from_slice(&blob).unwrap();
        assert_eq!(parsed.config, record.config);
        assert_eq!(parsed.architecture, Platform::host().architecture);
        assert_eq!(parsed.os, "linux");
        assert_eq!(parsed.rootfs.diff_ids, vec![Digest::of(&rootfs)]);
        assert_eq!(record.layers[0].diff_id, Digest::of(&rootfs));
        assert!(parsed
            .created
            .is_some_and(|c| c.ends_with('Z') && c.len() == 30));
        assert_eq!(
            record.layers[0].media_type,
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let dir = s.layer_dir(&record.layers[0].diff_id);
        assert_eq!(fs::read(dir.join("bin/app")).unwrap(), b"#!/bin/sh\n");
        assert_eq!(
            s.resolve("docker.io/library/myimg:1").unwrap().unwrap().id,
            record.id
        );
        assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);

        // An explicit platform and a plain tar; ENV replaces PATH.
        let opts = ImportOptions {
            reference: None,
            changes: vec!["ENV PATH=/opt/bin".to_string()],
            platform: Some(Platform::parse("linux/arm64").unwrap()),
        };
        let record = import(&s, &rootfs[..], &opts).unwrap();
        assert_eq!(record.architecture, "arm64");
        assert_eq!(record.config.env, vec!["PATH=/opt/bin"]);
        assert_eq!(
            record.layers[0].media_type,
            "application/vnd.oci.image.layer.v1.tar"
        );
    }

    #[test]
    fn invalid_changes_name_the_change_and_write_nothing() {
        let (_d, s) = store();
        let rootfs = tar_of(&[Item::File("f", b"x")]);
        let cases = [
            (
                "FOO bar",
                "invalid change \"FOO bar\": unknown instruction FOO",
            ),
            ("RUN make", "RUN is not supported"),
            ("CMD", "CMD requires an argument"),
            ("EXPOSE 99999", "invalid port \"99999\""),
            ("EXPOSE 80/xyz", "invalid protocol"),
            ("EXPOSE 90-80", "invalid port range"),
            ("STOPSIGNAL SIGNOPE", "invalid signal"),
            ("ENV A=1 B", "ENV expects KEY=value"),
            ("LABEL a=\"unterminated", "cannot parse"),
            ("ENV LONELY", "has no value"),
        ];
        for (change, needle) in cases {
            let opts = ImportOptions {
                changes: vec![change.to_string()],
                ..ImportOptions::default()
            };
            let err = import(&s, &rootfs[..], &opts).unwrap_err().to_string();
            assert!(err.contains(needle), "{change}: {err}");
        }
        assert_nothing_published(&s);
    }

    #[test]
    fn a_hostile_rootfs_is_refused_and_leaves_nothing() {
        let (_d, s) = store();
        let rootfs = tar_of(&[Item::File("../escape", b"x")]);
        let err = import(&s, &rootfs[..], &ImportOptions::default()).unwrap_err();
        assert!(matches!(err, ArchiveError::Rootfs(_)), "{err}");
        assert_nothing_published(&s);
    }

    #[test]
    fn signals_and_dates() {
        for ok in ["SIGTERM", "term", "9", "SIGRTMIN+3", "RTMAX-1"] {
            assert!(is_signal(ok), "{ok}");
        }
        for bad in ["", "0", "65", "SIGFOO", "RTMIN+99"] {
            assert!(!is_signal(bad), "{bad}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn member_paths_are_normalised() {
        assert_eq!(normalize("./a//b/./c").unwrap(), "a/b/c");
        assert!(normalize("a/../b").is_err());
        assert_eq!(resolve_dots("x/../y.tar").unwrap(), "y.tar");
        assert!(resolve_dots("x/../../y").is_err());
        assert_eq!(
            config_name_digest(&format!("./{}.json", "a".repeat(64))),
            format!("sha256:{}", "a".repeat(64)).parse().ok()
        );
        assert_eq!(config_name_digest("config.json"), None);
    }
}
