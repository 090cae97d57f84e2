//! `include`: other compose projects imported into this one, each loaded from its own
//! directory with its own `.env`.

use serde_yaml::{Mapping, Value};
use std::path::{Path, PathBuf};

use super::discovery::absolutize;
use super::environment::{self, Environment};
use super::error::{at, LoadError};
use super::loader::{self, Ctx};
use super::yaml::{get, scalar_text};

/// The top-level resources an included project contributes.
const RESOURCES: [&str; 6] = [
    "services", "volumes", "networks", "secrets", "configs", "models",
];

pub(super) fn apply(
    ctx: &mut Ctx,
    doc: &mut Value,
    file: &Path,
    working_dir: &str,
    env: &Environment,
    included: &[PathBuf],
) -> Result<(), LoadError> {
    let Some(includes) = doc.as_mapping_mut().and_then(|m| m.remove("include")) else {
        return Ok(());
    };
    let items = match includes {
        Value::Sequence(s) => s,
        Value::Null => return Ok(()),
        _ => return Err(at(file, "include must be a list")),
    };
    let mut chain = included.to_vec();
    chain.push(file.to_path_buf());
    let wd = Path::new(working_dir);

    for item in items {
        let paths = string_list(item.get("path").unwrap_or(&item));
        if paths.is_empty() {
            return Err(at(file, "include: `path` is required"));
        }
        let paths: Vec<PathBuf> = paths.iter().map(|p| absolutize(wd, Path::new(p))).collect();
        let project_dir = match item.get("project_directory").and_then(scalar_text) {
            Some(d) => absolutize(wd, Path::new(&d)),
            None => paths[0]
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| wd.to_path_buf()),
        };
        if chain.contains(&paths[0]) {
            let mut names: Vec<String> = chain.iter().map(|p| p.display().to_string()).collect();
            names.push(paths[0].display().to_string());
            return Err(LoadError::Invalid(format!(
                "include cycle detected:\n{}\n include {}",
                names[0],
                names[1..].join("\n include ")
            )));
        }

        let mut env_files = Vec::new();
        match item.get("env_file") {
            None | Some(Value::Null) => {
                let f = project_dir.join(".env");
                if f.is_file() {
                    env_files.push(f);
                }
            }
            Some(v) => {
                for f in string_list(v) {
                    if f == "/dev/null" {
                        continue;
                    }
                    let f = absolutize(wd, Path::new(&f));
                    if !f.is_file() {
                        return Err(at(file, format!("env file {} not found", f.display())));
                    }
                    env_files.push(f);
                }
            }
        }
        let include_env = environment::with_env_files(env, &env_files)?;
        let sources = loader::read_sources(ctx, &paths)?;
        let imported = loader::load_model(
            ctx,
            &sources,
            &project_dir.to_string_lossy(),
            &include_env,
            &chain,
        )?;
        import_resources(imported, doc).map_err(|e| at(file, e))?;
    }
    Ok(())
}

/// A string or a list of strings.
fn string_list(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(s) => s.iter().filter_map(scalar_text).collect(),
        other => scalar_text(other).into_iter().collect(),
    }
}

/// Add the imported project's resources to `target`; a name defined differently on both sides
/// is a conflict.
fn import_resources(source: Value, target: &mut Value) -> Result<(), String> {
    let Value::Mapping(source) = source else {
        return Ok(());
    };
    let Some(target) = target.as_mapping_mut() else {
        return Ok(());
    };
    for key in RESOURCES {
        let Some(Value::Mapping(from)) = get(&source, key) else {
            continue;
        };
        let entry = target
            .entry(Value::from(key))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if entry.is_null() {
            *entry = Value::Mapping(Mapping::new());
        }
        let Some(to) = entry.as_mapping_mut() else {
            return Err(format!("{key} must be a mapping"));
        };
        for (name, value) in from {
            match to.get(name) {
                Some(existing) if existing == value => {}
                Some(_) => {
                    return Err(format!(
                        "{key}.{} conflicts with imported resource",
                        scalar_text(name).unwrap_or_default()
                    ))
                }
                None => {
                    to.insert(name.clone(), value.clone());
                }
            }
        }
    }
    Ok(())
}
