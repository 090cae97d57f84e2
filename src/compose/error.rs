//! The loader's error: what went wrong, in which file, at which line and key.

use std::fmt;
use std::path::{Path, PathBuf};

use super::path::TreePath;
use super::yaml::Location;

/// Every way loading a project can fail. Each variant says which file it concerns when one does.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A problem at a place in a file: syntax, schema, interpolation, canonical form.
    #[error("{}", located(file, location, path, message))]
    At {
        file: PathBuf,
        location: Option<Location>,
        path: Option<TreePath>,
        message: String,
    },
    #[error("failed to read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no configuration file provided: not found")]
    NoConfigFile,
    #[error("empty compose file")]
    Empty,
    #[error("invalid project name {0:?}: must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number")]
    InvalidProjectName(String),
    #[error("project name must not be empty")]
    EmptyProjectName,
    #[error(transparent)]
    Env(#[from] super::environment::EnvError),
    /// The project as a whole is inconsistent (undefined references, cycles, conflicts).
    #[error("{0}")]
    Invalid(String),
}

fn located(
    file: &Path,
    location: &Option<Location>,
    path: &Option<TreePath>,
    message: &str,
) -> String {
    let mut s = file.display().to_string();
    if let Some(l) = location {
        s.push_str(&format!(":{l}"));
    }
    s.push_str(": ");
    match path {
        Some(p) if !p.is_root() && !names_its_place(message, p) => {
            s.push_str(&format!("{p}: {message}"))
        }
        _ => s.push_str(message),
    }
    s
}

/// Whether a message already starts with its path or one of the path's ancestors, in either
/// spelling (`services.web.ports[0]` or docker's `services.web.ports.0`): a schema message says
/// `services.app additional properties 'comand' not allowed` for the path
/// `services.app.comand`, and printing the path in front of it would name the place twice.
fn names_its_place(message: &str, path: &TreePath) -> bool {
    use super::path::Seg;
    let first = message.split([' ', ':']).next().unwrap_or_default();
    let segs = path.segments();
    // At the top level the schema message has no path to start with, but names the key.
    if let [Seg::Key(k)] = segs {
        if message.starts_with("additional properties ") && message.contains(&format!("'{k}'")) {
            return true;
        }
    }
    (1..=segs.len()).any(|n| {
        let ancestor = TreePath(segs[..n].to_vec());
        let docker = segs[..n]
            .iter()
            .map(|seg| match seg {
                Seg::Key(k) => k.clone(),
                Seg::Index(i) => i.to_string(),
            })
            .collect::<Vec<_>>()
            .join(".");
        first == ancestor.to_string() || first == docker
    })
}

/// A small helper to build `LoadError::At` without a position.
pub fn at(file: impl Into<PathBuf>, message: impl fmt::Display) -> LoadError {
    LoadError::At {
        file: file.into(),
        location: None,
        path: None,
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn located_errors_name_file_line_and_key() {
        let e = LoadError::At {
            file: "/p/compose.yaml".into(),
            location: Some(Location { line: 8, column: 5 }),
            path: Some(TreePath::parse("services.web.wrongField")),
            message: "additional property not allowed".into(),
        };
        assert_eq!(
            e.to_string(),
            "/p/compose.yaml:8:5: services.web.wrongField: additional property not allowed"
        );
        let e = LoadError::At {
            file: "c.yaml".into(),
            location: None,
            path: Some(TreePath::parse("services.web")),
            message: "services.web must be a mapping".into(),
        };
        assert_eq!(e.to_string(), "c.yaml: services.web must be a mapping");
        // The place is named once when the message names the parent mapping.
        let e = LoadError::At {
            file: "c.yaml".into(),
            location: Some(Location { line: 4, column: 5 }),
            path: Some(TreePath::parse("services.app.comand")),
            message: "services.app additional properties 'comand' not allowed".into(),
        };
        assert_eq!(
            e.to_string(),
            "c.yaml:4:5: services.app additional properties 'comand' not allowed"
        );
    }
}
