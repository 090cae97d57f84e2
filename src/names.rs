//! Names from a compose file (or the command line) that become directories or host-wide
//! objects: a named volume is `$RCOMPOSE_ROOT/volumes/<name>`, a container's name is in its
//! cgroup path `rcompose/<project>/<name>`, a project's name is `$RCOMPOSE_RUN/projects/<name>`.
//! Each must be one plain path component, so the rule is docker's own for volumes and
//! containers: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` — no `/`, and no `.` or `..` since the first
//! character is alphanumeric.
//!
//! Network names are not checked here: they only ever reach the host hashed (bridge and veth
//! names, `network::names`). Config and secret names never become paths (their files are named
//! by position and a sanitized key, `configs.rs`).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error(
        "invalid {kind} name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, \
         at least two characters (a name must be a single path component)"
    )]
    Restricted { kind: &'static str, name: String },
    #[error(
        "invalid project name {0:?}: must consist only of lowercase alphanumeric characters, \
         hyphens, and underscores as well as start with a letter or number"
    )]
    Project(String),
}

/// docker's `RestrictedNamePattern`: `^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`.
pub fn is_restricted(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A volume's name (`<project>_<key>`, its `name:`, an external one, or `run -v NAME:...`).
pub fn check_volume(name: &str) -> Result<(), NameError> {
    check("volume", name)
}

/// A container's name (`container_name`, `run --name`). The engine accepts one leading `/` and
/// drops it; so does [`container_name`].
pub fn check_container(name: &str) -> Result<(), NameError> {
    check("container", container_name(name))
}

/// A container's name as the engine keeps it: without the leading `/` docker allows.
pub fn container_name(name: &str) -> &str {
    name.strip_prefix('/').unwrap_or(name)
}

/// A project's name as docker compose allows it (`-p`, `COMPOSE_PROJECT_NAME`, `name:`):
/// `[a-z0-9][a-z0-9_-]*`.
pub fn check_project(name: &str) -> Result<(), NameError> {
    if crate::compose::discovery::is_valid_project_name(name) {
        Ok(())
    } else {
        Err(NameError::Project(name.to_string()))
    }
}

fn check(kind: &'static str, name: &str) -> Result<(), NameError> {
    if is_restricted(name) {
        Ok(())
    } else {
        Err(NameError::Restricted {
            kind,
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_components_as_docker_requires() {
        for ok in ["p_v", "db-data", "a.b", "x1", "0_x", "a..b"] {
            assert!(is_restricted(ok), "{ok}");
        }
        for bad in [
            "",
            "v",
            ".",
            "..",
            ".hidden",
            "../x",
            "../../../../tmp/x",
            "a/b",
            "a/../b",
            "/abs",
            "_x",
            "-x",
            "a b",
            "a\nb",
            "é1",
            "a\0b",
        ] {
            assert!(!is_restricted(bad), "{bad:?}");
            assert!(check_volume(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn container_names_may_start_with_one_slash() {
        assert!(check_container("/my_app-1").is_ok());
        assert_eq!(container_name("/my_app-1"), "my_app-1");
        assert!(check_container("//my_app-1").is_err());
        assert!(check_container("ab/../../../x").is_err());
        let e = check_container("ab/../x").unwrap_err().to_string();
        assert!(e.starts_with("invalid container name \"ab/../x\""), "{e}");
    }

    fn load(yaml: &str, check_names: bool) -> Result<(), String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yaml"), yaml).unwrap();
        let mut opts = crate::compose::loader::Options::from_process().unwrap();
        opts.cwd = dir.path().to_path_buf();
        opts.project_name = Some("p".into());
        opts.check_names = check_names;
        crate::compose::loader::load(&opts)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_loader_refuses_names_that_leave_the_store() {
        let volume = "services:\n  s:\n    image: busybox\n    volumes: [\"vol:/data\"]\n\
                      volumes:\n  vol:\n    name: ../../../../tmp/x\n";
        let e = load(volume, true).unwrap_err();
        assert!(
            e.contains("compose.yaml")
                && e.contains("volumes.vol")
                && e.contains("invalid volume name \"../../../../tmp/x\""),
            "{e}"
        );
        // `config` prints it, as docker compose does.
        load(volume, false).unwrap();

        let external = "services:\n  s:\n    image: busybox\n    volumes: [\"vol:/data\"]\n\
                        volumes:\n  vol:\n    external: {name: ..}\n";
        let e = load(external, true).unwrap_err();
        assert!(e.contains("invalid volume name \"..\""), "{e}");

        let container = "services:\n  s:\n    image: busybox\n    container_name: ab/../../x\n";
        let e = load(container, true).unwrap_err();
        assert!(
            e.contains("services.s.container_name")
                && e.contains("invalid container name \"ab/../../x\""),
            "{e}"
        );

        // What docker accepts still loads; an unused volume is dropped before the check.
        load(
            "services:\n  s:\n    image: busybox\n    container_name: /my-app.1\n\
             volumes:\n  unused:\n    name: ../x\n",
            true,
        )
        .unwrap();
    }

    #[test]
    fn project_names_follow_docker_compose() {
        assert!(check_project("web-1_x").is_ok());
        for bad in ["", "../x", "a/b", "Web", "-x", ".."] {
            assert!(check_project(bad).is_err(), "{bad:?}");
        }
    }
}
