//! `.env` and `env_file` parsing: both the compose format and the raw (`format: raw`) one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcompose::compose::dotenv;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lookup = |name: &str| (name == "HOME").then(|| "/root".to_string());
    let mut warnings = 0usize;
    let _ = dotenv::parse_with_warnings(text, &lookup, &mut |_| warnings += 1);
    let _ = dotenv::parse_raw(text, &lookup);
});
