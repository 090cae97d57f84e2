//! Layers from overlay upper directories, image configs, committing built images.
