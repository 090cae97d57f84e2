//! A service's `volumes`: bind mounts, named volumes (plain directories under
//! `$RCOMPOSE_ROOT/volumes/<name>/_data`, filled from the image on first use as docker does),
//! anonymous volumes and tmpfs.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::compose::model::{Project, ServiceConfig};
use crate::runtime::rootfs::MountRequest;
use crate::runtime::spec::TmpfsMount;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("service {service}: volume target {target:?} must be an absolute path")]
    Target { service: String, target: String },
    #[error("service {service}: bind source {path} does not exist")]
    MissingSource { service: String, path: PathBuf },
    #[error("service {service}: cannot create {path}: {source}")]
    Create {
        service: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("service {service}: external volume {name} does not exist")]
    External { service: String, name: String },
    #[error("service {service}: volumes of type {kind:?} are not supported yet")]
    Unsupported { service: String, kind: String },
    #[error("volume {name}: cannot copy the image's {target} into it: {source}")]
    CopyUp {
        name: String,
        target: String,
        source: io::Error,
    },
}

/// The mounts of one container, and what was made for them.
#[derive(Debug, Default)]
pub struct Mounts {
    pub requests: Vec<MountRequest>,
    /// Anonymous volumes' directories: they belong to the container.
    pub anonymous: Vec<PathBuf>,
    /// Named volumes created now (not before): the project owns them until `down -v`.
    pub created: Vec<String>,
}

/// The directory of a named volume.
pub fn volume_dir(name: &str) -> PathBuf {
    crate::paths::root().join("volumes").join(name)
}

/// The name of a project volume (`<project>_<key>`, or its `name:`).
pub fn volume_name(project: &Project, key: &str) -> String {
    match project.volumes.get(key) {
        Some(cfg) if !cfg.name.is_empty() => cfg.name.clone(),
        _ => format!("{}_{key}", project.name),
    }
}

/// Prepares the mounts of `service`'s volumes. `layers` are the image's unpacked layers, lowest
/// first: a new named or anonymous volume gets the image's content at its target, as with
/// docker. On error, what this call created is removed again.
pub fn mounts_of(
    project: &Project,
    service: &ServiceConfig,
    layers: &[PathBuf],
) -> Result<Mounts, VolumeError> {
    let mut m = Mounts::default();
    match fill(project, service, layers, &mut m) {
        Ok(()) => Ok(m),
        Err(e) => {
            let created = m.created.iter().map(|n| volume_dir(n));
            for dir in m.anonymous.iter().cloned().chain(created) {
                let _ = fs::remove_dir_all(dir);
            }
            Err(e)
        }
    }
}

fn fill(
    project: &Project,
    service: &ServiceConfig,
    layers: &[PathBuf],
    m: &mut Mounts,
) -> Result<(), VolumeError> {
    let create = |path: &Path| {
        fs::create_dir_all(path).map_err(|source| VolumeError::Create {
            service: service.name.clone(),
            path: path.to_path_buf(),
            source,
        })
    };
    for v in &service.volumes {
        if !v.target.starts_with('/') {
            return Err(VolumeError::Target {
                service: service.name.clone(),
                target: v.target.clone(),
            });
        }
        match v.kind.as_str() {
            "bind" => {
                let source = PathBuf::from(&v.source);
                if !source.exists() {
                    if v.bind.as_ref().is_some_and(|b| b.create_host_path) {
                        create(&source)?;
                    } else {
                        return Err(VolumeError::MissingSource {
                            service: service.name.clone(),
                            path: source,
                        });
                    }
                }
                m.requests.push(MountRequest::Bind {
                    source,
                    target: v.target.clone(),
                    read_only: v.read_only,
                });
            }
            "volume" => {
                let anonymous = v.source.is_empty();
                let name = if anonymous {
                    random_hex(64)
                } else {
                    volume_name(project, &v.source)
                };
                let dir = volume_dir(&name);
                let data = dir.join("_data");
                let external = project.volumes.get(&v.source).is_some_and(|c| c.external);
                let fresh = !data.exists();
                if fresh && external {
                    return Err(VolumeError::External {
                        service: service.name.clone(),
                        name,
                    });
                }
                if fresh {
                    create(&data)?;
                    if anonymous {
                        m.anonymous.push(dir.clone());
                    } else {
                        m.created.push(name.clone());
                    }
                    let nocopy = v.volume.as_ref().is_some_and(|o| o.nocopy);
                    if !nocopy {
                        copy_up(layers, &v.target, &data).map_err(|source| {
                            VolumeError::CopyUp {
                                name: name.clone(),
                                target: v.target.clone(),
                                source,
                            }
                        })?;
                    }
                }
                m.requests.push(MountRequest::Bind {
                    source: data,
                    target: v.target.clone(),
                    read_only: v.read_only,
                });
            }
            "tmpfs" => {
                let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
                if let Some(t) = &v.tmpfs {
                    if !t.size.is_zero() {
                        options.push(format!("size={}", t.size.0));
                    }
                    if t.mode != 0 {
                        options.push(format!("mode={:o}", t.mode));
                    }
                }
                m.requests.push(MountRequest::Tmpfs(TmpfsMount {
                    target: v.target.clone(),
                    options,
                }));
            }
            other => {
                return Err(VolumeError::Unsupported {
                    service: service.name.clone(),
                    kind: other.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// Copies the image's content at `target` (the union of `layers`, upper layers winning, with
/// overlay whiteouts honoured) into a new volume. Symlinks are copied as links, never followed,
/// and a path component that is a symlink in the image ends the copy: the volume then starts
/// empty, as it would if the target were not a directory.
fn copy_up(layers: &[PathBuf], target: &str, dest: &Path) -> io::Result<()> {
    let rel: Vec<&str> = target.split('/').filter(|c| !c.is_empty()).collect();
    // The topmost layer that has the target decides what is there; lower layers contribute
    // until a layer makes the directory opaque or whites it out.
    let mut sources = Vec::new();
    for layer in layers.iter().rev() {
        let mut dir = layer.clone();
        let mut ok = true;
        for c in &rel {
            dir.push(c);
            match fs::symlink_metadata(&dir) {
                Ok(md) if md.is_dir() => {}
                _ => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            let opaque = is_opaque(&dir);
            sources.push(dir);
            if opaque {
                break;
            }
        } else if whiteout_on_path(layer, &rel) {
            break;
        }
    }
    // Lowest first, so upper layers overwrite.
    for src in sources.iter().rev() {
        copy_tree(src, dest)?;
    }
    Ok(())
}

fn is_opaque(dir: &Path) -> bool {
    xattr_get(dir, "trusted.overlay.opaque").is_some_and(|v| v == b"y")
}

/// Whether a layer deletes the target or one of its parents (a char device 0/0 whiteout).
fn whiteout_on_path(layer: &Path, rel: &[&str]) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut p = layer.to_path_buf();
    for c in rel {
        p.push(c);
        if let Ok(md) = fs::symlink_metadata(&p) {
            if md.file_type().is_char_device() && md.rdev() == 0 {
                return true;
            }
            if !md.is_dir() {
                return false;
            }
        } else {
            return false;
        }
    }
    false
}

fn xattr_get(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let n = std::ffi::CString::new(name).ok()?;
    let mut buf = [0u8; 8];
    // SAFETY: valid C strings and buffer.
    let rc = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (rc >= 0).then(|| buf[..rc as usize].to_vec())
}

/// Copies a directory's content, keeping modes, owners and symlinks; whiteouts remove.
fn copy_tree(src: &Path, dest: &Path) -> io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let md = fs::symlink_metadata(src)?;
    fs::set_permissions(dest, fs::Permissions::from_mode(md.mode() & 0o7777))?;
    std::os::unix::fs::lchown(dest, Some(md.uid()), Some(md.gid()))?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let md = fs::symlink_metadata(&from)?;
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            let _ = fs::remove_dir_all(&to).or_else(|_| fs::remove_file(&to));
            continue;
        }
        if let Ok(old) = fs::symlink_metadata(&to) {
            if !(old.is_dir() && ft.is_dir()) {
                if old.is_dir() {
                    fs::remove_dir_all(&to)?;
                } else {
                    fs::remove_file(&to)?;
                }
            }
        }
        if ft.is_dir() {
            if !to.exists() {
                fs::create_dir(&to)?;
            }
            copy_tree(&from, &to)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
            std::os::unix::fs::lchown(&to, Some(md.uid()), Some(md.gid()))?;
        } else if ft.is_file() {
            fs::copy(&from, &to)?;
            std::os::unix::fs::lchown(&to, Some(md.uid()), Some(md.gid()))?;
            fs::set_permissions(&to, fs::Permissions::from_mode(md.mode() & 0o7777))?;
        }
        // Devices, fifos and sockets in an image volume path are not copied.
    }
    Ok(())
}

fn random_hex(n: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; n.div_ceil(2)];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut buf);
    }
    let mut s = hex::encode(buf);
    s.truncate(n);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn copy_up_merges_layers_and_keeps_links() {
        let tmp = tempfile::tempdir().unwrap();
        let low = tmp.path().join("l0");
        let up = tmp.path().join("l1");
        fs::create_dir_all(low.join("data/sub")).unwrap();
        fs::write(low.join("data/a"), "low").unwrap();
        fs::write(low.join("data/sub/b"), "b").unwrap();
        fs::create_dir_all(up.join("data")).unwrap();
        fs::write(up.join("data/a"), "up").unwrap();
        fs::set_permissions(up.join("data/a"), fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", up.join("data/link")).unwrap();
        let dest = tmp.path().join("vol");
        fs::create_dir(&dest).unwrap();
        copy_up(&[low, up], "/data", &dest).unwrap();
        assert_eq!(fs::read_to_string(dest.join("a")).unwrap(), "up");
        assert_eq!(
            fs::metadata(dest.join("a")).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(fs::read_to_string(dest.join("sub/b")).unwrap(), "b");
        assert_eq!(
            fs::read_link(dest.join("link")).unwrap(),
            PathBuf::from("/etc/passwd")
        );
    }

    #[test]
    fn copy_up_does_not_follow_a_symlinked_target() {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("l0");
        fs::create_dir_all(&layer).unwrap();
        std::os::unix::fs::symlink("/etc", layer.join("data")).unwrap();
        let dest = tmp.path().join("vol");
        fs::create_dir(&dest).unwrap();
        copy_up(&[layer], "/data", &dest).unwrap();
        assert_eq!(fs::read_dir(&dest).unwrap().count(), 0);
    }
}
