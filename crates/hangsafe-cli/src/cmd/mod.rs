//! The subcommands, one module each: `check`, `watch`, `status` and `man`
//! (`bench` is `src/bench.rs`). Each module holds its clap `Args` (with
//! its help text) and its `run`, which returns the exit status.

pub mod check;
pub mod man;
pub mod status;
pub mod watch;
