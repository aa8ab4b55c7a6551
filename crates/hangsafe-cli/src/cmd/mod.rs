//! The subcommands, one module each: `check`, `watch`, `serve`, `status` and `man`
//! (`bench` is `src/bench.rs`). Each module holds its clap `Args` (with
//! its help text) and its `run`, which returns the exit status.

pub(crate) mod check;
pub(crate) mod man;
pub(crate) mod serve;
pub(crate) mod status;
pub(crate) mod watch;
