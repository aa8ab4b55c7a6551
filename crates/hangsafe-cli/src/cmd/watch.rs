//! `hangsafe watch`: probe targets periodically, multipathd-checker style,
//! and report state transitions.
//!
//! # The loop
//!
//! One thread, one `poll(2)`: on the [`RunnerSet`]'s fd (readable when a
//! probe is decided) and on a `signalfd` for SIGINT and SIGTERM (blocked
//! before any thread exists, so no thread of the process ever runs a
//! handler for them). The poll timeout is the earliest of the next round,
//! the set's next deadline (`poll_timeout`) and, on a terminal, the next
//! redraw of the live table.
//!
//! Each round, every target gets a new probe unless its previous one is
//! not over:
//!
//! * still in the set (within its deadline, possible when `--timeout`
//!   exceeds `--interval`): skipped, "still running";
//! * timed out and its work has not returned (a hung probe): the spawn is
//!   attempted with the target as the runner's key, and the pool's per-key
//!   rule refuses it (`KeyBusy`): skipped, "still hung". The pool is the
//!   authority; the watch never starts a second probe for a hung target.
//!
//! Probes run on a pool of their own, so the summary's abandoned-thread
//! counts are the watch's.
//!
//! # Users of the loop
//!
//! `serve` runs this same loop ([`Watch`]) with [`Hooks`]: after every turn
//! they get a [`Snapshot`] of the state (the exporter renders its pages
//! from it; `--textfile` writes the exposition), they answer SIGHUP with
//! new targets ([`Watch`] keeps the state and hung probes of the targets
//! that stay), and they may cap the loop's sleep (systemd's watchdog).
//! Each target carries its own settings ([`Watched`]: timeout, interval,
//! labels, mount), from the command line or a config file.
//!
//! # The live view
//!
//! A probe in flight is examined (`RunnerSet::examiner`) on every redraw
//! and just before every drain, for its phase and time in phase. Once a
//! probe has timed out, the set has yielded it and its runner handle is
//! gone, so it can no longer be examined (hangsafe answers `Gone` for a
//! released runner even while its work still runs): the view then shows
//! the phase it was last seen in, with the time since it entered it,
//! marked "(last seen)".

use crate::duration;
use crate::exit;
use crate::exposition;
use crate::fsstats::FsStats;
use crate::mounts::Mount;
use crate::publish::{PublishError, Publisher};
use crate::report::{self, Report, State};
use crate::snapshot::{ProbeRow as HungRow, Row, Snapshot};
use crate::target::Target;
use crate::textfile::Textfile;
use crate::watchlist;
use hangsafe::examine::{self, Examiner, Progress};
use hangsafe::nexus::{RunnerSet, SetError, Token};
use hangsafe::runner::{Builder, Pool, RunError, SpawnError};
use serde_json::json;
use std::collections::BTreeMap;
use std::collections::{HashMap, HashSet};
use std::io::{self, IsTerminal as _, Write as _};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::output::{self, ColorChoice};
use crate::probe::{self, Hang, Returned};

/// How often the live table is redrawn.
const REFRESH: Duration = Duration::from_secs(1);

const WATCH_ABOUT: &str = "Probe targets periodically and report state transitions";

const WATCH_LONG_ABOUT: &str = "\
Probe targets periodically (every --interval) and report state
transitions, like multipathd's path checker loop.

Every probe runs on its own runner with a deadline (--timeout, which may
exceed the interval). A target whose previous probe is not over gets no
new probe: a probe still within its deadline is \"still running\"; a probe
that timed out and is stuck (e.g. in the kernel) keeps its target's key
in the runner pool, so the next probe is refused (\"still hung\") until the
stuck one returns. There is never more than one probe per target.

Output: one line per state transition (the first result of each target
counts as one):
  TIME  TARGET  KIND  OLD -> NEW  LATENCY  DETAIL
plus a note when a hung probe blocks a round and when it finally returns.
On a terminal (and without --json), a live table below the transitions
shows each target's state and, for probes in flight, their phase and time
in it (hung probes: the phase they were last seen in), with a summary line
(up, down, timed out, probes in flight, abandoned threads), redrawn every
second.

SIGINT (Ctrl-C) or SIGTERM stops the watch at once (within one interval
at worst): probes in flight are released, and a final summary (the last
table and counts) is printed. A probe stuck in uninterruptible sleep (D
state) keeps its thread in the kernel, and the process exit may wait for it.

--config FILE reads targets (each with its own timeout, interval and
labels) and mount exclusions from a TOML file; see `hangsafe serve
--help` for its format. --textfile PATH also writes the Prometheus
exposition of `hangsafe serve` to PATH each round, atomically, for
node_exporter's textfile collector.

--publish NAME also publishes the table into shared memory
(/dev/shm/hangsafe-NAME, guarded by hangsafe's robust mutex) for
`hangsafe status NAME`; see its help. One publisher per NAME.

Targets: paths (mount points, files, directories, FIFOs, devices),
block:PATH, tur:PATH, tcp://HOST:PORT, unix:PATH; see `hangsafe check
--help`. With no target, every mount point in /proc/self/mountinfo, as
for check (pseudo filesystems such as proc, sysfs or cgroup only with
--all).

When the watch stops, its final table lists every target: one whose first
probe has not answered yet is \"pending\", and one whose probe could not
be started (a local limit such as the number of threads) is \"error\";
either makes the exit status 3 unless something is down or timed out.";

/// Footer of `watch`'s help before the exit status: the JSON events.
const WATCH_EVENTS: &str = "\
JSON events: with --json, one object per line, each with \"event\" and
\"elapsed_ms\" (since the watch started):
  start           targets, interval_ms, timeout_ms, publish (name or null)
  round           round (1, 2, ...)
  probe_started   round, target, kind, probe (a number unique in this watch)
  probe_skipped   round, target, kind, probe (the one still outstanding),
                  reason: \"still running\" (within its deadline) or
                  \"still hung\" (timed out, its work has not returned: the
                  pool refused a second probe for the target), or
                  \"cannot start\" with detail (pool full, ...)
  probe_finished  target, kind, probe, state, latency_ms, detail, and for a
                  timeout last_phase (where it was last seen) and
                  work_returned (false: the probe is hung and still holds
                  its target)
  probe_returned  target, kind, probe, after_ms: a timed-out probe's work
                  has returned (its target may be probed again)
  transition      target, kind, from (null for the first result), to,
                  latency_ms, detail
  publish_error   detail
  summary         reason (\"signal\" or \"count\"), signal, rounds, up, down,
                  timeout, error, pending, in_flight, hung,
                  abandoned_threads, abandoned_total, exit_code, rows (as in
                  check --json, one per target: a target with no result yet
                  has state \"pending\")
A target has at most one outstanding probe: between two probe_started
events of a target there is a probe_finished with state up or down, or a
probe_returned.";

/// Footer of `watch`'s help after the exit status: examples.
const WATCH_EXAMPLES: &str = "\
Examples:
  hangsafe watch --interval 10s /mnt/nfs tcp://db:5432
  hangsafe watch --json --count 3 /srv
  hangsafe watch --publish web /mnt/nfs &   hangsafe status web";

/// `text` in the colour of `state` (green, red, yellow) if `color`.
pub(crate) fn paint(state: State, text: &str, color: bool) -> String {
    if !color {
        return text.to_owned();
    }
    format!("\x1b[{}m{text}\x1b[0m", output::state_sgr(state))
}

/// Options of `hangsafe watch`.
#[derive(Debug, clap::Args)]
#[command(about = WATCH_ABOUT, long_about = WATCH_LONG_ABOUT, after_help = format!("{WATCH_EVENTS}\n\n{}", exit::after_help("watch", WATCH_EXAMPLES)))]
pub(crate) struct WatchArgs {
    /// Time between rounds of probes
    #[arg(
        short,
        long,
        value_name = "DURATION",
        default_value = "5s",
        value_parser = duration::parse,
        long_help = "Time between rounds of probes: 500ms, 5s, 1m... (default 5s;\n\
                     at most 7d)."
    )]
    interval: Duration,

    /// How long each probe may take before it counts as timed out
    #[arg(
        short,
        long,
        value_name = "DURATION",
        default_value = "2s",
        value_parser = duration::parse,
        long_help = "How long each probe may take before it counts as timed out\n\
                     (default 2s; at most 7d). It may exceed --interval: a target\n\
                     whose probe is still running is skipped in the rounds meanwhile."
    )]
    timeout: Duration,

    /// Print JSON lines (events) instead of human lines; no live table
    #[arg(long)]
    json: bool,

    /// With no TARGET, include pseudo filesystems (proc, sysfs, cgroup, ...)
    #[arg(short, long)]
    all: bool,

    /// Also publish the table in shared memory as NAME (see `status`)
    #[arg(
        long,
        value_name = "NAME",
        long_help = "Also publish the table in /dev/shm/hangsafe-NAME (and the\n\
                     publisher's liveness in /dev/shm/hangsafe-NAME.alive) for\n\
                     `hangsafe status NAME`. NAME: 1 to 64 letters, digits, '-', '_'.\n\
                     Fails (exit 73) if another live publisher holds NAME; a\n\
                     publisher that died is taken over and its lock recovered.\n\
                     Refuses (exit 77) files of NAME owned by another user or\n\
                     writable by others."
    )]
    publish: Option<String>,

    /// Stop after N rounds (once their probes are decided)
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..),
        long_help = "Stop after N rounds, once every probe started in them is decided\n\
                     (answered or timed out), and print the final summary."
    )]
    count: Option<u64>,

    /// Colour the states: auto (terminal and no NO_COLOR), always, never
    #[arg(long, value_name = "WHEN", value_enum, default_value = "auto")]
    color: ColorChoice,

    /// Also write the Prometheus exposition to PATH each round (textfile collector)
    #[arg(
        long,
        value_name = "PATH",
        long_help = "Also write the metrics `hangsafe serve` exports to PATH, for\n\
                     node_exporter's textfile collector (--collector.textfile.directory;\n\
                     PATH must end in .prom). Written each round, atomically: a\n\
                     temporary file in the same directory, fsync, rename. The\n\
                     directory must exist and must not be writable by other users."
    )]
    textfile: Option<std::path::PathBuf>,

    /// Read targets and settings from a TOML file (see `hangsafe serve --help`)
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,

    /// Targets [default: every mount point in /proc/self/mountinfo, as for check]
    #[arg(value_name = "TARGET")]
    targets: Vec<String>,
}

impl WatchArgs {
    /// The loop settings of `serve`: no terminal output of its own beyond
    /// the transition lines, no count.
    pub(crate) fn for_serve(interval: Duration, timeout: Duration) -> WatchArgs {
        WatchArgs {
            interval,
            timeout,
            json: false,
            all: false,
            publish: None,
            count: None,
            color: ColorChoice::Never,
            textfile: None,
            config: None,
            targets: Vec::new(),
        }
    }
}

// ---- signals -----------------------------------------------------------------

/// SIGINT and SIGTERM (and SIGHUP for `serve`), blocked and read from a
/// signalfd.
pub(crate) struct Signals {
    fd: OwnedFd,
}

impl Signals {
    /// Blocks SIGINT and SIGTERM in the calling thread (every thread
    /// created afterwards inherits the mask) and opens a signalfd for them.
    /// Must run before the process creates any thread. Their dispositions
    /// are reset to the default, so a watch started with them ignored (a
    /// background job of a non-interactive shell) still stops on them.
    fn block() -> io::Result<Signals> {
        Signals::block_these(&[libc::SIGINT, libc::SIGTERM])
    }

    /// [`block`](Self::block) for the signals `sigs` (`serve` adds SIGHUP).
    pub(crate) fn block_these(sigs: &[i32]) -> io::Result<Signals> {
        // SAFETY: `set` is a valid sigset_t, initialised by sigemptyset
        // before any other use; the calls only read or write it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &sig in sigs {
                libc::sigaddset(&mut set, sig);
            }
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            for &sig in sigs {
                libc::signal(sig, libc::SIG_DFL);
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Signals {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    /// The signal received, if any (non-blocking).
    fn take(&self) -> Option<i32> {
        // SAFETY: all-zero is a valid signalfd_siginfo (integers only).
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reads at most `size` bytes into `info`, which is valid
        // and writable for that many bytes.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        (n == size as isize).then_some(info.ssi_signo as i32)
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "signal",
    }
}

// ---- state -----------------------------------------------------------------

/// What the loop keeps per target.
struct Slot {
    target: Target,
    /// The target's own settings (timeout, interval, labels, mount).
    settings: Watched,
    /// When its last probe was started (for a per-target interval).
    last_started: Option<Instant>,
    /// What the last decided probe's statfs found (None: it found
    /// nothing, or no probe is decided yet).
    fs: Option<FsStats>,
    /// The last result (or the skip note on top of it).
    last: Option<Report>,
    /// The probe in the set, if any.
    inflight: Option<InFlight>,
    /// A probe that timed out and whose work has not returned (as far as
    /// the loop knows).
    hung: Option<Hung>,
    /// Whether the human "still hung" note was printed for `hung`.
    noted: bool,
}

impl Slot {
    /// A target's slot before its first probe.
    fn new(w: Watched) -> Slot {
        Slot {
            target: w.target.clone(),
            settings: w,
            last_started: None,
            fs: None,
            last: None,
            inflight: None,
            hung: None,
            noted: false,
        }
    }
}

struct InFlight {
    token: Token,
    id: u64,
    started: Instant,
    examiner: Option<Examiner>,
    seen: Option<Progress>,
    returned: Returned,
}

struct Hung {
    id: u64,
    started: Instant,
    seen: Option<Progress>,
    returned: Returned,
}

/// A target with its own settings: from the command line, the watch's
/// `--timeout` and `--interval`; from a config file, its table.
#[derive(Clone, Debug)]
pub(crate) struct Watched {
    /// What to probe.
    pub target: Target,
    /// Its probes' timeout.
    pub timeout: Duration,
    /// Its own interval (probed no more often than this; the rounds come
    /// every `--interval`), if any.
    pub interval: Option<Duration>,
    /// Extra labels on its exported series.
    pub labels: BTreeMap<String, String>,
    /// The mount it is on (the exporter's device, mountpoint and fstype
    /// labels), for path targets when the mount table was read.
    pub mount: Option<Mount>,
}

impl Watched {
    /// `target` with the loop's defaults.
    pub(crate) fn plain(target: Target, timeout: Duration) -> Watched {
        Watched {
            target,
            timeout,
            interval: None,
            labels: BTreeMap::new(),
            mount: None,
        }
    }
}

/// What a user of the loop (the exporter, the textfile writer) plugs in:
/// it sees the loop's state after every turn, and handles SIGHUP.
pub(crate) trait Hooks {
    /// The loop's state after a turn; `changed` if a result changed or a
    /// round started since the last call.
    fn observe(&mut self, snap: &Snapshot, changed: bool);
    /// SIGHUP: the new targets, or `None` to keep the current ones.
    fn reload(&mut self) -> Option<Vec<Watched>> {
        None
    }
    /// The longest the loop may sleep between turns (a watchdog's bound).
    fn max_wait(&self) -> Option<Duration> {
        None
    }
}

/// Why the loop stopped.
enum Stop {
    Signal(i32),
    Count,
    Output,
}

pub(crate) struct Watch {
    /// The command's name in its messages (`hangsafe watch`, or `hangsafe
    /// serve` running this loop).
    command: &'static str,
    args: WatchArgs,
    hooks: Option<Box<dyn Hooks>>,
    /// A result changed or a round started since the hooks last saw it.
    hooks_dirty: bool,
    slots: Vec<Slot>,
    by_token: HashMap<Token, usize>,
    set: RunnerSet<probe::Answer>,
    pool: Pool,
    signals: Signals,
    publisher: Option<Publisher>,
    publish_warned: bool,
    began: Instant,
    round: u64,
    next_id: u64,
    color: bool,
    live: Option<Live>,
    /// Output failed (closed pipe): stop.
    broken: bool,
    dirty: bool,
}

/// The `probe_finished` event of probe `f`, reported `rep`; a timeout
/// says the last phase seen and whether the work returned.
fn finished_event(rep: &Report, f: &InFlight, work_returned: bool) -> serde_json::Value {
    let mut v = json!({
        "event": "probe_finished",
        "target": rep.target, "kind": rep.kind, "probe": f.id,
        "state": rep.state.as_str(),
        "latency_ms": rep.latency.map(|d| d.as_secs_f64() * 1e3),
        "detail": rep.detail,
    });
    if rep.state == State::Timeout {
        v["last_phase"] = json!(f.seen.as_ref().map(|p| p.phase().to_owned()));
        v["work_returned"] = json!(work_returned);
    }
    v
}

/// The live table's bookkeeping: how many lines are on screen.
struct Live {
    lines: usize,
    next: Instant,
}

/// Runs `hangsafe watch`.
pub(crate) fn run(args: WatchArgs) -> ExitCode {
    // First, before any thread exists (the mount reader below is a runner).
    let signals = match Signals::block() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hangsafe watch: cannot set up signal handling: {e}");
            return ExitCode::from(exit::OSERR.code);
        }
    };
    let targets = match watched_targets(&args) {
        Ok(t) => t,
        Err(code) => return ExitCode::from(code),
    };
    let textfile = match args.textfile.as_deref().map(Textfile::new).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("hangsafe watch: --textfile {e}");
            return ExitCode::from(exit::USAGE.code);
        }
    };
    let set = match RunnerSet::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hangsafe watch: cannot create the runner set: {e}");
            return ExitCode::from(exit::OSERR.code);
        }
    };
    let publisher = match open_publisher(&args) {
        Ok(p) => p,
        Err(code) => return ExitCode::from(code),
    };
    let w = Watch::new(args, targets, set, signals, publisher);
    match textfile {
        Some(t) => w
            .with_hooks(
                Box::new(TextfileHook {
                    file: t,
                    warned: false,
                }),
                true,
            )
            .run(),
        None => w.run(),
    }
}

/// `--textfile`: writes the exposition after every turn that changed
/// something.
struct TextfileHook {
    file: Textfile,
    warned: bool,
}

impl Hooks for TextfileHook {
    fn observe(&mut self, snap: &Snapshot, changed: bool) {
        if !changed {
            return;
        }
        let text = exposition::text(snap, Instant::now(), exposition::Options::default());
        match self.file.write(&text) {
            Ok(()) => self.warned = false,
            Err(e) if !self.warned => {
                self.warned = true;
                log::warn!("hangsafe watch: --textfile: {e}");
            }
            Err(_) => {}
        }
    }
}

/// The targets to watch, one per spec (the spec is the runner key): the
/// arguments, or the mount points when there are none. On an error, says
/// why on stderr and returns the exit status.
fn watched_targets(args: &WatchArgs) -> Result<Vec<Watched>, u8> {
    let config = match &args.config {
        Some(p) => Some(watchlist::load_config(p).map_err(|e| {
            eprintln!("hangsafe watch: --config {e}");
            exit::USAGE.code
        })?),
        None => None,
    };
    let deadline = duration::after(Instant::now(), args.timeout);
    let src = watchlist::Sources {
        cli: &args.targets,
        config: config.as_ref(),
        timeout: args.timeout,
        all: args.all,
    };
    watchlist::build(&src, deadline).map_err(|e| {
        eprintln!("hangsafe watch: {}", e.message);
        e.code
    })
}

/// The publisher of `--publish NAME`, if given, with its notes written to
/// stderr. On an error, says why on stderr and returns the exit status.
fn open_publisher(args: &WatchArgs) -> Result<Option<Publisher>, u8> {
    let Some(name) = &args.publish else {
        return Ok(None);
    };
    match Publisher::open(name, args.interval, args.timeout) {
        Ok(p) => {
            for note in &p.notes {
                eprintln!("hangsafe watch: {note}");
            }
            Ok(Some(p))
        }
        Err(e @ PublishError::BadName(_)) => {
            eprintln!("hangsafe watch: --publish: {e}");
            Err(exit::USAGE.code)
        }
        Err(e @ PublishError::Untrusted(_)) => {
            eprintln!("hangsafe watch: --publish {name}: {e}");
            Err(exit::NOPERM.code)
        }
        Err(e) => {
            eprintln!("hangsafe watch: --publish {name}: {e}");
            Err(exit::CANTCREAT_PUBLISH.code)
        }
    }
}

impl Watch {
    /// The watcher of `targets`, before its first round.
    pub(crate) fn new(
        args: WatchArgs,
        targets: Vec<Watched>,
        set: RunnerSet<probe::Answer>,
        signals: Signals,
        publisher: Option<Publisher>,
    ) -> Watch {
        let live = (!args.json && io::stdout().is_terminal()).then(|| Live {
            lines: 0,
            next: Instant::now(),
        });
        let color = !args.json && output::use_color(args.color);
        Watch {
            slots: targets.into_iter().map(Slot::new).collect(),
            by_token: HashMap::new(),
            hooks: None,
            hooks_dirty: true,
            set,
            pool: Pool::builder().name("hangsafe-watch").build(),
            signals,
            publisher,
            publish_warned: false,
            began: Instant::now(),
            round: 0,
            next_id: 0,
            color,
            live,
            broken: false,
            dirty: false,
            command: "hangsafe watch",
            args,
        }
    }
}

impl Watch {
    /// Names the command in the loop's messages and final summary.
    pub(crate) fn named(mut self, command: &'static str) -> Watch {
        self.command = command;
        self
    }

    /// Plugs `hooks` into the loop, and turns the live table off (the
    /// exporter has no terminal of its own).
    pub(crate) fn with_hooks(mut self, hooks: Box<dyn Hooks>, live: bool) -> Watch {
        self.hooks = Some(hooks);
        if !live {
            self.live = None;
        }
        self
    }

    /// Runs the loop until SIGINT or SIGTERM (SIGHUP goes to the hooks'
    /// `reload`), then releases what is in flight and prints the final
    /// summary; returns the summary's exit status.
    pub(crate) fn run(mut self) -> ExitCode {
        let stop = self.run_loop();
        self.finish(stop)
    }

    /// The loop's state for the hooks.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let rows = self
            .slots
            .iter()
            .map(|s| {
                let (state, latency, detail) = match &s.last {
                    Some(r) => (r.state, r.latency, r.detail.clone()),
                    None => (State::Pending, None, "not decided yet".to_owned()),
                };
                let hung = s.hung.as_ref().map(|h| HungRow {
                    id: h.id,
                    deadline: duration::after(h.started, s.settings.timeout),
                    phase: h.returned.phase().map(|(p, since)| (p.to_owned(), since)),
                });
                let probing = s.inflight.as_ref().map(|f| HungRow {
                    id: f.id,
                    deadline: duration::after(f.started, s.settings.timeout),
                    phase: f.returned.phase().map(|(p, since)| (p.to_owned(), since)),
                });
                Row {
                    target: s.target.spec.clone(),
                    kind: s.last.as_ref().map_or(s.target.kind.name(), |r| r.kind),
                    state,
                    latency,
                    detail,
                    labels: s.settings.labels.clone(),
                    mount: s.settings.mount.clone(),
                    fs: s.fs,
                    hung,
                    probing,
                }
            })
            .collect();
        Snapshot {
            round: self.round,
            rows,
            pool: self.pool.metrics(),
        }
    }

    /// Shows the hooks the loop's state.
    fn observe(&mut self) {
        let Some(mut hooks) = self.hooks.take() else {
            return;
        };
        let snap = self.snapshot();
        hooks.observe(&snap, std::mem::take(&mut self.hooks_dirty));
        self.hooks = Some(hooks);
    }

    /// SIGHUP: asks the hooks for the new targets and switches to them.
    fn reload(&mut self) {
        let Some(mut hooks) = self.hooks.take() else {
            return;
        };
        let new = hooks.reload();
        self.hooks = Some(hooks);
        if let Some(new) = new {
            self.retarget(new);
        }
    }

    /// Switches to the targets `new`: a target already watched keeps its
    /// state (and its probe in flight, or hung); the others are dropped,
    /// their probes in flight released.
    fn retarget(&mut self, new: Vec<Watched>) {
        let mut old: HashMap<String, Slot> = self
            .slots
            .drain(..)
            .map(|s| (s.target.spec.clone(), s))
            .collect();
        let mut seen = HashSet::new();
        for w in new {
            if !seen.insert(w.target.spec.clone()) {
                continue;
            }
            let slot = match old.remove(&w.target.spec) {
                Some(mut s) => {
                    s.settings = w;
                    s
                }
                None => Slot::new(w),
            };
            self.slots.push(slot);
        }
        for (_, mut s) in old {
            if let Some(f) = s.inflight.take() {
                self.set.release(f.token);
            }
        }
        self.by_token = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.inflight.as_ref().map(|f| (f.token, i)))
            .collect();
        self.hooks_dirty = true;
        self.dirty = true;
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.began.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Prints one event (JSON mode).
    fn event(&mut self, mut v: serde_json::Value) {
        if let Some(o) = v.as_object_mut() {
            o.insert("elapsed_ms".into(), json!(self.elapsed_ms()));
        }
        self.line(&v.to_string());
    }

    /// Prints a line above the live table.
    fn line(&mut self, text: &str) {
        let mut out = io::stdout().lock();
        let mut s = String::new();
        if let Some(live) = &mut self.live {
            s.push_str(&erase(live.lines));
            live.lines = 0;
            live.next = Instant::now(); // redraw right after
        }
        s.push_str(text);
        s.push('\n');
        if out
            .write_all(s.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            self.broken = true;
        }
    }

    /// Runs rounds until a signal, the `--count`-th round's end, or an
    /// output error.
    fn run_loop(&mut self) -> Stop {
        if self.args.json {
            self.start_event();
        }
        let mut next_round = Instant::now();
        loop {
            if self.broken {
                return Stop::Output;
            }
            self.round_if_due(&mut next_round);
            let rounds_left = self.args.count.is_none_or(|n| self.round < n);
            if !rounds_left && self.slots.iter().all(|s| s.inflight.is_none()) {
                return Stop::Count;
            }
            if self.dirty {
                self.publish();
            }
            self.redraw_if_due();
            self.observe();
            self.wait(rounds_left.then_some(next_round));
            while let Some(sig) = self.signals.take() {
                if sig != libc::SIGHUP {
                    return Stop::Signal(sig);
                }
                self.reload();
            }
            self.examine_all();
            self.collect();
            self.check_returned();
        }
    }

    /// The `start` event (JSON mode).
    fn start_event(&mut self) {
        let targets: Vec<&str> = self.slots.iter().map(|s| s.target.spec.as_str()).collect();
        let v = json!({
            "event": "start",
            "targets": targets,
            "interval_ms": self.args.interval.as_secs_f64() * 1e3,
            "timeout_ms": self.args.timeout.as_secs_f64() * 1e3,
            "publish": self.args.publish,
        });
        self.event(v);
    }

    /// Starts a round if one is left and `next_round` has come, and moves
    /// `next_round` on by an interval.
    fn round_if_due(&mut self, next_round: &mut Instant) {
        let now = Instant::now();
        let rounds_left = self.args.count.is_none_or(|n| self.round < n);
        if rounds_left && now >= *next_round {
            self.start_round();
            *next_round = duration::after(*next_round, self.args.interval);
            if *next_round < now {
                // Fell behind (a stopped process): no burst of rounds.
                *next_round = duration::after(now, self.args.interval);
            }
        }
    }

    /// Sleeps until a probe is decided, a signal arrives, or the next
    /// deadline, round (`next_round`, if any) or redraw is due.
    fn wait(&mut self, next_round: Option<Instant>) {
        let now = Instant::now();
        let mut wait = self.set.poll_timeout();
        let mut consider = |d: Duration| wait = Some(wait.map_or(d, |w| w.min(d)));
        if let Some(next_round) = next_round {
            consider(next_round.saturating_duration_since(now));
        }
        if let Some(live) = &self.live {
            consider(live.next.saturating_duration_since(now));
        }
        if let Some(d) = self.hooks.as_ref().and_then(|h| h.max_wait()) {
            consider(d);
        }
        let timeout_ms = wait.map_or(-1, |d| {
            // Round up, so the loop does not wake just before a
            // deadline and spin.
            i32::try_from(d.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
        });
        let mut fds = [
            libc::pollfd {
                fd: self.set.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.signals.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfds for the call.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                log::error!("{}: poll: {e}", self.command);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Starts a round: a probe for every target whose previous probe is
    /// over.
    fn start_round(&mut self) {
        self.round += 1;
        self.dirty = true;
        self.hooks_dirty = true;
        let round = self.round;
        if self.args.json {
            self.event(json!({"event": "round", "round": round}));
        }
        // Drain first: a probe decided since the last drain is over.
        self.collect();
        self.check_returned();
        for i in 0..self.slots.len() {
            self.probe_slot(i, round);
        }
    }

    /// Starts the probe of target `i` in `round`, unless its last probe is
    /// still running (skipped) or still hung (its key is busy).
    fn probe_slot(&mut self, i: usize, round: u64) {
        let (spec, kind) = {
            let t = &self.slots[i].target;
            (t.spec.clone(), t.kind.name())
        };
        if let Some(f) = &self.slots[i].inflight {
            let id = f.id;
            if self.args.json {
                self.event(json!({
                    "event": "probe_skipped", "round": round, "target": spec, "kind": kind,
                    "probe": id, "reason": "still running",
                }));
            }
            return;
        }
        let timeout = self.slots[i].settings.timeout;
        if let (Some(every), Some(last)) =
            (self.slots[i].settings.interval, self.slots[i].last_started)
        {
            // Its own interval has not passed: not this round.
            if Instant::now() < duration::after(last, every) {
                return;
            }
        }
        // The work sets `returned` when it ends, before the pool frees
        // the key.
        let (work, returned) = probe::work(self.slots[i].target.clone(), timeout);
        let builder = Builder::new()
            .pool(&self.pool)
            .key(spec.clone())
            .timeout(timeout);
        let spawned = self.set.spawn(builder, work);
        match spawned {
            Ok(token) => self.started(i, round, token, returned),
            Err(SetError::Spawn(SpawnError::KeyBusy { .. })) => self.still_hung(i, round),
            Err(e) => self.not_started(i, round, &e),
        }
    }

    /// Records the probe of target `i` just spawned as `token`.
    fn started(&mut self, i: usize, round: u64, token: Token, returned: Returned) {
        // The key was free: any earlier probe of this target has
        // returned (its flag was set before its key was released).
        if let Some(h) = self.slots[i].hung.take() {
            self.announce_returned(i, &h);
        }
        self.next_id += 1;
        let id = self.next_id;
        self.slots[i].last_started = Some(Instant::now());
        let examiner = self.set.examiner(token).ok();
        self.slots[i].inflight = Some(InFlight {
            token,
            id,
            started: Instant::now(),
            examiner,
            seen: None,
            returned,
        });
        self.slots[i].noted = false;
        self.by_token.insert(token, i);
        if self.args.json {
            let t = &self.slots[i].target;
            let v = json!({
                "event": "probe_started", "round": round, "target": t.spec,
                "kind": t.kind.name(), "probe": id,
            });
            self.event(v);
        }
    }

    /// Target `i`'s earlier probe is still hung (its key is busy): says so
    /// in its last result and, once, on the output.
    fn still_hung(&mut self, i: usize, round: u64) {
        let (spec, kind) = {
            let t = &self.slots[i].target;
            (t.spec.clone(), t.kind.name())
        };
        let (id, note) = match &self.slots[i].hung {
            Some(h) => (
                Some(h.id),
                format!(
                    "still hung, not started: probe #{} {}",
                    h.id,
                    where_(h.seen.as_ref(), h.started, true)
                ),
            ),
            None => (None, "still hung, not started".to_owned()),
        };
        if let Some(last) = &mut self.slots[i].last {
            if last.detail != note {
                last.detail = note.clone();
                self.dirty = true;
            }
        }
        if self.args.json {
            self.event(json!({
                "event": "probe_skipped", "round": round, "target": spec,
                "kind": kind, "probe": id, "reason": "still hung",
            }));
        } else if !self.slots[i].noted {
            self.slots[i].noted = true;
            let text = format!("{}  {spec}  {kind}  timeout: {note}", clock());
            self.line(&text);
        }
    }

    /// The probe of target `i` could not be started (`e`): nothing is
    /// known about the target now, so its state is error (a transition,
    /// shown once while it lasts).
    fn not_started(&mut self, i: usize, round: u64, e: &SetError) {
        let (spec, kind) = {
            let t = &self.slots[i].target;
            (t.spec.clone(), t.kind.name())
        };
        let detail = e.to_string();
        if self.args.json {
            self.event(json!({
                "event": "probe_skipped", "round": round, "target": spec,
                "kind": kind, "probe": null, "reason": "cannot start", "detail": detail,
            }));
        }
        let rep = Report {
            target: spec,
            kind,
            state: State::Error,
            latency: None,
            detail: format!("probe not started: {detail}"),
        };
        self.record(i, rep);
    }

    /// Takes a snapshot of every in-flight probe's phase.
    fn examine_all(&mut self) {
        for s in &mut self.slots {
            if let Some(f) = &mut s.inflight {
                if let Some(ex) = &f.examiner {
                    match ex.examine(|p: &Progress| *p) {
                        Ok(p) => f.seen = Some(p),
                        // Not yet published, being republished, or over:
                        // keep what was seen.
                        Err(examine::Error::Unpublished | examine::Error::Again) => {}
                        Err(_) => f.examiner = None,
                    }
                }
            }
        }
    }

    /// Drains the set and handles each decided probe.
    fn collect(&mut self) {
        let drained = match self.set.drain() {
            Ok(d) => d,
            Err(e) => {
                log::error!("{}: drain: {e}", self.command);
                return;
            }
        };
        for (token, outcome) in drained {
            let Some(i) = self.by_token.remove(&token) else {
                continue;
            };
            let Some(f) = self.slots[i].inflight.take() else {
                continue;
            };
            self.decided(i, f, outcome);
        }
    }

    /// Handles the `outcome` of target `i`'s probe `f`: its report, its
    /// event, and whether it is left hung.
    fn decided(&mut self, i: usize, f: InFlight, outcome: Result<probe::Answer, RunError>) {
        let timed_out = outcome.is_err();
        let work_returned = f.returned.get();
        let rep = match outcome {
            Err(RunError::TimedOut) => {
                let hang = Hang {
                    phase: f
                        .seen
                        .as_ref()
                        .map(|p| (p.phase().to_owned(), p.time_in_phase())),
                    returned: work_returned.then_some(true),
                    allowed: None,
                };
                probe::timeout_report(&self.slots[i].target, self.slots[i].settings.timeout, &hang)
            }
            other => probe::report(&self.slots[i].target, other, self.slots[i].settings.timeout),
        };
        // node_exporter's rule: the figures of the statfs that answered;
        // none (device_error) when it failed or never returned.
        self.slots[i].fs = f.returned.statfs();
        self.hooks_dirty = true;
        if timed_out && !work_returned {
            self.slots[i].hung = Some(Hung {
                id: f.id,
                started: f.started,
                seen: f.seen,
                returned: f.returned.clone(),
            });
        }
        if self.args.json {
            self.event(finished_event(&rep, &f, work_returned));
        }
        self.record(i, rep);
    }

    /// Makes `rep` target `i`'s last result, with a transition if its
    /// state changed.
    fn record(&mut self, i: usize, rep: Report) {
        let old = self.slots[i].last.as_ref().map(|r| r.state);
        if old != Some(rep.state) {
            self.transition(old, &rep);
        }
        if self.slots[i].last.as_ref() != Some(&rep) {
            self.slots[i].last = Some(rep);
            self.dirty = true;
        }
    }

    /// Notices hung probes whose work has returned.
    fn check_returned(&mut self) {
        for i in 0..self.slots.len() {
            let back = self.slots[i]
                .hung
                .as_ref()
                .is_some_and(|h| h.returned.get());
            if back {
                let h = self.slots[i].hung.take().expect("checked");
                self.announce_returned(i, &h);
            }
        }
    }

    fn announce_returned(&mut self, i: usize, h: &Hung) {
        let spec = self.slots[i].target.spec.clone();
        let kind = self.slots[i].target.kind.name();
        let after = h.started.elapsed();
        if self.args.json {
            self.event(json!({
                "event": "probe_returned", "target": spec, "kind": kind, "probe": h.id,
                "after_ms": after.as_secs_f64() * 1e3,
            }));
        } else if self.slots[i].noted {
            // Only worth a line if a round was blocked by it.
            let text = format!(
                "{}  {spec}  {kind}  hung probe #{} returned after {}",
                clock(),
                h.id,
                duration::format_latency(after)
            );
            self.line(&text);
        }
        self.slots[i].noted = false;
    }

    fn transition(&mut self, old: Option<State>, rep: &Report) {
        if self.args.json {
            self.event(json!({
                "event": "transition", "target": rep.target, "kind": rep.kind,
                "from": old.map(State::as_str), "to": rep.state.as_str(),
                "latency_ms": rep.latency.map(|d| d.as_secs_f64() * 1e3),
                "detail": rep.detail,
            }));
        } else {
            let from = old.map_or("-".to_owned(), |s| paint(s, s.as_str(), self.color));
            let text = format!(
                "{}  {}  {}  {from} -> {}  {}  {}",
                clock(),
                rep.target,
                rep.kind,
                paint(rep.state, rep.state.as_str(), self.color),
                rep.latency.map_or("-".to_owned(), duration::format_latency),
                rep.detail
            );
            self.line(text.trim_end());
        }
    }

    /// The rows to publish: each target's last result (targets with none
    /// yet are left out).
    fn decided_rows(&self) -> Vec<Report> {
        self.slots.iter().filter_map(|s| s.last.clone()).collect()
    }

    /// The rows of the final summary: one per target, a target with no
    /// result yet as `pending` (with what its probe was doing).
    fn all_rows(&self) -> Vec<Report> {
        self.slots
            .iter()
            .map(|s| match &s.last {
                Some(r) => r.clone(),
                None => Report {
                    target: s.target.spec.clone(),
                    kind: s.target.kind.name(),
                    state: State::Pending,
                    latency: None,
                    detail: match &s.inflight {
                        Some(f) => format!(
                            "no result yet: probe #{} {}",
                            f.id,
                            where_(f.seen.as_ref(), f.started, false)
                        ),
                        None => "not probed yet".to_owned(),
                    },
                },
            })
            .collect()
    }

    fn publish(&mut self) {
        self.dirty = false;
        let rows = self.decided_rows();
        if rows.is_empty() {
            // Nothing decided yet: keep the previous table (a newer
            // publisher does not blank its predecessor's last one).
            return;
        }
        let round = self.round;
        let Some(p) = &mut self.publisher else { return };
        if let Err(e) = p.update(&rows, round) {
            p.failures += 1;
            if self.args.json {
                self.event(json!({"event": "publish_error", "detail": e}));
            } else if !self.publish_warned {
                self.publish_warned = true;
                eprintln!("{}: cannot publish: {e}", self.command);
            }
        }
    }

    /// Counts for the summary line.
    fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for s in &self.slots {
            match s.last.as_ref().map(|r| r.state) {
                Some(State::Up) => c.up += 1,
                Some(State::Down) => c.down += 1,
                Some(State::Timeout) => c.timeout += 1,
                Some(State::Error) => c.error += 1,
                Some(State::Pending) | None => c.pending += 1,
            }
            c.in_flight += usize::from(s.inflight.is_some());
            c.hung += usize::from(s.hung.is_some());
        }
        let m = self.pool.metrics();
        c.abandoned = m.threads_abandoned;
        c.abandoned_total = m.abandoned_total;
        c
    }

    fn summary_line(&self) -> String {
        let c = self.counts();
        let mut s = format!("{} up, {} down, {} timed out", c.up, c.down, c.timeout);
        if c.error > 0 {
            s.push_str(&format!(", {} not started (error)", c.error));
        }
        if c.pending > 0 {
            s.push_str(&format!(", {} pending", c.pending));
        }
        s.push_str(&format!(
            "; {} in flight, {} hung; abandoned threads: {} ({} since start); round {}",
            c.in_flight, c.hung, c.abandoned, c.abandoned_total, self.round
        ));
        s
    }

    fn redraw_if_due(&mut self) {
        let Some(live) = &self.live else { return };
        if Instant::now() < live.next {
            return;
        }
        self.examine_all();
        let text = self.live_table();
        let mut out = io::stdout().lock();
        let live = self.live.as_mut().expect("checked");
        let mut s = erase(live.lines);
        s.push_str(&text);
        live.lines = text.lines().count();
        live.next = duration::after(Instant::now(), REFRESH);
        if out
            .write_all(s.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            self.broken = true;
        }
    }

    /// The live table: state, latency, and what the probe is doing.
    fn live_table(&self) -> String {
        let cols = terminal_width();
        let w = self
            .slots
            .iter()
            .map(|s| s.target.spec.chars().count())
            .max()
            .unwrap_or(0)
            .clamp(6, 40);
        let mut out = format!(
            "{:<w$}  {:<5}  {:<7}  {:>7}  PROBE / DETAIL\n",
            "TARGET", "KIND", "STATE", "LATENCY"
        );
        for s in &self.slots {
            let line = self.live_row(s, w);
            out.push_str(&cut_chars(&line, cols + if self.color { 9 } else { 0 }));
            out.push('\n');
        }
        out.push_str(&cut_chars(&self.summary_line(), cols));
        out.push('\n');
        out
    }

    /// The live table's row of slot `s`, with a TARGET column `w` wide:
    /// its last result, and what its probe is doing if one is in flight
    /// or hung.
    fn live_row(&self, s: &Slot, w: usize) -> String {
        let (state, latency, detail) = match &s.last {
            Some(r) => (
                paint(r.state, &format!("{:<7}", r.state.as_str()), self.color),
                r.latency.map_or("-".to_owned(), duration::format_latency),
                r.detail.clone(),
            ),
            None => (format!("{:<7}", "pending"), "-".to_owned(), String::new()),
        };
        let probe = if let Some(f) = &s.inflight {
            format!(
                "probing #{} {}",
                f.id,
                where_(f.seen.as_ref(), f.started, false)
            )
        } else if let Some(h) = &s.hung {
            format!(
                "hung #{} {}",
                h.id,
                where_(h.seen.as_ref(), h.started, true)
            )
        } else {
            detail
        };
        format!(
            "{:<w$}  {:<5}  {state}  {latency:>7}  {probe}",
            cut_chars(&s.target.spec, w),
            s.target.kind.name()
        )
    }

    /// Prints the final summary and maps the last states to the exit
    /// status.
    fn finish(mut self, stop: Stop) -> ExitCode {
        // Probes still in the set are released (cancelled).
        self.examine_all();
        // The hooks see the final state (the textfile gets the last
        // results, not the state before the last drain).
        self.hooks_dirty = true;
        self.observe();
        let rows = self.all_rows();
        // Never 0 while a target has no result: a pending row makes it 3
        // (unless something is down or timed out).
        let code = report::exit_code(&rows);
        let c = self.counts();
        let sig = match stop {
            Stop::Signal(s) => Some(signal_name(s)),
            Stop::Count | Stop::Output => None,
        };
        if self.dirty {
            self.publish();
        }
        if let Some(live) = &mut self.live {
            let _ = io::stdout().write_all(erase(live.lines).as_bytes());
            live.lines = 0;
        }
        self.live = None;
        if self.args.json {
            self.summary_event(&stop, sig, code, &rows, &c);
        } else if !matches!(stop, Stop::Output) {
            let text = self.summary_text(sig, &rows, &c);
            self.line(&text);
        }
        // Release everything still in flight before exiting.
        for s in &mut self.slots {
            if let Some(f) = s.inflight.take() {
                self.set.release(f.token);
            }
        }
        if let Some(p) = self.publisher.take() {
            if p.failures > 0 {
                eprintln!("{}: {} table updates failed", self.command, p.failures);
            }
            drop(p);
        }
        ExitCode::from(code)
    }

    /// The `summary` event (JSON mode) of a watch ended by `stop` (by
    /// signal `sig`, if any), exiting with `code`, with its final `rows`
    /// and counts `c`.
    fn summary_event(
        &mut self,
        stop: &Stop,
        sig: Option<&str>,
        code: u8,
        rows: &[Report],
        c: &Counts,
    ) {
        let reason = match stop {
            Stop::Signal(_) => "signal",
            Stop::Count => "count",
            Stop::Output => "output",
        };
        let v = json!({
            "event": "summary", "reason": reason, "signal": sig, "rounds": self.round,
            "up": c.up, "down": c.down, "timeout": c.timeout, "error": c.error,
            "pending": c.pending,
            "in_flight": c.in_flight, "hung": c.hung,
            "abandoned_threads": c.abandoned, "abandoned_total": c.abandoned_total,
            "exit_code": code,
            "rows": rows.iter().map(Report::to_json).collect::<Vec<_>>(),
        });
        self.event(v);
    }

    /// The final table and summary (text mode) of a watch stopped by
    /// signal `sig`, if any, or done; `c` are the final counts.
    fn summary_text(&self, sig: Option<&str>, rows: &[Report], c: &Counts) -> String {
        let how = match sig {
            Some(s) => format!("stopped by {s}"),
            None => "done".to_owned(),
        };
        let mut text = format!("\n{} {how} after {} rounds:\n", self.command, self.round);
        text.push_str(&output::render_table(rows, self.color));
        text.push_str(&self.summary_line());
        if c.hung > 0 {
            text.push_str(
                "\nnote: a hung probe keeps its thread; one stuck in uninterruptible \
                 sleep (D state) also delays the process exit until it returns.",
            );
        }
        text
    }
}

#[derive(Default)]
struct Counts {
    up: usize,
    down: usize,
    timeout: usize,
    error: usize,
    pending: usize,
    in_flight: usize,
    hung: usize,
    abandoned: u64,
    abandoned_total: u64,
}

/// "in open for 1.2s", from a probe's last seen progress.
fn where_(seen: Option<&Progress>, started: Instant, last_seen: bool) -> String {
    match seen {
        Some(p) => {
            let phase = if p.phase().is_empty() { "?" } else { p.phase() };
            format!(
                "in {phase} for {}{}",
                duration::format_latency(p.time_in_phase()),
                if last_seen { " (last seen)" } else { "" }
            )
        }
        None => format!(
            "started {} ago",
            duration::format_latency(started.elapsed())
        ),
    }
}

/// ANSI: move up `lines` lines and clear to the end of the screen.
fn erase(lines: usize) -> String {
    if lines == 0 {
        String::new()
    } else {
        format!("\x1b[{lines}A\r\x1b[J")
    }
}

/// At most `n` characters of `s`.
fn cut_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// The terminal's width (80 if unknown).
fn terminal_width() -> usize {
    // SAFETY: all-zero is a valid winsize.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into `ws`, valid and writable.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    if rc == 0 && ws.ws_col > 0 {
        usize::from(ws.ws_col)
    } else {
        80
    }
}

/// The local time of day, `HH:MM:SS`.
fn clock() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as libc::time_t;
    // SAFETY: all-zero is a valid `struct tm` (integers; tm_zone null).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is the
    // thread-safe variant.
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if ok {
        format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
    } else {
        "??:??:??".to_owned()
    }
}
