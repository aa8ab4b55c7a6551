//! `hangsafe check`: probe every target once, concurrently, on a
//! [`RunnerSet`] driven by a poll loop on its fd, and print a table (or
//! JSON).
//!
//! # Deadlines
//!
//! The command has one overall deadline: start + `--timeout`. Each probe
//! gets `--timeout` from the moment it starts, cut to the overall deadline
//! if it started late (because `--concurrency` probes were already
//! running). Targets still queued when the overall deadline passes are
//! never started and are reported `timeout` ("never started"). So the
//! command returns within about `--timeout`, plus a grace period of at
//! most [`GRACE`] to tell cancelled probes from abandoned ones, however
//! many targets hang.

use crate::duration;
use crate::exit;
use crate::fsstats::FsStats;
use crate::mounts;
use crate::output::nagios::{self, Thresholds};
use crate::output::{self, ColorChoice};
use crate::probe::{self, Answer, Hang, Returned};
use crate::report::{self, Report, State};
use crate::target::Target;
use crate::threshold::{InodeLimit, Limit};
use hangsafe::nexus::{RunnerSet, SetError, Token};
use hangsafe::runner::{Builder, Pool, RunError, SpawnError};
use std::collections::HashMap;
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long after a probe's deadline the command waits, at most, to see
/// whether its cancelled work returned (thread back in the pool) or is
/// stuck (abandoned). Matches the runner pool's default abandon delay.
pub(crate) const GRACE: Duration = Duration::from_millis(250);

/// A probe whose time was cut by less than this (it started a moment
/// after the command) is reported as having had the full `--timeout`.
const CUT_TOLERANCE: Duration = Duration::from_millis(50);

/// One-line description of `check` (`-h`, command list).
const CHECK_ABOUT: &str = "Probe targets once, concurrently, and print a table";

/// Description of `check` (`--help`).
const CHECK_LONG_ABOUT: &str = "\
Probe each TARGET once, concurrently, each with a deadline, and print a
table. With no TARGET, every mount point in /proc/self/mountinfo is
probed (pseudo filesystems such as proc, sysfs, cgroup, tracefs or autofs
are skipped unless --all is given).

Targets (the kind is detected from the argument, or forced by a prefix):
  PATH             auto: a block device gets the block probe, anything
                   else the path probe (decided by stat on the probe's
                   thread, never on the main thread)
  path:PATH        statfs, stat, then by file type: a regular file has
                   its first block read (O_DIRECT where the filesystem
                   allows it: \"directio\"); a directory has its first
                   block of entries read; a FIFO is opened for reading
                   (this blocks while it has no writer); anything else
                   stops at stat
  block:DEV        an O_DIRECT read of sector 0 (logical block size from
                   BLKSSZGET)
  tur:DEV          SCSI TEST UNIT READY through SG_IO, with the SCSI
                   timeout set to --timeout; a non-SCSI device is down
  tcp://HOST:PORT  resolve HOST, then a non-blocking connect to each
                   address in turn until one answers (IPv6 in brackets:
                   tcp://[::1]:22)
  unix:PATH        a connect to a unix stream socket
Any other NAME: before the first '/' (http://..., udp://..., tcp:H:P,
HOST:PORT) is refused as a usage error, not probed as a path: write a
relative path whose first component contains ':' as ./NAME or path:NAME.

Output columns:
  TARGET   the target as given (control characters as \\ooo escapes)
  KIND     path, block, tur, tcp or unix
  STATE    up (answered in time), down (failed: the error is in DETAIL),
           timeout (no answer in time) or error (the probe could not be
           started: a local limit such as the number of threads; nothing
           is known about the target)
  LATENCY  how long the probe took, \"-\" for a timeout or an error
  DETAIL   what was checked for up, the failing step and error for down
           (e.g. \"stat: No such file or directory\"), and for timeout the
           step the probe was in and what became of its thread

Deadlines: each probe gets --timeout from when it starts, at most
--concurrency probes run at once, and the command as a whole ends at
start + --timeout: a probe that started late gets only the time left,
and targets still queued then are reported as timeout (\"never
started\"). The command therefore returns within about --timeout (plus
up to 250ms to tell cancelled probes from abandoned ones), however many
targets hang.

Cancelled or abandoned: open, read, getdents, connect, poll and SG_IO are
cancellable, so a probe blocked in one of them is interrupted at its
deadline and its thread goes back to the pool. statfs, stat and DNS
resolution are plain calls that cannot be interrupted: a probe stuck in
one of them (a hard NFS mount, a FUSE daemon that does not answer) is
abandoned, as is any call in uninterruptible sleep (D state). The kernel
keeps such a thread until its call returns, and the exit of the hangsafe
process waits for it (a note on standard error says so whenever a probe
timed out).";

/// Footer of `check`'s help after the exit status (generated from
/// [`crate::exit`]): environment and examples.
const CHECK_AFTER_EXIT: &str = "\
Environment:
  NO_COLOR      when set and not empty, --color auto does not colour
  HANGSAFE_LOG  level of the library's own messages on stderr: off,
                error, warn (default), info, debug, trace; identical
                consecutive messages are shown once, with a count

Examples:
  hangsafe check                                   all real mount points
  hangsafe check --timeout 500ms /nfs/home /srv/data
  hangsafe check --json tcp://db.example:5432 unix:/run/app.sock
  hangsafe check tur:/dev/sg2 block:/dev/sdb
  hangsafe check --format nagios -w 10% -c 5% --latency-warning 1s /srv /home";

/// Options of `hangsafe check`.
#[derive(Debug, clap::Args)]
#[command(about = CHECK_ABOUT, long_about = CHECK_LONG_ABOUT, after_help = format!("{}\n\nWith --format nagios:\n{}\n\n{CHECK_AFTER_EXIT}", exit::help_section("check"), exit::help_section(exit::NAGIOS).trim_start_matches("Exit status:\n")))]
pub(crate) struct CheckArgs {
    /// How long each probe may take before it counts as timed out
    #[arg(
        short,
        long,
        value_name = "DURATION",
        default_value = "2s",
        value_parser = duration::parse,
        long_help = "How long each probe may take before it counts as timed out, and\n\
                     how long the whole command may take. A number with an optional\n\
                     unit: ms, s, m, h or d (no unit means seconds), e.g. 500ms,\n\
                     2s, 1.5s, 1m; greater than zero and at most 7d."
    )]
    pub timeout: Duration,

    /// Print one JSON array instead of the table
    #[arg(
        long,
        long_help = "Print one JSON array instead of the table: one object per target\n\
                     with the keys target, kind, state (\"up\", \"down\", \"timeout\" or\n\
                     \"error\"), latency_ms (a number, or null for a timeout or an\n\
                     error) and detail."
    )]
    pub json: bool,

    /// Output format: table, json or nagios
    #[arg(
        long,
        value_name = "FORMAT",
        value_enum,
        conflicts_with = "json",
        long_help = "Output format: table (the default), json (as --json) or nagios: a\n\
                     Nagios/Icinga plugin's status line with performance data, one\n\
                     line per target after it, and the plugin exit statuses 0 OK,\n\
                     1 WARNING, 2 CRITICAL, 3 UNKNOWN (see \"With --format nagios\"\n\
                     below). Down and timed-out targets are CRITICAL; the threshold\n\
                     options set WARNING and CRITICAL for slow or full ones."
    )]
    pub format: Option<Format>,

    /// nagios: WARNING when free space is at most this (N% or a size)
    #[arg(
        short,
        long,
        value_name = "THRESHOLD",
        value_parser = Limit::parse,
        long_help = "With --format nagios: WARNING when a filesystem's free space is at\n\
                     most THRESHOLD, with check_disk's meaning: N% compares with the\n\
                     free share of used + available space (root-reserved blocks\n\
                     excluded, used share rounded up to a whole percent, as df and\n\
                     check_disk do); a size (500, 2G, 1.5TiB; units B, K, M, G, T, P,\n\
                     also kB/KiB..., all binary; no unit means MiB) compares with the\n\
                     available space in that unit, rounded down. Repeatable (either\n\
                     one crossed warns). A leading @ is ignored; ranges are refused.\n\
                     Applies to targets whose probe ran statfs (paths)."
    )]
    pub warning: Vec<Limit>,

    /// nagios: CRITICAL when free space is at most this (N% or a size)
    #[arg(
        short,
        long,
        value_name = "THRESHOLD",
        value_parser = Limit::parse,
        long_help = "With --format nagios: CRITICAL when a filesystem's free space is at\n\
                     most THRESHOLD (as --warning)."
    )]
    pub critical: Vec<Limit>,

    /// nagios: WARNING when free inodes are at most this percentage
    #[arg(short = 'W', long, value_name = "PERCENT", value_parser = InodeLimit::parse)]
    pub iwarning: Option<InodeLimit>,

    /// nagios: CRITICAL when free inodes are at most this percentage
    #[arg(short = 'K', long, value_name = "PERCENT", value_parser = InodeLimit::parse)]
    pub icritical: Option<InodeLimit>,

    /// nagios: WARNING when a probe that answered took longer than this
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub latency_warning: Option<Duration>,

    /// nagios: CRITICAL when a probe that answered took longer than this
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub latency_critical: Option<Duration>,

    /// How many probes may run at once
    #[arg(
        short = 'j',
        long,
        value_name = "N",
        default_value_t = 32,
        value_parser = clap::value_parser!(u32).range(1..=4096)
    )]
    pub concurrency: u32,

    /// With no TARGET, include pseudo filesystems (proc, sysfs, cgroup, ...)
    #[arg(short, long)]
    pub all: bool,

    /// When to colour the STATE column
    #[arg(
        long,
        value_name = "WHEN",
        value_enum,
        default_value_t = ColorChoice::Auto,
        long_help = "When to colour the STATE column: auto (when standard output is a\n\
                     terminal and NO_COLOR is unset or empty), always or never."
    )]
    pub color: ColorChoice,

    /// What to probe [default: every mount point in /proc/self/mountinfo]
    #[arg(value_name = "TARGET", value_parser = Target::parse)]
    pub targets: Vec<Target>,
}

/// The output formats of `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// The table.
    Table,
    /// The JSON array of --json.
    Json,
    /// A Nagios/Icinga plugin's status line, perfdata and exit status.
    Nagios,
}

impl CheckArgs {
    /// The format asked for (`--json` is `--format json`).
    fn format(&self) -> Format {
        match (self.json, self.format) {
            (true, _) => Format::Json,
            (false, f) => f.unwrap_or(Format::Table),
        }
    }

    /// The thresholds, if any was given.
    fn thresholds(&self) -> Option<Thresholds> {
        let t = Thresholds {
            warning: self.warning.clone(),
            critical: self.critical.clone(),
            iwarning: self.iwarning,
            icritical: self.icritical,
            latency_warning: self.latency_warning,
            latency_critical: self.latency_critical,
        };
        (t != Thresholds::default()).then_some(t)
    }
}

/// `hangsafe check`: probe, print, and map the results to the exit status.
pub(crate) fn run(args: CheckArgs) -> ExitCode {
    match args.format() {
        Format::Nagios => run_nagios(args),
        _ if args.thresholds().is_some() => {
            eprintln!(
                "hangsafe check: --warning, --critical, --iwarning, --icritical and \
                 --latency-* need --format nagios"
            );
            ExitCode::from(exit::USAGE.code)
        }
        _ => run_report(args),
    }
}

/// The table or JSON, and the exit status of [`crate::exit`].
fn run_report(args: CheckArgs) -> ExitCode {
    let start = Instant::now();
    let deadline = duration::after(start, args.timeout);
    let targets = if args.targets.is_empty() {
        match mounts::default_targets(deadline, args.all) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("hangsafe: {e}");
                return ExitCode::from(match e {
                    mounts::MountsError::TimedOut(_) => exit::TIMEOUT.code,
                    _ => exit::NO_MOUNTINFO.code,
                });
            }
        }
    } else {
        args.targets
    };
    let checked = match run_probes(&targets, args.timeout, deadline, args.concurrency as usize) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hangsafe: cannot run the probes: {e}");
            return ExitCode::from(exit::OSERR.code);
        }
    };
    print(&checked, args.json, args.color, args.timeout);
    ExitCode::from(report::exit_code(&checked.reports))
}

/// `--format nagios`: the same probes, the plugin output on stdout only
/// (Nagios ignores stderr), and the plugin exit status.
fn run_nagios(args: CheckArgs) -> ExitCode {
    let thresholds = args.thresholds().unwrap_or_default();
    let start = Instant::now();
    let deadline = duration::after(start, args.timeout);
    let fail = |status: nagios::Status, message: String| {
        output::print_stdout(&nagios::failure(status, &message));
        ExitCode::from(status.code())
    };
    let targets = if args.targets.is_empty() {
        match mounts::default_targets(deadline, args.all) {
            Ok(t) => t,
            Err(e @ mounts::MountsError::TimedOut(_)) => {
                return fail(nagios::Status::Critical, e.to_string())
            }
            Err(e) => return fail(nagios::Status::Unknown, e.to_string()),
        }
    } else {
        args.targets
    };
    let checked = match run_probes(&targets, args.timeout, deadline, args.concurrency as usize) {
        Ok(r) => r,
        Err(e) => {
            return fail(
                nagios::Status::Unknown,
                format!("cannot run the probes: {e}"),
            )
        }
    };
    let rows: Vec<nagios::Row<'_>> = checked
        .reports
        .iter()
        .zip(&checked.fs)
        .zip(&checked.phases)
        .map(|((report, fs), phase)| nagios::Row {
            report,
            fs: *fs,
            phase: phase.as_ref(),
        })
        .collect();
    let (text, status) = nagios::render(&rows, &thresholds, args.timeout);
    output::print_stdout(&text);
    ExitCode::from(status.code())
}

/// Prints the reports (a table, or JSON with `json`) on stdout, and the
/// notes on timeouts and local limits on stderr.
fn print(checked: &Checked, json: bool, color: ColorChoice, timeout: Duration) {
    if json {
        output::print_stdout(&output::render_json(&checked.reports));
    } else {
        output::print_stdout(&output::render_table(
            &checked.reports,
            output::use_color(color),
        ));
    }
    if let Some(note) = checked.note(timeout) {
        eprintln!("{note}");
    }
    if let Some((n, why)) = &checked.throttled {
        eprintln!(
            "note: a local limit allowed only {n} {} at once ({why})",
            if *n == 1 { "probe" } else { "probes" }
        );
    }
}

/// The result of [`run_probes`]: one report per target, in order, and
/// counts for the stderr note.
pub(crate) struct Checked {
    /// One report per target, in the targets' order.
    pub reports: Vec<Report>,
    /// Probes that timed out and whose work was still stuck after the
    /// grace period.
    pub abandoned: usize,
    /// Targets never started because the command's deadline passed first.
    pub never_started: usize,
    /// A local limit (thread creation, pool size) lowered the concurrency:
    /// to how many probes at once, and the first error.
    pub throttled: Option<(usize, String)>,
    /// Per target: what its probe's `statfs` found, if it answered.
    pub fs: Vec<Option<FsStats>>,
    /// Per target: the phase a timed-out probe was in, and for how long.
    pub phases: Vec<Option<(String, Duration)>>,
}

impl Checked {
    /// The note printed on stderr when something timed out.
    fn note(&self, timeout: Duration) -> Option<String> {
        let timed_out = self
            .reports
            .iter()
            .filter(|r| r.state == State::Timeout)
            .count();
        if timed_out == 0 {
            return None;
        }
        let plural =
            |n: usize, one: &'static str, many: &'static str| if n == 1 { one } else { many };
        let mut note = format!(
            "note: {timed_out} {} did not answer within {}",
            plural(timed_out, "probe", "probes"),
            duration::format(timeout)
        );
        if self.never_started > 0 {
            note.push_str(&format!(" ({} never started)", self.never_started));
        }
        note.push_str(
            ". A cancelled probe's thread goes back to the pool; an abandoned one is \
             stuck in the kernel",
        );
        if self.abandoned > 0 {
            note.push_str(&format!(" ({} here)", self.abandoned));
        }
        note.push_str(
            ". A thread in uninterruptible sleep (D state) stays in the kernel \
             until its call returns, and the exit of this process waits for it.",
        );
        Some(note)
    }
}

/// A probe in flight.
struct Flight {
    /// Index of its target.
    idx: usize,
    /// Its phase, and whether its work returned.
    returned: Returned,
    /// The time it was given.
    allowed: Duration,
}

/// The state of [`run_probes`]: the set and pool the probes run on, and
/// what is known so far.
struct Run<'t> {
    targets: &'t [Target],
    timeout: Duration,
    deadline: Instant,
    set: RunnerSet<Answer>,
    /// A pool of the command's own, so that its metrics say whether one of
    /// its threads is about to become idle (see [`spawn_probe`]).
    pool: Pool,
    concurrency: usize,
    /// The first local limit that lowered `concurrency`.
    throttled: Option<String>,
    reports: Vec<Option<Report>>,
    fs: Vec<Option<FsStats>>,
    phases: Vec<Option<(String, Duration)>>,
    flights: HashMap<Token, Flight>,
    /// Probes that timed out, and when.
    hung: Vec<(Flight, Instant)>,
    /// The index of the next target to start.
    next: usize,
}

/// Probes `targets` on a [`RunnerSet`], at most `concurrency` at a time,
/// each for `timeout` but not past `deadline`; see the module doc for the
/// policy. Fails only if the set cannot be created.
pub(crate) fn run_probes(
    targets: &[Target],
    timeout: Duration,
    deadline: Instant,
    concurrency: usize,
) -> std::io::Result<Checked> {
    let mut run = Run {
        targets,
        timeout,
        deadline,
        set: RunnerSet::new()?,
        pool: Pool::builder().name("hangsafe-check").build(),
        concurrency: concurrency.max(1),
        throttled: None,
        reports: vec![None; targets.len()],
        fs: vec![None; targets.len()],
        phases: vec![None; targets.len()],
        flights: HashMap::new(),
        hung: Vec::new(),
        next: 0,
    };
    loop {
        run.start_probes();
        if run.flights.is_empty() {
            break;
        }
        run.wait();
        run.collect();
    }
    let abandoned = run.report_hung();
    let never_started = run.report_never_started();
    Ok(Checked {
        reports: run
            .reports
            .into_iter()
            .map(|r| r.expect("every target reported"))
            .collect(),
        abandoned,
        never_started,
        throttled: run.throttled.map(|why| (run.concurrency, why)),
        fs: run.fs,
        phases: run.phases,
    })
}

impl Run<'_> {
    /// Starts probes until `concurrency` are in flight, every target is
    /// started, or the deadline has passed.
    fn start_probes(&mut self) {
        let now = Instant::now();
        while self.flights.len() < self.concurrency
            && self.next < self.targets.len()
            && now < self.deadline
        {
            let target = &self.targets[self.next];
            let probe_deadline = duration::after(now, self.timeout).min(self.deadline);
            let spawned = spawn_probe(
                &self.set,
                &self.pool,
                target,
                self.timeout,
                probe_deadline,
                self.flights.len(),
            );
            match spawned {
                Ok((token, returned)) => {
                    let flight = Flight {
                        idx: self.next,
                        returned,
                        allowed: probe_deadline - now,
                    };
                    self.flights.insert(token, flight);
                }
                Err(e) if !self.flights.is_empty() && is_local_limit(&e) => {
                    // A local limit (no thread could be created, the pool
                    // is full): run fewer probes at once, and start this
                    // target when a running probe is over.
                    self.concurrency = self.flights.len();
                    self.throttled.get_or_insert(e.to_string());
                    break;
                }
                Err(e) => self.reports[self.next] = Some(not_started(target, &e)),
            }
            self.next += 1;
        }
    }

    /// Sleeps until a probe is decided or the next deadline is due.
    fn wait(&self) {
        let now = Instant::now();
        let wake = self
            .set
            .poll_timeout()
            .map_or(self.deadline, |d| duration::after(now, d))
            .min(duration::after(self.deadline, GRACE));
        let wait = wake.saturating_duration_since(now);
        // Round up, so that a deadline is due when poll returns.
        let ms = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let mut pfd = libc::pollfd {
            fd: self.set.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd that outlives the call. An
        // error (EINTR) just means another turn of the loop.
        unsafe { libc::poll(&mut pfd, 1, ms) };
    }

    /// Drains the set: a decided probe gets its report, a timed-out one
    /// joins `hung`.
    fn collect(&mut self) {
        let drained = match self.set.drain() {
            Ok(d) => d,
            Err(e) => {
                log::error!("cannot drain the runner set: {e}");
                return;
            }
        };
        for (token, outcome) in drained {
            let Some(flight) = self.flights.remove(&token) else {
                continue;
            };
            let target = &self.targets[flight.idx];
            match outcome {
                Err(RunError::TimedOut) => self.hung.push((flight, Instant::now())),
                other => {
                    if let Ok(answer) = &other {
                        self.fs[flight.idx] = answer.fs;
                    }
                    self.reports[flight.idx] = Some(probe::report(target, other, self.timeout))
                }
            }
        }
        // A safety net: the set applies deadlines itself when drained, so
        // this only fires if an outcome never arrives.
        if Instant::now() >= duration::after(self.deadline, GRACE) {
            let late: Vec<Token> = self.flights.keys().copied().collect();
            for token in late {
                self.set.release(token);
                if let Some(f) = self.flights.remove(&token) {
                    self.hung.push((f, Instant::now()));
                }
            }
        }
    }

    /// Gives timed-out probes a moment to show whether their cancelled
    /// work returned, then reports them; returns how many are abandoned.
    fn report_hung(&mut self) -> usize {
        if let Some(last) = self.hung.iter().map(|(_, at)| *at).max() {
            let until = duration::after(last, GRACE);
            while self.hung.iter().any(|(f, _)| !f.returned.get()) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let mut abandoned = 0;
        for (f, decided) in &self.hung {
            let returned = f.returned.get();
            abandoned += usize::from(!returned);
            let hang = Hang {
                phase: f
                    .returned
                    .phase()
                    .map(|(p, entered)| (p.to_owned(), decided.saturating_duration_since(entered))),
                returned: Some(returned),
                allowed: (f.allowed + CUT_TOLERANCE < self.timeout)
                    .then(|| Duration::from_millis(f.allowed.as_millis() as u64)),
            };
            let target = &self.targets[f.idx];
            self.reports[f.idx] = Some(probe::timeout_report(target, self.timeout, &hang));
            self.phases[f.idx] = hang.phase;
        }
        abandoned
    }

    /// Reports the targets never started as timed out; returns how many.
    fn report_never_started(&mut self) -> usize {
        let running = self.concurrency.min(self.targets.len());
        let limit = match self.throttled {
            Some(_) => format!("a local limit allowed {}", self.concurrency),
            None => format!("--concurrency {}", self.concurrency),
        };
        for (idx, target) in self.targets.iter().enumerate().skip(self.next) {
            self.reports[idx] = Some(Report {
                target: target.spec.clone(),
                kind: target.kind.name(),
                state: State::Timeout,
                latency: None,
                detail: format!(
                    "never started: the command's {} deadline passed while {running} {} \
                     running ({limit})",
                    duration::format(self.timeout),
                    if running == 1 {
                        "probe was"
                    } else {
                        "probes were"
                    },
                ),
            });
        }
        self.targets.len() - self.next
    }
}

/// The `error` report of a target whose probe could not be started.
fn not_started(target: &Target, e: &SetError) -> Report {
    Report {
        target: target.spec.clone(),
        kind: target.kind.name(),
        state: State::Error,
        latency: None,
        detail: format!("probe not started: {e}"),
    }
}

/// Whether a spawn failed for a local, passing reason (no thread could be
/// created, the pool is full), as opposed to a set that is unusable.
fn is_local_limit(e: &SetError) -> bool {
    matches!(
        e,
        SetError::Spawn(SpawnError::ThreadCreate(_) | SpawnError::PoolFull { .. })
    )
}

/// How long, at most, a spawn refused for lack of a thread is retried
/// while one of the pool's threads is finishing its job (it is about to
/// become idle and take the next one). Generous: on a loaded machine the
/// finishing thread may wait for a CPU.
const IDLE_SOON: Duration = Duration::from_secs(1);

/// Spawns the probe of `target` into `set` on `pool`, where `in_flight`
/// probes are running. A spawn refused by a local limit is retried (for
/// up to [`IDLE_SOON`], never past `deadline`) while the pool has a live
/// thread that is neither running one of those probes nor abandoned: a
/// probe that just answered, or was just cancelled, frees its thread a
/// moment after its outcome arrives.
fn spawn_probe(
    set: &RunnerSet<Answer>,
    pool: &Pool,
    target: &Target,
    timeout: Duration,
    deadline: Instant,
    in_flight: usize,
) -> Result<(Token, Returned), SetError> {
    let give_up = duration::after(Instant::now(), IDLE_SOON).min(deadline);
    loop {
        let (work, returned) = probe::work(target.clone(), timeout);
        match set.spawn(Builder::new().pool(pool).deadline(deadline), work) {
            Ok(token) => return Ok((token, returned)),
            Err(e) if is_local_limit(&e) && Instant::now() < give_up => {
                let m = pool.metrics();
                let busy = m.threads_abandoned.saturating_add(in_flight as u64);
                if m.threads_alive <= busy {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    #[test]
    fn reports_keep_the_targets_order() {
        let dir = std::env::temp_dir();
        let targets = vec![
            Target::parse("/nonexistent/hangsafe/x").unwrap(),
            Target::from_path(dir.clone()),
        ];
        let c = run_probes(&targets, Duration::from_secs(30), far(), 1).unwrap();
        assert_eq!(c.reports.len(), 2);
        assert_eq!(c.reports[0].state, State::Down);
        assert_eq!(c.reports[1].state, State::Up);
        assert_eq!(c.reports[1].target, dir.to_string_lossy());
        assert_eq!(c.never_started, 0);
        assert_eq!(report::exit_code(&c.reports), 1);
    }

    #[test]
    fn a_hung_fifo_times_out_and_the_queue_never_starts() {
        let dir = std::env::temp_dir().join(format!("hangsafe-check-unit-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let fifo = dir.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let targets = vec![Target::from_path(fifo.clone()); 3];
        let timeout = Duration::from_millis(300);
        let start = Instant::now();
        let c = run_probes(&targets, timeout, start + timeout, 1).unwrap();
        assert!(start.elapsed() < timeout + Duration::from_secs(5));
        assert!(c.reports.iter().all(|r| r.state == State::Timeout));
        assert!(
            c.reports[0].detail.contains("in open"),
            "{}",
            c.reports[0].detail
        );
        assert!(
            c.reports[1].detail.starts_with("never started"),
            "{}",
            c.reports[1].detail
        );
        assert_eq!(c.never_started, 2);
        let note = c.note(timeout).unwrap();
        assert!(
            note.contains("D state") && note.contains("2 never started"),
            "{note}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
