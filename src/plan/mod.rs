//! From a project to the work that realises it: the service graph, what exists
//! (`observed`), the plan of typed operations that converges one on the other (`reconcile`,
//! `ops`), and the executor that runs a plan through a [`host::Host`].
pub mod executor;
pub mod graph;
pub mod host;
pub mod observed;
pub mod ops;
pub mod reconcile;
