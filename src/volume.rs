//! A service's `volumes`: bind mounts, named volumes (plain directories under
//! `$RCOMPOSE_ROOT/volumes/<name>/_data`, filled from the image on first use as docker does),
//! anonymous volumes and tmpfs.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{openat, OFlag, AT_FDCWD};
use nix::sys::stat::Mode;

use crate::compose::model::{Project, ServiceConfig};
use crate::names::NameError;
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
    #[error("service {service}: {source}")]
    Name { service: String, source: NameError },
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
    /// Anonymous volumes' directories created for the container: they belong to it.
    pub anonymous: Vec<PathBuf>,
    /// Anonymous volumes' directories taken over from the container it replaces: they belong
    /// to it too, but a failed creation must leave them to the old one.
    pub inherited: Vec<PathBuf>,
    /// Named volumes created now (not before): the project owns them until `down -v`.
    pub created: Vec<String>,
}

/// The directory of a named volume: `$RCOMPOSE_ROOT/volumes/<name>`, for a name that is one
/// plain path component (docker's rule, `crate::names`), so it never leads out of the store.
pub fn volume_dir(name: &str) -> Result<PathBuf, NameError> {
    crate::names::check_volume(name)?;
    Ok(crate::paths::volumes().join(name))
}

/// Removes a named volume (`down -v`), only ever a directory directly in the store.
pub fn remove(name: &str) -> io::Result<()> {
    let dir = volume_dir(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    remove_dir(&dir)
}

/// Removes a volume by its directory (anonymous volumes are recorded so), which must be
/// directly in the store.
pub fn remove_dir(dir: &Path) -> io::Result<()> {
    crate::paths::remove_store_dir(&crate::paths::volumes(), dir)
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
/// docker. `inherit`: anonymous volumes of the container being replaced, by target: an
/// anonymous volume at one of those targets is that directory again (docker compose's
/// recreation keeps their data). On error, what this call created is removed again.
pub fn mounts_of(
    project: &Project,
    service: &ServiceConfig,
    layers: &[PathBuf],
    inherit: &BTreeMap<String, PathBuf>,
) -> Result<Mounts, VolumeError> {
    let mut m = Mounts::default();
    match fill(project, service, layers, inherit, &mut m) {
        Ok(()) => Ok(m),
        Err(e) => {
            for dir in &m.anonymous {
                let _ = remove_dir(dir);
            }
            for name in &m.created {
                let _ = remove(name);
            }
            Err(e)
        }
    }
}

fn fill(
    project: &Project,
    service: &ServiceConfig,
    layers: &[PathBuf],
    inherit: &BTreeMap<String, PathBuf>,
    m: &mut Mounts,
) -> Result<(), VolumeError> {
    // 0755 whatever the caller's umask (docker's): a volume's directory is the container's
    // until copy-up gives it the image's mode, and a non-root `user:` must be able to use it.
    let create = |path: &Path| {
        use std::os::unix::fs::PermissionsExt;
        fs::create_dir_all(path)
            .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(0o755)))
            .map_err(|source| VolumeError::Create {
                service: service.name.clone(),
                path: path.to_path_buf(),
                source,
            })
    };
    for v in &service.volumes {
        // Cleaned once, here: the mount and the copy-up below see the same path, with no `..`.
        let target =
            crate::paths::container_path(&v.target).ok_or_else(|| VolumeError::Target {
                service: service.name.clone(),
                target: v.target.clone(),
            })?;
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
                    target,
                    read_only: v.read_only,
                });
            }
            "volume" => {
                let anonymous = v.source.is_empty();
                if anonymous {
                    // Only a directory of the store (the record could be edited): else new.
                    let kept = inherit.get(&target).filter(|d| {
                        d.parent() == Some(crate::paths::volumes().as_path())
                            && d.join("_data").is_dir()
                    });
                    if let Some(dir) = kept {
                        m.inherited.push(dir.clone());
                        m.requests.push(MountRequest::Bind {
                            source: dir.join("_data"),
                            target,
                            read_only: v.read_only,
                        });
                        continue;
                    }
                }
                let name = if anonymous {
                    random_hex(64)
                } else {
                    volume_name(project, &v.source)
                };
                let dir = volume_dir(&name).map_err(|source| VolumeError::Name {
                    service: service.name.clone(),
                    source,
                })?;
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
                        copy_up(layers, &target, &data).map_err(|source| VolumeError::CopyUp {
                            name: name.clone(),
                            target: target.clone(),
                            source,
                        })?;
                    }
                }
                m.requests.push(MountRequest::Bind {
                    source: data,
                    target,
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
                m.requests
                    .push(MountRequest::Tmpfs(TmpfsMount { target, options }));
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
///
/// The target is walked inside each layer with one `openat(O_NOFOLLOW | O_DIRECTORY)` per
/// component, from the layer's own fd, and a `.` or `..` component is refused outright (the
/// caller cleaned the path already; this is defence in depth): nothing outside a layer
/// directory can be read.
fn copy_up(layers: &[PathBuf], target: &str, dest: &Path) -> io::Result<()> {
    let rel: Vec<&str> = target.split('/').filter(|c| !c.is_empty()).collect();
    if let Some(c) = rel.iter().find(|c| !crate::paths::is_component(c)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("volume target {target:?} has a {c:?} component"),
        ));
    }
    // The topmost layer that has the target decides what is there; lower layers contribute
    // until a layer makes the directory opaque or whites it out.
    let mut sources = Vec::new();
    for layer in layers.iter().rev() {
        if let Some(fd) = open_beneath(layer, &rel) {
            let opaque = is_opaque(&fd);
            sources.push(fd);
            if opaque {
                break;
            }
        } else if whiteout_on_path(layer, &rel) {
            break;
        }
    }
    // Lowest first, so upper layers overwrite. Each is read through its fd's `/proc/self/fd`
    // link, the directory the walk found, whatever its path.
    for fd in sources.iter().rev() {
        copy_tree(&crate::runtime::inroot::proc_fd_path(fd.as_fd()), dest)?;
    }
    Ok(())
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// The directory `rel` inside `layer`, opened one real directory at a time: `None` when a
/// component is missing, not a directory, or a link.
fn open_beneath(layer: &Path, rel: &[&str]) -> Option<OwnedFd> {
    let mut dir = openat(AT_FDCWD, layer, DIR_FLAGS, Mode::empty()).ok()?;
    for c in rel {
        dir = openat(&dir, *c, DIR_FLAGS, Mode::empty()).ok()?;
    }
    Some(dir)
}

fn is_opaque(dir: &OwnedFd) -> bool {
    let name = c"trusted.overlay.opaque";
    let mut buf = [0u8; 8];
    // SAFETY: a valid fd, C string and buffer.
    let rc = unsafe {
        libc::fgetxattr(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    rc >= 0 && &buf[..rc as usize] == b"y"
}

/// Whether a layer deletes the target or one of its parents (a char device 0/0 whiteout).
/// `rel` has no `.` or `..` (checked by the caller) and only real directories are descended.
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
            // Anything at `to` but an earlier layer's real directory was removed above.
            if fs::symlink_metadata(&to).is_err() {
                fs::create_dir(&to)?;
            }
            copy_tree(&from, &to)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
            std::os::unix::fs::lchown(&to, Some(md.uid()), Some(md.gid()))?;
        } else if ft.is_file() {
            copy_file(&from, &to)?;
            std::os::unix::fs::lchown(&to, Some(md.uid()), Some(md.gid()))?;
            fs::set_permissions(&to, fs::Permissions::from_mode(md.mode() & 0o7777))?;
        }
        // Devices, fifos and sockets in an image volume path are not copied.
    }
    Ok(())
}

/// A regular file's content, neither end followed if it is a link: the source was seen as a
/// file, and the destination was cleared by the caller, so it is created new.
fn copy_file(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut src = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(from)?;
    let mut dst = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(to)?;
    io::copy(&mut src, &mut dst)?;
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
    fn copy_up_never_reads_outside_the_layers() {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("store/layers/l0");
        fs::create_dir_all(layer.join("etc")).unwrap();
        fs::write(layer.join("etc/image-file"), "image").unwrap();
        let host = tmp.path().join("host");
        fs::create_dir_all(&host).unwrap();
        fs::write(host.join("secret"), "TOPSECRET").unwrap();
        let dest = tmp.path().join("vol");
        fs::create_dir(&dest).unwrap();
        // `..` walks from the layer up to the host directory when pushed onto the layer's path.
        let target = format!("/{}{}", "../".repeat(16), host.display());
        let e = copy_up(std::slice::from_ref(&layer), &target, &dest).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert!(!dest.join("secret").exists());
        let e = copy_up(std::slice::from_ref(&layer), "/etc/./x", &dest).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert_eq!(fs::read_dir(&dest).unwrap().count(), 0);
        // Cleaned, as `fill` passes it, the same target is a path in the image.
        let cleaned = crate::paths::container_path("/../../../etc").unwrap();
        copy_up(&[layer], &cleaned, &dest).unwrap();
        assert_eq!(
            fs::read_to_string(dest.join("image-file")).unwrap(),
            "image"
        );
    }

    #[test]
    fn a_volume_name_must_stay_in_the_store() {
        assert!(volume_dir("../../../../tmp/x").is_err());
        assert!(volume_dir("..").is_err());
        assert!(volume_dir("a/b").is_err());
        let dir = volume_dir("p_data").unwrap();
        assert_eq!(dir, crate::paths::volumes().join("p_data"));
        assert!(remove("../x").is_err());
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
