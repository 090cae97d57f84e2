//! The seam between plans and the machine: a [`Host`] applies one operation (and undoes one
//! when a run is rolled back). The supervisor's host runs containers, networks and volumes for
//! real; the recording double in this module's tests writes down what it was asked, so the
//! executor and plans are tested without root.

use futures_util::future::BoxFuture;

use super::ops::Step;

/// Why a host could not apply an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The operation failed; the message says what and on what.
    #[error("{0}")]
    Failed(String),
    /// The object the operation names does not exist.
    #[error("no such {kind}: {name}")]
    NotFound { kind: &'static str, name: String },
}

/// Applies operations on a machine.
pub trait Host: Send + Sync {
    /// Does one step's operation.
    fn apply<'a>(&'a self, step: &'a Step) -> BoxFuture<'a, Result<(), HostError>>;

    /// Undoes a step this run applied, when a later step failed: removes what it created
    /// (a container is stopped first). Only steps whose `op.creates()` are undone.
    fn undo<'a>(&'a self, step: &'a Step) -> BoxFuture<'a, Result<(), HostError>>;
}
