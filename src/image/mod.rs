//! Images: references, registries, pulls into a verified content store, unpacked layers.

pub mod config;
pub mod digest;
pub mod store;
