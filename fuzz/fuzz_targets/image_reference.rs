//! Image references (`registry/repo:tag@digest`) and platforms (`os/arch/variant`). A parsed
//! reference prints as text that parses back to the same image.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcompose::image::reference::{Platform, Reference};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Reference::parse(text) {
        let _ = (r.name(), r.familiar_name(), r.familiar(), r.api_host());
        let _ = (r.tag_or_latest(), r.manifest_reference(), r.is_digest());
        // Printed in full (`latest` when no tag was given), it parses back to the same image.
        let printed = r.to_string();
        match Reference::parse(&printed) {
            Ok(again) => assert_eq!(
                (
                    &again.registry,
                    &again.repository,
                    again.tag_or_latest(),
                    &again.digest
                ),
                (&r.registry, &r.repository, r.tag_or_latest(), &r.digest),
                "{text:?} printed as {printed:?}"
            ),
            Err(e) => panic!("{text:?} printed as {printed:?}, which does not parse: {e}"),
        }
    }
    if let Ok(p) = Platform::parse(text) {
        let n = p.normalized();
        let _ = (
            n.compatible(),
            Platform::host().match_rank(&n),
            p.to_string(),
        );
    }
});
