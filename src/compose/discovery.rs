//! Which compose files, which project directory, which project name: docker compose's rules.

use std::path::{Path, PathBuf};

/// The file names docker compose looks for, in order of preference.
pub const DEFAULT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// The override file names, in order of preference, applied on top of the main file.
pub const OVERRIDE_FILES: [&str; 4] = [
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The main file, then the override file when there is one.
    pub files: Vec<PathBuf>,
    /// Other candidates found beside the main file (docker compose warns about them).
    pub ignored: Vec<PathBuf>,
}

/// Find the compose file in `dir` or its parents, and its override file beside it.
pub fn find_files(dir: &Path) -> Option<Discovered> {
    let mut current = Some(dir);
    while let Some(d) = current {
        let found: Vec<PathBuf> = DEFAULT_FILES
            .iter()
            .map(|n| d.join(n))
            .filter(|p| p.is_file())
            .collect();
        if let Some(main) = found.first() {
            let mut files = vec![main.clone()];
            if let Some(over) = OVERRIDE_FILES
                .iter()
                .map(|n| d.join(n))
                .find(|p| p.is_file())
            {
                files.push(over);
            }
            return Some(Discovered {
                files,
                ignored: found[1..].to_vec(),
            });
        }
        current = d.parent();
    }
    None
}

/// Docker compose's project-name normalisation: lower case, keep `[a-z0-9_-]`, drop leading
/// `_` and `-`.
pub fn normalize_project_name(s: &str) -> String {
    let kept: String = s
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    kept.trim_start_matches(['_', '-']).to_string()
}

/// A name given with `-p` or `COMPOSE_PROJECT_NAME` must already be normalised.
pub fn is_valid_project_name(s: &str) -> bool {
    !s.is_empty() && normalize_project_name(s) == s
}

/// Make `p` absolute against `base` and clean `.`/`..` lexically, as Go's `filepath.Join` does
/// (no symlink resolution, so paths print the way the user wrote them).
pub fn absolutize(base: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    clean(&joined)
}

/// Lexical path cleaning (Go's `filepath.Clean`).
pub fn clean(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {}
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

/// `filepath.Join(base, p)` for a possibly relative `base`: joined then cleaned.
pub fn join_clean(base: &str, p: &str) -> String {
    if p.starts_with('/') {
        return clean(Path::new(p)).to_string_lossy().into_owned();
    }
    let joined = if base.is_empty() {
        PathBuf::from(p)
    } else {
        Path::new(base).join(p)
    };
    clean(&joined).to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_are_normalised_like_docker() {
        assert_eq!(normalize_project_name("My Project!"), "myproject");
        assert_eq!(normalize_project_name("__-web_1"), "web_1");
        assert_eq!(
            normalize_project_name("UNNORMALIZED PATH"),
            "unnormalizedpath"
        );
        assert!(is_valid_project_name("web-1_x"));
        assert!(!is_valid_project_name("Web"));
        assert!(!is_valid_project_name("-web"));
        assert!(!is_valid_project_name(""));
    }

    #[test]
    fn clean_paths_lexically() {
        assert_eq!(clean(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(clean(Path::new("/../a")), PathBuf::from("/a"));
        assert_eq!(clean(Path::new("a/../../b")), PathBuf::from("../b"));
        assert_eq!(join_clean("sub", "./data"), "sub/data");
        assert_eq!(join_clean("", "./data"), "data");
        assert_eq!(join_clean("/w", "../x"), "/x");
    }

    #[test]
    fn finds_files_in_parents_with_override() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("docker-compose.yml"), "services: {}").unwrap();
        std::fs::write(root.join("compose.yaml"), "services: {}").unwrap();
        std::fs::write(root.join("compose.override.yaml"), "services: {}").unwrap();
        let sub = root.join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        let found = find_files(&sub).unwrap();
        assert_eq!(
            found.files,
            vec![
                root.join("compose.yaml"),
                root.join("compose.override.yaml")
            ]
        );
        assert_eq!(found.ignored, vec![root.join("docker-compose.yml")]);
        let empty = tempfile::tempdir().unwrap();
        // The temp dir's parents (/tmp, /) hold no compose file on a sane machine.
        if find_files(Path::new("/tmp")).is_none() {
            assert!(find_files(empty.path()).is_none());
        }
    }
}
