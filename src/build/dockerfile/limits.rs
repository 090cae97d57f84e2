//! Bounds on input, so that a hostile or broken Dockerfile fails with an error instead of
//! exhausting memory or the stack. Real Dockerfiles are far below every one of them.

/// The whole Dockerfile, heredoc bodies included.
pub const MAX_SOURCE: usize = 4 << 20;
/// One physical line, as BuildKit's line scanner (`bufio.MaxScanTokenSize - 1`).
pub const MAX_LINE: usize = 65535;
/// One logical line (physical lines joined by continuations).
pub const MAX_LOGICAL_LINE: usize = 1 << 20;
/// Instructions in one Dockerfile (FROM included).
pub const MAX_INSTRUCTIONS: usize = 10_000;
/// Heredocs in one Dockerfile.
pub const MAX_HEREDOCS: usize = 1_000;
/// The result of expanding one word or heredoc body.
pub const MAX_EXPANSION: usize = 8 << 20;
/// Bytes of variable values one word may look up and scan in total (each `$V`, each
/// `${V%p}`-style pattern operation counts its value), so that a short word over huge values
/// cannot take minutes.
pub const MAX_EXPANSION_WORK: usize = 64 << 20;
/// Nesting of `${...}` (each level may hold quotes and further `${...}`).
pub const MAX_NESTING: usize = 64;
/// Flags on one instruction.
pub const MAX_FLAGS: usize = 256;
