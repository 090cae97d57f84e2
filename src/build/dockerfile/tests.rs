//! Table-driven tests for the Dockerfile frontend.
