//! Layer unpacking (tar, gzip or zstd by magic) into a fresh directory deep inside a sandbox,
//! with the unpack tests' rule: nothing outside the layer directory may change.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcompose::image::unpack::{unpack_layer, Compression, Limits};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Everything in `root` but `skip`: path → (type, mode, size, mtime), not following symlinks.
fn snapshot(root: &Path, skip: &Path) -> BTreeMap<PathBuf, String> {
    let mut seen = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(children) = std::fs::read_dir(&dir) else {
            continue;
        };
        for child in children.flatten() {
            let path = child.path();
            if path == skip {
                continue;
            }
            let Ok(md) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            seen.insert(
                path.clone(),
                format!(
                    "{:?} {:o} {} {}.{}",
                    md.file_type(),
                    md.mode(),
                    md.len(),
                    md.mtime(),
                    md.mtime_nsec()
                ),
            );
            if md.is_dir() {
                stack.push(path);
            }
        }
    }
    seen
}

fuzz_target!(|data: &[u8]| {
    // On tmpfs when there is one: the fuzzer makes thousands of these a second.
    let base = Path::new("/dev/shm");
    let tmp = if base.is_dir() {
        tempfile::tempdir_in(base)
    } else {
        tempfile::tempdir()
    };
    let Ok(tmp) = tmp else {
        return;
    };
    let dest = tmp.path().join("s1/s2/layer");
    if std::fs::create_dir_all(&dest).is_err()
        || std::fs::create_dir(tmp.path().join("victim")).is_err()
        || std::fs::write(tmp.path().join("victim/secret"), b"keep").is_err()
    {
        return;
    }
    let before = snapshot(tmp.path(), &dest);
    // Small limits keep each run short; the checks are the same at any size.
    let limits = Limits {
        max_uncompressed: 8 << 20,
        max_entries: 2_000,
        max_path_len: 4096,
        max_header_bytes: 1 << 20,
    };
    let compression = Compression::from_magic(data);
    let _ = unpack_layer(data, compression, &dest, &limits);
    assert_eq!(
        snapshot(tmp.path(), &dest),
        before,
        "something changed outside the layer"
    );
});
