//! Resolution, digest and copy tests on temporary trees.

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::copy::ChmodSpec;
use super::*;

fn write(p: &Path, data: &str) {
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(p, data).unwrap();
}

fn paths(sources: &[Source]) -> Vec<String> {
    let mut out = Vec::new();
    for s in sources {
        for e in &s.entries {
            let rel = String::from_utf8_lossy(e.rel()).into_owned();
            out.push(if rel.is_empty() {
                s.path.clone()
            } else {
                format!("{}/{}", s.path, rel)
            });
        }
    }
    out
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A context with files, a directory, links and an ignore file.
fn context() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let c = t.path();
    write(&c.join("a.txt"), "a");
    write(&c.join("b.txt"), "b");
    write(&c.join("c.md"), "c");
    write(&c.join("dir/one"), "1");
    write(&c.join("dir/sub/two"), "2");
    write(&c.join("dir/sub/skip.log"), "log");
    write(&c.join("secret/key"), "k");
    write(&c.join("secret/keep"), "kept");
    write(&c.join("node_modules/x/index.js"), "js");
    write(&c.join("etc/passwd"), "the context's own");
    std::os::unix::fs::symlink("dir", c.join("dirlink")).unwrap();
    std::os::unix::fs::symlink("/etc", c.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../etc", c.join("up")).unwrap();
    write(
        &c.join(".dockerignore"),
        "# comment\nsecret\n!secret/keep\nnode_modules\n**/*.log\n",
    );
    t
}

#[test]
fn resolves_files_directories_and_wildcards() {
    let t = context();
    let ctx = Context::open(t.path(), None).unwrap();
    assert_eq!(ctx.ignore_file(), Some(".dockerignore"));
    let s = ctx.resolve(&strings(&["a.txt"]), &[]).unwrap();
    assert_eq!(paths(&s), ["a.txt"]);
    assert_eq!(s[0].name, b"a.txt");
    // A directory: itself and what is under it, ignored files left out.
    let s = ctx.resolve(&strings(&["dir"]), &[]).unwrap();
    assert_eq!(paths(&s), ["dir", "dir/one", "dir/sub", "dir/sub/two"]);
    // Wildcards, sorted; "*" does not cross "/".
    let s = ctx.resolve(&strings(&["*.txt"]), &[]).unwrap();
    assert_eq!(paths(&s), ["a.txt", "b.txt"]);
    assert!(s.iter().all(|s| s.arg == 0));
    let s = ctx.resolve(&strings(&["dir/*/t?o"]), &[]).unwrap();
    assert_eq!(paths(&s), ["dir/sub/two"]);
    let s = ctx.resolve(&strings(&["[ab].txt", "c.md"]), &[]).unwrap();
    assert_eq!(paths(&s), ["a.txt", "b.txt", "c.md"]);
    assert_eq!(s[2].arg, 1);
    // "." and "/" are the whole context, without what is ignored.
    let s = ctx.resolve(&strings(&["."]), &[]).unwrap();
    let all = paths(&s);
    assert!(all.contains(&"./secret/keep".to_string()), "{all:?}");
    assert!(!all
        .iter()
        .any(|p| p.contains("node_modules") || p.ends_with(".log") || p.ends_with("secret/key")));
    assert!(all.contains(&"./.dockerignore".to_string()));
    assert_eq!(paths(&ctx.resolve(&strings(&["/"]), &[]).unwrap()), all);
}

#[test]
fn ignored_and_missing_sources() {
    let t = context();
    let ctx = Context::open(t.path(), None).unwrap();
    match ctx.resolve(&strings(&["node_modules/x/index.js"]), &[]) {
        Err(e @ ContextError::NotFound { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("node_modules/x/index.js") && msg.contains(".dockerignore"),
                "{msg}"
            );
        }
        other => panic!("{other:?}"),
    }
    match ctx.resolve(&strings(&["nothing/here"]), &[]) {
        Err(ContextError::NotFound { path, ignored_by }) => {
            assert_eq!(path, "nothing/here");
            assert_eq!(ignored_by, None);
        }
        other => panic!("{other:?}"),
    }
    // An ignored directory with an exception: only the exception is in it.
    let s = ctx.resolve(&strings(&["secret"]), &[]).unwrap();
    assert_eq!(paths(&s), ["secret", "secret/keep"]);
    assert!(ctx.resolve(&strings(&["secret/key"]), &[]).is_err());
    assert!(ctx.is_ignored("secret/key"));
    assert!(!ctx.is_ignored("secret/keep"));
    // Out of the context.
    for bad in ["../x", "dir/../../x", ".."] {
        assert!(
            matches!(
                ctx.resolve(&strings(&[bad]), &[]),
                Err(ContextError::OutsideContext(_))
            ),
            "{bad}"
        );
    }
    // A wildcard that matches nothing is fine beside one that matches; alone it is an error.
    assert_eq!(
        paths(&ctx.resolve(&strings(&["*.none", "a.txt"]), &[]).unwrap()),
        ["a.txt"]
    );
    assert!(ctx.resolve(&strings(&["*.none"]), &[]).unwrap().is_empty());
    assert!(ctx.resolve(&strings(&["a["]), &[]).is_err());
}

#[test]
fn links_are_followed_inside_the_context_only() {
    let t = context();
    let ctx = Context::open(t.path(), None).unwrap();
    // A source that is a link is followed; it lands under the name it was given.
    let s = ctx.resolve(&strings(&["dirlink"]), &[]).unwrap();
    assert_eq!(s[0].path, "dir");
    assert_eq!(s[0].name, b"dirlink");
    // "/etc" and "../../../../etc" resolve to the context's own etc.
    for l in ["abs/passwd", "up/passwd"] {
        let s = ctx.resolve(&strings(&[l]), &[]).unwrap();
        assert_eq!(s[0].path, "etc/passwd", "{l}");
    }
    // Inside a directory, links are entries, not followed.
    let s = ctx.resolve(&strings(&["."]), &[]).unwrap();
    let link = s[0].entries.iter().find(|e| e.rel() == b"abs").unwrap();
    assert_eq!(link.kind, FileKind::Symlink);
    assert_eq!(link.link.as_deref(), Some(&b"/etc"[..]));
    // A loop is an error, not a hang.
    std::os::unix::fs::symlink("loop2", t.path().join("loop1")).unwrap();
    std::os::unix::fs::symlink("loop1", t.path().join("loop2")).unwrap();
    assert!(matches!(
        ctx.resolve(&strings(&["loop1"]), &[]),
        Err(ContextError::LinkLoop { .. })
    ));
}

#[test]
fn excludes_and_dockerfile_ignore_file() {
    let t = context();
    let ctx = Context::open(t.path(), None).unwrap();
    let s = ctx.resolve(&strings(&["dir"]), &strings(&["sub"])).unwrap();
    assert_eq!(paths(&s), ["dir", "dir/one"]);
    // A wildcard's matches themselves are never excluded, only what is under them.
    let s = ctx
        .resolve(&strings(&["*.txt"]), &strings(&["b.*"]))
        .unwrap();
    assert_eq!(paths(&s), ["a.txt", "b.txt"]);
    let s = ctx.resolve(&strings(&["di*"]), &strings(&["*"])).unwrap();
    assert_eq!(paths(&s), ["dir", "dir"]);
    assert_eq!(s[1].name, b"dirlink");
    let s = ctx
        .resolve(&strings(&["dir"]), &strings(&["**/t*", "!sub/two"]))
        .unwrap();
    assert_eq!(paths(&s), ["dir", "dir/one", "dir/sub", "dir/sub/two"]);
    assert!(ctx.resolve(&strings(&["dir"]), &strings(&["!"])).is_err());
    // <Dockerfile>.dockerignore wins over .dockerignore.
    write(&t.path().join("build/Dockerfile"), "FROM scratch\n");
    write(&t.path().join("build/Dockerfile.dockerignore"), "*.txt\n");
    let ctx = Context::open(t.path(), Some(Path::new("build/Dockerfile"))).unwrap();
    assert_eq!(ctx.ignore_file(), Some("build/Dockerfile.dockerignore"));
    assert!(ctx.resolve(&strings(&["a.txt"]), &[]).is_err());
    assert!(ctx.resolve(&strings(&["node_modules"]), &[]).is_ok());
    // A bad line is named.
    write(&t.path().join(".dockerignore"), "ok\n\n[bad\n");
    match Context::open(t.path(), None) {
        Err(ContextError::IgnorePattern { line, .. }) => assert_eq!(line, 3),
        other => panic!("{other:?}"),
    }
}

#[test]
fn digest_follows_content_not_times() {
    let t = context();
    let ctx = Context::open(t.path(), None).unwrap();
    let s = ctx.resolve(&strings(&["dir"]), &[]).unwrap();
    let d1 = ctx.digest(&s).unwrap();
    let hashed = ctx.files_hashed();
    assert_eq!(hashed, 2);
    // Unchanged: the stat cache answers.
    assert_eq!(ctx.digest(&s).unwrap(), d1);
    assert_eq!(ctx.files_hashed(), hashed);
    // Only times change: same digest (the file is read again, its stat having changed).
    let f = fs::File::options()
        .write(true)
        .open(t.path().join("dir/one"))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000))
        .unwrap();
    drop(f);
    let s = ctx.resolve(&strings(&["dir"]), &[]).unwrap();
    assert_eq!(ctx.digest(&s).unwrap(), d1);
    assert_eq!(ctx.files_hashed(), hashed + 1);
    // One byte changes: another digest.
    write(&t.path().join("dir/one"), "2");
    let s = ctx.resolve(&strings(&["dir"]), &[]).unwrap();
    let d2 = ctx.digest(&s).unwrap();
    assert_ne!(d2, d1);
    // A mode changes: another digest.
    fs::set_permissions(t.path().join("dir/one"), fs::Permissions::from_mode(0o755)).unwrap();
    let s = ctx.resolve(&strings(&["dir"]), &[]).unwrap();
    assert_ne!(ctx.digest(&s).unwrap(), d2);
    // The name a file lands under counts; a link's target counts.
    let a = ctx.resolve(&strings(&["a.txt"]), &[]).unwrap();
    write(&t.path().join("z.txt"), "a");
    let z = ctx.resolve(&strings(&["z.txt"]), &[]).unwrap();
    assert_ne!(ctx.digest(&a).unwrap(), ctx.digest(&z).unwrap());
}

#[test]
fn stat_cache_persists() {
    let t = context();
    let cache = tempfile::tempdir().unwrap();
    let cache_file = cache.path().join("stat-cache.json");
    let ctx = Context::open(t.path(), None).unwrap();
    let s = ctx.resolve(&strings(&["."]), &[]).unwrap();
    let d = ctx.digest(&s).unwrap();
    assert!(ctx.files_hashed() > 0);
    ctx.save_stat_cache(&cache_file).unwrap();
    let again = Context::open(t.path(), None).unwrap();
    again.load_stat_cache(&cache_file).unwrap();
    let s = again.resolve(&strings(&["."]), &[]).unwrap();
    assert_eq!(again.digest(&s).unwrap(), d);
    assert_eq!(again.files_hashed(), 0);
    // Missing or garbage: an empty cache.
    fs::write(&cache_file, "not json").unwrap();
    let third = Context::open(t.path(), None).unwrap();
    third.load_stat_cache(&cache_file).unwrap();
    third
        .load_stat_cache(&cache.path().join("missing"))
        .unwrap();
    assert_eq!(third.digest(&s).unwrap(), d);
}

/// A rootfs beside a directory that must stay untouched, with links that point out.
struct Rootfs {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn rootfs() -> Rootfs {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("a/b/root");
    let outside = tmp.path().join("a");
    write(
        &root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
    );
    write(
        &root.join("etc/group"),
        "root:x:0:\nstaff:x:50:app\napp:x:1001:\n",
    );
    write(&root.join("target"), "image file");
    fs::create_dir_all(root.join("existing")).unwrap();
    fs::create_dir_all(root.join("app")).unwrap();
    std::os::unix::fs::symlink("/", root.join("slash")).unwrap();
    std::os::unix::fs::symlink("../../..", root.join("dest")).unwrap();
    std::os::unix::fs::symlink("/target", root.join("app/conf")).unwrap();
    Rootfs {
        _tmp: tmp,
        root,
        outside,
    }
}

/// Every file under `dir` but those under `skip`.
fn listing(dir: &Path, skip: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(d: &Path, skip: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.starts_with(skip) {
                continue;
            }
            out.push(p.display().to_string());
            if p.is_dir() && !p.is_symlink() {
                walk(&p, skip, out);
            }
        }
    }
    walk(dir, skip, &mut out);
    out.sort();
    out
}

fn open_root(p: &Path) -> std::os::fd::OwnedFd {
    crate::runtime::inroot::open_root(p).unwrap()
}

fn opts() -> CopyOptions {
    CopyOptions {
        workdir: "/".into(),
        ..Default::default()
    }
}

#[test]
fn copies_never_leave_the_root() {
    let t = context();
    let r = rootfs();
    let before = listing(&r.outside, &r.root);
    let ctx = Context::open(t.path(), None).unwrap();
    let fd = open_root(&r.root);
    let s = ctx.resolve(&strings(&["a.txt"]), &[]).unwrap();
    // dest -> ../../.. and slash -> / are the root itself.
    copy_into(fd.as_fd(), &s, "/dest/", &opts()).unwrap();
    copy_into(fd.as_fd(), &s, "/slash/x/y.txt", &opts()).unwrap();
    copy_into(fd.as_fd(), &s, "../../../../escaped.txt", &opts()).unwrap();
    let d = ctx.resolve(&strings(&["dir"]), &[]).unwrap();
    copy_into(fd.as_fd(), &d, "/dest/dest/tree/", &opts()).unwrap();
    assert_eq!(fs::read_to_string(r.root.join("a.txt")).unwrap(), "a");
    assert_eq!(fs::read_to_string(r.root.join("x/y.txt")).unwrap(), "a");
    assert_eq!(fs::read_to_string(r.root.join("escaped.txt")).unwrap(), "a");
    assert_eq!(
        fs::read_to_string(r.root.join("tree/sub/two")).unwrap(),
        "2"
    );
    assert_eq!(listing(&r.outside, &r.root), before);
    // A file onto a link in the image replaces what the link points at (inside the root),
    // as BuildKit; the link stays.
    let s = ctx.resolve(&strings(&["b.txt"]), &[]).unwrap();
    copy_into(fd.as_fd(), &s, "/app/conf", &opts()).unwrap();
    assert!(r.root.join("app/conf").is_symlink());
    assert_eq!(fs::read_to_string(r.root.join("target")).unwrap(), "b");
    // A dangling link that points out: the file lands where it points, inside the root.
    std::os::unix::fs::symlink("../../../../../made-by-link", r.root.join("dangling")).unwrap();
    copy_into(fd.as_fd(), &s, "/dangling", &opts()).unwrap();
    assert_eq!(
        fs::read_to_string(r.root.join("made-by-link")).unwrap(),
        "b"
    );
    assert_eq!(listing(&r.outside, &r.root), before);
}

#[test]
fn destination_rules() {
    let t = context();
    let r = rootfs();
    let ctx = Context::open(t.path(), None).unwrap();
    let fd = open_root(&r.root);
    let a = ctx.resolve(&strings(&["a.txt"]), &[]).unwrap();
    // No trailing slash: the destination is the file.
    copy_into(fd.as_fd(), &a, "/new/name", &opts()).unwrap();
    assert_eq!(fs::read_to_string(r.root.join("new/name")).unwrap(), "a");
    // Trailing slash: a directory, created.
    copy_into(fd.as_fd(), &a, "/made/", &opts()).unwrap();
    assert_eq!(fs::read_to_string(r.root.join("made/a.txt")).unwrap(), "a");
    let m = fs::metadata(r.root.join("made")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o755);
    // An existing directory without the slash: inside it.
    copy_into(fd.as_fd(), &a, "/existing", &opts()).unwrap();
    assert_eq!(
        fs::read_to_string(r.root.join("existing/a.txt")).unwrap(),
        "a"
    );
    // Relative to the working directory.
    let wd = CopyOptions {
        workdir: "/srv/app".into(),
        ..opts()
    };
    copy_into(fd.as_fd(), &a, ".", &wd).unwrap();
    assert_eq!(
        fs::read_to_string(r.root.join("srv/app/a.txt")).unwrap(),
        "a"
    );
    // A directory's contents, not itself.
    let d = ctx.resolve(&strings(&["dir"]), &[]).unwrap();
    copy_into(fd.as_fd(), &d, "/out", &opts()).unwrap();
    assert_eq!(fs::read_to_string(r.root.join("out/one")).unwrap(), "1");
    assert!(!r.root.join("out/dir").exists());
    // Several sources need a directory.
    let two = ctx.resolve(&strings(&["a.txt", "b.txt"]), &[]).unwrap();
    copy_into(fd.as_fd(), &two, "/multi/", &opts()).unwrap();
    assert!(r.root.join("multi/b.txt").is_file());
    // Without the slash BuildKit copies each in turn: the last file wins, directories merge.
    copy_into(fd.as_fd(), &two, "/last", &opts()).unwrap();
    assert_eq!(fs::read_to_string(r.root.join("last")).unwrap(), "b");
    let dirs = ctx.resolve(&strings(&["dir", "secret"]), &[]).unwrap();
    copy_into(fd.as_fd(), &dirs, "/merged", &opts()).unwrap();
    assert!(r.root.join("merged/one").is_file() && r.root.join("merged/keep").is_file());
    // One wildcard matching several files is one source.
    let glob = ctx.resolve(&strings(&["*.txt"]), &[]).unwrap();
    copy_into(fd.as_fd(), &glob, "/globbed/", &opts()).unwrap();
    assert!(r.root.join("globbed/a.txt").is_file() && r.root.join("globbed/b.txt").is_file());
    // A directory onto a file, a file onto a directory inside a tree: errors.
    assert!(copy_into(fd.as_fd(), &d, "/target", &opts()).is_err());
    fs::create_dir_all(r.root.join("clash/one")).unwrap();
    assert!(copy_into(fd.as_fd(), &d, "/clash/", &opts()).is_err());
    // --parents keeps the source's path.
    let p = ctx.resolve(&strings(&["dir/sub/two"]), &[]).unwrap();
    let parents = CopyOptions {
        parents: true,
        ..opts()
    };
    copy_into(fd.as_fd(), &p, "/p/", &parents).unwrap();
    assert_eq!(
        fs::read_to_string(r.root.join("p/dir/sub/two")).unwrap(),
        "2"
    );
    // After a "/./" pivot only the rest is kept; a directory keeps its own name; wildcards
    // keep the path as matched.
    let p = ctx.resolve(&strings(&["dir/./sub/two"]), &[]).unwrap();
    copy_into(fd.as_fd(), &p, "/q/", &parents).unwrap();
    assert!(r.root.join("q/sub/two").is_file());
    let p = ctx.resolve(&strings(&["dir/sub"]), &[]).unwrap();
    copy_into(fd.as_fd(), &p, "/r/", &parents).unwrap();
    assert!(r.root.join("r/dir/sub/two").is_file());
    let p = ctx.resolve(&strings(&["dir/*/two"]), &[]).unwrap();
    copy_into(fd.as_fd(), &p, "/s", &parents).unwrap();
    assert!(r.root.join("s/dir/sub/two").is_file());
}

#[test]
fn ownership_modes_times_links() {
    let t = context();
    let c = t.path();
    write(&c.join("m/run"), "#!/bin/sh\n");
    // chown first: it clears setuid.
    std::os::unix::fs::chown(c.join("m/run"), Some(123), Some(456)).unwrap();
    fs::set_permissions(c.join("m/run"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::hard_link(c.join("m/run"), c.join("m/run2")).unwrap();
    std::os::unix::fs::symlink("run", c.join("m/ln")).unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    fs::File::options()
        .write(true)
        .open(c.join("m/run"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    fs::File::open(c.join("m"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let r = rootfs();
    let ctx = Context::open(c, None).unwrap();
    let fd = open_root(&r.root);
    let s = ctx.resolve(&strings(&["m"]), &[]).unwrap();
    copy_into(fd.as_fd(), &s, "/m/", &opts()).unwrap();
    // An existing destination directory takes the source directory's times (BuildKit).
    let src_m = fs::metadata(c.join("m")).unwrap();
    assert_eq!(src_m.mtime(), 1_000_000);
    fs::create_dir_all(r.root.join("pre")).unwrap();
    copy_into(fd.as_fd(), &s, "/pre", &opts()).unwrap();
    assert_eq!(
        fs::metadata(r.root.join("pre")).unwrap().mtime(),
        src_m.mtime()
    );
    let run = fs::metadata(r.root.join("m/run")).unwrap();
    // Context files belong to root; mode bits (setuid too) and mtime kept; hard link kept.
    assert_eq!((run.uid(), run.gid()), (0, 0));
    assert_eq!(run.mode() & 0o7777, 0o4755);
    assert_eq!(run.mtime(), 1_000_000);
    assert_eq!(
        fs::metadata(r.root.join("m/run2")).unwrap().ino(),
        run.ino()
    );
    assert_eq!(
        fs::read_link(r.root.join("m/ln")).unwrap(),
        Path::new("run")
    );
    // --chown by name, user alone meaning its primary group; --chmod.
    let o = CopyOptions {
        chown: Some("app".into()),
        chmod: Some("0640".into()),
        ..opts()
    };
    copy_into(fd.as_fd(), &s, "/owned/", &o).unwrap();
    let m = fs::metadata(r.root.join("owned/run")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 1001, 0o640));
    // Created parents belong to the --chown user too, with the octal --chmod as their mode
    // (BuildKit); a symbolic one leaves them 0755.
    let p = fs::metadata(r.root.join("owned")).unwrap();
    assert_eq!((p.uid(), p.gid(), p.mode() & 0o7777), (1000, 1001, 0o640));
    let o = CopyOptions {
        chmod: Some("u+x".into()),
        ..opts()
    };
    copy_into(fd.as_fd(), &s, "/sym/new/", &o).unwrap();
    let p = fs::metadata(r.root.join("sym/new")).unwrap();
    assert_eq!(p.mode() & 0o7777, 0o755);
    for (spec, want) in [
        ("app:staff", (1000, 50)),
        ("1234", (1234, 1234)),
        ("7:8", (7, 8)),
        ("app:9", (1000, 9)),
    ] {
        let o = CopyOptions {
            chown: Some(spec.into()),
            ..opts()
        };
        copy_into(fd.as_fd(), &s, "/o2/", &o).unwrap();
        let m = fs::metadata(r.root.join("o2/run")).unwrap();
        assert_eq!((m.uid(), m.gid()), want, "{spec}");
    }
    // Names the image does not know: BuildKit's fallbacks, not errors.
    for (spec, want) in [
        ("nobody", (0, 0)),
        ("app:nogroup", (1000, 1001)),
        (":1", (0, 1)),
        ("1:", (1, 1)),
        ("root:staff", (0, 50)),
    ] {
        let o = CopyOptions {
            chown: Some(spec.into()),
            ..opts()
        };
        copy_into(fd.as_fd(), &s, "/o3/", &o).unwrap();
        let m = fs::metadata(r.root.join("o3/run")).unwrap();
        assert_eq!((m.uid(), m.gid()), want, "{spec}");
    }
    // SOURCE_DATE_EPOCH clamps later times only.
    let e = CopyOptions {
        source_date_epoch: Some(500),
        ..opts()
    };
    copy_into(fd.as_fd(), &s, "/epoch/", &e).unwrap();
    assert_eq!(fs::metadata(r.root.join("epoch/run")).unwrap().mtime(), 500);
    // Stage trees keep owners.
    let stage = Context::open_dir_without_ignore(c).unwrap();
    let s = stage.resolve(&strings(&["m/run"]), &[]).unwrap();
    copy_into(fd.as_fd(), &s, "/st/", &opts()).unwrap();
    let m = fs::metadata(r.root.join("st/run")).unwrap();
    assert_eq!((m.uid(), m.gid()), (123, 456));
}

#[test]
fn xattrs_are_kept() {
    let t = context();
    let f = t.path().join("a.txt");
    let file = fs::File::open(&f).unwrap();
    if super::copy::set_xattr(file.as_fd(), c"user.test", b"v").is_err() {
        return; // no user xattrs on this filesystem
    }
    let ctx = Context::open(t.path(), None).unwrap();
    let s = ctx.resolve(&strings(&["a.txt"]), &[]).unwrap();
    let d1 = ctx.digest(&s).unwrap();
    let r = rootfs();
    copy_into(open_root(&r.root).as_fd(), &s, "/x/", &opts()).unwrap();
    let out = fs::File::open(r.root.join("x/a.txt")).unwrap();
    let got = super::hash::read_xattrs(out.as_fd()).unwrap();
    if got.is_empty() {
        return; // the rootfs's filesystem drops them
    }
    assert_eq!(got[0].1, b"v");
    super::copy::set_xattr(file.as_fd(), c"user.test", b"w").unwrap();
    // Resolved again, as every build does: the new ctime misses the stat cache.
    let s = ctx.resolve(&strings(&["a.txt"]), &[]).unwrap();
    assert_ne!(ctx.digest(&s).unwrap(), d1);
    // Unchanged since: the cached xattrs give the same digest without opening the file.
    let s = ctx.resolve(&strings(&["a.txt"]), &[]).unwrap();
    let d2 = ctx.digest(&s).unwrap();
    assert_eq!(ctx.digest(&s).unwrap(), d2);
}

#[test]
fn chmod_specs() {
    let cases: &[(&str, u32, bool, u32)] = &[
        ("755", 0o644, false, 0o755),
        ("0640", 0o777, false, 0o640),
        ("4755", 0o644, false, 0o4755),
        ("u+x", 0o644, false, 0o744),
        ("go-w", 0o666, false, 0o644),
        ("a=r", 0o777, false, 0o444),
        ("=rw", 0o777, false, 0o666),
        ("+X", 0o644, false, 0o644),
        ("+X", 0o644, true, 0o755),
        ("+X", 0o744, false, 0o755),
        ("u=rwx,g=rx,o=", 0o000, false, 0o750),
        ("g=u", 0o640, false, 0o660),
        ("u+s", 0o755, false, 0o4755),
        ("+t", 0o755, true, 0o1755),
        ("o-rwx+r", 0o777, false, 0o774),
    ];
    for &(spec, mode, dir, want) in cases {
        let m = ChmodSpec::parse(spec).unwrap().apply(mode, dir);
        assert_eq!(m, want, "{spec} on {mode:o}: got {m:o}");
    }
    for bad in ["", "8", "77777", "u", "u+z", "q+x", "u+x,"] {
        assert!(ChmodSpec::parse(bad).is_err(), "{bad}");
    }
}

fn tar_of(entries: &[(&str, &[u8])], links: &[(&str, &str, tar::EntryType)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o640);
        h.set_uid(42);
        h.set_gid(43);
        h.set_mtime(1234);
        // set_path refuses "..": write the raw name for hostile cases.
        let raw = &mut h.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    for (name, target, kind) in links {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, name, target).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn archives_are_detected_and_extracted_inside_dest() {
    use std::io::Write;
    let t = context();
    let c = t.path();
    let plain = tar_of(
        &[("top/file", b"data"), ("other", b"o")],
        &[
            ("l", "/", tar::EntryType::Symlink),
            ("h", "top/file", tar::EntryType::Link),
        ],
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    fs::write(c.join("p.tar"), &plain).unwrap();
    fs::write(c.join("g.tgz"), gz.finish().unwrap()).unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(&plain).unwrap();
    fs::write(c.join("b.tar.bz2"), bz.finish().unwrap()).unwrap();
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(&plain).unwrap();
    fs::write(c.join("x.txz"), xz.finish().unwrap()).unwrap();
    fs::write(
        c.join("z.tar.zst"),
        zstd::encode_all(&plain[..], 1).unwrap(),
    )
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"not a tar at all").unwrap();
    fs::write(c.join("text.gz"), gz.finish().unwrap()).unwrap();
    let ctx = Context::open(c, None).unwrap();
    let r = rootfs();
    let fd = open_root(&r.root);
    for (name, want) in [
        ("p.tar", true),
        ("g.tgz", true),
        ("b.tar.bz2", true),
        ("x.txz", true),
        ("z.tar.zst", true),
        ("text.gz", false),
        ("a.txt", false),
        ("dir", false),
    ] {
        let s = ctx.resolve(&strings(&[name]), &[]).unwrap();
        assert_eq!(is_archive(&s[0]).unwrap(), want, "{name}");
        if want {
            let dest = format!("/x/{name}");
            extract_archive_into(fd.as_fd(), &s[0], &dest, &opts()).unwrap();
            let base = r.root.join(format!("x/{name}"));
            assert_eq!(
                fs::read_to_string(base.join("top/file")).unwrap(),
                "data",
                "{name}"
            );
            let m = fs::metadata(base.join("top/file")).unwrap();
            assert_eq!(
                (m.uid(), m.gid(), m.mode() & 0o777, m.mtime()),
                (42, 43, 0o640, 1234)
            );
            assert_eq!(fs::metadata(base.join("h")).unwrap().ino(), m.ino());
            assert_eq!(fs::read_link(base.join("l")).unwrap(), Path::new("/"));
        }
    }
    // Entries through a link in the archive stay in the destination; ".." is refused.
    let before = listing(&r.outside, &r.root);
    let evil = tar_of(
        &[],
        &[
            ("l", "/", tar::EntryType::Symlink),
            ("up", "../../../..", tar::EntryType::Symlink),
        ],
    );
    let mut b = tar::Builder::new(evil[..evil.len() - 1024].to_vec());
    for name in ["l/via-abs", "up/via-rel"] {
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, name, &b"e"[..]).unwrap();
    }
    fs::write(c.join("evil.tar"), b.into_inner().unwrap()).unwrap();
    let s = ctx.resolve(&strings(&["evil.tar"]), &[]).unwrap();
    extract_archive_into(fd.as_fd(), &s[0], "/e", &opts()).unwrap();
    assert!(r.root.join("e/via-abs").is_file());
    assert!(r.root.join("e/via-rel").is_file());
    assert_eq!(listing(&r.outside, &r.root), before);
    fs::write(
        c.join("dotdot.tar"),
        tar_of(&[("../../../escape", b"x")], &[]),
    )
    .unwrap();
    let s = ctx.resolve(&strings(&["dotdot.tar"]), &[]).unwrap();
    assert!(extract_archive_into(fd.as_fd(), &s[0], "/d", &opts()).is_err());
    assert_eq!(listing(&r.outside, &r.root), before);
}

#[test]
fn ignore_everything_but_exceptions() {
    let t = tempfile::tempdir().unwrap();
    let c = t.path();
    write(&c.join("src/main.rs"), "fn main() {}");
    write(&c.join("src/deep/x.rs"), "x");
    write(&c.join("node_modules/a/b.js"), "b");
    write(&c.join("Dockerfile"), "FROM scratch");
    write(&c.join("docs/a.md"), "a");
    write(&c.join("docs/a.txt"), "t");
    write(
        &c.join(".dockerignore"),
        "*\n!src\n!docs/*.md\n.dockerignore\nDockerfile\n",
    );
    let ctx = Context::open(c, Some(&c.join("Dockerfile"))).unwrap();
    let s = ctx.resolve(&strings(&["."]), &[]).unwrap();
    assert_eq!(
        paths(&s),
        [
            ".",
            "./docs",
            "./docs/a.md",
            "./src",
            "./src/deep",
            "./src/deep/x.rs",
            "./src/main.rs"
        ]
    );
    // The Dockerfile and the ignore file are ignored like any file (BuildKit sends the
    // Dockerfile on its own).
    for f in ["Dockerfile", ".dockerignore", "docs/a.txt"] {
        match ctx.resolve(&strings(&[f]), &[]) {
            Err(ContextError::NotFound { ignored_by, .. }) => {
                assert_eq!(ignored_by.as_deref(), Some(".dockerignore"), "{f}")
            }
            other => panic!("{f}: {other:?}"),
        }
    }
    // An ignored directory with an exception inside exists, holding only that.
    let s = ctx.resolve(&strings(&["docs"]), &[]).unwrap();
    assert_eq!(paths(&s), ["docs", "docs/a.md"]);
    assert!(ctx.resolve(&strings(&["node_modules"]), &[]).is_err());
    let s = ctx.resolve(&strings(&["*"]), &[]).unwrap();
    assert_eq!(
        s.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(),
        ["docs", "src"]
    );
}

#[test]
fn stage_trees_resolve_links_inside_themselves() {
    let tmp = tempfile::tempdir().unwrap();
    let stage = tmp.path().join("stage");
    write(&tmp.path().join("host-secret"), "host");
    write(&stage.join("usr/lib/libx.so"), "lib");
    write(&stage.join(".dockerignore"), "usr\n");
    std::os::unix::fs::symlink("/usr/lib", stage.join("lib")).unwrap();
    std::os::unix::fs::symlink("../host-secret", stage.join("secret")).unwrap();
    let ctx = Context::open_dir_without_ignore(&stage).unwrap();
    assert_eq!(ctx.ignore_file(), None);
    // "/usr/lib" is the stage's own; the .dockerignore file in it means nothing.
    let s = ctx.resolve(&strings(&["lib/libx.so"]), &[]).unwrap();
    assert_eq!(s[0].path, "usr/lib/libx.so");
    // "../host-secret" stops at the stage's root: there is no such file in it.
    assert!(matches!(
        ctx.resolve(&strings(&["secret"]), &[]),
        Err(ContextError::NotFound { .. })
    ));
    let r = rootfs();
    copy_into(open_root(&r.root).as_fd(), &s, "/copied", &opts()).unwrap();
    assert_eq!(fs::read_to_string(r.root.join("copied")).unwrap(), "lib");
}

#[test]
fn parents_with_double_star() {
    let t = tempfile::tempdir().unwrap();
    let c = t.path();
    write(&c.join("apps/web/package.json"), "web");
    write(&c.join("apps/api/package.json"), "api");
    write(&c.join("apps/api/src/index.js"), "js");
    write(&c.join("libs/ui/package.json"), "ui");
    write(&c.join("package.json"), "root");
    let ctx = Context::open(c, None).unwrap();
    let s = ctx
        .resolve_with(&strings(&["**/package.json"]), &[], true)
        .unwrap();
    let got: Vec<&str> = s.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        got,
        [
            "apps/api/package.json",
            "apps/web/package.json",
            "libs/ui/package.json",
            "package.json"
        ]
    );
    let r = rootfs();
    let fd = open_root(&r.root);
    let parents = CopyOptions {
        parents: true,
        ..opts()
    };
    copy_into(fd.as_fd(), &s, "/w/", &parents).unwrap();
    for f in [
        "apps/api/package.json",
        "apps/web/package.json",
        "libs/ui/package.json",
        "package.json",
    ] {
        assert!(r.root.join("w").join(f).is_file(), "{f}");
    }
    assert!(!r.root.join("w/apps/api/src").exists());
    // With a pivot: only what follows it is kept.
    let s = ctx
        .resolve_with(&strings(&["apps/./*/package.json"]), &[], true)
        .unwrap();
    copy_into(fd.as_fd(), &s, "/v/", &parents).unwrap();
    assert!(r.root.join("v/web/package.json").is_file());
    assert!(r.root.join("v/api/package.json").is_file());
    // Without --parents "**" is "*", as BuildKit's wildcards.
    let s = ctx.resolve(&strings(&["**/package.json"]), &[]).unwrap();
    assert!(s.is_empty());
    // A plain --parents path that does not exist is an error.
    assert!(ctx
        .resolve_with(&strings(&["apps/nope"]), &[], true)
        .is_err());
}

/// A cheap, deterministic stand-in for the fuzzers: random bytes from an alphabet rich in
/// pattern syntax through every parser and matcher; only errors may come out, never a panic.
#[test]
fn random_input_never_panics() {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet: &[u8] = b"ab/.*?[]^-\\!# \n\r\xff\xc3\xa9ugoa+=rwxXst0123456789:,";
    let mut gen = |max: usize| -> Vec<u8> {
        let len = (next() as usize) % max;
        (0..len)
            .map(|_| alphabet[(next() as usize) % alphabet.len()])
            .collect()
    };
    for _ in 0..20_000 {
        let p = gen(24);
        let name = gen(24);
        let _ = pattern::fnmatch(&p, &name);
        let _ = pattern::clean(&p);
        let lines = pattern::read_ignore_file(&p);
        if let Ok(pm) = PatternMatcher::new(&lines) {
            let _ = pm.matches_or_parent_matches(&name);
            let (_, info) = pm.matches_using_parent_results(&name, &Default::default());
            let _ = pm.matches_using_parent_results(&[&name[..], b"/x"].concat(), &info);
            let _ = pm.exceptions_may_reach(&name);
        }
        if let Ok(spec) = copy::ChmodSpec::parse(&String::from_utf8_lossy(&p)) {
            let _ = spec.apply(0o644, true);
        }
    }
    // Source strings and --exclude patterns against a real tree with links and a loop.
    let t = context();
    std::os::unix::fs::symlink("loop", t.path().join("loop")).unwrap();
    let ctx = Context::open(t.path(), None).unwrap();
    let words = [
        "a.txt", "dir", "*", "..", ".", "/", "abs", "up", "loop", "sub", "[", "secret", "**", "?",
        "/./", "x\\",
    ];
    for _ in 0..3_000 {
        let mut src = String::new();
        for _ in 0..(next() % 4) {
            src.push_str(words[(next() as usize) % words.len()]);
            if next() % 2 == 0 {
                src.push('/');
            }
        }
        let exclude = words[(next() as usize) % words.len()].to_string();
        let parents = next() % 2 == 0;
        let _ = ctx.resolve_with(&[src], &[exclude], parents);
    }
}

/// The walk's root with many directories is searched by several threads: the entries, what
/// the ignore file and `--exclude` leave out or bring back, and their order are those of a
/// walk by one thread (checked against the expected depth-first, name-sorted list).
#[test]
fn a_parallel_walk_keeps_order_and_patterns() {
    let t = tempfile::tempdir().unwrap();
    let c = t.path();
    let mut want = vec![".".to_string()];
    for d in 0..12 {
        let dir = format!("d{d:02}");
        if d == 3 {
            // Ignored, with one file brought back by an exception.
            write(&c.join(&dir).join("gone"), "x");
            write(&c.join(&dir).join("back"), "x");
            want.push(format!("./{dir}"));
            want.push(format!("./{dir}/back"));
            continue;
        }
        if d == 7 {
            // Ignored whole.
            write(&c.join(&dir).join("f"), "x");
            continue;
        }
        want.push(format!("./{dir}"));
        for f in 0..3 {
            write(&c.join(&dir).join(format!("f{f}")), "x");
            want.push(format!("./{dir}/f{f}"));
        }
        write(&c.join(&dir).join("sub/deep"), "x");
        want.push(format!("./{dir}/sub"));
        if d != 5 {
            want.push(format!("./{dir}/sub/deep"));
        }
        // A file between the directories, in name order.
        write(&c.join(format!("{dir}.txt")), "x");
        want.push(format!("./{dir}.txt"));
    }
    write(&c.join(".dockerignore"), "d03\n!d03/back\nd07\n");
    want.insert(1, "./.dockerignore".into());
    let ctx = Context::open(c, None).unwrap();
    let got = ctx
        .resolve(&strings(&["."]), &strings(&["d05/sub/deep"]))
        .unwrap();
    assert_eq!(paths(&got), want);
    // The same digest every time (the order feeds it).
    let again = ctx
        .resolve(&strings(&["."]), &strings(&["d05/sub/deep"]))
        .unwrap();
    assert_eq!(ctx.digest(&got).unwrap(), ctx.digest(&again).unwrap());
}

#[test]
fn new_files_get_their_owner_and_mode_whatever_the_directory_and_umask() {
    // A setgid destination would give a new file its group, and the umask would take mode
    // bits away: the copy still gives every file 0:0 (or --chown) and the source's mode.
    let t = context();
    let c = t.path();
    write(&c.join("open/f"), "f");
    fs::set_permissions(c.join("open/f"), fs::Permissions::from_mode(0o666)).unwrap();
    let r = rootfs();
    fs::create_dir_all(r.root.join("sg")).unwrap();
    std::os::unix::fs::chown(r.root.join("sg"), None, Some(4321)).unwrap();
    fs::set_permissions(r.root.join("sg"), fs::Permissions::from_mode(0o2775)).unwrap();
    let ctx = Context::open(c, None).unwrap();
    let fd = open_root(&r.root);
    let s = ctx.resolve(&strings(&["open"]), &[]).unwrap();
    // SAFETY: umask only changes this process's mode mask; restored below.
    let old = unsafe { libc::umask(0o027) };
    let copied = copy_into(fd.as_fd(), &s, "/sg/", &opts());
    unsafe { libc::umask(old) };
    copied.unwrap();
    let m = fs::metadata(r.root.join("sg/f")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, 0, 0o666));
    // A default ACL (user::rw-, group::rw-, other::---) gives new files modes of its own.
    fs::create_dir_all(r.root.join("acl")).unwrap();
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm) in [(0x01u16, 6u16), (0x04, 6), (0x20, 0)] {
        acl.extend_from_slice(&tag.to_le_bytes());
        acl.extend_from_slice(&perm.to_le_bytes());
        acl.extend_from_slice(&u32::MAX.to_le_bytes());
    }
    let path = std::ffi::CString::new(r.root.join("acl").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: NUL-terminated path and name; the value is `acl.len()` bytes.
    let set = unsafe {
        libc::setxattr(
            path.as_ptr(),
            c"system.posix_acl_default".as_ptr(),
            acl.as_ptr().cast(),
            acl.len(),
            0,
        )
    };
    if set == 0 {
        // 0644: nothing the umask takes, so only the ACL can change it.
        write(&c.join("narrow/g"), "g");
        fs::set_permissions(c.join("narrow/g"), fs::Permissions::from_mode(0o644)).unwrap();
        let ctx = Context::open(c, None).unwrap();
        let s = ctx.resolve(&strings(&["narrow"]), &[]).unwrap();
        copy_into(fd.as_fd(), &s, "/acl/", &opts()).unwrap();
        let m = fs::metadata(r.root.join("acl/g")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o644);
    }
}

#[test]
fn a_new_destination_is_filled_in_the_upper_directory() {
    // `root` plays the overlay's merged view and `upper` its upper directory: a directory the
    // copy makes (absent from the root before) is filled in the upper one; one that was there
    // goes through the root.
    let t = context();
    let r = rootfs();
    let upper = tempfile::tempdir().unwrap();
    // What the overlay does on a mkdir in the merged view: the directory in the upper one.
    fs::create_dir_all(upper.path().join("new")).unwrap();
    let ctx = Context::open(t.path(), None).unwrap();
    let fd = open_root(&r.root);
    let o = CopyOptions {
        upper: Some(upper.path().to_path_buf()),
        ..opts()
    };
    let d = ctx.resolve(&strings(&["dir"]), &[]).unwrap();
    copy_into(fd.as_fd(), &d, "/new/", &o).unwrap();
    assert_eq!(
        fs::read_to_string(upper.path().join("new/sub/two")).unwrap(),
        "2"
    );
    assert!(!r.root.join("new/sub").exists());
    // There now: a second copy goes through the root.
    copy_into(fd.as_fd(), &d, "/new/", &o).unwrap();
    assert_eq!(fs::read_to_string(r.root.join("new/sub/two")).unwrap(), "2");
}
