//! The Dockerfile frontend: parser, instructions, variable expansion, stages.
