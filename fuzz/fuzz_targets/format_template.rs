//! `--format` templates (Go text/template subset, `table` prefix) over rows like `ps` prints.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcompose::cli::template::render;

fuzz_target!(|data: &[u8]| {
    let Ok(format) = std::str::from_utf8(data) else {
        return;
    };
    let rows = [
        serde_json::json!({"Name": "p-web-1", "Service": "web", "State": "running",
            "Publishers": [{"URL": "0.0.0.0", "TargetPort": 80, "PublishedPort": 8080}],
            "Labels": {"a": "b"}, "ExitCode": 0}),
        serde_json::json!({"Name": "p-db-1", "Service": "db", "State": "exited", "ExitCode": 1,
            "Nested": {"Deep": {"Deeper": [1, 2, {"x": null}]}}}),
    ];
    let headers = [("Name", "NAME"), ("Service", "SERVICE"), ("State", "STATE")];
    let _ = render(format, &rows, &headers);
});
