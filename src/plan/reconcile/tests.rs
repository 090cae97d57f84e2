//! Golden plans: each scenario is a compose file, what exists, and the options; its plan is
//! compared with `golden/<scenario>.txt` (the `--dry-run` text). `RCOMPOSE_UPDATE_GOLDEN=1`
//! rewrites the files; review the diff before committing it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::compose::loader::{load, Options};
use crate::plan::observed::ObservedNetwork;
use crate::supervisor::state::Status;

fn project(yaml: &str) -> Project {
    project_with(yaml, &[])
}

fn project_with(yaml: &str, profiles: &[&str]) -> Project {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        profiles: profiles.iter().map(|p| p.to_string()).collect(),
        ..Options::for_test(dir.path(), "demo", yaml)
    };
    load(&opts).expect("test compose file loads").project
}

/// Every service's image present, with an id made of its name and `generation`.
fn images(p: &Project, generation: u32) -> BTreeMap<String, ImageChoice> {
    p.services
        .keys()
        .map(|s| {
            (
                s.clone(),
                ImageChoice {
                    id: Some(format!("sha256:{s}{generation}")),
                    fetch: None,
                },
            )
        })
        .collect()
}

/// What exists after an `up` of `p` with `images`, every container in `status`.
fn after_up(p: &Project, images: &BTreeMap<String, ImageChoice>, status: Status) -> Observed {
    let mut containers = Vec::new();
    for (name, service) in &p.services {
        let image = images[name].id.clone().expect("test image id");
        for number in 1..=service.scale().max(0) as u32 {
            let cname = crate::supervisor::container_name(p, service, number);
            containers.push(ObservedContainer {
                id: {
                    use sha2::Digest as _;
                    hex::encode(sha2::Sha256::digest(cname.as_bytes()))
                },
                name: cname,
                service: name.clone(),
                number,
                oneoff: false,
                image_id: image.clone(),
                config_hash: config_hash(service, &image),
                config_fields: service_fields(service),
                status,
                stop_grace: Duration::from_secs(10),
                depends_on: service.depends_on.keys().cloned().collect(),
                restart_with: service
                    .depends_on
                    .iter()
                    .filter(|(_, d)| d.restart)
                    .map(|(s, _)| s.clone())
                    .collect(),
                networks: if service.network_mode.is_empty() {
                    service.networks.keys().cloned().collect()
                } else {
                    Vec::new()
                },
            });
        }
    }
    let names: Vec<&str> = p.services.keys().map(String::as_str).collect();
    let networks = project_net::used_networks(p, &names)
        .expect("networks")
        .into_iter()
        .map(|(key, config)| ObservedNetwork {
            key: key.to_string(),
            name: project_net::network_name(p, key, config),
            external: config.external,
            config_fields: project_net::network_fields(config),
            used_by_others: false,
        })
        .collect();
    Observed {
        containers,
        networks,
        volumes: Vec::new(),
    }
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/plan/reconcile/golden")
}

/// Compares `text` with the golden file of `scenario` (or rewrites it).
fn check(scenario: &str, text: &str) {
    let path = golden_dir().join(format!("{scenario}.txt"));
    if std::env::var_os("RCOMPOSE_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, text).expect("write golden file");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (RCOMPOSE_UPDATE_GOLDEN=1 writes it)",
            path.display()
        )
    });
    assert_eq!(
        text,
        want,
        "plan of {scenario} differs from {}",
        path.display()
    );
}

fn check_up(
    scenario: &str,
    p: &Project,
    imgs: &BTreeMap<String, ImageChoice>,
    o: &Observed,
    opts: &UpOptions,
) {
    let plan = up(p, imgs, o, opts).expect("plan");
    check(scenario, &plan.to_string());
}

fn opts() -> UpOptions {
    UpOptions::default()
}

const WEB_REDIS: &str = "
services:
  web:
    image: web
    environment: {MODE: one}
    ports: ['8080:80']
    depends_on:
      redis: {condition: service_healthy}
  redis:
    image: redis
    volumes: [/data]
    healthcheck: {test: [CMD, 'true']}
";

fn web_redis() -> Project {
    project(WEB_REDIS)
}

fn edit(yaml: &str, from: &str, to: &str) -> Project {
    assert!(yaml.contains(from), "{from:?} not in the test file");
    project(&yaml.replacen(from, to, 1))
}

#[test]
fn first_up() {
    let p = web_redis();
    check_up(
        "first_up",
        &p,
        &images(&p, 1),
        &Observed::default(),
        &opts(),
    );
}

#[test]
fn nothing_changed() {
    let p = web_redis();
    let i = images(&p, 1);
    let o = after_up(&p, &i, Status::Running);
    check_up("nothing_changed", &p, &i, &o, &opts());
}

#[test]
fn environment_changed() {
    let p = web_redis();
    let i = images(&p, 1);
    let o = after_up(&p, &i, Status::Running);
    let p2 = edit(WEB_REDIS, "MODE: one", "MODE: two");
    check_up("environment_changed", &p2, &i, &o, &opts());
}

#[test]
fn image_changed() {
    let p = web_redis();
    let o = after_up(&p, &images(&p, 1), Status::Running);
    let mut i2 = images(&p, 1);
    i2.insert("redis".into(), images(&p, 2)["redis"].clone());
    check_up("image_changed", &p, &i2, &o, &opts());
}

#[test]
fn scale_up() {
    let p = web_redis();
    let i = images(&p, 1);
    let o = after_up(&p, &i, Status::Running);
    let opts = UpOptions {
        scale: vec![("redis".into(), 3)],
        ..opts()
    };
    check_up("scale_up", &p, &i, &o, &opts);
}

#[test]
fn scale_down() {
    let yaml = WEB_REDIS.replace("    image: redis\n", "    image: redis\n    scale: 3\n");
    let p = project(&yaml);
    let i = images(&p, 1);
    let o = after_up(&p, &i, Status::Running);
    let opts = UpOptions {
        scale: vec![("redis".into(), 1)],
        ..opts()
    };
    check_up("scale_down", &p, &i, &o, &opts);
}

#[test]
fn orphans_are_named_in_a_warning() {
    let p = web_redis();
    let i = images(&p, 1);
    let o = after_up(&p, &i, Status::Running);
    let p2 = project("services:\n  web:\n    image: web\n");
    check_up("orphans_warned", &p2, &images(&p2, 1), &o, &opts());
}

#[test]
fn orphans_are_removed_when_asked() {
    let p = web_redis();
    let i = images(&p, 1);
    let o = after_up(&p, &i, Status::Running);
    let p2 = project(&WEB_REDIS.replace("redis", "cache"));
    let opts = UpOptions {
        remove_orphans: true,
        ..opts()
    };
    check_up("orphans_removed", &p2, &images(&p2, 1), &o, &opts);
}

const PROFILES: &str = "
services:
  app:
    image: app
  debug:
    image: tools
    profiles: [debug]
";

#[test]
fn a_profile_switched_on() {
    let off = project_with(PROFILES, &[]);
    let o = after_up(&off, &images(&off, 1), Status::Running);
    let on = project_with(PROFILES, &["debug"]);
    check_up("profile_on", &on, &images(&on, 1), &o, &opts());
}

#[test]
fn a_profile_switched_off_is_not_an_orphan() {
    let on = project_with(PROFILES, &["debug"]);
    let o = after_up(&on, &images(&on, 1), Status::Running);
    let off = project_with(PROFILES, &[]);
    let opts = UpOptions {
        disabled_services: vec!["debug".into()],
        remove_orphans: true,
        ..opts()
    };
    check_up("profile_off", &off, &images(&off, 1), &o, &opts);
}

const RESTART_DEP: &str = "
services:
  api:
    image: api
    depends_on:
      db: {condition: service_started, restart: true}
  worker:
    image: worker
    depends_on: [db]
  db:
    image: db
    environment: {VERSION: '1'}
";

#[test]
fn a_dependency_recreated_restarts_dependents_that_ask() {
    let p = project(RESTART_DEP);
    let i = images(&p, 1);
    let o = after_up(&p, &i, Status::Running);
    let p2 = edit(RESTART_DEP, "VERSION: '1'", "VERSION: '2'");
    check_up("dependency_recreated_restart", &p2, &i, &o, &opts());
}

#[test]
fn a_changed_network_is_recreated_with_its_containers() {
    let yaml = "
services:
  web: {image: web, networks: [back]}
  db: {image: db, networks: [back]}
  other: {image: other}
networks:
  back: {}
";
    let p = project(yaml);
    let i = images(&p, 1);
    let o = after_up(&p, &i, Status::Running);
    let p2 = project(&yaml.replace("back: {}", "back: {internal: true}"));
    check_up("network_changed", &p2, &i, &o, &opts());
}

#[test]
fn a_changed_network_other_projects_use_is_an_error() {
    let yaml = "
services:
  web: {image: web, networks: [back]}
networks:
  back: {name: shared}
";
    let p = project(yaml);
    let i = images(&p, 1);
    let mut o = after_up(&p, &i, Status::Running);
    o.networks[0].used_by_others = true;
    let p2 = project(&yaml.replace("{name: shared}", "{name: shared, internal: true}"));
    let e = up(&p2, &i, &o, &opts()).expect_err("shared network");
    assert_eq!(
        e.to_string(),
        "network shared has changed (internal) but containers of other projects are attached to it: stop them first"
    );
}

#[test]
fn no_deps_plans_only_the_service() {
    let p = web_redis();
    let opts = UpOptions {
        services: vec!["web".into()],
        no_deps: true,
        ..opts()
    };
    check_up("no_deps", &p, &images(&p, 1), &Observed::default(), &opts);
}

#[test]
fn a_service_brings_its_dependencies() {
    let p = web_redis();
    let opts = UpOptions {
        services: vec!["web".into()],
        ..opts()
    };
    check_up(
        "service_with_dependencies",
        &p,
        &images(&p, 1),
        &Observed::default(),
        &opts,
    );
}

#[test]
fn force_recreate() {
    let p = web_redis();
    let i = images(&p, 1);
    let o = after_up(&p, &i, Status::Running);
    let opts = UpOptions {
        force_recreate: true,
        ..opts()
    };
    check_up("force_recreate", &p, &i, &o, &opts);
}

#[test]
fn force_recreate_of_a_named_service_leaves_its_dependencies() {
    let p = web_redis();
    let i = images(&p, 1);
    let o = after_up(&p, &i, Status::Running);
    let opts = UpOptions {
        services: vec!["web".into()],
        force_recreate: true,
        ..opts()
    };
    check_up("force_recreate_named", &p, &i, &o, &opts);
}

#[test]
fn always_recreate_deps() {
    let p = web_redis();
    let i = images(&p, 1);
    let o = after_up(&p, &i, Status::Running);
    let opts = UpOptions {
        services: vec!["web".into()],
        always_recreate_deps: true,
        ..opts()
    };
    check_up("always_recreate_deps", &p, &i, &o, &opts);
}

#[test]
fn no_recreate_keeps_changed_containers() {
    let p = web_redis();
    let i = images(&p, 1);
    let o = after_up(&p, &i, Status::Exited);
    let p2 = edit(WEB_REDIS, "MODE: one", "MODE: two");
    let opts = UpOptions {
        no_recreate: true,
        ..opts()
    };
    check_up("no_recreate", &p2, &i, &o, &opts);
}

#[test]
fn renew_anon_volumes() {
    let p = web_redis();
    let i = images(&p, 1);
    let o = after_up(&p, &i, Status::Running);
    let opts = UpOptions {
        services: vec!["redis".into()],
        renew_anon_volumes: true,
        ..opts()
    };
    check_up("renew_anon_volumes", &p, &i, &o, &opts);
}

#[test]
fn stopped_containers_are_started() {
    let p = web_redis();
    let i = images(&p, 1);
    let o = after_up(&p, &i, Status::Exited);
    check_up("stopped_started", &p, &i, &o, &opts());
}

#[test]
fn create_does_not_start() {
    let p = web_redis();
    let opts = UpOptions {
        no_start: true,
        ..opts()
    };
    check_up("no_start", &p, &images(&p, 1), &Observed::default(), &opts);
}

#[test]
fn images_to_pull_and_build_come_first() {
    let p = project(
        "
services:
  app:
    build: .
    image: app
  cache:
    image: redis
",
    );
    let mut i = BTreeMap::new();
    i.insert(
        "app".to_string(),
        ImageChoice {
            id: None,
            fetch: Some(Fetch::Build("build requested".into())),
        },
    );
    i.insert(
        "cache".to_string(),
        ImageChoice {
            id: None,
            fetch: Some(Fetch::Pull("image missing".into())),
        },
    );
    check_up("pull_and_build", &p, &i, &Observed::default(), &opts());
}

#[test]
fn a_pulled_image_of_an_unchanged_service_does_not_recreate_before_its_id_is_known() {
    let p = web_redis();
    let i = images(&p, 1);
    let o = after_up(&p, &i, Status::Running);
    let mut i2 = i.clone();
    i2.insert(
        "redis".into(),
        ImageChoice {
            id: Some("sha256:redis1".into()),
            fetch: Some(Fetch::Pull("--pull always".into())),
        },
    );
    check_up("pull_always_unchanged", &p, &i2, &o, &opts());
}

#[test]
fn conditions_completed_and_optional() {
    let p = project(
        "
services:
  app:
    image: app
    depends_on:
      migrate: {condition: service_completed_successfully}
      metrics: {condition: service_started, required: false}
  migrate:
    image: tool
  metrics:
    image: metrics
",
    );
    check_up(
        "conditions",
        &p,
        &images(&p, 1),
        &Observed::default(),
        &opts(),
    );
}

#[test]
fn namespaces_and_volumes_of_other_services() {
    let p = project(
        "
services:
  app:
    image: app
    volumes: [data:/data]
  sidecar:
    image: tool
    network_mode: service:app
  backup:
    image: tool
    volumes_from: [app:ro]
volumes:
  data: {}
",
    );
    check_up(
        "namespaces_and_volumes_from",
        &p,
        &images(&p, 1),
        &Observed::default(),
        &opts(),
    );
}

#[test]
fn only_depends_on_changed_recreates_nothing() {
    let yaml = "
services:
  web: {image: web}
  db: {image: db}
";
    let p = project(yaml);
    let i = images(&p, 1);
    let o = after_up(&p, &i, Status::Running);
    let p2 = project(&yaml.replace("{image: web}", "{image: web, depends_on: [db]}"));
    check_up("depends_on_changed", &p2, &i, &o, &opts());
}

#[test]
fn a_recreated_service_with_a_container_name() {
    let yaml = "
services:
  web: {image: web, container_name: front, environment: {A: '1'}}
";
    let p = project(yaml);
    let i = images(&p, 1);
    let o = after_up(&p, &i, Status::Running);
    let p2 = project(&yaml.replace("A: '1'", "A: '2'"));
    check_up("container_name_recreated", &p2, &i, &o, &opts());
}

#[test]
fn unknown_services_and_cycles_are_errors() {
    let p = web_redis();
    let opts = UpOptions {
        services: vec!["nope".into()],
        ..opts()
    };
    let e = up(&p, &images(&p, 1), &Observed::default(), &opts).expect_err("unknown");
    assert_eq!(e.to_string(), "no such service: nope");
    let scale = UpOptions {
        scale: vec![("ghost".into(), 2)],
        ..UpOptions::default()
    };
    let e = up(&p, &images(&p, 1), &Observed::default(), &scale).expect_err("unknown");
    assert_eq!(e.to_string(), "no such service: ghost");
}

#[test]
fn down_removes_everything_dependents_first() {
    let p = web_redis();
    let o = after_up(&p, &images(&p, 1), Status::Running);
    let plan = down(&o, &DownOptions::default());
    check("down", &plan.to_string());
}

#[test]
fn down_with_volumes() {
    let p = web_redis();
    let mut o = after_up(&p, &images(&p, 1), Status::Running);
    o.volumes = vec!["demo_data".into()];
    o.containers[0].status = Status::Exited;
    let plan = down(
        &o,
        &DownOptions {
            volumes: true,
            timeout: Some(Duration::from_secs(3)),
            ..DownOptions::default()
        },
    );
    check("down_volumes", &plan.to_string());
}

#[test]
fn down_keeps_orphans_and_networks_unless_asked() {
    let p = web_redis();
    let o = after_up(&p, &images(&p, 1), Status::Running);
    let plan = down(
        &o,
        &DownOptions {
            services: Some(vec!["web".into()]),
            ..DownOptions::default()
        },
    );
    check("down_orphans_kept", &plan.to_string());
    let plan = down(
        &o,
        &DownOptions {
            services: Some(vec!["web".into()]),
            remove_orphans: true,
            ..DownOptions::default()
        },
    );
    check("down_orphans_removed", &plan.to_string());
}

#[test]
fn down_of_nothing() {
    let plan = down(&Observed::default(), &DownOptions::default());
    check("down_nothing", &plan.to_string());
}

#[test]
fn stop_goes_dependents_first() {
    let p = project(RESTART_DEP);
    let o = after_up(&p, &images(&p, 1), Status::Running);
    let all: Vec<&ObservedContainer> = o.containers.iter().collect();
    let plan = stop(&all, None);
    check("stop", &plan.to_string());
}

/// Every plan only points backwards, and every step's predecessors exist.
#[test]
fn plans_are_well_formed() {
    let p = web_redis();
    let i = images(&p, 1);
    let o = after_up(&p, &i, Status::Running);
    let p2 = edit(WEB_REDIS, "MODE: one", "MODE: two");
    for opts in [
        opts(),
        UpOptions {
            force_recreate: true,
            ..opts()
        },
        UpOptions {
            scale: vec![("web".into(), 4)],
            ..opts()
        },
    ] {
        let plan = up(&p2, &i, &o, &opts).expect("plan");
        for (id, s) in plan.steps.iter().enumerate() {
            assert!(s.after.iter().all(|a| *a < id), "{plan}");
        }
    }
}

#[test]
fn start_goes_dependencies_first_and_rm_takes_stopped_ones() {
    let p = project(RESTART_DEP);
    let mut o = after_up(&p, &images(&p, 1), Status::Exited);
    o.containers[1].status = Status::Running;
    let all: Vec<&ObservedContainer> = o.containers.iter().collect();
    check("start", &start(&all).to_string());
    check("rm", &remove(&all, false, true).to_string());
    check("rm_stop", &remove(&all, true, false).to_string());
}

#[test]
fn a_one_off_run_waits_for_its_dependencies() {
    let p = project(
        "
services:
  app:
    image: app
    depends_on:
      db: {condition: service_healthy}
      cache: {condition: service_started, required: false}
  db:
    image: db
    scale: 2
  cache:
    image: cache
",
    );
    let mut o = after_up(&p, &images(&p, 1), Status::Running);
    o.containers.retain(|c| c.service != "cache");
    let plan = dependency_waits(&p.services["app"], &o).expect("plan");
    check("run_dependency_waits", &plan.to_string());
    o.containers.retain(|c| c.service != "db");
    let e = dependency_waits(&p.services["app"], &o).expect_err("db missing");
    assert_eq!(
        e.to_string(),
        "dependency failed to start: service db did not start"
    );
}

#[test]
fn a_changed_network_recreates_the_containers_of_services_not_named() {
    let yaml = "
services:
  web: {image: web, networks: [back]}
  db: {image: db, networks: [back]}
networks:
  back: {}
";
    let p = project(yaml);
    let i = images(&p, 1);
    let o = after_up(&p, &i, Status::Running);
    let p2 = project(&yaml.replace("back: {}", "back: {internal: true}"));
    let opts = UpOptions {
        services: vec!["web".into()],
        ..opts()
    };
    check_up("network_changed_partial_up", &p2, &i, &o, &opts);
}

#[test]
fn a_one_off_run_waits_makes_its_missing_networks_and_starts() {
    let p = project(
        "
services:
  app:
    image: app
    networks: [front, back]
    depends_on:
      db: {condition: service_healthy}
  db:
    image: db
    networks: [back]
networks:
  front: {}
  back: {}
",
    );
    let mut o = after_up(&p, &images(&p, 1), Status::Running);
    // Only db's network exists: the run makes app's other one.
    o.containers.retain(|c| c.service == "db");
    o.networks.retain(|n| n.key == "back");
    let app = &p.services["app"];
    let pull = ImageChoice {
        id: None,
        fetch: Some(Fetch::Pull("image missing".into())),
    };
    let plan = run(&p, app, &pull, &o, "demo-app-run-1", false).expect("plan");
    check("run", &plan.to_string());
    // --no-deps: no waits, whatever the dependencies' state.
    o.containers.clear();
    let plan = run(&p, app, &ImageChoice::default(), &o, "x", true).expect("plan");
    check("run_no_deps", &plan.to_string());
    let e = run(&p, app, &ImageChoice::default(), &o, "x", false).expect_err("db missing");
    assert!(matches!(e, ReconcileError::DependencyMissing(_)), "{e}");
}

#[test]
fn kill_takes_active_containers_and_pause_running_or_paused_ones() {
    let p = web_redis();
    let mut o = after_up(&p, &images(&p, 1), Status::Running);
    o.containers[0].status = Status::Exited;
    o.containers[1].status = Status::Paused;
    o.containers.push(ObservedContainer {
        name: "demo-web-9".into(),
        status: Status::Running,
        ..o.containers[1].clone()
    });
    let all: Vec<&ObservedContainer> = o.containers.iter().collect();
    let mut text = String::new();
    for (what, plan) in [
        ("kill", kill(&all, 9)),
        ("pause", pause(&all, true)),
        ("unpause", pause(&all, false)),
    ] {
        text.push_str(&format!("{what}:\n{plan}"));
    }
    check("kill_pause", &text);
}

/// What a plan leaves behind, as `--dry-run run` plans on top of an `up`.
#[test]
fn observed_after_a_plan() {
    let p = web_redis();
    let i = images(&p, 1);
    let o = Observed::default();
    let plan = up(&p, &i, &o, &opts()).expect("plan");
    let after = o.after(&plan);
    let mut names: Vec<(&str, Status)> = after
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.status))
        .collect();
    names.sort_by_key(|(n, _)| *n);
    assert_eq!(
        names,
        [
            ("demo-redis-1", Status::Running),
            ("demo-web-1", Status::Running)
        ]
    );
    assert_eq!(after.networks.len(), 1);
    assert!(!after.replicas("redis").is_empty());
    // down of that leaves nothing.
    let gone = after.after(&down(&after, &DownOptions::default()));
    assert!(
        gone.containers.is_empty() && gone.networks.is_empty(),
        "{gone:?}"
    );
}
