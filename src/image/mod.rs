//! Images: registry pulls, the content store and layer unpacking.

pub mod unpack;
