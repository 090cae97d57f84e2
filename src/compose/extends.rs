//! `extends`: a service built on another one, from the same file or another file.
//!
//! Runs on a file's canonical tree before it is merged with other files, as docker compose
//! does. A base from another file is loaded on its own, its relative paths resolved against its
//! own directory, then the extending service is merged over it with the usual merge rules.

use serde_yaml::{Mapping, Value};
use std::path::{Path, PathBuf};

use super::discovery::absolutize;
use super::environment::Environment;
use super::error::{at, LoadError};
use super::loader::{self, Ctx};
use super::yaml::{get, scalar_text};
use super::{merge, normalize};

/// Resolve every `extends` of the services in `doc` (a file's tree).
pub(super) fn apply(
    ctx: &mut Ctx,
    doc: &mut Value,
    file: &Path,
    working_dir: &str,
    env: &Environment,
) -> Result<(), LoadError> {
    let Some(services) = doc.get_mut("services").and_then(Value::as_mapping_mut) else {
        return Ok(());
    };
    let names: Vec<String> = services
        .keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    for name in names {
        let mut chain = Vec::new();
        resolve(ctx, &name, services, file, working_dir, env, &mut chain)?;
    }
    Ok(())
}

/// The service `name` of `services` with its `extends` applied (recursively), stored back into
/// `services`. `None` when there is no such service.
fn resolve(
    ctx: &mut Ctx,
    name: &str,
    services: &mut Mapping,
    file: &Path,
    working_dir: &str,
    env: &Environment,
    chain: &mut Vec<(PathBuf, String)>,
) -> Result<Option<Value>, LoadError> {
    let Some(service) = get(services, name).cloned() else {
        return Ok(None);
    };
    let Some(ext) = service.get("extends").cloned() else {
        return Ok(Some(service));
    };
    let base_name = ext
        .get("service")
        .and_then(scalar_text)
        .or_else(|| scalar_text(&ext))
        .ok_or_else(|| {
            at(
                file,
                format!("services.{name}.extends: `service` must name a service"),
            )
        })?;

    let link = (file.to_path_buf(), name.to_string());
    if chain.contains(&link) {
        chain.push(link);
        let cycle: Vec<String> = chain
            .iter()
            .map(|(f, s)| format!("{s} in {}", f.display()))
            .collect();
        return Err(LoadError::Invalid(format!(
            "circular reference in extends: {}",
            cycle.join(" extends ")
        )));
    }
    chain.push(link);

    let base = match ext.get("file").and_then(scalar_text) {
        Some(other) => {
            let path = absolutize(Path::new(working_dir), Path::new(&other));
            let mut tree = loader::load_standalone(ctx, &path, env)?;
            let dir = path
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            normalize::resolve_relative_paths(&mut tree, &dir);
            let Some(other_services) = tree.get_mut("services").and_then(Value::as_mapping_mut)
            else {
                return Err(at(
                    &path,
                    format!("cannot extend service \"{name}\": no services section"),
                ));
            };
            if get(other_services, &base_name).is_none() {
                return Err(at(
                    file,
                    format!(
                        "cannot extend service \"{name}\": service \"{base_name}\" not found in {}",
                        path.display()
                    ),
                ));
            }
            resolve(ctx, &base_name, other_services, &path, &dir, env, chain)?
        }
        None => {
            if get(services, &base_name).is_none() {
                return Err(at(
                    file,
                    format!("cannot extend service \"{name}\": service \"{base_name}\" not found"),
                ));
            }
            resolve(ctx, &base_name, services, file, working_dir, env, chain)?
        }
    };
    chain.pop();
    let Some(base) = base else {
        return Ok(Some(service));
    };

    let merged = merge_service(base, service).map_err(|e| at(file, e))?;
    services.insert(Value::from(name), merged.clone());
    Ok(Some(merged))
}

/// The extending service merged over its base, without its `extends`.
fn merge_service(base: Value, over: Value) -> Result<Value, merge::MergeError> {
    let mut service = merge::merge_service(base, over)?;
    if let Some(m) = service.as_mapping_mut() {
        m.remove("extends");
    }
    Ok(service)
}
