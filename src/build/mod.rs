//! Image builds (`build:`, `rcompose build`, `rcompose image build`), with no daemon.
//!
//! Dockerfile frontend (`dockerfile`) → stages as a graph → each step run by rcompose's own
//! runtime on an overlay of its parent's layers (`run`, `mount`) → the step's change read from
//! the overlay upper directory (`layer`) → content-addressed step cache (`cache`) → the image
//! store beside pulled images. The build context (`context`) is read through `.dockerignore`,
//! never following a link out of it, and hashed by content so that a changed file invalidates
//! only the steps that read it. `executor` walks the stages; `progress` shows them as BuildKit
//! does (plain lines, or its live display on a terminal).

pub mod cache;
pub mod cleanup;
pub mod context;
pub mod dockerfile;
pub mod executor;
pub mod git;
pub mod layer;
pub mod mount;
pub mod network;
mod prefetch;
pub mod progress;
pub mod remote;
pub mod run;

use std::io;
use std::path::PathBuf;

use indexmap::IndexMap;

use crate::compose::model::{HostsList, UlimitsConfig};
use crate::image::store::{ImageRecord, StoreError};

/// Where the Dockerfile comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerfileSource {
    /// A path (absolute, or relative to the context).
    Path(PathBuf),
    /// `dockerfile_inline`.
    Inline(String),
}

/// A secret a RUN step may mount (`--mount=type=secret,id=ID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    /// The value of an environment variable of rcompose's.
    Env(String),
}

/// One build, as compose's `build:` section or `rcompose image build` describes it.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// The context directory (absolute).
    pub context: PathBuf,
    /// A git repository to fetch as the context first (`context` is then set to its checkout).
    pub git_context: Option<git::GitRef>,
    /// An http(s) URL to fetch as the context first: a tar archive (plain, gzip, bzip2, xz or
    /// zstd) is the context, anything else the Dockerfile of an otherwise empty one (docker's
    /// rules); `context` is then set to where it was put.
    pub url_context: Option<String>,
    /// `None`: `Dockerfile` in the context.
    pub dockerfile: Option<DockerfileSource>,
    /// Build args; `None` values take the variable from the environment, as docker does.
    pub args: IndexMap<String, Option<String>>,
    pub target: Option<String>,
    /// References to tag the result with (normalised).
    pub tags: Vec<String>,
    pub labels: IndexMap<String, String>,
    pub no_cache: bool,
    /// Pull base images even when present.
    pub pull: bool,
    /// `default`, `none` or `host`.
    pub network: Option<String>,
    pub secrets: IndexMap<String, SecretSource>,
    pub extra_hosts: HostsList,
    pub shm_size: Option<u64>,
    pub ulimits: IndexMap<String, UlimitsConfig>,
    pub privileged: bool,
    /// `additional_contexts`: name → a directory, `docker-image://REF` or `target:STAGE`.
    pub additional_contexts: IndexMap<String, String>,
    /// SSH agent sockets RUN steps may mount (`--mount=type=ssh,id=ID`), by id.
    pub ssh: IndexMap<String, PathBuf>,
    /// `cache_from` / `--cache-from type=local,src=DIR`: step records to import first.
    pub cache_from: Vec<PathBuf>,
    /// `cache_to` / `--cache-to type=local,dest=DIR`: this build's step records, exported.
    pub cache_to: Vec<PathBuf>,
    /// `cache_from: type=registry,ref=REF` (or a bare reference): a cache pushed by
    /// `cache_to: type=registry`, fetched into a directory of `cache_from` first.
    pub registry_cache_from: Vec<crate::image::reference::Reference>,
    /// `cache_to: type=registry,ref=REF`: this build's step records, pushed there.
    pub registry_cache_to: Vec<crate::image::reference::Reference>,
    /// What the progress lines call this build (the service name in compose).
    pub name: String,
}

/// What the builder needs from outside: base images (pulled when absent or asked).
pub trait Images: Sync {
    fn base_image(&self, reference: &str, pull: bool) -> Result<ImageRecord, String>;
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Dockerfile(#[from] dockerfile::DockerfileError),
    #[error("{0}")]
    Context(#[from] context::ContextError),
    #[error("{0}")]
    Layer(#[from] layer::LayerError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("base image {reference}: {message}")]
    BaseImage { reference: String, message: String },
    #[error("{0}")]
    Step(String),
    /// A RUN step that exited non-zero.
    #[error("{location}: {instruction}: exit code {code}{}", tail_text(.tail))]
    StepFailed {
        /// `Dockerfile:12 (stage build)`.
        location: String,
        instruction: String,
        code: i32,
        tail: Vec<String>,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0} is not supported yet")]
    Unsupported(String),
    #[error("build interrupted")]
    Interrupted,
}

fn tail_text(tail: &[String]) -> String {
    if tail.is_empty() {
        return String::new();
    }
    let mut s = String::from("\nits last output lines:");
    for l in tail {
        s.push_str("\n  ");
        s.push_str(l);
    }
    s
}
