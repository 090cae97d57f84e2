//! What a registry sends at pull time: the top manifest (an index or an image manifest), the
//! platform chosen from an index, and the image config with what the runtime takes from it
//! (the healthcheck).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcompose::compose::model::ServiceConfig;
use rcompose::image::config::{ConfigBlob, Index, Manifest};
use rcompose::image::reference::Platform;
use rcompose::supervisor::health::Check;

fuzz_target!(|data: &[u8]| {
    if let Ok(top) = serde_json::from_slice::<serde_json::Value>(data) {
        if top.get("manifests").is_some() {
            if let Ok(index) = serde_json::from_value::<Index>(top) {
                let entries: Vec<Option<Platform>> = index
                    .manifests
                    .iter()
                    .map(|d| {
                        let p = d.platform.as_ref()?;
                        Some(Platform::new(&p.os, &p.architecture, p.variant.as_deref()))
                    })
                    .collect();
                for wanted in [Platform::host(), Platform::new("linux", "arm", Some("v7"))] {
                    if let Ok(i) = wanted.choose(&entries) {
                        let _ = index.manifests.get(i).map(|d| d.digest.hex().len());
                    }
                }
                let _ = serde_json::to_vec(&index);
            }
        } else if let Ok(manifest) = serde_json::from_value::<Manifest>(top) {
            for layer in &manifest.layers {
                let _ = (&layer.digest.hex()[..12], layer.size, &layer.media_type);
            }
        }
    }
    if let Ok(config) = serde_json::from_slice::<ConfigBlob>(data) {
        for id in &config.rootfs.diff_ids {
            let _ = &id.hex()[..12];
        }
        let service = ServiceConfig {
            name: "fuzz".into(),
            ..ServiceConfig::default()
        };
        let _ = Check::resolve(&service, config.config.healthcheck.as_ref());
        let _ = serde_json::to_vec(&config);
    }
});
