//! `rcompose cp`: files and directories between a service's running container and the host,
//! with docker's destination rules. The container side is reached through its root
//! (`/proc/<pid>/root`) with `openat2(RESOLVE_IN_ROOT)`: a link in the container never leads
//! out of it (`watch::sync::ContainerFs`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::Global;
use crate::supervisor::state::Status;
use crate::watch::sync::ContainerFs;

#[derive(Debug, clap::Args)]
pub struct CpArgs {
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// SERVICE:SRC_PATH or SRC_PATH
    pub source: String,
    /// DEST_PATH or SERVICE:DEST_PATH
    pub destination: String,
}

/// `SERVICE:PATH` as (service, path); a host path (absolute, `./`, `../`, or without a colon)
/// is `None`.
fn container_arg(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    let (service, path) = arg.split_once(':')?;
    (!service.is_empty() && !service.contains('/')).then_some((service, path))
}

/// A container path made absolute (relative ones are relative to `/`, as docker cp takes them
/// from the container's root when no working directory applies).
fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

/// The final name of a path, `None` for `/` or a path ending in `/.` (copy the contents).
fn base_name(path: &str) -> Option<String> {
    if path.ends_with("/.") || path == "." {
        return None;
    }
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}

pub fn run(global: &Global, args: CpArgs) -> Result<i32> {
    let (service, into_container) = match (
        container_arg(&args.source),
        container_arg(&args.destination),
    ) {
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("one of the source and destination must be SERVICE:PATH"),
        (Some((s, _)), None) => (s.to_string(), false),
        (None, Some((s, _))) => (s.to_string(), true),
    };
    if args.source == "-" || args.destination == "-" {
        bail!("copying a tar stream (\"-\") is not supported yet: give a path");
    }
    let target = super::project::target(global)?;
    let st = super::project::state(&target.name)?;
    let Some(record) = st
        .containers
        .iter()
        .find(|c| c.service == service && c.number == args.index && !c.oneoff)
    else {
        if let Some(l) = &target.loaded {
            if !l.project.services.contains_key(&service) {
                bail!("no such service: {service}");
            }
        }
        bail!("service {service:?} has no container {}", args.index);
    };
    let (Status::Running | Status::Paused, Some(pid)) = (record.status, record.pid) else {
        bail!(
            "container {} is not running: rcompose cp needs a running container",
            record.name
        );
    };
    if global.dry_run {
        if into_container {
            std::fs::symlink_metadata(&args.source)
                .with_context(|| format!("cannot copy {}", args.source))?;
        }
        // The container's side by its name, as the copy would reach it.
        let side = |arg: &str| match container_arg(arg) {
            Some((_, path)) => format!("{}:{path}", record.name),
            None => arg.to_string(),
        };
        let mut plan = crate::plan::ops::Plan::default();
        plan.push(
            crate::plan::ops::Op::Copy {
                from: side(&args.source),
                to: side(&args.destination),
            },
            crate::plan::ops::Cause::Requested,
            vec![],
        );
        super::dryrun::print(&plan);
        return Ok(0);
    }
    let fs = ContainerFs::open(pid, None)
        .with_context(|| format!("cannot open the filesystem of {}", record.name))?;

    if into_container {
        let (_, dest) = container_arg(&args.destination).context("destination")?;
        let dest = absolute(dest);
        let source = PathBuf::from(&args.source);
        let meta = std::fs::symlink_metadata(&source)
            .with_context(|| format!("cannot copy {}", source.display()))?;
        let contents_only = base_name(&args.source).is_none();
        if fs.is_dir(&dest) {
            if contents_only && meta.is_dir() {
                for entry in std::fs::read_dir(&source)
                    .with_context(|| format!("cannot read {}", source.display()))?
                {
                    let entry = entry?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    fs.copy(
                        &entry.path(),
                        &format!("{}/{name}", dest.trim_end_matches('/')),
                        &|_| false,
                    )?;
                }
            } else {
                let name = base_name(&args.source).context("source name")?;
                fs.copy(
                    &source,
                    &format!("{}/{name}", dest.trim_end_matches('/')),
                    &|_| false,
                )?;
            }
        } else {
            if dest.ends_with('/') {
                bail!("{service}:{dest}: no such directory in the container");
            }
            if meta.is_dir() && fs.exists(&dest) {
                bail!(
                    "cannot copy the directory {} to the file {service}:{dest}",
                    source.display()
                );
            }
            fs.copy(&source, &dest, &|_| false)?;
        }
    } else {
        let (_, src) = container_arg(&args.source).context("source")?;
        let src = absolute(src);
        let dest = PathBuf::from(&args.destination);
        let src_path = src.strip_suffix("/.").unwrap_or(&src);
        let src_path = if src_path.is_empty() { "/" } else { src_path };
        // The directory written into, as the user named it (a link there is the user's own and
        // is followed, as docker cp follows it), and the name created in it; nothing below it
        // is followed (`ContainerFs::copy_out`).
        let (host_dir, name) = if dest.is_dir() {
            // `SERVICE:/dir/.`: its contents into the existing directory.
            (dest.clone(), base_name(&src).map(std::ffi::OsString::from))
        } else {
            if args.destination.ends_with('/') {
                bail!("{}: no such directory", dest.display());
            }
            if dest.exists() && fs.is_dir(src_path) {
                bail!(
                    "cannot copy the directory {service}:{src} to the file {}",
                    dest.display()
                );
            }
            let name = dest
                .file_name()
                .with_context(|| format!("{}: not a name to create", dest.display()))?;
            let parent = match dest.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            (parent, Some(name.to_os_string()))
        };
        fs.copy_out(src_path, &host_dir, name.as_deref(), args.follow_link)?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_are_service_colon_path() {
        assert_eq!(container_arg("web:/etc/hosts"), Some(("web", "/etc/hosts")));
        assert_eq!(container_arg("web:rel"), Some(("web", "rel")));
        assert_eq!(container_arg("./web:/x"), None);
        assert_eq!(container_arg("/abs:path"), None);
        assert_eq!(container_arg("dir/file:x"), None);
        assert_eq!(container_arg("plain"), None);
        assert_eq!(container_arg(":x"), None);
    }

    #[test]
    fn base_names_and_contents_only() {
        assert_eq!(base_name("/a/b"), Some("b".into()));
        assert_eq!(base_name("/a/b/"), Some("b".into()));
        assert_eq!(base_name("/a/b/."), None);
        assert_eq!(base_name("/"), None);
        assert_eq!(absolute("x/y"), "/x/y");
    }
}
