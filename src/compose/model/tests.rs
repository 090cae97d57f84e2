use std::path::Path;

use super::*;

fn project(json: &str) -> Project {
    let tree: Value = match serde_json::from_str(json) {
        Ok(t) => t,
        Err(e) => panic!("bad test json: {e}"),
    };
    match Project::from_value(tree) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn json(p: &Project) -> serde_json::Value {
    match p.to_json_value() {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

const SMALL: &str = r#"{
  "name": "demo",
  "services": {
    "web": {
      "image": "nginx",
      "command": null,
      "entrypoint": null,
      "depends_on": {"db": {"condition": "service_healthy", "required": true}},
      "environment": {"A": "1", "B": null},
      "healthcheck": {"test": ["CMD", "true"], "interval": "1m30s", "timeout": "500ms", "retries": 3},
      "mem_limit": "536870912",
      "ports": [{"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"}],
      "networks": {"default": null},
      "ulimits": {"nofile": {"soft": 1, "hard": 2}, "nproc": 5},
      "deploy": {"resources": {}, "placement": {}},
      "x-web": {"k": 1}
    },
    "db": {"image": "postgres", "command": ["postgres", "-c", "x=1"], "entrypoint": []}
  },
  "networks": {"default": {"name": "demo_default", "ipam": {}}},
  "secrets": {"s": {"name": "demo_s", "environment": "HOME", "content": "leak"}},
  "x-top": {"a": 1}
}"#;

#[test]
fn small_project_round_trip() {
    let p = project(SMALL);
    assert_eq!(p.name, "demo");
    // Insertion order in memory, sorted on output.
    assert_eq!(p.services.keys().collect::<Vec<_>>(), ["web", "db"]);
    assert_eq!(p.service_names(), ["db", "web"]);
    let web = p.service("web").cloned().unwrap_or_default();
    assert_eq!(web.name, "web");
    assert_eq!(web.dependencies().collect::<Vec<_>>(), ["db"]);
    assert_eq!(p.dependents("db"), ["web"]);
    assert_eq!(web.mem_limit, UnitBytes(512 << 20));
    let hc = web.healthcheck.clone().unwrap_or_default();
    assert_eq!(hc.interval.map(|d| d.to_string()).as_deref(), Some("1m30s"));
    assert_eq!(web.environment.get("B"), Some(&None));
    assert_eq!(web.ulimits.get("nproc").map(|u| u.single), Some(5));
    assert_eq!(
        web.extensions.get("x-web"),
        Some(&Value::from(serde_yaml::Mapping::from_iter([(
            Value::from("k"),
            Value::from(1)
        )])))
    );
    assert_eq!(web.scale(), 1);

    let out = json(&p);
    let mut want: serde_json::Value = serde_json::from_str(SMALL).unwrap_or_default();
    // JSON hides service extensions and secret content, as docker compose does.
    if let Some(m) = want["services"]["web"].as_object_mut() {
        m.remove("x-web");
    }
    if let Some(m) = want["secrets"]["s"].as_object_mut() {
        m.remove("content");
    }
    assert_eq!(out, want);
    // Services are printed sorted by name.
    let keys: Vec<_> = out["services"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["db", "web"]);
}

#[test]
fn json_prints_go_field_order() {
    let p = project(SMALL);
    // Struct declaration order inside a service.
    let text = serde_json::to_string(&p.service("web")).unwrap_or_default();
    let pos = |k: &str| text.find(&format!("\"{k}\"")).unwrap_or(usize::MAX);
    assert!(pos("command") < pos("depends_on"));
    assert!(pos("depends_on") < pos("deploy"));
    assert!(pos("deploy") < pos("entrypoint"));
    assert!(pos("entrypoint") < pos("environment"));
    assert!(pos("image") < pos("mem_limit"));
    assert!(text.contains(r#""command":null"#));
    assert!(text.contains(r#""interval":"1m30s""#));
    // Sorted keys at the top level.
    let text = serde_json::to_string(&p).unwrap_or_default();
    let pos = |k: &str| text.find(&format!("\"{k}\"")).unwrap_or(usize::MAX);
    assert!(pos("name") < pos("networks"));
    assert!(pos("networks") < pos("secrets"));
    assert!(pos("secrets") < pos("services"));
    assert!(pos("services") < pos("x-top"));
}

#[test]
fn yaml_mode_differs_like_docker_compose() {
    let p = project(SMALL);
    let y = match p.to_yaml_value() {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    let web = &y["services"]["web"];
    assert!(
        web.get("command").is_none(),
        "unset command omitted in YAML"
    );
    assert_eq!(web["x-web"]["k"], Value::from(1));
    assert!(web["deploy"].get("resources").is_none());
    assert_eq!(y["services"]["db"]["entrypoint"], Value::Sequence(vec![]));
    // The JSON mode is restored afterwards.
    assert_eq!(
        json(&p)["services"]["web"]["command"],
        serde_json::Value::Null
    );
}

#[test]
fn lenient_scalars_and_short_forms() {
    let yaml = r#"
name: t
services:
  s:
    image: x
    labels: {a: 1, b: true, c: null}
    sysctls: [net.core.somaxconn=1024]
    expose: [80, "81"]
    extra_hosts: {h: "[::1]"}
    healthcheck: {test: "curl -f x", start_period: 1d}
    deploy: {resources: {limits: {cpus: "0.5", memory: 1g}}}
    secrets: [{source: s, mode: 0440}]
    build: {context: ., ssh: {default: null, key: /k}}
    gpus: [{count: all}]
volumes:
  data:
"#;
    let tree: Value = serde_yaml::from_str(yaml).unwrap_or(Value::Null);
    let p = match Project::from_value(tree) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let s = p.service("s").cloned().unwrap_or_default();
    assert_eq!(s.labels.get("a").map(String::as_str), Some("1"));
    assert_eq!(s.labels.get("b").map(String::as_str), Some("true"));
    assert_eq!(s.labels.get("c").map(String::as_str), Some(""));
    assert_eq!(
        s.sysctls.get("net.core.somaxconn").map(String::as_str),
        Some("1024")
    );
    assert_eq!(s.expose, ["80", "81"]);
    assert_eq!(s.extra_hosts.as_list(":"), ["h:::1"]);
    let hc = s.healthcheck.clone().unwrap_or_default();
    assert_eq!(hc.test, ["CMD-SHELL", "curl -f x"]);
    assert_eq!(
        hc.start_period.map(|d| d.to_string()).as_deref(),
        Some("24h0m0s")
    );
    let limits = s
        .deploy
        .and_then(|d| d.resources.limits)
        .unwrap_or_default();
    assert_eq!((limits.cpus, limits.memory), (0.5, UnitBytes(1 << 30)));
    // serde_yaml reads a leading-zero integer as octal, as Go's YAML decoder does.
    assert_eq!(s.secrets[0].mode, Some(FileMode(0o440)));
    let ssh = s.build.map(|b| b.ssh).unwrap_or_default();
    assert_eq!(ssh.len(), 2);
    assert_eq!((ssh[1].id.as_str(), ssh[1].path.as_str()), ("key", "/k"));
    assert_eq!(s.gpus[0].count, -1);
    assert!(p.volumes.contains_key("data"));
    let out = json(&p);
    assert_eq!(
        out["services"]["s"]["extra_hosts"],
        serde_json::json!(["h=::1"])
    );
    assert_eq!(
        out["services"]["s"]["deploy"]["resources"]["limits"]["cpus"],
        serde_json::json!(0.5)
    );
}

#[test]
fn decode_errors_name_the_path() {
    let tree: Value =
        serde_yaml::from_str("services:\n  web:\n    healthcheck:\n      interval: 10 seconds\n")
            .unwrap_or(Value::Null);
    let err = Project::from_value(tree)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("services.web.healthcheck.interval"), "{err}");
    assert!(err.contains("invalid duration"), "{err}");

    let tree: Value =
        serde_yaml::from_str("services:\n  web:\n    shm_size: lots\n").unwrap_or(Value::Null);
    let err = Project::from_value(tree)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("services.web.shm_size"), "{err}");

    let tree: Value =
        serde_yaml::from_str("services:\n  web:\n    command: echo hi\n").unwrap_or(Value::Null);
    assert!(
        Project::from_value(tree).is_err(),
        "shell strings must be split by the loader"
    );
}

/// Every accepted conformance file: the oracle's JSON, read into the model and printed back,
/// must be unchanged.
#[test]
fn oracle_round_trip() {
    let dir = Path::new("/tmp/oracle");
    let Ok(entries) = std::fs::read_dir(dir) else {
        eprintln!("skipping oracle round trip: {} is absent", dir.display());
        return;
    };
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("rc") {
            continue;
        }
        if !std::fs::read_to_string(&path).is_ok_and(|s| s.trim() == "0") {
            continue;
        }
        let json_path = path.with_extension("json");
        let Ok(text) = std::fs::read_to_string(&json_path) else {
            failures.push(format!("{}: unreadable", json_path.display()));
            continue;
        };
        checked += 1;
        let want: serde_json::Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{}: {e}", json_path.display()));
                continue;
            }
        };
        let tree: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{}: {e}", json_path.display()));
                continue;
            }
        };
        let got = Project::from_value(tree).and_then(|p| p.to_json_value());
        match got {
            Ok(got) if got == want => {}
            Ok(got) => failures.push(format!(
                "{}: differs\n got: {}\nwant: {}",
                json_path.display(),
                got,
                want
            )),
            Err(e) => failures.push(format!("{}: {e}", json_path.display())),
        }
    }
    eprintln!("oracle round trip: {checked} files checked");
    assert!(
        checked > 0,
        "no oracle output with rc 0 in {}",
        dir.display()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn json_is_escaped_as_go_writes_it() {
    let v = serde_json::json!({"a": "<b>&c\u{2028}d\u{2029}", "k<": 1});
    assert_eq!(
        Project::go_json(&v, false).unwrap(),
        r#"{"a":"\u003cb\u003e\u0026c\u2028d\u2029","k\u003c":1}"#
    );
}

#[test]
fn the_service_hash_leaves_out_what_never_recreates() {
    let service = |extra: &str| -> ServiceConfig {
        let yaml = format!("image: busybox\nenvironment: {{A: \"1\"}}\n{extra}");
        let mut v: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        v["name"] = "s".into();
        serde_yaml::from_value(v).unwrap()
    };
    let base = service("").docker_hash().unwrap();
    for same in [
        "depends_on: {db: {condition: service_started, required: true}}",
        "pull_policy: always",
        "scale: 3",
        "profiles: [dev]",
        "deploy: {replicas: 2}",
    ] {
        assert_eq!(service(same).docker_hash().unwrap(), base, "{same}");
    }
    for different in ["command: [\"true\"]", "labels: {a: b}", "init: true"] {
        assert_ne!(
            service(different).docker_hash().unwrap(),
            base,
            "{different}"
        );
    }
}
