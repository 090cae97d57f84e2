//! From a project to the work that realises it.
