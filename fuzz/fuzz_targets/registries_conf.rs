//! registries.conf (TOML, containers-registries.conf(5)): parse, then the endpoints for a
//! reference. The first line is the reference, the rest the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcompose::image::reference::Reference;
use rcompose::image::registries::Registries;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (first, conf) = text.split_once('\n').unwrap_or(("redis", text));
    let Ok(registries) = Registries::from_toml(conf, Path::new("/fuzz/registries.conf")) else {
        return;
    };
    for name in [
        first,
        "redis",
        "localhost:5000/app:1",
        "quay.io/a/b@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        if let Ok(reference) = Reference::parse(name) {
            let _ = registries.find(&reference.name());
            if let Ok(endpoints) = registries.endpoints(&reference) {
                for e in endpoints {
                    let _ = (e.api_host(), e.reference(&reference));
                }
            }
        }
    }
});
