//! From a project to the work that realises it.
pub mod graph;
