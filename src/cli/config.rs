//! `rcompose config`: the project as docker compose sees it, in canonical form.

use anyhow::{bail, Context, Result};
use serde_json::Value as Json;
use std::io::Write;
use std::path::PathBuf;

use super::Global;
use crate::compose::loader::Loaded;

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Services to include (default: all enabled services)
    #[arg(value_name = "SERVICE", id = "service_names")]
    pub services: Vec<String>,
    /// Format the output
    #[arg(long, value_parser = ["yaml", "json"], default_value = "yaml")]
    pub format: String,
    /// Save to file (default: standard output)
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Only validate the configuration, don't print anything
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the service names, one per line
    #[arg(long = "services")]
    pub services_only: bool,
    /// Print the volume names, one per line
    #[arg(long)]
    pub volumes: bool,
    /// Print the network names, one per line
    #[arg(long)]
    pub networks: bool,
    /// Print the image names, one per line
    #[arg(long)]
    pub images: bool,
    /// Print the profile names, one per line
    #[arg(long = "profiles", id = "list_profiles")]
    pub profiles: bool,
    /// Print the model variables and their default values
    #[arg(long)]
    pub variables: bool,
    /// Print the environment used for interpolation
    #[arg(long)]
    pub environment: bool,
    /// Print the service config hash, one per line ("*" for all services)
    #[arg(long)]
    pub hash: Option<String>,
    /// Don't interpolate environment variables
    #[arg(long)]
    pub no_interpolate: bool,
    /// Don't normalize the compose model
    #[arg(long)]
    pub no_normalize: bool,
    /// Don't resolve file paths
    #[arg(long)]
    pub no_path_resolution: bool,
    /// Don't check model consistency
    #[arg(long)]
    pub no_consistency: bool,
}

pub fn run(global: &Global, mut args: ConfigArgs) -> Result<i32> {
    let mut opts = global.load_options()?;
    // docker compose's `config --services` ignores the services named: it lists the project's
    // enabled services (naming one in a disabled profile does not enable it), and an unknown
    // name is no error.
    if args.services_only {
        args.services.clear();
    }
    opts.services = args.services.clone();
    opts.interpolate = !args.no_interpolate;
    opts.normalize = !args.no_normalize;
    opts.resolve_paths = !args.no_path_resolution;
    opts.consistency = !args.no_consistency;
    // docker compose prints a model whatever its names; the engine refuses bad ones when it
    // creates the objects, as rcompose's other commands do when they load the project.
    opts.check_names = false;
    let loaded = super::load(global, &opts)?;
    if !args.services.is_empty() {
        select_services(&loaded, &mut args.services)?;
    }

    let out = if args.quiet {
        return Ok(0);
    } else if args.services_only {
        // As docker compose: every enabled service, whatever services were named.
        lines(dependency_order(&loaded, &all_names(&loaded)))
    } else if args.volumes {
        lines(sorted(loaded.project.volumes.keys()))
    } else if args.networks {
        lines(sorted(loaded.project.networks.keys()))
    } else if args.images {
        lines(
            with_dependencies(&loaded, &args.services)
                .iter()
                .map(|name| image_name(&loaded, name))
                .collect::<Vec<_>>(),
        )
    } else if args.profiles {
        lines(&loaded.all_profiles)
    } else if args.environment {
        let mut vars: Vec<_> = loaded.environment.iter().collect();
        vars.sort();
        lines(vars.into_iter().map(|(k, v)| format!("{k}={v}")))
    } else if args.variables {
        variables(&loaded, &args.format)?
    } else if let Some(which) = &args.hash {
        hashes(&loaded, which)?
    } else {
        render(&loaded, &args)?
    };

    match &args.output {
        Some(path) => std::fs::write(path, out)
            .with_context(|| format!("failed to write {}", path.display()))?,
        None => std::io::stdout()
            .write_all(out.as_bytes())
            .context("failed to write to standard output")?,
    }
    Ok(0)
}

fn sorted<'a>(names: impl Iterator<Item = &'a String>) -> Vec<&'a String> {
    let mut v: Vec<&String> = names.collect();
    v.sort();
    v
}

fn lines<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> String {
    let mut s = String::new();
    for i in items {
        s.push_str(i.as_ref());
        s.push('\n');
    }
    s
}

/// Services named on the command line must exist.
fn select_services(loaded: &Loaded, names: &mut [String]) -> Result<()> {
    for n in names.iter() {
        if !loaded.project.services.contains_key(n) {
            bail!("no such service: {n}");
        }
    }
    Ok(())
}

fn all_names(loaded: &Loaded) -> Vec<String> {
    let mut all: Vec<String> = loaded.project.services.keys().cloned().collect();
    all.sort();
    all
}

/// The named services (all when none is named) and the services they depend on, transitively,
/// as docker compose selects them for `config SERVICE...`, in [`dependency_order`].
fn with_dependencies(loaded: &Loaded, names: &[String]) -> Vec<String> {
    if names.is_empty() {
        return dependency_order(loaded, &all_names(loaded));
    }
    let mut roots = names.to_vec();
    roots.sort();
    roots.dedup();
    dependency_order(loaded, &roots)
}

/// `roots` and their dependencies, each service after the ones it depends on, as compose-go's
/// `ForEachService` walks them. docker compose starts that walk from Go map order, which
/// changes from run to run; we start from the sorted names and visit dependencies sorted, so
/// the order is stable and one of those docker prints. A dependency that is not loaded (an
/// optional one) is skipped; a cycle (possible with `--no-consistency`) ends the walk.
fn dependency_order(loaded: &Loaded, roots: &[String]) -> Vec<String> {
    fn visit(
        loaded: &Loaded,
        name: &str,
        seen: &mut std::collections::HashSet<String>,
        out: &mut Vec<String>,
    ) {
        if !seen.insert(name.to_string()) {
            return;
        }
        let Some(service) = loaded.project.services.get(name) else {
            return;
        };
        let mut deps: Vec<&str> = service.dependencies().collect();
        deps.sort_unstable();
        for dep in deps {
            visit(loaded, dep, seen, out);
        }
        out.push(name.to_string());
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for name in roots {
        visit(loaded, name, &mut seen, &mut out);
    }
    out
}

/// The image a service runs: its `image`, or `<project>-<service>` for a build without one.
fn image_name(loaded: &Loaded, service: &str) -> String {
    match loaded.project.services.get(service) {
        Some(s) if !s.image.is_empty() => s.image.clone(),
        _ => format!("{}-{service}", loaded.project.name),
    }
}

/// The project as docker compose prints it, with `$` escaped as `$$` so that the output can be
/// read back (unless interpolation was off: then the `$` are the user's own syntax).
fn render(loaded: &Loaded, args: &ConfigArgs) -> Result<String> {
    // `config SERVICE` prints the service with its dependencies, as docker compose does.
    let shown = with_dependencies(loaded, &args.services);
    let keep = |name: &str| args.services.is_empty() || shown.iter().any(|s| s == name);
    let escape = !args.no_interpolate;
    if args.format == "json" {
        let mut json = loaded.project.to_json_value()?;
        if let Some(Json::Object(all)) = json.get_mut("services") {
            all.retain(|k, _| keep(k));
        }
        if escape {
            escape_json(&mut json);
        }
        let mut s = crate::compose::model::Project::go_json(&json, true)?;
        s.push('\n');
        Ok(s)
    } else {
        let mut yaml = loaded.project.to_yaml_value()?;
        if let Some(serde_yaml::Value::Mapping(all)) = yaml.get_mut("services") {
            all.retain(|k, _| k.as_str().is_some_and(keep));
        }
        if escape {
            escape_yaml(&mut yaml);
        }
        Ok(serde_yaml::to_string(&yaml)?)
    }
}

/// `$` → `$$` in every string, map keys included: docker escapes keys too (a label key is never
/// interpolated, so `"l$$"` in a file prints as `"l$$$$"`).
fn escape_json(v: &mut Json) {
    match v {
        Json::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        Json::Array(a) => a.iter_mut().for_each(escape_json),
        Json::Object(o) => {
            *o = std::mem::take(o)
                .into_iter()
                .map(|(k, mut v)| {
                    escape_json(&mut v);
                    (k.replace('$', "$$"), v)
                })
                .collect();
        }
        _ => {}
    }
}

fn escape_yaml(v: &mut serde_yaml::Value) {
    use serde_yaml::Value as Y;
    match v {
        Y::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        Y::Sequence(a) => a.iter_mut().for_each(escape_yaml),
        Y::Mapping(m) => {
            *m = std::mem::take(m)
                .into_iter()
                .map(|(mut k, mut v)| {
                    escape_yaml(&mut k);
                    escape_yaml(&mut v);
                    (k, v)
                })
                .collect();
        }
        Y::Tagged(t) => escape_yaml(&mut t.value),
        _ => {}
    }
}

/// `--hash`: each service's configuration hash, with docker compose's exclusions: the key `up`
/// uses to decide whether a container must be recreated.
fn hashes(loaded: &Loaded, which: &str) -> Result<String> {
    let wanted: Vec<String> = if which == "*" {
        Vec::new()
    } else {
        which.split(',').map(|s| s.trim().to_string()).collect()
    };
    for w in &wanted {
        if !loaded.project.services.contains_key(w) {
            bail!("no such service: {w}");
        }
    }
    let mut out = String::new();
    let names = all_names(loaded)
        .into_iter()
        .filter(|n| wanted.is_empty() || wanted.contains(n));
    for name in names {
        let hash = loaded.project.services[&name].docker_hash()?;
        out.push_str(&format!("{name} {hash}\n"));
    }
    Ok(out)
}

/// `--variables`: every variable the files use, whether it is required, its default and its
/// alternate value; a table, or JSON with `--format json`.
fn variables(loaded: &Loaded, format: &str) -> Result<String> {
    let mut vars = std::collections::BTreeMap::new();
    for f in &loaded.files {
        if f.as_os_str() == "-" {
            continue;
        }
        let content = std::fs::read_to_string(f)
            .with_context(|| format!("failed to read {}", f.display()))?;
        for v in crate::compose::interpolate::variables(&content) {
            vars.entry(v.name.clone()).or_insert(v);
        }
    }
    if format == "json" {
        let json: serde_json::Map<String, Json> = vars
            .into_iter()
            .map(|(k, v)| {
                let v = serde_json::json!({
                    "Name": v.name,
                    "DefaultValue": v.default.unwrap_or_default(),
                    "PresenceValue": v.alternate.unwrap_or_default(),
                    "Required": v.required,
                });
                (k, v)
            })
            .collect();
        let json = Json::Object(json);
        let mut s = crate::compose::model::Project::go_json(&json, true)?;
        s.push('\n');
        return Ok(s);
    }
    let mut rows = vec![[
        "NAME".to_string(),
        "REQUIRED".into(),
        "DEFAULT VALUE".into(),
        "ALTERNATE VALUE".into(),
    ]];
    for (name, v) in vars {
        rows.push([
            name,
            v.required.to_string(),
            v.default.unwrap_or_default(),
            v.alternate.unwrap_or_default(),
        ]);
    }
    // docker's tabwriter: cells at least 20 wide, 3 spaces of padding.
    let widths: Vec<usize> = (0..3)
        .map(|i| {
            rows.iter()
                .map(|r| (r[i].len() + 3).max(20))
                .max()
                .unwrap_or(20)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        for (i, w) in widths.iter().enumerate() {
            super::push_padded(&mut out, &r[i], *w);
        }
        out.push_str(&r[3]);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_doubles_dollars_in_keys_and_values() {
        let mut j = serde_json::json!({"l$": "v$", "n": ["a$b", 1], "m": {"k$$": null}});
        escape_json(&mut j);
        assert_eq!(
            j,
            serde_json::json!({"l$$": "v$$", "n": ["a$$b", 1], "m": {"k$$$$": null}})
        );

        let mut y: serde_yaml::Value = serde_yaml::from_str("l$: v$\nm:\n  k$$: [x$]\n").unwrap();
        escape_yaml(&mut y);
        let want: serde_yaml::Value =
            serde_yaml::from_str("l$$: v$$\nm:\n  k$$$$: [x$$]\n").unwrap();
        assert_eq!(y, want);
    }
}
