//! The build context: `.dockerignore`, source resolution, content hashes, copying.
