//! Images: references, registries, pulls into a verified content store, unpacked layers.

pub mod archive;
pub mod auth;
pub mod config;
pub mod digest;
pub mod progress;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registries;
pub mod save;
pub mod store;
pub mod unpack;
