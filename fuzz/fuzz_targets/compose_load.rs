//! The compose loader through the entry point `rcompose config` uses: one in-memory file
//! (`-f -`), every step on (interpolation, merge keys, tags, normalisation, consistency), then
//! the project rendered as YAML and JSON like `config` prints it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcompose::compose::loader::{self, Options};
use std::path::PathBuf;

/// An empty directory of its own, so relative paths (env_file, include, extends, build
/// contexts) resolve to nothing the fuzzer can change.
fn workdir() -> PathBuf {
    let dir = std::env::temp_dir().join("rcompose-fuzz-compose-load");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let cwd = workdir();
    let mut os_env = rcompose::compose::environment::Environment::new();
    os_env.insert("PWD".into(), cwd.display().to_string());
    os_env.insert("HOME".into(), "/root".into());
    os_env.insert("TAG".into(), "1.0".into());
    os_env.insert("EMPTY".into(), String::new());
    let opts = Options {
        files: vec!["-".into()],
        project_name: None,
        project_directory: None,
        profiles: vec!["debug".into()],
        env_files: Vec::new(),
        services: Vec::new(),
        interpolate: true,
        normalize: true,
        resolve_paths: true,
        consistency: true,
        check_names: false,
        cwd,
        os_env,
        stdin: Some(text.to_string()),
    };
    if let Ok(loaded) = loader::load(&opts) {
        if let Ok(yaml) = loaded.project.to_yaml_value() {
            let _ = serde_yaml::to_string(&yaml);
        }
        if let Ok(json) = loaded.project.to_json_value() {
            let _ = rcompose::compose::model::Project::go_json(&json, true);
        }
    }
});
