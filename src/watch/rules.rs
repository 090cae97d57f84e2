//! `develop.watch` rules compiled from the model: which changed host path concerns which service,
//! what to do about it, and where it goes in the container.

use std::path::{Path, PathBuf};

use super::pattern::Patterns;
use super::WatchError;
use crate::compose::model::{Project, ServiceConfig, ServiceHook, Trigger};

/// What a rule does when a path under it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Sync,
    Restart,
    SyncRestart,
    SyncExec,
    Rebuild,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "sync" => Action::Sync,
            "restart" => Action::Restart,
            "sync+restart" => Action::SyncRestart,
            "sync+exec" => Action::SyncExec,
            "rebuild" => Action::Rebuild,
            _ => return None,
        })
    }

    pub fn syncs(self) -> bool {
        matches!(self, Action::Sync | Action::SyncRestart | Action::SyncExec)
    }
}

/// One compiled `develop.watch` rule of a service.
#[derive(Debug, Clone)]
pub struct Rule {
    pub service: String,
    pub action: Action,
    /// The watched host path (absolute).
    pub path: PathBuf,
    /// Where `path` goes in the container (sync actions).
    pub target: String,
    pub exec: ServiceHook,
    pub initial_sync: bool,
    include: Option<Patterns>,
    ignore: Patterns,
    /// The build context's `.dockerignore`, relative to the context.
    dockerignore: Option<(PathBuf, Patterns)>,
}

/// A changed host path and where it goes in the container.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mapping {
    pub host: PathBuf,
    /// Empty for actions that do not sync.
    pub container: String,
}

impl Rule {
    /// Compiles one trigger of `service`; `project_dir` resolves relative paths.
    pub fn compile(
        service: &ServiceConfig,
        trigger: &Trigger,
        project_dir: &Path,
    ) -> Result<Rule, WatchError> {
        let name = &service.name;
        let invalid = |reason: String| WatchError::Rule {
            service: name.clone(),
            path: trigger.path.clone(),
            reason,
        };
        if trigger.path.is_empty() {
            return Err(invalid("watch rules must define a path".into()));
        }
        let action = Action::parse(&trigger.action).ok_or_else(|| {
            invalid(format!(
                "unknown action {:?} (sync, restart, sync+restart, sync+exec, rebuild)",
                trigger.action
            ))
        })?;
        if action.syncs() && trigger.target.is_empty() {
            return Err(invalid(format!("action {} needs a target", trigger.action)));
        }
        if action.syncs() && !trigger.target.starts_with('/') {
            return Err(invalid(format!(
                "the target {:?} must be an absolute path in the container",
                trigger.target
            )));
        }
        let has_command = trigger.exec.command.as_ref().is_some_and(|c| !c.is_empty());
        if action == Action::SyncExec && !has_command {
            return Err(invalid("action sync+exec needs an exec command".into()));
        }
        let path = lexical_clean(&project_dir.join(&trigger.path));
        let compile =
            |patterns: &[String]| Patterns::new(patterns).map_err(|e| invalid(e.to_string()));
        let include = if trigger.include.is_empty() {
            None
        } else {
            Some(compile(&trigger.include)?)
        };
        // Editor files first: a user's `!pattern` may still re-include one.
        let mut all = Patterns::ephemeral();
        all.extend(compile(&trigger.ignore)?);
        Ok(Rule {
            service: name.clone(),
            action,
            path,
            target: trigger.target.clone(),
            exec: trigger.exec.clone(),
            initial_sync: trigger.initial_sync,
            include,
            ignore: all,
            dockerignore: load_dockerignore(service, project_dir)
                .map_err(|e| invalid(e.to_string()))?,
        })
    }

    /// The mapping of a changed host path, when this rule is concerned by it.
    pub fn matches(&self, host: &Path) -> Option<Mapping> {
        let rel = host.strip_prefix(&self.path).ok()?;
        if let Some(include) = &self.include {
            if !rel.as_os_str().is_empty() && !include.matches(rel) {
                return None;
            }
        }
        if self.ignore.matches(rel) {
            return None;
        }
        if let Some((context, patterns)) = &self.dockerignore {
            if let Ok(in_context) = host.strip_prefix(context) {
                if patterns.matches(in_context) {
                    return None;
                }
            }
        }
        let container = if self.action.syncs() {
            container_path(&self.target, rel)
        } else {
            String::new()
        };
        Some(Mapping {
            host: host.to_path_buf(),
            container,
        })
    }
}

/// Every rule of the selected services (all when none is named). Fails when none of them has a
/// `develop` section, as docker compose does.
pub fn compile_project(
    project: &Project,
    working_dir: &Path,
    services: &[String],
) -> Result<Vec<Rule>, WatchError> {
    let mut rules = Vec::new();
    for (name, service) in &project.services {
        if !services.is_empty() && !services.contains(name) {
            continue;
        }
        let Some(develop) = &service.develop else {
            continue;
        };
        for trigger in &develop.watch {
            rules.push(Rule::compile(service, trigger, working_dir)?);
        }
    }
    if rules.is_empty() {
        return Err(WatchError::NothingToWatch);
    }
    Ok(rules)
}

/// Warnings about rules docker compose also warns about: a path outside the project directory
/// (watched anyway) and a synced path that a bind mount already shares (not watched: the
/// returned rules leave it out).
pub fn review(rules: Vec<Rule>, project: &Project, working_dir: &Path) -> (Vec<Rule>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut kept = Vec::new();
    let project_dir = lexical_clean(working_dir);
    for rule in rules {
        if !rule.path.starts_with(&project_dir) {
            warnings.push(format!(
                "service {:?}: watch path {} is outside the project directory {}",
                rule.service,
                rule.path.display(),
                project_dir.display()
            ));
        }
        let bound = project.services.get(&rule.service).is_some_and(|s| {
            s.volumes.iter().any(|v| {
                v.kind == "bind"
                    && !v.source.is_empty()
                    && rule.path.starts_with(lexical_clean(Path::new(&v.source)))
            })
        });
        if rule.action.syncs() && bound {
            warnings.push(format!(
                "path '{}' also declared by a bind mount volume, this path won't be monitored!",
                rule.path.display()
            ));
            continue;
        }
        kept.push(rule);
    }
    (kept, warnings)
}

/// `target` joined with a relative host path, `/`-separated.
fn container_path(target: &str, rel: &Path) -> String {
    let mut out = target.trim_end_matches('/').to_string();
    for c in rel.components() {
        if let std::path::Component::Normal(s) = c {
            out.push('/');
            out.push_str(&s.to_string_lossy());
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// `.` and `..` removed without touching the filesystem.
pub fn lexical_clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The service's build context `.dockerignore` (docker compose applies it to watch rules).
fn load_dockerignore(
    service: &ServiceConfig,
    project_dir: &Path,
) -> Result<Option<(PathBuf, Patterns)>, WatchError> {
    let Some(build) = &service.build else {
        return Ok(None);
    };
    if build.context.is_empty() || build.context.contains("://") {
        return Ok(None);
    }
    let context = lexical_clean(&project_dir.join(&build.context));
    let file = context.join(".dockerignore");
    match std::fs::read_to_string(&file) {
        Ok(text) => Ok(Some((context, Patterns::parse_file(&text)?))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(WatchError::Read { path: file, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::model::DevelopConfig;

    fn trigger(path: &str, action: &str, target: &str) -> Trigger {
        Trigger {
            path: path.into(),
            action: action.into(),
            target: target.into(),
            ..Default::default()
        }
    }

    fn service(name: &str, triggers: Vec<Trigger>) -> ServiceConfig {
        ServiceConfig {
            name: name.into(),
            develop: Some(DevelopConfig {
                watch: triggers,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn rule(t: Trigger) -> Rule {
        Rule::compile(&service("web", vec![]), &t, Path::new("/p")).unwrap()
    }

    #[test]
    fn maps_paths_under_the_rule_to_the_target() {
        let r = rule(trigger("./src", "sync", "/app/src/"));
        assert_eq!(r.path, Path::new("/p/src"));
        let m = r.matches(Path::new("/p/src/pkg/a.py")).unwrap();
        assert_eq!(m.container, "/app/src/pkg/a.py");
        assert_eq!(
            r.matches(Path::new("/p/src")).unwrap().container,
            "/app/src"
        );
        assert!(r.matches(Path::new("/p/srcx/a.py")).is_none());
        assert!(r.matches(Path::new("/p/other/a.py")).is_none());
    }

    #[test]
    fn ignore_is_relative_to_the_rule_path_and_editor_files_are_skipped() {
        let mut t = trigger("src", "sync", "/app");
        t.ignore = vec!["node_modules/".into(), "*.log".into()];
        let r = rule(t);
        assert!(r.matches(Path::new("/p/src/node_modules/x/i.js")).is_none());
        assert!(r.matches(Path::new("/p/src/debug.log")).is_none());
        assert!(r.matches(Path::new("/p/src/sub/debug.log")).is_some());
        assert!(r.matches(Path::new("/p/src/.main.py.swp")).is_none());
        assert!(r.matches(Path::new("/p/src/main.py~")).is_none());
        assert!(r.matches(Path::new("/p/src/main.py")).is_some());
    }

    #[test]
    fn include_restricts_and_ignore_still_applies() {
        let mut t = trigger(".", "restart", "");
        t.include = vec!["*.conf".into()];
        t.ignore = vec!["local.conf".into()];
        let r = rule(t);
        assert_eq!(r.matches(Path::new("/p/app.conf")).unwrap().container, "");
        assert!(r.matches(Path::new("/p/local.conf")).is_none());
        assert!(r.matches(Path::new("/p/app.py")).is_none());
    }

    #[test]
    fn invalid_rules_are_explained() {
        let svc = service("web", vec![]);
        let err = |t: Trigger| {
            Rule::compile(&svc, &t, Path::new("/p"))
                .unwrap_err()
                .to_string()
        };
        let e = err(trigger("src", "copy", "/app"));
        assert!(
            e.contains("web") && e.contains("unknown action \"copy\""),
            "{e}"
        );
        assert!(err(trigger("src", "sync", "")).contains("needs a target"));
        assert!(err(trigger("src", "sync", "app")).contains("absolute"));
        assert!(err(trigger("src", "sync+exec", "/app")).contains("exec command"));
        assert!(err(trigger("", "restart", "")).contains("must define a path"));
        let mut t = trigger("src", "sync", "/app");
        t.ignore = vec!["[x".into()];
        assert!(err(t).contains("unclosed"));
    }

    #[test]
    fn a_project_without_develop_has_nothing_to_watch() {
        let mut project = Project::default();
        let mut plain = service("db", vec![]);
        plain.develop = None;
        project.services.insert("db".into(), plain);
        let e = compile_project(&project, Path::new("/p"), &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "none of the selected services is configured for watch, consider setting a 'develop' section"
        );
        project.services.insert(
            "web".into(),
            service("web", vec![trigger("src", "sync", "/app")]),
        );
        assert_eq!(
            compile_project(&project, Path::new("/p"), &[])
                .unwrap()
                .len(),
            1
        );
        assert!(compile_project(&project, Path::new("/p"), &["db".into()]).is_err());
    }

    #[test]
    fn review_warns_about_outside_paths_and_skips_bind_mounted_ones() {
        let mut project = Project::default();
        let mut web = service(
            "web",
            vec![
                trigger("../elsewhere", "restart", ""),
                trigger("src", "sync", "/app"),
            ],
        );
        web.volumes
            .push(crate::compose::model::ServiceVolumeConfig {
                kind: "bind".into(),
                source: "/p/src".into(),
                ..Default::default()
            });
        project.services.insert("web".into(), web);
        let rules = compile_project(&project, Path::new("/p"), &[]).unwrap();
        let (kept, warnings) = review(rules, &project, Path::new("/p"));
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].path, Path::new("/elsewhere"));
        assert!(
            warnings[0].contains("outside the project directory"),
            "{warnings:?}"
        );
        assert!(warnings[1].contains("bind mount"), "{warnings:?}");
    }

    #[test]
    fn the_build_context_dockerignore_applies() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "*.pyc\n").unwrap();
        let mut svc = service("web", vec![]);
        svc.build = Some(crate::compose::model::BuildConfig {
            context: ".".into(),
            ..Default::default()
        });
        let r = Rule::compile(&svc, &trigger(".", "sync", "/app"), dir.path()).unwrap();
        assert!(r.matches(&dir.path().join("a.pyc")).is_none());
        assert!(r.matches(&dir.path().join("a.py")).is_some());
    }
}
