//! The container runtime: from a service and its image to an isolated, limited process.
//!
//! [`spec`] derives what a container runs with docker's semantics (pure logic).

pub mod spec;
