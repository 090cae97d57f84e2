//! Images: references, registry configuration and credentials, pulls, the content store.

pub mod auth;
pub mod reference;
pub mod registries;
