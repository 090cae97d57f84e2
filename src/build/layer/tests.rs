use super::*;
use crate::image::unpack::{unpack_layer, Limits};
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path().join("images")).unwrap();
    (dir, s)
}

fn setxattr(path: &Path, key: &str, value: &[u8]) {
    let p = cpath(path).unwrap();
    let k = CString::new(key).unwrap();
    // SAFETY: NUL-terminated strings, value valid for its length.
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            k.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "setxattr {key} on {}: {}",
        path.display(),
        io::Error::last_os_error()
    );
}

fn set_mtime(path: &Path, secs: i64, nanos: i64) {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    let t = TimeSpec::new(secs, nanos);
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &t,
        &t,
        UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

fn mknod(path: &Path, kind: nix::sys::stat::SFlag, mode: u32, dev: u64) {
    nix::sys::stat::mknod(
        path,
        kind,
        nix::sys::stat::Mode::from_bits_truncate(mode),
        dev,
    )
    .unwrap();
}

/// An upper directory with one of everything a step can leave.
fn populate(dir: &Path) {
    use nix::sys::stat::SFlag;
    fs::create_dir_all(dir.join("etc/app")).unwrap();
    fs::write(dir.join("etc/app/conf"), b"key=value\n").unwrap();
    fs::write(dir.join("etc/a.txt"), b"a").unwrap();
    fs::hard_link(dir.join("etc/app/conf"), dir.join("etc/conf.link")).unwrap();
    symlink("app/conf", dir.join("etc/sym")).unwrap();
    fs::create_dir(dir.join("bin")).unwrap();
    fs::write(dir.join("bin/su"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(dir.join("bin/su"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::create_dir(dir.join("tmp")).unwrap();
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::write(dir.join("bin/ping"), b"ping").unwrap();
    setxattr(
        &dir.join("bin/ping"),
        "security.capability",
        &[1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    setxattr(&dir.join("bin/ping"), "user.note", b"hi");
    mknod(&dir.join("fifo"), SFlag::S_IFIFO, 0o600, 0);
    mknod(
        &dir.join("null"),
        SFlag::S_IFCHR,
        0o666,
        libc::makedev(1, 3),
    );
    // Overlay's deletion of a lower file, and a directory replaced (opaque).
    mknod(&dir.join("etc/gone"), SFlag::S_IFCHR, 0o000, 0);
    fs::create_dir(dir.join("var")).unwrap();
    setxattr(&dir.join("var"), "trusted.overlay.opaque", b"y");
    setxattr(&dir.join("var"), "trusted.overlay.origin", b"\x00\xfb");
    fs::write(dir.join("var/new"), b"new").unwrap();
    std::os::unix::fs::chown(dir.join("var/new"), Some(1000), Some(1001)).unwrap();
    // Times: one in the future (for SOURCE_DATE_EPOCH), one with nanoseconds.
    set_mtime(&dir.join("etc/a.txt"), 4_000_000_000, 0);
    set_mtime(&dir.join("bin/su"), 1_600_000_000, 123_456_789);
}

fn entries(tar_bytes: &[u8]) -> Vec<(String, ::tar::EntryType, u32, u64, Option<String>)> {
    let mut ar = ::tar::Archive::new(tar_bytes);
    ar.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                h.entry_type(),
                h.mode().unwrap(),
                h.mtime().unwrap(),
                e.link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned()),
            )
        })
        .collect()
}

fn tar_of(dir: &Path, opts: &LayerOptions) -> Vec<u8> {
    write_tar(dir, Vec::new(), opts).unwrap()
}

#[test]
fn tar_has_walk_order_whiteouts_links_and_modes() {
    if !root() {
        eprintln!("SKIPPED: needs root (devices, trusted xattrs)");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    populate(d.path());
    let bytes = tar_of(d.path(), &LayerOptions::default());
    let got = entries(&bytes);
    let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "bin/",
            "bin/ping",
            "bin/su",
            "etc/",
            "etc/a.txt",
            "etc/app/",
            "etc/app/conf",
            "etc/conf.link",
            "etc/.wh.gone",
            "etc/sym",
            "fifo",
            "null",
            "tmp/",
            "var/",
            "var/.wh..wh..opq",
            "var/new",
        ]
    );
    let by = |n: &str| got.iter().find(|e| e.0 == n).unwrap().clone();
    assert_eq!(by("bin/su").2, 0o4755);
    assert_eq!(by("bin/su").3, 1_600_000_000, "mtime truncated to seconds");
    assert_eq!(by("tmp/").2, 0o1777);
    assert_eq!(by("etc/conf.link").1, ::tar::EntryType::Link);
    assert_eq!(by("etc/conf.link").4.as_deref(), Some("etc/app/conf"));
    assert_eq!(by("etc/sym").1, ::tar::EntryType::Symlink);
    assert_eq!(by("etc/sym").4.as_deref(), Some("app/conf"));
    assert_eq!(by("fifo").1, ::tar::EntryType::Fifo);
    assert_eq!(by("null").1, ::tar::EntryType::Char);
    assert_eq!(by("etc/.wh.gone").1, ::tar::EntryType::Regular);
    assert_eq!(by("etc/.wh.gone").2, 0);
    assert_eq!(by("etc/.wh.gone").3, 0);

    // xattrs: capability and user ones kept, overlay's own dropped (and removed from disk).
    let mut ar = ::tar::Archive::new(&bytes[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let keys: Vec<String> = match e.pax_extensions().unwrap() {
            Some(x) => x.map(|x| x.unwrap().key().unwrap().to_string()).collect(),
            None => Vec::new(),
        };
        match path.as_str() {
            "bin/ping" => assert_eq!(
                keys,
                ["SCHILY.xattr.security.capability", "SCHILY.xattr.user.note"]
            ),
            "etc/.wh.gone" | "var/.wh..wh..opq" => assert_eq!(keys, ["atime", "ctime"]),
            "var/new" => {
                assert!(keys.is_empty());
                assert_eq!(e.header().uid().unwrap(), 1000);
                assert_eq!(e.header().gid().unwrap(), 1001);
                assert_eq!(e.header().username_bytes(), Some(&b""[..]));
            }
            _ => assert!(keys.is_empty(), "{path}: {keys:?}"),
        }
    }
    let left = listxattr(&XattrsOf::Path(&d.path().join("var"))).unwrap();
    assert_eq!(left, vec![b"trusted.overlay.opaque".to_vec()]);
}

#[test]
fn same_input_same_digest_and_source_date_epoch_clamps() {
    if !root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    populate(a.path());
    populate(b.path());
    let opts = LayerOptions::default();
    let ta = tar_of(a.path(), &opts);
    assert_eq!(ta, tar_of(a.path(), &opts), "twice the same directory");
    // Two directories built alike differ only in the times the kernel gave them.
    let sde = LayerOptions {
        source_date_epoch: Some(1_000_000_000),
        ..LayerOptions::default()
    };
    let (sa, sb) = (tar_of(a.path(), &sde), tar_of(b.path(), &sde));
    assert_eq!(
        sa, sb,
        "with SOURCE_DATE_EPOCH two equal trees give equal bytes"
    );
    let e = entries(&sa);
    assert!(e.iter().all(|e| e.3 <= 1_000_000_000));
    // Without it, a time in the future stays.
    let e = entries(&ta);
    assert_eq!(
        e.iter().find(|e| e.0 == "etc/a.txt").unwrap().3,
        4_000_000_000
    );
}

/// (path, kind, mode, uid, gid, content or target, xattrs) of a layer directory.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let ft = m.file_type();
            let what = if ft.is_dir() {
                "dir".to_string()
            } else if ft.is_symlink() {
                format!("link->{}", fs::read_link(&p).unwrap().display())
            } else if ft.is_file() {
                format!(
                    "file:{}:{}",
                    String::from_utf8_lossy(&fs::read(&p).unwrap()),
                    m.mtime()
                )
            } else if ft.is_char_device() {
                format!("chr:{}", m.rdev())
            } else {
                "other".to_string()
            };
            let mut xattrs: Vec<String> = listxattr(&XattrsOf::Path(&p))
                .unwrap()
                .into_iter()
                .map(|k| String::from_utf8(k).unwrap())
                .map(|k| {
                    let v = getxattr(&XattrsOf::Path(&p), &k).unwrap();
                    format!("{k}={v:?}")
                })
                .collect();
            xattrs.sort();
            out.push(format!(
                "{rel} {what} {:o} {}:{} {}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                xattrs.join(",")
            ));
            if ft.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

#[test]
fn a_layer_unpacks_to_the_directory_it_came_from() {
    if !root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let a = tempfile::tempdir().unwrap();
    populate(a.path());
    let bytes = tar_of(a.path(), &LayerOptions::default());
    let b = tempfile::tempdir().unwrap();
    let un = unpack_layer(&bytes[..], Compression::None, b.path(), &Limits::default()).unwrap();
    assert_eq!(un.diff_id, Digest::of(&bytes).to_string());
    assert_eq!(listing(a.path()), listing(b.path()));
    // Hard links stay hard links.
    let m = fs::metadata(b.path().join("etc/conf.link")).unwrap();
    assert_eq!(m.nlink(), 2);
}

#[test]
fn an_empty_step_is_no_layer_and_leaves_nothing() {
    let (_d, s) = store();
    let dirs = scratch(&s).unwrap();
    assert!(dirs.upper.is_dir() && dirs.work.is_dir());
    assert_eq!(capture(&s, dirs, &LayerOptions::default()).unwrap(), None);
    assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
    // Dropped without capture: removed too.
    let dirs = scratch(&s).unwrap();
    fs::write(dirs.upper.join("x"), b"x").unwrap();
    drop(dirs);
    assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn capture_writes_blob_and_commits_the_upper_dir() {
    let (_d, s) = store();
    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let opts = LayerOptions {
            source_date_epoch: Some(1_700_000_000),
            compression,
            ..LayerOptions::default()
        };
        let dirs = scratch(&s).unwrap();
        fs::create_dir(dirs.upper.join("app")).unwrap();
        fs::write(dirs.upper.join("app/main.py"), b"print(1)\n").unwrap();
        let layer = capture(&s, dirs, &opts).unwrap().unwrap();
        assert!(s.has_layer(&layer.diff_id));
        assert_eq!(
            fs::read(s.layer_dir(&layer.diff_id).join("app/main.py")).unwrap(),
            b"print(1)\n"
        );
        let blob = s.read_blob(layer.blob.as_ref().unwrap()).unwrap();
        assert_eq!(blob.len() as u64, layer.size);
        assert_eq!(layer.media_type, layer_media_type(compression));
        // The blob decompresses to the tar named by the diff_id.
        let out = tempfile::tempdir().unwrap();
        let un = unpack_layer(&blob[..], compression, out.path(), &Limits::default()).unwrap();
        assert_eq!(un.diff_id, layer.diff_id.to_string());
        assert_eq!(un.size, layer.tar_size);
        assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
    }
}

#[test]
fn capture_of_a_real_overlay_upper_dir() {
    use nix::mount::{mount, umount, MsFlags};
    if !root() {
        eprintln!("SKIPPED: needs root to mount overlay");
        return;
    }
    let (d, s) = store();
    // The lower layer: a file to delete, a directory to replace, a file to modify.
    let lower = d.path().join("lower");
    fs::create_dir_all(lower.join("etc/old")).unwrap();
    fs::write(lower.join("etc/old/a"), b"a").unwrap();
    fs::write(lower.join("etc/old/b"), b"b").unwrap();
    fs::write(lower.join("etc/remove-me"), b"x").unwrap();
    fs::write(lower.join("etc/keep"), b"1").unwrap();
    let dirs = scratch(&s).unwrap();
    let merged = d.path().join("merged");
    fs::create_dir(&merged).unwrap();
    let data = format!(
        "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off,index=off",
        lower.display(),
        dirs.upper.display(),
        dirs.work.display()
    );
    if let Err(e) = mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    ) {
        eprintln!("SKIPPED: cannot mount overlay: {e}");
        return;
    }
    let changes = (|| -> io::Result<()> {
        fs::remove_file(merged.join("etc/remove-me"))?;
        fs::remove_dir_all(merged.join("etc/old"))?;
        fs::create_dir(merged.join("etc/old"))?;
        fs::write(merged.join("etc/old/c"), b"c")?;
        fs::write(merged.join("etc/keep"), b"2")?;
        fs::write(merged.join("new"), b"n")?;
        fs::hard_link(merged.join("new"), merged.join("new2"))?;
        Ok(())
    })();
    umount(&merged).unwrap();
    changes.unwrap();

    let layer = capture(&s, dirs, &LayerOptions::default())
        .unwrap()
        .unwrap();
    let layer_dir = s.layer_dir(&layer.diff_id);
    // The blob unpacks to what the store now holds as the layer.
    let out = d.path().join("unpacked");
    fs::create_dir(&out).unwrap();
    let blob = s.read_blob(layer.blob.as_ref().unwrap()).unwrap();
    let un = unpack_layer(&blob[..], Compression::Gzip, &out, &Limits::default()).unwrap();
    assert_eq!(un.diff_id, layer.diff_id.to_string());
    assert_eq!(listing(&layer_dir), listing(&out));
    let names: Vec<String> = entries(&flate2_decode(&blob))
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert!(
        names.contains(&"etc/.wh.remove-me".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"etc/old/.wh..wh..opq".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"new2".to_string()));
    // The layer serves as a lower layer: merged view over it and the old lower is right.
    let merged2 = d.path().join("merged2");
    fs::create_dir(&merged2).unwrap();
    let data = format!("lowerdir={}:{}", layer_dir.display(), lower.display());
    mount(
        Some("overlay"),
        &merged2,
        Some("overlay"),
        MsFlags::MS_RDONLY,
        Some(data.as_str()),
    )
    .unwrap();
    let view = (|| -> io::Result<Vec<String>> {
        let mut v: Vec<String> = fs::read_dir(merged2.join("etc/old"))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<io::Result<_>>()?;
        v.sort();
        v.push(merged2.join("etc/remove-me").exists().to_string());
        v.push(String::from_utf8_lossy(&fs::read(merged2.join("etc/keep"))?).into_owned());
        Ok(v)
    })();
    umount(&merged2).unwrap();
    assert_eq!(view.unwrap(), ["c", "false", "2"]);
}

fn flate2_decode(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut out).unwrap();
    out
}

#[test]
fn redirect_entries_are_refused() {
    if !root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    fs::create_dir(d.path().join("moved")).unwrap();
    setxattr(&d.path().join("moved"), "trusted.overlay.redirect", b"/old");
    let err = write_tar(d.path(), Vec::new(), &LayerOptions::default()).unwrap_err();
    assert!(err.to_string().contains("redirect_dir=off"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// configs

fn sde_builder(store: &Store, base: Option<&ImageRecord>) -> ImageBuilder {
    let mut b = ImageBuilder::from_base(store, base).unwrap();
    b.set_source_date_epoch(Some(1_700_000_000));
    b.set_platform(crate::image::reference::Platform::new(
        "linux", "amd64", None,
    ));
    b
}

use crate::image::config::RuntimeConfig;
use crate::image::store::ImageRecord;

#[test]
fn scratch_config_is_buildkits_shape() {
    let (_d, s) = store();
    let mut b = sde_builder(&s, None);
    b.config_mut().cmd = Some(vec!["sh".into(), "-c".into(), "a && b".into()]);
    b.add_history_only("CMD [\"sh\" \"-c\" \"a && b\"]");
    let json = String::from_utf8(b.config_json().unwrap()).unwrap();
    assert_eq!(
        json,
        concat!(
            r#"{"architecture":"amd64","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"#,
            r#""Cmd":["sh","-c","a \u0026\u0026 b"],"WorkingDir":"/"},"created":"2023-11-14T22:13:20Z","#,
            r#""history":[{"created":"2023-11-14T22:13:20Z","created_by":"CMD [\"sh\" \"-c\" \"a \u0026\u0026 b\"]","#,
            r#""comment":"buildkit.dockerfile.v0","empty_layer":true}],"os":"linux","#,
            r#""rootfs":{"type":"layers","diff_ids":null}}"#
        )
    );
}

#[test]
fn runtime_fields_keep_docker_order_and_sorted_maps() {
    let c = RuntimeConfig {
        env: vec!["A=1".into()],
        user: "app".into(),
        exposed_ports: [
            ("8080/tcp".to_string(), serde_json::json!({})),
            ("443/tcp".to_string(), serde_json::json!({})),
        ]
        .into_iter()
        .collect(),
        labels: [
            ("z".to_string(), "1".to_string()),
            ("a".to_string(), "2".to_string()),
        ]
        .into_iter()
        .collect(),
        healthcheck: Some(crate::image::config::Healthcheck {
            test: vec!["CMD".into(), "true".into()],
            interval: 5_000_000_000,
            retries: 3,
            ..Default::default()
        }),
        stop_signal: "SIGQUIT".into(),
        on_build: vec!["RUN x".into()],
        shell: vec!["/bin/bash".into(), "-c".into()],
        entrypoint: Some(vec!["/init".into()]),
        cmd: Some(vec![]),
        ..Default::default()
    };
    let v = config::runtime_json_for_test(&c);
    let s = String::from_utf8(to_go_json(&v).unwrap()).unwrap();
    assert_eq!(
        s,
        concat!(
            r#"{"User":"app","ExposedPorts":{"443/tcp":{},"8080/tcp":{}},"Env":["A=1"],"Entrypoint":["/init"],"#,
            r#""Labels":{"a":"2","z":"1"},"StopSignal":"SIGQUIT","#,
            r#""Healthcheck":{"Test":["CMD","true"],"Interval":5000000000,"Retries":3},"OnBuild":["RUN x"],"Shell":["/bin/bash","-c"]}"#
        )
    );
}

/// A base image in the store whose config has history, docker-only fields and an OnBuild.
fn base_image(s: &Store) -> ImageRecord {
    let layer = Digest::of(b"base-layer");
    let staging = s.layer_staging().unwrap();
    s.commit_layer(&staging, &layer).unwrap();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","author":"someone","container_config":{{"Hostname":"x"}},
        "docker_version":"20.10","created":"2020-01-01T00:00:00.000000000Z",
        "config":{{"Env":["PATH=/bin"],"Cmd":["sh"],"OnBuild":["RUN echo hi"],"Hostname":"abc","Image":"sha256:00"}},
        "rootfs":{{"type":"layers","diff_ids":["{layer}"]}},
        "history":[{{"created":"2020-01-01T00:00:00.000000000Z","created_by":"/bin/sh -c #(nop) ADD file:x in / "}},
                   {{"created":"2020-01-01T00:00:01+00:00","created_by":"/bin/sh -c #(nop)  CMD [\"sh\"]","empty_layer":true}}]}}"#
    );
    let id = Digest::of(config.as_bytes());
    s.write_blob(&id, config.as_bytes()).unwrap();
    let rec = ImageRecord {
        id: id.clone(),
        manifest: None,
        repo_digests: vec!["docker.io/library/base@sha256:aa".into()],
        layers: vec![crate::image::store::LayerRecord {
            diff_id: layer,
            blob: Some(Digest::of(b"compressed")),
            media_type: "application/vnd.docker.image.rootfs.diff.tar.gzip".into(),
            size: 10,
        }],
        config: serde_json::from_str(r#"{"Env":["PATH=/bin"],"Cmd":["sh"]}"#).unwrap(),
        architecture: "amd64".into(),
        os: "linux".into(),
        created: None,
        size: 100,
    };
    s.put_image(&rec).unwrap();
    rec
}

#[test]
fn a_build_on_a_base_keeps_its_history_and_known_fields() {
    let (_d, s) = store();
    let base = base_image(&s);
    let mut b = ImageBuilder::from_base(&s, Some(&base)).unwrap();
    b.set_platform(crate::image::reference::Platform::new(
        "linux", "amd64", None,
    ));
    assert_eq!(b.runtime().on_build, ["RUN echo hi"]);
    b.add_history_only("ENV A=b");
    let dirs = scratch(&s).unwrap();
    fs::write(dirs.upper.join("f"), b"f").unwrap();
    let layer = capture(&s, dirs, &LayerOptions::default()).unwrap();
    b.add_layer(layer.clone(), "RUN /bin/sh -c touch f # buildkit");
    b.add_layer(None, "RUN /bin/sh -c true # buildkit");
    let v: serde_json::Value = serde_json::from_slice(&b.config_json().unwrap()).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "architecture",
            "author",
            "config",
            "created",
            "history",
            "os",
            "rootfs"
        ]
    );
    assert!(v["config"].get("Hostname").is_none());
    assert_eq!(v["config"]["OnBuild"][0], "RUN echo hi");
    let h = v["history"].as_array().unwrap();
    assert_eq!(h.len(), 5);
    // Base times as Go re-marshals them.
    assert_eq!(h[0]["created"], "2020-01-01T00:00:00Z");
    assert_eq!(h[1]["created"], "2020-01-01T00:00:01Z");
    // The ENV entry takes the first new time (the RUN's), as BuildKit fills it.
    assert_eq!(h[2]["created"], h[3]["created"]);
    assert_eq!(h[3]["comment"], "buildkit.dockerfile.v0");
    assert_eq!(h[3].get("empty_layer"), None);
    assert_eq!(h[4]["empty_layer"], true);
    assert_eq!(v["created"], h[4]["created"]);
    let diff_ids = v["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids.len(), 2);
    assert_eq!(diff_ids[1], layer.unwrap().diff_id.to_string());
}

#[test]
fn commit_records_tags_and_reads_back() {
    let (_d, s) = store();
    let base = base_image(&s);
    let mut b = sde_builder(&s, Some(&base));
    let dirs = scratch(&s).unwrap();
    fs::write(dirs.upper.join("f"), b"f").unwrap();
    let layer = capture(&s, dirs, &LayerOptions::default())
        .unwrap()
        .unwrap();
    b.add_layer(Some(layer.clone()), "COPY f /f # buildkit");
    b.config_mut().cmd = Some(vec!["/f".into()]);
    let tags = [
        "example.com/app:1"
            .parse::<crate::image::reference::Reference>()
            .unwrap(),
        "app".parse().unwrap(),
    ];
    let config_bytes = b.config_json().unwrap();
    let rec = commit(&s, b.clone(), &tags).unwrap();
    assert_eq!(rec.id, Digest::of(&config_bytes));
    assert_eq!(s.read_blob(&rec.id).unwrap(), config_bytes);
    assert_eq!(rec.layers.len(), 2);
    assert_eq!(rec.layers[0], base.layers[0]);
    assert_eq!(rec.layers[1].blob.as_ref(), layer.blob.as_ref());
    assert_eq!(rec.size, 100 + layer.tar_size);
    assert_eq!(rec.created.as_deref(), Some("2023-11-14T22:13:20Z"));
    assert_eq!(s.image(&rec.id).unwrap().unwrap(), rec);
    assert_eq!(s.resolve("example.com/app:1").unwrap().unwrap().id, rec.id);
    assert_eq!(
        s.resolve("docker.io/library/app:latest")
            .unwrap()
            .unwrap()
            .id,
        rec.id
    );
    // The manifest: OCI, three-space indent, config and layers described.
    let m = s.read_blob(rec.manifest.as_ref().unwrap()).unwrap();
    let text = String::from_utf8(m.clone()).unwrap();
    assert!(text.starts_with("{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\""), "{text}");
    let parsed: crate::image::config::Manifest = serde_json::from_slice(&m).unwrap();
    assert_eq!(parsed.config.digest, rec.id);
    assert_eq!(parsed.config.size, config_bytes.len() as u64);
    assert_eq!(Some(&parsed.layers[1].digest), layer.blob.as_ref());
    // Committing the same build again gives the same image.
    assert_eq!(commit(&s, b, &[]).unwrap().id, rec.id);
}

#[test]
fn times_format_as_go() {
    assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
    assert_eq!(
        rfc3339(1_700_000_000, 120_000_000),
        "2023-11-14T22:13:20.12Z"
    );
    assert_eq!(
        config::normalize_time_for_test("2020-01-01T00:00:00.500000000Z"),
        "2020-01-01T00:00:00.5Z"
    );
    assert_eq!(
        config::normalize_time_for_test("2020-01-01T00:00:00+02:00"),
        "2020-01-01T00:00:00+02:00"
    );
    assert_eq!(
        config::normalize_time_for_test("2020-01-01T00:00:00.000-00:00"),
        "2020-01-01T00:00:00Z"
    );
}
#[test]
fn a_very_deep_tree_is_walked_without_recursion() {
    // Deeper than PATH_MAX allows by absolute path: reached relative to each parent.
    let d = tempfile::tempdir().unwrap();
    let depth = 2100;
    // Built one level at a time from the parent's descriptor (a 4200-byte path cannot be used).
    let mut fd = nix::fcntl::open(
        d.path(),
        nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    for _ in 0..depth {
        nix::sys::stat::mkdirat(&fd, "d", nix::sys::stat::Mode::from_bits_truncate(0o755)).unwrap();
        fd = nix::fcntl::openat(
            &fd,
            "d",
            nix::fcntl::OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
    }
    // Each level is opened relative to its parent, so the path's length does not matter;
    // each level holds a descriptor, so a process with too few gets an error naming the
    // path. Never a crash.
    match write_tar(d.path(), io::sink(), &LayerOptions::default()) {
        Ok(_) => {}
        Err(e) => assert!(e.to_string().contains("d/d/d"), "{e}"),
    }
}

#[test]
fn a_deferred_blob_is_made_later_with_the_same_diff_id() {
    let (_d, s) = store();
    let opts = LayerOptions {
        defer_blob: true,
        ..LayerOptions::default()
    };
    let dirs = scratch(&s).unwrap();
    fs::create_dir(dirs.upper.join("app")).unwrap();
    fs::write(dirs.upper.join("app/f"), b"deferred").unwrap();
    let layer = capture(&s, dirs, &opts).unwrap().unwrap();
    assert!(layer.blob.is_none());
    assert!(s.has_layer(&layer.diff_id));
    let mut rec = crate::image::store::LayerRecord {
        diff_id: layer.diff_id.clone(),
        blob: None,
        media_type: String::new(),
        size: 0,
    };
    layer_blob(&s, &mut rec).unwrap();
    let blob = rec.blob.clone().unwrap();
    let bytes = s.read_blob(&blob).unwrap();
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut tar).unwrap();
    assert_eq!(Digest::of(&tar), layer.diff_id);
    assert_eq!(rec.size, bytes.len() as u64);
}
