//! `hangsafe`: a health checker for mounts and paths that never hangs
//! itself.
//!
//! Every probe runs on a detached hangsafe runner with a deadline; a probe
//! that does not answer in time is reported as `timeout` and released, so
//! the command returns on time even when a filesystem is hung.
//!
//! This file holds the command line (clap) and the dispatch; the work is in
//! [`check`] (probing), [`mounts`] (the mount table), [`duration`] (option
//! values) and [`table`] (output).

mod check;
mod duration;
mod mounts;
mod table;

use clap::{Args, ColorChoice, Parser, Subcommand};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit status for command-line usage errors (sysexits' `EX_USAGE`).
const EXIT_USAGE: u8 = 64;

/// Exit status when the mount table cannot be read (sysexits'
/// `EX_NOINPUT`).
const EXIT_NO_MOUNTINFO: u8 = 66;

/// One-line description of the program (`-h`).
const ABOUT: &str = "Check that mounts and paths answer, without ever hanging";

/// Description of the program (`--help`).
const LONG_ABOUT: &str = "\
Check that mounts and paths answer, without ever hanging.

Every probe runs on its own detached thread (a hangsafe runner) with a
deadline. A probe that does not answer in time is reported as \"timeout\"
and released, so hangsafe returns on time even when a filesystem is hung.";

/// Footer of the program's help.
const MAIN_AFTER_HELP: &str = "\
Exit status: see 'hangsafe check --help'; 64 for any usage error.";

/// One-line description of `check` (`-h`, command list).
const CHECK_ABOUT: &str = "Check that paths (by default: all mount points) answer stat(2) in time";

/// Description of `check` (`--help`).
const CHECK_LONG_ABOUT: &str = "\
Check that paths answer stat(2) within a timeout.

Each PATH is probed with stat(2) in its own runner; all probes start at
once, so the command returns within about the timeout even if some stat
never returns. Symbolic links are followed; an automount point at the end
of a path is not triggered. With no PATH, every mount point listed in
/proc/self/mountinfo is checked, each once.

Output is a table with one row per path:
  PATH     the path (control characters shown as \\ooo octal escapes)
  STATE    up (stat succeeded), down (stat failed, or the probe could not
           run) or timeout (no answer within the timeout)
  LATENCY  how long the stat took, or \"-\" for a timeout
  DETAIL   the error for down, \"no answer within <TIMEOUT>\" for timeout,
           empty for up

A probe that times out is released, not killed: a stat stuck in
uninterruptible sleep (D state) keeps its thread in the kernel, and the
exit of the hangsafe process may wait until that stat returns. A note on
standard error says so whenever a probe timed out.";

/// Footer of `check`'s help: exit status and examples.
const CHECK_AFTER_HELP: &str = "\
Exit status:
  0   every path is up
  1   at least one path is down, none timed out
  2   at least one path timed out (or /proc/self/mountinfo did not answer)
  64  usage error (unknown option, bad --timeout value, ...)
  66  /proc/self/mountinfo could not be read

Examples:
  hangsafe check                          all mount points, 2s each
  hangsafe check --timeout 500ms /nfs/home /srv/data";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "hangsafe",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = MAIN_AFTER_HELP,
    color = ColorChoice::Never,
    arg_required_else_help = true,
)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Check paths or mount points once and print a table.
    #[command(
        about = CHECK_ABOUT,
        long_about = CHECK_LONG_ABOUT,
        after_help = CHECK_AFTER_HELP,
    )]
    Check(CheckArgs),
}

/// Options of `hangsafe check`.
#[derive(Debug, Args)]
struct CheckArgs {
    /// How long each probe may take before it counts as timed out
    #[arg(
        short,
        long,
        value_name = "DURATION",
        default_value = "2s",
        value_parser = duration::parse,
        long_help = "How long each probe may take before it counts as timed out.\n\
                     A number with an optional unit: ms, s, m or h (no unit\n\
                     means seconds), e.g. 500ms, 2s, 1.5s, 1m; greater than zero."
    )]
    timeout: Duration,

    /// Paths to check [default: every mount point in /proc/self/mountinfo]
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
}

/// Parses the command line and runs the subcommand; usage errors exit
/// with [`EXIT_USAGE`].
fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
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
        Command::Check(args) => run_check(args),
    }
}

/// `hangsafe check`: probe, print the table, and map the results to the
/// exit status.
fn run_check(args: CheckArgs) -> ExitCode {
    let targets: Vec<check::Target> = if args.paths.is_empty() {
        match mounts::read_mount_points(args.timeout) {
            Ok(points) => points.into_iter().map(check::Target::Path).collect(),
            Err(e) => {
                eprintln!("hangsafe: {e}");
                return ExitCode::from(match e {
                    mounts::MountsError::TimedOut(_) => check::EXIT_TIMEOUT,
                    _ => EXIT_NO_MOUNTINFO,
                });
            }
        }
    } else {
        args.paths.into_iter().map(check::Target::Path).collect()
    };

    let reports = check::run_all(targets, args.timeout);
    print_stdout(&table::render_reports(&reports));

    let timed_out = reports
        .iter()
        .filter(|r| r.status == check::Status::Timeout)
        .count();
    if timed_out > 0 {
        let probes = if timed_out == 1 { "probe" } else { "probes" };
        eprintln!(
            "note: {timed_out} {probes} did not answer within {} and {} released. \
             A probe stuck in uninterruptible sleep (D state) keeps a thread in the \
             kernel, and process exit may wait for it.",
            duration::format(args.timeout),
            if timed_out == 1 { "was" } else { "were" },
        );
    }
    ExitCode::from(check::exit_code(&reports))
}

/// Writes `text` to stdout. A closed pipe (`hangsafe check | head -1`) is
/// not an error worth reporting; anything else is reported on stderr.
fn print_stdout(text: &str) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("hangsafe: cannot write output: {e}");
        }
    }
}
