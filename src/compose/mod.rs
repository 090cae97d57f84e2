//! Loading compose files into the typed project model.
//!
//! load → interpolate → validate → canonical form → merge (-f, extends, include) → profiles →
//! normalise → typed [`model::Project`].

pub mod dotenv;
pub mod interpolate;
pub mod path;
