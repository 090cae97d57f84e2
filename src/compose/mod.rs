//! Loading compose files into the typed project model.
//!
//! load → validate → interpolate → canonical form → extends, include, merge (-f) →
//! defaults, paths, environment → normalise → profiles → consistency → typed
//! [`model::Project`]. [`loader::load`] is the entry point.

pub mod canonical;
pub mod discovery;
pub mod dotenv;
pub mod environment;
pub mod error;
mod extends;
mod include;
pub mod interpolate;
pub mod loader;
pub mod merge;
pub mod model;
pub mod normalize;
pub mod path;
pub mod schema;
pub mod shellwords;
pub mod yaml;
