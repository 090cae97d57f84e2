//! A service's `configs` and `secrets` as files in its container, as docker compose provides
//! them without swarm: a `file:` source is bind-mounted read-only, `environment:` and
//! `content:` sources are written out; `uid`, `gid` and `mode` are honoured (a file source that
//! asks for any of them is copied, so the host's file keeps its own owner and mode).
//!
//! Secrets go to `/run/secrets/<target or name>`, configs to `/<target or name>`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::compose::environment::Environment;
use crate::compose::model::{FileObjectConfig, FileReferenceConfig, Project, ServiceConfig};
use crate::runtime::rootfs::MountRequest;

#[derive(Debug, thiserror::Error)]
pub enum ConfigsError {
    #[error("service {service}: {kind} {name} is not defined in the project")]
    Undefined {
        service: String,
        kind: Kind,
        name: String,
    },
    #[error("{kind} {name}: external {kind}s need a swarm, which rcompose does not provide")]
    External { kind: Kind, name: String },
    #[error("{kind} {name}: environment variable {variable} is not set")]
    Unset {
        kind: Kind,
        name: String,
        variable: String,
    },
    #[error("{kind} {name}: file {path} does not exist")]
    MissingFile {
        kind: Kind,
        name: String,
        path: PathBuf,
    },
    #[error("{kind} {name}: the content is not known (environment or content source)")]
    NoContent { kind: Kind, name: String },
    #[error("service {service}: invalid {what} {value:?} for {kind} {name}")]
    Invalid {
        service: String,
        kind: Kind,
        name: String,
        what: &'static str,
        value: String,
    },
    #[error("{kind} {name}: cannot write {path}: {source}")]
    Write {
        kind: Kind,
        name: String,
        path: PathBuf,
        source: io::Error,
    },
}

pub type Result<T, E = ConfigsError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Config,
    Secret,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Config => "config",
            Kind::Secret => "secret",
        })
    }
}

impl Kind {
    fn key(self, name: &str) -> String {
        format!("{self}:{name}")
    }

    fn definitions(self, project: &Project) -> &indexmap::IndexMap<String, FileObjectConfig> {
        match self {
            Kind::Config => &project.configs,
            Kind::Secret => &project.secrets,
        }
    }

    fn references(self, service: &ServiceConfig) -> &[FileReferenceConfig] {
        match self {
            Kind::Config => &service.configs,
            Kind::Secret => &service.secrets,
        }
    }

    /// Where a reference lands in the container: cleaned as every container path is
    /// (`paths::container_path`), so `../../etc/x` under `/run/secrets` is `/etc/x`, as the
    /// engine reads it.
    fn target(self, reference: &FileReferenceConfig) -> String {
        let given = if reference.target.is_empty() {
            &reference.source
        } else {
            &reference.target
        };
        let full = match self {
            _ if given.starts_with('/') => given.clone(),
            Kind::Secret => format!("/run/secrets/{given}"),
            Kind::Config => format!("/{given}"),
        };
        // Always absolute here, so never `None`.
        crate::paths::container_path(&full).unwrap_or(full)
    }
}

/// The contents that only the client knows (environment values, and inline content, which the
/// project's serialized form leaves out for secrets), keyed `secret:<name>` / `config:<name>`,
/// for the definitions the selected services use.
pub fn client_contents(project: &Project, env: &Environment) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for kind in [Kind::Config, Kind::Secret] {
        let used = project
            .services
            .values()
            .flat_map(|s| kind.references(s).iter().map(|r| r.source.as_str()));
        for name in used {
            let Some(def) = kind.definitions(project).get(name) else {
                continue; // named by `mounts` with the service
            };
            if !def.environment.is_empty() {
                let value = env
                    .get(&def.environment)
                    .cloned()
                    .or_else(|| std::env::var(&def.environment).ok())
                    .ok_or_else(|| ConfigsError::Unset {
                        kind,
                        name: name.to_string(),
                        variable: def.environment.clone(),
                    })?;
                out.insert(kind.key(name), value);
            } else if !def.content.is_empty() {
                out.insert(kind.key(name), def.content.clone());
            }
        }
    }
    Ok(out)
}

/// Writes the files of `service`'s configs and secrets under `dir` (the container's own
/// directory) and returns their mounts. `contents`: from [`client_contents`]; `base`: the
/// project directory, for relative `file:` paths.
pub fn mounts(
    project: &Project,
    service: &ServiceConfig,
    contents: &BTreeMap<String, String>,
    base: &Path,
    dir: &Path,
) -> Result<Vec<MountRequest>> {
    let mut requests = Vec::new();
    for kind in [Kind::Config, Kind::Secret] {
        for reference in kind.references(service) {
            let name = reference.source.as_str();
            let def =
                kind.definitions(project)
                    .get(name)
                    .ok_or_else(|| ConfigsError::Undefined {
                        service: service.name.clone(),
                        kind,
                        name: name.to_string(),
                    })?;
            if def.external {
                return Err(ConfigsError::External {
                    kind,
                    name: name.to_string(),
                });
            }
            let invalid = |what: &'static str, value: &str| ConfigsError::Invalid {
                service: service.name.clone(),
                kind,
                name: name.to_string(),
                what,
                value: value.to_string(),
            };
            let uid = parse_id(&reference.uid).ok_or_else(|| invalid("uid", &reference.uid))?;
            let gid = parse_id(&reference.gid).ok_or_else(|| invalid("gid", &reference.gid))?;
            let mode = reference.mode.map(|m| m.0);
            let target = kind.target(reference);
            let write_err = |path: &Path, source: io::Error| ConfigsError::Write {
                kind,
                name: name.to_string(),
                path: path.to_path_buf(),
                source,
            };

            let source = if !def.file.is_empty() {
                let path = base.join(&def.file);
                if !path.exists() {
                    return Err(ConfigsError::MissingFile {
                        kind,
                        name: name.to_string(),
                        path,
                    });
                }
                if uid.is_none() && gid.is_none() && mode.is_none() {
                    // As docker compose: the host's file itself, read-only.
                    requests.push(MountRequest::Bind {
                        source: path,
                        target,
                        read_only: true,
                    });
                    continue;
                }
                fs::read(&path).map_err(|e| write_err(&path, e))?
            } else {
                contents
                    .get(&kind.key(name))
                    .ok_or_else(|| ConfigsError::NoContent {
                        kind,
                        name: name.to_string(),
                    })?
                    .clone()
                    .into_bytes()
            };
            let files = dir.join(format!("{kind}s"));
            fs::create_dir_all(&files).map_err(|e| write_err(&files, e))?;
            // One file per reference: two targets of one definition may differ in owner/mode.
            let file = files.join(format!("{}-{}", requests.len(), sanitize(name)));
            write_file(&file, &source, mode.unwrap_or(0o444), uid, gid)
                .map_err(|e| write_err(&file, e))?;
            requests.push(MountRequest::Bind {
                source: file,
                target,
                read_only: true,
            });
        }
    }
    Ok(requests)
}

/// A numeric id; empty means not given (`Some(None)`); anything else is invalid (`None`).
fn parse_id(s: &str) -> Option<Option<u32>> {
    if s.is_empty() {
        return Some(None);
    }
    s.parse().ok().map(Some)
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn write_file(
    path: &Path,
    data: &[u8],
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> io::Result<()> {
    fs::write(path, data)?;
    std::os::unix::fs::chown(path, Some(uid.unwrap_or(0)), Some(gid.unwrap_or(0)))?;
    // After chown, which clears set-id bits.
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn project(yaml: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yaml"), yaml).unwrap();
        let mut opts = crate::compose::loader::Options::from_process().unwrap();
        opts.cwd = dir.path().to_path_buf();
        opts.project_name = Some("p".into());
        crate::compose::loader::load(&opts).unwrap().project
    }

    #[test]
    fn targets_follow_docker() {
        let r = |source: &str, target: &str| FileReferenceConfig {
            source: source.into(),
            target: target.into(),
            ..Default::default()
        };
        assert_eq!(Kind::Secret.target(&r("db", "")), "/run/secrets/db");
        assert_eq!(Kind::Secret.target(&r("db", "bar")), "/run/secrets/bar");
        assert_eq!(Kind::Secret.target(&r("db", "/etc/x")), "/etc/x");
        assert_eq!(Kind::Config.target(&r("cfg", "")), "/cfg");
        assert_eq!(
            Kind::Config.target(&r("cfg", "/etc/app.conf")),
            "/etc/app.conf"
        );
        assert_eq!(Kind::Secret.target(&r("db", "../../etc/y")), "/etc/y");
        assert_eq!(Kind::Config.target(&r("cfg", "/a/../../etc/x/")), "/etc/x");
    }

    #[test]
    fn ids_are_numeric_or_absent() {
        assert_eq!(parse_id(""), Some(None));
        assert_eq!(parse_id("1005"), Some(Some(1005)));
        assert_eq!(parse_id("root"), None);
    }

    #[test]
    fn environment_content_and_files_become_mounts() {
        let p = project(
            r#"
services:
  s:
    image: busybox
    configs:
      - source: inline
      - source: fromfile
    secrets:
      - source: token
        target: tok
        uid: "1005"
        gid: "1006"
        mode: 0440
configs:
  inline:
    content: hello
  fromfile:
    file: /etc/hostname
secrets:
  token:
    environment: TOKEN
"#,
        );
        let mut env = Environment::new();
        env.insert("TOKEN".into(), "s3cret".into());
        let contents = client_contents(&p, &env).unwrap();
        assert_eq!(contents["secret:token"], "s3cret");
        assert_eq!(contents["config:inline"], "hello");

        let dir = tempfile::tempdir().unwrap();
        let m = mounts(&p, &p.services["s"], &contents, Path::new("/"), dir.path()).unwrap();
        assert_eq!(m.len(), 3);
        let (mut inline, mut file, mut secret) = (None, None, None);
        for r in &m {
            let MountRequest::Bind {
                source,
                target,
                read_only,
            } = r
            else {
                panic!("not a bind: {r:?}");
            };
            assert!(read_only);
            match target.as_str() {
                "/inline" => inline = Some(source.clone()),
                "/fromfile" => file = Some(source.clone()),
                "/run/secrets/tok" => secret = Some(source.clone()),
                t => panic!("unexpected target {t}"),
            }
        }
        let inline = inline.unwrap();
        assert_eq!(std::fs::read_to_string(&inline).unwrap(), "hello");
        assert_eq!(std::fs::metadata(&inline).unwrap().mode() & 0o7777, 0o444);
        // A plain file source is the host's file itself.
        assert_eq!(file.unwrap(), PathBuf::from("/etc/hostname"));
        let secret = secret.unwrap();
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "s3cret");
        let meta = std::fs::metadata(&secret).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o440);
        if nix::unistd::geteuid().is_root() {
            assert_eq!((meta.uid(), meta.gid()), (1005, 1006));
        }
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let p = project(
            r#"
services:
  s:
    image: busybox
    secrets: [token]
secrets:
  token:
    environment: RCOMPOSE_TEST_SURELY_UNSET
"#,
        );
        let e = client_contents(&p, &Environment::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("RCOMPOSE_TEST_SURELY_UNSET") && e.contains("secret token"),
            "{e}"
        );

        let p = project(
            r#"
services:
  s:
    image: busybox
    configs: [gone]
configs:
  gone:
    file: ./no-such-file
"#,
        );
        let dir = tempfile::tempdir().unwrap();
        let e = mounts(
            &p,
            &p.services["s"],
            &BTreeMap::new(),
            dir.path(),
            dir.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("config gone") && e.contains("no-such-file"),
            "{e}"
        );
    }
}
