//! The loading pipeline: files → trees → one merged, normalised tree → typed project.
//!
//! Per file (docker compose's order): parse → validate → interpolate → canonical form →
//! `extends` → `include` → merge onto what earlier files built. Then for the whole project:
//! defaults, relative paths made absolute, `environment:` entries resolved, normalisation
//! (implicit default network, implied dependencies, resource names), profiles, `env_file`
//! contents folded into `environment`, consistency checks, and the typed model.

use serde_yaml::{Mapping, Value};
use std::path::{Path, PathBuf};

use super::discovery::{self, absolutize};
use super::environment::{self, Environment};
use super::error::{at, LoadError};
use super::path::TreePath;
use super::yaml;
use super::{canonical, interpolate, merge, model, normalize, schema};

/// What the user asked for: docker compose's global flags plus the process context.
#[derive(Debug, Clone)]
pub struct Options {
    /// `-f` values in order; `-` reads standard input (`stdin`).
    pub files: Vec<String>,
    pub project_name: Option<String>,
    pub project_directory: Option<PathBuf>,
    pub profiles: Vec<String>,
    pub env_files: Vec<PathBuf>,
    /// Services named on the command line: they are enabled whatever their profiles.
    pub services: Vec<String>,
    pub interpolate: bool,
    pub normalize: bool,
    pub resolve_paths: bool,
    pub consistency: bool,
    /// Refuse names that would become paths or host-wide names outside rcompose's own
    /// (`crate::names`). Only `config` turns it off, to print what docker compose prints.
    pub check_names: bool,
    pub cwd: PathBuf,
    pub os_env: Environment,
    /// Content for `-f -`.
    pub stdin: Option<String>,
}

impl Options {
    /// Options for the current process: its directory and environment, every step enabled.
    pub fn from_process() -> std::io::Result<Self> {
        let cwd = std::env::current_dir()?;
        let mut os_env = environment::os_environment();
        environment::supply_pwd(&mut os_env, &cwd);
        Ok(Options::every_step(cwd, os_env))
    }

    /// Options that load `yaml` (as `-f -`) as project `name` in `dir`, with no process
    /// environment: for tests.
    #[cfg(test)]
    pub(crate) fn for_test(dir: &Path, name: &str, yaml: &str) -> Self {
        Options {
            files: vec!["-".into()],
            project_name: Some(name.into()),
            project_directory: Some(dir.to_path_buf()),
            stdin: Some(yaml.into()),
            ..Options::every_step(dir.to_path_buf(), Default::default())
        }
    }

    fn every_step(cwd: PathBuf, os_env: Environment) -> Self {
        Options {
            files: Vec::new(),
            project_name: None,
            project_directory: None,
            profiles: Vec::new(),
            env_files: Vec::new(),
            services: Vec::new(),
            interpolate: true,
            normalize: true,
            resolve_paths: true,
            consistency: true,
            check_names: true,
            cwd,
            os_env,
            stdin: None,
        }
    }
}

/// A loaded project, with what was learnt on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub project: model::Project,
    pub working_dir: PathBuf,
    pub files: Vec<PathBuf>,
    pub environment: Environment,
    /// Services left out by profiles.
    pub disabled_services: Vec<String>,
    /// Every profile some service declares, enabled or not, sorted.
    pub all_profiles: Vec<String>,
    pub warnings: Vec<String>,
}

/// A compose file's name and text, kept so that errors can be located after the fact.
pub(super) struct Source {
    path: PathBuf,
    content: String,
}

/// State shared by every file of one load.
pub(super) struct Ctx<'a> {
    pub(super) opts: &'a Options,
    warnings: Vec<String>,
    /// Interpolation warnings are printed once per variable.
    warned: std::collections::HashSet<String>,
}

impl Ctx<'_> {
    pub(super) fn warn(&mut self, msg: String) {
        if self.warned.insert(msg.clone()) {
            self.warnings.push(msg);
        }
    }
}

/// Load the project the options describe.
pub fn load(opts: &Options) -> Result<Loaded, LoadError> {
    let mut ctx = Ctx {
        opts,
        warnings: Vec::new(),
        warned: Default::default(),
    };

    // The working directory first (from -f, not yet COMPOSE_FILE): `.env` lives there.
    let explicit_wd = opts
        .project_directory
        .as_ref()
        .map(|d| absolutize(&opts.cwd, d));
    let first_file_dir = opts.files.iter().find(|f| *f != "-").and_then(|f| {
        absolutize(&opts.cwd, Path::new(f))
            .parent()
            .map(Path::to_path_buf)
    });
    let env_dir = explicit_wd
        .clone()
        .or_else(|| first_file_dir.clone())
        .unwrap_or_else(|| opts.cwd.clone());
    let env_files = environment::env_files(&opts.env_files, &opts.cwd, &env_dir, &opts.os_env)?;
    let mut env = environment::with_env_files(&opts.os_env, &env_files)?;

    // Which files: -f, else COMPOSE_FILE, else discovery from the working directory upwards.
    let mut files: Vec<String> = opts.files.clone();
    if files.is_empty() {
        if let Some(cf) = env.get("COMPOSE_FILE").filter(|s| !s.is_empty()) {
            let sep = env
                .get("COMPOSE_PATH_SEPARATOR")
                .filter(|s| !s.is_empty())
                .cloned()
                .unwrap_or_else(|| ":".to_string());
            files = cf.split(sep.as_str()).map(str::to_string).collect();
        }
    }
    let mut paths: Vec<PathBuf> = Vec::new();
    if files.is_empty() {
        let found = discovery::find_files(&env_dir).ok_or(LoadError::NoConfigFile)?;
        if !found.ignored.is_empty() {
            let names: Vec<String> = std::iter::once(&found.files[0])
                .chain(found.ignored.iter())
                .map(|p| p.display().to_string())
                .collect();
            ctx.warn(format!(
                "Found multiple config files with supported names: {}\nUsing {}",
                names.join(", "),
                found.files[0].display()
            ));
        }
        paths = found.files;
    } else {
        for f in &files {
            paths.push(if f == "-" {
                PathBuf::from("-")
            } else {
                absolutize(&opts.cwd, Path::new(f))
            });
        }
    }
    let working_dir = explicit_wd.unwrap_or_else(|| {
        paths
            .iter()
            .find(|p| p.as_os_str() != "-")
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| opts.cwd.clone())
    });

    let mut sources = Vec::new();
    for p in &paths {
        sources.push(read_source(p, opts)?);
    }

    // The project name: -p, COMPOSE_PROJECT_NAME, the files' `name:`, or the directory.
    let name = project_name(&mut ctx, &sources, &env, &working_dir)?;
    env.insert("COMPOSE_PROJECT_NAME".to_string(), name.clone());

    let wd = working_dir.to_string_lossy().into_owned();
    let mut tree = load_model(&mut ctx, &sources, &wd, &env, &[])?;
    if tree.as_mapping().is_none_or(Mapping::is_empty) {
        return Err(LoadError::Empty);
    }

    if opts.normalize {
        if let Some(m) = tree.as_mapping_mut() {
            m.insert(Value::from("name"), Value::from(name.clone()));
        }
        normalize::normalize(&mut tree, &env).map_err(|e| LoadError::Invalid(e.to_string()))?;
    }

    let mut enabled_profiles = opts.profiles.clone();
    if enabled_profiles.is_empty() {
        if let Some(p) = env.get("COMPOSE_PROFILES").filter(|s| !s.is_empty()) {
            enabled_profiles = p
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
    }
    let all_profiles = normalize::profiles(&tree);
    let disabled = normalize::apply_profiles(&mut tree, &enabled_profiles, &opts.services)
        .map_err(|e| locate_error(&sources, e))?;

    normalize::remove_unused_resources(&mut tree);
    if opts.consistency {
        normalize::check_consistency(&tree).map_err(|e| locate_error(&sources, e))?;
    }
    if opts.check_names {
        normalize::check_names(&tree).map_err(|e| locate_error(&sources, e))?;
    }
    normalize::resolve_env_files(&mut tree, &env).map_err(|e| LoadError::Invalid(e.to_string()))?;

    let cut =
        normalize::split_commands(&mut tree).map_err(|e| LoadError::Invalid(e.to_string()))?;
    for w in cut {
        ctx.warn(w);
    }
    let mut project =
        model::Project::from_value(tree).map_err(|e| LoadError::Invalid(e.to_string()))?;
    project.name = name;

    Ok(Loaded {
        project,
        working_dir,
        files: paths,
        environment: env,
        disabled_services: disabled,
        all_profiles,
        warnings: ctx.warnings,
    })
}

/// A project-wide error, pointed at the last of the project's files that defines the key it is
/// about (the files are re-read only now, on the error path).
fn locate_error(sources: &[Source], e: normalize::NormalizeError) -> LoadError {
    if let Some(path) = e.path() {
        for source in sources.iter().rev() {
            let Ok(docs) = yaml::parse_documents(&source.content) else {
                continue;
            };
            for (i, doc) in docs.iter().enumerate().rev() {
                if yaml::value_at(doc, path).is_some() {
                    return LoadError::At {
                        file: source.path.clone(),
                        location: yaml::locate(&source.content, i, path),
                        path: None,
                        message: e.to_string(),
                    };
                }
            }
        }
    }
    LoadError::Invalid(e.to_string())
}

fn read_source(p: &Path, opts: &Options) -> Result<Source, LoadError> {
    if p.as_os_str() == "-" {
        return Ok(Source {
            // Docker compose reports standard input as `-` and resolves paths from the cwd.
            path: PathBuf::from("-"),
            content: opts.stdin.clone().unwrap_or_default(),
        });
    }
    let content = std::fs::read_to_string(p).map_err(|source| LoadError::Read {
        path: p.to_path_buf(),
        source,
    })?;
    Ok(Source {
        path: p.to_path_buf(),
        content,
    })
}

fn project_name(
    ctx: &mut Ctx,
    sources: &[Source],
    env: &Environment,
    working_dir: &Path,
) -> Result<String, LoadError> {
    let imperative = ctx
        .opts
        .project_name
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            env.get("COMPOSE_PROJECT_NAME")
                .filter(|s| !s.is_empty())
                .cloned()
        });
    if let Some(n) = imperative {
        if !discovery::is_valid_project_name(&n) {
            return Err(LoadError::InvalidProjectName(n));
        }
        return Ok(n);
    }
    // The last file that sets `name:` wins; it may use variables.
    let mut from_files = String::new();
    for s in sources {
        let Ok(docs) = yaml::parse_documents(&s.content) else {
            continue; // reported properly when the file is loaded
        };
        for d in docs {
            if let Some(n) = d.get("name").and_then(yaml::scalar_text) {
                if !n.is_empty() {
                    from_files = n;
                }
            }
        }
    }
    if !from_files.is_empty() && ctx.opts.interpolate {
        let lookup = |k: &str| env.get(k).cloned();
        let out = interpolate::interpolate_str(&from_files, &lookup).map_err(|e| {
            at(
                sources.first().map(|s| s.path.clone()).unwrap_or_default(),
                format!("error while interpolating name: {e}"),
            )
        })?;
        from_files = out.value;
    }
    let from_files = discovery::normalize_project_name(&from_files);
    if !from_files.is_empty() {
        return Ok(from_files);
    }
    let dir = working_dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = discovery::normalize_project_name(&dir);
    if name.is_empty() {
        return Err(LoadError::EmptyProjectName);
    }
    Ok(name)
}

/// Load and merge `sources` into one tree whose relative paths are resolved against
/// `working_dir`, with `environment:` entries resolved from `env`.
pub(super) fn load_model(
    ctx: &mut Ctx,
    sources: &[Source],
    working_dir: &str,
    env: &Environment,
    included: &[PathBuf],
) -> Result<Value, LoadError> {
    let mut dict = Value::Mapping(Mapping::new());
    for source in sources {
        dict = load_file(ctx, source, working_dir, env, dict, included)?;
    }
    normalize::set_defaults(&mut dict);
    if ctx.opts.resolve_paths {
        normalize::resolve_relative_paths(&mut dict, working_dir);
    }
    normalize::resolve_environment(&mut dict, env);
    Ok(dict)
}

/// One file (every document in it) merged onto `dict`.
fn load_file(
    ctx: &mut Ctx,
    source: &Source,
    working_dir: &str,
    env: &Environment,
    mut dict: Value,
    included: &[PathBuf],
) -> Result<Value, LoadError> {
    let docs = parse_source(source)?;
    if docs.is_empty() && dict.as_mapping().is_none_or(Mapping::is_empty) {
        return Err(LoadError::Empty);
    }
    for (i, mut doc) in docs.into_iter().enumerate() {
        let located = |path: TreePath, message: String| LoadError::At {
            file: source.path.clone(),
            location: yaml::locate(&source.content, i, &path),
            path: Some(path),
            message,
        };
        if !doc.is_mapping() {
            return Err(at(&source.path, "top-level object must be a mapping"));
        }
        if let Some(m) = doc.as_mapping_mut() {
            if m.remove("version").is_some() {
                ctx.warn(format!(
                    "{}: the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion",
                    source.path.display()
                ));
            }
        }
        interpolate_doc(ctx, &mut doc, source, env)?;
        // Docker compose validates interpolated values (`${PORT}` must become a port); the tree
        // keeps the file's shape, so the error can still point into the file.
        schema::validate(&doc).map_err(|e| located(e.location(), e.to_string()))?;
        canonical::canonical(&mut doc).map_err(|e| at(&source.path, e))?;
        super::extends::apply(ctx, &mut doc, &source.path, working_dir, env)?;
        super::include::apply(ctx, &mut doc, &source.path, working_dir, env, included)?;
        dict = merge::merge(dict, doc).map_err(|e| at(&source.path, e))?;
        schema::validate(&dict).map_err(|e| at(&source.path, e))?;
    }
    Ok(dict)
}

/// A file loaded on its own (for `extends: file:`): parsed, interpolated, canonical; no
/// `extends` or `include` processing and no merging.
pub(super) fn load_standalone(
    ctx: &mut Ctx,
    path: &Path,
    env: &Environment,
) -> Result<Value, LoadError> {
    let source = read_source(path, ctx.opts)?;
    let mut dict = Value::Mapping(Mapping::new());
    for mut doc in parse_source(&source)? {
        interpolate_doc(ctx, &mut doc, &source, env)?;
        canonical::canonical(&mut doc).map_err(|e| at(&source.path, e))?;
        dict = merge::merge(dict, doc).map_err(|e| at(&source.path, e))?;
    }
    Ok(dict)
}

fn parse_source(source: &Source) -> Result<Vec<Value>, LoadError> {
    yaml::parse_documents(&source.content).map_err(|e| LoadError::At {
        file: source.path.clone(),
        location: e.location(),
        path: None,
        message: e.to_string(),
    })
}

/// Interpolate one document (unless `--no-interpolate`), collecting the warnings.
fn interpolate_doc(
    ctx: &mut Ctx,
    doc: &mut Value,
    source: &Source,
    env: &Environment,
) -> Result<(), LoadError> {
    if !ctx.opts.interpolate {
        return Ok(());
    }
    let lookup = |k: &str| env.get(k).cloned();
    let mut warnings = Vec::new();
    interpolate::interpolate_tree(doc, &lookup, &mut |w| warnings.push(w))
        .map_err(|e| at(&source.path, e))?;
    for w in warnings {
        ctx.warn(w);
    }
    Ok(())
}

/// Read the files of an included project.
pub(super) fn read_sources(ctx: &Ctx, paths: &[PathBuf]) -> Result<Vec<Source>, LoadError> {
    paths.iter().map(|p| read_source(p, ctx.opts)).collect()
}
