//! Image references and platforms, normalised the way Docker does it.
//!
//! The grammar is docker/distribution's (`reference` package): an optional
//! registry domain, slash-separated lowercase path components, an optional
//! `:tag` and an optional `@algorithm:hex` digest. Normalisation follows
//! `ParseNormalizedNamed`: a first component without `.` or `:` that is not
//! `localhost` is part of the path on Docker Hub (`docker.io`), and
//! single-component Hub repositories live under `library/`.

use std::fmt;

use thiserror::Error;

/// The registry short names resolve to.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The host that actually serves the API for [`DEFAULT_REGISTRY`].
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// The tag implied when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

/// Docker's limit on the length of a full repository name (registry included).
const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// A tag is one word character followed by at most 127 more characters.
const TAG_LENGTH_MAX: usize = 128;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference format: empty image reference")]
    Empty,
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexIdentifier(String),
    #[error("invalid reference format: repository name in {reference:?} is longer than {max} characters")]
    NameTooLong { reference: String, max: usize },
    #[error("invalid reference format: {reason} in {reference:?}")]
    Invalid { reference: String, reason: String },
    #[error("invalid reference format: invalid tag {tag:?} in {reference:?}")]
    InvalidTag { reference: String, tag: String },
    #[error("invalid digest {digest:?} in {reference:?}: {reason}")]
    InvalidDigest {
        reference: String,
        digest: String,
        reason: String,
    },
    #[error("invalid platform {platform:?}: {reason}")]
    InvalidPlatform { platform: String, reason: String },
}

/// A fully normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry domain, with an optional port (`docker.io`, `localhost:5000`).
    pub registry: String,
    /// Repository path inside the registry (`library/redis`).
    pub repository: String,
    /// Tag as written; `None` when the user gave none (see [`Reference::tag_or_latest`]).
    pub tag: Option<String>,
    /// Digest (`sha256:<hex>`), kept alongside the tag when both are given.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalises a reference the way `docker pull` does.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if input.len() == 64 && is_lower_hex(input) {
            return Err(ReferenceError::HexIdentifier(input.to_string()));
        }
        let invalid = |reason: &str| ReferenceError::Invalid {
            reference: input.to_string(),
            reason: reason.to_string(),
        };

        // Neither the name nor the tag may contain '@', so the first one starts the digest.
        let (name_and_tag, digest) = match input.split_once('@') {
            Some((left, digest)) => (left, Some(digest)),
            None => (input, None),
        };
        // A ':' after the last '/' separates the tag; earlier ones belong to a port.
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].find(':') {
            Some(i) => (
                &name_and_tag[..last_slash + i],
                Some(&name_and_tag[last_slash + i + 1..]),
            ),
            None => (name_and_tag, None),
        };
        if name.is_empty() {
            return Err(invalid("missing repository name"));
        }
        if let Some(tag) = tag {
            if !is_valid_tag(tag) {
                return Err(ReferenceError::InvalidTag {
                    reference: input.to_string(),
                    tag: tag.to_string(),
                });
            }
        }
        if let Some(digest) = digest {
            validate_digest(digest).map_err(|reason| ReferenceError::InvalidDigest {
                reference: input.to_string(),
                digest: digest.to_string(),
                reason,
            })?;
        }

        let (registry, path) = split_domain(name);
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(path.to_string()));
        }
        if !is_valid_domain(registry) {
            return Err(invalid(&format!("invalid registry {registry:?}")));
        }
        if path.is_empty() || !path.split('/').all(is_valid_path_component) {
            return Err(invalid(&format!("invalid repository name {path:?}")));
        }

        let registry = if registry == "index.docker.io" {
            DEFAULT_REGISTRY
        } else {
            registry
        };
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        if registry.len() + 1 + repository.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong {
                reference: input.to_string(),
                max: NAME_TOTAL_LENGTH_MAX,
            });
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository,
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// `registry/repository`, without tag or digest (`docker.io/library/redis`).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Docker's short name: Hub references lose `docker.io/` and `library/`.
    pub fn familiar_name(&self) -> String {
        if self.registry != DEFAULT_REGISTRY {
            return self.name();
        }
        match self.repository.strip_prefix("library/") {
            Some(rest) if !rest.contains('/') => rest.to_string(),
            _ => self.repository.clone(),
        }
    }

    /// Docker's short form with the implied tag made explicit: `redis:7`,
    /// `user/app:latest`, `localhost:5000/x@sha256:…`.
    pub fn familiar(&self) -> String {
        format!("{}{}", self.familiar_name(), self.suffix())
    }

    /// The host to open connections to: Docker Hub's API is not served at `docker.io`.
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// The same repository, tag and digest on another registry (a mirror).
    pub fn with_registry(&self, registry: &str) -> Reference {
        Reference {
            registry: registry.to_string(),
            ..self.clone()
        }
    }

    /// The tag, or `latest` when none was given.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or(DEFAULT_TAG)
    }

    /// Whether the reference pins a digest (then the tag, if any, is informative only).
    pub fn is_digest(&self) -> bool {
        self.digest.is_some()
    }

    /// What the registry's manifest endpoint is asked for: the digest when pinned, else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .unwrap_or_else(|| self.tag_or_latest())
    }

    fn suffix(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(tag), Some(digest)) => format!(":{tag}@{digest}"),
            (Some(tag), None) => format!(":{tag}"),
            (None, Some(digest)) => format!("@{digest}"),
            (None, None) => format!(":{DEFAULT_TAG}"),
        }
    }
}

/// The full normalised form, `docker.io/library/redis:latest` (tag implied when absent).
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.name(), self.suffix())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// The API host for a registry name (`docker.io` → `registry-1.docker.io`).
pub fn api_host(registry: &str) -> &str {
    if registry == DEFAULT_REGISTRY {
        DOCKER_HUB_API_HOST
    } else {
        registry
    }
}

/// Splits `name` into (domain, path) as docker's `splitDockerDomain` does.
fn split_domain(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DEFAULT_REGISTRY, name),
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `[\w][\w.-]{0,127}`
fn is_valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    match bytes.split_first() {
        Some((&first, rest)) => {
            tag.len() <= TAG_LENGTH_MAX
                && word(first)
                && rest.iter().all(|&b| word(b) || b == b'.' || b == b'-')
        }
        None => false,
    }
}

/// A path component: `[a-z0-9]+` runs joined by `.`, `_`, `__` or one or more `-`.
fn is_valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let sep_start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[sep_start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
}

/// `host[:port]` where host is dot-separated labels or a bracketed IPv6 address.
fn is_valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return false,
            },
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    host.is_none_or(|host| {
        !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    })
}

/// Validates `algorithm:encoded` as go-digest does for the algorithms registries use.
pub fn validate_digest(digest: &str) -> Result<(), String> {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return Err("missing algorithm".to_string());
    };
    let hex_len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        "" => return Err("missing algorithm".to_string()),
        other => return Err(format!("unsupported digest algorithm {other:?}")),
    };
    if encoded.len() != hex_len || !is_lower_hex(encoded) {
        return Err(format!(
            "{algorithm} digests are {hex_len} lowercase hexadecimal characters"
        ));
    }
    Ok(())
}

/// An OCI platform (`os/architecture[/variant]`) with Go's GOOS/GOARCH names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
        .normalized()
    }

    /// Parses `os[/arch[/variant]]` (compose's `platform:`), or a bare architecture,
    /// normalising aliases (`x86_64`, `aarch64`, `armhf`…) as containerd does.
    pub fn parse(spec: &str) -> Result<Platform, ReferenceError> {
        let invalid = |reason: &str| ReferenceError::InvalidPlatform {
            platform: spec.to_string(),
            reason: reason.to_string(),
        };
        let lower = spec.to_ascii_lowercase();
        let parts: Vec<&str> = lower.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(invalid("empty component"));
        }
        if parts.iter().any(|p| {
            !p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        }) {
            return Err(invalid("unexpected character"));
        }
        let host = Platform::host();
        let platform = match parts.as_slice() {
            [single] if is_known_os(single) => {
                Platform::new(single, &host.architecture, None).with_host_variant(&host)
            }
            [single] if is_known_arch(single) => Platform::new(&host.os, single, None),
            [single] => {
                return Err(invalid(&format!(
                    "unknown operating system or architecture {single:?}"
                )))
            }
            [os, arch] => Platform::new(os, arch, None),
            [os, arch, variant] => Platform::new(os, arch, Some(variant)),
            _ => return Err(invalid("expected os/architecture[/variant]")),
        };
        if !is_known_os(&platform.os) {
            return Err(invalid(&format!(
                "unknown operating system {:?}",
                platform.os
            )));
        }
        if !is_known_arch(&platform.architecture) {
            return Err(invalid(&format!(
                "unknown architecture {:?}",
                platform.architecture
            )));
        }
        Ok(platform)
    }

    /// The platform this binary runs on, in Go's names.
    pub fn host() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            // Rust's "arm" target is usually armv7 hard-float; that is what images publish.
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "powerpc64" => ("ppc64", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            "loongarch64" => ("loong64", None),
            "mips64" => ("mips64", None),
            other => (other, None),
        };
        Platform::new(std::env::consts::OS, arch, variant)
    }

    fn with_host_variant(mut self, host: &Platform) -> Platform {
        if self.architecture == host.architecture {
            self.variant = host.variant.clone();
        }
        self
    }

    /// containerd's normalisation: aliases to Go names, default and redundant variants.
    pub fn normalized(&self) -> Platform {
        let os = match self.os.to_ascii_lowercase().as_str() {
            "macos" => "darwin".to_string(),
            other => other.to_string(),
        };
        let variant = self.variant.as_deref().map(str::to_ascii_lowercase);
        let (arch, variant): (&str, Option<String>) = match (
            self.architecture.to_ascii_lowercase().as_str(),
            variant.as_deref(),
        ) {
            ("i386", _) => ("386", None),
            ("x86_64" | "x86-64" | "amd64", Some("v1")) => ("amd64", None),
            ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v.map(str::to_string)),
            ("aarch64" | "arm64", Some("8" | "v8" | "v8.0")) => ("arm64", None),
            ("aarch64" | "arm64", Some("9" | "9.0" | "v9.0")) => ("arm64", Some("v9".into())),
            ("aarch64" | "arm64", v) => ("arm64", v.map(str::to_string)),
            ("armhf", _) => ("arm", Some("v7".into())),
            ("armel", _) => ("arm", Some("v6".into())),
            ("arm", None | Some("7")) => ("arm", Some("v7".into())),
            ("arm", Some(v @ ("5" | "6" | "8"))) => ("arm", Some(format!("v{v}"))),
            (arch, v) => {
                return Platform {
                    os,
                    architecture: arch.to_string(),
                    variant: v.map(str::to_string),
                }
            }
        };
        Platform {
            os,
            architecture: arch.to_string(),
            variant,
        }
    }

    /// The platforms this one can run, best first (containerd's `platforms.Only`):
    /// itself, older amd64 micro-architecture levels and 386 on amd64, older ARM
    /// variants on ARM, and 32-bit ARM on arm64.
    pub fn compatible(&self) -> Vec<Platform> {
        let me = self.normalized();
        let mut out = vec![me.clone()];
        let version = |v: &Option<String>| {
            v.as_deref()
                .and_then(|v| v.strip_prefix('v'))
                .and_then(|n| n.parse::<u32>().ok())
        };
        let with = |arch: &str, variant: Option<String>| {
            Platform {
                os: me.os.clone(),
                architecture: arch.to_string(),
                variant,
            }
            .normalized()
        };
        // Levels past the last one that exists (amd64 v4, arm v8) add nothing below it: the
        // loops start there, so `v4294967295` is not four billion platforms.
        match me.architecture.as_str() {
            "amd64" => {
                if let Some(level) = version(&me.variant) {
                    for l in (1..level.min(5)).rev() {
                        out.push(with("amd64", Some(format!("v{l}"))));
                    }
                }
                out.push(with("386", None));
            }
            "arm" => {
                if let Some(level) = version(&me.variant) {
                    for l in (5..level.min(9)).rev() {
                        out.push(with("arm", Some(format!("v{l}"))));
                    }
                }
            }
            "arm64" => {
                let level = version(&me.variant).unwrap_or(8);
                for l in (5..=level.min(8)).rev() {
                    out.push(with("arm", Some(format!("v{l}"))));
                }
            }
            _ => {}
        }
        out
    }

    /// Whether an image built for `candidate` runs here.
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.match_rank(candidate).is_some()
    }

    /// How well `candidate` fits (0 is an exact match); `None` when it does not run here.
    pub fn match_rank(&self, candidate: &Platform) -> Option<usize> {
        let candidate = candidate.normalized();
        self.compatible().iter().position(|p| *p == candidate)
    }

    /// The index of the best candidate (first one among equals), as when choosing
    /// a manifest from an image index.
    /// Choose among an index's entries (`None` for an entry without a platform): the position
    /// of the best match, or the platforms on offer (`"none"` when there are none) to name in
    /// the error.
    pub fn choose(&self, entries: &[Option<Platform>]) -> Result<usize, String> {
        let candidates: Vec<(usize, &Platform)> = entries
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((i, p.as_ref()?)))
            .collect();
        match self.select(candidates.iter().map(|(_, p)| *p)) {
            Some(k) => Ok(candidates[k].0),
            None if candidates.is_empty() => Err("none".to_string()),
            None => Err(candidates
                .iter()
                .map(|(_, p)| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")),
        }
    }

    pub fn select<'a, I>(&self, candidates: I) -> Option<usize>
    where
        I: IntoIterator<Item = &'a Platform>,
    {
        let compatible = self.compatible();
        candidates
            .into_iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let c = c.normalized();
                compatible
                    .iter()
                    .position(|p| *p == c)
                    .map(|rank| (rank, i))
            })
            .min()
            .map(|(_, i)| i)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

fn is_known_os(os: &str) -> bool {
    matches!(
        os,
        "linux"
            | "windows"
            | "darwin"
            | "macos"
            | "freebsd"
            | "netbsd"
            | "openbsd"
            | "dragonfly"
            | "solaris"
            | "illumos"
            | "aix"
            | "android"
            | "ios"
            | "plan9"
            | "js"
            | "wasip1"
    )
}

fn is_known_arch(arch: &str) -> bool {
    matches!(
        arch,
        "386"
            | "i386"
            | "amd64"
            | "x86_64"
            | "x86-64"
            | "arm"
            | "armhf"
            | "armel"
            | "arm64"
            | "aarch64"
            | "ppc64"
            | "ppc64le"
            | "s390x"
            | "riscv64"
            | "mips"
            | "mipsle"
            | "mips64"
            | "mips64le"
            | "loong64"
            | "wasm"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn full(s: &str) -> String {
        match Reference::parse(s) {
            Ok(r) => r.to_string(),
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn normalises_like_docker() {
        let cases = [
            ("redis", "docker.io/library/redis:latest"),
            ("redis:7", "docker.io/library/redis:7"),
            ("user/app", "docker.io/user/app:latest"),
            ("docker.io/redis", "docker.io/library/redis:latest"),
            ("index.docker.io/redis:6", "docker.io/library/redis:6"),
            ("index.docker.io/user/app", "docker.io/user/app:latest"),
            ("docker.io/library/redis", "docker.io/library/redis:latest"),
            ("localhost/x", "localhost/x:latest"),
            ("localhost:5000/x", "localhost:5000/x:latest"),
            ("127.0.0.1:5043/a/b:tag", "127.0.0.1:5043/a/b:tag"),
            ("quay.io/coreos/etcd:v3.5", "quay.io/coreos/etcd:v3.5"),
            ("[::1]:5000/x", "[::1]:5000/x:latest"),
            ("a/b/c/d", "docker.io/a/b/c/d:latest"),
            (
                "my-app_v2.x__y---z",
                "docker.io/library/my-app_v2.x__y---z:latest",
            ),
            ("localhost:5000", "docker.io/library/localhost:5000"),
            ("Registry.Example.com/x", "Registry.Example.com/x:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(full(input), want, "{input}");
        }
    }

    #[test]
    fn digests_and_tags() {
        let r = Reference::parse(&format!("host.io/x@sha256:{HEX}")).unwrap();
        assert_eq!(r.registry, "host.io");
        assert_eq!(r.repository, "x");
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(&*format!("sha256:{HEX}")));
        assert!(r.is_digest());
        assert_eq!(r.to_string(), format!("host.io/x@sha256:{HEX}"));
        assert_eq!(r.manifest_reference(), format!("sha256:{HEX}"));

        let both = Reference::parse(&format!("x:tag@sha256:{HEX}")).unwrap();
        assert_eq!(both.tag.as_deref(), Some("tag"));
        assert!(both.is_digest());
        assert_eq!(
            both.to_string(),
            format!("docker.io/library/x:tag@sha256:{HEX}")
        );
        assert_eq!(both.familiar(), format!("x:tag@sha256:{HEX}"));

        let port = Reference::parse(&format!("localhost:5000/x@sha256:{HEX}")).unwrap();
        assert_eq!(port.registry, "localhost:5000");
        assert_eq!(port.tag, None);
    }

    #[test]
    fn familiar_and_helpers() {
        let r = Reference::parse("redis:7").unwrap();
        assert_eq!(r.familiar(), "redis:7");
        assert_eq!(r.familiar_name(), "redis");
        assert_eq!(r.name(), "docker.io/library/redis");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.tag_or_latest(), "7");
        assert!(!r.is_digest());

        let u = Reference::parse("user/app").unwrap();
        assert_eq!(u.tag, None);
        assert_eq!(u.tag_or_latest(), "latest");
        assert_eq!(u.familiar(), "user/app:latest");
        assert_eq!(u.manifest_reference(), "latest");

        // library/ is only hidden for single-component names.
        let nested = Reference::parse("library/a/b").unwrap();
        assert_eq!(nested.familiar(), "library/a/b:latest");

        let local = Reference::parse("localhost:5000/x:1").unwrap();
        assert_eq!(local.familiar(), "localhost:5000/x:1");
        assert_eq!(local.api_host(), "localhost:5000");

        let mirrored = r.with_registry("127.0.0.1:5000");
        assert_eq!(mirrored.to_string(), "127.0.0.1:5000/library/redis:7");
        assert_eq!(mirrored.api_host(), "127.0.0.1:5000");
        assert_eq!("redis:7".parse::<Reference>().unwrap(), r);
    }

    #[test]
    fn rejects_invalid_references() {
        let bad = [
            "",
            ":tag",
            "@sha256:abc",
            "Redis",
            "user/App",
            "a//b",
            "/a",
            "a/",
            "a:",
            "a:-tag",
            "a:tag with space",
            "a b",
            "a..b",
            "a-",
            "-a",
            "a___b",
            "a/.b",
            "host:port/x",
            "host:/x",
            "-host.com/x",
            "[::1/x",
            "x@sha256:short",
            "x@sha256:",
            "x@md5:d41d8cd98f00b204e9800998ecf8427e",
            "x@sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "x@",
            "x@@sha256:abc",
        ];
        for input in bad {
            assert!(Reference::parse(input).is_err(), "{input:?} accepted");
        }
        assert_eq!(
            Reference::parse("Redis"),
            Err(ReferenceError::Uppercase("Redis".to_string()))
        );
        assert_eq!(
            Reference::parse(HEX),
            Err(ReferenceError::HexIdentifier(HEX.to_string()))
        );
        let err = Reference::parse("x@sha256:1234").unwrap_err().to_string();
        assert!(err.contains("sha256 digests are 64"), "{err}");
        let err = Reference::parse(&format!("x@sha1:{HEX}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported digest algorithm"), "{err}");
    }

    #[test]
    fn length_limits() {
        let tag128 = format!("a:{}", "t".repeat(128));
        assert!(Reference::parse(&tag128).is_ok());
        let tag129 = format!("a:{}", "t".repeat(129));
        assert!(matches!(
            Reference::parse(&tag129),
            Err(ReferenceError::InvalidTag { .. })
        ));
        // "docker.io/library/" is 18 characters of the 255.
        let ok = "a".repeat(255 - 18);
        assert!(Reference::parse(&ok).is_ok());
        let long = "a".repeat(255 - 17);
        assert!(matches!(
            Reference::parse(&long),
            Err(ReferenceError::NameTooLong { .. })
        ));
        let sha512 = format!("x@sha512:{}", "a".repeat(128));
        assert!(Reference::parse(&sha512).is_ok());
    }

    #[test]
    fn platform_parsing_and_normalisation() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p, Platform::new("linux", "arm64", None));
        assert_eq!(p.to_string(), "linux/arm64");
        assert_eq!(
            Platform::parse("linux/arm/v7").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("linux/arm").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("linux/armhf").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("linux/armel").unwrap().to_string(),
            "linux/arm/v6"
        );
        assert_eq!(
            Platform::parse("Linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/amd64/v1").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/aarch64").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(
            Platform::parse("linux/i386").unwrap().to_string(),
            "linux/386"
        );
        assert_eq!(
            Platform::parse("linux/ppc64le").unwrap().architecture,
            "ppc64le"
        );
        assert_eq!(Platform::parse("arm64").unwrap().architecture, "arm64");
        assert_eq!(Platform::parse("linux").unwrap().os, "linux");
        for bad in [
            "",
            "linux/",
            "/amd64",
            "linux/amd64/v8/x",
            "linux/pdp11",
            "beos/amd64",
            "linux/am d64",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn host_platform_uses_go_names() {
        let host = Platform::host();
        assert_eq!(host.os, "linux");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(host.to_string(), "linux/amd64");
        }
        if cfg!(target_arch = "aarch64") {
            assert_eq!(host.to_string(), "linux/arm64");
        }
        assert!(host.matches(&host));
    }

    #[test]
    fn platform_matching() {
        let arm64 = Platform::parse("linux/arm64").unwrap();
        assert!(arm64.matches(&Platform::new("linux", "arm64", Some("v8"))));
        assert!(arm64.matches(&Platform::new("linux", "aarch64", None)));
        assert!(arm64.matches(&Platform::new("linux", "arm", Some("v7"))));
        assert!(!arm64.matches(&Platform::new("linux", "amd64", None)));
        assert!(!arm64.matches(&Platform::new("windows", "arm64", None)));

        let armv6 = Platform::parse("linux/arm/v6").unwrap();
        assert!(armv6.matches(&Platform::new("linux", "arm", Some("v5"))));
        assert!(!armv6.matches(&Platform::new("linux", "arm", Some("v7"))));

        let amd64 = Platform::parse("linux/amd64").unwrap();
        assert_eq!(
            amd64.match_rank(&Platform::new("linux", "amd64", None)),
            Some(0)
        );
        assert_eq!(
            amd64.match_rank(&Platform::new("linux", "386", None)),
            Some(1)
        );
        assert!(!amd64.matches(&Platform::new("linux", "amd64", Some("v3"))));
        let v3 = Platform::parse("linux/amd64/v3").unwrap();
        assert!(v3.matches(&Platform::new("linux", "amd64", Some("v2"))));
        assert!(v3.matches(&Platform::new("linux", "amd64", None)));

        // An index listing 386 before amd64 still yields amd64 on an amd64 host.
        let index = [
            Platform::new("linux", "386", None),
            Platform::new("linux", "arm64", Some("v8")),
            Platform::new("linux", "amd64", None),
        ];
        assert_eq!(amd64.select(&index), Some(2));
        assert_eq!(arm64.select(&index), Some(1));
        assert_eq!(Platform::parse("linux/s390x").unwrap().select(&index), None);
        let only_arm = [
            Platform::new("linux", "arm", Some("v6")),
            Platform::new("linux", "arm", Some("v7")),
        ];
        assert_eq!(arm64.select(&only_arm), Some(1));
    }

    /// Found by the image_reference fuzz target: `platform: linux/arm/v02129693963` made one
    /// platform per level below it (out of memory); levels past the last real one add the
    /// real ones below it only.
    #[test]
    fn huge_variant_levels_are_bounded() {
        let variants = |spec: &str| -> Vec<Option<String>> {
            Platform::parse(spec)
                .unwrap()
                .compatible()
                .into_iter()
                .map(|p| p.variant)
                .collect()
        };
        let v = |s: &str| Some(s.to_string());
        assert_eq!(
            variants("linux/arm/v02129693963"),
            [v("v02129693963"), v("v8"), v("v7"), v("v6"), v("v5")]
        );
        assert_eq!(
            variants("linux/arm/v9"),
            [v("v9"), v("v8"), v("v7"), v("v6"), v("v5")]
        );
        assert_eq!(
            variants("linux/arm/v8"),
            [v("v8"), v("v7"), v("v6"), v("v5")]
        );
        assert_eq!(
            variants("linux/amd64/v4294967295"),
            [v("v4294967295"), v("v4"), v("v3"), v("v2"), None, None]
        );
        assert_eq!(variants("linux/amd64/v3"), [v("v3"), v("v2"), None, None]);
    }
}
