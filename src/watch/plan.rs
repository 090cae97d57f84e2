//! Turns a batch of changed host paths into what to do per service, in docker compose's order:
//! rebuild, then sync, then restart, then exec.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::rules::{Action, Mapping, Rule};

/// What one service needs after a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServicePlan {
    pub service: String,
    /// Re-pull the image and recreate the containers.
    pub rebuild: bool,
    /// Paths to copy into (or delete from) the running containers, each once.
    pub sync: Vec<SyncItem>,
    /// Restart the containers (after syncing). Not set when they are rebuilt anyway.
    pub restart: bool,
    /// Indexes of the `sync+exec` rules whose command runs (after syncing), each once.
    pub exec: Vec<usize>,
}

/// A path to sync and the rule that mapped it (whose ignores also filter a copied directory).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SyncItem {
    pub mapping: Mapping,
    pub rule: usize,
}

/// The plans of the services concerned by `batch`, in the order services first appear in
/// `rules`.
pub fn plan(batch: &[PathBuf], rules: &[Rule]) -> Vec<ServicePlan> {
    let mut plans: Vec<ServicePlan> = Vec::new();
    let mut seen_sync: BTreeSet<(String, String)> = BTreeSet::new();
    for (i, rule) in rules.iter().enumerate() {
        for path in batch {
            let Some(mapping) = rule.matches(path) else {
                continue;
            };
            let idx = match plans.iter().position(|p| p.service == rule.service) {
                Some(idx) => idx,
                None => {
                    plans.push(ServicePlan {
                        service: rule.service.clone(),
                        ..Default::default()
                    });
                    plans.len() - 1
                }
            };
            let p = &mut plans[idx];
            match rule.action {
                Action::Rebuild => p.rebuild = true,
                Action::Restart => p.restart = true,
                Action::Sync | Action::SyncRestart | Action::SyncExec => {
                    // Two rules may map one file to one place: copy it once.
                    if seen_sync.insert((rule.service.clone(), mapping.container.clone())) {
                        p.sync.push(SyncItem { mapping, rule: i });
                    }
                    if rule.action == Action::SyncRestart {
                        p.restart = true;
                    }
                    if rule.action == Action::SyncExec && !p.exec.contains(&i) {
                        p.exec.push(i);
                    }
                }
            }
        }
    }
    for p in &mut plans {
        if p.rebuild {
            // New containers start from the new image: nothing to restart.
            p.restart = false;
        }
        p.sync.sort();
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::model::{ServiceConfig, ServiceHook, Trigger};
    use std::path::Path;

    fn rule(service: &str, path: &str, action: &str, target: &str) -> Rule {
        let t = Trigger {
            path: path.into(),
            action: action.into(),
            target: target.into(),
            exec: ServiceHook {
                command: Some(vec!["true".into()]),
                ..Default::default()
            },
            ..Default::default()
        };
        let svc = ServiceConfig {
            name: service.into(),
            ..Default::default()
        };
        Rule::compile(&svc, &t, Path::new("/p")).unwrap()
    }

    fn paths(v: &[&str]) -> Vec<PathBuf> {
        v.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn actions_are_grouped_per_service() {
        let rules = vec![
            rule("web", "src", "sync", "/app"),
            rule("web", "conf", "restart", ""),
            rule("api", "api", "sync+restart", "/srv"),
            rule("api", "api/hooks", "sync+exec", "/hooks"),
            rule("worker", "worker", "rebuild", ""),
        ];
        let batch = paths(&[
            "/p/src/b.py",
            "/p/src/a.py",
            "/p/conf/nginx.conf",
            "/p/api/x.js",
            "/p/api/hooks/h.sh",
            "/p/api/hooks/i.sh",
            "/p/elsewhere/z",
        ]);
        let plans = plan(&batch, &rules);
        assert_eq!(plans.len(), 2, "{plans:#?}");
        let web = &plans[0];
        assert_eq!(web.service, "web");
        assert!(web.restart && !web.rebuild && web.exec.is_empty());
        let synced: Vec<&str> = web
            .sync
            .iter()
            .map(|s| s.mapping.container.as_str())
            .collect();
        assert_eq!(synced, ["/app/a.py", "/app/b.py"]);
        let api = &plans[1];
        assert!(api.restart);
        // The hook files match both api rules: each mapping is synced, the command runs once.
        assert_eq!(api.sync.len(), 5, "{api:#?}");
        assert_eq!(api.exec, vec![3]);
    }

    #[test]
    fn a_rebuild_replaces_the_restart() {
        let rules = vec![
            rule("web", "src", "sync+restart", "/app"),
            rule("web", "package.json", "rebuild", ""),
        ];
        let plans = plan(&paths(&["/p/src/a.js", "/p/package.json"]), &rules);
        assert_eq!(plans.len(), 1);
        assert!(plans[0].rebuild && !plans[0].restart);
        assert_eq!(plans[0].sync.len(), 1);
    }

    #[test]
    fn ignored_changes_plan_nothing() {
        let rules = vec![rule("web", "src", "sync", "/app")];
        assert!(plan(&paths(&["/p/src/.a.py.swp", "/p/src/a.py~"]), &rules).is_empty());
        assert!(plan(&[], &rules).is_empty());
    }
}
