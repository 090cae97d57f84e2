//! Image builds (`build:`, `rcompose build`, `rcompose image build`), with no daemon.
//!
//! Dockerfile frontend (`dockerfile`) → stages as a graph → each step run by rcompose's own
//! runtime on an overlay of its parent's layers → the step's change read from the overlay upper
//! directory (`layer`) → content-addressed step cache → the image store beside pulled images.
//! The build context (`context`) is read through `.dockerignore`, never following a link out of
//! it, and hashed by content so that a changed file invalidates only the steps that read it.

pub mod context;
pub mod dockerfile;
pub mod layer;
