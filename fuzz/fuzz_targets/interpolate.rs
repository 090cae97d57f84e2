//! `${VAR}` interpolation of one string (defaults, alternates, required, nesting) and the scan
//! that lists a string's variables.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcompose::compose::interpolate;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lookup = |name: &str| match name {
        "SET" => Some("value".to_string()),
        "EMPTY" => Some(String::new()),
        "DOLLAR" => Some("$OTHER".to_string()),
        _ => None,
    };
    let _ = interpolate::interpolate_str(text, &lookup);
    let _ = interpolate::variables(text);
});
