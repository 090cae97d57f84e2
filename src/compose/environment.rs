//! The project environment: the OS environment, then `.env` / `--env-file` values it lacks.
//!
//! It feeds interpolation, `COMPOSE_*` settings, and `environment:` entries given without a
//! value. Docker compose's precedence: a variable set in the OS environment always wins.

use indexmap::IndexMap;
use std::path::{Path, PathBuf};

use super::dotenv;

pub type Environment = IndexMap<String, String>;

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("couldn't find env file: {0}")]
    Missing(PathBuf),
    #[error("failed to read {path}: {source}")]
    Dotenv {
        path: PathBuf,
        #[source]
        source: dotenv::DotenvError,
    },
    #[error("invalid value for {name}: {value:?} (expected true or false)")]
    NotABool { name: String, value: String },
}

/// The process environment, as a map.
pub fn os_environment() -> Environment {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// `PWD` as docker compose supplies it when the environment lacks it (`env -i`, cron, some CI
/// runners): the current directory, not the project's. Set but empty stays empty, as there.
/// It is the only variable docker compose adds to the OS environment for interpolation,
/// `.env` files and valueless `environment:` entries (`COMPOSE_PROJECT_NAME` is derived
/// separately).
pub fn supply_pwd(env: &mut Environment, cwd: &Path) {
    if !env.contains_key("PWD") {
        if let Some(dir) = cwd.to_str() {
            env.insert("PWD".to_string(), dir.to_string());
        }
    }
}

/// Go's `strconv.ParseBool`, which docker compose uses for boolean settings.
pub fn parse_bool(name: &str, value: &str) -> Result<bool, EnvError> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(EnvError::NotABool {
            name: name.to_string(),
            value: value.to_string(),
        }),
    }
}

/// The env files to read: `--env-file` values (relative to the current directory) or the
/// `.env` file of the working directory, unless `COMPOSE_DISABLE_ENV_FILE` is true.
pub fn env_files(
    explicit: &[PathBuf],
    cwd: &Path,
    working_dir: &Path,
    os_env: &Environment,
) -> Result<Vec<PathBuf>, EnvError> {
    if !explicit.is_empty() {
        return Ok(explicit
            .iter()
            .map(|p| super::discovery::absolutize(cwd, p))
            .collect());
    }
    if let Some(v) = os_env.get("COMPOSE_DISABLE_ENV_FILE") {
        if parse_bool("COMPOSE_DISABLE_ENV_FILE", v)? {
            return Ok(Vec::new());
        }
    }
    let default = working_dir.join(".env");
    Ok(if default.is_file() {
        vec![default]
    } else {
        Vec::new()
    })
}

/// Add the values of `files` to `base` where `base` lacks them. A later file overrides an
/// earlier one; variables in a file may refer to the environment and to earlier files.
pub fn with_env_files(base: &Environment, files: &[PathBuf]) -> Result<Environment, EnvError> {
    let mut from_files: Environment = IndexMap::new();
    for path in files {
        if !path.exists() {
            return Err(EnvError::Missing(path.clone()));
        }
        let lookup = |name: &str| -> Option<String> {
            base.get(name)
                .cloned()
                .or_else(|| from_files.get(name).cloned())
        };
        let values = dotenv::read_file(path, &lookup).map_err(|source| EnvError::Dotenv {
            path: path.clone(),
            source,
        })?;
        from_files.extend(values);
    }
    let mut env = base.clone();
    for (k, v) in from_files {
        env.entry(k).or_insert(v);
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pwd_is_supplied_only_when_absent() {
        let mut env = Environment::new();
        supply_pwd(&mut env, Path::new("/work/dir"));
        assert_eq!(env.get("PWD").map(String::as_str), Some("/work/dir"));
        let mut env: Environment = [("PWD".to_string(), String::new())].into_iter().collect();
        supply_pwd(&mut env, Path::new("/work/dir"));
        assert_eq!(env.get("PWD").map(String::as_str), Some(""));
    }

    #[test]
    fn os_environment_wins_over_env_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join(".env");
        std::fs::write(&f, "A=from-file\nB=from-file\nC=${A}-c\n").unwrap();
        let mut base = Environment::new();
        base.insert("A".into(), "from-os".into());
        let env = with_env_files(&base, &[f]).unwrap();
        assert_eq!(env["A"], "from-os");
        assert_eq!(env["B"], "from-file");
        assert_eq!(env["C"], "from-os-c");
    }

    #[test]
    fn later_env_files_override_earlier_ones() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.env");
        let b = dir.path().join("b.env");
        std::fs::write(&a, "X=1\nY=1\n").unwrap();
        std::fs::write(&b, "X=2\n").unwrap();
        let env = with_env_files(&Environment::new(), &[a, b]).unwrap();
        assert_eq!(env["X"], "2");
        assert_eq!(env["Y"], "1");
    }

    #[test]
    fn missing_env_file_is_an_error() {
        let err =
            with_env_files(&Environment::new(), &[PathBuf::from("/nonexistent/.env")]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/.env"), "{err}");
    }

    #[test]
    fn default_env_file_can_be_disabled() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env"), "A=1\n").unwrap();
        let mut os = Environment::new();
        assert_eq!(
            env_files(&[], dir.path(), dir.path(), &os).unwrap().len(),
            1
        );
        os.insert("COMPOSE_DISABLE_ENV_FILE".into(), "true".into());
        assert!(env_files(&[], dir.path(), dir.path(), &os)
            .unwrap()
            .is_empty());
        os.insert("COMPOSE_DISABLE_ENV_FILE".into(), "maybe".into());
        assert!(env_files(&[], dir.path(), dir.path(), &os).is_err());
    }
}
