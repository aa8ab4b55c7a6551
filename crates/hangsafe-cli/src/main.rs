//! `hangsafe`: a health checker for mounts, paths, block devices and
//! endpoints that never hangs itself.
//!
//! Every probe runs on a detached hangsafe runner with a deadline; a probe
//! that does not answer in time is reported as `timeout` and released (its
//! thread comes back when its cancellable syscall is interrupted, or is
//! abandoned if it is stuck in the kernel), so the command returns on time
//! even when a filesystem, a disk or a peer is hung.
//!
//! This file holds the command line (clap) and the dispatch. The layout:
//! the subcommands in `cmd/` (one module each; `bench` in `bench.rs`),
//! the probes by kind in `probe/`, the rendering of reports in `output/`,
//! the mount table in `mounts.rs`; the parsers, the exit table, the logger
//! and the published table are the library part (`lib.rs`).

mod bench;
mod cmd;
mod exposition;
mod mounts;
mod output;
mod probe;
mod serve;
mod snapshot;
mod textfile;
mod watchlist;

use cmd::{check, man, serve as serve_cmd, status, watch};

// The library part: parsers (fuzzed), the exit table, the logger and the
// published table.
use hangsafe_cli::{config, duration, exit, fsstats, logger, publish, report, target, threshold};

use clap::{ColorChoice, Parser, Subcommand};
use std::process::ExitCode;

/// Exit status for command-line usage errors (sysexits' `EX_USAGE`).
pub const EXIT_USAGE: u8 = exit::USAGE.code;

/// One-line description of the program (`-h`).
const ABOUT: &str = "Check mounts, paths, devices and endpoints without ever hanging";

/// Description of the program (`--help`).
const LONG_ABOUT: &str = "\
Check mounts, paths, block devices and TCP/unix endpoints without ever
hanging.

Every probe runs on its own detached thread (a hangsafe runner) with a
deadline. A probe that does not answer in time is reported as \"timeout\"
and cancelled (or abandoned, if it is stuck in the kernel), so hangsafe
returns on time even when a filesystem, a disk or a peer is hung.";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "hangsafe",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = exit::main_help_section(),
    color = ColorChoice::Never,
    arg_required_else_help = true,
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    // No doc comments on these variants: they would replace each
    // subcommand's own help (its `about`/`long_about` are set on its Args
    // struct, in its module).
    Check(check::CheckArgs),
    // Probe targets periodically and report state transitions.
    Watch(watch::WatchArgs),
    // Export the watch loop's results to Prometheus over HTTP.
    Serve(serve_cmd::ServeArgs),
    // Show the table a `watch --publish NAME` publishes.
    Status(status::StatusArgs),
    // Measure hangsafe's mechanisms on this machine (under a minute).
    Bench(bench::BenchArgs),
    // Write the man pages.
    Man(man::ManArgs),
}

/// Installs the logger, runs the command, and writes what the logger
/// still holds.
fn main() -> ExitCode {
    logger::install();
    let code = run();
    // Writes the count of any repeated log message not written yet.
    log::logger().flush();
    code
}

/// Parses the command line and runs the subcommand; usage errors exit
/// with [`EXIT_USAGE`] (3, UNKNOWN, with `check --format nagios`).
fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if output::nagios::requested(std::env::args_os()) => {
            // A plugin knows four exit statuses and Nagios reads only
            // stdout: the guidelines' UNKNOWN, with the reason on the
            // status line (help and version too, as they ask).
            return output::nagios::usage_error(&e);
        }
        Err(e) => {
            // Help and version go to stdout and succeed; every other
            // parse error is a usage error (clap would exit with 2, which
            // `check` uses for timeouts).
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Watch(args) => watch::run(args),
        Command::Serve(args) => serve_cmd::run(args),
        Command::Status(args) => status::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Man(args) => man::run(args),
    }
}
