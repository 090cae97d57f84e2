//! Docker/podman auth files (`config.json`, `auth.json`): parse, then look up credentials. The
//! first line is `host repository`, the rest the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcompose::image::auth::{AuthFile, AuthStore};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (first, json) = text
        .split_once('\n')
        .unwrap_or(("docker.io library/redis", text));
    let Ok(file) = AuthFile::parse(json, Path::new("/fuzz/config.json")) else {
        return;
    };
    let store = AuthStore::from_files(vec![file]);
    let (host, repository) = first.split_once(' ').unwrap_or((first, "library/redis"));
    let _ = store.lookup(host, repository);
    let _ = store.lookup("index.docker.io", "library/busybox");
    let _ = store.lookup("localhost:5000", "app");
});
