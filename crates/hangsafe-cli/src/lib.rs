//! The library part of the `hangsafe` command: what the fuzz targets
//! (`fuzz/`) and the tests call directly. The parsers of targets and
//! durations, the thresholds of the Nagios mode and the filesystem figures
//! they are compared with, the table of exit statuses (checked against
//! README by the tests), the stderr logger, and the table `watch --publish`
//! shares with `status` (its format, publisher and reader) with the probe
//! reports it holds. The command itself is `src/main.rs`; this is not a
//! stable API.

pub mod config;
pub mod duration;
pub mod exit;
pub mod fsstats;
pub mod logger;
pub mod publish;
pub mod report;
pub mod target;
pub mod threshold;
