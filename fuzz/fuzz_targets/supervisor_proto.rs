//! The supervisor's control protocol: one JSON request line from a client, JSON reply lines
//! back. Both decoders get every line of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcompose::supervisor::proto::{Reply, Request};

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        if let Ok(request) = serde_json::from_slice::<Request>(line) {
            let _ = serde_json::to_vec(&request);
        }
        let _ = serde_json::from_slice::<Reply>(line);
    }
});
