//! Git sources: a build context given as a git URL (`build.context:
//! https://github.com/org/repo.git#ref:subdir`, `image build git://…`) and `ADD <git url> <dest>`.
//!
//! Which strings are git URLs follows docker's rules (`urlutil.IsGitURL`): `git://`, `git@`
//! and `github.com/` prefixes, and `http(s)://` URLs whose path ends in `.git` (before an
//! optional `#fragment`). The fragment is BuildKit's `ref:subdir`, both optional.
//!
//! Fetching uses the `git` program, as docker's classic builder does (BuildKit has git built
//! in): `git init`, a shallow `git fetch` of the ref (or the remote's HEAD), `git checkout`,
//! then `.git` is removed, as BuildKit does by default. Only network transports are allowed
//! (`GIT_ALLOW_PROTOCOL`): no `file://` or `ext::` from a compose file, and git never prompts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::BuildError;

/// A git source: where, which ref, which directory of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRef {
    /// The remote as git takes it (`https://host/org/repo.git`, `git@host:org/repo.git`).
    pub remote: String,
    /// A branch, tag or commit (`None`: the remote's HEAD).
    pub reference: Option<String>,
    /// A directory of the repository (`None`: its root).
    pub subdir: Option<String>,
}

/// Whether `s` is a git URL by docker's rules.
pub fn is_git_url(s: &str) -> bool {
    if s.starts_with("git://") || s.starts_with("git@") || s.starts_with("github.com/") {
        return true;
    }
    if s.starts_with("http://") || s.starts_with("https://") {
        let path = s.split('#').next().unwrap_or(s);
        return path.ends_with(".git");
    }
    false
}

/// Parses a git URL with BuildKit's `#ref:subdir` fragment; `None` if `s` is no git URL.
pub fn parse(s: &str) -> Option<GitRef> {
    if !is_git_url(s) {
        return None;
    }
    let (url, fragment) = match s.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (s, None),
    };
    let remote = match url.strip_prefix("github.com/") {
        Some(rest) => format!("https://github.com/{rest}"),
        None => url.to_string(),
    };
    let (reference, subdir) = match fragment {
        Some(f) => {
            let (r, d) = match f.split_once(':') {
                Some((r, d)) => (r, Some(d)),
                None => (f, None),
            };
            (
                (!r.is_empty()).then(|| r.to_string()),
                d.filter(|d| !d.is_empty()).map(str::to_string),
            )
        }
        None => (None, None),
    };
    Some(GitRef {
        remote,
        reference,
        subdir,
    })
}

fn failed(what: &str, g: &GitRef, detail: impl std::fmt::Display) -> BuildError {
    BuildError::Step(format!("git {}: {what}: {detail}", g.remote))
}

fn git(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C")
        .arg(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ALLOW_PROTOCOL", "https:http:git:ssh")
        // A repository's own hooks and configuration never run here.
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::null());
    // ssh asks on the terminal (an unknown host key, a passphrase), whatever git's own
    // setting: a build must fail instead of waiting for an answer.
    if std::env::var_os("GIT_SSH_COMMAND").is_none() && std::env::var_os("GIT_SSH").is_none() {
        c.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    }
    c
}

fn run(mut c: Command, what: &str, g: &GitRef) -> Result<(), BuildError> {
    let out = c.output().map_err(|e| {
        failed(
            what,
            g,
            if e.kind() == std::io::ErrorKind::NotFound {
                "the git program is not installed".to_string()
            } else {
                e.to_string()
            },
        )
    })?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(failed(what, g, err.trim()))
    }
}

/// What a fetch gave: the directory to use (the subdir, if any) and the commit checked out.
pub struct Fetched {
    pub dir: PathBuf,
    pub commit: String,
}

/// Fetches `g` into the empty directory `into` and returns the directory of its subdir. The
/// subdir must be a directory inside the checkout (its links are not followed out of it).
/// The checkout's `.git` is removed unless `keep_git_dir` (`ADD --keep-git-dir=true`).
pub fn fetch(g: &GitRef, into: &Path, keep_git_dir: bool) -> Result<Fetched, BuildError> {
    std::fs::create_dir_all(into).map_err(|e| failed("cannot create the checkout", g, e))?;
    run(
        {
            let mut c = git(into);
            c.args(["init", "-q"]);
            c
        },
        "init",
        g,
    )?;
    let wanted = g.reference.as_deref().unwrap_or("HEAD");
    let shallow = {
        let mut c = git(into);
        c.args(["fetch", "-q", "--depth", "1", "--", &g.remote, wanted]);
        c
    };
    if run(shallow, "fetch", g).is_err() {
        // A commit the server does not serve shallow: the whole history, then that commit.
        let mut c = git(into);
        c.args([
            "fetch",
            "-q",
            "--",
            &g.remote,
            "+refs/heads/*:refs/remotes/origin/*",
            "+refs/tags/*:refs/tags/*",
        ]);
        run(c, "fetch", g)?;
        let mut c = git(into);
        c.args(["checkout", "-q", "--detach", wanted]);
        run(c, &format!("checkout {wanted}"), g)?;
    } else {
        let mut c = git(into);
        c.args(["checkout", "-q", "--detach", "FETCH_HEAD"]);
        run(c, "checkout", g)?;
    }
    let commit = {
        let out = git(into)
            .args(["rev-parse", "HEAD"])
            .output()
            .map_err(|e| failed("rev-parse", g, e))?;
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    if !keep_git_dir {
        std::fs::remove_dir_all(into.join(".git"))
            .map_err(|e| failed("cannot remove .git", g, e))?;
    }
    let dir = match &g.subdir {
        None => into.to_path_buf(),
        Some(sub) => {
            let root = into.canonicalize().map_err(|e| failed("checkout", g, e))?;
            let dir = root
                .join(sub.trim_start_matches('/'))
                .canonicalize()
                .map_err(|e| failed(&format!("subdirectory {sub}"), g, e))?;
            if !dir.starts_with(&root) || !dir.is_dir() {
                return Err(failed(
                    &format!("subdirectory {sub}"),
                    g,
                    "not a directory inside the repository",
                ));
            }
            dir
        }
    };
    Ok(Fetched { dir, commit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_urls_by_docker_rules() {
        for yes in [
            "git://host/repo",
            "git@github.com:org/repo.git",
            "github.com/org/repo",
            "https://host/org/repo.git",
            "https://host/org/repo.git#main:sub",
            "http://host/repo.git#v1",
        ] {
            assert!(is_git_url(yes), "{yes}");
        }
        for no in [
            "https://host/archive.tar.gz",
            "https://host/repo.git/file",
            "./dir",
            "/abs/dir",
            "ssh-key",
        ] {
            assert!(!is_git_url(no), "{no}");
        }
    }

    #[test]
    fn fragments_name_the_ref_and_the_subdir() {
        let g = |s: &str| parse(s).expect(s);
        assert_eq!(
            g("https://h/r.git#main:docker/app"),
            GitRef {
                remote: "https://h/r.git".into(),
                reference: Some("main".into()),
                subdir: Some("docker/app".into()),
            }
        );
        assert_eq!(g("https://h/r.git#:sub").reference, None);
        assert_eq!(g("https://h/r.git#:sub").subdir.as_deref(), Some("sub"));
        assert_eq!(g("https://h/r.git#v1.2").reference.as_deref(), Some("v1.2"));
        assert_eq!(g("https://h/r.git").reference, None);
        assert_eq!(g("github.com/o/r").remote, "https://github.com/o/r");
        assert_eq!(parse("./local"), None);
    }
}
