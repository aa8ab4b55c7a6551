//! The parts of the `hangsafe` command that are plain functions of their
//! input, as a library: the parsers of targets and durations (fuzzed by
//! the targets in `fuzz/`), the table of exit statuses (checked against
//! README by the tests) and the stderr logger. The command itself is the
//! `hangsafe` binary.

pub mod duration;
pub mod exit;
pub mod logger;
pub mod target;
