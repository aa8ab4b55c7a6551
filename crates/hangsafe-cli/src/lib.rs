//! The library part of the `hangsafe` command: what fuzz targets and tests
//! need to call directly, the table `watch --publish` shares with `status`
//! (its format, publisher and reader) and the probe reports it holds.
//! The command itself is `src/main.rs`; this is not a stable API.

pub mod publish;
pub mod report;
