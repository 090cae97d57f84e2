//! rcompose: a daemonless Docker Compose.
//!
//! The crate follows the data flow: `compose` turns files into a typed [`compose::model::Project`],
//! `plan` turns a project into a service graph and the operations that realise it.

pub mod build;
pub mod cli;
pub mod compose;
pub mod configs;
pub mod diagnostics;
pub mod image;
pub mod logs;
pub mod names;
pub mod network;
pub mod paths;
pub mod plan;
pub mod runtime;
pub mod supervisor;
pub mod volume;
pub mod watch;
